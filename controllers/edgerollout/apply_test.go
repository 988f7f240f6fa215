package edgerollout

import (
	"errors"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
)

// TestAppliedNamesThePhase: the Applied condition is True when every phase
// ran cleanly, and False with the reason of the phase that failed, or of
// the first that reported a problem no retry mends.
func TestAppliedNamesThePhase(t *testing.T) {
	now := metav1.Now()
	for name, tc := range map[string]struct {
		res    applyResult
		status metav1.ConditionStatus
		reason string
	}{
		"every phase ran":      {applyResult{}, metav1.ConditionTrue, slmopsv1alpha1.ReasonApplied},
		"a phase failed":       {applyResult{failed: "PatchLabels", err: errors.New("forbidden")}, metav1.ConditionFalse, "PatchLabelsFailed"},
		"a phase had problems": {applyResult{problemPhase: "EnsureDaemonSets", problems: []error{errStableMissing("old")}}, metav1.ConditionFalse, "EnsureDaemonSetsFailed"},
	} {
		c := appliedCondition(1, tc.res, now)
		if c.Status != tc.status || c.Reason != tc.reason {
			t.Errorf("%s: %s %s; want %s %s", name, c.Status, c.Reason, tc.status, tc.reason)
		}
	}
}
