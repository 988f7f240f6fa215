#!/usr/bin/env python3
# Generates inferd/engine/kernels/q6k4_amd64.s (Go assembly, amd64): one Q6_K
# row against four activations (prompt processing). Run `make kernels` after
# editing, then `go test ./inferd/engine/kernels`.
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kasm import K4_GROUP, K4_XB, K4_XD, K4_XQ, q6k_run, write, hsum
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")

XQ, XD, XB, GROUP = K4_XQ, K4_XD, K4_XB, K4_GROUP
IACC = ["Y3", "Y4", "Y5", "Y6"]   # int32 sums of the super-block, per token
FACC = ["Y7", "Y8", "Y9", "Y10"]  # float sums of the row, per token

def run(k, half):
    # One 32-value run, rebuilt once as unsigned q+32 in Y11 from its nibbles
    # (Y0 or Y1) and bit pairs (Y2), with its two 16-value scales in Y12;
    # then each token's products added into its integer sum.
    lines = q6k_run(k, "Y11", "Y15")
    sc = 8 * half + 2 * (k - 1)
    lines += [f"\tVPBROADCASTW {2*sc}(SP), X12",
              f"\tVPBROADCASTW {2*sc+2}(SP), X15",
              "\tVINSERTI128 $1, X15, Y12, Y12"]
    act = 128 * half + 32 * (k - 1)
    for t in range(4):
        lines += [f"\tVPMADDUBSW {XQ+256*t+act}(DI), Y11, Y15",
                  "\tVPMADDWD Y12, Y15, Y15",
                  f"\tVPADDD Y15, {IACC[t]}, {IACC[t]}"]
    return "\n".join(lines)

def half(h):
    return "\n".join([f"\tVMOVDQU {64*h}(SI), Y0", f"\tVMOVDQU {64*h+32}(SI), Y1", f"\tVMOVDQU {128+32*h}(SI), Y2"] +
                     [run(k, h) for k in (1, 2, 3, 4)])

def finish(t):
    # The offset (32 x the scales times the 16-value sums) off, then the
    # integer sum scaled by d*xd into the token's float sum.
    i, f = IACC[t], FACC[t]
    return "\n".join([
        f"\tVMOVDQU {XB+32*t}(DI), Y15",
        "\tVPMADDWD 0(SP), Y15, Y15",
        "\tVPSLLD $5, Y15, Y15",
        f"\tVPSUBD Y15, {i}, {i}",
        f"\tVCVTDQ2PS {i}, {i}",
        f"\tVBROADCASTSS {XD+4*t}(DI), Y15",
        "\tVMULPS 32(SP), Y15, Y15",
        f"\tVFMADD231PS Y15, {i}, {f}",
    ])

def zero_iacc():
    return "\n".join(f"\tVPXOR {r}, {r}, {r}" for r in IACC)

def store(t):
    n = FACC[t][1:]
    return hsum(n, "0") + f"\n\tMOVSS X{n}, {4*t}(BX)"

s = f"""#include "textflag.h"

// One Q6_K row against four activations (prompt processing), AVX2+FMA+F16C.
// Per token, the sums are exactly those of rowsQ6_KAVX2 (q6k_amd64.s), so a
// token's result does not depend on the path: the super-block's int32 sums
// less the offset (32 x the scales times the activation's 16-value sums),
// scaled once by d*xd. Each 32-value run is rebuilt from its nibbles and bit
// pairs once for the four tokens, with its two scales. The activations are
// interleaved per super-block (Act.k4), as for dot4Q4_KAVX2.
// Stack: the int16 scales at 0, d at 32.

// func dot4Q6_KAVX2(row *byte, x *byte, nsb int, out *float32)
TEXT ·dot4Q6_KAVX2(SB), NOSPLIT, $64-32
	MOVQ row+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ nsb+16(FP), CX
	MOVQ out+24(FP), BX
	MOVL $0x0f0f0f0f, AX
	VMOVD AX, X14
	VPBROADCASTD X14, Y14
	MOVL $0x03030303, AX
	VMOVD AX, X13
	VPBROADCASTD X13, Y13
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	TESTQ CX, CX
	JE q6k4end
q6k4block:
	// d as an eight-lane vector and the scales as int16, to the stack.
	VPBROADCASTW 208(SI), X15
	VCVTPH2PS X15, Y15
	VMOVUPS Y15, 32(SP)
	VPMOVSXBW 192(SI), Y15
	VMOVDQU Y15, 0(SP)
{zero_iacc()}
{half(0)}
{half(1)}
{finish(0)}
{finish(1)}
{finish(2)}
{finish(3)}
	ADDQ $210, SI
	ADDQ ${GROUP}, DI
	DECQ CX
	JNE q6k4block
q6k4end:
{store(0)}
{store(1)}
{store(2)}
{store(3)}
	VZEROUPPER
	RET
"""

write(ROOT, "inferd/engine/kernels/q6k4_amd64.s", "q6k4.py", s)
