#!/usr/bin/env python3
# Generates inferd/engine/kernels/q4k4_amd64.s (Go assembly, amd64): one Q4_K
# row against four activations (prompt processing). Run `make kernels` after
# editing, then `go test ./inferd/engine/kernels`.
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kasm import K4_GROUP, K4_XB, K4_XD, K4_XQ, write, consts, hsum, Q4K_SCALES_MINS
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")

XQ, XD, XB, GROUP = K4_XQ, K4_XD, K4_XB, K4_GROUP

def token(t):
    acc, accm = f"Y{4+t}", f"Y{8+t}"
    lines = [
        f"\t// Token {t}: the mins term, scaled by dmin*xd into {accm}.",
        f"\tVMOVDQU {XB+32*t}(DI), Y0",
        "\tVPMADDWD Y15, Y0, Y0",
        "\tVPMULLD 32(SP), Y0, Y0",
        "\tVCVTDQ2PS Y0, Y0",
        f"\tVBROADCASTSS {XD+4*t}(DI), Y12",
        "\tVMULPS 96(SP), Y12, Y13",
        f"\tVFMADD231PS Y13, Y0, {accm}",
        f"\t// Its scaled products, summed as int32 into Y2, then by d*xd into {acc}.",
    ]
    for j in range(4):
        lo, hi = XQ + 256*t + 64*j, XQ + 256*t + 64*j + 32
        lines += [
            f"\tVMOVDQU {16+32*j}(SI), Y0",
            "\tVPSRLW $4, Y0, Y1",
            "\tVPAND Y14, Y0, Y0",
            "\tVPAND Y14, Y1, Y1",
            f"\tVPMADDUBSW {lo}(DI), Y0, Y0",
            f"\tVPBROADCASTW {4*j}(SP), Y3",
            "\tVPMADDWD Y3, Y0, Y0",
            f"\tVPMADDUBSW {hi}(DI), Y1, Y1",
            f"\tVPBROADCASTW {4*j+2}(SP), Y3",
            "\tVPMADDWD Y3, Y1, Y1",
        ]
        if j == 0:
            lines += ["\tVPADDD Y1, Y0, Y2"]
        else:
            lines += ["\tVPADDD Y1, Y0, Y0", "\tVPADDD Y0, Y2, Y2"]
    lines += [
        "\tVCVTDQ2PS Y2, Y2",
        "\tVMULPS 64(SP), Y12, Y13",
        f"\tVFMADD231PS Y13, Y2, {acc}",
    ]
    return "\n".join(lines)

def store(t):
    acc, accm = f"Y{4+t}", f"Y{8+t}"
    return "\n".join([
        f"\tVSUBPS {accm}, {acc}, {acc}",
        hsum(4+t, 0),
        f"\tMOVSS X{4+t}, {4*t}(BX)",
    ])

s = f"""#include "textflag.h"

// One Q4_K row against four activations (prompt processing), AVX2+FMA+F16C.
// Per token, the sums are exactly those of rowsQ4_KAVX2 (q4k_amd64.s), so a
// token's result does not depend on the path: eight lanes of int32 sums per
// super-block scaled by d*xd, the mins terms by dmin*xd, added at the end.
// What the four tokens share is done once per super-block: the scales and
// mins unpacked, d and dmin converted; the weights' nibbles come from the
// first-level cache for the last three. The activations are interleaved per
// super-block (Act.k4): 4 x 256 int8, 4 float32 scales, 4 x 16 int16 sums.
// Stack: the int16 scales at 0, the int32 mins at 32, d at 64, dmin at 96.

// func dot4Q4_KAVX2(row *byte, x *byte, nsb int, out *float32)
TEXT ·dot4Q4_KAVX2(SB), NOSPLIT, $128-32
	MOVQ row+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ nsb+16(FP), CX
	MOVQ out+24(FP), BX
{consts()}
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	TESTQ CX, CX
	JE q4k4end
q4k4block:
	// d and dmin as eight-lane vectors, to the stack.
	VPBROADCASTW (SI), X0
	VCVTPH2PS X0, Y0
	VMOVUPS Y0, 64(SP)
	VPBROADCASTW 2(SI), X0
	VCVTPH2PS X0, Y0
	VMOVUPS Y0, 96(SP)
	// Unpack scales (AX: sc0-3, DX: sc4-7) and mins (R10: m0-3, R11: m4-7),
	// as rowsQ4_KAVX2 does.
{Q4K_SCALES_MINS}
	// The mins as int32 lanes and the scales as int16, to the stack.
	VMOVQ R10, X1
	VPMOVZXBD X1, Y1
	VMOVDQU Y1, 32(SP)
	VMOVQ AX, X0
	VPMOVZXBW X0, X0
	VMOVDQU X0, 0(SP)
{token(0)}
{token(1)}
{token(2)}
{token(3)}
	ADDQ $144, SI
	ADDQ ${GROUP}, DI
	DECQ CX
	JNE q4k4block
q4k4end:
{store(0)}
{store(1)}
{store(2)}
{store(3)}
	VZEROUPPER
	RET
"""

write(ROOT, "inferd/engine/kernels/q4k4_amd64.s", "q4k4.py", s)
