/* The PCI bus: functions registered by device plugins, their type 0 config
 * space (BAR sizing and mapping, command/status, capability list with MSI
 * and MSI-X), INTx routing, DMA gated by Bus Master, firmware-style BAR
 * assignment (modvm boots without a BIOS) and the bus as snapshot state.
 * Section numbers refer to the PCI Local Bus Specification 3.0. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modvm/pci.h>

#include "machine.h"
#include "pci.h"

#define CFG_SIZE       MODVM_PCI_CONFIG_SIZE
#define CAP_START      0x40
#define INTX_FIRST     MODVM_PC_IRQ_PCI_FIRST
#define INTX_LINES     8
#define IO_WINDOW      0xC000u           /* firmware places I/O BARs here */
#define IO_LIMIT       0xFFFFu
#define MEM_ALIGN_MIN  4096u             /* one BAR per page, like firmware */
#define CAP_DATA_MAX   (CFG_SIZE - CAP_START - 2)
#define EMPTY_ID       0xFFFF

enum { OWN_CORE = 0, OWN_DEVICE = 1 };

struct pci_bar {
	struct modvm_pci_dev *dev;
	unsigned index;
	uint64_t size;                   /* 0: unused or upper half */
	uint32_t type;
	const struct modvm_io_ops *ops;
	void *opaque;
	modvm_region *region;            /* registered at its first mapping */
};

struct modvm_pci_dev {
	struct pci_bus *bus;
	modvm_inst *inst;
	unsigned slot;
	unsigned gsi;                    /* IOAPIC input of the pin, 0: none */
	uint8_t cfg[CFG_SIZE];
	uint8_t reset_cfg[CFG_SIZE];     /* power-on contents */
	uint8_t wmask[CFG_SIZE];         /* bits the guest may write */
	uint8_t w1cmask[CFG_SIZE];       /* bits a written 1 clears */
	uint8_t owner[CFG_SIZE];         /* OWN_CORE or OWN_DEVICE */
	struct pci_bar bars[MODVM_PCI_BARS];
	unsigned msi_cap, msi_vectors;   /* msi_cap 0: no MSI */
	bool msi_64, msi_pvm;
	unsigned msix_cap, msix_vectors; /* msix_cap 0: no MSI-X */
	unsigned msix_table_bar, msix_pba_bar;
	uint32_t msix_table_off, msix_pba_off;
	uint32_t *msix_table;            /* 4 dwords an entry */
	uint64_t *msix_pba;
	unsigned extra_cap[MODVM_PCI_CAPS_MAX];
	unsigned nextra;
	uint32_t (*config_read)(void *, unsigned, unsigned, uint32_t);
	void (*config_write)(void *, unsigned, uint32_t, unsigned);
	void *config_opaque;
	bool intx;                       /* level the device drives */
	bool intx_out;                   /* what it puts on its line now */
};

struct pci_bus {
	struct machine *m;
	struct modvm_pci_dev *slots[MODVM_PCI_SLOTS];
	struct modvm_pci_dev **order;    /* registration order */
	size_t n;
	bool assign;                     /* firmware-style setup */
	uint64_t mem_next;
	uint64_t io_next;
	unsigned line_users[INTX_LINES]; /* functions asserting each line */
};

/* ---- little helpers --------------------------------------------------- */

static uint32_t get_le(const uint8_t *p, unsigned n)
{
	uint32_t v = 0;

	while (n--)
		v = v << 8 | p[n];
	return v;
}

static void put_le(uint8_t *p, uint32_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint32_t mask_of(unsigned size)
{
	return size >= 4 ? 0xFFFFFFFFu : (1u << (8 * size)) - 1;
}

static uint16_t cfg16(const struct modvm_pci_dev *d, unsigned off)
{
	return (uint16_t)get_le(d->cfg + off, 2);
}

static uint32_t cfg32(const struct modvm_pci_dev *d, unsigned off)
{
	return get_le(d->cfg + off, 4);
}

/* Record why registration failed, for the core to print. */
static int bad(modvm_inst *inst, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int bad(modvm_inst *inst, const char *fmt, ...)
{
	char msg[ERR_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return set_err(inst->error, sizeof(inst->error), "PCI: %s", msg);
}

static bool is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

static unsigned log2u(uint64_t v)
{
	unsigned n = 0;

	while (v > 1) {
		v >>= 1;
		n++;
	}
	return n;
}

static bool overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

static struct machine *dev_m(const struct modvm_pci_dev *d)
{
	return d->bus->m;
}

static unsigned pba_bytes(unsigned vectors)
{
	return (vectors + 63) / 64 * 8;
}

/* ---- interrupts: INTx -------------------------------------------------- */

static bool msi_enabled(const struct modvm_pci_dev *d)
{
	return d->msi_cap &&
	       (cfg16(d, d->msi_cap + MODVM_PCI_MSI_FLAGS) & MODVM_PCI_MSI_FLAGS_ENABLE);
}

static bool msix_enabled(const struct modvm_pci_dev *d)
{
	return d->msix_cap &&
	       (cfg16(d, d->msix_cap + MODVM_PCI_MSIX_FLAGS) & MODVM_PCI_MSIX_FLAGS_ENABLE);
}

/* Several functions share a line (wired-OR): it is high while any of them
 * asserts it. */
static void line_drive(struct pci_bus *bus, unsigned gsi, bool up)
{
	unsigned *users = &bus->line_users[gsi - INTX_FIRST];

	if (up && (*users)++ == 0)
		irq_line_set(bus->m, gsi, 1);
	else if (!up && *users && --(*users) == 0)
		irq_line_set(bus->m, gsi, 0);
}

/* 6.2.2/6.2.3: Interrupt Status follows the device; INTx# is driven only
 * while Interrupt Disable is clear, and never while MSI or MSI-X is on
 * (6.8.1.3, 6.8.2.3). */
static void intx_update(struct modvm_pci_dev *d)
{
	uint16_t cmd = cfg16(d, MODVM_PCI_COMMAND);
	bool out = d->intx && d->gsi && !(cmd & MODVM_PCI_COMMAND_INTX_DISABLE) &&
		   !msi_enabled(d) && !msix_enabled(d);

	if (d->intx)
		d->cfg[MODVM_PCI_STATUS] |= MODVM_PCI_STATUS_INTERRUPT;
	else
		d->cfg[MODVM_PCI_STATUS] &= (uint8_t)~MODVM_PCI_STATUS_INTERRUPT;
	if (out == d->intx_out)
		return;
	d->intx_out = out;
	line_drive(d->bus, d->gsi, out);
}

/* ---- interrupts: MSI and MSI-X ---------------------------------------- */

/* An MSI is a memory write by the function, so it needs Bus Master. */
static void msg_send(struct modvm_pci_dev *d, uint64_t addr, uint32_t data)
{
	if (!(cfg16(d, MODVM_PCI_COMMAND) & MODVM_PCI_COMMAND_MASTER)) {
		machine_log(dev_m(d), MODVM_LOG_DEBUG,
			    "%s: MSI dropped: Bus Master is off", d->inst->prefix);
		return;
	}
	irq_msi_send(dev_m(d), addr, data);
}

static unsigned msi_mask_off(const struct modvm_pci_dev *d)
{
	return d->msi_cap + (d->msi_64 ? MODVM_PCI_MSI_MASK_64 : MODVM_PCI_MSI_MASK_32);
}

static unsigned msi_pending_off(const struct modvm_pci_dev *d)
{
	return d->msi_cap + (d->msi_64 ? MODVM_PCI_MSI_PENDING_64 : MODVM_PCI_MSI_PENDING_32);
}

static unsigned msi_allocated(const struct modvm_pci_dev *d)
{
	uint16_t flags = cfg16(d, d->msi_cap + MODVM_PCI_MSI_FLAGS);

	return 1u << ((flags & MODVM_PCI_MSI_FLAGS_QSIZE) >> 4);
}

/* 6.8.1.6: with N vectors allocated the function puts the vector number
 * in the low log2(N) bits of Message Data. */
static void msi_send_vector(struct modvm_pci_dev *d, unsigned v)
{
	unsigned c = d->msi_cap;
	uint64_t addr = cfg32(d, c + MODVM_PCI_MSI_ADDRESS_LO);
	uint32_t data;

	if (d->msi_64)
		addr |= (uint64_t)cfg32(d, c + MODVM_PCI_MSI_ADDRESS_HI) << 32;
	data = cfg16(d, c + (d->msi_64 ? MODVM_PCI_MSI_DATA_64 : MODVM_PCI_MSI_DATA_32));
	data = (data & ~(msi_allocated(d) - 1)) | v;
	msg_send(d, addr, data);
}

static bool msi_notify(struct modvm_pci_dev *d, unsigned vector)
{
	unsigned v;

	if (vector >= d->msi_vectors)
		return false;
	/* Fewer vectors allocated than the device uses: they alias. */
	v = vector & (msi_allocated(d) - 1);
	if (d->msi_pvm && (cfg32(d, msi_mask_off(d)) >> v & 1)) {
		put_le(d->cfg + msi_pending_off(d),
		       cfg32(d, msi_pending_off(d)) | 1u << v, 4);
		return true;
	}
	msi_send_vector(d, v);
	return true;
}

/* Mask bits were written: send what became unmasked while pending. */
static void msi_deliver_pending(struct modvm_pci_dev *d)
{
	uint32_t pending = cfg32(d, msi_pending_off(d));
	uint32_t ready = pending & ~cfg32(d, msi_mask_off(d));

	if (!ready || !msi_enabled(d))
		return;
	put_le(d->cfg + msi_pending_off(d), pending & ~ready, 4);
	for (unsigned v = 0; v < d->msi_vectors; v++)
		if (ready >> v & 1)
			msi_send_vector(d, v);
}

static uint32_t *msix_entry(struct modvm_pci_dev *d, unsigned v)
{
	return d->msix_table + 4 * v;
}

static bool msix_masked(struct modvm_pci_dev *d, unsigned v)
{
	uint16_t flags = cfg16(d, d->msix_cap + MODVM_PCI_MSIX_FLAGS);

	return (flags & MODVM_PCI_MSIX_FLAGS_MASKALL) ||
	       (msix_entry(d, v)[3] & MODVM_PCI_MSIX_ENTRY_CTRL_MASKBIT);
}

static void msix_send_vector(struct modvm_pci_dev *d, unsigned v)
{
	uint32_t *e = msix_entry(d, v);

	msg_send(d, e[0] | (uint64_t)e[1] << 32, e[2]);
}

/* 6.8.2.9: a masked vector's message is held in the PBA and sent when
 * both its mask and the function mask are clear. */
static bool msix_notify(struct modvm_pci_dev *d, unsigned vector)
{
	if (vector >= d->msix_vectors)
		return false;
	if (msix_masked(d, vector)) {
		d->msix_pba[vector / 64] |= 1ull << (vector % 64);
		return true;
	}
	msix_send_vector(d, vector);
	return true;
}

static void msix_deliver_pending(struct modvm_pci_dev *d)
{
	if (!msix_enabled(d))
		return;
	for (unsigned v = 0; v < d->msix_vectors; v++) {
		uint64_t bit = 1ull << (v % 64);
		if (!(d->msix_pba[v / 64] & bit) || msix_masked(d, v))
			continue;
		d->msix_pba[v / 64] &= ~bit;
		msix_send_vector(d, v);
	}
}

/* Table and PBA accesses: 6.8.2 allows aligned dwords and qwords; reads of
 * smaller pieces of one qword are answered too, other writes dropped. */
static uint64_t msix_table_read(struct modvm_pci_dev *d, uint64_t off,
				unsigned size)
{
	uint32_t *e = msix_entry(d, (unsigned)(off / 16));
	unsigned f = (unsigned)(off % 16) / 8 * 2;
	uint64_t q = e[f] | (uint64_t)e[f + 1] << 32;

	if ((off & 7) + size > 8)
		return 0;
	q >>= 8 * (off & 7);
	return size >= 8 ? q : q & ((1ull << (8 * size)) - 1);
}

static void msix_table_write(struct modvm_pci_dev *d, uint64_t off,
			     uint64_t val, unsigned size)
{
	unsigned v = (unsigned)(off / 16), f = (unsigned)(off % 16) / 4;
	uint32_t *e = msix_entry(d, v);

	if ((size != 4 && size != 8) || off % size) {
		machine_log(dev_m(d), MODVM_LOG_DEBUG,
			    "%s: MSI-X table write of %u bytes at 0x%llx dropped",
			    d->inst->prefix, size, (unsigned long long)off);
		return;
	}
	for (unsigned i = 0; i < size / 4; i++, f++, val >>= 32)
		e[f] = f == 3 ? (uint32_t)val & MODVM_PCI_MSIX_ENTRY_CTRL_MASKBIT
			      : (uint32_t)val;
	if (f == 4)
		msix_deliver_pending(d);
}

static uint64_t msix_pba_read(struct modvm_pci_dev *d, uint64_t off,
			      unsigned size)
{
	uint64_t q = d->msix_pba[off / 8];

	if ((off & 7) + size > 8)
		return 0;
	q >>= 8 * (off & 7);
	return size >= 8 ? q : q & ((1ull << (8 * size)) - 1);
}

/* ---- BAR regions -------------------------------------------------------- */

static bool in_window(uint64_t off, uint64_t start, uint64_t len)
{
	return off >= start && off - start < len;
}

static uint64_t bar_read(void *opaque, uint64_t off, unsigned size)
{
	struct pci_bar *b = opaque;
	struct modvm_pci_dev *d = b->dev;

	if (d->msix_cap && b->index == d->msix_table_bar &&
	    in_window(off, d->msix_table_off, d->msix_vectors * 16ull))
		return msix_table_read(d, off - d->msix_table_off, size);
	if (d->msix_cap && b->index == d->msix_pba_bar &&
	    in_window(off, d->msix_pba_off, pba_bytes(d->msix_vectors)))
		return msix_pba_read(d, off - d->msix_pba_off, size);
	return b->ops ? b->ops->read(b->opaque, off, size) : 0;
}

static void bar_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
	struct pci_bar *b = opaque;
	struct modvm_pci_dev *d = b->dev;

	if (d->msix_cap && b->index == d->msix_table_bar &&
	    in_window(off, d->msix_table_off, d->msix_vectors * 16ull)) {
		msix_table_write(d, off - d->msix_table_off, val, size);
		return;
	}
	if (d->msix_cap && b->index == d->msix_pba_bar &&
	    in_window(off, d->msix_pba_off, pba_bytes(d->msix_vectors)))
		return; /* the PBA is read-only (6.8.2.10) */
	if (b->ops)
		b->ops->write(b->opaque, off, val, size);
}

static const struct modvm_io_ops bar_ops = { bar_read, bar_write };

static unsigned bar_reg(unsigned i)
{
	return MODVM_PCI_BAR0 + 4 * i;
}

static uint64_t bar_addr(const struct modvm_pci_dev *d, const struct pci_bar *b)
{
	uint32_t lo = cfg32(d, bar_reg(b->index));

	if (b->type == MODVM_PCI_BAR_IO)
		return lo & ~3u;
	if (b->type == MODVM_PCI_BAR_MEM32)
		return lo & ~0xFu;
	return (lo & ~0xFu) | (uint64_t)cfg32(d, bar_reg(b->index + 1)) << 32;
}

static void bar_set_addr(struct modvm_pci_dev *d, const struct pci_bar *b,
			 uint64_t addr)
{
	unsigned r = bar_reg(b->index);
	uint32_t low_bits = cfg32(d, r) & (b->type == MODVM_PCI_BAR_IO ? 3u : 0xFu);

	put_le(d->cfg + r, (uint32_t)addr | low_bits, 4);
	if (b->type == MODVM_PCI_BAR_MEM64)
		put_le(d->cfg + r + 4, (uint32_t)(addr >> 32), 4);
}

/* Decoding needs the command bit of its space and a usable address; 0 is
 * "not placed", as firmware and guests treat it. An I/O BAR always fits
 * below 0x10000 (16 writable bits, aligned to its size); a memory BAR
 * sized with all ones may wrap past 2^64 and then decodes nothing. */
static bool bar_decodes(const struct modvm_pci_dev *d, const struct pci_bar *b,
			uint64_t *addr)
{
	uint16_t cmd = cfg16(d, MODVM_PCI_COMMAND);
	bool io = b->type == MODVM_PCI_BAR_IO;

	if (!(cmd & (io ? MODVM_PCI_COMMAND_IO : MODVM_PCI_COMMAND_MEMORY)))
		return false;
	*addr = bar_addr(d, b);
	return *addr && *addr + b->size > *addr;
}

/* io_register/io_region_move report into the instance's error text; keep
 * what the plugin may have put there and log the reason instead. */
static void bar_map(struct modvm_pci_dev *d, struct pci_bar *b, uint64_t addr)
{
	struct machine *m = dev_m(d);
	char saved[ERR_LEN];

	memcpy(saved, d->inst->error, sizeof(saved));
	if (!b->region) {
		b->region = io_register(m, d->inst, b->type != MODVM_PCI_BAR_IO,
					addr, b->size, &bar_ops, b);
		if (!b->region)
			machine_log(m, MODVM_LOG_WARN, "%s: BAR%u not mapped: %s",
				    d->inst->prefix, b->index, d->inst->error);
	} else if (b->region->base != addr) {
		if (io_region_move(b->region, addr) == 0)
			io_region_enable(b->region, true);
	} else {
		io_region_enable(b->region, true);
	}
	memcpy(d->inst->error, saved, sizeof(saved));
}

static void bar_update(struct modvm_pci_dev *d, struct pci_bar *b)
{
	uint64_t addr;

	if (!b->size)
		return;
	if (bar_decodes(d, b, &addr))
		bar_map(d, b, addr);
	else if (b->region)
		io_region_enable(b->region, false);
}

static void bars_update(struct modvm_pci_dev *d)
{
	for (unsigned i = 0; i < MODVM_PCI_BARS; i++)
		bar_update(d, &d->bars[i]);
}

static void bars_unmap(struct modvm_pci_dev *d)
{
	for (unsigned i = 0; i < MODVM_PCI_BARS; i++)
		if (d->bars[i].region)
			io_region_enable(d->bars[i].region, false);
}

/* ---- config space accesses ----------------------------------------------- */

/* Bytes from off with the same owner, at most max. Accesses stay inside
 * a dword and core-owned bytes come as whole dwords or a capability's
 * first two bytes, so a device run is 1, 2 or 4 bytes, never 3. */
static unsigned run_len(const struct modvm_pci_dev *d, unsigned off,
			unsigned max)
{
	unsigned n = 1;

	while (n < max && d->owner[off + n] == d->owner[off])
		n++;
	return n;
}

static uint32_t func_cfg_read(struct modvm_pci_dev *d, unsigned off,
			      unsigned size)
{
	uint32_t v = 0;

	for (unsigned i = 0, n; i < size; i += n) {
		unsigned o = off + i;
		uint32_t part;

		n = run_len(d, o, size - i);
		part = get_le(d->cfg + o, n);
		if (d->owner[o] == OWN_DEVICE && d->config_read)
			part = d->config_read(d->config_opaque, o, n, part) & mask_of(n);
		v |= part << (8 * i);
	}
	return v;
}

static void core_write(struct modvm_pci_dev *d, unsigned off, uint32_t val,
		       unsigned n)
{
	for (unsigned i = 0; i < n; i++, val >>= 8) {
		unsigned o = off + i;
		uint8_t b = (uint8_t)val;

		d->cfg[o] = (uint8_t)((d->cfg[o] & ~d->wmask[o]) | (b & d->wmask[o]));
		d->cfg[o] &= (uint8_t)~(b & d->w1cmask[o]);
	}
}

static bool touches(unsigned off, unsigned size, unsigned reg, unsigned len)
{
	return overlap(off, size, reg, len);
}

/* Software must not enable more vectors than the function requests
 * (6.8.1.3); hold the field to that. */
static void msi_clamp(struct modvm_pci_dev *d)
{
	unsigned c = d->msi_cap + MODVM_PCI_MSI_FLAGS;
	uint16_t flags = cfg16(d, c);
	unsigned mmc = (flags & MODVM_PCI_MSI_FLAGS_QMASK) >> 1u;
	unsigned mme = (flags & MODVM_PCI_MSI_FLAGS_QSIZE) >> 4u;

	if (mme > mmc)
		put_le(d->cfg + c, (flags & ~MODVM_PCI_MSI_FLAGS_QSIZE) | mmc << 4, 2);
}

/* Side effects of a config write, by register touched. */
static void cfg_effects(struct modvm_pci_dev *d, unsigned off, unsigned size,
			uint16_t old_cmd)
{
	uint16_t cmd = cfg16(d, MODVM_PCI_COMMAND);

	if (touches(off, size, MODVM_PCI_COMMAND, 2) &&
	    ((cmd ^ old_cmd) & MODVM_PCI_COMMAND_INTX_DISABLE))
		intx_update(d);
	if ((touches(off, size, MODVM_PCI_COMMAND, 2) &&
	     ((cmd ^ old_cmd) & (MODVM_PCI_COMMAND_IO | MODVM_PCI_COMMAND_MEMORY))) ||
	    touches(off, size, MODVM_PCI_BAR0, 4 * MODVM_PCI_BARS))
		bars_update(d);
	if (d->msi_cap && touches(off, size, d->msi_cap + MODVM_PCI_MSI_FLAGS, 2)) {
		msi_clamp(d);
		intx_update(d);
	}
	if (d->msi_pvm && touches(off, size, msi_mask_off(d), 4))
		msi_deliver_pending(d);
	if (d->msix_cap && touches(off, size, d->msix_cap + MODVM_PCI_MSIX_FLAGS, 2)) {
		intx_update(d);
		msix_deliver_pending(d);
	}
}

static void func_cfg_write(struct modvm_pci_dev *d, unsigned off,
			   uint32_t val, unsigned size)
{
	uint16_t old_cmd = cfg16(d, MODVM_PCI_COMMAND);

	for (unsigned i = 0, n; i < size; i += n) {
		unsigned o = off + i;
		uint32_t part;

		n = run_len(d, o, size - i);
		part = (val >> (8 * i)) & mask_of(n);
		if (d->owner[o] == OWN_CORE)
			core_write(d, o, part, n);
		else if (d->config_write)
			d->config_write(d->config_opaque, o, part, n);
	}
	cfg_effects(d, off, size, old_cmd);
}

/* ---- building a function ------------------------------------------------ */

static void set_wmask(struct modvm_pci_dev *d, unsigned off, uint32_t m,
		      unsigned n)
{
	put_le(d->wmask + off, m, n);
}

static void build_header(struct modvm_pci_dev *d,
			 const struct modvm_pci_info *info)
{
	uint8_t *c = d->reset_cfg;

	put_le(c + MODVM_PCI_VENDOR_ID, info->vendor_id, 2);
	put_le(c + MODVM_PCI_DEVICE_ID, info->device_id, 2);
	c[MODVM_PCI_REVISION_ID] = info->revision;
	c[MODVM_PCI_CLASS_PROG] = info->prog_if;
	c[MODVM_PCI_CLASS_DEVICE] = info->subclass;
	c[MODVM_PCI_CLASS_DEVICE + 1] = info->class_code;
	put_le(c + MODVM_PCI_SUBSYSTEM_VENDOR_ID, info->subsystem_vendor_id, 2);
	put_le(c + MODVM_PCI_SUBSYSTEM_ID, info->subsystem_id, 2);
	c[MODVM_PCI_INTERRUPT_PIN] = info->interrupt_pin;
	set_wmask(d, MODVM_PCI_COMMAND,
		  MODVM_PCI_COMMAND_IO | MODVM_PCI_COMMAND_MEMORY |
		  MODVM_PCI_COMMAND_MASTER | MODVM_PCI_COMMAND_PARITY |
		  MODVM_PCI_COMMAND_SERR | MODVM_PCI_COMMAND_INTX_DISABLE, 2);
	/* error bits of the status register are write-one-to-clear */
	put_le(d->w1cmask + MODVM_PCI_STATUS, 0xF900, 2);
	d->wmask[MODVM_PCI_CACHE_LINE_SIZE] = 0xFF;
	d->wmask[MODVM_PCI_LATENCY_TIMER] = 0xFF;
	d->wmask[MODVM_PCI_INTERRUPT_LINE] = 0xFF;
}

/* 6.2.5.1: the read-only low bits give the type; the writable bits are
 * the address bits above the size, so all ones reads back the size mask.
 * I/O BARs decode 16 bits (x86 port space), the upper half reads 0. */
static void build_bar(struct modvm_pci_dev *d, unsigned i,
		      const struct modvm_pci_bar *in)
{
	struct pci_bar *b = &d->bars[i];
	uint64_t mask = ~(in->size - 1);
	unsigned r = bar_reg(i);
	uint32_t type_bits = 0;

	*b = (struct pci_bar){ .dev = d, .index = i, .size = in->size,
			       .type = in->type, .ops = in->ops,
			       .opaque = in->opaque };
	if (in->type == MODVM_PCI_BAR_IO) {
		put_le(d->reset_cfg + r, MODVM_PCI_BAR_SPACE_IO, 4);
		set_wmask(d, r, (uint32_t)mask & 0xFFFCu, 4);
		return;
	}
	if (in->prefetchable)
		type_bits |= MODVM_PCI_BAR_MEM_PREFETCH;
	if (in->type == MODVM_PCI_BAR_MEM64) {
		type_bits |= MODVM_PCI_BAR_MEM_TYPE_64;
		set_wmask(d, r + 4, (uint32_t)(mask >> 32), 4);
	}
	put_le(d->reset_cfg + r, type_bits, 4);
	set_wmask(d, r, (uint32_t)mask & ~0xFu, 4);
}

/* Capability list under construction: where the next one goes and which
 * byte points to it. */
struct cap_layout {
	unsigned next_free;
	unsigned link;
};

static int cap_place(struct modvm_pci_dev *d, struct cap_layout *l,
		     uint8_t id, unsigned len, bool core_body)
{
	unsigned off = l->next_free;

	if (off + len > CFG_SIZE)
		return bad(d->inst, "capabilities do not fit in config space (%u bytes from 0x%x)",
			   len, off);
	d->reset_cfg[off] = id;
	d->reset_cfg[l->link] = (uint8_t)off;
	d->reset_cfg[MODVM_PCI_STATUS] |= MODVM_PCI_STATUS_CAP_LIST;
	l->link = off + 1;
	l->next_free = (off + len + 3) & ~3u;
	memset(d->owner + off, OWN_CORE,
	       core_body ? l->next_free - off : 2u);
	return (int)off;
}

static int build_msi(struct modvm_pci_dev *d, struct cap_layout *l,
		     const struct modvm_pci_msi *msi)
{
	unsigned len = msi->addr64 ? 0x0E : 0x0A, c;
	uint16_t flags;
	int off;

	if (!msi->vectors)
		return 0;
	if (msi->per_vector_mask)
		len += 0x0A;
	off = cap_place(d, l, MODVM_PCI_CAP_ID_MSI, len, true);
	if (off < 0)
		return -1;
	c = (unsigned)off;
	d->msi_cap = c;
	d->msi_vectors = msi->vectors;
	d->msi_64 = msi->addr64;
	d->msi_pvm = msi->per_vector_mask;
	flags = (uint16_t)(log2u(msi->vectors) << 1);
	if (msi->addr64)
		flags |= MODVM_PCI_MSI_FLAGS_64BIT;
	if (msi->per_vector_mask)
		flags |= MODVM_PCI_MSI_FLAGS_MASKBIT;
	put_le(d->reset_cfg + c + MODVM_PCI_MSI_FLAGS, flags, 2);
	set_wmask(d, c + MODVM_PCI_MSI_FLAGS,
		  MODVM_PCI_MSI_FLAGS_ENABLE | MODVM_PCI_MSI_FLAGS_QSIZE, 2);
	set_wmask(d, c + MODVM_PCI_MSI_ADDRESS_LO, 0xFFFFFFFCu, 4);
	if (msi->addr64)
		set_wmask(d, c + MODVM_PCI_MSI_ADDRESS_HI, 0xFFFFFFFFu, 4);
	set_wmask(d, c + (msi->addr64 ? MODVM_PCI_MSI_DATA_64 : MODVM_PCI_MSI_DATA_32),
		  0xFFFF, 2);
	if (msi->per_vector_mask)
		set_wmask(d, msi_mask_off(d),
			  msi->vectors >= 32 ? 0xFFFFFFFFu : (1u << msi->vectors) - 1, 4);
	return 0;
}

static int build_msix(struct modvm_pci_dev *d, struct cap_layout *l,
		      const struct modvm_pci_msix *x)
{
	int off;

	if (!x->vectors)
		return 0;
	off = cap_place(d, l, MODVM_PCI_CAP_ID_MSIX, 12, true);
	if (off < 0)
		return -1;
	d->msix_cap = (unsigned)off;
	d->msix_vectors = x->vectors;
	d->msix_table_bar = x->table_bar;
	d->msix_table_off = x->table_offset;
	d->msix_pba_bar = x->pba_bar;
	d->msix_pba_off = x->pba_offset;
	d->msix_table = xcalloc(4ull * x->vectors, sizeof(uint32_t));
	d->msix_pba = xcalloc(pba_bytes(x->vectors) / 8, sizeof(uint64_t));
	put_le(d->reset_cfg + off + MODVM_PCI_MSIX_FLAGS, x->vectors - 1, 2);
	put_le(d->reset_cfg + off + MODVM_PCI_MSIX_TABLE, x->table_offset | x->table_bar, 4);
	put_le(d->reset_cfg + off + MODVM_PCI_MSIX_PBA, x->pba_offset | x->pba_bar, 4);
	set_wmask(d, off + MODVM_PCI_MSIX_FLAGS,
		  MODVM_PCI_MSIX_FLAGS_ENABLE | MODVM_PCI_MSIX_FLAGS_MASKALL, 2);
	return 0;
}

static int build_caps(struct modvm_pci_dev *d, const struct modvm_pci_info *info)
{
	struct cap_layout l = { CAP_START, MODVM_PCI_CAPABILITY_LIST };

	memset(d->owner + CAP_START, OWN_DEVICE, CFG_SIZE - CAP_START);
	if (build_msi(d, &l, &info->msi) || build_msix(d, &l, &info->msix))
		return -1;
	for (uint32_t i = 0; i < info->ncaps; i++) {
		const struct modvm_pci_cap *cap = &info->caps[i];
		int off = cap_place(d, &l, cap->id, 2u + cap->len, false);
		if (off < 0)
			return -1;
		if (cap->len)
			memcpy(d->reset_cfg + off + 2, cap->data, cap->len);
		d->extra_cap[d->nextra++] = (unsigned)off;
	}
	return 0;
}

/* ---- validating what a plugin asks for ----------------------------------- */

static int check_bar(modvm_inst *inst, const struct modvm_pci_info *info,
		     unsigned i)
{
	const struct modvm_pci_bar *b = &info->bars[i];
	unsigned long long sz = (unsigned long long)b->size;

	if (b->ops && (!b->ops->read || !b->ops->write))
		return bad(inst, "BAR%u: handlers need both read and write", i);
	switch (b->type) {
	case MODVM_PCI_BAR_NONE:
		if (b->size || b->ops)
			return bad(inst, "BAR%u has no type but a size or handlers", i);
		return 0;
	case MODVM_PCI_BAR_IO:
		if (!is_pow2(b->size) || b->size < 4 || b->size > 256)
			return bad(inst, "I/O BAR%u: size %llu is not a power of two from 4 to 256", i, sz);
		if (b->prefetchable)
			return bad(inst, "I/O BAR%u cannot be prefetchable", i);
		return 0;
	case MODVM_PCI_BAR_MEM32:
		if (!is_pow2(b->size) || b->size < 16 || b->size > (1ull << 31))
			return bad(inst, "memory BAR%u: size %llu is not a power of two from 16 to 2G", i, sz);
		return 0;
	case MODVM_PCI_BAR_MEM64:
		if (!is_pow2(b->size) || b->size < 16 || b->size > (1ull << 62))
			return bad(inst, "64-bit BAR%u: size %llu is not a power of two from 16 to 4E", i, sz);
		if (i + 1 >= MODVM_PCI_BARS)
			return bad(inst, "64-bit BAR%u needs BAR%u for its upper half", i, i + 1);
		if (info->bars[i + 1].type || info->bars[i + 1].size)
			return bad(inst, "BAR%u must be unused: it is the upper half of 64-bit BAR%u",
				   i + 1, i);
		return 0;
	default:
		return bad(inst, "BAR%u: unknown type %u", i, b->type);
	}
}

static bool is_mem_bar(const struct modvm_pci_info *info, uint32_t bar)
{
	return bar < MODVM_PCI_BARS &&
	       (info->bars[bar].type == MODVM_PCI_BAR_MEM32 ||
		info->bars[bar].type == MODVM_PCI_BAR_MEM64);
}

static int check_msix_window(modvm_inst *inst, const struct modvm_pci_info *info,
			     const char *what, uint32_t bar, uint32_t off,
			     uint64_t len)
{
	if (!is_mem_bar(info, bar))
		return bad(inst, "MSI-X %s: BAR%u is not a memory BAR", what, bar);
	if (off & 7)
		return bad(inst, "MSI-X %s offset 0x%x is not 8-byte aligned", what, off);
	if (off + len > info->bars[bar].size)
		return bad(inst, "MSI-X %s (0x%llx bytes at 0x%x) does not fit in BAR%u",
			   what, (unsigned long long)len, off, bar);
	return 0;
}

static int check_irqs(modvm_inst *inst, const struct modvm_pci_info *info)
{
	const struct modvm_pci_msix *x = &info->msix;
	uint64_t tlen = (uint64_t)x->vectors * 16, plen = pba_bytes(x->vectors);

	if (info->interrupt_pin > MODVM_PCI_PIN_INTD)
		return bad(inst, "interrupt pin %u is not none or INTA-INTD", info->interrupt_pin);
	if (info->msi.vectors &&
	    (!is_pow2(info->msi.vectors) || info->msi.vectors > MODVM_PCI_MSI_MAX))
		return bad(inst, "MSI: %u vectors is not a power of two from 1 to 32",
			   info->msi.vectors);
	if (!x->vectors)
		return 0;
	if (x->vectors > MODVM_PCI_MSIX_MAX)
		return bad(inst, "MSI-X: %u vectors is above 2048", x->vectors);
	if (check_msix_window(inst, info, "table", x->table_bar, x->table_offset, tlen) ||
	    check_msix_window(inst, info, "PBA", x->pba_bar, x->pba_offset, plen))
		return -1;
	if (x->table_bar == x->pba_bar &&
	    overlap(x->table_offset, tlen, x->pba_offset, plen))
		return bad(inst, "MSI-X table and PBA overlap in BAR%u", x->table_bar);
	return 0;
}

static int check_caps(modvm_inst *inst, const struct modvm_pci_info *info)
{
	if (info->ncaps > MODVM_PCI_CAPS_MAX)
		return bad(inst, "%u extra capabilities, at most %d", info->ncaps,
			   MODVM_PCI_CAPS_MAX);
	if (info->ncaps && !info->caps)
		return bad(inst, "ncaps is %u but caps is NULL", info->ncaps);
	for (uint32_t i = 0; i < info->ncaps; i++) {
		const struct modvm_pci_cap *c = &info->caps[i];
		if (c->id == MODVM_PCI_CAP_ID_MSI || c->id == MODVM_PCI_CAP_ID_MSIX)
			return bad(inst, "capability %u: MSI and MSI-X are described by info->msi/msix", i);
		if (c->len > CAP_DATA_MAX || (c->len && !c->data))
			return bad(inst, "capability %u: %u data bytes (at most %d, data not NULL)",
				   i, c->len, CAP_DATA_MAX);
	}
	return 0;
}

static int check_info(modvm_inst *inst, const struct modvm_pci_info *info)
{
	if (info->vendor_id == 0xFFFF || info->vendor_id == 0)
		return bad(inst, "vendor ID 0x%04x is not valid", info->vendor_id);
	if (info->slot != MODVM_PCI_SLOT_ANY &&
	    (info->slot < 0 || info->slot >= MODVM_PCI_SLOTS))
		return bad(inst, "slot %d is not 0-31 or any (-1)", info->slot);
	for (unsigned i = 0; i < MODVM_PCI_BARS; i++) {
		if (check_bar(inst, info, i))
			return -1;
		if (info->bars[i].type == MODVM_PCI_BAR_MEM64)
			i++;
	}
	return check_irqs(inst, info) || check_caps(inst, info) ? -1 : 0;
}

/* ---- the bus ---------------------------------------------------------- */

static void windows_reset(struct pci_bus *bus)
{
	bus->mem_next = MODVM_PC_PCI_MMIO_BASE;
	bus->io_next = IO_WINDOW;
}

static struct pci_bus *bus_get(struct machine *m)
{
	if (!m->pci) {
		m->pci = xcalloc(1, sizeof(*m->pci));
		m->pci->m = m;
		m->pci->assign = true;
		windows_reset(m->pci);
	}
	return m->pci;
}

static int pick_slot(struct pci_bus *bus, modvm_inst *inst, int32_t want)
{
	if (want != MODVM_PCI_SLOT_ANY) {
		struct modvm_pci_dev *o = bus->slots[want];
		if (o)
			return bad(inst, "slot %d is taken by %s", want, o->inst->prefix);
		return want;
	}
	/* Slot 0 is the host bridge's, and only taken by asking for it. */
	for (int s = 1; s < MODVM_PCI_SLOTS; s++)
		if (!bus->slots[s])
			return s;
	return bad(inst, "no free slot on bus 0 (%d slots)", MODVM_PCI_SLOTS);
}

static void func_free(struct modvm_pci_dev *d)
{
	if (d->intx_out)
		line_drive(d->bus, d->gsi, false);
	for (unsigned i = 0; i < MODVM_PCI_BARS; i++)
		if (d->bars[i].region)
			io_region_remove(d->bars[i].region);
	free(d->msix_table);
	free(d->msix_pba);
	free(d);
}

/* Power-on state (PCI reset): decode off, BARs unplaced, MSI/MSI-X off,
 * every MSI-X vector masked (6.8.2.9), nothing pending. */
static void func_power_on(struct modvm_pci_dev *d)
{
	bars_unmap(d);
	memcpy(d->cfg, d->reset_cfg, CFG_SIZE);
	for (unsigned v = 0; v < d->msix_vectors; v++) {
		uint32_t *e = msix_entry(d, v);
		e[0] = e[1] = e[2] = 0;
		e[3] = MODVM_PCI_MSIX_ENTRY_CTRL_MASKBIT;
	}
	if (d->msix_pba)
		memset(d->msix_pba, 0, pba_bytes(d->msix_vectors));
	d->intx = false;
	intx_update(d);
}

static uint64_t window_alloc(uint64_t *next, uint64_t size, uint64_t align,
			     uint64_t last)
{
	uint64_t a = (*next + align - 1) & ~(align - 1);

	if (a < *next || a + size - 1 < a || a + size - 1 > last)
		return 0;
	*next = a + size;
	return a;
}

/* What firmware does before booting an OS: place every BAR (I/O from
 * 0xC000, memory from the PCI window, each aligned to its size), tell
 * the OS the IRQ in Interrupt Line, and turn decode on. Bus mastering is
 * left to drivers. */
static void func_assign(struct pci_bus *bus, struct modvm_pci_dev *d)
{
	uint16_t cmd = 0;

	for (unsigned i = 0; i < MODVM_PCI_BARS; i++) {
		struct pci_bar *b = &d->bars[i];
		uint64_t a, sz = b->size;

		if (!sz)
			continue;
		if (b->type == MODVM_PCI_BAR_IO) {
			a = window_alloc(&bus->io_next, sz, sz, IO_LIMIT);
			cmd |= MODVM_PCI_COMMAND_IO;
		} else {
			if (sz < MEM_ALIGN_MIN)
				sz = MEM_ALIGN_MIN;
			a = window_alloc(&bus->mem_next, sz, sz, MODVM_PC_PCI_MMIO_END);
			cmd |= MODVM_PCI_COMMAND_MEMORY;
		}
		if (!a) {
			machine_log(bus->m, MODVM_LOG_WARN,
				    "%s: no room for BAR%u (%llu bytes) in the PCI window: left unplaced",
				    d->inst->prefix, i, (unsigned long long)b->size);
			continue;
		}
		bar_set_addr(d, b, a);
	}
	if (d->gsi)
		d->cfg[MODVM_PCI_INTERRUPT_LINE] = (uint8_t)d->gsi;
	put_le(d->cfg + MODVM_PCI_COMMAND, cfg16(d, MODVM_PCI_COMMAND) | cmd, 2);
	bars_update(d);
}

static struct modvm_pci_dev *func_new(struct pci_bus *bus, modvm_inst *inst,
				      unsigned slot,
				      const struct modvm_pci_info *info)
{
	struct modvm_pci_dev *d = xcalloc(1, sizeof(*d));

	d->bus = bus;
	d->inst = inst;
	d->slot = slot;
	if (info->interrupt_pin)
		d->gsi = MODVM_PCI_INTX_GSI(slot, info->interrupt_pin);
	d->config_read = info->config_read;
	d->config_write = info->config_write;
	d->config_opaque = info->config_opaque;
	build_header(d, info);
	for (unsigned i = 0; i < MODVM_PCI_BARS; i++)
		if (info->bars[i].type)
			build_bar(d, i, &info->bars[i]);
	if (build_caps(d, info)) {
		func_free(d);
		return NULL;
	}
	func_power_on(d);
	return d;
}

/* ---- host services ---------------------------------------------------- */

static modvm_pci_dev *h_pci_register(modvm_inst *inst,
				     const struct modvm_pci_info *uinfo)
{
	struct machine *m = inst->m;
	struct modvm_pci_info info;
	struct modvm_pci_dev *d = NULL;
	struct pci_bus *bus;
	int slot;

	if (!uinfo || uinfo->size < sizeof(info)) {
		bad(inst, "struct modvm_pci_info of %u bytes, the core needs %zu (set .size)",
		    uinfo ? uinfo->size : 0, sizeof(info));
		return NULL;
	}
	memcpy(&info, uinfo, sizeof(info));
	if (check_info(inst, &info))
		return NULL;
	machine_lock(m);
	bus = bus_get(m);
	slot = pick_slot(bus, inst, info.slot);
	if (slot >= 0)
		d = func_new(bus, inst, (unsigned)slot, &info);
	if (d) {
		bus->slots[slot] = d;
		bus->order = xrealloc(bus->order, (bus->n + 1) * sizeof(*bus->order));
		bus->order[bus->n++] = d;
		if (bus->assign)
			func_assign(bus, d);
	}
	machine_unlock(m);
	return d;
}

static void h_pci_set_irq(modvm_pci_dev *d, int level)
{
	struct machine *m = dev_m(d);

	machine_lock(m);
	d->intx = level != 0;
	intx_update(d);
	machine_unlock(m);
}

static bool h_pci_msi_notify(modvm_pci_dev *d, unsigned vector)
{
	struct machine *m = dev_m(d);
	bool ok = false;

	machine_lock(m);
	if (msix_enabled(d))
		ok = msix_notify(d, vector);
	else if (msi_enabled(d))
		ok = msi_notify(d, vector);
	machine_unlock(m);
	return ok;
}

static bool dma_allowed(struct modvm_pci_dev *d, uint64_t gpa, size_t len)
{
	if (cfg16(d, MODVM_PCI_COMMAND) & MODVM_PCI_COMMAND_MASTER)
		return true;
	machine_log(dev_m(d), MODVM_LOG_DEBUG,
		    "%s: DMA of %zu bytes at 0x%llx refused: Bus Master is off",
		    d->inst->prefix, len, (unsigned long long)gpa);
	return false;
}

static int h_pci_dma_read(modvm_pci_dev *d, uint64_t gpa, void *buf,
			  size_t len)
{
	if (!dma_allowed(d, gpa, len))
		return -1;
	return vm_memory_read(&dev_m(d)->mem, gpa, buf, len);
}

static int h_pci_dma_write(modvm_pci_dev *d, uint64_t gpa, const void *buf,
			   size_t len)
{
	int r;

	if (!dma_allowed(d, gpa, len))
		return -1;
	r = vm_memory_write(&dev_m(d)->mem, gpa, buf, len);
	machine_mem_written(dev_m(d), gpa, len);
	return r;
}

static unsigned h_pci_cap_offset(modvm_pci_dev *d, unsigned index)
{
	return index < d->nextra ? d->extra_cap[index] : 0;
}

/* Function 0 of a present slot on bus 0 answers; nothing else does. */
static struct modvm_pci_dev *bdf_func(struct machine *m, uint16_t bdf)
{
	if (!m->pci || (bdf >> 8) || (bdf & 7))
		return NULL;
	return m->pci->slots[(bdf >> 3) & 31];
}

static bool cfg_access_ok(unsigned off, unsigned size)
{
	return (size == 1 || size == 2 || size == 4) && off < CFG_SIZE &&
	       (off & 3) + size <= 4;
}

static uint32_t h_pci_config_read(modvm_inst *inst, uint16_t bdf,
				  unsigned off, unsigned size)
{
	struct machine *m = inst->m;
	struct modvm_pci_dev *d;
	uint32_t v;

	machine_lock(m);
	d = bdf_func(m, bdf);
	if (d && cfg_access_ok(off, size))
		v = func_cfg_read(d, off, size);
	else
		v = mask_of(size);
	machine_unlock(m);
	return v;
}

static void h_pci_config_write(modvm_inst *inst, uint16_t bdf, unsigned off,
			       uint32_t val, unsigned size)
{
	struct machine *m = inst->m;
	struct modvm_pci_dev *d;

	machine_lock(m);
	d = bdf_func(m, bdf);
	if (d && cfg_access_ok(off, size))
		func_cfg_write(d, off, val & mask_of(size), size);
	machine_unlock(m);
}

static void h_pci_bus_reset(modvm_inst *inst, bool assign)
{
	struct machine *m = inst->m;
	struct pci_bus *bus;

	machine_lock(m);
	bus = bus_get(m);
	bus->assign = assign;
	/* Everything off first, so no BAR meets another's old place. */
	for (size_t i = 0; i < bus->n; i++)
		func_power_on(bus->order[i]);
	windows_reset(bus);
	for (size_t i = 0; assign && i < bus->n; i++)
		func_assign(bus, bus->order[i]);
	machine_unlock(m);
}

/* ---- the bus as state --------------------------------------------------- */

static uint32_t msix_state_len(const struct modvm_pci_dev *d)
{
	return d->msix_vectors * 16 + pba_bytes(d->msix_vectors);
}

static void func_save(struct modvm_pci_dev *d, struct modvm_pci_func_state *st)
{
	uint8_t *p = st->msix;

	st->vendor_id = cfg16(d, MODVM_PCI_VENDOR_ID);
	st->device_id = cfg16(d, MODVM_PCI_DEVICE_ID);
	st->intx = d->intx;
	memcpy(st->config, d->cfg, CFG_SIZE);
	st->msix_len = msix_state_len(d);
	for (unsigned i = 0; i < 4 * d->msix_vectors; i++, p += 4)
		put_le(p, d->msix_table[i], 4);
	for (unsigned i = 0; i < pba_bytes(d->msix_vectors) / 8; i++, p += 8) {
		put_le(p, (uint32_t)d->msix_pba[i], 4);
		put_le(p + 4, (uint32_t)(d->msix_pba[i] >> 32), 4);
	}
}

static void h_pci_state_save(modvm_inst *inst, struct modvm_pci_func_state *st,
			     unsigned n)
{
	struct machine *m = inst->m;

	machine_lock(m);
	for (unsigned s = 0; s < n; s++) {
		struct modvm_pci_dev *d = s < MODVM_PCI_SLOTS && m->pci ?
					  m->pci->slots[s] : NULL;
		if (d) {
			func_save(d, &st[s]);
			continue;
		}
		st[s].vendor_id = st[s].device_id = EMPTY_ID;
		st[s].intx = 0;
		memset(st[s].config, 0, CFG_SIZE);
		st[s].msix_len = 0;
	}
	machine_unlock(m);
}

static int func_check(modvm_inst *inst, unsigned s, struct modvm_pci_dev *d,
		      const struct modvm_pci_func_state *st)
{
	bool present = st && st->vendor_id != EMPTY_ID;

	if (!d && !present)
		return 0;
	if (!d)
		return bad(inst, "snapshot has %04x:%04x in slot %u, this machine has none there",
			   st->vendor_id, st->device_id, s);
	if (!present)
		return bad(inst, "snapshot has no function in slot %u, this machine has %s",
			   s, d->inst->prefix);
	if (st->vendor_id != cfg16(d, MODVM_PCI_VENDOR_ID) ||
	    st->device_id != cfg16(d, MODVM_PCI_DEVICE_ID))
		return bad(inst, "slot %u holds %04x:%04x in the snapshot but %04x:%04x (%s) here",
			   s, st->vendor_id, st->device_id, cfg16(d, MODVM_PCI_VENDOR_ID),
			   cfg16(d, MODVM_PCI_DEVICE_ID), d->inst->prefix);
	if (st->msix_len != msix_state_len(d))
		return bad(inst, "slot %u: MSI-X state of %u bytes, %s needs %u",
			   s, st->msix_len, d->inst->prefix, msix_state_len(d));
	return 0;
}

/* Guest-writable bits come from the snapshot, everything else from the
 * function as registered, so a crafted snapshot cannot change IDs, BAR
 * types or the capability list. */
static void func_load(struct modvm_pci_dev *d, const struct modvm_pci_func_state *st)
{
	const uint8_t *p = st->msix;

	for (unsigned i = 0; i < CFG_SIZE; i++)
		d->cfg[i] = (uint8_t)((d->reset_cfg[i] & ~d->wmask[i]) |
				      (st->config[i] & d->wmask[i]));
	if (d->msi_cap) {
		msi_clamp(d);
		if (d->msi_pvm)
			put_le(d->cfg + msi_pending_off(d),
			       get_le(st->config + msi_pending_off(d), 4) &
			       get_le(d->wmask + msi_mask_off(d), 4), 4);
	}
	for (unsigned i = 0; i < 4 * d->msix_vectors; i++, p += 4)
		d->msix_table[i] = get_le(p, 4) &
				   (i % 4 == 3 ? MODVM_PCI_MSIX_ENTRY_CTRL_MASKBIT : ~0u);
	for (unsigned i = 0; i < pba_bytes(d->msix_vectors) / 8; i++, p += 8)
		d->msix_pba[i] = get_le(p, 4) | (uint64_t)get_le(p + 4, 4) << 32;
	if (d->msix_vectors % 64)
		d->msix_pba[d->msix_vectors / 64] &= (1ull << (d->msix_vectors % 64)) - 1;
	d->intx = st->intx != 0;
	bars_update(d);
	intx_update(d);
}

static int h_pci_state_load(modvm_inst *inst,
			    const struct modvm_pci_func_state *st, unsigned n)
{
	struct machine *m = inst->m;
	struct pci_bus *bus;
	int rc = 0;

	machine_lock(m);
	bus = bus_get(m);
	for (unsigned s = 0; s < MODVM_PCI_SLOTS && !rc; s++)
		rc = func_check(inst, s, bus->slots[s], s < n ? &st[s] : NULL);
	if (!rc) {
		/* Unmap all first, so no BAR meets another's old place. */
		for (size_t i = 0; i < bus->n; i++)
			bars_unmap(bus->order[i]);
		for (size_t i = 0; i < bus->n; i++)
			func_load(bus->order[i], &st[bus->order[i]->slot]);
	} else {
		machine_log(m, MODVM_LOG_ERROR, "%s: %s", inst->prefix, inst->error);
	}
	machine_unlock(m);
	return rc;
}

/* ---- core side -------------------------------------------------------- */

void pci_release_inst(struct machine *m, modvm_inst *inst)
{
	struct pci_bus *bus = m->pci;

	if (!bus)
		return;
	for (size_t i = bus->n; i-- > 0;) {
		struct modvm_pci_dev *d = bus->order[i];
		if (d->inst != inst)
			continue;
		bus->slots[d->slot] = NULL;
		memmove(bus->order + i, bus->order + i + 1,
			(bus->n - i - 1) * sizeof(*bus->order));
		bus->n--;
		func_free(d);
	}
}

void pci_bus_destroy(struct machine *m)
{
	struct pci_bus *bus = m->pci;

	if (!bus)
		return;
	while (bus->n)
		pci_release_inst(m, bus->order[bus->n - 1]->inst);
	free(bus->order);
	free(bus);
	m->pci = NULL;
}

void pci_host_services(struct modvm_host *h)
{
	h->pci_register = h_pci_register;
	h->pci_set_irq = h_pci_set_irq;
	h->pci_msi_notify = h_pci_msi_notify;
	h->pci_dma_read = h_pci_dma_read;
	h->pci_dma_write = h_pci_dma_write;
	h->pci_cap_offset = h_pci_cap_offset;
	h->pci_config_read = h_pci_config_read;
	h->pci_config_write = h_pci_config_write;
	h->pci_bus_reset = h_pci_bus_reset;
	h->pci_state_save = h_pci_state_save;
	h->pci_state_load = h_pci_state_load;
}
