package plan

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/inferd/config"
	"github.com/slmops/slmops/test/testutil"
)

// The two hardware classes of these tests: small ARM boards and larger x86
// boxes, half of the fleet each.
const (
	armClass = "arm64/rpi4"
	x86Class = "amd64/nuc"
)

// classFleet is n nodes on "old", alternately of armClass and x86Class, each
// with a ready pod whose self-test measured speed(class, "old").
func classFleet(n int, speed func(class, rev string) float64) []Node {
	nodes := fleet(n, 2, "old")
	for i := range nodes {
		nodes[i].Class = armClass
		if i%2 == 1 {
			nodes[i].Class = x86Class
		}
		nodes[i].Pod.Report = report(speed(nodes[i].Class, "old"))
	}
	return nodes
}

// report is a passed self-test that decoded at tps tokens/s.
func report(tps float64) *config.Report {
	return &config.Report{Passed: true, Reason: config.ReasonPassed, DecodeTokensPerSecond: tps, TimeToFirstTokenSeconds: 10 / tps}
}

// rollOn applies a plan's label changes to nodes the way the cluster would,
// at once: a node moved to a revision gets a ready pod whose self-test
// measured speed(class, revision), ready long enough to count.
func rollOn(nodes []Node, p Plan, speed func(class, rev string) float64) {
	for i := range nodes {
		n := &nodes[i]
		if rev, ok := p.Labels[n.Name]; ok {
			n.Revision = rev
			n.Pod = Pod{Exists: true, Ready: true, Since: t0.Add(-time.Hour), Report: report(speed(n.Class, rev))}
		}
	}
}

// drive plans and applies rounds until the rollout stops moving (or 30
// rounds), and returns the last plan.
func drive(t *testing.T, s slmopsv1alpha1.EdgeRolloutSpec, nodes []Node, speed func(class, rev string) float64) Plan {
	t.Helper()
	st := progressing(0, time.Hour)
	var p Plan
	for range 30 {
		p = planFor(Input{Generation: 1, Spec: s, Status: st, Revision: "new", Digest: "sha256:new", Nodes: nodes, Now: t0})
		st = p.Status
		rollOn(nodes, p, speed)
		if len(p.Labels) == 0 && !Active(st.Phase) {
			return p
		}
	}
	return p
}

func classSpec(scope slmopsv1alpha1.AnalysisScope) slmopsv1alpha1.EdgeRolloutSpec {
	s := spec("10%", "50%", "100%")
	s.Strategy.Canary.MinReadySeconds = ptr.To[int32](0)
	s.Strategy.Canary.MaxUnavailable = ptr.To(intstr.FromString("100%"))
	s.Analysis.MinRelativeThroughput = "0.9"
	s.Analysis.Scope = scope
	return s
}

// TestTheCanaryMustKeepUpWithStable: with minRelativeThroughput, a canary
// whose self-tests decode at half the stable revision's rate on a class
// fails its first step with SlowerThanStable and both figures; one that
// keeps up completes.
func TestTheCanaryMustKeepUpWithStable(t *testing.T) {
	halfOnARM := func(class, rev string) float64 {
		if rev == "new" && class == armClass {
			return 5
		}
		return 10
	}
	nodes := classFleet(40, halfOnARM)
	p := drive(t, classSpec(slmopsv1alpha1.AnalysisScopeFleet), nodes, halfOnARM)
	if p.Status.Phase != slmopsv1alpha1.PhaseRolledBack || p.Status.CurrentStep != 0 {
		t.Fatalf("phase %s at step %d; want RolledBack at step 1", p.Status.Phase, p.Status.CurrentStep+1)
	}
	c := meta.FindStatusCondition(p.Status.Conditions, slmopsv1alpha1.ConditionDegraded)
	if c == nil || c.Reason != slmopsv1alpha1.ReasonSlowerThanStable {
		t.Fatalf("Degraded condition %+v; want reason SlowerThanStable", c)
	}
	for _, want := range []string{"on class " + armClass, "decodes 5 tokens/s", "0.5 of stable's 10", "below minRelativeThroughput 0.9"} {
		if !strings.Contains(c.Message, want) {
			t.Errorf("message %q lacks %q", c.Message, want)
		}
	}
	if strings.Contains(c.Message, x86Class) {
		t.Errorf("message %q blames the class that kept up", c.Message)
	}
	for _, n := range nodes {
		if n.Revision != "old" {
			t.Errorf("node %s of %s runs %s after the rollback", n.Name, n.Class, n.Revision)
		}
	}

	same := func(string, string) float64 { return 10 }
	nodes = classFleet(40, same)
	if p := drive(t, classSpec(slmopsv1alpha1.AnalysisScopeFleet), nodes, same); p.Status.Phase != slmopsv1alpha1.PhaseCompleted {
		t.Errorf("phase %s (%s); a canary as fast as stable completes", p.Status.Phase, condMessage(p.Status))
	}
}

// TestPerClassRollbackKeepsTheSlowClassOnStable: under scope HardwareClass
// the class that is too slow goes back to the stable revision and sits out
// the later steps, the other class completes, the rollout says
// PartiallyRolledBack, and the slow class stays on the old revision (its
// DaemonSet kept, its digest pinned) until a later canary reaches it.
func TestPerClassRollbackKeepsTheSlowClassOnStable(t *testing.T) {
	halfOnARM := func(class, rev string) float64 {
		if rev == "new" && class == armClass {
			return 5
		}
		return 10
	}
	nodes := classFleet(40, halfOnARM)
	p := drive(t, classSpec(slmopsv1alpha1.AnalysisScopeHardwareClass), nodes, halfOnARM)
	st := p.Status
	if st.Phase != slmopsv1alpha1.PhaseCompleted || st.StableRevision != "new" {
		t.Fatalf("phase %s, stable %s (%s); want Completed on new for the class that kept up", st.Phase, st.StableRevision, condMessage(st))
	}
	if len(st.ExcludedClasses) != 1 || st.ExcludedClasses[0].Name != armClass || st.ExcludedClasses[0].Revision != "old" ||
		st.ExcludedClasses[0].Reason != slmopsv1alpha1.ReasonSlowerThanStable || !strings.Contains(st.ExcludedClasses[0].Message, "0.5 of stable's 10") {
		t.Fatalf("excluded classes %+v; want %s on old, SlowerThanStable with the figures", st.ExcludedClasses, armClass)
	}
	c := meta.FindStatusCondition(st.Conditions, slmopsv1alpha1.ConditionPartiallyRolledBack)
	if c == nil || c.Status != "True" || !strings.Contains(c.Message, armClass+" stays on revision old") {
		t.Errorf("PartiallyRolledBack %+v; want True naming %s", c, armClass)
	}
	if !strings.Contains(condMessage(st), "revision new is stable on 20 target nodes; excluded hardware classes: 1") {
		t.Errorf("Ready message %q does not mention the class left on old", condMessage(st))
	}
	for _, n := range nodes {
		want := "new"
		if n.Class == armClass {
			want = "old"
		}
		if n.Revision != want {
			t.Errorf("node %s of %s runs %s; want %s", n.Name, n.Class, n.Revision, want)
		}
	}
	for _, hc := range st.HardwareClasses {
		want := "new"
		if hc.Name == armClass {
			want = "old"
		}
		if hc.Stable == nil || hc.Stable.Revision != want || hc.Stable.Nodes != 20 {
			t.Errorf("class %s's stable figures %+v; want its 20 nodes on %s", hc.Name, hc.Stable, want)
		}
	}
	if !strings.Contains(strings.Join(p.Revisions, ","), "old") {
		t.Errorf("revisions in use %v drop old, which the ARM class runs", p.Revisions)
	}
	oldDS := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{
		Labels:      map[string]string{slmopsv1alpha1.RevisionLabel: "old"},
		Annotations: map[string]string{slmopsv1alpha1.ModelDigestAnnotation: testutil.Digest(7)},
	}}
	if pins := CachePins(&st, nil, []*appsv1.DaemonSet{oldDS}); !slices.Contains(pins, testutil.Digest(7)) {
		t.Errorf("cache pins %v drop old's file, which the ARM class runs", pins)
	}
	// The steady state holds: nothing moves back.
	again := planFor(Input{Generation: 1, Spec: classSpec(slmopsv1alpha1.AnalysisScopeHardwareClass), Status: st, Revision: "new", Nodes: nodes, Now: t0})
	if len(again.Labels) != 0 || again.Status.Phase != slmopsv1alpha1.PhaseCompleted {
		t.Errorf("a completed partial rollout moves nodes %v, phase %s", again.Labels, again.Status.Phase)
	}
	if want := "all 40 target nodes run their revision: 20 run new, 20 of excluded hardware classes stay on their own"; !strings.Contains(condMessage(again.Status), want) {
		t.Errorf("steady Ready message %q; want %q", condMessage(again.Status), want)
	}

	// A later canary that keeps up on ARM too reaches the class and clears it.
	fast := func(string, string) float64 { return 10 }
	st2 := again.Status
	var p2 Plan
	for range 30 {
		p2 = planFor(Input{Generation: 2, Spec: classSpec(slmopsv1alpha1.AnalysisScopeHardwareClass), Status: st2, Revision: "newer", Digest: "sha256:newer", Nodes: nodes, Now: t0})
		st2 = p2.Status
		rollOn(nodes, p2, fast)
		if len(p2.Labels) == 0 && !Active(st2.Phase) {
			break
		}
	}
	if st2.Phase != slmopsv1alpha1.PhaseCompleted || st2.StableRevision != "newer" || len(st2.ExcludedClasses) != 0 {
		t.Errorf("phase %s, stable %s, excluded %v; want Completed on newer everywhere", st2.Phase, st2.StableRevision, st2.ExcludedClasses)
	}
	if meta.FindStatusCondition(st2.Conditions, slmopsv1alpha1.ConditionPartiallyRolledBack) != nil {
		t.Error("PartiallyRolledBack stays after every class moved on")
	}
}

// TestWhenEveryClassFailsTheCanaryFails: under scope HardwareClass, a
// canary that fails on every class fails as a whole (RolledBack), with no
// class listed as excluded.
func TestWhenEveryClassFailsTheCanaryFails(t *testing.T) {
	slow := func(_ string, rev string) float64 {
		if rev == "new" {
			return 3
		}
		return 10
	}
	nodes := classFleet(40, slow)
	p := drive(t, classSpec(slmopsv1alpha1.AnalysisScopeHardwareClass), nodes, slow)
	if p.Status.Phase != slmopsv1alpha1.PhaseRolledBack || len(p.Status.ExcludedClasses) != 0 {
		t.Errorf("phase %s, excluded classes %v; want RolledBack with no class excluded", p.Status.Phase, p.Status.ExcludedClasses)
	}
}

// TestCrashingNodesFailOnlyTheirClass: under scope HardwareClass, canary
// pods that crash on one class roll back that class with CanaryFailed.
func TestCrashingNodesFailOnlyTheirClass(t *testing.T) {
	same := func(string, string) float64 { return 10 }
	nodes := classFleet(40, same)
	s := classSpec(slmopsv1alpha1.AnalysisScopeHardwareClass)
	st := progressing(0, time.Hour)
	var p Plan
	for range 30 {
		p = planFor(Input{Generation: 1, Spec: s, Status: st, Revision: "new", Nodes: nodes, Now: t0})
		st = p.Status
		rollOn(nodes, p, same)
		for i := range nodes {
			if nodes[i].Class == armClass && nodes[i].Revision == "new" {
				nodes[i].Pod = Pod{Exists: true, Since: t0.Add(-time.Hour), Failure: "CrashLoopBackOff", Restarts: 4}
			}
		}
		if len(p.Labels) == 0 && !Active(st.Phase) {
			break
		}
	}
	if st.Phase != slmopsv1alpha1.PhaseCompleted || len(st.ExcludedClasses) != 1 || st.ExcludedClasses[0].Reason != slmopsv1alpha1.ReasonCanaryFailed {
		t.Fatalf("phase %s, excluded %+v; want Completed with %s excluded for CanaryFailed", st.Phase, st.ExcludedClasses, armClass)
	}
	if !strings.Contains(reasons(p)+fmt.Sprint(st.ExcludedClasses), armClass) {
		t.Errorf("the excluded class is not named: %+v", st.ExcludedClasses)
	}
}

// TestClassStatusIsBounded: classes are listed largest first, with both
// revisions' figures, at most 16 and the rest added up under "(other)".
func TestClassStatusIsBounded(t *testing.T) {
	nodes := fleet(200, 4, "old")
	for i := range nodes {
		nodes[i].Class = fmt.Sprintf("class-%02d", i%20)
		if i < 20 {
			nodes[i].Class = "class-00" // the largest
		}
		nodes[i].Pod.Report = report(float64(10 + i%5))
	}
	onCanary(nodes, time.Hour, 0, 1, 2)
	for _, i := range []int{0, 1, 2} {
		nodes[i].Pod.Report = report(float64(4 + i))
	}
	p := planFor(Input{Generation: 1, Spec: spec("10%", "100%"), Status: progressing(0, time.Minute), Revision: "new", Nodes: nodes, Now: t0})
	hc := p.Status.HardwareClasses
	if len(hc) != 17 || hc[16].Name != otherClass {
		t.Fatalf("%d classes, last %q; want 16 and %q", len(hc), hc[len(hc)-1].Name, otherClass)
	}
	total := int32(0)
	for _, c := range hc {
		total += c.Nodes
	}
	if total != 200 {
		t.Errorf("the classes add up to %d nodes; want 200", total)
	}
	first := hc[0]
	if first.Name != "class-00" || first.Canary == nil || first.Canary.Nodes != 3 || first.Canary.DecodeTokensPerSecondP50 != "5" || first.Canary.DecodeTokensPerSecondP90 != "6" {
		t.Errorf("largest class %+v, canary %+v; want class-00 with 3 canary nodes at p50 5, p90 6", first, first.Canary)
	}
	if first.Stable == nil || first.Stable.Reports == 0 || first.Stable.Revision != "old" {
		t.Errorf("largest class's stable figures %+v", first.Stable)
	}
}

// TestAStepWaitsForTheReportsItCompares: with minRelativeThroughput, a
// cohort whose pods turned Ready but whose self-test reports have not
// arrived is not promoted on readiness alone: the step waits
// (WaitingForReports) and wakes when the wait ends. Once the reports say
// the ARM canary is at half stable's rate, it fails with SlowerThanStable;
// reports that never come hold the step for reportGrace, no longer.
func TestAStepWaitsForTheReportsItCompares(t *testing.T) {
	halfOnARM := func(class, rev string) float64 {
		if rev == "new" && class == armClass {
			return 5
		}
		return 10
	}
	s := classSpec(slmopsv1alpha1.AnalysisScopeFleet)
	// Ready pods of the canary, just now, without reports.
	start := func() ([]Node, slmopsv1alpha1.EdgeRolloutStatus) {
		nodes := classFleet(40, halfOnARM)
		p := planFor(Input{Generation: 1, Spec: s, Status: progressing(0, time.Hour), Revision: "new", Digest: "sha256:new", Nodes: nodes, Now: t0})
		if len(p.Labels) == 0 {
			t.Fatalf("no cohort for the first step: %s", condMessage(p.Status))
		}
		for i := range nodes {
			if rev, ok := p.Labels[nodes[i].Name]; ok {
				nodes[i].Revision = rev
				nodes[i].Pod = Pod{Exists: true, Ready: true, Since: t0}
			}
		}
		return nodes, p.Status
	}

	nodes, st := start()
	p := planFor(Input{Generation: 1, Spec: s, Status: st, Revision: "new", Digest: "sha256:new", Nodes: nodes, Now: t0.Add(time.Second)})
	if p.Status.Phase != slmopsv1alpha1.PhaseProgressing || p.Status.CurrentStep != 0 {
		t.Fatalf("phase %s at step %d before the reports; want Progressing at step 1", p.Status.Phase, p.Status.CurrentStep+1)
	}
	if r := conditionReason(p.Status, slmopsv1alpha1.ConditionProgressing); r != slmopsv1alpha1.ReasonWaitingForReports {
		t.Fatalf("reason %q (%s); want %s", r, condMessage(p.Status), slmopsv1alpha1.ReasonWaitingForReports)
	}
	if due := t0.Add(reportGrace); p.RequeueAfter <= 0 || p.RequeueAfter > due.Sub(t0.Add(time.Second)) {
		t.Errorf("requeue after %s; want a wake by the end of the wait (%s)", p.RequeueAfter, due.Sub(t0.Add(time.Second)))
	}

	// The reports arrive: the ARM canary is too slow.
	st = p.Status
	for i := range nodes {
		if nodes[i].Revision == "new" {
			nodes[i].Pod.Report = report(halfOnARM(nodes[i].Class, "new"))
		}
	}
	p = planFor(Input{Generation: 1, Spec: s, Status: st, Revision: "new", Digest: "sha256:new", Nodes: nodes, Now: t0.Add(2 * time.Second)})
	if p.Status.Phase != slmopsv1alpha1.PhaseRolledBack {
		t.Fatalf("phase %s (%s) once the reports came; want RolledBack", p.Status.Phase, condMessage(p.Status))
	}
	if c := meta.FindStatusCondition(p.Status.Conditions, slmopsv1alpha1.ConditionDegraded); c == nil || c.Reason != slmopsv1alpha1.ReasonSlowerThanStable {
		t.Fatalf("Degraded condition %+v; want SlowerThanStable", c)
	}

	// Reports that never come hold the step for reportGrace only.
	nodes, st = start()
	p = planFor(Input{Generation: 1, Spec: s, Status: st, Revision: "new", Digest: "sha256:new", Nodes: nodes, Now: t0.Add(reportGrace)})
	if p.Status.CurrentStep != 1 {
		t.Fatalf("step %d (%s) %s after the pods turned Ready without reports; want step 2", p.Status.CurrentStep+1, condMessage(p.Status), reportGrace)
	}

	// Without a comparison in the analysis, readiness alone promotes.
	s.Analysis.MinRelativeThroughput = ""
	nodes, st = start()
	p = planFor(Input{Generation: 1, Spec: s, Status: st, Revision: "new", Digest: "sha256:new", Nodes: nodes, Now: t0.Add(time.Second)})
	if p.Status.CurrentStep != 1 {
		t.Fatalf("step %d (%s) without a comparison; want step 2", p.Status.CurrentStep+1, condMessage(p.Status))
	}
}
