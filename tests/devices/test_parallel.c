/* parallel-spp: the three registers, the virtual printer's BUSY/ACK
 * handshake in virtual time with the ACK interrupt, printing into
 * chardev-file, a slow backend holding BUSY, the PS/2 reverse direction,
 * nINIT, the ppdev refusal, hostile accesses and a state round trip. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"
#include <modvm/modvm.h>
#include "testmain.h"

#define BASE 0x378
#define IRQ 7
#define DATA (BASE + 0)
#define STATUS (BASE + 1)
#define CONTROL (BASE + 2)

#define ST_IDLE 0xdf   /* nBUSY nACK SELECT nERROR nIRQ, reserved 1s */
#define ST_BUSY 0x5f   /* nBUSY = 0 */
#define ST_ACK 0x1f    /* busy and acknowledging */
#define CTL_STROBE 0x01
#define CTL_INIT 0x04
#define CTL_SEL 0x08
#define CTL_IRQEN 0x10
#define CTL_DIR 0x20

static char dir[64];

static char *path_prop(const char *key, const char *name)
{
	static char buf[4][300];
	static int next;
	char *p = buf[next++ & 3];

	snprintf(p, 300, "%s=%s/%s", key, dir, name);
	return p;
}

static struct hx *lpt_new(const char *backend, const char *extra)
{
	struct hx *h = hx_new(0);

	CU_ASSERT_FATAL(hx_add(h, "parallel-spp", "lpt1", "port=0x378", "irq=7",
			       backend, extra, NULL) == 0);
	return h;
}

/* What a driver does per byte: wait for not-busy, data, strobe pulse. */
static void print_byte(struct hx *h, uint8_t c)
{
	for (int i = 0; i < 1000 && !(hx_inb(h, STATUS) & 0x80); i++)
		hx_clock_step(h, 1000);
	hx_outb(h, DATA, c);
	hx_outb(h, CONTROL, CTL_INIT | CTL_SEL | CTL_STROBE);
	hx_outb(h, CONTROL, CTL_INIT | CTL_SEL);
}

static void test_registers(void)
{
	struct hx *h = lpt_new("backend=null", NULL);

	CU_ASSERT_EQUAL(hx_inb(h, STATUS), ST_IDLE);
	CU_ASSERT_EQUAL(hx_inb(h, CONTROL), 0xcc);
	hx_outb(h, DATA, 0xaa);
	CU_ASSERT_EQUAL(hx_inb(h, DATA), 0xaa);
	hx_outb(h, DATA, 0x55);
	CU_ASSERT_EQUAL(hx_inb(h, DATA), 0x55);
	/* Linux's SPP probe: control bits read back */
	hx_outb(h, CONTROL, 0x0e);
	CU_ASSERT_EQUAL(hx_inb(h, CONTROL) & 0x0f, 0x0e);
	hx_outb(h, CONTROL, 0xff);
	CU_ASSERT_EQUAL(hx_inb(h, CONTROL), 0xff);
	hx_outb(h, STATUS, 0x00); /* read-only */
	CU_ASSERT_EQUAL(hx_inb(h, STATUS) & 0xf8, 0xd8);
	/* PS/2 reverse: the lines float high, the latch is kept */
	hx_outb(h, CONTROL, CTL_INIT | CTL_SEL | CTL_DIR);
	CU_ASSERT_EQUAL(hx_inb(h, DATA), 0xff);
	hx_outb(h, CONTROL, CTL_INIT | CTL_SEL);
	CU_ASSERT_EQUAL(hx_inb(h, DATA), 0x55);
	/* word access spans data and status; past control reads all ones */
	CU_ASSERT_EQUAL(hx_inw(h, DATA), (ST_IDLE << 8) | 0x55);
	CU_ASSERT_EQUAL(hx_inw(h, CONTROL), 0xffcc);
	hx_reset(h);
	CU_ASSERT_EQUAL(hx_inb(h, DATA), 0x00);
	CU_ASSERT_EQUAL(hx_inb(h, CONTROL), 0xcc);
	hx_free(h);
}

static void test_handshake_and_irq(void)
{
	char *p = path_prop("path", "lpt.out");
	struct hx *h = lpt_new("backend=file", p);
	char buf[16] = { 0 };
	int fd;

	hx_outb(h, CONTROL, CTL_INIT | CTL_SEL | CTL_IRQEN);
	hx_outb(h, DATA, 'H');
	hx_outb(h, CONTROL, CTL_INIT | CTL_SEL | CTL_IRQEN | CTL_STROBE);
	/* taken at the strobe: BUSY at once, the byte is on paper */
	CU_ASSERT_EQUAL(hx_inb(h, STATUS), ST_BUSY);
	fd = open(p + 5, O_RDONLY);
	CU_ASSERT_EQUAL(read(fd, buf, sizeof(buf)), 1);
	CU_ASSERT_EQUAL(buf[0], 'H');
	hx_outb(h, CONTROL, CTL_INIT | CTL_SEL | CTL_IRQEN);
	hx_clock_step(h, 4999);
	CU_ASSERT_EQUAL(hx_inb(h, STATUS), ST_BUSY);
	CU_ASSERT_EQUAL(hx_irq_level(h, IRQ), 0);
	/* 5 us: the ACK pulse, the interrupt, the nIRQ latch */
	hx_clock_step(h, 1);
	CU_ASSERT_EQUAL(hx_irq_level(h, IRQ), 1);
	CU_ASSERT_EQUAL(hx_irq_raises(h, IRQ), 1);
	CU_ASSERT_EQUAL(hx_inb(h, STATUS), ST_ACK & ~0x04);
	CU_ASSERT_EQUAL(hx_inb(h, STATUS), ST_ACK); /* latch cleared by read */
	/* 10 us: ACK ends, BUSY drops, the line falls */
	hx_clock_step(h, 5000);
	CU_ASSERT_EQUAL(hx_inb(h, STATUS), ST_IDLE);
	CU_ASSERT_EQUAL(hx_irq_level(h, IRQ), 0);

	/* without IRQEN: the same handshake, no interrupt */
	hx_outb(h, CONTROL, CTL_INIT | CTL_SEL);
	print_byte(h, 'i');
	hx_clock_step(h, 5000);
	CU_ASSERT_EQUAL(hx_inb(h, STATUS), ST_ACK);
	CU_ASSERT_EQUAL(hx_irq_raises(h, IRQ), 1);
	hx_clock_step(h, 5000);
	CU_ASSERT_EQUAL(hx_inb(h, STATUS), ST_IDLE);
	CU_ASSERT_EQUAL(read(fd, buf, sizeof(buf)), 1);
	CU_ASSERT_EQUAL(buf[0], 'i');
	close(fd);
	hx_free(h);
	unlink(p + 5);
}

static void test_print_to_file(void)
{
	char *p = path_prop("path", "print.out");
	struct hx *h = lpt_new("backend=file", p);
	const char *text = "Hello, printer!\r\n\f";
	char buf[64] = { 0 };
	FILE *f;

	for (const char *c = text; *c; c++)
		print_byte(h, (uint8_t)*c);
	/* strobing while busy prints nothing: the printer ignores it */
	print_byte(h, 'X');
	hx_outb(h, DATA, 'Y');
	hx_outb(h, CONTROL, CTL_INIT | CTL_SEL | CTL_STROBE);
	hx_outb(h, CONTROL, CTL_INIT | CTL_SEL);
	/* holding STROBE is one strobe */
	hx_clock_step(h, 20000);
	hx_outb(h, DATA, 'Z');
	hx_outb(h, CONTROL, CTL_INIT | CTL_SEL | CTL_STROBE);
	hx_clock_step(h, 20000);
	hx_outb(h, CONTROL, CTL_INIT | CTL_SEL | CTL_STROBE);
	hx_clock_step(h, 20000);
	hx_outb(h, CONTROL, CTL_INIT | CTL_SEL);
	/* reverse direction: the lines are inputs, nothing is printed */
	hx_outb(h, DATA, 'R');
	hx_outb(h, CONTROL, CTL_INIT | CTL_SEL | CTL_DIR | CTL_STROBE);
	hx_outb(h, CONTROL, CTL_INIT | CTL_SEL);
	hx_free(h);
	f = fopen(p + 5, "rb");
	CU_ASSERT_FATAL(f != NULL);
	CU_ASSERT_EQUAL(fread(buf, 1, sizeof(buf) - 1, f), strlen(text) + 2);
	fclose(f);
	CU_ASSERT_EQUAL(memcmp(buf, text, strlen(text)), 0);
	CU_ASSERT_STRING_EQUAL(buf + strlen(text), "XZ");
	unlink(p + 5);
}

static void test_init_resets_printer(void)
{
	struct hx *h = lpt_new("backend=null", NULL);

	hx_outb(h, CONTROL, CTL_INIT | CTL_SEL | CTL_IRQEN);
	hx_outb(h, CONTROL, CTL_INIT | CTL_SEL | CTL_IRQEN | CTL_STROBE);
	CU_ASSERT_EQUAL(hx_inb(h, STATUS), ST_BUSY);
	hx_outb(h, CONTROL, CTL_SEL | CTL_IRQEN); /* nINIT asserted */
	CU_ASSERT_EQUAL(hx_inb(h, STATUS), ST_IDLE);
	hx_clock_step(h, 100000);
	CU_ASSERT_EQUAL(hx_irq_raises(h, IRQ), 0); /* the ACK never came */
	hx_free(h);
}

/* A backend that takes nothing keeps the printer BUSY; once it takes
 * the byte the handshake completes. */
static void test_slow_backend(void)
{
	char *p = path_prop("path", "lpt.sock");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct hx *h = lpt_new("backend=socket", p);
	static char sink[1 << 20];
	int c, n = 0;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", p + 5);
	c = socket(AF_UNIX, SOCK_STREAM, 0);
	CU_ASSERT_FATAL(connect(c, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	hx_poll(h, 1000);
	for (; n < (1 << 20); n++) {
		print_byte(h, 'p');
		hx_clock_step(h, 20000);
		if (!(hx_inb(h, STATUS) & 0x80))
			break;
	}
	CU_ASSERT_FATAL(n < (1 << 20));
	hx_clock_step(h, 10000000);
	CU_ASSERT_EQUAL(hx_inb(h, STATUS), ST_BUSY); /* still stuck */
	while (recv(c, sink, sizeof(sink), MSG_DONTWAIT) > 0)
		;
	hx_clock_step(h, 100000);
	hx_clock_step(h, 10000);
	CU_ASSERT_EQUAL(hx_inb(h, STATUS), ST_IDLE);
	CU_ASSERT_EQUAL(recv(c, sink, sizeof(sink), MSG_DONTWAIT), 1);
	close(c);
	hx_free(h);
}

static void test_ppdev_refused(void)
{
	struct hx *h = hx_new(0);

	CU_ASSERT_EQUAL(hx_add(h, "parallel-spp", "lpt1", "mode=ppdev",
			       "ppdev-path=/dev/parport7", NULL), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(h), "\"/dev/parport7\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(h), "No such file or directory"));
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(h), "ppdev"));
	/* a device that is not a parallel port cannot be claimed */
	CU_ASSERT_EQUAL(hx_add(h, "parallel-spp", "lpt1", "mode=ppdev",
			       "ppdev-path=/dev/null", NULL), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(h), "cannot claim parallel port \"/dev/null\""));
	CU_ASSERT_EQUAL(hx_add(h, "parallel-spp", "lpt1", "mode=serial", NULL), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(h), "chardev, ppdev"));
	/* the port range was released each time */
	CU_ASSERT_EQUAL(hx_add(h, "parallel-spp", "lpt1", "backend=null", NULL), 0);
	hx_free(h);
}

static void test_hostile_sequences(void)
{
	struct hx *h = lpt_new("backend=null", NULL);
	uint32_t x = 777;

	for (int i = 0; i < 200000; i++) {
		unsigned op;
		x = x * 1103515245u + 12345u;
		op = (x >> 12) & 7;
		if (op < 3)
			hx_outb(h, (uint16_t)(BASE + ((x >> 8) & 3)), (uint8_t)(x >> 20));
		else if (op < 6)
			hx_inb(h, (uint16_t)(BASE + ((x >> 8) & 3)));
		else if (op == 6)
			hx_outl(h, (uint16_t)(BASE + ((x >> 8) & 3)), x);
		else
			hx_clock_step(h, (x >> 18) & 0x3fff);
	}
	hx_clock_step(h, 1000000);
	hx_outb(h, CONTROL, CTL_INIT | CTL_SEL);
	hx_clock_step(h, 1000000);
	CU_ASSERT_EQUAL(hx_inb(h, STATUS), ST_IDLE);
	CU_ASSERT_EQUAL(hx_irq_level(h, IRQ), 0);
	hx_free(h);
}

static void test_state_round_trip(void)
{
	struct hx *a = lpt_new("backend=null", NULL), *b = lpt_new("backend=null", NULL);
	size_t len;
	void *st;

	hx_outb(a, CONTROL, CTL_INIT | CTL_SEL | CTL_IRQEN);
	hx_outb(a, DATA, 0x42);
	hx_outb(a, CONTROL, CTL_INIT | CTL_SEL | CTL_IRQEN | CTL_STROBE);
	hx_clock_step(a, 6000); /* inside the ACK pulse, IRQ high */
	CU_ASSERT_EQUAL(hx_irq_level(a, IRQ), 1);
	st = hx_state_save(a, "lpt1", &len);
	hx_clock_step(b, hx_clock(a));
	CU_ASSERT_EQUAL_FATAL(hx_state_load(b, "lpt1", st, len), 0);
	CU_ASSERT_EQUAL(hx_irq_level(b, IRQ), 1);
	CU_ASSERT_EQUAL(hx_inb(b, DATA), 0x42);
	CU_ASSERT_EQUAL(hx_inb(b, CONTROL), 0xc0 | CTL_INIT | CTL_SEL | CTL_IRQEN | CTL_STROBE);
	CU_ASSERT_EQUAL(hx_inb(b, STATUS), ST_ACK & ~0x04);
	hx_clock_step(b, 3999);
	CU_ASSERT_EQUAL(hx_inb(b, STATUS), ST_ACK);
	hx_clock_step(b, 1); /* ends at 10 us, as it would have */
	CU_ASSERT_EQUAL(hx_inb(b, STATUS), ST_IDLE);
	CU_ASSERT_EQUAL(hx_irq_level(b, IRQ), 0);
	free(st);
	hx_free(a);
	hx_free(b);
}

int main(void)
{
	static const struct test_case tests[] = {
		TEST(test_registers),
		TEST(test_handshake_and_irq),
		TEST(test_print_to_file),
		TEST(test_init_resets_printer),
		TEST(test_slow_backend),
		TEST(test_ppdev_refused),
		TEST(test_hostile_sequences),
		TEST(test_state_round_trip),
	};
	int r;

	snprintf(dir, sizeof(dir), "/tmp/modvm-lpt-XXXXXX");
	if (!mkdtemp(dir))
		return 2;
	r = RUN_TESTS("parallel-spp", tests);
	rmdir(dir);
	return r;
}
