/* The block_* host services: a disk front end (virtio-blk) opens the
 * block backend plugin its config names, and snapshots move a running
 * disk onto an overlay image over the frozen one (block_freeze_*,
 * docs/snapshot-format.md, "Disks"), or resume on one (block_resume_on). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <modvm/block.h>

#include "block.h"
#include "machine.h"
#include "propval.h"
#include "registry.h"
#include "snapshot.h"

/* An open backend behind a front end's struct modvm_block. Snapshots swap
 * the backend behind pub (the front end keeps its pointer) for a qcow2
 * overlay on top of the frozen image: docs/snapshot-format.md, "Disks". */
struct core_block {
	struct modvm_block pub;
	modvm_inst *be_inst;
	modvm_inst *owner;
	struct resolved_props *own_props; /* synthesized (overlays), else NULL */
	struct core_block *pending;       /* prepared overlay (block_freeze_*) */
	char *created;                    /* overlay file this process created */
	struct core_block *next;
};

/* Resume: front ends that start on a new overlay over a frozen image. */
struct resume_disk {
	char *device, *base, *format, *overlay;
};

/* Instantiate and open plugin p with properties rp for front end owner;
 * own (may be NULL) is freed with the block. */
static struct core_block *block_new(modvm_inst *owner, const struct plugin *p,
				    const struct resolved_props *rp,
				    struct resolved_props *own, char *err,
				    size_t len)
{
	struct machine *m = owner->m;
	modvm_inst *be = inst_new(m, p, owner->id, rp, owner->cfg);
	struct core_block *b = xcalloc(1, sizeof(*b));

	b->pub.ops = p->desc->ops;
	b->be_inst = be;
	b->owner = owner;
	b->own_props = own;
	b->pub.be = b->pub.ops->open(&m->host, be);
	if (!b->pub.be) {
		set_err(err, len, "%s: %s", p->desc->name,
			be->error[0] ? be->error : "open failed (no reason given)");
		inst_free(be);
		free(b);
		return NULL;
	}
	be->obj = b->pub.be;
	return b;
}

/* Properties for the overlay backend ov creating `overlay` on top of base
 * (a file name relative to the overlay's folder, so both can move
 * together). */
static struct resolved_props *overlay_props(const struct plugin *ov,
					    const char *overlay,
					    const char *base, const char *fmt,
					    char *err, size_t len)
{
	char *slash = strrchr(base, '/');
	struct cfg_setting set[] = {
		{ .name = MODVM_BLOCK_PROP_PATH, .type = CFG_TEXT, .s = (char *)overlay },
		{ .name = MODVM_BLOCK_PROP_CREATE, .type = CFG_TEXT, .s = "true" },
		{ .name = MODVM_BLOCK_PROP_BACKING_FILE, .type = CFG_TEXT,
		  .s = slash ? slash + 1 : (char *)base },
		{ .name = MODVM_BLOCK_PROP_BACKING_FORMAT, .type = CFG_TEXT, .s = (char *)fmt },
	};
	struct resolved_props *rp = xcalloc(1, sizeof(*rp));

	if (props_resolve(ov, set, ARRAY_SIZE(set), "snapshot", overlay, rp, err, len)) {
		free(rp);
		return NULL;
	}
	return rp;
}

/* Whether plugin p can stack an overlay on an image of format fmt: it has
 * the overlay properties, and fmt among its backing formats. */
static bool overlay_capable(const struct plugin *p, const char *fmt)
{
	const struct modvm_prop_desc *bf =
		prop_find(p->desc->props, MODVM_BLOCK_PROP_BACKING_FORMAT);

	if (!prop_find(p->desc->props, MODVM_BLOCK_PROP_PATH) ||
	    !prop_find(p->desc->props, MODVM_BLOCK_PROP_CREATE) ||
	    !prop_find(p->desc->props, MODVM_BLOCK_PROP_BACKING_FILE) ||
	    !bf || bf->type != MODVM_PROP_ENUM)
		return false;
	for (const char *const *c = bf->choices; c && *c; c++)
		if (!strcmp(*c, fmt))
			return true;
	return false;
}

/* The backend of the snapshot overlay format, found as a config's
 * `backend = "qcow2"` would find it. */
static const struct plugin *overlay_backend(const struct machine *m,
					    const char *fmt, char *err,
					    size_t len)
{
	char *name = xasprintf("%s-%s", backend_prefix(MODVM_KIND_BLOCK),
			       SNAPSHOT_OVERLAY_FORMAT);
	const struct plugin *ov = registry_find_kind(m->reg, name, MODVM_KIND_BLOCK);

	if (!ov)
		set_err(err, len, "no block backend \"%s\" (plugin %s) is installed: it makes the overlay images of snapshots",
			SNAPSHOT_OVERLAY_FORMAT, name);
	else if (!overlay_capable(ov, fmt))
		set_err(err, len, "%s (%s) cannot create overlay images over a %s image (it lacks the %s, %s or %s properties, or %s among its backing formats): install a newer one, or take the snapshot with disks = reference",
			ov->desc->name, ov->path, fmt, MODVM_BLOCK_PROP_CREATE,
			MODVM_BLOCK_PROP_BACKING_FILE, MODVM_BLOCK_PROP_BACKING_FORMAT, fmt);
	free(name);
	return ov && overlay_capable(ov, fmt) ? ov : NULL;
}

/* Open a new overlay file (which must not exist) over base. */
static struct core_block *overlay_open(modvm_inst *owner, const char *overlay,
				       const char *base, const char *fmt,
				       char *err, size_t len)
{
	const struct plugin *q = overlay_backend(owner->m, fmt, err, len);
	struct resolved_props *rp;
	struct core_block *b;

	if (!q)
		return NULL;
	/* create=true would open a file that is there: never someone's */
	if (access(overlay, F_OK) == 0) {
		set_err(err, len, "overlay %s exists already: remove it or choose another snapshot name",
			overlay);
		return NULL;
	}
	rp = overlay_props(q, overlay, base, fmt, err, len);
	if (!rp)
		return NULL;
	b = block_new(owner, q, rp, rp, err, len);
	if (!b) {
		unlink(overlay); /* half-created */
		resolved_props_free(rp);
		free(rp);
		return NULL;
	}
	b->created = xstrdup(overlay);
	return b;
}

static const struct resume_disk *resume_find(const struct machine *m,
					     const char *device)
{
	for (size_t i = 0; i < m->nresume_disks; i++)
		if (!strcmp(m->resume_disks[i].device, device))
			return &m->resume_disks[i];
	return NULL;
}

static void link_block(struct core_block *b)
{
	struct machine *m = b->owner->m;

	pthread_mutex_lock(&m->virtio_lock);
	b->next = m->blocks;
	m->blocks = b;
	pthread_mutex_unlock(&m->virtio_lock);
}

static const struct modvm_block *h_block_open(modvm_inst *inst,
					      const char *prop)
{
	const struct resolved_props *rp = inst_backend(inst, prop, MODVM_KIND_BLOCK);
	const struct resume_disk *rd = resume_find(inst->m, inst->id);
	struct core_block *b;

	if (!rp || rp->plugin->desc->kind != MODVM_KIND_BLOCK) {
		set_err(inst->error, sizeof(inst->error),
			"property \"%s\" does not name a block backend", prop);
		return NULL;
	}
	if (rd) {
		b = overlay_open(inst, rd->overlay, rd->base, rd->format,
				 inst->error, sizeof(inst->error));
		if (b)
			fprintf(stderr, "modvm: disk %s: resumed on overlay %s over the snapshot's frozen %s\r\n",
				inst->id, rd->overlay, rd->base);
	} else {
		b = block_new(inst, rp->plugin, rp, NULL, inst->error, sizeof(inst->error));
	}
	if (!b)
		return NULL;
	link_block(b);
	return &b->pub;
}

static void block_free(struct core_block *b)
{
	b->pub.ops->close(b->pub.be);
	inst_release_loop(b->be_inst->m, b->be_inst);
	inst_free(b->be_inst);
	if (b->own_props) {
		resolved_props_free(b->own_props);
		free(b->own_props);
	}
	free(b->created);
	free(b);
}

static const char *block_path(const struct core_block *b)
{
	const struct prop_value *v = resolved_find(b->be_inst->props, MODVM_BLOCK_PROP_PATH);

	return v ? v->s : NULL;
}

/* The format of a file disk ("raw" for block-raw: the name of its
 * backend as a config writes it), NULL for a backend without a path. A
 * snapshot can freeze it if the overlay backend stacks on that format. */
static const char *block_format(const struct core_block *b)
{
	const struct plugin *p = b->be_inst->plugin;
	const char *pre = backend_prefix(MODVM_KIND_BLOCK);
	size_t pl = strlen(pre);

	if (!prop_find(p->desc->props, MODVM_BLOCK_PROP_PATH) ||
	    strncmp(p->desc->name, pre, pl) || p->desc->name[pl] != '-')
		return NULL;
	return p->desc->name + pl + 1;
}

/* blk is the pub of a core_block of its owner's machine: found there, so a
 * pointer the core never handed out closes nothing. */
static void h_block_close(const struct modvm_block *blk)
{
	struct core_block *b = NULL;
	struct machine *m;

	if (!blk)
		return;
	m = ((const struct core_block *)blk)->owner->m;
	pthread_mutex_lock(&m->virtio_lock);
	for (struct core_block **pp = &m->blocks; *pp; pp = &(*pp)->next)
		if (&(*pp)->pub == blk) {
			b = *pp;
			*pp = b->next;
			break;
		}
	pthread_mutex_unlock(&m->virtio_lock);
	if (!b)
		return;
	/* The user has to know where the disk's content went. */
	if (b->own_props && block_path(b))
		fprintf(stderr, "modvm: disk %s: its current content is in %s (a %s overlay)\r\n",
			b->owner->id, block_path(b), SNAPSHOT_OVERLAY_FORMAT);
	if (b->pending)
		block_free(b->pending);
	block_free(b);
}

size_t block_disks(struct machine *m, struct block_disk *out, size_t max)
{
	size_t n = 0;

	pthread_mutex_lock(&m->virtio_lock);
	for (struct core_block *b = m->blocks; b && n < max; b = b->next) {
		const struct prop_value *ro = resolved_find(b->be_inst->props, MODVM_BLOCK_PROP_READONLY);
		out[n++] = (struct block_disk){
			.device = b->owner->id, .path = block_path(b),
			.format = block_format(b), .readonly = ro && ro->b,
			.overlay = b->pending ? b->pending->created : NULL,
			.on_overlay = b->own_props != NULL,
		};
	}
	pthread_mutex_unlock(&m->virtio_lock);
	return n;
}

void block_freeze_abort(struct machine *m)
{
	for (struct core_block *b = m->blocks; b; b = b->next) {
		if (!b->pending)
			continue;
		char *created = xstrdup(b->pending->created);
		block_free(b->pending);
		b->pending = NULL;
		unlink(created);
		free(created);
	}
}

int block_flush_all(struct machine *m, char *err, size_t len)
{
	for (struct core_block *b = m->blocks; b; b = b->next) {
		const char *path = block_path(b);
		if (b->pub.ops->drain)
			b->pub.ops->drain(b->pub.be);
		if (b->pub.ops->flush && b->pub.ops->flush(b->pub.be))
			return set_err(err, len, "disk %s of device %s: flush failed",
				       path ? path : "(no file)", b->owner->id);
	}
	return 0;
}

int block_freeze_prepare(struct machine *m, const char *tag, char *err, size_t len)
{
	for (struct core_block *b = m->blocks; b; b = b->next) {
		const struct prop_value *ro = resolved_find(b->be_inst->props, MODVM_BLOCK_PROP_READONLY);
		const char *path = block_path(b), *fmt = block_format(b);
		char msg[ERR_LEN];

		if (!path || !fmt || (ro && ro->b))
			continue; /* not a file the VM writes */
		/* Every request done and on stable storage: the image is now
		 * what the snapshot's memory expects. */
		b->pub.ops->drain(b->pub.be);
		if (b->pub.ops->flush(b->pub.be)) {
			set_err(err, len, "disk %s of device %s: flush failed", path, b->owner->id);
			goto fail;
		}
		char *overlay = xasprintf("%s.%s.%s", path, tag, SNAPSHOT_OVERLAY_FORMAT);
		b->pending = overlay_open(b->owner, overlay, path, fmt, msg, sizeof(msg));
		free(overlay);
		if (!b->pending) {
			set_err(err, len, "disk %s of device %s: %s", path, b->owner->id, msg);
			goto fail;
		}
	}
	return 0;
fail:
	block_freeze_abort(m);
	return -1;
}

/* Swap each prepared overlay in behind the front end's struct modvm_block
 * (the VM is held, the machine lock taken) and close the frozen image. */
void block_freeze_commit(struct machine *m)
{
	for (struct core_block *b = m->blocks; b; b = b->next) {
		struct core_block *p = b->pending, old;

		if (!p)
			continue;
		fprintf(stderr, "modvm: disk %s: %s is frozen in the snapshot; the VM now writes to %s\r\n",
			b->owner->id, block_path(b), p->created);
		old = *b;
		b->pub = p->pub;
		b->be_inst = p->be_inst;
		b->own_props = p->own_props;
		b->created = p->created;
		b->pending = NULL;
		p->pub = old.pub;
		p->be_inst = old.be_inst;
		p->own_props = old.own_props;
		p->created = old.created;
		p->pending = NULL;
		block_free(p);
	}
}

void block_resume_on(struct machine *m, const char *device, const char *base,
		     const char *format, const char *overlay)
{
	m->resume_disks = xrealloc(m->resume_disks,
				   (m->nresume_disks + 1) * sizeof(*m->resume_disks));
	m->resume_disks[m->nresume_disks++] = (struct resume_disk){
		xstrdup(device), xstrdup(base), xstrdup(format), xstrdup(overlay),
	};
}

void block_release_inst(struct machine *m, modvm_inst *inst)
{
	struct core_block *b;

	do {
		pthread_mutex_lock(&m->virtio_lock);
		for (b = m->blocks; b && b->owner != inst; b = b->next)
			;
		pthread_mutex_unlock(&m->virtio_lock);
		if (b)
			h_block_close(&b->pub);
	} while (b);
}

/* After every instance is gone: the resume instructions. */
void block_machine_free(struct machine *m)
{
	for (size_t i = 0; i < m->nresume_disks; i++) {
		free(m->resume_disks[i].device);
		free(m->resume_disks[i].base);
		free(m->resume_disks[i].format);
		free(m->resume_disks[i].overlay);
	}
	free(m->resume_disks);
	m->resume_disks = NULL;
	m->nresume_disks = 0;
}

void block_host_services(struct modvm_host *h)
{
	h->block_open = h_block_open;
	h->block_close = h_block_close;
}
