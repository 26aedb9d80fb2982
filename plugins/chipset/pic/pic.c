/* The PC's two cascaded 8259A programmable interrupt controllers (ports
 * 0x20/0x21 and 0xA0/0xA1) with the PIIX ELCR at 0x4D0/0x4D1. Section
 * numbers cite the Intel 8259A datasheet (order no. 231468); the ELCR is
 * from the 82371AB (PIIX4) datasheet, 4.1.9.
 */
#include <string.h>

#include <modvm/modvm.h>

/* ICW1 (A0 = 0, D4 = 1) */
#define ICW1_IC4 0x01  /* ICW4 needed */
#define ICW1_SNGL 0x02 /* single 8259A, no ICW3 */
#define ICW1_LTIM 0x08 /* level triggered mode for every input */
#define ICW1_SEL 0x10
/* ICW4 */
#define ICW4_UPM 0x01  /* 8086/8088 mode (else MCS-80/85) */
#define ICW4_AEOI 0x02 /* automatic EOI */
#define ICW4_SFNM 0x10 /* special fully nested mode */
/* OCW3 (A0 = 0, D4 = 0, D3 = 1) */
#define OCW3_SEL 0x08
#define OCW3_RIS 0x01
#define OCW3_RR 0x02
#define OCW3_P 0x04
#define OCW3_SMM 0x20
#define OCW3_ESMM 0x40
/* OCW2 commands, bits R SL EOI (7:5) */
enum {
	OCW2_ROTATE_AEOI_CLEAR = 0,
	OCW2_NS_EOI = 1,
	OCW2_NOP = 2,
	OCW2_S_EOI = 3,
	OCW2_ROTATE_AEOI_SET = 4,
	OCW2_ROTATE_NS_EOI = 5,
	OCW2_SET_PRIORITY = 6,
	OCW2_ROTATE_S_EOI = 7,
};

/* PIIX ELCR: IRQ 0, 1, 2, 8 and 13 are always edge triggered. */
#define ELCR1_MASK 0xF8
#define ELCR2_MASK 0xDE

#define CASCADE_IR 2 /* the slave's INT drives master IR2 on every PC */
#define MASTER 0
#define SLAVE 1

struct pic_chip {
	uint8_t irr;       /* Interrupt Request Register */
	uint8_t isr;       /* In-Service Register */
	uint8_t imr;       /* Interrupt Mask Register (OCW1) */
	uint8_t lines;     /* current level of the IR0-7 inputs */
	uint8_t elcr;      /* 1 = level triggered (PIIX ELCR) */
	uint8_t icw1, icw2, icw3, icw4;
	uint8_t init_step; /* next ICW expected on A0 = 1: 2, 3, 4; 0 = none */
	uint8_t lowest;    /* IR with the lowest priority (rotation state) */
	bool read_isr;     /* OCW3 RIS: status reads give ISR, else IRR */
	bool poll;         /* OCW3 P: the next read is a poll */
	bool special_mask; /* OCW3 SMM */
	bool rotate_aeoi;  /* OCW2: rotate in automatic EOI mode */
};

struct pic {
	struct modvm_dev dev;
	struct pic_chip chip[2];
	bool intr; /* level driven on the CPU's INTR pin */
};

static uint8_t bit(unsigned ir)
{
	return (uint8_t)(1u << ir);
}

/* Priority rank of IR `ir`, 0 being the highest (fully nested mode with
 * rotation: the IR after the lowest one is the highest, section "Rotation"). */
static unsigned rank(const struct pic_chip *c, unsigned ir)
{
	return (ir - c->lowest - 1) & 7;
}

/* The IR with the highest priority among `bits`, or -1. */
static int highest(const struct pic_chip *c, uint8_t bits)
{
	for (unsigned r = 0; r < 8; r++) {
		unsigned ir = (c->lowest + 1 + r) & 7;
		if (bits & bit(ir))
			return (int)ir;
	}
	return -1;
}

static uint8_t level_mask(const struct pic_chip *c)
{
	return (c->icw1 & ICW1_LTIM) ? 0xFF : c->elcr;
}

static bool single_mode(const struct pic_chip *c)
{
	return c->icw1 & ICW1_SNGL;
}

/* In level mode the request follows the input; in edge mode it is a
 * latch set by a rising edge and cleared by INTA (section "Edge and Level
 * Triggered Modes"). */
static void chip_sync_levels(struct pic_chip *c)
{
	uint8_t lvl = level_mask(c);

	c->irr = (uint8_t)((c->irr & ~lvl) | (c->lines & lvl));
}

static void chip_set_input(struct pic_chip *c, unsigned ir, bool level)
{
	if (level) {
		if (!(c->lines & bit(ir)))
			c->irr |= bit(ir);
		c->lines |= bit(ir);
	} else {
		c->lines &= (uint8_t)~bit(ir);
	}
	chip_sync_levels(c);
}

static bool is_cascade(const struct pic_chip *c, bool master, unsigned ir)
{
	return master && !single_mode(c) && (c->icw3 & bit(ir));
}

/*
 * The IR the chip would interrupt the CPU for, or -1. A request must be
 * unmasked and of higher priority than everything in service; in special
 * mask mode masked in-service levels do not block ("Special Mask Mode"),
 * and in special fully nested mode the master accepts a new request from
 * the slave already in service ("Special Fully Nested Mode").
 */
static int chip_resolve(const struct pic_chip *c, bool master)
{
	uint8_t blocking = c->isr;
	int ir = highest(c, c->irr & (uint8_t)~c->imr);
	int in;

	if (ir < 0)
		return -1;
	if (c->special_mask)
		blocking &= (uint8_t)~c->imr;
	in = highest(c, blocking);
	if (in < 0 || rank(c, (unsigned)ir) < rank(c, (unsigned)in))
		return ir;
	if (in == ir && (c->icw4 & ICW4_SFNM) && is_cascade(c, master, (unsigned)ir))
		return ir;
	return -1;
}

/* The slave's INT output is master IR2; the master's is INTR. */
static void pic_drive(struct pic *p, bool force)
{
	bool slave_int = chip_resolve(&p->chip[SLAVE], false) >= 0;
	bool intr;

	chip_set_input(&p->chip[MASTER], CASCADE_IR, slave_int);
	intr = chip_resolve(&p->chip[MASTER], true) >= 0;
	if (intr != p->intr || force) {
		p->intr = intr;
		p->dev.host->intr_set(p->dev.inst, intr);
	}
}

static void pic_update(struct pic *p)
{
	pic_drive(p, false);
}

/* Vector in 8086 mode: T7-T3 from ICW2, the IR in the low three bits.
 * MCS-80/85 mode is not emulated: the chip always answers like this. */
static int chip_vector(const struct pic_chip *c, unsigned ir)
{
	return (c->icw2 & 0xF8) | (int)ir;
}

/* First INTA pulse: the request moves from IRR to ISR; with AEOI the ISR
 * bit is cleared again at the end of the last pulse. */
static void chip_accept(struct pic_chip *c, unsigned ir)
{
	c->irr &= (uint8_t)~bit(ir);
	c->isr |= bit(ir);
	chip_sync_levels(c);
	if (c->icw4 & ICW4_AEOI) {
		c->isr &= (uint8_t)~bit(ir);
		if (c->rotate_aeoi)
			c->lowest = (uint8_t)ir;
	}
}

/* A request that went away before INTA gets IR7's vector with no ISR bit
 * set (section "Interrupt Sequence", the default IR7). */
static int chip_intack(struct pic_chip *c, bool master)
{
	int ir = chip_resolve(c, master);

	if (ir < 0)
		return chip_vector(c, 7);
	chip_accept(c, (unsigned)ir);
	return chip_vector(c, (unsigned)ir);
}

/*
 * INTA cycle. When the master resolves a cascaded IR it sets that ISR bit
 * and the slave whose ICW3 ID matches the CAS lines supplies the vector —
 * its own IR7 if its request vanished, the spurious IRQ 15 that leaves the
 * master's IR2 in service. No slave with that ID: the bus floats (0xFF).
 */
static int pic_intack(void *opaque)
{
	struct pic *p = opaque;
	struct pic_chip *m = &p->chip[MASTER];
	int ir = chip_resolve(m, true);
	int vec;

	if (ir < 0) {
		vec = chip_vector(m, 7);
	} else if (is_cascade(m, true, (unsigned)ir)) {
		chip_accept(m, (unsigned)ir);
		if (ir == CASCADE_IR && (p->chip[SLAVE].icw3 & 7) == CASCADE_IR)
			vec = chip_intack(&p->chip[SLAVE], false);
		else
			vec = 0xFF;
	} else {
		chip_accept(m, (unsigned)ir);
		vec = chip_vector(m, (unsigned)ir);
	}
	pic_update(p);
	return vec;
}

/* Poll command: the read acts as INTA and returns I - - - - W2 W1 W0
 * (section "The Poll Command"). */
static uint8_t chip_poll(struct pic *p, unsigned idx)
{
	struct pic_chip *c = &p->chip[idx];
	int ir = chip_resolve(c, idx == MASTER);

	c->poll = false;
	if (ir < 0)
		return 0;
	chip_accept(c, (unsigned)ir);
	pic_update(p);
	return (uint8_t)(0x80 | ir);
}

/* ICW1 (section "Initialization Command Words"): edge latches, IMR and
 * ISR cleared, IR7 lowest, slave address 7, special mask mode off, status
 * read set to IRR, and ICW4 functions zero unless ICW4 follows. */
static void chip_icw1(struct pic_chip *c, uint8_t v)
{
	c->icw1 = v;
	c->irr = 0;
	c->isr = 0;
	c->imr = 0;
	c->lowest = 7;
	c->icw3 = 7;
	c->special_mask = false;
	c->read_isr = false;
	c->poll = false;
	c->rotate_aeoi = false;
	if (!(v & ICW1_IC4))
		c->icw4 = 0;
	c->init_step = 2;
	chip_sync_levels(c);
}

static void chip_icw(struct pic_chip *c, uint8_t v)
{
	switch (c->init_step) {
	case 2:
		c->icw2 = v;
		c->init_step = !single_mode(c) ? 3 : (c->icw1 & ICW1_IC4) ? 4 : 0;
		break;
	case 3:
		c->icw3 = v;
		c->init_step = (c->icw1 & ICW1_IC4) ? 4 : 0;
		break;
	default:
		c->icw4 = v;
		c->init_step = 0;
		break;
	}
}

static void chip_eoi(struct pic_chip *c, int ir, bool rotate)
{
	if (ir < 0)
		return;
	c->isr &= (uint8_t)~bit((unsigned)ir);
	if (rotate)
		c->lowest = (uint8_t)ir;
}

static void chip_ocw2(struct pic_chip *c, uint8_t v)
{
	unsigned level = v & 7;

	switch (v >> 5) {
	case OCW2_ROTATE_AEOI_CLEAR:
		c->rotate_aeoi = false;
		break;
	case OCW2_ROTATE_AEOI_SET:
		c->rotate_aeoi = true;
		break;
	case OCW2_NS_EOI:
		chip_eoi(c, highest(c, c->isr), false);
		break;
	case OCW2_ROTATE_NS_EOI:
		chip_eoi(c, highest(c, c->isr), true);
		break;
	case OCW2_S_EOI:
		chip_eoi(c, (int)level, false);
		break;
	case OCW2_ROTATE_S_EOI:
		chip_eoi(c, (int)level, true);
		break;
	case OCW2_SET_PRIORITY:
		c->lowest = (uint8_t)level;
		break;
	default: /* OCW2_NOP */
		break;
	}
}

static void chip_ocw3(struct pic_chip *c, uint8_t v)
{
	if (v & OCW3_P)
		c->poll = true;
	if (v & OCW3_RR)
		c->read_isr = v & OCW3_RIS;
	if (v & OCW3_ESMM)
		c->special_mask = v & OCW3_SMM;
}

static void chip_write(struct pic *p, unsigned idx, unsigned a0, uint8_t v)
{
	struct pic_chip *c = &p->chip[idx];

	if (a0 && c->init_step)
		chip_icw(c, v);
	else if (a0)
		c->imr = v; /* OCW1 */
	else if (v & ICW1_SEL)
		chip_icw1(c, v);
	else if (v & OCW3_SEL)
		chip_ocw3(c, v);
	else
		chip_ocw2(c, v);
	pic_update(p);
}

static uint8_t chip_read(struct pic *p, unsigned idx, unsigned a0)
{
	struct pic_chip *c = &p->chip[idx];

	if (c->poll)
		return chip_poll(p, idx);
	if (a0)
		return c->imr;
	return c->read_isr ? c->isr : c->irr;
}

/* Wider accesses reach consecutive byte registers, as an ISA bus would
 * split them; bytes past the region read as a floating bus. */
static uint64_t chip_io_read(struct pic *p, unsigned idx, uint64_t off,
			     unsigned size)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < size; i++) {
		uint64_t b = off + i < 2 ? chip_read(p, idx, (unsigned)(off + i)) : 0xFF;
		v |= b << (8 * i);
	}
	return v;
}

static void chip_io_write(struct pic *p, unsigned idx, uint64_t off,
			  uint64_t v, unsigned size)
{
	for (unsigned i = 0; i < size && off + i < 2; i++)
		chip_write(p, idx, (unsigned)(off + i), (uint8_t)(v >> (8 * i)));
}

static uint64_t master_read(void *o, uint64_t off, unsigned size)
{
	return chip_io_read(o, MASTER, off, size);
}

static void master_write(void *o, uint64_t off, uint64_t v, unsigned size)
{
	chip_io_write(o, MASTER, off, v, size);
}

static uint64_t slave_read(void *o, uint64_t off, unsigned size)
{
	return chip_io_read(o, SLAVE, off, size);
}

static void slave_write(void *o, uint64_t off, uint64_t v, unsigned size)
{
	chip_io_write(o, SLAVE, off, v, size);
}

static const uint8_t elcr_mask[2] = { ELCR1_MASK, ELCR2_MASK };

static uint64_t elcr_read(void *o, uint64_t off, unsigned size)
{
	struct pic *p = o;
	uint64_t v = 0;

	for (unsigned i = 0; i < size; i++)
		v |= (uint64_t)(off + i < 2 ? p->chip[off + i].elcr : 0xFF) << (8 * i);
	return v;
}

static void elcr_write(void *o, uint64_t off, uint64_t v, unsigned size)
{
	struct pic *p = o;

	for (unsigned i = 0; i < size && off + i < 2; i++) {
		struct pic_chip *c = &p->chip[off + i];
		c->elcr = (uint8_t)(v >> (8 * i)) & elcr_mask[off + i];
		chip_sync_levels(c);
	}
	pic_update(p);
}

static const struct modvm_io_ops master_ops = { master_read, master_write };
static const struct modvm_io_ops slave_ops = { slave_read, slave_write };
static const struct modvm_io_ops elcr_ops = { elcr_read, elcr_write };

/* ISA lines 0-15. Line 2 is not a bus line on a PC (IR2 carries the
 * slave), so a device driving it is ignored. */
static void pic_irq_set(void *opaque, unsigned line, int level)
{
	struct pic *p = opaque;

	if (line >= 16 || line == CASCADE_IR)
		return;
	chip_set_input(&p->chip[line / 8], line % 8, level != 0);
	pic_update(p);
}

/* Power-on state. The datasheet leaves it undefined until ICW1; modvm
 * starts with every input masked so nothing reaches the CPU before the
 * guest programs the chips. Input levels are the bus's, not reset. */
static void chip_power_on(struct pic_chip *c)
{
	uint8_t lines = c->lines;

	memset(c, 0, sizeof(*c));
	c->lines = lines;
	c->imr = 0xFF;
	c->lowest = 7;
	c->icw3 = 7;
}

static void pic_reset(void *dev)
{
	struct pic *p = dev;

	chip_power_on(&p->chip[MASTER]);
	chip_power_on(&p->chip[SLAVE]);
	pic_drive(p, true);
}

#define C struct pic_chip
static const struct modvm_state_field chip_fields[] = {
	MODVM_F_U8(C, irr), MODVM_F_U8(C, isr), MODVM_F_U8(C, imr),
	MODVM_F_U8(C, lines), MODVM_F_U8(C, elcr), MODVM_F_U8(C, icw1),
	MODVM_F_U8(C, icw2), MODVM_F_U8(C, icw3), MODVM_F_U8(C, icw4),
	MODVM_F_U8(C, init_step), MODVM_F_U8(C, lowest),
	MODVM_F_BOOL(C, read_isr), MODVM_F_BOOL(C, poll),
	MODVM_F_BOOL(C, special_mask), MODVM_F_BOOL(C, rotate_aeoi),
};
#undef C

/* Anything a snapshot could hold is a state the registers can reach,
 * except out-of-range small fields: clamp those. */
static int pic_post_load(void *dev)
{
	struct pic *p = dev;

	for (unsigned i = 0; i < 2; i++) {
		struct pic_chip *c = &p->chip[i];
		c->lowest &= 7;
		if (c->init_step != 2 && c->init_step != 3 && c->init_step != 4)
			c->init_step = 0;
		c->elcr &= elcr_mask[i];
		chip_sync_levels(c);
	}
	/* Re-drive INTR: the loading machine's pin may differ. */
	pic_drive(p, true);
	return 0;
}

/* chip[0] is the master at 0x20, chip[1] the slave at 0xA0 */
MODVM_STATE_SECTION_HOOKS(pic_state, "pic", 1, 1, NULL, pic_post_load,
	MODVM_F_STRUCT(struct pic, chip, struct pic_chip, chip_fields));

static int pic_init(void *dev)
{
	struct pic *p = dev;
	const struct modvm_host *host = p->dev.host;
	modvm_inst *inst = p->dev.inst;

	if (!host->pio_register(inst, MODVM_PC_PORT_PIC1, 2, &master_ops, p) ||
	    !host->pio_register(inst, MODVM_PC_PORT_PIC2, 2, &slave_ops, p) ||
	    !host->pio_register(inst, MODVM_PC_PORT_ELCR, 2, &elcr_ops, p) ||
	    !host->irq_sink_register(inst, 0, 16, pic_irq_set, p) ||
	    host->intr_source_register(inst, pic_intack, p))
		return -1;
	pic_reset(p);
	return 0;
}

MODVM_DEVICE_DEFINE(.name = "pic-8259", .version = "1.0.0",
	.description = "Dual 8259A interrupt controller with the PIIX ELCR",
	.state = MODVM_STATE(&pic_state),
	.ops = MODVM_DEVICE_OPS(struct pic, .init = pic_init, .reset = pic_reset));
