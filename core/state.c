/* Declarative state: save, load and render sections described by plugins. */
#include "state_desc.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static unsigned int_width(uint32_t type)
{
	switch (type) {
	case MODVM_FIELD_U8:
	case MODVM_FIELD_BOOL: return 1;
	case MODVM_FIELD_U16: return 2;
	case MODVM_FIELD_U32:
	case MODVM_FIELD_I32: return 4;
	case MODVM_FIELD_U64:
	case MODVM_FIELD_I64: return 8;
	default: return 0;
	}
}

static uint32_t elems(const struct modvm_state_field *f)
{
	return f->count ? f->count : 1;
}

static int check_fields(const struct modvm_state_field *f, uint32_t n,
			uint32_t version, int depth, char *err, size_t len)
{
	if (depth > 4)
		return set_err(err, len, "structures nested too deeply");
	if (!f && n)
		return set_err(err, len, "field table missing");
	for (uint32_t i = 0; i < n; i++) {
		if (!f[i].name || !*f[i].name)
			return set_err(err, len, "field %u has no name", i);
		if (f[i].since > version)
			return set_err(err, len, "field %s is newer (%u) than its section (%u)",
				       f[i].name, f[i].since, version);
		for (uint32_t j = 0; j < i; j++)
			if (!strcmp(f[i].name, f[j].name))
				return set_err(err, len, "field %s declared twice", f[i].name);
		switch (f[i].type) {
		case MODVM_FIELD_BYTES:
		case MODVM_FIELD_VBUF:
			if (!f[i].count)
				return set_err(err, len, "buffer field %s has size 0", f[i].name);
			break;
		case MODVM_FIELD_STRUCT:
			if (!f[i].stride || !f[i].count)
				return set_err(err, len, "struct field %s has no elements", f[i].name);
			if (check_fields(f[i].sub, f[i].nsub, version, depth + 1, err, len))
				return -1;
			break;
		default:
			if (!int_width(f[i].type))
				return set_err(err, len, "field %s has unknown type %u",
					       f[i].name, f[i].type);
		}
	}
	return 0;
}

int state_check_section(const struct modvm_state_section *s, char *err,
			size_t len)
{
	if (!s->name || !name_is_valid(s->name))
		return set_err(err, len, "section name \"%s\" is not valid",
			       s->name ? s->name : "(null)");
	if (s->min_version > s->version || s->version == 0)
		return set_err(err, len, "section %s: version %u / min_version %u are inconsistent",
			       s->name, s->version, s->min_version);
	if (check_fields(s->fields, s->nfields, s->version, 0, err, len)) {
		char inner[ERR_LEN];
		snprintf(inner, sizeof(inner), "%s", err ? err : "");
		return set_err(err, len, "section %s: %s", s->name, inner);
	}
	return 0;
}

static void put_le(struct strbuf *out, uint64_t v, unsigned w)
{
	uint8_t b[8];

	for (unsigned i = 0; i < w; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	sb_append(out, b, w);
}

static uint64_t get_le(const uint8_t *p, unsigned w)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < w; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static uint64_t load_int(const void *p, unsigned w)
{
	switch (w) {
	case 1: return *(const uint8_t *)p;
	case 2: return *(const uint16_t *)p;
	case 4: return *(const uint32_t *)p;
	default: return *(const uint64_t *)p;
	}
}

static void store_int(void *p, unsigned w, uint64_t v)
{
	switch (w) {
	case 1: *(uint8_t *)p = (uint8_t)v; break;
	case 2: *(uint16_t *)p = (uint16_t)v; break;
	case 4: *(uint32_t *)p = (uint32_t)v; break;
	default: *(uint64_t *)p = v; break;
	}
}

static void save_fields(const struct modvm_state_field *f, uint32_t n,
			const uint8_t *base, struct strbuf *out)
{
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *p = base + f[i].offset;
		unsigned w = int_width(f[i].type);

		switch (f[i].type) {
		case MODVM_FIELD_BYTES:
			sb_append(out, p, f[i].count);
			break;
		case MODVM_FIELD_VBUF: {
			uint32_t l = *(const uint32_t *)(base + f[i].len_offset);
			if (l > f[i].count)
				l = f[i].count; /* never write past the buffer */
			put_le(out, l, 4);
			sb_append(out, p, l);
			break;
		}
		case MODVM_FIELD_STRUCT:
			for (uint32_t e = 0; e < f[i].count; e++)
				save_fields(f[i].sub, f[i].nsub, p + e * f[i].stride, out);
			break;
		default:
			for (uint32_t e = 0; e < elems(&f[i]); e++)
				put_le(out, load_int(p + e * w, w), w);
		}
	}
}

void state_save(const struct modvm_state_section *s, void *base,
		struct strbuf *out)
{
	size_t start = out->len, len_at;
	uint16_t nlen = (uint16_t)strlen(s->name);
	uint32_t crc;

	if (s->pre_save)
		s->pre_save(base);
	sb_append(out, STATE_MAGIC, 4);
	put_le(out, STATE_FORMAT, 2);
	put_le(out, nlen, 2);
	sb_append(out, s->name, nlen);
	put_le(out, s->version, 4);
	len_at = out->len;
	put_le(out, 0, 4);
	save_fields(s->fields, s->nfields, base, out);
	uint32_t plen = (uint32_t)(out->len - len_at - 4);
	for (unsigned i = 0; i < 4; i++)
		out->s[len_at + i] = (char)(plen >> (8 * i));
	crc = (uint32_t)crc32(0, (const Bytef *)out->s + start,
			      (uInt)(out->len - start));
	put_le(out, crc, 4);
}

/* One walker for both passes: with apply false it only checks sizes and
 * lengths; with apply true it writes into base. */
struct reader {
	const uint8_t *p;
	size_t left;
	bool apply;
	char *err;
	size_t err_len;
	const char *section;
};

static int take(struct reader *r, size_t n, const uint8_t **out,
		const char *field)
{
	if (n > r->left)
		return set_err(r->err, r->err_len,
			       "section %s is truncated in field %s", r->section, field);
	*out = r->p;
	r->p += n;
	r->left -= n;
	return 0;
}

static int load_fields(struct reader *r, const struct modvm_state_field *f,
		       uint32_t n, uint8_t *base, uint32_t version)
{
	const uint8_t *q = NULL;

	for (uint32_t i = 0; i < n; i++) {
		uint8_t *p = base + f[i].offset;
		unsigned w = int_width(f[i].type);

		if (f[i].since > version)
			continue;
		switch (f[i].type) {
		case MODVM_FIELD_BYTES:
			if (take(r, f[i].count, &q, f[i].name))
				return -1;
			if (r->apply)
				memcpy(p, q, f[i].count);
			break;
		case MODVM_FIELD_VBUF: {
			uint32_t l;
			if (take(r, 4, &q, f[i].name))
				return -1;
			l = (uint32_t)get_le(q, 4);
			if (l > f[i].count)
				return set_err(r->err, r->err_len,
					       "section %s: field %s has length %u, above its capacity %u",
					       r->section, f[i].name, l, f[i].count);
			if (take(r, l, &q, f[i].name))
				return -1;
			if (r->apply) {
				memcpy(p, q, l);
				*(uint32_t *)(base + f[i].len_offset) = l;
			}
			break;
		}
		case MODVM_FIELD_STRUCT:
			for (uint32_t e = 0; e < f[i].count; e++)
				if (load_fields(r, f[i].sub, f[i].nsub,
						p + e * f[i].stride, version))
					return -1;
			break;
		default:
			for (uint32_t e = 0; e < elems(&f[i]); e++) {
				if (take(r, w, &q, f[i].name))
					return -1;
				if (r->apply) {
					uint64_t v = get_le(q, w);
					if (f[i].type == MODVM_FIELD_BOOL)
						v = v != 0;
					store_int(p + e * w, w, v);
				}
			}
		}
	}
	return 0;
}

int state_load(const struct modvm_state_section *s, void *base,
	       const void *buf, size_t len, size_t *used, char *err,
	       size_t err_len)
{
	const uint8_t *b = buf;
	size_t nlen, plen, total;
	uint32_t version, crc;
	struct reader r;

	if (len < 12 || memcmp(b, STATE_MAGIC, 4))
		return set_err(err, err_len, "section %s: no state header (bad magic or empty)",
			       s->name);
	if (get_le(b + 4, 2) != STATE_FORMAT)
		return set_err(err, err_len, "section %s: state format %u is not %u",
			       s->name, (unsigned)get_le(b + 4, 2), STATE_FORMAT);
	nlen = get_le(b + 6, 2);
	if (len < 8 + nlen + 8)
		return set_err(err, err_len, "section %s: truncated header", s->name);
	if (nlen != strlen(s->name) || memcmp(b + 8, s->name, nlen))
		return set_err(err, err_len, "section %s: data belongs to section \"%.*s\"",
			       s->name, (int)nlen, (const char *)b + 8);
	version = (uint32_t)get_le(b + 8 + nlen, 4);
	plen = get_le(b + 12 + nlen, 4);
	total = 16 + nlen + plen + 4;
	if (plen > len || total > len)
		return set_err(err, err_len, "section %s: truncated (%zu of %zu bytes)",
			       s->name, len, total);
	crc = (uint32_t)get_le(b + total - 4, 4);
	if (crc != (uint32_t)crc32(0, b, (uInt)(total - 4)))
		return set_err(err, err_len, "section %s: checksum mismatch (corrupted data)",
			       s->name);
	if (version > s->version)
		return set_err(err, err_len,
			       "section %s: version %u is newer than this build supports (%u): use a newer modvm",
			       s->name, version, s->version);
	if (version < s->min_version)
		return set_err(err, err_len,
			       "section %s: version %u is older than the oldest this build loads (%u)",
			       s->name, version, s->min_version);
	r = (struct reader){ .p = b + 16 + nlen, .left = plen, .apply = false,
			     .err = err, .err_len = err_len, .section = s->name };
	if (load_fields(&r, s->fields, s->nfields, base, version))
		return -1;
	if (r.left)
		return set_err(err, err_len, "section %s: %zu unexpected bytes after the last field",
			       s->name, r.left);
	r.p = b + 16 + nlen;
	r.left = plen;
	r.apply = true;
	load_fields(&r, s->fields, s->nfields, base, version);
	if (s->post_load && s->post_load(base))
		return set_err(err, err_len, "section %s: the plugin rejected the loaded values",
			       s->name);
	if (used)
		*used = total;
	return 0;
}

static void render_hex(struct strbuf *out, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sb_printf(out, "%02x", p[i]);
}

static void render_int(struct strbuf *out, uint32_t type, const void *p)
{
	switch (type) {
	case MODVM_FIELD_BOOL:
		sb_printf(out, "%s", *(const uint8_t *)p ? "true" : "false");
		break;
	case MODVM_FIELD_I32:
		sb_printf(out, "%d", *(const int32_t *)p);
		break;
	case MODVM_FIELD_I64:
		sb_printf(out, "%lld", (long long)*(const int64_t *)p);
		break;
	default:
		sb_printf(out, "0x%llx",
			  (unsigned long long)load_int(p, int_width(type)));
	}
}

static void render_fields(const struct modvm_state_field *f, uint32_t n,
			  const uint8_t *base, const char *prefix,
			  struct strbuf *out)
{
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *p = base + f[i].offset;
		unsigned w = int_width(f[i].type);

		switch (f[i].type) {
		case MODVM_FIELD_BYTES:
			sb_printf(out, "%s%s = ", prefix, f[i].name);
			render_hex(out, p, f[i].count);
			sb_printf(out, "\n");
			break;
		case MODVM_FIELD_VBUF: {
			uint32_t l = *(const uint32_t *)(base + f[i].len_offset);
			sb_printf(out, "%s%s = ", prefix, f[i].name);
			render_hex(out, p, l < f[i].count ? l : f[i].count);
			sb_printf(out, "\n");
			break;
		}
		case MODVM_FIELD_STRUCT:
			for (uint32_t e = 0; e < f[i].count; e++) {
				char *sub = xasprintf("%s%s[%u].", prefix, f[i].name, e);
				render_fields(f[i].sub, f[i].nsub, p + e * f[i].stride,
					      sub, out);
				free(sub);
			}
			break;
		default:
			sb_printf(out, "%s%s = ", prefix, f[i].name);
			for (uint32_t e = 0; e < elems(&f[i]); e++) {
				if (e)
					sb_printf(out, " ");
				render_int(out, f[i].type, p + e * w);
			}
			sb_printf(out, "\n");
		}
	}
}

void state_render(const struct modvm_state_section *s, const void *base,
		  struct strbuf *out)
{
	render_fields(s->fields, s->nfields, base, "", out);
}
