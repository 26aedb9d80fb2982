/* modvm SDK: the canonical vCPU state and the cpu-engine interface.
 *
 * Every engine converts its own representation to and from struct
 * modvm_cpu_state, so a snapshot taken under one engine resumes under another.
 * The layout follows the architectural state of an x86-64 processor (Intel
 * SDM vol. 3A ch. 2-3) and keeps everything KVM exposes, so conversion to KVM
 * loses nothing. Its state description (modvm_cpu_state_section, provided by
 * the core) drives snapshots and the text view in cpus/N/regs.
 */
#ifndef MODVM_CPU_H
#define MODVM_CPU_H

#include <stdbool.h>
#include <stdint.h>

#include <modvm/host.h>
#include <modvm/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

enum modvm_reg {
	MODVM_RAX, MODVM_RCX, MODVM_RDX, MODVM_RBX,
	MODVM_RSP, MODVM_RBP, MODVM_RSI, MODVM_RDI,
	MODVM_R8, MODVM_R9, MODVM_R10, MODVM_R11,
	MODVM_R12, MODVM_R13, MODVM_R14, MODVM_R15,
	MODVM_NR_GPRS
};

enum modvm_sreg { MODVM_ES, MODVM_CS, MODVM_SS, MODVM_DS, MODVM_FS, MODVM_GS,
		  MODVM_NR_SREGS };

/* A segment register with its hidden (descriptor cache) part. */
struct modvm_segment {
	uint64_t base;
	uint32_t limit;    /* expanded byte limit (granularity applied) */
	uint16_t selector;
	uint8_t type;      /* descriptor type field, 4 bits */
	uint8_t s;         /* 1 = code/data, 0 = system */
	uint8_t dpl;
	uint8_t present;
	uint8_t avl;
	uint8_t l;         /* 64-bit code segment */
	uint8_t db;        /* default operation size */
	uint8_t g;         /* granularity */
	uint8_t unusable;  /* null selector loaded (VMX "unusable") */
	uint8_t pad;
};

struct modvm_dtable {
	uint64_t base;
	uint16_t limit;
	uint16_t pad[3];
};

/* Model-specific registers a modern guest uses; others are engine state. */
struct modvm_msrs {
	uint64_t efer;
	uint64_t star, lstar, cstar, sfmask, kernel_gs_base;
	uint64_t sysenter_cs, sysenter_esp, sysenter_eip;
	uint64_t tsc;            /* guest TSC value at the time of the save */
	uint64_t tsc_aux;
	uint64_t tsc_deadline;
	uint64_t pat;
	uint64_t apic_base;
	uint64_t misc_enable;
	uint64_t spec_ctrl;
	uint64_t mtrr_def_type;
	uint64_t mtrr_fixed[11]; /* 64K_00000, 16K_80000/A0000, 4K_C0000..F8000 */
	uint64_t mtrr_var[16];   /* base/mask pairs for 8 ranges */
};

/* Events that were pending or being delivered when the state was taken. */
struct modvm_cpu_events {
	uint8_t exception_pending;   /* recognised, not yet delivered */
	uint8_t exception_injected;  /* delivery was in progress */
	uint8_t exception_vector;
	uint8_t exception_has_error;
	uint32_t exception_error;
	uint64_t exception_payload;  /* CR2 for #PF, DR6 bits for #DB */
	uint8_t interrupt_injected;  /* external interrupt being delivered */
	uint8_t interrupt_vector;
	uint8_t interrupt_soft;
	uint8_t interrupt_shadow;    /* bit 0: STI, bit 1: MOV SS */
	uint8_t nmi_injected;
	uint8_t nmi_pending;
	uint8_t nmi_masked;
	uint8_t smi_pending;
};

/* Size of the XSAVE area kept in the canonical state: legacy 512 + header
 * 64 + AVX 256 and room for more components, in standard (non-compacted)
 * format as XSAVE writes it (SDM vol. 1 13.4). */
#define MODVM_XSAVE_SIZE 4096

struct modvm_cpu_state {
	uint64_t gpr[MODVM_NR_GPRS];
	uint64_t rip;
	uint64_t rflags;

	struct modvm_segment seg[MODVM_NR_SREGS];
	struct modvm_segment ldt, tr;
	struct modvm_dtable gdt, idt;

	uint64_t cr0, cr2, cr3, cr4, cr8;
	uint64_t xcr0;
	uint64_t dr[4];
	uint64_t dr6, dr7;

	struct modvm_msrs msr;
	struct modvm_cpu_events ev;

	uint8_t halted;          /* HLT executed, waiting for an interrupt */
	uint8_t pad[55];         /* explicit: xsave is 64-byte aligned */

	/* x87/SSE/AVX state, XSAVE standard format; bytes 0-511 are the
	 * FXSAVE image (FCW, FSW, FTW, ..., MXCSR, ST0-7, XMM0-15). */
	uint8_t xsave[MODVM_XSAVE_SIZE] __attribute__((aligned(64)));

	/* Local APIC register page (offsets as in the SDM, 0x000-0x3f0),
	 * valid if lapic_valid; engines without their own APIC leave it 0. */
	uint8_t lapic_valid;
	uint8_t pad2[7];
	uint8_t lapic[1024];
	/* IA32_PKRS (MSR 6E1H, Intel PKS): supervisor protection keys, bits
	 * 31:0. Taken from the tail padding (the size is unchanged): an engine
	 * that does not know it leaves it 0, its value at reset. */
	uint64_t pkrs;
	uint8_t reserved[48];    /* explicit tail padding to 64 bytes */
};

/* A CPU model: the CPUID the guest sees, independent of the host, so a VM
 * can move between hosts. Engines take the leaves as they are, except the
 * per-vCPU fields (initial APIC ID in leaf 1 EBX[31:24], x2APIC ID in
 * leaves 0xB/0x1F EDX) which they fill in. An engine that cannot provide
 * a feature of the model refuses the VM before it starts. */
#define MODVM_CPUID_SIGNIFICANT_INDEX 1u

struct modvm_cpuid_leaf {
	uint32_t function;
	uint32_t index;   /* subleaf, if flags has SIGNIFICANT_INDEX */
	uint32_t flags;
	uint32_t eax, ebx, ecx, edx;
};

struct modvm_cpu_model {
	const char *name;          /* "baseline-v1" */
	const char *description;
	/* NULL for the "host" model: the engine passes the host's CPUID
	 * through (not migratable between different hosts). */
	const struct modvm_cpuid_leaf *leaves;
	uint32_t nleaves;
	uint32_t migratable;
};

/* Why vcpu_run returned. */
enum modvm_run_status {
	MODVM_RUN_STOPPED = 1,  /* vcpu_kick asked it to stop */
	MODVM_RUN_SHUTDOWN = 2, /* triple fault: the platform resets */
	MODVM_RUN_ERROR = 3,    /* the engine cannot continue: see message */
};

struct modvm_cpu_engine_ops {
	uint32_t size; /* sizeof(struct modvm_cpu_engine_ops) at build time */

	/* Can this engine run on this host? Return 0, or write a reason
	 * the user can act on into why and return -1. Must be cheap and
	 * side-effect free: `modvm plugins` calls it. A note that is not a
	 * refusal (for example "slow here") goes into why with return 0. */
	int (*probe)(char *why, size_t why_len);

	/* One engine instance per VM. Guest RAM and I/O are reached through
	 * host (mem_ptr, pio_read/pio_write and the MMIO dispatch). */
	void *(*vm_create)(const struct modvm_host *host, modvm_inst *inst,
			   unsigned ncpus);
	void (*vm_destroy)(void *vm);

	void *(*vcpu_create)(void *vm, unsigned index);
	void (*vcpu_destroy)(void *vcpu);

	/* Run on the calling thread until stopped or an exit the core must
	 * handle. Returns with the vCPU at an instruction boundary. */
	enum modvm_run_status (*vcpu_run)(void *vcpu, char *err,
					  size_t err_len);
	/* From any thread: make vcpu_run return MODVM_RUN_STOPPED soon. */
	void (*vcpu_kick)(void *vcpu);

	int (*get_state)(void *vcpu, struct modvm_cpu_state *out);
	int (*set_state)(void *vcpu, const struct modvm_cpu_state *in);

	/* The legacy INTR line changed; the engine acknowledges through
	 * the core when it can take the interrupt. May be called from any
	 * thread. */
	void (*set_intr)(void *vcpu, int level);
	/* Deliver an MSI-format message to this VM's local APICs. */
	void (*deliver_msi)(void *vm, uint64_t addr, uint32_t data);

	/* --- added after 1.0: check ops->size before use --------------- */
	/* The chipset's A20 gate changed (the core ORs port 92h and the
	 * 8042's output port, as the PIIX4 does). Disabled: bit 20 of every
	 * physical address the vCPUs issue is forced to 0 from their next
	 * instruction on. May be called from any thread, also before the
	 * vCPUs run and after a snapshot load. NULL: A20 stays enabled (KVM
	 * has no such control; the core logs that once). */
	void (*set_a20)(void *vm, bool enabled);
	/* Something other than the vCPUs wrote guest RAM [gpa, gpa+len):
	 * device DMA, mem_write, the FUSE memory file. Engines that keep
	 * translations of guest code drop those of the pages before the
	 * vCPUs run that code. May be called from any thread; must be cheap
	 * when no translation is affected. NULL: nothing to do. */
	void (*mem_written)(void *vm, uint64_t gpa, uint64_t len);

	/* --- added in 2.1 ----------------------------------------------- */
	/* MODVM_ENGINE_* bits (0 in tables built before 2.1). */
	uint32_t flags;

	/* --- added in 2.5: dirty logging for live migration -------------- */
	/* The core keeps a bitmap of written guest RAM pages, fed by
	 * host->mem_dirty (and mem_write). An engine whose vCPUs write RAM
	 * without calling mem_dirty on each store (a software TLB, KVM)
	 * makes up for it here. All three are called with every vCPU
	 * parked (not inside vcpu_run).
	 * dirty_log_start: from now on, report writes. Return 0, or -1 if
	 * the engine cannot (the core then copies RAM with the VM stopped).
	 * dirty_log_sync: report, through host->mem_dirty, every page the
	 * vCPUs wrote since the start or the last sync and did not report
	 * yet, and make sure that the next write to any page is reported
	 * again (cpu-bt: drop writable TLB entries; KVM: read and clear the
	 * dirty log). dirty_log_stop: back to normal running.
	 * NULL (or a table older than 2.5): no dirty logging. */
	int (*dirty_log_start)(void *vm);
	void (*dirty_log_sync)(void *vm);
	void (*dirty_log_stop)(void *vm);
};

/* The guest's TSC and the engine's own timers (a local APIC it models)
 * follow host->clock_ns, as in a software CPU. The core may then leave out
 * of virtual time the time a vCPU thread waited for a host CPU, so guest
 * time stands while the vCPU cannot run instead of jumping past the
 * guest's timer deadlines (docs/architecture.md, "Lost ticks"). An engine
 * whose guest TSC runs on the host's (KVM) must not set it: the devices'
 * time would drift from the guest's TSC. */
#define MODVM_ENGINE_VIRTUAL_TSC (1u << 0)

#ifdef __cplusplus
}
#endif

#endif
