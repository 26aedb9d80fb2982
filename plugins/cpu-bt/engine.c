/* cpu-bt: the cpu-engine plugin. One interpreter (struct bt_cpu) per vCPU,
 * run on the core's vCPU thread; guest RAM through host->mem_ptr, ports
 * and MMIO through the host's dispatch, the local APIC through apic.c.
 * HLT sleeps on a condition variable until an interrupt, the APIC timer
 * or a kick; a kick is seen within one instruction.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "jit.h"

#define RUN_BUDGET 4096  /* instructions between timer and kick checks */
#define HALT_MAX_NS 10000000ull /* re-check a halted vCPU every 10 ms */

static void *bus_ram_ptr(void *o, uint64_t gpa, uint64_t len)
{
	struct bt_vcpu *v = o;

	/* The APIC page is intercepted even where RAM lies below it. */
	if ((gpa >> 12) == (v->cpu.s.msr.apic_base >> 12) && v->apic)
		return NULL;
	return v->vm->host->mem_ptr(v->vm->inst, gpa, len);
}

static void bus_ram_dirty(void *o, uint64_t gpa, uint64_t len)
{
	struct bt_vcpu *v = o;

	v->vm->host->mem_dirty(v->vm->inst, gpa, len);
}

static void bus_mmio_read(void *o, uint64_t gpa, void *data, unsigned size)
{
	struct bt_vcpu *v = o;

	if (bt_apic_mmio(v, gpa, data, size, false)) {
		bt_apic_observe(v, v->vm->host->clock_ns(v->vm->inst));
		return;
	}
	if (!v->vm->host->mmio_read(v->vm->inst, gpa, data, size))
		modvm_log(v->vm->host, v->vm->inst, MODVM_LOG_DEBUG,
			  "cpu %u: read of unclaimed address 0x%llx", v->index,
			  (unsigned long long)gpa);
	bt_apic_observe(v, v->vm->host->clock_ns(v->vm->inst));
}

static void bus_mmio_write(void *o, uint64_t gpa, const void *data,
			   unsigned size)
{
	struct bt_vcpu *v = o;

	if (bt_apic_mmio(v, gpa, (void *)data, size, true))
		return;
	if (!v->vm->host->mmio_write(v->vm->inst, gpa, data, size))
		modvm_log(v->vm->host, v->vm->inst, MODVM_LOG_DEBUG,
			  "cpu %u: write to unclaimed address 0x%llx", v->index,
			  (unsigned long long)gpa);
}

static uint64_t bus_pio_read(void *o, uint16_t port, unsigned size)
{
	struct bt_vcpu *v = o;
	uint64_t val = v->vm->host->pio_read(v->vm->inst, port, size);

	bt_apic_observe(v, v->vm->host->clock_ns(v->vm->inst));
	return val;
}

static void bus_pio_write(void *o, uint16_t port, uint64_t val, unsigned size)
{
	struct bt_vcpu *v = o;

	v->vm->host->pio_write(v->vm->inst, port, val, size);
}

static uint64_t bus_clock(void *o)
{
	struct bt_vcpu *v = o;
	uint64_t now = v->vm->host->clock_ns(v->vm->inst);

	bt_apic_observe(v, now); /* RDTSC */
	return now;
}

static bool bus_intr_pending(void *o)
{
	return bt_apic_intr_pending(o);
}

static int bus_intr_ack(void *o)
{
	return bt_apic_intr_ack(o);
}

static bool bus_wrmsr(void *o, uint32_t msr, uint64_t val)
{
	return bt_apic_wrmsr(o, msr, val);
}

static bool bus_rdmsr(void *o, uint32_t msr, uint64_t *val)
{
	return bt_apic_rdmsr(o, msr, val);
}

static uint64_t bus_cr8_read(void *o)
{
	return bt_apic_cr8_read(o);
}

static void bus_cr8_write(void *o, uint64_t val)
{
	bt_apic_cr8_write(o, val);
}

void bt_vcpu_wake(struct bt_vcpu *v)
{
	atomic_store(&v->wake, 1);
	if (v->cpu.jit)
		bt_jit_request_exit(&v->cpu);
	pthread_mutex_lock(&v->lock);
	pthread_cond_signal(&v->cond);
	pthread_mutex_unlock(&v->lock);
}

static const char *const exec_modes[] = { "translate", "interpret", NULL };

static const struct modvm_prop_desc bt_props[] = {
	MODVM_PROP_ENUM_("mode", "translate", exec_modes,
			 "translate: guest code in every mode (real, 16/32-bit protected, "
			 "compatibility, 64-bit) is translated to host code, and what the "
			 "translator leaves out (system, string, x87/SSE instructions, "
			 "single-stepping) is interpreted; interpret: the reference "
			 "interpreter only"),
	MODVM_PROP_SIZE_("translation-cache", "64M", 1ll << 20, 2ll << 30,
			 "host memory for translated code, per vCPU; flushed when full"),
	MODVM_PROP_END
};

static int probe(char *why, size_t len)
{
	snprintf(why, len, "software engine: guest code translated to host code "
		 "in every mode; system, string and x87/SSE instructions "
		 "interpreted");
	return 0;
}

static void *vm_create(const struct modvm_host *host, modvm_inst *inst,
		       unsigned ncpus)
{
	const struct modvm_cpu_model *model = host->cpu_model(inst);
	struct bt_vm *vm;
	char why[300];

	if (bt_model_check(model, why, sizeof(why))) {
		host->set_error(inst, "%s", why);
		return NULL;
	}
	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return NULL;
	vm->host = host;
	vm->inst = inst;
	vm->model = model;
	vm->ncpus = ncpus;
	vm->translate = host->prop_enum(inst, "mode") == 0;
	vm->cache_bytes = host->prop_size(inst, "translation-cache");
	vm->a20 = host->a20_enabled(inst);
	vm->vcpus = calloc(ncpus, sizeof(*vm->vcpus));
	if (!vm->vcpus) {
		free(vm);
		return NULL;
	}
	return vm;
}

static void vm_destroy(void *opaque)
{
	struct bt_vm *vm = opaque;

	free(vm->vcpus);
	free(vm);
}

static void *vcpu_create(void *opaque, unsigned index)
{
	struct bt_vm *vm = opaque;
	struct bt_vcpu *v;

	if (index >= vm->ncpus)
		return NULL;
	v = aligned_alloc(64, (sizeof(*v) + 63) & ~(size_t)63);
	if (!v)
		return NULL;
	memset(v, 0, sizeof(*v));
	v->vm = vm;
	v->index = index;
	v->bus = (struct bt_bus){
		.opaque = v, .ram_ptr = bus_ram_ptr, .ram_dirty = bus_ram_dirty,
		.mmio_read = bus_mmio_read, .mmio_write = bus_mmio_write,
		.pio_read = bus_pio_read, .pio_write = bus_pio_write,
		.clock_ns = bus_clock, .intr_pending = bus_intr_pending,
		.intr_ack = bus_intr_ack, .wrmsr = bus_wrmsr, .rdmsr = bus_rdmsr,
		.cr8_read = bus_cr8_read, .cr8_write = bus_cr8_write,
	};
	pthread_mutex_init(&v->lock, NULL);
	pthread_cond_init(&v->cond, NULL);
	bt_cpu_init(&v->cpu, &v->bus, vm->model, index);
	v->cpu.stop = &v->stop;
	v->cpu.a20_line = &vm->a20;
	if (bt_apic_create(v)) {
		vm->host->set_error(vm->inst, "cpu %u: cannot create its local APIC",
				    index);
		free(v);
		return NULL;
	}
	if (vm->translate) {
		char why[256];
		if (bt_jit_create(&v->cpu, vm->cache_bytes, why, sizeof(why))) {
			modvm_log(vm->host, vm->inst, MODVM_LOG_WARN,
				  "cpu %u: translator unavailable (%s): interpreting",
				  index, why);
		}
	}
	vm->vcpus[index] = v;
	return v;
}

static void vcpu_destroy(void *opaque)
{
	struct bt_vcpu *v = opaque;

	v->vm->vcpus[v->index] = NULL;
	bt_jit_destroy(&v->cpu);
	bt_apic_destroy(v);
	pthread_mutex_destroy(&v->lock);
	pthread_cond_destroy(&v->cond);
	free(v);
}

/* INIT and SIPI from another CPU's APIC (SDM 3A 8.4.4). */
static void handle_signals(struct bt_vcpu *v)
{
	struct bt_cpu *c = &v->cpu;

	if (atomic_exchange(&v->nmi_req, 0))
		c->nmi_pending = true;
	if (atomic_exchange(&v->init_req, 0)) {
		struct modvm_cpu_state *s = &c->s;
		uint64_t apic_base = s->msr.apic_base;
		/* An NMI from before the INIT is gone with the state it
		 * interrupted, and NMIs are unblocked (as KVM resets them):
		 * taken after the SIPI it would find no handler yet. */
		c->nmi_pending = false;
		s->ev.nmi_masked = 0;
		memset(s->gpr, 0, sizeof(s->gpr));
		s->rip = 0xFFF0;
		s->rflags = 2;
		s->cr0 = CR0_ET | CR0_CD | CR0_NW;
		s->cr2 = s->cr3 = s->cr4 = 0;
		s->msr.efer = 0;
		for (int i = 0; i < MODVM_NR_SREGS; i++) {
			memset(&s->seg[i], 0, sizeof(s->seg[i]));
			s->seg[i].limit = 0xFFFF;
			s->seg[i].type = i == BT_CS ? 0xB : 0x3;
			s->seg[i].s = 1;
			s->seg[i].present = 1;
		}
		/* SDM 3A table 10-1 (INIT column): descriptor tables at 0,
		 * limit 0xFFFF; LDTR and TR null with that limit */
		s->gdt = s->idt = (struct modvm_dtable){ .base = 0, .limit = 0xFFFF };
		s->ldt = (struct modvm_segment){ .limit = 0xFFFF, .type = 2, .present = 1 };
		s->tr = (struct modvm_segment){ .limit = 0xFFFF, .type = 0xB, .present = 1 };
		s->msr.apic_base = apic_base;
		s->halted = 1;
		c->dbg_wake = 0;
		v->wait_sipi = true;
		bt_apic_init_signal(v);
		bt_cpu_update_mode(c);
		bt_tlb_flush(c, true);
	}
	int sipi = atomic_exchange(&v->sipi_req, 0);
	if (sipi && v->wait_sipi) {
		uint8_t vec = (uint8_t)(sipi - 1);
		c->s.seg[BT_CS].selector = (uint16_t)(vec << 8);
		c->s.seg[BT_CS].base = (uint64_t)vec << 12;
		c->s.rip = 0;
		c->s.halted = 0;
		v->wait_sipi = false;
		bt_cpu_update_mode(c);
	}
}

/* Sleep until something may end the halt. With IF=0 only NMI, INIT,
 * SIPI or a kick can; an interrupt request then does not count. */
static bool halt_over(struct bt_vcpu *v, bool intr_counts)
{
	return v->stop || (intr_counts && atomic_load(&v->wake)) ||
	       atomic_load(&v->nmi_req) || atomic_load(&v->init_req) ||
	       atomic_load(&v->sipi_req);
}

static void halt_wait(struct bt_vcpu *v, uint64_t deadline, bool intr_counts)
{
	const struct modvm_host *h = v->vm->host;
	uint64_t now = h->clock_ns(v->vm->inst), wait = HALT_MAX_NS;
	struct timespec ts;

	if (deadline != UINT64_MAX)
		wait = deadline > now ? deadline - now : 0;
	if (wait > HALT_MAX_NS)
		wait = HALT_MAX_NS;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += (long)wait;
	ts.tv_sec += ts.tv_nsec / 1000000000;
	ts.tv_nsec %= 1000000000;
	pthread_mutex_lock(&v->lock);
	while (!halt_over(v, intr_counts)) {
		if (pthread_cond_timedwait(&v->cond, &v->lock, &ts) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&v->lock);
}

static enum modvm_run_status vcpu_run(void *opaque, char *err, size_t len)
{
	struct bt_vcpu *v = opaque;
	struct bt_cpu *c = &v->cpu;

	for (;;) {
		uint64_t deadline;

		if (v->stop) {
			v->stop = 0;
			return MODVM_RUN_STOPPED;
		}
		handle_signals(v);
		deadline = bt_apic_poll_timer(v);
		if (c->s.halted && !(c->nmi_pending && !v->wait_sipi)) {
			bool window = !v->wait_sipi && bt_cpu_intr_window(c);
			if (!window && !v->wait_sipi && !v->halt_reported) {
				/* A guest stuck for good is worth one line (a
				 * warning for the boot CPU; an application
				 * processor parked with CLI; HLT is what
				 * firmware and offlined CPUs do); the wait
				 * below still sleeps rather than spins. */
				modvm_log(v->vm->host, v->vm->inst,
					  v->index ? MODVM_LOG_INFO : MODVM_LOG_WARN,
					  "cpu %u: halted with interrupts disabled (IF=0) at rip 0x%llx: only an NMI, INIT or reset can wake it",
					  v->index, (unsigned long long)c->s.rip);
				v->halt_reported = true;
			}
			if (!window || !bt_apic_intr_pending(v)) {
				halt_wait(v, deadline, window);
				continue;
			}
		}
		v->halt_reported = false;
		switch (bt_cpu_run(c, RUN_BUDGET)) {
		case BT_EXIT_SHUTDOWN:
			modvm_log(v->vm->host, v->vm->inst, MODVM_LOG_WARN,
				  "cpu %u: triple fault at rip 0x%llx", v->index,
				  (unsigned long long)c->s.rip);
			c->shutdown = false;
			return MODVM_RUN_SHUTDOWN;
		case BT_EXIT_STOP:
			v->stop = 0;
			return MODVM_RUN_STOPPED;
		default:
			break;
		}
	}
}

static void vcpu_kick(void *opaque)
{
	struct bt_vcpu *v = opaque;

	v->stop = 1;
	bt_vcpu_wake(v);
	if (v->cpu.jit)
		bt_jit_request_exit(&v->cpu);
}

static int get_state(void *opaque, struct modvm_cpu_state *out)
{
	struct bt_vcpu *v = opaque;

	bt_cpu_get_state(&v->cpu, out);
	bt_apic_get_state(v, out);
	return 0;
}

static int set_state(void *opaque, const struct modvm_cpu_state *in)
{
	struct bt_vcpu *v = opaque;

	bt_cpu_set_state(&v->cpu, in);
	v->wait_sipi = in->halted && v->index > 0 &&
		       !(in->msr.apic_base & (1ull << 8)) && in->rip == 0xFFF0;
	bt_apic_set_state(v, in);
	return 0;
}

static void set_intr(void *opaque, int level)
{
	bt_apic_set_intr(opaque, level);
}

static void deliver_msi(void *opaque, uint64_t addr, uint32_t data)
{
	bt_apic_msi(opaque, addr, data);
}

/* The chipset's A20 gate: every vCPU reads it before its next
 * instruction (bt_cpu_run), so the OUT that changed it is the last one
 * to run with the old mask. */
static void set_a20(void *opaque, bool enabled)
{
	struct bt_vm *vm = opaque;

	__atomic_store_n(&vm->a20, enabled ? 1 : 0, __ATOMIC_SEQ_CST);
}

/* Device DMA or a core write into guest RAM: every vCPU drops its
 * translations of the pages before running them again. */
static void mem_written(void *opaque, uint64_t gpa, uint64_t len)
{
	struct bt_vm *vm = opaque;

	for (unsigned i = 0; i < vm->ncpus; i++) {
		struct bt_vcpu *v = vm->vcpus[i];
		if (v && v->cpu.jit)
			bt_jit_mem_written(&v->cpu, gpa, len);
	}
}

/* Dirty logging (live migration, docs/migration.md): writes are reported
 * when a TLB entry (the interpreter's, which fills the translator's) is
 * filled for writing, so each sync drops every entry, and the translator's
 * direct-store entries with them (bt_tlb_flush flushes both): the next
 * write to any page refills and reports it. The vCPUs are parked. */
static void dirty_log_set(struct bt_vm *vm, bool on)
{
	for (unsigned i = 0; i < vm->ncpus; i++) {
		struct bt_vcpu *v = vm->vcpus[i];
		if (!v)
			continue;
		v->cpu.dirty_log = on;
		bt_tlb_flush(&v->cpu, true);
	}
}

static int dirty_log_start(void *opaque)
{
	dirty_log_set(opaque, true);
	return 0;
}

static void dirty_log_sync(void *opaque)
{
	dirty_log_set(opaque, true);
}

static void dirty_log_stop(void *opaque)
{
	dirty_log_set(opaque, false);
}

static const struct modvm_cpu_engine_ops ops = {
	.size = sizeof(ops), .probe = probe, .vm_create = vm_create,
	.vm_destroy = vm_destroy, .vcpu_create = vcpu_create,
	.vcpu_destroy = vcpu_destroy, .vcpu_run = vcpu_run,
	.vcpu_kick = vcpu_kick, .get_state = get_state, .set_state = set_state,
	.set_intr = set_intr, .deliver_msi = deliver_msi, .set_a20 = set_a20,
	.mem_written = mem_written, .flags = MODVM_ENGINE_VIRTUAL_TSC,
	.dirty_log_start = dirty_log_start, .dirty_log_sync = dirty_log_sync,
	.dirty_log_stop = dirty_log_stop,
};

MODVM_PLUGIN_DEFINE(.kind = MODVM_KIND_CPU_ENGINE, .name = "cpu-bt",
		    .version = "0.1.0",
		    .description = "Software x86-64 engine: translator for real, 16/32-bit "
				   "and 64-bit code, reference interpreter for the rest",
		    .props = bt_props, .ops = &ops);
