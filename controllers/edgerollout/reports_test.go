package edgerollout

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/slmops/slmops/controllers/edgerollout/plan"
	"github.com/slmops/slmops/inferd/config"
)

// TestReportsAreParsedOnceAndTurnedOver: a report's text is parsed once
// and shared while pods carry it; an invalid one is remembered as nil; a
// generation that fills up drops what was not looked up since.
func TestReportsAreParsedOnceAndTurnedOver(t *testing.T) {
	valid, err := config.FormatReport(config.Report{Digest: "sha256:" + strings.Repeat("a", 64), Passed: true, Reason: config.ReasonPassed, DecodeTokensPerSecond: 12})
	if err != nil {
		t.Fatal(err)
	}
	c := &reportCache{limit: 3}
	first := c.parse(valid)
	if first == nil || first.DecodeTokensPerSecond != 12 {
		t.Fatalf("parse(%s) = %+v", valid, first)
	}
	if again := c.parse(valid); again != first {
		t.Errorf("a second look-up parsed again: %p, want %p", again, first)
	}
	if diff := cmp.Diff(plan.ParseReport(valid), first); diff != "" {
		t.Errorf("the cached report differs from a fresh parse (-want +got):\n%s", diff)
	}
	if r := c.parse("{not json"); r != nil {
		t.Errorf("an invalid report parsed to %+v", r)
	}
	// valid and the invalid one are in the current generation; two more
	// fill it and turn it over, and valid, looked up again, moves along.
	c.parse(`{"x":1}`)
	c.parse(`{"y":2}`)
	if again := c.parse(valid); again != first {
		t.Errorf("a report looked up after a turn-over was parsed again")
	}
	for i := range 10 {
		c.parse(fmt.Sprintf(`{"z":%d}`, i))
	}
	if n := c.len(); n > 2*c.limit {
		t.Errorf("the cache holds %d reports, more than 2 x %d", n, c.limit)
	}
	if again := c.parse(valid); again == first {
		t.Errorf("a report no pod carried for two turn-overs is still held")
	}
}
