/* The measurement behind block-nbd's design (not built): random 4 KiB
 * reads from one NBD export, done the ways a backend could do them:
 *   sync1   one connection, one request at a time (a worker pool sharing
 *           one handle: libnbd serialises calls on a handle)
 *   syncN   N connections, one thread each (a pool with a handle per
 *           worker; needs the server's multi-conn for flush semantics)
 *   aioQD   one connection, QD requests in flight (libnbd's aio API, what
 *           block-nbd does)
 * Build: cc -O2 -o bench_nbd bench_nbd.c $(pkg-config --cflags --libs libnbd) -lpthread
 * Run:   truncate -s 64M disk.img
 *        qemu-nbd -t -k /tmp/b.sock -f raw -x '' --shared=8 disk.img &
 *        ./bench_nbd 'nbd+unix:///?socket=/tmp/b.sock' 20000
 *        nbdkit -f -U /tmp/d.sock --filter=delay file disk.img rdelay=1ms &
 *        ./bench_nbd 'nbd+unix:///?socket=/tmp/d.sock' 2000 */
#include <libnbd.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define BS 4096

static const char *uri;
static long count;
static int64_t blocks;

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static struct nbd_handle *connect_one(void)
{
	struct nbd_handle *h = nbd_create();

	if (!h || nbd_connect_uri(h, uri) < 0) {
		fprintf(stderr, "%s\n", nbd_get_error());
		exit(1);
	}
	return h;
}

static void *sync_worker(void *arg)
{
	long n = (long)arg;
	struct nbd_handle *h = connect_one();
	char buf[BS];
	unsigned seed = (unsigned)n * 7919u + 1;

	for (long i = 0; i < n; i++)
		if (nbd_pread(h, buf, BS, (uint64_t)(rand_r(&seed) % blocks) * BS, 0) < 0)
			exit(2);
	nbd_close(h);
	return NULL;
}

static double run_sync(int conns)
{
	pthread_t t[16];
	double t0 = now();

	for (int i = 0; i < conns; i++)
		pthread_create(&t[i], NULL, sync_worker, (void *)(count / conns));
	for (int i = 0; i < conns; i++)
		pthread_join(t[i], NULL);
	return (double)count / (now() - t0);
}

static double run_aio(int qd)
{
	struct nbd_handle *h = connect_one();
	char *buf = malloc((size_t)qd * BS);
	unsigned seed = 1;
	long issued = 0;
	double t0 = now();

	while (issued < count || nbd_aio_in_flight(h) > 0) {
		while (issued < count && nbd_aio_in_flight(h) < qd) {
			if (nbd_aio_pread(h, buf + (issued % qd) * BS, BS,
					  (uint64_t)(rand_r(&seed) % blocks) * BS,
					  NBD_NULL_COMPLETION, 0) < 0)
				exit(3);
			issued++;
		}
		if (nbd_poll(h, -1) < 0)
			exit(4);
		while (nbd_aio_peek_command_completed(h) > 0)
			nbd_aio_command_completed(h, nbd_aio_peek_command_completed(h));
	}
	nbd_close(h);
	free(buf);
	return (double)count / (now() - t0);
}

int main(int argc, char **argv)
{
	struct nbd_handle *h;

	if (argc < 3)
		return 1;
	uri = argv[1];
	count = atol(argv[2]);
	h = connect_one();
	blocks = nbd_get_size(h) / BS;
	printf("multi-conn advertised: %d\n", nbd_can_multi_conn(h));
	nbd_close(h);
	double base = run_sync(1), s4 = run_sync(4);
	printf("sync1  %8.0f IOPS  1.00x\n", base);
	printf("sync4  %8.0f IOPS  %.2fx\n", s4, s4 / base);
	for (int qd = 4; qd <= 32; qd *= 2) {
		double r = run_aio(qd);
		printf("aio%-3d %8.0f IOPS  %.2fx\n", qd, r, r / base);
	}
	return 0;
}
