/* CPU models. Each is a complete CPUID table so that what the guest sees
 * does not depend on the host: a VM keeps its CPU when it moves. The
 * baselines follow the x86-64 psABI micro-architecture levels (v1: SSE2;
 * v2: + CMPXCHG16B, LAHF/SAHF, POPCNT, SSE3, SSSE3, SSE4.1, SSE4.2). The
 * baseline-v1-xsave adds XSAVE for the x87 and SSE state to v1. The
 * vendor is AMD's ("AuthenticAMD") with a generic family 0Fh signature; the
 * hypervisor bit is set so guests know they run in a VM. */
#include "cpumodel.h"

#include <string.h>

#define VENDOR_EBX 0x68747541 /* "Auth" */
#define VENDOR_EDX 0x69746e65 /* "enti" */
#define VENDOR_ECX 0x444d4163 /* "cAMD" */

/* Leaf 1 EDX: FPU DE PSE TSC MSR PAE CX8 APIC SEP MTRR PGE CMOV PAT
 * CLFSH MMX FXSR SSE SSE2 */
#define V1_EDX 0x0789bb7d
#define HYPERVISOR (1u << 31)
/* Leaf 1 ECX for v2: SSE3 SSSE3 CX16 SSE4.1 SSE4.2 POPCNT */
#define V2_ECX 0x00982201
/* Leaf 0x80000001 EDX: SYSCALL NX LM */
#define EXT_EDX ((1u << 11) | (1u << 20) | (1u << 29))
#define LAHF_LM 1u

/* family 0Fh, model 1, stepping 0; CLFLUSH 64 bytes, 1 logical CPU */
#define SIGNATURE 0x00000f10
#define LEAF1_EBX 0x00010800

#define COMMON_LEAVES(n, ecx1, ecx_ext) COMMON_LEAVES_MAX(n, ecx1, ecx_ext, 1)
#define COMMON_LEAVES_MAX(n, ecx1, ecx_ext, max)                              \
	{ 0x0, 0, 0, (max), VENDOR_EBX, VENDOR_ECX, VENDOR_EDX },             \
	{ 0x1, 0, 0, SIGNATURE, LEAF1_EBX, (ecx1) | HYPERVISOR, V1_EDX },     \
	{ 0x40000000, 0, 0, 0x40000000, 0x76646f6d, 0x646f6d6d, 0x6d76 },     \
	{ 0x80000000, 0, 0, 0x80000008, VENDOR_EBX, VENDOR_ECX, VENDOR_EDX }, \
	{ 0x80000001, 0, 0, SIGNATURE, 0, (ecx_ext), EXT_EDX },               \
	{ 0x80000002, 0, 0, 0x76646f6d, 0x6162206d, 0x696c6573, 0x762d656e }, \
	{ 0x80000003, 0, 0, 0x50432030 + (n), 0x55, 0, 0 },           \
	{ 0x80000004, 0, 0, 0, 0, 0, 0 },                                     \
	/* 40 physical and 48 virtual address bits */                        \
	{ 0x80000008, 0, 0, 0x00003028, 0, 0, 0 }

/* Brand string "modvm baseline-vN CPU": N is the low byte of leaf
 * 0x80000003 EAX ("N CP" little-endian), "U" is its EBX. */
static const struct modvm_cpuid_leaf baseline_v1[] = {
	COMMON_LEAVES(1, 0, 0),
};

/* baseline-v1 + XSAVE for the x87 and SSE components (SDM vol. 1 ch. 13):
 * leaf 0xD sub-leaf 0 lists XCR0 bits 0-1 and the 576-byte standard area
 * (legacy region + header), sub-leaf 1 XSAVEOPT only (no XSAVEC, XGETBV
 * ECX=1 or XSAVES). OSXSAVE (leaf 1 ECX bit 27) is CR4's, set by engines. */
#define XSAVE_ECX (1u << 26)
#define XSAVE_AREA 576
static const struct modvm_cpuid_leaf baseline_v1_xsave[] = {
	COMMON_LEAVES_MAX(1, XSAVE_ECX, 0, 0xD),
	{ 0xD, 0, MODVM_CPUID_SIGNIFICANT_INDEX, 0x3, XSAVE_AREA, XSAVE_AREA, 0 },
	{ 0xD, 1, MODVM_CPUID_SIGNIFICANT_INDEX, 0x1, 0, 0, 0 },
};

static const struct modvm_cpuid_leaf baseline_v2[] = {
	COMMON_LEAVES(2, V2_ECX, LAHF_LM),
};

/* The "system" models: baseline-v1-xsave plus the operating-system
 * features kvm-unit-tests and current kernels look for, all implemented
 * by cpu-bt: leaf 1 ECX PCID, x2APIC, TSC-deadline; leaf 7.0 EBX SMEP,
 * INVPCID, SMAP and ECX UMIP, PKU, RDPID; leaf 0x80000001 EDX RDTSCP;
 * leaf 1 EDX MCA (IA32_MCG_CAP, zero banks).
 * OSPKE (leaf 7 ECX bit 4) is CR4.PKE's, set by engines. system-v1 is
 * AuthenticAMD with the baselines' family 0Fh signature; TSC-deadline is
 * there as KVM offers it on AMD hosts (AMD parts do not have it).
 * system-v1-intel is GenuineIntel (family 0Fh model 6, as QEMU's kvm64),
 * with Intel's rules where the vendors differ (docs/engines-bt.md). */
#define SYS_ECX1 (XSAVE_ECX | (1u << 17) | (1u << 21) | (1u << 24))
#define SYS_L7_EBX ((1u << 7) | (1u << 10) | (1u << 20))
#define SYS_L7_ECX ((1u << 2) | (1u << 3) | (1u << 22))
#define RDTSCP_EDX (1u << 27)
/* + MCA with no banks (MCG_CAP reads 0); no MCE: guests leave it alone */
#define SYS_EDX1 (V1_EDX | (1u << 14))
#define INTEL_EBX 0x756e6547 /* "Genu" */
#define INTEL_EDX 0x49656e69 /* "ineI" */
#define INTEL_ECX 0x6c65746e /* "ntel" */
#define INTEL_SIGNATURE 0x00000f61

static const struct modvm_cpuid_leaf system_v1[] = {
	{ 0x0, 0, 0, 0xD, VENDOR_EBX, VENDOR_ECX, VENDOR_EDX },
	{ 0x1, 0, 0, SIGNATURE, LEAF1_EBX, SYS_ECX1 | HYPERVISOR, SYS_EDX1 },
	{ 0x7, 0, MODVM_CPUID_SIGNIFICANT_INDEX, 0, SYS_L7_EBX, SYS_L7_ECX, 0 },
	{ 0xD, 0, MODVM_CPUID_SIGNIFICANT_INDEX, 0x3, XSAVE_AREA, XSAVE_AREA, 0 },
	{ 0xD, 1, MODVM_CPUID_SIGNIFICANT_INDEX, 0x1, 0, 0, 0 },
	{ 0x40000000, 0, 0, 0x40000000, 0x76646f6d, 0x646f6d6d, 0x6d76 },
	{ 0x80000000, 0, 0, 0x80000008, VENDOR_EBX, VENDOR_ECX, VENDOR_EDX },
	{ 0x80000001, 0, 0, SIGNATURE, 0, 0, EXT_EDX | RDTSCP_EDX },
	/* "modvm system-v1 CPU" */
	{ 0x80000002, 0, 0, 0x76646f6d, 0x7973206d, 0x6d657473, 0x2031762d },
	{ 0x80000003, 0, 0, 0x00555043, 0, 0, 0 },
	{ 0x80000004, 0, 0, 0, 0, 0, 0 },
	{ 0x80000008, 0, 0, 0x00003028, 0, 0, 0 },
};

/* Intel: leaf 0x80000000 names no vendor, 0x80000001 EAX is reserved. */
static const struct modvm_cpuid_leaf system_v1_intel[] = {
	{ 0x0, 0, 0, 0xD, INTEL_EBX, INTEL_ECX, INTEL_EDX },
	{ 0x1, 0, 0, INTEL_SIGNATURE, LEAF1_EBX, SYS_ECX1 | HYPERVISOR, SYS_EDX1 },
	{ 0x7, 0, MODVM_CPUID_SIGNIFICANT_INDEX, 0, SYS_L7_EBX, SYS_L7_ECX, 0 },
	{ 0xD, 0, MODVM_CPUID_SIGNIFICANT_INDEX, 0x3, XSAVE_AREA, XSAVE_AREA, 0 },
	{ 0xD, 1, MODVM_CPUID_SIGNIFICANT_INDEX, 0x1, 0, 0, 0 },
	{ 0x40000000, 0, 0, 0x40000000, 0x76646f6d, 0x646f6d6d, 0x6d76 },
	{ 0x80000000, 0, 0, 0x80000008, 0, 0, 0 },
	{ 0x80000001, 0, 0, 0, 0, 0, EXT_EDX | RDTSCP_EDX },
	/* "modvm system-v1-intel CPU" */
	{ 0x80000002, 0, 0, 0x76646f6d, 0x7973206d, 0x6d657473, 0x2d31762d },
	{ 0x80000003, 0, 0, 0x65746e69, 0x5043206c, 0x00000055, 0 },
	{ 0x80000004, 0, 0, 0, 0, 0, 0 },
	{ 0x80000008, 0, 0, 0x00003028, 0, 0, 0 },
};

/* The v2 system models: v1 + the PKRU state component (XCR0 bit 9, 8
 * bytes at 0xA80 of the standard XSAVE area), which every CPU with PKU
 * has; system-v2-intel also has PKS (leaf 7.0 ECX bit 31, CR4.PKS,
 * IA32_PKRS), which only Intel CPUs have. (0xD,0) EBX is the size for
 * every component; engines report it for the ones XCR0 enables. */
#define XCR0_V2 0x203
#define XSAVE_AREA_V2 0xA88
#define PKS_ECX (1u << 31)
/* Leaf 0x80000007 EDX bit 8: the TSC runs at a constant rate in every
 * state (engines keep the TSC on the virtual clock, or on the host's
 * invariant TSC). Without it Linux distrusts an AMD TSC across CPUs. */
#define INVARIANT_TSC_EDX (1u << 8)
#define SYSTEM_V2(vendor_ebx, vendor_ecx, vendor_edx, sig, l7ecx)           \
	{ 0x0, 0, 0, 0xD, vendor_ebx, vendor_ecx, vendor_edx },             \
	{ 0x1, 0, 0, sig, LEAF1_EBX, SYS_ECX1 | HYPERVISOR, SYS_EDX1 },     \
	{ 0x7, 0, MODVM_CPUID_SIGNIFICANT_INDEX, 0, SYS_L7_EBX, l7ecx, 0 }, \
	{ 0xD, 0, MODVM_CPUID_SIGNIFICANT_INDEX, XCR0_V2, XSAVE_AREA_V2,    \
	  XSAVE_AREA_V2, 0 },                                               \
	{ 0xD, 1, MODVM_CPUID_SIGNIFICANT_INDEX, 0x1, 0, 0, 0 },            \
	{ 0xD, 9, MODVM_CPUID_SIGNIFICANT_INDEX, 8, 0xA80, 0, 0 },          \
	{ 0x40000000, 0, 0, 0x40000000, 0x76646f6d, 0x646f6d6d, 0x6d76 }

static const struct modvm_cpuid_leaf system_v2[] = {
	SYSTEM_V2(VENDOR_EBX, VENDOR_ECX, VENDOR_EDX, SIGNATURE, SYS_L7_ECX),
	{ 0x80000000, 0, 0, 0x80000008, VENDOR_EBX, VENDOR_ECX, VENDOR_EDX },
	{ 0x80000001, 0, 0, SIGNATURE, 0, 0, EXT_EDX | RDTSCP_EDX },
	/* "modvm system-v2 CPU" */
	{ 0x80000002, 0, 0, 0x76646f6d, 0x7973206d, 0x6d657473, 0x2032762d },
	{ 0x80000003, 0, 0, 0x00555043, 0, 0, 0 },
	{ 0x80000004, 0, 0, 0, 0, 0, 0 },
	{ 0x80000007, 0, 0, 0, 0, 0, INVARIANT_TSC_EDX },
	{ 0x80000008, 0, 0, 0x00003028, 0, 0, 0 },
};

static const struct modvm_cpuid_leaf system_v2_intel[] = {
	SYSTEM_V2(INTEL_EBX, INTEL_ECX, INTEL_EDX, INTEL_SIGNATURE,
		  SYS_L7_ECX | PKS_ECX),
	{ 0x80000000, 0, 0, 0x80000008, 0, 0, 0 },
	{ 0x80000001, 0, 0, 0, 0, 0, EXT_EDX | RDTSCP_EDX },
	/* "modvm system-v2-intel CPU" */
	{ 0x80000002, 0, 0, 0x76646f6d, 0x7973206d, 0x6d657473, 0x2d32762d },
	{ 0x80000003, 0, 0, 0x65746e69, 0x5043206c, 0x00000055, 0 },
	{ 0x80000004, 0, 0, 0, 0, 0, 0 },
	{ 0x80000007, 0, 0, 0, 0, 0, INVARIANT_TSC_EDX },
	{ 0x80000008, 0, 0, 0x00003028, 0, 0, 0 },
};

static const struct modvm_cpu_model model_v1 = {
	.name = "baseline-v1",
	.description = "x86-64 baseline (SSE2), runs on every x86-64 host",
	.leaves = baseline_v1, .nleaves = MODVM_COUNTOF(baseline_v1),
	.migratable = 1,
};

static const struct modvm_cpu_model model_v1_xsave = {
	.name = "baseline-v1-xsave",
	.description = "baseline-v1 + XSAVE/XRSTOR/XSAVEOPT, XGETBV/XSETBV for "
		       "x87 and SSE state (CPUID leaf 0xD)",
	.leaves = baseline_v1_xsave, .nleaves = MODVM_COUNTOF(baseline_v1_xsave),
	.migratable = 1,
};

static const struct modvm_cpu_model model_v2 = {
	.name = "baseline-v2",
	.description = "x86-64-v2 (SSE4.2, POPCNT, CMPXCHG16B)",
	.leaves = baseline_v2, .nleaves = MODVM_COUNTOF(baseline_v2),
	.migratable = 1,
};

static const struct modvm_cpu_model model_sys = {
	.name = "system-v1",
	.description = "baseline-v1-xsave + RDTSCP, RDPID, UMIP, SMEP, SMAP, PKU, "
		       "PCID, INVPCID, x2APIC, TSC-deadline (AuthenticAMD)",
	.leaves = system_v1, .nleaves = MODVM_COUNTOF(system_v1),
	.migratable = 1,
};

static const struct modvm_cpu_model model_sys_intel = {
	.name = "system-v1-intel",
	.description = "system-v1 as a GenuineIntel CPU: Intel's MSRs and rules",
	.leaves = system_v1_intel, .nleaves = MODVM_COUNTOF(system_v1_intel),
	.migratable = 1,
};

static const struct modvm_cpu_model model_sys2 = {
	.name = "system-v2",
	.description = "system-v1 + XSAVE of PKRU (XCR0 bit 9) (AuthenticAMD)",
	.leaves = system_v2, .nleaves = MODVM_COUNTOF(system_v2),
	.migratable = 1,
};

static const struct modvm_cpu_model model_sys2_intel = {
	.name = "system-v2-intel",
	.description = "system-v2 as a GenuineIntel CPU, + PKS (supervisor "
		       "protection keys, IA32_PKRS)",
	.leaves = system_v2_intel, .nleaves = MODVM_COUNTOF(system_v2_intel),
	.migratable = 1,
};

static const struct modvm_cpu_model model_host = {
	.name = "host",
	.description = "the host CPU's features (KVM engines only; not migratable)",
	.migratable = 0,
};

/* baseline-v1-xsave and the later models after the first three:
 * tests/unit/test_config.c matches the start of the "allowed values" list. */
const struct modvm_cpu_model *const cpu_models[] = {
	&model_v1, &model_v2, &model_host, &model_v1_xsave, &model_sys,
	&model_sys_intel, &model_sys2, &model_sys2_intel, NULL
};

const struct modvm_cpu_model *cpu_model_find(const char *name)
{
	for (int i = 0; cpu_models[i]; i++)
		if (!strcmp(cpu_models[i]->name, name))
			return cpu_models[i];
	return NULL;
}

