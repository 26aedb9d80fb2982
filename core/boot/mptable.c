/* Intel MultiProcessor Specification 1.4 tables, for guests booted without
 * ACPI: the floating pointer at 0xF0000 (in the BIOS ROM area an OS scans,
 * MP spec 4) and the configuration table right after it.
 */
#include <string.h>

#include <modvm/pc.h>

#include "boot_priv.h"

#define MPF_LEN 16
#define MPC_HDR_LEN 44
#define MP_SPEC_REV 4 /* 1.4 */

/* Entry types and sizes (MP spec 4.3, table 4-3). */
#define MP_PROCESSOR 0
#define MP_BUS 1
#define MP_IOAPIC 2
#define MP_IOINT 3
#define MP_LINT 4
#define MP_PROCESSOR_LEN 20
#define MP_ENTRY_LEN 8

#define MP_CPU_EN 0x01
#define MP_CPU_BP 0x02
#define MP_LAPIC_VERSION 0x14  /* integrated APIC */
#define MP_IOAPIC_VERSION 0x20 /* what the ioapic plugin reports (it has the EOI register) */
#define MP_CPU_SIGNATURE 0x600 /* family 6, as EDX at reset */
#define MP_CPU_FEATURES 0x201  /* CPUID.1:EDX FPU and APIC */

#define MP_INT 0
#define MP_NMI 1
#define MP_EXTINT 3
#define MP_ISA_BUS_ID 0
#define MP_ALL_LAPICS 0xFF

struct mpc {
	uint8_t *t;
	size_t len;
	unsigned entries;
};

static uint8_t *mpc_entry(struct mpc *c, uint8_t type, size_t len)
{
	uint8_t *e = c->t + c->len;

	memset(e, 0, len);
	e[0] = type;
	c->len += len;
	c->entries++;
	return e;
}

static void mpc_processor(struct mpc *c, unsigned id)
{
	uint8_t *e = mpc_entry(c, MP_PROCESSOR, MP_PROCESSOR_LEN);

	e[1] = (uint8_t)id;
	e[2] = MP_LAPIC_VERSION;
	e[3] = MP_CPU_EN | (id == 0 ? MP_CPU_BP : 0);
	put_le32(e + 4, MP_CPU_SIGNATURE);
	put_le32(e + 8, MP_CPU_FEATURES);
}

static void mpc_irq(struct mpc *c, uint8_t type, uint8_t kind, uint8_t irq,
		    uint8_t dst, uint8_t pin)
{
	uint8_t *e = mpc_entry(c, type, MP_ENTRY_LEN);

	e[1] = kind;
	put_le16(e + 2, 0); /* polarity and trigger conform to the bus */
	e[4] = MP_ISA_BUS_ID;
	e[5] = irq;
	e[6] = dst;
	e[7] = pin;
}

/*
 * ISA interrupts (MP spec 5.1, the default configurations' routing): the
 * 8259 as ExtINT on IOAPIC pin 0, the PIT's IRQ 0 on pin 2, every other
 * ISA IRQ but the cascade on the pin of its number; LINT0 of every local
 * APIC is ExtINT (virtual wire) and LINT1 is NMI.
 */
static void mpc_isa_interrupts(struct mpc *c, uint8_t ioapic)
{
	uint8_t irq;

	mpc_irq(c, MP_IOINT, MP_EXTINT, 0, ioapic, 0);
	mpc_irq(c, MP_IOINT, MP_INT, MODVM_PC_IRQ_PIT, ioapic, 2);
	for (irq = 1; irq < 16; irq++) {
		if (irq == MODVM_PC_IRQ_CASCADE)
			continue;
		mpc_irq(c, MP_IOINT, MP_INT, irq, ioapic, irq);
	}
	mpc_irq(c, MP_LINT, MP_EXTINT, 0, MP_ALL_LAPICS, 0);
	mpc_irq(c, MP_LINT, MP_NMI, 0, MP_ALL_LAPICS, 1);
}

static void mpc_build(struct mpc *c, unsigned ncpus)
{
	uint8_t *e;
	unsigned i;

	c->len = MPC_HDR_LEN;
	c->entries = 0;
	for (i = 0; i < ncpus; i++)
		mpc_processor(c, i);
	e = mpc_entry(c, MP_BUS, MP_ENTRY_LEN);
	e[1] = MP_ISA_BUS_ID;
	memcpy(e + 2, "ISA   ", 6);
	e = mpc_entry(c, MP_IOAPIC, MP_ENTRY_LEN);
	e[1] = (uint8_t)ncpus; /* IOAPIC ID after the CPUs', as in the MADT */
	e[2] = MP_IOAPIC_VERSION;
	e[3] = 0x01; /* usable */
	put_le32(e + 4, (uint32_t)MODVM_PC_IOAPIC_BASE);
	mpc_isa_interrupts(c, (uint8_t)ncpus);

	memcpy(c->t, "PCMP", 4);
	put_le16(c->t + 4, (uint16_t)c->len);
	c->t[6] = MP_SPEC_REV;
	memcpy(c->t + 8, "MODVM   ", 8);
	memcpy(c->t + 16, "PC          ", 12);
	put_le16(c->t + 34, (uint16_t)c->entries);
	put_le32(c->t + 36, (uint32_t)MODVM_PC_LAPIC_BASE);
	c->t[7] = boot_checksum(c->t, c->len);
}

/* Floating pointer (MP spec 4.1): feature byte 1 = 0 (a configuration
 * table is present), IMCRP clear (virtual wire mode, no IMCR). */
static void mpf_build(uint8_t *f, uint64_t table)
{
	memset(f, 0, MPF_LEN);
	memcpy(f, "_MP_", 4);
	put_le32(f + 4, (uint32_t)table);
	f[8] = 1; /* length in 16-byte units */
	f[9] = MP_SPEC_REV;
	f[10] = boot_checksum(f, MPF_LEN);
}

int boot_mptable_write(struct vm_memory *mem, unsigned ncpus, char *err,
		       size_t err_len)
{
	uint64_t table = BOOT_MP_ADDR + MPF_LEN;
	size_t cap = BOOT_FW_END - table;
	uint8_t mpf[MPF_LEN];
	struct mpc c;

	c.t = vm_memory_ptr(mem, table, cap);
	if (!c.t)
		return boot_error(err, err_len,
				  "MP tables live at 0x%llx-0x%llx and need at least 1 MiB of guest RAM",
				  BOOT_MP_ADDR, BOOT_FW_END - 1);
	/* 20 bytes a CPU plus 20 entries of 8: far below the 64 KiB. */
	mpc_build(&c, ncpus);
	mpf_build(mpf, table);
	return vm_memory_write(mem, BOOT_MP_ADDR, mpf, MPF_LEN);
}
