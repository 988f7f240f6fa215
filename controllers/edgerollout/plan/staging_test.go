package plan

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/inferd/config"
	"github.com/slmops/slmops/test/testutil"
)

// stagingSpec is spec(steps...) with staging of at most limit nodes at once.
func stagingSpec(limit int32, sharing bool, steps ...string) slmopsv1alpha1.EdgeRolloutSpec {
	s := spec(steps...)
	s.Strategy.Canary.TopologyKey = "zone"
	s.Distribution.Staging = &slmopsv1alpha1.Staging{LookaheadSteps: ptr.To[int32](1), MaxConcurrentNodes: limit}
	if sharing {
		s.Distribution.PeerSharing = &slmopsv1alpha1.PeerSharing{MaxPeers: 3}
	}
	return s
}

// withSites sets each node's peer site from its canary site.
func withSites(nodes []Node) []Node {
	for i := range nodes {
		nodes[i].PeerSite = nodes[i].Site
	}
	return nodes
}

func stageWith(n *Node, rev string, ready bool) {
	n.StageRevision = rev
	n.Stage = Pod{Exists: true, Ready: ready, Since: t0.Add(-time.Minute)}
}

func planOf(s slmopsv1alpha1.EdgeRolloutSpec, st slmopsv1alpha1.EdgeRolloutStatus, nodes []Node) Plan {
	return planFor(Input{Generation: 1, Spec: s, Status: st, Revision: "new", Digest: "sha256:new", Nodes: nodes, Now: t0,
		Artifacts: []Artifact{{Name: slmopsv1alpha1.DefaultVariant, Digest: "sha256:new", SizeBytes: ptr.To[int64](2 << 30)}}})
}

func stageStarts(p Plan) []string {
	var out []string
	for n, rev := range p.StageLabels {
		if rev != "" {
			out = append(out, n)
		}
	}
	return out
}

func TestNoNodeJoinsTheCohortBeforeItStaged(t *testing.T) {
	nodes := withSites(fleet(20, 2, "old"))
	p := planOf(stagingSpec(4, false, "25%", "100%"), progressing(0, time.Minute), nodes)
	for n, rev := range p.Labels {
		if rev == "new" {
			t.Errorf("node %s joins the canary before it staged", n)
		}
	}
	if got := stageStarts(p); len(got) != 4 {
		t.Errorf("%d nodes start staging (%v); want the budget, 4", len(got), got)
	}
	if c := conditionReason(p.Status, slmopsv1alpha1.ConditionProgressing); c != "WaitingForStaging" {
		t.Errorf("reason %q, want WaitingForStaging", c)
	}
	ds := p.Status.Distribution
	if ds == nil || ds.StagingNodes != 4 || ds.WaitingNodes != 16 || ds.StagedNodes != 0 || p.StageRevision != "new" {
		t.Errorf("distribution %+v, stage revision %q; want 4 staging, 16 waiting, revision new", ds, p.StageRevision)
	}

	// Staged nodes join, within maxUnavailable (10% of 20: 2 at a time).
	staged := map[string]bool{}
	for _, n := range stageStarts(p) {
		staged[n] = true
	}
	for i := range nodes {
		if staged[nodes[i].Name] {
			stageWith(&nodes[i], "new", true)
		}
	}
	p = planOf(stagingSpec(4, false, "25%", "100%"), progressing(0, time.Minute), nodes)
	joined := 0
	for n, rev := range p.Labels {
		if rev == "new" {
			joined++
			if !staged[n] {
				t.Errorf("node %s joins without having staged", n)
			}
		}
	}
	if joined != 2 {
		t.Errorf("%d staged nodes join; want 2 (maxUnavailable)", joined)
	}
	if got := stageStarts(p); len(got) != 4 {
		t.Errorf("%d more nodes start staging once 4 staged; want 4 (the next step is 100%%)", len(got))
	}
}

func TestPeerSharingSeedsEachSiteOnce(t *testing.T) {
	nodes := withSites(fleet(40, 4, "old"))
	s := stagingSpec(20, true, "50%", "100%")
	p := planOf(s, progressing(0, time.Minute), nodes)
	perSite := map[string]int{}
	for _, n := range stageStarts(p) {
		for _, ns := range nodes {
			if ns.Name == n {
				perSite[ns.PeerSite]++
			}
		}
	}
	if len(perSite) != 4 {
		t.Fatalf("seeds in %d sites (%v); want all 4", len(perSite), perSite)
	}
	for site, k := range perSite {
		if k != 1 {
			t.Errorf("site %s: %d nodes fetch before any holds the model; want one seed", site, k)
		}
	}
	// Once each seed holds the file, the rest of the budget starts.
	for i := range nodes {
		if p.StageLabels[nodes[i].Name] == "new" {
			stageWith(&nodes[i], "new", true)
		}
	}
	p = planOf(s, progressing(0, time.Minute), nodes)
	if got := len(stageStarts(p)); got != 20 {
		t.Errorf("%d nodes start once the sites are seeded; want the budget, 20", got)
	}
}

func TestANodeThatCannotStageIsExcludedNotFailed(t *testing.T) {
	nodes := withSites(fleet(10, 1, "old"))
	s := stagingSpec(10, false, "100%")
	s.Distribution.MaxExcludedNodes = ptr.To(intstr.FromString("20%"))
	for i := range nodes {
		stageWith(&nodes[i], "new", true)
	}
	nodes[3].Stage = Pod{Exists: true, Restarts: 2, Failure: "CrashLoopBackOff",
		Terminated: "InsufficientDisk: not enough free disk space: /var/lib/slmops/models has 1048576 bytes free"}
	nodes[5].Allocatable = testutil.Node(nodes[5].Name).Allocatable("1Gi", "").Obj().Status.Allocatable // the model is 2 GiB
	nodes[5].StageRevision, nodes[5].Stage = "", Pod{}

	p := planOf(s, progressing(0, time.Minute), nodes)
	if p.Status.Phase != slmopsv1alpha1.PhaseProgressing || len(p.Status.FailingNodes) != 0 {
		t.Fatalf("phase %s, failing %v; want Progressing with no failing canary node", p.Status.Phase, p.Status.FailingNodes)
	}
	for _, n := range []string{nodes[3].Name, nodes[5].Name} {
		if rev, ok := p.Labels[n]; ok {
			t.Errorf("excluded node %s is relabelled %q", n, rev)
		}
	}
	ds := p.Status.Distribution
	if ds == nil || ds.FailedNodes != 1 || ds.UnfitNodes != 1 || len(ds.ExcludedNodes) != 2 {
		t.Fatalf("distribution %+v; want 1 failed, 1 unfit, both listed", ds)
	}
	if e := ds.ExcludedNodes[0]; e.Node != nodes[3].Name || e.Reason != slmopsv1alpha1.ExcludedInsufficientDisk || !strings.HasPrefix(e.Message, "not enough free disk space") {
		t.Errorf("excluded %+v; want %s InsufficientDisk with the stager's message", e, nodes[3].Name)
	}
	if e := ds.ExcludedNodes[1]; e.Node != nodes[5].Name || e.Reason != slmopsv1alpha1.ExcludedInsufficientMemory {
		t.Errorf("excluded %+v; want %s InsufficientMemory", e, nodes[5].Name)
	}
	if p.StageLabels[nodes[3].Name] != "" || p.StageLabels[nodes[5].Name] != "" {
		t.Errorf("stage labels %v: the failed stager keeps retrying, the unfit node gets none", p.StageLabels)
	}
	if !strings.Contains(reasons(p), "NodesExcluded") {
		t.Errorf("events %s; want NodesExcluded", reasons(p))
	}

	// The other 8 run the canary: the rollout completes, the excluded
	// nodes keep the old revision.
	for i := range nodes {
		if i != 3 && i != 5 {
			onCanary(nodes, time.Hour, i)
		}
	}
	p = planOf(s, progressing(0, time.Minute), nodes)
	if p.Status.Phase != slmopsv1alpha1.PhaseCompleted {
		t.Fatalf("phase %s (%s); want Completed with 2 nodes excluded", p.Status.Phase, conditionMessage(p.Status, slmopsv1alpha1.ConditionReady))
	}
	if !strings.Contains(conditionMessage(p.Status, slmopsv1alpha1.ConditionReady), "2 target nodes excluded") {
		t.Errorf("message %q does not mention the excluded nodes", conditionMessage(p.Status, slmopsv1alpha1.ConditionReady))
	}
	if _, ok := p.Labels[nodes[3].Name]; ok {
		t.Errorf("the node that could not stage is switched after completion")
	}
	for _, rev := range p.Revisions {
		if rev == "old" {
			return
		}
	}
	t.Errorf("revisions %v drop old, which the excluded nodes still run", p.Revisions)
}

func TestStagingWindows(t *testing.T) {
	s := &slmopsv1alpha1.Staging{Windows: []slmopsv1alpha1.StagingWindow{{Start: "22:00", End: "06:00"}, {Start: "13:00", End: "13:30"}}}
	day := func(h, m int) time.Time { return time.Date(2026, 11, 28, h, m, 0, 0, time.UTC) }
	for _, c := range []struct {
		now  time.Time
		open bool
		next time.Time
	}{
		{day(12, 0), false, day(13, 0)},
		{day(13, 10), true, time.Time{}},
		{day(14, 0), false, day(22, 0)},
		{day(23, 0), true, time.Time{}},
		{day(5, 59), true, time.Time{}},
		{day(6, 0), false, day(13, 0)},
	} {
		open, next := inWindows(s, c.now)
		if open != c.open || !next.Equal(c.next) {
			t.Errorf("at %s: open %v, next %s; want %v, %s", c.now.Format("15:04"), open, next, c.open, c.next)
		}
	}
	berlin := &slmopsv1alpha1.Staging{TimeZone: "Europe/Berlin", Windows: []slmopsv1alpha1.StagingWindow{{Start: "01:00", End: "02:00"}}}
	if open, _ := inWindows(berlin, day(0, 30)); !open {
		t.Error("00:30 UTC is 01:30 in Berlin in November, inside 01:00-02:00")
	}

	// Outside the windows no stager starts, and the plan wakes at the next one.
	spec := stagingSpec(4, false, "100%")
	spec.Distribution.Staging.Windows = s.Windows
	p := planFor(Input{Generation: 1, Spec: spec, Status: progressing(0, time.Minute), Revision: "new", Nodes: withSites(fleet(10, 1, "old")), Now: day(14, 0)})
	if got := stageStarts(p); len(got) != 0 {
		t.Errorf("%d stagers start outside the windows", len(got))
	}
	if ds := p.Status.Distribution; ds == nil || ds.NextWindow == nil || !ds.NextWindow.Time.Equal(day(22, 0)) || p.RequeueAfter != 8*time.Hour {
		t.Errorf("distribution %+v, requeue %s; want next window 22:00 and a wake-up in 8h", ds, p.RequeueAfter)
	}
}

func TestFitChecksAllocatableMemoryAndDisk(t *testing.T) {
	node := func(mem, disk string) corev1.ResourceList {
		return testutil.Node("n").Allocatable(mem, disk).Obj().Status.Allocatable
	}
	const memHeadroom, diskHeadroom = 256 << 20, 1 << 30
	const model = 2 << 30
	for _, c := range []struct {
		mem, disk, want string
	}{
		{"4Gi", "64Gi", ""},
		{"2Gi", "64Gi", slmopsv1alpha1.ExcludedInsufficientMemory},
		{"4Gi", "2Gi", slmopsv1alpha1.ExcludedInsufficientDisk},
		{"2304Mi", "3Gi", ""}, // exactly model + headroom
	} {
		reason, msg := need{size: model, memory: model + memHeadroom, disk: model + diskHeadroom}.problem(node(c.mem, c.disk))
		if reason != c.want {
			t.Errorf("memory %s, disk %s: %q (%s); want %q", c.mem, c.disk, reason, msg, c.want)
		}
	}
	if r, _ := (need{}).problem(node("1Mi", "1Mi")); r != "" {
		t.Errorf("a model of unknown size is judged unfit: %s", r)
	}
}

// TestFitUsesInferdsEstimateOnceAPodReportedIt: before any pod of the
// revision reported, memory is judged by sizeBytes plus memoryHeadroom;
// once one reported inferd's estimate (weights and KV cache at the
// context), by the estimate plus inferd's own memory, in both directions: a
// node the headroom would have let through is excluded when the KV cache is
// large, and one it would have excluded is let in when the estimate is
// small. A report of another digest, or of a pod of another revision, is
// not used.
func TestFitUsesInferdsEstimateOnceAPodReportedIt(t *testing.T) {
	const model = 2 << 30 // the artifact's sizeBytes
	alloc := func(mem string) corev1.ResourceList {
		return testutil.Node("n").Allocatable(mem, "64Gi").Obj().Status.Allocatable
	}
	in := func(reports ...config.Report) Input {
		nodes := fleet(10, 1, "old")
		for i := range nodes {
			nodes[i].Allocatable = alloc("4Gi")
		}
		nodes[8].Allocatable = alloc("3Gi")    // fits 2 GiB + 256 MiB headroom
		nodes[9].Allocatable = alloc("2200Mi") // does not
		for i, r := range reports {
			nodes[i].Revision, nodes[i].Pod = "new", Pod{Exists: true, Ready: true, Since: t0.Add(-time.Minute), Report: &r}
		}
		s := spec("10%", "100%")
		slmopsv1alpha1.DefaultEdgeRolloutSpec(&s) // memoryHeadroom 256Mi
		return Input{Generation: 1, Spec: s, Status: progressing(0, time.Minute), Revision: "new", Digest: "sha256:new", Nodes: nodes, Now: t0,
			Artifacts: []Artifact{{Name: slmopsv1alpha1.DefaultVariant, Digest: "sha256:new", SizeBytes: ptr.To[int64](model)}}}
	}
	unfit := func(in Input) map[string]string {
		out := map[string]string{}
		for n, e := range fit(in, pointers(in.Nodes)) {
			out[n] = e.Message
		}
		return out
	}
	report := func(digest string, estimate int64) config.Report {
		return config.Report{Digest: digest, Passed: true, Reason: config.ReasonPassed, MemoryEstimateBytes: estimate}
	}

	// No report yet: the headroom decides.
	if got := unfit(in()); len(got) != 1 || !strings.Contains(got["node-009"], "plus headroom") {
		t.Errorf("before any report: unfit %v; want node-009 by the headroom", got)
	}
	// A large KV cache: 2 GiB of weights and 1 GiB of cache.
	got := unfit(in(report("sha256:new", 3<<30)))
	if len(got) != 2 || got["node-008"] == "" || got["node-009"] == "" {
		t.Fatalf("estimate 3 GiB: unfit %v; want node-008 and node-009", got)
	}
	for _, want := range []string{"allocatable memory 3.0 GiB", "3.0 GiB as inferd estimated it on node-000", "plus 64.0 MiB for inferd itself (3.1 GiB in all)"} {
		if !strings.Contains(got["node-008"], want) {
			t.Errorf("message %q lacks %q", got["node-008"], want)
		}
	}
	// A small cache: 2 GiB of weights and 16 MiB; the largest report counts.
	if got := unfit(in(report("sha256:new", 2<<30+8<<20), report("sha256:new", 2<<30+16<<20))); len(got) != 0 {
		t.Errorf("estimate 2 GiB + 16 MiB: unfit %v; want every node in (2200 MiB >= 2128 MiB)", got)
	}
	if got := unfit(in(report("sha256:new", 2<<30+16<<20), report("sha256:new", 3<<30))); len(got) != 2 || !strings.Contains(got["node-009"], "on node-001") {
		t.Errorf("two reports: unfit %v; want the larger estimate, node-001's", got)
	}
	// A report of another file is not this artifact's estimate.
	if got := unfit(in(report("sha256:other", 3<<30))); len(got) != 1 || got["node-009"] == "" {
		t.Errorf("a report of another digest: unfit %v; want only node-009, by the headroom", got)
	}
	// Nor is the report of a pod of another revision (the same file at
	// another context length, say).
	old := in()
	r := report("sha256:new", 3<<30)
	old.Nodes[0].Pod.Report = &r
	if got := unfit(old); len(got) != 1 {
		t.Errorf("a stable pod's report: unfit %v; want only node-009", got)
	}
	// The estimate flows into the plan: node-008 is excluded, listed with it.
	p := planFor(in(report("sha256:new", 3<<30)))
	ds := p.Status.Distribution
	if ds == nil || ds.UnfitNodes != 2 {
		t.Fatalf("distribution %+v; want 2 unfit nodes", ds)
	}
	if _, ok := p.Labels["node-008"]; ok {
		t.Errorf("unfit node-008 is relabelled")
	}
}

// conditionReason and conditionMessage read a condition of a status.
func conditionReason(st slmopsv1alpha1.EdgeRolloutStatus, typ string) string {
	for _, c := range st.Conditions {
		if c.Type == typ {
			return c.Reason
		}
	}
	return ""
}

func conditionMessage(st slmopsv1alpha1.EdgeRolloutStatus, typ string) string {
	for _, c := range st.Conditions {
		if c.Type == typ {
			return c.Message
		}
	}
	return ""
}

// TestStagingStaysWithinTheLookahead drives the plan to a paused first step
// (cluster changes applied at once): no more nodes stage than the next
// step needs, and no more download at once than the budget.
func TestStagingStaysWithinTheLookahead(t *testing.T) {
	s := stagingSpec(50, true, "5%", "25%", "100%")
	s.Strategy.Canary.Steps[0].Pause = &slmopsv1alpha1.CanaryPause{}
	s.Strategy.Canary.MinReadySeconds = ptr.To[int32](0)
	s.Strategy.Canary.MaxUnavailable = ptr.To(intstr.FromString("100%"))
	nodes := withSites(fleet(200, 4, "old"))
	st := progressing(0, time.Minute)
	for round := range 20 {
		p := planOf(s, st, nodes)
		st = p.Status
		downloading := 0
		for i := range nodes {
			n := &nodes[i]
			if rev, ok := p.StageLabels[n.Name]; ok {
				n.StageRevision = rev
				n.Stage = Pod{}
				if rev != "" {
					n.Stage = Pod{Exists: true, Since: t0}
					downloading++
				}
			} else if n.StageRevision == "new" && !n.Stage.Ready {
				n.Stage.Ready = true // it finished since the last round
			}
			if rev, ok := p.Labels[n.Name]; ok {
				n.Revision, n.Pod = rev, Pod{Exists: true, Ready: true, Since: t0.Add(-time.Hour)}
			}
		}
		if downloading > 50 {
			t.Fatalf("round %d: %d stagers started at once; the budget is 50", round, downloading)
		}
		labelled := 0
		for _, n := range nodes {
			if n.StageRevision == "new" {
				labelled++
			}
		}
		if st.CurrentStep == 0 && labelled > 50 {
			t.Fatalf("round %d: %d nodes stage at step 1 of 5%%, 25%%, 100%%; the next step needs 50", round, labelled)
		}
	}
	if st.Phase != slmopsv1alpha1.PhasePaused || st.Distribution.StagedNodes != 50 {
		t.Errorf("phase %s, %d staged; want Paused at step 1 with the next step's 50 staged", st.Phase, st.Distribution.StagedNodes)
	}
}

// TestTheFitCheckAndTheStagerSayInsufficientDiskAlike: a node that the fit
// check excludes for its disk and one whose stager found the cache full are
// listed with one reason, which alerts and kubectl-slm match on.
func TestTheFitCheckAndTheStagerSayInsufficientDiskAlike(t *testing.T) {
	if slmopsv1alpha1.ExcludedInsufficientDisk != config.ReasonInsufficientDisk {
		t.Errorf("the fit check says %q, the stager %q", slmopsv1alpha1.ExcludedInsufficientDisk, config.ReasonInsufficientDisk)
	}
}
