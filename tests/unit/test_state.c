/* State description tests: binary round trip, text rendering, versioning,
 * and refusal of damaged data without changing anything. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "cpustate.h"
#include "state_desc.h"
#include "testmain.h"

struct elem {
	uint16_t a;
	uint64_t b;
};

struct dev {
	uint8_t u8;
	uint16_t u16a[3];
	uint32_t u32;
	uint64_t u64;
	int32_t i32;
	int64_t i64;
	bool flag;
	uint8_t bytes[4];
	uint32_t vlen;
	uint8_t vbuf[8];
	struct elem el[2];
	uint32_t added_in_v2;
	int loads;
};

static const struct modvm_state_field elem_fields[] = {
	MODVM_F_U16(struct elem, a),
	MODVM_F_U64(struct elem, b),
};

static int post_load(void *p)
{
	((struct dev *)p)->loads++;
	return 0;
}

#define FIELDS(...)                                                    \
	MODVM_F_U8(struct dev, u8), MODVM_F_U16A(struct dev, u16a, 3),       \
	MODVM_F_U32(struct dev, u32), MODVM_F_U64(struct dev, u64),          \
	MODVM_F_I32(struct dev, i32), MODVM_F_I64(struct dev, i64),          \
	MODVM_F_BOOL(struct dev, flag), MODVM_F_BYTES(struct dev, bytes),    \
	MODVM_F_VBUF(struct dev, vbuf, vlen),                                \
	MODVM_F_STRUCT(struct dev, el, struct elem, elem_fields) __VA_ARGS__

static const struct modvm_state_field v1_fields[] = { FIELDS() };
static const struct modvm_state_field v2_fields[] = {
	FIELDS(, { .name = "added_in_v2", .type = MODVM_FIELD_U32,
		   .offset = offsetof(struct dev, added_in_v2), .since = 2 })
};

static const struct modvm_state_section sec_v1 = {
	.name = "dev", .version = 1, .min_version = 1, .fields = v1_fields,
	.nfields = MODVM_COUNTOF(v1_fields), .post_load = post_load,
};
static const struct modvm_state_section sec_v2 = {
	.name = "dev", .version = 2, .min_version = 1, .fields = v2_fields,
	.nfields = MODVM_COUNTOF(v2_fields), .post_load = post_load,
};

static void fill(struct dev *d)
{
	memset(d, 0, sizeof(*d));
	d->u8 = 0xab;
	d->u16a[0] = 1; d->u16a[1] = 2; d->u16a[2] = 0xffff;
	d->u32 = 0xdeadbeef;
	d->u64 = 0x0123456789abcdefull;
	d->i32 = -5;
	d->i64 = -1234567890123ll;
	d->flag = true;
	memcpy(d->bytes, "\x01\x02\x03\x04", 4);
	d->vlen = 3;
	memcpy(d->vbuf, "xyz", 3);
	d->el[0].a = 7; d->el[0].b = 8;
	d->el[1].a = 9; d->el[1].b = 10;
	d->added_in_v2 = 42;
}

static char err[1024];

static void test_round_trip(void)
{
	struct dev a, b;
	struct strbuf sb;
	size_t used = 0;

	fill(&a);
	memset(&b, 0, sizeof(b));
	sb_init(&sb);
	state_save(&sec_v2, &a, &sb);
	CU_ASSERT_EQUAL_FATAL(state_load(&sec_v2, &b, sb.s, sb.len, &used, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(used, sb.len);
	CU_ASSERT_EQUAL(b.loads, 1);
	b.loads = 0;
	CU_ASSERT_EQUAL(memcmp(&a, &b, sizeof(a)), 0);
	sb_free(&sb);
}

static void test_render_text(void)
{
	struct dev a;
	struct strbuf sb;

	fill(&a);
	sb_init(&sb);
	state_render(&sec_v2, &a, &sb);
	CU_ASSERT_PTR_NOT_NULL(strstr(sb.s, "u8 = 0xab\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(sb.s, "u16a = 0x1 0x2 0xffff\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(sb.s, "i32 = -5\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(sb.s, "i64 = -1234567890123\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(sb.s, "flag = true\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(sb.s, "bytes = 01020304\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(sb.s, "vbuf = 78797a\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(sb.s, "el[1].b = 0xa\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(sb.s, "added_in_v2 = 0x2a\n"));
	sb_free(&sb);
}

static void test_older_version_loads(void)
{
	struct dev a, b;
	struct strbuf sb;

	fill(&a);
	sb_init(&sb);
	state_save(&sec_v1, &a, &sb);
	memset(&b, 0, sizeof(b));
	b.added_in_v2 = 99;
	CU_ASSERT_EQUAL_FATAL(state_load(&sec_v2, &b, sb.s, sb.len, NULL, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(b.u64, a.u64);
	CU_ASSERT_EQUAL(b.added_in_v2, 99); /* not in a v1 stream: untouched */
	sb_free(&sb);
}

/* Every refusal must leave the target exactly as it was. */
static void expect_refused(const struct modvm_state_section *s,
			   const struct strbuf *sb, const char *msg)
{
	struct dev b, before;

	memset(&b, 0x5a, sizeof(b));
	before = b;
	CU_ASSERT_EQUAL(state_load(s, &b, sb->s, sb->len, NULL, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, msg));
	if (!strstr(err, msg))
		fprintf(stderr, "\n  got: %s\n", err);
	CU_ASSERT_EQUAL(memcmp(&b, &before, sizeof(b)), 0);
}

static void test_newer_version_refused(void)
{
	struct dev a;
	struct strbuf sb;

	fill(&a);
	sb_init(&sb);
	state_save(&sec_v2, &a, &sb);
	expect_refused(&sec_v1, &sb, "version 2 is newer than this build supports (1)");
	sb_free(&sb);
}

static void test_too_old_refused(void)
{
	struct modvm_state_section v3 = sec_v2;
	struct dev a;
	struct strbuf sb;

	v3.version = 3;
	v3.min_version = 2;
	fill(&a);
	sb_init(&sb);
	state_save(&sec_v1, &a, &sb);
	expect_refused(&v3, &sb, "version 1 is older than the oldest this build loads (2)");
	sb_free(&sb);
}

static void test_truncated_refused(void)
{
	struct dev a;
	struct strbuf sb;

	fill(&a);
	sb_init(&sb);
	state_save(&sec_v2, &a, &sb);
	for (size_t cut = 0; cut < sb.len; cut += 7) {
		struct strbuf t = { .s = sb.s, .len = cut };
		struct dev b, before;
		memset(&b, 0x5a, sizeof(b));
		before = b;
		CU_ASSERT_EQUAL(state_load(&sec_v2, &b, t.s, t.len, NULL, err, sizeof(err)), -1);
		CU_ASSERT_EQUAL(memcmp(&b, &before, sizeof(b)), 0);
	}
	sb.len -= 1;
	expect_refused(&sec_v2, &sb, "truncated");
	sb_free(&sb);
}

static void test_corruption_refused(void)
{
	struct dev a;
	struct strbuf sb;

	fill(&a);
	sb_init(&sb);
	state_save(&sec_v2, &a, &sb);
	sb.s[20] ^= 0x10;
	expect_refused(&sec_v2, &sb, "checksum mismatch");
	sb.s[20] ^= 0x10;
	sb.s[0] = 'X';
	expect_refused(&sec_v2, &sb, "bad magic");
	sb_free(&sb);
}

/* A stream whose checksum is right but whose VBUF length is too large, as a
 * hostile file would be made: the length check must catch it. */
static void test_vbuf_length_out_of_range(void)
{
	struct dev a;
	struct strbuf sb;

	fill(&a);
	a.vlen = 200; /* the saver clamps to capacity: forge the stream */
	sb_init(&sb);
	state_save(&sec_v1, &a, &sb);
	/* find the clamped length (8) and raise it, then fix the CRC */
	size_t off = 16 + 3 + 1 + 6 + 4 + 8 + 4 + 8 + 1 + 4;
	CU_ASSERT_EQUAL_FATAL((uint8_t)sb.s[off], 8);
	sb.s[off] = (char)200;
	uint32_t crc = (uint32_t)crc32(0, (const Bytef *)sb.s, (uInt)(sb.len - 4));
	memcpy(sb.s + sb.len - 4, &crc, 4);
	expect_refused(&sec_v1, &sb, "field vbuf has length 200, above its capacity 8");
	sb_free(&sb);
}

static void test_wrong_section(void)
{
	struct modvm_state_section other = sec_v2;
	struct dev a;
	struct strbuf sb;

	other.name = "other";
	fill(&a);
	sb_init(&sb);
	state_save(&other, &a, &sb);
	expect_refused(&sec_v2, &sb, "data belongs to section \"other\"");
	sb_free(&sb);
}

static void test_section_checks(void)
{
	struct modvm_state_section s = sec_v2;
	struct modvm_state_field bad[] = { { .name = "x", .type = 99 } };

	CU_ASSERT_EQUAL(state_check_section(&sec_v2, err, sizeof(err)), 0);
	s.min_version = 3;
	CU_ASSERT_EQUAL(state_check_section(&s, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "inconsistent"));
	s = sec_v1;
	s.fields = v2_fields; /* a field since v2 in a v1 section */
	s.nfields = MODVM_COUNTOF(v2_fields);
	CU_ASSERT_EQUAL(state_check_section(&s, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "newer"));
	s.fields = bad;
	s.nfields = 1;
	CU_ASSERT_EQUAL(state_check_section(&s, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "unknown type 99"));
}

static void test_cpu_state_round_trip_and_regs(void)
{
	struct modvm_cpu_state *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	struct strbuf sb, text;

	CU_ASSERT_EQUAL(state_check_section(&cpu_state_section, err, sizeof(err)), 0);
	for (size_t i = 0; i < sizeof(*a); i++)
		((uint8_t *)a)[i] = (uint8_t)(i * 7 + 1);
	/* padding is not state: clear it so memcmp compares fields only */
	memset(a->pad, 0, sizeof(a->pad));
	memset(a->pad2, 0, sizeof(a->pad2));
	memset(a->reserved, 0, sizeof(a->reserved));
	for (int i = 0; i < MODVM_NR_SREGS; i++)
		a->seg[i].pad = 0;
	a->ldt.pad = a->tr.pad = 0;
	memset(a->gdt.pad, 0, sizeof(a->gdt.pad));
	memset(a->idt.pad, 0, sizeof(a->idt.pad));
	a->gpr[MODVM_RAX] = 0x1122334455667788ull;
	a->rip = 0xffffffff81000000ull;
	sb_init(&sb);
	state_save(&cpu_state_section, a, &sb);
	CU_ASSERT_EQUAL_FATAL(state_load(&cpu_state_section, b, sb.s, sb.len, NULL, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(memcmp(a, b, sizeof(*a)), 0);
	sb_init(&text);
	state_render(&cpu_state_section, a, &text);
	CU_ASSERT_PTR_NOT_NULL(strstr(text.s, "rax = 0x1122334455667788\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(text.s, "rip = 0xffffffff81000000\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(text.s, "cs[0].selector = "));
	sb_free(&sb);
	sb_free(&text);
	free(a);
	free(b);
}

int main(void)
{
	static const struct test_case cases[] = {
		TEST(test_round_trip),
		TEST(test_render_text),
		TEST(test_older_version_loads),
		TEST(test_newer_version_refused),
		TEST(test_too_old_refused),
		TEST(test_truncated_refused),
		TEST(test_corruption_refused),
		TEST(test_vbuf_length_out_of_range),
		TEST(test_wrong_section),
		TEST(test_section_checks),
		TEST(test_cpu_state_round_trip_and_regs),
	};
	return RUN_TESTS("state", cases);
}
