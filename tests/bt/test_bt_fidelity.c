/* cpu-bt fidelity tests on the fixture machine: corner cases of stack
 * switches, paging, descriptor loads, single-stepping and MSRs where the
 * interpreter once differed from the processors (issue [cpu-fidelity]).
 * Each test names the manual section or the reference behaviour it checks.
 */
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "testmain.h"

static uint64_t R(struct fx *f, int r) { return fx_reg(f, r); }

/* Error code of an exception taken at CPL 0 in long mode without a stack
 * switch (the fixture's RSP is 16-byte aligned). */
#define ERR64(f) fx_mem64(f, FX_STACK - 48)

/* POP SS moves ESP by the old SS's stack size (SDM vol. 2 POP: "the
 * stack pointer is incremented" before SS changes; Bochs and QEMU use the
 * old SS.B): a 16-bit stack wraps SP at 64 KiB and keeps ESP[31:16]. */
static void test_pop_ss_stack_size(void)
{
	struct fx *f = fx_new(FX_PROT32);

	/* 16-bit stack (selector 0x50) -> 32-bit SS: SP wraps to 0 */
	fx_idt(f);
	f->ram[0xFFFE] = 0x10;
	f->ram[0xFFFF] = 0;
	fx_asm(f, "mov ax, 0x50\n mov ss, ax\n mov esp, 0x1234FFFE\n"
		  "o16 pop ss\n hlt");
	CU_ASSERT_EQUAL(fx_run_hlt(f), BT_EXIT_HLT);
	CU_ASSERT_EQUAL(fx_vector(f), -1);
	CU_ASSERT_EQUAL(f->cpu.s.seg[BT_SS].selector, 0x10);
	CU_ASSERT_EQUAL(R(f, MODVM_RSP), 0x12340000);
	fx_free(f);

	/* 32-bit stack -> 16-bit SS: ESP moves by 32-bit arithmetic */
	f = fx_new(FX_PROT32);
	fx_idt(f);
	f->ram[0x1FFFE] = 0x50;
	f->ram[0x1FFFF] = 0;
	fx_asm(f, "mov esp, 0x1FFFE\n o16 pop ss\n hlt");
	CU_ASSERT_EQUAL(fx_run_hlt(f), BT_EXIT_HLT);
	CU_ASSERT_EQUAL(fx_vector(f), -1);
	CU_ASSERT_EQUAL(f->cpu.s.seg[BT_SS].selector, 0x50);
	CU_ASSERT_EQUAL(R(f, MODVM_RSP), 0x20000);
	fx_free(f);
}

/* A/D bits and faults (SDM 3A 4.8, AMD APM vol. 2 5.4.2): D is set only
 * by a write that is allowed, and the leaf entry's A only by an access
 * that is allowed. (A processor may set A in the upper-level entries it
 * walked even when the access faults; that is not tested.) */
static void test_paging_ad_on_fault(void)
{
	struct fx *f = fx_new(FX_LONG64);
	uint64_t pt = 0x110000;

	fx_idt(f);
	for (int i = 0; i < 512; i++)
		fx_set64(f, pt + 8 * i, ((uint64_t)i << 12) | 7);
	fx_set64(f, FX_PT + 0x2000, pt | 7);
	fx_set64(f, pt + 8 * 0x42, 0x42000 | 1);  /* supervisor, read-only */
	fx_set64(f, pt + 8 * 0x43, 0x43000 | 1);
	fx_set64(f, pt + 8 * 0x44, 0x44000 | 3);  /* supervisor, writable */
	fx_asm(f, "mov rax, cr0\n or eax, 0x10000\n mov cr0, rax\n"  /* WP */
		  "mov eax, [0x43000]\n mov dword [0x44000], 1\n"
		  "mov dword [0x42000], 1\n hlt");
	fx_run_hlt(f);
	CU_ASSERT_EQUAL(fx_vector(f), BT_PFV);
	CU_ASSERT_EQUAL(f->cpu.s.cr2, 0x42000);
	CU_ASSERT_EQUAL(ERR64(f), 3);                             /* P | W */
	CU_ASSERT_EQUAL(fx_mem64(f, pt + 8 * 0x42) & 0x60, 0);    /* no A, D */
	CU_ASSERT_EQUAL(fx_mem64(f, pt + 8 * 0x43) & 0x60, 0x20); /* read: A */
	CU_ASSERT_EQUAL(fx_mem64(f, pt + 8 * 0x44) & 0x60, 0x60); /* write: A D */
	fx_free(f);

	/* 32-bit paging: a user read of a supervisor page */
	f = fx_new(FX_PROT32);
	fx_idt(f);
	fx_set32(f, 0x100000, 0x101000 | 7);
	for (int i = 0; i < 1024; i++)
		fx_set32(f, 0x101000 + 4 * i, (uint32_t)(i << 12) | 7);
	fx_set32(f, 0x101000 + 4 * 0x42, 0x42000 | 3);           /* supervisor */
	fx_asm(f, "mov eax, 0x100000\n mov cr3, eax\n mov eax, cr0\n"
		  "or eax, 0x80000000\n mov cr0, eax\n"
		  "push 0x23\n push 0x60000\n push 0x2\n push 0x1B\n push user\n iretd\n"
		  "user: mov ax, 0x23\n mov ds, ax\n mov eax, [0x42000]\n hlt");
	fx_run_hlt(f);
	CU_ASSERT_EQUAL(fx_vector(f), BT_PFV);
	CU_ASSERT_EQUAL(f->cpu.s.cr2, 0x42000);
	CU_ASSERT_EQUAL(fx_mem32(f, 0x101000 + 4 * 0x42) & 0x60, 0);
	fx_free(f);
}

/* A 16-byte system descriptor at GDT offset sel with base lo32 | hi32 << 32. */
static void sys_desc64(struct fx *f, unsigned sel, uint32_t base, uint32_t hi,
		       unsigned type)
{
	fx_set64(f, FX_GDT + sel, 0x67 | (uint64_t)(base & 0xFFFFFF) << 16 |
				  (uint64_t)(0x80 | type) << 40 |
				  (uint64_t)(base >> 24) << 56);
	fx_set64(f, FX_GDT + sel + 8, hi);
}

/* LTR and LLDT in IA-32e mode: a descriptor whose 64-bit base is not
 * canonical is #GP(selector) (SDM vol. 2 LTR, LLDT, 64-bit mode
 * exceptions; Bochs LTR_Ew/LLDT_Ew). Nothing is loaded. */
static void test_ltr_lldt_canonical(void)
{
	static const struct { unsigned sel, type; const char *insn; } c[] = {
		{ 0x60, 9, "ltr ax" }, { 0x70, 2, "lldt ax" },
	};

	for (unsigned i = 0; i < 2; i++) {
		struct fx *f = fx_new(FX_LONG64);
		char src[128];

		fx_idt(f);
		f->cpu.s.gdt.limit = 16 * 8 - 1;
		sys_desc64(f, 0x60, 0x2000, 0x00008000, 9);
		sys_desc64(f, 0x70, 0x3000, 0xFFFF0000, 2);
		snprintf(src, sizeof(src), "mov ax, 0x%x\n %s\n mov ebx, 1\n hlt",
			 c[i].sel, c[i].insn);
		fx_asm(f, src);
		fx_run_hlt(f);
		CU_ASSERT_EQUAL(fx_vector(f), BT_GP);
		CU_ASSERT_EQUAL(ERR64(f), c[i].sel);
		CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0);
		CU_ASSERT_EQUAL(f->cpu.s.tr.selector, 0x40);  /* unchanged */
		CU_ASSERT_EQUAL(f->cpu.s.ldt.selector, 0);
		/* the TSS descriptor is not marked busy */
		CU_ASSERT_EQUAL(f->ram[FX_GDT + 0x65] & 0xF, 9);
		fx_free(f);
	}
	/* a canonical upper half (0xFFFF8000... base) loads */
	struct fx *f = fx_new(FX_LONG64);
	fx_idt(f);
	f->cpu.s.gdt.limit = 16 * 8 - 1;
	sys_desc64(f, 0x70, 0x3000, 0xFFFFFFFF, 2);
	fx_set32(f, FX_GDT + 0x70 + 4, fx_mem32(f, FX_GDT + 0x70 + 4) | 0x80000000u);
	fx_asm(f, "mov ax, 0x70\n lldt ax\n mov ebx, 1\n hlt");
	fx_run_hlt(f);
	CU_ASSERT_EQUAL(fx_vector(f), -1);
	CU_ASSERT_EQUAL(f->cpu.s.ldt.base, 0xFFFFFFFF80003000ull);
	fx_free(f);
}

/* TF after MOV SS / POP SS (SDM 3A 6.8.3): debug exceptions are inhibited
 * until the boundary after the next instruction, so the single-step trap
 * of MOV SS comes after the instruction that follows it, once. That lets
 * "mov ss; mov esp" switch stacks under a debugger. */
static void test_single_step_mov_ss(void)
{
	static const char *const ss_load[] = { "mov ss, ax", "pop ss" };

	for (unsigned i = 0; i < 2; i++) {
		struct fx *f = fx_new(FX_PROT32);
		char src[256];
		uint32_t esp;

		fx_idt(f);
		snprintf(src, sizeof(src),
			 "mov edx, after\n mov eax, 0x10\n push eax\n pushfd\n"
			 "or dword [esp], 0x100\n popfd\n"
			 "%s\n mov ebx, 1\n after: mov ecx, 2\n hlt", ss_load[i]);
		fx_asm(f, src);
		fx_run_hlt(f);
		/* one #DB, after `mov ebx, 1`, with DR6.BS */
		CU_ASSERT_EQUAL(fx_vector(f), BT_DB);
		CU_ASSERT_EQUAL(R(f, MODVM_RBX), 1);
		CU_ASSERT_EQUAL(R(f, MODVM_RCX), 0);
		esp = (uint32_t)R(f, MODVM_RSP);
		CU_ASSERT_EQUAL(esp, FX_STACK - (i == 0 ? 16 : 12));
		CU_ASSERT_EQUAL(fx_mem32(f, esp), (uint32_t)R(f, MODVM_RDX));
		CU_ASSERT(f->cpu.s.dr6 & (1u << 14));
		fx_free(f);
	}

	/* The failure this caused: with the trap delivered between MOV SS and
	 * the MOV ESP, the frame went to the new SS with the old ESP. Here
	 * the old ESP is beyond the new SS's limit: #DB would raise #SS,
	 * then #DF (no valid stack either), then a triple fault. */
	struct fx *f = fx_new(FX_PROT32);
	fx_idt(f);
	f->cpu.s.gdt.limit = 13 * 8 - 1;
	/* 0x58: data, base 0, limit 0x7FFFF (the fixture's stack top) */
	fx_set64(f, FX_GDT + 0x58, 0xFFFFull | (0x93ull << 40) | (0x47ull << 48));
	fx_asm(f, "mov ax, 0x58\n mov esp, 0x100000\n pushfd\n"
		  "or dword [esp], 0x100\n popfd\n mov ss, ax\n mov esp, 0x7F000\n mov ebx, 1\n hlt");
	CU_ASSERT_EQUAL(fx_run_hlt(f), BT_EXIT_HLT);
	CU_ASSERT_EQUAL(fx_vector(f), BT_DB);
	CU_ASSERT_EQUAL(R(f, MODVM_RSP), 0x7F000 - 12);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0);
	fx_free(f);
}

/* ICEBP (INT1) in a MOV SS shadow with TF set: its own #DB is the only
 * one, with no DR6.BS (the single-step traps of MOV SS and of ICEBP are
 * dropped, as kvm-unit-tests x86/debug.c "Single-Step + ICEBP #DB w/
 * MOVSS blocking" checks on hardware); before, a second #DB with BS came
 * at the handler's first instruction. */
static void test_icebp_in_mov_ss_shadow(void)
{
	struct fx *f = fx_new(FX_PROT32);

	fx_idt(f);
	fx_asm(f, "mov eax, 0x10\n pushfd\n or dword [esp], 0x100\n popfd\n"
		  "mov ss, ax\n icebp\n after: mov ebx, 1\n hlt");
	fx_run_hlt(f);
	CU_ASSERT_EQUAL(fx_vector(f), BT_DB);
	CU_ASSERT_EQUAL(R(f, MODVM_RSP), FX_STACK - 12);        /* one frame */
	CU_ASSERT_EQUAL(fx_mem32(f, FX_STACK - 12), FX_CODE + 17); /* after */
	CU_ASSERT_EQUAL(f->cpu.s.dr6 & 0xF00F, 0);               /* no BS */
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0);
	fx_free(f);
}

/* DR7.GD: a MOV DR is a #DB fault with DR6.BD, and entering the handler
 * clears GD so that it can use the debug registers (SDM 3A 17.2.4);
 * before, GD stayed set and the handler's own MOV DR faulted again. */
static void test_general_detect_clears_gd(void)
{
	struct fx *f = fx_new(FX_PROT32);

	fx_idt(f);
	fx_asm(f, "mov eax, 0x2400\n mov dr7, eax\n mov eax, dr6\n hlt");
	fx_run_hlt(f);
	CU_ASSERT_EQUAL(fx_vector(f), BT_DB);
	CU_ASSERT_EQUAL(fx_mem32(f, FX_STACK - 12), FX_CODE + 8); /* the MOV */
	CU_ASSERT(f->cpu.s.dr6 & (1u << 13));                     /* BD */
	CU_ASSERT_EQUAL(f->cpu.s.dr7 & (1u << 13), 0);            /* GD */
	fx_free(f);
}

/* HLT with TF: the CPU halts, and the single-step #DB (after the HLT)
 * comes when an interrupt ends the halt, before the interrupt (traps of
 * the previous instruction first); before, the #DB was delivered at once
 * and left the CPU halted at the handler with IF=0 (kvm-unit-tests
 * x86/debug.c "Single-step #DB w/ STI;HLT" hung there). */
static void test_single_step_hlt(void)
{
	struct fx *f = fx_new(FX_PROT32);

	fx_idt(f);
	fx_asm(f, "pushfd\n or dword [esp], 0x300\n popfd\n hlt\n mov ebx, 1\n hlt");
	CU_ASSERT_EQUAL(fx_run_hlt(f), BT_EXIT_HLT);
	CU_ASSERT_EQUAL(fx_vector(f), -1);
	CU_ASSERT_EQUAL(f->cpu.s.rip, FX_CODE + 10);  /* halted after the HLT */
	f->intr = true;
	f->intr_vec = 0x40;
	fx_run_hlt(f);
	CU_ASSERT_EQUAL(fx_vector(f), BT_DB);
	CU_ASSERT_EQUAL(fx_mem32(f, FX_STACK - 12), FX_CODE + 10);
	CU_ASSERT(f->cpu.s.dr6 & (1u << 14));         /* BS */
	CU_ASSERT_EQUAL(f->intr_acks, 0);             /* the interrupt waits */
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0);
	fx_free(f);
}

/* IRET to an outer level nulls ES, DS, FS, GS that the new CPL may not use
 * (SDM vol. 2 IRET). The selector becomes 0; the hidden base stays, as
 * Bochs (validate_seg_reg) and QEMU (validate_seg) keep it, and in 64-bit
 * mode FS and GS with a null selector are used with that base. */
static void test_iret_null_gs_keeps_base(void)
{
	struct fx *f = fx_new(FX_LONG64);

	fx_idt(f);
	fx_set64(f, 0x20010, 0x1122334455667788ull);
	fx_asm(f, "mov ax, 0x10\n mov gs, ax\n mov fs, ax\n"
		  "mov ecx, 0xC0000101\n mov eax, 0x20000\n xor edx, edx\n wrmsr\n"
		  "mov ecx, 0xC0000100\n mov eax, 0x21000\n wrmsr\n"
		  "mov rax, rsp\n push 0x23\n push rax\n push 0x2\n push 0x33\n"
		  "lea rax, [rel user]\n push rax\n iretq\n"
		  "user: mov rbx, [gs:0x10]\n hlt");
	fx_run_hlt(f);
	CU_ASSERT_EQUAL(fx_vector(f), BT_GP);                 /* HLT at CPL 3 */
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0x1122334455667788ull);
	CU_ASSERT_EQUAL(f->cpu.s.seg[BT_GS].selector, 0);
	CU_ASSERT_EQUAL(f->cpu.s.seg[BT_GS].base, 0x20000);
	CU_ASSERT_EQUAL(f->cpu.s.seg[BT_FS].selector, 0);
	CU_ASSERT_EQUAL(f->cpu.s.seg[BT_FS].base, 0x21000);
	CU_ASSERT(f->cpu.s.seg[BT_GS].unusable);
	fx_free(f);
}

/* SYSCALL and SYSRET take their single-step decision from the RFLAGS
 * they leave, not from the one they found (Xen XSA-204, kvm-unit-tests
 * x86/syscall.c, on Intel and AMD alike): SYSCALL with TF masked by
 * SFMASK raises no #DB at CPL 0, SYSRET that sets TF from R11 traps on
 * the first user instruction. */
#define STAR_SETUP \
	"mov ecx, 0xC0000081\n xor eax, eax\n mov edx, 0x00200028\n wrmsr\n" \
	"mov ecx, 0xC0000082\n lea rax, [rel kern]\n mov rdx, rax\n shr rdx, 32\n wrmsr\n" \
	"mov ecx, 0xC0000084\n mov eax, 0x300\n xor edx, edx\n wrmsr\n"

static void check_syscall_tf(const struct modvm_cpu_model *model)
{
	struct fx *f = fx_new(FX_LONG64);
	uint64_t user;

	bt_cpu_set_model(&f->cpu, model);
	fx_idt(f);
	fx_asm(f, STAR_SETUP
		  "lea rcx, [rel user]\n mov r11, 0x202\n o64 sysret\n"
		  "user: pushfq\n or dword [rsp], 0x100\n popfq\n syscall\n hlt\n"
		  "kern: mov esi, 1\n hlt");
	fx_run_hlt(f);
	CU_ASSERT_EQUAL(fx_vector(f), -1);           /* no #DB after SYSCALL */
	CU_ASSERT_EQUAL(R(f, MODVM_RSI), 1);
	CU_ASSERT(R(f, MODVM_R11) & BT_TF);         /* user TF in R11 */
	CU_ASSERT_EQUAL(f->cpu.cpl, 0);
	fx_free(f);

	/* SYSRET with TF in R11: #DB with DR6.BS before the first user
	 * instruction runs, taken on RSP0 with CS 0x33 in the frame */
	f = fx_new(FX_LONG64);
	bt_cpu_set_model(&f->cpu, model);
	fx_idt(f);
	fx_asm(f, STAR_SETUP
		  "lea rcx, [rel user]\n mov r11, 0x302\n o64 sysret\n"
		  "kern: hlt\n user: mov ebx, 7\n hlt");
	fx_run_hlt(f);
	user = R(f, MODVM_RCX);
	CU_ASSERT_EQUAL(fx_vector(f), BT_DB);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0);
	CU_ASSERT(f->cpu.s.dr6 & (1u << 14));
	CU_ASSERT_EQUAL(fx_mem64(f, FX_STACK - 0x10000 - 40), user);  /* RIP */
	CU_ASSERT_EQUAL(fx_mem64(f, FX_STACK - 0x10000 - 32), 0x33);  /* CS */
	fx_free(f);
}

static void test_syscall_sysret_tf(void)
{
	check_syscall_tf(&fx_model);              /* AuthenticAMD */
	check_syscall_tf(&fx_model_xsave_intel);  /* GenuineIntel */
}

/* The legacy performance counters every AMD64 CPU has, PerfEvtSel0-3 at
 * C001_0000-3 and PerfCtr0-3 at C001_0004-7 (AMD APM vol. 2 13.2.1): an
 * AuthenticAMD model accepts them as KVM does with its PMU off (reads 0,
 * writes ignored, kvm_get_msr_common/kvm_set_msr_common). A GenuineIntel
 * model has no such MSRs: #GP(0). */
static void test_amd_perf_msrs(void)
{
	struct fx *f = fx_new(FX_LONG64);
	const char *src =
		"mov ecx, 0xC0010000\n mov eax, 0x430076\n xor edx, edx\n wrmsr\n"
		"mov ecx, 0xC0010007\n mov eax, 0x1234\n mov edx, 0x5678\n wrmsr\n"
		"mov ecx, 0xC0010000\n mov eax, -1\n mov edx, -1\n rdmsr\n mov rsi, rax\n mov rdi, rdx\n"
		"mov ecx, 0xC0010007\n rdmsr\n mov r8, rax\n mov r9, rdx\n"
		"mov ecx, 0xC0010003\n rdmsr\n mov r10, rax\n"
		"mov ecx, 0xC0010008\n rdmsr\n hlt";

	bt_cpu_set_model(&f->cpu, &fx_model);
	CU_ASSERT(f->cpu.vendor_amd);
	fx_idt(f);
	f->cpu.s.gpr[MODVM_R10] = 99;
	fx_asm(f, src);
	fx_run_hlt(f);
	CU_ASSERT_EQUAL(R(f, MODVM_RSI), 0);
	CU_ASSERT_EQUAL(R(f, MODVM_RDI), 0);
	CU_ASSERT_EQUAL(R(f, MODVM_R8), 0);
	CU_ASSERT_EQUAL(R(f, MODVM_R9), 0);
	CU_ASSERT_EQUAL(R(f, MODVM_R10), 0);
	CU_ASSERT_EQUAL(fx_vector(f), BT_GP);   /* C001_0008 is not one */
	CU_ASSERT_EQUAL(R(f, MODVM_RCX), 0xC0010008);
	fx_free(f);

	f = fx_new(FX_LONG64);
	bt_cpu_set_model(&f->cpu, &fx_model_xsave_intel);
	CU_ASSERT(!f->cpu.vendor_amd);
	fx_idt(f);
	fx_asm(f, "mov ecx, 0xC0010000\n rdmsr\n mov ebx, 1\n hlt");
	fx_run_hlt(f);
	CU_ASSERT_EQUAL(fx_vector(f), BT_GP);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0);
	fx_free(f);
	f = fx_new(FX_LONG64);
	bt_cpu_set_model(&f->cpu, &fx_model_xsave_intel);
	fx_idt(f);
	fx_asm(f, "mov ecx, 0xC0010004\n xor eax, eax\n xor edx, edx\n wrmsr\n"
		  "mov ebx, 1\n hlt");
	fx_run_hlt(f);
	CU_ASSERT_EQUAL(fx_vector(f), BT_GP);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0);
	fx_free(f);
}

int main(void)
{
	static const struct test_case tests[] = {
		TEST(test_pop_ss_stack_size), TEST(test_paging_ad_on_fault),
		TEST(test_ltr_lldt_canonical), TEST(test_single_step_mov_ss),
		TEST(test_icebp_in_mov_ss_shadow), TEST(test_general_detect_clears_gd),
		TEST(test_single_step_hlt),
		TEST(test_iret_null_gs_keeps_base), TEST(test_syscall_sysret_tf),
		TEST(test_amd_perf_msrs),
	};

	return RUN_TESTS("bt_fidelity", tests);
}
