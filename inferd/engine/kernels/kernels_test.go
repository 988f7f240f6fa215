package kernels

import (
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/slmops/slmops/inferd/gguf"
	"github.com/slmops/slmops/test/skip"
)

var allTypes = []gguf.TensorType{
	gguf.F32, gguf.F16, gguf.BF16, gguf.Q8_0, gguf.Q4_0, gguf.Q4_1, gguf.Q5_0, gguf.Q5_1,
	gguf.Q2_K, gguf.Q3_K, gguf.Q4_K, gguf.Q5_K, gguf.Q6_K,
}

func randomVector(r *rand.Rand, n int, scale float32) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64()) * scale
	}
	return x
}

// relErr is |a-b| / (|b| + floor).
func relErr(a, b, floor float64) float64 { return math.Abs(a-b) / (math.Abs(b) + floor) }

// rmsErr is the root mean square of a-b relative to the RMS of b.
func rmsErr(a, b []float32) float64 {
	var num, den float64
	for i := range a {
		d := float64(a[i] - b[i])
		num += d * d
		den += float64(b[i]) * float64(b[i])
	}
	return math.Sqrt(num / den)
}

// The round-trip error each format is expected to stay under (RMS relative
// to the signal, on Gaussian data): llama.cpp reports similar figures.
var roundTripTolerance = map[gguf.TensorType]float64{
	gguf.F32: 0, gguf.F16: 1e-3, gguf.BF16: 3e-3, gguf.Q8_0: 0.01, gguf.Q6_K: 0.04,
	gguf.Q5_0: 0.06, gguf.Q5_1: 0.055, gguf.Q5_K: 0.055, gguf.Q4_0: 0.13, gguf.Q4_1: 0.11, gguf.Q4_K: 0.12,
	// Round to nearest with min-max scales; llama.cpp's search for the
	// scales does better at 2 and 3 bits, which test models do not need.
	gguf.Q3_K: 0.21, gguf.Q2_K: 0.45,
}

func TestQuantizeRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	x := randomVector(r, 4*QK_K, 0.02)
	for _, typ := range allTypes {
		t.Run(typ.String(), func(t *testing.T) {
			enc, err := Quantize(nil, typ, x)
			if err != nil {
				t.Fatal(err)
			}
			if want, _ := typ.Bytes(uint64(len(x))); uint64(len(enc)) != want {
				t.Fatalf("encoded %d bytes; %s of %d values is %d", len(enc), typ, len(x), want)
			}
			got := make([]float32, len(x))
			if err := Dequantize(typ, enc, got); err != nil {
				t.Fatal(err)
			}
			if e := rmsErr(got, x); e > roundTripTolerance[typ] {
				t.Errorf("RMS round-trip error %.4f; want at most %.4f", e, roundTripTolerance[typ])
			} else {
				t.Logf("RMS round-trip error %.4f", e)
			}
		})
	}
}

// TestKnownBlocks decodes hand-built blocks whose values follow from ggml's
// layout definitions, so a layout mistake in both the quantizer and the
// dequantizer cannot hide behind a round trip.
func TestKnownBlocks(t *testing.T) {
	t.Run("Q4_0", func(t *testing.T) {
		blk := []byte{0, 0}
		h := F32ToF16(0.5)
		blk[0], blk[1] = byte(h), byte(h>>8)
		for j := range 16 {
			blk = append(blk, byte(j)|byte(15-j)<<4)
		}
		y := make([]float32, 32)
		_ = Dequantize(gguf.Q4_0, blk, y)
		// low nibbles are values 0..15, high nibbles values 16..31.
		if y[0] != -4 || y[15] != 3.5 || y[16] != 3.5 || y[31] != -4 {
			t.Errorf("Q4_0 decoded %v", y)
		}
	})
	t.Run("Q4_K", func(t *testing.T) {
		blk := make([]byte, BytesQ4_K)
		d, dmin := F32ToF16(1), F32ToF16(0.5)
		blk[0], blk[1], blk[2], blk[3] = byte(d), byte(d>>8), byte(dmin), byte(dmin>>8)
		sc := blk[4:16]
		// sub-block 0: scale 3, min 2; sub-block 5: scale 33 (6 bits: low 4
		// in sc[9], high 2 in the top of sc[1]), min 17 (low 4 in the top
		// nibble of sc[9], high 2 in the top of sc[5]).
		sc[0], sc[4] = 3, 2
		sc[9] = 33&0xF | (17&0xF)<<4
		sc[1] |= (33 >> 4) << 6
		sc[5] |= (17 >> 4) << 6
		q := blk[16:]
		q[0] = 7         // value 0 (low nibble, sub-block 0)
		q[64+1] = 9 << 4 // value 2*64+32+1 = 161 (high nibble, sub-block 5)
		y := make([]float32, QK_K)
		_ = Dequantize(gguf.Q4_K, blk, y)
		if y[0] != 1*3*7-0.5*2 || y[161] != 1*33*9-0.5*17 || y[1] != -0.5*2 {
			t.Errorf("Q4_K decoded y[0]=%v y[1]=%v y[161]=%v", y[0], y[1], y[161])
		}
	})
	t.Run("Q6_K", func(t *testing.T) {
		blk := make([]byte, BytesQ6_K)
		d := F32ToF16(0.25)
		blk[BytesQ6_K-2], blk[BytesQ6_K-1] = byte(d), byte(d>>8)
		ql, qh, sc := blk[:128], blk[128:192], blk[192:208]
		sc[0], sc[2], sc[8+5] = 2, byte(0xff), 4 // scales 2, -1, 4
		// value 0: q1 of l=0 (ql[0] low, qh[0] bits 0-1) = 0x3F -> 31
		ql[0] |= 0xF
		qh[0] |= 3
		// value 32: q2 of l=0 (ql[32] low, qh[0] bits 2-3) = 0 -> -32
		// value 128+64+17: second half, q3 of l=17 (ql[64+17] high, qh[32+17] bits 4-5), scale sc[8+1+4]
		ql[64+17] |= 5 << 4
		qh[32+17] |= 2 << 4 // q = 5 | 2<<4 = 37 -> 5
		y := make([]float32, QK_K)
		_ = Dequantize(gguf.Q6_K, blk, y)
		if y[0] != 0.25*2*31 || y[32] != 0.25*-1*-32 || y[128+64+17] != 0.25*4*5 {
			t.Errorf("Q6_K decoded y[0]=%v y[32]=%v y[209]=%v", y[0], y[32], y[128+64+17])
		}
	})
}

// TestKnownBlocksOfTheOtherTypes does for Q4_1, Q5_0, Q5_1, Q2_K, Q3_K,
// Q5_K and BF16 what TestKnownBlocks does: each block is built by hand from
// ggml's layout (ggml-common.h) and decoded.
func TestKnownBlocksOfTheOtherTypes(t *testing.T) {
	f16 := func(blk []byte, v float32) { h := F32ToF16(v); blk[0], blk[1] = byte(h), byte(h>>8) }
	decode := func(typ gguf.TensorType, blk []byte, n int) []float32 {
		y := make([]float32, n)
		if err := Dequantize(typ, blk, y); err != nil {
			t.Fatal(err)
		}
		return y
	}
	t.Run("Q4_1", func(t *testing.T) {
		blk := make([]byte, BytesQ4_1) // d, m, 16 bytes of nibbles
		f16(blk[0:], 0.5)
		f16(blk[2:], -1)
		for j := range 16 {
			blk[4+j] = byte(j) | byte(15-j)<<4
		}
		y := decode(gguf.Q4_1, blk, 32)
		if y[0] != -1 || y[15] != 6.5 || y[16] != 6.5 || y[31] != -1 {
			t.Errorf("Q4_1 decoded %v", y)
		}
	})
	t.Run("Q5_0", func(t *testing.T) {
		blk := make([]byte, BytesQ5_0) // d, 32-bit mask of fifth bits, nibbles
		f16(blk[0:], 0.5)
		blk[2] = 1 << 3                 // fifth bit of value 3
		blk[6+3] = 0x2 | 0x7<<4         // values 3 and 19
		y := decode(gguf.Q5_0, blk, 32) // (q | fifth<<4) - 16
		if y[3] != 0.5*(18-16) || y[19] != 0.5*(7-16) || y[0] != 0.5*-16 {
			t.Errorf("Q5_0 decoded y[0]=%v y[3]=%v y[19]=%v", y[0], y[3], y[19])
		}
	})
	t.Run("Q5_1", func(t *testing.T) {
		blk := make([]byte, BytesQ5_1) // d, m, mask, nibbles
		f16(blk[0:], 0.25)
		f16(blk[2:], 1)
		blk[4+2] = 1 << (21 - 16) // fifth bit of value 21
		blk[8+5] = 0x1 | 0xF<<4   // values 5 and 21
		y := decode(gguf.Q5_1, blk, 32)
		if y[5] != 0.25*1+1 || y[21] != 0.25*31+1 || y[0] != 1 {
			t.Errorf("Q5_1 decoded y[0]=%v y[5]=%v y[21]=%v", y[0], y[5], y[21])
		}
	})
	t.Run("Q2_K", func(t *testing.T) {
		blk := make([]byte, BytesQ2_K) // 16 scale|min<<4 bytes, 64 bytes of 2-bit quants, d, dmin
		f16(blk[80:], 1)
		f16(blk[82:], 0.5)
		blk[0] = 3 | 2<<4  // sub-block 0: scale 3, min 2
		blk[13] = 5 | 1<<4 // sub-block 13 (values 208-223): scale 5, min 1
		qs := blk[16:80]
		qs[0] = 2 // value 0
		// value 212 = 128 + 2*32 + 20: second half, byte 20, bits 4-5
		qs[32+20] = 3 << 4
		y := decode(gguf.Q2_K, blk, QK_K)
		if y[0] != 3*2-0.5*2 || y[1] != -0.5*2 || y[212] != 5*3-0.5*1 {
			t.Errorf("Q2_K decoded y[0]=%v y[1]=%v y[212]=%v", y[0], y[1], y[212])
		}
	})
	t.Run("Q3_K", func(t *testing.T) {
		blk := make([]byte, BytesQ3_K) // 32-byte high-bit mask, 64 bytes of low bits, 12 bytes of scales, d
		hm, qs, sc := blk[:32], blk[32:96], blk[96:108]
		f16(blk[108:], 0.5)
		// Scales are 6 bits with an offset of 32. Sub-block 0: 35 (3): low
		// nibble 3 in byte 0, high bits 2 in bits 0-1 of byte 8.
		sc[0] |= 3
		sc[8] |= 2
		// Sub-block 13: 30 (-2): low nibble 14 in the top of byte 5, high
		// bits 1 in bits 6-7 of byte 8+13%4.
		sc[5] |= 14 << 4
		sc[9] |= 1 << 6
		qs[0], hm[0] = 1, 1 // value 0: low bits 1, high bit set: q = 1
		// value 212 = 128 + 2*32 + 20: low bits 3 in bits 4-5 of byte 32+20,
		// high bit (bit 212/32 = 6 of hm[20]) clear: q = 3-4 = -1
		qs[32+20] = 3 << 4
		y := decode(gguf.Q3_K, blk, QK_K)
		if y[0] != 0.5*3*1 || y[1] != 0.5*3*-4 || y[212] != 0.5*-2*-1 {
			t.Errorf("Q3_K decoded y[0]=%v y[1]=%v y[212]=%v", y[0], y[1], y[212])
		}
	})
	t.Run("Q5_K", func(t *testing.T) {
		blk := make([]byte, BytesQ5_K) // d, dmin, Q4_K's 12 scale bytes, 32-byte fifth-bit mask, nibbles
		f16(blk[0:], 1)
		f16(blk[2:], 0.5)
		sc, qh, q := blk[4:16], blk[16:48], blk[48:]
		sc[0], sc[4] = 3, 2 // as in the Q4_K case
		sc[9] = 33&0xF | (17&0xF)<<4
		sc[1] |= (33 >> 4) << 6
		sc[5] |= (17 >> 4) << 6
		q[0], qh[0] = 7, 1 // value 0: 7 | 16
		// value 161 = 2*64 + 32 + 1: high nibble of byte 64+1, fifth bit 5
		// (161/32) of qh[1]
		q[64+1], qh[1] = 9<<4, 1<<5
		y := decode(gguf.Q5_K, blk, QK_K)
		if y[0] != 3*23-0.5*2 || y[1] != -0.5*2 || y[161] != 33*25-0.5*17 {
			t.Errorf("Q5_K decoded y[0]=%v y[1]=%v y[161]=%v", y[0], y[1], y[161])
		}
	})
	t.Run("BF16", func(t *testing.T) {
		for _, c := range []struct {
			f     float32
			bits  uint16
			exact bool // f is a bfloat16 value
		}{
			{1, 0x3f80, true}, {-2, 0xc000, true}, {3.140625, 0x4049, true},
			{float32(math.Inf(1)), 0x7f80, true},
			{1 + 1.0/256, 0x3f80, false}, // halfway: to even, down
			{1 + 3.0/256, 0x3f82, false}, // halfway: to even, up
		} {
			if got := F32ToBF16(c.f); got != c.bits {
				t.Errorf("F32ToBF16(%v) = %#x; want %#x", c.f, got, c.bits)
			}
			if got := BF16ToF32(c.bits); c.exact && got != c.f {
				t.Errorf("BF16ToF32(%#x) = %v; want %v", c.bits, got, c.f)
			}
		}
		if v := BF16ToF32(F32ToBF16(float32(math.NaN()))); !math.IsNaN(float64(v)) {
			t.Errorf("NaN became %v", v)
		}
		y := decode(gguf.BF16, []byte{0x80, 0x3f, 0x49, 0x40}, 2)
		if y[0] != 1 || y[1] != 3.140625 {
			t.Errorf("BF16 decoded %v", y)
		}
	})
}

// TestDotMatchesDequantizedDot: the fused kernels agree with dequantizing
// the row and taking a float dot product, within the error of quantizing
// the activation to 8 bits.
func TestDotMatchesDequantizedDot(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const n = 2 * QK_K
	for _, typ := range allTypes {
		t.Run(typ.String(), func(t *testing.T) {
			var worst float64
			for range 50 {
				w := randomVector(r, n, 0.05)
				x := randomVector(r, n, 1)
				enc, _ := Quantize(nil, typ, w)
				deq := make([]float32, n)
				_ = Dequantize(typ, enc, deq)
				var want float64
				var norm float64
				for i := range deq {
					want += float64(deq[i]) * float64(x[i])
					norm += math.Abs(float64(deq[i]) * float64(x[i]))
				}
				var a Act
				a.Set(x)
				got := float64(Dot(typ, enc, &a))
				// Relative to the sum of |terms|: the scale of the rounding.
				worst = max(worst, math.Abs(got-want)/norm)
			}
			limit := 0.01 // 8-bit activations
			switch typ {
			case gguf.F32:
				limit = 1e-5
			case gguf.F16: // the activation rounded to F16, as llama.cpp does
				limit = 5e-4
			}
			if worst > limit {
				t.Errorf("worst error %.2g of the sum of |terms|; want under %.2g", worst, limit)
			}
		})
	}
}

// TestMatVecMatchesDequantizedReference: a matrix-vector product, for one
// activation and for a batch, agrees with float64 dot products of the
// dequantized rows with the unquantized activation, on rows of every width
// a type allows: the 32-value block types also on odd block counts and on
// the 576- and 896-wide rows of SmolLM2 and Qwen2.5-0.5B, which
// llama-quantize writes in them because K-quants cannot hold them.
func TestMatVecMatchesDequantizedReference(t *testing.T) {
	r := rand.New(rand.NewPCG(18, 19))
	p := NewPool(2)
	defer p.Close()
	for _, typ := range allTypes {
		widths := []int{32, 96, 576, 896, 2048}
		if isK(typ) {
			widths = []int{256, 768, 2048}
		}
		for _, cols := range widths {
			t.Run(typ.String()+"/"+strconv.Itoa(cols), func(t *testing.T) {
				const rows, T = 19, 5
				enc, err := Quantize(nil, typ, randomVector(r, rows*cols, 0.05))
				if err != nil {
					t.Fatal(err)
				}
				deq := make([]float32, rows*cols)
				if err := Dequantize(typ, enc, deq); err != nil {
					t.Fatal(err)
				}
				info, err := RowInfo(typ, cols)
				if err != nil {
					t.Fatal(err)
				}
				acts := NewActs(T, cols)
				xs := make([][]float32, T)
				out := make([][]float32, T)
				for i := range T {
					xs[i] = randomVector(r, cols, 1)
					acts[i].Set(xs[i])
					out[i] = make([]float32, rows)
				}
				one := [][]float32{make([]float32, rows)}
				MatMul(p, info, enc, rows, acts[:1], one)
				MatMul(p, info, enc, rows, acts, out)
				limit := 0.01 // 8-bit activations
				switch typ {
				case gguf.F32, gguf.BF16:
					limit = 1e-5
				case gguf.F16: // the activation rounded to F16, as llama.cpp does
					limit = 5e-4
				}
				for i := range T {
					for row := range rows {
						var want, norm float64
						for c, w := range deq[row*cols : (row+1)*cols] {
							want += float64(w) * float64(xs[i][c])
							norm += math.Abs(float64(w) * float64(xs[i][c]))
						}
						got := []float32{out[i][row]}
						if i == 0 {
							got = append(got, one[0][row])
						}
						for _, g := range got {
							if e := math.Abs(float64(g)-want) / norm; e > limit {
								t.Fatalf("token %d row %d: %v, dequantized reference %v (error %.2g of the sum of |terms|; want under %.2g)", i, row, g, want, e, limit)
							}
						}
					}
				}
			})
		}
	}
}

// isK reports the K-quants, whose blocks are 256 values.
func isK(t gguf.TensorType) bool {
	_, err := t.Bytes(QA)
	return err != nil
}

func TestPoolCoversEveryIndexOnce(t *testing.T) {
	t.Run("sleeping", func(t *testing.T) { testPoolCoversEveryIndexOnce(t, NewPool(3)) })
	t.Run("spinning", func(t *testing.T) { testPoolCoversEveryIndexOnce(t, NewSpinningPool(3)) })
	t.Run("adaptive", func(t *testing.T) { testPoolCoversEveryIndexOnce(t, NewAdaptivePool(3)) })
	if NewPool(1000).Workers() > runtimeProcs() || NewSpinningPool(1000).Workers() > runtimeProcs() || NewAdaptivePool(1000).Workers() > runtimeProcs() {
		t.Error("a pool has more workers than GOMAXPROCS")
	}
}

func testPoolCoversEveryIndexOnce(t *testing.T, p *Pool) {
	defer p.Close()
	var wg sync.WaitGroup
	for range 4 { // concurrent callers share the pool
		wg.Add(1)
		go func() {
			defer wg.Done()
			seen := make([]atomic.Int32, 1000)
			p.Run(1000, 7, func(s, e int) {
				for i := s; i < e; i++ {
					seen[i].Add(1)
				}
			})
			for i := range seen {
				if seen[i].Load() != 1 {
					t.Errorf("index %d ran %d times", i, seen[i].Load())
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestSpinningPoolSleepsWhenIdle: the threads of a spinning pool poll only
// for SpinBudget after a product; an idle pool (between requests) uses no
// CPU.
func TestSpinningPoolSleepsWhenIdle(t *testing.T) {
	if runtimeProcs() < 2 {
		skip.Because(t, "the spinning pool's idle sleep: one CPU, so the pool has no helper threads", "a machine with two or more CPUs")
	}
	p := NewSpinningPool(2)
	defer p.Close()
	var sink atomic.Int64
	p.Run(64, 1, func(s, e int) { sink.Add(int64(e - s)) })
	if sink.Load() != 64 {
		t.Fatalf("the run covered %d of 64 indexes", sink.Load())
	}
	before := cpuTime(t)
	const idle = 200 * time.Millisecond
	time.Sleep(idle)
	used := cpuTime(t) - before
	// Polling for the whole window would use all of it.
	if used > idle/10 {
		t.Errorf("an idle spinning pool used %v of CPU in %v; its threads should be asleep after %v", used, idle, SpinBudget)
	}
}

func cpuTime(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// withPath runs f with the assembly kernels on or off.
func withPath(fast bool, f func()) {
	restore := setFast(fast)
	defer restore()
	f()
}

// TestRowKernelsAgreeOnEveryPath: the row-range kernels (AVX-512 quads,
// VNNI and AVX2 where the CPU has them, pure Go) give the same
// matrix-vector product.
func TestRowKernelsAgreeOnEveryPath(t *testing.T) {
	if !useAVX2 {
		skip.Because(t, "the multi-row kernels: none on this CPU (they are amd64 AVX2); MatMul uses the per-row kernels, which TestFastAndFallbackPathsAgree compares", "an amd64 machine with AVX2")
	}
	type mode struct {
		name              string
		avx2, vnni, quads bool
	}
	modes := []mode{{"go", false, false, false}, {"avx2", true, false, false}}
	if useVNNI {
		modes = append(modes, mode{"avx512vnni", true, true, false})
	}
	if useQuads {
		modes = append(modes, mode{"avx512", true, true, true})
	}
	saved := [3]bool{useAVX2, useVNNI, useQuads}
	defer func() { useAVX2, useVNNI, useQuads = saved[0], saved[1], saved[2] }()
	r := rand.New(rand.NewPCG(12, 13))
	p := NewPool(2)
	defer p.Close()
	for _, typ := range []gguf.TensorType{gguf.Q8_0, gguf.Q4_0, gguf.Q5_0, gguf.Q4_K, gguf.Q6_K} {
		for _, cols := range []int{32, 64, 96, 256, 576, 2048} { // block counts odd, even, multiples of 4
			if (typ == gguf.Q4_K || typ == gguf.Q6_K) && cols%QK_K != 0 {
				continue
			}
			const rows = 37
			enc, _ := Quantize(nil, typ, randomVector(r, rows*cols, 0.05))
			info, _ := RowInfo(typ, cols)
			x := randomVector(r, cols, 1)
			var want []float32
			for _, m := range modes {
				useAVX2, useVNNI, useQuads = m.avx2, m.vnni, m.quads
				var a Act
				a.Set(x) // the layout follows the kernels in use
				out := [][]float32{make([]float32, rows)}
				MatMul(p, info, enc, rows, []*Act{&a}, out)
				if want == nil {
					want = out[0]
					continue
				}
				for i := range want {
					// Summation orders differ: about float32 precision over 2048 terms.
					if relErr(float64(out[0][i]), float64(want[i]), 0.1) > 1e-4 {
						t.Fatalf("%s, %d columns, row %d: %s %v, go %v", typ, cols, i, m.name, out[0][i], want[i])
					}
				}
			}
		}
	}
}

func TestFastAndFallbackPathsAgree(t *testing.T) {
	if !hasFast() {
		skip.Because(t, "accelerated kernels against the fallback: this CPU has none ("+Accelerated()+")", "an amd64 machine with AVX2, or arm64 with the dot-product extension")
	}
	t.Logf("fast path: %s", Accelerated())
	r := rand.New(rand.NewPCG(5, 6))
	for _, typ := range []gguf.TensorType{gguf.Q8_0, gguf.Q4_0} {
		for _, blocks := range []int{1, 2, 3, 8, 63, 64} {
			w := randomVector(r, blocks*32, 0.05)
			x := randomVector(r, blocks*32, 1)
			enc, _ := Quantize(nil, typ, w)
			var a Act
			a.Set(x)
			var fast, slow float32
			withPath(true, func() { fast = Dot(typ, enc, &a) })
			withPath(false, func() { slow = Dot(typ, enc, &a) })
			if e := relErr(float64(fast), float64(slow), 1e-3); e > 1e-5 {
				t.Errorf("%s, %d blocks: avx2 %v, go %v", typ, blocks, fast, slow)
			}
		}
	}
	// The AVX2 Q4_0 kernels (one activation and four) and the fallback sum
	// in the same order (llama.cpp's x86 one), so they agree to the bit.
	if Accelerated() == "avx2" {
		const rows, blocks = 7, 16
		w := randomVector(r, rows*blocks*32, 0.05)
		enc, _ := Quantize(nil, gguf.Q4_0, w)
		acts := NewActs(4, blocks*32)
		for _, a := range acts {
			a.Set(randomVector(r, blocks*32, 1))
		}
		info, _ := RowInfo(gguf.Q4_0, blocks*32)
		for _, n := range []int{1, 4} {
			got, want := make([][]float32, n), make([][]float32, n)
			for i := range n {
				got[i], want[i] = make([]float32, rows), make([]float32, rows)
			}
			withPath(true, func() { MatRows(info, enc, acts[:n], got, 0, rows) })
			withPath(false, func() { MatRows(info, enc, acts[:n], want, 0, rows) })
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Q4_0 rows against %d activations, fallback -> avx2 (-want +got):\n%s", n, diff)
			}
		}
	}
	// Q5_0's kernel and fallback sum in the same order, so they agree to
	// the bit, in rows of 576 values (SmolLM2's, where llama-quantize
	// writes Q5_0 for Q4_K) as in others, with every fifth bit pattern.
	for _, blocks := range []int{1, 2, 18, 64} {
		const rows = 5
		w := randomVector(r, rows*blocks*32, 0.05)
		enc, _ := Quantize(nil, gguf.Q5_0, w)
		var a Act
		a.Set(randomVector(r, blocks*32, 1))
		info, _ := RowInfo(gguf.Q5_0, blocks*32)
		got, want := [][]float32{make([]float32, rows)}, [][]float32{make([]float32, rows)}
		withPath(true, func() { MatRows(info, enc, []*Act{&a}, got, 0, rows) })
		withPath(false, func() { MatRows(info, enc, []*Act{&a}, want, 0, rows) })
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Q5_0 rows, %d blocks, fallback -> %s (-want +got):\n%s", blocks, Accelerated(), diff)
		}
	}
	// Q4_K's kernel and fallback sum in the same order (eight lanes, added
	// at the end), so they agree to the bit.
	for _, blocks := range []int{1, 2, 6} {
		w := randomVector(r, blocks*QK_K, 0.05)
		x := randomVector(r, blocks*QK_K, 1)
		enc, _ := Quantize(nil, gguf.Q4_K, w)
		var a Act
		a.Set(x)
		var fast, slow float32
		withPath(true, func() { fast = Dot(gguf.Q4_K, enc, &a) })
		withPath(false, func() { slow = Dot(gguf.Q4_K, enc, &a) })
		if fast != slow {
			t.Errorf("Q4_K, %d super-blocks: avx2 %v, go %v", blocks, fast, slow)
		}
	}
}

func BenchmarkDot(b *testing.B) {
	r := rand.New(rand.NewPCG(8, 9))
	const n = 2048 // a TinyLlama row
	x := randomVector(r, n, 1)
	var a Act
	a.Set(x)
	for _, typ := range allTypes {
		enc, _ := Quantize(nil, typ, randomVector(r, n, 0.05))
		for _, fast := range []bool{false, true} {
			name := typ.String() + "/go"
			if fast {
				if !hasFast() || !(typ == gguf.Q8_0 || typ == gguf.Q4_0 || (typ == gguf.Q5_0 && runtime.GOARCH == "amd64")) {
					continue
				}
				name = typ.String() + "/" + Accelerated()
			}
			b.Run(name, func(b *testing.B) {
				withPath(fast, func() {
					b.SetBytes(int64(len(enc)))
					var sink float32
					for b.Loop() {
						sink += Dot(typ, enc, &a)
					}
					_ = sink
				})
			})
		}
	}
}

// TestMatMulOverABatchEqualsOneByOne: the four-activation kernels (used for
// batches laid out by NewActs) give what one activation at a time gives.
func TestMatMulOverABatchEqualsOneByOne(t *testing.T) {
	r := rand.New(rand.NewPCG(10, 11))
	p := NewPool(2)
	defer p.Close()
	const rows, cols, T = 40, 256, 7
	for _, typ := range allTypes { // Q8_0, Q4_0, Q4_K: four-token kernels; the others: row kernels over tiles
		w := randomVector(r, rows*cols, 0.05)
		enc, _ := Quantize(nil, typ, w)
		info, _ := RowInfo(typ, cols)
		batch := NewActs(T, cols)
		var single []*Act
		xs := make([][]float32, T)
		for i := range T {
			xs[i] = randomVector(r, cols, 1)
			batch[i].Set(xs[i])
			a := &Act{}
			a.Set(xs[i])
			single = append(single, a)
		}
		if qs, _, ok := strides(batch); !ok || qs != cols {
			t.Fatalf("NewActs did not lay the batch out evenly (stride %d)", qs)
		}
		want := make([][]float32, T)
		for i := range T {
			want[i] = make([]float32, rows)
		}
		withPath(false, func() { // one at a time, pure Go: the yardstick
			for i := range T {
				MatMul(p, info, enc, rows, single[i:i+1], want[i:i+1])
			}
		})
		// One at a time through the row kernels, for the kernels that sum
		// as they do.
		fast := make([][]float32, T)
		for i := range T {
			fast[i] = make([]float32, rows)
			MatMul(p, info, enc, rows, single[i:i+1], fast[i:i+1])
		}
		for _, vnni := range []bool{true, false} { // VNNI (where the CPU has it), then AVX2
			got := make([][]float32, T)
			for i := range T {
				got[i] = make([]float32, rows)
			}
			saved := useVNNI
			useVNNI = vnni && saved
			MatMul(p, info, enc, rows, batch, got)
			useVNNI = saved
			for i := range T {
				for j := range rows {
					if relErr(float64(got[i][j]), float64(want[i][j]), 0.1) > 1e-5 { // summation order differs
						t.Fatalf("%s (vnni %v): token %d row %d: batch %v, one by one %v", typ, vnni, i, j, got[i][j], want[i][j])
					}
					// Q4_K's four-token kernel sums each token as its row
					// kernel and the Go fallback do: to the bit.
					if typ == gguf.Q4_K && got[i][j] != want[i][j] {
						t.Fatalf("Q4_K: token %d row %d: batch %v, one by one %v", i, j, got[i][j], want[i][j])
					}
					// Q6_K's sums each token as its row kernel does.
					if typ == gguf.Q6_K && useAVX2 && got[i][j] != fast[i][j] {
						t.Fatalf("Q6_K: token %d row %d: batch %v, its row kernel %v", i, j, got[i][j], fast[i][j])
					}
				}
			}
		}
		if readsK4(typ) && useAVX2 && k4For(batch[:4]) == nil {
			t.Fatalf("%s: the batch did not go through the four-token kernel (no interleaved copy)", typ)
		}
	}
}

// TestTheFourTokenKCopyFollowsItsActivations: the interleaved copy that
// the four-token Q4_K and Q6_K kernels read is remade when an activation of
// its group is set again, or the group is another, and never read stale;
// and each token's result is what its row kernel gives, to the bit.
func TestTheFourTokenKCopyFollowsItsActivations(t *testing.T) {
	if !useAVX2 {
		skip.Because(t, "the four-token Q4_K and Q6_K kernels: none on this CPU (they are amd64 AVX2)", "an amd64 machine with AVX2")
	}
	r := rand.New(rand.NewPCG(30, 31))
	p := NewPool(2)
	defer p.Close()
	for _, typ := range []gguf.TensorType{gguf.Q4_K, gguf.Q6_K} {
		const rows, cols = 9, 1280 // five super-blocks
		enc, _ := Quantize(nil, typ, randomVector(r, rows*cols, 0.05))
		info, _ := RowInfo(typ, cols)
		acts := make([]*Act, 5)
		for i := range acts {
			acts[i] = &Act{}
			acts[i].Set(randomVector(r, cols, 1))
		}
		check := func(what string, group []*Act) {
			t.Helper()
			got := make([][]float32, len(group))
			for i := range got {
				got[i] = make([]float32, rows)
			}
			MatMul(p, info, enc, rows, group, got)
			for i, a := range group {
				for j := range rows {
					if want := Dot(typ, enc[j*info.RowBytes:(j+1)*info.RowBytes], a); got[i][j] != want {
						t.Fatalf("%s, %s: token %d row %d: %v, alone %v", typ, what, i, j, got[i][j], want)
					}
				}
			}
		}
		check("first", acts[:4])
		acts[2].Set(randomVector(r, cols, 1))
		if k4For(acts[:4]) != nil {
			t.Fatal("an activation of the group was set again, yet its interleaved copy still counts as current")
		}
		check("one activation set again", acts[:4])
		check("another group", acts[1:5])
		// acts[0] keeps its copy of acts[0:4], unchanged since; acts[1:5] has
		// its own, in acts[1].
		if k4For(acts[:4]) == nil || k4For(acts[1:5]) == nil {
			t.Fatal("two groups over the same activations: each should keep its own current copy")
		}
	}
}

func BenchmarkRows(b *testing.B) {
	r := rand.New(rand.NewPCG(14, 15))
	const rows, cols = 256, 2048 // 0.5-1 MiB of weights: from L2/L3
	var a Act
	x := randomVector(r, cols, 1)
	a.Set(x)
	p := NewPool(1)
	defer p.Close()
	for _, typ := range allTypes {
		enc, _ := Quantize(nil, typ, randomVector(r, rows*cols, 0.05))
		info, _ := RowInfo(typ, cols)
		out := [][]float32{make([]float32, rows)}
		// Only these types have row kernels; the others run in Go on every path.
		rowKernel := slices.Contains([]gguf.TensorType{gguf.Q8_0, gguf.Q4_0, gguf.Q4_K, gguf.Q6_K}, typ)
		for _, mode := range []string{"go", "avx2", "vnni", "avx512"} {
			if (mode != "go" && (!useAVX2 || !rowKernel)) || (mode == "vnni" && !useVNNI) || (mode == "avx512" && !useQuads) {
				continue
			}
			b.Run(typ.String()+"/"+mode, func(b *testing.B) {
				saved := [3]bool{useAVX2, useVNNI, useQuads}
				useAVX2, useVNNI, useQuads = mode != "go", mode == "vnni" || mode == "avx512", mode == "avx512"
				defer func() { useAVX2, useVNNI, useQuads = saved[0], saved[1], saved[2] }()
				a.Set(x) // the layout follows the kernels in use
				b.SetBytes(int64(len(enc)))
				for b.Loop() {
					MatMul(p, info, enc, rows, []*Act{&a}, out)
				}
			})
		}
	}
}

func TestFloatVectorKernelsAgreeWithPlainLoops(t *testing.T) {
	r := rand.New(rand.NewPCG(16, 17))
	for _, n := range []int{16, 64, 128, 100} { // 100: the Go path
		a, b := randomVector(r, n, 1), randomVector(r, n, 1)
		var want float64
		for i := range a {
			want += float64(a[i]) * float64(b[i])
		}
		if got := DotF32(a, b); relErr(float64(got), want, 1) > 1e-5 {
			t.Errorf("DotF32 of %d: %v, want %v", n, got, want)
		}
		y := slices.Clone(b)
		AxpyF32(0.5, a, y)
		for i := range y {
			if math.Abs(float64(y[i]-(b[i]+0.5*a[i]))) > 1e-6 {
				t.Fatalf("AxpyF32 of %d at %d: %v", n, i, y[i])
			}
		}
	}
}

func TestExpIsAccurate(t *testing.T) {
	var worst float64
	for x := float32(-87); x < 88; x += 0.01237 {
		want := math.Exp(float64(x))
		worst = max(worst, math.Abs(float64(Exp(x))-want)/want)
	}
	if worst > 3e-7 { // about two float32 ulps
		t.Errorf("worst relative error %.3g; want under 3e-7", worst)
	}
	// Below -87.3 the result is subnormal (as ggml's is), then 0.
	if Exp(-100) > 1e-40 || Exp(-150) != 0 || !math.IsInf(float64(Exp(100)), 1) || Exp(0) != 1 {
		t.Errorf("Exp(-100)=%v Exp(-150)=%v Exp(100)=%v Exp(0)=%v", Exp(-100), Exp(-150), Exp(100), Exp(0))
	}
}

func TestSincosIsAccurate(t *testing.T) {
	// Within 0.56 ulp of the exact values, as glibc's sincosf: at most one
	// float32 ulp from float64's rounded, and sin^2+cos^2 = 1.
	r := rand.New(rand.NewPCG(7, 8))
	for range 100000 {
		x := float32(r.NormFloat64() * 300)
		s, c := Sincos(x)
		ws, wc := math.Sincos(float64(x))
		for _, p := range [][2]float64{{float64(s), ws}, {float64(c), wc}} {
			if ulp := float64(math.Nextafter32(float32(math.Abs(p[1])), 2) - float32(math.Abs(p[1]))); math.Abs(p[0]-p[1]) > ulp {
				t.Fatalf("Sincos(%v) = %v, %v; want %v, %v", x, s, c, ws, wc)
			}
		}
	}
	if s, c := Sincos(0); s != 0 || c != 1 {
		t.Errorf("Sincos(0) = %v, %v", s, c)
	}
}

// BenchmarkActSet: quantizing one TinyLlama-wide activation, per copy
// (blocks32 is what Set made before the Q8_K copy existed).
func BenchmarkActSet(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	x := randomVector(r, 2048, 1)
	for _, f := range []struct {
		name string
		f    Formats
	}{{"blocks32", Blocks32}, {"blocks256", Blocks256}, {"all", AllFormats}} {
		b.Run(f.name, func(b *testing.B) {
			var a Act
			b.SetBytes(2048 * 4)
			for b.Loop() {
				a.SetFormats(x, f.f)
			}
		})
	}
}
