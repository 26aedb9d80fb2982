/* The split virtqueue parser on its own (core/virtio.c), over a plain
 * buffer as guest RAM: mapping checks, chains with and without indirect
 * tables, direction rules, index wrap-around, the used ring and the event
 * index arithmetic (2.6.7, 2.6.10). */
#include <stdlib.h>
#include <string.h>

#include "testmain.h"
#include "virtio.h"

#define RAM   0x20000u
#define DESC  0x0000u
#define AVAIL 0x1000u
#define USED  0x2000u
#define IND   0x3000u
#define MAXSEG 32

static uint8_t ram[RAM];
static uint64_t dirtied;

static void *ram_ptr(void *opaque, uint64_t gpa, uint64_t len)
{
	if (gpa >= RAM || len > RAM - gpa)
		return NULL;
	return ram + gpa;
}

static void ram_dirty(void *opaque, uint64_t gpa, uint64_t len)
{
	dirtied += len;
}

static const struct vq_mem mem = { ram_ptr, ram_dirty, NULL };

struct fixture {
	struct modvm_virtio_queue_state st;
	struct vq q;
	struct iovec iov[MAXSEG];
	uint64_t gpa[MAXSEG];
	struct modvm_virtio_elem e;
};

static void put_desc(uint64_t table, unsigned i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	uint8_t *p = ram + table + 16 * i;

	memcpy(p, &addr, 8);
	memcpy(p + 8, &len, 4);
	memcpy(p + 12, &flags, 2);
	memcpy(p + 14, &next, 2);
}

static void put16(uint64_t gpa, uint16_t v)
{
	memcpy(ram + gpa, &v, 2);
}

static uint16_t get16(uint64_t gpa)
{
	uint16_t v;

	memcpy(&v, ram + gpa, 2);
	return v;
}

static void fx_init(struct fixture *f, uint16_t size)
{
	memset(ram, 0, sizeof(ram));
	memset(f, 0, sizeof(*f));
	f->st = (struct modvm_virtio_queue_state){ .size = size, .desc = DESC,
						   .driver = AVAIL, .device = USED };
	f->q.st = &f->st;
	f->q.indirect = f->q.event_idx = true;
	f->e = (struct modvm_virtio_elem){ .max = MAXSEG, .iov = f->iov, .gpa = f->gpa };
	CU_ASSERT_EQUAL_FATAL(vq_map(&f->q, &mem, 256), 0);
}

static void avail_add(struct fixture *f, uint16_t head)
{
	uint16_t idx = get16(AVAIL + 2);

	put16(AVAIL + 4 + 2 * (idx % f->st.size), head);
	put16(AVAIL + 2, (uint16_t)(idx + 1));
}

static void test_map_checks(void)
{
	struct fixture f;

	fx_init(&f, 8);
	f.st.size = 12;
	CU_ASSERT_EQUAL(vq_map(&f.q, &mem, 256), -1);
	f.st.size = 512;
	CU_ASSERT_EQUAL(vq_map(&f.q, &mem, 256), -1);
	f.st.size = 8;
	f.st.desc = 8;
	CU_ASSERT_EQUAL(vq_map(&f.q, &mem, 256), -1);
	f.st.desc = 0;
	f.st.device = RAM - 8;
	CU_ASSERT_EQUAL(vq_map(&f.q, &mem, 256), -1);
	CU_ASSERT_PTR_NULL(f.q.desc);
	f.st.device = USED + 2;
	CU_ASSERT_EQUAL(vq_map(&f.q, &mem, 256), -1);
	f.st.device = USED;
	CU_ASSERT_EQUAL(vq_map(&f.q, &mem, 256), 0);
	/* popping an unmapped queue is an error, not a crash */
	vq_unmap(&f.q);
	CU_ASSERT_EQUAL(vq_pop(&f.q, &mem, &f.e), -1);
}

static void test_chain(void)
{
	struct fixture f;

	fx_init(&f, 8);
	CU_ASSERT_EQUAL(vq_pop(&f.q, &mem, &f.e), 0);
	put_desc(DESC, 3, 0x8000, 16, VIRTQ_DESC_F_NEXT, 5);
	put_desc(DESC, 5, 0x9000, 100, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 6);
	put_desc(DESC, 6, 0xA000, 1, VIRTQ_DESC_F_WRITE, 0);
	avail_add(&f, 3);
	CU_ASSERT_EQUAL(vq_pop(&f.q, &mem, &f.e), 1);
	CU_ASSERT_EQUAL(f.e.head, 3);
	CU_ASSERT_EQUAL(f.e.nread, 1);
	CU_ASSERT_EQUAL(f.e.nwrite, 2);
	CU_ASSERT_EQUAL(f.e.read_len, 16);
	CU_ASSERT_EQUAL(f.e.write_len, 101);
	CU_ASSERT_PTR_EQUAL(f.iov[1].iov_base, ram + 0x9000);
	CU_ASSERT_EQUAL(f.gpa[2], 0xA000);
	/* avail_event tells the driver the next index we want */
	CU_ASSERT_EQUAL(get16(USED + 4 + 8 * 8), 1);
	CU_ASSERT_EQUAL(vq_pop(&f.q, &mem, &f.e), 0);
	dirtied = 0;
	vq_push(&f.q, &mem, 3, 101);
	CU_ASSERT_EQUAL(get16(USED + 2), 1);
	CU_ASSERT_EQUAL(get16(USED + 4), 3);
	CU_ASSERT_EQUAL(get16(USED + 8), 101);
	CU_ASSERT_EQUAL(dirtied, 10);
}

static void test_indirect(void)
{
	struct fixture f;

	fx_init(&f, 8);
	put_desc(IND, 0, 0x8000, 16, VIRTQ_DESC_F_NEXT, 2);
	put_desc(IND, 2, 0x9000, 4096, VIRTQ_DESC_F_WRITE, 0);
	put_desc(DESC, 0, IND, 48, VIRTQ_DESC_F_INDIRECT, 0);
	avail_add(&f, 0);
	CU_ASSERT_EQUAL(vq_pop(&f.q, &mem, &f.e), 1);
	CU_ASSERT_EQUAL(f.e.nread + f.e.nwrite, 2);
	CU_ASSERT_EQUAL(f.e.write_len, 4096);
	/* not negotiated: refused */
	f.q.indirect = false;
	avail_add(&f, 0);
	CU_ASSERT_EQUAL(vq_pop(&f.q, &mem, &f.e), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(f.q.error, "INDIRECT_DESC"));
	/* nothing was consumed by the failed pop */
	CU_ASSERT_EQUAL(f.st.last_avail, 1);
}

static void test_limits(void)
{
	struct fixture f;

	/* a chain as long as the queue is fine, one longer is not */
	fx_init(&f, 4);
	for (unsigned i = 0; i < 4; i++)
		put_desc(DESC, i, 0x8000, 8, i < 3 ? VIRTQ_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	avail_add(&f, 0);
	CU_ASSERT_EQUAL(vq_pop(&f.q, &mem, &f.e), 1);
	put_desc(DESC, 3, 0x8000, 8, VIRTQ_DESC_F_NEXT, 0);
	avail_add(&f, 0);
	CU_ASSERT_EQUAL(vq_pop(&f.q, &mem, &f.e), -1);
	/* the caller's capacity is a limit too */
	fx_init(&f, 8);
	f.e.max = 2;
	for (unsigned i = 0; i < 3; i++)
		put_desc(DESC, i, 0x8000, 8, i < 2 ? VIRTQ_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	avail_add(&f, 0);
	CU_ASSERT_EQUAL(vq_pop(&f.q, &mem, &f.e), -1);
	/* readable after writable */
	fx_init(&f, 8);
	put_desc(DESC, 0, 0x8000, 8, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
	put_desc(DESC, 1, 0x8000, 8, 0, 0);
	avail_add(&f, 0);
	CU_ASSERT_EQUAL(vq_pop(&f.q, &mem, &f.e), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(f.q.error, "readable"));
}

static void test_index_wrap(void)
{
	struct fixture f;

	fx_init(&f, 4);
	f.st.last_avail = f.st.used_idx = 0xFFFE;
	put16(AVAIL + 2, 0xFFFE);
	put_desc(DESC, 1, 0x8000, 8, 0, 0);
	for (int i = 0; i < 4; i++) {
		avail_add(&f, 1);
		CU_ASSERT_EQUAL(vq_pop(&f.q, &mem, &f.e), 1);
		vq_push(&f.q, &mem, 1, 0);
	}
	CU_ASSERT_EQUAL(f.st.last_avail, 2);
	CU_ASSERT_EQUAL(get16(USED + 2), 2);
	/* the driver claiming 5 new entries in a queue of 4 */
	put16(AVAIL + 2, 7);
	CU_ASSERT_EQUAL(vq_pop(&f.q, &mem, &f.e), -1);
}

static void test_event_idx_math(void)
{
	struct fixture f;

	fx_init(&f, 8);
	CU_ASSERT_FALSE(vq_need_interrupt(&f.q)); /* nothing pushed */
	vq_push(&f.q, &mem, 0, 0);
	CU_ASSERT_TRUE(vq_need_interrupt(&f.q));  /* first one */
	put16(AVAIL + 4 + 2 * 8, 3);               /* used_event = 3 */
	vq_push(&f.q, &mem, 0, 0);                 /* used 2 */
	CU_ASSERT_FALSE(vq_need_interrupt(&f.q));
	vq_push(&f.q, &mem, 0, 0);                 /* used 3 */
	CU_ASSERT_FALSE(vq_need_interrupt(&f.q));
	vq_push(&f.q, &mem, 0, 0);                 /* used 4: passed 3 */
	CU_ASSERT_TRUE(vq_need_interrupt(&f.q));
	/* without event index, the NO_INTERRUPT flag */
	f.q.event_idx = false;
	put16(AVAIL, VIRTQ_AVAIL_F_NO_INTERRUPT);
	vq_push(&f.q, &mem, 0, 0);
	CU_ASSERT_FALSE(vq_need_interrupt(&f.q));
	put16(AVAIL, 0);
	vq_push(&f.q, &mem, 0, 0);
	CU_ASSERT_TRUE(vq_need_interrupt(&f.q));
}

int main(void)
{
	static const struct test_case tests[] = {
		TEST(test_map_checks),
		TEST(test_chain),
		TEST(test_indirect),
		TEST(test_limits),
		TEST(test_index_wrap),
		TEST(test_event_idx_math),
	};

	return RUN_TESTS("virtq", tests);
}
