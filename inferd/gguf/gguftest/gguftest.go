// Package gguftest makes GGUF files for tests of everything that reads
// them: a small valid model, and a corpus of crafted files that a reader
// must refuse, each built from the valid one by the change it is named for.
// Files are written byte by byte here rather than with gguf.Write, so that a
// case can say what no writer would: a size that wraps, a count larger than
// the file, a tensor outside the data.
package gguftest

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"

	"github.com/slmops/slmops/inferd/gguf"
)

// Architecture and TensorName are those of the bigram test architecture,
// which the valid file is a model of (see inferd/engine/bigram).
const (
	Architecture = "slmops-bigram"
	TensorName   = "transitions.weight"
)

// Case is a crafted file and what it attacks.
type Case struct {
	// Name is short and safe as a file name.
	Name string
	// Why says what the file does that a reader must refuse.
	Why  string
	Data []byte
}

// entry is a metadata entry with its value encoded.
type entry struct {
	key   string
	typ   gguf.ValueType
	value []byte
}

// info is a tensor info as written: nDims need not match len(dims).
type info struct {
	name   string
	nDims  uint32
	dims   []uint64
	typ    gguf.TensorType
	offset uint64
}

// file is a GGUF file to encode; every count is written as given.
type file struct {
	magic, version uint32
	nTensors, nKV  uint64
	kvs            []entry
	infos          []info
	// align pads the tensor infos to where the data section starts.
	align uint64
	data  []byte
}

// sections are where the parts of an encoded file start.
type sections struct {
	kv, infos, pad, data int
}

func (f file) encode() ([]byte, sections) {
	var b []byte
	var s sections
	b = binary.LittleEndian.AppendUint32(b, f.magic)
	b = binary.LittleEndian.AppendUint32(b, f.version)
	b = binary.LittleEndian.AppendUint64(b, f.nTensors)
	b = binary.LittleEndian.AppendUint64(b, f.nKV)
	s.kv = len(b)
	for _, e := range f.kvs {
		b = append(b, str(e.key)...)
		b = binary.LittleEndian.AppendUint32(b, uint32(e.typ))
		b = append(b, e.value...)
	}
	s.infos = len(b)
	for _, t := range f.infos {
		b = append(b, str(t.name)...)
		b = binary.LittleEndian.AppendUint32(b, t.nDims)
		for _, d := range t.dims {
			b = binary.LittleEndian.AppendUint64(b, d)
		}
		b = binary.LittleEndian.AppendUint32(b, uint32(t.typ))
		b = binary.LittleEndian.AppendUint64(b, t.offset)
	}
	s.pad = len(b)
	if f.align > 0 {
		for uint64(len(b))%f.align != 0 {
			b = append(b, 0)
		}
	}
	s.data = len(b)
	return append(b, f.data...), s
}

func str(s string) []byte {
	return append(binary.LittleEndian.AppendUint64(nil, uint64(len(s))), s...)
}

func u32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
func u64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

// array encodes an array value's type, length and elements.
func array(et gguf.ValueType, n uint64, elems ...[]byte) []byte {
	b := append(u32(uint32(et)), u64(n)...)
	for _, e := range elems {
		b = append(b, e...)
	}
	return b
}

// tokens is the valid file's vocabulary.
var tokens = []string{"<unk>", "<s>", "</s>", "a"}

// valid is a bigram model of 4 tokens: a 4 x 4 F32 table of next-token
// logits, then an unused 64-byte I8 tensor, so that two tensors can be
// made to overlap. The tensor infos end off the alignment, so the file has
// padding to cut, and the last tensor ends the file, so every strict prefix
// of it is truncated somewhere that matters.
func valid() file {
	var vocab [][]byte
	for _, t := range tokens {
		vocab = append(vocab, str(t))
	}
	table := make([]byte, 0, 64)
	for i := range 16 {
		table = binary.LittleEndian.AppendUint32(table, math.Float32bits(-float32(i%4)))
	}
	pad := make([]byte, 64)
	for i := range pad {
		pad[i] = byte(i)
	}
	return file{
		magic: gguf.Magic, version: 3, nTensors: 2, nKV: 3,
		kvs: []entry{
			{"general.architecture", gguf.TypeString, str(Architecture)},
			{"general.alignment", gguf.TypeUint32, u32(32)},
			{"tokenizer.ggml.tokens", gguf.TypeArray, array(gguf.TypeString, uint64(len(tokens)), vocab...)},
		},
		infos: []info{
			{name: TensorName, nDims: 2, dims: []uint64{4, 4}, typ: gguf.F32, offset: 0},
			{name: "padding", nDims: 1, dims: []uint64{64}, typ: gguf.I8, offset: 64},
		},
		align: 32,
		data:  append(table, pad...),
	}
}

// Valid is the file the crafted ones are made from; it loads as a bigram
// model.
func Valid() []byte {
	b, _ := valid().encode()
	return b
}

// Crafted is the corpus: each file is Valid with one change, or a file
// built for one attack, and each must be refused as invalid GGUF before any
// tensor is touched.
func Crafted() []Case {
	var cases []Case
	add := func(name, why string, f file) {
		b, _ := f.encode()
		cases = append(cases, Case{Name: name, Why: why, Data: b})
	}
	with := func(change func(*file)) file {
		f := valid()
		change(&f)
		return f
	}

	// alone is the valid file without its second tensor, so that no
	// other check (overlap) can refuse a case first.
	alone := func(change func(*file)) file {
		return with(func(f *file) {
			f.nTensors, f.infos, f.data = 1, f.infos[:1], f.data[:64]
			change(f)
		})
	}

	// Sizes that wrap.
	add("wrapping-size-f32", "an F32 tensor of 2^62-8 elements: its 2^64-32 bytes wrap a check that adds offset, size and data offset",
		alone(func(f *file) { f.infos[0].dims = []uint64{1<<61 - 4, 2} }))
	add("wrapping-size-f32-beside-another", "the same tensor in a file with a second one",
		with(func(f *file) { f.infos[0].dims = []uint64{1<<61 - 4, 2} }))
	add("wrapping-size-one-dim", "an F32 tensor of 2^62-8 elements in one dimension",
		alone(func(f *file) { f.infos[0].nDims, f.infos[0].dims = 1, []uint64{1<<62 - 8} }))
	add("wrapping-size-q8_0", "a Q8_0 tensor of 2^63 elements, whose block count times 34 bytes overflows",
		alone(func(f *file) { f.infos[0].typ, f.infos[0].dims = gguf.Q8_0, []uint64{1 << 58, 32} }))
	add("wrapping-size-q4_k", "a Q4_K tensor whose size is just under 2^64 bytes",
		alone(func(f *file) { f.infos[0].typ, f.infos[0].dims = gguf.Q4_K, []uint64{256, (math.MaxUint64 / 144) - 1} }))
	add("wrapping-element-count", "dimensions whose product overflows 64 bits",
		alone(func(f *file) { f.infos[0].nDims, f.infos[0].dims = 3, []uint64{1 << 32, 1 << 32, 2} }))
	add("wrapping-offset", "a tensor at an offset 32 bytes short of 2^64",
		alone(func(f *file) { f.infos[0].offset = math.MaxUint64 - 31 }))
	add("wrapping-offset-and-size", "an offset and a size of 2^63 bytes each, which add up to 0 modulo 2^64",
		alone(func(f *file) { f.infos[0].offset, f.infos[0].dims = 1<<63, []uint64{1 << 60, 2} }))

	// Tensors outside the data or on top of each other.
	add("tensor-past-the-end", "a tensor that starts past the end of the file",
		with(func(f *file) { f.infos[1].offset = 1 << 40 }))
	add("tensor-across-the-end", "a tensor that starts inside the data and ends past the file",
		with(func(f *file) { f.infos[1].dims = []uint64{96} }))
	add("overlapping-tensors", "two tensors at the same offset",
		with(func(f *file) { f.infos[1].offset = 0 }))
	add("overlapping-tail", "a tensor that starts inside the one before it",
		with(func(f *file) { f.infos[1].offset = 32 }))
	add("overlapping-out-of-order", "a tensor inside another, listed first",
		with(func(f *file) {
			f.infos[0], f.infos[1] = f.infos[1], f.infos[0]
			f.infos[0].offset, f.infos[0].dims = 0, []uint64{32}
		}))
	add("duplicate-tensor-name", "two tensors with one name",
		with(func(f *file) { f.infos[1].name = TensorName }))
	add("long-duplicate-tensor-names", "two tensors with one 4 KiB name, which an error must not quote whole",
		with(func(f *file) { f.infos[0].name, f.infos[1].name = strings.Repeat("x", 4096), strings.Repeat("x", 4096) }))

	// Counts larger than the file could hold.
	for _, n := range []uint64{1 << 20, 1 << 40, math.MaxUint64} {
		add("huge-tensor-count-"+hex(n), "a tensor count no file of this size could hold",
			with(func(f *file) { f.nTensors = n }))
		add("huge-kv-count-"+hex(n), "a metadata count no file of this size could hold",
			with(func(f *file) { f.nKV = n }))
	}
	add("huge-kv-count-65536", "65536 metadata entries (the most allowed) in a file too small for them",
		with(func(f *file) { f.nKV = 1 << 16 }))
	for _, n := range []uint64{1 << 26, 1 << 40, math.MaxUint64} {
		add("huge-array-length-"+hex(n), "a token array longer than the file",
			with(func(f *file) { f.kvs[2].value = array(gguf.TypeString, n, str("<unk>")) }))
		add("huge-u8-array-"+hex(n), "a uint8 array longer than the file",
			with(func(f *file) { f.kvs[2].value = array(gguf.TypeUint8, n, []byte{1, 2, 3}) }))
	}
	for _, n := range []uint64{1 << 24, 1 << 40, math.MaxUint64} {
		header := append(append(u32(gguf.Magic), u32(3)...), append(u64(0), u64(1)...)...)
		cases = append(cases, Case{Name: "huge-key-length-" + hex(n), Why: "a key longer than the file", Data: append(header, u64(n)...)})
		add("huge-string-value-"+hex(n), "a string value longer than the file",
			with(func(f *file) { f.kvs[0].value = u64(n) }))
		unnamed, s := with(func(f *file) { f.infos[0].name = "" }).encode()
		binary.LittleEndian.PutUint64(unnamed[s.infos:], n)
		cases = append(cases, Case{Name: "huge-tensor-name-" + hex(n), Why: "a tensor name longer than the file", Data: unnamed})
	}

	// Truncation in every section.
	b, s := valid().encode()
	for _, cut := range []struct {
		name string
		at   int
	}{
		{"magic", 2}, {"version", 6}, {"tensor-count", 12}, {"kv-count", 20},
		{"kv-key-length", s.kv + 3}, {"kv-key", s.kv + 8 + 4}, {"kv-type", s.kv + 8 + len("general.architecture") + 2},
		{"kv-string-value", s.kv + 8 + len("general.architecture") + 4 + 10},
		{"kv-array-header", s.infos - len(valid().kvs[2].value) + 6},
		{"kv-array-elements", s.infos - 3},
		{"tensor-name", s.infos + 10}, {"tensor-dims", s.infos + 8 + len(TensorName) + 4 + 12},
		{"tensor-offset", s.pad - 3}, {"alignment-padding", s.pad + (s.data-s.pad)/2}, {"before-data", s.data},
		{"data", s.data + 70}, {"last-byte", len(b) - 1},
	} {
		cases = append(cases, Case{Name: "truncated-" + cut.name, Why: "the file cut in its " + cut.name, Data: b[:cut.at:cut.at]})
	}

	// Alignment.
	for name, a := range map[string][]byte{"3": u32(3), "0": u32(0), "48": u32(48)} {
		add("bad-alignment-"+name, "general.alignment "+name+", not a power of two",
			with(func(f *file) { f.kvs[1].value = a }))
	}
	add("alignment-of-another-type", "general.alignment as a uint64",
		with(func(f *file) { f.kvs[1].typ, f.kvs[1].value = gguf.TypeUint64, u64(32) }))
	add("alignment-past-the-end", "general.alignment 2^31: the data section would start past the file",
		with(func(f *file) { f.kvs[1].value = u32(1 << 31) }))
	add("misaligned-tensor", "a tensor at an offset off the alignment",
		with(func(f *file) { f.infos[1].offset = 65 }))

	// Shapes.
	add("no-dimensions", "a tensor with 0 dimensions",
		with(func(f *file) { f.infos[1].nDims, f.infos[1].dims = 0, nil }))
	add("zero-dimension", "a tensor with a dimension of 0",
		with(func(f *file) { f.infos[0].dims = []uint64{4, 0} }))
	add("too-many-dimensions", "a tensor with 5 dimensions",
		with(func(f *file) { f.infos[1].nDims, f.infos[1].dims = 5, []uint64{2, 2, 2, 2, 4} }))
	add("huge-dimension-count", "a tensor with 2^32-1 dimensions",
		with(func(f *file) { f.infos[1].nDims, f.infos[1].dims = math.MaxUint32, []uint64{64} }))
	add("partial-block-row", "a Q8_0 tensor whose rows are half a block",
		with(func(f *file) { f.infos[1].typ, f.infos[1].dims = gguf.Q8_0, []uint64{16, 4} }))
	add("unknown-tensor-type", "a tensor type this reader does not know",
		with(func(f *file) { f.infos[1].typ = 99 }))

	// Values.
	add("unknown-value-type", "a metadata value of type 13",
		with(func(f *file) { f.kvs[1].typ = 13 }))
	add("nested-array", "an array of arrays",
		with(func(f *file) { f.kvs[2].value = array(gguf.TypeArray, 1, array(gguf.TypeUint8, 1, []byte{1})) }))
	add("bool-value-2", "a bool that is neither 0 nor 1",
		with(func(f *file) { f.kvs = append(f.kvs, entry{"general.quantized", gguf.TypeBool, []byte{2}}); f.nKV++ }))
	add("duplicate-key", "two metadata entries with one key",
		with(func(f *file) {
			f.kvs[1].key = "general.architecture"
			f.kvs[1].typ, f.kvs[1].value = gguf.TypeString, str("llama")
		}))
	add("empty-key", "a metadata entry with an empty key",
		with(func(f *file) { f.kvs[1].key = "" }))

	// Header.
	add("not-gguf", "another magic", with(func(f *file) { f.magic = 0x4c4d4747 }))
	add("version-1", "GGUF version 1", with(func(f *file) { f.version = 1 }))
	add("version-4", "a GGUF version from the future", with(func(f *file) { f.version = 4 }))
	cases = append(cases, Case{Name: "empty", Why: "no bytes", Data: []byte{}})
	return cases
}

func hex(n uint64) string { return fmt.Sprintf("%#x", n) }
