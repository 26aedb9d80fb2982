/* net-tap: the guest's cable is a host tap interface (an existing one, or
 * one created by name when modvm may: CAP_NET_ADMIN). Opened with
 * IFF_VNET_HDR and a 12-byte header (the virtio-net header with
 * num_buffers), so frames carry their offloads both ways: checksum and
 * TCP segmentation (TSO4/6, ECN) from the guest go to the host kernel as
 * they are, and frames to the guest carry them only once its driver said
 * it takes them (set_rx_offloads, TUNSETOFFLOAD); until then the kernel
 * finishes checksums and segments for us. The tap is opened at set-up;
 * afterwards only reads, writes and TUNSETOFFLOAD. */
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

/* What the kernel's tap carries both ways when asked (TUNSETOFFLOAD). */
#define TAP_OFFLOADS (MODVM_NET_OFFLOAD_CSUM | MODVM_NET_OFFLOAD_TSO4 | \
		      MODVM_NET_OFFLOAD_TSO6 | MODVM_NET_OFFLOAD_ECN)

struct tap {
	const struct modvm_host *host;
	modvm_inst *inst;
	modvm_net *net;
	int fd;
	modvm_watch *watch;
	uint8_t *buf;           /* header + one frame read from the tap */
	size_t held;            /* a frame of that length waits for the NIC */
	struct modvm_net_hdr held_hdr;
	bool tx_waiting;        /* the NIC got MODVM_NET_BUSY */
	uint32_t offloads;      /* announced: TAP_OFFLOADS | RX, or 0 */
	bool warned;
};

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

/* The virtio-net header as the tap reads and writes it (little endian
 * on every host modvm runs on; the tap's default for x86). */
static struct modvm_net_hdr hdr_from_tap(const uint8_t *b)
{
	return (struct modvm_net_hdr){
		.flags = b[0], .gso_type = b[1], .hdr_len = get16(b + 2),
		.gso_size = get16(b + 4), .csum_start = get16(b + 6),
		.csum_offset = get16(b + 8),
	};
}

static void hdr_to_tap(uint8_t *b, const struct modvm_net_hdr *h)
{
	memset(b, 0, VNET_HDR);
	b[0] = h->flags;
	b[1] = h->gso_type;
	put16(b + 2, h->hdr_len);
	put16(b + 4, h->gso_size);
	put16(b + 6, h->csum_start);
	put16(b + 8, h->csum_offset);
}

static unsigned tun_flags(uint32_t off)
{
	unsigned f = 0;

	if (off & MODVM_NET_OFFLOAD_CSUM) {
		f |= TUN_F_CSUM;
		if (off & MODVM_NET_OFFLOAD_TSO4)
			f |= TUN_F_TSO4;
		if (off & MODVM_NET_OFFLOAD_TSO6)
			f |= TUN_F_TSO6;
		if (off & MODVM_NET_OFFLOAD_ECN && f & (TUN_F_TSO4 | TUN_F_TSO6))
			f |= TUN_F_TSO_ECN;
	}
	return f;
}

static void tap_watch_set(struct tap *t)
{
	t->host->fd_watch_events(t->watch, (t->held ? 0 : MODVM_FD_IN) |
				 (t->tx_waiting ? MODVM_FD_OUT : 0));
}

static bool deliver(struct tap *t, const struct modvm_net_hdr *h, size_t len)
{
	struct iovec iov = { t->buf + VNET_HDR, len };

	return t->host->net_can_receive(t->net, 0, len) &&
	       t->host->net_receive(t->net, 0, h, &iov, 1);
}

/* Frames from the host side until the tap is empty or the NIC is full.
 * Their offloads are those the kernel was allowed (TUNSETOFFLOAD); the
 * core drops any the guest does not take (frames read before a change). */
static void tap_input(struct tap *t)
{
	for (;;) {
		ssize_t r = read(t->fd, t->buf, VNET_HDR + MODVM_NET_FRAME_MAX);
		struct modvm_net_hdr h;

		if (r < 0)
			return;  /* EAGAIN */
		if (r < VNET_HDR + 14)
			continue;  /* no room for the header and an Ethernet header */
		h = hdr_from_tap(t->buf);
		if (!deliver(t, &h, (size_t)r - VNET_HDR)) {
			t->held = (size_t)r - VNET_HDR;
			t->held_hdr = h;
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
	if (!t->held || !deliver(t, &t->held_hdr, t->held))
		return;
	t->held = 0;
	tap_watch_set(t);
	tap_input(t);
}

static int tap_send(void *be, unsigned queue, const struct modvm_net_hdr *hdr,
		    const struct iovec *iov, int iovcnt)
{
	struct tap *t = be;
	uint8_t h[VNET_HDR];
	struct iovec v[65];
	ssize_t w;

	(void)queue;
	if (iovcnt > 64)
		return MODVM_NET_SENT;  /* a chain the NIC never makes */
	/* the core passes only offloads we announced */
	hdr_to_tap(h, hdr);
	v[0] = (struct iovec){ h, VNET_HDR };
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

static uint32_t tap_offloads(void *be)
{
	return ((struct tap *)be)->offloads;
}

static void tap_set_rx_offloads(void *be, uint32_t off)
{
	struct tap *t = be;

	if (ioctl(t->fd, TUNSETOFFLOAD, tun_flags(off))) {
		if (!t->warned)
			t->host->log(t->inst, MODVM_LOG_WARN,
				     "TUNSETOFFLOAD %#x: %s (frames to the guest keep the offloads of before)",
				     tun_flags(off), strerror(errno));
		t->warned = true;
	}
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
	if (ioctl(t->fd, TUNSETVNETHDRSZ, &hdr)) {
		t->host->set_error(t->inst, "tap %s: the vnet header: %s", name, strerror(errno));
		return -1;
	}
	/* Offloads if this kernel's tap takes them; plain frames to the
	 * guest until its driver says what it takes. */
	if (!ioctl(t->fd, TUNSETOFFLOAD, tun_flags(TAP_OFFLOADS)))
		t->offloads = TAP_OFFLOADS | MODVM_NET_OFFLOAD_RX;
	else
		t->host->log(t->inst, MODVM_LOG_INFO, "tap %s takes no offloads (%s): plain frames only",
			     name, strerror(errno));
	if (ioctl(t->fd, TUNSETOFFLOAD, 0)) {
		t->host->set_error(t->inst, "tap %s: TUNSETOFFLOAD: %s", name, strerror(errno));
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
	.offloads = tap_offloads,
	.set_rx_offloads = tap_set_rx_offloads,
};

static const struct modvm_prop_desc props[] = {
	{ .name = "ifname", .type = MODVM_PROP_STRING, .flags = MODVM_PROP_REQUIRED,
	  .help = "tap interface to use; created if it does not exist (needs CAP_NET_ADMIN)" },
	MODVM_PROP_END
};

MODVM_PLUGIN_DEFINE(.kind = MODVM_KIND_NET, .name = "net-tap",
		    .version = "1.1.0",
		    .description = "Host tap interface (IFF_VNET_HDR, checksum and TSO offloads), existing or created by name",
		    .props = props, .ops = &ops);
