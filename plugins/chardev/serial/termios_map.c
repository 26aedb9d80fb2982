/* chardev-serial: how a guest's UART settings become host termios flags.
 * Parity follows the UART's LCR meaning: mark and space are "stick"
 * parity, which Linux spells CMSPAR (with PARODD for mark). */
#include "termios_map.h"

#include <sys/ioctl.h>

static const struct {
	uint32_t rate;
	speed_t code;
} speeds[] = {
	{ 50, B50 }, { 75, B75 }, { 110, B110 }, { 134, B134 }, { 150, B150 },
	{ 200, B200 }, { 300, B300 }, { 600, B600 }, { 1200, B1200 },
	{ 1800, B1800 }, { 2400, B2400 }, { 4800, B4800 }, { 9600, B9600 },
	{ 19200, B19200 }, { 38400, B38400 }, { 57600, B57600 },
	{ 115200, B115200 }, { 230400, B230400 }, { 460800, B460800 },
	{ 500000, B500000 }, { 576000, B576000 }, { 921600, B921600 },
	{ 1000000, B1000000 }, { 1152000, B1152000 }, { 1500000, B1500000 },
	{ 2000000, B2000000 }, { 2500000, B2500000 }, { 3000000, B3000000 },
	{ 3500000, B3500000 }, { 4000000, B4000000 },
};

speed_t serial_speed_nearest(uint32_t baud, uint32_t *actual)
{
	size_t best = 0;
	uint64_t best_err = UINT64_MAX;

	for (size_t i = 0; i < sizeof(speeds) / sizeof(speeds[0]); i++) {
		uint64_t r = speeds[i].rate;
		uint64_t diff = r > baud ? r - baud : baud - r;
		/* error relative to the candidate, in millionths */
		uint64_t err = diff * 1000000 / r;

		if (err < best_err) {
			best_err = err;
			best = i;
		}
	}
	if (actual)
		*actual = speeds[best].rate;
	return speeds[best].code;
}

void serial_params_to_termios(const struct modvm_serial_params *p,
			      struct termios *t)
{
	static const tcflag_t sizes[] = { CS5, CS6, CS7, CS8 };
	unsigned bits = p->data_bits < 5 ? 5 : p->data_bits > 8 ? 8 : p->data_bits;
	speed_t speed;

	t->c_cflag &= ~(tcflag_t)(CSIZE | PARENB | PARODD | CMSPAR | CSTOPB);
	t->c_cflag |= sizes[bits - 5];
	if (p->stop_bits >= 2)
		t->c_cflag |= CSTOPB;
	switch (p->parity) {
	case 'E':
		t->c_cflag |= PARENB;
		break;
	case 'O':
		t->c_cflag |= PARENB | PARODD;
		break;
	case 'M':
		t->c_cflag |= PARENB | CMSPAR | PARODD;
		break;
	case 'S':
		t->c_cflag |= PARENB | CMSPAR;
		break;
	default:
		break;
	}
	if (p->baud) {
		speed = serial_speed_nearest(p->baud, NULL);
		cfsetispeed(t, speed);
		cfsetospeed(t, speed);
	}
}

int serial_modem_to_tiocm(unsigned lines)
{
	return (lines & MODVM_MODEM_DTR ? TIOCM_DTR : 0) |
	       (lines & MODVM_MODEM_RTS ? TIOCM_RTS : 0);
}

unsigned serial_tiocm_to_modem(int tiocm)
{
	return (tiocm & TIOCM_CTS ? MODVM_MODEM_CTS : 0) |
	       (tiocm & TIOCM_DSR ? MODVM_MODEM_DSR : 0) |
	       (tiocm & TIOCM_RI ? MODVM_MODEM_RI : 0) |
	       (tiocm & TIOCM_CD ? MODVM_MODEM_DCD : 0);
}
