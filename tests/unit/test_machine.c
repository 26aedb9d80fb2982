/* Machine basics: memory layout, I/O dispatch and overlap rules, interrupt
 * fan-out, the virtual clock and timers, fd watches, and a device with a
 * chardev backend driven through the harness. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "machine.h"
#include "testmain.h"

static char err[1024];

static const struct modvm_plugin_desc fake_desc = {
	.kind = MODVM_KIND_DEVICE, .name = "fake", .version = "1.0.0",
};
static const struct plugin fake_plugin = { .path = "fake.so", .desc = &fake_desc };

struct reg {
	uint64_t last_off, last_val;
	unsigned last_size;
	int writes;
};

static uint64_t reg_read(void *o, uint64_t off, unsigned size)
{
	struct reg *r = o;
	r->last_off = off;
	r->last_size = size;
	return 0x1234567890abcdefull;
}

static void reg_write(void *o, uint64_t off, uint64_t v, unsigned size)
{
	struct reg *r = o;
	r->last_off = off;
	r->last_val = v;
	r->last_size = size;
	r->writes++;
}

static const struct modvm_io_ops reg_ops = { reg_read, reg_write };

static void test_memory_layout(void)
{
	struct vm_memory m;

	CU_ASSERT_EQUAL_FATAL(vm_memory_init(&m, 4ull << 30, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(m.low_size, 3ull << 30);
	CU_ASSERT_EQUAL(m.high_size, 1ull << 30);
	CU_ASSERT_PTR_NOT_NULL(vm_memory_ptr(&m, 0, 4096));
	CU_ASSERT_PTR_NULL(vm_memory_ptr(&m, (3ull << 30) - 4096, 8192)); /* crosses into hole */
	CU_ASSERT_PTR_NULL(vm_memory_ptr(&m, 0xFEC00000, 4));
	CU_ASSERT_EQUAL(vm_memory_offset(&m, 4ull << 30), (int64_t)(3ull << 30));
	CU_ASSERT_EQUAL(vm_memory_offset(&m, 0xFEE00000), -1);
	CU_ASSERT_PTR_NULL(vm_memory_ptr(&m, UINT64_MAX - 10, 100)); /* no overflow */
	CU_ASSERT_PTR_NULL(vm_memory_ptr(&m, 0, UINT64_MAX));
	uint32_t v = 0xcafef00d, back = 0;
	CU_ASSERT_EQUAL(vm_memory_write(&m, (4ull << 30) + 16, &v, 4), 0);
	CU_ASSERT_EQUAL(vm_memory_read(&m, (4ull << 30) + 16, &back, 4), 0);
	CU_ASSERT_EQUAL(back, v);
	CU_ASSERT_EQUAL(vm_memory_write(&m, 5ull << 30, &v, 4), -1);
	vm_memory_destroy(&m);
	CU_ASSERT_EQUAL(vm_memory_init(&m, 12345, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "multiple of 4 KiB"));
}

static void test_io_dispatch_and_overlap(void)
{
	struct machine m;
	struct reg r = { 0 }, r2 = { 0 };
	modvm_inst *a, *b;
	modvm_region *pa, *ma;
	uint32_t v32 = 0;

	CU_ASSERT_EQUAL_FATAL(machine_init(&m, 16 << 20, true, err, sizeof(err)), 0);
	a = inst_new(&m, &fake_plugin, "a", NULL, NULL);
	b = inst_new(&m, &fake_plugin, "b", NULL, NULL);
	pa = io_register(&m, a, false, 0x3f8, 8, &reg_ops, &r);
	CU_ASSERT_PTR_NOT_NULL_FATAL(pa);
	CU_ASSERT_EQUAL(io_pio_read(&m, 0x3fa, 1), 0xef);
	CU_ASSERT_EQUAL(r.last_off, 2);
	io_pio_write(&m, 0x3f9, 0x1ff, 1);
	CU_ASSERT_EQUAL(r.last_val, 0xff); /* truncated to the access size */
	CU_ASSERT_EQUAL(io_pio_read(&m, 0x400, 2), 0xffff); /* unclaimed */
	CU_ASSERT_PTR_NULL(io_register(&m, b, false, 0x3ff, 2, &reg_ops, &r2));
	CU_ASSERT_PTR_NOT_NULL(strstr(b->error, "ports 0x3ff-0x400 requested by fake[b] overlaps ports 0x3f8-0x3ff owned by fake[a]"));
	CU_ASSERT_PTR_NULL(io_register(&m, b, false, 0xfff0, 0x20, &reg_ops, &r2));

	ma = io_register(&m, a, true, 0xFEB00000, 0x1000, &reg_ops, &r);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ma);
	CU_ASSERT_TRUE(io_mmio_read(&m, 0xFEB00010, &v32, 4));
	CU_ASSERT_EQUAL(v32, 0x90abcdef);
	CU_ASSERT_FALSE(io_mmio_read(&m, 0xFEA00000, &v32, 4));
	CU_ASSERT_EQUAL(v32, 0xffffffff);
	CU_ASSERT_PTR_NULL(io_register(&m, b, true, 0x1000, 0x1000, &reg_ops, &r2));
	CU_ASSERT_PTR_NOT_NULL(strstr(b->error, "overlaps guest RAM"));
	CU_ASSERT_PTR_NULL(io_register(&m, b, true, 0xFEB00800, 0x1000, &reg_ops, &r2));
	CU_ASSERT_PTR_NOT_NULL(strstr(b->error, "owned by fake[a]"));
	/* move (a PCI BAR being programmed) and disable */
	CU_ASSERT_EQUAL(io_region_move(ma, 0xFE000000), 0);
	CU_ASSERT_TRUE(io_mmio_read(&m, 0xFE000004, &v32, 4));
	CU_ASSERT_FALSE(io_mmio_read(&m, 0xFEB00010, &v32, 4));
	io_region_enable(ma, false);
	CU_ASSERT_FALSE(io_mmio_read(&m, 0xFE000004, &v32, 4));
	modvm_region *mb = io_register(&m, b, true, 0xFE000000, 0x100, &reg_ops, &r2);
	CU_ASSERT_PTR_NOT_NULL(mb);
	io_region_enable(ma, true); /* would overlap b now: stays off */
	CU_ASSERT_FALSE(ma->enabled);
	io_region_remove(pa);
	CU_ASSERT_EQUAL(io_pio_read(&m, 0x3f8, 1), 0xff);
	inst_free(a);
	inst_free(b);
	machine_destroy(&m);
}

struct sink_seen {
	int calls;
	unsigned line;
	int level;
};

static void sink_set(void *o, unsigned line, int level)
{
	struct sink_seen *s = o;
	s->calls++;
	s->line = line;
	s->level = level;
}

static void test_irq_fan_out(void)
{
	struct machine m;
	struct sink_seen pic = { 0 }, ioapic = { 0 };
	modvm_inst *a;

	CU_ASSERT_EQUAL_FATAL(machine_init(&m, 16 << 20, true, err, sizeof(err)), 0);
	a = inst_new(&m, &fake_plugin, "a", NULL, NULL);
	CU_ASSERT_PTR_NOT_NULL(irq_sink_add(&m, a, 0, 16, sink_set, &pic));
	CU_ASSERT_PTR_NOT_NULL(irq_sink_add(&m, a, 0, 24, sink_set, &ioapic));
	CU_ASSERT_PTR_NULL(irq_sink_add(&m, a, 60, 10, sink_set, &ioapic));
	irq_line_set(&m, 4, 1);
	CU_ASSERT_EQUAL(pic.calls, 1);
	CU_ASSERT_EQUAL(ioapic.calls, 1);
	CU_ASSERT_EQUAL(pic.line, 4);
	irq_line_set(&m, 4, 1);
	irq_line_set(&m, 4, 0);
	CU_ASSERT_EQUAL(m.irq.raises[4], 1);
	irq_line_set(&m, 20, 1);
	CU_ASSERT_EQUAL(pic.calls, 3);    /* line 20 is not the PIC's */
	CU_ASSERT_EQUAL(ioapic.calls, 4);
	irq_line_set(&m, 1000, 1);        /* ignored, logged */
	irq_msi_send(&m, 0xFEE00000, 0x4041);
	CU_ASSERT_EQUAL(m.irq.msi_count, 1);
	CU_ASSERT_EQUAL(m.irq.msi_last_data, 0x4041);
	inst_free(a);
	machine_destroy(&m);
}

struct tick {
	struct machine *m;
	uint64_t seen[8];
	int n;
	modvm_timer *t;
	uint64_t period;
};

static void tick_cb(void *o)
{
	struct tick *t = o;
	if (t->n < 8)
		t->seen[t->n] = vclock_now(&t->m->clock);
	t->n++;
	if (t->period)
		timer_arm(t->t, vclock_now(&t->m->clock) + t->period);
}

static void test_timers_manual_clock(void)
{
	struct hx *h = hx_new(0);
	struct machine *m = hx_machine(h);
	struct tick a = { .m = m, .period = 1000 }, b = { .m = m };

	a.t = timer_create_(m, NULL, tick_cb, &a);
	b.t = timer_create_(m, NULL, tick_cb, &b);
	timer_arm(a.t, 1000);
	timer_arm(b.t, 2500);
	hx_clock_step(h, 999);
	CU_ASSERT_EQUAL(a.n, 0);
	hx_clock_step(h, 3001);
	CU_ASSERT_EQUAL(hx_clock(h), 4000);
	CU_ASSERT_EQUAL(a.n, 4);
	CU_ASSERT_EQUAL(a.seen[0], 1000);
	CU_ASSERT_EQUAL(a.seen[3], 4000);
	CU_ASSERT_EQUAL(b.n, 1);
	CU_ASSERT_EQUAL(b.seen[0], 2500); /* fired at its own deadline */
	timer_disarm(a.t);
	hx_clock_step(h, 10000);
	CU_ASSERT_EQUAL(a.n, 4);
	CU_ASSERT_EQUAL(timers_next(m), UINT64_MAX);
	hx_free(h); /* frees the timers too */
}

static void test_virtual_clock_stops_while_paused(void)
{
	struct vclock c;
	struct timespec ms5 = { 0, 5000000 };
	uint64_t t1, t2;

	vclock_init(&c, false);
	CU_ASSERT_EQUAL(vclock_now(&c), 0);
	vclock_start(&c);
	nanosleep(&ms5, NULL);
	vclock_stop(&c);
	t1 = vclock_now(&c);
	CU_ASSERT_TRUE(t1 >= 5000000);
	nanosleep(&ms5, NULL);
	CU_ASSERT_EQUAL(vclock_now(&c), t1); /* paused: time stands still */
	vclock_start(&c);
	t2 = vclock_now(&c);
	CU_ASSERT_TRUE(t2 >= t1 && t2 - t1 < 5000000);
}

/* Host time taken out of a running clock (a vCPU's waits, timer.c): it
 * reads that much less from then on, but never less than a value already
 * returned; a peek does not count as returned. */
static void test_virtual_clock_hide(void)
{
	struct vclock c;
	struct timespec ms20 = { 0, 20000000 };
	uint64_t t1, t2, t3, p;

	vclock_init(&c, false);
	vclock_start(&c);
	t1 = vclock_now(&c);
	nanosleep(&ms20, NULL);
	p = vclock_peek(&c);
	CU_ASSERT_TRUE(p >= t1 + 20000000);
	vclock_hide(&c, 20000000); /* nobody saw past t1: all of it goes */
	t2 = vclock_now(&c);
	CU_ASSERT_TRUE(t2 >= t1);
	CU_ASSERT_TRUE(t2 < p);
	CU_ASSERT_EQUAL(c.hidden_ns, 20000000);
	nanosleep(&ms20, NULL);
	t3 = vclock_now(&c);  /* seen now: hiding cannot go below it */
	vclock_hide(&c, 1000000000);
	CU_ASSERT_TRUE(vclock_now(&c) >= t3);
	CU_ASSERT_TRUE(c.hidden_ns < 1000000000);
	vclock_stop(&c);
	t1 = vclock_now(&c);
	vclock_hide(&c, 5000000); /* a stopped clock has nothing to hide */
	CU_ASSERT_EQUAL(vclock_now(&c), t1);
}

struct fdseen {
	int calls;
	char buf[16];
};

static void fd_cb(void *o, int fd, unsigned rev)
{
	struct fdseen *s = o;
	ssize_t n = read(fd, s->buf, sizeof(s->buf) - 1);
	if (n > 0)
		s->buf[n] = 0;
	s->calls++;
}

static void test_fd_watch(void)
{
	struct hx *h = hx_new(0);
	struct machine *m = hx_machine(h);
	struct fdseen seen = { 0 };
	int p[2];
	modvm_watch *w;

	CU_ASSERT_EQUAL_FATAL(pipe(p), 0);
	w = loop_watch(m, NULL, p[0], MODVM_FD_IN, fd_cb, &seen);
	CU_ASSERT_PTR_NOT_NULL(w);
	CU_ASSERT_EQUAL(hx_poll(h, 0), 0);
	CU_ASSERT_EQUAL(write(p[1], "hi", 2), 2);
	CU_ASSERT_EQUAL(hx_poll(h, 100), 1);
	CU_ASSERT_STRING_EQUAL(seen.buf, "hi");
	loop_unwatch(w);
	CU_ASSERT_EQUAL(write(p[1], "x", 1), 1);
	CU_ASSERT_EQUAL(hx_poll(h, 0), 0);
	close(p[0]);
	close(p[1]);
	hx_free(h);
}

/* A real plugin through the harness, with its chardev backend. */
static void test_device_with_backend(void)
{
	struct hx *h = hx_new(0);

	CU_ASSERT_EQUAL(hx_add(h, "test-device", "d0", "port=0x520", "mode=slow", NULL), 0);
	hx_outb(h, 0x520, 'Q');
	CU_ASSERT_EQUAL(hx_inb(h, 0x520), 'Q');
	CU_ASSERT_EQUAL(hx_add(h, "test-device", "d1", "port=0x520", NULL), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(h), "owned by test-device[d0]"));
	CU_ASSERT_EQUAL(hx_add(h, "test-device", "d2", "mode=warp", NULL), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(h), "one of: fast, slow, off"));
	hx_free(h);
}

static size_t take_all(void *be, const uint8_t *buf, size_t len)
{
	return len;
}

static void test_console_log_ring(void)
{
	static const struct modvm_chardev_ops ops = { .size = sizeof(ops), .write = take_all };
	modvm_inst be = { 0 };
	modvm_chardev chr = { .ops = &ops, .backend = &be };
	uint8_t *big = malloc(CONSOLE_LOG_SIZE + 100), out[16];

	chr.log = malloc(CONSOLE_LOG_SIZE);
	CU_ASSERT_EQUAL(chardev_write(&chr, "hello", 5), 5);
	CU_ASSERT_EQUAL(chardev_log_read(&chr, 1, out, sizeof(out)), 4);
	CU_ASSERT_EQUAL(memcmp(out, "ello", 4), 0);
	for (size_t i = 0; i < CONSOLE_LOG_SIZE + 100; i++)
		big[i] = (uint8_t)i;
	chardev_write(&chr, big, CONSOLE_LOG_SIZE + 100);
	CU_ASSERT_EQUAL(chr.logged, CONSOLE_LOG_SIZE + 105);
	/* the oldest 105 bytes are gone: a read from 0 starts at byte 105 */
	CU_ASSERT_EQUAL(chardev_log_read(&chr, 0, out, 4), 4);
	CU_ASSERT_EQUAL(out[0], (uint8_t)100);
	CU_ASSERT_EQUAL(chardev_log_read(&chr, chr.logged - 2, out, 16), 2);
	CU_ASSERT_EQUAL(out[1], (uint8_t)(CONSOLE_LOG_SIZE + 99));
	free(chr.log);
	free(big);
}

int main(void)
{
	static const struct test_case cases[] = {
		TEST(test_memory_layout),
		TEST(test_io_dispatch_and_overlap),
		TEST(test_irq_fan_out),
		TEST(test_timers_manual_clock),
		TEST(test_virtual_clock_stops_while_paused),
		TEST(test_virtual_clock_hide),
		TEST(test_fd_watch),
		TEST(test_device_with_backend),
		TEST(test_console_log_ring),
	};
	return RUN_TESTS("machine", cases);
}
