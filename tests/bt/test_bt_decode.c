/* cpu-bt decoder tests: lengths, operation ids, sizes and operands for a
 * corpus of encodings in 16-, 32- and 64-bit mode (prefixes, REX, ModRM/SIB
 * forms, RIP-relative, immediates, 0F/0F38/0F3A maps, VEX), the 15-byte
 * limit and truncated input.
 */
#include <string.h>

#include "decode.h"
#include "testmain.h"

struct dcase {
	int mode;
	const char *hex;
	int len;        /* expected return: length or BT_DEC_* */
	int op;
	int opsize;
	int addrsize;
};

#define M16 BT_MODE16
#define M32 BT_MODE32
#define M64 BT_MODE64
#define OP(x) BT_OP_##x

static const struct dcase cases[] = {
	/* one-byte ALU forms */
	{ M32, "01 d8", 2, OP(ADD), 4, 4 },              /* add eax, ebx */
	{ M16, "01 d8", 2, OP(ADD), 2, 2 },
	{ M64, "48 01 d8", 3, OP(ADD), 8, 8 },           /* add rax, rbx */
	{ M64, "66 01 d8", 3, OP(ADD), 2, 8 },
	{ M64, "66 48 01 d8", 4, OP(ADD), 8, 8 },        /* REX.W beats 66 */
	{ M32, "80 c1 7f", 3, OP(ADD), 1, 4 },
	{ M32, "83 e9 80", 3, OP(SUB), 4, 4 },           /* sub ecx, -128 */
	{ M32, "81 38 78 56 34 12", 6, OP(CMP), 4, 4 },  /* cmp [eax], imm32 */
	{ M64, "48 81 c4 00 01 00 00", 7, OP(ADD), 8, 8 },
	{ M32, "04 01", 2, OP(ADD), 1, 4 },
	{ M16, "05 34 12", 3, OP(ADD), 2, 2 },
	{ M32, "66 05 34 12", 4, OP(ADD), 2, 4 },
	/* ModRM / SIB / displacement forms */
	{ M32, "8b 04 24", 3, OP(MOV), 4, 4 },           /* mov eax, [esp] */
	{ M32, "8b 44 24 08", 4, OP(MOV), 4, 4 },
	{ M32, "8b 84 24 00 01 00 00", 7, OP(MOV), 4, 4 },
	{ M32, "8b 05 00 10 00 00", 6, OP(MOV), 4, 4 },  /* [disp32] */
	{ M32, "8b 04 8d 00 10 00 00", 7, OP(MOV), 4, 4 }, /* [ecx*4+disp32] */
	{ M16, "8b 46 fe", 3, OP(MOV), 2, 2 },           /* mov ax, [bp-2] */
	{ M16, "8b 06 34 12", 4, OP(MOV), 2, 2 },        /* mov ax, [0x1234] */
	{ M16, "67 8b 04 24", 4, OP(MOV), 2, 4 },        /* 32-bit addressing */
	{ M32, "67 8b 07", 3, OP(MOV), 4, 2 },           /* mov eax, [bx] */
	{ M64, "8b 05 10 00 00 00", 6, OP(MOV), 4, 8 },  /* RIP-relative */
	{ M64, "67 8b 05 10 00 00 00", 7, OP(MOV), 4, 4 },
	{ M64, "4c 8b 2c 24", 4, OP(MOV), 8, 8 },        /* mov r13, [rsp] */
	{ M64, "42 8b 04 ad 00 00 00 00", 8, OP(MOV), 4, 8 },
	{ M64, "41 8b 45 00", 4, OP(MOV), 4, 8 },        /* [r13+0] */
	{ M64, "48 b8 88 77 66 55 44 33 22 11", 10, OP(MOV), 8, 8 },
	{ M64, "b8 44 33 22 11", 5, OP(MOV), 4, 8 },
	{ M64, "48 c7 c0 ff ff ff ff", 7, OP(MOV), 8, 8 },
	{ M32, "a1 00 10 00 00", 5, OP(MOV), 4, 4 },     /* moffs */
	{ M64, "a1 00 10 00 00 00 00 00 00", 9, OP(MOV), 4, 8 },
	{ M64, "67 a1 00 10 00 00", 6, OP(MOV), 4, 4 },
	{ M16, "a1 00 10", 3, OP(MOV), 2, 2 },
	/* stack and branches */
	{ M64, "50", 1, OP(PUSH), 8, 8 },
	{ M64, "66 50", 2, OP(PUSH), 2, 8 },
	{ M64, "41 57", 2, OP(PUSH), 8, 8 },
	{ M32, "6a ff", 2, OP(PUSH), 4, 4 },
	{ M64, "68 00 00 00 80", 5, OP(PUSH), 8, 8 },
	{ M32, "e8 00 00 00 00", 5, OP(CALL), 4, 4 },
	{ M16, "e8 00 00", 3, OP(CALL), 2, 2 },
	{ M64, "e8 00 00 00 00", 5, OP(CALL), 8, 8 },
	{ M64, "66 e8 00 00 00 00", 6, OP(CALL), 8, 8 },  /* Intel: 66 ignored */
	{ M32, "0f 84 00 01 00 00", 6, OP(JCC), 4, 4 },
	{ M32, "74 fe", 2, OP(JCC), 4, 4 },
	{ M64, "ff 25 00 00 00 00", 6, OP(JMP), 8, 8 },  /* jmp [rip] */
	{ M32, "ea 00 10 00 00 08 00", 7, OP(JMPF), 4, 4 },
	{ M16, "ea 00 10 08 00", 5, OP(JMPF), 2, 2 },
	{ M32, "ff 2d 00 10 00 00", 6, OP(JMPF), 4, 4 },
	{ M32, "c2 08 00", 3, OP(RET), 4, 4 },
	{ M32, "c8 10 00 01", 4, OP(ENTER), 4, 4 },
	{ M32, "e3 fe", 2, OP(JCXZ), 4, 4 },
	/* string ops with prefixes */
	{ M32, "f3 a4", 2, OP(MOVS), 1, 4 },
	{ M32, "f3 66 a5", 3, OP(MOVS), 2, 4 },
	{ M64, "f3 48 ab", 3, OP(STOS), 8, 8 },
	{ M32, "f2 ae", 2, OP(SCAS), 1, 4 },
	{ M32, "2e 3e 26 64 65 36 8b 00", 8, OP(MOV), 4, 4 },
	/* groups */
	{ M32, "f7 f1", 2, OP(DIV), 4, 4 },
	{ M32, "f7 c1 01 00 00 00", 6, OP(TEST), 4, 4 },  /* imm only for /0 */
	{ M32, "f6 c1 01", 3, OP(TEST), 1, 4 },
	{ M32, "f6 e1", 2, OP(MUL), 1, 4 },
	{ M32, "d3 e0", 2, OP(SHL), 4, 4 },
	{ M32, "c1 f8 1f", 3, OP(SAR), 4, 4 },
	{ M32, "d1 d0", 2, OP(RCL), 4, 4 },
	{ M32, "fe c0", 2, OP(INC), 1, 4 },
	{ M32, "ff 30", 2, OP(PUSH), 4, 4 },
	{ M32, "8f 00", 2, OP(POP), 4, 4 },
	{ M32, "0f ba e0 05", 4, OP(BT), 4, 4 },
	{ M32, "0f c7 0e", 3, OP(CMPXCHG8B), 4, 4 },
	{ M64, "48 0f c7 0e", 4, OP(CMPXCHG16B), 8, 8 },
	/* 0F map */
	{ M32, "0f a2", 2, OP(CPUID), 4, 4 },
	{ M32, "0f 31", 2, OP(RDTSC), 4, 4 },
	{ M32, "0f 01 15 00 10 00 00", 7, OP(LGDT), 4, 4 },
	{ M64, "0f 01 f8", 3, OP(SWAPGS), 4, 8 },
	{ M64, "0f 01 f9", 3, OP(RDTSCP), 4, 8 },
	{ M32, "0f 01 38", 3, OP(INVLPG), 4, 4 },
	{ M32, "0f 22 d8", 3, OP(MOVCR), 4, 4 },        /* mov cr3, eax */
	{ M64, "0f 20 c0", 3, OP(MOVCR), 4, 8 },
	{ M64, "44 0f 20 c0", 4, OP(MOVCR), 4, 8 },     /* mov rax, cr8 */
	{ M32, "0f 23 f8", 3, OP(MOVDR), 4, 4 },
	{ M32, "0f b6 c1", 3, OP(MOVZX), 4, 4 },
	{ M64, "48 63 c1", 3, OP(MOVSXD), 8, 8 },
	{ M32, "63 c1", 2, OP(ARPL), 4, 4 },
	{ M32, "0f 44 c1", 3, OP(CMOVCC), 4, 4 },
	{ M32, "0f 94 c0", 3, OP(SETCC), 1, 4 },
	{ M32, "0f a4 c1 04", 4, OP(SHLD), 4, 4 },
	{ M32, "0f b1 0e", 3, OP(CMPXCHG), 4, 4 },
	{ M32, "0f c1 c8", 3, OP(XADD), 4, 4 },
	{ M32, "0f c8", 2, OP(BSWAP), 4, 4 },
	{ M64, "49 0f c8", 3, OP(BSWAP), 8, 8 },
	{ M64, "0f 05", 2, OP(SYSCALL), 4, 8 },
	{ M64, "48 0f 07", 3, OP(SYSRET), 8, 8 },
	{ M32, "0f 0b", 2, OP(UD), 4, 4 },
	{ M64, "f3 0f 1e fa", 4, OP(NOP), 4, 8 },       /* endbr64 */
	{ M64, "66 0f 1f 44 00 00", 6, OP(NOP), 2, 8 },
	{ M64, "66 2e 0f 1f 84 00 00 00 00 00", 10, OP(NOP), 2, 8 },
	{ M32, "f3 90", 2, OP(PAUSE), 4, 4 },
	{ M64, "41 90", 2, OP(XCHG), 4, 8 },            /* xchg r8d, eax */
	{ M32, "0f ae 00", 3, OP(FXSAVE), 4, 4 },
	{ M32, "0f ae f0", 3, OP(FENCE), 4, 4 },
	{ M32, "d9 e8", 2, OP(X87), 4, 4 },
	{ M32, "dd 05 00 10 00 00", 6, OP(X87), 4, 4 },
	/* SSE */
	{ M64, "66 0f 6f 05 00 00 00 00", 8, OP(SSE), 2, 8 },
	{ M64, "f3 44 0f 6f 00", 5, OP(SSE), 4, 8 },
	{ M64, "66 0f 70 c1 1b", 5, OP(SSE), 2, 8 },     /* pshufd imm8 */
	{ M64, "66 0f 73 d8 04", 5, OP(SSE), 2, 8 },     /* psrldq */
	{ M64, "f2 48 0f 2a c0", 5, OP(SSE), 8, 8 },     /* cvtsi2sd xmm0, rax */
	{ M64, "66 0f 3a 0f c1 08", BT_DEC_UD, OP(SSE), 0, 0 }, /* palignr */
	{ M64, "66 0f 38 00 c1", BT_DEC_UD, OP(SSE), 0, 0 },   /* pshufb */
	/* VEX: recognised, #UD */
	{ M64, "c5 f8 77", BT_DEC_UD, OP(VEX), 0, 0 },
	{ M64, "c5 fd 6f 07", BT_DEC_UD, OP(VEX), 0, 0 },
	{ M64, "c4 e3 79 0f c1 08", BT_DEC_UD, OP(VEX), 0, 0 },
	{ M32, "c5 06", 2, OP(LDS), 4, 4 },              /* not VEX: mod != 3 */
	{ M32, "c4 06", 2, OP(LES), 4, 4 },
	/* invalid in 64-bit mode */
	{ M64, "06", BT_DEC_UD, 0, 0, 0 },
	{ M64, "27", BT_DEC_UD, 0, 0, 0 },
	{ M64, "d4 0a", BT_DEC_UD, 0, 0, 0 },
	{ M64, "ea 00 00 00 00 00 00", BT_DEC_UD, 0, 0, 0 },
	{ M32, "8d c0", BT_DEC_UD, 0, 0, 0 },            /* lea eax, eax */
	{ M32, "8e f8", BT_DEC_UD, 0, 0, 0 },            /* segment register 7 */
	{ M32, "0f ff 00", 3, OP(UD), 4, 4 },           /* UD0 decodes */
	/* 15-byte limit */
	{ M32, "66 66 66 66 66 66 66 66 66 66 66 66 66 66 90", 15, OP(NOP), 2, 4 },
	{ M32, "66 66 66 66 66 66 66 66 66 66 66 66 66 66 66 90", BT_DEC_GP, 0, 0, 0 },
	{ M64, "f3 f3 f3 f3 f3 f3 f3 f3 f3 f3 48 b8 00 00 00 00 00 00 00 00",
	  BT_DEC_GP, 0, 0, 0 },
	/* truncated input */
	{ M32, "81 c1 01 00", BT_DEC_MORE, 0, 0, 0 },
	{ M64, "48", BT_DEC_MORE, 0, 0, 0 },
	{ M32, "0f", BT_DEC_MORE, 0, 0, 0 },
};

static size_t parse_hex(const char *s, uint8_t *out)
{
	size_t n = 0;
	unsigned v;
	int k;

	while (sscanf(s, " %2x%n", &v, &k) == 1) {
		out[n++] = (uint8_t)v;
		s += k;
	}
	return n;
}

static void test_corpus(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct dcase *t = &cases[i];
		uint8_t buf[32];
		size_t n = parse_hex(t->hex, buf);
		struct bt_insn in;
		int r = bt_decode(buf, n, t->mode, &in);

		if (r != t->len)
			printf("\ncase %zu (%s): got %d want %d\n", i, t->hex, r, t->len);
		CU_ASSERT_EQUAL(r, t->len);
		if (t->len == BT_DEC_UD && t->op) {
			CU_ASSERT_EQUAL(in.op, t->op);
			continue;
		}
		if (r <= 0)
			continue;
		if (in.op != t->op || in.opsize != t->opsize ||
		    in.addrsize != t->addrsize)
			printf("\ncase %zu (%s): op %s/%d/%d want %s/%d/%d\n", i, t->hex,
			       bt_op_names[in.op], in.opsize, in.addrsize,
			       bt_op_names[t->op], t->opsize, t->addrsize);
		CU_ASSERT_EQUAL(in.op, t->op);
		CU_ASSERT_EQUAL(in.opsize, t->opsize);
		CU_ASSERT_EQUAL(in.addrsize, t->addrsize);
		CU_ASSERT_EQUAL(in.len, r);
	}
}

static struct bt_insn dec(int mode, const char *hex)
{
	uint8_t buf[32];
	size_t n = parse_hex(hex, buf);
	struct bt_insn in;

	CU_ASSERT(bt_decode(buf, n, mode, &in) > 0);
	return in;
}

static void test_operands_modrm_sib(void)
{
	/* mov eax, [ebx + esi*4 + 0x10] */
	struct bt_insn in = dec(M32, "8b 44 b3 10");
	const struct bt_operand *m = &in.opnd[1];

	CU_ASSERT_EQUAL(in.opnd[0].type, BT_OPND_REG);
	CU_ASSERT_EQUAL(in.opnd[0].reg, 0);
	CU_ASSERT_EQUAL(m->type, BT_OPND_MEM);
	CU_ASSERT_EQUAL(m->base, 3);
	CU_ASSERT_EQUAL(m->index, 6);
	CU_ASSERT_EQUAL(m->scale, 4);
	CU_ASSERT_EQUAL(m->disp, 0x10);
	CU_ASSERT_EQUAL(m->seg, BT_DS);
	CU_ASSERT_EQUAL(m->size, 4);
	/* [ebp-4] defaults to SS, an override wins */
	in = dec(M32, "8b 45 fc");
	CU_ASSERT_EQUAL(in.opnd[1].seg, BT_SS);
	CU_ASSERT_EQUAL(in.opnd[1].disp, -4);
	in = dec(M32, "64 8b 45 fc");
	CU_ASSERT_EQUAL(in.opnd[1].seg, BT_FS);
	/* 16-bit [bp+si] is SS-relative, [bx+di] DS */
	in = dec(M16, "8b 02");
	CU_ASSERT_EQUAL(in.opnd[1].base, 5);
	CU_ASSERT_EQUAL(in.opnd[1].index, 6);
	CU_ASSERT_EQUAL(in.opnd[1].seg, BT_SS);
	in = dec(M16, "8b 01");
	CU_ASSERT_EQUAL(in.opnd[1].seg, BT_DS);
	/* SIB without index (esp) and without base (disp32) */
	in = dec(M32, "8b 04 25 78 56 34 12");
	CU_ASSERT_EQUAL(in.opnd[1].base, BT_NOREG);
	CU_ASSERT_EQUAL(in.opnd[1].index, BT_NOREG);
	CU_ASSERT_EQUAL(in.opnd[1].disp, 0x12345678);
}

static void test_operands_rex_rip(void)
{
	/* mov r9, [rip + 0x100] */
	struct bt_insn in = dec(M64, "4c 8b 0d 00 01 00 00");

	CU_ASSERT_EQUAL(in.opnd[0].reg, 9);
	CU_ASSERT_EQUAL(in.opnd[1].base, BT_REG_RIP);
	CU_ASSERT_EQUAL(in.opnd[1].disp, 0x100);
	CU_ASSERT_EQUAL(in.len, 7);
	/* REX.X/B: mov eax, [r12 + r15*2] */
	in = dec(M64, "43 8b 04 7c");
	CU_ASSERT_EQUAL(in.opnd[1].base, 12);
	CU_ASSERT_EQUAL(in.opnd[1].index, 15);
	CU_ASSERT_EQUAL(in.opnd[1].scale, 2);
	/* byte registers: without REX 4-7 are AH..BH, with REX SPL..DIL */
	in = dec(M64, "88 e0"); /* mov al, ah */
	CU_ASSERT_EQUAL(in.opnd[1].cls, BT_RC_GPR8H);
	CU_ASSERT_EQUAL(in.opnd[1].reg, 0);
	in = dec(M64, "40 88 e0"); /* mov al, spl */
	CU_ASSERT_EQUAL(in.opnd[1].cls, BT_RC_GPR);
	CU_ASSERT_EQUAL(in.opnd[1].reg, 4);
	/* a REX followed by a legacy prefix is ignored */
	in = dec(M64, "48 66 01 d8");
	CU_ASSERT_EQUAL(in.opsize, 2);
	CU_ASSERT_EQUAL(in.rex, 0);
	/* CS/DS/ES/SS overrides are ignored in 64-bit mode, FS/GS kept */
	in = dec(M64, "2e 8b 00");
	CU_ASSERT_EQUAL(in.opnd[1].seg, BT_DS);
	in = dec(M64, "65 8b 00");
	CU_ASSERT_EQUAL(in.opnd[1].seg, BT_GS);
}

static void test_immediates(void)
{
	struct bt_insn in = dec(M32, "83 c0 ff"); /* add eax, -1 */

	CU_ASSERT_EQUAL(in.opnd[1].type, BT_OPND_IMM);
	CU_ASSERT_EQUAL(in.opnd[1].imm & 0xFFFFFFFF, 0xFFFFFFFF);
	in = dec(M64, "48 05 00 00 00 80"); /* add rax, imm32 sign-extended */
	CU_ASSERT_EQUAL(in.opnd[1].imm, 0xFFFFFFFF80000000ull);
	in = dec(M32, "e4 60"); /* in al, 0x60: zero-extended */
	CU_ASSERT_EQUAL(in.opnd[1].imm, 0x60);
	in = dec(M32, "eb fe");
	CU_ASSERT_EQUAL(in.opnd[0].type, BT_OPND_REL);
	CU_ASSERT_EQUAL((int64_t)in.opnd[0].imm, -2);
	in = dec(M32, "ea 78 56 34 12 08 00");
	CU_ASSERT_EQUAL(in.opnd[0].type, BT_OPND_FAR);
	CU_ASSERT_EQUAL(in.opnd[0].imm, 0x12345678);
	CU_ASSERT_EQUAL(in.opnd[0].sel, 8);
	in = dec(M32, "c8 08 00 03");
	CU_ASSERT_EQUAL(in.opnd[0].imm, 8);
	CU_ASSERT_EQUAL(in.opnd[1].imm, 3);
	in = dec(M32, "0f 4f c1");
	CU_ASSERT_EQUAL(in.cc, 0xF);
}

static void test_prefixes(void)
{
	struct bt_insn in = dec(M32, "f2 f3 a6"); /* last of F2/F3 wins */

	CU_ASSERT(in.prefix & BT_PFX_REP);
	CU_ASSERT(!(in.prefix & BT_PFX_REPNE));
	in = dec(M32, "f0 01 08");
	CU_ASSERT(in.prefix & BT_PFX_LOCK);
	in = dec(M64, "66 f2 0f 58 c1"); /* mandatory: F2 over 66 */
	CU_ASSERT_EQUAL(in.mandatory, 0xF2);
	in = dec(M64, "66 0f ef c1");
	CU_ASSERT_EQUAL(in.mandatory, 0x66);
	CU_ASSERT_EQUAL(in.opnd[0].cls, BT_RC_XMM);
	in = dec(M64, "0f ef c1"); /* no prefix: MMX registers */
	CU_ASSERT_EQUAL(in.opnd[0].cls, BT_RC_MMX);
}

/* Every byte sequence decodes to a result without reading past the input
 * (run under the sanitizer this catches overreads). */
static void test_random_bytes(void)
{
	uint32_t x = 12345;
	uint8_t buf[16];
	struct bt_insn in;

	for (int i = 0; i < 200000; i++) {
		for (int k = 0; k < 16; k++) {
			x = x * 1103515245 + 12345;
			buf[k] = (uint8_t)(x >> 16);
		}
		size_t n = (x >> 8) % 16;
		int r = bt_decode(buf, n, (enum bt_mode)(i % 3), &in);
		CU_ASSERT(r == BT_DEC_MORE || r == BT_DEC_GP || r == BT_DEC_UD ||
			  (r > 0 && r <= (int)n && r <= 15));
	}
}

int main(void)
{
	static const struct test_case tests[] = {
		TEST(test_corpus), TEST(test_operands_modrm_sib),
		TEST(test_operands_rex_rip), TEST(test_immediates),
		TEST(test_prefixes), TEST(test_random_bytes),
	};

	return RUN_TESTS("bt_decode", tests);
}
