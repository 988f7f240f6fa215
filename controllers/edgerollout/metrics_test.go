package edgerollout

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	slmopsv1alpha1 "github.com/slmops/slmops/api/v1alpha1"
)

// TestSiteMetrics: the per-site series are the plan's site counts
// (target, ready, canary, failing), and a site that has no target nodes
// any more loses its series.
func TestSiteMetrics(t *testing.T) {
	m := &metav1.ObjectMeta{Namespace: "shops", Name: "stores"}
	observeSites(m, []slmopsv1alpha1.SiteStatus{
		{Name: "a", TargetNodes: 3, ReadyNodes: 2, CanaryNodes: 2, FailingNodes: 1},
		{Name: "(none)", TargetNodes: 1},
	})
	for _, c := range []struct {
		site, state string
		want        float64
	}{
		{"a", "target", 3}, {"a", "ready", 2}, {"a", "canary", 2}, {"a", "failing", 1},
		{"(none)", "target", 1}, {"(none)", "ready", 0},
	} {
		if got := testutil.ToFloat64(siteNodesGauge.WithLabelValues("shops", "stores", c.site, c.state)); got != c.want {
			t.Errorf("site %s %s = %v, want %v", c.site, c.state, got, c.want)
		}
	}
	observeSites(m, []slmopsv1alpha1.SiteStatus{{Name: "a", TargetNodes: 1, ReadyNodes: 1}})
	if n := testutil.CollectAndCount(siteNodesGauge); n != 4 {
		t.Errorf("%d site series after site (none) emptied; want the 4 of site a", n)
	}
	if got := testutil.ToFloat64(siteNodesGauge.WithLabelValues("shops", "stores", "a", "canary")); got != 0 {
		t.Errorf("no canary running, yet site a has %v canary nodes", got)
	}
	forgetMetrics("shops", "stores")
	if n := testutil.CollectAndCount(siteNodesGauge); n != 0 {
		t.Errorf("%d site series after the rollout was deleted", n)
	}
}

// TestCountersStartAtZero: a rollout's promotion and rollback counters
// exist, at 0, from its first reconcile, before any event counts.
func TestCountersStartAtZero(t *testing.T) {
	m := &metav1.ObjectMeta{Namespace: "shops", Name: "fresh"}
	defer forgetMetrics(m.Namespace, m.Name)
	observeRollout(m, &slmopsv1alpha1.EdgeRolloutStatus{Phase: slmopsv1alpha1.PhaseProgressing})
	for name, c := range map[string]*prometheus.CounterVec{"promotions": promotions, "rollbacks": rollbacks} {
		if n := testutil.CollectAndCount(c); n != 1 {
			t.Errorf("%d %s series before any event; want the rollout's, at 0", n, name)
		}
		if got := testutil.ToFloat64(c.WithLabelValues(m.Namespace, m.Name)); got != 0 {
			t.Errorf("%s = %v before any event", name, got)
		}
	}
}

// TestClassMetrics: per hardware class and revision, the node counts and
// the self-tests' percentiles from the status; a class that is gone loses
// its series, and so does a deleted rollout.
func TestClassMetrics(t *testing.T) {
	m := &metav1.ObjectMeta{Namespace: "shops", Name: "classes"}
	st := &slmopsv1alpha1.EdgeRolloutStatus{HardwareClasses: []slmopsv1alpha1.HardwareClassStatus{
		{Name: "arm64/rpi4", Nodes: 10,
			Canary: &slmopsv1alpha1.ClassFigures{Revision: "new", Nodes: 2, Ready: 2, Reports: 2, DecodeTokensPerSecondP50: "5.5", DecodeTokensPerSecondP90: "6", TimeToFirstTokenSecondsP50: "0.4"},
			Stable: &slmopsv1alpha1.ClassFigures{Revision: "old", Nodes: 8, Ready: 7, Failed: 1}},
		{Name: "amd64/nuc", Nodes: 4, Stable: &slmopsv1alpha1.ClassFigures{Revision: "old", Nodes: 4, Ready: 4}},
	}}
	observeClasses(m, st)
	for _, c := range []struct {
		rev, class, state string
		want              float64
	}{
		{"new", "arm64/rpi4", "nodes", 2}, {"new", "arm64/rpi4", "reported", 2},
		{"old", "arm64/rpi4", "ready", 7}, {"old", "arm64/rpi4", "failed", 1}, {"old", "amd64/nuc", "nodes", 4},
	} {
		if got := testutil.ToFloat64(classNodesGauge.WithLabelValues("shops", "classes", c.rev, c.class, c.state)); got != c.want {
			t.Errorf("%s %s %s = %v, want %v", c.rev, c.class, c.state, got, c.want)
		}
	}
	if got := testutil.ToFloat64(classDecodeGauge.WithLabelValues("shops", "classes", "new", "arm64/rpi4", "0.5")); got != 5.5 {
		t.Errorf("canary decode p50 on arm64/rpi4 = %v, want 5.5", got)
	}
	if n := testutil.CollectAndCount(classTTFTGauge); n != 1 {
		t.Errorf("%d time-to-first-token series; want the one figure the status has", n)
	}
	st.HardwareClasses = st.HardwareClasses[1:]
	observeClasses(m, st)
	if n := testutil.CollectAndCount(classNodesGauge); n != 4 {
		t.Errorf("%d class series after arm64/rpi4 went; want the 4 of amd64/nuc", n)
	}
	forgetMetrics("shops", "classes")
	if n := testutil.CollectAndCount(classNodesGauge) + testutil.CollectAndCount(classDecodeGauge); n != 0 {
		t.Errorf("%d class series after the rollout was deleted", n)
	}
}
