/* The virtual clock (stops while the VM is paused) and one-shot timers on
 * it. A seqlock lets vCPU threads read the clock without the machine lock.
 * The running clock follows host time but never passes the earliest armed
 * timer's deadline before that timer ran (the gate): on a loaded host the
 * event loop may run a timer late, and the guest must not read a time
 * (PIT, PM timer, RTC, TSC) past a deadline whose interrupt it has not got;
 * time then stands at the deadline for that long, and moves on after. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

/* ---- pacing (struct timer_pace in machine.h) ---------------------------- */

/* CPU a vCPU thread must have had since the edge: enough to take an
 * interrupt and more than a futex wake-up costs on a nested host. An
 * interrupt acknowledge (INTA, the 8259 path) ends the wait sooner. */
#define PACE_CPU_NS 200000ull
#define PACE_MAX_NS 100000000ull   /* never hold a timer longer (host time) */
#define PACE_POLL_NS 200000        /* re-check a waiting timer this often */

static uint64_t thread_cpu_ns(clockid_t clk)
{
	struct timespec ts;

	if (clock_gettime(clk, &ts))
		return UINT64_MAX; /* gone: never wait for it */
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The scheduler state of a thread of this process ('R' runnable, 'S'
 * sleeping, ...) from its /proc/self/task/TID/stat, opened once by the
 * thread itself (the sandbox lets the event loop open no path), or 0 when
 * it cannot be read. pread at 0 renders the file afresh. */
static char thread_state(int stat_fd)
{
	char buf[512], *p;
	ssize_t n;

	if (stat_fd < 0)
		return 0;
	n = pread(stat_fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	p = strrchr(buf, ')'); /* the name may hold spaces and parentheses */
	return p && p[1] == ' ' ? p[2] : 0;
}

void pace_vcpu_enter(struct machine *m, unsigned index)
{
	clockid_t clk;

	machine_lock(m);
	if (index < m->pace.n && !pthread_getcpuclockid(pthread_self(), &clk)) {
		struct vcpu_pace *v = &m->pace.v[index];
		char path[64];
		snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)gettid());
		v->cpu = clk;
		v->stat_fd = open(path, O_RDONLY | O_CLOEXEC);
		v->mark = thread_cpu_ns(clk);
		v->live = true;
	}
	machine_unlock(m);
}

void pace_vcpu_leave(struct machine *m, unsigned index)
{
	machine_lock(m);
	if (index < m->pace.n && m->pace.v[index].live) {
		m->pace.v[index].live = false;
		if (m->pace.v[index].stat_fd >= 0)
			close(m->pace.v[index].stat_fd);
		m->pace.v[index].stat_fd = -1;
	}
	machine_unlock(m);
}

static void pace_arm(struct machine *m)
{
	struct timer_pace *p = &m->pace;
	bool any = false;

	for (unsigned i = 0; i < p->n; i++) {
		if (!p->v[i].live)
			continue;
		p->v[i].mark = thread_cpu_ns(p->v[i].cpu);
		any = true;
	}
	p->armed = any;
	p->armed_host = host_monotonic_ns();
	p->acks = m->irq.acks;
}

/* Must the next timer wait for a vCPU? One that sleeps (halted, parked)
 * is no reason to: whatever wakes it lets it take the interrupt first;
 * but one that sleeps on the machine lock must get it and run on. */
static bool pace_holds(struct machine *m)
{
	struct timer_pace *p = &m->pace;

	if (!p->armed)
		return false;
	if (m->irq.acks != p->acks) {
		p->armed = false; /* the guest took an interrupt */
		return false;
	}
	if (host_monotonic_ns() - p->armed_host > PACE_MAX_NS) {
		p->overruns++;
		p->armed = false;
		return false;
	}
	for (unsigned i = 0; i < p->n; i++) {
		struct vcpu_pace *v = &p->v[i];
		uint64_t now;

		if (!v->live || v->mark == UINT64_MAX)
			continue;
		now = thread_cpu_ns(v->cpu);
		if (now == UINT64_MAX || now - v->mark >= PACE_CPU_NS)
			continue;
		/* asleep: halted, parked, or waiting for the machine lock we
		 * hold (then it must get it first) */
		if (thread_state(v->stat_fd) != 'R' &&
		    !atomic_load_explicit(&m->lock_waiters, memory_order_relaxed))
			continue;
		p->holds++;
		return true;
	}
	p->armed = false;
	return false;
}

int64_t pace_poll_ns(struct machine *m)
{
	return m->pace.waiting ? PACE_POLL_NS : -1;
}

/* Bound the work per round so a timer re-armed in the past cannot hang the
 * loop; the rest runs next round. */
#define TIMER_BURST 4096

int timers_run_due(struct machine *m, uint64_t now)
{
	int ran = 0;

	machine_lock(m);
	m->pace.waiting = false;
	while (ran < TIMER_BURST) {
		modvm_timer *due = NULL;
		unsigned long ev;

		for (modvm_timer *t = m->timers; t; t = t->next)
			if (t->armed && t->deadline <= now &&
			    (!due || t->deadline < due->deadline))
				due = t;
		if (!due)
			break;
		if (pace_holds(m)) {
			m->pace.waiting = true;
			break;
		}
		due->armed = false;
		ev = atomic_load_explicit(&m->irq.events, memory_order_relaxed);
		due->cb(due->opaque);
		ran++;
		if (atomic_load_explicit(&m->irq.events, memory_order_relaxed) != ev)
			pace_arm(m);
	}
	update_gate(m);
	machine_unlock(m);
	return ran;
}
