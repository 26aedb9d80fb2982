/* chardev-stdio: the guest's console on modvm's own stdin and stdout.
 * On a terminal, stdin is put in raw mode (restored on close, at exit and
 * on fatal signals) and Ctrl-A starts a console command; otherwise bytes
 * pass through untouched so scripts can pipe input in and output out. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <modvm/modvm.h>

#include "escape.h"
#include "fdio.h"

struct stdio_be {
	struct fdio io;
	const struct modvm_host *host;
	modvm_inst *inst;
	struct esc_state esc;
	bool tty;
};

/* The terminal is one per process: one instance may own it. The saved
 * settings are global so the exit and signal paths can reach them. */
static struct stdio_be *owner;
static struct termios saved_tty;
static volatile sig_atomic_t tty_raw;
static bool atexit_registered;

/* Signals whose default action ends the process. The fatal ones always
 * get a handler; the others only while nobody else handles them (modvm's
 * run loop blocks SIGINT/SIGTERM/SIGHUP and takes them with sigwait, and
 * then close() restores the terminal). */
static const int fatal_signals[] = { SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL };
static const int term_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
#define NSIGNALS (MODVM_COUNTOF(fatal_signals) + MODVM_COUNTOF(term_signals))
static struct sigaction old_actions[NSIGNALS];
static bool installed[NSIGNALS];

static int signal_at(size_t i)
{
	size_t nf = MODVM_COUNTOF(fatal_signals);

	return i < nf ? fatal_signals[i] : term_signals[i - nf];
}

static void tty_restore(void)
{
	if (tty_raw) {
		tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
		tty_raw = 0;
	}
}

/* Async-signal-safe: put the terminal back, give the signal its previous
 * disposition and let it happen again. */
static void restore_and_reraise(int sig)
{
	tty_restore();
	for (size_t i = 0; i < NSIGNALS; i++) {
		if (signal_at(i) == sig && installed[i]) {
			sigaction(sig, &old_actions[i], NULL);
			installed[i] = false;
		}
	}
	raise(sig);
}

static void install_handlers(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = restore_and_reraise;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < NSIGNALS; i++) {
		struct sigaction cur;
		bool fatal = i < MODVM_COUNTOF(fatal_signals);

		if (sigaction(signal_at(i), NULL, &cur))
			continue;
		if (!fatal && cur.sa_handler != SIG_DFL)
			continue;
		if (!sigaction(signal_at(i), &sa, &old_actions[i]))
			installed[i] = true;
	}
}

static void remove_handlers(void)
{
	for (size_t i = 0; i < NSIGNALS; i++) {
		struct sigaction cur;

		if (!installed[i])
			continue;
		installed[i] = false;
		/* Leave a handler someone set after us alone. */
		if (!sigaction(signal_at(i), NULL, &cur) &&
		    cur.sa_handler == restore_and_reraise)
			sigaction(signal_at(i), &old_actions[i], NULL);
	}
}

static int tty_make_raw(struct stdio_be *s)
{
	struct termios raw;

	if (tcgetattr(STDIN_FILENO, &saved_tty)) {
		s->host->set_error(s->inst, "cannot read the terminal settings of stdin: %s",
				   strerror(errno));
		return -1;
	}
	raw = saved_tty;
	cfmakeraw(&raw);
	raw.c_cc[VMIN] = 1;
	raw.c_cc[VTIME] = 0;
	if (!atexit_registered && !atexit(tty_restore))
		atexit_registered = true;
	install_handlers();
	tty_raw = 1;
	if (tcsetattr(STDIN_FILENO, TCSANOW, &raw)) {
		tty_raw = 0;
		remove_handlers();
		s->host->set_error(s->inst, "cannot put the terminal in raw mode: %s",
				   strerror(errno));
		return -1;
	}
	return 0;
}

static void say(const char *text)
{
	size_t len = strlen(text);

	while (len) {
		ssize_t n = write(STDERR_FILENO, text, len);
		if (n <= 0)
			return;
		text += n;
		len -= (size_t)n;
	}
}

static void run_command(struct stdio_be *s, enum esc_action a)
{
	switch (a) {
	case ESC_QUIT:
		say("\r\nmodvm: quit by user (Ctrl-A x)\r\n");
		s->host->machine_request(s->inst, MODVM_REQUEST_QUIT);
		break;
	case ESC_HELP:
		say(esc_help_text);
		break;
	case ESC_MONITOR:
		say("\r\nmodvm: the monitor is not available yet\r\n");
		break;
	case ESC_UNKNOWN:
		say("\r\nmodvm: unknown console key; Ctrl-A h for help\r\n");
		break;
	case ESC_NONE:
		break;
	}
}

/* Input filter on a terminal: strip escape commands and run them. */
static size_t stdio_filter(void *opaque, uint8_t *buf, size_t len)
{
	struct stdio_be *s = opaque;
	size_t out = 0;

	for (size_t i = 0; i < len; i++) {
		bool pass;
		enum esc_action a = esc_feed(&s->esc, buf[i], &pass);

		if (pass)
			buf[out++] = buf[i];
		run_command(s, a);
	}
	return out;
}

static void *stdio_open(const struct modvm_host *host, modvm_inst *inst,
			modvm_chardev *chr)
{
	struct stdio_be *s;

	if (owner) {
		host->set_error(inst, "stdin/stdout are already the console of \"%s\"; give this device another backend (pty, socket, file, null)",
				host->inst_id(owner->inst));
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		host->set_error(inst, "out of memory");
		return NULL;
	}
	s->host = host;
	s->inst = inst;
	s->tty = isatty(STDIN_FILENO);
	if (s->tty && tty_make_raw(s))
		goto fail;
	s->io = (struct fdio){ .host = host, .inst = inst, .chr = chr,
			       .in_fd = STDIN_FILENO, .out_fd = STDOUT_FILENO,
			       .hup = FDIO_HUP_STOP, .opaque = s,
			       .filter = s->tty ? stdio_filter : NULL };
	if (fdio_start(&s->io, true))
		goto fail_tty;
	owner = s;
	return s;
fail_tty:
	tty_restore();
	remove_handlers();
fail:
	free(s);
	return NULL;
}

static void stdio_close(void *be)
{
	struct stdio_be *s = be;

	fdio_stop(&s->io);
	tty_restore();
	remove_handlers();
	if (owner == s)
		owner = NULL;
	free(s);
}

static size_t stdio_write(void *be, const uint8_t *buf, size_t len)
{
	return fdio_write(&((struct stdio_be *)be)->io, buf, len);
}

static void stdio_accept_input(void *be)
{
	fdio_accept_input(&((struct stdio_be *)be)->io);
}

static const struct modvm_chardev_ops ops = {
	.size = sizeof(ops),
	.open = stdio_open,
	.close = stdio_close,
	.write = stdio_write,
	.accept_input = stdio_accept_input,
};

MODVM_PLUGIN_DEFINE(.kind = MODVM_KIND_CHARDEV, .name = "chardev-stdio",
		    .version = "1.0.0",
		    .description = "Console on modvm's stdin/stdout (raw terminal, Ctrl-A h for help)",
		    .ops = &ops);
