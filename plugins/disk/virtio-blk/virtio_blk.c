/* virtio-blk: a disk for the guest over the core's virtio-pci transport
 * (Virtual I/O Device (VIRTIO) Version 1.1, 5.2). One request queue; reads
 * and writes go to the block backend asynchronously, the request completes
 * from the event loop. The guest's requests are checked here (header, status
 * byte, sector ranges); the descriptors were checked by the core. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <modvm/block.h>
#include <modvm/modvm.h>
#include <modvm/virtio.h>

#include "bytes.h"
#include "iov.h"

/* Feature bits (5.2.3). */
#define VIRTIO_BLK_F_SIZE_MAX     1
#define VIRTIO_BLK_F_SEG_MAX      2
#define VIRTIO_BLK_F_RO           5
#define VIRTIO_BLK_F_BLK_SIZE     6
#define VIRTIO_BLK_F_FLUSH        9
#define VIRTIO_BLK_F_TOPOLOGY     10
#define VIRTIO_BLK_F_DISCARD      13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

/* Request types and status (5.2.6). */
#define VIRTIO_BLK_T_IN           0
#define VIRTIO_BLK_T_OUT          1
#define VIRTIO_BLK_T_FLUSH        4
#define VIRTIO_BLK_T_GET_ID       8
#define VIRTIO_BLK_T_DISCARD      11
#define VIRTIO_BLK_T_WRITE_ZEROES 13
#define VIRTIO_BLK_S_OK           0
#define VIRTIO_BLK_S_IOERR        1
#define VIRTIO_BLK_S_UNSUPP       2
#define VIRTIO_BLK_ID_BYTES       20
#define VIRTIO_BLK_WZ_F_UNMAP     1

/* struct virtio_blk_config offsets (5.2.4) */
#define CFG_CAPACITY        0
#define CFG_SIZE_MAX        8
#define CFG_SEG_MAX         12
#define CFG_BLK_SIZE        20
#define CFG_PHYS_EXP        24
#define CFG_MIN_IO          26
#define CFG_OPT_IO          28
#define CFG_NUM_QUEUES      34
#define CFG_MAX_DISCARD     36
#define CFG_MAX_DISCARD_SEG 40
#define CFG_DISCARD_ALIGN   44
#define CFG_MAX_WZ          48
#define CFG_MAX_WZ_SEG      52
#define CFG_WZ_MAY_UNMAP    56
#define CFG_LEN             60

#define SECTOR      512
#define HDR_LEN     16
#define SEG_LEN     16   /* struct virtio_blk_discard_write_zeroes */

struct vblk;

struct req {
	struct vblk *b;
	struct modvm_virtio_elem elem;
	struct iovec *data;           /* the data part, status byte excluded */
	int ndata;
	uint8_t *status;
	uint32_t type;
	bool flushed;                 /* write-through: the flush after a write */
	struct modvm_block_req io;
	struct req *next_free;
};

struct vblk {
	struct modvm_dev dev;
	struct modvm_virtio_state vio;   /* the transport's state section, */
	struct modvm_virtio_queue_state vq[1]; /* with its one queue */
	/* properties */
	const char *serial;
	uint32_t lbs, pbs;               /* logical, physical block size */
	bool flush, discard, write_zeroes; /* offered (discard and write_zeroes
					      only if the backend can) */
	uint32_t max_discard, max_wz;
	uint32_t size_max;
	uint16_t queue_size;
	int32_t slot;
	/* wiring */
	modvm_virtio_dev *vdev;
	const struct modvm_block *blk;
	uint64_t sectors;
	bool ro;
	bool resetting;
	char id[VIRTIO_BLK_ID_BYTES];    /* serial, zero-padded (GET_ID) */
	uint8_t cfg[CFG_LEN];
	struct req *reqs;
	struct iovec *iov_pool;
	uint64_t *gpa_pool;
	struct req *free;
};

MODVM_VIRTIO_STATE_SECTION(vblk_virtio_section, struct vblk, vio, vq);

/* ---- requests ------------------------------------------------------------ */

static void process_queue(struct vblk *b);

static void req_finish(struct req *r, uint8_t status)
{
	struct vblk *b = r->b;
	uint64_t len = r->elem.write_len;

	*r->status = status;
	b->dev.host->virtio_push(b->vdev, &r->elem,
			     len > UINT32_MAX ? UINT32_MAX : (uint32_t)len);
	r->next_free = b->free;
	b->free = r;
}

static void io_done(struct modvm_block_req *io, int result)
{
	struct req *r = io->opaque;
	struct vblk *b = r->b;

	/* Write-through: a write completes only once it is synced. */
	if (!result && r->type == VIRTIO_BLK_T_OUT && !b->flush && !r->flushed) {
		r->flushed = true;
		r->io.op = MODVM_BLOCK_FLUSH;
		if (!b->blk->ops->submit(b->blk->be, &r->io))
			return;
		result = -EIO;
	}
	if (result)
		b->dev.host->log(b->dev.inst, MODVM_LOG_DEBUG, "request type %u failed: %s",
			     r->type, strerror(-result));
	req_finish(r, result ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK);
	if (b->resetting)
		return;
	b->dev.host->virtio_notify(b->vdev, 0);
	process_queue(b);
}

static uint8_t submit(struct vblk *b, struct req *r, uint32_t op,
		      uint64_t off, uint64_t len)
{
	r->io = (struct modvm_block_req){ .op = op, .offset = off, .len = len,
					  .iov = r->data, .iovcnt = r->ndata,
					  .complete = io_done, .opaque = r };
	if (b->blk->ops->submit(b->blk->be, &r->io))
		return VIRTIO_BLK_S_IOERR;
	return 0xFF; /* in flight */
}

static bool range_ok(struct vblk *b, uint64_t sector, uint64_t count)
{
	return sector <= b->sectors && count <= b->sectors - sector;
}

/* IN and OUT: the data is the writable part (minus the status byte) or
 * the readable part after the header; whole sectors only. */
static uint8_t rw_request(struct vblk *b, struct req *r, uint64_t sector)
{
	const struct modvm_virtio_elem *e = &r->elem;
	bool in = r->type == VIRTIO_BLK_T_IN;
	uint64_t len = in ? e->write_len - 1 : e->read_len - HDR_LEN;

	if (!in && b->ro)
		return VIRTIO_BLK_S_IOERR;
	if (len % SECTOR || !range_ok(b, sector, len / SECTOR))
		return VIRTIO_BLK_S_IOERR;
	if (in)
		r->ndata = iov_slice(e->iov + e->nread, e->nwrite, 0, len, r->data);
	else
		r->ndata = iov_slice(e->iov, e->nread, HDR_LEN, len, r->data);
	if (!len)
		return VIRTIO_BLK_S_OK;
	return submit(b, r, in ? MODVM_BLOCK_READ : MODVM_BLOCK_WRITE,
		      sector * SECTOR, len);
}

static uint8_t get_id(struct vblk *b, struct req *r)
{
	const struct modvm_virtio_elem *e = &r->elem;
	size_t room = e->write_len - 1;
	size_t n = room < VIRTIO_BLK_ID_BYTES ? room : VIRTIO_BLK_ID_BYTES;

	iov_copy_to(e->iov + e->nread, e->nwrite, b->id, n);
	return VIRTIO_BLK_S_OK;
}

/* DISCARD and WRITE_ZEROES (5.2.6.2): one segment (max_*_seg is 1). */
static uint8_t range_request(struct vblk *b, struct req *r)
{
	const struct modvm_virtio_elem *e = &r->elem;
	bool wz = r->type == VIRTIO_BLK_T_WRITE_ZEROES;
	uint8_t seg[SEG_LEN];
	uint64_t sector;
	uint32_t count, flags;

	if (wz ? !b->write_zeroes : !b->discard)
		return VIRTIO_BLK_S_UNSUPP;
	if (b->ro || e->read_len - HDR_LEN != SEG_LEN)
		return VIRTIO_BLK_S_IOERR;
	iov_copy_from(e->iov, e->nread, HDR_LEN, seg, SEG_LEN);
	sector = le_get(seg, 8);
	count = (uint32_t)le_get(seg + 8, 4);
	flags = (uint32_t)le_get(seg + 12, 4);
	/* 5.2.6.2: unmap is only defined for write zeroes. */
	if (flags & ~(uint32_t)(wz ? VIRTIO_BLK_WZ_F_UNMAP : 0))
		return VIRTIO_BLK_S_UNSUPP;
	if (count > (wz ? b->max_wz : b->max_discard) || !range_ok(b, sector, count))
		return VIRTIO_BLK_S_IOERR;
	r->ndata = 0;
	return submit(b, r, wz ? MODVM_BLOCK_WRITE_ZEROES : MODVM_BLOCK_DISCARD,
		      sector * SECTOR, (uint64_t)count * SECTOR);
}

static uint8_t dispatch(struct vblk *b, struct req *r, uint64_t sector)
{
	switch (r->type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		return rw_request(b, r, sector);
	case VIRTIO_BLK_T_FLUSH:
		if (!b->flush)
			return VIRTIO_BLK_S_UNSUPP;
		r->ndata = 0;
		return submit(b, r, MODVM_BLOCK_FLUSH, 0, 0);
	case VIRTIO_BLK_T_GET_ID:
		return get_id(b, r);
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		return range_request(b, r);
	}
	return VIRTIO_BLK_S_UNSUPP;
}

/* 5.2.6: header (type, reserved, sector) readable first, status byte the
 * last writable byte. A request without them cannot even be answered. */
static void handle(struct vblk *b, struct req *r)
{
	struct modvm_virtio_elem *e = &r->elem;
	struct iovec *last;
	uint8_t hdr[HDR_LEN], st;

	if (e->read_len < HDR_LEN || e->write_len < 1) {
		/* The queue is dead until reset: do not touch it again. */
		b->dev.host->virtio_needs_reset(b->vdev,
			"request without a 16-byte header or a status byte");
		r->next_free = b->free;
		b->free = r;
		return;
	}
	last = &e->iov[e->nread + e->nwrite - 1];
	r->status = (uint8_t *)last->iov_base + last->iov_len - 1;
	r->flushed = false;
	iov_copy_from(e->iov, e->nread, 0, hdr, HDR_LEN);
	r->type = (uint32_t)le_get(hdr, 4);
	st = dispatch(b, r, le_get(hdr + 8, 8));
	if (st != 0xFF)
		req_finish(r, st);
}

static void process_queue(struct vblk *b)
{
	while (b->free) {
		struct req *r = b->free;
		if (b->dev.host->virtio_pop(b->vdev, 0, &r->elem) <= 0)
			break;
		b->free = r->next_free;
		handle(b, r);
	}
	b->dev.host->virtio_notify(b->vdev, 0);
}

/* ---- transport callbacks ------------------------------------------------- */

static void vblk_queue_notify(void *opaque, unsigned queue)
{
	process_queue(opaque);
}

/* Requests in flight finish before the transport forgets the queue. */
static void vblk_virtio_reset(void *opaque)
{
	struct vblk *b = opaque;

	b->resetting = true;
	b->blk->ops->drain(b->blk->be);
	b->resetting = false;
}

static void vblk_drain(void *opaque)
{
	struct vblk *b = opaque;

	b->blk->ops->drain(b->blk->be);
}

static uint64_t vblk_config_read(void *opaque, unsigned off, unsigned size)
{
	struct vblk *b = opaque;

	if (off > CFG_LEN || size > CFG_LEN - off)
		return 0;
	return le_get(b->cfg + off, size);
}

/* ---- instance ------------------------------------------------------------ */

static bool pow2(int64_t v)
{
	return v > 0 && !(v & (v - 1));
}

static void build_config(struct vblk *b, uint32_t lbs, uint32_t pbs)
{
	unsigned exp = 0;

	while ((lbs << exp) < pbs)
		exp++;
	le_put(b->cfg + CFG_CAPACITY, b->sectors, 8);
	le_put(b->cfg + CFG_SIZE_MAX, b->size_max, 4);
	le_put(b->cfg + CFG_SEG_MAX, b->queue_size - 2u, 4);
	le_put(b->cfg + CFG_BLK_SIZE, lbs, 4);
	b->cfg[CFG_PHYS_EXP] = (uint8_t)exp;
	le_put(b->cfg + CFG_MIN_IO, pbs / lbs, 2);
	le_put(b->cfg + CFG_OPT_IO, 0, 4);
	le_put(b->cfg + CFG_NUM_QUEUES, 1, 2);
	le_put(b->cfg + CFG_MAX_DISCARD, b->max_discard, 4);
	le_put(b->cfg + CFG_MAX_DISCARD_SEG, 1, 4);
	le_put(b->cfg + CFG_DISCARD_ALIGN, lbs / SECTOR, 4);
	le_put(b->cfg + CFG_MAX_WZ, b->max_wz, 4);
	le_put(b->cfg + CFG_MAX_WZ_SEG, 1, 4);
	b->cfg[CFG_WZ_MAY_UNMAP] = 1;
}

static uint64_t features(struct vblk *b)
{
	uint64_t f = 1ull << VIRTIO_BLK_F_SEG_MAX | 1ull << VIRTIO_BLK_F_BLK_SIZE |
		     1ull << VIRTIO_BLK_F_TOPOLOGY;

	if (b->size_max)
		f |= 1ull << VIRTIO_BLK_F_SIZE_MAX;
	if (b->ro)
		f |= 1ull << VIRTIO_BLK_F_RO;
	if (b->flush)
		f |= 1ull << VIRTIO_BLK_F_FLUSH;
	if (b->discard)
		f |= 1ull << VIRTIO_BLK_F_DISCARD;
	if (b->write_zeroes)
		f |= 1ull << VIRTIO_BLK_F_WRITE_ZEROES;
	return f;
}

/* What the schema's ranges do not say. */
static int check_props(struct vblk *b)
{
	const struct modvm_host *h = b->dev.host;

	if (!pow2(b->lbs) || !pow2(b->pbs) || b->pbs < b->lbs) {
		h->set_error(b->dev.inst, "block sizes must be powers of two with physical-block-size >= logical-block-size");
		return -1;
	}
	if (!pow2(b->queue_size)) {
		h->set_error(b->dev.inst, "queue-size %u is not a power of two", b->queue_size);
		return -1;
	}
	if (strlen(b->serial) > VIRTIO_BLK_ID_BYTES) {
		h->set_error(b->dev.inst, "serial \"%s\" is longer than 20 bytes", b->serial);
		return -1;
	}
	strncpy(b->id, b->serial, VIRTIO_BLK_ID_BYTES);
	return 0;
}

/* One request per queue entry, each able to hold the longest chain. */
static int alloc_reqs(struct vblk *b)
{
	size_t n = b->queue_size;

	b->reqs = calloc(n, sizeof(*b->reqs));
	b->iov_pool = calloc(n * n * 2, sizeof(struct iovec));
	b->gpa_pool = calloc(n * n, sizeof(uint64_t));
	if (!b->reqs || !b->iov_pool || !b->gpa_pool)
		return -1;
	for (size_t i = 0; i < n; i++) {
		struct req *r = &b->reqs[i];
		r->b = b;
		r->elem.max = (uint32_t)n;
		r->elem.iov = b->iov_pool + i * n * 2;
		r->data = r->elem.iov + n;
		r->elem.gpa = b->gpa_pool + i * n;
		r->next_free = b->free;
		b->free = r;
	}
	return 0;
}

/* The backend is closed before the requests that its completions name are
 * freed (the core would close it only after destroy). */
static void vblk_destroy(void *dev)
{
	struct vblk *b = dev;

	if (b->blk)
		b->dev.host->block_close(b->blk);
	b->blk = NULL;
	if (b->vdev)
		b->dev.host->virtio_unregister(b->vdev);
	b->vdev = NULL;
	free(b->reqs);
	free(b->iov_pool);
	free(b->gpa_pool);
	b->reqs = NULL;
	b->iov_pool = NULL;
	b->gpa_pool = NULL;
}

static int open_backend(struct vblk *b)
{
	const struct modvm_block_ops *ops;
	uint32_t caps;

	b->blk = b->dev.host->block_open(b->dev.inst, "backend");
	if (!b->blk)
		return -1; /* the core set the error */
	ops = b->blk->ops;
	caps = ops->caps(b->blk->be);
	b->ro = ops->read_only(b->blk->be);
	b->sectors = ops->length(b->blk->be) / SECTOR;
	b->discard = b->discard && (caps & MODVM_BLOCK_CAN_DISCARD);
	b->write_zeroes = b->write_zeroes && (caps & MODVM_BLOCK_CAN_WRITE_ZEROES);
	return 0;
}

static int vblk_init(void *dev)
{
	struct vblk *b = dev;
	const struct modvm_host *host = b->dev.host;

	if (check_props(b) || open_backend(b))
		goto fail;
	if (alloc_reqs(b)) {
		host->set_error(b->dev.inst, "out of memory");
		goto fail;
	}
	build_config(b, b->lbs, b->pbs);
	struct modvm_virtio_info info = {
		.size = sizeof(info),
		.device_type = MODVM_VIRTIO_ID_BLOCK,
		.class_code = 0x01, .subclass = 0x80, /* mass storage, other */
		.slot = b->slot,
		.features = features(b),
		.num_queues = 1,
		.queue_size = b->queue_size,
		.config_size = CFG_LEN,
		.config_read = vblk_config_read,
		.queue_notify = vblk_queue_notify,
		.reset = vblk_virtio_reset,
		.drain = vblk_drain,
		.opaque = b,
	};
	b->vdev = host->virtio_register(b->dev.inst, &info, &b->vio, b->vq);
	if (!b->vdev)
		goto fail;
	return 0;
fail:
	vblk_destroy(b);
	return -1;
}

static void vblk_reset(void *dev)
{
	struct vblk *b = dev;

	b->dev.host->virtio_reset(b->vdev);
}

#define B struct vblk
MODVM_DEVICE_DEFINE(.name = "virtio-blk", .version = "1.0.0",
	.description = "Virtio block device (virtio 1.x over PCI)",
	.props = MODVM_PROPS(
		MODVM_PROP_BACKEND_("backend", "raw", MODVM_KIND_BLOCK,
				    "block backend: raw or qcow2 (its properties, e.g. path, go in the same group)"),
		MODVM_PROP_STRING(B, serial, "serial", "",
				  "serial number the guest reads (GET_ID), up to 20 bytes"),
		MODVM_PROP_INT(B, lbs, "logical-block-size", "512", 512, 4096,
			       "logical block size in bytes (power of two)"),
		MODVM_PROP_INT(B, pbs, "physical-block-size", "512", 512, 65536,
			       "physical block size in bytes (power of two, >= logical)"),
		MODVM_PROP_BOOL(B, flush, "flush", "true",
				"offer a volatile write cache with FLUSH; false: every write is synced (write-through)"),
		MODVM_PROP_BOOL(B, discard, "discard", "true",
				"offer DISCARD if the backend supports it"),
		MODVM_PROP_BOOL(B, write_zeroes, "write-zeroes", "true",
				"offer WRITE_ZEROES if the backend supports it"),
		MODVM_PROP_INT(B, max_discard, "max-discard-sectors", "4194304", 1, 0xFFFFFFFFll,
			       "largest DISCARD in 512-byte sectors"),
		MODVM_PROP_INT(B, max_wz, "max-write-zeroes-sectors", "4194304", 1, 0xFFFFFFFFll,
			       "largest WRITE_ZEROES in 512-byte sectors"),
		MODVM_PROP_SIZE(B, size_max, "size-max", "0", 0, 0xFFFFFFFFll,
				"largest data segment the driver may use (0: no limit, SIZE_MAX not offered)"),
		MODVM_PROP_INT(B, queue_size, "queue-size", "256", 4, 1024,
			       "request queue size (power of two)"),
		MODVM_PROP_INT(B, slot, "slot", "-1", -1, 31, "PCI slot, -1: any free")),
	.state = MODVM_STATE(&vblk_virtio_section),
	.ops = MODVM_DEVICE_OPS(B, .init = vblk_init, .destroy = vblk_destroy,
				.reset = vblk_reset));
#undef B
