/* modvm-lapic: a local APIC model (xAPIC register page, x2APIC MSRs, timer
 * in one-shot, periodic and TSC-deadline modes) for engines that have no
 * APIC of their own, such as cpu-bt. One struct lapic per vCPU.
 *
 * The library owns no thread, lock or timer. The engine calls it from the
 * vCPU's context (or with its own lock held) and provides, through struct
 * lapic_ops, the virtual clock, one timer per APIC, and the routes to other
 * APICs and to the IOAPIC. References: Intel SDM vol. 3A chapter 11
 * ("Advanced Programmable Interrupt Controller"), section numbers as in the
 * 2023 edition.
 *
 * Taking interrupts, at each instruction boundary where RFLAGS.IF=1:
 *
 *	if (lapic_extint_pending(l)) {           8259 through LINT0 / ExtINT
 *		lapic_extint_ack(l);
 *		vector = host->intr_ack(inst);   -1: the PIC dropped it
 *	} else if ((v = lapic_pending_vector(l)) >= 0) {
 *		lapic_ack(l, v);                 IRR -> ISR
 *		vector = v;
 *	}
 */
#ifndef MODVM_LAPIC_H
#define MODVM_LAPIC_H

#include <stdbool.h>
#include <stdint.h>

#include <modvm/state.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LAPIC_PAGE_SIZE 1024         /* struct modvm_cpu_state.lapic */
#define LAPIC_MMIO_SIZE 0x1000
#define LAPIC_VERSION 0x00050014u    /* 6 LVT entries, integrated APIC */
#define LAPIC_NO_DEADLINE UINT64_MAX /* ops->arm: cancel the timer */
/* The timer counts at 1 GHz before the divider, as KVM's APIC does, so
 * the count means the same under every engine. */
#define LAPIC_BUS_CYCLE_NS 1

/* Register offsets in the xAPIC page (SDM table 11-1) */
enum lapic_reg {
	LAPIC_ID = 0x020,
	LAPIC_LVR = 0x030,
	LAPIC_TPR = 0x080,
	LAPIC_APR = 0x090,
	LAPIC_PPR = 0x0A0,
	LAPIC_EOI = 0x0B0,
	LAPIC_RRD = 0x0C0,
	LAPIC_LDR = 0x0D0,
	LAPIC_DFR = 0x0E0,
	LAPIC_SVR = 0x0F0,
	LAPIC_ISR = 0x100,   /* 8 registers, 0x10 apart */
	LAPIC_TMR = 0x180,
	LAPIC_IRR = 0x200,
	LAPIC_ESR = 0x280,
	LAPIC_ICR_LO = 0x300,
	LAPIC_ICR_HI = 0x310,
	LAPIC_LVT_TIMER = 0x320,
	LAPIC_LVT_THERMAL = 0x330,
	LAPIC_LVT_PERF = 0x340,
	LAPIC_LVT_LINT0 = 0x350,
	LAPIC_LVT_LINT1 = 0x360,
	LAPIC_LVT_ERROR = 0x370,
	LAPIC_TIMER_ICR = 0x380,
	LAPIC_TIMER_CCR = 0x390,
	LAPIC_TIMER_DCR = 0x3E0,
	LAPIC_SELF_IPI = 0x3F0, /* x2APIC only (MSR 0x83F) */
};

/* IA32_APIC_BASE (MSR 0x1B) */
#define LAPIC_BASE_BSP (1ull << 8)
#define LAPIC_BASE_EXTD (1ull << 10) /* x2APIC mode */
#define LAPIC_BASE_EN (1ull << 11)
#define LAPIC_MSR_APIC_BASE 0x1B
#define LAPIC_MSR_X2APIC_FIRST 0x800
#define LAPIC_MSR_X2APIC_LAST 0x8FF

/* SVR */
#define LAPIC_SVR_ENABLE (1u << 8)

/* LVT and ICR fields */
#define LAPIC_VECTOR_MASK 0xFFu
#define LAPIC_DM_SHIFT 8
#define LAPIC_DM_MASK (7u << LAPIC_DM_SHIFT)
#define LAPIC_DEST_LOGICAL (1u << 11)
#define LAPIC_DELIVERY_STATUS (1u << 12)
#define LAPIC_POLARITY_LOW (1u << 13)
#define LAPIC_REMOTE_IRR (1u << 14)
#define LAPIC_LEVEL_ASSERT (1u << 14) /* ICR */
#define LAPIC_TRIGGER_LEVEL (1u << 15)
#define LAPIC_LVT_MASKED (1u << 16)
#define LAPIC_SHORTHAND_SHIFT 18
#define LAPIC_TIMER_MODE_SHIFT 17
#define LAPIC_TIMER_MODE_MASK (3u << LAPIC_TIMER_MODE_SHIFT)

enum lapic_delivery_mode {
	LAPIC_DM_FIXED = 0,
	LAPIC_DM_LOWEST = 1,
	LAPIC_DM_SMI = 2,
	LAPIC_DM_NMI = 4,
	LAPIC_DM_INIT = 5,
	LAPIC_DM_STARTUP = 6,
	LAPIC_DM_EXTINT = 7,
};

enum lapic_shorthand {
	LAPIC_SH_NONE = 0,
	LAPIC_SH_SELF = 1,
	LAPIC_SH_ALL = 2,        /* all including self */
	LAPIC_SH_OTHERS = 3,     /* all excluding self */
};

enum lapic_timer_mode {
	LAPIC_TIMER_ONESHOT = 0,
	LAPIC_TIMER_PERIODIC = 1,
	LAPIC_TIMER_TSC_DEADLINE = 2,
};

/* Signals that are not vectored interrupts: the engine acts on them. */
enum lapic_signal {
	LAPIC_SIG_NMI = 1,
	LAPIC_SIG_SMI = 2,
	LAPIC_SIG_INIT = 3,      /* the engine resets the vCPU and calls
				    lapic_init_signal */
	LAPIC_SIG_STARTUP = 4,   /* SIPI, vector = start page */
};

/* An interrupt message: an IPI from an ICR, an MSI, or an IOAPIC message. */
struct lapic_ipi {
	uint8_t vector;
	uint8_t delivery_mode;   /* enum lapic_delivery_mode */
	uint8_t shorthand;       /* enum lapic_shorthand (IPIs only) */
	bool logical;            /* destination mode */
	bool level_assert;       /* level: assert (1) or de-assert (0) */
	bool trigger_level;      /* trigger mode: level (1) or edge (0) */
	uint32_t dest;           /* 8 bits in xAPIC mode, 32 in x2APIC mode */
};

/* What the engine provides. Every callback gets the opaque pointer given
 * to lapic_init. Callbacks marked optional may be NULL. */
struct lapic_ops {
	/* Virtual time in ns: the clock the timer counts on. */
	uint64_t (*now)(void *opaque);
	/* Call lapic_timer_fire() once now() >= deadline (LAPIC_NO_DEADLINE:
	 * cancel). Re-arming replaces the previous deadline. Firing late is
	 * harmless; lapic_timer_fire ignores an early or stale call. */
	void (*arm)(void *opaque, uint64_t deadline);
	/* An IPI written to the ICR for other APICs: every shorthand but
	 * SELF, which the library handles. The engine delivers to each APIC
	 * the message names -- including the sender for LAPIC_SH_ALL and
	 * for a destination that matches it -- with lapic_match_dest and
	 * lapic_deliver (optional: then only self IPIs work). */
	void (*send_ipi)(void *opaque, const struct lapic_ipi *ipi);
	/* EOI of a level-triggered vector (its TMR bit was set): the engine
	 * forwards it to the IOAPICs so they clear remote IRR (optional). */
	void (*eoi_broadcast)(void *opaque, uint8_t vector);
	/* NMI, SMI, INIT or SIPI for this CPU (optional: then ignored). */
	void (*signal)(void *opaque, enum lapic_signal sig, uint8_t vector);
	/* Something became deliverable (an IRR bit, ExtINT): wake a halted
	 * vCPU or get it to an instruction boundary (optional). */
	void (*notify)(void *opaque);
};

/* lapic_init flags */
#define LAPIC_F_BSP (1u << 0)          /* IA32_APIC_BASE.BSP */
/* Reset to the state firmware leaves for an OS (SeaBIOS, KVM): APIC
 * software-enabled, LINT0 ExtINT (virtual wire to the 8259), LINT1 NMI.
 * modvm boots kernels directly, so the BSP wants this. */
#define LAPIC_F_VIRTUAL_WIRE (1u << 1)
#define LAPIC_F_X2APIC (1u << 2)       /* the CPU model offers x2APIC */
#define LAPIC_F_TSC_DEADLINE (1u << 3) /* the CPU model offers TSC-deadline */

struct lapic {
	/* --- configuration (set by lapic_init, not state) --------------- */
	const struct lapic_ops *ops;
	void *opaque;
	uint32_t initial_id;
	uint32_t flags;

	/* --- state (lapic_state_section) -------------------------------- */
	uint64_t apic_base;       /* IA32_APIC_BASE */
	uint32_t id;              /* APIC ID (full 32 bits in x2APIC mode) */
	uint32_t tpr, ldr, dfr, svr;
	uint32_t isr[8], tmr[8], irr[8];
	uint32_t esr;             /* what ESR reads: latched by an ESR write */
	uint32_t esr_pending;     /* errors since the last ESR write */
	uint32_t icr_lo, icr_hi;
	uint32_t lvt[6];          /* timer, thermal, perf, LINT0, LINT1, error */
	uint32_t timer_initial;   /* initial count */
	uint32_t timer_dcr;       /* divide configuration */
	uint64_t timer_deadline;  /* virtual ns of the next expiry, 0: none */
	uint64_t tsc_deadline;    /* IA32_TSC_DEADLINE as written */
	uint8_t lint0_level, lint1_level;
	uint8_t extint_msg;       /* an ExtINT message waits for its INTA */
	uint8_t pad;
	uint64_t saved_now;       /* now() at the save, to rebase times */
	/* Periodic expiries that went by while the vCPU could not run (its
	 * host thread descheduled): each is delivered when the guest takes
	 * the previous one, so a periodic tick counter (Linux's jiffies
	 * before it goes tickless) stays with the clock (lost-tick policy
	 * "delay"). Bounded by LAPIC_BACKLOG_MAX and one second. */
	uint32_t timer_backlog;
};

/* Set up with APIC ID apic_id and power-on state (lapic_reset). */
void lapic_init(struct lapic *l, const struct lapic_ops *ops, void *opaque,
		uint32_t apic_id, unsigned flags);
/* Power-on or platform reset (SDM 11.4.7.1), then the firmware state if
 * LAPIC_F_VIRTUAL_WIRE. */
void lapic_reset(struct lapic *l);
/* INIT signal: registers as at power-on, keeping the APIC ID and
 * IA32_APIC_BASE (SDM 11.4.7.3). */
void lapic_init_signal(struct lapic *l);

/* IA32_APIC_BASE. set returns -1 for a value the CPU refuses with #GP
 * (reserved bits, x2APIC without LAPIC_F_X2APIC, x2APIC -> xAPIC without
 * passing through disabled, SDM 11.12.5). The base address is recorded;
 * moving the MMIO window is the engine's business. */
uint64_t lapic_get_base(const struct lapic *l);
int lapic_set_base(struct lapic *l, uint64_t value);
bool lapic_hw_enabled(const struct lapic *l);
bool lapic_x2apic_mode(const struct lapic *l);

/* xAPIC MMIO, offset within the 4 KiB page. Registers are 32 bits at
 * 16-byte-aligned offsets; reads of 1-4 bytes inside a register give its
 * bytes, other reads 0. Writes other than 4 bytes at a register offset
 * are dropped (SDM 11.4.1: such accesses are undefined). */
uint32_t lapic_mmio_read(struct lapic *l, uint64_t offset, unsigned size);
void lapic_mmio_write(struct lapic *l, uint64_t offset, uint64_t value,
		      unsigned size);

/* x2APIC MSRs 0x800-0x8FF (SDM 11.12.1). Return -1 where the CPU raises
 * #GP: not in x2APIC mode, no such register, a read-only or write-only
 * register, reserved bits set. */
int lapic_msr_read(struct lapic *l, uint32_t msr, uint64_t *value);
int lapic_msr_write(struct lapic *l, uint32_t msr, uint64_t value);

/* CR8 (64-bit mode) is TPR[7:4] (SDM 11.8.6.1). It reads back what was
 * written in every APIC state, software- or globally disabled included,
 * as KVM's CR8 does (kvm_lapic_set_tpr): the MMIO page is not needed. */
void lapic_set_cr8(struct lapic *l, uint64_t cr8);
uint64_t lapic_get_cr8(const struct lapic *l);

/* Interrupt messages */
void lapic_msi_decode(uint64_t addr, uint32_t data, struct lapic_ipi *out);
/* Does this APIC match a physical or logical destination (SDM 11.6.2)? */
bool lapic_match_dest(const struct lapic *l, uint32_t dest, bool logical);
/* Accept a message already routed to this APIC. */
void lapic_deliver(struct lapic *l, const struct lapic_ipi *m);
/* Decode an MSI (IOAPIC, PCI) and accept it if it is for this APIC.
 * Returns true if it was. An engine with several CPUs offers a
 * lowest-priority message to each in turn and stops at the first taker. */
bool lapic_accept_msi(struct lapic *l, uint64_t addr, uint32_t data);

/* The LINT pins. LINT0 carries the 8259's INTR on a PC; in ExtINT mode
 * the CPU fetches the vector from the 8259 itself (INTA). */
void lapic_set_lint0(struct lapic *l, int level);
void lapic_set_lint1(struct lapic *l, int level);
bool lapic_extint_pending(const struct lapic *l);
void lapic_extint_ack(struct lapic *l);

/* Highest IRR vector whose priority class is above PPR, or -1. */
int lapic_pending_vector(const struct lapic *l);
/* The CPU takes `vector` (from lapic_pending_vector): IRR -> ISR. */
void lapic_ack(struct lapic *l, uint8_t vector);
/* INTA in one step: the vector to take, or the spurious vector if the
 * interrupt went away (SDM 11.9); -1 if nothing was pending at all. */
int lapic_intack(struct lapic *l);

/* The engine's timer (ops->arm) expired. */
void lapic_timer_fire(struct lapic *l);
/* IA32_TSC_DEADLINE: the guest's value and the virtual ns that TSC value
 * is reached at (the engine knows the TSC rate). Ignored unless the timer
 * is in TSC-deadline mode; 0 disarms. */
void lapic_write_tsc_deadline(struct lapic *l, uint64_t tsc,
			      uint64_t deadline_ns);
uint64_t lapic_read_tsc_deadline(const struct lapic *l);

/* The 1 KiB register page of struct modvm_cpu_state.lapic, the layout of
 * KVM_GET_LAPIC/KVM_SET_LAPIC: registers at their xAPIC offsets, the
 * current count at 0x390 (a load restarts the countdown from it), the ID
 * in bits 31:24 in xAPIC mode and as 32 bits in x2APIC mode (KVM's
 * x2APIC API). IA32_APIC_BASE and IA32_TSC_DEADLINE are MSRs and travel
 * in struct modvm_msrs: call lapic_set_base before lapic_from_page, and
 * lapic_write_tsc_deadline after it. */
void lapic_to_page(struct lapic *l, uint8_t page[LAPIC_PAGE_SIZE]);
void lapic_from_page(struct lapic *l, const uint8_t page[LAPIC_PAGE_SIZE]);

/* State section over struct lapic, for engines that snapshot their own
 * struct rather than the page. post_load re-arms the timer, so ops and
 * opaque must be set (lapic_init) before loading. */
extern const struct modvm_state_section lapic_state_section;

#ifdef __cplusplus
}
#endif

#endif
