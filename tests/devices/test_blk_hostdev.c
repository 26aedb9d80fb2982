/* Host block devices as guest disks (block-raw + hostdev.c), on a loop
 * device with a partition table: read-only by default, host-device-write
 * writes reach the device, and a partition (or its whole disk) is refused
 * while mounted (also through a bind mount) or used as swap, with a message
 * naming the mount point. Needs root and loop devices (else exit 77). */
#include <stdarg.h>
#include <sys/mount.h>
#include <sys/swap.h>
#include <sys/wait.h>

#include "test_virtio_drv.h"
#include "../../plugins/disk/hostdev.c"

#define IMG_MB     64
#define P1_START   2048u     /* sectors */
#define P_SECTORS  16384u    /* 8 MiB each */
#define P2_START   (P1_START + P_SECTORS)

static char dir[64], img[128], mnt[128], mnt2[128];
static char loopdev[64];     /* /dev/loopN */
static char p1[160], p2[160];
static bool mounted, bind_mounted, swap_on;
static char dm_name[64];     /* device-mapper target over p2, if made */

/* Undo everything, also after a failed assertion (atexit). */
static void cleanup(void)
{
	if (bind_mounted && umount(mnt2) == 0)
		bind_mounted = false;
	if (mounted && umount(mnt) == 0)
		mounted = false;
	if (swap_on && swapoff(p2) == 0)
		swap_on = false;
	if (dm_name[0]) {
		hx_sh("dmsetup remove %s 2>/dev/null", dm_name);
		dm_name[0] = 0;
	}
	if (loopdev[0]) {
		hx_sh("losetup -d %s 2>/dev/null", loopdev);
		loopdev[0] = 0;
	}
	if (dir[0]) {
		hx_sh("rm -rf %s", dir);
		dir[0] = 0;
	}
}

/* The node of partition n: /dev/loopNpn, made in our folder from sysfs if
 * udev/devtmpfs did not create it. */
static int part_node(int n, char *out, size_t len)
{
	const char *name = loopdev + 5;
	char sys[192];
	unsigned ma, mi;
	FILE *f;

	snprintf(out, len, "%sp%d", loopdev, n);
	if (!access(out, F_OK))
		return 0;
	snprintf(sys, sizeof(sys), "/sys/block/%s/%sp%d/dev", name, name, n);
	f = fopen(sys, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%u:%u", &ma, &mi) != 2) {
		fclose(f);
		return -1;
	}
	fclose(f);
	snprintf(out, len, "%s/%sp%d", dir, name, n);
	return mknod(out, S_IFBLK | 0600, makedev(ma, mi));
}

/* Sparse image, two partitions, attached with partition scanning. The
 * kernel may lack the partition-table parsers (minimal kernels): partx
 * then adds the partitions from user space. Returns a skip reason. */
static const char *setup(void)
{
	char sys[192], cmd[256];
	FILE *f;

	if (geteuid() != 0)
		return "needs root (loop devices, mount, swapon)";
	if (hx_sh("command -v losetup sfdisk >/dev/null"))
		return "losetup or sfdisk missing (util-linux, fdisk)";
	snprintf(dir, sizeof(dir), "/tmp/modvm-hostdev-XXXXXX");
	if (!mkdtemp(dir))
		return "mkdtemp failed";
	snprintf(img, sizeof(img), "%s/disk.img", dir);
	snprintf(mnt, sizeof(mnt), "%s/mnt", dir);
	snprintf(mnt2, sizeof(mnt2), "%s/bind", dir);
	if (mkdir(mnt, 0700) || mkdir(mnt2, 0700) ||
	    hx_sh("truncate -s %uM %s", IMG_MB, img) ||
	    hx_sh("printf 'label: dos\\nstart=%u, size=%u, type=83\\n"
	       "start=%u, size=%u, type=82\\n' | sfdisk -q %s",
	       P1_START, P_SECTORS, P2_START, P_SECTORS, img))
		return "cannot create the partitioned image";
	snprintf(cmd, sizeof(cmd), "losetup -P --show -f %s 2>/dev/null", img);
	f = popen(cmd, "r");
	if (!f || !fgets(loopdev, sizeof(loopdev), f)) {
		if (f)
			pclose(f);
		loopdev[0] = 0;
		return "no free loop device (losetup -f failed)";
	}
	pclose(f);
	loopdev[strcspn(loopdev, "\n")] = 0;
	snprintf(sys, sizeof(sys), "/sys/block/%s/%sp1", loopdev + 5, loopdev + 5);
	if (access(sys, F_OK))
		hx_sh("partx -a %s 2>/dev/null", loopdev);
	if (part_node(1, p1, sizeof(p1)) || part_node(2, p2, sizeof(p2)))
		return "the loop device's partitions did not appear";
	return NULL;
}

static void dev_write(const char *dev, uint64_t off, const void *buf, size_t len)
{
	int fd = open(dev, O_WRONLY);

	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
	CU_ASSERT_EQUAL(fsync(fd), 0);
	close(fd);
}

static void pattern(uint8_t *b, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(i * 3 + seed);
}

/* ---- tests ------------------------------------------------------------ */

static void test_default_read_only(void)
{
	uint8_t buf[4096], in[4096], now[4096];
	struct drv *d;

	pattern(buf, sizeof(buf), 1);
	dev_write(p1, 0, buf, sizeof(buf));
	d = drv_attach(p1, "raw", NULL, NULL);
	CU_ASSERT_EQUAL_FATAL(d->added, 0);
	CU_ASSERT_EQUAL(hx_mmio_read(d->h, d->device, 8), P_SECTORS);
	CU_ASSERT(dev_features(d) >> 5 & 1);          /* VIRTIO_BLK_F_RO */
	CU_ASSERT_FALSE(dev_features(d) >> 13 & 1);   /* no discard */
	drv_init(d, ~0ull);
	CU_ASSERT_EQUAL(request(d, T_IN, 0, sizeof(in), true), 0);
	hx_mem_read(d->h, DATA, in, sizeof(in));
	CU_ASSERT_EQUAL(memcmp(in, buf, sizeof(buf)), 0);
	memset(in, 0xEE, sizeof(in));
	hx_mem_write(d->h, DATA, in, sizeof(in));
	CU_ASSERT_EQUAL(request(d, T_OUT, 0, sizeof(in), false), 1);  /* IOERR */
	file_read(d, 0, now, sizeof(now));
	CU_ASSERT_EQUAL(memcmp(now, buf, sizeof(buf)), 0);
	/* read-only: a mount could still happen, we hold no claim */
	drv_free(d);
}

static void test_host_device_write(void)
{
	uint8_t out[4096], now[4096];
	struct drv *d;
	int fd;

	d = drv_attach(p1, "raw", "queue-size=16", "host-device-write=true");
	CU_ASSERT_EQUAL_FATAL(d->added, 0);
	CU_ASSERT_FALSE(dev_features(d) >> 5 & 1);
	drv_init(d, ~0ull);
	pattern(out, sizeof(out), 9);
	hx_mem_write(d->h, DATA, out, sizeof(out));
	CU_ASSERT_EQUAL(request(d, T_OUT, 5, sizeof(out), false), 0);
	CU_ASSERT_EQUAL(request(d, T_FLUSH, 0, 0, false), 0);
	file_read(d, 5 * 512, now, sizeof(now));           /* the partition */
	CU_ASSERT_EQUAL(memcmp(now, out, sizeof(out)), 0);
	fd = open(img, O_RDONLY);                          /* the image behind */
	CU_ASSERT_EQUAL(pread(fd, now, sizeof(now), (P1_START + 5) * 512ll),
			(ssize_t)sizeof(now));
	close(fd);
	CU_ASSERT_EQUAL(memcmp(now, out, sizeof(out)), 0);
	/* write-zeroes on a device */
	{
		uint8_t seg[16] = { 0 };
		uint64_t sector = 5;
		uint32_t count = 2;
		memcpy(seg, &sector, 8);
		memcpy(seg + 8, &count, 4);
		hx_mem_write(d->h, DATA, seg, 16);
		CU_ASSERT_EQUAL(request(d, T_WZ, 0, 16, false), 0);
		file_read(d, 5 * 512, now, 1024);
		for (int i = 0; i < 1024; i++)
			if (now[i]) {
				CU_FAIL("write-zeroes left data on the device");
				break;
			}
	}
	/* writable means claimed (O_EXCL): the host cannot mount it now */
	fd = open(p1, O_RDWR | O_EXCL);
	CU_ASSERT(fd < 0 && errno == EBUSY);
	if (fd >= 0)
		close(fd);
	drv_free(d);
	/* readonly = true wins over host-device-write */
	d = drv_attach(p1, "raw", "readonly=true", "host-device-write=true");
	CU_ASSERT_EQUAL_FATAL(d->added, 0);
	CU_ASSERT(dev_features(d) >> 5 & 1);
	drv_free(d);
}

static void expect_refused(const char *path, const char *extra,
			   const char *a, const char *b)
{
	struct drv *d = drv_attach(path, "raw", "queue-size=16", extra);

	CU_ASSERT_NOT_EQUAL(d->added, 0);
	if (d->added) {
		CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(d->h), path));
		CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(d->h), a));
		if (b)
			CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(d->h), b));
	}
	drv_free(d);
}

static void test_mounted_refused(void)
{
	char err[512], part[96];
	struct drv *d;

	/* root with loop devices can mount: a failure here is a failure */
	CU_ASSERT_EQUAL_FATAL(hx_sh("mkfs.ext2 -q -F %s >/dev/null 2>&1", p1), 0);
	if (mount(p1, mnt, "ext2", 0, NULL) && mount(p1, mnt, "ext4", 0, NULL)) {
		fprintf(stderr, "mount %s: %s\n", p1, strerror(errno));
		CU_FAIL_FATAL("cannot mount the test partition");
	}
	mounted = true;
	snprintf(part, sizeof(part), "its partition %sp1", loopdev + 5);
	/* the API, for other disk plugins */
	CU_ASSERT_EQUAL(hostdev_check_unused(p1, err, sizeof(err)), -EBUSY);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, mnt));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "umount"));
	/* the partition, read-only or writable */
	expect_refused(p1, NULL, "mounted on", mnt);
	expect_refused(p1, "host-device-write=true", "mounted on", mnt);
	expect_refused(p1, "readonly=true", "mounted on", mnt);
	/* its whole disk */
	expect_refused(loopdev, NULL, part, mnt);
	/* the other partition is free */
	CU_ASSERT_EQUAL(hostdev_check_unused(p2, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(err, "");
	/* only a bind mount left: still in use */
	CU_ASSERT_EQUAL_FATAL(mount(mnt, mnt2, "none", MS_BIND, NULL), 0);
	bind_mounted = true;
	CU_ASSERT_EQUAL(umount(mnt), 0);
	mounted = false;
	expect_refused(p1, NULL, "mounted on", mnt2);
	CU_ASSERT_EQUAL(umount(mnt2), 0);
	bind_mounted = false;
	/* free again */
	d = drv_attach(p1, "raw", NULL, NULL);
	CU_ASSERT_EQUAL(d->added, 0);
	drv_free(d);
}

static void test_swap_refused(void)
{
	char part[96];

	if (hx_sh("mkswap %s >/dev/null 2>&1", p2) || swapon(p2, 0)) {
		fprintf(stderr, "mkswap/swapon on %s failed (%s): swap case not run\n",
			p2, strerror(errno));
		return;
	}
	swap_on = true;
	snprintf(part, sizeof(part), "its partition %sp2", loopdev + 5);
	expect_refused(p2, NULL, "active swap", "swapoff");
	expect_refused(loopdev, "host-device-write=true", part, "swapoff");
	CU_ASSERT_EQUAL(swapoff(p2), 0);
	swap_on = false;
	{
		struct drv *d = drv_attach(loopdev, "raw", NULL, NULL);
		CU_ASSERT_EQUAL(d->added, 0);
		CU_ASSERT_EQUAL(hx_mmio_read(d->h, d->device, 8), IMG_MB * 2048u);
		drv_free(d);
	}
}

/* A device-mapper target on p2 makes p2 (and the disk) held. Kernels
 * without device-mapper cannot run this. */
static void test_holder_refused(void)
{
	struct stat st;
	char name[64];

	CU_ASSERT_EQUAL_FATAL(stat(p2, &st), 0);
	snprintf(name, sizeof(name), "modvm-hostdev-%d", (int)getpid());
	if (hx_sh("dmsetup create %s --table '0 %u linear %u:%u 0' >/dev/null 2>&1",
	       name, P_SECTORS, major(st.st_rdev), minor(st.st_rdev))) {
		CU_FAIL("dmsetup create failed although the kernel has device-mapper");
		return;
	}
	snprintf(dm_name, sizeof(dm_name), "%s", name);
	expect_refused(p2, NULL, "held by", name);
	expect_refused(loopdev, NULL, "held by", "dmsetup remove");
	hx_sh("dmsetup remove %s", dm_name);
	dm_name[0] = 0;
}

/* The "never change the partition" recipe: a qcow2 overlay whose backing
 * file is the partition takes the guest's writes; the partition stays as
 * it was, and a mounted partition is refused as a backing file too. */
static void test_qcow2_overlay(void)
{
	uint8_t before[4096], out[4096], now[4096];
	char ov[160];
	struct drv *d;

	snprintf(ov, sizeof(ov), "%s/overlay.qcow2", dir);
	CU_ASSERT_EQUAL_FATAL(hx_sh("qemu-img create -q -f qcow2 -F raw -b %s %s",
				 p1, ov), 0);
	{
		int fd = open(p1, O_RDONLY);
		CU_ASSERT_EQUAL(pread(fd, before, sizeof(before), 0), (ssize_t)sizeof(before));
		close(fd);
	}
	d = drv_attach(ov, "qcow2", NULL, NULL);
	CU_ASSERT_EQUAL_FATAL(d->added, 0);
	CU_ASSERT_FALSE(dev_features(d) >> 5 & 1);  /* the overlay is writable */
	CU_ASSERT_EQUAL(hx_mmio_read(d->h, d->device, 8), P_SECTORS);
	drv_init(d, ~0ull);
	pattern(out, sizeof(out), 77);
	hx_mem_write(d->h, DATA, out, sizeof(out));
	CU_ASSERT_EQUAL(request(d, T_OUT, 0, sizeof(out), false), 0);
	CU_ASSERT_EQUAL(request(d, T_FLUSH, 0, 0, false), 0);
	memset(now, 0, sizeof(now));
	hx_mem_write(d->h, DATA, now, sizeof(now));
	CU_ASSERT_EQUAL(request(d, T_IN, 0, sizeof(now), true), 0);
	hx_mem_read(d->h, DATA, now, sizeof(now));
	CU_ASSERT_EQUAL(memcmp(now, out, sizeof(out)), 0);
	drv_free(d);
	{
		int fd = open(p1, O_RDONLY);
		CU_ASSERT_EQUAL(pread(fd, now, sizeof(now), 0), (ssize_t)sizeof(now));
		close(fd);
	}
	CU_ASSERT_EQUAL(memcmp(now, before, sizeof(before)), 0);
	/* the config-only recipe of block.md: create the overlay at start */
	unlink(ov);
	d = calloc(1, sizeof(*d));
	d->h = hx_new(0);
	snprintf(d->path, sizeof(d->path), "%s", ov);
	CU_ASSERT_EQUAL_FATAL(hx_add(d->h, "pci-host", "pci", NULL), 0);
	d->added = hx_add(d->h, "virtio-blk", "disk0", "backend=qcow2",
			  hx_prop("path", ov), "slot=4", "queue-size=16", "create=true",
			  hx_prop("backing-file", p1), "backing-format=raw", NULL);
	if (d->added)
		fprintf(stderr, "create overlay: %s\n", hx_error(d->h));
	CU_ASSERT_EQUAL_FATAL(d->added, 0);
	cfg_wr(d->h, MODVM_PCI_COMMAND, cfg_rd(d->h, MODVM_PCI_COMMAND, 2) | 6, 2);
	find_caps(d);
	CU_ASSERT_EQUAL(hx_mmio_read(d->h, d->device, 8), P_SECTORS);
	drv_init(d, ~0ull);
	hx_mem_write(d->h, DATA, out, sizeof(out));
	CU_ASSERT_EQUAL(request(d, T_OUT, 8, sizeof(out), false), 0);
	CU_ASSERT_EQUAL(request(d, T_IN, 0, sizeof(now), true), 0);
	hx_mem_read(d->h, DATA, now, sizeof(now));
	CU_ASSERT_EQUAL(memcmp(now, before, sizeof(before)), 0);  /* from p1 */
	drv_free(d);
	CU_ASSERT_EQUAL(access(ov, F_OK), 0);
	{
		int fd = open(p1, O_RDONLY);
		CU_ASSERT_EQUAL(pread(fd, now, sizeof(now), 8 * 512), (ssize_t)sizeof(now));
		close(fd);
		CU_ASSERT_NOT_EQUAL(memcmp(now, out, sizeof(out)), 0);
	}
	/* mounted: the backing file is refused, naming the mount point */
	if (mount(p1, mnt, "ext2", 0, NULL) && mount(p1, mnt, "ext4", 0, NULL)) {
		CU_FAIL("cannot mount the test partition");
	} else {
		mounted = true;
		d = drv_attach(ov, "qcow2", NULL, NULL);
		CU_ASSERT_NOT_EQUAL(d->added, 0);
		if (d->added)
			CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(d->h), mnt));
		drv_free(d);
		CU_ASSERT_EQUAL(umount(mnt), 0);
		mounted = false;
	}
	unlink(ov);
}

/* Regular files, character devices and missing paths are not the
 * checks' business, and a raw file stays writable by default. */
static void test_not_block_devices(void)
{
	char err[256] = "x", file[160];
	struct drv *d;
	int fd;

	snprintf(file, sizeof(file), "%s/plain.img", dir);
	fd = open(file, O_CREAT | O_RDWR, 0600);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(ftruncate(fd, 1 << 20), 0);
	close(fd);
	CU_ASSERT_EQUAL(hostdev_check_unused(file, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(err, "");
	CU_ASSERT_EQUAL(hostdev_check_unused("/dev/null", err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(hostdev_check_unused("/nonexistent/x", err, sizeof(err)), 0);
	d = drv_attach(file, "raw", NULL, NULL);
	CU_ASSERT_EQUAL_FATAL(d->added, 0);
	CU_ASSERT_FALSE(dev_features(d) >> 5 & 1);
	drv_free(d);
	unlink(file);
}

int main(void)
{
	static const struct test_case tests[] = {
		TEST(test_default_read_only),
		TEST(test_host_device_write),
		TEST(test_mounted_refused),
		TEST(test_swap_refused),
		TEST(test_not_block_devices),
	};
	static const struct test_case qcow2_tests[] = {
		TEST(test_qcow2_overlay),
	};
	static const struct test_case dm_tests[] = {
		TEST(test_holder_refused),
	};
	const char *why;
	int rc;

	atexit(cleanup);
	why = setup();
	if (why) {
		printf("SKIP: %s\n", why);
		cleanup();
		return 77;
	}
	fprintf(stderr, "loop device %s, partitions %s %s\n", loopdev, p1, p2);
	rc = RUN_TESTS("block-raw host devices", tests);
	if (!hx_sh("qemu-img --version >/dev/null 2>&1"))
		rc |= RUN_TESTS("block-qcow2 overlay on a host partition", qcow2_tests);
	else
		fprintf(stderr, "qemu-img not installed: overlay case not run\n");
	if (!access("/sys/class/misc/device-mapper", F_OK))
		rc |= RUN_TESTS("block-raw host devices, device-mapper", dm_tests);
	else
		fprintf(stderr, "no /sys/class/misc/device-mapper (kernel without "
			"device-mapper): holder case not run\n");
	cleanup();
	return rc;
}
