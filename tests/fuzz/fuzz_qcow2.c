/* Fuzz target for block-qcow2's image parser and table walks: the input is
 * a whole qcow2 image (in a memfd); it is opened read-only and read all
 * over, then opened writable and written, discarded and zeroed. Nothing may
 * crash, hang or touch memory it should not; errors are fine. The plugin's
 * sources are compiled in, so no plugin loading is needed. */
#include <stdio.h>
#include <sys/mman.h>

#include "../../plugins/disk/block-qcow2/qcow2_open.c"
#include "../../plugins/disk/block-qcow2/qcow2_meta.c"
#include "../../plugins/disk/block-qcow2/qcow2.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_INPUT (4u << 20)

static void read_some(struct qcow2 *s)
{
	static uint8_t buf[65536];
	uint64_t len = s->top->size, step = len / 7 + 1;
	struct iovec v = { buf, sizeof(buf) };

	for (uint64_t off = 0, n = 0; off < len && n < 16; off += step, n++) {
		v.iov_len = len - off < sizeof(buf) ? (size_t)(len - off) : sizeof(buf);
		q_preadv(s, &v, 1, off);
	}
}

static void write_some(struct qcow2 *s)
{
	static uint8_t buf[8192];
	uint64_t len = s->top->size;
	struct iovec v = { buf, 0 };

	memset(buf, 0xA5, sizeof(buf));
	for (uint64_t off = 0, n = 0; off < len && n < 4; off += len / 3 + 1, n++) {
		v.iov_len = len - off < sizeof(buf) ? (size_t)(len - off) : sizeof(buf);
		q_pwritev(s, &v, 1, off);
		q_discard(s, off, v.iov_len);
		q_write_zeroes(s, off, v.iov_len / 2);
	}
	q_preadv(s, &v, 1, 0);
}

static void run(const char *path, bool writable)
{
	struct qcow2 s = { .readonly = !writable };
	char err[600] = "";

	pthread_mutex_init(&s.alloc, NULL);
	s.top = qimg_open(path, writable, 65536, err, sizeof(err));
	if (s.top && s.top->size <= (1ull << 40)) {
		read_some(&s);
		if (writable)
			write_some(&s);
	}
	qimg_free(s.top);
	pthread_mutex_destroy(&s.alloc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64];
	int fd;

	if (size > FUZZ_MAX_INPUT)
		return 0;
	fd = memfd_create("fuzz-qcow2", MFD_CLOEXEC);
	if (fd < 0)
		return 0;
	if (write(fd, data, size) == (ssize_t)size) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		run(path, false);
		run(path, true);
	}
	close(fd);
	return 0;
}
