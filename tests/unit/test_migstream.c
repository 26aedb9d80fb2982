/* The live migration stream parser (core/migstream.c): a good stream is
 * taken whole; any flipped bit, truncation, out-of-range page or index,
 * oversized length or missing state is refused with a message. */
#include <stdlib.h>
#include <string.h>

#include "migstream.h"
#include "util.h"
#include "testmain.h"

#define NPAGES 16

struct mem {
	uint8_t *buf;
	size_t len, pos, cap;
	struct strbuf answers; /* what the parser wrote back */
};

static int mem_read(void *o, void *buf, size_t n)
{
	struct mem *m = o;

	if (n > m->len - m->pos)
		return -1;
	memcpy(buf, m->buf + m->pos, n);
	m->pos += n;
	return 0;
}

static int mem_write(void *o, const void *buf, size_t n)
{
	struct mem *m = o;

	if (m->cap) { /* building a stream */
		if (m->len + n > m->cap)
			m->buf = xrealloc(m->buf, m->cap = (m->len + n) * 2);
		memcpy(m->buf + m->len, buf, n);
		m->len += n;
		return 0;
	}
	sb_append(&m->answers, buf, n);
	return 0;
}

struct ram {
	uint8_t pages[NPAGES][MIG_PAGE];
	bool refuse;
};

static int t_hello(void *o, const char *json, char *why, size_t len)
{
	struct ram *r = o;

	if (r->refuse || strcmp(json, "{\"format\":1}"))
		return set_err(why, len, "not this VM");
	return 0;
}

static void t_pages(void *o, const uint64_t *page, size_t n, const uint8_t *data)
{
	struct ram *r = o;

	for (size_t i = 0; i < n; i++)
		memcpy(r->pages[page[i]], data + i * MIG_PAGE, MIG_PAGE);
}

static void t_zero(void *o, uint64_t first, uint64_t count)
{
	struct ram *r = o;

	memset(r->pages[first], 0, count * MIG_PAGE);
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* A stream: HELLO, one page (page_no), a zero run, two device states, a
 * vCPU state, the clock, END (skip: leave out device 1's state). */
static struct mem build(uint64_t page_no, bool skip)
{
	struct mem m = { .cap = 1024 };
	struct mig_io io = { mem_read, mem_write, &m };
	uint8_t rec[8 + 8 + MIG_PAGE], z[16], st[8 + 5], clk[16];

	m.buf = xmalloc(m.cap);
	mig_write_preamble(&io);
	mig_write_record(&io, MIG_HELLO, "{\"format\":1}", 12);
	put32(rec, 1);
	put32(rec + 4, 0);
	put64(rec + 8, page_no);
	memset(rec + 16, 0xA5, MIG_PAGE);
	mig_write_record(&io, MIG_PAGES, rec, sizeof(rec));
	put64(z, 4);
	put64(z + 8, 3);
	mig_write_record(&io, MIG_ZERO, z, sizeof(z));
	for (uint32_t d = 0; d < 2; d++) {
		if (skip && d == 1)
			continue;
		put32(st, 0);
		put32(st + 4, d);
		memcpy(st + 8, "state", 5);
		mig_write_record(&io, MIG_STATE, st, sizeof(st));
	}
	put32(st, 1);
	put32(st + 4, 0);
	mig_write_record(&io, MIG_STATE, st, sizeof(st));
	put64(clk, 1000);
	put64(clk + 8, 0);
	mig_write_record(&io, MIG_CLOCK, clk, sizeof(clk));
	mig_write_record(&io, MIG_END, NULL, 0);
	m.cap = 0; /* from now on writes are the parser's answers */
	sb_init(&m.answers);
	return m;
}

static int parse(struct mem *m, struct ram *r, char *err, size_t len)
{
	struct mig_io io = { mem_read, mem_write, m };
	struct mig_sink s = { .npages = NPAGES, .ndevices = 2, .ncpus = 1,
			      .hello = t_hello, .pages = t_pages, .zero = t_zero, .opaque = r };
	struct mig_received rx;
	int rc;

	m->pos = 0;
	sb_free(&m->answers);
	sb_init(&m->answers);
	mig_received_init(&rx, &s);
	rc = mig_receive(&io, &s, &rx, err, len);
	if (!rc) {
		CU_ASSERT_EQUAL(rx.dev_len[0], 5);
		CU_ASSERT_EQUAL(rx.dev_len[1], 5);
		CU_ASSERT_EQUAL(rx.cpu_len[0], 5);
		CU_ASSERT_EQUAL(rx.virtual_ns, 1000);
		CU_ASSERT_EQUAL(rx.data_pages, 1);
		CU_ASSERT_EQUAL(rx.zero_pages, 3);
	}
	mig_received_free(&rx, &s);
	return rc;
}

/* The answers are records (binary headers): search their bytes. */
static const void *has(const struct mem *m, const char *s)
{
	return m->answers.len ? memmem(m->answers.s, m->answers.len, s, strlen(s)) : NULL;
}

static void free_mem(struct mem *m)
{
	free(m->buf);
	sb_free(&m->answers);
}

static void test_good_stream(void)
{
	struct mem m = build(2, false);
	struct ram *r = xcalloc(1, sizeof(*r));
	char err[256] = "";

	memset(r->pages[5], 0x11, MIG_PAGE);
	CU_ASSERT_EQUAL(parse(&m, r, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(r->pages[2][0], 0xA5);
	CU_ASSERT_EQUAL(r->pages[2][MIG_PAGE - 1], 0xA5);
	CU_ASSERT_EQUAL(r->pages[5][0], 0); /* the zero run cleared it */
	CU_ASSERT_PTR_NOT_NULL(has(&m, "\"ok\":true"));
	free(r);
	free_mem(&m);
}

/* Every single-bit flip anywhere in the stream is refused. */
static void test_every_flip_refused(void)
{
	struct mem m = build(2, false);
	struct ram *r = xcalloc(1, sizeof(*r));
	char err[256];
	size_t taken = 0;

	for (size_t i = 0; i < m.len; i++) {
		m.buf[i] ^= 0x10;
		if (!parse(&m, r, err, sizeof(err)))
			taken++;
		m.buf[i] ^= 0x10;
	}
	CU_ASSERT_EQUAL(taken, 0);
	free(r);
	free_mem(&m);
}

static void test_every_truncation_refused(void)
{
	struct mem m = build(2, false);
	struct ram *r = xcalloc(1, sizeof(*r));
	size_t full = m.len;
	char err[256];

	for (size_t n = 0; n < full; n++) {
		m.len = n;
		CU_ASSERT_NOT_EQUAL(parse(&m, r, err, sizeof(err)), 0);
	}
	m.len = full;
	free(r);
	free_mem(&m);
}

static void test_page_beyond_ram(void)
{
	struct mem m = build(NPAGES, false);
	struct ram *r = xcalloc(1, sizeof(*r));
	char err[256] = "";

	CU_ASSERT_NOT_EQUAL(parse(&m, r, err, sizeof(err)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "beyond this VM's 16 pages"));
	free(r);
	free_mem(&m);
	m = build(UINT64_MAX, false);
	r = xcalloc(1, sizeof(*r));
	CU_ASSERT_NOT_EQUAL(parse(&m, r, err, sizeof(err)), 0);
	free(r);
	free_mem(&m);
}

static void test_missing_state(void)
{
	struct mem m = build(2, true);
	struct ram *r = xcalloc(1, sizeof(*r));
	char err[256] = "";

	CU_ASSERT_NOT_EQUAL(parse(&m, r, err, sizeof(err)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "without the state of device 1"));
	free(r);
	free_mem(&m);
}

static void test_refusal_answered(void)
{
	struct mem m = build(2, false);
	struct ram *r = xcalloc(1, sizeof(*r));
	char err[256] = "";

	r->refuse = true;
	CU_ASSERT_NOT_EQUAL(parse(&m, r, err, sizeof(err)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "not this VM"));
	CU_ASSERT_PTR_NOT_NULL(has(&m, "\"ok\":false"));
	CU_ASSERT_PTR_NOT_NULL(has(&m, "not this VM"));
	/* nothing past the HELLO was taken */
	CU_ASSERT_EQUAL(r->pages[2][0], 0);
	free(r);
	free_mem(&m);
}

/* A length field beyond any record is refused before it is read. */
static void test_huge_length(void)
{
	uint8_t s[12 + 12];
	struct mem m = { .buf = s, .len = sizeof(s) };
	struct ram *r = xcalloc(1, sizeof(*r));
	char err[256] = "";

	memcpy(s, MIG_MAGIC, 8);
	put32(s + 8, MIG_FORMAT);
	s[12] = MIG_HELLO;
	s[13] = s[14] = s[15] = 0;
	put32(s + 16, 0xFFFFFFF0u);
	put32(s + 20, 0);
	sb_init(&m.answers);
	CU_ASSERT_NOT_EQUAL(parse(&m, r, err, sizeof(err)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "beyond the"));
	sb_free(&m.answers);
	free(r);
}

static void test_answer_roundtrip(void)
{
	char why[128];

	CU_ASSERT_EQUAL(mig_parse_answer((const uint8_t *)"{\"ok\":true}", 11, why, sizeof(why)), 0);
	CU_ASSERT_NOT_EQUAL(mig_parse_answer((const uint8_t *)"{\"ok\":false,\"reason\":\"no\"}", 26,
					     why, sizeof(why)), 0);
	CU_ASSERT_STRING_EQUAL(why, "no");
	CU_ASSERT_NOT_EQUAL(mig_parse_answer((const uint8_t *)"[1]", 3, why, sizeof(why)), 0);
}

int main(void)
{
	static const struct test_case cases[] = {
		TEST(test_good_stream),
		TEST(test_every_flip_refused),
		TEST(test_every_truncation_refused),
		TEST(test_page_beyond_ram),
		TEST(test_missing_state),
		TEST(test_refusal_answered),
		TEST(test_huge_length),
		TEST(test_answer_roundtrip),
	};
	return RUN_TESTS("migstream", cases);
}
