package kernels

import "math"

// Exp is e^x in float32 arithmetic, computed as ggml's vectorised expf
// (ggml_v_expf, what llama.cpp's softmax and SiLU use on x86) computes each
// lane, fused multiply-adds included, so that both engines round attention
// weights and feed-forward gates alike: x = n ln2 + b with n = round(x
// log2e) and ln2 in two parts, e^b by a polynomial in b, 2^n through the
// exponent bits, and |n| > 126 scaled in two steps (so results below
// float32's normal range are subnormal, then 0). Its relative error is
// below 2 float32 ulps. Go has no float32 FMA, so each one goes through
// float64 (exact here but for a double rounding once in 2^29): about 26 ns
// a value on this project's amd64 test machine. The engine calls it
// through ExpShifted and SiLUMul, which on x86 with AVX2 compute eight
// values at a time with float32 multiply-adds (ggml's own, to the bit).
func Exp(x float32) float32 {
	const round = 0x1.8p23
	z := fma32(x, 0x1.715476p+0, round)
	n := z - round
	b := fma32(-n, 0x1.7f7d1cp-20, fma32(-n, 0x1.62e4p-1, x))
	e := math.Float32bits(z) << 23
	k := math.Float32frombits(e + math.Float32bits(1))
	u := b * b
	j := fma32(fma32(fma32(0x1.0e4020p-7, b, 0x1.573e2ep-5), u, fma32(0x1.555e66p-3, b, 0x1.fffdb6p-2)), u, float32(0x1.ffffecp-1*b))
	an := abs(n)
	if !(an > 126) { // also NaN
		return fma32(j, k, k)
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
	return fma32(s2, j, s2) * s1
}
