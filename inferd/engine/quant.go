package engine

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/slmops/slmops/inferd/gguf"
)

// F16ToF32 converts an IEEE 754 half-precision value.
func F16ToF32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0 && mant == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: normalise
		e := uint32(127 - 15 + 1)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		return math.Float32frombits(sign | e<<23 | (mant&0x3ff)<<13)
	case exp == 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// F32ToF16 converts to half precision, rounding to nearest even.
func F32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23&0xff) - 127 + 15
	mant := b & 0x7fffff
	switch {
	case b&0x7fffffff > 0x7f800000: // NaN
		return sign | 0x7e00
	case exp >= 0x1f:
		return sign | 0x7c00
	case exp <= 0:
		if exp < -10 {
			return sign
		}
		mant |= 0x800000
		shift := uint32(14 - exp)
		half := uint32(1) << (shift - 1)
		r := mant >> shift
		if rem := mant & (1<<shift - 1); rem > half || (rem == half && r&1 == 1) {
			r++
		}
		return sign | uint16(r)
	}
	r := uint32(exp)<<10 | mant>>13
	if rem := mant & 0x1fff; rem > 0x1000 || (rem == 0x1000 && r&1 == 1) {
		r++
	}
	return sign | uint16(r)
}

// Q8_0 blocks: a half-precision scale and 32 signed bytes.
const (
	q8Block     = 32
	q8BlockSize = 2 + q8Block
)

// QuantizeQ8_0 appends the Q8_0 encoding of x (a multiple of 32 values) to dst.
func QuantizeQ8_0(dst []byte, x []float32) []byte {
	for b := 0; b+q8Block <= len(x); b += q8Block {
		amax := float32(0)
		for _, v := range x[b : b+q8Block] {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		d := amax / 127
		inv := float32(0)
		if d != 0 {
			inv = 1 / d
		}
		dst = binary.LittleEndian.AppendUint16(dst, F32ToF16(d))
		for _, v := range x[b : b+q8Block] {
			dst = append(dst, byte(int8(math.Round(float64(v*inv)))))
		}
	}
	return dst
}

// DequantizeRow decodes len(dst) values of type t from src.
func DequantizeRow(t gguf.TensorType, src []byte, dst []float32) error {
	need, err := t.Bytes(uint64(len(dst)))
	if err != nil {
		return err
	}
	if uint64(len(src)) < need {
		return fmt.Errorf("%w: %d bytes of %s hold fewer than %d values", ErrInvalidInput, len(src), t, len(dst))
	}
	switch t {
	case gguf.F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	case gguf.F16:
		for i := range dst {
			dst[i] = F16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case gguf.Q8_0:
		for b := 0; b < len(dst)/q8Block; b++ {
			block := src[b*q8BlockSize:]
			d := F16ToF32(binary.LittleEndian.Uint16(block))
			for i := range q8Block {
				dst[b*q8Block+i] = d * float32(int8(block[2+i]))
			}
		}
	default:
		return fmt.Errorf("%w: tensor type %s", ErrUnsupported, t)
	}
	return nil
}
