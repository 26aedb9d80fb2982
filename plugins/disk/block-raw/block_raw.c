/* block-raw: a raw image file (or host block device) as a disk: guest byte
 * N is file byte N. I/O runs on the shared worker pool; flush is
 * fdatasync, discard punches holes, write-zeroes uses FALLOC_FL_ZERO_RANGE
 * with a fallback to writing zeroes. Host block devices are read-only
 * unless host-device-write is set, and refused while the host uses them
 * (hostdev.c). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <modvm/block.h>
#include <modvm/modvm.h>

#include "blockpool.h"
#include "hostdev.h"

#define WORKERS   4
#define ZERO_CHUNK (64 * 1024)

struct raw {
	const struct modvm_host *host;
	modvm_inst *inst;
	int fd;
	bool readonly;
	bool blockdev;
	uint64_t size;
	struct blockpool *pool;
};

static const struct modvm_prop_desc raw_props[] = {
	{ .name = "path", .type = MODVM_PROP_STRING, .flags = MODVM_PROP_REQUIRED,
	  .help = "image file or host block device" },
	MODVM_PROP_BOOL_("readonly", "false", "open read-only; the guest sees a read-only disk"),
	MODVM_PROP_BOOL_("host-device-write", "false",
			 "let the guest write a host block device (path under /dev); "
			 "without it a host device is read-only"),
	MODVM_PROP_END
};

/* Transfer all of iov at offset, retrying short transfers and EINTR. */
static int rw_full(struct raw *r, const struct iovec *iov, int iovcnt,
		   uint64_t off, bool write)
{
	struct iovec local[IOV_MAX];
	int n = iovcnt < IOV_MAX ? iovcnt : IOV_MAX;
	int first = 0;

	if (iovcnt > IOV_MAX) {
		/* Rare: do it in IOV_MAX slices. */
		uint64_t done = 0;
		for (int i = 0; i < iovcnt; i += IOV_MAX) {
			int c = iovcnt - i < IOV_MAX ? iovcnt - i : IOV_MAX;
			int rc = rw_full(r, iov + i, c, off + done, write);
			if (rc)
				return rc;
			for (int j = i; j < i + c; j++)
				done += iov[j].iov_len;
		}
		return 0;
	}
	memcpy(local, iov, sizeof(*iov) * (size_t)n);
	while (first < n) {
		ssize_t got = write ? pwritev(r->fd, local + first, n - first, (off_t)off)
				    : preadv(r->fd, local + first, n - first, (off_t)off);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (got == 0) {
			if (write)
				return -EIO;
			/* Past the end of a file that shrank: zeroes. */
			for (int i = first; i < n; i++)
				memset(local[i].iov_base, 0, local[i].iov_len);
			return 0;
		}
		off += (uint64_t)got;
		while (first < n && (size_t)got >= local[first].iov_len) {
			got -= (ssize_t)local[first].iov_len;
			first++;
		}
		if (first < n) {
			local[first].iov_base = (char *)local[first].iov_base + got;
			local[first].iov_len -= (size_t)got;
		}
	}
	return 0;
}

static int raw_preadv(void *be, const struct iovec *iov, int iovcnt,
		      uint64_t off)
{
	return rw_full(be, iov, iovcnt, off, false);
}

static int raw_pwritev(void *be, const struct iovec *iov, int iovcnt,
		       uint64_t off)
{
	struct raw *r = be;

	if (r->readonly)
		return -EROFS;
	return rw_full(r, iov, iovcnt, off, true);
}

static int raw_flush(void *be)
{
	struct raw *r = be;

	if (r->readonly)
		return 0;
	return fdatasync(r->fd) ? -errno : 0;
}

static int raw_discard(void *be, uint64_t off, uint64_t len)
{
	struct raw *r = be;

	if (r->readonly)
		return -EROFS;
	if (r->blockdev) {
		uint64_t range[2] = { off, len };
		if (!ioctl(r->fd, BLKDISCARD, range))
			return 0;
		return errno == EOPNOTSUPP ? 0 : -errno; /* a hint here too */
	}
	if (fallocate(r->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)off, (off_t)len))
		return errno == EOPNOTSUPP ? 0 : -errno; /* discard is a hint */
	return 0;
}

static int zero_by_writing(struct raw *r, uint64_t off, uint64_t len)
{
	static const char zeroes[ZERO_CHUNK];

	while (len) {
		size_t n = len < ZERO_CHUNK ? (size_t)len : ZERO_CHUNK;
		struct iovec v = { (void *)zeroes, n };
		int rc = rw_full(r, &v, 1, off, true);
		if (rc)
			return rc;
		off += n;
		len -= n;
	}
	return 0;
}

static int raw_write_zeroes(void *be, uint64_t off, uint64_t len)
{
	struct raw *r = be;

	if (r->readonly)
		return -EROFS;
	if (r->blockdev) {
		/* The device zeroes (or unmaps) the range itself; where it
		 * cannot (EOPNOTSUPP, or any failure) we write the zeroes. */
		uint64_t range[2] = { off, len };
		if (!ioctl(r->fd, BLKZEROOUT, range))
			return 0;
		return zero_by_writing(r, off, len);
	}
	if (!fallocate(r->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
		       (off_t)off, (off_t)len))
		return 0;
	return zero_by_writing(r, off, len);
}

static int raw_exec(void *be, struct modvm_block_req *req)
{
	switch (req->op) {
	case MODVM_BLOCK_READ:
		return raw_preadv(be, req->iov, req->iovcnt, req->offset);
	case MODVM_BLOCK_WRITE:
		return raw_pwritev(be, req->iov, req->iovcnt, req->offset);
	case MODVM_BLOCK_FLUSH:
		return raw_flush(be);
	case MODVM_BLOCK_DISCARD:
		return raw_discard(be, req->offset, req->len);
	case MODVM_BLOCK_WRITE_ZEROES:
		return raw_write_zeroes(be, req->offset, req->len);
	}
	return -EINVAL;
}

static int raw_submit(void *be, struct modvm_block_req *req)
{
	struct raw *r = be;

	return blockpool_submit(r->pool, req);
}

static void raw_drain(void *be)
{
	struct raw *r = be;

	blockpool_drain(r->pool);
}

static uint64_t raw_length(void *be)
{
	return ((struct raw *)be)->size;
}

static bool raw_read_only(void *be)
{
	return ((struct raw *)be)->readonly;
}

static uint32_t raw_caps(void *be)
{
	struct raw *r = be;

	return r->readonly ? 0 : MODVM_BLOCK_CAN_DISCARD | MODVM_BLOCK_CAN_WRITE_ZEROES;
}

/* Messages a user can act on, for the usual ways opening fails. */
static void open_error(struct raw *r, const char *path, int err)
{
	const struct modvm_host *h = r->host;

	if (err == ENOENT)
		h->set_error(r->inst, "%s: no such file", path);
	else if ((err == EACCES || err == EPERM) && r->blockdev)
		h->set_error(r->inst, "%s: permission denied (a host block device needs "
			     "root or membership of its group, usually disk)", path);
	else if (err == EACCES || err == EPERM)
		h->set_error(r->inst, "%s: permission denied%s", path,
			     r->readonly ? "" : " (for read-only use set readonly = true)");
	else if (err == EBUSY && r->blockdev)
		h->set_error(r->inst, "%s: in use by the host (mounted, or opened "
			     "exclusively by another program, maybe in another mount "
			     "namespace); unmount it or stop that program first", path);
	else if (err == EROFS)
		h->set_error(r->inst, "%s: on a read-only filesystem (set readonly = true)", path);
	else if (err == EISDIR)
		h->set_error(r->inst, "%s: is a directory, not an image file", path);
	else
		h->set_error(r->inst, "%s: %s", path, strerror(err));
}

static int raw_size(struct raw *r, const char *path)
{
	struct stat st;

	if (fstat(r->fd, &st)) {
		open_error(r, path, errno);
		return -1;
	}
	if (S_ISDIR(st.st_mode)) {
		open_error(r, path, EISDIR);
		return -1;
	}
	if (S_ISBLK(st.st_mode) != r->blockdev) {
		r->host->set_error(r->inst, "%s: changed while it was opened", path);
		return -1;
	}
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(r->fd, BLKGETSIZE64, &r->size)) {
			open_error(r, path, errno);
			return -1;
		}
		return 0;
	}
	if (!S_ISREG(st.st_mode)) {
		r->host->set_error(r->inst, "%s: not a regular file or block device", path);
		return -1;
	}
	r->size = (uint64_t)st.st_size;
	return 0;
}

/* A host block device: read-only unless host-device-write says otherwise,
 * refused while the host uses it, and claimed with O_EXCL when writable so
 * the kernel refuses a mount while the guest has it (and refuses us if a
 * mount slipped in after the check). */
static int blockdev_flags(struct raw *r, const char *path)
{
	char why[1024];

	if (!r->host->prop_bool(r->inst, "host-device-write") && !r->readonly) {
		r->readonly = true;
		r->host->log(r->inst, MODVM_LOG_INFO, "%s: host block device opened "
			     "read-only (set host-device-write = true to let the "
			     "guest write it)", path);
	}
	if (hostdev_check_unused(path, why, sizeof(why))) {
		r->host->set_error(r->inst, "%s", why);
		return -1;
	}
	return r->readonly ? 0 : O_EXCL;
}

static int raw_open_fd(struct raw *r, const char *path)
{
	int flags = O_CLOEXEC, f;
	struct stat st;

	if (stat(path, &st)) {
		open_error(r, path, errno);
		return -1;
	}
	if (S_ISDIR(st.st_mode)) {
		open_error(r, path, EISDIR);
		return -1;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		r->host->set_error(r->inst, "%s: not a regular file or block device (%s)", path,
				   S_ISFIFO(st.st_mode) ? "a FIFO" : S_ISSOCK(st.st_mode) ?
				   "a socket" : "a character device");
		return -1;
	}
	if (S_ISBLK(st.st_mode)) {
		r->blockdev = true;
		f = blockdev_flags(r, path);
		if (f < 0)
			return -1;
		flags |= f;
	}
	/* O_NONBLOCK: a FIFO put there since the stat is refused by
	 * raw_size, not waited on; cleared for the I/O */
	r->fd = open(path, flags | O_NONBLOCK | (r->readonly ? O_RDONLY : O_RDWR));
	if (r->fd < 0) {
		open_error(r, path, errno);
		return -1;
	}
	if (fcntl(r->fd, F_SETFL, fcntl(r->fd, F_GETFL) & ~O_NONBLOCK)) {
		open_error(r, path, errno);
		return -1;
	}
	return 0;
}

static void raw_close(void *be)
{
	struct raw *r = be;

	if (!r)
		return;
	blockpool_free(r->pool);
	if (r->fd >= 0)
		close(r->fd);
	free(r);
}

static void *raw_open(const struct modvm_host *host, modvm_inst *inst)
{
	const char *path = host->prop_string(inst, "path");
	struct raw *r = calloc(1, sizeof(*r));

	if (!r) {
		host->set_error(inst, "out of memory");
		return NULL;
	}
	r->host = host;
	r->inst = inst;
	r->fd = -1;
	r->readonly = host->prop_bool(inst, "readonly");
	if (!path || !*path) {
		host->set_error(inst, "path is empty");
		goto fail;
	}
	if (raw_open_fd(r, path))
		goto fail;
	if (raw_size(r, path))
		goto fail;
	r->pool = blockpool_new(host, inst, WORKERS, raw_exec, r);
	if (!r->pool)
		goto fail;
	return r;
fail:
	if (r->fd >= 0)
		close(r->fd);
	free(r);
	return NULL;
}

static const struct modvm_block_ops raw_ops = {
	.size = sizeof(struct modvm_block_ops),
	.open = raw_open,
	.close = raw_close,
	.length = raw_length,
	.read_only = raw_read_only,
	.caps = raw_caps,
	.preadv = raw_preadv,
	.pwritev = raw_pwritev,
	.flush = raw_flush,
	.discard = raw_discard,
	.write_zeroes = raw_write_zeroes,
	.submit = raw_submit,
	.drain = raw_drain,
};

MODVM_PLUGIN_DEFINE(
	.kind = MODVM_KIND_BLOCK,
	.name = "block-raw",
	.version = "1.0.0",
	.description = "Raw disk image file or host block device",
	.props = raw_props,
	.ops = &raw_ops,
);
