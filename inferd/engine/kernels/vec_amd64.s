#include "textflag.h"

// Float32 vector kernels for attention (AVX2+FMA).

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

// func scaledDotsF32AVX2(q, k *float32, stride int, n int, rows int, scale float32, out *float32)
// out[r] = dot(q, k[r*stride:][:n]) * scale for rows rows (n a multiple of
// 32, stride in float32s). Each dot has four accumulators of eight lanes,
// reduced as ggml_vec_dot_f32 reduces them ((0+2)+(1+3), the halves, two
// horizontal adds), so that attention's query-key products round as
// llama.cpp's. DotF32 is this over one row.
TEXT ·scaledDotsF32AVX2(SB), NOSPLIT, $0-56
	MOVQ q+0(FP), R8
	MOVQ k+8(FP), DI
	MOVQ stride+16(FP), R9
	SHLQ $2, R9
	MOVQ n+24(FP), R10
	SHRQ $5, R10
	MOVQ rows+32(FP), R11
	VMOVSS scale+40(FP), X8
	MOVQ out+48(FP), BX
	TESTQ R11, R11
	JE sdend
	TESTQ R10, R10
	JE sdend
sdrow:
	MOVQ R8, SI
	MOVQ DI, DX
	MOVQ R10, CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
sdloop:
	VMOVUPS (SI), Y4
	VMOVUPS 32(SI), Y5
	VMOVUPS 64(SI), Y6
	VMOVUPS 96(SI), Y7
	VFMADD231PS (DX), Y4, Y0
	VFMADD231PS 32(DX), Y5, Y1
	VFMADD231PS 64(DX), Y6, Y2
	VFMADD231PS 96(DX), Y7, Y3
	ADDQ $128, SI
	ADDQ $128, DX
	DECQ CX
	JNE sdloop
	VADDPS Y2, Y0, Y0
	VADDPS Y3, Y1, Y1
	VADDPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VMULSS X8, X0, X0
	VMOVSS X0, (BX)
	ADDQ $4, BX
	ADDQ R9, DI
	DECQ R11
	JNE sdrow
sdend:
	VZEROUPPER
	RET

// func axpyLanesF32AVX2(w *float32, alpha float32, x *float32, stride int, n int, rows int, acc *float32, lane int)
// For each row r: acc[lane][:n] += (w[r]*alpha) * x[r*stride:][:n], lane
// going round the eight blocks of n values of acc, from lane, one fused
// multiply-add per value (n a multiple of 16, stride in float32s).
// AxpyF32 is this over one row with a weight of 1.
TEXT ·axpyLanesF32AVX2(SB), NOSPLIT, $0-64
	MOVQ w+0(FP), R8
	VMOVSS alpha+8(FP), X8
	MOVQ x+16(FP), R12
	MOVQ stride+24(FP), R9
	SHLQ $2, R9
	MOVQ n+32(FP), R10
	MOVQ rows+40(FP), R11
	MOVQ acc+48(FP), R13
	MOVQ lane+56(FP), R14
	MOVQ R10, R15
	SHLQ $2, R15
	MOVQ R14, AX
	IMULQ R15, AX
	LEAQ (R13)(AX*1), BX
	SHRQ $4, R10
	TESTQ R11, R11
	JE alend
	TESTQ R10, R10
	JE alend
alrow:
	VMOVSS (R8), X0
	VMULSS X8, X0, X0
	VBROADCASTSS X0, Y0
	MOVQ R12, SI
	MOVQ BX, DI
	MOVQ R10, CX
alloop:
	VMOVUPS (DI), Y1
	VMOVUPS 32(DI), Y2
	VFMADD231PS (SI), Y0, Y1
	VFMADD231PS 32(SI), Y0, Y2
	VMOVUPS Y1, (DI)
	VMOVUPS Y2, 32(DI)
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ CX
	JNE alloop
	ADDQ $4, R8
	ADDQ R9, R12
	ADDQ R15, BX
	INCQ R14
	CMPQ R14, $8
	JNE alnext
	XORQ R14, R14
	MOVQ R13, BX
alnext:
	DECQ R11
	JNE alrow
alend:
	VZEROUPPER
	RET
