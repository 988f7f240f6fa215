package engine

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Params are the sampling settings of one generation.
type Params struct {
	// MaxTokens is the most tokens to generate; it is also cut to what the
	// context has room for.
	MaxTokens int
	// Temperature 0 is greedy.
	Temperature float32
	// TopP is the nucleus; 1 (or 0) keeps every token.
	TopP float32
	// Stop ends the generation at the first of these strings, which is not
	// part of the output.
	Stop []string
	// TopK keeps only the K most likely tokens; 0 keeps all.
	TopK int
	// Seed makes sampling repeatable.
	Seed *int64
}

// Finish reasons, as the OpenAI API names them.
const (
	FinishStop   = "stop"
	FinishLength = "length"
)

// Result is what a generation produced and how fast.
type Result struct {
	Text             string
	PromptTokens     int
	CompletionTokens int
	FinishReason     string
	// TimeToFirstToken is from the call to the first sampled token: it
	// includes reading the prompt.
	TimeToFirstToken time.Duration
	// Duration is the whole call.
	Duration time.Duration
}

// TokensPerSecond is the decode rate after the first token (the first one
// carries the prompt's cost); 0 when fewer than two tokens were made.
func (r Result) TokensPerSecond() float64 {
	decode := r.Duration - r.TimeToFirstToken
	if r.CompletionTokens < 2 || decode <= 0 {
		return 0
	}
	return float64(r.CompletionTokens-1) / decode.Seconds()
}

// Generate continues prompt, calling emit with each piece of text as soon as
// it is final: never half a UTF-8 character, never text that might turn out
// to be the start of a stop string. An error from emit (a client gone) or a
// done ctx stops the generation and is returned with what was made so far.
func Generate(ctx context.Context, e Engine, prompt string, p Params, emit func(text string) error) (Result, error) {
	start := time.Now()
	tokens, err := e.Tokenize(prompt)
	if err != nil {
		return Result{FinishReason: FinishLength}, err
	}
	return generate(ctx, e, tokens, p, emit, start)
}

// GenerateTokens is Generate from a prompt already tokenized (by EncodeChat).
func GenerateTokens(ctx context.Context, e Engine, tokens []int32, p Params, emit func(text string) error) (Result, error) {
	return generate(ctx, e, tokens, p, emit, time.Now())
}

func generate(ctx context.Context, e Engine, tokens []int32, p Params, emit func(text string) error, start time.Time) (Result, error) {
	res := Result{FinishReason: FinishLength}
	res.PromptTokens = len(tokens)
	ctxLen := e.Info().ContextLength
	if len(tokens) >= ctxLen {
		return res, fmt.Errorf("%w: the prompt has %d tokens and the model's context holds %d; shorten the prompt", ErrInvalidInput, len(tokens), ctxLen)
	}
	if p.MaxTokens <= 0 {
		return res, fmt.Errorf("%w: max_tokens must be positive", ErrInvalidInput)
	}
	maxTokens := min(p.MaxTokens, ctxLen-len(tokens))
	seq, err := e.NewSequence()
	if err != nil {
		return res, err
	}
	defer seq.Close()
	sampler := NewSampler(p.Temperature, p.TopP, p.Seed)
	sampler.TopK = p.TopK

	var text []byte
	emitted := 0
	maxStop := 0
	for _, s := range p.Stop {
		maxStop = max(maxStop, len(s))
	}
	flush := func(upTo int) error {
		if upTo <= emitted {
			return nil
		}
		chunk := string(text[emitted:upTo])
		emitted = upTo
		if emit != nil {
			return emit(chunk)
		}
		return nil
	}

	next := tokens
	for res.CompletionTokens < maxTokens {
		if err := ctx.Err(); err != nil {
			return finish(res, text, emitted, start), err
		}
		logits, err := seq.Forward(ctx, next)
		if err != nil {
			return finish(res, text, emitted, start), err
		}
		tok := sampler.Sample(logits)
		if res.CompletionTokens == 0 {
			res.TimeToFirstToken = time.Since(start)
		}
		if e.IsEnd(tok) {
			res.FinishReason = FinishStop
			break
		}
		res.CompletionTokens++
		next = []int32{tok}
		text = append(text, e.Piece(tok)...)

		if maxStop > 0 {
			from := max(0, emitted-maxStop)
			if at, ok := findStop(text[from:], p.Stop); ok {
				text = text[:from+at]
				res.FinishReason = FinishStop
				if err := flush(len(text)); err != nil {
					return finish(res, text, emitted, start), err
				}
				return finish(res, text, emitted, start), nil
			}
		}
		if err := flush(safeEnd(text, emitted, p.Stop)); err != nil {
			return finish(res, text, emitted, start), err
		}
	}
	err = flush(len(text))
	return finish(res, text, emitted, start), err
}

func finish(res Result, text []byte, _ int, start time.Time) Result {
	res.Text = string(text)
	res.Duration = time.Since(start)
	return res
}

func findStop(text []byte, stops []string) (int, bool) {
	best, found := 0, false
	for _, s := range stops {
		if s == "" {
			continue
		}
		if i := strings.Index(string(text), s); i >= 0 && (!found || i < best) {
			best, found = i, true
		}
	}
	return best, found
}

// safeEnd is how much of text can be emitted: not a trailing incomplete
// UTF-8 character, not a suffix that is the start of a stop string.
func safeEnd(text []byte, emitted int, stops []string) int {
	end := len(text)
	for _, s := range stops {
		for k := min(len(s)-1, end-emitted); k > 0; k-- {
			if strings.HasPrefix(s, string(text[len(text)-k:])) {
				end = min(end, len(text)-k)
				break
			}
		}
	}
	// Back off over an incomplete trailing character (at most 3 bytes).
	for back := 1; back <= 3 && end-back >= emitted; back++ {
		c := text[end-back]
		if c < utf8.RuneSelf {
			break
		}
		if utf8.RuneStart(c) {
			if !utf8.FullRune(text[end-back : end]) {
				end -= back
			}
			break
		}
	}
	return end
}
