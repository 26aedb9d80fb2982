/* Live migration: the source sends RAM while the guest runs (pre-copy with
 * the engine's dirty log), then stops it briefly for the last pages and the
 * device and vCPU state; the destination checks everything before it runs.
 * A failure on the way leaves the source running (docs/migration.md). */
#include "migration.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "block.h"
#include "cpumodel.h"
#include "machine.h"
#include "migstream.h"
#include "run.h"
#include "snapshot.h"

enum mig_state {
	MS_SETUP, MS_PRECOPY, MS_STOPPED, MS_COMPLETED, MS_FAILED, MS_CANCELLED,
};

static const char *const state_names[] = {
	"setup", "active", "stop-and-copy", "completed", "failed", "cancelled",
};

struct migration {
	struct machine *m;
	int fd;
	char *uri;
	struct migrate_opts o;
	pthread_t thread;
	atomic_bool cancel;
	atomic_bool finished;
	atomic_bool end_sent;  /* the destination decides now: no cancel */

	pthread_mutex_t lock; /* the status below */
	enum mig_state state;
	char error[ERR_LEN];
	const char *mode;
	bool paused_unknown;   /* outcome unknown: left paused */
	unsigned iteration;
	uint64_t bytes, data_pages, zero_pages;
	uint64_t remaining;    /* bytes dirty now */
	uint64_t dirty_rate;   /* pages per second */
	uint64_t rate;         /* measured bytes per second */
	uint64_t expected_ns;  /* downtime at that rate */
	uint64_t t0, total_ns, downtime_ns;

	/* the sending side, touched by the thread only */
	uint8_t *rec;          /* a PAGES record being filled */
	uint8_t *sync_buf;     /* records read back (MIG_REC_MAX) */
	uint32_t nrec;
	uint64_t zfirst, zcount; /* a run of zero pages not sent yet */
	uint64_t throttle_t0, throttle_bytes;
};

static uint64_t now_ns(void)
{
	return host_monotonic_ns();
}

/* ---- socket I/O --------------------------------------------------------- */

/* All of buf to fd. With mig (the source): stop when cancelled and count
 * the bytes for migrate-status. */
static int fd_send(int fd, const void *buf, size_t n, struct migration *mig)
{
	const uint8_t *p = buf;

	while (n) {
		if (mig && atomic_load(&mig->cancel)) {
			errno = ECANCELED;
			return -1;
		}
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
		if (mig) {
			pthread_mutex_lock(&mig->lock);
			mig->bytes += (uint64_t)w;
			pthread_mutex_unlock(&mig->lock);
		}
	}
	return 0;
}

static int sock_write(void *opaque, const void *buf, size_t n)
{
	struct migration *mig = opaque;

	return fd_send(mig->fd, buf, n, mig);
}

static int fd_read(int fd, void *buf, size_t n)
{
	uint8_t *p = buf;

	while (n) {
		ssize_t r = recv(fd, p, n, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			errno = 0;
		if (r <= 0)
			return -1;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static int sock_read(void *opaque, void *buf, size_t n)
{
	struct migration *mig = opaque;

	return fd_read(mig->fd, buf, n);
}

static int dest_write(void *opaque, const void *buf, size_t n)
{
	return fd_send(*(int *)opaque, buf, n, NULL);
}

static int dest_read(void *opaque, void *buf, size_t n)
{
	return fd_read(*(int *)opaque, buf, n);
}

static void set_timeout(int fd, int opt, unsigned seconds)
{
	struct timeval tv = { .tv_sec = seconds };

	setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv));
}

/* The last records and the answers are small: without TCP_NODELAY each
 * waits for the peer's delayed ACK (40 ms on Linux), all of it downtime.
 * Not an error where it does not apply (a unix socket). */
static void set_nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* ---- the source --------------------------------------------------------- */

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static int send_record(struct migration *mig, unsigned type, const void *p,
		       size_t n)
{
	struct mig_io io = { sock_read, sock_write, mig };

	if (mig_write_record(&io, type, p, n))
		return -1;
	/* --bandwidth: hold the average rate since the last reset under it */
	if (mig->o.bandwidth) {
		mig->throttle_bytes += n + 12;
		uint64_t due = mig->throttle_t0 + mig->throttle_bytes * 1000000000ull / mig->o.bandwidth;
		uint64_t now = now_ns();
		if (due > now) {
			struct timespec ts = { (time_t)((due - now) / 1000000000ull),
					       (long)((due - now) % 1000000000ull) };
			nanosleep(&ts, NULL);
		}
	}
	return 0;
}

static int flush_zero(struct migration *mig)
{
	uint8_t b[16];

	if (!mig->zcount)
		return 0;
	put64(b, mig->zfirst);
	put64(b + 8, mig->zcount);
	pthread_mutex_lock(&mig->lock);
	mig->zero_pages += mig->zcount;
	pthread_mutex_unlock(&mig->lock);
	mig->zcount = 0;
	return send_record(mig, MIG_ZERO, b, sizeof(b));
}

static int flush_pages(struct migration *mig)
{
	uint32_t n = mig->nrec;
	uint8_t *r = mig->rec;

	if (!n)
		return 0;
	/* the record: count, 0, the page numbers, then the pages (which
	 * were copied at MIG_BATCH * 8 past the numbers' start) */
	put32(r, n);
	put32(r + 4, 0);
	if (n < MIG_BATCH)
		memmove(r + 8 + (size_t)n * 8, r + 8 + (size_t)MIG_BATCH * 8, (size_t)n * MIG_PAGE);
	mig->nrec = 0;
	pthread_mutex_lock(&mig->lock);
	mig->data_pages += n;
	pthread_mutex_unlock(&mig->lock);
	return send_record(mig, MIG_PAGES, r, 8 + (size_t)n * 8 + (size_t)n * MIG_PAGE);
}

static bool page_is_zero(const uint8_t *p)
{
	const uint64_t *q = (const uint64_t *)p;

	for (unsigned i = 0; i < MIG_PAGE / 8; i++)
		if (q[i])
			return false;
	return true;
}

/* Queue page i: a zero page extends the run of zero pages (a marker in the
 * stream, never its bytes); any other is copied into the PAGES record. */
static int send_page(struct migration *mig, uint64_t i, bool known_zero)
{
	const uint8_t *p = mig->m->mem.host + i * MIG_PAGE;

	if (known_zero || page_is_zero(p)) {
		if (mig->zcount && mig->zfirst + mig->zcount == i) {
			mig->zcount++;
			return 0;
		}
		if (flush_zero(mig))
			return -1;
		mig->zfirst = i;
		mig->zcount = 1;
		return 0;
	}
	put64(mig->rec + 8 + (size_t)mig->nrec * 8, i);
	memcpy(mig->rec + 8 + (size_t)MIG_BATCH * 8 + (size_t)mig->nrec * MIG_PAGE, p, MIG_PAGE);
	if (++mig->nrec == MIG_BATCH)
		return flush_pages(mig);
	return 0;
}

/* Send the pages whose bit is set (all of them if bits is NULL); used, if
 * given, tells which pages may hold data (the others are holes: zero
 * without reading them). */
static int send_pages(struct migration *mig, const uint64_t *bits,
		      const uint8_t *used)
{
	uint64_t n = mig->m->mem.size / MIG_PAGE;

	for (uint64_t i = 0; i < n; i++) {
		if (bits && !(bits[i / 64] >> (i % 64) & 1)) {
			if (!bits[i / 64])
				i |= 63; /* a whole clean word */
			continue;
		}
		if (send_page(mig, i, used && !used[i]))
			return -1;
	}
	return flush_zero(mig) || flush_pages(mig) ? -1 : 0;
}

static int send_iteration_mark(struct migration *mig, unsigned iter)
{
	uint8_t b[4];

	put32(b, iter);
	pthread_mutex_lock(&mig->lock);
	mig->iteration = iter;
	pthread_mutex_unlock(&mig->lock);
	return send_record(mig, MIG_ITER, b, sizeof(b));
}

/* What the destination checks before the source stops (docs/migration.md,
 * "Handshake"). */
static char *describe(struct machine *m)
{
	const struct vm_config *c = m->cfg;
	json_t *devs = json_array(), *j;
	char *s;

	for (size_t i = 0; i < m->ninsts; i++) {
		const struct modvm_plugin_desc *d = m->insts[i]->plugin->desc;
		json_t *secs = json_array();
		for (int k = 0; d->state && d->state[k]; k++)
			json_array_append_new(secs, json_pack("{s:s,s:i}", "name", d->state[k]->name,
							      "version", (int)d->state[k]->version));
		json_array_append_new(devs, json_pack("{s:s,s:s,s:s,s:o}", "id", m->insts[i]->id,
			"plugin", d->name, "plugin-version", d->version, "sections", secs));
	}
	j = json_pack("{s:i,s:s,s:s,s:s,s:s,s:i,s:I,s:o}", "format", MIG_FORMAT,
		      "modvm-version", MODVM_VERSION, "name", c && c->name ? c->name : "",
		      "engine", m->engine ? m->engine->plugin->desc->name : "",
		      "cpu-model", c && c->model ? c->model : "", "cpus", (int)m->ncpus,
		      "memory", (json_int_t)m->mem.size, "devices", devs);
	s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return s;
}

static int send_state(struct migration *mig, uint32_t kind, uint32_t index,
		      const struct strbuf *b)
{
	size_t off = 0, chunk = MIG_REC_MAX - 8;

	/* one record at least, even for a device without state */
	do {
		size_t n = b->len - off < chunk ? b->len - off : chunk;
		put32(mig->rec, kind);
		put32(mig->rec + 4, index);
		if (n)
			memcpy(mig->rec + 8, b->s + off, n);
		if (send_record(mig, MIG_STATE, mig->rec, 8 + n))
			return -1;
		off += n;
	} while (off < b->len);
	return 0;
}

/* With the VM held and the machine lock taken: clock, devices, vCPUs. */
static int send_machine_state(struct migration *mig, char *err, size_t len)
{
	struct machine *m = mig->m;
	uint8_t clk[16];

	put64(clk, vclock_now(&m->clock));
	put64(clk + 8, (uint64_t)m->clock.boot_wall_ns);
	if (send_record(mig, MIG_CLOCK, clk, sizeof(clk)))
		return set_err(err, len, "sending the clock: %s", strerror(errno));
	for (size_t i = 0; i < m->ninsts; i++) {
		struct strbuf b;
		sb_init(&b);
		snapshot_save_device(m->insts[i], &b);
		int r = send_state(mig, 0, (uint32_t)i, &b);
		sb_free(&b);
		if (r)
			return set_err(err, len, "sending the state of device %s: %s",
				       m->insts[i]->id, strerror(errno));
	}
	for (unsigned i = 0; i < m->ncpus; i++) {
		struct strbuf b;
		sb_init(&b);
		if (snapshot_save_cpu(m, i, &b)) {
			sb_free(&b);
			return set_err(err, len, "the engine could not read cpu %u's state", i);
		}
		int r = send_state(mig, 1, i, &b);
		sb_free(&b);
		if (r)
			return set_err(err, len, "sending the state of cpu %u: %s", i, strerror(errno));
	}
	return 0;
}

static bool engine_logs_dirty(const struct machine *m)
{
	const struct modvm_cpu_engine_ops *o = m->eops;

	return OPS_HAS(o, struct modvm_cpu_engine_ops, dirty_log_stop) &&
	       o->dirty_log_start && o->dirty_log_sync && o->dirty_log_stop;
}

/* Move the bits set since the last call into pending (the VM is held, the
 * engine synced). Returns how many pages pending has. */
static uint64_t collect_dirty(struct machine *m, uint64_t *pending)
{
	uint64_t words = (m->dirty_pages + 63) / 64, n = 0;

	for (uint64_t w = 0; w < words; w++) {
		pending[w] |= atomic_exchange(&m->dirty_map[w], 0);
		n += (uint64_t)__builtin_popcountll(pending[w]);
	}
	return n;
}

static void status_fail(struct migration *mig, enum mig_state st, const char *why)
{
	pthread_mutex_lock(&mig->lock);
	mig->state = st;
	snprintf(mig->error, sizeof(mig->error), "%s", why);
	mig->total_ns = now_ns() - mig->t0;
	pthread_mutex_unlock(&mig->lock);
}

static void status_set(struct migration *mig, enum mig_state st)
{
	pthread_mutex_lock(&mig->lock);
	mig->state = st;
	pthread_mutex_unlock(&mig->lock);
}

static void stop_logging(struct machine *m, bool logging)
{
	atomic_store(&m->dirty, NULL);
	if (logging)
		m->eops->dirty_log_stop(m->evm);
}

/* The handshake: HELLO out, the destination's ANSWER back, before anything
 * of the guest is sent (a refusal leaves the source untouched). */
static int handshake(struct migration *mig, uint8_t *buf, char *err, size_t len)
{
	struct mig_io io = { sock_read, sock_write, mig };
	char *hello = describe(mig->m), why[ERR_LEN];
	unsigned type;
	size_t n;
	int r = mig_write_preamble(&io) || mig_write_record(&io, MIG_HELLO, hello, strlen(hello));

	free(hello);
	if (r)
		return set_err(err, len, "cannot send to the destination: %s", strerror(errno));
	if (mig_read_record(&io, &type, buf, &n, why, sizeof(why)))
		return set_err(err, len, "no answer from the destination: %s", why);
	if (type != MIG_ANSWER)
		return set_err(err, len, "the destination answered with a record of type %u", type);
	if (mig_parse_answer(buf, n, why, sizeof(why)))
		return set_err(err, len, "the destination refused the VM: %s", why);
	return 0;
}

/* Wait until the destination has taken everything sent so far: what sits
 * in socket buffers would otherwise be copied during the stop. */
static int sync_destination(struct migration *mig, char *err, size_t len)
{
	struct mig_io io = { sock_read, sock_write, mig };
	char why[ERR_LEN];
	unsigned type;
	size_t n;

	if (send_record(mig, MIG_SYNC, NULL, 0))
		return set_err(err, len, "sending to the destination: %s", strerror(errno));
	if (mig_read_record(&io, &type, mig->sync_buf, &n, why, sizeof(why)))
		return set_err(err, len, "the destination does not answer: %s", why);
	if (type != MIG_SYNC || n)
		return set_err(err, len, "the destination answered a SYNC with a record of type %u", type);
	return 0;
}

/* Pre-copy rounds while the guest runs, until what is left fits the
 * downtime at the measured rate (or the iteration cap). */
static int precopy(struct migration *mig, uint64_t *pending, const uint8_t *used,
		   char *err, size_t len)
{
	struct machine *m = mig->m;
	uint64_t words = (m->dirty_pages + 63) / 64;
	uint64_t t_sync = now_ns(), b0 = mig->bytes, t0 = t_sync;

	if (send_iteration_mark(mig, 1) || send_pages(mig, NULL, used))
		return set_err(err, len, "sending RAM: %s", strerror(errno));
	for (unsigned iter = 2;; iter++) {
		uint64_t dirty, now, rate;

		now = now_ns();
		pthread_mutex_lock(&mig->lock);
		if (now > t0 && mig->bytes > b0)
			mig->rate = (mig->bytes - b0) * 1000000000ull / (now - t0);
		pthread_mutex_unlock(&mig->lock);

		if (machine_hold(m))
			return set_err(err, len, "the VM stopped running");
		m->eops->dirty_log_sync(m->evm);
		dirty = collect_dirty(m, pending);
		machine_release(m);
		now = now_ns();
		pthread_mutex_lock(&mig->lock);
		rate = mig->rate;
		mig->remaining = dirty * MIG_PAGE;
		mig->dirty_rate = now > t_sync ? dirty * 1000000000ull / (now - t_sync) : 0;
		/* no rate measured yet (nothing sent): only nothing fits */
		mig->expected_ns = rate ? dirty * MIG_PAGE * 1000000000ull / rate :
				   dirty ? UINT64_MAX : 0;
		uint64_t expected = mig->expected_ns;
		pthread_mutex_unlock(&mig->lock);
		t_sync = now;
		fprintf(stderr, "modvm: migrate: iteration %u done: %llu pages dirty since (%llu KiB), %.1f MB/s, expected downtime %.1f ms\n",
			iter - 1, (unsigned long long)dirty, (unsigned long long)(dirty * 4),
			(double)rate / 1e6, expected == UINT64_MAX ? -1.0 : (double)expected / 1e6);
		if (expected <= mig->o.downtime_ns || iter > mig->o.max_iterations)
			return sync_destination(mig, err, len);
		pthread_mutex_lock(&mig->lock);
		b0 = mig->bytes;
		pthread_mutex_unlock(&mig->lock);
		t0 = now_ns();
		if (send_iteration_mark(mig, iter) || send_pages(mig, pending, NULL))
			return set_err(err, len, "sending RAM: %s", strerror(errno));
		memset(pending, 0, words * 8);
	}
}

/* The final answer. 0: the destination runs the VM. -1: it refused or
 * is gone without answering (the source may resume). -2: the outcome is
 * unknown (the answer may have been sent and lost): the source stays
 * paused. */
static int final_answer(struct migration *mig, uint8_t *buf, char *err, size_t len)
{
	struct mig_io io = { sock_read, sock_write, mig };
	char why[ERR_LEN];
	unsigned type;
	size_t n;

	set_timeout(mig->fd, SO_RCVTIMEO, 120);
	if (mig_read_record(&io, &type, buf, &n, why, sizeof(why))) {
		/* The destination writes its answer before it runs the VM and
		 * closes the socket only after: the end of the stream with no
		 * answer means it did not take the VM. A timeout or a reset
		 * could hide an answer. */
		bool ended = errno == 0;
		set_err(err, len, "no final answer from the destination: %s", why);
		return ended ? -1 : -2;
	}
	if (type != MIG_ANSWER || mig_parse_answer(buf, n, why, sizeof(why)))
		return set_err(err, len, "the destination refused the VM: %s",
			       type != MIG_ANSWER ? "not an answer" : why);
	return 0;
}

static void *migration_main(void *arg)
{
	struct migration *mig = arg;
	struct machine *m = mig->m;
	uint64_t words = (m->mem.size / MIG_PAGE + 63) / 64;
	uint64_t *pending = xcalloc(words, 8);
	uint8_t *buf = xmalloc(MIG_REC_MAX + 1);
	uint8_t *used = NULL;
	bool logging = false, held = false, locked = false;
	char err[ERR_LEN];
	uint64_t t_stop = 0;
	int r;

	pthread_setname_np(pthread_self(), "modvm-migrate");
	mig->rec = xmalloc(MIG_REC_MAX);
	set_timeout(mig->fd, SO_RCVTIMEO, 30);
	set_timeout(mig->fd, SO_SNDTIMEO, 30);
	set_nodelay(mig->fd);
	mig->throttle_t0 = now_ns();
	mig->sync_buf = buf;
	if (handshake(mig, buf, err, sizeof(err)))
		goto fail;
	fprintf(stderr, "modvm: migrate: %s accepted the VM\n", mig->uri);
	used = snapshot_ram_pages_in_use(&m->mem);
	if (engine_logs_dirty(m)) {
		if (machine_hold(m)) {
			set_err(err, sizeof(err), "the VM is not running");
			goto fail;
		}
		memset((void *)m->dirty_map, 0, words * 8);
		atomic_store(&m->dirty, m->dirty_map);
		logging = !m->eops->dirty_log_start(m->evm);
		if (!logging)
			atomic_store(&m->dirty, NULL);
		machine_release(m);
	}
	pthread_mutex_lock(&mig->lock);
	mig->state = logging ? MS_PRECOPY : MS_STOPPED;
	mig->mode = logging ? "pre-copy" :
		    "stop-and-copy: the engine has no dirty logging, so all RAM is copied with the VM stopped";
	pthread_mutex_unlock(&mig->lock);
	if (!logging)
		fprintf(stderr, "modvm: migrate: %s\n", mig->mode);
	if (logging && precopy(mig, pending, used, err, sizeof(err)))
		goto fail;

	/* The stop: the last dirty pages, the disks, the state. */
	t_stop = now_ns();
	if (machine_hold(m)) {
		set_err(err, sizeof(err), "the VM stopped running");
		goto fail;
	}
	held = true;
	status_set(mig, MS_STOPPED);
	machine_lock(m);
	locked = true;
	if (block_flush_all(m, err, sizeof(err)))
		goto fail;
	if (logging) {
		m->eops->dirty_log_sync(m->evm);
		collect_dirty(m, pending);
		r = send_iteration_mark(mig, mig->iteration + 1) || send_pages(mig, pending, NULL);
	} else {
		free(used);
		used = snapshot_ram_pages_in_use(&m->mem);
		r = send_iteration_mark(mig, 1) || send_pages(mig, NULL, used);
	}
	if (r) {
		set_err(err, sizeof(err), "sending RAM: %s", strerror(errno));
		goto fail;
	}
	if (send_machine_state(mig, err, sizeof(err)))
		goto fail;
	if (send_record(mig, MIG_END, NULL, 0)) {
		set_err(err, sizeof(err), "sending the end of the stream: %s", strerror(errno));
		goto fail;
	}
	atomic_store(&mig->end_sent, true);
	machine_unlock(m);
	locked = false;
	r = final_answer(mig, buf, err, sizeof(err));
	if (r == -2) {
		/* Never two VMs on one disk: stay paused, say so. */
		pthread_mutex_lock(&mig->lock);
		mig->paused_unknown = true;
		pthread_mutex_unlock(&mig->lock);
		status_fail(mig, MS_FAILED, err);
		fprintf(stderr, "modvm: migrate to %s: %s; the VM stays paused: the destination may be running it. If it is not, `modvm ctl SOCKET resume` continues it here\n",
			mig->uri, err);
		machine_log(m, MODVM_LOG_ERROR, "migration to %s: outcome unknown, VM paused", mig->uri);
		stop_logging(m, logging);
		machine_pause(m); /* user-paused, so releasing the hold keeps it */
		machine_release(m);
		goto out;
	}
	if (r)
		goto fail;
	pthread_mutex_lock(&mig->lock);
	mig->state = MS_COMPLETED;
	mig->downtime_ns = now_ns() - t_stop;
	mig->total_ns = now_ns() - mig->t0;
	fprintf(stderr, "modvm: migrated to %s: %u iterations, %.3f MB sent (%llu pages, %llu zero pages as markers), downtime %.1f ms, total %.1f ms\n",
		mig->uri, mig->iteration, (double)mig->bytes / 1e6,
		(unsigned long long)mig->data_pages, (unsigned long long)mig->zero_pages,
		(double)mig->downtime_ns / 1e6, (double)mig->total_ns / 1e6);
	pthread_mutex_unlock(&mig->lock);
	stop_logging(m, logging);
	/* The VM stays held: its vCPUs never run here again. */
	machine_request(m, REQUEST_MIGRATED);
	goto out;
fail:
	if (locked)
		machine_unlock(m);
	if (logging || held) {
		if (!held)
			held = !machine_hold(m);
		if (held)
			stop_logging(m, logging); /* the vCPUs are parked */
		else
			atomic_store(&m->dirty, NULL); /* the machine is stopping */
	}
	if (held)
		machine_release(m);
	status_fail(mig, atomic_load(&mig->cancel) ? MS_CANCELLED : MS_FAILED,
		    atomic_load(&mig->cancel) ? "cancelled (migrate-cancel)" : err);
	fprintf(stderr, "modvm: migrate to %s failed: %s; the VM keeps running here\n",
		mig->uri, atomic_load(&mig->cancel) ? "cancelled (migrate-cancel)" : err);
	machine_log(m, MODVM_LOG_WARN, "migration to %s failed, the VM keeps running: %s", mig->uri,
		    atomic_load(&mig->cancel) ? "cancelled" : err);
out:
	close(mig->fd);
	mig->fd = -1;
	free(used);
	free(pending);
	free(buf);
	free(mig->rec);
	mig->rec = NULL;
	atomic_store(&mig->finished, true);
	return NULL;
}

struct migration *migration_start(struct machine *m, int fd, const char *uri,
				  const struct migrate_opts *o, char *err,
				  size_t len)
{
	struct migration *mig;
	uint64_t words = (m->mem.size / MIG_PAGE + 63) / 64;

	if (!m->eops || !machine_is_started(m)) {
		set_err(err, len, "the VM is not running");
		return NULL;
	}
	if (m->resume_from && m->mem.private_image) {
		set_err(err, len, "a VM resumed from a snapshot maps its RAM from the snapshot's image: migrating it is not supported yet");
		return NULL;
	}
	if (!m->dirty_map) {
		m->dirty_pages = m->mem.size / MIG_PAGE;
		m->dirty_map = xcalloc(words, 8);
	}
	mig = xcalloc(1, sizeof(*mig));
	mig->m = m;
	mig->fd = fd;
	mig->uri = xstrdup(uri);
	mig->o = *o;
	mig->t0 = now_ns();
	mig->mode = "pre-copy";
	pthread_mutex_init(&mig->lock, NULL);
	if (pthread_create(&mig->thread, NULL, migration_main, mig)) {
		set_err(err, len, "cannot start the migration thread: %s", strerror(errno));
		pthread_mutex_destroy(&mig->lock);
		free(mig->uri);
		free(mig);
		return NULL;
	}
	return mig;
}

bool migration_active(struct migration *mig)
{
	return mig && !atomic_load(&mig->finished);
}

void *migration_status(struct migration *mig)
{
	json_t *j;

	if (!mig)
		return json_pack("{s:s}", "status", "none");
	pthread_mutex_lock(&mig->lock);
	uint64_t total = mig->state < MS_COMPLETED ? now_ns() - mig->t0 : mig->total_ns;
	j = json_pack("{s:s,s:s,s:s,s:i,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
		"status", state_names[mig->state], "uri", mig->uri, "mode", mig->mode,
		"iteration", (int)mig->iteration, "bytes-sent", (json_int_t)mig->bytes,
		"pages-sent", (json_int_t)mig->data_pages,
		"zero-pages", (json_int_t)mig->zero_pages,
		"remaining", (json_int_t)mig->remaining,
		"dirty-rate-pages-per-s", (json_int_t)mig->dirty_rate,
		"bandwidth-bytes-per-s", (json_int_t)mig->rate,
		"expected-downtime-ms", (json_int_t)(mig->expected_ns / 1000000),
		"total-ms", (json_int_t)(total / 1000000));
	if (mig->state == MS_COMPLETED)
		json_object_set_new(j, "downtime-ms", json_integer((json_int_t)(mig->downtime_ns / 1000000)));
	if (mig->error[0])
		json_object_set_new(j, "error", json_string(mig->error));
	if (mig->paused_unknown)
		json_object_set_new(j, "paused", json_string("the outcome is unknown: the VM stays paused here, the destination may be running it"));
	pthread_mutex_unlock(&mig->lock);
	return j;
}

bool migration_cancel(struct migration *mig)
{
	/* Once the whole VM is sent, the destination may be running it:
	 * cutting the connection then could leave two VMs running. */
	if (mig && !atomic_load(&mig->end_sent)) {
		atomic_store(&mig->cancel, true);
		if (mig->fd >= 0)
			shutdown(mig->fd, SHUT_RDWR); /* unblock a send or recv */
		return true;
	}
	return false;
}

void migration_free(struct migration *mig)
{
	if (!mig)
		return;
	if (!atomic_load(&mig->finished) && !migration_cancel(mig) && mig->fd >= 0)
		shutdown(mig->fd, SHUT_RDWR); /* the machine is going away */
	pthread_join(mig->thread, NULL);
	pthread_mutex_destroy(&mig->lock);
	free(mig->uri);
	free(mig);
}

/* ---- the destination ---------------------------------------------------- */

int migration_parse_uri(const char *uri, char *host, size_t host_len,
			char *port, size_t port_len, char *err, size_t len)
{
	const char *h, *colon;

	if (strncmp(uri, "tcp:", 4))
		return set_err(err, len, "\"%s\": expected tcp:HOST:PORT", uri);
	h = uri + 4;
	colon = strrchr(h, ':');
	if (!colon || !colon[1] || strspn(colon + 1, "0123456789") != strlen(colon + 1))
		return set_err(err, len, "\"%s\": expected tcp:HOST:PORT (PORT a number)", uri);
	if (*h == '[' && colon > h && colon[-1] == ']') /* tcp:[::1]:PORT */
		snprintf(host, host_len, "%.*s", (int)(colon - h - 2), h + 1);
	else
		snprintf(host, host_len, "%.*s", (int)(colon - h), h);
	snprintf(port, port_len, "%s", colon + 1);
	return 0;
}

int migration_listen(struct machine *m, const char *uri, char *err, size_t len)
{
	char host[256], port[16];
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
	struct addrinfo *ai = NULL;
	int fd = -1, one = 1, e;

	if (migration_parse_uri(uri, host, sizeof(host), port, sizeof(port), err, len))
		return -1;
	e = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
	if (e)
		return set_err(err, len, "--incoming %s: %s", uri, gai_strerror(e));
	for (struct addrinfo *a = ai; a; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (!bind(fd, a->ai_addr, a->ai_addrlen) && !listen(fd, 1))
			break;
		e = errno;
		close(fd);
		fd = -1;
		errno = e;
	}
	freeaddrinfo(ai);
	if (fd < 0)
		return set_err(err, len, "--incoming %s: cannot listen: %s", uri, strerror(errno));
	m->incoming_fd = fd;
	return 0;
}

struct dest {
	struct machine *m;
	int fd;
};

static int check_device(struct machine *m, size_t i, json_t *d, char *why, size_t len)
{
	const modvm_inst *inst = m->insts[i];
	const struct modvm_plugin_desc *pd = inst->plugin->desc;
	const char *id = json_string_value(json_object_get(d, "id"));
	const char *plugin = json_string_value(json_object_get(d, "plugin"));
	const char *ver = json_string_value(json_object_get(d, "plugin-version"));
	json_t *secs = json_object_get(d, "sections");
	size_t n = 0;

	if (!id || !plugin || strcmp(id, inst->id) || strcmp(plugin, pd->name))
		return set_err(why, len, "device %zu is %s (%s) on the source but %s here: the configs must create the same devices in the same order",
			       i, id ? id : "?", plugin ? plugin : "?", inst->prefix);
	while (pd->state && pd->state[n])
		n++;
	if (!json_is_array(secs) || json_array_size(secs) != n)
		return set_err(why, len, "device %s: the source's %s %s saves %zu state sections, this destination's %s %zu",
			       id, plugin, ver ? ver : "?", json_array_size(secs), pd->version, n);
	for (size_t k = 0; k < n; k++) {
		json_t *s = json_array_get(secs, k);
		const char *name = json_string_value(json_object_get(s, "name"));
		json_int_t v = json_integer_value(json_object_get(s, "version"));
		const struct modvm_state_section *sec = pd->state[k];
		if (!name || strcmp(name, sec->name))
			return set_err(why, len, "device %s: state section %zu is \"%s\" on the source, \"%s\" here",
				       id, k, name ? name : "?", sec->name);
		if (v < (json_int_t)sec->min_version || v > (json_int_t)sec->version)
			return set_err(why, len, "device %s: the source's %s %s saves section %s version %lld; this destination's %s %s loads versions %u to %u: install a matching plugin version here",
				       id, plugin, ver ? ver : "?", name, (long long)v, pd->name,
				       pd->version, sec->min_version, sec->version);
	}
	return 0;
}

/* The handshake's checks: everything that would make the VM fail here,
 * found before the source stops. */
static int dest_hello(void *opaque, const char *text, char *why, size_t len)
{
	struct dest *d = opaque;
	struct machine *m = d->m;
	const struct vm_config *c = m->cfg;
	json_t *j = json_loads(text, 0, NULL), *devs;
	const char *model, *engine;
	const struct modvm_cpu_model *cm;
	json_int_t mem, cpus;
	int r = -1;

	if (!json_is_object(j)) {
		set_err(why, len, "the source's description is not a JSON object");
		goto out;
	}
	if (json_integer_value(json_object_get(j, "format")) != MIG_FORMAT) {
		set_err(why, len, "stream format %lld, this destination reads %d",
			(long long)json_integer_value(json_object_get(j, "format")), MIG_FORMAT);
		goto out;
	}
	mem = json_integer_value(json_object_get(j, "memory"));
	cpus = json_integer_value(json_object_get(j, "cpus"));
	model = json_string_value(json_object_get(j, "cpu-model"));
	engine = json_string_value(json_object_get(j, "engine"));
	devs = json_object_get(j, "devices");
	if ((uint64_t)mem != m->mem.size) {
		set_err(why, len, "the source VM has %lld bytes of RAM, this destination's config %llu: give both the same memory",
			(long long)mem, (unsigned long long)m->mem.size);
		goto out;
	}
	if (cpus != (json_int_t)m->ncpus) {
		set_err(why, len, "the source VM has %lld cpus, this destination's config %u",
			(long long)cpus, m->ncpus);
		goto out;
	}
	cm = model ? cpu_model_find(model) : NULL;
	if (!cm) {
		set_err(why, len, "CPU model \"%s\" is unknown to this destination", model ? model : "?");
		goto out;
	}
	if (!cm->migratable || !c || !c->model || strcmp(model, c->model)) {
		set_err(why, len, cm->migratable ? "the source runs CPU model %s, this destination's config gives %s: the guest would see its CPU change"
						 : "CPU model %s is not migratable (it passes the host's CPU through)%s",
			model, cm->migratable ? (c && c->model ? c->model : "none") : "");
		goto out;
	}
	if (!json_is_array(devs) || json_array_size(devs) != m->ninsts) {
		set_err(why, len, "the source VM has %zu devices, this destination's config creates %zu: the configs must create the same devices",
			json_array_size(devs), m->ninsts);
		goto out;
	}
	for (size_t i = 0; i < m->ninsts; i++)
		if (check_device(m, i, json_array_get(devs, i), why, len))
			goto out;
	machine_log(m, MODVM_LOG_INFO, "migration: accepting %s from engine %s, CPU model %s",
		    json_string_value(json_object_get(j, "name")), engine ? engine : "?", model);
	r = 0;
out:
	json_decref(j);
	return r;
}

static void dest_pages(void *opaque, const uint64_t *page, size_t n, const uint8_t *data)
{
	struct dest *d = opaque;

	for (size_t i = 0; i < n; i++)
		memcpy(d->m->mem.host + page[i] * MIG_PAGE, data + i * MIG_PAGE, MIG_PAGE);
}

static void dest_zero(void *opaque, uint64_t first, uint64_t count)
{
	struct dest *d = opaque;
	struct vm_memory *mem = &d->m->mem;

	/* A hole in the memfd reads as zeros and costs nothing. */
	if (fallocate(mem->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)(first * MIG_PAGE), (off_t)(count * MIG_PAGE)))
		memset(mem->host + first * MIG_PAGE, 0, count * MIG_PAGE);
}

static int load_received(struct machine *m, const struct mig_received *r,
			 char *err, size_t len)
{
	int rc = 0;

	/* The clock first: post_load hooks re-arm timers against it. */
	m->clock.base_virt = r->virtual_ns;
	m->clock.boot_wall_ns = r->boot_wall_ns;
	machine_lock(m);
	for (size_t i = 0; i < m->ninsts && !rc; i++)
		rc = snapshot_load_device(m->insts[i], "migration stream", r->dev[i],
					  r->dev_len[i], err, len);
	machine_unlock(m);
	for (unsigned i = 0; i < m->ncpus && !rc; i++) {
		char msg[ERR_LEN];
		if (snapshot_load_cpu(m, i, r->cpu[i], r->cpu_len[i], msg, sizeof(msg)))
			rc = set_err(err, len, "migration stream: cpu %u: %s", i, msg);
	}
	return rc;
}

/* Wait for the source's connection, waking for a stop request. */
static int accept_source(struct machine *m, char *err, size_t len)
{
	for (;;) {
		struct pollfd p = { .fd = m->incoming_fd, .events = POLLIN };
		int n = poll(&p, 1, 200);
		pthread_mutex_lock(&m->req_lock);
		int req = m->request;
		pthread_mutex_unlock(&m->req_lock);
		if (req)
			return set_err(err, len, "stopped while waiting for the incoming VM");
		if (n < 0 && errno != EINTR)
			return set_err(err, len, "waiting for the incoming VM: %s", strerror(errno));
		if (n > 0) {
			int fd = accept4(m->incoming_fd, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0)
				return fd;
		}
	}
}

int migration_incoming(struct machine *m, char *err, size_t len)
{
	struct dest d = { m, -1 };
	struct mig_io io = { dest_read, dest_write, &d.fd };
	struct mig_sink s = {
		.npages = m->mem.size / MIG_PAGE, .ndevices = (unsigned)m->ninsts,
		.ncpus = m->ncpus, .hello = dest_hello, .pages = dest_pages,
		.zero = dest_zero, .opaque = &d,
	};
	struct mig_received r;
	uint64_t t0;
	int rc;

	fprintf(stderr, "modvm: waiting for the incoming VM on %s\n", m->incoming);
	d.fd = accept_source(m, err, len);
	if (d.fd < 0)
		return -1;
	close(m->incoming_fd); /* one VM per --incoming */
	m->incoming_fd = -1;
	t0 = host_monotonic_ns();
	set_timeout(d.fd, SO_RCVTIMEO, 60);
	set_timeout(d.fd, SO_SNDTIMEO, 60);
	set_nodelay(d.fd);
	mig_received_init(&r, &s);
	rc = mig_receive(&io, &s, &r, err, len);
	if (!rc)
		rc = load_received(m, &r, err, len);
	if (rc) {
		mig_answer(&io, false, err);
	} else if (mig_answer(&io, true, NULL)) {
		rc = set_err(err, len, "cannot tell the source that the VM arrived: %s (not starting it: the source keeps it)",
			     strerror(errno));
	} else {
		fprintf(stderr, "modvm: migration: VM received in %.1f ms (%llu pages, %llu zero pages, %u iterations); running it\n",
			(double)(host_monotonic_ns() - t0) / 1e6, (unsigned long long)r.data_pages,
			(unsigned long long)r.zero_pages, r.iterations);
	}
	mig_received_free(&r, &s);
	close(d.fd);
	return rc;
}
