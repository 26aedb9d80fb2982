/* pit-8254: counters against virtual time. Mode 2 periods to the clock
 * tick with no drift, mode 3 square waves (even, odd, reload at the half
 * cycle), mode 0 one-shots seen through read-back status, modes 1, 4, 5,
 * latching and read-back, access modes, BCD, channel 2's gate and OUT2 at
 * port 61h, divisor 0, the rate limit, hostile sequences, reset and a
 * state round trip. Times are computed from input-clock ticks exactly as
 * an 8254 at 1.193182 MHz would see them. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include <modvm/modvm.h>
#include "testmain.h"

#define PIT_HZ 1193182ull
#define CH0 0x40
#define CH1 0x41
#define CH2 0x42
#define MODE 0x43
#define PORTB 0x61

static struct hx *pit_new(void)
{
	struct hx *h = hx_new(0);

	CU_ASSERT_EQUAL_FATAL(hx_add(h, "pit-8254", "pit", NULL), 0);
	return h;
}

/* First virtual ns at which `tick` input clocks have elapsed. */
static uint64_t tick_ns(uint64_t tick)
{
	uint64_t r = tick % PIT_HZ;

	return tick / PIT_HZ * 1000000000ull + (r * 1000000000ull + PIT_HZ - 1) / PIT_HZ;
}

static void step_to(struct hx *h, uint64_t ns)
{
	CU_ASSERT_FATAL(ns >= hx_clock(h));
	hx_clock_step(h, ns - hx_clock(h));
}

static void at_tick(struct hx *h, uint64_t tick)
{
	step_to(h, tick_ns(tick));
}

static void load16(struct hx *h, uint16_t port, uint16_t v)
{
	hx_outb(h, port, (uint8_t)v);
	hx_outb(h, port, (uint8_t)(v >> 8));
}

static uint16_t read16(struct hx *h, uint16_t port)
{
	uint8_t lo = hx_inb(h, port);

	return (uint16_t)(lo | hx_inb(h, port) << 8);
}

/* Counter latch command, then the two bytes. */
static uint16_t latched16(struct hx *h, unsigned ch)
{
	hx_outb(h, MODE, (uint8_t)(ch << 6));
	return read16(h, (uint16_t)(CH0 + ch));
}

static uint8_t status(struct hx *h, unsigned ch)
{
	hx_outb(h, MODE, (uint8_t)(0xE0 | 2u << ch));
	return hx_inb(h, (uint16_t)(CH0 + ch));
}

static void test_mode2_periodic_exact(void)
{
	struct hx *h = pit_new();

	hx_outb(h, MODE, 0x34);
	load16(h, CH0, 1193);
	CU_ASSERT_EQUAL(hx_irq_raises(h, 0), 0);
	at_tick(h, 1193);
	CU_ASSERT_EQUAL(hx_irq_raises(h, 0), 1);
	CU_ASSERT_EQUAL(hx_irq_level(h, 0), 0); /* a pulse */
	hx_free(h);

	h = pit_new();
	hx_outb(h, MODE, 0x34);
	load16(h, CH0, 1193);
	step_to(h, tick_ns(1193) - 1);
	CU_ASSERT_EQUAL(hx_irq_raises(h, 0), 0);
	/* 1000 periods: exactly 1000 interrupts, the last one exactly at
	 * 1000 * 1193 ticks (no drift from callback times) */
	step_to(h, tick_ns(1193 * 1000) - 1);
	CU_ASSERT_EQUAL(hx_irq_raises(h, 0), 999);
	step_to(h, tick_ns(1193 * 1000));
	CU_ASSERT_EQUAL(hx_irq_raises(h, 0), 1000);
	CU_ASSERT_EQUAL(hx_irq_level(h, 0), 0);
	/* the count: N at the reload, then N - d */
	CU_ASSERT_EQUAL(latched16(h, 0), 1193);
	at_tick(h, 1193 * 1000 + 500);
	CU_ASSERT_EQUAL(latched16(h, 0), 693);
	/* OUT is low for the one clock at count 1 */
	at_tick(h, 1193 * 1001 - 1);
	CU_ASSERT_EQUAL(latched16(h, 0), 1);
	CU_ASSERT_EQUAL(status(h, 0), 0x34);
	at_tick(h, 1193 * 1001);
	CU_ASSERT_EQUAL(status(h, 0), 0xB4);
	CU_ASSERT_EQUAL(hx_irq_raises(h, 0), 1001);
	hx_free(h);
}

static void test_mode2_programmed_later(void)
{
	struct hx *h = pit_new();
	uint64_t t0;

	step_to(h, 123456789);
	t0 = 123456789ull * PIT_HZ / 1000000000ull; /* start tick */
	hx_outb(h, MODE, 0x34);
	load16(h, CH0, 100);
	step_to(h, tick_ns(t0 + 100) - 1);
	CU_ASSERT_EQUAL(hx_irq_raises(h, 0), 0);
	step_to(h, tick_ns(t0 + 100 * 50));
	CU_ASSERT_EQUAL(hx_irq_raises(h, 0), 50);
	hx_free(h);
}

static void test_mode2_new_count_at_period_end(void)
{
	struct hx *h = pit_new();

	hx_outb(h, MODE, 0x34);
	load16(h, CH0, 1000);
	at_tick(h, 300);
	load16(h, CH0, 500);
	at_tick(h, 800);
	CU_ASSERT_EQUAL(latched16(h, 0), 200); /* old period continues */
	CU_ASSERT_EQUAL(status(h, 0), 0xF4);    /* null count until loaded */
	at_tick(h, 1000);
	CU_ASSERT_EQUAL(hx_irq_raises(h, 0), 1);
	at_tick(h, 1001);
	CU_ASSERT_EQUAL(status(h, 0), 0xB4);
	CU_ASSERT_EQUAL(latched16(h, 0), 499);
	step_to(h, tick_ns(1500) - 1);
	CU_ASSERT_EQUAL(hx_irq_raises(h, 0), 1);
	at_tick(h, 1500);
	CU_ASSERT_EQUAL(hx_irq_raises(h, 0), 2);
	at_tick(h, 2000);
	CU_ASSERT_EQUAL(hx_irq_raises(h, 0), 3);
	hx_free(h);
}

static void test_mode3_square_wave(void)
{
	struct hx *h = pit_new();

	hx_outb(h, MODE, 0x36);
	CU_ASSERT_EQUAL(hx_irq_level(h, 0), 1); /* OUT high on the mode set */
	load16(h, CH0, 1000);
	step_to(h, tick_ns(500) - 1);
	CU_ASSERT_EQUAL(hx_irq_level(h, 0), 1);
	at_tick(h, 500);
	CU_ASSERT_EQUAL(hx_irq_level(h, 0), 0);
	step_to(h, tick_ns(1000) - 1);
	CU_ASSERT_EQUAL(hx_irq_level(h, 0), 0);
	at_tick(h, 1000);
	CU_ASSERT_EQUAL(hx_irq_level(h, 0), 1);
	CU_ASSERT_EQUAL(hx_irq_raises(h, 0), 2);
	at_tick(h, 1000 * 50 + 250);
	CU_ASSERT_EQUAL(hx_irq_raises(h, 0), 51);
	CU_ASSERT_EQUAL(latched16(h, 0), 500); /* counts down by two */
	CU_ASSERT_EQUAL(status(h, 0), 0xB6);
	/* a new count lands at the end of the half cycle (here: the high
	 * half ends at 50500), and the next half is the new one's low half */
	load16(h, CH0, 600);
	step_to(h, tick_ns(50500) - 1);
	CU_ASSERT_EQUAL(hx_irq_level(h, 0), 1);
	at_tick(h, 50500);
	CU_ASSERT_EQUAL(hx_irq_level(h, 0), 0);
	CU_ASSERT_EQUAL(latched16(h, 0), 600);
	step_to(h, tick_ns(50800) - 1);
	CU_ASSERT_EQUAL(hx_irq_level(h, 0), 0);
	at_tick(h, 50800);
	CU_ASSERT_EQUAL(hx_irq_level(h, 0), 1);
	CU_ASSERT_EQUAL(hx_irq_raises(h, 0), 52);
	at_tick(h, 51100);
	CU_ASSERT_EQUAL(hx_irq_level(h, 0), 0);
	/* back to mode 2: the line drops and pulses from now on */
	hx_outb(h, MODE, 0x34);
	CU_ASSERT_EQUAL(hx_irq_level(h, 0), 0);
	hx_free(h);
}

/* Odd counts: one clock longer high; values N, N-1, then by two, and the
 * low half starts at N then drops by three (8254 "Mode 3"). */
static void test_mode3_odd_count(void)
{
	static const uint16_t want[] = { 5, 4, 2, 5, 2, 5, 4, 2, 5, 2 };
	static const int out[] = { 1, 1, 1, 0, 0, 1, 1, 1, 0, 0 };
	struct hx *h = pit_new();

	hx_outb(h, PORTB, 0x01);
	hx_outb(h, MODE, 0xB6);
	load16(h, CH2, 5);
	for (unsigned i = 0; i < 10; i++) {
		at_tick(h, i);
		CU_ASSERT_EQUAL(latched16(h, 2), want[i]);
		CU_ASSERT_EQUAL(!!(hx_inb(h, PORTB) & 0x20), out[i]);
	}
	CU_ASSERT_EQUAL(hx_irq_raises(h, 0), 0); /* channel 2 has no IRQ */
	hx_free(h);
}

static void test_mode0_one_shot(void)
{
	struct hx *h = pit_new();

	hx_outb(h, MODE, 0x30);
	load16(h, CH0, 100);
	CU_ASSERT_EQUAL(status(h, 0), 0x70); /* OUT low, null count */
	at_tick(h, 1);
	CU_ASSERT_EQUAL(status(h, 0), 0x30);
	CU_ASSERT_EQUAL(latched16(h, 0), 99);
	at_tick(h, 99);
	CU_ASSERT_EQUAL(hx_irq_level(h, 0), 0);
	at_tick(h, 100);
	CU_ASSERT_EQUAL(hx_irq_level(h, 0), 1);
	CU_ASSERT_EQUAL(hx_irq_raises(h, 0), 1);
	CU_ASSERT_EQUAL(status(h, 0), 0xB0);
	at_tick(h, 150);
	CU_ASSERT_EQUAL(latched16(h, 0), 65486); /* keeps counting, wraps */
	step_to(h, 1000000000);
	CU_ASSERT_EQUAL(hx_irq_raises(h, 0), 1); /* one shot */
	CU_ASSERT_EQUAL(hx_irq_level(h, 0), 1);
	/* rearm as Linux does, count only: the first byte drops OUT */
	hx_outb(h, CH0, 50);
	CU_ASSERT_EQUAL(hx_irq_level(h, 0), 0);
	CU_ASSERT_EQUAL(status(h, 0), 0x30); /* null count waits for the MSB */
	uint64_t t = 1000000000ull * PIT_HZ / 1000000000ull;
	step_to(h, tick_ns(t + 7));
	CU_ASSERT_EQUAL(hx_irq_level(h, 0), 0); /* stopped between bytes */
	hx_outb(h, CH0, 0);
	step_to(h, tick_ns(t + 7 + 50) - 1);
	CU_ASSERT_EQUAL(hx_irq_level(h, 0), 0);
	step_to(h, tick_ns(t + 7 + 50));
	CU_ASSERT_EQUAL(hx_irq_level(h, 0), 1);
	CU_ASSERT_EQUAL(hx_irq_raises(h, 0), 2);
	hx_free(h);
}

static void test_mode4_strobe(void)
{
	struct hx *h = pit_new();

	hx_outb(h, MODE, 0x18); /* ch0, LSB only, mode 4 */
	hx_outb(h, CH0, 10);
	CU_ASSERT_EQUAL(status(h, 0) & 0x80, 0x80);
	at_tick(h, 10);
	CU_ASSERT_EQUAL(status(h, 0) & 0x80, 0x00); /* low at count 0 */
	CU_ASSERT_EQUAL(hx_irq_raises(h, 0), 0);
	at_tick(h, 11);
	CU_ASSERT_EQUAL(status(h, 0) & 0x80, 0x80);
	CU_ASSERT_EQUAL(hx_irq_raises(h, 0), 1);
	CU_ASSERT_EQUAL(hx_irq_level(h, 0), 0);
	step_to(h, 100000000);
	CU_ASSERT_EQUAL(hx_irq_raises(h, 0), 1);
	hx_free(h);
}

static void test_mode1_and_mode5_gate_triggers(void)
{
	struct hx *h = pit_new();

	hx_outb(h, MODE, 0x92); /* ch2, LSB, mode 1 */
	hx_outb(h, CH2, 100);
	CU_ASSERT_EQUAL(hx_inb(h, PORTB) & 0x20, 0x20);
	at_tick(h, 10);
	CU_ASSERT_EQUAL(hx_inb(h, PORTB) & 0x20, 0x20); /* waits for a trigger */
	hx_outb(h, PORTB, 0x01);
	CU_ASSERT_EQUAL(hx_inb(h, PORTB) & 0x20, 0x00);
	at_tick(h, 60);
	CU_ASSERT_EQUAL(latched16(h, 2) & 0xFF, 50);
	hx_outb(h, PORTB, 0x00); /* the gate level does not matter */
	hx_outb(h, PORTB, 0x01); /* retrigger at 60 */
	at_tick(h, 159);
	CU_ASSERT_EQUAL(hx_inb(h, PORTB) & 0x20, 0x00);
	at_tick(h, 160);
	CU_ASSERT_EQUAL(hx_inb(h, PORTB) & 0x20, 0x20);

	hx_outb(h, PORTB, 0x00);
	hx_outb(h, MODE, 0x9A); /* ch2, LSB, mode 5 */
	hx_outb(h, CH2, 10);
	at_tick(h, 200);
	hx_outb(h, PORTB, 0x01);
	at_tick(h, 209);
	CU_ASSERT_EQUAL(hx_inb(h, PORTB) & 0x20, 0x20);
	at_tick(h, 210);
	CU_ASSERT_EQUAL(hx_inb(h, PORTB) & 0x20, 0x00);
	at_tick(h, 211);
	CU_ASSERT_EQUAL(hx_inb(h, PORTB) & 0x20, 0x20);
	hx_free(h);
}

static void test_latch_and_read_back(void)
{
	struct hx *h = pit_new();

	hx_outb(h, PORTB, 0x01);
	hx_outb(h, MODE, 0x34);
	load16(h, CH0, 1000);
	hx_outb(h, MODE, 0x70); /* ch1 mode 0 */
	load16(h, CH1, 5000);
	hx_outb(h, MODE, 0xB4); /* ch2 mode 2 */
	load16(h, CH2, 300);
	at_tick(h, 100);
	hx_outb(h, MODE, 0x00);
	at_tick(h, 200);
	hx_outb(h, MODE, 0x00); /* ignored: already latched */
	at_tick(h, 400);
	CU_ASSERT_EQUAL(read16(h, CH0), 900);
	CU_ASSERT_EQUAL(read16(h, CH0), 600); /* unlatched now */

	/* read-back: count and status of all three, status first */
	at_tick(h, 1000);
	hx_outb(h, MODE, 0xCE);
	CU_ASSERT_EQUAL(hx_inb(h, CH0), 0xB4);
	CU_ASSERT_EQUAL(read16(h, CH0), 1000);
	CU_ASSERT_EQUAL(hx_inb(h, CH1), 0x30);
	at_tick(h, 1100); /* latched values do not move */
	CU_ASSERT_EQUAL(read16(h, CH1), 4000);
	CU_ASSERT_EQUAL(hx_inb(h, CH2), 0xB4);
	CU_ASSERT_EQUAL(read16(h, CH2), 200);
	/* status only, then the count is live again */
	hx_outb(h, MODE, 0xE4);
	CU_ASSERT_EQUAL(hx_inb(h, CH1), 0x30);
	CU_ASSERT_EQUAL(read16(h, CH1), 3900);
	/* count only */
	hx_outb(h, MODE, 0xD2);
	at_tick(h, 1150);
	CU_ASSERT_EQUAL(read16(h, CH0), 900);
	/* latched count and status both pending, a control word drops them */
	hx_outb(h, MODE, 0xC2);
	hx_outb(h, MODE, 0x34);
	load16(h, CH0, 1000);
	CU_ASSERT_EQUAL(read16(h, CH0), 1000);
	/* a second read-back does not overwrite the first latch */
	hx_outb(h, MODE, 0xC4);
	at_tick(h, 1200);
	hx_outb(h, MODE, 0xC4);
	CU_ASSERT_EQUAL(hx_inb(h, CH1), 0x30);
	CU_ASSERT_EQUAL(read16(h, CH1), 3850);
	hx_free(h);
}

static void test_access_modes(void)
{
	struct hx *h = pit_new();

	hx_outb(h, MODE, 0x50); /* ch1, LSB only, mode 0 */
	hx_outb(h, CH1, 0x34);
	at_tick(h, 2);
	CU_ASSERT_EQUAL(hx_inb(h, CH1), 0x32);
	CU_ASSERT_EQUAL(hx_inb(h, CH1), 0x32); /* no flip-flop */
	hx_outb(h, MODE, 0x60); /* MSB only */
	hx_outb(h, CH1, 0x12);
	CU_ASSERT_EQUAL(hx_inb(h, CH1), 0x12);
	at_tick(h, 2 + 0x100);
	CU_ASSERT_EQUAL(hx_inb(h, CH1), 0x11);
	hx_outb(h, MODE, 0x40); /* latch: one byte in MSB mode */
	at_tick(h, 2 + 0x300);
	CU_ASSERT_EQUAL(hx_inb(h, CH1), 0x11);
	CU_ASSERT_EQUAL(hx_inb(h, CH1), 0x0F);
	/* two bytes: read and write flip-flops are separate */
	hx_outb(h, MODE, 0x74);
	load16(h, CH1, 0x1000);
	CU_ASSERT_EQUAL(hx_inb(h, CH1), 0x00);
	hx_outb(h, CH1, 0x00);
	CU_ASSERT_EQUAL(hx_inb(h, CH1), 0x10);
	hx_outb(h, CH1, 0x20);
	CU_ASSERT_EQUAL(read16(h, CH1), 0x1000);
	/* leave the read flip-flop at the MSB: a control word resets it */
	CU_ASSERT_EQUAL(hx_inb(h, CH1), 0x00);
	hx_outb(h, MODE, 0x74);
	load16(h, CH1, 0x1234);
	CU_ASSERT_EQUAL(hx_inb(h, CH1), 0x34);
	/* port 43h reads as a floating bus; modes 6 and 7 are 2 and 3 */
	CU_ASSERT_EQUAL(hx_inb(h, MODE), 0xFF);
	hx_outb(h, MODE, 0x7C);
	CU_ASSERT_EQUAL(status(h, 1) & 0x0E, 0x04);
	hx_outb(h, MODE, 0x7E);
	CU_ASSERT_EQUAL(status(h, 1) & 0x0E, 0x06);
	hx_free(h);
}

static void test_bcd(void)
{
	struct hx *h = pit_new();

	hx_outb(h, MODE, 0x75); /* ch1, two bytes, mode 2, BCD */
	load16(h, CH1, 0x1000);
	at_tick(h, 1);
	CU_ASSERT_EQUAL(latched16(h, 1), 0x0999);
	CU_ASSERT_EQUAL(status(h, 1), 0xB5);
	at_tick(h, 1000);
	CU_ASSERT_EQUAL(latched16(h, 1), 0x1000);
	at_tick(h, 1001 + 123);
	CU_ASSERT_EQUAL(latched16(h, 1), 0x0876);
	/* count 0 is 10^4 in BCD */
	hx_outb(h, MODE, 0x71);
	load16(h, CH1, 0x0000);
	at_tick(h, 1125);
	CU_ASSERT_EQUAL(latched16(h, 1), 0x9999);
	/* invalid digits do not break anything */
	hx_outb(h, MODE, 0x75);
	load16(h, CH1, 0xFFFF);
	at_tick(h, 1200);
	CU_ASSERT(latched16(h, 1) <= 0x9999);
	hx_free(h);
}

static void test_divisor_zero_is_65536(void)
{
	struct hx *h = pit_new();

	hx_outb(h, MODE, 0x34);
	load16(h, CH0, 0);
	CU_ASSERT_EQUAL(latched16(h, 0), 0);
	at_tick(h, 1);
	CU_ASSERT_EQUAL(latched16(h, 0), 0xFFFF);
	step_to(h, tick_ns(65536) - 1);
	CU_ASSERT_EQUAL(hx_irq_raises(h, 0), 0);
	at_tick(h, 65536);
	CU_ASSERT_EQUAL(hx_irq_raises(h, 0), 1);
	at_tick(h, 65536 * 3);
	CU_ASSERT_EQUAL(hx_irq_raises(h, 0), 3);
	hx_free(h);
}

/* Count 2 in mode 2 is 596 kHz: the counter stays exact, IRQ 0 callbacks
 * are spaced by min-period-ns (default 10 us). */
static void test_fast_rate_is_throttled(void)
{
	struct hx *h = pit_new();
	unsigned n;

	hx_outb(h, MODE, 0x34);
	load16(h, CH0, 2);
	step_to(h, 1000000);
	n = hx_irq_raises(h, 0);
	CU_ASSERT(n >= 95 && n <= 101);
	at_tick(h, 100001);
	CU_ASSERT_EQUAL(latched16(h, 0), 1);
	at_tick(h, 100002);
	CU_ASSERT_EQUAL(latched16(h, 0), 2);
	/* square wave at the same rate: toggles fold, the line still moves */
	hx_outb(h, MODE, 0x36);
	load16(h, CH0, 2);
	n = hx_irq_raises(h, 0);
	step_to(h, hx_clock(h) + 1000000);
	CU_ASSERT(hx_irq_raises(h, 0) - n >= 45 && hx_irq_raises(h, 0) - n <= 101);
	hx_free(h);

	h = hx_new(0);
	CU_ASSERT_EQUAL_FATAL(hx_add(h, "pit-8254", "pit", "min-period-ns=1000", NULL), 0);
	hx_outb(h, MODE, 0x34);
	load16(h, CH0, 2);
	step_to(h, 1000000);
	/* 1676 ns apart is above the 1 us limit: every pulse arrives */
	CU_ASSERT_EQUAL(hx_irq_raises(h, 0), 1193 / 2);
	hx_free(h);

	h = hx_new(0);
	CU_ASSERT_NOT_EQUAL(hx_add(h, "pit-8254", "pit", "min-period-ns=10", NULL), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(h), "min-period-ns"));
	hx_free(h);
}

static void test_channel2_gate_and_port_b(void)
{
	struct hx *h = pit_new();
	uint8_t v;

	CU_ASSERT_EQUAL(hx_inb(h, PORTB), 0x00);
	hx_outb(h, PORTB, 0xF3);
	CU_ASSERT_EQUAL(hx_inb(h, PORTB) & 0xCF, 0x03); /* high bits read-only */
	/* Linux's PIT calibration: mode 0 on channel 2, poll OUT2 */
	hx_outb(h, MODE, 0xB0);
	load16(h, CH2, 1000);
	at_tick(h, 999);
	CU_ASSERT_EQUAL(hx_inb(h, PORTB) & 0x20, 0x00);
	at_tick(h, 1000);
	CU_ASSERT_EQUAL(hx_inb(h, PORTB) & 0x20, 0x20);
	/* the gate holds a mode 0 count */
	load16(h, CH2, 1000);
	at_tick(h, 1400);
	hx_outb(h, PORTB, 0x02);
	at_tick(h, 2400);
	CU_ASSERT_EQUAL(latched16(h, 2), 600);
	CU_ASSERT_EQUAL(hx_inb(h, PORTB) & 0x20, 0x00);
	hx_outb(h, PORTB, 0x03);
	at_tick(h, 2999);
	CU_ASSERT_EQUAL(hx_inb(h, PORTB) & 0x20, 0x00);
	at_tick(h, 3000);
	CU_ASSERT_EQUAL(hx_inb(h, PORTB) & 0x20, 0x20);
	/* mode 2 with the gate low: OUT high, count held; rising reloads */
	hx_outb(h, PORTB, 0x00);
	hx_outb(h, MODE, 0xB4);
	load16(h, CH2, 100);
	at_tick(h, 3099);
	CU_ASSERT_EQUAL(hx_inb(h, PORTB) & 0x20, 0x20);
	CU_ASSERT_EQUAL(latched16(h, 2), 100);
	hx_outb(h, PORTB, 0x01);
	at_tick(h, 3099 + 99);
	CU_ASSERT_EQUAL(hx_inb(h, PORTB) & 0x20, 0x00);
	CU_ASSERT_EQUAL(latched16(h, 2), 1);
	/* the refresh bit toggles every 18 input clocks */
	at_tick(h, 18 * 1000);
	v = hx_inb(h, PORTB);
	at_tick(h, 18 * 1000 + 17);
	CU_ASSERT_EQUAL(hx_inb(h, PORTB) & 0x10, v & 0x10);
	at_tick(h, 18 * 1001);
	CU_ASSERT_EQUAL(hx_inb(h, PORTB) & 0x10, (v & 0x10) ^ 0x10);
	CU_ASSERT_EQUAL(hx_irq_raises(h, 0), 0);
	hx_free(h);
}

static void test_reset(void)
{
	struct hx *h = pit_new();

	hx_outb(h, MODE, 0x36);
	load16(h, CH0, 1000);
	hx_outb(h, PORTB, 0x03);
	at_tick(h, 100);
	CU_ASSERT_EQUAL(hx_irq_level(h, 0), 1);
	hx_reset(h);
	CU_ASSERT_EQUAL(hx_irq_level(h, 0), 0);
	CU_ASSERT_EQUAL(hx_inb(h, PORTB) & 0x0F, 0);
	unsigned n = hx_irq_raises(h, 0);
	step_to(h, 100000000);
	CU_ASSERT_EQUAL(hx_irq_raises(h, 0), n);
	CU_ASSERT_EQUAL(status(h, 0), 0x30); /* idle, mode 0, two bytes */
	hx_free(h);
}

/* Random bytes at every port and random clock steps: no crash, IRQ 0
 * edges bounded by writes plus the rate limit, and a clean mode 2
 * afterwards is exact again. */
static void test_hostile_sequences(void)
{
	static const uint16_t ports[] = { CH0, CH1, CH2, MODE, PORTB };
	struct hx *h = pit_new();
	uint64_t writes = 0, start;
	unsigned base;

	srand(8254);
	for (int i = 0; i < 100000; i++) {
		uint16_t port = ports[rand() % 5];
		switch (rand() % 6) {
		case 0:
		case 1:
			hx_outb(h, port, (uint8_t)rand());
			writes++;
			break;
		case 2:
			hx_outl(h, port, (uint32_t)rand());
			writes += 4;
			break;
		case 3:
			(void)hx_inb(h, port);
			writes++; /* reads catch up too */
			break;
		case 4:
			(void)hx_inw(h, port);
			writes++;
			break;
		default:
			hx_clock_step(h, (uint64_t)(rand() % 20000));
		}
	}
	CU_ASSERT(hx_irq_raises(h, 0) <= writes + hx_clock(h) / 10000 + 2);
	hx_outb(h, MODE, 0x34);
	load16(h, CH0, 1000);
	start = hx_clock(h) * PIT_HZ / 1000000000ull;
	base = hx_irq_raises(h, 0);
	step_to(h, tick_ns(start + 1000 * 20));
	CU_ASSERT_EQUAL(hx_irq_raises(h, 0) - base, 20);
	hx_free(h);
}

static void test_state_round_trip(void)
{
	struct hx *a = pit_new(), *b = pit_new();
	unsigned ra, rb;

	hx_outb(a, MODE, 0x34);
	load16(a, CH0, 1193);
	hx_outb(a, PORTB, 0x01);
	hx_outb(a, MODE, 0xB6);
	load16(a, CH2, 5);
	hx_outb(a, MODE, 0x74);
	load16(a, CH1, 4000);
	at_tick(a, 5000);
	hx_outb(a, MODE, 0x40);          /* latch ch1 ... */
	CU_ASSERT_EQUAL(hx_inb(a, CH1), (uint8_t)(4000 - 5000 % 4000));
	load16(a, CH0, 2000);            /* pending reload at 5965 */
	step_to(b, hx_clock(a));
	CU_ASSERT_EQUAL_FATAL(hx_state_copy(a, b, "pit"), 0);
	ra = hx_irq_raises(a, 0);
	rb = hx_irq_raises(b, 0);
	CU_ASSERT_EQUAL(ra, 4);
	/* ... and read its MSB after the move */
	CU_ASSERT_EQUAL(hx_inb(b, CH1), hx_inb(a, CH1));
	for (uint64_t t = 5001; t < 5010; t++) {
		at_tick(a, t);
		at_tick(b, t);
		CU_ASSERT_EQUAL(hx_inb(a, PORTB) & 0x30, hx_inb(b, PORTB) & 0x30);
		CU_ASSERT_EQUAL(latched16(a, 2), latched16(b, 2));
	}
	step_to(a, tick_ns(5965) - 1);
	step_to(b, tick_ns(5965) - 1);
	CU_ASSERT_EQUAL(hx_irq_raises(b, 0) - rb, 0);
	at_tick(a, 5965);
	at_tick(b, 5965);
	CU_ASSERT_EQUAL(hx_irq_raises(b, 0) - rb, 1);
	at_tick(a, 5965 + 2000 * 10);
	at_tick(b, 5965 + 2000 * 10);
	CU_ASSERT_EQUAL(hx_irq_raises(a, 0) - ra, 11);
	CU_ASSERT_EQUAL(hx_irq_raises(b, 0) - rb, 11);
	CU_ASSERT_EQUAL(latched16(a, 0), latched16(b, 0));
	CU_ASSERT_EQUAL(status(a, 1), status(b, 1));
	hx_free(a);
	hx_free(b);

	/* mode 3 with the line high at the save: the line comes back high */
	a = pit_new();
	b = pit_new();
	hx_outb(a, MODE, 0x36);
	load16(a, CH0, 1000);
	at_tick(a, 1200);
	step_to(b, hx_clock(a));
	CU_ASSERT_EQUAL_FATAL(hx_state_copy(a, b, "pit"), 0);
	CU_ASSERT_EQUAL(hx_irq_level(b, 0), 1);
	at_tick(b, 1500);
	CU_ASSERT_EQUAL(hx_irq_level(b, 0), 0);
	at_tick(b, 2000);
	CU_ASSERT_EQUAL(hx_irq_level(b, 0), 1);
	hx_free(a);
	hx_free(b);
}

int main(void)
{
	static const struct test_case tests[] = {
		TEST(test_mode2_periodic_exact),
		TEST(test_mode2_programmed_later),
		TEST(test_mode2_new_count_at_period_end),
		TEST(test_mode3_square_wave),
		TEST(test_mode3_odd_count),
		TEST(test_mode0_one_shot),
		TEST(test_mode4_strobe),
		TEST(test_mode1_and_mode5_gate_triggers),
		TEST(test_latch_and_read_back),
		TEST(test_access_modes),
		TEST(test_bcd),
		TEST(test_divisor_zero_is_65536),
		TEST(test_fast_rate_is_throttled),
		TEST(test_channel2_gate_and_port_b),
		TEST(test_reset),
		TEST(test_hostile_sequences),
		TEST(test_state_round_trip),
	};
	return RUN_TESTS("pit-8254", tests);
}
