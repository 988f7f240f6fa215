package kernels

import (
	"encoding/binary"
	"math"
	"unsafe"

	"github.com/slmops/slmops/inferd/gguf"
)

// QA is the block size of a quantized activation for the 32-value block
// types.
const QA = 32

// Formats is a set of the quantized copies an Act holds: which ones a
// product needs follows from its weight type (FormatOf), and Set makes only
// those asked for, since quantizing is a pass over the activation.
type Formats uint8

const (
	// Blocks32 is llama.cpp's Q8_0 (and Q8_1's block sums), what it
	// multiplies the 32-value block types with: Q, D, Sum, S, C, N8.
	Blocks32 Formats = 1 << iota
	// Blocks256 is llama.cpp's Q8_K, what it multiplies the K-quants with:
	// KQ, KD, KB.
	Blocks256

	// AllFormats is every quantized copy.
	AllFormats = Blocks32 | Blocks256
)

// FormatOf is the quantized copy of an activation that products with
// weights of type t read: none for the float types, which take Act.F.
func FormatOf(t gguf.TensorType) Formats {
	switch t {
	case gguf.Q8_0, gguf.Q4_0, gguf.Q4_1, gguf.Q5_0, gguf.Q5_1:
		return Blocks32
	case gguf.Q2_K, gguf.Q3_K, gguf.Q4_K, gguf.Q5_K, gguf.Q6_K:
		return Blocks256
	}
	return 0
}

// Act is an activation vector prepared for dot products with weight rows of
// any type: the float values for F32 and F16 rows, and copies quantized to
// int8 for the quantized rows, whose dot products then run in integer
// arithmetic block by block, without dequantizing the row. The copies are
// llama.cpp's, rounded as its CPU backend rounds them, so that both engines
// sum the same integers: Q8_0 blocks of 32 values with an fp16 scale (and
// Q8_1's fp16 d*sum) for the 32-value block types, Q8_K blocks of 256
// values with a float32 scale and the sums of each 16 values for the
// K-quants.
type Act struct {
	F []float32
	// Q holds the 32-value blocks' int8 values; D their scales, fp16
	// values held as float32.
	Q []int8
	D []float32
	// Sum is the sum of each block's values; S is Q8_1's s, the fp16 of
	// d*Sum with d before its rounding to fp16 (what Q4_1 and Q5_1 read).
	Sum []int32
	S   []float32
	// C is 8 x Sum x D per block: what Q4_0's -8 offset costs, subtracted
	// once per block by the row kernels.
	C []float32
	// N8 is -8 x Sum per block, where the VNNI prompt kernels start their
	// integer accumulators.
	N8 []int32
	// P is the block-pair layout of the Q4_0 pair kernels (see
	// pairs_amd64.s), 128 bytes per two blocks; built only where they run.
	P []byte
	// P4 is the block-quad layout of the AVX-512 Q4_0 kernel (see
	// quads_amd64.s), 256 bytes per four blocks.
	P4 []byte
	// KQ holds the 256-value blocks' int8 values, KD their float32 scales
	// and KB the sums of each 16 values (Q8_K's bsums).
	KQ []int8
	KD []float32
	KB []int16

	// gen counts the SetFormats calls, so that a copy made from this
	// activation knows when it is stale.
	gen uint64
	// k4 is this activation's Q8_K copy and the next three's of a batch,
	// interleaved per super-block for the four-token K-quant kernels (k4Bytes
	// per super-block), made by prepareDot4 from k4of at their k4gen.
	k4    []byte
	k4of  [4]*Act
	k4gen [4]uint64
}

// k4Bytes is one super-block of Act.k4: four tokens' 256 int8 values,
// their four float32 scales and their 16 int16 sums of 16 values each (the
// kernels' generators read the same layout from hack/kernels/kasm.py).
const k4Bytes = 4*QK_K + 4*4 + 4*QK_K/16*2

// k4For is the interleaved copy of a[0:4] that a[0] holds, nil when it is
// not that of these four activations as they are now.
func k4For(a []*Act) []byte {
	if len(a) < 4 || len(a[0].k4) == 0 {
		return nil
	}
	x := a[0]
	for i := range 4 {
		if x.k4of[i] != a[i] || x.k4gen[i] != a[i].gen {
			return nil
		}
	}
	return x.k4
}

// prepareDot4 makes, before a product of type t runs over acts in
// parallel, the interleaved copies that its four-token kernel reads (Q4_K's
// and Q6_K's share them), one per group of four activations, unless they
// are current. It runs on one goroutine: the workers only read them.
func prepareDot4(t gguf.TensorType, acts []*Act) {
	if !readsK4(t) || !hasDot4(t) {
		return
	}
	for g := 0; g+4 <= len(acts); g += 4 {
		a := acts[g : g+4]
		if k4For(a) != nil {
			continue
		}
		nsb := len(a[0].KD)
		ok := nsb > 0
		for _, x := range a {
			ok = ok && len(x.KD) == nsb && len(x.KQ) == nsb*QK_K && len(x.KB) == nsb*QK_K/16
		}
		if !ok {
			a[0].k4 = a[0].k4[:0]
			continue
		}
		buf := a[0].k4
		if cap(buf) < nsb*k4Bytes {
			buf = make([]byte, nsb*k4Bytes)
		}
		buf = buf[:nsb*k4Bytes]
		for b := range nsb {
			blk := buf[b*k4Bytes : (b+1)*k4Bytes]
			for t, x := range a {
				q := x.KQ[b*QK_K : (b+1)*QK_K]
				copy(blk[QK_K*t:QK_K*(t+1)], unsafe.Slice((*byte)(unsafe.Pointer(&q[0])), QK_K))
				binary.LittleEndian.PutUint32(blk[4*QK_K+4*t:], math.Float32bits(x.KD[b]))
				sums := blk[4*QK_K+16+t*QK_K/16*2:]
				for i, v := range x.KB[b*QK_K/16 : (b+1)*QK_K/16] {
					binary.LittleEndian.PutUint16(sums[2*i:], uint16(v))
				}
			}
		}
		a[0].k4 = buf
		for i, x := range a {
			a[0].k4of[i], a[0].k4gen[i] = x, x.gen
		}
	}
}

// quadBytes is the size of one block quad in Act.P4.
const quadBytes = 256

// pairBytes is the size of one block pair in Act.P.
const pairBytes = 128

// NewActs returns t activations of n values whose quantized blocks lie
// evenly spaced in one allocation, so the four-activation kernels can walk
// them with one pointer and a stride. An Act later Set to more than n
// values moves to its own memory (and loses that).
func NewActs(t, n int) []*Act {
	nb := n / QA
	q, d, sum, c, n8 := make([]int8, t*n), make([]float32, t*nb), make([]int32, t*nb), make([]float32, t*nb), make([]int32, t*nb)
	acts := make([]*Act, t)
	for i := range acts {
		acts[i] = &Act{
			Q: q[i*n : (i+1)*n : (i+1)*n], D: d[i*nb : (i+1)*nb : (i+1)*nb],
			Sum: sum[i*nb : (i+1)*nb : (i+1)*nb], C: c[i*nb : (i+1)*nb : (i+1)*nb],
			N8: n8[i*nb : (i+1)*nb : (i+1)*nb],
		}
	}
	return acts
}

// strides reports the byte distances between consecutive activations'
// quantized values and scales when they are the same for all of a.
func strides(a []*Act) (qs, ds int, ok bool) {
	if len(a) < 2 || len(a[0].Q) == 0 {
		return 0, 0, false
	}
	qs = int(uintptr(unsafe.Pointer(&a[1].Q[0])) - uintptr(unsafe.Pointer(&a[0].Q[0])))
	ds = int(uintptr(unsafe.Pointer(&a[1].D[0])) - uintptr(unsafe.Pointer(&a[0].D[0])))
	for i := 1; i < len(a); i++ {
		if len(a[i].C) == 0 || len(a[i-1].C) == 0 || len(a[i].N8) == 0 || len(a[i-1].N8) == 0 ||
			int(uintptr(unsafe.Pointer(&a[i].C[0]))-uintptr(unsafe.Pointer(&a[i-1].C[0]))) != ds ||
			int(uintptr(unsafe.Pointer(&a[i].N8[0]))-uintptr(unsafe.Pointer(&a[i-1].N8[0]))) != ds {
			return 0, 0, false
		}
	}
	for i := 2; i < len(a); i++ {
		if len(a[i].Q) != len(a[0].Q) ||
			int(uintptr(unsafe.Pointer(&a[i].Q[0]))-uintptr(unsafe.Pointer(&a[i-1].Q[0]))) != qs ||
			int(uintptr(unsafe.Pointer(&a[i].D[0]))-uintptr(unsafe.Pointer(&a[i-1].D[0]))) != ds {
			return 0, 0, false
		}
	}
	return qs, ds, len(a[1].Q) == len(a[0].Q)
}

// Set prepares a for x with every quantized copy (SetFormats with
// AllFormats).
func (a *Act) Set(x []float32) { a.SetFormats(x, AllFormats) }

// SetFormats prepares a for x (len(x) a multiple of 32) with the quantized
// copies f, reusing a's memory; a keeps x itself, so x must not change while
// a is used. Blocks256 needs len(x) a multiple of 256 and is left out
// otherwise (no K-quant row has such a width). A copy left out is emptied,
// so a product that needs it fails loudly instead of reading stale values.
func (a *Act) SetFormats(x []float32, f Formats) {
	a.gen++
	a.F = x
	if f&Blocks32 != 0 {
		a.setBlocks32(x)
	} else {
		a.Q, a.D, a.Sum, a.S, a.C, a.N8, a.P, a.P4 = a.Q[:0], a.D[:0], a.Sum[:0], a.S[:0], a.C[:0], a.N8[:0], a.P[:0], a.P4[:0]
	}
	if f&Blocks256 != 0 && len(x)%QK_K == 0 {
		a.setBlocks256(x)
	} else {
		a.KQ, a.KD, a.KB = a.KQ[:0], a.KD[:0], a.KB[:0]
	}
}

// roundQ8 rounds v (|v| < 2^22) to the nearest integer, ties to even, as
// llama.cpp's nearest_int and its _mm256_round_ps do: adding 1.5 x 2^23
// leaves the integer in the low mantissa bits. The conversion of the sum
// keeps the compiler from fusing it with the caller's multiplication.
func roundQ8(v float32) int32 {
	return int32(math.Float32bits(float32(v+12582912))&0x7fffff) - 0x400000
}

// setBlocks32 quantizes x as llama.cpp's quantize_row_q8_0 and
// quantize_row_q8_1 do on x86: per 32 values, d = amax/127 stored as fp16,
// the values multiplied by 127/amax (not 1/d) and rounded to nearest even,
// and for Q8_1 s = fp16(d*sum) with d before its rounding.
func (a *Act) setBlocks32(x []float32) {
	n := len(x)
	nb := n / QA
	if cap(a.Q) < n || cap(a.D) < nb || cap(a.Sum) < nb || cap(a.C) < nb || cap(a.N8) < nb {
		a.Q = make([]int8, n)
		a.D = make([]float32, nb)
		a.Sum = make([]int32, nb)
		a.C = make([]float32, nb)
		a.N8 = make([]int32, nb)
	}
	if cap(a.S) < nb {
		a.S = make([]float32, nb)
	}
	a.Q, a.D, a.Sum, a.S, a.C, a.N8 = a.Q[:n], a.D[:nb], a.Sum[:nb], a.S[:nb], a.C[:nb], a.N8[:nb]
	t := f16table
	fast := quantQ8Fast(x, nb, a.Q, a.S, a.Sum)
	for b := range nb {
		var m float32
		var sum int32
		if fast {
			// The kernel left each block's amax in S and its sum in Sum.
			m, sum = a.S[b], a.Sum[b]
		} else {
			blk := x[b*QA : b*QA+QA : b*QA+QA]
			var amax uint32
			for _, v := range blk {
				amax = max(amax, math.Float32bits(v)&0x7fffffff)
			}
			m = math.Float32frombits(amax)
			id := float32(0)
			if m != 0 {
				id = 127 / m
			}
			q := a.Q[b*QA : b*QA+QA : b*QA+QA]
			for i, v := range blk {
				p := float32(v * id)
				r := int32(math.MinInt32) // x86's conversion of NaN or infinity (a block of subnormals has id = +Inf)
				if abs(p) < 0x1p22 {
					r = roundQ8(p)
				}
				q[i] = int8(max(r, -128)) // and the packs saturate it to -128, as llama.cpp's quants are
				sum += r                  // the sum wraps as VPADDD's does
			}
		}
		d := m / 127
		dh := t[F32ToF16(d)]
		a.D[b], a.Sum[b], a.C[b], a.N8[b] = dh, sum, 8*float32(sum)*dh, -8*sum
		a.S[b] = t[F32ToF16(d*float32(sum))]
	}
	if useQuads && nb%4 == 0 {
		a.setQuads()
		a.P = a.P[:0]
	} else if usePairs && nb%2 == 0 {
		a.setPairs()
	} else {
		a.P = a.P[:0]
	}
}

// setBlocks256 quantizes x as llama.cpp's quantize_row_q8_K does: per 256
// values, the value of largest magnitude (the first, on a tie) sets
// iscale = -127/max, each value becomes nearest(iscale*v) capped at 127,
// the scale is 1/iscale, and the sums of each 16 values are kept for the
// weights' minimums and offsets.
func (a *Act) setBlocks256(x []float32) {
	n := len(x)
	nb := n / QK_K
	if cap(a.KQ) < n || cap(a.KD) < nb || cap(a.KB) < n/16 {
		a.KQ = make([]int8, n)
		a.KD = make([]float32, nb)
		a.KB = make([]int16, n/16)
	}
	a.KQ, a.KD, a.KB = a.KQ[:n], a.KD[:nb], a.KB[:n/16]
	for b := range nb {
		blk := x[b*QK_K : b*QK_K+QK_K : b*QK_K+QK_K]
		q := a.KQ[b*QK_K : b*QK_K+QK_K : b*QK_K+QK_K]
		sums := a.KB[b*QK_K/16 : b*QK_K/16+QK_K/16 : b*QK_K/16+QK_K/16]
		// The largest magnitude, branch-free on the bits; then the first
		// value of that magnitude, for its sign.
		var amax uint32
		for _, v := range blk {
			amax = max(amax, math.Float32bits(v)&0x7fffffff)
		}
		var mx float32
		for _, v := range blk {
			if math.Float32bits(v)&0x7fffffff == amax {
				mx = v
				break
			}
		}
		if amax == 0 {
			a.KD[b] = 0
			clear(q)
			clear(sums)
			continue
		}
		iscale := -127 / mx
		for j := 0; j < QK_K; j += 16 {
			var s int32
			for i, v := range blk[j : j+16] {
				r := min(127, roundQ8(float32(iscale*v)))
				q[j+i] = int8(r)
				s += r
			}
			sums[j/16] = int16(s)
		}
		a.KD[b] = 1 / iscale
	}
}

// setQuads lays the quantized activation out in block quads.
func (a *Act) setQuads() {
	nb := len(a.D)
	size := nb / 4 * quadBytes
	if cap(a.P4) < size {
		a.P4 = make([]byte, size)
	}
	a.P4 = a.P4[:size]
	q := unsafe.Slice((*byte)(unsafe.Pointer(&a.Q[0])), len(a.Q))
	for qd := range nb / 4 {
		p := a.P4[qd*quadBytes : (qd+1)*quadBytes]
		clear(p[128:192])
		for k := range 4 {
			b := (4*qd + k) * QA
			copy(p[16*k:16*k+16], q[b:b+16])
			copy(p[64+16*k:64+16*k+16], q[b+16:b+32])
			binary.LittleEndian.PutUint32(p[128+16*k:], uint32(-8*a.Sum[4*qd+k]))
			d := math.Float32bits(a.D[4*qd+k])
			for i := range 4 {
				binary.LittleEndian.PutUint32(p[192+16*k+4*i:], d)
			}
		}
	}
}

// setPairs lays the quantized activation out in block pairs.
func (a *Act) setPairs() {
	nb := len(a.D)
	size := nb / 2 * pairBytes
	if cap(a.P) < size {
		a.P = make([]byte, size)
	}
	a.P = a.P[:size]
	q := unsafe.Slice((*byte)(unsafe.Pointer(&a.Q[0])), len(a.Q))
	for pr := range nb / 2 {
		b0, b1 := 2*pr*QA, (2*pr+1)*QA
		p := a.P[pr*pairBytes : (pr+1)*pairBytes]
		copy(p[0:16], q[b0:b0+16])
		copy(p[16:32], q[b1:b1+16])
		copy(p[32:48], q[b0+16:b0+32])
		copy(p[48:64], q[b1+16:b1+32])
		clear(p[64:96])
		binary.LittleEndian.PutUint32(p[64:], uint32(-8*a.Sum[2*pr]))
		binary.LittleEndian.PutUint32(p[80:], uint32(-8*a.Sum[2*pr+1]))
		d0, d1 := math.Float32bits(a.D[2*pr]), math.Float32bits(a.D[2*pr+1])
		for i := range 4 {
			binary.LittleEndian.PutUint32(p[96+4*i:], d0)
			binary.LittleEndian.PutUint32(p[112+4*i:], d1)
		}
	}
}

// readsK4 reports whether the four-token kernel of type t reads Act.k4
// (the K-quants') rather than evenly spaced Q8_0 blocks.
func readsK4(t gguf.TensorType) bool { return t == gguf.Q4_K || t == gguf.Q6_K }

// hasDot4 reports whether the four-activation kernels take type t.
func hasDot4(t gguf.TensorType) bool {
	return t == gguf.Q8_0 || t == gguf.Q4_0 || (readsK4(t) && useAVX2)
}

// Dot is the dot product of one weight row of type t (its raw bytes) with a.
func Dot(t gguf.TensorType, row []byte, a *Act) float32 {
	if v, ok := dotFast(t, row, a); ok {
		return v
	}
	if FormatOf(t) == Blocks32 && (len(a.Q) != len(a.F) || len(a.D)*QA != len(a.Q)) {
		panic("kernels: a product of " + t.String() + " with an activation that has no Q8_0 blocks (SetFormats without Blocks32)")
	}
	switch t {
	case gguf.F32:
		return dotF32(row, a.F)
	case gguf.F16:
		return dotF16(row, a.F)
	case gguf.BF16:
		return dotBF16(row, a.F)
	case gguf.Q8_0:
		return dotQ8_0(row, a)
	case gguf.Q4_0:
		return dotQ4_0(row, a)
	case gguf.Q4_1:
		return dotQ4_1(row, a)
	case gguf.Q5_0:
		return dotQ5_0(row, a)
	case gguf.Q5_1:
		return dotQ5_1(row, a)
	case gguf.Q2_K:
		return dotQ2_K(row, a)
	case gguf.Q3_K:
		return dotQ3_K(row, a)
	case gguf.Q4_K:
		return dotQ4_K(row, a)
	case gguf.Q5_K:
		return dotQ5_K(row, a)
	case gguf.Q6_K:
		return dotQ6_K(row, a)
	}
	panic("kernels: Dot of an unsupported type " + t.String())
}

// dotF32 reads the row's bytes as float32 in place (GGUF is little-endian,
// as are the platforms inferd is built for) and uses the row kernel, or the
// float kernel where there is none.
func dotF32(row []byte, x []float32) float32 {
	if len(x) == 0 {
		return 0
	}
	_ = row[4*len(x)-1]
	w := unsafe.Slice((*float32)(unsafe.Pointer(&row[0])), len(x))
	if v, ok := dotF32Row(w, x); ok {
		return v
	}
	return DotF32(w, x)
}

// dotF16 rounds x to F16 first, as llama.cpp does (its F16 products take
// an F16 copy of the activation), in the row kernel where it runs and here
// otherwise.
func dotF16(row []byte, x []float32) float32 {
	if v, ok := dotF16Row(row, x); ok {
		return v
	}
	var s0, s1 float32
	t := f16table
	i := 0
	for ; i+2 <= len(x); i += 2 {
		r := row[2*i : 2*i+4]
		s0 += t[uint16(r[0])|uint16(r[1])<<8] * t[F32ToF16(x[i])]
		s1 += t[uint16(r[2])|uint16(r[3])<<8] * t[F32ToF16(x[i+1])]
	}
	for ; i < len(x); i++ {
		s0 += t[binary.LittleEndian.Uint16(row[2*i:])] * t[F32ToF16(x[i])]
	}
	return s0 + s1
}

// dotBF16 takes the float activation, as dotF16 does; llama.cpp rounds the
// activation to bfloat16 first, which only loses precision.
func dotBF16(row []byte, x []float32) float32 {
	var s0, s1 float32
	i := 0
	for ; i+2 <= len(x); i += 2 {
		r := row[2*i : 2*i+4]
		s0 += math.Float32frombits((uint32(r[0])|uint32(r[1])<<8)<<16) * x[i]
		s1 += math.Float32frombits((uint32(r[2])|uint32(r[3])<<8)<<16) * x[i+1]
	}
	for ; i < len(x); i++ {
		s0 += BF16ToF32(binary.LittleEndian.Uint16(row[2*i:])) * x[i]
	}
	return s0 + s1
}

func dotQ8_0(row []byte, a *Act) float32 {
	var sum float32
	t := f16table
	for b := range a.D {
		blk := row[b*BytesQ8_0 : b*BytesQ8_0+BytesQ8_0]
		d := t[uint16(blk[0])|uint16(blk[1])<<8]
		q := blk[2:34]
		x := a.Q[b*QA : b*QA+QA]
		var s int32
		for i := 0; i < 32; i += 4 {
			s += int32(int8(q[i]))*int32(x[i]) + int32(int8(q[i+1]))*int32(x[i+1]) +
				int32(int8(q[i+2]))*int32(x[i+2]) + int32(int8(q[i+3]))*int32(x[i+3])
		}
		sum += d * a.D[b] * float32(s)
	}
	return sum
}

func dotQ4_0(row []byte, a *Act) float32 {
	var sum float32
	t := f16table
	for b := range a.D {
		blk := row[b*BytesQ4_0 : b*BytesQ4_0+BytesQ4_0]
		d := t[uint16(blk[0])|uint16(blk[1])<<8]
		q := blk[2:18]
		x := a.Q[b*QA : b*QA+QA]
		// sum((q-8)*x) = sum(q*x) - 8*sum(x): the offset folds into the
		// activation's block sum.
		var s int32
		for j := 0; j < 16; j += 2 {
			v0, v1 := q[j], q[j+1]
			s += int32(v0&0xF)*int32(x[j]) + int32(v0>>4)*int32(x[j+16]) +
				int32(v1&0xF)*int32(x[j+1]) + int32(v1>>4)*int32(x[j+17])
		}
		s -= 8 * a.Sum[b]
		// One fused multiply-add per block, as llama.cpp's x86 Q4_0
		// product (and the AVX2 kernel) sums.
		sum = fma32(float32(s), d*a.D[b], sum)
	}
	return sum
}

func dotQ4_1(row []byte, a *Act) float32 {
	var sum float32
	t := f16table
	for b := range a.D {
		blk := row[b*BytesQ4_1 : b*BytesQ4_1+BytesQ4_1]
		d := t[uint16(blk[0])|uint16(blk[1])<<8]
		m := t[uint16(blk[2])|uint16(blk[3])<<8]
		q := blk[4:20]
		x := a.Q[b*QA : b*QA+QA]
		var s int32
		for j := 0; j < 16; j += 2 {
			v0, v1 := q[j], q[j+1]
			s += int32(v0&0xF)*int32(x[j]) + int32(v0>>4)*int32(x[j+16]) +
				int32(v1&0xF)*int32(x[j+1]) + int32(v1>>4)*int32(x[j+17])
		}
		// sum((d*q + m)*x) = d*sum(q*x) + m*sum(x): the min meets the
		// activation's block sum, Q8_1's s = D*Sum in fp16.
		sum += d*a.D[b]*float32(s) + m*a.S[b]
	}
	return sum
}

func dotQ5_0(row []byte, a *Act) float32 {
	var sum float32
	t := f16table
	for b := range a.D {
		blk := row[b*BytesQ5_0 : b*BytesQ5_0+BytesQ5_0]
		d := t[uint16(blk[0])|uint16(blk[1])<<8]
		qh := binary.LittleEndian.Uint32(blk[2:6])
		q := blk[6:22]
		x := a.Q[b*QA : b*QA+QA]
		s := quants5Dot(q, qh, x)
		s -= 16 * a.Sum[b] // the -16 offset, as Q4_0's -8
		sum += d * a.D[b] * float32(s)
	}
	return sum
}

func dotQ5_1(row []byte, a *Act) float32 {
	var sum float32
	t := f16table
	for b := range a.D {
		blk := row[b*BytesQ5_1 : b*BytesQ5_1+BytesQ5_1]
		d := t[uint16(blk[0])|uint16(blk[1])<<8]
		m := t[uint16(blk[2])|uint16(blk[3])<<8]
		qh := binary.LittleEndian.Uint32(blk[4:8])
		q := blk[8:24]
		x := a.Q[b*QA : b*QA+QA]
		s := quants5Dot(q, qh, x)
		sum += d*a.D[b]*float32(s) + m*a.S[b]
	}
	return sum
}

// quants5Dot is sum(q*x) over a block of Q5_0 or Q5_1 quants (0..31): the
// nibbles q and the fifth bits qh. It builds four quants at a time in a
// uint32, one per byte, the fifth bits spread by a table: in BenchmarkDot
// this takes half the time of taking each bit apart.
func quants5Dot(q []byte, qh uint32, x []int8) int32 {
	q, x = q[:16], x[:32]
	var s int32
	for j := 0; j < 16; j += 4 {
		w := binary.LittleEndian.Uint32(q[j:])
		lo := w&0x0F0F0F0F | spread4[qh>>j&0xF]         // values j..j+3
		hi := w>>4&0x0F0F0F0F | spread4[qh>>(j+16)&0xF] // values j+16..j+19
		xl, xh := x[j:j+4], x[j+16:j+20]
		s += int32(lo&0xFF)*int32(xl[0]) + int32(lo>>8&0xFF)*int32(xl[1]) +
			int32(lo>>16&0xFF)*int32(xl[2]) + int32(lo>>24)*int32(xl[3]) +
			int32(hi&0xFF)*int32(xh[0]) + int32(hi>>8&0xFF)*int32(xh[1]) +
			int32(hi>>16&0xFF)*int32(xh[2]) + int32(hi>>24)*int32(xh[3])
	}
	return s
}

// spread4[b] has bit i of b at bit 4 of byte i: four fifth bits in place.
var spread4 = func() (t [16]uint32) {
	for b := range t {
		for i := range 4 {
			t[b] |= uint32(b>>i&1) << (8*i + 4)
		}
	}
	return t
}()

// k256 returns the activation's Q8_K copy, or panics when SetFormats left
// it out: a K-quant product cannot run without it.
func (a *Act) k256() ([]int8, []float32, []int16) {
	if len(a.KQ) != len(a.F) || len(a.KD)*QK_K != len(a.KQ) {
		panic("kernels: a K-quant product with an activation that has no Q8_K blocks (SetFormats without Blocks256)")
	}
	return a.KQ, a.KD, a.KB
}

// The K-quant products below sum, per 256-value super-block, the integer
// products of each sub-block times its integer scale (and the minimums
// times the activation's 16-value sums) into one int32 each, then scale
// once by the weight's and the activation's super-block scales: the same
// integers as llama.cpp's ggml_vec_dot_*_q8_K, in one float operation per
// super-block.

// dotQ2_K: sixteen 16-value sub-blocks, each with a 4-bit scale and a 4-bit
// minimum, whose term is the minimum times the activation's 16-value sum.
func dotQ2_K(row []byte, a *Act) float32 {
	xq, xd, xb := a.k256()
	var sum float32
	t := f16table
	for b := range xd {
		blk := row[b*BytesQ2_K : b*BytesQ2_K+BytesQ2_K]
		sc := blk[:QK_K/16]
		qs := blk[QK_K/16 : QK_K/16+QK_K/4]
		d := t[uint16(blk[BytesQ2_K-4])|uint16(blk[BytesQ2_K-3])<<8]
		dmin := t[uint16(blk[BytesQ2_K-2])|uint16(blk[BytesQ2_K-1])<<8]
		x := xq[b*QK_K : b*QK_K+QK_K]
		bs := xb[b*QK_K/16 : b*QK_K/16+QK_K/16]
		var sumi, mins int32
		for k := range QK_K / 32 { // values 32k..32k+31: sub-blocks 2k and 2k+1
			q := qs[k/4*32 : k/4*32+32]
			shift := 2 * (k % 4)
			xk := x[32*k : 32*k+32]
			var p0, p1 int32
			for l := range 16 {
				p0 += int32(q[l]>>shift&3) * int32(xk[l])
				p1 += int32(q[l+16]>>shift&3) * int32(xk[l+16])
			}
			s0, s1 := sc[2*k], sc[2*k+1]
			sumi += int32(s0&0xF)*p0 + int32(s1&0xF)*p1
			mins += int32(s0>>4)*int32(bs[2*k]) + int32(s1>>4)*int32(bs[2*k+1])
		}
		sum += xd[b] * (d*float32(sumi) - dmin*float32(mins))
	}
	return sum
}

func dotQ3_K(row []byte, a *Act) float32 {
	xq, xd, _ := a.k256()
	var sum float32
	t := f16table
	for b := range xd {
		blk := row[b*BytesQ3_K : b*BytesQ3_K+BytesQ3_K]
		hm := blk[:QK_K/8]
		qs := blk[QK_K/8 : QK_K/8+QK_K/4]
		sc := blk[QK_K/8+QK_K/4 : QK_K/8+QK_K/4+12]
		d := t[uint16(blk[BytesQ3_K-2])|uint16(blk[BytesQ3_K-1])<<8]
		x := xq[b*QK_K : b*QK_K+QK_K]
		var sumi int32
		for k := range QK_K / 32 {
			q := qs[k/4*32 : k/4*32+32]
			shift := 2 * (k % 4)
			xk := x[32*k : 32*k+32]
			// q = low two bits - 4, plus 4 where the mask bit is set.
			var p0, p1 int32
			for l := range 16 {
				p0 += (int32(q[l]>>shift&3) - 4 + 4*int32(hm[l]>>k&1)) * int32(xk[l])
				p1 += (int32(q[l+16]>>shift&3) - 4 + 4*int32(hm[l+16]>>k&1)) * int32(xk[l+16])
			}
			sumi += scaleK3(2*k, sc)*p0 + scaleK3(2*k+1, sc)*p1
		}
		sum += xd[b] * d * float32(sumi)
	}
	return sum
}

// sums32 is the activation's sum over 32 values from its 16-value sums.
func sums32(bs []int16, j int) int32 { return int32(bs[2*j]) + int32(bs[2*j+1]) }

// dotQ4_K sums as the AVX2 row kernel (q4k_amd64.s) does, so that the two
// agree to the bit: eight lanes, lane i holding, per super-block, the
// integer sum of values 4i..4i+3 of each 32-value run times its sub-block
// scale (exact), scaled by d*xd into the lane's float sum with one fused
// multiply-add; lane l's mins sum holds sub-block l's min times the
// activation's sum over it, scaled by dmin*xd. The lanes' differences are
// added at the end, pairwise as the kernel adds them.
func dotQ4_K(row []byte, a *Act) float32 {
	xq, xd, xb := a.k256()
	var acc, accMins [8]float32
	t := f16table
	for b := range xd {
		blk := row[b*BytesQ4_K : b*BytesQ4_K+BytesQ4_K]
		d := t[uint16(blk[0])|uint16(blk[1])<<8] * xd[b]
		dmin := t[uint16(blk[2])|uint16(blk[3])<<8] * xd[b]
		sc := blk[4:16]
		q := blk[16:BytesQ4_K]
		x := xq[b*QK_K : b*QK_K+QK_K]
		bs := xb[b*QK_K/16 : b*QK_K/16+QK_K/16]
		var lanes [8]int32
		for j := range 4 { // 64 values: two sub-blocks share 32 bytes
			s1, _ := scaleMinK4(2*j, sc)
			s2, _ := scaleMinK4(2*j+1, sc)
			qq := q[32*j : 32*j+32]
			x1 := x[64*j : 64*j+32]
			x2 := x[64*j+32 : 64*j+64]
			for i := range lanes {
				var lo, hi int32
				for l := 4 * i; l < 4*i+4; l++ {
					lo += int32(qq[l]&0xF) * int32(x1[l])
					hi += int32(qq[l]>>4) * int32(x2[l])
				}
				lanes[i] += int32(s1)*lo + int32(s2)*hi
			}
		}
		for i, v := range lanes {
			acc[i] = fma32(float32(v), d, acc[i])
			_, m := scaleMinK4(i, sc)
			accMins[i] = fma32(float32(int32(m)*sums32(bs, i)), dmin, accMins[i])
		}
	}
	var v [8]float32
	for i := range v {
		v[i] = acc[i] - accMins[i]
	}
	v0, v1, v2, v3 := v[0]+v[4], v[1]+v[5], v[2]+v[6], v[3]+v[7]
	return (v0 + v2) + (v1 + v3)
}

// fma32 is x*y+z rounded once to float32, as an FMA instruction computes
// it (through float64, whose one extra rounding almost never changes the
// float32 result: x*y is exact there).
func fma32(x, y, z float32) float32 {
	return float32(math.FMA(float64(x), float64(y), float64(z)))
}

func dotQ5_K(row []byte, a *Act) float32 {
	xq, xd, xb := a.k256()
	var sum float32
	t := f16table
	for b := range xd {
		blk := row[b*BytesQ5_K : b*BytesQ5_K+BytesQ5_K]
		d := t[uint16(blk[0])|uint16(blk[1])<<8]
		dmin := t[uint16(blk[2])|uint16(blk[3])<<8]
		sc := blk[4:16]
		qh := blk[16 : 16+QK_K/8]
		q := blk[16+QK_K/8 : BytesQ5_K]
		x := xq[b*QK_K : b*QK_K+QK_K]
		bs := xb[b*QK_K/16 : b*QK_K/16+QK_K/16]
		var sumi, mins int32
		for j := range 4 { // as Q4_K, with fifth bits 2j and 2j+1 of qh
			s1, m1 := scaleMinK4(2*j, sc)
			s2, m2 := scaleMinK4(2*j+1, sc)
			qq := q[32*j : 32*j+32]
			x1 := x[64*j : 64*j+32]
			x2 := x[64*j+32 : 64*j+64]
			var d1, d2 int32
			for l := range 32 {
				v, h := qq[l], qh[l]>>(2*j)
				d1 += (int32(v&0xF) | int32(h&1)<<4) * int32(x1[l])
				d2 += (int32(v>>4) | int32(h&2)<<3) * int32(x2[l])
			}
			sumi += int32(s1)*d1 + int32(s2)*d2
			mins += int32(m1)*sums32(bs, 2*j) + int32(m2)*sums32(bs, 2*j+1)
		}
		sum += xd[b] * (d*float32(sumi) - dmin*float32(mins))
	}
	return sum
}

func dotQ6_K(row []byte, a *Act) float32 {
	xq, xd, _ := a.k256()
	var sum float32
	t := f16table
	for b := range xd {
		blk := row[b*BytesQ6_K : b*BytesQ6_K+BytesQ6_K]
		ql := blk[:QK_K/2]
		qh := blk[QK_K/2 : QK_K/2+QK_K/4]
		sc := blk[QK_K/2+QK_K/4 : QK_K/2+QK_K/4+QK_K/16]
		d := t[uint16(blk[BytesQ6_K-2])|uint16(blk[BytesQ6_K-1])<<8]
		x := xq[b*QK_K : b*QK_K+QK_K]
		var sumi int32
		for n := 0; n < QK_K; n += 128 {
			l0, h0, s0 := ql[n/2:n/2+64], qh[n/4:n/4+32], sc[n/16:n/16+8]
			// The four 32-value runs of this half start at n, n+32, n+64,
			// n+96.
			x1, x2, x3, x4 := x[n:n+32], x[n+32:n+64], x[n+64:n+96], x[n+96:n+128]
			for half := range 2 { // 16-value sub-blocks
				var p1, p2, p3, p4 int32
				for l := 16 * half; l < 16*half+16; l++ {
					h := h0[l]
					q1 := int32((l0[l]&0xF)|(h&3)<<4) - 32
					q2 := int32((l0[l+32]&0xF)|((h>>2)&3)<<4) - 32
					q3 := int32((l0[l]>>4)|((h>>4)&3)<<4) - 32
					q4 := int32((l0[l+32]>>4)|((h>>6)&3)<<4) - 32
					p1 += q1 * int32(x1[l])
					p2 += q2 * int32(x2[l])
					p3 += q3 * int32(x3[l])
					p4 += q4 * int32(x4[l])
				}
				sumi += int32(int8(s0[half]))*p1 + int32(int8(s0[half+2]))*p2 +
					int32(int8(s0[half+4]))*p3 + int32(int8(s0[half+6]))*p4
			}
		}
		sum += xd[b] * d * float32(sumi)
	}
	return sum
}
