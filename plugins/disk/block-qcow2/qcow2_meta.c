/* block-qcow2 metadata: the L2 table cache (LRU, changed tables pinned), cluster
 * lookup with bounds checks, 16-bit refcounts including new refcount blocks
 * and a grown, relocated refcount table, cluster allocation and release,
 * and the crash-safe commit of mapping changes (docs/devices/qcow2.md). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "qcow2.h"

uint64_t qalloc_end(struct qimg *q)
{
	return __atomic_load_n(&q->alloc_end, __ATOMIC_RELAXED);
}

static void set_alloc_end(struct qimg *q, uint64_t v)
{
	__atomic_store_n(&q->alloc_end, v, __ATOMIC_RELAXED);
}

/* May [host, host + len) be used as data? Inside the file, past the
 * header; writes also never land on the L1 or refcount table. */
bool host_ok(struct qimg *q, uint64_t host, uint64_t len, bool write)
{
	uint64_t rtb = (uint64_t)q->rt_clusters * q->cluster_size;

	if (host < q->cluster_size || host + len > qalloc_end(q) || host + len < host)
		return false;
	if (!write)
		return true;
	if (host < q->l1_offset + q->l1_size * 8ull && q->l1_offset < host + len)
		return false;
	return !(host < q->rt_offset + rtb && q->rt_offset < host + len);
}

static uint64_t per_block(struct qimg *q)
{
	return q->cluster_size / 2;
}

/* Refcount block i, or 0 (none yet). */
static uint64_t rblock(struct qimg *q, uint64_t i)
{
	return i < q->rt_entries ? q->rt[i] & ~(q->cluster_size - 1) : 0;
}

/* ---- L2 cache ----------------------------------------------------------- */

int l2c_init(struct qimg *q, unsigned bytes)
{
	q->l2c_n = (unsigned)(bytes / q->cluster_size);
	if (q->l2c_n < 4)
		q->l2c_n = 4;
	q->l2c = calloc(q->l2c_n, sizeof(*q->l2c));
	return q->l2c ? 0 : -1;
}

void l2c_free(struct qimg *q)
{
	for (unsigned i = 0; q->l2c && i < q->l2c_n; i++)
		free(q->l2c[i].t);
	free(q->l2c);
	q->l2c = NULL;
}

static struct l2c_ent *l2c_slot(struct qimg *q, uint64_t off)
{
	struct l2c_ent *victim = &q->l2c[0];

	for (unsigned i = 0; i < q->l2c_n; i++) {
		struct l2c_ent *c = &q->l2c[i];
		if (c->off == off) {
			c->stamp = ++q->l2c_clock;
			q->l2c_hits++;
			return c;
		}
		if (!c->dirty && (victim->dirty || c->stamp < victim->stamp))
			victim = c;
	}
	return victim;
}

/* Table at off, from the cache or read in. Under q->meta. A clean slot
 * always exists: commits keep at most half the cache dirty. */
static int l2c_load(struct qimg *q, uint64_t off, struct l2c_ent **slot)
{
	struct l2c_ent *c = *slot = l2c_slot(q, off);
	uint64_t n = q->cluster_size / 8;
	int rc;

	if (c->off == off)
		return 0;
	if (c->dirty)
		return -EIO;  /* cannot happen: see meta_commit's callers */
	/* An L2 table must be a whole cluster inside the file and not the
	 * header, L1 or refcount table (qcow2.txt "L2 tables"). */
	if ((off & (q->cluster_size - 1)) || !host_ok(q, off, q->cluster_size, true))
		return -EIO;
	for (uint64_t i = 0; q->writable && i < q->rt_entries; i++)
		if (rblock(q, i) == off)
			return -EIO;  /* a refcount block is not an L2 table */
	if (!c->t && !(c->t = malloc(q->cluster_size)))
		return -ENOMEM;
	q->l2c_misses++;
	c->off = 0;
	rc = pread_full(q->fd, c->t, q->cluster_size, off);
	if (rc)
		return rc;
	for (uint64_t i = 0; i < n; i++)
		c->t[i] = be_get((uint8_t *)&c->t[i], 8);
	c->off = off;
	c->stamp = ++q->l2c_clock;
	return 0;
}

static int l2c_get(struct qimg *q, uint64_t off, uint64_t **t)
{
	struct l2c_ent *c;
	int rc = l2c_load(q, off, &c);

	*t = rc ? NULL : c->t;
	return rc;
}

static uint64_t l2_of(struct qimg *q, uint64_t i)
{
	return q->l1[i] & OFFSET_MASK;
}

static int map_get_locked(struct qimg *q, uint64_t vc, uint64_t *e)
{
	uint64_t i = vc >> (q->cluster_bits - 3), *t;
	int rc;

	*e = 0;
	if (i >= q->l1_size)
		return -EIO;
	if (!l2_of(q, i))
		return 0;
	rc = l2c_get(q, l2_of(q, i), &t);
	if (!rc)
		*e = t[vc & (q->cluster_size / 8 - 1)];
	return rc;
}

int map_get(struct qimg *q, uint64_t vc, uint64_t *e)
{
	int rc;

	pthread_mutex_lock(&q->meta);
	rc = map_get_locked(q, vc, e);
	pthread_mutex_unlock(&q->meta);
	return rc;
}

/* ---- refcounts ------------------------------------------------------------ */


int rc_get(struct qimg *q, uint64_t cluster, uint16_t *v)
{
	uint64_t per = per_block(q), blk = rblock(q, cluster / per);
	uint8_t b[2];
	int rc;

	*v = 0;
	if (!blk)
		return 0;
	rc = pread_full(q->fd, b, 2, blk + 2 * (cluster % per));
	*v = (uint16_t)be_get(b, 2);
	return rc;
}

/* Refcount blocks missing for clusters [lo, hi) and for `extra`. */
static uint64_t count_missing(struct qimg *q, uint64_t lo, uint64_t hi,
			      uint64_t extra)
{
	uint64_t per = per_block(q), n = 0;

	for (uint64_t i = lo / per; hi > lo && i <= (hi - 1) / per; i++)
		n += !rblock(q, i) && i != extra / per;
	return n + !rblock(q, extra / per);
}

struct extend {
	uint64_t start;           /* first new cluster */
	uint64_t tcl;             /* new refcount table clusters, or 0 */
	uint64_t nb;              /* new refcount blocks */
	uint64_t entries;         /* table entries after the change */
};

/* Find how many new refcount blocks (and whether a bigger table) cover
 * `need` plus the new metadata clusters themselves: a fixed point, since
 * new blocks may need describing too (qcow2.txt "Refcount table"). */
static int extend_plan(struct qimg *q, uint64_t need, struct extend *x)
{
	uint64_t per = per_block(q), cs = q->cluster_size;

	x->start = qalloc_end(q) / cs;
	x->tcl = 0;
	x->nb = 0;
	for (int it = 0; it < 16; it++) {
		uint64_t end = x->start + x->tcl + x->nb;
		uint64_t top = (end - 1 > need ? end - 1 : need) / per + 1;
		uint64_t tcl = x->tcl, nb;
		if (top > q->rt_entries) {
			uint64_t want = q->rt_entries * 2 > top ? q->rt_entries * 2 : top;
			tcl = (want * 8 + cs - 1) / cs;
			if (tcl < x->tcl)
				tcl = x->tcl;
		}
		nb = count_missing(q, x->start, x->start + tcl + x->nb, need);
		if (tcl == x->tcl && nb == x->nb) {
			x->entries = tcl ? tcl * cs / 8 : q->rt_entries;
			return tcl * cs > MAX_RT_BYTES ? -EFBIG : 0;
		}
		x->tcl = tcl;
		x->nb = nb > x->nb ? nb : x->nb;
	}
	return -EIO;
}

/* Write the new blocks (and table), then make them live: the blocks are
 * synced before anything points at them; a new table is synced before the
 * header names it, and the old table is freed only afterwards. A crash
 * in between leaks clusters at worst. */
static int extend_refcounts(struct qimg *q, uint64_t need)
{
	uint64_t cs = q->cluster_size, per = per_block(q), *rt = NULL;
	uint64_t old_off = q->rt_offset, old_cl = q->rt_clusters, bi, k;
	struct extend x;
	uint8_t *blocks = NULL, *tbl = NULL, hdr[12];
	int rc = extend_plan(q, need, &x);

	if (rc)
		return rc;
	rt = calloc(x.entries, 8);
	blocks = calloc(x.nb ? x.nb : 1, cs);
	tbl = calloc(x.tcl ? x.tcl : 1, cs);
	if (!rt || !blocks || !tbl) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(rt, q->rt, q->rt_entries * 8);
	/* Block indexes that are missing get the new blocks, in order. */
	k = 0;
	uint64_t bstart = (x.start + x.tcl) * cs;
	for (bi = 0; bi < x.entries && k < x.nb; bi++) {
		uint64_t lo = x.start, hi = x.start + x.tcl + x.nb;
		bool used = (bi >= lo / per && bi <= (hi - 1) / per) || bi == need / per;
		if (!rt[bi] && used)
			rt[bi] = bstart + cs * k++;
	}
	/* Refcount 1 for every new cluster, in a new block or on disk. */
	for (uint64_t c = x.start; c < x.start + x.tcl + x.nb && !rc; c++) {
		uint64_t b = rt[c / per];
		if (b >= bstart && b < bstart + x.nb * cs)
			be_put(blocks + (b - bstart) + 2 * (c % per), 1, 2);
		else if (b)
			rc = pwrite_full(q->fd, (uint8_t[2]){ 0, 1 }, 2, b + 2 * (c % per));
		else
			rc = -EIO;
	}
	if (!rc && x.nb)
		rc = pwrite_full(q->fd, blocks, x.nb * cs, bstart);
	if (!rc && x.tcl) {
		for (uint64_t i = 0; i < x.entries; i++)
			be_put(tbl + 8 * i, rt[i], 8);
		rc = pwrite_full(q->fd, tbl, x.tcl * cs, x.start * cs);
	}
	if (!rc)
		rc = qsync(q);
	if (rc)
		goto out;
	set_alloc_end(q, (x.start + x.tcl + x.nb) * cs);
	if (x.tcl) {
		/* rt offset and cluster count: one 12-byte write, one sector */
		be_put(hdr, x.start * cs, 8);
		be_put(hdr + 8, x.tcl, 4);
		rc = pwrite_full(q->fd, hdr, 12, 48);
		if (!rc)
			rc = qsync(q);
		if (rc)
			goto out;
	} else {
		for (uint64_t i = 0; i < x.entries && !rc; i++)
			if (rt[i] != q->rt[i])
				rc = put_be64(q->fd, q->rt_offset + 8 * i, rt[i]);
		if (!rc)
			rc = qsync(q);
	}
	if (rc)
		goto out;
	/* readers look at the table (l2c_get, host_ok) under meta */
	pthread_mutex_lock(&q->meta);
	free(q->rt);
	q->rt = rt;
	q->rt_entries = x.entries;
	if (x.tcl) {
		q->rt_offset = x.start * cs;
		q->rt_clusters = (uint32_t)x.tcl;
	}
	pthread_mutex_unlock(&q->meta);
	rt = NULL;
	for (uint64_t c = 0; x.tcl && c < old_cl && !rc; c++)
		rc = rc_set(q, old_off / cs + c, 0);
out:
	free(rt);
	free(blocks);
	free(tbl);
	return rc;
}

static int free_push(struct qimg *q, uint64_t cluster)
{
	if (q->nfree == q->capfree) {
		size_t cap = q->capfree ? q->capfree * 2 : 64;
		uint64_t *n = cap > (1u << 24) ? NULL : realloc(q->freel, cap * 8);
		if (!n)
			return 0; /* a leak-free image can still just grow */
		q->freel = n;
		q->capfree = cap;
	}
	q->freel[q->nfree++] = cluster;
	return 0;
}

/* Under the allocation lock (writable images only). */
int rc_set(struct qimg *q, uint64_t cluster, uint16_t v)
{
	uint64_t per = per_block(q), blk;
	uint8_t b[2];
	int rc;

	if (!rblock(q, cluster / per)) {
		if (!v)
			return 0;
		if ((rc = extend_refcounts(q, cluster)))
			return rc;
	}
	blk = rblock(q, cluster / per);
	if (!blk)
		return -EIO;
	be_put(b, v, 2);
	rc = pwrite_full(q->fd, b, 2, blk + 2 * (cluster % per));
	if (!rc && !v && (cluster << q->cluster_bits) < qalloc_end(q))
		free_push(q, cluster);
	return rc;
}

/* At open: every cluster inside the file with refcount 0 is reusable. */
int scan_free(struct qimg *q)
{
	uint64_t per = per_block(q), end = qalloc_end(q) >> q->cluster_bits;
	uint8_t *b = malloc(q->cluster_size);
	int rc = b ? 0 : -ENOMEM;

	for (uint64_t i = 0; !rc && i * per < end; i++) {
		uint64_t blk = rblock(q, i);
		if (!blk)
			continue;   /* no block: nothing allocated there */
		rc = pread_full(q->fd, b, q->cluster_size, blk);
		for (uint64_t j = 0; !rc && j < per && i * per + j < end; j++)
			if (!be_get(b + 2 * j, 2) && i * per + j)
				free_push(q, i * per + j);
	}
	free(b);
	return rc;
}

/* A cluster for new data: a freed one, else the end of the file; its
 * refcount is 1 on return (not yet synced). */
int alloc_cluster(struct qimg *q, uint64_t *off)
{
	uint64_t c;
	int rc;

	while (q->nfree) {
		uint16_t v;
		c = q->freel[--q->nfree];
		if (c << q->cluster_bits >= qalloc_end(q) || rc_get(q, c, &v) || v)
			continue;  /* stale entry */
		*off = c << q->cluster_bits;
		q->data_pending = true;
		return rc_set(q, c, 1);
	}
	for (;;) {
		c = qalloc_end(q) >> q->cluster_bits;
		if (rblock(q, c / per_block(q)))
			break;
		if ((rc = extend_refcounts(q, c)))
			return rc;
	}
	set_alloc_end(q, (c + 1) << q->cluster_bits);
	*off = c << q->cluster_bits;
	q->data_pending = true;
	return rc_set(q, c, 1);
}

/* Compressed cluster descriptor (qcow2.txt "Compressed Clusters
 * Descriptor"): x = 62 - (cluster_bits - 8) bits of host offset, then the
 * number of additional 512-byte sectors. */
void compressed_range(struct qimg *q, uint64_t e, uint64_t *off, uint64_t *len)
{
	unsigned x = 62 - (q->cluster_bits - 8);
	uint64_t sectors = ((e >> x) & ((1ull << (q->cluster_bits - 8)) - 1)) + 1;

	*off = e & ((1ull << x) - 1);
	*len = sectors * 512 - (*off & 511);
}

static int rc_dec(struct qimg *q, uint64_t cluster)
{
	uint16_t v;
	int rc = rc_get(q, cluster, &v);

	if (rc || !v)
		return rc;  /* already 0: a corrupt image; do not wrap */
	return rc_set(q, cluster, (uint16_t)(v - 1));
}

/* Drop the references an L2 entry held. Its replacement must be on
 * stable storage first (meta_commit). */
int release_entry(struct qimg *q, uint64_t e)
{
	uint64_t off, len, host = e & OFFSET_MASK;
	int rc = 0;

	if (e & QCOW_OFLAG_COMPRESSED) {
		compressed_range(q, e, &off, &len);
		if (!host_ok(q, off, len, false))
			return 0;
		for (uint64_t c = off >> q->cluster_bits;
		     !rc && c <= (off + len - 1) >> q->cluster_bits; c++)
			rc = rc_dec(q, c);
		return rc;
	}
	if (!host || !host_ok(q, host, q->cluster_size, true))
		return 0;
	return rc_dec(q, host >> q->cluster_bits);
}

/* ---- pending mapping changes and the ordered commit ------------------------ */

static int push64(uint64_t **a, size_t *n, size_t *cap, uint64_t v)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 64;
		uint64_t *p = realloc(*a, c * 8);
		if (!p)
			return -ENOMEM;
		*a = p;
		*cap = c;
	}
	(*a)[(*n)++] = v;
	return 0;
}

static void mark_dirty(struct qimg *q, struct l2c_ent *c)
{
	if (!c->dirty)
		q->l2c_dirty++;
	c->dirty = true;
}

/* A zeroed L2 table for L1 index l1i, in the cache and (in memory only)
 * in the L1 table; on disk it appears at the next commit. */
static int new_table(struct qimg *q, uint64_t l1i)
{
	struct l2c_ent *c;
	uint64_t off;
	int rc = alloc_cluster(q, &off);

	if (!rc)
		rc = push64(&q->newl1, &q->nnewl1, &q->capnewl1, l1i);
	if (rc)
		return rc;     /* the cluster leaks; nothing names it */
	pthread_mutex_lock(&q->meta);
	c = l2c_slot(q, off);
	if (!c->t && !(c->t = malloc(q->cluster_size))) {
		pthread_mutex_unlock(&q->meta);
		q->nnewl1--;
		return -ENOMEM;
	}
	memset(c->t, 0, q->cluster_size);
	c->off = off;
	c->stamp = ++q->l2c_clock;
	c->fresh = true;
	mark_dirty(q, c);
	q->l1[l1i] = off | QCOW_OFLAG_COPIED;
	pthread_mutex_unlock(&q->meta);
	return 0;
}

/* vc's entry becomes e (it was old). Readers see it at once; the old
 * clusters are released at the next commit. */
int map_set(struct qimg *q, uint64_t vc, uint64_t e, uint64_t old)
{
	uint64_t l1i = vc >> (q->cluster_bits - 3);
	struct l2c_ent *c;
	int rc = 0;

	if (l1i >= q->l1_size)
		return -EIO;
	if (q->l2c_dirty * 2 + 2 > q->l2c_n || q->npfree >= 4096)
		rc = meta_commit(q);
	if (!rc && !l2_of(q, l1i))
		rc = new_table(q, l1i);
	if (rc)
		return rc;
	pthread_mutex_lock(&q->meta);
	rc = l2c_load(q, l2_of(q, l1i), &c);
	if (!rc) {
		c->t[vc & (q->cluster_size / 8 - 1)] = e;
		mark_dirty(q, c);
	}
	pthread_mutex_unlock(&q->meta);
	if (!rc && (old & (OFFSET_MASK | QCOW_OFLAG_COMPRESSED)))
		rc = push64(&q->pfree, &q->npfree, &q->cappfree, old);
	return rc;
}

static int write_table(struct qimg *q, struct l2c_ent *c)
{
	uint64_t n = q->cluster_size / 8;
	uint8_t *buf = malloc(q->cluster_size);
	int rc;

	if (!buf)
		return -ENOMEM;
	for (uint64_t i = 0; i < n; i++)
		be_put(buf + 8 * i, c->t[i], 8);
	rc = pwrite_full(q->fd, buf, q->cluster_size, c->off);
	free(buf);
	return rc;
}

/* Write the dirty tables that are (fresh) or are not yet named. Under meta. */
static int write_dirty(struct qimg *q, bool fresh)
{
	int rc = 0;

	for (unsigned i = 0; i < q->l2c_n && !rc; i++) {
		struct l2c_ent *c = &q->l2c[i];
		if (c->dirty && c->fresh == fresh)
			rc = write_table(q, c);
	}
	return rc;
}

static int write_l1_and_clean(struct qimg *q)
{
	int rc = 0;

	for (size_t i = 0; i < q->nnewl1 && !rc; i++)
		rc = put_be64(q->fd, q->l1_offset + 8 * q->newl1[i], q->l1[q->newl1[i]]);
	if (rc)
		return rc;
	q->nnewl1 = 0;
	for (unsigned i = 0; i < q->l2c_n; i++)
		q->l2c[i].dirty = q->l2c[i].fresh = false;
	q->l2c_dirty = 0;
	return 0;
}

/* The crash-safe order (docs/devices/qcow2.md "Crash safety"):
 *  1. fresh L2 tables are written; new clusters' refcounts and data were
 *     written when allocated; nothing on disk names any of them yet;
 *  2. sync;
 *  3. changed L2 tables, then L1 entries of fresh tables: they only name
 *     clusters whose refcounts and contents are on stable storage;
 *  4. if clusters are released: sync, then lower their refcounts, so a
 *     refcount never drops while a durable entry still names it.
 * Under the allocation lock. A failure leaves the changes pending. */
int meta_commit(struct qimg *q)
{
	int rc;

	if (!q->l2c_dirty && !q->npfree && !q->data_pending)
		return 0;
	q->commits++;
	pthread_mutex_lock(&q->meta);
	rc = write_dirty(q, true);
	pthread_mutex_unlock(&q->meta);
	if (!rc)
		rc = qsync(q);
	if (rc)
		return rc;
	q->data_pending = false;
	pthread_mutex_lock(&q->meta);
	rc = write_dirty(q, false);
	if (!rc)
		rc = write_l1_and_clean(q);
	pthread_mutex_unlock(&q->meta);
	if (rc || !q->npfree)
		return rc;
	if ((rc = qsync(q)))
		return rc;
	/* wait out reads and in-place writes that may still use a cluster
	 * about to be freed (they looked it up before the change) */
	pthread_rwlock_wrlock(&q->io);
	pthread_rwlock_unlock(&q->io);
	while (q->npfree && !rc) {
		rc = release_entry(q, q->pfree[q->npfree - 1]);
		if (!rc)
			q->npfree--;
	}
	return rc;
}
