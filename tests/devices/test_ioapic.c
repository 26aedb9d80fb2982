/* ioapic through the harness: ID/version/arbitration registers, the
 * redirection table and its read-only bits, the ISA IRQ 0 -> pin 2 override,
 * MSI address/data of every field, masking, edge and level triggering with
 * remote IRR and the EOI register, hostile register indices and access
 * sizes, reset and state round trips. */
#include <stdlib.h>
#include <string.h>

#include <modvm/pc.h>

#include "harness.h"
#include <modvm/modvm.h>
#include "testmain.h"

#define BASE MODVM_PC_IOAPIC_BASE
#define IOREGSEL (BASE + 0x00)
#define IOWIN (BASE + 0x10)
#define IOEOI (BASE + 0x40)

#define RTE_MASKED (1u << 16)
#define RTE_LEVEL (1u << 15)
#define RTE_REMOTE_IRR (1u << 14)
#define RTE_POLARITY_LOW (1u << 13)
#define RTE_DELIVS (1u << 12)
#define RTE_LOGICAL (1u << 11)

static struct hx *ioapic_machine(const char *prop)
{
	struct hx *h = hx_new(0);

	if (hx_add(h, "ioapic", "ioapic", prop, NULL)) {
		fprintf(stderr, "ioapic: %s\n", hx_error(h));
		abort();
	}
	return h;
}

static uint32_t reg_read(struct hx *h, uint8_t reg)
{
	hx_mmio_write(h, IOREGSEL, reg, 4);
	return (uint32_t)hx_mmio_read(h, IOWIN, 4);
}

static void reg_write(struct hx *h, uint8_t reg, uint32_t v)
{
	hx_mmio_write(h, IOREGSEL, reg, 4);
	hx_mmio_write(h, IOWIN, v, 4);
}

static void rte_write(struct hx *h, unsigned pin, uint32_t lo, uint8_t dest)
{
	reg_write(h, (uint8_t)(0x11 + 2 * pin), (uint32_t)dest << 24);
	reg_write(h, (uint8_t)(0x10 + 2 * pin), lo);
}

static uint32_t rte_lo(struct hx *h, unsigned pin)
{
	return reg_read(h, (uint8_t)(0x10 + 2 * pin));
}

/* The harness plays devices too: drive a platform interrupt line. */
static void line(struct hx *h, unsigned n, int level)
{
	hx_irq_set(h, n, level);
}

static void pulse(struct hx *h, unsigned n)
{
	line(h, n, 1);
	line(h, n, 0);
}

static void check_msi(struct hx *h, unsigned count, uint64_t addr,
		      uint32_t data)
{
	uint64_t a = 0;
	uint32_t d = 0;

	CU_ASSERT_EQUAL(hx_msi_count(h), count);
	hx_msi_last(h, &a, &d);
	CU_ASSERT_EQUAL(a, addr);
	CU_ASSERT_EQUAL(d, data);
}

static void test_id_version_arbitration(void)
{
	struct hx *h = ioapic_machine(NULL);

	CU_ASSERT_EQUAL(reg_read(h, 0x00), 1u << 24); /* default apic-id = 1 */
	CU_ASSERT_EQUAL(reg_read(h, 0x01), 0x00170020u);
	CU_ASSERT_EQUAL(reg_read(h, 0x02), 1u << 24);
	reg_write(h, 0x00, 0xFFFFFFFFu);
	CU_ASSERT_EQUAL(reg_read(h, 0x00), 0x0Fu << 24);
	CU_ASSERT_EQUAL(reg_read(h, 0x02), 0x0Fu << 24);
	reg_write(h, 0x01, 0);
	reg_write(h, 0x02, 0);
	CU_ASSERT_EQUAL(reg_read(h, 0x01), 0x00170020u);
	CU_ASSERT_EQUAL(reg_read(h, 0x02), 0x0Fu << 24);
	/* IOREGSEL reads back */
	hx_mmio_write(h, IOREGSEL, 0x2B, 4);
	CU_ASSERT_EQUAL(hx_mmio_read(h, IOREGSEL, 4), 0x2B);
	hx_free(h);

	h = ioapic_machine("apic-id=7");
	CU_ASSERT_EQUAL(reg_read(h, 0x00), 7u << 24);
	hx_free(h);
	h = hx_new(0);
	CU_ASSERT_EQUAL(hx_add(h, "ioapic", "ioapic", "apic-id=16", NULL), -1);
	hx_free(h);
}

static void test_redirection_table(void)
{
	struct hx *h = ioapic_machine(NULL);

	for (unsigned pin = 0; pin < 24; pin++) {
		CU_ASSERT_EQUAL(rte_lo(h, pin), RTE_MASKED);
		CU_ASSERT_EQUAL(reg_read(h, (uint8_t)(0x11 + 2 * pin)), 0);
	}
	/* every writable bit; delivery status and remote IRR are read-only,
	 * bits 17-31 and 32-55 are reserved */
	reg_write(h, 0x10 + 2 * 5, 0xFFFFFFFFu);
	CU_ASSERT_EQUAL(rte_lo(h, 5), 0x0001AFFFu);
	reg_write(h, 0x11 + 2 * 5, 0xFFFFFFFFu);
	CU_ASSERT_EQUAL(reg_read(h, 0x11 + 2 * 5), 0xFF000000u);
	/* the last entry is there, the one after is not */
	reg_write(h, 0x3E, 0x00010042);
	reg_write(h, 0x3F, 0x12000000);
	CU_ASSERT_EQUAL(reg_read(h, 0x3E), 0x00010042u);
	CU_ASSERT_EQUAL(reg_read(h, 0x3F), 0x12000000u);
	reg_write(h, 0x40, 0x42);
	CU_ASSERT_EQUAL(reg_read(h, 0x40), 0);
	/* neighbours untouched */
	CU_ASSERT_EQUAL(rte_lo(h, 4), RTE_MASKED);
	CU_ASSERT_EQUAL(rte_lo(h, 6), RTE_MASKED);
	hx_free(h);
}

static void test_pit_arrives_on_pin_2(void)
{
	struct hx *h = ioapic_machine(NULL);

	rte_write(h, 2, 0x30, 0);      /* fixed, physical, edge, unmasked */
	rte_write(h, 0, 0x31, 0);      /* pin 0: nothing drives it */
	pulse(h, 0);                   /* ISA IRQ 0: the PIT */
	check_msi(h, 1, 0xFEE00000u, 0x4030);
	pulse(h, 2);                   /* line 2 is the 8259 cascade */
	CU_ASSERT_EQUAL(hx_msi_count(h), 1);
	pulse(h, 0);
	check_msi(h, 2, 0xFEE00000u, 0x4030);
	/* other ISA lines map 1:1 */
	rte_write(h, 4, 0x34, 0);
	pulse(h, 4);
	check_msi(h, 3, 0xFEE00000u, 0x4034);
	/* lines the IOAPIC does not have are ignored */
	pulse(h, 40);
	CU_ASSERT_EQUAL(hx_msi_count(h), 3);
	hx_free(h);
}

static void test_msi_format(void)
{
	struct hx *h = ioapic_machine(NULL);

	/* lowest priority, logical destination 0x0F, edge */
	rte_write(h, 3, 0x41 | 1 << 8 | RTE_LOGICAL, 0x0F);
	pulse(h, 3);
	check_msi(h, 1, 0xFEE0F004u, 0x4141);
	/* NMI, physical 0x12, edge */
	rte_write(h, 7, 0x02 | 4 << 8, 0x12);
	pulse(h, 7);
	check_msi(h, 2, 0xFEE12000u, 0x4402);
	/* ExtINT, broadcast */
	rte_write(h, 1, 7 << 8, 0xFF);
	pulse(h, 1);
	check_msi(h, 3, 0xFEEFF000u, 0x4700);
	/* fixed, level-triggered: trigger bit 15 and assert bit 14 */
	rte_write(h, 16, 0x61 | RTE_LEVEL, 0x01);
	line(h, 16, 1);
	check_msi(h, 4, 0xFEE01000u, 0xC061);
	/* active-low polarity: lines carry assertion, so it still sends */
	rte_write(h, 17, 0x62 | RTE_POLARITY_LOW, 0x00);
	pulse(h, 17);
	check_msi(h, 5, 0xFEE00000u, 0x4062);
	hx_free(h);
}

static void test_masked_pins(void)
{
	struct hx *h = ioapic_machine(NULL);

	/* edges on a masked pin are lost, not held (82093AA 3.2.4) */
	rte_write(h, 4, 0x34 | RTE_MASKED, 0);
	pulse(h, 4);
	CU_ASSERT_EQUAL(hx_msi_count(h), 0);
	rte_write(h, 4, 0x34, 0);
	CU_ASSERT_EQUAL(hx_msi_count(h), 0);
	pulse(h, 4);
	CU_ASSERT_EQUAL(hx_msi_count(h), 1);
	/* a level pin asserted while masked sends when unmasked */
	rte_write(h, 9, 0x49 | RTE_LEVEL | RTE_MASKED, 0);
	line(h, 9, 1);
	CU_ASSERT_EQUAL(hx_msi_count(h), 1);
	CU_ASSERT_EQUAL(rte_lo(h, 9) & RTE_REMOTE_IRR, 0);
	rte_write(h, 9, 0x49 | RTE_LEVEL, 0);
	check_msi(h, 2, 0xFEE00000u, 0xC049);
	CU_ASSERT_EQUAL(rte_lo(h, 9) & RTE_REMOTE_IRR, RTE_REMOTE_IRR);
	/* but not if it dropped before the unmask */
	rte_write(h, 10, 0x4A | RTE_LEVEL | RTE_MASKED, 0);
	line(h, 10, 1);
	line(h, 10, 0);
	rte_write(h, 10, 0x4A | RTE_LEVEL, 0);
	CU_ASSERT_EQUAL(hx_msi_count(h), 2);
	hx_free(h);
}

static void test_edge_needs_rising_edge(void)
{
	struct hx *h = ioapic_machine(NULL);

	rte_write(h, 5, 0x35, 0);
	line(h, 5, 1);
	line(h, 5, 1);
	CU_ASSERT_EQUAL(hx_msi_count(h), 1);
	line(h, 5, 0);
	CU_ASSERT_EQUAL(hx_msi_count(h), 1);
	line(h, 5, 1);
	CU_ASSERT_EQUAL(hx_msi_count(h), 2);
	/* the EOI register does nothing for edge pins */
	hx_mmio_write(h, IOEOI, 0x35, 4);
	CU_ASSERT_EQUAL(hx_msi_count(h), 2);
	CU_ASSERT_EQUAL(rte_lo(h, 5) & RTE_REMOTE_IRR, 0);
	hx_free(h);
}

/* Linux ends level interrupts with the local APIC's EOI broadcast. */
static void test_level_eoi_broadcast(void)
{
	struct hx *h = ioapic_machine(NULL);

	rte_write(h, MODVM_PC_SCI_IRQ, 0x50 | RTE_LEVEL, 0);
	line(h, MODVM_PC_SCI_IRQ, 1);
	check_msi(h, 1, 0xFEE00000u, 0xC050);
	hx_eoi_broadcast(h, 0x51); /* another vector: nothing */
	CU_ASSERT_EQUAL(rte_lo(h, 9) & RTE_REMOTE_IRR, RTE_REMOTE_IRR);
	hx_eoi_broadcast(h, 0x50); /* still asserted: delivered again */
	check_msi(h, 2, 0xFEE00000u, 0xC050);
	line(h, 9, 0);
	hx_eoi_broadcast(h, 0x50);
	CU_ASSERT_EQUAL(rte_lo(h, 9) & RTE_REMOTE_IRR, 0);
	CU_ASSERT_EQUAL(hx_msi_count(h), 2);
	hx_free(h);
}

static void test_level_remote_irr_and_eoi(void)
{
	struct hx *h = ioapic_machine(NULL);

	rte_write(h, MODVM_PC_SCI_IRQ, 0x50 | RTE_LEVEL, 0);
	rte_write(h, 11, 0x51 | RTE_LEVEL, 0);
	line(h, MODVM_PC_SCI_IRQ, 1);
	check_msi(h, 1, 0xFEE00000u, 0xC050);
	CU_ASSERT_EQUAL(rte_lo(h, 9), 0x50 | RTE_LEVEL | RTE_REMOTE_IRR);
	/* held, in service: nothing more */
	line(h, 9, 1);
	CU_ASSERT_EQUAL(hx_msi_count(h), 1);
	/* EOI of another vector leaves it alone */
	hx_mmio_write(h, IOEOI, 0x51, 4);
	CU_ASSERT_EQUAL(hx_msi_count(h), 1);
	CU_ASSERT_EQUAL(rte_lo(h, 9) & RTE_REMOTE_IRR, RTE_REMOTE_IRR);
	/* EOI while the line is still asserted: sent again */
	hx_mmio_write(h, IOEOI, 0x50, 4);
	check_msi(h, 2, 0xFEE00000u, 0xC050);
	CU_ASSERT_EQUAL(rte_lo(h, 9) & RTE_REMOTE_IRR, RTE_REMOTE_IRR);
	/* the line drops, then the EOI: idle */
	line(h, 9, 0);
	hx_mmio_write(h, IOEOI, 0x50, 4);
	CU_ASSERT_EQUAL(hx_msi_count(h), 2);
	CU_ASSERT_EQUAL(rte_lo(h, 9) & RTE_REMOTE_IRR, 0);
	/* remote IRR is read-only */
	line(h, 9, 1);
	CU_ASSERT_EQUAL(hx_msi_count(h), 3);
	reg_write(h, 0x10 + 2 * 9, 0x50 | RTE_LEVEL);
	CU_ASSERT_EQUAL(rte_lo(h, 9) & RTE_REMOTE_IRR, RTE_REMOTE_IRR);
	CU_ASSERT_EQUAL(hx_msi_count(h), 3);
	/* two pins sharing a vector are both released by one EOI */
	rte_write(h, 11, 0x50 | RTE_LEVEL, 0);
	line(h, 11, 1);
	CU_ASSERT_EQUAL(hx_msi_count(h), 4);
	line(h, 9, 0);
	line(h, 11, 0);
	hx_mmio_write(h, IOEOI, 0x50, 1); /* a byte write reaches the vector */
	CU_ASSERT_EQUAL(rte_lo(h, 9) & RTE_REMOTE_IRR, 0);
	CU_ASSERT_EQUAL(rte_lo(h, 11) & RTE_REMOTE_IRR, 0);
	/* switching to edge clears a stale remote IRR */
	line(h, 9, 1);
	CU_ASSERT_EQUAL(rte_lo(h, 9) & RTE_REMOTE_IRR, RTE_REMOTE_IRR);
	reg_write(h, 0x10 + 2 * 9, 0x50);
	CU_ASSERT_EQUAL(rte_lo(h, 9), 0x50);
	hx_free(h);
}

static void test_hostile_accesses(void)
{
	struct hx *h = ioapic_machine(NULL);

	rte_write(h, 0, 0x20, 0x01);
	/* every register index: unknown ones read 0 and ignore writes */
	for (unsigned reg = 0x40; reg < 0x100; reg++) {
		reg_write(h, (uint8_t)reg, 0xFFFFFFFFu);
		CU_ASSERT_EQUAL(reg_read(h, (uint8_t)reg), 0);
	}
	for (unsigned reg = 0x03; reg < 0x10; reg++)
		CU_ASSERT_EQUAL(reg_read(h, (uint8_t)reg), 0);
	/* IOREGSEL keeps 8 bits: 0x110 selects 0x10 */
	hx_mmio_write(h, IOREGSEL, 0x110, 4);
	CU_ASSERT_EQUAL(hx_mmio_read(h, IOREGSEL, 4), 0x10);
	CU_ASSERT_EQUAL(hx_mmio_read(h, IOWIN, 4), 0x20);
	/* byte accesses to IOREGSEL and IOWIN lanes */
	hx_mmio_write(h, IOREGSEL, 0x01, 1);
	CU_ASSERT_EQUAL(hx_mmio_read(h, IOWIN + 2, 1), 0x17);
	CU_ASSERT_EQUAL(hx_mmio_read(h, IOWIN, 2), 0x0020);
	hx_mmio_write(h, IOREGSEL, 0x10, 1);
	hx_mmio_write(h, IOWIN + 2, 0x00, 1); /* clears the mask bit only */
	CU_ASSERT_EQUAL(rte_lo(h, 0), 0x20);
	hx_mmio_write(h, IOWIN, 0x21, 1);
	CU_ASSERT_EQUAL(rte_lo(h, 0), 0x21);
	/* a 64-bit read of IOWIN gives the 32-bit register */
	hx_mmio_write(h, IOREGSEL, 0x11, 4);
	CU_ASSERT_EQUAL(hx_mmio_read(h, IOWIN, 8), 0x01000000u);
	/* holes in the page, the write-only EOI register, the page end */
	CU_ASSERT_EQUAL(hx_mmio_read(h, BASE + 0x20, 4), 0);
	CU_ASSERT_EQUAL(hx_mmio_read(h, IOEOI, 4), 0);
	CU_ASSERT_EQUAL(hx_mmio_read(h, BASE + 0xFFC, 4), 0);
	CU_ASSERT_EQUAL(hx_mmio_read(h, BASE + 0xFFF, 8), 0);
	hx_mmio_write(h, BASE + 0xFFF, ~0ull, 8);
	hx_mmio_write(h, BASE + 0x44, 0x21, 4);
	/* nothing above changed the table or sent anything */
	CU_ASSERT_EQUAL(rte_lo(h, 0), 0x21);
	CU_ASSERT_EQUAL(hx_msi_count(h), 0);
	/* beyond the 4 KiB window nobody answers */
	CU_ASSERT_EQUAL(hx_mmio_read(h, BASE + 0x1000, 4), 0xFFFFFFFFu);
	hx_free(h);
}

static void test_reset(void)
{
	struct hx *h = ioapic_machine("apic-id=3");

	reg_write(h, 0x00, 9u << 24);
	rte_write(h, 9, 0x50 | RTE_LEVEL, 0);
	line(h, 9, 1);
	CU_ASSERT_EQUAL(hx_msi_count(h), 1);
	hx_reset(h);
	CU_ASSERT_EQUAL(reg_read(h, 0x00), 3u << 24);
	for (unsigned pin = 0; pin < 24; pin++)
		CU_ASSERT_EQUAL(rte_lo(h, pin), RTE_MASKED);
	hx_free(h);
}

static void test_state_round_trip(void)
{
	struct hx *a = ioapic_machine(NULL), *b = ioapic_machine(NULL);
	size_t len;
	void *st;

	reg_write(a, 0x00, 5u << 24);
	rte_write(a, 2, 0x30, 0x00);
	rte_write(a, 9, 0x50 | RTE_LEVEL, 0x02);
	rte_write(a, 20, 0x70 | RTE_LEVEL | RTE_MASKED | RTE_LOGICAL, 0x80);
	line(a, 9, 1);
	line(a, 20, 1);
	hx_mmio_write(a, IOREGSEL, 0x13, 4);

	st = hx_state_save(a, "ioapic", &len);
	CU_ASSERT_EQUAL_FATAL(hx_state_load(b, "ioapic", st, len), 0);
	free(st);
	CU_ASSERT_EQUAL(hx_msi_count(b), 0); /* loading sends nothing */
	CU_ASSERT_EQUAL(hx_mmio_read(b, IOREGSEL, 4), 0x13);
	for (unsigned reg = 0; reg < 0x40; reg++)
		CU_ASSERT_EQUAL(reg_read(a, (uint8_t)reg), reg_read(b, (uint8_t)reg));
	/* behaviour continues: the EOI re-sends the held level line, the
	 * masked asserted pin sends on unmask */
	hx_mmio_write(b, IOEOI, 0x50, 4);
	check_msi(b, 1, 0xFEE02000u, 0xC050);
	rte_write(b, 20, 0x70 | RTE_LEVEL | RTE_LOGICAL, 0x80);
	check_msi(b, 2, 0xFEE80004u, 0xC070);
	hx_free(a);
	hx_free(b);
}

int main(void)
{
	static const struct test_case tests[] = {
		TEST(test_id_version_arbitration),
		TEST(test_redirection_table),
		TEST(test_pit_arrives_on_pin_2),
		TEST(test_msi_format),
		TEST(test_masked_pins),
		TEST(test_edge_needs_rising_edge),
		TEST(test_level_remote_irr_and_eoi),
		TEST(test_level_eoi_broadcast),
		TEST(test_hostile_accesses),
		TEST(test_reset),
		TEST(test_state_round_trip),
	};

	return RUN_TESTS("ioapic", tests);
}
