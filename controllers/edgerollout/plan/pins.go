package plan

import (
	"encoding/json"
	"slices"

	appsv1 "k8s.io/api/apps/v1"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/inferd/config"
)

// CachePins are the digests the rollout may return to, sorted: every
// artifact of its stable and of its canary revision (a rolled-back or
// aborted canary too, since a retry returns to it). The artifacts of the
// revision the spec describes come from the model (it is the stable or the
// canary one once the plan ran); those of an older revision from its
// DaemonSets, which carry each artifact's digest, and from the history,
// which has its default artifact's digest even when its DaemonSets are gone.
func CachePins(st *slmopsv1alpha1.EdgeRolloutStatus, arts []Artifact, daemonSets []*appsv1.DaemonSet) []string {
	revs := map[string]bool{}
	homes := []string{st.StableRevision, st.CanaryRevision}
	for _, e := range st.ExcludedClasses {
		homes = append(homes, e.Revision)
	}
	for _, rev := range homes {
		if rev != "" {
			revs[rev] = true
		}
	}
	set := map[string]bool{}
	for _, a := range arts {
		set[a.Digest] = true
	}
	for _, ds := range daemonSets {
		if revs[ds.Labels[slmopsv1alpha1.RevisionLabel]] {
			if d := DaemonSetDigest(ds); d != "" {
				set[d] = true
			}
		}
	}
	for _, h := range st.History {
		if revs[h.Revision] && h.Digest != "" {
			set[h.Digest] = true
		}
	}
	out := make([]string, 0, len(set))
	for d := range set {
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}

// DaemonSetDigest is the digest of the artifact a DaemonSet runs: its
// annotation, or the model digest of its inferd config.
func DaemonSetDigest(ds *appsv1.DaemonSet) string {
	if d := ds.Annotations[slmopsv1alpha1.ModelDigestAnnotation]; d != "" {
		return d
	}
	for _, c := range ds.Spec.Template.Spec.Containers {
		for _, e := range c.Env {
			if e.Name != config.EnvConfig {
				continue
			}
			var cfg config.Config
			if json.Unmarshal([]byte(e.Value), &cfg) == nil {
				return cfg.Model.Digest
			}
		}
	}
	return ""
}
