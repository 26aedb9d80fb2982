/* A KVM vCPU: creation (CPUID, MSR list, reset APIC page), the run loop
 * that turns exits into port, MMIO and interrupt services of the core, and
 * the kick that makes KVM_RUN return from another thread.
 *
 * Kicks use a signal blocked in the vCPU thread except inside KVM_RUN
 * (KVM_SET_SIGNAL_MASK): a kick that arrives while the thread handles an
 * exit stays pending and makes the next KVM_RUN return at once, so none is
 * lost and no other system call of the thread is interrupted.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "kvm.h"

#define KVM_KICK_SIGNAL SIGUSR1

static pthread_once_t kick_once = PTHREAD_ONCE_INIT;

static void kick_handler(int sig)
{
	(void)sig; /* only there to make KVM_RUN return EINTR */
}

static void kick_install(void)
{
	struct sigaction sa = { .sa_handler = kick_handler, .sa_flags = SA_RESTART };

	sigemptyset(&sa.sa_mask);
	sigaction(KVM_KICK_SIGNAL, &sa, NULL);
}

/* ---- creation ------------------------------------------------------------ */

static bool msr_in_index(const struct kvm_vm *vm, uint32_t msr)
{
	/* KVM handles the MTRRs in common code without listing them. */
	if (msr >= 0x200 && msr <= 0x2FF)
		return true;
	for (unsigned i = 0; i < vm->nmsr_index; i++)
		if (vm->msr_index[i] == msr)
			return true;
	return false;
}

/* The canonical MSRs this vCPU really reads: those KVM lists, minus any
 * KVM_GET_MSRS refuses for this CPUID (it stops at the first failure). */
static void probe_msrs(struct kvm_vcpu *c)
{
	struct {
		struct kvm_msrs head;
		struct kvm_msr_entry e[KVM_STATE_MAX_MSRS];
	} buf;
	int got;

	c->nmsrs = 0;
	for (unsigned i = 0; i < kvm_canonical_msr_count(); i++)
		if (msr_in_index(c->vm, kvm_canonical_msr(i)))
			c->msrs[c->nmsrs++] = kvm_canonical_msr(i);
	for (;;) {
		memset(&buf, 0, sizeof(buf));
		buf.head.nmsrs = c->nmsrs;
		for (unsigned i = 0; i < c->nmsrs; i++)
			buf.e[i].index = c->msrs[i];
		got = ioctl(c->fd, KVM_GET_MSRS, &buf);
		if (got < 0 || (unsigned)got >= c->nmsrs)
			break;
		c->vm->host->log(c->vm->inst, MODVM_LOG_DEBUG,
				 "cpu %u: KVM does not keep MSR 0x%x (%s)", c->index,
				 c->msrs[got], kvm_msr_name(c->msrs[got]));
		memmove(&c->msrs[got], &c->msrs[got + 1],
			(c->nmsrs - (unsigned)got - 1) * sizeof(c->msrs[0]));
		c->nmsrs--;
	}
}

static void fill_caps(struct kvm_vcpu *c)
{
	const struct kvm_vm *vm = c->vm;

	c->caps = (struct kvm_state_caps){
		.xsave = vm->cap_xsave, .xcrs = vm->cap_xcrs,
		.events = vm->cap_events, .debugregs = vm->cap_debugregs,
		.payload = vm->cap_payload, .smm = vm->cap_smm,
		.lapic = vm->cfg.irqchip == KVM_IRQCHIP_SPLIT,
		.msrs = c->msrs, .nmsrs = c->nmsrs,
	};
	if (c->caps.lapic)
		c->caps.lapic_reset = c->lapic_reset;
}

static int setup_cpuid(struct kvm_vcpu *c, char *err, size_t len)
{
	struct kvm_vm *vm = c->vm;
	bool lapic = vm->cfg.irqchip == KVM_IRQCHIP_SPLIT;

	if (kvm_cpuid_build(vm->cfg.model, &vm->supported, c->index, lapic,
			    &c->cpuid, err, len))
		return -1;
	if (kvm_ioctl(c->fd, KVM_SET_CPUID2, &c->cpuid))
		return kvm_err(err, len, "KVM_SET_CPUID2: %s", strerror(errno));
	return 0;
}

/* How this KVM lets us move the guest TSC: the offset attribute (Linux
 * 5.16+, exact) or a read and write of IA32_TSC (a few us lost). */
static void probe_tsc(struct kvm_vcpu *c)
{
	struct kvm_device_attr a = { .group = KVM_VCPU_TSC_CTRL,
				     .attr = KVM_VCPU_TSC_OFFSET };
	int khz = ioctl(c->fd, KVM_GET_TSC_KHZ, 0);

	c->tsc_khz = khz > 0 ? (uint32_t)khz : 0;
	c->tsc_offset_ctrl = ioctl(c->fd, KVM_HAS_DEVICE_ATTR, &a) == 0;
}

static uint64_t host_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static int tsc_shift(struct kvm_vcpu *c, int64_t ticks)
{
	struct {
		struct kvm_msrs head;
		struct kvm_msr_entry e;
	} m = { .head.nmsrs = 1, .e.index = 0x10 /* IA32_TSC */ };
	struct kvm_device_attr a = { .group = KVM_VCPU_TSC_CTRL,
				     .attr = KVM_VCPU_TSC_OFFSET };
	uint64_t off;

	if (c->tsc_offset_ctrl) {
		a.addr = (uint64_t)(uintptr_t)&off;
		if (ioctl(c->fd, KVM_GET_DEVICE_ATTR, &a))
			return -1;
		off += (uint64_t)ticks;
		return ioctl(c->fd, KVM_SET_DEVICE_ATTR, &a) ? -1 : 0;
	}
	if (ioctl(c->fd, KVM_GET_MSRS, &m) != 1)
		return -1;
	m.e.data += (uint64_t)ticks;
	return ioctl(c->fd, KVM_SET_MSRS, &m) == 1 ? 0 : -1;
}

/* KVM's TSC runs on host time; modvm's virtual clock stops while the VM
 * is paused (or held for a snapshot). Take the stopped time back out of
 * the TSC, so the guest sees no jump, and every vCPU by the same amount
 * (the virtual clock's stop is one event for all of them). The in-kernel
 * APIC timer follows: in TSC-deadline mode it compares with this TSC; a
 * one-shot or periodic count that expired during the pause fires at once
 * on resume (docs/engines-kvm.md). */
static void tsc_hold_over_pause(struct kvm_vcpu *c)
{
	const struct modvm_host *h = c->vm->host;
	uint64_t hn, vn, stopped;

	if (!c->have_mark || !c->tsc_khz)
		return;
	c->have_mark = false;
	hn = host_ns();
	vn = h->clock_ns(c->vm->inst);
	if (hn - c->mark_host_ns <= vn - c->mark_virt_ns)
		return;
	stopped = (hn - c->mark_host_ns) - (vn - c->mark_virt_ns);
	if (stopped < 100000) /* clock reads, not a pause */
		return;
	if (tsc_shift(c, -(int64_t)(stopped / 1000 * c->tsc_khz / 1000)))
		h->log(c->vm->inst, MODVM_LOG_WARN,
		       "cpu %u: could not hold the TSC over a pause: %s",
		       c->index, strerror(errno));
}

static void tsc_mark(struct kvm_vcpu *c)
{
	c->mark_host_ns = host_ns();
	c->mark_virt_ns = c->vm->host->clock_ns(c->vm->inst);
	c->have_mark = true;
}

struct kvm_vcpu *kvm_vcpu_new(struct kvm_vm *vm, unsigned index, char *err,
			      size_t len)
{
	struct kvm_vcpu *c = calloc(1, sizeof(*c));
	struct kvm_lapic_state lapic;

	if (!c) {
		kvm_err(err, len, "out of memory");
		return NULL;
	}
	pthread_once(&kick_once, kick_install);
	c->vm = vm;
	c->index = index;
	c->run = MAP_FAILED;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->wake, NULL);
	c->fd = ioctl(vm->fd, KVM_CREATE_VCPU, (unsigned long)index);
	if (c->fd < 0) {
		kvm_err(err, len, "KVM_CREATE_VCPU: %s", strerror(errno));
		goto fail;
	}
	c->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		      c->fd, 0);
	if (c->run == MAP_FAILED) {
		kvm_err(err, len, "mapping kvm_run: %s", strerror(errno));
		goto fail;
	}
	if (setup_cpuid(c, err, len))
		goto fail;
	probe_msrs(c);
	/* KVM's LAPIC as reset (LINT0 in ExtINT mode on the BSP, SDM 3A
	 * 11.4.7.1 otherwise): what a state without an APIC page gets. */
	if (vm->cfg.irqchip == KVM_IRQCHIP_SPLIT) {
		if (kvm_ioctl(c->fd, KVM_GET_LAPIC, &lapic)) {
			kvm_err(err, len, "KVM_GET_LAPIC: %s", strerror(errno));
			goto fail;
		}
		memcpy(c->lapic_reset, lapic.regs, sizeof(c->lapic_reset));
	}
	fill_caps(c);
	probe_tsc(c);
	return c;
fail:
	kvm_vcpu_free(c);
	return NULL;
}

void kvm_vcpu_free(struct kvm_vcpu *c)
{
	if (!c)
		return;
	if (c->run != MAP_FAILED)
		munmap(c->run, c->vm->run_size);
	if (c->fd >= 0)
		close(c->fd);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->wake);
	free(c);
}

/* ---- kicks and the INTR line --------------------------------------------- */

static void wake(struct kvm_vcpu *c)
{
	pthread_mutex_lock(&c->lock);
	if (c->in_run && !pthread_equal(c->thread, pthread_self()))
		pthread_kill(c->thread, KVM_KICK_SIGNAL);
	pthread_cond_broadcast(&c->wake);
	pthread_mutex_unlock(&c->lock);
}

void kvm_vcpu_kick(struct kvm_vcpu *c)
{
	atomic_store(&c->stop, 1);
	wake(c);
}

void kvm_vcpu_set_intr(struct kvm_vcpu *c, int level)
{
	int old = atomic_exchange(&c->intr, level != 0);

	if (level && !old)
		wake(c);
}

/* The 8259's INTR: ask the controller for the vector when the vCPU can take
 * it (KVM API: ready_for_interrupt_injection, request_interrupt_window).
 * With the in-kernel LAPIC the vector reaches LINT0 as ExtINT. */
static void inject_intr(struct kvm_vcpu *c)
{
	struct kvm_run *run = c->run;
	struct kvm_interrupt irq;
	int vector;

	if (!atomic_load(&c->intr)) {
		run->request_interrupt_window = 0;
		return;
	}
	if (!run->ready_for_interrupt_injection) {
		run->request_interrupt_window = 1;
		return;
	}
	vector = c->vm->host->intr_ack(c->vm->inst);
	if (vector >= 0) {
		irq.irq = (uint32_t)vector;
		if (kvm_ioctl(c->fd, KVM_INTERRUPT, &irq))
			c->vm->host->log(c->vm->inst, MODVM_LOG_WARN,
					 "cpu %u: KVM_INTERRUPT vector 0x%x: %s",
					 c->index, vector, strerror(errno));
	}
	/* Another interrupt may be waiting behind this one. */
	run->request_interrupt_window = atomic_load(&c->intr) != 0;
}

/* Without an in-kernel APIC, HLT comes to us: wait for an interrupt the
 * guest can take (IF=1, as a real CPU would) or a kick. */
static void halt_wait(struct kvm_vcpu *c)
{
	pthread_mutex_lock(&c->lock);
	while (!atomic_load(&c->stop) && !(atomic_load(&c->intr) && c->halt_if))
		pthread_cond_wait(&c->wake, &c->lock);
	if (!atomic_load(&c->stop))
		c->uhalted = false;
	pthread_mutex_unlock(&c->lock);
}

/* ---- running ------------------------------------------------------------- */

static int enter_run(struct kvm_vcpu *c, char *err, size_t len)
{
	struct {
		struct kvm_signal_mask head;
		uint8_t set[8]; /* the kernel's sigset_t on x86-64 */
	} km;
	sigset_t kick, cur;

	sigemptyset(&kick);
	sigaddset(&kick, KVM_KICK_SIGNAL);
	pthread_sigmask(SIG_BLOCK, &kick, &cur);
	/* Inside KVM_RUN: this thread's mask without the kick signal. */
	sigdelset(&cur, KVM_KICK_SIGNAL);
	km.head.len = sizeof(km.set);
	memcpy(km.set, &cur, sizeof(km.set));
	if (kvm_ioctl(c->fd, KVM_SET_SIGNAL_MASK, &km))
		return kvm_err(err, len, "KVM_SET_SIGNAL_MASK: %s", strerror(errno));
	pthread_mutex_lock(&c->lock);
	c->thread = pthread_self();
	c->in_run = true;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

static void leave_run(struct kvm_vcpu *c)
{
	pthread_mutex_lock(&c->lock);
	c->in_run = false;
	pthread_mutex_unlock(&c->lock);
}

/* Take pending kick signals so the next KVM_RUN does not return at once. */
static void eat_kicks(void)
{
	struct timespec zero = { 0, 0 };
	sigset_t kick;

	sigemptyset(&kick);
	sigaddset(&kick, KVM_KICK_SIGNAL);
	while (sigtimedwait(&kick, NULL, &zero) > 0)
		;
}

/* Return with the vCPU at an instruction boundary: an I/O exit completes
 * only when KVM_RUN is entered again (KVM API: immediate_exit). */
static enum modvm_run_status stop_now(struct kvm_vcpu *c)
{
	atomic_store(&c->stop, 0);
	if (c->need_complete) {
		c->run->immediate_exit = 1;
		ioctl(c->fd, KVM_RUN, 0);
		c->run->immediate_exit = 0;
		c->need_complete = false;
	}
	eat_kicks();
	return MODVM_RUN_STOPPED;
}

enum modvm_run_status kvm_vcpu_run(struct kvm_vcpu *c, char *err, size_t len)
{
	enum modvm_run_status st;

	if (enter_run(c, err, len))
		return MODVM_RUN_ERROR;
	tsc_hold_over_pause(c);
	for (;;) {
		if (atomic_load(&c->stop)) {
			st = stop_now(c);
			break;
		}
		if (c->uhalted) {
			halt_wait(c);
			continue;
		}
		inject_intr(c);
		if (ioctl(c->fd, KVM_RUN, 0) < 0) {
			c->need_complete = false;
			if (errno == EINTR || errno == EAGAIN) {
				eat_kicks();
				continue;
			}
			kvm_err(err, len, "KVM_RUN: %s", strerror(errno));
			st = MODVM_RUN_ERROR;
			break;
		}
		c->need_complete = false;
		st = kvm_vcpu_exit(c, err, len);
		if (st)
			break;
	}
	tsc_mark(c);
	leave_run(c);
	return st;
}
