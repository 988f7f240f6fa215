package edgerollout

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
)

// artifactDaemonSetName is the DaemonSet of one artifact of one revision:
// the revision's name for the default artifact (as for a model without
// variants), with the variant's name (or a hash of a long one) otherwise.
func artifactDaemonSetName(rollout, revision, variant string) string {
	if variant == slmopsv1alpha1.DefaultVariant {
		return daemonSetName(rollout, revision)
	}
	variant = shortVariant(variant)
	name := rollout
	if max := 63 - len(revision) - len(variant) - 2; len(name) > max {
		name = strings.TrimRight(name[:max], "-.")
	}
	return name + "-" + revision + "-" + variant
}

// shortVariant is a variant's name in object names: itself, or a hash of a
// long one.
func shortVariant(variant string) string {
	if len(variant) > 20 {
		sum := sha256.Sum256([]byte(variant))
		return hex.EncodeToString(sum[:])[:8]
	}
	return variant
}
