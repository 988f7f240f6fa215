// Package prometheus tests what the chart ships for Prometheus with
// Prometheus's own promtool (built from its Go module by
// hack/build-prometheus.sh): the alert rules of the PrometheusRule, checked
// (`promtool check rules`) and unit-tested against input series of each
// failure and its recovery (`promtool test rules`, testdata/alerts_test.yaml),
// and every query of the Grafana dashboard, checked as Prometheus parses
// it.
//
// What it owns: the rules' unit tests. What it may not touch: the chart
// (it renders it as users do) or a cluster (it needs none).
package prometheus

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/slmops/slmops/test/skip"
	"github.com/slmops/slmops/test/testenv"
)

// root is the repository's root: go test runs a test in its package's
// folder.
const root = "../.."

// tool is the binary that the environment variable env names (the
// Makefile sets it), or else bin/<rel>; a test that lacks it skips loudly.
func tool(t *testing.T, env, rel, what, enable string) string {
	t.Helper()
	path := os.Getenv(env)
	if path == "" {
		path = filepath.Join(root, "bin", rel)
	}
	if fi, err := os.Stat(path); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		skip.Because(t, what+": no "+filepath.Base(rel)+" at "+path, enable)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

func promtool(t *testing.T) string {
	return tool(t, "SLMOPS_PROMTOOL", "prometheus-current/promtool",
		"the chart's alert rules and dashboard queries against promtool", "make prometheus")
}

func helm(t *testing.T) string {
	return tool(t, "SLMOPS_HELM", "helm-current/helm", "rendering the chart for promtool", "make helm")
}

// run runs a command and fails the test with its output when it fails.
func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ruleGroups is a Prometheus rules file, and the spec of a PrometheusRule.
type ruleGroups struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert  string `json:"alert,omitempty"`
			Record string `json:"record,omitempty"`
		} `json:"rules"`
	} `json:"groups"`
}

// renderRules writes the groups of the chart's PrometheusRule, rendered
// with args, as a plain rules file at path and returns the alerts' names.
func renderRules(t *testing.T, path string, args ...string) []string {
	t.Helper()
	out := run(t, root, helm(t), append([]string{"template", "slmops", "charts/slmops", "--namespace", "slmops-system",
		"--set", "prometheusRule.enabled=true", "--show-only", "templates/prometheusrule.yaml"}, args...)...)
	var rule struct {
		Kind string          `json:"kind"`
		Spec json.RawMessage `json:"spec"`
	}
	if err := yaml.Unmarshal([]byte(out), &rule); err != nil {
		t.Fatalf("the PrometheusRule does not parse: %v\n%s", err, out)
	}
	if rule.Kind != "PrometheusRule" {
		t.Fatalf("rendered a %q, not a PrometheusRule:\n%s", rule.Kind, out)
	}
	// The spec is a rules file as it is: the operator hands its groups to
	// Prometheus unchanged.
	var groups ruleGroups
	if err := json.Unmarshal(rule.Spec, &groups); err != nil {
		t.Fatal(err)
	}
	rules, err := yaml.JSONToYAML(rule.Spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, rules, 0o600); err != nil {
		t.Fatal(err)
	}
	var alerts []string
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				alerts = append(alerts, r.Alert)
			}
		}
	}
	if len(alerts) == 0 {
		t.Fatalf("the PrometheusRule has no alerts:\n%s", out)
	}
	return alerts
}

// TestAlertRules: the chart's alert rules pass `promtool check rules` with
// its linter, and their unit tests (testdata/alerts_test.yaml) pass
// `promtool test rules`; each alert of the chart fires in at least one of
// its failure scenarios there and is asserted absent (not yet, or no longer
// firing) in at least one.
func TestAlertRules(t *testing.T) {
	promtool := promtool(t)
	dir := t.TempDir()
	alerts := renderRules(t, filepath.Join(dir, "rules.yaml"))
	run(t, dir, promtool, "check", "rules", "--lint=all", "--lint-fatal", "rules.yaml")

	tests, err := os.ReadFile(filepath.Join("testdata", "alerts_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "alerts_test.yaml"), tests, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Log(run(t, dir, promtool, "test", "rules", "alerts_test.yaml"))

	var file struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `json:"alertname"`
				ExpAlerts []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal(tests, &file); err != nil {
		t.Fatal(err)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range file.Tests {
		for _, a := range tc.AlertRuleTest {
			if !slices.Contains(alerts, a.Alertname) {
				t.Errorf("testdata/alerts_test.yaml tests %s, which the chart does not ship (it has %v)", a.Alertname, alerts)
			}
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	for _, a := range alerts {
		if !fires[a] || !quiet[a] {
			t.Errorf("%s: testdata/alerts_test.yaml must show it firing (%v) and not firing (%v)", a, fires[a], quiet[a])
		}
	}
}

// TestAlertRulesFollowValues: the rules rendered with other values than
// the defaults that the unit tests use still pass promtool's checks, and
// use them.
func TestAlertRulesFollowValues(t *testing.T) {
	promtool := promtool(t)
	dir := t.TempDir()
	renderRules(t, filepath.Join(dir, "rules.yaml"), "--set", "prometheusRule.stuckFor=2h", "--set-json", "prometheusRule.unreachableRatio=0.25")
	run(t, dir, promtool, "check", "rules", "--lint=all", "--lint-fatal", "rules.yaml")
	b, err := os.ReadFile(filepath.Join(dir, "rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[2h]", "> 0.25", "More than 25%"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("the rules rendered with stuckFor=2h and unreachableRatio=0.25 lack %q:\n%s", want, b)
		}
	}
}

// grafanaVariables are the variables of the dashboard's queries, replaced
// by values of the kind Grafana substitutes.
var grafanaVariables = strings.NewReplacer("$__rate_interval", "5m", "$__range", "6h", "$__interval", "1m",
	"$namespace", "edge", "$rollout", "llm")

// TestDashboardQueries: every query of the Grafana dashboard, and the
// selector of each label_values variable, parses as Prometheus parses it:
// each becomes a recording rule of a rules file that `promtool check
// rules` checks, with the panel's title in the error.
func TestDashboardQueries(t *testing.T) {
	promtool := promtool(t)
	raw, err := os.ReadFile(filepath.Join(root, "charts", "slmops", "files", "dashboards", "slmops-rollouts.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash testenv.Dashboard
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	type rule struct {
		Record string            `json:"record"`
		Expr   string            `json:"expr"`
		Labels map[string]string `json:"labels"`
	}
	var rules []rule
	add := func(where, expr string) {
		rules = append(rules, rule{Record: fmt.Sprintf("slmops_dashboard:query_%d", len(rules)),
			Expr: grafanaVariables.Replace(expr), Labels: map[string]string{"where": where}})
	}
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			add("panel "+p.Title, q.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		if inner, ok := strings.CutPrefix(v.Definition, "label_values("); ok {
			// label_values(<selector>, <label>) is Grafana's; the selector is PromQL.
			add("variable "+v.Name, inner[:strings.LastIndex(inner, ",")])
		}
	}
	if len(rules) < 10 {
		t.Fatalf("the dashboard has %d queries", len(rules))
	}
	file, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "slmops.dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dashboard.yaml"), file, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool, "check", "rules", "dashboard.yaml")
	cmd.Dir = dir
	b, err := cmd.CombinedOutput()
	out := string(b)
	if err != nil {
		var which strings.Builder
		for _, r := range rules {
			fmt.Fprintf(&which, "  %s: %s: %s\n", r.Record, r.Labels["where"], r.Expr)
		}
		t.Fatalf("promtool check rules: %v\n%s\nthe queries:\n%s", err, out, which.String())
	}
	if !strings.Contains(out, fmt.Sprintf("%d rules found", len(rules))) {
		t.Errorf("promtool checked other than the dashboard's %d queries:\n%s", len(rules), out)
	}
}

// TestScrapeKeepsTheRolloutsNamespace: the ServiceMonitor honours the
// manager's labels, so the rollout gauges keep the rollout's namespace (as
// the series of testdata/alerts_test.yaml have it) instead of Prometheus
// renaming it exported_namespace and setting the manager's namespace.
func TestScrapeKeepsTheRolloutsNamespace(t *testing.T) {
	out := run(t, root, helm(t), "template", "slmops", "charts/slmops", "--namespace", "slmops-system",
		"--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.certSecret=metrics-tls",
		"--show-only", "templates/servicemonitor.yaml")
	var sm struct {
		Spec struct {
			Endpoints []struct {
				HonorLabels bool `json:"honorLabels"`
			} `json:"endpoints"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal([]byte(out), &sm); err != nil {
		t.Fatalf("the ServiceMonitor does not parse: %v\n%s", err, out)
	}
	if len(sm.Spec.Endpoints) != 1 || !sm.Spec.Endpoints[0].HonorLabels {
		t.Errorf("the ServiceMonitor's endpoint does not set honorLabels: true:\n%s", out)
	}
}
