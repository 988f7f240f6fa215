package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/test/testenv"
)

var (
	env        *testenv.Env
	kubeconfig string
)

// The plugin talks to a real API server (envtest) with the CRDs installed;
// rollouts get their status written as the operator would write it.
func TestMain(m *testing.M) {
	var err error
	env, err = testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	dir, _ := os.MkdirTemp("", "kubectl-slm-")
	kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, env.KubeConfig, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

// slm runs the plugin with args as kubectl would, and returns its output.
func slm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd := newRootCommand(&out, &out)
	cmd.SetArgs(append([]string{"--kubeconfig", kubeconfig}, args...))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := cmd.ExecuteContext(ctx)
	return out.String(), err
}

// fleet makes a namespace, a model, a rollout at step 2 of 3 with a failing
// node, and eight nodes in two sites: three in the canary cohort (two ready),
// four stable and ready, one not ready.
func fleet(t *testing.T, ns string) *slmopsv1alpha1.EdgeRollout {
	t.Helper()
	ctx := context.Background()
	c := env.Client
	if err := env.CreateNamespace(ns); err != nil {
		t.Fatal(err)
	}
	m := &slmopsv1alpha1.SLMModel{
		ObjectMeta: metav1.ObjectMeta{Name: "tinyllama", Namespace: ns},
		Spec: slmopsv1alpha1.SLMModelSpec{
			Source:       slmopsv1alpha1.ModelSource{HTTP: &slmopsv1alpha1.HTTPSource{URL: "https://models.example.com/t.gguf"}},
			Digest:       "sha256:9f2c8d1e6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e",
			Quantization: slmopsv1alpha1.QuantizationQ4_0,
		},
	}
	if err := c.Create(ctx, m); err != nil {
		t.Fatal(err)
	}
	r := &slmopsv1alpha1.EdgeRollout{
		ObjectMeta: metav1.ObjectMeta{Name: "stores", Namespace: ns},
		Spec: slmopsv1alpha1.EdgeRolloutSpec{
			ModelRef:     slmopsv1alpha1.LocalObjectReference{Name: "tinyllama"},
			NodeSelector: &slmopsv1alpha1.NodeSelector{MatchLabels: map[string]string{"fleet": ns}},
		},
	}
	r.Spec.Strategy.Canary.Steps = []slmopsv1alpha1.CanaryStep{
		{Nodes: intstr.FromString("10%")}, {Nodes: intstr.FromString("40%")}, {Nodes: intstr.FromString("100%")},
	}
	r.Spec.Strategy.Canary.TopologyKey = "topology.kubernetes.io/zone"
	if err := c.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	cohort := slmopsv1alpha1.CohortLabel(ns, r.Name)
	for i := range 8 {
		name := fmt.Sprintf("%s-node-%d", ns, i)
		site := "site-a"
		if i >= 4 {
			site = "site-b"
		}
		rev := "stable01"
		if i == 0 || i == 1 || i == 4 {
			rev = "canary02"
		}
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			"fleet": ns, "topology.kubernetes.io/zone": site, cohort: rev,
		}}}
		if err := c.Create(ctx, n); err != nil {
			t.Fatal(err)
		}
		if i == 4 || i == 7 { // the failing canary node and a node down
			continue
		}
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("inferd-%d", i), Namespace: ns, Labels: map[string]string{
				slmopsv1alpha1.RolloutLabel: r.Name, slmopsv1alpha1.RevisionLabel: rev,
			}},
			Spec: corev1.PodSpec{NodeName: name, Containers: []corev1.Container{{Name: "inferd", Image: "inferd"}}},
		}
		if err := c.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		if err := c.Status().Update(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	since := metav1.NewTime(time.Now().Add(-3 * time.Minute))
	started := metav1.NewTime(time.Now().Add(-90 * time.Second))
	r.Status = slmopsv1alpha1.EdgeRolloutStatus{
		ObservedGeneration: r.Generation, Phase: slmopsv1alpha1.PhaseProgressing, CurrentStep: 1, StepStartedAt: &started,
		StableRevision: "stable01", CanaryRevision: "canary02",
		TargetNodes: 8, CanaryNodes: 3, ReadyNodes: 6, UpdatedNodes: 3, UnavailableNodes: 2,
		FailingNodes: []slmopsv1alpha1.FailingNode{{Node: ns + "-node-4", Reason: "SelfTestFailed", Message: "golden prompt 1: 1.2 tokens/s, below 5", Since: &since}},
		Variants:     []slmopsv1alpha1.VariantStatus{{Name: "arm64-q4", TargetNodes: 5, ReadyNodes: 4}, {Name: "amd64-q8", TargetNodes: 3, ReadyNodes: 2}},
		HardwareClasses: []slmopsv1alpha1.HardwareClassStatus{
			{Name: "arm64/rpi4", Nodes: 5,
				Canary: &slmopsv1alpha1.ClassFigures{Revision: "canary02", Nodes: 2, Ready: 2, Reports: 2, DecodeTokensPerSecondP50: "5.1", DecodeTokensPerSecondP90: "5.4", TimeToFirstTokenSecondsP50: "0.42"},
				Stable: &slmopsv1alpha1.ClassFigures{Revision: "stable01", Nodes: 3, Ready: 3, Reports: 3, DecodeTokensPerSecondP50: "10.649", DecodeTokensPerSecondP90: "11", TimeToFirstTokenSecondsP50: "0.2"}},
			{Name: "amd64/-", Nodes: 3, Stable: &slmopsv1alpha1.ClassFigures{Revision: "stable01", Nodes: 3, Ready: 2}},
		},
		ExcludedClasses: []slmopsv1alpha1.ExcludedClass{{Name: "arm64/rpi3", Revision: "stable01", CanaryRevision: "canary02", Reason: "SlowerThanStable",
			Message: "on class arm64/rpi3 the canary decodes 2 tokens/s (median of 1 nodes), 0.4 of stable's 5"}},
		Distribution: &slmopsv1alpha1.DistributionStatus{Revision: "canary02", StagedNodes: 5, StagingNodes: 1, WaitingNodes: 1, FailedNodes: 1,
			ExcludedNodes: []slmopsv1alpha1.ExcludedNode{{Node: ns + "-node-6", Reason: "InsufficientDisk", Message: "the cache has 1.0 MiB free"}}},
		History: []slmopsv1alpha1.RevisionHistory{
			{Revision: "stable01", Digest: "sha256:1111111111111111111111111111111111111111111111111111111111111111", Phase: slmopsv1alpha1.PhaseCompleted, StartedAt: &since, FinishedAt: &started},
			{Revision: "canary02", Digest: m.Spec.Digest, Phase: slmopsv1alpha1.PhaseProgressing, StartedAt: &started},
		},
		Conditions: []metav1.Condition{{Type: slmopsv1alpha1.ConditionProgressing, Status: metav1.ConditionTrue, Reason: "StepProgressing",
			Message: "step 2 of 3 (4 of 8 target nodes): 2 healthy, 4 needed, 1 to switch", LastTransitionTime: started},
			{Type: slmopsv1alpha1.ConditionApplied, Status: metav1.ConditionFalse, Reason: "PatchLabelsFailed",
				Message: "PatchLabels: label node status-node-2: nodes \"status-node-2\" is forbidden", LastTransitionTime: started}},
	}
	if err := c.Status().Update(ctx, r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestStatusShowsStepSitesAndFailingNodes(t *testing.T) {
	fleet(t, "status")
	out, err := slm(t, "status", "stores", "-n", "status")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Logf("kubectl slm status stores:\n%s", out)
	for _, want := range []string{
		"EdgeRollout status/stores  model tinyllama Q4_0 (sha256:9f2c8d1e6b5a)",
		"Phase:     Progressing, step 2 of 3 (40%) for 9", // 90s ago when the fixture was written, a moment more by now
		"Nodes:     8 target, 3 canary, 6 ready, 3 updated, 2 unavailable, 0 unreachable",
		"Revisions: stable stable01, canary canary02",
		"Variants:  arm64-q4 4/5 ready, amd64-q8 2/3 ready",
		"Message:   step 2 of 3 (4 of 8 target nodes): 2 healthy, 4 needed, 1 to switch",
		"Staging:   canary02: 5 staged, 1 staging, 1 waiting, 1 failed, 0 unfit",
		"status-node-6  InsufficientDisk  the cache has 1.0 MiB free",
		"status-node-4  SelfTestFailed  3m",
		"golden prompt 1: 1.2 tokens/s, below 5",
		"arm64/rpi4      5      2/2           5.1/5.4        0.42s     3/3           10.6/11        0.2s",
		"amd64/-         3      -             -              -         2/3           -              -",
		"arm64/rpi3      stable01  SlowerThanStable  on class arm64/rpi3 the canary decodes 2 tokens/s",
		`Not applied: PatchLabelsFailed: PatchLabels: label node status-node-2: nodes "status-node-2" is forbidden`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the status view lacks %q", want)
		}
	}
	// Per site, computed from the nodes, the cohort labels and the pods:
	// site-a has 4 nodes, 2 canary, 4 ready; site-b has 4 nodes, 1 canary
	// (failing), 2 ready (node 7 is down).
	sites := map[string][]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 5 && strings.HasPrefix(f[0], "site-") {
			sites[f[0]] = f[1:]
		}
	}
	if got := strings.Join(sites["site-a"], " "); got != "4 2 4 0" {
		t.Errorf("site-a: nodes canary ready failing = %s; want 4 2 4 0", got)
	}
	if got := strings.Join(sites["site-b"], " "); got != "4 1 2 1" {
		t.Errorf("site-b: nodes canary ready failing = %s; want 4 1 2 1", got)
	}
}

// TestStatusReadsTheSitesFromTheStatus: with the operator's site counts in
// the status, status prints those (one object read, however large the
// fleet), says how many more sites there are, and lists nothing of the
// nodes or pods; --all-sites counts from the nodes and pods as before.
func TestStatusReadsTheSitesFromTheStatus(t *testing.T) {
	r := fleet(t, "sites")
	ctx := context.Background()
	// Figures the nodes would not give, so that the test sees where they
	// came from.
	r.Status.Sites = []slmopsv1alpha1.SiteStatus{
		{Name: "site-b", TargetNodes: 40, CanaryNodes: 10, ReadyNodes: 38, FailingNodes: 1},
		{Name: "site-a", TargetNodes: 40, CanaryNodes: 20, ReadyNodes: 40},
	}
	r.Status.SiteCount = 5
	if err := env.Client.Status().Update(ctx, r); err != nil {
		t.Fatal(err)
	}
	sites := func(out string) map[string]string {
		got := map[string]string{}
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) == 5 && strings.HasPrefix(f[0], "site-") {
				got[f[0]] = strings.Join(f[1:], " ")
			}
		}
		return got
	}
	out, err := slm(t, "status", "stores", "-n", "sites")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got := sites(out); !cmp.Equal(got, map[string]string{"site-b": "40 10 38 1", "site-a": "40 20 40 0"}) {
		t.Errorf("sites %v; want the status's", got)
	}
	if !strings.Contains(out, "... and 3 more sites, all ready (--all-sites lists every site)") {
		t.Errorf("the view does not say how many sites it leaves out:\n%s", out)
	}
	if strings.Index(out, "site-b") > strings.Index(out, "site-a") {
		t.Errorf("the sites are not in the status's order (not ready first):\n%s", out)
	}
	out, err = slm(t, "status", "stores", "-n", "sites", "--all-sites")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got := sites(out); !cmp.Equal(got, map[string]string{"site-a": "4 2 4 0", "site-b": "4 1 2 1"}) {
		t.Errorf("--all-sites: sites %v; want those counted from the nodes and pods", got)
	}
}

func TestHistoryListsRevisions(t *testing.T) {
	fleet(t, "history")
	out, err := slm(t, "history", "stores", "-n", "history")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "REVISION") {
		t.Fatalf("history:\n%s", out)
	}
	if f := strings.Fields(lines[1]); f[0] != "stable01" || f[1] != "sha256:111111111111" || f[2] != "Completed" {
		t.Errorf("first revision: %q", lines[1])
	}
	if f := strings.Fields(lines[2]); f[0] != "canary02" || f[2] != "Progressing" || !strings.HasSuffix(lines[2], "-") {
		t.Errorf("second revision (not finished): %q", lines[2])
	}
}

// TestActionsSetWhatTheOperatorReads: promote, promote --full, abort and
// retry set their annotation to a new value each time; pause and resume set
// spec.paused.
func TestActionsSetWhatTheOperatorReads(t *testing.T) {
	fleet(t, "actions")
	ctx := context.Background()
	key := client.ObjectKey{Namespace: "actions", Name: "stores"}
	get := func() *slmopsv1alpha1.EdgeRollout {
		r := &slmopsv1alpha1.EdgeRollout{}
		if err := env.Client.Get(ctx, key, r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, tc := range []struct {
		args       []string
		annotation string
	}{
		{[]string{"promote"}, slmopsv1alpha1.PromoteAnnotation},
		{[]string{"promote", "--full"}, slmopsv1alpha1.PromoteFullAnnotation},
		{[]string{"abort"}, slmopsv1alpha1.AbortAnnotation},
		{[]string{"retry"}, slmopsv1alpha1.RetryAnnotation},
	} {
		before := get().Annotations[tc.annotation]
		out, err := slm(t, append(tc.args, "stores", "-n", "actions")...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", tc.args, err, out)
		}
		after := get().Annotations[tc.annotation]
		if after == "" || after == before {
			t.Errorf("%v: %s went from %q to %q; want a new value", tc.args, tc.annotation, before, after)
		}
		if !strings.Contains(out, tc.annotation+"="+after) {
			t.Errorf("%v printed %q", tc.args, out)
		}
		// A second promote is a new value: the operator acts again.
		if tc.annotation == slmopsv1alpha1.PromoteAnnotation {
			time.Sleep(time.Millisecond)
			if _, err := slm(t, append(tc.args, "stores", "-n", "actions")...); err != nil {
				t.Fatal(err)
			}
			if again := get().Annotations[tc.annotation]; again == after {
				t.Errorf("a second promote left %s at %q", tc.annotation, again)
			}
		}
	}
	if _, err := slm(t, "pause", "stores", "-n", "actions"); err != nil || !get().Spec.Paused {
		t.Errorf("pause: %v, spec.paused=%v", err, get().Spec.Paused)
	}
	if out, _ := slm(t, "status", "stores", "-n", "actions"); !strings.Contains(out, "(spec.paused)") {
		t.Errorf("status of a paused rollout does not say so:\n%s", out)
	}
	if _, err := slm(t, "resume", "stores", "-n", "actions"); err != nil || get().Spec.Paused {
		t.Errorf("resume: %v, spec.paused=%v", err, get().Spec.Paused)
	}
	// A rollout that does not exist is an error that names it.
	if out, err := slm(t, "promote", "nope", "-n", "actions"); err == nil || !strings.Contains(err.Error(), "actions/nope") {
		t.Errorf("promote of a missing rollout: %v %s", err, out)
	}
}

// TestWatchEndsWithTheRollout: status --watch prints when the view changes
// and exits 0 on Completed, 1 on RolledBack.
func TestWatchEndsWithTheRollout(t *testing.T) {
	r := fleet(t, "watch")
	ctx := context.Background()
	go func() {
		time.Sleep(500 * time.Millisecond)
		r.Status.Phase, r.Status.CanaryRevision, r.Status.StableRevision = slmopsv1alpha1.PhaseCompleted, "", "canary02"
		r.Status.FailingNodes = nil
		_ = env.Client.Status().Update(ctx, r)
	}()
	out, err := slm(t, "status", "stores", "-n", "watch", "--watch", "--interval", "100ms")
	if err != nil {
		t.Fatalf("watch of a rollout that completed: %v\n%s", err, out)
	}
	if strings.Count(out, "--- ") < 2 || !strings.Contains(out, "Phase:     Completed") {
		t.Errorf("watch printed:\n%s", out)
	}

	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(r), r); err != nil {
		t.Fatal(err)
	}
	r.Status.Phase = slmopsv1alpha1.PhaseRolledBack
	if err := env.Client.Status().Update(ctx, r); err != nil {
		t.Fatal(err)
	}
	out, err = slm(t, "status", "stores", "-n", "watch", "--watch", "--interval", "100ms")
	var exit exitError
	if err == nil || !errors.As(err, &exit) || exit.code != 1 {
		t.Errorf("watch of a rolled-back rollout: %v; want exit code 1\n%s", err, out)
	}
}
