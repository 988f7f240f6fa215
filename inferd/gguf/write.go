package gguf

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// Tensor is a tensor to write: its info (Offset and Size are computed) and
// its raw bytes in the tensor type's layout.
type Tensor struct {
	Name string
	Dims []uint64
	Type TensorType
	Data []byte
	// Fill, when Data is nil, makes the data at write time, so a writer of a
	// large model holds one tensor in memory at a time.
	Fill func() ([]byte, error)
}

// Write writes a GGUF v3 file with the metadata and tensors given, tensors
// aligned to DefaultAlignment (or general.alignment when present).
func Write(w io.Writer, metadata []KV, tensors []Tensor) error {
	bw := bufio.NewWriter(w)
	wr := &writer{w: bw}
	align := uint64(DefaultAlignment)
	for _, kv := range metadata {
		if kv.Key == "general.alignment" {
			a, ok := kv.Value.(uint32)
			if !ok {
				return fmt.Errorf("general.alignment must be a uint32")
			}
			align = uint64(a)
		}
	}
	wr.u32(Magic)
	wr.u32(3)
	wr.u64(uint64(len(tensors)))
	wr.u64(uint64(len(metadata)))
	for _, kv := range metadata {
		wr.str(kv.Key)
		wr.u32(uint32(kv.Type))
		if err := wr.value(kv.Type, kv.Value); err != nil {
			return fmt.Errorf("metadata %s: %w", kv.Key, err)
		}
	}
	offset := uint64(0)
	for _, t := range tensors {
		n := uint64(1)
		for _, d := range t.Dims {
			n *= d
		}
		size, err := t.Type.Bytes(n)
		if err != nil {
			return fmt.Errorf("tensor %s: %w", t.Name, err)
		}
		if t.Fill == nil && uint64(len(t.Data)) != size {
			return fmt.Errorf("tensor %s: %d bytes of data for a %d-byte %s tensor", t.Name, len(t.Data), size, t.Type)
		}
		wr.str(t.Name)
		wr.u32(uint32(len(t.Dims)))
		for _, d := range t.Dims {
			wr.u64(d)
		}
		wr.u32(uint32(t.Type))
		wr.u64(offset)
		offset = alignUp(offset+size, align)
	}
	wr.pad(align)
	for _, t := range tensors {
		data := t.Data
		if t.Fill != nil {
			var err error
			if data, err = t.Fill(); err != nil {
				return fmt.Errorf("tensor %s: %w", t.Name, err)
			}
			n := uint64(1)
			for _, d := range t.Dims {
				n *= d
			}
			if size, _ := t.Type.Bytes(n); uint64(len(data)) != size {
				return fmt.Errorf("tensor %s: Fill made %d bytes of a %d-byte tensor", t.Name, len(data), size)
			}
		}
		wr.bytes(data)
		wr.pad(align)
	}
	if wr.err != nil {
		return wr.err
	}
	return bw.Flush()
}

type writer struct {
	w   io.Writer
	n   uint64
	err error
}

func (w *writer) bytes(p []byte) {
	if w.err != nil {
		return
	}
	n, err := w.w.Write(p)
	w.n += uint64(n)
	w.err = err
}

func (w *writer) u32(v uint32) { w.bytes(binary.LittleEndian.AppendUint32(nil, v)) }
func (w *writer) u64(v uint64) { w.bytes(binary.LittleEndian.AppendUint64(nil, v)) }
func (w *writer) str(s string) { w.u64(uint64(len(s))); w.bytes([]byte(s)) }
func (w *writer) pad(align uint64) {
	if r := w.n % align; r != 0 {
		w.bytes(make([]byte, align-r))
	}
}

func (w *writer) value(t ValueType, v any) error {
	switch t {
	case TypeUint8:
		w.bytes([]byte{v.(uint8)})
	case TypeInt8:
		w.bytes([]byte{byte(v.(int8))})
	case TypeUint16:
		w.bytes(binary.LittleEndian.AppendUint16(nil, v.(uint16)))
	case TypeInt16:
		w.bytes(binary.LittleEndian.AppendUint16(nil, uint16(v.(int16))))
	case TypeUint32:
		w.u32(v.(uint32))
	case TypeInt32:
		w.u32(uint32(v.(int32)))
	case TypeFloat32:
		w.u32(math.Float32bits(v.(float32)))
	case TypeBool:
		b := byte(0)
		if v.(bool) {
			b = 1
		}
		w.bytes([]byte{b})
	case TypeString:
		w.str(v.(string))
	case TypeUint64:
		w.u64(v.(uint64))
	case TypeInt64:
		w.u64(uint64(v.(int64)))
	case TypeFloat64:
		w.u64(math.Float64bits(v.(float64)))
	case TypeArray:
		arr, ok := asArray(v)
		if !ok {
			return fmt.Errorf("an array value must be a gguf.Array or a slice of a value type, not %T", v)
		}
		w.u32(uint32(arr.Type))
		w.u64(uint64(len(arr.Values)))
		for _, e := range arr.Values {
			if err := w.value(arr.Type, e); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("unknown value type %d", t)
	}
	return nil
}

// Array is an array metadata value to write. Write also takes the typed
// slices that Read returns ([]string, []float32, []int32...).
type Array struct {
	Type   ValueType
	Values []any
}

// asArray makes an Array of an array value as Read returns it.
func asArray(v any) (Array, bool) {
	switch a := v.(type) {
	case Array:
		return a, true
	case []uint8:
		return boxed(TypeUint8, a), true
	case []int8:
		return boxed(TypeInt8, a), true
	case []uint16:
		return boxed(TypeUint16, a), true
	case []int16:
		return boxed(TypeInt16, a), true
	case []uint32:
		return boxed(TypeUint32, a), true
	case []int32:
		return boxed(TypeInt32, a), true
	case []float32:
		return boxed(TypeFloat32, a), true
	case []bool:
		return boxed(TypeBool, a), true
	case []string:
		return boxed(TypeString, a), true
	case []uint64:
		return boxed(TypeUint64, a), true
	case []int64:
		return boxed(TypeInt64, a), true
	case []float64:
		return boxed(TypeFloat64, a), true
	}
	return Array{}, false
}

func boxed[E any](t ValueType, a []E) Array {
	out := Array{Type: t, Values: make([]any, len(a))}
	for i, e := range a {
		out.Values[i] = e
	}
	return out
}
