/* KVM exits: port and MMIO accesses go to the core's dispatch, EOIs of
 * level-triggered IOAPIC interrupts go back to the IOAPIC, and anything
 * KVM could not do becomes an error that says where the guest was.
 * Hot path: no allocation, no logging above debug level.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "kvm.h"
#include "x86_regs.h"

static const char *exit_name(uint32_t reason)
{
	static const char *const names[] = {
		[KVM_EXIT_UNKNOWN] = "UNKNOWN", [KVM_EXIT_EXCEPTION] = "EXCEPTION",
		[KVM_EXIT_IO] = "IO", [KVM_EXIT_HYPERCALL] = "HYPERCALL",
		[KVM_EXIT_DEBUG] = "DEBUG", [KVM_EXIT_HLT] = "HLT",
		[KVM_EXIT_MMIO] = "MMIO", [KVM_EXIT_IRQ_WINDOW_OPEN] = "IRQ_WINDOW_OPEN",
		[KVM_EXIT_SHUTDOWN] = "SHUTDOWN", [KVM_EXIT_FAIL_ENTRY] = "FAIL_ENTRY",
		[KVM_EXIT_INTR] = "INTR", [KVM_EXIT_SET_TPR] = "SET_TPR",
		[KVM_EXIT_TPR_ACCESS] = "TPR_ACCESS", [KVM_EXIT_NMI] = "NMI",
		[KVM_EXIT_INTERNAL_ERROR] = "INTERNAL_ERROR",
		[KVM_EXIT_SYSTEM_EVENT] = "SYSTEM_EVENT",
		[KVM_EXIT_IOAPIC_EOI] = "IOAPIC_EOI",
		[KVM_EXIT_X86_RDMSR] = "X86_RDMSR", [KVM_EXIT_X86_WRMSR] = "X86_WRMSR",
		[KVM_EXIT_X86_BUS_LOCK] = "X86_BUS_LOCK", [KVM_EXIT_NOTIFY] = "NOTIFY",
	};

	if (reason < sizeof(names) / sizeof(names[0]) && names[reason])
		return names[reason];
	return "?";
}

static const char *cpu_mode(const struct kvm_sregs *s)
{
	if (!(s->cr0 & CR0_PE))
		return "real mode";
	if (s->efer & EFER_LMA)
		return s->cs.l ? "64-bit mode" : "compatibility mode";
	return s->cs.db ? "32-bit protected mode" : "16-bit protected mode";
}

void kvm_vcpu_where(struct kvm_vcpu *c, char *buf, size_t len)
{
	struct kvm_regs r;
	struct kvm_sregs s;

	if (ioctl(c->fd, KVM_GET_REGS, &r) || ioctl(c->fd, KVM_GET_SREGS, &s)) {
		snprintf(buf, len, "RIP unknown (%s)", strerror(errno));
		return;
	}
	snprintf(buf, len, "CS:RIP %04x:%016llx (%s, CPL %u, CR0 0x%llx, EFER 0x%llx)",
		 s.cs.selector, (unsigned long long)r.rip, cpu_mode(&s), s.ss.dpl,
		 (unsigned long long)s.cr0, (unsigned long long)s.efer);
}

static enum modvm_run_status pio(struct kvm_vcpu *c, char *err, size_t len)
{
	const struct modvm_host *h = c->vm->host;
	struct kvm_run *run = c->run;
	unsigned size = run->io.size;
	uint32_t count = run->io.count;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;

	/* String I/O puts count elements in the run page (KVM API 5.x). */
	if ((size != 1 && size != 2 && size != 4) ||
	    run->io.data_offset + (uint64_t)size * count > c->vm->run_size) {
		kvm_err(err, len, "KVM reported a bad port access "
			"(port 0x%x size %u count %u)", run->io.port, size, count);
		return MODVM_RUN_ERROR;
	}
	for (uint32_t i = 0; i < count; i++, data += size) {
		uint64_t v = 0;
		if (run->io.direction == KVM_EXIT_IO_OUT) {
			memcpy(&v, data, size);
			h->pio_write(c->vm->inst, run->io.port, v, size);
		} else {
			v = h->pio_read(c->vm->inst, run->io.port, size);
			memcpy(data, &v, size);
		}
	}
	c->need_complete = true;
	return 0;
}

static enum modvm_run_status mmio(struct kvm_vcpu *c, char *err, size_t len)
{
	const struct modvm_host *h = c->vm->host;
	struct kvm_run *run = c->run;
	unsigned size = run->mmio.len;
	bool claimed;

	if (!size || size > sizeof(run->mmio.data)) {
		kvm_err(err, len, "KVM reported a %u-byte MMIO access", size);
		return MODVM_RUN_ERROR;
	}
	if (run->mmio.is_write)
		claimed = h->mmio_write(c->vm->inst, run->mmio.phys_addr,
					run->mmio.data, size);
	else
		claimed = h->mmio_read(c->vm->inst, run->mmio.phys_addr,
				       run->mmio.data, size);
	if (!claimed)
		h->log(c->vm->inst, MODVM_LOG_DEBUG, "cpu %u: %u-byte MMIO %s at 0x%llx: "
		       "nothing there", c->index, size, run->mmio.is_write ? "write" : "read",
		       (unsigned long long)run->mmio.phys_addr);
	c->need_complete = true;
	return 0;
}

/* A guest EOI of a level-triggered vector (split irqchip): broadcast it to
 * the IOAPIC, as a real local APIC sends the EOI message on its bus. */
static void ioapic_eoi(struct kvm_vcpu *c)
{
	const struct modvm_host *h = c->vm->host;

	h->eoi_broadcast(c->vm->inst, c->run->eoi.vector);
}

/* MSRs KVM does not know: a real CPU raises #GP, so does this (error = 1);
 * they are only counted and logged, so a guest probing MSRs is visible. */
static void unknown_msr(struct kvm_vcpu *c)
{
	struct kvm_run *run = c->run;
	bool write = run->exit_reason == KVM_EXIT_X86_WRMSR;

	c->stray_msr++;
	c->vm->host->log(c->vm->inst, MODVM_LOG_DEBUG,
			 "cpu %u: %s of unknown MSR 0x%x%s: #GP", c->index,
			 write ? "WRMSR" : "RDMSR", run->msr.index, write ? " (value dropped)" : "");
	run->msr.error = 1;
	run->msr.data = 0;
	c->need_complete = true;
}

static enum modvm_run_status internal_error(struct kvm_vcpu *c, char *err,
					    size_t len)
{
	struct kvm_run *run = c->run;
	char at[160], bytes[64] = "";
	const char *what;

	kvm_vcpu_where(c, at, sizeof(at));
	switch (run->internal.suberror) {
	case KVM_INTERNAL_ERROR_EMULATION:
		what = "KVM could not emulate the instruction";
		/* struct emulation_failure overlays internal.data */
		if (run->emulation_failure.ndata >= 3 &&
		    (run->emulation_failure.flags &
		     KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) {
			unsigned n = run->emulation_failure.insn_size;
			size_t used = 0;
			if (n > 15)
				n = 15;
			for (unsigned i = 0; i < n && used + 4 < sizeof(bytes); i++)
				used += (size_t)snprintf(bytes + used, sizeof(bytes) - used,
							 "%s%02x", i ? " " : " (bytes ",
							 run->emulation_failure.insn_bytes[i]);
			if (used && used + 2 < sizeof(bytes))
				strcat(bytes, ")");
		}
		break;
	case KVM_INTERNAL_ERROR_SIMUL_EX:
		what = "KVM met an exception while delivering one";
		break;
	case KVM_INTERNAL_ERROR_DELIVERY_EV:
		what = "KVM could not deliver an event (guest IDT or stack not mapped?)";
		break;
	case KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON:
		what = "KVM met a hardware exit it does not handle";
		break;
	default:
		what = "KVM internal error";
		break;
	}
	kvm_err(err, len, "%s at %s%s (exit INTERNAL_ERROR, suberror %u)%s",
		what, at, bytes, run->internal.suberror,
		c->vm->hw_assisted ? "" :
		"; this KVM has no hardware assistance and emulates kernel-mode "
		"code, but not all of it (IRET outside real mode, for one): "
		"cpu-bt runs such guests");
	return MODVM_RUN_ERROR;
}

static enum modvm_run_status shutdown(struct kvm_vcpu *c)
{
	char at[160];

	kvm_vcpu_where(c, at, sizeof(at));
	c->vm->host->log(c->vm->inst, MODVM_LOG_WARN, "cpu %u: triple fault at %s%s",
			 c->index, at, c->vm->hw_assisted ? "" :
			 " (this KVM has no hardware assistance and cannot run "
			 "32-bit paging, among others: see docs/engines-kvm.md)");
	return MODVM_RUN_SHUTDOWN;
}

static enum modvm_run_status failure(struct kvm_vcpu *c, const char *what,
				     char *err, size_t len)
{
	char at[160];

	kvm_vcpu_where(c, at, sizeof(at));
	kvm_err(err, len, "%s at %s (exit %s, reason %u)", what, at,
		exit_name(c->run->exit_reason), c->run->exit_reason);
	return MODVM_RUN_ERROR;
}

enum modvm_run_status kvm_vcpu_exit(struct kvm_vcpu *c, char *err, size_t len)
{
	struct kvm_run *run = c->run;
	char what[96];

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		return pio(c, err, len);
	case KVM_EXIT_MMIO:
		return mmio(c, err, len);
	case KVM_EXIT_IRQ_WINDOW_OPEN:
	case KVM_EXIT_INTR:
		return 0;
	case KVM_EXIT_HLT:
		/* Only without an in-kernel APIC (with one KVM halts in the
		 * kernel; enter again if it ever comes). RIP is past the HLT. */
		if (!c->caps.lapic) {
			c->uhalted = true;
			c->halt_if = run->if_flag;
		}
		return 0;
	case KVM_EXIT_IOAPIC_EOI:
		ioapic_eoi(c);
		return 0;
	case KVM_EXIT_X86_RDMSR:
	case KVM_EXIT_X86_WRMSR:
		unknown_msr(c);
		return 0;
	case KVM_EXIT_SHUTDOWN:
		return shutdown(c);
	case KVM_EXIT_SYSTEM_EVENT:
		if (run->system_event.type == KVM_SYSTEM_EVENT_RESET ||
		    run->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN)
			return shutdown(c);
		snprintf(what, sizeof(what), "unexpected system event %u",
			 run->system_event.type);
		return failure(c, what, err, len);
	case KVM_EXIT_INTERNAL_ERROR:
		return internal_error(c, err, len);
	case KVM_EXIT_FAIL_ENTRY:
		snprintf(what, sizeof(what), "KVM could not enter the guest "
			 "(hardware reason 0x%llx)",
			 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		return failure(c, what, err, len);
	default:
		return failure(c, "unexpected KVM exit", err, len);
	}
}
