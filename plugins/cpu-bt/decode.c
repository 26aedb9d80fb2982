/* cpu-bt: table-driven x86 decoder for 16-, 32- and 64-bit code. Tables
 * follow the opcode maps of the Intel SDM vol. 2 appendix A (operand
 * addressing methods E G M I J O S C D V W ... and size codes b w d q v z y);
 * instruction format and prefix rules from SDM vol. 2 ch. 2.
 */
#include "decode.h"

#include <stdbool.h>
#include <string.h>

/* Tables list a range first and then its exceptions. */
#pragma GCC diagnostic ignored "-Woverride-init"

const char *const bt_op_names[BT_OP_COUNT] = {
#define BT_OP_NAME(n) #n,
	BT_OPS(BT_OP_NAME)
#undef BT_OP_NAME
};

/* Operand specification: method(6) | size(5) | fixed register(5). */
enum {
	M_NONE, M_E, M_G, M_M, M_R, M_RR, M_I, M_IS, M_J, M_O, M_S, M_C, M_D,
	M_Z, M_FIX, M_FSEG, M_ONE, M_A, M_V, M_W, M_P, M_Q, M_U, M_N,
};
enum {
	SZ_0, SZ_B, SZ_W, SZ_D, SZ_Q, SZ_V, SZ_Z, SZ_Y, SZ_P, SZ_DQ, SZ_S,
	SZ_RVMW, SZ_CR, SZ_A, SZ_T,
};
#define SP(m, s, r) ((uint16_t)((m) << 10 | (s) << 5 | (r)))
#define Eb SP(M_E, SZ_B, 0)
#define Ew SP(M_E, SZ_W, 0)
#define Ed SP(M_E, SZ_D, 0)
#define Ev SP(M_E, SZ_V, 0)
#define Ey SP(M_E, SZ_Y, 0)
#define Erw SP(M_E, SZ_RVMW, 0)
#define Gb SP(M_G, SZ_B, 0)
#define Gw SP(M_G, SZ_W, 0)
#define Gv SP(M_G, SZ_V, 0)
#define Gy SP(M_G, SZ_Y, 0)
#define Gz SP(M_G, SZ_Z, 0)
#define Mx SP(M_M, SZ_0, 0)
#define Mp SP(M_M, SZ_P, 0)
#define Ms SP(M_M, SZ_S, 0)
#define Ma SP(M_M, SZ_A, 0)
#define My SP(M_M, SZ_Y, 0)
#define Mq SP(M_M, SZ_Q, 0)
#define Rcr SP(M_RR, SZ_CR, 0)
#define Ib SP(M_I, SZ_B, 0)
#define Iw SP(M_I, SZ_W, 0)
#define Iz SP(M_IS, SZ_Z, 0)
#define Iv SP(M_I, SZ_V, 0)
#define Ibs SP(M_IS, SZ_B, 0)
#define Jb SP(M_J, SZ_B, 0)
#define Jz SP(M_J, SZ_Z, 0)
#define Ob SP(M_O, SZ_B, 0)
#define Ov SP(M_O, SZ_V, 0)
#define Sw SP(M_S, SZ_W, 0)
#define Cd SP(M_C, SZ_CR, 0)
#define Dd SP(M_D, SZ_CR, 0)
#define Zb SP(M_Z, SZ_B, 0)
#define Zv SP(M_Z, SZ_V, 0)
#define Zy SP(M_Z, SZ_Y, 0)
#define AL SP(M_FIX, SZ_B, 0)
#define CL SP(M_FIX, SZ_B, 1)
#define DX SP(M_FIX, SZ_W, 2)
#define rAX SP(M_FIX, SZ_V, 0)
#define eAX SP(M_FIX, SZ_Z, 0)
#define ONE SP(M_ONE, SZ_B, 0)
#define Ap SP(M_A, SZ_P, 0)
#define FSEG(n) SP(M_FSEG, SZ_W, n)
#define Ex SP(M_E, SZ_0, 0)

#define F_MODRM 0x001
#define F_D64   0x002 /* 64-bit operand size by default in long mode */
#define F_F64   0x004 /* 64-bit operand size always in long mode */
#define F_I64   0x008 /* invalid in 64-bit mode */
#define F_O64   0x010 /* valid only in 64-bit mode */
#define F_BYTE  0x020 /* byte operation */
#define F_GRP   0x040 /* op is a group number; ModRM.reg selects */
#define F_SSE   0x080 /* SSE/MMX form: reg, r/m (+imm8 with F_IMM8) */
#define F_IMM8  0x100
#define F_MMX   0x200 /* without a mandatory prefix the registers are MMX */
#define F_G0    0x400 /* SSE form whose reg operand is a GPR */
#define F_E1    0x800 /* SSE form whose r/m operand is a GPR */

struct op_entry {
	uint16_t op;
	uint16_t flags;
	uint16_t a[3];
};

#define O(o, f, ...) { BT_OP_##o, (f), { __VA_ARGS__ } }
#define GR(g, f, ...) { g, F_GRP | (f), { __VA_ARGS__ } }
#define ALU(o, b) \
	[b + 0] = O(o, F_MODRM | F_BYTE, Eb, Gb), \
	[b + 1] = O(o, F_MODRM, Ev, Gv), \
	[b + 2] = O(o, F_MODRM | F_BYTE, Gb, Eb), \
	[b + 3] = O(o, F_MODRM, Gv, Ev), \
	[b + 4] = O(o, F_BYTE, AL, Ib), \
	[b + 5] = O(o, 0, rAX, Iz)
#define R8(b, ...) [b + 0] = __VA_ARGS__, [b + 1] = __VA_ARGS__, \
	[b + 2] = __VA_ARGS__, [b + 3] = __VA_ARGS__, [b + 4] = __VA_ARGS__, \
	[b + 5] = __VA_ARGS__, [b + 6] = __VA_ARGS__, [b + 7] = __VA_ARGS__
#define R16(b, ...) R8(b, __VA_ARGS__), R8(b + 8, __VA_ARGS__)

enum { G1, G1A, G2, G3B, G3V, G4, G5, G6, G7, G8, G9, G11B, G11V, G15,
       G16, GNUM };

static const struct op_entry map1[256] = {
	ALU(ADD, 0x00), ALU(OR, 0x08), ALU(ADC, 0x10), ALU(SBB, 0x18),
	ALU(AND, 0x20), ALU(SUB, 0x28), ALU(XOR, 0x30), ALU(CMP, 0x38),
	[0x06] = O(PUSH, F_I64, FSEG(BT_ES)), [0x07] = O(POP, F_I64, FSEG(BT_ES)),
	[0x0E] = O(PUSH, F_I64, FSEG(BT_CS)),
	[0x16] = O(PUSH, F_I64, FSEG(BT_SS)), [0x17] = O(POP, F_I64, FSEG(BT_SS)),
	[0x1E] = O(PUSH, F_I64, FSEG(BT_DS)), [0x1F] = O(POP, F_I64, FSEG(BT_DS)),
	[0x27] = O(DAA, F_I64), [0x2F] = O(DAS, F_I64),
	[0x37] = O(AAA, F_I64), [0x3F] = O(AAS, F_I64),
	R8(0x40, O(INC, F_I64, Zv)), R8(0x48, O(DEC, F_I64, Zv)),
	R8(0x50, O(PUSH, F_D64, Zv)), R8(0x58, O(POP, F_D64, Zv)),
	[0x60] = O(PUSHA, F_I64), [0x61] = O(POPA, F_I64),
	[0x62] = O(BOUND, F_I64 | F_MODRM, Gv, Ma),
	[0x63] = O(ARPL, F_MODRM, Ew, Gw),
	[0x68] = O(PUSH, F_D64, Iz), [0x69] = O(IMUL3, F_MODRM, Gv, Ev, Iz),
	[0x6A] = O(PUSH, F_D64, Ibs), [0x6B] = O(IMUL3, F_MODRM, Gv, Ev, Ibs),
	[0x6C] = O(INS, F_BYTE), [0x6D] = O(INS, 0),
	[0x6E] = O(OUTS, F_BYTE), [0x6F] = O(OUTS, 0),
	R16(0x70, O(JCC, F_F64, Jb)),
	[0x80] = GR(G1, F_MODRM | F_BYTE, Eb, Ib),
	[0x81] = GR(G1, F_MODRM, Ev, Iz),
	[0x82] = GR(G1, F_MODRM | F_BYTE | F_I64, Eb, Ib),
	[0x83] = GR(G1, F_MODRM, Ev, Ibs),
	[0x84] = O(TEST, F_MODRM | F_BYTE, Eb, Gb), [0x85] = O(TEST, F_MODRM, Ev, Gv),
	[0x86] = O(XCHG, F_MODRM | F_BYTE, Eb, Gb), [0x87] = O(XCHG, F_MODRM, Ev, Gv),
	[0x88] = O(MOV, F_MODRM | F_BYTE, Eb, Gb), [0x89] = O(MOV, F_MODRM, Ev, Gv),
	[0x8A] = O(MOV, F_MODRM | F_BYTE, Gb, Eb), [0x8B] = O(MOV, F_MODRM, Gv, Ev),
	[0x8C] = O(MOVSEG, F_MODRM, Erw, Sw), [0x8D] = O(LEA, F_MODRM, Gv, Mx),
	[0x8E] = O(MOVSEG, F_MODRM, Sw, Ew), [0x8F] = GR(G1A, F_MODRM | F_D64),
	R8(0x90, O(XCHG, 0, Zv, rAX)), [0x90] = O(NOP, 0),
	[0x98] = O(CBW, 0), [0x99] = O(CWD, 0), [0x9A] = O(CALLF, F_I64, Ap),
	[0x9B] = O(X87, 0), [0x9C] = O(PUSHF, F_D64), [0x9D] = O(POPF, F_D64),
	[0x9E] = O(SAHF, 0), [0x9F] = O(LAHF, 0),
	[0xA0] = O(MOV, F_BYTE, AL, Ob), [0xA1] = O(MOV, 0, rAX, Ov),
	[0xA2] = O(MOV, F_BYTE, Ob, AL), [0xA3] = O(MOV, 0, Ov, rAX),
	[0xA4] = O(MOVS, F_BYTE), [0xA5] = O(MOVS, 0),
	[0xA6] = O(CMPS, F_BYTE), [0xA7] = O(CMPS, 0),
	[0xA8] = O(TEST, F_BYTE, AL, Ib), [0xA9] = O(TEST, 0, rAX, Iz),
	[0xAA] = O(STOS, F_BYTE), [0xAB] = O(STOS, 0),
	[0xAC] = O(LODS, F_BYTE), [0xAD] = O(LODS, 0),
	[0xAE] = O(SCAS, F_BYTE), [0xAF] = O(SCAS, 0),
	R8(0xB0, O(MOV, F_BYTE, Zb, Ib)), R8(0xB8, O(MOV, 0, Zv, Iv)),
	[0xC0] = GR(G2, F_MODRM | F_BYTE, Eb, Ib),
	[0xC1] = GR(G2, F_MODRM, Ev, Ib),
	[0xC2] = O(RET, F_F64, Iw), [0xC3] = O(RET, F_F64),
	[0xC4] = O(LES, F_I64 | F_MODRM, Gz, Mp),
	[0xC5] = O(LDS, F_I64 | F_MODRM, Gz, Mp),
	[0xC6] = GR(G11B, F_MODRM | F_BYTE, Eb, Ib),
	[0xC7] = GR(G11V, F_MODRM, Ev, Iz),
	[0xC8] = O(ENTER, F_D64, Iw, Ib), [0xC9] = O(LEAVE, F_D64),
	[0xCA] = O(RETF, 0, Iw), [0xCB] = O(RETF, 0),
	[0xCC] = O(INT3, 0), [0xCD] = O(INT, 0, Ib), [0xCE] = O(INTO, F_I64),
	[0xCF] = O(IRET, 0),
	[0xD0] = GR(G2, F_MODRM | F_BYTE, Eb, ONE),
	[0xD1] = GR(G2, F_MODRM, Ev, ONE),
	[0xD2] = GR(G2, F_MODRM | F_BYTE, Eb, CL),
	[0xD3] = GR(G2, F_MODRM, Ev, CL),
	[0xD4] = O(AAM, F_I64, Ib), [0xD5] = O(AAD, F_I64, Ib),
	[0xD6] = O(SALC, F_I64), [0xD7] = O(XLAT, 0),
	R8(0xD8, O(X87, F_MODRM, Ex)),
	[0xE0] = O(LOOPNE, F_F64, Jb), [0xE1] = O(LOOPE, F_F64, Jb),
	[0xE2] = O(LOOP, F_F64, Jb), [0xE3] = O(JCXZ, F_F64, Jb),
	[0xE4] = O(IN, F_BYTE, AL, Ib), [0xE5] = O(IN, 0, eAX, Ib),
	[0xE6] = O(OUT, F_BYTE, Ib, AL), [0xE7] = O(OUT, 0, Ib, eAX),
	[0xE8] = O(CALL, F_F64, Jz), [0xE9] = O(JMP, F_F64, Jz),
	[0xEA] = O(JMPF, F_I64, Ap), [0xEB] = O(JMP, F_F64, Jb),
	[0xEC] = O(IN, F_BYTE, AL, DX), [0xED] = O(IN, 0, eAX, DX),
	[0xEE] = O(OUT, F_BYTE, DX, AL), [0xEF] = O(OUT, 0, DX, eAX),
	[0xF1] = O(INT1, 0), [0xF4] = O(HLT, 0), [0xF5] = O(CMC, 0),
	[0xF6] = GR(G3B, F_MODRM | F_BYTE),
	[0xF7] = GR(G3V, F_MODRM),
	[0xF8] = O(CLC, 0), [0xF9] = O(STC, 0), [0xFA] = O(CLI, 0),
	[0xFB] = O(STI, 0), [0xFC] = O(CLD, 0), [0xFD] = O(STD, 0),
	[0xFE] = GR(G4, F_MODRM | F_BYTE),
	[0xFF] = GR(G5, F_MODRM),
};

#define SSE(f) O(SSE, F_MODRM | F_SSE | (f))
#define Vx SP(M_V, SZ_DQ, 0)

static const struct op_entry map2[256] = {
	[0x00] = GR(G6, F_MODRM), [0x01] = GR(G7, F_MODRM),
	[0x02] = O(LAR, F_MODRM, Gv, Ew), [0x03] = O(LSL, F_MODRM, Gv, Ew),
	[0x05] = O(SYSCALL, 0), [0x06] = O(CLTS, 0), [0x07] = O(SYSRET, 0),
	[0x08] = O(INVD, 0), [0x09] = O(WBINVD, 0), [0x0B] = O(UD, 0),
	[0x0D] = O(PREFETCH, F_MODRM, Mx),
	R8(0x10, SSE(0)), [0x18] = GR(G16, F_MODRM),
	[0x19] = O(NOP, F_MODRM, Ev), [0x1A] = O(NOP, F_MODRM, Ev),
	[0x1B] = O(NOP, F_MODRM, Ev), [0x1C] = O(NOP, F_MODRM, Ev),
	[0x1D] = O(NOP, F_MODRM, Ev), [0x1E] = O(NOP, F_MODRM, Ev),
	[0x1F] = O(NOP, F_MODRM, Ev),
	[0x20] = O(MOVCR, F_MODRM, Rcr, Cd), [0x21] = O(MOVDR, F_MODRM, Rcr, Dd),
	[0x22] = O(MOVCR, F_MODRM, Cd, Rcr), [0x23] = O(MOVDR, F_MODRM, Dd, Rcr),
	R8(0x28, SSE(0)), [0x2A] = SSE(F_E1), [0x2C] = SSE(F_G0),
	[0x2D] = SSE(F_G0),
	[0x30] = O(WRMSR, 0), [0x31] = O(RDTSC, 0), [0x32] = O(RDMSR, 0),
	[0x33] = O(RDPMC, 0), [0x34] = O(SYSENTER, 0), [0x35] = O(SYSEXIT, 0),
	R16(0x40, O(CMOVCC, F_MODRM, Gv, Ev)),
	R16(0x50, SSE(0)), [0x50] = SSE(F_G0),
	R16(0x60, SSE(F_MMX)), [0x6E] = SSE(F_MMX | F_E1),
	[0x70] = SSE(F_MMX | F_IMM8), [0x71] = SSE(F_MMX | F_IMM8),
	[0x72] = SSE(F_MMX | F_IMM8), [0x73] = SSE(F_MMX | F_IMM8),
	[0x74] = SSE(F_MMX), [0x75] = SSE(F_MMX), [0x76] = SSE(F_MMX),
	[0x77] = O(SSE, 0), [0x78] = SSE(0), [0x79] = SSE(0), [0x7A] = SSE(0),
	[0x7B] = SSE(0), [0x7C] = SSE(0), [0x7D] = SSE(0),
	[0x7E] = SSE(F_MMX | F_E1), [0x7F] = SSE(F_MMX),
	R16(0x80, O(JCC, F_F64, Jz)), R16(0x90, O(SETCC, F_MODRM | F_BYTE, Eb)),
	[0xA0] = O(PUSH, F_D64, FSEG(BT_FS)), [0xA1] = O(POP, F_D64, FSEG(BT_FS)),
	[0xA2] = O(CPUID, 0), [0xA3] = O(BT, F_MODRM, Ev, Gv),
	[0xA4] = O(SHLD, F_MODRM, Ev, Gv, Ib), [0xA5] = O(SHLD, F_MODRM, Ev, Gv, CL),
	[0xA8] = O(PUSH, F_D64, FSEG(BT_GS)), [0xA9] = O(POP, F_D64, FSEG(BT_GS)),
	[0xAA] = O(RSM, 0), [0xAB] = O(BTS, F_MODRM, Ev, Gv),
	[0xAC] = O(SHRD, F_MODRM, Ev, Gv, Ib), [0xAD] = O(SHRD, F_MODRM, Ev, Gv, CL),
	[0xAE] = GR(G15, F_MODRM), [0xAF] = O(IMUL2, F_MODRM, Gv, Ev),
	[0xB0] = O(CMPXCHG, F_MODRM | F_BYTE, Eb, Gb),
	[0xB1] = O(CMPXCHG, F_MODRM, Ev, Gv),
	[0xB2] = O(LSS, F_MODRM, Gv, Mp), [0xB3] = O(BTR, F_MODRM, Ev, Gv),
	[0xB4] = O(LFS, F_MODRM, Gv, Mp), [0xB5] = O(LGS, F_MODRM, Gv, Mp),
	[0xB6] = O(MOVZX, F_MODRM, Gv, Eb), [0xB7] = O(MOVZX, F_MODRM, Gv, Ew),
	[0xB8] = O(INVALID, F_MODRM, Gv, Ev), [0xB9] = O(UD, F_MODRM, Gv, Ev),
	[0xBA] = GR(G8, F_MODRM, Ev, Ib), [0xBB] = O(BTC, F_MODRM, Ev, Gv),
	[0xBC] = O(BSF, F_MODRM, Gv, Ev), [0xBD] = O(BSR, F_MODRM, Gv, Ev),
	[0xBE] = O(MOVSX, F_MODRM, Gv, Eb), [0xBF] = O(MOVSX, F_MODRM, Gv, Ew),
	[0xC0] = O(XADD, F_MODRM | F_BYTE, Eb, Gb), [0xC1] = O(XADD, F_MODRM, Ev, Gv),
	[0xC2] = SSE(F_IMM8), [0xC3] = O(MOV, F_MODRM, My, Gy),
	[0xC4] = SSE(F_MMX | F_IMM8 | F_E1), [0xC5] = SSE(F_MMX | F_IMM8 | F_G0),
	[0xC6] = SSE(F_IMM8), [0xC7] = GR(G9, F_MODRM),
	R8(0xC8, O(BSWAP, 0, Zy)),
	R16(0xD0, SSE(F_MMX)), R16(0xE0, SSE(F_MMX)), R16(0xF0, SSE(F_MMX)),
	[0xD7] = SSE(F_MMX | F_G0), [0xFF] = O(UD, F_MODRM, Gv, Ev),
};

static const struct op_entry groups[GNUM][8] = {
	[G1] = { O(ADD, 0), O(OR, 0), O(ADC, 0), O(SBB, 0), O(AND, 0),
		 O(SUB, 0), O(XOR, 0), O(CMP, 0) },
	[G1A] = { O(POP, 0, Ev) },
	[G2] = { O(ROL, 0), O(ROR, 0), O(RCL, 0), O(RCR, 0), O(SHL, 0),
		 O(SHR, 0), O(SAL, 0), O(SAR, 0) },
	[G3B] = { O(TEST, 0, Eb, Ib), O(TEST, 0, Eb, Ib), O(NOT, 0, Eb),
		  O(NEG, 0, Eb), O(MUL, 0, Eb), O(IMUL, 0, Eb), O(DIV, 0, Eb),
		  O(IDIV, 0, Eb) },
	[G3V] = { O(TEST, 0, Ev, Iz), O(TEST, 0, Ev, Iz), O(NOT, 0, Ev),
		  O(NEG, 0, Ev), O(MUL, 0, Ev), O(IMUL, 0, Ev), O(DIV, 0, Ev),
		  O(IDIV, 0, Ev) },
	[G4] = { O(INC, 0, Eb), O(DEC, 0, Eb) },
	[G5] = { O(INC, 0, Ev), O(DEC, 0, Ev), O(CALL, F_F64, Ev),
		 O(CALLF, 0, Mp), O(JMP, F_F64, Ev), O(JMPF, 0, Mp),
		 O(PUSH, F_D64, Ev) },
	[G6] = { O(SLDT, 0, Erw), O(STR, 0, Erw), O(LLDT, 0, Ew), O(LTR, 0, Ew),
		 O(VERR, 0, Ew), O(VERW, 0, Ew) },
	[G7] = { O(SGDT, 0, Ms), O(SIDT, 0, Ms), O(LGDT, 0, Ms), O(LIDT, 0, Ms),
		 O(SMSW, 0, Erw), O(INVALID, 0), O(LMSW, 0, Ew),
		 O(INVLPG, 0, Mx) },
	[G8] = { O(INVALID, 0), O(INVALID, 0), O(INVALID, 0), O(INVALID, 0),
		 O(BT, 0), O(BTS, 0), O(BTR, 0), O(BTC, 0) },
	[G9] = { O(INVALID, 0), O(CMPXCHG8B, 0, Mq) },
	[G11B] = { O(MOV, 0, Eb, Ib) },
	[G11V] = { O(MOV, 0, Ev, Iz) },
	[G15] = { O(FXSAVE, 0, Mx), O(FXRSTOR, 0, Mx), O(LDMXCSR, 0, Ed),
		  O(STMXCSR, 0, Ed), O(XSAVE, 0, Mx), O(XRSTOR, 0, Mx),
		  O(XSAVEOPT, 0, Mx), O(CLFLUSH, 0, Mx) },
	[G16] = { O(PREFETCH, 0, Mx), O(PREFETCH, 0, Mx), O(PREFETCH, 0, Mx),
		  O(PREFETCH, 0, Mx), O(NOP, 0, Ev), O(NOP, 0, Ev),
		  O(NOP, 0, Ev), O(NOP, 0, Ev) },
};

struct dctx {
	const uint8_t *buf;
	size_t avail;
	int pos;
	int err;
	struct bt_insn *in;
	uint8_t mod, reg, rm; /* rm and reg include the REX bits */
	struct bt_operand mem; /* the ModRM memory operand, if mod != 3 */
};

static int take(struct dctx *c, int n, uint64_t *val)
{
	uint64_t v = 0;

	if (c->err)
		return -1;
	if (c->pos + n > 15) {
		c->err = BT_DEC_GP;
		return -1;
	}
	if ((size_t)(c->pos + n) > c->avail) {
		c->err = BT_DEC_MORE;
		return -1;
	}
	for (int i = 0; i < n; i++)
		v |= (uint64_t)c->buf[c->pos + i] << (8 * i);
	c->pos += n;
	*val = v;
	return 0;
}

static int64_t sext(uint64_t v, int bytes)
{
	int sh = 64 - 8 * bytes;

	return bytes >= 8 ? (int64_t)v : (int64_t)(v << sh) >> sh;
}

static const uint8_t modrm16_base[8] = { 3, 3, 5, 5, 6, 7, 5, 3 };
static const uint8_t modrm16_index[8] = { 6, 7, 6, 7, BT_NOREG, BT_NOREG,
					  BT_NOREG, BT_NOREG };

static void modrm_mem16(struct dctx *c, struct bt_operand *m, int mod, int rm)
{
	uint64_t d = 0;

	m->base = modrm16_base[rm];
	m->index = modrm16_index[rm];
	m->seg = (rm == 2 || rm == 3 || rm == 6) ? BT_SS : BT_DS;
	if (mod == 0 && rm == 6) {
		m->base = BT_NOREG;
		m->seg = BT_DS;
		take(c, 2, &d);
		m->disp = sext(d, 2);
	} else if (mod == 1) {
		take(c, 1, &d);
		m->disp = sext(d, 1);
	} else if (mod == 2) {
		take(c, 2, &d);
		m->disp = sext(d, 2);
	}
}

static void modrm_mem32(struct dctx *c, struct bt_operand *m, int mod, int rm)
{
	struct bt_insn *in = c->in;
	uint64_t d = 0, sib;
	int base = rm & 7;

	m->index = BT_NOREG;
	m->seg = BT_DS;
	if (base == 4) {
		if (take(c, 1, &sib))
			return;
		int idx = (sib >> 3 & 7) | (in->rex & 2 ? 8 : 0);
		m->scale = 1 << (sib >> 6);
		if (idx != 4)
			m->index = idx;
		base = sib & 7;
		if (base == 5 && mod == 0) {
			m->base = BT_NOREG;
			take(c, 4, &d);
			m->disp = sext(d, 4);
			return;
		}
		m->base = base | (in->rex & 1 ? 8 : 0);
	} else if (base == 5 && mod == 0) {
		m->base = in->mode == BT_MODE64 ? BT_REG_RIP : BT_NOREG;
		take(c, 4, &d);
		m->disp = sext(d, 4);
		return;
	} else {
		m->base = rm;
	}
	if (base == 4 || base == 5)
		m->seg = BT_SS;
	if (mod == 1) {
		take(c, 1, &d);
		m->disp = sext(d, 1);
	} else if (mod == 2) {
		take(c, 4, &d);
		m->disp = sext(d, 4);
	}
}

static void decode_modrm(struct dctx *c)
{
	struct bt_insn *in = c->in;
	uint64_t b;

	if (take(c, 1, &b))
		return;
	in->modrm = (uint8_t)b;
	in->has_modrm = 1;
	c->mod = b >> 6;
	c->reg = (b >> 3 & 7) | (in->rex & 4 ? 8 : 0);
	c->rm = (b & 7) | (in->rex & 1 ? 8 : 0);
	if (c->mod == 3)
		return;
	memset(&c->mem, 0, sizeof(c->mem));
	c->mem.type = BT_OPND_MEM;
	c->mem.scale = 1;
	if (in->addrsize == 2)
		modrm_mem16(c, &c->mem, c->mod, b & 7);
	else
		modrm_mem32(c, &c->mem, c->mod, c->rm);
	if (in->seg != BT_SEG_NONE)
		c->mem.seg = in->seg;
}

static int size_of(const struct bt_insn *in, int code)
{
	switch (code) {
	case SZ_B: return 1;
	case SZ_W: return 2;
	case SZ_D: return 4;
	case SZ_Q: return 8;
	case SZ_V: return in->opsize;
	case SZ_Z: return in->opsize == 2 ? 2 : 4;
	case SZ_Y: return in->opsize == 8 ? 8 : 4;
	case SZ_P: return in->opsize + 2;
	case SZ_DQ: return 16;
	case SZ_S: return in->mode == BT_MODE64 ? 10 : 6;
	case SZ_CR: return in->mode == BT_MODE64 ? 8 : 4;
	case SZ_A: return in->opsize * 2;
	case SZ_T: return 10;
	default: return 0;
	}
}

static void set_gpr(struct bt_operand *o, const struct bt_insn *in, int reg,
		    int size)
{
	o->type = BT_OPND_REG;
	o->size = size;
	o->cls = BT_RC_GPR;
	o->reg = reg;
	if (size == 1 && !in->rex && reg >= 4 && reg < 8) {
		o->cls = BT_RC_GPR8H;
		o->reg = reg - 4;
	}
}

static void set_rm(struct dctx *c, struct bt_operand *o, int size, int cls)
{
	if (c->mod != 3) {
		*o = c->mem;
		o->size = size;
		return;
	}
	if (cls == BT_RC_GPR) {
		set_gpr(o, c->in, c->rm, size);
		return;
	}
	o->type = BT_OPND_REG;
	o->size = size;
	o->cls = cls;
	o->reg = cls == BT_RC_MMX ? (c->rm & 7) : c->rm;
}

static void set_reg(struct bt_operand *o, int cls, int reg, int size)
{
	o->type = BT_OPND_REG;
	o->cls = cls;
	o->reg = reg;
	o->size = size;
}

static void imm_operand(struct dctx *c, struct bt_operand *o, int size,
			bool sign)
{
	uint64_t v = 0;
	int n = size == 8 && sign ? 4 : size;

	take(c, n, &v);
	o->type = BT_OPND_IMM;
	o->size = size;
	o->imm = sign ? (uint64_t)sext(v, n) : v;
}

/* Build one operand from its specification. Returns false on #UD. */
static bool operand(struct dctx *c, struct bt_operand *o, uint16_t spec)
{
	struct bt_insn *in = c->in;
	int m = spec >> 10, sz = spec >> 5 & 31, r = spec & 31;
	int size = size_of(in, sz);
	uint64_t v = 0;

	switch (m) {
	case M_E:
		if (sz == SZ_RVMW)
			size = c->mod == 3 ? in->opsize : 2;
		set_rm(c, o, size, BT_RC_GPR);
		return true;
	case M_M:
		if (c->mod == 3)
			return false;
		set_rm(c, o, size, BT_RC_GPR);
		return true;
	case M_RR:
		set_gpr(o, in, c->rm, size);
		return true;
	case M_G:
		set_gpr(o, in, c->reg, size);
		return true;
	case M_I:
		if (sz == SZ_V && in->opsize == 8)
			size = 8;
		imm_operand(c, o, size, false);
		return true;
	case M_IS:
		imm_operand(c, o, sz == SZ_B ? 1 : size, true);
		o->size = in->opsize;
		return true;
	case M_J:
		take(c, size, &v);
		o->type = BT_OPND_REL;
		o->size = in->opsize;
		o->imm = (uint64_t)sext(v, size);
		return true;
	case M_O:
		take(c, in->addrsize, &v);
		memset(o, 0, sizeof(*o));
		o->type = BT_OPND_MEM;
		o->size = size;
		o->base = o->index = BT_NOREG;
		o->scale = 1;
		o->seg = in->seg != BT_SEG_NONE ? in->seg : BT_DS;
		o->disp = (int64_t)v;
		return true;
	case M_S:
		if ((c->reg & 7) > 5)
			return false;
		set_reg(o, BT_RC_SEG, c->reg & 7, 2);
		return true;
	case M_C:
		set_reg(o, BT_RC_CR, c->reg, size);
		return true;
	case M_D:
		set_reg(o, BT_RC_DR, c->reg, size);
		return true;
	case M_Z:
		set_gpr(o, in, (in->opcode & 7) | (in->rex & 1 ? 8 : 0), size);
		return true;
	case M_FIX:
		set_gpr(o, in, r, size);
		if (size == 1)
			o->cls = BT_RC_GPR;
		return true;
	case M_FSEG:
		set_reg(o, BT_RC_SEG, r, 2);
		return true;
	case M_ONE:
		o->type = BT_OPND_IMM;
		o->size = 1;
		o->imm = 1;
		return true;
	case M_A: {
		uint64_t sel = 0;
		take(c, in->opsize == 2 ? 2 : 4, &v);
		take(c, 2, &sel);
		o->type = BT_OPND_FAR;
		o->size = size;
		o->imm = v;
		o->sel = (uint16_t)sel;
		return true;
	}
	default:
		return true;
	}
}

static const struct op_entry *lookup(struct dctx *c, const struct op_entry *e,
				     struct op_entry *tmp)
{
	const struct op_entry *g;

	if (!(e->flags & F_GRP))
		return e;
	g = &groups[e->op][c->reg & 7];
	*tmp = *g;
	tmp->flags |= e->flags & ~F_GRP;
	if (!g->a[0])
		memcpy(tmp->a, e->a, sizeof(tmp->a));
	return tmp;
}

/* 0F 01 with mod == 3: single-instruction encodings (SDM vol. 2 A.4.2). */
static bool group7_reg(struct bt_insn *in)
{
	switch (in->modrm) {
	case 0xC8: in->op = BT_OP_MONITOR; return true;
	case 0xC9: in->op = BT_OP_MWAIT; return true;
	case 0xD0: in->op = BT_OP_XGETBV; return true;
	case 0xD1: in->op = BT_OP_XSETBV; return true;
	case 0xF8:
		in->op = in->mode == BT_MODE64 ? BT_OP_SWAPGS : BT_OP_INVALID;
		return true;
	case 0xF9: in->op = BT_OP_RDTSCP; return true;
	case 0xCA: in->op = BT_OP_CLAC; return true;
	case 0xCB: in->op = BT_OP_STAC; return true;
	case 0xEE: in->op = BT_OP_RDPKRU; return true;
	case 0xEF: in->op = BT_OP_WRPKRU; return true;
	default:
		return (in->modrm >> 3 & 7) == 4 || (in->modrm >> 3 & 7) == 6;
	}
}

/* VEX (C4/C5): computed for the length only; no model has AVX, so every
 * VEX instruction is #UD (SDM vol. 2 2.3). */
static int decode_vex(struct dctx *c, int first)
{
	struct bt_insn *in = c->in;
	uint64_t b1 = 0, b2 = 0, op = 0;
	int map = 1;

	take(c, 1, &b1);
	if (first == 0xC4) {
		map = b1 & 31;
		take(c, 1, &b2);
	}
	take(c, 1, &op);
	in->op = BT_OP_VEX;
	in->opcode = (uint8_t)op;
	in->map = map;
	if (!c->err && map >= 1 && map <= 3 && !(map == 1 && op == 0x77)) {
		decode_modrm(c);
		if (map == 3 || (map == 1 && (op == 0x70 || op == 0x71 || op == 0x72 ||
			      op == 0x73 || op == 0xC2 || op == 0xC4 ||
			      op == 0xC5 || op == 0xC6))) {
			uint64_t ib;
			take(c, 1, &ib);
		}
	}
	if (c->err)
		return c->err;
	in->len = c->pos;
	return BT_DEC_UD;
}

static void sse_operands(struct dctx *c, const struct op_entry *e)
{
	struct bt_insn *in = c->in;
	int cls = (e->flags & F_MMX) && !in->mandatory ? BT_RC_MMX : BT_RC_XMM;
	int size = cls == BT_RC_MMX ? 8 : 16;
	int gsize = in->rex & 8 ? 8 : 4;

	in->nopnd = 2;
	if (e->flags & F_G0)
		set_gpr(&in->opnd[0], in, c->reg, gsize);
	else
		set_reg(&in->opnd[0], cls, cls == BT_RC_MMX ? c->reg & 7 : c->reg,
			size);
	if (e->flags & F_E1)
		set_rm(c, &in->opnd[1], gsize, BT_RC_GPR);
	else
		set_rm(c, &in->opnd[1], size, cls);
	if (e->flags & F_IMM8) {
		imm_operand(c, &in->opnd[2], 1, false);
		in->nopnd = 3;
	}
}

static void set_sizes(struct bt_insn *in, uint16_t flags)
{
	bool o16 = in->prefix & BT_PFX_OPSZ;

	if (flags & F_BYTE)
		in->opsize = 1;
	else if (in->mode == BT_MODE64) {
		if (in->rex & 8 || flags & F_F64)
			in->opsize = 8;
		else if (flags & F_D64)
			in->opsize = o16 ? 2 : 8;
		else
			in->opsize = o16 ? 2 : 4;
	} else if (in->mode == BT_MODE32)
		in->opsize = o16 ? 2 : 4;
	else
		in->opsize = o16 ? 4 : 2;
}

static int decode_prefixes(struct dctx *c)
{
	struct bt_insn *in = c->in;
	uint8_t last_rep = 0;
	uint64_t b;

	for (;;) {
		if (take(c, 1, &b))
			return -1;
		switch (b) {
		case 0xF0: in->prefix |= BT_PFX_LOCK; break;
		case 0xF2: in->prefix |= BT_PFX_REPNE; last_rep = 0xF2; break;
		case 0xF3: in->prefix |= BT_PFX_REP; last_rep = 0xF3; break;
		case 0x26: in->seg = BT_ES; break;
		case 0x2E: in->seg = BT_CS; break;
		case 0x36: in->seg = BT_SS; break;
		case 0x3E: in->seg = BT_DS; break;
		case 0x64: in->seg = BT_FS; break;
		case 0x65: in->seg = BT_GS; break;
		case 0x66: in->prefix |= BT_PFX_OPSZ; break;
		case 0x67: in->prefix |= BT_PFX_ADSZ; break;
		default:
			if (in->mode == BT_MODE64 && (b & 0xF0) == 0x40) {
				in->rex = (uint8_t)b;
				in->prefix |= BT_PFX_REX;
				continue; /* a REX not last is ignored */
			}
			c->pos--;
			goto done;
		}
		in->rex = 0;
		in->prefix &= ~BT_PFX_REX;
	}
done:
	/* The last of F2/F3 is the one that counts (mandatory prefix, REP). */
	if (last_rep == 0xF3 && (in->prefix & BT_PFX_REPNE))
		in->prefix &= ~BT_PFX_REPNE;
	if (last_rep == 0xF2 && (in->prefix & BT_PFX_REP))
		in->prefix &= ~BT_PFX_REP;
	in->mandatory = last_rep ? last_rep : (in->prefix & BT_PFX_OPSZ ? 0x66 : 0);
	if (in->seg != BT_SEG_NONE)
		in->prefix |= BT_PFX_SEG;
	/* In 64-bit mode CS/SS/DS/ES overrides are ignored (SDM 3A 3.4.4). */
	if (in->mode == BT_MODE64 && in->seg < BT_FS)
		in->seg = BT_SEG_NONE;
	if (in->mode == BT_MODE64)
		in->addrsize = in->prefix & BT_PFX_ADSZ ? 4 : 8;
	else if (in->mode == BT_MODE32)
		in->addrsize = in->prefix & BT_PFX_ADSZ ? 2 : 4;
	else
		in->addrsize = in->prefix & BT_PFX_ADSZ ? 4 : 2;
	return 0;
}

static int finish(struct dctx *c, int ret)
{
	if (c->err)
		return c->err;
	c->in->len = c->pos;
	return ret ? ret : c->pos;
}

/* 0F 38 and 0F 3A: no instruction there is in a model without SSSE3, but
 * the length is known (ModRM, and an imm8 for 0F 3A). */
static int decode_map3(struct dctx *c, int map)
{
	uint64_t b;

	if (take(c, 1, &b))
		return c->err;
	c->in->opcode = (uint8_t)b;
	c->in->map = map;
	c->in->op = BT_OP_SSE;
	decode_modrm(c);
	/* 66 0F 38 82 /r: INVPCID r32/r64, m128 (the register is 64 bits in
	 * 64-bit mode whatever the prefixes, 32 bits elsewhere) */
	if (map == 2 && b == 0x82 && c->in->mandatory == 0x66) {
		if (c->err || c->mod == 3)
			return finish(c, c->err ? c->err : BT_DEC_UD);
		c->in->op = BT_OP_INVPCID;
		set_gpr(&c->in->opnd[0], c->in, c->reg,
			c->in->mode == BT_MODE64 ? 8 : 4);
		c->in->opnd[1] = c->mem;
		c->in->opnd[1].size = 16;
		c->in->nopnd = 2;
		return finish(c, 0);
	}
	if (map == 3)
		imm_operand(c, &c->in->opnd[2], 1, false);
	return finish(c, BT_DEC_UD);
}

int bt_decode(const uint8_t *buf, size_t avail, enum bt_mode mode,
	      struct bt_insn *in)
{
	struct dctx c = { .buf = buf, .avail = avail, .in = in };
	const struct op_entry *e;
	struct op_entry tmp;
	uint64_t b;
	bool ok = true;

	memset(in, 0, sizeof(*in));
	in->mode = mode;
	in->seg = BT_SEG_NONE;
	if (decode_prefixes(&c) || take(&c, 1, &b))
		return c.err;
	in->opcode = (uint8_t)b;
	if (b == 0x0F) {
		if (take(&c, 1, &b))
			return c.err;
		in->opcode = (uint8_t)b;
		in->map = 1;
		if (b == 0x38 || b == 0x3A)
			return decode_map3(&c, b == 0x38 ? 2 : 3);
		e = &map2[b];
	} else {
		if ((b == 0xC4 || b == 0xC5) &&
		    (mode == BT_MODE64 || (c.pos < (int)avail && buf[c.pos] >= 0xC0)))
			return decode_vex(&c, (int)b);
		if ((b == 0xC4 || b == 0xC5) && c.pos >= (int)avail)
			return BT_DEC_MORE;
		e = &map1[b];
	}
	if (e->flags & F_MODRM)
		decode_modrm(&c);
	if (c.err)
		return c.err;
	e = lookup(&c, e, &tmp);
	in->op = e->op;
	if (mode == BT_MODE64 && (e->flags & F_I64))
		in->op = BT_OP_INVALID;
	if (mode != BT_MODE64 && (e->flags & F_O64))
		in->op = BT_OP_INVALID;
	set_sizes(in, e->flags);
	if (in->map == 0 && in->opcode == 0x63 && mode == BT_MODE64) {
		static const struct op_entry movsxd = O(MOVSXD, F_MODRM, Gv, Ed);
		e = &movsxd;
		in->op = BT_OP_MOVSXD;
	}
	if (in->map == 0 && in->opcode == 0x90) {
		if (in->rex & 1)
			in->op = BT_OP_XCHG;
		else if (in->prefix & BT_PFX_REP)
			in->op = BT_OP_PAUSE;
		if (in->rex & 1) {
			static const struct op_entry xchg = O(XCHG, 0, Zv, rAX);
			e = &xchg;
		}
	}
	if (in->map == 1 && in->opcode == 0x01 && c.mod == 3 && !group7_reg(in))
		in->op = BT_OP_INVALID;
	if (in->map == 1 && in->opcode == 0x01 && c.mod == 3 &&
	    in->op != BT_OP_SMSW && in->op != BT_OP_LMSW)
		return finish(&c, in->op == BT_OP_INVALID ? BT_DEC_UD : 0);
	if (in->map == 1 && in->opcode == 0xAE && c.mod == 3) {
		int r = c.reg & 7;
		in->op = r >= 5 ? BT_OP_FENCE : BT_OP_INVALID;
		return finish(&c, in->op == BT_OP_INVALID ? BT_DEC_UD : 0);
	}
	/* F3 0F C7 /7 with a register: RDPID r32/r64 (64 bits in 64-bit
	 * mode whatever the prefixes) */
	if (in->map == 1 && in->opcode == 0xC7 && c.mod == 3 &&
	    (c.reg & 7) == 7 && in->mandatory == 0xF3) {
		in->op = BT_OP_RDPID;
		set_gpr(&in->opnd[0], in, c.rm, mode == BT_MODE64 ? 8 : 4);
		in->nopnd = 1;
		return finish(&c, 0);
	}
	if (in->map == 1 && in->opcode == 0xC7 && (in->rex & 8) &&
	    in->op == BT_OP_CMPXCHG8B)
		in->op = BT_OP_CMPXCHG16B;
	if (in->op == BT_OP_MOVCR || in->op == BT_OP_MOVDR)
		c.mod = 3; /* the mod field is ignored (SDM vol. 2 MOV CR) */
	if (e->flags & F_SSE) {
		sse_operands(&c, e);
		return finish(&c, 0);
	}
	for (int i = 0; i < 3 && e->a[i]; i++) {
		ok = operand(&c, &in->opnd[i], e->a[i]) && ok;
		in->nopnd = i + 1;
	}
	if (c.err)
		return c.err;
	if (!ok || in->op == BT_OP_INVALID)
		return finish(&c, BT_DEC_UD);
	if (in->op >= BT_OP_JCC && in->op <= BT_OP_CMOVCC)
		in->cc = in->opcode & 15;
	return finish(&c, 0);
}
