/* cpu-bt: the per-vCPU local APIC (the modvm-lapic library) hooked to the
 * interpreter: MMIO at IA32_APIC_BASE, the 8259 on LINT0 (ExtINT), MSIs,
 * IPIs between vCPUs, INIT/SIPI/NMI signals and the APIC timer, which the
 * vCPU thread polls (no host timer, so no lock order with the core). Built
 * without the library, the 8259's INTR goes straight to the CPU.
 *
 * Locking: v->lock guards the struct lapic. IPIs are queued while the
 * sender's lock is held and delivered after it is dropped, so no thread
 * ever holds two vCPU locks.
 */
#include <stdlib.h>
#include <string.h>

#include "engine.h"

#ifdef BT_HAVE_LAPIC
#include "lapic.h"

#define IPI_QUEUE 16
#define EOI_QUEUE 8

struct bt_apic {
	struct lapic l;
	uint64_t deadline;  /* next timer expiry, virtual ns */
	struct lapic_ipi q[IPI_QUEUE];
	unsigned nq;
	uint8_t eoi[EOI_QUEUE]; /* level-triggered EOIs for the IOAPICs */
	unsigned neoi;
};

static uint64_t ap_now(void *o)
{
	struct bt_vcpu *v = o;

	return v->vm->host->clock_ns(v->vm->inst);
}

static void ap_arm(void *o, uint64_t deadline)
{
	struct bt_vcpu *v = o;

	__atomic_store_n(&v->apic->deadline, deadline, __ATOMIC_RELAXED);
	atomic_store(&v->wake, 1);
	pthread_cond_signal(&v->cond);
}

static void ap_send_ipi(void *o, const struct lapic_ipi *ipi)
{
	struct bt_vcpu *v = o;

	if (v->apic->nq < IPI_QUEUE)
		v->apic->q[v->apic->nq++] = *ipi;
}

/* An EOI of a level-triggered vector: the IOAPICs clear remote IRR (and
 * send again if the pin is still asserted). Queued, as IPIs are: the
 * broadcast reaches the core's lock and every vCPU's. */
static void ap_eoi_broadcast(void *o, uint8_t vector)
{
	struct bt_vcpu *v = o;

	if (v->apic->neoi < EOI_QUEUE)
		v->apic->eoi[v->apic->neoi++] = vector;
}

static void ap_signal(void *o, enum lapic_signal sig, uint8_t vector)
{
	struct bt_vcpu *v = o;

	switch (sig) {
	case LAPIC_SIG_NMI: atomic_store(&v->nmi_req, 1); break;
	case LAPIC_SIG_INIT: atomic_store(&v->init_req, 1); break;
	case LAPIC_SIG_STARTUP: atomic_store(&v->sipi_req, vector + 1); break;
	default: break;
	}
	atomic_store(&v->wake, 1);
	pthread_cond_signal(&v->cond);
}

static void ap_notify(void *o)
{
	struct bt_vcpu *v = o;

	atomic_store(&v->wake, 1);
	pthread_cond_signal(&v->cond);
}

static const struct lapic_ops ap_ops = {
	.now = ap_now, .arm = ap_arm, .send_ipi = ap_send_ipi,
	.eoi_broadcast = ap_eoi_broadcast, .signal = ap_signal,
	.notify = ap_notify,
};

/* Deliver queued IPIs; called with no vCPU lock held. */
static void flush_ipis(struct bt_vcpu *v)
{
	struct lapic_ipi q[IPI_QUEUE];
	unsigned n;

	pthread_mutex_lock(&v->lock);
	n = v->apic->nq;
	memcpy(q, v->apic->q, n * sizeof(q[0]));
	v->apic->nq = 0;
	pthread_mutex_unlock(&v->lock);
	for (unsigned i = 0; i < n; i++) {
		for (unsigned k = 0; k < v->vm->ncpus; k++) {
			struct bt_vcpu *t = v->vm->vcpus[k];
			bool match;
			if (!t || (q[i].shorthand == LAPIC_SH_OTHERS && t == v))
				continue;
			pthread_mutex_lock(&t->lock);
			match = q[i].shorthand == LAPIC_SH_ALL ||
				q[i].shorthand == LAPIC_SH_OTHERS ||
				lapic_match_dest(&t->apic->l, q[i].dest, q[i].logical);
			if (match)
				lapic_deliver(&t->apic->l, &q[i]);
			pthread_mutex_unlock(&t->lock);
			if (match)
				bt_vcpu_wake(t);
		}
	}
}

/* Broadcast queued EOIs; called with no vCPU lock held. */
static void flush_eois(struct bt_vcpu *v)
{
	uint8_t q[EOI_QUEUE];
	unsigned n;

	pthread_mutex_lock(&v->lock);
	n = v->apic->neoi;
	memcpy(q, v->apic->eoi, n);
	v->apic->neoi = 0;
	pthread_mutex_unlock(&v->lock);
	for (unsigned i = 0; i < n && v->vm->host->eoi_broadcast; i++)
		v->vm->host->eoi_broadcast(v->vm->inst, q[i]);
}

int bt_apic_create(struct bt_vcpu *v)
{
	v->apic = calloc(1, sizeof(*v->apic));
	if (!v->apic)
		return -1;
	v->apic->deadline = UINT64_MAX;
	lapic_init(&v->apic->l, &ap_ops, v, v->index,
		   (v->index == 0 ? LAPIC_F_BSP : 0) | LAPIC_F_VIRTUAL_WIRE |
		   (v->cpu.has_x2apic ? LAPIC_F_X2APIC : 0) |
		   (v->cpu.has_tsc_deadline ? LAPIC_F_TSC_DEADLINE : 0));
	return 0;
}

void bt_apic_destroy(struct bt_vcpu *v)
{
	free(v->apic);
	v->apic = NULL;
}

void bt_apic_set_state(struct bt_vcpu *v, const struct modvm_cpu_state *s)
{
	pthread_mutex_lock(&v->lock);
	lapic_reset(&v->apic->l);
	lapic_set_base(&v->apic->l, s->msr.apic_base);
	if (s->lapic_valid)
		lapic_from_page(&v->apic->l, s->lapic);
	/* The page holds no TSC deadline (an MSR): armed again here, or a
	 * guest whose tick was a pending deadline at the save never got
	 * another timer interrupt. bt_cpu_set_state set the TSC offset. */
	if (s->msr.tsc_deadline)
		lapic_write_tsc_deadline(&v->apic->l, s->msr.tsc_deadline,
					 s->msr.tsc_deadline - v->cpu.tsc_offset);
	pthread_mutex_unlock(&v->lock);
}

void bt_apic_get_state(struct bt_vcpu *v, struct modvm_cpu_state *s)
{
	pthread_mutex_lock(&v->lock);
	lapic_to_page(&v->apic->l, s->lapic);
	s->msr.apic_base = lapic_get_base(&v->apic->l);
	/* the deadline still armed: 0 once it fired (SDM 3A 11.5.4.1) */
	s->msr.tsc_deadline = lapic_read_tsc_deadline(&v->apic->l);
	pthread_mutex_unlock(&v->lock);
	s->lapic_valid = 1;
}

bool bt_apic_mmio(struct bt_vcpu *v, uint64_t gpa, void *data, unsigned size,
		  bool write)
{
	uint64_t base = v->cpu.s.msr.apic_base & ~0xFFFull;
	uint64_t v64 = 0;

	if (gpa < base || gpa >= base + LAPIC_MMIO_SIZE ||
	    !lapic_hw_enabled(&v->apic->l) || lapic_x2apic_mode(&v->apic->l))
		return false;
	pthread_mutex_lock(&v->lock);
	if (write) {
		memcpy(&v64, data, size > 8 ? 8 : size);
		lapic_mmio_write(&v->apic->l, gpa - base, v64, size);
	} else {
		uint32_t r = lapic_mmio_read(&v->apic->l, gpa - base, size);
		memset(data, 0, size);
		memcpy(data, &r, size > 4 ? 4 : size);
	}
	pthread_mutex_unlock(&v->lock);
	if (write) {
		flush_ipis(v);
		flush_eois(v);
		/* An NMI this write sent to its own CPU (self IPI, or its own
		 * APIC ID) is taken at the next instruction boundary, as KVM
		 * injects it before re-entering the guest; handle_signals
		 * would only see it after the run slice. */
		if (atomic_exchange(&v->nmi_req, 0))
			v->cpu.nmi_pending = true;
	}
	return true;
}

bool bt_apic_intr_pending(struct bt_vcpu *v)
{
	bool r;

	if (!atomic_load(&v->wake))
		return false;
	pthread_mutex_lock(&v->lock);
	atomic_store(&v->wake, 0);
	r = lapic_extint_pending(&v->apic->l) ||
	    lapic_pending_vector(&v->apic->l) >= 0;
	if (r)
		atomic_store(&v->wake, 1);
	pthread_mutex_unlock(&v->lock);
	return r;
}

int bt_apic_intr_ack(struct bt_vcpu *v)
{
	int vec = -1;
	bool ext = false;

	pthread_mutex_lock(&v->lock);
	if (lapic_extint_pending(&v->apic->l)) {
		lapic_extint_ack(&v->apic->l);
		ext = true;
	} else {
		vec = lapic_intack(&v->apic->l);
	}
	pthread_mutex_unlock(&v->lock);
	atomic_store(&v->wake, 1); /* look again after this one */
	if (ext)
		vec = v->vm->host->intr_ack(v->vm->inst);
	return vec;
}

void bt_apic_set_intr(struct bt_vcpu *v, int level)
{
	pthread_mutex_lock(&v->lock);
	lapic_set_lint0(&v->apic->l, level);
	atomic_store(&v->wake, 1);
	pthread_cond_signal(&v->cond);
	pthread_mutex_unlock(&v->lock);
}

bool bt_apic_rdmsr(struct bt_vcpu *v, uint32_t msr, uint64_t *val)
{
	int r = -1;

	pthread_mutex_lock(&v->lock);
	if (msr >= LAPIC_MSR_X2APIC_FIRST && msr <= LAPIC_MSR_X2APIC_LAST) {
		r = lapic_msr_read(&v->apic->l, msr, val);
	} else if (msr == 0x6E0) {
		*val = lapic_read_tsc_deadline(&v->apic->l);
		r = 0;
	}
	pthread_mutex_unlock(&v->lock);
	return r == 0;
}

bool bt_apic_wrmsr(struct bt_vcpu *v, uint32_t msr, uint64_t val)
{
	int r = 0;

	if (msr >= LAPIC_MSR_X2APIC_FIRST && msr <= LAPIC_MSR_X2APIC_LAST) {
		/* as an MMIO write: the ICR queues IPIs, EOI may broadcast */
		pthread_mutex_lock(&v->lock);
		r = lapic_msr_write(&v->apic->l, msr, val);
		pthread_mutex_unlock(&v->lock);
		flush_ipis(v);
		flush_eois(v);
		if (atomic_exchange(&v->nmi_req, 0))
			v->cpu.nmi_pending = true;
		return r == 0;
	}
	pthread_mutex_lock(&v->lock);
	if (msr == LAPIC_MSR_APIC_BASE)
		r = lapic_set_base(&v->apic->l, val);
	else if (msr == 0x6E0) /* IA32_TSC_DEADLINE: TSC ticks are ns */
		lapic_write_tsc_deadline(&v->apic->l, val,
					 val ? val - v->cpu.tsc_offset : 0);
	pthread_mutex_unlock(&v->lock);
	if (msr == LAPIC_MSR_APIC_BASE)
		bt_tlb_flush(&v->cpu, true); /* the MMIO window may move */
	return r == 0;
}

/* Not through the MMIO page, which a disabled APIC does not decode: CR8
 * keeps working in every APIC state (lapic_set_cr8). */
uint64_t bt_apic_cr8_read(struct bt_vcpu *v)
{
	uint64_t cr8;

	pthread_mutex_lock(&v->lock);
	cr8 = lapic_get_cr8(&v->apic->l);
	pthread_mutex_unlock(&v->lock);
	return cr8;
}

void bt_apic_cr8_write(struct bt_vcpu *v, uint64_t val)
{
	pthread_mutex_lock(&v->lock);
	lapic_set_cr8(&v->apic->l, val);
	pthread_mutex_unlock(&v->lock);
	atomic_store(&v->wake, 1); /* a lower TPR may unmask an interrupt */
}

void bt_apic_init_signal(struct bt_vcpu *v)
{
	pthread_mutex_lock(&v->lock);
	lapic_init_signal(&v->apic->l); /* disarms the timer through ap_arm */
	pthread_mutex_unlock(&v->lock);
}

void bt_apic_msi(struct bt_vm *vm, uint64_t addr, uint32_t data)
{
	for (unsigned i = 0; i < vm->ncpus; i++) {
		struct bt_vcpu *v = vm->vcpus[i];
		bool taken;
		if (!v)
			continue;
		pthread_mutex_lock(&v->lock);
		taken = lapic_accept_msi(&v->apic->l, addr, data);
		pthread_mutex_unlock(&v->lock);
		if (taken) {
			bt_vcpu_wake(v);
			/* a lowest-priority message goes to the first taker */
			if (((data >> 8) & 7) == LAPIC_DM_LOWEST)
				return;
		}
	}
}

uint64_t bt_apic_poll_timer(struct bt_vcpu *v)
{
	uint64_t now = v->vm->host->clock_ns(v->vm->inst), d;

	pthread_mutex_lock(&v->lock);
	if (v->apic->deadline != UINT64_MAX && now >= v->apic->deadline) {
		__atomic_store_n(&v->apic->deadline, UINT64_MAX, __ATOMIC_RELAXED);
		lapic_timer_fire(&v->apic->l);
	}
	d = v->apic->deadline;
	pthread_mutex_unlock(&v->lock);
	return d;
}

/* The guest is about to see time now (a port or MMIO read, RDTSC): a timer
 * due by then fires first, so its interrupt is pending before the guest can
 * act on what it read. Between these points the run loop polls only every
 * RUN_BUDGET instructions, and a descheduled host thread could otherwise
 * show the guest a deadline gone by without its interrupt. */
void bt_apic_observe(struct bt_vcpu *v, uint64_t now)
{
	if (v->apic && __atomic_load_n(&v->apic->deadline, __ATOMIC_RELAXED) <= now)
		bt_apic_poll_timer(v);
}

#else /* no APIC library: the 8259's INTR drives the CPU directly */

int bt_apic_create(struct bt_vcpu *v)
{
	v->apic = NULL;
	return 0;
}

void bt_apic_destroy(struct bt_vcpu *v) {}
void bt_apic_set_state(struct bt_vcpu *v, const struct modvm_cpu_state *s) {}
void bt_apic_init_signal(struct bt_vcpu *v) {}

void bt_apic_get_state(struct bt_vcpu *v, struct modvm_cpu_state *s)
{
	s->lapic_valid = 0;
}

bool bt_apic_mmio(struct bt_vcpu *v, uint64_t gpa, void *data, unsigned size,
		  bool write)
{
	return false;
}

bool bt_apic_intr_pending(struct bt_vcpu *v)
{
	return atomic_load(&v->intr_level) != 0;
}

int bt_apic_intr_ack(struct bt_vcpu *v)
{
	return v->vm->host->intr_ack(v->vm->inst);
}

void bt_apic_set_intr(struct bt_vcpu *v, int level)
{
	atomic_store(&v->intr_level, level);
	if (level)
		bt_vcpu_wake(v);
}

bool bt_apic_wrmsr(struct bt_vcpu *v, uint32_t msr, uint64_t val)
{
	return true;
}

bool bt_apic_rdmsr(struct bt_vcpu *v, uint32_t msr, uint64_t *val)
{
	return false;
}

uint64_t bt_apic_cr8_read(struct bt_vcpu *v)
{
	return v->cpu.s.cr8;
}

void bt_apic_cr8_write(struct bt_vcpu *v, uint64_t val)
{
}

void bt_apic_msi(struct bt_vm *vm, uint64_t addr, uint32_t data) {}

uint64_t bt_apic_poll_timer(struct bt_vcpu *v)
{
	return UINT64_MAX;
}

void bt_apic_observe(struct bt_vcpu *v, uint64_t now) {}

#endif
