/* chardev-stdio: the escape parser as a pure function; then, in forked
 * children whose stdin/stdout are pipes or a pty, pass-through without a
 * terminal, raw mode and the Ctrl-A keys on a terminal, and the terminal
 * restored on close, at exit and when the process dies of a signal. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <modvm/host.h>

#include "harness.h"
#include "testmain.h"

#include "../../plugins/chardev/stdio/escape.c"

#define BASE 0x3f8
#define LSR (BASE + 5)

/* ---- escape parser --------------------------------------------------- */

/* Run input through the parser; returns guest bytes, records actions. */
static size_t feed(const char *in, size_t len, char *out, enum esc_action *acts,
		   size_t *nacts)
{
	struct esc_state st = { 0 };
	size_t n = 0;

	*nacts = 0;
	for (size_t i = 0; i < len; i++) {
		bool pass;
		enum esc_action a = esc_feed(&st, (uint8_t)in[i], &pass);
		if (pass)
			out[n++] = in[i];
		if (a != ESC_NONE)
			acts[(*nacts)++] = a;
	}
	return n;
}

static void test_escape_parser(void)
{
	enum esc_action acts[8];
	size_t nacts, n;
	char out[32];

	n = feed("plain text", 10, out, acts, &nacts);
	CU_ASSERT_EQUAL(n, 10);
	CU_ASSERT_EQUAL(nacts, 0);
	CU_ASSERT_EQUAL(memcmp(out, "plain text", 10), 0);

	n = feed("a\x01x", 3, out, acts, &nacts);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT_EQUAL(nacts, 1);
	CU_ASSERT_EQUAL(acts[0], ESC_QUIT);

	n = feed("\x01\x01\x01\x01", 4, out, acts, &nacts);
	CU_ASSERT_EQUAL(n, 2); /* each pair is one literal Ctrl-A */
	CU_ASSERT_EQUAL(out[0], 0x01);
	CU_ASSERT_EQUAL(out[1], 0x01);
	CU_ASSERT_EQUAL(nacts, 0);

	n = feed("\x01h\x01?\x01H\x01" "c\x01X\x01z", 12, out, acts, &nacts);
	CU_ASSERT_EQUAL(n, 0);
	CU_ASSERT_EQUAL(nacts, 6);
	CU_ASSERT_EQUAL(acts[0], ESC_HELP);
	CU_ASSERT_EQUAL(acts[1], ESC_HELP);
	CU_ASSERT_EQUAL(acts[2], ESC_HELP);
	CU_ASSERT_EQUAL(acts[3], ESC_MONITOR);
	CU_ASSERT_EQUAL(acts[4], ESC_QUIT);
	CU_ASSERT_EQUAL(acts[5], ESC_UNKNOWN);

	/* "x" alone is text; the prefix does not leak into the next byte */
	n = feed("x\x01\x01x", 4, out, acts, &nacts);
	CU_ASSERT_EQUAL(n, 3);
	CU_ASSERT_EQUAL(memcmp(out, "x\x01x", 3), 0);
	CU_ASSERT_EQUAL(nacts, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(esc_help_text, "Ctrl-A x"));
}

/* A prefix split across two reads still works. */
static void test_escape_split(void)
{
	struct esc_state st = { 0 };
	bool pass;

	CU_ASSERT_EQUAL(esc_feed(&st, 0x01, &pass), ESC_NONE);
	CU_ASSERT_FALSE(pass);
	CU_ASSERT_EQUAL(esc_feed(&st, 'x', &pass), ESC_QUIT);
	CU_ASSERT_FALSE(pass);
	CU_ASSERT_EQUAL(esc_feed(&st, 'x', &pass), ESC_NONE);
	CU_ASSERT_TRUE(pass);
}

/* ---- children ------------------------------------------------------------ */

static struct hx *stdio_uart(void)
{
	struct hx *h = hx_new(0);

	if (hx_add(h, "serial-16550", "com1", "backend=stdio", NULL)) {
		fprintf(stderr, "child: %s\n", hx_error(h));
		_exit(90);
	}
	return h;
}

/* Collect guest input until n bytes or a machine request, 5 s at most. */
static size_t guest_read(struct hx *h, char *buf, size_t n)
{
	size_t got = 0;

	for (int i = 0; i < 250 && got < n && !hx_machine_request(h); i++) {
		hx_poll(h, 20);
		while (got < n && (hx_inb(h, LSR) & 1))
			buf[got++] = (char)hx_inb(h, BASE);
	}
	return got;
}

static void guest_puts(struct hx *h, const char *s)
{
	while (*s)
		hx_outb(h, BASE, (uint8_t)*s++);
}

static int child_pipes(void)
{
	struct hx *h = stdio_uart();
	char buf[16];
	int fills = 0;

	/* no terminal: Ctrl-A x is data, not a command */
	if (guest_read(h, buf, 6) != 6 || memcmp(buf, "\x01x-hi!", 6))
		return 10;
	if (hx_machine_request(h))
		return 11;
	guest_puts(h, "out:");
	/* the parent closes our stdin: noticed once, then quiet */
	hx_poll(h, 2000);
	if (hx_poll(h, 50) != 0)
		return 12;
	/* the parent stops reading: a full pipe must not block us */
	while ((hx_inb(h, LSR) & 0x20) && fills < (1 << 22)) {
		hx_outb(h, BASE, 'f');
		fills++;
	}
	if (hx_inb(h, LSR) & 0x20)
		return 13;
	hx_free(h);
	return 0;
}

static int child_dead_reader(void)
{
	struct hx *h = stdio_uart();

	/* stdout's reader is gone: no SIGPIPE death, bytes are dropped */
	for (int i = 0; i < 100; i++)
		hx_outb(h, BASE, 'd');
	if ((hx_inb(h, LSR) & 0x60) != 0x60)
		return 20;
	hx_free(h);
	return 0;
}

static bool stdin_is_raw(void)
{
	struct termios t;

	return tcgetattr(STDIN_FILENO, &t) == 0 && !(t.c_lflag & (ICANON | ECHO));
}

enum tty_mode { TTY_KEYS, TTY_ABORT, TTY_SIGTERM, TTY_EXIT };

static int child_tty(enum tty_mode mode)
{
	struct rlimit nocore = { 0, 0 };
	struct hx *h;
	char buf[16];

	setrlimit(RLIMIT_CORE, &nocore);
	h = stdio_uart();
	if (!stdin_is_raw())
		return 30;
	switch (mode) {
	case TTY_ABORT:
		abort();
	case TTY_SIGTERM:
		kill(getpid(), SIGTERM);
		return 31;
	case TTY_EXIT:
		exit(0); /* without closing the backend: atexit restores */
	case TTY_KEYS:
		break;
	}
	/* "a", Ctrl-A Ctrl-A, Ctrl-A h, "b", Ctrl-A x */
	if (guest_read(h, buf, 16) != 3 || memcmp(buf, "a\x01" "b", 3))
		return 32;
	if (hx_machine_request(h) != MODVM_REQUEST_QUIT)
		return 33;
	hx_free(h);
	if (stdin_is_raw())
		return 34;
	return 0;
}

static pid_t spawn(int in, int out, int err, int (*fn)(int), int arg)
{
	pid_t pid = fork();

	if (pid)
		return pid;
	setsid();
	dup2(in, STDIN_FILENO);
	dup2(out, STDOUT_FILENO);
	if (err >= 0)
		dup2(err, STDERR_FILENO);
	_exit(fn(arg));
}

static int run_pipes(int unused)
{
	return child_pipes();
}

static int run_dead_reader(int unused)
{
	return child_dead_reader();
}

static int run_tty(int mode)
{
	return child_tty((enum tty_mode)mode);
}

static void test_pipes_pass_through(void)
{
	int in[2], out[2], status;
	char buf[8] = { 0 };
	pid_t pid;

	CU_ASSERT_FATAL(pipe(in) == 0 && pipe(out) == 0);
	pid = spawn(in[0], out[1], -1, run_pipes, 0);
	close(in[0]);
	close(out[1]);
	CU_ASSERT_EQUAL(write(in[1], "\x01x-hi!", 6), 6);
	for (size_t got = 0; got < 4;) {
		ssize_t n = read(out[0], buf + got, 4 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	CU_ASSERT_STRING_EQUAL(buf, "out:");
	close(in[1]);
	CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
	CU_ASSERT(WIFEXITED(status));
	CU_ASSERT_EQUAL(WEXITSTATUS(status), 0);
	close(out[0]);
}

static void test_pipe_reader_gone(void)
{
	int in[2], out[2], status;
	pid_t pid;

	CU_ASSERT_FATAL(pipe(in) == 0 && pipe(out) == 0);
	close(out[0]);
	pid = spawn(in[0], out[1], -1, run_dead_reader, 0);
	close(in[0]);
	close(out[1]);
	CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
	CU_ASSERT(WIFEXITED(status));
	CU_ASSERT_EQUAL(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0);
	close(in[1]);
}

/* A pty for the child's terminal; returns the master, sets *slave. */
static int pty_pair(int *slave)
{
	char name[64];
	int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);

	CU_ASSERT_FATAL(m >= 0 && grantpt(m) == 0 && unlockpt(m) == 0);
	CU_ASSERT_FATAL(ptsname_r(m, name, sizeof(name)) == 0);
	*slave = open(name, O_RDWR | O_NOCTTY);
	CU_ASSERT_FATAL(*slave >= 0);
	return m;
}

static bool master_cooked(int m)
{
	struct termios t;

	return tcgetattr(m, &t) == 0 && (t.c_lflag & ICANON) && (t.c_lflag & ECHO);
}

/* Wait for the child, reading its terminal meanwhile; returns the wait
 * status. Reading stops when the child's side of the pty closes. */
static int reap(pid_t pid, int m, char *out, size_t len)
{
	size_t got = 0;
	int status = 0;

	for (int i = 0; i < 1000; i++) {
		struct pollfd p = { .fd = m, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 10) <= 0)
			continue;
		n = read(m, out + got, len - 1 - got);
		if (n <= 0)
			break; /* EIO: every slave fd is closed */
		got += (size_t)n;
	}
	out[got] = 0;
	waitpid(pid, &status, 0);
	return status;
}

static void test_tty_keys(void)
{
	static char out[4096];
	int slave, m = pty_pair(&slave), status;
	pid_t pid;

	CU_ASSERT_TRUE(master_cooked(m));
	pid = spawn(slave, slave, slave, run_tty, TTY_KEYS);
	close(slave);
	for (int i = 0; i < 500 && master_cooked(m); i++)
		usleep(10000);
	CU_ASSERT_FALSE(master_cooked(m)); /* raw while the VM runs */
	CU_ASSERT_EQUAL(write(m, "a\x01\x01\x01hb\x01x", 8), 8);
	status = reap(pid, m, out, sizeof(out));
	CU_ASSERT(WIFEXITED(status));
	CU_ASSERT_EQUAL(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "modvm console keys"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "quit by user (Ctrl-A x)"));
	/* no echo of the typed keys (a cooked tty echoes Ctrl-A as "^A") */
	CU_ASSERT_PTR_NULL(strstr(out, "^A"));
	CU_ASSERT_PTR_NULL(memchr(out, 0x01, strlen(out)));
	CU_ASSERT_TRUE(master_cooked(m)); /* restored by close */
	close(m);
}

static void tty_dies(enum tty_mode mode, int sig)
{
	static char out[4096];
	int slave, m = pty_pair(&slave), status;
	pid_t pid;

	pid = spawn(slave, slave, slave, run_tty, mode);
	close(slave);
	status = reap(pid, m, out, sizeof(out));
	if (sig) {
		CU_ASSERT(WIFSIGNALED(status));
		CU_ASSERT_EQUAL(WIFSIGNALED(status) ? WTERMSIG(status) : 0, sig);
	} else {
		CU_ASSERT(WIFEXITED(status));
		CU_ASSERT_EQUAL(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0);
	}
	CU_ASSERT_TRUE(master_cooked(m));
	close(m);
}

static void test_tty_restored_on_abort(void)
{
	tty_dies(TTY_ABORT, SIGABRT);
}

static void test_tty_restored_on_sigterm(void)
{
	tty_dies(TTY_SIGTERM, SIGTERM);
}

static void test_tty_restored_at_exit(void)
{
	tty_dies(TTY_EXIT, 0);
}

static void test_one_console(void)
{
	struct hx *h = hx_new(0);

	CU_ASSERT_FATAL(hx_add(h, "serial-16550", "com1", "backend=stdio", NULL) == 0);
	CU_ASSERT_EQUAL(hx_add(h, "serial-16550", "com2", "port=0x2f8", "irq=3",
			       "backend=stdio", NULL), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(h), "already the console of \"com1\""));
	hx_free(h);
	/* released with its machine */
	h = hx_new(0);
	CU_ASSERT_EQUAL(hx_add(h, "serial-16550", "com2", "port=0x2f8", "irq=3",
			       "backend=stdio", NULL), 0);
	hx_free(h);
}

int main(void)
{
	static const struct test_case tests[] = {
		TEST(test_escape_parser),
		TEST(test_escape_split),
		TEST(test_pipes_pass_through),
		TEST(test_pipe_reader_gone),
		TEST(test_tty_keys),
		TEST(test_tty_restored_on_abort),
		TEST(test_tty_restored_on_sigterm),
		TEST(test_tty_restored_at_exit),
		TEST(test_one_console),
	};

	return RUN_TESTS("chardev-stdio", tests);
}
