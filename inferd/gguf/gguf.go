// Package gguf reads and writes GGUF files (versions 2 and 3), the model format
// of llama.cpp. Read validates everything a loader relies on before any
// tensor is touched: the magic and version, bounded counts and string
// lengths, known value and tensor types, tensor shapes whose byte sizes fit,
// aligned offsets, and tensors that lie inside the file without overlapping.
// A file that fails any check is an error, never a partially loaded model.
//
// What it owns: the file format and its validation. What it may not touch:
// the forward pass (inferd/engine reads the tensors it returns) or the
// network (it reads files and readers it is given).
package gguf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
)

// Magic is "GGUF" read as a little-endian uint32.
const Magic = 0x46554747

// DefaultAlignment is the data alignment when general.alignment is absent.
const DefaultAlignment = 32

// ErrInvalid wraps every validation failure.
var ErrInvalid = errors.New("invalid GGUF")

// Limits on counts and lengths, on top of the bound that the bytes left in
// the file set on each of them.
const (
	maxStringLen = 1 << 24
	maxArrayLen  = 1 << 26
	maxKV        = 1 << 16
	maxTensors   = 1 << 20
	maxDims      = 4
)

// ValueType is the type of a metadata value.
type ValueType uint32

// The metadata value types.
const (
	TypeUint8 ValueType = iota
	TypeInt8
	TypeUint16
	TypeInt16
	TypeUint32
	TypeInt32
	TypeFloat32
	TypeBool
	TypeString
	TypeArray
	TypeUint64
	TypeInt64
	TypeFloat64
)

// TensorType is a ggml tensor type.
type TensorType uint32

// The tensor types this package knows the size of.
const (
	F32  TensorType = 0
	F16  TensorType = 1
	Q4_0 TensorType = 2
	Q4_1 TensorType = 3
	Q5_0 TensorType = 6
	Q5_1 TensorType = 7
	Q8_0 TensorType = 8
	Q8_1 TensorType = 9
	Q2_K TensorType = 10
	Q3_K TensorType = 11
	Q4_K TensorType = 12
	Q5_K TensorType = 13
	Q6_K TensorType = 14
	Q8_K TensorType = 15
	I8   TensorType = 24
	I16  TensorType = 25
	I32  TensorType = 26
	F64  TensorType = 28
	BF16 TensorType = 30
)

// blockLayout is (elements per block, bytes per block).
var blockLayout = map[TensorType][2]uint64{
	F32: {1, 4}, F16: {1, 2}, BF16: {1, 2}, F64: {1, 8}, I8: {1, 1}, I16: {1, 2}, I32: {1, 4},
	Q4_0: {32, 18}, Q4_1: {32, 20}, Q5_0: {32, 22}, Q5_1: {32, 24}, Q8_0: {32, 34}, Q8_1: {32, 36},
	Q2_K: {256, 84}, Q3_K: {256, 110}, Q4_K: {256, 144}, Q5_K: {256, 176}, Q6_K: {256, 210}, Q8_K: {256, 292},
}

var typeNames = map[TensorType]string{
	F32: "F32", F16: "F16", BF16: "BF16", F64: "F64", I8: "I8", I16: "I16", I32: "I32",
	Q4_0: "Q4_0", Q4_1: "Q4_1", Q5_0: "Q5_0", Q5_1: "Q5_1", Q8_0: "Q8_0", Q8_1: "Q8_1",
	Q2_K: "Q2_K", Q3_K: "Q3_K", Q4_K: "Q4_K", Q5_K: "Q5_K", Q6_K: "Q6_K", Q8_K: "Q8_K",
}

func (t TensorType) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// Bytes is the size of a tensor of type t with n elements, or an error when n
// is not a whole number of blocks.
func (t TensorType) Bytes(n uint64) (uint64, error) {
	l, ok := blockLayout[t]
	if !ok {
		return 0, fmt.Errorf("%w: unsupported tensor type %s", ErrInvalid, t)
	}
	if n%l[0] != 0 {
		return 0, fmt.Errorf("%w: %d elements of %s is not a whole number of %d-element blocks", ErrInvalid, n, t, l[0])
	}
	blocks := n / l[0]
	if blocks > math.MaxUint64/l[1] {
		return 0, fmt.Errorf("%w: tensor size overflows", ErrInvalid)
	}
	return blocks * l[1], nil
}

// KV is one metadata entry. Value is uint8..float64, bool or string for a
// scalar, and for an array a slice of its element type: []uint8, []int8,
// []uint16, []int16, []uint32, []int32, []float32, []bool, []string,
// []uint64, []int64 or []float64. Arrays are never []any: a vocabulary's
// scores and token types cost their size in the file, not an interface
// value per element.
type KV struct {
	Key   string
	Type  ValueType
	Value any
}

// TensorInfo describes one tensor; Offset is relative to the data section.
type TensorInfo struct {
	Name   string
	Dims   []uint64
	Type   TensorType
	Offset uint64
	// Size is the tensor's size in bytes.
	Size uint64
}

// Elements is the number of elements of the tensor.
func (t TensorInfo) Elements() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// File is a parsed GGUF header.
type File struct {
	Version   uint32
	Metadata  []KV
	Tensors   []TensorInfo
	Alignment uint64
	// DataOffset is where the tensor data starts in the file.
	DataOffset uint64
}

// Get returns the metadata value of key.
func (f *File) Get(key string) (any, bool) {
	for _, kv := range f.Metadata {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return nil, false
}

// String returns the string metadata value of key, or "".
func (f *File) String(key string) string {
	v, _ := f.Get(key)
	s, _ := v.(string)
	return s
}

// Architecture is general.architecture.
func (f *File) Architecture() string { return f.String("general.architecture") }

// reader reads little-endian values from a file of size bytes, counting the
// bytes consumed. It never reads past size, and it sizes every allocation by
// what the rest of the file could hold, so a count or length in a hostile
// header costs at most the bytes that follow it.
type reader struct {
	r    io.Reader
	off  uint64
	size uint64
	// part, index and key name what is being read, for errors; see where.
	part  string
	index uint64
	key   string
	err   error
	// buf is reused for strings and numbers, so that reading them costs
	// only what they are kept in.
	buf []byte
}

// scratch is a buffer of n bytes, valid until the next call.
func (r *reader) scratch(n uint64) []byte {
	if uint64(cap(r.buf)) < n {
		r.buf = make([]byte, n)
	}
	return r.buf[:n]
}

// at says what is read next: part ("metadata entry", "tensor info") number
// index; key is added to errors once known.
func (r *reader) at(part string, index uint64) { r.part, r.index, r.key = part, index, "" }

// where names the part of the file being read, formatted only for an error.
func (r *reader) where() string {
	switch {
	case r.part == "":
		return "the header"
	case r.key != "":
		return fmt.Sprintf("%s %d (%s)", r.part, r.index, short(r.key))
	}
	return fmt.Sprintf("%s %d", r.part, r.index)
}

// left is how many bytes of the file follow the current offset.
func (r *reader) left() uint64 {
	if r.off >= r.size {
		return 0
	}
	return r.size - r.off
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
	}
}

func (r *reader) read(p []byte) {
	if r.err != nil {
		return
	}
	if uint64(len(p)) > r.left() {
		r.fail("truncated at byte %d, in %s", r.size, r.where())
		return
	}
	n, err := io.ReadFull(r.r, p)
	r.off += uint64(n)
	if err != nil {
		r.fail("truncated at byte %d, in %s", r.off, r.where())
	}
}

// The fixed-size reads go through the scratch buffer: a local array would
// escape to the heap through io.Reader, one allocation per number.
func (r *reader) u8() uint8   { b := r.scratch(1); r.read(b); return b[0] }
func (r *reader) u16() uint16 { b := r.scratch(2); r.read(b); return binary.LittleEndian.Uint16(b) }
func (r *reader) u32() uint32 { b := r.scratch(4); r.read(b); return binary.LittleEndian.Uint32(b) }
func (r *reader) u64() uint64 { b := r.scratch(8); r.read(b); return binary.LittleEndian.Uint64(b) }

func (r *reader) str() string {
	n := r.u64()
	if r.err != nil {
		return ""
	}
	if n > maxStringLen || n > r.left() {
		r.fail("a string of %d bytes at byte %d (%d bytes are left), in %s", n, r.off, r.left(), r.where())
		return ""
	}
	b := r.scratch(n)
	r.read(b)
	return string(b)
}

// scalarSize is the encoded size of a value of type t, and for a string the
// size of its length (the least it can take).
var scalarSize = map[ValueType]uint64{
	TypeUint8: 1, TypeInt8: 1, TypeBool: 1, TypeUint16: 2, TypeInt16: 2,
	TypeUint32: 4, TypeInt32: 4, TypeFloat32: 4, TypeUint64: 8, TypeInt64: 8, TypeFloat64: 8,
	TypeString: 8,
}

func (r *reader) value(t ValueType) any {
	switch t {
	case TypeUint8:
		return r.u8()
	case TypeInt8:
		return int8(r.u8())
	case TypeUint16:
		return r.u16()
	case TypeInt16:
		return int16(r.u16())
	case TypeUint32:
		return r.u32()
	case TypeInt32:
		return int32(r.u32())
	case TypeFloat32:
		return math.Float32frombits(r.u32())
	case TypeBool:
		return r.bool()
	case TypeString:
		return r.str()
	case TypeUint64:
		return r.u64()
	case TypeInt64:
		return int64(r.u64())
	case TypeFloat64:
		return math.Float64frombits(r.u64())
	case TypeArray:
		return r.array()
	}
	r.fail("unknown value type %d, in %s", t, r.where())
	return nil
}

func (r *reader) bool() bool {
	b := r.u8()
	if b > 1 {
		r.fail("bool value %d, in %s", b, r.where())
	}
	return b == 1
}

// array reads an array as a slice of its element type. Its length is
// checked against the bytes left before anything is allocated: n elements
// take at least n times the element's size in the file, so the slice is
// never larger than the part of the file it is read from.
func (r *reader) array() any {
	et, n := ValueType(r.u32()), r.u64()
	if r.err != nil {
		return nil
	}
	size, ok := scalarSize[et]
	if !ok {
		r.fail("an array of value type %d (nested arrays are not GGUF), in %s", et, r.where())
		return nil
	}
	if n > maxArrayLen || n > r.left()/size {
		r.fail("an array of %d values of type %d at byte %d (%d bytes are left), in %s", n, et, r.off, r.left(), r.where())
		return nil
	}
	switch et {
	case TypeUint8:
		return readNumbers(r, n, 1, func(b []byte) uint8 { return b[0] })
	case TypeInt8:
		return readNumbers(r, n, 1, func(b []byte) int8 { return int8(b[0]) })
	case TypeUint16:
		return readNumbers(r, n, 2, binary.LittleEndian.Uint16)
	case TypeInt16:
		return readNumbers(r, n, 2, func(b []byte) int16 { return int16(binary.LittleEndian.Uint16(b)) })
	case TypeUint32:
		return readNumbers(r, n, 4, binary.LittleEndian.Uint32)
	case TypeInt32:
		return readNumbers(r, n, 4, func(b []byte) int32 { return int32(binary.LittleEndian.Uint32(b)) })
	case TypeFloat32:
		return readNumbers(r, n, 4, func(b []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b)) })
	case TypeUint64:
		return readNumbers(r, n, 8, binary.LittleEndian.Uint64)
	case TypeInt64:
		return readNumbers(r, n, 8, func(b []byte) int64 { return int64(binary.LittleEndian.Uint64(b)) })
	case TypeFloat64:
		return readNumbers(r, n, 8, func(b []byte) float64 { return math.Float64frombits(binary.LittleEndian.Uint64(b)) })
	case TypeBool:
		out := make([]bool, n)
		for i := range out {
			if out[i] = r.bool(); r.err != nil {
				return nil
			}
		}
		return out
	default: // TypeString
		out := make([]string, n)
		for i := range out {
			if out[i] = r.str(); r.err != nil {
				return nil
			}
		}
		return out
	}
}

// readNumbers reads n fixed-size little-endian numbers into a []T, a buffer
// at a time.
func readNumbers[T any](r *reader, n uint64, size int, decode func([]byte) T) []T {
	out := make([]T, n)
	per := uint64(4096 / size)
	for i := uint64(0); i < n; {
		k := min(n-i, per)
		b := r.scratch(k * uint64(size))
		if r.read(b); r.err != nil {
			return nil
		}
		for j := range k {
			out[i+j] = decode(b[j*uint64(size):])
		}
		i += k
	}
	return out
}

// The least bytes a metadata entry and a tensor info take: what bounds
// their counts by the size of the file.
const (
	minKVBytes         = 8 + 1 + 4 + 1     // key length, a 1-byte key, type, a 1-byte value
	minTensorInfoBytes = 8 + 4 + 8 + 4 + 8 // name length, dimension count, one dimension, type, offset
)

// Read parses and validates the header of a GGUF file of size bytes; src
// holds the file from its first byte. Every count in the header is checked
// against the bytes the file has left before it sizes an allocation, so
// parsing costs memory in proportion to the header's size, never to the
// numbers written in it.
func Read(src io.Reader, size int64) (*File, error) {
	if size < 0 {
		return nil, fmt.Errorf("%w: a file of %d bytes", ErrInvalid, size)
	}
	r := &reader{r: src, size: uint64(size)}
	if magic := r.u32(); r.err == nil && magic != Magic {
		return nil, fmt.Errorf("%w: magic %#x is not GGUF", ErrInvalid, magic)
	}
	f := &File{Version: r.u32(), Alignment: DefaultAlignment}
	if r.err == nil && f.Version != 2 && f.Version != 3 {
		return nil, fmt.Errorf("%w: version %d (2 and 3 are supported)", ErrInvalid, f.Version)
	}
	nTensors, nKV := r.u64(), r.u64()
	if r.err != nil {
		return nil, r.err
	}
	if nTensors > maxTensors || nKV > maxKV || nKV > r.left()/minKVBytes || nTensors > r.left()/minTensorInfoBytes {
		return nil, fmt.Errorf("%w: %d tensors and %d metadata entries cannot fit in the %d bytes left of the file", ErrInvalid, nTensors, nKV, r.left())
	}
	f.Metadata = make([]KV, 0, nKV)
	keys := make(map[string]bool, nKV)
	for i := uint64(0); i < nKV && r.err == nil; i++ {
		r.at("metadata entry", i)
		kv := KV{Key: r.str()}
		if r.err != nil {
			break
		}
		if kv.Key == "" || keys[kv.Key] {
			return nil, fmt.Errorf("%w: metadata entry %d has an empty or repeated key %q", ErrInvalid, i, short(kv.Key))
		}
		keys[kv.Key] = true
		r.key = kv.Key
		kv.Type = ValueType(r.u32())
		if r.err != nil {
			break
		}
		kv.Value = r.value(kv.Type)
		if r.err != nil {
			break
		}
		f.Metadata = append(f.Metadata, kv)
		if kv.Key == "general.alignment" {
			a, ok := kv.Value.(uint32)
			if !ok || a == 0 || a&(a-1) != 0 {
				return nil, fmt.Errorf("%w: general.alignment %v is not a power of two", ErrInvalid, kv.Value)
			}
			f.Alignment = uint64(a)
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	if nTensors > r.left()/minTensorInfoBytes {
		return nil, fmt.Errorf("%w: %d tensor infos cannot fit in the %d bytes left after the metadata", ErrInvalid, nTensors, r.left())
	}
	f.Tensors = make([]TensorInfo, 0, nTensors)
	names := make(map[string]bool, nTensors)
	for i := uint64(0); i < nTensors; i++ {
		r.at("tensor info", i)
		t, err := r.tensorInfo(f.Alignment)
		if err != nil {
			return nil, err
		}
		if names[t.Name] {
			return nil, fmt.Errorf("%w: tensor %q appears twice", ErrInvalid, short(t.Name))
		}
		names[t.Name] = true
		f.Tensors = append(f.Tensors, t)
	}
	f.DataOffset = alignUp(r.off, f.Alignment)
	return f, f.checkLayout(uint64(size))
}

// tensorInfo reads one tensor info and checks its shape, type and size:
// the element count and the byte size are computed with checked
// multiplication, and every row is a whole number of the type's blocks.
func (r *reader) tensorInfo(alignment uint64) (TensorInfo, error) {
	t := TensorInfo{Name: r.str()}
	r.key = t.Name
	nDims := r.u32()
	if r.err != nil {
		return t, r.err
	}
	if nDims == 0 || nDims > maxDims {
		return t, fmt.Errorf("%w: tensor %q has %d dimensions (1 to %d are supported)", ErrInvalid, short(t.Name), nDims, maxDims)
	}
	t.Dims = make([]uint64, nDims)
	for d := range t.Dims {
		t.Dims[d] = r.u64()
	}
	t.Type, t.Offset = TensorType(r.u32()), r.u64()
	if r.err != nil {
		return t, r.err
	}
	l, ok := blockLayout[t.Type]
	if !ok {
		return t, fmt.Errorf("%w: tensor %q: unsupported tensor type %s", ErrInvalid, short(t.Name), t.Type)
	}
	n := uint64(1)
	for _, d := range t.Dims {
		if d == 0 || n > math.MaxUint64/d {
			return t, fmt.Errorf("%w: tensor %q has shape %v", ErrInvalid, short(t.Name), t.Dims)
		}
		n *= d
	}
	if t.Dims[0]%l[0] != 0 {
		return t, fmt.Errorf("%w: tensor %q: rows of %d elements of %s are not a whole number of %d-element blocks", ErrInvalid, short(t.Name), t.Dims[0], t.Type, l[0])
	}
	var err error
	if t.Size, err = t.Type.Bytes(n); err != nil {
		return t, fmt.Errorf("tensor %q: %w", short(t.Name), err)
	}
	if t.Offset%alignment != 0 {
		return t, fmt.Errorf("%w: tensor %q at offset %d is not aligned to %d", ErrInvalid, short(t.Name), t.Offset, alignment)
	}
	return t, nil
}

// checkLayout checks that the data section starts inside the file and that
// every tensor's bytes [Offset, Offset+Size) lie inside it without sharing a
// byte with another tensor. Every comparison subtracts from a bound known
// not to underflow instead of adding header numbers, which could wrap.
//
// Overlap is refused, though reading overlapping tensors would be memory
// safe (the mapping is read-only): no writer makes one, llama.cpp refuses
// any layout but tensors packed in order, and with no overlap the tensors'
// sizes add up to at most the file's size, a bound the loaders rely on.
// Gaps and tensors out of order are accepted.
func (f *File) checkLayout(size uint64) error {
	if len(f.Tensors) == 0 {
		return nil
	}
	if f.DataOffset > size {
		return fmt.Errorf("%w: truncated at byte %d, in the padding before the data section at byte %d", ErrInvalid, size, f.DataOffset)
	}
	data := size - f.DataOffset
	order := make([]int, len(f.Tensors))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return f.Tensors[order[a]].Offset < f.Tensors[order[b]].Offset })
	end := uint64(0) // where the tensor before ends, relative to the data section
	for k, i := range order {
		t := f.Tensors[i]
		if t.Offset > data || t.Size > data-t.Offset {
			return fmt.Errorf("%w: tensor %q of %d bytes at data offset %d ends past the end of the file (the data section holds %d bytes)", ErrInvalid, short(t.Name), t.Size, t.Offset, data)
		}
		if k > 0 && t.Offset < end {
			return fmt.Errorf("%w: tensor %q overlaps tensor %q", ErrInvalid, short(t.Name), short(f.Tensors[order[k-1]].Name))
		}
		end = t.Offset + t.Size
	}
	return nil
}

func alignUp(n, a uint64) uint64 { return (n + a - 1) / a * a }

// short cuts a name read from the file for an error, which ends up in logs
// and in the termination message.
func short(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
