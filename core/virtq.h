/* Split virtqueues (virtio 1.1, 2.6) in the core: every guest descriptor
 * is validated here (core/virtq.c), for the PCI transport (core/virtio.c),
 * tests and the fuzz target. */
#ifndef MODVM_CORE_VIRTQ_H
#define MODVM_CORE_VIRTQ_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <modvm/virtio.h>

/* Ring fields are little-endian (2.4); modvm runs on x86-64 hosts. */
static inline uint16_t ld16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return v;
}

static inline void st16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

/* Split virtqueue descriptor flags (2.6.5) and ring flags (2.6.6, 2.6.8). */
#define VIRTQ_DESC_F_NEXT          1
#define VIRTQ_DESC_F_WRITE         2
#define VIRTQ_DESC_F_INDIRECT      4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY     1

/* Guest-physical to host translation: NULL unless all of [gpa, gpa+len)
 * is contiguous guest RAM. */
struct vq_mem {
	void *(*ptr)(void *opaque, uint64_t gpa, uint64_t len);
	void (*dirty)(void *opaque, uint64_t gpa, uint64_t len); /* may be NULL */
	void *opaque;
};

/* One split virtqueue. st holds what is saved; the ring pointers are
 * derived from it by vq_map. */
struct vq {
	struct modvm_virtio_queue_state *st;
	bool indirect;          /* MODVM_VIRTIO_F_RING_INDIRECT_DESC negotiated */
	bool event_idx;         /* MODVM_VIRTIO_F_RING_EVENT_IDX negotiated */
	uint8_t *desc, *avail, *used;
	bool pushed;            /* used entries added since the last check */
	const char *error;      /* why the last pop failed */
};

/* Map the rings st describes: -1 (error set) if the size is not a power
 * of two up to max, an address is misaligned or a ring is not in RAM. */
int vq_map(struct vq *q, const struct vq_mem *mem, uint16_t max);
void vq_unmap(struct vq *q);
/* 1: a chain was taken into e; 0: nothing available; -1: the guest gave a
 * malformed chain or ring (q->error says what), nothing is consumed. */
int vq_pop(struct vq *q, const struct vq_mem *mem, struct modvm_virtio_elem *e);
/* Take back the last n chains popped (not pushed): they are available
 * again. */
void vq_unpop(struct vq *q, uint16_t n);
/* Put head with len written bytes in the used ring. */
void vq_push(struct vq *q, const struct vq_mem *mem, uint16_t head,
	     uint32_t len);
/* After pushes: whether the driver wants an interrupt now (2.6.7, 2.6.10).
 * Records the used index as signalled. */
bool vq_need_interrupt(struct vq *q);

#endif
