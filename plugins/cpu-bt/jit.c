/* cpu-bt: the translator. Guest code in 64-bit mode is cut into blocks
 * (straight-line code up to a control transfer, an instruction left to
 * the interpreter, the page end or BLOCK_MAX instructions) and each block
 * becomes host code in a translation cache:
 *  - guest RAX RCX RDX RBX RBP RSI RDI R12-R15 live in the same host
 *    registers; guest RSP and R8-R11 stay in struct bt_cpu and are loaded
 *    into the scratch registers R8/R10 around the instructions using them;
 *    R11 points at struct bt_cpu, R9 carries memory addresses;
 *  - the guest's arithmetic flags are the host's: an ALU instruction is
 *    emitted as itself; glue that clobbers flags (the TLB check) parks
 *    them in AH/AL (lahf/seto) around it;
 *  - memory operands go through an inline TLB check (struct bt_jtlb) with
 *    an out-of-line slow path that calls bt_jit_fill (page walk, #PF,
 *    MMIO and page-crossing accesses go to the interpreter);
 *  - direct exits are patched into jumps to the next block (chaining);
 *    indirect ones return to the dispatcher, which checks events.
 * Pages holding translations are write-watched (jtlb wtag, TLBF_D), so a
 * write to code drops the blocks made from the bytes it writes before the
 * new code runs (bt_jit_code_write); blocks elsewhere on the page stay.
 * Everything not listed in classify() is interpreted, one instruction at
 * a time, by the reference interpreter.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "emit.h"
#include "jit.h"

#define BLOCK_MAX 64          /* guest instructions per block */
#define BLOCK_ROOM 65536      /* code bytes a block may need at most */
#define HASH_SIZE 65536       /* block hash buckets by physical page */
#define LHASH_SIZE 131072     /* ... by physical address (lookups) */
#define VC_SIZE 32768         /* virtual-RIP lookup cache */
#define XLINK_MAX 8192        /* cross-page links (undone on TLB flushes) */
#define INVAL_TABLE 1024      /* pages counted for repeated invalidation */
#define INVAL_LIMIT 32        /* ... within INVAL_WINDOW_NS, after which */
#define INVAL_WINDOW_NS 20000000ull /* the page is interpreted for */
#define NOX_COOLDOWN_NS 50000000ull /* 50 ms, doubling with each repeat */
#define NOX_MAX 256
#define CHUNK_PAGES (1u << 18) /* code-page bitmap: 1 GiB per chunk */
#define NCHUNKS 4096          /* 4 TiB of guest physical space */
#define PEND_MAX 64
#define NG_MAX 512
#define STRAD_MAX 1024        /* blocks of one page-crossing instruction */
#define PFILTER_BITS 65536

#define OFF(f) ((int32_t)offsetof(struct bt_cpu, f))
#define GPR(r) (OFF(s.gpr) + 8 * (r))
#define JTLB(p) ((int32_t)(offsetof(struct bt_cpu, jtlb) + \
			   (size_t)(p) * BT_JTLB_SIZE * sizeof(struct bt_jtlb)))

#define JC(p) ((int32_t)(offsetof(struct bt_cpu, jit_jc) + \
			 (size_t)(p) * BT_JC_SIZE * sizeof(struct bt_jc)))
#define JC_SHIFT 10

#define HFLAGS_BASE 0x202ull
/* jit_link after an indirect exit that missed the jump cache */
#define LINK_IMISS 1  /* reserved bit 1 and IF: the host's own */

struct jblock;

/* One exit of a block whose jump can be patched to the next block. */
struct jexit {
	uint8_t *disp;         /* rel32 of the exit jump */
	uint8_t *stub;         /* where it points while unlinked */
	uint64_t target;       /* guest RIP it goes to */
	struct jblock *src;
};

struct jblock {
	uint64_t rip;
	uint64_t gpa;          /* physical address of the first byte */
	uint32_t key;          /* mode word (mode_key) */
	uint64_t cskey;        /* 16/32-bit code: CS base and limit (cs_key) */
	uint64_t lin;          /* linear address of the first byte */
	uint16_t ninsn;
	uint8_t valid;
	uint8_t nox;           /* no code because its page was left to the interpreter */
	uint8_t strad;         /* one instruction crossing into the next page: */
	uint8_t strad_global;  /* ... both pages global */
	uint64_t gpa2, lin2;   /* ... that page */
	uint16_t len, len2;    /* guest bytes translated in the first page
				  (from gpa) and in the second (from its start) */
	uint8_t *code;         /* entry; NULL: the interpreter runs this RIP */
	uint8_t *dead;         /* the exit to the dispatcher before the entry,
				  past its RCX restore: an invalidated block's
				  entry is patched to jump there */
	struct jblock *hnext;  /* the blocks of its page (invalidation) */
	struct jblock *lnext;  /* of its lookup bucket; invalid ones are
				  dropped by lookup as it meets them */
	struct jexit exit[2];
};

struct xlink {
	struct jexit *x;
	uint64_t tgt_page;     /* physical page of the target block */
	uint64_t tgt_lin;      /* ... its linear page */
	bool global;           /* ... mapped global: survives CR3 writes */
};

struct vcache {
	uint64_t rip;
	uint64_t cskey, lin;
	uint32_t key;
	uint32_t gen;
	struct jblock *b;
	bool global;           /* RIP's page is global: survives CR3 writes */
};

typedef void (*enter_fn)(struct bt_cpu *c, const void *code);

struct bt_jit {
	uint8_t *cache;
	size_t size, used, base_used;
	enter_fn enter;
	uint8_t *exit_flags;   /* save flags and registers, return */
	uint8_t *exit_regs;    /* flags already saved: registers, return */
	uint8_t *exit_done;    /* everything saved: return */
	uint8_t *interp_full;  /* call: R10 = RIP, R9 = next; run in place */
	uint8_t *slow_common;  /* call: R9 = address, R10 = RIP, R8 = slow info;
				  the TLB miss path of every access (jit_slow2) */

	struct jblock *blocks;
	unsigned nblocks, maxblocks;
	struct jblock *hash[HASH_SIZE];
	struct jblock *lhash[LHASH_SIZE];
	struct vcache vc[VC_SIZE];
	uint32_t gen;
	bool jc_global[2][BT_JC_SIZE]; /* the jump cache entry's page is global */
	uint32_t jc_key[2];    /* the mode (mode_key, cs_key) of each half's */
	uint64_t jc_cskey[2];  /* entries: one at a time, cleared on a change */
	/* Non-global entries made since the last CR3 write (NG_MAX + 1: more,
	 * scan them all), so that a CR3 write clears those, not the tables;
	 * and the linear pages that have entries (hashed), so that INVLPG of
	 * a page without code skips the scan. */
	uint16_t vc_ng[NG_MAX], jc_ng[2][NG_MAX];
	unsigned n_vc_ng, n_jc_ng[2];
	uint64_t pfilter[PFILTER_BITS / 64];
	/* as the CPU's tlb_all: the jump-cache entries filled from empty and
	 * the pfilter words made non-zero, so that a global flush clears
	 * those, not 128 KiB and 8 KiB (NG_MAX + 1: more, clear it all) */
	uint16_t jc_all[2][NG_MAX], pf_words[NG_MAX];
	unsigned n_jc_all[2], n_pf_words;
	/* blocks of one instruction that crosses a page: their second page
	 * is watched here (the hash table knows the first) */
	struct jblock *strad[STRAD_MAX];
	unsigned nstrad;
	/* cross-page links into non-global [0] and global [1] pages: a CR3
	 * write undoes only the first list */
	struct xlink xl[2][XLINK_MAX];
	unsigned nxl[2];

	_Atomic(uint8_t *) chunk[NCHUNKS];
	struct {
		uint64_t page;
		uint64_t t0;       /* start of the counting window */
		uint32_t count;
		uint32_t strikes;  /* times the page was left to the interpreter */
	} inval[INVAL_TABLE];
	/* pages left to the interpreter for a while (written too often) */
	uint64_t nox_pages[NOX_MAX];
	uint64_t nox_until[NOX_MAX];
	unsigned nnox;

	pthread_mutex_t pend_lock;
	uint64_t pend[PEND_MAX];
	unsigned npend;
	bool pend_all;
	atomic_int pend_flag;

	struct bt_jit_stats st;
	uint8_t *last_exit;    /* emit_budget_check's exit of the block being made */
	uint64_t debug_limit;  /* MODVM_BT_JIT_LIMIT: translate only so many blocks */
	bool debug_trace;      /* MODVM_BT_JIT_TRACE: print each block */
	FILE *perfmap;         /* MODVM_BT_JIT_PERFMAP: /tmp/perf-PID.map */
	bool debug_check;      /* MODVM_BT_JIT_CHECK: compare with the interpreter */
	uint64_t *debug_ops;   /* MODVM_BT_JIT_OPS: interpreted instructions by op */
	uint64_t *debug_inplace; /* ... interpreted in place, by op */
	uint64_t tlb_flushes;  /* TLB flushes (all or one page) so far */
	uint64_t debug_why[5]; /* ... and why: see why_names */
	struct { uint64_t lin, n; } debug_noxpg[64]; /* ... on pages written too often */
	int why;
	uint64_t checks, check_fails;
};

/* ---- code-page bitmap (read by other threads for DMA) ------------------ */

static uint8_t *chunk_of(struct bt_jit *j, uint64_t gpa, bool create)
{
	uint64_t ci = gpa >> 30;
	uint8_t *ch;

	if (ci >= NCHUNKS)
		return NULL;
	ch = atomic_load_explicit(&j->chunk[ci], memory_order_acquire);
	if (!ch && create) {
		ch = calloc(CHUNK_PAGES / 8, 1);
		if (ch)
			atomic_store_explicit(&j->chunk[ci], ch, memory_order_release);
	}
	return ch;
}

bool bt_jit_is_code(struct bt_cpu *c, uint64_t gpa)
{
	uint8_t *ch = chunk_of(c->jit, gpa, false);
	uint64_t pi = (gpa >> 12) & (CHUNK_PAGES - 1);

	return ch && (__atomic_load_n(&ch[pi / 8], __ATOMIC_RELAXED) >> (pi % 8)) & 1;
}

static void code_bit(struct bt_jit *j, uint64_t gpa, bool set)
{
	uint8_t *ch = chunk_of(j, gpa, set);
	uint64_t pi = (gpa >> 12) & (CHUNK_PAGES - 1);

	if (!ch)
		return;
	if (set)
		__atomic_fetch_or(&ch[pi / 8], (uint8_t)(1u << (pi % 8)), __ATOMIC_RELAXED);
	else
		__atomic_fetch_and(&ch[pi / 8], (uint8_t)~(1u << (pi % 8)), __ATOMIC_RELAXED);
}

/* A page starts holding translations: writes to it must come to the slow
 * paths (interpreter TLB without D, translator TLB without a write tag). */
static void mark_code(struct bt_cpu *c, uint64_t gpa)
{
	uint64_t page = gpa & ~0xFFFull;

	if (bt_jit_is_code(c, page))
		return;
	code_bit(c->jit, page, true);
	for (int i = 0; i < BT_TLB_SIZE; i++)
		if (c->tlb[i].tag && c->tlb[i].gpa == page)
			c->tlb[i].flags &= ~(uint32_t)TLBF_D;
	for (int p = 0; p < 2; p++)
		for (int i = 0; i < BT_JTLB_SIZE; i++)
			if ((c->jtlb[p][i].gpa & ~1ull) == page)
				c->jtlb[p][i].wtag = ~0ull;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Is the page left to the interpreter? An expired entry is dropped: the
 * page is translated again (a burst of patching, such as a kernel
 * applying its alternatives and static keys at boot, must not leave hot
 * code interpreted for good). */
static bool page_nox(struct bt_jit *j, uint64_t page)
{
	for (unsigned i = 0; i < j->nnox; i++)
		if (j->nox_pages[i] == page) {
			if (now_ns() < j->nox_until[i])
				return true;
			j->nnox--;
			j->nox_pages[i] = j->nox_pages[j->nnox];
			j->nox_until[i] = j->nox_until[j->nnox];
			return false;
		}
	return false;
}

static unsigned jc_index(uint64_t rip)
{
	return (unsigned)((rip ^ (rip >> JC_SHIFT)) & (BT_JC_SIZE - 1));
}

static void ng_note(uint16_t *list, unsigned *n, unsigned k);

static void jc_clear(struct bt_cpu *c)
{
	struct bt_jit *j = c->jit;

	for (int p = 0; p < 2; p++) {
		if (j->n_jc_all[p] <= NG_MAX) {
			for (unsigned k = 0; k < j->n_jc_all[p]; k++)
				c->jit_jc[p][j->jc_all[p][k]].rip = ~0ull;
		} else {
			memset(c->jit_jc[p], 0xFF, sizeof(c->jit_jc[p]));
		}
		j->n_jc_all[p] = j->n_jc_ng[p] = 0;
	}
}

static void pfilter_set(struct bt_jit *j, uint64_t lin)
{
	unsigned h = (unsigned)(lin >> 12) % PFILTER_BITS;

	if (!j->pfilter[h / 64])
		ng_note(j->pf_words, &j->n_pf_words, h / 64);
	j->pfilter[h / 64] |= 1ull << (h % 64);
}

static void pfilter_clear(struct bt_jit *j)
{
	if (j->n_pf_words <= NG_MAX) {
		for (unsigned k = 0; k < j->n_pf_words; k++)
			j->pfilter[j->pf_words[k]] = 0;
	} else {
		memset(j->pfilter, 0, sizeof(j->pfilter));
	}
	j->n_pf_words = 0;
}

static bool pfilter_has(const struct bt_jit *j, uint64_t lin)
{
	unsigned h = (unsigned)(lin >> 12) % PFILTER_BITS;

	return (j->pfilter[h / 64] >> (h % 64)) & 1;
}

/* note a non-global entry at index k (list full: mark for a scan) */
static void ng_note(uint16_t *list, unsigned *n, unsigned k)
{
	if (*n < NG_MAX)
		list[(*n)++] = (uint16_t)k;
	else
		*n = NG_MAX + 1;
}

/* The linear address of jump-cache entry rip in half p: 16/32-bit
 * entries are EIPs under the half's CS base. */
static uint64_t jc_lin(const struct bt_jit *j, int p, uint64_t rip)
{
	if (((j->jc_key[p] >> 2) & 3) == BT_MODE64)
		return rip;
	return (uint32_t)(rip + (uint32_t)j->jc_cskey[p]);
}

/* ---- linking ---------------------------------------------------------- */

static void unlink_exit(struct jexit *x)
{
	em_patch32(x->disp, x->stub);
}

/* Undo the links into other virtual pages that a TLB flush may have
 * remapped: all of them (all = true), those into non-global pages (a CR3
 * write), or those into linear page `lin` (INVLPG). */
static void unlink_xlinks(struct bt_jit *j, bool all, bool one, uint64_t lin)
{
	for (int g = 0; g < 2; g++) {
		if (!all && !one && g == 1)
			break; /* a CR3 write: global pages keep their mapping */
		if (all || !one) {
			for (unsigned i = 0; i < j->nxl[g]; i++)
				unlink_exit(j->xl[g][i].x);
			j->nxl[g] = 0;
			continue;
		}
		for (unsigned i = 0; i < j->nxl[g];) {
			struct xlink *l = &j->xl[g][i];
			if (l->tgt_lin == lin >> 12) {
				unlink_exit(l->x);
				*l = j->xl[g][--j->nxl[g]];
			} else {
				i++;
			}
		}
	}
}

/* Drop the links of invalid blocks and those into physical page `page`
 * (~0: none). */
static void prune_xlinks(struct bt_jit *j, uint64_t page)
{
	for (int g = 0; g < 2; g++)
		for (unsigned i = 0; i < j->nxl[g];) {
			struct xlink *l = &j->xl[g][i];
			if (l->tgt_page == page >> 12 || !l->x->src->valid) {
				unlink_exit(l->x);
				*l = j->xl[g][--j->nxl[g]];
			} else {
				i++;
			}
		}
}

/* What generated code depends on besides its bytes: the privilege (the
 * TLB and jump cache halves), the mode (operand and address sizes) and,
 * outside 64-bit mode, the stack width (SS.B). */
static uint32_t mode_key(const struct bt_cpu *c)
{
	uint32_t k = (uint32_t)c->cpl | (uint32_t)c->mode << 2;

	if (c->mode != BT_MODE64)
		k |= (uint32_t)(c->s.seg[BT_SS].db ? 1 : 0) << 4;
	return k;
}

/* 16/32-bit code: CS base (EIP -> linear) and limit (where blocks end,
 * which branch targets fault); 64-bit code: 0. Blocks, links
 * and the jump cache only connect code of the same key. */
static uint64_t cs_key(const struct bt_cpu *c)
{
	const struct modvm_segment *cs = &c->s.seg[BT_CS];

	if (c->mode == BT_MODE64)
		return 0;
	return (uint64_t)(uint32_t)cs->base | (uint64_t)cs->limit << 32;
}

static void maybe_link(struct bt_cpu *c, struct jblock *b)
{
	struct bt_jit *j = c->jit;
	struct jexit *x = (struct jexit *)(uintptr_t)c->jit_link;

	c->jit_link = 0;
	if (x == (struct jexit *)LINK_IMISS) {
		j->st.jc_misses++;
		return;
	}
	if (!x || !x->src->valid || x->target != b->rip || x->src->key != b->key ||
	    x->src->cskey != b->cskey)
		return;
	if ((x->src->lin >> 12) != (b->lin >> 12)) {
		/* Another virtual page: valid until the next TLB flush, which
		 * may remap either page. */
		int g = bt_page_global(c, b->lin);
		if (j->nxl[g] == XLINK_MAX)
			return;
		j->xl[g][j->nxl[g]] = (struct xlink){ x, b->gpa >> 12, b->lin >> 12, g };
		j->nxl[g]++;
	}
	em_patch32(x->disp, b->code);
	j->st.links++;
}

/* ---- invalidation ------------------------------------------------------ */

static unsigned hash_page(uint64_t gpa)
{
	uint64_t p = gpa >> 12;

	return (unsigned)((p ^ (p >> 16)) * 0x9E3779B1u) % HASH_SIZE;
}

static unsigned hash_gpa(uint64_t gpa)
{
	return (unsigned)((gpa ^ (gpa >> 17)) * 0x9E3779B1u) % LHASH_SIZE;
}

static void count_invalidation(struct bt_jit *j, uint64_t page)
{
	unsigned i = (unsigned)((page >> 12) % INVAL_TABLE);

	uint64_t now = now_ns();

	if (j->inval[i].page != page) {
		j->inval[i].page = page;
		j->inval[i].count = 0;
		j->inval[i].strikes = 0;
		j->inval[i].t0 = now;
	}
	if (now - j->inval[i].t0 > INVAL_WINDOW_NS) {
		j->inval[i].count = 0;
		j->inval[i].t0 = now;
	}
	if (++j->inval[i].count == INVAL_LIMIT && j->nnox < NOX_MAX) {
		unsigned k = j->inval[i].strikes < 6 ? j->inval[i].strikes : 6;
		j->nox_pages[j->nnox] = page;
		j->nox_until[j->nnox] = now + (NOX_COOLDOWN_NS << k);
		j->nnox++;
		j->inval[i].strikes++;
		j->inval[i].count = 0;
		j->st.interp_pages++;
	}
}

/* Whatever still jumps to block b (the jump cache, a link, the block
 * itself if it is running) leaves to the dispatcher with RIP = its start:
 * jmp rel8 back to its exit, over the entry's first instruction. */
static void drop_entry(struct jblock *b)
{
	b->code[0] = 0xEB;
	b->code[1] = (uint8_t)(int8_t)(b->dead - (b->code + 2));
}

/* Drop block b: off its hash chain, its entry dropped (drop_entry). */
static void kill_block(struct bt_jit *j, struct jblock *b)
{
	struct jblock **pp = &j->hash[hash_page(b->gpa)];

	if (!b->valid)
		return;
	b->valid = 0;
	while (*pp && *pp != b)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = b->hnext;
	if (b->code)
		drop_entry(b);
	prune_xlinks(j, ~0ull);
}

/* Drop the page-crossing blocks that match: second physical page `page`
 * (~0: any), or, for TLB flushes, every one (all) or those with a
 * non-global page (!all). */
static void kill_strad(struct bt_cpu *c, uint64_t page, bool tlb, bool all)
{
	struct bt_jit *j = c->jit;

	for (unsigned i = 0; i < j->nstrad;) {
		struct jblock *b = j->strad[i];
		bool hit = !b->valid || (tlb ? all || !b->strad_global
					     : (b->gpa2 & ~0xFFFull) == page);
		if (hit) {
			kill_block(j, b);
			c->jit_dead = 1;
			j->strad[i] = j->strad[--j->nstrad];
		} else {
			i++;
		}
	}
}

/* Does [a, a + alen) overlap [b, b + blen)? */
static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

void bt_jit_code_write(struct bt_cpu *c, uint64_t gpa, unsigned len)
{
	struct bt_jit *j = c->jit;
	uint64_t page = gpa & ~0xFFFull;
	struct jblock **pp;
	bool killed = false, left = false;

	if (!j || !len || !bt_jit_is_code(c, page))
		return;
	if (len > 4096 - (gpa & 0xFFF))
		len = 4096 - (unsigned)(gpa & 0xFFF);
	for (pp = &j->hash[hash_page(page)]; *pp;) {
		struct jblock *b = *pp;
		if ((b->gpa & ~0xFFFull) != page) {
			pp = &b->hnext;
		} else if (b->code && !overlaps(b->gpa, b->len, gpa, len)) {
			left = true;
			pp = &b->hnext;
		} else {
			/* its bytes are written (or it is a marker for the
			 * interpreter, cheap to make again) */
			b->valid = 0;
			*pp = b->hnext;
			if (b->code) {
				drop_entry(b);
				killed = true;
			}
		}
	}
	for (unsigned i = 0; i < j->nstrad;) {
		struct jblock *b = j->strad[i];
		if (b->valid && (b->gpa2 & ~0xFFFull) == page &&
		    overlaps(page, b->len2, gpa, len)) {
			kill_block(j, b);
			killed = true;
		}
		if (!b->valid) {
			j->strad[i] = j->strad[--j->nstrad];
			continue;
		}
		if ((b->gpa2 & ~0xFFFull) == page)
			left = true;
		i++;
	}
	if (!left)
		code_bit(j, page, false); /* writes to the page go fast again */
	if (!killed) {
		j->st.code_writes_kept++;
		return;
	}
	/* Links into the dropped blocks would go on through their dead
	 * entries to the dispatcher, which makes no link from there: undo
	 * those from the page's other blocks and those from other pages, to
	 * be made again to the new blocks. */
	for (struct jblock *b = j->hash[hash_page(page)]; b; b = b->hnext)
		if ((b->gpa & ~0xFFFull) == page)
			for (int k = 0; k < 2; k++)
				if (b->exit[k].disp && b->exit[k].stub)
					unlink_exit(&b->exit[k]);
	prune_xlinks(j, page);
	c->jit_dead = 1;
	j->st.invalidations++;
	count_invalidation(j, page);
}

void bt_jit_invalidate(struct bt_cpu *c, uint64_t gpa)
{
	bt_jit_code_write(c, gpa & ~0xFFFull, 4096);
}

void bt_jit_flush_all(struct bt_cpu *c)
{
	struct bt_jit *j = c->jit;

	if (!j)
		return;
	j->used = j->base_used;
	j->nblocks = 0;
	j->nstrad = 0;
	memset(j->hash, 0, sizeof(j->hash));
	memset(j->lhash, 0, sizeof(j->lhash));
	j->gen++;
	j->nxl[0] = j->nxl[1] = 0;
	for (unsigned i = 0; i < NCHUNKS; i++) {
		uint8_t *ch = atomic_load(&j->chunk[i]);
		if (ch)
			memset(ch, 0, CHUNK_PAGES / 8);
	}
	for (int p = 0; p < 2; p++) {
		for (int i = 0; i < BT_JTLB_SIZE; i++)
			c->jtlb[p][i] = (struct bt_jtlb){ ~0ull, ~0ull, 0, ~0ull };
		c->n_jtlb_ng[p] = c->n_jtlb_all[p] = 0;
		j->n_jc_all[p] = NG_MAX + 1; /* all of it (a new CPU's is 0s) */
	}
	jc_clear(c);
	j->n_vc_ng = 0;
	pfilter_clear(j);
	c->jit_link = 0;
	j->st.flushes++;
}

void bt_jit_tlb_flush(struct bt_cpu *c, bool global_too)
{
	struct bt_jit *j = c->jit;

	j->tlb_flushes++;
	for (int p = 0; p < 2; p++) {
		if (global_too && c->n_jtlb_all[p] <= BT_NG_MAX) {
			for (unsigned k = 0; k < c->n_jtlb_all[p]; k++)
				c->jtlb[p][c->jtlb_all[p][k]] =
					(struct bt_jtlb){ ~0ull, ~0ull, 0, ~0ull };
		} else if (global_too || c->n_jtlb_ng[p] > BT_NG_MAX) {
			for (int i = 0; i < BT_JTLB_SIZE; i++) {
				struct bt_jtlb *t = &c->jtlb[p][i];
				if (global_too || !(t->gpa & 1))
					*t = (struct bt_jtlb){ ~0ull, ~0ull, 0, ~0ull };
			}
		} else {
			for (unsigned k = 0; k < c->n_jtlb_ng[p]; k++) {
				struct bt_jtlb *t = &c->jtlb[p][c->jtlb_ng[p][k]];
				if (!(t->gpa & 1))
					*t = (struct bt_jtlb){ ~0ull, ~0ull, 0, ~0ull };
			}
		}
		c->n_jtlb_ng[p] = 0;
		if (global_too)
			c->n_jtlb_all[p] = 0;
	}
	if (global_too) {
		jc_clear(c);
		j->gen++;
		j->n_vc_ng = 0;
		pfilter_clear(j);
	} else {
		/* a CR3 write: translations of global pages (the kernel's)
		 * stay valid, the others may map elsewhere now */
		if (j->n_vc_ng > NG_MAX) {
			for (unsigned k = 0; k < VC_SIZE; k++)
				if (!j->vc[k].global)
					j->vc[k].rip = ~0ull;
		} else {
			for (unsigned i = 0; i < j->n_vc_ng; i++)
				if (!j->vc[j->vc_ng[i]].global)
					j->vc[j->vc_ng[i]].rip = ~0ull;
		}
		j->n_vc_ng = 0;
		for (int p = 0; p < 2; p++) {
			if (j->n_jc_ng[p] > NG_MAX) {
				for (unsigned k = 0; k < BT_JC_SIZE; k++)
					if (!j->jc_global[p][k])
						c->jit_jc[p][k].rip = ~0ull;
			} else {
				for (unsigned i = 0; i < j->n_jc_ng[p]; i++)
					if (!j->jc_global[p][j->jc_ng[p][i]])
						c->jit_jc[p][j->jc_ng[p][i]].rip = ~0ull;
			}
			j->n_jc_ng[p] = 0;
		}
	}
	if (j->nstrad)
		kill_strad(c, 0, true, global_too);
	unlink_xlinks(j, global_too, false, 0);
	c->jit_link = 0;
}

void bt_jit_tlb_flush_page(struct bt_cpu *c, uint64_t lin)
{
	struct bt_jit *j = c->jit;
	unsigned i = (unsigned)((lin >> 12) % BT_JTLB_SIZE);

	j->tlb_flushes++;
	for (int p = 0; p < 2; p++)
		c->jtlb[p][i] = (struct bt_jtlb){ ~0ull, ~0ull, 0, ~0ull };
	/* jump-cache entries into that page may now map elsewhere */
	for (int p = 0; p < 2 && pfilter_has(j, lin); p++)
		for (unsigned k = 0; k < BT_JC_SIZE; k++)
			if (c->jit_jc[p][k].rip != ~0ull &&
			    (jc_lin(j, p, c->jit_jc[p][k].rip) >> 12) == (lin >> 12))
				c->jit_jc[p][k].rip = ~0ull;
	/* ... and lookup-cache entries: all of them at once (a scan of the
	 * table costs more than the lookups that fill it again) */
	if (pfilter_has(j, lin))
		j->gen++;
	/* page-crossing blocks whose second page it is */
	for (unsigned k = 0; k < j->nstrad;) {
		struct jblock *b = j->strad[k];
		if (!b->valid || (b->lin2 >> 12) == (lin >> 12)) {
			kill_block(j, b);
			c->jit_dead = 1;
			j->strad[k] = j->strad[--j->nstrad];
		} else {
			k++;
		}
	}
	if (pfilter_has(j, lin)) /* every link target's page is in it */
		unlink_xlinks(j, false, true, lin);
	c->jit_link = 0;
}

void bt_jit_request_exit(struct bt_cpu *c)
{
	__atomic_store_n(&c->jit_exit_req, 1, __ATOMIC_RELEASE);
}

void bt_jit_mem_written(struct bt_cpu *c, uint64_t gpa, uint64_t len)
{
	struct bt_jit *j = c->jit;
	bool hit = false;

	if (!j || !len)
		return;
	pthread_mutex_lock(&j->pend_lock);
	for (uint64_t p = gpa & ~0xFFFull; p < gpa + len; p += 4096) {
		if (!bt_jit_is_code(c, p))
			continue;
		hit = true;
		if (j->npend < PEND_MAX)
			j->pend[j->npend++] = p;
		else
			j->pend_all = true;
	}
	pthread_mutex_unlock(&j->pend_lock);
	if (hit) {
		atomic_store(&j->pend_flag, 1);
		bt_jit_request_exit(c);
	}
}

static void take_pending(struct bt_cpu *c)
{
	struct bt_jit *j = c->jit;

	pthread_mutex_lock(&j->pend_lock);
	atomic_store(&j->pend_flag, 0);
	if (j->pend_all) {
		bt_jit_flush_all(c);
	} else {
		for (unsigned i = 0; i < j->npend; i++)
			bt_jit_invalidate(c, j->pend[i]);
	}
	j->npend = 0;
	j->pend_all = false;
	pthread_mutex_unlock(&j->pend_lock);
}

/* ---- the translator ---------------------------------------------------- */

/* Where the parts of an instruction are in its bytes. */
struct layout {
	unsigned rex_off, op_off, op_len, modrm_off, imm_off;
	uint8_t rex;
	bool p66, lock;
};

static bool is_legacy_prefix(uint8_t b)
{
	return b == 0xF0 || b == 0xF2 || b == 0xF3 || b == 0x2E || b == 0x36 ||
	       b == 0x3E || b == 0x26 || b == 0x64 || b == 0x65 || b == 0x66 ||
	       b == 0x67;
}

static bool parse_layout(const uint8_t *b, const struct bt_insn *in,
			 struct layout *L)
{
	unsigned i = 0, len = in->len;

	memset(L, 0, sizeof(*L));
	for (; i < len; i++) {
		if (is_legacy_prefix(b[i])) {
			L->rex = 0; /* a REX before a legacy prefix is ignored */
			if (b[i] == 0x66)
				L->p66 = true;
			if (b[i] == 0xF0)
				L->lock = true;
		} else if ((b[i] & 0xF0) == 0x40 && in->mode == BT_MODE64) {
			L->rex = b[i];
		} else {
			break;
		}
	}
	if (L->rex != in->rex)
		return false;
	L->op_off = i;
	if (i < len && b[i] == 0x0F) {
		i++;
		if (i < len && (b[i] == 0x38 || b[i] == 0x3A))
			return false;
	}
	i++;
	L->op_len = i - L->op_off;
	if (i > len || b[i - 1] != in->opcode)
		return false;
	if (in->has_modrm && in->addrsize == 2) {
		/* 16-bit ModRM: no SIB, disp16 */
		uint8_t m = b[i];
		unsigned mod = m >> 6, rm = m & 7;
		L->modrm_off = i++;
		if (mod == 1)
			i += 1;
		else if (mod == 2 || (mod == 0 && rm == 6))
			i += 2;
	} else if (in->has_modrm) {
		uint8_t m = b[i];
		unsigned mod = m >> 6, rm = m & 7;
		L->modrm_off = i++;
		if (mod != 3 && rm == 4) {
			uint8_t sib = b[i++];
			if (mod == 0 && (sib & 7) == 5)
				i += 4;
		}
		if (mod == 1)
			i += 1;
		else if (mod == 2 || (mod == 0 && rm == 5))
			i += 4;
	}
	L->imm_off = i;
	return i <= len;
}

enum kind {
	K_NO, K_GEN, K_LEA, K_NOP, K_PAUSE, K_PUSH, K_PUSHI, K_POP, K_LEAVE,
	K_CLI, K_PUSHF, K_MOVSEG, K_RDTSC, K_INTERP,
	K_JMP, K_JCC, K_CALL, K_RET, K_JMPI, K_CALLI,  /* block ends: keep last */
};

static bool mem_opnd(const struct bt_insn *in, int *idx)
{
	*idx = -1;
	for (int i = 0; i < in->nopnd; i++)
		if (in->opnd[i].type == BT_OPND_MEM) {
			*idx = i;
			return true;
		}
	return false;
}

static bool lockable(unsigned op)
{
	switch (op) {
	case BT_OP_ADD: case BT_OP_OR: case BT_OP_ADC: case BT_OP_SBB:
	case BT_OP_AND: case BT_OP_SUB: case BT_OP_XOR: case BT_OP_NOT:
	case BT_OP_NEG: case BT_OP_INC: case BT_OP_DEC: case BT_OP_XCHG:
	case BT_OP_XADD: case BT_OP_CMPXCHG: case BT_OP_BTS: case BT_OP_BTR:
	case BT_OP_BTC:
		return true;
	default:
		return false;
	}
}

/* The operand size of stack and branch instructions the translator does:
 * 64-bit in 64-bit mode (no 16-bit pushes there), 16 or 32 elsewhere. */
static bool wide_ok(const struct bt_insn *in)
{
	if (in->mode == BT_MODE64)
		return in->opsize == 8;
	return in->opsize == 2 || in->opsize == 4;
}

/* Instructions the interpreter runs from inside a block (jit_interp1):
 * none of them changes control flow; whatever else they change that
 * translated code depends on (mode, paging, IF, segments) ends the block
 * after them. String and I/O instructions, division, x87/SSE, CPUID and
 * the rarer integer forms. Not STI, MOV SS, POP SS (their interrupt
 * shadow, but STI runs together with the instruction after it and ends
 * the block), nor HLT, MOV CR/DR, WRMSR, INVLPG and control transfers. */
/* In-place instructions after which the block always ends: the rest of
 * the block is never reached (RIP, and for most the privilege, change). */
static bool ends_in_place(unsigned op)
{
	return op == BT_OP_STI || op == BT_OP_IRET || op == BT_OP_SYSCALL ||
	       op == BT_OP_SYSRET;
}

static bool in_place(const struct bt_insn *in)
{
	switch (in->op) {
	case BT_OP_MOVS: case BT_OP_CMPS: case BT_OP_STOS: case BT_OP_LODS:
	case BT_OP_SCAS: case BT_OP_INS: case BT_OP_OUTS: case BT_OP_IN:
	case BT_OP_OUT: case BT_OP_DIV: case BT_OP_IDIV: case BT_OP_CPUID:
	case BT_OP_RDMSR: case BT_OP_SWAPGS: case BT_OP_POPF: case BT_OP_X87:
	case BT_OP_SSE: case BT_OP_LDMXCSR: case BT_OP_STMXCSR:
	case BT_OP_FXSAVE: case BT_OP_FXRSTOR: case BT_OP_CMPXCHG8B:
	case BT_OP_CMPXCHG16B: case BT_OP_PUSHA: case BT_OP_POPA:
	case BT_OP_ENTER: case BT_OP_DAA: case BT_OP_DAS: case BT_OP_AAA:
	case BT_OP_AAS: case BT_OP_AAM: case BT_OP_AAD: case BT_OP_SALC:
	case BT_OP_XLAT: case BT_OP_CLD: case BT_OP_STD: case BT_OP_RDTSCP:
	case BT_OP_XGETBV: case BT_OP_CLI: case BT_OP_PUSHF:
	case BT_OP_STI: /* with the instruction in its shadow; ends the block */
	case BT_OP_IRET: case BT_OP_SYSCALL: case BT_OP_SYSRET: /* end it too */
		return true;
	case BT_OP_MOVCR: case BT_OP_WRMSR: case BT_OP_INVLPG:
		/* a change of CR0/CR3/CR4/EFER, the TLB or what interrupts can
		 * be taken (CR8, the x2APIC) ends the block after them
		 * (jit_interp1); FS/GS bases are read from the state by
		 * translated code */
		return true;
	case BT_OP_MOVSEG:
	case BT_OP_POP:
		/* MOV Sreg / POP Sreg: not SS (shadow), never CS */
		return in->opnd[0].type != BT_OPND_REG || in->opnd[0].cls != BT_RC_SEG ||
		       (in->opnd[0].reg != BT_SS && in->opnd[0].reg != BT_CS);
	case BT_OP_PUSH: case BT_OP_LES: case BT_OP_LDS: case BT_OP_LFS:
	case BT_OP_LGS: case BT_OP_BT: case BT_OP_BTS: case BT_OP_BTR:
	case BT_OP_BTC: case BT_OP_MOV: case BT_OP_BSWAP: case BT_OP_LAHF:
	case BT_OP_SAHF: case BT_OP_LEAVE: case BT_OP_BSF: case BT_OP_BSR:
		return true; /* the forms the translator does not emit */
	default:
		return false;
	}
}

static enum kind classify_emit(const struct bt_cpu *c, const struct bt_insn *in,
			       const uint8_t *b, struct layout *L);

static enum kind classify(const struct bt_cpu *c, const struct bt_insn *in,
			  const uint8_t *b, struct layout *L)
{
	enum kind k = classify_emit(c, in, b, L);

	if (k == K_NO && in_place(in))
		return K_INTERP;
	return k;
}

static enum kind classify_emit(const struct bt_cpu *c, const struct bt_insn *in,
			       const uint8_t *b, struct layout *L)
{
	int mi;
	bool mem = mem_opnd(in, &mi);

	if (!parse_layout(b, in, L))
		return K_NO;
	if (in->prefix & BT_PFX_LOCK) {
		if (!lockable(in->op) || !mem || mi != 0)
			return K_NO;
	}
	switch (in->op) {
	case BT_OP_MOVSEG:
		/* MOV r, Sreg (a read: loads stay interpreted) */
		if (in->opnd[0].type == BT_OPND_REG && in->opnd[0].cls == BT_RC_GPR &&
		    in->opnd[1].type == BT_OPND_REG && in->opnd[1].cls == BT_RC_SEG &&
		    in->opnd[1].reg < MODVM_NR_SREGS)
			return K_MOVSEG;
		return K_NO;
	case BT_OP_CLI:
		/* at CPL 0 CLI cannot fault (not V86: CPL 3 there) */
		return c->cpl == 0 ? K_CLI : K_NO;
	case BT_OP_PUSHF:
		/* at CPL 0 or in 64-bit mode PUSHF cannot fault (V86 is CPL 3) */
		return (c->cpl == 0 || in->mode == BT_MODE64) && wide_ok(in) ? K_PUSHF : K_NO;
	case BT_OP_PREFETCH:
		return K_NOP; /* a hint: never faults */
	case BT_OP_RDTSC:
		return K_RDTSC; /* a C call (jit_rdtsc), which checks CR4.TSD */
	case BT_OP_FENCE:
		/* LFENCE/MFENCE/SFENCE as themselves; with 66/F2/F3 the same
		 * encoding is something else */
		if (L->p66 || (in->prefix & (BT_PFX_REP | BT_PFX_REPNE)))
			return K_NO;
		return K_GEN;
	default:
		break;
	}
	for (int i = 0; i < in->nopnd; i++) {
		const struct bt_operand *o = &in->opnd[i];
		if (o->type == BT_OPND_REG && o->cls != BT_RC_GPR && o->cls != BT_RC_GPR8H)
			return K_NO;
		if (o->type == BT_OPND_MEM && o->size > 8)
			return K_NO;
	}
	switch (in->op) {
	case BT_OP_ADD: case BT_OP_OR: case BT_OP_ADC: case BT_OP_SBB:
	case BT_OP_AND: case BT_OP_SUB: case BT_OP_XOR: case BT_OP_CMP:
	case BT_OP_TEST: case BT_OP_INC: case BT_OP_DEC: case BT_OP_NOT:
	case BT_OP_NEG: case BT_OP_ROL: case BT_OP_ROR: case BT_OP_RCL:
	case BT_OP_RCR: case BT_OP_SHL: case BT_OP_SHR: case BT_OP_SAL:
	case BT_OP_SAR: case BT_OP_MUL: case BT_OP_IMUL: case BT_OP_IMUL2:
	case BT_OP_IMUL3: case BT_OP_SHLD: case BT_OP_SHRD: case BT_OP_MOVZX:
	case BT_OP_MOVSX: case BT_OP_MOVSXD: case BT_OP_XCHG: case BT_OP_XADD:
	case BT_OP_CMPXCHG: case BT_OP_SETCC: case BT_OP_CMOVCC:
	case BT_OP_CBW: case BT_OP_CWD: case BT_OP_CLC: case BT_OP_STC:
	case BT_OP_CMC:
		return K_GEN;
	case BT_OP_BSWAP:
		/* 16-bit BSWAP is undefined: left to the interpreter */
		return in->opsize == 2 ? K_NO : K_GEN;
	case BT_OP_MOV:
		/* moffs forms (A0-A3) have a 64-bit address immediate */
		if (in->map == 0 && in->opcode >= 0xA0 && in->opcode <= 0xA3)
			return K_NO;
		return K_GEN;
	case BT_OP_BT: case BT_OP_BTS: case BT_OP_BTR: case BT_OP_BTC:
		/* a register bit offset on memory addresses a bit string */
		if (mem && !(in->map == 1 && in->opcode == 0xBA))
			return K_NO;
		return K_GEN;
	case BT_OP_BSF: case BT_OP_BSR:
		/* F3 would make the host run TZCNT/LZCNT */
		if (in->prefix & (BT_PFX_REP | BT_PFX_REPNE))
			return K_NO;
		return K_GEN;
	case BT_OP_LAHF: case BT_OP_SAHF:
		return c->has_lahf64 ? K_GEN : K_NO;
	case BT_OP_LEA:
		return in->opnd[0].size >= 2 ? K_LEA : K_NO;
	case BT_OP_NOP:
		return K_NOP;
	case BT_OP_PAUSE:
		return K_PAUSE;
	case BT_OP_PUSH:
		if (!wide_ok(in))
			return K_NO;
		if (in->opnd[0].type == BT_OPND_IMM)
			return K_PUSHI;
		if (in->opnd[0].type == BT_OPND_REG && in->opnd[0].cls == BT_RC_GPR)
			return K_PUSH;
		return K_NO;
	case BT_OP_POP:
		if (wide_ok(in) && in->opnd[0].type == BT_OPND_REG &&
		    in->opnd[0].cls == BT_RC_GPR)
			return K_POP;
		return K_NO;
	case BT_OP_LEAVE:
		return wide_ok(in) ? K_LEAVE : K_NO;
	case BT_OP_JMP:
		if (!wide_ok(in))
			return K_NO;
		if (in->opnd[0].type == BT_OPND_REL)
			return K_JMP;
		return in->opnd[0].type == BT_OPND_REG || mem ? K_JMPI : K_NO;
	case BT_OP_JCC:
		return wide_ok(in) ? K_JCC : K_NO;
	case BT_OP_CALL:
		if (!wide_ok(in))
			return K_NO;
		if (in->opnd[0].type == BT_OPND_REL)
			return K_CALL;
		return in->opnd[0].type == BT_OPND_REG || mem ? K_CALLI : K_NO;
	case BT_OP_RET:
		return wide_ok(in) ? K_RET : K_NO;
	default:
		return K_NO;
	}
}

/* One translation in progress. */
struct slow {
	uint8_t *jne;          /* rel32 of the jne to the slow path */
	uint8_t *join;         /* where the fast path continues */
	uint64_t rip;
	uint32_t info;         /* size | write << 8 | rmw << 9, or SLOW_INTERP */
	uint64_t next;         /* the instruction's end (~0: it ends the block) */
	uint8_t *after;        /* ... and the code of the one after it */
};

/* a slow path that leaves the instruction to the interpreter directly
 * (a segment check failed: it raises the fault) */
#define SLOW_INTERP 0x400u
#define JSEG(s, f) ((int32_t)(offsetof(struct bt_cpu, jit_seg) + \
			      (size_t)(s) * sizeof(struct bt_jseg) + \
			      offsetof(struct bt_jseg, f)))

struct tctx {
	struct bt_cpu *c;
	struct bt_jit *j;
	struct bt_emit e;
	struct jblock *b;
	struct slow slow[BLOCK_MAX * 4];
	unsigned nslow;
	int priv;
	bool m64;              /* 64-bit mode; else 16/32-bit, segmented */
	unsigned sw;           /* 16/32-bit: stack width (SS.B: 4, else 2) */
	uint32_t cslim;        /* 16/32-bit: CS limit (branch targets) */
	int fs;                /* where the guest's arithmetic flags are: FS_* */
};

/* The guest's arithmetic flags, at a point of the code being emitted, are
 * in the host's flags (FS_HOST), only in jit_pflags because glue (a TLB
 * check) clobbered the host's (FS_SLOT), or in both. A TLB check saves
 * them to jit_pflags first unless they are there already, and they come
 * back into the host's only before an instruction that reads them (or
 * writes only some of them) and before the block's exits: a run of memory
 * accesses between two flag-setting instructions saves them once. Every
 * slow path restores them from jit_pflags, so a fault delivers the
 * guest's flags of that instruction. */
enum { FS_HOST, FS_SLOT, FS_BOTH };

static bool identity(int g)
{
	return g != HR_RSP && (g < 8 || g > 11);
}

/* Host register for guest register g: itself or a scratch register. */
struct regmap {
	int guest[2], host[2];
	int n;
};

static int map_reg(struct regmap *m, int g)
{
	if (identity(g))
		return g;
	for (int i = 0; i < m->n; i++)
		if (m->guest[i] == g)
			return m->host[i];
	if (m->n == 2)
		return HR_NONE;
	m->guest[m->n] = g;
	m->host[m->n] = m->n == 0 ? HR_R8 : HR_R10;
	return m->host[m->n++];
}

static void load_spilled(struct tctx *t, const struct regmap *m)
{
	for (int i = 0; i < m->n; i++)
		em_load(&t->e, m->host[i], HR_R11, GPR(m->guest[i]));
}

static void store_spilled(struct tctx *t, const struct regmap *m)
{
	for (int i = 0; i < m->n; i++)
		em_store(&t->e, HR_R11, GPR(m->guest[i]), m->host[i]);
}

/* R9 = linear address of the memory operand (flag-free: mov and lea). */
static bool emit_addr(struct tctx *t, const struct bt_insn *in,
		      const struct bt_operand *o, uint64_t next_rip, bool seg)
{
	struct bt_emit *e = &t->e;
	int hb = HR_NONE, hi = HR_NONE;
	bool w = in->addrsize == 8;

	if (o->disp < INT32_MIN || o->disp > INT32_MAX)
		return false;
	if (o->base == BT_REG_RIP) {
		uint64_t a = next_rip + (uint64_t)o->disp;
		em_mov_ri64(e, HR_R9, w ? a : (uint32_t)a);
	} else {
		if (o->base != BT_NOREG) {
			hb = o->base;
			if (!identity(hb)) {
				em_load(e, HR_R10, HR_R11, GPR(o->base));
				hb = HR_R10;
			}
		}
		if (o->index != BT_NOREG) {
			hi = o->index;
			if (!identity(hi)) {
				em_load(e, HR_R8, HR_R11, GPR(o->index));
				hi = HR_R8;
			}
		}
		if (hb == HR_NONE && hi == HR_NONE) {
			uint64_t a = w ? (uint64_t)o->disp : in->addrsize == 4 ?
				     (uint32_t)o->disp : (uint16_t)o->disp;
			em_mov_ri64(e, HR_R9, a);
		} else {
			em_lea(e, w, HR_R9, hb, hi, o->scale ? o->scale : 1,
			       (int32_t)o->disp);
			if (in->addrsize == 2)
				em_movzx16(e, HR_R9, HR_R9);
		}
	}
	/* 16/32-bit: R9 is the offset; emit_tlb checks the segment and adds
	 * its base */
	if (!t->m64)
		return true;
	if (seg && (o->seg == BT_FS || o->seg == BT_GS)) {
		em_load(e, HR_R10, HR_R11, OFF(s.seg) + (int32_t)(o->seg *
			sizeof(struct modvm_segment) + offsetof(struct modvm_segment, base)));
		em_lea(e, true, HR_R9, HR_R9, HR_R10, 1, 0);
	}
	return true;
}

/* Make jit_pflags hold the guest's flags (FS_* above). */
static void emit_flags_park(struct tctx *t)
{
	struct bt_emit *e = &t->e;

	if (t->fs != FS_HOST)
		return;
	em_store(e, HR_R11, OFF(jit_spill), HR_RAX);
	em_flags_to_ax(e);
	em8(e, 0x66); em_op_rm(e, 0x89, false, HR_RAX, HR_R11, OFF(jit_pflags));
	em_load(e, HR_RAX, HR_R11, OFF(jit_spill));
	t->fs = FS_BOTH;
}

/* Bring them back into the host's flags, from jit_pflags. */
static void emit_flags_from_slot(struct bt_emit *e)
{
	em_store(e, HR_R11, OFF(jit_spill), HR_RAX);
	em8(e, 0x66); em_op_rm(e, 0x8B, false, HR_RAX, HR_R11, OFF(jit_pflags));
	em_flags_from_ax(e);
	em_load(e, HR_RAX, HR_R11, OFF(jit_spill));
}

static void emit_flags_unpark(struct tctx *t)
{
	if (t->fs != FS_SLOT)
		return;
	emit_flags_from_slot(&t->e);
	t->fs = FS_BOTH;
}

/* The inline TLB check on R9 (clobbers flags, R8, R10); on a hit R9 is
 * the host address. The miss goes to a slow path emitted after the block.
 * In 16/32-bit code R9 is the offset in segment seg: its limit and type
 * (struct bt_jseg) are checked and its base added first. */
static void emit_tlb_rmw(struct tctx *t, uint64_t rip, unsigned size, bool write,
			 bool rmw, bool flags_after, int seg)
{
	struct bt_emit *e = &t->e;
	struct slow *s;
	int32_t base = JTLB(t->priv);

	emit_flags_park(t);
	if (!t->m64) {
		/* r8 = off + size - 1; cmp r8, lim; jg interpret;
		 * add r9d, base (wraps at 4 GiB) */
		s = &t->slow[t->nslow++];
		em_lea(e, true, HR_R8, HR_R9, HR_NONE, 1, (int32_t)size - 1);
		em_op_rm(e, 0x3B, true, HR_R8, HR_R11, write ? JSEG(seg, wlim) : JSEG(seg, rlim));
		s->jne = em_jcc32(e, 0xF);
		s->join = NULL;
		s->rip = rip;
		s->info = SLOW_INTERP;
		em_op_rm(e, 0x03, false, HR_R9, HR_R11, JSEG(seg, base));
	}
	s = &t->slow[t->nslow++];
	em_mov_rr(e, HR_R10, HR_R9);
	em_shr_ri(e, HR_R10, 12 - 5);
	em_alu_ri(e, 4, false, HR_R10, (BT_JTLB_SIZE - 1) << 5);  /* and */
	em_lea(e, true, HR_R8, HR_R9, HR_NONE, 1, (int32_t)size - 1);
	em_alu_ri(e, 4, true, HR_R8, -4096);                      /* and */
	em_op_rmi(e, 0x3B, true, HR_R8, HR_R11, HR_R10, 1,
		  base + (write ? 8 : 0));                          /* cmp */
	s->jne = em_jcc32(e, 0x5);                                /* jne */
	em_op_rmi(e, 0x03, true, HR_R9, HR_R11, HR_R10, 1, base + 16); /* add */
	/* the slow path comes back here with the host's flags restored */
	s->join = e->p;
	s->rip = rip;
	s->info = size | (write ? 0x100u : 0) | (rmw ? 0x200u : 0);
	t->fs = FS_SLOT;
	if (flags_after)
		emit_flags_unpark(t);
}

static void emit_tlb(struct tctx *t, uint64_t rip, unsigned size, bool write,
		     bool flags_after, int seg)
{
	emit_tlb_rmw(t, rip, size, write, false, flags_after, seg);
}

/* Store the identity-mapped guest registers to struct bt_cpu. */
static void emit_store_gprs(struct bt_emit *e)
{
	static const int r[] = { 0, 1, 2, 3, 5, 6, 7, 12, 13, 14, 15 };

	for (unsigned i = 0; i < sizeof(r) / sizeof(r[0]); i++)
		em_store(e, HR_R11, GPR(r[i]), r[i]);
}

static void emit_load_gprs(struct bt_emit *e, bool all)
{
	static const int r[] = { 0, 1, 2, 6, 7, 3, 5, 12, 13, 14, 15 };
	unsigned n = all ? 11 : 5; /* the caller-saved ones first */

	for (unsigned i = 0; i < n; i++)
		em_load(e, r[i], HR_R11, GPR(r[i]));
}

/* Exit with RIP = rip through a patchable jump. */
static void emit_exit_direct(struct tctx *t, uint8_t *disp, uint64_t target,
			     int slot)
{
	struct jexit *x = &t->b->exit[slot];

	x->disp = disp;
	x->target = target;
	x->src = t->b;
	x->stub = NULL; /* set when the stubs are emitted */
}

/* After the flags were saved: the target in R10. A hit in the jump cache
 * restores the flags and jumps to the block (its entry checks the budget
 * and exit requests); a miss leaves RIP to the dispatcher. */
static void emit_exit_indirect(struct tctx *t)
{
	struct bt_emit *e = &t->e;
	int32_t jc = JC(t->priv);

	/* r9 = ((r10 ^ (r10 >> JC_SHIFT)) & (size - 1)) * 16 */
	em_mov_rr(e, HR_R9, HR_R10);
	em_mov_rr(e, HR_R8, HR_R10);
	em_shr_ri(e, HR_R8, JC_SHIFT);
	em_rex(e, true, HR_R8, 0, HR_R9, false); em8(e, 0x31); em8(e, 0xC0 | 0 << 3 | 1); /* xor r9, r8 */
	em_alu_ri(e, 4, false, HR_R9, BT_JC_SIZE - 1);               /* and r9d */
	em_rex(e, false, 0, 0, HR_R9, false); em8(e, 0xC1); em8(e, 0xE1); em8(e, 4); /* shl r9d, 4 */
	em_op_rmi(e, 0x3B, true, HR_R10, HR_R11, HR_R9, 1, jc);      /* cmp r10, [..] */
	uint8_t *miss = em_jcc32(e, 0x5);
	em_push_mem(e, HR_R11, OFF(jit_hflags));
	em_popfq(e);
	/* jmp [r11 + r9 + jc + 8] */
	em_rex(e, false, 0, HR_R9, HR_R11, false);
	em8(e, 0xFF);
	em_mem(e, 4, HR_R11, HR_R9, 1, jc + 8);
	if (!e->full)
		em_patch32(miss, e->p);
	em_store(e, HR_R11, OFF(s.rip), HR_R10);
	em_store_imm32(e, HR_R11, OFF(jit_link), LINK_IMISS);
	em_jmp_to(e, t->j->exit_regs);
}

/* Canonical check of R10 with the flags saved first; a non-canonical
 * target leaves the instruction at `rip` to the interpreter (#GP). */
static void emit_save_flags_via(struct bt_emit *e, int tmp)
{
	em_pushfq(e);
	em_pop(e, tmp);
	em_store(e, HR_R11, OFF(jit_hflags), tmp);
}

static void emit_save_flags(struct bt_emit *e)
{
	emit_save_flags_via(e, HR_R9);
}

/* The same for 16/32-bit code, whose targets must be within the CS
 * limit: cmp r10, limit; jbe ok. */
static void emit_canonical_or_interp(struct tctx *t, uint64_t rip)
{
	struct bt_emit *e = &t->e;

	if (t->m64) {
		/* r9 = (r10 << 16) >> 16 (arithmetic); cmp; jne */
		em_mov_rr(e, HR_R9, HR_R10);
		em_rex(e, true, 0, 0, HR_R9, false); em8(e, 0xC1); em8(e, 0xE1); em8(e, 16);
		em_rex(e, true, 0, 0, HR_R9, false); em8(e, 0xC1); em8(e, 0xF9); em8(e, 16);
	} else {
		em_mov_ri64(e, HR_R9, t->cslim);
	}
	em_rex(e, true, HR_R9, 0, HR_R10, false); em8(e, 0x39); em8(e, 0xC0 | 1 << 3 | 2);
	em8(e, t->m64 ? 0x74 : 0x76); /* je / jbe ok */
	uint8_t *je = e->p;
	em8(e, 0);
	em_mov_ri64(e, HR_R10, rip);
	em_store(e, HR_R11, OFF(s.rip), HR_R10);
	em_rex(e, false, 0, 0, HR_R11, false); em8(e, 0xC6);
	em_mem(e, 0, HR_R11, HR_NONE, 1, OFF(jit_interp)); em8(e, 1);
	em_store_imm32(e, HR_R11, OFF(jit_link), 0);
	/* flags already saved: registers out and return */
	em_jmp_to(e, t->j->exit_regs);
	if (!e->full)
		*je = (uint8_t)(e->p - (je + 1));
}

/* Re-encode a guest instruction with its registers mapped and its memory
 * operand (if any) replaced by [R9]. */
static bool emit_reencoded(struct tctx *t, const struct bt_insn *in,
			   const uint8_t *b, const struct layout *L,
			   struct regmap *m, bool mem)
{
	struct bt_emit *e = &t->e;
	bool rex_w = L->rex & 8, had_rex = L->rex != 0, hi8 = false;
	int reg_h = 0, rm_h = 0, opreg_h = -1;
	unsigned opc = in->opcode;
	bool reg_is_ext = false, opreg = false;

	bool reg_byte = false, rm_byte = false;
	if (in->map == 0) {
		switch (opc) {
		case 0x80: case 0x81: case 0x82: case 0x83: case 0x8F: case 0xC0: case 0xC1:
		case 0xC6: case 0xC7: case 0xD0: case 0xD1: case 0xD2: case 0xD3:
		case 0xF6: case 0xF7: case 0xFE: case 0xFF:
			reg_is_ext = true;
		}
		if ((opc >= 0x90 && opc <= 0x97) || (opc >= 0xB0 && opc <= 0xBF))
			opreg = true;
		/* byte forms: Eb,Gb / Gb,Eb (even opcodes of the ALU rows,
		 * TEST/XCHG/MOV 84 86 88 8A) and the Eb groups */
		if ((opc < 0x40 && (opc & 7) < 4 && !(opc & 1)) ||
		    opc == 0x84 || opc == 0x86 || opc == 0x88 || opc == 0x8A)
			reg_byte = rm_byte = true;
		if (opc == 0x80 || opc == 0x82 || opc == 0xC0 || opc == 0xC6 || opc == 0xD0 ||
		    opc == 0xD2 || opc == 0xF6 || opc == 0xFE)
			rm_byte = true;
		if (opc >= 0xB0 && opc <= 0xB7)
			reg_byte = true; /* the reg-in-opcode register */
	} else if (in->map == 1) {
		if (opc == 0xBA)
			reg_is_ext = true;
		if (opc >= 0xC8 && opc <= 0xCF)
			opreg = true;
		if (opc == 0xB6 || opc == 0xBE || (opc >= 0x90 && opc <= 0x9F))
			rm_byte = true;
		if (opc == 0xB0 || opc == 0xC0)
			reg_byte = rm_byte = true;
	}
	if (in->has_modrm) {
		uint8_t mr = b[L->modrm_off];
		int gr = ((mr >> 3) & 7) | ((L->rex & 4) ? 8 : 0);
		int grm = (mr & 7) | ((L->rex & 1) ? 8 : 0);
		if (reg_is_ext) {
			reg_h = (mr >> 3) & 7;
		} else {
			/* without REX, byte registers 4-7 are AH..BH */
			bool h = reg_byte && !had_rex && gr >= 4 && gr < 8;
			hi8 |= h;
			reg_h = h ? gr : map_reg(m, gr);
			if (reg_h == HR_NONE)
				return false;
		}
		if (mem) {
			rm_h = HR_R9;
		} else {
			bool h = rm_byte && !had_rex && grm >= 4 && grm < 8;
			hi8 |= h;
			rm_h = h ? grm : map_reg(m, grm);
			if (rm_h == HR_NONE)
				return false;
		}
	} else if (opreg) {
		int g = (opc & 7) | ((L->rex & 1) ? 8 : 0);
		bool h = reg_byte && !had_rex && g >= 4 && g < 8;
		hi8 |= h;
		opreg_h = h ? g : map_reg(m, g);
		if (opreg_h == HR_NONE)
			return false;
	}
	/* AH..BH exist only without REX */
	bool need_rex = (in->has_modrm && ((!reg_is_ext && reg_h >= 8) || rm_h >= 8)) ||
			opreg_h >= 8;
	if (hi8 && (need_rex || had_rex))
		return false;

	load_spilled(t, m);
	/* the operand size: 16-bit code has it the other way round */
	if (t->m64 ? L->p66 : in->opsize == 2)
		em8(e, 0x66);
	if (L->lock)
		em8(e, 0xF0);
	if (in->op == BT_OP_PAUSE)
		em8(e, 0xF3);
	{
		unsigned rex = 0x40 | (rex_w ? 8 : 0);
		if (in->has_modrm) {
			if (!reg_is_ext && reg_h >= 8)
				rex |= 4;
			if (rm_h >= 8)
				rex |= 1;
		} else if (opreg_h >= 8) {
			rex |= 1;
		}
		if (rex != 0x40 || had_rex)
			em8(e, rex);
	}
	/* opcode bytes, with the register of reg-in-opcode forms replaced */
	for (unsigned i = 0; i < L->op_len; i++) {
		uint8_t byte = b[L->op_off + i];
		if (opreg && i == L->op_len - 1)
			byte = (uint8_t)((byte & ~7u) | (unsigned)(opreg_h & 7));
		if (byte == 0x82 && in->map == 0 && L->op_len == 1)
			byte = 0x80; /* the 16/32-bit alias of group 1 Eb,Ib */
		em8(e, byte);
	}
	if (in->has_modrm) {
		uint8_t mr = b[L->modrm_off];
		if (mem)
			em8(e, (unsigned)(reg_h & 7) << 3 | 1); /* [r9], mod 00 rm 001 */
		else
			em8(e, 0xC0 | (unsigned)(reg_h & 7) << 3 | (unsigned)(rm_h & 7));
		(void)mr;
	}
	for (unsigned i = L->imm_off; i < in->len; i++)
		em8(e, b[i]);
	store_spilled(t, m);
	return true;
}

static bool emit_gen(struct tctx *t, const struct bt_insn *in, const uint8_t *b,
		     const struct layout *L, uint64_t rip, bool flags_live)
{
	struct regmap m = { .n = 0 };
	int mi;
	bool mem = mem_opnd(in, &mi);

	if (!t->m64 && in->map == 0 && in->opcode >= 0x40 && in->opcode <= 0x4F) {
		/* INC/DEC r16/32 (REX prefixes in 64-bit mode): FF /0, FF /1 */
		struct bt_emit *e = &t->e;
		int h = map_reg(&m, in->opcode & 7);
		load_spilled(t, &m);
		if (in->opsize == 2)
			em8(e, 0x66);
		em_rex(e, false, 0, 0, h, false);
		em8(e, 0xFF);
		em8(e, 0xC0 | (in->opcode & 8 ? 1u : 0u) << 3 | (unsigned)(h & 7));
		store_spilled(t, &m);
		return true;
	}
	if (mem) {
		const struct bt_operand *o = &in->opnd[mi];
		bool write = mi == 0 && in->op != BT_OP_CMP && in->op != BT_OP_TEST &&
			     in->op != BT_OP_BT && in->op != BT_OP_MUL &&
			     in->op != BT_OP_IMUL;
		if (in->op == BT_OP_XCHG || in->op == BT_OP_XADD || in->op == BT_OP_CMPXCHG)
			write = true;
		bool store_only = in->op == BT_OP_MOV || in->op == BT_OP_SETCC;
		if (!emit_addr(t, in, o, rip + in->len, true))
			return false;
		emit_tlb_rmw(t, rip, o->size, write, write && !store_only, flags_live, o->seg);
	}
	return emit_reencoded(t, in, b, L, &m, mem);
}

static bool emit_lea(struct tctx *t, const struct bt_insn *in, uint64_t rip)
{
	struct bt_emit *e = &t->e;
	const struct bt_operand *d = &in->opnd[0];
	int h;

	if (!emit_addr(t, in, &in->opnd[1], rip + in->len, false))
		return false;
	h = identity(d->reg) ? d->reg : HR_R8;
	if (!identity(d->reg) && d->size == 2)
		em_load(e, HR_R8, HR_R11, GPR(d->reg));
	if (d->size == 2)
		em8(e, 0x66);
	em_rex(e, d->size == 8, HR_R9, 0, h, false);
	em8(e, 0x89);
	em8(e, 0xC0 | (HR_R9 & 7) << 3 | (unsigned)(h & 7));
	if (!identity(d->reg)) /* a 32-bit mov zero-extended r8 already */
		em_store(e, HR_R11, GPR(d->reg), HR_R8);
	return true;
}

/* push: R9 = RSP - 8, check, store the value, then RSP -= 8 */
static void emit_push_value(struct tctx *t, uint64_t rip, bool flags_live,
			    int src_reg, bool imm, uint64_t v)
{
	struct bt_emit *e = &t->e;

	em_load(e, HR_R9, HR_R11, GPR(HR_RSP));
	em_lea(e, true, HR_R9, HR_R9, HR_NONE, 1, -8);
	emit_tlb(t, rip, 8, true, flags_live, BT_SS);
	if (imm) {
		if ((int64_t)v >= INT32_MIN && (int64_t)v <= INT32_MAX) {
			em_rex(e, true, 0, 0, HR_R9, false);
			em8(e, 0xC7);
			em8(e, 0x01); /* [r9] */
			em32(e, (uint32_t)v);
		} else {
			em_mov_ri64(e, HR_R10, v);
			em_store(e, HR_R9, 0, HR_R10);
		}
	} else if (src_reg == -2) {
		/* the value is in jit_target (indirect call) */
		em_load(e, HR_R10, HR_R11, OFF(jit_target));
		em_store(e, HR_R9, 0, HR_R10);
	} else if (identity(src_reg)) {
		em_store(e, HR_R9, 0, src_reg);
	} else {
		em_load(e, HR_R10, HR_R11, GPR(src_reg));
		em_store(e, HR_R9, 0, HR_R10);
	}
	em_load(e, HR_R10, HR_R11, GPR(HR_RSP));
	em_lea(e, true, HR_R10, HR_R10, HR_NONE, 1, -8);
	em_store(e, HR_R11, GPR(HR_RSP), HR_R10);
}

/* pop into R10 and RSP += 8 + extra */
static void emit_pop_r10(struct tctx *t, uint64_t rip, bool flags_live,
			 int32_t extra, bool commit)
{
	struct bt_emit *e = &t->e;

	em_load(e, HR_R9, HR_R11, GPR(HR_RSP));
	emit_tlb(t, rip, 8, false, flags_live, BT_SS);
	em_load(e, HR_R10, HR_R9, 0);
	em_load(e, HR_R8, HR_R11, GPR(HR_RSP));
	em_lea(e, true, HR_R8, HR_R8, HR_NONE, 1, 8 + extra);
	if (commit)
		em_store(e, HR_R11, GPR(HR_RSP), HR_R8);
}

/* Indirect target of JMP/CALL r/m64 into R10 */
static bool emit_indirect_target(struct tctx *t, const struct bt_insn *in,
				 uint64_t rip, bool flags_live)
{
	struct bt_emit *e = &t->e;
	const struct bt_operand *o = &in->opnd[0];

	if (o->type == BT_OPND_REG) {
		if (identity(o->reg))
			em_mov_rr(e, HR_R10, o->reg);
		else
			em_load(e, HR_R10, HR_R11, GPR(o->reg));
		return true;
	}
	if (!emit_addr(t, in, o, rip + in->len, true))
		return false;
	emit_tlb(t, rip, 8, false, flags_live, o->seg);
	em_load(e, HR_R10, HR_R9, 0);
	return true;
}

/* ---- 16/32-bit stack and branches ---------------------------------------- */

/* dst = guest SP + delta, wrapped to the stack width */
static void emit_sp(struct tctx *t, int dst, int32_t delta)
{
	struct bt_emit *e = &t->e;

	em_load(e, dst, HR_R11, GPR(HR_RSP));
	em_lea(e, false, dst, dst, HR_NONE, 1, delta);
	if (t->sw == 2)
		em_movzx16(e, dst, dst);
}

/* the stack-width low bytes of guest RSP = src (the rest is kept) */
static void emit_set_sp(struct tctx *t, int src)
{
	em_store_sz(&t->e, HR_R11, GPR(HR_RSP), src, t->sw);
}

/* guest register g = the low size bytes of src, as a size-byte register
 * write does (4: zero-extends, 2: keeps the rest) */
static void emit_put_reg(struct tctx *t, int g, int src, unsigned size)
{
	struct bt_emit *e = &t->e;

	if (identity(g))
		em_mov_rr_sz(e, g, src, size);
	else if (size == 4)
		em_store(e, HR_R11, GPR(g), src); /* src was zero-extended */
	else
		em_store_sz(e, HR_R11, GPR(g), src, 2);
}

/* push of osz bytes: a register (src_reg; -2: jit_target) or imm */
static void emit_push32(struct tctx *t, uint64_t rip, unsigned osz, int src_reg,
			bool imm, uint64_t v)
{
	struct bt_emit *e = &t->e;

	emit_sp(t, HR_R9, -(int32_t)osz);
	emit_tlb(t, rip, osz, true, true, BT_SS);
	if (imm) {
		if (osz == 2)
			em8(e, 0x66);
		em_rex(e, false, 0, 0, HR_R9, false);
		em8(e, 0xC7);
		em8(e, 0x01); /* [r9] */
		if (osz == 2) {
			em8(e, v & 0xFF);
			em8(e, (v >> 8) & 0xFF);
		} else {
			em32(e, (uint32_t)v);
		}
	} else {
		int r = src_reg;
		if (src_reg == -2) {
			em_load(e, HR_R10, HR_R11, OFF(jit_target));
			r = HR_R10;
		} else if (!identity(src_reg)) {
			em_load(e, HR_R10, HR_R11, GPR(src_reg));
			r = HR_R10;
		}
		em_store_sz(e, HR_R9, 0, r, osz);
	}
	emit_sp(t, HR_R10, -(int32_t)osz);
	emit_set_sp(t, HR_R10);
}

/* pop of osz bytes into R10 (zero-extended); R8 = the new SP */
static void emit_pop32(struct tctx *t, uint64_t rip, unsigned osz, int32_t extra,
		       bool commit)
{
	emit_sp(t, HR_R9, 0);
	emit_tlb(t, rip, osz, false, true, BT_SS);
	em_load_zx(&t->e, HR_R10, HR_R9, 0, osz);
	emit_sp(t, HR_R8, (int32_t)osz + extra);
	if (commit)
		emit_set_sp(t, HR_R8);
}

/* leave: SP = BP, BP = pop */
static void emit_leave32(struct tctx *t, uint64_t rip, unsigned osz)
{
	struct bt_emit *e = &t->e;

	if (t->sw == 2)
		em_movzx16(e, HR_R9, HR_RBP);
	else
		em_mov_rr_sz(e, HR_R9, HR_RBP, 4);
	emit_tlb(t, rip, osz, false, true, BT_SS);
	em_load_zx(e, HR_R10, HR_R9, 0, osz);
	em_lea(e, false, HR_R8, HR_RBP, HR_NONE, 1, (int32_t)osz);
	if (t->sw == 2)
		em_movzx16(e, HR_R8, HR_R8);
	emit_set_sp(t, HR_R8);
	emit_put_reg(t, HR_RBP, HR_R10, osz);
}

/* Indirect target of JMP/CALL r/m16/32 into R10 (zero-extended) */
static bool emit_indirect_target32(struct tctx *t, const struct bt_insn *in,
				   uint64_t rip)
{
	struct bt_emit *e = &t->e;
	const struct bt_operand *o = &in->opnd[0];
	unsigned osz = in->opsize;

	if (o->type == BT_OPND_REG) {
		int r = o->reg;
		if (!identity(r)) {
			em_load(e, HR_R10, HR_R11, GPR(r));
			r = HR_R10;
		}
		if (osz == 2)
			em_movzx16(e, HR_R10, r);
		else
			em_mov_rr_sz(e, HR_R10, r, 4);
		return true;
	}
	if (!emit_addr(t, in, o, rip + in->len, true))
		return false;
	emit_tlb(t, rip, osz, false, true, o->seg);
	em_load_zx(e, HR_R10, HR_R9, 0, osz);
	return true;
}

static void emit_budget_check(struct tctx *t, uint64_t rip, uint8_t **entry)
{
	struct bt_emit *e = &t->e;
	uint8_t *exit = e->p;

	t->j->last_exit = exit;
	/* the exit, placed before the entry so that the check falls through */
	em_mov_rr(e, HR_RCX, HR_R10);
	em_mov_ri64(e, HR_R10, rip);
	em_store(e, HR_R11, OFF(s.rip), HR_R10);
	em_store_imm32(e, HR_R11, OFF(jit_link), 0);
	em_jmp_to(e, t->j->exit_flags);
	*entry = e->p;
	/* r10 = rcx; rcx = budget - 1; budget = rcx; jrcxz exit;
	 * rcx = exit_req; jrcxz go; jmp exit; go: rcx = r10.
	 * No flags are touched. Only this thread writes the budget; other
	 * threads set exit_req, so no request is lost. */
	em_mov_rr(e, HR_R10, HR_RCX);
	em_load(e, HR_RCX, HR_R11, OFF(jit_budget));
	em_lea(e, true, HR_RCX, HR_RCX, HR_NONE, 1, -1);
	em_store(e, HR_R11, OFF(jit_budget), HR_RCX);
	em8(e, 0xE3);
	em8(e, (uint8_t)(int8_t)(exit - (e->p + 1)));
	em_load(e, HR_RCX, HR_R11, OFF(jit_exit_req));
	em8(e, 0xE3);
	em8(e, 2);
	em8(e, 0xEB);
	em8(e, (uint8_t)(int8_t)(exit - (e->p + 1)));
	em_mov_rr(e, HR_RCX, HR_R10);
}

/* 16/32-bit segment checks that failed (SLOW_INTERP): the interpreter runs
 * the instruction from the dispatcher and raises its fault. */
static void emit_segment_exits(struct tctx *t)
{
	struct bt_emit *e = &t->e;

	for (unsigned i = 0; i < t->nslow; i++) {
		struct slow *s = &t->slow[i];
		if (s->info != SLOW_INTERP)
			continue; /* emit_slow_stubs */
		if (!e->full)
			em_patch32(s->jne, e->p);
		/* every TLB check parks the flags first (emit_flags_park) */
		emit_flags_from_slot(e);
		emit_save_flags_via(e, HR_R10); /* R9 holds the address */
		emit_store_gprs(e);
		em_mov_ri64(e, HR_R10, s->rip);
		em_store(e, HR_R11, OFF(s.rip), HR_R10);
		em_rex(e, false, 0, 0, HR_R11, false); em8(e, 0xC6);
		em_mem(e, 0, HR_R11, HR_NONE, 1, OFF(jit_interp)); em8(e, 1);
		em_store_imm32(e, HR_R11, OFF(jit_link), 0);
		em_jmp_to(e, t->j->exit_done);
	}
}

/* The TLB miss paths of a block: a stub each that calls slow_common,
 * which returns to the jump back to the fast path, or 5 bytes further on,
 * to the jump past the instruction when the interpreter ran it. */
static void emit_slow_stubs(struct tctx *t)
{
	struct bt_emit *e = &t->e;

	for (unsigned i = 0; i < t->nslow; i++) {
		struct slow *s = &t->slow[i];
		uint32_t len = s->next == ~0ull ? 0 : (uint32_t)((s->next - s->rip) & 15);
		if (s->info == SLOW_INTERP)
			continue;
		if (!e->full)
			em_patch32(s->jne, e->p);
		em_mov_rimm(e, HR_R10, s->rip);
		em_mov_ri64(e, HR_R8, s->info | len << 16);
		em_call_to(e, t->j->slow_common);
		em_jmp_to(e, s->join);
		if (s->after)
			em_jmp_to(e, s->after);
		else /* never reached: jit_interp1 ends the block */
			em_jmp_to(e, t->j->exit_done);
	}
}

static void emit_stubs(struct tctx *t)
{
	struct bt_emit *e = &t->e;

	for (int k = 0; k < 2; k++) {
		struct jexit *x = &t->b->exit[k];
		if (!x->disp)
			continue;
		x->stub = e->p;
		if (!e->full)
			em_patch32(x->disp, x->stub);
		em_mov_ri64(e, HR_R10, x->target);
		em_store(e, HR_R11, OFF(s.rip), HR_R10);
		em_mov_ri64(e, HR_R10, (uint64_t)(uintptr_t)x);
		em_store(e, HR_R11, OFF(jit_link), HR_R10);
		em_jmp_to(e, t->j->exit_flags);
	}
}

static void jit_rdtsc(struct bt_cpu *c);

static uint8_t *jit_slow(struct bt_cpu *c, uint64_t lin, uint32_t info)
{
	/* A fault unwinds from here: the state must be whole already. */
	c->s.rflags = (c->s.rflags & ~(uint64_t)BT_ARITH) | (c->jit_hflags & BT_ARITH);
	return bt_jit_fill(c, lin, info & 0xFF, info & 0x100, info & 0x200);
}

static int jit_interp1(struct bt_cpu *c, uint64_t next);

/* The shared slow path (slow_common): the host address of the access
 * (bt_jit_fill), else the instruction is interpreted in place (MMIO, a
 * page-crossing access, a write to code): 0, go on after it in the block,
 * or 1, leave the block. info bits 16-19: the instruction's length (0: it
 * ends the block). */
static uintptr_t jit_slow2(struct bt_cpu *c, uint64_t lin, uint32_t info)
{
	uint8_t *p = jit_slow(c, lin, info & 0x3FF);
	uint64_t next = ~0ull;
	unsigned len = (info >> 16) & 15;

	if (p)
		return (uintptr_t)p;
	if (len) {
		next = c->s.rip + len;
		if (c->mode != BT_MODE64)
			next &= 0xFFFFFFFFull;
	}
	return (uintptr_t)jit_interp1(c, next);
}

/* RDTSC from translated code: the state is whole (RIP at the RDTSC), so
 * the #GP of CR4.TSD above CPL 0 unwinds as from the interpreter. */
static void jit_rdtsc(struct bt_cpu *c)
{
	uint64_t t;

	c->s.rflags = (c->s.rflags & ~(uint64_t)BT_ARITH) | (c->jit_hflags & BT_ARITH);
	if ((c->s.cr4 & CR4_TSD) && c->cpl != 0)
		bt_raise(c, BT_GP, 0);
	t = bt_tsc(c);
	bt_set_reg(c, MODVM_RAX, 4, t);
	bt_set_reg(c, MODVM_RDX, 4, t >> 32);
}

static bool usable(const struct bt_cpu *c);
static void seg_refresh(struct bt_cpu *c);

/* The instruction at c->s.rip, interpreted from inside a block with the
 * state whole (K_INTERP, and memory accesses the TLB cannot serve: MMIO,
 * page-crossing). Returns 0 when the block can go on at `next`, 1 when it
 * must end (RIP is then wherever the instruction left it): a control
 * transfer, a string instruction stopped part-way, a change of mode,
 * paging, IF/TF/AC, an interrupt shadow, or translations or TLB entries
 * dropped meanwhile. A fault unwinds as from the interpreter. */
static int jit_interp1(struct bt_cpu *c, uint64_t next)
{
	struct bt_jit *j = c->jit;
	uint32_t key = mode_key(c);
	uint64_t cskey = cs_key(c), cr0 = c->s.cr0, cr3 = c->s.cr3;
	uint64_t cr4 = c->s.cr4, efer = c->s.msr.efer, fl, gen = j->gen;
	uint64_t tf = j->tlb_flushes;

	c->s.rflags = (c->s.rflags & ~(uint64_t)BT_ARITH) | (c->jit_hflags & BT_ARITH);
	fl = c->s.rflags;
	bt_cpu_step(c);
	if (c->in->op == BT_OP_STI) {
		/* STI ends its block (decode_block): the instruction in its
		 * shadow (none if IF was set already) runs before any
		 * interrupt, then the dispatcher looks at them */
		if (c->s.ev.interrupt_shadow) {
			j->st.in_place++;
			bt_cpu_step(c);
		}
		c->jit_hflags = (c->s.rflags & BT_ARITH) | HFLAGS_BASE;
		j->st.in_place_exits++;
		return 1;
	}
	c->jit_hflags = (c->s.rflags & BT_ARITH) | HFLAGS_BASE;
	j->st.in_place++;
	if (ends_in_place(c->in->op)) {
		/* IRET, SYSCALL, SYSRET: nothing of the block follows (a UD2),
		 * even if RIP happens to be the next instruction */
		j->st.in_place_exits++;
		return 1;
	}
	if (j->debug_inplace)
		j->debug_inplace[c->in->op]++;
	if (c->s.rip != next || c->jit_dead || mode_key(c) != key ||
	    cs_key(c) != cskey || c->s.cr0 != cr0 || c->s.cr3 != cr3 ||
	    c->s.cr4 != cr4 || c->s.msr.efer != efer || j->gen != gen ||
	    j->tlb_flushes != tf ||
	    ((c->s.rflags ^ fl) & (BT_IF | BT_TF | BT_AC | BT_RF)) ||
	    !usable(c) || c->s.halted || (c->stop && *c->stop) ||
	    c->nmi_pending || c->inject_vec >= 0 ||
	    __atomic_load_n(&c->jit_exit_req, __ATOMIC_RELAXED) ||
	    ((c->s.rflags & BT_IF) && c->bus->intr_pending(c->bus->opaque)) ||
	    (c->a20_line && (*c->a20_line != 0) != c->a20_cur) ||
	    atomic_load_explicit(&j->pend_flag, memory_order_relaxed)) {
		j->st.in_place_exits++;
		return 1;
	}
	if (c->mode != BT_MODE64)
		seg_refresh(c); /* a segment load: the inline checks use these */
	return 0;
}

/* Routines shared by all blocks. interp_full: in-place interpretation
 * (jit_interp1) of the instruction at R10, ending at R9, with the flags,
 * the registers and RIP saved first. slow_common: the TLB miss path
 * (jit_slow2). Each returns to the block with everything reloaded, or
 * leaves for the dispatcher. */
static void emit_interp_routines(struct bt_jit *j, struct bt_emit *e)
{
	j->interp_full = e->p;
	emit_save_flags_via(e, HR_R8);
	emit_store_gprs(e);
	em_store(e, HR_R11, OFF(s.rip), HR_R10);
	em_store(e, HR_R11, OFF(insn_rip), HR_R10);
	em_alu_ri(e, 5, true, HR_RSP, 8);          /* sub rsp, 8: align */
	em_mov_rr(e, HR_RDI, HR_R11);
	em_mov_rr(e, HR_RSI, HR_R9);
	em_call_abs(e, (void *)jit_interp1);
	em_alu_ri(e, 0, true, HR_RSP, 8);          /* add rsp, 8 */
	em_load(e, HR_R11, HR_RSP, 8);              /* over the return address */
	em8(e, 0x85); em8(e, 0xC0);                 /* test eax, eax */
	uint8_t *jnz = em_jcc32(e, 0x5);
	emit_load_gprs(e, true);
	em_push_mem(e, HR_R11, OFF(jit_hflags));
	em_popfq(e);
	em8(e, 0xC3);                               /* ret */
	if (!e->full)
		em_patch32(jnz, e->p);
	em_alu_ri(e, 0, true, HR_RSP, 8);          /* drop the return address */
	em_store_imm32(e, HR_R11, OFF(jit_link), 0);
	em_jmp_to(e, j->exit_done);

	/* slow_common: the state whole first (a fault unwinds from the
	 * helper; the flags are parked in jit_pflags by the TLB check) */
	j->slow_common = e->p;
	em_store(e, HR_R11, OFF(s.rip), HR_R10);
	em_store(e, HR_R11, OFF(insn_rip), HR_R10);
	emit_flags_from_slot(e);
	emit_save_flags_via(e, HR_R10);
	emit_store_gprs(e);
	em_alu_ri(e, 5, true, HR_RSP, 8);          /* sub rsp, 8: align */
	em_mov_rr(e, HR_RDI, HR_R11);
	em_mov_rr(e, HR_RSI, HR_R9);
	em_mov_rr(e, HR_RDX, HR_R8);
	em_call_abs(e, (void *)jit_slow2);
	em_alu_ri(e, 0, true, HR_RSP, 8);          /* add rsp, 8 */
	em_load(e, HR_R11, HR_RSP, 8);              /* over the return address */
	em8(e, 0x48); em8(e, 0x83); em8(e, 0xF8); em8(e, 1); /* cmp rax, 1 */
	uint8_t *leave = em_jcc32(e, 0x4);          /* je: leave the block */
	uint8_t *interp = em_jcc32(e, 0x2);         /* jb (0): interpreted */
	em_mov_rr(e, HR_R9, HR_RAX);                /* the host address */
	emit_load_gprs(e, false);
	em_push_mem(e, HR_R11, OFF(jit_hflags));
	em_popfq(e);
	em8(e, 0xC3);                               /* ret: to the join jump */
	if (!e->full)
		em_patch32(interp, e->p);
	/* add qword [rsp], 5: return to the jump past the instruction */
	em8(e, 0x48); em8(e, 0x83); em8(e, 0x04); em8(e, 0x24); em8(e, 5);
	emit_load_gprs(e, true);
	em_push_mem(e, HR_R11, OFF(jit_hflags));
	em_popfq(e);
	em8(e, 0xC3);
	if (!e->full)
		em_patch32(leave, e->p);
	em_alu_ri(e, 0, true, HR_RSP, 8);          /* drop the return address */
	em_store_imm32(e, HR_R11, OFF(jit_link), 0);
	em_jmp_to(e, j->exit_done);
}

struct dinsn {
	struct bt_insn in;
	struct layout L;
	enum kind k;
	uint64_t rip;
	uint64_t target;       /* direct branches */
	const uint8_t *bytes;
};

static bool canonical(uint64_t a)
{
	return (uint64_t)((int64_t)(a << 16) >> 16) == a;
}

/* Decode the block at rip (host bytes p, avail of them: to the end of the
 * page or of the code segment). */
static unsigned decode_block(struct bt_cpu *c, uint64_t rip, const uint8_t *p,
			     unsigned avail, struct dinsn *d)
{
	unsigned n = 0, off = 0;

	while (n < BLOCK_MAX) {
		struct dinsn *x = &d[n];
		int r = bt_decode(p + off, avail - off, c->mode, &x->in);
		if (r <= 0)
			break;
		x->rip = rip + off;
		x->bytes = p + off;
		x->k = classify(c, &x->in, x->bytes, &x->L);
		if (x->k == K_NO)
			break;
		if (x->k == K_JMP || x->k == K_JCC || x->k == K_CALL) {
			uint64_t tgt = x->rip + x->in.len + x->in.opnd[0].imm;
			if (c->mode == BT_MODE64) {
				if (!canonical(tgt))
					break;
			} else {
				/* past the CS limit: #GP, from the interpreter */
				tgt &= bt_mask(x->in.opsize);
				if (tgt > c->s.seg[BT_CS].limit)
					break;
			}
			x->target = tgt;
		}
		n++;
		off += (unsigned)r;
		if (x->k >= K_JMP || (x->k == K_INTERP && ends_in_place(x->in.op)))
			break;
		if (off >= avail)
			break;
	}
	return n;
}

/* What an instruction emitted as itself does with the arithmetic flags:
 * nothing (FLE_NONE), reads them without writing (FLE_READ: SETcc, CMOVcc),
 * writes all six (FLE_ALL), or writes some and keeps or reads the others
 * (FLE_PART: INC/DEC keep CF, ADC/SBB read CF, a shift by CL may be by 0;
 * flags the manuals call undefined count as kept, the host decides). */
enum { FLE_NONE, FLE_READ, FLE_ALL, FLE_PART };

static int flag_effect(const struct bt_insn *in, const uint8_t *b)
{
	unsigned mask = in->opsize == 8 ? 63 : 31, opc = in->opcode;

	switch (in->op) {
	case BT_OP_ADD: case BT_OP_OR: case BT_OP_AND: case BT_OP_SUB:
	case BT_OP_XOR: case BT_OP_CMP: case BT_OP_TEST: case BT_OP_NEG:
	case BT_OP_CMPXCHG: case BT_OP_XADD:
		return FLE_ALL;
	case BT_OP_SHL: case BT_OP_SHR: case BT_OP_SAL: case BT_OP_SAR:
		/* C0/C1 by imm8, D0/D1 by 1: a count of 0 keeps the flags */
		if (in->map == 0 && (opc == 0xD0 || opc == 0xD1))
			return FLE_ALL;
		if (in->map == 0 && (opc == 0xC0 || opc == 0xC1))
			return (b[in->len - 1] & mask) ? FLE_ALL : FLE_NONE;
		return FLE_PART;
	case BT_OP_SHLD: case BT_OP_SHRD:
		if (in->map == 1 && (opc == 0xA4 || opc == 0xAC))
			return (b[in->len - 1] & mask) ? FLE_ALL : FLE_NONE;
		return FLE_PART;
	case BT_OP_SETCC: case BT_OP_CMOVCC: case BT_OP_LAHF:
		return FLE_READ;
	case BT_OP_MOV: case BT_OP_MOVZX: case BT_OP_MOVSX: case BT_OP_MOVSXD:
	case BT_OP_XCHG: case BT_OP_BSWAP: case BT_OP_CBW: case BT_OP_CWD:
	case BT_OP_NOT: case BT_OP_FENCE: case BT_OP_NOP: case BT_OP_PREFETCH:
		return FLE_NONE;
	default:
		/* ADC SBB INC DEC ROL ROR RCL RCR MUL IMUL BT* BSF BSR CLC STC
		 * CMC SAHF, and anything not listed */
		return FLE_PART;
	}
}

/* Returns true, or false with *bad the index of the instruction that could
 * not be encoded. */
static bool emit_block(struct tctx *t, struct dinsn *d, unsigned n, unsigned *bad)
{
	struct bt_emit *e = &t->e;
	uint8_t *entry;
	bool ended = false;
	uint64_t end = 0;       /* where the last instruction ends */

	emit_budget_check(t, d[0].rip, &entry);
	t->b->code = entry;
	t->b->dead = t->j->last_exit + 3; /* after mov rcx, r10 */
	t->fs = FS_HOST; /* entered with the guest's flags in the host's */
	for (unsigned i = 0; i < n && !e->full; i++) {
		struct dinsn *x = &d[i];
		const struct bt_insn *in = &x->in;
		uint64_t next = x->rip + in->len;
		unsigned osz = in->opsize;

		if (!t->m64)
			next &= 0xFFFFFFFFull;
		end = x->rip + in->len;
		/* Every kind but K_GEN, K_LEA and K_NOP wants the flags in the
		 * host's before it and after its memory accesses. */
		bool fl = true;
		unsigned slow0 = t->nslow;
		if (x->k != K_GEN && x->k != K_LEA && x->k != K_NOP)
			emit_flags_unpark(t);

		switch (x->k) {
		case K_GEN: {
			int eff = flag_effect(in, x->bytes);
			bool need = eff == FLE_READ || eff == FLE_PART;
			int mi;
			if (need && !mem_opnd(in, &mi))
				emit_flags_unpark(t);
			if (!emit_gen(t, in, x->bytes, &x->L, x->rip, need)) {
				*bad = i;
				return false;
			}
			/* whatever wrote flags left them in the host's only */
			if (eff != FLE_NONE && eff != FLE_READ)
				t->fs = FS_HOST;
			break;
		}
		case K_LEA:
			if (!emit_lea(t, in, x->rip)) {
				*bad = i;
				return false;
			}
			break;
		case K_NOP:
			break;
		case K_CLI:
			/* IF lives in the state; keep the host flags (the guest's) */
			em_pushfq(e);
			em_rex(e, true, 0, 0, HR_R11, false);
			em8(e, 0x81);
			em_mem(e, 4, HR_R11, HR_NONE, 1, OFF(s.rflags));
			em32(e, ~(uint32_t)BT_IF);
			em_popfq(e);
			break;
		case K_PUSHF: {
			/* the image: the state's system flags with the host's
			 * arithmetic ones, VM and RF clear */
			em_pushfq(e);
			em_pop(e, HR_R9);
			em_mov_rr(e, HR_R10, HR_R9);
			em_load(e, HR_R8, HR_R11, OFF(s.rflags));
			em_alu_ri(e, 4, true, HR_R8, (int32_t)~(uint32_t)(BT_ARITH | BT_VM | BT_RF));
			em_alu_ri(e, 4, true, HR_R10, (int32_t)BT_ARITH);
			em_rex(e, true, HR_R10, 0, HR_R8, false); em8(e, 0x09); /* or r8, r10 */
			em8(e, 0xC0 | (HR_R10 & 7) << 3 | (HR_R8 & 7));
			em_store(e, HR_R11, OFF(jit_target), HR_R8);
			em_push(e, HR_R9);
			em_popfq(e);
			if (!t->m64)
				emit_push32(t, x->rip, osz, -2, false, 0);
			else
				emit_push_value(t, x->rip, fl, -2, false, 0);
			break;
		}
		case K_INTERP:
			em_mov_ri64(e, HR_R10, x->rip);
			em_mov_ri64(e, HR_R9, next);
			em_call_to(e, t->j->interp_full);
			if (ends_in_place(in->op)) {
				/* jit_interp1 always ends the block after these
				 * (after STI, and the instruction after it) */
				em8(e, 0x0F); em8(e, 0x0B); /* ud2: never reached */
				ended = true;
			}
			t->fs = FS_HOST; /* it may have written any flag */
			break;
		case K_RDTSC:
			emit_save_flags(e);
			emit_store_gprs(e);
			em_mov_ri64(e, HR_R10, x->rip);
			em_store(e, HR_R11, OFF(s.rip), HR_R10);
			em_store(e, HR_R11, OFF(insn_rip), HR_R10);
			em_mov_rr(e, HR_RDI, HR_R11);
			em_call_abs(e, (void *)jit_rdtsc);
			em_load(e, HR_R11, HR_RSP, 0);
			emit_load_gprs(e, false);
			em_push_mem(e, HR_R11, OFF(jit_hflags));
			em_popfq(e);
			break;
		case K_MOVSEG: {
			int g = in->opnd[0].reg, h = identity(g) ? g : HR_R10;
			int32_t sel = OFF(s.seg) + (int32_t)(in->opnd[1].reg * sizeof(struct modvm_segment) +
						offsetof(struct modvm_segment, selector));
			if (in->opnd[0].size == 2) {
				if (!identity(g))
					em_load(e, HR_R10, HR_R11, GPR(g));
				em8(e, 0x66);
				em_op_rm(e, 0x8B, false, h, HR_R11, sel);
			} else {
				em_load_zx(e, h, HR_R11, sel, 2);
			}
			if (!identity(g))
				em_store(e, HR_R11, GPR(g), HR_R10);
			break;
		}
		case K_PAUSE:
			em8(e, 0xF3); em8(e, 0x90);
			break;
		case K_PUSH:
			if (!t->m64)
				emit_push32(t, x->rip, osz, in->opnd[0].reg, false, 0);
			else
				emit_push_value(t, x->rip, fl, in->opnd[0].reg, false, 0);
			break;
		case K_PUSHI:
			if (!t->m64)
				emit_push32(t, x->rip, osz, 0, true, in->opnd[0].imm);
			else
				emit_push_value(t, x->rip, fl, 0, true, in->opnd[0].imm);
			break;
		case K_POP:
			if (!t->m64) {
				emit_pop32(t, x->rip, osz, 0, true);
				emit_put_reg(t, in->opnd[0].reg, HR_R10, osz);
				break;
			}
			emit_pop_r10(t, x->rip, fl, 0, true);
			if (identity(in->opnd[0].reg))
				em_mov_rr(e, in->opnd[0].reg, HR_R10);
			else
				em_store(e, HR_R11, GPR(in->opnd[0].reg), HR_R10);
			break;
		case K_LEAVE:
			if (!t->m64) {
				emit_leave32(t, x->rip, osz);
				break;
			}
			/* rsp = rbp; rbp = pop */
			em_mov_rr(e, HR_R9, HR_RBP);
			emit_tlb(t, x->rip, 8, false, fl, BT_SS);
			em_load(e, HR_R10, HR_R9, 0);
			em_lea(e, true, HR_R8, HR_RBP, HR_NONE, 1, 8);
			em_store(e, HR_R11, GPR(HR_RSP), HR_R8);
			em_mov_rr(e, HR_RBP, HR_R10);
			break;
		case K_JMP:
			emit_exit_direct(t, em_jmp32(e), x->target, 0);
			ended = true;
			break;
		case K_CALL:
			if (!t->m64)
				emit_push32(t, x->rip, osz, 0, true, next);
			else
				emit_push_value(t, x->rip, fl, 0, true, next);
			emit_exit_direct(t, em_jmp32(e), x->target, 0);
			ended = true;
			break;
		case K_JCC:
			emit_exit_direct(t, em_jcc32(e, in->cc), x->target, 0);
			emit_exit_direct(t, em_jmp32(e), next, 1);
			ended = true;
			break;
		case K_RET: {
			int32_t extra = in->nopnd ? (int32_t)(in->opnd[0].imm & 0xFFFF) : 0;
			if (!t->m64)
				emit_pop32(t, x->rip, osz, extra, false);
			else
				emit_pop_r10(t, x->rip, fl, extra, false);
			emit_save_flags(e);
			emit_canonical_or_interp(t, x->rip);
			if (!t->m64)
				emit_set_sp(t, HR_R8);
			else
				em_store(e, HR_R11, GPR(HR_RSP), HR_R8);
			emit_exit_indirect(t);
			ended = true;
			break;
		}
		case K_JMPI:
			if (!(t->m64 ? emit_indirect_target(t, in, x->rip, fl)
				     : emit_indirect_target32(t, in, x->rip))) {
				*bad = i;
				return false;
			}
			emit_save_flags(e);
			emit_canonical_or_interp(t, x->rip);
			emit_exit_indirect(t);
			ended = true;
			break;
		case K_CALLI:
			if (!(t->m64 ? emit_indirect_target(t, in, x->rip, fl)
				     : emit_indirect_target32(t, in, x->rip))) {
				*bad = i;
				return false;
			}
			em_store(e, HR_R11, OFF(jit_target), HR_R10);
			/* a non-canonical target (one past the CS limit) faults
			 * before the push */
			emit_save_flags(e);
			emit_canonical_or_interp(t, x->rip);
			em_push_mem(e, HR_R11, OFF(jit_hflags));
			em_popfq(e);
			if (!t->m64)
				emit_push32(t, x->rip, osz, 0, true, next);
			else
				emit_push_value(t, x->rip, fl, 0, true, next);
			em_load(e, HR_R10, HR_R11, OFF(jit_target));
			emit_save_flags(e);
			emit_exit_indirect(t);
			ended = true;
			break;
		default:
			*bad = i;
			return false;
		}
		/* where the interpreter, run from this instruction's slow
		 * paths, lets the block go on */
		for (unsigned k = slow0; k < t->nslow; k++) {
			t->slow[k].next = ended ? ~0ull : next;
			t->slow[k].after = ended ? NULL : e->p;
		}
	}
	if (!ended) {
		emit_flags_unpark(t);
		emit_exit_direct(t, em_jmp32(e), t->m64 ? end : end & 0xFFFFFFFFull, 0);
	}
	emit_stubs(t);
	emit_segment_exits(t);
	emit_slow_stubs(t);
	*bad = n;
	return !e->full;
}

static struct jblock *new_block(struct bt_jit *j, uint64_t rip, uint64_t gpa,
				uint32_t key, uint64_t cskey, uint64_t lin)
{
	struct jblock *b = &j->blocks[j->nblocks++];

	memset(b, 0, sizeof(*b));
	b->rip = rip;
	b->gpa = gpa;
	b->key = key;
	b->cskey = cskey;
	b->lin = lin;
	b->valid = 1;
	unsigned h = hash_page(gpa);
	b->hnext = j->hash[h];
	j->hash[h] = b;
	h = hash_gpa(gpa);
	b->lnext = j->lhash[h];
	j->lhash[h] = b;
	return b;
}

static struct jblock *translate(struct bt_cpu *c, uint64_t rip, uint64_t gpa,
				const uint8_t *p, uint32_t key, uint64_t cskey,
				uint64_t lin)
{
	struct bt_jit *j = c->jit;
	static _Thread_local struct dinsn d[BLOCK_MAX];
	struct tctx *t;
	struct jblock *b;
	uint64_t t0 = now_ns();
	unsigned n, avail = 4096 - (unsigned)(lin & 0xFFF);

	if (c->mode != BT_MODE64 && c->s.seg[BT_CS].limit - rip + 1 < avail)
		avail = (unsigned)(c->s.seg[BT_CS].limit - rip + 1);
	if (j->nblocks >= j->maxblocks || j->size - j->used < BLOCK_ROOM)
		bt_jit_flush_all(c);
	bool nox = page_nox(j, gpa & ~0xFFFull);
	static _Thread_local uint8_t sbuf[16];
	uint64_t lin2 = 0, gpa2 = 0;
	bool strad = false, g2 = false;
	n = nox ? 0 : decode_block(c, rip, p, avail, d);
	if (!n && !nox && avail == 4096 - (lin & 0xFFF) && avail < 15 &&
	    j->nstrad < STRAD_MAX && bt_decode(p, avail, c->mode, &d[0].in) == BT_DEC_MORE) {
		/* one instruction crossing into the next page: its own block,
		 * made from both pages' bytes (the fetch of the second may
		 * raise #PF: this instruction's own fault). The second page
		 * is watched for writes and remapping (kill_strad). */
		unsigned more = 15 - avail;
		const uint8_t *p2;
		lin2 = (lin + avail) & (c->mode == BT_MODE64 ? ~0ull : 0xFFFFFFFFull);
		if (c->mode != BT_MODE64 && c->s.seg[BT_CS].limit - (rip + avail) + 1 < more)
			more = (unsigned)(c->s.seg[BT_CS].limit - (rip + avail) + 1);
		p2 = bt_fetch_ptr(c, lin2);
		if (p2) {
			gpa2 = bt_fetch_gpa(c, lin2);
			g2 = bt_page_global(c, lin) && bt_page_global(c, lin2);
			memcpy(sbuf, p, avail);
			memcpy(sbuf + avail, p2, more);
			n = decode_block(c, rip, sbuf, avail + more, d) ? 1 : 0;
			strad = n == 1 && !page_nox(j, gpa2 & ~0xFFFull);
			if (!strad)
				n = 0;
		}
	}
	if (n && j->debug_limit && j->st.blocks >= j->debug_limit)
		n = 0;
	if (n && j->debug_trace) {
		fprintf(stderr, "bt-jit: block %llu at 0x%llx (%u):", (unsigned long long)j->st.blocks,
			(unsigned long long)rip, n);
		for (unsigned i = 0; i < n; i++)
			fprintf(stderr, " %s", bt_op_names[d[i].in.op]);
		fprintf(stderr, "\n");
	}
	b = new_block(j, rip, gpa, key, cskey, lin);
	b->nox = nox;
	if (!n)
		return b; /* b->code NULL: interpret */
	mark_code(c, gpa);
	b->len = (uint16_t)(d[n - 1].rip + d[n - 1].in.len - rip);
	if (strad) {
		mark_code(c, gpa2);
		b->len = (uint16_t)avail;
		b->len2 = (uint16_t)(d[0].in.len - avail);
		b->strad = 1;
		b->strad_global = g2;
		b->gpa2 = gpa2;
		b->lin2 = lin2;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return b;
	t->c = c;
	t->j = j;
	t->b = b;
	t->priv = c->cpl == 3;
	t->m64 = c->mode == BT_MODE64;
	t->sw = c->s.seg[BT_SS].db ? 4 : 2;
	t->cslim = c->s.seg[BT_CS].limit;
	t->e = (struct bt_emit){ j->cache + j->used, j->cache + j->size, false };
	unsigned bad;
	bool ok = emit_block(t, d, n, &bad);
	if (!ok && bad > 0 && bad < n) {
		/* end the block before the instruction the emitter refused */
		n = bad;
		memset(b->exit, 0, sizeof(b->exit));
		t->nslow = 0;
		t->e = (struct bt_emit){ j->cache + j->used, j->cache + j->size, false };
		ok = emit_block(t, d, n, &bad);
	}
	if (!ok) {
		/* something the emitter could not encode: interpret */
		b->code = NULL;
		memset(b->exit, 0, sizeof(b->exit));
	} else {
		b->ninsn = (uint16_t)n;
		if (b->strad)
			j->strad[j->nstrad++] = b;
		if (j->debug_trace) {
			char name[64];
			snprintf(name, sizeof(name), "/tmp/bt-jit-%llu.bin",
				 (unsigned long long)j->st.blocks);
			FILE *f = fopen(name, "wb");
			if (f) {
				fwrite(j->cache + j->used, 1,
				       (size_t)(t->e.p - (j->cache + j->used)), f);
				fclose(f);
			}
		}
		if (j->perfmap)
			fprintf(j->perfmap, "%llx %llx bt-%s-%llx\n",
				(unsigned long long)(uintptr_t)(j->cache + j->used),
				(unsigned long long)(t->e.p - (j->cache + j->used)),
				c->cpl == 3 ? "user" : "kernel",
				(unsigned long long)rip);
		j->st.code_bytes += (uint64_t)(t->e.p - (j->cache + j->used));
		j->used = (size_t)(t->e.p - j->cache);
		j->used = (j->used + 15) & ~(size_t)15;
		j->st.blocks++;
		j->st.insns += n;
	}
	free(t);
	j->st.translate_ns += now_ns() - t0;
	return b;
}

static void vc_noted(struct bt_jit *j, const struct vcache *v, uint64_t lin)
{
	pfilter_set(j, lin);
	if (!v->global)
		ng_note(j->vc_ng, &j->n_vc_ng, (unsigned)(v - j->vc));
}

static struct jblock *lookup(struct bt_cpu *c, uint32_t key, uint64_t cskey)
{
	struct bt_jit *j = c->jit;
	uint64_t rip = c->s.rip, gpa, lin = rip;
	struct vcache *v = &j->vc[(rip ^ (rip >> 12)) % VC_SIZE];
	const uint8_t *p;

	if (c->mode != BT_MODE64) {
		/* the interpreter raises #GP for an EIP past the limit */
		if (rip > c->s.seg[BT_CS].limit)
			return NULL;
		lin = (uint32_t)(rip + c->s.seg[BT_CS].base);
	}
	if (v->gen == j->gen && v->rip == rip && v->key == key && v->cskey == cskey &&
	    v->b->valid)
		return v->b;

	p = bt_fetch_ptr(c, lin); /* may raise #PF: the fetch's own fault */
	if (!p)
		return NULL;
	gpa = bt_fetch_gpa(c, lin);
	for (struct jblock **pp = &j->lhash[hash_gpa(gpa)], *b; (b = *pp);) {
		if (!b->valid) {
			*pp = b->lnext;
			continue;
		}
		if (b->gpa == gpa && b->rip == rip && b->key == key && b->cskey == cskey) {
			*v = (struct vcache){ rip, cskey, lin, key, j->gen, b,
					      bt_page_global(c, lin) };
			vc_noted(j, v, lin);
			return b;
		}
		pp = &b->lnext;
	}
	struct jblock *b = translate(c, rip, gpa, p, key, cskey, lin);
	*v = (struct vcache){ rip, cskey, lin, key, j->gen, b, bt_page_global(c, lin) };
	vc_noted(j, v, lin);
	return b;
}

/* Segment bases and limits as generated 16/32-bit code checks them: the
 * same rules as bt_seg_lin, with whatever needs more than a limit compare
 * (unusable or not-present segments in protected mode, the wrong type,
 * expand-down) sent to the interpreter. Segments only change in
 * interpreted instructions, so this runs before each entry. */
static void seg_refresh(struct bt_cpu *c)
{
	for (int i = 0; i < MODVM_NR_SREGS; i++) {
		const struct modvm_segment *s = &c->s.seg[i];
		struct bt_jseg *g = &c->jit_seg[i];
		int64_t r = s->limit, w = s->limit;

		if (c->pm) {
			if (s->unusable || !s->present) {
				r = w = -1;
			} else if (s->s && (s->type & 8)) { /* code */
				w = -1;
				if (!(s->type & 2))
					r = -1;
			} else if (!(s->type & 2)) {        /* read-only data */
				w = -1;
			}
		}
		if (s->s && !(s->type & 8) && (s->type & 4))
			r = w = -1; /* expand-down */
		g->base = (uint32_t)s->base;
		g->rlim = r;
		g->wlim = w;
	}
}

static bool usable(const struct bt_cpu *c)
{
	if (c->mode != BT_MODE64 && c->s.rip > 0xFFFFFFFFull)
		return false;
	/* after STI, MOV SS or POP SS one instruction runs before interrupts
	 * are looked at again: a block would run more */
	if (c->s.ev.interrupt_shadow)
		return false;
	if (c->s.rflags & (BT_TF | BT_RF))
		return false;
	if ((c->s.rflags & BT_AC) && (c->s.cr0 & CR0_AM) && c->cpl == 3)
		return false;
	if ((c->s.dr7 & 0xFF) || c->dbg_data)
		return false;
	return true;
}

/* MODVM_BT_JIT_CHECK: run the block's instructions in the interpreter,
 * undo their RAM writes, run the block translated (one block, unlinked)
 * from the same state and report every difference. A debugging aid: MMIO
 * reads inside a block happen twice. */
static uint64_t check_block(struct bt_cpu *c, struct jblock *b)
{
	static struct bt_journal jr;
	struct bt_jit *j = c->jit;
	struct modvm_cpu_state before = c->s, interp;
	/* AF is undefined after logic ops and shifts, where the host and the
	 * interpreter (Intel's values) differ: not compared */
	uint64_t cmpf = BT_ARITH & ~(uint64_t)BT_AF;
	bool ok;

	memset(&jr, 0, sizeof(jr));
	c->journal = &jr;
	ok = bt_cpu_step_n(c, b->ninsn);
	c->journal = NULL;
	interp = c->s;
	for (unsigned i = 0; i < jr.n; i++)
		memcpy(jr.e[i].new_, jr.e[i].p, jr.e[i].len);
	for (unsigned i = jr.n; i-- > 0;)
		memcpy(jr.e[i].p, jr.e[i].old, jr.e[i].len);
	c->s = before;
	if (!ok || jr.overflow)
		return 0; /* let the interpreter do it for real */
	c->jit_budget = 1 + 1;
	c->jit_hflags = (c->s.rflags & BT_ARITH) | HFLAGS_BASE;
	c->jit_link = 0;
	j->enter(c, b->code);
	c->s.rflags = (c->s.rflags & ~(uint64_t)BT_ARITH) | (c->jit_hflags & BT_ARITH);
	c->jit_link = 0;
	j->checks++;
	if (c->jit_interp) /* left to the interpreter midway: compare nothing */
		return 1;
	bool bad = memcmp(c->s.gpr, interp.gpr, sizeof(interp.gpr)) || c->s.rip != interp.rip ||
		   ((c->s.rflags ^ interp.rflags) & cmpf);
	for (unsigned i = 0; i < jr.n; i++)
		if (memcmp(jr.e[i].p, jr.e[i].new_, jr.e[i].len))
			bad = true;
	if (bad && j->check_fails++ < 50) {
		fprintf(stderr, "bt-jit check: block 0x%llx (%u insns) differs:\n",
			(unsigned long long)b->rip, b->ninsn);
		for (int r = 0; r < 16; r++)
			if (c->s.gpr[r] != interp.gpr[r])
				fprintf(stderr, "  gpr%d: jit %llx interp %llx (before %llx)\n", r,
					(unsigned long long)c->s.gpr[r],
					(unsigned long long)interp.gpr[r],
					(unsigned long long)before.gpr[r]);
		if (c->s.rip != interp.rip)
			fprintf(stderr, "  rip: jit %llx interp %llx\n",
				(unsigned long long)c->s.rip, (unsigned long long)interp.rip);
		if ((c->s.rflags ^ interp.rflags) & cmpf)
			fprintf(stderr, "  flags: jit %llx interp %llx (before %llx)\n",
				(unsigned long long)(c->s.rflags & BT_ARITH),
				(unsigned long long)(interp.rflags & BT_ARITH),
				(unsigned long long)(before.rflags & BT_ARITH));
		for (unsigned i = 0; i < jr.n; i++)
			if (memcmp(jr.e[i].p, jr.e[i].new_, jr.e[i].len)) {
				uint32_t a = 0, b2 = 0, o = 0;
				memcpy(&a, jr.e[i].p, jr.e[i].len > 4 ? 4 : jr.e[i].len);
				memcpy(&b2, jr.e[i].new_, jr.e[i].len > 4 ? 4 : jr.e[i].len);
				memcpy(&o, jr.e[i].old, jr.e[i].len > 4 ? 4 : jr.e[i].len);
				fprintf(stderr, "  memory write %u (%u bytes) differs: jit %x interp %x old %x\n",
					i, jr.e[i].len, a, b2, o);
			}
		if (j->check_fails == 1) {
			FILE *f = fopen("/tmp/bt-jit-check.bin", "wb");
			const uint8_t *code = bt_fetch_ptr(c, b->rip);
			if (f && code) {
				fwrite(code, 1, 4096 - (b->rip & 0xFFF), f);
				fclose(f);
			}
		}
	}
	if (bad) {
		/* continue from the interpreter's result */
		c->s = interp;
		for (unsigned i = 0; i < jr.n; i++)
			memcpy(jr.e[i].p, jr.e[i].new_, jr.e[i].len);
	}
	return 1;
}

static uint64_t jit_exec(struct bt_cpu *c, uint64_t max_blocks);

/* MODVM_BT_JIT_OPS: count the instruction the interpreter is about to run
 * (the fetch is the one the interpreter makes next, faults included) */
static void count_interpreted(struct bt_cpu *c)
{
	uint64_t lin = c->s.rip;
	const uint8_t *p;
	struct bt_insn in;

	if (c->mode != BT_MODE64)
		lin = (uint32_t)(lin + c->s.seg[BT_CS].base);
	p = bt_fetch_ptr(c, lin);
	uint8_t buf[16];
	unsigned first = 4096 - (unsigned)(lin & 0xFFF);

	if (!p)
		return;
	memcpy(buf, p, first < 15 ? first : 15);
	if (first < 15) {
		const uint8_t *p2 = bt_fetch_ptr(c, (lin + first) & (c->mode == BT_MODE64 ? ~0ull : 0xFFFFFFFFull));
		if (!p2)
			return;
		memcpy(buf + first, p2, 15 - first);
	}
	if (bt_decode(buf, 15, c->mode, &in) > 0)
		c->jit->debug_ops[in.op]++;
	c->jit->debug_why[c->jit->why]++;
	if (c->jit->why == 3) {
		/* count by linear page (open addressing, full table: drop) */
		uint64_t pg = lin & ~0xFFFull;
		for (unsigned i = 0, k = (unsigned)(pg >> 12) % 64; i < 64; i++, k = (k + 1) % 64) {
			if (!c->jit->debug_noxpg[k].n)
				c->jit->debug_noxpg[k].lin = pg;
			if (c->jit->debug_noxpg[k].lin == pg) {
				c->jit->debug_noxpg[k].n++;
				break;
			}
		}
	}
}

static const char *const why_names[5] = {
	"left by a block (slow path)", "state (TF, DR7, shadow, ...)", "fetch fault",
	"page written too often", "not translatable",
};

uint64_t bt_jit_exec(struct bt_cpu *c, uint64_t max_blocks)
{
	uint64_t n = jit_exec(c, max_blocks);

	if (!n && c->jit->debug_ops)
		count_interpreted(c);
	return n;
}

static uint64_t jit_exec(struct bt_cpu *c, uint64_t max_blocks)
{
	struct bt_jit *j = c->jit;
	struct jblock *b;
	uint64_t ran, cskey;
	uint32_t key;

	j->why = 0;
	if (c->jit_interp) {
		c->jit_interp = 0;
		return 0;
	}
	if (atomic_load_explicit(&j->pend_flag, memory_order_relaxed))
		take_pending(c);
	j->why = 1;
	if (!usable(c))
		return 0;
	/* a non-canonical RIP (AMD's SYSRET leaves one): the interpreter's
	 * fetch raises the #GP */
	if (c->mode == BT_MODE64 && !canonical(c->s.rip))
		return 0;
	j->why = 2;
	c->insn_rip = c->s.rip;
	key = mode_key(c);
	cskey = cs_key(c);
	b = lookup(c, key, cskey);
	if (b && b->nox && !page_nox(j, b->gpa & ~0xFFFull)) {
		/* its page's time in the interpreter is over: translate */
		b->valid = 0;
		b = lookup(c, key, cskey);
	}
	if (!b || !b->code) {
		j->why = b && b->nox ? 3 : 4;
		return 0;
	}
	if (c->mode != BT_MODE64)
		seg_refresh(c);
	if (j->debug_check)
		return check_block(c, b);
	maybe_link(c, b);
	{
		int p = c->cpl == 3;
		unsigned k = jc_index(b->rip);
		struct bt_jc *jce = &c->jit_jc[p][k];
		if (j->jc_key[p] != key || j->jc_cskey[p] != cskey) {
			/* the half holds another mode's (or CS base's) code */
			memset(c->jit_jc[p], 0xFF, sizeof(c->jit_jc[p]));
			j->n_jc_ng[p] = j->n_jc_all[p] = 0;
			j->jc_key[p] = key;
			j->jc_cskey[p] = cskey;
			j->st.jc_switches++;
		}
		if (jce->rip == ~0ull)
			ng_note(j->jc_all[p], &j->n_jc_all[p], k);
		jce->rip = b->rip;
		jce->code = b->code;
		j->jc_global[p][k] = bt_page_global(c, b->lin);
		pfilter_set(j, b->lin);
		if (!j->jc_global[p][k])
			ng_note(j->jc_ng[p], &j->n_jc_ng[p], k);
	}
	if (!max_blocks)
		max_blocks = 1;
	c->jit_budget = max_blocks;
	c->jit_hflags = (c->s.rflags & BT_ARITH) | HFLAGS_BASE;
	c->jit_link = 0;
	c->jit_dead = 0; /* set by any invalidation from here on */
	j->st.enters++;
	j->enter(c, b->code);
	c->s.rflags = (c->s.rflags & ~(uint64_t)BT_ARITH) | (c->jit_hflags & BT_ARITH);
	c->s.ev.interrupt_shadow = 0;
	ran = max_blocks > c->jit_budget ? max_blocks - c->jit_budget : 1;
	return ran;
}

/* ---- set-up -------------------------------------------------------------- */

static void emit_trampolines(struct bt_jit *j)
{
	struct bt_emit e = { j->cache, j->cache + j->size, false };
	static const int saved[] = { HR_RBX, HR_RBP, HR_R12, HR_R13, HR_R14, HR_R15 };

	/* enter(c = rdi, code = rsi) */
	j->enter = (enter_fn)(void *)e.p;
	for (int i = 0; i < 6; i++)
		em_push(&e, saved[i]);
	em_push(&e, HR_RDI);                 /* [rsp] = c, rsp 16-aligned */
	em_mov_rr(&e, HR_R11, HR_RDI);
	em_store(&e, HR_R11, OFF(jit_target), HR_RSI);
	em_push_mem(&e, HR_R11, OFF(jit_hflags));
	em_popfq(&e);
	emit_load_gprs(&e, true);
	/* jmp [r11 + jit_target] */
	em_rex(&e, false, 0, 0, HR_R11, false);
	em8(&e, 0xFF);
	em_mem(&e, 4, HR_R11, HR_NONE, 1, OFF(jit_target));

	e.p = (uint8_t *)(((uintptr_t)e.p + 15) & ~(uintptr_t)15);
	j->exit_flags = e.p;
	emit_save_flags(&e);
	j->exit_regs = e.p;
	emit_store_gprs(&e);
	j->exit_done = e.p;
	em_pop(&e, HR_R10);
	for (int i = 5; i >= 0; i--)
		em_pop(&e, saved[i]);
	em8(&e, 0xC3);
	e.p = (uint8_t *)(((uintptr_t)e.p + 15) & ~(uintptr_t)15);
	emit_interp_routines(j, &e);
	j->base_used = (size_t)(((uintptr_t)e.p + 63 - (uintptr_t)j->cache) & ~(uintptr_t)63);
	j->used = j->base_used;
}

static bool host_has_lahf64(void)
{
	unsigned a, b, c, d;

	__asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x80000001u), "c"(0));
	return c & 1;
}

int bt_jit_create(struct bt_cpu *c, size_t cache_bytes, char *why, size_t len)
{
	struct bt_jit *j;

	if (!host_has_lahf64()) {
		snprintf(why, len, "the host CPU lacks LAHF/SAHF in 64-bit mode, which "
			 "the translator's flag handling needs");
		return -1;
	}
	if (cache_bytes < 4 * BLOCK_ROOM)
		cache_bytes = 4 * BLOCK_ROOM;
	j = calloc(1, sizeof(*j));
	if (!j) {
		snprintf(why, len, "out of memory for the translator");
		return -1;
	}
	j->size = cache_bytes;
	j->cache = mmap(NULL, cache_bytes, PROT_READ | PROT_WRITE | PROT_EXEC,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (j->cache == MAP_FAILED) {
		snprintf(why, len, "cannot map a %zu MiB translation cache: %s",
			 cache_bytes >> 20, strerror(errno));
		free(j);
		return -1;
	}
	/* A Linux boot fills ~55 MiB of it: 2 MiB pages where the host has
	 * them (transparent huge pages on madvise) save most of the
	 * instruction-TLB misses. Advisory: without them it works the same. */
	(void)madvise(j->cache, cache_bytes, MADV_HUGEPAGE);
	j->maxblocks = (unsigned)(cache_bytes / 256); /* blocks average ~650 bytes */
	j->blocks = calloc(j->maxblocks, sizeof(*j->blocks));
	if (!j->blocks) {
		munmap(j->cache, cache_bytes);
		free(j);
		snprintf(why, len, "out of memory for the translator's block table");
		return -1;
	}
	pthread_mutex_init(&j->pend_lock, NULL);
	emit_trampolines(j);
	j->gen = 1;
	j->jc_key[0] = j->jc_key[1] = ~0u; /* no mode yet */
	if (getenv("MODVM_BT_JIT_LIMIT"))
		j->debug_limit = strtoull(getenv("MODVM_BT_JIT_LIMIT"), NULL, 0);
	j->debug_trace = getenv("MODVM_BT_JIT_TRACE") != NULL;
	j->debug_check = getenv("MODVM_BT_JIT_CHECK") != NULL;
	if (getenv("MODVM_BT_JIT_PERFMAP")) {
		/* perf(1) reads JIT symbols from /tmp/perf-PID.map; several
		 * vCPUs append to the one file */
		char name[64];
		snprintf(name, sizeof(name), "/tmp/perf-%d.map", (int)getpid());
		j->perfmap = fopen(name, "a");
		if (j->perfmap)
			setvbuf(j->perfmap, NULL, _IOLBF, 0);
	}
	if (getenv("MODVM_BT_JIT_OPS"))
	{
		j->debug_ops = calloc(BT_OP_COUNT, sizeof(uint64_t));
		j->debug_inplace = calloc(BT_OP_COUNT, sizeof(uint64_t));
	}
	if (j->debug_trace) {
		FILE *f = fopen("/tmp/bt-jit-tramp.bin", "wb");
		if (f) {
			fwrite(j->cache, 1, j->base_used, f);
			fclose(f);
		}
	}
	c->jit = j;
	bt_jit_flush_all(c);
	j->st.flushes = 0;
	return 0;
}

/* MODVM_BT_JIT_OPS: the `most` largest counts of n, largest first (the
 * counts are consumed) */
static void print_ops(const char *what, uint64_t *n, int most)
{
	fprintf(stderr, "bt-jit: %s:", what);
	for (int k = 0; k < most && n; k++) {
		unsigned best = 0;
		for (unsigned o = 1; o < BT_OP_COUNT; o++)
			if (n[o] > n[best])
				best = o;
		if (!n[best])
			break;
		fprintf(stderr, " %s %llu", bt_op_names[best], (unsigned long long)n[best]);
		n[best] = 0;
	}
	fprintf(stderr, "\n");
}

void bt_jit_destroy(struct bt_cpu *c)
{
	struct bt_jit *j = c->jit;

	if (!j)
		return;
	if (j->perfmap)
		fclose(j->perfmap);
	if (getenv("MODVM_BT_JIT_STATS"))
		fprintf(stderr, "bt-jit: %llu blocks, %llu insns, %llu KiB code, %.3f s translating, "
			"%llu flushes, %llu invalidations (%llu writes to code pages kept them), %llu enters, %llu links, %llu jump-cache misses, %llu interp pages, "
			"%llu in place (%llu ending their block)\n",
			(unsigned long long)j->st.blocks, (unsigned long long)j->st.insns,
			(unsigned long long)(j->st.code_bytes >> 10), j->st.translate_ns / 1e9,
			(unsigned long long)j->st.flushes, (unsigned long long)j->st.invalidations,
			(unsigned long long)j->st.code_writes_kept,
			(unsigned long long)j->st.enters, (unsigned long long)j->st.links,
			(unsigned long long)j->st.jc_misses,
			(unsigned long long)j->st.interp_pages,
			(unsigned long long)j->st.in_place, (unsigned long long)j->st.in_place_exits);
	if (j->debug_ops) {
		print_ops("interpreted instructions by operation", j->debug_ops, 60);
		print_ops("interpreted in place by operation", j->debug_inplace, 40);
		fprintf(stderr, "bt-jit: pages interpreted:");
		for (unsigned k = 0; k < j->nnox; k++)
			fprintf(stderr, " 0x%llx", (unsigned long long)j->nox_pages[k]);
		fprintf(stderr, "\nbt-jit: why:");
		for (int k = 0; k < 5; k++)
			fprintf(stderr, " %s %llu;", why_names[k], (unsigned long long)j->debug_why[k]);
		fprintf(stderr, "\nbt-jit: interpreted on pages written too often, by linear page:");
		for (unsigned k = 0; k < 64; k++)
			if (j->debug_noxpg[k].n)
				fprintf(stderr, " 0x%llx %llu", (unsigned long long)j->debug_noxpg[k].lin,
					(unsigned long long)j->debug_noxpg[k].n);
		fprintf(stderr, "\n");
		free(j->debug_ops);
		free(j->debug_inplace);
	}
	c->jit = NULL;
	munmap(j->cache, j->size);
	for (unsigned i = 0; i < NCHUNKS; i++)
		free(atomic_load(&j->chunk[i]));
	pthread_mutex_destroy(&j->pend_lock);
	free(j->blocks);
	free(j);
}

void bt_jit_get_stats(struct bt_cpu *c, struct bt_jit_stats *st)
{
	struct bt_jit *j = c->jit;

	memset(st, 0, sizeof(*st));
	if (!j)
		return;
	*st = j->st;
	st->cache_size = j->size;
	st->cache_used = j->used;
}
