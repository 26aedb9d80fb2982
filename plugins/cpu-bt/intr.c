/* cpu-bt: control transfers between privilege levels. Interrupt and
 * exception delivery through the IVT, the protected-mode IDT and the
 * IA-32e IDT (SDM 3A 6.12, 6.14), far JMP/CALL/RET through code segments
 * and call gates (SDM 3A 5.8), and IRET (SDM vol. 2 IRET).
 */
#include <string.h>

#include "cpu.h"

#define GATE_TASK 5
#define GATE_INT16 6
#define GATE_TRAP16 7
#define GATE_CALL32 0xC
#define GATE_INT32 0xE
#define GATE_TRAP32 0xF
#define GATE_CALL16 4

/* A stack being built at a (possibly new) SS:rSP. */
struct stk {
	struct modvm_segment ss;
	uint64_t sp;
	uint64_t mask; /* stack width mask */
	int cpl;       /* privilege of the writes */
	uint32_t ss_err;
};

static void stk_push(struct bt_cpu *c, struct stk *s, uint64_t v, unsigned n)
{
	uint64_t lin;
	bool down = !(s->ss.type & 8) && (s->ss.type & 4);

	s->sp = (s->sp - n) & s->mask;
	if (s->mask == ~0ull) {
		lin = s->sp; /* 64-bit stack: flat, no limit */
	} else {
		if (c->pm && !down && s->sp + n - 1 > s->ss.limit)
			bt_raise(c, BT_SSV, s->ss_err);
		lin = (s->ss.base + s->sp) & 0xFFFFFFFFull;
	}
	bt_lin_write(c, lin, n, v, s->cpl);
}

static void stk_current(struct bt_cpu *c, struct stk *s)
{
	s->ss = c->s.seg[BT_SS];
	s->mask = bt_sp_mask(c);
	s->sp = c->s.gpr[MODVM_RSP] & s->mask;
	s->cpl = c->cpl;
	s->ss_err = 0;
}

/* Read the inner stack pointer for privilege level dpl from the TSS. */
static void tss_stack(struct bt_cpu *c, unsigned dpl, uint16_t *ss,
		      uint64_t *sp, uint32_t ext)
{
	uint64_t base = c->s.tr.base;
	bool tss32 = c->s.tr.type & 8;
	unsigned off = tss32 ? 4 + dpl * 8 : 2 + dpl * 4;

	if (off + (tss32 ? 5 : 3) > c->s.tr.limit)
		bt_raise(c, BT_TS, (c->s.tr.selector & 0xFFFC) | ext);
	if (tss32) {
		*sp = bt_lin_read(c, base + off, 4, BT_CPL_SYS);
		*ss = (uint16_t)bt_lin_read(c, base + off + 4, 2, BT_CPL_SYS);
	} else {
		*sp = bt_lin_read(c, base + off, 2, BT_CPL_SYS);
		*ss = (uint16_t)bt_lin_read(c, base + off + 2, 2, BT_CPL_SYS);
	}
}

/* Validate a stack segment for a privilege change to dpl (SDM 3A 6.12.1). */
static void inner_ss(struct bt_cpu *c, uint16_t sel, unsigned dpl,
		     struct modvm_segment *out, uint32_t ext)
{
	uint64_t lo, hi;
	uint32_t err = (sel & 0xFFFC) | ext;

	if (!(sel & ~3u) || !bt_read_desc(c, sel, &lo, &hi, false))
		bt_raise(c, BT_TS, err);
	bt_desc_to_seg(out, sel, lo, hi);
	if ((sel & 3) != dpl || out->dpl != dpl || !out->s || (out->type & 8) ||
	    !(out->type & 2))
		bt_raise(c, BT_TS, err);
	if (!out->present)
		bt_raise(c, BT_SSV, err);
}

static void load_code(struct bt_cpu *c, uint16_t sel, struct modvm_segment *d,
		      unsigned cpl)
{
	d->selector = (sel & ~3u) | cpl;
	d->type |= 1;
	c->s.seg[BT_CS] = *d;
	c->cpl = cpl;
	c->s.seg[BT_SS].dpl = cpl;
}


/* ---- hardware task switch (SDM 3A 7.3): 32-bit and 16-bit (286) TSS -- */

enum ts_reason { TS_JMP, TS_CALL, TS_INT, TS_IRET };

static void tss_busy(struct bt_cpu *c, uint16_t sel, bool busy)
{
	uint64_t a = c->s.gdt.base + (sel & ~7u) + 5;
	uint8_t b = (uint8_t)bt_lin_read(c, a, 1, BT_CPL_SYS);

	b = busy ? (b | 2) : (b & ~2);
	bt_lin_write(c, a, 1, b, BT_CPL_SYS);
}

/* The dynamic fields of a TSS. 32-bit layout: SDM 3A figure 7-2; 16-bit:
 * figure 7-11 (IP 0Eh, FLAGS 10h, AX..DI 12h-20h, ES CS SS DS 22h-28h,
 * LDT 2Ah; no CR3, FS or GS). */
struct tss_state {
	uint32_t cr3, eip, eflags, gpr[8];
	uint16_t sels[MODVM_NR_SREGS], ldt;
};

static const int tss_order[MODVM_NR_SREGS] = { BT_ES, BT_CS, BT_SS, BT_DS,
					       BT_FS, BT_GS };

static void tss_read(struct bt_cpu *c, uint64_t b, bool t16, struct tss_state *t)
{
	unsigned w = t16 ? 2 : 4, ip = t16 ? 0x0E : 0x20, regs = t16 ? 0x12 : 0x28;
	unsigned segs = t16 ? 0x22 : 0x48, nseg = t16 ? 4 : MODVM_NR_SREGS;

	t->cr3 = t16 ? 0 : (uint32_t)bt_lin_read(c, b + 0x1C, 4, BT_CPL_SYS);
	t->eip = (uint32_t)bt_lin_read(c, b + ip, w, BT_CPL_SYS);
	t->eflags = (uint32_t)bt_lin_read(c, b + ip + w, w, BT_CPL_SYS);
	for (int i = 0; i < 8; i++)
		t->gpr[i] = (uint32_t)bt_lin_read(c, b + regs + w * i, w, BT_CPL_SYS);
	for (unsigned i = 0; i < MODVM_NR_SREGS; i++)
		t->sels[tss_order[i]] = i < nseg
			? (uint16_t)bt_lin_read(c, b + segs + w * i, 2, BT_CPL_SYS)
			: c->s.seg[tss_order[i]].selector; /* 286: FS GS kept */
	t->ldt = (uint16_t)bt_lin_read(c, b + (t16 ? 0x2A : 0x60), 2, BT_CPL_SYS);
}

static void tss_save(struct bt_cpu *c, uint64_t b, bool t16, uint32_t eip,
		     uint32_t flags)
{
	unsigned w = t16 ? 2 : 4, ip = t16 ? 0x0E : 0x20, regs = t16 ? 0x12 : 0x28;
	unsigned segs = t16 ? 0x22 : 0x48, nseg = t16 ? 4 : MODVM_NR_SREGS;

	bt_lin_write(c, b + ip, w, eip, BT_CPL_SYS);
	bt_lin_write(c, b + ip + w, w, flags, BT_CPL_SYS);
	for (int i = 0; i < 8; i++)
		bt_lin_write(c, b + regs + w * i, w, (uint32_t)c->s.gpr[i], BT_CPL_SYS);
	for (unsigned i = 0; i < nseg; i++)
		bt_lin_write(c, b + segs + w * i, 2, c->s.seg[tss_order[i]].selector,
			     BT_CPL_SYS);
}

static void task_switch(struct bt_cpu *c, uint16_t sel, uint64_t lo, uint64_t hi,
			enum ts_reason why, bool has_err, uint32_t err,
			uint64_t ret)
{
	struct modvm_segment nt;
	uint64_t ob = c->s.tr.base, nb;
	uint16_t old_sel = c->s.tr.selector;
	uint32_t flags = (uint32_t)c->s.rflags, eip, eflags, cr3;
	uint16_t *sels, ldt;
	struct tss_state t;
	bool t16, old16 = !(c->s.tr.type & 8);

	if (c->lma || (sel & 4))
		bt_raise(c, BT_GP, sel & 0xFFFC);
	bt_desc_to_seg(&nt, sel, lo, hi);
	if (nt.s || (nt.type & 5) != 1)
		bt_raise(c, BT_GP, sel & 0xFFFC); /* not a TSS (types 1 3 9 B) */
	t16 = !(nt.type & 8);
	if ((why == TS_IRET) != !!(nt.type & 2))
		bt_raise(c, why == TS_IRET ? BT_TS : BT_GP, sel & 0xFFFC);
	if (!nt.present)
		bt_raise(c, BT_NP, sel & 0xFFFC);
	if (nt.limit < (t16 ? 0x2Bu : 0x67u))
		bt_raise(c, BT_TS, sel & 0xFFFC);
	nb = nt.base;
	/* read the new state first: a fault leaves the old task intact */
	tss_read(c, nb, t16, &t);
	cr3 = t.cr3;
	eip = t.eip;
	eflags = t.eflags;
	sels = t.sels;
	ldt = t.ldt;
	/* save the outgoing task */
	if (why == TS_IRET)
		flags &= ~BT_NT;
	tss_save(c, ob, old16, (uint32_t)ret, flags);
	if (why == TS_JMP || why == TS_IRET)
		tss_busy(c, old_sel, false);
	if (why == TS_CALL || why == TS_INT) {
		bt_lin_write(c, nb, 2, old_sel, BT_CPL_SYS);
		eflags |= BT_NT;
	}
	if (why != TS_IRET)
		tss_busy(c, sel, true);
	nt.type |= 2;
	c->s.tr = nt;
	c->s.cr0 |= CR0_TS;
	/* load the incoming task; a 286 TSS has no CR3 and 16-bit registers
	 * (the upper halves are kept) */
	if ((c->s.cr0 & CR0_PG) && !t16) {
		c->s.cr3 = cr3;
		bt_tlb_flush(c, false);
	}
	c->s.rflags = (eflags & (t16 ? 0x7FD7u : 0x3F7FD7u)) | 2;
	for (int i = 0; i < 8; i++)
		bt_set_reg(c, i, t16 ? 2 : 4, t.gpr[i]);
	c->s.rip = c->next_rip = eip;
	/* segment registers: selectors first, then descriptors with the new
	 * CPL (faults here belong to the new task) */
	for (int i = 0; i < MODVM_NR_SREGS; i++)
		c->s.seg[i].selector = sels[i];
	c->s.seg[BT_SS].dpl = sels[BT_CS] & 3;
	c->s.cr0 |= CR0_PE;
	bt_cpu_update_mode(c);
	if (c->s.rflags & BT_VM) {
		for (int i = 0; i < MODVM_NR_SREGS; i++)
			bt_load_seg(c, i, sels[i]);
	} else {
		uint64_t clo, chi;
		struct modvm_segment cs;
		if (!(ldt & ~3u)) {
			memset(&c->s.ldt, 0, sizeof(c->s.ldt));
			c->s.ldt.unusable = 1;
		} else {
			uint64_t llo, lhi;
			if ((ldt & 4) || !bt_read_desc(c, ldt, &llo, &lhi, true))
				bt_raise(c, BT_TS, ldt & 0xFFFC);
			bt_desc_to_seg(&c->s.ldt, ldt, llo, lhi);
		}
		if (!(sels[BT_CS] & ~3u) || !bt_read_desc(c, sels[BT_CS], &clo, &chi, false))
			bt_raise(c, BT_TS, sels[BT_CS] & 0xFFFC);
		bt_desc_to_seg(&cs, sels[BT_CS], clo, chi);
		if (!cs.s || !(cs.type & 8))
			bt_raise(c, BT_TS, sels[BT_CS] & 0xFFFC);
		load_code(c, sels[BT_CS], &cs, sels[BT_CS] & 3);
		bt_cpu_update_mode(c);
		bt_load_seg(c, BT_SS, sels[BT_SS]);
		for (int i = 0; i < MODVM_NR_SREGS; i++)
			if (i != BT_CS && i != BT_SS)
				bt_load_seg(c, i, sels[i]);
	}
	bt_cpu_update_mode(c);
	if (has_err) {
		struct stk s;
		stk_current(c, &s);
		stk_push(c, &s, err, t16 ? 2 : 4);
		c->s.gpr[MODVM_RSP] = (c->s.gpr[MODVM_RSP] & ~s.mask) | s.sp;
	}
}

static void task_gate(struct bt_cpu *c, uint64_t glo, enum ts_reason why,
		      bool has_err, uint32_t err, uint64_t ret)
{
	uint16_t sel = (glo >> 16) & 0xFFFF;
	uint64_t lo, hi;

	if ((sel & 4) || !bt_read_desc(c, sel, &lo, &hi, false))
		bt_raise(c, BT_GP, sel & 0xFFFC);
	task_switch(c, sel, lo, hi, why, has_err, err, ret);
}

static void deliver_real(struct bt_cpu *c, int vec, uint64_t ret)
{
	uint64_t ent;
	struct stk s;

	if ((unsigned)vec * 4 + 3 > c->s.idt.limit)
		bt_raise(c, BT_GP, vec * 8 + 2);
	ent = bt_lin_read(c, c->s.idt.base + vec * 4, 4, BT_CPL_SYS);
	stk_current(c, &s);
	stk_push(c, &s, c->s.rflags, 2);
	stk_push(c, &s, c->s.seg[BT_CS].selector, 2);
	stk_push(c, &s, ret, 2);
	bt_set_rsp(c, s.sp);
	c->s.rflags &= ~(uint64_t)(BT_IF | BT_TF | BT_AC | BT_RF);
	bt_seg_real(&c->s.seg[BT_CS], (uint16_t)(ent >> 16));
	c->next_rip = c->s.rip = ent & 0xFFFF;
}

static void deliver_long(struct bt_cpu *c, int vec, bool has_err, uint32_t err,
			 int kind, uint64_t ret, uint32_t ext)
{
	uint64_t lo, hi, clo, chi, rsp, target;
	struct modvm_segment cs;
	unsigned type, dpl, ist, cpl = c->cpl, ncpl;
	uint16_t sel;
	uint64_t old_ss = c->s.seg[BT_SS].selector, old_rsp = c->s.gpr[MODVM_RSP];
	uint64_t flags = c->s.rflags;
	uint32_t gerr = vec * 8 + 2 + ext;
	struct stk s;

	if ((unsigned)vec * 16 + 15 > c->s.idt.limit)
		bt_raise(c, BT_GP, gerr);
	lo = bt_lin_read(c, c->s.idt.base + vec * 16, 8, BT_CPL_SYS);
	hi = bt_lin_read(c, c->s.idt.base + vec * 16 + 8, 8, BT_CPL_SYS);
	type = (lo >> 40) & 15;
	dpl = (lo >> 45) & 3;
	ist = (lo >> 32) & 7;
	if (type != GATE_INT32 && type != GATE_TRAP32)
		bt_raise(c, BT_GP, gerr);
	if (kind >= BT_EV_SOFT && kind != BT_EV_ICEBP && dpl < cpl)
		bt_raise(c, BT_GP, gerr);
	if (!(lo & (1ull << 47)))
		bt_raise(c, BT_NP, gerr);
	sel = (lo >> 16) & 0xFFFF;
	target = (lo & 0xFFFF) | ((lo >> 32) & 0xFFFF0000ull) | (hi << 32);
	if (!(sel & ~3u) || !bt_read_desc(c, sel, &clo, &chi, false))
		bt_raise(c, BT_GP, (sel & 0xFFFC) | ext);
	bt_desc_to_seg(&cs, sel, clo, chi);
	if (!cs.s || !(cs.type & 8) || cs.dpl > cpl || !cs.l || cs.db)
		bt_raise(c, BT_GP, (sel & 0xFFFC) | ext);
	if (!cs.present)
		bt_raise(c, BT_NP, (sel & 0xFFFC) | ext);
	ncpl = (cs.type & 4) ? cpl : cs.dpl;
	if (ist || ncpl < cpl) {
		/* RSPn or ISTn from the 64-bit TSS (SDM 3A 7.7) */
		unsigned off = ist ? 0x24 + 8 * (ist - 1) : 4 + 8 * ncpl;
		if (c->s.tr.unusable || off + 7 > c->s.tr.limit)
			bt_raise(c, BT_TS, (c->s.tr.selector & 0xFFFC) | ext);
		rsp = bt_lin_read(c, c->s.tr.base + off, 8, BT_CPL_SYS);
	} else {
		rsp = old_rsp;
	}
	rsp &= ~15ull; /* SDM 3A 6.14.2: aligned to 16 bytes */
	s.ss = c->s.seg[BT_SS];
	s.sp = rsp;
	s.mask = ~0ull;
	s.cpl = ncpl;
	s.ss_err = 0;
	/* in IA-32e mode the stack is flat: push with 64-bit linear */
	stk_push(c, &s, old_ss, 8);
	stk_push(c, &s, old_rsp, 8);
	stk_push(c, &s, flags, 8);
	stk_push(c, &s, c->s.seg[BT_CS].selector, 8);
	stk_push(c, &s, ret, 8);
	if (has_err)
		stk_push(c, &s, err, 8);
	if (ncpl < cpl) {
		/* SS becomes a null selector with RPL = new CPL */
		memset(&c->s.seg[BT_SS], 0, sizeof(c->s.seg[BT_SS]));
		c->s.seg[BT_SS].selector = ncpl;
		c->s.seg[BT_SS].unusable = 1;
	}
	load_code(c, sel, &cs, ncpl);
	c->s.gpr[MODVM_RSP] = s.sp;
	c->s.rflags &= ~(uint64_t)(BT_TF | BT_NT | BT_RF | BT_VM);
	if (type == GATE_INT32)
		c->s.rflags &= ~(uint64_t)BT_IF;
	bt_cpu_update_mode(c);
	c->next_rip = c->s.rip = target;
}

static void deliver_prot(struct bt_cpu *c, int vec, bool has_err, uint32_t err,
			 int kind, uint64_t ret, uint32_t ext)
{
	uint64_t lo, clo, chi, target;
	struct modvm_segment cs, nss;
	unsigned type, dpl, cpl = c->cpl, ncpl;
	uint16_t sel, nss_sel;
	uint64_t nsp;
	bool v86 = c->s.rflags & BT_VM, g32;
	uint32_t gerr = vec * 8 + 2 + ext;
	uint64_t flags = c->s.rflags;
	struct stk s;
	unsigned n;

	if ((unsigned)vec * 8 + 7 > c->s.idt.limit)
		bt_raise(c, BT_GP, gerr);
	lo = bt_lin_read(c, c->s.idt.base + vec * 8, 8, BT_CPL_SYS);
	type = (lo >> 40) & 31; /* includes S, which must be 0 */
	dpl = (lo >> 45) & 3;
	if (type != GATE_INT16 && type != GATE_TRAP16 && type != GATE_INT32 &&
	    type != GATE_TRAP32 && type != GATE_TASK)
		bt_raise(c, BT_GP, gerr);
	if (kind >= BT_EV_SOFT && kind != BT_EV_ICEBP && dpl < cpl)
		bt_raise(c, BT_GP, gerr);
	if (!(lo & (1ull << 47)))
		bt_raise(c, BT_NP, gerr);
	if (type == GATE_TASK) {
		task_gate(c, lo, TS_INT, has_err, err, ret);
		return;
	}
	g32 = type & 8;
	n = g32 ? 4 : 2;
	sel = (lo >> 16) & 0xFFFF;
	target = (lo & 0xFFFF) | ((lo >> 32) & 0xFFFF0000ull);
	if (!g32)
		target &= 0xFFFF;
	if (!(sel & ~3u) || !bt_read_desc(c, sel, &clo, &chi, false))
		bt_raise(c, BT_GP, (sel & 0xFFFC) | ext);
	bt_desc_to_seg(&cs, sel, clo, chi);
	if (!cs.s || !(cs.type & 8) || cs.dpl > cpl)
		bt_raise(c, BT_GP, (sel & 0xFFFC) | ext);
	if (!cs.present)
		bt_raise(c, BT_NP, (sel & 0xFFFC) | ext);
	ncpl = (cs.type & 4) ? cpl : cs.dpl;
	if (v86 && ncpl != 0)
		bt_raise(c, BT_GP, (sel & 0xFFFC) | ext);
	if (ncpl < cpl) {
		tss_stack(c, ncpl, &nss_sel, &nsp, ext);
		inner_ss(c, nss_sel, ncpl, &nss, ext);
		s.ss = nss;
		s.mask = nss.db ? 0xFFFFFFFFull : 0xFFFF;
		s.sp = nsp & s.mask;
		s.cpl = ncpl;
		s.ss_err = (nss_sel & 0xFFFC) | ext;
		if (v86) {
			stk_push(c, &s, c->s.seg[BT_GS].selector, n);
			stk_push(c, &s, c->s.seg[BT_FS].selector, n);
			stk_push(c, &s, c->s.seg[BT_DS].selector, n);
			stk_push(c, &s, c->s.seg[BT_ES].selector, n);
		}
		stk_push(c, &s, c->s.seg[BT_SS].selector, n);
		stk_push(c, &s, c->s.gpr[MODVM_RSP], n);
	} else {
		stk_current(c, &s);
	}
	stk_push(c, &s, flags, n);
	stk_push(c, &s, c->s.seg[BT_CS].selector, n);
	stk_push(c, &s, ret, n);
	if (has_err)
		stk_push(c, &s, err, n);
	if (target > cs.limit)
		bt_raise(c, BT_GP, ext);
	/* commit */
	if (ncpl < cpl) {
		nss.type |= 1;
		c->s.seg[BT_SS] = nss;
		if (v86)
			for (int i = 0; i < MODVM_NR_SREGS; i++)
				if (i != BT_CS && i != BT_SS) {
					memset(&c->s.seg[i], 0, sizeof(c->s.seg[i]));
					c->s.seg[i].unusable = 1;
				}
	}
	load_code(c, sel, &cs, ncpl);
	c->s.gpr[MODVM_RSP] = (c->s.gpr[MODVM_RSP] & ~s.mask) | s.sp;
	c->s.rflags &= ~(uint64_t)(BT_TF | BT_NT | BT_RF | BT_VM);
	if (!(type & 1))
		c->s.rflags &= ~(uint64_t)BT_IF;
	bt_cpu_update_mode(c);
	c->next_rip = c->s.rip = target;
}

/* Deliver an event; ret is the address pushed (the faulting instruction
 * for faults, the next one for traps and software interrupts). */
void bt_deliver(struct bt_cpu *c, int vec, bool has_err, uint32_t err,
		int kind, uint64_t ret)
{
	uint32_t ext = kind == BT_EV_EXT || kind == BT_EV_EXC ? 1 : 0;
	int outer = c->delivering;

	if (kind == BT_EV_EXC && vec < 32 && outer < 0)
		ext = 0; /* an exception from an instruction is not external */
	/* entering the #DB handler clears DR7.GD, so that it can use the
	 * debug registers (SDM 3A 17.2.4); ICEBP is not a debug exception
	 * in that sense and leaves it */
	if (vec == BT_DB && kind == BT_EV_EXC)
		c->s.dr7 &= ~(1ull << 13);
	c->delivering = vec;
	if (!c->pm && !(c->s.rflags & BT_VM))
		deliver_real(c, vec, ret);
	else if (c->lma)
		deliver_long(c, vec, has_err, err, kind, ret, ext);
	else
		deliver_prot(c, vec, has_err, err, kind, ret, ext);
	c->delivering = outer;
	c->shadow = 0;
	if (vec == BT_NMI)
		c->s.ev.nmi_masked = 1;
}

/* ---- far JMP / CALL --------------------------------------------------- */

static void far_direct(struct bt_cpu *c, uint16_t sel, uint64_t off, bool call,
		       struct modvm_segment *cs, unsigned opsize)
{
	unsigned cpl = c->cpl;

	if (cs->type & 4) {
		if (cs->dpl > cpl)
			bt_raise(c, BT_GP, sel & 0xFFFC);
	} else if ((sel & 3) > cpl || cs->dpl != cpl) {
		bt_raise(c, BT_GP, sel & 0xFFFC);
	}
	if (!cs->present)
		bt_raise(c, BT_NP, sel & 0xFFFC);
	if (!(c->lma && cs->l))
		off &= bt_mask(opsize);
	if (!(c->lma && cs->l) && off > cs->limit)
		bt_raise(c, BT_GP, 0);
	if (call) {
		uint64_t ret = c->next_rip;
		struct stk s;
		stk_current(c, &s);
		if (c->mode == BT_MODE64)
			s.mask = ~0ull;
		stk_push(c, &s, c->s.seg[BT_CS].selector, opsize);
		stk_push(c, &s, ret, opsize);
		c->s.gpr[MODVM_RSP] = (c->s.gpr[MODVM_RSP] & ~s.mask) | s.sp;
	}
	load_code(c, sel, cs, cpl);
	bt_cpu_update_mode(c);
	c->next_rip = off;
}

/* Far CALL/JMP through a call gate (SDM 3A 5.8.5). */
static void far_gate(struct bt_cpu *c, uint16_t gsel, uint64_t glo, uint64_t ghi,
		     bool call, unsigned opsize)
{
	unsigned gdpl = (glo >> 45) & 3, cpl = c->cpl, ncpl;
	uint16_t sel = (glo >> 16) & 0xFFFF;
	uint64_t off = (glo & 0xFFFF) | ((glo >> 32) & 0xFFFF0000ull);
	uint64_t lo, hi;
	struct modvm_segment cs;
	bool g32 = ((glo >> 40) & 15) == GATE_CALL32;
	unsigned n = c->lma ? 8 : g32 ? 4 : 2;

	if (c->lma)
		off |= ghi << 32;
	else if (!g32)
		off &= 0xFFFF;
	if (gdpl < cpl || gdpl < (gsel & 3u))
		bt_raise(c, BT_GP, gsel & 0xFFFC);
	if (!(glo & (1ull << 47)))
		bt_raise(c, BT_NP, gsel & 0xFFFC);
	if (!(sel & ~3u) || !bt_read_desc(c, sel, &lo, &hi, false))
		bt_raise(c, BT_GP, sel & 0xFFFC);
	bt_desc_to_seg(&cs, sel, lo, hi);
	if (!cs.s || !(cs.type & 8) || cs.dpl > cpl)
		bt_raise(c, BT_GP, sel & 0xFFFC);
	if (!cs.present)
		bt_raise(c, BT_NP, sel & 0xFFFC);
	ncpl = (cs.type & 4) ? cpl : cs.dpl;
	if (!call || ncpl == cpl) {
		far_direct(c, (sel & ~3u) | cpl, off, call, &cs,
			   c->lma ? 8 : n);
		return;
	}
	struct stk s;
	uint64_t old_ss = c->s.seg[BT_SS].selector, old_sp = c->s.gpr[MODVM_RSP];
	uint64_t ret = c->next_rip;
	struct modvm_segment nss;
	if (c->lma) {
		s.ss = c->s.seg[BT_SS];
		s.sp = bt_lin_read(c, c->s.tr.base + 4 + 8 * ncpl, 8, BT_CPL_SYS);
		s.mask = ~0ull;
		memset(&nss, 0, sizeof(nss));
		nss.selector = ncpl;
		nss.unusable = 1;
	} else {
		uint16_t ss;
		uint64_t sp;
		tss_stack(c, ncpl, &ss, &sp, 0);
		inner_ss(c, ss, ncpl, &nss, 0);
		s.ss = nss;
		s.mask = nss.db ? 0xFFFFFFFFull : 0xFFFF;
		s.sp = sp & s.mask;
	}
	s.cpl = ncpl;
	s.ss_err = nss.selector & 0xFFFC;
	stk_push(c, &s, old_ss, n);
	stk_push(c, &s, old_sp, n);
	if (!c->lma) {
		/* copy the gate's parameter count of stack entries from the
		 * caller's stack (SDM 3A 5.8.5, figure 5-13) */
		unsigned count = (glo >> 32) & 31;
		struct stk old;
		stk_current(c, &old);
		for (unsigned i = count; i-- > 0;) {
			uint64_t a = (old.sp + i * n) & old.mask;
			uint64_t v = bt_lin_read(c, (old.ss.base + a) & 0xFFFFFFFFull, n,
						 c->cpl);
			stk_push(c, &s, v, n);
		}
	}
	stk_push(c, &s, c->s.seg[BT_CS].selector, n);
	stk_push(c, &s, ret, n);
	nss.type |= 1;
	c->s.seg[BT_SS] = nss;
	c->s.gpr[MODVM_RSP] = c->lma ? s.sp : (c->s.gpr[MODVM_RSP] & ~s.mask) | s.sp;
	load_code(c, sel, &cs, ncpl);
	bt_cpu_update_mode(c);
	c->next_rip = off;
}

void bt_far_jmp(struct bt_cpu *c, uint16_t sel, uint64_t off, bool call)
{
	unsigned opsize = c->in->opsize;
	uint64_t lo, hi;
	struct modvm_segment d;

	if (!c->pm) {
		off &= bt_mask(opsize);
		if (call) {
			uint64_t ret = c->next_rip;
			struct stk s;
			stk_current(c, &s);
			stk_push(c, &s, c->s.seg[BT_CS].selector, opsize);
			stk_push(c, &s, ret, opsize);
			bt_set_rsp(c, s.sp);
		}
		bt_load_seg(c, BT_CS, sel);
		c->next_rip = off;
		return;
	}
	if (!(sel & ~3u) || !bt_read_desc(c, sel, &lo, &hi, false))
		bt_raise(c, BT_GP, sel & 0xFFFC);
	bt_desc_to_seg(&d, sel, lo, hi);
	if (d.s) {
		if (!(d.type & 8))
			bt_raise(c, BT_GP, sel & 0xFFFC);
		far_direct(c, sel, off, call, &d, opsize);
		return;
	}
	if (c->lma)
		bt_read_desc(c, sel, &lo, &hi, true);
	if (d.type == GATE_CALL32 || (!c->lma && d.type == GATE_CALL16)) {
		far_gate(c, sel, lo, hi, call, opsize);
		return;
	}
	if (d.dpl < c->cpl || d.dpl < (sel & 3u))
		bt_raise(c, BT_GP, sel & 0xFFFC);
	if (d.type == GATE_TASK && !c->lma) {
		if (!d.present)
			bt_raise(c, BT_NP, sel & 0xFFFC);
		task_gate(c, lo, call ? TS_CALL : TS_JMP, false, 0, c->next_rip);
		return;
	}
	if ((d.type == 9 || d.type == 1) && !c->lma) {
		task_switch(c, sel, lo, hi, call ? TS_CALL : TS_JMP, false, 0,
			    c->next_rip);
		return;
	}
	bt_raise(c, BT_GP, sel & 0xFFFC);
}

/* ---- far RET and IRET ------------------------------------------------- */

/* Return to an outer level: null the data segments the new CPL may not
 * use (SDM vol. 2 RET, IRET: "for each of ES, FS, GS, DS"). Only the
 * selector and the attributes go: the hidden base stays, as on the
 * processors Bochs (validate_seg_reg) and QEMU (validate_seg) follow, and
 * in 64-bit mode a null FS or GS is still used with its base. */
static void drop_data_segs(struct bt_cpu *c)
{
	for (int i = 0; i < MODVM_NR_SREGS; i++) {
		struct modvm_segment *s = &c->s.seg[i];
		bool conf_code = (s->type & 0xC) == 0xC;
		uint64_t base = s->base;
		if (i == BT_CS || i == BT_SS || s->unusable)
			continue;
		if ((!s->s || !(s->type & 8) || !conf_code) && s->dpl < c->cpl) {
			memset(s, 0, sizeof(*s));
			s->base = base;
			s->unusable = 1;
		}
	}
}

static void return_to(struct bt_cpu *c, uint16_t sel, uint64_t off,
		      unsigned n, struct stk *s, bool iret, uint64_t flags)
{
	uint64_t lo, hi;
	struct modvm_segment cs, nss;
	unsigned rpl = sel & 3, cpl = c->cpl;
	uint64_t nsp = 0;
	uint16_t nss_sel = 0;
	bool pop_ss = rpl > cpl || (c->lma && iret && c->mode == BT_MODE64);

	if (!(sel & ~3u) || !bt_read_desc(c, sel, &lo, &hi, false))
		bt_raise(c, BT_GP, sel & 0xFFFC);
	bt_desc_to_seg(&cs, sel, lo, hi);
	if (!cs.s || !(cs.type & 8) || rpl < cpl)
		bt_raise(c, BT_GP, sel & 0xFFFC);
	if ((cs.type & 4) ? cs.dpl > rpl : cs.dpl != rpl)
		bt_raise(c, BT_GP, sel & 0xFFFC);
	if (!cs.present)
		bt_raise(c, BT_NP, sel & 0xFFFC);
	if (pop_ss) {
		/* pop SS:rSP as well */
		uint64_t lin = s->mask == ~0ull ? s->sp
			       : (s->ss.base + s->sp) & 0xFFFFFFFFull;
		nsp = bt_lin_read(c, lin, n, c->cpl);
		nss_sel = (uint16_t)bt_lin_read(c, lin + n, 2, c->cpl);
		s->sp = (s->sp + 2 * n) & s->mask;
		if (!(nss_sel & ~3u)) {
			if (!(c->lma && cs.l && rpl < 3))
				bt_raise(c, BT_GP, 0);
			memset(&nss, 0, sizeof(nss));
			nss.selector = nss_sel;
			nss.unusable = 1;
			nss.dpl = rpl;
		} else {
			if ((nss_sel & 3) != rpl || !bt_read_desc(c, nss_sel, &lo, &hi, false))
				bt_raise(c, BT_GP, nss_sel & 0xFFFC);
			bt_desc_to_seg(&nss, nss_sel, lo, hi);
			if (nss.dpl != rpl || !nss.s || (nss.type & 8) || !(nss.type & 2))
				bt_raise(c, BT_GP, nss_sel & 0xFFFC);
			if (!nss.present)
				bt_raise(c, BT_SSV, nss_sel & 0xFFFC);
			nss.type |= 1;
		}
	}
	if (!(c->lma && cs.l)) {
		off &= n == 2 ? 0xFFFF : 0xFFFFFFFF;
		if (off > cs.limit)
			bt_raise(c, BT_GP, 0);
	}
	if (iret) {
		uint64_t mask = BT_ARITH | BT_TF | BT_DF | BT_NT | BT_AC | BT_ID | BT_RF;
		if (cpl == 0)
			mask |= BT_IOPL | BT_VIF | BT_VIP;
		if (cpl <= ((c->s.rflags >> 12) & 3))
			mask |= BT_IF;
		if (n == 2)
			mask &= 0xFFFF;
		bt_set_rflags(c, flags, mask);
	}
	load_code(c, sel, &cs, rpl);
	if (pop_ss) {
		c->s.seg[BT_SS] = nss;
		c->s.gpr[MODVM_RSP] = nsp;
		if (!nss.unusable && !nss.db && !(c->lma && cs.l))
			c->s.gpr[MODVM_RSP] = (c->s.gpr[MODVM_RSP] & ~0xFFFFull) |
					      (nsp & 0xFFFF);
		c->s.seg[BT_SS].dpl = rpl;
	} else {
		c->s.gpr[MODVM_RSP] = (c->s.gpr[MODVM_RSP] & ~s->mask) | s->sp;
	}
	bt_cpu_update_mode(c);
	if (rpl > cpl)
		drop_data_segs(c);
	c->next_rip = off;
}

static uint64_t stk_pop(struct bt_cpu *c, struct stk *s, unsigned n)
{
	uint64_t lin = s->mask == ~0ull && c->mode == BT_MODE64
		       ? s->sp : (s->ss.base + s->sp) & 0xFFFFFFFFull;
	uint64_t v;

	if (c->pm && c->mode != BT_MODE64 && s->sp + n - 1 > s->ss.limit &&
	    !(!(s->ss.type & 8) && (s->ss.type & 4)))
		bt_raise(c, BT_SSV, 0);
	v = bt_lin_read(c, lin, n, c->cpl);
	s->sp = (s->sp + n) & s->mask;
	return v;
}

void bt_far_ret(struct bt_cpu *c, uint16_t pop)
{
	unsigned n = c->in->opsize;
	struct stk s;
	uint64_t off, sel;

	stk_current(c, &s);
	off = stk_pop(c, &s, n);
	sel = stk_pop(c, &s, n) & 0xFFFF;
	s.sp = (s.sp + pop) & s.mask;
	if (!c->pm) {
		bt_set_rsp(c, s.sp);
		bt_load_seg(c, BT_CS, (uint16_t)sel);
		c->next_rip = off & bt_mask(n);
		return;
	}
	int old_cpl = c->cpl;
	return_to(c, (uint16_t)sel, off, n, &s, false, 0);
	/* the outer stack also drops the parameters (SDM vol. 2 RET) */
	if (c->cpl > old_cpl && pop)
		bt_set_rsp(c, c->s.gpr[MODVM_RSP] + pop);
}

static void iret_to_v86(struct bt_cpu *c, struct stk *s, uint64_t ip,
			uint16_t cs, uint64_t flags)
{
	uint64_t sp = stk_pop(c, s, 4), ss = stk_pop(c, s, 4);
	uint64_t es = stk_pop(c, s, 4), ds = stk_pop(c, s, 4);
	uint64_t fs = stk_pop(c, s, 4), gs = stk_pop(c, s, 4);

	c->s.rflags = (flags & 0x3F7FD7ull) | 2;
	c->cpl = 3;
	bt_cpu_update_mode(c);
	bt_load_seg(c, BT_CS, cs);
	bt_load_seg(c, BT_SS, (uint16_t)ss);
	bt_load_seg(c, BT_ES, (uint16_t)es);
	bt_load_seg(c, BT_DS, (uint16_t)ds);
	bt_load_seg(c, BT_FS, (uint16_t)fs);
	bt_load_seg(c, BT_GS, (uint16_t)gs);
	c->s.gpr[MODVM_RSP] = (uint32_t)sp;
	c->next_rip = ip & 0xFFFF;
}

void bt_iret(struct bt_cpu *c)
{
	unsigned n = c->in->opsize;
	struct stk s;
	uint64_t ip, cs, flags;

	if ((c->s.rflags & BT_VM) && ((c->s.rflags >> 12) & 3) < 3)
		bt_raise(c, BT_GP, 0);
	stk_current(c, &s);
	ip = stk_pop(c, &s, n);
	cs = stk_pop(c, &s, n) & 0xFFFF;
	flags = stk_pop(c, &s, n);
	if (!c->pm) {
		uint64_t mask = BT_ARITH | BT_TF | BT_DF | BT_NT | BT_AC | BT_ID |
				BT_IF | BT_IOPL | BT_RF;
		if (c->s.rflags & BT_VM)
			mask &= ~(uint64_t)BT_IOPL;
		if (n == 2)
			mask &= 0xFFFF;
		bt_set_rsp(c, s.sp);
		bt_load_seg(c, BT_CS, (uint16_t)cs);
		bt_set_rflags(c, flags, mask);
		c->next_rip = ip & bt_mask(n);
		return;
	}
	if (c->s.rflags & BT_NT) {
		/* return to the task in the back link (SDM vol. 2 IRET) */
		uint16_t back;
		uint64_t lo, hi;
		if (c->lma)
			bt_raise(c, BT_GP, 0);
		back = (uint16_t)bt_lin_read(c, c->s.tr.base, 2, BT_CPL_SYS);
		if ((back & 4) || !bt_read_desc(c, back, &lo, &hi, false))
			bt_raise(c, BT_TS, back & 0xFFFC);
		task_switch(c, back, lo, hi, TS_IRET, false, 0, c->next_rip);
		return;
	}
	if (!c->lma && (flags & BT_VM) && c->cpl == 0 && n == 4) {
		iret_to_v86(c, &s, ip, (uint16_t)cs, flags);
		return;
	}
	return_to(c, (uint16_t)cs, ip, n, &s, true, flags);
	c->s.ev.nmi_masked = 0;
}
