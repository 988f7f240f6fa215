#include "textflag.h"

// Float32 vector kernels for attention (AVX2+FMA).

// func dotF32AVX2(a, b *float32, n int) float32
// n is a multiple of 32: four accumulators of eight lanes, reduced as
// ggml_vec_dot_f32 reduces them ((0+2)+(1+3), the halves, two horizontal
// adds), so that attention's query-key products round as llama.cpp's.
TEXT ·dotF32AVX2(SB), NOSPLIT, $0-28
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), DI
	MOVQ n+16(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	SHRQ $5, CX
	JE dotdone
dotloop:
	VMOVUPS (SI), Y4
	VMOVUPS 32(SI), Y5
	VMOVUPS 64(SI), Y6
	VMOVUPS 96(SI), Y7
	VFMADD231PS (DI), Y4, Y0
	VFMADD231PS 32(DI), Y5, Y1
	VFMADD231PS 64(DI), Y6, Y2
	VFMADD231PS 96(DI), Y7, Y3
	ADDQ $128, SI
	ADDQ $128, DI
	DECQ CX
	JNE dotloop
dotdone:
	VADDPS Y2, Y0, Y0
	VADDPS Y3, Y1, Y1
	VADDPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// func axpyF32AVX2(alpha float32, x, y *float32, n int)
// y += alpha * x
TEXT ·axpyF32AVX2(SB), NOSPLIT, $0-32
	VBROADCASTSS alpha+0(FP), Y0
	MOVQ x+8(FP), SI
	MOVQ y+16(FP), DI
	MOVQ n+24(FP), CX
	SHRQ $4, CX
	JE axpydone
axpyloop:
	VMOVUPS (DI), Y1
	VMOVUPS 32(DI), Y2
	VFMADD231PS (SI), Y0, Y1
	VFMADD231PS 32(SI), Y0, Y2
	VMOVUPS Y1, (DI)
	VMOVUPS Y2, 32(DI)
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ CX
	JNE axpyloop
axpydone:
	VZEROUPPER
	RET

// func dotF32RowAVX2(a, b *float32, n int) float32
// n is a multiple of 8: one accumulator of eight lanes, reduced as ggml's
// hsum_float_8 (the halves, lanes two apart, the last two), which is how
// llama.cpp's tinyBLAS multiplies an F32 matrix by a batch.
TEXT ·dotF32RowAVX2(SB), NOSPLIT, $0-28
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), DI
	MOVQ n+16(FP), CX
	VXORPS Y0, Y0, Y0
	SHRQ $3, CX
	JE rowdone
rowloop:
	VMOVUPS (SI), Y1
	VFMADD231PS (DI), Y1, Y0
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNE rowloop
rowdone:
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VMOVHLPS X0, X0, X1
	VADDPS X1, X0, X0
	VMOVSHDUP X0, X1
	VADDSS X1, X0, X0
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// func dotF16RowAVX2(w *uint16, x *float32, n int) float32
// n is a multiple of 8: an F16 weight row times the activation rounded to
// F16 (to nearest even), one accumulator of eight lanes reduced as
// hsum_float_8: llama.cpp converts the activation of an F16 product to F16
// and multiplies with tinyBLAS so.
TEXT ·dotF16RowAVX2(SB), NOSPLIT, $0-28
	MOVQ w+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ n+16(FP), CX
	VXORPS Y0, Y0, Y0
	SHRQ $3, CX
	JE h16done
h16loop:
	VCVTPH2PS (SI), Y1
	VMOVUPS (DI), Y2
	VCVTPS2PH $0, Y2, X2
	VCVTPH2PS X2, Y2
	VFMADD231PS Y2, Y1, Y0
	ADDQ $16, SI
	ADDQ $32, DI
	DECQ CX
	JNE h16loop
h16done:
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VMOVHLPS X0, X0, X1
	VADDPS X1, X0, X0
	VMOVSHDUP X0, X1
	VADDSS X1, X0, X0
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET
