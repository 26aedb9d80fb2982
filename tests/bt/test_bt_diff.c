/* cpu-bt differential tester: runs user-mode instruction forms on the host
 * CPU (in a forked child, from an executable page at a fixed address) and
 * in the interpreter, with the same seeded random registers, flags and
 * memory, and compares all GPRs, the defined flags and the memory block.
 * Flags an instruction leaves undefined (SDM vol. 2 "Flags Affected", APM
 * vol. 3 "rFLAGS Affected") are masked per form, for CL counts per sample.
 * What one vendor defines and the other leaves undefined is compared only
 * on a host of the defining vendor (CPUID leaf 0, never assumed). Prints a
 * coverage table; any mismatch fails the test.
 * BT_DIFF_ITERS in the environment changes the iterations per form.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "testmain.h"

#define CODE_ADDR 0x200000ull
#define DATA_ADDR 0x202000ull
#define IN_OFF 0x000   /* 16 GPRs + RFLAGS */
#define OUT_OFF 0x100
#define SAVE_OFF 0x200 /* the caller's RSP */
#define MEM_OFF 0x800  /* 64 bytes of operand memory */
#define MEM_ADDR (DATA_ADDR + MEM_OFF)
#define RET_ADDR 0x1F0000ull
#define DATA_SIZE 0x1000
#define MAX_ITERS 20000

#define FL_ALL (BT_CF | BT_PF | BT_AF | BT_ZF | BT_SF | BT_OF)
#define U_AF BT_AF
#define U_MUL (BT_SF | BT_ZF | BT_AF | BT_PF)
#define U_BT (BT_OF | BT_SF | BT_AF | BT_PF)
#define U_BSF (BT_CF | BT_OF | BT_SF | BT_AF | BT_PF)
#define U_SHCL (BT_OF | BT_AF)   /* OF defined only for count 1 */
#define U_ROTCL BT_OF

enum cons {
	C_NONE, C_DIV, C_IDIV, C_DIV8, C_IDIV8, C_BX_SMALL, C_CL_SMALL, C_AAM, C_BOUND,
};

/* Forms whose undefined flags depend on the count in CL, or whose result
 * is vendor-specific; the undefined flags are then worked out per sample
 * (undefined_flags) rather than taken from undef. */
enum rule {
	R_NONE,
	R_SHLR_CL,      /* SHL/SHR r/m, CL */
	R_SAR_CL,       /* SAR r/m, CL */
	R_DSH_CL,       /* SHLD/SHRD r/m, r, CL */
	R_ROT_CL,       /* ROL/ROR/RCL/RCR r/m, CL */
	R_BSF,          /* BSF/BSR ?ax, ?bx */
};

struct form {
	const char *src;
	uint32_t undef;
	int cons;
	bool m32;       /* run in 32-bit compatibility mode */
	uint8_t rule;
	uint8_t bits;   /* operand size, for a rule */
};

#define SHLR_CL(b) .rule = R_SHLR_CL, .bits = (b)
#define SAR_CL(b) .rule = R_SAR_CL, .bits = (b)
#define DSH_CL(b) .rule = R_DSH_CL, .bits = (b)
#define ROT_CL(b) .rule = R_ROT_CL, .bits = (b)
#define BSF(b) .undef = U_BSF, .rule = R_BSF, .bits = (b)

/* Table rows name only what differs from the defaults (0). */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
static const struct form forms[] = {
	/* ALU, every size */
	{ "add al, bl" }, { "add ax, bx" }, { "add eax, ebx" }, { "add rax, rbx" },
	{ "adc al, bl" }, { "adc cx, dx" }, { "adc ecx, edx" }, { "adc rcx, rdx" },
	{ "sub sil, dil" }, { "sub si, di" }, { "sub esi, edi" }, { "sub rsi, rdi" },
	{ "sbb r8b, r9b" }, { "sbb r8w, r9w" }, { "sbb r8d, r9d" }, { "sbb r8, r9" },
	/* AND, OR, XOR and TEST leave AF undefined */
	{ "and ah, bh", U_AF }, { "and eax, ebx", U_AF }, { "and rax, rbx", U_AF },
	{ "or ch, dl", U_AF }, { "or ecx, edx", U_AF }, { "or rcx, rdx", U_AF },
	{ "xor al, 0x5a", U_AF }, { "xor eax, ebx", U_AF }, { "xor rax, -3", U_AF },
	{ "cmp al, bl" }, { "cmp eax, ebx" }, { "cmp rax, rbx" }, { "cmp r10, 0x7f" },
	{ "test al, bl", U_AF }, { "test eax, ebx", U_AF }, { "test rax, rbx", U_AF },
	{ "add eax, 0x7fffffff" }, { "sub rax, 0x80" }, { "adc bx, 0x1234" },
	{ "inc al" }, { "inc eax" }, { "inc rax" }, { "dec bx" }, { "dec rbx" },
	{ "neg al" }, { "neg eax" }, { "neg rax" }, { "not ecx" }, { "not rcx" },
	/* shifts and rotates: a shift by a nonzero count leaves AF undefined,
	 * also by 1, where OF is defined; a rotate never changes AF */
	{ "shl eax, 1", U_AF }, { "shr eax, 1", U_AF }, { "sar eax, 1", U_AF },
	{ "rol eax, 1" }, { "ror eax, 1" }, { "rcl eax, 1" }, { "rcr eax, 1" },
	{ "shl al, 1", U_AF }, { "shr bx, 1", U_AF }, { "sar rdx, 1", U_AF },
	{ "rcr bl, 1" },
	{ "shl eax, cl", SHLR_CL(32) }, { "shr eax, cl", SHLR_CL(32) },
	{ "sar eax, cl", SAR_CL(32) },
	{ "shl rax, cl", SHLR_CL(64) }, { "shr rax, cl", SHLR_CL(64) },
	{ "sar rax, cl", SAR_CL(64) },
	{ "shl al, cl", SHLR_CL(8), .cons = C_CL_SMALL },
	{ "shr bx, cl", SHLR_CL(16), .cons = C_CL_SMALL },
	{ "sar dl, cl", SAR_CL(8) }, { "sar si, cl", SAR_CL(16) },
	{ "rol eax, cl", ROT_CL(32) }, { "ror rax, cl", ROT_CL(64) },
	{ "rol al, cl", ROT_CL(8) }, { "ror bx, cl", ROT_CL(16) },
	{ "rcl eax, cl", ROT_CL(32) }, { "rcr rax, cl", ROT_CL(64) },
	{ "rcl al, cl", ROT_CL(8) }, { "rcr bx, cl", ROT_CL(16) },
	{ "shl eax, 7", U_SHCL }, { "sar rbx, 63", U_SHCL }, { "rol rdx, 13", U_ROTCL },
	{ "shld eax, ebx, cl", DSH_CL(32) }, { "shrd eax, ebx, cl", DSH_CL(32) },
	{ "shld rax, rbx, cl", DSH_CL(64) }, { "shrd rax, rbx, cl", DSH_CL(64) },
	{ "shld eax, ebx, 5", U_SHCL }, { "shrd rdx, rsi, 60", U_SHCL },
	{ "shld ax, bx, cl", DSH_CL(16), .cons = C_CL_SMALL },
	{ "shrd ax, bx, cl", DSH_CL(16), .cons = C_CL_SMALL },
	/* multiply and divide */
	{ "mul bl", U_MUL }, { "mul bx", U_MUL }, { "mul ebx", U_MUL }, { "mul rbx", U_MUL },
	{ "imul bl", U_MUL }, { "imul bx", U_MUL }, { "imul ebx", U_MUL },
	{ "imul rbx", U_MUL }, { "imul eax, ebx", U_MUL }, { "imul rax, rbx", U_MUL },
	{ "imul cx, dx", U_MUL }, { "imul eax, ebx, -7", U_MUL },
	{ "imul rax, rbx, 0x12345", U_MUL },
	{ "div ecx", FL_ALL, C_DIV }, { "div rcx", FL_ALL, C_DIV },
	{ "div cx", FL_ALL, C_DIV }, { "div cl", FL_ALL, C_DIV8 },
	{ "idiv ecx", FL_ALL, C_IDIV }, { "idiv rcx", FL_ALL, C_IDIV },
	{ "idiv cx", FL_ALL, C_IDIV }, { "idiv cl", FL_ALL, C_IDIV8 },
	/* bits */
	{ "bt eax, ebx", U_BT }, { "bts rax, rbx", U_BT }, { "btr eax, ecx", U_BT },
	{ "btc rax, rcx", U_BT }, { "bt eax, 17", U_BT }, { "bts rbx, 63", U_BT },
	{ "bsf eax, ebx", BSF(32) }, { "bsr rax, rbx", BSF(64) }, { "bsf ax, bx", BSF(16) },
	{ "bswap eax" }, { "bswap r9" },
	/* moves, conversions, conditionals */
	{ "movzx eax, bl" }, { "movzx rax, bx" }, { "movsx eax, bl" },
	{ "movsx rax, bx" }, { "movsxd rax, ebx" }, { "movsx cx, dl" },
	{ "cbw" }, { "cwde" }, { "cdqe" }, { "cwd" }, { "cdq" }, { "cqo" },
	{ "cmovz eax, ebx" }, { "cmovl rax, rbx" }, { "cmovbe ecx, edx" },
	{ "cmovp r8, r9" }, { "cmovg si, di" }, { "cmovns eax, ebx" },
	{ "setz al" }, { "setl bl" }, { "setbe cl" }, { "seto dl" }, { "setg sil" },
	{ "setnp r8b" }, { "seta ah" },
	{ "xchg eax, ebx" }, { "xchg rcx, rdx" }, { "xchg al, ah" },
	{ "xadd eax, ebx" }, { "xadd rcx, rdx" },
	{ "cmpxchg ebx, ecx" }, { "cmpxchg rbx, rcx" }, { "cmpxchg bl, cl" },
	{ "lea eax, [rbx + rcx*4 + 0x10]" }, { "lea rax, [rbx + rcx*8 - 1]" },
	{ "lea ax, [rbx + rsi]" },
	{ "lahf" }, { "sahf" }, { "cmc" }, { "clc" }, { "stc" },
	/* memory operands */
	{ "add [0x202800], eax" }, { "sub rax, [0x202808]" }, { "xor [0x202810], bl", U_AF },
	{ "inc dword [0x202804]" }, { "neg qword [0x202808]" },
	{ "shl dword [0x202800], cl", SHLR_CL(32) }, { "rcr word [0x202802], 1" },
	{ "bts [0x202800], ebx", U_BT, C_BX_SMALL },
	{ "btr [0x202800], rbx", U_BT, C_BX_SMALL },
	{ "bt word [0x202810], bx", U_BT, C_BX_SMALL },
	{ "xadd [0x202810], rax" }, { "cmpxchg [0x202800], ecx" },
	{ "lock cmpxchg8b [0x202820]" }, { "lock cmpxchg16b [0x202820]" },
	{ "xchg [0x202818], rdx" }, { "movzx ecx, word [0x202806]" },
	{ "push qword [0x202800]\n pop qword [0x202808]" },
	{ "push rax\n push rbx\n pop rcx\n pop rdx" },
	/* SSE2 integer and scalar double */
	{ "movq xmm0, rax\n movq xmm1, rbx\n paddb xmm0, xmm1\n movq rcx, xmm0" },
	{ "movq xmm0, rax\n movq xmm1, rbx\n psubw xmm0, xmm1\n movq rcx, xmm0" },
	{ "movq xmm0, rax\n movq xmm1, rbx\n pcmpeqb xmm0, xmm1\n pmovmskb ecx, xmm0" },
	{ "movq xmm0, rax\n movq xmm1, rbx\n punpcklbw xmm0, xmm1\n movq rcx, xmm0\n"
	  "psrldq xmm0, 8\n movq rdx, xmm0" },
	{ "movq xmm0, rax\n pshufd xmm1, xmm0, 0x1b\n movq rcx, xmm1\n psrldq xmm1, 8\n"
	  "movq rdx, xmm1" },
	{ "movq xmm0, rax\n movq xmm1, rbx\n pmaddwd xmm0, xmm1\n movq rcx, xmm0" },
	{ "movq xmm0, rax\n movq xmm1, rbx\n paddusb xmm0, xmm1\n psubsw xmm0, xmm1\n"
	  "movq rcx, xmm0" },
	{ "movq xmm0, rax\n psllq xmm0, 3\n psraw xmm0, 2\n movq rcx, xmm0" },
	{ "cvtsi2sd xmm0, rax\n cvtsi2sd xmm1, ebx\n addsd xmm0, xmm1\n"
	  "mulsd xmm0, xmm1\n cvttsd2si rcx, xmm0\n movq rdx, xmm0" },
	{ "cvtsi2sd xmm0, eax\n cvtsi2sd xmm1, ebx\n divsd xmm0, xmm1\n movq rcx, xmm0\n"
	  "ucomisd xmm0, xmm1" },
	{ "cvtsi2ss xmm0, eax\n cvtsi2ss xmm1, ebx\n subss xmm0, xmm1\n movd ecx, xmm0\n"
	  "comiss xmm0, xmm1" },
	{ "movq xmm0, rax\n movq xmm1, rbx\n mov rdi, 0x202800\n maskmovdqu xmm0, xmm1" },
	/* 32-bit code (compatibility mode): forms that do not exist in
	 * 64-bit mode, and 16-bit operand size there */
	{ "daa", BT_OF, 0, true }, { "das", BT_OF, 0, true },
	{ "aaa", BT_OF | BT_SF | BT_ZF | BT_PF, 0, true },
	{ "aas", BT_OF | BT_SF | BT_ZF | BT_PF, 0, true },
	{ "aam", BT_OF | BT_AF | BT_CF, C_AAM, true },
	{ "aam 7", BT_OF | BT_AF | BT_CF, C_AAM, true },
	{ "aad", BT_OF | BT_AF | BT_CF, 0, true },
	{ "aad 16", BT_OF | BT_AF | BT_CF, 0, true },
	{ "add al, bl\n daa", BT_OF, 0, true }, { "sub al, bl\n das", BT_OF, 0, true },
	{ "inc eax\n dec ebx\n inc cx\n dec dx", 0, 0, true },
	{ "pushad\n pop eax\n pop ebx\n pop ecx\n pop edx\n pop esi\n pop edi\n"
	  "pop ebp\n pop ebp", 0, 0, true },
	{ "push eax\n push ebx\n push ecx\n push edx\n push esi\n push edi\n push ebp\n"
	  "push ebp\n popad", 0, 0, true },
	{ "pushaw\n popaw", 0, 0, true },
	{ "add ax, bx\n adc cx, dx\n sbb si, di", 0, 0, true },
	{ "shl ax, cl", SHLR_CL(16), .cons = C_CL_SMALL, .m32 = true },
	{ "rcr bx, cl", ROT_CL(16), .m32 = true },
	{ "imul ax, bx, -3", U_MUL, 0, true }, { "mul bx", U_MUL, 0, true },
	{ "div cx", FL_ALL, C_DIV, true }, { "idiv cx", FL_ALL, C_IDIV, true },
	{ "cwde\n cdq", 0, 0, true }, { "cbw\n cwd", 0, 0, true },
	{ "xchg ax, bx\n bswap ecx\n xadd si, di", 0, 0, true },
	{ "lea ax, [bx + si + 7]\n lea edx, [ecx * 8 + ebx]", 0, 0, true },
	{ "movsx ax, bl\n movzx edx, cx\n cmovc si, di", 0, 0, true },
	{ "salc", 0, 0, true },
	{ "mov esi, 0x202800\n mov edi, 0x202820\n cld\n mov ecx, 5\n rep movsb", 0, 0, true },
	{ "mov edi, 0x202800\n mov ecx, 8\n std\n rep stosw\n cld", 0, 0, true },
	{ "mov esi, 0x202800\n mov edi, 0x202808\n mov ecx, 8\n repe cmpsb", 0, 0, true },
	{ "push dword [0x202800]\n pop word [0x202808]\n pop word [0x20280a]", 0, 0, true },
	{ "bound eax, [0x202830]", 0, C_BOUND, true },
	/* x87 (the host runs with FCW 0x37F, as the interpreter starts);
	 * FSW's DE and C1 (round-up indication) are not modelled: masked */
	{ "fninit\n fild qword [0x202800]\n fild qword [0x202808]\n faddp\n fistp qword [0x202810]" },
	{ "fninit\n fild dword [0x202800]\n fild dword [0x202804]\n fdivp\n fstp qword [0x202810]\n"
	  "fild word [0x202808]\n fsqrt\n fstp tword [0x202818]" },
	/* C0, C2 and C3 are undefined after FILD and FSTP (FCOMIP keeps them):
	 * masked, with FCOMIP's flags kept across the AND */
	{ "fninit\n fild dword [0x202800]\n fild dword [0x202804]\n fcomip st1\n fstp st0\n"
	  "fnstsw ax\n pushfq\n and eax, 0xbaff\n popfq" },
	{ "fninit\n fild dword [0x202800]\n fild dword [0x202804]\n fdivp\n"
	  "fistp dword [0x202808]\n fnstsw ax\n and eax, 0x3d", U_AF },
	{ "fninit\n fld qword [0x202800]\n fld qword [0x202808]\n fdivp\n"
	  "fstp dword [0x202810]\n fnstsw ax\n and eax, 0x3d", U_AF },
	{ "mov dword [0x202838], 0x1f80\n ldmxcsr [0x202838]\n cvtsi2sd xmm0, rax\n"
	  "cvtsi2sd xmm1, rbx\n divsd xmm0, xmm1\n cvtsd2ss xmm2, xmm0\n"
	  "stmxcsr [0x202838]\n movd ecx, xmm2" },
	{ "mov dword [0x202838], 0x7f80\n ldmxcsr [0x202838]\n cvtsi2sd xmm0, rax\n"
	  "cvtsi2sd xmm1, rbx\n divsd xmm0, xmm1\n cvtsd2si rcx, xmm0\n"
	  "stmxcsr [0x202838]" },
	/* x87 precision control (24/53 bits) with rounding control, and DE
	 * (denormal operand: memory holds small integers, i.e. denormals) */
	{ "fninit\n mov word [0x202838], 0x007f\n fldcw [0x202838]\n fld qword [0x202800]\n"
	  "fld qword [0x202808]\n fdivp\n fld st0\n fmul st0, st0\n fstp tword [0x202810]\n"
	  "fstp tword [0x202820]\n fnstsw ax\n and eax, 0x3f", U_AF },
	{ "fninit\n mov word [0x202838], 0x0a7f\n fldcw [0x202838]\n fld qword [0x202800]\n"
	  "fld qword [0x202808]\n faddp\n fld st0\n fsqrt\n fstp tword [0x202810]\n"
	  "fstp tword [0x202820]\n fnstsw ax\n and eax, 0x3f", U_AF },
	{ "fninit\n mov word [0x202838], 0x0c7f\n fldcw [0x202838]\n fild dword [0x202800]\n"
	  "fild dword [0x202804]\n fdivp\n fld dword [0x202808]\n fsubp\n fstp tword [0x202810]\n"
	  "fnstsw ax\n and eax, 0x3f", U_AF },
	/* MXCSR: DAZ and FTZ under each rounding mode, DE, denormal and tiny
	 * operands (rax/eax masked to the smallest exponents: the AND leaves
	 * AF undefined, as in the forms ending in one) */
	{ "mov dword [0x202838], 0x9fc0\n ldmxcsr [0x202838]\n mov r8, 0x001fffffffffffff\n"
	  "and rax, r8\n movq xmm0, rax\n movq xmm1, rbx\n addsd xmm0, xmm1\n mulsd xmm1, xmm0\n"
	  "divsd xmm1, xmm0\n movq rcx, xmm0\n movq rdx, xmm1\n stmxcsr [0x202838]", U_AF },
	{ "mov dword [0x202838], 0xff80\n ldmxcsr [0x202838]\n mov r8, 0x801fffffffffffff\n"
	  "and rax, r8\n movq xmm0, rax\n movq xmm1, rbx\n mulsd xmm0, xmm0\n addsd xmm1, xmm0\n"
	  "cvtsd2ss xmm2, xmm1\n movq rcx, xmm0\n movq rdx, xmm1\n movd esi, xmm2\n"
	  "stmxcsr [0x202838]", U_AF },
	{ "mov dword [0x202838], 0x5fc0\n ldmxcsr [0x202838]\n mov r8, 0x800fffffffffffff\n"
	  "and rax, r8\n movq xmm0, rax\n movq xmm1, rbx\n subsd xmm1, xmm0\n sqrtsd xmm2, xmm0\n"
	  "cvtsd2si rcx, xmm1\n movq rdx, xmm1\n movq rsi, xmm2\n stmxcsr [0x202838]", U_AF },
	{ "mov dword [0x202838], 0x3f80\n ldmxcsr [0x202838]\n mov r8, 0x000fffffffffffff\n"
	  "and rax, r8\n movq xmm0, rax\n movq xmm1, rbx\n addsd xmm1, xmm0\n mulsd xmm0, xmm0\n"
	  "movq rcx, xmm0\n movq rdx, xmm1\n stmxcsr [0x202838]", U_AF },
	{ "mov dword [0x202838], 0x9f80\n ldmxcsr [0x202838]\n and eax, 0x80ffffff\n"
	  "movd xmm0, eax\n movd xmm1, ebx\n mulss xmm0, xmm0\n addss xmm1, xmm0\n sqrtss xmm2, xmm1\n"
	  "cvtss2sd xmm3, xmm0\n movd ecx, xmm0\n movd edx, xmm1\n movd esi, xmm2\n"
	  "movq rdi, xmm3\n stmxcsr [0x202838]", U_AF },
	{ "mov dword [0x202838], 0x1fc0\n ldmxcsr [0x202838]\n and eax, 0x00ffffff\n"
	  "movd xmm0, eax\n pshufd xmm0, xmm0, 0\n movq xmm1, rbx\n addps xmm1, xmm0\n"
	  "mulps xmm0, xmm1\n movq rcx, xmm0\n movq rdx, xmm1\n stmxcsr [0x202838]", U_AF },
	/* NaN and infinity operands: COMISD/UCOMISD and the signalling and
	 * quiet CMPSD predicates set IE differently */
	{ "mov dword [0x202838], 0x1f80\n ldmxcsr [0x202838]\n mov r8, 0x7ff0000000000000\n"
	  "or rax, r8\n movq xmm0, rax\n movq xmm1, rbx\n ucomisd xmm0, xmm1\n"
	  "stmxcsr [0x202838]\n comisd xmm1, xmm0\n stmxcsr [0x20283c]" },
	{ "mov dword [0x202838], 0x1f80\n ldmxcsr [0x202838]\n mov r8, 0x7ff0000000000000\n"
	  "or rax, r8\n movq xmm0, rax\n movq xmm1, rbx\n movaps xmm2, xmm1\n cmpeqsd xmm2, xmm0\n"
	  "stmxcsr [0x202838]\n cmpltsd xmm1, xmm0\n stmxcsr [0x20283c]\n movq rcx, xmm1\n"
	  "movq rdx, xmm2", U_AF },
	{ "fninit\n fld qword [0x202800]\n fld qword [0x202808]\n fmulp\n fld st0\n fsubp\n"
	  "fstp dword [0x202810]\n fldpi\n fldln2\n fdivrp\n fistp dword [0x202814]" },
	{ "movq xmm0, rax\n movq xmm1, rbx\n packuswb xmm0, xmm1\n pmaxsw xmm0, xmm1\n"
	  "pavgb xmm0, xmm1\n psadbw xmm1, xmm0\n movq rcx, xmm0\n movq rdx, xmm1" },
	{ "movq xmm0, rax\n movq xmm1, rbx\n unpcklpd xmm0, xmm1\n shufpd xmm0, xmm0, 1\n"
	  "movq rcx, xmm0\n movmskpd edx, xmm0" },
	{ "cvtsi2sd xmm0, eax\n cvtsi2sd xmm1, ebx\n maxsd xmm0, xmm1\n minsd xmm1, xmm0\n"
	  "cmpltsd xmm1, xmm0\n movq rcx, xmm1\n cvtsd2ss xmm2, xmm0\n movd edx, xmm2" },
};

struct regs {
	uint64_t gpr[16];
	uint64_t flags;
};

struct sample {
	struct regs in, out;
	uint8_t mem_in[64], mem_out[64];
};

static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

/* Random values biased to the edges where flags change. */
static uint64_t value(void)
{
	static const uint64_t edges[] = {
		0, 1, 2, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF,
		0x80000000, 0xFFFFFFFF, 0x7FFFFFFFFFFFFFFF, 0x8000000000000000,
		~0ull, 0x0F, 0x10, 0x99,
	};
	uint64_t r = rnd();

	switch (r & 7) {
	case 0: case 1:
		return edges[(r >> 8) % (sizeof(edges) / sizeof(edges[0]))];
	case 2:
		return (r >> 8) & 0xFF;
	case 3:
		return (uint64_t)-(int64_t)((r >> 8) & 0xFF);
	default:
		return rnd();
	}
}

static void make_input(struct sample *s, int cons)
{
	for (int i = 0; i < 16; i++)
		s->in.gpr[i] = value();
	s->in.gpr[MODVM_RSP] = 0;
	/* arithmetic flags random; DF clear; bit 1 set */
	s->in.flags = 2 | (rnd() & FL_ALL);
	for (int i = 0; i < 64; i += 8) {
		uint64_t v = value();
		memcpy(s->mem_in + i, &v, 8);
	}
	switch (cons) {
	case C_DIV: /* no overflow: RDX below the divisor */
		if (!(s->in.gpr[MODVM_RCX] & 0xFFFF))
			s->in.gpr[MODVM_RCX] |= 3;
		s->in.gpr[MODVM_RDX] = 0;
		break;
	case C_DIV8:
		if (!(s->in.gpr[MODVM_RCX] & 0xFF))
			s->in.gpr[MODVM_RCX] |= 7;
		s->in.gpr[MODVM_RAX] &= ~0xFF00ull;
		break;
	case C_IDIV: /* RDX:RAX sign-extends a 16-bit value: no overflow at
		      * any size once the divisor is not 0 or -1 */
		if (!(s->in.gpr[MODVM_RCX] & 0xFFFF) ||
		    (s->in.gpr[MODVM_RCX] & 0xFFFF) == 0xFFFF)
			s->in.gpr[MODVM_RCX] = (s->in.gpr[MODVM_RCX] & ~0xFFFFull) | 5;
		s->in.gpr[MODVM_RAX] = (uint64_t)(int64_t)(int16_t)s->in.gpr[MODVM_RAX];
		s->in.gpr[MODVM_RDX] = (int64_t)s->in.gpr[MODVM_RAX] < 0 ? ~0ull : 0;
		break;
	case C_IDIV8: {
		int8_t al = (int8_t)s->in.gpr[MODVM_RAX];
		s->in.gpr[MODVM_RAX] = (s->in.gpr[MODVM_RAX] & ~0xFF00ull) |
				       (al < 0 ? 0xFF00 : 0);
		if (!(s->in.gpr[MODVM_RCX] & 0xFF) || (s->in.gpr[MODVM_RCX] & 0xFF) == 0xFF)
			s->in.gpr[MODVM_RCX] = (s->in.gpr[MODVM_RCX] & ~0xFFull) | 9;
		break;
	}
	case C_AAM: /* AAM imm8 with a zero base is #DE: never generated */
		break;
	case C_BOUND: { /* bounds around EAX so that no #BR is raised */
		int64_t a = (int32_t)s->in.gpr[MODVM_RAX];
		int64_t l = a - (int64_t)(rnd() % 100), h = a + (int64_t)(rnd() % 100);
		int32_t lo = (int32_t)(l < INT32_MIN ? a : l);
		int32_t hi = (int32_t)(h > INT32_MAX ? a : h);
		memcpy(s->mem_in + 0x30, &lo, 4); /* the form reads [0x202830] */
		memcpy(s->mem_in + 0x34, &hi, 4);
		break;
	}
	case C_BX_SMALL: /* a bit offset that stays inside the memory block */
		s->in.gpr[MODVM_RBX] = rnd() % 256;
		break;
	case C_CL_SMALL: /* 16-bit double shifts / 8-bit shifts: count <= size */
		s->in.gpr[MODVM_RCX] = (s->in.gpr[MODVM_RCX] & ~0xFFull) |
				       (rnd() % 16);
		break;
	default:
		break;
	}
}

/* The snippet: save callee-saved registers, load every register but RSP
 * and the flags from IN, run the form, store into OUT, return. */
static void snippet(const char *form, char *buf, size_t len)
{
	static const char *const names[16] = {
		"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
		"r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
	};
	size_t n = 0;

	n += (size_t)snprintf(buf + n, len - n,
			      "push rbx\npush rbp\npush r12\npush r13\npush r14\npush r15\n"
			      "mov [abs 0x%llx], rsp\n",
			      (unsigned long long)(DATA_ADDR + SAVE_OFF));
	for (int i = 0; i < 16; i++)
		if (i != MODVM_RSP)
			n += (size_t)snprintf(buf + n, len - n, "mov %s, [abs 0x%llx]\n",
					      names[i],
					      (unsigned long long)(DATA_ADDR + IN_OFF + 8 * i));
	n += (size_t)snprintf(buf + n, len - n,
			      "push qword [abs 0x%llx]\npopfq\n%s\npushfq\n"
			      "pop qword [abs 0x%llx]\n",
			      (unsigned long long)(DATA_ADDR + IN_OFF + 128), form,
			      (unsigned long long)(DATA_ADDR + OUT_OFF + 128));
	for (int i = 0; i < 16; i++)
		if (i != MODVM_RSP)
			n += (size_t)snprintf(buf + n, len - n, "mov [abs 0x%llx], %s\n",
					      (unsigned long long)(DATA_ADDR + OUT_OFF + 8 * i),
					      names[i]);
	snprintf(buf + n, len - n,
		 "mov rsp, [abs 0x%llx]\npop r15\npop r14\npop r13\npop r12\n"
		 "pop rbp\npop rbx\nret\n",
		 (unsigned long long)(DATA_ADDR + SAVE_OFF));
}

/* The 32-bit variant: a 64-bit trampoline switches to a stack below 4 GiB
 * and far-returns to compatibility-mode code (selector 0x23, the Linux
 * __USER32_CS), which loads DS/ES from SS, runs the form with 32-bit
 * registers and far-jumps back to 64-bit code (0x33, __USER_CS). */
static void snippet32(const char *form, char *buf, size_t len)
{
	static const char *const names[8] = {
		"eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi",
	};
	unsigned long long save = DATA_ADDR + SAVE_OFF;
	size_t n = 0;

	n += (size_t)snprintf(buf + n, len - n,
			      "push rbx\npush rbp\npush r12\npush r13\npush r14\npush r15\n"
			      "mov [abs 0x%llx], rsp\nmov rsp, 0x%llx\n"
			      "push 0x23\npush entry32\no64 retf\n"
			      "back64:\nmov rsp, [abs 0x%llx]\npop r15\npop r14\npop r13\n"
			      "pop r12\npop rbp\npop rbx\nret\n"
			      "bits 32\nentry32:\nmov ax, ss\nmov ds, ax\nmov es, ax\n",
			      save, (unsigned long long)(DATA_ADDR + 0xF00), save);
	for (int i = 0; i < 8; i++)
		if (i != MODVM_RSP)
			n += (size_t)snprintf(buf + n, len - n, "mov %s, [0x%llx]\n", names[i],
					      (unsigned long long)(DATA_ADDR + IN_OFF + 8 * i));
	n += (size_t)snprintf(buf + n, len - n,
			      "push dword [0x%llx]\npopfd\n%s\npushfd\npop dword [0x%llx]\n",
			      (unsigned long long)(DATA_ADDR + IN_OFF + 128), form,
			      (unsigned long long)(DATA_ADDR + OUT_OFF + 128));
	for (int i = 0; i < 8; i++)
		if (i != MODVM_RSP)
			n += (size_t)snprintf(buf + n, len - n, "mov [0x%llx], %s\n",
					      (unsigned long long)(DATA_ADDR + OUT_OFF + 8 * i),
					      names[i]);
	snprintf(buf + n, len - n, "jmp 0x33:back64\n");
}

/* Run every sample on the host in a child; false if the child died. */
static bool run_host(const uint8_t *code, unsigned len, struct sample *s,
		     int n)
{
	struct sample *shared = mmap(NULL, sizeof(*s) * (size_t)n,
				     PROT_READ | PROT_WRITE,
				     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int status;
	pid_t pid;

	memcpy(shared, s, sizeof(*s) * (size_t)n);
	pid = fork();
	if (pid == 0) {
		uint8_t *p = mmap((void *)CODE_ADDR, 0x4000,
				  PROT_READ | PROT_WRITE | PROT_EXEC,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		if (p == MAP_FAILED)
			_exit(2);
		memcpy(p, code, len);
		for (int i = 0; i < n; i++) {
			uint8_t *d = p + (DATA_ADDR - CODE_ADDR);
			memcpy(d + IN_OFF, &shared[i].in, sizeof(shared[i].in));
			memset(d + OUT_OFF, 0, sizeof(shared[i].out));
			memcpy(d + MEM_OFF, shared[i].mem_in, 64);
			((void (*)(void))p)();
			memcpy(&shared[i].out, d + OUT_OFF, sizeof(shared[i].out));
			memcpy(shared[i].mem_out, d + MEM_OFF, 64);
		}
		_exit(0);
	}
	waitpid(pid, &status, 0);
	memcpy(s, shared, sizeof(*s) * (size_t)n);
	munmap(shared, sizeof(*s) * (size_t)n);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* The same samples in the interpreter, user mode (CPL 3) in long mode. */
static struct modvm_cpu_state user_state;

static void run_bt(struct fx *f, const uint8_t *code, unsigned len,
		   const struct sample *s, struct regs *out, uint8_t *mem_out,
		   int *vector)
{
	struct bt_cpu *c = &f->cpu;

	bt_cpu_set_state(c, &user_state);
	memcpy(f->ram + CODE_ADDR, code, len);
	memcpy(f->ram + DATA_ADDR + IN_OFF, &s->in, sizeof(s->in));
	memset(f->ram + DATA_ADDR + OUT_OFF, 0, sizeof(*out));
	memcpy(f->ram + DATA_ADDR + MEM_OFF, s->mem_in, 64);
	f->ram[RET_ADDR] = 0x0F; /* ret lands on UD2: ends the run */
	f->ram[RET_ADDR + 1] = 0x0B;
	fx_set64(f, FX_STACK - 8, RET_ADDR);
	c->s.gpr[MODVM_RSP] = FX_STACK - 8;
	c->s.rip = CODE_ADDR;
	c->s.halted = 0;
	c->s.rflags = 2;
	fx_run_hlt(f);
	*vector = fx_vector(f);
	memcpy(out, f->ram + DATA_ADDR + OUT_OFF, sizeof(*out));
	memcpy(mem_out, f->ram + DATA_ADDR + MEM_OFF, 64);
}

/* User mode, like the host child, with Linux's user selectors: 0x23
 * 32-bit code, 0x2B data, 0x33 64-bit code. The kernel code the IDT uses
 * moves to 0x58. */
static void setup_user(struct fx *f)
{
	fx_idt(f);
	fx_set64(f, FX_GDT + 0x20, 0x00CFFB000000FFFFull);
	fx_set64(f, FX_GDT + 0x28, 0x00CFF3000000FFFFull);
	fx_set64(f, FX_GDT + 0x58, 0x00AF9B000000FFFFull);
	f->cpu.s.gdt.limit = 12 * 8 - 1;
	for (int v = 0; v < 256; v++)
		f->ram[FX_IDT + 16 * v + 2] = 0x58;
	f->cpu.s.seg[BT_CS].dpl = 3;
	f->cpu.s.seg[BT_CS].selector = 0x33;
	f->cpu.s.seg[BT_SS].dpl = 3;
	f->cpu.s.seg[BT_SS].selector = 0x2B;
	bt_cpu_update_mode(&f->cpu);
}

/* The host's vendor from CPUID leaf 0. A rule one vendor defines and the
 * other leaves undefined is compared only on the defining vendor's host;
 * an unknown vendor is held to neither. */
enum vendor { V_OTHER, V_INTEL, V_AMD };

static enum vendor host_vendor(void)
{
	unsigned a = 0, b, c = 0, d;

	__asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
	if (b == 0x68747541 && d == 0x69746e65 && c == 0x444d4163)
		return V_AMD;   /* "AuthenticAMD" */
	if (b == 0x756e6547 && d == 0x49656e69 && c == 0x6c65746e)
		return V_INTEL; /* "GenuineIntel" */
	return V_OTHER;
}

static enum vendor host_cpu;

/* The flags a sample leaves undefined (SDM vol. 2 and APM vol. 3 agree
 * on these). A masked count of 0 changes no flag. Otherwise OF is
 * defined only for a count of 1; shifts leave AF undefined, rotates
 * never change it; SHL and SHR leave CF undefined once the count reaches
 * the operand size, SHLD and SHRD every flag once it exceeds it. */
static uint32_t undefined_flags(const struct form *fm, const struct sample *s)
{
	unsigned n = (unsigned)s->in.gpr[MODVM_RCX] & (fm->bits == 64 ? 63 : 31);
	uint32_t u;

	if (fm->rule == R_NONE || fm->rule == R_BSF)
		return fm->undef;
	if (n == 0)
		return 0;
	u = n == 1 ? 0 : BT_OF;
	switch (fm->rule) {
	case R_ROT_CL:
		return u;
	case R_SHLR_CL:
		return u | BT_AF | (n >= fm->bits ? BT_CF : 0);
	case R_DSH_CL:
		return n > fm->bits ? FL_ALL : u | BT_AF;
	default:
		return u | BT_AF;
	}
}

/* Is GPR r undefined after this sample? BSF/BSR with a zero source: AMD
 * leaves the destination unchanged (APM vol. 3), Intel leaves it
 * undefined (SDM vol. 2; a 32-bit one clears bits 63:32 in practice).
 * cpu-bt does what AMD documents, which Intel allows. */
static bool reg_undefined(const struct form *fm, const struct sample *s, int r)
{
	uint64_t src = s->in.gpr[MODVM_RBX];

	if (fm->rule != R_BSF || r != MODVM_RAX || host_cpu == V_AMD)
		return false;
	return !(fm->bits == 64 ? src : src & ((1ull << fm->bits) - 1));
}

static const char *flag_names(uint32_t f, char *buf)
{
	static const struct { uint32_t bit; const char *n; } t[] = {
		{ BT_CF, "CF" }, { BT_PF, "PF" }, { BT_AF, "AF" }, { BT_ZF, "ZF" },
		{ BT_SF, "SF" }, { BT_OF, "OF" },
	};

	buf[0] = 0;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (f & t[i].bit)
			strcat(strcat(buf, t[i].n), " ");
	return buf;
}

static void test_diff(void)
{
	const char *it = getenv("BT_DIFF_ITERS");
	int iters = it ? atoi(it) : 500;
	struct sample *s;
	struct fx *f = fx_new(FX_LONG64);
	unsigned total_bad = 0, forms_run = 0;
	char src[8192], fl[64];

	if (iters <= 0 || iters > MAX_ITERS)
		iters = 500;
	host_cpu = host_vendor();
	s = calloc((size_t)iters, sizeof(*s));
	setup_user(f);
	bt_cpu_get_state(&f->cpu, &user_state);
	printf("\n%-60s %6s %6s  %s\n", "form", "iters", "bad", "first difference");
	for (size_t k = 0; k < sizeof(forms) / sizeof(forms[0]); k++) {
		const struct form *fm = &forms[k];
		unsigned len, bad = 0;
		uint8_t code[4096];
		char first[200] = "";

		rng_state = 0x9E3779B97F4A7C15ull ^ (k * 0x100000001B3ull);
		if (fm->m32)
			snippet32(fm->src, src, sizeof(src));
		else
			snippet(fm->src, src, sizeof(src));
		len = fx_asm_at(f, CODE_ADDR, src);
		memcpy(code, f->ram + CODE_ADDR, len);
		for (int i = 0; i < iters; i++)
			make_input(&s[i], fm->cons);
		if (!run_host(code, len, s, iters)) {
			printf("%-60.60s %6d %6s  host child failed\n", fm->src, iters, "-");
			continue;
		}
		forms_run++;
		for (int i = 0; i < iters; i++) {
			struct regs out;
			uint8_t mem[64];
			int vec;
			uint32_t defined = FL_ALL & ~undefined_flags(fm, &s[i]);
			run_bt(f, code, len, &s[i], &out, mem, &vec);
			bool ok = vec == BT_UD; /* reached the UD2 after RET */
			int r;
			for (r = 0; ok && r < 16; r++)
				if (r != MODVM_RSP && out.gpr[r] != s[i].out.gpr[r] &&
				    !reg_undefined(fm, &s[i], r))
					break;
			if (ok && r < 16) {
				ok = false;
				if (!first[0])
					snprintf(first, sizeof(first),
						 "reg %d: 0x%llx want 0x%llx (in rax=0x%llx rbx=0x%llx rcx=0x%llx)",
						 r, (unsigned long long)out.gpr[r],
						 (unsigned long long)s[i].out.gpr[r],
						 (unsigned long long)s[i].in.gpr[0],
						 (unsigned long long)s[i].in.gpr[3],
						 (unsigned long long)s[i].in.gpr[1]);
			}
			if (ok && ((out.flags ^ s[i].out.flags) & defined)) {
				ok = false;
				if (!first[0])
					snprintf(first, sizeof(first),
						 "flags differ in %s(in rax=0x%llx rbx=0x%llx rcx=0x%llx fl=0x%llx)",
						 flag_names((uint32_t)((out.flags ^ s[i].out.flags) & defined), fl),
						 (unsigned long long)s[i].in.gpr[0],
						 (unsigned long long)s[i].in.gpr[3],
						 (unsigned long long)s[i].in.gpr[1],
						 (unsigned long long)s[i].in.flags);
			}
			if (ok && memcmp(mem, s[i].mem_out, 64)) {
				ok = false;
				int o = 0;
				while (o < 63 && mem[o] == s[i].mem_out[o])
					o++;
				o &= ~3;
				if (!first[0])
					snprintf(first, sizeof(first),
						 "memory differs at +%d: 0x%08x want 0x%08x (in rax=0x%llx rbx=0x%llx)",
						 o, mem[o] | mem[o + 1] << 8 | mem[o + 2] << 16 | (uint32_t)mem[o + 3] << 24,
						 s[i].mem_out[o] | s[i].mem_out[o + 1] << 8 | s[i].mem_out[o + 2] << 16 |
						 (uint32_t)s[i].mem_out[o + 3] << 24,
						 (unsigned long long)s[i].in.gpr[0],
						 (unsigned long long)s[i].in.gpr[3]);
			}
			if (vec != BT_UD && !first[0])
				snprintf(first, sizeof(first), "cpu-bt raised vector %d at 0x%llx",
					 vec, (unsigned long long)f->cpu.s.rip);
			bad += !ok;
		}
		total_bad += bad;
		printf("%-60.60s %6d %6u  %s\n", strtok(strcpy(src, fm->src), "\n"),
		       iters, bad, first);
	}
	printf("forms: %u run of %zu, mismatching samples: %u\n", forms_run,
	       sizeof(forms) / sizeof(forms[0]), total_bad);
	CU_ASSERT_EQUAL(total_bad, 0);
	CU_ASSERT(forms_run > 0);
	free(s);
	fx_free(f);
}

/* ---- XSAVE/XRSTOR against the host ------------------------------------
 * The host OS runs with CR4.OSXSAVE and an XCR0 holding more than x87 and
 * SSE, so the snippet asks for RFBM = 3 (EDX:EAX). It loads x87 and SSE
 * state, XSAVE64s it (area A1), XRSTOR64s a prepared area (A2: random x87
 * and SSE contents, each XSTATE_BV of 0-3, so the init rules are covered)
 * and XSAVE64s again (A3). The 576 bytes of A1 and A3 must match byte for
 * byte, except where the host CPU and cpu-bt's model may differ:
 * - FOP, FIP, FDP (bytes 6-23): an AMD CPU stores them only while FSW.ES
 *   is set, zeros otherwise (APM, FXSAVE); Intel always, but FOP only
 *   after an unmasked exception on processors since the Core 2 Duo (SDM
 *   vol. 1 8.1.9.1), where cpu-bt stores it always. cpu-bt follows its
 *   model's vendor. Where host and model vendors follow the same rule
 *   the bytes are compared with the host's; an AMD model under an Intel
 *   host must store zeros (derived, the host has the values); an Intel
 *   model under an AMD host (or any model under an unknown vendor) has
 *   nothing to be compared with and is masked. (The 64-bit format has no
 *   FCS/FDS, and no x87 instruction here has a memory operand, so Intel's
 *   FCS/FDS deprecation and FDP_EXCPTN_ONLY, CPUID.(7,0):EBX bits 13 and
 *   6, change nothing.)
 * - MXCSR_MASK bits 31:16 (bytes 30-31): the model's MXCSR has bits 15:0
 *   only; a host may have more (AMD's MM, bit 17, with MisAlignSse), so
 *   cpu-bt's must be 0 there and only bits 15:0 are compared. */
#define XD_MXCSR 0x2F0
#define XD_XMM 0x300
#define XD_A1 0x400
#define XD_A3 0x680
#define XD_A2 0xC00
#define XD_ITERS 16

static const char xsave_snippet[] =
	"fninit\n fld1\n fldpi\n fmul st0, st1\n fldl2e\n fsub st0, st2\n"
	"ldmxcsr [abs 0x2022f0]\n"
	"%s"
	"xor edx, edx\n mov eax, 3\n xsave64 [abs 0x202400]\n"
	"xrstor64 [abs 0x202c00]\n xsave64 [abs 0x202680]\n ret\n";

static bool host_has_osxsave(void)
{
	unsigned a = 1, b = 0, c = 0, d = 0;

	__asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
	return c & (1u << 27);
}

static void xsave_input(uint8_t *d, int iter)
{
	uint8_t *a2 = d + XD_A2;
	uint32_t mx = 0x1F80 | (rnd() & 0x603F);
	uint16_t fcw = 0x037F | (uint16_t)(rnd() & 0x0C00);
	uint16_t fsw = (uint16_t)(rnd() & 0x383F);

	for (int i = 0; i < DATA_SIZE; i++)
		d[i] = (uint8_t)rnd();
	memcpy(d + XD_MXCSR, &mx, 4);
	/* A2: a valid legacy region; FOP, FIP, FDP 0 (see above) */
	memset(a2, 0, 24);
	memcpy(a2, &fcw, 2);
	memcpy(a2 + 2, &fsw, 2);
	a2[4] = (uint8_t)rnd();
	mx = 0x1F80 | (rnd() & 0x603F);
	memcpy(a2 + 24, &mx, 4);
	for (int r = 0; r < 8; r++)
		memset(a2 + 32 + 16 * r + 10, 0, 6);
	memset(a2 + 512, 0, 64);
	a2[512] = (uint8_t)(iter & 3);
}

/* Run on the host in a child; the data block goes there and back. */
static bool xsave_host(const uint8_t *code, unsigned len, uint8_t *data)
{
	uint8_t *shared = mmap(NULL, DATA_SIZE, PROT_READ | PROT_WRITE,
			       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int status;
	pid_t pid;

	memcpy(shared, data, DATA_SIZE);
	pid = fork();
	if (pid == 0) {
		uint8_t *p = mmap((void *)CODE_ADDR, 0x4000,
				  PROT_READ | PROT_WRITE | PROT_EXEC,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		if (p == MAP_FAILED)
			_exit(2);
		memcpy(p, code, len);
		memcpy(p + (DATA_ADDR - CODE_ADDR), shared, DATA_SIZE);
		((void (*)(void))p)();
		memcpy(shared, p + (DATA_ADDR - CODE_ADDR), DATA_SIZE);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	memcpy(data, shared, DATA_SIZE);
	munmap(shared, DATA_SIZE);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* The first byte where cpu-bt's image b differs from what the host's
 * image a lets us expect, or -1 (see above). */
static int xsave_first_diff(const uint8_t *a, const uint8_t *b, bool model_amd)
{
	bool es = a[2] & 0x80;
	bool host_zero = host_cpu == V_AMD && !es, model_zero = model_amd && !es;

	for (int i = 0; i < 576; i++) {
		bool ptr = i >= 6 && i < 24;
		if (ptr && host_cpu == V_OTHER)
			continue;
		if (ptr && host_zero == model_zero) {
			if (a[i] != b[i] && !(host_cpu == V_INTEL && i < 8))
				return i;
		} else if ((ptr && model_zero) || i == 30 || i == 31) {
			if (b[i])
				return i;
		} else if (!ptr && a[i] != b[i]) {
			return i;
		}
	}
	return -1;
}

static void xsave_diff(const struct modvm_cpu_model *model, bool model_amd)
{
	struct fx *f = fx_new(FX_LONG64);
	static uint8_t host[DATA_SIZE], in[DATA_SIZE];
	struct modvm_cpu_state *st = calloc(1, sizeof(*st));
	char src[4096], xmm[1024];
	uint8_t code[4096];
	unsigned len, bad = 0;
	size_t n = 0;

	host_cpu = host_vendor();
	bt_cpu_set_model(&f->cpu, model);
	setup_user(f);
	bt_cpu_get_state(&f->cpu, st);
	st->cr4 |= CR4_OSXSAVE;
	st->xcr0 = 3;
	for (int r = 0; r < 16; r++)
		n += (size_t)snprintf(xmm + n, sizeof(xmm) - n,
				      "movdqu xmm%d, [abs 0x%llx]\n", r,
				      (unsigned long long)(DATA_ADDR + XD_XMM + 16 * r));
	snprintf(src, sizeof(src), xsave_snippet, xmm);
	len = fx_asm_at(f, CODE_ADDR, src);
	memcpy(code, f->ram + CODE_ADDR, len);
	rng_state = 0x5851F42D4C957F2Dull;
	for (int it = 0; it < XD_ITERS; it++) {
		int d1, d3;

		xsave_input(in, it);
		memcpy(host, in, DATA_SIZE);
		CU_ASSERT_FATAL(xsave_host(code, len, host));
		bt_cpu_set_state(&f->cpu, st);
		memcpy(f->ram + CODE_ADDR, code, len);
		memcpy(f->ram + DATA_ADDR, in, DATA_SIZE);
		f->ram[RET_ADDR] = 0x0F; /* ret lands on UD2: ends the run */
		f->ram[RET_ADDR + 1] = 0x0B;
		fx_set64(f, FX_STACK - 8, RET_ADDR);
		f->cpu.s.gpr[MODVM_RSP] = FX_STACK - 8;
		f->cpu.s.rip = CODE_ADDR;
		fx_run_hlt(f);
		CU_ASSERT_EQUAL(fx_vector(f), BT_UD);
		d1 = xsave_first_diff(host + XD_A1, f->ram + DATA_ADDR + XD_A1, model_amd);
		d3 = xsave_first_diff(host + XD_A3, f->ram + DATA_ADDR + XD_A3, model_amd);
		if (d1 >= 0 || d3 >= 0) {
			int o = d1 >= 0 ? XD_A1 + d1 : XD_A3 + d3;
			bad++;
			printf("xsave diff: iteration %d (XSTATE_BV %d): %s byte %d: "
			       "host %02x cpu-bt %02x\n", it, it & 3,
			       d1 >= 0 ? "A1" : "A3", d1 >= 0 ? d1 : d3,
			       host[o], f->ram[DATA_ADDR + o]);
		}
	}
	printf("xsave/xrstor vs host, %s model: %d iterations, %u mismatching\n",
	       model->name, XD_ITERS, bad);
	CU_ASSERT_EQUAL(bad, 0);
	free(st);
	fx_free(f);
}

static void test_xsave_diff(void)
{
	xsave_diff(&fx_model_xsave, true);
}

static void test_xsave_diff_intel(void)
{
	xsave_diff(&fx_model_xsave_intel, false);
}

/* Last: under BT_MODE=translate the 64-bit code above must really have
 * run translated (the totals also show how much). */
static void test_translated(void)
{
	uint64_t blocks = fx_jit_report("bt_diff");

	if (fx_translate_wanted())
		CU_ASSERT(blocks > 0);
}

int main(void)
{
	static const struct test_case tests[] = {
		TEST(test_diff), TEST(test_translated), TEST(test_xsave_diff),
		TEST(test_xsave_diff_intel),
	};
	size_t n = sizeof(tests) / sizeof(tests[0]);

	/* not run (rather than passed) on a host whose OS has no XSAVE */
	if (!host_has_osxsave()) {
		printf("test_xsave_diff not run: the host OS has not set CR4.OSXSAVE\n");
		n -= 2;
	}
	return run_tests("bt_diff", tests, n);
}
