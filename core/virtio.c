/* The virtio 1.x modern PCI transport (virtio 1.1, 4.1): common, notify,
 * ISR and device capabilities, the PCI_CFG window, MSI-X, feature
 * negotiation and the status state machine, behind the virtio_* host
 * services. The rings themselves are parsed by core/virtq.c. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modvm/pci.h>
#include <modvm/virtio.h>

#include "machine.h"
#include "virtio.h"

#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG    3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4
#define VIRTIO_PCI_CAP_PCI_CFG    5
#define NCAPS                     5
/* struct virtio_pci_cfg_cap, from the capability's ID byte (4.1.4.7) */
#define PCICFG_BAR    4
#define PCICFG_OFFSET 8
#define PCICFG_LENGTH 12
#define PCICFG_DATA   16
#define PCICFG_LEN    20

/* Layout of the virtio BAR (BAR0); MSI-X table and PBA live in BAR2. */
#define BAR_SIZE      0x4000
#define COMMON_OFF    0x0000
#define COMMON_LEN    0x38
#define ISR_OFF       0x1000
#define DEVICE_OFF    0x2000
#define DEVICE_MAX    0x1000
#define NOTIFY_OFF    0x3000
#define NOTIFY_MULT   4
#define MSIX_BAR      2
#define MSIX_BAR_SIZE 0x1000
#define MSIX_PBA_OFF  0x800

/* common configuration structure (4.1.4.3) */
#define CC_DFSELECT   0x00
#define CC_DF         0x04
#define CC_GFSELECT   0x08
#define CC_GF         0x0C
#define CC_MSIX       0x10
#define CC_NUMQ       0x12
#define CC_STATUS     0x14
#define CC_CFGGEN     0x15
#define CC_Q_SELECT   0x16
#define CC_Q_SIZE     0x18
#define CC_Q_MSIX     0x1A
#define CC_Q_ENABLE   0x1C
#define CC_Q_NOFF     0x1E
#define CC_Q_DESCLO   0x20
#define CC_Q_DESCHI   0x24
#define CC_Q_AVAILLO  0x28
#define CC_Q_AVAILHI  0x2C
#define CC_Q_USEDLO   0x30
#define CC_Q_USEDHI   0x34

#define ISR_QUEUE     0x1
#define ISR_CONFIG    0x2

struct modvm_virtio_dev {
	modvm_inst *inst;
	const struct modvm_host *h;
	struct modvm_virtio_info info;
	struct modvm_virtio_state *st;
	struct modvm_virtio_queue_state *q; /* info.num_queues, in the plugin */
	modvm_pci_dev *pci;
	struct vq *vq;                      /* info.num_queues */
	struct vq_mem mem;
	uint64_t host_features;
	bool warned;                    /* NEEDS_RESET logged since reset */
	uint8_t cap_data[NCAPS][20];
	struct modvm_pci_cap caps[NCAPS];
	unsigned pcicfg_cap;            /* index of the PCI_CFG capability */
	struct modvm_virtio_dev *next;
};

static void *mem_ptr(void *opaque, uint64_t gpa, uint64_t len)
{
	struct modvm_virtio_dev *d = opaque;

	return d->h->mem_ptr(d->inst, gpa, len);
}

static void mem_dirty(void *opaque, uint64_t gpa, uint64_t len)
{
	struct modvm_virtio_dev *d = opaque;

	d->h->mem_dirty(d->inst, gpa, len);
}

static bool bus_master(struct modvm_virtio_dev *d)
{
	uint8_t dummy;

	/* A zero-length DMA is refused exactly when Bus Master is off. */
	return d->h->pci_dma_read(d->pci, 0, &dummy, 0) == 0;
}

static void intx_or_msix(struct modvm_virtio_dev *d, uint16_t vector,
			 uint8_t isr_bit)
{
	if (vector != MODVM_VIRTIO_NO_VECTOR &&
	    d->h->pci_msi_notify(d->pci, vector))
		return;
	/* 4.1.4.5: without MSI-X the ISR says why INTx is up. */
	d->st->isr |= isr_bit;
	d->h->pci_set_irq(d->pci, 1);
}

static void config_interrupt(struct modvm_virtio_dev *d)
{
	if (d->st->status & MODVM_VIRTIO_CONFIG_S_DRIVER_OK)
		intx_or_msix(d, d->st->msix_config, ISR_CONFIG);
}

/* 2.1.2: the device says it hit an error it cannot recover from. */
static void needs_reset(struct modvm_virtio_dev *d, const char *why)
{
	if (!d->warned)
		d->h->log(d->inst, MODVM_LOG_WARN,
			  "virtio: %s; device needs reset", why);
	d->warned = true;
	if (d->st->status & MODVM_VIRTIO_CONFIG_S_NEEDS_RESET)
		return;
	d->st->status |= MODVM_VIRTIO_CONFIG_S_NEEDS_RESET;
	d->st->config_generation++;
	config_interrupt(d);
}

static void queue_setup_flags(struct modvm_virtio_dev *d)
{
	uint64_t f = d->st->driver_features;

	for (unsigned i = 0; i < d->info.num_queues; i++) {
		d->vq[i].indirect = f >> MODVM_VIRTIO_F_RING_INDIRECT_DESC & 1;
		d->vq[i].event_idx = f >> MODVM_VIRTIO_F_RING_EVENT_IDX & 1;
	}
}

/* Everything but the plugin's own state back to power-on (4.1.4.3.1:
 * writing 0 to device_status resets the device). */
static void transport_clear(struct modvm_virtio_dev *d)
{
	struct modvm_virtio_state *s = d->st;

	s->driver_features = 0;
	s->device_feature_select = s->driver_feature_select = 0;
	s->msix_config = MODVM_VIRTIO_NO_VECTOR;
	s->queue_select = 0;
	s->status = 0;
	s->isr = 0;
	s->pcicfg_bar = 0;
	s->pcicfg_offset = s->pcicfg_length = 0;
	memset(d->q, 0, d->info.num_queues * sizeof(*d->q));
	for (unsigned i = 0; i < d->info.num_queues; i++) {
		d->q[i].msix_vector = MODVM_VIRTIO_NO_VECTOR;
		d->q[i].size = d->info.queue_size;
		vq_unmap(&d->vq[i]);
	}
	queue_setup_flags(d);
	d->warned = false;
	d->h->pci_set_irq(d->pci, 0);
}

static void device_reset(struct modvm_virtio_dev *d)
{
	if (d->info.reset)
		d->info.reset(d->info.opaque);
	transport_clear(d);
}

static struct modvm_virtio_queue_state *sel_queue(struct modvm_virtio_dev *d)
{
	unsigned q = d->st->queue_select;

	return q < d->info.num_queues ? &d->q[q] : NULL;
}

static uint16_t vector_checked(struct modvm_virtio_dev *d, uint16_t v)
{
	/* 4.1.5.1.2: a vector the device cannot map reads back NO_VECTOR. */
	return v <= d->info.num_queues ? v : MODVM_VIRTIO_NO_VECTOR;
}

static void common_image(struct modvm_virtio_dev *d, uint8_t *b)
{
	struct modvm_virtio_state *s = d->st;
	struct modvm_virtio_queue_state *q = sel_queue(d);
	uint32_t sel = s->device_feature_select, gsel = s->driver_feature_select;
	uint32_t df = sel < 2 ? (uint32_t)(d->host_features >> (32 * sel)) : 0;
	uint32_t gf = gsel < 2 ? (uint32_t)(s->driver_features >> (32 * gsel)) : 0;

	memset(b, 0, COMMON_LEN);
	memcpy(b + CC_DFSELECT, &sel, 4);
	memcpy(b + CC_DF, &df, 4);
	memcpy(b + CC_GFSELECT, &gsel, 4);
	memcpy(b + CC_GF, &gf, 4);
	st16(b + CC_MSIX, s->msix_config);
	st16(b + CC_NUMQ, (uint16_t)d->info.num_queues);
	b[CC_STATUS] = s->status;
	b[CC_CFGGEN] = (uint8_t)s->config_generation;
	st16(b + CC_Q_SELECT, s->queue_select);
	if (!q)
		return; /* queue_size 0: no such queue (4.1.4.3.2) */
	st16(b + CC_Q_SIZE, q->size);
	st16(b + CC_Q_MSIX, q->msix_vector);
	st16(b + CC_Q_ENABLE, q->enable);
	st16(b + CC_Q_NOFF, s->queue_select);
	memcpy(b + CC_Q_DESCLO, &q->desc, 8);
	memcpy(b + CC_Q_AVAILLO, &q->driver, 8);
	memcpy(b + CC_Q_USEDLO, &q->device, 8);
}

static uint64_t common_read(struct modvm_virtio_dev *d, uint64_t off,
			    unsigned size)
{
	uint8_t b[COMMON_LEN];
	uint64_t v = 0;

	if (off >= COMMON_LEN || size > COMMON_LEN - off)
		return 0;
	common_image(d, b);
	memcpy(&v, b + off, size);
	return v;
}

static bool features_acceptable(struct modvm_virtio_dev *d)
{
	uint64_t f = d->st->driver_features;

	if (!(f >> MODVM_VIRTIO_F_VERSION_1 & 1)) {
		d->h->log(d->inst, MODVM_LOG_WARN,
			  "virtio: driver did not accept MODVM_VIRTIO_F_VERSION_1 (legacy drivers are not supported)");
		return false;
	}
	if (f & ~d->host_features)
		return false;
	return !d->info.features_ok || d->info.features_ok(d->info.opaque, f) == 0;
}

static void kick_all(struct modvm_virtio_dev *d)
{
	for (unsigned i = 0; i < d->info.num_queues; i++)
		if (d->q[i].enable && d->vq[i].desc)
			d->info.queue_notify(d->info.opaque, i);
}

/* 2.1, 3.1.1: the driver only adds bits, in order; 0 resets. */
static void status_write(struct modvm_virtio_dev *d, uint8_t v)
{
	struct modvm_virtio_state *s = d->st;
	uint8_t old = s->status & (uint8_t)~MODVM_VIRTIO_CONFIG_S_NEEDS_RESET;

	if (!v) {
		device_reset(d);
		return;
	}
	v &= (uint8_t)~MODVM_VIRTIO_CONFIG_S_NEEDS_RESET;
	if (old & ~v) {
		d->h->log(d->inst, MODVM_LOG_DEBUG,
			  "virtio: status 0x%02x would clear bits of 0x%02x: ignored", v, old);
		return;
	}
	if ((v & MODVM_VIRTIO_CONFIG_S_FEATURES_OK) && !(old & MODVM_VIRTIO_CONFIG_S_FEATURES_OK)) {
		if (!features_acceptable(d))
			v &= (uint8_t)~MODVM_VIRTIO_CONFIG_S_FEATURES_OK;
		else
			queue_setup_flags(d);
	}
	if (!(v & MODVM_VIRTIO_CONFIG_S_FEATURES_OK))
		v &= (uint8_t)~MODVM_VIRTIO_CONFIG_S_DRIVER_OK;
	s->status = (uint8_t)(v | (s->status & MODVM_VIRTIO_CONFIG_S_NEEDS_RESET));
	if ((v & MODVM_VIRTIO_CONFIG_S_DRIVER_OK) && !(old & MODVM_VIRTIO_CONFIG_S_DRIVER_OK))
		kick_all(d);
}

static void queue_enable(struct modvm_virtio_dev *d, unsigned qi)
{
	struct vq *q = &d->vq[qi];

	if (d->q[qi].enable)
		return;
	if (vq_map(q, &d->mem, d->info.queue_size)) {
		needs_reset(d, q->error);
		return;
	}
	d->q[qi].enable = 1;
}

static void set_half(uint64_t *field, bool high, uint64_t v, unsigned size)
{
	if (size == 8)
		*field = v;
	else if (high)
		*field = (*field & 0xFFFFFFFFull) | v << 32;
	else
		*field = (*field & ~0xFFFFFFFFull) | (uint32_t)v;
}

static void queue_write(struct modvm_virtio_dev *d, uint64_t off, uint64_t v,
			unsigned size)
{
	struct modvm_virtio_queue_state *q = sel_queue(d);
	unsigned qi = d->st->queue_select;

	if (!q)
		return;
	if (off == CC_Q_MSIX && size == 2) {
		q->msix_vector = vector_checked(d, (uint16_t)v);
		return;
	}
	if (q->enable)
		return; /* 4.1.4.3.2: no changes once enabled, until reset */
	switch (off) {
	case CC_Q_SIZE:
		/* Smaller powers of two only; others keep the old value. */
		if (size == 2 && v && v <= d->info.queue_size && !(v & (v - 1)))
			q->size = (uint16_t)v;
		break;
	case CC_Q_ENABLE:
		if (size == 2 && v == 1)
			queue_enable(d, qi);
		break;
	case CC_Q_DESCLO: case CC_Q_DESCHI:
		set_half(&q->desc, off == CC_Q_DESCHI, v, size);
		break;
	case CC_Q_AVAILLO: case CC_Q_AVAILHI:
		set_half(&q->driver, off == CC_Q_AVAILHI, v, size);
		break;
	case CC_Q_USEDLO: case CC_Q_USEDHI:
		set_half(&q->device, off == CC_Q_USEDHI, v, size);
		break;
	}
}

static bool access_ok(uint64_t off, unsigned size)
{
	/* 4.1.3.1: fields are accessed with their own width; 64-bit fields
	 * as two dwords (or one aligned qword). */
	return off % size == 0 && off + size <= COMMON_LEN;
}

static void common_write(struct modvm_virtio_dev *d, uint64_t off, uint64_t v,
			 unsigned size)
{
	struct modvm_virtio_state *s = d->st;

	if (!access_ok(off, size))
		return;
	switch (off) {
	case CC_DFSELECT:
		if (size == 4)
			s->device_feature_select = (uint32_t)v;
		return;
	case CC_GFSELECT:
		if (size == 4)
			s->driver_feature_select = (uint32_t)v;
		return;
	case CC_GF:
		/* 3.1.1: features are fixed once FEATURES_OK is set. */
		if (size != 4 || s->driver_feature_select > 1 ||
		    (s->status & MODVM_VIRTIO_CONFIG_S_FEATURES_OK))
			return;
		set_half(&s->driver_features, s->driver_feature_select == 1, v, 4);
		return;
	case CC_MSIX:
		if (size == 2)
			s->msix_config = vector_checked(d, (uint16_t)v);
		return;
	case CC_STATUS:
		if (size == 1)
			status_write(d, (uint8_t)v);
		return;
	case CC_Q_SELECT:
		if (size == 2)
			s->queue_select = (uint16_t)v;
		return;
	default:
		if (off >= CC_Q_SIZE)
			queue_write(d, off, v, size);
	}
}

static bool queue_live(struct modvm_virtio_dev *d, unsigned qi)
{
	uint8_t s = d->st->status;

	return qi < d->info.num_queues && d->q[qi].enable &&
	       (s & MODVM_VIRTIO_CONFIG_S_DRIVER_OK) &&
	       !(s & (MODVM_VIRTIO_CONFIG_S_NEEDS_RESET | MODVM_VIRTIO_CONFIG_S_FAILED));
}

static void notify_write(struct modvm_virtio_dev *d, uint64_t off)
{
	unsigned qi = (unsigned)(off / NOTIFY_MULT);

	if (!queue_live(d, qi))
		return;
	if (!bus_master(d)) {
		d->h->log(d->inst, MODVM_LOG_DEBUG,
			  "virtio: queue %u notified while Bus Master is off", qi);
		return;
	}
	d->info.queue_notify(d->info.opaque, qi);
}

static uint64_t isr_read(struct modvm_virtio_dev *d)
{
	uint8_t v = d->st->isr;

	/* 4.1.4.5.1: reading the ISR clears it and de-asserts INTx. */
	d->st->isr = 0;
	d->h->pci_set_irq(d->pci, 0);
	return v;
}

static bool device_cfg_ok(struct modvm_virtio_dev *d, uint64_t off,
			  unsigned size)
{
	return off < d->info.config_size && size <= d->info.config_size - off;
}

static uint64_t bar_read(void *opaque, uint64_t off, unsigned size)
{
	struct modvm_virtio_dev *d = opaque;

	if (off < COMMON_OFF + COMMON_LEN)
		return common_read(d, off, size);
	if (off == ISR_OFF)
		return isr_read(d);
	if (off >= DEVICE_OFF && off < DEVICE_OFF + DEVICE_MAX) {
		off -= DEVICE_OFF;
		if (!device_cfg_ok(d, off, size) || !d->info.config_read)
			return 0;
		return d->info.config_read(d->info.opaque, (unsigned)off, size);
	}
	return 0;
}

static void bar_write(void *opaque, uint64_t off, uint64_t v, unsigned size)
{
	struct modvm_virtio_dev *d = opaque;

	if (off < COMMON_OFF + COMMON_LEN) {
		common_write(d, off, v, size);
	} else if (off >= DEVICE_OFF && off < DEVICE_OFF + DEVICE_MAX) {
		off -= DEVICE_OFF;
		if (device_cfg_ok(d, off, size) && d->info.config_write)
			d->info.config_write(d->info.opaque, (unsigned)off, v, size);
	} else if (off >= NOTIFY_OFF && off < NOTIFY_OFF + NOTIFY_MULT * d->info.num_queues) {
		notify_write(d, off - NOTIFY_OFF);
	}
}

static const struct modvm_io_ops virtio_bar_ops = { bar_read, bar_write };

/* struct virtio_pci_cap (4.1.4) after its ID and next bytes. */
static void cap_fill(struct modvm_virtio_dev *d, unsigned i, uint8_t type,
		     uint32_t off, uint32_t len)
{
	uint8_t *c = d->cap_data[i];
	uint32_t mult = NOTIFY_MULT;

	c[0] = type == VIRTIO_PCI_CAP_NOTIFY_CFG || type == VIRTIO_PCI_CAP_PCI_CFG ?
	       20 : 16; /* cap_len */
	c[1] = type;
	c[2] = 0;          /* bar */
	memcpy(c + 6, &off, 4);
	memcpy(c + 10, &len, 4);
	if (type == VIRTIO_PCI_CAP_NOTIFY_CFG)
		memcpy(c + 14, &mult, 4);
	d->caps[i] = (struct modvm_pci_cap){ .id = MODVM_PCI_CAP_ID_VNDR,
					     .len = (uint8_t)(c[0] - 2),
					     .data = c };
}

/* ---- VIRTIO_PCI_CAP_PCI_CFG: BAR access through config space (4.1.4.7) */

static bool pcicfg_window_ok(const struct modvm_virtio_state *s)
{
	uint32_t len = s->pcicfg_length, off = s->pcicfg_offset;

	return s->pcicfg_bar == 0 && (len == 1 || len == 2 || len == 4) &&
	       off % len == 0 && off < BAR_SIZE && len <= BAR_SIZE - off;
}

/* Offset of byte `off` inside the PCI_CFG capability, or -1. */
static int pcicfg_rel(struct modvm_virtio_dev *d, unsigned off)
{
	unsigned base = d->h->pci_cap_offset(d->pci, d->pcicfg_cap);

	if (!base || off < base + PCICFG_BAR || off >= base + PCICFG_LEN)
		return -1;
	return (int)(off - base);
}

static void pcicfg_image(struct modvm_virtio_dev *d, uint8_t *img, bool data)
{
	struct modvm_virtio_state *s = d->st;
	uint32_t v = 0;

	memset(img, 0, PCICFG_LEN);
	img[PCICFG_BAR] = s->pcicfg_bar;
	memcpy(img + PCICFG_OFFSET, &s->pcicfg_offset, 4);
	memcpy(img + PCICFG_LENGTH, &s->pcicfg_length, 4);
	/* 4.1.4.7.1: a read of pci_cfg_data reads the BAR at the window. */
	if (data && pcicfg_window_ok(s))
		v = (uint32_t)bar_read(d, s->pcicfg_offset, s->pcicfg_length);
	memcpy(img + PCICFG_DATA, &v, 4);
}

static uint32_t pcicfg_read(void *opaque, unsigned off, unsigned size,
			    uint32_t stored)
{
	struct modvm_virtio_dev *d = opaque;
	int rel = pcicfg_rel(d, off);
	uint8_t img[PCICFG_LEN];
	uint32_t v = 0;

	if (rel < 0 || (unsigned)rel + size > PCICFG_LEN)
		return stored;
	pcicfg_image(d, img, rel + (int)size > PCICFG_DATA);
	memcpy(&v, img + rel, size);
	return v;
}

static void pcicfg_write(void *opaque, unsigned off, uint32_t value,
			 unsigned size)
{
	struct modvm_virtio_dev *d = opaque;
	struct modvm_virtio_state *s = d->st;
	int rel = pcicfg_rel(d, off);
	uint8_t img[PCICFG_LEN];

	if (rel < 0 || (unsigned)rel + size > PCICFG_LEN)
		return;
	if (rel >= PCICFG_DATA) {
		/* A write of pci_cfg_data writes the BAR at the window. */
		if (pcicfg_window_ok(s))
			bar_write(d, s->pcicfg_offset, value, s->pcicfg_length);
		return;
	}
	pcicfg_image(d, img, false);
	memcpy(img + rel, &value, size);
	s->pcicfg_bar = img[PCICFG_BAR];
	memcpy(&s->pcicfg_offset, img + PCICFG_OFFSET, 4);
	memcpy(&s->pcicfg_length, img + PCICFG_LENGTH, 4);
}

static int info_check(modvm_inst *inst, const struct modvm_virtio_info *i)
{
	const char *why = NULL;

	if (i->num_queues < 1 || i->num_queues > MODVM_VIRTIO_QUEUES_MAX)
		why = "num_queues must be 1-127";
	else if (i->queue_size < 2 || i->queue_size > MODVM_VIRTIO_QUEUE_SIZE_MAX ||
		 (i->queue_size & (i->queue_size - 1)))
		why = "queue_size must be a power of two from 2 to 1024";
	else if (i->config_size > DEVICE_MAX)
		why = "config_size above 4096";
	else if (!i->queue_notify)
		why = "queue_notify is required";
	else if (i->features >> 24)
		why = "device features must be bits 0-23";
	if (why)
		inst->m->host.set_error(inst, "virtio: %s", why);
	return why ? -1 : 0;
}

static modvm_pci_dev *pci_function(struct modvm_virtio_dev *d)
{
	unsigned n = 0;

	cap_fill(d, n++, VIRTIO_PCI_CAP_COMMON_CFG, COMMON_OFF, COMMON_LEN);
	cap_fill(d, n++, VIRTIO_PCI_CAP_NOTIFY_CFG, NOTIFY_OFF,
		 NOTIFY_MULT * d->info.num_queues);
	cap_fill(d, n++, VIRTIO_PCI_CAP_ISR_CFG, ISR_OFF, 1);
	if (d->info.config_size)
		cap_fill(d, n++, VIRTIO_PCI_CAP_DEVICE_CFG, DEVICE_OFF,
			 d->info.config_size);
	d->pcicfg_cap = n;
	cap_fill(d, n++, VIRTIO_PCI_CAP_PCI_CFG, 0, 0);
	struct modvm_pci_info pi = {
		.size = sizeof(pi),
		.vendor_id = MODVM_VIRTIO_PCI_VENDOR,
		.device_id = (uint16_t)(MODVM_VIRTIO_PCI_DEVICE_BASE + d->info.device_type),
		.subsystem_vendor_id = MODVM_VIRTIO_PCI_VENDOR,
		.subsystem_id = 0x0040, /* 4.1.2.1: >= 0x40 for modern-only */
		.class_code = d->info.class_code,
		.subclass = d->info.subclass,
		.revision = 1,          /* 4.1.2.1: non-transitional */
		.interrupt_pin = MODVM_PCI_PIN_INTA,
		.slot = d->info.slot,
		.bars[0] = { .size = BAR_SIZE, .type = MODVM_PCI_BAR_MEM32,
			     .ops = &virtio_bar_ops, .opaque = d },
		.bars[MSIX_BAR] = { .size = MSIX_BAR_SIZE, .type = MODVM_PCI_BAR_MEM32 },
		.msix = { .vectors = d->info.num_queues + 1, .table_bar = MSIX_BAR,
			  .table_offset = 0, .pba_bar = MSIX_BAR,
			  .pba_offset = MSIX_PBA_OFF },
		.caps = d->caps,
		.ncaps = n,
		.config_read = pcicfg_read,
		.config_write = pcicfg_write,
		.config_opaque = d,
	};
	return d->h->pci_register(d->inst, &pi);
}

/* The machine's virtio devices, for virtio_release_inst. */
static void dev_link(struct modvm_virtio_dev *d, bool add)
{
	struct machine *m = d->inst->m;

	pthread_mutex_lock(&m->virtio_lock);
	if (add) {
		d->next = m->virtio_devs;
		m->virtio_devs = d;
	} else {
		for (struct modvm_virtio_dev **pp = &m->virtio_devs; *pp; pp = &(*pp)->next)
			if (*pp == d) {
				*pp = d->next;
				break;
			}
	}
	pthread_mutex_unlock(&m->virtio_lock);
}

static modvm_virtio_dev *h_virtio_register(modvm_inst *inst,
					   const struct modvm_virtio_info *info,
					   struct modvm_virtio_state *state,
					   struct modvm_virtio_queue_state *queues)
{
	struct modvm_virtio_dev *d;

	if (!info || info->size < sizeof(*info) || !state || !queues) {
		inst->m->host.set_error(inst, "virtio: struct modvm_virtio_info of %u bytes, the core needs %zu (set .size), a state and queues",
					info ? info->size : 0, sizeof(*info));
		return NULL;
	}
	if (info_check(inst, info))
		return NULL;
	d = xcalloc(1, sizeof(*d));
	d->inst = inst;
	d->h = &inst->m->host;
	d->info = *info;
	d->st = state;
	d->q = queues;
	d->vq = xcalloc(info->num_queues, sizeof(*d->vq));
	d->mem = (struct vq_mem){ mem_ptr, mem_dirty, d };
	d->host_features = info->features | 1ull << MODVM_VIRTIO_F_VERSION_1 |
			   1ull << MODVM_VIRTIO_F_RING_INDIRECT_DESC |
			   1ull << MODVM_VIRTIO_F_RING_EVENT_IDX;
	for (unsigned i = 0; i < info->num_queues; i++)
		d->vq[i].st = &queues[i];
	d->pci = pci_function(d);
	if (!d->pci) {
		free(d->vq);
		free(d);
		return NULL;
	}
	memset(state, 0, sizeof(*state));
	state->host = d->h;
	state->dev = d;
	transport_clear(d);
	dev_link(d, true);
	return d;
}

static int h_virtio_pop(modvm_virtio_dev *d, unsigned queue,
			struct modvm_virtio_elem *e)
{
	int rc;

	if (d->st->status & MODVM_VIRTIO_CONFIG_S_NEEDS_RESET)
		return -1;
	if (!queue_live(d, queue) || !e || !e->iov || !e->gpa)
		return 0;
	rc = vq_pop(&d->vq[queue], &d->mem, e);
	if (rc < 0) {
		needs_reset(d, d->vq[queue].error);
		return -1;
	}
	e->queue = queue;
	return rc;
}

static void h_virtio_unpop(modvm_virtio_dev *d, unsigned queue, unsigned n)
{
	if (!queue_live(d, queue) || n > d->q[queue].size)
		return;
	vq_unpop(&d->vq[queue], (uint16_t)n);
}

/* Mark what the device wrote for snapshots: the first `written` bytes of
 * the writable part. */
static void dirty_written(struct modvm_virtio_dev *d,
			  const struct modvm_virtio_elem *e, uint32_t written)
{
	for (unsigned i = e->nread; written && i < (unsigned)e->nread + e->nwrite; i++) {
		uint64_t n = e->iov[i].iov_len < written ? e->iov[i].iov_len : written;
		d->h->mem_dirty(d->inst, e->gpa[i], n);
		written -= (uint32_t)n;
	}
}

static void h_virtio_push(modvm_virtio_dev *d, const struct modvm_virtio_elem *e,
			  uint32_t written)
{
	if (!e || e->queue >= d->info.num_queues || !d->q[e->queue].enable)
		return;
	if (written > e->write_len)
		written = (uint32_t)e->write_len;
	dirty_written(d, e, written);
	vq_push(&d->vq[e->queue], &d->mem, e->head, written);
}

static void h_virtio_notify(modvm_virtio_dev *d, unsigned queue)
{
	if (queue >= d->info.num_queues || !d->q[queue].enable ||
	    !(d->st->status & MODVM_VIRTIO_CONFIG_S_DRIVER_OK))
		return;
	if (vq_need_interrupt(&d->vq[queue]))
		intx_or_msix(d, d->q[queue].msix_vector, ISR_QUEUE);
}

static void h_virtio_config_changed(modvm_virtio_dev *d)
{
	d->st->config_generation++;
	config_interrupt(d);
}

static void h_virtio_needs_reset(modvm_virtio_dev *d, const char *why)
{
	needs_reset(d, why ? why : "device error");
}

static void h_virtio_reset(modvm_virtio_dev *d)
{
	device_reset(d);
}

static uint64_t h_virtio_features(modvm_virtio_dev *d)
{
	return d->st->driver_features;
}

static void h_virtio_pre_save(modvm_virtio_dev *d)
{
	if (d->info.drain)
		d->info.drain(d->info.opaque);
}

/* A snapshot is guest-controlled data too: check it like register writes
 * and map the rings again. */
static int h_virtio_post_load(modvm_virtio_dev *d)
{
	struct modvm_virtio_state *s = d->st;
	const char *why = NULL;

	if (s->driver_features & ~d->host_features)
		why = "features the device does not offer";
	for (unsigned i = 0; i < d->info.num_queues && !why; i++) {
		struct modvm_virtio_queue_state *q = &d->q[i];
		vq_unmap(&d->vq[i]);
		q->msix_vector = vector_checked(d, q->msix_vector);
		if (q->enable && vq_map(&d->vq[i], &d->mem, d->info.queue_size))
			why = d->vq[i].error;
	}
	if (why) {
		d->h->log(d->inst, MODVM_LOG_ERROR, "virtio: snapshot holds %s", why);
		transport_clear(d);
		return -1;
	}
	s->msix_config = vector_checked(d, s->msix_config);
	queue_setup_flags(d);
	d->warned = (s->status & MODVM_VIRTIO_CONFIG_S_NEEDS_RESET) != 0;
	d->h->pci_set_irq(d->pci, s->isr ? 1 : 0);
	return 0;
}

static void h_virtio_unregister(modvm_virtio_dev *d)
{
	if (!d)
		return;
	dev_link(d, false);
	d->st->dev = NULL;
	free(d->vq);
	free(d);
}

void virtio_release_inst(struct machine *m, modvm_inst *inst)
{
	struct modvm_virtio_dev *d;

	do {
		pthread_mutex_lock(&m->virtio_lock);
		for (d = m->virtio_devs; d && d->inst != inst; d = d->next)
			;
		pthread_mutex_unlock(&m->virtio_lock);
		if (d)
			h_virtio_unregister(d);
	} while (d);
}

void virtio_host_services(struct modvm_host *h)
{
	h->virtio_register = h_virtio_register;
	h->virtio_pop = h_virtio_pop;
	h->virtio_push = h_virtio_push;
	h->virtio_notify = h_virtio_notify;
	h->virtio_config_changed = h_virtio_config_changed;
	h->virtio_needs_reset = h_virtio_needs_reset;
	h->virtio_reset = h_virtio_reset;
	h->virtio_features = h_virtio_features;
	h->virtio_pre_save = h_virtio_pre_save;
	h->virtio_post_load = h_virtio_post_load;
	h->virtio_unregister = h_virtio_unregister;
	h->virtio_unpop = h_virtio_unpop;
}
