#include "textflag.h"

// NEON kernels for arm64 CPUs with the dot-product extension (ARMv8.2
// DOTPROD: Cortex-A55/A75 and later, Neoverse, Apple). SDOT, SCVTF and
// FADDP are written as their encodings, which Go's assembler does not
// spell: SDOT Vd.4S, Vn.16B, Vm.16B is 0x4E809400 | Rm<<16 | Rn<<5 | Rd.

// func dotQ8_0NEON(row *byte, xq *int8, xd *float32, nb int, table *float32) float32
TEXT ·dotQ8_0NEON(SB), NOSPLIT, $0-44
	MOVD row+0(FP), R0
	MOVD xq+8(FP), R1
	MOVD xd+16(FP), R2
	MOVD nb+24(FP), R3
	MOVD table+32(FP), R8
	VEOR V8.B16, V8.B16, V8.B16
	CBZ R3, q8done
q8loop:
	MOVHU (R0), R5
	FMOVS (R8)(R5<<2), F6
	FMOVS.P 4(R2), F7
	FMULS F7, F6, F6
	VDUP V6.S[0], V6.S4
	ADD $2, R0, R4
	VLD1 (R4), [V0.B16, V1.B16]
	VLD1.P 32(R1), [V2.B16, V3.B16]
	VEOR V4.B16, V4.B16, V4.B16
	WORD $0x4E829404 // SDOT V4.4S, V0.16B, V2.16B
	WORD $0x4E839424 // SDOT V4.4S, V1.16B, V3.16B
	WORD $0x4E21D884 // SCVTF V4.4S, V4.4S
	VFMLA V4.S4, V6.S4, V8.S4
	ADD $34, R0
	SUBS $1, R3, R3
	BNE q8loop
q8done:
	WORD $0x6E28D508 // FADDP V8.4S, V8.4S, V8.4S
	WORD $0x7E30D908 // FADDP S8, V8.2S
	FMOVS F8, ret+40(FP)
	RET

// func dotQ4_0NEON(row *byte, xq *int8, xd *float32, nb int, table *float32) float32
TEXT ·dotQ4_0NEON(SB), NOSPLIT, $0-44
	MOVD row+0(FP), R0
	MOVD xq+8(FP), R1
	MOVD xd+16(FP), R2
	MOVD nb+24(FP), R3
	MOVD table+32(FP), R8
	VEOR V8.B16, V8.B16, V8.B16
	VMOVI $15, V9.B16
	VMOVI $8, V10.B16
	CBZ R3, q4done
q4loop:
	MOVHU (R0), R5
	FMOVS (R8)(R5<<2), F6
	FMOVS.P 4(R2), F7
	FMULS F7, F6, F6
	VDUP V6.S[0], V6.S4
	ADD $2, R0, R4
	VLD1 (R4), [V0.B16]
	VUSHR $4, V0.B16, V1.B16
	VAND V9.B16, V0.B16, V0.B16
	WORD $0x6E2A8400 // SUB V0.16B, V0.16B, V10.16B
	WORD $0x6E2A8421 // SUB V1.16B, V1.16B, V10.16B
	VLD1.P 32(R1), [V2.B16, V3.B16]
	VEOR V4.B16, V4.B16, V4.B16
	WORD $0x4E829404 // SDOT V4.4S, V0.16B, V2.16B
	WORD $0x4E839424 // SDOT V4.4S, V1.16B, V3.16B
	WORD $0x4E21D884 // SCVTF V4.4S, V4.4S
	VFMLA V4.S4, V6.S4, V8.S4
	ADD $18, R0
	SUBS $1, R3, R3
	BNE q4loop
q4done:
	WORD $0x6E28D508 // FADDP V8.4S, V8.4S, V8.4S
	WORD $0x7E30D908 // FADDP S8, V8.2S
	FMOVS F8, ret+40(FP)
	RET
