/* cpu-bt: system instructions. Segment register loads and far transfers,
 * descriptor-table registers, control and debug registers, MSRs, CPUID
 * from the CPU model, the virtual TSC, HLT/CLI/STI, and the fast system
 * calls SYSCALL/SYSRET/SYSENTER/SYSEXIT (SDM vol. 2 and 3A ch. 2, 5).
 */
#include <string.h>

#include "alu.h"
#include "cpu_model.h"

#define MSR_TSC 0x10
#define MSR_APIC_BASE 0x1B
#define MSR_UCODE_REV 0x8B /* Intel BIOS_SIGN_ID, AMD PATCH_LEVEL */
#define MSR_SPEC_CTRL 0x48
#define MSR_MTRRCAP 0xFE
#define MSR_SYSENTER_CS 0x174
#define MSR_MCG_CAP 0x179
#define MSR_MCG_STATUS 0x17A
#define MSR_SYSENTER_ESP 0x175
#define MSR_SYSENTER_EIP 0x176
#define MSR_MISC_ENABLE 0x1A0
#define MSR_MTRR_VAR 0x200
#define MSR_MTRR_FIX64K 0x250
#define MSR_MTRR_FIX16K 0x258
#define MSR_MTRR_FIX4K 0x268
#define MSR_PAT 0x277
#define MSR_MTRR_DEF 0x2FF
#define MSR_TSC_DEADLINE 0x6E0
#define MSR_PKRS 0x6E1
#define MSR_EFER 0xC0000080
#define MSR_STAR 0xC0000081
#define MSR_LSTAR 0xC0000082
#define MSR_CSTAR 0xC0000083
#define MSR_SFMASK 0xC0000084
#define MSR_FS_BASE 0xC0000100
#define MSR_GS_BASE 0xC0000101
#define MSR_KGS_BASE 0xC0000102
#define MSR_TSC_AUX 0xC0000103
#define MSR_AMD_PERF_CTL0 0xC0010000 /* PerfEvtSel0-3, then PerfCtr0-3 */
#define MSR_AMD_PERF_NR 8
#define MSR_AMD_SYSCFG 0xC0010010
#define MSR_X2APIC_FIRST 0x800
#define MSR_X2APIC_LAST 0x8FF

/* The legacy performance counters every AMD64 processor has (APM vol. 2
 * 13.2.1). An AMD model accepts them as KVM does with its PMU off: reads
 * return 0 and writes are ignored, whatever the value. Intel has no MSRs
 * there (#GP). */
static bool amd_perf_msr(const struct bt_cpu *c, uint32_t msr)
{
	return c->vendor_amd && msr - MSR_AMD_PERF_CTL0 < MSR_AMD_PERF_NR;
}

static const struct bt_operand *op0(struct bt_cpu *c) { return &c->in->opnd[0]; }
static const struct bt_operand *op1(struct bt_cpu *c) { return &c->in->opnd[1]; }

static void need_cpl0(struct bt_cpu *c)
{
	if (c->cpl != 0)
		bt_raise(c, BT_GP, 0);
}

/* Instructions that exist only in protected mode (#UD in real and V86). */
static void need_pm(struct bt_cpu *c)
{
	if (!c->pm)
		bt_raise_noerr(c, BT_UD);
}

/* CR4.UMIP: SGDT, SIDT, SLDT, SMSW and STR are #GP(0) above CPL 0 (SDM 3A
 * 2.5; V86 mode is CPL 3) */
static void umip_check(struct bt_cpu *c)
{
	if ((c->s.cr4 & CR4_UMIP) && c->cpl > 0)
		bt_raise(c, BT_GP, 0);
}

uint64_t bt_tsc(struct bt_cpu *c)
{
	return c->bus->clock_ns(c->bus->opaque) + c->tsc_offset;
}

/* ---- control registers (SDM 3A 2.5) ---------------------------------- */

void bt_set_cr(struct bt_cpu *c, int cr, uint64_t v)
{
	uint64_t old;

	switch (cr) {
	case 0:
		old = c->s.cr0;
		if (v >> 32)
			bt_raise(c, BT_GP, 0);
		if (((v & CR0_PG) && !(v & CR0_PE)) || ((v & CR0_NW) && !(v & CR0_CD)))
			bt_raise(c, BT_GP, 0);
		if ((v & CR0_PG) && !(old & CR0_PG) && (c->s.msr.efer & EFER_LME)) {
			if (!(c->s.cr4 & CR4_PAE) || c->s.seg[BT_CS].l)
				bt_raise(c, BT_GP, 0);
			c->s.msr.efer |= EFER_LMA;
		}
		/* clearing PG with CR4.PCIDE set: #GP (SDM vol. 2 MOV CR) */
		if (!(v & CR0_PG) && (c->s.cr4 & CR4_PCIDE))
			bt_raise(c, BT_GP, 0);
		if (!(v & CR0_PG) && (old & CR0_PG) && c->lma) {
			if (c->mode == BT_MODE64)
				bt_raise(c, BT_GP, 0);
			c->s.msr.efer &= ~EFER_LMA;
		}
		c->s.cr0 = v | CR0_ET;
		if ((old ^ v) & (CR0_PG | CR0_WP | CR0_PE))
			bt_tlb_flush(c, true);
		bt_cpu_update_mode(c);
		return;
	case 2:
		c->s.cr2 = v;
		return;
	case 3:
		/* With CR4.PCIDE, bits 11:0 are the PCID and bit 63 asks not to
		 * invalidate; it is not part of CR3 (SDM 3A 4.10.4.1). Neither
		 * TLB is tagged by PCID: every CR3 write drops the non-global
		 * entries, which the architecture allows (a TLB may drop any
		 * entry at any time, SDM 3A 4.10.2.2). */
		if (c->lma && (c->s.cr4 & CR4_PCIDE))
			v &= ~(1ull << 63);
		if (c->lma && (v >> 52))
			bt_raise(c, BT_GP, 0);
		c->s.cr3 = c->lma ? v : (uint32_t)v;
		bt_tlb_flush(c, false);
		return;
	case 4: {
		uint64_t ok = CR4_VME | CR4_PVI | CR4_TSD | CR4_DE | CR4_PSE |
			      CR4_PAE | CR4_MCE | CR4_PGE | CR4_PCE | CR4_OSFXSR |
			      CR4_OSXMMEXCPT | (c->has_xsave ? CR4_OSXSAVE : 0) |
			      (c->has_umip ? CR4_UMIP : 0) |
			      (c->has_pcid ? CR4_PCIDE : 0) |
			      (c->has_smep ? CR4_SMEP : 0) |
			      (c->has_smap ? CR4_SMAP : 0) |
			      (c->has_pku ? CR4_PKE : 0) |
			      (c->has_pks ? CR4_PKS : 0);
		if (v & ~ok)
			bt_raise(c, BT_GP, 0);
		if (c->lma && !(v & CR4_PAE))
			bt_raise(c, BT_GP, 0);
		old = c->s.cr4;
		/* PCIDE 0 -> 1 needs IA-32e mode and PCID 0 in CR3 */
		if ((v & CR4_PCIDE) && !(old & CR4_PCIDE) &&
		    (!c->lma || (c->s.cr3 & 0xFFF)))
			bt_raise(c, BT_GP, 0);
		c->s.cr4 = v;
		/* SMEP, SMAP, PKE and PKS change what the cached rights
		 * allow, in both TLBs (the translator's checks none of them
		 * inline) */
		if ((old ^ v) & (CR4_PSE | CR4_PAE | CR4_PGE | CR4_PCIDE |
				 CR4_SMEP | CR4_SMAP | CR4_PKE | CR4_PKS))
			bt_tlb_flush(c, true);
		return;
	}
	case 8:
		if (v >> 4)
			bt_raise(c, BT_GP, 0);
		c->s.cr8 = v;
		if (c->bus->cr8_write)
			c->bus->cr8_write(c->bus->opaque, v);
		return;
	default:
		bt_raise_noerr(c, BT_UD);
	}
}

static void exec_movcr(struct bt_cpu *c)
{
	bool to_cr = op0(c)->cls == BT_RC_CR;
	int cr = to_cr ? op0(c)->reg : op1(c)->reg;
	unsigned size = c->mode == BT_MODE64 ? 8 : 4;
	uint64_t v;

	if (cr != 0 && cr != 2 && cr != 3 && cr != 4 && (cr != 8 || !c->lma))
		bt_raise_noerr(c, BT_UD);
	need_cpl0(c);
	if (to_cr) {
		bt_set_cr(c, cr, c->s.gpr[op1(c)->reg] & bt_mask(size));
		return;
	}
	switch (cr) {
	case 0: v = c->s.cr0; break;
	case 2: v = c->s.cr2; break;
	case 3: v = c->s.cr3; break;
	case 4: v = c->s.cr4; break;
	default:
		v = c->bus->cr8_read ? c->bus->cr8_read(c->bus->opaque) : c->s.cr8;
		break;
	}
	bt_set_reg(c, op0(c)->reg, size, v);
}

static void exec_movdr(struct bt_cpu *c)
{
	bool to_dr = op0(c)->cls == BT_RC_DR;
	int dr = to_dr ? op0(c)->reg : op1(c)->reg;
	unsigned size = c->mode == BT_MODE64 ? 8 : 4;
	uint64_t v;

	need_cpl0(c);
	if (dr > 7)
		bt_raise_noerr(c, BT_UD);
	if ((dr == 4 || dr == 5) && (c->s.cr4 & CR4_DE))
		bt_raise_noerr(c, BT_UD);
	if (dr == 4)
		dr = 6;
	if (dr == 5)
		dr = 7;
	if (c->s.dr7 & (1u << 13)) { /* DR7.GD: general detect */
		c->s.dr6 |= 1u << 13;
		bt_raise_noerr(c, BT_DB);
	}
	if (!to_dr) {
		v = dr < 4 ? c->s.dr[dr] : dr == 6 ? c->s.dr6 : c->s.dr7;
		bt_set_reg(c, op0(c)->reg, size, v);
		return;
	}
	v = c->s.gpr[op1(c)->reg] & bt_mask(size);
	if (dr >= 6 && (v >> 32))
		bt_raise(c, BT_GP, 0);
	if (dr < 4)
		c->s.dr[dr] = v;
	else if (dr == 6)
		c->s.dr6 = (v & 0x0000E00Full) | 0xFFFF0FF0ull;
	else
		c->s.dr7 = (v & 0xFFFF2BFFull) | 0x400;
	bt_dbg_update(c);
}

/* ---- MSRs ------------------------------------------------------------- */

static uint64_t *msr_slot(struct bt_cpu *c, uint32_t msr)
{
	struct modvm_msrs *m = &c->s.msr;

	switch (msr) {
	case MSR_SYSENTER_CS: return &m->sysenter_cs;
	case MSR_SYSENTER_ESP: return &m->sysenter_esp;
	case MSR_SYSENTER_EIP: return &m->sysenter_eip;
	case MSR_MISC_ENABLE: return &m->misc_enable;
	case MSR_PAT: return &m->pat;
	case MSR_MTRR_DEF: return &m->mtrr_def_type;
	case MSR_TSC_DEADLINE: return &m->tsc_deadline;
	case MSR_STAR: return &m->star;
	case MSR_LSTAR: return &m->lstar;
	case MSR_CSTAR: return &m->cstar;
	case MSR_SFMASK: return &m->sfmask;
	case MSR_KGS_BASE: return &m->kernel_gs_base;
	case MSR_TSC_AUX: return &m->tsc_aux;
	case MSR_FS_BASE: return &c->s.seg[BT_FS].base;
	case MSR_GS_BASE: return &c->s.seg[BT_GS].base;
	case MSR_MTRR_FIX64K: return &m->mtrr_fixed[0];
	case MSR_MTRR_FIX16K: return &m->mtrr_fixed[1];
	case MSR_MTRR_FIX16K + 1: return &m->mtrr_fixed[2];
	default:
		break;
	}
	if (msr >= MSR_MTRR_FIX4K && msr < MSR_MTRR_FIX4K + 8)
		return &m->mtrr_fixed[3 + msr - MSR_MTRR_FIX4K];
	if (msr >= MSR_MTRR_VAR && msr < MSR_MTRR_VAR + 16)
		return &m->mtrr_var[msr - MSR_MTRR_VAR];
	return NULL;
}

static bool canonical(uint64_t a)
{
	return (uint64_t)((int64_t)(a << 16) >> 16) == a;
}

static void exec_rdmsr(struct bt_cpu *c)
{
	uint32_t msr = (uint32_t)c->s.gpr[MODVM_RCX];
	uint64_t v, *p;

	need_cpl0(c);
	switch (msr) {
	case MSR_TSC: v = bt_tsc(c); break;
	case MSR_APIC_BASE: v = c->s.msr.apic_base; break;
	case MSR_EFER: v = c->s.msr.efer; break;
	case MSR_MTRRCAP: v = 0x508; break; /* 8 variable, fixed, WC */
	/* The microcode revision every P6/K8 and later CPU has: Linux's
	 * early_init_intel writes 0 and reads it without a fault handler.
	 * Revision 1 in EDX (Intel's layout), as KVM reports it; AMD's patch
	 * level (EAX) is 0. */
	case MSR_UCODE_REV: v = 1ull << 32; break;
	/* The model is AMD's: Linux reads SYSCFG without a fault handler
	 * (MTRR setup). All its features off, as KVM reports it. */
	case MSR_AMD_SYSCFG: v = 0; break;
	case MSR_TSC_AUX:
		if (!c->has_rdtscp && !c->has_rdpid)
			bt_raise(c, BT_GP, 0);
		v = c->s.msr.tsc_aux;
		break;
	/* MCA (CPUID.1:EDX bit 14) with no banks and no MCG_CTL: the two
	 * global registers read 0 (SDM 3B 16.3.1) */
	case MSR_MCG_CAP: case MSR_MCG_STATUS:
		if (!c->has_mca)
			bt_raise(c, BT_GP, 0);
		v = 0;
		break;
	case MSR_PKRS:
		if (!c->has_pks)
			bt_raise(c, BT_GP, 0);
		v = c->pkrs;
		break;
	case MSR_TSC_DEADLINE:
		/* the local APIC's value: 0 once the deadline has passed */
		if (!c->bus->rdmsr || !c->bus->rdmsr(c->bus->opaque, msr, &v))
			v = c->s.msr.tsc_deadline;
		break;
	default:
		if (amd_perf_msr(c, msr)) {
			v = 0;
			break;
		}
		if (msr >= MSR_X2APIC_FIRST && msr <= MSR_X2APIC_LAST) {
			if (!c->has_x2apic || !c->bus->rdmsr ||
			    !c->bus->rdmsr(c->bus->opaque, msr, &v))
				bt_raise(c, BT_GP, 0);
			break;
		}
		p = msr_slot(c, msr);
		if (!p)
			bt_raise(c, BT_GP, 0);
		v = *p;
		break;
	}
	bt_set_reg(c, MODVM_RAX, 4, v);
	bt_set_reg(c, MODVM_RDX, 4, v >> 32);
}

static void write_efer(struct bt_cpu *c, uint64_t v)
{
	uint64_t ok = EFER_LME | EFER_LMA;

	if (c->has_syscall)
		ok |= EFER_SCE;
	if (c->has_nx)
		ok |= EFER_NXE;
	if (v & ~ok)
		bt_raise(c, BT_GP, 0);
	if (((v ^ c->s.msr.efer) & EFER_LME) && (c->s.cr0 & CR0_PG))
		bt_raise(c, BT_GP, 0);
	/* LMA is read-only: it follows CR0.PG with LME */
	v = (v & ~EFER_LMA) | (c->s.msr.efer & EFER_LMA);
	if ((v ^ c->s.msr.efer) & EFER_NXE)
		bt_tlb_flush(c, true);
	c->s.msr.efer = v;
}

static void exec_wrmsr(struct bt_cpu *c)
{
	uint32_t msr = (uint32_t)c->s.gpr[MODVM_RCX];
	uint64_t v = (c->s.gpr[MODVM_RDX] << 32) | (uint32_t)c->s.gpr[MODVM_RAX];
	uint64_t *p;

	need_cpl0(c);
	switch (msr) {
	case MSR_TSC:
		c->tsc_offset = v - c->bus->clock_ns(c->bus->opaque);
		return;
	case MSR_EFER:
		write_efer(c, v);
		return;
	case MSR_APIC_BASE:
		if (v & 0xFFFFFF00000002FFull)
			bt_raise(c, BT_GP, 0);
		if (c->bus->wrmsr && !c->bus->wrmsr(c->bus->opaque, msr, v))
			bt_raise(c, BT_GP, 0);
		c->s.msr.apic_base = v;
		return;
	case MSR_FS_BASE: case MSR_GS_BASE: case MSR_KGS_BASE:
	case MSR_LSTAR: case MSR_CSTAR: case MSR_SYSENTER_ESP:
	case MSR_SYSENTER_EIP:
		if (!canonical(v))
			bt_raise(c, BT_GP, 0);
		break;
	case MSR_PKRS:
		/* bits 63:32 are reserved (SDM 3A 4.6.2). Like WRPKRU, the
		 * write changes what the cached rights allow. */
		if (!c->has_pks || (v >> 32))
			bt_raise(c, BT_GP, 0);
		c->pkrs = (uint32_t)v;
		bt_tlb_flush(c, true);
		return;
	case MSR_TSC_DEADLINE:
		if (c->bus->wrmsr)
			c->bus->wrmsr(c->bus->opaque, msr, v);
		break;
	case MSR_AMD_SYSCFG:
	case MSR_UCODE_REV: /* Intel: writing 0 before CPUID; no updates */
		return; /* writes ignored */
	case MSR_MCG_STATUS:
		/* no machine check is ever in progress: nothing to clear */
		if (!c->has_mca)
			bt_raise(c, BT_GP, 0);
		return;
	case MSR_TSC_AUX:
		if (!c->has_rdtscp && !c->has_rdpid)
			bt_raise(c, BT_GP, 0);
		/* bits 63:32 are reserved on Intel (#GP); AMD CPUs ignore
		 * them and read them as 0 (as KVM does per vendor) */
		if ((v >> 32) && !c->vendor_amd)
			bt_raise(c, BT_GP, 0);
		c->s.msr.tsc_aux = (uint32_t)v;
		return;
	default:
		if (amd_perf_msr(c, msr))
			return;
		if (msr >= MSR_X2APIC_FIRST && msr <= MSR_X2APIC_LAST) {
			if (!c->has_x2apic || !c->bus->wrmsr ||
			    !c->bus->wrmsr(c->bus->opaque, msr, v))
				bt_raise(c, BT_GP, 0);
			return;
		}
		break;
	}
	p = msr_slot(c, msr);
	if (!p)
		bt_raise(c, BT_GP, 0);
	*p = v;
}

/* ---- CPUID ------------------------------------------------------------ */

static void exec_cpuid(struct bt_cpu *c)
{
	uint32_t fn = (uint32_t)c->s.gpr[MODVM_RAX];
	uint32_t idx = (uint32_t)c->s.gpr[MODVM_RCX];
	const struct modvm_cpuid_leaf *l = cpuid_model_leaf(c->model, fn, idx);
	uint32_t a = 0, b = 0, cc = 0, d = 0;

	/* Missing leaves read as zero, as on the model's vendor (AMD). */
	if (l) {
		a = l->eax;
		b = l->ebx;
		cc = l->ecx;
		d = l->edx;
	}
	if (fn == 1) {
		b = (b & 0x00FFFFFF) | (c->index << 24);
		if (!(c->s.msr.apic_base & (1u << 11)))
			d &= ~(1u << 9); /* APIC disabled: no APIC bit */
		/* OSXSAVE mirrors CR4.OSXSAVE (SDM vol. 2 CPUID, table 3-10) */
		cc &= ~(1u << 27);
		if (c->s.cr4 & CR4_OSXSAVE)
			cc |= 1u << 27;
	}
	/* OSPKE mirrors CR4.PKE (leaf 7.0 ECX bit 4) */
	if (fn == 7 && idx == 0) {
		cc &= ~(1u << 4);
		if (c->s.cr4 & CR4_PKE)
			cc |= 1u << 4;
	}
	if ((fn == 0xB || fn == 0x1F) && l)
		d = c->index;
	/* (0xD,0) EBX: the area XSAVE needs for the components enabled in
	 * XCR0 (SDM vol. 2 CPUID), the model's value being for all of them */
	if (fn == 0xD && idx == 0 && l)
		b = bt_xsave_size(c->s.xcr0);
	bt_set_reg(c, MODVM_RAX, 4, a);
	bt_set_reg(c, MODVM_RBX, 4, b);
	bt_set_reg(c, MODVM_RCX, 4, cc);
	bt_set_reg(c, MODVM_RDX, 4, d);
}

/* ---- descriptor tables ------------------------------------------------ */

static void exec_dtable(struct bt_cpu *c)
{
	const struct bt_operand *m = op0(c);
	struct modvm_dtable *t = (c->in->op == BT_OP_LGDT || c->in->op == BT_OP_SGDT)
				 ? &c->s.gdt : &c->s.idt;
	uint64_t a = bt_opnd_addr(c, m), base;
	unsigned bsize = c->mode == BT_MODE64 ? 8 : 4;

	if (c->in->op == BT_OP_LGDT || c->in->op == BT_OP_LIDT) {
		need_cpl0(c);
		uint16_t limit = (uint16_t)bt_read(c, m->seg, a, 2);
		base = bt_read(c, m->seg, (a + 2) & bt_mask(c->in->addrsize), bsize);
		if (c->in->opsize == 2 && c->mode != BT_MODE64)
			base &= 0xFFFFFF;
		if (c->mode == BT_MODE64 && !canonical(base))
			bt_raise(c, BT_GP, 0);
		t->limit = limit;
		t->base = base;
		return;
	}
	umip_check(c);
	bt_check_write(c, m->seg, a, 2 + bsize);
	bt_write(c, m->seg, a, 2, t->limit);
	bt_write(c, m->seg, (a + 2) & bt_mask(c->in->addrsize), bsize, t->base);
}

static void exec_lldt_ltr(struct bt_cpu *c)
{
	uint16_t sel = (uint16_t)bt_get(c, op0(c));
	bool ltr = c->in->op == BT_OP_LTR;
	struct modvm_segment *dst = ltr ? &c->s.tr : &c->s.ldt, d;
	uint64_t lo, hi;

	need_pm(c);
	need_cpl0(c);
	if (!(sel & ~3u)) {
		if (ltr)
			bt_raise(c, BT_GP, 0);
		memset(dst, 0, sizeof(*dst));
		dst->unusable = 1;
		dst->selector = sel;
		return;
	}
	if ((sel & 4) || !bt_read_desc(c, sel, &lo, &hi, true))
		bt_raise(c, BT_GP, sel & 0xFFFC);
	bt_desc_to_seg(&d, sel, lo, hi);
	if (d.s || (ltr ? (d.type != 1 && d.type != 9) : d.type != 2) ||
	    (c->lma && ltr && d.type != 9))
		bt_raise(c, BT_GP, sel & 0xFFFC);
	if (!d.present)
		bt_raise(c, BT_NP, sel & 0xFFFC);
	/* IA-32e mode: the 16-byte descriptor's base must be canonical
	 * (SDM vol. 2 LLDT, LTR, 64-bit mode exceptions) */
	if (c->lma && !canonical(d.base))
		bt_raise(c, BT_GP, sel & 0xFFFC);
	if (ltr) {
		/* mark the TSS busy in the GDT */
		bt_lin_write(c, c->s.gdt.base + (sel & ~7u) + 5, 1,
			     ((lo >> 40) | 2) & 0xFF, BT_CPL_SYS);
		d.type |= 2;
	}
	*dst = d;
}

/* LAR/LSL/VERR/VERW: report through ZF instead of faulting. */
static void exec_lar(struct bt_cpu *c)
{
	uint16_t sel = (uint16_t)bt_get(c, c->in->op == BT_OP_VERR ||
				      c->in->op == BT_OP_VERW ? op0(c) : op1(c));
	uint64_t lo, hi;
	struct modvm_segment d;
	bool ok = false;

	need_pm(c);
	if ((sel & ~3u) && bt_read_desc(c, sel, &lo, &hi, false)) {
		bt_desc_to_seg(&d, sel, lo, hi);
		bool conf = d.s && (d.type & 0xC) == 0xC;
		bool priv = conf || (d.dpl >= c->cpl && d.dpl >= (sel & 3u));
		switch (c->in->op) {
		case BT_OP_LAR:
			ok = priv && (d.s || (d.type != 0 && d.type != 8 &&
					     d.type != 0xA && d.type != 0xD));
			break;
		case BT_OP_LSL:
			ok = priv && (d.s || d.type == 1 || d.type == 2 ||
				      d.type == 3 || d.type == 9 || d.type == 0xB);
			break;
		case BT_OP_VERR:
			ok = priv && d.s && (!(d.type & 8) || (d.type & 2));
			break;
		default:
			ok = priv && d.s && !(d.type & 8) && (d.type & 2);
			break;
		}
		if (ok && c->in->op == BT_OP_LAR)
			/* bits 19:16 are undefined; current parts copy the
			 * limit bits there (0x00CFFB00 for a flat code segment) */
			bt_put(c, op0(c), (lo >> 32) & 0x00FFFF00);
		if (ok && c->in->op == BT_OP_LSL)
			bt_put(c, op0(c), d.limit);
	}
	c->s.rflags = (c->s.rflags & ~(uint64_t)BT_ZF) | (ok ? BT_ZF : 0);
}

/* ---- fast system calls (SDM vol. 2 SYSCALL SYSRET SYSENTER SYSEXIT) --- */

static void flat_seg(struct modvm_segment *s, uint16_t sel, bool code, bool l,
		     unsigned dpl)
{
	memset(s, 0, sizeof(*s));
	s->selector = sel;
	s->limit = 0xFFFFFFFF;
	s->type = code ? 0xB : 0x3;
	s->s = 1;
	s->dpl = dpl;
	s->present = 1;
	s->g = 1;
	s->l = l;
	s->db = !l;
}

static void exec_syscall(struct bt_cpu *c)
{
	uint16_t sel = (c->s.msr.star >> 32) & 0xFFFF;

	if (!(c->s.msr.efer & EFER_SCE) || !c->has_syscall)
		bt_raise_noerr(c, BT_UD);
	/* Intel: only in 64-bit mode (SDM vol. 2 SYSCALL); AMD also in legacy
	 * and compatibility mode (APM vol. 3) */
	if (!c->vendor_amd && c->model && c->model->leaves &&
	    c->mode != BT_MODE64)
		bt_raise_noerr(c, BT_UD);
	if (!c->lma) {
		c->s.gpr[MODVM_RCX] = (uint32_t)c->next_rip;
		flat_seg(&c->s.seg[BT_CS], sel & 0xFFFC, true, false, 0);
		flat_seg(&c->s.seg[BT_SS], (sel + 8) & 0xFFFC, false, false, 0);
		c->s.rflags &= ~(uint64_t)(BT_VM | BT_IF | BT_RF);
		c->next_rip = (uint32_t)c->s.msr.star;
	} else {
		c->s.gpr[MODVM_RCX] = c->next_rip;
		c->s.gpr[MODVM_R11] = c->s.rflags & ~(uint64_t)BT_RF;
		flat_seg(&c->s.seg[BT_CS], sel & 0xFFFC, true, true, 0);
		flat_seg(&c->s.seg[BT_SS], (sel + 8) & 0xFFFC, false, false, 0);
		c->s.rflags &= ~(c->s.msr.sfmask | BT_RF);
		c->s.rflags |= 2;
		c->next_rip = c->mode == BT_MODE64 ? c->s.msr.lstar : c->s.msr.cstar;
	}
	c->cpl = 0;
	bt_cpu_update_mode(c);
}

static void exec_sysret(struct bt_cpu *c)
{
	uint16_t sel = (c->s.msr.star >> 48) & 0xFFFF;
	bool to64 = c->in->opsize == 8;

	if (!(c->s.msr.efer & EFER_SCE) || !c->has_syscall)
		bt_raise_noerr(c, BT_UD);
	if (!c->pm || c->cpl != 0)
		bt_raise(c, BT_GP, 0);
	if (c->lma) {
		/* a non-canonical RCX: Intel raises #GP(0) at CPL 0; AMD
		 * returns and faults on the fetch at CPL 3 (Xen XSA-7, Linux's
		 * entry_64.S on the Intel-only SYSRET hazard) */
		if (to64 && !canonical(c->s.gpr[MODVM_RCX]) && !c->vendor_amd)
			bt_raise(c, BT_GP, 0);
		if (to64)
			flat_seg(&c->s.seg[BT_CS], (sel + 16) | 3, true, true, 3);
		else
			flat_seg(&c->s.seg[BT_CS], sel | 3, true, false, 3);
		c->next_rip = to64 ? c->s.gpr[MODVM_RCX] : (uint32_t)c->s.gpr[MODVM_RCX];
		bt_set_rflags(c, c->s.gpr[MODVM_R11], 0x3F7FD7ull);
		c->s.rflags &= ~(uint64_t)(BT_RF | BT_VM);
	} else {
		flat_seg(&c->s.seg[BT_CS], sel | 3, true, false, 3);
		c->s.rflags |= BT_IF;
		c->next_rip = (uint32_t)c->s.gpr[MODVM_RCX];
	}
	/* Intel loads a flat SS (base 0, 4 GiB, DPL 3: SDM vol. 2 SYSRET);
	 * AMD keeps its cached attributes (Linux's X86_BUG_SYSRET_SS_ATTRS),
	 * here all but the selector, DPL and a usable data type */
	if (!c->vendor_amd) {
		flat_seg(&c->s.seg[BT_SS], (sel + 8) | 3, false, false, 3);
		c->cpl = 3;
		bt_cpu_update_mode(c);
		return;
	}
	c->s.seg[BT_SS].selector = (sel + 8) | 3;
	c->s.seg[BT_SS].dpl = 3;
	c->s.seg[BT_SS].unusable = 0;
	c->s.seg[BT_SS].present = 1;
	c->s.seg[BT_SS].s = 1;
	c->s.seg[BT_SS].type = 3;
	c->cpl = 3;
	bt_cpu_update_mode(c);
}

/* AMD CPUs have SYSENTER and SYSEXIT in legacy mode only: in long mode
 * (64-bit and compatibility) both are #UD (AMD64 APM vol. 3); Intel runs
 * them there. */
static void sysenter_vendor_check(struct bt_cpu *c)
{
	if (c->vendor_amd && c->lma)
		bt_raise_noerr(c, BT_UD);
}

static void exec_sysenter(struct bt_cpu *c)
{
	uint16_t cs = c->s.msr.sysenter_cs & 0xFFFC;

	sysenter_vendor_check(c);
	if (!c->pm || !cs)
		bt_raise(c, BT_GP, 0);
	c->s.rflags &= ~(uint64_t)(BT_VM | BT_IF | BT_RF);
	flat_seg(&c->s.seg[BT_CS], cs, true, c->lma, 0);
	flat_seg(&c->s.seg[BT_SS], cs + 8, false, false, 0);
	c->s.gpr[MODVM_RSP] = c->lma ? c->s.msr.sysenter_esp
				     : (uint32_t)c->s.msr.sysenter_esp;
	c->next_rip = c->lma ? c->s.msr.sysenter_eip : (uint32_t)c->s.msr.sysenter_eip;
	c->cpl = 0;
	bt_cpu_update_mode(c);
}

static void exec_sysexit(struct bt_cpu *c)
{
	uint16_t cs = c->s.msr.sysenter_cs & 0xFFFC;
	bool to64 = c->in->opsize == 8;

	sysenter_vendor_check(c);
	if (!c->pm || c->cpl != 0 || !cs)
		bt_raise(c, BT_GP, 0);
	if (to64) {
		flat_seg(&c->s.seg[BT_CS], (cs + 32) | 3, true, true, 3);
		flat_seg(&c->s.seg[BT_SS], (cs + 40) | 3, false, false, 3);
		c->s.gpr[MODVM_RSP] = c->s.gpr[MODVM_RCX];
		c->next_rip = c->s.gpr[MODVM_RDX];
	} else {
		flat_seg(&c->s.seg[BT_CS], (cs + 16) | 3, true, false, 3);
		flat_seg(&c->s.seg[BT_SS], (cs + 24) | 3, false, false, 3);
		c->s.gpr[MODVM_RSP] = (uint32_t)c->s.gpr[MODVM_RCX];
		c->next_rip = (uint32_t)c->s.gpr[MODVM_RDX];
	}
	c->cpl = 3;
	bt_cpu_update_mode(c);
}

/* ---- the rest --------------------------------------------------------- */

static void exec_load_far_ptr(struct bt_cpu *c)
{
	static const int seg_of[] = {
		[BT_OP_LES] = BT_ES, [BT_OP_LDS] = BT_DS, [BT_OP_LSS] = BT_SS,
		[BT_OP_LFS] = BT_FS, [BT_OP_LGS] = BT_GS,
	};
	const struct bt_operand *m = op1(c);
	unsigned n = c->in->opsize;
	uint64_t a = bt_opnd_addr(c, m);
	uint64_t off = bt_read(c, m->seg, a, n);
	uint16_t sel = (uint16_t)bt_read(c, m->seg, (a + n) & bt_mask(c->in->addrsize), 2);

	bt_load_seg(c, seg_of[c->in->op], sel);
	bt_put(c, op0(c), off);
	if (c->in->op == BT_OP_LSS)
		c->shadow = 2;
}

static void exec_far(struct bt_cpu *c)
{
	const struct bt_operand *t = op0(c);
	uint64_t off;
	uint16_t sel;

	if (t->type == BT_OPND_FAR) {
		off = t->imm;
		sel = t->sel;
	} else {
		unsigned n = c->in->opsize;
		uint64_t a = bt_opnd_addr(c, t);
		off = bt_read(c, t->seg, a, n);
		sel = (uint16_t)bt_read(c, t->seg, (a + n) & bt_mask(c->in->addrsize), 2);
	}
	bt_far_jmp(c, sel, off, c->in->op == BT_OP_CALLF);
}

static void exec_movseg(struct bt_cpu *c)
{
	const struct bt_operand *d = op0(c);

	if (d->type == BT_OPND_REG && d->cls == BT_RC_SEG) {
		if (d->reg == BT_CS)
			bt_raise_noerr(c, BT_UD);
		bt_load_seg(c, d->reg, (uint16_t)bt_get(c, op1(c)));
		if (d->reg == BT_SS) {
			c->shadow = 2;
			c->dbg_hold = true;
		}
		return;
	}
	/* store: a register destination gets the zero-extended selector */
	bt_put(c, d, c->s.seg[op1(c)->reg].selector);
}

static void exec_cli_sti(struct bt_cpu *c)
{
	unsigned iopl = (c->s.rflags >> 12) & 3;

	if ((c->pm && c->cpl > (int)iopl) || ((c->s.rflags & BT_VM) && iopl < 3))
		bt_raise(c, BT_GP, 0);
	if (c->in->op == BT_OP_CLI) {
		c->s.rflags &= ~(uint64_t)BT_IF;
		return;
	}
	if (!(c->s.rflags & BT_IF))
		c->shadow = 1;
	c->s.rflags |= BT_IF;
}

static void exec_arpl(struct bt_cpu *c)
{
	uint16_t d = (uint16_t)bt_get(c, op0(c)), s = (uint16_t)bt_get(c, op1(c));

	need_pm(c);
	if ((d & 3) < (s & 3)) {
		bt_put(c, op0(c), (d & ~3u) | (s & 3));
		c->s.rflags |= BT_ZF;
	} else {
		c->s.rflags &= ~(uint64_t)BT_ZF;
	}
}

/* RDPKRU, WRPKRU (SDM vol. 2): #UD unless CR4.PKE (which needs PKU);
 * ECX, and for WRPKRU EDX, must be 0. Any CPL. */
static void exec_pkru(struct bt_cpu *c)
{
	if (!c->has_pku || !(c->s.cr4 & CR4_PKE))
		bt_raise_noerr(c, BT_UD);
	if ((uint32_t)c->s.gpr[MODVM_RCX])
		bt_raise(c, BT_GP, 0);
	if (c->in->op == BT_OP_RDPKRU) {
		bt_set_reg(c, MODVM_RAX, 4, bt_pkru(c));
		bt_set_reg(c, MODVM_RDX, 4, 0);
		return;
	}
	if ((uint32_t)c->s.gpr[MODVM_RDX])
		bt_raise(c, BT_GP, 0);
	bt_set_pkru(c, (uint32_t)c->s.gpr[MODVM_RAX]);
	/* the translator's TLB holds rights checked against the old PKRU */
	bt_tlb_flush(c, true);
}

/* INVPCID type, m128 (SDM vol. 2 INVPCID). The TLBs are not tagged by
 * PCID, so each type drops at least what it must: type 0 the page (any
 * PCID), 1 and 3 the non-global entries, 2 everything. */
static void exec_invpcid(struct bt_cpu *c)
{
	const struct bt_operand *m = op1(c);
	uint64_t type = bt_get(c, op0(c)), a, pcid, lin;

	if (!c->has_invpcid || (c->s.rflags & BT_VM))
		bt_raise_noerr(c, BT_UD);
	need_cpl0(c);
	if (type > 3)
		bt_raise(c, BT_GP, 0);
	a = bt_opnd_addr(c, m);
	pcid = bt_read(c, m->seg, a, 8);
	lin = bt_read(c, m->seg, (a + 8) & bt_mask(c->in->addrsize), 8);
	if (pcid >> 12)
		bt_raise(c, BT_GP, 0);
	if (type <= 1 && pcid && !(c->s.cr4 & CR4_PCIDE))
		bt_raise(c, BT_GP, 0);
	switch (type) {
	case 0:
		if (!canonical(lin))
			bt_raise(c, BT_GP, 0);
		bt_tlb_flush_page(c, lin);
		break;
	case 2:
		bt_tlb_flush(c, true);
		break;
	default:
		bt_tlb_flush(c, false);
		break;
	}
}

/* Returns non-zero for an instruction it does not know (#UD). */
int bt_exec_system(struct bt_cpu *c)
{
	switch (c->in->op) {
	case BT_OP_MOVSEG: exec_movseg(c); return 0;
	case BT_OP_LES: case BT_OP_LDS: case BT_OP_LSS: case BT_OP_LFS:
	case BT_OP_LGS:
		exec_load_far_ptr(c);
		return 0;
	case BT_OP_CALLF: case BT_OP_JMPF: exec_far(c); return 0;
	case BT_OP_RETF:
		bt_far_ret(c, c->in->nopnd ? (uint16_t)op0(c)->imm : 0);
		return 0;
	case BT_OP_IRET: bt_iret(c); return 0;
	case BT_OP_HLT:
		need_cpl0(c);
		c->s.halted = 1;
		return 0;
	case BT_OP_CLI: case BT_OP_STI: exec_cli_sti(c); return 0;
	case BT_OP_CPUID: exec_cpuid(c); return 0;
	case BT_OP_RDTSC:
		if ((c->s.cr4 & CR4_TSD) && c->cpl != 0)
			bt_raise(c, BT_GP, 0);
		{
			uint64_t t = bt_tsc(c);
			bt_set_reg(c, MODVM_RAX, 4, t);
			bt_set_reg(c, MODVM_RDX, 4, t >> 32);
		}
		return 0;
	case BT_OP_RDTSCP:
		if (!c->has_rdtscp)
			bt_raise_noerr(c, BT_UD);
		if ((c->s.cr4 & CR4_TSD) && c->cpl != 0)
			bt_raise(c, BT_GP, 0);
		{
			uint64_t t = bt_tsc(c);
			bt_set_reg(c, MODVM_RAX, 4, t);
			bt_set_reg(c, MODVM_RDX, 4, t >> 32);
			bt_set_reg(c, MODVM_RCX, 4, c->s.msr.tsc_aux);
		}
		return 0;
	case BT_OP_RDPID:
		/* TSC_AUX in a register of the mode's size (SDM vol. 2 RDPID) */
		if (!c->has_rdpid)
			bt_raise_noerr(c, BT_UD);
		bt_put(c, op0(c), c->s.msr.tsc_aux);
		return 0;
	case BT_OP_STAC: case BT_OP_CLAC:
		/* #UD without SMAP and above CPL 0 (V86 included) */
		if (!c->has_smap || c->cpl > 0)
			bt_raise_noerr(c, BT_UD);
		if (c->in->op == BT_OP_STAC)
			c->s.rflags |= BT_AC;
		else
			c->s.rflags &= ~(uint64_t)BT_AC;
		return 0;
	case BT_OP_RDPKRU: case BT_OP_WRPKRU:
		exec_pkru(c);
		return 0;
	case BT_OP_INVPCID: exec_invpcid(c); return 0;
	case BT_OP_RDMSR: exec_rdmsr(c); return 0;
	case BT_OP_WRMSR: exec_wrmsr(c); return 0;
	case BT_OP_RDPMC:
		bt_raise(c, BT_GP, 0);
	case BT_OP_LGDT: case BT_OP_LIDT: case BT_OP_SGDT: case BT_OP_SIDT:
		exec_dtable(c);
		return 0;
	case BT_OP_LLDT: case BT_OP_LTR: exec_lldt_ltr(c); return 0;
	case BT_OP_SLDT:
		need_pm(c);
		umip_check(c);
		bt_put(c, op0(c), c->s.ldt.selector);
		return 0;
	case BT_OP_STR:
		need_pm(c);
		umip_check(c);
		bt_put(c, op0(c), c->s.tr.selector);
		return 0;
	case BT_OP_SMSW:
		umip_check(c);
		bt_put(c, op0(c), c->s.cr0 & (op0(c)->type == BT_OPND_MEM ? 0xFFFF
						  : bt_mask(op0(c)->size)));
		return 0;
	case BT_OP_LMSW: {
		/* LMSW changes PE (can only set it), MP, EM, TS */
		uint64_t v = bt_get(c, op0(c)) & 0xF;
		need_cpl0(c);
		bt_set_cr(c, 0, (c->s.cr0 & ~0xEull) | v | (c->s.cr0 & CR0_PE));
		return 0;
	}
	case BT_OP_CLTS:
		need_cpl0(c);
		c->s.cr0 &= ~CR0_TS;
		return 0;
	case BT_OP_MOVCR: exec_movcr(c); return 0;
	case BT_OP_MOVDR: exec_movdr(c); return 0;
	case BT_OP_INVLPG: {
		/* no segment checks: INVLPG never faults on its operand */
		const struct modvm_segment *sg = &c->s.seg[op0(c)->seg];
		uint64_t a = bt_opnd_addr(c, op0(c));
		need_cpl0(c);
		if (c->mode == BT_MODE64)
			a += op0(c)->seg >= BT_FS ? sg->base : 0;
		else
			a = (a + sg->base) & 0xFFFFFFFFull;
		bt_tlb_flush_page(c, a);
		return 0;
	}
	case BT_OP_WBINVD: case BT_OP_INVD:
		need_cpl0(c);
		return 0;
	case BT_OP_LAR: case BT_OP_LSL: case BT_OP_VERR: case BT_OP_VERW:
		exec_lar(c);
		return 0;
	case BT_OP_ARPL: exec_arpl(c); return 0;
	case BT_OP_SYSCALL: exec_syscall(c); return 0;
	case BT_OP_SYSRET: exec_sysret(c); return 0;
	case BT_OP_SYSENTER: exec_sysenter(c); return 0;
	case BT_OP_SYSEXIT: exec_sysexit(c); return 0;
	case BT_OP_SWAPGS: {
		uint64_t t = c->s.seg[BT_GS].base;
		need_cpl0(c);
		c->s.seg[BT_GS].base = c->s.msr.kernel_gs_base;
		c->s.msr.kernel_gs_base = t;
		return 0;
	}
	case BT_OP_CLFLUSH:
		bt_read(c, op0(c)->seg, bt_opnd_addr(c, op0(c)), 1);
		return 0;
	case BT_OP_XGETBV: case BT_OP_XSETBV: case BT_OP_XSAVE:
	case BT_OP_XRSTOR: case BT_OP_XSAVEOPT:
		bt_exec_xsave(c);
		return 0;
	default:
		return -1;
	}
}
