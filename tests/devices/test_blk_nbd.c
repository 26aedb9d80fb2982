/* The block-nbd backend behind virtio-blk, against a real NBD server
 * (qemu-nbd, else nbdkit's file plugin) on a unix socket in a temp dir:
 * reads and writes reach the image file, flush, discard and write-zeroes,
 * read-only exports, a server killed mid-run (I/O errors, no crash, no
 * hang), servers that cannot flush (nbdkit eval), and open errors that
 * name the URI and what to do. */
#include <signal.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#include "test_virtio_drv.h"

static char dir[64], sock[128], img[128];
static bool use_qemu_nbd, have_nbdkit;
static pid_t server = -1;

static bool have(const char *tool)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "%s --version >/dev/null 2>&1", tool);
	return system(cmd) == 0;
}

static void sleep_ms(long ms)
{
	struct timespec t = { ms / 1000, (ms % 1000) * 1000000 };

	nanosleep(&t, NULL);
}

static void stop_server(void);

/* Run argv in the background; wait until the socket exists. A server a
 * failed test left running goes first. */
static void start(char *const argv[])
{
	stop_server();
	unlink(sock);
	fflush(NULL);
	server = fork();
	CU_ASSERT_FATAL(server >= 0);
	if (server == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		dup2(null, 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	for (int i = 0; i < 500 && access(sock, F_OK); i++)
		sleep_ms(10);
	CU_ASSERT_EQUAL_FATAL(access(sock, F_OK), 0);
}

/* The raw image `img` exported on `sock` (read-only if ro), under export
 * name `name` ("" = the default). */
static void start_server(bool ro, const char *name)
{
	if (use_qemu_nbd) {
		char *argv[] = { "qemu-nbd", "-t", "-k", sock, "-f", "raw", "-x",
				 (char *)name, img, ro ? "-r" : NULL, NULL };
		start(argv);
	} else {
		char *argv[] = { "nbdkit", "-f", "-U", sock, "-e", (char *)name,
				 "file", img, ro ? "-r" : NULL, NULL };
		start(argv);
	}
}

static void stop_server(void)
{
	if (server <= 0)
		return;
	kill(server, SIGKILL);
	waitpid(server, NULL, 0);
	server = -1;
	unlink(sock);
}

static void make_image(void)
{
	uint8_t *buf = malloc(DISK_BYTES);
	FILE *f = fopen(img, "wb");

	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	for (size_t i = 0; i < DISK_BYTES; i++)
		buf[i] = (uint8_t)(i / 512 + i);
	CU_ASSERT_EQUAL(fwrite(buf, 1, DISK_BYTES, f), DISK_BYTES);
	fclose(f);
	free(buf);
}

/* virtio-blk with backend nbd at `uri`; d->path is the image for
 * file_read. */
static struct drv *attach(const char *uri, const char *extra)
{
	struct drv *d = calloc(1, sizeof(*d));

	d->h = hx_new(0);
	snprintf(d->path, sizeof(d->path), "%s", img);
	CU_ASSERT_EQUAL_FATAL(hx_add(d->h, "pci-host", "pci", NULL), 0);
	d->added = hx_add(d->h, "virtio-blk", "disk0", "backend=nbd",
			  hx_prop("uri", uri), "slot=4", "queue-size=16", extra, NULL);
	if (d->added) {
		fprintf(stderr, "open error: %s\n", hx_error(d->h));
		return d;
	}
	cfg_wr(d->h, MODVM_PCI_COMMAND, cfg_rd(d->h, MODVM_PCI_COMMAND, 2) | 6, 2);
	find_caps(d);
	return d;
}

static const char *unix_uri(const char *name)
{
	static char uri[256];

	snprintf(uri, sizeof(uri), "nbd+unix:///%s?socket=%s", name, sock);
	return uri;
}

static void range_seg(struct drv *d, uint64_t sector, uint32_t count)
{
	uint8_t seg[16] = { 0 };

	memcpy(seg, &sector, 8);
	memcpy(seg + 8, &count, 4);
	hx_mem_write(d->h, DATA, seg, 16);
}

static bool all_zero(const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

/* ---- tests ------------------------------------------------------------ */

static void test_read_write_flush(void)
{
	uint8_t out[65536], in[65536], file[65536];
	struct drv *d;

	make_image();
	start_server(false, "");
	d = attach(unix_uri(""), NULL);
	CU_ASSERT_EQUAL_FATAL(d->added, 0);
	CU_ASSERT_EQUAL(hx_mmio_read(d->h, d->device, 8), DISK_BYTES / 512);
	CU_ASSERT(dev_features(d) >> 9 & 1);    /* FLUSH */
	CU_ASSERT_FALSE(dev_features(d) >> 5 & 1); /* not read-only */
	drv_init(d, ~0ull);
	/* what the server has */
	CU_ASSERT_EQUAL(request(d, T_IN, 3, 512, true), 0);
	hx_mem_read(d->h, DATA, in, 512);
	for (unsigned i = 0; i < 512; i++)
		if (in[i] != (uint8_t)(3 + 3 * 512 + i)) {
			CU_FAIL("read returned the wrong bytes");
			break;
		}
	/* a 64 KiB write, read back through the device and from the file */
	for (size_t i = 0; i < sizeof(out); i++)
		out[i] = (uint8_t)(i * 7 + 1);
	hx_mem_write(d->h, DATA, out, sizeof(out));
	CU_ASSERT_EQUAL(request(d, T_OUT, 100, sizeof(out), false), 0);
	memset(in, 0, sizeof(in));
	hx_mem_write(d->h, DATA, in, sizeof(in));
	CU_ASSERT_EQUAL(request(d, T_IN, 100, sizeof(in), true), 0);
	hx_mem_read(d->h, DATA, in, sizeof(in));
	CU_ASSERT_EQUAL(memcmp(in, out, sizeof(out)), 0);
	CU_ASSERT_EQUAL(request(d, T_FLUSH, 0, 0, false), 0);
	file_read(d, 100 * 512, file, sizeof(file));
	CU_ASSERT_EQUAL(memcmp(file, out, sizeof(out)), 0);
	/* the last sector */
	hx_mem_write(d->h, DATA, out, 512);
	CU_ASSERT_EQUAL(request(d, T_OUT, DISK_BYTES / 512 - 1, 512, false), 0);
	CU_ASSERT_EQUAL(request(d, T_FLUSH, 0, 0, false), 0);
	file_read(d, DISK_BYTES - 512, file, 512);
	CU_ASSERT_EQUAL(memcmp(file, out, 512), 0);
	drv_free(d);
	stop_server();
}

static void test_discard_write_zeroes(void)
{
	uint8_t in[4096], file[4096];
	struct drv *d;

	make_image();
	start_server(false, "");
	d = attach(unix_uri(""), NULL);
	CU_ASSERT_EQUAL_FATAL(d->added, 0);
	CU_ASSERT(dev_features(d) >> 13 & 1);   /* DISCARD */
	CU_ASSERT(dev_features(d) >> 14 & 1);   /* WRITE_ZEROES */
	drv_init(d, ~0ull);
	range_seg(d, 40, 8);
	CU_ASSERT_EQUAL(request(d, T_WZ, 0, 16, false), 0);
	CU_ASSERT_EQUAL(request(d, T_IN, 40, 4096, true), 0);
	hx_mem_read(d->h, DATA, in, sizeof(in));
	CU_ASSERT(all_zero(in, sizeof(in)));
	CU_ASSERT_EQUAL(request(d, T_FLUSH, 0, 0, false), 0);
	file_read(d, 40 * 512, file, sizeof(file));
	CU_ASSERT(all_zero(file, sizeof(file)));
	/* neighbours untouched */
	file_read(d, 48 * 512, file, 1);
	CU_ASSERT_EQUAL(file[0], (uint8_t)(48 + 48 * 512));
	file_read(d, 39 * 512 + 511, file, 1);
	CU_ASSERT_EQUAL(file[0], (uint8_t)(39 + 39 * 512 + 511));
	/* discard is accepted; the range may read back as anything */
	range_seg(d, 64, 16);
	CU_ASSERT_EQUAL(request(d, T_DISCARD, 0, 16, false), 0);
	drv_free(d);
	stop_server();
}

static void test_read_only(void)
{
	uint8_t before[512], after[512];
	struct drv *d;

	make_image();
	start_server(true, "");
	/* a read-only export needs readonly = true: say so */
	d = attach(unix_uri(""), NULL);
	CU_ASSERT_NOT_EQUAL(d->added, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(d->h), "read-only"));
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(d->h), "readonly = true"));
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(d->h), sock));
	drv_free(d);
	d = attach(unix_uri(""), "readonly=true");
	CU_ASSERT_EQUAL_FATAL(d->added, 0);
	CU_ASSERT(dev_features(d) >> 5 & 1);    /* VIRTIO_BLK_F_RO */
	CU_ASSERT_FALSE(dev_features(d) >> 13 & 1);
	drv_init(d, ~0ull);
	file_read(d, 0, before, sizeof(before));
	memset(after, 0x5A, sizeof(after));
	hx_mem_write(d->h, DATA, after, sizeof(after));
	CU_ASSERT_EQUAL(request(d, T_OUT, 0, 512, false), 1);  /* IOERR */
	CU_ASSERT_EQUAL(request(d, T_IN, 0, 512, true), 0);
	hx_mem_read(d->h, DATA, after, sizeof(after));
	CU_ASSERT_EQUAL(memcmp(before, after, sizeof(after)), 0);
	CU_ASSERT_EQUAL(request(d, T_FLUSH, 0, 0, false), 0);
	file_read(d, 0, after, sizeof(after));
	CU_ASSERT_EQUAL(memcmp(before, after, sizeof(after)), 0);
	drv_free(d);
	stop_server();
}

/* The server dies under the guest: requests complete with IOERR, none
 * hangs, and the machine goes away cleanly. */
static void test_server_killed(void)
{
	uint8_t buf[4096];
	struct drv *d;

	make_image();
	start_server(false, "");
	d = attach(unix_uri(""), NULL);
	CU_ASSERT_EQUAL_FATAL(d->added, 0);
	drv_init(d, ~0ull);
	memset(buf, 0x11, sizeof(buf));
	hx_mem_write(d->h, DATA, buf, sizeof(buf));
	CU_ASSERT_EQUAL(request(d, T_OUT, 8, sizeof(buf), false), 0);
	stop_server();
	CU_ASSERT_EQUAL(request(d, T_IN, 8, sizeof(buf), true), 1);
	CU_ASSERT_EQUAL(request(d, T_OUT, 8, sizeof(buf), false), 1);
	CU_ASSERT_EQUAL(request(d, T_FLUSH, 0, 0, false), 1);
	range_seg(d, 0, 8);
	CU_ASSERT_EQUAL(request(d, T_WZ, 0, 16, false), 1);
	/* still answering, still errors */
	CU_ASSERT_EQUAL(request(d, T_IN, 0, 512, true), 1);
	hx_reset(d->h);
	drv_free(d);
}

/* A request in flight when the server dies completes too. */
static void test_server_killed_in_flight(void)
{
	struct drv *d;
	uint8_t st = 0xAA;

	make_image();
	start_server(false, "");
	d = attach(unix_uri(""), NULL);
	CU_ASSERT_EQUAL_FATAL(d->added, 0);
	drv_init(d, ~0ull);
	kill(server, SIGSTOP);            /* the request waits on the server */
	{
		/* kill() only queues the stop: on a busy host the server
		 * could still answer what comes next */
		int ws = 0;
		CU_ASSERT_EQUAL_FATAL(waitpid(server, &ws, WUNTRACED), server);
		CU_ASSERT_FATAL(WIFSTOPPED(ws));
	}
	hx_mem_write(d->h, STATUS, &st, 1);
	{
		uint8_t hdr[16] = { 0 };
		uint32_t type = T_IN;
		memcpy(hdr, &type, 4);
		hx_mem_write(d->h, HDR, hdr, 16);
		desc_put(d, DESC, 0, HDR, 16, F_NEXT, 1);
		desc_put(d, DESC, 1, DATA, 4096, F_NEXT | F_WRITE, 2);
		desc_put(d, DESC, 2, STATUS, 1, F_WRITE, 0);
		kick(d, 0);
	}
	hx_poll(d->h, 50);
	CU_ASSERT_EQUAL(mem16(d, USED + 2), 0);  /* not answered yet */
	stop_server();                    /* SIGKILL works on a stopped process */
	CU_ASSERT(wait_used(d));
	hx_mem_read(d->h, STATUS, &st, 1);
	CU_ASSERT_EQUAL(st, 1);
	drv_free(d);
}

static void expect_open_error(const char *uri, const char *extra,
			      const char *a, const char *b)
{
	struct drv *d = attach(uri, extra);

	CU_ASSERT_NOT_EQUAL(d->added, 0);
	if (d->added) {
		CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(d->h), a));
		if (b)
			CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(d->h), b));
	}
	drv_free(d);
}

static void test_open_errors(void)
{
	char uri[256];

	/* no server on the socket */
	unlink(sock);
	expect_open_error(unix_uri(""), NULL, sock, "start the server");
	/* nothing on a TCP port (port 1 is never an NBD server here) */
	expect_open_error("nbd://127.0.0.1:1/", NULL, "nbd://127.0.0.1:1/",
			  "nothing listens");
	/* not an NBD URI */
	expect_open_error("http://example.invalid/disk", NULL, "http://", "nbd://");
	expect_open_error("", NULL, "uri is empty", NULL);
	/* a socket that accepts connections and never says a word */
	{
		struct sockaddr_un a = { .sun_family = AF_UNIX };
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);
		snprintf(a.sun_path, sizeof(a.sun_path), "%.100s", sock);
		CU_ASSERT_EQUAL_FATAL(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
		CU_ASSERT_EQUAL_FATAL(listen(fd, 4), 0);
		expect_open_error(unix_uri(""), "connect-timeout=1", sock, "no answer");
		close(fd);
		unlink(sock);
	}
	/* an export name the server does not have (nbdkit's file plugin
	 * serves any name) */
	make_image();
	start_server(false, "disk1");
	snprintf(uri, sizeof(uri), "%s", unix_uri("nosuch"));
	if (use_qemu_nbd)
		expect_open_error(uri, NULL, "nosuch", "check the name");
	/* the right name works */
	{
		struct drv *d = attach(unix_uri("disk1"), NULL);
		CU_ASSERT_EQUAL(d->added, 0);
		drv_free(d);
	}
	stop_server();
}

/* nbdkit's eval plugin as a server that cannot flush: writable opens are
 * refused unless FUA is offered or unsafe-no-flush accepts the risk. */
static void start_eval(const char *fua)
{
	char fua_arg[64];
	char *argv[] = { "nbdkit", "-f", "-U", sock, "eval",
			 "get_size=echo 1048576",
			 "pread=dd if=/dev/zero count=$3 iflag=count_bytes 2>/dev/null",
			 "pwrite=cat >/dev/null", "can_write=exit 0",
			 "can_flush=exit 3", fua_arg, NULL };

	snprintf(fua_arg, sizeof(fua_arg), "can_fua=echo %s", fua);
	start(argv);
}

static void test_server_without_flush(void)
{
	struct drv *d;

	start_eval("none");
	expect_open_error(unix_uri(""), NULL, "neither flush", "unsafe-no-flush = true");
	d = attach(unix_uri(""), "readonly=true");
	CU_ASSERT_EQUAL(d->added, 0);
	drv_free(d);
	d = attach(unix_uri(""), "unsafe-no-flush=true");
	CU_ASSERT_EQUAL_FATAL(d->added, 0);
	drv_init(d, ~0ull);
	CU_ASSERT_EQUAL(request(d, T_OUT, 0, 512, false), 0);
	CU_ASSERT_EQUAL(request(d, T_FLUSH, 0, 0, false), 0);
	drv_free(d);
	stop_server();
	/* FUA without flush: writable, writes carry FUA, flush answers OK */
	start_eval("native");
	d = attach(unix_uri(""), NULL);
	CU_ASSERT_EQUAL_FATAL(d->added, 0);
	drv_init(d, ~0ull);
	CU_ASSERT_EQUAL(request(d, T_OUT, 0, 512, false), 0);
	CU_ASSERT_EQUAL(request(d, T_FLUSH, 0, 0, false), 0);
	drv_free(d);
	stop_server();
}

/* A server that takes at most 4 KiB per command: the backend splits
 * bigger requests, also ones the guest spread over several descriptors. */
static void test_split_requests(void)
{
	uint8_t out[16384], in[16384], file[16384];
	char *argv[] = { "nbdkit", "-f", "-U", sock, "--filter=blocksize-policy",
			 "file", img, "blocksize-maximum=4096",
			 "blocksize-preferred=4096", "blocksize-error-policy=error",
			 NULL };
	uint8_t hdr[16] = { 0 }, st = 0xAA;
	uint32_t type = T_OUT;
	uint64_t sector = 200;
	struct drv *d;

	make_image();
	start(argv);
	d = attach(unix_uri(""), NULL);
	CU_ASSERT_EQUAL_FATAL(d->added, 0);
	drv_init(d, ~0ull);
	for (size_t i = 0; i < sizeof(out); i++)
		out[i] = (uint8_t)(i * 11 + 5);
	hx_mem_write(d->h, DATA, out, sizeof(out));
	CU_ASSERT_EQUAL(request(d, T_OUT, 8, sizeof(out), false), 0);
	/* three descriptors: 512 + 6144 + 1536 bytes */
	memcpy(hdr, &type, 4);
	memcpy(hdr + 8, &sector, 8);
	hx_mem_write(d->h, HDR, hdr, 16);
	hx_mem_write(d->h, STATUS, &st, 1);
	desc_put(d, DESC, 0, HDR, 16, F_NEXT, 1);
	desc_put(d, DESC, 1, DATA, 512, F_NEXT, 2);
	desc_put(d, DESC, 2, DATA + 0x1000, 6144, F_NEXT, 3);
	desc_put(d, DESC, 3, DATA + 0x3000, 1536, F_NEXT, 4);
	desc_put(d, DESC, 4, STATUS, 1, F_WRITE, 0);
	kick(d, 0);
	CU_ASSERT_FATAL(wait_used(d));
	hx_mem_read(d->h, STATUS, &st, 1);
	CU_ASSERT_EQUAL(st, 0);
	CU_ASSERT_EQUAL(request(d, T_FLUSH, 0, 0, false), 0);
	file_read(d, 8 * 512, file, sizeof(file));
	CU_ASSERT_EQUAL(memcmp(file, out, sizeof(out)), 0);
	file_read(d, 200 * 512, file, 8192);
	CU_ASSERT_EQUAL(memcmp(file, out, 512), 0);
	CU_ASSERT_EQUAL(memcmp(file + 512, out + 0x1000, 6144), 0);
	CU_ASSERT_EQUAL(memcmp(file + 6656, out + 0x3000, 1536), 0);
	/* and a 16 KiB read in 4 KiB commands */
	memset(in, 0, sizeof(in));
	hx_mem_write(d->h, DATA, in, sizeof(in));
	CU_ASSERT_EQUAL(request(d, T_IN, 8, sizeof(in), true), 0);
	hx_mem_read(d->h, DATA, in, sizeof(in));
	CU_ASSERT_EQUAL(memcmp(in, out, sizeof(out)), 0);
	drv_free(d);
	stop_server();
}

static void cleanup(void)
{
	stop_server();
	if (!dir[0])
		return;
	unlink(img);
	unlink(sock);
	rmdir(dir);
	dir[0] = 0;
}

int main(void)
{
	/* Against each server that is installed. */
	static const struct test_case per_server[] = {
		TEST(test_read_write_flush),
		TEST(test_discard_write_zeroes),
		TEST(test_read_only),
		TEST(test_server_killed),
		TEST(test_server_killed_in_flight),
		TEST(test_open_errors),
	};
	static const struct test_case nbdkit_only[] = {
		TEST(test_server_without_flush),
		TEST(test_split_requests),
	};
	bool qemu = have("qemu-nbd");
	int rc = 0;

	signal(SIGPIPE, SIG_IGN);
	have_nbdkit = have("nbdkit");
	if (!qemu && !have_nbdkit) {
		printf("SKIP: neither qemu-nbd nor nbdkit is installed "
		       "(apt-get install qemu-utils or nbdkit)\n");
		return 77;
	}
	snprintf(dir, sizeof(dir), "/tmp/modvm-nbd-XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(sock, sizeof(sock), "%s/nbd.sock", dir);
	atexit(cleanup);
	snprintf(img, sizeof(img), "%s/disk.img", dir);
	if (qemu) {
		use_qemu_nbd = true;
		rc |= RUN_TESTS("block-nbd with qemu-nbd", per_server);
	}
	if (have_nbdkit) {
		use_qemu_nbd = false;
		rc |= RUN_TESTS("block-nbd with nbdkit", per_server);
		rc |= RUN_TESTS("block-nbd, nbdkit only", nbdkit_only);
	} else {
		fprintf(stderr, "nbdkit not installed: its cases not run\n");
	}
	cleanup();
	return rc;
}
