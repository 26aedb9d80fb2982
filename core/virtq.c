/* Split virtqueues (virtio 1.1, 2.6) with indirect descriptors and event
 * index, parsed defensively: the guest owns every byte of the rings, so
 * every index, length and address is checked before it is used. */
#include <stdlib.h>
#include <string.h>

#include "virtq.h"

#define DESC_SIZE 16

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

static uint16_t ld16_acquire(const uint8_t *p)
{
	return __atomic_load_n((const uint16_t *)(const void *)p, __ATOMIC_ACQUIRE);
}

static void st16_release(uint8_t *p, uint16_t v)
{
	__atomic_store_n((uint16_t *)(void *)p, v, __ATOMIC_RELEASE);
}

/* One copy of the descriptor: everything after validates the copy, so the
 * guest changing the table meanwhile cannot slip past a check. */
static void desc_read(const uint8_t *table, unsigned i, struct desc *d)
{
	const uint8_t *p = table + (size_t)i * DESC_SIZE;

	memcpy(&d->addr, p, 8);
	memcpy(&d->len, p + 8, 4);
	memcpy(&d->flags, p + 12, 2);
	memcpy(&d->next, p + 14, 2);
}

static size_t avail_bytes(uint16_t size)
{
	return 6 + 2 * (size_t)size;
}

static size_t used_bytes(uint16_t size)
{
	return 6 + 8 * (size_t)size;
}

/* 2.6: descriptor table 16-byte, available ring 2-byte and used ring
 * 4-byte aligned; sizes are powers of two for split queues (2.6.1). */
int vq_map(struct vq *q, const struct vq_mem *mem, uint16_t max)
{
	const struct modvm_virtio_queue_state *st = q->st;
	uint16_t n = st->size;

	vq_unmap(q);
	if (!n || n > max || (n & (n - 1))) {
		q->error = "queue size is not a power of two within the maximum";
		return -1;
	}
	if ((st->desc & 15) || (st->driver & 1) || (st->device & 3)) {
		q->error = "ring address is misaligned";
		return -1;
	}
	q->desc = mem->ptr(mem->opaque, st->desc, (uint64_t)n * DESC_SIZE);
	q->avail = mem->ptr(mem->opaque, st->driver, avail_bytes(n));
	q->used = mem->ptr(mem->opaque, st->device, used_bytes(n));
	if (!q->desc || !q->avail || !q->used) {
		vq_unmap(q);
		q->error = "ring is not in guest RAM";
		return -1;
	}
	return 0;
}

void vq_unmap(struct vq *q)
{
	q->desc = q->avail = q->used = NULL;
	q->pushed = false;
}

static int vq_bad(struct vq *q, const char *why)
{
	q->error = why;
	return -1;
}

/* Append one data descriptor to e. Device-writable descriptors come after
 * all readable ones (2.6.4.2). */
static int elem_add(struct vq *q, const struct vq_mem *mem,
		    struct modvm_virtio_elem *e, const struct desc *d)
{
	unsigned n = e->nread + e->nwrite;
	void *p;

	if (!d->len)
		return vq_bad(q, "descriptor of length zero");
	p = mem->ptr(mem->opaque, d->addr, d->len);
	if (!p)
		return vq_bad(q, "descriptor buffer is not in guest RAM");
	if (!(d->flags & VIRTQ_DESC_F_WRITE) && e->nwrite)
		return vq_bad(q, "readable descriptor after a writable one");
	if (n >= e->max)
		return vq_bad(q, "descriptor chain longer than the device accepts");
	e->iov[n].iov_base = p;
	e->iov[n].iov_len = d->len;
	e->gpa[n] = d->addr;
	if (d->flags & VIRTQ_DESC_F_WRITE) {
		e->nwrite++;
		e->write_len += d->len;
	} else {
		e->nread++;
		e->read_len += d->len;
	}
	return 0;
}

/* 2.6.5.3: an indirect descriptor names a table of len/16 descriptors that
 * replaces the rest of the chain; it may not be chained itself nor
 * appear inside an indirect table. */
static int chain_indirect(struct vq *q, const struct vq_mem *mem,
			  const struct desc *d, const uint8_t **table,
			  unsigned *tsize)
{
	if (!q->indirect)
		return vq_bad(q, "indirect descriptor without MODVM_VIRTIO_F_RING_INDIRECT_DESC");
	if (d->flags & VIRTQ_DESC_F_NEXT)
		return vq_bad(q, "indirect descriptor with NEXT set");
	if (!d->len || d->len % DESC_SIZE)
		return vq_bad(q, "indirect table length is not a multiple of 16");
	if (d->len / DESC_SIZE > q->st->size)
		return vq_bad(q, "indirect table longer than the queue size");
	*table = mem->ptr(mem->opaque, d->addr, d->len);
	if (!*table)
		return vq_bad(q, "indirect table is not in guest RAM");
	*tsize = d->len / DESC_SIZE;
	return 0;
}

/* Walk the chain at head. A chain may not be longer than the queue size
 * (2.6.5.3.1), which also ends any loop; every NEXT index is checked
 * against the table it indexes. */
static int chain_walk(struct vq *q, const struct vq_mem *mem, uint16_t head,
		      struct modvm_virtio_elem *e)
{
	const uint8_t *table = q->desc;
	unsigned tsize = q->st->size, i = head, steps = 0;
	bool indirect = false;
	struct desc d;

	for (;;) {
		if (++steps > q->st->size)
			return vq_bad(q, "descriptor chain loops or is longer than the queue");
		desc_read(table, i, &d);
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			if (indirect)
				return vq_bad(q, "indirect descriptor inside an indirect table");
			if (chain_indirect(q, mem, &d, &table, &tsize))
				return -1;
			indirect = true;
			i = 0;
			steps = 0;
			continue;
		}
		if (elem_add(q, mem, e, &d))
			return -1;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		if (d.next >= tsize)
			return vq_bad(q, "NEXT index beyond the descriptor table");
		i = d.next;
	}
}

/* 2.6.7.2 / 2.6.10: with event index the device says in avail_event
 * (after the used ring) which avail index it wants to be told about. */
static void set_avail_event(struct vq *q, uint16_t idx)
{
	if (q->event_idx)
		st16_release(q->used + used_bytes(q->st->size) - 2, idx);
}

/* The device gave chains back because they were not enough: with event
 * index it wants to hear of the next chain the driver adds, so
 * avail_event is the driver's index, not last_avail (which the driver
 * has passed already: it would never notify). */
void vq_unpop(struct vq *q, uint16_t n)
{
	q->st->last_avail = (uint16_t)(q->st->last_avail - n);
	set_avail_event(q, ld16_acquire(q->avail + 2));
}

int vq_pop(struct vq *q, const struct vq_mem *mem, struct modvm_virtio_elem *e)
{
	struct modvm_virtio_queue_state *st = q->st;
	uint16_t avail_idx, head;

	if (!q->desc)
		return vq_bad(q, "queue is not mapped");
	avail_idx = ld16_acquire(q->avail + 2);
	if ((uint16_t)(avail_idx - st->last_avail) > st->size)
		return vq_bad(q, "available index moved by more than the queue size");
	if (avail_idx == st->last_avail) {
		set_avail_event(q, st->last_avail);
		/* The driver may have added one before it saw avail_event. */
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (ld16_acquire(q->avail + 2) == st->last_avail)
			return 0;
		return vq_pop(q, mem, e);
	}
	head = ld16(q->avail + 4 + 2 * (st->last_avail % st->size));
	if (head >= st->size)
		return vq_bad(q, "available ring names a descriptor beyond the table");
	e->queue = 0;
	e->head = head;
	e->nread = e->nwrite = 0;
	e->read_len = e->write_len = 0;
	if (chain_walk(q, mem, head, e))
		return -1;
	st->last_avail++;
	set_avail_event(q, st->last_avail);
	return 1;
}

void vq_push(struct vq *q, const struct vq_mem *mem, uint16_t head,
	     uint32_t len)
{
	struct modvm_virtio_queue_state *st = q->st;
	size_t slot = 4 + 8 * (size_t)(st->used_idx % st->size);
	uint32_t id = head;

	if (!q->used)
		return;
	memcpy(q->used + slot, &id, 4);
	memcpy(q->used + slot + 4, &len, 4);
	st->used_idx++;
	/* 2.6.8.2: the entry must be visible before the index. */
	st16_release(q->used + 2, st->used_idx);
	q->pushed = true;
	if (mem->dirty) {
		mem->dirty(mem->opaque, st->device + slot, 8);
		mem->dirty(mem->opaque, st->device + 2, 2);
	}
}

bool vq_need_interrupt(struct vq *q)
{
	struct modvm_virtio_queue_state *st = q->st;
	uint16_t old = st->signalled_used, now = st->used_idx, event;
	bool valid = st->signalled_valid;

	if (!q->avail || !q->pushed)
		return false;
	q->pushed = false;
	/* Our used index store must be ordered before reading the flag. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!q->event_idx)
		return !(ld16_acquire(q->avail) & VIRTQ_AVAIL_F_NO_INTERRUPT);
	st->signalled_used = now;
	st->signalled_valid = 1;
	if (!valid)
		return true;
	event = ld16_acquire(q->avail + avail_bytes(st->size) - 2);
	/* vring_need_event: did used_idx pass used_event since last time? */
	return (uint16_t)(now - event - 1) < (uint16_t)(now - old);
}

