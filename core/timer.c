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
	c->hidden_ns = 0;
	c->hides = 0;
	clock_gettime(CLOCK_REALTIME, &ts);
	c->boot_wall_ns = (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static uint64_t vclock_compute_at(const struct vclock *c, uint64_t host)
{
	if (c->manual || !c->running)
		return c->base_virt;
	return c->base_virt + (host - c->base_host);
}

static uint64_t vclock_compute(const struct vclock *c)
{
	return vclock_compute_at(c, host_monotonic_ns());
}

/* v held at the gate, and never below a value already returned. */
/* v counts as seen: no later reading is below it. Returns the highest
 * value seen. */
static uint64_t vclock_seen(struct vclock *c, uint64_t v)
{
	uint64_t l = atomic_load_explicit(&c->last, memory_order_relaxed);

	while (v > l && !atomic_compare_exchange_weak_explicit(
				&c->last, &l, v, memory_order_relaxed,
				memory_order_relaxed))
		;
	return v > l ? v : l;
}

static uint64_t vclock_gated(struct vclock *c, uint64_t v)
{
	uint64_t g = atomic_load_explicit(&c->gate, memory_order_acquire);

	return vclock_seen(c, v > g ? g : v);
}

/* vCPU waits left out of virtual time (steal_check, below) */
#define STEAL_CHECK_NS 500000ull  /* read schedstat at most this often */
#define STEAL_MIN_NS 1000000ull   /* shorter waits stay visible */
#define STEAL_SLOW_NS 200000ull   /* a step this long was a wait */

static uint64_t steal_check(struct vclock *c, bool force);

/* The clock before gating, consistent under the seqlock; *host is the host
 * time it was computed at, *gated whether the gate and `last` apply. */
static uint64_t vclock_read(struct vclock *c, uint64_t *host, bool *gated)
{
	unsigned s1, s2;
	uint64_t v;

	do {
		s1 = atomic_load_explicit(&c->seq, memory_order_acquire);
		*host = host_monotonic_ns();
		v = vclock_compute_at(c, *host);
		*gated = c->running && !c->manual;
		atomic_thread_fence(memory_order_acquire);
		s2 = atomic_load_explicit(&c->seq, memory_order_relaxed);
	} while ((s1 & 1) || s1 != s2);
	return v;
}

uint64_t vclock_now(struct vclock *c)
{
	uint64_t v, host, checked = steal_check(c, false);
	bool gated;

	for (;;) {
		v = vclock_read(c, &host, &gated);
		/* A vCPU thread descheduled between its check and here (a
		 * guest polling a timer spends most of its time in this
		 * function) checks again rather than show the wait. */
		if (!checked || host - checked < STEAL_SLOW_NS)
			break;
		checked = steal_check(c, true);
	}
	return gated ? vclock_gated(c, v) : v;
}

uint64_t vclock_peek(struct vclock *c)
{
	uint64_t v, g, l, host;
	bool gated;

	v = vclock_read(c, &host, &gated);
	if (!gated)
		return v;
	g = atomic_load_explicit(&c->gate, memory_order_acquire);
	l = atomic_load_explicit(&c->last, memory_order_relaxed);
	v = v > g ? g : v;
	return v > l ? v : l;
}

void vclock_set_gate(struct vclock *c, uint64_t deadline)
{
	atomic_store_explicit(&c->gate, deadline, memory_order_release);
}

/* Writers exclude each other (a vCPU thread hides its waits while the
 * event loop moves the gate): seq goes odd only from even. */
static void write_begin(struct vclock *c)
{
	unsigned s = atomic_load_explicit(&c->seq, memory_order_relaxed);

	for (;;) {
		if (s & 1) {
			s = atomic_load_explicit(&c->seq, memory_order_relaxed);
			continue;
		}
		if (atomic_compare_exchange_weak_explicit(&c->seq, &s, s + 1,
							  memory_order_acq_rel,
							  memory_order_relaxed))
			return;
	}
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


/* Inside write_begin/end: take up to ns out of the running clock, but only
 * what no reader saw: going below `last` would make time stand until it
 * caught up (a guest polling the PM timer would see it stopped, and Linux
 * refuses such a clocksource). */
static void hide_locked(struct vclock *c, uint64_t ns)
{
	uint64_t v = vclock_compute(c);
	uint64_t l = atomic_load_explicit(&c->last, memory_order_relaxed);
	uint64_t unseen = v > l ? v - l : 0;

	if (ns > unseen)
		ns = unseen;
	c->base_host += ns;
	c->hidden_ns += ns;
	c->hides += ns != 0;
}

void vclock_hide(struct vclock *c, uint64_t ns)
{
	if (!c->running || c->manual)
		return;
	write_begin(c);
	hide_locked(c, ns);
	write_end(c);
}

/* A running clock that stood at gate g for STEAL_MIN_NS or more goes on
 * from g instead of jumping by the time it stood. */
static void vclock_resume_at(struct vclock *c, uint64_t g)
{
	uint64_t v;

	if (!c->running || c->manual)
		return;
	write_begin(c);
	v = vclock_compute(c);
	if (v > g && v - g >= STEAL_MIN_NS)
		hide_locked(c, v - g);
	write_end(c);
}

/* ---- vCPU waits left out of virtual time -------------------------------- */

/* A descheduled vCPU thread cannot run the guest while host time goes on:
 * when it runs again, the guest's timer deadlines are long gone, and a
 * guest that programs each tick from the last one (Linux's periodic tick
 * on a one-shot timer) drops the ticks in between, so jiffies fall behind
 * the TSC and a jiffies-based watchdog marks the TSC unstable. With one
 * vCPU and an engine whose guest TSC follows this clock
 * (MODVM_ENGINE_VIRTUAL_TSC), the time its thread could not run is taken
 * out of virtual time before the thread next reads the clock: the waits on
 * a host run queue (the kernel counts them per thread: schedstat's second
 * field) and on the machine lock (its holder was descheduled, or busy).
 * Guest time stands while the vCPU cannot run. Less than STEAL_MIN_NS per
 * check stays in: wake-up latency on an idle host is no reason for a clock
 * that drifts from the host's. */

static _Thread_local struct vcpu_pace *steal_self; /* this vCPU thread's */
static _Thread_local struct vclock *steal_clock;

/* Run-queue wait of a thread so far (ns), or UINT64_MAX. */
static uint64_t read_run_delay(int fd)
{
	char buf[96];
	unsigned long long run, wait;
	ssize_t n;

	if (fd < 0)
		return UINT64_MAX;
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return UINT64_MAX;
	buf[n] = 0;
	if (sscanf(buf, "%llu %llu", &run, &wait) != 2)
		return UINT64_MAX;
	return wait;
}

void steal_note_lock_wait(uint64_t ns)
{
	if (steal_self)
		steal_self->lock_wait += ns;
}

/* On the vCPU thread of a clock its waits leave: hide the waits since the
 * last check (made at most every STEAL_CHECK_NS unless forced) and return
 * the host time the check ended; 0 on every other thread. */
static uint64_t steal_check(struct vclock *c, bool force)
{
	struct vcpu_pace *v = steal_self;
	uint64_t now, after, wait, lost;

	if (!v || steal_clock != c)
		return 0;
	now = host_monotonic_ns();
	if (!force && now - v->checked < STEAL_CHECK_NS)
		return now;
	wait = read_run_delay(v->sched_fd);
	after = host_monotonic_ns();
	v->checked = after;
	if (wait == UINT64_MAX || wait < v->run_delay)
		return after;
	/* Preempted on the way back from the read: that wait is not in
	 * `wait` yet, so it counts now and not at the next read. */
	lost = wait - v->run_delay;
	lost = lost > v->counted_ahead ? lost - v->counted_ahead : 0;
	v->counted_ahead = after - now > STEAL_SLOW_NS ? after - now : 0;
	lost += v->counted_ahead + v->lock_wait;
	v->run_delay = wait;
	v->lock_wait = 0;
	if (lost >= STEAL_MIN_NS)
		vclock_hide(c, lost);
	return after;
}

/* Called with the machine lock held whenever the armed set changes. A
 * clock that stood at the gate for STEAL_MIN_NS or more while its timer
 * waited (the event loop was descheduled, or pacing waited for the vCPU)
 * goes on from there when the gate moves, instead of jumping by the time
 * it stood, if the guest's TSC follows it (struct timer_pace). */
static void update_gate(struct machine *m)
{
	struct vclock *c = &m->clock;
	uint64_t old = atomic_load_explicit(&c->gate, memory_order_relaxed);
	uint64_t next = timers_next(m);

	if (m->pace.virtual_tsc && next > old)
		vclock_resume_at(c, old);
	vclock_set_gate(c, next);
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
		v->sched_fd = -1;
		if (m->pace.hide_steal) {
			snprintf(path, sizeof(path), "/proc/self/task/%d/schedstat",
				 (int)gettid());
			v->sched_fd = open(path, O_RDONLY | O_CLOEXEC);
			v->run_delay = read_run_delay(v->sched_fd);
			v->checked = host_monotonic_ns();
			v->counted_ahead = v->lock_wait = 0;
			if (v->run_delay != UINT64_MAX) {
				steal_self = v;
				steal_clock = &m->clock;
			}
		}
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
		if (m->pace.v[index].sched_fd >= 0)
			close(m->pace.v[index].sched_fd);
		m->pace.v[index].sched_fd = -1;
		if (steal_self == &m->pace.v[index])
			steal_self = NULL;
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
		/* its callback must not read a time before its deadline,
		 * whatever a vCPU hid since `now` was read */
		if (m->clock.running && !m->clock.manual)
			vclock_seen(&m->clock, now);
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
