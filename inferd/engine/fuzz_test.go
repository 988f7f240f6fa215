package engine_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slmops/slmops/inferd/engine"
	"github.com/slmops/slmops/inferd/engine/bigram"
	"github.com/slmops/slmops/inferd/engine/kernels"
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
		e, err := engine.Load(path, engine.Expect{}, opts)
		if err != nil {
			if len(err.Error()) > engine.MaxErrorLength {
				t.Fatalf("a %d-byte error from Load: %.200s...", len(err.Error()), err)
			}
			return
		}
		exercise(t, e)
		_ = e.Close()
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

// loadSeeds are small valid models of every registered architecture,
// written with gguf.Write: a SentencePiece llama and a byte-level BPE qwen2
// of 8-wide F32 weights, a 32-wide Q8_0 llama, and bigram tables in F32 and
// Q8_0. They are a few KiB at most, so that the fuzzer's mutations and
// minimization stay fast; llamatest.WriteRandom and bigram.Write always add
// the 256 byte tokens or the printable ASCII characters, which makes their
// smallest files 20 KiB.
func loadSeeds(tb testing.TB) [][]byte {
	var seeds [][]byte
	write := func(meta []gguf.KV, tensors []gguf.Tensor) {
		var buf bytes.Buffer
		if err := gguf.Write(&buf, meta, tensors); err != nil {
			tb.Fatal(err)
		}
		seeds = append(seeds, buf.Bytes())
	}
	str := func(k, v string) gguf.KV { return gguf.KV{Key: k, Type: gguf.TypeString, Value: v} }
	u32 := func(k string, v uint32) gguf.KV { return gguf.KV{Key: k, Type: gguf.TypeUint32, Value: v} }
	arr := func(k string, v any) gguf.KV { return gguf.KV{Key: k, Type: gguf.TypeArray, Value: v} }
	tensor := func(typ gguf.TensorType, name string, dims ...uint64) gguf.Tensor {
		n := uint64(1)
		for _, d := range dims {
			n *= d
		}
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(i%7)/7 - 0.4
		}
		data, err := kernels.Quantize(nil, typ, x)
		if err != nil {
			tb.Fatal(err)
		}
		return gguf.Tensor{Name: name, Dims: dims, Type: typ, Data: data}
	}
	f32 := func(name string, dims ...uint64) gguf.Tensor { return tensor(gguf.F32, name, dims...) }

	for _, m := range []struct {
		arch         string
		typ          gguf.TensorType
		embd, ff, kv uint64 // 2 heads, 1 KV head
	}{
		{llama.ArchLlama, gguf.F32, 8, 8, 4},
		{llama.ArchQwen2, gguf.F32, 8, 8, 4},
		{llama.ArchLlama, gguf.Q8_0, 32, 32, 16}, // rows of whole Q8_0 blocks
	} {
		arch, embd, ff, kv := m.arch, m.embd, m.ff, m.kv
		w := func(name string, dims ...uint64) gguf.Tensor { return tensor(m.typ, name, dims...) }
		meta := []gguf.KV{
			str("general.architecture", arch),
			u32(arch+".context_length", 16), u32(arch+".embedding_length", uint32(embd)), u32(arch+".block_count", 1),
			u32(arch+".feed_forward_length", uint32(ff)), u32(arch+".attention.head_count", 2), u32(arch+".attention.head_count_kv", 1),
			{Key: arch + ".attention.layer_norm_rms_epsilon", Type: gguf.TypeFloat32, Value: float32(1e-5)},
		}
		var vocab int
		if arch == llama.ArchLlama {
			tokens := []string{"<unk>", "<s>", "</s>", "\u2581", "s", "l", "m", "o", "p", "h", "i", "\u2581s", "sl"}
			scores, types := make([]float32, len(tokens)), make([]int32, len(tokens))
			for i := range tokens {
				scores[i], types[i] = -float32(i), 1
			}
			types[0], types[1], types[2] = 2, 3, 3
			vocab = len(tokens)
			meta = append(meta, str("tokenizer.ggml.model", "llama"), arr("tokenizer.ggml.tokens", tokens),
				arr("tokenizer.ggml.scores", scores), arr("tokenizer.ggml.token_type", types),
				u32("tokenizer.ggml.bos_token_id", 1), u32("tokenizer.ggml.eos_token_id", 2), u32("tokenizer.ggml.unknown_token_id", 0))
		} else {
			tokens := []string{"s", "l", "m", "o", "p", "h", "i", "\u0120", "sl", "\u0120s", "<|im_start|>", "<|im_end|>", "<|endoftext|>"}
			types := make([]int32, len(tokens))
			for i := range types {
				types[i] = 1
			}
			types[10], types[11], types[12] = 3, 3, 3
			vocab = len(tokens)
			meta = append(meta, str("tokenizer.ggml.model", "gpt2"), str("tokenizer.ggml.pre", "qwen2"),
				arr("tokenizer.ggml.tokens", tokens), arr("tokenizer.ggml.token_type", types),
				arr("tokenizer.ggml.merges", []string{"s l", "\u0120 s"}), u32("tokenizer.ggml.eos_token_id", 12),
				str("tokenizer.chat_template", "<|im_start|>"))
		}
		tensors := []gguf.Tensor{
			w("token_embd.weight", embd, uint64(vocab)), f32("output_norm.weight", embd),
			f32("blk.0.attn_norm.weight", embd), w("blk.0.attn_q.weight", embd, embd),
			w("blk.0.attn_k.weight", embd, kv), w("blk.0.attn_v.weight", embd, kv),
			w("blk.0.attn_output.weight", embd, embd), f32("blk.0.ffn_norm.weight", embd),
			w("blk.0.ffn_gate.weight", embd, ff), w("blk.0.ffn_up.weight", embd, ff), w("blk.0.ffn_down.weight", ff, embd),
		}
		if arch == llama.ArchQwen2 {
			tensors = append(tensors, f32("blk.0.attn_q.bias", embd), f32("blk.0.attn_k.bias", kv), f32("blk.0.attn_v.bias", kv))
		}
		write(meta, tensors)
	}

	// A bigram table in Q8_0 needs rows of 32 values: 32 tokens.
	tokens := []string{"<unk>", "<s>", "</s>", " "}
	for c := 'a'; len(tokens) < 32; c++ {
		tokens = append(tokens, string(c))
	}
	table := make([]byte, 32*34)
	for i := range table {
		table[i] = byte(i * 7)
	}
	for row := range 32 { // a small positive f16 scale per block
		binary.LittleEndian.PutUint16(table[row*34:], 0x2000)
	}
	write([]gguf.KV{str("general.architecture", bigram.Architecture), u32("general.file_type", 7),
		arr("tokenizer.ggml.tokens", tokens), u32(bigram.Architecture+".context_length", 16)},
		[]gguf.Tensor{{Name: bigram.TensorName, Dims: []uint64{32, 32}, Type: gguf.Q8_0, Data: table}})
	seeds = append(seeds, gguftest.Valid())
	return seeds
}

// TestLoadSeedsLoad: the fuzz seeds are models that load, tokenize and run,
// so that mutations start from files that reach every step of FuzzLoad.
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
		tokens, err := e.Tokenize("slmops ships")
		if err != nil {
			t.Fatalf("seed %d: Tokenize: %v", i, err)
		}
		seq, err := e.NewSequence()
		if err != nil {
			t.Fatalf("seed %d: NewSequence: %v", i, err)
		}
		if _, err := seq.Forward(context.Background(), tokens[:min(len(tokens), 4)]); err != nil {
			t.Errorf("seed %d: Forward(%v): %v", i, tokens, err)
		}
		seq.Close()
		t.Logf("seed %d: %s, %d bytes, %d tokens for %q", i, e.Info().Architecture, len(seed), len(tokens), "slmops ships")
		_ = e.Close()
	}
}

// TestLoadErrorsAreShort: an error that quotes the file (here an unknown
// general.architecture of 1 MiB) is cut to MaxErrorLength, and still says
// what class of error it is.
func TestLoadErrorsAreShort(t *testing.T) {
	var buf bytes.Buffer
	arch := strings.Repeat("x", 1<<20)
	meta := []gguf.KV{{Key: "general.architecture", Type: gguf.TypeString, Value: arch}}
	if err := gguf.Write(&buf, meta, nil); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "model.gguf")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := engine.Load(path, engine.Expect{}, engine.Options{})
	if !errors.Is(err, engine.ErrUnsupported) {
		t.Fatalf("err = %.200v; want ErrUnsupported", err)
	}
	if n := len(err.Error()); n > engine.MaxErrorLength {
		t.Errorf("a %d-byte error; want at most %d", n, engine.MaxErrorLength)
	}
}
