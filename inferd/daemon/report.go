package daemon

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/slmops/slmops/inferd/config"
	"github.com/slmops/slmops/inferd/selftest"
)

// Reporter writes the self-test report (config.FormatReport's value) where
// the operator reads it: inferd/report's Writer, into the pod's annotation.
type Reporter interface {
	Write(ctx context.Context, value string) error
}

// selfTestReport is the report of a self-test: what the operator reads of
// this node. prompts is how many golden prompts the SLMModel has (the
// self-test stops at a timeout; the prompts it did not reach failed).
func selfTestReport(digest string, rep selftest.Report, prompts int, loadSeconds float64, peakRSS int64) config.Report {
	r := config.Report{
		Digest: digest, Passed: rep.Passed, Reason: config.ReasonPassed, Message: rep.Message,
		DecodeTokensPerSecond: rep.TokensPerSecond, PromptTokensPerSecond: rep.PromptTokensPerSecond,
		TimeToFirstTokenSeconds: rep.TimeToFirstTokenSeconds, PeakRSSBytes: peakRSS, LoadSeconds: loadSeconds,
	}
	if !rep.Passed {
		// The same reason and words as /status and the termination message.
		r.Reason, r.Message = config.ReasonSelfTestFailed, selfTestFailure(rep)
	}
	if rep.Gated {
		r.Prompts = make([]bool, min(prompts, config.MaxReportPrompts))
		for _, p := range rep.Prompts {
			if p.Index < len(r.Prompts) {
				r.Prompts[p.Index] = p.Passed
			}
		}
	}
	return r
}

// selfTestFailure is the message of a failed self-test.
func selfTestFailure(rep selftest.Report) string {
	return fmt.Sprintf("self-test %s: %s", rep.Reason, rep.Message)
}

// procStatus is where Linux keeps the process's memory figures.
var procStatus = "/proc/self/status"

// peakRSSBytes is inferd's peak resident memory (VmHWM), 0 where the system
// does not say.
func peakRSSBytes() int64 {
	b, err := os.ReadFile(procStatus)
	if err != nil {
		return 0
	}
	return parseVmHWM(b)
}

// parseVmHWM reads "VmHWM:   123456 kB" from a /proc/<pid>/status.
func parseVmHWM(status []byte) int64 {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb < 0 || kb > 1<<40 {
			return 0
		}
		return kb << 10
	}
	return 0
}
