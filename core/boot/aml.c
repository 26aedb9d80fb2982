/* A tiny AML emitter: encodings from ACPI 6.x chapter 20 ("ACPI Machine
 * Language Specification"), enough for modvm's DSDT.
 */
#include <string.h>

#include "aml.h"

#define AML_ZERO_OP 0x00
#define AML_ONE_OP 0x01
#define AML_NAME_OP 0x08
#define AML_BYTE_PREFIX 0x0A
#define AML_WORD_PREFIX 0x0B
#define AML_DWORD_PREFIX 0x0C
#define AML_QWORD_PREFIX 0x0E
#define AML_SCOPE_OP 0x10
#define AML_BUFFER_OP 0x11
#define AML_PACKAGE_OP 0x12
#define AML_DUAL_NAME_PREFIX 0x2E
#define AML_MULTI_NAME_PREFIX 0x2F
#define AML_ROOT_CHAR 0x5C
#define AML_EXT_OP_PREFIX 0x5B
#define AML_DEVICE_OP 0x82 /* after AML_EXT_OP_PREFIX */

#define AML_NAME_SEG 4
#define AML_PKGLEN_MAX 4 /* bytes reserved by *_begin */

void aml_init(struct aml *a, uint8_t *buf, size_t cap)
{
	a->buf = buf;
	a->len = 0;
	a->cap = cap;
	a->overflow = false;
}

void aml_bytes(struct aml *a, const void *p, size_t n)
{
	if (a->overflow || n > a->cap - a->len) {
		a->overflow = true;
		return;
	}
	memcpy(a->buf + a->len, p, n);
	a->len += n;
}

void aml_byte(struct aml *a, uint8_t v)
{
	aml_bytes(a, &v, 1);
}

static void aml_le(struct aml *a, uint64_t v, unsigned n)
{
	while (n--) {
		aml_byte(a, (uint8_t)v);
		v >>= 8;
	}
}

void aml_integer(struct aml *a, uint64_t v)
{
	if (v == 0) {
		aml_byte(a, AML_ZERO_OP);
	} else if (v == 1) {
		aml_byte(a, AML_ONE_OP);
	} else if (v <= 0xFF) {
		aml_byte(a, AML_BYTE_PREFIX);
		aml_le(a, v, 1);
	} else if (v <= 0xFFFF) {
		aml_byte(a, AML_WORD_PREFIX);
		aml_le(a, v, 2);
	} else if (v <= 0xFFFFFFFF) {
		aml_byte(a, AML_DWORD_PREFIX);
		aml_le(a, v, 4);
	} else {
		aml_byte(a, AML_QWORD_PREFIX);
		aml_le(a, v, 8);
	}
}

void aml_dword(struct aml *a, uint32_t v)
{
	aml_byte(a, AML_DWORD_PREFIX);
	aml_le(a, v, 4);
}

/* NameString (20.2.2): optional root prefix, then one NameSeg, or a
 * DualNamePath, or a MultiNamePath. */
void aml_name_string(struct aml *a, const char *path)
{
	size_t nsegs;

	if (*path == '\\') {
		aml_byte(a, AML_ROOT_CHAR);
		path++;
	}
	nsegs = (strlen(path) + 1) / (AML_NAME_SEG + 1);
	if (nsegs == 2)
		aml_byte(a, AML_DUAL_NAME_PREFIX);
	else if (nsegs > 2) {
		aml_byte(a, AML_MULTI_NAME_PREFIX);
		aml_byte(a, (uint8_t)nsegs);
	}
	while (nsegs--) {
		aml_bytes(a, path, AML_NAME_SEG);
		path += AML_NAME_SEG + (nsegs ? 1 : 0);
	}
}

void aml_name(struct aml *a, const char *path)
{
	aml_byte(a, AML_NAME_OP);
	aml_name_string(a, path);
}

static unsigned hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return (unsigned)(c - '0');
	return (unsigned)((c | 0x20) - 'a' + 10) & 0xF;
}

/* Three letters of 5 bits ('A' = 1) and four hex digits, stored big-endian
 * in the 32-bit integer's byte order. */
uint32_t aml_eisaid(const char *id)
{
	unsigned c1 = (unsigned)(id[0] - 0x40) & 0x1F;
	unsigned c2 = (unsigned)(id[1] - 0x40) & 0x1F;
	unsigned c3 = (unsigned)(id[2] - 0x40) & 0x1F;
	uint32_t b0 = c1 << 2 | c2 >> 3;
	uint32_t b1 = (c2 & 7) << 5 | c3;
	uint32_t b2 = hex_digit(id[3]) << 4 | hex_digit(id[4]);
	uint32_t b3 = hex_digit(id[5]) << 4 | hex_digit(id[6]);

	return b0 | b1 << 8 | b2 << 16 | b3 << 24;
}

/* Reserve the largest PkgLength; aml_end shrinks it to what is needed. */
static size_t aml_reserve_pkglen(struct aml *a)
{
	static const uint8_t zero[AML_PKGLEN_MAX];
	size_t mark = a->len;

	aml_bytes(a, zero, sizeof(zero));
	return mark;
}

/*
 * PkgLength (20.2.4) counts itself and what follows. One byte holds up to
 * 63; otherwise bits 7-6 of the lead byte give the number of following
 * bytes, bits 3-0 of the lead byte are the low nibble and each following
 * byte the next 8 bits.
 */
void aml_end(struct aml *a, size_t mark)
{
	size_t content, total, n;

	if (a->overflow)
		return;
	content = a->len - mark - AML_PKGLEN_MAX;
	for (n = 1; n < AML_PKGLEN_MAX; n++) {
		size_t limit = n == 1 ? 0x3F : (1ul << (4 + 8 * (n - 1))) - 1;
		if (content + n <= limit)
			break;
	}
	total = content + n;
	memmove(a->buf + mark + n, a->buf + mark + AML_PKGLEN_MAX, content);
	a->len -= AML_PKGLEN_MAX - n;
	if (n == 1) {
		a->buf[mark] = (uint8_t)total;
		return;
	}
	a->buf[mark] = (uint8_t)((n - 1) << 6 | (total & 0xF));
	for (size_t i = 1; i < n; i++)
		a->buf[mark + i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
}

size_t aml_package_begin(struct aml *a, uint8_t nelems)
{
	size_t mark;

	aml_byte(a, AML_PACKAGE_OP);
	mark = aml_reserve_pkglen(a);
	aml_byte(a, nelems);
	return mark;
}

void aml_buffer(struct aml *a, const uint8_t *data, size_t n)
{
	size_t mark;

	aml_byte(a, AML_BUFFER_OP);
	mark = aml_reserve_pkglen(a);
	aml_integer(a, n);
	aml_bytes(a, data, n);
	aml_end(a, mark);
}

size_t aml_scope_begin(struct aml *a, const char *path)
{
	size_t mark;

	aml_byte(a, AML_SCOPE_OP);
	mark = aml_reserve_pkglen(a);
	aml_name_string(a, path);
	return mark;
}

size_t aml_device_begin(struct aml *a, const char *path)
{
	size_t mark;

	aml_byte(a, AML_EXT_OP_PREFIX);
	aml_byte(a, AML_DEVICE_OP);
	mark = aml_reserve_pkglen(a);
	aml_name_string(a, path);
	return mark;
}
