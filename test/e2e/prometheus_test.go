package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/test/localcluster"
	"github.com/slmops/slmops/test/skip"
	"github.com/slmops/slmops/test/testenv"
)

// alertHold is the rules' `for:` in this test: the chart's holds (1 minute
// to 1 hour) are what a fleet wants, and what promtool's unit tests of the
// rules check (test/prometheus); here every expression runs as shipped, and
// only the time it must hold before firing is cut so the test takes minutes.
const alertHold = "2s"

// slmopsAlerts are the alerts the chart ships.
var slmopsAlerts = []string{"SlmopsRolloutStuck", "SlmopsRolloutRolledBack", "SlmopsRolloutDegraded",
	"SlmopsRolloutNodesUnreachable", "SlmopsRolloutNodesExcluded"}

// TestPrometheusAlerts: a real Prometheus scrapes the manager's secure
// metrics endpoint as the chart's ServiceMonitor does (TLS verified against
// the cluster CA, a ServiceAccount token) and evaluates the chart's alert
// rules, rendered by helm with the values a user sets. Each failure of a
// rollout fires its alert, and only its alert, and the alert clears after the
// recovery a user would make: nodes that cannot hold the model (excluded),
// a canary that crash-loops (rolled back; then Degraded under
// rollbackPolicy Manual), and a node offline under the Wait policy (stuck,
// unreachable).
func TestPrometheusAlerts(t *testing.T) {
	g := NewWithT(t)
	c := kube(t)
	ctx := context.Background()
	ns := newNamespace(t, "e2e-alerts")
	op := startSecureOperator(t, ns)
	prom := startPrometheus(t, renderAlertRules(t,
		// The shortest window for Stuck, and one node of 200 unreachable
		// past the ratio: values a user may set.
		"--set", "prometheusRule.stuckFor=1m", "--set-json", "prometheusRule.unreachableRatio=0.001"),
		managerScrapeConfig(t, ns, op.metricsAddr))

	r := rollout(ns, "10%", "100%")
	r.Spec.Distribution.MaxExcludedNodes = ptr.To(intstr.FromString("50%"))
	m := model(ns, digestOf(1))
	m.Spec.SizeBytes = ptr.To(int64(1 << 30))
	createRollout(t, c, m, r)
	completeFirstRevision(t, c, r)
	// The manager is scraped, and a Completed rollout raises nothing.
	g.Eventually(func() (string, error) {
		return prom.value(fmt.Sprintf(`slmops_rollout_phase{namespace=%q,rollout="stores",phase="Completed"}`, ns))
	}).WithTimeout(30 * time.Second).Should(Equal("1"))
	time.Sleep(3 * time.Second) // longer than the hold: a false alarm would fire
	g.Expect(prom.firing(t, ns)).To(BeEmpty(), "alerts of a Completed rollout")

	patchRollout := func(patch string) {
		t.Helper()
		g.Expect(c.Patch(ctx, get(t, c, r), client.RawPatch(types.MergePatchType, []byte(patch)))).To(Succeed())
	}
	// recovered waits for the rollout to complete on a revision other than
	// notStable (any, when empty), and for every alert to clear.
	recovered := func(what string, notStable string) string {
		t.Helper()
		got := waitForPhase(t, c, r, slmopsv1alpha1.PhaseCompleted, notStable, 3*time.Minute, nil)
		g.Eventually(func() []string { return prom.firing(t, ns) }).WithTimeout(30*time.Second).
			Should(BeEmpty(), "alerts after "+what)
		return got.Status.StableRevision
	}

	// Excluded: a model larger than the 4 GiB boards can hold leaves them on
	// their revision; a smaller file brings them in.
	t.Log("excluded: a 5 GiB model on a fleet with 4 GiB boards")
	stable := get(t, c, r).Status.StableRevision
	patchModel(t, c, ns, "tinyllama", fmt.Sprintf(`{"spec":{"digest":%q,"sizeBytes":%d}}`, digestOf(2), int64(5<<30)))
	got := waitForPhase(t, c, r, slmopsv1alpha1.PhaseCompleted, stable, 3*time.Minute, nil)
	g.Expect(got.Status.Distribution).NotTo(BeNil())
	g.Expect(got.Status.Distribution.UnfitNodes).To(BeNumerically(">", 0))
	g.Eventually(func() []string { return prom.firing(t, ns) }).WithTimeout(30 * time.Second).
		Should(Equal([]string{"SlmopsRolloutNodesExcluded"}))
	patchModel(t, c, ns, "tinyllama", fmt.Sprintf(`{"spec":{"digest":%q,"sizeBytes":%d}}`, digestOf(3), int64(1<<30)))
	stable = recovered("a model that fits", got.Status.StableRevision)

	// Rolled back: a canary that crash-loops on one site goes back; kubectl
	// slm retry, once the fault is gone, completes it.
	t.Log("rolled back: a canary that crash-loops on site-02")
	site2 := siteNodes("site-02")
	g.Expect(cluster.InjectCrashLoop(ctx, "alerts-rollback", "registry.invalid/inferd:v2-faulty", site2)).To(Succeed())
	t.Cleanup(func() { _ = cluster.RemoveFault(context.Background(), "alerts-rollback") })
	patchRollout(`{"spec":{"template":{"image":"registry.invalid/inferd:v2-faulty"}}}`)
	waitForPhase(t, c, r, slmopsv1alpha1.PhaseRolledBack, "", 3*time.Minute, nil)
	g.Eventually(func() []string { return prom.firing(t, ns) }).WithTimeout(30 * time.Second).
		Should(Equal([]string{"SlmopsRolloutRolledBack"}))
	g.Expect(cluster.RemoveFault(ctx, "alerts-rollback")).To(Succeed())
	out, err := kubectlSLM(t, "retry", r.Name, "-n", ns)
	g.Expect(err).NotTo(HaveOccurred(), out)
	stable = recovered("kubectl slm retry", stable)

	// Degraded: the same failure under rollbackPolicy Manual holds the
	// cohort where it is. kubectl slm abort sends it back (Aborted, which
	// no alert is about); the spec of the stable revision again completes.
	t.Log("degraded: a crash-looping canary under rollbackPolicy Manual")
	g.Expect(cluster.InjectCrashLoop(ctx, "alerts-degraded", "registry.invalid/inferd:v3-faulty", site2)).To(Succeed())
	t.Cleanup(func() { _ = cluster.RemoveFault(context.Background(), "alerts-degraded") })
	patchRollout(`{"spec":{"rollbackPolicy":"Manual","template":{"image":"registry.invalid/inferd:v3-faulty"}}}`)
	waitForPhase(t, c, r, slmopsv1alpha1.PhaseDegraded, "", 3*time.Minute, nil)
	g.Eventually(func() []string { return prom.firing(t, ns) }).WithTimeout(30 * time.Second).
		Should(Equal([]string{"SlmopsRolloutDegraded"}))
	out, err = kubectlSLM(t, "abort", r.Name, "-n", ns)
	g.Expect(err).NotTo(HaveOccurred(), out)
	waitForPhase(t, c, r, slmopsv1alpha1.PhaseAborted, "", time.Minute, nil)
	g.Eventually(func() []string { return prom.firing(t, ns) }).WithTimeout(30*time.Second).
		Should(BeEmpty(), "alerts after kubectl slm abort")
	patchRollout(`{"spec":{"template":{"image":"registry.invalid/inferd:v2-faulty"}}}`)
	g.Expect(recovered("the stable revision's spec", "")).To(Equal(stable))

	// Stuck and unreachable: under the Wait policy a node that went offline
	// holds the last step; back online, the rollout completes.
	t.Log("stuck, unreachable: a node offline under the Wait policy")
	patchRollout(`{"spec":{"strategy":{"canary":{"progressDeadlineSeconds":600,` +
		`"unreachableNodes":{"policy":"Wait","deadline":"10m"}}}}}`)
	offline := localcluster.NodeName(7, suiteSites)
	g.Expect(cluster.SetNodeOffline(ctx, offline, true)).To(Succeed())
	t.Cleanup(func() { _ = cluster.SetNodeOffline(context.Background(), offline, false) })
	newDigest(t, c, ns, 4)
	g.Eventually(func(g Gomega) {
		got := get(t, c, r)
		g.Expect(got.Status.Phase).To(Equal(slmopsv1alpha1.PhaseProgressing))
		g.Expect(conditionReason(got, slmopsv1alpha1.ConditionProgressing)).To(Equal("WaitingForUnreachableNodes"))
	}).WithTimeout(2 * time.Minute).WithPolling(500 * time.Millisecond).Should(Succeed())
	// Stuck needs a minute without a step, Progressing throughout.
	g.Eventually(func() []string { return prom.firing(t, ns) }).WithTimeout(3 * time.Minute).
		Should(Equal([]string{"SlmopsRolloutNodesUnreachable", "SlmopsRolloutStuck"}))
	g.Expect(cluster.SetNodeOffline(ctx, offline, false)).To(Succeed())
	recovered("the node came back", stable)
}

// siteNodes is the suite's nodes of site.
func siteNodes(site string) []string {
	var out []string
	for i := range suiteNodes {
		if localcluster.SiteName(i, suiteSites) == site {
			out = append(out, localcluster.NodeName(i, suiteSites))
		}
	}
	return out
}

// startSecureOperator runs the manager with its metrics endpoint as the
// chart serves it: TLS with a certificate the cluster CA signed, and
// authentication and authorization of every scrape.
func startSecureOperator(t *testing.T, ns string) *operator {
	t.Helper()
	certDir := t.TempDir()
	for name, src := range map[string]string{"tls.crt": cluster.ServingCert, "tls.key": cluster.ServingKey} {
		if err := os.Symlink(src, filepath.Join(certDir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return startOperator(t, ns, "--metrics-secure=true", "--metrics-cert-dir="+certDir)
}

// managerScrapeConfig is the scrape job of the manager at addr as the
// chart's ServiceMonitor configures it: https, the CA that signed its
// certificate, a ServiceAccount token that may GET /metrics, and the
// series' own namespace label kept (honorLabels).
func managerScrapeConfig(t *testing.T, ns, addr string) map[string]any {
	t.Helper()
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte(metricsReaderToken(t, ns)), 0o600); err != nil {
		t.Fatal(err)
	}
	return map[string]any{
		"job_name":       "slmops-manager",
		"scheme":         "https",
		"honor_labels":   true,
		"tls_config":     map[string]any{"ca_file": cluster.CACert},
		"authorization":  map[string]any{"credentials_file": token},
		"static_configs": []any{map[string]any{"targets": []any{addr}}},
	}
}

// renderAlertRules renders the chart's PrometheusRule with helm and the
// given --set flags, and writes its groups as a Prometheus rules file, with
// every alert's hold cut to alertHold.
func renderAlertRules(t *testing.T, args ...string) string {
	t.Helper()
	out := helmTemplate(t, append([]string{"--set", "prometheusRule.enabled=true",
		"--show-only", "templates/prometheusrule.yaml"}, args...)...)
	var rule struct {
		Spec struct {
			Groups []map[string]any `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(out, &rule); err != nil {
		t.Fatalf("the PrometheusRule: %v", err)
	}
	var alerts []string
	for _, grp := range rule.Spec.Groups {
		rules, _ := grp["rules"].([]any)
		for _, r := range rules {
			r := r.(map[string]any)
			if name, ok := r["alert"].(string); ok {
				alerts = append(alerts, name)
				r["for"] = alertHold
			}
		}
	}
	slices.Sort(alerts)
	want := slices.Clone(slmopsAlerts)
	slices.Sort(want)
	if !slices.Equal(alerts, want) {
		t.Fatalf("the chart's alerts are %v; this test covers %v", alerts, want)
	}
	b, err := yaml.Marshal(map[string]any{"groups": rule.Spec.Groups})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// promServer is a Prometheus server the test runs.
type promServer struct {
	t    *testing.T
	base string
}

// startPrometheus runs the Prometheus server that make prometheus builds,
// scraping and evaluating every second, with the rules file and scrape
// jobs; it is stopped when the test ends.
func startPrometheus(t *testing.T, rules string, jobs ...map[string]any) *promServer {
	t.Helper()
	bin := os.Getenv("SLMOPS_PROMETHEUS")
	if bin == "" {
		bin = filepath.Join(testenv.RepoRoot(), "bin", "prometheus-current", "prometheus")
	}
	if _, err := os.Stat(bin); err != nil {
		skip.Because(t, "the chart's alert rules and dashboard on a real Prometheus: no prometheus at "+bin, "make prometheus")
	}
	dir := t.TempDir()
	cfg, err := yaml.Marshal(map[string]any{
		"global":         map[string]any{"scrape_interval": "1s", "evaluation_interval": "1s"},
		"rule_files":     []any{rules},
		"scrape_configs": jobs,
	})
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	logs := &testenv.SyncBuffer{}
	cmd := exec.Command(bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("prometheus logs:\n%s", tail(logs.String(), 40))
		}
	})
	p := &promServer{t: t, base: "http://" + addr}
	NewWithT(t).Eventually(func() (int, error) {
		select {
		case <-exited:
			return 0, fmt.Errorf("prometheus exited:\n%s", logs.String())
		default:
		}
		return statusOf(&http.Client{Timeout: 2 * time.Second}, p.base+"/-/ready", "")
	}).WithTimeout(time.Minute).Should(Equal(http.StatusOK))
	return p
}

// api GETs a path of Prometheus's HTTP API and decodes its data.
func (p *promServer) api(path string, data any) error {
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(p.base + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var body struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &body); err != nil {
		return fmt.Errorf("%s: %d %s", path, resp.StatusCode, b)
	}
	if body.Status != "success" {
		return fmt.Errorf("%s: %s", path, body.Error)
	}
	return json.Unmarshal(body.Data, data)
}

// promSample is one series of an instant query's result.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// query runs an instant query.
func (p *promServer) query(q string) ([]promSample, error) {
	var data struct {
		ResultType string       `json:"resultType"`
		Result     []promSample `json:"result"`
	}
	if err := p.api("/api/v1/query?query="+url.QueryEscape(q), &data); err != nil {
		return nil, err
	}
	if data.ResultType != "vector" {
		return nil, fmt.Errorf("%s: a %s, not a vector", q, data.ResultType)
	}
	return data.Result, nil
}

// value is the value of a query that returns one series, or "" when it
// returns none.
func (p *promServer) value(q string) (string, error) {
	res, err := p.query(q)
	if err != nil || len(res) == 0 {
		return "", err
	}
	if len(res) > 1 {
		return "", fmt.Errorf("%s: %d series", q, len(res))
	}
	v, _ := res[0].Value[1].(string)
	return v, nil
}

// firing is the names of the alerts firing for rollouts of ns, sorted.
func (p *promServer) firing(t *testing.T, ns string) []string {
	t.Helper()
	var data struct {
		Alerts []struct {
			Labels map[string]string `json:"labels"`
			State  string            `json:"state"`
		} `json:"alerts"`
	}
	if err := p.api("/api/v1/alerts", &data); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range data.Alerts {
		if a.State == "firing" && a.Labels["namespace"] == ns && !slices.Contains(out, a.Labels["alertname"]) {
			out = append(out, a.Labels["alertname"])
		}
	}
	slices.Sort(out)
	return out
}

// helmTemplate renders templates of the chart with helm and the given
// flags.
func helmTemplate(t *testing.T, args ...string) []byte {
	t.Helper()
	helm := os.Getenv("SLMOPS_HELM")
	if helm == "" {
		helm = filepath.Join(testenv.RepoRoot(), "bin", "helm-current", "helm")
	}
	if _, err := os.Stat(helm); err != nil {
		skip.Because(t, "the chart's monitoring on a real Prometheus: no helm at "+helm, "make helm")
	}
	cmd := exec.Command(helm, append([]string{"template", "slmops", filepath.Join(testenv.RepoRoot(), "charts", "slmops"),
		"--namespace", "slmops-system"}, args...)...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, stderr.String())
	}
	return out
}

// podMonitorScrapeConfig renders the chart's PodMonitor of the inferd pods
// (scraped every second) and turns it into the scrape job that the
// Prometheus Operator generates from it: pods discovered from the API
// server, kept by the selector's labels and the endpoint's port name,
// labelled with their namespace, pod and container, then the PodMonitor's
// own relabelings.
func podMonitorScrapeConfig(t *testing.T) map[string]any {
	t.Helper()
	out := helmTemplate(t, "--set", "inferd.podMonitor.enabled=true", "--set", "inferd.podMonitor.interval=1s",
		"--show-only", "templates/podmonitor.yaml")
	var pm struct {
		Metadata struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
		Spec struct {
			NamespaceSelector struct {
				Any bool `json:"any"`
			} `json:"namespaceSelector"`
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			Endpoints []struct {
				Port        string `json:"port"`
				Path        string `json:"path"`
				Interval    string `json:"interval"`
				Relabelings []struct {
					SourceLabels []string `json:"sourceLabels"`
					TargetLabel  string   `json:"targetLabel"`
				} `json:"relabelings"`
			} `json:"podMetricsEndpoints"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(out, &pm); err != nil {
		t.Fatalf("the PodMonitor: %v", err)
	}
	if !pm.Spec.NamespaceSelector.Any || len(pm.Spec.Endpoints) != 1 {
		t.Fatalf("the PodMonitor changed shape (namespaceSelector.any, one endpoint); update this translation: %+v", pm.Spec)
	}
	ep := pm.Spec.Endpoints[0]
	sanitize := strings.NewReplacer(".", "_", "/", "_", "-", "_")
	var relabel []any
	keys := make([]string, 0, len(pm.Spec.Selector.MatchLabels))
	for k := range pm.Spec.Selector.MatchLabels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		l := sanitize.Replace(k)
		relabel = append(relabel, map[string]any{"action": "keep",
			"source_labels": []any{"__meta_kubernetes_pod_label_" + l, "__meta_kubernetes_pod_labelpresent_" + l},
			"regex":         "(" + pm.Spec.Selector.MatchLabels[k] + ");true"})
	}
	relabel = append(relabel,
		map[string]any{"action": "keep", "source_labels": []any{"__meta_kubernetes_pod_container_port_name"}, "regex": ep.Port},
		map[string]any{"source_labels": []any{"__meta_kubernetes_namespace"}, "target_label": "namespace"},
		map[string]any{"source_labels": []any{"__meta_kubernetes_pod_container_name"}, "target_label": "container"},
		map[string]any{"source_labels": []any{"__meta_kubernetes_pod_name"}, "target_label": "pod"},
		map[string]any{"target_label": "job", "replacement": pm.Metadata.Namespace + "/" + pm.Metadata.Name},
		map[string]any{"target_label": "endpoint", "replacement": ep.Port},
	)
	for _, r := range ep.Relabelings {
		src := make([]any, len(r.SourceLabels))
		for i, s := range r.SourceLabels {
			src[i] = s
		}
		relabel = append(relabel, map[string]any{"source_labels": src, "target_label": r.TargetLabel})
	}
	return map[string]any{
		"job_name":              "podMonitor/" + pm.Metadata.Namespace + "/" + pm.Metadata.Name + "/0",
		"scrape_interval":       ep.Interval,
		"metrics_path":          ep.Path,
		"kubernetes_sd_configs": []any{map[string]any{"role": "pod", "kubeconfig_file": cluster.Kubeconfig}},
		"relabel_configs":       relabel,
	}
}

// dashboardQueries is every panel query of the chart's Grafana dashboard,
// by panel title, with its variables set to ns and rollout and the rate
// window to what a scrape every second needs.
func dashboardQueries(t *testing.T, ns, rollout string) map[string][]string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "charts", "slmops", "files", "dashboards", "slmops-rollouts.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash testenv.Dashboard
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	vars := strings.NewReplacer("$__rate_interval", "2m", "$__range", "1h", "$__interval", "1s",
		"$namespace", ns, "$rollout", rollout)
	out := map[string][]string{}
	for _, p := range dash.Panels {
		for _, q := range p.Targets {
			out[p.Title] = append(out[p.Title], vars.Replace(q.Expr))
		}
	}
	return out
}
