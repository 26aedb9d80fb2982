/* ACPI fixed hardware of the modvm PC: the PM1a event and control blocks
 * and the 24-bit PM timer at MODVM_PC_PM_BASE, as the FADT describes them.
 * Section numbers cite ACPI 6.x chapter 4.8 ("ACPI Hardware Model").
 * The FADT has no SMI_CMD, so the platform is always in ACPI mode:
 * SCI_EN reads 1 and cannot be cleared (4.8.2.5, "Legacy/ACPI Select").
 */

#include <modvm/modvm.h>

#define PM_TMR_HZ 3579545ull
#define NS_PER_S 1000000000ull
#define TMR_BITS 24
#define TMR_STS_SHIFT 23 /* TMR_STS: bit 23 of the timer changed */

/* Offsets in the block at MODVM_PC_PM_BASE */
#define OFF_PM1_STS (MODVM_PC_PM1A_EVT - MODVM_PC_PM_BASE)
#define OFF_PM1_EN (OFF_PM1_STS + 2)
#define OFF_PM1_CNT (MODVM_PC_PM1A_CNT - MODVM_PC_PM_BASE)
#define OFF_PM_TMR (MODVM_PC_PM_TMR - MODVM_PC_PM_BASE)

/* PM1 status/enable bits (4.8.3.1, tables "PM1 Status/Enable Registers
 * Fixed Hardware Feature Bits") */
#define TMR_STS 0x0001
#define GBL_STS 0x0020
#define PWRBTN_STS 0x0100
#define SLPBTN_STS 0x0200
#define RTC_STS 0x0400
#define WAK_STS 0x8000
#define PCIEXP_WAKE_DIS 0x4000
#define PM1_EN_MASK (TMR_STS | GBL_STS | PWRBTN_STS | SLPBTN_STS | RTC_STS | \
		     PCIEXP_WAKE_DIS)
#define PM1_SCI_EVENTS (TMR_STS | GBL_STS | PWRBTN_STS | SLPBTN_STS | RTC_STS)

/* PM1 control bits (4.8.3.2.1) */
#define SCI_EN 0x0001
#define BM_RLD 0x0002
#define GBL_RLS 0x0004 /* write-only */
#define SLP_TYP_SHIFT 10
#define SLP_TYP_MASK 0x1C00
#define SLP_EN 0x2000  /* write-only */
#define PM1_CNT_RW (BM_RLD | SLP_TYP_MASK)

struct acpi_pm {
	struct modvm_dev dev;
	modvm_timer *timer;
	uint16_t pm1_sts;
	uint16_t pm1_en;
	uint16_t pm1_cnt;
	uint64_t tmr_seen; /* timer periods of 2^23 clocks accounted for */
	bool sci;          /* level driven on the SCI line */
};

static uint64_t ns_to_ticks(uint64_t ns)
{
	return ns / NS_PER_S * PM_TMR_HZ + ns % NS_PER_S * PM_TMR_HZ / NS_PER_S;
}

static uint64_t ticks_to_ns(uint64_t tick)
{
	uint64_t r = tick % PM_TMR_HZ;

	return tick / PM_TMR_HZ * NS_PER_S +
	       (r * NS_PER_S + PM_TMR_HZ - 1) / PM_TMR_HZ;
}

static uint64_t pm_ticks(struct acpi_pm *pm)
{
	return ns_to_ticks(pm->dev.host->clock_ns(pm->dev.inst));
}

/* TMR_STS is set whenever bit 23 of the timer changes (4.8.3.3). */
static void pm_timer_catch_up(struct acpi_pm *pm, uint64_t t)
{
	uint64_t periods = t >> TMR_STS_SHIFT;

	if (periods != pm->tmr_seen) {
		pm->pm1_sts |= TMR_STS;
		pm->tmr_seen = periods;
	}
}

/* The SCI is a level, active-high (the MADT's override for SCI_INT):
 * asserted while any enabled event has its status bit set (4.8.2.1). */
static void pm_drive_sci(struct acpi_pm *pm, bool force)
{
	bool sci = (pm->pm1_cnt & SCI_EN) &&
		   (pm->pm1_sts & pm->pm1_en & PM1_SCI_EVENTS);

	if (sci == pm->sci && !force)
		return;
	pm->sci = sci;
	pm->dev.host->irq_set(pm->dev.inst, MODVM_PC_SCI_IRQ, sci);
}

/* A host timer is needed only to raise the SCI for an enabled TMR_STS;
 * otherwise the status is brought up to date when read. */
static void pm_schedule(struct acpi_pm *pm, uint64_t t)
{
	uint64_t next;

	if (!(pm->pm1_en & TMR_STS) || (pm->pm1_sts & TMR_STS)) {
		pm->dev.host->timer_del(pm->timer);
		return;
	}
	next = ((t >> TMR_STS_SHIFT) + 1) << TMR_STS_SHIFT;
	pm->dev.host->timer_mod(pm->timer, ticks_to_ns(next));
}

static void pm_update(struct acpi_pm *pm, uint64_t t)
{
	pm_timer_catch_up(pm, t);
	pm_drive_sci(pm, false);
	pm_schedule(pm, t);
}

static void pm_timer_cb(void *opaque)
{
	struct acpi_pm *pm = opaque;

	pm_update(pm, pm_ticks(pm));
}

/* Sleep: S5 is the only state the DSDT offers (\_S5); it powers off. */
static void pm_sleep(struct acpi_pm *pm, unsigned slp_typ)
{
	if (slp_typ == MODVM_PC_SLP_TYP_S5) {
		pm->dev.host->log(pm->dev.inst, MODVM_LOG_DEBUG, "guest entered S5");
		pm->dev.host->machine_request(pm->dev.inst, MODVM_REQUEST_POWEROFF);
		return;
	}
	pm->dev.host->log(pm->dev.inst, MODVM_LOG_WARN,
		      "sleep type %u is not supported (only S5, type %u): ignored",
		      slp_typ, MODVM_PC_SLP_TYP_S5);
}

static uint8_t pm_read_byte(struct acpi_pm *pm, unsigned off, uint64_t t)
{
	uint32_t tmr = (uint32_t)(t & ((1u << TMR_BITS) - 1));

	switch (off) {
	case OFF_PM1_STS: return (uint8_t)pm->pm1_sts;
	case OFF_PM1_STS + 1: return (uint8_t)(pm->pm1_sts >> 8);
	case OFF_PM1_EN: return (uint8_t)pm->pm1_en;
	case OFF_PM1_EN + 1: return (uint8_t)(pm->pm1_en >> 8);
	case OFF_PM1_CNT: return (uint8_t)pm->pm1_cnt;
	case OFF_PM1_CNT + 1: return (uint8_t)(pm->pm1_cnt >> 8);
	case OFF_PM_TMR:
	case OFF_PM_TMR + 1:
	case OFF_PM_TMR + 2:
	case OFF_PM_TMR + 3:
		return (uint8_t)(tmr >> (8 * (off - OFF_PM_TMR)));
	default:
		return 0; /* reserved */
	}
}

/* Byte lanes keep the semantics of the 16-bit registers: status bits are
 * write-1-to-clear, SLP_TYP and SLP_EN share the high byte of PM1_CNT. */
static void pm_write_byte(struct acpi_pm *pm, unsigned off, uint8_t v)
{
	unsigned shift = (off & 1) * 8;
	uint16_t bits = (uint16_t)(v << shift), lane = (uint16_t)(0xFF << shift);

	switch (off & ~1u) {
	case OFF_PM1_STS:
		pm->pm1_sts &= (uint16_t)~bits;
		break;
	case OFF_PM1_EN:
		pm->pm1_en = (uint16_t)((pm->pm1_en & ~lane) |
					(bits & lane & PM1_EN_MASK));
		break;
	case OFF_PM1_CNT:
		pm->pm1_cnt = (uint16_t)((pm->pm1_cnt & ~lane) |
					 (bits & lane & PM1_CNT_RW)) | SCI_EN;
		if (bits & SLP_EN)
			pm_sleep(pm, (bits & SLP_TYP_MASK) >> SLP_TYP_SHIFT);
		break;
	default:
		break; /* PM_TMR is read-only; the rest is reserved */
	}
}

static uint64_t pm_read(void *opaque, uint64_t off, unsigned size)
{
	struct acpi_pm *pm = opaque;
	uint64_t t = pm_ticks(pm), v = 0;

	pm_update(pm, t);
	for (unsigned i = 0; i < size; i++) {
		uint64_t o = off + i;
		uint64_t b = o < MODVM_PC_PM_LEN ? pm_read_byte(pm, (unsigned)o, t) : 0xFF;
		v |= b << (8 * i);
	}
	return v;
}

static void pm_write(void *opaque, uint64_t off, uint64_t v, unsigned size)
{
	struct acpi_pm *pm = opaque;
	uint64_t t = pm_ticks(pm);

	pm_timer_catch_up(pm, t);
	for (unsigned i = 0; i < size && off + i < MODVM_PC_PM_LEN; i++)
		pm_write_byte(pm, (unsigned)(off + i), (uint8_t)(v >> (8 * i)));
	pm_update(pm, t);
}

static const struct modvm_io_ops pm_ops = { pm_read, pm_write };

static void acpi_pm_reset(void *dev)
{
	struct acpi_pm *pm = dev;

	pm->pm1_sts = 0;
	pm->pm1_en = 0;
	pm->pm1_cnt = SCI_EN;
	pm->tmr_seen = pm_ticks(pm) >> TMR_STS_SHIFT;
	pm_drive_sci(pm, true);
	pm->dev.host->timer_del(pm->timer);
}

static int pm_post_load(void *dev)
{
	struct acpi_pm *pm = dev;

	pm->pm1_en &= PM1_EN_MASK;
	pm->pm1_cnt = (pm->pm1_cnt & PM1_CNT_RW) | SCI_EN;
	pm_drive_sci(pm, true);
	pm_update(pm, pm_ticks(pm));
	return 0;
}

#define P struct acpi_pm
MODVM_STATE_SECTION_HOOKS(pm_state, "pm1", 1, 1, NULL, pm_post_load,
	MODVM_F_U16(P, pm1_sts), MODVM_F_U16(P, pm1_en), MODVM_F_U16(P, pm1_cnt),
	MODVM_F_U64(P, tmr_seen));
#undef P

static int acpi_pm_init(void *dev)
{
	struct acpi_pm *pm = dev;
	const struct modvm_host *host = pm->dev.host;

	pm->timer = host->timer_new(pm->dev.inst, pm_timer_cb, pm);
	if (!pm->timer) {
		host->set_error(pm->dev.inst, "cannot create a timer");
		return -1;
	}
	if (!host->pio_register(pm->dev.inst, MODVM_PC_PM_BASE, MODVM_PC_PM_LEN, &pm_ops, pm))
		return -1;
	acpi_pm_reset(pm);
	return 0;
}

MODVM_DEVICE_DEFINE(.name = "acpi-pm", .version = "1.0.0",
	.description = "ACPI PM1a event/control blocks and PM timer; S5 powers off",
	.state = MODVM_STATE(&pm_state),
	.ops = MODVM_DEVICE_OPS(struct acpi_pm, .init = acpi_pm_init,
				.reset = acpi_pm_reset));
