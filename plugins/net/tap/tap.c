/* net-tap: the guest's cable is a host tap interface (an existing one, or
 * one created by name when modvm may: CAP_NET_ADMIN). Opened with
 * IFF_VNET_HDR and a 12-byte header (the virtio-net header with
 * num_buffers), so offloads can be carried later without changing the
 * framing; for now TUNSETOFFLOAD asks the kernel for none, so every frame
 * is plain both ways and no offload is announced. The tap is opened at
 * set-up; afterwards only reads and writes. */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <modvm/modvm.h>
#include <modvm/net.h>

#define VNET_HDR 12

struct tap {
	const struct modvm_host *host;
	modvm_inst *inst;
	modvm_net *net;
	int fd;
	modvm_watch *watch;
	uint8_t *buf;           /* header + one frame read from the tap */
	size_t held;            /* a frame of that length waits for the NIC */
	bool tx_waiting;        /* the NIC got MODVM_NET_BUSY */
};

static void tap_watch_set(struct tap *t)
{
	t->host->fd_watch_events(t->watch, (t->held ? 0 : MODVM_FD_IN) |
				 (t->tx_waiting ? MODVM_FD_OUT : 0));
}

static bool deliver(struct tap *t, size_t len)
{
	return modvm_net_deliver(t->host, t->net, 0, t->buf + VNET_HDR, len);
}

/* Frames from the host side until the tap is empty or the NIC is full. */
static void tap_input(struct tap *t)
{
	for (;;) {
		ssize_t r = read(t->fd, t->buf, VNET_HDR + MODVM_NET_FRAME_MAX);
		if (r < 0)
			return;  /* EAGAIN */
		/* No offloads were asked for: a header that says otherwise,
		 * or a frame without its header, is not ours to pass on. */
		if (r < VNET_HDR + 14 || t->buf[0] || t->buf[1])
			continue;
		if (!deliver(t, (size_t)r - VNET_HDR)) {
			t->held = (size_t)r - VNET_HDR;
			tap_watch_set(t);
			return;
		}
	}
}

static void tap_ready(void *opaque, int fd, unsigned revents)
{
	struct tap *t = opaque;

	(void)fd;
	if (revents & MODVM_FD_OUT && t->tx_waiting) {
		t->tx_waiting = false;
		tap_watch_set(t);
		t->host->net_tx_ready(t->net, 0);
	}
	if (revents & MODVM_FD_IN && !t->held)
		tap_input(t);
}

static void tap_rx_ready(void *be, unsigned queue)
{
	struct tap *t = be;

	(void)queue;
	if (!t->held || !deliver(t, t->held))
		return;
	t->held = 0;
	tap_watch_set(t);
	tap_input(t);
}

static int tap_send(void *be, unsigned queue, const struct modvm_net_hdr *hdr,
		    const struct iovec *iov, int iovcnt)
{
	struct tap *t = be;
	static uint8_t plain[VNET_HDR];
	struct iovec v[65];
	ssize_t w;

	(void)queue;
	(void)hdr;  /* no offloads announced: always plain */
	if (iovcnt > 64)
		return MODVM_NET_SENT;  /* a chain the NIC never makes */
	v[0] = (struct iovec){ plain, VNET_HDR };
	memcpy(v + 1, iov, (size_t)iovcnt * sizeof(*iov));
	w = writev(t->fd, v, iovcnt + 1);
	if (w < 0 && errno == EAGAIN) {
		t->tx_waiting = true;
		tap_watch_set(t);
		return MODVM_NET_BUSY;
	}
	if (w < 0)
		t->host->log(t->inst, MODVM_LOG_DEBUG, "write: %s", strerror(errno));
	return MODVM_NET_SENT;
}

static void tap_close(void *be)
{
	struct tap *t = be;

	if (t->watch)
		t->host->fd_unwatch(t->watch);
	if (t->fd >= 0)
		close(t->fd);
	free(t->buf);
	free(t);
}

static int tap_attach(struct tap *t, const char *name)
{
	struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR };
	int hdr = VNET_HDR;

	if (!*name || strlen(name) >= IFNAMSIZ) {
		t->host->set_error(t->inst, "ifname \"%s\" is not an interface name (1 to %d bytes)",
				   name, IFNAMSIZ - 1);
		return -1;
	}
	t->fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (t->fd < 0) {
		t->host->set_error(t->inst, "/dev/net/tun: %s", strerror(errno));
		return -1;
	}
	strcpy(ifr.ifr_name, name);
	if (ioctl(t->fd, TUNSETIFF, &ifr)) {
		t->host->set_error(t->inst, "tap %s: %s%s", name, strerror(errno),
				   errno == EPERM ? " (creating a tap, or using one another user owns, needs CAP_NET_ADMIN)" : "");
		return -1;
	}
	if (ioctl(t->fd, TUNSETVNETHDRSZ, &hdr) || ioctl(t->fd, TUNSETOFFLOAD, 0)) {
		t->host->set_error(t->inst, "tap %s: the vnet header: %s", name, strerror(errno));
		return -1;
	}
	return 0;
}

static void *tap_open(const struct modvm_host *host, modvm_inst *inst,
		      modvm_net *net)
{
	struct tap *t = calloc(1, sizeof(*t));

	if (!t || !(t->buf = malloc(VNET_HDR + MODVM_NET_FRAME_MAX))) {
		free(t);
		host->set_error(inst, "out of memory");
		return NULL;
	}
	t->host = host;
	t->inst = inst;
	t->net = net;
	t->fd = -1;
	if (tap_attach(t, host->prop_string(inst, "ifname")))
		goto fail;
	t->watch = host->fd_watch(inst, t->fd, MODVM_FD_IN, tap_ready, t);
	if (!t->watch)
		goto fail;
	return t;
fail:
	tap_close(t);
	return NULL;
}

static const struct modvm_net_ops ops = {
	.size = sizeof(ops),
	.open = tap_open,
	.close = tap_close,
	.send = tap_send,
	.rx_ready = tap_rx_ready,
};

static const struct modvm_prop_desc props[] = {
	{ .name = "ifname", .type = MODVM_PROP_STRING, .flags = MODVM_PROP_REQUIRED,
	  .help = "tap interface to use; created if it does not exist (needs CAP_NET_ADMIN)" },
	MODVM_PROP_END
};

MODVM_PLUGIN_DEFINE(.kind = MODVM_KIND_NET, .name = "net-tap",
		    .version = "1.0.0",
		    .description = "Host tap interface (IFF_VNET_HDR), existing or created by name",
		    .props = props, .ops = &ops);
