package config

import (
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestReportRoundTrips: what inferd writes, the operator reads back as it
// was, with the message on one bounded line.
func TestReportRoundTrips(t *testing.T) {
	r := Report{
		Digest: "sha256:" + strings.Repeat("ab", 32), Passed: false, Reason: ReasonSelfTestFailed,
		Message: "golden prompt 2: the answer does not match\n" + strings.Repeat("x", 400), Prompts: []bool{true, false},
		DecodeTokensPerSecond: 12.5, PromptTokensPerSecond: 80, TimeToFirstTokenSeconds: 0.25, PeakRSSBytes: 300 << 20, LoadSeconds: 1.5,
	}
	s, err := FormatReport(r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseReport(s)
	if err != nil {
		t.Fatalf("ParseReport(%s): %v", s, err)
	}
	if len(got.Message) != maxReportMessage || strings.Contains(got.Message, "\n") {
		t.Errorf("message of %d bytes %q; want one line cut to %d", len(got.Message), got.Message, maxReportMessage)
	}
	got.Message, r.Message = "", ""
	if diff := cmp.Diff(r, got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}

// TestAReportThatInferdDidNotWriteIsRefused: a pod's annotations are not
// only inferd's; anything that is not a well-formed report is an error, not
// a figure.
func TestAReportThatInferdDidNotWriteIsRefused(t *testing.T) {
	for name, s := range map[string]string{
		"not JSON":            "fast",
		"unknown field":       `{"reason":"Passed","passed":true,"tokensPerSecond":9}`,
		"negative rate":       `{"reason":"Passed","passed":true,"decodeTokensPerSecond":-1}`,
		"no reason":           `{"passed":true}`,
		"a bad digest":        `{"reason":"Passed","passed":true,"digest":"md5:00"}`,
		"two documents":       `{"reason":"Passed","passed":true} {}`,
		"too many prompts":    `{"reason":"Passed","passed":true,"prompts":[` + strings.TrimSuffix(strings.Repeat("true,", MaxReportPrompts+1), ",") + `]}`,
		"longer than allowed": `{"reason":"Passed","passed":true,"message":"` + strings.Repeat("a", MaxReportBytes) + `"}`,
	} {
		if _, err := ParseReport(s); err == nil {
			t.Errorf("%s: %s parsed", name, s)
		}
	}
	if _, err := FormatReport(Report{Reason: ReasonPassed, LoadSeconds: math.Inf(1)}); err == nil {
		t.Error("a report with an infinite load time was formatted")
	}
}
