/* rtc-cmos: the MC146818A real-time clock and its CMOS RAM at ports 0x70/0x71.
 *
 * Nothing ticks. The time is one calendar second valid at one update of the
 * divider chain, on the virtual clock; registers, flags and the next
 * interrupt are computed from the virtual time whenever they are looked at,
 * so a paused VM's clock stops and an idle RTC costs nothing.
 */
#include <stdio.h>
#include <string.h>

#include <modvm/modvm.h>

#define NS_PER_SEC 1000000000ll
#define SECS_PER_DAY 86400
#define RTC_HZ 32768 /* the time base: the divider chain's input */

/* Register and RAM indices (MC146818A "Address Map"; PC/AT CMOS layout) */
enum {
	RTC_SECONDS = 0x00,
	RTC_SECONDS_ALARM = 0x01,
	RTC_MINUTES = 0x02,
	RTC_MINUTES_ALARM = 0x03,
	RTC_HOURS = 0x04,
	RTC_HOURS_ALARM = 0x05,
	RTC_DAY_OF_WEEK = 0x06,
	RTC_DATE_OF_MONTH = 0x07,
	RTC_MONTH = 0x08,
	RTC_YEAR = 0x09,
	RTC_REG_A = 0x0A,
	RTC_REG_B = 0x0B,
	RTC_REG_C = 0x0C,
	RTC_REG_D = 0x0D,
	CMOS_EQUIPMENT = 0x14,
	CMOS_BASE_MEM_LO = 0x15,
	CMOS_EXT_MEM_LO = 0x17,
	CMOS_CHECKSUM_HI = 0x2E,
	CMOS_EXT_MEM2_LO = 0x30,
	RTC_CENTURY = 0x32,
	CMOS_MEM_16M_LO = 0x34,
	CMOS_MEM_4G_LO = 0x5B,
	CMOS_SIZE = 128,
};

#define CMOS_CHECKSUM_FIRST 0x10
#define CMOS_CHECKSUM_LAST 0x2D

#define REG_A_UIP 0x80
#define REG_A_DV_MASK 0x70
#define REG_A_DV_32K 0x20 /* 010: oscillator on, chain counting */
#define REG_A_RS_MASK 0x0F
#define REG_A_POWER_ON 0x26 /* 32.768 kHz, 1024 Hz periodic rate */

#define REG_B_SET 0x80
#define REG_B_PIE 0x40
#define REG_B_AIE 0x20
#define REG_B_UIE 0x10
#define REG_B_SQWE 0x08
#define REG_B_DM 0x04 /* data mode: 1 binary, 0 BCD */
#define REG_B_24H 0x02
#define REG_B_DSE 0x01
#define REG_B_POWER_ON REG_B_24H

#define REG_C_IRQF 0x80
#define REG_C_PF 0x40
#define REG_C_AF 0x20
#define REG_C_UF 0x10
#define REG_C_FLAGS (REG_C_PF | REG_C_AF | REG_C_UF)

#define REG_D_VRT 0x80

#define HOURS_PM 0x80
#define ALARM_DONT_CARE 0xC0 /* 11xxxxxx in an alarm byte matches anything */

/* UIP rises 244 us (8 cycles of the time base) before an update and reads
 * 0 otherwise, so a guest that saw UIP=0 has 244 us to read the time. */
#define UIP_NS 244141

#define ALARM_ANY (-1)
#define ALARM_NEVER (-2)

/* Bounds on loaded state, far beyond any real value, that keep every time
 * computation free of overflow. */
#define TIME_NS_LIMIT (1ll << 62)
#define TIME_SEC_LIMIT (1ll << 40)

struct rtc {
	struct modvm_dev dev;
	const char *start;   /* property "start" */
	modvm_timer *timer;
	int irq_out; /* level last driven on IRQ 8 */

	/* --- state ---------------------------------------------------- */
	/* RAM and registers. The time bytes hold the time only while updates
	 * are off (SET=1 or the divider stopped); otherwise the time lives
	 * in base_sec and the bytes are rendered from it on read. */
	uint8_t cmos[CMOS_SIZE];
	uint8_t index;       /* last byte written to port 0x70 (bit 7: NMI off) */
	uint8_t wday_adjust; /* day of week as written minus computed, mod 7 */
	int64_t base_sec;    /* calendar seconds since 1970-01-01, at base_ns */
	int64_t base_ns;     /* virtual time of an update: the chain's phase */
	int64_t evaluated_ns;/* register C holds every event up to here */
	int64_t saved_ns;    /* virtual time when the state was saved */
};

/* ---- arithmetic ---------------------------------------------------------- */

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	if ((a % b) && ((a < 0) != (b < 0)))
		q--;
	return q;
}

static int64_t floor_mod(int64_t a, int64_t b)
{
	return a - floor_div(a, b) * b;
}

static int clamp(int v, int lo, int hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

static bool is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
	static const uint8_t days[12] = { 31, 28, 31, 30, 31, 30,
					  31, 31, 30, 31, 30, 31 };

	return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/*
 * Proleptic Gregorian calendar in 400-year eras of 146097 days, each year
 * counted from March so that the leap day is the last day of its year.
 * Day 0 is 1970-01-01.
 */
#define DAYS_PER_ERA 146097
#define DAYS_0000_03_01_TO_EPOCH 719468

static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	if (m <= 2)
		y--;
	era = floor_div(y, 400);
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * DAYS_PER_ERA + doe - DAYS_0000_03_01_TO_EPOCH;
}

static void civil_from_days(int64_t days, int64_t *y, int *m, int *d)
{
	int64_t z = days + DAYS_0000_03_01_TO_EPOCH;
	int64_t era = floor_div(z, DAYS_PER_ERA);
	int64_t doe = z - era * DAYS_PER_ERA;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;

	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

/* ---- the divider chain ------------------------------------------------- */

static int64_t now_ns(struct rtc *r)
{
	return (int64_t)r->dev.host->clock_ns(r->dev.inst);
}

static bool chain_running(const struct rtc *r)
{
	return (r->cmos[RTC_REG_A] & REG_A_DV_MASK) == REG_A_DV_32K;
}

/* The time advances once per second unless SET inhibits the transfer. */
static bool updating(const struct rtc *r)
{
	return chain_running(r) && !(r->cmos[RTC_REG_B] & REG_B_SET);
}

/* Updates from base_ns up to and including t. */
static int64_t updates_at(const struct rtc *r, int64_t t)
{
	return floor_div(t - r->base_ns, NS_PER_SEC);
}

static int64_t update_time(const struct rtc *r, int64_t n)
{
	return r->base_ns + n * NS_PER_SEC;
}

/* Time-base cycles from base_ns to t, split per second against overflow. */
static int64_t cycles_at(const struct rtc *r, int64_t t)
{
	int64_t d = t - r->base_ns;
	int64_t s = floor_div(d, NS_PER_SEC);

	return s * RTC_HZ + (d - s * NS_PER_SEC) * RTC_HZ / NS_PER_SEC;
}

/* First virtual nanosecond by which `cycles` cycles have elapsed. */
static int64_t cycle_time(const struct rtc *r, int64_t cycles)
{
	int64_t s = floor_div(cycles, RTC_HZ);
	int64_t c = cycles - s * RTC_HZ;

	return r->base_ns + s * NS_PER_SEC +
	       (c * NS_PER_SEC + RTC_HZ - 1) / RTC_HZ;
}

/* Periodic interrupt period in time-base cycles, 0 if off. With the
 * 32.768 kHz base, rates 1 and 2 repeat rates 8 and 9 (datasheet
 * "Periodic Interrupt Rate and Square-Wave Output Frequency"). */
static int64_t periodic_cycles(const struct rtc *r)
{
	unsigned rs = r->cmos[RTC_REG_A] & REG_A_RS_MASK;

	if (!rs)
		return 0;
	if (rs <= 2)
		rs += 7;
	return 1ll << (rs - 1);
}

/* ---- time registers ---------------------------------------------------- */

static bool binary_mode(const struct rtc *r)
{
	return r->cmos[RTC_REG_B] & REG_B_DM;
}

static bool mode_24h(const struct rtc *r)
{
	return r->cmos[RTC_REG_B] & REG_B_24H;
}

static uint8_t to_reg(const struct rtc *r, int v)
{
	return binary_mode(r) ? (uint8_t)v : (uint8_t)((v / 10) << 4 | v % 10);
}

static int from_reg(const struct rtc *r, uint8_t b)
{
	return binary_mode(r) ? b : (b >> 4) * 10 + (b & 0x0F);
}

static bool is_time_reg(unsigned idx)
{
	switch (idx) {
	case RTC_SECONDS: case RTC_MINUTES: case RTC_HOURS:
	case RTC_DAY_OF_WEEK: case RTC_DATE_OF_MONTH: case RTC_MONTH:
	case RTC_YEAR: case RTC_CENTURY:
		return true;
	default:
		return false;
	}
}

static uint8_t hours_to_reg(const struct rtc *r, int h)
{
	int h12 = h % 12 ? h % 12 : 12;

	if (mode_24h(r))
		return to_reg(r, h);
	return to_reg(r, h12) | (h >= 12 ? HOURS_PM : 0);
}

/* Write the time at virtual time t into the time bytes. */
static void render_time(struct rtc *r, int64_t t)
{
	int64_t sec = r->base_sec + updates_at(r, t);
	int64_t days = floor_div(sec, SECS_PER_DAY);
	int64_t tod = sec - days * SECS_PER_DAY, y;
	int m, d;

	civil_from_days(days, &y, &m, &d);
	r->cmos[RTC_SECONDS] = to_reg(r, (int)(tod % 60));
	r->cmos[RTC_MINUTES] = to_reg(r, (int)(tod / 60 % 60));
	r->cmos[RTC_HOURS] = hours_to_reg(r, (int)(tod / 3600));
	/* 1970-01-01 was a Thursday; the register counts Sunday as 1. */
	r->cmos[RTC_DAY_OF_WEEK] =
		to_reg(r, (int)floor_mod(days + 4 + r->wday_adjust, 7) + 1);
	r->cmos[RTC_DATE_OF_MONTH] = to_reg(r, d);
	r->cmos[RTC_MONTH] = to_reg(r, m);
	r->cmos[RTC_YEAR] = to_reg(r, (int)floor_mod(y, 100));
	r->cmos[RTC_CENTURY] = to_reg(r, (int)floor_mod(floor_div(y, 100), 100));
}

static int hours_from_reg(const struct rtc *r, uint8_t b)
{
	if (mode_24h(r))
		return clamp(from_reg(r, b), 0, 23);
	return clamp(from_reg(r, b & ~HOURS_PM), 1, 12) % 12 +
	       (b & HOURS_PM ? 12 : 0);
}

/* Read the time bytes back as calendar seconds. Values no clock shows
 * (minute 75, month 0, BCD digit 0xA) are clamped to the nearest valid
 * one; the written day of week is kept as an offset to the computed one,
 * since the chip counts it on its own. */
static int64_t parse_time(struct rtc *r)
{
	const uint8_t *c = r->cmos;
	int s = clamp(from_reg(r, c[RTC_SECONDS]), 0, 59);
	int mi = clamp(from_reg(r, c[RTC_MINUTES]), 0, 59);
	int h = hours_from_reg(r, c[RTC_HOURS]);
	int mon = clamp(from_reg(r, c[RTC_MONTH]), 1, 12);
	int64_t y = clamp(from_reg(r, c[RTC_YEAR]), 0, 99) +
		    100 * clamp(from_reg(r, c[RTC_CENTURY]), 0, 99);
	int d = clamp(from_reg(r, c[RTC_DATE_OF_MONTH]), 1,
		      days_in_month(y, mon));
	int64_t days = days_from_civil(y, mon, d);
	int dow = from_reg(r, c[RTC_DAY_OF_WEEK]);

	r->wday_adjust = 0;
	if (dow >= 1 && dow <= 7)
		r->wday_adjust = (uint8_t)floor_mod(dow - 1 - (days + 4), 7);
	return days * SECS_PER_DAY + h * 3600 + mi * 60 + s;
}

/* ---- alarm --------------------------------------------------------------- */

/* What an alarm byte asks for, as a binary value, ALARM_ANY or
 * ALARM_NEVER (a byte the time register can never show). */
static int alarm_want(const struct rtc *r, uint8_t b, int max, bool hours)
{
	uint8_t v = b;
	int n;

	if ((b & ALARM_DONT_CARE) == ALARM_DONT_CARE)
		return ALARM_ANY;
	if (hours && !mode_24h(r))
		v = b & ~HOURS_PM;
	if (!binary_mode(r) && ((v & 0x0F) > 9 || (v >> 4) > 9))
		return ALARM_NEVER;
	n = from_reg(r, v);
	if (hours && !mode_24h(r)) {
		if (n < 1 || n > 12)
			return ALARM_NEVER;
		return n % 12 + (b & HOURS_PM ? 12 : 0);
	}
	return n <= max ? n : ALARM_NEVER;
}

static bool alarm_field_matches(int want, int v)
{
	return want == ALARM_ANY || want == v;
}

/* Virtual time of the first update after t at which the time matches the
 * alarm, or INT64_MAX. Steps a day at most, a field at a time. */
static int64_t next_alarm(const struct rtc *r, int64_t t)
{
	int ws = alarm_want(r, r->cmos[RTC_SECONDS_ALARM], 59, false);
	int wm = alarm_want(r, r->cmos[RTC_MINUTES_ALARM], 59, false);
	int wh = alarm_want(r, r->cmos[RTC_HOURS_ALARM], 23, true);
	int64_t n = updates_at(r, t);
	int64_t tod = floor_mod(r->base_sec + n, SECS_PER_DAY);
	int64_t d = 1;

	if (ws == ALARM_NEVER || wm == ALARM_NEVER || wh == ALARM_NEVER)
		return INT64_MAX;
	while (d <= SECS_PER_DAY) {
		int64_t x = (tod + d) % SECS_PER_DAY;

		if (!alarm_field_matches(wh, (int)(x / 3600)))
			d += 3600 - x % 3600;
		else if (!alarm_field_matches(wm, (int)(x / 60 % 60)))
			d += 60 - x % 60;
		else if (!alarm_field_matches(ws, (int)(x % 60)))
			d++;
		else
			return update_time(r, n + d);
	}
	return INT64_MAX;
}

/* ---- flags, IRQ and the timer ------------------------------------------- */

/* IRQF = PF.PIE + AF.AIE + UF.UIE; the IRQ pin follows IRQF. */
static void update_irq(struct rtc *r)
{
	uint8_t b = r->cmos[RTC_REG_B];
	uint8_t c = r->cmos[RTC_REG_C] & REG_C_FLAGS;
	int level = (c & b & (REG_B_PIE | REG_B_AIE | REG_B_UIE)) != 0;

	/* PF/AF/UF and PIE/AIE/UIE share bit positions 6..4. */
	r->cmos[RTC_REG_C] = c | (level ? REG_C_IRQF : 0);
	if (level != r->irq_out) {
		r->irq_out = level;
		r->dev.host->irq_set(r->dev.inst, MODVM_PC_IRQ_RTC, level);
	}
}

/* Set the flags of every event in (evaluated_ns, t]. Each change of the
 * divider, SET or alarm first syncs, so the interval has one setting. */
static void rtc_sync(struct rtc *r, int64_t t)
{
	int64_t e = r->evaluated_ns, p = periodic_cycles(r);
	uint8_t flags = 0;

	if (t <= e)
		return;
	if (chain_running(r) && p &&
	    floor_div(cycles_at(r, t), p) > floor_div(cycles_at(r, e), p))
		flags |= REG_C_PF;
	if (updating(r)) {
		if (updates_at(r, t) > updates_at(r, e))
			flags |= REG_C_UF;
		if (next_alarm(r, e) <= t)
			flags |= REG_C_AF;
	}
	r->evaluated_ns = t;
	r->cmos[RTC_REG_C] |= flags;
	update_irq(r);
}

/* Arm the timer for the next event that would raise IRQ, if any. While
 * IRQF is set the pin cannot change until register C is read, and a read
 * re-arms, so there is nothing to wake for. */
static void rtc_rearm(struct rtc *r)
{
	int64_t t = r->evaluated_ns, next = INT64_MAX, p = periodic_cycles(r);
	uint8_t b = r->cmos[RTC_REG_B];

	if (!(r->cmos[RTC_REG_C] & REG_C_IRQF)) {
		if ((b & REG_B_PIE) && chain_running(r) && p)
			next = cycle_time(r, (floor_div(cycles_at(r, t), p) + 1) * p);
		if ((b & REG_B_UIE) && updating(r) &&
		    update_time(r, updates_at(r, t) + 1) < next)
			next = update_time(r, updates_at(r, t) + 1);
		if ((b & REG_B_AIE) && updating(r)) {
			int64_t a = next_alarm(r, t);
			next = a < next ? a : next;
		}
	}
	/* Every event is after t by construction; never arm for the past,
	 * which would fire again at once without changing anything. */
	if (next <= t)
		next = t + 1;
	if (next == INT64_MAX)
		r->dev.host->timer_del(r->timer);
	else
		r->dev.host->timer_mod(r->timer, (uint64_t)next);
}

static void rtc_timer_cb(void *opaque)
{
	struct rtc *r = opaque;

	rtc_sync(r, now_ns(r));
	rtc_rearm(r);
}

/* ---- registers ----------------------------------------------------------- */

static bool uip(const struct rtc *r, int64_t t)
{
	return updating(r) &&
	       update_time(r, updates_at(r, t) + 1) - t <= UIP_NS;
}

/* After A or B changed: start the chain's phase, freeze or thaw the time. */
static void mode_changed(struct rtc *r, bool was_running, bool was_updating,
			 int64_t t)
{
	/* DS12887: "The next update occurs at 500ms after a pattern of 010
	 * is written to DV0, DV1, and DV2." */
	if (!was_running && chain_running(r))
		r->base_ns = t + NS_PER_SEC / 2 - NS_PER_SEC;
	if (!was_updating && updating(r)) {
		/* Keep the phase: the next update is the chain's next one. */
		r->base_ns = update_time(r, updates_at(r, t));
		r->base_sec = parse_time(r);
	}
}

static void write_control(struct rtc *r, unsigned idx, uint8_t v, int64_t t)
{
	bool was_running = chain_running(r), was_updating = updating(r);

	/* Freeze the time bytes in case this stops the updates. */
	if (was_updating)
		render_time(r, t);
	if (idx == RTC_REG_A) {
		r->cmos[RTC_REG_A] = v & ~REG_A_UIP;
	} else {
		/* "The SET bit going high clears the UIE bit." */
		if ((v & REG_B_SET) && !(r->cmos[RTC_REG_B] & REG_B_SET))
			v &= ~REG_B_UIE;
		r->cmos[RTC_REG_B] = v;
	}
	mode_changed(r, was_running, was_updating, t);
	/* Enabling an interrupt whose flag is already set raises IRQ now. */
	update_irq(r);
}

static void write_time(struct rtc *r, unsigned idx, uint8_t v, int64_t t)
{
	if (!updating(r)) {
		r->cmos[idx] = v;
		return;
	}
	/* Written while counting: the new time holds from now, and the next
	 * update is still the chain's next one. */
	render_time(r, t);
	r->cmos[idx] = v;
	r->base_sec = parse_time(r) - updates_at(r, t);
}

static uint8_t read_reg(struct rtc *r, unsigned idx, int64_t t)
{
	uint8_t v;

	switch (idx) {
	case RTC_REG_A:
		return r->cmos[RTC_REG_A] | (uip(r, t) ? REG_A_UIP : 0);
	case RTC_REG_C:
		/* Reading C clears every flag and releases the IRQ pin. */
		v = r->cmos[RTC_REG_C];
		r->cmos[RTC_REG_C] = 0;
		update_irq(r);
		return v;
	case RTC_REG_D:
		return REG_D_VRT;
	default:
		if (is_time_reg(idx) && updating(r))
			render_time(r, t);
		return r->cmos[idx];
	}
}

static void write_reg(struct rtc *r, unsigned idx, uint8_t v, int64_t t)
{
	switch (idx) {
	case RTC_REG_A:
	case RTC_REG_B:
		write_control(r, idx, v, t);
		break;
	case RTC_REG_C:
	case RTC_REG_D:
		break; /* read-only */
	default:
		if (is_time_reg(idx))
			write_time(r, idx, v, t);
		else
			r->cmos[idx] = v;
	}
}

/* Port 0x70 is the write-only index (bit 7 masks NMI on a PC; modvm has
 * no NMI source behind it); port 0x71 reads and writes CMOS[index]. */
static uint8_t port_read(struct rtc *r, uint64_t port)
{
	int64_t t;
	uint8_t v;

	if (port != 1)
		return 0xFF;
	t = now_ns(r);
	rtc_sync(r, t);
	v = read_reg(r, r->index & 0x7F, t);
	rtc_rearm(r);
	return v;
}

static void port_write(struct rtc *r, uint64_t port, uint8_t v)
{
	int64_t t;

	if (port == 0) {
		r->index = v;
		return;
	}
	if (port != 1)
		return;
	t = now_ns(r);
	rtc_sync(r, t);
	write_reg(r, r->index & 0x7F, v, t);
	rtc_rearm(r);
}

/* Wider accesses act as consecutive byte accesses; bytes past 0x71 read
 * as an unclaimed port and writes to them are dropped. */
static uint64_t rtc_pio_read(void *opaque, uint64_t off, unsigned size)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < size && i < 8; i++)
		v |= (uint64_t)port_read(opaque, off + i) << (8 * i);
	return v;
}

static void rtc_pio_write(void *opaque, uint64_t off, uint64_t v,
			  unsigned size)
{
	for (unsigned i = 0; i < size && i < 8; i++)
		port_write(opaque, off + i, (uint8_t)(v >> (8 * i)));
}

static const struct modvm_io_ops rtc_io_ops = { rtc_pio_read, rtc_pio_write };

/* ---- CMOS memory layout (PC/AT, with the usual extensions) -------------- */

static void put16(uint8_t *p, uint64_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static uint64_t cap(uint64_t v, uint64_t max)
{
	return v > max ? max : v;
}

static void cmos_fill_memory(struct rtc *r)
{
	uint64_t size = r->dev.host->mem_size(r->dev.inst);
	uint64_t low = size < MODVM_PC_PCI_HOLE ? size : MODVM_PC_PCI_HOLE;
	uint64_t high = size - low;
	uint64_t ext = low > (1 << 20) ? (low - (1 << 20)) >> 10 : 0;
	uint64_t above16m = low > (16 << 20) ? (low - (16 << 20)) >> 16 : 0;
	uint64_t above4g = cap(high >> 16, 0xFFFFFF);
	unsigned sum = 0;

	/* No floppy, math coprocessor present, EGA/VGA display (00b). */
	r->cmos[CMOS_EQUIPMENT] = 0x02;
	put16(&r->cmos[CMOS_BASE_MEM_LO], 640);
	put16(&r->cmos[CMOS_EXT_MEM_LO], cap(ext, 0xFFFF));
	put16(&r->cmos[CMOS_EXT_MEM2_LO], cap(ext, 0xFFFF));
	put16(&r->cmos[CMOS_MEM_16M_LO], cap(above16m, 0xFFFF));
	r->cmos[CMOS_MEM_4G_LO] = (uint8_t)above4g;
	r->cmos[CMOS_MEM_4G_LO + 1] = (uint8_t)(above4g >> 8);
	r->cmos[CMOS_MEM_4G_LO + 2] = (uint8_t)(above4g >> 16);
	/* Big-endian sum of 0x10-0x2D, as the AT BIOS checks it. */
	for (unsigned i = CMOS_CHECKSUM_FIRST; i <= CMOS_CHECKSUM_LAST; i++)
		sum += r->cmos[i];
	r->cmos[CMOS_CHECKSUM_HI] = (uint8_t)(sum >> 8);
	r->cmos[CMOS_CHECKSUM_HI + 1] = (uint8_t)sum;
}

/* ---- life cycle ---------------------------------------------------------- */

/* "host", or a fixed local time YYYY-MM-DDTHH:MM:SS. */
static int parse_start(struct rtc *r, const char *s, int64_t *sec)
{
	int y, mo, d, h, mi, se, end = -1;

	if (!strcmp(s, "host")) {
		int64_t wall = r->dev.host->boot_wall_ns(r->dev.inst);
		/* wall + clock_ns is the host's time: an update at each of
		 * its whole seconds. */
		*sec = floor_div(wall, NS_PER_SEC);
		r->base_ns = -floor_mod(wall, NS_PER_SEC);
		return 0;
	}
	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &se,
		   &end) != 6 || end != (int)strlen(s) || y < 0 || y > 9999 ||
	    mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) ||
	    h < 0 || h > 23 || mi < 0 || mi > 59 || se < 0 || se > 59) {
		r->dev.host->set_error(r->dev.inst,
				   "start = \"%s\": expected \"host\" or a time like 2020-01-01T00:00:00",
				   s);
		return -1;
	}
	*sec = days_from_civil(y, mo, d) * SECS_PER_DAY + h * 3600 + mi * 60 + se;
	r->base_ns = now_ns(r);
	return 0;
}

/* RESET pin (datasheet "Reset"): clears PIE, AIE, UIE, SQWE and every flag
 * of register C; the time, the divider and the RAM are untouched. */
static void rtc_reset(void *dev)
{
	struct rtc *r = dev;
	int64_t t = now_ns(r);

	rtc_sync(r, t);
	r->cmos[RTC_REG_B] &= ~(REG_B_PIE | REG_B_AIE | REG_B_UIE | REG_B_SQWE);
	r->cmos[RTC_REG_C] = 0;
	update_irq(r);
	rtc_rearm(r);
}

/* ---- state --------------------------------------------------------------- */

static void rtc_pre_save(void *dev)
{
	struct rtc *r = dev;

	r->saved_ns = now_ns(r);
}

static bool within(int64_t v, int64_t limit)
{
	return v >= -limit && v <= limit;
}

/* Times are kept relative to the virtual clock: if the clock the state is
 * loaded under differs from the one it was saved under (a fresh machine),
 * shift them so the guest time continues from where it was saved. */
static int rtc_post_load(void *dev)
{
	struct rtc *r = dev;
	int64_t t = now_ns(r), delta = t - r->saved_ns;
	int ret = 0;

	if (!within(r->saved_ns, TIME_NS_LIMIT) ||
	    !within(r->base_ns, TIME_NS_LIMIT) ||
	    !within(r->evaluated_ns, TIME_NS_LIMIT) ||
	    !within(r->base_sec, TIME_SEC_LIMIT)) {
		/* Keep a usable clock: the loaded calendar bytes, from now. */
		r->base_ns = t;
		r->base_sec = parse_time(r);
		r->evaluated_ns = t;
		delta = 0;
		ret = -1;
	}
	r->base_ns += delta;
	r->evaluated_ns += delta;
	r->wday_adjust %= 7;
	r->cmos[RTC_REG_A] &= ~REG_A_UIP;
	r->cmos[RTC_REG_C] &= REG_C_FLAGS;
	r->irq_out = -1; /* drive IRQ 8 to the loaded level */
	rtc_sync(r, t);
	update_irq(r);
	rtc_rearm(r);
	return ret;
}

#define R struct rtc
MODVM_STATE_SECTION_HOOKS(rtc_state, "rtc", 1, 1, rtc_pre_save, rtc_post_load,
	MODVM_F_BYTES(R, cmos), MODVM_F_U8(R, index), MODVM_F_U8(R, wday_adjust),
	MODVM_F_I64(R, base_sec), MODVM_F_I64(R, base_ns),
	MODVM_F_I64(R, evaluated_ns), MODVM_F_I64(R, saved_ns));

/* ---- lifetime ------------------------------------------------------------ */

static int rtc_init(void *dev)
{
	struct rtc *r = dev;
	const struct modvm_host *host = r->dev.host;

	if (parse_start(r, r->start, &r->base_sec))
		return -1;
	r->evaluated_ns = now_ns(r);
	r->cmos[RTC_REG_A] = REG_A_POWER_ON;
	r->cmos[RTC_REG_B] = REG_B_POWER_ON;
	cmos_fill_memory(r);
	r->timer = host->timer_new(r->dev.inst, rtc_timer_cb, r);
	if (!r->timer)
		return -1;
	return host->pio_register(r->dev.inst, MODVM_PC_PORT_RTC, 2, &rtc_io_ops, r) ? 0 : -1;
}

MODVM_DEVICE_DEFINE(.name = "rtc-cmos", .version = "1.0.0",
	.description = "MC146818A real-time clock and CMOS RAM at ports 0x70-0x71",
	.props = MODVM_PROPS(MODVM_PROP_STRING(R, start, "start", "host",
		"time at power-on: \"host\" (the host's UTC clock) or a fixed YYYY-MM-DDTHH:MM:SS")),
	.state = MODVM_STATE(&rtc_state),
	.ops = MODVM_DEVICE_OPS(R, .init = rtc_init, .reset = rtc_reset));
#undef R
