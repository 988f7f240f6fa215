#include "textflag.h"

// Q5_0 against Q8_0 activations, AVX2, summed as the fallback (dotQ5_0)
// sums: per block the exact integer sum of q*x over the 32 unsigned 5-bit
// values (the four low bits from the nibbles, the fifth from qh, spread
// to bytes as llama.cpp's bytes_from_bits_32 does: each byte of a
// broadcast qh selected by VPSHUFB, ORed with a mask of every other bit,
// compared to all ones), minus 16 x the activation's block sum, then
// (d x D) x s added to the row's float sum, block after block. So kernel and
// fallback agree to the bit. One row at a time: decoding is bound by the
// weights' bytes, which each row reads once.

DATA q5shuf<>+0(SB)/8, $0x0000000000000000
DATA q5shuf<>+8(SB)/8, $0x0101010101010101
DATA q5shuf<>+16(SB)/8, $0x0202020202020202
DATA q5shuf<>+24(SB)/8, $0x0303030303030303
GLOBL q5shuf<>(SB), RODATA|NOPTR, $32

// func rowsQ5_0AVX2(w *byte, rowBytes int, nrows int, xq *int8, xd *float32, xsum *int32, nb int, tbl *float32, out *float32)
TEXT ·rowsQ5_0AVX2(SB), NOSPLIT, $0-72
	MOVQ w+0(FP), R13
	MOVQ rowBytes+8(FP), R10
	MOVQ nrows+16(FP), R12
	MOVQ tbl+56(FP), R9
	MOVQ out+64(FP), BX
	MOVL $0x00010001, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X14
	VPBROADCASTD X14, Y14
	VMOVDQU q5shuf<>(SB), Y13
	MOVQ $0x7fbfdfeff7fbfdfe, AX
	MOVQ AX, X12
	VPBROADCASTQ X12, Y12
	VPCMPEQB Y11, Y11, Y11
	MOVL $0x10101010, AX
	VMOVD AX, X10
	VPBROADCASTD X10, Y10
	TESTQ R12, R12
	JE q5end
q5row:
	MOVQ R13, SI
	MOVQ xq+24(FP), DI
	MOVQ xd+32(FP), DX
	MOVQ xsum+40(FP), R11
	MOVQ nb+48(FP), CX
	VXORPS X4, X4, X4
q5block:
	VMOVDQU (DI), Y1
	VPBROADCASTD 2(SI), Y2
	VPSHUFB Y13, Y2, Y2
	VPOR Y12, Y2, Y2
	VPCMPEQB Y11, Y2, Y2
	VPAND Y10, Y2, Y2
	VMOVDQU 6(SI), X0
	VPSRLW $4, X0, X3
	VINSERTI128 $1, X3, Y0, Y0
	VPAND Y14, Y0, Y0
	VPOR Y2, Y0, Y0
	VPMADDUBSW Y1, Y0, Y5
	VPMADDWD Y15, Y5, Y5
	VEXTRACTI128 $1, Y5, X6
	VPADDD X6, X5, X5
	VPHADDD X5, X5, X5
	VPHADDD X5, X5, X5
	VMOVD X5, AX
	MOVL (R11), R8
	SHLL $4, R8
	SUBL R8, AX
	VCVTSI2SSL AX, X7, X7
	MOVWLZX (SI), R8
	VMOVSS (R9)(R8*4), X8
	VMULSS (DX), X8, X8
	VMULSS X7, X8, X8
	VADDSS X8, X4, X4
	ADDQ $32, DI
	ADDQ $4, DX
	ADDQ $4, R11
	ADDQ $22, SI
	DECQ CX
	JNE q5block
	VMOVSS X4, (BX)
	ADDQ $4, BX
	ADDQ R10, R13
	DECQ R12
	JNE q5row
q5end:
	VZEROUPPER
	RET
