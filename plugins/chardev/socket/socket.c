/* chardev-socket: a Unix socket server for the guest's port (connect with
 * `socat - UNIX-CONNECT:path` or a program). One client at a time; when it
 * leaves the next one is accepted. With no client connected, output is
 * dropped, as on a cable with nothing at the other end. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <modvm/modvm.h>

#include "fdio.h"

struct sock_be {
	struct fdio io;
	const struct modvm_host *host;
	modvm_inst *inst;
	int listen_fd;
	int client_fd;
	modvm_watch *listen_watch;
	char *path;
	ino_t ino;      /* of the socket file we bound, to unlink only ours */
};

static const struct modvm_prop_desc props[] = {
	{ .name = "path", .type = MODVM_PROP_STRING, .flags = MODVM_PROP_REQUIRED,
	  .help = "Unix socket to listen on (a stale socket file is replaced)" },
	MODVM_PROP_BOOL_("wait", "false",
			 "true: do not start the VM until a client has connected"),
	MODVM_PROP_END
};

static void listen_ready(void *opaque, int fd, unsigned revents);

static int watch_listener(struct sock_be *s)
{
	s->listen_watch = s->host->fd_watch(s->inst, s->listen_fd, MODVM_FD_IN,
					    listen_ready, s);
	return s->listen_watch ? 0 : -1;
}

static void client_attach(struct sock_be *s, int fd)
{
	if (s->listen_watch)
		s->host->fd_unwatch(s->listen_watch);
	s->listen_watch = NULL;
	s->client_fd = fd;
	if (fdio_attach(&s->io, fd, fd))
		s->host->log(s->inst, MODVM_LOG_ERROR, "cannot watch the client socket");
	s->host->log(s->inst, MODVM_LOG_INFO, "client connected on %s", s->path);
}

/* fdio saw the client leave (end of file, reset, write error). */
static void client_gone(void *opaque)
{
	struct sock_be *s = opaque;

	fdio_detach(&s->io);
	if (s->client_fd >= 0)
		close(s->client_fd);
	s->client_fd = -1;
	s->host->log(s->inst, MODVM_LOG_INFO, "client left %s", s->path);
	if (watch_listener(s))
		s->host->log(s->inst, MODVM_LOG_ERROR, "cannot watch %s again", s->path);
}

static void listen_ready(void *opaque, int fd, unsigned revents)
{
	struct sock_be *s = opaque;
	int c;

	if (s->client_fd >= 0)
		return;
	c = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (c < 0)
		return; /* EAGAIN, or the client gave up already */
	client_attach(s, c);
}

/* A socket file left by a modvm that died is replaced; one that still
 * answers belongs to a running program and is refused. */
static int clear_path(struct sock_be *s, const struct sockaddr_un *sa)
{
	struct stat st;
	int fd, r;

	if (lstat(s->path, &st))
		return 0;
	if (!S_ISSOCK(st.st_mode)) {
		s->host->set_error(s->inst, "\"%s\" exists and is not a socket; not replacing it",
				   s->path);
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	close(fd);
	if (r == 0) {
		s->host->set_error(s->inst, "socket \"%s\" is in use by another program",
				   s->path);
		return -1;
	}
	unlink(s->path);
	return 0;
}

static int sock_listen(struct sock_be *s)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = strlen(s->path);
	struct stat st;

	if (!len || len >= sizeof(sa.sun_path)) {
		s->host->set_error(s->inst, "socket path \"%s\" is %s (%zu bytes; Unix sockets allow 1 to %zu)",
				   s->path, len ? "too long" : "empty", len,
				   sizeof(sa.sun_path) - 1);
		return -1;
	}
	memcpy(sa.sun_path, s->path, len + 1);
	if (clear_path(s, &sa))
		return -1;
	s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->listen_fd < 0) {
		s->host->set_error(s->inst, "socket: %s", strerror(errno));
		return -1;
	}
	if (bind(s->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(s->listen_fd, 4)) {
		s->host->set_error(s->inst, "cannot listen on \"%s\": %s", s->path,
				   strerror(errno));
		return -1;
	}
	if (!stat(s->path, &st))
		s->ino = st.st_ino;
	/* removed at exit (unlink_ours), also under the sandbox */
	s->host->allow_remove(s->inst, s->path);
	return 0;
}

/* wait = true: block until the first client arrives, before the VM runs. */
static int wait_for_client(struct sock_be *s)
{
	struct pollfd p = { .fd = s->listen_fd, .events = POLLIN };
	int c;

	fprintf(stderr, "modvm: %s waits for a client on %s\r\n",
		s->host->inst_id(s->inst), s->path);
	for (;;) {
		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			break;
		c = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (c >= 0) {
			client_attach(s, c);
			return 0;
		}
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			break;
	}
	s->host->set_error(s->inst, "waiting for a client on \"%s\": %s", s->path,
			   strerror(errno));
	return -1;
}

static void unlink_ours(struct sock_be *s)
{
	struct stat st;

	if (s->ino && !lstat(s->path, &st) && st.st_ino == s->ino)
		unlink(s->path);
}

static void sock_close(void *be)
{
	struct sock_be *s = be;

	fdio_stop(&s->io);
	if (s->listen_watch)
		s->host->fd_unwatch(s->listen_watch);
	if (s->client_fd >= 0)
		close(s->client_fd);
	if (s->listen_fd >= 0) {
		close(s->listen_fd);
		unlink_ours(s);
	}
	free(s->path);
	free(s);
}

static void *sock_open(const struct modvm_host *host, modvm_inst *inst,
		       modvm_chardev *chr)
{
	struct sock_be *s = calloc(1, sizeof(*s));

	if (!s || !(s->path = strdup(host->prop_string(inst, "path")))) {
		free(s);
		host->set_error(inst, "out of memory");
		return NULL;
	}
	s->host = host;
	s->inst = inst;
	s->listen_fd = s->client_fd = -1;
	s->io = (struct fdio){ .host = host, .inst = inst, .chr = chr,
			       .in_fd = -1, .out_fd = -1, .hup = FDIO_HUP_NOTIFY,
			       .on_hangup = client_gone, .opaque = s };
	if (sock_listen(s) || fdio_start(&s->io, false))
		goto fail;
	if (host->prop_bool(inst, "wait") ? wait_for_client(s) : watch_listener(s))
		goto fail;
	return s;
fail:
	sock_close(s);
	return NULL;
}

static size_t sock_write(void *be, const uint8_t *buf, size_t len)
{
	return fdio_write(&((struct sock_be *)be)->io, buf, len);
}

static void sock_accept_input(void *be)
{
	fdio_accept_input(&((struct sock_be *)be)->io);
}

static const struct modvm_chardev_ops ops = {
	.size = sizeof(ops),
	.open = sock_open,
	.close = sock_close,
	.write = sock_write,
	.accept_input = sock_accept_input,
};

MODVM_PLUGIN_DEFINE(.kind = MODVM_KIND_CHARDEV, .name = "chardev-socket",
		    .version = "1.0.0",
		    .description = "Unix socket server, one client at a time",
		    .props = props, .ops = &ops);
