/* modvm-lapic: the local APIC of one vCPU, for engines without their own.
 * Registers, interrupt acceptance and priority, EOI, IPIs, LINT pins and the
 * timer; see lapic.h for the contract with the engine. Section numbers are
 * those of the Intel SDM vol. 3A chapter 11.
 */
#include "lapic.h"

#include <stddef.h>
#include <string.h>

#include <modvm/pc.h>

enum lvt_index {
	LVT_TIMER, LVT_THERMAL, LVT_PERF, LVT_LINT0, LVT_LINT1, LVT_ERROR,
	LVT_COUNT
};

/* ESR bits (11.5.3) */
#define ESR_SEND_ILLEGAL_VECTOR (1u << 5)
#define ESR_RECV_ILLEGAL_VECTOR (1u << 6)
#define ESR_ILLEGAL_REG_ADDRESS (1u << 7)

#define SVR_WRITABLE 0x3FFu /* vector, APIC enable, focus checking */
#define SVR_POWER_ON 0xFFu
#define DFR_FLAT 0xFFFFFFFFu
#define DFR_MODEL_FLAT 0xFu
#define DCR_WRITABLE 0xBu
#define ICR_LO_WRITABLE 0x000CCFFFu
#define LDR_XAPIC_MASK 0xFF000000u

/* Writable bits of each LVT entry (11.5.1, figure 11-8). LINT1 has no
 * trigger-mode bit: it is always edge. */
#define LVT_COMMON (LAPIC_VECTOR_MASK | LAPIC_LVT_MASKED)
static const uint32_t lvt_writable[LVT_COUNT] = {
	[LVT_TIMER] = LVT_COMMON | LAPIC_TIMER_MODE_MASK,
	[LVT_THERMAL] = LVT_COMMON | LAPIC_DM_MASK,
	[LVT_PERF] = LVT_COMMON | LAPIC_DM_MASK,
	[LVT_LINT0] = LVT_COMMON | LAPIC_DM_MASK | LAPIC_POLARITY_LOW |
		      LAPIC_TRIGGER_LEVEL,
	[LVT_LINT1] = LVT_COMMON | LAPIC_DM_MASK | LAPIC_POLARITY_LOW,
	[LVT_ERROR] = LVT_COMMON,
};

/* Timer modes need valid times: 0 means "not armed". */
#define DEADLINE_NONE 0
/* A loaded deadline further out than this is clamped (the longest
 * countdown is 2^32 ticks of 128 ns). */
#define DEADLINE_LIMIT (1ull << 40)
#define LAPIC_BACKLOG_MAX 1000  /* late periodic expiries kept at most */

/* ---- small helpers ------------------------------------------------------- */

static bool vec_test(const uint32_t *r, unsigned v)
{
	return (r[v >> 5] >> (v & 31)) & 1;
}

static void vec_set(uint32_t *r, unsigned v)
{
	r[v >> 5] |= 1u << (v & 31);
}

static void vec_clear(uint32_t *r, unsigned v)
{
	r[v >> 5] &= ~(1u << (v & 31));
}

static int vec_highest(const uint32_t *r)
{
	for (int i = 7; i >= 0; i--)
		if (r[i])
			return i * 32 + 31 - __builtin_clz(r[i]);
	return -1;
}

static uint64_t now(const struct lapic *l)
{
	return l->ops->now(l->opaque);
}

static void arm(struct lapic *l, uint64_t deadline)
{
	l->ops->arm(l->opaque, deadline);
}

static void notify(struct lapic *l)
{
	if (l->ops->notify)
		l->ops->notify(l->opaque);
}

static void signal_cpu(struct lapic *l, enum lapic_signal sig, uint8_t vector)
{
	if (l->ops->signal)
		l->ops->signal(l->opaque, sig, vector);
}

bool lapic_hw_enabled(const struct lapic *l)
{
	return l->apic_base & LAPIC_BASE_EN;
}

bool lapic_x2apic_mode(const struct lapic *l)
{
	return (l->apic_base & (LAPIC_BASE_EN | LAPIC_BASE_EXTD)) ==
	       (LAPIC_BASE_EN | LAPIC_BASE_EXTD);
}

static bool sw_enabled(const struct lapic *l)
{
	return l->svr & LAPIC_SVR_ENABLE;
}

static unsigned lvt_mode(uint32_t lvt)
{
	return (lvt & LAPIC_DM_MASK) >> LAPIC_DM_SHIFT;
}

/* x2APIC logical ID: cluster in 31:16, one bit of 16 in 15:0 (11.12.10.2). */
static uint32_t x2apic_ldr(uint32_t id)
{
	return (id >> 4) << 16 | 1u << (id & 0xF);
}

/* ---- priorities (11.8.3.1) ------------------------------------------------ */

static uint32_t lapic_ppr(const struct lapic *l)
{
	int isrv = vec_highest(l->isr);
	uint32_t isr_class = isrv < 0 ? 0 : (uint32_t)isrv & 0xF0;

	if ((l->tpr & 0xF0) >= isr_class)
		return l->tpr & 0xFF;
	return isr_class;
}

/* Arbitration priority, for lowest-priority delivery (11.6.2.4). */
static uint32_t lapic_apr(const struct lapic *l)
{
	int isrv = vec_highest(l->isr), irrv = vec_highest(l->irr);
	uint32_t tpr = l->tpr & 0xF0, apr = tpr;
	uint32_t isr_class = isrv < 0 ? 0 : (uint32_t)isrv & 0xF0;
	uint32_t irr_class = irrv < 0 ? 0 : (uint32_t)irrv & 0xF0;

	if (tpr >= irr_class && tpr > isr_class)
		return l->tpr & 0xFF;
	if (isr_class > apr)
		apr = isr_class;
	if (irr_class > apr)
		apr = irr_class;
	return apr;
}

int lapic_pending_vector(const struct lapic *l)
{
	int irrv = vec_highest(l->irr);

	if (!lapic_hw_enabled(l) || irrv < 0)
		return -1;
	if (((uint32_t)irrv & 0xF0) <= (lapic_ppr(l) & 0xF0))
		return -1;
	return irrv;
}

static void notify_if_pending(struct lapic *l)
{
	if (lapic_pending_vector(l) >= 0)
		notify(l);
}

void lapic_set_cr8(struct lapic *l, uint64_t cr8)
{
	l->tpr = (uint32_t)(cr8 & 0xF) << 4;
	notify_if_pending(l);
}

uint64_t lapic_get_cr8(const struct lapic *l)
{
	return (l->tpr >> 4) & 0xF;
}

static bool timer_redeliver(struct lapic *l, uint8_t vector);

void lapic_ack(struct lapic *l, uint8_t vector)
{
	vec_clear(l->irr, vector);
	vec_set(l->isr, vector);
	/* The next late tick waits in IRR until this one's EOI. */
	if (l->timer_backlog && timer_redeliver(l, vector)) {
		l->timer_backlog--;
		vec_set(l->irr, vector);
	}
}

int lapic_intack(struct lapic *l)
{
	int v = lapic_pending_vector(l);

	if (v >= 0) {
		lapic_ack(l, (uint8_t)v);
		return v;
	}
	/* The interrupt the CPU was told about is gone (TPR raised meanwhile):
	 * the spurious vector, with no ISR bit (11.9). */
	if (vec_highest(l->irr) >= 0 || l->extint_msg)
		return (int)(l->svr & 0xFF);
	return -1;
}

/* ---- accepting interrupts ------------------------------------------------ */

static void lapic_error(struct lapic *l, uint32_t bits);

/* A fixed interrupt reaches the IRR (11.5.5: vectors 0-15 are illegal). */
static void accept_vector(struct lapic *l, uint8_t vector, bool level)
{
	if (vector < 16) {
		lapic_error(l, ESR_RECV_ILLEGAL_VECTOR);
		return;
	}
	/* A software-disabled APIC takes no fixed interrupts (11.4.7.2). */
	if (!sw_enabled(l))
		return;
	vec_set(l->irr, vector);
	if (level)
		vec_set(l->tmr, vector);
	else
		vec_clear(l->tmr, vector);
	notify_if_pending(l);
}

/* Errors latch in esr_pending and raise the error LVT (11.5.3). */
static void lapic_error(struct lapic *l, uint32_t bits)
{
	uint32_t lvt = l->lvt[LVT_ERROR];
	uint8_t vector = lvt & LAPIC_VECTOR_MASK;

	l->esr_pending |= bits;
	/* An illegal error vector would only report itself again. */
	if (!(lvt & LAPIC_LVT_MASKED) && vector >= 16)
		accept_vector(l, vector, false);
}

static void lvt_fire(struct lapic *l, enum lvt_index i)
{
	uint32_t lvt = l->lvt[i];

	if (!(lvt & LAPIC_LVT_MASKED))
		accept_vector(l, lvt & LAPIC_VECTOR_MASK, false);
}

void lapic_deliver(struct lapic *l, const struct lapic_ipi *m)
{
	if (!lapic_hw_enabled(l))
		return;
	switch (m->delivery_mode) {
	case LAPIC_DM_FIXED:
	case LAPIC_DM_LOWEST:
		/* A level de-assert message carries no interrupt. */
		if (m->trigger_level && !m->level_assert)
			return;
		accept_vector(l, m->vector, m->trigger_level);
		break;
	case LAPIC_DM_NMI:
		signal_cpu(l, LAPIC_SIG_NMI, 0);
		break;
	case LAPIC_DM_SMI:
		signal_cpu(l, LAPIC_SIG_SMI, 0);
		break;
	case LAPIC_DM_INIT:
		/* INIT level de-assert only resynchronises arbitration IDs. */
		if (m->trigger_level && !m->level_assert)
			return;
		signal_cpu(l, LAPIC_SIG_INIT, 0);
		break;
	case LAPIC_DM_STARTUP:
		signal_cpu(l, LAPIC_SIG_STARTUP, m->vector);
		break;
	case LAPIC_DM_EXTINT:
		l->extint_msg = 1;
		notify(l);
		break;
	default:
		break; /* reserved delivery modes */
	}
}

bool lapic_match_dest(const struct lapic *l, uint32_t dest, bool logical)
{
	uint8_t ldr;

	if (lapic_x2apic_mode(l)) {
		if (dest == 0xFFFFFFFFu)
			return true;
		if (!logical)
			return dest == l->id;
		return (dest >> 16) == (l->ldr >> 16) && (dest & l->ldr & 0xFFFF);
	}
	dest &= 0xFF;
	if (dest == 0xFF)
		return true; /* broadcast, in both modes */
	if (!logical)
		return dest == (l->id & 0xFF);
	ldr = (uint8_t)(l->ldr >> 24);
	if ((l->dfr >> 28) == DFR_MODEL_FLAT)
		return (ldr & dest) != 0;
	/* cluster model: cluster ID in 7:4, member bits in 3:0 */
	return (dest >> 4) == (ldr >> 4) && (dest & ldr & 0x0F);
}

/* MSI address and data (11.11.1, 11.11.2). */
void lapic_msi_decode(uint64_t addr, uint32_t data, struct lapic_ipi *out)
{
	memset(out, 0, sizeof(*out));
	out->dest = (uint32_t)(addr >> 12) & 0xFF;
	out->logical = (addr >> 2) & 1;
	out->vector = data & 0xFF;
	out->delivery_mode = (data >> 8) & 7;
	out->level_assert = (data >> 14) & 1;
	out->trigger_level = (data >> 15) & 1;
}

bool lapic_accept_msi(struct lapic *l, uint64_t addr, uint32_t data)
{
	struct lapic_ipi m;

	if ((addr & 0xFFF00000ull) != MODVM_PC_MSI_BASE || !lapic_hw_enabled(l))
		return false;
	lapic_msi_decode(addr, data, &m);
	/* An 8-bit broadcast stays a broadcast for an x2APIC. */
	if (m.dest == 0xFF && lapic_x2apic_mode(l))
		m.dest = 0xFFFFFFFFu;
	if (!lapic_match_dest(l, m.dest, m.logical))
		return false;
	lapic_deliver(l, &m);
	return true;
}

/* ---- LINT pins (11.5.1) --------------------------------------------------- */

static uint8_t *lint_level(struct lapic *l, enum lvt_index i)
{
	return i == LVT_LINT0 ? &l->lint0_level : &l->lint1_level;
}

/* A level-triggered fixed LINT0 sends while asserted and not in service:
 * remote IRR is set on acceptance and cleared by the EOI. */
static void lint_check_level(struct lapic *l, enum lvt_index i)
{
	uint32_t lvt = l->lvt[i];

	if (*lint_level(l, i) && lvt_mode(lvt) == LAPIC_DM_FIXED &&
	    (lvt & LAPIC_TRIGGER_LEVEL) &&
	    !(lvt & (LAPIC_LVT_MASKED | LAPIC_REMOTE_IRR))) {
		l->lvt[i] |= LAPIC_REMOTE_IRR;
		accept_vector(l, lvt & LAPIC_VECTOR_MASK, true);
	}
}

static void lint_set(struct lapic *l, enum lvt_index i, int level)
{
	uint8_t *cur = lint_level(l, i);
	bool rising = level && !*cur;
	uint32_t lvt = l->lvt[i];

	*cur = level != 0;
	/* Pin levels are logical (1 = asserted): modvm's lines carry
	 * assertion, so the polarity bit is kept but not applied. */
	if (!lapic_hw_enabled(l)) {
		/* A disabled APIC passes LINT0 as INTR, LINT1 as NMI. */
		if (i == LVT_LINT0 && level)
			notify(l);
		else if (i == LVT_LINT1 && rising)
			signal_cpu(l, LAPIC_SIG_NMI, 0);
		return;
	}
	if (lvt & LAPIC_LVT_MASKED)
		return;
	switch (lvt_mode(lvt)) {
	case LAPIC_DM_FIXED:
		if (lvt & LAPIC_TRIGGER_LEVEL)
			lint_check_level(l, i);
		else if (rising)
			accept_vector(l, lvt & LAPIC_VECTOR_MASK, false);
		break;
	case LAPIC_DM_EXTINT:
		if (level)
			notify(l);
		break;
	case LAPIC_DM_NMI:
		if (rising)
			signal_cpu(l, LAPIC_SIG_NMI, 0);
		break;
	case LAPIC_DM_SMI:
		if (rising)
			signal_cpu(l, LAPIC_SIG_SMI, 0);
		break;
	case LAPIC_DM_INIT:
		if (rising)
			signal_cpu(l, LAPIC_SIG_INIT, 0);
		break;
	default:
		break;
	}
}

void lapic_set_lint0(struct lapic *l, int level)
{
	lint_set(l, LVT_LINT0, level);
}

void lapic_set_lint1(struct lapic *l, int level)
{
	lint_set(l, LVT_LINT1, level);
}

bool lapic_extint_pending(const struct lapic *l)
{
	uint32_t lvt = l->lvt[LVT_LINT0];

	if (l->extint_msg)
		return true;
	if (!l->lint0_level)
		return false;
	if (!lapic_hw_enabled(l))
		return true;
	return !(lvt & LAPIC_LVT_MASKED) && lvt_mode(lvt) == LAPIC_DM_EXTINT;
}

void lapic_extint_ack(struct lapic *l)
{
	l->extint_msg = 0;
}

/* ---- EOI (11.8.5) ------------------------------------------------------- */

static void lapic_eoi(struct lapic *l)
{
	int v = vec_highest(l->isr);

	if (v < 0)
		return;
	vec_clear(l->isr, (unsigned)v);
	if (vec_test(l->tmr, (unsigned)v) && l->ops->eoi_broadcast)
		l->ops->eoi_broadcast(l->opaque, (uint8_t)v);
	for (enum lvt_index i = LVT_LINT0; i <= LVT_LINT1; i++) {
		if ((l->lvt[i] & LAPIC_REMOTE_IRR) &&
		    (l->lvt[i] & LAPIC_VECTOR_MASK) == (uint32_t)v) {
			l->lvt[i] &= ~LAPIC_REMOTE_IRR;
			lint_check_level(l, i);
		}
	}
	notify_if_pending(l);
}

/* ---- timer (11.5.4) ------------------------------------------------------ */

static unsigned timer_mode(const struct lapic *l)
{
	return (l->lvt[LVT_TIMER] & LAPIC_TIMER_MODE_MASK) >>
	       LAPIC_TIMER_MODE_SHIFT;
}

/* Divide configuration: bits 3,1,0; 111 is divide by 1 (figure 11-10). */
static uint64_t timer_tick_ns(const struct lapic *l)
{
	unsigned v = (l->timer_dcr & 3) | ((l->timer_dcr >> 1) & 4);

	return (uint64_t)LAPIC_BUS_CYCLE_NS * (v == 7 ? 1 : 2u << v);
}

static uint64_t timer_period(const struct lapic *l)
{
	return (uint64_t)l->timer_initial * timer_tick_ns(l);
}

/* A periodic deadline that has passed moves to the next one after t. */
static void timer_catch_up(struct lapic *l, uint64_t t)
{
	uint64_t period = timer_period(l);

	if (timer_mode(l) != LAPIC_TIMER_PERIODIC || !period ||
	    l->timer_deadline == DEADLINE_NONE || t < l->timer_deadline)
		return;
	l->timer_deadline += ((t - l->timer_deadline) / period + 1) * period;
}

static uint32_t timer_current(const struct lapic *l)
{
	uint64_t t, tick = timer_tick_ns(l), left, period = timer_period(l);

	if (timer_mode(l) == LAPIC_TIMER_TSC_DEADLINE ||
	    l->timer_deadline == DEADLINE_NONE || !period)
		return 0;
	t = now(l);
	if (t < l->timer_deadline)
		left = l->timer_deadline - t;
	else if (timer_mode(l) == LAPIC_TIMER_PERIODIC)
		left = period - (t - l->timer_deadline) % period;
	else
		return 0;
	/* The count drops at the end of each tick. */
	left = (left + tick - 1) / tick;
	return left > l->timer_initial ? l->timer_initial : (uint32_t)left;
}

static void timer_rearm(struct lapic *l)
{
	if (l->timer_deadline == DEADLINE_NONE) {
		arm(l, LAPIC_NO_DEADLINE);
		return;
	}
	/* A masked periodic timer needs no wake-ups: its count is computed
	 * from the clock, and unmasking re-arms. */
	if (timer_mode(l) == LAPIC_TIMER_PERIODIC) {
		timer_catch_up(l, now(l));
		if (l->lvt[LVT_TIMER] & LAPIC_LVT_MASKED) {
			arm(l, LAPIC_NO_DEADLINE);
			return;
		}
	}
	arm(l, l->timer_deadline);
}

static void timer_disarm(struct lapic *l)
{
	l->timer_deadline = DEADLINE_NONE;
	l->timer_backlog = 0;
	arm(l, LAPIC_NO_DEADLINE);
}

static void timer_start(struct lapic *l, uint32_t count)
{
	if (timer_mode(l) == LAPIC_TIMER_TSC_DEADLINE)
		return; /* the initial count is ignored in this mode */
	l->timer_initial = count;
	l->timer_backlog = 0;
	if (!count) {
		timer_disarm(l);
		return;
	}
	l->timer_deadline = now(l) + timer_period(l);
	timer_rearm(l);
}

/* Is `vector`, just taken by the CPU, the periodic timer's, with late
 * expiries to deliver? */
static bool timer_redeliver(struct lapic *l, uint8_t vector)
{
	uint32_t lvt = l->lvt[LVT_TIMER];

	if (timer_mode(l) != LAPIC_TIMER_PERIODIC || (lvt & LAPIC_LVT_MASKED) ||
	    (lvt & LAPIC_VECTOR_MASK) != vector) {
		l->timer_backlog = 0;
		return false;
	}
	return true;
}

/* A periodic expiry fired at t, whole periods after its deadline: those
 * periods' interrupts are owed (struct lapic, timer_backlog). */
static void timer_note_missed(struct lapic *l, uint64_t t)
{
	uint64_t period = timer_period(l), missed, cap;

	if (!period || (l->lvt[LVT_TIMER] & LAPIC_LVT_MASKED) ||
	    t - l->timer_deadline < period)
		return;
	missed = (t - l->timer_deadline) / period;
	cap = 1000000000ull / period;
	if (cap > LAPIC_BACKLOG_MAX)
		cap = LAPIC_BACKLOG_MAX;
	if (cap < 1)
		cap = 1;
	missed += l->timer_backlog;
	l->timer_backlog = (uint32_t)(missed < cap ? missed : cap);
}

void lapic_timer_fire(struct lapic *l)
{
	uint64_t t = now(l);

	if (l->timer_deadline == DEADLINE_NONE)
		return;
	if (t < l->timer_deadline) {
		arm(l, l->timer_deadline); /* early or stale: wait on */
		return;
	}
	lvt_fire(l, LVT_TIMER);
	switch (timer_mode(l)) {
	case LAPIC_TIMER_PERIODIC:
		timer_note_missed(l, t);
		timer_rearm(l);
		break;
	case LAPIC_TIMER_TSC_DEADLINE:
		/* "the timer disarms itself and clears IA32_TSC_DEADLINE" */
		l->tsc_deadline = 0;
		timer_disarm(l);
		break;
	default:
		timer_disarm(l);
		break;
	}
}

void lapic_write_tsc_deadline(struct lapic *l, uint64_t tsc,
			      uint64_t deadline_ns)
{
	if (timer_mode(l) != LAPIC_TIMER_TSC_DEADLINE)
		return;
	l->tsc_deadline = tsc;
	if (!tsc) {
		timer_disarm(l);
		return;
	}
	l->timer_deadline = deadline_ns ? deadline_ns : 1;
	if (l->timer_deadline <= now(l))
		lapic_timer_fire(l); /* a deadline in the past fires at once */
	else
		timer_rearm(l);
}

uint64_t lapic_read_tsc_deadline(const struct lapic *l)
{
	return timer_mode(l) == LAPIC_TIMER_TSC_DEADLINE ? l->tsc_deadline : 0;
}

static void timer_set_dcr(struct lapic *l, uint32_t v)
{
	uint32_t left = timer_current(l);

	l->timer_dcr = v & DCR_WRITABLE;
	/* The count goes on from where it was, at the new rate. */
	if (timer_mode(l) != LAPIC_TIMER_TSC_DEADLINE &&
	    l->timer_deadline != DEADLINE_NONE && left) {
		l->timer_deadline = now(l) + (uint64_t)left * timer_tick_ns(l);
		timer_rearm(l);
	}
}

/* ---- register writes ------------------------------------------------------ */

static uint32_t lvt_sanitize(const struct lapic *l, enum lvt_index i,
			     uint32_t v, uint32_t old)
{
	uint32_t w = v & lvt_writable[i];

	if (i == LVT_TIMER) {
		unsigned mode = (w & LAPIC_TIMER_MODE_MASK) >> LAPIC_TIMER_MODE_SHIFT;
		bool ok = mode == LAPIC_TIMER_ONESHOT ||
			  mode == LAPIC_TIMER_PERIODIC ||
			  (mode == LAPIC_TIMER_TSC_DEADLINE &&
			   (l->flags & LAPIC_F_TSC_DEADLINE));
		if (!ok)
			w = (w & ~LAPIC_TIMER_MODE_MASK) |
			    (old & LAPIC_TIMER_MODE_MASK);
	}
	/* Remote IRR is read-only and means something only for a level
	 * LINT0 (LINT1 is always edge). */
	if (i == LVT_LINT0 && (w & LAPIC_TRIGGER_LEVEL))
		w |= old & LAPIC_REMOTE_IRR;
	/* Software-disabled: the mask bits are set and stay set (11.4.7.2). */
	if (!sw_enabled(l))
		w |= LAPIC_LVT_MASKED;
	return w;
}

static void lvt_write(struct lapic *l, enum lvt_index i, uint32_t v)
{
	unsigned old_mode = timer_mode(l);

	l->lvt[i] = lvt_sanitize(l, i, v, l->lvt[i]);
	if (i == LVT_TIMER) {
		l->timer_backlog = 0;
		/* Switching to or from TSC-deadline mode disarms the timer
		 * (11.5.4.1). */
		if ((old_mode == LAPIC_TIMER_TSC_DEADLINE) !=
		    (timer_mode(l) == LAPIC_TIMER_TSC_DEADLINE)) {
			l->timer_initial = 0;
			l->tsc_deadline = 0;
			timer_disarm(l);
		} else {
			timer_rearm(l);
		}
	} else if (i == LVT_LINT0 || i == LVT_LINT1) {
		/* An unmasked level LINT0 that is asserted sends now. */
		lint_check_level(l, i);
	}
}

static void svr_write(struct lapic *l, uint32_t v)
{
	l->svr = v & SVR_WRITABLE;
	if (!sw_enabled(l))
		for (int i = 0; i < LVT_COUNT; i++)
			l->lvt[i] |= LAPIC_LVT_MASKED;
	notify_if_pending(l);
}

static void esr_write(struct lapic *l)
{
	/* A write latches the errors seen since the last one (11.5.3). */
	l->esr = l->esr_pending;
	l->esr_pending = 0;
}

static void send_icr(struct lapic *l, uint32_t lo, uint32_t dest)
{
	struct lapic_ipi m = {
		.vector = lo & LAPIC_VECTOR_MASK,
		.delivery_mode = (uint8_t)lvt_mode(lo),
		.shorthand = (lo >> LAPIC_SHORTHAND_SHIFT) & 3,
		.logical = lo & LAPIC_DEST_LOGICAL,
		.level_assert = lo & LAPIC_LEVEL_ASSERT,
		.trigger_level = lo & LAPIC_TRIGGER_LEVEL,
		.dest = dest,
	};

	if ((m.delivery_mode == LAPIC_DM_FIXED ||
	     m.delivery_mode == LAPIC_DM_LOWEST) && m.vector < 16) {
		lapic_error(l, ESR_SEND_ILLEGAL_VECTOR);
		return;
	}
	if (m.shorthand == LAPIC_SH_SELF) {
		lapic_deliver(l, &m);
		return;
	}
	if (l->ops->send_ipi)
		l->ops->send_ipi(l->opaque, &m);
}

static void lapic_regs_reset(struct lapic *l);

/* Registers common to the xAPIC page and the x2APIC MSRs. Returns false
 * for an offset that is not one. */
static bool common_read(struct lapic *l, unsigned reg, uint32_t *v)
{
	if (reg >= LAPIC_ISR && reg < LAPIC_ISR + 0x80) {
		*v = l->isr[(reg - LAPIC_ISR) >> 4];
		return true;
	}
	if (reg >= LAPIC_TMR && reg < LAPIC_TMR + 0x80) {
		*v = l->tmr[(reg - LAPIC_TMR) >> 4];
		return true;
	}
	if (reg >= LAPIC_IRR && reg < LAPIC_IRR + 0x80) {
		*v = l->irr[(reg - LAPIC_IRR) >> 4];
		return true;
	}
	if (reg >= LAPIC_LVT_TIMER && reg <= LAPIC_LVT_ERROR) {
		*v = l->lvt[(reg - LAPIC_LVT_TIMER) >> 4];
		return true;
	}
	switch (reg) {
	case LAPIC_LVR: *v = LAPIC_VERSION; return true;
	case LAPIC_TPR: *v = l->tpr; return true;
	case LAPIC_PPR: *v = lapic_ppr(l); return true;
	case LAPIC_LDR: *v = l->ldr; return true;
	case LAPIC_SVR: *v = l->svr; return true;
	case LAPIC_ESR: *v = l->esr; return true;
	case LAPIC_ICR_LO: *v = l->icr_lo; return true;
	case LAPIC_TIMER_ICR: *v = l->timer_initial; return true;
	case LAPIC_TIMER_CCR: *v = timer_current(l); return true;
	case LAPIC_TIMER_DCR: *v = l->timer_dcr; return true;
	default: return false;
	}
}

static bool xapic_read(struct lapic *l, unsigned reg, uint32_t *v)
{
	switch (reg) {
	case LAPIC_ID: *v = l->id << 24; return true;
	case LAPIC_APR: *v = lapic_apr(l); return true;
	case LAPIC_EOI: *v = 0; return true;  /* write-only, reads 0 */
	case LAPIC_RRD: *v = 0; return true;  /* no remote reads */
	case LAPIC_DFR: *v = l->dfr; return true;
	case LAPIC_ICR_HI: *v = l->icr_hi; return true;
	default: return common_read(l, reg, v);
	}
}

/* Writes to read-only registers are ignored; an offset that is no
 * register at all is an error. */
static void xapic_write(struct lapic *l, unsigned reg, uint32_t v)
{
	if (reg >= LAPIC_LVT_TIMER && reg <= LAPIC_LVT_ERROR) {
		lvt_write(l, (reg - LAPIC_LVT_TIMER) >> 4, v);
		return;
	}
	switch (reg) {
	case LAPIC_ID: l->id = v >> 24; break;
	case LAPIC_TPR: l->tpr = v & 0xFF; notify_if_pending(l); break;
	case LAPIC_EOI: lapic_eoi(l); break;
	case LAPIC_LDR: l->ldr = v & LDR_XAPIC_MASK; break;
	case LAPIC_DFR: l->dfr = v | 0x0FFFFFFFu; break;
	case LAPIC_SVR: svr_write(l, v); break;
	case LAPIC_ESR: esr_write(l); break;
	case LAPIC_ICR_LO:
		l->icr_lo = v & ICR_LO_WRITABLE;
		send_icr(l, l->icr_lo, l->icr_hi >> 24);
		break;
	case LAPIC_ICR_HI: l->icr_hi = v & 0xFF000000u; break;
	case LAPIC_TIMER_ICR: timer_start(l, v); break;
	case LAPIC_TIMER_DCR: timer_set_dcr(l, v); break;
	default: {
		uint32_t dummy;
		if (!xapic_read(l, reg, &dummy))
			lapic_error(l, ESR_ILLEGAL_REG_ADDRESS);
		break;
	}
	}
}

uint32_t lapic_mmio_read(struct lapic *l, uint64_t offset, unsigned size)
{
	unsigned within = offset & 0xF;
	uint32_t v;

	if (offset >= LAPIC_MMIO_SIZE || within >= 4 || !size ||
	    !lapic_hw_enabled(l) || lapic_x2apic_mode(l))
		return 0;
	if (!xapic_read(l, (unsigned)offset & 0xFF0, &v)) {
		lapic_error(l, ESR_ILLEGAL_REG_ADDRESS);
		return 0;
	}
	v >>= 8 * within;
	return size >= 4 ? v : v & ((1u << (8 * size)) - 1);
}

void lapic_mmio_write(struct lapic *l, uint64_t offset, uint64_t value,
		      unsigned size)
{
	if (offset >= LAPIC_MMIO_SIZE || (offset & 0xF) || size != 4 ||
	    !lapic_hw_enabled(l) || lapic_x2apic_mode(l))
		return;
	xapic_write(l, (unsigned)offset, (uint32_t)value);
}

/* ---- x2APIC MSRs (11.12.1) ------------------------------------------------ */

int lapic_msr_read(struct lapic *l, uint32_t msr, uint64_t *value)
{
	unsigned reg;
	uint32_t v;

	if (!lapic_x2apic_mode(l) || msr < LAPIC_MSR_X2APIC_FIRST ||
	    msr > LAPIC_MSR_X2APIC_LAST)
		return -1;
	reg = (msr - LAPIC_MSR_X2APIC_FIRST) << 4;
	if (reg == LAPIC_ID) {
		*value = l->id;
		return 0;
	}
	if (reg == LAPIC_ICR_LO) {
		*value = (uint64_t)l->icr_hi << 32 | l->icr_lo;
		return 0;
	}
	if (!common_read(l, reg, &v))
		return -1; /* APR, EOI, RRD, DFR, ICR2, SELF IPI, reserved */
	*value = v;
	return 0;
}

static int x2apic_write(struct lapic *l, unsigned reg, uint64_t value)
{
	uint32_t v = (uint32_t)value;

	if (reg >= LAPIC_LVT_TIMER && reg <= LAPIC_LVT_ERROR) {
		enum lvt_index i = (reg - LAPIC_LVT_TIMER) >> 4;
		if (v & ~lvt_writable[i])
			return -1;
		lvt_write(l, i, v);
		return 0;
	}
	switch (reg) {
	case LAPIC_TPR:
		if (v & ~0xFFu)
			return -1;
		l->tpr = v;
		notify_if_pending(l);
		return 0;
	case LAPIC_EOI:
		if (v)
			return -1;
		lapic_eoi(l);
		return 0;
	case LAPIC_SVR:
		if (v & ~SVR_WRITABLE)
			return -1;
		svr_write(l, v);
		return 0;
	case LAPIC_ESR:
		if (v)
			return -1;
		esr_write(l);
		return 0;
	case LAPIC_TIMER_ICR:
		timer_start(l, v);
		return 0;
	case LAPIC_TIMER_DCR:
		if (v & ~DCR_WRITABLE)
			return -1;
		timer_set_dcr(l, v);
		return 0;
	case LAPIC_SELF_IPI:
		/* A fixed, edge-triggered IPI to self (11.12.11). */
		if (v & ~0xFFu)
			return -1;
		send_icr(l, v | LAPIC_SH_SELF << LAPIC_SHORTHAND_SHIFT, 0);
		return 0;
	default:
		return -1; /* read-only or not a register */
	}
}

int lapic_msr_write(struct lapic *l, uint32_t msr, uint64_t value)
{
	unsigned reg;

	if (!lapic_x2apic_mode(l) || msr < LAPIC_MSR_X2APIC_FIRST ||
	    msr > LAPIC_MSR_X2APIC_LAST)
		return -1;
	reg = (msr - LAPIC_MSR_X2APIC_FIRST) << 4;
	if (reg == LAPIC_ICR_LO) {
		if ((uint32_t)value & ~ICR_LO_WRITABLE)
			return -1;
		l->icr_lo = (uint32_t)value;
		l->icr_hi = (uint32_t)(value >> 32);
		send_icr(l, l->icr_lo, l->icr_hi);
		return 0;
	}
	if (value >> 32)
		return -1;
	return x2apic_write(l, reg, value);
}

/* ---- IA32_APIC_BASE and reset -------------------------------------------- */

uint64_t lapic_get_base(const struct lapic *l)
{
	return l->apic_base;
}

/* Physical address bits 12-51 of the base, BSP, EXTD and EN. */
#define APIC_BASE_ADDR_MASK 0x000FFFFFFFFFF000ull
#define APIC_BASE_VALID (APIC_BASE_ADDR_MASK | LAPIC_BASE_BSP | \
			 LAPIC_BASE_EXTD | LAPIC_BASE_EN)

int lapic_set_base(struct lapic *l, uint64_t value)
{
	bool was_enabled = lapic_hw_enabled(l), was_x2 = lapic_x2apic_mode(l);
	bool en = value & LAPIC_BASE_EN, x2 = value & LAPIC_BASE_EXTD;

	if (value & ~APIC_BASE_VALID)
		return -1;
	if (x2 && (!en || !(l->flags & LAPIC_F_X2APIC)))
		return -1; /* EXTD without EN is invalid (11.12.5) */
	if (was_x2 && en && !x2)
		return -1; /* x2APIC -> xAPIC must pass through disabled */
	if (!was_enabled && x2)
		return -1; /* disabled -> x2APIC must pass through xAPIC */
	/* The BSP flag is the hardware's, not the guest's. */
	l->apic_base = (value & ~LAPIC_BASE_BSP) |
		       (l->apic_base & LAPIC_BASE_BSP);
	if (was_enabled && !en) {
		/* A globally disabled APIC loses its state (11.4.3). */
		l->id = l->initial_id;
		lapic_regs_reset(l);
	}
	if (!was_x2 && x2) {
		l->id = l->initial_id;
		l->ldr = x2apic_ldr(l->id);
	}
	return 0;
}

static void lapic_regs_reset(struct lapic *l)
{
	l->tpr = 0;
	l->ldr = lapic_x2apic_mode(l) ? x2apic_ldr(l->id) : 0;
	l->dfr = DFR_FLAT;
	l->svr = SVR_POWER_ON;
	memset(l->isr, 0, sizeof(l->isr));
	memset(l->tmr, 0, sizeof(l->tmr));
	memset(l->irr, 0, sizeof(l->irr));
	l->esr = l->esr_pending = 0;
	l->icr_lo = l->icr_hi = 0;
	for (int i = 0; i < LVT_COUNT; i++)
		l->lvt[i] = LAPIC_LVT_MASKED;
	l->timer_initial = 0;
	l->timer_dcr = 0;
	l->tsc_deadline = 0;
	l->extint_msg = 0;
	timer_disarm(l);
}

void lapic_reset(struct lapic *l)
{
	l->apic_base = MODVM_PC_LAPIC_BASE | LAPIC_BASE_EN |
		       ((l->flags & LAPIC_F_BSP) ? LAPIC_BASE_BSP : 0);
	l->id = l->initial_id;
	lapic_regs_reset(l);
	if (l->flags & LAPIC_F_VIRTUAL_WIRE) {
		l->svr = LAPIC_SVR_ENABLE | SVR_POWER_ON;
		l->lvt[LVT_LINT0] = LAPIC_DM_EXTINT << LAPIC_DM_SHIFT;
		l->lvt[LVT_LINT1] = LAPIC_DM_NMI << LAPIC_DM_SHIFT;
	}
}

void lapic_init_signal(struct lapic *l)
{
	lapic_regs_reset(l);
}

void lapic_init(struct lapic *l, const struct lapic_ops *ops, void *opaque,
		uint32_t apic_id, unsigned flags)
{
	memset(l, 0, sizeof(*l));
	l->ops = ops;
	l->opaque = opaque;
	l->initial_id = apic_id;
	l->flags = flags;
	lapic_reset(l);
}

/* ---- state ---------------------------------------------------------------- */

/* Bring loaded registers back to values the guest could have written. */
static void lapic_sanitize(struct lapic *l)
{
	uint64_t base = l->apic_base & APIC_BASE_VALID;

	if (l->timer_backlog > LAPIC_BACKLOG_MAX)
		l->timer_backlog = LAPIC_BACKLOG_MAX;
	if ((base & LAPIC_BASE_EXTD) &&
	    (!(base & LAPIC_BASE_EN) || !(l->flags & LAPIC_F_X2APIC)))
		base &= ~LAPIC_BASE_EXTD;
	l->apic_base = base;
	if (lapic_x2apic_mode(l)) {
		l->id = l->initial_id;
		l->ldr = x2apic_ldr(l->id);
	} else {
		l->id &= 0xFF;
		l->ldr &= LDR_XAPIC_MASK;
	}
	l->tpr &= 0xFF;
	l->dfr |= 0x0FFFFFFFu;
	l->svr &= SVR_WRITABLE;
	l->esr &= 0xFF;
	l->esr_pending &= 0xFF;
	l->icr_lo &= ICR_LO_WRITABLE;
	if (!lapic_x2apic_mode(l))
		l->icr_hi &= 0xFF000000u;
	/* Loaded values: keep remote IRR, fall back to one-shot. */
	for (int i = 0; i < LVT_COUNT; i++)
		l->lvt[i] = lvt_sanitize(l, i, l->lvt[i],
					 l->lvt[i] & LAPIC_REMOTE_IRR);
	l->timer_dcr &= DCR_WRITABLE;
	l->lint0_level = !!l->lint0_level;
	l->lint1_level = !!l->lint1_level;
	l->extint_msg = !!l->extint_msg;
	/* Vectors 0-15 never reach IRR or ISR. */
	l->irr[0] &= ~0xFFFFu;
	l->isr[0] &= ~0xFFFFu;
}

static void lapic_pre_save(void *opaque)
{
	struct lapic *l = opaque;

	l->saved_now = now(l);
}

/* Deadlines are virtual times: move them by however much the clock we
 * load under differs from the one we saved under. */
static int lapic_post_load(void *opaque)
{
	struct lapic *l = opaque;
	uint64_t t = now(l);

	lapic_sanitize(l);
	if (l->timer_deadline != DEADLINE_NONE) {
		uint64_t left = l->timer_deadline > l->saved_now ?
				l->timer_deadline - l->saved_now : 0;
		if (left > DEADLINE_LIMIT &&
		    timer_mode(l) != LAPIC_TIMER_TSC_DEADLINE)
			left = DEADLINE_LIMIT;
		l->timer_deadline = t + left;
		if (l->timer_deadline == DEADLINE_NONE)
			l->timer_deadline = 1;
	}
	timer_rearm(l);
	return 0;
}

#define L struct lapic
static const struct modvm_state_field lapic_fields[] = {
	MODVM_F_U64(L, apic_base),
	MODVM_F_U32(L, id),
	MODVM_F_U32(L, tpr),
	MODVM_F_U32(L, ldr),
	MODVM_F_U32(L, dfr),
	MODVM_F_U32(L, svr),
	MODVM_F_U32A(L, isr, 8),
	MODVM_F_U32A(L, tmr, 8),
	MODVM_F_U32A(L, irr, 8),
	MODVM_F_U32(L, esr),
	MODVM_F_U32(L, esr_pending),
	MODVM_F_U32(L, icr_lo),
	MODVM_F_U32(L, icr_hi),
	MODVM_F_U32A(L, lvt, 6),
	MODVM_F_U32(L, timer_initial),
	MODVM_F_U32(L, timer_dcr),
	MODVM_F_U64(L, timer_deadline),
	MODVM_F_U64(L, tsc_deadline),
	MODVM_F_U8(L, lint0_level),
	MODVM_F_U8(L, lint1_level),
	MODVM_F_U8(L, extint_msg),
	MODVM_F_U64(L, saved_now),
	{ .name = "timer_backlog", .type = MODVM_FIELD_U32,
	  .offset = offsetof(L, timer_backlog), .since = 2 },
};
#undef L

const struct modvm_state_section lapic_state_section = {
	.name = "lapic",
	.version = 2,
	.min_version = 1,
	.fields = lapic_fields,
	.nfields = MODVM_COUNTOF(lapic_fields),
	.pre_save = lapic_pre_save,
	.post_load = lapic_post_load,
};

/* ---- the 1 KiB register page ------------------------------------------- */

static void put32(uint8_t *page, unsigned off, uint32_t v)
{
	memcpy(page + off, &v, 4); /* little-endian, as KVM's page */
}

static uint32_t get32(const uint8_t *page, unsigned off)
{
	uint32_t v;

	memcpy(&v, page + off, 4);
	return v;
}

void lapic_to_page(struct lapic *l, uint8_t page[LAPIC_PAGE_SIZE])
{
	memset(page, 0, LAPIC_PAGE_SIZE);
	put32(page, LAPIC_ID, lapic_x2apic_mode(l) ? l->id : l->id << 24);
	put32(page, LAPIC_LVR, LAPIC_VERSION);
	put32(page, LAPIC_TPR, l->tpr);
	put32(page, LAPIC_APR, lapic_apr(l));
	put32(page, LAPIC_PPR, lapic_ppr(l));
	put32(page, LAPIC_LDR, l->ldr);
	put32(page, LAPIC_DFR, l->dfr);
	put32(page, LAPIC_SVR, l->svr);
	for (unsigned i = 0; i < 8; i++) {
		put32(page, LAPIC_ISR + 0x10 * i, l->isr[i]);
		put32(page, LAPIC_TMR + 0x10 * i, l->tmr[i]);
		put32(page, LAPIC_IRR + 0x10 * i, l->irr[i]);
	}
	put32(page, LAPIC_ESR, l->esr);
	put32(page, LAPIC_ICR_LO, l->icr_lo);
	put32(page, LAPIC_ICR_HI, l->icr_hi);
	for (unsigned i = 0; i < LVT_COUNT; i++)
		put32(page, LAPIC_LVT_TIMER + 0x10 * i, l->lvt[i]);
	put32(page, LAPIC_TIMER_ICR, l->timer_initial);
	put32(page, LAPIC_TIMER_CCR, timer_current(l));
	put32(page, LAPIC_TIMER_DCR, l->timer_dcr);
}

void lapic_from_page(struct lapic *l, const uint8_t page[LAPIC_PAGE_SIZE])
{
	uint32_t id = get32(page, LAPIC_ID), ccr;

	l->id = lapic_x2apic_mode(l) ? id : id >> 24;
	l->tpr = get32(page, LAPIC_TPR);
	l->ldr = get32(page, LAPIC_LDR);
	l->dfr = get32(page, LAPIC_DFR);
	l->svr = get32(page, LAPIC_SVR);
	for (unsigned i = 0; i < 8; i++) {
		l->isr[i] = get32(page, LAPIC_ISR + 0x10 * i);
		l->tmr[i] = get32(page, LAPIC_TMR + 0x10 * i);
		l->irr[i] = get32(page, LAPIC_IRR + 0x10 * i);
	}
	l->esr = get32(page, LAPIC_ESR);
	l->esr_pending = 0;
	l->icr_lo = get32(page, LAPIC_ICR_LO);
	l->icr_hi = get32(page, LAPIC_ICR_HI);
	for (unsigned i = 0; i < LVT_COUNT; i++)
		l->lvt[i] = get32(page, LAPIC_LVT_TIMER + 0x10 * i);
	l->timer_dcr = get32(page, LAPIC_TIMER_DCR);
	l->extint_msg = 0;
	lapic_sanitize(l);
	/* The countdown restarts from the saved current count. The TSC
	 * deadline is an MSR: lapic_write_tsc_deadline re-arms it. */
	l->timer_initial = get32(page, LAPIC_TIMER_ICR);
	ccr = get32(page, LAPIC_TIMER_CCR);
	if (ccr > l->timer_initial)
		ccr = l->timer_initial;
	l->tsc_deadline = 0;
	l->timer_deadline = DEADLINE_NONE;
	if (timer_mode(l) != LAPIC_TIMER_TSC_DEADLINE && ccr)
		l->timer_deadline = now(l) + (uint64_t)ccr * timer_tick_ns(l);
	timer_rearm(l);
}
