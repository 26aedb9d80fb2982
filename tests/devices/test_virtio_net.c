/* virtio-net driven as a guest driver would, its cable a net-socket UDP
 * pair whose other end is this test: features and config, frames both
 * ways (mergeable buffers, flow control when the guest gave no buffers),
 * the control queue's receive modes and MAC tables, hostile transmit
 * chains (short headers, runts, oversize frames, offloads never
 * negotiated, descriptor loops, addresses outside RAM) that must be
 * dropped or end in NEEDS_RESET and nothing else, and the state section. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "test_virtio_drv.h"

#define NQ        3
#define RXQ       0
#define TXQ       1
#define CTRLQ     2
#define NQSIZE    16
#define QBASE(q)  (0x100000ull + 0x4000ull * (q))
#define BUF(i)    (0x200000ull + 0x1000ull * (i))  /* 4 KiB each */
#define NET_HDR   12

#define F_MAC       (1ull << 5)
#define F_MRG       (1ull << 15)
#define F_STATUS    (1ull << 16)
#define F_CTRL_VQ   (1ull << 17)
#define F_CTRL_RX   (1ull << 18)
#define F_CTRL_MAC  (1ull << 23)
#define F_CSUM      (1ull << 0)
#define F_ALL       (F_MAC | F_MRG | F_STATUS | F_CTRL_VQ | F_CTRL_RX | F_CTRL_MAC)

static const uint8_t our_mac[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x01 };

struct nq {
	uint16_t avail_idx, used_seen;
};

struct net {
	struct drv *d;
	struct nq q[NQ];
	int peer;               /* the test's UDP socket, the cable's far end */
	uint16_t dev_port;
};

/* ---- the cable ---------------------------------------------------------- */

static uint16_t free_udp_port(int *keep)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t l = sizeof(a);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(!bind(fd, (struct sockaddr *)&a, sizeof(a)));
	CU_ASSERT_FATAL(!getsockname(fd, (struct sockaddr *)&a, &l));
	if (keep)
		*keep = fd;
	else
		close(fd);
	return ntohs(a.sin_port);
}

static void peer_send(struct net *n, const void *buf, size_t len)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(n->dev_port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

	CU_ASSERT_EQUAL(sendto(n->peer, buf, len, 0, (struct sockaddr *)&a, sizeof(a)),
			(ssize_t)len);
}

/* A datagram the device sent, or -1 if none came within 200 ms. */
static ssize_t peer_recv(struct net *n, void *buf, size_t len)
{
	struct pollfd p = { .fd = n->peer, .events = POLLIN };

	if (poll(&p, 1, 200) != 1)
		return -1;
	return recv(n->peer, buf, len, 0);
}

/* ---- the driver --------------------------------------------------------- */

static void nq_setup(struct net *n, unsigned q)
{
	uint8_t zero[0x3000] = { 0 };

	hx_mem_write(n->d->h, QBASE(q), zero, sizeof(zero));
	cc_wr(n->d, CC_QSELECT, q, 2);
	cc_wr(n->d, CC_QSIZE, NQSIZE, 2);
	cc_wr(n->d, CC_QDESC, QBASE(q), 4);
	cc_wr(n->d, CC_QDESC + 4, 0, 4);
	cc_wr(n->d, CC_QAVAIL, QBASE(q) + 0x1000, 4);
	cc_wr(n->d, CC_QAVAIL + 4, 0, 4);
	cc_wr(n->d, CC_QUSED, QBASE(q) + 0x2000, 4);
	cc_wr(n->d, CC_QUSED + 4, 0, 4);
	cc_wr(n->d, CC_QENABLE, 1, 2);
	n->q[q] = (struct nq){ 0, 0 };
}

static void nq_desc(struct net *n, unsigned q, unsigned i, uint64_t addr,
		    uint32_t len, uint16_t flags, uint16_t next)
{
	desc_put(n->d, QBASE(q), i, addr, len, flags, next);
}

static void nq_kick(struct net *n, unsigned q, uint16_t head)
{
	uint64_t avail = QBASE(q) + 0x1000;

	put16(n->d, avail + 4 + 2 * (n->q[q].avail_idx % NQSIZE), head);
	n->q[q].avail_idx++;
	put16(n->d, avail + 2, n->q[q].avail_idx);
	hx_mmio_write(n->d->h, n->d->notify + q * n->d->notify_mult, q, 2);
}

/* The next used entry of q: its length, or -1 if the ring did not move. */
static int64_t nq_used(struct net *n, unsigned q, uint16_t *id)
{
	uint64_t used = QBASE(q) + 0x2000;
	uint32_t e[2];

	if (mem16(n->d, used + 2) == n->q[q].used_seen)
		return -1;
	hx_mem_read(n->d->h, used + 4 + 8 * (n->q[q].used_seen % NQSIZE), e, 8);
	n->q[q].used_seen++;
	if (id)
		*id = (uint16_t)e[0];
	return e[1];
}

static struct net *net_new_props(uint64_t features, const char *p1, const char *p2)
{
	struct net *n = calloc(1, sizeof(*n));
	char udp[80];
	uint16_t peer_port;

	n->d = calloc(1, sizeof(*n->d));
	n->d->h = hx_new(0);
	peer_port = free_udp_port(&n->peer);
	n->dev_port = free_udp_port(NULL);
	snprintf(udp, sizeof(udp), "udp=127.0.0.1:%u-127.0.0.1:%u", n->dev_port, peer_port);
	CU_ASSERT_EQUAL_FATAL(hx_add(n->d->h, "pci-host", "pci", NULL), 0);
	n->d->added = hx_add(n->d->h, "virtio-net", "net0", "backend=socket", udp,
			     "slot=4", "queue-size=16", p1, p2, NULL);
	if (n->d->added)
		fprintf(stderr, "virtio-net: %s\n", hx_error(n->d->h));
	CU_ASSERT_EQUAL_FATAL(n->d->added, 0);
	cfg_wr(n->d->h, MODVM_PCI_COMMAND, cfg_rd(n->d->h, MODVM_PCI_COMMAND, 2) | 6, 2);
	find_caps(n->d);
	if (!features)
		return n;
	cc_wr(n->d, CC_STATUS, 0, 1);
	cc_wr(n->d, CC_STATUS, 3, 1);
	set_features(n->d, features | 1ull << MODVM_VIRTIO_F_VERSION_1);
	cc_wr(n->d, CC_STATUS, 0x0B, 1);
	CU_ASSERT_EQUAL(status(n->d), 0x0B);
	for (unsigned q = 0; q < NQ; q++)
		nq_setup(n, q);
	cc_wr(n->d, CC_STATUS, 0x0F, 1);
	CU_ASSERT_EQUAL(status(n->d), 0x0F);
	return n;
}

static struct net *net_new(uint64_t features)
{
	return net_new_props(features, "mac=02:00:00:00:00:01", NULL);
}

static void net_free(struct net *n)
{
	hx_free(n->d->h);
	close(n->peer);
	free(n->d);
	free(n);
}

static bool needs_reset(struct net *n)
{
	return status(n->d) & MODVM_VIRTIO_CONFIG_S_NEEDS_RESET;
}

/* An Ethernet frame of len bytes to dst, a pattern after the header. */
static void frame(uint8_t *f, size_t len, const uint8_t *dst, uint8_t seed)
{
	memcpy(f, dst, 6);
	memcpy(f + 6, "\x02\x11\x22\x33\x44\x55", 6);
	f[12] = 0x08;
	f[13] = 0x00;
	for (size_t i = 14; i < len; i++)
		f[i] = (uint8_t)(i * 7 + seed);
}

/* Transmit header + frame as one descriptor at BUF(0). */
static void tx_one(struct net *n, const uint8_t *hdr, const uint8_t *f, size_t len)
{
	uint8_t b[0x1000];

	memcpy(b, hdr, NET_HDR);
	memcpy(b + NET_HDR, f, len);
	hx_mem_write(n->d->h, BUF(0), b, NET_HDR + len);
	nq_desc(n, TXQ, 0, BUF(0), (uint32_t)(NET_HDR + len), 0, 0);
	nq_kick(n, TXQ, 0);
}

static const uint8_t zero_hdr[NET_HDR];

/* ---- tests -------------------------------------------------------------- */

static void test_features_and_config(void)
{
	struct net *n = net_new(0);
	uint64_t f = dev_features(n->d);

	CU_ASSERT_EQUAL(f & F_ALL, F_ALL);
	CU_ASSERT(f >> MODVM_VIRTIO_F_VERSION_1 & 1);
	CU_ASSERT_FALSE(f & F_CSUM);  /* the socket backend carries no offloads */
	CU_ASSERT_FALSE(f & (1ull << 11 | 1ull << 7 | 1ull << 1));
	for (unsigned i = 0; i < 6; i++)
		CU_ASSERT_EQUAL(hx_mmio_read(n->d->h, n->d->device + i, 1), our_mac[i]);
	CU_ASSERT_EQUAL(hx_mmio_read(n->d->h, n->d->device + 6, 2), 1); /* LINK_UP */
	CU_ASSERT_EQUAL(hx_mmio_read(n->d->h, n->d->device + 8, 2), 1); /* pairs */
	net_free(n);
}

/* Without a mac property: locally administered unicast, the same for the
 * same device id (every run, every snapshot), another for another id. */
static void test_default_mac(void)
{
	struct net *a = net_new_props(0, NULL, NULL), *b = net_new_props(0, NULL, NULL);
	struct hx *h = hx_new(0);
	uint8_t ma[6], mb[6];

	for (unsigned i = 0; i < 6; i++) {
		ma[i] = (uint8_t)hx_mmio_read(a->d->h, a->d->device + i, 1);
		mb[i] = (uint8_t)hx_mmio_read(b->d->h, b->d->device + i, 1);
	}
	CU_ASSERT_EQUAL(ma[0], 0x02);
	CU_ASSERT_EQUAL(memcmp(ma, mb, 6), 0);
	CU_ASSERT_EQUAL(hx_add(h, "pci-host", "pci", NULL), 0);
	CU_ASSERT_EQUAL(hx_add(h, "virtio-net", "net1", "backend=null", "slot=4", NULL), 0);
	{
		struct drv d = { .h = h };
		uint8_t mc[6];
		cfg_wr(h, MODVM_PCI_COMMAND, cfg_rd(h, MODVM_PCI_COMMAND, 2) | 6, 2);
		find_caps(&d);
		for (unsigned i = 0; i < 6; i++)
			mc[i] = (uint8_t)hx_mmio_read(h, d.device + i, 1);
		CU_ASSERT_EQUAL(mc[0], 0x02);
		CU_ASSERT_NOT_EQUAL(memcmp(ma, mc, 6), 0);
	}
	hx_free(h);
	net_free(a);
	net_free(b);
}

static void test_bad_props(void)
{
	struct hx *h = hx_new(0);

	CU_ASSERT_EQUAL(hx_add(h, "pci-host", "pci", NULL), 0);
	CU_ASSERT_NOT_EQUAL(hx_add(h, "virtio-net", "n1", "backend=null", "mac=03:00:00:00:00:01", NULL), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(h), "unicast"));
	CU_ASSERT_NOT_EQUAL(hx_add(h, "virtio-net", "n2", "backend=null", "mac=zz", NULL), 0);
	CU_ASSERT_NOT_EQUAL(hx_add(h, "virtio-net", "n3", "backend=null", "queue-size=100", NULL), 0);
	CU_ASSERT_NOT_EQUAL(hx_add(h, "virtio-net", "n4", "backend=socket", NULL), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(h), "exactly one"));
	CU_ASSERT_NOT_EQUAL(hx_add(h, "virtio-net", "n5", "backend=socket",
				   "connect=127.0.0.1:1", NULL), 0);
	hx_free(h);
}

static void test_tx(void)
{
	struct net *n = net_new(F_ALL);
	uint8_t f[600], got[2048];

	frame(f, sizeof(f), (const uint8_t *)"\xff\xff\xff\xff\xff\xff", 1);
	tx_one(n, zero_hdr, f, sizeof(f));
	CU_ASSERT_EQUAL(nq_used(n, TXQ, NULL), 0);
	CU_ASSERT_EQUAL(peer_recv(n, got, sizeof(got)), (ssize_t)sizeof(f));
	CU_ASSERT_EQUAL(memcmp(got, f, sizeof(f)), 0);
	/* header and frame split over three descriptors */
	hx_mem_write(n->d->h, BUF(1), zero_hdr, NET_HDR);
	hx_mem_write(n->d->h, BUF(2), f, 100);
	hx_mem_write(n->d->h, BUF(3), f + 100, 500);
	nq_desc(n, TXQ, 1, BUF(1), NET_HDR, F_NEXT, 2);
	nq_desc(n, TXQ, 2, BUF(2), 100, F_NEXT, 3);
	nq_desc(n, TXQ, 3, BUF(3), 500, 0, 0);
	nq_kick(n, TXQ, 1);
	CU_ASSERT_EQUAL(nq_used(n, TXQ, NULL), 0);
	CU_ASSERT_EQUAL(peer_recv(n, got, sizeof(got)), (ssize_t)sizeof(f));
	CU_ASSERT_EQUAL(memcmp(got, f, sizeof(f)), 0);
	CU_ASSERT_FALSE(needs_reset(n));
	net_free(n);
}

/* Frames the guest cannot mean are dropped (the buffer comes back, the
 * cable sees nothing) and the device keeps working. */
static void test_tx_dropped(void)
{
	struct net *n = net_new(F_ALL);
	uint8_t f[2000], got[4096], hdr[NET_HDR] = { 0 };

	frame(f, sizeof(f), our_mac, 2);
	/* truncated header */
	hx_mem_write(n->d->h, BUF(0), f, 8);
	nq_desc(n, TXQ, 0, BUF(0), 8, 0, 0);
	nq_kick(n, TXQ, 0);
	CU_ASSERT_EQUAL(nq_used(n, TXQ, NULL), 0);
	/* header only (zero-length frame), a runt, an oversize frame */
	tx_one(n, zero_hdr, f, 0);
	CU_ASSERT_EQUAL(nq_used(n, TXQ, NULL), 0);
	tx_one(n, zero_hdr, f, 10);
	CU_ASSERT_EQUAL(nq_used(n, TXQ, NULL), 0);
	tx_one(n, zero_hdr, f, 1519);
	CU_ASSERT_EQUAL(nq_used(n, TXQ, NULL), 0);
	/* a checksum offload and a GSO frame that were never negotiated */
	hdr[0] = 1;
	hdr[6] = 34;
	hdr[8] = 16;
	tx_one(n, hdr, f, 200);
	CU_ASSERT_EQUAL(nq_used(n, TXQ, NULL), 0);
	hdr[0] = 0;
	hdr[1] = 1;
	tx_one(n, hdr, f, 200);
	CU_ASSERT_EQUAL(nq_used(n, TXQ, NULL), 0);
	CU_ASSERT_EQUAL(peer_recv(n, got, sizeof(got)), -1);
	CU_ASSERT_FALSE(needs_reset(n));
	/* still sends */
	tx_one(n, zero_hdr, f, 1514);
	CU_ASSERT_EQUAL(nq_used(n, TXQ, NULL), 0);
	CU_ASSERT_EQUAL(peer_recv(n, got, sizeof(got)), 1514);
	net_free(n);
}

/* Broken chains are the core's to catch: NEEDS_RESET, no crash, no frame. */
static void test_tx_hostile_chains(void)
{
	uint8_t got[2048];
	struct net *n = net_new(F_ALL);

	nq_desc(n, TXQ, 0, BUF(0), 100, F_NEXT, 0);  /* loops on itself */
	nq_kick(n, TXQ, 0);
	CU_ASSERT(needs_reset(n));
	CU_ASSERT_EQUAL(peer_recv(n, got, sizeof(got)), -1);
	net_free(n);

	n = net_new(F_ALL);
	nq_desc(n, TXQ, 0, 0xFFFFFFFFF000ull, 100, 0, 0);  /* outside RAM */
	nq_kick(n, TXQ, 0);
	CU_ASSERT(needs_reset(n));
	net_free(n);

	n = net_new(F_ALL);
	nq_desc(n, TXQ, 0, BUF(0), 0, 0, 0);  /* zero length */
	nq_kick(n, TXQ, 0);
	CU_ASSERT(needs_reset(n));
	net_free(n);

	n = net_new(F_ALL);
	nq_desc(n, TXQ, 0, BUF(0), 0xFFFFFFFF, 0, 0);  /* beyond RAM's end */
	nq_kick(n, TXQ, 0);
	CU_ASSERT(needs_reset(n));
	net_free(n);
}

/* Give k receive buffers of len bytes, descriptors base.. */
static void rx_give(struct net *n, unsigned base, unsigned k, uint32_t len)
{
	for (unsigned i = 0; i < k; i++) {
		nq_desc(n, RXQ, base + i, BUF(8 + base + i), len, F_WRITE, 0);
		nq_kick(n, RXQ, (uint16_t)(base + i));
	}
}

static void wait_rx(struct net *n)
{
	for (int i = 0; i < 20 && mem16(n->d, QBASE(RXQ) + 0x2000 + 2) == n->q[RXQ].used_seen; i++)
		hx_poll(n->d->h, 10);
}

static void test_rx(void)
{
	struct net *n = net_new(F_ALL);
	uint8_t f[1000], b[2048];
	uint16_t id;

	rx_give(n, 0, 2, 2048);
	frame(f, sizeof(f), our_mac, 3);
	peer_send(n, f, sizeof(f));
	wait_rx(n);
	CU_ASSERT_EQUAL(nq_used(n, RXQ, &id), NET_HDR + (int64_t)sizeof(f));
	CU_ASSERT_EQUAL(id, 0);
	hx_mem_read(n->d->h, BUF(8), b, NET_HDR + sizeof(f));
	CU_ASSERT_EQUAL(b[10], 1);   /* num_buffers */
	CU_ASSERT_EQUAL(b[0], 0);
	CU_ASSERT_EQUAL(memcmp(b + NET_HDR, f, sizeof(f)), 0);
	net_free(n);
}

/* With MRG_RXBUF a frame spreads over small buffers; num_buffers says
 * how many. Without it, a frame bigger than the buffer is dropped and the
 * buffer stays for the next frame. */
static void test_rx_mergeable(void)
{
	struct net *n = net_new(F_ALL);
	uint8_t f[1400], b[2048];

	rx_give(n, 0, 4, 600);
	frame(f, sizeof(f), our_mac, 4);
	peer_send(n, f, sizeof(f));
	wait_rx(n);
	CU_ASSERT_EQUAL(nq_used(n, RXQ, NULL), 600);
	CU_ASSERT_EQUAL(nq_used(n, RXQ, NULL), 600);
	CU_ASSERT_EQUAL(nq_used(n, RXQ, NULL), NET_HDR + 1400 - 1200);
	CU_ASSERT_EQUAL(nq_used(n, RXQ, NULL), -1);
	hx_mem_read(n->d->h, BUF(8), b, 600);
	hx_mem_read(n->d->h, BUF(9), b + 600, 600);
	hx_mem_read(n->d->h, BUF(10), b + 1200, NET_HDR + 200);
	CU_ASSERT_EQUAL(b[10], 3);
	CU_ASSERT_EQUAL(memcmp(b + NET_HDR, f, sizeof(f)), 0);
	net_free(n);

	n = net_new(F_ALL & ~F_MRG);
	rx_give(n, 0, 1, 600);
	peer_send(n, f, sizeof(f));
	for (int i = 0; i < 5; i++)
		hx_poll(n->d->h, 10);
	CU_ASSERT_EQUAL(nq_used(n, RXQ, NULL), -1);
	peer_send(n, f, 500);
	wait_rx(n);
	CU_ASSERT_EQUAL(nq_used(n, RXQ, NULL), NET_HDR + 500);
	CU_ASSERT_FALSE(needs_reset(n));
	net_free(n);
}

/* No buffers: the frame waits in the backend until the guest gives one. */
static void test_rx_flow_control(void)
{
	struct net *n = net_new(F_ALL);
	uint8_t f[300];

	frame(f, sizeof(f), our_mac, 5);
	peer_send(n, f, sizeof(f));
	for (int i = 0; i < 5; i++)
		hx_poll(n->d->h, 10);
	CU_ASSERT_EQUAL(nq_used(n, RXQ, NULL), -1);
	rx_give(n, 0, 1, 2048);
	wait_rx(n);
	CU_ASSERT_EQUAL(nq_used(n, RXQ, NULL), NET_HDR + (int64_t)sizeof(f));
	net_free(n);
}

/* With event index, a frame waiting for more mergeable buffers than the
 * guest gave must ask to be told of the next one: avail_event is the
 * driver's index, not the device's (which the driver passed already). */
static void test_rx_wait_event_idx(void)
{
	struct net *n = net_new(F_ALL | 1ull << MODVM_VIRTIO_F_RING_EVENT_IDX);
	uint64_t avail_event = QBASE(RXQ) + 0x2000 + 4 + 8 * NQSIZE;
	uint8_t f[1400];

	rx_give(n, 0, 1, 600);
	frame(f, sizeof(f), our_mac, 8);
	peer_send(n, f, sizeof(f));
	for (int i = 0; i < 5; i++)
		hx_poll(n->d->h, 10);
	CU_ASSERT_EQUAL(nq_used(n, RXQ, NULL), -1);
	CU_ASSERT_EQUAL(mem16(n->d, avail_event), 1);
	rx_give(n, 1, 2, 600);
	wait_rx(n);
	CU_ASSERT_EQUAL(nq_used(n, RXQ, NULL), 600);
	net_free(n);
}

/* A receive buffer the device cannot write is the driver's error. */
static void test_rx_readonly_buffer(void)
{
	struct net *n = net_new(F_ALL);
	uint8_t f[300];

	nq_desc(n, RXQ, 0, BUF(8), 2048, 0, 0);
	nq_kick(n, RXQ, 0);
	frame(f, sizeof(f), our_mac, 6);
	peer_send(n, f, sizeof(f));
	for (int i = 0; i < 5; i++)
		hx_poll(n->d->h, 10);
	CU_ASSERT(needs_reset(n));
	net_free(n);
}

/* One control command: class, cmd, data; returns the ack byte. */
static uint8_t ctrl(struct net *n, uint8_t cls, uint8_t cmd, const void *data,
		    uint32_t len)
{
	uint8_t h[2] = { cls, cmd }, ack = 0xAA;

	hx_mem_write(n->d->h, BUF(4), h, 2);
	if (len)
		hx_mem_write(n->d->h, BUF(5), data, len);
	hx_mem_write(n->d->h, BUF(6), &ack, 1);
	nq_desc(n, CTRLQ, 0, BUF(4), 2, F_NEXT, len ? 1 : 2);
	nq_desc(n, CTRLQ, 1, BUF(5), len, F_NEXT, 2);
	nq_desc(n, CTRLQ, 2, BUF(6), 1, F_WRITE, 0);
	nq_kick(n, CTRLQ, 0);
	if (nq_used(n, CTRLQ, NULL) < 0)
		return 0xEE;
	hx_mem_read(n->d->h, BUF(6), &ack, 1);
	return ack;
}

/* Deliver a frame to dst; true if the guest got it. */
static bool rx_to(struct net *n, const uint8_t *dst)
{
	uint8_t f[100];

	rx_give(n, 0, 1, 2048);
	frame(f, sizeof(f), dst, 7);
	peer_send(n, f, sizeof(f));
	wait_rx(n);
	if (nq_used(n, RXQ, NULL) > 0)
		return true;
	return false;
}

static void test_ctrl_rx_filter(void)
{
	struct net *n = net_new(F_ALL);
	const uint8_t other[6] = { 0x02, 9, 9, 9, 9, 9 }, mcast[6] = { 0x01, 0, 0x5e, 0, 0, 1 };
	uint8_t on = 1, off = 0;
	uint8_t table[4 + 6 + 4 + 6];

	CU_ASSERT(rx_to(n, other));     /* promiscuous until the driver says */
	CU_ASSERT_EQUAL(ctrl(n, 0, 0, &off, 1), 0);
	CU_ASSERT_FALSE(rx_to(n, other));
	CU_ASSERT_FALSE(rx_to(n, mcast));
	/* the buffer given above is still there: the next frames use it */
	CU_ASSERT(rx_to(n, our_mac));
	CU_ASSERT(rx_to(n, (const uint8_t *)"\xff\xff\xff\xff\xff\xff"));
	CU_ASSERT_EQUAL(ctrl(n, 0, 1, &on, 1), 0);  /* all-multi */
	CU_ASSERT(rx_to(n, mcast));
	CU_ASSERT_EQUAL(ctrl(n, 0, 1, &off, 1), 0);
	/* MAC tables: one unicast (other), one multicast */
	memcpy(table, "\x01\x00\x00\x00", 4);
	memcpy(table + 4, other, 6);
	memcpy(table + 10, "\x01\x00\x00\x00", 4);
	memcpy(table + 14, mcast, 6);
	CU_ASSERT_EQUAL(ctrl(n, 1, 0, table, sizeof(table)), 0);
	CU_ASSERT(rx_to(n, other));
	CU_ASSERT(rx_to(n, mcast));
	/* malformed: counts that do not match the length */
	table[0] = 5;
	CU_ASSERT_EQUAL(ctrl(n, 1, 0, table, sizeof(table)), 1);
	CU_ASSERT_EQUAL(ctrl(n, 1, 0, table, 3), 1);
	/* wrong data length, unknown command, unknown classes */
	CU_ASSERT_EQUAL(ctrl(n, 0, 0, table, 2), 1);
	CU_ASSERT_EQUAL(ctrl(n, 0, 7, &on, 1), 1);
	CU_ASSERT_EQUAL(ctrl(n, 2, 0, &on, 1), 1);   /* VLAN: not offered */
	CU_ASSERT_EQUAL(ctrl(n, 4, 0, &on, 1), 1);   /* MQ: not offered */
	CU_ASSERT_EQUAL(ctrl(n, 0xFF, 0xFF, NULL, 0), 1);
	/* the MAC address itself */
	CU_ASSERT_EQUAL(ctrl(n, 1, 1, other, 6), 0);
	CU_ASSERT_EQUAL(hx_mmio_read(n->d->h, n->d->device + 1, 1), 9);
	CU_ASSERT_FALSE(needs_reset(n));
	net_free(n);
}

static void test_ctrl_hostile(void)
{
	struct net *n = net_new(F_ALL);
	uint8_t h[2] = { 0, 0 };

	/* no ack byte: cannot be answered */
	hx_mem_write(n->d->h, BUF(4), h, 2);
	nq_desc(n, CTRLQ, 0, BUF(4), 2, 0, 0);
	nq_kick(n, CTRLQ, 0);
	CU_ASSERT(needs_reset(n));
	net_free(n);

	/* a 60 KiB command: answered ERR, nothing overruns */
	n = net_new(F_ALL);
	nq_desc(n, CTRLQ, 0, BUF(4), 2, F_NEXT, 1);
	nq_desc(n, CTRLQ, 1, BUF(16), 60000, F_NEXT, 2);
	nq_desc(n, CTRLQ, 2, BUF(6), 1, F_WRITE, 0);
	hx_mem_write(n->d->h, BUF(4), "\x01\x00", 2);
	nq_kick(n, CTRLQ, 0);
	CU_ASSERT_EQUAL(nq_used(n, CTRLQ, NULL), 1);
	CU_ASSERT_FALSE(needs_reset(n));
	net_free(n);
}

/* Features that depend on others are refused (FEATURES_OK stays clear). */
static void test_feature_dependencies(void)
{
	struct net *n = net_new(0);

	cc_wr(n->d, CC_STATUS, 0, 1);
	cc_wr(n->d, CC_STATUS, 3, 1);
	set_features(n->d, F_CTRL_RX | 1ull << MODVM_VIRTIO_F_VERSION_1);
	cc_wr(n->d, CC_STATUS, 0x0B, 1);
	CU_ASSERT_FALSE(status(n->d) & MODVM_VIRTIO_CONFIG_S_FEATURES_OK);
	net_free(n);
}

/* The MAC, the receive mode and the counters move with a snapshot. */
static void test_state_round_trip(void)
{
	struct net *a = net_new(F_ALL), *b;
	const uint8_t other[6] = { 0x02, 7, 7, 7, 7, 7 };
	uint8_t off = 0;

	CU_ASSERT_EQUAL(ctrl(a, 0, 0, &off, 1), 0);
	CU_ASSERT_EQUAL(ctrl(a, 1, 1, other, 6), 0);
	b = net_new_props(0, "mac=02:00:00:00:00:01", NULL);
	CU_ASSERT_EQUAL_FATAL(hx_state_copy(a->d->h, b->d->h, "net0"), 0);
	CU_ASSERT_EQUAL(hx_mmio_read(b->d->h, b->d->device + 1, 1), 7);
	CU_ASSERT_EQUAL(status(b->d), 0x0F);
	b->q[RXQ] = a->q[RXQ];
	b->q[CTRLQ] = a->q[CTRLQ];
	/* not promiscuous any more: a frame to our old address is dropped */
	CU_ASSERT_FALSE(rx_to(b, our_mac));
	CU_ASSERT(rx_to(b, other));
	net_free(a);
	net_free(b);
}

/* A stream cable: frames with a length prefix both ways; a peer that
 * breaks the framing (a length beyond the largest frame) is dropped and the
 * link goes down, and a peer that leaves likewise: the guest sees the
 * status change, its frames are lost, nothing breaks. */
static void test_socket_stream_peer_gone(void)
{
	struct net *n = calloc(1, sizeof(*n));
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	uint8_t f[200], got[300], len4[4] = { 0, 0, 0, 200 };
	char conn[128];
	int l, c;

	snprintf(a.sun_path, sizeof(a.sun_path), "/tmp/modvm-vnet-%d.sock", (int)getpid());
	unlink(a.sun_path);
	l = socket(AF_UNIX, SOCK_STREAM, 0);
	CU_ASSERT_FATAL(l >= 0 && !bind(l, (struct sockaddr *)&a, sizeof(a)) && !listen(l, 1));
	snprintf(conn, sizeof(conn), "connect=unix:%s", a.sun_path);
	n->d = calloc(1, sizeof(*n->d));
	n->d->h = hx_new(0);
	n->peer = -1;
	CU_ASSERT_EQUAL_FATAL(hx_add(n->d->h, "pci-host", "pci", NULL), 0);
	CU_ASSERT_EQUAL_FATAL(hx_add(n->d->h, "virtio-net", "net0", "backend=socket", conn,
				     "slot=4", "queue-size=16", "mac=02:00:00:00:00:01", NULL), 0);
	c = accept(l, NULL, NULL);
	CU_ASSERT_FATAL(c >= 0);
	cfg_wr(n->d->h, MODVM_PCI_COMMAND, cfg_rd(n->d->h, MODVM_PCI_COMMAND, 2) | 6, 2);
	find_caps(n->d);
	cc_wr(n->d, CC_STATUS, 3, 1);
	set_features(n->d, F_ALL | 1ull << MODVM_VIRTIO_F_VERSION_1);
	cc_wr(n->d, CC_STATUS, 0x0B, 1);
	for (unsigned q = 0; q < NQ; q++)
		nq_setup(n, q);
	cc_wr(n->d, CC_STATUS, 0x0F, 1);
	CU_ASSERT_EQUAL(hx_mmio_read(n->d->h, n->d->device + 6, 2), 1);
	/* guest to peer: length, then the frame */
	frame(f, sizeof(f), our_mac, 9);
	tx_one(n, zero_hdr, f, sizeof(f));
	CU_ASSERT_EQUAL(recv(c, got, 4 + sizeof(f), MSG_WAITALL), 4 + (ssize_t)sizeof(f));
	CU_ASSERT_EQUAL(memcmp(got, len4, 4), 0);
	CU_ASSERT_EQUAL(memcmp(got + 4, f, sizeof(f)), 0);
	/* peer to guest, split over two writes */
	rx_give(n, 0, 2, 2048);
	CU_ASSERT_EQUAL(write(c, len4, 4), 4);
	hx_poll(n->d->h, 10);
	CU_ASSERT_EQUAL(write(c, f, sizeof(f)), (ssize_t)sizeof(f));
	wait_rx(n);
	CU_ASSERT_EQUAL(nq_used(n, RXQ, NULL), NET_HDR + (int64_t)sizeof(f));
	/* a length no frame has: the peer is dropped, the link goes down */
	CU_ASSERT_EQUAL(write(c, "\x7f\xff\xff\xff", 4), 4);
	for (int i = 0; i < 10 && hx_mmio_read(n->d->h, n->d->device + 6, 2); i++)
		hx_poll(n->d->h, 10);
	CU_ASSERT_EQUAL(hx_mmio_read(n->d->h, n->d->device + 6, 2), 0);
	CU_ASSERT_EQUAL(recv(c, got, sizeof(got), 0), 0);   /* closed by the device */
	tx_one(n, zero_hdr, f, sizeof(f));                  /* lost, not stuck */
	CU_ASSERT_EQUAL(nq_used(n, TXQ, NULL), 0);
	CU_ASSERT_FALSE(needs_reset(n));
	close(c);
	close(l);
	unlink(a.sun_path);
	hx_free(n->d->h);
	free(n->d);
	free(n);
}

/* net-user (libslirp) answers an ARP request for its router address, and
 * refuses forwards it cannot parse. */
static void test_user_backend(void)
{
	struct net *n = calloc(1, sizeof(*n));
	uint8_t arp[42] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1,
			    0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1,
			    0x02, 0, 0, 0, 0, 1, 10, 0, 2, 15,
			    0, 0, 0, 0, 0, 0, 10, 0, 2, 2 };
	uint8_t b[128];
	struct hx *h;

	n->d = calloc(1, sizeof(*n->d));
	n->d->h = h = hx_new(0);
	n->peer = -1;
	CU_ASSERT_EQUAL_FATAL(hx_add(h, "pci-host", "pci", NULL), 0);
	CU_ASSERT_NOT_EQUAL(hx_add(h, "virtio-net", "bad", "backend=user", "slot=5",
				   "hostfwd=tcp:1.2.3:80-:80", NULL), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(h), "hostfwd"));
	CU_ASSERT_NOT_EQUAL(hx_add(h, "virtio-net", "bad2", "backend=user", "slot=5",
				   "net=10.0.2.0/30", NULL), 0);
	CU_ASSERT_EQUAL_FATAL(hx_add(h, "virtio-net", "net0", "backend=user", "slot=4",
				     "queue-size=16", "mac=02:00:00:00:00:01", NULL), 0);
	cfg_wr(h, MODVM_PCI_COMMAND, cfg_rd(h, MODVM_PCI_COMMAND, 2) | 6, 2);
	find_caps(n->d);
	cc_wr(n->d, CC_STATUS, 3, 1);
	set_features(n->d, F_ALL | 1ull << MODVM_VIRTIO_F_VERSION_1);
	cc_wr(n->d, CC_STATUS, 0x0B, 1);
	for (unsigned q = 0; q < NQ; q++)
		nq_setup(n, q);
	cc_wr(n->d, CC_STATUS, 0x0F, 1);
	rx_give(n, 0, 2, 2048);
	tx_one(n, zero_hdr, arp, sizeof(arp));
	wait_rx(n);
	CU_ASSERT(nq_used(n, RXQ, NULL) >= NET_HDR + 42);
	hx_mem_read(h, BUF(8), b, sizeof(b));
	CU_ASSERT_EQUAL(memcmp(b + NET_HDR, our_mac, 6), 0);
	CU_ASSERT_EQUAL(b[NET_HDR + 12], 0x08);
	CU_ASSERT_EQUAL(b[NET_HDR + 13], 0x06);
	CU_ASSERT_EQUAL(b[NET_HDR + 21], 2);                           /* reply */
	CU_ASSERT_EQUAL(memcmp(b + NET_HDR + 28, "\x0a\x00\x02\x02", 4), 0); /* 10.0.2.2 */
	hx_free(h);
	free(n->d);
	free(n);
}

int main(void)
{
	static const struct test_case tests[] = {
		TEST(test_features_and_config),
		TEST(test_default_mac),
		TEST(test_bad_props),
		TEST(test_tx),
		TEST(test_tx_dropped),
		TEST(test_tx_hostile_chains),
		TEST(test_rx),
		TEST(test_rx_mergeable),
		TEST(test_rx_flow_control),
		TEST(test_rx_wait_event_idx),
		TEST(test_rx_readonly_buffer),
		TEST(test_ctrl_rx_filter),
		TEST(test_ctrl_hostile),
		TEST(test_feature_dependencies),
		TEST(test_state_round_trip),
		TEST(test_socket_stream_peer_gone),
		TEST(test_user_backend),
	};

	return RUN_TESTS("virtio-net", tests);
}
