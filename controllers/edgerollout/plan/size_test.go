package plan

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/inferd/config"
)

// TestTheStatusStaysSmallAtFleetScale: at 5,000 nodes, with every list at
// its worst (hundreds of failing, excluded and unfit nodes with long
// messages, more hardware classes than listed, a full history, every node
// a site of its own with the longest name a label value may have), the status
// the plan writes stays under 64 KiB, so the EdgeRollout object stays far
// from etcd's limits and kubectl slm status stays fast.
func TestTheStatusStaysSmallAtFleetScale(t *testing.T) {
	long := strings.Repeat("a long reason from inferd, ", 40)
	nodes := fleet(5000, 50, "old")
	for i := range nodes {
		n := &nodes[i]
		n.Class = fmt.Sprintf("arm64/board-%02d", i%40)
		n.Site = fmt.Sprintf("%s-%04d", strings.Repeat("s", 58), i)
		n.PeerSite = n.Site
		n.Pod.Report = report(float64(5 + i%7))
		switch i % 10 {
		case 0:
			stageFails(n, "new", config.ReasonFetchFailed, long)
		case 1:
			n.Revision, n.Pod = "new", Pod{Exists: true, Since: t0.Add(-time.Hour), Failure: "CrashLoopBackOff", Message: long}
		}
	}
	s := stagingSpec(100, true, "10%", "50%", "100%")
	st := progressing(0, time.Hour)
	for i := range 10 {
		st.History = append(st.History, slmopsv1alpha1.RevisionHistory{Revision: fmt.Sprintf("rev%07d", i), Digest: "sha256:" + strings.Repeat("ab", 32), Phase: slmopsv1alpha1.PhaseCompleted})
	}
	for i := range maxExcludedClasses {
		st.ExcludedClasses = append(st.ExcludedClasses, slmopsv1alpha1.ExcludedClass{Name: fmt.Sprintf("riscv64/board-%02d", i), Revision: "old", CanaryRevision: "new",
			Reason: slmopsv1alpha1.ReasonSlowerThanStable, Message: truncate(long, maxClassMessage)})
	}
	p := planFor(Input{Generation: 1, Spec: s, Status: st, Revision: "new", Digest: "sha256:new", Nodes: nodes, Now: t0})
	b, err := json.Marshal(p.Status)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("status of 5,000 nodes: %d bytes; %d failing, %d excluded listed, %d classes, %d excluded classes",
		len(b), len(p.Status.FailingNodes), len(p.Status.Distribution.ExcludedNodes), len(p.Status.HardwareClasses), len(p.Status.ExcludedClasses))
	if len(b) > 64<<10 {
		t.Errorf("the status of 5,000 nodes is %d bytes; want under 64 KiB", len(b))
	}
	if len(p.Status.FailingNodes) > maxFailingNodes || len(p.Status.Distribution.ExcludedNodes) > maxExcludedNodes || len(p.Status.HardwareClasses) > maxClasses+1 ||
		len(p.Status.Sites) != maxSites {
		t.Errorf("lists past their caps: %d failing, %d excluded, %d classes, %d sites", len(p.Status.FailingNodes), len(p.Status.Distribution.ExcludedNodes),
			len(p.Status.HardwareClasses), len(p.Status.Sites))
	}
	if p.Status.SiteCount != 5000 || len(p.Sites) != 5000 {
		t.Errorf("siteCount %d, %d sites for the metrics; want 5000, every site counted though %d are listed", p.Status.SiteCount, len(p.Sites), len(p.Status.Sites))
	}
	if p.Status.TargetNodes != 5000 || p.Status.Distribution.FailedNodes == 0 {
		t.Errorf("counts %d target, %d failed to stage; the counts must cover every node even when the lists are capped", p.Status.TargetNodes, p.Status.Distribution.FailedNodes)
	}
}

// TestTheStatusCountsEverySite: per site, the target nodes, those on the
// canary, the ready ones (an unreachable node's pod is not counted) and the
// failing canary nodes; sites with nodes that are not ready come first,
// then by name, and a node without the topology key is under "(none)".
func TestTheStatusCountsEverySite(t *testing.T) {
	nodes := fleet(9, 3, "old") // site-0: 0 3 6, site-1: 1 4 7, site-2: 2 5 8
	nodes = onCanary(nodes, time.Minute, 1, 4)
	nodes = onCanary(nodes, -10*time.Minute, 7) // not ready past the deadline: failing
	nodes[2].Reachable = false
	nodes[0].Site = ""
	st := progressing(1, 20*time.Minute)
	p := planFor(Input{Generation: 1, Spec: spec("10%", "50%", "100%"), Status: st, Revision: "new", Digest: "sha256:new", Nodes: nodes, Now: t0})
	var got []string
	for _, s := range p.Status.Sites {
		got = append(got, fmt.Sprintf("%s %d/%d/%d/%d", s.Name, s.TargetNodes, s.CanaryNodes, s.ReadyNodes, s.FailingNodes))
	}
	want := []string{"site-1 3/3/2/1", "site-2 3/0/2/0", "(none) 1/0/1/0", "site-0 2/0/2/0"}
	if strings.Join(got, ", ") != strings.Join(want, ", ") || p.Status.SiteCount != 4 {
		t.Errorf("sites %v (count %d); want %v (4)", got, p.Status.SiteCount, want)
	}
	if !slices.Equal(p.Sites, p.Status.Sites) {
		t.Errorf("the metrics' sites %v differ from the status's %v, with fewer sites than the cap", p.Sites, p.Status.Sites)
	}
}

// BenchmarkComputeAt5000Nodes is one decision of a rollout half-way
// through its canary on 5,000 nodes in 50 sites, with staging on: the
// work (and garbage) of every reconcile at fleet size. go test -bench
// ComputeAt -benchmem ./controllers/edgerollout/plan prints it.
func BenchmarkComputeAt5000Nodes(b *testing.B) {
	nodes := fleet(5000, 50, "old")
	for i := range nodes {
		n := &nodes[i]
		n.PeerSite = n.Site
		n.Pod.Report = report(float64(5 + i%7))
		if i%2 == 0 {
			n.Revision, n.Pod = "new", Pod{Exists: true, Ready: true, Since: t0.Add(-time.Hour), Report: report(6)}
		}
	}
	in := Input{Generation: 1, Spec: stagingSpec(100, true, "10%", "50%", "100%"), Status: progressing(1, time.Hour), Revision: "new", Digest: "sha256:new", Nodes: nodes, Now: t0}
	b.ReportAllocs()
	for b.Loop() {
		_ = Compute(in)
	}
}
