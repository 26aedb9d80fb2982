/* A small virtio-pci block driver for device tests: PCI config through
 * 0xCF8/0xCFC, capability discovery, feature negotiation, one split queue
 * in guest RAM, and requests built as a guest driver builds them. Shared by
 * the virtio-blk tests (raw and qcow2 backends). */
#ifndef MODVM_TEST_VIRTIO_DRV_H
#define MODVM_TEST_VIRTIO_DRV_H

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <modvm/pci.h>
#include <modvm/virtio.h>

#include "harness.h"
#include <modvm/modvm.h>
#include "testmain.h"

#define SLOT        4
#define GSI         (16 + (SLOT + 1 - 1) % 8)
#define DISK_BYTES  (1024 * 1024)

/* guest RAM layout of the test driver */
#define DESC        0x10000
#define AVAIL       0x11000
#define USED        0x12000
#define INDIRECT    0x13000
#define HDR         0x20000
#define STATUS      0x21000
#define DATA        0x30000
#define QSIZE       16

/* common config (4.1.4.3) */
#define CC_DFSELECT 0x00
#define CC_DF       0x04
#define CC_GFSELECT 0x08
#define CC_GF       0x0C
#define CC_MSIX     0x10
#define CC_NUMQ     0x12
#define CC_STATUS   0x14
#define CC_CFGGEN   0x15
#define CC_QSELECT  0x16
#define CC_QSIZE    0x18
#define CC_QMSIX    0x1A
#define CC_QENABLE  0x1C
#define CC_QNOFF    0x1E
#define CC_QDESC    0x20
#define CC_QAVAIL   0x28
#define CC_QUSED    0x30

#define F_NEXT      1
#define F_WRITE     2
#define F_INDIRECT  4

#define T_IN        0
#define T_OUT       1
#define T_FLUSH     4
#define T_GET_ID    8
#define T_DISCARD   11
#define T_WZ        13

struct drv {
	struct hx *h;
	uint64_t common, notify, isr, device; /* absolute addresses */
	uint32_t notify_mult;
	uint64_t msix_table;
	unsigned msix_cap;
	unsigned pcicfg;         /* config offset of the PCI_CFG capability */
	uint16_t avail_idx, used_seen;
	char path[256];
	int added;
	bool owns_file;  /* drv_free removes the image */
};

/* ---- PCI config ---------------------------------------------------------- */

static inline uint32_t cfg_rd(struct hx *h, unsigned reg, unsigned size)
{
	uint16_t port = (uint16_t)(0xCFC + (reg & 3));

	hx_outl(h, 0xCF8, 0x80000000u | SLOT << 11 | (reg & 0xFC));
	return size == 1 ? hx_inb(h, port) : size == 2 ? hx_inw(h, port) : hx_inl(h, port);
}

static inline void cfg_wr(struct hx *h, unsigned reg, uint32_t v, unsigned size)
{
	uint16_t port = (uint16_t)(0xCFC + (reg & 3));

	hx_outl(h, 0xCF8, 0x80000000u | SLOT << 11 | (reg & 0xFC));
	if (size == 1)
		hx_outb(h, port, (uint8_t)v);
	else if (size == 2)
		hx_outw(h, port, (uint16_t)v);
	else
		hx_outl(h, port, v);
}

static inline uint64_t bar_addr(struct hx *h, unsigned bar)
{
	return cfg_rd(h, MODVM_PCI_BAR0 + 4 * bar, 4) & ~0xFu;
}

/* Walk the capability list as a driver does (4.1.4). */
static inline void find_caps(struct drv *d)
{
	struct hx *h = d->h;

	for (unsigned p = cfg_rd(h, MODVM_PCI_CAPABILITY_LIST, 1), n = 0; p && n < 48;
	     p = cfg_rd(h, p + 1, 1), n++) {
		unsigned id = cfg_rd(h, p, 1);
		if (id == MODVM_PCI_CAP_ID_MSIX) {
			d->msix_cap = p;
			d->msix_table = bar_addr(h, cfg_rd(h, p + 4, 4) & 7) +
					(cfg_rd(h, p + 4, 4) & ~7u);
			continue;
		}
		if (id != MODVM_PCI_CAP_ID_VNDR)
			continue;
		unsigned type = cfg_rd(h, p + 3, 1), bar = cfg_rd(h, p + 4, 1);
		uint64_t a = bar_addr(h, bar) + cfg_rd(h, p + 8, 4);
		if (type == 1)
			d->common = a;
		else if (type == 2) {
			d->notify = a;
			d->notify_mult = cfg_rd(h, p + 16, 4);
		} else if (type == 3)
			d->isr = a;
		else if (type == 4)
			d->device = a;
		else if (type == 5)
			d->pcicfg = p;
	}
}

/* ---- transport helpers ---------------------------------------------------- */

static inline uint64_t cc_rd(struct drv *d, unsigned off, unsigned size)
{
	return hx_mmio_read(d->h, d->common + off, size);
}

static inline void cc_wr(struct drv *d, unsigned off, uint64_t v, unsigned size)
{
	hx_mmio_write(d->h, d->common + off, v, size);
}

static inline uint8_t status(struct drv *d)
{
	return (uint8_t)cc_rd(d, CC_STATUS, 1);
}

static inline uint64_t dev_features(struct drv *d)
{
	cc_wr(d, CC_DFSELECT, 0, 4);
	uint64_t lo = cc_rd(d, CC_DF, 4);
	cc_wr(d, CC_DFSELECT, 1, 4);
	return lo | cc_rd(d, CC_DF, 4) << 32;
}

static inline void set_features(struct drv *d, uint64_t f)
{
	cc_wr(d, CC_GFSELECT, 0, 4);
	cc_wr(d, CC_GF, (uint32_t)f, 4);
	cc_wr(d, CC_GFSELECT, 1, 4);
	cc_wr(d, CC_GF, f >> 32, 4);
}

/* A machine with pci-host and a virtio-blk on image `path` behind
 * `backend`, Bus Master on and the capabilities found. d->added is what
 * hx_add returned. */
/* Called by drv_attach with the new machine before its devices exist (a
 * test that inspects the core's block layer sets it). */
static void (*drv_before_add)(struct hx *h);

static inline struct drv *drv_attach(const char *path, const char *backend,
				     const char *extra1, const char *extra2)
{
	struct drv *d = calloc(1, sizeof(*d));
	char p[300], b[48];

	d->h = hx_new(0);
	if (drv_before_add)
		drv_before_add(d->h);
	snprintf(d->path, sizeof(d->path), "%s", path);
	snprintf(p, sizeof(p), "path=%s", path);
	snprintf(b, sizeof(b), "backend=%s", backend);
	CU_ASSERT_EQUAL_FATAL(hx_add(d->h, "pci-host", "pci", NULL), 0);
	d->added = hx_add(d->h, "virtio-blk", "disk0", b, p, "slot=4",
			  "serial=modvm-serial-0001", extra1 ? extra1 : "queue-size=16",
			  extra2, NULL);
	if (d->added)
		fprintf(stderr, "virtio-blk: %s\n", hx_error(d->h));
	/* Bus Master, as a driver enables it */
	cfg_wr(d->h, MODVM_PCI_COMMAND, cfg_rd(d->h, MODVM_PCI_COMMAND, 2) | 6, 2);
	find_caps(d);
	return d;
}

static inline void drv_free(struct drv *d)
{
	hx_free(d->h);
	if (d->owns_file)
		unlink(d->path);
	free(d);
}

static inline void queue_setup(struct drv *d, uint16_t size)
{
	uint8_t zero[0x1000] = { 0 };

	hx_mem_write(d->h, AVAIL, zero, sizeof(zero));
	hx_mem_write(d->h, USED, zero, sizeof(zero));
	cc_wr(d, CC_QSELECT, 0, 2);
	cc_wr(d, CC_QSIZE, size, 2);
	cc_wr(d, CC_QDESC, DESC, 4);
	cc_wr(d, CC_QDESC + 4, 0, 4);
	cc_wr(d, CC_QAVAIL, AVAIL, 4);
	cc_wr(d, CC_QAVAIL + 4, 0, 4);
	cc_wr(d, CC_QUSED, USED, 4);
	cc_wr(d, CC_QUSED + 4, 0, 4);
	cc_wr(d, CC_QENABLE, 1, 2);
	d->avail_idx = d->used_seen = 0;
}

/* The 3.1.1 initialisation sequence. */
static inline void drv_init(struct drv *d, uint64_t extra_features)
{
	cc_wr(d, CC_STATUS, 0, 1);
	cc_wr(d, CC_STATUS, MODVM_VIRTIO_CONFIG_S_ACKNOWLEDGE, 1);
	cc_wr(d, CC_STATUS, MODVM_VIRTIO_CONFIG_S_ACKNOWLEDGE | MODVM_VIRTIO_CONFIG_S_DRIVER, 1);
	set_features(d, (dev_features(d) & extra_features) | 1ull << MODVM_VIRTIO_F_VERSION_1);
	cc_wr(d, CC_STATUS, 0x0B, 1);
	CU_ASSERT_EQUAL(status(d), 0x0B);
	queue_setup(d, QSIZE);
	cc_wr(d, CC_STATUS, 0x0F, 1);
	CU_ASSERT_EQUAL(status(d), 0x0F);
}

static inline void desc_put(struct drv *d, uint64_t table, unsigned i, uint64_t addr,
		     uint32_t len, uint16_t flags, uint16_t next)
{
	uint8_t b[16];

	memcpy(b, &addr, 8);
	memcpy(b + 8, &len, 4);
	memcpy(b + 12, &flags, 2);
	memcpy(b + 14, &next, 2);
	hx_mem_write(d->h, table + 16ull * i, b, 16);
}

static inline uint16_t mem16(struct drv *d, uint64_t gpa)
{
	uint16_t v;

	hx_mem_read(d->h, gpa, &v, 2);
	return v;
}

static inline void put16(struct drv *d, uint64_t gpa, uint16_t v)
{
	hx_mem_write(d->h, gpa, &v, 2);
}

static inline void kick(struct drv *d, uint16_t head)
{
	put16(d, AVAIL + 4 + 2 * (d->avail_idx % QSIZE), head);
	d->avail_idx++;
	put16(d, AVAIL + 2, d->avail_idx);
	hx_mmio_write(d->h, d->notify + 0 * d->notify_mult, 0, 2);
}

/* Wait for the used ring to move (completions arrive on the event loop). */
static inline bool wait_used(struct drv *d)
{
	for (int i = 0; i < 200; i++) {
		if (mem16(d, USED + 2) != d->used_seen) {
			d->used_seen++;
			return true;
		}
		hx_poll(d->h, 10);
	}
	return false;
}

static inline uint32_t used_len(struct drv *d, uint16_t n)
{
	uint32_t v;

	hx_mem_read(d->h, USED + 4 + 8 * (n % QSIZE) + 4, &v, 4);
	return v;
}

/* A request: header, data (readable for OUT-like, writable for IN-like),
 * status byte. Returns the status byte, or 0xEE if nothing completed. */
static inline uint8_t request(struct drv *d, uint32_t type, uint64_t sector,
		       uint32_t len, bool data_writable)
{
	uint8_t hdr[16] = { 0 }, st = 0xAA;

	memcpy(hdr, &type, 4);
	memcpy(hdr + 8, &sector, 8);
	hx_mem_write(d->h, HDR, hdr, 16);
	hx_mem_write(d->h, STATUS, &st, 1);
	desc_put(d, DESC, 0, HDR, 16, F_NEXT, 1);
	if (len) {
		desc_put(d, DESC, 1, DATA, len, F_NEXT | (data_writable ? F_WRITE : 0), 2);
		desc_put(d, DESC, 2, STATUS, 1, F_WRITE, 0);
	} else {
		desc_put(d, DESC, 1, STATUS, 1, F_WRITE, 0);
	}
	kick(d, 0);
	if (!wait_used(d))
		return 0xEE;
	hx_mem_read(d->h, STATUS, &st, 1);
	return st;
}

static inline void file_read(struct drv *d, uint64_t off, void *buf, size_t len)
{
	int fd = open(d->path, O_RDONLY);

	CU_ASSERT_EQUAL(pread(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

static inline void msix_setup(struct drv *d)
{
	for (unsigned v = 0; v < 2; v++) {
		uint64_t e = d->msix_table + 16 * v;
		hx_mmio_write(d->h, e, 0xFEE00000, 4);
		hx_mmio_write(d->h, e + 4, 0, 4);
		hx_mmio_write(d->h, e + 8, 0x40 + v, 4);
		hx_mmio_write(d->h, e + 12, 0, 4);
	}
	cfg_wr(d->h, d->msix_cap + 2, 0x8000, 2);
	cc_wr(d, CC_MSIX, 0, 2);
	cc_wr(d, CC_QSELECT, 0, 2);
	cc_wr(d, CC_QMSIX, 1, 2);
}

#endif
