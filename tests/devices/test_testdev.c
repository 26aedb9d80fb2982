/* isa-debug-exit and pc-testdev: the exit port's status arithmetic, widths,
 * properties and precedence over other requests; the test device's scratch
 * register at every width and offset, interrupt lines, page flush, MMIO
 * scratch memory with its bounds, reset and state. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include <modvm/modvm.h>
#include "testmain.h"

#define IOMEM 0xff000000ull
#define IOMEM_LEN 0x10000u

static void test_exit_status(void)
{
	struct hx *h = hx_new(0);

	CU_ASSERT_EQUAL_FATAL(hx_add(h, "isa-debug-exit", "dx", NULL), 0);
	CU_ASSERT_EQUAL(hx_machine_request(h), 0);
	hx_outl(h, 0xf4, 0); /* kvm-unit-tests' exit(0): status 1 = PASS */
	CU_ASSERT_EQUAL(hx_machine_request(h), MODVM_REQUEST_EXIT);
	CU_ASSERT_EQUAL(hx_exit_status(h), 1);
	hx_clear_machine_request(h);
	hx_outl(h, 0xf4, 1); /* a failure: 3 */
	CU_ASSERT_EQUAL(hx_exit_status(h), 3);
	hx_clear_machine_request(h);
	hx_outl(h, 0xf4, 77 >> 1); /* report_summary's "all skipped": 77 */
	CU_ASSERT_EQUAL(hx_exit_status(h), 77);
	hx_clear_machine_request(h);
	hx_outb(h, 0xf7, 0x80); /* any port of the range, any width */
	CU_ASSERT_EQUAL(hx_exit_status(h), 0x101);
	hx_clear_machine_request(h);
	hx_outl(h, 0xf4, 0xffffffffu); /* (v << 1) | 1 in 32 bits */
	CU_ASSERT_EQUAL((unsigned)hx_exit_status(h), 0xffffffffu);
	hx_clear_machine_request(h);
	CU_ASSERT_EQUAL(hx_inl(h, 0xf4), 0);
	CU_ASSERT_EQUAL(hx_machine_request(h), 0);
	hx_outb(h, 0xf8, 5); /* past the 4 ports: not the device */
	CU_ASSERT_EQUAL(hx_machine_request(h), 0);
	hx_free(h);
}

/* The first exit (or power-off) wins; a reset request does not undo it. */
static void test_exit_is_final(void)
{
	struct hx *h = hx_new(0);
	const struct modvm_host *host;
	modvm_inst *sys;

	CU_ASSERT_EQUAL_FATAL(hx_add(h, "isa-debug-exit", "dx", NULL), 0);
	CU_ASSERT_EQUAL_FATAL(hx_add(h, "sysctl-92", "sys", NULL), 0);
	host = hx_host(h, "sys", &sys);
	CU_ASSERT_PTR_NOT_NULL_FATAL(host);
	hx_outl(h, 0xf4, 20);
	hx_outb(h, 0x92, 0x03); /* fast reset */
	hx_outl(h, 0xf4, 30);
	CU_ASSERT_EQUAL(hx_machine_request(h), MODVM_REQUEST_EXIT);
	CU_ASSERT_EQUAL(hx_exit_status(h), 41);
	hx_clear_machine_request(h);
	host->machine_request(sys, MODVM_REQUEST_POWEROFF); /* another device's */
	hx_outl(h, 0xf4, 20);
	CU_ASSERT_EQUAL(hx_machine_request(h), MODVM_REQUEST_POWEROFF);
	CU_ASSERT_EQUAL(hx_exit_status(h), 0);
	hx_free(h);
}

static void test_exit_properties(void)
{
	struct hx *h = hx_new(0);

	CU_ASSERT_EQUAL_FATAL(hx_add(h, "isa-debug-exit", "dx", hx_prop("port", "0x501"),
				     hx_prop("size", "2"), NULL), 0);
	hx_outb(h, 0x503, 1);
	CU_ASSERT_EQUAL(hx_machine_request(h), 0);
	hx_outw(h, 0x502, 0x10);
	CU_ASSERT_EQUAL(hx_exit_status(h), 0x21);
	CU_ASSERT_EQUAL(hx_add(h, "isa-debug-exit", "dx2", hx_prop("port", "0xffff"),
			       hx_prop("size", "2"), NULL), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(h), "0xffff"));
	CU_ASSERT_EQUAL(hx_add(h, "isa-debug-exit", "dx3", hx_prop("port", "0x502"), NULL), -1);
	CU_ASSERT_EQUAL(hx_add(h, "isa-debug-exit", "dx4", hx_prop("size", "0"), NULL), -1);
	hx_free(h);
}

static struct hx *testdev_new(void)
{
	struct hx *h = hx_new(0);

	CU_ASSERT_EQUAL_FATAL(hx_add(h, "pc-testdev", "td", NULL), 0);
	return h;
}

static void test_scratch_register(void)
{
	struct hx *h = testdev_new();

	CU_ASSERT_EQUAL(hx_inl(h, 0xe0), 0);
	hx_outl(h, 0xe0, 0x11223344);
	CU_ASSERT_EQUAL(hx_inl(h, 0xe0), 0x11223344);
	CU_ASSERT_EQUAL(hx_inw(h, 0xe2), 0x1122);
	CU_ASSERT_EQUAL(hx_inb(h, 0xe1), 0x33);
	hx_outb(h, 0xe3, 0xaa);
	CU_ASSERT_EQUAL(hx_inl(h, 0xe0), 0xaa223344);
	hx_outw(h, 0xe1, 0xbbcc);
	CU_ASSERT_EQUAL(hx_inl(h, 0xe0), 0xaabbcc44);
	/* running off the register: the part inside only */
	hx_outl(h, 0xe2, 0x55667788);
	CU_ASSERT_EQUAL(hx_inl(h, 0xe0), 0x7788cc44);
	CU_ASSERT_EQUAL(hx_inl(h, 0xe3), 0xffffff77);
	/* 0xe8: the same register, split into bytes */
	CU_ASSERT_EQUAL(hx_inl(h, 0xe8), 0x7788cc44);
	hx_outw(h, 0xea, 0x0102);
	CU_ASSERT_EQUAL(hx_inl(h, 0xe0), 0x0102cc44);
	hx_reset(h);
	CU_ASSERT_EQUAL(hx_inl(h, 0xe0), 0);
	hx_free(h);
}

static void test_irq_lines(void)
{
	struct hx *h = testdev_new();

	hx_outb(h, 0x200e, 1);
	CU_ASSERT_EQUAL(hx_irq_level(h, 14), 1);
	hx_outb(h, 0x200e, 0);
	CU_ASSERT_EQUAL(hx_irq_level(h, 14), 0);
	CU_ASSERT_EQUAL(hx_irq_raises(h, 14), 1);
	hx_outb(h, 0x2017, 0x80); /* any non-zero value is high */
	CU_ASSERT_EQUAL(hx_irq_level(h, 23), 1);
	hx_outb(h, 0x200c, 1);
	hx_outl(h, 0x200b, 1); /* byte by byte: line 11 high, 12-14 low */
	CU_ASSERT_EQUAL(hx_irq_level(h, 11), 1);
	CU_ASSERT_EQUAL(hx_irq_level(h, 12), 0);
	CU_ASSERT_EQUAL(hx_irq_raises(h, 12), 1);
	hx_outw(h, 0x2000, 0x0100); /* line 0 low, line 1 high */
	CU_ASSERT_EQUAL(hx_irq_level(h, 0), 0);
	CU_ASSERT_EQUAL(hx_irq_level(h, 1), 1);
	hx_outl(h, 0x2016, 0x01010101u); /* lines 22, 23; the rest dropped */
	CU_ASSERT_EQUAL(hx_irq_level(h, 22), 1);
	CU_ASSERT_EQUAL(hx_irq_level(h, 23), 1);
	CU_ASSERT_EQUAL(hx_irq_level(h, 24), 0);
	CU_ASSERT_EQUAL(hx_inb(h, 0x200b), 0); /* reads give 0, as in QEMU */
	CU_ASSERT_EQUAL(hx_inl(h, 0x2000), 0);
	CU_ASSERT_EQUAL(hx_inl(h, 0x2016), 0xffff0000u);
	hx_outb(h, 0x2018, 1); /* past line 23: not the device */
	CU_ASSERT_EQUAL(hx_irq_level(h, 24), 0);
	hx_reset(h); /* lines go low */
	CU_ASSERT_EQUAL(hx_irq_level(h, 23), 0);
	hx_free(h);
}

static void test_iomem(void)
{
	struct hx *h = testdev_new();

	CU_ASSERT_EQUAL(hx_mmio_read(h, IOMEM, 8), 0);
	hx_mmio_write(h, IOMEM + 8, 0x0102030405060708ull, 8);
	CU_ASSERT_EQUAL(hx_mmio_read(h, IOMEM + 8, 8), 0x0102030405060708ull);
	CU_ASSERT_EQUAL(hx_mmio_read(h, IOMEM + 9, 2), 0x0607);
	CU_ASSERT_EQUAL(hx_mmio_read(h, IOMEM + 15, 1), 0x01);
	hx_mmio_write(h, IOMEM + IOMEM_LEN - 4, 0xdeadbeef, 4);
	CU_ASSERT_EQUAL(hx_mmio_read(h, IOMEM + IOMEM_LEN - 4, 4), 0xdeadbeef);
	/* an access crossing the end: all ones, nothing written */
	hx_mmio_write(h, IOMEM + IOMEM_LEN - 2, 0x1111111111111111ull, 8);
	CU_ASSERT_EQUAL(hx_mmio_read(h, IOMEM + IOMEM_LEN - 2, 8), ~0ull);
	CU_ASSERT_EQUAL(hx_mmio_read(h, IOMEM + IOMEM_LEN - 4, 4), 0xdeadbeef);
	CU_ASSERT_EQUAL(hx_mmio_read(h, IOMEM + IOMEM_LEN, 4), 0xffffffffu);
	hx_reset(h);
	CU_ASSERT_EQUAL(hx_mmio_read(h, IOMEM + 8, 8), 0);
	hx_free(h);
}

static void test_iomem_properties(void)
{
	struct hx *h = hx_new(0);

	CU_ASSERT_EQUAL_FATAL(hx_add(h, "pc-testdev", "td", hx_prop("iomem", "false"), NULL), 0);
	hx_mmio_write(h, IOMEM, 5, 4);
	CU_ASSERT_EQUAL(hx_mmio_read(h, IOMEM, 4), 0xffffffffu); /* unclaimed */
	hx_free(h);
	h = hx_new(0);
	CU_ASSERT_EQUAL_FATAL(hx_add(h, "pc-testdev", "td", hx_prop("iomem-base", "0xe0000000"),
				     NULL), 0);
	hx_mmio_write(h, 0xe0000000, 5, 4);
	CU_ASSERT_EQUAL(hx_mmio_read(h, 0xe0000000, 4), 5);
	hx_free(h);
	h = hx_new(0);
	CU_ASSERT_EQUAL(hx_add(h, "pc-testdev", "td", hx_prop("iomem-base", "0xe0000100"),
			       NULL), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(h), "aligned"));
	hx_free(h);
}

/* Flush page: any value is accepted; RAM is unchanged (the guest must not
 * see anything but, in an engine, a refetch). */
static void test_flush_page(void)
{
	struct hx *h = testdev_new();
	uint8_t page[16] = "flush page test", back[16];

	hx_mem_write(h, 0x5000, page, sizeof(page));
	hx_outl(h, 0xe4, 0x5123);
	hx_outl(h, 0xe4, 0xfffff000); /* not RAM */
	hx_outb(h, 0xe4, 0x50);        /* not a 4-byte write */
	hx_outl(h, 0xe5, 0x5000);
	hx_mem_read(h, 0x5000, back, sizeof(back));
	CU_ASSERT_EQUAL(memcmp(page, back, sizeof(page)), 0);
	CU_ASSERT_EQUAL(hx_inl(h, 0xe4), 0xffffffffu);
	CU_ASSERT_EQUAL(hx_machine_request(h), 0);
	hx_free(h);
}

static void test_testdev_state(void)
{
	struct hx *a = testdev_new(), *b = testdev_new();

	hx_outl(a, 0xe0, 0xcafef00d);
	hx_outb(a, 0x2005, 1);
	hx_mmio_write(a, IOMEM + 0x100, 0x77, 1);
	CU_ASSERT_EQUAL(hx_state_copy(a, b, "td"), 0);
	CU_ASSERT_EQUAL(hx_inl(b, 0xe0), 0xcafef00d);
	CU_ASSERT_EQUAL(hx_mmio_read(b, IOMEM + 0x100, 1), 0x77);
	CU_ASSERT_EQUAL(hx_irq_level(b, 5), 1); /* driven again by post_load */
	hx_free(a);
	hx_free(b);
}

int main(void)
{
	static const struct test_case tests[] = {
		TEST(test_exit_status),
		TEST(test_exit_is_final),
		TEST(test_exit_properties),
		TEST(test_scratch_register),
		TEST(test_irq_lines),
		TEST(test_iomem),
		TEST(test_iomem_properties),
		TEST(test_flush_page),
		TEST(test_testdev_state),
	};
	return RUN_TESTS("testdev", tests);
}
