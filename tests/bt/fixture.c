/* cpu-bt test fixture: see fixture.h. */
#include "fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jit.h"

#ifndef BT_NASM
#define BT_NASM "nasm"
#endif

/* baseline-v1 plus CMPXCHG16B and LAHF in 64-bit mode, so the tests
 * reach those paths; vendor "AuthenticAMD". */
static const struct modvm_cpuid_leaf fx_leaves[] = {
	{ 0x0, 0, 0, 0x1, 0x68747541, 0x444d4163, 0x69746e65 },
	{ 0x1, 0, 0, 0x00000f10, 0x00010800, 0x80002000, 0x0789bb7d },
	{ 0x80000000, 0, 0, 0x80000008, 0x68747541, 0x444d4163, 0x69746e65 },
	{ 0x80000001, 0, 0, 0x00000f10, 0, 1, (1u << 11) | (1u << 20) | (1u << 29) },
	{ 0x80000008, 0, 0, 0x00003028, 0, 0, 0 },
};

const struct modvm_cpu_model fx_model = {
	.name = "fx", .description = "test model", .leaves = fx_leaves,
	.nleaves = sizeof(fx_leaves) / sizeof(fx_leaves[0]), .migratable = 1,
};

/* fx_model + XSAVE: baseline-v1-xsave's leaves 0, 1 and 0xD */
static const struct modvm_cpuid_leaf fx_xsave_leaves[] = {
	{ 0x0, 0, 0, 0xD, 0x68747541, 0x444d4163, 0x69746e65 },
	{ 0x1, 0, 0, 0x00000f10, 0x00010800, 0x84002000, 0x0789bb7d },
	{ 0xD, 0, MODVM_CPUID_SIGNIFICANT_INDEX, 0x3, 576, 576, 0 },
	{ 0xD, 1, MODVM_CPUID_SIGNIFICANT_INDEX, 0x1, 0, 0, 0 },
	{ 0x80000000, 0, 0, 0x80000008, 0x68747541, 0x444d4163, 0x69746e65 },
	{ 0x80000001, 0, 0, 0x00000f10, 0, 1, (1u << 11) | (1u << 20) | (1u << 29) },
	{ 0x80000008, 0, 0, 0x00003028, 0, 0, 0 },
};

const struct modvm_cpu_model fx_model_xsave = {
	.name = "fx-xsave", .description = "test model with XSAVE",
	.leaves = fx_xsave_leaves,
	.nleaves = sizeof(fx_xsave_leaves) / sizeof(fx_xsave_leaves[0]),
	.migratable = 1,
};

/* fx_model_xsave as an Intel CPU: leaf 0 says "GenuineIntel" (EBX, EDX,
 * ECX), which leaves 0x80000000's vendor registers at 0 */
static const struct modvm_cpuid_leaf fx_xsave_intel_leaves[] = {
	{ 0x0, 0, 0, 0xD, 0x756e6547, 0x6c65746e, 0x49656e69 },
	{ 0x1, 0, 0, 0x00000f10, 0x00010800, 0x84002000, 0x0789bb7d },
	{ 0xD, 0, MODVM_CPUID_SIGNIFICANT_INDEX, 0x3, 576, 576, 0 },
	{ 0xD, 1, MODVM_CPUID_SIGNIFICANT_INDEX, 0x1, 0, 0, 0 },
	{ 0x80000000, 0, 0, 0x80000008, 0, 0, 0 },
	{ 0x80000001, 0, 0, 0, 0, 1, (1u << 11) | (1u << 20) | (1u << 29) },
	{ 0x80000008, 0, 0, 0x00003028, 0, 0, 0 },
};

const struct modvm_cpu_model fx_model_xsave_intel = {
	.name = "fx-xsave-intel", .description = "test model with XSAVE, Intel",
	.leaves = fx_xsave_intel_leaves,
	.nleaves = sizeof(fx_xsave_intel_leaves) / sizeof(fx_xsave_intel_leaves[0]),
	.migratable = 1,
};

/* GenuineIntel with PKS (leaf 7 ECX[31]) */
static const struct modvm_cpuid_leaf pks_leaves[] = {
	{ 0x0, 0, 0, 0x7, 0x756e6547, 0x6c65746e, 0x49656e69 },
	{ 0x1, 0, 0, 0xf61, 0x800, 0, 0x0789bb7d },
	{ 0x7, 0, MODVM_CPUID_SIGNIFICANT_INDEX, 0, 0, 1u << 31, 0 },
	{ 0x80000000, 0, 0, 0x80000001, 0, 0, 0 },
	{ 0x80000001, 0, 0, 0, 0, 0, (1u << 11) | (1u << 20) | (1u << 29) },
};
const struct modvm_cpu_model fx_model_pks = {
	.name = "pks", .leaves = pks_leaves, .nleaves = MODVM_COUNTOF(pks_leaves),
};

static void *fx_ram_ptr(void *o, uint64_t gpa, uint64_t len)
{
	struct fx *f = o;

	if (gpa >= FX_RAM || len > FX_RAM - gpa)
		return NULL;
	return f->ram + gpa;
}

static void fx_mmio_read(void *o, uint64_t gpa, void *data, unsigned size)
{
	struct fx *f = o;

	f->mmio_reads++;
	if (size > f->mmio_max_size)
		f->mmio_max_size = size;
	if (gpa >= FX_MMIO && gpa - FX_MMIO + size <= sizeof(f->mmio))
		memcpy(data, f->mmio + (gpa - FX_MMIO), size);
	else
		memset(data, 0xFF, size);
}

static void fx_mmio_write(void *o, uint64_t gpa, const void *data,
			  unsigned size)
{
	struct fx *f = o;

	f->mmio_writes++;
	if (size > f->mmio_max_size)
		f->mmio_max_size = size;
	if (gpa >= FX_MMIO && gpa - FX_MMIO + size <= sizeof(f->mmio))
		memcpy(f->mmio + (gpa - FX_MMIO), data, size);
}

static uint64_t fx_pio_read(void *o, uint16_t port, unsigned size)
{
	struct fx *f = o;

	return f->port_in[port & 0xFF] & (uint32_t)bt_mask(size);
}

static void fx_pio_write(void *o, uint16_t port, uint64_t val, unsigned size)
{
	struct fx *f = o;

	if (port == 0x92)
		f->a20 = (val >> 1) & 1;
	if (f->nout < 64) {
		f->out[f->nout].port = port;
		f->out[f->nout].val = (uint32_t)val;
		f->out[f->nout].size = size;
		f->nout++;
	}
}

static uint64_t fx_clock(void *o)
{
	return ((struct fx *)o)->clock;
}

static bool fx_intr_pending(void *o)
{
	return ((struct fx *)o)->intr;
}

static int fx_intr_ack(void *o)
{
	struct fx *f = o;

	f->intr_acks++;
	f->intr = false;
	return f->intr_vec;
}

static uint64_t desc(uint32_t base, uint32_t limit, uint8_t access,
		     uint8_t flags)
{
	return (limit & 0xFFFFull) | (uint64_t)(base & 0xFFFFFF) << 16 |
	       (uint64_t)access << 40 | (uint64_t)(limit >> 16 & 0xF) << 48 |
	       (uint64_t)(flags & 0xF) << 52 | (uint64_t)(base >> 24) << 56;
}

#define TSS_ADDR 0x2000

static void write_gdt(struct fx *f)
{
	uint64_t *g = (uint64_t *)(f->ram + FX_GDT);

	g[1] = desc(0, 0xFFFFF, 0x9B, 0xC);  /* 0x08 code32 */
	g[2] = desc(0, 0xFFFFF, 0x93, 0xC);  /* 0x10 data */
	g[3] = desc(0, 0xFFFFF, 0xFB, 0xC);  /* 0x1B code32 ring 3 */
	g[4] = desc(0, 0xFFFFF, 0xF3, 0xC);  /* 0x23 data ring 3 */
	g[5] = desc(0, 0xFFFFF, 0x9B, 0xA);  /* 0x28 code64 */
	g[6] = desc(0, 0xFFFFF, 0xFB, 0xA);  /* 0x33 code64 ring 3 */
	g[7] = desc(0, 0xFFFF, 0x9B, 0x0);   /* 0x38 code16 */
	g[8] = desc(TSS_ADDR, 0x67 + 0x2000 / 8 + 1, 0x89, 0); /* 0x40 TSS */
	g[9] = 0;                            /* TSS upper half (64-bit) */
	g[10] = desc(0, 0xFFFF, 0x93, 0x0);  /* 0x50 data16 */
	f->cpu.s.gdt.base = FX_GDT;
	f->cpu.s.gdt.limit = 11 * 8 - 1;
}

static void load_hidden(struct fx *f, int seg, uint16_t sel)
{
	uint64_t d = fx_mem64(f, FX_GDT + (sel & ~7u));

	bt_desc_to_seg(&f->cpu.s.seg[seg], sel, d, 0);
	f->cpu.s.seg[seg].type |= 1;
}

static void set_tr(struct fx *f)
{
	uint64_t d = fx_mem64(f, FX_GDT + 0x40);

	bt_desc_to_seg(&f->cpu.s.tr, 0x40, d, 0);
	f->cpu.s.tr.type = 0xB;
	/* I/O map base just past the TSS; the bitmap is all zeros (allowed) */
	f->ram[TSS_ADDR + 0x66] = 0x68;
	f->ram[TSS_ADDR + 0x67] = 0;
	memset(f->ram + TSS_ADDR + 0x68, 0, 0x2000 / 8 + 1);
	f->ram[TSS_ADDR + 0x68 + 0x2000 / 8] = 0xFF;
}

uint64_t fx_paging_4level(struct fx *f)
{
	uint64_t pml4 = FX_PT, pdpt = FX_PT + 0x1000, pd = FX_PT + 0x2000;

	memset(f->ram + FX_PT, 0, 0x3000);
	fx_set64(f, pml4, pdpt | 7);
	fx_set64(f, pdpt, pd | 7);
	for (int i = 0; i < 512; i++)
		fx_set64(f, pd + 8 * i, ((uint64_t)i << 21) | 0x87);
	/* FX_MMIO (3.5 GiB) through a second PDPT entry */
	fx_set64(f, pdpt + 8 * 3, (FX_PT + 0x3000) | 7);
	memset(f->ram + FX_PT + 0x3000, 0, 0x1000);
	fx_set64(f, FX_PT + 0x3000 + 8 * 256, FX_MMIO | 0x87);
	return pml4;
}

bool fx_translate_wanted(void)
{
	const char *m = getenv("BT_MODE");

	return m && !strcmp(m, "translate");
}

/* Totals over every fixture freed, for fx_jit_report. */
static struct bt_jit_stats fx_jit_total;

void fx_note_jit(struct fx *f)
{
	struct bt_jit_stats st;

	if (!f->cpu.jit)
		return;
	bt_jit_get_stats(&f->cpu, &st);
	fx_jit_total.blocks += st.blocks;
	fx_jit_total.insns += st.insns;
	fx_jit_total.enters += st.enters;
	fx_jit_total.flushes += st.flushes;
	fx_jit_total.invalidations += st.invalidations;
	fx_jit_total.links += st.links;
}

uint64_t fx_jit_report(const char *who)
{
	const struct bt_jit_stats *t = &fx_jit_total;

	if (!fx_translate_wanted())
		return 0;
	printf("%s: translator: %llu blocks (%llu instructions), %llu entries, "
	       "%llu links, %llu invalidations, %llu flushes\n", who,
	       (unsigned long long)t->blocks, (unsigned long long)t->insns,
	       (unsigned long long)t->enters, (unsigned long long)t->links,
	       (unsigned long long)t->invalidations, (unsigned long long)t->flushes);
	return t->blocks;
}

struct fx *fx_new(enum fx_mode mode)
{
	struct fx *f = aligned_alloc(64, (sizeof(*f) + 63) & ~(size_t)63);
	struct modvm_cpu_state *s;

	memset(f, 0, sizeof(*f));
	f->ram = calloc(1, FX_RAM);
	f->bus = (struct bt_bus){
		.opaque = f, .ram_ptr = fx_ram_ptr, .mmio_read = fx_mmio_read,
		.mmio_write = fx_mmio_write, .pio_read = fx_pio_read,
		.pio_write = fx_pio_write, .clock_ns = fx_clock,
		.intr_pending = fx_intr_pending, .intr_ack = fx_intr_ack,
	};
	bt_cpu_init(&f->cpu, &f->bus, &fx_model, 0);
	if (fx_translate_wanted()) {
		char why[256];

		if (bt_jit_create(&f->cpu, FX_JIT_CACHE, why, sizeof(why))) {
			fprintf(stderr, "fixture: BT_MODE=translate: %s\n", why);
			abort();
		}
	}
	f->a20 = 1;
	f->cpu.a20_line = &f->a20;
	s = &f->cpu.s;
	s->xsave[0] = 0x7F; /* FCW */
	s->xsave[1] = 0x03;
	s->xsave[24] = 0x80; /* MXCSR 0x1F80 */
	s->xsave[25] = 0x1F;
	s->cr4 = CR4_OSFXSR | CR4_OSXMMEXCPT;
	write_gdt(f);
	s->idt.limit = 0x3FF;
	switch (mode) {
	case FX_REAL:
		for (int i = 0; i < MODVM_NR_SREGS; i++) {
			s->seg[i].limit = 0xFFFF;
			s->seg[i].type = 3;
			bt_seg_real(&s->seg[i], 0);
		}
		s->seg[BT_CS].type = 0xB;
		bt_seg_real(&s->seg[BT_CS], FX_CODE >> 4);
		bt_seg_real(&s->seg[BT_SS], 0x7000);
		s->gpr[MODVM_RSP] = 0xFFF0;
		break;
	case FX_PROT16:
	case FX_PROT32:
		s->cr0 = CR0_PE | CR0_ET;
		for (int i = 0; i < MODVM_NR_SREGS; i++)
			load_hidden(f, i, 0x10);
		load_hidden(f, BT_CS, mode == FX_PROT16 ? 0x38 : 0x08);
		set_tr(f);
		/* ESP0/SS0 for ring changes */
		fx_set32(f, TSS_ADDR + 4, FX_STACK - 0x10000);
		fx_set32(f, TSS_ADDR + 8, 0x10);
		s->gpr[MODVM_RSP] = FX_STACK;
		break;
	case FX_LONG64:
		s->cr0 = CR0_PE | CR0_ET | CR0_PG;
		s->cr4 |= CR4_PAE;
		s->cr3 = fx_paging_4level(f);
		s->msr.efer = EFER_LME | EFER_LMA | EFER_SCE | EFER_NXE;
		for (int i = 0; i < MODVM_NR_SREGS; i++)
			load_hidden(f, i, 0x10);
		load_hidden(f, BT_CS, 0x28);
		set_tr(f);
		s->gpr[MODVM_RSP] = FX_STACK;
		/* RSP0 for ring changes */
		fx_set64(f, TSS_ADDR + 4, FX_STACK - 0x10000);
		break;
	}
	bt_cpu_set_state(&f->cpu, s);
	bt_cpu_update_mode(&f->cpu);
	return f;
}

void fx_free(struct fx *f)
{
	fx_note_jit(f);
	bt_jit_destroy(&f->cpu);
	free(f->ram);
	free(f);
}

unsigned fx_asm_at(struct fx *f, uint64_t addr, const char *src)
{
	char in[] = "/tmp/bt-fx-XXXXXX";
	char out[64], cmd[256];
	int fd = mkstemp(in);
	FILE *fp;
	long n;
	int bits = f->cpu.mode == BT_MODE64 ? 64 : f->cpu.mode == BT_MODE32 ? 32 : 16;
	uint64_t org = f->cpu.pm || f->cpu.lma ? addr
					       : addr - f->cpu.s.seg[BT_CS].base;
	fp = fdopen(fd, "w");
	fprintf(fp, "bits %d\norg 0x%llx\n%s\n", bits, (unsigned long long)org, src);
	fclose(fp);
	snprintf(out, sizeof(out), "%s.bin", in);
	snprintf(cmd, sizeof(cmd), "%s -f bin -o %s %s", BT_NASM, out, in);
	if (system(cmd) != 0) {
		fprintf(stderr, "nasm failed on:\n%s\n", src);
		abort();
	}
	fp = fopen(out, "rb");
	n = (long)fread(f->ram + addr, 1, FX_RAM - addr, fp);
	fclose(fp);
	unlink(in);
	unlink(out);
	bt_tlb_flush(&f->cpu, true);
	/* new code over old: drop its translations, as DMA would */
	if (n > 0)
		bt_jit_mem_written(&f->cpu, addr, (uint64_t)n);
	return (unsigned)n;
}

unsigned fx_asm(struct fx *f, const char *src)
{
	unsigned n = fx_asm_at(f, FX_CODE, src);

	f->cpu.s.rip = f->cpu.pm || f->cpu.lma ? FX_CODE : 0;
	return n;
}

enum bt_exit fx_run(struct fx *f, uint64_t n)
{
	return bt_cpu_run(&f->cpu, n);
}

enum bt_exit fx_run_hlt(struct fx *f)
{
	return bt_cpu_run(&f->cpu, 10000000);
}

void fx_idt(struct fx *f)
{
	struct modvm_cpu_state *s = &f->cpu.s;

	for (int v = 0; v < 256; v++) {
		uint32_t h = FX_STUBS + 16 * v;
		f->ram[h] = 0xF4; /* HLT */
		if (!f->cpu.pm && !f->cpu.lma) {
			fx_set32(f, 4 * v, h); /* 0000:h */
		} else if (f->cpu.lma) {
			fx_set64(f, FX_IDT + 16 * v,
				 (h & 0xFFFF) | (0x28ull << 16) | (0x8Eull << 40) |
				 ((uint64_t)(h >> 16) << 48));
			fx_set64(f, FX_IDT + 16 * v + 8, 0);
		} else {
			uint16_t cs = f->cpu.mode == BT_MODE16 ? 0x38 : 0x08;
			fx_set64(f, FX_IDT + 8 * v,
				 (h & 0xFFFF) | ((uint64_t)cs << 16) | (0x8Eull << 40) |
				 ((uint64_t)(h >> 16) << 48));
		}
	}
	if (f->cpu.pm || f->cpu.lma) {
		s->idt.base = FX_IDT;
		s->idt.limit = f->cpu.lma ? 256 * 16 - 1 : 256 * 8 - 1;
	} else {
		s->idt.base = 0;
		s->idt.limit = 0x3FF;
	}
}

int fx_vector(struct fx *f)
{
	uint64_t lin = f->cpu.s.seg[BT_CS].base + f->cpu.s.rip - 1;

	if (!f->cpu.s.halted || lin < FX_STUBS || lin >= FX_STUBS + 16 * 256)
		return -1;
	return (int)((lin - FX_STUBS) / 16);
}

uint64_t fx_mem64(struct fx *f, uint64_t gpa)
{
	uint64_t v;

	memcpy(&v, f->ram + gpa, 8);
	return v;
}

void fx_set64(struct fx *f, uint64_t gpa, uint64_t v)
{
	memcpy(f->ram + gpa, &v, 8);
}

uint32_t fx_mem32(struct fx *f, uint64_t gpa)
{
	uint32_t v;

	memcpy(&v, f->ram + gpa, 4);
	return v;
}

void fx_set32(struct fx *f, uint64_t gpa, uint32_t v)
{
	memcpy(f->ram + gpa, &v, 4);
}

uint64_t fx_reg(struct fx *f, int r)
{
	return f->cpu.s.gpr[r];
}
