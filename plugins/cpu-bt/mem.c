/* cpu-bt: guest memory as the CPU sees it. Segmentation checks (SDM 3A
 * 5.3-5.6), the three paging modes with accessed/dirty bits, U/S, R/W, WP
 * and NX (SDM 3A ch. 4), and a software TLB caching host pointers per 4 KiB
 * linear page. RAM is reached through host pointers, the rest through MMIO.
 */
#include <string.h>

#include "cpu.h"
#include "jit.h"

#define PTE_P (1ull << 0)
#define PTE_W (1ull << 1)
#define PTE_U (1ull << 2)
#define PTE_A (1ull << 5)
#define PTE_D (1ull << 6)
#define PTE_PS (1ull << 7)
#define PTE_G (1ull << 8)
#define PTE_NX (1ull << 63)
#define PHYS_MASK 0x000000FFFFFFF000ull /* 40 physical address bits */

#define PF_P 1u
#define PF_W 2u
#define PF_U 4u
#define PF_RSVD 8u
#define PF_I 16u
#define PF_PK 32u

enum access { ACC_R, ACC_W, ACC_X };

/* Note slot i of a TLB in a list of slots (c->tlb_ng, c->tlb_all). */
void bt_tlb_ng_note(uint16_t *list, unsigned *n, unsigned i)
{
	if (*n < BT_NG_MAX)
		list[(*n)++] = (uint16_t)i;
	else
		*n = BT_NG_MAX + 1;
}

void bt_tlb_flush(struct bt_cpu *c, bool global_too)
{
	if (global_too && c->n_tlb_all <= BT_NG_MAX) {
		for (unsigned k = 0; k < c->n_tlb_all; k++)
			c->tlb[c->tlb_all[k]].tag = 0;
	} else if (global_too || c->n_tlb_ng > BT_NG_MAX) {
		for (int i = 0; i < BT_TLB_SIZE; i++)
			if (global_too || !(c->tlb[i].flags & TLBF_G))
				c->tlb[i].tag = 0;
	} else {
		for (unsigned k = 0; k < c->n_tlb_ng; k++) {
			struct bt_tlb_entry *e = &c->tlb[c->tlb_ng[k]];
			if (!(e->flags & TLBF_G))
				e->tag = 0;
		}
	}
	c->n_tlb_ng = 0;
	if (global_too) {
		c->n_tlb_all = 0;
		c->nlarge = 0;
	} else if (c->nlarge <= BT_LARGE_MAX) {
		unsigned k = 0; /* the non-global ones are gone */
		for (unsigned i = 0; i < c->nlarge; i++)
			if (c->large[i].global)
				c->large[k++] = c->large[i];
		c->nlarge = k;
	}
	if (c->jit)
		bt_jit_tlb_flush(c, global_too);
}

void bt_tlb_flush_page(struct bt_cpu *c, uint64_t lin)
{
	struct bt_tlb_entry *e = &c->tlb[(lin >> 12) % BT_TLB_SIZE];

	if (e->tag == ((lin & ~0xFFFull) | 1))
		e->tag = 0;
	if (c->jit)
		bt_jit_tlb_flush_page(c, lin);
	/* A large page is cached as many 4 KiB entries: INVLPG of any
	 * address in it must drop them all (SDM 3A 4.10.4.1). */
	for (unsigned i = 0; i < c->nlarge; i++)
		if (i == BT_LARGE_MAX || (lin & ~c->large[i].mask) == c->large[i].base) {
			bt_tlb_flush(c, true);
			return;
		}
}

/* The walk found a large page (2^shift bytes) at lin: note it for INVLPG. */
static void note_large(struct bt_cpu *c, uint64_t lin, unsigned shift, bool global)
{
	uint64_t mask = (1ull << shift) - 1;

	if (c->nlarge > BT_LARGE_MAX)
		return;
	for (unsigned i = 0; i < c->nlarge; i++)
		if (c->large[i].base == (lin & ~mask) && c->large[i].mask == mask) {
			c->large[i].global |= global;
			return;
		}
	if (c->nlarge == BT_LARGE_MAX) {
		c->nlarge = BT_LARGE_MAX + 1;
		return;
	}
	c->large[c->nlarge].base = lin & ~mask;
	c->large[c->nlarge].mask = mask;
	c->large[c->nlarge].global = global;
	c->nlarge++;
}

static _Noreturn void page_fault(struct bt_cpu *c, uint64_t lin, uint32_t err)
{
	c->s.cr2 = lin;
	bt_raise(c, BT_PFV, err);
}

static uint64_t phys_read64(struct bt_cpu *c, uint64_t gpa, unsigned size)
{
	uint8_t *p = c->bus->ram_ptr(c->bus->opaque, gpa & c->a20_mask, size);
	uint64_t v = 0;

	if (!p)
		return 0; /* page tables outside RAM read as zero: not present */
	memcpy(&v, p, size);
	return v;
}

static void phys_set_bits(struct bt_cpu *c, uint64_t gpa, unsigned size,
			  uint64_t bits)
{
	uint8_t *p;

	gpa &= c->a20_mask;
	p = c->bus->ram_ptr(c->bus->opaque, gpa, size);
	if (!p)
		return;
	if (c->jit)
		bt_jit_code_write(c, gpa, size); /* page tables on a code page */
	/* Atomic: another vCPU may update the same entry. */
	if (size == 8)
		__atomic_fetch_or((uint64_t *)p, bits, __ATOMIC_SEQ_CST);
	else
		__atomic_fetch_or((uint32_t *)p, (uint32_t)bits, __ATOMIC_SEQ_CST);
	if (c->bus->ram_dirty)
		c->bus->ram_dirty(c->bus->opaque, gpa, size);
}

struct walk {
	uint64_t gpa;    /* physical page of the linear page */
	uint32_t flags;  /* TLBF_* */
	uint64_t leaf;   /* physical address of the leaf entry */
	unsigned esz;
	bool leaf_a, leaf_d;
};

/* I/D is reported for fetches when NX or SMEP is enabled (SDM 3A 4.7). */
static uint32_t pf_err(enum access acc, bool user, uint32_t base, bool nxe)
{
	uint32_t e = base;

	if (acc == ACC_W)
		e |= PF_W;
	if (user)
		e |= PF_U;
	if (acc == ACC_X && nxe)
		e |= PF_I;
	return e;
}

static bool ibit(const struct bt_cpu *c)
{
	return (c->s.msr.efer & EFER_NXE) || (c->s.cr4 & CR4_SMEP);
}

/* Walk the tables for lin, setting A in the entries that reference another
 * table. Faults only for not-present and reserved-bit entries; permissions
 * are checked later (translate), which sets the leaf's A, and D for a
 * write, only when the access is allowed: a faulting access leaves the
 * leaf's A/D alone (SDM 3A 4.8; QEMU's walker does the same, KVM's sets
 * nothing at all for a faulting access). */
static void walk(struct bt_cpu *c, uint64_t lin, enum access acc, bool user,
		 struct walk *w)
{
	bool pae = c->s.cr4 & CR4_PAE, nxe = c->s.msr.efer & EFER_NXE;
	bool ib = ibit(c);
	unsigned esz = pae ? 8 : 4;
	int levels, shift;
	uint64_t table, e = 0, addr[4];
	uint32_t flags = TLBF_W | TLBF_U;
	int n = 0;

	if (c->lma) {
		levels = 4;
		table = c->s.cr3 & PHYS_MASK;
	} else if (pae) {
		levels = 3;
		table = c->s.cr3 & 0xFFFFFFE0ull;
	} else {
		levels = 2;
		table = c->s.cr3 & 0xFFFFF000ull;
	}
	for (int l = levels; l >= 1; l--) {
		uint64_t idx;
		if (!pae)
			shift = l == 2 ? 22 : 12;
		else
			shift = 12 + 9 * (l - 1);
		idx = pae ? (lin >> shift) & (l == 3 && !c->lma ? 3 : 511)
			  : (lin >> shift) & 1023;
		addr[n] = table + idx * esz;
		e = phys_read64(c, addr[n], esz);
		n++;
		if (!(e & PTE_P))
			page_fault(c, lin, pf_err(acc, user, 0, ib));
		if (pae && !nxe && (e & PTE_NX))
			page_fault(c, lin, pf_err(acc, user, PF_P | PF_RSVD, ib));
		if (pae && (e & 0x000FFF0000000000ull))
			page_fault(c, lin, pf_err(acc, user, PF_P | PF_RSVD, ib));
		/* The PAE PDPTEs (3-level) have no R/W, U/S or A bits. */
		if (!(pae && !c->lma && l == 3)) {
			if (!(e & PTE_W))
				flags &= ~TLBF_W;
			if (!(e & PTE_U))
				flags &= ~TLBF_U;
		}
		if (pae && (e & PTE_NX))
			flags |= TLBF_NX;
		bool large = (e & PTE_PS) &&
			     ((l == 2 && (pae || (c->s.cr4 & CR4_PSE))) ||
			      (l == 3 && c->lma && c->has_1g));
		if ((e & PTE_PS) && l == 4)
			page_fault(c, lin, pf_err(acc, user, PF_P | PF_RSVD, ib));
		/* PAE/IA-32e large pages: the address bits below the page size
		 * above bit 12 (PAT) are reserved, 20:13 of a 2 MiB PDE, 29:13
		 * of a 1 GiB PDPTE; PS in a PDPTE is reserved without 1 GiB
		 * pages (SDM 3A 4.5.4, tables 4-15 to 4-17) */
		if (pae && ((large && (e & (l == 2 ? 0x1FE000ull : 0x3FFFE000ull))) ||
			    ((e & PTE_PS) && l == 3 && c->lma && !c->has_1g)))
			page_fault(c, lin, pf_err(acc, user, PF_P | PF_RSVD, ib));
		if (l != 1 && !large && !(pae && !c->lma && l == 3) && !(e & PTE_A))
			phys_set_bits(c, addr[n - 1], esz, PTE_A);
		if (l == 1 || large) {
			uint64_t base;
			if (!pae && large)
				/* 4 MiB page; PSE-36 bits 16:13 are address bits 35:32 */
				base = (e & 0xFFC00000ull) | ((e >> 13) & 0xFull) << 32;
			else
				base = e & PHYS_MASK & ~((1ull << shift) - 1);
			w->gpa = base + (lin & ((1ull << shift) - 1) & ~0xFFFull);
			if (large)
				note_large(c, lin, shift,
					   (e & PTE_G) && (c->s.cr4 & CR4_PGE));
			w->leaf = addr[n - 1];
			w->esz = esz;
			w->leaf_a = e & PTE_A;
			w->leaf_d = e & PTE_D;
			if (e & PTE_D)
				flags |= TLBF_D;
			if ((e & PTE_G) && (c->s.cr4 & CR4_PGE))
				flags |= TLBF_G;
			/* protection key, IA-32e paging only (SDM 3A 4.6.2) */
			if (c->lma)
				flags |= (uint32_t)((e >> 59) & 15) << TLBF_PKEY_SHIFT;
			w->flags = flags;
			return;
		}
		table = e & PHYS_MASK;
	}
}

/* Does the access right check of SDM 3A 4.6 refuse an access to a page
 * with rights f? Returns 0 if allowed, else the #PF error code bits it
 * adds (PF_P, and PF_PK for a protection key). cpl is the access's: 3 a
 * user access, 0-2 an explicit supervisor one, BT_CPL_SYS an implicit
 * supervisor access (descriptor tables, TSS), at any CPL.
 *  - SMEP: no supervisor fetch from a user page;
 *  - SMAP: no supervisor data access to a user page, unless it is
 *    explicit with EFLAGS.AC set;
 *  - PKU (CR4.PKE, IA-32e paging): PKRU's AD bit for the page's key
 *    denies data accesses to user pages, WD denies writes by user
 *    accesses, and by supervisor ones if CR0.WP; PK is reported with
 *    any other violation of the same access;
 *  - PKS (CR4.PKS, IA-32e paging): the same with IA32_PKRS for the
 *    (explicit and implicit) supervisor data accesses to supervisor
 *    pages, WD only if CR0.WP (SDM 3A 4.6.2). */
static uint32_t denied(const struct bt_cpu *c, uint32_t f, enum access acc,
		       int cpl)
{
	bool user = cpl == 3, upage = f & TLBF_U;
	uint32_t r = 0, pk;

	if (user && !upage)
		return PF_P;
	if (acc == ACC_W && !(f & TLBF_W) && (user || (c->s.cr0 & CR0_WP)))
		r = PF_P;
	if (acc == ACC_X) {
		if ((f & TLBF_NX) && (c->s.msr.efer & EFER_NXE))
			r = PF_P;
		if (!user && upage && (c->s.cr4 & CR4_SMEP))
			r = PF_P;
		return r;
	}
	if (!upage) {
		if ((c->s.cr4 & CR4_PKS) && c->lma) {
			pk = c->pkrs >> (2 * TLBF_PKEY(f));
			if ((pk & 1) ||
			    (acc == ACC_W && (pk & 2) && (c->s.cr0 & CR0_WP)))
				r |= PF_P | PF_PK;
		}
		return r;
	}
	if (!user && (c->s.cr4 & CR4_SMAP) &&
	    (cpl == BT_CPL_SYS || !(c->s.rflags & BT_AC)))
		r = PF_P;
	/* the key is checked for every data access to a user page, and
	 * reported (PK) even when another right is missing too, as KVM's
	 * permission_fault does */
	if ((c->s.cr4 & CR4_PKE) && c->lma) {
		pk = bt_pkru(c) >> (2 * TLBF_PKEY(f));
		if ((pk & 1) ||
		    (acc == ACC_W && (pk & 2) && (user || (c->s.cr0 & CR0_WP))))
			r |= PF_P | PF_PK;
	}
	return r;
}

static bool allowed(const struct bt_cpu *c, uint32_t f, enum access acc,
		    int cpl)
{
	return !denied(c, f, acc, cpl);
}

/* May a read at cpl use a TLB hit without the full check? Only when no
 * SMAP or protection key can refuse it. */
static inline bool read_fast(const struct bt_cpu *c, uint32_t f, int cpl)
{
	if (!(f & TLBF_U))
		return cpl != 3 && !(c->s.cr4 & CR4_PKS);
	return !(c->s.cr4 & (cpl == 3 ? CR4_PKE : CR4_SMAP | CR4_PKE));
}

/* Translate the page of lin; returns its TLB entry. */
static struct bt_tlb_entry *translate(struct bt_cpu *c, uint64_t lin,
				      enum access acc, int cpl)
{
	uint64_t page = lin & ~0xFFFull;
	struct bt_tlb_entry *e = &c->tlb[(lin >> 12) % BT_TLB_SIZE];
	bool user = cpl == 3;
	struct walk w;
	uint32_t err;

	if (e->tag == (page | 1) && allowed(c, e->flags, acc, cpl) &&
	    (acc != ACC_W || (e->flags & (TLBF_D | TLBF_CW)))) {
		if ((e->flags & TLBF_CW) && !bt_jit_is_code(c, e->gpa))
			e->flags = (e->flags & ~(uint32_t)TLBF_CW) | TLBF_D;
		return e;
	}
	if (c->s.cr0 & CR0_PG) {
		walk(c, lin, acc, user, &w);
		if ((err = denied(c, w.flags, acc, cpl)))
			page_fault(c, lin, pf_err(acc, user, err, ibit(c)));
		if (acc == ACC_W && !w.leaf_d) {
			phys_set_bits(c, w.leaf, w.esz, PTE_D | PTE_A);
			w.flags |= TLBF_D;
		} else if (!w.leaf_a) {
			phys_set_bits(c, w.leaf, w.esz, PTE_A);
		}
	} else {
		w.gpa = page & 0xFFFFFFFFull;
		w.flags = TLBF_W | TLBF_U | TLBF_D;
	}
	w.gpa &= c->a20_mask; /* A20 gate: bit 20 of the page number */
	if (!e->tag)
		bt_tlb_ng_note(c->tlb_all, &c->n_tlb_all, (unsigned)(e - c->tlb));
	e->tag = page | 1;
	e->gpa = w.gpa;
	e->flags = w.flags;
	if (!(w.flags & TLBF_G))
		bt_tlb_ng_note(c->tlb_ng, &c->n_tlb_ng, (unsigned)(e - c->tlb));
	e->host = c->bus->ram_ptr(c->bus->opaque, w.gpa, 4096);
	if (e->host && acc == ACC_W && c->bus->ram_dirty)
		c->bus->ram_dirty(c->bus->opaque, w.gpa, 4096);
	/* Dirty logging (live migration): only a write fill reports the
	 * page, so an entry filled by a read must not take writes (a page
	 * whose PTE is dirty already, or paging off, would give it D): the
	 * first write comes back here as a write fill. */
	if (c->dirty_log && acc != ACC_W)
		e->flags &= ~(uint32_t)TLBF_D;
	/* A page holding translations: D stays clear in the entry, so that
	 * writes come here and on to page_write or bt_jit_fill, which report
	 * the bytes written (bt_jit_code_write); a write fill marks the entry
	 * CW (dirty, checked for writing) so that the next one skips the walk. */
	if (e->host && c->jit && bt_jit_is_code(c, w.gpa)) {
		if (acc == ACC_W && (e->flags & TLBF_D))
			e->flags |= TLBF_CW;
		e->flags &= ~(uint32_t)TLBF_D;
	}
	return e;
}

/* MMIO is issued in naturally aligned pieces of 1, 2, 4 or 8 bytes, the
 * sizes devices handle: a 16-byte SSE or 512-byte FXSAVE access to MMIO
 * becomes several. */
static unsigned mmio_piece(uint64_t gpa, unsigned n)
{
	unsigned size = 8;

	while (size > n || (gpa & (size - 1)))
		size >>= 1;
	return size;
}

static void page_read(struct bt_cpu *c, struct bt_tlb_entry *e, uint64_t lin,
		      void *buf, unsigned n)
{
	unsigned off = lin & 0xFFF;
	uint8_t *p = buf;

	if (e->host) {
		memcpy(buf, e->host + off, n);
		return;
	}
	while (n) {
		unsigned k = mmio_piece(e->gpa + off, n);
		c->bus->mmio_read(c->bus->opaque, e->gpa + off, p, k);
		p += k;
		off += k;
		n -= k;
	}
}

static void page_write(struct bt_cpu *c, struct bt_tlb_entry *e, uint64_t lin,
		       const void *buf, unsigned n)
{
	unsigned off = lin & 0xFFF;
	const uint8_t *p = buf;

	if (e->host) {
		if (e->flags & TLBF_CW)
			bt_jit_code_write(c, e->gpa + off, n);
		if (c->journal)
			bt_journal_add(c, e->host + off, n);
		memcpy(e->host + off, buf, n);
		return;
	}
	while (n) {
		unsigned k = mmio_piece(e->gpa + off, n);
		c->bus->mmio_write(c->bus->opaque, e->gpa + off, p, k);
		p += k;
		off += k;
		n -= k;
	}
}

void bt_lin_read_buf(struct bt_cpu *c, uint64_t lin, void *buf, unsigned n,
		     int cpl)
{
	unsigned first = 4096 - (lin & 0xFFF);
	struct bt_tlb_entry *e;

	if (n <= first) {
		page_read(c, translate(c, lin, ACC_R, cpl), lin, buf, n);
		return;
	}
	/* Crossing a page: translate both before touching either. */
	e = translate(c, lin, ACC_R, cpl);
	translate(c, lin + first, ACC_R, cpl);
	e = translate(c, lin, ACC_R, cpl);
	page_read(c, e, lin, buf, first);
	e = translate(c, lin + first, ACC_R, cpl);
	page_read(c, e, lin + first, (uint8_t *)buf + first, n - first);
}

void bt_lin_write_buf(struct bt_cpu *c, uint64_t lin, const void *buf,
		      unsigned n, int cpl)
{
	unsigned first = 4096 - (lin & 0xFFF);
	struct bt_tlb_entry *e;

	if (n <= first) {
		page_write(c, translate(c, lin, ACC_W, cpl), lin, buf, n);
		return;
	}
	translate(c, lin, ACC_W, cpl);
	translate(c, lin + first, ACC_W, cpl);
	e = translate(c, lin, ACC_W, cpl);
	page_write(c, e, lin, buf, first);
	e = translate(c, lin + first, ACC_W, cpl);
	page_write(c, e, lin + first, (const uint8_t *)buf + first, n - first);
}

uint64_t bt_lin_read(struct bt_cpu *c, uint64_t lin, unsigned size, int cpl)
{
	uint64_t v = 0;
	struct bt_tlb_entry *e = &c->tlb[(lin >> 12) % BT_TLB_SIZE];
	unsigned off = lin & 0xFFF;

	/* Fast path: RAM, same page, TLB hit with sufficient rights. */
	if (e->tag == ((lin & ~0xFFFull) | 1) && e->host && off + size <= 4096 &&
	    read_fast(c, e->flags, cpl)) {
		memcpy(&v, e->host + off, size);
		return v;
	}
	bt_lin_read_buf(c, lin, &v, size, cpl);
	return v;
}

void bt_lin_write(struct bt_cpu *c, uint64_t lin, unsigned size, uint64_t v,
		  int cpl)
{
	struct bt_tlb_entry *e = &c->tlb[(lin >> 12) % BT_TLB_SIZE];
	unsigned off = lin & 0xFFF;

	if (e->tag == ((lin & ~0xFFFull) | 1) && e->host && off + size <= 4096 &&
	    (e->flags & TLBF_D) && allowed(c, e->flags, ACC_W, cpl)) {
		if (c->journal)
			bt_journal_add(c, e->host + off, size);
		memcpy(e->host + off, &v, size);
		return;
	}
	bt_lin_write_buf(c, lin, &v, size, cpl);
}

/* Host pointer to the code at lin if it is RAM (checked for execute). */
const uint8_t *bt_fetch_ptr(struct bt_cpu *c, uint64_t lin)
{
	struct bt_tlb_entry *e = &c->tlb[(lin >> 12) % BT_TLB_SIZE];

	/* fast path: a TLB hit that allows this fetch */
	if (e->tag == ((lin & ~0xFFFull) | 1) && e->host &&
	    (c->cpl == 3 ? (e->flags & TLBF_U)
			  : !((e->flags & TLBF_U) && (c->s.cr4 & CR4_SMEP))) &&
	    (!(e->flags & TLBF_NX) || !(c->s.msr.efer & EFER_NXE)))
		return e->host + (lin & 0xFFF);
	e = translate(c, lin, ACC_X, c->cpl);

	return e->host ? e->host + (lin & 0xFFF) : NULL;
}

bool bt_page_global(struct bt_cpu *c, uint64_t lin)
{
	const struct bt_tlb_entry *e = &c->tlb[(lin >> 12) % BT_TLB_SIZE];

	return e->tag == ((lin & ~0xFFFull) | 1) && (e->flags & TLBF_G);
}

uint64_t bt_fetch_gpa(struct bt_cpu *c, uint64_t lin)
{
	return c->tlb[(lin >> 12) % BT_TLB_SIZE].gpa | (lin & 0xFFF);
}

uint64_t bt_fetch_lin(struct bt_cpu *c, uint64_t lin, uint8_t *buf, unsigned n)
{
	struct bt_tlb_entry *e = translate(c, lin, ACC_X, c->cpl);

	page_read(c, e, lin, buf, n);
	return e->gpa;
}

static bool canonical(uint64_t a)
{
	return (uint64_t)((int64_t)(a << 16) >> 16) == a;
}

/* Alignment check (SDM 3A 6.15 interrupt 17, table 6-7): with CR0.AM,
 * EFLAGS.AC and CPL 3, a data access of 2, 4 or 8 bytes must be naturally
 * aligned (words, doublewords, quadwords, stack pushes and pops). Wider
 * accesses (x87 80-bit, environment images, SSE) check their own rule
 * with bt_align_check. #AC(0) is a fault. */
void bt_align_check(struct bt_cpu *c, uint64_t lin, unsigned align)
{
	if (c->cpl == 3 && (c->s.rflags & BT_AC) && (c->s.cr0 & CR0_AM) &&
	    (lin & (align - 1)))
		bt_raise(c, BT_AC_V, 0);
}

static inline void align_check(struct bt_cpu *c, uint64_t lin, unsigned size)
{
	if (__builtin_expect(!(c->s.rflags & BT_AC), 1))
		return;
	if (size == 2 || size == 4 || size == 8)
		bt_align_check(c, lin, size);
}

/* Linear address of seg:off for an access of size bytes, with the
 * segment's type and limit checks (SDM 3A 5.3, 5.4). */
uint64_t bt_seg_lin(struct bt_cpu *c, int seg, uint64_t off, unsigned size,
		    bool write)
{
	const struct modvm_segment *s = &c->s.seg[seg];
	int vec = seg == BT_SS ? BT_SSV : BT_GP;
	uint64_t lin;

	if (c->mode == BT_MODE64) {
		lin = off + (seg >= BT_FS ? s->base : 0);
		if (!canonical(lin) || !canonical(lin + size - 1))
			bt_raise(c, vec, 0);
		align_check(c, lin, size);
		return lin;
	}
	if (c->pm) {
		if (s->unusable || !s->present)
			bt_raise(c, vec, 0);
		if (s->s && (s->type & 8)) {         /* code */
			if (write || !(s->type & 2))
				bt_raise(c, vec, 0);
		} else if (write && !(s->type & 2)) { /* read-only data */
			bt_raise(c, vec, 0);
		}
	}
	if (s->s && !(s->type & 8) && (s->type & 4)) {
		/* expand-down: valid offsets are limit+1 .. 64K-1 or 4G-1 */
		uint64_t top = s->db ? 0xFFFFFFFFull : 0xFFFFull;
		if (off <= s->limit || off + size - 1 > top)
			bt_raise(c, vec, 0);
	} else if (off + size - 1 > s->limit) {
		bt_raise(c, vec, 0);
	}
	lin = (s->base + off) & 0xFFFFFFFFull;
	align_check(c, lin, size);
	return lin;
}

uint64_t bt_read(struct bt_cpu *c, int seg, uint64_t off, unsigned size)
{
	uint64_t lin = bt_seg_lin(c, seg, off, size, false);

	if (c->dbg_data)
		bt_dbg_data(c, lin, size, false);
	if (__builtin_expect(c->lk_state != BT_LK_OFF, 0) && lin == c->lk_lin &&
	    size == c->lk_size)
		return c->lk_old; /* the value the compare-and-swap expects */
	return bt_lin_read(c, lin, size, c->cpl);
}

void bt_write(struct bt_cpu *c, int seg, uint64_t off, unsigned size,
	      uint64_t v)
{
	uint64_t lin = bt_seg_lin(c, seg, off, size, true);

	if (c->dbg_data)
		bt_dbg_data(c, lin, size, true);
	if (__builtin_expect(c->lk_state != BT_LK_OFF, 0) && lin == c->lk_lin &&
	    size == c->lk_size) {
		c->lk_new = v; /* stored by the compare-and-swap */
		c->lk_state = BT_LK_WRITTEN;
		return;
	}
	bt_lin_write(c, lin, size, v, c->cpl);
}

/* Check that a later write to seg:off will succeed (for instructions that
 * must not change anything when their store faults). */
void bt_check_write(struct bt_cpu *c, int seg, uint64_t off, unsigned size)
{
	uint64_t lin = bt_seg_lin(c, seg, off, size, true);
	unsigned first = 4096 - (lin & 0xFFF);

	translate(c, lin, ACC_W, c->cpl);
	if (size > first)
		translate(c, lin + first, ACC_W, c->cpl);
}

uint8_t *bt_jit_fill(struct bt_cpu *c, uint64_t lin, unsigned size, bool write,
		     bool rmw)
{
	struct bt_jtlb *t = &c->jtlb[c->cpl == 3][(lin >> 12) % BT_JTLB_SIZE];
	uint64_t page = lin & ~0xFFFull;
	struct bt_tlb_entry *e;

	if ((lin & 0xFFF) + size > 4096 || !canonical(lin))
		return NULL;
	c->jit_dead = 0;
	/* a read-modify-write reads first, as the interpreter does: a page
	 * that is not present faults as a read */
	if (rmw)
		translate(c, lin, ACC_R, c->cpl);
	e = translate(c, lin, write ? ACC_W : ACC_R, c->cpl);
	if (write && e->host && (e->flags & TLBF_CW))
		bt_jit_code_write(c, e->gpa + (lin & 0xFFF), size);
	if (!e->host || c->jit_dead)
		return NULL;
	/* SMAP depends on EFLAGS.AC, which the translator's TLB is not keyed
	 * by (STAC, CLAC, POPF, IRET change it without a flush): supervisor
	 * accesses to user pages are interpreted while CR4.SMAP is set */
	if ((e->flags & TLBF_U) && (c->s.cr4 & CR4_SMAP) && c->cpl < 3)
		return e->host + (lin & 0xFFF);
	if (t->rtag == ~0ull)
		bt_tlb_ng_note(c->jtlb_all[c->cpl == 3], &c->n_jtlb_all[c->cpl == 3],
			       (unsigned)(t - c->jtlb[c->cpl == 3]));
	t->rtag = page;
	t->addend = (uint64_t)(uintptr_t)e->host - page;
	t->gpa = e->gpa | ((e->flags & TLBF_G) ? 1 : 0);
	if (!(e->flags & TLBF_G))
		bt_tlb_ng_note(c->jtlb_ng[c->cpl == 3], &c->n_jtlb_ng[c->cpl == 3],
			       (unsigned)(t - c->jtlb[c->cpl == 3]));
	t->wtag = (e->flags & TLBF_D) && allowed(c, e->flags, ACC_W, c->cpl) &&
		  !bt_jit_is_code(c, e->gpa) ? page : ~0ull;
	return e->host + (lin & 0xFFF);
}

void bt_journal_add(struct bt_cpu *c, uint8_t *p, unsigned len)
{
	struct bt_journal *j = c->journal;

	if (j->n == BT_JOURNAL_MAX || len > 16) {
		j->overflow = true;
		return;
	}
	j->e[j->n].p = p;
	j->e[j->n].len = len;
	memcpy(j->e[j->n].old, p, len);
	j->n++;
}

uint8_t *bt_lin_ptr(struct bt_cpu *c, uint64_t lin, unsigned wlen)
{
	struct bt_tlb_entry *e = translate(c, lin, wlen ? ACC_W : ACC_R, c->cpl);

	if (wlen && e->host && (e->flags & TLBF_CW))
		bt_jit_code_write(c, e->gpa + (lin & 0xFFF), wlen);
	return e->host ? e->host + (lin & 0xFFF) : NULL;
}
