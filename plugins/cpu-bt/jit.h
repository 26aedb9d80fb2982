/* cpu-bt: the translator's interface to the interpreter and the engine.
 * Guest code blocks (64-bit mode) become host code in a translation cache;
 * the interpreter runs everything the translator leaves out and stays the
 * reference semantics. See docs/engines-bt.md "Translator".
 */
#ifndef BT_JIT_H
#define BT_JIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cpu.h"

struct bt_jit_stats {
	uint64_t blocks;          /* blocks translated */
	uint64_t insns;           /* guest instructions in them */
	uint64_t code_bytes;      /* host code emitted */
	uint64_t translate_ns;    /* time spent translating */
	uint64_t flushes;         /* whole-cache flushes (cache full, state load) */
	uint64_t invalidations;   /* writes that removed translations */
	uint64_t jc_misses;       /* indirect exits that missed the jump cache */
	uint64_t code_writes_kept; /* writes to code pages that removed none */
	uint64_t enters;          /* dispatcher entries into translated code */
	uint64_t links;           /* exits patched into direct jumps */
	uint64_t interp_pages;    /* times a page was left to the interpreter for a while
				     (written too often) */
	uint64_t jc_switches;     /* jump-cache halves cleared for another mode or CS */
	uint64_t in_place;        /* instructions interpreted from inside a block */
	uint64_t in_place_exits;  /* ... after which the block could not go on */
	size_t cache_size, cache_used;
};

/* Set up the translator for c with a cache of `cache_bytes`; returns -1
 * with a reason when the host cannot run it (no BMI... or mmap failed). */
int bt_jit_create(struct bt_cpu *c, size_t cache_bytes, char *why, size_t len);
void bt_jit_destroy(struct bt_cpu *c);

/* Run translated code at c->s.rip for at most max_blocks blocks. Returns
 * the number of blocks entered, 0 when the next instruction is to be
 * interpreted (not translatable, or the translator asked for it). */
uint64_t bt_jit_exec(struct bt_cpu *c, uint64_t max_blocks);

/* Called by the interpreter's TLB flushes and by state loads. */
void bt_jit_tlb_flush(struct bt_cpu *c, bool global_too);
void bt_jit_tlb_flush_page(struct bt_cpu *c, uint64_t lin);
void bt_jit_flush_all(struct bt_cpu *c);

/* Code pages: does the physical page hold translations, and remove them
 * (a write reached it). */
bool bt_jit_is_code(struct bt_cpu *c, uint64_t gpa);
void bt_jit_invalidate(struct bt_cpu *c, uint64_t gpa);
/* The vCPU writes len bytes at gpa (within one page) of a page holding
 * translations: the blocks made from those bytes are dropped, the others
 * stay (a kernel patching its alternatives next to code that runs, data
 * next to code). The page stops being watched when no block is left. */
void bt_jit_code_write(struct bt_cpu *c, uint64_t gpa, unsigned len);

/* Another thread (device DMA) wrote guest RAM: translations of the pages
 * are dropped before the vCPU runs translated code again. */
void bt_jit_mem_written(struct bt_cpu *c, uint64_t gpa, uint64_t len);
/* Make translated code return to the dispatcher soon (kick, interrupt). */
void bt_jit_request_exit(struct bt_cpu *c);

void bt_jit_get_stats(struct bt_cpu *c, struct bt_jit_stats *st);

#endif
