#!/usr/bin/env python3
# Generates inferd/engine/kernels/q6k_amd64.s (Go assembly, amd64). The
# kernels are unrolled, which is easier to keep right as a generator than by
# hand. Run `make kernels` after editing, then `go test ./inferd/engine/kernels`.
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kasm import q6k_run, write, hsum
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
# Q6_K rows against one activation's Q8_K copy, AVX2+FMA+F16C.
def qk(k, half):
    # k in 1..4 within half (0 or 1): one 32-value run.
    # Registers: Y0 = L0 (ql[n/2:n/2+32]), Y1 = L1 (ql[n/2+32:n/2+64]), Y2 = H (qh[n/4:n/4+32])
    # Y14 = 0x0F bytes, Y13 = 0x03 bytes; the int16 scales are at 0(SP).
    lines = q6k_run(k, "Y8", "Y9")
    act = 128 * half + 32 * (k - 1)          # byte offset of the run in the activation's super-block
    sc = 8 * half + 2 * (k - 1)               # first of the run's two 16-value scales
    acc = "Y5" if k % 2 else "Y11"
    lines += [f"\tVPMADDUBSW {act}(DI), Y8, Y8",
              # [s_a x8 | s_b x8] as int16
              f"\tVPBROADCASTW {2*sc}(SP), X9",
              f"\tVPBROADCASTW {2*sc+2}(SP), X10",
              "\tVINSERTI128 $1, X10, Y9, Y9",
              "\tVPMADDWD Y9, Y8, Y8",
              f"\tVPADDD Y8, {acc}, {acc}"]
    return "\n".join(lines)

def half(h):
    return "\n".join([f"\tVMOVDQU {64*h}(SI), Y0", f"\tVMOVDQU {64*h+32}(SI), Y1", f"\tVMOVDQU {128+32*h}(SI), Y2"] +
                     [qk(k, h) for k in (1, 2, 3, 4)])

s = f"""#include "textflag.h"

// Q6_K rows against one activation's Q8_K copy (decoding), AVX2+FMA+F16C.
// A Q6_K super-block is 256 six-bit values (low 4 bits in ql, high 2 in qh,
// minus 32) in sixteen 16-value sub-blocks with int8 scales, and one fp16
// d; the activation's super-block has one float32 scale xd and the sums of
// each 16 values. Per super-block, as llama.cpp's ggml_vec_dot_q6_K_q8_K:
// each 32-value run is rebuilt from its nibbles and bit pairs as unsigned
// q+32, multiplied with the activation (VPMADDUBSW), its two halves by
// their own int16 sub-block scale (VPMADDWD), and summed as int32; the
// offset, 32 x the scales times the activation's 16-value sums, is
// subtracted, and the sum scaled once, by d*xd.

// func rowsQ6_KAVX2(w *byte, rowBytes int, nrows int, xq *int8, xd *float32, xb *int16, nsb int, out *float32)
TEXT ·rowsQ6_KAVX2(SB), NOSPLIT, $32-64
	MOVQ w+0(FP), R13
	MOVQ nrows+16(FP), R12
	MOVQ out+56(FP), BX
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X14
	VPBROADCASTD X14, Y14
	MOVL $0x03030303, AX
	VMOVD AX, X13
	VPBROADCASTD X13, Y13
	TESTQ R12, R12
	JE q6kend
q6krow:
	MOVQ R13, SI
	MOVQ xq+24(FP), DI
	MOVQ xd+32(FP), R8
	MOVQ xb+40(FP), R9
	MOVQ nsb+48(FP), CX
	VXORPS Y4, Y4, Y4
q6kblock:
	// d*xd as an eight-lane vector.
	VBROADCASTSS (R8), Y7
	VPBROADCASTW 208(SI), X3
	VCVTPH2PS X3, Y3
	VMULPS Y7, Y3, Y3
	// The scales as int16, to the stack; the offset 32 x sum(scale x
	// 16-value sum) into Y7.
	VPMOVSXBW 192(SI), Y6
	VMOVDQU Y6, 0(SP)
	VPMADDWD (R9), Y6, Y7
	VPSLLD $5, Y7, Y7
	VPXOR Y5, Y5, Y5
	VPXOR Y11, Y11, Y11
{half(0)}
{half(1)}
	VPADDD Y11, Y5, Y5
	VPSUBD Y7, Y5, Y5
	VCVTDQ2PS Y5, Y5
	VFMADD231PS Y3, Y5, Y4
	ADDQ $210, SI
	ADDQ $256, DI
	ADDQ $4, R8
	ADDQ $32, R9
	DECQ CX
	JNE q6kblock
{hsum(4, 5)}
	MOVSS X4, (BX)
	ADDQ $4, BX
	ADDQ rowBytes+8(FP), R13
	DECQ R12
	JNE q6krow
q6kend:
	VZEROUPPER
	RET
"""

write(ROOT, "inferd/engine/kernels/q6k_amd64.s", "q6k.py", s)
