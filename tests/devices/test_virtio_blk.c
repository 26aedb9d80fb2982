/* virtio-blk over the virtio-pci transport with the block-raw backend,
 * driven as a guest driver would: PCI config through 0xCF8/0xCFC, the
 * virtio capabilities, feature negotiation, split queues in guest RAM,
 * requests of every type, hostile descriptor chains (which must leave the
 * device in NEEDS_RESET and nothing else), reset, INTx/MSI-X, event index
 * and the transport's state section. */
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
#include "test_virtio_drv.h"

static void make_disk(struct drv *d, bool pattern)
{
	uint8_t *buf = malloc(DISK_BYTES);
	char path[] = "/tmp/modvm-vblk-XXXXXX";
	int fd = mkstemp(path);

	CU_ASSERT_FATAL(fd >= 0);
	for (size_t i = 0; i < DISK_BYTES; i++)
		buf[i] = pattern ? (uint8_t)(i / 512 + i) : 0;
	CU_ASSERT_EQUAL(write(fd, buf, DISK_BYTES), DISK_BYTES);
	close(fd);
	free(buf);
	snprintf(d->path, sizeof(d->path), "%s", path);
}

static struct drv *drv_new_with(const char *extra1, const char *extra2)
{
	struct drv tmp, *d;

	make_disk(&tmp, true);
	d = drv_attach(tmp.path, "raw", extra1, extra2);
	d->owns_file = true;
	return d;
}

static struct drv *drv_new(void)
{
	return drv_new_with(NULL, NULL);
}

/* ---- identity and negotiation ------------------------------------------ */

static void test_pci_identity(void)
{
	struct drv *d = drv_new();

	CU_ASSERT_EQUAL(cfg_rd(d->h, MODVM_PCI_VENDOR_ID, 2), 0x1AF4);
	CU_ASSERT_EQUAL(cfg_rd(d->h, MODVM_PCI_DEVICE_ID, 2), 0x1042);
	CU_ASSERT_EQUAL(cfg_rd(d->h, MODVM_PCI_REVISION_ID, 1), 1);
	CU_ASSERT(cfg_rd(d->h, MODVM_PCI_SUBSYSTEM_ID, 2) >= 0x40);
	CU_ASSERT(d->common && d->notify && d->isr && d->device && d->msix_cap);
	CU_ASSERT_EQUAL(d->notify_mult, 4);
	CU_ASSERT_EQUAL(cc_rd(d, CC_NUMQ, 2), 1);
	/* queue 0 offers the configured size; a missing queue reads size 0 */
	CU_ASSERT_EQUAL(cc_rd(d, CC_QSIZE, 2), 16);
	cc_wr(d, CC_QSELECT, 5, 2);
	CU_ASSERT_EQUAL(cc_rd(d, CC_QSIZE, 2), 0);
	/* device config: capacity in sectors, serial-independent fields */
	CU_ASSERT_EQUAL(hx_mmio_read(d->h, d->device, 8), DISK_BYTES / 512);
	CU_ASSERT_EQUAL(hx_mmio_read(d->h, d->device + 12, 4), 14); /* seg_max */
	CU_ASSERT_EQUAL(hx_mmio_read(d->h, d->device + 20, 4), 512);
	CU_ASSERT_EQUAL(hx_mmio_read(d->h, d->device + 0x100, 4), 0); /* beyond */
	drv_free(d);
}

static void test_feature_negotiation(void)
{
	struct drv *d = drv_new();
	uint64_t f = dev_features(d);

	CU_ASSERT(f >> MODVM_VIRTIO_F_VERSION_1 & 1);
	CU_ASSERT(f >> MODVM_VIRTIO_F_RING_INDIRECT_DESC & 1);
	CU_ASSERT(f >> MODVM_VIRTIO_F_RING_EVENT_IDX & 1);
	CU_ASSERT(f >> 9 & 1);   /* FLUSH */
	CU_ASSERT(f >> 13 & 1);  /* DISCARD */
	CU_ASSERT(f >> 14 & 1);  /* WRITE_ZEROES */
	CU_ASSERT_FALSE(f >> 5 & 1); /* not read-only */
	CU_ASSERT_FALSE(f >> 1 & 1); /* no SIZE_MAX by default */
	/* no VERSION_1: FEATURES_OK does not stick */
	cc_wr(d, CC_STATUS, 3, 1);
	set_features(d, 1ull << 9);
	cc_wr(d, CC_STATUS, 0x0B, 1);
	CU_ASSERT_EQUAL(status(d), 0x03);
	/* DRIVER_OK without FEATURES_OK is not taken either */
	cc_wr(d, CC_STATUS, 0x07, 1);
	CU_ASSERT_EQUAL(status(d), 0x03);
	/* a feature the device does not offer */
	set_features(d, 1ull << MODVM_VIRTIO_F_VERSION_1 | 1ull << 20);
	cc_wr(d, CC_STATUS, 0x0B, 1);
	CU_ASSERT_EQUAL(status(d), 0x03);
	/* good set */
	set_features(d, 1ull << MODVM_VIRTIO_F_VERSION_1 | 1ull << 9);
	cc_wr(d, CC_STATUS, 0x0B, 1);
	CU_ASSERT_EQUAL(status(d), 0x0B);
	/* features are frozen after FEATURES_OK */
	cc_wr(d, CC_GFSELECT, 0, 4);
	cc_wr(d, CC_GF, 0, 4);
	CU_ASSERT_EQUAL(cc_rd(d, CC_GF, 4), 1u << 9);
	/* the driver cannot clear bits without a reset */
	cc_wr(d, CC_STATUS, 0x01, 1);
	CU_ASSERT_EQUAL(status(d), 0x0B);
	/* the driver cannot set NEEDS_RESET */
	cc_wr(d, CC_STATUS, 0x4B, 1);
	CU_ASSERT_EQUAL(status(d), 0x0B);
	drv_free(d);
}

static void test_queue_setup_rules(void)
{
	struct drv *d = drv_new();

	cc_wr(d, CC_QSELECT, 0, 2);
	cc_wr(d, CC_QSIZE, 12, 2);           /* not a power of two: ignored */
	CU_ASSERT_EQUAL(cc_rd(d, CC_QSIZE, 2), 16);
	cc_wr(d, CC_QSIZE, 32, 2);           /* above the maximum: ignored */
	CU_ASSERT_EQUAL(cc_rd(d, CC_QSIZE, 2), 16);
	cc_wr(d, CC_QSIZE, 8, 2);
	CU_ASSERT_EQUAL(cc_rd(d, CC_QSIZE, 2), 8);
	cc_wr(d, CC_QMSIX, 7, 2);            /* no such vector */
	CU_ASSERT_EQUAL(cc_rd(d, CC_QMSIX, 2), MODVM_VIRTIO_NO_VECTOR);
	cc_wr(d, CC_QMSIX, 1, 2);
	CU_ASSERT_EQUAL(cc_rd(d, CC_QMSIX, 2), 1);
	cc_wr(d, CC_QDESC, 0x12345000, 4);
	cc_wr(d, CC_QDESC + 4, 0x1, 4);
	CU_ASSERT_EQUAL(cc_rd(d, CC_QDESC, 4), 0x12345000);
	CU_ASSERT_EQUAL(cc_rd(d, CC_QDESC + 4, 4), 1);
	drv_free(d);
}

/* 4.1.4.7: the PCI_CFG capability is a window into the BARs through
 * configuration space. */
static void test_pci_cfg_window(void)
{
	struct drv *d = drv_new();
	unsigned c = d->pcicfg;

	CU_ASSERT_FATAL(c >= 0x40);
	CU_ASSERT_EQUAL(cfg_rd(d->h, c + 2, 1), 20);  /* cap_len */
	CU_ASSERT_EQUAL(cfg_rd(d->h, c + 3, 1), 5);   /* cfg_type */
	/* read the status byte of the common config through it */
	cc_wr(d, CC_STATUS, MODVM_VIRTIO_CONFIG_S_ACKNOWLEDGE, 1);
	cfg_wr(d->h, c + 4, 0, 1);
	cfg_wr(d->h, c + 8, 0x14, 4);
	cfg_wr(d->h, c + 12, 1, 4);
	CU_ASSERT_EQUAL(cfg_rd(d->h, c + 8, 4), 0x14);
	CU_ASSERT_EQUAL(cfg_rd(d->h, c + 12, 4), 1);
	CU_ASSERT_EQUAL(cfg_rd(d->h, c + 16, 1), MODVM_VIRTIO_CONFIG_S_ACKNOWLEDGE);
	/* and write it */
	cfg_wr(d->h, c + 16, 3, 1);
	CU_ASSERT_EQUAL(status(d), 3);
	/* the capacity in the device config, as a dword */
	cfg_wr(d->h, c + 8, 0x2000, 4);
	cfg_wr(d->h, c + 12, 4, 4);
	CU_ASSERT_EQUAL(cfg_rd(d->h, c + 16, 4), DISK_BYTES / 512);
	/* bad windows read 0 and write nothing: misaligned, bad width,
	 * beyond the BAR, another BAR */
	cfg_wr(d->h, c + 8, 0x2001, 4);
	CU_ASSERT_EQUAL(cfg_rd(d->h, c + 16, 4), 0);
	cfg_wr(d->h, c + 8, 0x14, 4);
	cfg_wr(d->h, c + 12, 3, 4);
	CU_ASSERT_EQUAL(cfg_rd(d->h, c + 16, 4), 0);
	cfg_wr(d->h, c + 12, 4, 4);
	cfg_wr(d->h, c + 8, 0xFFFFFFFC, 4);
	CU_ASSERT_EQUAL(cfg_rd(d->h, c + 16, 4), 0);
	cfg_wr(d->h, c + 16, 0, 4);
	cfg_wr(d->h, c + 4, 2, 1);
	cfg_wr(d->h, c + 8, 0x14, 4);
	cfg_wr(d->h, c + 12, 1, 4);
	CU_ASSERT_EQUAL(cfg_rd(d->h, c + 16, 1), 0);
	cfg_wr(d->h, c + 16, 0, 1);
	CU_ASSERT_EQUAL(status(d), 3);
	drv_free(d);
}

/* ---- requests ------------------------------------------------------------ */

static void test_write_then_read(void)
{
	struct drv *d = drv_new();
	uint8_t out[4096], in[4096], file[4096];

	drv_init(d, ~0ull);
	for (size_t i = 0; i < sizeof(out); i++)
		out[i] = (uint8_t)(i * 7 + 3);
	hx_mem_write(d->h, DATA, out, sizeof(out));
	CU_ASSERT_EQUAL(request(d, T_OUT, 10, 4096, false), 0);
	CU_ASSERT_EQUAL(used_len(d, 0), 1);
	file_read(d, 10 * 512, file, sizeof(file));
	CU_ASSERT_EQUAL(memcmp(file, out, sizeof(out)), 0);
	/* read it back into a cleared buffer */
	memset(in, 0, sizeof(in));
	hx_mem_write(d->h, DATA, in, sizeof(in));
	CU_ASSERT_EQUAL(request(d, T_IN, 10, 4096, true), 0);
	hx_mem_read(d->h, DATA, in, sizeof(in));
	CU_ASSERT_EQUAL(memcmp(in, out, sizeof(out)), 0);
	CU_ASSERT_EQUAL(used_len(d, 1), 4097);
	/* an untouched sector reads the original pattern */
	CU_ASSERT_EQUAL(request(d, T_IN, 100, 512, true), 0);
	hx_mem_read(d->h, DATA, in, 512);
	file_read(d, 100 * 512, file, 512);
	CU_ASSERT_EQUAL(memcmp(in, file, 512), 0);
	drv_free(d);
}

static void test_flush_and_get_id(void)
{
	struct drv *d = drv_new();
	char id[20];

	drv_init(d, ~0ull);
	CU_ASSERT_EQUAL(request(d, T_FLUSH, 0, 0, false), 0);
	memset(id, 'x', sizeof(id));
	hx_mem_write(d->h, DATA, id, sizeof(id));
	CU_ASSERT_EQUAL(request(d, T_GET_ID, 0, 20, true), 0);
	hx_mem_read(d->h, DATA, id, sizeof(id));
	CU_ASSERT_EQUAL(memcmp(id, "modvm-serial-0001\0\0\0", 20), 0);
	/* a GET_ID buffer in the wrong direction (readable) is an IOERR-free
	 * request with no room: the device writes nothing but the status */
	CU_ASSERT_EQUAL(request(d, T_GET_ID, 0, 20, false), 0);
	drv_free(d);
}

static void test_discard_and_write_zeroes(void)
{
	struct drv *d = drv_new();
	uint8_t seg[16] = { 0 }, file[2048];
	uint64_t sector = 8;
	uint32_t count = 4, flags = 0;

	drv_init(d, ~0ull);
	memcpy(seg, &sector, 8);
	memcpy(seg + 8, &count, 4);
	memcpy(seg + 12, &flags, 4);
	hx_mem_write(d->h, DATA, seg, 16);
	CU_ASSERT_EQUAL(request(d, T_WZ, 0, 16, false), 0);
	file_read(d, 8 * 512, file, sizeof(file));
	for (size_t i = 0; i < sizeof(file); i++)
		if (file[i]) {
			CU_FAIL("write zeroes left data");
			break;
		}
	/* the sector after is untouched */
	file_read(d, 12 * 512, file, 1);
	CU_ASSERT_EQUAL(file[0], (uint8_t)(12 + 12 * 512));
	CU_ASSERT_EQUAL(request(d, T_DISCARD, 0, 16, false), 0);
	/* the unmap flag is not defined for discard */
	flags = 1;
	memcpy(seg + 12, &flags, 4);
	hx_mem_write(d->h, DATA, seg, 16);
	CU_ASSERT_EQUAL(request(d, T_DISCARD, 0, 16, false), 2);
	CU_ASSERT_EQUAL(request(d, T_WZ, 0, 16, false), 0);
	/* beyond the disk */
	sector = DISK_BYTES / 512 - 2;
	flags = 0;
	memcpy(seg, &sector, 8);
	memcpy(seg + 12, &flags, 4);
	hx_mem_write(d->h, DATA, seg, 16);
	CU_ASSERT_EQUAL(request(d, T_WZ, 0, 16, false), 1);
	/* two segments: max_write_zeroes_seg is 1 */
	CU_ASSERT_EQUAL(request(d, T_WZ, 0, 32, false), 1);
	drv_free(d);
}

static void test_bad_requests(void)
{
	struct drv *d = drv_new();

	drv_init(d, ~0ull);
	/* past the end, straddling the end, partial sector, unknown type */
	CU_ASSERT_EQUAL(request(d, T_IN, DISK_BYTES / 512, 512, true), 1);
	CU_ASSERT_EQUAL(request(d, T_OUT, DISK_BYTES / 512 - 1, 1024, false), 1);
	CU_ASSERT_EQUAL(request(d, T_IN, ~0ull, 512, true), 1);
	CU_ASSERT_EQUAL(request(d, T_IN, 0, 100, true), 1);
	CU_ASSERT_EQUAL(request(d, 99, 0, 512, true), 2);
	/* the last sector is fine */
	CU_ASSERT_EQUAL(request(d, T_IN, DISK_BYTES / 512 - 1, 512, true), 0);
	CU_ASSERT_FALSE(status(d) & MODVM_VIRTIO_CONFIG_S_NEEDS_RESET);
	drv_free(d);
}

static void test_read_only(void)
{
	struct drv *d = drv_new_with("queue-size=16", "readonly=true");
	uint8_t before[512], after[512];

	CU_ASSERT(dev_features(d) >> 5 & 1); /* VIRTIO_BLK_F_RO */
	CU_ASSERT_FALSE(dev_features(d) >> 13 & 1); /* no discard */
	drv_init(d, ~0ull);
	file_read(d, 0, before, sizeof(before));
	memset(after, 0x5A, sizeof(after));
	hx_mem_write(d->h, DATA, after, sizeof(after));
	CU_ASSERT_EQUAL(request(d, T_OUT, 0, 512, false), 1);
	file_read(d, 0, after, sizeof(after));
	CU_ASSERT_EQUAL(memcmp(before, after, sizeof(after)), 0);
	CU_ASSERT_EQUAL(request(d, T_IN, 0, 512, true), 0);
	CU_ASSERT_EQUAL(request(d, T_DISCARD, 0, 16, false), 2);
	drv_free(d);
}

static void test_write_through(void)
{
	struct drv *d = drv_new_with("queue-size=16", "flush=false");
	uint8_t out[512], file[512];

	CU_ASSERT_FALSE(dev_features(d) >> 9 & 1);
	drv_init(d, ~0ull);
	memset(out, 0xC3, sizeof(out));
	hx_mem_write(d->h, DATA, out, sizeof(out));
	CU_ASSERT_EQUAL(request(d, T_OUT, 3, 512, false), 0);
	file_read(d, 3 * 512, file, sizeof(file));
	CU_ASSERT_EQUAL(memcmp(file, out, sizeof(out)), 0);
	CU_ASSERT_EQUAL(request(d, T_FLUSH, 0, 0, false), 2);
	drv_free(d);
}

static void test_size_max(void)
{
	struct drv *d = drv_new_with("queue-size=16", "size-max=64K");

	CU_ASSERT(dev_features(d) >> 1 & 1);
	CU_ASSERT_EQUAL(hx_mmio_read(d->h, d->device + 8, 4), 65536);
	drv_free(d);
}

/* Eight requests at once: each its own header, data and status; they run
 * on the backend's workers and complete in any order. */
static void submit_many(struct drv *d, unsigned n, uint32_t type)
{
	for (unsigned r = 0; r < n; r++) {
		uint8_t hdr[16] = { 0 }, st = 0xAA, data[4096];
		uint64_t sector = 64 + 8 * r;
		memcpy(hdr, &type, 4);
		memcpy(hdr + 8, &sector, 8);
		memset(data, 0x10 + r, sizeof(data));
		hx_mem_write(d->h, HDR + 16 * r, hdr, 16);
		hx_mem_write(d->h, STATUS + r, &st, 1);
		hx_mem_write(d->h, DATA + 4096 * r, data, sizeof(data));
		desc_put(d, DESC, 3 * r, HDR + 16 * r, 16, F_NEXT, (uint16_t)(3 * r + 1));
		desc_put(d, DESC, 3 * r + 1, DATA + 4096 * r, 4096,
			 F_NEXT | (type == T_IN ? F_WRITE : 0), (uint16_t)(3 * r + 2));
		desc_put(d, DESC, 3 * r + 2, STATUS + r, 1, F_WRITE, 0);
		put16(d, AVAIL + 4 + 2 * ((d->avail_idx + r) % QSIZE), (uint16_t)(3 * r));
	}
	d->avail_idx = (uint16_t)(d->avail_idx + n);
	put16(d, AVAIL + 2, d->avail_idx);
	hx_mmio_write(d->h, d->notify, 0, 2);
}

static void test_many_in_flight(void)
{
	struct drv *d = drv_new_with("queue-size=32", NULL);
	uint8_t st[5], file[4096];

	drv_init(d, ~0ull);
	submit_many(d, 5, T_OUT);
	for (int i = 0; i < 200 && mem16(d, USED + 2) != 5; i++)
		hx_poll(d->h, 10);
	CU_ASSERT_EQUAL(mem16(d, USED + 2), 5);
	hx_mem_read(d->h, STATUS, st, sizeof(st));
	for (unsigned r = 0; r < 5; r++) {
		CU_ASSERT_EQUAL(st[r], 0);
		file_read(d, (64 + 8 * r) * 512ull, file, sizeof(file));
		CU_ASSERT_EQUAL(file[0], 0x10 + r);
		CU_ASSERT_EQUAL(file[4095], 0x10 + r);
	}
	drv_free(d);
}

/* A reset with requests in flight finishes them first, then forgets the
 * queue: nothing completes into a queue the driver no longer owns. */
static void test_reset_in_flight(void)
{
	struct drv *d = drv_new();
	uint8_t file[4096];

	drv_init(d, ~0ull);
	submit_many(d, 4, T_OUT);
	cc_wr(d, CC_STATUS, 0, 1);
	CU_ASSERT_EQUAL(status(d), 0);
	CU_ASSERT_EQUAL(mem16(d, USED + 2), 4);
	for (int i = 0; i < 5; i++)
		hx_poll(d->h, 5);
	CU_ASSERT_EQUAL(mem16(d, USED + 2), 4);
	file_read(d, (64 + 8 * 3) * 512ull, file, sizeof(file));
	CU_ASSERT_EQUAL(file[100], 0x13);
	/* and the device works again after a new initialisation */
	drv_init(d, ~0ull);
	CU_ASSERT_EQUAL(request(d, T_FLUSH, 0, 0, false), 0);
	drv_free(d);
}

/* Saving the state drains the disk completely: with write-through a
 * write's completion submits a flush, which must be done too, so every
 * request is in the used ring when the state is taken. */
static void test_save_drains_write_through(void)
{
	struct drv *d = drv_new_with("queue-size=32", "flush=false");
	uint8_t st[4];
	size_t len;

	drv_init(d, ~0ull);
	submit_many(d, 4, T_OUT);
	free(hx_state_save(d->h, NULL, &len));
	CU_ASSERT_EQUAL(mem16(d, USED + 2), 4);
	hx_mem_read(d->h, STATUS, st, sizeof(st));
	for (unsigned r = 0; r < 4; r++)
		CU_ASSERT_EQUAL(st[r], 0);
	drv_free(d);
}

/* ---- interrupts ---------------------------------------------------------- */

static void test_intx_and_isr(void)
{
	struct drv *d = drv_new();

	drv_init(d, ~0ull);
	CU_ASSERT_EQUAL(hx_irq_level(d->h, GSI), 0);
	CU_ASSERT_EQUAL(request(d, T_FLUSH, 0, 0, false), 0);
	CU_ASSERT_EQUAL(hx_irq_level(d->h, GSI), 1);
	CU_ASSERT_EQUAL(hx_mmio_read(d->h, d->isr, 1), 1);   /* queue interrupt */
	CU_ASSERT_EQUAL(hx_irq_level(d->h, GSI), 0);         /* read clears */
	CU_ASSERT_EQUAL(hx_mmio_read(d->h, d->isr, 1), 0);
	/* VIRTQ_AVAIL_F_NO_INTERRUPT without event index */
	drv_init(d, ~(1ull << MODVM_VIRTIO_F_RING_EVENT_IDX));
	put16(d, AVAIL, 1);
	CU_ASSERT_EQUAL(request(d, T_FLUSH, 0, 0, false), 0);
	CU_ASSERT_EQUAL(hx_irq_level(d->h, GSI), 0);
	put16(d, AVAIL, 0);
	CU_ASSERT_EQUAL(request(d, T_FLUSH, 0, 0, false), 0);
	CU_ASSERT_EQUAL(hx_irq_level(d->h, GSI), 1);
	drv_free(d);
}

static void test_msix(void)
{
	struct drv *d = drv_new();
	uint64_t addr;
	uint32_t data;

	drv_init(d, ~0ull);
	msix_setup(d);
	CU_ASSERT_EQUAL(request(d, T_FLUSH, 0, 0, false), 0);
	CU_ASSERT_EQUAL(hx_msi_count(d->h), 1);
	hx_msi_last(d->h, &addr, &data);
	CU_ASSERT_EQUAL(addr, 0xFEE00000);
	CU_ASSERT_EQUAL(data, 0x41);
	CU_ASSERT_EQUAL(hx_irq_level(d->h, GSI), 0);
	drv_free(d);
}

/* 2.6.7.2: with event index the driver asks for an interrupt only when
 * the used index passes used_event. */
static void test_event_idx(void)
{
	struct drv *d = drv_new();

	drv_init(d, ~0ull);
	msix_setup(d);
	CU_ASSERT_EQUAL(request(d, T_FLUSH, 0, 0, false), 0); /* first: always */
	CU_ASSERT_EQUAL(hx_msi_count(d->h), 1);
	put16(d, AVAIL + 4 + 2 * QSIZE, 2);   /* used_event: after entry 3 */
	CU_ASSERT_EQUAL(request(d, T_FLUSH, 0, 0, false), 0);
	CU_ASSERT_EQUAL(hx_msi_count(d->h), 1);
	CU_ASSERT_EQUAL(request(d, T_FLUSH, 0, 0, false), 0);
	CU_ASSERT_EQUAL(hx_msi_count(d->h), 2);
	/* and the device asks to be notified at the next avail entry */
	CU_ASSERT_EQUAL(mem16(d, USED + 4 + 8 * QSIZE), 3);
	drv_free(d);
}

/* ---- hostile descriptors ------------------------------------------------- */

static void expect_broken(struct drv *d)
{
	uint8_t st = 0xAA;

	hx_mem_write(d->h, STATUS, &st, 1);
	kick(d, 0);
	hx_poll(d->h, 20);
	CU_ASSERT(status(d) & MODVM_VIRTIO_CONFIG_S_NEEDS_RESET);
	CU_ASSERT_EQUAL(mem16(d, USED + 2), d->used_seen);
	/* config change interrupt through MSI-X vector 0 */
	uint64_t addr;
	uint32_t data;
	hx_msi_last(d->h, &addr, &data);
	CU_ASSERT_EQUAL(data, 0x40);
	/* further notifies do nothing */
	hx_mmio_write(d->h, d->notify, 0, 2);
	CU_ASSERT_EQUAL(mem16(d, USED + 2), d->used_seen);
	/* a reset brings it back */
	drv_init(d, ~0ull);
	msix_setup(d);
	CU_ASSERT_FALSE(status(d) & MODVM_VIRTIO_CONFIG_S_NEEDS_RESET);
	CU_ASSERT_EQUAL(request(d, T_FLUSH, 0, 0, false), 0);
}

static struct drv *hostile_new(void)
{
	struct drv *d = drv_new();
	uint8_t hdr[16] = { T_FLUSH };

	drv_init(d, ~0ull);
	msix_setup(d);
	hx_mem_write(d->h, HDR, hdr, 16);
	return d;
}

static void test_hostile_loop(void)
{
	struct drv *d = hostile_new();

	desc_put(d, DESC, 0, HDR, 16, F_NEXT, 1);
	desc_put(d, DESC, 1, HDR, 16, F_NEXT, 2);
	desc_put(d, DESC, 2, HDR, 16, F_NEXT, 0);
	expect_broken(d);
	drv_free(d);
}

static void test_hostile_addresses(void)
{
	static const uint64_t addrs[] = { 0x1000000 - 8, 0x1000000, 0xC0000000,
					  0xFFFFFFFFFFFFFFF0ull };
	for (unsigned i = 0; i < MODVM_COUNTOF(addrs); i++) {
		struct drv *d = hostile_new();
		desc_put(d, DESC, 0, HDR, 16, F_NEXT, 1);
		desc_put(d, DESC, 1, addrs[i], 16, F_WRITE, 0);
		expect_broken(d);
		drv_free(d);
	}
}

static void test_hostile_lengths(void)
{
	static const uint32_t lens[] = { 0, 0xFFFFFFFFu, 0x1000000 };
	for (unsigned i = 0; i < MODVM_COUNTOF(lens); i++) {
		struct drv *d = hostile_new();
		desc_put(d, DESC, 0, HDR, 16, F_NEXT, 1);
		desc_put(d, DESC, 1, DATA, lens[i], F_NEXT | F_WRITE, 2);
		desc_put(d, DESC, 2, STATUS, 1, F_WRITE, 0);
		expect_broken(d);
		drv_free(d);
	}
}

static void test_hostile_direction(void)
{
	struct drv *d = hostile_new();

	/* readable after writable */
	desc_put(d, DESC, 0, STATUS, 1, F_WRITE | F_NEXT, 1);
	desc_put(d, DESC, 1, HDR, 16, 0, 0);
	expect_broken(d);
	/* a request with no status byte at all cannot be answered */
	desc_put(d, DESC, 0, HDR, 16, 0, 0);
	expect_broken(d);
	drv_free(d);
}

static void test_hostile_indices(void)
{
	struct drv *d = hostile_new();

	/* NEXT beyond the table */
	desc_put(d, DESC, 0, HDR, 16, F_NEXT, QSIZE);
	expect_broken(d);
	/* head beyond the table */
	kick(d, QSIZE + 3);
	hx_poll(d->h, 10);
	CU_ASSERT(status(d) & MODVM_VIRTIO_CONFIG_S_NEEDS_RESET);
	drv_init(d, ~0ull);
	msix_setup(d);
	/* avail idx jumping by more than the queue size */
	put16(d, AVAIL + 2, QSIZE + 5);
	hx_mmio_write(d->h, d->notify, 0, 2);
	CU_ASSERT(status(d) & MODVM_VIRTIO_CONFIG_S_NEEDS_RESET);
	drv_free(d);
}

static void test_hostile_indirect(void)
{
	struct drv *d = hostile_new();

	/* a good indirect request first */
	desc_put(d, INDIRECT, 0, HDR, 16, F_NEXT, 1);
	desc_put(d, INDIRECT, 1, STATUS, 1, F_WRITE, 0);
	desc_put(d, DESC, 0, INDIRECT, 32, F_INDIRECT, 0);
	CU_ASSERT_EQUAL((kick(d, 0), wait_used(d)), true);
	/* indirect inside indirect */
	desc_put(d, INDIRECT, 0, INDIRECT + 0x100, 32, F_INDIRECT, 0);
	expect_broken(d);
	/* length not a multiple of 16, zero length, beyond RAM */
	desc_put(d, INDIRECT, 0, HDR, 16, F_NEXT, 1);
	desc_put(d, DESC, 0, INDIRECT, 24, F_INDIRECT, 0);
	expect_broken(d);
	desc_put(d, DESC, 0, INDIRECT, 0, F_INDIRECT, 0);
	expect_broken(d);
	desc_put(d, DESC, 0, 0xFFFFF0, 32, F_INDIRECT, 0);
	expect_broken(d);
	/* INDIRECT together with NEXT */
	desc_put(d, DESC, 0, INDIRECT, 32, F_INDIRECT | F_NEXT, 1);
	expect_broken(d);
	/* NEXT beyond the indirect table */
	desc_put(d, INDIRECT, 1, STATUS, 1, F_WRITE | F_NEXT, 2);
	desc_put(d, DESC, 0, INDIRECT, 32, F_INDIRECT, 0);
	expect_broken(d);
	/* a loop inside an indirect table */
	desc_put(d, INDIRECT, 1, STATUS, 1, F_WRITE | F_NEXT, 0);
	desc_put(d, DESC, 0, INDIRECT, 32, F_INDIRECT, 0);
	expect_broken(d);
	/* longer than the queue: QSIZE + 1 entries */
	for (unsigned i = 0; i <= QSIZE; i++)
		desc_put(d, INDIRECT, i, HDR, 16, F_NEXT, (uint16_t)(i + 1));
	desc_put(d, DESC, 0, INDIRECT, 16 * (QSIZE + 1), F_INDIRECT, 0);
	expect_broken(d);
	drv_free(d);
}

static void test_hostile_rings(void)
{
	struct drv *d = drv_new();

	/* rings outside RAM or misaligned: enabling fails into NEEDS_RESET */
	cc_wr(d, CC_STATUS, 0, 1);
	cc_wr(d, CC_STATUS, 3, 1);
	set_features(d, 1ull << MODVM_VIRTIO_F_VERSION_1);
	cc_wr(d, CC_STATUS, 0x0B, 1);
	cc_wr(d, CC_QSELECT, 0, 2);
	cc_wr(d, CC_QDESC, 0xFFFFF000, 4);
	cc_wr(d, CC_QAVAIL, AVAIL, 4);
	cc_wr(d, CC_QUSED, USED, 4);
	cc_wr(d, CC_QENABLE, 1, 2);
	CU_ASSERT_EQUAL(cc_rd(d, CC_QENABLE, 2), 0);
	CU_ASSERT(status(d) & MODVM_VIRTIO_CONFIG_S_NEEDS_RESET);
	cc_wr(d, CC_STATUS, 0, 1);
	CU_ASSERT_EQUAL(status(d), 0);
	cc_wr(d, CC_STATUS, 3, 1);
	cc_wr(d, CC_QDESC, DESC + 8, 4);
	cc_wr(d, CC_QENABLE, 1, 2);
	CU_ASSERT_EQUAL(cc_rd(d, CC_QENABLE, 2), 0);
	CU_ASSERT(status(d) & MODVM_VIRTIO_CONFIG_S_NEEDS_RESET);
	/* odd-sized accesses to the common config are dropped */
	cc_wr(d, CC_STATUS, 0, 1);
	cc_wr(d, CC_QSELECT, 0x00FF0000, 4);
	CU_ASSERT_EQUAL(cc_rd(d, CC_QSELECT, 2), 0);
	for (unsigned off = 0; off < 0x40; off++)
		hx_mmio_write(d->h, d->common + off, 0xFFFFFFFF, 1);
	hx_mmio_write(d->h, d->notify + 0x100, 0, 4);
	hx_mmio_write(d->h, d->device + 0xFFC, 0, 8);
	drv_free(d);
}

/* ---- reset and state ------------------------------------------------------ */

static void test_reset(void)
{
	struct drv *d = drv_new();

	drv_init(d, ~0ull);
	cc_wr(d, CC_QSELECT, 0, 2);
	CU_ASSERT_EQUAL(cc_rd(d, CC_QENABLE, 2), 1);
	cc_wr(d, CC_STATUS, 0, 1);
	CU_ASSERT_EQUAL(status(d), 0);
	CU_ASSERT_EQUAL(cc_rd(d, CC_QENABLE, 2), 0);
	CU_ASSERT_EQUAL(cc_rd(d, CC_QSIZE, 2), 16);
	CU_ASSERT_EQUAL(cc_rd(d, CC_QDESC, 4), 0);
	CU_ASSERT_EQUAL(cc_rd(d, CC_QMSIX, 2), MODVM_VIRTIO_NO_VECTOR);
	cc_wr(d, CC_GFSELECT, 0, 4);
	CU_ASSERT_EQUAL(cc_rd(d, CC_GF, 4), 0);
	/* platform reset too */
	drv_init(d, ~0ull);
	hx_reset(d->h);
	CU_ASSERT_EQUAL(status(d), 0);
	drv_free(d);
}

static void test_state_round_trip(void)
{
	struct drv *a = drv_new(), *b = drv_new();
	size_t len;
	void *st;
	uint8_t guest[0x40000];

	drv_init(a, ~0ull);
	msix_setup(a);
	CU_ASSERT_EQUAL(request(a, T_FLUSH, 0, 0, false), 0);
	CU_ASSERT_EQUAL(request(a, T_FLUSH, 0, 0, false), 0);
	st = hx_state_save(a->h, NULL, &len);
	/* guest memory goes with the snapshot too */
	hx_mem_read(a->h, 0, guest, sizeof(guest));
	hx_mem_write(b->h, 0, guest, sizeof(guest));
	CU_ASSERT_EQUAL_FATAL(hx_state_load(b->h, NULL, st, len), 0);
	b->avail_idx = a->avail_idx;
	b->used_seen = a->used_seen;
	CU_ASSERT_EQUAL(status(b), 0x0F);
	cc_wr(b, CC_QSELECT, 0, 2);
	CU_ASSERT_EQUAL(cc_rd(b, CC_QENABLE, 2), 1);
	CU_ASSERT_EQUAL(cc_rd(b, CC_QMSIX, 2), 1);
	CU_ASSERT_EQUAL(cc_rd(b, CC_QDESC, 4), DESC);
	/* the queue continues where a left off, into b's own disk */
	put16(b, AVAIL + 4 + 2 * QSIZE, 2);   /* used_event: the next one */
	unsigned before = hx_msi_count(b->h);
	CU_ASSERT_EQUAL(request(b, T_GET_ID, 0, 20, true), 0);
	CU_ASSERT_EQUAL(mem16(b, USED + 2), 3);
	CU_ASSERT_EQUAL(hx_msi_count(b->h), before + 1);
	free(st);

	/* a stream with a queue outside RAM is refused and b stays usable */
	/* virtio-blk's instance starts with its header, then its transport
	 * state and queue */
	struct { struct modvm_dev dev; struct modvm_virtio_state vs; struct modvm_virtio_queue_state q[1]; }
		*vs = hx_device(a->h, "disk0");
	vs->q[0].desc = 0x7FFFFFF000ull;
	st = hx_state_save(a->h, NULL, &len);
	CU_ASSERT_EQUAL(hx_state_load(b->h, NULL, st, len), -1);
	CU_ASSERT_EQUAL(status(b), 0);
	drv_init(b, ~0ull);
	CU_ASSERT_EQUAL(request(b, T_FLUSH, 0, 0, false), 0);
	free(st);
	drv_free(a);
	drv_free(b);
}

/* ---- backend errors ------------------------------------------------------- */

static int sh_quiet(const char *fmt, const char *arg)
{
	char cmd[256];
	int rc;

	snprintf(cmd, sizeof(cmd), fmt, arg);
	strncat(cmd, " 2>/dev/null", sizeof(cmd) - strlen(cmd) - 1);
	rc = system(cmd);
	return rc == 0 ? 0 : -1;
}

static void test_open_errors(void)
{
	struct hx *h = hx_new(0);

	CU_ASSERT_EQUAL_FATAL(hx_add(h, "pci-host", "pci", NULL), 0);
	CU_ASSERT_EQUAL(hx_add(h, "virtio-blk", "d1", "backend=raw",
			       "path=/nonexistent/disk.img", NULL), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(h), "no such file"));
	CU_ASSERT_EQUAL(hx_add(h, "virtio-blk", "d2", "backend=raw", "path=/tmp", NULL), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(h), "is a directory"));
	CU_ASSERT_EQUAL(hx_add(h, "virtio-blk", "d3", "backend=nosuch", "path=/tmp/x", NULL), -1);
	CU_ASSERT_EQUAL(hx_add(h, "virtio-blk", "d4", "backend=raw", NULL), -1);
	CU_ASSERT_EQUAL(hx_add(h, "virtio-blk", "d5", "backend=raw", "path=/tmp/x",
			       "serial=012345678901234567890", NULL), -1);
	if (geteuid() == 0) {
		/* root ignores modes, not the immutable attribute (EPERM) */
		char path[] = "/tmp/modvm-vblk-imm-XXXXXX";
		int fd = mkstemp(path);
		char prop[64];
		close(fd);
		snprintf(prop, sizeof(prop), "path=%s", path);
		if (sh_quiet("chattr +i %s", path) == 0) {
			CU_ASSERT_EQUAL(hx_add(h, "virtio-blk", "d7", "backend=raw", prop, NULL), -1);
			CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(h), "permission denied"));
			CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(h), "readonly = true"));
			sh_quiet("chattr -i %s", path);
		}
		unlink(path);
	} else {
		char path[] = "/tmp/modvm-vblk-perm-XXXXXX";
		int fd = mkstemp(path);
		char prop[64];
		close(fd);
		chmod(path, 0);
		snprintf(prop, sizeof(prop), "path=%s", path);
		CU_ASSERT_EQUAL(hx_add(h, "virtio-blk", "d6", "backend=raw", prop, NULL), -1);
		CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(h), "permission denied"));
		unlink(path);
	}
	hx_free(h);
}

int main(void)
{
	static const struct test_case tests[] = {
		TEST(test_pci_identity),
		TEST(test_feature_negotiation),
		TEST(test_queue_setup_rules),
		TEST(test_pci_cfg_window),
		TEST(test_write_then_read),
		TEST(test_flush_and_get_id),
		TEST(test_discard_and_write_zeroes),
		TEST(test_bad_requests),
		TEST(test_read_only),
		TEST(test_write_through),
		TEST(test_size_max),
		TEST(test_many_in_flight),
		TEST(test_reset_in_flight),
		TEST(test_save_drains_write_through),
		TEST(test_intx_and_isr),
		TEST(test_msix),
		TEST(test_event_idx),
		TEST(test_hostile_loop),
		TEST(test_hostile_addresses),
		TEST(test_hostile_lengths),
		TEST(test_hostile_direction),
		TEST(test_hostile_indices),
		TEST(test_hostile_indirect),
		TEST(test_hostile_rings),
		TEST(test_reset),
		TEST(test_state_round_trip),
		TEST(test_open_errors),
	};

	return RUN_TESTS("virtio-blk", tests);
}
