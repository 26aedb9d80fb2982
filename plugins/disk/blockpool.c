/* Worker-thread pool for block backends: requests queue FIFO, workers run
 * them with the backend's synchronous calls, finished requests go on a done
 * list and an eventfd wakes the event loop, which runs their callbacks with
 * the machine lock held. See docs/decisions-virtio.md for why threads and
 * not io_uring. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "blockpool.h"

#define WORKERS_MAX 16

struct blockpool {
	const struct modvm_host *host;
	modvm_inst *inst;
	blockpool_exec exec;
	void *be;
	pthread_mutex_t lock;
	pthread_cond_t work;          /* a request was queued, or stop */
	pthread_cond_t idle;          /* busy dropped to 0 */
	struct modvm_block_req *head, *tail; /* queued */
	struct modvm_block_req *done, *done_tail;
	unsigned busy;                /* queued or running */
	bool stop;
	int efd;
	modvm_watch *watch;
	modvm_thread *threads[WORKERS_MAX];
	unsigned nthreads;
};

static void done_push(struct blockpool *p, struct modvm_block_req *r)
{
	r->next_ = NULL;
	if (p->done_tail)
		p->done_tail->next_ = r;
	else
		p->done = r;
	p->done_tail = r;
}

static void *worker(void *arg)
{
	struct blockpool *p = arg;
	struct modvm_block_req *r;
	uint64_t one = 1;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->head && !p->stop)
			pthread_cond_wait(&p->work, &p->lock);
		if (!p->head)
			break;
		r = p->head;
		p->head = r->next_;
		if (!p->head)
			p->tail = NULL;
		pthread_mutex_unlock(&p->lock);
		r->result_ = p->exec(p->be, r);
		pthread_mutex_lock(&p->lock);
		done_push(p, r);
		if (--p->busy == 0)
			pthread_cond_broadcast(&p->idle);
		if (write(p->efd, &one, sizeof(one)) < 0) {
			/* the counter cannot overflow at our rates */
		}
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* Run the completions that are in; returns whether there were any. */
static bool run_done(struct blockpool *p)
{
	struct modvm_block_req *r, *next;
	bool ran;

	pthread_mutex_lock(&p->lock);
	r = p->done;
	p->done = p->done_tail = NULL;
	pthread_mutex_unlock(&p->lock);
	ran = r != NULL;
	for (; r; r = next) {
		next = r->next_;
		r->complete(r, r->result_);
	}
	return ran;
}

static void on_event(void *opaque, int fd, unsigned revents)
{
	struct blockpool *p = opaque;
	uint64_t n;

	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		p->host->log(p->inst, MODVM_LOG_WARN, "block: eventfd read failed");
	run_done(p);
}

struct blockpool *blockpool_new(const struct modvm_host *host,
				modvm_inst *inst, unsigned workers,
				blockpool_exec exec, void *be)
{
	struct blockpool *p = calloc(1, sizeof(*p));

	if (!p) {
		host->set_error(inst, "out of memory");
		return NULL;
	}
	*p = (struct blockpool){ .host = host, .inst = inst, .exec = exec,
				 .be = be, .efd = -1 };
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->idle, NULL);
	p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (p->efd < 0) {
		host->set_error(inst, "eventfd: %s", strerror(errno));
		goto fail;
	}
	p->watch = host->fd_watch(inst, p->efd, MODVM_FD_IN, on_event, p);
	if (!p->watch) {
		host->set_error(inst, "cannot watch the completion eventfd");
		goto fail;
	}
	if (workers > WORKERS_MAX)
		workers = WORKERS_MAX;
	/* host->thread_start: under the sandbox the workers run under the
	 * device list (descriptors only), like the threads that submit. */
	for (; p->nthreads < workers; p->nthreads++) {
		char name[16];

		snprintf(name, sizeof(name), "modvm-blk%u", p->nthreads);
		p->threads[p->nthreads] = host->thread_start(inst, name, worker, p);
		if (!p->threads[p->nthreads])
			goto fail;
	}
	return p;
fail:
	blockpool_free(p);
	return NULL;
}

int blockpool_submit(struct blockpool *p, struct modvm_block_req *req)
{
	pthread_mutex_lock(&p->lock);
	req->next_ = NULL;
	if (p->tail)
		p->tail->next_ = req;
	else
		p->head = req;
	p->tail = req;
	p->busy++;
	pthread_cond_signal(&p->work);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

static void wait_idle(struct blockpool *p)
{
	pthread_mutex_lock(&p->lock);
	while (p->busy)
		pthread_cond_wait(&p->idle, &p->lock);
	pthread_mutex_unlock(&p->lock);
}

/* A completion can submit more (virtio-blk's write-through flush, the
 * next requests of its queue): drain until a round completes nothing. */
void blockpool_drain(struct blockpool *p)
{
	do
		wait_idle(p);
	while (run_done(p));
}

void blockpool_free(struct blockpool *p)
{
	if (!p)
		return;
	wait_idle(p);
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->nthreads; i++)
		p->host->thread_join(p->threads[i], NULL);
	if (p->watch)
		p->host->fd_unwatch(p->watch);
	if (p->efd >= 0)
		close(p->efd);
	pthread_cond_destroy(&p->idle);
	pthread_cond_destroy(&p->work);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
