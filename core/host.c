/* The host-services table: the only way plugins reach the core. Each
 * service finds the machine through the calling instance. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpumodel.h"
#include "display.h"
#include "machine.h"
#include "block.h"
#include "net.h"
#include "run.h"
#include "sandbox.h"
#include "virtio.h"

static const char *const level_names[] = { "error", "warning", "info",
					    "debug", "trace" };

/* Flood guard: a guest can make a message repeat thousands of times a
 * second (a reset loop, a port hammered at warning level). Messages are
 * grouped by their format string; each group prints at most FLOOD_BURST
 * lines per FLOOD_NS, then says how many it held back. */
#define FLOOD_BURST 5
#define FLOOD_NS 1000000000ull
#define FLOOD_SLOTS 8

static struct flood {
	const char *fmt;
	uint64_t t0;
	unsigned n, held;
	char text[64];            /* the group's last message, shortened */
} flood[FLOOD_SLOTS];
static pthread_mutex_t flood_lock = PTHREAD_MUTEX_INITIALIZER;

static void say(int level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void say(int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "modvm: %s: ", level_names[level < 0 ? 0 : level > 4 ? 4 : level]);
	vfprintf(stderr, fmt, ap);
	/* \r so lines stay readable when a backend put the tty in raw mode */
	fputs("\r\n", stderr);
	va_end(ap);
}

/* Print msg unless its group (key: the format it came from) floods. */
static void emit(int level, const char *key, const char *msg)
{
	uint64_t now = host_monotonic_ns();
	struct flood *f = NULL;

	pthread_mutex_lock(&flood_lock);
	for (int i = 0; i < FLOOD_SLOTS && !f; i++)
		if (flood[i].fmt == key)
			f = &flood[i];
	if (!f) { /* the slot used longest ago */
		f = &flood[0];
		for (int i = 1; i < FLOOD_SLOTS; i++)
			if (flood[i].t0 < f->t0)
				f = &flood[i];
		*f = (struct flood){ .fmt = key, .t0 = now };
	}
	if (now - f->t0 >= FLOOD_NS) {
		if (f->held)
			say(level, "%u more like \"%s\" held back", f->held, f->text);
		f->t0 = now;
		f->n = f->held = 0;
	}
	snprintf(f->text, sizeof(f->text), "%s", msg);
	if (++f->n <= FLOOD_BURST)
		say(level, "%s", msg);
	else if (!f->held++)
		say(level, "\"%s\" repeats: held back for a second at a time", f->text);
	pthread_mutex_unlock(&flood_lock);
}

void machine_log(struct machine *m, int level, const char *fmt, ...)
{
	char msg[ERR_LEN];
	va_list ap;

	if (m && level > m->verbosity)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	emit(level, fmt, msg);
}

static void h_log(modvm_inst *inst, enum modvm_log_level level,
		  const char *fmt, ...)
{
	char msg[ERR_LEN], line[ERR_LEN + 64];
	va_list ap;

	if ((int)level > inst->m->verbosity)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(line, sizeof(line), "%s: %s", inst->prefix, msg);
	emit((int)level, fmt, line);
}

static void h_set_error(modvm_inst *inst, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(inst->error, sizeof(inst->error), fmt, ap);
	va_end(ap);
}

static const struct prop_value *prop(modvm_inst *inst, const char *name,
				     uint32_t type)
{
	const struct prop_value *v = inst->props ? resolved_find(inst->props, name) : NULL;

	if (!v) {
		machine_log(inst->m, MODVM_LOG_ERROR,
			    "%s: asked for undeclared property \"%s\" (plugin bug)",
			    inst->prefix, name);
		return NULL;
	}
	if (type && v->desc->type != type &&
	    !(type == MODVM_PROP_STRING)) {
		machine_log(inst->m, MODVM_LOG_ERROR,
			    "%s: property \"%s\" read as the wrong type (plugin bug)",
			    inst->prefix, name);
		return NULL;
	}
	return v;
}

static bool h_prop_bool(modvm_inst *inst, const char *name)
{
	const struct prop_value *v = prop(inst, name, MODVM_PROP_BOOL);
	return v ? v->b : false;
}

static int64_t h_prop_int(modvm_inst *inst, const char *name)
{
	const struct prop_value *v = prop(inst, name, MODVM_PROP_INT);
	return v ? v->i : 0;
}

static uint64_t h_prop_size(modvm_inst *inst, const char *name)
{
	const struct prop_value *v = prop(inst, name, MODVM_PROP_SIZE);
	return v ? v->u : 0;
}

static const char *h_prop_string(modvm_inst *inst, const char *name)
{
	const struct prop_value *v = prop(inst, name, MODVM_PROP_STRING);
	return v && v->s ? v->s : "";
}

static int h_prop_enum(modvm_inst *inst, const char *name)
{
	const struct prop_value *v = prop(inst, name, MODVM_PROP_ENUM);
	return v ? v->choice : 0;
}

static const char *h_inst_id(modvm_inst *inst)
{
	return inst->id;
}

static int h_mem_read(modvm_inst *inst, uint64_t gpa, void *buf, size_t len)
{
	return vm_memory_read(&inst->m->mem, gpa, buf, len);
}

static int h_mem_write(modvm_inst *inst, uint64_t gpa, const void *buf,
		       size_t len)
{
	int r = vm_memory_write(&inst->m->mem, gpa, buf, len);

	machine_mem_written(inst->m, gpa, len);
	return r;
}

static void *h_mem_ptr(modvm_inst *inst, uint64_t gpa, uint64_t len)
{
	return vm_memory_ptr(&inst->m->mem, gpa, len);
}

static void h_mem_dirty(modvm_inst *inst, uint64_t gpa, uint64_t len)
{
	/* Dirty tracking arrives with live migration; RAM is one memfd, so
	 * snapshots of a paused VM already see every write. The engine may
	 * hold translations of the pages. */
	machine_mem_written(inst->m, gpa, len);
}

static uint64_t h_mem_size(modvm_inst *inst)
{
	return inst->m->mem.size;
}

static modvm_region *h_pio_register(modvm_inst *inst, uint16_t port,
				    uint32_t len,
				    const struct modvm_io_ops *ops, void *opaque)
{
	return io_register(inst->m, inst, false, port, len, ops, opaque);
}

static modvm_region *h_mmio_register(modvm_inst *inst, uint64_t addr,
				     uint64_t len,
				     const struct modvm_io_ops *ops, void *opaque)
{
	return io_register(inst->m, inst, true, addr, len, ops, opaque);
}

static uint64_t h_pio_read(modvm_inst *inst, uint16_t port, unsigned size)
{
	return io_pio_read(inst->m, port, size);
}

static void h_pio_write(modvm_inst *inst, uint16_t port, uint64_t v,
			unsigned size)
{
	io_pio_write(inst->m, port, v, size);
}

static bool h_mmio_read(modvm_inst *inst, uint64_t addr, void *data,
			unsigned size)
{
	return io_mmio_read(inst->m, addr, data, size);
}

static bool h_mmio_write(modvm_inst *inst, uint64_t addr, const void *data,
			 unsigned size)
{
	return io_mmio_write(inst->m, addr, data, size);
}

static void h_irq_set(modvm_inst *inst, unsigned line, int level)
{
	irq_line_set(inst->m, line, level);
}

static modvm_irq_sink *h_irq_sink_register(modvm_inst *inst, unsigned first,
					   unsigned count,
					   void (*set)(void *, unsigned, int),
					   void *opaque)
{
	return irq_sink_add(inst->m, inst, first, count, set, opaque);
}

static void h_msi_send(modvm_inst *inst, uint64_t addr, uint32_t data)
{
	irq_msi_send(inst->m, addr, data);
}

static int h_msi_handler_register(modvm_inst *inst,
				  void (*deliver)(void *, uint64_t, uint32_t),
				  void *opaque)
{
	struct irq_state *irq = &inst->m->irq;

	if (irq->msi)
		return set_err(inst->error, sizeof(inst->error),
			       "an MSI handler is already registered");
	irq->msi = deliver;
	irq->msi_opaque = opaque;
	irq->msi_inst = inst;
	return 0;
}

static void h_intr_set(modvm_inst *inst, int level)
{
	irq_intr_set(inst->m, level);
}

static int h_intr_source_register(modvm_inst *inst, int (*ack)(void *),
				  void *opaque)
{
	struct irq_state *irq = &inst->m->irq;

	if (irq->intr_ack)
		return set_err(inst->error, sizeof(inst->error),
			       "the INTR pin already has a controller");
	irq->intr_ack = ack;
	irq->intr_ack_opaque = opaque;
	irq->intr_ack_inst = inst;
	return 0;
}

static int h_intr_ack(modvm_inst *inst)
{
	return irq_intr_ack(inst->m);
}

static uint64_t h_clock_ns(modvm_inst *inst)
{
	return vclock_now(&inst->m->clock);
}

static int64_t h_boot_wall_ns(modvm_inst *inst)
{
	return inst->m->clock.boot_wall_ns;
}

static modvm_timer *h_timer_new(modvm_inst *inst, void (*cb)(void *),
				void *opaque)
{
	return timer_create_(inst->m, inst, cb, opaque);
}

static bool h_timer_pending(modvm_timer *t)
{
	return t->armed;
}

static modvm_watch *h_fd_watch(modvm_inst *inst, int fd, unsigned events,
			       void (*cb)(void *, int, unsigned), void *opaque)
{
	return loop_watch(inst->m, inst, fd, events, cb, opaque);
}

static void h_machine_request(modvm_inst *inst, enum modvm_machine_request r)
{
	machine_log(inst->m, MODVM_LOG_DEBUG, "%s requests %s", inst->prefix,
		    r == MODVM_REQUEST_POWEROFF ? "power-off" :
		    r == MODVM_REQUEST_RESET ? "reset" :
		    r == MODVM_REQUEST_QUIT ? "quit" :
		    r == MODVM_REQUEST_EXIT ? "exit" : "panic");
	machine_request(inst->m, (int)r);
}

static void h_machine_exit(modvm_inst *inst, int status)
{
	machine_log(inst->m, MODVM_LOG_DEBUG, "%s requests exit with status %d",
		    inst->prefix, status);
	machine_request_exit(inst->m, status);
}

static const char *h_vm_name(modvm_inst *inst)
{
	const struct vm_config *c = inst->m->cfg;

	return c && c->name ? c->name : "";
}

/* ---- plugin threads ---------------------------------------------------- */

struct modvm_thread {
	pthread_t thread;
	modvm_inst *inst;
	void *(*fn)(void *);
	void *arg;
	char name[16];
	struct sandbox_thread sb;
};

static void *plugin_thread(void *opaque)
{
	struct modvm_thread *t = opaque;
	void *r;

	machine_block_stop_signals();
	if (sandbox_thread_begin(&t->sb, t->name)) {
		/* Running the plugin's code outside its list is worse than
		 * stopping: end the VM the way a vCPU thread would. */
		machine_log(t->inst->m, MODVM_LOG_ERROR,
			    "%s: thread %s: sandbox: the kernel refused its filter: %s",
			    t->inst->prefix, t->name, strerror(errno));
		machine_request(t->inst->m, REQUEST_ERROR);
		sandbox_thread_end(&t->sb);
		return NULL;
	}
	r = t->fn(t->arg);
	sandbox_thread_end(&t->sb);
	return r;
}

static modvm_thread *h_thread_start(modvm_inst *inst, const char *name,
				    void *(*fn)(void *), void *arg)
{
	struct modvm_thread *t = xcalloc(1, sizeof(*t));
	int r;

	*t = (struct modvm_thread){ .inst = inst, .fn = fn, .arg = arg };
	snprintf(t->name, sizeof(t->name), "%s", name && *name ? name : "modvm-plugin");
	r = pthread_create(&t->thread, NULL, plugin_thread, t);
	if (r) {
		h_set_error(inst, "cannot start thread %s: %s", t->name, strerror(r));
		free(t);
		return NULL;
	}
	return t;
}

static void h_thread_join(modvm_thread *t, void **ret)
{
	void *r = NULL;

	if (!t)
		return;
	pthread_join(t->thread, &r);
	if (ret)
		*ret = r;
	free(t);
}

static void h_allow_remove(modvm_inst *inst, const char *path)
{
	machine_log(inst->m, MODVM_LOG_DEBUG, "%s: the sandbox lets it remove files next to %s",
		    inst->prefix, path);
	if (!sandbox_active())
		sandbox_allow_writes_in_parent(path, SANDBOX_W_REMOVE);
}

static unsigned h_cpu_count(modvm_inst *inst)
{
	return inst->m->cpus ? inst->m->cpus : 1;
}


static void h_chardev_accept_input(modvm_chardev *chr)
{
	if (chr->ops->accept_input)
		chr->ops->accept_input(chr->backend->obj);
}

static int h_chardev_set_params(modvm_chardev *chr,
				const struct modvm_serial_params *p)
{
	return chr->ops->set_params ? chr->ops->set_params(chr->backend->obj, p) : -1;
}

static int h_chardev_set_modem(modvm_chardev *chr, unsigned lines)
{
	return chr->ops->set_modem ? chr->ops->set_modem(chr->backend->obj, lines) : -1;
}

static int h_chardev_get_modem(modvm_chardev *chr, unsigned *lines)
{
	return chr->ops->get_modem ? chr->ops->get_modem(chr->backend->obj, lines) : -1;
}

static size_t h_chardev_can_receive(modvm_chardev *chr)
{
	size_t n;

	machine_lock(chr->m);
	n = chr->fe->can_receive(chr->fe_opaque);
	machine_unlock(chr->m);
	return n;
}

static void h_chardev_receive(modvm_chardev *chr, const void *buf, size_t len)
{
	machine_lock(chr->m);
	chr->fe->receive(chr->fe_opaque, buf, len);
	machine_unlock(chr->m);
}

static void h_chardev_modem_changed(modvm_chardev *chr, unsigned lines)
{
	machine_lock(chr->m);
	if (chr->fe->modem_changed)
		chr->fe->modem_changed(chr->fe_opaque, lines);
	machine_unlock(chr->m);
}

static const struct modvm_cpu_model *h_cpu_model(modvm_inst *inst)
{
	const struct vm_config *c = inst->m->cfg;

	return cpu_model_find(c && c->model ? c->model : "baseline-v1");
}

static void h_eoi_broadcast(modvm_inst *inst, uint8_t vector)
{
	irq_eoi_broadcast(inst->m, vector);
}

static int h_eoi_listener_register(modvm_inst *inst,
				   void (*cb)(void *, uint8_t), void *opaque)
{
	return irq_eoi_listen(inst->m, inst, cb, opaque);
}

/* ---- A20 gate ----------------------------------------------------------
 * Each instance that reported an A20 gate input is a source; the gate is
 * their OR (82371AB datasheet: A20M# is asserted only while port 92h bit 1
 * and the keyboard controller's A20GATE are both 0). Device callbacks run
 * with the machine lock held; it guards the sources. */
#define A20_SOURCES (sizeof(((struct machine *)0)->a20_src) / \
		     sizeof(((struct machine *)0)->a20_src[0]))

/* Enabled unless some source reported and none of them is on. */
static bool a20_effective(const struct machine *m)
{
	bool any = false, eff = false;

	for (size_t i = 0; i < A20_SOURCES; i++) {
		if (!m->a20_src[i].inst)
			continue;
		any = true;
		eff |= m->a20_src[i].on;
	}
	return !any || eff;
}

/* Record (or with drop, forget) inst's input. */
static void a20_update(modvm_inst *inst, bool on, bool drop)
{
	struct machine *m = inst->m;
	size_t slot = A20_SOURCES;

	for (size_t i = 0; i < A20_SOURCES; i++) {
		if (m->a20_src[i].inst == inst)
			slot = i;
		else if (slot == A20_SOURCES && !m->a20_src[i].inst && !drop)
			slot = i;
	}
	if (slot == A20_SOURCES)
		return;
	if (drop) {
		if (m->a20_src[slot].inst == inst)
			m->a20_src[slot].inst = NULL;
		return;
	}
	m->a20_src[slot].inst = inst;
	m->a20_src[slot].on = on;
}

static bool h_a20_enabled(modvm_inst *inst)
{
	bool eff;

	machine_lock(inst->m);
	eff = a20_effective(inst->m);
	machine_unlock(inst->m);
	return eff;
}

static void h_set_a20(modvm_inst *inst, bool enabled)
{
	struct machine *m = inst->m;
	const struct modvm_cpu_engine_ops *e = m->eops;
	bool eff;

	machine_lock(m);
	a20_update(inst, enabled, false);
	eff = a20_effective(m);
	if (e && OPS_HAS(e, struct modvm_cpu_engine_ops, set_a20) && e->set_a20) {
		if (m->evm)
			e->set_a20(m->evm, eff);
	} else if (!eff && e && !m->a20_told) {
		m->a20_told = true;
		h_log(inst, MODVM_LOG_INFO, "the guest disabled A20 but this CPU "
		      "engine cannot mask it (KVM has no such control): A20 "
		      "stays enabled");
	}
	machine_unlock(m);
}

void host_table_init(struct machine *m)
{
	m->host = (struct modvm_host){
		.size = sizeof(struct modvm_host),
		.abi_major = MODVM_ABI_MAJOR,
		.abi_minor = MODVM_ABI_MINOR,
		.log = h_log,
		.set_error = h_set_error,
		.prop_bool = h_prop_bool,
		.prop_int = h_prop_int,
		.prop_size = h_prop_size,
		.prop_string = h_prop_string,
		.prop_enum = h_prop_enum,
		.inst_id = h_inst_id,
		.mem_read = h_mem_read,
		.mem_write = h_mem_write,
		.mem_ptr = h_mem_ptr,
		.mem_dirty = h_mem_dirty,
		.mem_size = h_mem_size,
		.pio_register = h_pio_register,
		.mmio_register = h_mmio_register,
		.region_move = io_region_move,
		.region_enable = io_region_enable,
		.region_remove = io_region_remove,
		.pio_read = h_pio_read,
		.pio_write = h_pio_write,
		.mmio_read = h_mmio_read,
		.mmio_write = h_mmio_write,
		.irq_set = h_irq_set,
		.irq_sink_register = h_irq_sink_register,
		.msi_send = h_msi_send,
		.msi_handler_register = h_msi_handler_register,
		.intr_set = h_intr_set,
		.intr_source_register = h_intr_source_register,
		.intr_ack = h_intr_ack,
		.clock_ns = h_clock_ns,
		.boot_wall_ns = h_boot_wall_ns,
		.timer_new = h_timer_new,
		.timer_mod = timer_arm,
		.timer_del = timer_disarm,
		.timer_free = timer_destroy,
		.timer_pending = h_timer_pending,
		.fd_watch = h_fd_watch,
		.fd_watch_events = loop_watch_events,
		.fd_unwatch = loop_unwatch,
		.machine_request = h_machine_request,
		.chardev_open = chardev_open,
		.chardev_write = chardev_write,
		.chardev_accept_input = h_chardev_accept_input,
		.chardev_set_params = h_chardev_set_params,
		.chardev_set_modem = h_chardev_set_modem,
		.chardev_get_modem = h_chardev_get_modem,
		.chardev_close = chardev_close,
		.chardev_can_receive = h_chardev_can_receive,
		.chardev_receive = h_chardev_receive,
		.chardev_modem_changed = h_chardev_modem_changed,
		.cpu_model = h_cpu_model,
		.eoi_broadcast = h_eoi_broadcast,
		.eoi_listener_register = h_eoi_listener_register,
		.set_a20 = h_set_a20,
		.a20_enabled = h_a20_enabled,
		.machine_exit = h_machine_exit,
		.cpu_count = h_cpu_count,
		.vm_name = h_vm_name,
		.thread_start = h_thread_start,
		.thread_join = h_thread_join,
		.allow_remove = h_allow_remove,
	};
	pci_host_services(&m->host);
	virtio_host_services(&m->host);
	block_host_services(&m->host);
	net_host_services(&m->host);
	display_host_services(&m->host);
	input_host_services(&m->host);
}

modvm_inst *inst_new(struct machine *m, const struct plugin *p,
		     const char *id, const struct resolved_props *rp,
		     struct cfg_device *cfg)
{
	modvm_inst *inst = xcalloc(1, sizeof(*inst));

	inst->m = m;
	inst->plugin = p;
	inst->id = xstrdup(id);
	inst->prefix = strcmp(id, p->desc->name) ?
		xasprintf("%s[%s]", p->desc->name, id) : xstrdup(id);
	inst->props = rp;
	inst->cfg = cfg;
	return inst;
}

const struct resolved_props *inst_backend(modvm_inst *fe, const char *prop,
					  uint32_t kind)
{
	const struct prop_value *v;
	struct cfg_device *d = fe->cfg;

	if (!fe->props || !d)
		return NULL;
	v = resolved_find(fe->props, prop);
	if (!v || v->desc->type != MODVM_PROP_BACKEND || v->desc->backend_kind != kind)
		return NULL;
	for (size_t i = 0; i < d->nbackends; i++)
		if (!strcmp(d->backends[i].backend_of, prop))
			return &d->backends[i];
	return NULL;
}

void inst_release_loop(struct machine *m, modvm_inst *be)
{
	machine_lock(m);
	for (modvm_watch *w = m->loop.watches; w; w = w->next)
		if (w->inst == be)
			w->dead = true;
	for (modvm_timer *t = m->timers, *next; t; t = next) {
		next = t->next;
		if (t->inst == be)
			timer_destroy(t);
	}
	machine_unlock(m);
}

void inst_free(modvm_inst *inst)
{
	if (!inst)
		return;
	if (inst->m) {
		machine_lock(inst->m);
		a20_update(inst, true, true);
		machine_unlock(inst->m);
	}
	free(inst->id);
	free(inst->prefix);
	free(inst);
}
