/* block-qcow2: qcow2 images (versions 2 and 3) as disks: reads through L1/L2
 * tables with zero and zlib-compressed clusters and backing files (qcow2 or
 * raw, chains checked for loops), writes that allocate clusters at the end
 * of the file with refcount updates, so the image stays valid for
 * `qemu-img check`.
 * Format: QEMU's docs/interop/qcow2.txt (the published specification;
 * no code from QEMU). All integers in the file are big-endian. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include <modvm/block.h>
#include <modvm/modvm.h>

#include "blockpool.h"

#define QCOW_MAGIC            0x514649FBu  /* "QFI\xfb" */
#define HDR_V2_LEN            72
#define HDR_V3_LEN            104
#define HDR_READ              112          /* + compression_type */
#define MAX_CHAIN             16           /* backing files deep */
#define MAX_L1_BYTES          (32u << 20)
#define MAX_RT_BYTES          (8u << 20)
#define OFFSET_MASK           0x00FFFFFFFFFFFE00ull
#define QCOW_OFLAG_COPIED     (1ull << 63)
#define QCOW_OFLAG_COMPRESSED (1ull << 62)
#define QCOW_OFLAG_ZERO       1ull
#define EXT_END               0x00000000u
#define EXT_BACKING_FORMAT    0xE2792ACAu
/* incompatible feature bits */
#define INCOMPAT_DIRTY        (1ull << 0)
#define INCOMPAT_CORRUPT      (1ull << 1)
#define INCOMPAT_DATA_FILE    (1ull << 2)
#define INCOMPAT_COMPRESSION  (1ull << 3)
#define INCOMPAT_EXTL2        (1ull << 4)
#define WORKERS               2

struct qimg {
	int fd;
	bool raw;                 /* a raw backing file */
	uint64_t raw_size;
	uint32_t version;
	uint32_t cluster_bits;
	uint64_t cluster_size;
	uint64_t size;            /* virtual disk size */
	uint32_t l1_size;
	uint64_t l1_offset;
	uint64_t *l1;
	uint64_t rt_offset;
	uint64_t rt_entries;
	uint64_t *rt;
	uint32_t refcount_order;
	uint64_t alloc_end;       /* next free cluster at the end of the file */
	struct qimg *backing;
};

struct qcow2 {
	const struct modvm_host *host;
	modvm_inst *inst;
	struct qimg *top;
	bool readonly;
	pthread_mutex_t lock;     /* metadata: one request at a time */
	struct blockpool *pool;
};

static const struct modvm_prop_desc q_props[] = {
	{ .name = "path", .type = MODVM_PROP_STRING, .flags = MODVM_PROP_REQUIRED,
	  .help = "qcow2 image file" },
	MODVM_PROP_BOOL_("readonly", "false", "open read-only; the guest sees a read-only disk"),
	MODVM_PROP_END
};

/* ---- big-endian file access ------------------------------------------- */

static uint64_t be_get(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static void be_put(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = n; i-- > 0; v >>= 8)
		p[i] = (uint8_t)v;
}

static int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pread(fd, buf, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) {         /* past the end of the file: zeroes */
			memset(buf, 0, len);
			return 0;
		}
		buf = (char *)buf + n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, buf, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		buf = (const char *)buf + n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int put_be64(int fd, uint64_t off, uint64_t v)
{
	uint8_t b[8];

	be_put(b, v, 8);
	return pwrite_full(fd, b, 8, off);
}

/* ---- opening ------------------------------------------------------------ */

struct chain {
	dev_t dev[MAX_CHAIN + 1];
	ino_t ino[MAX_CHAIN + 1];
	unsigned n;
};

static void img_free(struct qimg *q)
{
	while (q) {
		struct qimg *b = q->backing;
		if (q->fd >= 0)
			close(q->fd);
		free(q->l1);
		free(q->rt);
		free(q);
		q = b;
	}
}

static int fail(char *err, size_t len, const char *fmt, const char *path,
		const char *detail)
{
	snprintf(err, len, fmt, path, detail ? detail : "");
	return -1;
}

static int check_incompat(uint64_t f, const char *path, char *err, size_t len)
{
	if (f & INCOMPAT_DIRTY)
		return fail(err, len, "%s: image was not closed cleanly (dirty bit); repair it with qemu-img check -r all%s", path, NULL);
	if (f & INCOMPAT_CORRUPT)
		return fail(err, len, "%s: image is marked corrupt%s", path, NULL);
	if (f & INCOMPAT_DATA_FILE)
		return fail(err, len, "%s: external data files are not supported%s", path, NULL);
	if (f & INCOMPAT_EXTL2)
		return fail(err, len, "%s: extended L2 entries (subclusters) are not supported%s", path, NULL);
	if (f & ~INCOMPAT_COMPRESSION) {
		snprintf(err, len, "%s: unknown incompatible features 0x%llx: refusing the image",
			 path, (unsigned long long)(f & ~INCOMPAT_COMPRESSION));
		return -1;
	}
	return 0;
}

/* The header fields we rely on, checked so a hostile image cannot make us
 * allocate or read absurd amounts. */
static int parse_header(struct qimg *q, const uint8_t *h, const char *path,
			bool writable, char *err, size_t len)
{
	uint64_t l2_entries, need;

	q->version = (uint32_t)be_get(h + 4, 4);
	if (q->version != 2 && q->version != 3) {
		snprintf(err, len, "%s: qcow2 version %u is not supported (2 or 3)", path, q->version);
		return -1;
	}
	q->cluster_bits = (uint32_t)be_get(h + 20, 4);
	if (q->cluster_bits < 9 || q->cluster_bits > 21)
		return fail(err, len, "%s: cluster size out of range%s", path, NULL);
	q->cluster_size = 1ull << q->cluster_bits;
	q->size = be_get(h + 24, 8);
	if (be_get(h + 32, 4))
		return fail(err, len, "%s: encrypted images are not supported%s", path, NULL);
	q->l1_size = (uint32_t)be_get(h + 36, 4);
	q->l1_offset = be_get(h + 40, 8);
	q->rt_offset = be_get(h + 48, 8);
	q->rt_entries = be_get(h + 56, 4) * q->cluster_size / 8;
	q->refcount_order = 4;
	if (q->version == 3) {
		uint64_t incompat = be_get(h + 72, 8);
		if (check_incompat(incompat, path, err, len))
			return -1;
		/* compression_type exists when header_length > 104 */
		if ((incompat & INCOMPAT_COMPRESSION) && be_get(h + 100, 4) > HDR_V3_LEN &&
		    h[104] != 0)
			return fail(err, len, "%s: only zlib compression is supported (image uses zstd)%s", path, NULL);
		q->refcount_order = (uint32_t)be_get(h + 96, 4);
	}
	l2_entries = q->cluster_size / 8;
	need = (q->size + q->cluster_size * l2_entries - 1) / (q->cluster_size * l2_entries);
	if ((uint64_t)q->l1_size * 8 > MAX_L1_BYTES || q->l1_size < need ||
	    q->rt_entries * 8 > MAX_RT_BYTES || q->size > (1ull << 60) ||
	    (q->l1_offset & (q->cluster_size - 1)) || (q->rt_offset & (q->cluster_size - 1)))
		return fail(err, len, "%s: header tables are inconsistent (corrupt image?)%s", path, NULL);
	if (writable && q->refcount_order != 4)
		return fail(err, len, "%s: only 16-bit refcounts can be written; open with readonly = true%s", path, NULL);
	if (writable && be_get(h + 60, 4))
		return fail(err, len, "%s: image has internal snapshots; open with readonly = true%s", path, NULL);
	return 0;
}

static int load_tables(struct qimg *q, const char *path, char *err, size_t len)
{
	q->l1 = calloc(q->l1_size ? q->l1_size : 1, 8);
	q->rt = calloc(q->rt_entries ? q->rt_entries : 1, 8);
	if (!q->l1 || !q->rt)
		return fail(err, len, "%s: out of memory%s", path, NULL);
	if (pread_full(q->fd, q->l1, (size_t)q->l1_size * 8, q->l1_offset) ||
	    pread_full(q->fd, q->rt, (size_t)q->rt_entries * 8, q->rt_offset))
		return fail(err, len, "%s: cannot read tables: %s", path, strerror(errno));
	for (uint32_t i = 0; i < q->l1_size; i++)
		q->l1[i] = be_get((uint8_t *)&q->l1[i], 8);
	for (uint64_t i = 0; i < q->rt_entries; i++)
		q->rt[i] = be_get((uint8_t *)&q->rt[i], 8);
	return 0;
}

/* Header extensions (v3 after header_length, v2 after 72 bytes): only the
 * backing file format matters to us. */
static void backing_format(struct qimg *q, const uint8_t *h, char *fmt,
			   size_t fmtlen)
{
	uint64_t off = q->version == 3 ? be_get(h + 100, 4) : HDR_V2_LEN;
	uint8_t e[8];

	fmt[0] = 0;
	for (int n = 0; n < 64 && off + 8 <= q->cluster_size; n++) {
		if (pread_full(q->fd, e, 8, off))
			return;
		uint32_t type = (uint32_t)be_get(e, 4), l = (uint32_t)be_get(e + 4, 4);
		if (type == EXT_END || off + 8 + l > q->cluster_size)
			return;
		if (type == EXT_BACKING_FORMAT && l < fmtlen) {
			if (pread_full(q->fd, fmt, l, off + 8))
				fmt[0] = 0;
			else
				fmt[l] = 0;
			return;
		}
		off += 8 + ((l + 7ull) & ~7ull);
	}
}

static struct qimg *img_open(const char *path, bool writable, struct chain *c,
			     const char *want_fmt, char *err, size_t len);

static int open_backing(struct qimg *q, const uint8_t *h, const char *path,
			struct chain *c, char *err, size_t len)
{
	uint64_t off = be_get(h + 8, 8);
	uint32_t n = (uint32_t)be_get(h + 16, 4);
	char name[PATH_MAX], full[PATH_MAX * 2], fmt[32];
	const char *slash;

	if (!off)
		return 0;
	if (n == 0 || n >= sizeof(name) || off + n > q->cluster_size)
		return fail(err, len, "%s: backing file name is invalid%s", path, NULL);
	if (pread_full(q->fd, name, n, off))
		return fail(err, len, "%s: cannot read the backing file name%s", path, NULL);
	name[n] = 0;
	slash = strrchr(path, '/');
	if (name[0] == '/' || !slash)
		snprintf(full, sizeof(full), "%s", name);
	else
		snprintf(full, sizeof(full), "%.*s/%s", (int)(slash - path), path, name);
	backing_format(q, h, fmt, sizeof(fmt));
	if (c->n >= MAX_CHAIN) {
		snprintf(err, len, "%s: backing chain deeper than %d files", path, MAX_CHAIN);
		return -1;
	}
	q->backing = img_open(full, false, c, fmt[0] ? fmt : NULL, err, len);
	return q->backing ? 0 : -1;
}

static int open_file(const char *path, bool writable, char *err, size_t len)
{
	int fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	struct stat st;

	if (fd < 0) {
		int e = errno;
		if (e == ENOENT)
			snprintf(err, len, "%s: no such file", path);
		else if (e == EACCES || e == EPERM)
			snprintf(err, len, "%s: permission denied%s", path,
				 writable ? " (for read-only use set readonly = true)" : "");
		else
			snprintf(err, len, "%s: %s", path, strerror(e));
		return -1;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		snprintf(err, len, "%s: %s", path, S_ISDIR(st.st_mode) ?
			 "is a directory, not an image file" : "not a regular file");
		close(fd);
		return -1;
	}
	return fd;
}

static bool chain_add(struct chain *c, int fd, const char *path, char *err,
		      size_t len)
{
	struct stat st;

	if (fstat(fd, &st))
		return false;
	for (unsigned i = 0; i < c->n; i++)
		if (c->dev[i] == st.st_dev && c->ino[i] == st.st_ino) {
			snprintf(err, len, "%s: backing chain loops back to this file", path);
			return false;
		}
	c->dev[c->n] = st.st_dev;
	c->ino[c->n++] = st.st_ino;
	return true;
}

static struct qimg *img_open(const char *path, bool writable, struct chain *c,
			     const char *want_fmt, char *err, size_t len)
{
	struct qimg *q = calloc(1, sizeof(*q));
	uint8_t h[HDR_READ] = { 0 };
	struct stat st;

	if (!q)
		return NULL;
	q->fd = open_file(path, writable, err, len);
	if (q->fd < 0 || !chain_add(c, q->fd, path, err, len))
		goto fail;
	if (fstat(q->fd, &st) || pread_full(q->fd, h, sizeof(h), 0))
		goto fail;
	if (be_get(h, 4) != QCOW_MAGIC || (want_fmt && !strcmp(want_fmt, "raw"))) {
		/* A backing file may be raw; the image itself must be qcow2. */
		if (c->n == 1 || (want_fmt && strcmp(want_fmt, "raw"))) {
			snprintf(err, len, "%s: not a qcow2 image", path);
			goto fail;
		}
		q->raw = true;
		q->raw_size = q->size = (uint64_t)st.st_size;
		return q;
	}
	if (parse_header(q, h, path, writable, err, len) || load_tables(q, path, err, len) ||
	    open_backing(q, h, path, c, err, len))
		goto fail;
	q->alloc_end = ((uint64_t)st.st_size + q->cluster_size - 1) & ~(q->cluster_size - 1);
	return q;
fail:
	img_free(q);
	return NULL;
}

/* ---- cluster lookup and allocation --------------------------------------- */

static int set_refcount(struct qimg *q, uint64_t cluster, uint16_t v, int depth);

/* A fresh zeroed cluster at the end of the file, refcount 1. */
static int alloc_cluster(struct qimg *q, uint64_t *off, const void *data)
{
	void *zero = NULL;
	int rc;

	*off = q->alloc_end;
	q->alloc_end += q->cluster_size;
	if (!data) {
		zero = calloc(1, q->cluster_size);
		if (!zero)
			return -ENOMEM;
		data = zero;
	}
	rc = pwrite_full(q->fd, data, q->cluster_size, *off);
	free(zero);
	return rc ? rc : set_refcount(q, *off >> q->cluster_bits, 1, 0);
}

static int set_refcount(struct qimg *q, uint64_t cluster, uint16_t v, int depth)
{
	uint64_t per = q->cluster_size / 2, i = cluster / per, blk;
	uint8_t b[2];
	int rc;

	if (i >= q->rt_entries || depth > 4)
		return -EFBIG; /* would need a larger refcount table */
	blk = q->rt[i] & ~(q->cluster_size - 1);
	if (!blk) {
		void *zero = calloc(1, q->cluster_size);
		if (!zero)
			return -ENOMEM;
		blk = q->alloc_end;
		q->alloc_end += q->cluster_size;
		rc = pwrite_full(q->fd, zero, q->cluster_size, blk);
		free(zero);
		if (!rc)
			rc = put_be64(q->fd, q->rt_offset + 8 * i, blk);
		if (rc)
			return rc;
		q->rt[i] = blk;
		rc = set_refcount(q, blk >> q->cluster_bits, 1, depth + 1);
		if (rc)
			return rc;
	}
	be_put(b, v, 2);
	return pwrite_full(q->fd, b, 2, blk + 2 * (cluster % per));
}

/* The L2 table holding virtual cluster vc; with alloc, create it. */
static int l2_table(struct qimg *q, uint64_t vc, bool alloc, uint64_t *l2)
{
	uint64_t i = vc >> (q->cluster_bits - 3), e, off;
	int rc;

	if (i >= q->l1_size)
		return -EIO;
	e = q->l1[i];
	*l2 = e & OFFSET_MASK;
	if (*l2 & (q->cluster_size - 1))
		return -EIO; /* corrupt: misaligned table */
	if (!alloc || (*l2 && (e & QCOW_OFLAG_COPIED)))
		return 0;
	if (*l2)
		return -ENOTSUP; /* shared with an internal snapshot */
	rc = alloc_cluster(q, &off, NULL);
	if (!rc)
		rc = put_be64(q->fd, q->l1_offset + 8 * i, off | QCOW_OFLAG_COPIED);
	if (rc)
		return rc;
	q->l1[i] = off | QCOW_OFLAG_COPIED;
	*l2 = off;
	return 0;
}

static uint64_t l2_index(struct qimg *q, uint64_t vc)
{
	return vc & (q->cluster_size / 8 - 1);
}

static int l2_get(struct qimg *q, uint64_t l2, uint64_t vc, uint64_t *e)
{
	uint8_t b[8];
	int rc = pread_full(q->fd, b, 8, l2 + 8 * l2_index(q, vc));

	*e = be_get(b, 8);
	return rc;
}

static int l2_set(struct qimg *q, uint64_t l2, uint64_t vc, uint64_t e)
{
	return put_be64(q->fd, l2 + 8 * l2_index(q, vc), e);
}

/* ---- compressed clusters ---------------------------------------------------- */

/* A compressed L2 entry (qcow2.txt "Compressed Clusters Descriptor"): the
 * low x bits are the host byte offset, the next bits the number of extra
 * 512-byte sectors the deflate stream may span. */
static void compressed_range(struct qimg *q, uint64_t e, uint64_t *off,
			     uint64_t *len)
{
	unsigned x = 62 - (q->cluster_bits - 8);
	uint64_t sectors = ((e >> x) & ((1ull << (q->cluster_bits - 8)) - 1)) + 1;

	*off = e & ((1ull << x) - 1);
	*len = sectors * 512 - (*off & 511);
}

/* Inflate one compressed cluster (raw deflate, 4 KiB window) into c. */
static int compressed_read(struct qimg *q, uint64_t e, uint8_t *c)
{
	uint64_t off, len;
	z_stream z = { 0 };
	uint8_t *in;
	int rc;

	compressed_range(q, e, &off, &len);
	if (len > 2 * q->cluster_size)
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

static int get_refcount(struct qimg *q, uint64_t cluster, uint16_t *v)
{
	uint64_t per = q->cluster_size / 2, i = cluster / per, blk;
	uint8_t b[2];
	int rc;

	if (i >= q->rt_entries || !(blk = q->rt[i] & ~(q->cluster_size - 1)))
		return -EIO;
	rc = pread_full(q->fd, b, 2, blk + 2 * (cluster % per));
	*v = (uint16_t)be_get(b, 2);
	return rc;
}

/* Before writing into a compressed cluster: give it a normal cluster of
 * its own, then drop its references to the clusters holding the stream. */
static int decompress_cluster(struct qimg *q, uint64_t l2, uint64_t vc,
			      uint64_t *e)
{
	uint64_t off, len, host = 0;
	uint8_t *c = malloc(q->cluster_size);
	uint16_t ref;
	int rc;

	if (!c)
		return -ENOMEM;
	rc = compressed_read(q, *e, c);
	if (!rc)
		rc = alloc_cluster(q, &host, c);
	free(c);
	if (!rc)
		rc = l2_set(q, l2, vc, host | QCOW_OFLAG_COPIED);
	compressed_range(q, *e, &off, &len);
	for (uint64_t ci = off >> q->cluster_bits;
	     !rc && ci <= (off + len - 1) >> q->cluster_bits; ci++) {
		rc = get_refcount(q, ci, &ref);
		if (!rc && ref)
			rc = set_refcount(q, ci, (uint16_t)(ref - 1), 0);
	}
	if (!rc)
		*e = host | QCOW_OFLAG_COPIED; /* only a cluster that exists */
	return rc;
}

/* ---- reading ------------------------------------------------------------ */

static int img_read(struct qimg *q, uint64_t off, uint8_t *buf, size_t len);

static int read_unallocated(struct qimg *q, uint64_t off, uint8_t *buf,
			    size_t len)
{
	if (q->backing)
		return img_read(q->backing, off, buf, len);
	memset(buf, 0, len);
	return 0;
}

/* One piece inside one cluster. */
static int read_piece(struct qimg *q, uint64_t off, uint8_t *buf, size_t n)
{
	uint64_t vc = off >> q->cluster_bits, l2, e, host;
	int rc;

	if ((rc = l2_table(q, vc, false, &l2)))
		return rc;
	if (!l2)
		return read_unallocated(q, off, buf, n);
	if ((rc = l2_get(q, l2, vc, &e)))
		return rc;
	if (e & QCOW_OFLAG_COMPRESSED) {
		uint8_t *c = malloc(q->cluster_size);
		if (!c)
			return -ENOMEM;
		rc = compressed_read(q, e, c);
		if (!rc)
			memcpy(buf, c + (off & (q->cluster_size - 1)), n);
		free(c);
		return rc;
	}
	host = e & OFFSET_MASK;
	if (q->version == 3 && (e & QCOW_OFLAG_ZERO)) {
		memset(buf, 0, n);
		return 0;
	}
	if (!host)
		return read_unallocated(q, off, buf, n);
	return pread_full(q->fd, buf, n, host + (off & (q->cluster_size - 1)));
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

/* Write n bytes inside one cluster. An allocated cluster is written in
 * place; otherwise the whole cluster is built (backing data or zeroes plus
 * the new bytes) in a new cluster, whose refcount is set before the L2
 * entry points at it, so a crash leaks a cluster at worst. */
static int write_piece(struct qimg *q, uint64_t off, const uint8_t *buf,
		       size_t n, bool zero)
{
	uint64_t vc = off >> q->cluster_bits, co = off & (q->cluster_size - 1);
	uint64_t l2, e, host, cs = q->cluster_size;
	uint8_t *c;
	int rc;

	if ((rc = l2_table(q, vc, true, &l2)) || (rc = l2_get(q, l2, vc, &e)))
		return rc;
	if ((e & QCOW_OFLAG_COMPRESSED) && (rc = decompress_cluster(q, l2, vc, &e)))
		return rc;
	host = e & OFFSET_MASK;
	/* v3 zero flag for whole clusters: no data written at all */
	if (zero && n == cs && q->version == 3)
		return l2_set(q, l2, vc, host ? (e | QCOW_OFLAG_ZERO) : QCOW_OFLAG_ZERO);
	if (host && !(e & QCOW_OFLAG_COPIED))
		return -ENOTSUP; /* shared with an internal snapshot */
	if (host && !(e & QCOW_OFLAG_ZERO)) {
		if (!zero)
			return pwrite_full(q->fd, buf, n, host + co);
		if (!(c = calloc(1, n)))
			return -ENOMEM;
		rc = pwrite_full(q->fd, c, n, host + co);
		free(c);
		return rc;
	}
	c = calloc(1, cs);
	if (!c)
		return -ENOMEM;
	if (!(e & QCOW_OFLAG_ZERO) || q->version != 3)
		rc = read_unallocated(q, vc * cs, c, cs);
	if (!rc && !zero)
		memcpy(c + co, buf, n);
	else if (!rc)
		memset(c + co, 0, n);
	if (!rc && host)
		rc = pwrite_full(q->fd, c, cs, host);  /* zero-flagged, ours */
	else if (!rc)
		rc = alloc_cluster(q, &host, c);
	free(c);
	return rc ? rc : l2_set(q, l2, vc, host | QCOW_OFLAG_COPIED);
}

static int img_write(struct qimg *q, uint64_t off, const uint8_t *buf,
		     uint64_t len, bool zero)
{
	while (len) {
		uint64_t room = q->cluster_size - (off & (q->cluster_size - 1));
		size_t n = room < len ? (size_t)room : (size_t)len;
		int rc = write_piece(q, off, buf, n, zero);
		if (rc)
			return rc;
		off += n;
		if (buf)
			buf += n;
		len -= n;
	}
	return 0;
}

/* ---- backend ops --------------------------------------------------------- */

static bool in_range(struct qcow2 *s, uint64_t off, uint64_t len)
{
	return off <= s->top->size && len <= s->top->size - off;
}

static int q_preadv(void *be, const struct iovec *iov, int iovcnt, uint64_t off)
{
	struct qcow2 *s = be;
	int rc = 0;

	pthread_mutex_lock(&s->lock);
	for (int i = 0; i < iovcnt && !rc; i++) {
		if (!in_range(s, off, iov[i].iov_len))
			rc = -EINVAL;
		else
			rc = img_read(s->top, off, iov[i].iov_base, iov[i].iov_len);
		off += iov[i].iov_len;
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static int q_pwritev(void *be, const struct iovec *iov, int iovcnt, uint64_t off)
{
	struct qcow2 *s = be;
	int rc = 0;

	if (s->readonly)
		return -EROFS;
	pthread_mutex_lock(&s->lock);
	for (int i = 0; i < iovcnt && !rc; i++) {
		if (!in_range(s, off, iov[i].iov_len))
			rc = -EINVAL;
		else
			rc = img_write(s->top, off, iov[i].iov_base, iov[i].iov_len, false);
		off += iov[i].iov_len;
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static int q_flush(void *be)
{
	struct qcow2 *s = be;

	if (s->readonly)
		return 0;
	return fdatasync(s->top->fd) ? -errno : 0;
}

static int q_discard(void *be, uint64_t off, uint64_t len)
{
	return 0; /* a hint; clusters are not freed yet */
}

static int q_write_zeroes(void *be, uint64_t off, uint64_t len)
{
	struct qcow2 *s = be;
	int rc;

	if (s->readonly)
		return -EROFS;
	if (!in_range(s, off, len))
		return -EINVAL;
	pthread_mutex_lock(&s->lock);
	rc = img_write(s->top, off, NULL, len, true);
	pthread_mutex_unlock(&s->lock);
	return rc;
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
	return q_read_only(be) ? 0 : MODVM_BLOCK_CAN_WRITE_ZEROES;
}

static void q_close(void *be)
{
	struct qcow2 *s = be;

	if (!s)
		return;
	blockpool_free(s->pool);
	if (!s->readonly)
		fdatasync(s->top->fd);
	img_free(s->top);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static void *q_open(const struct modvm_host *host, modvm_inst *inst)
{
	const char *path = host->prop_string(inst, "path");
	struct qcow2 *s = calloc(1, sizeof(*s));
	struct chain c = { .n = 0 };
	char err[512] = "";

	if (!s)
		return NULL;
	s->host = host;
	s->inst = inst;
	s->readonly = host->prop_bool(inst, "readonly");
	pthread_mutex_init(&s->lock, NULL);
	s->top = img_open(path, !s->readonly, &c, NULL, err, sizeof(err));
	if (!s->top) {
		host->set_error(inst, "%s", err[0] ? err : "cannot open the image");
		goto fail;
	}
	s->pool = blockpool_new(host, inst, WORKERS, q_exec, s);
	if (!s->pool)
		goto fail;
	return s;
fail:
	img_free(s->top);
	pthread_mutex_destroy(&s->lock);
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
	.version = "0.1.0",
	.description = "qcow2 image (v2/v3) with backing files and zero clusters",
	.props = q_props,
	.ops = &q_ops,
);
