package gguf

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// FuzzRead feeds the parser arbitrary bytes, seeded with valid files and
// their mutations. Whatever the input, Read returns an error or a File whose
// tensors all lie inside the input: it never panics, hangs or allocates
// without bound. `go test ./inferd/gguf -fuzz FuzzRead` explores further;
// `make test` runs the seed corpus (and testdata/fuzz/FuzzRead).
func FuzzRead(f *testing.F) {
	valid := tinyBytes(f)
	f.Add(valid)
	f.Add(valid[:len(valid)/2])
	f.Add(valid[:24])
	f.Add([]byte("GGUF"))
	f.Add([]byte{})
	for _, off := range []int{4, 8, 16, 24, 40} { // version, counts, first key length
		mutated := append([]byte(nil), valid...)
		binary.LittleEndian.PutUint32(mutated[off:], 0xffffffff)
		f.Add(mutated)
	}
	if files, _ := filepath.Glob(filepath.Join("..", "..", "..", "shared", "testdata", "tokenizers", "*.gguf")); len(files) > 0 {
		if data, err := os.ReadFile(files[0]); err == nil && len(data) < 1<<20 {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Read(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		size := uint64(len(data))
		for _, tensor := range file.Tensors {
			// Subtract from bounds rather than add header numbers, which
			// could wrap (as the reader's own check once did).
			if file.DataOffset > size || tensor.Offset > size-file.DataOffset || tensor.Size > size-file.DataOffset-tensor.Offset {
				t.Fatalf("tensor %q of %d bytes at %d+%d lies outside a %d-byte input", tensor.Name, tensor.Size, file.DataOffset, tensor.Offset, size)
			}
		}
		for _, kv := range file.Metadata {
			if _, boxed := kv.Value.([]any); boxed {
				t.Fatalf("metadata %s is a []any", kv.Key)
			}
		}
		_ = file.Quantization()
		_ = file.Architecture()
	})
}

func tinyBytes(tb testing.TB) []byte {
	var buf bytes.Buffer
	meta := []KV{
		{Key: "general.architecture", Type: TypeString, Value: "llama"},
		{Key: "general.file_type", Type: TypeUint32, Value: uint32(7)},
		{Key: "tokenizer.ggml.tokens", Type: TypeArray, Value: Array{Type: TypeString, Values: []any{"<s>", "</s>", "a"}}},
	}
	tensors := []Tensor{
		{Name: "token_embd.weight", Dims: []uint64{4, 3}, Type: F32, Data: make([]byte, 48)},
		{Name: "blk.0.attn_q.weight", Dims: []uint64{64, 2}, Type: Q8_0, Data: make([]byte, 4*34)},
	}
	if err := Write(&buf, meta, tensors); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}
