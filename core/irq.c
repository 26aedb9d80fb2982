/* Interrupt routing: device lines fan out to every controller that listens
 * (the 8259 pair and the IOAPIC both see ISA lines, as on a PC), the INTR
 * pin goes to the boot CPU, and MSIs go to the local APIC model. */
#include <stdlib.h>

#include "machine.h"

void irq_line_set(struct machine *m, unsigned line, int level)
{
	struct irq_state *irq = &m->irq;

	if (line >= IRQ_LINES) {
		machine_log(m, MODVM_LOG_WARN, "interrupt line %u does not exist (0-%d)",
			    line, IRQ_LINES - 1);
		return;
	}
	level = level != 0;
	machine_lock(m);
	if (level && !irq->level[line]) {
		irq->raises[line]++;
		atomic_fetch_add_explicit(&irq->events, 1, memory_order_relaxed);
	}
	irq->level[line] = level;
	for (size_t i = 0; i < irq->nsinks; i++) {
		struct modvm_irq_sink *s = irq->sinks[i];
		if (line >= s->first && line - s->first < s->count)
			s->set(s->opaque, line, level);
	}
	machine_unlock(m);
}

modvm_irq_sink *irq_sink_add(struct machine *m, modvm_inst *inst,
			     unsigned first, unsigned count,
			     void (*set)(void *, unsigned, int), void *opaque)
{
	struct irq_state *irq = &m->irq;
	struct modvm_irq_sink *s;

	if (!set || first >= IRQ_LINES || count > IRQ_LINES - first) {
		set_err(inst->error, sizeof(inst->error),
			"interrupt sink for lines %u+%u is outside 0-%d", first,
			count, IRQ_LINES - 1);
		return NULL;
	}
	s = xcalloc(1, sizeof(*s));
	*s = (struct modvm_irq_sink){ first, count, set, opaque, inst };
	irq->sinks = xrealloc(irq->sinks, (irq->nsinks + 1) * sizeof(*irq->sinks));
	irq->sinks[irq->nsinks++] = s;
	return s;
}

void irq_intr_set(struct machine *m, int level)
{
	m->irq.intr_level = level != 0;
	if (m->eops && m->ncpus && m->vcpus[0] && m->eops->set_intr)
		m->eops->set_intr(m->vcpus[0], m->irq.intr_level);
}

int irq_intr_ack(struct machine *m)
{
	int v = -1;

	machine_lock(m);
	m->irq.acks++;
	if (m->irq.intr_ack)
		v = m->irq.intr_ack(m->irq.intr_ack_opaque);
	machine_unlock(m);
	return v;
}

void irq_msi_send(struct machine *m, uint64_t addr, uint32_t data)
{
	struct irq_state *irq = &m->irq;

	irq->msi_count++;
	atomic_fetch_add_explicit(&irq->events, 1, memory_order_relaxed);
	irq->msi_last_addr = addr;
	irq->msi_last_data = data;
	if (irq->msi)
		irq->msi(irq->msi_opaque, addr, data);
	else if (m->eops && m->eops->deliver_msi)
		m->eops->deliver_msi(m->evm, addr, data);
}

void irq_eoi_broadcast(struct machine *m, uint8_t vector)
{
	machine_lock(m);
	for (struct eoi_listener *l = m->irq.eoi; l; l = l->next)
		l->cb(l->opaque, vector);
	machine_unlock(m);
}

int irq_eoi_listen(struct machine *m, modvm_inst *inst,
		   void (*cb)(void *, uint8_t), void *opaque)
{
	struct eoi_listener *l;

	if (!cb)
		return set_err(inst->error, sizeof(inst->error), "EOI listener without a callback");
	l = xcalloc(1, sizeof(*l));
	*l = (struct eoi_listener){ inst, cb, opaque, m->irq.eoi };
	m->irq.eoi = l;
	return 0;
}

void irq_eoi_forget(struct machine *m, modvm_inst *inst)
{
	for (struct eoi_listener **pp = &m->irq.eoi; *pp;) {
		struct eoi_listener *l = *pp;
		if (!inst || l->inst == inst) {
			*pp = l->next;
			free(l);
		} else {
			pp = &l->next;
		}
	}
}

void irq_destroy(struct irq_state *irq)
{
	for (size_t i = 0; i < irq->nsinks; i++)
		free(irq->sinks[i]);
	free(irq->sinks);
	irq->sinks = NULL;
	irq->nsinks = 0;
}
