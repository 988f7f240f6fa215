package slmmodel

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
)

// TestComputeStatusReconcilingUntilRolloutsSettle: the model is Reconciling
// (kstatus InProgress) while a rollout of it has not observed its generation
// or is still moving, so that a GitOps health check of both never reads the
// rollout's status of the previous model as the new one's.
func TestComputeStatusReconcilingUntilRolloutsSettle(t *testing.T) {
	now := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	m := &slmopsv1alpha1.SLMModel{
		ObjectMeta: metav1.ObjectMeta{Name: "tinyllama", Namespace: "stores", Generation: 3},
		Spec:       slmopsv1alpha1.SLMModelSpec{Digest: "sha256:" + strings.Repeat("ab", 32)},
	}
	// rollout is a rollout of generation 2, observed, whose status
	// describes model generation modelGen and is Reconciling or not.
	rollout := func(modelGen int64, reconciling bool) slmopsv1alpha1.EdgeRollout {
		ro := slmopsv1alpha1.EdgeRollout{ObjectMeta: metav1.ObjectMeta{Name: "r", Generation: 2}}
		ro.Status.ObservedGeneration, ro.Status.ObservedModelGeneration = 2, modelGen
		status := metav1.ConditionFalse
		if reconciling {
			status = metav1.ConditionTrue
		}
		ro.Status.Conditions = []metav1.Condition{{Type: slmopsv1alpha1.ConditionReconciling, Status: status}}
		return ro
	}
	ownSpecUnobserved := rollout(3, false)
	ownSpecUnobserved.Generation = 3
	deleting := rollout(1, true)
	deleting.DeletionTimestamp = &now

	tests := map[string]struct {
		rollouts []slmopsv1alpha1.EdgeRollout
		// want is the Reconciling condition's message; empty for none, when
		// kstatus must read the model as Current (InProgress otherwise).
		want string
	}{
		"no rollout uses the model: nothing to wait for": {},
		"every rollout settled on this generation": {
			rollouts: []slmopsv1alpha1.EdgeRollout{rollout(3, false), rollout(3, false)},
		},
		"a rollout still describes the previous model": {
			rollouts: []slmopsv1alpha1.EdgeRollout{rollout(3, false), rollout(2, false)},
			want:     "1 of 2 EdgeRollouts that use this model have not settled on generation 3 yet",
		},
		"a rollout observed this generation and is rolling it out": {
			rollouts: []slmopsv1alpha1.EdgeRollout{rollout(3, true)},
			want:     "1 of 1 EdgeRollouts that use this model have not settled on generation 3 yet",
		},
		"a rollout has not observed its own spec, which may have named another model": {
			rollouts: []slmopsv1alpha1.EdgeRollout{ownSpecUnobserved},
			want:     "1 of 1 EdgeRollouts that use this model have not settled on generation 3 yet",
		},
		"a rollout being deleted does not hold the model": {
			rollouts: []slmopsv1alpha1.EdgeRollout{deleting},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			st := computeStatus(m, tc.rollouts, now)
			if got := st.Rollouts; got != int32(len(tc.rollouts)) {
				t.Errorf("rollouts = %d, want %d", got, len(tc.rollouts))
			}
			if !meta.IsStatusConditionTrue(st.Conditions, slmopsv1alpha1.ConditionReady) {
				t.Errorf("not Ready: %v", st.Conditions)
			}
			got := ""
			if c := meta.FindStatusCondition(st.Conditions, slmopsv1alpha1.ConditionReconciling); c != nil {
				if c.Status != metav1.ConditionTrue || c.Reason != slmopsv1alpha1.ReasonRolloutsPending {
					t.Errorf("Reconciling condition %+v, want True with reason %s", c, slmopsv1alpha1.ReasonRolloutsPending)
				}
				got = c.Message
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Reconciling message (-want +got):\n%s", diff)
			}
			want := kstatus.CurrentStatus
			if tc.want != "" {
				want = kstatus.InProgressStatus
			}
			withStatus := m.DeepCopy()
			withStatus.Status = st
			u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(withStatus)
			if err != nil {
				t.Fatal(err)
			}
			res, err := kstatus.Compute(&unstructured.Unstructured{Object: u})
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != want {
				t.Errorf("kstatus = %s (%s), want %s", res.Status, res.Message, want)
			}
		})
	}

	// Once the rollouts settle, the condition goes.
	st := computeStatus(m, []slmopsv1alpha1.EdgeRollout{rollout(2, false)}, now)
	m.Status = st
	st = computeStatus(m, []slmopsv1alpha1.EdgeRollout{rollout(3, false)}, now)
	if c := meta.FindStatusCondition(st.Conditions, slmopsv1alpha1.ConditionReconciling); c != nil {
		t.Errorf("Reconciling is left after the rollouts settled: %+v", c)
	}
}
