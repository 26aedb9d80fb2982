/* The PCI bus through the pci-host bridge and the test-pci-dev function:
 * config mechanism #1, BAR sizing and placement, decode, the capability
 * list, MSI, MSI-X, INTx routing, DMA gating, hostile accesses, reset via
 * 0xCF9 and the bus as snapshot state. */
#include <stdlib.h>
#include <string.h>

#include <modvm/modvm.h>
#include <modvm/pci.h>

#include "harness.h"
#include "testmain.h"

#define CFG_ADDR  MODVM_PC_PORT_PCI_ADDR  /* 0xCF8 */
#define CFG_DATA  MODVM_PC_PORT_PCI_DATA  /* 0xCFC */
#define RST_CNT   MODVM_PC_PORT_RESET     /* 0xCF9 */
#define SLOT      3
#define GSI       19                 /* 16 + (3 + INTA - 1) mod 8 */
#define BAR0_FW   0xC0000000u        /* where firmware-style setup puts them */
#define BAR1_FW   0xC000u
#define BAR2_FW   0xC0010000u
#define TABLE     0x8000u            /* MSI-X table in BAR2 */
#define PBA       0x4000u
#define MSI_CAP   0x40
#define MSIX_CAP  0x58               /* after MSI (64-bit, masking: 0x18) */
#define VNDR_CAP  0x64

/* test-pci-dev registers (BAR0 and BAR1) */
#define R_SCRATCH 0x00
#define R_IRQ     0x04
#define R_MSI     0x08
#define R_DMA_LO  0x0C
#define R_DMA_HI  0x10
#define R_DMA_LEN 0x14
#define R_DMA_CMD 0x18
#define R_DMA_ST  0x1C
#define R_BUF     0x100

/* ---- helpers ------------------------------------------------------------ */

static uint32_t ca(unsigned bus, unsigned dev, unsigned fn, unsigned reg)
{
	return 0x80000000u | bus << 16 | dev << 11 | fn << 8 | (reg & 0xFC);
}

static uint32_t cfg_rd(struct hx *h, unsigned dev, unsigned reg, unsigned size)
{
	uint16_t port = (uint16_t)(CFG_DATA + (reg & 3));

	hx_outl(h, CFG_ADDR, ca(0, dev, 0, reg));
	return size == 1 ? hx_inb(h, port) : size == 2 ? hx_inw(h, port) : hx_inl(h, port);
}

static void cfg_wr(struct hx *h, unsigned dev, unsigned reg, uint32_t v,
		   unsigned size)
{
	uint16_t port = (uint16_t)(CFG_DATA + (reg & 3));

	hx_outl(h, CFG_ADDR, ca(0, dev, 0, reg));
	if (size == 1)
		hx_outb(h, port, (uint8_t)v);
	else if (size == 2)
		hx_outw(h, port, (uint16_t)v);
	else
		hx_outl(h, port, v);
}

static uint32_t rd32(struct hx *h, unsigned reg)
{
	return cfg_rd(h, SLOT, reg, 4);
}

static void wr32(struct hx *h, unsigned reg, uint32_t v)
{
	cfg_wr(h, SLOT, reg, v, 4);
}

static void wr16(struct hx *h, unsigned reg, uint16_t v)
{
	cfg_wr(h, SLOT, reg, v, 2);
}

static struct hx *bus_with(const char *extra)
{
	struct hx *h = hx_new(0);
	char slot[32];

	snprintf(slot, sizeof(slot), "slot=%d", SLOT);
	CU_ASSERT_EQUAL_FATAL(hx_add(h, "pci-host", "pci", NULL), 0);
	if (hx_add(h, "test-pci-dev", "dev", slot, extra ? extra : "pin=a", NULL))
		fprintf(stderr, "test-pci-dev: %s\n", hx_error(h));
	return h;
}

static struct hx *bus_new(void)
{
	return bus_with(NULL);
}

static void bar0_wr(struct hx *h, unsigned reg, uint32_t v)
{
	hx_mmio_write(h, BAR0_FW + reg, v, 4);
}

static uint32_t bar0_rd(struct hx *h, unsigned reg)
{
	return (uint32_t)hx_mmio_read(h, BAR0_FW + reg, 4);
}

static void msix_entry(struct hx *h, unsigned v, uint64_t addr, uint32_t data,
		       uint32_t ctrl)
{
	uint64_t e = BAR2_FW + TABLE + 16ull * v;

	hx_mmio_write(h, e + 0, (uint32_t)addr, 4);
	hx_mmio_write(h, e + 4, (uint32_t)(addr >> 32), 4);
	hx_mmio_write(h, e + 8, data, 4);
	hx_mmio_write(h, e + 12, ctrl, 4);
}

/* ---- config mechanism #1 and the host bridge ----------------------------- */

static void test_host_bridge_ids(void)
{
	struct hx *h = bus_new();

	CU_ASSERT_EQUAL(cfg_rd(h, 0, MODVM_PCI_VENDOR_ID, 4), 0x12378086);
	CU_ASSERT_EQUAL(cfg_rd(h, 0, MODVM_PCI_VENDOR_ID, 2), 0x8086);
	CU_ASSERT_EQUAL(cfg_rd(h, 0, MODVM_PCI_DEVICE_ID, 2), 0x1237);
	CU_ASSERT_EQUAL(cfg_rd(h, 0, MODVM_PCI_REVISION_ID, 4), 0x06000002);
	CU_ASSERT_EQUAL(cfg_rd(h, 0, MODVM_PCI_HEADER_TYPE, 1), 0x00);
	CU_ASSERT_EQUAL(cfg_rd(h, 0, MODVM_PCI_INTERRUPT_PIN, 1), 0);
	CU_ASSERT_EQUAL(cfg_rd(h, 0, MODVM_PCI_BAR0, 4), 0);
	/* CONFIG_ADDRESS reads back, reserved bits 30:24 and 1:0 as 0 */
	hx_outl(h, CFG_ADDR, 0xFFFFFFFF);
	CU_ASSERT_EQUAL(hx_inl(h, CFG_ADDR), 0x80FFFFFC);
	hx_outl(h, CFG_ADDR, 0x80000000);
	CU_ASSERT_EQUAL(hx_inl(h, CFG_ADDR), 0x80000000);
	/* only dword accesses latch it */
	hx_outw(h, CFG_ADDR, 0x1234);
	hx_outb(h, 0xCFA, 0x55);
	CU_ASSERT_EQUAL(hx_inl(h, CFG_ADDR), 0x80000000);
	CU_ASSERT_EQUAL(hx_inw(h, CFG_ADDR), 0xFFFF);
	/* enable bit clear: no config cycle */
	hx_outl(h, CFG_ADDR, 0x00000000);
	CU_ASSERT_EQUAL(hx_inl(h, CFG_DATA), 0xFFFFFFFF);
	hx_free(h);
}

static void test_absent_functions_read_ones(void)
{
	struct hx *h = bus_new();

	CU_ASSERT_EQUAL(cfg_rd(h, 5, 0, 4), 0xFFFFFFFF);
	CU_ASSERT_EQUAL(cfg_rd(h, 31, 0, 2), 0xFFFF);
	CU_ASSERT_EQUAL(cfg_rd(h, 5, 0x3C, 1), 0xFF);
	hx_outl(h, CFG_ADDR, ca(0, SLOT, 1, 0));      /* function 1 */
	CU_ASSERT_EQUAL(hx_inl(h, CFG_DATA), 0xFFFFFFFF);
	hx_outl(h, CFG_ADDR, ca(1, SLOT, 0, 0));      /* bus 1 */
	CU_ASSERT_EQUAL(hx_inl(h, CFG_DATA), 0xFFFFFFFF);
	hx_outl(h, CFG_ADDR, ca(255, 0, 0, 0));
	CU_ASSERT_EQUAL(hx_inl(h, CFG_DATA), 0xFFFFFFFF);
	/* writes there change nothing that exists */
	hx_outl(h, CFG_ADDR, ca(1, SLOT, 0, MODVM_PCI_COMMAND));
	hx_outl(h, CFG_DATA, 0);
	CU_ASSERT_EQUAL(rd32(h, MODVM_PCI_COMMAND) & 0xFFFF, 0x0003);
	hx_free(h);
}

static void test_device_header(void)
{
	struct hx *h = bus_new();

	CU_ASSERT_EQUAL(rd32(h, MODVM_PCI_VENDOR_ID), 0x70636d76);
	CU_ASSERT_EQUAL(rd32(h, MODVM_PCI_REVISION_ID), 0xFF000001);
	CU_ASSERT_EQUAL(rd32(h, MODVM_PCI_SUBSYSTEM_VENDOR_ID), 0x00016d76);
	CU_ASSERT_EQUAL(cfg_rd(h, SLOT, MODVM_PCI_HEADER_TYPE, 1), 0);
	CU_ASSERT_EQUAL(rd32(h, MODVM_PCI_COMMAND) >> 16,
			MODVM_PCI_STATUS_CAP_LIST);
	CU_ASSERT_EQUAL(cfg_rd(h, SLOT, MODVM_PCI_INTERRUPT_PIN, 1), 1);
	/* no firmware: the core wrote the routed IOAPIC input */
	CU_ASSERT_EQUAL(cfg_rd(h, SLOT, MODVM_PCI_INTERRUPT_LINE, 1), GSI);
	CU_ASSERT_EQUAL(rd32(h, MODVM_PCI_ROM_ADDRESS), 0);
	CU_ASSERT_EQUAL(rd32(h, 0x28), 0);
	hx_free(h);
}

/* ---- BARs ------------------------------------------------------------------ */

static void test_bar_sizing(void)
{
	struct hx *h = bus_new();

	wr16(h, MODVM_PCI_COMMAND, 0); /* as Linux does while sizing */
	for (unsigned i = 0; i < 6; i++)
		wr32(h, MODVM_PCI_BAR0 + 4 * i, 0xFFFFFFFF);
	CU_ASSERT_EQUAL(rd32(h, 0x10), 0xFFFFF000);      /* 4 KiB mem32 */
	CU_ASSERT_EQUAL(rd32(h, 0x14), 0x0000FFE1);      /* 32-byte I/O */
	CU_ASSERT_EQUAL(rd32(h, 0x18), 0xFFFF000C);      /* 64 KiB, 64-bit, prefetchable */
	CU_ASSERT_EQUAL(rd32(h, 0x1C), 0xFFFFFFFF);      /* its upper half */
	CU_ASSERT_EQUAL(rd32(h, 0x20), 0);
	CU_ASSERT_EQUAL(rd32(h, 0x24), 0);
	wr32(h, MODVM_PCI_ROM_ADDRESS, 0xFFFFFFFF);
	CU_ASSERT_EQUAL(rd32(h, MODVM_PCI_ROM_ADDRESS), 0);
	/* sizing with byte and word writes reaches the same mask */
	wr32(h, 0x10, 0);
	cfg_wr(h, SLOT, 0x12, 0xFFFF, 2);
	cfg_wr(h, SLOT, 0x11, 0xFF, 1);
	CU_ASSERT_EQUAL(rd32(h, 0x10), 0xFFFFF000);
	hx_free(h);
}

static void test_firmware_placement(void)
{
	struct hx *h = bus_new();

	CU_ASSERT_EQUAL(rd32(h, 0x10), BAR0_FW);
	CU_ASSERT_EQUAL(rd32(h, 0x14), BAR1_FW | 1);
	CU_ASSERT_EQUAL(rd32(h, 0x18), BAR2_FW | 0xC);
	CU_ASSERT_EQUAL(rd32(h, 0x1C), 0);
	CU_ASSERT_EQUAL(rd32(h, MODVM_PCI_COMMAND) & 0xFFFF,
			MODVM_PCI_COMMAND_IO | MODVM_PCI_COMMAND_MEMORY);
	bar0_wr(h, R_SCRATCH, 0x11223344);
	CU_ASSERT_EQUAL(bar0_rd(h, R_SCRATCH), 0x11223344);
	CU_ASSERT_EQUAL(hx_inl(h, BAR1_FW + R_SCRATCH), 0x11223344);
	hx_mmio_write(h, BAR2_FW + 0x10, 0x55667788, 4);
	CU_ASSERT_EQUAL(hx_mmio_read(h, BAR2_FW + 0x10, 4), 0x55667788);
	hx_free(h);
}

static void test_assign_bars_off(void)
{
	struct hx *h = hx_new(0);

	CU_ASSERT_EQUAL_FATAL(hx_add(h, "test-pci-dev", "early", "slot=2", NULL), 0);
	CU_ASSERT_EQUAL_FATAL(hx_add(h, "pci-host", "pci", "assign-bars=false", NULL), 0);
	CU_ASSERT_EQUAL_FATAL(hx_add(h, "test-pci-dev", "dev", "slot=3", NULL), 0);
	for (unsigned dev = 2; dev <= 3; dev++) {
		CU_ASSERT_EQUAL(cfg_rd(h, dev, 0x10, 4), 0);
		CU_ASSERT_EQUAL(cfg_rd(h, dev, 0x14, 4), 1);
		CU_ASSERT_EQUAL(cfg_rd(h, dev, MODVM_PCI_COMMAND, 2), 0);
		CU_ASSERT_EQUAL(cfg_rd(h, dev, MODVM_PCI_INTERRUPT_LINE, 1), 0);
	}
	CU_ASSERT_EQUAL(hx_mmio_read(h, BAR0_FW, 4), 0xFFFFFFFF);
	/* the guest's firmware does it instead */
	wr32(h, 0x10, 0xC8000000);
	CU_ASSERT_EQUAL(hx_mmio_read(h, 0xC8000000, 4), 0xFFFFFFFF); /* decode off */
	wr16(h, MODVM_PCI_COMMAND, MODVM_PCI_COMMAND_MEMORY);
	hx_mmio_write(h, 0xC8000000, 0xABCD, 4);
	CU_ASSERT_EQUAL(hx_mmio_read(h, 0xC8000000, 4), 0xABCD);
	hx_free(h);
}

static void test_bar_move(void)
{
	struct hx *h = bus_new();

	bar0_wr(h, R_SCRATCH, 0xCAFE);
	wr32(h, 0x10, 0xC0100000);
	CU_ASSERT_EQUAL(rd32(h, 0x10), 0xC0100000);
	CU_ASSERT_EQUAL(hx_mmio_read(h, 0xC0100000, 4), 0xCAFE);
	CU_ASSERT_EQUAL(hx_mmio_read(h, BAR0_FW, 4), 0xFFFFFFFF);
	hx_mmio_write(h, BAR0_FW, 0x1, 4); /* goes nowhere */
	CU_ASSERT_EQUAL(hx_mmio_read(h, 0xC0100000, 4), 0xCAFE);
	/* I/O BAR */
	wr32(h, 0x14, 0xD000);
	CU_ASSERT_EQUAL(rd32(h, 0x14), 0xD001);
	CU_ASSERT_EQUAL(hx_inl(h, 0xD000), 0xCAFE);
	CU_ASSERT_EQUAL(hx_inl(h, BAR1_FW), 0xFFFFFFFF);
	/* 64-bit BAR above 4 GiB */
	hx_mmio_write(h, BAR2_FW + 8, 0x77, 4);
	wr32(h, 0x1C, 0x1);
	wr32(h, 0x18, 0x00200000);
	CU_ASSERT_EQUAL(rd32(h, 0x18), 0x0020000C);
	CU_ASSERT_EQUAL(hx_mmio_read(h, 0x100200008ull, 4), 0x77);
	CU_ASSERT_EQUAL(hx_mmio_read(h, BAR2_FW + 8, 4), 0xFFFFFFFF);
	hx_free(h);
}

static void test_command_decode(void)
{
	struct hx *h = bus_new();

	bar0_wr(h, R_SCRATCH, 0x1234);
	wr16(h, MODVM_PCI_COMMAND, MODVM_PCI_COMMAND_IO);
	CU_ASSERT_EQUAL(bar0_rd(h, R_SCRATCH), 0xFFFFFFFF);
	bar0_wr(h, R_SCRATCH, 0x9999);   /* dropped */
	CU_ASSERT_EQUAL(hx_inl(h, BAR1_FW), 0x1234);
	wr16(h, MODVM_PCI_COMMAND, MODVM_PCI_COMMAND_MEMORY);
	CU_ASSERT_EQUAL(hx_inl(h, BAR1_FW), 0xFFFFFFFF);
	CU_ASSERT_EQUAL(bar0_rd(h, R_SCRATCH), 0x1234);
	CU_ASSERT_EQUAL(hx_mmio_read(h, BAR2_FW, 1), 0);  /* BAR2 decodes too */
	wr16(h, MODVM_PCI_COMMAND, 0);
	CU_ASSERT_EQUAL(hx_mmio_read(h, BAR2_FW, 1), 0xFF);
	/* BAR programmed while decode is off takes effect at enable */
	wr32(h, 0x10, 0xC0300000);
	CU_ASSERT_EQUAL(hx_mmio_read(h, 0xC0300000, 4), 0xFFFFFFFF);
	wr16(h, MODVM_PCI_COMMAND, MODVM_PCI_COMMAND_MEMORY);
	CU_ASSERT_EQUAL(hx_mmio_read(h, 0xC0300000, 4), 0x1234);
	hx_free(h);
}

static void test_bar_conflicts(void)
{
	struct hx *h = bus_new();
	uint32_t ram = 0x5A5A5A5A, back = 0;

	CU_ASSERT_EQUAL_FATAL(hx_add(h, "test-pci-dev", "dev2", "slot=4", NULL), 0);
	hx_mem_write(h, 0x100000, &ram, 4);
	bar0_wr(h, R_SCRATCH, 1);
	cfg_wr(h, 4, 0x10, 0xC0500000, 4);
	hx_mmio_write(h, 0xC0500000, 2, 4);
	/* onto guest RAM: refused, RAM untouched */
	wr32(h, 0x10, 0x00100000);
	hx_mem_read(h, 0x100000, &back, 4);
	CU_ASSERT_EQUAL(back, ram);
	/* onto the other device's BAR: not mapped, the owner keeps it */
	wr32(h, 0x10, 0xC0500000);
	CU_ASSERT_EQUAL(hx_mmio_read(h, 0xC0500000, 4), 2);
	/* BAR address 0 means unplaced */
	wr32(h, 0x10, 0);
	CU_ASSERT_EQUAL(hx_mmio_read(h, 0xC0500000, 4), 2);
	/* an I/O BAR decodes 16 bits: its upper half is hardwired to 0 */
	wr32(h, 0x14, 0x0001FFE0);
	CU_ASSERT_EQUAL(rd32(h, 0x14), 0xFFE1);
	CU_ASSERT_EQUAL(hx_inl(h, 0xFFE0), 1);
	/* a free place maps it again */
	wr32(h, 0x10, 0xC0600000);
	CU_ASSERT_EQUAL(hx_mmio_read(h, 0xC0600000, 4), 1);
	CU_ASSERT_EQUAL(hx_mmio_read(h, 0xC0500000, 4), 2);
	hx_free(h);
}

/* ---- capabilities and device-owned config space -------------------------- */

static void test_capability_walk(void)
{
	struct hx *h = bus_new();
	unsigned ids[8], offs[8], n = 0;
	unsigned p = cfg_rd(h, SLOT, MODVM_PCI_CAPABILITY_LIST, 1);

	while (p && n < 8) {
		offs[n] = p;
		ids[n++] = cfg_rd(h, SLOT, p, 1);
		p = cfg_rd(h, SLOT, p + 1, 1);
	}
	CU_ASSERT_EQUAL_FATAL(n, 3);
	CU_ASSERT_EQUAL(ids[0], MODVM_PCI_CAP_ID_MSI);
	CU_ASSERT_EQUAL(offs[0], MSI_CAP);
	CU_ASSERT_EQUAL(ids[1], MODVM_PCI_CAP_ID_MSIX);
	CU_ASSERT_EQUAL(offs[1], MSIX_CAP);
	CU_ASSERT_EQUAL(ids[2], MODVM_PCI_CAP_ID_VNDR);
	CU_ASSERT_EQUAL(offs[2], VNDR_CAP);
	/* MSI: 4 vectors capable, 64-bit, per-vector masking */
	CU_ASSERT_EQUAL(cfg_rd(h, SLOT, MSI_CAP + 2, 2), 0x0184);
	/* MSI-X: 8 entries, table in BAR2 at 0x8000, PBA at 0x4000 */
	CU_ASSERT_EQUAL(cfg_rd(h, SLOT, MSIX_CAP + 2, 2), 0x0007);
	CU_ASSERT_EQUAL(rd32(h, MSIX_CAP + 4), TABLE | 2);
	CU_ASSERT_EQUAL(rd32(h, MSIX_CAP + 8), PBA | 2);
	/* vendor capability body as the device registered it */
	CU_ASSERT_EQUAL(rd32(h, VNDR_CAP) >> 16, 0x5406);  /* cap_len 6, 'T' */
	CU_ASSERT_EQUAL(rd32(h, VNDR_CAP + 4), 'P');       /* 'P', knob 0 */
	hx_free(h);
}

static void test_no_caps_no_bars(void)
{
	struct hx *h = bus_with("no-bars=true");
	struct hx *h2 = hx_new(0);

	for (unsigned i = 0; i < 6; i++) {
		wr32(h, 0x10 + 4 * i, 0xFFFFFFFF);
		CU_ASSERT_EQUAL(rd32(h, 0x10 + 4 * i), 0);
	}
	CU_ASSERT_EQUAL(rd32(h, MODVM_PCI_COMMAND) & 0xFFFF, 0);
	hx_free(h);
	CU_ASSERT_EQUAL_FATAL(hx_add(h2, "pci-host", "pci", NULL), 0);
	CU_ASSERT_EQUAL_FATAL(hx_add(h2, "test-pci-dev", "dev", "slot=3", "no-bars=true",
				     "msi-vectors=0", "vendor-cap=false", "pin=none", NULL), 0);
	CU_ASSERT_EQUAL(rd32(h2, MODVM_PCI_COMMAND) >> 16, 0);   /* no cap list */
	CU_ASSERT_EQUAL(cfg_rd(h2, SLOT, MODVM_PCI_CAPABILITY_LIST, 1), 0);
	CU_ASSERT_EQUAL(cfg_rd(h2, SLOT, MODVM_PCI_INTERRUPT_PIN, 1), 0);
	CU_ASSERT_EQUAL(cfg_rd(h2, SLOT, MODVM_PCI_INTERRUPT_LINE, 1), 0);
	CU_ASSERT_EQUAL(rd32(h2, 0x40), 0);
	hx_free(h2);
}

static void test_device_config_hooks(void)
{
	struct hx *h = bus_new();

	/* the writable knob in the vendor capability, via the device hook */
	cfg_wr(h, SLOT, VNDR_CAP + 5, 0xA5, 1);
	CU_ASSERT_EQUAL(cfg_rd(h, SLOT, VNDR_CAP + 5, 1), 0xA5);
	CU_ASSERT_EQUAL(rd32(h, VNDR_CAP + 4), 0xA550);
	/* dword writes cannot rewrite ID, next or the read-only body */
	wr32(h, VNDR_CAP, 0x11223344);
	CU_ASSERT_EQUAL(rd32(h, VNDR_CAP), 0x54060009);
	wr32(h, VNDR_CAP + 4, 0x00003C00);
	CU_ASSERT_EQUAL(rd32(h, VNDR_CAP + 4), 0x3C50);
	/* device register in free space */
	wr32(h, 0xF0, 0xDEADBEEF);
	CU_ASSERT_EQUAL(rd32(h, 0xF0), 0xDEADBEEF);
	CU_ASSERT_EQUAL(cfg_rd(h, SLOT, 0xF2, 2), 0xDEAD);
	/* other free space reads 0 and drops writes */
	wr32(h, 0xE0, 0xFFFFFFFF);
	CU_ASSERT_EQUAL(rd32(h, 0xE0), 0);
	hx_free(h);
}

/* ---- hostile config accesses ------------------------------------------------ */

static void test_read_only_fields(void)
{
	struct hx *h = bus_new();
	uint32_t before[64];

	for (unsigned r = 0; r < 256; r += 4)
		before[r / 4] = rd32(h, r);
	wr32(h, MODVM_PCI_VENDOR_ID, 0);
	wr32(h, MODVM_PCI_REVISION_ID, 0);
	cfg_wr(h, SLOT, MODVM_PCI_HEADER_TYPE, 0x80, 1);
	cfg_wr(h, SLOT, MODVM_PCI_CAPABILITY_LIST, 0x80, 1);
	cfg_wr(h, SLOT, MODVM_PCI_INTERRUPT_PIN, 4, 1);
	wr32(h, MODVM_PCI_SUBSYSTEM_VENDOR_ID, 0);
	wr32(h, 0x38, 0xFFFFFFFF);
	cfg_wr(h, SLOT, MSI_CAP, 0x11, 1);       /* capability ID */
	cfg_wr(h, SLOT, MSIX_CAP + 1, 0x00, 1);  /* next pointer */
	wr32(h, MSIX_CAP + 4, 0);                /* table offset/BIR */
	for (unsigned r = 0; r < 256; r += 4)
		if (r != MODVM_PCI_COMMAND)
			CU_ASSERT_EQUAL(rd32(h, r), before[r / 4]);
	/* command: only the implemented bits; status: nothing to set */
	wr32(h, MODVM_PCI_COMMAND, 0xFFFFFFFF);
	CU_ASSERT_EQUAL(rd32(h, MODVM_PCI_COMMAND), 0x00100547);
	/* Interrupt Line is plain storage */
	cfg_wr(h, SLOT, MODVM_PCI_INTERRUPT_LINE, 0x0B, 1);
	CU_ASSERT_EQUAL(cfg_rd(h, SLOT, MODVM_PCI_INTERRUPT_LINE, 1), 0x0B);
	hx_free(h);
}

static void test_unaligned_config_access(void)
{
	struct hx *h = bus_new();

	/* inside one dword: byte enables 1-2 */
	hx_outl(h, CFG_ADDR, ca(0, SLOT, 0, 0));
	CU_ASSERT_EQUAL(hx_inw(h, 0xCFD), 0x636d);
	CU_ASSERT_EQUAL(hx_inb(h, 0xCFF), 0x70);
	/* crossing the dword: nothing answers, nothing is written */
	CU_ASSERT_EQUAL(hx_inl(h, 0xCFE), 0xFFFFFFFF);
	CU_ASSERT_EQUAL(hx_inw(h, 0xCFF), 0xFFFF);
	hx_outl(h, CFG_ADDR, ca(0, SLOT, 0, MODVM_PCI_INTERRUPT_LINE));
	hx_outl(h, 0xCFE, 0x00000000);
	hx_outl(h, 0xCFD, 0x00000000);
	CU_ASSERT_EQUAL(cfg_rd(h, SLOT, MODVM_PCI_INTERRUPT_LINE, 1), GSI);
	/* 4-byte access at 0xCF9 is not the reset register */
	hx_outl(h, RST_CNT, 0xFFFFFFFF);
	CU_ASSERT_EQUAL(hx_machine_request(h), 0);
	CU_ASSERT_EQUAL(hx_inl(h, RST_CNT), 0xFFFFFFFF);
	hx_free(h);
}

static void test_register_errors(void)
{
	struct hx *h = hx_new(0);
	char name[16];

	CU_ASSERT_EQUAL_FATAL(hx_add(h, "pci-host", "pci", NULL), 0);
	CU_ASSERT_EQUAL(hx_add(h, "pci-host", "pci2", NULL), -1);
	CU_ASSERT_EQUAL(hx_add(h, "test-pci-dev", "a", "msi-vectors=3", NULL), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(h), "MSI: 3 vectors"));
	CU_ASSERT_EQUAL(hx_add(h, "test-pci-dev", "b", "msix-vectors=4096", NULL), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(h), "above 2048"));
	CU_ASSERT_EQUAL(hx_add(h, "test-pci-dev", "t1", "msix-pba=0x8000", NULL), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(h), "MSI-X table and PBA overlap in BAR2"));
	CU_ASSERT_EQUAL(hx_add(h, "test-pci-dev", "t2", "msix-table=0x8004", NULL), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(h), "not 8-byte aligned"));
	CU_ASSERT_EQUAL(hx_add(h, "test-pci-dev", "t3", "msix-table=0xFF88", NULL), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(h), "does not fit in BAR2"));
	CU_ASSERT_EQUAL(hx_add(h, "test-pci-dev", "t4", "msix-pba=0x10000", NULL), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(h), "MSI-X PBA"));
	CU_ASSERT_EQUAL(hx_add(h, "test-pci-dev", "t5", "no-bars=true", "msix-vectors=0",
			       "msi-vectors=64", NULL), -1);
	CU_ASSERT_EQUAL(hx_add(h, "test-pci-dev", "c", "slot=0", NULL), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(h), "slot 0 is taken by pci-host[pci]"));
	/* failed registrations left nothing behind */
	for (unsigned s = 1; s < 32; s++)
		CU_ASSERT_EQUAL(cfg_rd(h, s, 0, 4), 0xFFFFFFFF);
	/* fill every slot, then one more */
	for (unsigned i = 1; i < 32; i++) {
		snprintf(name, sizeof(name), "d%u", i);
		CU_ASSERT_EQUAL(hx_add(h, "test-pci-dev", name, "msix-vectors=2048", NULL), 0);
	}
	CU_ASSERT_EQUAL(cfg_rd(h, 31, 0, 4), 0x70636d76);
	CU_ASSERT_EQUAL(hx_add(h, "test-pci-dev", "extra", NULL), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(h), "no free slot"));
	hx_free(h);
}

/* ---- interrupts ------------------------------------------------------------ */

static void test_intx(void)
{
	struct hx *h = bus_new();

	bar0_wr(h, R_IRQ, 1);
	CU_ASSERT_EQUAL(hx_irq_level(h, GSI), 1);
	CU_ASSERT_TRUE(rd32(h, MODVM_PCI_COMMAND) >> 16 & MODVM_PCI_STATUS_INTERRUPT);
	wr16(h, MODVM_PCI_COMMAND, 0x0003 | MODVM_PCI_COMMAND_INTX_DISABLE);
	CU_ASSERT_EQUAL(hx_irq_level(h, GSI), 0);
	CU_ASSERT_TRUE(rd32(h, MODVM_PCI_COMMAND) >> 16 & MODVM_PCI_STATUS_INTERRUPT);
	wr16(h, MODVM_PCI_COMMAND, 0x0003);
	CU_ASSERT_EQUAL(hx_irq_level(h, GSI), 1);
	CU_ASSERT_EQUAL(hx_irq_raises(h, GSI), 2);
	bar0_wr(h, R_IRQ, 0);
	CU_ASSERT_EQUAL(hx_irq_level(h, GSI), 0);
	CU_ASSERT_FALSE(rd32(h, MODVM_PCI_COMMAND) >> 16 & MODVM_PCI_STATUS_INTERRUPT);
	hx_free(h);
}

static void test_intx_swizzle_and_sharing(void)
{
	struct hx *h = bus_new();

	/* slot 2 INTB shares GSI 19 with slot 3 INTA; slot 7 INTD -> 16+(7+3)%8 */
	CU_ASSERT_EQUAL_FATAL(hx_add(h, "test-pci-dev", "b", "slot=2", "pin=b", NULL), 0);
	CU_ASSERT_EQUAL_FATAL(hx_add(h, "test-pci-dev", "d", "slot=7", "pin=d", NULL), 0);
	CU_ASSERT_EQUAL(MODVM_PCI_INTX_GSI(7, MODVM_PCI_PIN_INTD), 18);
	CU_ASSERT_EQUAL(cfg_rd(h, 2, MODVM_PCI_INTERRUPT_LINE, 1), GSI);
	CU_ASSERT_EQUAL(cfg_rd(h, 7, MODVM_PCI_INTERRUPT_LINE, 1), 18);
	CU_ASSERT_EQUAL(cfg_rd(h, 7, MODVM_PCI_INTERRUPT_PIN, 1), 4);
	uint32_t b0 = cfg_rd(h, 2, 0x10, 4), d0 = cfg_rd(h, 7, 0x10, 4);
	hx_mmio_write(h, d0 + R_IRQ, 1, 4);
	CU_ASSERT_EQUAL(hx_irq_level(h, 18), 1);
	CU_ASSERT_EQUAL(hx_irq_level(h, GSI), 0);
	bar0_wr(h, R_IRQ, 1);
	hx_mmio_write(h, b0 + R_IRQ, 1, 4);
	bar0_wr(h, R_IRQ, 0);
	CU_ASSERT_EQUAL(hx_irq_level(h, GSI), 1);  /* slot 2 still asserts */
	hx_mmio_write(h, b0 + R_IRQ, 0, 4);
	CU_ASSERT_EQUAL(hx_irq_level(h, GSI), 0);
	CU_ASSERT_EQUAL(hx_irq_raises(h, GSI), 1);
	hx_free(h);
}

static void msi_program(struct hx *h, uint32_t addr, uint16_t data, uint16_t flags)
{
	wr32(h, MSI_CAP + MODVM_PCI_MSI_ADDRESS_LO, addr);
	wr32(h, MSI_CAP + MODVM_PCI_MSI_ADDRESS_HI, 0);
	wr16(h, MSI_CAP + MODVM_PCI_MSI_DATA_64, data);
	wr16(h, MSI_CAP + MODVM_PCI_MSI_FLAGS, flags);
}

static void test_msi(void)
{
	struct hx *h = bus_new();
	uint64_t addr;
	uint32_t data;

	wr16(h, MODVM_PCI_COMMAND, 0x0003 | MODVM_PCI_COMMAND_MASTER);
	bar0_wr(h, R_MSI, 0);              /* MSI off: the device must use INTx */
	CU_ASSERT_EQUAL(bar0_rd(h, R_MSI), 0);
	CU_ASSERT_EQUAL(hx_msi_count(h), 0);
	/* 4 vectors enabled (MME = 2) */
	msi_program(h, 0xFEE01000, 0x4041, MODVM_PCI_MSI_FLAGS_ENABLE | 2 << 4);
	CU_ASSERT_EQUAL(cfg_rd(h, SLOT, MSI_CAP + 2, 2), 0x01A5);
	bar0_wr(h, R_MSI, 2);
	CU_ASSERT_EQUAL(bar0_rd(h, R_MSI), 1);
	CU_ASSERT_EQUAL(hx_msi_count(h), 1);
	hx_msi_last(h, &addr, &data);
	CU_ASSERT_EQUAL(addr, 0xFEE01000);
	CU_ASSERT_EQUAL(data, 0x4042);
	/* one vector enabled: every vector aliases to it */
	wr16(h, MSI_CAP + 2, MODVM_PCI_MSI_FLAGS_ENABLE);
	bar0_wr(h, R_MSI, 3);
	hx_msi_last(h, &addr, &data);
	CU_ASSERT_EQUAL(data, 0x4041);
	/* a vector the device does not have */
	bar0_wr(h, R_MSI, 4);
	CU_ASSERT_EQUAL(bar0_rd(h, R_MSI), 0);
	CU_ASSERT_EQUAL(hx_msi_count(h), 2);
	/* MME above what the function requests is held to it */
	wr16(h, MSI_CAP + 2, MODVM_PCI_MSI_FLAGS_ENABLE | 7 << 4);
	CU_ASSERT_EQUAL(cfg_rd(h, SLOT, MSI_CAP + 2, 2) & MODVM_PCI_MSI_FLAGS_QSIZE, 2 << 4);
	/* MSI on: INTx stays low */
	bar0_wr(h, R_IRQ, 1);
	CU_ASSERT_EQUAL(hx_irq_level(h, GSI), 0);
	wr16(h, MSI_CAP + 2, 0);
	CU_ASSERT_EQUAL(hx_irq_level(h, GSI), 1);
	hx_free(h);
}

static void test_msi_mask_and_bus_master(void)
{
	struct hx *h = bus_new();
	uint64_t addr;
	uint32_t data;

	wr16(h, MODVM_PCI_COMMAND, 0x0003 | MODVM_PCI_COMMAND_MASTER);
	msi_program(h, 0xFEE00000, 0x30, MODVM_PCI_MSI_FLAGS_ENABLE | 2 << 4);
	wr32(h, MSI_CAP + MODVM_PCI_MSI_MASK_64, 0xFFFFFFFF);
	CU_ASSERT_EQUAL(rd32(h, MSI_CAP + MODVM_PCI_MSI_MASK_64), 0xF); /* 4 vectors */
	bar0_wr(h, R_MSI, 1);
	CU_ASSERT_EQUAL(bar0_rd(h, R_MSI), 1);
	CU_ASSERT_EQUAL(hx_msi_count(h), 0);
	CU_ASSERT_EQUAL(rd32(h, MSI_CAP + MODVM_PCI_MSI_PENDING_64), 0x2);
	wr32(h, MSI_CAP + MODVM_PCI_MSI_PENDING_64, 0);      /* read-only */
	CU_ASSERT_EQUAL(rd32(h, MSI_CAP + MODVM_PCI_MSI_PENDING_64), 0x2);
	wr32(h, MSI_CAP + MODVM_PCI_MSI_MASK_64, 0xD);       /* unmask 1 */
	CU_ASSERT_EQUAL(hx_msi_count(h), 1);
	hx_msi_last(h, &addr, &data);
	CU_ASSERT_EQUAL(data, 0x31);
	CU_ASSERT_EQUAL(rd32(h, MSI_CAP + MODVM_PCI_MSI_PENDING_64), 0);
	/* Bus Master off: an MSI is a memory write, so it is not sent */
	wr32(h, MSI_CAP + MODVM_PCI_MSI_MASK_64, 0);
	wr16(h, MODVM_PCI_COMMAND, 0x0003);
	bar0_wr(h, R_MSI, 0);
	CU_ASSERT_EQUAL(bar0_rd(h, R_MSI), 1);
	CU_ASSERT_EQUAL(hx_msi_count(h), 1);
	CU_ASSERT_EQUAL(rd32(h, MSI_CAP + MODVM_PCI_MSI_PENDING_64), 0);
	wr16(h, MODVM_PCI_COMMAND, 0x0003 | MODVM_PCI_COMMAND_MASTER);
	bar0_wr(h, R_MSI, 0);
	CU_ASSERT_EQUAL(hx_msi_count(h), 2);
	hx_free(h);
}

static void test_msix(void)
{
	struct hx *h = bus_new();
	uint64_t addr;
	uint32_t data;

	wr16(h, MODVM_PCI_COMMAND, 0x0003 | MODVM_PCI_COMMAND_MASTER);
	/* entries start masked */
	CU_ASSERT_EQUAL(hx_mmio_read(h, BAR2_FW + TABLE + 16 * 3 + 12, 4), 1);
	msix_entry(h, 3, 0xFEE02000, 0x51, 0);
	CU_ASSERT_EQUAL(hx_mmio_read(h, BAR2_FW + TABLE + 16 * 3, 8), 0xFEE02000);
	CU_ASSERT_EQUAL(hx_mmio_read(h, BAR2_FW + TABLE + 16 * 3 + 8, 8), 0x51);
	bar0_wr(h, R_MSI, 3);                      /* MSI-X not enabled yet */
	CU_ASSERT_EQUAL(bar0_rd(h, R_MSI), 0);
	wr16(h, MSIX_CAP + 2, MODVM_PCI_MSIX_FLAGS_ENABLE);
	CU_ASSERT_EQUAL(cfg_rd(h, SLOT, MSIX_CAP + 2, 2), 0x8007);
	bar0_wr(h, R_MSI, 3);
	CU_ASSERT_EQUAL(bar0_rd(h, R_MSI), 1);
	CU_ASSERT_EQUAL(hx_msi_count(h), 1);
	hx_msi_last(h, &addr, &data);
	CU_ASSERT_EQUAL(addr, 0xFEE02000);
	CU_ASSERT_EQUAL(data, 0x51);
	/* a masked entry: PBA bit, then delivery on unmask */
	msix_entry(h, 5, 0xFEE03000, 0x65, 1);
	bar0_wr(h, R_MSI, 5);
	CU_ASSERT_EQUAL(hx_msi_count(h), 1);
	CU_ASSERT_EQUAL(hx_mmio_read(h, BAR2_FW + PBA, 8), 1u << 5);
	hx_mmio_write(h, BAR2_FW + TABLE + 16 * 5 + 12, 0, 4);
	CU_ASSERT_EQUAL(hx_msi_count(h), 2);
	hx_msi_last(h, &addr, &data);
	CU_ASSERT_EQUAL(addr, 0xFEE03000);
	CU_ASSERT_EQUAL(data, 0x65);
	CU_ASSERT_EQUAL(hx_mmio_read(h, BAR2_FW + PBA, 8), 0);
	/* function mask holds every vector */
	wr16(h, MSIX_CAP + 2, MODVM_PCI_MSIX_FLAGS_ENABLE | MODVM_PCI_MSIX_FLAGS_MASKALL);
	bar0_wr(h, R_MSI, 3);
	CU_ASSERT_EQUAL(hx_msi_count(h), 2);
	CU_ASSERT_EQUAL(hx_mmio_read(h, BAR2_FW + PBA, 4), 1u << 3);
	wr16(h, MSIX_CAP + 2, MODVM_PCI_MSIX_FLAGS_ENABLE);
	CU_ASSERT_EQUAL(hx_msi_count(h), 3);
	/* MSI-X on: INTx stays low; the rest of BAR2 still reaches the device */
	bar0_wr(h, R_IRQ, 1);
	CU_ASSERT_EQUAL(hx_irq_level(h, GSI), 0);
	hx_mmio_write(h, BAR2_FW + 0x20, 0xAB, 1);
	CU_ASSERT_EQUAL(hx_mmio_read(h, BAR2_FW + 0x20, 1), 0xAB);
	hx_free(h);
}

static void test_msix_hostile(void)
{
	struct hx *h = bus_new();
	uint64_t e1 = BAR2_FW + TABLE + 16;

	wr16(h, MODVM_PCI_COMMAND, 0x0003 | MODVM_PCI_COMMAND_MASTER);
	wr16(h, MSIX_CAP + 2, MODVM_PCI_MSIX_FLAGS_ENABLE);
	msix_entry(h, 1, 0xFEE00000, 0x41, 0);
	/* vector beyond the table: refused, nothing sent */
	bar0_wr(h, R_MSI, 8);
	CU_ASSERT_EQUAL(bar0_rd(h, R_MSI), 0);
	bar0_wr(h, R_MSI, 0xFFFFFFFF);
	CU_ASSERT_EQUAL(bar0_rd(h, R_MSI), 0);
	CU_ASSERT_EQUAL(hx_msi_count(h), 0);
	/* byte, word and misaligned writes to the table are dropped */
	hx_mmio_write(h, e1 + 8, 0xFF, 1);
	hx_mmio_write(h, e1 + 8, 0xFFFF, 2);
	hx_mmio_write(h, e1 + 6, 0xFFFFFFFF, 4);
	hx_mmio_write(h, e1 + 4, 0xFFFFFFFFFFFFFFFFull, 8);
	CU_ASSERT_EQUAL(hx_mmio_read(h, e1 + 8, 4), 0x41);
	CU_ASSERT_EQUAL(hx_mmio_read(h, e1 + 4, 4), 0);
	/* small reads inside one qword work; crossing one reads 0 */
	CU_ASSERT_EQUAL(hx_mmio_read(h, e1 + 8, 1), 0x41);
	CU_ASSERT_EQUAL(hx_mmio_read(h, e1 + 6, 4), 0);
	/* reserved Vector Control bits read 0 */
	hx_mmio_write(h, e1 + 12, 0xFFFFFFFE, 4);
	CU_ASSERT_EQUAL(hx_mmio_read(h, e1 + 12, 4), 0);
	/* the PBA is read-only */
	hx_mmio_write(h, BAR2_FW + PBA, 0xFF, 8);
	CU_ASSERT_EQUAL(hx_mmio_read(h, BAR2_FW + PBA, 8), 0);
	/* just past the table is the device's (it reads 0 there) */
	hx_mmio_write(h, BAR2_FW + TABLE + 16 * 8, 0x1234, 4);
	CU_ASSERT_EQUAL(hx_mmio_read(h, BAR2_FW + TABLE + 16 * 8, 4), 0);
	bar0_wr(h, R_MSI, 1);
	CU_ASSERT_EQUAL(hx_msi_count(h), 1);
	hx_free(h);
}

/* ---- DMA ---------------------------------------------------------------------- */

static void test_dma_needs_bus_master(void)
{
	struct hx *h = bus_new();
	uint8_t src[16], dst[16] = { 0 };

	for (unsigned i = 0; i < sizeof(src); i++)
		src[i] = (uint8_t)(0xA0 + i);
	hx_mem_write(h, 0x2000, src, sizeof(src));
	bar0_wr(h, R_DMA_LO, 0x2000);
	bar0_wr(h, R_DMA_HI, 0);
	bar0_wr(h, R_DMA_LEN, sizeof(src));
	bar0_wr(h, R_DMA_CMD, 1);
	CU_ASSERT_EQUAL(bar0_rd(h, R_DMA_ST), 1);            /* refused */
	CU_ASSERT_EQUAL(bar0_rd(h, R_BUF + 0) & 0xFF, 0);
	wr16(h, MODVM_PCI_COMMAND, 0x0003 | MODVM_PCI_COMMAND_MASTER);
	bar0_wr(h, R_DMA_CMD, 1);
	CU_ASSERT_EQUAL(bar0_rd(h, R_DMA_ST), 0);
	CU_ASSERT_EQUAL(bar0_rd(h, R_BUF + 5) & 0xFF, 0xA5);
	bar0_wr(h, R_DMA_LO, 0x3000);
	bar0_wr(h, R_DMA_CMD, 2);
	CU_ASSERT_EQUAL(bar0_rd(h, R_DMA_ST), 0);
	hx_mem_read(h, 0x3000, dst, sizeof(dst));
	CU_ASSERT_EQUAL(memcmp(src, dst, sizeof(src)), 0);
	/* outside RAM, or Bus Master cleared again */
	bar0_wr(h, R_DMA_LO, 0xFFFFFFF8);
	bar0_wr(h, R_DMA_CMD, 2);
	CU_ASSERT_EQUAL(bar0_rd(h, R_DMA_ST), 1);
	bar0_wr(h, R_DMA_LO, 0x3000);
	wr16(h, MODVM_PCI_COMMAND, 0x0003);
	memset(dst, 0x11, sizeof(dst));
	hx_mem_write(h, 0x3000, dst, sizeof(dst));
	bar0_wr(h, R_DMA_CMD, 2);
	CU_ASSERT_EQUAL(bar0_rd(h, R_DMA_ST), 1);
	hx_mem_read(h, 0x3000, dst, sizeof(dst));
	CU_ASSERT_EQUAL(dst[0], 0x11);
	hx_free(h);
}

/* ---- reset ---------------------------------------------------------------------- */

static void test_reset_register(void)
{
	struct hx *h = bus_new();

	hx_outb(h, RST_CNT, 0x02);                  /* SYS_RST alone: armed */
	CU_ASSERT_EQUAL(hx_machine_request(h), 0);
	CU_ASSERT_EQUAL(hx_inb(h, RST_CNT), 0x02);
	hx_outb(h, RST_CNT, 0x06);                  /* RST_CPU: reset now */
	CU_ASSERT_EQUAL(hx_machine_request(h), MODVM_REQUEST_RESET);
	hx_free(h);
}

static void test_platform_reset(void)
{
	struct hx *h = bus_new();

	wr32(h, 0x10, 0xC0700000);
	wr16(h, MODVM_PCI_COMMAND, 0x0007 | MODVM_PCI_COMMAND_INTX_DISABLE);
	wr16(h, MSIX_CAP + 2, MODVM_PCI_MSIX_FLAGS_ENABLE);
	msix_entry(h, 0, 0xFEE00000, 0x22, 0);
	msi_program(h, 0xFEE00000, 0x20, MODVM_PCI_MSI_FLAGS_ENABLE);
	hx_outb(h, RST_CNT, 0x02);
	hx_outl(h, CFG_ADDR, 0x80001800);
	wr16(h, MODVM_PCI_COMMAND, 0x0003);
	bar0_wr(h, R_IRQ, 0);
	wr16(h, MSIX_CAP + 2, 0);
	wr16(h, MSI_CAP + 2, 0);
	hx_mmio_write(h, 0xC0700000 + R_IRQ, 1, 4);
	CU_ASSERT_EQUAL(hx_irq_level(h, GSI), 1);
	hx_reset(h);
	CU_ASSERT_EQUAL(hx_irq_level(h, GSI), 0);
	CU_ASSERT_EQUAL(hx_inl(h, CFG_ADDR), 0);
	CU_ASSERT_EQUAL(hx_inb(h, RST_CNT), 0);
	CU_ASSERT_EQUAL(rd32(h, 0x10), BAR0_FW);
	CU_ASSERT_EQUAL(rd32(h, MODVM_PCI_COMMAND) & 0xFFFF, 0x0003);
	CU_ASSERT_EQUAL(cfg_rd(h, SLOT, MSIX_CAP + 2, 2), 0x0007);
	CU_ASSERT_EQUAL(cfg_rd(h, SLOT, MSI_CAP + 2, 2), 0x0184);
	CU_ASSERT_EQUAL(rd32(h, MSI_CAP + MODVM_PCI_MSI_ADDRESS_LO), 0);
	CU_ASSERT_EQUAL(hx_mmio_read(h, BAR2_FW + TABLE + 12, 4), 1);
	CU_ASSERT_EQUAL(hx_mmio_read(h, BAR2_FW + TABLE, 4), 0);
	CU_ASSERT_EQUAL(hx_mmio_read(h, 0xC0700000, 4), 0xFFFFFFFF);
	CU_ASSERT_EQUAL(bar0_rd(h, R_SCRATCH), 0);
	CU_ASSERT_EQUAL(cfg_rd(h, SLOT, MODVM_PCI_INTERRUPT_LINE, 1), GSI);
	hx_free(h);
}

/* ---- state -------------------------------------------------------------------- */

static void dirty_machine(struct hx *h)
{
	wr16(h, MODVM_PCI_COMMAND, 0x0007);
	bar0_wr(h, R_SCRATCH, 0x600DF00D);
	wr32(h, 0x10, 0xC0200000);
	wr32(h, 0x14, 0xD100);
	wr32(h, 0x1C, 0x2);
	wr32(h, 0x18, 0x00400000);                 /* BAR2 at 0x2_0040_0000 */
	hx_mmio_write(h, 0x200400000ull + 0x40, 0x99, 4);
	wr16(h, MSIX_CAP + 2, MODVM_PCI_MSIX_FLAGS_ENABLE);
	hx_mmio_write(h, 0x200400000ull + TABLE + 16 * 5, 0xFEE05000, 4);
	hx_mmio_write(h, 0x200400000ull + TABLE + 16 * 5 + 8, 0x75, 4);
	hx_mmio_write(h, 0xC0200000 + R_MSI, 5, 4);        /* masked: pending */
	wr32(h, 0xF0, 0x0BADCAFE);
	cfg_wr(h, SLOT, VNDR_CAP + 5, 0x3C, 1);
	cfg_wr(h, SLOT, MODVM_PCI_INTERRUPT_LINE, 0x0A, 1);
	wr16(h, MSIX_CAP + 2, 0);
	hx_mmio_write(h, 0xC0200000 + R_IRQ, 1, 4);        /* INTx asserted */
	wr16(h, MSIX_CAP + 2, MODVM_PCI_MSIX_FLAGS_ENABLE);
	hx_outl(h, CFG_ADDR, ca(0, SLOT, 0, 0x40));
}

static void test_state_round_trip(void)
{
	struct hx *a = bus_new(), *b = bus_new();
	uint64_t addr;
	uint32_t data;
	size_t len;
	void *st;

	dirty_machine(a);
	st = hx_state_save(a, NULL, &len);
	CU_ASSERT_EQUAL_FATAL(hx_state_load(b, NULL, st, len), 0);
	/* the latched CONFIG_ADDRESS came along */
	CU_ASSERT_EQUAL(hx_inl(b, CFG_ADDR), ca(0, SLOT, 0, 0x40));
	/* same config space, byte for byte, in every slot */
	for (unsigned dev = 0; dev < 32; dev++)
		for (unsigned r = 0; r < 256; r += 4)
			if (cfg_rd(a, dev, r, 4) != cfg_rd(b, dev, r, 4)) {
				CU_FAIL("config space differs after load");
				fprintf(stderr, "dev %u reg 0x%x: 0x%08x vs 0x%08x\n", dev, r,
					cfg_rd(a, dev, r, 4), cfg_rd(b, dev, r, 4));
			}
	/* BARs mapped at the saved places, not the ones set up at creation */
	CU_ASSERT_EQUAL(hx_mmio_read(b, 0xC0200000 + R_SCRATCH, 4), 0x600DF00D);
	CU_ASSERT_EQUAL(hx_inl(b, 0xD100 + R_SCRATCH), 0x600DF00D);
	CU_ASSERT_EQUAL(hx_mmio_read(b, 0x200400000ull + 0x40, 4), 0x99);
	CU_ASSERT_EQUAL(hx_mmio_read(b, BAR0_FW, 4), 0xFFFFFFFF);
	CU_ASSERT_EQUAL(hx_inl(b, BAR1_FW), 0xFFFFFFFF);
	CU_ASSERT_EQUAL(hx_mmio_read(b, BAR2_FW + 0x40, 4), 0xFFFFFFFF);
	/* device hooks' state */
	CU_ASSERT_EQUAL(rd32(b, 0xF0), 0x0BADCAFE);
	/* MSI-X: pending vector 5 fires with the saved message on unmask */
	CU_ASSERT_EQUAL(hx_mmio_read(b, 0x200400000ull + PBA, 8), 1u << 5);
	hx_mmio_write(b, 0x200400000ull + TABLE + 16 * 5 + 12, 0, 4);
	CU_ASSERT_EQUAL(hx_msi_count(b), 1);
	hx_msi_last(b, &addr, &data);
	CU_ASSERT_EQUAL(addr, 0xFEE05000);
	CU_ASSERT_EQUAL(data, 0x75);
	/* INTx: the device's level comes back when MSI-X goes off */
	CU_ASSERT_EQUAL(hx_irq_level(b, GSI), 0);
	wr16(b, MSIX_CAP + 2, 0);
	CU_ASSERT_EQUAL(hx_irq_level(b, GSI), 1);
	free(st);
	hx_free(a);
	hx_free(b);
}

static void test_state_mismatch_refused(void)
{
	struct hx *a = bus_new(), *b = bus_with("device-id=0x1111");
	struct hx *c = hx_new(0);
	size_t len;
	void *st;

	dirty_machine(a);
	st = hx_state_save(a, NULL, &len);
	CU_ASSERT_EQUAL(hx_state_load(b, NULL, st, len), -1);
	/* b is unchanged: its BARs are where its own setup put them */
	CU_ASSERT_EQUAL(rd32(b, 0x10), BAR0_FW);
	bar0_wr(b, R_SCRATCH, 7);
	CU_ASSERT_EQUAL(bar0_rd(b, R_SCRATCH), 7);
	CU_ASSERT_EQUAL(hx_mmio_read(b, 0xC0200000, 4), 0xFFFFFFFF);
	/* so does one whose function has another MSI-X table size */
	struct hx *d = bus_with("msix-vectors=16");
	CU_ASSERT_EQUAL(hx_state_load(d, NULL, st, len), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(d), "MSI-X state"));
	CU_ASSERT_EQUAL(hx_mmio_read(d, 0xC0200000, 4), 0xFFFFFFFF);
	hx_free(d);
	/* a machine without the function refuses it too: the host's registers
	 * load, its bus section (slot 3 holds nothing here) does not */
	CU_ASSERT_EQUAL_FATAL(hx_add(c, "pci-host", "pci", NULL), 0);
	CU_ASSERT_EQUAL(hx_state_load(c, "pci", st, len), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(c), "section bus:"));
	CU_ASSERT_EQUAL(cfg_rd(c, SLOT, 0, 4), 0xFFFFFFFF);
	free(st);
	hx_free(a);
	hx_free(b);
	hx_free(c);
}

/* A snapshot is hostile input too: only guest-writable bits are taken. */
static void test_state_crafted(void)
{
	struct hx *h = bus_new();
	modvm_inst *pci;
	const struct modvm_host *host = hx_host(h, "pci", &pci);
	struct modvm_pci_func_state *st = calloc(MODVM_PCI_SLOTS, sizeof(*st));
	uint8_t *c = st[SLOT].config;

	CU_ASSERT_PTR_NOT_NULL_FATAL(host);
	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	host->pci_state_save(pci, st, MODVM_PCI_SLOTS);
	CU_ASSERT_EQUAL(st[0].vendor_id, 0x8086);
	CU_ASSERT_EQUAL(st[5].vendor_id, 0xFFFF);
	CU_ASSERT_EQUAL(st[SLOT].msix_len, 8 * 16 + 8);
	c[MODVM_PCI_HEADER_TYPE] = 0x80;
	c[MODVM_PCI_CAPABILITY_LIST] = 0xFC;
	c[MODVM_PCI_INTERRUPT_PIN] = 9;
	c[0x10] = 0x0F;                          /* BAR0 type bits */
	c[0x10 + 1] = 0x0F;                      /* bits 11:8, below its size */
	c[MSI_CAP + 2] = 0xFF;                   /* MMC and 64-bit are read-only */
	c[MSI_CAP + 3] = 0xFF;
	c[0x3C] = 0x42;                          /* writable: taken */
	memset(st[SLOT].msix, 0xFF, st[SLOT].msix_len);
	st[SLOT].intx = 7;
	CU_ASSERT_EQUAL_FATAL(host->pci_state_load(pci, st, MODVM_PCI_SLOTS), 0);
	CU_ASSERT_EQUAL(cfg_rd(h, SLOT, MODVM_PCI_HEADER_TYPE, 1), 0);
	CU_ASSERT_EQUAL(cfg_rd(h, SLOT, MODVM_PCI_CAPABILITY_LIST, 1), MSI_CAP);
	CU_ASSERT_EQUAL(cfg_rd(h, SLOT, MODVM_PCI_INTERRUPT_PIN, 1), 1);
	CU_ASSERT_EQUAL(rd32(h, 0x10), BAR0_FW);
	/* enable and MME 2 (held to the 4 vectors it has) from the snapshot */
	CU_ASSERT_EQUAL(cfg_rd(h, SLOT, MSI_CAP + 2, 2), 0x01A5);
	CU_ASSERT_EQUAL(cfg_rd(h, SLOT, 0x3C, 1), 0x42);
	/* reserved Vector Control bits and PBA bits of absent vectors dropped */
	CU_ASSERT_EQUAL(hx_mmio_read(h, BAR2_FW + TABLE + 12, 4), 1);
	CU_ASSERT_EQUAL(hx_mmio_read(h, BAR2_FW + PBA, 8), 0xFF);
	CU_ASSERT_EQUAL(hx_irq_level(h, GSI), 0);   /* MSI is enabled */
	free(st);
	hx_free(h);
}

static const struct test_case tests[] = {
	TEST(test_host_bridge_ids),
	TEST(test_absent_functions_read_ones),
	TEST(test_device_header),
	TEST(test_bar_sizing),
	TEST(test_firmware_placement),
	TEST(test_assign_bars_off),
	TEST(test_bar_move),
	TEST(test_command_decode),
	TEST(test_bar_conflicts),
	TEST(test_capability_walk),
	TEST(test_no_caps_no_bars),
	TEST(test_device_config_hooks),
	TEST(test_read_only_fields),
	TEST(test_unaligned_config_access),
	TEST(test_register_errors),
	TEST(test_intx),
	TEST(test_intx_swizzle_and_sharing),
	TEST(test_msi),
	TEST(test_msi_mask_and_bus_master),
	TEST(test_msix),
	TEST(test_msix_hostile),
	TEST(test_dma_needs_bus_master),
	TEST(test_reset_register),
	TEST(test_platform_reset),
	TEST(test_state_round_trip),
	TEST(test_state_mismatch_refused),
	TEST(test_state_crafted),
};

int main(void)
{
	return RUN_TESTS("pci", tests);
}
