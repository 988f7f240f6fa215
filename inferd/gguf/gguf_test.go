package gguf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/slmops/slmops/test/skip"
)

// tiny writes a small valid model: metadata of every scalar kind, an array,
// and an F32, an F16 and a Q8_0 tensor.
func tiny(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	meta := []KV{
		{Key: "general.architecture", Type: TypeString, Value: "llama"},
		{Key: "llama.context_length", Type: TypeUint32, Value: uint32(2048)},
		{Key: "llama.rope.freq_base", Type: TypeFloat32, Value: float32(10000)},
		{Key: "general.quantized", Type: TypeBool, Value: true},
		{Key: "tokenizer.ggml.tokens", Type: TypeArray, Value: Array{Type: TypeString, Values: []any{"<s>", "</s>", "a"}}},
	}
	tensors := []Tensor{
		{Name: "token_embd.weight", Dims: []uint64{4, 3}, Type: F32, Data: make([]byte, 48)},
		{Name: "output_norm.weight", Dims: []uint64{4}, Type: F16, Data: make([]byte, 8)},
		{Name: "blk.0.attn_q.weight", Dims: []uint64{64, 2}, Type: Q8_0, Data: bytes.Repeat([]byte{1}, 4*34)},
	}
	if err := Write(&buf, meta, tensors); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	data := tiny(t)
	f, err := Read(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if f.Version != 3 || f.Architecture() != "llama" || len(f.Tensors) != 3 {
		t.Fatalf("got version %d arch %q %d tensors", f.Version, f.Architecture(), len(f.Tensors))
	}
	if v, _ := f.Get("llama.context_length"); v != uint32(2048) {
		t.Errorf("context length = %v", v)
	}
	if v, _ := f.Get("tokenizer.ggml.tokens"); !slices.Equal(v.([]string), []string{"<s>", "</s>", "a"}) {
		t.Errorf("tokens = %v", v)
	}
	q := f.Tensors[2]
	if q.Type != Q8_0 || q.Size != 4*34 || q.Offset%DefaultAlignment != 0 || f.DataOffset%DefaultAlignment != 0 {
		t.Errorf("Q8_0 tensor %+v, data at %d", q, f.DataOffset)
	}
	// The tensor's bytes are where the header says.
	if got := data[f.DataOffset+q.Offset : f.DataOffset+q.Offset+q.Size]; !bytes.Equal(got, bytes.Repeat([]byte{1}, 4*34)) {
		t.Error("Q8_0 tensor data is not at its offset")
	}
}

// TestCorruptFilesAreRefused: each case damages a valid file the way a bad
// download, a bad tool or a hostile file would, and must give ErrInvalid.
func TestCorruptFilesAreRefused(t *testing.T) {
	good := tiny(t)
	f, _ := Read(bytes.NewReader(good), int64(len(good)))
	// Where the first tensor info starts: after the fixed header and metadata.
	patch := func(at int, b []byte) []byte {
		d := bytes.Clone(good)
		copy(d[at:], b)
		return d
	}
	u64 := func(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }
	u32 := func(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
	// The Q8_0 tensor's offset field is the last 8 bytes of the tensor infos.
	infoEnd := bytes.Index(good, []byte("blk.0.attn_q.weight")) + len("blk.0.attn_q.weight") + 4 + 16 + 4
	tests := map[string]struct {
		data []byte
		want string
	}{
		"not GGUF":               {patch(0, []byte("GGML")), "magic"},
		"an unknown version":     {patch(4, u32(9)), "version 9"},
		"a huge tensor count":    {patch(8, u64(1<<40)), "tensors"},
		"a huge string length":   {patch(24, u64(1<<40)), "a string of"},
		"truncated header":       {good[:20], "truncated"},
		"truncated tensor data":  {good[:len(good)-100], "ends past the end of the file"},
		"a misaligned tensor":    {patch(infoEnd, u64(f.Tensors[2].Offset+1)), "not aligned"},
		"overlapping tensors":    {patch(infoEnd, u64(0)), "overlaps"},
		"a tensor past the end":  {patch(infoEnd, u64(1<<40)), "ends past the end of the file"},
		"an unknown tensor type": {patch(infoEnd-4, u32(99)), "unsupported tensor type"},
		"a partial Q8_0 block":   {patch(infoEnd-4-16, u64(63)), "whole number"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(tc.data), int64(len(tc.data)))
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want ErrInvalid saying %q", err, tc.want)
			}
		})
	}
}

// TestReadsLlamaCppFiles: real GGUF files written by llama.cpp's tools.
func TestReadsLlamaCppFiles(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "shared", "testdata", "tokenizers")
	if _, err := os.Stat(dir); err != nil {
		skip.Because(t, "reading real GGUF files written by llama.cpp: "+dir+" is absent (it lives beside the project, not in it)",
			"put the shared folder beside the project (../shared/testdata/tokenizers)")
	}
	for file, want := range map[string]struct {
		model  string
		tokens int
	}{
		"ggml-vocab-llama-spm.gguf": {"llama", 32000},
		"ggml-vocab-gpt-2.gguf":     {"gpt2", 50257},
	} {
		t.Run(file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(dir, file))
			if err != nil {
				t.Fatal(err)
			}
			f, err := Read(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			if got := f.String("tokenizer.ggml.model"); got != want.model {
				t.Errorf("tokenizer.ggml.model = %q, want %q", got, want.model)
			}
			tokens, _ := f.Get("tokenizer.ggml.tokens")
			if n := len(tokens.([]string)); n != want.tokens {
				t.Errorf("%d tokens, want %d", n, want.tokens)
			}
		})
	}
}

func TestOpenMapsTensorsAndNamesTheQuantization(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.gguf")
	if err := os.WriteFile(path, tiny(t), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	info, data, ok := m.Tensor("blk.0.attn_q.weight")
	if !ok || info.Type != Q8_0 || !bytes.Equal(data, bytes.Repeat([]byte{1}, 4*34)) {
		t.Fatalf("mapped tensor %+v ok=%v", info, ok)
	}
	if _, _, ok := m.Tensor("nope"); ok {
		t.Error("a missing tensor was found")
	}
	// No general.file_type: the weight tensors' type decides.
	if q := m.Quantization(); q != "Q8_0" {
		t.Errorf("Quantization() = %q; want Q8_0", q)
	}
	if q := mustRead(t, tinyBytes(t)).Quantization(); q != "Q8_0" {
		t.Errorf("with general.file_type 7: %q; want Q8_0", q)
	}

	empty := filepath.Join(t.TempDir(), "empty.gguf")
	_ = os.WriteFile(empty, nil, 0o644)
	if _, err := Open(empty); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty file: %v; want ErrInvalid", err)
	}
	data0 := tiny(t)
	trunc := filepath.Join(t.TempDir(), "trunc.gguf")
	_ = os.WriteFile(trunc, data0[:len(data0)-40], 0o644)
	if _, err := Open(trunc); !errors.Is(err, ErrInvalid) {
		t.Errorf("truncated file: %v; want ErrInvalid", err)
	}
}

func mustRead(t *testing.T, data []byte) *File {
	t.Helper()
	f, err := Read(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestTensorRefusesARangeOutsideTheMapping: Tensor slices the mapping with
// checked arithmetic, even when the File was changed after Open or the
// mapping is closed.
func TestTensorRefusesARangeOutsideTheMapping(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.gguf")
	if err := os.WriteFile(path, tiny(t), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	m.Tensors[0].Size = 1<<64 - 32 // wraps start+Size
	if _, _, ok := m.Tensor(m.Tensors[0].Name); ok {
		t.Error("a tensor whose end wraps was sliced")
	}
	name := m.Tensors[1].Name
	m.Close()
	if _, _, ok := m.Tensor(name); ok {
		t.Error("a tensor was sliced from a closed mapping")
	}
}

// TestTensorSizesAreGGMLs: a tensor of each type the engine computes with
// takes ggml's bytes (ggml-common.h: values and bytes per block), and one
// that is not a whole number of blocks is refused. The kernels and the
// layout checks rely on these sizes, so a wrong one would read past a row.
func TestTensorSizesAreGGMLs(t *testing.T) {
	for typ, block := range map[TensorType]struct{ values, bytes uint64 }{
		F32: {1, 4}, F16: {1, 2}, BF16: {1, 2},
		Q4_0: {32, 18}, Q4_1: {32, 20}, Q5_0: {32, 22}, Q5_1: {32, 24}, Q8_0: {32, 34},
		Q2_K: {256, 84}, Q3_K: {256, 110}, Q4_K: {256, 144}, Q5_K: {256, 176}, Q6_K: {256, 210},
	} {
		if got, err := typ.Bytes(18 * block.values); err != nil || got != 18*block.bytes {
			t.Errorf("%s: %d values take %d bytes (%v); want %d", typ, 18*block.values, got, err, 18*block.bytes)
		}
		if block.values > 1 {
			if _, err := typ.Bytes(18*block.values + block.values/2); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: half a block more: %v; want ErrInvalid", typ, err)
			}
		}
	}
}
