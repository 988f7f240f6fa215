package tokenizer

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/slmops/slmops/inferd/engine/tokenizer/tokenizertest"
	"github.com/slmops/slmops/inferd/gguf"
	"github.com/slmops/slmops/test/skip"
)

// goldenDir is ../shared/testdata/tokenizers from the project root, or
// $SLMOPS_SHARED/testdata/tokenizers (as for hack/build-llama-cpp.sh, for a
// clone that does not sit beside the shared folder): the vocabularies and
// golden tokenizations from llama.cpp's models/ folder, which stay out of
// this repository (see the README there).
var goldenDir = func() string {
	if shared := os.Getenv("SLMOPS_SHARED"); shared != "" {
		return filepath.Join(shared, "testdata", "tokenizers")
	}
	return "../../../../shared/testdata/tokenizers"
}()

const (
	goldenSPM = "ggml-vocab-llama-spm.gguf"
	goldenBPE = "ggml-vocab-gpt-2.gguf"
)

// goldenTokenizer loads a golden vocabulary, skipping the test when the
// folder is absent (a fresh clone without the shared test data).
func goldenTokenizer(tb testing.TB, name string) *Tokenizer {
	tb.Helper()
	if _, err := os.Stat(goldenDir); errors.Is(err, fs.ErrNotExist) {
		skip.Because(tb, "the tokenizers against their golden tokenizations: "+goldenDir+" is absent",
			"put the shared folder beside the project (../shared/testdata/tokenizers), or set SLMOPS_SHARED to it")
	}
	m, err := gguf.Open(filepath.Join(goldenDir, name))
	if err != nil {
		tb.Fatalf("open %s: %v", name, err)
	}
	defer m.Close()
	tok, err := FromGGUF(m)
	if err != nil {
		tb.Fatalf("FromGGUF(%s): %v", name, err)
	}
	return tok
}

// readGolden reads a golden vocabulary's NAME.inp and NAME.out.
func readGolden(tb testing.TB, name string) ([]string, [][]int32) {
	tb.Helper()
	inputs, wants, err := tokenizertest.ReadGolden(goldenDir, name)
	if err != nil {
		tb.Fatal(err)
	}
	return inputs, wants
}

func TestGolden(t *testing.T) {
	for _, name := range []string{goldenSPM, goldenBPE} {
		t.Run(name, func(t *testing.T) {
			tok := goldenTokenizer(t, name)
			inputs, wants := readGolden(t, name)
			if len(inputs) < 40 {
				t.Fatalf("only %d golden cases; the file looks truncated", len(inputs))
			}
			for i, in := range inputs {
				got := tok.Encode(in, false)
				if diff := cmp.Diff(wants[i], got); diff != "" {
					t.Errorf("case %d %q: Encode (-want +got):\n%s", i, in, diff)
				}
				// For SentencePiece the space prefix added on encoding is
				// stripped again, as llama.cpp's detokenizer strips one
				// leading space, so both kinds give back the text.
				if dec := tok.Decode(got); dec != in {
					t.Errorf("case %d: Decode(Encode(%q)) = %q", i, in, dec)
				}
			}
			t.Logf("%d golden cases", len(inputs))
		})
	}
}

func TestGoldenSpecials(t *testing.T) {
	t.Run(goldenSPM, func(t *testing.T) {
		tok := goldenTokenizer(t, goldenSPM)
		// 1 <s>, 15043 ▁Hello, 2 </s>; 3186 ▁world.
		if diff := cmp.Diff([]int32{1, 15043, 3186}, tok.Encode("Hello world", true)); diff != "" {
			t.Errorf("Encode adds BOS (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]int32{1, 1, 15043, 2}, tok.EncodeWithSpecials("<s>Hello</s>", true)); diff != "" {
			t.Errorf("EncodeWithSpecials (-want +got):\n%s", diff)
		}
		plain := tok.Encode("<s>Hello</s>", false)
		for _, id := range plain {
			if id == tok.BOS() || id == tok.EOS() {
				t.Errorf("Encode produced control token %d from text: %v", id, plain)
			}
		}
		if got := tok.Decode(plain); got != "<s>Hello</s>" {
			t.Errorf("Decode(Encode(<s>Hello</s>)) = %q", got)
		}
		if !tok.IsEnd(2) || tok.IsEnd(1) || tok.VocabSize() != 32000 {
			t.Errorf("IsEnd(2), IsEnd(1), VocabSize = %v, %v, %d; want true, false, 32000", tok.IsEnd(2), tok.IsEnd(1), tok.VocabSize())
		}
		if got := string(tok.Piece(13)); got != "\n" {
			t.Errorf("Piece(<0x0A>) = %q", got)
		}
	})
	t.Run(goldenBPE, func(t *testing.T) {
		tok := goldenTokenizer(t, goldenBPE)
		// 15496 Hello, 995 Ġworld, 50256 <|endoftext|>.
		if diff := cmp.Diff([]int32{15496, 995}, tok.Encode("Hello world", true)); diff != "" {
			t.Errorf("Encode adds no BOS for gpt2 (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]int32{15496, 995, 50256}, tok.EncodeWithSpecials("Hello world<|endoftext|>", false)); diff != "" {
			t.Errorf("EncodeWithSpecials (-want +got):\n%s", diff)
		}
		plain := tok.Encode("Hello world<|endoftext|>", false)
		for _, id := range plain {
			if id == 50256 {
				t.Errorf("Encode produced <|endoftext|> from text: %v", plain)
			}
		}
		if !tok.IsEnd(50256) || tok.BOS() != 50256 || tok.VocabSize() != 50257 {
			t.Errorf("IsEnd(50256), BOS, VocabSize = %v, %d, %d", tok.IsEnd(50256), tok.BOS(), tok.VocabSize())
		}
		if got := string(tok.Piece(995)); got != " world" {
			t.Errorf("Piece(995) = %q; want %q", got, " world")
		}
	})
}

// TestGoldenConcurrent encodes from many goroutines at once; run with -race
// it checks that encoding shares no mutable state.
func TestGoldenConcurrent(t *testing.T) {
	for _, name := range []string{goldenSPM, goldenBPE} {
		t.Run(name, func(t *testing.T) {
			tok := goldenTokenizer(t, name)
			inputs, wants := readGolden(t, name)
			var wg sync.WaitGroup
			errs := make(chan string, 8*len(inputs))
			for range 8 {
				wg.Go(func() {
					for i, in := range inputs {
						if !slices.Equal(tok.Encode(in, false), wants[i]) {
							errs <- in
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for in := range errs {
				t.Errorf("concurrent Encode(%q) differs from the golden ids", in)
			}
		})
	}
}

// benchText is a prompt of about 2,000 characters built from the golden
// strings, which mix prose, code, whitespace runs, numbers and other scripts.
func benchText(tb testing.TB, name string) string {
	inputs, _ := readGolden(tb, name)
	var r []rune
	for len(r) < 2000 {
		for _, in := range inputs {
			r = append(r, []rune(in+" ")...)
		}
	}
	return string(r[:2000])
}

func BenchmarkEncode(b *testing.B) {
	for _, name := range []string{goldenSPM, goldenBPE} {
		b.Run(name, func(b *testing.B) {
			tok := goldenTokenizer(b, name)
			text := benchText(b, name)
			b.SetBytes(int64(len(text)))
			b.ReportAllocs()
			for b.Loop() {
				tok.Encode(text, true)
			}
		})
	}
}
