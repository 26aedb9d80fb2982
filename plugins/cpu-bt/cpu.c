/* cpu-bt: the interpreter's main loop. Fetch and decode at CS:rIP, execute,
 * deliver exceptions raised with bt_raise() (with the double- and
 * triple-fault rules of SDM 3A 6.15 table 6-5), and take NMIs and
 * maskable interrupts at instruction boundaries outside the STI/MOV SS
 * shadow. Also the CPU model check and state conversion.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "cpu.h"
#include "cpu_model.h"
#include "jit.h"

_Noreturn void bt_raise(struct bt_cpu *c, int vec, uint32_t err)
{
	c->fault_vec = vec;
	c->fault_has_err = 1;
	c->fault_err = err;
	longjmp(c->jb, 1);
}

_Noreturn void bt_raise_noerr(struct bt_cpu *c, int vec)
{
	c->fault_vec = vec;
	c->fault_has_err = 0;
	c->fault_err = 0;
	longjmp(c->jb, 1);
}

/* The fallback for LOCKed read-modify-writes the host cannot do with one
 * atomic instruction on RAM (exec.c, lock_atomic: MMIO, an operand split
 * across a page or misaligned): they are atomic against each other, not
 * against plain stores or host atomics of other vCPUs on the same bytes.
 * Real CPUs take a bus lock there; guests avoid split locks. */
static pthread_mutex_t lock_prefix_mutex = PTHREAD_MUTEX_INITIALIZER;

void bt_lock_begin(struct bt_cpu *c)
{
	pthread_mutex_lock(&lock_prefix_mutex);
	c->holding_lock = true;
}

void bt_lock_end(struct bt_cpu *c)
{
	c->lk_state = BT_LK_OFF;
	if (!c->holding_lock)
		return;
	c->holding_lock = false;
	pthread_mutex_unlock(&lock_prefix_mutex);
}

/* DR7 L/G bits of breakpoints whose R/W field is a data access. */
void bt_dbg_update(struct bt_cpu *c)
{
	c->dbg_data = false;
	for (int i = 0; i < 4; i++)
		if ((c->s.dr7 >> (2 * i)) & 3 && ((c->s.dr7 >> (16 + 4 * i)) & 3))
			c->dbg_data = true;
}

/* A data access: record matching breakpoints in DR6 (delivered as a trap
 * after the instruction, SDM 3A 17.3.1.2). */
void bt_dbg_data(struct bt_cpu *c, uint64_t lin, unsigned size, bool write)
{
	static const uint8_t lens[4] = { 1, 2, 8, 4 };

	for (int i = 0; i < 4; i++) {
		unsigned rw = (c->s.dr7 >> (16 + 4 * i)) & 3;
		unsigned len = lens[(c->s.dr7 >> (18 + 4 * i)) & 3];
		uint64_t a = c->s.dr[i] & ~(uint64_t)(len - 1);
		if (!((c->s.dr7 >> (2 * i)) & 3) || rw == 0 || rw == 2)
			continue;
		if (rw == 1 && !write)
			continue;
		if (lin < a + len && a < lin + size)
			c->dr6_pending |= 1u << i;
	}
}

/* Instruction breakpoints are faults, taken before the instruction unless
 * RF is set (SDM 3A 17.3.1.1). */
static void dbg_insn(struct bt_cpu *c)
{
	uint64_t lin = c->mode == BT_MODE64 ? c->s.rip
		       : (c->s.seg[BT_CS].base + c->s.rip) & 0xFFFFFFFFull;
	uint32_t hit = 0;

	if (c->s.rflags & BT_RF)
		return;
	for (int i = 0; i < 4; i++)
		if ((c->s.dr7 >> (2 * i)) & 3 && !((c->s.dr7 >> (16 + 4 * i)) & 3) &&
		    c->s.dr[i] == lin)
			hit |= 1u << i;
	if (!hit)
		return;
	c->s.dr6 = (c->s.dr6 & ~0xFull) | hit;
	bt_raise_noerr(c, BT_DB);
}

void bt_cpu_update_mode(struct bt_cpu *c)
{
	const struct modvm_segment *cs = &c->s.seg[BT_CS];
	bool vm = c->s.rflags & BT_VM;

	c->lma = c->s.msr.efer & EFER_LMA;
	c->pm = (c->s.cr0 & CR0_PE) && !vm;
	if (c->lma && cs->l)
		c->mode = BT_MODE64;
	else if (vm)
		c->mode = BT_MODE16;
	else
		c->mode = cs->db ? BT_MODE32 : BT_MODE16;
	if (!(c->s.cr0 & CR0_PE))
		c->cpl = 0;
	else if (vm)
		c->cpl = 3;
	else
		c->cpl = c->s.seg[BT_SS].dpl;
}

/* Features of leaf 1 and 0x80000001 the interpreter implements. */
#define OK_1_EDX 0x078BFB7Du  /* FPU DE PSE TSC MSR PAE CX8 APIC SEP MTRR
				 PGE CMOV PAT PSE36 CLFSH MMX FXSR SSE SSE2 */
#define OK_1_ECX 0x85222000u  /* CX16, PCID, x2APIC, TSC-deadline, XSAVE,
				 hypervisor */
#define PCID_BIT (1u << 17)
#define X2APIC_BIT (1u << 21)
#define TSC_DL_BIT (1u << 24)
/* leaf 7.0: EBX SMEP INVPCID SMAP; ECX UMIP PKU OSPKE RDPID PKS (OSPKE
 * is CR4.PKE's, set by the engine like OSXSAVE; PKS is Intel's only) */
#define L7B_SMEP (1u << 7)
#define L7B_INVPCID (1u << 10)
#define L7B_SMAP (1u << 20)
#define L7C_UMIP (1u << 2)
#define L7C_PKU (1u << 3)
#define L7C_OSPKE (1u << 4)
#define L7C_RDPID (1u << 22)
#define L7C_PKS (1u << 31)
#define OK_7_EBX (L7B_SMEP | L7B_INVPCID | L7B_SMAP)
#define OK_7_ECX (L7C_UMIP | L7C_PKU | L7C_OSPKE | L7C_RDPID | L7C_PKS)
#define XSAVE_BIT (1u << 26)
#define XCR0_OK 0x203u        /* x87, SSE and PKRU state components */
#define XCR0_PKRU (1u << 9)
#define OK_X_EDX (OK_1_EDX | (1u << 11) | (1u << 20) | (1u << 26) | \
		  (1u << 27) | (1u << 29)) /* SYSCALL NX 1G RDTSCP LM */
#define OK_X_ECX 0x00000001u  /* LAHF/SAHF in 64-bit mode */

/* The checks below look leaves up as the guest's CPUID does (sys.c,
 * cpuid_model_leaf), so they judge exactly what the guest will read. */

/* The vendor string of leaf 0 (EBX, EDX, ECX); a model without leaves
 * (the host's CPUID) names none. */
static bool is_amd(const struct modvm_cpu_model *m)
{
	const struct modvm_cpuid_leaf *l0 = cpuid_model_leaf(m, 0, 0);

	return l0 && l0->ebx == 0x68747541 && l0->edx == 0x69746e65 &&
	       l0->ecx == 0x444d4163;
}

/* XSAVE needs leaf 0xD within the maximum leaf, naming only the x87,
 * SSE and PKRU components (x87 included: SDM vol. 1 13.3; PKRU only with
 * PKU, at its standard offset 0xA80, 8 bytes: sub-leaf 9) and of the
 * sub-leaf 1 features only XSAVEOPT, which is all cpu-bt implements. */
static int check_xsave(const struct modvm_cpu_model *m, char *why, size_t len)
{
	const struct modvm_cpuid_leaf *l0 = cpuid_model_leaf(m, 0, 0);
	const struct modvm_cpuid_leaf *d0 = cpuid_model_leaf(m, 0xD, 0);
	const struct modvm_cpuid_leaf *d1 = cpuid_model_leaf(m, 0xD, 1);
	const struct modvm_cpuid_leaf *d9 = cpuid_model_leaf(m, 0xD, 9);
	const struct modvm_cpuid_leaf *l7 = cpuid_model_leaf(m, 7, 0);

	if (!l0 || l0->eax < 0xD || !d0 || !(d0->eax & 1) ||
	    (d0->eax & ~XCR0_OK) || d0->edx) {
		snprintf(why, len, "CPU model \"%s\" advertises XSAVE without a "
			 "leaf 0xD naming only the x87, SSE and PKRU components "
			 "(0x203): cpu-bt implements XSAVE for those only", m->name);
		return -1;
	}
	if ((d0->eax & XCR0_PKRU) &&
	    (!l7 || !(l7->ecx & L7C_PKU) || !d9 || d9->eax != 8 ||
	     d9->ebx != 0xA80 || d9->ecx || d0->ecx < 0xA88)) {
		snprintf(why, len, "CPU model \"%s\" names the PKRU state "
			 "component (XCR0 bit 9) without PKU, or without sub-leaf "
			 "(0xD,9) giving 8 bytes at 0xA80", m->name);
		return -1;
	}
	if (d1 && (d1->eax & ~1u)) {
		snprintf(why, len, "CPU model \"%s\" advertises XSAVE features "
			 "CPUID.(0xD,1):EAX 0x%08x that cpu-bt does not implement "
			 "(only XSAVEOPT, bit 0)", m->name, d1->eax & ~1u);
		return -1;
	}
	return 0;
}

int bt_model_check(const struct modvm_cpu_model *m, char *why, size_t len)
{
	const struct modvm_cpuid_leaf *l1, *x1, *l7;
	uint32_t bad;

	if (!m || !m->leaves) {
		snprintf(why, len, "CPU model \"%s\" passes the host CPUID through; "
			 "cpu-bt emulates a fixed CPU: use model \"baseline-v1\"",
			 m ? m->name : "?");
		return -1;
	}
	l1 = cpuid_model_leaf(m, 1, 0);
	x1 = cpuid_model_leaf(m, 0x80000001, 0);
	if (l1 && (bad = l1->ecx & ~OK_1_ECX)) {
		snprintf(why, len, "CPU model \"%s\" advertises CPUID.1:ECX features "
			 "0x%08x (SSE3/SSSE3/SSE4/POPCNT...) that cpu-bt does not "
			 "implement yet: use model \"baseline-v1\"", m->name, bad);
		return -1;
	}
	if (l1 && (bad = l1->edx & ~OK_1_EDX)) {
		snprintf(why, len, "CPU model \"%s\" advertises CPUID.1:EDX features "
			 "0x%08x that cpu-bt does not implement", m->name, bad);
		return -1;
	}
	if (l1 && (l1->ecx & XSAVE_BIT) && check_xsave(m, why, len))
		return -1;
	l7 = cpuid_model_leaf(m, 7, 0);
	if (l7 && ((l7->ebx & ~OK_7_EBX) || (l7->ecx & ~OK_7_ECX) || l7->edx ||
		   l7->eax)) {
		snprintf(why, len, "CPU model \"%s\" advertises CPUID.7.0 features "
			 "(EBX 0x%08x ECX 0x%08x EDX 0x%08x, or sub-leaves EAX %u) "
			 "that cpu-bt does not implement", m->name,
			 l7->ebx & ~OK_7_EBX, l7->ecx & ~OK_7_ECX, l7->edx, l7->eax);
		return -1;
	}
	/* PKS is Intel's (SDM 3A 4.6.2); models stay vendor-consistent */
	if (l7 && (l7->ecx & L7C_PKS) && is_amd(m)) {
		snprintf(why, len, "CPU model \"%s\" is AuthenticAMD and advertises "
			 "PKS (CPUID.7.0:ECX bit 31), which only Intel CPUs have",
			 m->name);
		return -1;
	}
	if (x1 && ((bad = x1->ecx & ~OK_X_ECX) || (x1->edx & ~OK_X_EDX))) {
		snprintf(why, len, "CPU model \"%s\" advertises extended features "
			 "(CPUID.80000001h ECX 0x%08x EDX 0x%08x) that cpu-bt does "
			 "not implement", m->name, x1->ecx & ~OK_X_ECX,
			 x1->edx & ~OK_X_EDX);
		return -1;
	}
	return 0;
}

void bt_cpu_set_model(struct bt_cpu *c, const struct modvm_cpu_model *model)
{
	const struct modvm_cpuid_leaf *l0 = cpuid_model_leaf(model, 0, 0);
	const struct modvm_cpuid_leaf *l1 = cpuid_model_leaf(model, 1, 0);
	const struct modvm_cpuid_leaf *x1 = cpuid_model_leaf(model, 0x80000001, 0);
	const struct modvm_cpuid_leaf *d0 = NULL, *d1 = NULL, *l7 = NULL;

	if (l0 && l0->eax >= 7) /* beyond the maximum leaf: not seen */
		l7 = cpuid_model_leaf(model, 7, 0);
	c->model = model;
	c->has_pcid = c->has_x2apic = c->has_tsc_deadline = false;
	c->has_smep = c->has_smap = c->has_invpcid = c->has_umip = false;
	c->has_pku = c->has_pks = c->has_rdpid = c->has_mca = false;
	if (l7) {
		c->has_smep = l7->ebx & L7B_SMEP;
		c->has_invpcid = l7->ebx & L7B_INVPCID;
		c->has_smap = l7->ebx & L7B_SMAP;
		c->has_umip = l7->ecx & L7C_UMIP;
		c->has_pku = l7->ecx & L7C_PKU;
		c->has_pks = l7->ecx & L7C_PKS;
		c->has_rdpid = l7->ecx & L7C_RDPID;
	}
	c->has_cx16 = c->has_pge = c->has_pse = c->has_xsave = false;
	c->has_lahf64 = c->has_syscall = c->has_nx = c->has_1g = false;
	c->has_rdtscp = c->has_lm = c->has_xsaveopt = false;
	c->vendor_amd = is_amd(model);
	c->xcr0_ok = 1;
	if (l1) {
		c->has_cx16 = l1->ecx & (1u << 13);
		c->has_pge = l1->edx & (1u << 13);
		c->has_pse = l1->edx & (1u << 3);
		c->has_xsave = l1->ecx & XSAVE_BIT;
		c->has_pcid = l1->ecx & PCID_BIT;
		c->has_mca = l1->edx & (1u << 14);
		c->has_x2apic = l1->ecx & X2APIC_BIT;
		c->has_tsc_deadline = l1->ecx & TSC_DL_BIT;
	}
	if (c->has_xsave) {
		d0 = cpuid_model_leaf(model, 0xD, 0);
		d1 = cpuid_model_leaf(model, 0xD, 1);
		c->xcr0_ok = d0 ? (d0->eax & XCR0_OK) | 1 : 1;
		c->has_xsaveopt = d1 && (d1->eax & 1);
	}
	if (x1) {
		c->has_lahf64 = x1->ecx & 1;
		c->has_syscall = x1->edx & (1u << 11);
		c->has_nx = x1->edx & (1u << 20);
		c->has_1g = x1->edx & (1u << 26);
		c->has_rdtscp = x1->edx & (1u << 27);
		c->has_lm = x1->edx & (1u << 29);
	}
}

void bt_cpu_init(struct bt_cpu *c, const struct bt_bus *bus,
		 const struct modvm_cpu_model *model, unsigned index)
{
	memset(c, 0, sizeof(*c));
	c->inject_vec = -1;
	c->bus = bus;
	c->index = index;
	c->delivering = -1;
	c->a20_cur = 1;
	c->a20_mask = ~0ull;
	c->s.rflags = 2;
	c->s.cr0 = CR0_ET;
	c->s.xcr0 = 1; /* power-up value (SDM vol. 1 13.3) */
	bt_cpu_set_model(c, model);
	bt_cpu_update_mode(c);
}

void bt_cpu_set_state(struct bt_cpu *c, const struct modvm_cpu_state *s)
{
	c->s = *s;
	c->s.rflags |= 2;
	c->shadow = 0;
	c->dbg_held = 0;
	c->dbg_wake = 0;
	c->nmi_pending = s->ev.nmi_pending;
	c->delivering = -1;
	c->shutdown = false;
	c->tsc_offset = s->msr.tsc - c->bus->clock_ns(c->bus->opaque);
	c->pkrs = c->has_pks ? (uint32_t)s->pkrs : 0;
	bt_xsave_import(c);
	bt_cpu_update_mode(c);
	bt_dbg_update(c);
	/* Events another engine was delivering when it saved the state. The
	 * interpreter delivers atomically, so it never saves one itself. */
	c->inject_vec = -1;
	if (s->ev.exception_injected || s->ev.exception_pending) {
		c->inject_vec = s->ev.exception_vector;
		c->inject_kind = BT_EV_EXC;
		c->inject_has_err = s->ev.exception_has_error;
		c->inject_err = s->ev.exception_error;
		if (s->ev.exception_vector == BT_PFV && s->ev.exception_payload)
			c->s.cr2 = s->ev.exception_payload;
	} else if (s->ev.nmi_injected) {
		c->inject_vec = BT_NMI;
		c->inject_kind = BT_EV_EXT;
		c->inject_has_err = false;
	} else if (s->ev.interrupt_injected) {
		c->inject_vec = s->ev.interrupt_vector;
		c->inject_kind = s->ev.interrupt_soft ? BT_EV_SOFT : BT_EV_EXT;
		c->inject_has_err = false;
	}
	memset(&c->s.ev, 0, sizeof(c->s.ev));
	c->s.ev.interrupt_shadow = s->ev.interrupt_shadow;
	c->s.ev.nmi_masked = s->ev.nmi_masked;
	bt_tlb_flush(c, true);
	/* memory may hold anything now (a snapshot, another engine) */
	bt_jit_flush_all(c);
}

void bt_cpu_get_state(struct bt_cpu *c, struct modvm_cpu_state *s)
{
	*s = c->s;
	s->msr.tsc = bt_tsc(c);
	s->pkrs = c->pkrs;
	s->ev.nmi_pending = c->nmi_pending;
}

bool bt_cpu_intr_window(const struct bt_cpu *c)
{
	return (c->s.rflags & BT_IF) && !c->s.ev.interrupt_shadow;
}

static bool contributory(int v)
{
	return v == BT_DE || v == BT_TS || v == BT_NP || v == BT_SSV || v == BT_GP;
}

/* An exception was raised inside an instruction or a delivery. */
static void handle_fault(struct bt_cpu *c)
{
	int vec = c->fault_vec, prev = c->delivering;
	bool has_err = c->fault_has_err;
	uint32_t err = c->fault_err;

	bt_lock_end(c);
	bt_fpu_host_reset();
	c->s.rip = c->insn_rip;
	c->delivering = -1;
	c->dr6_pending = 0;
	c->dbg_held = 0;
	if (prev >= 0) {
		if (prev == BT_DFV) {
			c->shutdown = true;
			return;
		}
		if ((contributory(prev) && contributory(vec)) ||
		    (prev == BT_PFV && (vec == BT_PFV || contributory(vec)))) {
			vec = BT_DFV;
			has_err = true;
			err = 0;
		}
	}
	/* Faults push RF=1 so that IRET does not re-trigger an instruction
	 * breakpoint (SDM 3A 17.3.1.1). */
	if (vec != BT_DB && vec != BT_BP && vec != BT_OFV)
		c->s.rflags |= BT_RF;
	bt_deliver(c, vec, has_err, err, BT_EV_EXC, c->s.rip);
}

/* Fetch and decode the instruction at CS:rIP into c->in-> */
static void fetch(struct bt_cpu *c)
{
	const struct modvm_segment *cs = &c->s.seg[BT_CS];
	uint64_t rip = c->s.rip, lin;
	uint8_t buf[16];
	struct bt_icache_entry *ic;
	unsigned n, first;
	int r;

	if (c->mode == BT_MODE64) {
		/* only AMD's SYSRET can leave a non-canonical RIP: the fetch
		 * faults, at the new CPL (branches check their targets) */
		if ((uint64_t)((int64_t)(rip << 16) >> 16) != rip)
			bt_raise(c, BT_GP, 0);
		lin = rip;
		n = 15;
	} else {
		rip &= 0xFFFFFFFFull;
		if (rip > cs->limit)
			bt_raise(c, BT_GP, 0);
		lin = (cs->base + rip) & 0xFFFFFFFFull;
		n = cs->limit - rip + 1 < 15 ? (unsigned)(cs->limit - rip + 1) : 15;
	}
	first = 4096 - (lin & 0xFFF);
	if (first > n)
		first = n;
	ic = &c->icache[(lin ^ (lin >> 12)) % BT_ICACHE_SIZE];
	if (ic->len && ic->lin == lin && ic->mode == c->mode && ic->len <= first) {
		/* compare in place: the bytes may have changed since */
		const uint8_t *p = bt_fetch_ptr(c, lin);
		if (p && !memcmp(ic->bytes, p, ic->len)) {
			c->in = &ic->insn;
			c->icache_hits++;
			r = ic->len;
			goto decoded;
		}
	}
	bt_fetch_lin(c, lin, buf, first);
	c->in = &c->scratch;
	r = bt_decode(buf, first, c->mode, &c->scratch);
	if (r == BT_DEC_MORE && first < n) {
		bt_fetch_lin(c, lin + first, buf + first, n - first);
		r = bt_decode(buf, n, c->mode, &c->scratch);
	}
	if (r > 0 && r <= (int)first) {
		ic->lin = lin;
		ic->mode = c->mode;
		ic->len = (uint8_t)r;
		memcpy(ic->bytes, buf, (size_t)r);
		ic->insn = c->scratch;
	}
	if (r == BT_DEC_MORE || r == BT_DEC_GP)
		bt_raise(c, BT_GP, 0);
	if (r == BT_DEC_UD)
		bt_raise_noerr(c, BT_UD);
decoded:
	c->next_rip = c->s.rip + (unsigned)r;
	if (c->mode != BT_MODE64)
		c->next_rip &= 0xFFFFFFFFull;
}

#define DR6_BS (1u << 14)

/* Deliver an NMI or a maskable interrupt if one is pending and allowed.
 * A HLT that was single-stepped takes its #DB when such an event ends the
 * halt, first: traps of the previous instruction come before NMIs and
 * interrupts (SDM 3A 6.9, priorities 4 and 5), and the handler then runs
 * with the event still pending. */
static void take_events(struct bt_cpu *c)
{
	if (c->s.ev.interrupt_shadow)
		return;
	c->insn_rip = c->s.rip;
	if (c->dbg_wake && c->s.halted &&
	    ((c->nmi_pending && !c->s.ev.nmi_masked) ||
	     ((c->s.rflags & BT_IF) && c->bus->intr_pending(c->bus->opaque)))) {
		c->s.dr6 = (c->s.dr6 & ~0xFull) | c->dbg_wake;
		c->dbg_wake = 0;
		c->s.halted = 0;
		bt_deliver(c, BT_DB, false, 0, BT_EV_EXC, c->s.rip);
		return;
	}
	if (c->nmi_pending && !c->s.ev.nmi_masked) {
		c->nmi_pending = false;
		c->s.halted = 0;
		bt_deliver(c, BT_NMI, false, 0, BT_EV_EXT, c->s.rip);
		return;
	}
	if ((c->s.rflags & BT_IF) && c->bus->intr_pending(c->bus->opaque)) {
		int vec = c->bus->intr_ack(c->bus->opaque);
		if (vec < 0)
			return;
		c->s.halted = 0;
		bt_deliver(c, vec & 0xFF, false, 0, BT_EV_EXT, c->s.rip);
	}
}

static void step(struct bt_cpu *c)
{
	bool tf = c->s.rflags & BT_TF;
	uint32_t dbg;

	c->insn_rip = c->s.rip;
	c->shadow = 0;
	c->dbg_hold = false;
	c->sw_event = false;
	if (c->s.dr7 & 0xFF)
		dbg_insn(c);
	fetch(c);
	/* RF masks instruction breakpoints for one instruction. Clear it
	 * before, not after, the instruction: the RF that IRET loads must
	 * survive to the next one (SDM 3A 17.3.1.1). */
	c->s.rflags &= ~(uint64_t)BT_RF;
	bt_exec(c);
	c->s.rip = c->next_rip;
	c->s.ev.interrupt_shadow = c->shadow;
	c->icount++;
	/* SYSCALL and SYSRET single-step on the TF they leave, not the one
	 * they found, on Intel and AMD alike (Xen XSA-204, kvm-unit-tests
	 * x86/syscall.c): SYSCALL with TF masked by SFMASK traps nowhere,
	 * SYSRET setting TF traps before the first user instruction. */
	if (c->in->op == BT_OP_SYSCALL || c->in->op == BT_OP_SYSRET)
		tf = c->s.rflags & BT_TF;
	/* single-step and data breakpoints: a trap after the instruction
	 * (SDM 3A 17.3.1.2, 17.3.1.4); after MOV SS or POP SS, after the
	 * next one, together with its own (SDM 3A 6.8.3) */
	dbg = (uint32_t)c->dr6_pending | (tf ? DR6_BS : 0);
	c->dr6_pending = 0;
	if (c->sw_event) {
		c->dbg_held = 0;
		return;
	}
	if (c->dbg_hold) {
		c->dbg_held |= dbg;
		return;
	}
	dbg |= c->dbg_held;
	c->dbg_held = 0;
	if (dbg && c->s.halted && c->in->op == BT_OP_HLT) {
		c->dbg_wake = dbg; /* HLT ends when the CPU wakes */
		return;
	}
	if (dbg) {
		c->s.dr6 = (c->s.dr6 & ~0xFull) | dbg;
		c->insn_rip = c->s.rip;
		bt_deliver(c, BT_DB, false, 0, BT_EV_EXC, c->s.rip);
	}
}

void bt_cpu_step(struct bt_cpu *c)
{
	step(c);
}

bool bt_cpu_step_n(struct bt_cpu *c, unsigned n)
{
	jmp_buf saved;
	volatile bool ok = true;

	memcpy(&saved, &c->jb, sizeof(saved));
	if (setjmp(c->jb)) {
		bt_lock_end(c);
		ok = false;
	} else {
		for (unsigned i = 0; i < n; i++)
			step(c);
	}
	memcpy(&c->jb, &saved, sizeof(saved));
	return ok;
}

void bt_cpu_apply_a20(struct bt_cpu *c)
{
	c->a20_cur = c->a20_line ? *c->a20_line != 0 : 1;
	c->a20_mask = c->a20_cur ? ~0ull : ~(1ull << 20);
	bt_tlb_flush(c, true);
}

enum bt_exit bt_cpu_run(struct bt_cpu *c, uint64_t budget)
{
	volatile uint64_t done = 0;

	if (c->shutdown)
		return BT_EXIT_SHUTDOWN;
	if (setjmp(c->jb)) {
		handle_fault(c);
		if (c->shutdown)
			return BT_EXIT_SHUTDOWN;
		c->s.ev.interrupt_shadow = 0;
	}
	if (c->inject_vec >= 0) {
		int vec = c->inject_vec;
		c->inject_vec = -1;
		c->insn_rip = c->s.rip;
		c->s.halted = 0;
		bt_deliver(c, vec, c->inject_has_err, c->inject_err, c->inject_kind,
			   c->s.rip);
	}
	while (done < budget) {
		/* requests made before this point are served by the checks
		 * below; later ones end translated code at its next block */
		if (c->jit)
			__atomic_store_n(&c->jit_exit_req, 0, __ATOMIC_SEQ_CST);
		if (c->stop && *c->stop)
			return BT_EXIT_STOP;
		if (c->a20_line && (*c->a20_line != 0) != c->a20_cur)
			bt_cpu_apply_a20(c);
		take_events(c);
		if (c->s.halted)
			return BT_EXIT_HLT;
		if (c->jit) {
			/* translated blocks count one each against the budget */
			uint64_t n = bt_jit_exec(c, budget - done);
			if (n) {
				done = done + n;
				continue;
			}
		}
		step(c);
		done = done + 1;
	}
	return BT_EXIT_BUDGET;
}

uint32_t bt_pkru(const struct bt_cpu *c)
{
	uint64_t bv;
	uint32_t v;

	memcpy(&bv, c->s.xsave + 512, 8);
	if (!(bv & (1ull << 9)))
		return 0;
	memcpy(&v, c->s.xsave + BT_XS_PKRU, 4);
	return v;
}

void bt_set_pkru(struct bt_cpu *c, uint32_t v)
{
	uint64_t bv;

	memcpy(&bv, c->s.xsave + 512, 8);
	bv |= 1ull << 9;
	memcpy(c->s.xsave + 512, &bv, 8);
	memcpy(c->s.xsave + BT_XS_PKRU, &v, 4);
	memset(c->s.xsave + BT_XS_PKRU + 4, 0, 4);
}
