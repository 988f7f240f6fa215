#include "textflag.h"

// ggml's vectorised e^x (ggml_v_expf, AVX2) over eight lanes, as Exp
// computes each one but with float32 fused multiply-adds throughout, so
// that softmax and SiLU round as llama.cpp's do on x86, eight values at a
// time. The constants, eight copies each (AVX2 has no broadcast operand):
// 0 the rounding shift 0x1.8p23, 32 log2(e), 64 and 96 ln 2 in two parts,
// 128-256 the polynomial's p5..p1, 288 1.0, 320 the absolute-value mask,
// 352 126, 384 192, 416 0x82000000, 448 0x7f000000, 480 the sign bit.
DATA expc<>+0(SB)/4, $0x4b400000
DATA expc<>+4(SB)/4, $0x4b400000
DATA expc<>+8(SB)/4, $0x4b400000
DATA expc<>+12(SB)/4, $0x4b400000
DATA expc<>+16(SB)/4, $0x4b400000
DATA expc<>+20(SB)/4, $0x4b400000
DATA expc<>+24(SB)/4, $0x4b400000
DATA expc<>+28(SB)/4, $0x4b400000
DATA expc<>+32(SB)/4, $0x3fb8aa3b
DATA expc<>+36(SB)/4, $0x3fb8aa3b
DATA expc<>+40(SB)/4, $0x3fb8aa3b
DATA expc<>+44(SB)/4, $0x3fb8aa3b
DATA expc<>+48(SB)/4, $0x3fb8aa3b
DATA expc<>+52(SB)/4, $0x3fb8aa3b
DATA expc<>+56(SB)/4, $0x3fb8aa3b
DATA expc<>+60(SB)/4, $0x3fb8aa3b
DATA expc<>+64(SB)/4, $0x3f317200
DATA expc<>+68(SB)/4, $0x3f317200
DATA expc<>+72(SB)/4, $0x3f317200
DATA expc<>+76(SB)/4, $0x3f317200
DATA expc<>+80(SB)/4, $0x3f317200
DATA expc<>+84(SB)/4, $0x3f317200
DATA expc<>+88(SB)/4, $0x3f317200
DATA expc<>+92(SB)/4, $0x3f317200
DATA expc<>+96(SB)/4, $0x35bfbe8e
DATA expc<>+100(SB)/4, $0x35bfbe8e
DATA expc<>+104(SB)/4, $0x35bfbe8e
DATA expc<>+108(SB)/4, $0x35bfbe8e
DATA expc<>+112(SB)/4, $0x35bfbe8e
DATA expc<>+116(SB)/4, $0x35bfbe8e
DATA expc<>+120(SB)/4, $0x35bfbe8e
DATA expc<>+124(SB)/4, $0x35bfbe8e
DATA expc<>+128(SB)/4, $0x3c072010
DATA expc<>+132(SB)/4, $0x3c072010
DATA expc<>+136(SB)/4, $0x3c072010
DATA expc<>+140(SB)/4, $0x3c072010
DATA expc<>+144(SB)/4, $0x3c072010
DATA expc<>+148(SB)/4, $0x3c072010
DATA expc<>+152(SB)/4, $0x3c072010
DATA expc<>+156(SB)/4, $0x3c072010
DATA expc<>+160(SB)/4, $0x3d2b9f17
DATA expc<>+164(SB)/4, $0x3d2b9f17
DATA expc<>+168(SB)/4, $0x3d2b9f17
DATA expc<>+172(SB)/4, $0x3d2b9f17
DATA expc<>+176(SB)/4, $0x3d2b9f17
DATA expc<>+180(SB)/4, $0x3d2b9f17
DATA expc<>+184(SB)/4, $0x3d2b9f17
DATA expc<>+188(SB)/4, $0x3d2b9f17
DATA expc<>+192(SB)/4, $0x3e2aaf33
DATA expc<>+196(SB)/4, $0x3e2aaf33
DATA expc<>+200(SB)/4, $0x3e2aaf33
DATA expc<>+204(SB)/4, $0x3e2aaf33
DATA expc<>+208(SB)/4, $0x3e2aaf33
DATA expc<>+212(SB)/4, $0x3e2aaf33
DATA expc<>+216(SB)/4, $0x3e2aaf33
DATA expc<>+220(SB)/4, $0x3e2aaf33
DATA expc<>+224(SB)/4, $0x3efffedb
DATA expc<>+228(SB)/4, $0x3efffedb
DATA expc<>+232(SB)/4, $0x3efffedb
DATA expc<>+236(SB)/4, $0x3efffedb
DATA expc<>+240(SB)/4, $0x3efffedb
DATA expc<>+244(SB)/4, $0x3efffedb
DATA expc<>+248(SB)/4, $0x3efffedb
DATA expc<>+252(SB)/4, $0x3efffedb
DATA expc<>+256(SB)/4, $0x3f7ffff6
DATA expc<>+260(SB)/4, $0x3f7ffff6
DATA expc<>+264(SB)/4, $0x3f7ffff6
DATA expc<>+268(SB)/4, $0x3f7ffff6
DATA expc<>+272(SB)/4, $0x3f7ffff6
DATA expc<>+276(SB)/4, $0x3f7ffff6
DATA expc<>+280(SB)/4, $0x3f7ffff6
DATA expc<>+284(SB)/4, $0x3f7ffff6
DATA expc<>+288(SB)/4, $0x3f800000
DATA expc<>+292(SB)/4, $0x3f800000
DATA expc<>+296(SB)/4, $0x3f800000
DATA expc<>+300(SB)/4, $0x3f800000
DATA expc<>+304(SB)/4, $0x3f800000
DATA expc<>+308(SB)/4, $0x3f800000
DATA expc<>+312(SB)/4, $0x3f800000
DATA expc<>+316(SB)/4, $0x3f800000
DATA expc<>+320(SB)/4, $0x7fffffff
DATA expc<>+324(SB)/4, $0x7fffffff
DATA expc<>+328(SB)/4, $0x7fffffff
DATA expc<>+332(SB)/4, $0x7fffffff
DATA expc<>+336(SB)/4, $0x7fffffff
DATA expc<>+340(SB)/4, $0x7fffffff
DATA expc<>+344(SB)/4, $0x7fffffff
DATA expc<>+348(SB)/4, $0x7fffffff
DATA expc<>+352(SB)/4, $0x42fc0000
DATA expc<>+356(SB)/4, $0x42fc0000
DATA expc<>+360(SB)/4, $0x42fc0000
DATA expc<>+364(SB)/4, $0x42fc0000
DATA expc<>+368(SB)/4, $0x42fc0000
DATA expc<>+372(SB)/4, $0x42fc0000
DATA expc<>+376(SB)/4, $0x42fc0000
DATA expc<>+380(SB)/4, $0x42fc0000
DATA expc<>+384(SB)/4, $0x43400000
DATA expc<>+388(SB)/4, $0x43400000
DATA expc<>+392(SB)/4, $0x43400000
DATA expc<>+396(SB)/4, $0x43400000
DATA expc<>+400(SB)/4, $0x43400000
DATA expc<>+404(SB)/4, $0x43400000
DATA expc<>+408(SB)/4, $0x43400000
DATA expc<>+412(SB)/4, $0x43400000
DATA expc<>+416(SB)/4, $0x82000000
DATA expc<>+420(SB)/4, $0x82000000
DATA expc<>+424(SB)/4, $0x82000000
DATA expc<>+428(SB)/4, $0x82000000
DATA expc<>+432(SB)/4, $0x82000000
DATA expc<>+436(SB)/4, $0x82000000
DATA expc<>+440(SB)/4, $0x82000000
DATA expc<>+444(SB)/4, $0x82000000
DATA expc<>+448(SB)/4, $0x7f000000
DATA expc<>+452(SB)/4, $0x7f000000
DATA expc<>+456(SB)/4, $0x7f000000
DATA expc<>+460(SB)/4, $0x7f000000
DATA expc<>+464(SB)/4, $0x7f000000
DATA expc<>+468(SB)/4, $0x7f000000
DATA expc<>+472(SB)/4, $0x7f000000
DATA expc<>+476(SB)/4, $0x7f000000
DATA expc<>+480(SB)/4, $0x80000000
DATA expc<>+484(SB)/4, $0x80000000
DATA expc<>+488(SB)/4, $0x80000000
DATA expc<>+492(SB)/4, $0x80000000
DATA expc<>+496(SB)/4, $0x80000000
DATA expc<>+500(SB)/4, $0x80000000
DATA expc<>+504(SB)/4, $0x80000000
DATA expc<>+508(SB)/4, $0x80000000
GLOBL expc<>(SB), RODATA|NOPTR, $512

// EXP8 sets Y0 to e^Y0 on eight lanes (ggml_v_expf); it clobbers Y1-Y7,
// Y9-Y11 and AX, and jumps to done as soon as Y0 holds the result.
#define EXP8(done) \
	VMOVUPS expc<>+0(SB), Y1; \
	VFMADD231PS expc<>+32(SB), Y0, Y1; \
	VSUBPS expc<>+0(SB), Y1, Y2; \
	VFNMADD231PS expc<>+64(SB), Y2, Y0; \
	VFNMADD231PS expc<>+96(SB), Y2, Y0; \
	VPSLLD $23, Y1, Y1; \
	VPADDD expc<>+288(SB), Y1, Y3; \
	VMULPS Y0, Y0, Y4; \
	VMOVUPS expc<>+160(SB), Y5; \
	VFMADD231PS expc<>+128(SB), Y0, Y5; \
	VMOVUPS expc<>+224(SB), Y6; \
	VFMADD231PS expc<>+192(SB), Y0, Y6; \
	VFMADD231PS Y4, Y5, Y6; \
	VMULPS expc<>+256(SB), Y0, Y7; \
	VFMADD231PS Y4, Y6, Y7; \
	VANDPS expc<>+320(SB), Y2, Y9; \
	VCMPPS $0x1e, expc<>+352(SB), Y9, Y10; \
	VMOVMSKPS Y10, AX; \
	VMOVAPS Y3, Y0; \
	VFMADD231PS Y7, Y3, Y0; \
	TESTL AX, AX; \
	JEQ done; \
	VXORPS Y11, Y11, Y11; \
	VCMPPS $0x12, Y11, Y2, Y11; \
	VANDPS expc<>+416(SB), Y11, Y11; \
	VPADDD expc<>+448(SB), Y11, Y4; \
	VPSUBD Y11, Y1, Y5; \
	VMOVAPS Y5, Y6; \
	VFMADD231PS Y7, Y5, Y6; \
	VMULPS Y4, Y6, Y6; \
	VBLENDVPS Y10, Y6, Y0, Y0; \
	VCMPPS $0x1e, expc<>+384(SB), Y9, Y10; \
	VMULPS Y4, Y4, Y6; \
	VBLENDVPS Y10, Y6, Y0, Y0

// func expShiftedAVX2(x *float32, n int, shift float32)
// x[i] = e^(x[i]-shift) for n (a multiple of 8) values.
TEXT ·expShiftedAVX2(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VBROADCASTSS shift+16(FP), Y12
	SHRQ $3, CX
	JEQ expdone
exploop:
	VMOVUPS (SI), Y0
	VSUBPS Y12, Y0, Y0
	EXP8(expstore)
expstore:
	VMOVUPS Y0, (SI)
	ADDQ $32, SI
	DECQ CX
	JNE exploop
expdone:
	VZEROUPPER
	RET

// func siluMulAVX2(gate, up *float32, n int)
// gate[i] = gate[i] / (1 + e^-gate[i]) * up[i] for n (a multiple of 8) values.
TEXT ·siluMulAVX2(SB), NOSPLIT, $0-24
	MOVQ gate+0(FP), SI
	MOVQ up+8(FP), DI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	JEQ siludone
siluloop:
	VMOVUPS (SI), Y12
	VXORPS expc<>+480(SB), Y12, Y0
	EXP8(silurest)
silurest:
	VADDPS expc<>+288(SB), Y0, Y0
	VDIVPS Y0, Y12, Y12
	VMULPS (DI), Y12, Y12
	VMOVUPS Y12, (SI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNE siluloop
siludone:
	VZEROUPPER
	RET

// Constants of quantQ8_0AVX2: the absolute-value mask (eight copies),
// 127.0, and the dword order that undoes the packs' lane interleaving.
DATA q8c<>+0(SB)/4, $0x7fffffff
DATA q8c<>+4(SB)/4, $0x7fffffff
DATA q8c<>+8(SB)/4, $0x7fffffff
DATA q8c<>+12(SB)/4, $0x7fffffff
DATA q8c<>+16(SB)/4, $0x7fffffff
DATA q8c<>+20(SB)/4, $0x7fffffff
DATA q8c<>+24(SB)/4, $0x7fffffff
DATA q8c<>+28(SB)/4, $0x7fffffff
DATA q8c<>+32(SB)/4, $0x42fe0000
DATA q8c<>+36(SB)/4, $0
DATA q8c<>+40(SB)/4, $0
DATA q8c<>+44(SB)/4, $0
DATA q8c<>+48(SB)/4, $0
DATA q8c<>+52(SB)/4, $0
DATA q8c<>+56(SB)/4, $0
DATA q8c<>+60(SB)/4, $0
DATA q8c<>+64(SB)/4, $0
DATA q8c<>+68(SB)/4, $4
DATA q8c<>+72(SB)/4, $1
DATA q8c<>+76(SB)/4, $5
DATA q8c<>+80(SB)/4, $2
DATA q8c<>+84(SB)/4, $6
DATA q8c<>+88(SB)/4, $3
DATA q8c<>+92(SB)/4, $7
GLOBL q8c<>(SB), RODATA|NOPTR, $96

// func quantQ8_0AVX2(x *float32, nb int, q *int8, amax *uint32, sum *int32)
// Per block of 32 values, as setBlocks32's loop: amax the largest |x| (its
// bits), the values times 127/amax (0 when amax is 0) rounded to nearest
// even into q, and sum their sum.
TEXT ·quantQ8_0AVX2(SB), NOSPLIT, $0-40
	MOVQ x+0(FP), SI
	MOVQ nb+8(FP), CX
	MOVQ q+16(FP), DI
	MOVQ amax+24(FP), R8
	MOVQ sum+32(FP), R9
	VMOVDQU q8c<>+0(SB), Y15
	VMOVDQU q8c<>+64(SB), Y14
	TESTQ CX, CX
	JE q8done
q8loop:
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS 64(SI), Y2
	VMOVUPS 96(SI), Y3
	VPAND Y15, Y0, Y4
	VPAND Y15, Y1, Y5
	VPAND Y15, Y2, Y6
	VPAND Y15, Y3, Y7
	VPMAXUD Y5, Y4, Y4
	VPMAXUD Y7, Y6, Y6
	VPMAXUD Y6, Y4, Y4
	VEXTRACTI128 $1, Y4, X5
	VPMAXUD X5, X4, X4
	VPSHUFD $0x4e, X4, X5
	VPMAXUD X5, X4, X4
	VPSHUFD $0xb1, X4, X5
	VPMAXUD X5, X4, X4
	VMOVD X4, (R8)
	VMOVSS q8c<>+32(SB), X6
	VDIVSS X4, X6, X6
	VXORPS X7, X7, X7
	VCMPSS $4, X7, X4, X7
	VANDPS X7, X6, X6
	VBROADCASTSS X6, Y6
	VMULPS Y6, Y0, Y0
	VMULPS Y6, Y1, Y1
	VMULPS Y6, Y2, Y2
	VMULPS Y6, Y3, Y3
	VCVTPS2DQ Y0, Y0
	VCVTPS2DQ Y1, Y1
	VCVTPS2DQ Y2, Y2
	VCVTPS2DQ Y3, Y3
	VPADDD Y1, Y0, Y8
	VPADDD Y3, Y2, Y9
	VPADDD Y9, Y8, Y8
	VEXTRACTI128 $1, Y8, X9
	VPADDD X9, X8, X8
	VPSHUFD $0x4e, X8, X9
	VPADDD X9, X8, X8
	VPSHUFD $0xb1, X8, X9
	VPADDD X9, X8, X8
	VMOVD X8, (R9)
	VPACKSSDW Y1, Y0, Y0
	VPACKSSDW Y3, Y2, Y2
	VPACKSSWB Y2, Y0, Y0
	VPERMD Y0, Y14, Y0
	VMOVDQU Y0, (DI)
	ADDQ $128, SI
	ADDQ $32, DI
	ADDQ $4, R8
	ADDQ $4, R9
	DECQ CX
	JNE q8loop
q8done:
	VZEROUPPER
	RET
