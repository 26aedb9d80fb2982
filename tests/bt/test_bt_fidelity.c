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

int main(void)
{
	static const struct test_case tests[] = {
		TEST(test_pop_ss_stack_size),
	};

	return RUN_TESTS("bt_fidelity", tests);
}
