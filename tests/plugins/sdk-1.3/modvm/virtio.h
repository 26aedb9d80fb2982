/* modvm SDK: virtio 1.x devices over the modern PCI transport.
 *
 * A device plugin describes its virtio device (type, features, config space,
 * queues) in a struct modvm_virtio_info and calls host->virtio_register().
 * The core then is the PCI function (vendor capabilities, MSI-X, common
 * config, notify, ISR), negotiates features, and parses the split virtqueues,
 * validating every descriptor the guest supplies. The plugin pops requests as
 * elements of host iovecs and pushes them back. See docs/sdk-virtio.md.
 * Section numbers refer to Virtual I/O Device (VIRTIO) Version 1.1.
 */
#ifndef MODVM_VIRTIO_H
#define MODVM_VIRTIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <modvm/host.h>
#include <modvm/state.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MODVM_VIRTIO_PCI_VENDOR      0x1AF4
#define MODVM_VIRTIO_PCI_DEVICE_BASE 0x1040 /* + device type (4.1.2.1) */
#define MODVM_VIRTIO_QUEUES_MAX      8      /* queues one device may have */
#define MODVM_VIRTIO_QUEUE_SIZE_MAX  1024   /* largest queue size offered */
#define MODVM_VIRTIO_NO_VECTOR       0xFFFF /* 4.1.4.3: no MSI-X vector */

/* Device types (5). */
#define MODVM_VIRTIO_ID_NET     1
#define MODVM_VIRTIO_ID_BLOCK   2
#define MODVM_VIRTIO_ID_CONSOLE 3
#define MODVM_VIRTIO_ID_RNG     4

/* Reserved feature bits the transport handles (6). */
#define VIRTIO_F_RING_INDIRECT_DESC 28
#define VIRTIO_F_RING_EVENT_IDX     29
#define VIRTIO_F_VERSION_1          32

/* Device status (2.1). */
#define VIRTIO_CONFIG_S_ACKNOWLEDGE 0x01
#define VIRTIO_CONFIG_S_DRIVER      0x02
#define VIRTIO_CONFIG_S_DRIVER_OK   0x04
#define VIRTIO_CONFIG_S_FEATURES_OK 0x08
#define VIRTIO_CONFIG_S_NEEDS_RESET 0x40
#define VIRTIO_CONFIG_S_FAILED      0x80

typedef struct modvm_virtio_dev modvm_virtio_dev;

/*
 * One request popped from a queue: a descriptor chain the core has
 * validated, as host iovecs into guest RAM. iov[0..nread) is what the
 * device may read (driver to device), iov[nread..nread+nwrite) what it may
 * write. The caller owns the element and provides iov and gpa arrays of
 * max entries; max should be the queue size, the longest chain the core
 * accepts (2.6.5.3.1), so a valid chain always fits.
 */
struct modvm_virtio_elem {
	uint32_t queue;
	uint16_t head;          /* chain head, returned in the used ring */
	uint16_t nread, nwrite;
	uint32_t max;           /* capacity of iov and gpa (set by the caller) */
	struct iovec *iov;      /* host pointers, valid for the machine's life */
	uint64_t *gpa;          /* guest address of each iov (dirty tracking) */
	uint64_t read_len;      /* sum of the readable lengths */
	uint64_t write_len;     /* sum of the writable lengths */
};

/* What a virtio device plugin gives the core. Size-prefixed: set
 * size = sizeof(struct modvm_virtio_info); zero what you do not use. */
struct modvm_virtio_info {
	uint32_t size;
	uint16_t device_type;        /* MODVM_VIRTIO_ID_* */
	uint8_t class_code, subclass; /* PCI class of the function */
	int32_t slot;                /* PCI slot, or MODVM_PCI_SLOT_ANY */
	uint64_t features;           /* device-specific bits offered (0-23) */
	uint32_t num_queues;         /* 1..MODVM_VIRTIO_QUEUES_MAX */
	uint16_t queue_size;         /* largest size per queue, power of 2 */
	uint32_t config_size;        /* bytes of device config, at most 4096 */
	/* Device config space (4.1.4.6): offset + size <= config_size, size
	 * 1, 2, 4 or 8. Driver writes leave the generation alone; call
	 * host->virtio_config_changed() for changes of your own. May be NULL. */
	uint64_t (*config_read)(void *opaque, unsigned offset, unsigned size);
	void (*config_write)(void *opaque, unsigned offset, uint64_t value,
			     unsigned size);
	/* The driver notified queue `queue` (DRIVER_OK is set and the queue
	 * enabled): pop and process what is available. */
	void (*queue_notify)(void *opaque, unsigned queue);
	/* Device reset (the driver wrote 0 to device_status, or a platform
	 * reset): finish or drop in-flight work now; after this returns the
	 * core forgets every queue. May be NULL. */
	void (*reset)(void *opaque);
	/* The driver set FEATURES_OK with these features (VERSION_1 is
	 * checked already). Return 0 to accept, -1 to refuse. May be NULL. */
	int (*features_ok)(void *opaque, uint64_t features);
	/* Before a snapshot: complete every request in flight (push it), so
	 * the saved queue indices describe everything. May be NULL when the
	 * device never holds requests across callbacks. */
	void (*drain)(void *opaque);
	void *opaque;
};

/* Transport state kept in the plugin's instance, so snapshots carry it
 * through the section that MODVM_VIRTIO_STATE_SECTION declares. The core
 * reads and writes it; the plugin only embeds it and never touches it. */
struct modvm_virtio_queue_state {
	uint64_t desc, driver, device; /* ring addresses (4.1.4.3) */
	uint16_t size;                 /* queue_size as the driver set it */
	uint16_t msix_vector;
	uint16_t enable;
	uint16_t last_avail;           /* next avail ring entry to read */
	uint16_t used_idx;             /* next used ring entry to write */
	uint16_t signalled_used;       /* used_idx at the last interrupt */
	uint8_t signalled_valid;       /* signalled_used means something */
	uint8_t pad[3];
};

struct modvm_virtio_state {
	/* set by virtio_register, not saved */
	const struct modvm_host *host;
	modvm_virtio_dev *dev;
	/* saved */
	uint64_t driver_features;
	uint32_t device_feature_select;
	uint32_t driver_feature_select;
	uint32_t config_generation;
	uint16_t msix_config;
	uint16_t queue_select;
	uint8_t status;
	uint8_t isr;                   /* bit 0 queue, bit 1 config (4.1.4.5) */
	uint8_t pcicfg_bar;            /* VIRTIO_PCI_CAP_PCI_CFG window */
	uint8_t pad[5];
	uint32_t pcicfg_offset;
	uint32_t pcicfg_length;
	struct modvm_virtio_queue_state q[MODVM_VIRTIO_QUEUES_MAX];
};

static inline void modvm_virtio_pre_save_(struct modvm_virtio_state *s)
{
	if (s->dev)
		s->host->virtio_pre_save(s->dev);
}

static inline int modvm_virtio_post_load_(struct modvm_virtio_state *s)
{
	return s->dev ? s->host->virtio_post_load(s->dev) : -1;
}

#define MODVM_VIRTIO_QF_(f, ft)                                               \
	{ .name = #f, .type = (ft),                                           \
	  .offset = offsetof(struct modvm_virtio_queue_state, f) }
#define MODVM_VIRTIO_SF_(ty, m, f, ft)                                        \
	{ .name = #f, .type = (ft),                                           \
	  .offset = offsetof(ty, m) + offsetof(struct modvm_virtio_state, f) }

/*
 * Declare the transport's state section `sym` (named "virtio") for a
 * plugin whose instance type `ty` embeds a struct modvm_virtio_state as
 * member `m`. List &sym in the descriptor's state; no other code needed:
 * pre_save drains in-flight requests, post_load checks what was loaded
 * and maps the rings again (a bad stream fails the load and leaves the
 * device reset).
 */
#define MODVM_VIRTIO_STATE_SECTION(sym, ty, m)                                \
	static void sym##_pre_save(void *i)                                   \
	{                                                                     \
		modvm_virtio_pre_save_(&((ty *)i)->m);                        \
	}                                                                     \
	static int sym##_post_load(void *i)                                   \
	{                                                                     \
		return modvm_virtio_post_load_(&((ty *)i)->m);                \
	}                                                                     \
	static const struct modvm_state_field sym##_qfields[] = {             \
		MODVM_VIRTIO_QF_(desc, MODVM_FIELD_U64),                      \
		MODVM_VIRTIO_QF_(driver, MODVM_FIELD_U64),                    \
		MODVM_VIRTIO_QF_(device, MODVM_FIELD_U64),                    \
		MODVM_VIRTIO_QF_(size, MODVM_FIELD_U16),                      \
		MODVM_VIRTIO_QF_(msix_vector, MODVM_FIELD_U16),               \
		MODVM_VIRTIO_QF_(enable, MODVM_FIELD_U16),                    \
		MODVM_VIRTIO_QF_(last_avail, MODVM_FIELD_U16),                \
		MODVM_VIRTIO_QF_(used_idx, MODVM_FIELD_U16),                  \
		MODVM_VIRTIO_QF_(signalled_used, MODVM_FIELD_U16),            \
		MODVM_VIRTIO_QF_(signalled_valid, MODVM_FIELD_U8),            \
	};                                                                    \
	static const struct modvm_state_field sym##_fields[] = {              \
		MODVM_VIRTIO_SF_(ty, m, driver_features, MODVM_FIELD_U64),    \
		MODVM_VIRTIO_SF_(ty, m, device_feature_select, MODVM_FIELD_U32), \
		MODVM_VIRTIO_SF_(ty, m, driver_feature_select, MODVM_FIELD_U32), \
		MODVM_VIRTIO_SF_(ty, m, config_generation, MODVM_FIELD_U32),  \
		MODVM_VIRTIO_SF_(ty, m, msix_config, MODVM_FIELD_U16),        \
		MODVM_VIRTIO_SF_(ty, m, queue_select, MODVM_FIELD_U16),       \
		MODVM_VIRTIO_SF_(ty, m, status, MODVM_FIELD_U8),              \
		MODVM_VIRTIO_SF_(ty, m, isr, MODVM_FIELD_U8),                 \
		MODVM_VIRTIO_SF_(ty, m, pcicfg_bar, MODVM_FIELD_U8),          \
		MODVM_VIRTIO_SF_(ty, m, pcicfg_offset, MODVM_FIELD_U32),      \
		MODVM_VIRTIO_SF_(ty, m, pcicfg_length, MODVM_FIELD_U32),      \
		{ .name = "queue", .type = MODVM_FIELD_STRUCT,                \
		  .count = MODVM_VIRTIO_QUEUES_MAX,                           \
		  .offset = offsetof(ty, m) +                                 \
			    offsetof(struct modvm_virtio_state, q),           \
		  .stride = sizeof(struct modvm_virtio_queue_state),          \
		  .sub = sym##_qfields,                                       \
		  .nsub = MODVM_COUNTOF(sym##_qfields) },                     \
	};                                                                    \
	static const struct modvm_state_section sym = {                       \
		.name = "virtio", .version = 1, .min_version = 1,             \
		.fields = sym##_fields, .nfields = MODVM_COUNTOF(sym##_fields), \
		.pre_save = sym##_pre_save, .post_load = sym##_post_load,     \
	}

#ifdef __cplusplus
}
#endif

#endif
