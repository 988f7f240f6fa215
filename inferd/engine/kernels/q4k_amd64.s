#include "textflag.h"

// Q4_K rows against one activation (decoding), AVX2+FMA+F16C. A Q4_K
// super-block is 256 values in eight 32-value sub-blocks, each
// y = d*sc*q - dmin*m with 6-bit sc and m packed in 12 bytes. Per
// super-block: unpack the eight scales and mins with 32-bit integer
// operations, turn them into eight factors d*sc*xd (one per activation
// block) kept on the stack, and accumulate dmin*m*(8*sum*xd) separately;
// then each 32 bytes of nibbles give two sub-blocks (low and high nibbles)
// whose int8 products (VPMADDUBSW, unsigned nibbles x signed activation)
// are scaled by their factor. The mins term is divided by 8 at the end.

// func rowsQ4_KAVX2(w *byte, rowBytes int, nrows int, xq *int8, xd *float32, xc *float32, nsb int, out *float32)
TEXT ·rowsQ4_KAVX2(SB), NOSPLIT, $32-64
	MOVQ w+0(FP), R13
	MOVQ nrows+16(FP), R12
	MOVQ out+56(FP), BX
	MOVQ xc+40(FP), R9
	MOVQ xd+32(FP), AX
	SUBQ AX, R9 // xc - xd: the scale sums lie R9 bytes after the scales
	MOVL $0x00010001, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X14
	VPBROADCASTD X14, Y14
	TESTQ R12, R12
	JE q4kend
q4krow:
	MOVQ R13, SI
	MOVQ xq+24(FP), DI
	MOVQ xd+32(FP), R8
	MOVQ nsb+48(FP), CX
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
q4kblock:
	// d and dmin as eight-lane vectors.
	VPBROADCASTW (SI), X2
	VCVTPH2PS X2, Y2
	VPBROADCASTW 2(SI), X3
	VCVTPH2PS X3, Y3
	// Unpack scales (AX: sc0-3, DX: sc4-7) and mins (R10: m0-3, R11: m4-7).
	MOVL 4(SI), AX
	MOVL 8(SI), R10
	MOVL 12(SI), R11
	MOVL AX, DX
	SHRL $6, DX
	ANDL $0x03030303, DX
	SHLL $4, DX
	ANDL $0x3f3f3f3f, AX
	MOVL R11, R15
	ANDL $0x0f0f0f0f, R15
	ORL R15, DX
	MOVL R10, R15
	SHRL $6, R15
	ANDL $0x03030303, R15
	SHLL $4, R15
	ANDL $0x3f3f3f3f, R10
	SHRL $4, R11
	ANDL $0x0f0f0f0f, R11
	ORL R15, R11
	SHLQ $32, DX
	ORQ DX, AX
	SHLQ $32, R11
	ORQ R11, R10
	// Factors d*sc*xd to the stack; dmin*m*(8*sum*xd) into Y6.
	VMOVQ AX, X0
	VPMOVZXBD X0, Y0
	VCVTDQ2PS Y0, Y0
	VMULPS Y2, Y0, Y0
	VMULPS (R8), Y0, Y0
	VMOVUPS Y0, 0(SP)
	VMOVQ R10, X1
	VPMOVZXBD X1, Y1
	VCVTDQ2PS Y1, Y1
	VMULPS Y3, Y1, Y1
	VFMADD231PS (R8)(R9*1), Y1, Y6
	VMOVDQU 16(SI), Y0
	VPSRLW $4, Y0, Y1
	VPAND Y14, Y0, Y0
	VPAND Y14, Y1, Y1
	VPMADDUBSW 0(DI), Y0, Y0
	VPMADDWD Y15, Y0, Y0
	VCVTDQ2PS Y0, Y0
	VBROADCASTSS 0(SP), Y9
	VFMADD231PS Y9, Y0, Y4
	VPMADDUBSW 32(DI), Y1, Y1
	VPMADDWD Y15, Y1, Y1
	VCVTDQ2PS Y1, Y1
	VBROADCASTSS 4(SP), Y9
	VFMADD231PS Y9, Y1, Y5
	VMOVDQU 48(SI), Y0
	VPSRLW $4, Y0, Y1
	VPAND Y14, Y0, Y0
	VPAND Y14, Y1, Y1
	VPMADDUBSW 64(DI), Y0, Y0
	VPMADDWD Y15, Y0, Y0
	VCVTDQ2PS Y0, Y0
	VBROADCASTSS 8(SP), Y9
	VFMADD231PS Y9, Y0, Y4
	VPMADDUBSW 96(DI), Y1, Y1
	VPMADDWD Y15, Y1, Y1
	VCVTDQ2PS Y1, Y1
	VBROADCASTSS 12(SP), Y9
	VFMADD231PS Y9, Y1, Y5
	VMOVDQU 80(SI), Y0
	VPSRLW $4, Y0, Y1
	VPAND Y14, Y0, Y0
	VPAND Y14, Y1, Y1
	VPMADDUBSW 128(DI), Y0, Y0
	VPMADDWD Y15, Y0, Y0
	VCVTDQ2PS Y0, Y0
	VBROADCASTSS 16(SP), Y9
	VFMADD231PS Y9, Y0, Y4
	VPMADDUBSW 160(DI), Y1, Y1
	VPMADDWD Y15, Y1, Y1
	VCVTDQ2PS Y1, Y1
	VBROADCASTSS 20(SP), Y9
	VFMADD231PS Y9, Y1, Y5
	VMOVDQU 112(SI), Y0
	VPSRLW $4, Y0, Y1
	VPAND Y14, Y0, Y0
	VPAND Y14, Y1, Y1
	VPMADDUBSW 192(DI), Y0, Y0
	VPMADDWD Y15, Y0, Y0
	VCVTDQ2PS Y0, Y0
	VBROADCASTSS 24(SP), Y9
	VFMADD231PS Y9, Y0, Y4
	VPMADDUBSW 224(DI), Y1, Y1
	VPMADDWD Y15, Y1, Y1
	VCVTDQ2PS Y1, Y1
	VBROADCASTSS 28(SP), Y9
	VFMADD231PS Y9, Y1, Y5
	ADDQ $144, SI
	ADDQ $256, DI
	ADDQ $32, R8
	DECQ CX
	JNE q4kblock
	VADDPS Y5, Y4, Y4
	VEXTRACTF128 $1, Y4, X5
	VADDPS X5, X4, X4
	VHADDPS X4, X4, X4
	VHADDPS X4, X4, X4
	VEXTRACTF128 $1, Y6, X7
	VADDPS X7, X6, X6
	VHADDPS X6, X6, X6
	VHADDPS X6, X6, X6
	MOVL $0x3e000000, AX // 0.125
	VMOVD AX, X7
	VMULSS X7, X6, X6
	VSUBSS X6, X4, X4
	MOVSS X4, (BX)
	ADDQ $4, BX
	ADDQ rowBytes+8(FP), R13
	DECQ R12
	JNE q4krow
q4kend:
	VZEROUPPER
	RET
