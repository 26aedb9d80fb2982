/* The net_* host services: a NIC opens the net backend plugin its config
 * names; frames, "room again" and link changes pass between them here, so
 * the core can check what each side promised (queue pairs, offloads). */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <modvm/net.h>

#include "machine.h"
#include "net.h"
#include "propval.h"
#include "sandbox.h"

struct modvm_net {
	struct machine *m;
	modvm_inst *frontend;
	modvm_inst *backend;          /* its obj is the backend handle */
	const struct modvm_net_ops *ops;
	struct modvm_net_frontend fe; /* the NIC's, size-checked copy */
	void *fe_opaque;
	uint32_t offloads;
	uint32_t rx_offloads;         /* what the NIC's guest takes (net_set_rx_offloads) */
	unsigned queue_pairs;
	bool warned_offload, warned_rx_offload;
	struct modvm_net *next;
};

/* Copy the NIC's callbacks, as many as its size says it has. */
static int copy_frontend(modvm_inst *inst, struct modvm_net *n,
			 const struct modvm_net_frontend *fe)
{
	size_t need = offsetof(struct modvm_net_frontend, receive) + sizeof(void *);

	if (!fe || fe->size < need || !fe->can_receive || !fe->receive) {
		set_err(inst->error, sizeof(inst->error),
			"net front end needs size, can_receive and receive");
		return -1;
	}
	memcpy(&n->fe, fe, fe->size < sizeof(n->fe) ? fe->size : sizeof(n->fe));
	n->fe.size = sizeof(n->fe);
	return 0;
}

static modvm_net *h_net_open(modvm_inst *inst, const char *prop,
			     const struct modvm_net_frontend *fe, void *opaque)
{
	struct machine *m = inst->m;
	const struct resolved_props *rp = inst_backend(inst, prop, MODVM_KIND_NET);
	struct modvm_net *n;

	if (!rp || rp->plugin->desc->kind != MODVM_KIND_NET) {
		set_err(inst->error, sizeof(inst->error),
			"property \"%s\" does not name a net backend", prop);
		return NULL;
	}
	n = xcalloc(1, sizeof(*n));
	n->m = m;
	n->frontend = inst;
	n->fe_opaque = opaque;
	n->ops = rp->plugin->desc->ops;
	if (copy_frontend(inst, n, fe)) {
		free(n);
		return NULL;
	}
	n->backend = inst_new(m, rp->plugin, inst->id, rp, inst->cfg);
	/* Before open: a backend may start sending from inside it. */
	if (n->ops->flags & MODVM_NET_F_INET_SOCKETS)
		sandbox_allow_inet_sockets();
	n->backend->obj = n->ops->open(&m->host, n->backend, n);
	if (!n->backend->obj) {
		set_err(inst->error, sizeof(inst->error), "backend %s: %s",
			rp->plugin->desc->name,
			n->backend->error[0] ? n->backend->error : "open failed (no reason given)");
		inst_release_loop(m, n->backend);
		inst_free(n->backend);
		free(n);
		return NULL;
	}
	n->offloads = n->ops->offloads ? n->ops->offloads(n->backend->obj) : 0;
	/* receive offloads only from a backend that can be told to stop */
	if (n->ops->size < offsetof(struct modvm_net_ops, set_rx_offloads) + sizeof(void *) ||
	    !n->ops->set_rx_offloads)
		n->offloads &= ~(uint32_t)MODVM_NET_OFFLOAD_RX;
	n->queue_pairs = n->ops->queue_pairs ? n->ops->queue_pairs(n->backend->obj) : 1;
	if (!n->queue_pairs)
		n->queue_pairs = 1;
	machine_lock(m);
	n->next = m->nets;
	m->nets = n;
	machine_unlock(m);
	return n;
}

static void h_net_close(modvm_net *n)
{
	struct machine *m;

	if (!n)
		return;
	m = n->m;
	machine_lock(m);
	for (modvm_net **pp = &m->nets; *pp; pp = &(*pp)->next)
		if (*pp == n) {
			*pp = n->next;
			break;
		}
	machine_unlock(m);
	n->ops->close(n->backend->obj);
	inst_release_loop(m, n->backend);
	inst_free(n->backend);
	free(n);
}

void net_release_inst(struct machine *m, modvm_inst *inst)
{
	modvm_net *n;

	do {
		machine_lock(m);
		for (n = m->nets; n && n->frontend != inst; n = n->next)
			;
		machine_unlock(m);
		if (n)
			h_net_close(n);
	} while (n);
}

/* Offloads the backend announced, and nothing else (a NIC bug would
 * otherwise hand a backend a frame it cannot finish). */
static bool hdr_allowed(const struct modvm_net_hdr *h, uint32_t off)
{
	uint8_t gso = h->gso_type & (uint8_t)~MODVM_NET_GSO_ECN;

	if (h->flags & ~(MODVM_NET_HDR_F_NEEDS_CSUM | MODVM_NET_HDR_F_DATA_VALID))
		return false;
	if ((h->flags & (MODVM_NET_HDR_F_NEEDS_CSUM | MODVM_NET_HDR_F_DATA_VALID)) &&
	    !(off & MODVM_NET_OFFLOAD_CSUM))
		return false;
	if ((h->gso_type & MODVM_NET_GSO_ECN) && !(off & MODVM_NET_OFFLOAD_ECN))
		return false;
	switch (gso) {
	case MODVM_NET_GSO_NONE: return true;
	case MODVM_NET_GSO_TCPV4: return off & MODVM_NET_OFFLOAD_TSO4;
	case MODVM_NET_GSO_TCPV6: return off & MODVM_NET_OFFLOAD_TSO6;
	case MODVM_NET_GSO_UDP: return off & MODVM_NET_OFFLOAD_UFO;
	}
	return false;
}

static int h_net_send(modvm_net *n, unsigned queue,
		      const struct modvm_net_hdr *hdr, const struct iovec *iov,
		      int iovcnt)
{
	static const struct modvm_net_hdr plain;

	if (!hdr)
		hdr = &plain;
	if (queue >= n->queue_pairs || iovcnt < 0)
		return MODVM_NET_SENT;
	if (!hdr_allowed(hdr, n->offloads)) {
		if (!n->warned_offload)
			machine_log(n->m, MODVM_LOG_WARN,
				    "%s: frame with offloads (flags %#x, gso %#x) its backend %s did not announce: dropped",
				    n->frontend->prefix, hdr->flags, hdr->gso_type,
				    n->backend->plugin->desc->name);
		n->warned_offload = true;
		return MODVM_NET_SENT;
	}
	return n->ops->send(n->backend->obj, queue, hdr, iov, iovcnt);
}

static void h_net_rx_ready(modvm_net *n, unsigned queue)
{
	if (n->ops->rx_ready && queue < n->queue_pairs)
		n->ops->rx_ready(n->backend->obj, queue);
}

static uint32_t h_net_offloads(modvm_net *n)
{
	return n->offloads;
}

static void h_net_set_rx_offloads(modvm_net *n, uint32_t off)
{
	off = n->offloads & MODVM_NET_OFFLOAD_RX ?
	      off & n->offloads & ~(uint32_t)MODVM_NET_OFFLOAD_RX : 0;
	if (off == n->rx_offloads)
		return;
	n->rx_offloads = off;
	n->ops->set_rx_offloads(n->backend->obj, off);
}

static unsigned h_net_queue_pairs(modvm_net *n)
{
	return n->queue_pairs;
}

static bool h_net_link_up(modvm_net *n)
{
	return n->ops->link_up ? n->ops->link_up(n->backend->obj) : true;
}

static bool h_net_can_receive(modvm_net *n, unsigned queue, size_t len)
{
	bool r;

	if (queue >= n->queue_pairs)
		return false;
	machine_lock(n->m);
	r = n->fe.can_receive(n->fe_opaque, queue, len);
	machine_unlock(n->m);
	return r;
}

static bool h_net_receive(modvm_net *n, unsigned queue,
			  const struct modvm_net_hdr *hdr,
			  const struct iovec *iov, int iovcnt)
{
	static const struct modvm_net_hdr plain;
	bool r;

	if (!hdr)
		hdr = &plain;
	if (queue >= n->queue_pairs || iovcnt < 0)
		return true; /* nowhere to go: dropped */
	if (!hdr_allowed(hdr, n->rx_offloads)) {
		/* a backend bug, or frames it read before the guest's
		 * driver changed what it takes */
		if (!n->warned_rx_offload)
			machine_log(n->m, MODVM_LOG_INFO,
				    "%s: frame from %s with offloads (flags %#x, gso %#x) the guest did not take: dropped",
				    n->frontend->prefix, n->backend->plugin->desc->name,
				    hdr->flags, hdr->gso_type);
		n->warned_rx_offload = true;
		return true;
	}
	machine_lock(n->m);
	r = n->fe.receive(n->fe_opaque, queue, hdr, iov, iovcnt);
	machine_unlock(n->m);
	return r;
}

static void h_net_tx_ready(modvm_net *n, unsigned queue)
{
	machine_lock(n->m);
	if (n->fe.tx_ready && queue < n->queue_pairs)
		n->fe.tx_ready(n->fe_opaque, queue);
	machine_unlock(n->m);
}

static void h_net_link_changed(modvm_net *n, bool up)
{
	machine_lock(n->m);
	if (n->fe.link_changed)
		n->fe.link_changed(n->fe_opaque, up);
	machine_unlock(n->m);
}

void net_host_services(struct modvm_host *h)
{
	h->net_open = h_net_open;
	h->net_close = h_net_close;
	h->net_send = h_net_send;
	h->net_rx_ready = h_net_rx_ready;
	h->net_offloads = h_net_offloads;
	h->net_queue_pairs = h_net_queue_pairs;
	h->net_link_up = h_net_link_up;
	h->net_can_receive = h_net_can_receive;
	h->net_receive = h_net_receive;
	h->net_tx_ready = h_net_tx_ready;
	h->net_link_changed = h_net_link_changed;
	h->net_set_rx_offloads = h_net_set_rx_offloads;
}
