/* net-socket: a cable between two modvm processes (or any program that
 * speaks the framing). Stream mode: one side listens, the other connects
 * (TCP or a Unix socket); every frame is a 4-byte big-endian length and the
 * frame. Datagram mode: one UDP datagram per frame between two fixed
 * addresses. Sockets are made at set-up, before the sandbox: a connecting
 * side whose peer leaves stays unplugged, a listening side takes the next
 * peer. Nothing is reachable but the one peer. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <modvm/modvm.h>
#include <modvm/net.h>

#define LEN_BYTES 4

struct sock {
	const struct modvm_host *host;
	modvm_inst *inst;
	modvm_net *net;
	bool udp;
	int listen_fd, fd;
	modvm_watch *listen_watch, *watch;
	char *unix_path;              /* a Unix socket we bound, removed at close */
	/* stream input: a length and a frame being assembled */
	uint8_t *in;
	size_t in_len;
	bool in_held;                 /* a whole frame waits for the NIC */
	/* stream output: the rest of a frame the socket did not take */
	uint8_t *out;
	size_t out_len, out_off;
	bool tx_waiting;              /* the NIC got MODVM_NET_BUSY */
};

/* ---- addresses ------------------------------------------------------------ */

union addr {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_un un;
};

/* "HOST:PORT" (IPv4) or "unix:PATH"; *len set. */
static int parse_addr(struct sock *s, const char *what, const char *text,
		      bool allow_unix, union addr *a, socklen_t *len)
{
	char host[64];
	unsigned port;
	char tail;

	memset(a, 0, sizeof(*a));
	if (allow_unix && !strncmp(text, "unix:", 5)) {
		size_t l = strlen(text + 5);
		if (!l || l >= sizeof(a->un.sun_path))
			goto bad;
		a->un.sun_family = AF_UNIX;
		memcpy(a->un.sun_path, text + 5, l + 1);
		*len = sizeof(a->un);
		return 0;
	}
	if (sscanf(text, "%63[^:]:%u%c", host, &port, &tail) != 2 || port > 65535 ||
	    inet_pton(AF_INET, host, &a->in.sin_addr) != 1)
		goto bad;
	a->in.sin_family = AF_INET;
	a->in.sin_port = htons((uint16_t)port);
	*len = sizeof(a->in);
	return 0;
bad:
	s->host->set_error(s->inst, "%s \"%s\" is not ADDRESS:PORT (IPv4)%s", what, text,
			   allow_unix ? " or unix:PATH" : "");
	return -1;
}

/* ---- the stream's link ----------------------------------------------------- */

static void peer_ready(void *opaque, int fd, unsigned revents);
static void listen_ready(void *opaque, int fd, unsigned revents);

static void link_set(struct sock *s, bool up)
{
	s->host->net_link_changed(s->net, up);
}

static void peer_attach(struct sock *s, int fd)
{
	s->fd = fd;
	s->in_len = s->out_len = s->out_off = 0;
	s->in_held = false;
	s->watch = s->host->fd_watch(s->inst, fd, MODVM_FD_IN, peer_ready, s);
	if (!s->watch)
		s->host->log(s->inst, MODVM_LOG_ERROR, "cannot watch the peer socket");
	link_set(s, true);
}

/* The peer left (or broke the framing): unplug, take the next one. */
static void peer_gone(struct sock *s, const char *why)
{
	s->host->log(s->inst, MODVM_LOG_INFO, "peer gone: %s", why);
	if (s->watch)
		s->host->fd_unwatch(s->watch);
	s->watch = NULL;
	close(s->fd);
	s->fd = -1;
	s->in_len = s->out_len = s->out_off = 0;
	s->in_held = false;
	link_set(s, false);
	if (s->listen_fd >= 0 && !s->listen_watch)
		s->listen_watch = s->host->fd_watch(s->inst, s->listen_fd, MODVM_FD_IN,
						    listen_ready, s);
	if (s->tx_waiting) {
		s->tx_waiting = false;
		s->host->net_tx_ready(s->net, 0);  /* sends are dropped now */
	}
}

static void listen_ready(void *opaque, int fd, unsigned revents)
{
	struct sock *s = opaque;
	int c;

	(void)revents;
	if (s->fd >= 0)
		return;
	c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (c < 0)
		return;
	s->host->fd_unwatch(s->listen_watch);
	s->listen_watch = NULL;
	peer_attach(s, c);
}

/* ---- receiving ------------------------------------------------------------- */

static size_t frame_len(const struct sock *s)
{
	const uint8_t *p = s->in;

	return (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
}

static bool deliver(struct sock *s, const uint8_t *buf, size_t len)
{
	return modvm_net_deliver(s->host, s->net, 0, buf, len);
}

static void hold_input(struct sock *s, bool hold)
{
	s->in_held = hold;
	if (s->watch)
		s->host->fd_watch_events(s->watch, (hold ? 0 : MODVM_FD_IN) |
				       (s->out_len ? MODVM_FD_OUT : 0));
}

/* Read what is there and hand over whole frames; stop at the first one
 * the NIC cannot take. */
static void stream_input(struct sock *s)
{
	for (;;) {
		size_t need = s->in_len < LEN_BYTES ? LEN_BYTES : LEN_BYTES + frame_len(s);
		ssize_t r;

		if (s->in_len >= LEN_BYTES && need - LEN_BYTES > MODVM_NET_FRAME_MAX) {
			peer_gone(s, "frame length beyond the largest frame");
			return;
		}
		if (s->in_len == need && need > LEN_BYTES) {
			if (!deliver(s, s->in + LEN_BYTES, need - LEN_BYTES)) {
				hold_input(s, true);
				return;
			}
			s->in_len = 0;
			continue;
		}
		r = read(s->fd, s->in + s->in_len, need - s->in_len);
		if (r > 0) {
			s->in_len += (size_t)r;
			continue;
		}
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		peer_gone(s, r ? strerror(errno) : "end of stream");
		return;
	}
}

static void udp_input(struct sock *s)
{
	for (;;) {
		ssize_t r = recv(s->fd, s->in, MODVM_NET_FRAME_MAX, 0);
		if (r < 0)
			return;  /* EAGAIN, or an ICMP error of an earlier send */
		if (!deliver(s, s->in, (size_t)r)) {
			hold_input(s, true);
			s->in_len = (size_t)r;
			return;
		}
	}
}

static void flush_out(struct sock *s);

static void peer_ready(void *opaque, int fd, unsigned revents)
{
	struct sock *s = opaque;

	(void)fd;
	if (revents & MODVM_FD_OUT)
		flush_out(s);
	if (s->fd < 0 || !(revents & (MODVM_FD_IN | MODVM_FD_ERR)))
		return;
	if (s->in_held) {
		/* Not reading: only a hang-up wakes us, and would again. */
		if (revents & MODVM_FD_ERR && !s->udp)
			peer_gone(s, "hang-up while the guest had no receive buffers");
		return;
	}
	if (s->udp)
		udp_input(s);
	else
		stream_input(s);
}

static void sock_rx_ready(void *be, unsigned queue)
{
	struct sock *s = be;

	(void)queue;
	if (!s->in_held || s->fd < 0)
		return;
	if (s->udp) {
		if (!deliver(s, s->in, s->in_len))
			return;
		hold_input(s, false);
		udp_input(s);
		return;
	}
	hold_input(s, false);
	stream_input(s);
}

/* ---- sending --------------------------------------------------------------- */

static void flush_out(struct sock *s)
{
	while (s->out_off < s->out_len) {
		ssize_t w = write(s->fd, s->out + s->out_off, s->out_len - s->out_off);
		if (w < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (w <= 0) {
			peer_gone(s, strerror(errno));
			return;
		}
		s->out_off += (size_t)w;
	}
	s->out_len = s->out_off = 0;
	hold_input(s, s->in_held);
	if (s->tx_waiting) {
		s->tx_waiting = false;
		s->host->net_tx_ready(s->net, 0);
	}
}

static int sock_send(void *be, unsigned queue, const struct modvm_net_hdr *hdr,
		     const struct iovec *iov, int iovcnt)
{
	struct sock *s = be;
	size_t len = 0;

	(void)queue;
	(void)hdr;  /* no offloads announced: a plain frame */
	if (s->fd < 0)
		return MODVM_NET_SENT;  /* unplugged: the frame is lost */
	if (s->out_len) {
		s->tx_waiting = true;
		return MODVM_NET_BUSY;
	}
	for (int i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	if (len > MODVM_NET_FRAME_MAX)
		return MODVM_NET_SENT;
	if (s->udp) {
		struct msghdr m = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };
		if (sendmsg(s->fd, &m, MSG_DONTWAIT) < 0)
			s->host->log(s->inst, MODVM_LOG_DEBUG, "send: %s", strerror(errno));
		return MODVM_NET_SENT;
	}
	s->out[0] = (uint8_t)(len >> 24);
	s->out[1] = (uint8_t)(len >> 16);
	s->out[2] = (uint8_t)(len >> 8);
	s->out[3] = (uint8_t)len;
	s->out_len = LEN_BYTES;
	for (int i = 0; i < iovcnt; i++) {
		memcpy(s->out + s->out_len, iov[i].iov_base, iov[i].iov_len);
		s->out_len += iov[i].iov_len;
	}
	flush_out(s);
	if (s->out_len && s->fd >= 0)
		hold_input(s, s->in_held);  /* watch for room */
	return MODVM_NET_SENT;
}

/* ---- opening --------------------------------------------------------------- */

static int new_socket(struct sock *s, int family, int type)
{
	int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		s->host->set_error(s->inst, "socket: %s", strerror(errno));
	return fd;
}

static int open_listen(struct sock *s, const char *text)
{
	union addr a;
	socklen_t len;
	int one = 1;

	if (parse_addr(s, "listen", text, true, &a, &len))
		return -1;
	if ((s->listen_fd = new_socket(s, a.sa.sa_family, SOCK_STREAM)) < 0)
		return -1;
	if (a.sa.sa_family == AF_INET)
		setsockopt(s->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	else
		unlink(a.un.sun_path);  /* a stale socket of an earlier run */
	if (bind(s->listen_fd, &a.sa, len) || listen(s->listen_fd, 1)) {
		s->host->set_error(s->inst, "cannot listen on %s: %s", text, strerror(errno));
		return -1;
	}
	if (a.sa.sa_family == AF_UNIX)
		s->unix_path = strdup(a.un.sun_path);
	s->listen_watch = s->host->fd_watch(s->inst, s->listen_fd, MODVM_FD_IN,
					    listen_ready, s);
	return s->listen_watch ? 0 : -1;
}

/* Set-up waits (at most 10 s) for the peer's answer. 0, or -1 with errno. */
static int connect_wait(int fd, const union addr *a, socklen_t len)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	socklen_t el = sizeof(int);
	int err = 0;

	if (!connect(fd, &a->sa, len))
		return 0;
	if (errno != EINPROGRESS)
		return -1;
	if (poll(&p, 1, 10000) != 1) {
		errno = ETIMEDOUT;
		return -1;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) || err) {
		errno = err ? err : errno;
		return -1;
	}
	return 0;
}

static int open_connect(struct sock *s, const char *text)
{
	union addr a;
	socklen_t len;
	int fd, one = 1;

	if (parse_addr(s, "connect", text, true, &a, &len))
		return -1;
	if ((fd = new_socket(s, a.sa.sa_family, SOCK_STREAM)) < 0)
		return -1;
	if (a.sa.sa_family == AF_INET)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect_wait(fd, &a, len)) {
		s->host->set_error(s->inst, "cannot connect to %s: %s (start the listening VM first)",
				   text, strerror(errno));
		close(fd);
		return -1;
	}
	peer_attach(s, fd);
	return 0;
}

/* udp = "LOCAL-REMOTE", each ADDRESS:PORT: bound to one, connected to the
 * other, so datagrams from anyone else are never received. */
static int open_udp(struct sock *s, const char *text)
{
	char local[80], remote[80];
	union addr la, ra;
	socklen_t ll, rl;

	if (sscanf(text, "%79[^-]-%79s", local, remote) != 2) {
		s->host->set_error(s->inst, "udp \"%s\" is not LOCAL-REMOTE (ADDRESS:PORT each)", text);
		return -1;
	}
	if (parse_addr(s, "udp local address", local, false, &la, &ll) ||
	    parse_addr(s, "udp remote address", remote, false, &ra, &rl))
		return -1;
	s->udp = true;
	if ((s->fd = new_socket(s, AF_INET, SOCK_DGRAM)) < 0)
		return -1;
	if (bind(s->fd, &la.sa, ll) || connect(s->fd, &ra.sa, rl)) {
		s->host->set_error(s->inst, "udp %s: %s", text, strerror(errno));
		return -1;
	}
	s->watch = s->host->fd_watch(s->inst, s->fd, MODVM_FD_IN, peer_ready, s);
	return s->watch ? 0 : -1;
}

static void sock_close(void *be)
{
	struct sock *s = be;

	if (s->watch)
		s->host->fd_unwatch(s->watch);
	if (s->listen_watch)
		s->host->fd_unwatch(s->listen_watch);
	if (s->fd >= 0)
		close(s->fd);
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	if (s->unix_path)
		unlink(s->unix_path);
	free(s->unix_path);
	free(s->in);
	free(s->out);
	free(s);
}

static void *sock_open(const struct modvm_host *host, modvm_inst *inst,
		       modvm_net *net)
{
	struct sock *s = calloc(1, sizeof(*s));
	const char *l, *c, *u;
	int r;

	if (!s || !(s->in = malloc(LEN_BYTES + MODVM_NET_FRAME_MAX)) ||
	    !(s->out = malloc(LEN_BYTES + MODVM_NET_FRAME_MAX))) {
		if (s)
			free(s->in);
		free(s);
		host->set_error(inst, "out of memory");
		return NULL;
	}
	*s = (struct sock){ .host = host, .inst = inst, .net = net, .listen_fd = -1,
			    .fd = -1, .in = s->in, .out = s->out };
	l = host->prop_string(inst, "listen");
	c = host->prop_string(inst, "connect");
	u = host->prop_string(inst, "udp");
	if (!!*l + !!*c + !!*u != 1) {
		host->set_error(inst, "give exactly one of listen, connect and udp");
		sock_close(s);
		return NULL;
	}
	r = *l ? open_listen(s, l) : *c ? open_connect(s, c) : open_udp(s, u);
	if (r) {
		sock_close(s);
		return NULL;
	}
	return s;
}

/* A listening side is unplugged until its peer arrives. */
static bool sock_link_up(void *be)
{
	return ((struct sock *)be)->fd >= 0;
}

static const struct modvm_net_ops ops = {
	.size = sizeof(ops),
	.open = sock_open,
	.close = sock_close,
	.send = sock_send,
	.rx_ready = sock_rx_ready,
	.link_up = sock_link_up,
};

static const struct modvm_prop_desc props[] = {
	MODVM_PROP_STRING_("listen", "",
			   "wait for the peer on ADDRESS:PORT or unix:PATH (stream, length-prefixed frames)"),
	MODVM_PROP_STRING_("connect", "",
			   "connect to a listening peer at ADDRESS:PORT or unix:PATH when the VM starts"),
	MODVM_PROP_STRING_("udp", "",
			   "LOCAL-REMOTE (ADDRESS:PORT each): one datagram per frame between the two"),
	MODVM_PROP_END
};

MODVM_PLUGIN_DEFINE(.kind = MODVM_KIND_NET, .name = "net-socket",
		    .version = "1.0.0",
		    .description = "A cable to another VM: stream (listen/connect) or UDP socket",
		    .props = props, .ops = &ops);
