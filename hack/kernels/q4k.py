#!/usr/bin/env python3
# Generates inferd/engine/kernels/q4k_amd64.s (Go assembly, amd64). The
# kernels are unrolled, which is easier to keep right as a generator than by
# hand. Run `make kernels` after editing, then `go test ./inferd/engine/kernels`.
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kasm import write, consts, hsum, Q4K_SCALES_MINS
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
def sub(j, t):
    # 32 bytes of nibbles: sub-block 2j (low nibbles), 2j+1 (high nibbles),
    # each times its scale, summed lane by lane into t.
    lo_off, hi_off = 64*j, 64*j + 32
    return f"""	VMOVDQU {16+32*j}(SI), Y0
	VPSRLW $4, Y0, Y1
	VPAND Y14, Y0, Y0
	VPAND Y14, Y1, Y1
	VPMADDUBSW {lo_off}(DI), Y0, Y0
	VPBROADCASTW {4*j}(SP), Y9
	VPMADDWD Y9, Y0, Y0
	VPMADDUBSW {hi_off}(DI), Y1, Y1
	VPBROADCASTW {4*j+2}(SP), Y10
	VPMADDWD Y10, Y1, Y1
	VPADDD Y1, Y0, {t}"""

s = f"""#include "textflag.h"

// Q4_K rows against one activation's Q8_K copy (decoding), AVX2+FMA+F16C.
// A Q4_K super-block is 256 values in eight 32-value sub-blocks, each
// y = d*sc*q - dmin*m with 6-bit sc and m packed in 12 bytes; the
// activation's super-block has one float32 scale xd and the sums of each 16
// values. Per super-block: unpack the scales and mins with 32-bit integer
// operations; the mins times the activation's 32-value sums (pairs of its
// 16-value sums) give the mins terms; each 32 bytes of nibbles give two
// sub-blocks (low and high nibbles) whose int8 products (VPMADDUBSW,
// unsigned nibbles x signed activation) are multiplied by their scale
// (VPMADDWD). The scaled products of a super-block are summed as int32
// (exactly), lane by lane; each lane is then scaled by d*xd into one float
// accumulator, and the mins terms by dmin*xd into another, so that no
// super-block waits on the one before it (no horizontal sums, no chain of
// scalar multiply-adds); the lanes are added once per row.

// func rowsQ4_KAVX2(w *byte, rowBytes int, nrows int, xq *int8, xd *float32, xb *int16, nsb int, out *float32)
TEXT ·rowsQ4_KAVX2(SB), NOSPLIT, $32-64
	MOVQ w+0(FP), R13
	MOVQ nrows+16(FP), R12
	MOVQ out+56(FP), BX
{consts()}
	TESTQ R12, R12
	JE q4kend
q4krow:
	MOVQ R13, SI
	MOVQ xq+24(FP), DI
	MOVQ xd+32(FP), R8
	MOVQ xb+40(FP), R9
	MOVQ nsb+48(FP), CX
	VXORPS Y4, Y4, Y4
	VXORPS Y6, Y6, Y6
q4kblock:
	// d*xd and dmin*xd as eight-lane vectors.
	VBROADCASTSS (R8), Y7
	VPBROADCASTW (SI), X2
	VCVTPH2PS X2, Y2
	VMULPS Y7, Y2, Y2
	VPBROADCASTW 2(SI), X3
	VCVTPH2PS X3, Y3
	VMULPS Y7, Y3, Y3
	// Unpack scales (AX: sc0-3, DX: sc4-7) and mins (R10: m0-3, R11: m4-7).
{Q4K_SCALES_MINS}
	// The mins term: m_j times the activation's sum over sub-block j.
	VMOVQ R10, X1
	VPMOVZXBD X1, Y1
	VMOVDQU (R9), Y0
	VPMADDWD Y15, Y0, Y0
	VPMULLD Y1, Y0, Y0
	// The mins terms, lane by lane, scaled by dmin*xd into Y6.
	VCVTDQ2PS Y0, Y0
	VFMADD231PS Y3, Y0, Y6
	// The scales as int16, to the stack.
	VMOVQ AX, X0
	VPMOVZXBW X0, X0
	VMOVDQU X0, 0(SP)
{sub(0, "Y5")}
{sub(1, "Y8")}
{sub(2, "Y11")}
{sub(3, "Y12")}
	// The super-block's integer sums (exact: each already times its
	// sub-block scale), lane by lane, scaled by d*xd into Y4.
	VPADDD Y8, Y5, Y5
	VPADDD Y12, Y11, Y11
	VPADDD Y11, Y5, Y5
	VCVTDQ2PS Y5, Y5
	VFMADD231PS Y2, Y5, Y4
	ADDQ $144, SI
	ADDQ $256, DI
	ADDQ $4, R8
	ADDQ $32, R9
	DECQ CX
	JNE q4kblock
	// The row's sum: the lanes of Y4 - Y6, added.
	VSUBPS Y6, Y4, Y4
{hsum(4, 5)}
	MOVSS X4, (BX)
	ADDQ $4, BX
	ADDQ rowBytes+8(FP), R13
	DECQ R12
	JNE q4krow
q4kend:
	VZEROUPPER
	RET
"""

write(ROOT, "inferd/engine/kernels/q4k_amd64.s", "q4k.py", s)
