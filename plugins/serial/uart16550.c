/* serial-16550: the PC's serial port, a National Semiconductor PC16550D
 * UART with 16-byte FIFOs, its four prioritised interrupt sources and the
 * modem lines, connected to a chardev backend. Register and bit names and
 * the section numbers cited are those of the PC16550D datasheet (1995).
 * Bytes leave as soon as the guest writes them (no wire-time pacing). */
#include <string.h>

#include <modvm/modvm.h>

/* Registers (section 8.1, table II), offsets from the base port. */
#define UART_RBR 0 /* receiver buffer (read, DLAB=0) */
#define UART_THR 0 /* transmitter holding (write, DLAB=0) */
#define UART_DLL 0 /* divisor latch LSB (DLAB=1) */
#define UART_IER 1 /* interrupt enable (DLAB=0) */
#define UART_DLM 1 /* divisor latch MSB (DLAB=1) */
#define UART_IIR 2 /* interrupt identification (read) */
#define UART_FCR 2 /* FIFO control (write) */
#define UART_LCR 3 /* line control */
#define UART_MCR 4 /* modem control */
#define UART_LSR 5 /* line status */
#define UART_MSR 6 /* modem status */
#define UART_SCR 7 /* scratch */
#define UART_NPORTS 8

#define IER_ERBFI 0x01 /* received data available (and timeout) */
#define IER_ETBEI 0x02 /* transmitter holding register empty */
#define IER_ELSI 0x04  /* receiver line status */
#define IER_EDSSI 0x08 /* modem status */
#define IER_MASK 0x0f

#define IIR_NO_INT 0x01
#define IIR_ID_RLS 0x06  /* receiver line status: priority 1 */
#define IIR_ID_RDA 0x04  /* received data available: priority 2 */
#define IIR_ID_CTI 0x0c  /* character timeout indication: priority 2 */
#define IIR_ID_THRE 0x02 /* THR empty: priority 3 */
#define IIR_ID_MS 0x00   /* modem status: priority 4 */
#define IIR_FIFOS 0xc0   /* set when FCR0 = 1 */

#define FCR_FIFOE 0x01 /* FIFO enable */
#define FCR_RFR 0x02   /* RCVR FIFO reset (self-clearing) */
#define FCR_XFR 0x04   /* XMIT FIFO reset (self-clearing) */
#define FCR_DMS 0x08   /* DMA mode select (RXRDY/TXRDY pins only) */
#define FCR_RTL 0xc0   /* RCVR trigger level */
#define FCR_KEPT (FCR_FIFOE | FCR_DMS | FCR_RTL)

#define LCR_WLS 0x03  /* word length select: 5 + value bits */
#define LCR_STB 0x04  /* 2 stop bits (1.5 with 5-bit words) */
#define LCR_PEN 0x08  /* parity enable */
#define LCR_EPS 0x10  /* even parity select */
#define LCR_SP 0x20   /* stick parity */
#define LCR_SB 0x40   /* set break */
#define LCR_DLAB 0x80 /* divisor latch access */

#define MCR_DTR 0x01
#define MCR_RTS 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08 /* on a PC: enables the IRQ line driver */
#define MCR_LOOP 0x10
#define MCR_MASK 0x1f

#define LSR_DR 0x01   /* data ready */
#define LSR_OE 0x02   /* overrun error */
#define LSR_PE 0x04   /* parity error */
#define LSR_FE 0x08   /* framing error */
#define LSR_BI 0x10   /* break interrupt */
#define LSR_THRE 0x20 /* THR (XMIT FIFO) empty */
#define LSR_TEMT 0x40 /* transmitter empty */
#define LSR_ERR 0x80  /* error in RCVR FIFO */
#define LSR_CHAR_ERRS (LSR_PE | LSR_FE | LSR_BI) /* travel with a character */
#define LSR_LATCHED (LSR_OE | LSR_CHAR_ERRS)     /* cleared by reading LSR */

#define MSR_DCTS 0x01
#define MSR_DDSR 0x02
#define MSR_TERI 0x04
#define MSR_DDCD 0x08
#define MSR_DELTAS 0x0f
#define MSR_CTS 0x10
#define MSR_DSR 0x20
#define MSR_RI 0x40
#define MSR_DCD 0x80

#define FIFO_SIZE 16
#define UART_CLOCK_HZ 1843200u /* the PC's crystal: divisor 1 = 115200 baud */
/* A backend that took only part of the XMIT FIFO is tried again after the
 * wire time of what is left, within these bounds (virtual ns). */
#define TX_RETRY_MIN_NS 100000ull
#define TX_RETRY_MAX_NS 10000000ull

struct uart {
	struct modvm_dev dev;
	uint16_t port;         /* property "port" */
	unsigned irq;          /* property "irq" */
	/* Wiring, set up by init. */
	modvm_chardev *chr;
	modvm_region *region;
	modvm_timer *cti_timer;
	modvm_timer *tx_timer;
	/* Derived; recomputed after a load. */
	bool irq_out;          /* level last driven on the IRQ line */
	bool rx_held;          /* the backend waits for accept_input */
	bool params_known;     /* params_sent is what the backend has */
	struct modvm_serial_params params_sent;
	int modem_sent;        /* DTR/RTS last given to the backend, -1 none */

	/* Guest-visible state (the "uart" state section). */
	uint8_t dll, dlm, ier, fcr, lcr, mcr;
	uint8_t lsr;           /* only the LSR_LATCHED bits; the rest derive */
	uint8_t msr, scr;
	uint8_t rbr;           /* last character read, what an empty RBR shows */
	bool thri;             /* THRE interrupt pending (8.4: IIR read clears) */
	bool cti;              /* character timeout indication pending */
	uint32_t rx_count;
	uint8_t rx_fifo[FIFO_SIZE];
	uint8_t rx_flags[FIFO_SIZE]; /* PE/FE/BI of each character not yet at the top */
	uint32_t tx_count;
	uint8_t tx_fifo[FIFO_SIZE];   /* bytes the backend has not taken yet */
	uint64_t cti_deadline; /* virtual ns, 0: timer idle */
	uint64_t tx_deadline;
	uint32_t modem_in;     /* backend input lines, MODVM_MODEM_* */
};

/* ---- small helpers --------------------------------------------------- */

static bool fifo_on(const struct uart *u)
{
	return u->fcr & FCR_FIFOE;
}

/* Without FIFOs (16450 mode) RBR and THR hold one character each. */
static uint32_t fifo_capacity(const struct uart *u)
{
	return fifo_on(u) ? FIFO_SIZE : 1;
}

static uint32_t rx_trigger(const struct uart *u)
{
	static const uint8_t levels[4] = { 1, 4, 8, 14 };

	return fifo_on(u) ? levels[u->fcr >> 6] : 1;
}

static uint64_t now_ns(const struct uart *u)
{
	return u->dev.host->clock_ns(u->dev.inst);
}

/* One character on the wire at the programmed rate: start bit, data,
 * parity, stop bits (1.5 counted as 1.5), in virtual ns. */
static uint64_t char_ns(const struct uart *u)
{
	unsigned divisor = u->dll | (unsigned)u->dlm << 8;
	unsigned half_bits = 2 * (1 + 5 + (u->lcr & LCR_WLS) + !!(u->lcr & LCR_PEN));

	if (!divisor)
		divisor = 0x10000; /* the 16-bit counter wraps: the slowest rate */
	if (!(u->lcr & LCR_STB))
		half_bits += 2;
	else
		half_bits += (u->lcr & LCR_WLS) ? 4 : 3;
	return (uint64_t)half_bits * divisor * 16 * 1000000000ull /
	       (2ull * UART_CLOCK_HZ);
}

/* ---- interrupts (section 8.4 and table IV) ---------------------------- */

static bool rda_pending(const struct uart *u)
{
	return u->rx_count && u->rx_count >= rx_trigger(u);
}

static uint8_t iir_value(const struct uart *u)
{
	uint8_t fifos = fifo_on(u) ? IIR_FIFOS : 0;

	if ((u->ier & IER_ELSI) && (u->lsr & LSR_LATCHED))
		return fifos | IIR_ID_RLS;
	if ((u->ier & IER_ERBFI) && u->cti)
		return fifos | IIR_ID_CTI;
	if ((u->ier & IER_ERBFI) && rda_pending(u))
		return fifos | IIR_ID_RDA;
	if ((u->ier & IER_ETBEI) && u->thri)
		return fifos | IIR_ID_THRE;
	if ((u->ier & IER_EDSSI) && (u->msr & MSR_DELTAS))
		return fifos | IIR_ID_MS;
	return fifos | IIR_NO_INT;
}

/* The PC wires the INTRPT pin through a driver enabled by -OUT2; in loop
 * mode the -OUT pins are forced inactive (8.6), so the line stays low. */
static void update_irq(struct uart *u)
{
	bool level = !(iir_value(u) & IIR_NO_INT) && (u->mcr & MCR_OUT2) &&
		     !(u->mcr & MCR_LOOP);

	if (level == u->irq_out)
		return;
	u->irq_out = level;
	u->dev.host->irq_set(u->dev.inst, u->irq, level);
}

/* ---- backend line settings -------------------------------------------- */

static void push_params(struct uart *u, bool force)
{
	/* indexed by LCR bits 5..3: stick parity, EPS, PEN */
	static const char parity_of[8] = { 'N', 'O', 'N', 'E', 'N', 'M', 'N', 'S' };
	unsigned divisor = u->dll | (unsigned)u->dlm << 8;
	struct modvm_serial_params p;

	if (!divisor)
		return; /* no meaningful rate: the guest is still programming */
	memset(&p, 0, sizeof(p));
	p.baud = (UART_CLOCK_HZ / 16 + divisor / 2) / divisor;
	p.data_bits = 5 + (u->lcr & LCR_WLS);
	p.stop_bits = (u->lcr & LCR_STB) ? 2 : 1;
	/* PEN, EPS, stick parity: with stick parity EPS=0 sends a 1 (mark),
	 * EPS=1 a 0 (space) (8.5, LCR bit 5). */
	p.parity = parity_of[(u->lcr >> 3) & 7];
	/* In loop mode the serial output is held marking (8.6). */
	p.break_on = (u->lcr & LCR_SB) && !(u->mcr & MCR_LOOP);
	if (!force && u->params_known && !memcmp(&p, &u->params_sent, sizeof(p)))
		return;
	u->params_sent = p;
	u->params_known = true;
	u->dev.host->chardev_set_params(u->chr, &p);
}

static void push_modem(struct uart *u, bool force)
{
	int lines = 0;

	if (!(u->mcr & MCR_LOOP))
		lines = (u->mcr & MCR_DTR ? MODVM_MODEM_DTR : 0) |
			(u->mcr & MCR_RTS ? MODVM_MODEM_RTS : 0);
	if (!force && lines == u->modem_sent)
		return;
	u->modem_sent = lines;
	u->dev.host->chardev_set_modem(u->chr, (unsigned)lines);
}

/* ---- modem status ------------------------------------------------------ */

/* New input levels (the MSR_CTS..MSR_DCD bits); sets the delta bits as
 * table II describes them. TERI is set when RI goes from on to off. */
static void msr_set_inputs(struct uart *u, uint8_t in)
{
	uint8_t old = u->msr;
	uint8_t changed = (old ^ in) & 0xf0;
	uint8_t d = 0;

	if (changed & MSR_CTS)
		d |= MSR_DCTS;
	if (changed & MSR_DSR)
		d |= MSR_DDSR;
	if ((old & MSR_RI) && !(in & MSR_RI))
		d |= MSR_TERI;
	if (changed & MSR_DCD)
		d |= MSR_DDCD;
	u->msr = (uint8_t)((old & MSR_DELTAS) | d | (in & 0xf0));
}

/* Loop mode feeds RTS to CTS, DTR to DSR, OUT1 to RI and OUT2 to DCD. */
static uint8_t msr_inputs(const struct uart *u)
{
	if (u->mcr & MCR_LOOP)
		return (u->mcr & MCR_RTS ? MSR_CTS : 0) |
		       (u->mcr & MCR_DTR ? MSR_DSR : 0) |
		       (u->mcr & MCR_OUT1 ? MSR_RI : 0) |
		       (u->mcr & MCR_OUT2 ? MSR_DCD : 0);
	return (u->modem_in & MODVM_MODEM_CTS ? MSR_CTS : 0) |
	       (u->modem_in & MODVM_MODEM_DSR ? MSR_DSR : 0) |
	       (u->modem_in & MODVM_MODEM_RI ? MSR_RI : 0) |
	       (u->modem_in & MODVM_MODEM_DCD ? MSR_DCD : 0);
}

/* ---- receiver ----------------------------------------------------------- */

/* The character timeout (8.4.3): with FIFOs on and characters waiting,
 * an interrupt after four character times without input or reads. */
static void cti_restart(struct uart *u)
{
	if (fifo_on(u) && u->rx_count) {
		u->cti_deadline = now_ns(u) + 4 * char_ns(u);
		u->dev.host->timer_mod(u->cti_timer, u->cti_deadline);
	} else {
		u->cti_deadline = 0;
		u->dev.host->timer_del(u->cti_timer);
	}
}

static void cti_expired(void *opaque)
{
	struct uart *u = opaque;

	u->cti_deadline = 0;
	if (fifo_on(u) && u->rx_count)
		u->cti = true;
	update_irq(u);
}

/* PE, FE and BI show in LSR when their character reaches the top of the
 * FIFO (8.6.3, LSR bits 2-4). */
static void reveal_top(struct uart *u)
{
	u->lsr |= u->rx_flags[0] & LSR_CHAR_ERRS;
	u->rx_flags[0] = 0;
}

static void rx_push(struct uart *u, uint8_t c, uint8_t flags)
{
	if (u->rx_count >= fifo_capacity(u)) {
		u->lsr |= LSR_OE;
		/* 16450 mode: the new character replaces the unread one;
		 * with FIFOs the one in the shift register is lost. */
		if (!fifo_on(u)) {
			u->rx_fifo[0] = c;
			u->lsr |= flags & LSR_CHAR_ERRS;
		}
		return;
	}
	u->rx_fifo[u->rx_count] = c;
	u->rx_flags[u->rx_count] = flags & LSR_CHAR_ERRS;
	u->rx_count++;
	if (u->rx_count == 1)
		reveal_top(u);
	cti_restart(u);
}

static void rx_clear(struct uart *u)
{
	u->rx_count = 0;
	memset(u->rx_flags, 0, sizeof(u->rx_flags));
	u->cti = false;
	cti_restart(u);
}

/* The receiver has room again: let a waiting backend deliver. */
static void rx_release(struct uart *u)
{
	if (!u->rx_held || (u->mcr & MCR_LOOP) || u->rx_count >= fifo_capacity(u))
		return;
	u->rx_held = false;
	u->dev.host->chardev_accept_input(u->chr);
}

static uint8_t rbr_read(struct uart *u)
{
	if (!u->rx_count)
		return u->rbr;
	u->rbr = u->rx_fifo[0];
	u->rx_count--;
	memmove(u->rx_fifo, u->rx_fifo + 1, u->rx_count);
	memmove(u->rx_flags, u->rx_flags + 1, u->rx_count);
	u->rx_flags[u->rx_count] = 0;
	if (u->rx_count)
		reveal_top(u);
	u->cti = false;
	cti_restart(u);
	rx_release(u);
	return u->rbr;
}

/* ---- transmitter ------------------------------------------------------ */

static void tx_arm_retry(struct uart *u)
{
	uint64_t wait = char_ns(u) * u->tx_count;

	if (wait < TX_RETRY_MIN_NS)
		wait = TX_RETRY_MIN_NS;
	if (wait > TX_RETRY_MAX_NS)
		wait = TX_RETRY_MAX_NS;
	u->tx_deadline = now_ns(u) + wait;
	u->dev.host->timer_mod(u->tx_timer, u->tx_deadline);
}

/* Give the XMIT FIFO to the backend. What it does not take stays, and
 * THRE/TEMT stay clear until a retry gets it out. */
static void tx_flush(struct uart *u)
{
	size_t n;

	if (!u->tx_count)
		return;
	n = u->dev.host->chardev_write(u->chr, u->tx_fifo, u->tx_count);
	if (n > u->tx_count)
		n = u->tx_count;
	u->tx_count -= (uint32_t)n;
	memmove(u->tx_fifo, u->tx_fifo + n, u->tx_count);
	if (u->tx_count) {
		tx_arm_retry(u);
		return;
	}
	u->tx_deadline = 0;
	u->dev.host->timer_del(u->tx_timer);
	u->thri = true;
}

static void tx_retry(void *opaque)
{
	struct uart *u = opaque;

	u->tx_deadline = 0;
	tx_flush(u);
	update_irq(u);
}

static void thr_write(struct uart *u, uint8_t c)
{
	u->thri = false;
	if (u->mcr & MCR_LOOP) {
		/* 8.6: the transmitter shift register feeds the receiver. */
		rx_push(u, c, 0);
		u->thri = true;
		return;
	}
	/* A full THR/XMIT FIFO loses what the guest writes, as the chip
	 * would; a guest that honours THRE never gets here. */
	if (u->tx_count < fifo_capacity(u))
		u->tx_fifo[u->tx_count++] = c;
	tx_flush(u);
	if (!u->tx_count)
		u->thri = true;
}

/* ---- registers ---------------------------------------------------------- */

static uint8_t lsr_read(struct uart *u)
{
	uint8_t v = u->lsr;
	bool fifo_err = u->lsr & LSR_CHAR_ERRS;

	if (u->rx_count)
		v |= LSR_DR;
	if (!u->tx_count)
		v |= LSR_THRE | LSR_TEMT;
	for (uint32_t i = 1; i < u->rx_count && !fifo_err; i++)
		fifo_err = u->rx_flags[i] != 0;
	if (fifo_on(u) && fifo_err)
		v |= LSR_ERR;
	u->lsr &= (uint8_t)~LSR_LATCHED;
	return v;
}

static void tx_clear(struct uart *u)
{
	if (!u->tx_count)
		return;
	u->tx_count = 0;
	u->tx_deadline = 0;
	u->dev.host->timer_del(u->tx_timer);
	u->thri = true; /* THR just became empty */
}

static void fcr_write(struct uart *u, uint8_t v)
{
	bool was_on = fifo_on(u);
	bool is_on = v & FCR_FIFOE;

	/* FCR0 must be 1 for the other bits to be programmed; changing
	 * FCR0 empties both FIFOs (8.7, FCR bit 0). */
	u->fcr = is_on ? (v & FCR_KEPT) : 0;
	if (was_on != is_on || (is_on && (v & FCR_RFR)))
		rx_clear(u);
	if (was_on != is_on || (is_on && (v & FCR_XFR)))
		tx_clear(u);
	rx_release(u);
}

static void lcr_write(struct uart *u, uint8_t v)
{
	bool break_rises = (v & LCR_SB) && !(u->lcr & LCR_SB);

	u->lcr = v;
	/* In loop mode a break reaches our own receiver: one zero
	 * character with BI, and FE as the stop bit is missing (8.6.3). */
	if (break_rises && (u->mcr & MCR_LOOP))
		rx_push(u, 0, LSR_BI | LSR_FE);
	/* Settings go out once the divisor latch is closed again, so the
	 * backend never sees the half-programmed divisor. */
	if (!(v & LCR_DLAB))
		push_params(u, false);
}

static void mcr_write(struct uart *u, uint8_t v)
{
	uint8_t old = u->mcr;

	u->mcr = v & MCR_MASK;
	msr_set_inputs(u, msr_inputs(u));
	push_modem(u, false);
	if ((old ^ u->mcr) & MCR_LOOP) {
		push_params(u, false);
		rx_release(u);
	}
}

static void ier_write(struct uart *u, uint8_t v)
{
	uint8_t old = u->ier;

	u->ier = v & IER_MASK;
	/* Enabling ETBEI with THR empty interrupts at once; drivers test
	 * for this (Linux's UART_BUG_TXEN probe). */
	if ((u->ier & IER_ETBEI) && !(old & IER_ETBEI) && !u->tx_count)
		u->thri = true;
}

static uint8_t reg_read(struct uart *u, unsigned reg)
{
	uint8_t v;

	switch (reg) {
	case UART_RBR:
		return (u->lcr & LCR_DLAB) ? u->dll : rbr_read(u);
	case UART_IER:
		return (u->lcr & LCR_DLAB) ? u->dlm : u->ier;
	case UART_IIR:
		v = iir_value(u);
		/* Reading IIR with THRE the source clears it (table IV). */
		if ((v & 0x0f) == IIR_ID_THRE)
			u->thri = false;
		return v;
	case UART_LCR:
		return u->lcr;
	case UART_MCR:
		return u->mcr;
	case UART_LSR:
		return lsr_read(u);
	case UART_MSR:
		v = u->msr;
		u->msr &= (uint8_t)~MSR_DELTAS;
		return v;
	default:
		return u->scr;
	}
}

static void reg_write(struct uart *u, unsigned reg, uint8_t v)
{
	switch (reg) {
	case UART_THR:
		if (u->lcr & LCR_DLAB)
			u->dll = v;
		else
			thr_write(u, v);
		break;
	case UART_IER:
		if (u->lcr & LCR_DLAB)
			u->dlm = v;
		else
			ier_write(u, v);
		break;
	case UART_FCR:
		fcr_write(u, v);
		break;
	case UART_LCR:
		lcr_write(u, v);
		break;
	case UART_MCR:
		mcr_write(u, v);
		break;
	case UART_LSR:
	case UART_MSR:
		break; /* factory test registers: writes are ignored */
	default:
		u->scr = v;
		break;
	}
}

/* Wider accesses reach consecutive 8-bit registers, as the ISA bus splits
 * them; bytes past the last register read as all ones. */
static uint64_t uart_io_read(void *opaque, uint64_t off, unsigned size)
{
	struct uart *u = opaque;
	uint64_t v = 0;

	for (unsigned i = 0; i < size && i < 8; i++) {
		uint64_t b = off + i < UART_NPORTS ? reg_read(u, (unsigned)(off + i)) : 0xff;
		v |= b << (8 * i);
	}
	update_irq(u);
	return v;
}

static void uart_io_write(void *opaque, uint64_t off, uint64_t v, unsigned size)
{
	struct uart *u = opaque;

	for (unsigned i = 0; i < size && i < 8; i++)
		if (off + i < UART_NPORTS)
			reg_write(u, (unsigned)(off + i), (uint8_t)(v >> (8 * i)));
	update_irq(u);
}

static const struct modvm_io_ops uart_io = { uart_io_read, uart_io_write };

/* ---- chardev front end -------------------------------------------------- */

static size_t fe_can_receive(void *opaque)
{
	struct uart *u = opaque;
	uint32_t cap = fifo_capacity(u);

	/* In loop mode the receiver is disconnected from the line (8.6). */
	if ((u->mcr & MCR_LOOP) || u->rx_count >= cap) {
		u->rx_held = true;
		return 0;
	}
	return cap - u->rx_count;
}

static void fe_receive(void *opaque, const uint8_t *buf, size_t len)
{
	struct uart *u = opaque;

	if (u->mcr & MCR_LOOP)
		return;
	for (size_t i = 0; i < len; i++)
		rx_push(u, buf[i], 0);
	if (u->rx_count >= fifo_capacity(u))
		u->rx_held = true;
	update_irq(u);
}

static void fe_modem_changed(void *opaque, unsigned lines)
{
	struct uart *u = opaque;

	u->modem_in = lines & 0x3f;
	if (!(u->mcr & MCR_LOOP))
		msr_set_inputs(u, msr_inputs(u));
	update_irq(u);
}

static const struct modvm_chardev_frontend frontend = {
	.can_receive = fe_can_receive,
	.receive = fe_receive,
	.modem_changed = fe_modem_changed,
};

/* ---- state ---------------------------------------------------------- */


/* A loaded image is guest- or user-supplied: mask what no register can
 * hold, then rebuild timers, the IRQ line and the backend's settings. A
 * value that had to change makes the load fail, but the device is left
 * consistent either way. */
static int uart_post_load(void *opaque)
{
	struct uart *u = opaque;
	int bad = 0;

	bad |= u->ier & ~IER_MASK;
	bad |= u->mcr & ~MCR_MASK;
	bad |= u->lsr & ~LSR_LATCHED;
	bad |= (u->fcr & ~FCR_KEPT) || (u->fcr && !(u->fcr & FCR_FIFOE));
	u->ier &= IER_MASK;
	u->mcr &= MCR_MASK;
	u->lsr &= LSR_LATCHED;
	u->fcr = (u->fcr & FCR_FIFOE) ? (u->fcr & FCR_KEPT) : 0;
	for (unsigned i = 0; i < FIFO_SIZE; i++) {
		bad |= u->rx_flags[i] & ~LSR_CHAR_ERRS;
		u->rx_flags[i] &= LSR_CHAR_ERRS;
	}
	if (u->rx_count > fifo_capacity(u) || u->tx_count > fifo_capacity(u)) {
		bad = 1;
		if (u->rx_count > fifo_capacity(u))
			u->rx_count = fifo_capacity(u);
		if (u->tx_count > fifo_capacity(u))
			u->tx_count = fifo_capacity(u);
	}
	u->modem_in &= 0x3f;

	if (u->cti_deadline && fifo_on(u) && u->rx_count)
		u->dev.host->timer_mod(u->cti_timer, u->cti_deadline);
	else
		u->dev.host->timer_del(u->cti_timer);
	if (u->tx_count)
		u->dev.host->timer_mod(u->tx_timer, u->tx_deadline ? u->tx_deadline : now_ns(u));
	else
		u->dev.host->timer_del(u->tx_timer);

	push_params(u, true);
	push_modem(u, true);
	u->irq_out = !(iir_value(u) & IIR_NO_INT) && (u->mcr & MCR_OUT2) &&
		     !(u->mcr & MCR_LOOP);
	u->dev.host->irq_set(u->dev.inst, u->irq, u->irq_out);
	u->rx_held = true;
	rx_release(u);
	return bad ? -1 : 0;
}

#define U struct uart
MODVM_STATE_SECTION_HOOKS(uart_state, "uart", 1, 1, NULL, uart_post_load,
	MODVM_F_U8(U, dll), MODVM_F_U8(U, dlm), MODVM_F_U8(U, ier),
	MODVM_F_U8(U, fcr), MODVM_F_U8(U, lcr), MODVM_F_U8(U, mcr),
	MODVM_F_U8(U, lsr), MODVM_F_U8(U, msr), MODVM_F_U8(U, scr),
	MODVM_F_U8(U, rbr), MODVM_F_BOOL(U, thri), MODVM_F_BOOL(U, cti),
	MODVM_F_VBUF(U, rx_fifo, rx_count), MODVM_F_BYTES(U, rx_flags),
	MODVM_F_VBUF(U, tx_fifo, tx_count),
	MODVM_F_U64(U, cti_deadline), MODVM_F_U64(U, tx_deadline),
	MODVM_F_U32(U, modem_in));
#undef U

/* ---- lifetime --------------------------------------------------------- */

/* Master reset (table III): IER, FCR, LCR, MCR cleared, LSR = THRE|TEMT,
 * MSR deltas cleared; the divisor, SCR and RBR keep their values. */
static void uart_reset(void *dev)
{
	struct uart *u = dev;

	u->ier = u->fcr = u->lcr = u->mcr = 0;
	u->lsr = 0;
	u->thri = false;
	u->cti = false;
	rx_clear(u);
	u->tx_count = 0;
	u->tx_deadline = 0;
	u->dev.host->timer_del(u->tx_timer);
	u->msr = msr_inputs(u);
	push_modem(u, false);
	update_irq(u);
	rx_release(u);
}

/* Lower the line for the interrupt controller, which outlives us. */
static void uart_destroy(void *dev)
{
	struct uart *u = dev;

	if (u->irq_out)
		u->dev.host->irq_set(u->dev.inst, u->irq, 0);
}

static int uart_init(void *dev)
{
	struct uart *u = dev;
	const struct modvm_host *host = u->dev.host;
	unsigned lines;

	u->modem_sent = -1;
	u->region = host->pio_register(u->dev.inst, u->port, UART_NPORTS, &uart_io, u);
	u->cti_timer = host->timer_new(u->dev.inst, cti_expired, u);
	u->tx_timer = host->timer_new(u->dev.inst, tx_retry, u);
	if (!u->region || !u->cti_timer || !u->tx_timer)
		return -1;
	u->chr = host->chardev_open(u->dev.inst, "backend", &frontend, u);
	if (!u->chr)
		return -1;
	/* A backend without modem lines (a file, a terminal) behaves like
	 * a cable to a peer that is always ready. */
	u->modem_in = MODVM_MODEM_CTS | MODVM_MODEM_DSR | MODVM_MODEM_DCD;
	if (host->chardev_get_modem(u->chr, &lines) == 0)
		u->modem_in = lines & 0x3f;
	/* The divisor is undefined at power-on; start at 9600 baud. */
	u->dll = 12;
	uart_reset(u);
	return 0;
}

MODVM_DEVICE_DEFINE(.name = "serial-16550", .version = "1.0.0",
	.description = "16550A UART with 16-byte FIFOs (PC COM port)",
	.props = MODVM_PROPS(
		MODVM_PROP_INT(struct uart, port, "port", "0x3f8", 0, 0xfff8,
			       "base I/O port (COM1 0x3f8, COM2 0x2f8, COM3 0x3e8, COM4 0x2e8)"),
		MODVM_PROP_INT(struct uart, irq, "irq", "4", 0, 15,
			       "ISA interrupt line (COM1/3: 4, COM2/4: 3)"),
		MODVM_PROP_BACKEND_("backend", "stdio", MODVM_KIND_CHARDEV,
				    "where the port's bytes go: stdio, file, pty, socket, serial, null")),
	.state = MODVM_STATE(&uart_state),
	.ops = MODVM_DEVICE_OPS(struct uart, .init = uart_init,
				.destroy = uart_destroy, .reset = uart_reset));
