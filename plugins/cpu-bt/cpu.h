/* cpu-bt: the interpreter core. A struct bt_cpu holds one vCPU in the SDK's
 * canonical layout (struct modvm_cpu_state) plus derived mode bits and a
 * software TLB; it reaches memory, ports and interrupts only through a
 * struct bt_bus, so it runs in the plugin and in a test fixture alike.
 */
#ifndef BT_CPU_H
#define BT_CPU_H

#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>

#include <modvm/cpu.h>

#include "decode.h"
#include "x86_regs.h"   /* plugins/lib: CR0_*, CR4_*, EFER_* */

/* What the core needs from its surroundings. */
struct bt_bus {
	void *opaque;
	/* Host pointer to [gpa, gpa+len) if it is RAM, else NULL. */
	void *(*ram_ptr)(void *opaque, uint64_t gpa, uint64_t len);
	/* Called once per page when a TLB entry allowing writes is made. */
	void (*ram_dirty)(void *opaque, uint64_t gpa, uint64_t len);
	void (*mmio_read)(void *opaque, uint64_t gpa, void *data, unsigned size);
	void (*mmio_write)(void *opaque, uint64_t gpa, const void *data,
			   unsigned size);
	uint64_t (*pio_read)(void *opaque, uint16_t port, unsigned size);
	void (*pio_write)(void *opaque, uint16_t port, uint64_t val,
			  unsigned size);
	uint64_t (*clock_ns)(void *opaque);
	/* Maskable interrupt: is one pending, and take it (vector or -1). */
	bool (*intr_pending)(void *opaque);
	int (*intr_ack)(void *opaque);
	/* The vCPU wrote an MSR the core does not own (APIC base, TSC
	 * deadline); may be NULL. Returns false for #GP. */
	bool (*wrmsr)(void *opaque, uint32_t msr, uint64_t val);
	/* CR8 is the local APIC's TPR[7:4] (SDM 3A 10.8.6.1); NULL: a plain
	 * register. */
	uint64_t (*cr8_read)(void *opaque);
	void (*cr8_write)(void *opaque, uint64_t val);
	/* The vCPU read an MSR the core does not own (the x2APIC registers
	 * 0x800-0x8FF); may be NULL. Returns false for #GP. */
	bool (*rdmsr)(void *opaque, uint32_t msr, uint64_t *val);
};

/* RFLAGS bits (SDM vol. 1 3.4.3) */
#define BT_CF 0x0001u
#define BT_PF 0x0004u
#define BT_AF 0x0010u
#define BT_ZF 0x0040u
#define BT_SF 0x0080u
#define BT_TF 0x0100u
#define BT_IF 0x0200u
#define BT_DF 0x0400u
#define BT_OF 0x0800u
#define BT_IOPL 0x3000u
#define BT_NT 0x4000u
#define BT_RF 0x10000u
#define BT_VM 0x20000u
#define BT_AC 0x40000u
#define BT_VIF 0x80000u
#define BT_VIP 0x100000u
#define BT_ID 0x200000u
#define BT_ARITH (BT_CF | BT_PF | BT_AF | BT_ZF | BT_SF | BT_OF)


/* Exception vectors */
enum {
	BT_DE = 0, BT_DB = 1, BT_NMI = 2, BT_BP = 3, BT_OFV = 4, BT_BR = 5,
	BT_UD = 6, BT_NM = 7, BT_DFV = 8, BT_TS = 10, BT_NP = 11, BT_SSV = 12,
	BT_GP = 13, BT_PFV = 14, BT_MF = 16, BT_AC_V = 17, BT_MC = 18,
	BT_XM = 19,
};

/* Software TLB: direct-mapped, one entry per 4 KiB linear page. */
#define BT_TLB_SIZE 1024
#define BT_NG_MAX 256
#define BT_LARGE_MAX 32
#define TLBF_W 1   /* writable at every level */
#define TLBF_U 2   /* user at every level */
#define TLBF_NX 4  /* no-execute at some level */
#define TLBF_D 8   /* dirty bit already set (or no paging) */
#define TLBF_G 16  /* global */
#define TLBF_CW 32 /* writable and dirty, but the page holds translations:
		      each write reports its bytes (bt_jit_code_write) */
/* bits 12-15: the leaf's protection key (PTE bits 62:59, IA-32e paging) */
#define TLBF_PKEY_SHIFT 12
#define TLBF_PKEY(f) (((f) >> TLBF_PKEY_SHIFT) & 15)

struct bt_tlb_entry {
	uint64_t tag;      /* linear page | 1, 0 if invalid */
	uint64_t gpa;      /* physical page */
	uint8_t *host;     /* host page if RAM, else NULL (MMIO) */
	uint32_t flags;
};

/* The translator's TLB (jit.c): one per privilege (0: CPL 0-2, 1: CPL 3),
 * checked inline by generated code. A tag is the linear page, or ~0 when
 * the access must take the slow path (not mapped, MMIO, not writable, D
 * bit clear, or, for writes, a page holding translations). */
#define BT_JTLB_SIZE 1024
struct bt_jtlb {
	uint64_t rtag;
	uint64_t wtag;
	uint64_t addend;   /* host address - linear address */
	uint64_t gpa;      /* physical page; bit 0: global */
};

/* Indirect jumps, calls and returns of translated code look their target
 * up here inline (per privilege, by RIP) before going to the dispatcher. */
#define BT_JC_SIZE 4096
struct bt_jc {
	uint64_t rip;      /* ~0: empty */
	const void *code;
};

/* A segment as translated 16/32-bit code checks it (jit.c, refreshed
 * before each entry): an access of size n at offset off is done inline if
 * off + n - 1 <= the limit for its kind (signed; -1: never, the access
 * goes to the interpreter, which raises the fault or handles expand-down). */
struct bt_jseg {
	uint64_t base;
	int64_t rlim, wlim;
};

struct bt_jit;

/* Why bt_cpu_run returned. */
enum bt_exit {
	BT_EXIT_BUDGET = 0,  /* ran its instruction budget */
	BT_EXIT_HLT,         /* halted: wait for an interrupt */
	BT_EXIT_SHUTDOWN,    /* triple fault */
	BT_EXIT_STOP,        /* stop flag seen */
};

/* Decoded-instruction cache, keyed by linear address and checked against
 * the current bytes on every use, so self-modifying code needs no
 * invalidation: a hit saves the decode, never the fetch. */
#define BT_ICACHE_SIZE 4096
struct bt_icache_entry {
	uint64_t lin;
	uint8_t mode;
	uint8_t len;      /* 0: empty */
	uint8_t bytes[15];
	struct bt_insn insn;
};

struct bt_cpu {
	struct modvm_cpu_state s;

	/* translator state reached by generated code through R11 (jit.c) */
	struct bt_jit *jit;       /* NULL: interpret only */
	uint64_t jit_budget;      /* blocks to enter before returning */
	uint64_t jit_exit_req;    /* nonzero: return at the next block entry
				     (set from other threads: kick, interrupt) */
	uint64_t jit_hflags;      /* host RFLAGS holding the guest's arithmetic flags */
	uint64_t jit_link;        /* exit record of the last exit, 0 if none */
	uint64_t jit_spill;       /* RAX while the flags are in AH/AL */
	uint64_t jit_pflags;      /* the guest's flags as LAHF + SETO left them
				     in AX (AH: SF ZF AF PF CF, AL: OF), while
				     glue has clobbered the host's (jit.c) */
	uint64_t jit_target;      /* indirect target / entry address */
	uint8_t jit_interp;       /* interpret the next instruction */
	uint8_t jit_dead;         /* the running block may have been invalidated */
	struct bt_jseg jit_seg[MODVM_NR_SREGS];
	/* MODVM_BT_JIT_CHECK: RAM writes of the interpreter are journaled so
	 * that jit.c can undo them and compare with the translated block */
	struct bt_journal *journal;
	const struct bt_bus *bus;
	const struct modvm_cpu_model *model;
	unsigned index;

	/* derived from s, refreshed by bt_cpu_update_mode() */
	int cpl;
	enum bt_mode mode;   /* code size of CS */
	bool lma;            /* IA-32e mode active */
	bool pm;             /* CR0.PE and not VM86 */

	/* the instruction being executed: in the decode cache or scratch */
	const struct bt_insn *in;
	struct bt_insn scratch;
	uint64_t insn_rip;   /* its first byte */
	uint64_t next_rip;

	/* exception raised inside an instruction */
	jmp_buf jb;
	int fault_vec;
	int fault_has_err;
	uint32_t fault_err;
	int delivering;      /* vector being delivered, -1 if none */
	bool shutdown;

	uint8_t shadow;      /* STI / MOV SS shadow for the next instruction */
	bool dbg_hold;       /* MOV SS / POP SS ran: its debug traps wait for
				the next instruction (SDM 3A 6.8.3) */
	uint32_t dbg_held;   /* DR6 B0-B3 and BS held over that instruction */
	bool sw_event;       /* the instruction was ICEBP (INT1): its debug
				traps and held ones are dropped */
	uint32_t dbg_wake;   /* DR6 bits of HLT's single-step trap, taken when
				the halt ends (before the waking event) */
	bool holding_lock;   /* inside a LOCKed read-modify-write */
	/* A LOCKed read-modify-write of RAM done as a host compare-and-swap
	 * (exec.c, lock_atomic): while armed, the instruction's read of
	 * lk_lin gets lk_old and its write goes to lk_new, not to RAM. */
	int lk_state;        /* BT_LK_OFF, BT_LK_ARMED or BT_LK_WRITTEN */
	unsigned lk_size;
	uint64_t lk_lin, lk_old, lk_new;
	bool dbg_data;       /* DR7 enables a data breakpoint */
	/* Large pages (2M/4M/1G) whose 4 KiB pieces the TLB may hold: INVLPG
	 * of an address inside one must drop them all (SDM 3A 4.10.4.1), of
	 * an address elsewhere only its own entry. nlarge BT_LARGE_MAX + 1:
	 * more than the list holds, every INVLPG flushes the whole TLB. */
	struct { uint64_t base, mask; bool global; } large[BT_LARGE_MAX];
	unsigned nlarge;
	uint64_t dr6_pending;
	volatile int *stop;  /* set from another thread: return soon */
	/* the chipset's A20 gate (nonzero: enabled), read before every
	 * instruction; NULL: always enabled. While it is 0, address bit 20
	 * of every physical access is 0 (the 8086 wrap at 1 MiB). */
	const volatile int *a20_line;
	int a20_cur;
	uint64_t a20_mask;
	/* an event in flight in a state from another engine (KVM saves
	 * exceptions and interrupts it was injecting): delivered first */
	int inject_vec;      /* -1: none */
	int inject_kind;
	bool inject_has_err;
	uint32_t inject_err;
	bool nmi_pending;

	/* cpuid-derived features */
	bool has_cx16, has_lahf64, has_sse3, has_nx, has_syscall, has_lm,
		has_pge, has_pse, has_rdtscp, has_1g, has_xsave, has_xsaveopt;
	/* CPUID leaf 1 ECX and leaf 7.0 (SDM vol. 2 CPUID) */
	bool has_pcid, has_x2apic, has_tsc_deadline, has_smep, has_smap,
		has_invpcid, has_umip, has_pku, has_pks, has_rdpid, has_mca;
	bool vendor_amd;     /* leaf 0 says "AuthenticAMD": AMD's rules apply */
	uint64_t xcr0_ok;    /* XCR0 bits the model supports (leaf 0xD.0) */
	uint64_t tsc_offset; /* TSC = clock_ns * BT_TSC_GHZ + tsc_offset */
	/* IA32_PKRS (MSR 6E1H): the supervisor protection keys (kept here,
	 * not in c->s, so the TLB check reads one word; struct
	 * modvm_cpu_state.pkrs carries it in and out). */
	uint32_t pkrs;

	uint64_t icount;
	uint64_t icache_hits;
	struct bt_tlb_entry tlb[BT_TLB_SIZE];
	struct bt_jtlb jtlb[2][BT_JTLB_SIZE];
	struct bt_jc jit_jc[2][BT_JC_SIZE];
	struct bt_icache_entry icache[BT_ICACHE_SIZE];
	/* TLB slots filled with non-global entries since the last flush, so
	 * that a CR3 write clears those instead of scanning every slot
	 * (BT_NG_MAX + 1: too many, scan) */
	uint16_t tlb_ng[BT_NG_MAX], jtlb_ng[2][BT_NG_MAX];
	unsigned n_tlb_ng, n_jtlb_ng[2];
	/* Every slot filled from empty since the last global flush (some
	 * twice), so that a global flush (CR0/CR4 writes, WRPKRU, a PKRS
	 * write: kvm-unit-tests' access test makes one for each of its 19
	 * million checks) clears those instead of every slot. */
	uint16_t tlb_all[BT_NG_MAX], jtlb_all[2][BT_NG_MAX];
	unsigned n_tlb_all, n_jtlb_all[2];
	/* Dirty logging is on (engine.c, dirty_log_start): TLB entries
	 * filled by reads do not take writes, so every page written is
	 * reported by a write fill (mem.c, translate). Changed only while
	 * the vCPU is parked, with its TLB flushed. */
	bool dirty_log;
};

#define BT_TSC_HZ 1000000000ull /* virtual TSC: 1 GHz, 1 tick per ns */

/* Lifecycle and running */
void bt_cpu_init(struct bt_cpu *c, const struct bt_bus *bus,
		 const struct modvm_cpu_model *model, unsigned index);
/* Take the model's CPUID and derive the feature flags from it. */
void bt_cpu_set_model(struct bt_cpu *c, const struct modvm_cpu_model *model);
/* Check the model's features against what the interpreter implements;
 * on refusal writes a reason and returns -1. */
int bt_model_check(const struct modvm_cpu_model *m, char *why, size_t len);
void bt_cpu_set_state(struct bt_cpu *c, const struct modvm_cpu_state *s);
void bt_cpu_get_state(struct bt_cpu *c, struct modvm_cpu_state *s);
enum bt_exit bt_cpu_run(struct bt_cpu *c, uint64_t budget);
void bt_cpu_update_mode(struct bt_cpu *c);
/* Follow *a20_line: set the mask and flush the TLB (SDM 3A 8.7.13.4:
 * A20M# masks physical address bit 20). */
void bt_cpu_apply_a20(struct bt_cpu *c);
bool bt_cpu_intr_window(const struct bt_cpu *c);

/* PKRU lives where XSAVE keeps it (state component 9, offset 0xA80 of
 * the standard format; XSTATE_BV bit 9 clear: the initial value 0), so it
 * travels in snapshots and to KVM with the XSAVE area. */
#define BT_XS_PKRU 0xA80
uint32_t bt_pkru(const struct bt_cpu *c);
void bt_set_pkru(struct bt_cpu *c, uint32_t v);

/* Internal interfaces between the core's files */
_Noreturn void bt_raise(struct bt_cpu *c, int vec, uint32_t err);
_Noreturn void bt_raise_noerr(struct bt_cpu *c, int vec);
void bt_deliver(struct bt_cpu *c, int vec, bool has_err, uint32_t err,
		int kind, uint64_t ret_rip);
#define BT_EV_EXC 0   /* exception (fault or trap) */
#define BT_EV_EXT 1   /* external interrupt or NMI */
#define BT_EV_SOFT 2  /* INT n: gate DPL checked against CPL */
#define BT_EV_SOFTX 3 /* INT3/INTO: like SOFT */
#define BT_EV_ICEBP 4 /* INT1 */

/* debug registers (SDM 3A 17.2) */
void bt_dbg_update(struct bt_cpu *c);
void bt_dbg_data(struct bt_cpu *c, uint64_t lin, unsigned size, bool write);
/* LOCKed instructions the host cannot do atomically on RAM (MMIO, split
 * or misaligned operands) are serialised across vCPUs by one mutex;
 * bt_lock_end also disarms a compare-and-swap one (after a fault). */
enum { BT_LK_OFF, BT_LK_ARMED, BT_LK_WRITTEN };
void bt_lock_begin(struct bt_cpu *c);
void bt_lock_end(struct bt_cpu *c);

/* memory: linear and segmented access */
void bt_tlb_flush(struct bt_cpu *c, bool global_too);
void bt_tlb_flush_page(struct bt_cpu *c, uint64_t lin);
uint64_t bt_lin_read(struct bt_cpu *c, uint64_t lin, unsigned size, int cpl);
void bt_lin_write(struct bt_cpu *c, uint64_t lin, unsigned size, uint64_t v,
		  int cpl);
void bt_lin_read_buf(struct bt_cpu *c, uint64_t lin, void *buf, unsigned n,
		     int cpl);
void bt_lin_write_buf(struct bt_cpu *c, uint64_t lin, const void *buf,
		      unsigned n, int cpl);
uint64_t bt_seg_lin(struct bt_cpu *c, int seg, uint64_t off, unsigned size,
		    bool write);
uint64_t bt_read(struct bt_cpu *c, int seg, uint64_t off, unsigned size);
void bt_write(struct bt_cpu *c, int seg, uint64_t off, unsigned size,
	      uint64_t v);
void bt_check_write(struct bt_cpu *c, int seg, uint64_t off, unsigned size);
void bt_align_check(struct bt_cpu *c, uint64_t lin, unsigned align);
/* Host address of lin for a data access at the current CPL, NULL if not
 * RAM (may raise #PF). wlen: the bytes about to be written there (0: a
 * read); translations made from them are dropped first. */
uint8_t *bt_lin_ptr(struct bt_cpu *c, uint64_t lin, unsigned wlen);
uint64_t bt_fetch_lin(struct bt_cpu *c, uint64_t lin, uint8_t *buf,
		      unsigned n);
const uint8_t *bt_fetch_ptr(struct bt_cpu *c, uint64_t lin);
/* The translator's slow path: translate lin for a data access of `size`
 * bytes at the current CPL (may raise #PF), fill the translator's TLB and
 * return the host address, or NULL when the instruction must be
 * interpreted (MMIO, page crossing, non-canonical, code page written).
 * rmw: the instruction reads the operand before writing it. */
uint8_t *bt_jit_fill(struct bt_cpu *c, uint64_t lin, unsigned size, bool write,
		     bool rmw);
/* Physical page (of the last fetch) of the code at lin, after bt_fetch_ptr. */
uint64_t bt_fetch_gpa(struct bt_cpu *c, uint64_t lin);
/* The TLB holds lin's page as a global page (CR4.PGE, PTE.G). */
bool bt_page_global(struct bt_cpu *c, uint64_t lin);
#define BT_CPL_SYS (-1) /* supervisor access regardless of CPL (tables) */

/* segments and system */
void bt_load_seg(struct bt_cpu *c, int seg, uint16_t sel);
void bt_seg_real(struct modvm_segment *s, uint16_t sel);
bool bt_read_desc(struct bt_cpu *c, uint16_t sel, uint64_t *lo, uint64_t *hi,
		  bool sys);
void bt_desc_to_seg(struct modvm_segment *s, uint16_t sel, uint64_t lo,
		    uint64_t hi);
void bt_far_jmp(struct bt_cpu *c, uint16_t sel, uint64_t off, bool call);
void bt_far_ret(struct bt_cpu *c, uint16_t pop);
void bt_iret(struct bt_cpu *c);
void bt_set_cr(struct bt_cpu *c, int cr, uint64_t v);
bool bt_io_allowed(struct bt_cpu *c, uint16_t port, unsigned size);
int bt_exec_system(struct bt_cpu *c);
uint64_t bt_tsc(struct bt_cpu *c);

/* Debug aid for the translator (MODVM_BT_JIT_CHECK): run n instructions in
 * the interpreter; false if one faulted (the state is then undefined). */
bool bt_cpu_step_n(struct bt_cpu *c, unsigned n);
/* One instruction at RIP, as the run loop steps it; a fault unwinds to the
 * caller's setjmp (c->jb), as from any instruction. */
void bt_cpu_step(struct bt_cpu *c);
void bt_tlb_ng_note(uint16_t *list, unsigned *n, unsigned i);
#define BT_JOURNAL_MAX 256
struct bt_journal {
	unsigned n;
	bool overflow;
	struct { uint8_t *p; unsigned len; uint8_t old[16]; uint8_t new_[16]; } e[BT_JOURNAL_MAX];
};
void bt_journal_add(struct bt_cpu *c, uint8_t *p, unsigned len);

/* x87 / SSE */
void bt_exec_x87(struct bt_cpu *c);
void bt_exec_sse(struct bt_cpu *c);
void bt_fxsave(struct bt_cpu *c, int seg, uint64_t off);
void bt_fx_hide_pointers(const struct bt_cpu *c, uint8_t *img);
void bt_fxrstor(struct bt_cpu *c, int seg, uint64_t off);
/* XGETBV, XSETBV, XSAVE, XSAVEOPT, XRSTOR (xsave.c) */
void bt_exec_xsave(struct bt_cpu *c);
/* Bytes of the standard-format XSAVE area the components in xcr0 need. */
uint32_t bt_xsave_size(uint64_t xcr0);
/* A state from elsewhere: components its XSTATE_BV marks as initial get
 * their initial values, XCR0 is checked against the model. */
void bt_xsave_import(struct bt_cpu *c);
/* The host x87/SSE control back to the C defaults (FCW 0x37F, MXCSR
 * 0x1F80): the emulation loads the guest's modes around each operation. */
void bt_fpu_host_reset(void);

/* integer core */
void bt_exec(struct bt_cpu *c);
uint64_t bt_opnd_addr(struct bt_cpu *c, const struct bt_operand *o);
uint64_t bt_get(struct bt_cpu *c, const struct bt_operand *o);
void bt_put(struct bt_cpu *c, const struct bt_operand *o, uint64_t v);
void bt_push(struct bt_cpu *c, uint64_t v, unsigned size);
uint64_t bt_pop(struct bt_cpu *c, unsigned size);
uint64_t bt_sp_mask(const struct bt_cpu *c);
void bt_set_rsp(struct bt_cpu *c, uint64_t v);
bool bt_cond(const struct bt_cpu *c, int cc);
void bt_set_rflags(struct bt_cpu *c, uint64_t v, uint64_t mask);
void bt_jump(struct bt_cpu *c, uint64_t target, unsigned opsize);

static inline uint64_t bt_mask(unsigned size)
{
	return size >= 8 ? ~0ull : (1ull << (8 * size)) - 1;
}

static inline uint64_t bt_reg(const struct bt_cpu *c, int r)
{
	return c->s.gpr[r];
}

/* Write a GPR of `size` bytes: 32-bit writes clear the upper half, 8/16
 * bit writes merge (SDM vol. 1 3.4.1.1). */
static inline void bt_set_reg(struct bt_cpu *c, int r, unsigned size,
			      uint64_t v)
{
	uint64_t *p = &c->s.gpr[r];

	if (size == 8)
		*p = v;
	else if (size == 4)
		*p = (uint32_t)v;
	else
		*p = (*p & ~bt_mask(size)) | (v & bt_mask(size));
}

#endif
