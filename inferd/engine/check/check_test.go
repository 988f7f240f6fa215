package check

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slmops/slmops/inferd/engine/llama"
	"github.com/slmops/slmops/inferd/engine/llama/llamatest"
	"github.com/slmops/slmops/inferd/gguf"
)

// TestGeneratedFilesRun: every architecture and type the project generates
// runs on this build, and the estimate is the file's tensors plus the KV
// cache of the model's shape at the context asked for.
func TestGeneratedFilesRun(t *testing.T) {
	for _, c := range []struct {
		arch, mix string
		typ       gguf.TensorType
	}{
		{"llama", "", gguf.Q8_0}, {"llama", "", gguf.Q4_0}, {"llama", "Q4_K_M", gguf.Q4_K}, {"llama", "", gguf.F16},
		{"qwen2", "", gguf.Q8_0}, {"qwen3", "", gguf.Q4_0}, {"phi3", "", gguf.Q8_0}, {"gemma3", "", gguf.Q8_0},
		{"granite", "", gguf.Q4_0}, {"smollm3", "", gguf.Q8_0},
	} {
		t.Run(c.arch+"/"+c.typ.String()+c.mix, func(t *testing.T) {
			spec := llamatest.RandomSpec{Arch: c.arch, Embd: 256, Layers: 2, Heads: 4, KVHeads: 2, FF: 512, Vocab: 512,
				Context: 128, Type: c.typ, Mix: c.mix, Seed: 3, ChatMLTokens: true}
			path := llamatest.WriteFile(t, spec)
			r, err := Check(path, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !r.Runs() {
				t.Fatalf("a generated %s file does not run: %v", c.arch, r.Problems)
			}
			if r.Architecture != c.arch || r.ModelContext != 128 || r.Context != 128 {
				t.Errorf("architecture %q, context %d of %d", r.Architecture, r.Context, r.ModelContext)
			}
			m, err := gguf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			var weights int64
			for _, tn := range m.Tensors {
				weights += int64(tn.Size)
			}
			cfg, err := llama.ReadConfig(m, c.arch)
			if err != nil {
				t.Fatal(err)
			}
			kv := 2 * int64(spec.Layers) * 128 * int64(spec.KVHeads) * int64(cfg.HeadDim) * llama.KVBytesPerValue
			if r.WeightsBytes != weights || r.KVCacheBytes != kv || r.TotalBytes() != weights+kv {
				t.Errorf("weights %d (want %d), KV cache %d (want %d)", r.WeightsBytes, weights, r.KVCacheBytes, kv)
			}
			if r.Types[c.typ] == 0 {
				t.Errorf("no %s tensors counted: %v", c.typ, r.Types)
			}
			if !strings.Contains(r.String(), "runs on this build") {
				t.Errorf("the report does not say it runs:\n%s", r)
			}

			// A shorter context halves the cache; a longer one than the
			// model's is refused.
			half, err := Check(path, 64)
			if err != nil || !half.Runs() || half.KVCacheBytes != kv/2 {
				t.Errorf("at 64 tokens: KV cache %d, want %d (%v %v)", half.KVCacheBytes, kv/2, err, half.Problems)
			}
			long, err := Check(path, 4096)
			if err != nil || long.Runs() || !strings.Contains(strings.Join(long.Problems, ";"), "context 4096 is longer than the model's 128") {
				t.Errorf("at 4096 tokens: %v %v", err, long.Problems)
			}

			// What inferd reads before each load is the same estimate.
			mem, err := Memory(path)
			if err != nil || mem.WeightsBytes != weights || mem.KVBytesPerToken != kv/128 || mem.ModelContext != 128 {
				t.Errorf("Memory: weights %d, %d per token, context %d (%v); want %d, %d, 128", mem.WeightsBytes, mem.KVBytesPerToken, mem.ModelContext, err, weights, kv/128)
			}
			for _, e := range []struct{ context, seqs, tokens int }{{0, 1, 128}, {64, 2, 128}, {4096, 1, 128}, {32, 3, 96}} {
				if got := mem.Estimate(e.context, e.seqs); got != weights+int64(e.tokens)*kv/128 {
					t.Errorf("Estimate(%d, %d) = %d; want the weights and %d tokens of KV cache, %d", e.context, e.seqs, got, e.tokens, weights+int64(e.tokens)*kv/128)
				}
			}
		})
	}
}

// TestUnsupportedFilesAreRefusedWithTheReason: a tensor type without
// kernels, an architecture this build does not run, a file that is no
// GGUF file: each says what is wrong.
func TestUnsupportedFilesAreRefusedWithTheReason(t *testing.T) {
	dir := t.TempDir()
	writeGGUF := func(name string, meta []gguf.KV, tensors []gguf.Tensor) string {
		path := filepath.Join(dir, name)
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := gguf.Write(f, meta, tensors); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		return path
	}
	f64 := writeGGUF("f64.gguf", []gguf.KV{{Key: "general.architecture", Type: gguf.TypeString, Value: "llama"}},
		[]gguf.Tensor{{Name: "token_embd.weight", Dims: []uint64{8, 4}, Type: gguf.F64, Data: make([]byte, 8*4*8)}})
	mamba := writeGGUF("mamba.gguf", []gguf.KV{{Key: "general.architecture", Type: gguf.TypeString, Value: "mamba"}},
		[]gguf.Tensor{{Name: "token_embd.weight", Dims: []uint64{8, 4}, Type: gguf.F32, Data: make([]byte, 8*4*4)}})
	for path, want := range map[string]string{
		f64:   "tensor types this build has no kernels for: F64 (1 tensors)",
		mamba: `architecture "mamba" is not one this build runs`,
	} {
		r, err := Check(path, 0)
		if err != nil {
			t.Fatal(err)
		}
		if r.Runs() {
			t.Errorf("%s runs", path)
		}
		if !strings.Contains(r.String(), "does not run: "+want) {
			t.Errorf("%s: the report does not say %q:\n%s", filepath.Base(path), want, r)
		}
	}
	junk := filepath.Join(dir, "junk.gguf")
	if err := os.WriteFile(junk, []byte("<html>not found</html>"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Check(junk, 0); !errors.Is(err, ErrUnreadable) || !errors.Is(err, gguf.ErrInvalid) {
		t.Errorf("a file that is not GGUF: %v", err)
	}
	if _, err := Memory(junk); !errors.Is(err, ErrUnreadable) {
		t.Errorf("Memory of a file that is not GGUF: %v", err)
	}
}
