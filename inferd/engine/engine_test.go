package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSampler(t *testing.T) {
	logits := []float32{1, 3, 2, 0.5}
	if got := NewSampler(0, 1, nil).Sample(logits); got != 1 {
		t.Errorf("greedy picked %d; want 1", got)
	}
	seed := int64(7)
	a, b := NewSampler(1, 1, &seed), NewSampler(1, 1, &seed)
	counts := map[int32]int{}
	for range 2000 {
		x, y := a.Sample(logits), b.Sample(logits)
		if x != y {
			t.Fatal("two samplers with one seed drew different tokens")
		}
		counts[x]++
	}
	// softmax(1,3,2,0.5) = 0.086, 0.638, 0.235, 0.052
	if p := float64(counts[1]) / 2000; p < 0.58 || p > 0.70 {
		t.Errorf("token 1 drawn %.3f of the time; want about 0.64", p)
	}
	if counts[3] == 0 {
		t.Error("temperature 1 with top_p 1 never drew the least likely token")
	}
	// top_k 2 keeps only tokens 1 and 2 too.
	topK := NewSampler(1, 1, &seed)
	topK.TopK = 2
	drawn := map[int32]int{}
	for range 2000 {
		drawn[topK.Sample(logits)]++
	}
	if len(drawn) != 2 || drawn[1] == 0 || drawn[2] == 0 {
		t.Errorf("top_k 2 drew %v; want only tokens 1 and 2", drawn)
	}
	// top_p 0.7 keeps only tokens 1 and 2 (0.638 + 0.235 reaches 0.7).
	nucleus := NewSampler(1, 0.7, &seed)
	for range 2000 {
		if tok := nucleus.Sample(logits); tok != 1 && tok != 2 {
			t.Fatalf("top_p 0.7 drew token %d, outside the nucleus", tok)
		}
	}
}

// scripted is an engine that generates a fixed token sequence: a test
// double for Generate's text handling, which does not depend on a model.
type scripted struct {
	pieces []string // token i+3 is pieces[i]; 0 BOS, 1 EOS
	script []int32
	ctxLen int
}

func (s *scripted) Info() Info { return Info{ContextLength: s.ctxLen, VocabSize: len(s.pieces) + 3} }
func (s *scripted) Tokenize(text string) ([]int32, error) {
	out := []int32{0}
	for range strings.Fields(text) {
		out = append(out, 3)
	}
	return out, nil
}
func (s *scripted) Piece(t int32) []byte {
	if t < 3 {
		return nil
	}
	return []byte(s.pieces[t-3])
}
func (s *scripted) IsEnd(t int32) bool                    { return t == 1 }
func (s *scripted) EncodeChat([]Message) ([]int32, error) { return nil, nil }
func (s *scripted) NewSequence() (Sequence, error)        { return &scriptSeq{s: s}, nil }
func (s *scripted) Close() error                          { return nil }

type scriptSeq struct {
	s *scripted
	i int
}

func (q *scriptSeq) Forward(context.Context, []int32) ([]float32, error) {
	logits := make([]float32, len(q.s.pieces)+3)
	next := int32(1)
	if q.i < len(q.s.script) {
		next = q.s.script[q.i]
	}
	q.i++
	logits[next] = 10
	return logits, nil
}
func (q *scriptSeq) Close() {}

func TestGenerateText(t *testing.T) {
	// "é" is split over two tokens; "STOP" over three.
	e := &scripted{pieces: []string{"caf", "\xc3", "\xa9", " ok", "ST", "O", "P", " more"}, ctxLen: 64}
	tok := func(s string) int32 {
		for i, p := range e.pieces {
			if p == s {
				return int32(i + 3)
			}
		}
		panic(s)
	}
	script := []int32{tok("caf"), tok("\xc3"), tok("\xa9"), tok(" ok"), tok("ST"), tok("O"), tok("P"), tok(" more")}

	for name, tc := range map[string]struct {
		stop       []string
		maxTokens  int
		wantText   string
		wantFinish string
		wantTokens int
	}{
		"a stop string spread over three tokens ends the text before it": {[]string{"STOP"}, 50, "café ok", FinishStop, 7},
		"max_tokens ends with length":                                    {nil, 3, "café", FinishLength, 3},
		"the end token ends with stop":                                   {nil, 50, "café okSTOP more", FinishStop, 8},
		"a stop string that never comes changes nothing":                 {[]string{"nope"}, 50, "café okSTOP more", FinishStop, 8},
	} {
		t.Run(name, func(t *testing.T) {
			e.script = script
			var chunks []string
			res, err := Generate(context.Background(), e, "hi there", Params{MaxTokens: tc.maxTokens, Stop: tc.stop}, func(s string) error {
				chunks = append(chunks, s)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			joined := strings.Join(chunks, "")
			if res.Text != tc.wantText || joined != tc.wantText || res.FinishReason != tc.wantFinish || res.CompletionTokens != tc.wantTokens || res.PromptTokens != 3 {
				t.Errorf("got %q (streamed %q) %s after %d tokens, prompt %d; want %q %s after %d", res.Text, joined, res.FinishReason, res.CompletionTokens, res.PromptTokens, tc.wantText, tc.wantFinish, tc.wantTokens)
			}
			for _, c := range chunks {
				if !utf8.ValidString(c) || strings.Contains(c, "ST") && len(tc.stop) > 0 && tc.stop[0] == "STOP" {
					t.Errorf("streamed chunk %q is half a character or part of a stop string", c)
				}
			}
		})
	}
}

func TestGenerateStopsWhenTheClientGoes(t *testing.T) {
	e := &scripted{pieces: []string{"x"}, ctxLen: 1 << 20}
	e.script = make([]int32, 1000)
	for i := range e.script {
		e.script[i] = 3
	}
	gone := errors.New("client gone")
	n := 0
	res, err := Generate(context.Background(), e, "go", Params{MaxTokens: 1000}, func(string) error {
		n++
		if n == 5 {
			return gone
		}
		return nil
	})
	if !errors.Is(err, gone) || res.CompletionTokens != 5 {
		t.Errorf("err %v after %d tokens; want the emit error after 5", err, res.CompletionTokens)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Generate(ctx, e, "go", Params{MaxTokens: 1000}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled context: %v", err)
	}
}

func TestGenerateRefusesAPromptLongerThanTheContext(t *testing.T) {
	e := &scripted{pieces: []string{"x"}, ctxLen: 4, script: []int32{3, 3, 3, 3, 3}}
	if _, err := Generate(context.Background(), e, "a b c d", Params{MaxTokens: 1}, nil); !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), "context holds 4") {
		t.Errorf("err = %v; want ErrInvalidInput naming the context", err)
	}
	// Room for two more tokens: max_tokens 10 is cut to 2, finish "length".
	res, err := Generate(context.Background(), e, "a", Params{MaxTokens: 10}, nil)
	if err != nil || res.CompletionTokens != 2 || res.FinishReason != FinishLength {
		t.Errorf("got %d tokens, %s, %v; want 2, length", res.CompletionTokens, res.FinishReason, err)
	}
}
