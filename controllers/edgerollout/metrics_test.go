package edgerollout

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slmops/slmops/controllers/edgerollout/plan"
)

// TestSiteMetrics: per-site counts of target, ready and canary nodes; nodes
// outside the selector do not count, and a site that has no target nodes
// any more loses its series.
func TestSiteMetrics(t *testing.T) {
	m := &metav1.ObjectMeta{Namespace: "shops", Name: "stores"}
	ready := plan.Pod{Exists: true, Ready: true}
	observeSites(m, []plan.Node{
		{Name: "a1", Site: "a", Target: true, Revision: "new", Pod: ready},
		{Name: "a2", Site: "a", Target: true, Revision: "old", Pod: ready},
		{Name: "a3", Site: "a", Target: true, Revision: "new"},
		{Name: "b1", Site: "b", Target: true, Revision: "old", Pod: ready},
		{Name: "x1", Site: "b", Target: false, Revision: "", Pod: ready},
		{Name: "n1", Target: true, Revision: "old"},
	}, "new")
	for _, c := range []struct {
		site, state string
		want        float64
	}{
		{"a", "target", 3}, {"a", "ready", 2}, {"a", "canary", 2},
		{"b", "target", 1}, {"b", "ready", 1}, {"b", "canary", 0},
		{"none", "target", 1}, {"none", "ready", 0},
	} {
		if got := testutil.ToFloat64(siteNodesGauge.WithLabelValues("shops", "stores", c.site, c.state)); got != c.want {
			t.Errorf("site %s %s = %v, want %v", c.site, c.state, got, c.want)
		}
	}
	observeSites(m, []plan.Node{{Name: "a1", Site: "a", Target: true, Revision: "new", Pod: ready}}, "")
	if n := testutil.CollectAndCount(siteNodesGauge); n != 3 {
		t.Errorf("%d site series after sites b and none emptied; want the 3 of site a", n)
	}
	if got := testutil.ToFloat64(siteNodesGauge.WithLabelValues("shops", "stores", "a", "canary")); got != 0 {
		t.Errorf("no canary running, yet site a has %v canary nodes", got)
	}
	forgetMetrics("shops", "stores")
	if n := testutil.CollectAndCount(siteNodesGauge); n != 0 {
		t.Errorf("%d site series after the rollout was deleted", n)
	}
}
