/* kvm-probe: what this host's KVM offers the cpu-svm/cpu-vtx engines. Prints
 * the host CPU, the capabilities the KVM layer uses, the supported CPUID and
 * MSR lists, and runs a loop in each CPU mode to see which modes work and at
 * what speed (without hardware assistance KVM emulates some of them).
 * Results from the development host are in docs/engines-kvm.md.
 *
 * usage: kvm-probe
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kvmt.h"

#define CAP(x) { #x, x }

static const struct { const char *name; long cap; } caps[] = {
	CAP(KVM_CAP_IRQCHIP), CAP(KVM_CAP_SPLIT_IRQCHIP), CAP(KVM_CAP_IMMEDIATE_EXIT),
	CAP(KVM_CAP_X86_USER_SPACE_MSR), CAP(KVM_CAP_XSAVE), CAP(KVM_CAP_XSAVE2),
	CAP(KVM_CAP_XCRS), CAP(KVM_CAP_VCPU_EVENTS), CAP(KVM_CAP_DEBUGREGS),
	CAP(KVM_CAP_SIGNAL_MSI), CAP(KVM_CAP_GET_MSR_FEATURES),
	CAP(KVM_CAP_EXCEPTION_PAYLOAD), CAP(KVM_CAP_X2APIC_API),
	CAP(KVM_CAP_TSC_DEADLINE_TIMER), CAP(KVM_CAP_MP_STATE), CAP(KVM_CAP_X86_SMM),
	CAP(KVM_CAP_SET_TSS_ADDR), CAP(KVM_CAP_SET_IDENTITY_MAP_ADDR),
	CAP(KVM_CAP_MAX_VCPUS), CAP(KVM_CAP_NR_MEMSLOTS), CAP(KVM_CAP_TSC_CONTROL),
	CAP(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2), CAP(KVM_CAP_DIRTY_LOG_RING),
	CAP(KVM_CAP_NESTED_STATE), CAP(KVM_CAP_X86_TRIPLE_FAULT_EVENT),
	CAP(KVM_CAP_INTERNAL_ERROR_DATA), CAP(KVM_CAP_SYNC_REGS),
};

static const struct kvm_vendor any_vendor = {
	.engine = "probe", .vendor_id = "", .needs = "", .hw_flag = "vmx",
	.other_engine = "", .hw_leaf = 1, .hw_bit = 5,
};

static void print_host(void)
{
	struct kvm_host_cpu cpu;
	unsigned vmx, svm;
	char why[512];

	kvm_host_cpu_read(&cpu, &any_vendor);
	vmx = cpu.hw_bit;
	kvm_host_cpu_read(&cpu, &(struct kvm_vendor){ .hw_leaf = 0x80000001, .hw_bit = 2,
						      .hw_flag = "svm" });
	svm = cpu.hw_bit;
	printf("host CPU: %s, %s; CPUID VMX %u SVM %u; kvm_pvm module %s\n",
	       cpu.vendor, cpu.brand, vmx, svm,
	       access("/sys/module/kvm_pvm", F_OK) == 0 ? "loaded" : "absent");
	if (kvm_device_check(KVM_DEVICE_PATH, why, sizeof(why)))
		printf("%s\n", why);
	else
		printf("%s: KVM API 12\n", KVM_DEVICE_PATH);
}

static void print_caps(const struct kvmt *t)
{
	printf("\ncapabilities (KVM_CHECK_EXTENSION on the VM):\n");
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
		printf("  %-34s %d\n", caps[i].name,
		       ioctl(t->vm.fd, KVM_CHECK_EXTENSION, caps[i].cap));
	printf("\nKVM_GET_SUPPORTED_CPUID (%u leaves):\n", t->vm.supported.head.nent);
	for (uint32_t i = 0; i < t->vm.supported.head.nent; i++) {
		const struct kvm_cpuid_entry2 *e = &t->vm.supported.entries[i];
		if (!e->eax && !e->ebx && !e->ecx && !e->edx)
			continue;
		printf("  %08x.%u: eax %08x ebx %08x ecx %08x edx %08x\n", e->function,
		       e->index, e->eax, e->ebx, e->ecx, e->edx);
	}
	printf("\nKVM_GET_MSR_INDEX_LIST (%u):", t->vm.nmsr_index);
	for (unsigned i = 0; i < t->vm.nmsr_index; i++)
		printf("%s%x", i % 12 ? " " : "\n  ", t->vm.msr_index[i]);
	printf("\ncanonical MSRs this vCPU keeps (%u):", t->cpu->nmsrs);
	for (unsigned i = 0; i < t->cpu->nmsrs; i++)
		printf(" %s", kvm_msr_name(t->cpu->msrs[i]));
	printf("\n");
}

/* ---- one loop per CPU mode --------------------------------------------- */

static void seg(struct modvm_segment *s, uint16_t sel, uint8_t type, bool code,
		int bits, uint8_t dpl)
{
	*s = (struct modvm_segment){ .selector = sel, .limit = 0xFFFFFFFF,
				     .type = type, .s = 1, .present = 1, .g = 1,
				     .dpl = dpl, .l = code && bits == 64,
				     .db = bits == 32 };
}

static void real_mode(struct modvm_cpu_state *s)
{
	for (int i = 0; i < MODVM_NR_SREGS; i++)
		s->seg[i] = (struct modvm_segment){
			.limit = 0xFFFF, .type = i == MODVM_CS ? 0xB : 0x3,
			.s = 1, .present = 1 };
	s->cr0 = 0x10;
	s->msr.efer = 0;
	s->cr4 = 0;
	s->cr3 = 0;
	s->rflags = 2;
}

static void prot32(struct modvm_cpu_state *s, uint8_t dpl)
{
	for (int i = 0; i < MODVM_NR_SREGS; i++)
		seg(&s->seg[i], (i == MODVM_CS ? 0x8 : 0x10) | dpl,
		    i == MODVM_CS ? 0xB : 0x3, i == MODVM_CS, 32, dpl);
	s->cr0 = 0x11;
	s->cr4 = 0;
	s->cr3 = 0;
	s->msr.efer = 0;
	s->rflags = 0x3002;
}

/* mov ecx, N; l: inc eax; dec ecx; jnz l; out 0x10, eax; jmp $ -- the
 * same bytes in 16-bit (with o32/a32 where needed), 32- and 64-bit code */
static const uint8_t loop16[] = { 0x66, 0xB9, 0, 0, 0, 0, 0x66, 0x40, 0x66, 0x49,
				  0x75, 0xFA, 0x66, 0xE7, 0x10, 0xEB, 0xFE };
static const uint8_t loop32[] = { 0xB9, 0, 0, 0, 0, 0x40, 0x49, 0x75, 0xFC,
				  0xE7, 0x10, 0xEB, 0xFE };
static const uint8_t loop64[] = { 0xB9, 0, 0, 0, 0, 0xFF, 0xC0, 0xFF, 0xC9,
				  0x75, 0xFA, 0xE7, 0x10, 0xEB, 0xFE };

enum mode { REAL, PROT32_RING0, PROT32_RING3, PAGED32, PAE32, LONG_RING0, LONG_RING3 };
static const char *const mode_names[] = {
	"real mode", "32-bit protected, CPL 0, no paging",
	"32-bit protected, CPL 3, no paging", "32-bit paging (4 MiB page), CPL 0",
	"PAE paging, CPL 0", "64-bit long mode, CPL 0", "64-bit long mode, CPL 3",
};

static void run_mode(enum mode m, uint32_t n)
{
	struct kvmt t;
	struct modvm_cpu_state *s = aligned_alloc(64, sizeof(*s));
	const uint8_t *code = m == REAL ? loop16 : m >= LONG_RING0 ? loop64 : loop32;
	size_t len = m == REAL ? sizeof(loop16) : m >= LONG_RING0 ? sizeof(loop64) :
		sizeof(loop32);
	enum modvm_run_status st;
	uint64_t t0, t1;
	char err[512];

	if (kvmt_open(&t, KVM_IRQCHIP_SPLIT)) {
		printf("  %-40s cannot open: %s\n", mode_names[m], t.err);
		return;
	}
	memcpy(t.ram + KVMT_CODE, code, len);
	memcpy(t.ram + KVMT_CODE + (m == REAL ? 2 : 1), &n, 4);
	kvmt_long_state(s, KVMT_CODE, m == LONG_RING3 ? 3 : 0);
	if (m == REAL) {
		real_mode(s);
		s->seg[MODVM_CS].selector = KVMT_CODE >> 4;
		s->seg[MODVM_CS].base = KVMT_CODE;
		s->rip = 0;
	} else if (m < LONG_RING0) {
		prot32(s, m == PROT32_RING3 ? 3 : 0);
	}
	if (m == PAGED32) {
		uint32_t pde = 0x87; /* 4 MiB page at 0, P RW US PS */
		memcpy(t.ram + 0x20000, &pde, 4);
		s->cr3 = 0x20000;
		s->cr4 = 0x10;
		s->cr0 |= 0x80000000;
	} else if (m == PAE32) {
		uint64_t pdpte = 0x21000 | 1, pde = 0x87;
		memcpy(t.ram + 0x20000, &pdpte, 8);
		memcpy(t.ram + 0x21000, &pde, 8);
		s->cr3 = 0x20000;
		s->cr4 = 0x20;
		s->cr0 |= 0x80000000;
	}
	if (kvm_vcpu_set_state(t.cpu, s, err, sizeof(err))) {
		printf("  %-40s state refused: %s\n", mode_names[m], err);
		goto out;
	}
	t.stop_after = 1;
	t0 = kvmt_now_ns();
	st = kvm_vcpu_run(t.cpu, err, sizeof(err));
	t1 = kvmt_now_ns();
	if (st == MODVM_RUN_STOPPED && t.nout == 1 && t.out[0] == n)
		printf("  %-40s works: %.1f M loop instructions/s\n", mode_names[m],
		       3.0 * n / ((double)(t1 - t0) / 1e9) / 1e6);
	else
		printf("  %-40s FAILS: %s%s\n", mode_names[m],
		       st == MODVM_RUN_SHUTDOWN ? "triple fault (KVM_EXIT_SHUTDOWN)" : err,
		       st == MODVM_RUN_STOPPED ? "wrong result" : "");
out:
	kvmt_close(&t);
	free(s);
}

/* ---- single instructions the emulator may lack ------------------------- */

struct insn_probe {
	const char *name;
	bool long_mode;
	uint8_t code[48];
	size_t len;
};

/* Each ends with OUT 0x10, EAX = 0x600D (B8 0D 60 00 00 E7 10) then JMP $. */
static const struct insn_probe insn_probes[] = {
	{ "IRETD, 32-bit protected mode CPL 0", false,
	  /* pushfd; push cs; push 0x1000B; iretd; [0x1000B] mov eax,0x600D; out */
	  { 0x9C, 0x0E, 0x68, 0x0B, 0x00, 0x01, 0x00, 0xCF, 0x90, 0x90, 0x90,
	    0xB8, 0x0D, 0x60, 0x00, 0x00, 0xE7, 0x10, 0xEB, 0xFE }, 20 },
	{ "INT 0x30 + IRETQ, 64-bit mode CPL 0", true,
	  /* int 0x30; mov eax,0x600D; out; jmp $ -- handler at +0x20: iretq */
	  { 0xCD, 0x30, 0xB8, 0x0D, 0x60, 0x00, 0x00, 0xE7, 0x10, 0xEB, 0xFE,
	    [0x20] = 0x48, 0xCF }, 0x22 },
	{ "IRETQ, 64-bit mode CPL 0", true,
	  /* mov rax,rsp; push 0x10; push rax; pushfq; push 0x08; push 0x10014;
	   * iretq; [0x10014] mov eax,0x600D; out */
	  { 0x48, 0x89, 0xE0, 0x6A, 0x10, 0x50, 0x9C, 0x6A, 0x08, 0x68, 0x14,
	    0x00, 0x01, 0x00, 0x48, 0xCF, 0x90, 0x90, 0x90, 0x90,
	    0xB8, 0x0D, 0x60, 0x00, 0x00, 0xE7, 0x10, 0xEB, 0xFE }, 29 },
};

static void run_insn(const struct insn_probe *p)
{
	struct kvmt t;
	struct modvm_cpu_state *s = aligned_alloc(64, sizeof(*s));
	enum modvm_run_status st;
	char err[512] = "";
	/* a flat 32-bit GDT for the legacy-mode probe: null, code, data */
	static const uint64_t gdt32[] = { 0, 0x00CF9B000000FFFFull,
					  0x00CF93000000FFFFull };

	if (kvmt_open(&t, KVM_IRQCHIP_SPLIT)) {
		printf("  %-40s cannot open: %s\n", p->name, t.err);
		free(s);
		return;
	}
	memcpy(t.ram + KVMT_CODE, p->code, p->len);
	kvmt_set_gate(&t, 0x30, KVMT_CODE + 0x20);
	kvmt_long_state(s, KVMT_CODE, 0);
	if (!p->long_mode) {
		memcpy(t.ram + 0x5800, gdt32, sizeof(gdt32));
		prot32(s, 0);
		s->gdt.base = 0x5800;
		s->gdt.limit = sizeof(gdt32) - 1;
		s->gpr[MODVM_RSP] = KVMT_STACK0;
	}
	t.stop_after = 1;
	if (kvm_vcpu_set_state(t.cpu, s, err, sizeof(err)))
		st = MODVM_RUN_ERROR;
	else
		st = kvm_vcpu_run(t.cpu, err, sizeof(err));
	if (st == MODVM_RUN_STOPPED && t.nout == 1 && t.out[0] == 0x600D)
		printf("  %-40s works\n", p->name);
	else
		printf("  %-40s FAILS: %s\n", p->name,
		       st == MODVM_RUN_SHUTDOWN ? "triple fault" : err);
	kvmt_close(&t);
	free(s);
}

int main(void)
{
	struct kvmt t;
	int r;

	print_host();
	r = kvmt_open(&t, KVM_IRQCHIP_SPLIT);
	if (r) {
		printf("cannot create a VM: %s\n", t.err);
		return r == 77 ? 0 : 1;
	}
	print_caps(&t);
	kvmt_close(&t);
	printf("\nCPU modes (a counted loop, then OUT):\n");
	run_mode(REAL, 1000000);
	run_mode(PROT32_RING0, 1000000);
	run_mode(PROT32_RING3, 1000000);
	run_mode(PAGED32, 1000000);
	run_mode(PAE32, 1000000);
	run_mode(LONG_RING0, 1000000);
	run_mode(LONG_RING3, 1000000000);
	printf("\ninstructions KVM must emulate in kernel mode:\n");
	for (size_t i = 0; i < sizeof(insn_probes) / sizeof(insn_probes[0]); i++)
		run_insn(&insn_probes[i]);
	return 0;
}
