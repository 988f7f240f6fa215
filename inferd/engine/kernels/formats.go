// Package kernels holds the numeric core of the engine: the ggml block
// formats (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K,
// Q5_K, Q6_K) with their quantizers and dequantizers, the fused
// dequantize-dot products that matrix-vector and matrix-matrix products are
// built from, and the worker pool that spreads rows over the CPUs.
//
// The block layouts are ggml's, byte for byte, so GGUF files written by
// llama.cpp's tools load as they are. The quantizers are simple
// round-to-nearest ones: good enough to generate test and benchmark models,
// not a replacement for llama.cpp's importance-weighted quantization.
package kernels

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/slmops/slmops/inferd/gguf"
)

// Block sizes, in values and bytes.
const (
	QK8_0 = 32
	QK4_0 = 32
	QK_K  = 256

	BytesQ8_0 = 2 + QK8_0
	BytesQ4_0 = 2 + QK4_0/2
	BytesQ4_1 = 2 + 2 + QK4_0/2
	BytesQ5_0 = 2 + 4 + QK4_0/2
	BytesQ5_1 = 2 + 2 + 4 + QK4_0/2
	BytesQ2_K = QK_K/16 + QK_K/4 + 2 + 2
	BytesQ3_K = QK_K/8 + QK_K/4 + 12 + 2
	BytesQ4_K = 2 + 2 + 12 + QK_K/2
	BytesQ5_K = 2 + 2 + 12 + QK_K/8 + QK_K/2
	BytesQ6_K = QK_K/2 + QK_K/4 + QK_K/16 + 2
)

// F16ToF32 converts an IEEE 754 half-precision value.
func F16ToF32(h uint16) float32 { return f16table[h] }

var f16table = func() *[1 << 16]float32 {
	var t [1 << 16]float32
	for i := range t {
		t[i] = f16ToF32Slow(uint16(i))
	}
	return &t
}()

func f16ToF32Slow(h uint16) float32 {
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

// BF16ToF32 converts a bfloat16 value: the top half of a float32.
func BF16ToF32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// F32ToBF16 converts to bfloat16, rounding to nearest even; a NaN stays a
// (quiet) NaN instead of rounding into an infinity.
func F32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}

// Quantize appends the encoding of x in type t to dst; len(x) must be a
// whole number of t's blocks.
func Quantize(dst []byte, t gguf.TensorType, x []float32) ([]byte, error) {
	if _, err := t.Bytes(uint64(len(x))); err != nil {
		return dst, err
	}
	switch t {
	case gguf.F32:
		for _, v := range x {
			dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(v))
		}
	case gguf.F16:
		for _, v := range x {
			dst = binary.LittleEndian.AppendUint16(dst, F32ToF16(v))
		}
	case gguf.BF16:
		for _, v := range x {
			dst = binary.LittleEndian.AppendUint16(dst, F32ToBF16(v))
		}
	case gguf.Q8_0:
		dst = quantizeQ8_0(dst, x)
	case gguf.Q4_0:
		dst = quantizeQ4_0(dst, x)
	case gguf.Q4_1:
		dst = quantizeQ4_1(dst, x)
	case gguf.Q5_0:
		dst = quantizeQ5_0(dst, x)
	case gguf.Q5_1:
		dst = quantizeQ5_1(dst, x)
	case gguf.Q2_K:
		dst = quantizeQ2_K(dst, x)
	case gguf.Q3_K:
		dst = quantizeQ3_K(dst, x)
	case gguf.Q4_K:
		dst = quantizeQ4_K(dst, x)
	case gguf.Q5_K:
		dst = quantizeQ5_K(dst, x)
	case gguf.Q6_K:
		dst = quantizeQ6_K(dst, x)
	default:
		return dst, fmt.Errorf("%w: no quantizer for %s", ErrUnsupported, t)
	}
	return dst, nil
}

// ErrUnsupported is a tensor type the kernels cannot handle.
var ErrUnsupported = fmt.Errorf("unsupported tensor type")

// Supported reports whether the kernels compute with tensors of type t.
func Supported(t gguf.TensorType) bool {
	switch t {
	case gguf.F32, gguf.F16, gguf.BF16, gguf.Q8_0, gguf.Q4_0, gguf.Q4_1, gguf.Q5_0, gguf.Q5_1,
		gguf.Q2_K, gguf.Q3_K, gguf.Q4_K, gguf.Q5_K, gguf.Q6_K:
		return true
	}
	return false
}

func quantizeQ8_0(dst []byte, x []float32) []byte {
	for b := 0; b+QK8_0 <= len(x); b += QK8_0 {
		amax := float32(0)
		for _, v := range x[b : b+QK8_0] {
			amax = max(amax, abs(v))
		}
		d := amax / 127
		inv := float32(0)
		if d != 0 {
			inv = 1 / d
		}
		dst = binary.LittleEndian.AppendUint16(dst, F32ToF16(d))
		for _, v := range x[b : b+QK8_0] {
			dst = append(dst, byte(int8(roundHalfAway(v*inv))))
		}
	}
	return dst
}

func quantizeQ4_0(dst []byte, x []float32) []byte {
	for b := 0; b+QK4_0 <= len(x); b += QK4_0 {
		// The value of largest magnitude maps to -8, so both signs use the
		// full range.
		amax, maxv := float32(0), float32(0)
		for _, v := range x[b : b+QK4_0] {
			if abs(v) > amax {
				amax, maxv = abs(v), v
			}
		}
		d := maxv / -8
		inv := float32(0)
		if d != 0 {
			inv = 1 / d
		}
		dst = binary.LittleEndian.AppendUint16(dst, F32ToF16(d))
		for j := range QK4_0 / 2 {
			q0 := min(15, int(x[b+j]*inv+8.5))
			q1 := min(15, int(x[b+j+QK4_0/2]*inv+8.5))
			dst = append(dst, byte(q0)|byte(q1)<<4)
		}
	}
	return dst
}

// quantizeQ4_K: eight 32-value sub-blocks, each y = d*sc*q - dmin*m with
// 6-bit sc and m and 4-bit q.
func quantizeQ4_K(dst []byte, x []float32) []byte { return quantizeMinK(dst, x, 15) }

// quantizeQ5_K is Q4_K with 5-bit q: the fifth bits go into 32 bytes
// before the nibbles, bit j of byte l for value 32*j+l.
func quantizeQ5_K(dst []byte, x []float32) []byte { return quantizeMinK(dst, x, 31) }

// quantizeMinK quantizes super-blocks of eight 32-value sub-blocks with a
// scale and a min each, q in [0, levels]: Q4_K (15) and Q5_K (31), which
// share the scale layout.
func quantizeMinK(dst []byte, x []float32, levels int) []byte {
	for b := 0; b+QK_K <= len(x); b += QK_K {
		var scales, mins [8]float32
		var maxScale, maxMin float32
		for j := range 8 {
			lo, hi := float32(0), float32(0)
			for i, v := range x[b+32*j : b+32*j+32] {
				if i == 0 || v < lo {
					lo = v
				}
				if i == 0 || v > hi {
					hi = v
				}
			}
			lo = min(lo, 0) // the min is subtracted, so it is kept <= 0
			scales[j] = (hi - lo) / float32(levels)
			mins[j] = -lo
			maxScale = max(maxScale, scales[j])
			maxMin = max(maxMin, mins[j])
		}
		d, dmin := maxScale/63, maxMin/63
		var ls, lm [8]uint8
		for j := range 8 {
			if d > 0 {
				ls[j] = uint8(min(63, roundHalfAway(scales[j]/d)))
			}
			if dmin > 0 {
				lm[j] = uint8(min(63, roundHalfAway(mins[j]/dmin)))
			}
		}
		var sc [12]byte
		for j := range 8 {
			if j < 4 {
				sc[j] = ls[j]
				sc[j+4] = lm[j]
			} else {
				sc[j+4] = ls[j]&0xF | (lm[j]&0xF)<<4
				sc[j-4] |= (ls[j] >> 4) << 6
				sc[j] |= (lm[j] >> 4) << 6
			}
		}
		d16, dmin16 := F32ToF16(d), F32ToF16(dmin)
		dq, dminq := F16ToF32(d16), F16ToF32(dmin16)
		var L [QK_K]uint8
		for j := range 8 {
			s, m := scaleMinK4(j, sc[:])
			sd, sm := dq*float32(s), dminq*float32(m)
			if sd == 0 {
				continue
			}
			for i := range 32 {
				L[32*j+i] = uint8(max(0, min(levels, roundHalfAway((x[b+32*j+i]+sm)/sd))))
			}
		}
		dst = binary.LittleEndian.AppendUint16(dst, d16)
		dst = binary.LittleEndian.AppendUint16(dst, dmin16)
		dst = append(dst, sc[:]...)
		if levels > 15 {
			var qh [QK_K / 8]byte
			for i, q := range L {
				qh[i%32] |= (q >> 4) << (i / 32)
			}
			dst = append(dst, qh[:]...)
		}
		for j := 0; j < QK_K; j += 64 {
			for l := range 32 {
				dst = append(dst, L[j+l]&0xF|(L[j+l+32]&0xF)<<4)
			}
		}
	}
	return dst
}

// quantizeQ6_K: sixteen 16-value sub-blocks, y = d*sc*q with int8 sc and
// 6-bit signed q.
func quantizeQ6_K(dst []byte, x []float32) []byte {
	for b := 0; b+QK_K <= len(x); b += QK_K {
		var scales [16]float32
		var maxAbsScale float32
		for j := range 16 {
			amax, maxv := float32(0), float32(0)
			for _, v := range x[b+16*j : b+16*j+16] {
				if abs(v) > amax {
					amax, maxv = abs(v), v
				}
			}
			scales[j] = maxv / -32
			maxAbsScale = max(maxAbsScale, abs(scales[j]))
		}
		d := maxAbsScale / 127
		d16 := F32ToF16(d)
		dq := F16ToF32(d16)
		var sc [16]int8
		var L [QK_K]uint8
		for j := range 16 {
			if d > 0 {
				sc[j] = int8(max(-128, min(127, roundHalfAway(scales[j]/d))))
			}
			sd := dq * float32(sc[j])
			for i := range 16 {
				q := 0
				if sd != 0 {
					q = roundHalfAway(x[b+16*j+i] / sd)
				}
				L[16*j+i] = uint8(max(-32, min(31, q)) + 32)
			}
		}
		var ql [QK_K / 2]byte
		var qh [QK_K / 4]byte
		for n := 0; n < QK_K; n += 128 {
			for l := range 32 {
				q1, q2, q3, q4 := L[n+l], L[n+l+32], L[n+l+64], L[n+l+96]
				ql[n/2+l] = q1&0xF | (q3&0xF)<<4
				ql[n/2+l+32] = q2&0xF | (q4&0xF)<<4
				qh[n/4+l] = q1>>4 | (q2>>4)<<2 | (q3>>4)<<4 | (q4>>4)<<6
			}
		}
		dst = append(dst, ql[:]...)
		dst = append(dst, qh[:]...)
		for _, s := range sc {
			dst = append(dst, byte(s))
		}
		dst = binary.LittleEndian.AppendUint16(dst, d16)
	}
	return dst
}

// quantizeQ4_1: y = d*q + m with 4-bit q and m the block's minimum.
func quantizeQ4_1(dst []byte, x []float32) []byte { return quantizeMin32(dst, x, 15) }

// quantizeQ5_1: y = d*q + m with 5-bit q.
func quantizeQ5_1(dst []byte, x []float32) []byte { return quantizeMin32(dst, x, 31) }

// quantizeMin32 quantizes 32-value blocks as y = d*q + m, q in [0, levels],
// m the block's minimum: Q4_1 (levels 15) and Q5_1 (31).
func quantizeMin32(dst []byte, x []float32, levels int) []byte {
	for b := 0; b+QK4_0 <= len(x); b += QK4_0 {
		blk := x[b : b+QK4_0]
		lo, hi := blk[0], blk[0]
		for _, v := range blk {
			lo, hi = min(lo, v), max(hi, v)
		}
		d := (hi - lo) / float32(levels)
		inv := float32(0)
		if d != 0 {
			inv = 1 / d
		}
		dst = binary.LittleEndian.AppendUint16(dst, F32ToF16(d))
		dst = binary.LittleEndian.AppendUint16(dst, F32ToF16(lo))
		var q [QK4_0]uint8
		for i, v := range blk {
			q[i] = uint8(min(levels, int((v-lo)*inv+0.5)))
		}
		dst = appendQuants32(dst, &q, levels > 15)
	}
	return dst
}

// quantizeQ5_0 is Q4_0 with 5-bit q: the value of largest magnitude maps
// to -16.
func quantizeQ5_0(dst []byte, x []float32) []byte {
	for b := 0; b+QK4_0 <= len(x); b += QK4_0 {
		amax, maxv := float32(0), float32(0)
		for _, v := range x[b : b+QK4_0] {
			if abs(v) > amax {
				amax, maxv = abs(v), v
			}
		}
		d := maxv / -16
		inv := float32(0)
		if d != 0 {
			inv = 1 / d
		}
		dst = binary.LittleEndian.AppendUint16(dst, F32ToF16(d))
		var q [QK4_0]uint8
		for i, v := range x[b : b+QK4_0] {
			q[i] = uint8(min(31, int(v*inv+16.5)))
		}
		dst = appendQuants32(dst, &q, true)
	}
	return dst
}

// appendQuants32 appends the quants of a 32-value block the way Q4_0, Q4_1,
// Q5_0 and Q5_1 store them: for 5-bit ones first a little-endian 32-bit
// mask of the fifth bits (bit i for value i), then 16 bytes whose low
// nibbles are values 0-15 and high nibbles values 16-31.
func appendQuants32(dst []byte, q *[QK4_0]uint8, fifth bool) []byte {
	if fifth {
		var qh uint32
		for i, v := range q {
			qh |= uint32(v>>4&1) << i
		}
		dst = binary.LittleEndian.AppendUint32(dst, qh)
	}
	for j := range QK4_0 / 2 {
		dst = append(dst, q[j]&0xF|(q[j+QK4_0/2]&0xF)<<4)
	}
	return dst
}

// quantizeQ2_K: sixteen 16-value sub-blocks, each y = d*sc*q - dmin*m with
// 4-bit sc and m and 2-bit q.
func quantizeQ2_K(dst []byte, x []float32) []byte {
	for b := 0; b+QK_K <= len(x); b += QK_K {
		var scales, mins [16]float32
		var maxScale, maxMin float32
		for j := range 16 {
			blk := x[b+16*j : b+16*j+16]
			lo, hi := blk[0], blk[0]
			for _, v := range blk {
				lo, hi = min(lo, v), max(hi, v)
			}
			lo = min(lo, 0)
			scales[j] = (hi - lo) / 3
			mins[j] = -lo
			maxScale = max(maxScale, scales[j])
			maxMin = max(maxMin, mins[j])
		}
		d, dmin := maxScale/15, maxMin/15
		var sc [16]byte
		for j := range 16 {
			var ls, lm int
			if d > 0 {
				ls = min(15, roundHalfAway(scales[j]/d))
			}
			if dmin > 0 {
				lm = min(15, roundHalfAway(mins[j]/dmin))
			}
			sc[j] = byte(ls) | byte(lm)<<4
		}
		d16, dmin16 := F32ToF16(d), F32ToF16(dmin)
		dq, dminq := F16ToF32(d16), F16ToF32(dmin16)
		var L [QK_K]uint8
		for j := range 16 {
			sd, sm := dq*float32(sc[j]&0xF), dminq*float32(sc[j]>>4)
			if sd == 0 {
				continue
			}
			for i := range 16 {
				L[16*j+i] = uint8(max(0, min(3, roundHalfAway((x[b+16*j+i]+sm)/sd))))
			}
		}
		dst = append(dst, sc[:]...)
		dst = appendQuants2(dst, &L)
		dst = binary.LittleEndian.AppendUint16(dst, d16)
		dst = binary.LittleEndian.AppendUint16(dst, dmin16)
	}
	return dst
}

// appendQuants2 appends the low two bits of a super-block's quants the way
// Q2_K and Q3_K store them: in each 128-value half, byte l holds values
// l, l+32, l+64 and l+96, from the lowest bits up.
func appendQuants2(dst []byte, L *[QK_K]uint8) []byte {
	for n := 0; n < QK_K; n += 128 {
		for l := range 32 {
			dst = append(dst, L[n+l]&3|(L[n+l+32]&3)<<2|(L[n+l+64]&3)<<4|(L[n+l+96]&3)<<6)
		}
	}
	return dst
}

// quantizeQ3_K: sixteen 16-value sub-blocks, y = d*sc*q with 6-bit signed
// sc and 3-bit signed q (-4..3): the low two bits of q+4 go with Q2_K's
// layout, the third into a 32-byte mask (bit j of byte l for value 32*j+l).
func quantizeQ3_K(dst []byte, x []float32) []byte {
	for b := 0; b+QK_K <= len(x); b += QK_K {
		var scales [16]float32
		var amaxScale, maxScale float32
		for j := range 16 {
			amax, maxv := float32(0), float32(0)
			for _, v := range x[b+16*j : b+16*j+16] {
				if abs(v) > amax {
					amax, maxv = abs(v), v
				}
			}
			scales[j] = maxv / -4
			if abs(scales[j]) > amaxScale {
				amaxScale, maxScale = abs(scales[j]), scales[j]
			}
		}
		d := maxScale / -32
		d16 := F32ToF16(d)
		dq := F16ToF32(d16)
		var ls [16]int
		var L [QK_K]uint8
		for j := range 16 {
			if d != 0 {
				ls[j] = max(-32, min(31, roundHalfAway(scales[j]/d)))
			}
			sd := dq * float32(ls[j])
			for i := range 16 {
				q := 0
				if sd != 0 {
					q = roundHalfAway(x[b+16*j+i] / sd)
				}
				L[16*j+i] = uint8(max(-4, min(3, q)) + 4)
			}
		}
		var hmask [QK_K / 8]byte
		for i, q := range L {
			hmask[i%32] |= (q >> 2) << (i / 32)
		}
		var sc [12]byte
		for j, v := range ls {
			u := byte(v + 32)
			if j < 8 {
				sc[j] |= u & 0xF
			} else {
				sc[j-8] |= (u & 0xF) << 4
			}
			sc[8+j%4] |= (u >> 4) << (2 * (j / 4))
		}
		dst = append(dst, hmask[:]...)
		dst = appendQuants2(dst, &L)
		dst = append(dst, sc[:]...)
		dst = binary.LittleEndian.AppendUint16(dst, d16)
	}
	return dst
}

// scaleK3 unpacks the 6-bit scale of sub-block j of a Q3_K block, stored
// with an offset of 32: its low four bits are a nibble of the first eight
// bytes, its high two a pair of bits of the last four.
func scaleK3(j int, sc []byte) int32 {
	var lo byte
	if j < 8 {
		lo = sc[j] & 0xF
	} else {
		lo = sc[j-8] >> 4
	}
	hi := (sc[8+j%4] >> (2 * (j / 4))) & 3
	return int32(lo|hi<<4) - 32
}

// scaleMinK4 unpacks the 6-bit scale and min of sub-block j of a Q4_K block.
func scaleMinK4(j int, q []byte) (uint8, uint8) {
	if j < 4 {
		return q[j] & 63, q[j+4] & 63
	}
	return q[j+4]&0xF | (q[j-4]>>6)<<4, q[j+4]>>4 | (q[j]>>6)<<4
}

// Dequantize decodes len(dst) values of type t from src.
func Dequantize(t gguf.TensorType, src []byte, dst []float32) error {
	need, err := t.Bytes(uint64(len(dst)))
	if err != nil {
		return err
	}
	if uint64(len(src)) < need {
		return fmt.Errorf("%d bytes of %s hold fewer than %d values", len(src), t, len(dst))
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
	case gguf.BF16:
		for i := range dst {
			dst[i] = BF16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case gguf.Q8_0:
		for b := range len(dst) / QK8_0 {
			dequantQ8_0(src[b*BytesQ8_0:], dst[b*QK8_0:])
		}
	case gguf.Q4_0:
		for b := range len(dst) / QK4_0 {
			dequantQ4_0(src[b*BytesQ4_0:], dst[b*QK4_0:])
		}
	case gguf.Q4_1:
		for b := range len(dst) / QK4_0 {
			dequantQ4_1(src[b*BytesQ4_1:], dst[b*QK4_0:])
		}
	case gguf.Q5_0:
		for b := range len(dst) / QK4_0 {
			dequantQ5_0(src[b*BytesQ5_0:], dst[b*QK4_0:])
		}
	case gguf.Q5_1:
		for b := range len(dst) / QK4_0 {
			dequantQ5_1(src[b*BytesQ5_1:], dst[b*QK4_0:])
		}
	case gguf.Q2_K:
		for b := range len(dst) / QK_K {
			dequantQ2_K(src[b*BytesQ2_K:], dst[b*QK_K:])
		}
	case gguf.Q3_K:
		for b := range len(dst) / QK_K {
			dequantQ3_K(src[b*BytesQ3_K:], dst[b*QK_K:])
		}
	case gguf.Q4_K:
		for b := range len(dst) / QK_K {
			dequantQ4_K(src[b*BytesQ4_K:], dst[b*QK_K:])
		}
	case gguf.Q5_K:
		for b := range len(dst) / QK_K {
			dequantQ5_K(src[b*BytesQ5_K:], dst[b*QK_K:])
		}
	case gguf.Q6_K:
		for b := range len(dst) / QK_K {
			dequantQ6_K(src[b*BytesQ6_K:], dst[b*QK_K:])
		}
	default:
		return fmt.Errorf("%w: %s", ErrUnsupported, t)
	}
	return nil
}

func dequantQ8_0(block []byte, y []float32) {
	d := F16ToF32(binary.LittleEndian.Uint16(block))
	q := block[2:BytesQ8_0]
	for i, v := range q {
		y[i] = d * float32(int8(v))
	}
}

func dequantQ4_0(block []byte, y []float32) {
	d := F16ToF32(binary.LittleEndian.Uint16(block))
	q := block[2:BytesQ4_0]
	for j, v := range q {
		y[j] = float32(int(v&0xF)-8) * d
		y[j+QK4_0/2] = float32(int(v>>4)-8) * d
	}
}

func dequantQ4_K(block []byte, y []float32) {
	d := F16ToF32(binary.LittleEndian.Uint16(block))
	dmin := F16ToF32(binary.LittleEndian.Uint16(block[2:]))
	sc := block[4:16]
	q := block[16:BytesQ4_K]
	for j, is := 0, 0; j < QK_K; j, is = j+64, is+2 {
		s1, m1 := scaleMinK4(is, sc)
		s2, m2 := scaleMinK4(is+1, sc)
		d1, mm1 := d*float32(s1), dmin*float32(m1)
		d2, mm2 := d*float32(s2), dmin*float32(m2)
		qq := q[j/2 : j/2+32]
		for l, v := range qq {
			y[j+l] = d1*float32(v&0xF) - mm1
			y[j+32+l] = d2*float32(v>>4) - mm2
		}
	}
}

func dequantQ6_K(block []byte, y []float32) {
	ql := block[:QK_K/2]
	qh := block[QK_K/2 : QK_K/2+QK_K/4]
	sc := block[QK_K/2+QK_K/4 : QK_K/2+QK_K/4+QK_K/16]
	d := F16ToF32(binary.LittleEndian.Uint16(block[BytesQ6_K-2:]))
	for n := 0; n < QK_K; n += 128 {
		l0, h0, s0 := ql[n/2:], qh[n/4:], sc[n/16:]
		for l := range 32 {
			is := l / 16
			q1 := int((l0[l]&0xF)|((h0[l]>>0)&3)<<4) - 32
			q2 := int((l0[l+32]&0xF)|((h0[l]>>2)&3)<<4) - 32
			q3 := int((l0[l]>>4)|((h0[l]>>4)&3)<<4) - 32
			q4 := int((l0[l+32]>>4)|((h0[l]>>6)&3)<<4) - 32
			y[n+l] = d * float32(int8(s0[is])) * float32(q1)
			y[n+l+32] = d * float32(int8(s0[is+2])) * float32(q2)
			y[n+l+64] = d * float32(int8(s0[is+4])) * float32(q3)
			y[n+l+96] = d * float32(int8(s0[is+6])) * float32(q4)
		}
	}
}

func dequantQ4_1(block []byte, y []float32) {
	d := F16ToF32(binary.LittleEndian.Uint16(block))
	m := F16ToF32(binary.LittleEndian.Uint16(block[2:]))
	q := block[4:BytesQ4_1]
	for j, v := range q {
		y[j] = float32(v&0xF)*d + m
		y[j+QK4_0/2] = float32(v>>4)*d + m
	}
}

func dequantQ5_0(block []byte, y []float32) {
	d := F16ToF32(binary.LittleEndian.Uint16(block))
	qh := binary.LittleEndian.Uint32(block[2:])
	q := block[6:BytesQ5_0]
	for j, v := range q {
		y[j] = float32(int(v&0xF|byte(qh>>j&1)<<4)-16) * d
		y[j+QK4_0/2] = float32(int(v>>4|byte(qh>>(j+QK4_0/2)&1)<<4)-16) * d
	}
}

func dequantQ5_1(block []byte, y []float32) {
	d := F16ToF32(binary.LittleEndian.Uint16(block))
	m := F16ToF32(binary.LittleEndian.Uint16(block[2:]))
	qh := binary.LittleEndian.Uint32(block[4:])
	q := block[8:BytesQ5_1]
	for j, v := range q {
		y[j] = float32(v&0xF|byte(qh>>j&1)<<4)*d + m
		y[j+QK4_0/2] = float32(v>>4|byte(qh>>(j+QK4_0/2)&1)<<4)*d + m
	}
}

func dequantQ2_K(block []byte, y []float32) {
	sc := block[:QK_K/16]
	qs := block[QK_K/16 : QK_K/16+QK_K/4]
	d := F16ToF32(binary.LittleEndian.Uint16(block[BytesQ2_K-4:]))
	dmin := F16ToF32(binary.LittleEndian.Uint16(block[BytesQ2_K-2:]))
	for i := range QK_K {
		q := qs[i/128*32+i%32] >> (2 * (i % 128 / 32)) & 3
		s := sc[i/16]
		y[i] = d*float32(s&0xF)*float32(q) - dmin*float32(s>>4)
	}
}

func dequantQ3_K(block []byte, y []float32) {
	hm := block[:QK_K/8]
	qs := block[QK_K/8 : QK_K/8+QK_K/4]
	sc := block[QK_K/8+QK_K/4 : QK_K/8+QK_K/4+12]
	d := F16ToF32(binary.LittleEndian.Uint16(block[BytesQ3_K-2:]))
	var scales [16]float32
	for j := range scales {
		scales[j] = d * float32(scaleK3(j, sc))
	}
	for i := range QK_K {
		q := int(qs[i/128*32+i%32]>>(2*(i%128/32))&3) - 4 + 4*int(hm[i%32]>>(i/32)&1)
		y[i] = scales[i/16] * float32(q)
	}
}

func dequantQ5_K(block []byte, y []float32) {
	d := F16ToF32(binary.LittleEndian.Uint16(block))
	dmin := F16ToF32(binary.LittleEndian.Uint16(block[2:]))
	sc := block[4:16]
	qh := block[16 : 16+QK_K/8]
	q := block[16+QK_K/8 : BytesQ5_K]
	for j, is := 0, 0; j < QK_K; j, is = j+64, is+2 {
		s1, m1 := scaleMinK4(is, sc)
		s2, m2 := scaleMinK4(is+1, sc)
		d1, mm1 := d*float32(s1), dmin*float32(m1)
		d2, mm2 := d*float32(s2), dmin*float32(m2)
		qq := q[j/2 : j/2+32]
		for l, v := range qq {
			h := qh[l] >> is
			y[j+l] = d1*float32(v&0xF|(h&1)<<4) - mm1
			y[j+32+l] = d2*float32(v>>4|(h&2)<<3) - mm2
		}
	}
}

func abs(v float32) float32 {
	if v < 0 {
		return -v
	}
	return v
}

func roundHalfAway(v float32) int {
	return int(math.Round(float64(v)))
}

// TypeInfo is a tensor type and the bytes of one of its rows.
type TypeInfo struct {
	Type     gguf.TensorType
	RowBytes int
}

// RowInfo describes rows of cols values of type t.
func RowInfo(t gguf.TensorType, cols int) (TypeInfo, error) {
	if !Supported(t) {
		return TypeInfo{}, fmt.Errorf("%w: %s", ErrUnsupported, t)
	}
	n, err := t.Bytes(uint64(cols))
	if err != nil {
		return TypeInfo{}, err
	}
	return TypeInfo{Type: t, RowBytes: int(n)}, nil
}
