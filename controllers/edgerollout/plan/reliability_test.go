package plan

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/inferd/config"
)

// stageFails makes n's stager of rev one that exited with reason.
func stageFails(n *Node, rev, reason, message string) {
	n.StageRevision = rev
	n.Stage = Pod{Exists: true, Restarts: 1, Failure: "CrashLoopBackOff",
		Terminated: config.FormatTermination(reason, message), Since: t0.Add(-time.Minute)}
}

// TestNoSuccessWithoutNodes: when every stager fails, the rollout fails
// (RolledBack with reason StagingFailed, the nodes and reasons in status)
// instead of completing on zero nodes; under rollbackPolicy Manual it is
// Degraded with the same reason, and stays so.
func TestNoSuccessWithoutNodes(t *testing.T) {
	for _, policy := range []slmopsv1alpha1.RollbackPolicy{slmopsv1alpha1.RollbackAutomatic, slmopsv1alpha1.RollbackManual} {
		t.Run(string(policy), func(t *testing.T) {
			nodes := withSites(fleet(20, 1, "old"))
			for i := range nodes {
				stageFails(&nodes[i], "new", config.ReasonFetchFailed, "fetch https://models.example/m.gguf?REDACTED: dial tcp: connection refused")
			}
			s := stagingSpec(20, false, "100%")
			s.RollbackPolicy = policy
			p := planOf(s, progressing(0, time.Minute), nodes)

			wantPhase := slmopsv1alpha1.PhaseRolledBack
			if policy == slmopsv1alpha1.RollbackManual {
				wantPhase = slmopsv1alpha1.PhaseDegraded
			}
			if p.Status.Phase != wantPhase || p.Status.StableRevision != "old" {
				t.Fatalf("phase %s, stable %q (%s); want %s with stable old", p.Status.Phase, p.Status.StableRevision,
					conditionMessage(p.Status, slmopsv1alpha1.ConditionStalled), wantPhase)
			}
			if r := conditionReason(p.Status, slmopsv1alpha1.ConditionStalled); r != slmopsv1alpha1.ReasonStagingFailed {
				t.Errorf("Stalled reason %q; want StagingFailed", r)
			}
			msg := conditionMessage(p.Status, slmopsv1alpha1.ConditionStalled)
			for _, want := range []string{"20 of 20 target nodes excluded", "maxExcludedNodes 2", "FetchFailed on 20", "connection refused"} {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q does not say %q", msg, want)
				}
			}
			if got := len(p.Status.FailingNodes); got != maxFailingNodes || p.Status.FailingNodes[0].Reason != config.ReasonFetchFailed {
				t.Errorf("failing nodes %v; want %d listed with FetchFailed", p.Status.FailingNodes, maxFailingNodes)
			}
			for n, rev := range p.Labels {
				if rev == "new" {
					t.Errorf("node %s switches to the failed revision", n)
				}
			}
			if policy == slmopsv1alpha1.RollbackAutomatic && len(stageStarts(p)) != 0 {
				t.Errorf("stagers %v keep fetching after the rollback", stageStarts(p))
			}
			if got := reasons(p); !strings.Contains(got, string(wantPhase)) {
				t.Errorf("events %s; want %s", got, wantPhase)
			}

			// The next reconcile keeps the reason and the nodes.
			next := planOf(s, p.Status, nodes)
			if r := conditionReason(next.Status, slmopsv1alpha1.ConditionStalled); next.Status.Phase != wantPhase || r != slmopsv1alpha1.ReasonStagingFailed {
				t.Errorf("next reconcile: phase %s reason %q; want %s StagingFailed", next.Status.Phase, r, wantPhase)
			}
			if len(next.Status.FailingNodes) == 0 {
				t.Errorf("next reconcile forgot the failing nodes")
			}
		})
	}
}

// TestExclusionsWithinTheBoundDoNotFail: excluded nodes up to
// maxExcludedNodes leave the rollout going; one more fails it.
func TestExclusionsWithinTheBoundDoNotFail(t *testing.T) {
	for _, tc := range []struct {
		limit     intstr.IntOrString
		failed    int
		wantPhase slmopsv1alpha1.RolloutPhase
	}{
		{intstr.FromString("10%"), 2, slmopsv1alpha1.PhaseProgressing},
		{intstr.FromString("10%"), 3, slmopsv1alpha1.PhaseRolledBack},
		{intstr.FromInt32(3), 3, slmopsv1alpha1.PhaseProgressing},
		{intstr.FromInt32(0), 1, slmopsv1alpha1.PhaseRolledBack},
	} {
		nodes := withSites(fleet(20, 1, "old"))
		for i := range nodes {
			stageWith(&nodes[i], "new", true)
		}
		for i := 0; i < tc.failed; i++ {
			stageFails(&nodes[i], "new", config.ReasonInsufficientDisk, "not enough free disk space")
		}
		s := stagingSpec(20, false, "100%")
		s.Distribution.MaxExcludedNodes = ptr.To(tc.limit)
		p := planOf(s, progressing(0, time.Minute), nodes)
		if p.Status.Phase != tc.wantPhase {
			t.Errorf("maxExcludedNodes %s, %d excluded: phase %s (%s); want %s", tc.limit.String(), tc.failed,
				p.Status.Phase, conditionMessage(p.Status, slmopsv1alpha1.ConditionStalled), tc.wantPhase)
		}
	}
}

// TestCompletedNeedsAReadyNode: with every target node excluded and no
// bound (100%), the rollout never completes; a promotion does not make it
// complete either.
func TestCompletedNeedsAReadyNode(t *testing.T) {
	nodes := withSites(fleet(6, 1, "old"))
	for i := range nodes {
		stageFails(&nodes[i], "new", config.ReasonInsufficientDisk, "not enough free disk space")
	}
	s := stagingSpec(6, false, "100%")
	s.Distribution.MaxExcludedNodes = ptr.To(intstr.FromString("100%"))
	p := planOf(s, progressing(0, time.Minute), nodes)
	if p.Status.Phase == slmopsv1alpha1.PhaseCompleted || p.Status.StableRevision != "old" {
		t.Fatalf("phase %s stable %q: completed on 0 nodes", p.Status.Phase, p.Status.StableRevision)
	}
	if r := conditionReason(p.Status, slmopsv1alpha1.ConditionProgressing); r != "NoTargetNodes" {
		t.Errorf("reason %q; want NoTargetNodes", r)
	}

	// A promotion of a step whose nodes are not ready yet does not complete.
	nodes = fleet(6, 1, "old")
	onCanary(nodes, -time.Second, 0, 1, 2, 3, 4, 5)
	s = spec("100%")
	st := progressing(0, time.Minute)
	p = planFor(Input{Generation: 1, Spec: s, Status: st, Revision: "new", Nodes: nodes, Now: t0,
		Annotations: map[string]string{slmopsv1alpha1.PromoteAnnotation: "1"}})
	if p.Status.Phase == slmopsv1alpha1.PhaseCompleted {
		t.Errorf("promoted to Completed with no ready node (%s)", conditionMessage(p.Status, slmopsv1alpha1.ConditionReady))
	}
}

// TestTheOriginIsAskedOncePerSite: a seed whose origin answered 404 tells
// its whole site; no other node of the site starts fetching, the site's
// nodes are excluded with the seed's reason, and only the seed retries.
func TestTheOriginIsAskedOncePerSite(t *testing.T) {
	nodes := withSites(fleet(40, 4, "old"))
	s := stagingSpec(20, true, "50%", "100%")
	s.Distribution.MaxExcludedNodes = ptr.To(intstr.FromString("100%")) // look at staging alone
	p := planOf(s, progressing(0, time.Minute), nodes)
	seeds := stageStarts(p)
	if len(seeds) != 4 {
		t.Fatalf("%d seeds; want one per site", len(seeds))
	}
	// Every seed: the origin answered 404.
	isSeed := map[string]bool{}
	for _, name := range seeds {
		isSeed[name] = true
	}
	for i := range nodes {
		if isSeed[nodes[i].Name] {
			stageFails(&nodes[i], "new", config.ReasonOriginRejected, "origin answered 404 Not Found for https://models.example/m.gguf?REDACTED")
		}
	}
	p = planOf(s, progressing(0, time.Minute), nodes)
	for _, name := range stageStarts(p) {
		if !isSeed[name] {
			t.Errorf("node %s starts fetching from an origin its site's seed found broken", name)
		}
	}
	for name := range isSeed {
		if p.StageLabels[name] == "" && !hasStageLabel(nodes, name) {
			t.Errorf("seed %s lost its stager: nothing would notice the origin's recovery", name)
		}
	}
	ds := p.Status.Distribution
	if ds == nil || len(ds.ExcludedNodes) != 40 {
		t.Fatalf("distribution %+v; want all 40 nodes excluded", ds)
	}
	for _, e := range ds.ExcludedNodes {
		if e.Reason != config.ReasonOriginRejected || !strings.Contains(e.Message, "404") {
			t.Errorf("excluded %+v; want OriginRejected with the origin's answer", e)
		}
	}

	// Without peer sharing, the fleet is one site: after one stager learns
	// of the 404, the others stop and no new one starts.
	nodes = withSites(fleet(40, 4, "old"))
	s = stagingSpec(10, false, "50%", "100%")
	s.Distribution.MaxExcludedNodes = ptr.To(intstr.FromString("100%"))
	p = planOf(s, progressing(0, time.Minute), nodes)
	started := stageStarts(p)
	if len(started) != 10 {
		t.Fatalf("%d stagers; want 10", len(started))
	}
	for i := range nodes {
		for j, name := range started {
			if nodes[i].Name != name {
				continue
			}
			if j == 0 {
				stageFails(&nodes[i], "new", config.ReasonOriginRejected, "origin answered 403 Forbidden")
			} else {
				stageWith(&nodes[i], "new", false) // still fetching
			}
		}
	}
	p = planOf(s, progressing(0, time.Minute), nodes)
	if got := stageStarts(p); len(got) != 0 {
		t.Errorf("stagers %v start after the origin refused", got)
	}
	removed := 0
	for _, rev := range p.StageLabels {
		if rev == "" {
			removed++
		}
	}
	if removed != 9 {
		t.Errorf("%d stagers stopped; want the 9 that were not the first to learn of the 403", removed)
	}
}

func hasStageLabel(nodes []Node, name string) bool {
	for _, n := range nodes {
		if n.Name == name {
			return n.StageRevision != ""
		}
	}
	return false
}

// TestAnInvalidConfigIsNeverRolledOut: a revision whose inferd config fails
// config.Validate gets no node and no DaemonSet; the rollout is Degraded
// with reason InvalidConfig and the stable revision keeps serving.
func TestAnInvalidConfigIsNeverRolledOut(t *testing.T) {
	nodes := fleet(10, 1, "old")
	st := slmopsv1alpha1.EdgeRolloutStatus{StableRevision: "old", Phase: slmopsv1alpha1.PhaseCompleted}
	in := Input{Generation: 2, Spec: spec("10%", "100%"), Status: st, Revision: "new", Digest: "sha256:new", Nodes: nodes, Now: t0,
		ConfigError: "runtime.contextLength and runtime.maxConcurrentRequests must be positive"}
	p := planFor(in)
	if p.Status.Phase != slmopsv1alpha1.PhaseDegraded || p.Status.StableRevision != "old" {
		t.Fatalf("phase %s stable %q; want Degraded, stable old", p.Status.Phase, p.Status.StableRevision)
	}
	if r := conditionReason(p.Status, slmopsv1alpha1.ConditionStalled); r != slmopsv1alpha1.ReasonInvalidConfig {
		t.Errorf("Stalled reason %q; want InvalidConfig", r)
	}
	if msg := conditionMessage(p.Status, slmopsv1alpha1.ConditionStalled); !strings.Contains(msg, "contextLength") {
		t.Errorf("message %q does not carry the validation error", msg)
	}
	if len(p.Labels) != 0 {
		t.Errorf("labels %v; no node may switch", p.Labels)
	}
	for _, rev := range p.Revisions {
		if rev == "new" {
			t.Errorf("revisions %v include the invalid one: its DaemonSet would be made", p.Revisions)
		}
	}
	if !strings.Contains(reasons(p), slmopsv1alpha1.ReasonInvalidConfig) {
		t.Errorf("events %s; want InvalidConfig", reasons(p))
	}
	// Stays Degraded, one event only.
	in.Status = p.Status
	p = planFor(in)
	if p.Status.Phase != slmopsv1alpha1.PhaseDegraded || strings.Contains(reasons(p), slmopsv1alpha1.ReasonInvalidConfig) {
		t.Errorf("next reconcile: phase %s events %s; want Degraded without a second event", p.Status.Phase, reasons(p))
	}
	// A fixed spec is a new revision and rolls out.
	in.Status, in.Revision, in.ConfigError = p.Status, "fixed", ""
	p = planFor(in)
	if p.Status.Phase != slmopsv1alpha1.PhaseProgressing || p.Status.CanaryRevision != "fixed" {
		t.Errorf("after the fix: phase %s canary %q; want Progressing fixed", p.Status.Phase, p.Status.CanaryRevision)
	}
}

// TestReturningNodesArePaced: nodes that were unreachable while a rollback
// sent the cohort back are not relabelled while away (their pods would all
// restart the moment they reconnect); when they return, they switch within
// maxUnavailable like any other node.
func TestReturningNodesArePaced(t *testing.T) {
	for _, policy := range []slmopsv1alpha1.UnreachableNodesPolicy{slmopsv1alpha1.UnreachableNodesSkip, slmopsv1alpha1.UnreachableNodesWait} {
		t.Run(string(policy), func(t *testing.T) {
			nodes := fleet(20, 1, "old")
			onCanary(nodes, time.Hour, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9)
			for i := 0; i < 10; i++ {
				nodes[i].Reachable = false
			}
			s := spec("50%", "100%")
			s.Strategy.Canary.UnreachableNodes.Policy = policy
			st := progressing(0, time.Minute)
			in := Input{Generation: 1, Spec: s, Status: st, Revision: "new", Nodes: nodes, Now: t0,
				Annotations: map[string]string{slmopsv1alpha1.AbortAnnotation: "1"}}
			p := planFor(in)
			if p.Status.Phase != slmopsv1alpha1.PhaseAborted {
				t.Fatalf("phase %s; want Aborted", p.Status.Phase)
			}
			if len(p.Labels) != 0 {
				t.Errorf("unreachable nodes relabelled while away: %v", p.Labels)
			}
			// They all return at once, ready on the canary revision.
			for i := 0; i < 10; i++ {
				nodes[i].Reachable = true
			}
			in.Status = p.Status
			p = planFor(in)
			if got := len(p.Labels); got != 2 {
				t.Errorf("%d returning nodes switch at once; want maxUnavailable (10%% of 20 = 2)", got)
			}
		})
	}
}

// TestUnreachableNodesDoNotHoldACompletedRollout: after the canary, nodes
// still away on the old revision do not keep the rollout Progressing (they
// switch when they return), but a stable revision that runs on no node is
// not Completed.
func TestUnreachableNodesDoNotHoldACompletedRollout(t *testing.T) {
	nodes := fleet(10, 1, "new")
	for i := 0; i < 3; i++ {
		nodes[i].Revision, nodes[i].Reachable = "old", false
	}
	st := slmopsv1alpha1.EdgeRolloutStatus{StableRevision: "new", Phase: slmopsv1alpha1.PhaseCompleted}
	p := planFor(Input{Generation: 1, Spec: spec("100%"), Status: st, Revision: "new", Nodes: nodes, Now: t0})
	if p.Status.Phase != slmopsv1alpha1.PhaseCompleted || !strings.Contains(conditionMessage(p.Status, slmopsv1alpha1.ConditionReady), "3 unreachable nodes switch when they return") {
		t.Errorf("phase %s (%s); want Completed naming the 3 unreachable nodes", p.Status.Phase, conditionMessage(p.Status, slmopsv1alpha1.ConditionReady))
	}
	if len(p.Labels) != 0 {
		t.Errorf("labels %v: unreachable nodes relabelled while away", p.Labels)
	}
	for i := range nodes {
		nodes[i].Revision, nodes[i].Reachable = "old", false
	}
	p = planFor(Input{Generation: 1, Spec: spec("100%"), Status: st, Revision: "new", Nodes: nodes, Now: t0})
	if p.Status.Phase == slmopsv1alpha1.PhaseCompleted {
		t.Errorf("Completed with the stable revision on no node")
	}
}

// TestInferdsOwnReportFailsTheNodeAtOnce: a canary pod whose inferd
// reported a failure (its self-test, or a file that failed verification)
// fails its node at once with inferd's reason and message, without waiting
// for progressDeadlineSeconds; a pod that passed and is not ready yet still
// waits.
func TestInferdsOwnReportFailsTheNodeAtOnce(t *testing.T) {
	nodes := fleet(20, 2, "old")
	onCanary(nodes, -time.Minute, 0, 1) // not ready, a minute old: the deadline is 10 minutes away
	nodes[0].Pod.Report = &config.Report{Reason: config.ReasonSelfTestFailed, Message: "self-test Failed: golden prompt 1: the answer does not match expectRegex"}
	nodes[1].Pod.Report = &config.Report{Passed: true, Reason: config.ReasonPassed}
	cohort := []string{nodes[0].Name, nodes[1].Name}
	s := spec("10%", "100%")
	s.Strategy.Canary.MaxUnavailable = ptr.To(intstr.FromString("100%"))
	p := planFor(Input{Generation: 1, Spec: s, Status: progressing(0, time.Minute), Revision: "new", Nodes: nodes, Now: t0})
	if p.Status.Phase != slmopsv1alpha1.PhaseRolledBack {
		t.Fatalf("phase %s (%s); want RolledBack at once on inferd's report (cohort %v)", p.Status.Phase, condMessage(p.Status), cohort)
	}
	f := p.Status.FailingNodes
	if len(f) != 1 || f[0].Node != nodes[0].Name || f[0].Reason != config.ReasonSelfTestFailed || !strings.Contains(f[0].Message, "expectRegex") {
		t.Errorf("failing nodes %+v; want %s with inferd's SelfTestFailed and its message", f, nodes[0].Name)
	}
}
