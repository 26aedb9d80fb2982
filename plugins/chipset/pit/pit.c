/* The 8254 programmable interval timer at 0x40-0x43 and System Control
 * Port B at 0x61. Counters are computed from the virtual clock, never
 * ticked; only channel 0's output edges (IRQ 0) need a host timer. Section
 * names cite the Intel 8254 datasheet (order no. 231164).
 */
#include <string.h>

#include <modvm/modvm.h>

#define PIT_HZ 1193182ull          /* input clock, 14.31818 MHz / 12 */
#define NS_PER_S 1000000000ull
#define REFRESH_TICKS 18           /* PC refresh request every ~15.09 us */

/* Control word: SC1 SC0 RW1 RW0 M2 M1 M0 BCD (section "Control Word
 * Format"); SC = 3 is the read-back command. */
#define CW_BCD 0x01
#define RB_NOT_STATUS 0x10
#define RB_NOT_COUNT 0x20
#define RW_LATCH 0
#define RW_LSB 1
#define RW_MSB 2
#define RW_LSB_MSB 3
/* Read-back status byte */
#define ST_OUTPUT 0x80
#define ST_NULL_COUNT 0x40

/* Port B (61h) */
#define PORTB_GATE2 0x01     /* timer 2 gate */
#define PORTB_SPEAKER 0x02   /* speaker data enable */
#define PORTB_WRITABLE 0x0F  /* + parity and IOCHK check enables */
#define PORTB_REFRESH 0x10   /* refresh request toggle (read only) */
#define PORTB_OUT2 0x20      /* timer 2 output (read only) */

struct pit_channel {
	uint8_t mode;          /* 0-5 */
	uint8_t rw;            /* RW_LSB, RW_MSB or RW_LSB_MSB */
	bool bcd;
	bool gate;
	uint16_t cr;           /* count register, as written */
	uint8_t cr_lsb;        /* first byte of a two-byte count */
	bool write_msb;        /* two-byte write: the MSB comes next */
	bool read_msb;         /* two-byte read: the MSB comes next */
	bool cr_valid;         /* a count was written since the control word */
	bool counting;         /* CE counts `cur` from start_tick */
	bool null_count;       /* CR written but not yet in the CE */
	bool phase_low;        /* mode 3: the sequence began with the low half */
	bool pending;          /* modes 2, 3: CR loads at pending_tick */
	uint8_t latch_n;       /* latched count bytes left to read */
	bool status_latched;
	uint8_t status;
	uint16_t latched;      /* latched count (in the counting format) */
	uint16_t held;         /* CE value while not counting */
	uint32_t cur;          /* count in the CE, 1..65536 */
	uint64_t start_tick;   /* input clock when the CE started on `cur` */
	uint64_t pending_tick;
	uint64_t frozen;       /* clocks counted when the gate stopped it */
	uint64_t last_tick;    /* output edges done up to here */
};

struct pit {
	struct modvm_dev dev;
	uint64_t min_period_ns; /* property "min-period-ns" */
	modvm_timer *timer;
	uint64_t last_fire_ns;
	bool fired;            /* last_fire_ns is valid */
	struct pit_channel ch[3];
	uint8_t portb;         /* writable bits of port 61h */
	bool line;             /* level driven on IRQ 0 */
};

/* ---- the input clock on the virtual clock ------------------------------ */

/* floor(ns * PIT_HZ / 1e9) without overflow: split ns at whole seconds. */
static uint64_t ns_to_ticks(uint64_t ns)
{
	return ns / NS_PER_S * PIT_HZ + ns % NS_PER_S * PIT_HZ / NS_PER_S;
}

/* The first ns at which ns_to_ticks() reaches `tick`. */
static uint64_t ticks_to_ns(uint64_t tick)
{
	uint64_t r = tick % PIT_HZ;

	return tick / PIT_HZ * NS_PER_S + (r * NS_PER_S + PIT_HZ - 1) / PIT_HZ;
}

static uint64_t pit_now(struct pit *p)
{
	return ns_to_ticks(p->dev.host->clock_ns(p->dev.inst));
}

/* ---- one counter as a function of time --------------------------------- */

static uint32_t modulus(const struct pit_channel *c)
{
	return c->bcd ? 10000 : 65536;
}

/* A count of 0 is the largest (2^16, or 10^4 in BCD). Invalid BCD digits
 * count with their binary weight, modulo 10^4. */
static uint32_t decode_count(const struct pit_channel *c, uint16_t raw)
{
	uint32_t v = raw;

	if (c->bcd)
		v = (raw >> 12) * 1000u + ((raw >> 8) & 15) * 100u +
		    ((raw >> 4) & 15) * 10u + (raw & 15);
	v %= modulus(c);
	return v ? v : modulus(c);
}

static uint16_t encode_count(const struct pit_channel *c, uint32_t v)
{
	if (!c->bcd)
		return (uint16_t)v;
	return (uint16_t)((v / 1000 % 10) << 12 | (v / 100 % 10) << 8 |
			  (v / 10 % 10) << 4 | v % 10);
}

/* Modes in which a low gate stops the count (section "Gate"). */
static bool gate_holds(const struct pit_channel *c)
{
	return c->mode == 0 || c->mode == 2 || c->mode == 3 || c->mode == 4;
}

static uint64_t elapsed(const struct pit_channel *c, uint64_t t)
{
	if (!c->counting)
		return 0;
	if (gate_holds(c) && !c->gate)
		return c->frozen;
	return t > c->start_tick ? t - c->start_tick : 0;
}

static uint64_t high_half(uint32_t n)
{
	return (n + 1) / 2;
}

/* Mode 3 position within the square wave period, 0 = start of high. */
static uint64_t sq_phase(const struct pit_channel *c, uint64_t d)
{
	return (d + (c->phase_low ? high_half(c->cur) : 0)) % c->cur;
}

/* Mode 3 counts down by two; an odd count spends one extra clock high,
 * decrementing by one first, and its low half starts with a decrement by
 * three (section "Mode 3"). */
static uint32_t sq_value(uint32_t n, uint64_t p)
{
	uint64_t h = high_half(n), q;

	if (!(n & 1))
		return (uint32_t)(p < h ? n - 2 * p : n - 2 * (p - h));
	if (p < h)
		return (uint32_t)(p == 0 ? n : n + 1 - 2 * p);
	q = p - h;
	return (uint32_t)(q == 0 ? n : n - 1 - 2 * q);
}

static uint32_t ce_value(const struct pit_channel *c, uint64_t t)
{
	uint64_t d = elapsed(c, t), m = modulus(c), n = c->cur;

	if (!c->counting)
		return c->held;
	switch (c->mode) {
	case 2:
		return (uint32_t)((n - d % n) % m);
	case 3:
		return (uint32_t)(sq_value(c->cur, sq_phase(c, d)) % m);
	default: /* 0, 1, 4, 5 count down and wrap */
		return (uint32_t)((n + m - d % m) % m);
	}
}

static bool out_level(const struct pit_channel *c, uint64_t t)
{
	uint64_t d = elapsed(c, t), n = c->cur;

	if (!c->counting)
		return c->mode != 0;
	switch (c->mode) {
	case 0:
	case 1:
		return d >= n;
	case 2:
		return !c->gate || n == 1 || d % n != n - 1;
	case 3:
		return !c->gate || sq_phase(c, d) < high_half(c->cur);
	default: /* 4, 5: low for the one clock at terminal count */
		return d != n;
	}
}

/* Did OUT rise between elapsed clocks da (excluded) and db (included)? */
static bool out_rose(const struct pit_channel *c, uint64_t da, uint64_t db)
{
	uint64_t n = c->cur, off;

	if (!c->counting || db <= da)
		return false;
	switch (c->mode) {
	case 0:
	case 1:
		return da < n && db >= n;
	case 2:
		return da / n != db / n;
	case 3:
		off = c->phase_low ? high_half(c->cur) : 0;
		return (da + off) / n != (db + off) / n;
	default:
		return da < n + 1 && db >= n + 1;
	}
}

/* Start counting the CR now (load, trigger or gate reload). */
static void ce_start(struct pit_channel *c, uint64_t t)
{
	c->counting = true;
	c->cur = decode_count(c, c->cr);
	c->start_tick = t;
	c->last_tick = t;
	c->frozen = 0;
	c->phase_low = false;
	c->pending = false;
}

static void ce_stop(struct pit_channel *c, uint64_t t)
{
	c->held = (uint16_t)ce_value(c, t);
	c->counting = false;
	c->pending = false;
}

/* Modes 2 and 3 take a new count at the end of the current period or
 * half-period (sections "Mode 2", "Mode 3"). */
static uint64_t next_reload(const struct pit_channel *c, uint64_t t)
{
	uint64_t d = elapsed(c, t), n = c->cur, h = high_half(c->cur), p;

	if (c->mode == 2)
		return c->start_tick + (d / n + 1) * n;
	p = sq_phase(c, d);
	return c->start_tick + d + (p < h ? h - p : n - p);
}

static void load_pending(struct pit_channel *c)
{
	uint64_t at = c->pending_tick;
	/* A reload lands on a half boundary: phase 0 or the low half. */
	bool low = c->mode == 3 && sq_phase(c, elapsed(c, at)) != 0;

	ce_start(c, at);
	c->phase_low = low;
}

/* Bring the counter to clock t; returns whether OUT rose on the way. */
static bool ch_advance(struct pit_channel *c, uint64_t t)
{
	bool rose = false;

	if (t < c->last_tick)
		t = c->last_tick;
	if (c->pending && c->pending_tick <= t) {
		rose = out_rose(c, elapsed(c, c->last_tick),
				elapsed(c, c->pending_tick));
		load_pending(c);
	}
	rose |= out_rose(c, elapsed(c, c->last_tick), elapsed(c, t));
	c->last_tick = t;
	if (c->null_count && c->counting && !c->pending && t > c->start_tick)
		c->null_count = false;
	return rose;
}

/* ---- channel 0 drives IRQ 0 --------------------------------------------- */

/* Modes 2, 4 and 5 are strobes: OUT is high but for one clock, and the
 * PIC wants the rising edge after it, so IRQ 0 gets a pulse then. Modes 0,
 * 1 and 3 drive the line at the OUT level. */
static bool strobe_mode(const struct pit_channel *c)
{
	return c->mode == 2 || c->mode == 4 || c->mode == 5;
}

static void irq_level(struct pit *p, bool level)
{
	if (p->line == level)
		return;
	p->line = level;
	p->dev.host->irq_set(p->dev.inst, MODVM_PC_IRQ_PIT, level);
}

/* Timer callbacks may come late (and are throttled), so several edges
 * can fold into one: the line still shows one rising edge for them. */
static void ch0_drive(struct pit *p, bool rose, uint64_t t)
{
	struct pit_channel *c = &p->ch[0];
	bool out = out_level(c, t);

	if (strobe_mode(c)) {
		irq_level(p, false);
		if (rose) {
			irq_level(p, true);
			irq_level(p, false);
		}
		return;
	}
	if (rose) {
		irq_level(p, false);
		irq_level(p, true);
	}
	irq_level(p, out);
}

/* The next clock at which channel 0's line must change, if any. */
static bool ch0_next_edge(const struct pit_channel *c, uint64_t t,
			  uint64_t *tick)
{
	uint64_t d = elapsed(c, t), n = c->cur, h = high_half(c->cur), p;

	if (!c->counting || (gate_holds(c) && !c->gate))
		return false;
	switch (c->mode) {
	case 0:
	case 1:
		if (d >= n)
			return false;
		*tick = c->start_tick + n;
		break;
	case 2:
		*tick = c->start_tick + (d / n + 1) * n;
		break;
	case 3:
		p = sq_phase(c, d);
		*tick = c->start_tick + d + (p < h ? h - p : n - p);
		break;
	default:
		if (d >= n + 1)
			return false;
		*tick = c->start_tick + n + 1;
		break;
	}
	if (c->pending && c->pending_tick < *tick)
		*tick = c->pending_tick;
	return true;
}

/* Deadlines come from start_tick, never from when a callback ran, so a
 * periodic timer does not drift; min_period_ns only spaces callbacks. */
static void ch0_schedule(struct pit *p, uint64_t t)
{
	uint64_t tick, ns;

	if (!ch0_next_edge(&p->ch[0], t, &tick)) {
		p->dev.host->timer_del(p->timer);
		return;
	}
	ns = ticks_to_ns(tick);
	if (p->fired && ns < p->last_fire_ns + p->min_period_ns)
		ns = p->last_fire_ns + p->min_period_ns;
	p->dev.host->timer_mod(p->timer, ns);
}

static void pit_timer(void *opaque)
{
	struct pit *p = opaque;
	uint64_t now = p->dev.host->clock_ns(p->dev.inst);
	uint64_t t = ns_to_ticks(now);

	p->last_fire_ns = now;
	p->fired = true;
	ch0_drive(p, ch_advance(&p->ch[0], t), t);
	ch0_schedule(p, t);
}

/* Every access first brings all counters to now, then re-aims the timer. */
static uint64_t pit_begin(struct pit *p)
{
	uint64_t t = pit_now(p);

	ch0_drive(p, ch_advance(&p->ch[0], t), t);
	ch_advance(&p->ch[1], t);
	ch_advance(&p->ch[2], t);
	return t;
}

static void pit_end(struct pit *p, uint64_t t)
{
	ch0_drive(p, false, t);
	ch0_schedule(p, t);
}

/* ---- registers ------------------------------------------------------------ */

static void latch_count(struct pit_channel *c, uint64_t t)
{
	if (c->latch_n)
		return; /* a second latch before the read is ignored */
	c->latched = encode_count(c, ce_value(c, t));
	c->latch_n = c->rw == RW_LSB_MSB ? 2 : 1;
}

static void latch_status(struct pit_channel *c, uint64_t t)
{
	if (c->status_latched)
		return;
	c->status = (uint8_t)((out_level(c, t) ? ST_OUTPUT : 0) |
			      (c->null_count ? ST_NULL_COUNT : 0) |
			      c->rw << 4 | c->mode << 1 | (c->bcd ? CW_BCD : 0));
	c->status_latched = true;
}

static void control_word(struct pit_channel *c, uint8_t v, uint64_t t)
{
	unsigned rw = (v >> 4) & 3, mode = (v >> 1) & 7;

	if (rw == RW_LATCH) {
		latch_count(c, t);
		return;
	}
	/* "all Control Logic is immediately reset": the count stops until
	 * a new one is written, OUT takes the mode's initial level. */
	ce_stop(c, t);
	c->mode = (uint8_t)(mode > 5 ? mode - 4 : mode); /* X10, X11 */
	c->rw = (uint8_t)rw;
	c->bcd = v & CW_BCD;
	c->write_msb = false;
	c->read_msb = false;
	c->cr_valid = false;
	c->null_count = true;
	c->latch_n = 0;
	c->status_latched = false;
}

static void read_back(struct pit *p, uint8_t v, uint64_t t)
{
	for (unsigned i = 0; i < 3; i++) {
		if (!(v & (2u << i)))
			continue;
		if (!(v & RB_NOT_COUNT))
			latch_count(&p->ch[i], t);
		if (!(v & RB_NOT_STATUS))
			latch_status(&p->ch[i], t);
	}
}

static void load_cr(struct pit_channel *c, uint64_t t)
{
	c->cr_valid = true;
	c->null_count = true;
	switch (c->mode) {
	case 0:
	case 4:
		ce_start(c, t);
		break;
	case 2:
	case 3:
		if (!c->counting)
			ce_start(c, t);
		else if (c->gate) {
			c->pending = true;
			c->pending_tick = next_reload(c, t);
		}
		break;
	default: /* 1, 5: the next gate trigger loads it */
		break;
	}
}

static void write_count(struct pit_channel *c, uint8_t v, uint64_t t)
{
	switch (c->rw) {
	case RW_LSB:
		c->cr = v;
		break;
	case RW_MSB:
		c->cr = (uint16_t)(v << 8);
		break;
	default:
		if (!c->write_msb) {
			c->cr_lsb = v;
			c->write_msb = true;
			/* Mode 0: the first byte stops the count, OUT low. */
			if (c->mode == 0)
				ce_stop(c, t);
			return;
		}
		c->cr = (uint16_t)(c->cr_lsb | v << 8);
		c->write_msb = false;
		break;
	}
	load_cr(c, t);
}

static uint8_t read_count(struct pit_channel *c, uint64_t t)
{
	uint16_t v;
	bool msb;

	if (c->status_latched) {
		c->status_latched = false;
		return c->status;
	}
	if (c->latch_n) {
		msb = c->rw == RW_MSB || (c->rw == RW_LSB_MSB && c->latch_n == 1);
		c->latch_n--;
		return (uint8_t)(msb ? c->latched >> 8 : c->latched);
	}
	v = encode_count(c, ce_value(c, t));
	msb = c->rw == RW_MSB;
	if (c->rw == RW_LSB_MSB) {
		msb = c->read_msb;
		c->read_msb = !c->read_msb;
	}
	return (uint8_t)(msb ? v >> 8 : v);
}

static void set_gate(struct pit_channel *c, bool gate, uint64_t t)
{
	if (gate == c->gate)
		return;
	if (!gate) {
		c->frozen = elapsed(c, t);
		if (c->mode == 2 || c->mode == 3)
			c->pending = false; /* the rising edge reloads anyway */
		c->gate = false;
		return;
	}
	c->gate = true;
	if (!c->counting && !c->cr_valid)
		return;
	if (c->mode == 0 || c->mode == 4) {
		/* Counting resumes where it stopped. */
		c->start_tick = t - (c->frozen < t ? c->frozen : t);
		c->last_tick = t;
	} else if (c->cr_valid) {
		/* 1, 5: trigger; 2, 3: reload (section "Gate"). */
		ce_start(c, t);
	}
}

static uint64_t pit_read(void *opaque, uint64_t off, unsigned size)
{
	struct pit *p = opaque;
	uint64_t t = pit_begin(p), v = 0;

	for (unsigned i = 0; i < size; i++) {
		uint64_t reg = off + i, b = 0xFF; /* 43h is write-only */
		if (reg < 3)
			b = read_count(&p->ch[reg], t);
		v |= b << (8 * i);
	}
	pit_end(p, t);
	return v;
}

static void pit_write(void *opaque, uint64_t off, uint64_t v, unsigned size)
{
	struct pit *p = opaque;
	uint64_t t = pit_begin(p);

	for (unsigned i = 0; i < size && off + i < 4; i++) {
		uint8_t b = (uint8_t)(v >> (8 * i));
		unsigned sc = b >> 6;
		if (off + i < 3)
			write_count(&p->ch[off + i], b, t);
		else if (sc == 3)
			read_back(p, b, t);
		else
			control_word(&p->ch[sc], b, t);
	}
	pit_end(p, t);
}

static uint64_t portb_read(void *opaque, uint64_t off, unsigned size)
{
	struct pit *p = opaque;
	uint64_t t = pit_begin(p);
	uint8_t v = p->portb & PORTB_WRITABLE;

	if ((t / REFRESH_TICKS) & 1)
		v |= PORTB_REFRESH;
	if (out_level(&p->ch[2], t))
		v |= PORTB_OUT2;
	pit_end(p, t);
	return size > 1 ? v | (~0ull << 8) : v;
}

static void portb_write(void *opaque, uint64_t off, uint64_t v, unsigned size)
{
	struct pit *p = opaque;
	uint64_t t = pit_begin(p);

	p->portb = (uint8_t)v & PORTB_WRITABLE;
	set_gate(&p->ch[2], p->portb & PORTB_GATE2, t);
	pit_end(p, t);
}

static const struct modvm_io_ops pit_ops = { pit_read, pit_write };
static const struct modvm_io_ops portb_ops = { portb_read, portb_write };

/* ---- life cycle and state ----------------------------------------------- */

/* The datasheet leaves power-on undefined; modvm starts every counter
 * idle in mode 0 (OUT low, IRQ 0 low), two-byte access, binary, with
 * channels 0 and 1 gated on as on a PC and channel 2 off (port 61h = 0). */
static void pit_reset(void *dev)
{
	struct pit *p = dev;
	uint64_t t = pit_now(p);

	for (unsigned i = 0; i < 3; i++) {
		struct pit_channel *c = &p->ch[i];
		memset(c, 0, sizeof(*c));
		c->rw = RW_LSB_MSB;
		c->gate = i != 2;
		c->cur = 65536;
		c->last_tick = t;
	}
	p->portb = 0;
	p->fired = false;
	p->dev.host->timer_del(p->timer);
	p->line = true;
	irq_level(p, false);
}

#define CH struct pit_channel
static const struct modvm_state_field ch_fields[] = {
	MODVM_F_U8(CH, mode), MODVM_F_U8(CH, rw), MODVM_F_BOOL(CH, bcd),
	MODVM_F_BOOL(CH, gate), MODVM_F_U16(CH, cr), MODVM_F_U8(CH, cr_lsb),
	MODVM_F_BOOL(CH, write_msb), MODVM_F_BOOL(CH, read_msb),
	MODVM_F_BOOL(CH, cr_valid), MODVM_F_BOOL(CH, counting),
	MODVM_F_BOOL(CH, null_count), MODVM_F_BOOL(CH, phase_low),
	MODVM_F_BOOL(CH, pending), MODVM_F_U8(CH, latch_n),
	MODVM_F_BOOL(CH, status_latched), MODVM_F_U8(CH, status),
	MODVM_F_U16(CH, latched), MODVM_F_U16(CH, held), MODVM_F_U32(CH, cur),
	MODVM_F_U64(CH, start_tick), MODVM_F_U64(CH, pending_tick),
	MODVM_F_U64(CH, frozen), MODVM_F_U64(CH, last_tick),
};
#undef CH

/* Clock values beyond this are centuries of virtual time: corrupt. */
#define TICK_SANE (1ull << 60)

static bool channel_valid(const struct pit_channel *c)
{
	return c->mode <= 5 && c->rw >= RW_LSB && c->rw <= RW_LSB_MSB &&
	       c->cur >= 1 && c->cur <= modulus(c) && c->latch_n <= 2 &&
	       c->start_tick < TICK_SANE && c->pending_tick < TICK_SANE &&
	       c->last_tick < TICK_SANE && c->frozen < TICK_SANE;
}

/* Refuse a state no register sequence reaches (it could divide by zero):
 * the device is then back at power-on. Otherwise re-drive IRQ 0 and
 * re-aim the timer at the next edge. */
static int pit_post_load(void *dev)
{
	struct pit *p = dev;
	bool line = p->line;

	for (unsigned i = 0; i < 3; i++) {
		if (!channel_valid(&p->ch[i])) {
			p->dev.host->log(p->dev.inst, MODVM_LOG_ERROR,
				     "state of channel %u is invalid: not loaded", i);
			pit_reset(p);
			return -1;
		}
	}
	p->portb &= PORTB_WRITABLE;
	p->fired = false;
	p->line = !line;
	irq_level(p, line);
	ch0_schedule(p, pit_now(p));
	return 0;
}

#define P struct pit
MODVM_STATE_SECTION_HOOKS(pit_state, "pit", 1, 1, NULL, pit_post_load,
	MODVM_F_STRUCT(P, ch, struct pit_channel, ch_fields),
	MODVM_F_U8(P, portb), MODVM_F_BOOL(P, line));

static int pit_init(void *dev)
{
	struct pit *p = dev;
	const struct modvm_host *host = p->dev.host;

	p->timer = host->timer_new(p->dev.inst, pit_timer, p);
	if (!p->timer) {
		host->set_error(p->dev.inst, "cannot create a timer");
		return -1;
	}
	if (!host->pio_register(p->dev.inst, MODVM_PC_PORT_PIT, 4, &pit_ops, p) ||
	    !host->pio_register(p->dev.inst, MODVM_PC_PORT_SYSCTL_B, 1, &portb_ops, p))
		return -1;
	pit_reset(p);
	return 0;
}

MODVM_DEVICE_DEFINE(.name = "pit-8254", .version = "1.0.0",
	.description = "8254 interval timer with system control port B",
	.props = MODVM_PROPS(MODVM_PROP_INT(P, min_period_ns, "min-period-ns", "10000",
		1000, 10000000,
		"shortest virtual time between two channel 0 timer callbacks; faster outputs are coalesced")),
	.state = MODVM_STATE(&pit_state),
	.ops = MODVM_DEVICE_OPS(P, .init = pit_init, .reset = pit_reset));
#undef P
