package kernels

// DotF32 is the dot product of a and b (equal lengths). With AVX2 and a
// length that is a multiple of 32 it sums as ggml_vec_dot_f32 does.
func DotF32(a, b []float32) float32 {
	if useAVX2 && len(a)%32 == 0 && len(a) > 0 {
		_ = b[len(a)-1]
		return dotF32Fast(a, b)
	}
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return s0 + s1 + s2 + s3
}

// AxpyF32 adds alpha*x to y (equal lengths).
func AxpyF32(alpha float32, x, y []float32) {
	if useAVX2 && len(x)%16 == 0 && len(x) > 0 {
		_ = y[len(x)-1]
		axpyF32Fast(alpha, x, y)
		return
	}
	for i, v := range x {
		y[i] += alpha * v
	}
}

// ExpShifted sets x[i] = e^(x[i]-shift), softmax's exponentials, as Exp
// computes them; on x86 with AVX2 eight at a time, with float32 fused
// multiply-adds, which is ggml's ggml_v_expf to the bit (Exp's float64
// ones round twice once in about 2^29 values).
func ExpShifted(x []float32, shift float32) {
	if useAVX2 {
		n := len(x) &^ 7
		if n > 0 {
			expShiftedFast(x[:n], shift)
		}
		if rest := x[n:]; len(rest) > 0 {
			var buf [8]float32
			copy(buf[:], rest)
			expShiftedFast(buf[:], shift)
			copy(rest, buf[:])
		}
		return
	}
	for i, v := range x {
		x[i] = Exp(v - shift)
	}
}

// SiLUMul sets g[i] = SiLU(g[i]) * u[i] (equal lengths), SwiGLU's product,
// with SiLU(x) = x / (1 + e^-x) and e^-x as ExpShifted computes it.
func SiLUMul(g, u []float32) {
	if len(g) == 0 {
		return
	}
	_ = u[len(g)-1]
	if useAVX2 {
		n := len(g) &^ 7
		if n > 0 {
			siluMulFast(g[:n], u[:n])
		}
		if rest := g[n:]; len(rest) > 0 {
			var bg, bu [8]float32
			copy(bg[:], rest)
			copy(bu[:], u[n:])
			siluMulFast(bg[:], bu[:])
			copy(rest, bg[:])
		}
		return
	}
	for i, v := range g {
		g[i] = v / (1 + Exp(-v)) * u[i]
	}
}

// ScaledDotsF32 sets out[i] = DotF32(q, rows[i*stride:i*stride+len(q)]) *
// scale for each i: attention's query-key products over the cached keys
// of one head (stride apart), in one call.
func ScaledDotsF32(q, rows []float32, stride int, scale float32, out []float32) {
	if len(out) == 0 {
		return
	}
	_ = rows[(len(out)-1)*stride+len(q)-1]
	if useAVX2 && len(q)%32 == 0 && len(q) > 0 {
		scaledDotsFast(q, rows, stride, scale, out)
		return
	}
	for i := range out {
		out[i] = DotF32(q, rows[i*stride:i*stride+len(q)]) * scale
	}
}

// AttnLanes is how many partial sums AxpyLanesF32 keeps per value.
const AttnLanes = 8

// AxpyLanesF32 adds (w[i]*alpha) * rows[i*stride:i*stride+n] to lane
// (lane+i) % AttnLanes of acc, whose AttnLanes lanes hold n values each,
// for each i, as AxpyF32 adds each: attention's weighted sum of the cached
// values of one head, lane i taking the positions AttnLanes*k+i.
func AxpyLanesF32(w []float32, alpha float32, rows []float32, stride int, acc []float32, lane int) {
	n := len(acc) / AttnLanes
	if len(w) == 0 || n == 0 {
		return
	}
	_ = rows[(len(w)-1)*stride+n-1]
	if useAVX2 && n%16 == 0 && lane >= 0 && lane < AttnLanes {
		axpyLanesFast(w, alpha, rows, stride, acc, lane)
		return
	}
	for i, v := range w {
		l := (lane + i) % AttnLanes
		AxpyF32(v*alpha, rows[i*stride:i*stride+n], acc[l*n:(l+1)*n])
	}
}
