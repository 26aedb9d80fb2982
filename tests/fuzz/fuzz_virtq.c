/* Fuzz target: the split virtqueue parser (core/virtio.c) against guest
 * memory the fuzzer writes: descriptor table, rings and indirect tables.
 * Input: 4 bytes of parameters (queue size, features, avail index start),
 * then the contents of a 64 KiB guest RAM. Every element popped must lie
 * inside that RAM; a malformed ring must be reported, never crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "virtio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Not assert(): the check must hold in release builds too. */
#define CHECK(c) do { if (!(c)) abort(); } while (0)

#define RAM      0x10000u
#define DESC     0x0000u
#define AVAIL    0x4000u
#define USED     0x5000u
#define MAXSEG   64

static uint8_t ram[RAM];

static void *ram_ptr(void *opaque, uint64_t gpa, uint64_t len)
{
	if (gpa >= RAM || len > RAM - gpa)
		return NULL;
	return ram + gpa;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct modvm_virtio_queue_state st = { 0 };
	struct vq q = { .st = &st };
	struct vq_mem mem = { ram_ptr, NULL, NULL };
	struct iovec iov[MAXSEG];
	uint64_t gpa[MAXSEG];
	struct modvm_virtio_elem e = { .max = MAXSEG, .iov = iov, .gpa = gpa };

	if (size < 4)
		return 0;
	memset(ram, 0, sizeof(ram));
	memcpy(ram, data + 4, size - 4 < RAM ? size - 4 : RAM);
	st.size = (uint16_t)(1u << (data[0] % 11)); /* 1..1024 */
	st.desc = DESC;
	st.driver = AVAIL;
	st.device = USED;
	st.last_avail = (uint16_t)(data[2] | data[3] << 8);
	st.used_idx = st.last_avail;
	q.indirect = data[1] & 1;
	q.event_idx = data[1] & 2;
	if (vq_map(&q, &mem, 1024))
		return 0;
	for (int n = 0; n < 2 * 1024; n++) {
		int rc = vq_pop(&q, &mem, &e);
		if (rc <= 0) {
			CHECK(rc == 0 || q.error);
			break;
		}
		CHECK(e.head < st.size);
		CHECK(e.nread + e.nwrite <= MAXSEG);
		for (unsigned i = 0; i < (unsigned)e.nread + e.nwrite; i++) {
			uint8_t *p = iov[i].iov_base;
			CHECK(p >= ram && iov[i].iov_len && iov[i].iov_len <= RAM &&
			       (size_t)(p - ram) <= RAM - iov[i].iov_len);
		}
		vq_push(&q, &mem, e.head, (uint32_t)e.write_len);
		(void)vq_need_interrupt(&q);
	}
	return 0;
}
