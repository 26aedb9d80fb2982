/* The KVM layer on /dev/kvm with small guests (the .asm files in guests/): a vCPU
 * stopped mid-run and moved to a fresh VM continues exactly where it was;
 * kicks stop a spinning or halted vCPU promptly; the 8259 INTR line wakes
 * HLT under both interrupt models and MSIs reach the in-kernel APIC;
 * string and MMIO exits, unknown MSRs and triple faults. Skips (77)
 * without a usable /dev/kvm.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvmt.h"
#include "testmain.h"

#define MS 1000000ull
#define MSI_LEVEL (1u << 15)  /* MSI data: trigger mode level */
#define MSI_ASSERT (1u << 14) /* MSI data: level asserted */

static int open_or_fail(struct kvmt *t, enum kvm_irqchip_mode mode)
{
	int r = kvmt_open(t, mode);

	if (r)
		fprintf(stderr, "kvmt_open: %s\n", t->err);
	CU_ASSERT_EQUAL_FATAL(r, 0);
	return r;
}

static size_t nout(struct kvmt *t)
{
	size_t n;

	pthread_mutex_lock(&t->lock);
	n = t->nout;
	pthread_mutex_unlock(&t->lock);
	return n;
}

/* Wait until cond(t) or timeout; returns cond's last value. */
static bool wait_for(struct kvmt *t, bool (*cond)(struct kvmt *), unsigned ms)
{
	for (unsigned i = 0; i < ms; i++) {
		if (cond(t))
			return true;
		usleep(1000);
	}
	return cond(t);
}

/* Index of the first value of out[] that is not the counter sequence,
 * or n if all are right. */
static size_t counter_mismatch(const uint32_t *out, size_t n)
{
	const uint64_t mul = 6364136223846793005ull, inc = 1442695040888963407ull;
	uint64_t x = 0x0123456789ABCDEFull;

	for (size_t i = 0; i < n; i++) {
		x = x * mul + inc;
		if (out[i] != ((uint32_t)x ^ (uint32_t)(x >> 32) ^ (uint32_t)(i + 1)))
			return i;
	}
	return n;
}

static void counter_start(struct kvmt *t, struct modvm_cpu_state *s)
{
	CU_ASSERT_EQUAL_FATAL(kvmt_load(t, "counter"), 0);
	kvmt_long_state(s, KVMT_CODE, 3);
	kvmt_counter_setup(s);
	CU_ASSERT_EQUAL_FATAL(kvm_vcpu_set_state(t->cpu, s, t->err, sizeof(t->err)), 0);
}

#define COUNTER_N 30000
#define COUNTER_AFTER_OUT (KVMT_CODE + 0x27) /* guests/counter.lst */

/* The uninterrupted run: the guest's sequence is right and ends where
 * asked, with the vCPU stopped by a kick from inside a port write. */
static void counter_uninterrupted(void)
{
	struct kvmt t;
	struct modvm_cpu_state *s = kvmt_state_new();
	char err[512];

	if (open_or_fail(&t, KVM_IRQCHIP_SPLIT))
		return;
	counter_start(&t, s);
	t.stop_after = COUNTER_N;
	CU_ASSERT_EQUAL(kvm_vcpu_run(t.cpu, err, sizeof(err)), MODVM_RUN_STOPPED);
	CU_ASSERT_EQUAL(t.nout, COUNTER_N);
	CU_ASSERT_EQUAL(counter_mismatch(t.out, t.nout), t.nout);
	/* stopped at an instruction boundary: RBX counts the OUTs done */
	CU_ASSERT_EQUAL(kvm_vcpu_get_state(t.cpu, s, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(s->gpr[MODVM_RBX], COUNTER_N);
	CU_ASSERT_EQUAL(s->rip, COUNTER_AFTER_OUT); /* the OUT completed */
	kvmt_close(&t);
	free(s);
}

static bool third_done(struct kvmt *t)
{
	return nout(t) >= COUNTER_N / 3;
}

/* Compare two canonical states field group by field group, ignoring what
 * moves on its own (the TSC, the APIC timer's current count). */
static void assert_same_state(const struct modvm_cpu_state *a,
			      const struct modvm_cpu_state *b)
{
	CU_ASSERT_EQUAL(memcmp(a->gpr, b->gpr, sizeof(a->gpr)), 0);
	CU_ASSERT_EQUAL(a->rip, b->rip);
	CU_ASSERT_EQUAL(a->rflags, b->rflags);
	CU_ASSERT_EQUAL(memcmp(a->seg, b->seg, sizeof(a->seg)), 0);
	CU_ASSERT_EQUAL(memcmp(&a->ldt, &b->ldt, sizeof(a->ldt)), 0);
	CU_ASSERT_EQUAL(memcmp(&a->tr, &b->tr, sizeof(a->tr)), 0);
	CU_ASSERT_EQUAL(memcmp(&a->gdt, &b->gdt, sizeof(a->gdt)), 0);
	CU_ASSERT_EQUAL(memcmp(&a->idt, &b->idt, sizeof(a->idt)), 0);
	CU_ASSERT_EQUAL(a->cr0, b->cr0);
	CU_ASSERT_EQUAL(a->cr3, b->cr3);
	CU_ASSERT_EQUAL(a->cr4, b->cr4);
	CU_ASSERT_EQUAL(a->cr8, b->cr8);
	CU_ASSERT_EQUAL(a->xcr0, b->xcr0);
	CU_ASSERT_EQUAL(a->dr7, b->dr7);
	CU_ASSERT_EQUAL(a->msr.efer, b->msr.efer);
	CU_ASSERT_EQUAL(a->msr.apic_base, b->msr.apic_base);
	CU_ASSERT_EQUAL(a->msr.pat, b->msr.pat);
	CU_ASSERT_EQUAL(a->msr.lstar, b->msr.lstar);
	CU_ASSERT_EQUAL(memcmp(a->msr.mtrr_var, b->msr.mtrr_var, sizeof(a->msr.mtrr_var)), 0);
	CU_ASSERT_EQUAL(memcmp(&a->ev, &b->ev, sizeof(a->ev)), 0);
	CU_ASSERT_EQUAL(a->halted, b->halted);
	CU_ASSERT_EQUAL(memcmp(a->xsave, b->xsave, 512 + 64), 0);
	CU_ASSERT_EQUAL(a->lapic_valid, b->lapic_valid);
	CU_ASSERT_EQUAL(memcmp(a->lapic, b->lapic, 0x390), 0);
	CU_ASSERT(b->msr.tsc >= a->msr.tsc);
}

/* Move the vCPU to a fresh VM: a new VM with a copy of RAM, and the state;
 * the state read back from the new vCPU is the one that went in. */
static void move(struct kvmt *from, struct kvmt *to, enum kvm_irqchip_mode mode,
		 struct modvm_cpu_state *s, size_t done)
{
	struct modvm_cpu_state *back = kvmt_state_new();
	char err[512];

	CU_ASSERT_EQUAL_FATAL(kvm_vcpu_get_state(from->cpu, s, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(s->gpr[MODVM_RBX], done); /* OUTs so far */
	CU_ASSERT_EQUAL(s->lapic_valid, mode == KVM_IRQCHIP_SPLIT);
	CU_ASSERT_EQUAL_FATAL(kvmt_open(to, mode), 0);
	memcpy(to->ram, from->ram, KVMT_RAM_SIZE);
	CU_ASSERT_EQUAL_FATAL(kvm_vcpu_set_state(to->cpu, s, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(kvm_vcpu_get_state(to->cpu, back, err, sizeof(err)), 0);
	assert_same_state(s, back);
	free(back);
}

/* Stop mid-run twice and continue each time in a fresh VM: once by a kick
 * from another thread (anywhere in the loop), once by a kick from inside
 * the port write (an OUT whose completion is still pending in KVM). The
 * sequence goes on with no value lost or repeated. */
static void counter_moves_to_fresh_vm(enum kvm_irqchip_mode mode)
{
	struct kvmt a, b, c;
	struct modvm_cpu_state *s = kvmt_state_new();
	struct kvmt_runner r;
	uint32_t *all;
	size_t ka, kb;
	char err[512];

	if (open_or_fail(&a, mode))
		return;
	counter_start(&a, s);
	kvmt_run_start(&r, &a);
	CU_ASSERT_TRUE(wait_for(&a, third_done, 20000));
	kvm_vcpu_kick(a.cpu);
	CU_ASSERT_EQUAL(kvmt_run_join(&r), MODVM_RUN_STOPPED);
	ka = a.nout;
	CU_ASSERT(ka >= COUNTER_N / 3 && ka < COUNTER_N);

	move(&a, &b, mode, s, ka);
	kb = (COUNTER_N - ka) / 2;
	b.stop_after = kb;
	CU_ASSERT_EQUAL(kvm_vcpu_run(b.cpu, err, sizeof(err)), MODVM_RUN_STOPPED);
	CU_ASSERT_EQUAL(b.nout, kb);

	move(&b, &c, mode, s, ka + kb);
	CU_ASSERT_EQUAL(s->rip, COUNTER_AFTER_OUT);
	c.stop_after = COUNTER_N - ka - kb;
	CU_ASSERT_EQUAL(kvm_vcpu_run(c.cpu, err, sizeof(err)), MODVM_RUN_STOPPED);
	CU_ASSERT_EQUAL(c.nout, COUNTER_N - ka - kb);

	all = malloc(COUNTER_N * sizeof(*all));
	memcpy(all, a.out, ka * sizeof(*all));
	memcpy(all + ka, b.out, kb * sizeof(*all));
	memcpy(all + ka + kb, c.out, (COUNTER_N - ka - kb) * sizeof(*all));
	CU_ASSERT_EQUAL(counter_mismatch(all, COUNTER_N), COUNTER_N);
	free(all);
	kvmt_close(&a);
	kvmt_close(&b);
	kvmt_close(&c);
	free(s);
}

static void counter_moves_split(void)
{
	counter_moves_to_fresh_vm(KVM_IRQCHIP_SPLIT);
}

static void counter_moves_no_irqchip(void)
{
	counter_moves_to_fresh_vm(KVM_IRQCHIP_NONE);
}

/* A guest that never exits stops within 100 ms of a kick; a kick before
 * vcpu_run makes it return at once. */
static void kick_stops_spinning_guest(void)
{
	struct kvmt t;
	struct modvm_cpu_state *s = kvmt_state_new();
	struct kvmt_runner r;
	uint64_t t0;
	char err[512];

	if (open_or_fail(&t, KVM_IRQCHIP_SPLIT))
		return;
	CU_ASSERT_EQUAL_FATAL(kvmt_load(&t, "spin"), 0);
	kvmt_long_state(s, KVMT_CODE, 3);
	CU_ASSERT_EQUAL_FATAL(kvm_vcpu_set_state(t.cpu, s, err, sizeof(err)), 0);
	kvm_vcpu_kick(t.cpu);
	CU_ASSERT_EQUAL(kvm_vcpu_run(t.cpu, err, sizeof(err)), MODVM_RUN_STOPPED);
	for (int i = 0; i < 3; i++) {
		kvmt_run_start(&r, &t);
		usleep(50000);
		t0 = kvmt_now_ns();
		kvm_vcpu_kick(t.cpu);
		CU_ASSERT_EQUAL(kvmt_run_join(&r), MODVM_RUN_STOPPED);
		CU_ASSERT(r.end_ns - t0 < 100 * MS);
	}
	CU_ASSERT_EQUAL(kvm_vcpu_get_state(t.cpu, s, err, sizeof(err)), 0);
	CU_ASSERT(s->gpr[MODVM_RAX] > 0); /* it did run */
	CU_ASSERT(s->rip == KVMT_CODE || s->rip == KVMT_CODE + 3);
	kvmt_close(&t);
	free(s);
}

static bool irq_seen(struct kvmt *t)
{
	bool r;

	pthread_mutex_lock(&t->lock);
	r = t->nirq >= 1 && t->wakes >= 1;
	pthread_mutex_unlock(&t->lock);
	return r;
}

static bool msi_seen(struct kvmt *t)
{
	bool r;

	pthread_mutex_lock(&t->lock);
	r = t->nirq >= 2 && t->wakes >= 2;
	pthread_mutex_unlock(&t->lock);
	return r;
}

/* HLT with IF=1; the INTR line rises from another thread: the vCPU wakes,
 * takes vector 0x30 from intr_ack, runs the handler and halts again. Then
 * an MSI (split irqchip only), then a kick stops the halted vCPU. */
static void intr_wakes_halted(enum kvm_irqchip_mode mode)
{
	struct kvmt t;
	struct modvm_cpu_state *s = kvmt_state_new();
	struct kvmt_runner r;
	uint64_t t0;
	char err[512];

	if (open_or_fail(&t, mode))
		return;
	CU_ASSERT_EQUAL_FATAL(kvmt_load(&t, "irq"), 0);
	kvmt_set_gate(&t, 0x30, KVMT_CODE + 0x100);
	kvmt_set_gate(&t, 0x31, KVMT_CODE + 0x200);
	kvmt_long_state(s, KVMT_CODE, 0);
	CU_ASSERT_EQUAL_FATAL(kvm_vcpu_set_state(t.cpu, s, err, sizeof(err)), 0);
	kvmt_run_start(&r, &t);
	usleep(100000); /* let it reach HLT */
	CU_ASSERT_EQUAL(t.nirq, 0);
	pthread_mutex_lock(&t.lock);
	t.intr_vector = 0x30;
	pthread_mutex_unlock(&t.lock);
	kvm_vcpu_set_intr(t.cpu, 1);
	CU_ASSERT_TRUE(wait_for(&t, irq_seen, 5000));
	CU_ASSERT_EQUAL(t.irq_seen[0], 0x30);
	CU_ASSERT_EQUAL(t.acks, 1);

	/* Level-triggered, asserted (SDM 3A 11.11.2): the guest's EOI must
	 * come back as an EOI broadcast for the IOAPIC. */
	kvm_vm_deliver_msi(&t.vm, 0xFEE00000, 0x31 | MSI_LEVEL | MSI_ASSERT);
	if (mode == KVM_IRQCHIP_SPLIT) {
		CU_ASSERT_TRUE(wait_for(&t, msi_seen, 5000));
		CU_ASSERT_EQUAL(t.irq_seen[1], 0x31);
		for (int i = 0; i < 1000 && !t.neoi; i++)
			usleep(1000);
		CU_ASSERT_EQUAL(t.neoi, 1);
		CU_ASSERT_EQUAL(t.eoi_seen[0], 0x31);
	} else {
		usleep(100000);
		CU_ASSERT_EQUAL(t.nirq, 1); /* no APIC: dropped */
	}
	usleep(50000);
	t0 = kvmt_now_ns();
	kvm_vcpu_kick(t.cpu);
	CU_ASSERT_EQUAL(kvmt_run_join(&r), MODVM_RUN_STOPPED);
	CU_ASSERT(r.end_ns - t0 < 100 * MS);
	CU_ASSERT_EQUAL(kvm_vcpu_get_state(t.cpu, s, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(s->halted, KVM_HALTED_HLT);
	CU_ASSERT(s->rflags & 0x200);
	if (mode == KVM_IRQCHIP_SPLIT) {
		uint32_t svr, isr1;
		memcpy(&svr, s->lapic + 0xF0, 4);
		memcpy(&isr1, s->lapic + 0x110, 4); /* ISR bits 32-63 */
		CU_ASSERT_EQUAL(svr, 0x1FF);
		CU_ASSERT_EQUAL(isr1, 0);          /* 0x31 got its EOI */
	}
	/* Still halted after a state round trip (HLT is not re-run: no
	 * wake-up is reported), and the INTR line still wakes it. */
	unsigned wakes = t.wakes, irqs = t.nirq;
	CU_ASSERT_EQUAL(wakes, mode == KVM_IRQCHIP_SPLIT ? 2u : 1u);
	CU_ASSERT_EQUAL(kvm_vcpu_set_state(t.cpu, s, err, sizeof(err)), 0);
	kvmt_run_start(&r, &t);
	usleep(50000);
	CU_ASSERT_EQUAL(t.wakes, wakes);
	pthread_mutex_lock(&t.lock);
	t.intr_vector = 0x30;
	pthread_mutex_unlock(&t.lock);
	kvm_vcpu_set_intr(t.cpu, 1);
	for (int i = 0; i < 5000 && t.wakes == wakes; i++)
		usleep(1000);
	CU_ASSERT_EQUAL(t.wakes, wakes + 1);
	CU_ASSERT_EQUAL(t.nirq, irqs + 1);
	kvm_vcpu_kick(t.cpu);
	CU_ASSERT_EQUAL(kvmt_run_join(&r), MODVM_RUN_STOPPED);
	kvmt_close(&t);
	free(s);
}

static void intr_wakes_halted_split(void)
{
	intr_wakes_halted(KVM_IRQCHIP_SPLIT);
}

static void intr_wakes_halted_no_irqchip(void)
{
	intr_wakes_halted(KVM_IRQCHIP_NONE);
}

/* REP OUTSD / REP INSW: count elements per exit in the run page. */
static void string_io(void)
{
	struct kvmt t;
	struct modvm_cpu_state *s = kvmt_state_new();
	static const uint32_t want[] = { 0x11111111, 0x22222222, 0x33333333,
					 0x44444444, 0x55555555, 0x00020001, 3 };
	char err[512];

	if (open_or_fail(&t, KVM_IRQCHIP_SPLIT))
		return;
	CU_ASSERT_EQUAL_FATAL(kvmt_load(&t, "strio"), 0);
	kvmt_long_state(s, KVMT_CODE, 3);
	CU_ASSERT_EQUAL_FATAL(kvm_vcpu_set_state(t.cpu, s, err, sizeof(err)), 0);
	t.stop_after = 7;
	CU_ASSERT_EQUAL(kvm_vcpu_run(t.cpu, err, sizeof(err)), MODVM_RUN_STOPPED);
	CU_ASSERT_EQUAL(t.nout, 7);
	if (t.nout == 7)
		CU_ASSERT_EQUAL(memcmp(t.out, want, sizeof(want)), 0);
	kvmt_close(&t);
	free(s);
}

static bool many_mmio(struct kvmt *t)
{
	return t->mmio > 2000;
}

/* Stores to an address with no RAM are MMIO exits; a kick in the middle
 * completes the pending access and stops at an instruction boundary. */
static void mmio_exits_and_stop(void)
{
	struct kvmt t;
	struct modvm_cpu_state *s = kvmt_state_new();
	struct kvmt_runner r;
	char err[512];

	if (open_or_fail(&t, KVM_IRQCHIP_SPLIT))
		return;
	CU_ASSERT_EQUAL_FATAL(kvmt_load(&t, "bench"), 0);
	kvmt_long_state(s, KVMT_CODE + 0x200, 3);
	s->gpr[MODVM_RDI] = KVMT_MMIO;
	CU_ASSERT_EQUAL_FATAL(kvm_vcpu_set_state(t.cpu, s, err, sizeof(err)), 0);
	kvmt_run_start(&r, &t);
	CU_ASSERT_TRUE(wait_for(&t, many_mmio, 10000));
	kvm_vcpu_kick(t.cpu);
	CU_ASSERT_EQUAL(kvmt_run_join(&r), MODVM_RUN_STOPPED);
	CU_ASSERT_EQUAL(kvm_vcpu_get_state(t.cpu, s, err, sizeof(err)), 0);
	/* the store (2 bytes) or the jump back (2 bytes) */
	CU_ASSERT(s->rip == KVMT_CODE + 0x200 || s->rip == KVMT_CODE + 0x202);
	kvmt_close(&t);
	free(s);
}

/* A kick from inside the port or MMIO read handler: the value must reach
 * RAX and RIP move past the instruction before vcpu_run returns (KVM
 * completes an IN or MMIO load on the next KVM_RUN: immediate_exit). */
static void stop_inside_read_completes_it(void)
{
	struct kvmt t;
	struct modvm_cpu_state *s = kvmt_state_new();
	char err[512];

	if (open_or_fail(&t, KVM_IRQCHIP_SPLIT))
		return;
	CU_ASSERT_EQUAL_FATAL(kvmt_load(&t, "inread"), 0);
	for (int mmio = 0; mmio < 2; mmio++) {
		uint64_t entry = KVMT_CODE + (mmio ? 0x100 : 0);
		kvmt_long_state(s, entry, 3);
		s->gpr[MODVM_RDI] = KVMT_MMIO;
		CU_ASSERT_EQUAL_FATAL(kvm_vcpu_set_state(t.cpu, s, err, sizeof(err)), 0);
		t.stop_on_read = t.reads + 5;
		CU_ASSERT_EQUAL(kvm_vcpu_run(t.cpu, err, sizeof(err)), MODVM_RUN_STOPPED);
		CU_ASSERT_EQUAL(kvm_vcpu_get_state(t.cpu, s, err, sizeof(err)), 0);
		CU_ASSERT_EQUAL(s->gpr[MODVM_RAX], t.stop_on_read);
		CU_ASSERT_EQUAL(s->rip, entry + 2);
	}
	kvmt_close(&t);
	free(s);
}

/* RDMSR of an MSR KVM does not know: #GP in the guest, counted here. */
static void unknown_msr_raises_gp(void)
{
	struct kvmt t;
	struct modvm_cpu_state *s = kvmt_state_new();
	char err[512];

	if (open_or_fail(&t, KVM_IRQCHIP_SPLIT))
		return;
	CU_ASSERT_EQUAL_FATAL(kvmt_load(&t, "msr"), 0);
	kvmt_set_gate(&t, 13, KVMT_CODE + 0x100);
	kvmt_long_state(s, KVMT_CODE, 0);
	CU_ASSERT_EQUAL_FATAL(kvm_vcpu_set_state(t.cpu, s, err, sizeof(err)), 0);
	t.stop_after = 1;
	CU_ASSERT_EQUAL(kvm_vcpu_run(t.cpu, err, sizeof(err)), MODVM_RUN_STOPPED);
	CU_ASSERT_EQUAL(t.nirq, 1);
	CU_ASSERT_EQUAL(t.irq_seen[0], 13);
	CU_ASSERT_EQUAL(t.nout, 1);
	CU_ASSERT_EQUAL(t.out[0], 0x600D);
	if (t.vm.cap_user_msr)
		CU_ASSERT_EQUAL(t.cpu->stray_msr, 1);
	kvmt_close(&t);
	free(s);
}

/* UD2 with an empty IDT: #UD, #DF, triple fault: MODVM_RUN_SHUTDOWN, and
 * the vCPU takes a new state and runs again afterwards (platform reset). */
static void triple_fault_is_shutdown(void)
{
	struct kvmt t;
	struct modvm_cpu_state *s = kvmt_state_new();
	char err[512];

	if (open_or_fail(&t, KVM_IRQCHIP_SPLIT))
		return;
	t.ram[KVMT_CODE] = 0x0F;
	t.ram[KVMT_CODE + 1] = 0x0B;
	kvmt_long_state(s, KVMT_CODE, 0);
	s->idt.limit = 0;
	CU_ASSERT_EQUAL_FATAL(kvm_vcpu_set_state(t.cpu, s, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(kvm_vcpu_run(t.cpu, err, sizeof(err)), MODVM_RUN_SHUTDOWN);

	CU_ASSERT_EQUAL_FATAL(kvmt_load(&t, "strio"), 0);
	kvmt_long_state(s, KVMT_CODE, 3);
	CU_ASSERT_EQUAL_FATAL(kvm_vcpu_set_state(t.cpu, s, err, sizeof(err)), 0);
	t.stop_after = 7;
	CU_ASSERT_EQUAL(kvm_vcpu_run(t.cpu, err, sizeof(err)), MODVM_RUN_STOPPED);
	CU_ASSERT_EQUAL(t.nout, 7);
	kvmt_close(&t);
	free(s);
}

/* Configurations the layer refuses before it creates anything. */
static void vm_refusals(void)
{
	static const struct modvm_cpuid_leaf wide[] = {
		{ 0x1, 0, 0, 0, 0, 1u << 0, 0 }, /* SSE3 */
	};
	const struct modvm_cpu_model host = { .name = "host" };
	const struct modvm_cpu_model sse3 = { .name = "sse3", .leaves = wide,
					      .nleaves = 1 };
	struct kvm_vm_config cfg = { .irqchip = KVM_IRQCHIP_NONE, .model = &host,
				     .ncpus = 2 };
	struct kvmt t;
	struct kvm_vm vm;
	char err[512] = "";

	if (open_or_fail(&t, KVM_IRQCHIP_SPLIT))
		return;
	CU_ASSERT_EQUAL(kvm_vm_open(&vm, &cfg, &t.host, (modvm_inst *)&t, err,
				    sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "use cpus = 1"));
	cfg.device = "/nonexistent/kvm";
	cfg.ncpus = 1;
	CU_ASSERT_EQUAL(kvm_vm_open(&vm, &cfg, &t.host, (modvm_inst *)&t, err,
				    sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "does not exist"));
	/* a model asking for what this KVM lacks (only if it does lack it) */
	cfg.device = NULL;
	cfg.model = &sse3;
	if (kvm_vm_open(&vm, &cfg, &t.host, (modvm_inst *)&t, err, sizeof(err))) {
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "needs features this host's KVM "
					      "cannot provide: sse3"));
	} else {
		kvm_vm_close(&vm);
	}
	kvmt_close(&t);
}

int main(void)
{
	static const struct test_case tests[] = {
		TEST(counter_uninterrupted),
		TEST(counter_moves_split),
		TEST(counter_moves_no_irqchip),
		TEST(kick_stops_spinning_guest),
		TEST(intr_wakes_halted_split),
		TEST(intr_wakes_halted_no_irqchip),
		TEST(string_io),
		TEST(mmio_exits_and_stop),
		TEST(stop_inside_read_completes_it),
		TEST(unknown_msr_raises_gp),
		TEST(triple_fault_is_shutdown),
		TEST(vm_refusals),
	};
	char why[512];

	if (kvm_device_check(KVM_DEVICE_PATH, why, sizeof(why))) {
		printf("SKIP: %s\n", why);
		return 77;
	}
	return RUN_TESTS("kvm-run", tests);
}
