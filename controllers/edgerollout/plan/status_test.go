package plan

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
)

// TestKstatusReadsRolloutHealth: Flux, Argo CD (through kstatus-style health)
// and `kubectl wait` must read a rollout's health from its conditions alone.
func TestKstatusReadsRolloutHealth(t *testing.T) {
	tests := map[slmopsv1alpha1.RolloutPhase]status.Status{
		slmopsv1alpha1.PhasePending:     status.InProgressStatus,
		slmopsv1alpha1.PhaseProgressing: status.InProgressStatus,
		slmopsv1alpha1.PhasePaused:      status.InProgressStatus,
		slmopsv1alpha1.PhaseCompleted:   status.CurrentStatus,
		slmopsv1alpha1.PhaseDegraded:    status.FailedStatus,
		slmopsv1alpha1.PhaseRolledBack:  status.FailedStatus,
		slmopsv1alpha1.PhaseAborted:     status.FailedStatus,
	}
	for phase, want := range tests {
		t.Run(string(phase), func(t *testing.T) {
			r := &slmopsv1alpha1.EdgeRollout{
				TypeMeta:   metav1.TypeMeta{APIVersion: slmopsv1alpha1.GroupVersion.String(), Kind: "EdgeRollout"},
				ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "default", Generation: 3},
			}
			SetPhase(&r.Status, r.Generation, phase, "", "a message", metav1.NewTime(time.Unix(1000, 0)))
			got, err := status.Compute(toUnstructured(t, r))
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != want {
				t.Errorf("kstatus of a %s rollout = %s (%s), want %s", phase, got.Status, got.Message, want)
			}
		})
	}
}

// TestKstatusWaitsForTheObservedGeneration: a status written for an older spec
// is not health; kstatus must say InProgress until the controller caught up.
func TestKstatusWaitsForTheObservedGeneration(t *testing.T) {
	r := &slmopsv1alpha1.EdgeRollout{
		TypeMeta:   metav1.TypeMeta{APIVersion: slmopsv1alpha1.GroupVersion.String(), Kind: "EdgeRollout"},
		ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "default", Generation: 4},
	}
	SetPhase(&r.Status, 3, slmopsv1alpha1.PhaseCompleted, "", "", metav1.Now())
	got, err := status.Compute(toUnstructured(t, r))
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != status.InProgressStatus {
		t.Errorf("kstatus of a stale Completed status = %s, want InProgress", got.Status)
	}
}

func TestSetPhaseKeepsTransitionTimesOfUnchangedConditions(t *testing.T) {
	var st slmopsv1alpha1.EdgeRolloutStatus
	t0, t1 := metav1.NewTime(time.Unix(1000, 0)), metav1.NewTime(time.Unix(2000, 0))
	SetPhase(&st, 1, slmopsv1alpha1.PhaseProgressing, "StepStarted", "step 1 of 3", t0)
	SetPhase(&st, 1, slmopsv1alpha1.PhasePaused, "StepPaused", "step 1 of 3 paused for 1m", t1)
	got := map[string]string{}
	for _, c := range st.Conditions {
		got[c.Type] = string(c.Status) + "@" + c.LastTransitionTime.UTC().Format("15:04:05")
	}
	want := map[string]string{
		slmopsv1alpha1.ConditionReady:       "False@00:16:40",
		slmopsv1alpha1.ConditionProgressing: "False@00:33:20", // went True -> False
		slmopsv1alpha1.ConditionDegraded:    "False@00:16:40",
		slmopsv1alpha1.ConditionPaused:      "True@00:33:20",
		slmopsv1alpha1.ConditionReconciling: "True@00:16:40", // stayed True
		slmopsv1alpha1.ConditionStalled:     "False@00:16:40",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("conditions (-want +got):\n%s", diff)
	}
}

func toUnstructured(t *testing.T, obj runtime.Object) *unstructured.Unstructured {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: m}
}

// TestCountsOnlyTellsCountsFromDecisions: a status that only counted more
// ready nodes (with the words of its message, its per-class and per-site
// counts, and the sites' order) is counts only; a new step, a new reason or
// a failing node is a decision.
func TestCountsOnlyTellsCountsFromDecisions(t *testing.T) {
	now := metav1.NewTime(t0)
	base := progressing(1, time.Minute)
	SetPhase(&base, 1, slmopsv1alpha1.PhaseProgressing, slmopsv1alpha1.ReasonStepProgressing, "step 2 of 3: 3 healthy, 12 needed", now)
	base.ReadyNodes, base.HardwareClasses = 3, []slmopsv1alpha1.HardwareClassStatus{{Name: "arm64", Nodes: 12}}
	base.Sites, base.SiteCount = []slmopsv1alpha1.SiteStatus{{Name: "a", TargetNodes: 6, ReadyNodes: 2}, {Name: "b", TargetNodes: 6, ReadyNodes: 1}}, 2
	for name, tc := range map[string]struct {
		edit func(*slmopsv1alpha1.EdgeRolloutStatus)
		want bool
	}{
		"more ready nodes, another message": {func(s *slmopsv1alpha1.EdgeRolloutStatus) {
			s.ReadyNodes = 4
			SetPhase(s, 1, slmopsv1alpha1.PhaseProgressing, slmopsv1alpha1.ReasonStepProgressing, "step 2 of 3: 4 healthy, 12 needed", now)
			s.HardwareClasses[0].Stable = &slmopsv1alpha1.ClassFigures{Revision: "old", Reports: 3}
			s.Sites = []slmopsv1alpha1.SiteStatus{{Name: "b", TargetNodes: 6, ReadyNodes: 1}, {Name: "a", TargetNodes: 6, ReadyNodes: 3}}
		}, true},
		"the next step": {func(s *slmopsv1alpha1.EdgeRolloutStatus) { s.CurrentStep = 2 }, false},
		"another reason": {func(s *slmopsv1alpha1.EdgeRolloutStatus) {
			SetPhase(s, 1, slmopsv1alpha1.PhaseProgressing, slmopsv1alpha1.ReasonWaitingForStaging, "step 2 of 3: 3 healthy", now)
		}, false},
		"a failing node": {func(s *slmopsv1alpha1.EdgeRolloutStatus) {
			s.FailingNodes = []slmopsv1alpha1.FailingNode{{Node: "n1", Reason: "SelfTestFailed"}}
		}, false},
		"a class excluded": {func(s *slmopsv1alpha1.EdgeRolloutStatus) {
			s.ExcludedClasses = []slmopsv1alpha1.ExcludedClass{{Name: "arm64", Reason: slmopsv1alpha1.ReasonSlowerThanStable}}
		}, false},
	} {
		next := base.DeepCopy()
		tc.edit(next)
		if got := CountsOnly(&base, next); got != tc.want {
			t.Errorf("%s: CountsOnly %v; want %v", name, got, tc.want)
		}
	}
}
