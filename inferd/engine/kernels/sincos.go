package kernels

import (
	"encoding/hex"
	"math"
)

// Sincos is the sine and cosine of x as glibc's sincosf computes them on
// x86-64 (the algorithm Arm contributed to glibc and publishes in its
// optimized-routines): llama.cpp's RoPE takes its angles' sines and
// cosines from it, and it is not correctly rounded (at most 0.56 ulp off),
// so float64's values rounded to float32 differ from it for about one angle
// in forty, each a last-bit difference in a rotated query or key. The
// argument is reduced to [-pi/4, pi/4] and a quadrant in float64 (one
// multiply-add by pi/2 below 120, the bits of 4/pi above), and both
// functions are float64 polynomials, evaluated with fused multiply-adds as
// glibc's FMA build does. The algorithm and its coefficients are Arm's
// (optimized-routines, MIT OR Apache-2.0 WITH LLVM-exception); this is the
// project's own Go for them.
func Sincos(y float32) (sin, cos float32) {
	x := float64(y)
	top := abstop12(y)
	switch {
	case top < abstop12(math.Pi/4):
		if top < abstop12(0x1p-12) {
			return y, 1
		}
		return sincosPoly(x, x*x, &sincosTables[0], 0)
	case top < abstop12(120):
		r := x * 0x1.45F306DC9C883p+23 // 2/pi, scaled by 2^24
		n := (int32(r) + 0x800000) >> 24
		x = math.FMA(-float64(n), math.Pi/2, x)
		t := &sincosTables[0]
		if n&2 != 0 {
			t = &sincosTables[1]
		}
		return sincosPoly(x*sincosSigns[n&3], x*x, t, int(n))
	case top < abstop12(float32(math.Inf(1))):
		xi := math.Float32bits(y)
		x, n := reduceLarge(xi)
		q := n + int(xi>>31)
		t := &sincosTables[0]
		if q&2 != 0 {
			t = &sincosTables[1]
		}
		return sincosPoly(x*sincosSigns[q&3], x*x, t, n)
	}
	nan := y - y
	return nan, nan
}

func abstop12(x float32) uint32 { return math.Float32bits(x) >> 20 & 0x7ff }

// sincosTable holds a cosine polynomial (c0..c4, negated in the second
// table, which quadrants 2 and 3 use).
type sincosTable struct{ c0, c1, c2, c3, c4 float64 }

var sincosTables = [2]sincosTable{
	{0x1p0, -0x1.ffffffd0c621cp-2, 0x1.55553e1068f19p-5, -0x1.6c087e89a359dp-10, 0x1.99343027bf8c3p-16},
	{-0x1p0, 0x1.ffffffd0c621cp-2, -0x1.55553e1068f19p-5, 0x1.6c087e89a359dp-10, -0x1.99343027bf8c3p-16},
}

// The sine polynomial, and the sign of the sine in each quadrant.
const sinS1, sinS2, sinS3 = -0x1.555545995a603p-3, 0x1.1107605230bc4p-7, -0x1.994eb3774cf24p-13

var sincosSigns = [4]float64{1, -1, -1, 1}

// sincosPoly evaluates both polynomials at x (x2 = x*x); an odd quadrant n
// swaps sine and cosine.
func sincosPoly(x, x2 float64, t *sincosTable, n int) (float32, float32) {
	x4 := x2 * x2
	x3 := x2 * x
	c2 := math.FMA(x2, t.c4, t.c3)
	s1 := math.FMA(x2, sinS3, sinS2)
	c1 := math.FMA(x2, t.c1, t.c0)
	x5 := x3 * x2
	x6 := x4 * x2
	s := math.FMA(x3, sinS1, x)
	c := math.FMA(x4, t.c2, c1)
	sin, cos := float32(math.FMA(x5, s1, s)), float32(math.FMA(x6, c2, c))
	if n&1 != 0 {
		return cos, sin
	}
	return sin, cos
}

// invPio4 is 4/pi to 192 bits, as overlapping 32-bit windows eight bits
// apart (the first three shorter), so that every read is whole.
var invPio4 = func() (t [24]uint32) {
	bits, _ := hex.DecodeString("a2f9836e4e441529fc2757d1f534ddc0db6295993c439041")
	for k := range t {
		for _, b := range bits[max(0, k-3) : k+1] {
			t[k] = t[k]<<8 | uint32(b)
		}
	}
	return t
}()

// reduceLarge reduces the float32 with bits xi (|x| >= 120) modulo pi/2 in
// fixed point: the quadrant, and the remainder in [-pi/4, pi/4].
func reduceLarge(xi uint32) (float64, int) {
	arr := invPio4[(xi>>26)&15:]
	shift := (xi >> 23) & 7
	xi = (xi&0xffffff | 0x800000) << shift
	res0 := uint64(xi * arr[0])
	res1 := uint64(xi) * uint64(arr[4])
	res2 := uint64(xi) * uint64(arr[8])
	res0 = res2>>32 | res0<<32
	res0 += res1
	n := (res0 + 1<<61) >> 62
	res0 -= n << 62
	return float64(int64(res0)) * 0x1.921FB54442D18p-62, int(n)
}
