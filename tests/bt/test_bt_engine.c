/* cpu-bt engine glue tests: the plugin's cpu-engine ops driven through a
 * fake host-services table (RAM, ports, clock, the 8259's INTR and its
 * acknowledge). Checks kick latency while running and while halted, that
 * a halted vCPU sleeps instead of spinning, INTR through the local APIC's
 * LINT0 (ExtINT) into the IDT, triple fault -> SHUTDOWN, the CPU model
 * refusals, and the state round trip with the LAPIC page.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <modvm/modvm.h>

#include "fixture.h"
#include "testmain.h"

extern const struct modvm_plugin_desc modvm_plugin_descriptor;

static uint8_t *ram;
static const struct modvm_cpu_model *model = &fx_model;
static char last_error[512];
static int intr_vector = -1;
static unsigned intr_acks;
static unsigned port_writes;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void h_log(modvm_inst *i, enum modvm_log_level l, const char *fmt, ...)
{
}

static void h_set_error(modvm_inst *i, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
}

static void *h_mem_ptr(modvm_inst *i, uint64_t gpa, uint64_t len)
{
	return gpa < FX_RAM && len <= FX_RAM - gpa ? ram + gpa : NULL;
}

static void h_mem_dirty(modvm_inst *i, uint64_t gpa, uint64_t len)
{
}

static bool h_mmio_read(modvm_inst *i, uint64_t a, void *d, unsigned n)
{
	memset(d, 0xFF, n);
	return false;
}

static bool h_mmio_write(modvm_inst *i, uint64_t a, const void *d, unsigned n)
{
	return false;
}

static uint64_t h_pio_read(modvm_inst *i, uint16_t port, unsigned n)
{
	return ~0ull;
}

static void h_pio_write(modvm_inst *i, uint16_t port, uint64_t v, unsigned n)
{
	__atomic_fetch_add(&port_writes, 1, __ATOMIC_SEQ_CST);
}

static uint64_t h_clock_ns(modvm_inst *i)
{
	return now_ns();
}

static int h_intr_ack(modvm_inst *i)
{
	__atomic_fetch_add(&intr_acks, 1, __ATOMIC_SEQ_CST);
	return intr_vector;
}

static const struct modvm_cpu_engine_ops *ops(void);

/* A level-triggered interrupt source behind an IOAPIC-like pin: the
 * engine's EOI broadcast for its vector ends one interrupt, and while
 * more are due the pin is still asserted, so the message is sent again
 * (82093AA remote IRR, as plugins/chipset/ioapic does). */
#define LEVEL_VECTOR 0x40
#define LEVEL_MSI_DATA (0xC000u | LEVEL_VECTOR) /* level, assert, fixed */
static void *level_vm;
static unsigned level_left, level_eois;

static void h_eoi_broadcast(modvm_inst *i, uint8_t vector)
{
	if (vector != LEVEL_VECTOR)
		return;
	__atomic_fetch_add(&level_eois, 1, __ATOMIC_SEQ_CST);
	if (level_left && __atomic_sub_fetch(&level_left, 1, __ATOMIC_SEQ_CST))
		ops()->deliver_msi(level_vm, 0xFEE00000u, LEVEL_MSI_DATA);
}

static const struct modvm_cpu_model *h_cpu_model(modvm_inst *i)
{
	return model;
}

/* The engine's properties: mode from BT_MODE (translate by default, as
 * the engine's own default), a 16 MiB translation cache. */
static int h_prop_enum(modvm_inst *i, const char *name)
{
	const char *m = getenv("BT_MODE");

	(void)i;
	if (!strcmp(name, "mode"))
		return m && !strcmp(m, "interpret") ? 1 : 0;
	return 0;
}

static uint64_t h_prop_size(modvm_inst *i, const char *name)
{
	(void)i;
	(void)name;
	return 16u << 20;
}

static bool h_a20_enabled(modvm_inst *i)
{
	(void)i;
	return true;
}

static const struct modvm_host host = {
	.size = sizeof(struct modvm_host), .abi_major = MODVM_ABI_MAJOR,
	.abi_minor = MODVM_ABI_MINOR, .log = h_log, .set_error = h_set_error,
	.mem_ptr = h_mem_ptr, .mem_dirty = h_mem_dirty, .mmio_read = h_mmio_read,
	.mmio_write = h_mmio_write, .pio_read = h_pio_read,
	.pio_write = h_pio_write, .clock_ns = h_clock_ns,
	.intr_ack = h_intr_ack, .cpu_model = h_cpu_model,
	.eoi_broadcast = h_eoi_broadcast,
	.prop_enum = h_prop_enum, .prop_size = h_prop_size,
	.a20_enabled = h_a20_enabled,
};

static const struct modvm_cpu_engine_ops *ops(void)
{
	return modvm_plugin_descriptor.ops;
}

struct runner {
	void *vcpu;
	pthread_t t;
	enum modvm_run_status st;
	uint64_t cpu_ns;   /* CPU time the run used */
	uint64_t end_ns;   /* when vcpu_run returned */
};

static void *run_thread(void *arg)
{
	struct runner *r = arg;
	struct timespec a, b;
	char err[128];

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
	r->st = ops()->vcpu_run(r->vcpu, err, sizeof(err));
	r->end_ns = now_ns();
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
	r->cpu_ns = (uint64_t)(b.tv_sec - a.tv_sec) * 1000000000ull +
		    (uint64_t)(b.tv_nsec - a.tv_nsec);
	return NULL;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* A VM with one vCPU running `src` (32-bit protected mode, fixture IDT). */
static void *setup_mode(void **vm, const char *src, bool no_idt,
			enum fx_mode mode)
{
	struct fx *f = fx_new(mode);
	void *vcpu;

	fx_idt(f);
	if (no_idt)
		f->cpu.s.idt.limit = 0;
	fx_asm(f, src);
	f->cpu.s.msr.apic_base = 0xFEE00000ull | (1u << 11) | (1u << 8);
	memcpy(ram, f->ram, FX_RAM);
	*vm = ops()->vm_create(&host, NULL, 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(*vm);
	vcpu = ops()->vcpu_create(*vm, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(vcpu);
	CU_ASSERT_EQUAL(ops()->set_state(vcpu, &f->cpu.s), 0);
	fx_free(f);
	return vcpu;
}

static void *setup(void **vm, const char *src, bool no_idt)
{
	return setup_mode(vm, src, no_idt, FX_PROT32);
}

static void teardown(void *vm, void *vcpu)
{
	ops()->vcpu_destroy(vcpu);
	ops()->vm_destroy(vm);
}

static void test_kick_running(void)
{
	void *vm, *vcpu = setup(&vm, "l: out 0x80, al\n jmp l", false);
	struct runner r = { .vcpu = vcpu };
	uint64_t t0;

	pthread_create(&r.t, NULL, run_thread, &r);
	sleep_ms(50);
	t0 = now_ns();
	ops()->vcpu_kick(vcpu);
	pthread_join(r.t, NULL);
	CU_ASSERT_EQUAL(r.st, MODVM_RUN_STOPPED);
	CU_ASSERT(port_writes > 1000); /* it really ran */
	printf("\n    kick latency while running: %llu us\n",
	       (unsigned long long)(r.end_ns - t0) / 1000);
	CU_ASSERT(r.end_ns - t0 < 20000000ull); /* generous: loaded CI hosts */
	teardown(vm, vcpu);
}

static void test_halt_sleeps_and_kick(void)
{
	void *vm, *vcpu = setup(&vm, "cli\n hlt\n jmp $", false);
	struct runner r = { .vcpu = vcpu };
	uint64_t t0;

	pthread_create(&r.t, NULL, run_thread, &r);
	sleep_ms(200);
	t0 = now_ns();
	ops()->vcpu_kick(vcpu);
	pthread_join(r.t, NULL);
	CU_ASSERT_EQUAL(r.st, MODVM_RUN_STOPPED);
	printf("\n    halted 200 ms using %llu us of CPU; kick latency %llu us\n",
	       (unsigned long long)r.cpu_ns / 1000,
	       (unsigned long long)(r.end_ns - t0) / 1000);
	CU_ASSERT(r.cpu_ns < 50000000ull); /* no spinning */
	CU_ASSERT(r.end_ns - t0 < 20000000ull);
	teardown(vm, vcpu);
}

static void test_intr_wakes_halt(void)
{
	void *vm, *vcpu = setup(&vm, "sti\n hlt\n jmp $", false);
	struct runner r = { .vcpu = vcpu };
	struct modvm_cpu_state *s = calloc(1, sizeof(*s));

	intr_vector = 0x30;
	intr_acks = 0;
	pthread_create(&r.t, NULL, run_thread, &r);
	sleep_ms(50);
	ops()->set_intr(vcpu, 1);   /* the 8259 raises INTR: LINT0 ExtINT */
	sleep_ms(50);
	ops()->set_intr(vcpu, 0);
	ops()->vcpu_kick(vcpu);
	pthread_join(r.t, NULL);
	ops()->get_state(vcpu, s);
	CU_ASSERT(intr_acks >= 1);
	/* halted in the vector 0x30 stub */
	CU_ASSERT_EQUAL(s->rip, FX_STUBS + 16 * 0x30 + 1);
	CU_ASSERT(s->halted);
	free(s);
	intr_vector = -1;
	teardown(vm, vcpu);
}

static void test_triple_fault(void)
{
	void *vm, *vcpu = setup(&vm, "ud2", true);
	char err[64];

	CU_ASSERT_EQUAL(ops()->vcpu_run(vcpu, err, sizeof(err)), MODVM_RUN_SHUTDOWN);
	teardown(vm, vcpu);
}

/* The set_a20 op: while disabled, [0x100500] is RAM at 0x500. */
static void test_a20(void)
{
	struct modvm_cpu_state *s = calloc(1, sizeof(*s));
	char err[64];

	CU_ASSERT_PTR_NOT_NULL_FATAL(ops()->set_a20);
	for (int on = 0; on < 2; on++) {
		void *vm, *vcpu = setup(&vm, "mov eax, [0x100500]\n ud2", true);
		ram[0x500] = 0x44;
		ram[0x100500] = 0x55;
		ops()->set_a20(vm, on);
		CU_ASSERT_EQUAL(ops()->vcpu_run(vcpu, err, sizeof(err)),
				MODVM_RUN_SHUTDOWN);
		ops()->get_state(vcpu, s);
		CU_ASSERT_EQUAL(s->gpr[MODVM_RAX] & 0xFF, on ? 0x55 : 0x44);
		teardown(vm, vcpu);
	}
	free(s);
}

static void test_model_refusal(void)
{
	static const struct modvm_cpuid_leaf v2[] = {
		{ 0x1, 0, 0, 0xf10, 0, 0x00982201, 0x0789bb7d },
	};
	static const struct modvm_cpu_model m_v2 = {
		.name = "baseline-v2", .leaves = v2, .nleaves = 1,
	};
	static const struct modvm_cpu_model m_host = { .name = "host" };

	model = &m_v2;
	last_error[0] = 0;
	CU_ASSERT_PTR_NULL(ops()->vm_create(&host, NULL, 1));
	CU_ASSERT(strstr(last_error, "baseline-v2") != NULL);
	CU_ASSERT(strstr(last_error, "0x00980201") != NULL); /* SSE3..POPCNT */
	model = &m_host;
	CU_ASSERT_PTR_NULL(ops()->vm_create(&host, NULL, 1));
	CU_ASSERT(strstr(last_error, "host") != NULL);
	model = &fx_model;
}

static void test_state_roundtrip(void)
{
	void *vm, *vcpu = setup(&vm, "hlt", false);
	struct modvm_cpu_state *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));

	ops()->get_state(vcpu, a);
	CU_ASSERT(a->lapic_valid);
	CU_ASSERT_EQUAL(a->rip, FX_CODE);
	CU_ASSERT_EQUAL(a->cr0 & 1, 1);
	a->gpr[MODVM_R9] = 0x1234;
	a->lapic[0x80] = 0x20; /* TPR */
	CU_ASSERT_EQUAL(ops()->set_state(vcpu, a), 0);
	ops()->get_state(vcpu, b);
	CU_ASSERT_EQUAL(b->gpr[MODVM_R9], 0x1234);
	CU_ASSERT_EQUAL(b->lapic[0x80], 0x20);
	CU_ASSERT(memcmp(a->seg, b->seg, sizeof(a->seg)) == 0);
	CU_ASSERT(memcmp(a->xsave, b->xsave, 512) == 0);
	/* the TSC is saved as a value and keeps counting from it */
	CU_ASSERT(b->msr.tsc >= a->msr.tsc);
	free(a);
	free(b);
	teardown(vm, vcpu);
}

static void test_cr8_is_tpr(void)
{
	void *vm, *vcpu = setup_mode(&vm, "mov eax, 5\n mov cr8, rax\n mov rbx, cr8\n hlt",
				     false, FX_LONG64);
	struct modvm_cpu_state *s = calloc(1, sizeof(*s));
	struct runner r = { .vcpu = vcpu };

	pthread_create(&r.t, NULL, run_thread, &r);
	sleep_ms(50);
	ops()->vcpu_kick(vcpu);
	pthread_join(r.t, NULL);
	ops()->get_state(vcpu, s);
	CU_ASSERT_EQUAL(s->lapic[0x80], 0x50);   /* TPR = CR8 << 4 */
	CU_ASSERT_EQUAL(s->gpr[MODVM_RBX], 5);
	free(s);
	teardown(vm, vcpu);
}

/* CR8 in 64-bit mode with the local APIC disabled. CR8 is TPR[7:4] (SDM
 * 3A 11.8.6.1), and KVM keeps CR8 in the TPR in every APIC state
 * (kvm_lapic_set_tpr, kvm_lapic_get_cr8): with the APIC software-disabled
 * (SVR bit 8 clear) and globally disabled (IA32_APIC_BASE.EN clear) a MOV
 * to CR8 must read back, and stays in the TPR when the APIC comes back. */
static void check_cr8_apic_disabled(const char *disable, const char *enable)
{
	char src[512];
	void *vm, *vcpu;
	struct modvm_cpu_state *s = calloc(1, sizeof(*s));
	struct runner r;

	snprintf(src, sizeof(src), "mov rdi, 0xFEE00000\n %s\n"
		 "mov eax, 5\n mov cr8, rax\n mov rbx, cr8\n %s\n"
		 "mov esi, [rdi + 0x80]\n hlt", disable, enable);
	vcpu = setup_mode(&vm, src, false, FX_LONG64);
	r = (struct runner){ .vcpu = vcpu };
	/* map the APIC page: 2 MiB page 503 of the 3-4 GiB directory */
	memcpy(ram + FX_PT + 0x3000 + 8 * 503,
	       &(uint64_t){ 0xFEE00000ull | 0x83 }, 8);
	pthread_create(&r.t, NULL, run_thread, &r);
	sleep_ms(50);
	ops()->vcpu_kick(vcpu);
	pthread_join(r.t, NULL);
	ops()->get_state(vcpu, s);
	CU_ASSERT(s->halted);
	CU_ASSERT_EQUAL(s->gpr[MODVM_RBX], 5);
	CU_ASSERT_EQUAL(s->gpr[MODVM_RSI], 0x50);  /* TPR once enabled again */
	CU_ASSERT_EQUAL(s->lapic[0x80], 0x50);
	free(s);
	teardown(vm, vcpu);
}

static void test_cr8_apic_disabled(void)
{
	check_cr8_apic_disabled("mov dword [rdi + 0xF0], 0xFF",
				"mov dword [rdi + 0xF0], 0x1FF");
	check_cr8_apic_disabled("mov ecx, 0x1B\n rdmsr\n mov r8d, eax\n"
				"btr eax, 11\n wrmsr",
				"mov eax, r8d\n wrmsr");
}

static void test_nmi_ipi(void)
{
	/* an NMI IPI to its own APIC ID (ICR delivery mode 100b) reaches the
	 * NMI vector through the IDT with IF=0, and NMIs are blocked after */
	void *vm, *vcpu = setup(&vm, "cli\n mov dword [0xFEE00310], 0\n"
				"mov dword [0xFEE00300], 0x00004400\n spin: jmp spin", false);
	struct modvm_cpu_state *s = calloc(1, sizeof(*s));
	struct runner r = { .vcpu = vcpu };

	pthread_create(&r.t, NULL, run_thread, &r);
	sleep_ms(50);
	ops()->vcpu_kick(vcpu);
	pthread_join(r.t, NULL);
	ops()->get_state(vcpu, s);
	CU_ASSERT_EQUAL(s->rip, FX_STUBS + 16 * BT_NMI + 1);
	CU_ASSERT(s->halted);
	CU_ASSERT(s->ev.nmi_masked);
	free(s);
	teardown(vm, vcpu);
}

/* x2APIC and TSC-deadline on a model that offers them (leaf 1 ECX bits
 * 21, 24): the x2APIC MSRs #GP in xAPIC mode and work once IA32_APIC_BASE
 * has EXTD; a self IPI through MSR 0x83F and a TSC deadline (LVT timer
 * mode 10b) arrive; the deadline MSR reads 0 after it passed. On the
 * fixture's model (without them) EXTD is #GP. */
static const struct modvm_cpuid_leaf x2_leaves[] = {
	{ 0x0, 0, 0, 0x1, 0x68747541, 0x444d4163, 0x69746e65 },
	{ 0x1, 0, 0, 0xf10, 0x800, (1u << 21) | (1u << 24), 0x0789bb7d },
	{ 0x80000000, 0, 0, 0x80000001, 0x68747541, 0x444d4163, 0x69746e65 },
	{ 0x80000001, 0, 0, 0xf10, 0, 0, (1u << 11) | (1u << 20) | (1u << 29) },
};
static const struct modvm_cpu_model x2_model = {
	.name = "x2apic", .leaves = x2_leaves, .nleaves = 4,
};

static void run_x2(const struct modvm_cpu_model *m, const char *src,
		   struct modvm_cpu_state *s)
{
	void *vm, *vcpu;
	struct runner r;

	model = m;
	vcpu = setup(&vm, src, false);
	r = (struct runner){ .vcpu = vcpu };
	pthread_create(&r.t, NULL, run_thread, &r);
	sleep_ms(100);
	ops()->vcpu_kick(vcpu);
	pthread_join(r.t, NULL);
	ops()->get_state(vcpu, s);
	teardown(vm, vcpu);
	model = &fx_model;
}

static void test_x2apic_tsc_deadline(void)
{
	struct modvm_cpu_state *s = calloc(1, sizeof(*s));
	const char *extd = "mov ecx, 0x1B\n rdmsr\n bts eax, 10\n wrmsr\n";
	char src[1024];

	/* xAPIC mode: the x2APIC ID register is #GP */
	run_x2(&x2_model, "mov ecx, 0x802\n rdmsr\n mov ebx, 1\n hlt", s);
	CU_ASSERT_EQUAL(s->rip, FX_STUBS + 16 * BT_GP + 1);
	CU_ASSERT_NOT_EQUAL(s->gpr[MODVM_RBX], 1);
	/* no x2APIC in the model: EXTD is #GP */
	snprintf(src, sizeof(src), "%s mov ebx, 1\n hlt", extd);
	run_x2(&fx_model, src, s);
	CU_ASSERT_EQUAL(s->rip, FX_STUBS + 16 * BT_GP + 1);
	/* x2APIC mode: ID, version, TPR read/write, then a self IPI */
	snprintf(src, sizeof(src), "%s mov ecx, 0x802\n rdmsr\n mov esi, eax\n"
		 "mov ecx, 0x803\n rdmsr\n mov edi, eax\n"
		 "mov ecx, 0x808\n mov eax, 0x20\n xor edx, edx\n wrmsr\n rdmsr\n mov ebp, eax\n"
		 "xor eax, eax\n wrmsr\n"
		 "mov ecx, 0x83F\n mov eax, 0x40\n wrmsr\n sti\n nop\n mov ebx, 1\n hlt", extd);
	run_x2(&x2_model, src, s);
	CU_ASSERT_EQUAL(s->rip, FX_STUBS + 16 * 0x40 + 1);
	CU_ASSERT_EQUAL(s->gpr[MODVM_RSI] & 0xFFFFFFFF, 0);       /* x2APIC ID 0 */
	CU_ASSERT_NOT_EQUAL(s->gpr[MODVM_RDI] & 0xFF, 0);          /* version */
	CU_ASSERT_EQUAL(s->gpr[MODVM_RBP] & 0xFFFFFFFF, 0x20);    /* TPR */
	CU_ASSERT_NOT_EQUAL(s->gpr[MODVM_RBX], 1);
	CU_ASSERT(s->msr.apic_base & (1u << 10));
	/* TSC deadline: LVT timer mode 10b, vector 0x41, deadline soon */
	snprintf(src, sizeof(src), "%s mov ecx, 0x832\n mov eax, 0x41 | (2 << 17)\n"
		 "xor edx, edx\n wrmsr\n rdtsc\n add eax, 1000000\n adc edx, 0\n"
		 "mov ecx, 0x6E0\n wrmsr\n sti\n w: hlt\n jmp w", extd);
	run_x2(&x2_model, src, s);
	CU_ASSERT_EQUAL(s->rip, FX_STUBS + 16 * 0x41 + 1);
	/* the deadline MSR reads 0 once it fired */
	snprintf(src, sizeof(src), "%s mov ecx, 0x832\n mov eax, 0x41 | (2 << 17)\n"
		 "xor edx, edx\n wrmsr\n rdtsc\n add eax, 1000000\n adc edx, 0\n"
		 "mov ecx, 0x6E0\n wrmsr\n rdmsr\n mov esi, eax\n mov edi, edx\n"
		 "mov ebx, 200\n"
		 "w: pause\n dec ebx\n jnz w\n rdtsc\n mov ebp, eax\n"
		 "w2: rdtsc\n sub eax, ebp\n cmp eax, 3000000\n jb w2\n"
		 "mov ecx, 0x6E0\n rdmsr\n mov ebx, eax\n or ebx, edx\n hlt", extd);
	run_x2(&x2_model, src, s);
	CU_ASSERT(s->halted);
	CU_ASSERT(s->gpr[MODVM_RSI] != 0 || s->gpr[MODVM_RDI] != 0); /* armed */
	CU_ASSERT_EQUAL(s->gpr[MODVM_RBX], 0);                       /* passed */
	free(s);
}

/* A new VM whose one vCPU starts from state s. */
static void *vcpu_from_state(void **vm, const struct modvm_cpu_state *s)
{
	void *vcpu;

	*vm = ops()->vm_create(&host, NULL, 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(*vm);
	vcpu = ops()->vcpu_create(*vm, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(vcpu);
	CU_ASSERT_EQUAL(ops()->set_state(vcpu, s), 0);
	return vcpu;
}

/* Run vcpu for ms milliseconds, stop it, and take its state. */
static void run_for(void *vcpu, unsigned ms, struct modvm_cpu_state *s)
{
	struct runner r = { .vcpu = vcpu };

	pthread_create(&r.t, NULL, run_thread, &r);
	sleep_ms(ms);
	ops()->vcpu_kick(vcpu);
	pthread_join(r.t, NULL);
	ops()->get_state(vcpu, s);
}

/* A TSC deadline still armed when the state is taken (a snapshot of a
 * guest whose next tick is pending) fires in the VM the state is loaded
 * into: the LAPIC register page does not hold it, so set_state arms it
 * from the MSR. It once did not, and a Linux guest resumed on the
 * system-v2 model never had a timer interrupt again. */
static void test_tsc_deadline_across_state(void)
{
	struct modvm_cpu_state *s = calloc(1, sizeof(*s));
	void *vm, *vcpu;

	model = &x2_model;
	vcpu = setup(&vm, "mov ecx, 0x1B\n rdmsr\n bts eax, 10\n wrmsr\n"
		     "mov ecx, 0x832\n mov eax, 0x41 | (2 << 17)\n xor edx, edx\n wrmsr\n"
		     "rdtsc\n add eax, 300000000\n adc edx, 0\n"
		     "mov ecx, 0x6E0\n wrmsr\n sti\n w: hlt\n jmp w", false);
	run_for(vcpu, 50, s);
	teardown(vm, vcpu);
	CU_ASSERT(s->halted);
	CU_ASSERT_NOT_EQUAL(s->msr.tsc_deadline, 0); /* armed, 250 ms to go */
	vcpu = vcpu_from_state(&vm, s);
	run_for(vcpu, 700, s);
	teardown(vm, vcpu);
	CU_ASSERT_EQUAL(s->rip, FX_STUBS + 16 * 0x41 + 1);
	CU_ASSERT_EQUAL(s->msr.tsc_deadline, 0); /* fired */
	model = &fx_model;
	free(s);
}

/* IA32_PKRS travels in the state (struct modvm_cpu_state.pkrs): written by
 * the guest, taken out, loaded into a new vCPU, read back by the guest. */

static void test_pkrs_in_state(void)
{
	struct modvm_cpu_state *s = calloc(1, sizeof(*s));
	void *vm, *vcpu;

	model = &fx_model_pks;
	vcpu = setup(&vm, "mov ecx, 0x6E1\n mov eax, 0x5\n xor edx, edx\n wrmsr\n hlt\n"
		     "rdmsr\n mov ebx, eax\n hlt", false);
	run_for(vcpu, 50, s);
	teardown(vm, vcpu);
	CU_ASSERT_EQUAL(s->pkrs, 5);
	s->halted = 0;
	vcpu = vcpu_from_state(&vm, s);
	run_for(vcpu, 50, s);
	teardown(vm, vcpu);
	CU_ASSERT_EQUAL(s->gpr[MODVM_RBX] & 0xFFFFFFFF, 5);
	CU_ASSERT_EQUAL(s->pkrs, 5);
	model = &fx_model;
	free(s);
}

/* A self-NMI sent through the ICR is taken at the boundary right after
 * the ICR write (as KVM injects it before re-entering the guest), not
 * after the instructions that follow; both with the vCPU's own APIC ID
 * as destination and with the "self" shorthand. */
static void test_self_nmi_at_once(void)
{
	static const char *const icr[] = { "0x00004400", "0x00044400" };

	for (unsigned i = 0; i < 2; i++) {
		char src[256];
		void *vm, *vcpu;
		struct modvm_cpu_state *s = calloc(1, sizeof(*s));
		struct runner r;
		uint32_t esp;

		snprintf(src, sizeof(src), "cli\n mov edx, next\n"
			 "mov dword [0xFEE00310], 0\n mov dword [0xFEE00300], %s\n"
			 "next: mov ebx, 1\n mov ecx, 2\n spin: jmp spin", icr[i]);
		vcpu = setup(&vm, src, false);
		r = (struct runner){ .vcpu = vcpu };
		pthread_create(&r.t, NULL, run_thread, &r);
		sleep_ms(50);
		ops()->vcpu_kick(vcpu);
		pthread_join(r.t, NULL);
		ops()->get_state(vcpu, s);
		CU_ASSERT_EQUAL(s->rip, FX_STUBS + 16 * BT_NMI + 1);
		CU_ASSERT_EQUAL(s->gpr[MODVM_RBX], 0);
		CU_ASSERT_EQUAL(s->gpr[MODVM_RCX], 0);
		esp = (uint32_t)s->gpr[MODVM_RSP];
		CU_ASSERT_EQUAL(esp, FX_STACK - 12);
		CU_ASSERT_EQUAL(*(uint32_t *)(ram + esp), (uint32_t)s->gpr[MODVM_RDX]);
		free(s);
		teardown(vm, vcpu);
	}
}

/* Level-triggered interrupts one after the other: the handler's EOI to
 * the local APIC must reach the interrupt controller (host eoi_broadcast,
 * SDM 3A 11.8.5: the EOI of a vector whose TMR bit is set is broadcast),
 * or its remote IRR stays set and the second interrupt never comes. */
static void test_level_eoi_broadcast(void)
{
	void *vm, *vcpu = setup(&vm, "jmp main\n align 16\n"
		"handler: inc dword [0x9000]\n mov dword [0xFEE000B0], 0\n iretd\n"
		"main: sti\n spin: cmp dword [0x9000], 3\n jne spin\n hlt", false);
	uint32_t h = FX_CODE + 16;
	uint64_t gate = (h & 0xFFFF) | (0x08ull << 16) | (0x8Eull << 40) |
			((uint64_t)(h >> 16) << 48);
	struct runner r = { .vcpu = vcpu };

	memcpy(ram + FX_IDT + 8 * LEVEL_VECTOR, &gate, 8);
	*(uint32_t *)(ram + 0x9000) = 0;
	level_vm = vm;
	level_left = 3;
	level_eois = 0;
	pthread_create(&r.t, NULL, run_thread, &r);
	sleep_ms(20);
	ops()->deliver_msi(vm, 0xFEE00000u, LEVEL_MSI_DATA);
	for (int i = 0; i < 100 && *(volatile uint32_t *)(ram + 0x9000) < 3; i++)
		sleep_ms(10);
	ops()->vcpu_kick(vcpu);
	pthread_join(r.t, NULL);
	CU_ASSERT_EQUAL(*(uint32_t *)(ram + 0x9000), 3);
	CU_ASSERT_EQUAL(level_eois, 3);
	level_vm = NULL;
	teardown(vm, vcpu);
}

static void test_smp_init_sipi(void)
{
	/* the BSP wakes the AP with INIT and SIPI through its LAPIC ICR; the
	 * AP starts in real mode at the SIPI page and writes a marker */
	struct fx *f = fx_new(FX_PROT32), *g = fx_new(FX_REAL);
	struct runner r0, r1;
	void *vm, *c0, *c1;

	fx_idt(f);
	fx_asm_at(f, 0x8000, "bits 16\n xor ax, ax\n mov ds, ax\n"
			     "mov dword [0x9000], 0x1234\n hlt\n");
	fx_asm(f, "mov dword [0xFEE00310], 0x01000000\n"
		  "mov dword [0xFEE00300], 0x00004500\n"
		  "mov dword [0xFEE00300], 0x00004608\n"
		  "spin: cmp dword [0x9000], 0x1234\n jne spin\n hlt");
	f->cpu.s.msr.apic_base = 0xFEE00000ull | (1u << 11) | (1u << 8);
	memcpy(ram, f->ram, FX_RAM);
	vm = ops()->vm_create(&host, NULL, 2);
	c0 = ops()->vcpu_create(vm, 0);
	c1 = ops()->vcpu_create(vm, 1);
	CU_ASSERT_FATAL(c0 && c1);
	ops()->set_state(c0, &f->cpu.s);
	/* an AP as the core sets it up: reset state, halted, not the BSP */
	g->cpu.s.rip = 0xFFF0;
	g->cpu.s.halted = 1;
	g->cpu.s.msr.apic_base = 0xFEE00000ull | (1u << 11);
	ops()->set_state(c1, &g->cpu.s);
	r0 = (struct runner){ .vcpu = c0 };
	r1 = (struct runner){ .vcpu = c1 };
	pthread_create(&r0.t, NULL, run_thread, &r0);
	pthread_create(&r1.t, NULL, run_thread, &r1);
	for (int i = 0; i < 100 && *(volatile uint32_t *)(ram + 0x9000) != 0x1234; i++)
		sleep_ms(10);
	sleep_ms(20);
	ops()->vcpu_kick(c0);
	ops()->vcpu_kick(c1);
	pthread_join(r0.t, NULL);
	pthread_join(r1.t, NULL);
	CU_ASSERT_EQUAL(*(uint32_t *)(ram + 0x9000), 0x1234);
	ops()->get_state(c1, &g->cpu.s);
	CU_ASSERT_EQUAL(g->cpu.s.seg[BT_CS].selector, 0x0800);
	CU_ASSERT(g->cpu.s.halted);
	ops()->vcpu_destroy(c1);
	teardown(vm, c0);
	fx_free(f);
	fx_free(g);
}

int main(void)
{
	static const struct test_case tests[] = {
		TEST(test_kick_running), TEST(test_halt_sleeps_and_kick),
		TEST(test_intr_wakes_halt), TEST(test_triple_fault), TEST(test_a20), TEST(test_nmi_ipi),
		TEST(test_model_refusal), TEST(test_state_roundtrip),
		TEST(test_cr8_is_tpr), TEST(test_cr8_apic_disabled),
		TEST(test_x2apic_tsc_deadline), TEST(test_tsc_deadline_across_state),
		TEST(test_pkrs_in_state),
		TEST(test_self_nmi_at_once), TEST(test_level_eoi_broadcast),
		TEST(test_smp_init_sipi),
	};
	int r;

	ram = calloc(1, FX_RAM);
	r = RUN_TESTS("bt_engine", tests);
	free(ram);
	return r;
}
