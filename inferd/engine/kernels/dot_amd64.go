package kernels

import (
	"unsafe"

	"golang.org/x/sys/cpu"

	"github.com/slmops/slmops/inferd/gguf"
)

// useAVX2 selects the assembly kernels and useVNNI their AVX512-VNNI
// variants (VPDPBUSD on 256-bit registers); tests turn them off to compare.
var (
	useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA
	useVNNI = useRows && cpu.X86.HasAVX512VNNI && cpu.X86.HasAVX512VL
	// useRows: the row kernels also need F16C.
	useRows = useAVX2 && cpu.X86.HasF16C
	// usePairs: the Q4_0 pair kernel (and Act.P) is in use (with VNNI).
	usePairs = useVNNI
	// useQuads: the AVX-512 Q4_0 quad kernel (and Act.P4) is in use.
	useQuads = useVNNI && cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW
)

//go:noescape
func quadsQ4_0AVX512(w *byte, rowBytes int, nrows int, xp *byte, nquads int, out *float32)

//go:noescape
func pairsQ4_0VNNI(w *byte, rowBytes int, nrows int, xp *byte, npairs int, out *float32)

//go:noescape
func rowsQ8_0AVX2(w *byte, rowBytes int, nrows int, xq *int8, xd *float32, xc *float32, nb int, table *float32, out *float32)

//go:noescape
func rows4Q4_0AVX2(w *byte, rowBytes int, nquads int, xq *int8, xd *float32, xn8 *int32, nb int, out *float32)

//go:noescape
func dot4Q4_0SeqAVX2(row *byte, xq *int8, xd *float32, xn8 *int32, nb int, qstride int, dstride int, out *float32)

//go:noescape
func rowsQ8_0VNNI(w *byte, rowBytes int, nrows int, xq *int8, xd *float32, xc *float32, nb int, table *float32, out *float32)

//go:noescape
func rowsQ4_0VNNI(w *byte, rowBytes int, nrows int, xq *int8, xd *float32, xc *float32, nb int, table *float32, out *float32)

// rowsFast computes out[i] = row i of w · a for the rows of w (rowBytes
// each) in one call, when the CPU and the type allow.
func rowsFast(t gguf.TensorType, w []byte, rowBytes int, a *Act, out []float32) bool {
	if !useAVX2 || !useRows || len(out) == 0 {
		return false
	}
	nb := len(a.D)
	_ = w[len(out)*rowBytes-1]
	switch t {
	case gguf.Q8_0:
		if nb*BytesQ8_0 != rowBytes {
			return false
		}
		if useVNNI {
			rowsQ8_0VNNI(&w[0], rowBytes, len(out), &a.Q[0], &a.D[0], &a.C[0], nb, &f16table[0], &out[0])
		} else {
			rowsQ8_0AVX2(&w[0], rowBytes, len(out), &a.Q[0], &a.D[0], &a.C[0], nb, &f16table[0], &out[0])
		}
	case gguf.Q4_0:
		if nb*BytesQ4_0 != rowBytes {
			return false
		}
		if useQuads && len(a.P4) == nb/4*quadBytes && nb%4 == 0 {
			quadsQ4_0AVX512(&w[0], rowBytes, len(out), &a.P4[0], nb/4, &out[0])
			return true
		}
		if usePairs && len(a.P) == nb/2*pairBytes && nb%2 == 0 {
			pairsQ4_0VNNI(&w[0], rowBytes, len(out), &a.P[0], nb/2, &out[0])
			return true
		}
		if useVNNI {
			rowsQ4_0VNNI(&w[0], rowBytes, len(out), &a.Q[0], &a.D[0], &a.C[0], nb, &f16table[0], &out[0])
			return true
		}
		// AVX2: four rows at a time, summed as llama.cpp sums Q4_0 on
		// AVX2 (see q40_amd64.s); the last rows of a range that is not a
		// multiple of four take the fallback, which sums alike.
		if len(a.N8) != nb {
			return false
		}
		quads := len(out) / 4
		if quads > 0 {
			rows4Q4_0AVX2(&w[0], rowBytes, quads, &a.Q[0], &a.D[0], &a.N8[0], nb, &out[0])
		}
		for r := 4 * quads; r < len(out); r++ {
			out[r] = dotQ4_0(w[r*rowBytes:(r+1)*rowBytes], a)
		}
	case gguf.Q5_0:
		if nb*BytesQ5_0 != rowBytes || len(a.Sum) != nb {
			return false
		}
		rowsQ5_0AVX2(&w[0], rowBytes, len(out), &a.Q[0], &a.D[0], &a.Sum[0], nb, &f16table[0], &out[0])
	case gguf.Q4_K:
		nsb := len(a.KD)
		if nsb == 0 || len(a.KQ) != nsb*QK_K || nsb*BytesQ4_K != rowBytes {
			return false
		}
		rowsQ4_KAVX2(&w[0], rowBytes, len(out), &a.KQ[0], &a.KD[0], &a.KB[0], nsb, &out[0])
	case gguf.Q6_K:
		nsb := len(a.KD)
		if nsb == 0 || len(a.KQ) != nsb*QK_K || nsb*BytesQ6_K != rowBytes {
			return false
		}
		rowsQ6_KAVX2(&w[0], rowBytes, len(out), &a.KQ[0], &a.KD[0], &a.KB[0], nsb, &out[0])
	default:
		return false
	}
	return true
}

// rowsQ5_0AVX2 computes nrows rows of Q5_0 against one Q8_0 activation,
// summed as dotQ5_0 (see q50_amd64.s).
//
//go:noescape
func rowsQ5_0AVX2(w *byte, rowBytes int, nrows int, xq *int8, xd *float32, xsum *int32, nb int, tbl *float32, out *float32)

// The K-quant row kernels read the activation's Q8_K copy (Act.KQ, KD, KB).

//go:noescape
func rowsQ6_KAVX2(w *byte, rowBytes int, nrows int, xq *int8, xd *float32, xb *int16, nsb int, out *float32)

//go:noescape
func rowsQ4_KAVX2(w *byte, rowBytes int, nrows int, xq *int8, xd *float32, xb *int16, nsb int, out *float32)

// dotFast is one row's dot product through the row kernels, when the CPU
// and the type allow: one kernel per type serves single rows and ranges.
func dotFast(t gguf.TensorType, row []byte, a *Act) (float32, bool) {
	var out [1]float32
	if !rowsFast(t, row, len(row), a, out[:]) {
		return 0, false
	}
	return out[0], true
}

// Accelerated names the fast paths in use, for logs and benchmarks.
func Accelerated() string {
	if useQuads {
		return "avx512"
	}
	if useVNNI {
		return "avx512vnni"
	}
	if useAVX2 {
		return "avx2"
	}
	return "go"
}

//go:noescape
func dot4Q8_0AVX2(row *byte, xq *int8, xd *float32, xc *float32, nb int, qstride int, dstride int, out *float32)

//go:noescape
func dot4Q8_0VNNI(row *byte, xq *int8, xd *float32, xc *float32, nb int, qstride int, dstride int, out *float32)

//go:noescape
func dot4Q4_0VNNI(row *byte, xq *int8, xd *float32, xc *float32, nb int, qstride int, dstride int, out *float32)

// dot4Func is a four-activation kernel bound to a batch's layout.
type dot4Func func(row []byte, a []*Act, out *[4]float32) bool

// dot4Kernel returns the kernel for rows of type t against the four
// activations a, or nil. Its checks (CPU, type, even spacing) are done
// once here, not once per row.
func dot4Kernel(t gguf.TensorType, a []*Act) dot4Func {
	if readsK4(t) {
		return dot4K(t, a)
	}
	if !useRows || len(a) < 4 || len(a[0].D) == 0 {
		return nil
	}
	qs, ds, ok := strides(a[:4])
	if !ok {
		return nil
	}
	nb := len(a[0].D)
	var fn func(row *byte, xq *int8, xd *float32, xc *float32, nb int, qstride int, dstride int, out *float32)
	var need int
	xc := func(x *Act) *float32 { return &x.C[0] }
	switch {
	case t == gguf.Q8_0 && useVNNI:
		fn, need = dot4Q8_0VNNI, nb*BytesQ8_0
	case t == gguf.Q8_0:
		fn, need = dot4Q8_0AVX2, nb*BytesQ8_0
	case t == gguf.Q4_0 && useVNNI:
		// This kernel reads -8*sum as int32 where the others read C.
		fn, need = dot4Q4_0VNNI, nb*BytesQ4_0
		xc = func(x *Act) *float32 { return (*float32)(unsafe.Pointer(&x.N8[0])) }
	case t == gguf.Q4_0:
		fn, need = func(row *byte, xq *int8, xd *float32, xc *float32, nb int, qs int, ds int, out *float32) {
			dot4Q4_0SeqAVX2(row, xq, xd, (*int32)(unsafe.Pointer(xc)), nb, qs, ds, out)
		}, nb*BytesQ4_0
		xc = func(x *Act) *float32 { return (*float32)(unsafe.Pointer(&x.N8[0])) }
	default:
		return nil
	}
	return func(row []byte, a []*Act, out *[4]float32) bool {
		if len(row) < need {
			return false
		}
		x := a[0]
		fn(&row[0], &x.Q[0], &x.D[0], xc(x), nb, qs, ds, &out[0])
		return true
	}
}

// dot4Q4_KAVX2 and dot4Q6_KAVX2 compute one Q4_K or Q6_K row against four
// activations interleaved as Act.k4 (see q4k4_amd64.s, q6k4_amd64.s).
//
//go:noescape
func dot4Q4_KAVX2(row *byte, x *byte, nsb int, out *float32)

//go:noescape
func dot4Q6_KAVX2(row *byte, x *byte, nsb int, out *float32)

// dot4K is the four-token kernel of K-quant type t bound to a group's
// interleaved copy, or nil when prepareDot4 did not make it (or it is
// stale).
func dot4K(t gguf.TensorType, a []*Act) dot4Func {
	if !useRows || len(a) < 4 {
		return nil
	}
	k4 := k4For(a)
	if k4 == nil {
		return nil
	}
	nsb := len(k4) / k4Bytes
	fn, need := dot4Q4_KAVX2, nsb*BytesQ4_K
	if t == gguf.Q6_K {
		fn, need = dot4Q6_KAVX2, nsb*BytesQ6_K
	}
	return func(row []byte, _ []*Act, out *[4]float32) bool {
		if len(row) < need {
			return false
		}
		fn(&row[0], &k4[0], nsb, &out[0])
		return true
	}
}

//go:noescape
func dotF32RowAVX2(a, b *float32, n int) float32

//go:noescape
func dotF16RowAVX2(w *uint16, x *float32, n int) float32

// dotF16Row is an F16 weight row's product with x rounded to F16, summed as
// llama.cpp's tinyBLAS sums it on AVX2, when the CPU and the length allow.
func dotF16Row(row []byte, x []float32) (float32, bool) {
	if !useRows || len(x)%8 != 0 || len(x) == 0 {
		return 0, false
	}
	_ = row[2*len(x)-1]
	return dotF16RowAVX2((*uint16)(unsafe.Pointer(&row[0])), &x[0], len(x)), true
}

// dotF32Fast and axpyF32Fast are the attention kernels over one row (a
// product by 1 and a weight of 1 are exact).
func dotF32Fast(a, b []float32) float32 {
	var out float32
	scaledDotsF32AVX2(&a[0], &b[0], 0, len(a), 1, 1, &out)
	return out
}

// dotF32Row is an F32 weight row's product, summed as llama.cpp's tinyBLAS
// sums it on AVX2 (one eight-lane accumulator), when the CPU and the length
// allow.
func dotF32Row(w, x []float32) (float32, bool) {
	if !useAVX2 || len(x)%8 != 0 || len(x) == 0 {
		return 0, false
	}
	_ = w[len(x)-1]
	return dotF32RowAVX2(&w[0], &x[0], len(x)), true
}

func axpyF32Fast(alpha float32, x, y []float32) {
	one := float32(1)
	axpyLanesF32AVX2(&one, alpha, &x[0], 0, len(x), 1, &y[0], 0)
}

// setFast turns the assembly kernels on (as the CPU allows) or off, and
// returns what restores them; for tests that compare paths.
func setFast(on bool) func() {
	a, v, r, q := useAVX2, useVNNI, useRows, useQuads
	useAVX2, useVNNI, useRows, useQuads = on && a, on && v, on && r, on && q
	return func() { useAVX2, useVNNI, useRows, useQuads = a, v, r, q }
}

// hasFast reports whether this CPU runs any assembly kernels.
func hasFast() bool { return useAVX2 }

// expShiftedAVX2 and siluMulAVX2 compute ggml's vectorised e^x on eight
// lanes at a time (see exp_amd64.s); n is a multiple of 8.
//
//go:noescape
func expShiftedAVX2(x *float32, n int, shift float32)

//go:noescape
func siluMulAVX2(gate, up *float32, n int)

func expShiftedFast(x []float32, shift float32) { expShiftedAVX2(&x[0], len(x), shift) }
func siluMulFast(g, u []float32)                { siluMulAVX2(&g[0], &u[0], len(g)) }

//go:noescape
func scaledDotsF32AVX2(q, k *float32, stride int, n int, rows int, scale float32, out *float32)

//go:noescape
func axpyLanesF32AVX2(w *float32, alpha float32, x *float32, stride int, n int, rows int, acc *float32, lane int)

func scaledDotsFast(q, rows []float32, stride int, scale float32, out []float32) {
	scaledDotsF32AVX2(&q[0], &rows[0], stride, len(q), len(out), scale, &out[0])
}

func axpyLanesFast(w []float32, alpha float32, rows []float32, stride int, acc []float32, lane int) {
	axpyLanesF32AVX2(&w[0], alpha, &rows[0], stride, len(acc)/AttnLanes, len(w), &acc[0], lane)
}

//go:noescape
func quantQ8_0AVX2(x *float32, nb int, q *int8, amax *uint32, sum *int32)

// quantQ8Fast quantizes nb blocks of x into q as setBlocks32 does, leaving
// each block's largest magnitude in amax and its sum in sum, when the CPU
// allows.
func quantQ8Fast(x []float32, nb int, q []int8, amax []float32, sum []int32) bool {
	if !useAVX2 || nb == 0 {
		return false
	}
	_, _, _, _ = x[nb*QA-1], q[nb*QA-1], amax[nb-1], sum[nb-1]
	quantQ8_0AVX2(&x[0], nb, &q[0], (*uint32)(unsafe.Pointer(&amax[0])), &sum[0])
	return true
}
