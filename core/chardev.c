/* Character devices: connect a front end (UART, parallel port) to the
 * backend plugin its config names, and pass bytes and line state between
 * them. Everything written passes here, so the console log can be kept. */
#include <stdlib.h>
#include <string.h>

#include "machine.h"

/* The front end of a device that only writes (fe = NULL): input is taken
 * and dropped, so a backend never waits for it. */
static size_t drop_can_receive(void *opaque)
{
	(void)opaque;
	return 4096;
}

static void drop_receive(void *opaque, const uint8_t *buf, size_t len)
{
	(void)opaque;
	(void)buf;
	(void)len;
}

static const struct modvm_chardev_frontend output_only = {
	.can_receive = drop_can_receive,
	.receive = drop_receive,
};

modvm_chardev *chardev_open(modvm_inst *inst, const char *prop,
			    const struct modvm_chardev_frontend *fe,
			    void *opaque)
{
	struct machine *m = inst->m;
	const struct resolved_props *rp;
	const struct modvm_chardev_ops *ops;
	modvm_chardev *chr;
	modvm_inst *be;

	rp = inst_backend(inst, prop, MODVM_KIND_CHARDEV);
	if (!rp || rp->plugin->desc->kind != MODVM_KIND_CHARDEV) {
		set_err(inst->error, sizeof(inst->error),
			"property \"%s\" does not name a chardev backend", prop);
		return NULL;
	}
	if (!fe)
		fe = &output_only;
	if (!fe->receive || !fe->can_receive) {
		set_err(inst->error, sizeof(inst->error),
			"chardev front end needs receive and can_receive (or pass NULL for an output-only one)");
		return NULL;
	}
	ops = rp->plugin->desc->ops;
	be = inst_new(m, rp->plugin, inst->id, rp, inst->cfg);
	chr = xcalloc(1, sizeof(*chr));
	*chr = (modvm_chardev){ .m = m, .frontend = inst, .backend = be,
				.ops = ops, .fe = fe, .fe_opaque = opaque };
	chr->log = xmalloc(CONSOLE_LOG_SIZE);
	be->obj = ops->open(&m->host, be, chr);
	if (!be->obj) {
		set_err(inst->error, sizeof(inst->error), "backend %s: %s",
			rp->plugin->desc->name,
			be->error[0] ? be->error : "open failed (no reason given)");
		inst_free(be);
		free(chr->log);
		free(chr);
		return NULL;
	}
	machine_lock(m);
	chr->next = m->chardevs;
	m->chardevs = chr;
	machine_unlock(m);
	return chr;
}

void chardev_close(modvm_chardev *chr)
{
	struct machine *m = chr->m;

	machine_lock(m);
	for (modvm_chardev **pp = &m->chardevs; *pp; pp = &(*pp)->next) {
		if (*pp == chr) {
			*pp = chr->next;
			break;
		}
	}
	machine_unlock(m);
	chr->ops->close(chr->backend->obj);
	inst_free(chr->backend);
	free(chr->log);
	free(chr);
}

size_t chardev_write(modvm_chardev *chr, const void *buf, size_t len)
{
	size_t n = chr->ops->write(chr->backend->obj, buf, len);
	const uint8_t *p = buf;

	/* Log what the backend took: that is what the console showed. */
	for (size_t i = 0; i < n; i++)
		chr->log[(chr->logged + i) % CONSOLE_LOG_SIZE] = p[i];
	chr->logged += n;
	return n;
}

size_t chardev_log_read(const modvm_chardev *chr, uint64_t from, void *buf,
			size_t len)
{
	uint64_t oldest = chr->logged > CONSOLE_LOG_SIZE ?
		chr->logged - CONSOLE_LOG_SIZE : 0;
	uint8_t *out = buf;
	size_t n = 0;

	if (from < oldest)
		from = oldest;
	for (; from < chr->logged && n < len; from++)
		out[n++] = chr->log[from % CONSOLE_LOG_SIZE];
	return n;
}
