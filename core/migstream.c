/* The live migration stream: record framing and the destination's parser.
 * Every length, page number and index from the stream is checked before
 * it is used; nothing in the stream names a file or a host resource. */
#include "migstream.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "util.h"

/* Values a clock record may hold (as a snapshot's manifest, 2^62 ns). */
#define MIG_TIME_MAX (1ll << 62)

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

int mig_write_record(struct mig_io *io, unsigned type, const void *payload,
		     size_t len)
{
	uint8_t h[8], t[4];
	uint32_t crc;

	if (len > MIG_REC_MAX)
		return -1;
	h[0] = (uint8_t)type;
	h[1] = h[2] = h[3] = 0;
	put32(h + 4, (uint32_t)len);
	crc = (uint32_t)crc32(0, h, sizeof(h));
	if (len)
		crc = (uint32_t)crc32(crc, payload, (uInt)len);
	put32(t, crc);
	/* A small record goes in one write: the socket has TCP_NODELAY (a
	 * small record must not wait for an ACK), so each write may be a
	 * packet of its own. */
	if (len <= 64 * 1024) {
		uint8_t *b = xmalloc(sizeof(h) + len + sizeof(t));
		int r;
		memcpy(b, h, sizeof(h));
		if (len)
			memcpy(b + sizeof(h), payload, len);
		memcpy(b + sizeof(h) + len, t, sizeof(t));
		r = io->write(io->opaque, b, sizeof(h) + len + sizeof(t));
		free(b);
		return r;
	}
	if (io->write(io->opaque, h, sizeof(h)) ||
	    (len && io->write(io->opaque, payload, len)) ||
	    io->write(io->opaque, t, sizeof(t)))
		return -1;
	return 0;
}

static const char *read_failure(void)
{
	return errno ? strerror(errno) : "the stream ended";
}

int mig_read_record(struct mig_io *io, unsigned *type, uint8_t *buf,
		    size_t *len, char *err, size_t err_len)
{
	uint8_t h[8], t[4];
	uint32_t n, crc;

	errno = 0;
	if (io->read(io->opaque, h, sizeof(h)))
		return set_err(err, err_len, "reading a record: %s", read_failure());
	n = get32(h + 4);
	if (h[1] || h[2] || h[3])
		return set_err(err, err_len, "malformed record header (type %u)", h[0]);
	if (n > MIG_REC_MAX)
		return set_err(err, err_len, "record of type %u is %u bytes, beyond the %u a record may have",
			       h[0], n, MIG_REC_MAX);
	errno = 0;
	if ((n && io->read(io->opaque, buf, n)) || io->read(io->opaque, t, sizeof(t)))
		return set_err(err, err_len, "reading a record of type %u (%u bytes): %s",
			       h[0], n, read_failure());
	crc = (uint32_t)crc32(0, h, sizeof(h));
	if (n)
		crc = (uint32_t)crc32(crc, buf, n);
	if (crc != get32(t))
		return set_err(err, err_len, "record of type %u (%u bytes) fails its checksum (CRC-32 %08x, recorded %08x): the stream is corrupt",
			       h[0], n, crc, get32(t));
	*type = h[0];
	*len = n;
	return 0;
}

int mig_write_preamble(struct mig_io *io)
{
	uint8_t p[12];

	memcpy(p, MIG_MAGIC, 8);
	put32(p + 8, MIG_FORMAT);
	return io->write(io->opaque, p, sizeof(p));
}

int mig_read_preamble(struct mig_io *io, char *err, size_t err_len)
{
	uint8_t p[12];

	errno = 0;
	if (io->read(io->opaque, p, sizeof(p)))
		return set_err(err, err_len, "no migration stream: %s", read_failure());
	if (memcmp(p, MIG_MAGIC, 8))
		return set_err(err, err_len, "not a modvm migration stream (no %s at its start)", MIG_MAGIC);
	if (get32(p + 8) != MIG_FORMAT)
		return set_err(err, err_len, "migration stream format %u; this modvm reads format %u",
			       get32(p + 8), MIG_FORMAT);
	return 0;
}

int mig_answer(struct mig_io *io, bool ok, const char *reason)
{
	json_t *j = json_pack("{s:b,s:s}", "ok", (int)ok, "reason", reason ? reason : "");
	char *s = json_dumps(j, JSON_COMPACT);
	int r = s ? mig_write_record(io, MIG_ANSWER, s, strlen(s)) : -1;

	free(s);
	json_decref(j);
	return r;
}

int mig_parse_answer(const uint8_t *buf, size_t len, char *reason,
		     size_t reason_len)
{
	json_t *j = json_loadb((const char *)buf, len, 0, NULL);
	json_t *ok = json_object_get(j, "ok");
	const char *why = json_string_value(json_object_get(j, "reason"));
	int r;

	if (!json_is_boolean(ok))
		r = set_err(reason, reason_len, "the destination's answer is not one");
	else if (json_is_true(ok))
		r = 0;
	else
		r = set_err(reason, reason_len, "%s", why && *why ? why : "no reason given");
	json_decref(j);
	return r;
}

void mig_received_init(struct mig_received *r, const struct mig_sink *s)
{
	memset(r, 0, sizeof(*r));
	r->dev = xcalloc(s->ndevices + 1, sizeof(*r->dev));
	r->dev_len = xcalloc(s->ndevices + 1, sizeof(*r->dev_len));
	r->cpu = xcalloc(s->ncpus + 1, sizeof(*r->cpu));
	r->cpu_len = xcalloc(s->ncpus + 1, sizeof(*r->cpu_len));
}

void mig_received_free(struct mig_received *r, const struct mig_sink *s)
{
	for (unsigned i = 0; r->dev && i < s->ndevices; i++)
		free(r->dev[i]);
	for (unsigned i = 0; r->cpu && i < s->ncpus; i++)
		free(r->cpu[i]);
	free(r->dev);
	free(r->dev_len);
	free(r->cpu);
	free(r->cpu_len);
	memset(r, 0, sizeof(*r));
}

static int take_pages(const struct mig_sink *s, struct mig_received *r,
		      const uint8_t *buf, size_t len, char *err, size_t err_len)
{
	uint64_t page[MIG_BATCH];
	uint32_t n;

	if (len < 8)
		return set_err(err, err_len, "PAGES record of %zu bytes", len);
	n = get32(buf);
	if (!n || n > MIG_BATCH || get32(buf + 4) ||
	    len != 8 + (size_t)n * 8 + (size_t)n * MIG_PAGE)
		return set_err(err, err_len, "PAGES record of %zu bytes for %u pages", len, n);
	for (uint32_t i = 0; i < n; i++) {
		page[i] = get64(buf + 8 + 8 * i);
		if (page[i] >= s->npages)
			return set_err(err, err_len, "page %llu is beyond this VM's %llu pages of RAM",
				       (unsigned long long)page[i], (unsigned long long)s->npages);
	}
	s->pages(s->opaque, page, n, buf + 8 + (size_t)n * 8);
	r->data_pages += n;
	return 0;
}

static int take_zero(const struct mig_sink *s, struct mig_received *r,
		     const uint8_t *buf, size_t len, char *err, size_t err_len)
{
	uint64_t first, count;

	if (len != 16)
		return set_err(err, err_len, "ZERO record of %zu bytes", len);
	first = get64(buf);
	count = get64(buf + 8);
	if (!count || first >= s->npages || count > s->npages - first)
		return set_err(err, err_len, "zero pages %llu+%llu are beyond this VM's %llu pages of RAM",
			       (unsigned long long)first, (unsigned long long)count,
			       (unsigned long long)s->npages);
	s->zero(s->opaque, first, count);
	r->zero_pages += count;
	return 0;
}

static int take_state(const struct mig_sink *s, struct mig_received *r,
		      const uint8_t *buf, size_t len, char *err, size_t err_len)
{
	uint32_t kind, index, max;
	uint8_t **slot;
	size_t *slot_len;

	if (len < 8)
		return set_err(err, err_len, "STATE record of %zu bytes", len);
	kind = get32(buf);
	index = get32(buf + 4);
	if (kind > 1)
		return set_err(err, err_len, "STATE record of unknown kind %u", kind);
	max = kind ? s->ncpus : s->ndevices;
	if (index >= max)
		return set_err(err, err_len, "state of %s %u, this VM has %u", kind ? "cpu" : "device",
			       index, max);
	slot = kind ? &r->cpu[index] : &r->dev[index];
	slot_len = kind ? &r->cpu_len[index] : &r->dev_len[index];
	/* A state may span records: each one appends. */
	if (*slot_len + (len - 8) > MIG_STATE_MAX)
		return set_err(err, err_len, "state of %s %u beyond %u bytes", kind ? "cpu" : "device",
			       index, MIG_STATE_MAX);
	*slot = xrealloc(*slot, *slot_len + (len - 8) + 1);
	memcpy(*slot + *slot_len, buf + 8, len - 8);
	*slot_len += len - 8;
	return 0;
}

static int take_clock(struct mig_received *r, const uint8_t *buf, size_t len,
		      char *err, size_t err_len)
{
	uint64_t v, w;

	if (len != 16)
		return set_err(err, err_len, "CLOCK record of %zu bytes", len);
	v = get64(buf);
	w = get64(buf + 8);
	if (v > (uint64_t)MIG_TIME_MAX || (int64_t)w > MIG_TIME_MAX || (int64_t)w < -MIG_TIME_MAX)
		return set_err(err, err_len, "CLOCK record out of range");
	r->clock = true;
	r->virtual_ns = v;
	r->boot_wall_ns = (int64_t)w;
	return 0;
}

static int check_complete(const struct mig_sink *s, const struct mig_received *r,
			  char *err, size_t err_len)
{
	if (!r->clock)
		return set_err(err, err_len, "the stream ended without the clock");
	for (unsigned i = 0; i < s->ndevices; i++)
		if (!r->dev[i])
			return set_err(err, err_len, "the stream ended without the state of device %u", i);
	for (unsigned i = 0; i < s->ncpus; i++)
		if (!r->cpu[i])
			return set_err(err, err_len, "the stream ended without the state of cpu %u", i);
	return 0;
}

int mig_receive(struct mig_io *io, const struct mig_sink *s,
		struct mig_received *r, char *err, size_t err_len)
{
	uint8_t *buf = xmalloc(MIG_REC_MAX + 1);
	char reason[ERR_LEN];
	unsigned type;
	size_t len;
	int rc = -1;

	if (mig_read_preamble(io, err, err_len) ||
	    mig_read_record(io, &type, buf, &len, err, err_len))
		goto out;
	if (type != MIG_HELLO) {
		set_err(err, err_len, "the stream starts with a record of type %u, not HELLO", type);
		goto out;
	}
	buf[len] = 0;
	if (strlen((char *)buf) != len || s->hello(s->opaque, (char *)buf, reason, sizeof(reason))) {
		if (strlen((char *)buf) != len)
			set_err(reason, sizeof(reason), "the HELLO record is not text");
		mig_answer(io, false, reason);
		set_err(err, err_len, "refused the incoming VM: %s", reason);
		goto out;
	}
	if (mig_answer(io, true, NULL)) {
		set_err(err, err_len, "cannot answer the source: %s", strerror(errno));
		goto out;
	}
	for (;;) {
		int bad = 0;
		if (mig_read_record(io, &type, buf, &len, err, err_len))
			goto out;
		r->records++;
		switch (type) {
		case MIG_PAGES: bad = take_pages(s, r, buf, len, err, err_len); break;
		case MIG_ZERO: bad = take_zero(s, r, buf, len, err, err_len); break;
		case MIG_STATE: bad = take_state(s, r, buf, len, err, err_len); break;
		case MIG_CLOCK: bad = take_clock(r, buf, len, err, err_len); break;
		case MIG_ITER:
			if (len != 4)
				bad = set_err(err, err_len, "ITER record of %zu bytes", len);
			r->iterations = get32(buf);
			break;
		case MIG_SYNC:
			if (len)
				bad = set_err(err, err_len, "SYNC record of %zu bytes", len);
			else if (mig_write_record(io, MIG_SYNC, NULL, 0))
				bad = set_err(err, err_len, "cannot answer the source: %s", strerror(errno));
			break;
		case MIG_END:
			if (len)
				bad = set_err(err, err_len, "END record of %zu bytes", len);
			else if (!(bad = check_complete(s, r, err, err_len)))
				rc = 0;
			goto out_checked;
		default:
			bad = set_err(err, err_len, "record of unknown type %u", type);
		}
		if (bad)
			goto out;
	}
out_checked:
out:
	free(buf);
	return rc;
}
