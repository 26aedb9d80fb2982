/* State description of struct modvm_cpu_state. */
#include "cpustate.h"

#include <stddef.h>

#define CS struct modvm_cpu_state
#define GPR(n, i) { .name = n, .type = MODVM_FIELD_U64, \
		    .offset = offsetof(CS, gpr) + 8 * (i) }
#define SEG(n, member) MODVM_F_STRUCT(CS, member, struct modvm_segment, seg_fields)
#define AT(n, type_, off) { .name = n, .type = type_, .offset = (off) }

static const struct modvm_state_field seg_fields[] = {
	MODVM_F_U16(struct modvm_segment, selector),
	MODVM_F_U64(struct modvm_segment, base),
	MODVM_F_U32(struct modvm_segment, limit),
	MODVM_F_U8(struct modvm_segment, type),
	MODVM_F_U8(struct modvm_segment, s),
	MODVM_F_U8(struct modvm_segment, dpl),
	MODVM_F_U8(struct modvm_segment, present),
	MODVM_F_U8(struct modvm_segment, avl),
	MODVM_F_U8(struct modvm_segment, l),
	MODVM_F_U8(struct modvm_segment, db),
	MODVM_F_U8(struct modvm_segment, g),
	MODVM_F_U8(struct modvm_segment, unusable),
};

static const struct modvm_state_field dt_fields[] = {
	MODVM_F_U64(struct modvm_dtable, base),
	MODVM_F_U16(struct modvm_dtable, limit),
};

#define SEGN(n, idx)                                                         \
	{ .name = n, .type = MODVM_FIELD_STRUCT, .count = 1,                 \
	  .offset = offsetof(CS, seg) + (idx) * sizeof(struct modvm_segment),\
	  .stride = sizeof(struct modvm_segment), .sub = seg_fields,         \
	  .nsub = MODVM_COUNTOF(seg_fields) }
#define MSR(f) { .name = #f, .type = MODVM_FIELD_U64, \
		 .offset = offsetof(CS, msr) + offsetof(struct modvm_msrs, f) }
#define MSRA(f, n) { .name = #f, .type = MODVM_FIELD_U64, .count = n, \
		     .offset = offsetof(CS, msr) + offsetof(struct modvm_msrs, f) }
#define EV(f, t) { .name = #f, .type = t, \
		   .offset = offsetof(CS, ev) + offsetof(struct modvm_cpu_events, f) }

static const struct modvm_state_field cpu_fields[] = {
	GPR("rax", MODVM_RAX), GPR("rcx", MODVM_RCX), GPR("rdx", MODVM_RDX),
	GPR("rbx", MODVM_RBX), GPR("rsp", MODVM_RSP), GPR("rbp", MODVM_RBP),
	GPR("rsi", MODVM_RSI), GPR("rdi", MODVM_RDI), GPR("r8", MODVM_R8),
	GPR("r9", MODVM_R9), GPR("r10", MODVM_R10), GPR("r11", MODVM_R11),
	GPR("r12", MODVM_R12), GPR("r13", MODVM_R13), GPR("r14", MODVM_R14),
	GPR("r15", MODVM_R15),
	MODVM_F_U64(CS, rip),
	MODVM_F_U64(CS, rflags),
	SEGN("es", MODVM_ES), SEGN("cs", MODVM_CS), SEGN("ss", MODVM_SS),
	SEGN("ds", MODVM_DS), SEGN("fs", MODVM_FS), SEGN("gs", MODVM_GS),
	MODVM_F_STRUCT(CS, ldt, struct modvm_segment, seg_fields),
	MODVM_F_STRUCT(CS, tr, struct modvm_segment, seg_fields),
	MODVM_F_STRUCT(CS, gdt, struct modvm_dtable, dt_fields),
	MODVM_F_STRUCT(CS, idt, struct modvm_dtable, dt_fields),
	MODVM_F_U64(CS, cr0), MODVM_F_U64(CS, cr2), MODVM_F_U64(CS, cr3),
	MODVM_F_U64(CS, cr4), MODVM_F_U64(CS, cr8), MODVM_F_U64(CS, xcr0),
	MODVM_F_U64A(CS, dr, 4), MODVM_F_U64(CS, dr6), MODVM_F_U64(CS, dr7),
	MSR(efer), MSR(star), MSR(lstar), MSR(cstar), MSR(sfmask),
	MSR(kernel_gs_base), MSR(sysenter_cs), MSR(sysenter_esp),
	MSR(sysenter_eip), MSR(tsc), MSR(tsc_aux), MSR(tsc_deadline),
	MSR(pat), MSR(apic_base), MSR(misc_enable), MSR(spec_ctrl),
	MSR(mtrr_def_type), MSRA(mtrr_fixed, 11), MSRA(mtrr_var, 16),
	EV(exception_pending, MODVM_FIELD_U8),
	EV(exception_injected, MODVM_FIELD_U8),
	EV(exception_vector, MODVM_FIELD_U8),
	EV(exception_has_error, MODVM_FIELD_U8),
	EV(exception_error, MODVM_FIELD_U32),
	EV(exception_payload, MODVM_FIELD_U64),
	EV(interrupt_injected, MODVM_FIELD_U8),
	EV(interrupt_vector, MODVM_FIELD_U8),
	EV(interrupt_soft, MODVM_FIELD_U8),
	EV(interrupt_shadow, MODVM_FIELD_U8),
	EV(nmi_injected, MODVM_FIELD_U8),
	EV(nmi_pending, MODVM_FIELD_U8),
	EV(nmi_masked, MODVM_FIELD_U8),
	EV(smi_pending, MODVM_FIELD_U8),
	MODVM_F_U8(CS, halted),
	MODVM_F_BYTES(CS, xsave),
	MODVM_F_U8(CS, lapic_valid),
	MODVM_F_BYTES(CS, lapic),
	MODVM_F_U64_V(CS, pkrs, 2),
};

const struct modvm_state_section cpu_state_section = {
	.name = "cpu",
	.version = 2,    /* 2: pkrs */
	.min_version = 1,
	.fields = cpu_fields,
	.nfields = MODVM_COUNTOF(cpu_fields),
};
