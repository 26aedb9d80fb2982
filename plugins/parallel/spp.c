/* parallel-spp: a PC parallel port (IEEE 1284 compatibility mode, "SPP")
 * with its three registers. Either a virtual printer is attached whose
 * paper is a chardev backend (every byte strobed out lands there, with the
 * BUSY/ACK handshake and the ACK interrupt), or the registers go to the
 * host's real port through ppdev. Register names after IEEE 1284-2000
 * annex and the IBM PC/AT technical reference. */
#include <string.h>

#include <modvm/modvm.h>

#include "ppdev.h"

#define SPP_DATA 0
#define SPP_STATUS 1
#define SPP_CONTROL 2
#define SPP_NPORTS 3

/* Status register: the pins as seen by the PC (nBUSY is inverted). */
#define STS_NIRQ 0x04     /* PS/2 ports: 0 = an ACK interrupt occurred */
#define STS_NERROR 0x08   /* 1 = no error */
#define STS_SELECT 0x10   /* 1 = printer on line */
#define STS_PE 0x20       /* 1 = paper end */
#define STS_NACK 0x40     /* 0 while the printer acknowledges */
#define STS_NBUSY 0x80    /* 0 while the printer is busy */
#define STS_RESERVED 0x03 /* unused, read as 1 (no EPP timeout) */

/* Control register: register bit 1 asserts the pin, except INIT. */
#define CTL_STROBE 0x01
#define CTL_AUTOFD 0x02
#define CTL_NINIT 0x04    /* 0 = initialise the printer */
#define CTL_SELECT_IN 0x08
#define CTL_IRQEN 0x10    /* ACK raises the IRQ line */
#define CTL_DIR 0x20      /* PS/2 bidirectional: 1 = data lines are inputs */
#define CTL_MASK 0x3f

/* The virtual printer's handshake (IEEE 1284 compatibility mode): BUSY
 * from the strobe until the end of the ACK pulse. */
#define PRINTER_BUSY_NS 5000ull   /* strobe to ACK */
#define PRINTER_ACK_NS 5000ull    /* ACK pulse width */
#define PRINTER_RETRY_NS 100000ull /* backend full: look again */

enum spp_mode { MODE_CHARDEV, MODE_PPDEV };
enum printer_phase { PH_IDLE, PH_BUSY, PH_ACK, PH_COUNT };

struct spp {
	struct modvm_dev dev;
	uint16_t port;          /* properties */
	unsigned irq;
	int mode;               /* enum spp_mode */
	const char *ppdev_path;
	modvm_chardev *chr;
	modvm_region *region;
	modvm_timer *timer;
	modvm_watch *irq_watch;
	int pp_fd;
	bool irq_out;

	/* "spp" state section */
	uint8_t data;
	uint8_t ctrl;
	bool irq_flag;        /* status nIRQ reads 0 until status is read */
	uint8_t phase;        /* enum printer_phase */
	bool pending;         /* byte strobed in, not yet taken by the backend */
	uint8_t pending_byte;
	uint64_t deadline;    /* next phase step, virtual ns; 0 = none */
};

static const char *const modes[] = { "chardev", "ppdev", NULL };

static uint64_t now_ns(const struct spp *p)
{
	return p->dev.host->clock_ns(p->dev.inst);
}

/* The PC gates -ACK with the IRQ enable bit onto the ISA line. */
static void update_irq(struct spp *p)
{
	bool level = p->mode == MODE_CHARDEV && p->phase == PH_ACK &&
		     (p->ctrl & CTL_IRQEN);

	if (level == p->irq_out)
		return;
	p->irq_out = level;
	p->dev.host->irq_set(p->dev.inst, p->irq, level);
}

static void schedule(struct spp *p, uint64_t delay)
{
	p->deadline = now_ns(p) + delay;
	p->dev.host->timer_mod(p->timer, p->deadline);
}

static void printer_idle(struct spp *p)
{
	p->phase = PH_IDLE;
	p->pending = false;
	p->deadline = 0;
	p->dev.host->timer_del(p->timer);
}

/* The printer takes the byte off the lines into its paper (the backend). */
static bool printer_output(struct spp *p)
{
	if (!p->pending)
		return true;
	if (!p->dev.host->chardev_write(p->chr, &p->pending_byte, 1))
		return false;
	p->pending = false;
	return true;
}

static void printer_step(void *opaque)
{
	struct spp *p = opaque;

	p->deadline = 0;
	switch (p->phase) {
	case PH_BUSY:
		if (!printer_output(p)) {
			schedule(p, PRINTER_RETRY_NS);
			return;
		}
		p->phase = PH_ACK;
		if (p->ctrl & CTL_IRQEN)
			p->irq_flag = true;
		schedule(p, PRINTER_ACK_NS);
		break;
	case PH_ACK:
		p->phase = PH_IDLE;
		break;
	default:
		break;
	}
	update_irq(p);
}

/* Data is taken on the leading edge of nSTROBE; a busy printer or lines
 * turned around for input (PS/2 reverse) give it nothing. */
static void printer_strobe(struct spp *p)
{
	if (p->phase != PH_IDLE || (p->ctrl & CTL_DIR))
		return;
	p->pending = true;
	p->pending_byte = p->data;
	p->phase = PH_BUSY;
	schedule(p, printer_output(p) ? PRINTER_BUSY_NS : PRINTER_RETRY_NS);
}

static uint8_t status_read(struct spp *p)
{
	uint8_t v;

	if (p->mode == MODE_PPDEV)
		v = (ppdev_read_status(p->pp_fd) & 0xf8) | STS_RESERVED | STS_NIRQ;
	else
		v = STS_RESERVED | STS_NIRQ | STS_NERROR | STS_SELECT |
		    (p->phase == PH_IDLE ? STS_NBUSY : 0) |
		    (p->phase == PH_ACK ? 0 : STS_NACK);
	if (p->irq_flag)
		v &= (uint8_t)~STS_NIRQ;
	p->irq_flag = false;
	return v;
}

static void control_write(struct spp *p, uint8_t v)
{
	uint8_t old = p->ctrl;

	p->ctrl = v & CTL_MASK;
	if (p->mode == MODE_PPDEV) {
		ppdev_write_control(p->pp_fd, p->ctrl, p->ctrl & CTL_DIR);
		return;
	}
	/* Asserting nINIT resets the printer: it forgets what it was doing. */
	if ((old & CTL_NINIT) && !(p->ctrl & CTL_NINIT))
		printer_idle(p);
	if ((p->ctrl & CTL_STROBE) && !(old & CTL_STROBE))
		printer_strobe(p);
}

static uint8_t reg_read(struct spp *p, unsigned reg)
{
	switch (reg) {
	case SPP_DATA:
		if (p->mode == MODE_PPDEV)
			return ppdev_read_data(p->pp_fd);
		/* In reverse, nothing drives the lines: pull-ups read 1s. */
		return (p->ctrl & CTL_DIR) ? 0xff : p->data;
	case SPP_STATUS:
		return status_read(p);
	default:
		return p->ctrl | 0xc0;
	}
}

static void reg_write(struct spp *p, unsigned reg, uint8_t v)
{
	switch (reg) {
	case SPP_DATA:
		p->data = v;
		if (p->mode == MODE_PPDEV)
			ppdev_write_data(p->pp_fd, v);
		break;
	case SPP_CONTROL:
		control_write(p, v);
		break;
	default:
		break; /* status is read-only */
	}
}

static uint64_t spp_io_read(void *opaque, uint64_t off, unsigned size)
{
	struct spp *p = opaque;
	uint64_t v = 0;

	for (unsigned i = 0; i < size && i < 8; i++) {
		uint64_t b = off + i < SPP_NPORTS ? reg_read(p, (unsigned)(off + i)) : 0xff;
		v |= b << (8 * i);
	}
	update_irq(p);
	return v;
}

static void spp_io_write(void *opaque, uint64_t off, uint64_t v, unsigned size)
{
	struct spp *p = opaque;

	for (unsigned i = 0; i < size && i < 8; i++)
		if (off + i < SPP_NPORTS)
			reg_write(p, (unsigned)(off + i), (uint8_t)(v >> (8 * i)));
	update_irq(p);
}

static const struct modvm_io_ops spp_io = { spp_io_read, spp_io_write };

/* ppdev: the host port interrupted (its ACK line); pass it on as a pulse
 * if the guest enabled interrupts. */
static void ppdev_irq_ready(void *opaque, int fd, unsigned revents)
{
	struct spp *p = opaque;

	if (ppdev_take_irqs(fd) <= 0 || !(p->ctrl & CTL_IRQEN))
		return;
	p->irq_flag = true;
	p->dev.host->irq_set(p->dev.inst, p->irq, 1);
	p->dev.host->irq_set(p->dev.inst, p->irq, 0);
}

/* The virtual printer prints, it does not type: input is refused. */
static size_t fe_can_receive(void *opaque)
{
	return 0;
}

static void fe_receive(void *opaque, const uint8_t *buf, size_t len)
{
}

static const struct modvm_chardev_frontend frontend = {
	.can_receive = fe_can_receive,
	.receive = fe_receive,
};

/* ---- state -------------------------------------------------------------- */

static int spp_post_load(void *opaque)
{
	struct spp *p = opaque;
	int bad = (p->ctrl & ~CTL_MASK) || p->phase >= PH_COUNT;

	p->ctrl &= CTL_MASK;
	if (p->phase >= PH_COUNT || p->mode == MODE_PPDEV)
		printer_idle(p);
	if (p->phase == PH_IDLE) {
		p->pending = false;
		p->deadline = 0;
		p->dev.host->timer_del(p->timer);
	} else {
		p->dev.host->timer_mod(p->timer, p->deadline ? p->deadline : now_ns(p));
	}
	if (p->mode == MODE_PPDEV) {
		ppdev_write_data(p->pp_fd, p->data);
		ppdev_write_control(p->pp_fd, p->ctrl, p->ctrl & CTL_DIR);
	}
	p->irq_out = p->mode == MODE_CHARDEV && p->phase == PH_ACK &&
		     (p->ctrl & CTL_IRQEN);
	p->dev.host->irq_set(p->dev.inst, p->irq, p->irq_out);
	return bad ? -1 : 0;
}

#define P struct spp
MODVM_STATE_SECTION_HOOKS(spp_state, "spp", 1, 1, NULL, spp_post_load,
	MODVM_F_U8(P, data), MODVM_F_U8(P, ctrl), MODVM_F_BOOL(P, irq_flag),
	MODVM_F_U8(P, phase), MODVM_F_BOOL(P, pending),
	MODVM_F_U8(P, pending_byte), MODVM_F_U64(P, deadline));
#undef P

/* ---- lifetime ----------------------------------------------------------- */

/* After reset the lines are idle with the printer selected and out of
 * initialisation, as PC firmware leaves them (control 0x0c). */
static void spp_reset(void *dev)
{
	struct spp *p = dev;

	p->data = 0;
	p->ctrl = CTL_NINIT | CTL_SELECT_IN;
	p->irq_flag = false;
	printer_idle(p);
	if (p->mode == MODE_PPDEV) {
		ppdev_write_data(p->pp_fd, p->data);
		ppdev_write_control(p->pp_fd, p->ctrl, false);
	}
	update_irq(p);
}

/* The fd is ours; the core drops the region, timer and chardev. */
static void spp_destroy(void *dev)
{
	struct spp *p = dev;

	if (p->irq_watch)
		p->dev.host->fd_unwatch(p->irq_watch);
	if (p->pp_fd >= 0)
		ppdev_close(p->pp_fd);
	if (p->irq_out)
		p->dev.host->irq_set(p->dev.inst, p->irq, 0);
}

static int open_ppdev(struct spp *p)
{
	char err[512];

	p->pp_fd = ppdev_open(p->ppdev_path, err, sizeof(err));
	if (p->pp_fd < 0) {
		p->dev.host->set_error(p->dev.inst, "%s", err);
		return -1;
	}
	p->irq_watch = p->dev.host->fd_watch(p->dev.inst, p->pp_fd, MODVM_FD_IN,
					     ppdev_irq_ready, p);
	return 0;
}

static int spp_init(void *dev)
{
	struct spp *p = dev;
	const struct modvm_host *host = p->dev.host;

	p->pp_fd = -1;
	p->region = host->pio_register(p->dev.inst, p->port, SPP_NPORTS, &spp_io, p);
	p->timer = host->timer_new(p->dev.inst, printer_step, p);
	if (!p->region || !p->timer)
		return -1;
	if (p->mode == MODE_PPDEV ? open_ppdev(p) :
	    !(p->chr = host->chardev_open(p->dev.inst, "backend", &frontend, p)))
		return -1;
	spp_reset(p);
	return 0;
}

MODVM_DEVICE_DEFINE(.name = "parallel-spp", .version = "1.0.0",
	.description = "PC parallel port (SPP) with a virtual printer or host ppdev pass-through",
	.props = MODVM_PROPS(
		MODVM_PROP_INT(struct spp, port, "port", "0x378", 0, 0xfffd,
			       "base I/O port (LPT1 0x378, LPT2 0x278, MDA 0x3bc)"),
		MODVM_PROP_INT(struct spp, irq, "irq", "7", 0, 15,
			       "ISA interrupt line (LPT1: 7, LPT2: 5)"),
		MODVM_PROP_ENUM(struct spp, mode, "mode", "chardev", modes,
				"chardev: a virtual printer writing to the backend; ppdev: the host port at ppdev-path"),
		MODVM_PROP_BACKEND_("backend", "null", MODVM_KIND_CHARDEV,
				    "mode chardev: where printed bytes go (file, pty, socket, null, ...)"),
		MODVM_PROP_STRING(struct spp, ppdev_path, "ppdev-path", "/dev/parport0",
				  "mode ppdev: the host parallel port device")),
	.state = MODVM_STATE(&spp_state),
	.ops = MODVM_DEVICE_OPS(struct spp, .init = spp_init, .destroy = spp_destroy,
				.reset = spp_reset));
