/* ACPI tables (ACPI 6.x chapter 5) describing the modvm PC of <modvm/pc.h>:
 * RSDP at 0xE0000 where a scanning OS finds it, then FACS, DSDT, FADT,
 * MADT, XSDT and RSDT in the E820-reserved BIOS area above it.
 */
#include <stdlib.h>
#include <string.h>

#include <modvm/pc.h>

#include "boot_priv.h"

#define ACPI_HDR_LEN 36
#define ACPI_OEM_ID "MODVM "        /* 6 bytes */
#define ACPI_OEM_TABLE_ID "MODVM-PC" /* 8 bytes, the same in every table */
#define ACPI_CREATOR_ID "MDVM"

#define RSDP_LEN 36
#define FACS_LEN 64
#define FADT_LEN 276 /* FADT revision 6 (ACPI 6.0 table 5-33) */
#define FADT_REVISION 6
#define MADT_REVISION 5
#define DSDT_REVISION 2 /* 2 or more: integers are 64 bits */
#define DSDT_MAX 8192

/* FADT Flags (5.2.9 table "Fixed ACPI Description Table Fixed Feature
 * Flags") and IAPC_BOOT_ARCH (5.2.9.3). */
#define FADT_F_WBINVD (1u << 0)
#define FADT_F_PROC_C1 (1u << 2)
#define FADT_F_PWR_BUTTON (1u << 4)  /* 1: no fixed power button */
#define FADT_F_SLP_BUTTON (1u << 5)  /* 1: no fixed sleep button */
#define FADT_F_FIX_RTC (1u << 6)     /* 1: no RTC wake status */
#define FADT_F_RESET_REG_SUP (1u << 10)
#define FADT_F_USE_PLATFORM_CLOCK (1u << 15)
#define FADT_BOOT_LEGACY_DEVICES (1u << 0)
#define FADT_BOOT_8042 (1u << 1)

/* Generic Address Structure (5.2.3.2). */
#define GAS_SYSTEM_IO 1
#define GAS_ACCESS_BYTE 1
#define GAS_ACCESS_WORD 2
#define GAS_ACCESS_DWORD 3

/* PIIX-style reset: writing 6 to port 0xCF9 asks for a hard reset. */
#define RESET_VALUE 0x06

/* MADT (5.2.12) */
#define MADT_PCAT_COMPAT (1u << 0)
#define MADT_LAPIC 0
#define MADT_IOAPIC 1
#define MADT_INT_OVERRIDE 2
#define MADT_LAPIC_NMI 4
#define MADT_LAPIC_ENABLED (1u << 0)
/* MPS INTI flags: polarity bits 1:0, trigger mode bits 3:2. */
#define MPS_INTI_HIGH 0x1
#define MPS_INTI_LEVEL 0xC

/* Bump allocator over the table area, writing straight to guest RAM. */
struct fw_area {
	struct vm_memory *mem;
	uint64_t next;
	uint64_t end;
};

static uint64_t area_put(struct fw_area *a, const uint8_t *data, size_t len,
			 uint64_t align)
{
	uint64_t addr = (a->next + align - 1) & ~(align - 1);

	if (addr > a->end || len > a->end - addr)
		return 0;
	if (vm_memory_write(a->mem, addr, data, len))
		return 0;
	a->next = addr + len;
	return addr;
}

static void acpi_header(uint8_t *t, const char *sig, uint32_t len,
			uint8_t rev)
{
	memcpy(t, sig, 4);
	put_le32(t + 4, len);
	t[8] = rev;
	t[9] = 0;
	memcpy(t + 10, ACPI_OEM_ID, 6);
	memcpy(t + 16, ACPI_OEM_TABLE_ID, 8);
	put_le32(t + 24, 1);
	memcpy(t + 28, ACPI_CREATOR_ID, 4);
	put_le32(t + 32, 1);
}

/* Header, then the checksum over the whole table (byte 9). */
static void acpi_seal(uint8_t *t, uint32_t len)
{
	t[9] = 0;
	t[9] = boot_checksum(t, len);
}

static void gas_io(uint8_t *p, uint16_t port, uint8_t bits, uint8_t access)
{
	p[0] = GAS_SYSTEM_IO;
	p[1] = bits;
	p[2] = 0;
	p[3] = access;
	put_le64(p + 4, port);
}

/* Firmware ACPI Control Structure (5.2.10): no checksum, 64-byte aligned.
 * Required because the platform is not hardware-reduced. */
static void facs_build(uint8_t *t)
{
	memset(t, 0, FACS_LEN);
	memcpy(t, "FACS", 4);
	put_le32(t + 4, FACS_LEN);
	t[32] = 2; /* version */
}

static void fadt_pm_blocks(uint8_t *t)
{
	put_le32(t + 56, MODVM_PC_PM1A_EVT);
	put_le32(t + 64, MODVM_PC_PM1A_CNT);
	put_le32(t + 76, MODVM_PC_PM_TMR);
	t[88] = 4; /* PM1_EVT_LEN: 16-bit status + 16-bit enable */
	t[89] = 2; /* PM1_CNT_LEN */
	t[91] = 4; /* PM_TMR_LEN */
	gas_io(t + 148, MODVM_PC_PM1A_EVT, 32, GAS_ACCESS_WORD);
	gas_io(t + 172, MODVM_PC_PM1A_CNT, 16, GAS_ACCESS_WORD);
	gas_io(t + 208, MODVM_PC_PM_TMR, 32, GAS_ACCESS_DWORD);
}

/*
 * FADT, offsets from ACPI 6.0 table 5-33. Choices that matter:
 * - SMI_CMD = 0: no SMM, so the OS finds the platform already in ACPI mode
 *   (the PM device reports SCI_EN set).
 * - PM timer 24 bits (TMR_VAL_EXT clear): safe with a 32-bit device too,
 *   and Linux's acpi_pm clocksource masks to 24 bits regardless.
 * - FIRMWARE_CTRL only: X_FIRMWARE_CTRL must be zero when FIRMWARE_CTRL
 *   is set (5.2.9). DSDT and X_DSDT may both be set; X_ wins.
 * - P_LVL2_LAT > 100 and P_LVL3_LAT > 1000: no C2/C3.
 */
static void fadt_build(uint8_t *t, uint64_t facs, uint64_t dsdt)
{
	memset(t, 0, FADT_LEN);
	acpi_header(t, "FACP", FADT_LEN, FADT_REVISION);
	put_le32(t + 36, (uint32_t)facs);
	put_le32(t + 40, (uint32_t)dsdt);
	t[45] = 0; /* Preferred_PM_Profile: unspecified */
	put_le16(t + 46, MODVM_PC_SCI_IRQ);
	fadt_pm_blocks(t);
	put_le16(t + 96, 101);
	put_le16(t + 98, 1001);
	t[108] = 0x32; /* CENTURY: the RTC's century byte in CMOS */
	put_le16(t + 109, FADT_BOOT_LEGACY_DEVICES | FADT_BOOT_8042);
	put_le32(t + 112, FADT_F_WBINVD | FADT_F_PROC_C1 | FADT_F_PWR_BUTTON |
			  FADT_F_SLP_BUTTON | FADT_F_FIX_RTC |
			  FADT_F_RESET_REG_SUP | FADT_F_USE_PLATFORM_CLOCK);
	gas_io(t + 116, MODVM_PC_PORT_RESET, 8, GAS_ACCESS_BYTE);
	t[128] = RESET_VALUE;
	t[131] = 0; /* FADT minor version: 6.0 */
	put_le64(t + 140, dsdt);
	acpi_seal(t, FADT_LEN);
}

static size_t madt_put(uint8_t *t, size_t off, const uint8_t *e, size_t n)
{
	memcpy(t + off, e, n);
	return off + n;
}

static size_t madt_override(uint8_t *t, size_t off, uint8_t irq,
			    uint32_t gsi, uint16_t flags)
{
	uint8_t e[10] = { MADT_INT_OVERRIDE, 10, 0 /* ISA */, irq };

	put_le32(e + 4, gsi);
	put_le16(e + 8, flags);
	return madt_put(t, off, e, sizeof(e));
}

/*
 * MADT (5.2.12): one enabled local APIC per CPU (APIC ID = UID = index),
 * the IOAPIC with ID ncpus at GSI 0, the PIT's ISA IRQ 0 on IOAPIC pin 2
 * as on every PC, the SCI level/active-high (5.2.12.5: the SCI is
 * level-triggered; high because the PM device drives it like an ISA
 * line), and LINT1 of every CPU as NMI.
 */
static size_t madt_build(uint8_t *t, unsigned ncpus)
{
	size_t off = ACPI_HDR_LEN + 8;
	unsigned i;

	put_le32(t + ACPI_HDR_LEN, (uint32_t)MODVM_PC_LAPIC_BASE);
	put_le32(t + ACPI_HDR_LEN + 4, MADT_PCAT_COMPAT);
	for (i = 0; i < ncpus; i++) {
		uint8_t e[8] = { MADT_LAPIC, 8, (uint8_t)i, (uint8_t)i };

		put_le32(e + 4, MADT_LAPIC_ENABLED);
		off = madt_put(t, off, e, sizeof(e));
	}
	{
		uint8_t e[12] = { MADT_IOAPIC, 12, (uint8_t)ncpus, 0 };

		put_le32(e + 4, (uint32_t)MODVM_PC_IOAPIC_BASE);
		put_le32(e + 8, 0);
		off = madt_put(t, off, e, sizeof(e));
	}
	off = madt_override(t, off, MODVM_PC_IRQ_PIT, 2, 0);
	off = madt_override(t, off, MODVM_PC_SCI_IRQ, MODVM_PC_SCI_IRQ,
			    MPS_INTI_HIGH | MPS_INTI_LEVEL);
	{
		uint8_t e[6] = { MADT_LAPIC_NMI, 6, 0xFF /* all CPUs */ };

		put_le16(e + 3, 0);
		e[5] = 1; /* LINT1 */
		off = madt_put(t, off, e, sizeof(e));
	}
	acpi_header(t, "APIC", (uint32_t)off, MADT_REVISION);
	acpi_seal(t, (uint32_t)off);
	return off;
}

static size_t dsdt_build(uint8_t *t)
{
	size_t aml = boot_dsdt_build(t + ACPI_HDR_LEN, DSDT_MAX - ACPI_HDR_LEN);
	uint32_t len = (uint32_t)(ACPI_HDR_LEN + aml);

	if (!aml)
		return 0;
	acpi_header(t, "DSDT", len, DSDT_REVISION);
	acpi_seal(t, len);
	return len;
}

/* XSDT (64-bit entries) or RSDT (32-bit entries) pointing at FADT, MADT. */
static size_t sdt_build(uint8_t *t, const char *sig, unsigned width,
			const uint64_t *ptrs, unsigned n)
{
	uint32_t len = ACPI_HDR_LEN + width * n;
	unsigned i;

	acpi_header(t, sig, len, 1);
	for (i = 0; i < n; i++) {
		if (width == 8)
			put_le64(t + ACPI_HDR_LEN + 8 * i, ptrs[i]);
		else
			put_le32(t + ACPI_HDR_LEN + 4 * i, (uint32_t)ptrs[i]);
	}
	acpi_seal(t, len);
	return len;
}

/* RSDP revision 2 (5.2.5.3): checksum over the first 20 bytes (the ACPI
 * 1.0 part), extended checksum over all 36. The RSDT stays for OSes that
 * predate the XSDT. */
static void rsdp_build(uint8_t *t, uint64_t rsdt, uint64_t xsdt)
{
	memset(t, 0, RSDP_LEN);
	memcpy(t, "RSD PTR ", 8);
	memcpy(t + 9, ACPI_OEM_ID, 6);
	t[15] = 2;
	put_le32(t + 16, (uint32_t)rsdt);
	put_le32(t + 20, RSDP_LEN);
	put_le64(t + 24, xsdt);
	t[8] = boot_checksum(t, 20);
	t[32] = boot_checksum(t, RSDP_LEN);
}

struct acpi_addrs {
	uint64_t facs, dsdt, fadt, madt, xsdt, rsdt;
};

/* Everything but the RSDP, in dependency order; buf holds any table. */
static int acpi_place_tables(struct fw_area *a, uint8_t *buf, unsigned ncpus,
			     struct acpi_addrs *at)
{
	uint64_t ptrs[2];
	size_t len;

	facs_build(buf);
	at->facs = area_put(a, buf, FACS_LEN, 64);
	len = dsdt_build(buf);
	at->dsdt = len ? area_put(a, buf, len, 16) : 0;
	fadt_build(buf, at->facs, at->dsdt);
	at->fadt = area_put(a, buf, FADT_LEN, 16);
	len = madt_build(buf, ncpus);
	at->madt = area_put(a, buf, len, 16);
	ptrs[0] = at->fadt;
	ptrs[1] = at->madt;
	len = sdt_build(buf, "XSDT", 8, ptrs, 2);
	at->xsdt = area_put(a, buf, len, 16);
	len = sdt_build(buf, "RSDT", 4, ptrs, 2);
	at->rsdt = area_put(a, buf, len, 16);
	if (!at->facs || !at->dsdt || !at->fadt || !at->madt || !at->xsdt ||
	    !at->rsdt)
		return -1;
	return 0;
}

int boot_acpi_write(struct vm_memory *mem, unsigned ncpus, uint64_t *rsdp,
		    char *err, size_t err_len)
{
	struct fw_area area = { mem, BOOT_ACPI_RSDP_ADDR + 64, BOOT_ACPI_END };
	struct acpi_addrs at;
	uint8_t rsdp_buf[RSDP_LEN];
	uint8_t *buf;
	int ret;

	if (!vm_memory_ptr(mem, BOOT_ACPI_RSDP_ADDR,
			   BOOT_ACPI_END - BOOT_ACPI_RSDP_ADDR))
		return boot_error(err, err_len,
				  "ACPI tables live at 0x%llx-0x%llx and need at least 1 MiB of guest RAM",
				  BOOT_ACPI_RSDP_ADDR, BOOT_ACPI_END - 1);
	/* Large enough for the DSDT and for a MADT of 254 CPUs. */
	buf = calloc(1, DSDT_MAX);
	if (!buf)
		return boot_error(err, err_len, "out of memory for ACPI tables");
	ret = acpi_place_tables(&area, buf, ncpus, &at);
	free(buf);
	if (ret)
		return boot_error(err, err_len,
				  "ACPI tables for %u CPUs do not fit in 0x%llx-0x%llx",
				  ncpus, BOOT_ACPI_RSDP_ADDR, BOOT_ACPI_END - 1);
	rsdp_build(rsdp_buf, at.rsdt, at.xsdt);
	vm_memory_write(mem, BOOT_ACPI_RSDP_ADDR, rsdp_buf, RSDP_LEN);
	*rsdp = BOOT_ACPI_RSDP_ADDR;
	return 0;
}
