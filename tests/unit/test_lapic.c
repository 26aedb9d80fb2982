/* modvm-lapic: priorities and PPR, IRR/ISR/EOI, the software-disabled
 * state, errors, the timer in its three modes and all divide values, LVT
 * masking, IPIs, MSI destinations, the LINT pins and ExtINT, x2APIC MSRs,
 * IA32_APIC_BASE transitions, and round trips through the 1 KiB page and
 * the state section. A fake engine records what the APIC asks of it. */
#include <stdlib.h>
#include <string.h>

#include "lapic.h"
#include "state_desc.h"
#include "testmain.h"

struct engine {
	uint64_t now;
	uint64_t armed;          /* last deadline passed to arm */
	unsigned arms;
	struct lapic_ipi ipi;    /* last IPI handed out */
	unsigned ipis;
	int eoi_vector;
	unsigned eois;
	enum lapic_signal sig;
	uint8_t sig_vector;
	unsigned signals;
	unsigned notifies;
};

static uint64_t e_now(void *o)
{
	return ((struct engine *)o)->now;
}

static void e_arm(void *o, uint64_t deadline)
{
	struct engine *e = o;

	e->armed = deadline;
	e->arms++;
}

static void e_send_ipi(void *o, const struct lapic_ipi *ipi)
{
	struct engine *e = o;

	e->ipi = *ipi;
	e->ipis++;
}

static void e_eoi(void *o, uint8_t vector)
{
	struct engine *e = o;

	e->eoi_vector = vector;
	e->eois++;
}

static void e_signal(void *o, enum lapic_signal sig, uint8_t vector)
{
	struct engine *e = o;

	e->sig = sig;
	e->sig_vector = vector;
	e->signals++;
}

static void e_notify(void *o)
{
	((struct engine *)o)->notifies++;
}

static const struct lapic_ops ops = {
	.now = e_now, .arm = e_arm, .send_ipi = e_send_ipi,
	.eoi_broadcast = e_eoi, .signal = e_signal, .notify = e_notify,
};

static struct engine eng;
static struct lapic apic;

#define ALL_FLAGS (LAPIC_F_BSP | LAPIC_F_X2APIC | LAPIC_F_TSC_DEADLINE)

/* An enabled APIC with ID 3, TPR 0. */
static struct lapic *setup(unsigned flags)
{
	memset(&eng, 0, sizeof(eng));
	eng.now = 1000000;
	eng.eoi_vector = -1;
	lapic_init(&apic, &ops, &eng, 3, flags);
	return &apic;
}

static uint32_t rd(struct lapic *l, unsigned reg)
{
	return lapic_mmio_read(l, reg, 4);
}

static void wr(struct lapic *l, unsigned reg, uint32_t v)
{
	lapic_mmio_write(l, reg, v, 4);
}

static void enable(struct lapic *l)
{
	wr(l, LAPIC_SVR, 0x1FF);
}

/* Fixed, physical, edge MSI to APIC ID 3. */
static void msi(struct lapic *l, uint8_t vector)
{
	CU_ASSERT_TRUE(lapic_accept_msi(l, 0xFEE03000u, 0x4000u | vector));
}

static bool irr(struct lapic *l, unsigned v)
{
	return (rd(l, LAPIC_IRR + 0x10 * (v / 32)) >> (v % 32)) & 1;
}

static bool isr(struct lapic *l, unsigned v)
{
	return (rd(l, LAPIC_ISR + 0x10 * (v / 32)) >> (v % 32)) & 1;
}

static bool tmr(struct lapic *l, unsigned v)
{
	return (rd(l, LAPIC_TMR + 0x10 * (v / 32)) >> (v % 32)) & 1;
}

static uint32_t esr(struct lapic *l)
{
	wr(l, LAPIC_ESR, 0);
	return rd(l, LAPIC_ESR);
}

static void test_power_on(void)
{
	struct lapic *l = setup(LAPIC_F_BSP);

	CU_ASSERT_EQUAL(lapic_get_base(l), 0xFEE00900ull);
	CU_ASSERT_EQUAL(rd(l, LAPIC_ID), 3u << 24);
	CU_ASSERT_EQUAL(rd(l, LAPIC_LVR), 0x00050014u);
	CU_ASSERT_EQUAL(rd(l, LAPIC_SVR), 0xFFu);
	CU_ASSERT_EQUAL(rd(l, LAPIC_DFR), 0xFFFFFFFFu);
	CU_ASSERT_EQUAL(rd(l, LAPIC_LDR), 0);
	CU_ASSERT_EQUAL(rd(l, LAPIC_TPR), 0);
	for (unsigned r = LAPIC_LVT_TIMER; r <= LAPIC_LVT_ERROR; r += 0x10)
		CU_ASSERT_EQUAL(rd(l, r), 0x10000u);
	CU_ASSERT_EQUAL(eng.armed, LAPIC_NO_DEADLINE);

	/* what firmware leaves for a directly booted kernel */
	l = setup(LAPIC_F_BSP | LAPIC_F_VIRTUAL_WIRE);
	CU_ASSERT_EQUAL(rd(l, LAPIC_SVR), 0x1FFu);
	CU_ASSERT_EQUAL(rd(l, LAPIC_LVT_LINT0), 0x700u);
	CU_ASSERT_EQUAL(rd(l, LAPIC_LVT_LINT1), 0x400u);
	CU_ASSERT_EQUAL(rd(l, LAPIC_LVT_TIMER), 0x10000u);
	/* an AP is not the BSP */
	l = setup(0);
	CU_ASSERT_EQUAL(lapic_get_base(l), 0xFEE00800ull);
}

static void test_priorities(void)
{
	struct lapic *l = setup(0);

	enable(l);
	CU_ASSERT_EQUAL(lapic_pending_vector(l), -1);
	msi(l, 0x31);
	msi(l, 0x45);
	msi(l, 0x52);
	CU_ASSERT_EQUAL(lapic_pending_vector(l), 0x52);
	/* TPR masks by class: 0x50 blocks class 5 and below */
	wr(l, LAPIC_TPR, 0x50);
	CU_ASSERT_EQUAL(rd(l, LAPIC_PPR), 0x50);
	CU_ASSERT_EQUAL(lapic_pending_vector(l), -1);
	wr(l, LAPIC_TPR, 0x4F);
	CU_ASSERT_EQUAL(lapic_pending_vector(l), 0x52);
	CU_ASSERT_EQUAL(rd(l, LAPIC_APR), 0x50); /* the IRR class wins */
	wr(l, LAPIC_TPR, 0);
	lapic_ack(l, 0x52);
	CU_ASSERT_TRUE(isr(l, 0x52));
	CU_ASSERT_FALSE(irr(l, 0x52));
	/* in service 0x52: PPR is its class, lower classes wait */
	CU_ASSERT_EQUAL(rd(l, LAPIC_PPR), 0x50);
	wr(l, LAPIC_TPR, 0x53); /* same class as ISR: PPR = TPR */
	CU_ASSERT_EQUAL(rd(l, LAPIC_PPR), 0x53);
	wr(l, LAPIC_TPR, 0x3F); /* lower class: PPR = ISR class */
	CU_ASSERT_EQUAL(rd(l, LAPIC_PPR), 0x50);
	wr(l, LAPIC_TPR, 0);
	CU_ASSERT_EQUAL(lapic_pending_vector(l), -1);
	/* a higher class nests */
	msi(l, 0x61);
	CU_ASSERT_EQUAL(lapic_pending_vector(l), 0x61);
	lapic_ack(l, 0x61);
	CU_ASSERT_EQUAL(rd(l, LAPIC_PPR), 0x60);
	/* TPR above the in-service class: PPR = TPR */
	wr(l, LAPIC_TPR, 0x7A);
	CU_ASSERT_EQUAL(rd(l, LAPIC_PPR), 0x7A);
	CU_ASSERT_EQUAL(rd(l, LAPIC_APR), 0x7A);
	wr(l, LAPIC_TPR, 0x1FF); /* 8 bits */
	CU_ASSERT_EQUAL(rd(l, LAPIC_TPR), 0xFF);
	wr(l, LAPIC_TPR, 0);
	/* EOI ends the highest in service first */
	wr(l, LAPIC_EOI, 0);
	CU_ASSERT_FALSE(isr(l, 0x61));
	CU_ASSERT_TRUE(isr(l, 0x52));
	CU_ASSERT_EQUAL(lapic_pending_vector(l), -1);
	wr(l, LAPIC_EOI, 0);
	CU_ASSERT_FALSE(isr(l, 0x52));
	CU_ASSERT_EQUAL(lapic_pending_vector(l), 0x45);
	CU_ASSERT_EQUAL(lapic_intack(l), 0x45);
	/* 0x31 is masked by the class in service: an INTA now gets the
	 * spurious vector and leaves ISR alone */
	CU_ASSERT_EQUAL(lapic_pending_vector(l), -1);
	CU_ASSERT_EQUAL(lapic_intack(l), 0xFF);
	CU_ASSERT_TRUE(isr(l, 0x45));
	CU_ASSERT_FALSE(isr(l, 0x31));
	wr(l, LAPIC_EOI, 0);
	CU_ASSERT_EQUAL(lapic_intack(l), 0x31);
	wr(l, LAPIC_EOI, 0);
	CU_ASSERT_EQUAL(lapic_intack(l), -1);
	/* an EOI with nothing in service is harmless */
	wr(l, LAPIC_EOI, 0);
	CU_ASSERT_EQUAL(eng.eois, 0);
}

static void test_irr_accumulates(void)
{
	struct lapic *l = setup(0);

	enable(l);
	msi(l, 0x40);
	msi(l, 0x40); /* one IRR bit holds both */
	lapic_ack(l, 0x40);
	CU_ASSERT_EQUAL(lapic_pending_vector(l), -1);
	/* while in service, a new one waits in IRR */
	msi(l, 0x40);
	CU_ASSERT_TRUE(irr(l, 0x40));
	CU_ASSERT_TRUE(isr(l, 0x40));
	CU_ASSERT_EQUAL(lapic_pending_vector(l), -1);
	wr(l, LAPIC_EOI, 0);
	CU_ASSERT_EQUAL(lapic_pending_vector(l), 0x40);
	/* all 240 usable vectors */
	for (unsigned v = 16; v < 256; v++)
		lapic_accept_msi(l, 0xFEE03000u, v);
	for (unsigned v = 16; v < 256; v++)
		CU_ASSERT_TRUE(irr(l, v));
	CU_ASSERT_EQUAL(lapic_pending_vector(l), 0xFF);
	CU_ASSERT_TRUE(eng.notifies > 0);
}

static void test_software_disabled(void)
{
	struct lapic *l = setup(0);

	/* after reset: disabled, fixed interrupts are not accepted */
	CU_ASSERT_EQUAL(rd(l, LAPIC_SVR) & 0x100, 0);
	msi(l, 0x40);
	CU_ASSERT_FALSE(irr(l, 0x40));
	CU_ASSERT_EQUAL(lapic_pending_vector(l), -1);
	/* LVT mask bits cannot be cleared while disabled */
	wr(l, LAPIC_LVT_TIMER, 0x20);
	CU_ASSERT_EQUAL(rd(l, LAPIC_LVT_TIMER), 0x10020u);
	/* NMI still gets through (11.4.7.2) */
	CU_ASSERT_TRUE(lapic_accept_msi(l, 0xFEE03000u, 0x4400u));
	CU_ASSERT_EQUAL(eng.sig, LAPIC_SIG_NMI);
	/* enable, take an interrupt, disable: LVTs masked again, IRR kept */
	enable(l);
	wr(l, LAPIC_LVT_TIMER, 0x20);
	CU_ASSERT_EQUAL(rd(l, LAPIC_LVT_TIMER), 0x20u);
	msi(l, 0x40);
	wr(l, LAPIC_SVR, 0xEF);
	CU_ASSERT_EQUAL(rd(l, LAPIC_SVR), 0xEF);
	CU_ASSERT_EQUAL(rd(l, LAPIC_LVT_TIMER), 0x10020u);
	CU_ASSERT_TRUE(irr(l, 0x40));
	/* INTA after the interrupt was masked by TPR: spurious vector, no
	 * ISR bit (11.9) */
	enable(l);
	wr(l, LAPIC_SVR, 0x1EF);
	wr(l, LAPIC_TPR, 0xF0);
	CU_ASSERT_EQUAL(lapic_intack(l), 0xEF);
	CU_ASSERT_FALSE(isr(l, 0x40));
	CU_ASSERT_TRUE(irr(l, 0x40));
	/* SVR keeps bits 0-9 only */
	wr(l, LAPIC_SVR, 0xFFFFFFFF);
	CU_ASSERT_EQUAL(rd(l, LAPIC_SVR), 0x3FF);
}

static void test_errors(void)
{
	struct lapic *l = setup(0);

	enable(l);
	/* received illegal vector: not accepted, ESR bit 6 */
	CU_ASSERT_TRUE(lapic_accept_msi(l, 0xFEE03000u, 0x4005u));
	CU_ASSERT_FALSE(irr(l, 5));
	/* ESR shows errors only after a write latches them */
	CU_ASSERT_EQUAL(rd(l, LAPIC_ESR), 0);
	CU_ASSERT_EQUAL(esr(l), 0x40);
	CU_ASSERT_EQUAL(esr(l), 0);
	/* send illegal vector: nothing sent, ESR bit 5 */
	wr(l, LAPIC_ICR_LO, 0x00000003);
	CU_ASSERT_EQUAL(eng.ipis, 0);
	CU_ASSERT_EQUAL(esr(l), 0x20);
	/* illegal register address, with the error LVT unmasked */
	wr(l, LAPIC_LVT_ERROR, 0x33);
	CU_ASSERT_EQUAL(lapic_mmio_read(l, 0x2F0, 4), 0);
	CU_ASSERT_EQUAL(esr(l), 0x80);
	CU_ASSERT_TRUE(irr(l, 0x33));
	wr(l, 0x400 - 0x10 * 4, 1); /* 0x3C0: reserved */
	CU_ASSERT_EQUAL(esr(l), 0x80);
	/* an illegal error vector does not loop */
	wr(l, LAPIC_LVT_ERROR, 0x03);
	lapic_accept_msi(l, 0xFEE03000u, 0x4001u);
	CU_ASSERT_EQUAL(esr(l), 0x40);
}

static void test_mmio_access_rules(void)
{
	struct lapic *l = setup(0);

	enable(l);
	wr(l, LAPIC_TPR, 0x5A);
	CU_ASSERT_EQUAL(lapic_mmio_read(l, LAPIC_TPR, 1), 0x5A);
	CU_ASSERT_EQUAL(lapic_mmio_read(l, LAPIC_LVR + 2, 1), 0x05);
	CU_ASSERT_EQUAL(lapic_mmio_read(l, LAPIC_LVR + 1, 2), 0x0500);
	CU_ASSERT_EQUAL(lapic_mmio_read(l, LAPIC_TPR + 4, 4), 0);
	CU_ASSERT_EQUAL(lapic_mmio_read(l, 0x1000, 4), 0);
	CU_ASSERT_EQUAL(lapic_mmio_read(l, ~0ull, 4), 0);
	/* only aligned 32-bit writes count */
	lapic_mmio_write(l, LAPIC_TPR, 0x11, 1);
	lapic_mmio_write(l, LAPIC_TPR + 1, 0x11, 4);
	lapic_mmio_write(l, LAPIC_TPR, 0x11, 8);
	lapic_mmio_write(l, 0x1080, 0x11, 4);
	CU_ASSERT_EQUAL(rd(l, LAPIC_TPR), 0x5A);
	/* read-only registers ignore writes */
	wr(l, LAPIC_LVR, 0);
	wr(l, LAPIC_PPR, 0xFF);
	wr(l, LAPIC_IRR, 0xFFFFFFFF);
	wr(l, LAPIC_TIMER_CCR, 5);
	CU_ASSERT_EQUAL(rd(l, LAPIC_LVR), 0x00050014u);
	CU_ASSERT_EQUAL(rd(l, LAPIC_IRR), 0);
	CU_ASSERT_EQUAL(rd(l, LAPIC_TIMER_CCR), 0);
	CU_ASSERT_EQUAL(esr(l), 0);
	/* the xAPIC ID, LDR and DFR are writable */
	wr(l, LAPIC_ID, 0x07FFFFFF);
	CU_ASSERT_EQUAL(rd(l, LAPIC_ID), 0x07000000u);
	wr(l, LAPIC_LDR, 0xFFFFFFFF);
	CU_ASSERT_EQUAL(rd(l, LAPIC_LDR), 0xFF000000u);
	wr(l, LAPIC_DFR, 0);
	CU_ASSERT_EQUAL(rd(l, LAPIC_DFR), 0x0FFFFFFFu);
	/* reads of the write-only EOI register give 0 */
	CU_ASSERT_EQUAL(rd(l, LAPIC_EOI), 0);
}

/* Fire the engine's timer at its deadline, as the engine would. */
static void run_to(struct lapic *l, uint64_t t)
{
	while (eng.armed != LAPIC_NO_DEADLINE && eng.armed <= t) {
		eng.now = eng.armed;
		lapic_timer_fire(l);
	}
	eng.now = t;
}

static void test_timer_oneshot(void)
{
	struct lapic *l = setup(0);
	uint64_t t0 = eng.now;

	enable(l);
	wr(l, LAPIC_TIMER_DCR, 0xB); /* divide by 1: 1 ns per tick */
	wr(l, LAPIC_LVT_TIMER, 0x40);
	wr(l, LAPIC_TIMER_ICR, 1000);
	CU_ASSERT_EQUAL(eng.armed, t0 + 1000);
	CU_ASSERT_EQUAL(rd(l, LAPIC_TIMER_ICR), 1000);
	CU_ASSERT_EQUAL(rd(l, LAPIC_TIMER_CCR), 1000);
	eng.now = t0 + 250;
	CU_ASSERT_EQUAL(rd(l, LAPIC_TIMER_CCR), 750);
	/* an early call from the engine changes nothing */
	lapic_timer_fire(l);
	CU_ASSERT_FALSE(irr(l, 0x40));
	CU_ASSERT_EQUAL(eng.armed, t0 + 1000);
	run_to(l, t0 + 999);
	CU_ASSERT_FALSE(irr(l, 0x40));
	CU_ASSERT_EQUAL(rd(l, LAPIC_TIMER_CCR), 1);
	run_to(l, t0 + 1000);
	CU_ASSERT_TRUE(irr(l, 0x40));
	CU_ASSERT_EQUAL(rd(l, LAPIC_TIMER_CCR), 0);
	CU_ASSERT_EQUAL(eng.armed, LAPIC_NO_DEADLINE);
	/* a stale fire after expiry does nothing */
	lapic_ack(l, 0x40);
	lapic_timer_fire(l);
	CU_ASSERT_FALSE(irr(l, 0x40));
	/* writing 0 stops a running timer */
	wr(l, LAPIC_TIMER_ICR, 500);
	wr(l, LAPIC_TIMER_ICR, 0);
	CU_ASSERT_EQUAL(eng.armed, LAPIC_NO_DEADLINE);
	CU_ASSERT_EQUAL(rd(l, LAPIC_TIMER_CCR), 0);
}

static void test_timer_divide_values(void)
{
	static const struct { uint32_t dcr; unsigned div; } cases[] = {
		{ 0x0, 2 }, { 0x1, 4 }, { 0x2, 8 }, { 0x3, 16 },
		{ 0x8, 32 }, { 0x9, 64 }, { 0xA, 128 }, { 0xB, 1 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct lapic *l = setup(0);
		uint64_t t0 = eng.now;

		enable(l);
		wr(l, LAPIC_TIMER_DCR, cases[i].dcr | 0xF4); /* junk bits */
		CU_ASSERT_EQUAL(rd(l, LAPIC_TIMER_DCR), cases[i].dcr);
		wr(l, LAPIC_LVT_TIMER, 0x41);
		wr(l, LAPIC_TIMER_ICR, 100);
		CU_ASSERT_EQUAL(eng.armed, t0 + 100ull * cases[i].div);
		eng.now = t0 + 3ull * cases[i].div;
		CU_ASSERT_EQUAL(rd(l, LAPIC_TIMER_CCR), 97);
		eng.now += cases[i].div - 1;
		CU_ASSERT_EQUAL(rd(l, LAPIC_TIMER_CCR), 97);
		eng.now++;
		CU_ASSERT_EQUAL(rd(l, LAPIC_TIMER_CCR), 96);
	}
}

/* An enabled APIC with a periodic timer of 200 ns on vector 0x42. */
static struct lapic *periodic_200ns(void)
{
	struct lapic *l = setup(0);

	enable(l);
	wr(l, LAPIC_TIMER_DCR, 0x0); /* divide by 2 */
	wr(l, LAPIC_LVT_TIMER, 0x20000 | 0x42);
	wr(l, LAPIC_TIMER_ICR, 100); /* period 200 ns */
	return l;
}

static void test_timer_periodic(void)
{
	struct lapic *l = periodic_200ns();
	uint64_t t0 = eng.now; /* the timer started now */

	run_to(l, t0 + 200);
	CU_ASSERT_TRUE(irr(l, 0x42));
	CU_ASSERT_EQUAL(eng.armed, t0 + 400);
	CU_ASSERT_EQUAL(rd(l, LAPIC_TIMER_CCR), 100);
	eng.now = t0 + 250;
	CU_ASSERT_EQUAL(rd(l, LAPIC_TIMER_CCR), 75);
	lapic_intack(l);
	wr(l, LAPIC_EOI, 0);
	/* a late engine (the vCPU thread was descheduled): the deadline at
	 * t0+400 fires at t0+650, one whole period late; the interrupt of
	 * the period missed comes when the guest takes this one */
	eng.now = t0 + 650;
	CU_ASSERT_EQUAL(rd(l, LAPIC_TIMER_CCR), 75);
	lapic_timer_fire(l);
	CU_ASSERT_TRUE(irr(l, 0x42));
	CU_ASSERT_EQUAL(eng.armed, t0 + 800);
	CU_ASSERT_EQUAL(lapic_intack(l), 0x42);
	CU_ASSERT_TRUE(irr(l, 0x42)); /* the owed one, behind this one */
	CU_ASSERT_EQUAL(lapic_pending_vector(l), -1); /* ISR blocks it */
	wr(l, LAPIC_EOI, 0);
	CU_ASSERT_EQUAL(lapic_intack(l), 0x42);
	CU_ASSERT_FALSE(irr(l, 0x42)); /* nothing more owed */
	wr(l, LAPIC_EOI, 0);
	CU_ASSERT_EQUAL(lapic_pending_vector(l), -1);
	/* masked periodic: no wake-ups, the count still runs */
	wr(l, LAPIC_LVT_TIMER, 0x20000 | 0x10000 | 0x42);
	CU_ASSERT_EQUAL(eng.armed, LAPIC_NO_DEADLINE);
	eng.now = t0 + 1010;
	CU_ASSERT_EQUAL(rd(l, LAPIC_TIMER_CCR), 95);
	CU_ASSERT_FALSE(irr(l, 0x42));
	/* unmasked: armed for the next period, nothing for the masked ones */
	wr(l, LAPIC_LVT_TIMER, 0x20000 | 0x42);
	CU_ASSERT_EQUAL(eng.armed, t0 + 1200);
	CU_ASSERT_FALSE(irr(l, 0x42));
	/* switching to one-shot: this period is the last */
	wr(l, LAPIC_LVT_TIMER, 0x42);
	run_to(l, t0 + 5000);
	CU_ASSERT_TRUE(irr(l, 0x42));
	CU_ASSERT_EQUAL(eng.armed, LAPIC_NO_DEADLINE);
	/* a divide change mid-count keeps the count, changes the rate */
	wr(l, LAPIC_TIMER_ICR, 100);
	eng.now += 20; /* 10 ticks of 2 ns */
	wr(l, LAPIC_TIMER_DCR, 0xB);
	CU_ASSERT_EQUAL(rd(l, LAPIC_TIMER_CCR), 90);
	CU_ASSERT_EQUAL(eng.armed, eng.now + 90);
}

/* Expiries owed for a late engine are bounded and go away with the
 * timer's programming. */
static void test_timer_periodic_backlog(void)
{
	struct lapic *l = periodic_200ns();
	uint64_t t0 = eng.now; /* the timer started now */

	eng.now = t0 + 200 + 7 * 200 + 50; /* 7 whole periods late */
	lapic_timer_fire(l);
	CU_ASSERT_EQUAL(l->timer_backlog, 7);
	for (int i = 0; i < 8; i++) {
		CU_ASSERT_EQUAL(lapic_intack(l), 0x42);
		wr(l, LAPIC_EOI, 0);
	}
	CU_ASSERT_EQUAL(lapic_pending_vector(l), -1);
	CU_ASSERT_EQUAL(l->timer_backlog, 0);
	/* at most one second of periods, and at most 1000 */
	eng.now += 5000000000ull;
	lapic_timer_fire(l);
	CU_ASSERT_EQUAL(l->timer_backlog, 1000);
	wr(l, LAPIC_TIMER_ICR, 100); /* reprogrammed: nothing owed */
	CU_ASSERT_EQUAL(l->timer_backlog, 0);
	CU_ASSERT_EQUAL(lapic_intack(l), 0x42);
	CU_ASSERT_FALSE(irr(l, 0x42));
	wr(l, LAPIC_EOI, 0);
	eng.now += 200 + 3 * 200;
	lapic_timer_fire(l);
	CU_ASSERT_EQUAL(l->timer_backlog, 3);
	wr(l, LAPIC_LVT_TIMER, 0x20000 | 0x10000 | 0x42); /* masked */
	CU_ASSERT_EQUAL(l->timer_backlog, 0);
	wr(l, LAPIC_LVT_TIMER, 0x20000 | 0x42);
	CU_ASSERT_EQUAL(lapic_intack(l), 0x42);
	CU_ASSERT_FALSE(irr(l, 0x42));
	wr(l, LAPIC_EOI, 0);
	/* a period of 1 ms: one second is 1000 periods; of 10 ms, 100 */
	wr(l, LAPIC_TIMER_DCR, 0xB); /* divide by 1 */
	wr(l, LAPIC_TIMER_ICR, 10000000);
	eng.now += 10000000ull * 500;
	lapic_timer_fire(l);
	CU_ASSERT_EQUAL(l->timer_backlog, 100);
}

static void test_timer_tsc_deadline(void)
{
	struct lapic *l = setup(LAPIC_F_TSC_DEADLINE);
	uint64_t t0 = eng.now;

	enable(l);
	/* not in TSC-deadline mode: the MSR reads 0, writes are ignored */
	lapic_write_tsc_deadline(l, 555, t0 + 10);
	CU_ASSERT_EQUAL(lapic_read_tsc_deadline(l), 0);
	CU_ASSERT_EQUAL(eng.armed, LAPIC_NO_DEADLINE);
	wr(l, LAPIC_LVT_TIMER, 0x40000 | 0x43);
	CU_ASSERT_EQUAL(rd(l, LAPIC_LVT_TIMER), 0x40043u);
	lapic_write_tsc_deadline(l, 12345, t0 + 5000);
	CU_ASSERT_EQUAL(lapic_read_tsc_deadline(l), 12345);
	CU_ASSERT_EQUAL(eng.armed, t0 + 5000);
	/* the initial count is ignored and the current count reads 0 */
	wr(l, LAPIC_TIMER_ICR, 10);
	CU_ASSERT_EQUAL(rd(l, LAPIC_TIMER_ICR), 0);
	CU_ASSERT_EQUAL(rd(l, LAPIC_TIMER_CCR), 0);
	CU_ASSERT_EQUAL(eng.armed, t0 + 5000);
	run_to(l, t0 + 4999);
	CU_ASSERT_FALSE(irr(l, 0x43));
	run_to(l, t0 + 5000);
	CU_ASSERT_TRUE(irr(l, 0x43));
	CU_ASSERT_EQUAL(lapic_read_tsc_deadline(l), 0); /* cleared on fire */
	CU_ASSERT_EQUAL(eng.armed, LAPIC_NO_DEADLINE);
	lapic_intack(l);
	wr(l, LAPIC_EOI, 0);
	/* a deadline already passed fires at once */
	lapic_write_tsc_deadline(l, 99, eng.now - 1);
	CU_ASSERT_TRUE(irr(l, 0x43));
	lapic_intack(l);
	wr(l, LAPIC_EOI, 0);
	/* 0 disarms */
	lapic_write_tsc_deadline(l, 777, eng.now + 100);
	lapic_write_tsc_deadline(l, 0, 0);
	CU_ASSERT_EQUAL(eng.armed, LAPIC_NO_DEADLINE);
	/* leaving TSC-deadline mode disarms */
	lapic_write_tsc_deadline(l, 777, eng.now + 100);
	wr(l, LAPIC_LVT_TIMER, 0x43);
	CU_ASSERT_EQUAL(eng.armed, LAPIC_NO_DEADLINE);
	run_to(l, eng.now + 1000);
	CU_ASSERT_FALSE(irr(l, 0x43));
	/* without the CPUID feature the mode cannot be selected */
	l = setup(0);
	enable(l);
	wr(l, LAPIC_LVT_TIMER, 0x40000 | 0x43);
	CU_ASSERT_EQUAL(rd(l, LAPIC_LVT_TIMER), 0x43u);
	wr(l, LAPIC_LVT_TIMER, 0x60000 | 0x43); /* reserved mode 3 */
	CU_ASSERT_EQUAL(rd(l, LAPIC_LVT_TIMER), 0x43u);
}

static void test_lvt_masking(void)
{
	struct lapic *l = setup(0);

	enable(l);
	wr(l, LAPIC_TIMER_DCR, 0xB);
	wr(l, LAPIC_LVT_TIMER, 0x10000 | 0x44);
	wr(l, LAPIC_TIMER_ICR, 10);
	run_to(l, eng.now + 100);
	CU_ASSERT_FALSE(irr(l, 0x44));
	/* an expiry while masked is lost, not delivered on unmask */
	wr(l, LAPIC_LVT_TIMER, 0x44);
	CU_ASSERT_FALSE(irr(l, 0x44));
	/* writable bits of each LVT (figure 11-8) */
	wr(l, LAPIC_LVT_THERMAL, 0xFFFFFFFF);
	CU_ASSERT_EQUAL(rd(l, LAPIC_LVT_THERMAL), 0x107FFu);
	wr(l, LAPIC_LVT_PERF, 0xFFFFFFFF);
	CU_ASSERT_EQUAL(rd(l, LAPIC_LVT_PERF), 0x107FFu);
	wr(l, LAPIC_LVT_LINT0, 0xFFFFFFFF);
	CU_ASSERT_EQUAL(rd(l, LAPIC_LVT_LINT0), 0x1A7FFu);
	wr(l, LAPIC_LVT_LINT1, 0xFFFFFFFF);
	CU_ASSERT_EQUAL(rd(l, LAPIC_LVT_LINT1), 0x127FFu);
	wr(l, LAPIC_LVT_ERROR, 0xFFFFFFFF);
	CU_ASSERT_EQUAL(rd(l, LAPIC_LVT_ERROR), 0x100FFu);
}

static void test_icr_ipis(void)
{
	struct lapic *l = setup(0);

	enable(l);
	/* self IPI: handled inside, the engine sees nothing */
	wr(l, LAPIC_ICR_LO, 0x40000 | 0x55);
	CU_ASSERT_TRUE(irr(l, 0x55));
	CU_ASSERT_EQUAL(eng.ipis, 0);
	CU_ASSERT_EQUAL(rd(l, LAPIC_ICR_LO) & (1u << 12), 0); /* idle */
	/* to APIC 2, physical, fixed */
	wr(l, LAPIC_ICR_HI, 0x02FFFFFF);
	CU_ASSERT_EQUAL(rd(l, LAPIC_ICR_HI), 0x02000000u);
	wr(l, LAPIC_ICR_LO, 0x56);
	CU_ASSERT_EQUAL(eng.ipis, 1);
	CU_ASSERT_EQUAL(eng.ipi.dest, 2);
	CU_ASSERT_EQUAL(eng.ipi.vector, 0x56);
	CU_ASSERT_EQUAL(eng.ipi.shorthand, LAPIC_SH_NONE);
	CU_ASSERT_FALSE(eng.ipi.logical);
	/* INIT level assert, all excluding self */
	wr(l, LAPIC_ICR_LO, 0xC0000 | 0x4000 | 0x8000 | 0x500);
	CU_ASSERT_EQUAL(eng.ipis, 2);
	CU_ASSERT_EQUAL(eng.ipi.shorthand, LAPIC_SH_OTHERS);
	CU_ASSERT_EQUAL(eng.ipi.delivery_mode, LAPIC_DM_INIT);
	CU_ASSERT_TRUE(eng.ipi.level_assert);
	CU_ASSERT_TRUE(eng.ipi.trigger_level);
	/* SIPI, logical destination */
	wr(l, LAPIC_ICR_HI, 0x0C000000);
	wr(l, LAPIC_ICR_LO, 0x800 | 0x600 | 0x9A);
	CU_ASSERT_EQUAL(eng.ipi.delivery_mode, LAPIC_DM_STARTUP);
	CU_ASSERT_EQUAL(eng.ipi.vector, 0x9A);
	CU_ASSERT_TRUE(eng.ipi.logical);
	CU_ASSERT_EQUAL(eng.ipi.dest, 0x0C);
	/* the engine delivers an IPI back to this APIC */
	lapic_deliver(l, &(struct lapic_ipi){ .vector = 0x9A,
					     .delivery_mode = LAPIC_DM_STARTUP });
	CU_ASSERT_EQUAL(eng.sig, LAPIC_SIG_STARTUP);
	CU_ASSERT_EQUAL(eng.sig_vector, 0x9A);
	lapic_deliver(l, &(struct lapic_ipi){ .delivery_mode = LAPIC_DM_INIT,
					     .trigger_level = true });
	CU_ASSERT_EQUAL(eng.sig, LAPIC_SIG_STARTUP); /* de-assert: nothing */
	lapic_deliver(l, &(struct lapic_ipi){ .delivery_mode = LAPIC_DM_SMI });
	CU_ASSERT_EQUAL(eng.sig, LAPIC_SIG_SMI);
}

static void test_msi_destinations(void)
{
	struct lapic *l = setup(0);

	enable(l);
	CU_ASSERT_TRUE(lapic_accept_msi(l, 0xFEE03000u, 0x4041));
	CU_ASSERT_FALSE(lapic_accept_msi(l, 0xFEE04000u, 0x4042));
	CU_ASSERT_TRUE(lapic_accept_msi(l, 0xFEEFF000u, 0x4043)); /* broadcast */
	CU_ASSERT_FALSE(lapic_accept_msi(l, 0xFED03000u, 0x4044)); /* not MSI */
	CU_ASSERT_TRUE(irr(l, 0x41));
	CU_ASSERT_FALSE(irr(l, 0x42));
	CU_ASSERT_TRUE(irr(l, 0x43));
	CU_ASSERT_FALSE(irr(l, 0x44));
	/* logical, flat model: any common bit */
	wr(l, LAPIC_LDR, 0x06000000);
	CU_ASSERT_TRUE(lapic_accept_msi(l, 0xFEE02004u, 0x4045));
	CU_ASSERT_FALSE(lapic_accept_msi(l, 0xFEE01004u, 0x4046));
	/* logical, cluster model: same cluster and a common member bit */
	wr(l, LAPIC_DFR, 0x0FFFFFFF);
	wr(l, LAPIC_LDR, 0x21000000);
	CU_ASSERT_TRUE(lapic_accept_msi(l, 0xFEE23004u, 0x4047));
	CU_ASSERT_FALSE(lapic_accept_msi(l, 0xFEE31004u, 0x4048));
	CU_ASSERT_FALSE(lapic_accept_msi(l, 0xFEE22004u, 0x4049));
	/* level-triggered: TMR set, EOI broadcast with the vector */
	CU_ASSERT_TRUE(lapic_accept_msi(l, 0xFEE03000u, 0xC0E0));
	CU_ASSERT_TRUE(tmr(l, 0xE0));
	CU_ASSERT_EQUAL(lapic_intack(l), 0xE0);
	wr(l, LAPIC_EOI, 0);
	CU_ASSERT_EQUAL(eng.eois, 1);
	CU_ASSERT_EQUAL(eng.eoi_vector, 0xE0);
	/* an edge EOI is not broadcast; an edge message clears TMR */
	CU_ASSERT_TRUE(lapic_accept_msi(l, 0xFEE03000u, 0x40E0));
	CU_ASSERT_FALSE(tmr(l, 0xE0));
	CU_ASSERT_EQUAL(lapic_intack(l), 0xE0);
	wr(l, LAPIC_EOI, 0);
	CU_ASSERT_EQUAL(eng.eois, 1);
	/* a level de-assert message carries no interrupt */
	CU_ASSERT_TRUE(lapic_accept_msi(l, 0xFEE03000u, 0x80E1));
	CU_ASSERT_FALSE(irr(l, 0xE1));
	/* ExtINT message: the CPU asks the 8259 */
	CU_ASSERT_FALSE(lapic_extint_pending(l));
	CU_ASSERT_TRUE(lapic_accept_msi(l, 0xFEE03000u, 0x4700));
	CU_ASSERT_TRUE(lapic_extint_pending(l));
	lapic_extint_ack(l);
	CU_ASSERT_FALSE(lapic_extint_pending(l));
}

static void test_lint_pins(void)
{
	struct lapic *l = setup(LAPIC_F_BSP | LAPIC_F_VIRTUAL_WIRE);
	unsigned n;

	/* virtual wire: the 8259's INTR through LINT0 as ExtINT */
	CU_ASSERT_FALSE(lapic_extint_pending(l));
	n = eng.notifies;
	lapic_set_lint0(l, 1);
	CU_ASSERT_TRUE(lapic_extint_pending(l));
	CU_ASSERT_TRUE(eng.notifies > n);
	/* ExtINT ignores TPR: the 8259 has its own priorities */
	wr(l, LAPIC_TPR, 0xFF);
	CU_ASSERT_TRUE(lapic_extint_pending(l));
	lapic_set_lint0(l, 0);
	CU_ASSERT_FALSE(lapic_extint_pending(l));
	/* masked LINT0: nothing */
	wr(l, LAPIC_LVT_LINT0, 0x10700);
	lapic_set_lint0(l, 1);
	CU_ASSERT_FALSE(lapic_extint_pending(l));
	/* hardware-disabled APIC: LINT0 is the CPU's INTR */
	CU_ASSERT_EQUAL(lapic_set_base(l, 0xFEE00000ull), 0);
	CU_ASSERT_FALSE(lapic_hw_enabled(l));
	CU_ASSERT_TRUE(lapic_extint_pending(l));
	CU_ASSERT_EQUAL(lapic_mmio_read(l, LAPIC_LVR, 4), 0);
	lapic_set_lint0(l, 0);
	CU_ASSERT_EQUAL(lapic_set_base(l, 0xFEE00800ull), 0);

	/* LINT1 as NMI, on the rising edge */
	l = setup(LAPIC_F_VIRTUAL_WIRE);
	lapic_set_lint1(l, 1);
	CU_ASSERT_EQUAL(eng.signals, 1);
	CU_ASSERT_EQUAL(eng.sig, LAPIC_SIG_NMI);
	lapic_set_lint1(l, 1);
	CU_ASSERT_EQUAL(eng.signals, 1);

	/* LINT0 fixed, level-triggered: remote IRR until the EOI */
	wr(l, LAPIC_LVT_LINT0, 0x8000 | 0x66);
	lapic_set_lint0(l, 1);
	CU_ASSERT_TRUE(irr(l, 0x66));
	CU_ASSERT_EQUAL(rd(l, LAPIC_LVT_LINT0), 0xC066u);
	CU_ASSERT_EQUAL(lapic_intack(l), 0x66);
	lapic_set_lint0(l, 1);
	CU_ASSERT_FALSE(irr(l, 0x66));
	wr(l, LAPIC_EOI, 0); /* still asserted: again */
	CU_ASSERT_TRUE(irr(l, 0x66));
	CU_ASSERT_EQUAL(lapic_intack(l), 0x66);
	lapic_set_lint0(l, 0);
	wr(l, LAPIC_EOI, 0);
	CU_ASSERT_FALSE(irr(l, 0x66));
	CU_ASSERT_EQUAL(rd(l, LAPIC_LVT_LINT0), 0x8066u);
	/* LINT0 fixed, edge */
	wr(l, LAPIC_LVT_LINT0, 0x67);
	lapic_set_lint0(l, 1);
	CU_ASSERT_TRUE(irr(l, 0x67));
	CU_ASSERT_FALSE(lapic_extint_pending(l));
}

static void test_apic_base(void)
{
	struct lapic *l = setup(LAPIC_F_BSP);

	/* reserved bits, x2APIC without the feature */
	CU_ASSERT_EQUAL(lapic_set_base(l, 0xFEE00900ull | 1), -1);
	CU_ASSERT_EQUAL(lapic_set_base(l, 0xFEE00900ull | (1ull << 60)), -1);
	CU_ASSERT_EQUAL(lapic_set_base(l, 0xFEE00D00ull), -1);
	/* the BSP flag is not the guest's to change */
	CU_ASSERT_EQUAL(lapic_set_base(l, 0xFEE00800ull), 0);
	CU_ASSERT_EQUAL(lapic_get_base(l), 0xFEE00900ull);
	/* disabling loses the register state */
	enable(l);
	wr(l, LAPIC_TPR, 0x30);
	msi(l, 0x70);
	CU_ASSERT_EQUAL(lapic_set_base(l, 0xFEE00100ull), 0);
	CU_ASSERT_FALSE(lapic_accept_msi(l, 0xFEE03000u, 0x4071));
	CU_ASSERT_EQUAL(lapic_pending_vector(l), -1);
	CU_ASSERT_EQUAL(lapic_set_base(l, 0xFEE00900ull), 0);
	CU_ASSERT_EQUAL(rd(l, LAPIC_TPR), 0);
	CU_ASSERT_EQUAL(rd(l, LAPIC_SVR), 0xFF);
	CU_ASSERT_FALSE(irr(l, 0x70));
}

/* CR8 is TPR[7:4] in every APIC state (lapic_set_cr8, as KVM's). */
static void test_cr8(void)
{
	struct lapic *l = setup(LAPIC_F_BSP);

	enable(l);
	lapic_set_cr8(l, 0x3);
	CU_ASSERT_EQUAL(rd(l, LAPIC_TPR), 0x30);
	wr(l, LAPIC_TPR, 0x7C);
	CU_ASSERT_EQUAL(lapic_get_cr8(l), 0x7);
	/* software-disabled */
	wr(l, LAPIC_SVR, 0xFF);
	lapic_set_cr8(l, 0x5);
	CU_ASSERT_EQUAL(lapic_get_cr8(l), 0x5);
	CU_ASSERT_EQUAL(rd(l, LAPIC_TPR), 0x50);
	/* globally disabled: no MMIO, CR8 still reads back, and the TPR is
	 * there when the APIC is enabled again */
	CU_ASSERT_EQUAL(lapic_set_base(l, 0xFEE00100ull), 0);
	lapic_set_cr8(l, 0xA);
	CU_ASSERT_EQUAL(lapic_get_cr8(l), 0xA);
	CU_ASSERT_EQUAL(lapic_set_base(l, 0xFEE00900ull), 0);
	CU_ASSERT_EQUAL(rd(l, LAPIC_TPR), 0xA0);
	/* only bits 3:0 are CR8 */
	lapic_set_cr8(l, 0x12);
	CU_ASSERT_EQUAL(rd(l, LAPIC_TPR), 0x20);
}

static void test_x2apic(void)
{
	struct lapic *l = setup(ALL_FLAGS);
	uint64_t v = 0;

	lapic_init(l, &ops, &eng, 0x25, ALL_FLAGS);
	CU_ASSERT_EQUAL(lapic_msr_read(l, 0x802, &v), -1); /* xAPIC mode */
	/* disabled -> x2APIC is refused; xAPIC -> x2APIC works */
	CU_ASSERT_EQUAL(lapic_set_base(l, 0xFEE00000ull), 0);
	CU_ASSERT_EQUAL(lapic_set_base(l, 0xFEE00C00ull), -1);
	CU_ASSERT_EQUAL(lapic_set_base(l, 0xFEE00800ull), 0);
	CU_ASSERT_EQUAL(lapic_set_base(l, 0xFEE00C00ull), 0);
	CU_ASSERT_TRUE(lapic_x2apic_mode(l));
	CU_ASSERT_EQUAL(lapic_msr_read(l, 0x802, &v), 0);
	CU_ASSERT_EQUAL(v, 0x25);
	CU_ASSERT_EQUAL(lapic_msr_read(l, 0x80D, &v), 0);
	CU_ASSERT_EQUAL(v, (2u << 16) | (1u << 5)); /* cluster 2, bit 5 */
	/* MMIO is off in x2APIC mode */
	CU_ASSERT_EQUAL(lapic_mmio_read(l, LAPIC_LVR, 4), 0);
	/* read-only, write-only and missing registers fault */
	CU_ASSERT_EQUAL(lapic_msr_write(l, 0x802, 1), -1);
	CU_ASSERT_EQUAL(lapic_msr_write(l, 0x80D, 1), -1);
	CU_ASSERT_EQUAL(lapic_msr_read(l, 0x80B, &v), -1);
	CU_ASSERT_EQUAL(lapic_msr_read(l, 0x83F, &v), -1);
	CU_ASSERT_EQUAL(lapic_msr_read(l, 0x80E, &v), -1); /* no DFR */
	CU_ASSERT_EQUAL(lapic_msr_read(l, 0x831, &v), -1); /* no ICR2 */
	CU_ASSERT_EQUAL(lapic_msr_read(l, 0x900, &v), -1);
	/* reserved bits fault */
	CU_ASSERT_EQUAL(lapic_msr_write(l, 0x808, 0x100), -1);
	CU_ASSERT_EQUAL(lapic_msr_write(l, 0x808, 1ull << 32), -1);
	CU_ASSERT_EQUAL(lapic_msr_write(l, 0x80F, 0x1FF), 0);
	CU_ASSERT_EQUAL(lapic_msr_write(l, 0x80F, 0x11FF), -1);
	/* SELF IPI */
	CU_ASSERT_EQUAL(lapic_msr_write(l, 0x83F, 0x77), 0);
	CU_ASSERT_EQUAL(lapic_pending_vector(l), 0x77);
	CU_ASSERT_EQUAL(lapic_msr_write(l, 0x83F, 0x177), -1);
	lapic_ack(l, 0x77);
	/* EOI must be written with 0 */
	CU_ASSERT_EQUAL(lapic_msr_write(l, 0x80B, 1), -1);
	CU_ASSERT_EQUAL(lapic_msr_write(l, 0x80B, 0), 0);
	CU_ASSERT_FALSE(isr(l, 0x77)); /* mmio is off: check via MSR */
	CU_ASSERT_EQUAL(lapic_msr_read(l, 0x813, &v), 0);
	CU_ASSERT_EQUAL(v, 0);
	/* a 64-bit ICR carries a 32-bit destination */
	CU_ASSERT_EQUAL(lapic_msr_write(l, 0x830, (0x12345ull << 32) | 0x58), 0);
	CU_ASSERT_EQUAL(eng.ipi.dest, 0x12345);
	CU_ASSERT_EQUAL(eng.ipi.vector, 0x58);
	CU_ASSERT_EQUAL(lapic_msr_read(l, 0x830, &v), 0);
	CU_ASSERT_EQUAL(v, (0x12345ull << 32) | 0x58);
	/* destinations: physical full ID, logical cluster, broadcast */
	CU_ASSERT_TRUE(lapic_match_dest(l, 0x25, false));
	CU_ASSERT_FALSE(lapic_match_dest(l, 0x125, false));
	CU_ASSERT_TRUE(lapic_match_dest(l, (2u << 16) | (1u << 5), true));
	CU_ASSERT_FALSE(lapic_match_dest(l, (3u << 16) | (1u << 5), true));
	CU_ASSERT_TRUE(lapic_match_dest(l, 0xFFFFFFFF, false));
	CU_ASSERT_TRUE(lapic_accept_msi(l, 0xFEEFF000u, 0x4079));
	/* timer through the MSRs */
	CU_ASSERT_EQUAL(lapic_msr_write(l, 0x83E, 0xB), 0);
	CU_ASSERT_EQUAL(lapic_msr_write(l, 0x832, 0x47), 0);
	CU_ASSERT_EQUAL(lapic_msr_write(l, 0x838, 50), 0);
	CU_ASSERT_EQUAL(eng.armed, eng.now + 50);
	eng.now += 20;
	CU_ASSERT_EQUAL(lapic_msr_read(l, 0x839, &v), 0);
	CU_ASSERT_EQUAL(v, 30);
	/* x2APIC -> xAPIC directly is refused; via disabled it works */
	CU_ASSERT_EQUAL(lapic_set_base(l, 0xFEE00800ull), -1);
	CU_ASSERT_EQUAL(lapic_set_base(l, 0xFEE00000ull), 0);
	CU_ASSERT_EQUAL(lapic_set_base(l, 0xFEE00800ull), 0);
	CU_ASSERT_EQUAL(rd(l, LAPIC_ID), 0x25u << 24);
}

static bool is_register(unsigned r)
{
	return (r >= LAPIC_ID && r <= LAPIC_LVR) ||
	       (r >= LAPIC_TPR && r <= LAPIC_ESR) ||
	       (r >= LAPIC_ICR_LO && r <= LAPIC_TIMER_CCR) ||
	       r == LAPIC_TIMER_DCR;
}

/* Every register of the page, for comparisons (reading a hole would
 * itself be an error the APIC records). */
static void read_all(struct lapic *l, uint32_t *out)
{
	for (unsigned r = 0; r < 0x400; r += 0x10)
		out[r / 0x10] = is_register(r) ? lapic_mmio_read(l, r, 4) : 0;
}

static void make_busy(struct lapic *l)
{
	enable(l);
	wr(l, LAPIC_TPR, 0x20);
	wr(l, LAPIC_LDR, 0x08000000);
	wr(l, LAPIC_DFR, 0x0FFFFFFF);
	msi(l, 0x91);
	CU_ASSERT_TRUE(lapic_accept_msi(l, 0xFEE03000u, 0xC0A2));
	lapic_intack(l);
	msi(l, 0x33);
	wr(l, LAPIC_ICR_HI, 0x05000000);
	wr(l, LAPIC_ICR_LO, 0x4000 | 0x35);
	wr(l, LAPIC_LVT_LINT0, 0x8000 | 0x2000 | 0x68);
	wr(l, LAPIC_LVT_ERROR, 0xEE);
	wr(l, LAPIC_TIMER_DCR, 0x1); /* divide by 4 */
	wr(l, LAPIC_LVT_TIMER, 0x20000 | 0x48);
	wr(l, LAPIC_TIMER_ICR, 1000);
	eng.now += 400; /* 100 ticks */
}

static void test_page_round_trip(void)
{
	struct lapic *l = setup(LAPIC_F_BSP);
	struct lapic b;
	struct engine eng_b = { .now = 77777, .eoi_vector = -1 };
	uint8_t page[LAPIC_PAGE_SIZE], page2[LAPIC_PAGE_SIZE];
	uint32_t ra[64], rb[64];
	uint32_t v;

	make_busy(l);
	lapic_to_page(l, page);
	memcpy(&v, page + LAPIC_ID, 4);
	CU_ASSERT_EQUAL(v, 3u << 24);
	memcpy(&v, page + LAPIC_TIMER_CCR, 4);
	CU_ASSERT_EQUAL(v, 900);
	memcpy(&v, page + LAPIC_ISR + 0x50, 4);
	CU_ASSERT_EQUAL(v, 1u << 2); /* 0xA2 */
	memcpy(&v, page + LAPIC_TMR + 0x50, 4);
	CU_ASSERT_EQUAL(v, 1u << 2);

	lapic_init(&b, &ops, &eng_b, 3, LAPIC_F_BSP);
	lapic_from_page(&b, page);
	read_all(l, ra);
	{
		/* b's registers are read against b's clock */
		struct engine saved = eng;
		eng = eng_b;
		b.opaque = &eng;
		read_all(&b, rb);
		CU_ASSERT_EQUAL(memcmp(ra, rb, sizeof(ra)), 0);
		/* the countdown restarted from 900 ticks of 4 ns */
		CU_ASSERT_EQUAL(eng.armed, 77777 + 3600);
		lapic_to_page(&b, page2);
		CU_ASSERT_EQUAL(memcmp(page, page2, sizeof(page)), 0);
		for (unsigned i = 0; i < LAPIC_PAGE_SIZE; i += 4)
			if (memcmp(page + i, page2 + i, 4))
				fprintf(stderr, "page differs at 0x%x\n", i);
		eng = saved;
	}
	/* hostile page: reserved bits and illegal vectors are dropped */
	memset(page, 0xFF, sizeof(page));
	lapic_init(&b, &ops, &eng, 3, 0);
	lapic_from_page(&b, page);
	CU_ASSERT_EQUAL(lapic_mmio_read(&b, LAPIC_ID, 4), 0xFF000000u);
	CU_ASSERT_EQUAL(lapic_mmio_read(&b, LAPIC_SVR, 4), 0x3FFu);
	CU_ASSERT_EQUAL(lapic_mmio_read(&b, LAPIC_IRR, 4), 0xFFFF0000u);
	CU_ASSERT_EQUAL(lapic_mmio_read(&b, LAPIC_LVT_TIMER, 4), 0x100FFu);
	CU_ASSERT_EQUAL(lapic_mmio_read(&b, LAPIC_TIMER_CCR, 4), 0xFFFFFFFFu);
	CU_ASSERT_EQUAL(lapic_mmio_read(&b, LAPIC_TIMER_DCR, 4), 0xBu);
	CU_ASSERT_EQUAL(lapic_mmio_read(&b, LAPIC_ICR_HI, 4), 0xFF000000u);
}

static void test_state_section(void)
{
	struct lapic *l = setup(LAPIC_F_BSP);
	struct lapic b;
	struct strbuf sb;
	char err[256];
	uint32_t ra[64], rb[64];

	CU_ASSERT_EQUAL_FATAL(state_check_section(&lapic_state_section, err,
						  sizeof(err)), 0);
	make_busy(l);
	lapic_set_lint0(l, 1);
	sb_init(&sb);
	state_save(&lapic_state_section, l, &sb);
	read_all(l, ra);
	/* load under a clock 5 ms further on: the timer keeps its phase */
	lapic_init(&b, &ops, &eng, 3, LAPIC_F_BSP);
	eng.now += 5000000;
	CU_ASSERT_EQUAL_FATAL(state_load(&lapic_state_section, &b, sb.s,
					 sb.len, NULL, err, sizeof(err)), 0);
	sb_free(&sb);
	read_all(&b, rb);
	CU_ASSERT_EQUAL(memcmp(ra, rb, sizeof(ra)), 0);
	CU_ASSERT_EQUAL(eng.armed, eng.now + 3600);
	CU_ASSERT_EQUAL(lapic_pending_vector(&b), lapic_pending_vector(l));
	/* the level LINT0 in service: EOI resends on b as it would on a */
	CU_ASSERT_EQUAL(rd(&b, LAPIC_LVT_LINT0) & (1u << 14), 1u << 14);
	wr(&b, LAPIC_EOI, 0);                  /* 0xA2, level: broadcast */
	CU_ASSERT_EQUAL(eng.eoi_vector, 0xA2);
	CU_ASSERT_EQUAL(lapic_intack(&b), 0x91);
	wr(&b, LAPIC_EOI, 0);
	CU_ASSERT_EQUAL(lapic_intack(&b), 0x68);
	CU_ASSERT_FALSE(irr(&b, 0x68));
	wr(&b, LAPIC_EOI, 0);
	CU_ASSERT_TRUE(irr(&b, 0x68));
}

int main(void)
{
	static const struct test_case tests[] = {
		TEST(test_power_on),
		TEST(test_priorities),
		TEST(test_irr_accumulates),
		TEST(test_software_disabled),
		TEST(test_errors),
		TEST(test_mmio_access_rules),
		TEST(test_timer_oneshot),
		TEST(test_timer_divide_values),
		TEST(test_timer_periodic),
		TEST(test_timer_periodic_backlog),
		TEST(test_timer_tsc_deadline),
		TEST(test_lvt_masking),
		TEST(test_icr_ipis),
		TEST(test_msi_destinations),
		TEST(test_lint_pins),
		TEST(test_apic_base),
		TEST(test_cr8),
		TEST(test_x2apic),
		TEST(test_page_round_trip),
		TEST(test_state_section),
	};

	return RUN_TESTS("lapic", tests);
}
