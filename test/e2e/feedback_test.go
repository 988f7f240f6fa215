package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/inferd/config"
	"github.com/slmops/slmops/inferd/engine/llama/llamatest"
	"github.com/slmops/slmops/inferd/gguf"
	"github.com/slmops/slmops/test/localcluster"
)

// The feedback loop end to end: real inferd processes serve the canary on
// nodes of two hardware classes (ARM boards bounded to a twentieth of a
// core, mini PCs to a tenth: the bounds of all 24 together fit in this
// machine's two cores, so what each measures is its own bound, not its
// neighbours), run the golden prompts on their node, and report what they
// measured into their own pod; the operator decides the canary from that.

// feedbackCPU is the CPU bound of the two hardware classes.
var feedbackCPU = map[string]string{"arm64": "50m", "amd64": "100m"}

// modelOrigin serves the models of a test over HTTP.
type modelOrigin struct {
	base    string
	files   map[string][]byte
	digests map[string]string
}

// serveModels writes a random-weight llama-architecture GGUF per spec and
// serves them.
func serveModels(t *testing.T, specs map[string]llamatest.RandomSpec) *modelOrigin {
	t.Helper()
	o := &modelOrigin{files: map[string][]byte{}, digests: map[string]string{}}
	for name, spec := range specs {
		var buf bytes.Buffer
		if err := llamatest.WriteRandom(&buf, spec); err != nil {
			t.Fatal(err)
		}
		o.files[name] = buf.Bytes()
		sum := sha256.Sum256(buf.Bytes())
		o.digests[name] = "sha256:" + hex.EncodeToString(sum[:])
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, ok := o.files[strings.TrimPrefix(r.URL.Path, "/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, r.URL.Path, time.Unix(0, 0), bytes.NewReader(data))
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	o.base = "http://" + ln.Addr().String()
	return o
}

// edgeLlama is a small llama-architecture model of layers layers: more
// layers, slower decoding, the rest alike.
func edgeLlama(name string, layers int, seed uint64) llamatest.RandomSpec {
	return llamatest.Edge(name, layers, gguf.Q8_0, seed)
}

// reportAccess installs what the serving inferd pods of ns need to report:
// the ClusterRole and the admission policy that narrows it (cluster-wide,
// as the chart installs them), and ns's ServiceAccount and RoleBinding.
func reportAccess(t *testing.T, ns string) {
	t.Helper()
	if out, err := kubectl("apply", "-f", "../../config/rbac/inferd_report_role.yaml", "-f", "../../config/policy/inferd_policy.yaml"); err != nil {
		t.Fatalf("install the report access: %v\n%s", err, out)
	}
	if out, err := kubectl("apply", "-n", ns, "-f", "../../config/samples/inferd_report_access.yaml"); err != nil {
		t.Fatalf("the report access of %s: %v\n%s", ns, err, out)
	}
}

// realFleet is the setting of a feedback test called name: its namespace
// with the report access, an origin serving the models, 24 real inferd
// serving nodes of the two classes, and the operator with reports on.
func realFleet(t *testing.T, name string, models map[string]llamatest.RandomSpec) (string, *modelOrigin, *realServing, *operator) {
	t.Helper()
	ns := newNamespace(t, "e2e-"+name)
	inferdBin := buildBinary(t, "./cmd/inferd")
	origin := serveModels(t, models)
	reportAccess(t, ns)
	rs := startRealServingOn(t, name, inferdBin, 24, feedbackCPU)
	return ns, origin, rs, startOperator(t, ns, "--inferd-reports")
}

// feedbackModel is the SLMModel of file, served by o, with one golden
// prompt.
func feedbackModel(ns string, o *modelOrigin, file string) *slmopsv1alpha1.SLMModel {
	m := model(ns, o.digests[file])
	m.Spec.Source.HTTP.URL, m.Spec.Source.HTTP.AllowInsecureHTTP = o.base+"/"+file, true
	m.Spec.SizeBytes = ptr.To(int64(len(o.files[file])))
	m.Spec.Quantization, m.Spec.Architecture = slmopsv1alpha1.QuantizationQ8_0, "llama"
	m.Spec.Runtime.ContextLength = 256
	m.Spec.SelfTest = &slmopsv1alpha1.SelfTest{
		Prompts: feedbackPrompts(),
		Timeout: &metav1.Duration{Duration: 3 * time.Minute},
	}
	return m
}

// feedbackPrompts are the feedback models' golden prompts: 600 tokens in
// all, so that the decode rate a node measures spans many CFS periods of
// its CPU bound (about 15 at the x86 class's 100m) and is the bound's, not
// where a burst fell against a period's edge. With one prompt of 96
// tokens (two or three periods), the x86 nodes of one revision measured
// from 640 to 3,980 tokens/s, and a canary as fast as stable was rolled
// back as slower.
func feedbackPrompts() []slmopsv1alpha1.GoldenPrompt {
	return []slmopsv1alpha1.GoldenPrompt{
		{Prompt: "hello edge", MaxTokens: 200},
		{Prompt: "edge hello", MaxTokens: 200},
		{Prompt: "hello again", MaxTokens: 200},
	}
}

// feedbackRollout is a rollout over the real nodes in three steps, with
// hardware classes by architecture.
func feedbackRollout(ns, name string) *slmopsv1alpha1.EdgeRollout {
	r := rollout(ns, "10%", "50%", "100%")
	r.Name = name
	r.Spec.NodeSelector.MatchLabels = map[string]string{localcluster.ProcessNodeLabel: "true"}
	r.Spec.Strategy.Canary.ProgressDeadlineSeconds = 300
	r.Spec.Strategy.Canary.MinReadySeconds = ptr.To[int32](0)
	r.Spec.Strategy.Canary.MaxUnavailable = ptr.To(intstr.FromString("50%"))
	r.Spec.Analysis.HardwareClassLabels = []string{corev1.LabelArchStable}
	return r
}

// patchModel merge-patches the SLMModel.
func patchModel(t *testing.T, c client.Client, ns, name, patch string) {
	t.Helper()
	if err := c.Patch(context.Background(), &slmopsv1alpha1.SLMModel{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}},
		client.RawPatch(types.MergePatchType, []byte(patch))); err != nil {
		t.Fatal(err)
	}
}

// waitForNewCanary waits until the rollout runs a canary other than not, and
// returns its revision.
func waitForNewCanary(t *testing.T, c client.Client, r *slmopsv1alpha1.EdgeRollout, not string) string {
	t.Helper()
	var rev string
	NewWithT(t).Eventually(func(g Gomega) {
		got := get(t, c, r)
		g.Expect(got.Status.CanaryRevision).NotTo(BeEmpty())
		g.Expect(got.Status.CanaryRevision).NotTo(Equal(not))
		rev = got.Status.CanaryRevision
	}).WithTimeout(time.Minute).Should(Succeed())
	return rev
}

// servingPods are the rollout's serving pods by node, of revision rev (all
// revisions when empty).
func servingPods(t *testing.T, ns, rev string) map[string]*corev1.Pod {
	t.Helper()
	sel := slmopsv1alpha1.ComponentLabel + "=" + slmopsv1alpha1.ComponentModelServer
	if rev != "" {
		sel += "," + slmopsv1alpha1.RevisionLabel + "=" + rev
	}
	pods, err := cluster.Clientset.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*corev1.Pod{}
	for i := range pods.Items {
		if pods.Items[i].DeletionTimestamp == nil {
			out[pods.Items[i].Spec.NodeName] = &pods.Items[i]
		}
	}
	return out
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// auditEvent is what these tests read of an API server audit event.
type auditEvent struct {
	Verb string `json:"verb"`
	User struct {
		Username string `json:"username"`
	} `json:"user"`
	UserAgent string `json:"userAgent"`
	ObjectRef struct {
		Resource    string `json:"resource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	ResponseStatus struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
}

// auditFrom reads the audit events logged after offset.
func auditFrom(t *testing.T, offset int64) []auditEvent {
	t.Helper()
	f, err := os.Open(cluster.AuditLog)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(offset, 0); err != nil {
		t.Fatal(err)
	}
	var out []auditEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e auditEvent
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			out = append(out, e)
		}
	}
	return out
}

func auditOffset(t *testing.T) int64 {
	t.Helper()
	fi, err := os.Stat(cluster.AuditLog)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// slmopsWrites counts the successful writes of the operator (its user
// agent is the manager binary's) and of ns's inferd pods (their service
// account) that concern ns or the nodes given, and the operator's by
// resource.
func slmopsWrites(events []auditEvent, ns string, nodes []string) (operator, inferd int, byResource map[string]int) {
	byResource = map[string]int{}
	isNode := map[string]bool{}
	for _, n := range nodes {
		isNode[n] = true
	}
	for _, e := range events {
		if e.ResponseStatus.Code >= 300 {
			continue
		}
		ours := e.ObjectRef.Namespace == ns || (e.ObjectRef.Resource == "nodes" && isNode[e.ObjectRef.Name])
		switch {
		case !ours:
		case e.User.Username == "system:serviceaccount:"+ns+":"+slmopsv1alpha1.InferdServiceAccount:
			inferd++
		case strings.HasPrefix(e.UserAgent, "manager/"):
			operator++
			r := e.Verb + " " + e.ObjectRef.Resource
			if e.ObjectRef.Subresource != "" {
				r += "/" + e.ObjectRef.Subresource
			}
			byResource[r]++
		}
	}
	return operator, inferd, byResource
}

// TestCanaryDecidedByInferd: 24 real inferd serving pods on two hardware
// classes and two sites decide their canaries. A good model goes through
// every step, and every pod answers the OpenAI client; a model whose golden
// prompt cannot be matched is never promoted past step 1 and rolls back with
// inferd's own reason; a file that fails verification gets Ready nowhere and
// rolls back with DigestMismatch; and a canary about half as fast as stable
// on the same class fails with SlowerThanStable and both figures. The first
// revision costs at most 3 API writes per node, counted in the audit log.
func TestCanaryDecidedByInferd(t *testing.T) {
	g := NewWithT(t)
	c := kube(t)
	ctx := context.Background()
	const name = "decided"
	ns, origin, rs, _ := realFleet(t, name, map[string]llamatest.RandomSpec{
		"fast.gguf": edgeLlama(name+"-fast", 2, 1),
		"slow.gguf": edgeLlama(name+"-slow", 5, 2),
	})
	sites := map[string]bool{}
	for _, n := range rs.nodes {
		node, err := cluster.Clientset.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		sites[node.Labels[localcluster.ZoneLabel]] = true
	}
	g.Expect(len(sites)).To(BeNumerically(">=", 2), "the real nodes span sites")

	// (a) A good model: every step, every node.
	offset := auditOffset(t)
	m := feedbackModel(ns, origin, "fast.gguf")
	r := feedbackRollout(ns, name)
	r.Spec.Analysis.MinRelativeThroughput = "0.9"
	createRollout(t, c, m, r)
	got := waitForPhase(t, c, r, slmopsv1alpha1.PhaseCompleted, "", 8*time.Minute, nil)
	stable := got.Status.StableRevision
	pods := servingPods(t, ns, stable)
	g.Expect(pods).To(HaveLen(len(rs.nodes)))
	for _, node := range rs.nodes {
		pod := pods[node]
		g.Expect(pod).NotTo(BeNil(), "no serving pod on %s", node)
		g.Expect(podReady(pod)).To(BeTrue(), "%s on %s", pod.Name, node)
		g.Expect(pod.Status.ContainerStatuses[0].ContainerID).To(HavePrefix("process://"), "%s is not a real process", pod.Name)
		// inferd writes its report after it turned Ready, without holding
		// readiness up: it may land a moment after the pod is Ready.
		g.Eventually(func(g Gomega) {
			p, err := cluster.Clientset.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			rep, err := config.ParseReport(p.Annotations[config.ReportAnnotation])
			g.Expect(err).NotTo(HaveOccurred(), "the self-test report of %s", pod.Name)
			g.Expect(rep.Passed).To(BeTrue())
			g.Expect(rep.Digest).To(Equal(m.Spec.Digest))
			g.Expect(rep.DecodeTokensPerSecond).To(BeNumerically(">", 0))
		}).WithTimeout(30 * time.Second).Should(Succeed())
		base := "http://" + net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(int(pod.Spec.Containers[0].Ports[0].ContainerPort)))
		oc := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey("x"), option.WithMaxRetries(0))
		completion, err := oc.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: m.Name, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("what runs at the edge?")},
			MaxTokens: openai.Int(4), Seed: openai.Int(1),
		})
		g.Expect(err).NotTo(HaveOccurred(), "chat completion on %s", node)
		g.Expect(completion.Choices).To(HaveLen(1))
	}
	// The status counts the last reports within countsInterval (5 s).
	g.Eventually(func(g Gomega) {
		got = get(t, c, r)
		g.Expect(got.Status.HardwareClasses).To(HaveLen(2), "two hardware classes: %+v", got.Status.HardwareClasses)
		for _, hc := range got.Status.HardwareClasses {
			g.Expect(hc.Stable).NotTo(BeNil())
			g.Expect(hc.Stable.Reports).To(Equal(hc.Nodes), "class %s: every node reported", hc.Name)
		}
	}).WithTimeout(30 * time.Second).Should(Succeed())
	for _, hc := range got.Status.HardwareClasses {
		fmt.Printf("feedback: class %s (CPU %s): %d nodes, self-test decode %s tokens/s p50, %s p90; first token %ss p50\n",
			hc.Name, feedbackCPU[strings.SplitN(hc.Name, "/", 2)[0]], hc.Nodes, hc.Stable.DecodeTokensPerSecondP50, hc.Stable.DecodeTokensPerSecondP90, hc.Stable.TimeToFirstTokenSecondsP50)
	}
	operatorWrites, inferdWrites, byResource := slmopsWrites(auditFrom(t, offset), ns, rs.nodes)
	perNode := float64(operatorWrites+inferdWrites) / float64(len(rs.nodes))
	fmt.Printf("feedback: the first revision on %d real nodes took %d operator writes (%v) and %d inferd writes: %.2f API writes per node\n",
		len(rs.nodes), operatorWrites, byResource, inferdWrites, perNode)
	if inferdWrites != len(rs.nodes) {
		t.Errorf("%d inferd writes for %d nodes; want one report per node", inferdWrites, len(rs.nodes))
	}
	if perNode > 3 {
		t.Errorf("%.2f API writes per node for the first revision; want at most 3", perNode)
	}

	// (b) A golden prompt no answer can match: never past step 1.
	patchModel(t, c, ns, m.Name, `{"spec":{"selfTest":{"prompts":[{"prompt":"hello edge","maxTokens":8,"expectRegex":"^no answer of a random model says this [0-9]{40}$"}]}}}`)
	canary := waitForNewCanary(t, c, r, "")
	maxCanary := int32(0)
	got = waitForPhase(t, c, r, slmopsv1alpha1.PhaseRolledBack, "", 5*time.Minute, func() {
		if st := get(t, c, r).Status; st.CanaryRevision == canary {
			maxCanary = max(maxCanary, st.CanaryNodes)
			g.Expect(st.CurrentStep).To(BeZero(), "a canary that fails its self-test was promoted")
		}
	})
	g.Expect(got.Status.CanaryRevision).To(Equal(canary))
	g.Expect(maxCanary).To(BeNumerically("<=", 3), "step 1 of 24 nodes is 3")
	g.Expect(got.Status.FailingNodes).NotTo(BeEmpty())
	for _, f := range got.Status.FailingNodes {
		g.Expect(f.Reason).To(Equal(config.ReasonSelfTestFailed), "%+v", f)
		g.Expect(f.Message).To(ContainSubstring("does not match expectRegex"))
	}
	fmt.Printf("feedback: a failing golden prompt: RolledBack at step 1 with %s on %d nodes: %s\n", got.Status.FailingNodes[0].Reason, len(got.Status.FailingNodes), got.Status.FailingNodes[0].Message)

	// (c) A file that fails verification: the digest of another file.
	prompts, err := json.Marshal(feedbackPrompts())
	g.Expect(err).NotTo(HaveOccurred())
	patchModel(t, c, ns, m.Name, fmt.Sprintf(`{"spec":{"digest":%q,"selfTest":{"prompts":%s}}}`, digestOf(99), prompts))
	canary = waitForNewCanary(t, c, r, canary)
	readyCanary := 0
	got = waitForPhase(t, c, r, slmopsv1alpha1.PhaseRolledBack, "", 5*time.Minute, func() {
		for _, p := range servingPods(t, ns, canary) {
			if podReady(p) {
				readyCanary++
			}
		}
	})
	g.Expect(got.Status.CanaryRevision).To(Equal(canary))
	g.Expect(readyCanary).To(BeZero(), "a pod of a file that fails verification got Ready")
	g.Expect(got.Status.FailingNodes).NotTo(BeEmpty())
	for _, f := range got.Status.FailingNodes {
		g.Expect(f.Reason).To(Equal(config.ReasonDigestMismatch), "%+v", f)
	}
	fmt.Printf("feedback: a file that fails verification: RolledBack with %s: %s\n", got.Status.FailingNodes[0].Reason, got.Status.FailingNodes[0].Message)

	// (d) A canary about half as fast: SlowerThanStable.
	patchModel(t, c, ns, m.Name, fmt.Sprintf(`{"spec":{"digest":%q,"sizeBytes":%d,"source":{"http":{"url":%q}}}}`,
		origin.digests["slow.gguf"], len(origin.files["slow.gguf"]), origin.base+"/slow.gguf"))
	canary = waitForNewCanary(t, c, r, canary)
	got = waitForPhase(t, c, r, slmopsv1alpha1.PhaseRolledBack, "", 5*time.Minute, nil)
	g.Expect(got.Status.CanaryRevision).To(Equal(canary))
	cond := apimeta.FindStatusCondition(got.Status.Conditions, slmopsv1alpha1.ConditionDegraded)
	g.Expect(cond).NotTo(BeNil())
	g.Expect(cond.Reason).To(Equal(slmopsv1alpha1.ReasonSlowerThanStable), cond.Message)
	g.Expect(cond.Message).To(And(ContainSubstring("of stable's"), ContainSubstring("below minRelativeThroughput 0.9")))
	fmt.Printf("feedback: a canary with 5 layers instead of 2: %s: %s\n", cond.Reason, cond.Message)
	g.Eventually(func() int { return len(servingPods(t, ns, stable)) }).WithTimeout(2*time.Minute).Should(Equal(len(rs.nodes)), "every node back on stable")
}

// TestPerClassRollback: under analysis.scope HardwareClass, a new revision
// whose ARM variant is too slow on the ARM boards (more layers) while its
// x86 file keeps up: the x86 class completes, the ARM class stays on the
// stable revision, and status, Events, metrics and kubectl slm status say so.
func TestPerClassRollback(t *testing.T) {
	g := NewWithT(t)
	c := kube(t)
	ctx := context.Background()
	const name = "per-class"
	ns, origin, rs, op := realFleet(t, name, map[string]llamatest.RandomSpec{
		"fast.gguf":  edgeLlama(name+"-fast", 2, 1),
		"fast2.gguf": edgeLlama(name+"-fast2", 2, 3),
		"slow.gguf":  edgeLlama(name+"-slow", 12, 2),
	})

	m := feedbackModel(ns, origin, "fast.gguf")
	r := feedbackRollout(ns, name)
	// The ARM variant, 12 layers against stable's 2, does about 5.5 times
	// the work per token, and decodes at 0.13 to 0.14 of stable's rate; the
	// x86 file at stable's, within what a shared machine's timing spreads.
	// That spread is wide: all the nodes share two cores with the other
	// tests, and a load burst slows every canary of a class at once (with a
	// 5-layer ARM file and a bound of 0.6, an x86 canary as fast as stable
	// measured 0.52 of it, and was rolled back). The bound sits between:
	// 1.7x under the slowest fast canary seen, 2x over the slow one.
	r.Spec.Analysis.MinRelativeThroughput = "0.3"
	r.Spec.Analysis.Scope = slmopsv1alpha1.AnalysisScopeHardwareClass
	createRollout(t, c, m, r)
	stable := waitForPhase(t, c, r, slmopsv1alpha1.PhaseCompleted, "", 8*time.Minute, nil).Status.StableRevision

	// The new revision: another file as fast for x86, a slower one for ARM.
	patch := fmt.Sprintf(`{"spec":{"digest":%q,"sizeBytes":%d,"source":{"http":{"url":%q}},"variants":[{"name":"arm","nodeSelector":{"matchLabels":{"kubernetes.io/arch":"arm64"}},"source":{"http":{"url":%q,"allowInsecureHTTP":true}},"digest":%q,"sizeBytes":%d,"quantization":"Q8_0"}]}}`,
		origin.digests["fast2.gguf"], len(origin.files["fast2.gguf"]), origin.base+"/fast2.gguf",
		origin.base+"/slow.gguf", origin.digests["slow.gguf"], len(origin.files["slow.gguf"]))
	patchModel(t, c, ns, m.Name, patch)
	got := waitForPhase(t, c, r, slmopsv1alpha1.PhaseCompleted, stable, 8*time.Minute, nil)
	newRev := got.Status.StableRevision
	g.Expect(got.Status.ExcludedClasses).To(HaveLen(1), "%+v", got.Status.ExcludedClasses)
	ex := got.Status.ExcludedClasses[0]
	g.Expect(ex.Name).To(Equal("arm64"))
	g.Expect(ex.Revision).To(Equal(stable))
	g.Expect(ex.Reason).To(Equal(slmopsv1alpha1.ReasonSlowerThanStable))
	g.Expect(ex.Message).To(ContainSubstring("of stable's"))
	g.Expect(apimeta.IsStatusConditionTrue(got.Status.Conditions, slmopsv1alpha1.ConditionPartiallyRolledBack)).To(BeTrue())
	fmt.Printf("feedback: per class: %s stays on %s: %s\n", ex.Name, ex.Revision, ex.Message)

	// Every node runs its class's revision.
	g.Eventually(func(g Gomega) {
		v := viewFleet(t, ns, r.Name)
		for _, n := range rs.nodes {
			node, err := cluster.Clientset.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			want := newRev
			if node.Labels[corev1.LabelArchStable] == "arm64" {
				want = stable
			}
			g.Expect(v.revisionOf[n]).To(Equal(want), "node %s", n)
			g.Expect(v.readyOn[n].revision).To(Equal(want), "ready pod on %s", n)
		}
	}).WithTimeout(2 * time.Minute).Should(Succeed())

	events, err := cluster.Clientset.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	var reasons []string
	for _, e := range events.Items {
		reasons = append(reasons, e.Reason)
	}
	g.Expect(reasons).To(ContainElement(slmopsv1alpha1.EventReasonClassRolledBack))
	for _, series := range []string{
		`slmops_rollout_class_nodes{class="amd64",namespace="` + ns + `",revision="` + newRev + `",rollout="` + name + `",state="ready"} 12`,
		`slmops_rollout_class_nodes{class="arm64",namespace="` + ns + `",revision="` + stable + `",rollout="` + name + `",state="ready"} 12`,
		`slmops_rollout_class_decode_tokens_per_second{class="arm64",namespace="` + ns + `",quantile="0.5",revision="` + stable + `",rollout="` + name + `"}`,
	} {
		g.Eventually(func() bool { return strings.Contains(op.metrics(), series) }).WithTimeout(20*time.Second).Should(BeTrue(), "the operator serves %s", series)
	}
	out, err := kubectlSLM(t, "status", name, "-n", ns)
	g.Expect(err).NotTo(HaveOccurred(), out)
	g.Expect(out).To(And(ContainSubstring("HARDWARE CLASS"), ContainSubstring("EXCLUDED CLASS"), ContainSubstring("SlowerThanStable")))
	fmt.Printf("feedback: kubectl slm status %s:\n%s\n", name, out)
}
