/* chardev backends on their own: every refusal names the path and the
 * reason, the termios mapping of chardev-serial as a pure function, the
 * null backend, and chardev-socket's wait=true start. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"
#include "testmain.h"

/* The mapping is tested as compiled into the plugin, without a port. */
#include "../../plugins/chardev/serial/termios_map.c"

#define BASE 0x3f8

static char dir[64];

static const char *tmp_path(const char *name)
{
	static char path[4][256];
	static int next;
	char *p = path[next++ & 3];

	snprintf(p, 256, "%s/%s", dir, name);
	return p;
}

/* hx_add must fail, and its message must contain every needle. */
static void expect_refusal(const char *backend, const char *k1, const char *k2,
			   const char *n1, const char *n2, const char *n3)
{
	struct hx *h = hx_new(0);

	CU_ASSERT_EQUAL(hx_add(h, "serial-16550", "com1", backend, k1, k2, NULL), -1);
	if (n1 && !strstr(hx_error(h), n1))
		fprintf(stderr, "missing \"%s\" in: %s\n", n1, hx_error(h));
	CU_ASSERT_PTR_NOT_NULL(n1 ? strstr(hx_error(h), n1) : "");
	CU_ASSERT_PTR_NOT_NULL(n2 ? strstr(hx_error(h), n2) : "");
	CU_ASSERT_PTR_NOT_NULL(n3 ? strstr(hx_error(h), n3) : "");
	/* nothing was left claimed: the port is free for another try */
	CU_ASSERT_EQUAL(hx_add(h, "serial-16550", "com1b", "backend=null", NULL, NULL), 0);
	hx_free(h);
}

static void test_file_errors(void)
{
	expect_refusal("backend=file", "path=/nonexistent-dir/com1.log", NULL,
		       "\"/nonexistent-dir/com1.log\"", "No such file or directory",
		       "chardev-file");
	/* a directory cannot be a log, whoever runs the tests */
	expect_refusal("backend=file", hx_prop("path", dir), NULL,
		       dir, "Is a directory", NULL);
	/* path is required */
	expect_refusal("backend=file", NULL, NULL, "path", NULL, NULL);
}

static void test_socket_errors(void)
{
	char longpath[200];
	const char *plain = tmp_path("plain-file");
	FILE *f;

	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = 0;
	expect_refusal("backend=socket", hx_prop("path", longpath), NULL,
		       "too long", "199 bytes", longpath);
	expect_refusal("backend=socket", "path=/nonexistent-dir/s.sock", NULL,
		       "\"/nonexistent-dir/s.sock\"", "No such file or directory", NULL);
	f = fopen(plain, "w");
	fclose(f);
	expect_refusal("backend=socket", hx_prop("path", plain), NULL,
		       plain, "not a socket", NULL);
	CU_ASSERT_EQUAL(access(plain, F_OK), 0); /* not replaced */
	unlink(plain);
}

static void test_socket_in_use_and_stale(void)
{
	const char *path = tmp_path("busy.sock");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct hx *a = hx_new(0), *b;
	int fd;

	CU_ASSERT_FATAL(hx_add(a, "serial-16550", "com1", "backend=socket",
			       hx_prop("path", path), NULL) == 0);
	expect_refusal("backend=socket", hx_prop("path", path), NULL,
		       path, "in use", NULL);
	hx_free(a);
	/* a socket file whose owner died is replaced */
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	close(fd);
	b = hx_new(0);
	CU_ASSERT_EQUAL(hx_add(b, "serial-16550", "com1", "backend=socket",
			       hx_prop("path", path), NULL), 0);
	hx_free(b);
}

struct late_client {
	const char *path;
	int fd;
};

static void *connect_later(void *arg)
{
	struct late_client *c = arg;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", c->path);
	for (int i = 0; i < 500; i++) {
		c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (!connect(c->fd, (struct sockaddr *)&sa, sizeof(sa))) {
			if (send(c->fd, "W", 1, 0) != 1)
				break;
			return NULL;
		}
		close(c->fd);
		c->fd = -1;
		usleep(10000);
	}
	return NULL;
}

/* wait=true: creation returns only once a client is there. */
static void test_socket_wait(void)
{
	struct late_client c = { .path = tmp_path("wait.sock"), .fd = -1 };
	struct hx *h = hx_new(0);
	pthread_t t;

	pthread_create(&t, NULL, connect_later, &c);
	CU_ASSERT_FATAL(hx_add(h, "serial-16550", "com1", "backend=socket",
			       hx_prop("path", c.path), "wait=true", NULL) == 0);
	pthread_join(t, NULL);
	CU_ASSERT_FATAL(c.fd >= 0);
	for (int i = 0; i < 50 && !(hx_inb(h, BASE + 5) & 1); i++)
		hx_poll(h, 20);
	CU_ASSERT_EQUAL(hx_inb(h, BASE), 'W');
	close(c.fd);
	hx_free(h);
}

static void test_serial_errors(void)
{
	expect_refusal("backend=serial", "path=/dev/ttyNOPE", NULL,
		       "\"/dev/ttyNOPE\"", "No such file or directory", "chardev-serial");
	expect_refusal("backend=serial", "path=/dev/null", NULL,
		       "\"/dev/null\"", "not a serial port", NULL);
	expect_refusal("backend=serial", NULL, NULL, "path", NULL, NULL);
}

static void test_pty_link_errors(void)
{
	const char *plain = tmp_path("not-a-link");
	FILE *f = fopen(plain, "w");

	fclose(f);
	expect_refusal("backend=pty", hx_prop("link", plain), NULL,
		       plain, "not a symlink", NULL);
	CU_ASSERT_EQUAL(access(plain, F_OK), 0);
	unlink(plain);
	expect_refusal("backend=pty", "link=/nonexistent-dir/pty", NULL,
		       "/nonexistent-dir/pty", "No such file or directory", NULL);
}

static void test_unknown_backend(void)
{
	/* the core lists what is installed, ours among them */
	expect_refusal("backend=bogus", NULL, NULL, "chardev-bogus", "file", "socket");
	/* a backend's own property in the wrong group is unknown */
	expect_refusal("backend=null", "path=/tmp/x", NULL, "unknown property", "path", NULL);
}

static void test_null_backend(void)
{
	struct hx *h = hx_new(0);

	CU_ASSERT_FATAL(hx_add(h, "serial-16550", "com1", "backend=null", NULL) == 0);
	for (int i = 0; i < 1000; i++)
		hx_outb(h, BASE, (uint8_t)i);
	CU_ASSERT_EQUAL(hx_inb(h, BASE + 5), 0x60);
	CU_ASSERT_EQUAL(hx_poll(h, 10), 0);
	CU_ASSERT_EQUAL(hx_inb(h, BASE + 5), 0x60);
	hx_free(h);
}

/* ---- termios mapping (pure) -------------------------------------------- */

static char *slurp(const char *path)
{
	static char buf[256];
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

	if (f)
		fclose(f);
	buf[n] = 0;
	return buf;
}

/* Two chardev backends in one device: "out-path" and "log-path" scope path
 * to each; a bare "path" both would take is refused, naming both. */
static void test_two_backends_scoped_path(void)
{
	const char *out = tmp_path("two-out"), *log = tmp_path("two-log");
	struct hx *h = hx_new(0);

	CU_ASSERT_EQUAL_FATAL(hx_add(h, "test-twochar", "t", "out=file", "log=file",
				     hx_prop("out-path", out), hx_prop("log-path", log),
				     NULL), 0);
	hx_outb(h, 0x530, 'A');
	hx_free(h);
	CU_ASSERT_STRING_EQUAL(slurp(out), "A");
	CU_ASSERT_STRING_EQUAL(slurp(log), "log: 41\n");

	/* one scoped, the other bare: the bare one is no longer shared */
	h = hx_new(0);
	CU_ASSERT_EQUAL_FATAL(hx_add(h, "test-twochar", "t", "out=file", "log=file",
				     hx_prop("path", out), hx_prop("log-path", log),
				     "out-append=false", "log-append=false", NULL), 0);
	hx_outb(h, 0x530, 'B');
	hx_free(h);
	CU_ASSERT_STRING_EQUAL(slurp(out), "B");
	CU_ASSERT_STRING_EQUAL(slurp(log), "log: 42\n");

	h = hx_new(0);
	CU_ASSERT_EQUAL(hx_add(h, "test-twochar", "t", "out=file", "log=file",
			       hx_prop("path", out), NULL), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(h), "property \"path\" would go to both backend \"out\" (chardev-file) and backend \"log\" (chardev-file): write out-path and log-path"));
	/* a scoped name of a property the backend lacks is unknown */
	CU_ASSERT_EQUAL(hx_add(h, "test-twochar", "t2", "out=null", "out-path=x", NULL), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(h), "unknown property \"out-path\""));
	hx_free(h);
	/* one file backend and a null one: a bare path is unambiguous */
	h = hx_new(0);
	CU_ASSERT_EQUAL(hx_add(h, "test-twochar", "t", "out=file", hx_prop("path", out),
			       "append=false", NULL), 0);
	hx_outb(h, 0x530, 'C');
	hx_free(h);
	CU_ASSERT_STRING_EQUAL(slurp(out), "C");
	unlink(out);
	unlink(log);
}

static void test_termios_params(void)
{
	struct modvm_serial_params p = { .baud = 9600, .data_bits = 7,
					 .stop_bits = 2, .parity = 'E' };
	struct termios t;

	memset(&t, 0, sizeof(t));
	t.c_cflag = CS8 | PARODD | CREAD | CLOCAL;
	serial_params_to_termios(&p, &t);
	CU_ASSERT_EQUAL(t.c_cflag & CSIZE, CS7);
	CU_ASSERT(t.c_cflag & PARENB);
	CU_ASSERT(!(t.c_cflag & PARODD));
	CU_ASSERT(!(t.c_cflag & CMSPAR));
	CU_ASSERT(t.c_cflag & CSTOPB);
	CU_ASSERT((t.c_cflag & (CREAD | CLOCAL)) == (CREAD | CLOCAL));
	CU_ASSERT_EQUAL(cfgetospeed(&t), B9600);
	CU_ASSERT_EQUAL(cfgetispeed(&t), B9600);

	p = (struct modvm_serial_params){ .baud = 115200, .data_bits = 8,
					  .stop_bits = 1, .parity = 'N' };
	serial_params_to_termios(&p, &t);
	CU_ASSERT_EQUAL(t.c_cflag & CSIZE, CS8);
	CU_ASSERT(!(t.c_cflag & (PARENB | PARODD | CSTOPB | CMSPAR)));
	CU_ASSERT_EQUAL(cfgetospeed(&t), B115200);

	p.data_bits = 5;
	p.parity = 'O';
	serial_params_to_termios(&p, &t);
	CU_ASSERT_EQUAL(t.c_cflag & CSIZE, CS5);
	CU_ASSERT((t.c_cflag & (PARENB | PARODD | CMSPAR)) == (PARENB | PARODD));
	p.data_bits = 6;
	p.parity = 'M';
	serial_params_to_termios(&p, &t);
	CU_ASSERT_EQUAL(t.c_cflag & CSIZE, CS6);
	CU_ASSERT((t.c_cflag & (PARENB | PARODD | CMSPAR)) == (PARENB | PARODD | CMSPAR));
	p.parity = 'S';
	serial_params_to_termios(&p, &t);
	CU_ASSERT((t.c_cflag & (PARENB | PARODD | CMSPAR)) == (PARENB | CMSPAR));
	/* out-of-range word lengths are clamped, baud 0 keeps the speed */
	p.data_bits = 200;
	p.baud = 0;
	serial_params_to_termios(&p, &t);
	CU_ASSERT_EQUAL(t.c_cflag & CSIZE, CS8);
	CU_ASSERT_EQUAL(cfgetospeed(&t), B115200);
}

static void test_termios_nearest_speed(void)
{
	static const struct { uint32_t in, out; speed_t code; } t[] = {
		{ 115200, 115200, B115200 }, { 38400, 38400, B38400 },
		{ 16457, 19200, B19200 },   /* divisor 7 */
		{ 100000, 115200, B115200 }, { 2, 50, B50 }, { 1, 50, B50 },
		{ 7000000, 4000000, B4000000 }, { 1800, 1800, B1800 },
		{ 14400, 19200, B19200 },   /* 25% vs 50% off */
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		uint32_t actual = 0;
		CU_ASSERT_EQUAL(serial_speed_nearest(t[i].in, &actual), t[i].code);
		CU_ASSERT_EQUAL(actual, t[i].out);
	}
}

static void test_termios_modem_lines(void)
{
	CU_ASSERT_EQUAL(serial_modem_to_tiocm(MODVM_MODEM_DTR), TIOCM_DTR);
	CU_ASSERT_EQUAL(serial_modem_to_tiocm(MODVM_MODEM_RTS | MODVM_MODEM_DTR),
			TIOCM_RTS | TIOCM_DTR);
	/* inputs are not outputs */
	CU_ASSERT_EQUAL(serial_modem_to_tiocm(MODVM_MODEM_CTS | MODVM_MODEM_DCD), 0);
	CU_ASSERT_EQUAL(serial_tiocm_to_modem(TIOCM_CTS | TIOCM_CD),
			MODVM_MODEM_CTS | MODVM_MODEM_DCD);
	CU_ASSERT_EQUAL(serial_tiocm_to_modem(TIOCM_DSR | TIOCM_RI | TIOCM_DTR),
			MODVM_MODEM_DSR | MODVM_MODEM_RI);
}

int main(void)
{
	static const struct test_case tests[] = {
		TEST(test_file_errors),
		TEST(test_socket_errors),
		TEST(test_socket_in_use_and_stale),
		TEST(test_socket_wait),
		TEST(test_serial_errors),
		TEST(test_pty_link_errors),
		TEST(test_unknown_backend),
		TEST(test_null_backend),
		TEST(test_two_backends_scoped_path),
		TEST(test_termios_params),
		TEST(test_termios_nearest_speed),
		TEST(test_termios_modem_lines),
	};
	int r;

	snprintf(dir, sizeof(dir), "/tmp/modvm-chardev-XXXXXX");
	if (!mkdtemp(dir))
		return 2;
	r = RUN_TESTS("chardev backends", tests);
	rmdir(dir);
	return r;
}
