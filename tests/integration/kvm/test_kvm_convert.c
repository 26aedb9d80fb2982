/* The KVM layer without /dev/kvm: canonical state <-> KVM structures (every
 * field back as it went in, for each set of KVM capabilities), CPUID
 * building and model refusal on a recorded host table, and the host checks
 * (vendor refusal messages, device errors, hardware-assistance detection).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cpu_model.h"
#include "cpumodel.h"
#include "kvm.h"
#include "testmain.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void fill_random(void *p, size_t n)
{
	uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)next();
}

static uint32_t all_msrs[KVM_STATE_MAX_MSRS];
static uint8_t reset_page[KVM_APIC_REG_SIZE];

static struct kvm_state_caps full_caps(void)
{
	unsigned n = kvm_canonical_msr_count();

	for (unsigned i = 0; i < n; i++)
		all_msrs[i] = kvm_canonical_msr(i);
	for (unsigned i = 0; i < sizeof(reset_page); i++)
		reset_page[i] = (uint8_t)(i * 7);
	return (struct kvm_state_caps){
		.xsave = true, .xcrs = true, .events = true, .debugregs = true,
		.payload = true, .smm = true, .lapic = true,
		.lapic_reset = reset_page, .msrs = all_msrs, .nmsrs = n,
	};
}

/* A state with every field random, except the explicit padding (zero)
 * and the fields with a closed set of values. */
static void random_state(struct modvm_cpu_state *s)
{
	fill_random(s, sizeof(*s));
	for (int i = 0; i < MODVM_NR_SREGS; i++)
		s->seg[i].pad = 0;
	s->ldt.pad = s->tr.pad = 0;
	memset(s->gdt.pad, 0, sizeof(s->gdt.pad));
	memset(s->idt.pad, 0, sizeof(s->idt.pad));
	memset(s->pad, 0, sizeof(s->pad));
	memset(s->pad2, 0, sizeof(s->pad2));
	memset(s->reserved, 0, sizeof(s->reserved));
	s->halted = (uint8_t)(next() % 4);
	s->lapic_valid = 1;
	s->ev.exception_pending = 1;
	s->ev.exception_vector = 14;
}

static struct kvm_cpu_regs *kregs(void)
{
	struct kvm_cpu_regs *k = aligned_alloc(64, sizeof(*k));

	memset(k, 0, sizeof(*k));
	return k;
}

static void roundtrip_full_caps(void)
{
	struct kvm_state_caps caps = full_caps();
	struct modvm_cpu_state *in = aligned_alloc(64, sizeof(*in));
	struct modvm_cpu_state *out = aligned_alloc(64, sizeof(*out));
	struct kvm_cpu_regs *k = kregs();

	for (int round = 0; round < 200; round++) {
		random_state(in);
		/* every event variant, not only a pending #PF */
		in->ev.exception_pending = (uint8_t)(round % 3 == 0 ? 0 : next());
		in->ev.exception_vector = (uint8_t)(round % 5 == 0 ? 1 : next());
		kvm_state_to_kvm(in, &caps, k);
		kvm_state_from_kvm(k, &caps, out);
		CU_ASSERT_EQUAL(memcmp(in, out, sizeof(*in)), 0);
		if (memcmp(in, out, sizeof(*in))) {
			for (size_t i = 0; i < sizeof(*in); i++)
				if (((uint8_t *)in)[i] != ((uint8_t *)out)[i]) {
					fprintf(stderr, "round %d: first difference at offset %zu\n",
						round, i);
					break;
				}
			break;
		}
	}
	free(in);
	free(out);
	free(k);
}

/* Mapping checks that a symmetric mistake (two fields swapped both ways)
 * would not reveal: known values land in the named KVM fields. */
static void fields_land_in_kvm_names(void)
{
	struct kvm_state_caps caps = full_caps();
	struct modvm_cpu_state *s = aligned_alloc(64, sizeof(*s));
	struct kvm_cpu_regs *k = kregs();

	memset(s, 0, sizeof(*s));
	s->gpr[MODVM_RAX] = 1;
	s->gpr[MODVM_RCX] = 2;
	s->gpr[MODVM_RDX] = 3;
	s->gpr[MODVM_RBX] = 4;
	s->gpr[MODVM_RSP] = 5;
	s->gpr[MODVM_RBP] = 6;
	s->gpr[MODVM_RSI] = 7;
	s->gpr[MODVM_RDI] = 8;
	s->gpr[MODVM_R15] = 15;
	s->seg[MODVM_SS].selector = 0x10;
	s->seg[MODVM_ES].selector = 0x20;
	s->seg[MODVM_GS].base = 0xABC;
	s->msr.efer = 0x500;
	s->msr.apic_base = 0xFEE00900;
	s->msr.lstar = 0xFFFFFFFF81000000ull;
	s->msr.mtrr_fixed[3] = 0x0606060606060606ull;
	s->msr.mtrr_var[15] = 0xFFFFF800ull;
	s->cr8 = 5;
	s->xcr0 = 7;
	s->halted = 1;
	s->ev.interrupt_injected = 1;
	s->ev.interrupt_vector = 0x41;
	kvm_state_to_kvm(s, &caps, k);
	CU_ASSERT_EQUAL(k->regs.rax, 1);
	CU_ASSERT_EQUAL(k->regs.rcx, 2);
	CU_ASSERT_EQUAL(k->regs.rdx, 3);
	CU_ASSERT_EQUAL(k->regs.rbx, 4);
	CU_ASSERT_EQUAL(k->regs.rsp, 5);
	CU_ASSERT_EQUAL(k->regs.rbp, 6);
	CU_ASSERT_EQUAL(k->regs.rsi, 7);
	CU_ASSERT_EQUAL(k->regs.rdi, 8);
	CU_ASSERT_EQUAL(k->regs.r15, 15);
	CU_ASSERT_EQUAL(k->sregs.ss.selector, 0x10);
	CU_ASSERT_EQUAL(k->sregs.es.selector, 0x20);
	CU_ASSERT_EQUAL(k->sregs.gs.base, 0xABC);
	CU_ASSERT_EQUAL(k->sregs.efer, 0x500);
	CU_ASSERT_EQUAL(k->sregs.apic_base, 0xFEE00900);
	CU_ASSERT_EQUAL(k->sregs.cr8, 5);
	CU_ASSERT_EQUAL(k->sregs.interrupt_bitmap[1], 1ull << 1);
	CU_ASSERT_EQUAL(k->xcrs.nr_xcrs, 1);
	CU_ASSERT_EQUAL(k->xcrs.xcrs[0].value, 7);
	CU_ASSERT_EQUAL(k->mp.mp_state, KVM_MP_STATE_HALTED);
	CU_ASSERT_EQUAL(k->events.interrupt.nr, 0x41);
	bool lstar = false, fix = false, var = false, tsc_first;
	for (unsigned i = 0; i < k->nmsrs; i++) {
		lstar |= k->msrs[i].index == 0xC0000082 &&
			 k->msrs[i].data == 0xFFFFFFFF81000000ull;
		fix |= k->msrs[i].index == 0x268 && k->msrs[i].data == 0x0606060606060606ull;
		var |= k->msrs[i].index == 0x20F && k->msrs[i].data == 0xFFFFF800ull;
	}
	tsc_first = k->msrs[0].index == 0x10;
	CU_ASSERT(lstar);
	CU_ASSERT(fix);
	CU_ASSERT(var);
	CU_ASSERT(tsc_first);
	CU_ASSERT_EQUAL(k->msrs[k->nmsrs - 1].index, 0x6E0); /* after the TSC */
	free(s);
	free(k);
}

static void msrs_kvm_lacks_come_back_zero(void)
{
	struct kvm_state_caps caps = full_caps();
	static const uint32_t few[] = { 0x10, 0xC0000082, 0x277 };
	struct modvm_cpu_state *in = aligned_alloc(64, sizeof(*in));
	struct modvm_cpu_state *out = aligned_alloc(64, sizeof(*out));
	struct kvm_cpu_regs *k = kregs();

	caps.msrs = few;
	caps.nmsrs = 3;
	random_state(in);
	kvm_state_to_kvm(in, &caps, k);
	CU_ASSERT_EQUAL(k->nmsrs, 3);
	kvm_state_from_kvm(k, &caps, out);
	CU_ASSERT_EQUAL(out->msr.tsc, in->msr.tsc);
	CU_ASSERT_EQUAL(out->msr.lstar, in->msr.lstar);
	CU_ASSERT_EQUAL(out->msr.pat, in->msr.pat);
	CU_ASSERT_EQUAL(out->msr.efer, in->msr.efer);         /* via sregs */
	CU_ASSERT_EQUAL(out->msr.apic_base, in->msr.apic_base);
	CU_ASSERT_EQUAL(out->msr.star, 0);
	CU_ASSERT_EQUAL(out->msr.tsc_aux, 0);
	CU_ASSERT_EQUAL(out->msr.mtrr_var[3], 0);
	free(in);
	free(out);
	free(k);
}

/* Without KVM_CAP_XSAVE: the FXSAVE image goes through struct kvm_fpu. */
static void fpu_without_xsave(void)
{
	struct kvm_state_caps caps = full_caps();
	struct modvm_cpu_state *in = aligned_alloc(64, sizeof(*in));
	struct modvm_cpu_state *out = aligned_alloc(64, sizeof(*out));
	struct kvm_cpu_regs *k = kregs();
	uint64_t bv;

	caps.xsave = false;
	random_state(in);
	kvm_state_to_kvm(in, &caps, k);
	CU_ASSERT_EQUAL(memcmp(&k->fpu.fcw, in->xsave, 2), 0);
	CU_ASSERT_EQUAL(memcmp(&k->fpu.mxcsr, in->xsave + 24, 4), 0);
	CU_ASSERT_EQUAL(memcmp(k->fpu.fpr, in->xsave + 32, 128), 0);
	CU_ASSERT_EQUAL(memcmp(k->fpu.xmm[15], in->xsave + 160 + 15 * 16, 16), 0);
	kvm_state_from_kvm(k, &caps, out);
	/* FCW..FDP, MXCSR, ST0-7, XMM0-15: everything but MXCSR_MASK (a
	 * read-only capability) and the reserved bytes */
	CU_ASSERT_EQUAL(memcmp(out->xsave, in->xsave, 5), 0);
	CU_ASSERT_EQUAL(memcmp(out->xsave + 6, in->xsave + 6, 22), 0);
	CU_ASSERT_EQUAL(memcmp(out->xsave + 32, in->xsave + 32, 128 + 256), 0);
	memcpy(&bv, out->xsave + 512, 8);
	CU_ASSERT_EQUAL(bv, 3); /* x87 and SSE present */
	free(in);
	free(out);
	free(k);
}

/* Without KVM_CAP_VCPU_EVENTS the interrupt bitmap of sregs carries an
 * external interrupt in delivery. */
static void interrupt_without_events(void)
{
	struct kvm_state_caps caps = full_caps();
	struct modvm_cpu_state *in = aligned_alloc(64, sizeof(*in));
	struct modvm_cpu_state *out = aligned_alloc(64, sizeof(*out));
	struct kvm_cpu_regs *k = kregs();

	caps.events = false;
	random_state(in);
	in->ev.interrupt_injected = 1;
	in->ev.interrupt_soft = 0;
	in->ev.interrupt_vector = 0xEF;
	kvm_state_to_kvm(in, &caps, k);
	kvm_state_from_kvm(k, &caps, out);
	CU_ASSERT_EQUAL(out->ev.interrupt_injected, 1);
	CU_ASSERT_EQUAL(out->ev.interrupt_vector, 0xEF);
	CU_ASSERT_EQUAL(out->ev.exception_pending, 0);
	free(in);
	free(out);
	free(k);
}

/* Without KVM_CAP_EXCEPTION_PAYLOAD a pending #PF becomes an injected one
 * with CR2 already holding the faulting address. */
static void pending_pf_without_payload_cap(void)
{
	struct kvm_state_caps caps = full_caps();
	struct modvm_cpu_state *in = aligned_alloc(64, sizeof(*in));
	struct modvm_cpu_state *out = aligned_alloc(64, sizeof(*out));
	struct kvm_cpu_regs *k = kregs();

	caps.payload = false;
	memset(in, 0, sizeof(*in));
	in->cr2 = 0x1111;
	in->ev.exception_pending = 1;
	in->ev.exception_vector = 14;
	in->ev.exception_has_error = 1;
	in->ev.exception_error = 2;
	in->ev.exception_payload = 0xDEAD000;
	kvm_state_to_kvm(in, &caps, k);
	CU_ASSERT_EQUAL(k->events.exception.injected, 1);
	CU_ASSERT_EQUAL(k->events.exception.pending, 0);
	CU_ASSERT_EQUAL(k->sregs.cr2, 0xDEAD000);
	kvm_state_from_kvm(k, &caps, out);
	CU_ASSERT_EQUAL(out->ev.exception_injected, 1);
	CU_ASSERT_EQUAL(out->ev.exception_error, 2);
	CU_ASSERT_EQUAL(out->cr2, 0xDEAD000);
	free(in);
	free(out);
	free(k);
}

/* A pending #DB whose payload KVM already applied to DR6: the canonical
 * payload is the one that reproduces that DR6 when delivered. */
static void pending_db_payload_from_dr6(void)
{
	struct kvm_state_caps caps = full_caps();
	struct kvm_state_caps old = caps;
	struct modvm_cpu_state *s = aligned_alloc(64, sizeof(*s));
	struct kvm_cpu_regs *k = kregs();
	struct kvm_cpu_regs *k2 = kregs();
	static const uint64_t dr6s[] = { 0xFFFF0FF0, 0xFFFF4FF1, 0xFFFE0FF2,
					 0xFFFF2FF8 };

	old.payload = false;
	for (size_t i = 0; i < sizeof(dr6s) / sizeof(dr6s[0]); i++) {
		memset(k, 0, sizeof(*k));
		k->events.exception.pending = 1;
		k->events.exception.nr = 1;
		k->events.exception_has_payload = 0;
		k->dregs.dr6 = dr6s[i];
		kvm_state_from_kvm(k, &caps, s);
		CU_ASSERT_EQUAL(s->ev.exception_payload, (dr6s[i] ^ 0xFFFF0FF0) & 0xFFFFFFFF);
		/* deliver it (the no-payload path applies it): same DR6 */
		s->dr6 = 0xFFFF0FF0;
		kvm_state_to_kvm(s, &old, k2);
		CU_ASSERT_EQUAL(k2->dregs.dr6, dr6s[i]);
	}
	free(s);
	free(k);
	free(k2);
}

static void lapic_reset_page_when_invalid(void)
{
	struct kvm_state_caps caps = full_caps();
	struct modvm_cpu_state *s = aligned_alloc(64, sizeof(*s));
	struct kvm_cpu_regs *k = kregs();

	random_state(s);
	s->lapic_valid = 0;
	kvm_state_to_kvm(s, &caps, k);
	CU_ASSERT_EQUAL(memcmp(k->lapic.regs, reset_page, sizeof(reset_page)), 0);
	caps.lapic = false;
	kvm_state_from_kvm(k, &caps, s);
	CU_ASSERT_EQUAL(s->lapic_valid, 0);
	CU_ASSERT_EQUAL(s->lapic[0x20], 0);
	free(s);
	free(k);
}

static void halted_states_map_to_mp_states(void)
{
	struct kvm_state_caps caps = full_caps();
	struct modvm_cpu_state *s = aligned_alloc(64, sizeof(*s));
	struct kvm_cpu_regs *k = kregs();
	static const uint32_t mp[] = { KVM_MP_STATE_RUNNABLE, KVM_MP_STATE_HALTED,
				       KVM_MP_STATE_INIT_RECEIVED,
				       KVM_MP_STATE_SIPI_RECEIVED };

	for (uint8_t h = 0; h < 4; h++) {
		memset(s, 0, sizeof(*s));
		s->halted = h;
		kvm_state_to_kvm(s, &caps, k);
		CU_ASSERT_EQUAL(k->mp.mp_state, mp[h]);
	}
	free(s);
	free(k);
}

/* ---- CPUID ---------------------------------------------------------------- */

/* KVM_GET_SUPPORTED_CPUID as recorded on the development host (kvm_pvm on
 * an Intel Xeon; docs/engines-kvm.md), the leaves that matter here. */
static void recorded_supported(struct kvm_cpuid_buf *b)
{
	static const struct kvm_cpuid_entry2 e[] = {
		{ .function = 0, .eax = 0x24, .ebx = 0x756e6547, .ecx = 0x6c65746e, .edx = 0x49656e69 },
		{ .function = 1, .eax = 0xa0671, .ebx = 0x20800, .ecx = 0x81202000, .edx = 0x0f8bfbff },
		{ .function = 7, .index = 0, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
		  .eax = 2, .ebx = 0x01802852, .ecx = 0x1a010104, .edx = 0x20010000 },
		{ .function = 0xB, .index = 0, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX },
		{ .function = 0xB, .index = 1, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX },
		{ .function = 0xD, .index = 0, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
		  .eax = 0xe7, .ebx = 0xa80, .ecx = 0xa80 },
		{ .function = 0x40000000, .eax = 0x40000001, .ebx = 0x4b4d564b,
		  .ecx = 0x564b4d56, .edx = 0x4d },
		{ .function = 0x40000001, .eax = 0x01007efb },
		{ .function = 0x80000000, .eax = 0x80000008 },
		{ .function = 0x80000001, .ecx = 0x101, .edx = 0x20100800 },
		{ .function = 0x80000008, .eax = 0x3930 },
	};

	memset(b, 0, sizeof(*b));
	b->head.nent = sizeof(e) / sizeof(e[0]);
	memcpy(b->entries, e, sizeof(e));
}

static const struct kvm_cpuid_entry2 *leaf(const struct kvm_cpuid_buf *b,
					   uint32_t fn, uint32_t idx)
{
	for (uint32_t i = 0; i < b->head.nent; i++)
		if (b->entries[i].function == fn && b->entries[i].index == idx)
			return &b->entries[i];
	return NULL;
}

static void cpuid_baseline_v1_fits(void)
{
	struct kvm_cpuid_buf sup, out;
	const struct modvm_cpu_model *m = cpu_model_find("baseline-v1");
	char err[512] = "";

	recorded_supported(&sup);
	CU_ASSERT_EQUAL(kvm_cpuid_build(m, &sup, 3, true, &out, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(out.head.nent, m->nleaves);
	/* the model's leaves, unchanged but for the APIC ID */
	CU_ASSERT_EQUAL(leaf(&out, 0, 0)->ebx, 0x68747541);   /* "Auth" */
	CU_ASSERT_EQUAL(leaf(&out, 1, 0)->ebx >> 24, 3);
	CU_ASSERT_EQUAL(leaf(&out, 1, 0)->ebx & 0xFFFFFF,
			cpuid_model_leaf(m, 1, 0)->ebx & 0xFFFFFF);
	CU_ASSERT_EQUAL(leaf(&out, 1, 0)->edx, cpuid_model_leaf(m, 1, 0)->edx);
	CU_ASSERT_EQUAL(leaf(&out, 0x40000000, 0)->ebx, 0x76646f6d); /* "modv" */
}

static void cpuid_baseline_v2_refused_with_list(void)
{
	struct kvm_cpuid_buf sup, out;
	char err[512] = "";

	recorded_supported(&sup);
	CU_ASSERT_EQUAL(kvm_cpuid_build(cpu_model_find("baseline-v2"), &sup, 0, true,
					&out, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "baseline-v2"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, ": sse3 ssse3 sse4_1 sse4_2 popcnt;"));
	CU_ASSERT_PTR_NULL(strstr(err, "cx16"));          /* that one KVM has */
	CU_ASSERT_PTR_NULL(strstr(err, "hypervisor"));    /* never refused */
}

static void cpuid_unnamed_bits_and_address_width(void)
{
	static const struct modvm_cpuid_leaf leaves[] = {
		{ 0x7, 1, MODVM_CPUID_SIGNIFICANT_INDEX, 1u << 3, 0, 0, 0 },
		{ 0x80000008, 0, 0, 0x3034, 0, 0, 0 },
	};
	const struct modvm_cpu_model m = { .name = "wide", .leaves = leaves,
					   .nleaves = 2 };
	struct kvm_cpuid_buf sup, out;
	char err[512] = "";

	recorded_supported(&sup);
	CU_ASSERT_EQUAL(kvm_cpuid_build(&m, &sup, 0, true, &out, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "cpuid.0x7.1.eax[3]"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "52-bit-physical-addresses (host: 48)"));
}

static void cpuid_host_model_hides_kvm_leaves(void)
{
	const struct modvm_cpu_model *m = cpu_model_find("host");
	struct kvm_cpuid_buf sup, out;
	char err[512] = "";

	recorded_supported(&sup);
	CU_ASSERT_EQUAL(kvm_cpuid_build(m, &sup, 2, true, &out, err, sizeof(err)), 0);
	CU_ASSERT_PTR_NULL(leaf(&out, 0x40000001, 0));
	CU_ASSERT_EQUAL(leaf(&out, 0x40000000, 0)->ebx, 0x76646f6d);
	CU_ASSERT(leaf(&out, 1, 0)->ecx & (1u << 31));
	CU_ASSERT_EQUAL(leaf(&out, 1, 0)->ebx >> 24, 2);
	CU_ASSERT_EQUAL(leaf(&out, 0xB, 0)->edx, 2);
	CU_ASSERT_EQUAL(leaf(&out, 0xB, 1)->edx, 2);
	CU_ASSERT_EQUAL(leaf(&out, 7, 0)->ebx, 0x01802852);
}

static void cpuid_without_lapic_hides_apic(void)
{
	const struct modvm_cpu_model *m = cpu_model_find("host");
	struct kvm_cpuid_buf sup, out;
	char err[512] = "";

	recorded_supported(&sup);
	CU_ASSERT_EQUAL(kvm_cpuid_build(m, &sup, 0, false, &out, err, sizeof(err)), 0);
	CU_ASSERT_FALSE(leaf(&out, 1, 0)->edx & (1u << 9));
	CU_ASSERT_FALSE(leaf(&out, 1, 0)->ecx & (1u << 21));
	CU_ASSERT_FALSE(leaf(&out, 1, 0)->ecx & (1u << 24));
	CU_ASSERT_EQUAL(kvm_cpuid_build(NULL, &sup, 0, false, &out, err, sizeof(err)), -1);
}

/* ---- host checks -------------------------------------------------------- */

static const struct kvm_vendor vtx = {
	.engine = "cpu-vtx", .vendor_id = "GenuineIntel",
	.needs = "an Intel CPU with VT-x", .hw_flag = "vmx",
	.other_engine = "cpu-svm", .hw_leaf = 1, .hw_bit = 5,
};
static const struct kvm_vendor svm = {
	.engine = "cpu-svm", .vendor_id = "AuthenticAMD",
	.needs = "an AMD CPU with AMD-V", .hw_flag = "svm",
	.other_engine = "cpu-vtx", .hw_leaf = 0x80000001, .hw_bit = 2,
};

static void vendor_refusals_name_the_other_engine(void)
{
	struct kvm_host_cpu amd = { .vendor = "AuthenticAMD",
				    .brand = "AMD EPYC 7B13 64-Core Processor" };
	struct kvm_host_cpu intel = { .vendor = "GenuineIntel",
				      .brand = "Intel(R) Xeon(R) Processor" };
	char why[512];

	CU_ASSERT_EQUAL(kvm_vendor_check(&vtx, &amd, why, sizeof(why)), -1);
	CU_ASSERT_STRING_EQUAL(why, "cpu-vtx needs an Intel CPU with VT-x; this host is "
			       "AuthenticAMD (AMD EPYC 7B13 64-Core Processor): use "
			       "cpu-svm (or cpu-bt)");
	CU_ASSERT_EQUAL(kvm_vendor_check(&svm, &intel, why, sizeof(why)), -1);
	CU_ASSERT_STRING_EQUAL(why, "cpu-svm needs an AMD CPU with AMD-V; this host is "
			       "GenuineIntel (Intel(R) Xeon(R) Processor): use cpu-vtx "
			       "(or cpu-bt)");
	CU_ASSERT_EQUAL(kvm_vendor_check(&svm, &amd, why, sizeof(why)), 0);
	CU_ASSERT_EQUAL(kvm_vendor_check(&vtx, &intel, why, sizeof(why)), 0);
}

static void device_errors_say_what_to_do(void)
{
	char why[512];
	char tmp[] = "/tmp/kvm-test-XXXXXX";
	int fd;

	CU_ASSERT_EQUAL(kvm_device_check("/nonexistent/kvm", why, sizeof(why)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "/nonexistent/kvm does not exist"));
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "cpu-bt"));
	CU_ASSERT_EQUAL(kvm_device_check("/dev/null", why, sizeof(why)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "/dev/null is not a KVM device"));
	fd = mkstemp(tmp);
	CU_ASSERT(fd >= 0);
	close(fd);
	/* Unreadable: EACCES for a normal user (root opens it anyway and
	 * then finds it is not a KVM device). */
	chmod(tmp, 0);
	CU_ASSERT_EQUAL(kvm_device_check(tmp, why, sizeof(why)), -1);
	if (geteuid() != 0) {
		CU_ASSERT_PTR_NOT_NULL(strstr(why, "may not open it"));
		CU_ASSERT_PTR_NOT_NULL(strstr(why, "usermod -aG kvm"));
	} else {
		CU_ASSERT_PTR_NOT_NULL(strstr(why, "is not a KVM device"));
	}
	unlink(tmp);
}

static void hardware_assistance_detection(void)
{
	struct kvm_host_cpu with = { .vendor = "GenuineIntel", .hw_bit = true };
	struct kvm_host_cpu without = { .vendor = "GenuineIntel", .hw_bit = false };
	const char *info = "processor\t: 0\nflags\t\t: fpu vme vmx sse2\nbogomips\t: 1\n";
	const char *info_no = "processor\t: 0\nflags\t\t: fpu vmxx svm sse2\n";

	CU_ASSERT_TRUE(kvm_hw_assisted(&vtx, &with, info, false));
	CU_ASSERT_TRUE(kvm_hw_assisted(&vtx, &with, NULL, false));
	CU_ASSERT_FALSE(kvm_hw_assisted(&vtx, &with, info, true));   /* kvm_pvm */
	CU_ASSERT_FALSE(kvm_hw_assisted(&vtx, &without, info, false));
	CU_ASSERT_FALSE(kvm_hw_assisted(&vtx, &with, info_no, false));
	CU_ASSERT_TRUE(kvm_hw_assisted(&svm, &with, info_no, false));
	CU_ASSERT_STRING_EQUAL(KVM_NO_HW_NOTE,
			       "KVM present without hardware assistance: kernel-mode "
			       "guest code will be slow; cpu-bt boots stock kernels "
			       "faster here");
}

int main(void)
{
	static const struct test_case tests[] = {
		TEST(roundtrip_full_caps),
		TEST(fields_land_in_kvm_names),
		TEST(msrs_kvm_lacks_come_back_zero),
		TEST(fpu_without_xsave),
		TEST(interrupt_without_events),
		TEST(pending_pf_without_payload_cap),
		TEST(pending_db_payload_from_dr6),
		TEST(lapic_reset_page_when_invalid),
		TEST(halted_states_map_to_mp_states),
		TEST(cpuid_baseline_v1_fits),
		TEST(cpuid_baseline_v2_refused_with_list),
		TEST(cpuid_unnamed_bits_and_address_width),
		TEST(cpuid_host_model_hides_kvm_leaves),
		TEST(cpuid_without_lapic_hides_apic),
		TEST(vendor_refusals_name_the_other_engine),
		TEST(device_errors_say_what_to_do),
		TEST(hardware_assistance_detection),
	};

	return RUN_TESTS("kvm-convert", tests);
}
