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
