/* pic-8259: initialization, masking, priorities and rotation, the cascade,
 * EOI kinds, AEOI, edge and level triggering through the ELCR, spurious
 * IRQ 7 and 15, poll mode, register reads, hostile sequences and a state
 * round trip. The test plays the CPU (INTA) and drives the ISA lines. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include <modvm/modvm.h>
#include "testmain.h"

#define M_CMD 0x20
#define M_DATA 0x21
#define S_CMD 0xA0
#define S_DATA 0xA1
#define ELCR1 0x4D0
#define ELCR2 0x4D1
#define READ_IRR 0x0A
#define READ_ISR 0x0B
#define POLL 0x0C
#define NS_EOI 0x20
#define S_EOI(l) (0x60 | (l))
#define ROT_NS_EOI 0xA0
#define ROT_S_EOI(l) (0xE0 | (l))
#define SET_PRIO(l) (0xC0 | (l))

static struct hx *pic_new(void)
{
	struct hx *h = hx_new(0);

	CU_ASSERT_EQUAL_FATAL(hx_add(h, "pic-8259", "pic", NULL), 0);
	return h;
}

/* Drive an ISA line as a device would. */
static void line(struct hx *h, unsigned l, int level)
{
	hx_irq_set(h, l, level);
}

static void pulse(struct hx *h, unsigned l)
{
	line(h, l, 1);
	line(h, l, 0);
}

/* The usual PC programming: cascade on IR2, 8086 mode, given ICW4. */
static void pic_init(struct hx *h, uint8_t icw4)
{
	hx_outb(h, M_CMD, 0x11);
	hx_outb(h, M_DATA, 0x20);
	hx_outb(h, M_DATA, 0x04);
	hx_outb(h, M_DATA, icw4);
	hx_outb(h, S_CMD, 0x11);
	hx_outb(h, S_DATA, 0x28);
	hx_outb(h, S_DATA, 0x02);
	hx_outb(h, S_DATA, icw4 & ~0x10);
	hx_outb(h, M_DATA, 0x00);
	hx_outb(h, S_DATA, 0x00);
}

static uint8_t reg(struct hx *h, uint16_t cmd, uint8_t ocw3)
{
	hx_outb(h, cmd, ocw3);
	return hx_inb(h, cmd);
}

static void test_power_on_state(void)
{
	struct hx *h = pic_new();

	CU_ASSERT_EQUAL(hx_inb(h, M_DATA), 0xFF);
	CU_ASSERT_EQUAL(hx_inb(h, S_DATA), 0xFF);
	CU_ASSERT_EQUAL(hx_inb(h, M_CMD), 0x00); /* IRR */
	CU_ASSERT_EQUAL(reg(h, M_CMD, READ_ISR), 0x00);
	CU_ASSERT_EQUAL(hx_inb(h, ELCR1), 0x00);
	CU_ASSERT_EQUAL(hx_inb(h, ELCR2), 0x00);
	line(h, 4, 1);
	CU_ASSERT_EQUAL(hx_intr(h), 0); /* masked until programmed */
	CU_ASSERT_EQUAL(reg(h, M_CMD, READ_IRR), 0x10);
	/* a second controller cannot take the INTR pin */
	CU_ASSERT_NOT_EQUAL(hx_add(h, "pic-8259", "pic2", NULL), 0);
	hx_free(h);
}

static void test_init_and_vectors(void)
{
	struct hx *h = pic_new();

	pic_init(h, 0x01);
	CU_ASSERT_EQUAL(hx_inb(h, M_DATA), 0x00); /* ICW1 cleared IMR, OCW1 0 */
	pulse(h, 1);
	CU_ASSERT_EQUAL(hx_intr(h), 1);
	CU_ASSERT_EQUAL(reg(h, M_CMD, READ_IRR), 0x02);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x21);
	CU_ASSERT_EQUAL(hx_intr(h), 0);
	CU_ASSERT_EQUAL(reg(h, M_CMD, READ_ISR), 0x02);
	CU_ASSERT_EQUAL(reg(h, M_CMD, READ_IRR), 0x00);
	hx_outb(h, M_CMD, NS_EOI);
	CU_ASSERT_EQUAL(reg(h, M_CMD, READ_ISR), 0x00);
	/* vector base from ICW2 bits 7-3 only */
	hx_outb(h, M_CMD, 0x11);
	hx_outb(h, M_DATA, 0x47);
	hx_outb(h, M_DATA, 0x04);
	hx_outb(h, M_DATA, 0x01);
	hx_outb(h, M_DATA, 0x00);
	pulse(h, 6);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x46);
	hx_free(h);
}

static void test_single_mode_skips_icw3(void)
{
	struct hx *h = pic_new();

	hx_outb(h, M_CMD, 0x13);  /* SNGL, IC4 */
	hx_outb(h, M_DATA, 0x50); /* ICW2 */
	hx_outb(h, M_DATA, 0x03); /* ICW4 straight away: 8086, AEOI */
	hx_outb(h, M_DATA, 0xFB); /* OCW1: only IR2 */
	CU_ASSERT_EQUAL(hx_inb(h, M_DATA), 0xFB);
	/* IR2 is a plain input in single mode: the slave's INT, no cascade */
	hx_outb(h, S_CMD, 0x11);
	hx_outb(h, S_DATA, 0x28);
	hx_outb(h, S_DATA, 0x02);
	hx_outb(h, S_DATA, 0x01);
	hx_outb(h, S_DATA, 0x00);
	pulse(h, 11);
	CU_ASSERT_EQUAL(hx_intr(h), 1);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x52);
	CU_ASSERT_EQUAL(reg(h, M_CMD, READ_ISR), 0x00); /* AEOI */
	/* ICW1 without IC4 clears the ICW4 functions (AEOI off) */
	hx_outb(h, M_CMD, 0x12);
	hx_outb(h, M_DATA, 0x60);
	hx_outb(h, M_DATA, 0x00); /* OCW1 already */
	CU_ASSERT_EQUAL(hx_inb(h, M_DATA), 0x00);
	pulse(h, 5);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x65);
	CU_ASSERT_EQUAL(reg(h, M_CMD, READ_ISR), 0x20);
	hx_free(h);
}

static void test_masking(void)
{
	struct hx *h = pic_new();

	pic_init(h, 0x01);
	hx_outb(h, M_DATA, 0x08);
	pulse(h, 3);
	CU_ASSERT_EQUAL(hx_intr(h), 0);
	CU_ASSERT_EQUAL(reg(h, M_CMD, READ_IRR), 0x08); /* still requested */
	hx_outb(h, M_DATA, 0x00);
	CU_ASSERT_EQUAL(hx_intr(h), 1);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x23);
	/* masking the cascade input masks every slave line */
	hx_outb(h, M_CMD, NS_EOI);
	hx_outb(h, M_DATA, 0x04);
	pulse(h, 14);
	CU_ASSERT_EQUAL(hx_intr(h), 0);
	hx_outb(h, S_DATA, 0x40); /* slave IMR masks IR6 itself */
	hx_outb(h, M_DATA, 0x00);
	CU_ASSERT_EQUAL(hx_intr(h), 1); /* IR2 was latched on the master */
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x2F); /* slave has nothing: IR15 */
	hx_free(h);
}

static void test_priorities_and_nesting(void)
{
	struct hx *h = pic_new();

	pic_init(h, 0x01);
	pulse(h, 5);
	pulse(h, 3);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x23);
	CU_ASSERT_EQUAL(hx_intr(h), 0); /* 5 waits behind 3 in service */
	pulse(h, 6);
	CU_ASSERT_EQUAL(hx_intr(h), 0);
	pulse(h, 1);
	CU_ASSERT_EQUAL(hx_intr(h), 1); /* higher priority nests */
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x21);
	CU_ASSERT_EQUAL(reg(h, M_CMD, READ_ISR), 0x0A);
	hx_outb(h, M_CMD, NS_EOI); /* clears the highest: 1 */
	CU_ASSERT_EQUAL(reg(h, M_CMD, READ_ISR), 0x08);
	CU_ASSERT_EQUAL(hx_intr(h), 0);
	hx_outb(h, M_CMD, NS_EOI);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x25);
	hx_outb(h, M_CMD, NS_EOI);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x26);
	hx_outb(h, M_CMD, NS_EOI);
	CU_ASSERT_EQUAL(hx_intr(h), 0);
	/* slave lines rank between master IR1 and IR3 */
	pulse(h, 4);
	pulse(h, 12);
	pulse(h, 0);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x20);
	hx_outb(h, M_CMD, NS_EOI);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x2C);
	hx_outb(h, S_CMD, NS_EOI);
	hx_outb(h, M_CMD, NS_EOI);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x24);
	hx_free(h);
}

static void test_cascade(void)
{
	struct hx *h = pic_new();

	pic_init(h, 0x01);
	pulse(h, 10);
	CU_ASSERT_EQUAL(hx_intr(h), 1);
	CU_ASSERT_EQUAL(reg(h, M_CMD, READ_IRR), 0x04);
	CU_ASSERT_EQUAL(reg(h, S_CMD, READ_IRR), 0x04);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x2A);
	CU_ASSERT_EQUAL(reg(h, M_CMD, READ_ISR), 0x04);
	CU_ASSERT_EQUAL(reg(h, S_CMD, READ_ISR), 0x04);
	/* fully nested: while master IR2 is in service, a higher slave
	 * request waits for the master's EOI (Linux EOIs slave, then master) */
	pulse(h, 15);
	pulse(h, 8);
	CU_ASSERT_EQUAL(reg(h, S_CMD, READ_IRR), 0x81);
	CU_ASSERT_EQUAL(hx_intr(h), 0);
	hx_outb(h, S_CMD, NS_EOI); /* 10 */
	hx_outb(h, M_CMD, NS_EOI);
	CU_ASSERT_EQUAL(hx_intr(h), 1);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x28); /* 8 outranks 15 */
	hx_outb(h, S_CMD, NS_EOI);
	CU_ASSERT_EQUAL(hx_intr(h), 0);
	hx_outb(h, M_CMD, NS_EOI);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x2F);
	CU_ASSERT_EQUAL(reg(h, S_CMD, READ_ISR), 0x80); /* a real IR15 */
	/* a slave whose ID is not 2 never answers: the bus floats */
	hx_outb(h, S_CMD, NS_EOI);
	hx_outb(h, M_CMD, NS_EOI);
	hx_outb(h, S_CMD, 0x11);
	hx_outb(h, S_DATA, 0x28);
	hx_outb(h, S_DATA, 0x05);
	hx_outb(h, S_DATA, 0x01);
	hx_outb(h, S_DATA, 0x00);
	pulse(h, 9);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0xFF);
	hx_free(h);
}

static void test_special_fully_nested(void)
{
	struct hx *h = pic_new();

	pic_init(h, 0x01);
	pulse(h, 12);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x2C);
	pulse(h, 9); /* higher on the slave, but master IR2 is in service */
	CU_ASSERT_EQUAL(hx_intr(h), 0);
	hx_free(h);

	h = pic_new();
	pic_init(h, 0x11); /* master in special fully nested mode */
	pulse(h, 12);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x2C);
	pulse(h, 13); /* lower on the slave: the slave itself holds it */
	CU_ASSERT_EQUAL(hx_intr(h), 0);
	pulse(h, 9);
	CU_ASSERT_EQUAL(hx_intr(h), 1);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x29);
	CU_ASSERT_EQUAL(reg(h, S_CMD, READ_ISR), 0x12);
	hx_free(h);
}

static void test_eoi_kinds_and_rotation(void)
{
	struct hx *h = pic_new();

	pic_init(h, 0x01);
	pulse(h, 3);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x23);
	pulse(h, 1);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x21);
	hx_outb(h, M_CMD, S_EOI(3)); /* specific: not the highest */
	CU_ASSERT_EQUAL(reg(h, M_CMD, READ_ISR), 0x02);
	hx_outb(h, M_CMD, S_EOI(5)); /* not in service: nothing */
	CU_ASSERT_EQUAL(reg(h, M_CMD, READ_ISR), 0x02);
	/* rotate on non-specific EOI: IR1 becomes the lowest */
	hx_outb(h, M_CMD, ROT_NS_EOI);
	CU_ASSERT_EQUAL(reg(h, M_CMD, READ_ISR), 0x00);
	pulse(h, 0);
	pulse(h, 1);
	pulse(h, 6);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x26); /* 2..7 then 0, 1 */
	hx_outb(h, M_CMD, NS_EOI);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x20);
	hx_outb(h, M_CMD, NS_EOI);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x21);
	/* rotate on specific EOI */
	hx_outb(h, M_CMD, ROT_S_EOI(1)); /* IR1 lowest again, ISR clear */
	CU_ASSERT_EQUAL(reg(h, M_CMD, READ_ISR), 0x00);
	/* set priority: IR5 lowest, so IR6 highest */
	hx_outb(h, M_CMD, SET_PRIO(5));
	pulse(h, 5);
	pulse(h, 7);
	pulse(h, 0);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x27);
	/* with 7 in service, 0 (next in rank) is blocked */
	CU_ASSERT_EQUAL(hx_intr(h), 0);
	hx_outb(h, M_CMD, NS_EOI);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x20);
	hx_outb(h, M_CMD, NS_EOI);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x25);
	hx_outb(h, M_CMD, 0x40); /* OCW2 no-op */
	CU_ASSERT_EQUAL(reg(h, M_CMD, READ_ISR), 0x20);
	hx_free(h);
}

static void test_auto_eoi(void)
{
	struct hx *h = pic_new();

	pic_init(h, 0x03);
	pulse(h, 4);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x24);
	CU_ASSERT_EQUAL(reg(h, M_CMD, READ_ISR), 0x00);
	pulse(h, 6); /* nothing in service blocks it */
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x26);
	/* rotate in AEOI mode: the acknowledged IR becomes the lowest */
	hx_outb(h, M_CMD, 0x80);
	pulse(h, 4);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x24);
	pulse(h, 3);
	pulse(h, 5);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x25);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x23); /* 5 lowest now: 6,7,0..4 */
	hx_outb(h, M_CMD, 0x00); /* clear rotate in AEOI */
	pulse(h, 1);
	pulse(h, 0);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x20); /* 3 lowest: 4..7, 0, 1 */
	pulse(h, 4); /* no rotation this time: 4 is still the highest */
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x24);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x21);
	hx_free(h);
}

static void test_edge_and_level(void)
{
	struct hx *h = pic_new();

	pic_init(h, 0x01);
	/* edge: a held line interrupts once */
	line(h, 5, 1);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x25);
	hx_outb(h, M_CMD, NS_EOI);
	CU_ASSERT_EQUAL(hx_intr(h), 0);
	line(h, 5, 0);
	/* a pulse shorter than the INTA keeps its latch */
	pulse(h, 5);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x25);
	hx_outb(h, M_CMD, NS_EOI);

	/* ELCR reserved bits stay 0 */
	hx_outb(h, ELCR1, 0xFF);
	hx_outb(h, ELCR2, 0xFF);
	CU_ASSERT_EQUAL(hx_inb(h, ELCR1), 0xF8);
	CU_ASSERT_EQUAL(hx_inb(h, ELCR2), 0xDE);
	CU_ASSERT_EQUAL(hx_inw(h, ELCR1), 0xDEF8);
	hx_outw(h, ELCR1, 0x0420);
	CU_ASSERT_EQUAL(hx_inb(h, ELCR1), 0x20);
	CU_ASSERT_EQUAL(hx_inb(h, ELCR2), 0x04);

	/* level: interrupts again after EOI while held, follows the line */
	line(h, 5, 1);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x25);
	CU_ASSERT_EQUAL(reg(h, M_CMD, READ_IRR), 0x20);
	hx_outb(h, M_CMD, NS_EOI);
	CU_ASSERT_EQUAL(hx_intr(h), 1);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x25);
	line(h, 5, 0);
	CU_ASSERT_EQUAL(reg(h, M_CMD, READ_IRR), 0x00);
	hx_outb(h, M_CMD, NS_EOI);
	CU_ASSERT_EQUAL(hx_intr(h), 0);
	/* a level request already high when ICW1 runs stays requested;
	 * an edge one needs a new rising edge */
	line(h, 5, 1);
	line(h, 6, 1);
	hx_outb(h, M_CMD, 0x11);
	hx_outb(h, M_DATA, 0x20);
	hx_outb(h, M_DATA, 0x04);
	hx_outb(h, M_DATA, 0x01);
	CU_ASSERT_EQUAL(reg(h, M_CMD, READ_IRR), 0x20);
	/* ICW1 LTIM makes every input level triggered */
	hx_outb(h, M_CMD, 0x19);
	hx_outb(h, M_DATA, 0x20);
	hx_outb(h, M_DATA, 0x04);
	hx_outb(h, M_DATA, 0x01);
	CU_ASSERT_EQUAL(reg(h, M_CMD, READ_IRR), 0x60);
	hx_free(h);
}

static void test_spurious_irq7(void)
{
	struct hx *h = pic_new();

	pic_init(h, 0x01);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x27); /* INTA with nothing */
	CU_ASSERT_EQUAL(reg(h, M_CMD, READ_ISR), 0x00);
	hx_outb(h, ELCR1, 0x20);
	line(h, 5, 1);
	CU_ASSERT_EQUAL(hx_intr(h), 1);
	line(h, 5, 0); /* the request went away before INTA */
	CU_ASSERT_EQUAL(hx_intr(h), 0);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x27);
	CU_ASSERT_EQUAL(reg(h, M_CMD, READ_ISR), 0x00);
	/* masked between INTR and INTA: spurious too */
	pulse(h, 3);
	CU_ASSERT_EQUAL(hx_intr(h), 1);
	hx_outb(h, M_DATA, 0x08);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x27);
	CU_ASSERT_EQUAL(reg(h, M_CMD, READ_ISR), 0x00);
	/* a real IR7 does set ISR bit 7 */
	pulse(h, 7);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x27);
	CU_ASSERT_EQUAL(reg(h, M_CMD, READ_ISR), 0x80);
	hx_free(h);
}

static void test_spurious_irq15(void)
{
	struct hx *h = pic_new();

	pic_init(h, 0x01);
	hx_outb(h, ELCR2, 0x08); /* IRQ 11 level */
	line(h, 11, 1);
	CU_ASSERT_EQUAL(hx_intr(h), 1);
	line(h, 11, 0);
	/* the master latched the slave's edge on IR2 */
	CU_ASSERT_EQUAL(hx_intr(h), 1);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x2F);
	CU_ASSERT_EQUAL(reg(h, S_CMD, READ_ISR), 0x00);
	CU_ASSERT_EQUAL(reg(h, M_CMD, READ_ISR), 0x04); /* master needs EOI */
	hx_outb(h, M_CMD, NS_EOI);
	CU_ASSERT_EQUAL(reg(h, M_CMD, READ_ISR), 0x00);
	CU_ASSERT_EQUAL(hx_intr(h), 0);
	hx_free(h);
}

static void test_poll_mode(void)
{
	struct hx *h = pic_new();

	pic_init(h, 0x01);
	hx_outb(h, M_CMD, POLL);
	CU_ASSERT_EQUAL(hx_inb(h, M_CMD), 0x00); /* nothing pending */
	pulse(h, 6);
	pulse(h, 3);
	hx_outb(h, M_CMD, POLL);
	CU_ASSERT_EQUAL(hx_inb(h, M_DATA), 0x83); /* either port */
	CU_ASSERT_EQUAL(reg(h, M_CMD, READ_ISR), 0x08);
	CU_ASSERT_EQUAL(hx_inb(h, M_DATA), 0x00); /* poll is one read only */
	hx_outb(h, M_CMD, NS_EOI);
	/* poll takes precedence over a register read in the same OCW3 */
	hx_outb(h, M_CMD, POLL | READ_IRR);
	CU_ASSERT_EQUAL(hx_inb(h, M_CMD), 0x86);
	CU_ASSERT_EQUAL(hx_inb(h, M_CMD), 0x00); /* then IRR, now empty */
	CU_ASSERT_EQUAL(reg(h, M_CMD, READ_ISR), 0x40);
	hx_outb(h, M_CMD, NS_EOI);
	/* poll the slave after the master says IR2 */
	pulse(h, 13);
	hx_outb(h, M_CMD, POLL);
	CU_ASSERT_EQUAL(hx_inb(h, M_CMD), 0x82);
	hx_outb(h, S_CMD, POLL);
	CU_ASSERT_EQUAL(hx_inb(h, S_CMD), 0x85);
	hx_free(h);
}

static void test_register_reads(void)
{
	struct hx *h = pic_new();

	pic_init(h, 0x01);
	hx_outb(h, M_DATA, 0xA5);
	hx_outb(h, S_DATA, 0x5A);
	CU_ASSERT_EQUAL(hx_inb(h, M_DATA), 0xA5);
	CU_ASSERT_EQUAL(hx_inb(h, S_DATA), 0x5A);
	pulse(h, 1);
	pulse(h, 7);
	/* the read selection persists */
	hx_outb(h, M_CMD, READ_IRR);
	CU_ASSERT_EQUAL(hx_inb(h, M_CMD), 0x82);
	CU_ASSERT_EQUAL(hx_inb(h, M_CMD), 0x82);
	hx_outb(h, M_DATA, 0x00);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x21);
	hx_outb(h, M_CMD, READ_ISR);
	CU_ASSERT_EQUAL(hx_inb(h, M_CMD), 0x02);
	hx_outb(h, M_CMD, 0x08); /* OCW3 without RR keeps the selection */
	CU_ASSERT_EQUAL(hx_inb(h, M_CMD), 0x02);
	/* a 16-bit access reaches both byte registers */
	CU_ASSERT_EQUAL(hx_inw(h, M_CMD), 0x0002);
	hx_outw(h, M_CMD, 0xFF0A); /* OCW3 read IRR, then OCW1 0xFF */
	CU_ASSERT_EQUAL(hx_inb(h, M_DATA), 0xFF);
	CU_ASSERT_EQUAL(hx_inb(h, M_CMD), 0x80);
	CU_ASSERT_EQUAL(hx_inl(h, M_DATA) & 0xFF, 0xFF);
	hx_free(h);
}

static void test_special_mask_mode(void)
{
	struct hx *h = pic_new();

	pic_init(h, 0x01);
	pulse(h, 3);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x23);
	pulse(h, 5);
	CU_ASSERT_EQUAL(hx_intr(h), 0);
	hx_outb(h, M_DATA, 0x08); /* mask the level in service */
	hx_outb(h, M_CMD, 0x68);  /* set special mask mode */
	CU_ASSERT_EQUAL(hx_intr(h), 1);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x25);
	hx_outb(h, M_CMD, S_EOI(5));
	hx_outb(h, M_CMD, 0x48); /* reset special mask mode */
	pulse(h, 6);
	CU_ASSERT_EQUAL(hx_intr(h), 0); /* 3 blocks again */
	hx_outb(h, M_CMD, S_EOI(3));
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x26);
	hx_free(h);
}

static void test_reinit_and_reset(void)
{
	struct hx *h = pic_new();

	pic_init(h, 0x01);
	pulse(h, 4);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x24);
	pulse(h, 6);
	hx_outb(h, M_DATA, 0x40);
	hx_outb(h, M_CMD, READ_ISR);
	hx_outb(h, M_CMD, 0x11);
	CU_ASSERT_EQUAL(hx_inb(h, M_DATA), 0x00); /* IMR cleared */
	CU_ASSERT_EQUAL(hx_inb(h, M_CMD), 0x00);  /* IRR read, cleared */
	hx_outb(h, M_DATA, 0x30);
	hx_outb(h, M_DATA, 0x04);
	hx_outb(h, M_DATA, 0x01);
	CU_ASSERT_EQUAL(reg(h, M_CMD, READ_ISR), 0x00);
	CU_ASSERT_EQUAL(hx_intr(h), 0);
	/* platform reset: back to power-on, INTR low */
	pulse(h, 1);
	CU_ASSERT_EQUAL(hx_intr(h), 1);
	hx_reset(h);
	CU_ASSERT_EQUAL(hx_intr(h), 0);
	CU_ASSERT_EQUAL(hx_inb(h, M_DATA), 0xFF);
	hx_free(h);
}

/* Every port, every width, random lines and INTAs: never a crash, never
 * a vector outside a byte, and the chips still work afterwards. */
static void test_hostile_sequences(void)
{
	static const uint16_t ports[] = { M_CMD, M_DATA, S_CMD, S_DATA, ELCR1, ELCR2 };
	struct hx *h = pic_new();

	srand(8259);
	for (int i = 0; i < 200000; i++) {
		uint16_t port = ports[rand() % 6];
		int v;
		switch (rand() % 8) {
		case 0: hx_outb(h, port, (uint8_t)rand()); break;
		case 1: hx_outw(h, port, (uint16_t)rand()); break;
		case 2: hx_outl(h, port, (uint32_t)rand()); break;
		case 3: (void)hx_inb(h, port); break;
		case 4: (void)hx_inl(h, port); break;
		case 5: line(h, (unsigned)(rand() % 16), rand() & 1); break;
		default:
			v = hx_intr_ack(h);
			CU_ASSERT_FATAL(v >= 0 && v <= 0xFF);
		}
	}
	for (unsigned l = 0; l < 16; l++)
		line(h, l, 0);
	hx_outw(h, ELCR1, 0);
	pic_init(h, 0x01);
	CU_ASSERT_EQUAL(hx_intr(h), 0);
	pulse(h, 9);
	CU_ASSERT_EQUAL(hx_intr_ack(h), 0x29);
	hx_free(h);
}

static void test_state_round_trip(void)
{
	struct hx *a = pic_new(), *b = pic_new();

	pic_init(a, 0x01);
	hx_outb(a, ELCR2, 0x08);
	hx_outb(a, M_CMD, SET_PRIO(2)); /* 3 highest */
	hx_outb(a, M_DATA, 0x40);
	pulse(a, 3);
	CU_ASSERT_EQUAL(hx_intr_ack(a), 0x23);
	pulse(a, 1);
	pulse(a, 12);
	line(a, 11, 1);
	hx_outb(a, S_CMD, READ_ISR);
	CU_ASSERT_EQUAL_FATAL(hx_state_copy(a, b, "pic"), 0);
	CU_ASSERT_EQUAL(hx_intr(b), hx_intr(a));
	CU_ASSERT_EQUAL(hx_intr(b), 0); /* 1 and 2 rank below 3 */
	CU_ASSERT_EQUAL(hx_inb(b, M_DATA), 0x40);
	CU_ASSERT_EQUAL(hx_inw(b, ELCR1), 0x0800);
	CU_ASSERT_EQUAL(hx_inb(b, S_CMD), 0x00); /* ISR selection kept */
	CU_ASSERT_EQUAL(reg(b, M_CMD, READ_IRR), reg(a, M_CMD, READ_IRR));
	CU_ASSERT_EQUAL(reg(b, S_CMD, READ_IRR), 0x18);
	hx_outb(a, M_CMD, NS_EOI);
	hx_outb(b, M_CMD, NS_EOI);
	for (int i = 0; i < 4; i++) {
		int va = hx_intr_ack(a), vb = hx_intr_ack(b);
		CU_ASSERT_EQUAL(va, vb);
		hx_outb(a, S_CMD, NS_EOI);
		hx_outb(b, S_CMD, NS_EOI);
		hx_outb(a, M_CMD, NS_EOI);
		hx_outb(b, M_CMD, NS_EOI);
	}
	/* a half-done init sequence carries over too */
	hx_outb(a, S_CMD, 0x11);
	hx_outb(a, S_DATA, 0x70);
	CU_ASSERT_EQUAL_FATAL(hx_state_copy(a, b, "pic"), 0);
	hx_outb(b, S_DATA, 0x02);
	hx_outb(b, S_DATA, 0x01);
	hx_outb(b, S_DATA, 0x00);
	line(b, 11, 0);
	pulse(b, 14);
	CU_ASSERT_EQUAL(hx_intr_ack(b), 0x76);
	hx_free(a);
	hx_free(b);
}

int main(void)
{
	static const struct test_case tests[] = {
		TEST(test_power_on_state),
		TEST(test_init_and_vectors),
		TEST(test_single_mode_skips_icw3),
		TEST(test_masking),
		TEST(test_priorities_and_nesting),
		TEST(test_cascade),
		TEST(test_special_fully_nested),
		TEST(test_eoi_kinds_and_rotation),
		TEST(test_auto_eoi),
		TEST(test_edge_and_level),
		TEST(test_spurious_irq7),
		TEST(test_spurious_irq15),
		TEST(test_poll_mode),
		TEST(test_register_reads),
		TEST(test_special_mask_mode),
		TEST(test_reinit_and_reset),
		TEST(test_hostile_sequences),
		TEST(test_state_round_trip),
	};
	return RUN_TESTS("pic-8259", tests);
}
