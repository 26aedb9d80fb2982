/* block-qcow2: opening an image and its backing chain (header checks so a
 * hostile image is refused before any table is trusted) and creating a new
 * v3 image, optionally over a backing file (qcow2.txt "Header").
 * No code from QEMU; the layout comes from the published specification. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/fs.h>

#include "qcow2.h"
#include "../hostdev.h"

/* ---- big-endian file access ------------------------------------------- */

int pread_full(int fd, void *buf, size_t len, uint64_t off)
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

int pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
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

int put_be64(int fd, uint64_t off, uint64_t v)
{
	uint8_t b[8];

	be_put(b, v, 8);
	return pwrite_full(fd, b, 8, off);
}

int qsync(struct qimg *q)
{
	return fdatasync(q->fd) ? -errno : 0;
}

/* ---- opening ------------------------------------------------------------ */

struct chain {
	dev_t dev[MAX_CHAIN + 1];
	ino_t ino[MAX_CHAIN + 1];
	unsigned n;
};

void qimg_free(struct qimg *q)
{
	while (q) {
		struct qimg *b = q->backing;
		if (q->fd >= 0)
			close(q->fd);
		l2c_free(q);
		free(q->l1);
		free(q->rt);
		free(q->freel);
		free(q->pfree);
		free(q->newl1);
		pthread_mutex_destroy(&q->meta);
		pthread_rwlock_destroy(&q->io);
		free(q);
		q = b;
	}
}

static int fail(char *err, size_t len, const char *path, const char *what)
{
	snprintf(err, len, "%s: %s", path, what);
	return -1;
}

static int check_incompat(uint64_t f, const char *path, char *err, size_t len)
{
	if (f & INCOMPAT_DIRTY)
		return fail(err, len, path, "image was not closed cleanly (dirty bit); repair it with qemu-img check -r all");
	if (f & INCOMPAT_CORRUPT)
		return fail(err, len, path, "image is marked corrupt");
	if (f & INCOMPAT_DATA_FILE)
		return fail(err, len, path, "external data files are not supported");
	if (f & INCOMPAT_EXTL2)
		return fail(err, len, path, "extended L2 entries (subclusters) are not supported");
	if (f & ~INCOMPAT_COMPRESSION) {
		snprintf(err, len, "%s: unknown incompatible features 0x%llx: refusing the image",
			 path, (unsigned long long)(f & ~INCOMPAT_COMPRESSION));
		return -1;
	}
	return 0;
}

/* Does [off, off + n) overlap [a, a + an)? */
static bool overlap(uint64_t off, uint64_t n, uint64_t a, uint64_t an)
{
	return off < a + an && a < off + n;
}

/* The header fields we rely on, checked so a hostile image cannot make us
 * allocate or read absurd amounts, nor write over the header. */
static int parse_header(struct qimg *q, const uint8_t *h, const char *path,
			uint64_t fsize, char *err, size_t len)
{
	uint64_t l2_entries, need, cs, rtb;

	q->version = (uint32_t)be_get(h + 4, 4);
	if (q->version != 2 && q->version != 3) {
		snprintf(err, len, "%s: qcow2 version %u is not supported (2 or 3)", path, q->version);
		return -1;
	}
	q->cluster_bits = (uint32_t)be_get(h + 20, 4);
	if (q->cluster_bits < 9 || q->cluster_bits > 21)
		return fail(err, len, path, "cluster size out of range");
	cs = q->cluster_size = 1ull << q->cluster_bits;
	q->size = be_get(h + 24, 8);
	if (be_get(h + 32, 4))
		return fail(err, len, path, "encrypted images are not supported");
	q->l1_size = (uint32_t)be_get(h + 36, 4);
	q->l1_offset = be_get(h + 40, 8);
	q->rt_offset = be_get(h + 48, 8);
	q->rt_clusters = (uint32_t)be_get(h + 56, 4);
	rtb = (uint64_t)q->rt_clusters * cs;
	q->rt_entries = rtb / 8;
	q->refcount_order = 4;
	if (q->version == 3) {
		uint64_t incompat = be_get(h + 72, 8);
		if (check_incompat(incompat, path, err, len))
			return -1;
		/* compression_type exists when header_length > 104 */
		if ((incompat & INCOMPAT_COMPRESSION) && be_get(h + 100, 4) > HDR_V3_LEN &&
		    h[104] != 0)
			return fail(err, len, path, "only zlib compression is supported (image uses zstd)");
		q->refcount_order = (uint32_t)be_get(h + 96, 4);
	}
	l2_entries = cs / 8;
	need = (q->size + cs * l2_entries - 1) / (cs * l2_entries);
	if ((uint64_t)q->l1_size * 8 > MAX_L1_BYTES || q->l1_size < need ||
	    rtb > MAX_RT_BYTES || q->size > (1ull << 60) ||
	    (q->l1_offset & (cs - 1)) || (q->rt_offset & (cs - 1)) ||
	    (q->l1_size && (q->l1_offset < cs || q->l1_offset > fsize)) ||
	    (q->writable && (q->rt_offset < cs || q->rt_offset > fsize || !rtb ||
			     overlap(q->rt_offset, rtb, q->l1_offset, q->l1_size * 8ull))))
		return fail(err, len, path, "header tables are inconsistent (corrupt image?)");
	if (q->writable && q->refcount_order != 4)
		return fail(err, len, path, "only 16-bit refcounts can be written; open with readonly = true");
	if (q->writable && be_get(h + 60, 4))
		return fail(err, len, path, "image has internal snapshots; open with readonly = true");
	return 0;
}

static int load_tables(struct qimg *q, const char *path, char *err, size_t len)
{
	uint64_t rtn = q->writable ? q->rt_entries : 0;

	q->l1 = calloc(q->l1_size ? q->l1_size : 1, 8);
	q->rt = calloc(rtn ? rtn : 1, 8);
	if (!q->l1 || !q->rt)
		return fail(err, len, path, "out of memory");
	if (pread_full(q->fd, q->l1, (size_t)q->l1_size * 8, q->l1_offset) ||
	    pread_full(q->fd, q->rt, (size_t)rtn * 8, q->rt_offset))
		return fail(err, len, path, "cannot read the L1 or refcount table");
	for (uint32_t i = 0; i < q->l1_size; i++)
		q->l1[i] = be_get((uint8_t *)&q->l1[i], 8);
	for (uint64_t i = 0; i < rtn; i++) {
		q->rt[i] = be_get((uint8_t *)&q->rt[i], 8);
		uint64_t b = q->rt[i] & ~(q->cluster_size - 1);
		if (q->rt[i] & (q->cluster_size - 1) ||
		    (b && (b < q->cluster_size || b + q->cluster_size > q->alloc_end ||
			   overlap(b, q->cluster_size, q->l1_offset, q->l1_size * 8ull) ||
			   overlap(b, q->cluster_size, q->rt_offset, rtn * 8))))
			return fail(err, len, path, "refcount table entry points outside the file (corrupt image?)");
	}
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

/* A relative backing name is relative to the image's folder. */
static void backing_path(const char *img, const char *name, char *full,
			 size_t len)
{
	const char *slash = strrchr(img, '/');

	if (name[0] == '/' || !slash)
		snprintf(full, len, "%s", name);
	else
		snprintf(full, len, "%.*s/%s", (int)(slash - img), img, name);
}

static struct qimg *img_open(const char *path, bool writable, struct chain *c,
			     const char *want_fmt, unsigned cache, char *err,
			     size_t len);

static int open_backing(struct qimg *q, const uint8_t *h, const char *path,
			struct chain *c, unsigned cache, char *err, size_t len)
{
	uint64_t off = be_get(h + 8, 8);
	uint32_t n = (uint32_t)be_get(h + 16, 4);
	char name[PATH_MAX], full[PATH_MAX * 2], fmt[32];

	if (!off)
		return 0;
	if (n == 0 || n >= sizeof(name) || off + n > q->cluster_size)
		return fail(err, len, path, "backing file name is invalid");
	if (pread_full(q->fd, name, n, off))
		return fail(err, len, path, "cannot read the backing file name");
	name[n] = 0;
	backing_path(path, name, full, sizeof(full));
	backing_format(q, h, fmt, sizeof(fmt));
	if (c->n >= MAX_CHAIN) {
		snprintf(err, len, "%s: backing chain deeper than %d files", path, MAX_CHAIN);
		return -1;
	}
	q->backing = img_open(full, false, c, fmt[0] ? fmt : NULL, cache, err, len);
	return q->backing ? 0 : -1;
}

/* A host block device may only back an image (raw, read-only), and only
 * while nothing else uses it. */
static int check_blockdev(const char *path, char *err, size_t len)
{
	return hostdev_check_unused(path, err, len) ? -1 : 0;
}

static int open_file(const char *path, bool writable, bool top, uint64_t *size,
		     char *err, size_t len)
{
	/* O_NONBLOCK: a FIFO named as backing file must not hang the open */
	int fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NONBLOCK);
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
	if (fstat(fd, &st))
		goto bad;
	*size = (uint64_t)st.st_size;
	if ((S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) &&
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK))
		goto bad;
	if (S_ISREG(st.st_mode))
		return fd;
	if (S_ISBLK(st.st_mode) && !top) {
		if (ioctl(fd, BLKGETSIZE64, size) || check_blockdev(path, err, len))
			goto bad;
		return fd;
	}
	snprintf(err, len, "%s: %s", path, S_ISDIR(st.st_mode) ?
		 "is a directory, not an image file" : "not a regular file");
bad:
	if (!err[0])
		snprintf(err, len, "%s: %s", path, strerror(errno));
	close(fd);
	return -1;
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
			     const char *want_fmt, unsigned cache, char *err,
			     size_t len)
{
	struct qimg *q = calloc(1, sizeof(*q));
	uint8_t h[HDR_READ] = { 0 };
	uint64_t fsize = 0;

	if (!q)
		return NULL;
	pthread_mutex_init(&q->meta, NULL);
	pthread_rwlock_init(&q->io, NULL);
	q->writable = writable;
	q->fd = open_file(path, writable, c->n == 0, &fsize, err, len);
	if (q->fd < 0 || !chain_add(c, q->fd, path, err, len))
		goto fail;
	if (pread_full(q->fd, h, sizeof(h), 0))
		goto fail;
	if (be_get(h, 4) != QCOW_MAGIC || (want_fmt && !strcmp(want_fmt, "raw"))) {
		/* A backing file may be raw; the image itself must be qcow2. */
		if (c->n == 1 || (want_fmt && strcmp(want_fmt, "raw"))) {
			snprintf(err, len, "%s: not a qcow2 image", path);
			goto fail;
		}
		q->raw = true;
		q->size = fsize;
		return q;
	}
	q->alloc_end = (fsize + 511) & ~511ull;
	if (parse_header(q, h, path, fsize, err, len))
		goto fail;
	q->alloc_end = (fsize + q->cluster_size - 1) & ~(q->cluster_size - 1);
	if (load_tables(q, path, err, len) || l2c_init(q, cache) ||
	    open_backing(q, h, path, c, cache, err, len))
		goto fail;
	/* qcow2.txt "autoclear_features": a writer that does not maintain
	 * them (persistent bitmaps) must clear them, or stale data is trusted */
	if (writable && q->version == 3 && be_get(h + 88, 8) &&
	    (put_be64(q->fd, 88, 0) || qsync(q))) {
		fail(err, len, path, "cannot clear the autoclear feature bits");
		goto fail;
	}
	if (writable && scan_free(q)) {
		fail(err, len, path, "cannot read the refcount blocks (corrupt image?)");
		goto fail;
	}
	return q;
fail:
	if (!err[0])
		fail(err, len, path, "cannot read the image");
	qimg_free(q);
	return NULL;
}

struct qimg *qimg_open(const char *path, bool writable, unsigned cache,
		       char *err, size_t len)
{
	struct chain c = { .n = 0 };

	return img_open(path, writable, &c, NULL, cache, err, len);
}

/* ---- creating ----------------------------------------------------------- */

/* Format and virtual size of the backing file, for the header. */
static int probe_backing(const char *full, int *fmt, uint64_t *size, char *err,
			 size_t len)
{
	uint8_t h[32] = { 0 };
	int fd;

	fd = open_file(full, false, false, size, err, len);
	if (fd < 0) {
		if (strstr(err, "no such file"))
			snprintf(err, len, "%s: backing file not found (set backing-file to an existing image, relative to the new image's folder)", full);
		return -1;
	}
	if (pread_full(fd, h, sizeof(h), 0)) {
		close(fd);
		return fail(err, len, full, "cannot read the backing file");
	}
	close(fd);
	if (*fmt == 0)
		*fmt = be_get(h, 4) == QCOW_MAGIC ? 2 : 1;
	if (*fmt == 2) {
		if (be_get(h, 4) != QCOW_MAGIC)
			return fail(err, len, full, "backing-format is qcow2 but the backing file is not a qcow2 image");
		*size = be_get(h + 24, 8);
	}
	return 0;
}

/* Clusters: header, refcount table, refcount blocks, L1 table, all
 * contiguous; the refcount blocks describe all of them. */
static void create_layout(uint64_t cs, uint64_t l1c, uint64_t *rtc,
			  uint64_t *rbc)
{
	uint64_t per = cs / 2;

	*rtc = 1;
	*rbc = 1;
	for (int i = 0; i < 8; i++) {
		uint64_t total = 1 + *rtc + *rbc + l1c;
		*rbc = (total + per - 1) / per;
		*rtc = (*rbc * 8 + cs - 1) / cs;
	}
}

static int create_header(uint8_t *c, uint64_t cs, const struct create_opts *o,
			 int fmt, uint64_t size, uint64_t l1_size, uint64_t rtc,
			 uint64_t rbc)
{
	size_t blen = strlen(o->backing), off = HDR_V3_LEN;
	const char *fname = fmt == 2 ? "qcow2" : "raw";
	unsigned cb = 0;

	while ((1ull << cb) < cs)
		cb++;
	be_put(c, QCOW_MAGIC, 4);
	be_put(c + 4, 3, 4);
	be_put(c + 20, cb, 4);
	be_put(c + 24, size, 8);
	be_put(c + 36, l1_size, 4);
	be_put(c + 40, (1 + rtc + rbc) * cs, 8);
	be_put(c + 48, cs, 8);
	be_put(c + 56, rtc, 4);
	be_put(c + 96, 4, 4);            /* refcount_order: 16 bits */
	be_put(c + 100, HDR_V3_LEN, 4);
	if (blen) {
		be_put(c + off, EXT_BACKING_FORMAT, 4);
		be_put(c + off + 4, strlen(fname), 4);
		memcpy(c + off + 8, fname, strlen(fname));
		off += 16;
	}
	off += 8;                        /* end of extensions: zeroes */
	if (blen) {
		if (off + blen > cs)
			return -1;
		be_put(c + 8, off, 8);
		be_put(c + 16, blen, 4);
		memcpy(c + off, o->backing, blen);
	}
	return 0;
}

static int create_write(int fd, const struct create_opts *o, int fmt,
			uint64_t size, char *err, size_t len, const char *path)
{
	uint64_t cs = o->cluster_size, map = cs * (cs / 8);
	uint64_t l1_size = (size + map - 1) / map, l1c, rtc, rbc, total;
	uint8_t *buf;
	int rc;

	l1c = (l1_size * 8 + cs - 1) / cs;
	if (l1_size * 8 > MAX_L1_BYTES)
		return fail(err, len, path, "create-size too large for this cluster-size (L1 table over 32 MiB)");
	create_layout(cs, l1c ? l1c : 1, &rtc, &rbc);
	if (!l1c)
		l1c = 1;
	total = 1 + rtc + rbc + l1c;
	buf = calloc(total, cs);
	if (!buf)
		return fail(err, len, path, "out of memory");
	if (create_header(buf, cs, o, fmt, size, l1_size, rtc, rbc)) {
		free(buf);
		return fail(err, len, path, "backing-file name too long for this cluster-size");
	}
	for (uint64_t i = 0; i < rbc; i++)
		be_put(buf + cs + i * 8, (1 + rtc + i) * cs, 8);
	for (uint64_t i = 0; i < total; i++)
		be_put(buf + (1 + rtc) * cs + i * 2, 1, 2);
	rc = pwrite_full(fd, buf, total * cs, 0);
	free(buf);
	if (!rc && fdatasync(fd))
		rc = -errno;
	if (rc) {
		snprintf(err, len, "%s: cannot write the new image: %s", path, strerror(-rc));
		return -1;
	}
	return 0;
}

int qcow2_create(const char *path, const struct create_opts *o, char *err,
		 size_t len)
{
	char full[PATH_MAX * 2];
	uint64_t size = o->size, bsize = 0;
	int fmt = o->backing_fmt, fd;

	if (access(path, F_OK) == 0)
		return 1;
	if (o->cluster_size < 512 || o->cluster_size > (2u << 20) ||
	    (o->cluster_size & (o->cluster_size - 1)))
		return fail(err, len, path, "cluster-size must be a power of two from 512 to 2M");
	if (o->backing[0]) {
		backing_path(path, o->backing, full, sizeof(full));
		if (probe_backing(full, &fmt, &bsize, err, len))
			return -1;
		if (!size)
			size = bsize;
	} else if (!size) {
		return fail(err, len, path, "create-size is required when there is no backing-file");
	}
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 && errno == EEXIST)
		return 1;
	if (fd < 0) {
		snprintf(err, len, "%s: cannot create the image: %s", path, strerror(errno));
		return -1;
	}
	if (create_write(fd, o, fmt, size, err, len, path)) {
		close(fd);
		unlink(path);
		return -1;
	}
	close(fd);
	return 0;
}
