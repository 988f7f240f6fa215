package edgerollout

import (
	"testing"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
)

// TestVariantDaemonSetNames: every DaemonSet name fits in 63 characters,
// the default artifact's is the revision's, and two variants never share one.
func TestVariantDaemonSetNames(t *testing.T) {
	long := "a-very-long-rollout-name-that-goes-on-and-on-for-the-whole-fleet"
	for _, c := range []struct{ rollout, variant string }{
		{"stores", slmopsv1alpha1.DefaultVariant}, {"stores", "arm64-q4"}, {long, "arm64-q4"}, {long, "a-variant-name-longer-than-twenty-characters"},
	} {
		name := artifactDaemonSetName(c.rollout, "0123456789", c.variant)
		if len(name) > 63 {
			t.Errorf("%s/%s: %q is longer than 63", c.rollout, c.variant, name)
		}
		if c.variant == slmopsv1alpha1.DefaultVariant && name != daemonSetName(c.rollout, "0123456789") {
			t.Errorf("the default artifact's DaemonSet %q is not the revision's %q", name, daemonSetName(c.rollout, "0123456789"))
		}
	}
	if artifactDaemonSetName("stores", "0123456789", "a") == artifactDaemonSetName("stores", "0123456789", "b") {
		t.Error("two variants share a DaemonSet name")
	}
}
