/* Assembling a machine: RAM, I/O, clock, loop and the host table, then one
 * plugin instance per config device; and tearing it all down again. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "display.h"
#include "machine.h"
#include "block.h"
#include "net.h"
#include "virtio.h"

void machine_lock(struct machine *m)
{
	if (!pthread_mutex_trylock(&m->lock))
		return;
	/* contended: counted, so timer pacing knows a sleeping vCPU thread
	 * may be waiting for this lock rather than halted (timer.c) */
	uint64_t t0 = host_monotonic_ns();
	atomic_fetch_add_explicit(&m->lock_waiters, 1, memory_order_relaxed);
	pthread_mutex_lock(&m->lock);
	atomic_fetch_sub_explicit(&m->lock_waiters, 1, memory_order_relaxed);
	steal_note_lock_wait(host_monotonic_ns() - t0);
}

void machine_unlock(struct machine *m)
{
	pthread_mutex_unlock(&m->lock);
}

void machine_mem_written(struct machine *m, uint64_t gpa, uint64_t len)
{
	const struct modvm_cpu_engine_ops *e = m->eops;
	_Atomic uint64_t *dirty = atomic_load(&m->dirty);

	/* Live migration: mark the pages (the bitmap lives as long as the
	 * machine once made, so a stale pointer is never freed memory). */
	if (dirty && len) {
		uint64_t last = gpa + len - 1 < gpa ? UINT64_MAX >> 12 : (gpa + len - 1) >> 12;
		uint64_t top = (VM_4G + m->mem.high_size) >> 12; /* past all RAM */
		if (last > top)
			last = top;
		for (uint64_t p = gpa >> 12; p <= last; p++) {
			int64_t off = vm_memory_offset(&m->mem, p << 12);
			uint64_t i = (uint64_t)off >> 12;
			if (off >= 0 && i < m->dirty_pages)
				atomic_fetch_or(&dirty[i / 64], 1ull << (i % 64));
		}
	}

	if (e && m->evm && OPS_HAS(e, struct modvm_cpu_engine_ops, mem_written) &&
	    e->mem_written)
		e->mem_written(m->evm, gpa, len);
}

static int machine_setup(struct machine *m, const char *image,
			 uint64_t mem_size, bool manual_clock, char *err,
			 size_t len)
{
	pthread_mutexattr_t a;

	memset(m, 0, sizeof(*m));
	m->incoming_fd = -1;
	m->mem.fd = -1;
	m->verbosity = MODVM_LOG_WARN;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&m->lock, &a);
	pthread_mutexattr_destroy(&a);
	pthread_mutex_init(&m->req_lock, NULL);
	pthread_cond_init(&m->req_cond, NULL);
	pthread_mutex_init(&m->pause_lock, NULL);
	pthread_cond_init(&m->pause_cond, NULL);
	pthread_mutex_init(&m->virtio_lock, NULL);
	io_init(&m->io);
	vclock_init(&m->clock, manual_clock);
	host_table_init(m);
	m->loop.wake_fd = -1;
	if (loop_init(&m->loop, err, len))
		goto fail;
	if (image ? vm_memory_init_image(&m->mem, image, mem_size, err, len)
		  : vm_memory_init(&m->mem, mem_size, err, len))
		goto fail;
	return 0;
fail:
	machine_destroy(m);
	return -1;
}

int machine_init(struct machine *m, uint64_t mem_size, bool manual_clock,
		 char *err, size_t len)
{
	return machine_setup(m, NULL, mem_size, manual_clock, err, len);
}

int machine_init_image(struct machine *m, const char *image, uint64_t mem_size,
		       char *err, size_t len)
{
	return machine_setup(m, image, mem_size, false, err, len);
}

/* Release what an instance registered and did not release itself. */
static void release_inst(struct machine *m, modvm_inst *inst)
{
	struct irq_state *irq = &m->irq;

	pci_release_inst(m, inst);
	for (size_t i = m->io.nall; i-- > 0;)
		if (m->io.all[i]->inst == inst)
			io_region_remove(m->io.all[i]);
	for (modvm_timer *t = m->timers, *next; t; t = next) {
		next = t->next;
		if (t->inst == inst)
			timer_destroy(t);
	}
	for (modvm_watch *w = m->loop.watches; w; w = w->next)
		if (w->inst == inst)
			w->dead = true;
	for (size_t i = 0; i < irq->nsinks;) {
		if (irq->sinks[i]->inst == inst) {
			free(irq->sinks[i]);
			irq->sinks[i] = irq->sinks[--irq->nsinks];
		} else {
			i++;
		}
	}
	for (modvm_chardev *c = m->chardevs, *next; c; c = next) {
		next = c->next;
		if (c->frontend == inst)
			chardev_close(c);
	}
	virtio_release_inst(m, inst);
	block_release_inst(m, inst);
	net_release_inst(m, inst);
	display_release_inst(m, inst);
	input_release_inst(m, inst);
	/* Callbacks the instance registered must not outlive it. */
	irq_eoi_forget(m, inst);
	if (irq->intr_ack_inst == inst) {
		irq->intr_ack = NULL;
		irq->intr_ack_inst = NULL;
	}
	if (irq->msi_inst == inst) {
		irq->msi = NULL;
		irq->msi_inst = NULL;
	}
}

static void store_int(void *field, uint32_t size, uint64_t v)
{
	uint8_t u8 = (uint8_t)v;
	uint16_t u16 = (uint16_t)v;
	uint32_t u32 = (uint32_t)v;

	switch (size) {
	case 1: memcpy(field, &u8, 1); break;
	case 2: memcpy(field, &u16, 2); break;
	case 4: memcpy(field, &u32, 4); break;
	default: memcpy(field, &v, 8); break;
	}
}

/* Store the instance's bound properties (sizes checked by the registry). */
static void bind_props(modvm_inst *inst, uint8_t *obj)
{
	for (size_t i = 0; inst->props && i < inst->props->n; i++) {
		const struct prop_value *v = &inst->props->vals[i];
		const struct modvm_prop_desc *d = v->desc;

		if (!d || !d->field_size)
			continue;
		switch (d->type) {
		case MODVM_PROP_BOOL:
			memcpy(obj + d->offset, &v->b, sizeof(bool));
			break;
		case MODVM_PROP_INT:
			store_int(obj + d->offset, d->field_size, (uint64_t)v->i);
			break;
		case MODVM_PROP_SIZE:
			store_int(obj + d->offset, d->field_size, v->u);
			break;
		case MODVM_PROP_ENUM:
			store_int(obj + d->offset, d->field_size, (uint64_t)v->choice);
			break;
		default: { /* STRING, BACKEND */
			const char *str = v->s;
			memcpy(obj + d->offset, &str, sizeof(str));
			break;
		}
		}
	}
}

/* A core-allocated instance: zeroed, its header filled, its bound
 * properties stored; init runs next. */
static struct modvm_dev *dev_alloc(struct machine *m, modvm_inst *inst,
				   const struct modvm_device_ops *ops)
{
	struct modvm_dev *dev = xcalloc(1, ops->instance_size);

	dev->host = &m->host;
	dev->inst = inst;
	bind_props(inst, (uint8_t *)dev);
	return dev;
}

/* After release_inst: nothing the core holds points into it any more. */
static void dev_free(modvm_inst *inst)
{
	const struct modvm_device_ops *ops = inst->plugin->desc->ops;

	if (ops->init)
		free(inst->obj);
	inst->obj = NULL;
}

modvm_inst *machine_add_device(struct machine *m, const struct plugin *p,
			       const char *id, const struct resolved_props *rp,
			       struct cfg_device *cfg, char *err, size_t len)
{
	const struct modvm_device_ops *ops = p->desc->ops;
	modvm_inst *inst;
	bool failed;

	if (p->desc->kind != MODVM_KIND_DEVICE) {
		set_err(err, len, "%s is not a device plugin", p->desc->name);
		return NULL;
	}
	inst = inst_new(m, p, id, rp, cfg);
	machine_lock(m);
	if (ops->init) {
		inst->obj = dev_alloc(m, inst, ops);
		failed = ops->init(inst->obj) != 0;
	} else {
		inst->obj = ops->create(&m->host, inst);
		failed = !inst->obj;
	}
	if (failed) {
		set_err(err, len, "%s%s%d: device \"%s\" (%s, %s) failed to start: %s",
			cfg && m->cfg ? m->cfg->path : "", cfg && m->cfg ? ":" : "",
			cfg ? cfg->line : 0, id, p->desc->name, p->path,
			inst->error[0] ? inst->error : "the plugin gave no reason");
		release_inst(m, inst);
		dev_free(inst);
		machine_unlock(m);
		inst_free(inst);
		return NULL;
	}
	m->insts = xrealloc(m->insts, (m->ninsts + 1) * sizeof(*m->insts));
	m->insts[m->ninsts++] = inst;
	machine_unlock(m);
	return inst;
}

int machine_add_config_devices(struct machine *m, struct vm_config *cfg,
			       char *err, size_t len)
{
	m->cfg = cfg;
	m->cpus = cfg->cpus;
	for (size_t i = 0; i < cfg->ndevices; i++) {
		struct cfg_device *d = &cfg->devices[i];
		if (!machine_add_device(m, d->props.plugin, d->id, &d->props, d,
					err, len))
			return -1;
	}
	return 0;
}

void machine_reset_devices(struct machine *m)
{
	machine_lock(m);
	for (size_t i = 0; i < m->ninsts; i++) {
		const struct modvm_device_ops *ops = m->insts[i]->plugin->desc->ops;
		if (ops->reset)
			ops->reset(m->insts[i]->obj);
	}
	machine_unlock(m);
}

/* A power-off or an exit is final: a later reset (or another power-off or
 * exit) must not undo it or change the status. */
static bool request_is_final(int req)
{
	return req == MODVM_REQUEST_POWEROFF || req == MODVM_REQUEST_EXIT;
}

static void machine_request_status(struct machine *m, int req, int status)
{
	pthread_mutex_lock(&m->req_lock);
	if (!request_is_final(m->request)) {
		m->request = req;
		m->exit_status = status;
	}
	pthread_cond_broadcast(&m->req_cond);
	pthread_mutex_unlock(&m->req_lock);
	/* Wake threads parked by a pause and a pause waiting for them. */
	pthread_mutex_lock(&m->pause_lock);
	pthread_cond_broadcast(&m->pause_cond);
	pthread_mutex_unlock(&m->pause_lock);
	for (unsigned i = 0; i < m->ncpus && m->eops; i++)
		if (m->vcpus[i])
			m->eops->vcpu_kick(m->vcpus[i]);
}

void machine_request(struct machine *m, int req)
{
	machine_request_status(m, req, 0);
}

void machine_request_exit(struct machine *m, int status)
{
	machine_request_status(m, MODVM_REQUEST_EXIT, status);
}

void machine_destroy(struct machine *m)
{
	loop_stop_thread(m);
	machine_lock(m);
	for (size_t i = m->ninsts; i-- > 0;) {
		modvm_inst *inst = m->insts[i];
		const struct modvm_device_ops *ops = inst->plugin->desc->ops;
		if (ops->destroy)
			ops->destroy(inst->obj);
		release_inst(m, inst);
		dev_free(inst);
		inst_free(inst);
	}
	free(m->insts);
	m->insts = NULL;
	m->ninsts = 0;
	while (m->chardevs)
		chardev_close(m->chardevs);
	pci_bus_destroy(m);
	while (m->timers)
		timer_destroy(m->timers);
	machine_unlock(m);
	loop_destroy(m);
	irq_eoi_forget(m, NULL);
	irq_destroy(&m->irq);
	io_destroy(&m->io);
	vm_memory_destroy(&m->mem);
	atomic_store(&m->dirty, NULL);
	free((void *)m->dirty_map);
	if (m->incoming_fd >= 0)
		close(m->incoming_fd);
	pthread_mutex_destroy(&m->lock);
	pthread_mutex_destroy(&m->req_lock);
	pthread_cond_destroy(&m->req_cond);
	pthread_mutex_destroy(&m->pause_lock);
	pthread_cond_destroy(&m->pause_cond);
	block_machine_free(m);
	pthread_mutex_destroy(&m->virtio_lock);
}
