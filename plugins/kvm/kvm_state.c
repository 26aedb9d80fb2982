/* Conversion between the canonical vCPU state (<modvm/cpu.h>) and the KVM
 * structures, both ways, without touching /dev/kvm: unit tests check that
 * state -> KVM -> state gives back every field KVM can hold.
 */
#include <string.h>

#include "kvm.h"

/* MSR numbers (Intel SDM vol. 4 ch. 2, AMD APM vol. 2 appendix A). */
#define MSR_IA32_TSC 0x10
#define MSR_IA32_SPEC_CTRL 0x48
#define MSR_IA32_SYSENTER_CS 0x174
#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_IA32_SYSENTER_EIP 0x176
#define MSR_IA32_MISC_ENABLE 0x1A0
#define MSR_MTRR_PHYSBASE0 0x200
#define MSR_MTRR_FIX64K_00000 0x250
#define MSR_MTRR_FIX16K_80000 0x258
#define MSR_MTRR_FIX16K_A0000 0x259
#define MSR_MTRR_FIX4K_C0000 0x268
#define MSR_IA32_PAT 0x277
#define MSR_MTRR_DEF_TYPE 0x2FF
#define MSR_IA32_TSC_DEADLINE 0x6E0
#define MSR_IA32_PKRS 0x6E1
#define MSR_STAR 0xC0000081
#define MSR_LSTAR 0xC0000082
#define MSR_CSTAR 0xC0000083
#define MSR_SFMASK 0xC0000084
#define MSR_KERNEL_GS_BASE 0xC0000102
#define MSR_TSC_AUX 0xC0000103

#define PF_VECTOR 14
#define DB_VECTOR 1
/* DR6 bits that read as 1 when inactive (SDM 3B 18.2.3); KVM's #DB payload
 * holds DR6 with these inverted, so that payload bits mean "happened". */
#define DR6_ACTIVE_LOW 0xFFFF0FF0ull
#define DR6_TRAP_BITS 0xFull
#define DR6_INIT 0xFFFF0FF0ull
#define DR7_INIT 0x400ull
#define XSTATE_BV_OFFSET 512
#define XFEATURE_X87_SSE 0x3ull

struct msr_map {
	uint32_t index;
	size_t offset;      /* in struct modvm_cpu_state */
	const char *name;
};

#define M(idx, field) { (idx), offsetof(struct modvm_cpu_state, msr.field), #field }
#define N(idx, field, name) { (idx), offsetof(struct modvm_cpu_state, msr.field), name }
#define FIX4K(i, a) N(MSR_MTRR_FIX4K_C0000 + (i), mtrr_fixed[3 + (i)], "mtrr_fix4k_" a)
#define VAR(n) N(MSR_MTRR_PHYSBASE0 + 2 * (n), mtrr_var[2 * (n)], "mtrr_physbase" #n), \
	N(MSR_MTRR_PHYSBASE0 + 2 * (n) + 1, mtrr_var[2 * (n) + 1], "mtrr_physmask" #n)

/* Order matters when setting: the TSC before the TSC deadline (an absolute
 * TSC value KVM compares with the guest TSC), the MTRR ranges before the
 * default type that enables them. */
static const struct msr_map msr_map[] = {
	M(MSR_IA32_TSC, tsc),
	M(MSR_STAR, star), M(MSR_LSTAR, lstar), M(MSR_CSTAR, cstar),
	M(MSR_SFMASK, sfmask), M(MSR_KERNEL_GS_BASE, kernel_gs_base),
	M(MSR_IA32_SYSENTER_CS, sysenter_cs),
	M(MSR_IA32_SYSENTER_ESP, sysenter_esp),
	M(MSR_IA32_SYSENTER_EIP, sysenter_eip),
	M(MSR_TSC_AUX, tsc_aux), M(MSR_IA32_PAT, pat),
	M(MSR_IA32_MISC_ENABLE, misc_enable), M(MSR_IA32_SPEC_CTRL, spec_ctrl),
	N(MSR_MTRR_FIX64K_00000, mtrr_fixed[0], "mtrr_fix64k_00000"),
	N(MSR_MTRR_FIX16K_80000, mtrr_fixed[1], "mtrr_fix16k_80000"),
	N(MSR_MTRR_FIX16K_A0000, mtrr_fixed[2], "mtrr_fix16k_a0000"),
	FIX4K(0, "c0000"), FIX4K(1, "c8000"), FIX4K(2, "d0000"), FIX4K(3, "d8000"),
	FIX4K(4, "e0000"), FIX4K(5, "e8000"), FIX4K(6, "f0000"), FIX4K(7, "f8000"),
	VAR(0), VAR(1), VAR(2), VAR(3), VAR(4), VAR(5), VAR(6), VAR(7),
	M(MSR_MTRR_DEF_TYPE, mtrr_def_type),
	{ MSR_IA32_PKRS, offsetof(struct modvm_cpu_state, pkrs), "pkrs" },
	M(MSR_IA32_TSC_DEADLINE, tsc_deadline),
};

#define NMSR_MAP (sizeof(msr_map) / sizeof(msr_map[0]))
_Static_assert(NMSR_MAP <= KVM_STATE_MAX_MSRS, "KVM_STATE_MAX_MSRS too small");

unsigned kvm_canonical_msr_count(void)
{
	return NMSR_MAP;
}

uint32_t kvm_canonical_msr(unsigned i)
{
	return i < NMSR_MAP ? msr_map[i].index : 0;
}

static const struct msr_map *msr_find(uint32_t index)
{
	for (unsigned i = 0; i < NMSR_MAP; i++)
		if (msr_map[i].index == index)
			return &msr_map[i];
	return NULL;
}

const char *kvm_msr_name(uint32_t index)
{
	const struct msr_map *m = msr_find(index);

	return m ? m->name : "unknown";
}

static bool msr_listed(const struct kvm_state_caps *caps, uint32_t index)
{
	for (unsigned i = 0; i < caps->nmsrs; i++)
		if (caps->msrs[i] == index)
			return true;
	return false;
}

static uint64_t *msr_field(struct modvm_cpu_state *m, const struct msr_map *e)
{
	return (uint64_t *)((uint8_t *)m + e->offset);
}

static uint64_t msr_value(const struct modvm_cpu_state *m, const struct msr_map *e)
{
	return *(const uint64_t *)((const uint8_t *)m + e->offset);
}

/* ---- general registers and segments ------------------------------------- */

static const size_t gpr_offset[MODVM_NR_GPRS] = {
	[MODVM_RAX] = offsetof(struct kvm_regs, rax),
	[MODVM_RCX] = offsetof(struct kvm_regs, rcx),
	[MODVM_RDX] = offsetof(struct kvm_regs, rdx),
	[MODVM_RBX] = offsetof(struct kvm_regs, rbx),
	[MODVM_RSP] = offsetof(struct kvm_regs, rsp),
	[MODVM_RBP] = offsetof(struct kvm_regs, rbp),
	[MODVM_RSI] = offsetof(struct kvm_regs, rsi),
	[MODVM_RDI] = offsetof(struct kvm_regs, rdi),
	[MODVM_R8] = offsetof(struct kvm_regs, r8),
	[MODVM_R9] = offsetof(struct kvm_regs, r9),
	[MODVM_R10] = offsetof(struct kvm_regs, r10),
	[MODVM_R11] = offsetof(struct kvm_regs, r11),
	[MODVM_R12] = offsetof(struct kvm_regs, r12),
	[MODVM_R13] = offsetof(struct kvm_regs, r13),
	[MODVM_R14] = offsetof(struct kvm_regs, r14),
	[MODVM_R15] = offsetof(struct kvm_regs, r15),
};

static void regs_to_kvm(const struct modvm_cpu_state *s, struct kvm_regs *k)
{
	memset(k, 0, sizeof(*k));
	for (int i = 0; i < MODVM_NR_GPRS; i++)
		*(uint64_t *)((uint8_t *)k + gpr_offset[i]) = s->gpr[i];
	k->rip = s->rip;
	k->rflags = s->rflags;
}

static void regs_from_kvm(const struct kvm_regs *k, struct modvm_cpu_state *s)
{
	for (int i = 0; i < MODVM_NR_GPRS; i++)
		s->gpr[i] = *(const uint64_t *)((const uint8_t *)k + gpr_offset[i]);
	s->rip = k->rip;
	s->rflags = k->rflags;
}

static void seg_to_kvm(const struct modvm_segment *s, struct kvm_segment *k)
{
	*k = (struct kvm_segment){
		.base = s->base, .limit = s->limit, .selector = s->selector,
		.type = s->type, .present = s->present, .dpl = s->dpl,
		.db = s->db, .s = s->s, .l = s->l, .g = s->g, .avl = s->avl,
		.unusable = s->unusable,
	};
}

static void seg_from_kvm(const struct kvm_segment *k, struct modvm_segment *s)
{
	*s = (struct modvm_segment){
		.base = k->base, .limit = k->limit, .selector = k->selector,
		.type = k->type, .present = k->present, .dpl = k->dpl,
		.db = k->db, .s = k->s, .l = k->l, .g = k->g, .avl = k->avl,
		.unusable = k->unusable,
	};
}

/* KVM's sregs name the segments; the canonical state indexes them. */
static const size_t sreg_offset[MODVM_NR_SREGS] = {
	[MODVM_ES] = offsetof(struct kvm_sregs, es),
	[MODVM_CS] = offsetof(struct kvm_sregs, cs),
	[MODVM_SS] = offsetof(struct kvm_sregs, ss),
	[MODVM_DS] = offsetof(struct kvm_sregs, ds),
	[MODVM_FS] = offsetof(struct kvm_sregs, fs),
	[MODVM_GS] = offsetof(struct kvm_sregs, gs),
};

static void sregs_to_kvm(const struct modvm_cpu_state *s, struct kvm_sregs *k)
{
	memset(k, 0, sizeof(*k));
	for (int i = 0; i < MODVM_NR_SREGS; i++)
		seg_to_kvm(&s->seg[i],
			   (struct kvm_segment *)((uint8_t *)k + sreg_offset[i]));
	seg_to_kvm(&s->ldt, &k->ldt);
	seg_to_kvm(&s->tr, &k->tr);
	k->gdt = (struct kvm_dtable){ .base = s->gdt.base, .limit = s->gdt.limit };
	k->idt = (struct kvm_dtable){ .base = s->idt.base, .limit = s->idt.limit };
	k->cr0 = s->cr0;
	k->cr2 = s->cr2;
	k->cr3 = s->cr3;
	k->cr4 = s->cr4;
	k->cr8 = s->cr8;
	k->efer = s->msr.efer;
	k->apic_base = s->msr.apic_base;
	/* An external interrupt in delivery: with vcpu events it is set
	 * there as well; without, this bitmap is the only place for it. */
	if (s->ev.interrupt_injected && !s->ev.interrupt_soft)
		k->interrupt_bitmap[s->ev.interrupt_vector / 64] |=
			1ull << (s->ev.interrupt_vector % 64);
}

static void sregs_from_kvm(const struct kvm_sregs *k,
			   const struct kvm_state_caps *caps,
			   struct modvm_cpu_state *s)
{
	for (int i = 0; i < MODVM_NR_SREGS; i++)
		seg_from_kvm((const struct kvm_segment *)((const uint8_t *)k +
							  sreg_offset[i]),
			     &s->seg[i]);
	seg_from_kvm(&k->ldt, &s->ldt);
	seg_from_kvm(&k->tr, &s->tr);
	s->gdt = (struct modvm_dtable){ .base = k->gdt.base, .limit = k->gdt.limit };
	s->idt = (struct modvm_dtable){ .base = k->idt.base, .limit = k->idt.limit };
	s->cr0 = k->cr0;
	s->cr2 = k->cr2;
	s->cr3 = k->cr3;
	s->cr4 = k->cr4;
	s->cr8 = k->cr8;
	s->msr.efer = k->efer;
	s->msr.apic_base = k->apic_base;
	if (caps->events)
		return;
	for (unsigned v = 0; v < 256; v++) {
		if (k->interrupt_bitmap[v / 64] & (1ull << (v % 64))) {
			s->ev.interrupt_injected = 1;
			s->ev.interrupt_vector = (uint8_t)v;
			break;
		}
	}
}

/* ---- pending events ------------------------------------------------------ */

static bool has_payload(uint8_t vector)
{
	return vector == PF_VECTOR || vector == DB_VECTOR;
}

/* DR6 after a #DB whose payload is p, the way the CPU merges it (and KVM's
 * kvm_deliver_exception_payload): trap bits replaced, active-low bits
 * cleared where p has them. */
static uint64_t dr6_with_payload(uint64_t dr6, uint64_t p)
{
	dr6 &= ~DR6_TRAP_BITS;
	dr6 |= DR6_ACTIVE_LOW;
	dr6 |= p;
	dr6 ^= p & DR6_ACTIVE_LOW;
	return dr6;
}

static void events_to_kvm(const struct modvm_cpu_state *s,
			  const struct kvm_state_caps *caps,
			  struct kvm_cpu_regs *k)
{
	const struct modvm_cpu_events *e = &s->ev;
	struct kvm_vcpu_events *ke = &k->events;

	memset(ke, 0, sizeof(*ke));
	ke->exception.injected = e->exception_injected;
	ke->exception.nr = e->exception_vector;
	ke->exception.has_error_code = e->exception_has_error;
	ke->exception.error_code = e->exception_error;
	if (caps->payload) {
		/* KVM_CAP_EXCEPTION_PAYLOAD: the same split as ours. */
		ke->flags |= KVM_VCPUEVENT_VALID_PAYLOAD;
		ke->exception.pending = e->exception_pending;
		ke->exception_has_payload =
			e->exception_pending && has_payload(e->exception_vector);
		ke->exception_payload = e->exception_payload;
	} else if (e->exception_pending) {
		/* Older KVM knows only "injected", with CR2/DR6 already
		 * updated: apply the payload the way delivery would. */
		ke->exception.injected = 1;
		if (e->exception_vector == PF_VECTOR)
			k->sregs.cr2 = e->exception_payload;
		else if (e->exception_vector == DB_VECTOR)
			k->dregs.dr6 = dr6_with_payload(k->dregs.dr6,
							e->exception_payload);
	}
	ke->interrupt.injected = e->interrupt_injected;
	ke->interrupt.nr = e->interrupt_vector;
	ke->interrupt.soft = e->interrupt_soft;
	ke->interrupt.shadow = e->interrupt_shadow;
	ke->nmi.injected = e->nmi_injected;
	ke->nmi.pending = e->nmi_pending;
	ke->nmi.masked = e->nmi_masked;
	ke->flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SHADOW;
	if (caps->smm) {
		ke->flags |= KVM_VCPUEVENT_VALID_SMM;
		ke->smi.pending = e->smi_pending;
	}
}

static void events_from_kvm(const struct kvm_cpu_regs *k,
			    const struct kvm_state_caps *caps,
			    struct modvm_cpu_state *s)
{
	const struct kvm_vcpu_events *ke = &k->events;
	struct modvm_cpu_events *e = &s->ev;

	e->exception_injected = ke->exception.injected;
	e->exception_pending = caps->payload ? ke->exception.pending : 0;
	e->exception_vector = ke->exception.nr;
	e->exception_has_error = ke->exception.has_error_code;
	e->exception_error = ke->exception.error_code;
	/* Canonical: a pending #PF/#DB always carries its payload. KVM may
	 * have applied it already (has_payload 0); then the payload that
	 * delivery would turn into the current CR2/DR6 is that value. */
	if (ke->exception_has_payload || !e->exception_pending)
		e->exception_payload = ke->exception_payload;
	else if (e->exception_vector == PF_VECTOR)
		e->exception_payload = k->sregs.cr2;
	else if (e->exception_vector == DB_VECTOR)
		e->exception_payload = (k->dregs.dr6 ^ DR6_ACTIVE_LOW) & 0xFFFFFFFFull;
	else
		e->exception_payload = ke->exception_payload;
	e->interrupt_injected = ke->interrupt.injected;
	e->interrupt_vector = ke->interrupt.nr;
	e->interrupt_soft = ke->interrupt.soft;
	e->interrupt_shadow = ke->interrupt.shadow;
	e->nmi_injected = ke->nmi.injected;
	e->nmi_pending = ke->nmi.pending;
	e->nmi_masked = ke->nmi.masked;
	e->smi_pending = caps->smm ? ke->smi.pending : 0;
}

/* ---- x87/SSE ------------------------------------------------------------- */

/* FXSAVE image layout, 64-bit format (SDM vol. 1 table 10-2). */
#define FX_FCW 0
#define FX_FSW 2
#define FX_FTW 4
#define FX_FOP 6
#define FX_FIP 8
#define FX_FDP 16
#define FX_MXCSR 24
#define FX_ST0 32
#define FX_XMM0 160

void kvm_fpu_to_fxsave(const struct kvm_fpu *f, uint8_t *fx)
{
	memset(fx, 0, 512);
	memcpy(fx + FX_FCW, &f->fcw, 2);
	memcpy(fx + FX_FSW, &f->fsw, 2);
	fx[FX_FTW] = f->ftwx;
	memcpy(fx + FX_FOP, &f->last_opcode, 2);
	memcpy(fx + FX_FIP, &f->last_ip, 8);
	memcpy(fx + FX_FDP, &f->last_dp, 8);
	memcpy(fx + FX_MXCSR, &f->mxcsr, 4);
	memcpy(fx + FX_ST0, f->fpr, sizeof(f->fpr));
	memcpy(fx + FX_XMM0, f->xmm, sizeof(f->xmm));
}

void kvm_fxsave_to_fpu(const uint8_t *fx, struct kvm_fpu *f)
{
	memset(f, 0, sizeof(*f));
	memcpy(&f->fcw, fx + FX_FCW, 2);
	memcpy(&f->fsw, fx + FX_FSW, 2);
	f->ftwx = fx[FX_FTW];
	memcpy(&f->last_opcode, fx + FX_FOP, 2);
	memcpy(&f->last_ip, fx + FX_FIP, 8);
	memcpy(&f->last_dp, fx + FX_FDP, 8);
	memcpy(&f->mxcsr, fx + FX_MXCSR, 4);
	memcpy(f->fpr, fx + FX_ST0, sizeof(f->fpr));
	memcpy(f->xmm, fx + FX_XMM0, sizeof(f->xmm));
}

static void fpu_to_kvm(const struct modvm_cpu_state *s,
		       const struct kvm_state_caps *caps, struct kvm_cpu_regs *k)
{
	if (caps->xsave)
		memcpy(k->xsave, s->xsave, KVM_XSAVE_BYTES);
	else
		kvm_fxsave_to_fpu(s->xsave, &k->fpu);
	memset(&k->xcrs, 0, sizeof(k->xcrs));
	k->xcrs.nr_xcrs = 1;
	k->xcrs.xcrs[0].xcr = 0;
	k->xcrs.xcrs[0].value = s->xcr0;
}

static void fpu_from_kvm(const struct kvm_cpu_regs *k,
			 const struct kvm_state_caps *caps,
			 struct modvm_cpu_state *s)
{
	uint64_t bv = XFEATURE_X87_SSE;

	if (caps->xsave) {
		memcpy(s->xsave, k->xsave, KVM_XSAVE_BYTES);
	} else {
		kvm_fpu_to_fxsave(&k->fpu, s->xsave);
		memcpy(s->xsave + XSTATE_BV_OFFSET, &bv, 8);
	}
	s->xcr0 = 1; /* x87 only: what XCR0 is when nothing set it */
	if (!caps->xcrs)
		return;
	for (unsigned i = 0; i < k->xcrs.nr_xcrs && i < KVM_MAX_XCRS; i++)
		if (k->xcrs.xcrs[i].xcr == 0)
			s->xcr0 = k->xcrs.xcrs[i].value;
}

/* ---- MSRs, debug registers, APIC, run state ------------------------------ */

static void msrs_to_kvm(const struct modvm_cpu_state *s,
			const struct kvm_state_caps *caps,
			struct kvm_cpu_regs *k)
{
	k->nmsrs = 0;
	for (unsigned i = 0; i < NMSR_MAP; i++) {
		if (!msr_listed(caps, msr_map[i].index))
			continue;
		k->msrs[k->nmsrs++] = (struct kvm_msr_entry){
			.index = msr_map[i].index,
			.data = msr_value(s, &msr_map[i]),
		};
	}
}

static void msrs_from_kvm(const struct kvm_cpu_regs *k,
			  struct modvm_cpu_state *s)
{
	for (unsigned i = 0; i < k->nmsrs && i < KVM_STATE_MAX_MSRS; i++) {
		const struct msr_map *m = msr_find(k->msrs[i].index);
		if (m)
			*msr_field(s, m) = k->msrs[i].data;
	}
}

static uint32_t mp_to_kvm(uint8_t halted)
{
	switch (halted) {
	case KVM_HALTED_HLT: return KVM_MP_STATE_HALTED;
	case KVM_HALTED_WAIT_SIPI: return KVM_MP_STATE_INIT_RECEIVED;
	case KVM_HALTED_SIPI: return KVM_MP_STATE_SIPI_RECEIVED;
	default: return KVM_MP_STATE_RUNNABLE;
	}
}

static uint8_t mp_from_kvm(uint32_t mp)
{
	switch (mp) {
	case KVM_MP_STATE_HALTED: return KVM_HALTED_HLT;
	case KVM_MP_STATE_INIT_RECEIVED: return KVM_HALTED_WAIT_SIPI;
	case KVM_MP_STATE_SIPI_RECEIVED: return KVM_HALTED_SIPI;
	default: return KVM_HALTED_NO;
	}
}

void kvm_state_to_kvm(const struct modvm_cpu_state *s,
		      const struct kvm_state_caps *caps,
		      struct kvm_cpu_regs *k)
{
	regs_to_kvm(s, &k->regs);
	sregs_to_kvm(s, &k->sregs);
	fpu_to_kvm(s, caps, k);
	memset(&k->dregs, 0, sizeof(k->dregs));
	memcpy(k->dregs.db, s->dr, sizeof(k->dregs.db));
	k->dregs.dr6 = s->dr6;
	k->dregs.dr7 = s->dr7;
	events_to_kvm(s, caps, k); /* after sregs/dregs: may fold a payload */
	msrs_to_kvm(s, caps, k);
	if (s->lapic_valid)
		memcpy(k->lapic.regs, s->lapic, sizeof(k->lapic.regs));
	else if (caps->lapic_reset)
		memcpy(k->lapic.regs, caps->lapic_reset, sizeof(k->lapic.regs));
	else
		memset(&k->lapic, 0, sizeof(k->lapic));
	k->mp.mp_state = mp_to_kvm(s->halted);
}

void kvm_state_from_kvm(const struct kvm_cpu_regs *k,
			const struct kvm_state_caps *caps,
			struct modvm_cpu_state *s)
{
	memset(s, 0, sizeof(*s));
	regs_from_kvm(&k->regs, s);
	sregs_from_kvm(&k->sregs, caps, s);
	fpu_from_kvm(k, caps, s);
	if (caps->debugregs) {
		memcpy(s->dr, k->dregs.db, sizeof(s->dr));
		s->dr6 = k->dregs.dr6;
		s->dr7 = k->dregs.dr7;
	} else {
		s->dr6 = DR6_INIT;
		s->dr7 = DR7_INIT;
	}
	if (caps->events)
		events_from_kvm(k, caps, s);
	msrs_from_kvm(k, s);
	if (caps->lapic) {
		s->lapic_valid = 1;
		memcpy(s->lapic, k->lapic.regs, sizeof(s->lapic));
	}
	s->halted = mp_from_kvm(k->mp.mp_state);
}
