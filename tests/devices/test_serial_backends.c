/* serial-16550 with real backends: transmit into chardev-file, receive
 * and reconnect through chardev-socket, a pty user attaching and leaving
 * chardev-pty, pass-through with chardev-serial on a pty pair, and flow
 * control in both directions (a full UART holds input back, a full
 * backend holds THRE clear until a timed retry gets the bytes out). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "harness.h"
#include "testmain.h"

#define BASE 0x3f8
#define IRQ 4
#define THR (BASE + 0)
#define RBR (BASE + 0)
#define DLL (BASE + 0)
#define IER (BASE + 1)
#define IIR (BASE + 2)
#define FCR (BASE + 2)
#define LCR (BASE + 3)
#define MCR (BASE + 4)
#define LSR (BASE + 5)
#define MSR (BASE + 6)

static char dir[64];

static const char *tmp_path(const char *name)
{
	static char path[4][256];
	static int next;
	char *p = path[next++ & 3];

	snprintf(p, 256, "%s/%s", dir, name);
	return p;
}

static void guest_puts(struct hx *h, const char *s)
{
	while (*s)
		hx_outb(h, THR, (uint8_t)*s++);
}

static size_t read_file(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "rb");
	size_t n;

	if (!f)
		return 0;
	n = fread(buf, 1, len - 1, f);
	buf[n] = 0;
	fclose(f);
	return n;
}

/* Read what the other end has within a second (non-blocking fd). */
static size_t read_some(int fd, char *buf, size_t len)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	size_t got = 0;

	while (got < len - 1 && poll(&p, 1, got ? 50 : 1000) > 0) {
		ssize_t n = read(fd, buf + got, len - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	buf[got] = 0;
	return got;
}

static void poll_until_ready(struct hx *h)
{
	for (int i = 0; i < 100 && !(hx_inb(h, LSR) & 1); i++)
		hx_poll(h, 20);
}

/* ---- chardev-file ------------------------------------------------------- */

static void test_transmit_to_file(void)
{
	const char *path = tmp_path("com1.log");
	struct hx *h;
	char buf[256];

	unlink(path);
	h = hx_new(0);
	CU_ASSERT_FATAL(hx_add(h, "serial-16550", "com1", "backend=file",
			       hx_prop("path", path), NULL) == 0);
	guest_puts(h, "hello, ");
	/* loop mode keeps bytes off the line */
	hx_outb(h, MCR, 0x10);
	guest_puts(h, "LOOPED");
	hx_outb(h, MCR, 0x00);
	guest_puts(h, "world\r\n");
	CU_ASSERT_EQUAL(hx_inb(h, LSR) & 0x60, 0x60);
	read_file(path, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "hello, world\r\n");
	hx_free(h);

	/* append (the default) keeps the old log; append=false truncates */
	h = hx_new(0);
	CU_ASSERT_FATAL(hx_add(h, "serial-16550", "com1", "backend=file",
			       hx_prop("path", path), NULL) == 0);
	guest_puts(h, "more");
	hx_free(h);
	read_file(path, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "hello, world\r\nmore");
	h = hx_new(0);
	CU_ASSERT_FATAL(hx_add(h, "serial-16550", "com1", "backend=file",
			       hx_prop("path", path), "append=false", NULL) == 0);
	guest_puts(h, "new");
	hx_free(h);
	read_file(path, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "new");
	unlink(path);
}

/* ---- chardev-socket ---------------------------------------------------- */

static int client_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(fd);
		return -1;
	}
	fcntl(fd, F_SETFL, O_NONBLOCK);
	return fd;
}

static struct hx *socket_uart(const char *path)
{
	struct hx *h = hx_new(0);

	CU_ASSERT_FATAL(hx_add(h, "serial-16550", "com1", "backend=socket",
			       hx_prop("path", path), NULL) == 0);
	return h;
}

static void test_receive_socket(void)
{
	const char *path = tmp_path("com1.sock");
	struct hx *h = socket_uart(path);
	char buf[64];
	int c;

	/* nobody connected: output is dropped, THR empties at once */
	guest_puts(h, "lost");
	CU_ASSERT_EQUAL(hx_inb(h, LSR) & 0x60, 0x60);
	c = client_connect(path);
	CU_ASSERT_FATAL(c >= 0);
	CU_ASSERT(hx_poll(h, 1000) >= 1); /* accepted */

	hx_outb(h, MCR, 0x08);
	hx_outb(h, IER, 0x01);
	CU_ASSERT_EQUAL(send(c, "abc", 3, 0), 3);
	poll_until_ready(h);
	CU_ASSERT_EQUAL(hx_irq_level(h, IRQ), 1);
	CU_ASSERT_EQUAL(hx_inb(h, IIR), 0x04);
	/* 16450 mode takes one byte at a time; each read lets the next in */
	CU_ASSERT_EQUAL(hx_inb(h, RBR), 'a');
	CU_ASSERT_EQUAL(hx_inb(h, LSR), 0x61);
	CU_ASSERT_EQUAL(hx_inb(h, RBR), 'b');
	CU_ASSERT_EQUAL(hx_inb(h, RBR), 'c');
	CU_ASSERT_EQUAL(hx_inb(h, LSR), 0x60);
	CU_ASSERT_EQUAL(hx_irq_level(h, IRQ), 0);

	guest_puts(h, "hi there");
	CU_ASSERT_EQUAL(read_some(c, buf, sizeof(buf)), 8);
	CU_ASSERT_STRING_EQUAL(buf, "hi there");

	/* the client leaves; a new one is accepted and gets new output */
	close(c);
	hx_poll(h, 1000);
	guest_puts(h, "void");
	CU_ASSERT_EQUAL(hx_inb(h, LSR) & 0x60, 0x60);
	c = client_connect(path);
	CU_ASSERT_FATAL(c >= 0);
	CU_ASSERT(hx_poll(h, 1000) >= 1);
	guest_puts(h, "second");
	CU_ASSERT_EQUAL(read_some(c, buf, sizeof(buf)), 6);
	CU_ASSERT_STRING_EQUAL(buf, "second");
	CU_ASSERT_EQUAL(send(c, "Z", 1, 0), 1);
	poll_until_ready(h);
	CU_ASSERT_EQUAL(hx_inb(h, RBR), 'Z');
	close(c);
	hx_free(h);
	/* the socket file is removed with the VM */
	CU_ASSERT_EQUAL(access(path, F_OK), -1);
}

/* Input faster than the guest reads: held back, never an overrun. */
static void test_receive_flow_control(void)
{
	const char *path = tmp_path("flow.sock");
	struct hx *h = socket_uart(path);
	char msg[41];
	int c;

	for (int i = 0; i < 40; i++)
		msg[i] = (char)('A' + i % 26);
	c = client_connect(path);
	CU_ASSERT_FATAL(c >= 0);
	hx_poll(h, 1000);
	hx_outb(h, FCR, 0x01);
	CU_ASSERT_EQUAL(send(c, msg, 40, 0), 40);
	poll_until_ready(h);
	for (int i = 0; i < 40; i++) {
		uint8_t lsr = hx_inb(h, LSR);
		CU_ASSERT_EQUAL(lsr & 0x03, 0x01); /* data, no overrun */
		CU_ASSERT_EQUAL(hx_inb(h, RBR), (uint8_t)msg[i]);
	}
	CU_ASSERT_EQUAL(hx_inb(h, LSR) & 1, 0);
	close(c);
	hx_free(h);
}

/* A client that does not read: the socket fills, THRE/TEMT stay clear
 * while bytes wait in the XMIT FIFO, and a retry timer sends them once
 * there is room, with a THRE interrupt. Nothing is lost. */
static void test_transmit_backpressure(void)
{
	const char *path = tmp_path("slow.sock");
	struct hx *h = socket_uart(path);
	static char got[1 << 22];
	size_t sent = 0, recvd = 0;
	int c;

	c = client_connect(path);
	CU_ASSERT_FATAL(c >= 0);
	hx_poll(h, 1000);
	hx_outb(h, LCR, 0x80);
	hx_outb(h, DLL, 1);
	hx_outb(h, LCR, 0x03);
	hx_outb(h, FCR, 0x01);
	while (sent < sizeof(got) && (hx_inb(h, LSR) & 0x20))
		hx_outb(h, THR, (uint8_t)(sent++ % 251));
	CU_ASSERT_FATAL(sent < sizeof(got));
	CU_ASSERT_EQUAL(hx_inb(h, LSR) & 0x60, 0x00);
	hx_outb(h, MCR, 0x08);
	hx_outb(h, IER, 0x02);
	CU_ASSERT_EQUAL(hx_irq_level(h, IRQ), 0);
	/* still full: a retry changes nothing */
	hx_clock_step(h, 20000000);
	CU_ASSERT_EQUAL(hx_inb(h, LSR) & 0x20, 0x00);
	/* drain the client, then virtual time lets the retry through */
	for (;;) {
		ssize_t n = recv(c, got + recvd, sizeof(got) - recvd, MSG_DONTWAIT);
		if (n <= 0)
			break;
		recvd += (size_t)n;
	}
	hx_clock_step(h, 20000000);
	CU_ASSERT_EQUAL(hx_inb(h, LSR) & 0x60, 0x60);
	CU_ASSERT_EQUAL(hx_irq_level(h, IRQ), 1);
	recvd += read_some(c, got + recvd, sizeof(got) - recvd);
	CU_ASSERT_EQUAL(recvd, sent);
	for (size_t i = 0; i < recvd && i < sent; i++) {
		if ((uint8_t)got[i] != i % 251) {
			CU_FAIL("byte out of order");
			break;
		}
	}
	close(c);
	hx_free(h);
}

/* ---- chardev-pty -------------------------------------------------------- */

static void test_pty(void)
{
	const char *link = tmp_path("com1.pty");
	struct hx *h = hx_new(0);
	char buf[64];
	int s;

	CU_ASSERT_FATAL(hx_add(h, "serial-16550", "com1", "backend=pty",
			       hx_prop("link", link), NULL) == 0);
	hx_poll(h, 0);
	/* nobody attached: the guest's console must not stall */
	for (int i = 0; i < 20000; i++)
		hx_outb(h, THR, 'x');
	CU_ASSERT_EQUAL(hx_inb(h, LSR) & 0x60, 0x60);

	s = open(link, O_RDWR | O_NOCTTY | O_NONBLOCK);
	CU_ASSERT_FATAL(s >= 0);
	hx_clock_step(h, 200000000); /* the hung-up pty is polled by timer */
	CU_ASSERT_EQUAL(write(s, "hi", 2), 2);
	poll_until_ready(h);
	CU_ASSERT_EQUAL(hx_inb(h, RBR), 'h');
	CU_ASSERT_EQUAL(hx_inb(h, RBR), 'i');
	guest_puts(h, "ok\r\n");
	CU_ASSERT_EQUAL(read_some(s, buf, sizeof(buf)), 4);
	CU_ASSERT_STRING_EQUAL(buf, "ok\r\n"); /* raw: no output processing */

	/* the user leaves: noticed once, then no busy polling */
	close(s);
	hx_poll(h, 100);
	CU_ASSERT_EQUAL(hx_poll(h, 50), 0);
	guest_puts(h, "unseen");
	s = open(link, O_RDWR | O_NOCTTY | O_NONBLOCK);
	CU_ASSERT_FATAL(s >= 0);
	hx_clock_step(h, 200000000);
	guest_puts(h, "back");
	CU_ASSERT_EQUAL(read_some(s, buf, sizeof(buf)), 4);
	CU_ASSERT_STRING_EQUAL(buf, "back");
	CU_ASSERT_EQUAL(write(s, "!", 1), 1);
	poll_until_ready(h);
	CU_ASSERT_EQUAL(hx_inb(h, RBR), '!');
	close(s);
	hx_free(h);
	CU_ASSERT_EQUAL(access(link, F_OK), -1); /* link removed */
}

/* ---- chardev-serial on a pty pair -------------------------------------- */

static int open_pair(char *slave, size_t len)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);

	CU_ASSERT_FATAL(m >= 0);
	CU_ASSERT_FATAL(grantpt(m) == 0 && unlockpt(m) == 0);
	CU_ASSERT_FATAL(ptsname_r(m, slave, len) == 0);
	return m;
}

static void test_serial_passthrough(void)
{
	struct hx *h = hx_new(0);
	struct termios t;
	char slave[64], buf[64];
	int m = open_pair(slave, sizeof(slave));

	CU_ASSERT_FATAL(hx_add(h, "serial-16550", "com1", "backend=serial",
			       hx_prop("path", slave), NULL) == 0);
	/* a pty has no modem lines: the UART shows a ready peer */
	CU_ASSERT_EQUAL(hx_inb(h, MSR), 0xb0);

	/* 9600 7E2 */
	hx_outb(h, LCR, 0x80);
	hx_outb(h, DLL, 12);
	hx_outb(h, IER, 0);
	hx_outb(h, LCR, 0x1e);
	CU_ASSERT_FATAL(tcgetattr(m, &t) == 0);
	CU_ASSERT_EQUAL(cfgetospeed(&t), B9600);
	CU_ASSERT_EQUAL(cfgetispeed(&t), B9600);
	CU_ASSERT(t.c_cflag & CSTOPB);
	CU_ASSERT(!(t.c_cflag & PARODD));
	CU_ASSERT(!(t.c_cflag & CMSPAR));
	/* (Linux ptys force CS8 and clear PARENB, so the word length and
	 * parity enable are checked on the termios mapping in test_chardev) */

	/* 38400 7O1, then mark and space parity (stick parity) */
	hx_outb(h, LCR, 0x80);
	hx_outb(h, DLL, 3);
	hx_outb(h, LCR, 0x0a);
	tcgetattr(m, &t);
	CU_ASSERT_EQUAL(cfgetospeed(&t), B38400);
	CU_ASSERT(!(t.c_cflag & CSTOPB));
	CU_ASSERT(t.c_cflag & PARODD);
	hx_outb(h, LCR, 0x2a);
	tcgetattr(m, &t);
	CU_ASSERT((t.c_cflag & (CMSPAR | PARODD)) == (CMSPAR | PARODD));
	hx_outb(h, LCR, 0x3a);
	tcgetattr(m, &t);
	CU_ASSERT((t.c_cflag & (CMSPAR | PARODD)) == CMSPAR);
	/* a non-standard divisor gets the nearest rate: 115200/7 -> 19200 */
	hx_outb(h, LCR, 0x80);
	hx_outb(h, DLL, 7);
	hx_outb(h, LCR, 0x03);
	tcgetattr(m, &t);
	CU_ASSERT_EQUAL(cfgetospeed(&t), B19200);
	/* break on and off reach the port without error */
	hx_outb(h, LCR, 0x43);
	hx_outb(h, LCR, 0x03);

	/* bytes both ways, unchanged */
	guest_puts(h, "ping\n");
	CU_ASSERT_EQUAL(read_some(m, buf, sizeof(buf)), 5);
	CU_ASSERT_STRING_EQUAL(buf, "ping\n");
	hx_outb(h, FCR, 0x01);
	CU_ASSERT_EQUAL(write(m, "pong\r", 5), 5);
	for (const char *p = "pong\r"; *p; p++) {
		poll_until_ready(h);
		CU_ASSERT_EQUAL(hx_inb(h, RBR), (uint8_t)*p);
	}
	hx_free(h);
	/* the port's settings are restored when the VM lets go */
	tcgetattr(m, &t);
	CU_ASSERT_NOT_EQUAL(cfgetospeed(&t), B19200);
	close(m);
}

/* The far end of the line disappears: the backend stops watching and
 * does not spin, and the UART keeps working with output dropped. */
static void test_serial_peer_gone(void)
{
	struct hx *h = hx_new(0);
	char slave[64];
	int m = open_pair(slave, sizeof(slave));

	CU_ASSERT_FATAL(hx_add(h, "serial-16550", "com1", "backend=serial",
			       hx_prop("path", slave), NULL) == 0);
	close(m);
	hx_poll(h, 100);
	CU_ASSERT_EQUAL(hx_poll(h, 50), 0);
	guest_puts(h, "into the void");
	CU_ASSERT_EQUAL(hx_inb(h, LSR) & 0x60, 0x60);
	hx_clock_step(h, 1000000000);
	CU_ASSERT_EQUAL(hx_poll(h, 0), 0);
	hx_free(h);
}

int main(void)
{
	static const struct test_case tests[] = {
		TEST(test_transmit_to_file),
		TEST(test_receive_socket),
		TEST(test_receive_flow_control),
		TEST(test_transmit_backpressure),
		TEST(test_pty),
		TEST(test_serial_passthrough),
		TEST(test_serial_peer_gone),
	};
	int r;

	snprintf(dir, sizeof(dir), "/tmp/modvm-serial-XXXXXX");
	if (!mkdtemp(dir))
		return 2;
	r = RUN_TESTS("serial-16550 backends", tests);
	rmdir(dir);
	return r;
}
