#!/usr/bin/env python3
# Pieces of Go assembly (amd64) that several kernel generators in this
# folder emit; imported by them, and writes nothing when run.
# Run `make kernels` after editing, then `go test ./inferd/engine/kernels`.

def consts(ones="15", mask="14"):
    # Y<ones> = int16 ones (VPMADDWD pair sums), Y<mask> = 0x0F bytes.
    return "\n".join([
        "\tMOVL $0x00010001, AX", f"\tVMOVD AX, X{ones}", f"\tVPBROADCASTD X{ones}, Y{ones}",
        "\tMOVL $0x0f0f0f0f, AX", f"\tVMOVD AX, X{mask}", f"\tVPBROADCASTD X{mask}, Y{mask}",
    ])

def hsum(acc, tmp):
    # The eight float32 lanes of Y<acc> added, pairwise, into X<acc>'s
    # first lane; X<tmp> is clobbered.
    return "\n".join([
        f"\tVEXTRACTF128 $1, Y{acc}, X{tmp}",
        f"\tVADDPS X{tmp}, X{acc}, X{acc}",
        f"\tVMOVHLPS X{acc}, X{acc}, X{tmp}",
        f"\tVADDPS X{tmp}, X{acc}, X{acc}",
        f"\tVMOVSHDUP X{acc}, X{tmp}",
        f"\tVADDSS X{tmp}, X{acc}, X{acc}",
    ])

# A Q4_K super-block's (at SI) six-bit scales into AX (sc0-3 low, sc4-7
# high) and mins into R10 (m0-3, m4-7), with 32-bit integer operations;
# DX, R11 and R15 are clobbered.
Q4K_SCALES_MINS = """	MOVL 4(SI), AX
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
	ORQ R11, R10"""
