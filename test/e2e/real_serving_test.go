package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/inferd/engine/llama/llamatest"
	"github.com/slmops/slmops/inferd/gguf"
	"github.com/slmops/slmops/test/localcluster"
)

// inferdStatus is the part of inferd's /status this test reads.
type inferdStatus struct {
	Phase string `json:"phase"`
	Ready bool   `json:"ready"`
	Node  string `json:"node"`
	Model struct {
		Architecture string `json:"architecture"`
		Engine       string `json:"engine"`
	} `json:"model"`
	SelfTest *struct {
		Passed          bool    `json:"passed"`
		TokensPerSecond float64 `json:"tokensPerSecond"`
	} `json:"selfTest"`
}

// TestRealServingPodsOnTwoCPUClasses: a rollout of a small llama-architecture
// model (random weights) to 4 nodes whose serving pods are real inferd
// processes, 2 ARM boards bounded to half a core and 2 mini PCs to 2, while the
// other 196 nodes stay kwok-simulated. Every pod gets Ready on its own
// self-test and answers the OpenAI client, and /status shows each class's
// compute threads and decode rate.
func TestRealServingPodsOnTwoCPUClasses(t *testing.T) {
	g := NewWithT(t)
	c := kube(t)
	ctx := context.Background()
	ns := newNamespace(t, "e2e-real-serving")
	const name, modelName = "real-serving", "edge-llama"
	inferdBin := buildBinary(t, "./cmd/inferd")

	var file bytes.Buffer
	// Big enough that a self-test of 128 tokens spans many CFS periods
	// (100 ms), so that the quota shows in the decode rate.
	spec := llamatest.RandomSpec{Name: modelName, Embd: 512, Layers: 8, Heads: 8, KVHeads: 4, FF: 1536, Vocab: 1024, Context: 512,
		Type: gguf.Q8_0, Seed: 7, ChatMLTokens: true}
	g.Expect(llamatest.WriteRandom(&file, spec)).To(Succeed())
	sum := sha256.Sum256(file.Bytes())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	g.Expect(err).NotTo(HaveOccurred())
	origin := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "model.gguf", time.Unix(0, 0), bytes.NewReader(file.Bytes()))
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = origin.Serve(ln) }()
	t.Cleanup(func() { _ = origin.Close() })

	processes := startRealServing(t, name, inferdBin, 4)
	op := startSecureOperator(t, ns)
	m := model(ns, "sha256:"+hex.EncodeToString(sum[:]))
	m.Spec.Source.HTTP.URL, m.Spec.Source.HTTP.AllowInsecureHTTP = "http://"+ln.Addr().String()+"/"+modelName+".gguf", true
	m.Spec.SizeBytes = ptr.To(int64(file.Len()))
	m.Spec.Quantization, m.Spec.Architecture = slmopsv1alpha1.QuantizationQ8_0, "llama"
	m.Spec.Runtime.ContextLength = 256
	m.Spec.SelfTest = &slmopsv1alpha1.SelfTest{
		Prompts: []slmopsv1alpha1.GoldenPrompt{{Prompt: "hello edge", MaxTokens: 128}},
		Timeout: &metav1.Duration{Duration: 3 * time.Minute},
	}
	r := rollout(ns, "100%")
	r.Name = name
	r.Spec.NodeSelector.MatchLabels = map[string]string{localcluster.ProcessNodeLabel: "true"}
	// Four inferd processes load and self-test at once on a loaded machine:
	// this test is not about the deadline.
	r.Spec.Strategy.Canary.ProgressDeadlineSeconds = 300
	r.Spec.Strategy.Canary.MinReadySeconds = ptr.To[int32](0)
	createRollout(t, c, m, r)
	waitForPhase(t, c, r, slmopsv1alpha1.PhaseCompleted, "", 6*time.Minute, nil)

	pods, err := cluster.Clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{
		LabelSelector: slmopsv1alpha1.ComponentLabel + "=" + slmopsv1alpha1.ComponentModelServer,
	})
	g.Expect(err).NotTo(HaveOccurred())
	onNode := map[string]*corev1.Pod{}
	for i := range pods.Items {
		onNode[pods.Items[i].Spec.NodeName] = &pods.Items[i]
	}
	g.Expect(onNode).To(HaveLen(len(processes.nodes)), "one serving pod per chosen node, none elsewhere")

	// Prometheus scrapes the manager and, as the chart's PodMonitor has it,
	// the inferd pods, before the requests below, so that their rates show.
	prom := startPrometheus(t, renderAlertRules(t), managerScrapeConfig(t, ns, op.metricsAddr), podMonitorScrapeConfig(t))
	g.Eventually(func() (string, error) {
		return prom.value(fmt.Sprintf(`count(up{namespace=%q, endpoint="http"} == 1)`, ns))
	}).WithTimeout(time.Minute).Should(Equal(strconv.Itoa(len(processes.nodes))), "every real inferd pod scraped")
	rates := map[string][]float64{}
	for _, node := range processes.nodes {
		pod := onNode[node]
		g.Expect(pod).NotTo(BeNil(), "no serving pod on %s", node)
		g.Expect(pod.Status.ContainerStatuses).To(HaveLen(1))
		g.Expect(pod.Status.ContainerStatuses[0].Ready).To(BeTrue(), "%s on %s", pod.Name, node)
		g.Expect(pod.Status.ContainerStatuses[0].ContainerID).To(HavePrefix("process://"), "%s on %s is not a process", pod.Name, node)
		n, err := cluster.Clientset.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		arch := n.Labels[corev1.LabelArchStable]
		bound, err := resource.ParseQuantity(localcluster.DefaultProcessCPU[arch])
		g.Expect(err).NotTo(HaveOccurred())
		// GOMAXPROCS: the bound rounded up, at most this machine's CPUs.
		threads := max(1, min(int((bound.MilliValue()+999)/1000), runtime.NumCPU()))
		base := "http://" + net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(int(pod.Spec.Containers[0].Ports[0].ContainerPort)))

		var st inferdStatus
		resp, err := http.Get(base + "/status") //nolint:noctx // a test's one request
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(json.NewDecoder(resp.Body).Decode(&st)).To(Succeed())
		_ = resp.Body.Close()
		g.Expect(st.Ready).To(BeTrue(), "%s: %+v", node, st)
		g.Expect(st.Node).To(Equal(node))
		g.Expect(st.Model.Architecture).To(Equal("llama"))
		g.Expect(st.SelfTest).NotTo(BeNil())
		g.Expect(st.SelfTest.Passed).To(BeTrue())
		g.Expect(st.SelfTest.TokensPerSecond).To(BeNumerically(">", 0))
		// The class's CPU bound is the engine's threads.
		g.Expect(st.Model.Engine).To(ContainSubstring(fmt.Sprintf("(%d threads", threads)), "%s (%s)", node, arch)
		rates[arch] = append(rates[arch], st.SelfTest.TokensPerSecond)

		client := openai.NewClient(option.WithBaseURL(base+"/v1/"), option.WithAPIKey("x"), option.WithMaxRetries(0))
		completion, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model:     m.Name, // inferd serves the SLMModel by its name
			Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("what runs at the edge?")},
			MaxTokens: openai.Int(8),
			Seed:      openai.Int(1),
		})
		g.Expect(err).NotTo(HaveOccurred(), "chat completion on %s", node)
		g.Expect(completion.Choices).To(HaveLen(1))
		g.Expect(completion.Usage.CompletionTokens).To(BeNumerically(">=", 1))
	}
	g.Expect(rates).To(HaveLen(2), "two hardware classes")

	// Every panel of the chart's dashboard shows this rollout, and a healthy
	// rollout raises no alert.
	for title, queries := range dashboardQueries(t, ns, name) {
		for _, q := range queries {
			g.Eventually(func(g Gomega) {
				res, err := prom.query(q)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(res).NotTo(BeEmpty(), "no series")
				for _, s := range res {
					g.Expect(s.Value[1]).NotTo(Equal("NaN"), "series %v", s.Metric)
				}
			}).WithTimeout(20*time.Second).Should(Succeed(), "panel %q: %s", title, q)
		}
	}
	g.Expect(prom.firing(t, ns)).To(BeEmpty(), "alerts of a Completed rollout")
	// Rates are measurements, not assertions: printed for the reader.
	for arch, r := range rates {
		t.Logf("%s (CPU %s): self-test decode tokens/s %.1f", arch, localcluster.DefaultProcessCPU[arch], r)
	}
}
