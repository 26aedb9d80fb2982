/* Fuzz target: the virtio-net device (plugins/net/virtio-net) against
 * hostile buffers. The plugin is compiled in and created through its
 * descriptor against a stub host table whose virtqueues hand out chains the
 * input describes (the core's descriptor checks are fuzz_virtq's); its
 * backend is the input too. Input: byte 0 picks the negotiated features,
 * then operations:
 *   0 n S...         a transmit chain of n%5+1 readable segments
 *   1 n S...         a control chain: n%4 readable segments, then a
 *                    writable one (the ack)
 *   2 n S...         a receive buffer of n%4+1 writable segments
 *   3 l l H D        the backend delivers a frame of l bytes with the
 *                    offload header H (flags, gso type, then hdr_len,
 *                    gso_size, csum_start, csum_offset as 16-bit values)
 * where a segment S is a 16-bit length l (l%4096 + 1 bytes) and its
 * bytes D (zeros once the input ran out).
 *   4                the backend is busy for the next send / free again
 *   5                device reset
 * Every frame the device sends must fit its chain and the largest frame;
 * every push must stay inside the element's writable bytes; unpop gives
 * back only what was popped. */
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <modvm/modvm.h>
#include <modvm/net.h>
#include <modvm/virtio.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

extern const struct modvm_plugin_desc modvm_plugin_descriptor;

#define CHECK(c) do { if (!(c)) abort(); } while (0)

#define POOL   (256 * 1024)
#define QMAX   32
#define SEGMAX 8

struct chain {
	unsigned nread, nwrite;
	struct iovec iov[SEGMAX];
	uint64_t write_len;
};

struct queue {
	struct chain c[QMAX];
	unsigned n, next, pushed;
};

static struct {
	uint8_t pool[POOL];
	size_t used;
	struct queue q[3];
	struct modvm_virtio_info info;
	uint64_t features;
	bool busy, needs_reset;
	const struct modvm_net_frontend *fe;
	void *fe_opaque;
} s;

static void s_log(modvm_inst *i, enum modvm_log_level l, const char *fmt, ...) {}
static void s_set_error(modvm_inst *i, const char *fmt, ...) {}
static const char *s_str(modvm_inst *i) { return "fuzz"; }
static uint64_t s_clock(modvm_inst *i) { return 0; }
static int64_t s_wall(modvm_inst *i) { return 0; }
static modvm_timer *s_timer_new(modvm_inst *i, void (*cb)(void *), void *o) { return (modvm_timer *)&s; }
static void s_timer_mod(modvm_timer *t, uint64_t d) {}
static void s_timer_del(modvm_timer *t) {}

static modvm_net *s_net_open(modvm_inst *i, const char *prop,
			     const struct modvm_net_frontend *fe, void *opaque)
{
	s.fe = fe;
	s.fe_opaque = opaque;
	return (modvm_net *)&s;
}
static void s_net_close(modvm_net *n) {}
static uint32_t s_net_offloads(modvm_net *n)
{
	return MODVM_NET_OFFLOAD_CSUM | MODVM_NET_OFFLOAD_TSO4 | MODVM_NET_OFFLOAD_TSO6 |
	       MODVM_NET_OFFLOAD_ECN | MODVM_NET_OFFLOAD_RX;
}
static void s_net_set_rx_offloads(modvm_net *n, uint32_t off) {}
static bool s_net_link_up(modvm_net *n) { return true; }
static void s_net_rx_ready(modvm_net *n, unsigned q) {}

static int s_net_send(modvm_net *n, unsigned queue, const struct modvm_net_hdr *h,
		      const struct iovec *iov, int cnt)
{
	volatile uint8_t sink = 0;
	size_t len = 0;

	CHECK(queue == 0 && cnt >= 0);
	if (s.busy)
		return MODVM_NET_BUSY;
	for (int i = 0; i < cnt; i++) {
		for (size_t k = 0; k < iov[i].iov_len; k++)
			sink ^= ((const uint8_t *)iov[i].iov_base)[k];  /* ASan: inside */
		len += iov[i].iov_len;
	}
	CHECK(len >= 14 && len <= MODVM_NET_FRAME_MAX);
	(void)sink;
	return MODVM_NET_SENT;
}

static modvm_virtio_dev *s_virtio_register(modvm_inst *i, const struct modvm_virtio_info *info,
					   struct modvm_virtio_state *st,
					   struct modvm_virtio_queue_state *q)
{
	s.info = *info;
	st->status = MODVM_VIRTIO_CONFIG_S_DRIVER_OK | MODVM_VIRTIO_CONFIG_S_FEATURES_OK;
	for (unsigned k = 0; k < info->num_queues; k++)
		q[k].enable = 1;
	return (modvm_virtio_dev *)&s;
}

static int s_virtio_pop(modvm_virtio_dev *d, unsigned queue, struct modvm_virtio_elem *e)
{
	struct queue *q = &s.q[queue];
	struct chain *c;

	CHECK(queue < 3);
	if (s.needs_reset || q->next == q->n)
		return 0;
	c = &q->c[q->next++];
	CHECK(c->nread + c->nwrite <= e->max);
	e->queue = queue;
	e->head = (uint16_t)(q->next - 1);
	e->nread = (uint16_t)c->nread;
	e->nwrite = (uint16_t)c->nwrite;
	e->read_len = e->write_len = 0;
	for (unsigned k = 0; k < c->nread + c->nwrite; k++) {
		e->iov[k] = c->iov[k];
		e->gpa[k] = 0;
		*(k < c->nread ? &e->read_len : &e->write_len) += c->iov[k].iov_len;
	}
	return 1;
}

static void s_virtio_unpop(modvm_virtio_dev *d, unsigned queue, unsigned n)
{
	struct queue *q = &s.q[queue];

	CHECK(n <= q->next - q->pushed);
	q->next -= n;
}

static void s_virtio_push(modvm_virtio_dev *d, const struct modvm_virtio_elem *e,
			  uint32_t written)
{
	CHECK(e->queue < 3);
	CHECK(written <= e->write_len);
	s.q[e->queue].pushed++;
	CHECK(s.q[e->queue].pushed <= s.q[e->queue].next);
}

static void s_virtio_notify(modvm_virtio_dev *d, unsigned q) {}
static void s_virtio_config_changed(modvm_virtio_dev *d) {}
static void s_virtio_needs_reset(modvm_virtio_dev *d, const char *why) { s.needs_reset = true; }
static uint64_t s_virtio_features(modvm_virtio_dev *d) { return s.features; }
static void s_virtio_unregister(modvm_virtio_dev *d) {}
static void s_virtio_reset(modvm_virtio_dev *d) {}

static const struct modvm_host host = {
	.size = sizeof(struct modvm_host),
	.abi_major = MODVM_ABI_MAJOR,
	.abi_minor = MODVM_ABI_MINOR,
	.log = s_log,
	.set_error = s_set_error,
	.inst_id = s_str,
	.vm_name = s_str,
	.clock_ns = s_clock,
	.boot_wall_ns = s_wall,
	.timer_new = s_timer_new,
	.timer_mod = s_timer_mod,
	.timer_del = s_timer_del,
	.net_open = s_net_open,
	.net_close = s_net_close,
	.net_send = s_net_send,
	.net_offloads = s_net_offloads,
	.net_link_up = s_net_link_up,
	.net_rx_ready = s_net_rx_ready,
	.net_set_rx_offloads = s_net_set_rx_offloads,
	.virtio_register = s_virtio_register,
	.virtio_pop = s_virtio_pop,
	.virtio_unpop = s_virtio_unpop,
	.virtio_push = s_virtio_push,
	.virtio_notify = s_virtio_notify,
	.virtio_config_changed = s_virtio_config_changed,
	.virtio_needs_reset = s_virtio_needs_reset,
	.virtio_features = s_virtio_features,
	.virtio_unregister = s_virtio_unregister,
	.virtio_reset = s_virtio_reset,
};

/* ---- input ---------------------------------------------------------------- */

struct in {
	const uint8_t *p;
	size_t n;
};

/* The next bytes, big-endian; zeros once the input ran out. */
static unsigned take(struct in *in, unsigned bytes)
{
	unsigned v = 0;

	for (unsigned i = 0; i < bytes; i++) {
		v <<= 8;
		if (in->n) {
			v |= *in->p++;
			in->n--;
		}
	}
	return v;
}

/* Fill len bytes of the pool from the input (zeros once it runs out). */
static uint8_t *carve(struct in *in, size_t len)
{
	uint8_t *p;

	if (len > POOL - s.used)
		return NULL;
	p = s.pool + s.used;
	s.used += len;
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)take(in, 1);
	return p;
}

/* n segments of 16-bit lengths (0..4095 each, a zero length is a 1-byte
 * one: the core refuses zero-length descriptors). */
static void add_chain(struct in *in, unsigned queue, unsigned nread, unsigned nwrite)
{
	struct queue *q = &s.q[queue];
	struct chain *c;

	if (q->n == QMAX || nread + nwrite == 0 || nread + nwrite > SEGMAX)
		return;
	c = &q->c[q->n];
	*c = (struct chain){ .nread = nread, .nwrite = nwrite };
	for (unsigned k = 0; k < nread + nwrite; k++) {
		size_t len = (take(in, 2) & 0x0fff) + 1;
		uint8_t *p = carve(in, len);
		if (!p)
			return;
		c->iov[k] = (struct iovec){ p, len };
	}
	q->n++;
}

static void deliver(struct in *in)
{
	size_t len = take(in, 2);
	struct modvm_net_hdr h = {
		.flags = (uint8_t)take(in, 1), .gso_type = (uint8_t)take(in, 1),
		.hdr_len = (uint16_t)take(in, 2), .gso_size = (uint16_t)take(in, 2),
		.csum_start = (uint16_t)take(in, 2), .csum_offset = (uint16_t)take(in, 2),
	};
	uint8_t *p = carve(in, len);
	struct iovec iov = { p, len };

	if (!p || !s.fe->can_receive(s.fe_opaque, 0, len))
		return;
	s.fe->receive(s.fe_opaque, 0, &h, &iov, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct modvm_plugin_desc *d = &modvm_plugin_descriptor;
	const struct modvm_device_ops *ops = d->ops;
	struct in in = { data, size };
	static const uint64_t bits[8] = { 1ull << 15, 1ull << 17 | 1ull << 18, 1ull << 23 | 1ull << 17,
					  1ull << 0, 1ull << 11 | 1ull << 0, 1ull << 13, 1ull << 5, 1ull << 16 };
	uint8_t *inst;
	unsigned f;

	memset(&s, 0, sizeof(s));
	inst = calloc(1, ops->instance_size);
	CHECK(inst);
	((struct modvm_dev *)inst)->host = &host;
	((struct modvm_dev *)inst)->inst = (modvm_inst *)&s;
	/* bound properties: mac "", pcap "", queue-size 16, slot -1 */
	for (const struct modvm_prop_desc *p = d->props; p && p->name; p++) {
		static const char *const empty = "";
		uint16_t qs = 16;
		int32_t slot = -1;
		if (p->type == MODVM_PROP_STRING)
			memcpy(inst + p->offset, &empty, sizeof(empty));
		else if (!strcmp(p->name, "queue-size"))
			memcpy(inst + p->offset, &qs, sizeof(qs));
		else if (!strcmp(p->name, "slot"))
			memcpy(inst + p->offset, &slot, sizeof(slot));
	}
	CHECK(ops->init(inst) == 0);
	f = take(&in, 1);
	s.features = 1ull << MODVM_VIRTIO_F_VERSION_1;
	for (unsigned b = 0; b < 8; b++)
		if (f >> b & 1)
			s.features |= bits[b];
	while (in.n) {
		unsigned op = take(&in, 1) % 6, n;
		switch (op) {
		case 0:
			add_chain(&in, 1, take(&in, 1) % 5 + 1, 0);
			s.info.queue_notify(s.info.opaque, 1);
			break;
		case 1:
			n = take(&in, 1) % 4;
			add_chain(&in, 2, n, 1);
			s.info.queue_notify(s.info.opaque, 2);
			break;
		case 2:
			add_chain(&in, 0, 0, take(&in, 1) % 4 + 1);
			s.info.queue_notify(s.info.opaque, 0);
			break;
		case 3:
			deliver(&in);
			break;
		case 4:
			s.busy = !s.busy;
			if (!s.busy && s.fe->tx_ready)
				s.fe->tx_ready(s.fe_opaque, 0);
			break;
		case 5:
			s.info.reset(s.info.opaque);
			break;
		}
	}
	ops->destroy(inst);
	free(inst);
	return 0;
}
