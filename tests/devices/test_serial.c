/* serial-16550 register semantics through the harness: divisor latch,
 * IER/IIR/LCR/LSR/MSR, FIFO trigger levels and the character timeout in
 * virtual time, loop mode, interrupt priorities and the OUT2 gate, overrun
 * and break, hostile access patterns, and a state round trip. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "harness.h"
#include <modvm/modvm.h>
#include "testmain.h"

#define BASE 0x3f8
#define IRQ 4
#define RBR (BASE + 0)
#define THR (BASE + 0)
#define DLL (BASE + 0)
#define IER (BASE + 1)
#define DLM (BASE + 1)
#define IIR (BASE + 2)
#define FCR (BASE + 2)
#define LCR (BASE + 3)
#define MCR (BASE + 4)
#define LSR (BASE + 5)
#define MSR (BASE + 6)
#define SCR (BASE + 7)

/* One character at divisor 1, 8N1: 10 bits of 1/115200 s, in ns. */
#define CHAR_NS_115200 86805ull

static struct hx *uart_new(void)
{
	struct hx *h = hx_new(0);

	CU_ASSERT_FATAL(hx_add(h, "serial-16550", "com1", "port=0x3f8", "irq=4",
			       "backend=null", NULL) == 0);
	return h;
}

/* 115200 8N1, as Linux sets it up. */
static void set_115200_8n1(struct hx *h)
{
	hx_outb(h, LCR, 0x80);
	hx_outb(h, DLL, 1);
	hx_outb(h, DLM, 0);
	hx_outb(h, LCR, 0x03);
}

static void test_reset_values(void)
{
	struct hx *h = uart_new();

	CU_ASSERT_EQUAL(hx_inb(h, IER), 0x00);
	CU_ASSERT_EQUAL(hx_inb(h, IIR), 0x01);
	CU_ASSERT_EQUAL(hx_inb(h, LCR), 0x00);
	CU_ASSERT_EQUAL(hx_inb(h, MCR), 0x00);
	CU_ASSERT_EQUAL(hx_inb(h, LSR), 0x60);
	/* null backend has no modem lines: a ready peer (CTS, DSR, DCD) */
	CU_ASSERT_EQUAL(hx_inb(h, MSR), 0xb0);
	hx_outb(h, SCR, 0x5a);
	CU_ASSERT_EQUAL(hx_inb(h, SCR), 0x5a);
	CU_ASSERT_EQUAL(hx_irq_level(h, IRQ), 0);
	/* an unclaimed neighbour port stays unclaimed */
	CU_ASSERT_EQUAL(hx_inb(h, BASE + 8), 0xff);
	hx_free(h);
}

static void test_dlab_divisor(void)
{
	struct hx *h = uart_new();

	hx_outb(h, IER, 0x05);
	hx_outb(h, LCR, 0x83);
	hx_outb(h, DLL, 0x34);
	hx_outb(h, DLM, 0x12);
	CU_ASSERT_EQUAL(hx_inb(h, DLL), 0x34);
	CU_ASSERT_EQUAL(hx_inb(h, DLM), 0x12);
	CU_ASSERT_EQUAL(hx_inb(h, LCR), 0x83);
	/* the latch did not disturb IER, nor does DLAB=0 show the latch */
	hx_outb(h, LCR, 0x03);
	CU_ASSERT_EQUAL(hx_inb(h, IER), 0x05);
	hx_outb(h, IER, 0xff);
	CU_ASSERT_EQUAL(hx_inb(h, IER), 0x0f); /* bits 4-7 are always 0 */
	hx_outb(h, LCR, 0x80);
	CU_ASSERT_EQUAL(hx_inb(h, DLL), 0x34);
	CU_ASSERT_EQUAL(hx_inb(h, DLM), 0x12);
	/* a reset keeps the divisor and SCR (datasheet table III) */
	hx_outb(h, SCR, 0x77);
	hx_reset(h);
	CU_ASSERT_EQUAL(hx_inb(h, LCR), 0x00);
	CU_ASSERT_EQUAL(hx_inb(h, IER), 0x00);
	hx_outb(h, LCR, 0x80);
	CU_ASSERT_EQUAL(hx_inb(h, DLL), 0x34);
	CU_ASSERT_EQUAL(hx_inb(h, SCR), 0x77);
	hx_free(h);
}

static void test_thre_interrupt(void)
{
	struct hx *h = uart_new();

	set_115200_8n1(h);
	hx_outb(h, MCR, 0x08); /* OUT2 */
	hx_outb(h, IER, 0x02);
	CU_ASSERT_EQUAL(hx_irq_level(h, IRQ), 1);
	CU_ASSERT_EQUAL(hx_irq_raises(h, IRQ), 1);
	/* reading IIR with THRE the source clears it */
	CU_ASSERT_EQUAL(hx_inb(h, IIR), 0x02);
	CU_ASSERT_EQUAL(hx_irq_level(h, IRQ), 0);
	CU_ASSERT_EQUAL(hx_inb(h, IIR), 0x01);
	/* a write sends at once, THR empties and interrupts again */
	hx_outb(h, THR, 'x');
	CU_ASSERT_EQUAL(hx_inb(h, LSR) & 0x60, 0x60);
	CU_ASSERT_EQUAL(hx_irq_level(h, IRQ), 1);
	CU_ASSERT_EQUAL(hx_irq_raises(h, IRQ), 2);
	/* masking drops the line; unmasking with THR empty raises it */
	hx_outb(h, IER, 0x00);
	CU_ASSERT_EQUAL(hx_irq_level(h, IRQ), 0);
	CU_ASSERT_EQUAL(hx_inb(h, IIR), 0x01);
	hx_outb(h, IER, 0x02);
	CU_ASSERT_EQUAL(hx_irq_level(h, IRQ), 1);
	/* re-writing IER with ETBEI already set does not re-arm it */
	hx_inb(h, IIR);
	hx_outb(h, IER, 0x02);
	CU_ASSERT_EQUAL(hx_irq_level(h, IRQ), 0);
	hx_free(h);
}

static void test_irq_gated_by_out2(void)
{
	struct hx *h = uart_new();

	hx_outb(h, IER, 0x02);
	CU_ASSERT_EQUAL(hx_inb(h, IIR) & 0x0f, 0x02); /* pending... */
	hx_outb(h, IER, 0x00);
	hx_outb(h, IER, 0x02);
	CU_ASSERT_EQUAL(hx_irq_level(h, IRQ), 0);     /* ...but not driven */
	hx_outb(h, MCR, 0x08);
	CU_ASSERT_EQUAL(hx_irq_level(h, IRQ), 1);
	hx_outb(h, MCR, 0x03); /* DTR, RTS without OUT2 */
	CU_ASSERT_EQUAL(hx_irq_level(h, IRQ), 0);
	hx_outb(h, MCR, 0x0b);
	CU_ASSERT_EQUAL(hx_irq_level(h, IRQ), 1);
	/* loop mode forces -OUT2 inactive: the PC's driver is off */
	hx_outb(h, MCR, 0x18);
	CU_ASSERT_EQUAL(hx_irq_level(h, IRQ), 0);
	CU_ASSERT_EQUAL(hx_inb(h, IIR) & 0x0f, 0x02);
	hx_free(h);
}

static void test_loopback_echo(void)
{
	struct hx *h = uart_new();

	set_115200_8n1(h);
	hx_outb(h, MCR, 0x10);
	CU_ASSERT_EQUAL(hx_inb(h, LSR) & 0x01, 0);
	hx_outb(h, THR, 'A');
	CU_ASSERT_EQUAL(hx_inb(h, LSR), 0x61);
	CU_ASSERT_EQUAL(hx_inb(h, RBR), 'A');
	CU_ASSERT_EQUAL(hx_inb(h, LSR), 0x60);
	/* an empty RBR shows the last character again */
	CU_ASSERT_EQUAL(hx_inb(h, RBR), 'A');
	hx_free(h);
}

static void test_loopback_msr(void)
{
	struct hx *h = uart_new();

	/* Linux's probe: loop with no outputs gives MSR 0x00, then
	 * RTS|OUT2 gives CTS|DCD (0x90). */
	hx_outb(h, MCR, 0x10);
	hx_inb(h, MSR);
	CU_ASSERT_EQUAL(hx_inb(h, MSR) & 0xf0, 0x00);
	hx_outb(h, MCR, 0x1a);
	CU_ASSERT_EQUAL(hx_inb(h, MSR), 0x99); /* CTS|DCD, DCTS|DDCD */
	CU_ASSERT_EQUAL(hx_inb(h, MSR), 0x90); /* deltas cleared by read */
	/* DTR->DSR, OUT1->RI: CTS and DCD fall, DSR and RI rise */
	hx_outb(h, MCR, 0x15);
	CU_ASSERT_EQUAL(hx_inb(h, MSR), 0x6b);
	/* RI going off sets TERI (trailing edge), DSR off sets DDSR */
	hx_outb(h, MCR, 0x10);
	CU_ASSERT_EQUAL(hx_inb(h, MSR), 0x06);
	/* leaving loop mode shows the backend's lines again */
	hx_outb(h, MCR, 0x00);
	CU_ASSERT_EQUAL(hx_inb(h, MSR), 0xbb);
	hx_free(h);
}

static void test_modem_status_interrupt(void)
{
	struct hx *h = uart_new();

	hx_outb(h, MCR, 0x10);
	hx_inb(h, MSR);
	hx_outb(h, IER, 0x08);
	CU_ASSERT_EQUAL(hx_inb(h, IIR), 0x01);
	hx_outb(h, MCR, 0x12); /* RTS -> CTS */
	CU_ASSERT_EQUAL(hx_inb(h, IIR), 0x00);
	CU_ASSERT_EQUAL(hx_inb(h, IIR), 0x00); /* IIR read does not clear it */
	CU_ASSERT_EQUAL(hx_inb(h, MSR), 0x11);
	CU_ASSERT_EQUAL(hx_inb(h, IIR), 0x01);
	hx_free(h);
}

/* A pass-through backend reports its input lines through the core. */
static void test_modem_lines_from_backend(void)
{
	struct hx *h = uart_new();

	hx_outb(h, MCR, 0x08);
	hx_outb(h, IER, 0x08);
	CU_ASSERT_EQUAL(hx_inb(h, MSR), 0xb0);
	CU_ASSERT_EQUAL(hx_irq_level(h, IRQ), 0);
	/* carrier lost, ring starts */
	CU_ASSERT_EQUAL_FATAL(hx_chardev_modem(h, "com1", MODVM_MODEM_CTS |
					       MODVM_MODEM_DSR | MODVM_MODEM_RI), 0);
	CU_ASSERT_EQUAL(hx_irq_level(h, IRQ), 1);
	CU_ASSERT_EQUAL(hx_inb(h, IIR), 0x00);
	CU_ASSERT_EQUAL(hx_inb(h, MSR), 0x78); /* CTS DSR RI, DDCD */
	CU_ASSERT_EQUAL(hx_irq_level(h, IRQ), 0);
	/* ring ends: TERI; the same lines again: no change */
	hx_chardev_modem(h, "com1", MODVM_MODEM_CTS | MODVM_MODEM_DSR);
	CU_ASSERT_EQUAL(hx_inb(h, MSR), 0x34);
	hx_chardev_modem(h, "com1", MODVM_MODEM_CTS | MODVM_MODEM_DSR);
	CU_ASSERT_EQUAL(hx_inb(h, MSR), 0x30);
	CU_ASSERT_EQUAL(hx_irq_raises(h, IRQ), 2);
	/* in loop mode the line changes wait until loop mode ends */
	hx_outb(h, MCR, 0x10);
	hx_inb(h, MSR);
	hx_chardev_modem(h, "com1", MODVM_MODEM_DCD);
	CU_ASSERT_EQUAL(hx_inb(h, MSR), 0x00);
	hx_outb(h, MCR, 0x08);
	CU_ASSERT_EQUAL(hx_inb(h, MSR), 0x88);
	hx_free(h);
}

static void test_fifo_trigger_levels(void)
{
	static const struct { uint8_t fcr; int level; } t[] = {
		{ 0x01, 1 }, { 0x41, 4 }, { 0x81, 8 }, { 0xc1, 14 },
	};

	for (size_t i = 0; i < 4; i++) {
		struct hx *h = uart_new();

		set_115200_8n1(h);
		hx_outb(h, FCR, t[i].fcr);
		hx_outb(h, MCR, 0x10);
		hx_outb(h, IER, 0x01);
		CU_ASSERT_EQUAL(hx_inb(h, IIR), 0xc1);
		for (int n = 1; n <= t[i].level; n++) {
			hx_outb(h, THR, (uint8_t)n);
			CU_ASSERT_EQUAL(hx_inb(h, IIR), n < t[i].level ? 0xc1 : 0xc4);
		}
		/* dropping below the level clears it (trigger 1: empty) */
		hx_inb(h, RBR);
		CU_ASSERT_EQUAL(hx_inb(h, IIR), 0xc1);
		hx_free(h);
	}
}

static void test_char_timeout(void)
{
	struct hx *h = uart_new();
	uint64_t four = 4 * CHAR_NS_115200;

	set_115200_8n1(h);
	hx_outb(h, FCR, 0x81); /* trigger 8 */
	hx_outb(h, MCR, 0x10);
	hx_outb(h, IER, 0x01);
	hx_outb(h, THR, 'a');
	hx_clock_step(h, 1000);
	hx_outb(h, THR, 'b');
	hx_outb(h, THR, 'c');
	/* the timer restarts with each character */
	hx_clock_step(h, four - 1);
	CU_ASSERT_EQUAL(hx_inb(h, IIR), 0xc1);
	hx_clock_step(h, 1);
	CU_ASSERT_EQUAL(hx_inb(h, IIR), 0xcc);
	/* a read clears it and restarts the timer */
	CU_ASSERT_EQUAL(hx_inb(h, RBR), 'a');
	CU_ASSERT_EQUAL(hx_inb(h, IIR), 0xc1);
	hx_clock_step(h, four - 1);
	CU_ASSERT_EQUAL(hx_inb(h, IIR), 0xc1);
	hx_clock_step(h, 1);
	CU_ASSERT_EQUAL(hx_inb(h, IIR), 0xcc);
	hx_inb(h, RBR);
	hx_inb(h, RBR);
	/* empty: no timeout ever */
	hx_clock_step(h, 10 * four);
	CU_ASSERT_EQUAL(hx_inb(h, IIR), 0xc1);
	/* the time scales with the divisor and the frame: 9600 7E2 is
	 * 11 bits of 1/9600 s = 1145833 ns a character */
	hx_outb(h, LCR, 0x80);
	hx_outb(h, DLL, 12);
	hx_outb(h, LCR, 0x1e);
	hx_outb(h, THR, 'z');
	hx_clock_step(h, 4 * 1145833 - 10);
	CU_ASSERT_EQUAL(hx_inb(h, IIR), 0xc1);
	hx_clock_step(h, 10);
	CU_ASSERT_EQUAL(hx_inb(h, IIR), 0xcc);
	/* 16450 mode has no timeout */
	hx_outb(h, FCR, 0x00);
	hx_outb(h, THR, 'q');
	CU_ASSERT_EQUAL(hx_inb(h, IIR), 0x04);
	hx_clock_step(h, 100 * 1145833);
	CU_ASSERT_EQUAL(hx_inb(h, IIR), 0x04);
	hx_free(h);
}

static void test_overrun_fifo(void)
{
	struct hx *h = uart_new();

	hx_outb(h, FCR, 0xc7);
	hx_outb(h, MCR, 0x10);
	hx_outb(h, IER, 0x05);
	for (int i = 0; i < 17; i++)
		hx_outb(h, THR, (uint8_t)('a' + i));
	/* the 17th character was lost in the shift register */
	CU_ASSERT_EQUAL(hx_inb(h, IIR), 0xc6);
	CU_ASSERT_EQUAL(hx_inb(h, LSR), 0x63);
	CU_ASSERT_EQUAL(hx_inb(h, LSR), 0x61); /* OE cleared by the read */
	CU_ASSERT_EQUAL(hx_inb(h, IIR), 0xc4);
	for (int i = 0; i < 16; i++)
		CU_ASSERT_EQUAL(hx_inb(h, RBR), 'a' + i);
	CU_ASSERT_EQUAL(hx_inb(h, LSR), 0x60);
	hx_free(h);
}

static void test_overrun_16450(void)
{
	struct hx *h = uart_new();

	hx_outb(h, MCR, 0x10);
	hx_outb(h, THR, 'a');
	hx_outb(h, THR, 'b');
	/* without FIFOs the new character replaces the unread one */
	CU_ASSERT_EQUAL(hx_inb(h, LSR), 0x63);
	CU_ASSERT_EQUAL(hx_inb(h, RBR), 'b');
	CU_ASSERT_EQUAL(hx_inb(h, LSR), 0x60);
	CU_ASSERT_EQUAL(hx_inb(h, IIR), 0x01); /* no FIFO bits */
	hx_free(h);
}

static void test_break_loopback(void)
{
	struct hx *h = uart_new();

	set_115200_8n1(h);
	hx_outb(h, FCR, 0x07);
	hx_outb(h, MCR, 0x10);
	hx_outb(h, THR, 'x');
	hx_outb(h, LCR, 0x43); /* set break */
	hx_outb(h, LCR, 0x43); /* held: still one break character */
	hx_outb(h, LCR, 0x03);
	/* BI/FE belong to the second character: only "error in FIFO" */
	CU_ASSERT_EQUAL(hx_inb(h, LSR), 0xe1);
	CU_ASSERT_EQUAL(hx_inb(h, RBR), 'x');
	CU_ASSERT_EQUAL(hx_inb(h, LSR), 0xf9); /* DR BI FE ERR THRE TEMT */
	CU_ASSERT_EQUAL(hx_inb(h, LSR), 0x61);
	CU_ASSERT_EQUAL(hx_inb(h, RBR), 0x00);
	CU_ASSERT_EQUAL(hx_inb(h, LSR), 0x60);
	/* with ELSI the break raises a line status interrupt */
	hx_outb(h, IER, 0x04);
	hx_outb(h, LCR, 0x43);
	CU_ASSERT_EQUAL(hx_inb(h, IIR), 0xc6);
	hx_inb(h, LSR);
	CU_ASSERT_EQUAL(hx_inb(h, IIR), 0xc1);
	hx_free(h);
}

static void test_interrupt_priorities(void)
{
	struct hx *h = uart_new();

	hx_outb(h, MCR, 0x10);
	hx_inb(h, MSR);
	hx_outb(h, THR, 'a');
	hx_outb(h, THR, 'b');       /* overrun (16450 mode) */
	hx_outb(h, MCR, 0x12);      /* CTS change: modem status */
	hx_outb(h, IER, 0x0f);      /* and THR is empty */
	CU_ASSERT_EQUAL(hx_inb(h, IIR), 0x06);
	hx_inb(h, LSR);
	CU_ASSERT_EQUAL(hx_inb(h, IIR), 0x04);
	hx_inb(h, RBR);
	CU_ASSERT_EQUAL(hx_inb(h, IIR), 0x02);
	CU_ASSERT_EQUAL(hx_inb(h, IIR), 0x00); /* THRE cleared by the read */
	hx_inb(h, MSR);
	CU_ASSERT_EQUAL(hx_inb(h, IIR), 0x01);
	hx_free(h);
}

static void test_fcr_resets(void)
{
	struct hx *h = uart_new();

	hx_outb(h, FCR, 0x01);
	hx_outb(h, MCR, 0x10);
	hx_outb(h, THR, '1');
	hx_outb(h, THR, '2');
	CU_ASSERT_EQUAL(hx_inb(h, LSR) & 1, 1);
	hx_outb(h, FCR, 0x03); /* RCVR FIFO reset */
	CU_ASSERT_EQUAL(hx_inb(h, LSR) & 1, 0);
	/* other bits are only programmed with FCR0 = 1 */
	hx_outb(h, THR, '3');
	hx_outb(h, FCR, 0xc2);
	CU_ASSERT_EQUAL(hx_inb(h, IIR) & 0xc0, 0x00);
	CU_ASSERT_EQUAL(hx_inb(h, LSR) & 1, 0); /* leaving FIFO mode empties */
	hx_outb(h, FCR, 0x01);
	hx_outb(h, IER, 0x01);
	hx_outb(h, THR, '4');
	CU_ASSERT_EQUAL(hx_inb(h, IIR), 0xc4); /* trigger level 1, not 14 */
	hx_free(h);
}

static void test_wide_access(void)
{
	struct hx *h = uart_new();

	hx_outb(h, SCR, 0xab);
	/* MSR and SCR as one word; past the 8 registers reads all ones */
	CU_ASSERT_EQUAL(hx_inw(h, MSR), 0xabb0);
	CU_ASSERT_EQUAL(hx_inl(h, SCR), 0xffffffab);
	hx_outw(h, LCR, 0x0b03); /* LCR = 3, MCR = 0x0b */
	CU_ASSERT_EQUAL(hx_inb(h, LCR), 0x03);
	CU_ASSERT_EQUAL(hx_inb(h, MCR), 0x0b);
	hx_outl(h, SCR, 0x12345678); /* only SCR is ours */
	CU_ASSERT_EQUAL(hx_inb(h, SCR), 0x78);
	hx_free(h);
}

/* A guest that writes anything anywhere must leave a consistent UART. */
static void test_hostile_sequences(void)
{
	struct hx *h = uart_new();
	uint32_t x = 12345;

	for (int i = 0; i < 200000; i++) {
		unsigned reg, op;
		x = x * 1103515245u + 12345u;
		reg = (x >> 8) & 7;
		op = (x >> 12) & 7;
		if (op < 3)
			hx_outb(h, (uint16_t)(BASE + reg), (uint8_t)(x >> 20));
		else if (op < 6)
			hx_inb(h, (uint16_t)(BASE + reg));
		else if (op == 6)
			hx_outl(h, (uint16_t)(BASE + reg), x);
		else
			hx_clock_step(h, (x >> 16) & 0xfffff);
	}
	/* whatever happened, a reset gives the documented state back */
	hx_reset(h);
	CU_ASSERT_EQUAL(hx_inb(h, IIR), 0x01);
	CU_ASSERT_EQUAL(hx_inb(h, LSR) & 0x7f, 0x60);
	CU_ASSERT_EQUAL(hx_irq_level(h, IRQ), 0);
	hx_outb(h, MCR, 0x10);
	hx_outb(h, THR, 'k');
	CU_ASSERT_EQUAL(hx_inb(h, RBR), 'k');
	hx_free(h);
}

/* ---- state round trip ---------------------------------------------------- */

static void test_state_round_trip(void)
{
	struct hx *a = uart_new(), *b = uart_new();
	uint64_t four = 4 * CHAR_NS_115200;
	size_t len;
	void *st;

	set_115200_8n1(a);
	hx_outb(a, FCR, 0x81);
	hx_outb(a, MCR, 0x10);
	hx_inb(a, MSR); /* entering loop mode changed every input */
	hx_outb(a, IER, 0x0d);
	hx_outb(a, SCR, 0x42);
	hx_outb(a, THR, 'p');
	hx_outb(a, THR, 'q');
	hx_outb(a, LCR, 0x43); /* break: a BI character third */
	hx_outb(a, LCR, 0x03);
	hx_clock_step(a, 1000);

	st = hx_state_save(a, "com1", &len);
	/* the fresh machine's clock must be where the saved one was */
	hx_clock_step(b, hx_clock(a));
	/* (every byte used, or the load fails) */
	CU_ASSERT_EQUAL_FATAL(hx_state_load(b, "com1", st, len), 0);

	/* same registers, same FIFO, same pending timeout */
	CU_ASSERT_EQUAL(hx_inb(b, SCR), 0x42);
	CU_ASSERT_EQUAL(hx_inb(b, IER), 0x0d);
	CU_ASSERT_EQUAL(hx_inb(b, MCR), 0x10);
	CU_ASSERT_EQUAL(hx_inb(b, IIR), 0xc1);
	hx_clock_step(b, four - 1001);
	CU_ASSERT_EQUAL(hx_inb(b, IIR), 0xc1);
	hx_clock_step(b, 1);
	CU_ASSERT_EQUAL(hx_inb(b, IIR), 0xcc);
	CU_ASSERT_EQUAL(hx_inb(b, RBR), 'p');
	CU_ASSERT_EQUAL(hx_inb(b, RBR), 'q');
	CU_ASSERT_EQUAL(hx_inb(b, IIR), 0xc6); /* the break reached the top */
	CU_ASSERT_EQUAL(hx_inb(b, LSR), 0xf9);
	CU_ASSERT_EQUAL(hx_inb(b, RBR), 0);
	hx_outb(b, LCR, 0x80);
	CU_ASSERT_EQUAL(hx_inb(b, DLL), 1);
	free(st);
	hx_free(a);
	hx_free(b);
}

/* An image whose values no guest could have written (MCR bits 5-7) is
 * refused, and the device is left consistent and usable. */
static void test_state_rejects_bad_values(void)
{
	struct hx *a = uart_new(), *b = uart_new();
	const size_t payload = 16 + 4; /* header with the name "uart" */
	uint32_t crc;
	size_t len;
	uint8_t *st;

	hx_outb(a, MCR, 0x10);
	st = hx_state_save(a, "com1", &len);
	/* fields: dll dlm ier fcr lcr mcr ...; forge MCR, fix the CRC */
	CU_ASSERT_EQUAL_FATAL(st[payload + 5], 0x10);
	st[payload + 5] = 0xff;
	crc = (uint32_t)crc32(0, (const Bytef *)st, (uInt)(len - 4));
	memcpy(st + len - 4, &crc, 4);
	CU_ASSERT_NOT_EQUAL(hx_state_load(b, "com1", st, len), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(b), "rejected"));
	CU_ASSERT_EQUAL(hx_inb(b, MCR), 0x1f);
	hx_outb(b, THR, 'z'); /* loop mode from the masked value */
	CU_ASSERT_EQUAL(hx_inb(b, RBR), 'z');
	free(st);
	hx_free(a);
	hx_free(b);
}

int main(void)
{
	static const struct test_case tests[] = {
		TEST(test_reset_values),
		TEST(test_dlab_divisor),
		TEST(test_thre_interrupt),
		TEST(test_irq_gated_by_out2),
		TEST(test_loopback_echo),
		TEST(test_loopback_msr),
		TEST(test_modem_status_interrupt),
		TEST(test_modem_lines_from_backend),
		TEST(test_fifo_trigger_levels),
		TEST(test_char_timeout),
		TEST(test_overrun_fifo),
		TEST(test_overrun_16450),
		TEST(test_break_loopback),
		TEST(test_interrupt_priorities),
		TEST(test_fcr_resets),
		TEST(test_wide_access),
		TEST(test_hostile_sequences),
		TEST(test_state_round_trip),
		TEST(test_state_rejects_bad_values),
	};

	return RUN_TESTS("serial-16550", tests);
}
