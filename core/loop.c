/* The event loop: one thread that sleeps in poll() until a watched fd is
 * ready or the next virtual-clock timer is due, then runs the callbacks
 * under the machine lock. The test harness drives the same round by hand. */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "machine.h"
#include "run.h"
#include "sandbox.h"

int loop_init(struct event_loop *l, char *err, size_t len)
{
	memset(l, 0, sizeof(*l));
	atomic_init(&l->stop, false);
	l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->wake_fd < 0)
		return set_err(err, len, "eventfd: %s", strerror(errno));
	return 0;
}

void loop_destroy(struct machine *m)
{
	struct event_loop *l = &m->loop;

	loop_stop_thread(m);
	while (l->watches) {
		modvm_watch *w = l->watches;
		l->watches = w->next;
		free(w);
	}
	if (l->wake_fd >= 0)
		close(l->wake_fd);
	l->wake_fd = -1;
}

void loop_wake(struct machine *m)
{
	uint64_t one = 1;

	if (m->loop.wake_fd >= 0 && write(m->loop.wake_fd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is already non-zero, a wake is pending */
	}
}

static unsigned to_poll(unsigned ev)
{
	return (ev & MODVM_FD_IN ? POLLIN : 0) | (ev & MODVM_FD_OUT ? POLLOUT : 0);
}

static unsigned from_poll(short rev)
{
	return (rev & POLLIN ? MODVM_FD_IN : 0) | (rev & POLLOUT ? MODVM_FD_OUT : 0) |
	       (rev & (POLLERR | POLLHUP | POLLNVAL) ? MODVM_FD_ERR : 0);
}

static void reap_dead(struct event_loop *l)
{
	for (modvm_watch **pp = &l->watches; *pp;) {
		modvm_watch *w = *pp;
		if (w->dead) {
			*pp = w->next;
			free(w);
		} else {
			pp = &w->next;
		}
	}
}

/* How long to sleep, in ns: until the next timer (virtual time runs at host
 * speed while the VM runs), capped by timeout_ms; -1 = no limit. ppoll's
 * nanosecond timeout keeps a 1 kHz timer from firing a millisecond late. */
static int64_t poll_timeout_ns(struct machine *m, int timeout_ms)
{
	int64_t cap = timeout_ms < 0 ? -1 : (int64_t)timeout_ms * 1000000;
	uint64_t next = timers_next(m), now;

	if (next == UINT64_MAX || (!m->clock.running && !m->clock.manual))
		return cap;
	now = vclock_peek(&m->clock);
	if (next <= now)
		return m->pace.waiting ? pace_poll_ns(m) : 0;
	if (m->clock.manual)
		return cap; /* manual time does not pass while we wait */
	if (cap >= 0 && next - now > (uint64_t)cap)
		return cap;
	return (int64_t)(next - now);
}

int loop_run_once(struct machine *m, int timeout_ms)
{
	struct event_loop *l = &m->loop;
	struct pollfd *pfd;
	modvm_watch **who;
	size_t n = 1, i;
	int ran = 0;
	int64_t timeout;

	machine_lock(m);
	for (modvm_watch *w = l->watches; w; w = w->next)
		n++;
	pfd = xcalloc(n, sizeof(*pfd));
	who = xcalloc(n, sizeof(*who));
	pfd[0] = (struct pollfd){ .fd = l->wake_fd, .events = POLLIN };
	i = 1;
	for (modvm_watch *w = l->watches; w; w = w->next) {
		if (w->dead)
			continue;
		who[i] = w;
		pfd[i++] = (struct pollfd){ .fd = w->fd, .events = (short)to_poll(w->events) };
	}
	n = i;
	timeout = poll_timeout_ns(m, timeout_ms);
	machine_unlock(m);

	struct timespec ts = { (time_t)(timeout / 1000000000), (long)(timeout % 1000000000) };
	if (ppoll(pfd, n, timeout < 0 ? NULL : &ts, NULL) < 0 && errno != EINTR)
		machine_log(m, MODVM_LOG_ERROR, "event loop: poll: %s", strerror(errno));

	machine_lock(m);
	if (pfd[0].revents) {
		uint64_t v;
		if (read(l->wake_fd, &v, sizeof(v)) < 0) {
			/* nothing pending: fine */
		}
	}
	ran += timers_run_due(m, vclock_peek(&m->clock));
	for (i = 1; i < n; i++) {
		modvm_watch *w = who[i];
		if (!pfd[i].revents || w->dead)
			continue;
		w->cb(w->opaque, w->fd, from_poll(pfd[i].revents));
		ran++;
	}
	reap_dead(l);
	machine_unlock(m);
	free(pfd);
	free(who);
	return ran;
}

static void *loop_thread(void *arg)
{
	struct machine *m = arg;

	/* Device callbacks run here, on guest input: the narrow list. */
	if (sandbox_enter(SANDBOX_ROLE_DEVICE, "modvm-loop")) {
		machine_log(m, MODVM_LOG_ERROR, "event loop: sandbox: the kernel refused its filter: %s",
			    strerror(errno));
		machine_request(m, REQUEST_ERROR);
		return NULL;
	}
	while (!atomic_load(&m->loop.stop))
		loop_run_once(m, 1000);
	return NULL;
}

int loop_start_thread(struct machine *m, char *err, size_t len)
{
	int r;

	atomic_store(&m->loop.stop, false);
	r = pthread_create(&m->loop.thread, NULL, loop_thread, m);
	if (r)
		return set_err(err, len, "cannot start the event loop thread: %s",
			       strerror(r));
	m->loop.thread_running = true;
	return 0;
}

void loop_stop_thread(struct machine *m)
{
	if (!m->loop.thread_running)
		return;
	atomic_store(&m->loop.stop, true);
	loop_wake(m);
	pthread_join(m->loop.thread, NULL);
	m->loop.thread_running = false;
}

modvm_watch *loop_watch(struct machine *m, modvm_inst *inst, int fd,
			unsigned events, void (*cb)(void *, int, unsigned),
			void *opaque)
{
	modvm_watch *w;

	if (fd < 0 || !cb) {
		set_err(inst->error, sizeof(inst->error), "invalid fd watch");
		return NULL;
	}
	w = xcalloc(1, sizeof(*w));
	*w = (modvm_watch){ .m = m, .inst = inst, .fd = fd, .events = events,
			    .cb = cb, .opaque = opaque };
	machine_lock(m);
	w->next = m->loop.watches;
	m->loop.watches = w;
	machine_unlock(m);
	loop_wake(m);
	return w;
}

void loop_watch_events(modvm_watch *w, unsigned events)
{
	machine_lock(w->m);
	w->events = events;
	machine_unlock(w->m);
	loop_wake(w->m);
}

void loop_unwatch(modvm_watch *w)
{
	/* Freed by the loop after its current round: a callback may be
	 * removing its own watch. */
	machine_lock(w->m);
	w->dead = true;
	machine_unlock(w->m);
	loop_wake(w->m);
}
