package kernels

import "math"

// Exp is e^x in float32 arithmetic: x = n ln2 + r with |r| <= ln2/2, e^r by
// a degree-6 polynomial, 2^n through the exponent bits. Its relative error
// is below 3e-7 (two float32 ulps) over the range softmax and SiLU use, at a fraction of the
// cost of math.Exp's float64 path (the engine calls it for every attention
// score and every feed-forward unit of every token).
func Exp(x float32) float32 {
	switch {
	case x > 88.7:
		return float32(math.Inf(1))
	case x < -87.3:
		return 0
	case x != x: // NaN
		return x
	}
	const (
		log2e = 1.44269504088896341
		ln2hi = 0.693359375
		ln2lo = -2.12194440e-4
	)
	n := float32(math.Floor(float64(x*log2e + 0.5)))
	r := x - n*ln2hi - n*ln2lo
	p := float32(1.0 / 720)
	p = p*r + 1.0/120
	p = p*r + 1.0/24
	p = p*r + 1.0/6
	p = p*r + 0.5
	p = p*r + 1
	p = p*r + 1
	return p * math.Float32frombits(uint32(int32(n)+127)<<23)
}
