/* diskio: sequential 1 MiB and random 4 KiB writes and reads with O_DIRECT
 * at queue depth 1, for bench/disk/disk-bench.sh. The same source runs on the
 * host and, built with -static, inside the Linux test guest (/bin/diskio).
 *   diskio PATH SIZE_MIB RANDOM_OPS
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SEQ_BS (1u << 20)
#define RAND_BS 4096u

struct job {
	int fd;
	const char *path;
	uint64_t size;
	long rand_ops;
	unsigned char *buf;
	uint64_t rng;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* xorshift64: the same offsets and data on every run and every machine. */
static uint64_t next(struct job *j)
{
	j->rng ^= j->rng << 13;
	j->rng ^= j->rng >> 7;
	j->rng ^= j->rng << 17;
	return j->rng;
}

static void report(const char *name, uint64_t bytes, long ops, double secs)
{
	printf("diskio: %-10s %8.1f MB/s %9.0f IOPS %7.3f s %ld ops of %llu KiB\n",
	       name, bytes / secs / 1e6, ops / secs, secs, ops,
	       (unsigned long long)(bytes / ops / 1024));
	fflush(stdout);
}

/* One transfer of len bytes at off; a short transfer is an error too. */
static int xfer(struct job *j, int write, uint64_t off, size_t len)
{
	ssize_t n = write ? pwrite(j->fd, j->buf, len, off) : pread(j->fd, j->buf, len, off);

	if (n == (ssize_t)len)
		return 0;
	fprintf(stderr, "diskio: %s %s at %llu: %s\n", write ? "pwrite" : "pread", j->path,
		(unsigned long long)off, n < 0 ? strerror(errno) : "short transfer");
	return -1;
}

/* Writes include the final fdatasync, so a write cache cannot hide them. */
static int finish(struct job *j, int write)
{
	if (!write || fdatasync(j->fd) == 0)
		return 0;
	fprintf(stderr, "diskio: fdatasync %s: %s\n", j->path, strerror(errno));
	return -1;
}

static int sequential(struct job *j, int write)
{
	long ops = j->size / SEQ_BS;
	double t0 = now();

	for (long i = 0; i < ops; i++) {
		j->buf[0] = (unsigned char)i;
		if (xfer(j, write, (uint64_t)i * SEQ_BS, SEQ_BS))
			return -1;
	}
	if (finish(j, write))
		return -1;
	report(write ? "seq-write" : "seq-read", (uint64_t)ops * SEQ_BS, ops, now() - t0);
	return 0;
}

static int random_io(struct job *j, int write)
{
	uint64_t blocks = j->size / RAND_BS;
	double t0 = now();

	j->rng = 0x9e3779b97f4a7c15ull;
	for (long i = 0; i < j->rand_ops; i++) {
		uint64_t off = next(j) % blocks * RAND_BS;

		j->buf[0] = (unsigned char)i;
		if (xfer(j, write, off, RAND_BS))
			return -1;
	}
	if (finish(j, write))
		return -1;
	report(write ? "rand-write" : "rand-read", (uint64_t)j->rand_ops * RAND_BS,
	       j->rand_ops, now() - t0);
	return 0;
}

static int run(struct job *j)
{
	if (sequential(j, 1) || sequential(j, 0))
		return -1;
	if (random_io(j, 1) || random_io(j, 0))
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	struct job j = { .rng = 1 };
	int rc = 1;

	if (argc != 4 || atol(argv[2]) <= 0 || atol(argv[3]) <= 0) {
		fprintf(stderr, "usage: diskio PATH SIZE_MIB RANDOM_OPS\n");
		return 2;
	}
	j.path = argv[1];
	j.size = (uint64_t)atol(argv[2]) << 20;
	j.rand_ops = atol(argv[3]);
	/* O_DIRECT wants the buffer, offsets and lengths aligned to the
	 * logical block size; 4096 covers every device. */
	if (posix_memalign((void **)&j.buf, 4096, SEQ_BS)) {
		fprintf(stderr, "diskio: out of memory\n");
		return 1;
	}
	for (size_t i = 0; i < SEQ_BS; i++)
		j.buf[i] = (unsigned char)next(&j);
	j.fd = open(j.path, O_RDWR | O_DIRECT | O_CLOEXEC);
	if (j.fd < 0) {
		fprintf(stderr, "diskio: open %s with O_DIRECT: %s%s\n", j.path, strerror(errno),
			errno == EINVAL ? " (tmpfs has no O_DIRECT: use a disk-backed folder)" : "");
		goto out;
	}
	printf("diskio: %s, %llu MiB, %ld random ops, O_DIRECT, queue depth 1\n", j.path,
	       (unsigned long long)(j.size >> 20), j.rand_ops);
	rc = run(&j) ? 1 : 0;
	close(j.fd);
out:
	free(j.buf);
	return rc;
}
