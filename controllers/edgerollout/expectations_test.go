package edgerollout

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/slmops/slmops/test/testutil"
)

func TestLabelExpectationsBridgeALaggingCache(t *testing.T) {
	t0 := testutil.Epoch
	var e labelExpectations
	key := types.NamespacedName{Namespace: "ns", Name: "r"}
	e.record(key, map[string]string{"a": "rev2", "b": ""}, t0)

	// The cache still shows the old labels: believe what was written.
	if got, pending := e.adjust(key, "a", "rev1", t0.Add(time.Second)); got != "rev2" || !pending {
		t.Errorf("a: got %q pending %v, want rev2 pending", got, pending)
	}
	if got, pending := e.adjust(key, "b", "rev1", t0.Add(time.Second)); got != "" || !pending {
		t.Errorf("b: got %q pending %v, want a removed label, pending", got, pending)
	}
	// Another rollout's expectations are its own.
	if got, pending := e.adjust(types.NamespacedName{Namespace: "ns", Name: "other"}, "a", "rev1", t0); got != "rev1" || pending {
		t.Errorf("other rollout: got %q pending %v", got, pending)
	}
	// Once the cache shows the write, the expectation is dropped for good.
	if got, pending := e.adjust(key, "a", "rev2", t0.Add(2*time.Second)); got != "rev2" || pending {
		t.Errorf("a seen: got %q pending %v", got, pending)
	}
	if got, _ := e.adjust(key, "a", "rev3", t0.Add(3*time.Second)); got != "rev3" {
		t.Errorf("a after it was seen: got %q, want the cache's rev3", got)
	}
	// A write never seen is forgotten after the TTL.
	if got, pending := e.adjust(key, "b", "rev1", t0.Add(expectationTTL+time.Second)); got != "rev1" || pending {
		t.Errorf("b after the TTL: got %q pending %v, want the cache's rev1", got, pending)
	}
}
