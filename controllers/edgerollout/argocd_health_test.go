package edgerollout

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/controllers/edgerollout/plan"
	"github.com/slmops/slmops/test/testenv"
)

// TestArgoCDHealthScript runs the health check that the GitOps docs give
// Argo CD (config/gitops/argocd/argocd-cm-health.yaml) with gopher-lua, the
// interpreter Argo CD embeds, on rollouts whose status the operator's own
// code wrote: an Application is Healthy only when its rollouts are
// Completed.
func TestArgoCDHealthScript(t *testing.T) {
	script, err := testenv.ArgoCDHealthScript()
	if err != nil {
		t.Fatal(err)
	}
	tests := map[slmopsv1alpha1.RolloutPhase]string{
		slmopsv1alpha1.PhasePending:     "Progressing",
		slmopsv1alpha1.PhaseProgressing: "Progressing",
		slmopsv1alpha1.PhasePaused:      "Suspended",
		slmopsv1alpha1.PhaseCompleted:   "Healthy",
		slmopsv1alpha1.PhaseDegraded:    "Degraded",
		slmopsv1alpha1.PhaseRolledBack:  "Degraded",
		slmopsv1alpha1.PhaseAborted:     "Degraded",
	}
	for phase, want := range tests {
		r := &slmopsv1alpha1.EdgeRollout{
			TypeMeta:   metav1.TypeMeta{APIVersion: slmopsv1alpha1.GroupVersion.String(), Kind: "EdgeRollout"},
			ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "default", Generation: 3},
		}
		plan.SetPhase(&r.Status, r.Generation, phase, "Why", "what happens", metav1.NewTime(time.Unix(1000, 0)))
		status, message := runHealth(t, script, r)
		if status != want {
			t.Errorf("Argo CD health of a %s rollout = %s (%s), want %s", phase, status, message, want)
		}
		if message == "" {
			t.Errorf("Argo CD health of a %s rollout has no message", phase)
		}
		// A status written for an older spec is not health yet.
		r.Generation = 4
		if status, _ := runHealth(t, script, r); status != "Progressing" {
			t.Errorf("Argo CD health of a %s rollout whose spec the operator has not seen = %s, want Progressing", phase, status)
		}
	}
	// Just created: no status at all.
	if status, _ := runHealth(t, script, &slmopsv1alpha1.EdgeRollout{ObjectMeta: metav1.ObjectMeta{Name: "new", Generation: 1}}); status != "Progressing" {
		t.Errorf("Argo CD health of a new rollout = %s, want Progressing", status)
	}
}

func runHealth(t *testing.T, script string, obj runtime.Object) (string, string) {
	t.Helper()
	status, message, err := testenv.ArgoCDHealth(script, obj)
	if err != nil {
		t.Fatal(err)
	}
	return status, message
}
