package bigram

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slmops/slmops/inferd/engine"
	"github.com/slmops/slmops/inferd/gguf"
)

func writeModel(t *testing.T, o BuildOptions) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "model.gguf")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(f, o); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func greedy(t *testing.T, e engine.Engine, prompt string) engine.Result {
	t.Helper()
	res, err := engine.Generate(context.Background(), e, prompt, engine.Params{MaxTokens: 12}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestGeneratedModelsLoadAndContinueTheCorpus(t *testing.T) {
	var f32 string
	for _, typ := range []gguf.TensorType{gguf.F32, gguf.F16, gguf.Q8_0} {
		t.Run(typ.String(), func(t *testing.T) {
			e, err := engine.Load(writeModel(t, BuildOptions{Type: typ}), engine.Expect{Architecture: Architecture, Quantization: typ.String()}, engine.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			info := e.Info()
			if info.Quantization != typ.String() || info.VocabSize%32 != 0 || info.ContextLength != 2048 {
				t.Errorf("info %+v", info)
			}
			// "slmops ships small language models" is the only path through
			// the corpus from "slmops": greedy decoding must follow it.
			res := greedy(t, e, "slmops")
			if !strings.HasPrefix(res.Text, " ships small language models") {
				t.Errorf("greedy continuation of %q is %q", "slmops", res.Text)
			}
			if typ == gguf.F32 {
				f32 = res.Text
			} else if res.Text != f32 {
				t.Errorf("%s continues with %q, F32 with %q: quantization changed the argmax", typ, res.Text, f32)
			}
		})
	}
}

func TestLoadRefusesAFileThatIsNotWhatTheModelDeclares(t *testing.T) {
	path := writeModel(t, BuildOptions{Type: gguf.Q8_0})
	st, _ := os.Stat(path)
	for name, tc := range map[string]struct {
		want engine.Expect
		msg  string
	}{
		"another quantization":  {engine.Expect{Quantization: "Q4_K_M"}, `the file's quantization is "Q8_0", the SLMModel declares "Q4_K_M"`},
		"another architecture":  {engine.Expect{Architecture: "llama"}, `the file's architecture is "slmops-bigram", the SLMModel declares "llama"`},
		"another size":          {engine.Expect{SizeBytes: st.Size() + 1}, "the SLMModel declares"},
		"all of them, together": {engine.Expect{Architecture: "llama", Quantization: "F16"}, "architecture is"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := engine.Load(path, tc.want, engine.Options{})
			if !errors.Is(err, engine.ErrUnsupported) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("err = %v; want ErrUnsupported saying %q", err, tc.msg)
			}
		})
	}
	if e, err := engine.Load(path, engine.Expect{Quantization: "Q8_0", SizeBytes: st.Size()}, engine.Options{ContextLength: 64}); err != nil || e.Info().ContextLength != 64 {
		t.Errorf("matching declaration: %v", err)
	} else {
		e.Close()
	}
}

func TestLoadRefusesAnArchitectureThisBuildCannotRun(t *testing.T) {
	meta, tensors, err := Build(BuildOptions{Type: gguf.F32})
	if err != nil {
		t.Fatal(err)
	}
	meta[0].Value = "llama"
	path := filepath.Join(t.TempDir(), "llama.gguf")
	f, _ := os.Create(path)
	if err := gguf.Write(f, meta, tensors); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, err = engine.Load(path, engine.Expect{}, engine.Options{})
	if !errors.Is(err, engine.ErrUnsupported) || !strings.Contains(err.Error(), `architecture "llama" is not supported`) || !strings.Contains(err.Error(), Architecture) {
		t.Errorf("err = %v", err)
	}
}

func TestACorruptOrTruncatedFileNeverLoads(t *testing.T) {
	path := writeModel(t, BuildOptions{Type: gguf.F32})
	data, _ := os.ReadFile(path)
	trunc := filepath.Join(t.TempDir(), "t.gguf")
	_ = os.WriteFile(trunc, data[:len(data)/2], 0o644)
	if _, err := engine.Load(trunc, engine.Expect{}, engine.Options{}); !errors.Is(err, gguf.ErrInvalid) {
		t.Errorf("truncated: %v", err)
	}
	bad := append([]byte(nil), data...)
	bad[0] = 'X'
	_ = os.WriteFile(trunc, bad, 0o644)
	if _, err := engine.Load(trunc, engine.Expect{}, engine.Options{}); !errors.Is(err, gguf.ErrInvalid) {
		t.Errorf("bad magic: %v", err)
	}
}

func TestTokenizeRoundTrips(t *testing.T) {
	e, err := engine.Load(writeModel(t, BuildOptions{Type: gguf.F32}), engine.Expect{}, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	text := "The edge node is ready, 42!"
	ids, _ := e.Tokenize(text)
	var b strings.Builder
	for _, id := range ids {
		b.Write(e.Piece(id))
	}
	if ids[0] != BOS || b.String() != text {
		t.Errorf("tokens %v decode to %q", ids, b.String())
	}
	if len(ids) > len(strings.Fields(text))+8 {
		t.Errorf("%d tokens for %d words: corpus words were not matched whole", len(ids), len(strings.Fields(text)))
	}
	ids, _ = e.Tokenize("naïve")
	if !engine.Contains(ids, UNK) {
		t.Errorf("a character outside the vocabulary did not become <unk>: %v", ids)
	}
}

func TestEveryCharacterTokenHasItsText(t *testing.T) {
	e, err := engine.Load(writeModel(t, BuildOptions{Type: gguf.F32, MinVocab: 256}), engine.Expect{}, engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	text := "if a < b && c > d { return \"<ok>\" }\n"
	ids, _ := e.Tokenize(text)
	var b strings.Builder
	for _, id := range ids {
		if id == UNK {
			t.Errorf("an ASCII character became <unk> in %v", ids)
		}
		b.Write(e.Piece(id))
	}
	if b.String() != text {
		t.Errorf("decoded %q; want %q", b.String(), text)
	}
}
