/* I/O dispatch: port and MMIO regions, overlap checks, and the accesses
 * engines and bridges make. A port table gives O(1) PIO lookup; MMIO uses
 * binary search over the enabled regions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "machine.h"

void io_init(struct io_space *io)
{
	memset(io, 0, sizeof(*io));
	io->pio = xcalloc(65536, sizeof(*io->pio));
}

void io_destroy(struct io_space *io)
{
	for (size_t i = 0; i < io->nall; i++)
		free(io->all[i]);
	free(io->all);
	free(io->pio);
	free(io->mmio);
	memset(io, 0, sizeof(*io));
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* The enabled region other than self overlapping [base, base+len). */
static struct modvm_region *find_overlap(struct io_space *io,
					 const struct modvm_region *self,
					 bool mmio, uint64_t base,
					 uint64_t len)
{
	for (size_t i = 0; i < io->nall; i++) {
		struct modvm_region *r = io->all[i];
		if (r == self || !r->enabled || r->mmio != mmio)
			continue;
		if (overlaps(base, len, r->base, r->len))
			return r;
	}
	return NULL;
}

static int mmio_cmp(const void *a, const void *b)
{
	const struct modvm_region *x = *(const struct modvm_region *const *)a;
	const struct modvm_region *y = *(const struct modvm_region *const *)b;
	return x->base < y->base ? -1 : x->base > y->base;
}

/* Rebuild the lookup structures after any change (rare: set-up, BARs). */
static void io_rebuild(struct io_space *io)
{
	size_t n = 0;

	memset(io->pio, 0, 65536 * sizeof(*io->pio));
	io->mmio = xrealloc(io->mmio, (io->nall + 1) * sizeof(*io->mmio));
	for (size_t i = 0; i < io->nall; i++) {
		struct modvm_region *r = io->all[i];
		if (!r->enabled)
			continue;
		if (r->mmio) {
			io->mmio[n++] = r;
			continue;
		}
		for (uint64_t p = r->base; p < r->base + r->len; p++)
			io->pio[p] = r;
	}
	qsort(io->mmio, n, sizeof(*io->mmio), mmio_cmp);
	io->nmmio = n;
}

static void describe(const struct modvm_region *r, char *buf, size_t len)
{
	if (r->mmio)
		snprintf(buf, len, "MMIO 0x%llx-0x%llx",
			 (unsigned long long)r->base,
			 (unsigned long long)(r->base + r->len - 1));
	else
		snprintf(buf, len, "ports 0x%llx-0x%llx",
			 (unsigned long long)r->base,
			 (unsigned long long)(r->base + r->len - 1));
}

static int check_place(struct machine *m, modvm_inst *inst,
		       const struct modvm_region *self, bool mmio,
		       uint64_t base, uint64_t len)
{
	struct modvm_region want = { .mmio = mmio, .base = base, .len = len };
	struct modvm_region *o;
	char a[64], b[64];

	describe(&want, a, sizeof(a));
	if (!len || (mmio ? base + len < base : base + len > 65536))
		return set_err(inst->error, sizeof(inst->error),
			       "%s: invalid range (length %llu)", a,
			       (unsigned long long)len);
	if (mmio && vm_memory_ptr(&m->mem, base, 1))
		return set_err(inst->error, sizeof(inst->error),
			       "%s overlaps guest RAM: place it in the PCI hole (0x%llx-0xffffffff)",
			       a, (unsigned long long)MODVM_PC_PCI_HOLE);
	o = find_overlap(&m->io, self, mmio, base, len);
	if (o) {
		describe(o, b, sizeof(b));
		return set_err(inst->error, sizeof(inst->error),
			       "%s requested by %s overlaps %s owned by %s",
			       a, inst->prefix, b, o->inst->prefix);
	}
	return 0;
}

modvm_region *io_register(struct machine *m, modvm_inst *inst, bool mmio,
			  uint64_t base, uint64_t len,
			  const struct modvm_io_ops *ops, void *opaque)
{
	struct io_space *io = &m->io;
	struct modvm_region *r;

	if (!ops || !ops->read || !ops->write) {
		set_err(inst->error, sizeof(inst->error),
			"I/O region without read and write handlers");
		return NULL;
	}
	if (check_place(m, inst, NULL, mmio, base, len))
		return NULL;
	r = xcalloc(1, sizeof(*r));
	*r = (struct modvm_region){ .m = m, .inst = inst, .mmio = mmio,
				    .enabled = true, .base = base, .len = len,
				    .ops = ops, .opaque = opaque };
	io->all = xrealloc(io->all, (io->nall + 1) * sizeof(*io->all));
	io->all[io->nall++] = r;
	io_rebuild(io);
	return r;
}

int io_region_move(modvm_region *r, uint64_t base)
{
	struct machine *m = r->m;

	if (check_place(m, r->inst, r, r->mmio, base, r->len)) {
		machine_log(m, MODVM_LOG_WARN, "%s: %s", r->inst->prefix,
			    r->inst->error);
		r->enabled = false;
		io_rebuild(&m->io);
		return -1;
	}
	r->base = base;
	io_rebuild(&m->io);
	return 0;
}

void io_region_enable(modvm_region *r, bool enabled)
{
	if (r->enabled == enabled)
		return;
	if (enabled && find_overlap(&r->m->io, r, r->mmio, r->base, r->len)) {
		machine_log(r->m, MODVM_LOG_WARN,
			    "%s: region at 0x%llx stays disabled: it overlaps another",
			    r->inst->prefix, (unsigned long long)r->base);
		return;
	}
	r->enabled = enabled;
	io_rebuild(&r->m->io);
}

void io_region_remove(modvm_region *r)
{
	struct io_space *io = &r->m->io;

	for (size_t i = 0; i < io->nall; i++) {
		if (io->all[i] != r)
			continue;
		io->all[i] = io->all[--io->nall];
		free(r);
		io_rebuild(io);
		return;
	}
}

static uint64_t ones(unsigned size)
{
	return size >= 8 ? ~0ull : (1ull << (8 * size)) - 1;
}

uint64_t io_pio_read(struct machine *m, uint16_t port, unsigned size)
{
	struct modvm_region *r;
	uint64_t v;

	machine_lock(m);
	r = m->io.pio[port];
	v = r ? r->ops->read(r->opaque, port - r->base, size) & ones(size)
	      : ones(size);
	machine_unlock(m);
	return v;
}

void io_pio_write(struct machine *m, uint16_t port, uint64_t v, unsigned size)
{
	struct modvm_region *r;

	machine_lock(m);
	r = m->io.pio[port];
	if (r)
		r->ops->write(r->opaque, port - r->base, v & ones(size), size);
	machine_unlock(m);
}

static struct modvm_region *mmio_find(struct io_space *io, uint64_t addr)
{
	size_t lo = 0, hi = io->nmmio;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		struct modvm_region *r = io->mmio[mid];
		if (addr < r->base)
			hi = mid;
		else if (addr - r->base >= r->len)
			lo = mid + 1;
		else
			return r;
	}
	return NULL;
}

bool io_mmio_read(struct machine *m, uint64_t addr, void *data, unsigned size)
{
	struct modvm_region *r;
	uint64_t v;

	if (size > 8)
		size = 8;
	machine_lock(m);
	r = mmio_find(&m->io, addr);
	v = r ? r->ops->read(r->opaque, addr - r->base, size) : ~0ull;
	machine_unlock(m);
	memcpy(data, &v, size); /* little-endian host */
	return r != NULL;
}

bool io_mmio_write(struct machine *m, uint64_t addr, const void *data,
		   unsigned size)
{
	struct modvm_region *r;
	uint64_t v = 0;

	if (size > 8)
		size = 8;
	memcpy(&v, data, size);
	machine_lock(m);
	r = mmio_find(&m->io, addr);
	if (r)
		r->ops->write(r->opaque, addr - r->base, v, size);
	machine_unlock(m);
	return r != NULL;
}
