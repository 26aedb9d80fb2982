/* The virtual clock (stops while the VM is paused) and one-shot timers on
 * it. A seqlock lets vCPU threads read the clock without the machine lock.
 * The running clock follows host time but never passes the earliest armed
 * timer's deadline before that timer ran (the gate): on a loaded host the
 * event loop may run a timer late, and the guest must not read a time
 * (PIT, PM timer, RTC, TSC) past a deadline whose interrupt it has not got;
 * time then stands at the deadline for that long, and moves on after. */
#include <stdlib.h>
#include <time.h>

#include "machine.h"

uint64_t host_monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void vclock_init(struct vclock *c, bool manual)
{
	struct timespec ts;

	atomic_init(&c->seq, 0);
	c->manual = manual;
	c->running = false;
	c->base_host = 0;
	c->base_virt = 0;
	atomic_init(&c->gate, UINT64_MAX);
	atomic_init(&c->last, 0);
	clock_gettime(CLOCK_REALTIME, &ts);
	c->boot_wall_ns = (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static uint64_t vclock_compute(const struct vclock *c)
{
	if (c->manual || !c->running)
		return c->base_virt;
	return c->base_virt + (host_monotonic_ns() - c->base_host);
}

/* v held at the gate, and never below a value already returned. */
static uint64_t vclock_gated(struct vclock *c, uint64_t v)
{
	uint64_t g = atomic_load_explicit(&c->gate, memory_order_acquire);
	uint64_t l = atomic_load_explicit(&c->last, memory_order_relaxed);

	if (v > g)
		v = g;
	while (v > l && !atomic_compare_exchange_weak_explicit(
				&c->last, &l, v, memory_order_relaxed,
				memory_order_relaxed))
		;
	return v > l ? v : l;
}

uint64_t vclock_now(struct vclock *c)
{
	unsigned s1, s2;
	uint64_t v;
	bool gated;

	do {
		s1 = atomic_load_explicit(&c->seq, memory_order_acquire);
		v = vclock_compute(c);
		gated = c->running && !c->manual;
		atomic_thread_fence(memory_order_acquire);
		s2 = atomic_load_explicit(&c->seq, memory_order_relaxed);
	} while ((s1 & 1) || s1 != s2);
	return gated ? vclock_gated(c, v) : v;
}

void vclock_set_gate(struct vclock *c, uint64_t deadline)
{
	atomic_store_explicit(&c->gate, deadline, memory_order_release);
}

static void write_begin(struct vclock *c)
{
	atomic_fetch_add_explicit(&c->seq, 1, memory_order_acq_rel);
}

static void write_end(struct vclock *c)
{
	atomic_fetch_add_explicit(&c->seq, 1, memory_order_release);
}

void vclock_start(struct vclock *c)
{
	if (c->running)
		return;
	write_begin(c);
	c->base_host = host_monotonic_ns();
	c->running = true;
	write_end(c);
}

void vclock_stop(struct vclock *c)
{
	if (!c->running)
		return;
	write_begin(c);
	/* Stop where readers last saw it: held at the gate, never back. */
	c->base_virt = c->manual ? vclock_compute(c) :
				   vclock_gated(c, vclock_compute(c));
	c->running = false;
	write_end(c);
}

void vclock_advance(struct vclock *c, uint64_t ns)
{
	write_begin(c);
	c->base_virt += ns;
	write_end(c);
}

/* Called with the machine lock held whenever the armed set changes. */
static void update_gate(struct machine *m)
{
	vclock_set_gate(&m->clock, timers_next(m));
}

modvm_timer *timer_create_(struct machine *m, modvm_inst *inst,
			   void (*cb)(void *), void *opaque)
{
	modvm_timer *t;

	if (!cb)
		return NULL;
	t = xcalloc(1, sizeof(*t));
	*t = (modvm_timer){ .m = m, .inst = inst, .cb = cb, .opaque = opaque };
	machine_lock(m);
	t->next = m->timers;
	m->timers = t;
	machine_unlock(m);
	return t;
}

void timer_arm(modvm_timer *t, uint64_t deadline)
{
	bool earlier;

	machine_lock(t->m);
	earlier = deadline < timers_next(t->m);
	t->deadline = deadline;
	t->armed = true;
	update_gate(t->m);
	machine_unlock(t->m);
	/* The loop may be sleeping towards a later deadline. */
	if (earlier)
		loop_wake(t->m);
}

void timer_disarm(modvm_timer *t)
{
	machine_lock(t->m);
	t->armed = false;
	update_gate(t->m);
	machine_unlock(t->m);
}

void timer_destroy(modvm_timer *t)
{
	struct machine *m = t->m;

	machine_lock(m);
	for (modvm_timer **pp = &m->timers; *pp; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	}
	update_gate(m);
	machine_unlock(m);
	free(t);
}

uint64_t timers_next(struct machine *m)
{
	uint64_t next = UINT64_MAX;

	for (modvm_timer *t = m->timers; t; t = t->next)
		if (t->armed && t->deadline < next)
			next = t->deadline;
	return next;
}

/* Bound the work per round so a timer re-armed in the past cannot hang the
 * loop; the rest runs next round. */
#define TIMER_BURST 4096

int timers_run_due(struct machine *m, uint64_t now)
{
	int ran = 0;

	machine_lock(m);
	while (ran < TIMER_BURST) {
		modvm_timer *due = NULL;
		for (modvm_timer *t = m->timers; t; t = t->next)
			if (t->armed && t->deadline <= now &&
			    (!due || t->deadline < due->deadline))
				due = t;
		if (!due)
			break;
		due->armed = false;
		due->cb(due->opaque);
		ran++;
	}
	update_gate(m);
	machine_unlock(m);
	return ran;
}
