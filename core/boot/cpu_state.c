/* CPU states the boot code hands to an engine: the x86 power-on state and
 * the entry states of the loaders (real mode, flat 32-bit protected mode,
 * 64-bit long mode), plus the GDT and page tables those states point at.
 */
#include <string.h>

#include <modvm/pc.h>

#include "boot_priv.h"

#define CR0_PE (1ull << 0)
#define CR0_ET (1ull << 4)
#define CR0_NW (1ull << 29)
#define CR0_CD (1ull << 30)
#define CR0_PG (1ull << 31)
#define CR4_PAE (1ull << 5)
#define EFER_LME (1ull << 8)
#define EFER_LMA (1ull << 10)

#define APIC_BASE_BSP (1ull << 8)
#define APIC_BASE_EN (1ull << 11)

#define MTRR_DEF_TYPE_E (1ull << 11)
#define MTRR_TYPE_WB 6

#define SEG_TYPE_DATA_RW_A 0x3 /* read/write, accessed */
#define SEG_TYPE_CODE_RX_A 0xB /* execute/read, accessed */
#define SEG_TYPE_LDT 0x2
#define SEG_TYPE_TSS_BUSY 0xB

#define PTE_P (1ull << 0)
#define PTE_RW (1ull << 1)
#define PTE_PS (1ull << 7)

static void seg_real(struct modvm_segment *sg, uint16_t sel, uint8_t type)
{
	memset(sg, 0, sizeof(*sg));
	sg->selector = sel;
	sg->base = (uint64_t)sel << 4;
	sg->limit = 0xFFFF;
	sg->type = type;
	sg->s = 1;
	sg->present = 1;
}

static void seg_flat(struct modvm_segment *sg, uint16_t sel, uint8_t type,
		     bool code64)
{
	memset(sg, 0, sizeof(*sg));
	sg->selector = sel;
	sg->limit = 0xFFFFFFFF;
	sg->type = type;
	sg->s = 1;
	sg->present = 1;
	sg->g = 1;
	sg->l = code64;
	sg->db = !code64; /* D must be 0 when L is 1 (SDM 3A 3.4.5) */
}

/* x87 and SSE in their initial state inside the XSAVE image: the values
 * FNINIT and the XSAVE init state give (SDM vol. 1 13.6), which is what
 * firmware leaves behind and what KVM uses for a vCPU at reset. */
static void fpu_reset(struct modvm_cpu_state *s)
{
	put_le16(s->xsave + 0, 0x037F);  /* FCW: all exceptions masked */
	put_le32(s->xsave + 24, 0x1F80); /* MXCSR */
	put_le64(s->xsave + 512, 1);     /* XSTATE_BV: x87, as in XCR0 */
	s->xcr0 = 1;
}

/* SDM vol. 3A 9.1.1, table 9-1. */
void boot_cpu_reset_state(struct modvm_cpu_state *s)
{
	int i;

	memset(s, 0, sizeof(*s));
	s->rip = 0xFFF0;
	s->rflags = 0x2;
	/* Processor signature: family 6, model and stepping 0. */
	s->gpr[MODVM_RDX] = 0x600;

	for (i = 0; i < MODVM_NR_SREGS; i++)
		seg_real(&s->seg[i], 0, SEG_TYPE_DATA_RW_A);
	/* CS:IP = F000:FFF0 with base FFFF0000: the first fetch is at
	 * FFFFFFF0, 16 bytes below 4 GiB. */
	seg_real(&s->seg[MODVM_CS], 0xF000, SEG_TYPE_CODE_RX_A);
	s->seg[MODVM_CS].base = 0xFFFF0000;

	seg_real(&s->ldt, 0, SEG_TYPE_LDT);
	s->ldt.s = 0;
	seg_real(&s->tr, 0, SEG_TYPE_TSS_BUSY);
	s->tr.s = 0;
	s->gdt.limit = 0xFFFF;
	s->idt.limit = 0xFFFF;

	s->cr0 = CR0_CD | CR0_NW | CR0_ET;
	s->dr6 = 0xFFFF0FF0;
	s->dr7 = 0x400;

	s->msr.pat = 0x0007040600070406ull;
	/* Only the BSP has bit 8 set; a caller building an AP clears it. */
	s->msr.apic_base = MODVM_PC_LAPIC_BASE | APIC_BASE_EN | APIC_BASE_BSP;

	fpu_reset(s);
}

void boot_cpu_real_mode(struct modvm_cpu_state *s, uint16_t cs, uint16_t ip,
			uint16_t ss, uint16_t sp)
{
	int i;

	for (i = 0; i < MODVM_NR_SREGS; i++)
		seg_real(&s->seg[i], cs, SEG_TYPE_DATA_RW_A);
	seg_real(&s->seg[MODVM_CS], cs, SEG_TYPE_CODE_RX_A);
	seg_real(&s->seg[MODVM_SS], ss, SEG_TYPE_DATA_RW_A);
	s->rip = ip;
	s->gpr[MODVM_RSP] = sp;
	s->gpr[MODVM_RDX] = 0;
}

/*
 * What firmware has done before any loader runs: caches on (CD and NW
 * clear) and MTRRs enabled with write-back as the default type. With
 * MTRRs disabled all memory is uncachable (SDM 3A 11.11.2.1) and Linux
 * also turns PAT off. The MMIO hole is emulated, so its memory type does
 * not matter to the VMM, and the guest maps it UC through PAT anyway.
 */
static void firmware_done(struct modvm_cpu_state *s)
{
	s->cr0 &= ~(CR0_CD | CR0_NW);
	s->msr.mtrr_def_type = MTRR_DEF_TYPE_E | MTRR_TYPE_WB;
}

static void flat_segments(struct modvm_cpu_state *s, bool code64)
{
	int i;

	for (i = 0; i < MODVM_NR_SREGS; i++)
		seg_flat(&s->seg[i], BOOT_DS_SEL, SEG_TYPE_DATA_RW_A, false);
	seg_flat(&s->seg[MODVM_CS], BOOT_CS_SEL, SEG_TYPE_CODE_RX_A, code64);
	s->gdt.base = BOOT_GDT_ADDR;
	s->gdt.limit = BOOT_GDT_SIZE - 1;
	/* No IDT: both protocols enter with interrupts disabled. */
	s->idt.base = 0;
	s->idt.limit = 0;
	s->rflags = 0x2;
	s->gpr[MODVM_RSP] = BOOT_STACK_TOP;
	s->gpr[MODVM_RDX] = 0;
	firmware_done(s);
}

void boot_cpu_protected32(struct modvm_cpu_state *s)
{
	flat_segments(s, false);
	s->cr0 |= CR0_PE;
}

void boot_cpu_long64(struct modvm_cpu_state *s, uint64_t cr3)
{
	flat_segments(s, true);
	s->cr0 |= CR0_PE | CR0_PG;
	s->cr3 = cr3;
	s->cr4 |= CR4_PAE;
	s->msr.efer |= EFER_LME | EFER_LMA;
}

/* Descriptor from its fields (SDM 3A 3.4.5): access byte, and the flags
 * nibble G, D/B, L, AVL. The limit is in 4 KiB units here. */
static uint64_t gdt_desc(uint32_t base, uint32_t limit, uint8_t access,
			 uint8_t flags)
{
	return (limit & 0xFFFFull) | (uint64_t)(base & 0xFFFFFF) << 16 |
	       (uint64_t)access << 40 | (uint64_t)(limit >> 16 & 0xF) << 48 |
	       (uint64_t)(flags & 0xF) << 52 | (uint64_t)(base >> 24) << 56;
}

#define GDT_ACCESS_CODE 0x9B /* present, DPL 0, code, execute/read, accessed */
#define GDT_ACCESS_DATA 0x93 /* present, DPL 0, data, read/write, accessed */
#define GDT_FLAGS_32 0xC     /* G, D */
#define GDT_FLAGS_64 0xA     /* G, L */

int boot_write_gdt_at(struct vm_memory *mem, uint64_t addr, bool code64)
{
	uint8_t gdt[BOOT_GDT_SIZE] = { 0 };

	put_le64(gdt + BOOT_CS_SEL,
		 gdt_desc(0, 0xFFFFF, GDT_ACCESS_CODE,
			  code64 ? GDT_FLAGS_64 : GDT_FLAGS_32));
	put_le64(gdt + BOOT_DS_SEL,
		 gdt_desc(0, 0xFFFFF, GDT_ACCESS_DATA, GDT_FLAGS_32));
	return vm_memory_write(mem, addr, gdt, sizeof(gdt));
}

int boot_write_gdt(struct vm_memory *mem, bool code64)
{
	return boot_write_gdt_at(mem, BOOT_GDT_ADDR, code64);
}

int boot_write_identity_map(struct vm_memory *mem)
{
	uint8_t page[4096];
	uint64_t pd;
	int i, j;

	memset(page, 0, sizeof(page));
	put_le64(page, BOOT_PDPT_ADDR | PTE_P | PTE_RW);
	if (vm_memory_write(mem, BOOT_PML4_ADDR, page, sizeof(page)))
		return -1;

	memset(page, 0, sizeof(page));
	for (i = 0; i < BOOT_PD_COUNT; i++)
		put_le64(page + 8 * i,
			 (BOOT_PD_ADDR + 0x1000ull * i) | PTE_P | PTE_RW);
	if (vm_memory_write(mem, BOOT_PDPT_ADDR, page, sizeof(page)))
		return -1;

	for (i = 0; i < BOOT_PD_COUNT; i++) {
		for (j = 0; j < 512; j++) {
			uint64_t addr = ((uint64_t)i << 30) |
					((uint64_t)j << 21);
			put_le64(page + 8 * j, addr | PTE_P | PTE_RW | PTE_PS);
		}
		pd = BOOT_PD_ADDR + 0x1000ull * i;
		if (vm_memory_write(mem, pd, page, sizeof(page)))
			return -1;
	}
	return 0;
}
