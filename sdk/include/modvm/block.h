/* modvm SDK: block backends (descriptor kind MODVM_KIND_BLOCK), the image
 * formats behind a disk front end such as virtio-blk.
 *
 * A front end names its backend with a MODVM_PROP_BACKEND property of kind
 * MODVM_KIND_BLOCK and opens it with host->block_open(); the core creates
 * the backend from the same config group, so its properties sit beside the
 * front end's (backend = "raw"; path = "disk.img";). The front end then
 * calls the backend's ops through the returned struct modvm_block.
 * See docs/devices/block.md.
 */
#ifndef MODVM_BLOCK_H
#define MODVM_BLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <modvm/host.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Property names with a meaning the core relies on. A file backend has
 * PATH (and READONLY); snapshots move a running disk onto an overlay image
 * over its frozen one and open it with the backend of the snapshot's
 * overlay format (docs/snapshot-format.md, "Disks") given PATH, CREATE =
 * true, BACKING_FILE and BACKING_FORMAT (an ENUM whose choices are the
 * formats it can stack on): a backend that has these can hold overlays.
 * Names only: no ABI. */
#define MODVM_BLOCK_PROP_PATH           "path"
#define MODVM_BLOCK_PROP_READONLY       "readonly"
#define MODVM_BLOCK_PROP_CREATE         "create"
#define MODVM_BLOCK_PROP_BACKING_FILE   "backing-file"
#define MODVM_BLOCK_PROP_BACKING_FORMAT "backing-format"

enum modvm_block_op {
	MODVM_BLOCK_READ = 1,
	MODVM_BLOCK_WRITE = 2,
	MODVM_BLOCK_FLUSH = 3,        /* completes when data is on stable storage */
	MODVM_BLOCK_DISCARD = 4,      /* the range may read back as anything */
	MODVM_BLOCK_WRITE_ZEROES = 5, /* the range reads back as zeroes */
};

/* What a backend can do beyond read, write and flush. */
enum modvm_block_caps {
	MODVM_BLOCK_CAN_DISCARD = 1u << 0,
	MODVM_BLOCK_CAN_WRITE_ZEROES = 1u << 1,
};

/* An asynchronous request. The front end fills the first fields and keeps
 * the request (and the memory its iovecs name) alive until complete runs. */
struct modvm_block_req {
	uint32_t op;                /* enum modvm_block_op */
	uint64_t offset;            /* bytes */
	uint64_t len;               /* DISCARD/WRITE_ZEROES: bytes */
	const struct iovec *iov;    /* READ/WRITE: the data */
	int iovcnt;
	/* Called on the event loop with the machine lock held (never from
	 * inside submit), result 0 or -errno. */
	void (*complete)(struct modvm_block_req *req, int result);
	void *opaque;
	/* backend-private */
	int result_;
	struct modvm_block_req *next_;
};

struct modvm_block_ops {
	uint32_t size;  /* sizeof(struct modvm_block_ops) at build time */
	/* Open the image; props come from inst (the front end's config
	 * group). Return NULL after host->set_error() with a message the
	 * user can act on. */
	void *(*open)(const struct modvm_host *host, modvm_inst *inst);
	/* Wait for requests in flight (their callbacks are not run), then
	 * release everything. */
	void (*close)(void *be);
	uint64_t (*length)(void *be);    /* bytes the guest sees */
	bool (*read_only)(void *be);
	uint32_t (*caps)(void *be);      /* enum modvm_block_caps */
	/* Synchronous calls, for tools and for the backend's own workers:
	 * 0 or -errno; short transfers are retried inside. */
	int (*preadv)(void *be, const struct iovec *iov, int iovcnt,
		      uint64_t offset);
	int (*pwritev)(void *be, const struct iovec *iov, int iovcnt,
		       uint64_t offset);
	int (*flush)(void *be);
	int (*discard)(void *be, uint64_t offset, uint64_t len);
	int (*write_zeroes)(void *be, uint64_t offset, uint64_t len);
	/* Queue req; it completes later on the event loop. The caller has
	 * checked the range against length(). Returns 0, or -errno if the
	 * request could not be queued (complete is then not called). */
	int (*submit)(void *be, struct modvm_block_req *req);
	/* Wait until every submitted request finished and run their
	 * callbacks now, in the caller's thread (reset and snapshots). */
	void (*drain)(void *be);
};

/* An open backend, as host->block_open() returns it. */
struct modvm_block {
	const struct modvm_block_ops *ops;
	void *be;                   /* pass as the first argument of ops */
};

#ifdef __cplusplus
}
#endif

#endif
