/* fdio: read, deliver and write for chardev backends built on file
 * descriptors (stdio, pty, socket, host serial port). See fdio.h for the
 * rules; everything here runs under the machine lock, from fd watches,
 * timers and the front end's calls. */
#include "fdio.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void fdio_ready(void *opaque, int fd, unsigned revents);

static void set_suspended(struct fdio *f, bool suspended)
{
	if (f->watch && f->suspended != suspended)
		f->host->fd_watch_events(f->watch, suspended ? 0 : MODVM_FD_IN);
	f->suspended = suspended;
}

/* Hand buffered input to the front end while it has room. */
static void deliver(struct fdio *f)
{
	if (f->delivering)
		return;
	f->delivering = true;
	while (f->len) {
		size_t room = f->host->chardev_can_receive(f->chr);
		size_t n = room < f->len ? room : f->len;

		if (!n)
			break;
		f->host->chardev_receive(f->chr, f->buf + f->off, n);
		f->off += n;
		f->len -= n;
	}
	f->delivering = false;
	set_suspended(f, f->len != 0);
}

static void unwatch(struct fdio *f)
{
	if (f->watch)
		f->host->fd_unwatch(f->watch);
	f->watch = NULL;
	f->suspended = false;
}

static int watch(struct fdio *f)
{
	if (f->in_fd < 0)
		return 0;
	f->suspended = f->len != 0;
	f->watch = f->host->fd_watch(f->inst, f->in_fd,
				     f->suspended ? 0 : MODVM_FD_IN,
				     fdio_ready, f);
	return f->watch ? 0 : -1;
}

static void hangup(struct fdio *f)
{
	unwatch(f);
	if (f->hup == FDIO_HUP_STOP) {
		/* stdin at EOF: nothing more will come, output goes on */
		f->in_fd = -1;
		return;
	}
	f->hung_up = true;
	if (f->hup == FDIO_HUP_REPOLL && f->repoll)
		f->host->timer_mod(f->repoll, f->host->clock_ns(f->inst) +
					      FDIO_REPOLL_NS);
	if (f->on_hangup)
		f->on_hangup(f->opaque);
}

/* A hung-up pty is looked at again from a timer rather than watched: poll
 * reports POLLHUP without being asked, so a watch would spin. */
static void repoll(void *opaque)
{
	struct fdio *f = opaque;
	int fd = f->in_fd >= 0 ? f->in_fd : f->out_fd;
	struct pollfd p = { .fd = fd, .events = 0 };

	if (!f->hung_up || fd < 0)
		return;
	if (poll(&p, 1, 0) < 0 || (p.revents & (POLLHUP | POLLERR | POLLNVAL))) {
		f->host->timer_mod(f->repoll, f->host->clock_ns(f->inst) +
					      FDIO_REPOLL_NS);
		return;
	}
	f->hung_up = false;
	if (watch(f))
		f->host->log(f->inst, MODVM_LOG_ERROR, "cannot watch fd %d again", fd);
}

static void fdio_ready(void *opaque, int fd, unsigned revents)
{
	struct fdio *f = opaque;
	ssize_t n;

	if ((revents & MODVM_FD_IN) && !f->len) {
		n = read(f->in_fd, f->buf, sizeof(f->buf));
		if (n > 0) {
			f->off = 0;
			f->len = f->filter ? f->filter(f->opaque, f->buf, (size_t)n)
					   : (size_t)n;
			deliver(f);
			return;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		/* 0: end of file or the peer left; EIO: a pty's other side
		 * closed. Either way nothing more comes from this fd now. */
		hangup(f);
		return;
	}
	if (revents & MODVM_FD_ERR)
		hangup(f);
}

static void classify_out(struct fdio *f)
{
	struct stat st;

	f->out_socket = f->out_fifo = false;
	if (f->out_fd < 0 || fstat(f->out_fd, &st))
		return;
	f->out_socket = S_ISSOCK(st.st_mode);
	f->out_fifo = S_ISFIFO(st.st_mode);
}

int fdio_start(struct fdio *f, bool out_shared)
{
	f->out_shared = out_shared;
	f->watch = NULL;
	f->repoll = NULL;
	f->off = f->len = 0;
	classify_out(f);
	if (f->hup == FDIO_HUP_REPOLL) {
		f->repoll = f->host->timer_new(f->inst, repoll, f);
		if (!f->repoll) {
			f->host->set_error(f->inst, "cannot create a timer");
			return -1;
		}
	}
	if (watch(f)) {
		f->host->set_error(f->inst, "cannot watch fd %d", f->in_fd);
		fdio_stop(f);
		return -1;
	}
	return 0;
}

void fdio_stop(struct fdio *f)
{
	unwatch(f);
	if (f->repoll)
		f->host->timer_free(f->repoll);
	f->repoll = NULL;
}

void fdio_accept_input(struct fdio *f)
{
	deliver(f);
}

int fdio_attach(struct fdio *f, int in_fd, int out_fd)
{
	unwatch(f);
	f->in_fd = in_fd;
	f->out_fd = out_fd;
	f->hung_up = false;
	f->out_dead = false;
	classify_out(f);
	return watch(f);
}

void fdio_detach(struct fdio *f)
{
	unwatch(f);
	f->in_fd = -1;
	f->out_fd = -1;
}

/* write() to a pipe whose reader left raises SIGPIPE, which would kill
 * modvm. Block it for this one call and swallow the one we caused. */
static ssize_t write_nosigpipe(int fd, const void *buf, size_t len)
{
	static const struct timespec zero;
	sigset_t pipe_set, old, pending;
	bool was_pending;
	ssize_t n;
	int err;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	sigpending(&pending);
	was_pending = sigismember(&pending, SIGPIPE);
	n = write(fd, buf, len);
	err = errno;
	if (n < 0 && err == EPIPE && !was_pending)
		sigtimedwait(&pipe_set, NULL, &zero);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = err;
	return n;
}

static ssize_t raw_write(struct fdio *f, const uint8_t *buf, size_t len)
{
	if (f->out_shared) {
		/* A blocking fd we do not own (stdout): write only what poll
		 * says fits. A pipe that polls writable has a free page, so
		 * PIPE_BUF bytes go in without blocking. */
		struct pollfd p = { .fd = f->out_fd, .events = POLLOUT };
		if (poll(&p, 1, 0) <= 0 || !(p.revents & POLLOUT)) {
			if (p.revents & (POLLERR | POLLHUP)) {
				errno = EPIPE;
				return -1;
			}
			errno = EAGAIN;
			return -1;
		}
		if (len > PIPE_BUF)
			len = PIPE_BUF;
	}
	if (f->out_socket)
		return send(f->out_fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (f->out_fifo)
		return write_nosigpipe(f->out_fd, buf, len);
	return write(f->out_fd, buf, len);
}

size_t fdio_write(struct fdio *f, const uint8_t *buf, size_t len)
{
	ssize_t n;

	if (f->out_fd < 0 || f->hung_up || f->out_dead || !len)
		return len;
	n = raw_write(f, buf, len);
	if (n >= 0)
		return (size_t)n;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return 0;
	if (errno == EPIPE || errno == EIO || errno == ECONNRESET ||
	    errno == ENOTCONN) {
		if (f->hup == FDIO_HUP_STOP)
			f->out_dead = true;
		else
			hangup(f);
		return len;
	}
	/* Disk full and the like: say so once, then keep the guest going. */
	if (!f->write_error_logged)
		f->host->log(f->inst, MODVM_LOG_ERROR,
			     "write failed, output is dropped: %s", strerror(errno));
	f->write_error_logged = true;
	return len;
}
