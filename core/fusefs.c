/* The VM as files: a libfuse3 high-level filesystem on a thread of its own.
 * Generated files are rendered once at open (so a reader sees one
 * consistent copy however it reads), memory is served from guest RAM
 * directly, and snapshots/ passes through to the snapshot directory. */
#define FUSE_USE_VERSION 35
#include "fusefs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cpustate.h"
#include "display.h"
#include "inspect.h"
#include "machine.h"
#include "run.h"
#include "sandbox.h"
#include "snapshot.h"
#include "state_desc.h"

extern char **environ;

#define FS_TYPE "fuse.modvm" /* what mountinfo shows for subtype=modvm */

struct handle;

struct fusefs {
	struct machine *m;
	struct handle *handles; /* open files: freed at unmount if the
				 * kernel never sent their release */
	char *dir;
	struct fuse *fuse;
	struct fuse_session *se;
	int wake[2];
	int helper;             /* our end of fusermount3's auto_unmount
				 * socket, or -1 (see find_helper_socket) */
	pthread_t thread;
	bool thread_running;
	bool mounted;
	bool ended;             /* fs_main returned (unmounted from outside) */
	struct fusefs *next;    /* mounts made by the control socket */
};

/* ---- the tree ------------------------------------------------------------ */

enum node_kind {
	N_ROOT, N_CONFIG, N_STATUS, N_CONTROL, N_PLUGINS, N_CONSOLE, N_MEMORY,
	N_CPUS, N_CPU_DIR, N_CPU_REGS, N_CPU_STATE,
	N_DEVICES, N_DEV_DIR, N_DEV_STATE, N_DEV_STATE_BIN, N_DEV_PROPS,
	N_DEV_CONSOLE, N_DISKS, N_DISK, N_SNAPS, N_SNAP_DIR, N_SNAP_FILE,
	N_SCREEN,
};

struct node {
	enum node_kind kind;
	unsigned cpu;
	modvm_inst *inst;
	char snap[NAME_MAX + 1];
	char file[NAME_MAX + 1];
};

static const struct { const char *name; enum node_kind kind; } root_files[] = {
	{ "config", N_CONFIG }, { "status", N_STATUS }, { "control", N_CONTROL },
	{ "plugins", N_PLUGINS }, { "console", N_CONSOLE }, { "memory", N_MEMORY },
	{ "cpus", N_CPUS }, { "devices", N_DEVICES }, { "disks", N_DISKS },
	{ "snapshots", N_SNAPS }, { "screen.png", N_SCREEN },
};

static const struct { const char *name; enum node_kind kind; } dev_files[] = {
	{ "state", N_DEV_STATE }, { "state.bin", N_DEV_STATE_BIN },
	{ "properties", N_DEV_PROPS }, { "console", N_DEV_CONSOLE },
};

static struct fusefs *ctx_fs(void)
{
	return fuse_get_context()->private_data;
}

static bool is_dir_kind(enum node_kind k)
{
	return k == N_ROOT || k == N_CPUS || k == N_CPU_DIR || k == N_DEVICES ||
	       k == N_DEV_DIR || k == N_DISKS || k == N_SNAPS || k == N_SNAP_DIR;
}

static const char *snapshot_dir(struct machine *m)
{
	return m->snapshot_dir ? m->snapshot_dir : ".";
}

/* A snapshot is listed once complete: its manifest is written last. */
static bool snapshot_exists(struct machine *m, const char *name)
{
	char *p = xasprintf("%s/%s/manifest.json", snapshot_dir(m), name);
	struct stat st;
	bool ok = name[0] != '.' && stat(p, &st) == 0 && S_ISREG(st.st_mode);

	free(p);
	return ok;
}

/* The chardev whose front end is inst (the first it opened), or NULL.
 * Call with the machine lock held. */
static modvm_chardev *inst_chardev(struct machine *m, modvm_inst *inst)
{
	modvm_chardev *found = NULL;

	/* The list is newest first: the last match is the first opened. */
	for (modvm_chardev *c = m->chardevs; c; c = c->next)
		if (c->frontend == inst)
			found = c;
	return found;
}

/* The console: the chardev of the earliest device that has one. */
static modvm_chardev *first_console(struct machine *m)
{
	for (size_t i = 0; i < m->ninsts; i++) {
		modvm_chardev *c = inst_chardev(m, m->insts[i]);
		if (c)
			return c;
	}
	return NULL;
}

static bool has_console(struct machine *m, modvm_inst *inst)
{
	bool r;

	machine_lock(m);
	r = inst ? inst_chardev(m, inst) != NULL : first_console(m) != NULL;
	machine_unlock(m);
	return r;
}

static modvm_inst *find_inst(struct machine *m, const char *id)
{
	for (size_t i = 0; i < m->ninsts; i++)
		if (!strcmp(m->insts[i]->id, id))
			return m->insts[i];
	return NULL;
}

/* Strictly decimal, no sign, no leading zeros: "0", "1", ... */
static int parse_cpu(struct machine *m, const char *s, unsigned *out)
{
	unsigned long v;
	char *end;

	if (!*s || (s[0] == '0' && s[1]) || s[0] < '0' || s[0] > '9')
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v >= m->ncpus)
		return -1;
	*out = (unsigned)v;
	return 0;
}

/* Copy the next component of *path into out; returns its length, 0 at the
 * end, -1 if it is too long. */
static int next_component(const char **path, char *out)
{
	const char *p = *path, *e;
	size_t n;

	while (*p == '/')
		p++;
	e = strchrnul(p, '/');
	n = (size_t)(e - p);
	if (n > NAME_MAX)
		return -1;
	memcpy(out, p, n);
	out[n] = 0;
	*path = e;
	return (int)n;
}

static int resolve_root(struct fusefs *fs, const char *c, struct node *n)
{
	for (size_t i = 0; i < ARRAY_SIZE(root_files); i++) {
		if (!strcmp(c, root_files[i].name)) {
			n->kind = root_files[i].kind;
			if (n->kind == N_CONSOLE && !has_console(fs->m, NULL))
				return -ENOENT;
			if (n->kind == N_SCREEN && !display_present(fs->m))
				return -ENOENT;
			return 0;
		}
	}
	return -ENOENT;
}


/* Disk `device` as the block layer has it now (a snapshot may have moved
 * it onto an overlay); out may be NULL. */
static bool find_disk(struct machine *m, const char *device,
		      struct block_disk *out)
{
	struct block_disk d[MAX_DISKS];
	size_t n = block_disks(m, d, MAX_DISKS);

	for (size_t i = 0; i < n; i++)
		if (d[i].path && !strcmp(d[i].device, device)) {
			if (out)
				*out = d[i];
			return true;
		}
	return false;
}

static int resolve_child(struct fusefs *fs, const char *c, struct node *n)
{
	struct machine *m = fs->m;

	switch (n->kind) {
	case N_ROOT:
		return resolve_root(fs, c, n);
	case N_CPUS:
		if (parse_cpu(m, c, &n->cpu))
			return -ENOENT;
		n->kind = N_CPU_DIR;
		return 0;
	case N_CPU_DIR:
		if (!strcmp(c, "regs"))
			n->kind = N_CPU_REGS;
		else if (!strcmp(c, "state"))
			n->kind = N_CPU_STATE;
		else
			return -ENOENT;
		return 0;
	case N_DEVICES:
		n->inst = find_inst(m, c);
		if (!n->inst)
			return -ENOENT;
		n->kind = N_DEV_DIR;
		return 0;
	case N_DEV_DIR:
		for (size_t i = 0; i < ARRAY_SIZE(dev_files); i++) {
			if (strcmp(c, dev_files[i].name))
				continue;
			if (dev_files[i].kind == N_DEV_CONSOLE && !has_console(m, n->inst))
				return -ENOENT;
			n->kind = dev_files[i].kind;
			return 0;
		}
		return -ENOENT;
	case N_DISKS:
		if (!find_disk(fs->m, c, NULL))
			return -ENOENT;
		snprintf(n->file, sizeof(n->file), "%s", c);
		n->kind = N_DISK;
		return 0;
	case N_SNAPS:
		if (!snapshot_exists(m, c))
			return -ENOENT;
		snprintf(n->snap, sizeof(n->snap), "%s", c);
		n->kind = N_SNAP_DIR;
		return 0;
	case N_SNAP_DIR:
		if (c[0] == '.')
			return -ENOENT;
		snprintf(n->file, sizeof(n->file), "%s", c);
		n->kind = N_SNAP_FILE;
		return 0;
	default:
		return -ENOTDIR;
	}
}

static int resolve(struct fusefs *fs, const char *path, struct node *n)
{
	char comp[NAME_MAX + 1];
	int len, r;

	memset(n, 0, sizeof(*n));
	n->kind = N_ROOT;
	while ((len = next_component(&path, comp)) != 0) {
		if (len < 0)
			return -ENAMETOOLONG;
		r = resolve_child(fs, comp, n);
		if (r)
			return r;
	}
	return 0;
}

static char *snap_path(struct fusefs *fs, const struct node *n)
{
	if (n->kind == N_SNAP_FILE)
		return xasprintf("%s/%s/%s", snapshot_dir(fs->m), n->snap, n->file);
	return xasprintf("%s/%s", snapshot_dir(fs->m), n->snap);
}

/* ---- sizes and attributes ------------------------------------------------ */

/* The memory file spans guest physical addresses up to the top of RAM. */
static uint64_t memory_file_size(const struct vm_memory *mem)
{
	return mem->high_size ? VM_4G + mem->high_size : mem->low_size;
}

static uint64_t console_size(struct machine *m, modvm_inst *inst)
{
	modvm_chardev *c;
	uint64_t n = 0;

	machine_lock(m);
	c = inst ? inst_chardev(m, inst) : first_console(m);
	if (c)
		n = c->logged < CONSOLE_LOG_SIZE ? c->logged : CONSOLE_LOG_SIZE;
	machine_unlock(m);
	return n;
}

static int fs_getattr(const char *path, struct stat *st,
		      struct fuse_file_info *fi)
{
	struct fusefs *fs = ctx_fs();
	struct node n;
	int r = resolve(fs, path, &n);

	if (r)
		return r;
	memset(st, 0, sizeof(*st));
	st->st_uid = getuid();
	st->st_gid = getgid();
	st->st_nlink = 1;
	if (n.kind == N_SNAP_DIR || n.kind == N_SNAP_FILE) {
		char *p = snap_path(fs, &n);
		struct stat real;
		r = lstat(p, &real) ? -errno : 0;
		free(p);
		if (r)
			return r;
		/* A snapshot is one flat directory of regular files. */
		if (n.kind == N_SNAP_FILE ? !S_ISREG(real.st_mode) : !S_ISDIR(real.st_mode))
			return -ENOENT;
		/* Read-only copies: size and blocks as on disk, so cp keeps
		 * memory.img sparse. */
		st->st_mode = S_ISDIR(real.st_mode) ? S_IFDIR | 0755 : S_IFREG | 0444;
		st->st_size = real.st_size;
		st->st_blocks = real.st_blocks;
		st->st_mtim = real.st_mtim;
		st->st_ctim = real.st_ctim;
		st->st_atim = real.st_atim;
		return 0;
	}
	if (is_dir_kind(n.kind)) {
		st->st_mode = S_IFDIR | (n.kind == N_SNAPS ? 0755 : 0555);
		st->st_nlink = 2;
		return 0;
	}
	switch (n.kind) {
	case N_CONTROL:
		st->st_mode = S_IFREG | 0200;
		break;
	case N_MEMORY:
		st->st_mode = S_IFREG | 0600;
		st->st_size = (off_t)memory_file_size(&fs->m->mem);
		break;
	case N_CONFIG:
		st->st_mode = S_IFREG | 0444;
		st->st_size = fs->m->cfg && fs->m->cfg->text ?
			(off_t)strlen(fs->m->cfg->text) : 0;
		break;
	case N_CONSOLE:
	case N_DEV_CONSOLE:
		st->st_mode = S_IFREG | 0444;
		st->st_size = (off_t)console_size(fs->m, n.kind == N_CONSOLE ? NULL : n.inst);
		break;
	default:
		/* Rendered at open: the size is not known before (as in
		 * /proc), reads go to the end anyway (direct_io). */
		st->st_mode = S_IFREG | 0444;
		break;
	}
	return 0;
}

/* ---- directories --------------------------------------------------------- */

static void fill_snapshots(struct fusefs *fs, void *buf, fuse_fill_dir_t fill)
{
	DIR *d = opendir(snapshot_dir(fs->m));
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && snapshot_exists(fs->m, e->d_name))
			fill(buf, e->d_name, NULL, 0, 0);
	closedir(d);
}

static void fill_snapshot_files(struct fusefs *fs, const struct node *n,
				void *buf, fuse_fill_dir_t fill)
{
	char *p = snap_path(fs, n);
	DIR *d = opendir(p);
	struct dirent *e;

	free(p);
	if (!d)
		return;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && (e->d_type == DT_REG || e->d_type == DT_UNKNOWN))
			fill(buf, e->d_name, NULL, 0, 0);
	closedir(d);
}

static int fs_readdir(const char *path, void *buf, fuse_fill_dir_t fill,
		      off_t off, struct fuse_file_info *fi,
		      enum fuse_readdir_flags flags)
{
	struct fusefs *fs = ctx_fs();
	struct machine *m = fs->m;
	struct node n;
	char name[32];
	int r = resolve(fs, path, &n);

	if (r)
		return r;
	if (!is_dir_kind(n.kind))
		return -ENOTDIR;
	fill(buf, ".", NULL, 0, 0);
	fill(buf, "..", NULL, 0, 0);
	switch (n.kind) {
	case N_ROOT:
		for (size_t i = 0; i < ARRAY_SIZE(root_files); i++)
			if ((root_files[i].kind != N_CONSOLE || has_console(m, NULL)) &&
			    (root_files[i].kind != N_SCREEN || display_present(m)))
				fill(buf, root_files[i].name, NULL, 0, 0);
		break;
	case N_CPUS:
		for (unsigned i = 0; i < m->ncpus; i++) {
			snprintf(name, sizeof(name), "%u", i);
			fill(buf, name, NULL, 0, 0);
		}
		break;
	case N_CPU_DIR:
		fill(buf, "regs", NULL, 0, 0);
		fill(buf, "state", NULL, 0, 0);
		break;
	case N_DEVICES:
		for (size_t i = 0; i < m->ninsts; i++)
			fill(buf, m->insts[i]->id, NULL, 0, 0);
		break;
	case N_DEV_DIR:
		for (size_t i = 0; i < ARRAY_SIZE(dev_files); i++)
			if (dev_files[i].kind != N_DEV_CONSOLE || has_console(m, n.inst))
				fill(buf, dev_files[i].name, NULL, 0, 0);
		break;
	case N_SNAPS:
		fill_snapshots(fs, buf, fill);
		break;
	case N_SNAP_DIR:
		fill_snapshot_files(fs, &n, buf, fill);
		break;
	case N_DISKS: {
		struct block_disk d[MAX_DISKS];
		size_t nd = block_disks(m, d, MAX_DISKS);
		for (size_t i = 0; i < nd; i++)
			if (d[i].path)
				fill(buf, d[i].device, NULL, 0, 0);
		break;
	}
	default:
		break;
	}
	return 0;
}

/* ---- rendering ----------------------------------------------------------- */

/* What an open file reads: a rendered copy, guest RAM, or a real file. */
struct handle {
	enum node_kind kind;
	struct strbuf data; /* rendered files */
	int fd;             /* snapshot files */
	struct handle *next, **pprev;
};

static void handle_free(struct handle *h)
{
	if (h->pprev) {
		*h->pprev = h->next;
		if (h->next)
			h->next->pprev = h->pprev;
	}
	if (h->fd >= 0)
		close(h->fd);
	sb_free(&h->data);
	free(h);
}

static void render_status(struct machine *m, struct strbuf *b)
{
	const struct vm_config *c = m->cfg;
	const char *state;

	/* "starting": mounted, vCPU threads not (yet, or after a reset not
	 * again) running; pause and snapshots wait for "running". */
	state = machine_is_paused(m) ? "paused" :
		machine_is_started(m) ? "running" : "starting";
	sb_printf(b, "status = %s\n", state);
	sb_printf(b, "name = %s\n", c ? c->name : "");
	sb_printf(b, "engine = %s\n", c ? c->engine : "");
	sb_printf(b, "model = %s\n", c ? c->model : "");
	sb_printf(b, "cpus = %u\n", m->ncpus);
	sb_printf(b, "memory = %llu\n", (unsigned long long)m->mem.size);
	sb_printf(b, "virtual-ns = %llu\n", (unsigned long long)vclock_now(&m->clock));
}

/* Before the vCPU threads start (just after mounting) nothing runs the
 * vCPUs, and none can start while pause_lock is held (run.c sets
 * vcpu_threads under it first): copy the state right away. Returns 1 if
 * the threads are running and the VM must be paused instead. */
static int read_cpu_idle(struct machine *m, unsigned cpu,
			 struct modvm_cpu_state *s)
{
	int r = 1;

	pthread_mutex_lock(&m->pause_lock);
	if (!m->vcpu_threads) {
		memset(s, 0, sizeof(*s));
		r = m->eops->get_state(m->vcpus[cpu], s) ? -EIO : 0;
	}
	pthread_mutex_unlock(&m->pause_lock);
	return r;
}

/* Pause if running, copy the vCPU's state, resume: the copy is taken at an
 * instruction boundary and the guest stops only for the copy. */
static int read_cpu(struct machine *m, unsigned cpu, struct modvm_cpu_state *s)
{
	int r;

	if (!m->eops || cpu >= m->ncpus)
		return -ENODEV;
	r = read_cpu_idle(m, cpu, s);
	if (r <= 0)
		return r;
	r = 0;
	if (machine_hold(m))
		return -EAGAIN; /* the threads stopped since: retry */
	memset(s, 0, sizeof(*s));
	if (m->eops->get_state(m->vcpus[cpu], s))
		r = -EIO;
	machine_release(m);
	return r;
}

static int render_cpu(struct machine *m, const struct node *n, struct strbuf *b)
{
	struct modvm_cpu_state *s = xcalloc(1, sizeof(*s));
	int r = read_cpu(m, n->cpu, s);

	if (!r && n->kind == N_CPU_REGS)
		state_render(&cpu_state_section, s, b);
	else if (!r)
		state_save(&cpu_state_section, s, b);
	free(s);
	return r;
}

/* Device state under the machine lock: device callbacks hold it, so the
 * sections are read between two accesses, never half-way through one. */
static void render_device(struct machine *m, modvm_inst *inst, bool binary,
			  struct strbuf *b)
{
	const struct modvm_plugin_desc *d = inst->plugin->desc;

	machine_lock(m);
	for (int k = 0; d->state && d->state[k]; k++) {
		const struct modvm_state_section *s = d->state[k];
		if (binary) {
			state_save(s, inst->obj, b); /* runs pre_save */
			continue;
		}
		if (s->pre_save)
			s->pre_save(inst->obj);
		sb_printf(b, "[%s] version %u\n", s->name, s->version);
		state_render(s, inst->obj, b);
	}
	machine_unlock(m);
}

static void render_props(const struct resolved_props *rp, const char *prefix,
			 struct strbuf *b)
{
	for (size_t i = 0; rp && i < rp->n; i++)
		sb_printf(b, "%s%s = %s\n", prefix, rp->vals[i].desc->name,
			  rp->vals[i].s ? rp->vals[i].s : "");
}

/* The device's properties, then its backends' as PLUGIN.NAME (PROPERTY.NAME
 * for a device with several backends, which may be the same plugin). */
static void render_properties(modvm_inst *inst, struct strbuf *b)
{
	render_props(inst->props, "", b);
	for (size_t i = 0; inst->cfg && i < inst->cfg->nbackends; i++) {
		const struct resolved_props *rp = &inst->cfg->backends[i];
		char *pre = xasprintf("%s.", inst->cfg->nbackends > 1 ? rp->backend_of
							      : rp->plugin->desc->name);
		render_props(rp, pre, b);
		free(pre);
	}
}

static void render_console(struct machine *m, modvm_inst *inst,
			   struct strbuf *b)
{
	modvm_chardev *c;

	machine_lock(m);
	c = inst ? inst_chardev(m, inst) : first_console(m);
	if (c) {
		uint64_t from = c->logged > CONSOLE_LOG_SIZE ? c->logged - CONSOLE_LOG_SIZE : 0;
		size_t n = (size_t)(c->logged - from);
		uint8_t *tmp = xmalloc(n ? n : 1);
		n = chardev_log_read(c, from, tmp, n);
		sb_append(b, tmp, n);
		free(tmp);
	}
	machine_unlock(m);
}

static void render_plugins(struct machine *m, struct strbuf *b)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return;
	if (m->reg)
		print_plugins(m->reg, f);
	fclose(f);
	sb_append(b, text, len);
	free(text);
}

/* Where disk `device`'s content is now. The path strings belong to the
 * block layer; snapshots swap disks under the machine lock. */
static int render_disk(struct machine *m, const char *device, struct strbuf *b)
{
	struct block_disk d;
	int r = -ENOENT;

	machine_lock(m);
	if (find_disk(m, device, &d)) {
		sb_printf(b, "path = %s\nformat = %s\nreadonly = %s\noverlay = %s\n",
			  d.path, d.format ? d.format : "other",
			  d.readonly ? "true" : "false", d.on_overlay ? "true" : "false");
		r = 0;
	}
	machine_unlock(m);
	return r;
}

static int render(struct fusefs *fs, const struct node *n, struct strbuf *b)
{
	struct machine *m = fs->m;

	switch (n->kind) {
	case N_CONFIG:
		if (m->cfg && m->cfg->text)
			sb_append(b, m->cfg->text, strlen(m->cfg->text));
		return 0;
	case N_STATUS:
		render_status(m, b);
		return 0;
	case N_PLUGINS:
		render_plugins(m, b);
		return 0;
	case N_CONSOLE:
		render_console(m, NULL, b);
		return 0;
	case N_DEV_CONSOLE:
		render_console(m, n->inst, b);
		return 0;
	case N_CPU_REGS:
	case N_CPU_STATE:
		return render_cpu(m, n, b);
	case N_DEV_STATE:
	case N_DEV_STATE_BIN:
		render_device(m, n->inst, n->kind == N_DEV_STATE_BIN, b);
		return 0;
	case N_DEV_PROPS:
		render_properties(n->inst, b);
		return 0;
	case N_DISK:
		return render_disk(m, n->file, b);
	case N_SCREEN: {
		/* The picture as it is at open; nothing shown: no data. */
		char err[ERR_LEN];
		return display_png(m, b, err, sizeof(err)) ? -ENODATA : 0;
	}
	default:
		return -EISDIR;
	}
}

/* ---- files --------------------------------------------------------------- */

static int open_snapshot_file(struct fusefs *fs, const struct node *n,
			      struct handle *h, int flags)
{
	char *p = snap_path(fs, n);
	struct stat st;

	if ((flags & O_ACCMODE) != O_RDONLY) {
		free(p);
		return -EROFS;
	}
	h->fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK); /* a FIFO must not block */
	free(p);
	if (h->fd < 0)
		return -errno;
	if (fstat(h->fd, &st) || !S_ISREG(st.st_mode)) {
		close(h->fd);
		h->fd = -1;
		return -EISDIR;
	}
	return 0;
}

static int check_access(enum node_kind k, int flags)
{
	int acc = flags & O_ACCMODE;

	if (k == N_CONTROL)
		return acc == O_WRONLY ? 0 : -EACCES;
	if (k == N_MEMORY)
		return 0;
	return acc == O_RDONLY ? 0 : -EACCES;
}

static int fs_open(const char *path, struct fuse_file_info *fi)
{
	struct fusefs *fs = ctx_fs();
	struct handle *h;
	struct node n;
	int r = resolve(fs, path, &n);

	if (r)
		return r;
	if (is_dir_kind(n.kind))
		return -EISDIR;
	h = xcalloc(1, sizeof(*h));
	h->kind = n.kind;
	h->fd = -1;
	sb_init(&h->data);
	if (n.kind == N_SNAP_FILE) {
		r = open_snapshot_file(fs, &n, h, fi->flags);
	} else {
		r = check_access(n.kind, fi->flags);
		if (!r && n.kind != N_CONTROL && n.kind != N_MEMORY)
			r = render(fs, &n, &h->data);
		/* Never the page cache: every open sees the VM as it is. */
		fi->direct_io = 1;
		fi->nonseekable = 0;
	}
	if (r) {
		handle_free(h);
		return r;
	}
	/* Every request runs on the one filesystem thread: no lock. */
	h->next = fs->handles;
	if (h->next)
		h->next->pprev = &h->next;
	h->pprev = &fs->handles;
	fs->handles = h;
	fi->fh = (uint64_t)(uintptr_t)h;
	return 0;
}

static int fs_release(const char *path, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;

	if (h)
		handle_free(h);
	return 0;
}

/* Guest RAM at its physical addresses; the PCI hole reads as zeros. A
 * running guest may change RAM during the copy (docs/fuse.md). */
static int read_memory(struct machine *m, char *buf, size_t size, off_t off)
{
	uint64_t end = memory_file_size(&m->mem), pos = (uint64_t)off;
	size_t done = 0;

	if (off < 0)
		return -EINVAL;
	if (pos >= end)
		return 0;
	if (size > end - pos)
		size = (size_t)(end - pos);
	while (done < size) {
		uint64_t gpa = pos + done, chunk;
		if (gpa < m->mem.low_size)
			chunk = m->mem.low_size - gpa;
		else if (gpa < VM_4G)
			chunk = VM_4G - gpa;
		else
			chunk = end - gpa;
		if (chunk > size - done)
			chunk = size - done;
		void *p = vm_memory_ptr(&m->mem, gpa, chunk);
		if (p)
			memcpy(buf + done, p, chunk);
		else
			memset(buf + done, 0, chunk);
		done += chunk;
	}
	return (int)done;
}

/* Writes only while paused: pause_lock is held across the check and the
 * copy so nothing resumes the guest half-way through. All-or-nothing:
 * a write that touches the hole or the end writes nothing. */
static int write_memory(struct machine *m, const char *buf, size_t size,
			off_t off)
{
	uint64_t end = memory_file_size(&m->mem);
	void *p;
	int r;

	if (off < 0)
		return -EINVAL;
	pthread_mutex_lock(&m->pause_lock);
	if (!m->user_paused) {
		r = -EBUSY;
	} else if ((uint64_t)off >= end || size > end - (uint64_t)off) {
		r = -EFBIG;
	} else if (!(p = vm_memory_ptr(&m->mem, (uint64_t)off, size))) {
		r = -ENXIO;
	} else {
		memcpy(p, buf, size);
		machine_mem_written(m, (uint64_t)off, size);
		r = (int)size;
	}
	pthread_mutex_unlock(&m->pause_lock);
	return r;
}

static int fs_read(const char *path, char *buf, size_t size, off_t off,
		   struct fuse_file_info *fi)
{
	struct fusefs *fs = ctx_fs();
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	ssize_t n;

	if (!h || off < 0)
		return -EINVAL;
	if (h->kind == N_MEMORY)
		return read_memory(fs->m, buf, size, off);
	if (h->kind == N_SNAP_FILE) {
		n = pread(h->fd, buf, size, off);
		return n < 0 ? -errno : (int)n;
	}
	if ((uint64_t)off >= h->data.len)
		return 0;
	if (size > h->data.len - (size_t)off)
		size = h->data.len - (size_t)off;
	memcpy(buf, h->data.s + off, size);
	return (int)size;
}

/* ---- control ------------------------------------------------------------- */

static int take_snapshot(struct machine *m, const char *name)
{
	char err[ERR_LEN], *dir;
	int r;

	if (!name[0] || name[0] == '.' || strchr(name, '/') || strlen(name) > NAME_MAX)
		return -EINVAL;
	if (!m->eops)
		return -ENODEV;
	dir = xasprintf("%s/%s", snapshot_dir(m), name);
	if (access(dir, F_OK) == 0) {
		free(dir);
		return -EEXIST;
	}
	if (machine_hold(m)) {
		free(dir);
		return -EAGAIN;
	}
	machine_lock(m);
	r = snapshot_save(m, dir, 0, NULL, err, sizeof(err));
	machine_unlock(m);
	machine_release(m);
	if (r)
		fprintf(stderr, "modvm: snapshot %s: %s (the VM continues)\r\n", name, err);
	else
		machine_log(m, MODVM_LOG_INFO, "snapshot written to %s", dir);
	free(dir);
	return r ? -EIO : 0;
}

/* One command per write: "pause", "resume", "quit", "snapshot NAME",
 * with surrounding white space (echo adds a newline) ignored. */
static int control_command(struct machine *m, const char *buf, size_t size)
{
	char cmd[NAME_MAX + 16];
	char *s, *e;

	if (size >= sizeof(cmd))
		return -EINVAL;
	memcpy(cmd, buf, size);
	cmd[size] = 0;
	if (memchr(cmd, 0, size))
		return -EINVAL;
	for (s = cmd; *s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'; s++)
		;
	for (e = s + strlen(s); e > s && (e[-1] == ' ' || e[-1] == '\t' ||
					  e[-1] == '\n' || e[-1] == '\r'); e--)
		;
	*e = 0;
	if (!strcmp(s, "pause"))
		return machine_pause(m) ? -EAGAIN : 0;
	if (!strcmp(s, "resume")) {
		machine_resume(m);
		return 0;
	}
	if (!strcmp(s, "quit")) {
		machine_request(m, REQUEST_QUIT);
		return 0;
	}
	if (!strncmp(s, "snapshot", 8) && (s[8] == ' ' || s[8] == '\t')) {
		for (s += 9; *s == ' ' || *s == '\t'; s++)
			;
		return take_snapshot(m, s);
	}
	return -EINVAL;
}

static int fs_write(const char *path, const char *buf, size_t size,
		    off_t off, struct fuse_file_info *fi)
{
	struct fusefs *fs = ctx_fs();
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	int r;

	if (!h)
		return -EINVAL;
	if (h->kind == N_MEMORY)
		return write_memory(fs->m, buf, size, off);
	if (h->kind != N_CONTROL)
		return -EACCES;
	r = control_command(fs->m, buf, size);
	return r ? r : (int)size;
}

/* `echo pause > control` opens with O_TRUNC: allow it there (and on
 * memory, where it changes nothing: RAM cannot shrink). */
static int fs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	struct fusefs *fs = ctx_fs();
	struct node n;
	int r = resolve(fs, path, &n);

	if (r)
		return r;
	if (n.kind == N_CONTROL)
		return 0;
	if (n.kind == N_MEMORY)
		return (uint64_t)size == memory_file_size(&fs->m->mem) ? 0 : -EPERM;
	if (n.kind == N_SNAP_FILE || n.kind == N_SNAP_DIR)
		return -EROFS;
	return -EACCES;
}

static off_t fs_lseek(const char *path, off_t off, int whence,
		      struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	off_t r;

	/* Only snapshot files have holes worth finding (memory.img). */
	if (!h || h->kind != N_SNAP_FILE)
		return -EINVAL;
	r = lseek(h->fd, off, whence);
	return r < 0 ? -errno : r;
}

/* ---- snapshots/ ---------------------------------------------------------- */

static int fs_mkdir(const char *path, mode_t mode)
{
	struct fusefs *fs = ctx_fs();
	const char *name = strrchr(path, '/');
	struct node n;
	int r;

	if (!name || strncmp(path, "/snapshots/", 11) || name != path + 10)
		return -EPERM;
	r = resolve(fs, path, &n);
	if (r == 0)
		return -EEXIST;
	if (r != -ENOENT)
		return r;
	return take_snapshot(fs->m, name + 1);
}

/* rmdir snapshots/NAME deletes a snapshot modvm wrote: the files its
 * manifest lists and nothing else (snapshot_delete; docs/fuse.md). */
static int fs_rmdir(const char *path)
{
	struct fusefs *fs = ctx_fs();
	struct node n;
	char *dir;
	int r = resolve(fs, path, &n);

	if (r)
		return r;
	if (n.kind != N_SNAP_DIR)
		return -EPERM;
	dir = snap_path(fs, &n);
	r = snapshot_delete(dir);
	free(dir);
	return r;
}

static int fs_unlink(const char *path)
{
	struct node n;
	int r = resolve(ctx_fs(), path, &n);

	if (r)
		return r;
	return n.kind == N_SNAP_FILE ? -EROFS : -EPERM;
}

static void *fs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	/* The VM changes under the kernel's feet: cache nothing. */
	cfg->entry_timeout = 0;
	cfg->attr_timeout = 0;
	cfg->negative_timeout = 0;
	return ctx_fs();
}

static const struct fuse_operations fs_ops = {
	.init = fs_init,
	.getattr = fs_getattr,
	.readdir = fs_readdir,
	.open = fs_open,
	.release = fs_release,
	.read = fs_read,
	.write = fs_write,
	.truncate = fs_truncate,
	.lseek = fs_lseek,
	.mkdir = fs_mkdir,
	.rmdir = fs_rmdir,
	.unlink = fs_unlink,
};

/* ---- mounting ------------------------------------------------------------ */

/* Undo mountinfo's octal escapes (\040 for a space, ...) in place. */
static void unescape_mountinfo(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] >= '0' &&
		    s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)(((s[1] - '0') << 6) | ((s[2] - '0') << 3) | (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = 0;
}

/* The file system type mounted at path ("fuse.modvm"), or NULL. The last
 * line for the path is the mount on top. */
static char *mount_type_at(const char *path)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL, *type = NULL;
	size_t cap = 0;

	if (!f)
		return NULL;
	while (getline(&line, &cap, f) > 0) {
		char *save = NULL, *mp = NULL, *tok, *dash = strstr(line, " - ");
		int i = 0;
		if (!dash)
			continue;
		*dash = 0;
		for (tok = strtok_r(line, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
			if (++i == 5)
				mp = tok;
		if (!mp)
			continue;
		unescape_mountinfo(mp);
		if (strcmp(mp, path))
			continue;
		tok = strtok_r(dash + 3, " ", &save);
		free(type);
		type = tok ? xstrdup(tok) : NULL;
	}
	free(line);
	fclose(f);
	return type;
}

/* An absolute path for dir without touching dir itself (a stale mount
 * cannot be stat'ed): the parent resolved, the last component kept. */
static char *canonical_dir(const char *dir)
{
	char *copy = xstrdup(dir), *slash, *parent, *r;
	size_t n = strlen(copy);

	while (n > 1 && copy[n - 1] == '/')
		copy[--n] = 0;
	slash = strrchr(copy, '/');
	const char *base = slash ? slash + 1 : copy;
	if (!strcmp(base, ".") || !strcmp(base, "..") || !*base) {
		r = realpath(copy, NULL);
		free(copy);
		return r;
	}
	if (slash == copy)
		parent = realpath("/", NULL);
	else if (slash) {
		*slash = 0;
		parent = realpath(copy, NULL);
	} else {
		parent = realpath(".", NULL);
	}
	r = parent ? xasprintf("%s/%s", strcmp(parent, "/") ? parent : "", base) : NULL;
	free(parent);
	free(copy);
	return r;
}

static int run_fusermount_u(const char *dir)
{
	char *argv[] = { "fusermount3", "-u", "-z", (char *)dir, NULL };
	int status;
	pid_t pid;

	if (posix_spawnp(&pid, "fusermount3", NULL, NULL, argv, environ))
		return -1;
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* Refuse a mount point in use; clear a stale modvm mount (ENOTCONN: the
 * modvm that served it died without unmounting). */
static int check_mountpoint(const char *dir, const char *abs,
			    const char *what, char *err, size_t len)
{
	struct stat st;
	char *type;
	int r = 0;

	if (stat(dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			return set_err(err, len, "%s %s: not a directory", what, dir);
		type = mount_type_at(abs);
		if (type && !strcmp(type, FS_TYPE))
			r = set_err(err, len, "%s %s: another running modvm is mounted there", what, dir);
		free(type);
		return r;
	}
	if (errno != ENOTCONN)
		return set_err(err, len, "%s %s: %s", what, dir, strerror(errno));
	type = mount_type_at(abs);
	if (!type || strcmp(type, FS_TYPE)) {
		r = set_err(err, len, "%s %s is a stale FUSE mount (type %s) of another program: run `fusermount3 -u %s`",
			    what, dir, type ? type : "unknown", dir);
	} else if (run_fusermount_u(abs)) {
		r = set_err(err, len, "%s is a stale modvm mount from a run that crashed, and fusermount3 -u could not remove it: run `fusermount3 -u %s`",
			    dir, dir);
	} else {
		fprintf(stderr, "modvm: %s was a stale modvm mount from a run that crashed: unmounted it (fusermount3 -u)\n",
			dir);
	}
	free(type);
	return r;
}

/* Snapshots written into the mount itself would wait on the thread that
 * is writing them. */
static int check_snapshot_dir(struct machine *m, const char *abs,
			      const char *what, char *err, size_t len)
{
	const char *dir = snapshot_dir(m);
	char *snap = canonical_dir(dir), *cwd;
	size_t n = strlen(abs);

	/* Not there yet (it may be meant inside the mount): judge the
	 * path as written. */
	if (!snap && dir[0] == '/') {
		snap = xstrdup(dir);
	} else if (!snap && (cwd = getcwd(NULL, 0))) {
		snap = xasprintf("%s/%s", cwd, dir);
		free(cwd);
	}
	int r = 0;

	if (snap && !strncmp(snap, abs, n) && (snap[n] == '/' || !snap[n]))
		r = set_err(err, len, "--snapshot-dir %s is inside %s %s: choose a directory outside it",
			    dir, what, abs);
	free(snap);
	return r;
}

static void *fs_main(void *arg)
{
	struct fusefs *fs = arg;
	struct fuse_buf buf = { 0 };
	int fd = fuse_session_fd(fs->se);

	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = fs->wake[0], .events = POLLIN },
			{ .fd = fd, .events = POLLIN },
		};
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[0].revents)
			break;
		int r = fuse_session_receive_buf(fs->se, &buf);
		if (r == -EINTR || r == -EAGAIN)
			continue;
		if (r <= 0) {
			/* Unmounted from outside (fusermount3 -u): the VM
			 * keeps running without its files. */
			machine_log(fs->m, MODVM_LOG_WARN, "%s was unmounted", fs->dir);
			break;
		}
		fuse_session_process_buf(fs->se, &buf);
		if (fuse_session_exited(fs->se))
			break;
	}
	free(buf.mem);
	__atomic_store_n(&fs->ended, true, __ATOMIC_RELEASE);
	return NULL;
}

static struct machine *wanted_machine;
static const char *wanted_dir;

void fusefs_want_mount(struct machine *m, const char *dir)
{
	wanted_machine = m;
	wanted_dir = dir;
}

/* Mount options: the type shows as fuse.modvm (stale-mount detection
 * relies on it); auto_unmount lets fusermount3 unmount after a crash,
 * unless MODVM_FUSE_NO_AUTO_UNMOUNT is set (tests of the stale case). */
static struct fuse *new_fuse(struct fusefs *fs)
{
	const char *no_auto = getenv("MODVM_FUSE_NO_AUTO_UNMOUNT");
	bool auto_unmount = !no_auto || !*no_auto;
	char *opts = xasprintf("fsname=modvm,subtype=modvm%s",
			       auto_unmount ? ",auto_unmount" : "");
	char *argv[] = { "modvm", "-o", opts, NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, argv);
	struct fuse *f = fuse_new(&args, &fs_ops, sizeof(fs_ops), fs);

	fuse_opt_free_args(&args);
	free(opts);
	return f;
}

/* ---- unmounting under the sandbox ---------------------------------------- */

#define MAX_SCAN_FDS 64

/* An unnamed Unix stream socket with an unnamed peer: one end of a
 * socketpair(2). */
static bool is_socketpair_end(int fd)
{
	struct sockaddr_un a;
	socklen_t n = sizeof(a);
	int type = 0;
	socklen_t tn = sizeof(type);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tn) || type != SOCK_STREAM)
		return false;
	if (getsockname(fd, (struct sockaddr *)&a, &n) || a.sun_family != AF_UNIX ||
	    n != sizeof(sa_family_t))
		return false;
	n = sizeof(a);
	return !getpeername(fd, (struct sockaddr *)&a, &n) && n == sizeof(sa_family_t);
}

/* The socketpair ends among this process's open descriptors, up to max. */
static int socketpair_fds(int *fds, int max)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)) && n < max) {
		char *end;
		long fd = strtol(e->d_name, &end, 10);
		if (*end || end == e->d_name || fd == dirfd(d))
			continue;
		if (is_socketpair_end((int)fd))
			fds[n++] = (int)fd;
	}
	closedir(d);
	return n;
}

/* With auto_unmount, libfuse starts `fusermount3 --auto-unmount` and
 * leaves this process one end of a socketpair it keeps no handle on:
 * fusermount3 unmounts when that socket closes. fusermount3 was started
 * before the sandbox, so it may unmount when modvm may not (Landlock
 * forbids umount(2), seccomp forbids a new process). The socket is the one
 * socketpair end that fuse_mount added; if that is not exactly one, modvm
 * keeps none and fusermount3 unmounts at exit as before. */
static int find_helper_socket(const int *before, int n_before)
{
	int after[MAX_SCAN_FDS], n = socketpair_fds(after, MAX_SCAN_FDS), found = -1;

	for (int i = 0; i < n; i++) {
		bool old = false;
		for (int j = 0; j < n_before && !old; j++)
			old = after[i] == before[j];
		if (old)
			continue;
		if (found >= 0)
			return -1;
		found = after[i];
	}
	/* A process modvm starts later must not keep the mount alive. */
	if (found >= 0)
		fcntl(found, F_SETFD, FD_CLOEXEC);
	return found;
}

/* Close the helper socket and wait (up to 5 s) until fusermount3 has
 * unmounted fs->dir, so that whoever started modvm finds the directory
 * plain again when modvm exits. */
static void unmount_by_helper(struct fusefs *fs)
{
	struct timespec tick = { 0, 10 * 1000 * 1000 };
	char *type = NULL;

	close(fs->helper);
	fs->helper = -1;
	for (int i = 0; i < 500; i++) {
		type = mount_type_at(fs->dir);
		if (!type || strcmp(type, FS_TYPE))
			break;
		free(type);
		type = NULL;
		nanosleep(&tick, NULL);
	}
	if (type)
		fprintf(stderr, "modvm: %s: fusermount3 has not unmounted it after 5 s; it does when modvm exits, or run `fusermount3 -u %s`\n",
			fs->dir, fs->dir);
	free(type);
}

static void fusefs_free(struct fusefs *fs)
{
	/* Under the sandbox modvm may not unmount (no umount(2) under
	 * Landlock; without root, no new fusermount3 -u): the fusermount3
	 * that mounted with auto_unmount unmounts once the connection is
	 * closed (fuse_destroy) and its socket too (docs/sandbox.md). */
	bool by_helper = fs->mounted && sandbox_unmount_needs_helper();

	if (fs->mounted && !by_helper)
		fuse_unmount(fs->fuse);
	while (fs->handles)
		handle_free(fs->handles);
	if (fs->fuse)
		fuse_destroy(fs->fuse);
	if (by_helper && fs->helper >= 0)
		unmount_by_helper(fs);
	else if (fs->helper >= 0)
		close(fs->helper); /* unmounted: fusermount3 may exit */
	for (int i = 0; i < 2; i++)
		if (fs->wake[i] >= 0)
			close(fs->wake[i]);
	free(fs->dir);
	free(fs);
}

static int start_thread(struct fusefs *fs)
{
	if (pthread_create(&fs->thread, NULL, fs_main, fs))
		return -1;
	fs->thread_running = true;
	pthread_setname_np(fs->thread, "modvm-fuse");
	return 0;
}

/* Mount m's tree on dir. `what` names the request in messages ("--mount"
 * or "mount"); serve: start its thread now (else fusefs_serve does). */
static int mount_at(struct machine *m, const char *dir, const char *what,
		    bool serve, struct fusefs **out, char *err, size_t len)
{
	struct fusefs *fs;
	char *abs;

	abs = canonical_dir(dir);
	if (!abs)
		return set_err(err, len, "%s %s: %s", what, dir, strerror(errno));
	if (check_mountpoint(dir, abs, what, err, len) ||
	    check_snapshot_dir(m, abs, what, err, len)) {
		free(abs);
		return -1;
	}
	fs = xcalloc(1, sizeof(*fs));
	fs->m = m;
	fs->dir = abs;
	fs->wake[0] = fs->wake[1] = -1;
	fs->helper = -1;
	if (pipe2(fs->wake, O_CLOEXEC)) {
		set_err(err, len, "%s: %s", what, strerror(errno));
		goto fail;
	}
	fs->fuse = new_fuse(fs);
	if (!fs->fuse) {
		set_err(err, len, "%s %s: libfuse refused its options", what, dir);
		goto fail;
	}
	int before[MAX_SCAN_FDS], n_before = socketpair_fds(before, MAX_SCAN_FDS);
	if (fuse_mount(fs->fuse, abs)) {
		set_err(err, len, "%s %s: mounting failed (is /dev/fuse there, and fusermount3 installed?)",
			what, dir);
		goto fail;
	}
	fs->mounted = true;
	if (n_before >= 0 && n_before < MAX_SCAN_FDS)
		fs->helper = find_helper_socket(before, n_before);
	fs->se = fuse_get_session(fs->fuse);
	if (serve && start_thread(fs)) {
		set_err(err, len, "%s: cannot start the filesystem thread", what);
		goto fail;
	}
	*out = fs;
	return 0;
fail:
	fusefs_free(fs);
	return -1;
}

int fusefs_start(struct machine *m, struct fusefs **out, char *err,
		 size_t len)
{
	*out = NULL;
	if (wanted_machine != m || !wanted_dir)
		return 0;
	wanted_machine = NULL; /* one mount per request */
	return mount_at(m, wanted_dir, "--mount", false, out, err, len);
}

void fusefs_serve(struct fusefs *fs)
{
	/* Until the thread runs, requests wait in the kernel. */
	if (fs && !fs->thread_running && start_thread(fs))
		fprintf(stderr, "modvm: %s: cannot start the filesystem thread; the files will not answer\n",
			fs->dir);
}

void fusefs_stop(struct fusefs *fs)
{
	if (!fs)
		return;
	if (fs->thread_running) {
		if (write(fs->wake[1], "x", 1) < 0) {
			/* one byte into an empty pipe cannot fail */
		}
		pthread_join(fs->thread, NULL);
	}
	fusefs_free(fs);
}

/* ---- mounts made while the VM runs (control socket) ---------------------- */

/* The control thread is the only caller, but exit paths may race with it. */
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fusefs *live;

/* Mounts that fusermount3 -u ended from outside are forgotten. */
static void prune_ended_locked(void)
{
	for (struct fusefs **pp = &live; *pp;) {
		struct fusefs *fs = *pp;
		if (__atomic_load_n(&fs->ended, __ATOMIC_ACQUIRE)) {
			*pp = fs->next;
			fs->mounted = false; /* the kernel side is gone already */
			fusefs_stop(fs);
		} else {
			pp = &fs->next;
		}
	}
}

static int check_empty(const char *dir, char *err, size_t len)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int r = 0;

	if (!d)
		return set_err(err, len, "mount %s: %s", dir, strerror(errno));
	while ((e = readdir(d)) && !r)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			r = set_err(err, len, "mount %s: the directory is not empty (the mount would hide its files): use an empty directory",
				    dir);
	closedir(d);
	return r;
}

int fusefs_mount(struct machine *m, const char *dir, char *err, size_t len)
{
	struct fusefs *fs;
	char *abs;
	int r = -1;

	if (dir[0] != '/')
		return set_err(err, len, "mount %s: the path must be absolute", dir);
	pthread_mutex_lock(&live_lock);
	prune_ended_locked();
	abs = canonical_dir(dir);
	for (fs = live; fs && abs; fs = fs->next)
		if (!strcmp(fs->dir, abs)) {
			set_err(err, len, "mount %s: this VM is mounted there already", dir);
			goto out;
		}
	if (check_empty(dir, err, len) || mount_at(m, dir, "mount", true, &fs, err, len))
		goto out;
	fs->next = live;
	live = fs;
	machine_log(m, MODVM_LOG_INFO, "mounted on %s", fs->dir);
	r = 0;
out:
	pthread_mutex_unlock(&live_lock);
	free(abs);
	return r;
}

int fusefs_unmount(struct machine *m, const char *dir, char *err, size_t len)
{
	char *abs = canonical_dir(dir);
	struct fusefs *fs = NULL;

	(void)m;
	pthread_mutex_lock(&live_lock);
	prune_ended_locked();
	for (struct fusefs **pp = &live; *pp && abs; pp = &(*pp)->next)
		if (!strcmp((*pp)->dir, abs)) {
			fs = *pp;
			*pp = fs->next;
			break;
		}
	pthread_mutex_unlock(&live_lock);
	free(abs);
	if (!fs)
		return set_err(err, len, "umount %s: this VM is not mounted there (only mounts made with `modvm mount` can be unmounted this way; use fusermount3 -u)",
			       dir);
	fusefs_stop(fs);
	return 0;
}

void fusefs_unmount_all(void)
{
	pthread_mutex_lock(&live_lock);
	while (live) {
		struct fusefs *fs = live;
		live = fs->next;
		if (__atomic_load_n(&fs->ended, __ATOMIC_ACQUIRE))
			fs->mounted = false;
		fusefs_stop(fs);
	}
	pthread_mutex_unlock(&live_lock);
}
