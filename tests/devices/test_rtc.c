/* rtc-cmos through the harness: calendar arithmetic and rollovers in BCD,
 * binary and 12-hour modes, UIP timing, SET and divider control, periodic,
 * alarm and update interrupts at exact virtual times, register C, the CMOS
 * memory-size bytes, hostile accesses, and state round trips. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include <modvm/pc.h>

#include "harness.h"
#include <modvm/modvm.h>
#include "testmain.h"

#define SEC 1000000000ull
#define MS 1000000ull
#define RTC_IRQ MODVM_PC_IRQ_RTC

enum {
	SECONDS = 0x00, SECONDS_ALARM = 0x01, MINUTES = 0x02,
	MINUTES_ALARM = 0x03, HOURS = 0x04, HOURS_ALARM = 0x05, DOW = 0x06,
	DAY = 0x07, MONTH = 0x08, YEAR = 0x09, REG_A = 0x0A, REG_B = 0x0B,
	REG_C = 0x0C, REG_D = 0x0D, CENTURY = 0x32,
};

#define A_UIP 0x80
#define B_SET 0x80
#define B_PIE 0x40
#define B_AIE 0x20
#define B_UIE 0x10
#define B_DM_BINARY 0x04
#define B_24H 0x02
#define C_IRQF 0x80
#define C_PF 0x40
#define C_AF 0x20
#define C_UF 0x10

static struct hx *rtc_machine(uint64_t mem, const char *start)
{
	struct hx *h = hx_new(mem);
	char prop[64] = "";

	if (start)
		snprintf(prop, sizeof(prop), "start=%s", start);
	if (hx_add(h, "rtc-cmos", "rtc", start ? prop : NULL, NULL)) {
		fprintf(stderr, "rtc-cmos: %s\n", hx_error(h));
		abort();
	}
	return h;
}

static uint8_t rd(struct hx *h, uint8_t idx)
{
	hx_outb(h, 0x70, idx);
	return hx_inb(h, 0x71);
}

static void wr(struct hx *h, uint8_t idx, uint8_t v)
{
	hx_outb(h, 0x70, idx);
	hx_outb(h, 0x71, v);
}

/* "YYYY-MM-DD hh:mm:ss dow" from BCD 24-hour registers. */
static void time_str(struct hx *h, char *buf, size_t len)
{
	snprintf(buf, len, "%02x%02x-%02x-%02x %02x:%02x:%02x %x",
		 rd(h, CENTURY), rd(h, YEAR), rd(h, MONTH), rd(h, DAY),
		 rd(h, HOURS), rd(h, MINUTES), rd(h, SECONDS), rd(h, DOW));
}

static void check_time(struct hx *h, const char *want)
{
	char got[64];

	time_str(h, got, sizeof(got));
	if (strcmp(got, want))
		fprintf(stderr, "\n  time: got %s, want %s\n", got, want);
	CU_ASSERT_STRING_EQUAL(got, want);
}

/* Start at `start`, step once by `ns`, expect `want`. */
static void check_step(const char *start, uint64_t ns, const char *before,
		       const char *after)
{
	struct hx *h = rtc_machine(0, start);

	check_time(h, before);
	hx_clock_step(h, ns);
	check_time(h, after);
	hx_free(h);
}

static void test_power_on_registers(void)
{
	struct hx *h = rtc_machine(0, "2020-01-01T00:00:00");

	/* 2020-01-01 was a Wednesday: day of week 4 (Sunday = 1) */
	check_time(h, "2020-01-01 00:00:00 4");
	CU_ASSERT_EQUAL(rd(h, REG_A), 0x26);
	CU_ASSERT_EQUAL(rd(h, REG_B), B_24H);
	CU_ASSERT_EQUAL(rd(h, REG_C), 0);
	CU_ASSERT_EQUAL(rd(h, REG_D), 0x80);
	CU_ASSERT_EQUAL(hx_irq_level(h, RTC_IRQ), 0);
	hx_free(h);
}

static void test_host_start_is_near_host_time(void)
{
	struct hx *h = rtc_machine(0, NULL); /* default: the host clock */
	time_t t = time(NULL);
	struct tm tm;
	int year;

	gmtime_r(&t, &tm);
	year = (rd(h, CENTURY) >> 4) * 1000 + (rd(h, CENTURY) & 15) * 100 +
	       (rd(h, YEAR) >> 4) * 10 + (rd(h, YEAR) & 15);
	/* allow a new year to start between the two reads */
	CU_ASSERT_TRUE(year == tm.tm_year + 1900 || year == tm.tm_year + 1901);
	hx_free(h);
}

static void test_rollovers(void)
{
	check_step("2021-03-04T05:06:07", 3 * SEC, "2021-03-04 05:06:07 5",
		   "2021-03-04 05:06:10 5");
	check_step("2021-03-04T05:06:59", SEC, "2021-03-04 05:06:59 5",
		   "2021-03-04 05:07:00 5");
	check_step("2021-03-04T05:59:59", SEC, "2021-03-04 05:59:59 5",
		   "2021-03-04 06:00:00 5");
	check_step("2021-03-04T23:59:59", SEC, "2021-03-04 23:59:59 5",
		   "2021-03-05 00:00:00 6");
	check_step("2021-03-06T23:59:59", SEC, "2021-03-06 23:59:59 7",
		   "2021-03-07 00:00:00 1"); /* Saturday -> Sunday */
	check_step("2021-04-30T23:59:59", SEC, "2021-04-30 23:59:59 6",
		   "2021-05-01 00:00:00 7");
	check_step("2019-12-31T23:59:59", SEC, "2019-12-31 23:59:59 3",
		   "2020-01-01 00:00:00 4");
	/* leap years: divisible by 4, not by 100 unless by 400 */
	check_step("2020-02-28T23:59:59", SEC, "2020-02-28 23:59:59 6",
		   "2020-02-29 00:00:00 7");
	check_step("2020-02-29T23:59:59", SEC, "2020-02-29 23:59:59 7",
		   "2020-03-01 00:00:00 1");
	check_step("2021-02-28T23:59:59", SEC, "2021-02-28 23:59:59 1",
		   "2021-03-01 00:00:00 2");
	check_step("2000-02-28T23:59:59", SEC, "2000-02-28 23:59:59 2",
		   "2000-02-29 00:00:00 3");
	check_step("2100-02-28T23:59:59", SEC, "2100-02-28 23:59:59 1",
		   "2100-03-01 00:00:00 2");
	/* year 0 is a leap year (divisible by 400) and the math holds */
	check_step("0000-02-28T23:59:59", SEC, "0000-02-28 23:59:59 2",
		   "0000-02-29 00:00:00 3");
	check_step("2099-12-31T23:59:59", SEC, "2099-12-31 23:59:59 5",
		   "2100-01-01 00:00:00 6");
	/* a long run: 400 days and 1 s across the 2024 leap day */
	check_step("2023-06-01T12:00:00", (400ull * 86400 + 1) * SEC,
		   "2023-06-01 12:00:00 5", "2024-07-05 12:00:01 6");
}

static void test_binary_mode(void)
{
	struct hx *h = rtc_machine(0, "2099-12-31T23:59:58");

	wr(h, REG_B, B_24H | B_DM_BINARY);
	CU_ASSERT_EQUAL(rd(h, SECONDS), 58);
	CU_ASSERT_EQUAL(rd(h, HOURS), 23);
	CU_ASSERT_EQUAL(rd(h, DAY), 31);
	CU_ASSERT_EQUAL(rd(h, YEAR), 99);
	CU_ASSERT_EQUAL(rd(h, CENTURY), 20);
	hx_clock_step(h, 2 * SEC);
	CU_ASSERT_EQUAL(rd(h, SECONDS), 0);
	CU_ASSERT_EQUAL(rd(h, MINUTES), 0);
	CU_ASSERT_EQUAL(rd(h, HOURS), 0);
	CU_ASSERT_EQUAL(rd(h, DAY), 1);
	CU_ASSERT_EQUAL(rd(h, MONTH), 1);
	CU_ASSERT_EQUAL(rd(h, YEAR), 0);
	CU_ASSERT_EQUAL(rd(h, CENTURY), 21);
	CU_ASSERT_EQUAL(rd(h, DOW), 6); /* 2100-01-01: Friday */
	hx_free(h);
}

static void test_12_hour_mode(void)
{
	struct hx *h = rtc_machine(0, "2022-08-09T00:30:00");

	wr(h, REG_B, 0); /* 12-hour, BCD */
	CU_ASSERT_EQUAL(rd(h, HOURS), 0x12); /* 12 AM */
	wr(h, REG_B, B_SET);
	wr(h, HOURS, 0x81); /* 1 PM */
	wr(h, MINUTES, 0x59);
	wr(h, SECONDS, 0x59);
	wr(h, REG_B, 0);
	hx_clock_step(h, SEC);
	CU_ASSERT_EQUAL(rd(h, HOURS), 0x82);
	CU_ASSERT_EQUAL(rd(h, MINUTES), 0);
	wr(h, REG_B, B_24H);
	CU_ASSERT_EQUAL(rd(h, HOURS), 0x14); /* the same time, in 24 h */
	/* 12-hour binary, set the way a guest does: SET, mode, values */
	wr(h, REG_B, B_SET | B_24H);
	wr(h, REG_B, B_SET | B_DM_BINARY);
	wr(h, HOURS, 11);
	wr(h, MINUTES, 59);
	wr(h, SECONDS, 59);
	wr(h, REG_B, B_DM_BINARY);
	hx_clock_step(h, SEC);
	CU_ASSERT_EQUAL(rd(h, HOURS), 0x80 | 12); /* 11:59:59 AM -> 12 PM */
	hx_clock_step(h, 11 * 3600 * SEC);
	CU_ASSERT_EQUAL(rd(h, HOURS), 0x80 | 11); /* 11 PM */
	hx_clock_step(h, 3600 * SEC);
	CU_ASSERT_EQUAL(rd(h, HOURS), 12);        /* 12 AM, next day */
	hx_free(h);
}

static void test_uip_window(void)
{
	struct hx *h = rtc_machine(0, "2020-01-01T00:00:00");

	/* the first update is at 1 s; UIP rises 244 us before it */
	hx_clock_step(h, SEC - 244141 - 1);
	CU_ASSERT_EQUAL(rd(h, REG_A) & A_UIP, 0);
	hx_clock_step(h, 1);
	CU_ASSERT_EQUAL(rd(h, REG_A), A_UIP | 0x26);
	hx_clock_step(h, 244140);
	CU_ASSERT_EQUAL(rd(h, REG_A) & A_UIP, A_UIP);
	CU_ASSERT_EQUAL(rd(h, SECONDS), 0x00);
	hx_clock_step(h, 1); /* 1 s: the update */
	CU_ASSERT_EQUAL(rd(h, REG_A) & A_UIP, 0);
	CU_ASSERT_EQUAL(rd(h, SECONDS), 0x01);
	/* UIP is never set while SET inhibits updates, and is not writable */
	wr(h, REG_A, 0xA6);
	CU_ASSERT_EQUAL(rd(h, REG_A), 0x26);
	hx_clock_step(h, SEC - 100000);
	CU_ASSERT_EQUAL(rd(h, REG_A) & A_UIP, A_UIP);
	wr(h, REG_B, B_SET | B_24H);
	CU_ASSERT_EQUAL(rd(h, REG_A) & A_UIP, 0);
	hx_free(h);
}

static void test_set_freezes_and_time_continues(void)
{
	struct hx *h = rtc_machine(0, "2020-01-01T00:00:00");

	hx_clock_step(h, 300 * MS);
	wr(h, REG_B, B_SET | B_24H);
	wr(h, CENTURY, 0x20);
	wr(h, YEAR, 0x30);
	wr(h, MONTH, 0x06);
	wr(h, DAY, 0x15);
	wr(h, DOW, 0x01);
	wr(h, HOURS, 0x10);
	wr(h, MINUTES, 0x20);
	wr(h, SECONDS, 0x30);
	hx_clock_step(h, 5 * SEC); /* t = 5.3 s: held while SET */
	check_time(h, "2030-06-15 10:20:30 1");
	wr(h, REG_B, B_24H);
	check_time(h, "2030-06-15 10:20:30 1");
	/* the chain kept its phase: the next update is at t = 6 s */
	hx_clock_step(h, 700 * MS - 1);
	CU_ASSERT_EQUAL(rd(h, SECONDS), 0x30);
	hx_clock_step(h, 1);
	CU_ASSERT_EQUAL(rd(h, SECONDS), 0x31);
	/* the day of week counts on from what was written (Sunday) */
	hx_clock_step(h, 86400 * SEC);
	check_time(h, "2030-06-16 10:20:31 2");
	hx_free(h);
}

static void test_write_while_running(void)
{
	struct hx *h = rtc_machine(0, "2020-01-01T00:00:00");

	hx_clock_step(h, 1500 * MS);
	wr(h, MINUTES, 0x45);
	check_time(h, "2020-01-01 00:45:01 4");
	hx_clock_step(h, 500 * MS);
	check_time(h, "2020-01-01 00:45:02 4");
	/* out-of-range values are clamped, never shown as garbage */
	wr(h, REG_B, B_SET | B_24H);
	wr(h, MONTH, 0x02);
	wr(h, DAY, 0x31);
	wr(h, SECONDS, 0x7A);
	wr(h, REG_B, B_24H);
	/* the day of week is not recomputed: it stays as it was */
	check_time(h, "2020-02-29 00:45:59 4");
	hx_free(h);
}

static void test_divider_reset(void)
{
	struct hx *h = rtc_machine(0, "2020-01-01T00:00:00");

	hx_clock_step(h, 200 * MS);
	wr(h, REG_A, 0x70); /* chain held in reset: the time stops */
	hx_clock_step(h, 10 * SEC);
	CU_ASSERT_EQUAL(rd(h, SECONDS), 0x00);
	CU_ASSERT_EQUAL(rd(h, REG_A), 0x70);
	wr(h, REG_A, 0x26); /* t = 10.2 s: first update 500 ms later */
	hx_clock_step(h, 500 * MS - 1);
	CU_ASSERT_EQUAL(rd(h, SECONDS), 0x00);
	hx_clock_step(h, 1);
	CU_ASSERT_EQUAL(rd(h, SECONDS), 0x01);
	hx_clock_step(h, SEC);
	CU_ASSERT_EQUAL(rd(h, SECONDS), 0x02);
	hx_free(h);
}

/* Count periodic interrupts over one virtual second, acknowledging each
 * by reading register C as a guest handler would. */
static unsigned count_periodic(uint8_t rate, uint64_t step)
{
	struct hx *h = rtc_machine(0, "2020-01-01T00:00:00");
	unsigned n = 0;

	wr(h, REG_A, 0x20 | rate);
	wr(h, REG_B, B_PIE | B_24H);
	for (uint64_t t = 0; t < SEC; t += step) {
		hx_clock_step(h, step);
		if (hx_irq_level(h, RTC_IRQ)) {
			uint8_t c = rd(h, REG_C);
			CU_ASSERT_EQUAL(c & (C_IRQF | C_PF), C_IRQF | C_PF);
			CU_ASSERT_EQUAL(hx_irq_level(h, RTC_IRQ), 0);
			n++;
		}
	}
	CU_ASSERT_EQUAL(hx_irq_raises(h, RTC_IRQ), n);
	hx_free(h);
	return n;
}

static void test_periodic_rates(void)
{
	CU_ASSERT_EQUAL(count_periodic(3, 50000), 8192);
	CU_ASSERT_EQUAL(count_periodic(6, 500000), 1024);
	CU_ASSERT_EQUAL(count_periodic(1, 2 * MS), 256);  /* = rate 8 */
	CU_ASSERT_EQUAL(count_periodic(2, 4 * MS), 128);  /* = rate 9 */
	CU_ASSERT_EQUAL(count_periodic(10, 10 * MS), 64);
	CU_ASSERT_EQUAL(count_periodic(15, 100 * MS), 2);
	CU_ASSERT_EQUAL(count_periodic(0, 100 * MS), 0);
}

static void test_periodic_exact_time(void)
{
	struct hx *h = rtc_machine(0, "2020-01-01T00:00:00");

	wr(h, REG_B, B_PIE | B_24H); /* rate 6: 976562.5 ns */
	hx_clock_step(h, 976562);
	CU_ASSERT_EQUAL(hx_irq_level(h, RTC_IRQ), 0);
	hx_clock_step(h, 1);
	CU_ASSERT_EQUAL(hx_irq_level(h, RTC_IRQ), 1);
	/* without a read of C the line stays up and no timer runs */
	CU_ASSERT_EQUAL(hx_timer_next(h), UINT64_MAX);
	hx_clock_step(h, 10 * MS);
	CU_ASSERT_EQUAL(hx_irq_raises(h, RTC_IRQ), 1);
	CU_ASSERT_EQUAL(rd(h, REG_C), C_IRQF | C_PF);
	/* next tick: 12 periods = 11718750 ns */
	CU_ASSERT_EQUAL(hx_timer_next(h), 11718750);
	hx_free(h);
}

static void test_no_timer_when_idle(void)
{
	struct hx *h = rtc_machine(0, "2020-01-01T00:00:00");

	CU_ASSERT_EQUAL(hx_timer_next(h), UINT64_MAX);
	hx_clock_step(h, 1500 * MS);
	/* flags are still set, computed when C is read; IRQ stays low */
	CU_ASSERT_EQUAL(rd(h, REG_C), C_PF | C_UF);
	CU_ASSERT_EQUAL(hx_irq_raises(h, RTC_IRQ), 0);
	CU_ASSERT_EQUAL(rd(h, REG_C), 0);
	wr(h, REG_B, B_UIE | B_24H);
	CU_ASSERT_EQUAL(hx_timer_next(h), 2 * SEC);
	wr(h, REG_B, B_24H);
	CU_ASSERT_EQUAL(hx_timer_next(h), UINT64_MAX);
	/* enabling an interrupt whose flag is set raises IRQ at once */
	hx_clock_step(h, 5 * MS);
	wr(h, REG_B, B_PIE | B_24H);
	CU_ASSERT_EQUAL(hx_irq_level(h, RTC_IRQ), 1);
	CU_ASSERT_EQUAL(rd(h, REG_C), C_IRQF | C_PF);
	CU_ASSERT_EQUAL(hx_irq_level(h, RTC_IRQ), 0);
	hx_free(h);
}

static void test_update_interrupt(void)
{
	struct hx *h = rtc_machine(0, "2020-01-01T00:00:00");

	wr(h, REG_B, B_UIE | B_24H);
	for (int i = 1; i <= 5; i++) {
		hx_clock_step(h, SEC - 1);
		CU_ASSERT_EQUAL(hx_irq_level(h, RTC_IRQ), 0);
		hx_clock_step(h, 1);
		CU_ASSERT_EQUAL(hx_irq_level(h, RTC_IRQ), 1);
		CU_ASSERT_EQUAL(rd(h, REG_C) & (C_IRQF | C_UF), C_IRQF | C_UF);
		CU_ASSERT_EQUAL(rd(h, SECONDS), i);
	}
	CU_ASSERT_EQUAL(hx_irq_raises(h, RTC_IRQ), 5);
	/* SET going high clears UIE (DS12887 register B) */
	wr(h, REG_B, B_SET | B_UIE | B_24H);
	CU_ASSERT_EQUAL(rd(h, REG_B), B_SET | B_24H);
	hx_free(h);
}

static void test_alarm(void)
{
	struct hx *h = rtc_machine(0, "2020-01-01T23:59:58");

	/* midnight, across the day change */
	wr(h, HOURS_ALARM, 0x00);
	wr(h, MINUTES_ALARM, 0x00);
	wr(h, SECONDS_ALARM, 0x00);
	wr(h, REG_B, B_AIE | B_24H);
	CU_ASSERT_EQUAL(hx_timer_next(h), 2 * SEC);
	hx_clock_step(h, 2 * SEC - 1);
	CU_ASSERT_EQUAL(hx_irq_level(h, RTC_IRQ), 0);
	hx_clock_step(h, 1);
	CU_ASSERT_EQUAL(hx_irq_level(h, RTC_IRQ), 1);
	CU_ASSERT_EQUAL(rd(h, REG_C) & (C_IRQF | C_AF), C_IRQF | C_AF);
	check_time(h, "2020-01-02 00:00:00 5");
	/* the next match is a day later */
	CU_ASSERT_EQUAL(hx_timer_next(h), (2 + 86400) * SEC);

	/* don't care hours and minutes: every minute at :30 */
	wr(h, HOURS_ALARM, 0xC0);
	wr(h, MINUTES_ALARM, 0xFF);
	wr(h, SECONDS_ALARM, 0x30);
	CU_ASSERT_EQUAL(hx_timer_next(h), 32 * SEC);
	hx_clock_step(h, 30 * SEC);
	CU_ASSERT_EQUAL(hx_irq_level(h, RTC_IRQ), 1);
	rd(h, REG_C);
	hx_clock_step(h, 59 * SEC);
	CU_ASSERT_EQUAL(hx_irq_level(h, RTC_IRQ), 0);
	hx_clock_step(h, SEC);
	CU_ASSERT_EQUAL(hx_irq_level(h, RTC_IRQ), 1);
	rd(h, REG_C);
	/* everything don't care: every second */
	wr(h, SECONDS_ALARM, 0xC0);
	hx_clock_step(h, SEC);
	CU_ASSERT_EQUAL(rd(h, REG_C) & C_AF, C_AF);
	/* a byte no clock shows (BCD 0x5A) never matches */
	wr(h, SECONDS_ALARM, 0x5A);
	CU_ASSERT_EQUAL(hx_timer_next(h), UINT64_MAX);
	hx_clock_step(h, 3 * 86400 * SEC);
	CU_ASSERT_EQUAL(rd(h, REG_C) & C_AF, 0);
	hx_free(h);
}

static void test_alarm_12_hour(void)
{
	struct hx *h = rtc_machine(0, "2020-01-01T13:00:00");

	wr(h, REG_B, 0); /* 12-hour BCD */
	wr(h, HOURS_ALARM, 0x81); /* 1 PM */
	wr(h, MINUTES_ALARM, 0x00);
	wr(h, SECONDS_ALARM, 0x05);
	wr(h, REG_B, B_AIE);
	hx_clock_step(h, 5 * SEC);
	CU_ASSERT_EQUAL(hx_irq_level(h, RTC_IRQ), 1);
	rd(h, REG_C);
	wr(h, HOURS_ALARM, 0x01); /* 1 AM: 12 hours on */
	CU_ASSERT_EQUAL(hx_timer_next(h), (5 + 12 * 3600) * SEC);
	hx_free(h);
}

static void test_readonly_registers(void)
{
	struct hx *h = rtc_machine(0, "2020-01-01T00:00:00");

	wr(h, REG_C, 0xFF);
	wr(h, REG_D, 0x00);
	CU_ASSERT_EQUAL(rd(h, REG_C), 0);
	CU_ASSERT_EQUAL(rd(h, REG_D), 0x80);
	/* SQWE and DSE are stored (no square-wave pin, no DST jumps) */
	wr(h, REG_B, B_24H | 0x08 | 0x01);
	CU_ASSERT_EQUAL(rd(h, REG_B), B_24H | 0x08 | 0x01);
	hx_free(h);
}

static void test_reset(void)
{
	struct hx *h = rtc_machine(0, "2020-01-01T00:00:00");

	wr(h, REG_B, B_PIE | B_UIE | B_AIE | 0x08 | B_24H);
	hx_clock_step(h, 2 * MS);
	CU_ASSERT_EQUAL(hx_irq_level(h, RTC_IRQ), 1);
	hx_reset(h);
	CU_ASSERT_EQUAL(hx_irq_level(h, RTC_IRQ), 0);
	CU_ASSERT_EQUAL(rd(h, REG_B), B_24H);
	CU_ASSERT_EQUAL(rd(h, REG_C), 0);
	CU_ASSERT_EQUAL(hx_timer_next(h), UINT64_MAX);
	hx_clock_step(h, SEC);
	CU_ASSERT_EQUAL(rd(h, SECONDS), 1); /* the clock kept running */
	hx_free(h);
}

static uint32_t rd16(struct hx *h, uint8_t idx)
{
	return rd(h, idx) | rd(h, idx + 1) << 8;
}

static void check_memory(uint64_t size, unsigned ext, unsigned above16m,
			 unsigned above4g)
{
	struct hx *h = rtc_machine(size, "2020-01-01T00:00:00");
	unsigned sum = 0;

	CU_ASSERT_EQUAL(rd16(h, 0x15), 640);
	CU_ASSERT_EQUAL(rd16(h, 0x17), ext);
	CU_ASSERT_EQUAL(rd16(h, 0x30), ext);
	CU_ASSERT_EQUAL(rd16(h, 0x34), above16m);
	CU_ASSERT_EQUAL(rd16(h, 0x5B) | rd(h, 0x5D) << 16, above4g);
	CU_ASSERT_EQUAL(rd(h, 0x14), 0x02); /* no floppy, FPU, EGA/VGA */
	CU_ASSERT_EQUAL(rd(h, 0x10), 0);
	for (unsigned i = 0x10; i <= 0x2D; i++)
		sum += rd(h, i);
	CU_ASSERT_EQUAL(rd(h, 0x2E) << 8 | rd(h, 0x2F), sum);
	CU_ASSERT_NOT_EQUAL(sum, 0);
	hx_free(h);
}

static void test_memory_size_bytes(void)
{
	check_memory(16ull << 20, 15 * 1024, 0, 0);
	check_memory(1ull << 30, 0xFFFF, (1024 - 16) * 16, 0);
	/* 3 GiB below the PCI hole, 1 GiB from 4 GiB up */
	check_memory(4ull << 30, 0xFFFF, (3072 - 16) * 16, 1024 * 16);
	check_memory(6ull << 30, 0xFFFF, (3072 - 16) * 16, 3072 * 16);
}

static void test_index_port_and_ram(void)
{
	struct hx *h = rtc_machine(0, "2020-01-01T00:00:00");

	/* bit 7 of the index is the NMI mask, not part of the address */
	hx_outb(h, 0x70, 0x80 | REG_D);
	CU_ASSERT_EQUAL(hx_inb(h, 0x71), 0x80);
	hx_outb(h, 0x70, 0x80 | 0x15);
	CU_ASSERT_EQUAL(hx_inb(h, 0x71), 0x80); /* 640 & 0xFF */
	wr(h, 0x80 | 0x40, 0x5A);
	CU_ASSERT_EQUAL(rd(h, 0x40), 0x5A);
	/* every RAM byte is read/write */
	for (unsigned i = 0x0E; i < 0x80; i++) {
		if (i == CENTURY)
			continue;
		wr(h, (uint8_t)i, (uint8_t)(i ^ 0xA5));
	}
	for (unsigned i = 0x0E; i < 0x80; i++)
		if (i != CENTURY)
			CU_ASSERT_EQUAL(rd(h, (uint8_t)i), (uint8_t)(i ^ 0xA5));
	/* the index port is write-only */
	CU_ASSERT_EQUAL(hx_inb(h, 0x70), 0xFF);
	/* a word access is an index write and a data access */
	hx_outw(h, 0x70, 0x3F40);
	CU_ASSERT_EQUAL(rd(h, 0x40), 0x3F);
	hx_outb(h, 0x70, 0x40);
	CU_ASSERT_EQUAL(hx_inw(h, 0x70), 0x3FFF);
	/* a dword at 0x71 runs past the device: the extra bytes are dropped */
	hx_outl(h, 0x71, 0xFFFFFF11);
	CU_ASSERT_EQUAL(rd(h, 0x40), 0x11);
	CU_ASSERT_EQUAL(hx_inl(h, 0x71), 0xFFFFFF11);
	hx_free(h);
}

static void test_bad_start(void)
{
	const char *bad[] = { "start=2020-13-01T00:00:00",
			      "start=2021-02-29T00:00:00",
			      "start=2100-02-29T00:00:00",
			      "start=2020-01-01T24:00:00",
			      "start=2020-01-01", "start=yesterday",
			      "start=2020-01-01T00:00:00Z" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct hx *h = hx_new(0);
		CU_ASSERT_EQUAL(hx_add(h, "rtc-cmos", "rtc", bad[i], NULL), -1);
		CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(h), "expected \"host\""));
		hx_free(h);
	}
}

static void test_state_round_trip(void)
{
	struct hx *a = rtc_machine(0, "2020-02-28T23:59:50");
	struct hx *b = rtc_machine(0, "1999-01-01T00:00:00");
	char ta[64], tb[64];
	size_t len;
	void *st;

	wr(a, 0x40, 0x77);
	wr(a, REG_A, 0x2F); /* 2 Hz periodic */
	wr(a, REG_B, B_PIE | B_24H);
	hx_clock_step(a, 8300 * MS); /* IRQ up since 0.5 s */
	CU_ASSERT_EQUAL(hx_irq_level(a, RTC_IRQ), 1);
	hx_clock_step(b, 123 * MS); /* b's clock differs from a's */

	st = hx_state_save(a, "rtc", &len);
	CU_ASSERT_EQUAL_FATAL(hx_state_load(b, "rtc", st, len), 0);
	free(st);
	CU_ASSERT_EQUAL(hx_irq_level(b, RTC_IRQ), 1);
	time_str(a, ta, sizeof(ta));
	time_str(b, tb, sizeof(tb));
	CU_ASSERT_STRING_EQUAL(ta, tb);
	CU_ASSERT_EQUAL(rd(b, 0x40), 0x77);
	CU_ASSERT_EQUAL(rd(b, REG_C), rd(a, REG_C));
	/* both continue in step: update phase and periodic phase kept */
	for (int i = 0; i < 40; i++) {
		hx_clock_step(a, 50 * MS);
		hx_clock_step(b, 50 * MS);
		CU_ASSERT_EQUAL(rd(a, REG_A), rd(b, REG_A));
		CU_ASSERT_EQUAL(hx_irq_level(a, RTC_IRQ), hx_irq_level(b, RTC_IRQ));
		if (hx_irq_level(a, RTC_IRQ))
			CU_ASSERT_EQUAL(rd(a, REG_C), rd(b, REG_C));
		time_str(a, ta, sizeof(ta));
		time_str(b, tb, sizeof(tb));
		CU_ASSERT_STRING_EQUAL(ta, tb);
	}
	check_time(b, "2020-02-29 00:00:00 7");
	hx_free(a);
	hx_free(b);
}

static void test_state_frozen_round_trip(void)
{
	struct hx *a = rtc_machine(0, "2020-01-01T00:00:00");
	struct hx *b = rtc_machine(0, "2020-01-01T00:00:00");
	size_t len;
	void *st;

	wr(a, REG_B, B_SET | B_24H | B_DM_BINARY);
	wr(a, HOURS, 7);
	st = hx_state_save(a, "rtc", &len);
	CU_ASSERT_EQUAL_FATAL(hx_state_load(b, "rtc", st, len), 0);
	free(st);
	hx_clock_step(b, 5 * SEC);
	CU_ASSERT_EQUAL(rd(b, HOURS), 7);
	CU_ASSERT_EQUAL(rd(b, SECONDS), 0);
	wr(b, REG_B, B_24H | B_DM_BINARY);
	hx_clock_step(b, SEC);
	CU_ASSERT_EQUAL(rd(b, SECONDS), 1);
	CU_ASSERT_EQUAL(rd(b, HOURS), 7);
	hx_free(a);
	hx_free(b);
}

/* A section whose times would overflow is refused, and the RTC goes on
 * working with the calendar bytes it loaded. */
static void test_state_hostile(void)
{
	struct hx *a = rtc_machine(0, "2020-01-01T00:00:00");
	size_t len, name = strlen("rtc"), payload = 4 + 2 + 2 + name + 4 + 4;
	size_t base_ns_at = payload + 128 + 1 + 1 + 8;
	uint32_t crc;
	int64_t evil = INT64_MIN + 5;

	wr(a, REG_B, B_SET | B_24H); /* the bytes hold 00:00:00 */
	uint8_t *st = hx_state_save(a, "rtc", &len);

	memcpy(st + base_ns_at, &evil, 8);
	crc = (uint32_t)crc32(0, (const Bytef *)st, (uInt)(len - 4));
	memcpy(st + len - 4, &crc, 4);
	CU_ASSERT_EQUAL(hx_state_load(a, "rtc", st, len), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(a), "rejected"));
	free(st);
	wr(a, REG_B, B_24H);
	hx_clock_step(a, 2 * SEC);
	check_time(a, "2020-01-01 00:00:02 4");
	hx_free(a);
}

int main(void)
{
	static const struct test_case tests[] = {
		TEST(test_power_on_registers),
		TEST(test_host_start_is_near_host_time),
		TEST(test_rollovers),
		TEST(test_binary_mode),
		TEST(test_12_hour_mode),
		TEST(test_uip_window),
		TEST(test_set_freezes_and_time_continues),
		TEST(test_write_while_running),
		TEST(test_divider_reset),
		TEST(test_periodic_rates),
		TEST(test_periodic_exact_time),
		TEST(test_no_timer_when_idle),
		TEST(test_update_interrupt),
		TEST(test_alarm),
		TEST(test_alarm_12_hour),
		TEST(test_readonly_registers),
		TEST(test_reset),
		TEST(test_memory_size_bytes),
		TEST(test_index_port_and_ram),
		TEST(test_bad_start),
		TEST(test_state_round_trip),
		TEST(test_state_frozen_round_trip),
		TEST(test_state_hostile),
	};

	return RUN_TESTS("rtc-cmos", tests);
}
