package llama

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/slmops/slmops/inferd/engine"
	"github.com/slmops/slmops/inferd/engine/llama/llamatest"
	"github.com/slmops/slmops/inferd/gguf"
)

// BenchmarkDecode is one decoded token of a small random model (about a
// tenth of TinyLlama's matrix sizes, four layers) per weight type, on two
// threads: the products, and the activation quantization that each one
// reads (Q8_0 for the 32-value block types, Q8_K for the K-quants), with
// the per-token overhead that small models show.
func BenchmarkDecode(b *testing.B) {
	for _, tc := range benchTypes {
		b.Run(tc.name, func(b *testing.B) {
			e := benchModel(b, tc.typ, tc.mix)
			ctx := context.Background()
			var seq engine.Sequence
			var err error
			n := 0
			for b.Loop() {
				// A fresh sequence every 64 tokens, so attention stays short.
				if n%64 == 0 {
					if seq != nil {
						seq.Close()
					}
					if seq, err = e.NewSequence(); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := seq.Forward(ctx, []int32{int32(3 + n%500)}); err != nil {
					b.Fatal(err)
				}
				n++
			}
			if seq != nil {
				seq.Close()
			}
		})
	}
}

// BenchmarkPrefill is a 64-token prompt (one prompt chunk) of the same
// models: the batched products (four tokens per weight row where the type
// has a four-activation kernel) and attention over the prompt.
func BenchmarkPrefill(b *testing.B) {
	prompt := make([]int32, 64)
	for i := range prompt {
		prompt[i] = int32(3 + 7*i)
	}
	for _, tc := range benchTypes {
		b.Run(tc.name, func(b *testing.B) {
			e := benchModel(b, tc.typ, tc.mix)
			ctx := context.Background()
			for b.Loop() {
				seq, err := e.NewSequence()
				if err != nil {
					b.Fatal(err)
				}
				if _, err := seq.Forward(ctx, prompt); err != nil {
					b.Fatal(err)
				}
				seq.Close()
			}
		})
	}
}

var benchTypes = []struct {
	name string
	typ  gguf.TensorType
	mix  string
}{{"Q8_0", gguf.Q8_0, ""}, {"Q4_0", gguf.Q4_0, ""}, {"Q4_K_M", gguf.Q4_K, "Q4_K_M"}, {"Q6_K", gguf.Q6_K, ""}, {"F16", gguf.F16, ""}}

// benchModel loads a small random model (about a tenth of TinyLlama's
// matrix sizes, four layers) of type typ on two threads.
func benchModel(b *testing.B, typ gguf.TensorType, mix string) engine.Engine {
	b.Helper()
	s := llamatest.RandomSpec{Embd: 1024, Layers: 4, Heads: 16, KVHeads: 4, FF: 2816, Vocab: 8192, Context: 512, Type: typ, Mix: mix, Seed: 3}
	path := filepath.Join(b.TempDir(), "model.gguf")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := llamatest.WriteRandom(f, s); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	e, err := engine.Load(path, engine.Expect{}, engine.Options{Threads: 2})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = e.Close() })
	return e
}
