package kernels

import (
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"
)

// fmaExact is x*y+z rounded once to float32, as a float32 fused
// multiply-add rounds it (big.Float holds the exact product and sum).
func fmaExact(x, y, z float32) float32 {
	for _, v := range []float32{x, y, z} {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return float32(math.FMA(float64(x), float64(y), float64(z)))
		}
	}
	const prec = 1200
	p := new(big.Float).SetPrec(prec).SetFloat64(float64(x))
	p.Mul(p, new(big.Float).SetPrec(prec).SetFloat64(float64(y)))
	p.Add(p, new(big.Float).SetPrec(prec).SetFloat64(float64(z)))
	f, _ := p.Float32()
	return f
}

// expExact is Exp with every fused multiply-add rounded once: ggml's
// ggml_v_expf lane by lane.
func expExact(x float32) float32 {
	const round = 0x1.8p23
	z := fmaExact(x, 0x1.715476p+0, round)
	n := z - round
	b := fmaExact(-n, 0x1.7f7d1cp-20, fmaExact(-n, 0x1.62e4p-1, x))
	e := math.Float32bits(z) << 23
	k := math.Float32frombits(e + math.Float32bits(1))
	u := b * b
	j := fmaExact(fmaExact(fmaExact(0x1.0e4020p-7, b, 0x1.573e2ep-5), u, fmaExact(0x1.555e66p-3, b, 0x1.fffdb6p-2)), u, float32(0x1.ffffecp-1*b))
	an := abs(n)
	if !(an > 126) {
		return fmaExact(j, k, k)
	}
	var g uint32
	if n <= 0 {
		g = 0x82000000
	}
	s1 := math.Float32frombits(g + 0x7f000000)
	if an > 192 {
		return s1 * s1
	}
	s2 := math.Float32frombits(e - g)
	return fmaExact(s2, j, s2) * s1
}

// expInputs sweeps softmax's and SiLU's range densely (e^x from normal
// through subnormal to 0, and up to overflow), with random values and the
// special ones.
func expInputs() []float32 {
	xs := []float32{0, float32(math.Copysign(0, -1)), 1, -1, float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)),
		88.72, 88.73, 89, -87.3, -87.4, -103.9, -104, -150, -200, 200, math.MaxFloat32, -math.MaxFloat32, 1e-30, -1e-30}
	for x := float32(-130); x < 100; x += 0.0137 {
		xs = append(xs, x)
	}
	r := rand.New(rand.NewPCG(5, 7))
	for range 20000 {
		xs = append(xs, float32(r.NormFloat64()*20))
	}
	return xs
}

func sameBits(a, b float32) bool {
	return math.Float32bits(a) == math.Float32bits(b) || (math.IsNaN(float64(a)) && math.IsNaN(float64(b)))
}

// TestExpShiftedIsGgmlsExpToTheBit: the eight-lane kernel is ggml_v_expf
// (every fused multiply-add rounded once) on every input, across the
// subnormal and overflow branches, with a shift and with lengths that are
// not a multiple of eight; Exp, whose multiply-adds go through float64
// (and which ExpShifted is without AVX2), agrees with it but for rare
// double roundings.
func TestExpShiftedIsGgmlsExpToTheBit(t *testing.T) {
	xs := expInputs()
	const shift = 1.75
	got := make([]float32, len(xs)+5) // a tail of 5 past the multiples of 8
	for i := range got {
		got[i] = xs[i%len(xs)]
	}
	ExpShifted(got, shift)
	scalarOff := 0
	for i, v := range got {
		x := xs[i%len(xs)]
		want := expExact(x - shift)
		if !sameBits(v, want) && useAVX2 {
			t.Fatalf("ExpShifted at %v (x-%v): %v (%#08x), ggml's %v (%#08x)", x, shift, v, math.Float32bits(v), want, math.Float32bits(want))
		}
		if !sameBits(Exp(x-shift), want) {
			scalarOff++
		}
	}
	t.Logf("Exp (float64 multiply-adds) differs from ggml's in %d of %d values (path under test: %s)", scalarOff, len(got), Accelerated())
	if scalarOff > len(got)/100000+1 {
		t.Errorf("Exp differs from ggml's expf in %d of %d values: more than double rounding explains", scalarOff, len(got))
	}
}

// TestSiLUMulIsGgmlsSwiGLU: SiLUMul is x / (1 + e^-x) * u with ggml's e^x
// (Exp's without AVX2), to the bit, on every input and a tail.
func TestSiLUMulIsGgmlsSwiGLU(t *testing.T) {
	xs := expInputs()
	n := len(xs)/8*8 + 3
	g, u := make([]float32, n), make([]float32, n)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range g {
		g[i], u[i] = xs[i%len(xs)], float32(r.NormFloat64())
	}
	exp := expExact
	if !useAVX2 {
		exp = Exp // the fallback: Exp's own roundings
	}
	want := make([]float32, n)
	for i := range g {
		want[i] = g[i] / (1 + exp(-g[i])) * u[i]
	}
	SiLUMul(g, u)
	for i := range g {
		if !sameBits(g[i], want[i]) {
			t.Fatalf("SiLUMul at %v: %v, want %v", xs[i%len(xs)], g[i], want[i])
		}
	}
	SiLUMul(nil, nil) // no values: nothing to do, no panic
}

// TestQ8ActivationKernelEqualsTheLoop: the Q8_0/Q8_1 quantization of an
// activation (quants, scales, sums and the products' precomputed terms)
// is the same with the AVX2 kernel as with the Go loop, on random blocks,
// a block of zeros, a block with one huge value, blocks of tiny values and
// values that scale to exact halves (rounded to even).
func TestQ8ActivationKernelEqualsTheLoop(t *testing.T) {
	if !useAVX2 {
		t.Log("no AVX2 here: both are the Go loop")
	}
	r := rand.New(rand.NewPCG(9, 9))
	x := make([]float32, 64*QA)
	for i := range x {
		x[i] = float32(r.NormFloat64() * 3)
	}
	for i := range QA {
		x[QA+i] = 0                       // block 1: zeros
		x[2*QA+i] = float32(i) * 1e-3     // block 2: small
		x[3*QA+i] = float32(i-16) + 0.5   // block 3: halves (amax 16.5 ... scaled)
		x[4*QA+i] = 1e-40 * float32(i+1)  // block 4: subnormal
		x[5*QA+i] = float32(127-2*i) / 2  // block 5: amax 63.5: 127/amax = 2, so v*id are odd integers
		x[6*QA+i] = float32(2*i-31) / 254 // block 6: amax 31/254 ... ties at .5 after scaling
	}
	x[7*QA+5] = 3e38 // block 7: one huge value
	var fast, slow Act
	fast.SetFormats(x, Blocks32)
	restore := setFast(false)
	slow.SetFormats(x, Blocks32)
	restore()
	for _, c := range []struct {
		name string
		eq   bool
	}{
		{"Q", slices.Equal(fast.Q, slow.Q)}, {"D", slices.Equal(fast.D, slow.D)}, {"Sum", slices.Equal(fast.Sum, slow.Sum)},
		{"S", slices.Equal(fast.S, slow.S)}, {"C", slices.Equal(fast.C, slow.C)}, {"N8", slices.Equal(fast.N8, slow.N8)},
	} {
		if !c.eq {
			t.Errorf("%s differs between the kernel and the loop", c.name)
		}
	}
	for b := range 8 {
		if !slices.Equal(fast.Q[b*QA:(b+1)*QA], slow.Q[b*QA:(b+1)*QA]) {
			t.Errorf("block %d: kernel %v, loop %v", b, fast.Q[b*QA:(b+1)*QA], slow.Q[b*QA:(b+1)*QA])
		}
	}
}
