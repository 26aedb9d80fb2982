/* cpu-bt: segmentation. Descriptor reads, segment register loads with the
 * protection checks of SDM 3A 5.5-5.8 (MOV/POP to a segment register, LDS
 * family), and the I/O permission check (SDM vol. 1 19.5).
 */
#include <string.h>

#include "cpu.h"

void bt_seg_real(struct modvm_segment *s, uint16_t sel)
{
	s->selector = sel;
	s->base = (uint64_t)sel << 4;
	s->present = 1;
	s->unusable = 0;
	s->s = 1;
}

/* Read the descriptor of sel from the GDT or LDT; 16 bytes for system
 * descriptors in IA-32e mode. False if it lies outside the table. */
bool bt_read_desc(struct bt_cpu *c, uint16_t sel, uint64_t *lo, uint64_t *hi,
		  bool sys)
{
	uint64_t base, limit, off = sel & ~7u;
	unsigned n = sys && c->lma ? 16 : 8;

	if (sel & 4) {
		if (c->s.ldt.unusable || !c->s.ldt.present)
			return false;
		base = c->s.ldt.base;
		limit = c->s.ldt.limit;
	} else {
		base = c->s.gdt.base;
		limit = c->s.gdt.limit;
	}
	if (off + n - 1 > limit)
		return false;
	*lo = bt_lin_read(c, base + off, 8, BT_CPL_SYS);
	*hi = n == 16 ? bt_lin_read(c, base + off + 8, 8, BT_CPL_SYS) : 0;
	return true;
}

void bt_desc_to_seg(struct modvm_segment *s, uint16_t sel, uint64_t lo,
		    uint64_t hi)
{
	uint32_t limit = (lo & 0xFFFF) | ((lo >> 32) & 0xF0000);

	memset(s, 0, sizeof(*s));
	s->selector = sel;
	s->base = ((lo >> 16) & 0xFFFFFF) | ((lo >> 32) & 0xFF000000);
	s->type = (lo >> 40) & 15;
	s->s = (lo >> 44) & 1;
	s->dpl = (lo >> 45) & 3;
	s->present = (lo >> 47) & 1;
	s->avl = (lo >> 52) & 1;
	s->l = (lo >> 53) & 1;
	s->db = (lo >> 54) & 1;
	s->g = (lo >> 55) & 1;
	s->limit = s->g ? (limit << 12) | 0xFFF : limit;
	if (!s->s)
		s->base |= (hi & 0xFFFFFFFFull) << 32;
}

/* Set the accessed bit of a code/data descriptor in memory. */
static void set_accessed(struct bt_cpu *c, uint16_t sel, uint64_t lo)
{
	uint64_t base = sel & 4 ? c->s.ldt.base : c->s.gdt.base;

	if (lo & (1ull << 40))
		return;
	bt_lin_write(c, base + (sel & ~7u) + 5, 1, (lo >> 40 | 1) & 0xFF,
		     BT_CPL_SYS);
}

static void load_null(struct bt_cpu *c, int seg, uint16_t sel)
{
	struct modvm_segment *s = &c->s.seg[seg];

	memset(s, 0, sizeof(*s));
	s->selector = sel;
	s->unusable = 1;
}

void bt_load_seg(struct bt_cpu *c, int seg, uint16_t sel)
{
	uint64_t lo, hi;
	struct modvm_segment d;
	unsigned rpl = sel & 3, cpl = c->cpl;
	uint32_t err = sel & 0xFFFC;

	if (!c->pm) {
		struct modvm_segment *s = &c->s.seg[seg];
		if (c->s.rflags & BT_VM) {
			memset(s, 0, sizeof(*s));
			s->limit = 0xFFFF;
			s->type = 3;
			s->dpl = 3;
		}
		bt_seg_real(s, sel);
		if (seg == BT_CS)
			bt_cpu_update_mode(c);
		return;
	}
	if ((sel & ~3u) == 0) {
		/* Null selector: fine for data segments (use faults later);
		 * SS only in 64-bit mode below CPL 3 (SDM 3A 5.4.1.1). */
		if (seg == BT_SS && !(c->mode == BT_MODE64 && cpl < 3 && rpl == cpl))
			bt_raise(c, BT_GP, 0);
		load_null(c, seg, sel);
		if (seg == BT_SS)
			c->s.seg[BT_SS].dpl = cpl;
		return;
	}
	if (!bt_read_desc(c, sel, &lo, &hi, false))
		bt_raise(c, BT_GP, err);
	bt_desc_to_seg(&d, sel, lo, hi);
	if (seg == BT_SS) {
		if (rpl != cpl || d.dpl != cpl || !d.s || (d.type & 8) ||
		    !(d.type & 2))
			bt_raise(c, BT_GP, err);
		if (!d.present)
			bt_raise(c, BT_SSV, err);
	} else {
		if (!d.s || ((d.type & 8) && !(d.type & 2)))
			bt_raise(c, BT_GP, err);
		/* data or non-conforming code: DPL >= max(CPL, RPL) */
		if ((!(d.type & 8) || !(d.type & 4)) && (d.dpl < rpl || d.dpl < cpl))
			bt_raise(c, BT_GP, err);
		if (!d.present)
			bt_raise(c, BT_NP, err);
	}
	set_accessed(c, sel, lo);
	d.type |= 1;
	c->s.seg[seg] = d;
}

/* IN/OUT/INS/OUTS: allowed at CPL <= IOPL outside V86; otherwise the TSS
 * I/O bitmap decides (every bit of the access must be clear). */
bool bt_io_allowed(struct bt_cpu *c, uint16_t port, unsigned size)
{
	uint64_t iopl = (c->s.rflags >> 12) & 3, base, bitmap;
	uint32_t limit = c->s.tr.limit;
	uint16_t off, bits;

	if (!c->pm && !(c->s.rflags & BT_VM))
		return true;
	if (!(c->s.rflags & BT_VM) && (uint64_t)c->cpl <= iopl)
		return true;
	/* Only a 32-bit (or 64-bit) available/busy TSS has a bitmap. */
	if (c->s.tr.unusable || (c->s.tr.type & 0xD) != 9 ||
	    limit < 0x67)
		return false;
	base = c->s.tr.base;
	off = (uint16_t)bt_lin_read(c, base + 0x66, 2, BT_CPL_SYS);
	if ((uint32_t)off + port / 8 + 1 > limit)
		return false;
	bitmap = bt_lin_read(c, base + off + port / 8, 2, BT_CPL_SYS);
	bits = (uint16_t)(((1u << size) - 1) << (port & 7));
	return !(bitmap & bits);
}
