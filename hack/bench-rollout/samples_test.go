package main

import (
	"strings"
	"testing"
)

// TestSamplesReadsValuesAndSkipsComments: both scrapers read the
// controller-manager's and the operator's metrics through samples.
func TestSamplesReadsValuesAndSkipsComments(t *testing.T) {
	text := `# HELP workqueue_retries_total Total retries
# TYPE workqueue_retries_total counter
workqueue_retries_total{name="daemonset"} 7
workqueue_work_duration_seconds_sum{name="daemonset-node-updates"} 0.25
daemonset_controller_stale_sync_skips_total{group="",resource="pods"} 3
`
	got := map[string]float64{}
	if err := samples(strings.NewReader(text), func(line string, v float64) { got[line[:strings.IndexAny(line, "{ ")]] += v }); err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"workqueue_retries_total": 7, "workqueue_work_duration_seconds_sum": 0.25, "daemonset_controller_stale_sync_skips_total": 3}
	if len(got) != len(want) {
		t.Fatalf("samples read %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}
