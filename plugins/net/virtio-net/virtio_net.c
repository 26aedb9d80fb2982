/* virtio-net: a network adapter over the core's virtio-pci transport
 * (Virtual I/O Device (VIRTIO) Version 1.1, 5.1), its cable a net backend
 * plugin (<modvm/net.h>). One queue pair and the control queue; mergeable
 * receive buffers, link status, receive filtering (promiscuous, all-multi,
 * MAC tables). Offloads are offered only when the backend carries them.
 * The descriptors were checked by the core; the frames, headers and
 * control commands the guest gives are checked here. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modvm/modvm.h>
#include <modvm/net.h>
#include <modvm/virtio.h>

#include "bytes.h"
#include "iov.h"

/* Feature bits (5.1.3). */
#define VIRTIO_NET_F_CSUM           0
#define VIRTIO_NET_F_GUEST_CSUM     1
#define VIRTIO_NET_F_MAC            5
#define VIRTIO_NET_F_GUEST_TSO4     7
#define VIRTIO_NET_F_GUEST_TSO6     8
#define VIRTIO_NET_F_GUEST_ECN      9
#define VIRTIO_NET_F_GUEST_UFO      10
#define VIRTIO_NET_F_HOST_TSO4      11
#define VIRTIO_NET_F_HOST_TSO6      12
#define VIRTIO_NET_F_HOST_ECN       13
#define VIRTIO_NET_F_HOST_UFO       14
#define VIRTIO_NET_F_MRG_RXBUF      15
#define VIRTIO_NET_F_STATUS         16
#define VIRTIO_NET_F_CTRL_VQ        17
#define VIRTIO_NET_F_CTRL_RX        18
#define VIRTIO_NET_F_CTRL_MAC_ADDR  23
#define BIT(f)                      (1ull << (f))

#define VIRTIO_NET_S_LINK_UP        1

/* Control queue (5.1.6.5). */
#define VIRTIO_NET_OK               0
#define VIRTIO_NET_ERR              1
#define VIRTIO_NET_CTRL_RX          0
#define VIRTIO_NET_CTRL_RX_PROMISC  0
#define VIRTIO_NET_CTRL_RX_ALLMULTI 1
#define VIRTIO_NET_CTRL_MAC         1
#define VIRTIO_NET_CTRL_MAC_TABLE_SET 0
#define VIRTIO_NET_CTRL_MAC_ADDR_SET  1

/* struct virtio_net_config (5.1.4) */
#define CFG_MAC      0
#define CFG_STATUS   6
#define CFG_MAX_VQP  8
#define CFG_LEN      10

#define HDR_LEN      12   /* struct virtio_net_hdr with num_buffers (5.1.6) */
#define ETH_HLEN     14
#define ETH_ALEN     6
#define FRAME_PLAIN  (1514 + 4)   /* largest frame without GSO, VLAN tag */
#define MAC_TABLE    64           /* unicast + multicast filter entries */
#define CTRL_MAX     (2 + 2 * 4 + 1024 * ETH_ALEN) /* longest command read */
#define RXQ          0
#define TXQ          1
#define CTRLQ        2
#define NQUEUES      3

struct vnet {
	struct modvm_dev dev;
	struct modvm_virtio_state vio;
	struct modvm_virtio_queue_state vq[NQUEUES];
	/* properties */
	const char *mac_prop;
	const char *pcap_path;
	uint16_t queue_size;
	int32_t slot;
	/* wiring */
	const struct modvm_host *host;
	modvm_virtio_dev *vdev;
	modvm_net *net;
	modvm_timer *tx_timer;    /* continues a long transmit burst */
	FILE *pcap;
	uint64_t offered;
	struct modvm_virtio_elem *rx;  /* queue_size elements for one frame */
	struct modvm_virtio_elem tx, ctrl;
	struct iovec *tx_frame;        /* the frame part of tx, header cut */
	int tx_frame_n;
	struct modvm_net_hdr tx_hdr;
	bool tx_held;                  /* tx holds a frame the backend was busy for */
	bool rx_waiting;               /* the backend waits for rx buffers */
	uint8_t *rx_buf;               /* one frame, linear, with its header */
	uint8_t *ctrl_buf;
	unsigned warned;               /* one log line per kind of bad input */
	/* saved */
	uint8_t mac[ETH_ALEN];
	uint16_t status;
	bool promisc, allmulti, uni_overflow, multi_overflow;
	uint32_t uni_count, multi_count;
	uint8_t mac_table[MAC_TABLE * ETH_ALEN];  /* unicast, then multicast */
	uint64_t rx_packets, tx_packets, rx_dropped, tx_dropped;
};

MODVM_VIRTIO_STATE_SECTION(vnet_virtio_section, struct vnet, vio, vq);

enum warn_kind { W_TX_HDR = 1, W_TX_LEN = 2, W_TX_OFFLOAD = 4, W_RX_BUF = 8 };

static void warn_once(struct vnet *n, unsigned kind, const char *what)
{
	if (n->warned & kind)
		return;
	n->warned |= kind;
	n->host->log(n->dev.inst, MODVM_LOG_WARN, "%s (dropped; logged once)", what);
}

static bool negotiated(struct vnet *n, unsigned bit)
{
	return n->host->virtio_features(n->vdev) & BIT(bit);
}

/* The receive offloads of driver features f, for the backend. */
static uint32_t rx_offloads(uint64_t f)
{
	uint32_t off = 0;

	if (!(f & BIT(VIRTIO_NET_F_GUEST_CSUM)))
		return 0;
	off |= MODVM_NET_OFFLOAD_CSUM;
	if (f & BIT(VIRTIO_NET_F_GUEST_TSO4))
		off |= MODVM_NET_OFFLOAD_TSO4;
	if (f & BIT(VIRTIO_NET_F_GUEST_TSO6))
		off |= MODVM_NET_OFFLOAD_TSO6;
	if (f & BIT(VIRTIO_NET_F_GUEST_ECN))
		off |= MODVM_NET_OFFLOAD_ECN;
	return off;
}

/* ---- pcap (the classic format tcpdump and tshark read) -------------------- */

static void pcap_open(struct vnet *n)
{
	uint8_t h[24] = { 0 };

	le_put(h, 0xa1b2c3d4, 4);
	le_put(h + 4, 2, 2);
	le_put(h + 6, 4, 2);
	le_put(h + 16, MODVM_NET_FRAME_MAX, 4);  /* snaplen */
	le_put(h + 20, 1, 4);                    /* LINKTYPE_ETHERNET */
	fwrite(h, 1, sizeof(h), n->pcap);
	fflush(n->pcap);
}

/* One record, stamped with the VM's wall clock (virtual time). */
static void pcap_frame(struct vnet *n, const struct iovec *iov, int cnt,
		       size_t len)
{
	uint64_t ns = (uint64_t)n->host->boot_wall_ns(n->dev.inst) +
		      n->host->clock_ns(n->dev.inst);
	uint8_t r[16];

	if (!n->pcap)
		return;
	le_put(r, ns / 1000000000u, 4);
	le_put(r + 4, ns / 1000 % 1000000, 4);
	le_put(r + 8, len, 4);
	le_put(r + 12, len, 4);
	fwrite(r, 1, sizeof(r), n->pcap);
	for (int i = 0; i < cnt; i++)
		fwrite(iov[i].iov_base, 1, iov[i].iov_len, n->pcap);
	fflush(n->pcap);
}

/* ---- transmit ------------------------------------------------------------- */

static size_t tx_frame_max(struct vnet *n)
{
	return negotiated(n, VIRTIO_NET_F_HOST_TSO4) || negotiated(n, VIRTIO_NET_F_HOST_TSO6) ||
	       negotiated(n, VIRTIO_NET_F_HOST_UFO) ? MODVM_NET_FRAME_MAX : FRAME_PLAIN;
}

/* The header's offloads, only those the driver negotiated (5.1.6.2). */
static bool tx_hdr_ok(struct vnet *n, const struct modvm_net_hdr *h, size_t len)
{
	uint8_t gso = h->gso_type & (uint8_t)~MODVM_NET_GSO_ECN;

	if (h->flags & ~MODVM_NET_HDR_F_NEEDS_CSUM)
		return false;
	if (h->flags & MODVM_NET_HDR_F_NEEDS_CSUM &&
	    (!negotiated(n, VIRTIO_NET_F_CSUM) ||
	     (size_t)h->csum_start + h->csum_offset + 2 > len))
		return false;
	if (h->gso_type & MODVM_NET_GSO_ECN && !negotiated(n, VIRTIO_NET_F_HOST_ECN))
		return false;
	switch (gso) {
	case MODVM_NET_GSO_NONE: return true;
	case MODVM_NET_GSO_TCPV4: return negotiated(n, VIRTIO_NET_F_HOST_TSO4);
	case MODVM_NET_GSO_TCPV6: return negotiated(n, VIRTIO_NET_F_HOST_TSO6);
	case MODVM_NET_GSO_UDP: return negotiated(n, VIRTIO_NET_F_HOST_UFO);
	}
	return false;
}

/* Take the header and frame of n->tx apart; false: drop it. */
static bool tx_parse(struct vnet *n)
{
	const struct modvm_virtio_elem *e = &n->tx;
	uint8_t h[HDR_LEN];
	size_t len;

	if (e->read_len < HDR_LEN) {
		warn_once(n, W_TX_HDR, "transmit buffer shorter than the 12-byte virtio-net header");
		return false;
	}
	len = e->read_len - HDR_LEN;
	if (len < ETH_HLEN || len > tx_frame_max(n)) {
		warn_once(n, W_TX_LEN, "transmitted frame shorter than an Ethernet header or longer than the negotiated maximum");
		return false;
	}
	iov_copy_from(e->iov, e->nread, 0, h, HDR_LEN);
	n->tx_hdr = (struct modvm_net_hdr){
		.flags = h[0], .gso_type = h[1],
		.hdr_len = (uint16_t)le_get(h + 2, 2),
		.gso_size = (uint16_t)le_get(h + 4, 2),
		.csum_start = (uint16_t)le_get(h + 6, 2),
		.csum_offset = (uint16_t)le_get(h + 8, 2),
	};
	if (!tx_hdr_ok(n, &n->tx_hdr, len)) {
		warn_once(n, W_TX_OFFLOAD, "transmit header asks for an offload that was not negotiated");
		return false;
	}
	n->tx_frame_n = iov_slice(e->iov, e->nread, HDR_LEN, len, n->tx_frame);
	return true;
}

/* Send the frame in n->tx: false if the backend is busy (keep it). */
static bool tx_send(struct vnet *n)
{
	if (n->host->net_send(n->net, 0, &n->tx_hdr, n->tx_frame, n->tx_frame_n) ==
	    MODVM_NET_BUSY)
		return false;
	n->tx_packets++;
	return true;
}

static void process_tx(struct vnet *n)
{
	unsigned budget = n->queue_size;

	if (n->tx_held) {
		if (!tx_send(n))
			return;
		n->tx_held = false;
		n->host->virtio_push(n->vdev, &n->tx, 0);
	}
	while (budget--) {
		if (n->host->virtio_pop(n->vdev, TXQ, &n->tx) <= 0)
			goto done;
		if (!tx_parse(n)) {
			n->tx_dropped++;
		} else {
			size_t len = n->tx.read_len - HDR_LEN;
			pcap_frame(n, n->tx_frame, n->tx_frame_n, len);
			if (!tx_send(n)) {
				n->tx_held = true;  /* tx_ready resumes */
				goto done;
			}
		}
		n->host->virtio_push(n->vdev, &n->tx, 0);
	}
	/* A guest that keeps the queue full does not keep this thread:
	 * the rest goes on from the event loop. */
	n->host->timer_mod(n->tx_timer, n->host->clock_ns(n->dev.inst));
done:
	n->host->virtio_notify(n->vdev, TXQ);
}

static void tx_timer_fired(void *opaque)
{
	process_tx(opaque);
}

static void fe_tx_ready(void *opaque, unsigned queue)
{
	(void)queue;
	process_tx(opaque);
}

/* ---- receive -------------------------------------------------------------- */

static bool mac_in(const uint8_t *table, uint32_t count, const uint8_t *mac)
{
	for (uint32_t i = 0; i < count; i++)
		if (!memcmp(table + i * ETH_ALEN, mac, ETH_ALEN))
			return true;
	return false;
}

/* The receive filter (5.1.6.5.1, 5.1.6.5.2). */
static bool rx_wanted(struct vnet *n, const uint8_t *dst)
{
	static const uint8_t bcast[ETH_ALEN] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

	if (n->promisc)
		return true;
	if (!memcmp(dst, bcast, ETH_ALEN))
		return true;
	if (dst[0] & 1)
		return n->allmulti || n->multi_overflow ||
		       mac_in(n->mac_table + n->uni_count * ETH_ALEN, n->multi_count, dst);
	return !memcmp(dst, n->mac, ETH_ALEN) || n->uni_overflow ||
	       mac_in(n->mac_table, n->uni_count, dst);
}

static bool rx_live(struct vnet *n)
{
	uint8_t s = n->vio.status;

	return (s & MODVM_VIRTIO_CONFIG_S_DRIVER_OK) &&
	       !(s & (MODVM_VIRTIO_CONFIG_S_NEEDS_RESET | MODVM_VIRTIO_CONFIG_S_FAILED)) &&
	       n->vq[RXQ].enable;
}

static bool fe_can_receive(void *opaque, unsigned queue, size_t len)
{
	struct vnet *n = opaque;
	int r;

	(void)len;
	if (queue || !rx_live(n))
		return true;  /* receive() drops: nobody to deliver to */
	r = n->host->virtio_pop(n->vdev, RXQ, &n->rx[0]);
	if (r > 0) {
		n->host->virtio_unpop(n->vdev, RXQ, 1);
		return true;
	}
	n->rx_waiting = r == 0;
	return r != 0;
}

/* Pop buffers until `total` bytes fit (one buffer without MRG_RXBUF):
 * the count, 0 when the guest has not given enough yet (nothing kept),
 * -1 to drop the frame. */
static int rx_take(struct vnet *n, size_t total)
{
	bool mrg = negotiated(n, VIRTIO_NET_F_MRG_RXBUF);
	size_t room = 0;
	unsigned k = 0;

	while (room < total) {
		int r;
		if (k == n->queue_size || (k && !mrg)) {
			n->host->virtio_unpop(n->vdev, RXQ, k);
			warn_once(n, W_RX_BUF, "received frame larger than the receive buffers the guest gave");
			return -1;
		}
		r = n->host->virtio_pop(n->vdev, RXQ, &n->rx[k]);
		if (r < 0)
			return -1;
		if (r == 0) {
			n->host->virtio_unpop(n->vdev, RXQ, k);
			return 0;
		}
		if (!n->rx[k].write_len) {
			n->host->virtio_needs_reset(n->vdev, "receive buffer without a writable part");
			return -1;
		}
		room += n->rx[k++].write_len;
	}
	return (int)k;
}

/* Copy the linear header + frame into the k buffers taken. */
static void rx_fill(struct vnet *n, unsigned k, size_t total)
{
	size_t off = 0;

	le_put(n->rx_buf + 10, k, 2);  /* num_buffers */
	for (unsigned i = 0; i < k; i++) {
		struct modvm_virtio_elem *e = &n->rx[i];
		size_t c = iov_copy_to(e->iov + e->nread, e->nwrite, n->rx_buf + off,
				       total - off);
		n->host->virtio_push(n->vdev, e, (uint32_t)c);
		off += c;
	}
}

/* A received frame's offloads: only those the driver took (the core
 * checked them against what it told the backend; this is the device's
 * own promise to its driver, 5.1.6.4). Plain frames up to FRAME_PLAIN
 * unless the driver takes GSO. */
static bool rx_hdr_ok(struct vnet *n, const struct modvm_net_hdr *h, size_t len)
{
	uint32_t took = rx_offloads(n->host->virtio_features(n->vdev));
	uint8_t gso = h->gso_type & (uint8_t)~MODVM_NET_GSO_ECN;

	if (h->flags & ~(MODVM_NET_HDR_F_NEEDS_CSUM | MODVM_NET_HDR_F_DATA_VALID) ||
	    (h->flags && !(took & MODVM_NET_OFFLOAD_CSUM)) ||
	    (h->flags & MODVM_NET_HDR_F_NEEDS_CSUM &&
	     (size_t)h->csum_start + h->csum_offset + 2 > len))
		return false;
	if (h->gso_type & MODVM_NET_GSO_ECN && !(took & MODVM_NET_OFFLOAD_ECN))
		return false;
	switch (gso) {
	case MODVM_NET_GSO_NONE:
		return len <= FRAME_PLAIN ||
		       (took & (MODVM_NET_OFFLOAD_TSO4 | MODVM_NET_OFFLOAD_TSO6));
	case MODVM_NET_GSO_TCPV4: return took & MODVM_NET_OFFLOAD_TSO4;
	case MODVM_NET_GSO_TCPV6: return took & MODVM_NET_OFFLOAD_TSO6;
	}
	return false;
}

static bool fe_receive(void *opaque, unsigned queue,
		       const struct modvm_net_hdr *hdr, const struct iovec *iov,
		       int iovcnt)
{
	struct vnet *n = opaque;
	uint8_t *b = n->rx_buf;
	size_t len = 0;
	int k;

	for (int i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	if (queue || !rx_live(n) || len < ETH_HLEN || len > MODVM_NET_FRAME_MAX ||
	    !rx_hdr_ok(n, hdr, len)) {
		n->rx_dropped++;
		return true;
	}
	iov_copy_from(iov, (unsigned)iovcnt, 0, b + HDR_LEN, len);
	if (!rx_wanted(n, b + HDR_LEN))
		return true;
	memset(b, 0, HDR_LEN);
	b[0] = hdr->flags;
	b[1] = hdr->gso_type;
	le_put(b + 2, hdr->hdr_len, 2);
	le_put(b + 4, hdr->gso_size, 2);
	le_put(b + 6, hdr->csum_start, 2);
	le_put(b + 8, hdr->csum_offset, 2);
	k = rx_take(n, HDR_LEN + len);
	if (k == 0) {
		n->rx_waiting = true;
		return false;
	}
	if (k < 0) {
		n->rx_dropped++;
		return true;
	}
	rx_fill(n, (unsigned)k, HDR_LEN + len);
	n->rx_packets++;
	pcap_frame(n, &(struct iovec){ b + HDR_LEN, len }, 1, len);
	n->host->virtio_notify(n->vdev, RXQ);
	return true;
}

static void fe_link_changed(void *opaque, bool up)
{
	struct vnet *n = opaque;
	uint16_t s = up ? VIRTIO_NET_S_LINK_UP : 0;

	if (n->status == s)
		return;
	n->status = s;
	if (n->vdev)  /* not while the backend opens */
		n->host->virtio_config_changed(n->vdev);
}

/* ---- control queue (5.1.6.5) --------------------------------------------- */

static uint8_t ctrl_rx(struct vnet *n, uint8_t cmd, const uint8_t *d, size_t len)
{
	if (!negotiated(n, VIRTIO_NET_F_CTRL_RX) || len != 1)
		return VIRTIO_NET_ERR;
	switch (cmd) {
	case VIRTIO_NET_CTRL_RX_PROMISC:
		n->promisc = d[0] != 0;
		return VIRTIO_NET_OK;
	case VIRTIO_NET_CTRL_RX_ALLMULTI:
		n->allmulti = d[0] != 0;
		return VIRTIO_NET_OK;
	}
	return VIRTIO_NET_ERR;
}

/* MAC_TABLE_SET: two tables, le32 entries then the addresses (5.1.6.5.2).
 * More than fits is remembered as overflow: that class is all accepted. */
static uint8_t ctrl_mac_table(struct vnet *n, const uint8_t *d, size_t len)
{
	uint64_t uni, multi;
	size_t mo;

	if (len < 4)
		return VIRTIO_NET_ERR;
	uni = le_get(d, 4);
	if (uni > (len - 4) / ETH_ALEN || len - 4 - uni * ETH_ALEN < 4)
		return VIRTIO_NET_ERR;
	mo = 4 + uni * ETH_ALEN;
	multi = le_get(d + mo, 4);
	if (multi != (len - mo - 4) / ETH_ALEN || (len - mo - 4) % ETH_ALEN)
		return VIRTIO_NET_ERR;
	n->uni_overflow = uni > MAC_TABLE;
	n->uni_count = n->uni_overflow ? 0 : (uint32_t)uni;
	n->multi_overflow = multi > MAC_TABLE - n->uni_count;
	n->multi_count = n->multi_overflow ? 0 : (uint32_t)multi;
	memset(n->mac_table, 0, sizeof(n->mac_table));
	memcpy(n->mac_table, d + 4, n->uni_count * ETH_ALEN);
	memcpy(n->mac_table + n->uni_count * ETH_ALEN, d + mo + 4,
	       n->multi_count * ETH_ALEN);
	return VIRTIO_NET_OK;
}

static uint8_t ctrl_mac(struct vnet *n, uint8_t cmd, const uint8_t *d, size_t len)
{
	switch (cmd) {
	case VIRTIO_NET_CTRL_MAC_TABLE_SET:
		return negotiated(n, VIRTIO_NET_F_CTRL_RX) ? ctrl_mac_table(n, d, len)
							   : VIRTIO_NET_ERR;
	case VIRTIO_NET_CTRL_MAC_ADDR_SET:
		if (!negotiated(n, VIRTIO_NET_F_CTRL_MAC_ADDR) || len != ETH_ALEN)
			return VIRTIO_NET_ERR;
		memcpy(n->mac, d, ETH_ALEN);
		return VIRTIO_NET_OK;
	}
	return VIRTIO_NET_ERR;
}

/* A command is class, command, data (readable), then the ack byte, the
 * last writable one. A command without them cannot even be answered. */
static void ctrl_one(struct vnet *n)
{
	struct modvm_virtio_elem *e = &n->ctrl;
	struct iovec *last;
	uint8_t ack = VIRTIO_NET_ERR;
	size_t len;

	if (e->read_len < 2 || e->write_len < 1) {
		n->host->virtio_needs_reset(n->vdev, "control command without class, command or ack byte");
		return;
	}
	len = e->read_len - 2;
	if (len <= CTRL_MAX) {
		iov_copy_from(e->iov, e->nread, 0, n->ctrl_buf, len + 2);
		if (n->ctrl_buf[0] == VIRTIO_NET_CTRL_RX)
			ack = ctrl_rx(n, n->ctrl_buf[1], n->ctrl_buf + 2, len);
		else if (n->ctrl_buf[0] == VIRTIO_NET_CTRL_MAC)
			ack = ctrl_mac(n, n->ctrl_buf[1], n->ctrl_buf + 2, len);
	}
	last = &e->iov[e->nread + e->nwrite - 1];
	((uint8_t *)last->iov_base)[last->iov_len - 1] = ack;
	n->host->virtio_push(n->vdev, e, (uint32_t)e->write_len);
}

static void process_ctrl(struct vnet *n)
{
	while (n->host->virtio_pop(n->vdev, CTRLQ, &n->ctrl) > 0) {
		ctrl_one(n);
		if (n->vio.status & MODVM_VIRTIO_CONFIG_S_NEEDS_RESET)
			return;
	}
	n->host->virtio_notify(n->vdev, CTRLQ);
}

/* ---- transport callbacks ------------------------------------------------- */

static void vnet_queue_notify(void *opaque, unsigned queue)
{
	struct vnet *n = opaque;

	if (queue == RXQ) {
		if (n->rx_waiting) {
			n->rx_waiting = false;
			n->host->net_rx_ready(n->net, 0);
		}
	} else if (queue == TXQ) {
		process_tx(n);
	} else if (queue == CTRLQ) {
		process_ctrl(n);
	}
}

static void rx_mode_reset(struct vnet *n)
{
	n->promisc = true;   /* until the driver says otherwise (CTRL_RX) */
	n->allmulti = n->uni_overflow = n->multi_overflow = false;
	n->uni_count = n->multi_count = 0;
	memset(n->mac_table, 0, sizeof(n->mac_table));
}

/* The driver reset the device: a held frame is given back unsent. */
static void vnet_virtio_reset(void *opaque)
{
	struct vnet *n = opaque;

	if (n->tx_held)
		n->host->virtio_push(n->vdev, &n->tx, 0);
	n->tx_held = false;
	n->rx_waiting = false;
	n->host->timer_del(n->tx_timer);
	rx_mode_reset(n);
	n->host->net_set_rx_offloads(n->net, 0);
}

/* Before a snapshot: a frame the backend was busy for is sent (dropped
 * if it still is), so the saved rings describe everything. */
static void vnet_drain(void *opaque)
{
	struct vnet *n = opaque;

	if (!n->tx_held)
		return;
	if (!tx_send(n))
		n->tx_dropped++;
	n->tx_held = false;
	n->host->virtio_push(n->vdev, &n->tx, 0);
}

static uint64_t vnet_config_read(void *opaque, unsigned off, unsigned size)
{
	struct vnet *n = opaque;
	uint8_t cfg[CFG_LEN];

	memcpy(cfg + CFG_MAC, n->mac, ETH_ALEN);
	le_put(cfg + CFG_STATUS, n->status, 2);
	le_put(cfg + CFG_MAX_VQP, 1, 2);
	if (off > CFG_LEN || size > CFG_LEN - off)
		return 0;
	return le_get(cfg + off, size);
}

/* 5.1.3.1: features that need others. */
static int vnet_features_ok(void *opaque, uint64_t f)
{
	uint64_t need_ctrl = BIT(VIRTIO_NET_F_CTRL_RX) | BIT(VIRTIO_NET_F_CTRL_MAC_ADDR);
	uint64_t host_gso = BIT(VIRTIO_NET_F_HOST_TSO4) | BIT(VIRTIO_NET_F_HOST_TSO6) |
			    BIT(VIRTIO_NET_F_HOST_UFO);
	uint64_t guest_gso = BIT(VIRTIO_NET_F_GUEST_TSO4) | BIT(VIRTIO_NET_F_GUEST_TSO6) |
			     BIT(VIRTIO_NET_F_GUEST_UFO);
	struct vnet *n = opaque;

	if ((f & need_ctrl) && !(f & BIT(VIRTIO_NET_F_CTRL_VQ)))
		return -1;
	if ((f & host_gso) && !(f & BIT(VIRTIO_NET_F_CSUM)))
		return -1;
	if ((f & guest_gso) && !(f & BIT(VIRTIO_NET_F_GUEST_CSUM)))
		return -1;
	if ((f & BIT(VIRTIO_NET_F_GUEST_ECN)) &&
	    !(f & (BIT(VIRTIO_NET_F_GUEST_TSO4) | BIT(VIRTIO_NET_F_GUEST_TSO6))))
		return -1;
	n->host->net_set_rx_offloads(n->net, rx_offloads(f));
	return 0;
}

/* ---- instance ------------------------------------------------------------ */

/* Offloads the backend carries, as device features. Receive offloads
 * (GUEST_*) only from a backend that delivers frames with them and stops
 * when the driver did not take them (MODVM_NET_OFFLOAD_RX): the device
 * never finishes checksums or segments itself. */
static uint64_t offload_features(uint32_t off)
{
	uint64_t f = 0;

	if (!(off & MODVM_NET_OFFLOAD_CSUM))
		return 0;
	f |= BIT(VIRTIO_NET_F_CSUM);
	if (off & MODVM_NET_OFFLOAD_RX) {
		f |= BIT(VIRTIO_NET_F_GUEST_CSUM);
		if (off & MODVM_NET_OFFLOAD_TSO4)
			f |= BIT(VIRTIO_NET_F_GUEST_TSO4);
		if (off & MODVM_NET_OFFLOAD_TSO6)
			f |= BIT(VIRTIO_NET_F_GUEST_TSO6);
		if (off & MODVM_NET_OFFLOAD_ECN && off & (MODVM_NET_OFFLOAD_TSO4 | MODVM_NET_OFFLOAD_TSO6))
			f |= BIT(VIRTIO_NET_F_GUEST_ECN);
	}
	if (off & MODVM_NET_OFFLOAD_TSO4)
		f |= BIT(VIRTIO_NET_F_HOST_TSO4);
	if (off & MODVM_NET_OFFLOAD_TSO6)
		f |= BIT(VIRTIO_NET_F_HOST_TSO6);
	if (off & MODVM_NET_OFFLOAD_ECN && f & (BIT(VIRTIO_NET_F_HOST_TSO4) | BIT(VIRTIO_NET_F_HOST_TSO6)))
		f |= BIT(VIRTIO_NET_F_HOST_ECN);
	if (off & MODVM_NET_OFFLOAD_UFO)
		f |= BIT(VIRTIO_NET_F_HOST_UFO);
	return f;
}

/* No mac property: 02 (locally administered, unicast) and five bytes of
 * an FNV-1a hash of the VM's name and the device id, the same every run
 * and in every snapshot, different between VMs that have names. */
static void default_mac(struct vnet *n)
{
	const char *parts[] = { n->host->vm_name(n->dev.inst), "/",
				n->host->inst_id(n->dev.inst) };
	uint64_t h = 0xcbf29ce484222325ull;

	for (unsigned i = 0; i < MODVM_COUNTOF(parts); i++)
		for (const char *p = parts[i]; *p; p++)
			h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
	n->mac[0] = 0x02;
	for (unsigned i = 1; i < ETH_ALEN; i++, h >>= 8)
		n->mac[i] = (uint8_t)h;
}

static int parse_mac(struct vnet *n)
{
	unsigned b[ETH_ALEN];
	char tail;

	if (!*n->mac_prop) {
		default_mac(n);
		return 0;
	}
	if (sscanf(n->mac_prop, "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2],
		   &b[3], &b[4], &b[5], &tail) != ETH_ALEN || b[0] & 1) {
		n->host->set_error(n->dev.inst, "mac \"%s\" is not a unicast address like 02:00:00:00:00:01",
				   n->mac_prop);
		return -1;
	}
	for (unsigned i = 0; i < ETH_ALEN; i++)
		n->mac[i] = (uint8_t)b[i];
	return 0;
}

static int alloc_bufs(struct vnet *n)
{
	size_t q = n->queue_size;

	n->rx = calloc(q, sizeof(*n->rx));
	n->tx.iov = calloc(q * 2, sizeof(struct iovec));
	n->tx.gpa = calloc(q, sizeof(uint64_t));
	n->ctrl.iov = calloc(q, sizeof(struct iovec));
	n->ctrl.gpa = calloc(q, sizeof(uint64_t));
	n->rx_buf = malloc(HDR_LEN + MODVM_NET_FRAME_MAX);
	n->ctrl_buf = malloc(CTRL_MAX + 2);
	if (!n->rx || !n->tx.iov || !n->tx.gpa || !n->ctrl.iov || !n->ctrl.gpa ||
	    !n->rx_buf || !n->ctrl_buf)
		return -1;
	n->tx.max = n->ctrl.max = (uint32_t)q;
	n->tx_frame = n->tx.iov + q;
	for (size_t i = 0; i < q; i++) {
		n->rx[i].max = (uint32_t)q;
		n->rx[i].iov = calloc(q, sizeof(struct iovec));
		n->rx[i].gpa = calloc(q, sizeof(uint64_t));
		if (!n->rx[i].iov || !n->rx[i].gpa)
			return -1;
	}
	return 0;
}

static void vnet_destroy(void *dev)
{
	struct vnet *n = dev;

	if (n->net)
		n->host->net_close(n->net);
	n->net = NULL;
	if (n->vdev)
		n->host->virtio_unregister(n->vdev);
	n->vdev = NULL;
	if (n->pcap)
		fclose(n->pcap);
	n->pcap = NULL;
	for (size_t i = 0; n->rx && i < n->queue_size; i++) {
		free(n->rx[i].iov);
		free(n->rx[i].gpa);
	}
	free(n->rx);
	free(n->tx.iov);
	free(n->tx.gpa);
	free(n->ctrl.iov);
	free(n->ctrl.gpa);
	free(n->rx_buf);
	free(n->ctrl_buf);
	n->rx = NULL;
	n->tx.iov = n->ctrl.iov = NULL;
	n->tx.gpa = n->ctrl.gpa = NULL;
	n->rx_buf = n->ctrl_buf = NULL;
}

static const struct modvm_net_frontend vnet_frontend = {
	.size = sizeof(vnet_frontend),
	.can_receive = fe_can_receive,
	.receive = fe_receive,
	.tx_ready = fe_tx_ready,
	.link_changed = fe_link_changed,
};

static int open_outputs(struct vnet *n)
{
	const struct modvm_host *h = n->host;

	if (*n->pcap_path) {
		n->pcap = fopen(n->pcap_path, "wb");
		if (!n->pcap) {
			h->set_error(n->dev.inst, "pcap \"%s\": cannot create it", n->pcap_path);
			return -1;
		}
		pcap_open(n);
	}
	n->net = h->net_open(n->dev.inst, "backend", &vnet_frontend, n);
	if (!n->net)
		return -1;
	n->status = h->net_link_up(n->net) ? VIRTIO_NET_S_LINK_UP : 0;
	n->offered = BIT(VIRTIO_NET_F_MAC) | BIT(VIRTIO_NET_F_STATUS) |
		     BIT(VIRTIO_NET_F_MRG_RXBUF) | BIT(VIRTIO_NET_F_CTRL_VQ) |
		     BIT(VIRTIO_NET_F_CTRL_RX) | BIT(VIRTIO_NET_F_CTRL_MAC_ADDR) |
		     offload_features(h->net_offloads(n->net));
	n->tx_timer = h->timer_new(n->dev.inst, tx_timer_fired, n);
	return n->tx_timer ? 0 : -1;
}

static int vnet_init(void *dev)
{
	struct vnet *n = dev;
	const struct modvm_host *host = n->dev.host;

	n->host = host;
	rx_mode_reset(n);
	if (n->queue_size & (n->queue_size - 1)) {
		host->set_error(n->dev.inst, "queue-size %u is not a power of two", n->queue_size);
		goto fail;
	}
	if (parse_mac(n))
		goto fail;
	if (alloc_bufs(n)) {
		host->set_error(n->dev.inst, "out of memory");
		goto fail;
	}
	if (open_outputs(n))
		goto fail;
	struct modvm_virtio_info info = {
		.size = sizeof(info),
		.device_type = MODVM_VIRTIO_ID_NET,
		.class_code = 0x02, .subclass = 0x00, /* network, Ethernet */
		.slot = n->slot,
		.features = n->offered,
		.num_queues = NQUEUES,
		.queue_size = n->queue_size,
		.config_size = CFG_LEN,
		.config_read = vnet_config_read,
		.queue_notify = vnet_queue_notify,
		.reset = vnet_virtio_reset,
		.features_ok = vnet_features_ok,
		.drain = vnet_drain,
		.opaque = n,
	};
	n->vdev = host->virtio_register(n->dev.inst, &info, &n->vio, n->vq);
	if (!n->vdev)
		goto fail;
	return 0;
fail:
	vnet_destroy(n);
	return -1;
}

static void vnet_reset(void *dev)
{
	struct vnet *n = dev;

	n->host->virtio_reset(n->vdev);
}

/* After a snapshot is loaded: the backend learns again what the restored
 * driver takes (the transport's section came first). */
static int vnet_post_load(void *instance)
{
	struct vnet *n = instance;

	n->host->net_set_rx_offloads(n->net, rx_offloads(n->host->virtio_features(n->vdev)));
	return 0;
}

#define N struct vnet
MODVM_STATE_SECTION_HOOKS(vnet_section, "virtio-net", 1, 1, NULL, vnet_post_load,
	MODVM_F_BYTES(N, mac),
	MODVM_F_U16(N, status),
	MODVM_F_BOOL(N, promisc),
	MODVM_F_BOOL(N, allmulti),
	MODVM_F_BOOL(N, uni_overflow),
	MODVM_F_BOOL(N, multi_overflow),
	MODVM_F_U32(N, uni_count),
	MODVM_F_U32(N, multi_count),
	MODVM_F_BYTES(N, mac_table),
	MODVM_F_U64(N, rx_packets),
	MODVM_F_U64(N, tx_packets),
	MODVM_F_U64(N, rx_dropped),
	MODVM_F_U64(N, tx_dropped));

MODVM_DEVICE_DEFINE(.name = "virtio-net", .version = "1.0.0",
	.description = "Virtio network adapter (virtio 1.x over PCI)",
	.props = MODVM_PROPS(
		MODVM_PROP_BACKEND_("backend", "user", MODVM_KIND_NET,
				    "net backend: user, socket or null (its properties go in the same group)"),
		MODVM_PROP_STRING(N, mac_prop, "mac", "",
				  "MAC address, e.g. 02:00:00:00:00:01 (empty: derived from the VM name and device id, stable across runs)"),
		MODVM_PROP_STRING(N, pcap_path, "pcap", "",
				  "write every frame sent and received to this pcap file (tcpdump, tshark)"),
		MODVM_PROP_INT(N, queue_size, "queue-size", "256", 16, 1024,
			       "size of each queue (power of two)"),
		MODVM_PROP_INT(N, slot, "slot", "-1", -1, 31, "PCI slot, -1: any free")),
	.state = MODVM_STATE(&vnet_virtio_section, &vnet_section),
	.ops = MODVM_DEVICE_OPS(N, .init = vnet_init, .destroy = vnet_destroy,
				.reset = vnet_reset));
#undef N
