/* block-qcow2 under concurrency, driven through its own I/O functions (the
 * plugin's sources are compiled in): writer threads that allocate, discard
 * and zero their own regions while reader threads read an allocated region
 * without pause; every thread checks its data against a shadow copy, and
 * qemu-img check/compare judge the image afterwards. Also the L2 cache:
 * lookups hit it, and a four-table cache still gives right answers. */
#include <stdarg.h>
#include <sys/wait.h>

#include "harness.h"
#include "testmain.h"

#include "../../plugins/disk/block-qcow2/qcow2_open.c"
#include "../../plugins/disk/block-qcow2/qcow2_meta.c"
#include "../../plugins/disk/block-qcow2/qcow2.c"

#define WRITERS   3
#define READERS   2
#define REGION    (2u << 20)
#define HOT       (1u << 20)               /* read-only region, at the end */
#define DISK      (WRITERS * REGION + HOT)
#define OPS       300

static char dir[64];
static bool have_qemu_img;
static uint8_t *shadow;
static volatile int stop_readers;
static int failures;

static void failed(const char *what, uint64_t off)
{
	__atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);
	fprintf(stderr, "%s at %llu\n", what, (unsigned long long)off);
}

static uint32_t rnd(uint32_t *st)
{
	*st ^= *st << 13;
	*st ^= *st >> 17;
	*st ^= *st << 5;
	return *st;
}

struct worker_arg {
	struct qcow2 *s;
	unsigned id;
};

static void check_read(struct qcow2 *s, uint64_t off, size_t len)
{
	uint8_t *buf = malloc(len);
	struct iovec v[2] = { { buf, len / 2 }, { buf + len / 2, len - len / 2 } };

	if (q_preadv(s, v, 2, off))
		failed("read error", off);
	else if (memcmp(buf, shadow + off, len))
		failed("read differs from what was written", off);
	free(buf);
}

/* Writes, discards and write-zeroes in its own region, checking reads. */
static void *writer_thread(void *p)
{
	struct worker_arg *a = p;
	uint64_t base = (uint64_t)a->id * REGION, cs = a->s->top->cluster_size;
	uint32_t st = 0x9E3779B9u * (a->id + 1);

	for (unsigned i = 0; i < OPS; i++) {
		uint64_t off = base + (rnd(&st) % (REGION / 512)) * 512;
		size_t len = 512 * (1 + rnd(&st) % 32);
		unsigned op = rnd(&st) % 10;
		if (off + len > base + REGION)
			len = base + REGION - off;
		if (op < 6) {
			uint8_t *buf = malloc(len);
			for (size_t j = 0; j < len; j++)
				buf[j] = (uint8_t)(rnd(&st) | 1);
			struct iovec v = { buf, len };
			if (q_pwritev(a->s, &v, 1, off))
				failed("write error", off);
			memcpy(shadow + off, buf, len);
			free(buf);
		} else if (op < 8) {
			if (q_write_zeroes(a->s, off, len))
				failed("write-zeroes error", off);
			memset(shadow + off, 0, len);
		} else {
			/* whole clusters read back as zeroes; partial ones
			 * keep their data (no backing file, block.h) */
			uint64_t lo = (off + cs - 1) & ~(cs - 1), hi = (off + len) & ~(cs - 1);
			if (q_discard(a->s, off, len))
				failed("discard error", off);
			if (hi > lo)
				memset(shadow + lo, 0, hi - lo);
		}
		check_read(a->s, off, len);
	}
	return NULL;
}

static void *reader_thread(void *p)
{
	struct worker_arg *a = p;
	uint32_t st = 12345 + a->id;

	while (!__atomic_load_n(&stop_readers, __ATOMIC_RELAXED)) {
		uint64_t off = WRITERS * REGION + (rnd(&st) % (HOT / 512 - 64)) * 512;
		check_read(a->s, off, 512 * (1 + rnd(&st) % 64));
	}
	return NULL;
}

static struct qcow2 *open_direct(const char *img, unsigned cache)
{
	struct qcow2 *s = calloc(1, sizeof(*s));
	char err[600] = "";

	pthread_mutex_init(&s->alloc, NULL);
	s->top = qimg_open(img, true, cache, err, sizeof(err));
	if (!s->top)
		fprintf(stderr, "open: %s\n", err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s->top);
	return s;
}

static void close_direct(struct qcow2 *s)
{
	CU_ASSERT_EQUAL(q_flush(s), 0);   /* writes out pending metadata */
	qimg_free(s->top);
	pthread_mutex_destroy(&s->alloc);
	free(s);
}

static void run(unsigned cluster, unsigned cache)
{
	char img[128], raw[128];
	pthread_t w[WRITERS], r[READERS];
	struct worker_arg wa[WRITERS], ra[READERS];
	struct qcow2 *s;
	FILE *f;

	snprintf(img, sizeof(img), "%s/mt.qcow2", dir);
	snprintf(raw, sizeof(raw), "%s/mt.raw", dir);
	CU_ASSERT_EQUAL_FATAL(hx_sh("qemu-img create -q -f qcow2 -o cluster_size=%u %s %u",
				 cluster, img, DISK), 0);
	shadow = calloc(1, DISK);
	s = open_direct(img, cache);
	/* the hot region: allocated before the readers start */
	for (uint64_t off = WRITERS * REGION; off < DISK; off += 65536) {
		uint8_t buf[65536];
		for (unsigned j = 0; j < sizeof(buf); j++)
			buf[j] = (uint8_t)(off / 512 + j * 7);
		struct iovec v = { buf, sizeof(buf) };
		CU_ASSERT_EQUAL(q_pwritev(s, &v, 1, off), 0);
		memcpy(shadow + off, buf, sizeof(buf));
	}
	failures = 0;
	stop_readers = 0;
	for (unsigned i = 0; i < READERS; i++) {
		ra[i] = (struct worker_arg){ s, i };
		pthread_create(&r[i], NULL, reader_thread, &ra[i]);
	}
	for (unsigned i = 0; i < WRITERS; i++) {
		wa[i] = (struct worker_arg){ s, i };
		pthread_create(&w[i], NULL, writer_thread, &wa[i]);
	}
	for (unsigned i = 0; i < WRITERS; i++)
		pthread_join(w[i], NULL);
	__atomic_store_n(&stop_readers, 1, __ATOMIC_RELAXED);
	for (unsigned i = 0; i < READERS; i++)
		pthread_join(r[i], NULL);
	CU_ASSERT_EQUAL(failures, 0);
	check_read(s, 0, DISK);
	CU_ASSERT_EQUAL(failures, 0);
	fprintf(stderr, "cluster %u, cache %u tables: L2 cache %llu hits, %llu misses\n",
		cluster, s->top->l2c_n, (unsigned long long)s->top->l2c_hits,
		(unsigned long long)s->top->l2c_misses);
	if (cache)
		CU_ASSERT(s->top->l2c_hits > s->top->l2c_misses);
	close_direct(s);
	f = fopen(raw, "wb");
	CU_ASSERT_EQUAL(fwrite(shadow, 1, DISK, f), DISK);
	fclose(f);
	CU_ASSERT_EQUAL(hx_sh("qemu-img check -q %s", img), 0);
	CU_ASSERT_EQUAL(hx_sh("qemu-img compare -q -f qcow2 -F raw %s %s", img, raw), 0);
	free(shadow);
}

static void test_concurrent_64k(void)
{
	if (have_qemu_img)
		run(65536, 1 << 20);
}

static void test_concurrent_512_small_cache(void)
{
	if (have_qemu_img)
		run(512, 0);   /* four tables: constant eviction */
}

int main(void)
{
	static const struct test_case tests[] = {
		TEST(test_concurrent_64k),
		TEST(test_concurrent_512_small_cache),
	};
	int rc;

	snprintf(dir, sizeof(dir), "/tmp/modvm-qmt-XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	have_qemu_img = hx_sh("qemu-img --version >/dev/null 2>&1") == 0;
	if (!have_qemu_img)
		fprintf(stderr, "qemu-img not found (apt-get install qemu-utils): skipped\n");
	rc = RUN_TESTS("block-qcow2-mt", tests);
	hx_sh("rm -rf %s", dir);
	return rc;
}
