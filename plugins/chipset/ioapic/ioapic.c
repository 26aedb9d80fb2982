/* ioapic: an 82093AA-style I/O APIC with 24 pins at MODVM_PC_IOAPIC_BASE,
 * version 0x20 (it has the EOI register of the chipset IOAPICs that
 * followed). Interrupts leave as MSI-format messages through host->msi_send,
 * which every engine delivers to its local APICs.
 */
#include <string.h>

#include <modvm/modvm.h>

#define IOAPIC_MMIO_SIZE 0x1000
#define IOAPIC_PINS MODVM_PC_IOAPIC_PINS

/* Memory-mapped registers (82093AA 3.0, plus the ICH EOI register) */
#define IOREGSEL 0x00
#define IOWIN 0x10
#define IOEOI 0x40

/* Indirect registers */
#define IOAPICID 0x00
#define IOAPICVER 0x01
#define IOAPICARB 0x02
#define IOREDTBL 0x10 /* two 32-bit halves per pin */
#define IOREDTBL_END (IOREDTBL + 2 * IOAPIC_PINS)

#define IOAPIC_VERSION 0x20
#define IOAPIC_ID_SHIFT 24
#define IOAPIC_ID_MASK 0x0Fu

/* Redirection table entry (82093AA 3.2.4) */
#define RTE_VECTOR 0xFFull
#define RTE_DELMOD_SHIFT 8
#define RTE_DELMOD (7ull << RTE_DELMOD_SHIFT)
#define RTE_DESTMOD (1ull << 11)
#define RTE_DELIVS (1ull << 12) /* RO: message pending */
#define RTE_INTPOL (1ull << 13)
#define RTE_REMOTE_IRR (1ull << 14) /* RO: level interrupt accepted */
#define RTE_TRIGGER_LEVEL (1ull << 15)
#define RTE_MASK (1ull << 16)
#define RTE_DEST_SHIFT 56
#define RTE_WRITABLE (RTE_VECTOR | RTE_DELMOD | RTE_DESTMOD | RTE_INTPOL | \
		      RTE_TRIGGER_LEVEL | RTE_MASK | (0xFFull << RTE_DEST_SHIFT))

/* MSI message format (Intel SDM vol. 3A 11.11) */
#define MSI_ADDR_DEST_SHIFT 12
#define MSI_ADDR_DEST_LOGICAL (1u << 2)
#define MSI_DATA_LEVEL_ASSERT (1u << 14)
#define MSI_DATA_TRIGGER_LEVEL (1u << 15)

/* Platform interrupt lines seen by the IOAPIC: ISA IRQs 0-15 and PCI INTx
 * 16-23. The MADT built by core/boot/acpi.c declares the one override
 * every PC has: ISA IRQ 0 (PIT) on pin 2. Line 2 is the 8259 cascade, which
 * no device drives, and pin 0 (the 8259's INTR on real boards) is unused. */
#define IOAPIC_LINES IOAPIC_PINS

struct ioapic {
	struct modvm_dev dev;
	uint8_t reset_id;            /* property "apic-id" */

	/* --- state ---------------------------------------------------- */
	uint8_t id;
	uint8_t regsel;
	uint32_t pin_level;          /* bit per pin: input asserted */
	uint64_t redir[IOAPIC_PINS];
};

static int line_to_pin(unsigned line)
{
	if (line == MODVM_PC_IRQ_PIT)
		return 2;
	if (line == MODVM_PC_IRQ_CASCADE || line >= IOAPIC_LINES)
		return -1;
	return (int)line;
}

/* Send pin's interrupt. Input levels are logical (1 = asserted), whatever
 * the polarity bit says: modvm's lines carry assertion, not voltage. */
static void ioapic_deliver(struct ioapic *s, unsigned pin)
{
	uint64_t e = s->redir[pin];
	uint8_t dest = (uint8_t)(e >> RTE_DEST_SHIFT);
	uint64_t addr = MODVM_PC_MSI_BASE | (uint64_t)dest << MSI_ADDR_DEST_SHIFT;
	uint32_t data = (uint32_t)(e & (RTE_VECTOR | RTE_DELMOD)) |
			MSI_DATA_LEVEL_ASSERT;

	if (e & RTE_DESTMOD)
		addr |= MSI_ADDR_DEST_LOGICAL;
	if (e & RTE_TRIGGER_LEVEL) {
		data |= MSI_DATA_TRIGGER_LEVEL;
		/* Remote IRR: accepted, waiting for the EOI (82093AA 3.2.4). */
		s->redir[pin] |= RTE_REMOTE_IRR;
	}
	s->dev.host->msi_send(s->dev.inst, addr, data);
}

/* A level-triggered pin sends while it is asserted, unmasked and not
 * waiting for an EOI. */
static void ioapic_check_level(struct ioapic *s, unsigned pin)
{
	uint64_t e = s->redir[pin];

	if ((e & RTE_TRIGGER_LEVEL) && !(e & (RTE_MASK | RTE_REMOTE_IRR)) &&
	    (s->pin_level & (1u << pin)))
		ioapic_deliver(s, pin);
}

static void ioapic_set_line(void *opaque, unsigned line, int level)
{
	struct ioapic *s = opaque;
	int pin = line_to_pin(line);
	uint32_t bit;
	bool rising;

	if (pin < 0)
		return;
	bit = 1u << pin;
	rising = level && !(s->pin_level & bit);
	if (level)
		s->pin_level |= bit;
	else
		s->pin_level &= ~bit;
	/* A masked pin ignores edges and level changes alike: nothing is
	 * held pending (82093AA 3.2.4, "Interrupt Mask"). */
	if (s->redir[pin] & RTE_MASK)
		return;
	if (s->redir[pin] & RTE_TRIGGER_LEVEL)
		ioapic_check_level(s, (unsigned)pin);
	else if (rising)
		ioapic_deliver(s, (unsigned)pin);
}

/* End of a level-triggered interrupt with this vector: clear remote IRR,
 * and send again if the line is still asserted. */
static void ioapic_eoi(struct ioapic *s, uint8_t vector)
{
	for (unsigned pin = 0; pin < IOAPIC_PINS; pin++) {
		uint64_t e = s->redir[pin];

		if ((e & RTE_VECTOR) != vector || !(e & RTE_REMOTE_IRR))
			continue;
		s->redir[pin] &= ~RTE_REMOTE_IRR;
		ioapic_check_level(s, pin);
	}
}

static uint32_t ioapic_reg_read(const struct ioapic *s, uint8_t reg)
{
	unsigned pin;

	switch (reg) {
	case IOAPICID:
	case IOAPICARB: /* the arbitration ID is loaded from the ID */
		return (uint32_t)s->id << IOAPIC_ID_SHIFT;
	case IOAPICVER:
		return (IOAPIC_PINS - 1) << 16 | IOAPIC_VERSION;
	}
	if (reg < IOREDTBL || reg >= IOREDTBL_END)
		return 0; /* no such register */
	pin = (reg - IOREDTBL) / 2;
	if (reg & 1)
		return (uint32_t)(s->redir[pin] >> 32);
	return (uint32_t)s->redir[pin];
}

static void ioapic_write_rte(struct ioapic *s, unsigned pin, bool high,
			     uint32_t v)
{
	uint64_t e = s->redir[pin], w;

	if (high)
		w = (e & 0xFFFFFFFFull) | (uint64_t)v << 32;
	else
		w = (e & ~0xFFFFFFFFull) | v;
	s->redir[pin] = (e & ~RTE_WRITABLE) | (w & RTE_WRITABLE);
	/* Remote IRR only means something for level triggering. */
	if (!(s->redir[pin] & RTE_TRIGGER_LEVEL))
		s->redir[pin] &= ~RTE_REMOTE_IRR;
	/* Unmasking a level pin whose line is asserted sends it now; a
	 * masked edge was never remembered, so an edge pin waits. */
	ioapic_check_level(s, pin);
}

static void ioapic_reg_write(struct ioapic *s, uint8_t reg, uint32_t v)
{
	if (reg == IOAPICID) {
		s->id = (v >> IOAPIC_ID_SHIFT) & IOAPIC_ID_MASK;
		return;
	}
	if (reg < IOREDTBL || reg >= IOREDTBL_END)
		return; /* read-only or nonexistent */
	ioapic_write_rte(s, (reg - IOREDTBL) / 2, reg & 1, v);
}

/* The registers are 32 bits wide at 0x00, 0x10 and 0x40; a narrower
 * access reaches the bytes it covers, everything else reads as 0. */
static uint32_t mmio_reg_read(struct ioapic *s, uint64_t reg)
{
	switch (reg) {
	case IOREGSEL:
		return s->regsel;
	case IOWIN:
		return ioapic_reg_read(s, s->regsel);
	default:
		return 0; /* IOEOI is write-only */
	}
}

static uint64_t ioapic_mmio_read(void *opaque, uint64_t off, unsigned size)
{
	unsigned shift = (unsigned)(off & 3) * 8;

	if (off >= IOAPIC_MMIO_SIZE)
		return 0;
	return mmio_reg_read(opaque, off & ~3ull) >> shift;
}

static void ioapic_mmio_write(void *opaque, uint64_t off, uint64_t v,
			      unsigned size)
{
	struct ioapic *s = opaque;
	unsigned shift = (unsigned)(off & 3) * 8;
	uint64_t reg = off & ~3ull;
	uint32_t mask, val;

	if (off >= IOAPIC_MMIO_SIZE)
		return;
	mask = size >= 4 ? 0xFFFFFFFFu : ((1u << (8 * size)) - 1);
	mask = (uint32_t)((uint64_t)mask << shift);
	val = (uint32_t)(v << shift) & mask;
	switch (reg) {
	case IOREGSEL:
		s->regsel = (uint8_t)((s->regsel & ~mask) | val);
		break;
	case IOWIN:
		ioapic_reg_write(s, s->regsel,
				 (ioapic_reg_read(s, s->regsel) & ~mask) | val);
		break;
	case IOEOI:
		if (mask & 0xFF)
			ioapic_eoi(s, (uint8_t)val);
		break;
	}
}

static const struct modvm_io_ops ioapic_io_ops = {
	ioapic_mmio_read, ioapic_mmio_write
};

/* Power-on: every pin masked, edge, fixed, vector 0 (82093AA 3.2.4). */
static void ioapic_reset(void *dev)
{
	struct ioapic *s = dev;

	s->regsel = 0;
	s->id = s->reset_id;
	for (unsigned pin = 0; pin < IOAPIC_PINS; pin++)
		s->redir[pin] = RTE_MASK;
}

static void ioapic_eoi_cb(void *opaque, uint8_t vector)
{
	ioapic_eoi(opaque, vector);
}

static int ioapic_init(void *dev)
{
	struct ioapic *s = dev;
	const struct modvm_host *host = s->dev.host;

	ioapic_reset(s);
	if (!host->mmio_register(s->dev.inst, MODVM_PC_IOAPIC_BASE, IOAPIC_MMIO_SIZE,
				 &ioapic_io_ops, s))
		return -1;
	if (!host->irq_sink_register(s->dev.inst, 0, IOAPIC_LINES, ioapic_set_line, s))
		return -1;
	/* Local APICs broadcast EOIs of level-triggered vectors: that is
	 * how Linux ends a level interrupt (the EOI register is the other). */
	return host->eoi_listener_register(s->dev.inst, ioapic_eoi_cb, s) ? -1 : 0;
}

static int ioapic_post_load(void *dev)
{
	struct ioapic *s = dev;

	s->id &= IOAPIC_ID_MASK;
	for (unsigned pin = 0; pin < IOAPIC_PINS; pin++) {
		s->redir[pin] &= RTE_WRITABLE | RTE_REMOTE_IRR;
		if (!(s->redir[pin] & RTE_TRIGGER_LEVEL))
			s->redir[pin] &= ~RTE_REMOTE_IRR;
	}
	s->pin_level &= (1ull << IOAPIC_PINS) - 1;
	return 0;
}

#define S struct ioapic
MODVM_STATE_SECTION_HOOKS(ioapic_state, "ioapic", 1, 1, NULL, ioapic_post_load,
	MODVM_F_U8(S, id), MODVM_F_U8(S, regsel), MODVM_F_U32(S, pin_level),
	MODVM_F_U64A(S, redir, IOAPIC_PINS));

MODVM_DEVICE_DEFINE(.name = "ioapic", .version = "1.0.0",
	.description = "82093AA-style I/O APIC, 24 pins, delivering MSI messages",
	.props = MODVM_PROPS(MODVM_PROP_INT(S, reset_id, "apic-id", "1", 0, 15,
		"IOAPIC ID at reset; the MADT gives the number of CPUs")),
	.state = MODVM_STATE(&ioapic_state),
	.ops = MODVM_DEVICE_OPS(S, .init = ioapic_init, .reset = ioapic_reset));
#undef S
