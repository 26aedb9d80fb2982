/* The CPUID a vCPU sees: the CPU model's leaves with the per-vCPU APIC IDs
 * filled in, checked against what this host's KVM can provide
 * (KVM_GET_SUPPORTED_CPUID) so that a model is refused before the VM runs,
 * never silently weakened. Pure: the tests feed it recorded host tables.
 */
#include <stdio.h>
#include <string.h>

#include "kvm.h"
#include "cpu_model.h"

enum { EAX, EBX, ECX, EDX };

static const char *const leaf1_ecx[32] = {
	"sse3", "pclmulqdq", "dtes64", "monitor", "ds_cpl", "vmx", "smx", "est",
	"tm2", "ssse3", "cnxt_id", "sdbg", "fma", "cx16", "xtpr", "pdcm",
	NULL, "pcid", "dca", "sse4_1", "sse4_2", "x2apic", "movbe", "popcnt",
	"tsc_deadline", "aes", "xsave", "osxsave", "avx", "f16c", "rdrand",
	"hypervisor",
};
static const char *const leaf1_edx[32] = {
	"fpu", "vme", "de", "pse", "tsc", "msr", "pae", "mce", "cx8", "apic",
	NULL, "sep", "mtrr", "pge", "mca", "cmov", "pat", "pse36", "psn",
	"clflush", NULL, "ds", "acpi", "mmx", "fxsr", "sse", "sse2", "ss", "ht",
	"tm", "ia64", "pbe",
};
static const char *const leaf7_ebx[32] = {
	"fsgsbase", "tsc_adjust", "sgx", "bmi1", "hle", "avx2",
	"fdp_excptn_only", "smep", "bmi2", "erms", "invpcid", "rtm", "pqm",
	"zero_fcs_fds", "mpx", "rdt_a", "avx512f", "avx512dq", "rdseed", "adx",
	"smap", "avx512ifma", "pcommit", "clflushopt", "clwb", "intel_pt",
	"avx512pf", "avx512er", "avx512cd", "sha_ni", "avx512bw", "avx512vl",
};
static const char *const leaf7_ecx[32] = {
	"prefetchwt1", "avx512vbmi", "umip", "pku", "ospke", "waitpkg",
	"avx512_vbmi2", "shstk", "gfni", "vaes", "vpclmulqdq", "avx512_vnni",
	"avx512_bitalg", "tme", "avx512_vpopcntdq", NULL, "la57", NULL, NULL,
	NULL, NULL, NULL, "rdpid", "kl", "bus_lock_detect", "cldemote", NULL,
	"movdiri", "movdir64b", "enqcmd", "sgx_lc", "pks",
};
static const char *const leaf7_edx[32] = {
	NULL, NULL, "avx512_4vnniw", "avx512_4fmaps", "fsrm", "uintr", NULL,
	NULL, "avx512_vp2intersect", "srbds_ctrl", "md_clear",
	"rtm_always_abort", NULL, "tsx_force_abort", "serialize", "hybrid",
	"tsxldtrk", NULL, "pconfig", "arch_lbr", "ibt", NULL, "amx_bf16",
	"avx512_fp16", "amx_tile", "amx_int8", "spec_ctrl", "stibp",
	"flush_l1d", "arch_capabilities", "core_capabilities", "ssbd",
};
static const char *const ext1_ecx[32] = {
	"lahf_lm", "cmp_legacy", "svm", "extapic", "cr8_legacy", "abm",
	"sse4a", "misalignsse", "3dnowprefetch", "osvw", "ibs", "xop",
	"skinit", "wdt", NULL, "lwp", "fma4", "tce", NULL, "nodeid_msr", NULL,
	"tbm", "topoext", "perfctr_core", "perfctr_nb", NULL, "bpext", "ptsc",
	"perfctr_llc", "mwaitx", NULL, NULL,
};
static const char *const ext1_edx[32] = {
	"fpu", "vme", "de", "pse", "tsc", "msr", "pae", "mce", "cx8", "apic",
	NULL, "syscall", "mtrr", "pge", "mca", "cmov", "pat", "pse36", NULL,
	"mp", "nx", NULL, "mmxext", "mmx", "fxsr", "fxsr_opt", "pdpe1gb",
	"rdtscp", NULL, "lm", "3dnowext", "3dnow",
};

#define BIT(n) (1u << (n))
#define L1_ECX_X2APIC BIT(21)
#define L1_ECX_TSC_DEADLINE BIT(24)
#define L1_ECX_OSXSAVE BIT(27)
#define L1_ECX_HYPERVISOR BIT(31)
#define L1_EDX_APIC BIT(9)
#define L7_ECX_OSPKE BIT(4)

/* Feature registers: a bit the model sets must be one KVM supports. */
struct feature_reg {
	uint32_t function, index;
	int reg;
	const char *const *names;  /* NULL: report bit numbers */
	uint32_t dynamic;          /* set by the CPU from CR4, never refused */
	uint32_t lapic;            /* provided by KVM's in-kernel local APIC */
};

static const struct feature_reg feature_regs[] = {
	{ 0x1, 0, ECX, leaf1_ecx, L1_ECX_OSXSAVE | L1_ECX_HYPERVISOR,
	  L1_ECX_X2APIC | L1_ECX_TSC_DEADLINE },
	{ 0x1, 0, EDX, leaf1_edx, 0, L1_EDX_APIC },
	{ 0x7, 0, EBX, leaf7_ebx, 0, 0 },
	{ 0x7, 0, ECX, leaf7_ecx, L7_ECX_OSPKE, 0 },
	{ 0x7, 0, EDX, leaf7_edx, 0, 0 },
	{ 0x7, 1, EAX, NULL, 0, 0 },
	{ 0xD, 0, EAX, NULL, 0, 0 },        /* XCR0 components */
	{ 0xD, 0, EDX, NULL, 0, 0 },
	{ 0xD, 1, EAX, NULL, 0, 0 },        /* XSAVEOPT, XSAVEC, ... */
	{ 0x80000001, 0, ECX, ext1_ecx, 0, 0 },
	{ 0x80000001, 0, EDX, ext1_edx, 0, 0 },
	{ 0x80000007, 0, EDX, NULL, 0, 0 },
	{ 0x80000008, 0, EBX, NULL, 0, 0 },
};

static uint32_t reg_of(const struct kvm_cpuid_entry2 *e, int reg)
{
	switch (reg) {
	case EAX: return e->eax;
	case EBX: return e->ebx;
	case ECX: return e->ecx;
	default: return e->edx;
	}
}

static const char *const reg_names[] = { "eax", "ebx", "ecx", "edx" };

/* A leaf of a CPUID table; index matters only for leaves that have one. */
static struct kvm_cpuid_entry2 *find_entry(const struct kvm_cpuid_buf *b,
					   uint32_t function, uint32_t index)
{
	for (uint32_t i = 0; i < b->head.nent && i < KVM_CPUID_MAX; i++) {
		const struct kvm_cpuid_entry2 *e = &b->entries[i];
		if (e->function != function)
			continue;
		if ((e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) && e->index != index)
			continue;
		return (struct kvm_cpuid_entry2 *)e;
	}
	return NULL;
}

static uint32_t leaf_reg(const struct modvm_cpuid_leaf *l, int reg)
{
	switch (reg) {
	case EAX: return l->eax;
	case EBX: return l->ebx;
	case ECX: return l->ecx;
	default: return l->edx;
	}
}

/* Append " name" for every bit of missing to list. */
static void name_bits(const struct feature_reg *f, uint32_t missing,
		      char *list, size_t len)
{
	for (int bit = 0; bit < 32; bit++) {
		size_t used = strlen(list);
		if (!(missing & BIT(bit)))
			continue;
		if (f->names && f->names[bit])
			snprintf(list + used, len - used, " %s", f->names[bit]);
		else
			snprintf(list + used, len - used, " cpuid.0x%x.%u.%s[%d]",
				 f->function, f->index, reg_names[f->reg], bit);
	}
}

static int check_features(const struct modvm_cpu_model *m,
			  const struct kvm_cpuid_buf *sup, bool lapic,
			  char *err, size_t len)
{
	char list[512] = "";
	const struct modvm_cpuid_leaf *l;
	const struct kvm_cpuid_entry2 *e;

	for (size_t i = 0; i < sizeof(feature_regs) / sizeof(feature_regs[0]); i++) {
		const struct feature_reg *f = &feature_regs[i];
		uint32_t want, have = 0;

		l = cpuid_model_leaf(m, f->function, f->index);
		if (!l)
			continue;
		e = find_entry(sup, f->function, f->index);
		if (e)
			have = reg_of(e, f->reg);
		want = leaf_reg(l, f->reg) & ~f->dynamic;
		if (lapic)
			want &= ~f->lapic;
		name_bits(f, want & ~have, list, sizeof(list));
	}
	/* Guest physical address width: RAM or MMIO the guest may place
	 * above what the host translates would be unreachable. */
	l = cpuid_model_leaf(m, 0x80000008, 0);
	e = find_entry(sup, 0x80000008, 0);
	if (l && e && (l->eax & 0xFF) > (e->eax & 0xFF)) {
		size_t used = strlen(list);
		snprintf(list + used, sizeof(list) - used,
			 " %u-bit-physical-addresses (host: %u)", l->eax & 0xFF,
			 e->eax & 0xFF);
	}
	if (!list[0])
		return 0;
	return kvm_err(err, len,
		       "CPU model %s needs features this host's KVM cannot provide:%s; "
		       "choose a model without them (cpu.model = \"baseline-v1\" or \"host\")",
		       m->name, list);
}

static int add_entry(struct kvm_cpuid_buf *out, const struct kvm_cpuid_entry2 *e,
		     char *err, size_t len)
{
	if (out->head.nent >= KVM_CPUID_MAX)
		return kvm_err(err, len, "CPU model has more than %d CPUID leaves",
			       KVM_CPUID_MAX);
	out->entries[out->head.nent++] = *e;
	return 0;
}

/* The host's leaves, without KVM's own paravirtual leaves 0x4000xxxx: their
 * features (kvmclock, async page faults, PV EOI) keep state in MSRs the
 * canonical state does not carry, so a guest using them could not be
 * snapshotted. The hypervisor leaf says modvm instead. */
static int host_leaves(const struct kvm_cpuid_buf *sup,
		       struct kvm_cpuid_buf *out, char *err, size_t len)
{
	struct kvm_cpuid_entry2 sig = { .function = 0x40000000,
					.eax = 0x40000000 };
	struct kvm_cpuid_entry2 *l1;

	for (uint32_t i = 0; i < sup->head.nent && i < KVM_CPUID_MAX; i++) {
		const struct kvm_cpuid_entry2 *e = &sup->entries[i];
		if ((e->function & 0xF0000000) == 0x40000000)
			continue;
		if (add_entry(out, e, err, len))
			return -1;
	}
	memcpy(&sig.ebx, "modv", 4);
	memcpy(&sig.ecx, "mmod", 4);
	memcpy(&sig.edx, "vm\0\0", 4);
	if (add_entry(out, &sig, err, len))
		return -1;
	l1 = find_entry(out, 1, 0);
	if (l1)
		l1->ecx |= L1_ECX_HYPERVISOR;
	return 0;
}

static int model_leaves(const struct modvm_cpu_model *m,
			struct kvm_cpuid_buf *out, char *err, size_t len)
{
	for (uint32_t i = 0; i < m->nleaves; i++) {
		const struct modvm_cpuid_leaf *l = &m->leaves[i];
		struct kvm_cpuid_entry2 e = {
			.function = l->function, .index = l->index,
			.eax = l->eax, .ebx = l->ebx, .ecx = l->ecx, .edx = l->edx,
		};
		if (l->flags & MODVM_CPUID_SIGNIFICANT_INDEX)
			e.flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
		if (add_entry(out, &e, err, len))
			return -1;
	}
	return 0;
}

/* Per-vCPU fields (SDM vol. 2A CPUID): initial APIC ID in leaf 1
 * EBX[31:24], x2APIC ID in EDX of every subleaf of 0xB and 0x1F. */
static void fill_apic_id(struct kvm_cpuid_buf *out, unsigned apic_id, bool lapic)
{
	for (uint32_t i = 0; i < out->head.nent; i++) {
		struct kvm_cpuid_entry2 *e = &out->entries[i];
		if (e->function == 1) {
			e->ebx = (e->ebx & 0x00FFFFFFu) | (apic_id & 0xFFu) << 24;
			if (!lapic) {
				e->edx &= ~L1_EDX_APIC;
				e->ecx &= ~(L1_ECX_X2APIC | L1_ECX_TSC_DEADLINE);
			}
		}
		if (e->function == 0xB || e->function == 0x1F)
			e->edx = apic_id;
	}
}

int kvm_cpuid_build(const struct modvm_cpu_model *model,
		    const struct kvm_cpuid_buf *supported, unsigned apic_id,
		    bool lapic, struct kvm_cpuid_buf *out, char *err,
		    size_t len)
{
	memset(out, 0, sizeof(*out));
	if (!model)
		return kvm_err(err, len, "no CPU model");
	if (!model->leaves) {
		if (host_leaves(supported, out, err, len))
			return -1;
	} else {
		if (check_features(model, supported, lapic, err, len) ||
		    model_leaves(model, out, err, len))
			return -1;
	}
	fill_apic_id(out, apic_id, lapic);
	return 0;
}
