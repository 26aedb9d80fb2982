/* Reading and writing a vCPU's whole state through the KVM ioctls, and the
 * engine's get_state/set_state on top of the conversions in kvm_state.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "kvm.h"

struct msr_buf {
	struct kvm_msrs head;
	struct kvm_msr_entry e[KVM_STATE_MAX_MSRS];
};

static int fail(struct kvm_vcpu *c, const char *what, char *err, size_t len)
{
	return kvm_err(err, len, "cpu %u: %s: %s", c->index, what, strerror(errno));
}

/* KVM_GET_XSAVE2 fills as many bytes as KVM_CAP_XSAVE2 says; only the first
 * 4 KiB are kept (bigger only with AMX permitted, which modvm never asks). */
static int get_xsave(struct kvm_vcpu *c, struct kvm_cpu_regs *k, char *err,
		     size_t len)
{
	void *big;

	if (c->vm->xsave_size <= KVM_XSAVE_BYTES)
		return ioctl(c->fd, KVM_GET_XSAVE, k->xsave) ?
			fail(c, "KVM_GET_XSAVE", err, len) : 0;
	big = aligned_alloc(64, c->vm->xsave_size);
	if (!big)
		return kvm_err(err, len, "out of memory");
	if (ioctl(c->fd, KVM_GET_XSAVE2, big)) {
		free(big);
		return fail(c, "KVM_GET_XSAVE2", err, len);
	}
	memcpy(k->xsave, big, KVM_XSAVE_BYTES);
	free(big);
	return 0;
}

static int set_xsave(struct kvm_vcpu *c, const struct kvm_cpu_regs *k,
		     char *err, size_t len)
{
	void *big;
	int r;

	if (c->vm->xsave_size <= KVM_XSAVE_BYTES)
		return ioctl(c->fd, KVM_SET_XSAVE, k->xsave) ?
			fail(c, "KVM_SET_XSAVE", err, len) : 0;
	big = aligned_alloc(64, c->vm->xsave_size);
	if (!big)
		return kvm_err(err, len, "out of memory");
	memset(big, 0, c->vm->xsave_size);
	memcpy(big, k->xsave, KVM_XSAVE_BYTES);
	r = ioctl(c->fd, KVM_SET_XSAVE, big);
	free(big);
	return r ? fail(c, "KVM_SET_XSAVE", err, len) : 0;
}

static int get_msrs(struct kvm_vcpu *c, struct kvm_cpu_regs *k, char *err,
		    size_t len)
{
	struct msr_buf b;
	int got;

	memset(&b, 0, sizeof(b));
	b.head.nmsrs = c->nmsrs;
	for (unsigned i = 0; i < c->nmsrs; i++)
		b.e[i].index = c->msrs[i];
	got = ioctl(c->fd, KVM_GET_MSRS, &b);
	if (got < 0)
		return fail(c, "KVM_GET_MSRS", err, len);
	if ((unsigned)got < c->nmsrs)
		return kvm_err(err, len, "cpu %u: KVM cannot read MSR 0x%x (%s)",
			       c->index, c->msrs[got], kvm_msr_name(c->msrs[got]));
	k->nmsrs = c->nmsrs;
	memcpy(k->msrs, b.e, c->nmsrs * sizeof(b.e[0]));
	return 0;
}

static int set_msrs(struct kvm_vcpu *c, const struct kvm_cpu_regs *k, char *err,
		    size_t len)
{
	struct msr_buf b;
	int done;

	memset(&b, 0, sizeof(b));
	b.head.nmsrs = k->nmsrs;
	memcpy(b.e, k->msrs, k->nmsrs * sizeof(b.e[0]));
	done = ioctl(c->fd, KVM_SET_MSRS, &b);
	if (done < 0)
		return fail(c, "KVM_SET_MSRS", err, len);
	if ((unsigned)done < k->nmsrs)
		return kvm_err(err, len, "cpu %u: KVM refused MSR 0x%x (%s) = 0x%llx",
			       c->index, b.e[done].index, kvm_msr_name(b.e[done].index),
			       (unsigned long long)b.e[done].data);
	return 0;
}

int kvm_vcpu_read_regs(struct kvm_vcpu *c, struct kvm_cpu_regs *k, char *err,
		       size_t len)
{
	const struct kvm_state_caps *caps = &c->caps;

	memset(k, 0, sizeof(*k));
	if (ioctl(c->fd, KVM_GET_REGS, &k->regs))
		return fail(c, "KVM_GET_REGS", err, len);
	if (ioctl(c->fd, KVM_GET_SREGS, &k->sregs))
		return fail(c, "KVM_GET_SREGS", err, len);
	if (caps->xsave ? get_xsave(c, k, err, len) :
	    (ioctl(c->fd, KVM_GET_FPU, &k->fpu) ? fail(c, "KVM_GET_FPU", err, len) : 0))
		return -1;
	if (caps->xcrs && ioctl(c->fd, KVM_GET_XCRS, &k->xcrs))
		return fail(c, "KVM_GET_XCRS", err, len);
	if (caps->events && ioctl(c->fd, KVM_GET_VCPU_EVENTS, &k->events))
		return fail(c, "KVM_GET_VCPU_EVENTS", err, len);
	if (caps->debugregs && ioctl(c->fd, KVM_GET_DEBUGREGS, &k->dregs))
		return fail(c, "KVM_GET_DEBUGREGS", err, len);
	if (get_msrs(c, k, err, len))
		return -1;
	if (caps->lapic) {
		if (ioctl(c->fd, KVM_GET_LAPIC, &k->lapic))
			return fail(c, "KVM_GET_LAPIC", err, len);
		if (ioctl(c->fd, KVM_GET_MP_STATE, &k->mp))
			return fail(c, "KVM_GET_MP_STATE", err, len);
	} else {
		k->mp.mp_state = c->uhalted ? KVM_MP_STATE_HALTED : KVM_MP_STATE_RUNNABLE;
	}
	return 0;
}

/* The order matters: control registers and EFER before anything they
 * validate, XCR0 before the XSAVE image, the APIC (its timer mode) before
 * the TSC-deadline MSR, events last as they refer to all of it. */
int kvm_vcpu_write_regs(struct kvm_vcpu *c, const struct kvm_cpu_regs *k,
			char *err, size_t len)
{
	const struct kvm_state_caps *caps = &c->caps;
	struct kvm_mp_state mp = k->mp;

	if (ioctl(c->fd, KVM_SET_SREGS, &k->sregs))
		return fail(c, "KVM_SET_SREGS", err, len);
	if (ioctl(c->fd, KVM_SET_REGS, &k->regs))
		return fail(c, "KVM_SET_REGS", err, len);
	if (caps->xcrs && ioctl(c->fd, KVM_SET_XCRS, &k->xcrs))
		return fail(c, "KVM_SET_XCRS (XCR0)", err, len);
	if (caps->xsave ? set_xsave(c, k, err, len) :
	    (ioctl(c->fd, KVM_SET_FPU, &k->fpu) ? fail(c, "KVM_SET_FPU", err, len) : 0))
		return -1;
	if (caps->lapic && ioctl(c->fd, KVM_SET_LAPIC, &k->lapic))
		return fail(c, "KVM_SET_LAPIC", err, len);
	if (set_msrs(c, k, err, len))
		return -1;
	if (caps->lapic && ioctl(c->fd, KVM_SET_MP_STATE, &mp))
		return fail(c, "KVM_SET_MP_STATE", err, len);
	if (caps->events && ioctl(c->fd, KVM_SET_VCPU_EVENTS, &k->events))
		return fail(c, "KVM_SET_VCPU_EVENTS", err, len);
	if (caps->debugregs && ioctl(c->fd, KVM_SET_DEBUGREGS, &k->dregs))
		return fail(c, "KVM_SET_DEBUGREGS", err, len);
	return 0;
}

int kvm_vcpu_get_state(struct kvm_vcpu *c, struct modvm_cpu_state *s,
		       char *err, size_t len)
{
	struct kvm_cpu_regs *k = aligned_alloc(64, sizeof(*k));
	int r;

	if (!k)
		return kvm_err(err, len, "out of memory");
	r = kvm_vcpu_read_regs(c, k, err, len);
	if (!r)
		kvm_state_from_kvm(k, &c->caps, s);
	free(k);
	return r;
}

int kvm_vcpu_set_state(struct kvm_vcpu *c, const struct modvm_cpu_state *s,
		       char *err, size_t len)
{
	struct kvm_cpu_regs *k = aligned_alloc(64, sizeof(*k));
	int r;

	if (!k)
		return kvm_err(err, len, "out of memory");
	if (s->ev.smi_pending && !c->caps.smm)
		c->vm->host->log(c->vm->inst, MODVM_LOG_WARN,
				 "cpu %u: a pending SMI is dropped: this KVM has no SMM",
				 c->index);
	memset(k, 0, sizeof(*k));
	kvm_state_to_kvm(s, &c->caps, k);
	r = kvm_vcpu_write_regs(c, k, err, len);
	free(k);
	if (r)
		return r;
	/* The state carries its own TSC: nothing to hold over. */
	c->have_mark = false;
	/* What the last exit said no longer holds for this state. */
	c->run->ready_for_interrupt_injection = 0;
	c->run->request_interrupt_window = 0;
	c->uhalted = !c->caps.lapic && s->halted == KVM_HALTED_HLT;
	c->halt_if = (s->rflags & 0x200) != 0; /* RFLAGS.IF */
	c->need_complete = false;
	return 0;
}
