/* acpi-pm: S5 through SLP_EN powers off and nothing else does, SCI_EN is
 * fixed on, the PM timer runs at 3.579545 MHz of virtual time, TMR_STS
 * with the SCI on bit 23 toggles, write-1-to-clear status, register
 * masks, hostile accesses, reset and a state round trip. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include <modvm/modvm.h>
#include "testmain.h"

#define PM_HZ 3579545ull
#define STS MODVM_PC_PM1A_EVT
#define EN (MODVM_PC_PM1A_EVT + 2)
#define CNT MODVM_PC_PM1A_CNT
#define TMR MODVM_PC_PM_TMR
#define SCI MODVM_PC_SCI_IRQ
#define SLP_EN 0x2000
#define SLP_TYP(t) ((uint16_t)((t) << 10))
#define TMR_STS 0x0001
#define TOGGLE (1ull << 23)

static struct hx *pm_new(void)
{
	struct hx *h = hx_new(0);

	CU_ASSERT_EQUAL_FATAL(hx_add(h, "acpi-pm", "pm", NULL), 0);
	return h;
}

static uint64_t tick_ns(uint64_t tick)
{
	uint64_t r = tick % PM_HZ;

	return tick / PM_HZ * 1000000000ull + (r * 1000000000ull + PM_HZ - 1) / PM_HZ;
}

static uint64_t ns_ticks(uint64_t ns)
{
	return ns / 1000000000ull * PM_HZ + ns % 1000000000ull * PM_HZ / 1000000000ull;
}

static void step_to(struct hx *h, uint64_t ns)
{
	CU_ASSERT_FATAL(ns >= hx_clock(h));
	hx_clock_step(h, ns - hx_clock(h));
}

static void test_s5_powers_off(void)
{
	struct hx *h = pm_new();

	hx_outw(h, CNT, SLP_TYP(MODVM_PC_SLP_TYP_S5));
	CU_ASSERT_EQUAL(hx_machine_request(h), 0); /* SLP_EN not set */
	hx_outw(h, CNT, SLP_TYP(MODVM_PC_SLP_TYP_S5) | SLP_EN);
	CU_ASSERT_EQUAL(hx_machine_request(h), MODVM_REQUEST_POWEROFF);
	CU_ASSERT_EQUAL(hx_inw(h, CNT) & SLP_EN, 0); /* write-only */
	hx_free(h);

	/* byte by byte, as a guest with 8-bit access would */
	h = pm_new();
	hx_outb(h, CNT, 0x00);
	CU_ASSERT_EQUAL(hx_machine_request(h), 0);
	hx_outb(h, CNT + 1, (uint8_t)((SLP_TYP(MODVM_PC_SLP_TYP_S5) | SLP_EN) >> 8));
	CU_ASSERT_EQUAL(hx_machine_request(h), MODVM_REQUEST_POWEROFF);
	hx_free(h);

	/* and as one 32-bit write over PM1_CNT and the reserved word */
	h = pm_new();
	hx_outl(h, CNT, 0xFFFF0000u | SLP_TYP(MODVM_PC_SLP_TYP_S5) | SLP_EN);
	CU_ASSERT_EQUAL(hx_machine_request(h), MODVM_REQUEST_POWEROFF);
	hx_free(h);
}

static void test_other_sleep_types_do_nothing(void)
{
	struct hx *h = pm_new();

	for (unsigned t = 0; t < 8; t++) {
		if (t == MODVM_PC_SLP_TYP_S5)
			continue;
		hx_outw(h, CNT, SLP_TYP(t) | SLP_EN);
		CU_ASSERT_EQUAL(hx_machine_request(h), 0);
		CU_ASSERT_EQUAL(hx_inw(h, CNT), SLP_TYP(t) | 0x0001);
	}
	hx_free(h);
}

static void test_sci_en_always_set(void)
{
	struct hx *h = pm_new();

	CU_ASSERT_EQUAL(hx_inw(h, CNT), 0x0001);
	hx_outw(h, CNT, 0x0000);
	CU_ASSERT_EQUAL(hx_inw(h, CNT), 0x0001);
	hx_outw(h, CNT, 0x0004); /* GBL_RLS: write-only, no firmware */
	CU_ASSERT_EQUAL(hx_inw(h, CNT), 0x0001);
	hx_outw(h, CNT, 0x0002); /* BM_RLD is kept */
	CU_ASSERT_EQUAL(hx_inw(h, CNT), 0x0003);
	hx_outw(h, CNT, 0xC1F8); /* reserved bits stay 0 */
	CU_ASSERT_EQUAL(hx_inw(h, CNT), 0x0001);
	hx_free(h);
}

static void test_pm_timer_rate(void)
{
	struct hx *h = pm_new();

	CU_ASSERT_EQUAL(hx_inl(h, TMR), 0);
	step_to(h, tick_ns(12345) - 1);
	CU_ASSERT_EQUAL(hx_inl(h, TMR), 12344);
	step_to(h, tick_ns(12345));
	CU_ASSERT_EQUAL(hx_inl(h, TMR), 12345);
	step_to(h, 1000000000);
	CU_ASSERT_EQUAL(hx_inl(h, TMR), 3579545);
	step_to(h, 10000000000ull); /* wrapped twice at 24 bits */
	CU_ASSERT_EQUAL(hx_inl(h, TMR), 35795450u - 2 * (1u << 24));
	CU_ASSERT_EQUAL(hx_inb(h, TMR + 2), (35795450u - 2 * (1u << 24)) >> 16);
	CU_ASSERT_EQUAL(hx_inb(h, TMR + 3), 0);
	hx_outl(h, TMR, 0); /* read-only */
	CU_ASSERT_EQUAL(hx_inl(h, TMR), 35795450u - 2 * (1u << 24));
	/* an hour later: still exact (no overflow in the conversion) */
	step_to(h, 3600ull * 1000000000ull);
	CU_ASSERT_EQUAL(hx_inl(h, TMR), (uint32_t)((3600ull * PM_HZ) & 0xFFFFFF));
	hx_free(h);
}

static void test_timer_overflow_sci(void)
{
	struct hx *h = pm_new();

	/* without TMR_EN the status still sets, but no SCI */
	step_to(h, tick_ns(TOGGLE));
	CU_ASSERT_EQUAL(hx_inw(h, STS) & TMR_STS, TMR_STS);
	CU_ASSERT_EQUAL(hx_irq_level(h, SCI), 0);
	hx_outw(h, STS, TMR_STS);
	CU_ASSERT_EQUAL(hx_inw(h, STS), 0);

	hx_outw(h, EN, TMR_STS);
	step_to(h, tick_ns(2 * TOGGLE) - 1);
	CU_ASSERT_EQUAL(hx_irq_level(h, SCI), 0);
	CU_ASSERT_EQUAL(hx_inw(h, STS), 0);
	step_to(h, tick_ns(2 * TOGGLE));
	CU_ASSERT_EQUAL(hx_irq_level(h, SCI), 1); /* from the timer alone */
	CU_ASSERT_EQUAL(hx_inw(h, STS) & TMR_STS, TMR_STS);
	hx_outw(h, STS, 0x0000); /* writing 0 clears nothing */
	CU_ASSERT_EQUAL(hx_irq_level(h, SCI), 1);
	hx_outw(h, STS, 0xFFFE); /* other bits: nothing to clear */
	CU_ASSERT_EQUAL(hx_irq_level(h, SCI), 1);
	hx_outw(h, STS, TMR_STS);
	CU_ASSERT_EQUAL(hx_irq_level(h, SCI), 0);
	CU_ASSERT_EQUAL(hx_inw(h, STS), 0);
	step_to(h, tick_ns(3 * TOGGLE));
	CU_ASSERT_EQUAL(hx_irq_level(h, SCI), 1);
	CU_ASSERT_EQUAL(hx_irq_raises(h, SCI), 2);
	/* disabling drops the SCI, the status stays */
	hx_outw(h, EN, 0);
	CU_ASSERT_EQUAL(hx_irq_level(h, SCI), 0);
	CU_ASSERT_EQUAL(hx_inw(h, STS), TMR_STS);
	/* enabling with the status already set raises it at once */
	hx_outb(h, EN, TMR_STS);
	CU_ASSERT_EQUAL(hx_irq_level(h, SCI), 1);
	hx_free(h);
}

static void test_register_masks(void)
{
	struct hx *h = pm_new();

	hx_outw(h, EN, 0xFFFF);
	CU_ASSERT_EQUAL(hx_inw(h, EN), 0x4721);
	CU_ASSERT_EQUAL(hx_inl(h, STS), 0x47210000u);
	hx_outb(h, EN + 1, 0x00);
	CU_ASSERT_EQUAL(hx_inw(h, EN), 0x0021);
	CU_ASSERT_EQUAL(hx_inw(h, CNT + 2), 0x0000); /* reserved */
	CU_ASSERT_EQUAL(hx_inl(h, MODVM_PC_PM_BASE + 0xC), 0);
	/* an access running past the block reads a floating bus there */
	CU_ASSERT_EQUAL(hx_inw(h, MODVM_PC_PM_BASE + MODVM_PC_PM_LEN - 1), 0xFF00);
	hx_free(h);
}

static void test_hostile_accesses_and_reset(void)
{
	struct hx *h = pm_new();

	srand(1997);
	for (int i = 0; i < 100000; i++) {
		uint16_t port = (uint16_t)(MODVM_PC_PM_BASE + rand() % MODVM_PC_PM_LEN);
		switch (rand() % 6) {
		case 0: hx_outb(h, port, (uint8_t)rand()); break;
		case 1: hx_outw(h, port, (uint16_t)rand()); break;
		case 2: hx_outl(h, port, (uint32_t)rand()); break;
		case 3: (void)hx_inl(h, port); break;
		case 4: (void)hx_inb(h, port); break;
		default: hx_clock_step(h, (uint64_t)(rand() % 100000000));
		}
	}
	hx_reset(h);
	CU_ASSERT_EQUAL(hx_irq_level(h, SCI), 0);
	CU_ASSERT_EQUAL(hx_inw(h, CNT), 0x0001);
	CU_ASSERT_EQUAL(hx_inw(h, EN), 0);
	CU_ASSERT_EQUAL(hx_inw(h, STS), 0);
	/* after reset the timer keeps running; only the next toggle sets */
	uint64_t t = ns_ticks(hx_clock(h));
	hx_outw(h, EN, TMR_STS);
	step_to(h, tick_ns(((t >> 23) + 1) << 23) - 1);
	CU_ASSERT_EQUAL(hx_irq_level(h, SCI), 0);
	step_to(h, tick_ns(((t >> 23) + 1) << 23));
	CU_ASSERT_EQUAL(hx_irq_level(h, SCI), 1);
	hx_free(h);
}

static void test_state_round_trip(void)
{
	struct hx *a = pm_new(), *b = pm_new();

	hx_outw(a, EN, 0x0121);
	hx_outw(a, CNT, SLP_TYP(3) | 0x0002);
	step_to(a, tick_ns(TOGGLE) + 5000);
	CU_ASSERT_EQUAL(hx_irq_level(a, SCI), 1);
	step_to(b, hx_clock(a));
	CU_ASSERT_EQUAL_FATAL(hx_state_copy(a, b, "pm"), 0);
	CU_ASSERT_EQUAL(hx_irq_level(b, SCI), 1);
	CU_ASSERT_EQUAL(hx_inw(b, EN), 0x0121);
	CU_ASSERT_EQUAL(hx_inw(b, CNT), SLP_TYP(3) | 0x0003);
	CU_ASSERT_EQUAL(hx_inl(b, TMR), hx_inl(a, TMR));
	hx_outw(b, STS, TMR_STS);
	CU_ASSERT_EQUAL(hx_irq_level(b, SCI), 0);
	/* the loaded device re-armed its timer for the next toggle */
	step_to(b, tick_ns(2 * TOGGLE));
	CU_ASSERT_EQUAL(hx_irq_level(b, SCI), 1);
	CU_ASSERT_EQUAL(hx_machine_request(b), 0);
	hx_free(a);
	hx_free(b);
}

int main(void)
{
	static const struct test_case tests[] = {
		TEST(test_s5_powers_off),
		TEST(test_other_sleep_types_do_nothing),
		TEST(test_sci_en_always_set),
		TEST(test_pm_timer_rate),
		TEST(test_timer_overflow_sci),
		TEST(test_register_masks),
		TEST(test_hostile_accesses_and_reset),
		TEST(test_state_round_trip),
	};
	return RUN_TESTS("acpi-pm", tests);
}
