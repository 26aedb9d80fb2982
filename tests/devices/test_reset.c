/* sysctl-92 and i8042: the platform's reset paths (port 92h fast reset,
 * 8042 pulse and output port), the 8042's self-tests, command byte, port
 * enables, loop-back, the "no keyboard" answer, interrupts, hostile
 * command streams, state round trips, and the A20 gate both report to
 * the core (ORed, passed to the engine, restored by a snapshot). */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include <modvm/modvm.h>
#include "testmain.h"

#define PORT92 MODVM_PC_PORT_SYSCTL_A
#define KBC_DATA MODVM_PC_PORT_KBC_DATA
#define KBC_CMD MODVM_PC_PORT_KBC_CMD
#define STR_OBF 0x01
#define STR_SYS 0x04
#define STR_CMD 0x08
#define STR_AUX 0x20
#define STR_TIMEOUT 0x40

static struct hx *dev_new(const char *plugin)
{
	struct hx *h = hx_new(0);

	CU_ASSERT_EQUAL_FATAL(hx_add(h, plugin, "dev", NULL), 0);
	return h;
}

/* Send a controller command and collect its one-byte answer. */
static int kbc_ask(struct hx *h, uint8_t cmd)
{
	hx_outb(h, KBC_CMD, cmd);
	if (!(hx_inb(h, KBC_CMD) & STR_OBF))
		return -1;
	return hx_inb(h, KBC_DATA);
}

static void test_port92_fast_reset(void)
{
	struct hx *h = dev_new("sysctl-92");

	CU_ASSERT_EQUAL(hx_inb(h, PORT92), 0x02); /* A20 on, INIT clear */
	hx_outb(h, PORT92, 0x02);
	CU_ASSERT_EQUAL(hx_machine_request(h), 0);
	hx_outb(h, PORT92, 0x03);
	CU_ASSERT_EQUAL(hx_machine_request(h), MODVM_REQUEST_RESET);
	hx_clear_machine_request(h);
	hx_outb(h, PORT92, 0x03); /* no 0 -> 1 transition */
	CU_ASSERT_EQUAL(hx_machine_request(h), 0);
	CU_ASSERT_EQUAL(hx_inb(h, PORT92), 0x03);
	hx_outb(h, PORT92, 0x00); /* A20 bit kept as written */
	CU_ASSERT_EQUAL(hx_inb(h, PORT92), 0x00);
	CU_ASSERT_EQUAL(hx_machine_request(h), 0);
	hx_outw(h, PORT92, 0xFF01);
	CU_ASSERT_EQUAL(hx_machine_request(h), MODVM_REQUEST_RESET);
	CU_ASSERT_EQUAL(hx_inw(h, PORT92), 0xFF01);
	/* the platform reset clears INIT, so the next write resets again */
	hx_clear_machine_request(h);
	hx_reset(h);
	CU_ASSERT_EQUAL(hx_inb(h, PORT92), 0x02);
	hx_outb(h, PORT92, 0x01);
	CU_ASSERT_EQUAL(hx_machine_request(h), MODVM_REQUEST_RESET);
	hx_free(h);
}

static void test_kbc_pulse_reset(void)
{
	struct hx *h = dev_new("i8042");

	hx_outb(h, KBC_CMD, 0xFF); /* pulse nothing */
	CU_ASSERT_EQUAL(hx_machine_request(h), 0);
	hx_outb(h, KBC_CMD, 0xFE);
	CU_ASSERT_EQUAL(hx_machine_request(h), MODVM_REQUEST_RESET);
	hx_clear_machine_request(h);
	hx_outb(h, KBC_CMD, 0xF0); /* bit 0 of the mask is the reset line */
	CU_ASSERT_EQUAL(hx_machine_request(h), MODVM_REQUEST_RESET);
	hx_clear_machine_request(h);
	hx_outb(h, KBC_CMD, 0xF1);
	CU_ASSERT_EQUAL(hx_machine_request(h), 0);
	hx_free(h);
}

static void test_kbc_output_port(void)
{
	struct hx *h = dev_new("i8042");

	CU_ASSERT_EQUAL(kbc_ask(h, 0xD0), 0x03); /* reset released, A20 */
	hx_outb(h, KBC_CMD, 0xD1);
	hx_outb(h, KBC_DATA, 0xDD); /* A20 "off": kept, no reset */
	CU_ASSERT_EQUAL(hx_machine_request(h), 0);
	CU_ASSERT_EQUAL(kbc_ask(h, 0xD0), 0xCD);
	hx_outb(h, KBC_CMD, 0xD1);
	hx_outb(h, KBC_DATA, 0xDE); /* bit 0 low: CPU reset */
	CU_ASSERT_EQUAL(hx_machine_request(h), MODVM_REQUEST_RESET);
	/* the output buffer state shows in bits 4-5 */
	hx_outb(h, KBC_CMD, 0xD2);
	hx_outb(h, KBC_DATA, 0x42);
	hx_outb(h, KBC_CMD, 0xD0);
	CU_ASSERT_EQUAL(hx_inb(h, KBC_DATA) & 0x30, 0x10);
	hx_free(h);
}

static void test_kbc_self_tests(void)
{
	struct hx *h = dev_new("i8042");

	CU_ASSERT_EQUAL(hx_inb(h, KBC_CMD) & STR_OBF, 0);
	CU_ASSERT_EQUAL(kbc_ask(h, 0xAA), 0x55);
	CU_ASSERT_EQUAL(hx_inb(h, KBC_CMD) & (STR_OBF | STR_SYS | STR_CMD),
			STR_SYS | STR_CMD);
	CU_ASSERT_EQUAL(kbc_ask(h, 0xAB), 0x00);
	CU_ASSERT_EQUAL(kbc_ask(h, 0xA9), 0x00);
	CU_ASSERT_EQUAL(kbc_ask(h, 0xA4), 0xF1);
	CU_ASSERT_EQUAL(kbc_ask(h, 0xE0), 0x00);
	CU_ASSERT(kbc_ask(h, 0xC0) >= 0);
	/* unknown commands answer nothing */
	CU_ASSERT_EQUAL(kbc_ask(h, 0xC5), -1);
	CU_ASSERT_EQUAL(hx_machine_request(h), 0);
	hx_free(h);
}

static void test_kbc_command_byte_and_irqs(void)
{
	struct hx *h = dev_new("i8042");

	CU_ASSERT_EQUAL(hx_inb(h, KBC_CMD) & STR_SYS, STR_SYS);
	hx_outb(h, KBC_CMD, 0x20);
	CU_ASSERT_EQUAL(hx_irq_level(h, 1), 1); /* KBDINT set: IRQ 1 */
	CU_ASSERT_EQUAL(hx_inb(h, KBC_DATA), 0x45);
	CU_ASSERT_EQUAL(hx_irq_level(h, 1), 0);
	hx_outb(h, KBC_CMD, 0x60);
	hx_outb(h, KBC_DATA, 0x30); /* no interrupts, SYS clear, ports off */
	CU_ASSERT_EQUAL(hx_inb(h, KBC_CMD) & STR_SYS, 0);
	hx_outb(h, KBC_CMD, 0x20);
	CU_ASSERT_EQUAL(hx_irq_level(h, 1), 0);
	CU_ASSERT_EQUAL(hx_inb(h, KBC_DATA), 0x30);
	/* enable/disable commands edit the command byte */
	hx_outb(h, KBC_CMD, 0xAE);
	hx_outb(h, KBC_CMD, 0xA8);
	CU_ASSERT_EQUAL(kbc_ask(h, 0x20), 0x00);
	hx_outb(h, KBC_CMD, 0xAD);
	hx_outb(h, KBC_CMD, 0xA7);
	CU_ASSERT_EQUAL(kbc_ask(h, 0x20), 0x30);
	/* the rest of the 8042 RAM */
	hx_outb(h, KBC_CMD, 0x65);
	hx_outb(h, KBC_DATA, 0x5A);
	CU_ASSERT_EQUAL(kbc_ask(h, 0x25), 0x5A);
	CU_ASSERT_EQUAL(kbc_ask(h, 0x20), 0x30);
	/* loop-back through the aux buffer raises IRQ 12 when enabled */
	hx_outb(h, KBC_CMD, 0x60);
	hx_outb(h, KBC_DATA, 0x03);
	hx_outb(h, KBC_CMD, 0xD3);
	hx_outb(h, KBC_DATA, 0xA5);
	CU_ASSERT_EQUAL(hx_inb(h, KBC_CMD) & (STR_OBF | STR_AUX), STR_OBF | STR_AUX);
	CU_ASSERT_EQUAL(hx_irq_level(h, 12), 1);
	CU_ASSERT_EQUAL(hx_irq_level(h, 1), 0);
	CU_ASSERT_EQUAL(hx_inb(h, KBC_DATA), 0xA5);
	CU_ASSERT_EQUAL(hx_irq_level(h, 12), 0);
	hx_outb(h, KBC_CMD, 0xD2);
	hx_outb(h, KBC_DATA, 0x1C);
	CU_ASSERT_EQUAL(hx_irq_level(h, 1), 1);
	CU_ASSERT_EQUAL(hx_inb(h, KBC_CMD) & STR_AUX, 0);
	CU_ASSERT_EQUAL(hx_inb(h, KBC_DATA), 0x1C);
	hx_free(h);
}

static void test_kbc_no_keyboard(void)
{
	struct hx *h = dev_new("i8042");

	/* nothing to read: OBF clear, the data port gives the stale byte */
	CU_ASSERT_EQUAL(hx_inb(h, KBC_CMD) & STR_OBF, 0);
	CU_ASSERT_EQUAL(hx_inb(h, KBC_DATA), 0x00);
	hx_outb(h, KBC_DATA, 0xFF); /* keyboard reset, to no keyboard */
	CU_ASSERT_EQUAL(hx_inb(h, KBC_CMD) & (STR_OBF | STR_AUX | STR_TIMEOUT | STR_CMD),
			STR_OBF | STR_TIMEOUT);
	CU_ASSERT_EQUAL(hx_inb(h, KBC_DATA), 0xFE);
	CU_ASSERT_EQUAL(hx_inb(h, KBC_CMD) & (STR_OBF | STR_TIMEOUT), 0);
	CU_ASSERT_EQUAL(hx_inb(h, KBC_DATA), 0xFE); /* stale */
	hx_outb(h, KBC_CMD, 0xD4); /* to the mouse, which is not there */
	hx_outb(h, KBC_DATA, 0xF2);
	CU_ASSERT_EQUAL(hx_inb(h, KBC_CMD) & (STR_OBF | STR_AUX | STR_TIMEOUT),
			STR_OBF | STR_AUX | STR_TIMEOUT);
	CU_ASSERT_EQUAL(hx_inb(h, KBC_DATA), 0xFE);
	/* time passes, nothing ever arrives */
	hx_clock_step(h, 1000000000);
	CU_ASSERT_EQUAL(hx_inb(h, KBC_CMD) & STR_OBF, 0);
	CU_ASSERT_EQUAL(hx_irq_raises(h, 1), 1);
	/* a command cancels a pending parameter */
	hx_outb(h, KBC_CMD, 0xD1);
	hx_outb(h, KBC_CMD, 0xAA);
	CU_ASSERT_EQUAL(hx_inb(h, KBC_DATA), 0x55);
	hx_outb(h, KBC_DATA, 0x00); /* not the output port */
	CU_ASSERT_EQUAL(hx_machine_request(h), 0);
	hx_free(h);
}

/* Linux's i8042 probe, step by step (drivers/input/serio/i8042.c as of
 * 6.x): flush, read CTR twice, self-test, write CTR, AUX loop and bit
 * assignment tests. Every answer must come at once. */
static void test_kbc_linux_probe(void)
{
	struct hx *h = dev_new("i8042");
	int ctr;

	while (hx_inb(h, KBC_CMD) & STR_OBF)
		(void)hx_inb(h, KBC_DATA);
	ctr = kbc_ask(h, 0x20);
	CU_ASSERT_EQUAL(kbc_ask(h, 0x20), ctr);
	CU_ASSERT_EQUAL(kbc_ask(h, 0xAA), 0x55);
	hx_outb(h, KBC_CMD, 0x60);
	hx_outb(h, KBC_DATA, (uint8_t)((ctr | 0x30) & ~0x03));
	hx_outb(h, KBC_CMD, 0xD3);
	hx_outb(h, KBC_DATA, 0x5A);
	CU_ASSERT_EQUAL(hx_inb(h, KBC_DATA), 0x5A);
	hx_outb(h, KBC_CMD, 0xA7);
	CU_ASSERT_EQUAL(kbc_ask(h, 0x20) & 0x20, 0x20);
	hx_outb(h, KBC_CMD, 0xA8);
	CU_ASSERT_EQUAL(kbc_ask(h, 0x20) & 0x20, 0x00);
	/* MUX detection: a plain echo means "not a MUX" */
	hx_outb(h, KBC_CMD, 0xD3);
	hx_outb(h, KBC_DATA, 0xA4);
	CU_ASSERT_EQUAL(hx_inb(h, KBC_DATA), 0xA4);
	CU_ASSERT_EQUAL(hx_machine_request(h), 0);
	hx_free(h);
}

static void test_hostile_streams(void)
{
	struct hx *h = hx_new(0);

	CU_ASSERT_EQUAL_FATAL(hx_add(h, "i8042", "kbc", NULL), 0);
	CU_ASSERT_EQUAL_FATAL(hx_add(h, "sysctl-92", "p92", NULL), 0);
	srand(8042);
	for (int i = 0; i < 100000; i++) {
		uint16_t port = (rand() & 1) ? KBC_CMD : KBC_DATA;
		if (rand() % 10 == 0)
			port = PORT92;
		switch (rand() % 4) {
		case 0: hx_outb(h, port, (uint8_t)rand()); break;
		case 1: hx_outl(h, port, (uint32_t)rand()); break;
		case 2: (void)hx_inb(h, port); break;
		default: (void)hx_inw(h, port); break;
		}
		hx_clear_machine_request(h);
	}
	/* still answers */
	CU_ASSERT_EQUAL(kbc_ask(h, 0xAA), 0x55);
	hx_outb(h, KBC_CMD, 0xFE);
	CU_ASSERT_EQUAL(hx_machine_request(h), MODVM_REQUEST_RESET);
	hx_free(h);
}

static void test_state_round_trips(void)
{
	struct hx *a = dev_new("i8042"), *b = dev_new("i8042");

	hx_outb(a, KBC_CMD, 0x7F);
	hx_outb(a, KBC_DATA, 0x99); /* RAM byte 31 */
	hx_outb(a, KBC_CMD, 0x60);
	hx_outb(a, KBC_DATA, 0x47);
	hx_outb(a, KBC_CMD, 0xD2);
	hx_outb(a, KBC_DATA, 0x1E); /* unread byte, IRQ 1 up */
	hx_outb(a, KBC_CMD, 0xD1);  /* parameter pending */
	CU_ASSERT_EQUAL_FATAL(hx_state_copy(a, b, "dev"), 0);
	CU_ASSERT_EQUAL(hx_irq_level(b, 1), 1);
	CU_ASSERT_EQUAL(hx_inb(b, KBC_CMD), hx_inb(a, KBC_CMD));
	CU_ASSERT_EQUAL(hx_inb(b, KBC_DATA), 0x1E);
	CU_ASSERT_EQUAL(hx_irq_level(b, 1), 0);
	hx_outb(b, KBC_DATA, 0xDE); /* completes the D1 */
	CU_ASSERT_EQUAL(hx_machine_request(b), MODVM_REQUEST_RESET);
	CU_ASSERT_EQUAL(kbc_ask(b, 0x3F), 0x99);
	CU_ASSERT_EQUAL(kbc_ask(b, 0x20), 0x47);
	hx_free(a);
	hx_free(b);

	a = dev_new("sysctl-92");
	b = dev_new("sysctl-92");
	hx_outb(a, PORT92, 0x01);
	CU_ASSERT_EQUAL_FATAL(hx_state_copy(a, b, "dev"), 0);
	CU_ASSERT_EQUAL(hx_inb(b, PORT92), 0x01);
	hx_outb(b, PORT92, 0x01); /* already set: no new reset */
	CU_ASSERT_EQUAL(hx_machine_request(b), 0);
	hx_free(a);
	hx_free(b);
}

/* A20: both devices report their gate input through host->set_a20; the
 * core ORs them and tells the engine (here a fake one recording calls). */
struct a20_rec {
	int calls;
	int last;
};

static void fake_set_a20(void *vm, bool on)
{
	struct a20_rec *r = vm;

	r->calls++;
	r->last = on;
}

static const struct modvm_cpu_engine_ops a20_engine = {
	.size = sizeof(a20_engine), .set_a20 = fake_set_a20,
};

/* An engine built before set_a20 existed (as the KVM engines today). */
static const struct modvm_cpu_engine_ops old_engine = {
	.size = offsetof(struct modvm_cpu_engine_ops, set_a20),
	.set_a20 = fake_set_a20, /* beyond its size: must not be called */
};

static struct hx *a20_machine(struct a20_rec *r,
			      const struct modvm_cpu_engine_ops *e)
{
	struct hx *h = hx_new(0);

	hx_set_engine(h, e, r);
	CU_ASSERT_EQUAL_FATAL(hx_add(h, "sysctl-92", "p92", NULL), 0);
	CU_ASSERT_EQUAL_FATAL(hx_add(h, "i8042", "kbc", NULL), 0);
	return h;
}

static void kbc_outport(struct hx *h, uint8_t v)
{
	hx_outb(h, KBC_CMD, 0xD1);
	hx_outb(h, KBC_DATA, v);
}

static void test_a20_gate(void)
{
	struct a20_rec r = { 0, -1 }, r2 = { 0, -1 }, r3 = { 0, -1 };
	struct hx *h = a20_machine(&r, &a20_engine), *b;
	const struct modvm_host *host;
	modvm_inst *p92;
	size_t len;
	void *st;
	int n;

	CU_ASSERT(r.calls >= 1);
	CU_ASSERT_EQUAL(r.last, 1);            /* both enabled at reset */
	hx_outb(h, PORT92, 0x00);               /* the 8042 still has it on */
	CU_ASSERT_EQUAL(r.last, 1);
	kbc_outport(h, 0x01);                   /* both off: masked */
	CU_ASSERT_EQUAL(r.last, 0);
	CU_ASSERT_EQUAL(hx_machine_request(h), 0);
	n = r.calls;
	hx_outb(h, PORT92, 0x00);               /* no change: no call */
	kbc_outport(h, 0x01);
	CU_ASSERT_EQUAL(r.calls, n);
	hx_outb(h, PORT92, 0x02);               /* fast A20 */
	CU_ASSERT_EQUAL(r.last, 1);
	hx_outb(h, PORT92, 0x00);
	CU_ASSERT_EQUAL(r.last, 0);
	kbc_outport(h, 0x03);                   /* through the 8042 */
	CU_ASSERT_EQUAL(r.last, 1);
	kbc_outport(h, 0x01);
	CU_ASSERT_EQUAL(r.last, 0);
	/* snapshot: a machine loading this state gets A20 disabled */
	b = a20_machine(&r2, &a20_engine);
	CU_ASSERT_EQUAL(r2.last, 1);
	st = hx_state_save(h, NULL, &len);
	CU_ASSERT_EQUAL_FATAL(hx_state_load(b, NULL, st, len), 0);
	free(st);
	CU_ASSERT_EQUAL(r2.last, 0);
	CU_ASSERT_EQUAL(hx_inb(b, PORT92) & 2, 0);
	/* what an engine created after the load (a resume) starts from */
	host = hx_host(b, "p92", &p92);
	CU_ASSERT_PTR_NOT_NULL_FATAL(host);
	CU_ASSERT_FALSE(host->a20_enabled(p92));
	hx_outb(b, PORT92, 0x02);
	CU_ASSERT_TRUE(host->a20_enabled(p92));
	CU_ASSERT_EQUAL(r2.last, 1);
	/* machine reset: enabled again */
	hx_reset(h);
	CU_ASSERT_EQUAL(r.last, 1);
	hx_free(h);
	hx_free(b);
	/* an engine without set_a20 is never called (A20 stays enabled) */
	h = a20_machine(&r3, &old_engine);
	hx_outb(h, PORT92, 0x00);
	kbc_outport(h, 0x01);
	CU_ASSERT_EQUAL(r3.calls, 0);
	hx_free(h);
}

int main(void)
{
	static const struct test_case tests[] = {
		TEST(test_port92_fast_reset),
		TEST(test_kbc_pulse_reset),
		TEST(test_kbc_output_port),
		TEST(test_kbc_self_tests),
		TEST(test_kbc_command_byte_and_irqs),
		TEST(test_kbc_no_keyboard),
		TEST(test_kbc_linux_probe),
		TEST(test_hostile_streams),
		TEST(test_state_round_trips),
		TEST(test_a20_gate),
	};
	return RUN_TESTS("reset", tests);
}
