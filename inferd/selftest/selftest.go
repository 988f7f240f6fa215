// Package selftest is inferd's on-node gate: before a pod reports Ready it
// runs the SLMModel's golden prompts on this node's hardware and compares
// what it measured with the model's thresholds. A canary step is promoted
// only when its nodes pass, so a model that is too slow or answers wrongly
// on a real device stops the rollout where it starts.
//
// What it owns: running the golden prompts and judging the measurements.
// What it may not touch: readiness itself (inferd/daemon turns its result
// into /readyz) and the prompts' text in anything it reports: results name
// a prompt by its index, never by what it says.
package selftest

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/slmops/slmops/inferd/config"
	"github.com/slmops/slmops/inferd/engine"
	"github.com/slmops/slmops/inferd/selftest/jsonschema"
)

// Reasons a self-test failed, as /status and the termination message say.
const (
	ReasonPassed           = "Passed"
	ReasonTooSlow          = "TooSlow"
	ReasonFirstTokenLate   = "FirstTokenTooLate"
	ReasonUnexpectedAnswer = "UnexpectedAnswer"
	ReasonError            = "Error"
	ReasonTimeout          = "Timeout"
)

// DefaultTimeout bounds a self-test whose SLMModel sets none.
const DefaultTimeout = 2 * time.Minute

// measurePrompt is run when the SLMModel has no self-test, so /status still
// shows what this node can do; it gates nothing.
var measurePrompt = config.Prompt{Prompt: "Hello", MaxTokens: 16}

// Report is what the self-test measured and decided. It never holds prompt
// or answer text: those stay out of logs and status.
type Report struct {
	// Passed is the gate.
	Passed bool `json:"passed"`
	// Reason is Passed or why not; Message says it in words.
	Reason  string `json:"reason"`
	Message string `json:"message"`
	// Gated is false when the SLMModel has no self-test (only measured).
	Gated bool `json:"gated"`
	// TokensPerSecond is the decode rate over all prompts.
	TokensPerSecond float64 `json:"tokensPerSecond"`
	// PromptTokensPerSecond is the rate at which the prompts were read: their
	// tokens over the time to each one's first token.
	PromptTokensPerSecond float64 `json:"promptTokensPerSecond"`
	// TimeToFirstTokenSeconds is the slowest prompt's.
	TimeToFirstTokenSeconds float64 `json:"timeToFirstTokenSeconds"`
	// Thresholds from the SLMModel (0 when not set).
	MinTokensPerSecond         int32   `json:"minTokensPerSecond,omitempty"`
	MaxTimeToFirstTokenSeconds float64 `json:"maxTimeToFirstTokenSeconds,omitempty"`
	// Prompts are the per-prompt results, in order.
	Prompts []PromptResult `json:"prompts"`
	// Seconds is how long the self-test took.
	Seconds float64 `json:"seconds"`
}

// PromptResult is one golden prompt's outcome.
type PromptResult struct {
	Index                   int     `json:"index"`
	PromptTokens            int     `json:"promptTokens"`
	CompletionTokens        int     `json:"completionTokens"`
	TimeToFirstTokenSeconds float64 `json:"timeToFirstTokenSeconds"`
	TokensPerSecond         float64 `json:"tokensPerSecond"`
	// AnswerMatched is nil when the prompt expects nothing; otherwise
	// whether the answer met every expectation it has (expectContains,
	// expectRegex, expectJSONSchema).
	AnswerMatched *bool `json:"answerMatched,omitempty"`
	// Passed: the prompt ran to its end without error and its answer
	// matched (or it expects nothing).
	Passed bool   `json:"passed"`
	Error  string `json:"error,omitempty"`
}

// expectation is one check of a prompt's answer; ok says why not in words
// that never quote the answer.
type expectation struct {
	name  string
	check func(answer string) (ok bool, why string)
}

// expectations are the checks of p's answer, compiled once.
func expectations(p config.Prompt) ([]expectation, error) {
	var out []expectation
	if p.ExpectContains != "" {
		out = append(out, expectation{"expectContains", func(a string) (bool, string) {
			return strings.Contains(a, p.ExpectContains), "does not contain the expected text"
		}})
	}
	if p.ExpectRegex != "" {
		re, err := regexp.Compile(p.ExpectRegex)
		if err != nil {
			return nil, fmt.Errorf("expectRegex: %w", err)
		}
		out = append(out, expectation{"expectRegex", func(a string) (bool, string) {
			return re.MatchString(a), "does not match expectRegex"
		}})
	}
	if len(p.ExpectJSONSchema) > 0 {
		s, err := jsonschema.Compile(p.ExpectJSONSchema)
		if err != nil {
			return nil, fmt.Errorf("expectJSONSchema: %w", err)
		}
		out = append(out, expectation{"expectJSONSchema", func(a string) (bool, string) {
			if err := s.ValidateText(a); err != nil {
				return false, "does not satisfy expectJSONSchema: " + err.Error()
			}
			return true, ""
		}})
	}
	return out, nil
}

// Run runs the self-test of st (nil: measure only) on e. Prompts run
// greedily, one after another, with the node otherwise idle: inferd runs it
// before it accepts requests.
func Run(ctx context.Context, e engine.Engine, st *config.SelfTest) Report {
	start := time.Now()
	rep := Report{Gated: st != nil}
	prompts := []config.Prompt{measurePrompt}
	timeout := DefaultTimeout
	if st != nil {
		prompts = st.Prompts
		rep.MinTokensPerSecond = st.MinTokensPerSecond
		rep.MaxTimeToFirstTokenSeconds = st.MaxTimeToFirstToken.Seconds()
		if st.Timeout > 0 {
			timeout = st.Timeout
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var failures []string
	reason := ReasonPassed
	fail := func(r, msg string) {
		if reason == ReasonPassed {
			reason = r
		}
		failures = append(failures, msg)
	}
	var decodeTokens, promptTokens int
	var decodeTime, promptTime time.Duration
	for i, p := range prompts {
		// config.Validate compiled these before; a failure here is a
		// config that skipped it.
		checks, err := expectations(p)
		if err != nil {
			rep.Prompts = append(rep.Prompts, PromptResult{Index: i, Error: err.Error()})
			fail(ReasonError, fmt.Sprintf("prompt %d: %v", i, err))
			continue
		}
		maxTokens := int(p.MaxTokens)
		if maxTokens <= 0 {
			maxTokens = 16
		}
		res, err := engine.Generate(ctx, e, p.Prompt, engine.Params{MaxTokens: maxTokens}, nil)
		pr := PromptResult{
			Index: i, PromptTokens: res.PromptTokens, CompletionTokens: res.CompletionTokens,
			TimeToFirstTokenSeconds: res.TimeToFirstToken.Seconds(), TokensPerSecond: res.TokensPerSecond(),
		}
		rep.TimeToFirstTokenSeconds = max(rep.TimeToFirstTokenSeconds, pr.TimeToFirstTokenSeconds)
		if res.TimeToFirstToken > 0 {
			promptTokens += res.PromptTokens
			promptTime += res.TimeToFirstToken
		}
		if res.CompletionTokens > 1 {
			decodeTokens += res.CompletionTokens - 1
			decodeTime += res.Duration - res.TimeToFirstToken
		}
		switch {
		case ctx.Err() != nil:
			pr.Error = "timed out"
			fail(ReasonTimeout, fmt.Sprintf("prompt %d did not finish within the self-test timeout %s", i, timeout))
		case err != nil:
			pr.Error = err.Error()
			fail(ReasonError, fmt.Sprintf("prompt %d: %v", i, err))
		case len(checks) > 0:
			ok := true
			for _, c := range checks {
				// The expectations are config, not a user's prompt, but the
				// answer is the model's: neither goes into the message.
				if matched, why := c.check(res.Text); !matched {
					ok = false
					fail(ReasonUnexpectedAnswer, fmt.Sprintf("prompt %d: the answer (%d tokens) %s", i, res.CompletionTokens, why))
				}
			}
			pr.AnswerMatched = &ok
			pr.Passed = ok
		default:
			pr.Passed = true
		}
		rep.Prompts = append(rep.Prompts, pr)
		if ctx.Err() != nil {
			break
		}
	}
	if decodeTime > 0 {
		rep.TokensPerSecond = float64(decodeTokens) / decodeTime.Seconds()
	}
	if promptTime > 0 {
		rep.PromptTokensPerSecond = float64(promptTokens) / promptTime.Seconds()
	}
	if st != nil && reason != ReasonTimeout && reason != ReasonError {
		if st.MinTokensPerSecond > 0 && rep.TokensPerSecond < float64(st.MinTokensPerSecond) {
			fail(ReasonTooSlow, fmt.Sprintf("%.1f tokens/s on this node, the model needs at least %d", rep.TokensPerSecond, st.MinTokensPerSecond))
		}
		if st.MaxTimeToFirstToken > 0 && rep.TimeToFirstTokenSeconds > st.MaxTimeToFirstToken.Seconds() {
			fail(ReasonFirstTokenLate, fmt.Sprintf("first token after %.3fs on this node, the model allows %s", rep.TimeToFirstTokenSeconds, st.MaxTimeToFirstToken))
		}
	}
	if !rep.Gated && reason != ReasonPassed {
		// Measuring only: a failure is reported, never gates.
		rep.Message = "measurement only (the SLMModel has no selfTest): " + strings.Join(failures, "; ")
		reason, failures = ReasonPassed, nil
	}
	rep.Reason = reason
	rep.Passed = reason == ReasonPassed
	switch {
	case !rep.Passed:
		rep.Message = strings.Join(failures, "; ")
	case rep.Gated:
		rep.Message = fmt.Sprintf("%d/%d prompts passed: %.1f tokens/s, first token within %.3f ms", len(prompts), len(prompts), rep.TokensPerSecond, rep.TimeToFirstTokenSeconds*1000)
	case rep.Message == "":
		rep.Message = fmt.Sprintf("measurement only (the SLMModel has no selfTest): %.1f tokens/s, first token after %.3f ms", rep.TokensPerSecond, rep.TimeToFirstTokenSeconds*1000)
	}
	rep.Seconds = time.Since(start).Seconds()
	return rep
}
