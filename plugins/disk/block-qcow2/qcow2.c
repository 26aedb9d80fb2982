/* block-qcow2: qcow2 images (versions 2 and 3) as disks. This file holds
 * the guest-facing I/O (reads through the L2 cache without a global lock,
 * writes in place or allocating under one lock per image, discard and
 * write-zeroes that free clusters) and the backend ops and properties.
 * Metadata is in qcow2_meta.c, opening and creating in qcow2_open.c;
 * behaviour and crash-safety order in docs/devices/qcow2.md. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include <modvm/block.h>
#include <modvm/modvm.h>

#include "../blockpool.h"
#include "qcow2.h"

#define WORKERS      4

struct qcow2 {
	const struct modvm_host *host;
	modvm_inst *inst;
	struct qimg *top;
	bool readonly;
	pthread_mutex_t alloc;    /* requests that change the mapping */
	struct blockpool *pool;
};

static const char *const fmt_choices[] = { "auto", "raw", "qcow2", NULL };

static const struct modvm_prop_desc q_props[] = {
	{ .name = "path", .type = MODVM_PROP_STRING, .flags = MODVM_PROP_REQUIRED,
	  .help = "qcow2 image file" },
	MODVM_PROP_BOOL_("readonly", "false", "open read-only; the guest sees a read-only disk"),
	MODVM_PROP_BOOL_("create", "false",
			 "create a qcow2 v3 image at path if it does not exist"),
	MODVM_PROP_STRING_("backing-file", "",
			   "create: backing file of the new image (relative to its folder)"),
	MODVM_PROP_ENUM_("backing-format", "auto", fmt_choices,
			 "create: format of backing-file (auto probes it)"),
	MODVM_PROP_SIZE_("create-size", "0", 0, 1ll << 60,
			 "create: disk size; 0 = the backing file's size"),
	MODVM_PROP_SIZE_("cluster-size", "65536", 512, 2 << 20,
			 "create: cluster size, a power of two"),
	MODVM_PROP_SIZE_("l2-cache-size", "1M", 0, 1ll << 30,
			 "memory for cached L2 tables (1M maps 8 GiB)"),
	MODVM_PROP_END
};

/* ---- reading ------------------------------------------------------------ */

/* Inflate one compressed cluster (raw deflate, 4 KiB window) into c. */
static int compressed_read(struct qimg *q, uint64_t e, uint8_t *c)
{
	uint64_t off, len;
	z_stream z = { 0 };
	uint8_t *in;
	int rc;

	compressed_range(q, e, &off, &len);
	if (len > 2 * q->cluster_size || !host_ok(q, off, len, false))
		return -EIO;
	in = malloc(len);
	if (!in)
		return -ENOMEM;
	rc = pread_full(q->fd, in, len, off);
	if (!rc && inflateInit2(&z, -12) != Z_OK)
		rc = -ENOMEM;
	if (!rc) {
		z.next_in = in;
		z.avail_in = (uInt)len;
		z.next_out = c;
		z.avail_out = (uInt)q->cluster_size;
		int zr = inflate(&z, Z_FINISH);
		/* The stream may end before the sectors do, never the cluster. */
		if ((zr != Z_STREAM_END && zr != Z_BUF_ERROR) || z.avail_out)
			rc = -EIO;
		inflateEnd(&z);
	}
	free(in);
	return rc;
}

static int img_read(struct qimg *q, uint64_t off, uint8_t *buf, size_t len);

static int read_unallocated(struct qimg *q, uint64_t off, uint8_t *buf,
			    size_t len)
{
	if (q->backing)
		return img_read(q->backing, off, buf, len);
	memset(buf, 0, len);
	return 0;
}

static bool is_zero(struct qimg *q, uint64_t e)
{
	return q->version == 3 && (e & QCOW_OFLAG_ZERO) &&
	       !(e & QCOW_OFLAG_COMPRESSED);
}

/* Bytes [co, co + n) of the cluster entry e names, for virtual cluster vc. */
static int read_entry(struct qimg *q, uint64_t vc, uint64_t e, uint64_t co,
		      uint8_t *buf, size_t n)
{
	uint64_t host = e & OFFSET_MASK;
	int rc;

	if (e & QCOW_OFLAG_COMPRESSED) {
		uint8_t *c = malloc(q->cluster_size);
		if (!c)
			return -ENOMEM;
		rc = compressed_read(q, e, c);
		if (!rc)
			memcpy(buf, c + co, n);
		free(c);
		return rc;
	}
	if (is_zero(q, e)) {
		memset(buf, 0, n);
		return 0;
	}
	if (!host)
		return read_unallocated(q, (vc << q->cluster_bits) + co, buf, n);
	if ((host & (q->cluster_size - 1)) || !host_ok(q, host, q->cluster_size, false))
		return -EIO;  /* hostile entry: outside the file or misaligned */
	return pread_full(q->fd, buf, n, host + co);
}

/* One piece inside one cluster. The io lock keeps the cluster from being
 * freed and reused while we read it. */
static int read_piece(struct qimg *q, uint64_t off, uint8_t *buf, size_t n)
{
	uint64_t vc = off >> q->cluster_bits, e;
	int rc;

	pthread_rwlock_rdlock(&q->io);
	rc = map_get(q, vc, &e);
	if (!rc)
		rc = read_entry(q, vc, e, off & (q->cluster_size - 1), buf, n);
	pthread_rwlock_unlock(&q->io);
	return rc;
}

static int img_read(struct qimg *q, uint64_t off, uint8_t *buf, size_t len)
{
	while (len) {
		size_t n;
		int rc;
		if (off >= q->size) {         /* a shorter backing file */
			memset(buf, 0, len);
			return 0;
		}
		if (q->raw) {
			n = q->size - off < len ? (size_t)(q->size - off) : len;
			rc = pread_full(q->fd, buf, n, off);
		} else {
			uint64_t room = q->cluster_size - (off & (q->cluster_size - 1));
			n = room < len ? (size_t)room : len;
			if (q->size - off < n)
				n = (size_t)(q->size - off);
			rc = read_piece(q, off, buf, n);
		}
		if (rc)
			return rc;
		off += n;
		buf += n;
		len -= n;
	}
	return 0;
}

/* ---- writing ------------------------------------------------------------ */

/* A cluster we own and may overwrite in place. */
static bool in_place(struct qimg *q, uint64_t e)
{
	return (e & OFFSET_MASK) && (e & QCOW_OFLAG_COPIED) &&
	       !(e & QCOW_OFLAG_COMPRESSED) && !is_zero(q, e);
}

static int write_host(struct qimg *q, uint64_t e, uint64_t co,
		      const uint8_t *buf, size_t n)
{
	uint64_t host = e & OFFSET_MASK;
	uint8_t *z = NULL;
	int rc;

	if ((host & (q->cluster_size - 1)) || !host_ok(q, host, q->cluster_size, true))
		return -EIO;
	if (!buf && !(buf = z = calloc(1, n)))
		return -ENOMEM;
	rc = pwrite_full(q->fd, buf, n, host + co);
	free(z);
	return rc;
}

/* Under the allocation lock: the piece's cluster gets a new home holding
 * the old contents (backing data, zeroes, decompressed) plus the new
 * bytes; the mapping changes in memory, on disk at the next commit.
 * buf NULL writes zeroes. */
static int write_alloc(struct qimg *q, uint64_t off,
		       const uint8_t *buf, size_t n)
{
	uint64_t vc = off >> q->cluster_bits, co = off & (q->cluster_size - 1);
	uint64_t e, host;
	uint8_t *c;
	int rc = map_get(q, vc, &e);

	if (rc)
		return rc;
	if (in_place(q, e))
		return write_host(q, e, co, buf, n);
	c = calloc(1, q->cluster_size);
	if (!c)
		return -ENOMEM;
	if (n < q->cluster_size)
		rc = read_entry(q, vc, e, 0, c, q->cluster_size);
	if (!rc) {
		if (buf)
			memcpy(c + co, buf, n);
		else
			memset(c + co, 0, n);
		rc = alloc_cluster(q, &host);
	}
	if (!rc)
		rc = pwrite_full(q->fd, c, q->cluster_size, host);
	free(c);
	if (rc)
		return rc;     /* the new cluster leaks; nothing names it */
	return map_set(q, vc, host | QCOW_OFLAG_COPIED, e);
}

static size_t piece_len(struct qimg *q, uint64_t off, uint64_t len)
{
	uint64_t room = q->cluster_size - (off & (q->cluster_size - 1));

	return room < len ? (size_t)room : (size_t)len;
}

static int write_slow(struct qcow2 *s, uint64_t off, const uint8_t *buf,
		      uint64_t len)
{
	struct qimg *q = s->top;
	int rc = 0;

	pthread_mutex_lock(&s->alloc);
	while (len && !rc) {
		size_t n = piece_len(q, off, len);
		rc = write_alloc(q, off, buf, n);
		off += n;
		buf = buf ? buf + n : NULL;
		len -= n;
	}
	pthread_mutex_unlock(&s->alloc);
	return rc;
}

/* Pieces in clusters we own go straight to the file; from the first piece
 * that needs a new cluster on, the rest runs under the allocation lock. */
static int img_write(struct qcow2 *s, uint64_t off, const uint8_t *buf,
		     uint64_t len)
{
	struct qimg *q = s->top;

	while (len) {
		size_t n = piece_len(q, off, len);
		uint64_t e;
		int rc;
		pthread_rwlock_rdlock(&q->io);
		rc = map_get(q, off >> q->cluster_bits, &e);
		if (!rc && !in_place(q, e)) {
			pthread_rwlock_unlock(&q->io);
			return write_slow(s, off, buf, len);
		}
		if (!rc)
			rc = write_host(q, e, off & (q->cluster_size - 1), buf, n);
		pthread_rwlock_unlock(&q->io);
		if (rc)
			return rc;
		off += n;
		buf += n;
		len -= n;
	}
	return 0;
}

/* ---- discard and write-zeroes ---------------------------------------------- */

/* What a whole cluster's entry becomes, or false to write zero data
 * instead (v2 over a backing file) or leave it (discard there). */
static bool whole_target(struct qimg *q, bool discard, uint64_t *t)
{
	bool backing = q->backing != NULL;

	if (q->version == 3) {
		/* the zero flag hides the backing file (qcow2.txt "L2 tables");
		 * without one, an unmapped cluster reads zeroes already */
		*t = backing ? QCOW_OFLAG_ZERO : 0;
		return true;
	}
	*t = 0;
	return !backing;
}

static int zero_cluster(struct qimg *q, uint64_t vc, bool discard)
{
	uint64_t e, t;
	int rc = map_get(q, vc, &e);

	if (rc)
		return rc;
	if (!whole_target(q, discard, &t))
		return discard ? 0 : write_alloc(q, vc << q->cluster_bits, NULL,
						  q->cluster_size);
	if (e == t)
		return 0;
	return map_set(q, vc, t, e);
}

static int zero_range(struct qcow2 *s, uint64_t off, uint64_t len, bool discard)
{
	struct qimg *q = s->top;
	int rc = 0;

	pthread_mutex_lock(&s->alloc);
	while (len && !rc) {
		size_t n = piece_len(q, off, len);
		bool whole = n == q->cluster_size;
		/* the virtual disk may end inside its last cluster */
		if (!whole && !(off & (q->cluster_size - 1)) && off + n == q->size)
			whole = true;
		if (whole)
			rc = zero_cluster(q, off >> q->cluster_bits, discard);
		else if (!discard)   /* a partial discard is a no-op (block.h) */
			rc = write_alloc(q, off, NULL, n);
		off += n;
		len -= n;
	}
	pthread_mutex_unlock(&s->alloc);
	return rc;
}

/* ---- backend ops --------------------------------------------------------- */

static bool in_range(struct qcow2 *s, uint64_t off, uint64_t len)
{
	return off <= s->top->size && len <= s->top->size - off;
}

static size_t iov_total(const struct iovec *iov, int iovcnt)
{
	size_t t = 0;

	for (int i = 0; i < iovcnt; i++)
		t += iov[i].iov_len;
	return t;
}

static int q_preadv(void *be, const struct iovec *iov, int iovcnt, uint64_t off)
{
	struct qcow2 *s = be;
	size_t total = iov_total(iov, iovcnt), done = 0;
	uint8_t *buf;
	int rc;

	if (!in_range(s, off, total))
		return -EINVAL;
	if (iovcnt == 1)
		return img_read(s->top, off, iov[0].iov_base, total);
	if (!(buf = malloc(total ? total : 1)))
		return -ENOMEM;
	rc = img_read(s->top, off, buf, total);
	for (int i = 0; i < iovcnt && !rc; i++) {
		memcpy(iov[i].iov_base, buf + done, iov[i].iov_len);
		done += iov[i].iov_len;
	}
	free(buf);
	return rc;
}

static int q_pwritev(void *be, const struct iovec *iov, int iovcnt, uint64_t off)
{
	struct qcow2 *s = be;
	size_t total = iov_total(iov, iovcnt), done = 0;
	uint8_t *buf;
	int rc;

	if (s->readonly)
		return -EROFS;
	if (!in_range(s, off, total))
		return -EINVAL;
	if (iovcnt == 1)
		return img_write(s, off, iov[0].iov_base, total);
	if (!(buf = malloc(total ? total : 1)))
		return -ENOMEM;
	for (int i = 0; i < iovcnt; i++) {
		memcpy(buf + done, iov[i].iov_base, iov[i].iov_len);
		done += iov[i].iov_len;
	}
	rc = img_write(s, off, buf, total);
	free(buf);
	return rc;
}

/* Pending mapping changes go out in order (meta_commit), then one more
 * sync makes every request completed before the flush durable. */
static int q_flush(void *be)
{
	struct qcow2 *s = be;
	int rc;

	if (s->readonly)
		return 0;
	pthread_mutex_lock(&s->alloc);
	rc = meta_commit(s->top);
	pthread_mutex_unlock(&s->alloc);
	return rc ? rc : qsync(s->top);
}

static int q_discard(void *be, uint64_t off, uint64_t len)
{
	struct qcow2 *s = be;

	if (s->readonly)
		return -EROFS;
	if (!in_range(s, off, len))
		return -EINVAL;
	return zero_range(s, off, len, true);
}

static int q_write_zeroes(void *be, uint64_t off, uint64_t len)
{
	struct qcow2 *s = be;

	if (s->readonly)
		return -EROFS;
	if (!in_range(s, off, len))
		return -EINVAL;
	return zero_range(s, off, len, false);
}

static int q_exec(void *be, struct modvm_block_req *r)
{
	switch (r->op) {
	case MODVM_BLOCK_READ:
		return q_preadv(be, r->iov, r->iovcnt, r->offset);
	case MODVM_BLOCK_WRITE:
		return q_pwritev(be, r->iov, r->iovcnt, r->offset);
	case MODVM_BLOCK_FLUSH:
		return q_flush(be);
	case MODVM_BLOCK_DISCARD:
		return q_discard(be, r->offset, r->len);
	case MODVM_BLOCK_WRITE_ZEROES:
		return q_write_zeroes(be, r->offset, r->len);
	}
	return -EINVAL;
}

static int q_submit(void *be, struct modvm_block_req *req)
{
	return blockpool_submit(((struct qcow2 *)be)->pool, req);
}

static void q_drain(void *be)
{
	blockpool_drain(((struct qcow2 *)be)->pool);
}

static uint64_t q_length(void *be)
{
	return ((struct qcow2 *)be)->top->size;
}

static bool q_read_only(void *be)
{
	return ((struct qcow2 *)be)->readonly;
}

static uint32_t q_caps(void *be)
{
	return q_read_only(be) ? 0 :
	       MODVM_BLOCK_CAN_WRITE_ZEROES | MODVM_BLOCK_CAN_DISCARD;
}

static void q_close(void *be)
{
	struct qcow2 *s = be;

	if (!s)
		return;
	blockpool_free(s->pool);
	if (!s->readonly && q_flush(s))
		s->host->log(s->inst, MODVM_LOG_ERROR,
			     "qcow2: writing metadata at close failed; run qemu-img check");
	qimg_free(s->top);
	pthread_mutex_destroy(&s->alloc);
	free(s);
}

/* create = true: make the image first unless it exists. */
static int maybe_create(const struct modvm_host *host, modvm_inst *inst,
			const char *path, char *err, size_t len)
{
	struct create_opts o = {
		.backing = host->prop_string(inst, "backing-file"),
		.backing_fmt = host->prop_enum(inst, "backing-format"),
		.size = host->prop_size(inst, "create-size"),
		.cluster_size = host->prop_size(inst, "cluster-size"),
	};
	int rc;

	if (!host->prop_bool(inst, "create"))
		return 0;
	rc = qcow2_create(path, &o, err, len);
	if (rc == 0)
		host->log(inst, MODVM_LOG_INFO, "created qcow2 image %s", path);
	return rc < 0 ? -1 : 0;
}

static void *q_open(const struct modvm_host *host, modvm_inst *inst)
{
	const char *path = host->prop_string(inst, "path");
	struct qcow2 *s = calloc(1, sizeof(*s));
	unsigned cache = (unsigned)host->prop_size(inst, "l2-cache-size");
	char err[600] = "";

	if (!s)
		return NULL;
	s->host = host;
	s->inst = inst;
	s->readonly = host->prop_bool(inst, "readonly");
	pthread_mutex_init(&s->alloc, NULL);
	if (!s->readonly && maybe_create(host, inst, path, err, sizeof(err))) {
		host->set_error(inst, "%s", err);
		goto fail;
	}
	s->top = qimg_open(path, !s->readonly, cache, err, sizeof(err));
	if (!s->top) {
		host->set_error(inst, "%s", err[0] ? err : "cannot open the image");
		goto fail;
	}
	s->pool = blockpool_new(host, inst, WORKERS, q_exec, s);
	if (!s->pool)
		goto fail;
	return s;
fail:
	qimg_free(s->top);
	pthread_mutex_destroy(&s->alloc);
	free(s);
	return NULL;
}

static const struct modvm_block_ops q_ops = {
	.size = sizeof(struct modvm_block_ops),
	.open = q_open,
	.close = q_close,
	.length = q_length,
	.read_only = q_read_only,
	.caps = q_caps,
	.preadv = q_preadv,
	.pwritev = q_pwritev,
	.flush = q_flush,
	.discard = q_discard,
	.write_zeroes = q_write_zeroes,
	.submit = q_submit,
	.drain = q_drain,
};

MODVM_PLUGIN_DEFINE(
	.kind = MODVM_KIND_BLOCK,
	.name = "block-qcow2",
	.version = "0.2.0",
	.description = "qcow2 image (v2/v3): backing files, zero clusters, discard, create",
	.props = q_props,
	.ops = &q_ops,
);
