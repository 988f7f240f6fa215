package engine_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/slmops/slmops/inferd/engine"
	"github.com/slmops/slmops/inferd/engine/bigram"
	"github.com/slmops/slmops/inferd/engine/llama"
	"github.com/slmops/slmops/inferd/gguf"
	"github.com/slmops/slmops/inferd/gguf/gguftest"
)

// FuzzLoad drives the whole load path inferd runs on a downloaded file:
// write the bytes to a file, gguf.Open it (map and validate), read every
// tensor, hand the mapping to the loader of every registered architecture
// (whatever the file's general.architecture says), and load it the way the
// daemon does with engine.Load; a model that loads is asked to tokenize,
// render a chat and run one forward step. Any error is fine; a panic, or a
// tensor whose bytes are not its size, is a bug.
//
// It starts from small valid models of each architecture, written by the
// project's writers, and from the crafted corpus of package gguftest, so
// that mutations start deep in the format. `go test` runs the seeds (and
// testdata/fuzz/FuzzLoad); `make fuzz` explores further.
func FuzzLoad(f *testing.F) {
	for _, seed := range loadSeeds(f) {
		f.Add(seed)
	}
	for _, c := range gguftest.Crafted() {
		f.Add(c.Data)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "model.gguf")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := gguf.Open(path)
		if err != nil {
			return
		}
		defer m.Close()
		for _, ti := range m.Tensors {
			info, b, ok := m.Tensor(ti.Name)
			if !ok || uint64(len(b)) != info.Size {
				t.Fatalf("tensor %q of %d bytes: got %d bytes, ok=%v", ti.Name, ti.Size, len(b), ok)
			}
			if len(b) > 0 {
				_ = b[0] + b[len(b)-1]
			}
		}
		_ = m.Quantization()
		opts := engine.Options{Threads: 1, ContextLength: 16}
		for _, arch := range engine.Architectures() {
			load, _ := engine.Lookup(arch)
			if e, err := load(m, opts); err == nil {
				exercise(t, e)
				_ = e.Close()
			}
		}
		if e, err := engine.Load(path, engine.Expect{}, opts); err == nil {
			exercise(t, e)
			_ = e.Close()
		}
	})
}

// exercise uses a loaded model the way the self-test first does.
func exercise(t *testing.T, e engine.Engine) {
	info := e.Info()
	tokens, err := e.Tokenize("slmops ships")
	if err != nil || len(tokens) == 0 {
		return
	}
	for _, tok := range tokens {
		_ = e.Piece(tok)
		_ = e.IsEnd(tok)
	}
	_, _ = e.EncodeChat([]engine.Message{{Role: "user", Content: "hi"}})
	seq, err := e.NewSequence()
	if err != nil {
		return
	}
	defer seq.Close()
	logits, err := seq.Forward(context.Background(), tokens[:min(len(tokens), 4)])
	if err == nil && len(logits) != info.VocabSize {
		t.Fatalf("%d logits for a vocabulary of %d", len(logits), info.VocabSize)
	}
}

// loadSeeds are small valid models of every registered architecture.
func loadSeeds(tb testing.TB) [][]byte {
	var seeds [][]byte
	write := func(w func(*bytes.Buffer) error) {
		var buf bytes.Buffer
		if err := w(&buf); err != nil {
			tb.Fatal(err)
		}
		seeds = append(seeds, buf.Bytes())
	}
	write(func(b *bytes.Buffer) error {
		return bigram.Write(b, bigram.BuildOptions{Corpus: "slmops ships small models", Type: gguf.Q8_0, ContextLength: 16})
	})
	for _, arch := range []string{llama.ArchLlama, llama.ArchQwen2} {
		write(func(b *bytes.Buffer) error {
			return llama.WriteRandom(b, llama.RandomSpec{Arch: arch, Embd: 32, Layers: 1, Heads: 2, KVHeads: 1, FF: 32, Vocab: 260, Context: 16, Type: gguf.Q8_0, Tied: true, Seed: 1})
		})
	}
	seeds = append(seeds, gguftest.Valid())
	return seeds
}

// TestLoadSeedsLoad: the fuzz seeds are models that load, so that
// mutations start from files that reach the loaders.
func TestLoadSeedsLoad(t *testing.T) {
	for i, seed := range loadSeeds(t) {
		path := filepath.Join(t.TempDir(), "model.gguf")
		if err := os.WriteFile(path, seed, 0o644); err != nil {
			t.Fatal(err)
		}
		e, err := engine.Load(path, engine.Expect{}, engine.Options{Threads: 1})
		if err != nil {
			t.Fatalf("seed %d (%d bytes): %v", i, len(seed), err)
		}
		t.Logf("seed %d: %s, %d bytes", i, e.Info().Architecture, len(seed))
		_ = e.Close()
	}
}
