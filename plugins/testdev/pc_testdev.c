/* pc-testdev: the ports kvm-unit-tests' x86 tests poke, as QEMU's device of
 * that name has them (hw/misc/pc-testdev.c):
 *   0xe0-0xe3   a 32-bit scratch register, accessed at any width and offset
 *               (the emulator and realmode tests check IN/OUT/INS/OUTS);
 *   0xe4-0xe7   "flush page": a 32-bit write of a guest-physical address.
 *               QEMU drops the host mapping of the page so that KVM faults
 *               on its next access; here the engine drops what it cached
 *               of the page (cpu-bt: its translations), as after DMA.
 *   0xe8-0xeb   the same scratch register, byte by byte (QEMU's
 *               ioport-byte region: wider accesses are split);
 *   0x2000-0x2017  interrupt line N (0-23) is driven to the level
 *               written to port 0x2000 + N (set_irq_line in lib/x86/apic.c),
 *               a wider access byte by byte as QEMU splits it;
 *   MMIO 0xff000000 + 64 KiB  "iomem": RAM reached through MMIO exits
 *               (x86/ioram.h), so MMIO emulation of ordinary instructions
 *               is tested against memory semantics.
 */
#include <string.h>

#include <modvm/modvm.h>

#define PORT_DATA 0xe0
#define PORT_FLUSH 0xe4
#define PORT_DATA_BYTE 0xe8
#define PORT_IRQ 0x2000
#define IRQ_LINES 24
#define IOMEM_LEN 0x10000u
#define PAGE_SIZE 4096u

struct testdev {
	struct modvm_dev dev;
	bool iomem_on;                 /* property "iomem" */
	uint32_t iomem_base;           /* property "iomem-base" */
	uint32_t data;                 /* the scratch register */
	uint32_t irq_levels;           /* bit N: level driven on line N */
	uint8_t iomem[IOMEM_LEN];
};

/* Bytes [off, off + size) of the 4-byte register; beyond it reads all ones
 * and writes are dropped (an access running off the end of the range). */
static uint64_t data_read(struct testdev *t, uint64_t off, unsigned size)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < size; i++) {
		uint64_t b = off + i < 4 ? (t->data >> (8 * (off + i))) & 0xff : 0xff;
		v |= b << (8 * i);
	}
	return v;
}

static void data_write(struct testdev *t, uint64_t off, uint64_t v,
		       unsigned size)
{
	for (unsigned i = 0; i < size && off + i < 4; i++) {
		unsigned shift = 8 * (unsigned)(off + i);
		t->data = (t->data & ~(0xffu << shift)) |
			  (uint32_t)((v >> (8 * i)) & 0xff) << shift;
	}
}

static uint64_t data_port_read(void *opaque, uint64_t off, unsigned size)
{
	return data_read(opaque, off, size);
}

static void data_port_write(void *opaque, uint64_t off, uint64_t v,
			    unsigned size)
{
	data_write(opaque, off, v, size);
}

static const struct modvm_io_ops data_ops = { data_port_read, data_port_write };

static uint64_t flush_read(void *opaque, uint64_t off, unsigned size)
{
	return ~0ull;
}

/* Only a 4-byte write at 0xe4 is a request, as in QEMU. An address that is
 * not guest RAM has nothing to flush. */
static void flush_write(void *opaque, uint64_t off, uint64_t v, unsigned size)
{
	struct testdev *t = opaque;
	uint64_t page = v & ~(uint64_t)(PAGE_SIZE - 1);

	if (off != 0 || size != 4)
		return;
	if (!t->dev.host->mem_ptr(t->dev.inst, page, PAGE_SIZE))
		return;
	t->dev.host->mem_dirty(t->dev.inst, page, PAGE_SIZE);
}

static const struct modvm_io_ops flush_ops = { flush_read, flush_write };

static void irq_drive(struct testdev *t, unsigned line, bool level)
{
	uint32_t bit = 1u << line;

	t->irq_levels = level ? t->irq_levels | bit : t->irq_levels & ~bit;
	t->dev.host->irq_set(t->dev.inst, line, level);
}

/* QEMU's line ports read 0 at every width (each byte of a wider read is a
 * byte read of 0); bytes past line 23 are not the device's and read all
 * ones. */
static uint64_t irq_read(void *opaque, uint64_t off, unsigned size)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < size; i++)
		if (off + i >= IRQ_LINES)
			v |= 0xffull << (8 * i);
	return v;
}

/* QEMU's region takes byte accesses only (valid.max_access_size = 1), so
 * its memory core splits a wider access into bytes, low byte first: an
 * OUTL of 1 to 0x200b drives line 11 high and lines 12-14 low
 * (kvm-unit-tests' realmode test raises IRQ 11 this way). Bytes past line
 * 23 are dropped. */
static void irq_write(void *opaque, uint64_t off, uint64_t v, unsigned size)
{
	for (unsigned i = 0; i < size && off + i < IRQ_LINES; i++)
		irq_drive(opaque, (unsigned)(off + i), (v >> (8 * i)) & 0xff);
}

static const struct modvm_io_ops irq_ops = { irq_read, irq_write };

static uint64_t iomem_read(void *opaque, uint64_t off, unsigned size)
{
	struct testdev *t = opaque;
	uint64_t v = 0;

	if (off >= IOMEM_LEN || size > IOMEM_LEN - off || size > sizeof(v))
		return ~0ull;
	memcpy(&v, t->iomem + off, size); /* little-endian host and guest */
	return v;
}

static void iomem_write(void *opaque, uint64_t off, uint64_t v, unsigned size)
{
	struct testdev *t = opaque;

	if (off >= IOMEM_LEN || size > IOMEM_LEN - off || size > sizeof(v))
		return;
	memcpy(t->iomem + off, &v, size);
}

static const struct modvm_io_ops iomem_ops = { iomem_read, iomem_write };

/* Power-on: register 0, lines low, iomem zero (QEMU zero-fills it too). */
static void testdev_reset(void *dev)
{
	struct testdev *t = dev;

	t->data = 0;
	for (unsigned i = 0; i < IRQ_LINES; i++)
		if (t->irq_levels & (1u << i))
			irq_drive(t, i, false);
	t->irq_levels = 0;
	memset(t->iomem, 0, sizeof(t->iomem));
}

/* Drive every line to the level the snapshot recorded (the interrupt
 * controllers' own state was saved with their levels seen). */
static int testdev_post_load(void *dev)
{
	struct testdev *t = dev;

	t->irq_levels &= (1u << IRQ_LINES) - 1;
	for (unsigned i = 0; i < IRQ_LINES; i++)
		t->dev.host->irq_set(t->dev.inst, i, (t->irq_levels >> i) & 1);
	return 0;
}

#define T struct testdev
MODVM_STATE_SECTION_HOOKS(testdev_state, "pc-testdev", 1, 1, NULL, testdev_post_load,
	MODVM_F_U32(T, data), MODVM_F_U32(T, irq_levels), MODVM_F_BYTES(T, iomem));

static int testdev_init(void *dev)
{
	struct testdev *t = dev;
	const struct modvm_host *host = t->dev.host;
	modvm_inst *inst = t->dev.inst;

	if (t->iomem_base & (PAGE_SIZE - 1)) {
		host->set_error(inst, "iomem-base 0x%x is not 4 KiB aligned",
				(unsigned)t->iomem_base);
		return -1;
	}
	if (!host->pio_register(inst, PORT_DATA, 4, &data_ops, t) ||
	    !host->pio_register(inst, PORT_FLUSH, 4, &flush_ops, t) ||
	    !host->pio_register(inst, PORT_DATA_BYTE, 4, &data_ops, t) ||
	    !host->pio_register(inst, PORT_IRQ, IRQ_LINES, &irq_ops, t))
		return -1;
	if (t->iomem_on &&
	    !host->mmio_register(inst, t->iomem_base, IOMEM_LEN, &iomem_ops, t))
		return -1;
	return 0;
}

MODVM_DEVICE_DEFINE(.name = "pc-testdev", .version = "1.0.0",
	.description = "kvm-unit-tests' test ports: scratch register 0xe0, page flush 0xe4, IRQ lines 0x2000, MMIO RAM",
	.props = MODVM_PROPS(
		MODVM_PROP_BOOL(T, iomem_on, "iomem", "true",
				"map the 64 KiB MMIO scratch memory (kvm-unit-tests' IORAM)"),
		MODVM_PROP_INT(T, iomem_base, "iomem-base", "0xff000000", 0, 0xfffff000,
			       "guest-physical address of the MMIO scratch memory (x86/ioram.h: 0xff000000)")),
	.state = MODVM_STATE(&testdev_state),
	.ops = MODVM_DEVICE_OPS(T, .init = testdev_init, .reset = testdev_reset));
#undef T
