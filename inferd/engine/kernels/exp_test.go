package kernels

import (
	"math"
	"math/big"
	"math/rand/v2"
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
