/* chardev-serial: pass a guest UART through to a host serial port
 * (/dev/ttyS0, /dev/ttyUSB0): bytes both ways, the guest's baud rate, word
 * length, parity, stop bits and break applied to the port, DTR/RTS driven
 * and CTS/DSR/RI/DCD reported back (polled: TIOCMIWAIT would block). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <modvm/modvm.h>

#include "fdio.h"
#include "termios_map.h"

/* Modem input lines are sampled this often, in virtual time. */
#define MODEM_POLL_NS 10000000ull /* 10 ms */

struct serial_be {
	struct fdio io;
	const struct modvm_host *host;
	modvm_inst *inst;
	modvm_chardev *chr;
	int fd;
	struct termios saved;
	bool saved_ok;      /* saved holds the settings to restore */
	modvm_timer *modem_timer;
	bool has_modem;     /* TIOCMGET works (not on a pty) */
	unsigned modem_in;  /* last CTS/DSR/RI/DCD seen */
	bool break_on;
	uint32_t last_baud; /* for the log: what the port really runs at */
};

static const struct modvm_prop_desc props[] = {
	{ .name = "path", .type = MODVM_PROP_STRING, .flags = MODVM_PROP_REQUIRED,
	  .help = "host serial port to pass through, e.g. /dev/ttyS0 or /dev/ttyUSB0" },
	MODVM_PROP_END
};

static void modem_poll(void *opaque)
{
	struct serial_be *s = opaque;
	int tiocm;

	if (ioctl(s->fd, TIOCMGET, &tiocm) == 0) {
		unsigned lines = serial_tiocm_to_modem(tiocm);
		if (lines != s->modem_in) {
			s->modem_in = lines;
			s->host->chardev_modem_changed(s->chr, lines);
		}
	}
	s->host->timer_mod(s->modem_timer,
			   s->host->clock_ns(s->inst) + MODEM_POLL_NS);
}

static int port_setup(struct serial_be *s, const char *path)
{
	struct termios t;
	int tiocm;

	if (!isatty(s->fd)) {
		s->host->set_error(s->inst, "\"%s\" is not a serial port (not a terminal device)",
				   path);
		return -1;
	}
	if (tcgetattr(s->fd, &s->saved)) {
		s->host->set_error(s->inst, "cannot read the settings of \"%s\": %s",
				   path, strerror(errno));
		return -1;
	}
	s->saved_ok = true;
	t = s->saved;
	cfmakeraw(&t);
	t.c_cflag |= CLOCAL | CREAD;
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	if (tcsetattr(s->fd, TCSANOW, &t)) {
		s->host->set_error(s->inst, "cannot set raw mode on \"%s\": %s",
				   path, strerror(errno));
		return -1;
	}
	/* Keep other programs from opening the port while the guest owns it. */
	ioctl(s->fd, TIOCEXCL);
	s->has_modem = ioctl(s->fd, TIOCMGET, &tiocm) == 0;
	if (s->has_modem)
		s->modem_in = serial_tiocm_to_modem(tiocm);
	return 0;
}

static void serial_close(void *be)
{
	struct serial_be *s = be;

	if (s->modem_timer)
		s->host->timer_free(s->modem_timer);
	fdio_stop(&s->io);
	if (s->fd >= 0) {
		if (s->break_on)
			ioctl(s->fd, TIOCCBRK);
		ioctl(s->fd, TIOCNXCL);
		if (s->saved_ok)
			tcsetattr(s->fd, TCSANOW, &s->saved);
		close(s->fd);
	}
	free(s);
}

static void *serial_open(const struct modvm_host *host, modvm_inst *inst,
			 modvm_chardev *chr)
{
	const char *path = host->prop_string(inst, "path");
	struct serial_be *s = calloc(1, sizeof(*s));

	if (!s) {
		host->set_error(inst, "out of memory");
		return NULL;
	}
	s->host = host;
	s->inst = inst;
	s->chr = chr;
	s->fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (s->fd < 0) {
		host->set_error(inst, "cannot open serial port \"%s\": %s", path,
				strerror(errno));
		goto fail;
	}
	if (port_setup(s, path))
		goto fail;
	s->io = (struct fdio){ .host = host, .inst = inst, .chr = chr,
			       .in_fd = s->fd, .out_fd = s->fd,
			       .hup = FDIO_HUP_REPOLL };
	if (fdio_start(&s->io, false))
		goto fail;
	if (s->has_modem) {
		s->modem_timer = host->timer_new(inst, modem_poll, s);
		if (!s->modem_timer) {
			host->set_error(inst, "cannot create a timer");
			goto fail;
		}
		host->timer_mod(s->modem_timer, host->clock_ns(inst) + MODEM_POLL_NS);
	}
	return s;
fail:
	serial_close(s);
	return NULL;
}

static size_t serial_write(void *be, const uint8_t *buf, size_t len)
{
	return fdio_write(&((struct serial_be *)be)->io, buf, len);
}

static void serial_accept_input(void *be)
{
	fdio_accept_input(&((struct serial_be *)be)->io);
}

static int serial_set_params(void *be, const struct modvm_serial_params *p)
{
	struct serial_be *s = be;
	struct termios t;
	uint32_t actual = 0;

	if (tcgetattr(s->fd, &t))
		return -1;
	serial_params_to_termios(p, &t);
	/* TCSANOW: draining first would stall the VM for the wire time. */
	if (tcsetattr(s->fd, TCSANOW, &t))
		s->host->log(s->inst, MODVM_LOG_WARN, "cannot apply %u %u%c%u: %s",
			     p->baud, p->data_bits, p->parity, p->stop_bits,
			     strerror(errno));
	if (p->baud)
		serial_speed_nearest(p->baud, &actual);
	if (actual && actual != s->last_baud)
		s->host->log(s->inst, MODVM_LOG_DEBUG, "guest asks %u baud, port runs at %u",
			     p->baud, actual);
	s->last_baud = actual;
	if (!!p->break_on != s->break_on) {
		s->break_on = p->break_on;
		ioctl(s->fd, p->break_on ? TIOCSBRK : TIOCCBRK);
	}
	return 0;
}

static int serial_set_modem(void *be, unsigned lines)
{
	struct serial_be *s = be;
	int on = serial_modem_to_tiocm(lines);
	int off = serial_modem_to_tiocm(~lines & (MODVM_MODEM_DTR | MODVM_MODEM_RTS));

	if (!s->has_modem)
		return -1;
	if ((on && ioctl(s->fd, TIOCMBIS, &on)) || (off && ioctl(s->fd, TIOCMBIC, &off)))
		return -1;
	return 0;
}

static int serial_get_modem(void *be, unsigned *lines)
{
	struct serial_be *s = be;
	int tiocm;

	if (!s->has_modem || ioctl(s->fd, TIOCMGET, &tiocm))
		return -1;
	s->modem_in = serial_tiocm_to_modem(tiocm);
	*lines = s->modem_in;
	return 0;
}

static const struct modvm_chardev_ops ops = {
	.size = sizeof(ops),
	.open = serial_open,
	.close = serial_close,
	.write = serial_write,
	.accept_input = serial_accept_input,
	.set_params = serial_set_params,
	.set_modem = serial_set_modem,
	.get_modem = serial_get_modem,
};

MODVM_PLUGIN_DEFINE(.kind = MODVM_KIND_CHARDEV, .name = "chardev-serial",
		    .version = "1.0.0",
		    .description = "Host serial port pass-through (line settings, break, modem lines)",
		    .props = props, .ops = &ops);
