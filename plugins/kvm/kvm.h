/* modvm-kvm: the Linux KVM layer shared by the cpu-svm and cpu-vtx engines.
 * Everything KVM-specific lives here; an engine only describes its vendor
 * (struct kvm_vendor) and wraps the two entry points that need it.
 */
#ifndef MODVM_KVM_H
#define MODVM_KVM_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <modvm/modvm.h>

#define KVM_DEVICE_PATH "/dev/kvm"

/* ---- vendors (kvm_host.c) ---------------------------------------------- */

/* What differs between the AMD-V and VT-x engines. */
struct kvm_vendor {
	const char *engine;        /* "cpu-svm" */
	const char *vendor_id;     /* CPUID leaf 0 vendor: "AuthenticAMD" */
	const char *needs;         /* "an AMD CPU with AMD-V" */
	const char *hw_flag;       /* /proc/cpuinfo flag: "svm" */
	const char *other_engine;  /* the engine for the other vendor */
	uint32_t hw_leaf;          /* CPUID leaf whose ECX has hw_bit */
	uint32_t hw_bit;
	/* VT-x without unrestricted guest runs real mode in vm86 mode and
	 * needs a TSS and an identity-mapped page table in guest physical
	 * space (KVM API: KVM_SET_TSS_ADDR, KVM_SET_IDENTITY_MAP_ADDR). */
	bool needs_tss;
};

/* The host CPU as the host process sees it (CPUID in ring 3). */
struct kvm_host_cpu {
	char vendor[13];
	char brand[49];
	bool hw_bit;          /* VMX (leaf 1 ECX[5]) or SVM (0x80000001 ECX[2]) */
};

void kvm_host_cpu_read(struct kvm_host_cpu *cpu, const struct kvm_vendor *v);
/* 0 if the host is of v's vendor, else -1 and why. */
int kvm_vendor_check(const struct kvm_vendor *v, const struct kvm_host_cpu *cpu,
		     char *why, size_t len);
/* 0 if path is a usable KVM device (exists, opens read/write, API 12),
 * else -1 and why, saying what to do. */
int kvm_device_check(const char *path, char *why, size_t len);
/* True if KVM runs guests with hardware assistance. cpuinfo is the text of
 * /proc/cpuinfo (or NULL); modules_pvm says the kvm_pvm module is loaded. */
bool kvm_hw_assisted(const struct kvm_vendor *v, const struct kvm_host_cpu *cpu,
		     const char *cpuinfo, bool modules_pvm);
bool kvm_host_hw_assisted(const struct kvm_vendor *v);
/* The whole probe of an engine: vendor, device, assistance. */
int kvm_probe(const struct kvm_vendor *v, const char *path, char *why,
	      size_t len);

#define KVM_NO_HW_NOTE \
	"KVM present without hardware assistance: kernel-mode guest code " \
	"will be slow; cpu-bt boots stock kernels faster here"

/* ---- CPUID (kvm_cpuid.c) ------------------------------------------------ */

#define KVM_CPUID_MAX 256

struct kvm_cpuid_buf {
	struct kvm_cpuid2 head;
	struct kvm_cpuid_entry2 entries[KVM_CPUID_MAX];
};

/* Build the CPUID of vCPU apic_id from model (NULL leaves: the host's, as
 * KVM supports them). Refuses a model needing features `supported` lacks,
 * listing them. Without an in-kernel local APIC the APIC, x2APIC and
 * TSC-deadline bits are cleared. */
int kvm_cpuid_build(const struct modvm_cpu_model *model,
		    const struct kvm_cpuid_buf *supported, unsigned apic_id,
		    bool lapic, struct kvm_cpuid_buf *out, char *err,
		    size_t len);

/* ---- state conversion (kvm_state.c), pure: no /dev/kvm ----------------- */

#define KVM_XSAVE_BYTES 4096
#define KVM_STATE_MAX_MSRS 64

/* Every KVM structure the canonical state maps to. */
struct kvm_cpu_regs {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	uint8_t xsave[KVM_XSAVE_BYTES] __attribute__((aligned(64)));
	struct kvm_fpu fpu;              /* without KVM_CAP_XSAVE */
	struct kvm_xcrs xcrs;
	struct kvm_vcpu_events events;
	struct kvm_debugregs dregs;
	struct kvm_lapic_state lapic;
	struct kvm_mp_state mp;
	uint32_t nmsrs;
	struct kvm_msr_entry msrs[KVM_STATE_MAX_MSRS];
};

/* What the vCPU supports, which decides the KVM structures used. */
struct kvm_state_caps {
	bool xsave, xcrs, events, debugregs, payload, smm;
	bool lapic;                      /* in-kernel local APIC */
	const uint8_t *lapic_reset;      /* page used when lapic_valid == 0 */
	const uint32_t *msrs;            /* MSR indices the vCPU accepts */
	unsigned nmsrs;
};

/* The canonical `halted` values. 0 and 1 are the SDK's; 2 and 3 keep the
 * wait-for-SIPI states of an application processor. */
enum {
	KVM_HALTED_NO = 0,
	KVM_HALTED_HLT = 1,
	KVM_HALTED_WAIT_SIPI = 2,   /* INIT received, waiting for SIPI */
	KVM_HALTED_SIPI = 3,        /* SIPI received, not yet started */
};

void kvm_state_to_kvm(const struct modvm_cpu_state *s,
		      const struct kvm_state_caps *caps,
		      struct kvm_cpu_regs *k);
void kvm_state_from_kvm(const struct kvm_cpu_regs *k,
			const struct kvm_state_caps *caps,
			struct modvm_cpu_state *s);
/* x87/SSE between struct kvm_fpu and an FXSAVE image (SDM vol. 1 10.5.1). */
void kvm_fpu_to_fxsave(const struct kvm_fpu *f, uint8_t *fx);
void kvm_fxsave_to_fpu(const uint8_t *fx, struct kvm_fpu *f);

/* The MSRs of struct modvm_msrs other than EFER and APIC_BASE (those go
 * through the sregs), in the order they must be set; their names. */
unsigned kvm_canonical_msr_count(void);
uint32_t kvm_canonical_msr(unsigned i);
const char *kvm_msr_name(uint32_t index);

/* ---- the VM (kvm_vm.c) --------------------------------------------------- */

enum kvm_irqchip_mode {
	KVM_IRQCHIP_SPLIT = 0, /* in-kernel local APICs, PIC/IOAPIC in plugins */
	KVM_IRQCHIP_NONE = 1,  /* no local APIC: 8259 interrupts only */
};

struct kvm_vm_config {
	const char *device;              /* "/dev/kvm" */
	enum kvm_irqchip_mode irqchip;
	const struct kvm_vendor *vendor; /* NULL: no vendor hooks */
	const struct modvm_cpu_model *model;
	unsigned ncpus;
};

/* Level-triggered MSIs routed through KVM so the guest's EOI comes back
 * (KVM_EXIT_IOAPIC_EOI); see kvm_vm.c. */
#define KVM_IOAPIC_ROUTES 24

#define KVM_RAM_SLOTS 4

struct kvm_vm {
	const struct modvm_host *host;
	modvm_inst *inst;
	struct kvm_vm_config cfg;
	int sys_fd;                      /* /dev/kvm */
	int fd;                          /* the VM */
	size_t run_size;                 /* KVM_GET_VCPU_MMAP_SIZE */
	unsigned nslots;
	/* the RAM slots, for dirty logging (live migration) */
	struct { uint64_t gpa, size; void *hva; } ram[KVM_RAM_SLOTS];
	uint64_t *dirty_bits;            /* KVM_GET_DIRTY_LOG buffer, or NULL */

	/* capabilities */
	bool cap_xsave, cap_xcrs, cap_events, cap_debugregs, cap_payload;
	bool cap_smm, cap_msi, cap_user_msr, cap_x2apic_api;
	size_t xsave_size;               /* KVM_CAP_XSAVE2, >= 4096 */

	struct kvm_cpuid_buf supported;  /* KVM_GET_SUPPORTED_CPUID */
	uint32_t *msr_index;             /* KVM_GET_MSR_INDEX_LIST */
	unsigned nmsr_index;

	pthread_mutex_t route_lock;
	struct kvm_irq_routing_entry routes[KVM_IOAPIC_ROUTES];
	unsigned nroutes, route_next;
	atomic_bool warned_msi;
	bool hw_assisted;                /* false: ring 0 is emulated */
};

/* Open the device, create the VM and its interrupt controller. host and
 * inst are used for I/O, interrupts and logging from then on. On failure
 * nothing is left open; after success kvm_vm_close releases it all. */
int kvm_vm_open(struct kvm_vm *vm, const struct kvm_vm_config *cfg,
		const struct modvm_host *host, modvm_inst *inst, char *err,
		size_t len);
void kvm_vm_close(struct kvm_vm *vm);
/* Map [gpa, gpa+size) of guest physical space to host memory. */
int kvm_vm_add_ram(struct kvm_vm *vm, uint64_t gpa, void *hva, uint64_t size,
		   char *err, size_t len);
/* Map the machine's RAM the way core/memory.h lays it out. */
int kvm_vm_map_guest_ram(struct kvm_vm *vm, char *err, size_t len);
/* Dirty logging (live migration): on/off sets KVM_MEM_LOG_DIRTY_PAGES on
 * every RAM slot; sync reads and clears each slot's log and reports the
 * pages through host->mem_dirty. With the vCPUs out of KVM_RUN. */
int kvm_vm_dirty_log(struct kvm_vm *vm, bool on);
void kvm_vm_dirty_sync(struct kvm_vm *vm);
void kvm_vm_deliver_msi(struct kvm_vm *vm, uint64_t addr, uint32_t data);

/* ---- vCPUs (kvm_vcpu.c, kvm_regs.c) -------------------------------------- */

struct kvm_vcpu {
	struct kvm_vm *vm;
	unsigned index;
	int fd;
	struct kvm_run *run;

	struct kvm_cpuid_buf cpuid;
	uint32_t msrs[KVM_STATE_MAX_MSRS]; /* canonical MSRs the vCPU takes */
	unsigned nmsrs;
	uint8_t lapic_reset[KVM_APIC_REG_SIZE];
	struct kvm_state_caps caps;

	/* Run control. stop and intr are set from other threads; lock
	 * guards thread, in_run and the user-space halt wait. */
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t thread;
	bool in_run;
	bool sigmask_set;
	atomic_int stop;
	atomic_int intr;
	bool uhalted;              /* KVM_IRQCHIP_NONE: HLT waiting */
	bool halt_if;              /* RFLAGS.IF while halted there */
	bool need_complete;        /* an I/O or MSR exit awaits KVM_RUN */
	unsigned long stray_msr;   /* unknown MSR accesses, for the log */

	/* The guest TSC stands still while the VM is paused, as modvm's
	 * virtual clock does: the time (host, virtual) when this vCPU last
	 * left kvm_vcpu_run, and how to move the TSC (kvm_vcpu.c). */
	bool tsc_offset_ctrl;      /* KVM_VCPU_TSC_OFFSET attribute */
	uint32_t tsc_khz;
	bool have_mark;
	uint64_t mark_host_ns, mark_virt_ns;
};

struct kvm_vcpu *kvm_vcpu_new(struct kvm_vm *vm, unsigned index, char *err,
			      size_t len);
void kvm_vcpu_free(struct kvm_vcpu *c);
enum modvm_run_status kvm_vcpu_run(struct kvm_vcpu *c, char *err, size_t len);
void kvm_vcpu_kick(struct kvm_vcpu *c);
void kvm_vcpu_set_intr(struct kvm_vcpu *c, int level);
int kvm_vcpu_get_state(struct kvm_vcpu *c, struct modvm_cpu_state *s,
		       char *err, size_t len);
int kvm_vcpu_set_state(struct kvm_vcpu *c, const struct modvm_cpu_state *s,
		       char *err, size_t len);
/* Handle the exit in c->run: 0 to run on, or why to return (kvm_exit.c). */
enum modvm_run_status kvm_vcpu_exit(struct kvm_vcpu *c, char *err, size_t len);
/* "CS:RIP ... (mode, CPL)" of the vCPU, for messages. */
void kvm_vcpu_where(struct kvm_vcpu *c, char *buf, size_t len);
/* Read or write every KVM structure of the vCPU. */
int kvm_vcpu_read_regs(struct kvm_vcpu *c, struct kvm_cpu_regs *k, char *err,
		       size_t len);
int kvm_vcpu_write_regs(struct kvm_vcpu *c, const struct kvm_cpu_regs *k,
			char *err, size_t len);

/* ---- the engine (kvm_engine.c) ------------------------------------------ */

extern const struct modvm_prop_desc kvm_engine_props[];

void *kvm_engine_vm_create(const struct kvm_vendor *v,
			   const struct modvm_host *host, modvm_inst *inst,
			   unsigned ncpus);
void kvm_engine_vm_destroy(void *vm);
void *kvm_engine_vcpu_create(void *vm, unsigned index);
void kvm_engine_vcpu_destroy(void *vcpu);
enum modvm_run_status kvm_engine_vcpu_run(void *vcpu, char *err, size_t len);
void kvm_engine_vcpu_kick(void *vcpu);
int kvm_engine_get_state(void *vcpu, struct modvm_cpu_state *out);
int kvm_engine_set_state(void *vcpu, const struct modvm_cpu_state *in);
void kvm_engine_set_intr(void *vcpu, int level);
void kvm_engine_deliver_msi(void *vm, uint64_t addr, uint32_t data);
int kvm_engine_dirty_log_start(void *vm);
void kvm_engine_dirty_log_sync(void *vm);
void kvm_engine_dirty_log_stop(void *vm);

/* The ops table of an engine, given its two vendor wrappers. */
#define KVM_ENGINE_OPS(probe_fn, vm_create_fn)                                \
	{                                                                     \
		.size = sizeof(struct modvm_cpu_engine_ops),                  \
		.probe = (probe_fn), .vm_create = (vm_create_fn),             \
		.vm_destroy = kvm_engine_vm_destroy,                          \
		.vcpu_create = kvm_engine_vcpu_create,                        \
		.vcpu_destroy = kvm_engine_vcpu_destroy,                      \
		.vcpu_run = kvm_engine_vcpu_run,                              \
		.vcpu_kick = kvm_engine_vcpu_kick,                            \
		.get_state = kvm_engine_get_state,                            \
		.set_state = kvm_engine_set_state,                            \
		.set_intr = kvm_engine_set_intr,                              \
		.deliver_msi = kvm_engine_deliver_msi,                        \
		.dirty_log_start = kvm_engine_dirty_log_start,                \
		.dirty_log_sync = kvm_engine_dirty_log_sync,                  \
		.dirty_log_stop = kvm_engine_dirty_log_stop,                  \
	}

/* ---- helpers ------------------------------------------------------------- */
int kvm_err(char *err, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* ioctl, retried on EINTR/EAGAIN (not for KVM_RUN). */
int kvm_ioctl(int fd, unsigned long req, void *arg);

#endif
