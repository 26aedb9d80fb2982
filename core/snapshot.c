/* Snapshots: write a paused machine to a directory atomically, and read one
 * back with every file checked before anything is built from it. */
#include "snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "cpustate.h"
#include "state_desc.h"

#define PAGE 4096u
/* The largest time value a snapshot may hold, in ns. */
#define SNAPSHOT_TIME_MAX (1ll << 62)
/* A manifest lists a few hundred entries; anything larger is not ours. */
#define MANIFEST_MAX (16u << 20)

/* ---- writing ------------------------------------------------------------ */

struct writer {
	char *tmp;       /* the temporary directory being filled */
	json_t *files;   /* name -> { size, crc32 } */
	char *err;
	size_t len;
};

static int write_all(int fd, const void *buf, size_t n, off_t off)
{
	const uint8_t *p = buf;

	while (n) {
		ssize_t w = pwrite(fd, p, n, off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}

/* The checksum of a small file in the manifest (format 3): CRC-32C of its
 * name, a NUL and its content. Not zlib's CRC-32: a state section ends
 * with its own CRC-32, so the CRC-32 of such a file is the same constant
 * for every file (the CRC residue) and a file put in another's place
 * would match; the name binds the file to its place (device-ID.state). */
static uint32_t named_crc32c(const char *name, const void *buf, size_t n)
{
	return crc32c(crc32c(0, name, strlen(name) + 1), buf, n);
}

static void record_named(struct writer *w, const char *name, uint64_t size,
			 uint32_t crc)
{
	char hex[16];

	snprintf(hex, sizeof(hex), "%08x", crc);
	json_object_set_new(w->files, name, json_pack("{s:I,s:s}", "size",
						       (json_int_t)size, "crc32c", hex));
}

static void record(struct writer *w, const char *name, uint64_t size,
		   uint32_t crc)
{
	char hex[16];

	snprintf(hex, sizeof(hex), "%08x", crc);
	json_object_set_new(w->files, name, json_pack("{s:I,s:s}", "size",
						       (json_int_t)size, "crc32", hex));
}

/* Write a small file, fsync it, record its checksum. */
static int put_file(struct writer *w, const char *name, const void *buf,
		    size_t n)
{
	char *path = xasprintf("%s/%s", w->tmp, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	int r = -1;

	if (fd < 0 || write_all(fd, buf, n, 0) || fsync(fd)) {
		set_err(w->err, w->len, "cannot write %s: %s", path, strerror(errno));
		goto out;
	}
	record_named(w, name, n, named_crc32c(name, buf, n));
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	free(path);
	return r;
}

static bool page_is_zero(const uint8_t *p)
{
	const uint64_t *q = (const uint64_t *)p;

	for (unsigned i = 0; i < PAGE / 8; i++)
		if (q[i])
			return false;
	return true;
}

/* Mark the pages of [0, size) in fd's data extents (SEEK_DATA/SEEK_HOLE):
 * the rest are holes, zero without being read. -1 if fd cannot tell. */
static int mark_data_extents(int fd, uint64_t size, uint8_t *used)
{
	off_t off = 0, end = (off_t)size;

	while (off < end) {
		off_t data = lseek(fd, off, SEEK_DATA), hole;
		if (data < 0)
			return errno == ENXIO ? 0 : -1; /* ENXIO: only a hole is left */
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			return -1;
		if (hole > end)
			hole = end;
		for (off_t p = data / PAGE; p < (hole + PAGE - 1) / PAGE; p++)
			used[p] = 1;
		off = hole;
	}
	return 0;
}

/* Mark the pages of a private mapping that the process has its own copy
 * of (present anonymous or swapped, /proc/self/pagemap): what a resumed
 * guest wrote over the image. -1 if pagemap cannot be read. */
static int mark_private_pages(const uint8_t *host, uint64_t size, uint8_t *used)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	uint64_t first = (uint64_t)(uintptr_t)host / PAGE, n = size / PAGE, buf[512];
	int r = 0;

	if (fd < 0)
		return -1;
	for (uint64_t i = 0; i < n && !r; ) {
		size_t want = n - i < 512 ? (size_t)(n - i) : 512;
		ssize_t got = pread(fd, buf, want * 8, (off_t)((first + i) * 8));
		if (got <= 0 || got % 8) {
			r = -1;
			break;
		}
		for (size_t k = 0; k < (size_t)got / 8; k++) {
			bool present = buf[k] >> 63 & 1, swapped = buf[k] >> 62 & 1;
			bool file = buf[k] >> 61 & 1;
			if (swapped || (present && !file))
				used[i + k] = 1;
		}
		i += (uint64_t)got / 8;
	}
	close(fd);
	return r;
}

/* Which RAM pages may hold something other than zeros, found without
 * touching any: reading a hole of the memfd would allocate it, so a
 * snapshot of a big guest that used little would make all its RAM
 * resident. If the kernel cannot tell, every page is read. */
uint8_t *snapshot_ram_pages_in_use(const struct vm_memory *mem)
{
	size_t n = (size_t)(mem->size / PAGE);
	uint8_t *used = xcalloc(n, 1);

	if (mark_data_extents(mem->fd, mem->size, used) ||
	    (mem->private_image && mark_private_pages(mem->host, mem->size, used)))
		memset(used, 1, n);
	return used;
}

/* CRC-32 of len zero bytes (a multiple of PAGE), in O(log) combines:
 * zcrc[k] is the CRC of PAGE << k zeros. */
#define ZPOW 40 /* 4K << 39: beyond any RAM size */

static uint32_t zeros_crc(uint32_t crc, uint64_t len, const uint32_t *zcrc)
{
	uint64_t pages = len / PAGE;

	for (unsigned k = 0; pages && k < ZPOW; k++, pages >>= 1)
		if (pages & 1)
			crc = (uint32_t)crc32_combine(crc, zcrc[k], (z_off_t)((uint64_t)PAGE << k));
	return crc;
}

/* The memory image: RAM in memfd order, zero pages left as holes so the
 * file is sparse and can be mapped directly. */
static int put_memory(struct writer *w, const struct vm_memory *mem,
		      struct snapshot_progress *pr)
{
	static const uint8_t zero[PAGE];
	char *path = xasprintf("%s/memory.img", w->tmp);
	uint32_t crc = (uint32_t)crc32(0, NULL, 0);
	uint32_t zpow[ZPOW];
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	uint8_t *used = snapshot_ram_pages_in_use(mem);
	uint64_t zrun = 0; /* zero bytes not yet folded into crc */
	int r = -1;

	zpow[0] = (uint32_t)crc32(0, zero, PAGE);
	for (unsigned k = 1; k < ZPOW; k++)
		zpow[k] = (uint32_t)crc32_combine(zpow[k - 1], zpow[k - 1],
						  (z_off_t)((uint64_t)PAGE << (k - 1)));
	if (fd < 0 || ftruncate(fd, (off_t)mem->size))
		goto io_error;
	for (uint64_t off = 0; off < mem->size; off += PAGE) {
		const uint8_t *p = mem->host + off;
		if (!used[off / PAGE] || page_is_zero(p)) {
			zrun += PAGE;
		} else {
			crc = zeros_crc(crc, zrun, zpow);
			zrun = 0;
			if (write_all(fd, p, PAGE, (off_t)off))
				goto io_error;
			crc = (uint32_t)crc32(crc, p, PAGE);
		}
		if (pr && off && !(off & ((64u << 20) - 1)))
			pr->report(pr->opaque, off, mem->size);
	}
	crc = zeros_crc(crc, zrun, zpow);
	if (fsync(fd))
		goto io_error;
	if (pr)
		pr->report(pr->opaque, mem->size, mem->size);
	record(w, "memory.img", mem->size, crc);
	r = 0;
	goto out;
io_error:
	set_err(w->err, w->len, "cannot write %s: %s", path, strerror(errno));
out:
	if (fd >= 0)
		close(fd);
	free(used);
	free(path);
	return r;
}

static int put_cpus(struct writer *w, struct machine *m)
{
	struct modvm_cpu_state *s = xcalloc(1, sizeof(*s));
	int r = 0;

	for (unsigned i = 0; i < m->ncpus && !r; i++) {
		struct strbuf b;
		char name[32];

		memset(s, 0, sizeof(*s));
		if (m->eops->get_state(m->vcpus[i], s)) {
			r = set_err(w->err, w->len, "the engine could not read cpu %u's state", i);
			break;
		}
		sb_init(&b);
		state_save(&cpu_state_section, s, &b);
		snprintf(name, sizeof(name), "cpu-%u.state", i);
		r = put_file(w, name, b.s, b.len);
		sb_free(&b);
	}
	free(s);
	return r;
}

void snapshot_save_device(modvm_inst *inst, struct strbuf *out)
{
	const struct modvm_plugin_desc *d = inst->plugin->desc;

	for (int k = 0; d->state && d->state[k]; k++)
		state_save(d->state[k], inst->obj, out);
}

int snapshot_save_cpu(struct machine *m, unsigned i, struct strbuf *out)
{
	struct modvm_cpu_state *s = xcalloc(1, sizeof(*s));
	int r = m->eops->get_state(m->vcpus[i], s);

	if (!r)
		state_save(&cpu_state_section, s, out);
	free(s);
	return r ? -1 : 0;
}

int snapshot_load_cpu(struct machine *m, unsigned i, const void *buf, size_t n,
		      char *err, size_t len)
{
	struct modvm_cpu_state *st = xcalloc(1, sizeof(*st));
	int r = 0;

	if (state_load(&cpu_state_section, st, buf, n, NULL, err, len))
		r = -1;
	else if (m->eops->set_state(m->vcpus[i], st))
		r = set_err(err, len, "the engine refused this CPU state");
	free(st);
	return r;
}

static json_t *put_devices(struct writer *w, struct machine *m)
{
	json_t *list = json_array();

	for (size_t i = 0; i < m->ninsts; i++) {
		modvm_inst *inst = m->insts[i];
		const struct modvm_plugin_desc *d = inst->plugin->desc;
		json_t *secs = json_array();
		struct strbuf b;
		char *name = xasprintf("device-%s.state", inst->id);

		sb_init(&b);
		snapshot_save_device(inst, &b);
		for (int k = 0; d->state && d->state[k]; k++)
			json_array_append_new(secs, json_pack("{s:s,s:i}",
				"name", d->state[k]->name, "version", (int)d->state[k]->version));
		int r = put_file(w, name, b.s ? b.s : "", b.len);
		sb_free(&b);
		json_array_append_new(list, json_pack("{s:s,s:s,s:s,s:s,s:o}",
			"id", inst->id, "plugin", d->name, "plugin-version", d->version,
			"file", name, "sections", secs));
		free(name);
		if (r) {
			json_decref(list);
			return NULL;
		}
	}
	return list;
}

/* CRC-32 of a whole file, holes read as zeros without reading them. */
static int file_crc_sparse(const char *path, uint64_t *size, uint32_t *crc,
			   char *why, size_t why_len)
{
	static uint8_t buf[1 << 16];
	static const uint8_t zero[PAGE];
	uint32_t zcrc = (uint32_t)crc32(0, zero, PAGE);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	struct stat st;
	off_t off = 0;

	if (fd < 0 || fstat(fd, &st)) {
		set_err(why, why_len, "%s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		set_err(why, why_len, "not a regular file or block device (%s)",
			file_kind(st.st_mode));
		close(fd);
		return -1;
	}
	*size = (uint64_t)st.st_size;
	*crc = (uint32_t)crc32(0, NULL, 0);
	while (off < st.st_size) {
		off_t data = lseek(fd, off, SEEK_DATA);
		if (data < 0)
			data = st.st_size; /* only a hole is left */
		for (; off < data; ) { /* the hole: zeros, page by page */
			off_t n = data - off < (off_t)PAGE ? data - off : (off_t)PAGE;
			*crc = n == PAGE ? (uint32_t)crc32_combine(*crc, zcrc, PAGE)
					 : (uint32_t)crc32(*crc, zero, (uInt)n);
			off += n;
		}
		off_t hole = data < st.st_size ? lseek(fd, data, SEEK_HOLE) : st.st_size;
		if (hole < 0)
			hole = st.st_size;
		while (off < hole) {
			size_t want = (size_t)(hole - off) < sizeof(buf) ? (size_t)(hole - off) : sizeof(buf);
			ssize_t n = pread(fd, buf, want, off);
			if (n <= 0) {
				set_err(why, why_len, "%s", n ? strerror(errno) : "shorter than its size");
				close(fd);
				return -1;
			}
			*crc = (uint32_t)crc32(*crc, buf, (uInt)n);
			off += n;
		}
	}
	close(fd);
	return 0;
}

/* The image file behind each block backend of a device group, with the
 * device id: what a snapshot must find unchanged to resume. */
struct disk_ref {
	const char *id;
	const char *path;
};

static size_t list_disks(const struct vm_config *c, struct disk_ref *out,
			 size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < c->ndevices; i++) {
		const struct cfg_device *d = &c->devices[i];
		for (size_t b = 0; b < d->nbackends && n < max; b++) {
			const struct prop_value *p;
			if (d->backends[b].plugin->desc->kind != MODVM_KIND_BLOCK)
				continue;
			p = resolved_find(&d->backends[b], "path");
			if (p && p->s)
				out[n++] = (struct disk_ref){ d->id, p->s };
		}
	}
	return n;
}


/* The backing file name in a qcow2 header (QCOW2 spec: offset 8, u64 BE
 * offset of the name; offset 16, u32 BE its length), or false. */
static bool qcow2_backing_name(const char *path, char *name, size_t len)
{
	uint8_t h[20];
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	bool ok = false;

	if (fd < 0)
		return false;
	if (pread(fd, h, sizeof(h), 0) == (ssize_t)sizeof(h) && !memcmp(h, "QFI\xfb", 4)) {
		uint64_t off = 0;
		uint32_t n = 0;
		for (int i = 0; i < 8; i++)
			off = off << 8 | h[8 + i];
		for (int i = 0; i < 4; i++)
			n = n << 8 | h[16 + i];
		if (off && n && n < len && off < (1ull << 40) &&
		    pread(fd, name, n, (off_t)off) == (ssize_t)n) {
			name[n] = 0;
			ok = true;
		}
	}
	close(fd);
	return ok;
}

/* A qcow2 image with no cluster allocated: every L1 entry is zero (QCOW2
 * spec: u32 BE l1_size at 36, u64 BE l1_table_offset at 40). */
static bool qcow2_is_empty(const char *path)
{
	uint8_t h[48], e[8];
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	bool empty = false;
	uint64_t l1 = 0;
	uint32_t n = 0;

	if (fd < 0)
		return false;
	if (pread(fd, h, sizeof(h), 0) != (ssize_t)sizeof(h))
		goto out;
	for (int i = 0; i < 4; i++)
		n = n << 8 | h[36 + i];
	for (int i = 0; i < 8; i++)
		l1 = l1 << 8 | h[40 + i];
	if (n > (1u << 20))
		goto out;
	empty = true;
	for (uint32_t i = 0; i < n && empty; i++)
		if (pread(fd, e, 8, (off_t)(l1 + 8ull * i)) != 8 || memcmp(e, "\0\0\0\0\0\0\0\0", 8))
			empty = false;
out:
	close(fd);
	return empty;
}

static void remove_tree(const char *dir);

/* The temporary directory "<snapdir>/<tag>.tmp-PID" of a snapshot whose
 * modvm died before completing it (PID no longer runs), or NULL. */
static char *dead_snapshot_tmp(const char *snapdir, const char *tag)
{
	size_t tlen = strlen(tag);
	DIR *d = opendir(snapdir);
	struct dirent *e;
	char *found = NULL;

	while (d && !found && (e = readdir(d))) {
		char *end;
		if (strncmp(e->d_name, tag, tlen) || strncmp(e->d_name + tlen, ".tmp-", 5))
			continue;
		long pid = strtol(e->d_name + tlen + 5, &end, 10);
		if (*end || pid <= 0 || (kill((pid_t)pid, 0) == 0 || errno != ESRCH))
			continue;
		found = xasprintf("%s/%s", snapdir, e->d_name);
	}
	if (d)
		closedir(d);
	return found;
}

/* An overlay "<image>.<tag>.qcow2" is the leftover of snapshot `tag`
 * killed before it completed if it is ours, a qcow2 over the image that
 * holds nothing, and the snapshot's temporary directory is there with its
 * modvm gone: then remove both and return true. Anything else is kept. */
static bool remove_incomplete_overlay(struct machine *m, const char *device,
				      const char *image, const char *tag,
				      const char *snapdir)
{
	char *ov = xasprintf("%s.%s.qcow2", image, tag), *bbuf = xstrdup(image);
	char backing[4096], *tmp = NULL;
	struct stat st;
	bool removed = false;

	if (lstat(ov, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
	    qcow2_backing_name(ov, backing, sizeof(backing)) &&
	    !strcmp(backing, basename(bbuf)) && qcow2_is_empty(ov) &&
	    (tmp = dead_snapshot_tmp(snapdir, tag)) && unlink(ov) == 0) {
		remove_tree(tmp); /* plain files modvm wrote; never recurses */
		removed = true;
		if (m)
			machine_log(m, MODVM_LOG_WARN,
				    "disk %s: removed %s, an empty overlay left by snapshot %s, which did not complete (%s)",
				    device, ov, tag, tmp);
		else
			fprintf(stderr, "modvm: disk %s: removed %s, an empty overlay left by snapshot %s, which did not complete (%s)\n",
				device, ov, tag, tmp);
	}
	free(tmp);
	free(bbuf);
	free(ov);
	return removed;
}

static void remove_incomplete_overlays(struct machine *m, const char *tag)
{
	struct block_disk disks[MAX_DISKS];
	size_t n = block_disks(m, disks, MAX_DISKS);

	for (size_t i = 0; i < n; i++)
		if (disks[i].path && !disks[i].readonly)
			remove_incomplete_overlay(m, disks[i].device, disks[i].path, tag,
						  m->snapshot_dir ? m->snapshot_dir : ".");
}

int snapshot_refuse_frozen_disks(const struct vm_config *c, const char *snapdir,
				 char *err, size_t len)
{
	struct disk_ref disks[MAX_DISKS];
	size_t n = list_disks(c, disks, MAX_DISKS);

	for (size_t i = 0; i < n; i++) {
		char *dbuf = xstrdup(disks[i].path), *bbuf = xstrdup(disks[i].path);
		const char *dir = dirname(dbuf), *base = basename(bbuf);
		size_t blen = strlen(base);
		struct strbuf found;
		struct dirent *e;
		DIR *d = opendir(dir);

		sb_init(&found);
		while (d && (e = readdir(d))) {
			size_t elen = strlen(e->d_name);
			char backing[4096], *p;
			if (elen <= blen + 7 || strncmp(e->d_name, base, blen) ||
			    e->d_name[blen] != '.' || strcmp(e->d_name + elen - 6, ".qcow2"))
				continue;
			p = xasprintf("%s/%s", dir, e->d_name);
			char *tag = xasprintf("%.*s", (int)(elen - blen - 7), e->d_name + blen + 1);
			if (qcow2_backing_name(p, backing, sizeof(backing)) &&
			    !strcmp(backing, base) &&
			    !remove_incomplete_overlay(NULL, disks[i].id, disks[i].path, tag, snapdir))
				sb_printf(&found, "%s%s", found.len ? ", " : "", p);
			free(tag);
			free(p);
		}
		if (d)
			closedir(d);
		bool frozen = found.len != 0;
		if (frozen)
			set_err(err, len, "%s: disk of device %s: %s is frozen in a snapshot: the VM's later writes are in the overlay %s over it. Booting the frozen image would lose them and break the snapshot: resume the snapshot (modvm resume DIR), or run on the overlay (path = that overlay, backend = \"qcow2\"), or remove the overlay to discard what it holds",
				c->path, disks[i].id, disks[i].path, found.s);
		sb_free(&found);
		free(dbuf);
		free(bbuf);
		if (frozen)
			return -1;
	}
	return 0;
}

/* Each disk by size and checksum (read after block_freeze_prepare drained
 * and flushed it); a frozen one also names its format and the overlay the
 * VM continues on (docs/snapshot-format.md, "Disks"). */
static json_t *put_disks(struct writer *w, struct machine *m)
{
	struct block_disk disks[MAX_DISKS];
	size_t n = block_disks(m, disks, MAX_DISKS);
	json_t *list = json_array();

	for (size_t i = n; i-- > 0;) { /* block_disks lists the newest first */
		char why[256];
		uint64_t size;
		uint32_t crc;
		char hex[16];
		json_t *d;

		if (!disks[i].path)
			continue;
		/* resume opens the config's image for a by-reference disk */
		if (disks[i].on_overlay && !disks[i].overlay && !disks[i].readonly) {
			set_err(w->err, w->len, "disk of device %s runs on overlay %s since an earlier snapshot, which its config does not name: take this snapshot with frozen disks",
				disks[i].device, disks[i].path);
			json_decref(list);
			return NULL;
		}
		if (file_crc_sparse(disks[i].path, &size, &crc, why, sizeof(why))) {
			set_err(w->err, w->len, "disk %s of device %s: %s", disks[i].path,
				disks[i].device, why);
			json_decref(list);
			return NULL;
		}
		snprintf(hex, sizeof(hex), "%08x", crc);
		d = json_pack("{s:s,s:s,s:I,s:s}", "device", disks[i].device,
			      "path", disks[i].path, "size", (json_int_t)size, "crc32", hex);
		if (disks[i].overlay) {
			json_object_set_new(d, "format", json_string(disks[i].format));
			json_object_set_new(d, "frozen", json_true());
			json_object_set_new(d, "overlay", json_string(disks[i].overlay));
		}
		json_array_append_new(list, d);
	}
	return list;
}

static int fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = fd < 0 ? -1 : fsync(fd);

	if (fd >= 0)
		close(fd);
	return r;
}

static void remove_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char *p = xasprintf("%s/%s", dir, e->d_name);
		unlink(p);
		free(p);
	}
	closedir(d);
	rmdir(dir);
}

static char *now_iso8601(void)
{
	char buf[32];
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return xstrdup(buf);
}

static int put_manifest(struct writer *w, struct machine *m, json_t *devices,
			json_t *disks)
{
	const struct vm_config *c = m->cfg;
	char *created = now_iso8601();
	json_t *man = json_pack("{s:i,s:s,s:s,s:s,s:s,s:s,s:i,s:I,s:I,s:I,s:O,s:O,s:O}",
		"format", SNAPSHOT_FORMAT, "modvm-version", MODVM_VERSION,
		"created", created, "name", c->name, "engine", c->engine,
		"cpu-model", c->model, "cpus", (int)m->ncpus,
		"memory", (json_int_t)m->mem.size,
		"virtual-ns", (json_int_t)vclock_now(&m->clock),
		"boot-wall-ns", (json_int_t)m->clock.boot_wall_ns,
		"devices", devices, "files", w->files, "disks", disks);
	/* both are borrowed (O): the caller releases them */
	char *text = json_dumps(man, JSON_INDENT(2) | JSON_SORT_KEYS);
	char *path = xasprintf("%s/manifest.json", w->tmp);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	int r = 0;

	/* The manifest is written last and is not in its own file list: a
	 * directory without it is never mistaken for a snapshot. */
	if (fd < 0 || write_all(fd, text, strlen(text), 0) || fsync(fd))
		r = set_err(w->err, w->len, "cannot write %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	free(path);
	free(text);
	free(created);
	json_decref(man);
	return r;
}

int snapshot_save(struct machine *m, const char *dir, unsigned flags,
		  struct snapshot_progress *progress, char *err, size_t len)
{
	struct writer w = { .err = err, .len = len };
	char *parent_buf = xstrdup(dir), *name_buf = xstrdup(dir);
	bool freeze = !(flags & SNAPSHOT_REFERENCE_DISKS);
	json_t *devices = NULL, *disks = NULL;
	int r = -1;

	if (!m->cfg || !m->eops) {
		set_err(err, len, "snapshot: the VM is not running");
		goto out_free;
	}
	if (access(dir, F_OK) == 0) {
		set_err(err, len, "snapshot %s already exists: choose another name or remove it", dir);
		goto out_free;
	}
	w.tmp = xasprintf("%s.tmp-%d", dir, (int)getpid());
	if (mkdir(w.tmp, 0755)) {
		set_err(err, len, "cannot create %s: %s", w.tmp, strerror(errno));
		goto out_free;
	}
	w.files = json_object();
	/* Devices first: saving their state drains their requests, then
	 * the disks are flushed and their overlays made before they are
	 * checksummed. */
	if (put_file(&w, "config.cfg", m->cfg->text, strlen(m->cfg->text)) ||
	    put_cpus(&w, m) || !(devices = put_devices(&w, m)) ||
	    (freeze && (remove_incomplete_overlays(m, basename(name_buf)),
			block_freeze_prepare(m, basename(name_buf), err, len))) ||
	    !(disks = put_disks(&w, m)) ||
	    put_memory(&w, &m->mem, progress) ||
	    put_manifest(&w, m, devices, disks) || fsync_dir(w.tmp))
		goto fail;
	if (rename(w.tmp, dir)) {
		set_err(err, len, "cannot rename %s to %s: %s", w.tmp, dir, strerror(errno));
		goto fail;
	}
	fsync_dir(dirname(parent_buf));
	if (freeze)
		block_freeze_commit(m);
	r = 0;
	goto out;
fail:
	if (freeze)
		block_freeze_abort(m);
	remove_tree(w.tmp);
out:
	json_decref(devices);
	json_decref(disks);
	json_decref(w.files);
out_free:
	free(w.tmp);
	free(parent_buf);
	free(name_buf);
	return r;
}

/* ---- deleting ----------------------------------------------------------- */

/* The file list of a manifest modvm wrote, or NULL: the manifest must have
 * a format this modvm knows, the fields every version has, and a file
 * list of plain names that includes config.cfg and memory.img. */
static json_t *own_file_list(const char *dir)
{
	char *mpath = xasprintf("%s/manifest.json", dir), why[256], *text;
	json_t *man = NULL, *files;
	json_int_t format = 0;
	const char *name;
	size_t n;
	json_t *f;

	text = read_file(mpath, MANIFEST_MAX, &n, why, sizeof(why));
	free(mpath);
	if (text)
		man = json_loadb(text, n, 0, NULL);
	free(text);
	files = json_object_get(man, "files");
	if (!man || json_unpack(man, "{s:I,s:s,s:s,s:o,s:o}", "format", &format,
				"modvm-version", &name, "engine", &name, "devices", &f,
				"files", &f) ||
	    format < 1 || format > SNAPSHOT_FORMAT || !json_is_object(files) ||
	    !json_object_get(files, "config.cfg") || !json_object_get(files, "memory.img"))
		goto not_ours;
	json_object_foreach(files, name, f)
		if (!*name || strchr(name, '/') || name[0] == '.' ||
		    !strcmp(name, "manifest.json"))
			goto not_ours;
	json_incref(files);
	json_decref(man);
	return files;
not_ours:
	json_decref(man);
	return NULL;
}

int snapshot_delete(const char *dir)
{
	json_t *files = own_file_list(dir);
	struct dirent *e;
	const char *name;
	json_t *f;
	int r = 0;
	DIR *d;

	if (!files)
		return -EPERM;
	d = opendir(dir);
	if (!d) {
		r = -errno;
		json_decref(files);
		return r;
	}
	/* Everything in it must be modvm's, or nothing is deleted. */
	while (!r && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (strcmp(e->d_name, "manifest.json") && !json_object_get(files, e->d_name))
			r = -ENOTEMPTY;
	}
	closedir(d);
	/* The manifest goes first: a half-deleted snapshot is never taken
	 * for a whole one. unlink never removes a directory. */
	if (!r) {
		char *p = xasprintf("%s/manifest.json", dir);
		if (unlink(p))
			r = -errno;
		free(p);
	}
	if (!r) {
		json_object_foreach(files, name, f) {
			char *p = xasprintf("%s/%s", dir, name);
			unlink(p);
			free(p);
		}
		r = rmdir(dir) ? -errno : 0;
	}
	json_decref(files);
	return r;
}

/* ---- reading ------------------------------------------------------------ */

/* named_crc32c of a small file (state files, the config). */
static int file_crc32c_named(const char *path, const char *name, uint32_t *crc,
			     char *why, size_t why_len)
{
	size_t n;
	char *buf = read_file(path, 64u << 20, &n, why, why_len);

	if (!buf)
		return -1;
	*crc = named_crc32c(name, buf, n);
	free(buf);
	return 0;
}

static int check_files(struct snapshot *s, json_t *files, bool verify_memory,
		       char *err, size_t len)
{
	const char *name;
	json_t *f;

	if (!json_is_object(files) || !json_object_get(files, "config.cfg") ||
	    !json_object_get(files, "memory.img"))
		return set_err(err, len, "%s/manifest.json: the file list is missing or incomplete",
			       s->dir);
	json_object_foreach(files, name, f) {
		json_int_t want_size = json_integer_value(json_object_get(f, "size"));
		/* format 3: every file but memory.img by CRC-32C with its name */
		bool named = s->format >= 3 && strcmp(name, "memory.img");
		const char *want_crc = json_string_value(json_object_get(f, named ? "crc32c" : "crc32"));
		char *path, got_crc[16], why[256];
		uint64_t size;
		uint32_t crc;
		struct stat st;

		if (strchr(name, '/') || name[0] == '.' || !want_crc ||
		    !json_is_integer(json_object_get(f, "size")) || want_size < 0)
			return set_err(err, len, "%s/manifest.json: bad file entry \"%s\"", s->dir, name);
		path = xasprintf("%s/%s", s->dir, name);
		if (stat(path, &st)) {
			set_err(err, len, "%s: missing (%s)", path, strerror(errno));
			free(path);
			return -1;
		}
		if (!S_ISREG(st.st_mode)) {
			set_err(err, len, "%s: not a regular file (%s)", path, file_kind(st.st_mode));
			free(path);
			return -1;
		}
		if ((json_int_t)st.st_size != want_size) {
			set_err(err, len, "%s: %lld bytes, the manifest says %lld (truncated or replaced)",
				path, (long long)st.st_size, (long long)want_size);
			free(path);
			return -1;
		}
		if (!strcmp(name, "memory.img") && !verify_memory) {
			free(path);
			continue;
		}
		/* holes read as zeros without reading them: a 512 MiB
		 * image with 80 MiB of data checks in a sixth of the time */
		if (named ? file_crc32c_named(path, name, &crc, why, sizeof(why))
			  : file_crc_sparse(path, &size, &crc, why, sizeof(why))) {
			set_err(err, len, "%s: %s", path, why);
			free(path);
			return -1;
		}
		snprintf(got_crc, sizeof(got_crc), "%08x", crc);
		if (strcmp(got_crc, want_crc)) {
			set_err(err, len, "%s: checksum %s does not match the manifest's %s (corrupted)",
				path, got_crc, want_crc);
			free(path);
			return -1;
		}
		free(path);
	}
	return 0;
}

int snapshot_open(const char *dir, bool verify_memory, struct snapshot *s,
		  char *err, size_t len)
{
	char *mpath = xasprintf("%s/manifest.json", dir);
	json_error_t jerr;
	json_t *man;
	json_int_t format = 0, memory = 0, cpus = 0, vns = 0, wall = 0;
	const char *engine = NULL, *model = NULL;
	char why[256];
	size_t tlen;
	char *text;

	memset(s, 0, sizeof(*s));
	s->dir = xstrdup(dir);
	text = read_file(mpath, MANIFEST_MAX, &tlen, why, sizeof(why));
	if (!text) {
		if (errno == ENOENT)
			set_err(err, len, "%s: no manifest.json: not a modvm snapshot (or an incomplete one)",
				dir);
		else
			set_err(err, len, "%s: cannot read the manifest: %s", mpath, why);
		free(mpath);
		return -1;
	}
	man = json_loadb(text, tlen, 0, &jerr);
	free(text);
	if (!man) {
		set_err(err, len, "%s: manifest.json unreadable: not a modvm snapshot, or its manifest is damaged (line %d: %s)",
			dir, jerr.line, jerr.text);
		free(mpath);
		return -1;
	}
	s->manifest = man;
	if (json_unpack(man, "{s:I}", "format", &format))
		goto bad;
	if (format > SNAPSHOT_FORMAT) {
		set_err(err, len, "%s: snapshot format %lld is newer than this modvm reads (%d): use a newer modvm",
			mpath, (long long)format, SNAPSHOT_FORMAT);
		goto fail;
	}
	if (format < 1 || json_unpack(man, "{s:s,s:s,s:I,s:I,s:I,s:I}",
				      "engine", &engine, "cpu-model", &model,
				      "memory", &memory, "cpus", &cpus,
				      "virtual-ns", &vns, "boot-wall-ns", &wall))
		goto bad;
	/* Timers add periods to these: far from overflow, any real VM's
	 * clock is (2^62 ns is 146 years). */
	if (vns < 0 || vns > SNAPSHOT_TIME_MAX) {
		set_err(err, len, "%s: \"virtual-ns\" %lld is out of range (0 to 2^62 ns)",
			mpath, (long long)vns);
		goto fail;
	}
	if (wall < -SNAPSHOT_TIME_MAX || wall > SNAPSHOT_TIME_MAX) {
		set_err(err, len, "%s: \"boot-wall-ns\" %lld is out of range (-2^62 to 2^62 ns)",
			mpath, (long long)wall);
		goto fail;
	}
	if (memory < (1 << 20) || memory > (1ll << 40) || memory % PAGE) {
		set_err(err, len, "%s: \"memory\" %lld is out of range (a multiple of 4K from 1M to 1T)",
			mpath, (long long)memory);
		goto fail;
	}
	if (cpus < 1 || cpus > 64) {
		set_err(err, len, "%s: \"cpus\" %lld is out of range (1 to 64)", mpath,
			(long long)cpus);
		goto fail;
	}
	s->format = (unsigned)format;
	s->engine = xstrdup(engine);
	s->model = xstrdup(model);
	s->memory = (uint64_t)memory;
	s->cpus = (unsigned)cpus;
	s->virtual_ns = (uint64_t)vns;
	s->boot_wall_ns = (int64_t)wall;
	s->config_path = xasprintf("%s/config.cfg", dir);
	s->memory_path = xasprintf("%s/memory.img", dir);
	if (check_files(s, json_object_get(man, "files"), verify_memory, err, len))
		goto fail;
	free(mpath);
	return 0;
bad:
	set_err(err, len, "%s: required fields are missing or invalid", mpath);
fail:
	free(mpath);
	return -1;
}

void snapshot_close(struct snapshot *s)
{
	json_decref(s->manifest);
	free(s->dir);
	free(s->config_path);
	free(s->memory_path);
	free(s->engine);
	free(s->model);
	memset(s, 0, sizeof(*s));
}

/* State files are small; anything larger is not ours. */
#define STATE_FILE_MAX (64u << 20)

/* A state file, or NULL with err naming it and why it cannot be read. */
static char *slurp(const char *path, size_t *n, char *err, size_t len)
{
	char why[256];
	char *buf = read_file(path, STATE_FILE_MAX, n, why, sizeof(why));

	if (!buf)
		set_err(err, len, "%s: %s", path, why);
	return buf;
}

int snapshot_load_device(modvm_inst *inst, const char *what, const void *data,
			 size_t n, char *err, size_t len)
{
	const struct modvm_plugin_desc *d = inst->plugin->desc;
	const char *buf = data;
	char msg[ERR_LEN];
	size_t off = 0, used;

	for (int k = 0; d->state && d->state[k]; k++) {
		if (state_load(d->state[k], inst->obj, buf + off, n - off, &used,
			       msg, sizeof(msg)))
			return set_err(err, len, "%s: device %s: %s", what, inst->prefix, msg);
		off += used;
	}
	if (off != n)
		return set_err(err, len, "%s: %zu bytes of state this %s does not know", what,
			       n - off, d->name);
	return 0;
}

static int load_device(modvm_inst *inst, const char *path, char *err,
		       size_t len)
{
	size_t n;
	char *buf = slurp(path, &n, err, len);
	int r;

	if (!buf)
		return -1;
	r = snapshot_load_device(inst, path, buf, n, err, len);
	free(buf);
	return r;
}

/* The manifest's entry says which file holds the device's state and which
 * sections it saved: the file must be the device's own and the sections
 * the ones its plugin loads, in its order (each section in the file names
 * itself too, and state_load checks that). */
static int check_device_entry(const struct snapshot *s, json_t *d,
			      const modvm_inst *inst, char *err, size_t len)
{
	const struct modvm_plugin_desc *pd = inst->plugin->desc;
	const char *file = json_string_value(json_object_get(d, "file"));
	json_t *secs = json_object_get(d, "sections");
	char *want = xasprintf("device-%s.state", inst->id);
	size_t n = 0;
	int r = 0;

	if (!file || strcmp(file, want))
		r = set_err(err, len, "%s/manifest.json: device %s's state is in \"%s\", expected %s",
			    s->dir, inst->id, file ? file : "(nothing)", want);
	while (!r && pd->state && pd->state[n])
		n++;
	if (!r && (!json_is_array(secs) || json_array_size(secs) != n))
		r = set_err(err, len, "%s/manifest.json: device %s (%s) saved %zu state sections, the plugin has %zu",
			    s->dir, inst->id, pd->name, json_array_size(secs), n);
	for (size_t k = 0; !r && k < n; k++) {
		const char *name = json_string_value(json_object_get(json_array_get(secs, k), "name"));
		if (!name || strcmp(name, pd->state[k]->name))
			r = set_err(err, len, "%s/manifest.json: device %s (%s): section %zu is \"%s\", the plugin's is \"%s\"",
				    s->dir, inst->id, pd->name, k, name ? name : "?",
				    pd->state[k]->name);
	}
	free(want);
	return r;
}

int snapshot_load_devices(struct machine *m, const struct snapshot *s,
			  char *err, size_t len)
{
	json_t *devs = json_object_get(s->manifest, "devices");
	size_t i;
	json_t *d;

	if (!json_is_array(devs) || json_array_size(devs) != m->ninsts)
		return set_err(err, len, "%s: the snapshot has %zu devices, its config creates %zu",
			       s->dir, json_array_size(devs), m->ninsts);
	/* The clock first: post_load hooks re-arm timers against it. */
	m->clock.base_virt = s->virtual_ns;
	m->clock.boot_wall_ns = s->boot_wall_ns;
	json_array_foreach(devs, i, d) {
		const char *id = json_string_value(json_object_get(d, "id"));
		const char *plugin = json_string_value(json_object_get(d, "plugin"));
		modvm_inst *inst = m->insts[i];
		char *path;
		int r;

		if (!id || !plugin || strcmp(id, inst->id) ||
		    strcmp(plugin, inst->plugin->desc->name))
			return set_err(err, len, "%s: device %zu is %s (%s) in the snapshot but %s here",
				       s->dir, i, id ? id : "?", plugin ? plugin : "?",
				       inst->prefix);
		if (check_device_entry(s, d, inst, err, len))
			return -1;
		path = xasprintf("%s/device-%s.state", s->dir, id);
		machine_lock(m);
		r = load_device(inst, path, err, len);
		machine_unlock(m);
		free(path);
		if (r)
			return -1;
	}
	return 0;
}

int snapshot_load_cpus(struct machine *m, const struct snapshot *s, char *err,
		       size_t len)
{
	struct modvm_cpu_state *st = xcalloc(1, sizeof(*st));
	char msg[ERR_LEN];
	int r = 0;

	if (s->cpus != m->ncpus) {
		free(st);
		return set_err(err, len, "%s: the snapshot has %u cpus, this VM %u",
			       s->dir, s->cpus, m->ncpus);
	}
	for (unsigned i = 0; i < m->ncpus && !r; i++) {
		char *path = xasprintf("%s/cpu-%u.state", s->dir, i);
		size_t n;
		char *buf = slurp(path, &n, err, len);

		if (!buf)
			r = -1;
		else if (state_load(&cpu_state_section, st, buf, n, NULL, msg, sizeof(msg)))
			r = set_err(err, len, "%s: %s", path, msg);
		else if (m->eops->set_state(m->vcpus[i], st))
			r = set_err(err, len, "%s: the engine refused this CPU state", path);
		free(buf);
		free(path);
	}
	free(st);
	return r;
}

/* The manifest's entry for device id, or NULL. */
static json_t *disk_entry(json_t *want, const char *id)
{
	size_t i;
	json_t *d;

	json_array_foreach(want, i, d) {
		const char *dev = json_string_value(json_object_get(d, "device"));
		if (dev && !strcmp(dev, id))
			return d;
	}
	return NULL;
}

static int check_one_disk(const char *path, const char *id, json_t *d,
			  char *err, size_t len)
{
	const char *crc_want = json_string_value(json_object_get(d, "crc32"));
	json_int_t size_want = json_integer_value(json_object_get(d, "size"));
	char hex[16], why[256];
	uint64_t size;
	uint32_t crc;

	if (!crc_want || !json_is_integer(json_object_get(d, "size")) || size_want < 0)
		return set_err(err, len, "the snapshot's entry for disk %s of device %s has no crc32 or size",
			       path, id);
	if (file_crc_sparse(path, &size, &crc, why, sizeof(why)))
		return set_err(err, len, "disk %s of device %s: %s", path, id, why);
	snprintf(hex, sizeof(hex), "%08x", crc);
	if ((json_int_t)size != size_want || strcmp(hex, crc_want))
		return set_err(err, len, "disk %s of device %s changed since the snapshot (%llu bytes, crc32 %s; the snapshot expects %lld bytes, crc32 %s): resuming would corrupt the guest's filesystem; put back the image that belongs to this snapshot",
			       path, id, (unsigned long long)size, hex,
			       (long long)size_want, crc_want);
	return 0;
}

/* A new overlay name for resuming snapshot `snap` over base: the first of
 * <base>.<snap>-resume1.qcow2, -resume2, ... that does not exist. */
static char *resume_overlay_name(const char *base, const char *snap)
{
	for (unsigned n = 1;; n++) {
		char *p = xasprintf("%s.%s-resume%u.qcow2", base, snap, n);
		if (access(p, F_OK))
			return p;
		free(p);
	}
}

int snapshot_check_disks(struct machine *m, const struct snapshot *s,
			 const struct vm_config *c, char *err, size_t len)
{
	json_t *want = json_object_get(s->manifest, "disks");
	struct disk_ref disks[MAX_DISKS];
	size_t n = list_disks(c, disks, MAX_DISKS);
	char *snap_buf = xstrdup(s->dir);
	const char *snap = basename(snap_buf);
	int r = 0;

	if (json_array_size(want) != n) {
		free(snap_buf);
		return set_err(err, len, "%s: the snapshot has %zu disks, its config %zu",
			       s->dir, json_array_size(want), n);
	}
	for (size_t i = 0; i < n && !r; i++) {
		json_t *d = disk_entry(want, disks[i].id);
		const char *base = json_string_value(json_object_get(d, "path"));
		const char *fmt = json_string_value(json_object_get(d, "format"));

		if (!d) {
			r = set_err(err, len, "%s: the snapshot has no disk for device %s",
				    s->dir, disks[i].id);
		} else if (!json_is_true(json_object_get(d, "frozen"))) {
			/* recorded by reference: the config's own image */
			r = check_one_disk(disks[i].path, disks[i].id, d, err, len);
		} else if (!base || !fmt || (strcmp(fmt, "raw") && strcmp(fmt, "qcow2"))) {
			r = set_err(err, len, "%s/manifest.json: frozen disk of device %s lacks its path or format",
				    s->dir, disks[i].id);
		} else if (!(r = check_one_disk(base, disks[i].id, d, err, len))) {
			char *overlay = resume_overlay_name(base, snap);
			block_resume_on(m, disks[i].id, base, fmt, overlay);
			free(overlay);
		}
	}
	free(snap_buf);
	return r;
}
