package install

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
	"github.com/slmops/slmops/controllers/edgerollout"
	"github.com/slmops/slmops/inferd/server"
	"github.com/slmops/slmops/test/testenv"
)

// TestChartMonitoring: the dashboard and the alert rules are valid PromQL
// (Prometheus's own parser) over metrics that the operator and inferd
// really export, and the PodMonitor gives inferd's series the labels the
// dashboard selects on.
func TestChartMonitoring(t *testing.T) {
	r := render(t, "--set", "dashboards.enabled=true", "--set", "prometheusRule.enabled=true",
		"--set", "inferd.podMonitor.enabled=true", "--set", "prometheusRule.stuckFor=45m")
	known := map[string]bool{}
	for _, n := range append(edgerollout.MetricNames(), server.MetricNames()...) {
		known[n] = true
	}
	if len(known) < 20 {
		t.Fatalf("only %d known metrics: %v", len(known), known)
	}
	used := map[string]bool{}
	check := func(where, expr string) {
		t.Helper()
		// Grafana's variables, as Grafana substitutes them.
		expr = strings.NewReplacer("$__rate_interval", "5m", "$__range", "6h", "$__interval", "1m").Replace(expr)
		e, err := parser.ParseExpr(expr)
		if err != nil {
			t.Errorf("%s: %q is not PromQL: %v", where, expr, err)
			return
		}
		parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
			vs, ok := n.(*parser.VectorSelector)
			if !ok {
				return nil
			}
			name := vs.Name
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base, ok := strings.CutSuffix(name, suffix); ok && known[base] {
					name = base
				}
			}
			if !known[name] {
				t.Errorf("%s uses %s, which neither the operator nor inferd exports", where, vs.Name)
			}
			used[name] = true
			return nil
		})
	}

	cm := r["ConfigMap/slmops-dashboards"]
	if cm == nil {
		t.Fatalf("no dashboard ConfigMap; have %v", r.keys())
	}
	if cm.GetLabels()["grafana_dashboard"] != "1" {
		t.Errorf("the dashboard ConfigMap lacks the Grafana sidecar's label: %v", cm.GetLabels())
	}
	raw, _, _ := unstructured.NestedString(cm.Object, "data", "slmops-rollouts.json")
	var dash testenv.Dashboard
	if err := json.Unmarshal([]byte(raw), &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	queries := 0
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			check("panel "+p.Title, q.Expr)
			queries++
		}
	}
	for _, v := range dash.Templating.List {
		if inner, ok := strings.CutPrefix(v.Definition, "label_values("); ok {
			// label_values(<selector>, <label>) is Grafana's; the selector is PromQL.
			check("variable "+v.Name, inner[:strings.LastIndex(inner, ",")])
		}
	}
	if queries < 10 {
		t.Errorf("the dashboard has %d queries", queries)
	}
	for _, want := range []string{"slmops_rollout_phase", "slmops_rollout_site_nodes", "slmops_rollout_step",
		"slmops_inferd_request_duration_seconds", "slmops_inferd_generated_tokens_total"} {
		if !used[want] {
			t.Errorf("the dashboard does not show %s", want)
		}
	}

	rule := r["PrometheusRule/slmops-rollouts"]
	if rule == nil {
		t.Fatalf("no PrometheusRule; have %v", r.keys())
	}
	groups, _, _ := unstructured.NestedSlice(rule.Object, "spec", "groups")
	var alerts []string
	for _, g := range groups {
		rules, _ := g.(map[string]any)["rules"].([]any)
		for _, x := range rules {
			rl := x.(map[string]any)
			name, _ := rl["alert"].(string)
			alerts = append(alerts, name)
			expr, _ := rl["expr"].(string)
			check("alert "+name, expr)
			labels, _ := rl["labels"].(map[string]any)
			annotations, _ := rl["annotations"].(map[string]any)
			if labels["severity"] == nil || annotations["summary"] == nil || annotations["description"] == nil {
				t.Errorf("alert %s lacks a severity, a summary or a description", name)
			}
			if name == "SlmopsRolloutStuck" && !strings.Contains(expr, "[45m]") {
				t.Errorf("SlmopsRolloutStuck ignores prometheusRule.stuckFor: %s", expr)
			}
		}
	}
	for _, want := range []string{"SlmopsRolloutStuck", "SlmopsRolloutRolledBack", "SlmopsRolloutDegraded", "SlmopsRolloutNodesExcluded"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("no %s alert; have %v", want, alerts)
		}
	}

	// The dashboard's inferd panels select on rollout and revision, which
	// the PodMonitor makes from the pods' labels.
	pm := r["PodMonitor/slmops-inferd"]
	if pm == nil {
		t.Fatalf("no PodMonitor; have %v", r.keys())
	}
	endpoints, _, _ := unstructured.NestedSlice(pm.Object, "spec", "podMetricsEndpoints")
	var targets []string
	for _, rl := range endpoints[0].(map[string]any)["relabelings"].([]any) {
		targets = append(targets, rl.(map[string]any)["targetLabel"].(string))
	}
	if !slices.Contains(targets, "rollout") || !slices.Contains(targets, "revision") {
		t.Errorf("the PodMonitor labels inferd's series with %v; the dashboard needs rollout and revision", targets)
	}
	match, _, _ := unstructured.NestedStringMap(pm.Object, "spec", "selector", "matchLabels")
	if match[slmopsv1alpha1.ManagedByLabel] != slmopsv1alpha1.ManagedByValue {
		t.Errorf("the PodMonitor selects %v, not the pods the operator manages", match)
	}
}
