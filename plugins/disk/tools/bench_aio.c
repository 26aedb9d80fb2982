/* Measurement behind docs/decisions-virtio.md: 4 KiB random reads at queue
 * depth 32 through (a) a pool of worker threads doing preadv with eventfd
 * completions, as plugins/disk/blockpool.c does, and (b) io_uring. Not part
 * of the build; run by hand:
 *   cc -O2 -o /tmp/bench_aio bench_aio.c -luring -lpthread
 *   /tmp/bench_aio /tmp/bench.img 268435456 200000 [direct]
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define QD 32
#define BS 4096

static int fd, efd;
static uint64_t fsize;
static long total;
static _Atomic long issued, completed;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static long queued;

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static uint64_t rnd_off(unsigned *seed)
{
	return (uint64_t)(rand_r(seed) % (int)(fsize / BS)) * BS;
}

static void *worker(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;
	void *buf;
	uint64_t one = 1;

	if (posix_memalign(&buf, 4096, BS))
		return NULL;
	for (;;) {
		pthread_mutex_lock(&lock);
		while (!queued && issued < total)
			pthread_cond_wait(&cond, &lock);
		if (!queued) {
			pthread_mutex_unlock(&lock);
			break;
		}
		queued--;
		pthread_mutex_unlock(&lock);
		if (pread(fd, buf, BS, (off_t)rnd_off(&seed)) != BS)
			perror("pread");
		if (write(efd, &one, 8) != 8)
			perror("eventfd");
	}
	free(buf);
	return NULL;
}

static double run_pool(int nthreads)
{
	pthread_t t[64];
	double t0 = now();
	uint64_t n;

	efd = eventfd(0, 0);
	issued = completed = queued = 0;
	for (int i = 0; i < nthreads; i++)
		pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1));
	/* keep QD requests outstanding, as the event loop would */
	pthread_mutex_lock(&lock);
	queued = QD;
	issued = QD;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
	while (completed < total) {
		if (read(efd, &n, 8) != 8)
			break;
		completed += (long)n;
		pthread_mutex_lock(&lock);
		long more = total - issued < (long)n ? total - issued : (long)n;
		queued += more;
		issued += more;
		pthread_cond_broadcast(&cond);
		pthread_mutex_unlock(&lock);
	}
	pthread_mutex_lock(&lock);
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
	for (int i = 0; i < nthreads; i++)
		pthread_join(t[i], NULL);
	close(efd);
	return now() - t0;
}

static double run_uring(void)
{
	struct io_uring ring;
	void *bufs;
	unsigned seed = 7;
	long inflight = 0, done = 0, sub = 0;
	double t0 = now();

	if (io_uring_queue_init(QD, &ring, 0) || posix_memalign(&bufs, 4096, QD * BS))
		return -1;
	while (done < total) {
		while (inflight < QD && sub < total) {
			struct io_uring_sqe *s = io_uring_get_sqe(&ring);
			io_uring_prep_read(s, fd, (char *)bufs + (sub % QD) * BS, BS, rnd_off(&seed));
			inflight++;
			sub++;
		}
		io_uring_submit(&ring);
		struct io_uring_cqe *c;
		if (io_uring_wait_cqe(&ring, &c))
			break;
		unsigned head, n = 0;
		io_uring_for_each_cqe(&ring, head, c) {
			if (c->res != BS)
				fprintf(stderr, "short read %d\n", c->res);
			n++;
		}
		io_uring_cq_advance(&ring, n);
		inflight -= n;
		done += n;
	}
	io_uring_queue_exit(&ring);
	free(bufs);
	return now() - t0;
}

int main(int argc, char **argv)
{
	if (argc < 4)
		return 2;
	fsize = strtoull(argv[2], NULL, 0);
	total = atol(argv[3]);
	fd = open(argv[1], O_RDONLY | (argc > 4 ? O_DIRECT : 0));
	if (fd < 0) {
		perror(argv[1]);
		return 1;
	}
	for (int r = 0; r < 2; r++) {
		double a = run_pool(1), b = run_pool(4), c = run_pool(8), u = run_uring();
		printf("%s: pool1 %.0f  pool4 %.0f  pool8 %.0f  io_uring %.0f  IOPS\n",
		       argc > 4 ? "O_DIRECT" : "cached", total / a, total / b, total / c, total / u);
	}
	return 0;
}
