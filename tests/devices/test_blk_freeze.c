/* Freezing disks at a snapshot (docs/snapshot-format.md, "Disks"): the
 * core's block layer moves a virtio-blk front end onto a new qcow2 overlay
 * over its image while the guest keeps writing; the image stays byte for
 * byte what it was, and a failed freeze changes nothing. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <modvm/virtio.h>

#include "harness.h"
#include "testmain.h"
#include "test_virtio_drv.h"

static char dir[64];

static void make_dir(void)
{
	snprintf(dir, sizeof(dir), "/tmp/modvm-freeze-XXXXXX");
	CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
}

static void remove_dir(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CU_ASSERT_EQUAL(system(cmd), 0);
}

/* A raw image of DISK_BYTES, every sector filled with its number. */
static void make_raw(const char *path)
{
	uint8_t *buf = malloc(DISK_BYTES);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	CU_ASSERT_FATAL(fd >= 0);
	for (size_t i = 0; i < DISK_BYTES; i++)
		buf[i] = (uint8_t)(i / 512);
	CU_ASSERT_EQUAL(write(fd, buf, DISK_BYTES), DISK_BYTES);
	close(fd);
	free(buf);
}

static uint8_t *slurp_file(const char *path, size_t *n)
{
	struct stat st;
	int fd = open(path, O_RDONLY);
	uint8_t *buf;

	if (fd < 0 || fstat(fd, &st))
		return NULL;
	buf = malloc((size_t)st.st_size + 1);
	*n = (size_t)read(fd, buf, (size_t)st.st_size);
	close(fd);
	return buf;
}

static bool same_file(const char *path, const uint8_t *want, size_t n)
{
	size_t got_n = 0;
	uint8_t *got = slurp_file(path, &got_n);
	bool same = got && got_n == n && !memcmp(got, want, n);

	free(got);
	return same;
}

/* Write one sector of `fill` through the device, the guest's way. */
static uint8_t write_sector(struct drv *d, uint64_t sector, uint8_t fill)
{
	uint8_t buf[512];

	memset(buf, fill, sizeof(buf));
	hx_mem_write(d->h, DATA, buf, sizeof(buf));
	return request(d, T_OUT, sector, 512, false);
}

/* Read one sector through the device; its first byte, or -1. */
static int read_sector(struct drv *d, uint64_t sector)
{
	uint8_t buf[512];

	if (request(d, T_IN, sector, 512, true) != 0)
		return -1;
	hx_mem_read(d->h, DATA, buf, sizeof(buf));
	for (size_t i = 1; i < sizeof(buf); i++)
		if (buf[i] != buf[0])
			return -1;
	return buf[0];
}

/* The machine of the disk under test, and a resume to set up in it. */
static struct hx *cur;
static const char *resume_base, *resume_overlay;

static void before_add(struct hx *h)
{
	cur = h;
	if (resume_base)
		hx_resume_on(cur, "disk0", resume_base, "raw", resume_overlay);
	resume_base = resume_overlay = NULL;
}

static const struct hx_disk *disk0(struct hx_disk *d)
{
	return hx_disk(cur, "disk0", d) ? NULL : d;
}

/* qemu-img (a reference tool, never part of modvm) finds no error. */
static void qemu_img_check(const char *path)
{
	char cmd[512];

	if (system("command -v qemu-img >/dev/null 2>&1")) {
		fprintf(stderr, "qemu-img not installed: %s not cross-checked\n", path);
		return;
	}
	snprintf(cmd, sizeof(cmd), "qemu-img check -q '%s'", path);
	CU_ASSERT_EQUAL(system(cmd), 0);
}

static struct drv *attach(const char *path, const char *backend)
{
	struct drv *d = drv_attach(path, backend, NULL, NULL);

	CU_ASSERT_EQUAL_FATAL(d->added, 0);
	drv_init(d, 0);
	return d;
}

static void test_freeze_raw(void)
{
	char base[128], ov1[160], ov2[200];
	struct hx_disk bd;
	const struct hx_disk *b;
	uint8_t *frozen;
	size_t n;

	make_dir();
	snprintf(base, sizeof(base), "%s/disk.img", dir);
	snprintf(ov1, sizeof(ov1), "%s.s1.qcow2", base);
	snprintf(ov2, sizeof(ov2), "%s.s2.qcow2", ov1);
	make_raw(base);
	struct drv *d = attach(base, "raw");
	CU_ASSERT_EQUAL(write_sector(d, 0, 0xA1), 0);
	/* the image as the snapshot sees it */
	frozen = slurp_file(base, &n);
	CU_ASSERT_FATAL(frozen && n == DISK_BYTES);
	CU_ASSERT_EQUAL(frozen[0], 0xA1);

	if (hx_freeze_prepare(cur, "s1"))
		fprintf(stderr, "freeze: %s\n", hx_error(cur));
	CU_ASSERT_FATAL(access(ov1, F_OK) == 0);
	b = disk0(&bd);
	CU_ASSERT_FATAL(b != NULL);
	CU_ASSERT_STRING_EQUAL(b->path, base);
	CU_ASSERT_STRING_EQUAL(b->overlay, ov1);
	CU_ASSERT_STRING_EQUAL(b->format, "raw");
	hx_freeze_commit(cur);
	b = disk0(&bd);
	CU_ASSERT_STRING_EQUAL(b->path, ov1);
	CU_ASSERT_STRING_EQUAL(b->format, "qcow2");
	CU_ASSERT(b->on_overlay);
	CU_ASSERT_PTR_NULL(b->overlay);

	/* the guest keeps writing: into the overlay, the image stays */
	CU_ASSERT_EQUAL(write_sector(d, 1, 0xB2), 0);
	CU_ASSERT_EQUAL(write_sector(d, 0, 0xC3), 0);
	CU_ASSERT_EQUAL(read_sector(d, 1), 0xB2);
	CU_ASSERT_EQUAL(read_sector(d, 0), 0xC3);
	CU_ASSERT_EQUAL(read_sector(d, 2), 2);  /* from the frozen image */
	CU_ASSERT(same_file(base, frozen, n));

	/* a second snapshot freezes the overlay in turn (qcow2 backing) */
	CU_ASSERT_EQUAL(hx_freeze_prepare(cur, "s2"), 0);
	hx_freeze_commit(cur);
	CU_ASSERT_STRING_EQUAL(disk0(&bd)->path, ov2);
	CU_ASSERT_EQUAL(write_sector(d, 3, 0xD4), 0);
	CU_ASSERT_EQUAL(read_sector(d, 3), 0xD4);
	CU_ASSERT_EQUAL(read_sector(d, 1), 0xB2); /* through s1's overlay */
	CU_ASSERT_EQUAL(read_sector(d, 4), 4);    /* through the image */
	CU_ASSERT(same_file(base, frozen, n));
	drv_free(d);

	qemu_img_check(ov1);
	qemu_img_check(ov2);
	CU_ASSERT(same_file(base, frozen, n));
	free(frozen);
	remove_dir();
}

/* A freeze that cannot make its overlay changes nothing: the VM goes on
 * writing its image, and nobody's file is touched. */
static void test_freeze_fails(void)
{
	char base[128], ov[160];
	struct hx_disk bd;
	int fd;

	make_dir();
	snprintf(base, sizeof(base), "%s/disk.img", dir);
	snprintf(ov, sizeof(ov), "%s.s1.qcow2", base);
	make_raw(base);
	fd = open(ov, O_WRONLY | O_CREAT, 0644);
	CU_ASSERT_EQUAL(write(fd, "mine", 4), 4);
	close(fd);
	struct drv *d = attach(base, "raw");

	CU_ASSERT_EQUAL(hx_freeze_prepare(cur, "s1"), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(cur), "exists already"));
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(cur), "device disk0"));
	CU_ASSERT(same_file(ov, (const uint8_t *)"mine", 4));
	CU_ASSERT_STRING_EQUAL(disk0(&bd)->path, base);
	CU_ASSERT_PTR_NULL(disk0(&bd)->overlay);
	CU_ASSERT_FALSE(disk0(&bd)->on_overlay);
	CU_ASSERT_EQUAL(write_sector(d, 5, 0xE5), 0);
	uint8_t byte = 0;
	fd = open(base, O_RDONLY);
	CU_ASSERT_EQUAL(pread(fd, &byte, 1, 5 * 512), 1);
	close(fd);
	CU_ASSERT_EQUAL(byte, 0xE5);

	/* a freeze after the failure works, under another name */
	CU_ASSERT_EQUAL(hx_freeze_prepare(cur, "s2"), 0);
	hx_freeze_abort(cur);
	snprintf(ov, sizeof(ov), "%s.s2.qcow2", base);
	CU_ASSERT(access(ov, F_OK) != 0); /* abort deletes the overlay */
	CU_ASSERT_STRING_EQUAL(disk0(&bd)->path, base);
	drv_free(d);
	remove_dir();
}

/* A write the guest queued just before the snapshot lands in the image
 * (the freeze drains it first), never half in each file. */
static void test_freeze_inflight(void)
{
	uint8_t hdr[16] = { 0 }, buf[512], st = 0xAA, byte = 0;
	uint32_t type = T_OUT;
	uint64_t sector = 7;
	char base[128];
	int fd;

	make_dir();
	snprintf(base, sizeof(base), "%s/disk.img", dir);
	make_raw(base);
	struct drv *d = attach(base, "raw");
	memcpy(hdr, &type, 4);
	memcpy(hdr + 8, &sector, 8);
	memset(buf, 0x77, sizeof(buf));
	hx_mem_write(d->h, HDR, hdr, 16);
	hx_mem_write(d->h, DATA, buf, sizeof(buf));
	hx_mem_write(d->h, STATUS, &st, 1);
	desc_put(d, DESC, 0, HDR, 16, F_NEXT, 1);
	desc_put(d, DESC, 1, DATA, 512, F_NEXT, 2);
	desc_put(d, DESC, 2, STATUS, 1, F_WRITE, 0);
	kick(d, 0); /* submitted; not waited for */
	CU_ASSERT_EQUAL(hx_freeze_prepare(cur, "s1"), 0);
	/* drained: complete, and in the image that is about to freeze */
	CU_ASSERT_NOT_EQUAL(mem16(d, USED + 2), 0);
	hx_mem_read(d->h, STATUS, &st, 1);
	CU_ASSERT_EQUAL(st, 0);
	fd = open(base, O_RDONLY);
	CU_ASSERT_EQUAL(pread(fd, &byte, 1, 7 * 512), 1);
	close(fd);
	CU_ASSERT_EQUAL(byte, 0x77);
	hx_freeze_commit(cur);
	d->used_seen = mem16(d, USED + 2);
	CU_ASSERT_EQUAL(read_sector(d, 7), 0x77);
	drv_free(d);
	remove_dir();
}

/* modvm resume: the front end starts on a new overlay over the frozen
 * image instead of the image its config names. */
static void test_resume_on_overlay(void)
{
	char base[128], ov[160];
	struct hx_disk bd;
	uint8_t *frozen;
	size_t n;

	make_dir();
	snprintf(base, sizeof(base), "%s/disk.img", dir);
	snprintf(ov, sizeof(ov), "%s.s1-resume1.qcow2", base);
	make_raw(base);
	frozen = slurp_file(base, &n);
	resume_base = base;
	resume_overlay = ov;
	struct drv *d = attach(base, "raw");
	CU_ASSERT_STRING_EQUAL(disk0(&bd)->path, ov);
	CU_ASSERT(disk0(&bd)->on_overlay);
	CU_ASSERT_EQUAL(hx_mmio_read(d->h, d->device, 8), DISK_BYTES / 512);
	CU_ASSERT_EQUAL(read_sector(d, 9), 9);
	CU_ASSERT_EQUAL(write_sector(d, 9, 0x99), 0);
	CU_ASSERT_EQUAL(read_sector(d, 9), 0x99);
	CU_ASSERT_EQUAL(read_sector(d, 10), 10);
	CU_ASSERT(same_file(base, frozen, n));
	drv_free(d);
	qemu_img_check(ov);
	free(frozen);
	remove_dir();
}

/* A read-only disk cannot change: it is recorded, never frozen. */
static void test_readonly_not_frozen(void)
{
	char base[128];
	struct hx_disk bd;

	make_dir();
	snprintf(base, sizeof(base), "%s/disk.img", dir);
	make_raw(base);
	struct drv *d = drv_attach(base, "raw", "readonly=true", NULL);
	CU_ASSERT_EQUAL_FATAL(d->added, 0);
	CU_ASSERT_EQUAL(hx_freeze_prepare(cur, "s1"), 0);
	CU_ASSERT_PTR_NULL(disk0(&bd)->overlay);
	hx_freeze_commit(cur);
	CU_ASSERT_STRING_EQUAL(disk0(&bd)->path, base);
	drv_free(d);
	remove_dir();
}

int main(void)
{
	static const struct test_case cases[] = {
		TEST(test_freeze_raw),
		TEST(test_freeze_fails),
		TEST(test_freeze_inflight),
		TEST(test_readonly_not_frozen),
		TEST(test_resume_on_overlay),
	};

	drv_before_add = before_add;
	return RUN_TESTS("blk-freeze", cases);
}
