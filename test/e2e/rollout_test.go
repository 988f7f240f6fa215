package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/inferd/engine/bigram"
	"github.com/slmops/slmops/inferd/gguf"
	"github.com/slmops/slmops/test/localcluster"
	"github.com/slmops/slmops/test/testenv"
)

// maxUnavailable is 10% of the suite's 200 nodes, as rollout() sets it.
const maxUnavailable = suiteNodes / 10

// completeFirstRevision rolls out the first revision and waits until it is
// Completed on every node.
func completeFirstRevision(t *testing.T, c client.Client, r *slmopsv1alpha1.EdgeRollout) string {
	t.Helper()
	got := waitForPhase(t, c, r, slmopsv1alpha1.PhaseCompleted, "", 3*time.Minute, nil)
	NewWithT(t).Eventually(func(g Gomega) {
		viewFleet(t, r.Namespace, r.Name).allOn(g, got.Status.StableRevision)
	}).WithTimeout(time.Minute).Should(Succeed())
	return got.Status.StableRevision
}

// newDigest points the suite's model at another file: a new revision.
func newDigest(t *testing.T, c client.Client, ns string, n int) {
	t.Helper()
	// A patch, not an update: the operator writes the model's status meanwhile.
	m := &slmopsv1alpha1.SLMModel{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tinyllama"}}
	patch := []byte(`{"spec":{"digest":"` + digestOf(n) + `"}}`)
	if err := c.Patch(context.Background(), m, client.RawPatch(types.MergePatchType, patch)); err != nil {
		t.Fatal(err)
	}
}

// TestRolloutCompletesAcrossSites: 200 nodes in 4 sites, steps 5%, 25%, 100%.
// The first revision rolls out step by step; then a new digest rolls out beside
// it, never leaving more than maxUnavailable nodes without a ready pod, and
// ends with the canary's pods promoted in place and the old DaemonSet gone.
func TestRolloutCompletesAcrossSites(t *testing.T) {
	g := NewWithT(t)
	c := kube(t)
	ns := newNamespace(t, "e2e-rollout")
	startOperator(t, ns)
	r := rollout(ns, "5%", "25%", "100%")
	createRollout(t, c, model(ns, digestOf(1)), r)
	first := completeFirstRevision(t, c, r)

	newDigest(t, c, ns, 2)
	sampler := &maxSampler{t: t, ns: ns, name: r.Name}
	seen := map[string]bool{}         // "phase step" pairs that kubectl get er showed
	canaryNodes := map[string]bool{}  // the nodes of step 1 (step 0 in status)
	canaryPods := map[string]string{} // node -> uid of its first ready canary pod
	var second string
	got := waitForPhase(t, c, r, slmopsv1alpha1.PhaseCompleted, first, 3*time.Minute, func() {
		sampler.take()
		out, err := kubectl("get", "er", r.Name, "-n", ns, "--no-headers")
		if err == nil {
			f := strings.Fields(out)
			if len(f) >= 4 && f[2] != "Completed" {
				seen[f[2]+" "+f[3]] = true
			}
		}
		cur := get(t, c, r)
		if cur.Status.CanaryRevision != "" && cur.Status.CanaryRevision != first {
			second = cur.Status.CanaryRevision
		}
		if second == "" {
			return
		}
		// Step 1's nodes are labeled before its pods start, and those
		// pods live on through the promotions; a loaded machine may sample
		// step 1 only briefly, so a pod is recorded whenever first seen.
		fleet := viewFleet(t, ns, r.Name)
		if cur.Status.CurrentStep == 0 {
			for node, rev := range fleet.revisionOf {
				if rev == second {
					canaryNodes[node] = true
				}
			}
		}
		for node := range canaryNodes {
			if p, ok := fleet.readyOn[node]; ok && p.revision == second && canaryPods[node] == "" {
				canaryPods[node] = p.uid
			}
		}
	})
	t.Logf("kubectl get er showed %v; at most %d of %d nodes unavailable over %d samples", keys(seen), sampler.max, suiteNodes, sampler.sample)

	g.Expect(got.Status.StableRevision).NotTo(Equal(first))
	g.Expect(got.Status.CanaryRevision).To(BeEmpty())
	g.Expect(got.Status.TargetNodes).To(BeEquivalentTo(suiteNodes))
	g.Expect(sampler.max).To(BeNumerically("<=", maxUnavailable), "nodes without a ready pod at once")
	g.Expect(seen).To(HaveKey("Progressing 0"), "kubectl get er during the rollout")
	g.Expect(seen).To(HaveKey("Progressing 2"), "kubectl get er during the rollout")
	g.Eventually(func(g Gomega) {
		viewFleet(t, ns, r.Name).allOn(g, got.Status.StableRevision)
	}).WithTimeout(time.Minute).Should(Succeed())

	// The pods that ran the canary at step 1 were promoted in place: same UIDs.
	g.Expect(canaryNodes).To(HaveLen(10), "5% of 200 nodes")
	g.Expect(canaryPods).To(HaveLen(10), "a ready canary pod on each of step 1's nodes")
	final := viewFleet(t, ns, r.Name)
	for node, uid := range canaryPods {
		g.Expect(final.readyOn[node].uid).To(Equal(uid), "the canary pod on %s was restarted", node)
	}
	// Only the new revision's DaemonSet remains, owned by the rollout.
	g.Eventually(func() []string {
		var list appsv1.DaemonSetList
		_ = c.List(context.Background(), &list, client.InNamespace(ns))
		var revs []string
		for _, ds := range list.Items {
			revs = append(revs, ds.Labels[slmopsv1alpha1.RevisionLabel])
		}
		return revs
	}).WithTimeout(30 * time.Second).Should(Equal([]string{got.Status.StableRevision}))
	g.Expect(got.Status.History).To(HaveLen(2))
	g.Expect(got.Status.History[1].Phase).To(Equal(slmopsv1alpha1.PhaseCompleted))

	// Two revisions rolled out and the operator never wrote the spec (what
	// Argo CD and Flux own): the generation is the one the test created,
	// and no field manager but the test's own holds a spec field.
	g.Expect(got.Generation).To(BeEquivalentTo(1), "the rollout's spec changed")
	for _, mf := range got.ManagedFields {
		if mf.Subresource == "" && mf.FieldsV1 != nil && strings.Contains(mf.FieldsV1.GetRawString(), `"f:spec"`) {
			g.Expect(mf.Manager).NotTo(ContainSubstring("manager"), "the operator (%s, %s) holds spec fields", mf.Manager, mf.Operation)
		}
	}

	// Deleting the rollout removes what it made: its DaemonSets (owner
	// references) and its cohort label on every node (its finalizer).
	g.Expect(c.Delete(context.Background(), got)).To(Succeed())
	g.Eventually(func(g Gomega) {
		var list appsv1.DaemonSetList
		g.Expect(c.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
		g.Expect(list.Items).To(BeEmpty())
		for node, rev := range viewFleet(t, ns, r.Name).revisionOf {
			g.Expect(rev).To(BeEmpty(), "cohort label left on %s", node)
		}
	}).WithTimeout(time.Minute).Should(Succeed())
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestFailingCanaryRollsBack: canary pods on one site's nodes crash-loop
// (a kwok fault), so the rollout rolls back by itself: every node runs the
// stable revision again, and never more than maxUnavailable nodes were without
// a ready pod.
func TestFailingCanaryRollsBack(t *testing.T) {
	g := NewWithT(t)
	c := kube(t)
	ctx := context.Background()
	ns := newNamespace(t, "e2e-rollback")
	op := startOperator(t, ns)
	r := rollout(ns, "5%", "25%", "100%")
	createRollout(t, c, model(ns, digestOf(1)), r)
	stable := completeFirstRevision(t, c, r)

	const faulty = "registry.invalid/inferd:v2-faulty"
	var site2 []string
	for i := range suiteNodes {
		if localcluster.SiteName(i, suiteSites) == "site-02" {
			site2 = append(site2, localcluster.NodeName(i, suiteSites))
		}
	}
	g.Expect(cluster.InjectCrashLoop(ctx, "rollback", faulty, site2)).To(Succeed())
	t.Cleanup(func() { _ = cluster.RemoveFault(context.Background(), "rollback") })

	// A new template is a new revision.
	patch := []byte(`{"spec":{"template":{"image":"` + faulty + `"}}}`)
	g.Expect(c.Patch(ctx, get(t, c, r), client.RawPatch(types.MergePatchType, patch))).To(Succeed())

	sampler := &maxSampler{t: t, ns: ns, name: r.Name}
	got := waitForPhase(t, c, r, slmopsv1alpha1.PhaseRolledBack, "", 3*time.Minute, sampler.take)
	g.Expect(got.Status.StableRevision).To(Equal(stable))
	g.Expect(got.Status.FailingNodes).NotTo(BeEmpty())
	for _, f := range got.Status.FailingNodes {
		g.Expect(site2).To(ContainElement(f.Node))
		g.Expect(f.Reason).To(Equal("CrashLoopBackOff"))
	}
	g.Eventually(func(g Gomega) {
		sampler.take()
		viewFleet(t, ns, r.Name).allOn(g, stable)
	}).WithTimeout(2 * time.Minute).Should(Succeed())
	t.Logf("at most %d of %d nodes unavailable over %d samples", sampler.max, suiteNodes, sampler.sample)
	g.Expect(sampler.max).To(BeNumerically("<=", maxUnavailable))

	// The failure is explained where people and tools look.
	g.Expect(meta(got, slmopsv1alpha1.ConditionStalled)).To(Equal(metav1.ConditionTrue))
	events, err := cluster.Clientset.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	var reasons []string
	for _, e := range events.Items {
		reasons = append(reasons, e.Reason)
	}
	g.Expect(reasons).To(ContainElement("RolledBack"))

	// And in the metrics that alerts are built on.
	// Prometheus writes label names in sorted order.
	series := func(name, label string) string {
		if label == "" {
			return name + `{namespace="` + ns + `",rollout="stores"}`
		}
		return name + `{namespace="` + ns + `",` + label + `,rollout="stores"}`
	}
	g.Eventually(op.metrics).WithTimeout(10 * time.Second).Should(And(
		ContainSubstring(series("slmops_rollout_rollbacks_total", "")+" 1"),
		ContainSubstring(series("slmops_rollout_phase", `phase="RolledBack"`)+" 1"),
		ContainSubstring(series("slmops_rollout_phase", `phase="Completed"`)+" 0"),
		ContainSubstring(`slmops_rollout_nodes{namespace="`+ns+`",rollout="stores",state="target"} 200`),
	))
}

func meta(r *slmopsv1alpha1.EdgeRollout, condition string) metav1.ConditionStatus {
	for _, c := range r.Status.Conditions {
		if c.Type == condition {
			return c.Status
		}
	}
	return metav1.ConditionUnknown
}

// TestOperatorKilledAtRandomMomentsStillCompletes: the operator is killed with
// SIGKILL at random moments of a rollout and started again; it resumes from
// the cluster alone and the rollout completes on every node.
func TestOperatorKilledAtRandomMomentsStillCompletes(t *testing.T) {
	g := NewWithT(t)
	c := kube(t)
	ns := newNamespace(t, "e2e-kill")
	op := startOperator(t, ns)
	r := rollout(ns, "5%", "25%", "100%")
	createRollout(t, c, model(ns, digestOf(1)), r)
	first := completeFirstRevision(t, c, r)

	newDigest(t, c, ns, 2)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	kills := 0
	for kills < 4 {
		time.Sleep(time.Duration(500+rng.IntN(2500)) * time.Millisecond)
		if st := get(t, c, r).Status; st.Phase == slmopsv1alpha1.PhaseCompleted && st.StableRevision != first {
			break
		}
		op.kill()
		kills++
		op.start()
	}
	t.Logf("killed the operator %d times during the rollout", kills)
	g.Expect(kills).To(BeNumerically(">=", 2), "the rollout ended before the operator could be killed twice")
	got := waitForPhase(t, c, r, slmopsv1alpha1.PhaseCompleted, first, 3*time.Minute, nil)
	g.Eventually(func(g Gomega) {
		viewFleet(t, ns, r.Name).allOn(g, got.Status.StableRevision)
	}).WithTimeout(time.Minute).Should(Succeed())
	g.Expect(got.Status.History).To(HaveLen(2))
}

// TestUnreachableNodes: a node goes offline while a revision rolls out. Under
// Skip the rollout completes without waiting for it, and the node gets the new
// revision when it returns; under Wait the step holds until it returns.
func TestUnreachableNodes(t *testing.T) {
	for _, policy := range []slmopsv1alpha1.UnreachableNodesPolicy{slmopsv1alpha1.UnreachableNodesSkip, slmopsv1alpha1.UnreachableNodesWait} {
		t.Run(string(policy), func(t *testing.T) {
			g := NewWithT(t)
			c := kube(t)
			ctx := context.Background()
			ns := newNamespace(t, "e2e-"+strings.ToLower(string(policy)))
			startOperator(t, ns)
			r := rollout(ns, "100%")
			r.Spec.Strategy.Canary.UnreachableNodes = slmopsv1alpha1.UnreachableNodes{
				Policy: policy, Deadline: &metav1.Duration{Duration: 10 * time.Minute},
			}
			createRollout(t, c, model(ns, digestOf(1)), r)
			first := completeFirstRevision(t, c, r)

			offline := localcluster.NodeName(7, suiteSites)
			g.Expect(cluster.SetNodeOffline(ctx, offline, true)).To(Succeed())
			t.Cleanup(func() { _ = cluster.SetNodeOffline(context.Background(), offline, false) })
			g.Eventually(func() bool {
				n, err := cluster.Clientset.CoreV1().Nodes().Get(ctx, offline, metav1.GetOptions{})
				return err == nil && !localcluster.NodeReady(n)
			}).WithTimeout(30 * time.Second).Should(BeTrue())

			newDigest(t, c, ns, 2)
			if policy == slmopsv1alpha1.UnreachableNodesSkip {
				got := waitForPhase(t, c, r, slmopsv1alpha1.PhaseCompleted, first, 3*time.Minute, nil)
				g.Expect(got.Status.StableRevision).NotTo(Equal(first))
				g.Expect(got.Status.UnreachableNodes).To(BeEquivalentTo(1))
				// Back online, the node runs the new revision.
				g.Expect(cluster.SetNodeOffline(ctx, offline, false)).To(Succeed())
				g.Eventually(func(g Gomega) {
					viewFleet(t, ns, r.Name).allOn(g, got.Status.StableRevision)
				}).WithTimeout(time.Minute).Should(Succeed())
				return
			}
			// Wait: every reachable node switches, and the step holds for the
			// offline one.
			g.Eventually(func(g Gomega) {
				got := get(t, c, r)
				g.Expect(got.Status.Phase).To(Equal(slmopsv1alpha1.PhaseProgressing))
				g.Expect(got.Status.ReadyNodes).To(BeEquivalentTo(suiteNodes - 1))
				g.Expect(conditionReason(got, slmopsv1alpha1.ConditionProgressing)).To(Equal("WaitingForUnreachableNodes"))
			}).WithTimeout(2 * time.Minute).WithPolling(500 * time.Millisecond).Should(Succeed())
			g.Consistently(func() slmopsv1alpha1.RolloutPhase {
				return get(t, c, r).Status.Phase
			}).WithTimeout(3 * time.Second).Should(Equal(slmopsv1alpha1.PhaseProgressing))
			g.Expect(cluster.SetNodeOffline(ctx, offline, false)).To(Succeed())
			got := waitForPhase(t, c, r, slmopsv1alpha1.PhaseCompleted, first, 2*time.Minute, nil)
			g.Eventually(func(g Gomega) {
				viewFleet(t, ns, r.Name).allOn(g, got.Status.StableRevision)
			}).WithTimeout(time.Minute).Should(Succeed())
		})
	}
}

func conditionReason(r *slmopsv1alpha1.EdgeRollout, condition string) string {
	for _, c := range r.Status.Conditions {
		if c.Type == condition {
			return c.Reason
		}
	}
	return ""
}

// kubectl runs the control plane's kubectl against the suite's cluster.
func kubectl(args ...string) (string, error) {
	bin, err := localcluster.BinDir()
	if err != nil {
		return "", err
	}
	out, err := exec.Command(filepath.Join(bin, "kubectl"), append([]string{"--kubeconfig", cluster.Kubeconfig}, args...)...).Output()
	return string(out), err
}

// TestReturningNodesArePaced: 40 nodes (twice maxUnavailable) go offline
// while a revision rolls out under Skip; the rollout completes on the
// others. When all 40 reconnect at once, they switch within
// maxUnavailable: never more than maxUnavailable reachable target nodes are
// without a ready pod (sampled throughout), because an unreachable node is
// not relabelled while it is away.
func TestReturningNodesArePaced(t *testing.T) {
	g := NewWithT(t)
	c := kube(t)
	ctx := context.Background()
	ns := newNamespace(t, "e2e-returning")
	startOperator(t, ns)
	r := rollout(ns, "100%")
	createRollout(t, c, model(ns, digestOf(1)), r)
	first := completeFirstRevision(t, c, r)

	var offline []string
	for i := 0; i < 2*maxUnavailable; i++ {
		offline = append(offline, localcluster.NodeName(i*5, suiteSites))
	}
	goOffline(t, offline)

	newDigest(t, c, ns, 2)
	got := waitForPhase(t, c, r, slmopsv1alpha1.PhaseCompleted, first, 3*time.Minute, nil)
	g.Expect(got.Status.UnreachableNodes).To(BeEquivalentTo(len(offline)))
	for _, n := range offline {
		g.Expect(viewFleet(t, ns, r.Name).revisionOf[n]).To(Equal(first), "offline node %s was relabelled while away", n)
	}

	// All reconnect at once.
	for _, n := range offline {
		g.Expect(cluster.SetNodeOffline(ctx, n, false)).To(Succeed())
	}
	worst := 0
	g.Eventually(func(g Gomega) {
		v := viewFleet(t, ns, r.Name)
		back := reachable(t, offline)
		down := 0
		for _, n := range back {
			if _, ok := v.readyOn[n]; !ok {
				down++
			}
		}
		worst = max(worst, down)
		v.allOn(g, got.Status.StableRevision)
	}).WithTimeout(3 * time.Minute).WithPolling(100 * time.Millisecond).Should(Succeed())
	fmt.Printf("returning nodes: %d reconnected at once; at most %d reachable nodes were without a ready pod (maxUnavailable %d)\n", len(offline), worst, maxUnavailable)
	g.Expect(worst).To(BeNumerically("<=", maxUnavailable))
}

// TestReturningNodesArePacedWithRealPods is TestReturningNodesArePaced with
// real serving pods: every pod of the rollout is an inferd process under the
// process kubelet, which fetches a small bigram GGUF from the test's origin,
// loads it and turns Ready through /readyz. One site of 50 nodes, budget 5: 10
// nodes go offline after the first revision (their processes keep running,
// unseen, as with a disconnected kubelet), a second model rolls out on the
// other 40, and when the 10 reconnect at once never more than 5 reachable
// target nodes are without a ready serving pod.
func TestReturningNodesArePacedWithRealPods(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := kube(t)
	inferdBin := buildBinary(t, "./cmd/inferd")
	const name = "returning-real"
	ns := newNamespace(t, "e2e-"+name)
	site := localcluster.SiteName(2, suiteSites)
	var targets []string
	for i := range suiteNodes {
		if localcluster.SiteName(i, suiteSites) == site {
			targets = append(targets, localcluster.NodeName(i, suiteSites))
		}
	}
	budget := len(targets) / 10 // maxUnavailable 10%

	// Two models of a few hundred KiB, served by one origin.
	files := map[string][]byte{}
	digests := map[string]string{}
	for i, f := range []string{"first.gguf", "second.gguf"} {
		var buf bytes.Buffer
		g.Expect(bigram.Write(&buf, bigram.BuildOptions{Name: name + "-" + f, Type: gguf.Q8_0, PadBytes: 256<<10 + uint64(i)})).To(Succeed())
		files[f] = buf.Bytes()
		sum := sha256.Sum256(buf.Bytes())
		digests[f] = "sha256:" + hex.EncodeToString(sum[:])
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	origin := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, ok := files[strings.TrimPrefix(r.URL.Path, "/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, r.URL.Path, time.Unix(0, 0), bytes.NewReader(data))
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = origin.Serve(ln) }()
	t.Cleanup(func() { _ = origin.Close() })
	base := "http://" + ln.Addr().String()

	// Every pod of this rollout is a real inferd process.
	ofRollout, err := labels.NewRequirement(slmopsv1alpha1.RolloutLabel, selection.Equals, []string{name})
	g.Expect(err).NotTo(HaveOccurred())
	root, err := os.MkdirTemp("", "slmops-nodes-")
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	pkLog := &testenv.SyncBuffer{}
	pk, err := cluster.StartProcessKubelet(ctx, localcluster.ProcessKubeletOptions{
		Name: name, Selector: labels.NewSelector().Add(*ofRollout), Binary: inferdBin, Root: root, Log: pkLog,
	})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() {
		_ = pk.Stop()
		if t.Failed() {
			t.Logf("process kubelet log (end):\n%s", tail(pkLog.String(), 20000))
			if logs, _ := filepath.Glob(filepath.Join(root, "pods", "*", "log")); len(logs) > 0 {
				b, _ := os.ReadFile(logs[0])
				t.Logf("the log of one inferd process (%s, end):\n%s", logs[0], tail(string(b), 5000))
			}
		}
	})
	startOperator(t, ns)

	m := model(ns, digests["first.gguf"])
	m.Spec.Source.HTTP.URL, m.Spec.Source.HTTP.AllowInsecureHTTP = base+"/first.gguf", true
	m.Spec.SizeBytes = ptr.To(int64(len(files["first.gguf"])))
	m.Spec.Quantization = slmopsv1alpha1.QuantizationQ8_0
	r := rollout(ns, "100%")
	r.Name = name
	r.Spec.NodeSelector.MatchLabels[localcluster.ZoneLabel] = site
	// 50 inferd processes start at once on a loaded machine: give them
	// time, since this test is not about the deadline.
	r.Spec.Strategy.Canary.ProgressDeadlineSeconds = 180
	r.Spec.Strategy.Canary.MinReadySeconds = ptr.To[int32](0)
	r.Spec.Strategy.Canary.UnreachableNodes.Policy = slmopsv1alpha1.UnreachableNodesSkip
	createRollout(t, c, m, r)
	allServe := func(rev string) func(g Gomega) {
		return func(g Gomega) {
			v := viewFleet(t, ns, r.Name)
			for _, node := range targets {
				g.Expect(v.revisionOf[node]).To(Equal(rev), "cohort label of %s", node)
				g.Expect(v.readyOn[node].revision).To(Equal(rev), "ready serving pod on %s", node)
			}
		}
	}
	first := waitForPhase(t, c, r, slmopsv1alpha1.PhaseCompleted, "", 4*time.Minute, nil).Status.StableRevision
	g.Eventually(allServe(first)).WithTimeout(time.Minute).Should(Succeed())

	// Twice the budget goes offline; their inferd processes keep serving.
	var offline []string
	for i := 0; i < 2*budget; i++ {
		offline = append(offline, targets[i*len(targets)/(2*budget)])
	}
	goOffline(t, offline)

	patch := fmt.Sprintf(`{"spec":{"digest":%q,"sizeBytes":%d,"source":{"http":{"url":%q}}}}`,
		digests["second.gguf"], len(files["second.gguf"]), base+"/second.gguf")
	g.Expect(c.Patch(ctx, &slmopsv1alpha1.SLMModel{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: m.Name}},
		client.RawPatch(types.MergePatchType, []byte(patch)))).To(Succeed())
	got := waitForPhase(t, c, r, slmopsv1alpha1.PhaseCompleted, first, 4*time.Minute, nil)
	second := got.Status.StableRevision
	g.Expect(got.Status.UnreachableNodes).To(BeEquivalentTo(len(offline)))
	v := viewFleet(t, ns, r.Name)
	for _, n := range offline {
		g.Expect(v.revisionOf[n]).To(Equal(first), "offline node %s was relabelled while away", n)
	}

	// All reconnect at once. The fleet is sampled from informer caches: a
	// list of 200 nodes can take longer than the 100 ms between samples.
	fleet := watchFleet(t, ns, r.Name)
	for _, n := range offline {
		g.Expect(cluster.SetNodeOffline(ctx, n, false)).To(Succeed())
	}
	back := time.Now()
	worst, samples := 0, 0
	g.Eventually(func(g Gomega) {
		v := fleet.view(t)
		down := 0
		for _, n := range targets {
			if _, ok := v.readyOn[n]; v.reachable[n] && !ok {
				down++
			}
		}
		worst, samples = max(worst, down), samples+1
		for _, n := range offline {
			g.Expect(v.reachable[n]).To(BeTrue(), "node %s is not back", n)
		}
		for _, n := range targets {
			g.Expect(v.revisionOf[n]).To(Equal(second), "cohort label of %s", n)
			g.Expect(v.readyOn[n].revision).To(Equal(second), "ready serving pod on %s", n)
		}
	}).WithTimeout(4 * time.Minute).WithPolling(100 * time.Millisecond).Should(Succeed())
	fmt.Printf("returning nodes with real pods: %d of %d inferd nodes reconnected at once and switched in %s; at most %d reachable target nodes were without a ready serving pod (maxUnavailable %d; %d samples; %d inferd processes started in the test)\n",
		len(offline), len(targets), time.Since(back).Round(100*time.Millisecond), worst, budget, samples, pk.Started())
	g.Expect(worst).To(BeNumerically("<=", budget))
}

// tail is the end of s, at most n bytes.
func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// goOffline takes the nodes offline until the test ends, and waits until
// they are NotReady.
func goOffline(t *testing.T, names []string) {
	t.Helper()
	g := NewWithT(t)
	for _, n := range names {
		g.Expect(cluster.SetNodeOffline(context.Background(), n, true)).To(Succeed())
	}
	t.Cleanup(func() {
		for _, n := range names {
			_ = cluster.SetNodeOffline(context.Background(), n, false)
		}
	})
	g.Eventually(func() int {
		return len(reachable(t, names))
	}).WithTimeout(30 * time.Second).Should(BeZero())
}

// reachable are the nodes of names that are Ready.
func reachable(t *testing.T, names []string) []string {
	t.Helper()
	var out []string
	for _, n := range names {
		node, err := cluster.Clientset.CoreV1().Nodes().Get(context.Background(), n, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if localcluster.NodeReady(node) {
			out = append(out, n)
		}
	}
	return out
}
