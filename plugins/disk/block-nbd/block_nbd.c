/* block-nbd: a disk served by an NBD server (qemu-nbd, nbdkit, nbd-server)
 * through libnbd. One connection, requests pipelined with libnbd's
 * asynchronous API; its socket is watched on the modvm event loop, so no
 * thread waits for the network. A lost connection fails requests with EIO. */
#include <errno.h>
#include <fcntl.h>
#include <libnbd.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <modvm/block.h>
#include <modvm/modvm.h>

#define CHUNK_MAX  (32u << 20)  /* NBD's safe request size (spec: block size constraints) */
#define RANGE_MAX  (1u << 30)   /* trim/zero: NBD lengths are 32 bits */
#define CLOSE_WAIT_MS 10000     /* a stuck server does not stop modvm exiting */

struct nbd {
	const struct modvm_host *host;
	modvm_inst *inst;
	struct nbd_handle *h;
	char *uri;
	uint64_t size;
	bool readonly;
	bool fua_writes;             /* no NBD flush: every write is FUA */
	bool no_flush;               /* neither: flush is a no-op (accepted) */
	bool can_trim, can_zero;
	uint32_t chunk;              /* largest read/write per command */
	int sock;                    /* our dup of libnbd's socket, watched */
	int efd;                     /* completions waiting for the loop */
	modvm_watch *sock_watch, *efd_watch;
	pthread_mutex_t lock;        /* the fields below */
	unsigned events;             /* what sock_watch asks for */
	unsigned outstanding;        /* requests submitted, not yet done */
	struct modvm_block_req *done, *done_tail;
	bool dead_logged;
};

struct cmd;

/* One NBD command. `called` says its result is in: libnbd ran the
 * completion callback, or refused the command. The two can overlap: when
 * the connection dies while a command is being sent, libnbd runs the
 * callback (ENOTCONN) and then also returns an error, so the return value
 * alone would count the command twice. */
struct sub {
	struct cmd *c;
	bool called;
};

/* One guest request, split into one or more NBD commands. */
struct cmd {
	struct nbd *n;
	struct modvm_block_req *req;
	unsigned pending;            /* commands without a result, +1 while submitting */
	int err;                     /* first errno seen */
	size_t used;                 /* subs[] handed out; count_subs() sized it */
	struct sub subs[];
};

static const struct modvm_prop_desc nbd_props[] = {
	{ .name = "uri", .type = MODVM_PROP_STRING, .flags = MODVM_PROP_REQUIRED,
	  .help = "NBD server: nbd://host[:port]/export or nbd+unix:///export?socket=PATH" },
	MODVM_PROP_BOOL_("readonly", "false", "open read-only; the guest sees a read-only disk"),
	MODVM_PROP_INT_("connect-timeout", "10", 1, 3600,
			"seconds to wait for the server to answer at start"),
	MODVM_PROP_BOOL_("unsafe-no-flush", "false",
			 "accept a writable export whose server can neither flush nor "
			 "force unit access (a server crash may lose flushed writes)"),
	MODVM_PROP_END
};

/* ---- completions ------------------------------------------------------ */

static void done_push(struct nbd *n, struct modvm_block_req *r)
{
	uint64_t one = 1;

	r->next_ = NULL;
	if (n->done_tail)
		n->done_tail->next_ = r;
	else
		n->done = r;
	n->done_tail = r;
	if (write(n->efd, &one, sizeof(one)) < 0) {
		/* the counter cannot overflow at our rates */
	}
}

/* One NBD command of c finished, or could not be sent (err set). Called
 * with n->lock held; the last one puts the request on the done list. */
static void cmd_finish(struct cmd *c, int err)
{
	struct nbd *n = c->n;

	if (err && !c->err)
		c->err = err;
	if (--c->pending)
		return;
	c->req->result_ = c->err ? -EIO : 0;
	if (c->err == EOPNOTSUPP || c->err == ENOTSUP)
		c->req->result_ = -EOPNOTSUPP;
	done_push(n, c->req);
	n->outstanding--;
	free(c);
}

/* libnbd's completion callback: runs inside a libnbd call on this handle,
 * which must not be re-entered, so the request only goes on the done
 * list. Returning 1 retires the command. */
static int on_complete(void *opaque, int *error)
{
	struct sub *s = opaque;
	struct nbd *n = s->c->n;

	pthread_mutex_lock(&n->lock);
	if (!s->called) {
		s->called = true;
		cmd_finish(s->c, *error);
	}
	pthread_mutex_unlock(&n->lock);
	return 1;
}

/* Run finished requests' callbacks (event loop or drain, machine lock
 * held). A callback may submit again: the list is taken first. */
static bool run_done(struct nbd *n)
{
	struct modvm_block_req *r, *next;
	bool ran;

	pthread_mutex_lock(&n->lock);
	r = n->done;
	n->done = n->done_tail = NULL;
	pthread_mutex_unlock(&n->lock);
	ran = r != NULL;
	for (; r; r = next) {
		next = r->next_;
		r->complete(r, r->result_);
	}
	return ran;
}

/* The connection is gone: say so once; the socket watch goes too. */
static void note_dead(struct nbd *n)
{
	bool first;

	if (!nbd_aio_is_dead(n->h) && !nbd_aio_is_closed(n->h))
		return;
	pthread_mutex_lock(&n->lock);
	first = !n->dead_logged;
	n->dead_logged = true;
	pthread_mutex_unlock(&n->lock);
	if (!first)
		return;
	n->host->log(n->inst, MODVM_LOG_ERROR, "NBD connection to %s lost (%s): "
		     "the guest's disk I/O fails from now on; restart the "
		     "server, then the VM", n->uri,
		     nbd_get_error() ? nbd_get_error() : "server closed it");
}

/* Ask the loop for POLLOUT only while libnbd has bytes to send. This and
 * unwatch_sock run with the machine lock held (event loop, device I/O
 * handlers, drain), which orders them. */
static void update_events(struct nbd *n)
{
	unsigned dir = nbd_aio_get_direction(n->h), ev = MODVM_FD_IN;
	bool change;

	if (dir & LIBNBD_AIO_DIRECTION_WRITE)
		ev |= MODVM_FD_OUT;
	pthread_mutex_lock(&n->lock);
	change = n->sock_watch && ev != n->events;
	n->events = ev;
	pthread_mutex_unlock(&n->lock);
	if (change)
		n->host->fd_watch_events(n->sock_watch, ev);
}

static void unwatch_sock(struct nbd *n)
{
	if (!n->sock_watch)
		return;
	n->host->fd_unwatch(n->sock_watch);
	n->sock_watch = NULL;
}

static void on_sock(void *opaque, int fd, unsigned revents)
{
	struct nbd *n = opaque;

	(void)fd;
	if (revents & (MODVM_FD_IN | MODVM_FD_ERR))
		nbd_aio_notify_read(n->h);
	if (revents & MODVM_FD_OUT)
		nbd_aio_notify_write(n->h);
	if (nbd_aio_is_dead(n->h) || nbd_aio_is_closed(n->h)) {
		note_dead(n);
		unwatch_sock(n);
	} else {
		update_events(n);
	}
	run_done(n);
}

static void on_efd(void *opaque, int fd, unsigned revents)
{
	struct nbd *n = opaque;
	uint64_t v;

	(void)revents;
	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		n->host->log(n->inst, MODVM_LOG_WARN, "eventfd read failed");
	run_done(n);
}

/* ---- submission --------------------------------------------------------- */

/* The next command slot of c, counted as pending. */
static nbd_completion_callback next_cb(struct cmd *c)
{
	struct sub *s = &c->subs[c->used++];

	s->c = c;
	pthread_mutex_lock(&c->n->lock);
	c->pending++;
	pthread_mutex_unlock(&c->n->lock);
	return (nbd_completion_callback){ .callback = on_complete, .user_data = s };
}

/* After the command of the last slot was issued: a refusal is its result,
 * unless the callback already gave one (see struct sub). */
static void issued(struct cmd *c, int64_t cookie)
{
	struct sub *s = &c->subs[c->used - 1];
	struct nbd *n = c->n;
	int err = cookie < 0 ? nbd_get_errno() : 0;

	if (cookie >= 0)
		return;
	pthread_mutex_lock(&n->lock);
	if (!s->called) {
		s->called = true;
		cmd_finish(c, err ? err : EIO);
	}
	pthread_mutex_unlock(&n->lock);
}

static size_t pieces(uint64_t len, uint64_t max)
{
	return (size_t)((len + max - 1) / max);
}

/* How many NBD commands req becomes; SIZE_MAX if absurd. */
static size_t count_subs(const struct nbd *n, const struct modvm_block_req *r)
{
	size_t k = 0;

	if (r->op == MODVM_BLOCK_FLUSH)
		return 1;
	if (r->op != MODVM_BLOCK_READ && r->op != MODVM_BLOCK_WRITE)
		return pieces(r->len, RANGE_MAX);
	if (r->iovcnt < 0 || r->iovcnt > 65536)
		return SIZE_MAX;
	for (int i = 0; i < r->iovcnt; i++)
		k += pieces(r->iov[i].iov_len, n->chunk);
	return k;
}

/* Reads and writes: one command per iovec piece of at most n->chunk bytes,
 * straight into the caller's buffers (no bounce copies). */
static void issue_rw(struct cmd *c, bool write)
{
	struct nbd *n = c->n;
	const struct modvm_block_req *r = c->req;
	uint64_t off = r->offset;
	uint32_t flags = write && n->fua_writes ? LIBNBD_CMD_FLAG_FUA : 0;

	for (int i = 0; i < r->iovcnt; i++) {
		char *p = r->iov[i].iov_base;
		size_t left = r->iov[i].iov_len;
		while (left) {
			size_t len = left < n->chunk ? left : n->chunk;
			nbd_completion_callback cb = next_cb(c);
			issued(c, write ? nbd_aio_pwrite(n->h, p, len, off, cb, flags)
					: nbd_aio_pread(n->h, p, len, off, cb, 0));
			p += len;
			off += len;
			left -= len;
		}
	}
}

static void issue_range(struct cmd *c, bool zero)
{
	struct nbd *n = c->n;
	uint64_t off = c->req->offset, left = c->req->len;
	uint32_t flags = zero && n->fua_writes ? LIBNBD_CMD_FLAG_FUA : 0;

	while (left) {
		uint64_t len = left < RANGE_MAX ? left : RANGE_MAX;
		nbd_completion_callback cb = next_cb(c);
		issued(c, zero ? nbd_aio_zero(n->h, len, off, cb, flags)
			       : nbd_aio_trim(n->h, len, off, cb, 0));
		off += len;
		left -= len;
	}
}

/* A server that went away shows as a hang-up on the socket: let libnbd
 * see it before we send, so the connection is already dead (and refuses
 * cleanly) instead of dying inside the next send. */
static void check_peer(struct nbd *n)
{
	struct pollfd p = { .fd = n->sock, .events = POLLRDHUP };

	if (n->sock < 0 || poll(&p, 1, 0) <= 0)
		return;
	if (p.revents & (POLLHUP | POLLERR | POLLRDHUP))
		nbd_aio_notify_read(n->h);
}

/* Requests with nothing to send to the server. */
static bool local_answer(struct nbd *n, const struct modvm_block_req *req,
			 int *result)
{
	bool writes = req->op != MODVM_BLOCK_READ && req->op != MODVM_BLOCK_FLUSH;

	*result = 0;
	if (n->readonly && writes)
		*result = -EROFS;
	else if (req->op == MODVM_BLOCK_FLUSH)
		return n->readonly || n->fua_writes || n->no_flush;
	else if (req->op == MODVM_BLOCK_DISCARD)
		return !n->can_trim || !req->len;  /* discard is a hint */
	else if (req->op == MODVM_BLOCK_WRITE_ZEROES && !n->can_zero)
		*result = -EOPNOTSUPP;
	else if (req->op < MODVM_BLOCK_READ || req->op > MODVM_BLOCK_WRITE_ZEROES)
		*result = -EINVAL;
	return *result != 0;
}

static int nbd_submit(void *be, struct modvm_block_req *req)
{
	struct nbd *n = be;
	struct cmd *c;
	size_t nsubs;
	int res;

	nsubs = count_subs(n, req);
	if (nsubs == SIZE_MAX)
		return -EINVAL;
	if (!nsubs || local_answer(n, req, &res)) {
		if (!nsubs)
			res = 0;    /* nothing to transfer */
		req->result_ = res;
		pthread_mutex_lock(&n->lock);
		done_push(n, req);   /* runs from the loop, never in here */
		pthread_mutex_unlock(&n->lock);
		return 0;
	}
	c = calloc(1, sizeof(*c) + nsubs * sizeof(c->subs[0]));
	if (!c)
		return -ENOMEM;
	c->n = n;
	c->req = req;
	c->pending = 1;
	pthread_mutex_lock(&n->lock);
	n->outstanding++;
	pthread_mutex_unlock(&n->lock);
	check_peer(n);
	/* pending starts at 1 so that c outlives the loop below even if every
	 * command finishes at once; the final cmd_finish drops it. */
	if (req->op == MODVM_BLOCK_READ || req->op == MODVM_BLOCK_WRITE) {
		issue_rw(c, req->op == MODVM_BLOCK_WRITE);
	} else if (req->op == MODVM_BLOCK_FLUSH) {
		nbd_completion_callback cb = next_cb(c);
		issued(c, nbd_aio_flush(n->h, cb, 0));
	} else {
		issue_range(c, req->op == MODVM_BLOCK_WRITE_ZEROES);
	}
	pthread_mutex_lock(&n->lock);
	cmd_finish(c, 0);
	pthread_mutex_unlock(&n->lock);
	note_dead(n);
	update_events(n);
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Wait for every request, polling the socket from this thread; give up
 * after timeout_ms (< 0: never) and say how many were abandoned. */
static void wait_all(struct nbd *n, int64_t timeout_ms)
{
	int64_t end = now_ms() + timeout_ms;

	for (;;) {
		unsigned left;

		pthread_mutex_lock(&n->lock);
		left = n->outstanding;
		pthread_mutex_unlock(&n->lock);
		if (!left)
			return;
		if (timeout_ms >= 0 && now_ms() >= end) {
			n->host->log(n->inst, MODVM_LOG_ERROR, "%s: the server did not "
				     "answer %u requests; abandoning them", n->uri, left);
			return;
		}
		if (nbd_poll(n->h, 1000) < 0 && (nbd_aio_is_dead(n->h) ||
						 nbd_aio_is_closed(n->h))) {
			/* libnbd retires every command of a dead connection
			 * with an error, so outstanding is 0 by now. */
			note_dead(n);
			pthread_mutex_lock(&n->lock);
			left = n->outstanding;
			pthread_mutex_unlock(&n->lock);
			if (left)
				n->host->log(n->inst, MODVM_LOG_ERROR,
					     "%u requests lost with the connection", left);
			return;
		}
	}
}

static void nbd_drain(void *be)
{
	struct nbd *n = be;

	/* Callbacks may submit more (a write-through flush, the rest of a
	 * queue): until a round completes nothing. */
	do {
		wait_all(n, -1);
		update_events(n);
	} while (run_done(n));
}

/* ---- synchronous calls ---------------------------------------------------- */

static int sync_result(struct nbd *n, int rc)
{
	if (rc >= 0)
		return 0;
	note_dead(n);
	rc = nbd_get_errno();
	return rc == EOPNOTSUPP || rc == ENOTSUP ? -EOPNOTSUPP : -EIO;
}

static int nbd_rw_sync(struct nbd *n, const struct iovec *iov, int iovcnt,
		       uint64_t off, bool write)
{
	uint32_t flags = write && n->fua_writes ? LIBNBD_CMD_FLAG_FUA : 0;

	if (write && n->readonly)
		return -EROFS;
	for (int i = 0; i < iovcnt; i++) {
		char *p = iov[i].iov_base;
		size_t left = iov[i].iov_len;
		while (left) {
			size_t len = left < n->chunk ? left : n->chunk;
			int rc = write ? nbd_pwrite(n->h, p, len, off, flags)
				       : nbd_pread(n->h, p, len, off, 0);
			if (rc < 0)
				return sync_result(n, rc);
			p += len;
			off += len;
			left -= len;
		}
	}
	return 0;
}

static int nbd_preadv_(void *be, const struct iovec *iov, int iovcnt,
		       uint64_t off)
{
	return nbd_rw_sync(be, iov, iovcnt, off, false);
}

static int nbd_pwritev_(void *be, const struct iovec *iov, int iovcnt,
			uint64_t off)
{
	return nbd_rw_sync(be, iov, iovcnt, off, true);
}

static int nbd_flush_(void *be)
{
	struct nbd *n = be;

	if (n->readonly || n->fua_writes || n->no_flush)
		return 0;
	return sync_result(n, nbd_flush(n->h, 0));
}

static int nbd_range_sync(struct nbd *n, uint64_t off, uint64_t len, bool zero)
{
	uint32_t flags = zero && n->fua_writes ? LIBNBD_CMD_FLAG_FUA : 0;

	if (n->readonly)
		return -EROFS;
	if (!zero && !n->can_trim)
		return 0;
	if (zero && !n->can_zero)
		return -EOPNOTSUPP;
	while (len) {
		uint64_t l = len < RANGE_MAX ? len : RANGE_MAX;
		int rc = zero ? nbd_zero(n->h, l, off, flags) : nbd_trim(n->h, l, off, 0);
		if (rc < 0)
			return sync_result(n, rc);
		off += l;
		len -= l;
	}
	return 0;
}

static int nbd_discard_(void *be, uint64_t off, uint64_t len)
{
	return nbd_range_sync(be, off, len, false);
}

static int nbd_write_zeroes_(void *be, uint64_t off, uint64_t len)
{
	return nbd_range_sync(be, off, len, true);
}

static uint64_t nbd_length_(void *be)
{
	return ((struct nbd *)be)->size;
}

static bool nbd_read_only_(void *be)
{
	return ((struct nbd *)be)->readonly;
}

static uint32_t nbd_caps_(void *be)
{
	struct nbd *n = be;
	uint32_t c = 0;

	if (n->readonly)
		return 0;
	if (n->can_trim)
		c |= MODVM_BLOCK_CAN_DISCARD;
	if (n->can_zero)
		c |= MODVM_BLOCK_CAN_WRITE_ZEROES;
	return c;
}

/* ---- open and close ------------------------------------------------------- */

static void nbd_close_(void *be)
{
	struct nbd *n = be;

	if (!n)
		return;
	if (n->h)
		wait_all(n, CLOSE_WAIT_MS);
	/* Callbacks of finished requests are not run (block.h): the front
	 * end owns them and is going away. */
	unwatch_sock(n);
	if (n->efd_watch)
		n->host->fd_unwatch(n->efd_watch);
	if (n->h) {
		if (nbd_aio_is_ready(n->h))
			nbd_shutdown(n->h, 0);
		nbd_close(n->h);
	}
	if (n->sock >= 0)
		close(n->sock);
	if (n->efd >= 0)
		close(n->efd);
	pthread_mutex_destroy(&n->lock);
	free(n->uri);
	free(n);
}

/* What to tell the user when connecting failed. */
static void connect_error(struct nbd *n, int err, const char *msg)
{
	const char *hint = "check the URI and that the NBD server runs";

	if (msg && strstr(msg, "no export"))
		hint = "the server has no such export: check the name after the "
		       "/ of the URI (qemu-nbd -x NAME, nbdkit -e NAME)";
	else if (err == ENOENT && strstr(n->uri, "socket="))
		hint = "no socket there: start the server, for example "
		       "qemu-nbd -k SOCKET -f raw IMAGE";
	else if (err == ECONNREFUSED)
		hint = "nothing listens there: start the server, for example "
		       "qemu-nbd -f raw IMAGE (port 10809)";
	else if (err == ETIMEDOUT || err == EHOSTUNREACH || err == ENETUNREACH)
		hint = "check the host, the port and any firewall";
	else if (err == EINVAL || err == EPROTONOSUPPORT)
		hint = "write nbd://host[:port]/export or "
		       "nbd+unix:///export?socket=PATH";
	n->host->set_error(n->inst, "%s: cannot connect: %s (%s)", n->uri,
			   msg ? msg : strerror(err), hint);
}

/* Connect with a deadline: libnbd's synchronous connect would wait for a
 * silent host as long as TCP retries. */
static int nbd_connect(struct nbd *n, int timeout_s)
{
	int64_t end = now_ms() + (int64_t)timeout_s * 1000;

	if (nbd_aio_connect_uri(n->h, n->uri) < 0) {
		connect_error(n, nbd_get_errno(), nbd_get_error());
		return -1;
	}
	while (!nbd_aio_is_ready(n->h)) {
		int64_t left = end - now_ms();
		if (nbd_aio_is_dead(n->h) || nbd_aio_is_closed(n->h) ||
		    nbd_poll(n->h, left > 0 ? (int)left : 0) < 0) {
			connect_error(n, nbd_get_errno(), nbd_get_error());
			return -1;
		}
		if (left <= 0 && !nbd_aio_is_ready(n->h)) {
			n->host->set_error(n->inst, "%s: no answer from the server "
					   "within %d s (connect-timeout): check the "
					   "host, the port and any firewall, and that "
					   "the server is not stuck", n->uri, timeout_s);
			return -1;
		}
	}
	return 0;
}

/* What the server offers decides flush, trim, zero and read-only. */
static int negotiate(struct nbd *n)
{
	int64_t size = nbd_get_size(n->h), max, min;
	const struct modvm_host *h = n->host;

	if (size < 0) {
		h->set_error(n->inst, "%s: the server did not give the export's size: %s",
			     n->uri, nbd_get_error());
		return -1;
	}
	n->size = (uint64_t)size;
	max = nbd_get_block_size(n->h, LIBNBD_SIZE_MAXIMUM);
	n->chunk = max > 0 && max < CHUNK_MAX ? (uint32_t)max : CHUNK_MAX;
	min = nbd_get_block_size(n->h, LIBNBD_SIZE_MINIMUM);
	if (min > 512)
		h->log(n->inst, MODVM_LOG_WARN, "%s: the server takes only whole "
		       "blocks of %lld bytes: set logical-block-size = %lld on the "
		       "disk, or smaller guest requests fail", n->uri,
		       (long long)min, (long long)min);
	if (nbd_is_read_only(n->h) == 1 && !n->readonly) {
		h->set_error(n->inst, "%s: the server exports it read-only "
			     "(set readonly = true, or start the server without -r)",
			     n->uri);
		return -1;
	}
	n->can_trim = nbd_can_trim(n->h) == 1;
	n->can_zero = nbd_can_zero(n->h) == 1;
	if (n->readonly || nbd_can_flush(n->h) == 1)
		return 0;
	if (nbd_can_fua(n->h) == 1) {
		n->fua_writes = true;
		h->log(n->inst, MODVM_LOG_INFO, "%s: the server cannot flush; every "
		       "write is sent with FUA (slower, but safe)", n->uri);
		return 0;
	}
	if (!h->prop_bool(n->inst, "unsafe-no-flush")) {
		h->set_error(n->inst, "%s: the server can neither flush nor force "
			     "writes to stable storage, so guest flushes would mean "
			     "nothing: set readonly = true, use a server that flushes, "
			     "or accept the risk with unsafe-no-flush = true", n->uri);
		return -1;
	}
	n->no_flush = true;
	h->log(n->inst, MODVM_LOG_WARN, "%s: the server cannot flush; a server "
	       "crash may lose writes the guest flushed (unsafe-no-flush)", n->uri);
	return 0;
}

static int setup_watches(struct nbd *n)
{
	const struct modvm_host *h = n->host;
	int fd = nbd_aio_get_fd(n->h);

	/* Our own copy of the socket: libnbd closes its descriptor when the
	 * connection dies, and a watched number must not be reused under us. */
	n->sock = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
	n->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (n->sock < 0 || n->efd < 0) {
		h->set_error(n->inst, "%s: %s", n->uri, strerror(errno));
		return -1;
	}
	n->events = MODVM_FD_IN;
	n->sock_watch = h->fd_watch(n->inst, n->sock, MODVM_FD_IN, on_sock, n);
	n->efd_watch = h->fd_watch(n->inst, n->efd, MODVM_FD_IN, on_efd, n);
	if (!n->sock_watch || !n->efd_watch) {
		h->set_error(n->inst, "cannot watch the NBD socket");
		return -1;
	}
	return 0;
}

static void *nbd_open_(const struct modvm_host *host, modvm_inst *inst)
{
	const char *uri = host->prop_string(inst, "uri");
	struct nbd *n = calloc(1, sizeof(*n));

	if (!n) {
		host->set_error(inst, "out of memory");
		return NULL;
	}
	*n = (struct nbd){ .host = host, .inst = inst, .sock = -1, .efd = -1,
			   .readonly = host->prop_bool(inst, "readonly") };
	pthread_mutex_init(&n->lock, NULL);
	n->uri = strdup(uri ? uri : "");
	if (!n->uri || !*n->uri) {
		host->set_error(inst, "uri is empty (nbd://host[:port]/export or "
				"nbd+unix:///export?socket=PATH)");
		goto fail;
	}
	n->h = nbd_create();
	if (!n->h) {
		host->set_error(inst, "libnbd: %s", nbd_get_error());
		goto fail;
	}
	if (!nbd_supports_uri(n->h)) {
		host->set_error(inst, "%s: this libnbd cannot parse NBD URIs", n->uri);
		goto fail;
	}
	if (nbd_connect(n, (int)host->prop_int(inst, "connect-timeout")) ||
	    negotiate(n) || setup_watches(n))
		goto fail;
	return n;
fail:
	nbd_close_(n);
	return NULL;
}

static const struct modvm_block_ops nbd_ops = {
	.size = sizeof(struct modvm_block_ops),
	.open = nbd_open_,
	.close = nbd_close_,
	.length = nbd_length_,
	.read_only = nbd_read_only_,
	.caps = nbd_caps_,
	.preadv = nbd_preadv_,
	.pwritev = nbd_pwritev_,
	.flush = nbd_flush_,
	.discard = nbd_discard_,
	.write_zeroes = nbd_write_zeroes_,
	.submit = nbd_submit,
	.drain = nbd_drain,
};

MODVM_PLUGIN_DEFINE(
	.kind = MODVM_KIND_BLOCK,
	.name = "block-nbd",
	.version = "1.0.0",
	.description = "Disk served by an NBD server (libnbd)",
	.props = nbd_props,
	.ops = &nbd_ops,
);
