/* net-user: user-mode networking through libslirp, no root needed. The
 * guest sees a router at 10.0.2.2 (the host's loopback), a DNS forwarder at
 * 10.0.2.3 and a DHCP server that leases 10.0.2.15; its TCP and UDP
 * connections become the host's own sockets. Host ports can be forwarded
 * into the guest (hostfwd). Driven by the core's event loop: each socket
 * libslirp polls is an fd watch, its timers are virtual-clock timers, so
 * nothing runs while the VM is paused. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <slirp/libslirp.h>

#include <modvm/modvm.h>
#include <modvm/net.h>

#define RXQ_MAX 256  /* frames kept while the NIC has no buffers */

struct poll_ent {     /* one fd libslirp asked to poll, the last fill */
	int fd;
	int events;       /* SLIRP_POLL_* */
	int revents;
};

struct watch_ent {    /* an fd watch of ours */
	int fd;
	unsigned events;  /* MODVM_FD_* */
	modvm_watch *w;
};

struct frame {
	size_t len;
	uint8_t data[];
};

struct user {
	const struct modvm_host *host;
	modvm_inst *inst;
	modvm_net *net;
	Slirp *slirp;
	modvm_timer *poll_timer;      /* libslirp's own timeouts */
	struct poll_ent *pfd;
	size_t npfd, cap_pfd;
	struct watch_ent *watches;
	size_t nwatches, cap_watches;
	struct frame *rxq[RXQ_MAX];   /* ring of frames for the guest */
	unsigned rx_head, rx_count;
	bool polling;                 /* inside slirp_pollfds_poll */
	uint64_t rx_dropped;
};

struct user_timer {
	struct user *u;
	modvm_timer *t;
	SlirpTimerCb cb;
	void *cb_opaque;
};

static void sync_watches(struct user *u);

/* ---- frames to the guest ------------------------------------------------- */

static void rxq_flush(struct user *u)
{
	while (u->rx_count) {
		struct frame *f = u->rxq[u->rx_head];
		if (!modvm_net_deliver(u->host, u->net, 0, f->data, f->len))
			return;
		free(f);
		u->rx_head = (u->rx_head + 1) % RXQ_MAX;
		u->rx_count--;
	}
}

/* libslirp has a frame for the guest. Kept in order behind earlier ones
 * while the NIC has no room; past RXQ_MAX dropped (TCP resends). */
static ssize_t cb_send_packet(const void *buf, size_t len, void *opaque)
{
	struct user *u = opaque;
	struct frame *f;

	if (!u->rx_count && modvm_net_deliver(u->host, u->net, 0, buf, len))
		return (ssize_t)len;
	if (u->rx_count == RXQ_MAX || !(f = malloc(sizeof(*f) + len))) {
		u->rx_dropped++;
		return (ssize_t)len;
	}
	f->len = len;
	memcpy(f->data, buf, len);
	u->rxq[(u->rx_head + u->rx_count++) % RXQ_MAX] = f;
	return (ssize_t)len;
}

static void cb_guest_error(const char *msg, void *opaque)
{
	struct user *u = opaque;

	u->host->log(u->inst, MODVM_LOG_DEBUG, "guest error: %s", msg);
}

/* libslirp's clock is the VM's: TCP timers stop while it is paused. */
static int64_t cb_clock_get_ns(void *opaque)
{
	struct user *u = opaque;

	return (int64_t)u->host->clock_ns(u->inst);
}

static void user_timer_fired(void *opaque)
{
	struct user_timer *t = opaque;

	t->cb(t->cb_opaque);
	sync_watches(t->u);
}

static void *cb_timer_new(SlirpTimerCb cb, void *cb_opaque, void *opaque)
{
	struct user *u = opaque;
	struct user_timer *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	*t = (struct user_timer){ .u = u, .cb = cb, .cb_opaque = cb_opaque };
	t->t = u->host->timer_new(u->inst, user_timer_fired, t);
	if (!t->t) {
		free(t);
		return NULL;
	}
	return t;
}

static void cb_timer_free(void *timer, void *opaque)
{
	struct user_timer *t = timer;

	(void)opaque;
	if (!t)
		return;
	t->u->host->timer_free(t->t);
	free(t);
}

static void cb_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
	struct user_timer *t = timer;

	(void)opaque;
	if (t)
		t->u->host->timer_mod(t->t, expire_ms < 0 ? 0 : (uint64_t)expire_ms * 1000000u);
}

static void cb_register_poll_fd(int fd, void *opaque)
{
	(void)fd;
	(void)opaque;
}

static void cb_unregister_poll_fd(int fd, void *opaque)
{
	(void)fd;
	(void)opaque;
}

static void cb_notify(void *opaque)
{
	sync_watches(opaque);
}

static const SlirpCb callbacks = {
	.send_packet = cb_send_packet,
	.guest_error = cb_guest_error,
	.clock_get_ns = cb_clock_get_ns,
	.timer_new = cb_timer_new,
	.timer_free = cb_timer_free,
	.timer_mod = cb_timer_mod,
	.register_poll_fd = cb_register_poll_fd,
	.unregister_poll_fd = cb_unregister_poll_fd,
	.notify = cb_notify,
};

/* ---- the event loop: libslirp's poll set as fd watches -------------------- */

static int add_poll(int fd, int events, void *opaque)
{
	struct user *u = opaque;

	if (u->npfd == u->cap_pfd) {
		size_t cap = u->cap_pfd ? u->cap_pfd * 2 : 16;
		struct poll_ent *p = realloc(u->pfd, cap * sizeof(*p));
		if (!p)
			return -1;
		u->pfd = p;
		u->cap_pfd = cap;
	}
	u->pfd[u->npfd] = (struct poll_ent){ .fd = fd, .events = events };
	return (int)u->npfd++;
}

static int get_revents(int idx, void *opaque)
{
	struct user *u = opaque;

	return idx >= 0 && (size_t)idx < u->npfd ? u->pfd[idx].revents : 0;
}

static unsigned want(const struct user *u, int fd)
{
	unsigned ev = 0;

	for (size_t i = 0; i < u->npfd; i++) {
		if (u->pfd[i].fd != fd)
			continue;
		if (u->pfd[i].events & (SLIRP_POLL_IN | SLIRP_POLL_PRI))
			ev |= MODVM_FD_IN;
		if (u->pfd[i].events & SLIRP_POLL_OUT)
			ev |= MODVM_FD_OUT;
	}
	return ev;
}

static void fd_ready(void *opaque, int fd, unsigned revents);

static struct watch_ent *watch_find(struct user *u, int fd)
{
	for (size_t i = 0; i < u->nwatches; i++)
		if (u->watches[i].fd == fd)
			return &u->watches[i];
	return NULL;
}

static void watch_add(struct user *u, int fd, unsigned ev)
{
	modvm_watch *w;

	if (u->nwatches == u->cap_watches) {
		size_t cap = u->cap_watches ? u->cap_watches * 2 : 16;
		struct watch_ent *p = realloc(u->watches, cap * sizeof(*p));
		if (!p)
			return;
		u->watches = p;
		u->cap_watches = cap;
	}
	w = u->host->fd_watch(u->inst, fd, ev, fd_ready, u);
	if (w)
		u->watches[u->nwatches++] = (struct watch_ent){ fd, ev, w };
}

/* Ask libslirp what it polls now and make the watches say the same; arm
 * the timer for its next timeout. */
static void sync_watches(struct user *u)
{
	uint32_t timeout = UINT32_MAX;

	if (u->polling || !u->slirp)
		return;
	u->npfd = 0;
	slirp_pollfds_fill(u->slirp, &timeout, add_poll, u);
	for (size_t i = 0; i < u->nwatches;) {
		struct watch_ent *e = &u->watches[i];
		unsigned ev = want(u, e->fd);
		if (!ev) {
			u->host->fd_unwatch(e->w);
			*e = u->watches[--u->nwatches];
			continue;
		}
		if (ev != e->events) {
			u->host->fd_watch_events(e->w, ev);
			e->events = ev;
		}
		i++;
	}
	for (size_t i = 0; i < u->npfd; i++)
		if (!watch_find(u, u->pfd[i].fd))
			watch_add(u, u->pfd[i].fd, want(u, u->pfd[i].fd));
	if (timeout != UINT32_MAX)
		u->host->timer_mod(u->poll_timer, u->host->clock_ns(u->inst) +
				   (uint64_t)timeout * 1000000u);
}

/* Run libslirp's poll with `fd`'s events (none: only its timers). */
static void run_poll(struct user *u, int fd, unsigned revents)
{
	int r = (revents & MODVM_FD_IN ? SLIRP_POLL_IN : 0) |
		(revents & MODVM_FD_OUT ? SLIRP_POLL_OUT : 0) |
		(revents & MODVM_FD_ERR ? SLIRP_POLL_ERR | SLIRP_POLL_HUP : 0);

	for (size_t i = 0; i < u->npfd; i++)
		u->pfd[i].revents = u->pfd[i].fd == fd ? r & (u->pfd[i].events |
							      SLIRP_POLL_ERR | SLIRP_POLL_HUP) : 0;
	u->polling = true;
	slirp_pollfds_poll(u->slirp, 0, get_revents, u);
	u->polling = false;
	sync_watches(u);
}

static void fd_ready(void *opaque, int fd, unsigned revents)
{
	run_poll(opaque, fd, revents);
}

static void poll_timer_fired(void *opaque)
{
	run_poll(opaque, -1, 0);
}

/* ---- configuration -------------------------------------------------------- */

/* "A.B.C.D/LEN": the guest network; the router is .2, DNS .3, DHCP .15. */
static int parse_net(struct user *u, const char *s, SlirpConfig *c)
{
	char addr[32];
	unsigned len;
	uint32_t net, mask;

	if (sscanf(s, "%31[0-9.]/%u", addr, &len) != 2 || len < 8 || len > 28 ||
	    inet_pton(AF_INET, addr, &c->vnetwork) != 1) {
		u->host->set_error(u->inst, "net \"%s\" is not A.B.C.D/LEN with LEN 8..28", s);
		return -1;
	}
	mask = len ? ~0u << (32 - len) : 0;
	net = ntohl(c->vnetwork.s_addr) & mask;
	c->vnetwork.s_addr = htonl(net);
	c->vnetmask.s_addr = htonl(mask);
	c->vhost.s_addr = htonl(net | 2);
	c->vnameserver.s_addr = htonl(net | 3);
	c->vdhcp_start.s_addr = htonl(net | 15);
	return 0;
}

/* One forward "tcp|udp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT"; an
 * empty host address is 127.0.0.1 (not every interface), an empty guest
 * address the DHCP address. */
static int add_forward(struct user *u, const char *spec)
{
	char proto[4], haddr[32] = "", gaddr[32] = "";
	unsigned hport, gport;
	struct in_addr h, g = { 0 };
	int n = 0;

	if (sscanf(spec, "%3[a-z]:%31[0-9.]:%u-%31[0-9.]:%u%n", proto, haddr, &hport,
		   gaddr, &gport, &n) != 5 &&
	    sscanf(spec, "%3[a-z]::%u-%31[0-9.]:%u%n", proto, &hport, gaddr, &gport, &n) != 4 &&
	    sscanf(spec, "%3[a-z]:%31[0-9.]:%u-:%u%n", proto, haddr, &hport, &gport, &n) != 4 &&
	    sscanf(spec, "%3[a-z]::%u-:%u%n", proto, &hport, &gport, &n) != 3)
		n = 0;
	if (!n || spec[n] || (strcmp(proto, "tcp") && strcmp(proto, "udp")) ||
	    hport > 65535 || !gport || gport > 65535 ||
	    inet_pton(AF_INET, *haddr ? haddr : "127.0.0.1", &h) != 1 ||
	    (*gaddr && inet_pton(AF_INET, gaddr, &g) != 1)) {
		u->host->set_error(u->inst, "hostfwd \"%s\" is not tcp|udp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT",
				   spec);
		return -1;
	}
	if (slirp_add_hostfwd(u->slirp, !strcmp(proto, "udp"), h, (int)hport, g, (int)gport)) {
		u->host->set_error(u->inst, "hostfwd \"%s\": cannot listen on %s:%u: %s",
				   spec, *haddr ? haddr : "127.0.0.1", hport, strerror(errno));
		return -1;
	}
	return 0;
}

/* hostfwd: forwards separated by commas or spaces. */
static int add_forwards(struct user *u, const char *list)
{
	char *copy = strdup(list), *save = NULL;
	int r = 0;

	if (!copy) {
		u->host->set_error(u->inst, "out of memory");
		return -1;
	}
	for (char *t = strtok_r(copy, ", ", &save); t && !r; t = strtok_r(NULL, ", ", &save))
		r = add_forward(u, t);
	free(copy);
	return r;
}

/* ---- the backend ---------------------------------------------------------- */

static void user_close(void *be)
{
	struct user *u = be;

	if (u->slirp)
		slirp_cleanup(u->slirp);
	for (size_t i = 0; i < u->nwatches; i++)
		u->host->fd_unwatch(u->watches[i].w);
	while (u->rx_count) {
		free(u->rxq[u->rx_head]);
		u->rx_head = (u->rx_head + 1) % RXQ_MAX;
		u->rx_count--;
	}
	if (u->poll_timer)
		u->host->timer_free(u->poll_timer);
	free(u->pfd);
	free(u->watches);
	free(u);
}

static void *user_open(const struct modvm_host *host, modvm_inst *inst,
		       modvm_net *net)
{
	struct user *u = calloc(1, sizeof(*u));
	SlirpConfig c = { .version = 4, .in_enabled = true, .if_mtu = 1500,
			  .if_mru = 1500 };

	if (!u) {
		host->set_error(inst, "out of memory");
		return NULL;
	}
	u->host = host;
	u->inst = inst;
	u->net = net;
	c.restricted = host->prop_bool(inst, "restrict");
	c.vhostname = *host->prop_string(inst, "hostname") ?
		      host->prop_string(inst, "hostname") : NULL;
	c.disable_host_loopback = host->prop_bool(inst, "no-host-loopback");
	if (parse_net(u, host->prop_string(inst, "net"), &c))
		goto fail;
	u->poll_timer = host->timer_new(inst, poll_timer_fired, u);
	if (!u->poll_timer)
		goto fail;
	u->slirp = slirp_new(&c, &callbacks, u);
	if (!u->slirp) {
		host->set_error(inst, "libslirp refused the configuration");
		goto fail;
	}
	if (add_forwards(u, host->prop_string(inst, "hostfwd")))
		goto fail;
	sync_watches(u);
	return u;
fail:
	user_close(u);
	return NULL;
}

static int user_send(void *be, unsigned queue, const struct modvm_net_hdr *hdr,
		     const struct iovec *iov, int iovcnt)
{
	struct user *u = be;
	uint8_t buf[MODVM_NET_FRAME_MAX];
	size_t len = 0;

	(void)queue;
	(void)hdr;  /* no offloads announced: always a plain frame */
	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].iov_len > sizeof(buf) - len)
			return MODVM_NET_SENT;   /* the NIC checked: cannot happen */
		memcpy(buf + len, iov[i].iov_base, iov[i].iov_len);
		len += iov[i].iov_len;
	}
	slirp_input(u->slirp, buf, (int)len);
	sync_watches(u);
	return MODVM_NET_SENT;
}

static void user_rx_ready(void *be, unsigned queue)
{
	(void)queue;
	rxq_flush(be);
}

static const struct modvm_net_ops ops = {
	.size = sizeof(ops),
	.flags = MODVM_NET_F_INET_SOCKETS,
	.open = user_open,
	.close = user_close,
	.send = user_send,
	.rx_ready = user_rx_ready,
};

static const struct modvm_prop_desc props[] = {
	MODVM_PROP_STRING_("net", "10.0.2.0/24",
			   "guest network: the router (the host) is .2, DNS .3, the DHCP lease .15"),
	MODVM_PROP_STRING_("hostfwd", "",
			   "host ports forwarded into the guest, e.g. \"tcp:127.0.0.1:8080-:80\" (comma-separated; empty host address: 127.0.0.1)"),
	MODVM_PROP_BOOL_("restrict", "false",
			 "true: the guest reaches nothing outside (only forwarded ports reach it)"),
	MODVM_PROP_BOOL_("no-host-loopback", "false",
			 "true: the router address does not lead to the host's loopback"),
	MODVM_PROP_STRING_("hostname", "", "host name the DHCP server gives the guest"),
	MODVM_PROP_END
};

MODVM_PLUGIN_DEFINE(.kind = MODVM_KIND_NET, .name = "net-user",
		    .version = "1.0.0",
		    .description = "User-mode networking (libslirp): DHCP, DNS, outbound TCP/UDP, host port forwards, no root",
		    .props = props, .ops = &ops);
