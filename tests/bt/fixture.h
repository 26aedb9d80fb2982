/* cpu-bt test fixture: a tiny machine (flat RAM, a port log, a manual
 * clock, one interrupt line) around the interpreter core, without the
 * modvm core. Test code is written in assembly and assembled with nasm at
 * run time (nasm is already a build dependency of the test guests).
 */
#ifndef BT_FIXTURE_H
#define BT_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>

#include "cpu.h"

#define FX_RAM (4u << 20)      /* 4 MiB of RAM at 0 */
#define FX_CODE 0x10000        /* where fx_asm puts code */
#define FX_STACK 0x80000       /* initial stack top */
#define FX_IDT 0x1000          /* fx_idt: table here */
#define FX_STUBS 0x3000        /* fx_idt: vector v's stub at +16*v: HLT */
#define FX_GDT 0x800
#define FX_PT 0x100000         /* fx_paging: tables from here */
#define FX_MMIO 0xE0000000ull  /* fx MMIO window: a 4 KiB scratch device */

enum fx_mode { FX_REAL, FX_PROT16, FX_PROT32, FX_LONG64 };

struct fx {
	struct bt_cpu cpu;
	struct bt_bus bus;
	uint8_t *ram;
	uint64_t clock;
	/* ports: reads return port_in[port & 0xFF]; writes are logged */
	uint32_t port_in[256];
	unsigned nout;
	struct { uint16_t port; uint32_t val; unsigned size; } out[64];
	/* MMIO scratch register file */
	uint8_t mmio[4096];
	unsigned mmio_reads, mmio_writes;
	unsigned mmio_max_size;      /* largest single MMIO access seen */
	/* the chipset's A20 gate the CPU follows (1: enabled); an OUT to
	 * port 0x92 sets it from bit 1, as sysctl-92 does */
	volatile int a20;
	/* legacy interrupt line */
	bool intr;
	int intr_vec;
	unsigned intr_acks;
};

/* A new machine. With BT_MODE=translate in the environment its CPU also
 * gets the translator (FX_JIT_CACHE bytes of cache); otherwise it only
 * interprets. fx_free destroys the translator. */
#define FX_JIT_CACHE (16u << 20)
struct fx *fx_new(enum fx_mode mode);
void fx_free(struct fx *f);
bool fx_translate_wanted(void);
/* Add f's translator statistics to the totals fx_jit_report prints (done
 * by fx_free; callers that destroy the translator early call it first). */
void fx_note_jit(struct fx *f);
/* Under BT_MODE=translate: print the totals over the fixtures freed so
 * far, prefixed with who, and return the blocks translated; 0 otherwise. */
uint64_t fx_jit_report(const char *who);
/* Assemble `src` (nasm syntax, BITS set from the mode, ORG at addr) and
 * copy it to guest address addr; returns its length. Aborts on errors. */
unsigned fx_asm_at(struct fx *f, uint64_t addr, const char *src);
/* Assemble at FX_CODE and point rIP there. */
unsigned fx_asm(struct fx *f, const char *src);
/* Run up to n instructions (stops early at HLT or shutdown). */
enum bt_exit fx_run(struct fx *f, uint64_t n);
/* Run until HLT; returns the exit (BT_EXIT_BUDGET if it never halted). */
enum bt_exit fx_run_hlt(struct fx *f);
/* Install an IDT whose vector v jumps to a HLT at FX_STUBS + 16*v; the
 * vector taken is then fx_vector(). Long mode uses 16-byte gates. */
void fx_idt(struct fx *f);
int fx_vector(struct fx *f);
/* Identity-map the first 1 GiB (or `pages` large pages) with the mode's
 * paging structures; returns CR3. */
uint64_t fx_paging_4level(struct fx *f);
uint64_t fx_mem64(struct fx *f, uint64_t gpa);
void fx_set64(struct fx *f, uint64_t gpa, uint64_t v);
uint32_t fx_mem32(struct fx *f, uint64_t gpa);
void fx_set32(struct fx *f, uint64_t gpa, uint32_t v);
uint64_t fx_reg(struct fx *f, int r);

extern const struct modvm_cpu_model fx_model;
/* fx_model + XSAVE (x87, SSE) and XSAVEOPT, as baseline-v1-xsave */
extern const struct modvm_cpu_model fx_model_xsave;
/* fx_model_xsave with the vendor "GenuineIntel" (the others: AMD) */
extern const struct modvm_cpu_model fx_model_xsave_intel;
/* a GenuineIntel model with PKS (leaf 7 ECX[31]): IA32_PKRS, CR4.PKS */
extern const struct modvm_cpu_model fx_model_pks;

#endif
