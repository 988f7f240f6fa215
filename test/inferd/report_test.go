package inferd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/slmops/slmops/inferd/config"
	"github.com/slmops/slmops/inferd/engine/bigram"
	"github.com/slmops/slmops/inferd/gguf"
	"github.com/slmops/slmops/inferd/server"
	"github.com/slmops/slmops/test/testenv"
)

// TestTheSelfTestReportReachesItsOwnPodOnly runs inferd as a serving pod of
// a real API server would: with a ServiceAccount token bound to its pod
// (TokenRequest), the cluster's CA, and its pod's name from the
// environment. Its self-test report lands in its pod's annotation; with the
// same token, the API server (the ClusterRole of config/rbac and the
// admission policy of config/policy, as shipped) denies patching another
// pod, a label, another annotation or the spec, and reading any pod.
func TestTheSelfTestReportReachesItsOwnPodOnly(t *testing.T) {
	g := NewWithT(t)
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	admin, err := kubernetes.NewForConfig(env.Config)
	g.Expect(err).NotTo(HaveOccurred())
	ctx := context.Background()
	root := testenv.RepoRoot()
	const ns = "stores"

	// What the installer applies: the ClusterRole, the admission policy and
	// its binding, and (in the rollout's namespace) the ServiceAccount and
	// RoleBinding of the sample.
	g.Expect(env.CreateNamespace(ns)).To(Succeed())
	for _, doc := range manifests(t, filepath.Join(root, "config", "rbac", "inferd_report_role.yaml")) {
		var role rbacv1.ClusterRole
		g.Expect(yaml.Unmarshal(doc, &role)).To(Succeed())
		_, err := admin.RbacV1().ClusterRoles().Create(ctx, &role, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
	}
	for _, doc := range manifests(t, filepath.Join(root, "config", "policy", "inferd_policy.yaml")) {
		var kind metav1.TypeMeta
		g.Expect(yaml.Unmarshal(doc, &kind)).To(Succeed())
		switch kind.Kind {
		case "ValidatingAdmissionPolicy":
			var p admissionregistrationv1.ValidatingAdmissionPolicy
			g.Expect(yaml.UnmarshalStrict(doc, &p)).To(Succeed())
			_, err = admin.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, &p, metav1.CreateOptions{})
		case "ValidatingAdmissionPolicyBinding":
			var b admissionregistrationv1.ValidatingAdmissionPolicyBinding
			g.Expect(yaml.UnmarshalStrict(doc, &b)).To(Succeed())
			_, err = admin.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, &b, metav1.CreateOptions{})
		default:
			t.Fatalf("unexpected %s in config/policy/inferd_policy.yaml", kind.Kind)
		}
		g.Expect(err).NotTo(HaveOccurred())
	}
	for _, doc := range manifests(t, filepath.Join(root, "config", "samples", "inferd_report_access.yaml")) {
		var kind metav1.TypeMeta
		g.Expect(yaml.Unmarshal(doc, &kind)).To(Succeed())
		switch kind.Kind {
		case "ServiceAccount":
			var sa corev1.ServiceAccount
			g.Expect(yaml.UnmarshalStrict(doc, &sa)).To(Succeed())
			_, err = admin.CoreV1().ServiceAccounts(ns).Create(ctx, &sa, metav1.CreateOptions{})
		case "RoleBinding":
			var rb rbacv1.RoleBinding
			g.Expect(yaml.UnmarshalStrict(doc, &rb)).To(Succeed())
			_, err = admin.RbacV1().RoleBindings(ns).Create(ctx, &rb, metav1.CreateOptions{})
		}
		g.Expect(err).NotTo(HaveOccurred())
	}

	// Two serving pods of the same ServiceAccount (no node runs them).
	pod := func(name string) *corev1.Pod {
		p, err := admin.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app.kubernetes.io/name": "inferd"},
				Annotations: map[string]string{"example.com/owner": "edge-team"}},
			Spec: corev1.PodSpec{ServiceAccountName: "slmops-inferd", AutomountServiceAccountToken: ptr.To(true),
				Containers: []corev1.Container{{Name: "inferd", Image: "ghcr.io/slmops/inferd:v0.1.0"}}},
		}, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		return p
	}
	mine, other := pod("shops-abc12-mine"), pod("shops-abc12-other")
	token := func(bound *corev1.Pod) string {
		req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}
		if bound != nil {
			req.Spec.BoundObjectRef = &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: bound.Name, UID: bound.UID}
		}
		tr, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "slmops-inferd", req, metav1.CreateOptions{})
		g.Expect(err).NotTo(HaveOccurred())
		return tr.Status.Token
	}
	podToken := token(mine)
	as := func(tok string) *kubernetes.Clientset {
		cfg := rest.AnonymousClientConfig(env.Config)
		cfg.BearerToken = tok
		c, err := kubernetes.NewForConfig(cfg)
		g.Expect(err).NotTo(HaveOccurred())
		return c
	}
	inferdClient := as(podToken)
	patch := func(c *kubernetes.Clientset, name string, p map[string]any) error {
		raw, _ := json.Marshal(p)
		_, err := c.CoreV1().Pods(ns).Patch(ctx, name, types.MergePatchType, raw, metav1.PatchOptions{})
		return err
	}
	annotate := func(kv map[string]any) map[string]any {
		return map[string]any{"metadata": map[string]any{"annotations": kv}}
	}

	// The API server loads a new policy within a second or so: until then
	// RBAC alone answers.
	g.Eventually(func() string {
		err := patch(inferdClient, other.Name, annotate(map[string]any{config.ReportAnnotation: `{"probe":true}`}))
		if err == nil {
			return "allowed"
		}
		return err.Error()
	}).WithTimeout(30*time.Second).Should(ContainSubstring("ValidatingAdmissionPolicy 'slmops-inferd-report'"), "the admission policy does not act")
	g.Expect(patch(admin, other.Name, annotate(map[string]any{config.ReportAnnotation: nil}))).To(Succeed())

	// inferd, as its pod, with the token and CA where the kubelet puts them.
	saDir := t.TempDir()
	g.Expect(os.WriteFile(filepath.Join(saDir, "token"), []byte(podToken), 0o600)).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(saDir, "ca.crt"), env.Config.CAData, 0o600)).To(Succeed())
	api, err := url.Parse(env.Config.Host)
	g.Expect(err).NotTo(HaveOccurred())
	t.Setenv("KUBERNETES_SERVICE_HOST", api.Hostname())
	t.Setenv("KUBERNETES_SERVICE_PORT", api.Port())
	t.Setenv(config.EnvPodName, mine.Name)
	t.Setenv(config.EnvPodNamespace, ns)
	m := generate(t, bigram.BuildOptions{Type: gguf.Q8_0})
	cfg := baseConfig(t, "tiny", m, origin(t, m.data, nil).URL+"/tiny.gguf")
	cfg.SelfTest = &config.SelfTest{Prompts: []config.Prompt{
		{Prompt: "slmops", MaxTokens: 6, ExpectRegex: `small\s+language`},
		{Prompt: "slmops", MaxTokens: 6, ExpectJSONSchema: json.RawMessage(`{"type":"object"}`)},
	}}
	cfg.Report.Enabled = true
	marker := filepath.Join(t.TempDir(), "reported")
	p := start(t, cfg, "--service-account-dir", saDir, "--report-marker", marker)

	var rep config.Report
	g.Eventually(func() error {
		got, err := admin.CoreV1().Pods(ns).Get(ctx, mine.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		v, ok := got.Annotations[config.ReportAnnotation]
		if !ok {
			return errNoReport
		}
		rep, err = config.ParseReport(v)
		return err
	}).WithTimeout(time.Minute).Should(Succeed(), "no report on the pod; inferd's log:\n%s", p.Logs())
	g.Expect(rep.Digest).To(Equal(m.digest))
	g.Expect(rep.Passed).To(BeFalse(), "the second prompt's answer is prose, not a JSON object")
	g.Expect(rep.Reason).To(Equal(config.ReasonSelfTestFailed))
	g.Expect(rep.Prompts).To(Equal([]bool{true, false}))
	g.Expect(rep.Message).To(And(ContainSubstring("prompt 1: the answer ("), ContainSubstring("does not satisfy expectJSONSchema: the answer")))
	g.Expect(rep.Message).NotTo(ContainSubstring("small language"))
	g.Expect(rep.DecodeTokensPerSecond).To(BeNumerically(">", 0))
	g.Expect(rep.PromptTokensPerSecond).To(BeNumerically(">", 0))
	g.Expect(rep.TimeToFirstTokenSeconds).To(BeNumerically(">", 0))
	g.Expect(rep.LoadSeconds).To(BeNumerically(">", 0))
	g.Expect(rep.PeakRSSBytes).To(BeNumerically(">", 0))
	g.Expect(p.Logs()).To(ContainSubstring("Wrote the self-test report to the pod"))
	g.Eventually(func() error { _, err := os.Stat(marker); return err }).WithTimeout(10*time.Second).Should(Succeed(),
		"no marker after the report: a restarted container would write again")
	after, err := admin.CoreV1().Pods(ns).Get(ctx, mine.Name, metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(after.Labels).To(Equal(mine.Labels))
	g.Expect(after.Annotations).To(HaveKeyWithValue("example.com/owner", "edge-team"))

	// The same token, for anything else.
	policy := "ValidatingAdmissionPolicy 'slmops-inferd-report'"
	for _, c := range []struct {
		name string
		do   func() error
		want string
	}{
		{"annotate another pod", func() error {
			return patch(inferdClient, other.Name, annotate(map[string]any{config.ReportAnnotation: "{}"}))
		}, "inferd may patch only the pod its token is bound to: update of pod stores/shops-abc12-other denied, the token is bound to pod shops-abc12-mine"},
		{"label its own pod", func() error {
			return patch(inferdClient, mine.Name, map[string]any{"metadata": map[string]any{"labels": map[string]any{"cohort": "x"}}})
		}, "inferd may change only the slmops.dev/self-test annotation of its pod: update of pod stores/shops-abc12-mine denied, it also changes label cohort"},
		{"remove a label of its pod", func() error {
			return patch(inferdClient, mine.Name, map[string]any{"metadata": map[string]any{"labels": map[string]any{"app.kubernetes.io/name": nil}}})
		}, "it also changes label app.kubernetes.io/name (removed)"},
		{"change another annotation with the report", func() error {
			return patch(inferdClient, mine.Name, annotate(map[string]any{config.ReportAnnotation: "{}", "example.com/owner": "me"}))
		}, "it also changes annotation example.com/owner"},
		{"change the spec", func() error {
			return patch(inferdClient, mine.Name, map[string]any{"spec": map[string]any{"activeDeadlineSeconds": 5}})
		}, "it also changes spec"},
		{"write a report too large for the operator", func() error {
			return patch(inferdClient, mine.Name, annotate(map[string]any{config.ReportAnnotation: strings.Repeat("x", 4096)}))
		}, "inferd's self-test report may hold at most 2048 bytes"},
		{"annotate with a token bound to no pod", func() error {
			return patch(as(token(nil)), mine.Name, annotate(map[string]any{config.ReportAnnotation: "{}"}))
		}, "the token is bound to no pod"},
		{"delete its own pod", func() error {
			return inferdClient.CoreV1().Pods(ns).Delete(ctx, mine.Name, metav1.DeleteOptions{})
		}, "forbidden"},
		{"read a pod", func() error {
			_, err := inferdClient.CoreV1().Pods(ns).Get(ctx, other.Name, metav1.GetOptions{})
			return err
		}, "cannot get resource \"pods\""},
	} {
		t.Run("denied: "+c.name, func(t *testing.T) {
			err := c.do()
			if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v; want Forbidden saying %q", err, c.want)
			}
			if strings.HasPrefix(c.want, "inferd") || strings.HasPrefix(c.want, "it also") || strings.HasPrefix(c.want, "the token") {
				if !strings.Contains(err.Error(), policy) {
					t.Errorf("denied, but not by %s: %v", policy, err)
				}
			}
		})
	}
	t.Run("allowed: a new report of its own pod", func(t *testing.T) {
		NewWithT(t).Expect(patch(inferdClient, mine.Name, annotate(map[string]any{config.ReportAnnotation: `{"again":true}`}))).To(Succeed())
	})
}

// errNoReport: the pod has no report annotation yet.
var errNoReport = errors.New("the pod has no self-test report")

// manifests are the YAML documents of a file.
func manifests(t *testing.T, path string) [][]byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var docs [][]byte
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(bytes.TrimSpace(doc)) > 0 {
			docs = append(docs, doc)
		}
	}
}

// TestWithoutATokenInferdServesAndSaysReportsAreOff: reports enabled, but
// the pod mounts no token (or runs outside a cluster): inferd says why it
// does not report, and serves all the same.
func TestWithoutATokenInferdServesAndSaysReportsAreOff(t *testing.T) {
	m := generate(t, bigram.BuildOptions{Type: gguf.Q8_0})
	cfg := baseConfig(t, "tiny", m, origin(t, m.data, nil).URL+"/tiny.gguf")
	cfg.Report.Enabled = true
	t.Setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
	t.Setenv("KUBERNETES_SERVICE_PORT", "6443")
	t.Setenv(config.EnvPodName, "p")
	t.Setenv(config.EnvPodNamespace, "stores")
	p := start(t, cfg, "--service-account-dir", t.TempDir())
	p.waitPhase(server.PhaseReady, time.Minute)
	if logs := p.Logs(); !strings.Contains(logs, "Self-test reports are off") || !strings.Contains(logs, "no ServiceAccount token is mounted at") {
		t.Errorf("inferd does not say that reports are off and why:\n%s", logs)
	}
}
