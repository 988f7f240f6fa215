package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/inferd/engine/bigram"
	"github.com/slmops/slmops/inferd/gguf"
	"github.com/slmops/slmops/test/localcluster"
	"github.com/slmops/slmops/test/testenv"
)

// TestStagingFailureFailsTheRollout: no success without nodes. A site of 50
// nodes runs a stable model; the model is changed to a file that the origin
// answers 404 for. The stagers (real inferd processes) cannot stage it: the
// rollout must not complete on zero nodes, but fail with StagingFailed and
// roll back, while the stable pods keep serving. kstatus, the Argo CD health
// script and `kubectl slm status --watch` all report the failure, and the
// origin is asked about the missing file by one stager per site, not by every
// node. Once the origin serves the file, slmops.dev/retry completes it.
func TestStagingFailureFailsTheRollout(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	c := kube(t)
	inferdBin, slmBin := buildBinary(t, "./cmd/inferd"), buildBinary(t, "./cmd/kubectl-slm")
	const prefix = "staging-fails"
	ns := newNamespace(t, "e2e-"+prefix)
	site := localcluster.SiteName(1, suiteSites)

	file := func(seed int) ([]byte, string) {
		var buf bytes.Buffer
		g.Expect(bigram.Write(&buf, bigram.BuildOptions{Name: fmt.Sprintf("staging-%d", seed), Type: gguf.Q8_0, PadBytes: 256<<10 + uint64(seed)})).To(Succeed())
		sum := sha256.Sum256(buf.Bytes())
		return buf.Bytes(), "sha256:" + hex.EncodeToString(sum[:])
	}
	stableData, stableDigest := file(1)
	newData, newDigest := file(2)

	// The origin serves the stable file, and answers 404 for the new one
	// until the test fixes it.
	var fixed atomic.Bool
	var asked atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	origin := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/stable.gguf":
			http.ServeContent(w, r, "stable.gguf", time.Unix(0, 0), bytes.NewReader(stableData))
		case "/new.gguf":
			asked.Add(1)
			if !fixed.Load() {
				http.NotFound(w, r)
				return
			}
			http.ServeContent(w, r, "new.gguf", time.Unix(0, 0), bytes.NewReader(newData))
		default:
			http.NotFound(w, r)
		}
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = origin.Serve(ln) }()
	t.Cleanup(func() { _ = origin.Close() })
	base := "http://" + ln.Addr().String()

	// The stagers of this rollout run as real inferd processes.
	hasStage, err := labels.NewRequirement(slmopsv1alpha1.StageRevisionLabel, selection.Exists, nil)
	g.Expect(err).NotTo(HaveOccurred())
	inNS, err := labels.NewRequirement(slmopsv1alpha1.RolloutLabel, selection.Equals, []string{prefix})
	g.Expect(err).NotTo(HaveOccurred())
	root, err := os.MkdirTemp("", "slmops-nodes-")
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	pk, err := cluster.StartProcessKubelet(ctx, localcluster.ProcessKubeletOptions{
		Name: prefix, Selector: labels.NewSelector().Add(*hasStage, *inNS), Binary: inferdBin, Root: root,
	})
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = pk.Stop() })
	startOperator(t, ns)

	m := model(ns, stableDigest)
	m.Spec.Source.HTTP.URL, m.Spec.Source.HTTP.AllowInsecureHTTP = base+"/stable.gguf", true
	m.Spec.SizeBytes = ptr.To(int64(len(stableData)))
	r := rollout(ns, "10%", "100%")
	r.Name = prefix
	r.Spec.NodeSelector.MatchLabels[localcluster.ZoneLabel] = site
	// A loaded 2-core machine runs 200 stager processes here: give kwok's
	// simulated serving pods time, since this test is not about the deadline.
	r.Spec.Strategy.Canary.ProgressDeadlineSeconds = 180
	r.Spec.Strategy.Canary.MinReadySeconds = ptr.To[int32](0)
	r.Spec.Distribution.Staging = &slmopsv1alpha1.Staging{LookaheadSteps: ptr.To[int32](1), MaxConcurrentNodes: 50}
	r.Spec.Distribution.PeerSharing = &slmopsv1alpha1.PeerSharing{MaxPeers: 3}
	createRollout(t, c, m, r)
	targets := map[string]bool{}
	for i := range suiteNodes {
		if localcluster.SiteName(i, suiteSites) == site {
			targets[localcluster.NodeName(i, suiteSites)] = true
		}
	}
	stable := waitForPhase(t, c, r, slmopsv1alpha1.PhaseCompleted, "", 3*time.Minute, nil).Status.StableRevision
	allServe := func(rev string) func(g Gomega) {
		return func(g Gomega) {
			v := viewFleet(t, ns, r.Name)
			for node := range targets {
				g.Expect(v.revisionOf[node]).To(Equal(rev), "cohort label of %s", node)
				g.Expect(v.readyOn[node].revision).To(Equal(rev), "ready pod on %s", node)
			}
		}
	}
	g.Eventually(allServe(stable)).WithTimeout(time.Minute).Should(Succeed())

	// The new file is missing at the origin.
	patch := fmt.Sprintf(`{"spec":{"digest":%q,"sizeBytes":%d,"source":{"http":{"url":%q}}}}`, newDigest, len(newData), base+"/new.gguf")
	g.Expect(c.Patch(ctx, &slmopsv1alpha1.SLMModel{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: m.Name}},
		client.RawPatch(types.MergePatchType, []byte(patch)))).To(Succeed())

	// The rollout fails, and says why.
	var failed *slmopsv1alpha1.EdgeRollout
	g.Eventually(func(g Gomega) {
		failed = get(t, c, r)
		g.Expect(failed.Status.Phase).NotTo(Equal(slmopsv1alpha1.PhaseCompleted), "completed on %d nodes", failed.Status.ReadyNodes)
		g.Expect(failed.Status.Phase).To(Equal(slmopsv1alpha1.PhaseRolledBack), "conditions: %v", failed.Status.Conditions)
	}).WithTimeout(4 * time.Minute).WithPolling(250 * time.Millisecond).Should(Succeed())
	g.Expect(failed.Status.StableRevision).To(Equal(stable))
	g.Expect(conditionReason(failed, slmopsv1alpha1.ConditionStalled)).To(Equal(slmopsv1alpha1.ReasonStagingFailed))
	msg := conditionMessage(failed, slmopsv1alpha1.ConditionStalled)
	g.Expect(msg).To(ContainSubstring("target nodes excluded, more than maxExcludedNodes"))
	g.Expect(msg).To(ContainSubstring("404"))
	g.Expect(failed.Status.FailingNodes).NotTo(BeEmpty())
	for _, f := range failed.Status.FailingNodes {
		g.Expect(targets[f.Node]).To(BeTrue(), "failing node %s is not a target", f.Node)
		g.Expect(f.Message).To(ContainSubstring("404"), "failing node %s", f.Node)
	}
	askedAtFailure := asked.Load()
	fmt.Printf("staging failure: the origin was asked %d times for the missing file by the stagers of %d nodes in 1 site before the rollout failed\n", askedAtFailure, len(targets))

	// Every tool that reads health reports the failure.
	u, err := toUnstructuredRollout(failed)
	g.Expect(err).NotTo(HaveOccurred())
	ks, err := status.Compute(u)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ks.Status).To(Equal(status.FailedStatus), "kstatus: %s", ks.Message)
	script, err := testenv.ArgoCDHealthScript()
	g.Expect(err).NotTo(HaveOccurred())
	failed.APIVersion, failed.Kind = slmopsv1alpha1.GroupVersion.String(), "EdgeRollout"
	health, healthMsg, err := testenv.ArgoCDHealth(script, failed)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(health).To(Equal("Degraded"), "Argo CD health: %s", healthMsg)
	g.Expect(healthMsg).To(ContainSubstring("excluded"))
	watchCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := exec.CommandContext(watchCtx, slmBin, "--kubeconfig", cluster.Kubeconfig, "-n", ns, "status", r.Name, "--watch").CombinedOutput()
	var exit *exec.ExitError
	g.Expect(errors.As(err, &exit)).To(BeTrue(), "kubectl slm status --watch: %v\n%s", err, out)
	g.Expect(exit.ExitCode()).To(Equal(1), "kubectl slm status --watch exit code\n%s", out)
	g.Expect(string(out)).To(ContainSubstring("RolledBack"))

	// The stable pods kept serving throughout, and the stagers are gone:
	// nothing asks the origin any more.
	g.Eventually(allServe(stable)).WithTimeout(time.Minute).Should(Succeed())
	g.Eventually(func() int { return len(stageLabelled(t, ns, r.Name)) }).WithTimeout(time.Minute).Should(BeZero())
	settled := asked.Load()
	time.Sleep(15 * time.Second)
	g.Expect(asked.Load()-settled).To(BeZero(), "the origin is still asked for the missing file after the rollback")
	g.Expect(settled).To(BeNumerically("<=", 4), "the origin was asked %d times; want one stager per site (a few retries), not one per node", settled)

	// The origin is fixed; a retry rolls the model out.
	fixed.Store(true)
	g.Expect(c.Patch(ctx, &slmopsv1alpha1.EdgeRollout{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: r.Name}},
		client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+slmopsv1alpha1.RetryAnnotation+`":"after-the-origin-fix"}}}`)))).To(Succeed())
	done := waitForPhase(t, c, r, slmopsv1alpha1.PhaseCompleted, stable, 4*time.Minute, nil)
	g.Expect(done.Status.StableRevision).To(Equal(failed.Status.CanaryRevision))
	g.Eventually(allServe(done.Status.StableRevision)).WithTimeout(time.Minute).Should(Succeed())
	g.Expect(strings.Contains(conditionMessage(done, slmopsv1alpha1.ConditionReady), "excluded")).To(BeFalse(),
		"no node should be excluded once the origin serves the file: %s", conditionMessage(done, slmopsv1alpha1.ConditionReady))
}

func toUnstructuredRollout(r *slmopsv1alpha1.EdgeRollout) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(r)
	if err != nil {
		return nil, err
	}
	return &unstructured.Unstructured{Object: m}, nil
}
