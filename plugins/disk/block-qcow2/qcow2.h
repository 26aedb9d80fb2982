/* block-qcow2 internals shared by its files: the in-memory image (header
 * fields, L1 table, refcount table, L2 cache, free-cluster list), file
 * helpers, and the metadata calls (lookup, allocation, refcounts).
 * Format: QEMU's docs/interop/qcow2.txt; all integers on disk big-endian. */
#ifndef MODVM_QCOW2_H
#define MODVM_QCOW2_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bytes.h" /* plugins/lib: be_get, be_put */

#define QCOW_MAGIC            0x514649FBu  /* "QFI\xfb" */
#define HDR_V2_LEN            72
#define HDR_V3_LEN            104
#define HDR_READ              112          /* + compression_type */
#define MAX_CHAIN             16           /* backing files deep */
#define MAX_L1_BYTES          (32u << 20)
#define MAX_RT_BYTES          (8u << 20)
#define OFFSET_MASK           0x00FFFFFFFFFFFE00ull
#define QCOW_OFLAG_COPIED     (1ull << 63)
#define QCOW_OFLAG_COMPRESSED (1ull << 62)
#define QCOW_OFLAG_ZERO       1ull
#define EXT_END               0x00000000u
#define EXT_BACKING_FORMAT    0xE2792ACAu
#define INCOMPAT_DIRTY        (1ull << 0)
#define INCOMPAT_CORRUPT      (1ull << 1)
#define INCOMPAT_DATA_FILE    (1ull << 2)
#define INCOMPAT_COMPRESSION  (1ull << 3)
#define INCOMPAT_EXTL2        (1ull << 4)

struct l2c_ent {
	uint64_t off;             /* 0: slot unused */
	uint64_t stamp;           /* LRU clock */
	bool dirty;               /* changed since the last commit: pinned */
	bool fresh;               /* a new table, not yet named by the L1 */
	uint64_t *t;              /* cluster_size / 8 entries, host order */
};

struct qimg {
	int fd;
	bool raw;                 /* a raw backing file (or block device) */
	bool writable;
	uint32_t version;
	uint32_t cluster_bits;
	uint64_t cluster_size;
	uint64_t size;            /* virtual disk size */
	uint32_t l1_size;
	uint64_t l1_offset;
	uint64_t *l1;             /* host order */
	uint64_t rt_offset;
	uint32_t rt_clusters;
	uint64_t rt_entries;
	uint64_t *rt;             /* host order */
	uint32_t refcount_order;
	/* End of the used file, cluster aligned: new clusters go here when
	 * the free list is empty; also the bound for every table entry.
	 * Written under the allocation lock, read with atomics. */
	uint64_t alloc_end;
	uint64_t *freel;          /* clusters with refcount 0, reusable */
	size_t nfree, capfree;
	pthread_mutex_t meta;     /* L1, L2 cache */
	pthread_rwlock_t io;      /* held (read) by data I/O to looked-up clusters */
	struct l2c_ent *l2c;
	unsigned l2c_n;
	uint64_t l2c_clock;
	uint64_t l2c_hits, l2c_misses;
	unsigned l2c_dirty;
	/* waiting for meta_commit (allocation lock) */
	uint64_t *pfree;          /* old entries to release */
	size_t npfree, cappfree;
	uint64_t *newl1;          /* L1 indexes of fresh tables */
	size_t nnewl1, capnewl1;
	bool data_pending;        /* new clusters written since the last sync */
	uint64_t commits;
	struct qimg *backing;
};

/* file helpers (qcow2_open.c) */
int pread_full(int fd, void *buf, size_t len, uint64_t off);
int pwrite_full(int fd, const void *buf, size_t len, uint64_t off);
int put_be64(int fd, uint64_t off, uint64_t v);
int qsync(struct qimg *q);

/* opening and creating (qcow2_open.c) */
struct qimg *qimg_open(const char *path, bool writable, unsigned l2_cache_bytes,
		       char *err, size_t len);
void qimg_free(struct qimg *q);
struct create_opts {
	const char *backing;      /* "" for none */
	int backing_fmt;          /* 0 auto, 1 raw, 2 qcow2 */
	uint64_t size;            /* 0: the backing file's */
	uint64_t cluster_size;
};
/* 0 created, 1 already existed, -1 error (message in err). */
int qcow2_create(const char *path, const struct create_opts *o, char *err,
		 size_t len);

/* metadata (qcow2_meta.c) */
uint64_t qalloc_end(struct qimg *q);
bool host_ok(struct qimg *q, uint64_t host, uint64_t len, bool write);
int map_get(struct qimg *q, uint64_t vc, uint64_t *e);  /* takes meta */
int rc_get(struct qimg *q, uint64_t cluster, uint16_t *v);
int rc_set(struct qimg *q, uint64_t cluster, uint16_t v);
int scan_free(struct qimg *q);
int alloc_cluster(struct qimg *q, uint64_t *off);
int release_entry(struct qimg *q, uint64_t e);
void compressed_range(struct qimg *q, uint64_t e, uint64_t *off, uint64_t *len);
int l2c_init(struct qimg *q, unsigned bytes);
void l2c_free(struct qimg *q);

/* Mapping changes (under the allocation lock): made in memory at once
 * (the L2 cache pins changed tables), written out in the crash-safe order
 * by meta_commit: at a guest flush, when half the cache is dirty, or when
 * many releases wait. */
int map_set(struct qimg *q, uint64_t vc, uint64_t e, uint64_t old);
int meta_commit(struct qimg *q);

#endif
