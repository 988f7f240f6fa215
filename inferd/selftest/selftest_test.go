package selftest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/slmops/slmops/inferd/config"
	"github.com/slmops/slmops/inferd/engine"
	"github.com/slmops/slmops/inferd/engine/bigram"
	"github.com/slmops/slmops/inferd/engine/bigram/bigramtest"
	"github.com/slmops/slmops/inferd/gguf"
)

func load(t *testing.T) engine.Engine {
	return bigramtest.Engine(t, bigram.BuildOptions{Type: gguf.F16})
}

func TestSelfTest(t *testing.T) {
	e := load(t)
	golden := config.Prompt{Prompt: "slmops", MaxTokens: 6, ExpectContains: "small language"}
	for name, tc := range map[string]struct {
		st         *config.SelfTest
		wantPassed bool
		wantReason string
		says       string
	}{
		"the golden answer, no thresholds passes": {&config.SelfTest{Prompts: []config.Prompt{golden}}, true, ReasonPassed, "1/1 prompts passed"},
		"a wrong answer fails":                    {&config.SelfTest{Prompts: []config.Prompt{{Prompt: "slmops", MaxTokens: 6, ExpectContains: "gigantic"}}}, false, ReasonUnexpectedAnswer, "does not contain the expected text"},
		"a rate no node reaches fails":            {&config.SelfTest{Prompts: []config.Prompt{golden}, MinTokensPerSecond: 2_000_000_000}, false, ReasonTooSlow, "the model needs at least 2000000000"},
		"a first token no node makes in time":     {&config.SelfTest{Prompts: []config.Prompt{golden}, MaxTimeToFirstToken: time.Nanosecond}, false, ReasonFirstTokenLate, "first token after"},
		"no self-test only measures":              {nil, true, ReasonPassed, "measurement only"},
	} {
		t.Run(name, func(t *testing.T) {
			rep := Run(context.Background(), e, tc.st)
			if rep.Passed != tc.wantPassed || rep.Reason != tc.wantReason || !strings.Contains(rep.Message, tc.says) {
				t.Fatalf("got passed=%v %s %q; want %v %s saying %q", rep.Passed, rep.Reason, rep.Message, tc.wantPassed, tc.wantReason, tc.says)
			}
			if rep.TokensPerSecond <= 0 || len(rep.Prompts) != 1 || rep.Prompts[0].CompletionTokens == 0 {
				t.Errorf("measurements missing: %+v", rep)
			}
			if strings.Contains(rep.Message, "slmops") || strings.Contains(rep.Message, "gigantic") {
				t.Errorf("the report repeats prompt or expected text: %q", rep.Message)
			}
		})
	}
}

func TestSelfTestTimesOut(t *testing.T) {
	e := load(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep := Run(ctx, e, &config.SelfTest{Prompts: []config.Prompt{{Prompt: "x", MaxTokens: 4}}})
	if rep.Passed || rep.Reason != ReasonTimeout {
		t.Errorf("got %+v; want a Timeout failure", rep)
	}
}
