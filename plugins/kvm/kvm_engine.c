/* The cpu-engine interface (<modvm/cpu.h>) over the KVM layer, shared by
 * cpu-svm and cpu-vtx: properties, VM and vCPU life cycle, errors through
 * the host table. An engine adds only its vendor description.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvm.h"

static const char *const irqchip_modes[] = { "split", "none", NULL };

const struct modvm_prop_desc kvm_engine_props[] = {
	MODVM_PROP_ENUM_("irqchip", "split", irqchip_modes,
			 "split: local APICs in the kernel (IOAPIC and MSIs work, HLT "
			 "sleeps in the kernel); none: 8259 interrupts only"),
	MODVM_PROP_STRING_("device", KVM_DEVICE_PATH, "the KVM device to open"),
	MODVM_PROP_END
};

struct engine_vm {
	struct kvm_vm kvm;
	unsigned ncpus;
};

void *kvm_engine_vm_create(const struct kvm_vendor *v,
			   const struct modvm_host *host, modvm_inst *inst,
			   unsigned ncpus)
{
	struct engine_vm *e = calloc(1, sizeof(*e));
	struct kvm_vm_config cfg = {
		.device = host->prop_string(inst, "device"),
		.irqchip = (enum kvm_irqchip_mode)host->prop_enum(inst, "irqchip"),
		.vendor = v,
		.model = host->cpu_model(inst),
		.ncpus = ncpus,
	};
	char err[512];

	if (!e || !cfg.model) {
		host->set_error(inst, e ? "no CPU model" : "out of memory");
		free(e);
		return NULL;
	}
	if (kvm_probe(v, cfg.device, err, sizeof(err)) ||
	    kvm_vm_open(&e->kvm, &cfg, host, inst, err, sizeof(err)))
		goto fail;
	if (kvm_vm_map_guest_ram(&e->kvm, err, sizeof(err))) {
		kvm_vm_close(&e->kvm);
		goto fail;
	}
	e->ncpus = ncpus;
	host->log(inst, MODVM_LOG_INFO, "KVM VM: %u vCPU%s, model %s, irqchip %s%s",
		  ncpus, ncpus == 1 ? "" : "s", cfg.model->name,
		  irqchip_modes[cfg.irqchip],
		  e->kvm.hw_assisted ? "" : " (no hardware assistance)");
	return e;
fail:
	host->set_error(inst, "%s", err);
	free(e);
	return NULL;
}

void kvm_engine_vm_destroy(void *vm)
{
	struct engine_vm *e = vm;

	kvm_vm_close(&e->kvm);
	free(e);
}

void *kvm_engine_vcpu_create(void *vm, unsigned index)
{
	struct engine_vm *e = vm;
	struct kvm_vcpu *c;
	char err[512];

	c = kvm_vcpu_new(&e->kvm, index, err, sizeof(err));
	if (!c)
		e->kvm.host->set_error(e->kvm.inst, "%s", err);
	return c;
}

/* The last state of a vCPU at debug level, one line, so tests of whole
 * guests can check final registers without an SDK interface for it. */
static void log_final_state(struct kvm_vcpu *c)
{
	struct modvm_cpu_state *s = aligned_alloc(64, sizeof(*s));
	const uint64_t *g;
	char err[256];

	if (!s)
		return;
	if (kvm_vcpu_get_state(c, s, err, sizeof(err))) {
		free(s);
		return;
	}
	g = s->gpr;
	c->vm->host->log(c->vm->inst, MODVM_LOG_DEBUG,
			 "cpu %u: final state: rax=0x%llx rbx=0x%llx rcx=0x%llx "
			 "rdx=0x%llx rsi=0x%llx rdi=0x%llx rbp=0x%llx rsp=0x%llx "
			 "r8=0x%llx r9=0x%llx r10=0x%llx r11=0x%llx r12=0x%llx "
			 "r13=0x%llx r14=0x%llx r15=0x%llx rip=0x%llx rflags=0x%llx "
			 "cr0=0x%llx cr3=0x%llx cr4=0x%llx efer=0x%llx halted=%u",
			 c->index,
			 (unsigned long long)g[MODVM_RAX], (unsigned long long)g[MODVM_RBX],
			 (unsigned long long)g[MODVM_RCX], (unsigned long long)g[MODVM_RDX],
			 (unsigned long long)g[MODVM_RSI], (unsigned long long)g[MODVM_RDI],
			 (unsigned long long)g[MODVM_RBP], (unsigned long long)g[MODVM_RSP],
			 (unsigned long long)g[MODVM_R8], (unsigned long long)g[MODVM_R9],
			 (unsigned long long)g[MODVM_R10], (unsigned long long)g[MODVM_R11],
			 (unsigned long long)g[MODVM_R12], (unsigned long long)g[MODVM_R13],
			 (unsigned long long)g[MODVM_R14], (unsigned long long)g[MODVM_R15],
			 (unsigned long long)s->rip, (unsigned long long)s->rflags,
			 (unsigned long long)s->cr0, (unsigned long long)s->cr3,
			 (unsigned long long)s->cr4, (unsigned long long)s->msr.efer,
			 s->halted);
	free(s);
}

void kvm_engine_vcpu_destroy(void *vcpu)
{
	if (vcpu)
		log_final_state(vcpu);
	kvm_vcpu_free(vcpu);
}

enum modvm_run_status kvm_engine_vcpu_run(void *vcpu, char *err, size_t len)
{
	return kvm_vcpu_run(vcpu, err, len);
}

void kvm_engine_vcpu_kick(void *vcpu)
{
	kvm_vcpu_kick(vcpu);
}

int kvm_engine_get_state(void *vcpu, struct modvm_cpu_state *out)
{
	struct kvm_vcpu *c = vcpu;
	char err[256];

	if (!kvm_vcpu_get_state(c, out, err, sizeof(err)))
		return 0;
	c->vm->host->log(c->vm->inst, MODVM_LOG_ERROR, "%s", err);
	return -1;
}

int kvm_engine_set_state(void *vcpu, const struct modvm_cpu_state *in)
{
	struct kvm_vcpu *c = vcpu;
	char err[256];

	if (!kvm_vcpu_set_state(c, in, err, sizeof(err)))
		return 0;
	c->vm->host->log(c->vm->inst, MODVM_LOG_ERROR, "%s", err);
	return -1;
}

void kvm_engine_set_intr(void *vcpu, int level)
{
	kvm_vcpu_set_intr(vcpu, level);
}

void kvm_engine_deliver_msi(void *vm, uint64_t addr, uint32_t data)
{
	kvm_vm_deliver_msi(&((struct engine_vm *)vm)->kvm, addr, data);
}

/* Dirty logging for live migration (docs/migration.md): KVM's own log. */
int kvm_engine_dirty_log_start(void *vm)
{
	struct engine_vm *e = vm;

	if (kvm_vm_dirty_log(&e->kvm, true)) {
		kvm_vm_dirty_log(&e->kvm, false);
		return -1;
	}
	return 0;
}

void kvm_engine_dirty_log_sync(void *vm)
{
	struct engine_vm *e = vm;

	kvm_vm_dirty_sync(&e->kvm);
}

void kvm_engine_dirty_log_stop(void *vm)
{
	struct engine_vm *e = vm;

	kvm_vm_dirty_log(&e->kvm, false);
}
