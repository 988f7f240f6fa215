package plan

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/test/testutil"
)

var t0 = testutil.Epoch

// fleet is n reachable target nodes dealt round-robin over sites, running rev
// (empty: nothing) with a pod that has been ready since long ago.
func fleet(n, sites int, rev string) []Node {
	out := make([]Node, n)
	for i := range out {
		out[i] = Node{
			Name: fmt.Sprintf("node-%03d", i), Site: fmt.Sprintf("site-%d", i%sites),
			Target: true, Reachable: true, Revision: rev, Variant: slmopsv1alpha1.DefaultVariant,
		}
		if rev != "" {
			out[i].Pod = Pod{Exists: true, Ready: true, Since: t0.Add(-time.Hour)}
		}
	}
	return out
}

// spec returns a rollout spec with the schema's defaults and the given steps.
func spec(steps ...string) slmopsv1alpha1.EdgeRolloutSpec {
	s := slmopsv1alpha1.EdgeRolloutSpec{
		ModelRef:       slmopsv1alpha1.LocalObjectReference{Name: "m"},
		RollbackPolicy: slmopsv1alpha1.RollbackAutomatic,
		Analysis:       slmopsv1alpha1.RolloutAnalysis{SuccessRatio: "1", MaxFailedNodes: ptr.To(intstr.FromInt32(0))},
		Strategy: slmopsv1alpha1.RolloutStrategy{Canary: slmopsv1alpha1.CanaryStrategy{
			MaxUnavailable:          ptr.To(intstr.FromString("10%")),
			MinReadySeconds:         ptr.To[int32](10),
			ProgressDeadlineSeconds: 600,
			UnreachableNodes:        slmopsv1alpha1.UnreachableNodes{Policy: slmopsv1alpha1.UnreachableNodesSkip, Deadline: &metav1.Duration{Duration: 10 * time.Minute}},
			TopologyOrder:           slmopsv1alpha1.TopologySpread,
		}},
	}
	for _, st := range steps {
		s.Strategy.Canary.Steps = append(s.Strategy.Canary.Steps, slmopsv1alpha1.CanaryStep{Nodes: intstr.Parse(st)})
	}
	return s
}

// pausedFirstStep returns spec("10%", "100%") whose first step pauses for d,
// or until promoted when d is zero.
func pausedFirstStep(d time.Duration) slmopsv1alpha1.EdgeRolloutSpec {
	s := spec("10%", "100%")
	s.Strategy.Canary.Steps[0].Pause = &slmopsv1alpha1.CanaryPause{}
	if d > 0 {
		s.Strategy.Canary.Steps[0].Pause.Duration = &metav1.Duration{Duration: d}
	}
	return s
}

// pausedSince is the status of a canary whose step 1 has been paused since pausedAgo.
func pausedSince(pausedAgo, startedAgo time.Duration) slmopsv1alpha1.EdgeRolloutStatus {
	st := progressing(0, startedAgo)
	st.Phase, st.PauseStartedAt = slmopsv1alpha1.PhasePaused, ptr.To(metav1.NewTime(t0.Add(-pausedAgo)))
	return st
}

// progressing is the status of a canary of "new" over stable "old" at step.
func progressing(step int32, startedAgo time.Duration) slmopsv1alpha1.EdgeRolloutStatus {
	started := metav1.NewTime(t0.Add(-startedAgo))
	return slmopsv1alpha1.EdgeRolloutStatus{
		Phase: slmopsv1alpha1.PhaseProgressing, CurrentStep: step, StepStartedAt: &started,
		StableRevision: "old", CanaryRevision: "new",
		History: []slmopsv1alpha1.RevisionHistory{{Revision: "new", Phase: slmopsv1alpha1.PhaseProgressing}},
	}
}

// onCanary puts the named nodes on "new", ready since readyAgo (negative: not
// ready, created that long ago).
func onCanary(nodes []Node, readyAgo time.Duration, names ...int) []Node {
	for _, i := range names {
		nodes[i].Revision = "new"
		if readyAgo >= 0 {
			nodes[i].Pod = Pod{Exists: true, Ready: true, Since: t0.Add(-readyAgo)}
		} else {
			nodes[i].Pod = Pod{Exists: true, Since: t0.Add(readyAgo)}
		}
	}
	return nodes
}

// planFor is Compute of in with its spec defaulted as observe defaults
// it: the specs of these tests are built in Go, without the schema.
func planFor(in Input) Plan {
	in.Spec = *in.Spec.DeepCopy()
	slmopsv1alpha1.DefaultEdgeRolloutSpec(&in.Spec)
	return Compute(in)
}

func labelChanges(p Plan) map[string]string {
	if len(p.Labels) == 0 {
		return nil
	}
	return p.Labels
}

func reasons(p Plan) string {
	var r []string
	for _, e := range p.Events {
		r = append(r, e.Reason)
	}
	return strings.Join(r, ",")
}

// pointers are the nodes' addresses, as the plan passes them around.
func pointers(nodes []Node) []*Node {
	out := make([]*Node, len(nodes))
	for i := range nodes {
		out[i] = &nodes[i]
	}
	return out
}

// cohortOrderOf20 is the cohort order of fleet(20, 1, ...), by index.
func cohortOrderOf20() ([]string, []int) {
	s := spec("100%").Strategy.Canary
	var names []string
	var idx []int
	for _, n := range cohortOrder(pointers(fleet(20, 1, "")), &s) {
		names = append(names, n.Name)
		var i int
		if _, err := fmt.Sscanf(n.Name, "node-%03d", &i); err != nil {
			panic(err)
		}
		idx = append(idx, i)
	}
	return names, idx
}

func TestComputePlan(t *testing.T) {
	o, i := cohortOrderOf20()
	tests := map[string]struct {
		spec        slmopsv1alpha1.EdgeRolloutSpec
		annotations map[string]string
		status      slmopsv1alpha1.EdgeRolloutStatus
		nodes       []Node
		revision    string

		wantPhase    slmopsv1alpha1.RolloutPhase
		wantStep     int32
		wantStable   string
		wantCanary   string
		wantLabels   map[string]string
		wantRevs     []string
		wantEvents   string
		wantRequeue  time.Duration
		wantFailing  []string
		checkCounter func(t *testing.T, st slmopsv1alpha1.EdgeRolloutStatus)
	}{
		"the first revision starts a canary at step 1 and switches its cohort within maxUnavailable": {
			spec: spec("20%", "100%"), nodes: fleet(20, 1, ""), revision: "new",
			wantPhase: slmopsv1alpha1.PhaseProgressing, wantCanary: "new",
			// 20% of 20 is a cohort of 4; maxUnavailable 10% of 20 lets 2 switch now.
			wantLabels: map[string]string{o[0]: "new", o[1]: "new"},
			wantRevs:   []string{"new"}, wantEvents: "CanaryStarted",
		},
		"a new digest starts a canary beside the stable revision": {
			spec: spec("10%", "100%"), status: slmopsv1alpha1.EdgeRolloutStatus{Phase: slmopsv1alpha1.PhaseCompleted, StableRevision: "old"},
			nodes: fleet(20, 2, "old"), revision: "new",
			wantPhase: slmopsv1alpha1.PhaseProgressing, wantStable: "old", wantCanary: "new",
			wantLabels: map[string]string{o[0]: "new", o[1]: "new"},
			wantRevs:   []string{"new", "old"}, wantEvents: "CanaryStarted",
		},
		"nodes that already have no ready pod switch without taking budget": {
			spec: spec("20%", "100%"), status: progressing(0, time.Minute),
			nodes: func() []Node {
				n := fleet(20, 1, "old")
				for _, i := range i[:4] { // the first four in cohort order
					n[i].Pod = Pod{Exists: true, Since: t0.Add(-time.Minute)}
				}
				return n
			}(),
			revision: "new", wantPhase: slmopsv1alpha1.PhaseProgressing, wantStable: "old", wantCanary: "new",
			wantLabels: map[string]string{o[0]: "new", o[1]: "new", o[2]: "new", o[3]: "new"},
			wantRevs:   []string{"new", "old"},
		},
		"a full budget switches nobody": {
			spec: spec("20%", "100%"), status: progressing(0, time.Minute),
			nodes:    onCanary(fleet(20, 1, "old"), -time.Minute, i[0], i[1]),
			revision: "new", wantPhase: slmopsv1alpha1.PhaseProgressing, wantStable: "old", wantCanary: "new",
			wantRevs: []string{"new", "old"}, wantRequeue: 9 * time.Minute,
		},
		"a healthy cohort is promoted to the next step": {
			spec: spec("10%", "50%", "100%"), status: progressing(0, time.Minute),
			nodes:    onCanary(fleet(20, 1, "old"), time.Minute, i[0], i[1]),
			revision: "new", wantPhase: slmopsv1alpha1.PhaseProgressing, wantStep: 1, wantStable: "old", wantCanary: "new",
			// Step 2 is 10 nodes: two more switch now (maxUnavailable 2).
			wantLabels: map[string]string{o[2]: "new", o[3]: "new"},
			wantRevs:   []string{"new", "old"}, wantEvents: "StepPromoted",
		},
		"a cohort is not healthy before minReadySeconds": {
			spec: spec("10%", "100%"), status: progressing(0, time.Minute),
			nodes:    onCanary(fleet(20, 1, "old"), 4*time.Second, i[0], i[1]),
			revision: "new", wantPhase: slmopsv1alpha1.PhaseProgressing, wantStable: "old", wantCanary: "new",
			wantRevs: []string{"new", "old"}, wantRequeue: 6 * time.Second,
		},
		"a successRatio below 1 promotes with stragglers": {
			spec: func() slmopsv1alpha1.EdgeRolloutSpec {
				s := spec("20%", "100%")
				s.Analysis.SuccessRatio = "0.75"
				return s
			}(),
			status:   progressing(0, time.Minute),
			nodes:    onCanary(onCanary(fleet(20, 1, "old"), time.Minute, i[0], i[1], i[2]), -time.Minute, i[3]),
			revision: "new", wantPhase: slmopsv1alpha1.PhaseProgressing, wantStep: 1, wantStable: "old", wantCanary: "new",
			// The straggler node-004 counts against maxUnavailable; one more switches.
			wantLabels: map[string]string{o[4]: "new"},
			wantRevs:   []string{"new", "old"}, wantEvents: "StepPromoted", wantRequeue: 9 * time.Minute,
		},
		"a step with a pause holds once healthy": {
			spec:     pausedFirstStep(5 * time.Minute),
			status:   progressing(0, time.Minute),
			nodes:    onCanary(fleet(20, 1, "old"), time.Minute, i[0], i[1]),
			revision: "new", wantPhase: slmopsv1alpha1.PhasePaused, wantStable: "old", wantCanary: "new",
			wantRevs: []string{"new", "old"}, wantEvents: "StepPaused", wantRequeue: 5 * time.Minute,
		},
		"a finished pause promotes": {
			spec:     pausedFirstStep(5 * time.Minute),
			status:   pausedSince(6*time.Minute, 10*time.Minute),
			nodes:    onCanary(fleet(20, 1, "old"), 7*time.Minute, i[0], i[1]),
			revision: "new", wantPhase: slmopsv1alpha1.PhaseProgressing, wantStep: 1, wantStable: "old", wantCanary: "new",
			wantLabels: map[string]string{o[2]: "new", o[3]: "new"},
			wantRevs:   []string{"new", "old"}, wantEvents: "StepPromoted",
		},
		"an open-ended pause waits for the promote annotation": {
			spec:     pausedFirstStep(0),
			status:   progressing(0, time.Hour),
			nodes:    onCanary(fleet(20, 1, "old"), time.Hour, i[0], i[1]),
			revision: "new", wantPhase: slmopsv1alpha1.PhasePaused, wantStable: "old", wantCanary: "new",
			wantRevs: []string{"new", "old"}, wantEvents: "StepPaused",
		},
		"the promote annotation promotes a paused step once": {
			spec:        pausedFirstStep(0),
			annotations: map[string]string{slmopsv1alpha1.PromoteAnnotation: "1"},
			status:      pausedSince(time.Minute, time.Hour),
			nodes:       onCanary(fleet(20, 1, "old"), time.Hour, i[0], i[1]),
			revision:    "new", wantPhase: slmopsv1alpha1.PhaseProgressing, wantStep: 1, wantStable: "old", wantCanary: "new",
			wantLabels: map[string]string{o[2]: "new", o[3]: "new"},
			wantRevs:   []string{"new", "old"}, wantEvents: "StepPromoted",
			checkCounter: func(t *testing.T, st slmopsv1alpha1.EdgeRolloutStatus) {
				if st.Actions.Promote != "1" {
					t.Errorf("actions.promote = %q, want the annotation value recorded", st.Actions.Promote)
				}
			},
		},
		"a promote value already acted on does nothing": {
			spec:        pausedFirstStep(0),
			annotations: map[string]string{slmopsv1alpha1.PromoteAnnotation: "1"},
			status: func() slmopsv1alpha1.EdgeRolloutStatus {
				st := pausedSince(time.Minute, time.Hour)
				st.Actions.Promote = "1"
				return st
			}(),
			nodes:    onCanary(fleet(20, 1, "old"), time.Hour, i[0], i[1]),
			revision: "new", wantPhase: slmopsv1alpha1.PhasePaused, wantStable: "old", wantCanary: "new",
			wantRevs: []string{"new", "old"},
		},
		"the last healthy step completes: the canary becomes stable and the old DaemonSet goes": {
			spec: spec("10%", "100%"), status: progressing(1, time.Minute),
			nodes:    onCanary(fleet(4, 1, "old"), time.Minute, 0, 1, 2, 3),
			revision: "new", wantPhase: slmopsv1alpha1.PhaseCompleted, wantStep: 1, wantStable: "new",
			wantRevs: []string{"new"}, wantEvents: "StepPromoted,Completed",
		},
		"failed canary nodes beyond maxFailedNodes roll back automatically": {
			spec: spec("20%", "100%"), status: progressing(0, 20*time.Minute),
			nodes:    onCanary(onCanary(fleet(20, 1, "old"), -11*time.Minute, i[0]), time.Minute, i[1]),
			revision: "new", wantPhase: slmopsv1alpha1.PhaseRolledBack, wantStable: "old", wantCanary: "new",
			// node-002 has no ready pod and goes back for free; node-015 takes the budget.
			wantLabels: map[string]string{o[0]: "old", o[1]: "old"},
			wantRevs:   []string{"new", "old"}, wantEvents: "RolledBack",
			wantFailing: []string{o[0] + ":ProgressDeadlineExceeded"},
		},
		"a crash-looping canary fails without waiting for the deadline": {
			spec: spec("20%", "100%"), status: progressing(0, time.Minute),
			nodes: func() []Node {
				n := onCanary(fleet(20, 1, "old"), -30*time.Second, i[0])
				n[i[0]].Pod.Failure = "CrashLoopBackOff"
				return n
			}(),
			revision: "new", wantPhase: slmopsv1alpha1.PhaseRolledBack, wantStable: "old", wantCanary: "new",
			wantLabels: map[string]string{o[0]: "old"},
			wantRevs:   []string{"new", "old"}, wantEvents: "RolledBack",
			wantFailing: []string{o[0] + ":CrashLoopBackOff"},
		},
		"with rollbackPolicy Manual a failed canary stays Degraded": {
			spec: func() slmopsv1alpha1.EdgeRolloutSpec {
				s := spec("20%", "100%")
				s.RollbackPolicy = slmopsv1alpha1.RollbackManual
				return s
			}(),
			status: progressing(0, time.Minute),
			nodes: func() []Node {
				n := onCanary(fleet(20, 1, "old"), -30*time.Second, i[0])
				n[i[0]].Pod.Failure = "CrashLoopBackOff"
				return n
			}(),
			revision: "new", wantPhase: slmopsv1alpha1.PhaseDegraded, wantStable: "old", wantCanary: "new",
			wantRevs: []string{"new", "old"}, wantEvents: "Degraded",
			wantFailing: []string{o[0] + ":CrashLoopBackOff"},
		},
		"a rolled-back revision stays rolled back until retried": {
			spec: spec("20%", "100%"),
			status: func() slmopsv1alpha1.EdgeRolloutStatus {
				st := progressing(0, time.Hour)
				st.Phase = slmopsv1alpha1.PhaseRolledBack
				return st
			}(),
			nodes: fleet(20, 1, "old"), revision: "new",
			wantPhase: slmopsv1alpha1.PhaseRolledBack, wantStable: "old", wantCanary: "new", wantRevs: []string{"old"},
		},
		"retry starts a rolled-back canary again": {
			spec: spec("20%", "100%"), annotations: map[string]string{slmopsv1alpha1.RetryAnnotation: "r1"},
			status: func() slmopsv1alpha1.EdgeRolloutStatus {
				st := progressing(0, time.Hour)
				st.Phase = slmopsv1alpha1.PhaseRolledBack
				return st
			}(),
			nodes: fleet(20, 1, "old"), revision: "new",
			wantPhase: slmopsv1alpha1.PhaseProgressing, wantStable: "old", wantCanary: "new",
			wantLabels: map[string]string{o[0]: "new", o[1]: "new"},
			wantRevs:   []string{"new", "old"}, wantEvents: "Retried",
		},
		"abort sends the cohort back to stable": {
			spec: spec("20%", "100%"), annotations: map[string]string{slmopsv1alpha1.AbortAnnotation: "a1"},
			status:   progressing(0, time.Minute),
			nodes:    onCanary(fleet(20, 1, "old"), time.Minute, i[0]),
			revision: "new", wantPhase: slmopsv1alpha1.PhaseAborted, wantStable: "old", wantCanary: "new",
			wantLabels: map[string]string{o[0]: "old"},
			wantRevs:   []string{"new", "old"}, wantEvents: "Aborted",
		},
		"abort sends a Degraded cohort back to stable": {
			spec: spec("20%", "100%"), annotations: map[string]string{slmopsv1alpha1.AbortAnnotation: "a1"},
			status: func() slmopsv1alpha1.EdgeRolloutStatus {
				st := progressing(0, time.Minute)
				st.Phase = slmopsv1alpha1.PhaseDegraded
				return st
			}(),
			nodes: func() []Node {
				n := onCanary(fleet(20, 1, "old"), time.Minute, i[0])
				n[i[0]].Pod.Failure = "CrashLoopBackOff"
				return n
			}(),
			revision: "new", wantPhase: slmopsv1alpha1.PhaseAborted, wantStable: "old", wantCanary: "new",
			wantLabels: map[string]string{o[0]: "old"},
			wantRevs:   []string{"new", "old"}, wantEvents: "Aborted",
		},
		"spec.paused switches nobody": {
			spec: func() slmopsv1alpha1.EdgeRolloutSpec {
				s := spec("20%", "100%")
				s.Paused = true
				return s
			}(),
			status: progressing(0, time.Minute), nodes: fleet(20, 1, "old"), revision: "new",
			wantPhase: slmopsv1alpha1.PhasePaused, wantStable: "old", wantCanary: "new", wantRevs: []string{"new", "old"},
		},
		"a newer revision supersedes a running canary": {
			spec: spec("20%", "100%"), status: progressing(0, time.Minute),
			nodes:    onCanary(fleet(20, 1, "old"), time.Minute, i[0], i[1]),
			revision: "newer", wantPhase: slmopsv1alpha1.PhaseProgressing, wantStable: "old", wantCanary: "newer",
			// node-002 and node-015 are first in cohort order: they switch to the
			// newer canary within the budget.
			wantLabels: map[string]string{o[0]: "newer", o[1]: "newer"},
			wantRevs:   []string{"new", "newer", "old"}, wantEvents: "CanarySuperseded,CanaryStarted",
		},
		"nodes that leave the selector lose their label; nodes that join get the stable revision": {
			spec: spec("100%"), status: slmopsv1alpha1.EdgeRolloutStatus{Phase: slmopsv1alpha1.PhaseCompleted, StableRevision: "old"},
			nodes: func() []Node {
				n := fleet(4, 1, "old")
				n[0].Target = false
				n[3].Revision, n[3].Pod = "", Pod{}
				return n
			}(),
			revision: "old", wantPhase: slmopsv1alpha1.PhaseProgressing, wantStable: "old",
			wantLabels: map[string]string{"node-000": "", "node-003": "old"},
			wantRevs:   []string{"old"},
		},
		"a fleet on the stable revision is Completed": {
			spec: spec("100%"), status: slmopsv1alpha1.EdgeRolloutStatus{Phase: slmopsv1alpha1.PhaseProgressing, StableRevision: "old"},
			nodes: fleet(4, 1, "old"), revision: "old",
			wantPhase: slmopsv1alpha1.PhaseCompleted, wantStable: "old", wantRevs: []string{"old"},
			checkCounter: func(t *testing.T, st slmopsv1alpha1.EdgeRolloutStatus) {
				if st.TargetNodes != 4 || st.ReadyNodes != 4 || st.UpdatedNodes != 4 || st.UnavailableNodes != 0 {
					t.Errorf("counts: target %d ready %d updated %d unavailable %d", st.TargetNodes, st.ReadyNodes, st.UpdatedNodes, st.UnavailableNodes)
				}
			},
		},
		"Skip leaves an unreachable node out of the cohort": {
			spec: spec("10%", "100%"), status: progressing(0, time.Second),
			nodes: func() []Node {
				n := fleet(20, 1, "old")
				n[i[0]].Reachable = false // first in cohort order
				return n
			}(),
			revision: "new", wantPhase: slmopsv1alpha1.PhaseProgressing, wantStable: "old", wantCanary: "new",
			wantLabels: map[string]string{o[1]: "new", o[2]: "new"},
			wantRevs:   []string{"new", "old"},
			checkCounter: func(t *testing.T, st slmopsv1alpha1.EdgeRolloutStatus) {
				if st.UnreachableNodes != 1 {
					t.Errorf("unreachableNodes = %d, want 1", st.UnreachableNodes)
				}
			},
		},
		"Wait keeps an unreachable node in the cohort and holds the step": {
			spec: func() slmopsv1alpha1.EdgeRolloutSpec {
				s := spec("10%", "100%")
				s.Strategy.Canary.UnreachableNodes.Policy = slmopsv1alpha1.UnreachableNodesWait
				return s
			}(),
			status: progressing(0, time.Minute),
			nodes: func() []Node {
				n := onCanary(fleet(20, 1, "old"), time.Minute, i[1])
				n[i[0]].Reachable = false
				return n
			}(),
			revision: "new", wantPhase: slmopsv1alpha1.PhaseProgressing, wantStable: "old", wantCanary: "new",
			// Unreachable: it keeps its label while away and switches when it
			// returns, within maxUnavailable.
			wantLabels: nil,
			wantRevs:   []string{"new", "old"}, wantRequeue: 9 * time.Minute,
		},
		"Wait goes on without the unreachable node after its deadline": {
			spec: func() slmopsv1alpha1.EdgeRolloutSpec {
				s := spec("10%", "100%")
				s.Strategy.Canary.UnreachableNodes.Policy = slmopsv1alpha1.UnreachableNodesWait
				return s
			}(),
			status: progressing(0, 11*time.Minute),
			nodes: func() []Node {
				n := onCanary(fleet(20, 1, "old"), time.Minute, i[1], i[2])
				n[i[0]].Reachable = false
				return n
			}(),
			// The step completes without it; the next step (all nodes) waits
			// for it afresh and switches it once it is back.
			revision: "new", wantPhase: slmopsv1alpha1.PhaseProgressing, wantStable: "old", wantCanary: "new", wantStep: 1,
			wantRevs: []string{"new", "old"}, wantEvents: "StepPromoted",
			wantLabels: map[string]string{o[3]: "new", o[4]: "new"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			p := planFor(Input{
				Generation: 1, Spec: tc.spec, Annotations: tc.annotations, Status: tc.status,
				Revision: tc.revision, Digest: "sha256:x", Nodes: tc.nodes, Now: t0,
			})
			st := p.Status
			got := fmt.Sprintf("phase=%s step=%d stable=%s canary=%s", st.Phase, st.CurrentStep, st.StableRevision, st.CanaryRevision)
			want := fmt.Sprintf("phase=%s step=%d stable=%s canary=%s", tc.wantPhase, tc.wantStep, tc.wantStable, tc.wantCanary)
			if got != want {
				t.Errorf("got  %s\nwant %s\n(message %q)", got, want, condMessage(st))
			}
			if diff := cmp.Diff(tc.wantLabels, labelChanges(p)); diff != "" {
				t.Errorf("labels (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantRevs, p.Revisions); diff != "" {
				t.Errorf("DaemonSet revisions (-want +got):\n%s", diff)
			}
			if got := reasons(p); got != tc.wantEvents {
				t.Errorf("events = %q, want %q", got, tc.wantEvents)
			}
			if p.RequeueAfter != tc.wantRequeue {
				t.Errorf("requeueAfter = %s, want %s", p.RequeueAfter, tc.wantRequeue)
			}
			var failing []string
			for _, f := range st.FailingNodes {
				failing = append(failing, f.Node+":"+f.Reason)
			}
			if diff := cmp.Diff(tc.wantFailing, failing); diff != "" {
				t.Errorf("failing nodes (-want +got):\n%s", diff)
			}
			if tc.checkCounter != nil {
				tc.checkCounter(t, st)
			}
		})
	}
}

func condMessage(st slmopsv1alpha1.EdgeRolloutStatus) string {
	for _, c := range st.Conditions {
		if c.Status == metav1.ConditionTrue && c.Type != slmopsv1alpha1.ConditionReconciling && c.Type != slmopsv1alpha1.ConditionStalled {
			return c.Message
		}
	}
	return ""
}

func TestCohortFollowsTopology(t *testing.T) {
	nodes := fleet(12, 3, "old")
	spread := spec("100%").Strategy.Canary
	spread.TopologyKey = "topology.kubernetes.io/zone"
	sites := func(c map[string]bool) map[string]int {
		out := map[string]int{}
		for _, n := range nodes {
			if c[n.Name] {
				out[n.Site]++
			}
		}
		return out
	}
	if diff := cmp.Diff(map[string]int{"site-0": 2, "site-1": 2, "site-2": 2}, sites(selectCohort(cohortOrder(pointers(nodes), &spread), "new", 6, false, nil))); diff != "" {
		t.Errorf("Spread: nodes per site (-want +got):\n%s", diff)
	}
	bySite := spread
	bySite.TopologyOrder = slmopsv1alpha1.TopologySiteBySite
	if diff := cmp.Diff(map[string]int{"site-0": 4, "site-1": 2}, sites(selectCohort(cohortOrder(pointers(nodes), &bySite), "new", 6, false, nil))); diff != "" {
		t.Errorf("SiteBySite: nodes per site (-want +got):\n%s", diff)
	}
	// A growing cohort keeps the nodes it had: no churn between steps.
	small := selectCohort(cohortOrder(pointers(nodes), &spread), "new", 3, false, nil)
	for name := range small {
		for i := range nodes {
			if nodes[i].Name == name {
				nodes[i].Revision = "new"
			}
		}
	}
	big := selectCohort(cohortOrder(pointers(nodes), &spread), "new", 9, false, nil)
	for name := range small {
		if !big[name] {
			t.Errorf("node %s left the cohort when it grew", name)
		}
	}
}

func TestStepSize(t *testing.T) {
	steps := spec("5%", "3", "25%", "100%").Strategy.Canary.Steps
	var got []int
	for i := range steps {
		got = append(got, stepSize(steps, i, 200))
	}
	// 5% of 200 is 10; a later count of 3 never shrinks the cohort.
	if diff := cmp.Diff([]int{10, 10, 50, 200}, got); diff != "" {
		t.Errorf("step sizes (-want +got):\n%s", diff)
	}
	if got := stepSize(spec("1%", "100%").Strategy.Canary.Steps, 0, 7); got != 1 {
		t.Errorf("1%% of 7 nodes = %d, want 1 (rounded up)", got)
	}
}

// TestPlanIsStable: applying a plan's labels and status and planning again
// converges (no flapping), whatever order the nodes come in.
func TestPlanIsStable(t *testing.T) {
	s := spec("25%", "100%")
	nodes := fleet(16, 4, "old")
	st := slmopsv1alpha1.EdgeRolloutStatus{Phase: slmopsv1alpha1.PhaseCompleted, StableRevision: "old"}
	now := t0
	for round := 0; round < 60 && st.Phase != slmopsv1alpha1.PhaseCompleted || round == 0; round++ {
		sort.Slice(nodes, func(i, j int) bool { return (nodes[i].Name < nodes[j].Name) == (round%2 == 0) })
		p := planFor(Input{Generation: 1, Spec: s, Status: st, Revision: "new", Nodes: nodes, Now: now})
		st = p.Status
		for i := range nodes {
			if rev, ok := p.Labels[nodes[i].Name]; ok {
				nodes[i].Revision = rev
				// The new pod becomes ready a little later.
				nodes[i].Pod = Pod{Exists: true, Ready: true, Since: now}
			}
		}
		now = now.Add(15 * time.Second)
	}
	if st.Phase != slmopsv1alpha1.PhaseCompleted || st.StableRevision != "new" {
		t.Fatalf("did not converge: phase %s stable %s canary %s", st.Phase, st.StableRevision, st.CanaryRevision)
	}
	for _, n := range nodes {
		if n.Revision != "new" {
			t.Errorf("%s runs %q", n.Name, n.Revision)
		}
	}
}
