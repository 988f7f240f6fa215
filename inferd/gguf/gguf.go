// Package gguf reads and writes GGUF files (versions 2 and 3), the model format
// of llama.cpp. Read validates everything a loader relies on before any
// tensor is touched: the magic and version, bounded counts and string
// lengths, known value and tensor types, tensor shapes whose byte sizes fit,
// aligned offsets, and tensors that lie inside the file without overlapping.
// A file that fails any check is an error, never a partially loaded model.
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

// Limits that keep a hostile header from allocating without bound.
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

// KV is one metadata entry. Value is uint8..float64, bool, string, or []any
// for arrays.
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

// reader reads little-endian values and counts the bytes consumed.
type reader struct {
	r   io.Reader
	off uint64
	err error
}

func (r *reader) read(p []byte) {
	if r.err != nil {
		return
	}
	n, err := io.ReadFull(r.r, p)
	r.off += uint64(n)
	if err != nil {
		r.err = fmt.Errorf("%w: truncated at byte %d", ErrInvalid, r.off)
	}
}

func (r *reader) u8() uint8   { var b [1]byte; r.read(b[:]); return b[0] }
func (r *reader) u16() uint16 { var b [2]byte; r.read(b[:]); return binary.LittleEndian.Uint16(b[:]) }
func (r *reader) u32() uint32 { var b [4]byte; r.read(b[:]); return binary.LittleEndian.Uint32(b[:]) }
func (r *reader) u64() uint64 { var b [8]byte; r.read(b[:]); return binary.LittleEndian.Uint64(b[:]) }

func (r *reader) str() string {
	n := r.u64()
	if r.err != nil {
		return ""
	}
	if n > maxStringLen {
		r.err = fmt.Errorf("%w: a string of %d bytes at byte %d", ErrInvalid, n, r.off)
		return ""
	}
	b := make([]byte, n)
	r.read(b)
	return string(b)
}

func (r *reader) value(t ValueType, depth int) any {
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
		b := r.u8()
		if b > 1 && r.err == nil {
			r.err = fmt.Errorf("%w: bool value %d", ErrInvalid, b)
		}
		return b == 1
	case TypeString:
		return r.str()
	case TypeUint64:
		return r.u64()
	case TypeInt64:
		return int64(r.u64())
	case TypeFloat64:
		return math.Float64frombits(r.u64())
	case TypeArray:
		et, n := ValueType(r.u32()), r.u64()
		if r.err != nil {
			return nil
		}
		if depth > 0 || n > maxArrayLen || et == TypeArray || et > TypeFloat64 {
			r.err = fmt.Errorf("%w: array of %d values of type %d", ErrInvalid, n, et)
			return nil
		}
		out := make([]any, 0, min(n, 1<<16))
		for i := uint64(0); i < n && r.err == nil; i++ {
			out = append(out, r.value(et, depth+1))
		}
		return out
	}
	if r.err == nil {
		r.err = fmt.Errorf("%w: unknown value type %d", ErrInvalid, t)
	}
	return nil
}

// Read parses and validates the header of a GGUF file of size bytes.
func Read(src io.Reader, size int64) (*File, error) {
	r := &reader{r: src}
	if magic := r.u32(); r.err == nil && magic != Magic {
		return nil, fmt.Errorf("%w: magic %#x is not GGUF", ErrInvalid, magic)
	}
	f := &File{Version: r.u32(), Alignment: DefaultAlignment}
	if r.err == nil && f.Version != 2 && f.Version != 3 {
		return nil, fmt.Errorf("%w: version %d (2 and 3 are supported)", ErrInvalid, f.Version)
	}
	nTensors, nKV := r.u64(), r.u64()
	if r.err == nil && (nTensors > maxTensors || nKV > maxKV) {
		return nil, fmt.Errorf("%w: %d tensors and %d metadata entries", ErrInvalid, nTensors, nKV)
	}
	for i := uint64(0); i < nKV && r.err == nil; i++ {
		kv := KV{Key: r.str(), Type: ValueType(r.u32())}
		kv.Value = r.value(kv.Type, 0)
		f.Metadata = append(f.Metadata, kv)
		if kv.Key == "general.alignment" {
			a, ok := kv.Value.(uint32)
			if !ok || a == 0 || a&(a-1) != 0 {
				return nil, fmt.Errorf("%w: general.alignment %v is not a power of two", ErrInvalid, kv.Value)
			}
			f.Alignment = uint64(a)
		}
	}
	names := map[string]bool{}
	for i := uint64(0); i < nTensors && r.err == nil; i++ {
		t := TensorInfo{Name: r.str()}
		nDims := r.u32()
		if r.err == nil && (nDims == 0 || nDims > maxDims) {
			return nil, fmt.Errorf("%w: tensor %q has %d dimensions", ErrInvalid, t.Name, nDims)
		}
		for d := uint32(0); d < nDims && r.err == nil; d++ {
			t.Dims = append(t.Dims, r.u64())
		}
		t.Type, t.Offset = TensorType(r.u32()), r.u64()
		if r.err != nil {
			break
		}
		if names[t.Name] {
			return nil, fmt.Errorf("%w: tensor %q appears twice", ErrInvalid, t.Name)
		}
		names[t.Name] = true
		n := uint64(1)
		for _, d := range t.Dims {
			if d == 0 || n > math.MaxUint64/d {
				return nil, fmt.Errorf("%w: tensor %q has shape %v", ErrInvalid, t.Name, t.Dims)
			}
			n *= d
		}
		var err error
		if t.Size, err = t.Type.Bytes(n); err != nil {
			return nil, fmt.Errorf("tensor %q: %w", t.Name, err)
		}
		if t.Offset%f.Alignment != 0 {
			return nil, fmt.Errorf("%w: tensor %q at offset %d is not aligned to %d", ErrInvalid, t.Name, t.Offset, f.Alignment)
		}
		f.Tensors = append(f.Tensors, t)
	}
	if r.err != nil {
		return nil, r.err
	}
	f.DataOffset = alignUp(r.off, f.Alignment)
	return f, f.checkBounds(size)
}

// checkBounds checks that every tensor lies inside the file and none overlap.
func (f *File) checkBounds(size int64) error {
	sorted := append([]TensorInfo(nil), f.Tensors...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Offset < sorted[j].Offset })
	end := uint64(0)
	for _, t := range sorted {
		if t.Offset < end {
			return fmt.Errorf("%w: tensor %q overlaps the one before it", ErrInvalid, t.Name)
		}
		if t.Offset > math.MaxUint64-t.Size-f.DataOffset {
			return fmt.Errorf("%w: tensor %q ends past any file", ErrInvalid, t.Name)
		}
		end = t.Offset + t.Size
		if f.DataOffset+end > uint64(size) {
			return fmt.Errorf("%w: tensor %q ends at byte %d of a %d-byte file", ErrInvalid, t.Name, f.DataOffset+end, size)
		}
	}
	return nil
}

func alignUp(n, a uint64) uint64 { return (n + a - 1) / a * a }
