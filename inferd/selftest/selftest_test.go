package selftest

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

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

// TestQualityChecks: expectRegex and expectJSONSchema judge the answer as
// expectContains does, each prompt's outcome is its own, and no message
// quotes the prompt, the answer or the expected text.
func TestQualityChecks(t *testing.T) {
	// Every token of this corpus has one successor, so "answer" is
	// answered " [true]" (JSON with a space before it).
	jsonModel := bigramtest.Engine(t, bigram.BuildOptions{Type: gguf.F16, Corpus: "answer [true]\n"})
	prose := load(t)
	schema := func(s string) json.RawMessage { return json.RawMessage(s) }
	for name, tc := range map[string]struct {
		e          engine.Engine
		prompts    []config.Prompt
		wantPassed []bool
		wantReason string
		says       string
	}{
		"an answer that matches the regex": {jsonModel, []config.Prompt{{Prompt: "answer", MaxTokens: 8, ExpectRegex: `^\s*\[(true|false)\]$`}},
			[]bool{true}, ReasonPassed, "1/1 prompts passed"},
		"an answer that does not match the regex": {jsonModel, []config.Prompt{{Prompt: "answer", MaxTokens: 8, ExpectRegex: `^\{`}},
			[]bool{false}, ReasonUnexpectedAnswer, "prompt 0: the answer (4 tokens) does not match expectRegex"},
		"JSON that satisfies the schema": {jsonModel, []config.Prompt{{Prompt: "answer", MaxTokens: 8,
			ExpectJSONSchema: schema(`{"type":"array","items":{"type":"boolean","enum":[true]}}`)}},
			[]bool{true}, ReasonPassed, "1/1 prompts passed"},
		"JSON of the wrong shape": {jsonModel, []config.Prompt{{Prompt: "answer", MaxTokens: 8,
			ExpectJSONSchema: schema(`{"type":"object","required":["ok"]}`)}},
			[]bool{false}, ReasonUnexpectedAnswer, "does not satisfy expectJSONSchema: at $: want object, got an array"},
		"JSON cut by maxTokens": {jsonModel, []config.Prompt{{Prompt: "answer", MaxTokens: 3, ExpectJSONSchema: schema(`{"type":"array"}`)}},
			[]bool{false}, ReasonUnexpectedAnswer, "is not one JSON value: it ends before its JSON value does"},
		"prose where JSON is expected": {prose, []config.Prompt{{Prompt: "slmops", MaxTokens: 6, ExpectJSONSchema: schema(`{}`)}},
			[]bool{false}, ReasonUnexpectedAnswer, "is not one JSON value: a syntax error at byte"},
		"every expectation of a prompt must hold": {jsonModel, []config.Prompt{{Prompt: "answer", MaxTokens: 8,
			ExpectContains: "true", ExpectRegex: `true`, ExpectJSONSchema: schema(`{"type":"string"}`)}},
			[]bool{false}, ReasonUnexpectedAnswer, "want string, got an array"},
		"one prompt fails, the other passes": {jsonModel, []config.Prompt{
			{Prompt: "answer", MaxTokens: 8, ExpectRegex: `false`},
			{Prompt: "answer", MaxTokens: 8, ExpectRegex: `true`}},
			[]bool{false, true}, ReasonUnexpectedAnswer, "prompt 0: the answer (4 tokens) does not match expectRegex"},
		"an invalid regex that skipped config.Validate": {jsonModel, []config.Prompt{{Prompt: "answer", MaxTokens: 8, ExpectRegex: `(`}},
			[]bool{false}, ReasonError, "prompt 0: expectRegex: error parsing regexp"},
	} {
		t.Run(name, func(t *testing.T) {
			rep := Run(context.Background(), tc.e, &config.SelfTest{Prompts: tc.prompts})
			if rep.Reason != tc.wantReason || rep.Passed != (tc.wantReason == ReasonPassed) || !strings.Contains(rep.Message, tc.says) {
				t.Fatalf("got passed=%v %s %q; want %s saying %q", rep.Passed, rep.Reason, rep.Message, tc.wantReason, tc.says)
			}
			var passed []bool
			for _, p := range rep.Prompts {
				passed = append(passed, p.Passed)
			}
			if diff := cmp.Diff(tc.wantPassed, passed); diff != "" {
				t.Errorf("per-prompt results (-want +got):\n%s", diff)
			}
			for _, leak := range []string{"[true]", "slmops", "small language"} {
				if strings.Contains(rep.Message, leak) {
					t.Errorf("the message quotes prompt or answer text (%q): %q", leak, rep.Message)
				}
			}
		})
	}
}

// TestPromptRateIsMeasured: the self-test reports how fast prompts are read
// as well as how fast tokens are made.
func TestPromptRateIsMeasured(t *testing.T) {
	rep := Run(context.Background(), load(t), &config.SelfTest{Prompts: []config.Prompt{{Prompt: "slmops ships small language models", MaxTokens: 4}}})
	if !rep.Passed || rep.PromptTokensPerSecond <= 0 || rep.Prompts[0].PromptTokens == 0 {
		t.Fatalf("got %+v; want a positive prompt rate", rep)
	}
}
