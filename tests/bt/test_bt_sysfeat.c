/* cpu-bt: the operating-system features of the system-v1 models (core/
 * cpumodel.c) and the v2 ones: SMEP, SMAP, UMIP, PKU, PKS, XSAVE of PKRU,
 * PCID/INVPCID, RDPID and TSC_AUX, the
 * models' CPUID, and PKRU/TSC_AUX/PCID through a saved state. Each feature
 * is checked for its faults and its good path, and against a model
 * without it (the fixture's, as baseline-v1), where it must not exist.
 * The 64-bit code runs translated under BT_MODE=translate.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpumodel.h"
#include "cpustate.h"
#include "fixture.h"
#include "state_desc.h"
#include "testmain.h"

#define PT 0x110000ull     /* the page table of the first 2 MiB */
#define UPAGE 0x40000ull   /* a user page among supervisor ones */
#define PF_P 1u
#define PF_W 2u
#define PF_U 4u
#define PF_I 16u
#define PF_PK 32u

static uint64_t R(struct fx *f, int r) { return fx_reg(f, r); }

/* The error code of an exception taken at CPL 0 (no stack switch, RSP was
 * FX_STACK) and at CPL 3 (onto RSP0). */
static uint64_t err0(struct fx *f) { return fx_mem64(f, FX_STACK - 48); }
static uint64_t err3(struct fx *f) { return fx_mem64(f, FX_STACK - 0x10000 - 48); }

static void use_model(struct fx *f, const char *name)
{
	const struct modvm_cpu_model *m = cpu_model_find(name);
	char why[256];

	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT_EQUAL_FATAL(bt_model_check(m, why, sizeof(why)), 0);
	bt_cpu_set_model(&f->cpu, m);
}

/* Long mode on model `name` (NULL: the fixture's, with none of the
 * features). With `split`, the first 2 MiB are 4 KiB supervisor pages but
 * UPAGE, a user page (PTE flags upte); otherwise every page is a user
 * page, as the fixture maps them, so ring-3 code can run. */
static struct fx *mk(const char *name, bool split, uint64_t upte)
{
	struct fx *f = fx_new(FX_LONG64);

	if (name)
		use_model(f, name);
	fx_idt(f);
	if (split) {
		for (int i = 0; i < 512; i++)
			fx_set64(f, PT + 8 * i, ((uint64_t)i << 12) | 3);
		fx_set64(f, FX_PT + 0x2000, PT | 7);
		fx_set64(f, PT + 8 * (UPAGE >> 12), UPAGE | upte);
		bt_tlb_flush(&f->cpu, true);
	}
	fx_set64(f, UPAGE, 0x1122334455667788ull);
	return f;
}

/* Run src at CPL 0 until it halts (at its end or in an exception stub). */
static int run0(struct fx *f, const char *src)
{
	f->cpu.s.halted = 0;
	fx_asm(f, src);
	fx_run_hlt(f);
	return fx_vector(f);
}

/* Run user at CPL 3 (IRETQ to ring 3), then UD2: #UD (6) means it ran to
 * its end. */
static int run3(struct fx *f, const char *pre, const char *user)
{
	char src[2048];

	snprintf(src, sizeof(src),
		 "%s\n mov rax, rsp\n push 0x23\n push rax\n push 0x202\n push 0x33\n"
		 "lea rax, [rel user]\n push rax\n iretq\n user: %s\n ud2\n",
		 pre, user);
	return run0(f, src);
}

/* As run3, with the user code and its stack on UPAGE (for the split
 * machine, whose other pages are supervisor pages). */
static int run3u(struct fx *f, const char *pre, const char *user)
{
	char src[2048];

	snprintf(src, sizeof(src), "bits 64\n %s\n ud2\n", user);
	fx_asm_at(f, UPAGE + 0x100, src);
	snprintf(src, sizeof(src),
		 "%s\n push 0x23\n push 0x%llx\n push 0x202\n push 0x33\n"
		 "push 0x%llx\n iretq\n", pre, (unsigned long long)(UPAGE + 0x1000),
		 (unsigned long long)(UPAGE + 0x100));
	return run0(f, src);
}

/* ---- CPUID ------------------------------------------------------------ */

static void cpuid(struct fx *f, uint32_t fn, uint32_t idx, uint32_t r[4])
{
	char src[128];

	snprintf(src, sizeof(src), "mov eax, 0x%x\n mov ecx, %u\n cpuid\n hlt", fn, idx);
	run0(f, src);
	r[0] = (uint32_t)R(f, MODVM_RAX);
	r[1] = (uint32_t)R(f, MODVM_RBX);
	r[2] = (uint32_t)R(f, MODVM_RCX);
	r[3] = (uint32_t)R(f, MODVM_RDX);
}

static void test_models_cpuid(void)
{
	static const char *const names[] = { "system-v1", "system-v1-intel" };
	struct fx *f;
	uint32_t r[4];
	char why[256];

	for (int i = 0; i < 2; i++) {
		f = mk(names[i], false, 0);
		cpuid(f, 0, 0, r);
		CU_ASSERT(r[0] >= 7);
		if (i == 0) {
			CU_ASSERT(r[1] == 0x68747541 && r[3] == 0x69746e65 && r[2] == 0x444d4163);
		} else {
			CU_ASSERT(r[1] == 0x756e6547 && r[3] == 0x49656e69 && r[2] == 0x6c65746e);
		}
		CU_ASSERT_EQUAL(f->cpu.vendor_amd, i == 0);
		cpuid(f, 1, 0, r);
		CU_ASSERT_EQUAL(r[2] & ((1u << 17) | (1u << 21) | (1u << 24) | (1u << 26)),
				(1u << 17) | (1u << 21) | (1u << 24) | (1u << 26));
		CU_ASSERT(r[3] & (1u << 14)); /* MCA */
		cpuid(f, 7, 0, r);
		CU_ASSERT_EQUAL(r[1], (1u << 7) | (1u << 10) | (1u << 20)); /* SMEP INVPCID SMAP */
		CU_ASSERT_EQUAL(r[2], (1u << 2) | (1u << 3) | (1u << 22)); /* UMIP PKU RDPID */
		cpuid(f, 0x80000001, 0, r);
		CU_ASSERT(r[3] & (1u << 27)); /* RDTSCP */
		/* OSPKE follows CR4.PKE */
		run0(f, "mov rax, cr4\n bts rax, 22\n mov cr4, rax\n hlt");
		cpuid(f, 7, 0, r);
		CU_ASSERT(r[2] & (1u << 4));
		CU_ASSERT(f->cpu.has_smep && f->cpu.has_smap && f->cpu.has_umip &&
			  f->cpu.has_pku && f->cpu.has_pcid && f->cpu.has_invpcid &&
			  f->cpu.has_rdpid && f->cpu.has_rdtscp && f->cpu.has_x2apic &&
			  f->cpu.has_tsc_deadline);
		fx_free(f);
	}
	/* the older models stay as they were: no leaf 7, none of the bits */
	f = mk("baseline-v1", false, 0);
	cpuid(f, 0, 0, r);
	CU_ASSERT_EQUAL(r[0], 1);
	cpuid(f, 1, 0, r);
	CU_ASSERT_EQUAL(r[2], 1u << 31);
	CU_ASSERT_EQUAL(r[3] | (1u << 9), 0x0789bb7d); /* APIC: apic_base.EN */
	CU_ASSERT(!f->cpu.has_smap && !f->cpu.has_pku && !f->cpu.has_x2apic);
	fx_free(f);
	f = mk("baseline-v1-xsave", false, 0);
	cpuid(f, 0, 0, r);
	CU_ASSERT_EQUAL(r[0], 0xD);
	cpuid(f, 7, 0, r);
	CU_ASSERT(!r[0] && !r[1] && !r[2] && !r[3]);
	fx_free(f);
	/* the engine refuses a leaf-7 feature it does not implement */
	{
		static const struct modvm_cpuid_leaf leaves[] = {
			{ 0x0, 0, 0, 7, 0x68747541, 0x444d4163, 0x69746e65 },
			{ 0x7, 0, MODVM_CPUID_SIGNIFICANT_INDEX, 0, 1u << 5, 0, 0 }, /* AVX2 */
		};
		const struct modvm_cpu_model m = { .name = "avx2", .leaves = leaves,
						   .nleaves = 2 };
		CU_ASSERT_EQUAL(bt_model_check(&m, why, sizeof(why)), -1);
		CU_ASSERT_PTR_NOT_NULL(strstr(why, "CPUID.7.0"));
	}
}

/* ---- SMEP, SMAP ------------------------------------------------------- */

static void test_smep(void)
{
	struct fx *f = mk("system-v1", true, 7);

	fx_asm_at(f, UPAGE + 0x100, "bits 64\n mov ebx, 0x5EE\n hlt");
	/* without CR4.SMEP the kernel may run user code */
	CU_ASSERT_EQUAL(run0(f, "mov rax, 0x40100\n jmp rax"), -1);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0x5EE);
	fx_free(f);

	f = mk("system-v1", true, 7);
	fx_asm_at(f, UPAGE + 0x100, "bits 64\n mov ebx, 0x5EE\n hlt");
	CU_ASSERT_EQUAL(run0(f, "mov rax, cr4\n bts rax, 20\n mov cr4, rax\n"
			       "mov rax, 0x40100\n jmp rax"), BT_PFV);
	CU_ASSERT_EQUAL(f->cpu.s.cr2, 0x40100);
	CU_ASSERT_EQUAL(err0(f), PF_P | PF_I);
	CU_ASSERT_NOT_EQUAL(R(f, MODVM_RBX), 0x5EE);
	fx_free(f);

	/* SMEP in CR4 needs the feature */
	f = mk(NULL, false, 0);
	CU_ASSERT_EQUAL(run0(f, "mov rax, cr4\n bts rax, 20\n mov cr4, rax\n hlt"), BT_GP);
	fx_free(f);
}

static void test_smap(void)
{
	struct fx *f = mk("system-v1", true, 7);
	const char *on = "mov rax, cr4\n bts rax, 21\n mov cr4, rax\n";
	char src[512];

	/* CR4.SMAP clear: supervisor reads of user pages are fine */
	CU_ASSERT_EQUAL(run0(f, "mov rbx, [0x40000]\n hlt"), -1);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0x1122334455667788ull);
	fx_free(f);

	/* set, AC clear: read and write fault as supervisor accesses */
	f = mk("system-v1", true, 7);
	snprintf(src, sizeof(src), "%s mov rbx, [0x40008]\n hlt", on);
	CU_ASSERT_EQUAL(run0(f, src), BT_PFV);
	CU_ASSERT_EQUAL(f->cpu.s.cr2, 0x40008);
	CU_ASSERT_EQUAL(err0(f), PF_P);
	fx_free(f);
	f = mk("system-v1", true, 7);
	snprintf(src, sizeof(src), "%s mov qword [0x40010], 5\n hlt", on);
	CU_ASSERT_EQUAL(run0(f, src), BT_PFV);
	CU_ASSERT_EQUAL(err0(f), PF_P | PF_W);
	CU_ASSERT_EQUAL(fx_mem64(f, UPAGE + 0x10), 0);
	fx_free(f);

	/* STAC opens the window, CLAC closes it; POPF can too */
	f = mk("system-v1", true, 7);
	snprintf(src, sizeof(src), "%s stac\n mov rbx, [0x40000]\n mov qword [0x40010], 5\n"
		 "clac\n mov rcx, [0x40000]\n hlt", on);
	CU_ASSERT_EQUAL(run0(f, src), BT_PFV);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0x1122334455667788ull);
	CU_ASSERT_EQUAL(fx_mem64(f, UPAGE + 0x10), 5);
	CU_ASSERT_EQUAL(R(f, MODVM_RCX), 0);
	CU_ASSERT_EQUAL(f->cpu.s.cr2, UPAGE);
	fx_free(f);
	f = mk("system-v1", true, 7);
	snprintf(src, sizeof(src), "%s pushfq\n or dword [rsp], 0x40000\n popfq\n"
		 "mov rbx, [0x40000]\n hlt", on);
	CU_ASSERT_EQUAL(run0(f, src), -1);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0x1122334455667788ull);
	fx_free(f);

	/* an implicit supervisor access (a descriptor from an LDT on a user
	 * page) faults even with AC set; without SMAP it works */
	for (int smap = 0; smap < 2; smap++) {
		uint16_t lim, sel;
		f = mk("system-v1", true, 7);
		lim = f->cpu.s.gdt.limit;
		sel = (uint16_t)((lim + 8u) & ~7u);
		memcpy(f->ram + 0x9100, f->ram + f->cpu.s.gdt.base, lim + 1u);
		fx_set64(f, 0x9100 + sel, 0xFF | (UPAGE + 0x800) << 16 | 0x82ull << 40);
		fx_set64(f, 0x9100 + sel + 8, 0);
		fx_set64(f, UPAGE + 0x800, fx_mem64(f, f->cpu.s.gdt.base + 0x10));
		snprintf(src, sizeof(src), "%s stac\n mov rbx, [0x40000]\n"
			 "mov word [0x9000], 0x%x\n mov qword [0x9002], 0x9100\n lgdt [0x9000]\n"
			 "mov ax, 0x%x\n lldt ax\n mov ax, 4\n mov ds, ax\n mov ecx, 1\n hlt",
			 smap ? on : "", sel + 15u, sel);
		if (smap) {
			CU_ASSERT_EQUAL(run0(f, src), BT_PFV);
			CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0x1122334455667788ull);
			CU_ASSERT_EQUAL(R(f, MODVM_RCX) & 0xFFFFFFFF, 0);
			CU_ASSERT_EQUAL(f->cpu.s.cr2 & ~7ull, UPAGE + 0x800);
			CU_ASSERT_EQUAL(err0(f) & (PF_U | PF_P), PF_P);
		} else {
			CU_ASSERT_EQUAL(run0(f, src), -1);
			CU_ASSERT_EQUAL(R(f, MODVM_RCX) & 0xFFFFFFFF, 1);
			CU_ASSERT_EQUAL(f->cpu.s.seg[BT_DS].selector, 4);
		}
		fx_free(f);
	}

	/* CPL 3 is not affected; STAC there is #UD */
	f = mk("system-v1", true, 7);
	CU_ASSERT_EQUAL(run3u(f, on, "mov rbx, [0x40000]\n mov qword [0x40010], 5"), BT_UD);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0x1122334455667788ull);
	CU_ASSERT_EQUAL(fx_mem64(f, UPAGE + 0x10), 5);
	fx_free(f);
	f = mk("system-v1", true, 7);
	CU_ASSERT_EQUAL(run3u(f, on, "stac\n mov ebx, 1"), BT_UD);
	CU_ASSERT_NOT_EQUAL(R(f, MODVM_RBX), 1);
	CU_ASSERT_EQUAL(f->cpu.s.seg[BT_CS].selector & 3, 0);
	CU_ASSERT_EQUAL(fx_mem64(f, FX_STACK - 0x10000 - 40), UPAGE + 0x100); /* at STAC */
	fx_free(f);

	/* without the feature: STAC #UD, CR4.SMAP #GP */
	f = mk(NULL, false, 0);
	CU_ASSERT_EQUAL(run0(f, "stac\n hlt"), BT_UD);
	fx_free(f);
	f = mk(NULL, false, 0);
	CU_ASSERT_EQUAL(run0(f, "mov rax, cr4\n bts rax, 21\n mov cr4, rax\n hlt"), BT_GP);
	fx_free(f);
}

/* ---- UMIP ------------------------------------------------------------- */

static void test_umip(void)
{
	static const char *const insns[] = {
		"sgdt [0x9000]", "sidt [0x9000]", "sldt ax", "str ax", "smsw eax",
	};
	const char *on = "mov rax, cr4\n bts rax, 11\n mov cr4, rax\n";

	for (size_t i = 0; i < sizeof(insns) / sizeof(insns[0]); i++) {
		char user[256];
		struct fx *f = mk("system-v1", false, 0);

		snprintf(user, sizeof(user), "%s\n mov ebx, 1", insns[i]);
		CU_ASSERT_EQUAL(run3(f, on, user), BT_GP);
		CU_ASSERT_EQUAL(err3(f), 0);
		CU_ASSERT_NOT_EQUAL(R(f, MODVM_RBX), 1);
		fx_free(f);
		/* CPL 0 with UMIP, CPL 3 without it: allowed */
		f = mk("system-v1", false, 0);
		snprintf(user, sizeof(user), "%s\n %s\n mov ebx, 1\n hlt", on, insns[i]);
		CU_ASSERT_EQUAL(run0(f, user), -1);
		CU_ASSERT_EQUAL(R(f, MODVM_RBX), 1);
		fx_free(f);
		f = mk("system-v1", false, 0);
		snprintf(user, sizeof(user), "%s\n mov ebx, 1", insns[i]);
		CU_ASSERT_EQUAL(run3(f, "", user), BT_UD);
		CU_ASSERT_EQUAL(R(f, MODVM_RBX), 1);
		fx_free(f);
	}
	{
		struct fx *f = mk(NULL, false, 0);
		CU_ASSERT_EQUAL(run0(f, "mov rax, cr4\n bts rax, 11\n mov cr4, rax\n hlt"), BT_GP);
		fx_free(f);
	}
}

/* ---- PKU -------------------------------------------------------------- */

/* PKE on, the user page with key 1, then PKRU = pkru */
static const char *pku_pre(char *buf, size_t n, uint32_t pkru)
{
	snprintf(buf, n, "mov rax, cr4\n bts rax, 22\n mov cr4, rax\n"
		 "xor ecx, ecx\n xor edx, edx\n mov eax, 0x%x\n wrpkru\n", pkru);
	return buf;
}

static void test_pku(void)
{
	const uint64_t key1 = 1ull << 59;
	char pre[256], src[512];
	struct fx *f;

	/* AD for key 1: user read faults with PK; key 0 pages are fine */
	f = mk("system-v1", true, 7 | key1);
	pku_pre(pre, sizeof(pre), 1u << 2);
	/* ring 3 needs user code and stack: make every page a user page but
	 * keep the key on UPAGE */
	for (int i = 0; i < 512; i++)
		if ((uint64_t)i != UPAGE >> 12)
			fx_set64(f, PT + 8 * i, ((uint64_t)i << 12) | 7);
	CU_ASSERT_EQUAL(run3(f, pre, "mov rbx, [0x41000]\n mov rcx, [0x40000]"), BT_PFV);
	CU_ASSERT_EQUAL(f->cpu.s.cr2, UPAGE);
	CU_ASSERT_EQUAL(err3(f), PF_P | PF_U | PF_PK);
	CU_ASSERT_EQUAL(R(f, MODVM_RCX), 0);
	fx_free(f);

	/* WD for key 1: reads work, user writes fault with PK */
	f = mk("system-v1", true, 7 | key1);
	for (int i = 0; i < 512; i++)
		if ((uint64_t)i != UPAGE >> 12)
			fx_set64(f, PT + 8 * i, ((uint64_t)i << 12) | 7);
	pku_pre(pre, sizeof(pre), 2u << 2);
	CU_ASSERT_EQUAL(run3(f, pre, "mov rbx, [0x40000]\n mov qword [0x40010], 7"), BT_PFV);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0x1122334455667788ull);
	CU_ASSERT_EQUAL(err3(f), PF_P | PF_W | PF_U | PF_PK);
	CU_ASSERT_EQUAL(fx_mem64(f, UPAGE + 0x10), 0);
	fx_free(f);

	/* a read-only user page with AD: a user write reports both (PK) */
	f = mk("system-v1", true, 5 | key1);
	for (int i = 0; i < 512; i++)
		if ((uint64_t)i != UPAGE >> 12)
			fx_set64(f, PT + 8 * i, ((uint64_t)i << 12) | 7);
	pku_pre(pre, sizeof(pre), 1u << 2);
	CU_ASSERT_EQUAL(run3(f, pre, "mov qword [0x40010], 7"), BT_PFV);
	CU_ASSERT_EQUAL(err3(f), PF_P | PF_W | PF_U | PF_PK);
	fx_free(f);
	/* a user access to a supervisor page is not a key check */
	f = mk("system-v1", true, 7 | key1);
	pku_pre(pre, sizeof(pre), 1u << 2);
	CU_ASSERT_EQUAL(run3u(f, pre, "mov rbx, [0x41000]"), BT_PFV);
	CU_ASSERT_EQUAL(err3(f), PF_P | PF_U);
	fx_free(f);

	/* supervisor writes: WD applies with CR0.WP, AD always */
	f = mk("system-v1", true, 7 | key1);
	snprintf(src, sizeof(src), "%s mov rax, cr0\n bts rax, 16\n mov cr0, rax\n"
		 "mov rbx, [0x40000]\n mov qword [0x40010], 7\n hlt",
		 pku_pre(pre, sizeof(pre), 2u << 2));
	CU_ASSERT_EQUAL(run0(f, src), BT_PFV);
	CU_ASSERT_EQUAL(err0(f), PF_P | PF_W | PF_PK);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0x1122334455667788ull);
	fx_free(f);
	f = mk("system-v1", true, 7 | key1);
	snprintf(src, sizeof(src), "%s mov rax, cr0\n btr rax, 16\n mov cr0, rax\n"
		 "mov qword [0x40010], 7\n hlt", pku_pre(pre, sizeof(pre), 2u << 2));
	CU_ASSERT_EQUAL(run0(f, src), -1);
	CU_ASSERT_EQUAL(fx_mem64(f, UPAGE + 0x10), 7);
	fx_free(f);
	f = mk("system-v1", true, 7 | key1);
	snprintf(src, sizeof(src), "%s mov rbx, [0x40000]\n hlt", pku_pre(pre, sizeof(pre), 1u << 2));
	CU_ASSERT_EQUAL(run0(f, src), BT_PFV);
	CU_ASSERT_EQUAL(err0(f), PF_P | PF_PK);
	fx_free(f);

	/* a cached translation does not outlive a WRPKRU: read, deny, read */
	f = mk("system-v1", true, 7 | key1);
	snprintf(src, sizeof(src), "%s mov rbx, [0x40000]\n mov eax, 4\n wrpkru\n"
		 "mov rcx, [0x40000]\n hlt", pku_pre(pre, sizeof(pre), 0));
	CU_ASSERT_EQUAL(run0(f, src), BT_PFV);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0x1122334455667788ull);
	CU_ASSERT_EQUAL(R(f, MODVM_RCX), 0);
	fx_free(f);

	/* RDPKRU reads it back; ECX/EDX must be 0; CR4.PKE clear: #UD */
	f = mk("system-v1", true, 7);
	snprintf(src, sizeof(src), "%s mov rax, -1\n mov rdx, -1\n rdpkru\n hlt",
		 pku_pre(pre, sizeof(pre), 0x55555554));
	CU_ASSERT_EQUAL(run0(f, src), -1);
	CU_ASSERT_EQUAL(R(f, MODVM_RAX), 0x55555554);
	CU_ASSERT_EQUAL(R(f, MODVM_RDX), 0);
	CU_ASSERT_EQUAL(bt_pkru(&f->cpu), 0x55555554);
	fx_free(f);
	f = mk("system-v1", true, 7);
	snprintf(src, sizeof(src), "%s mov ecx, 1\n rdpkru\n hlt", pku_pre(pre, sizeof(pre), 0));
	CU_ASSERT_EQUAL(run0(f, src), BT_GP);
	fx_free(f);
	f = mk("system-v1", true, 7);
	snprintf(src, sizeof(src), "%s mov edx, 1\n wrpkru\n hlt", pku_pre(pre, sizeof(pre), 0));
	CU_ASSERT_EQUAL(run0(f, src), BT_GP);
	fx_free(f);
	f = mk("system-v1", true, 7);
	CU_ASSERT_EQUAL(run0(f, "xor ecx, ecx\n rdpkru\n hlt"), BT_UD);
	fx_free(f);
	f = mk(NULL, false, 0);
	CU_ASSERT_EQUAL(run0(f, "mov rax, cr4\n bts rax, 22\n mov cr4, rax\n hlt"), BT_GP);
	fx_free(f);
}

/* ---- PKS -------------------------------------------------------------- */

#define SPAGE 0x42000ull /* a supervisor page with key 1 (split machine) */

/* The split machine on `model` with SPAGE keyed 1 (flags 3 | key), then
 * CR4.PKS, CR0.WP = wp and IA32_PKRS = pkrs before `code`. */
static int run_pks(struct fx *f, bool wp, uint32_t pkrs, const char *code)
{
	char src[1024];

	fx_set64(f, PT + 8 * (SPAGE >> 12), SPAGE | 3 | (1ull << 59));
	fx_set64(f, SPAGE, 0xAABBCCDDull);
	bt_tlb_flush(&f->cpu, true);
	snprintf(src, sizeof(src),
		 "mov rax, cr4\n bts rax, 24\n mov cr4, rax\n"
		 "mov rax, cr0\n %s rax, 16\n mov cr0, rax\n"
		 "mov ecx, 0x6E1\n xor edx, edx\n mov eax, 0x%x\n wrmsr\n%s\n hlt",
		 wp ? "bts" : "btr", pkrs, code);
	return run0(f, src);
}

static void test_pks(void)
{
	struct fx *f;
	uint32_t r[4];
	char why[256];

	/* AD for key 1: a supervisor read faults with PK; other keys do not */
	f = mk("system-v2-intel", true, 7);
	CU_ASSERT_EQUAL(run_pks(f, true, 1u << 2,
				"mov rbx, [0x41000]\n mov rdi, [0x42000]"), BT_PFV);
	CU_ASSERT_EQUAL(f->cpu.s.cr2, SPAGE);
	CU_ASSERT_EQUAL(err0(f), PF_P | PF_PK);
	CU_ASSERT_EQUAL(R(f, MODVM_RDI), 0);
	fx_free(f);
	/* AD stops writes whatever CR0.WP says */
	f = mk("system-v2-intel", true, 7);
	CU_ASSERT_EQUAL(run_pks(f, false, 1u << 2, "mov dword [0x42010], 5"), BT_PFV);
	CU_ASSERT_EQUAL(err0(f), PF_P | PF_W | PF_PK);
	CU_ASSERT_EQUAL(fx_mem64(f, SPAGE + 0x10), 0);
	fx_free(f);
	/* WD: reads work, writes fault only with CR0.WP */
	f = mk("system-v2-intel", true, 7);
	CU_ASSERT_EQUAL(run_pks(f, true, 2u << 2,
				"mov rbx, [0x42000]\n mov dword [0x42010], 5"), BT_PFV);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0xAABBCCDDull);
	CU_ASSERT_EQUAL(err0(f), PF_P | PF_W | PF_PK);
	CU_ASSERT_EQUAL(fx_mem64(f, SPAGE + 0x10), 0);
	fx_free(f);
	f = mk("system-v2-intel", true, 7);
	CU_ASSERT_EQUAL(run_pks(f, false, 2u << 2, "mov dword [0x42010], 5"), -1);
	CU_ASSERT_EQUAL(fx_mem64(f, SPAGE + 0x10), 5);
	fx_free(f);
	/* PKRS is for supervisor pages: a user page with key 1 is PKRU's */
	f = mk("system-v2-intel", true, 7 | (1ull << 59));
	CU_ASSERT_EQUAL(run_pks(f, true, 3u << 2,
				"mov rbx, [0x40000]\n mov qword [0x40010], 9"), -1);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0x1122334455667788ull);
	CU_ASSERT_EQUAL(fx_mem64(f, UPAGE + 0x10), 9);
	fx_free(f);
	/* without CR4.PKS the keys are not checked */
	f = mk("system-v2-intel", true, 7);
	fx_set64(f, PT + 8 * (SPAGE >> 12), SPAGE | 3 | (1ull << 59));
	bt_tlb_flush(&f->cpu, true);
	CU_ASSERT_EQUAL(run0(f, "mov ecx, 0x6E1\n xor edx, edx\n mov eax, 4\n wrmsr\n"
			       "mov dword [0x42010], 6\n hlt"), -1);
	CU_ASSERT_EQUAL(fx_mem64(f, SPAGE + 0x10), 6);
	fx_free(f);
	/* a cached translation does not outlive a write of PKRS: read, deny,
	 * read */
	f = mk("system-v2-intel", true, 7);
	CU_ASSERT_EQUAL(run_pks(f, true, 0,
				"mov rbx, [0x42000]\n mov ecx, 0x6E1\n mov eax, 4\n"
				"wrmsr\n mov rdi, [0x42000]"), BT_PFV);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0xAABBCCDDull);
	CU_ASSERT_EQUAL(R(f, MODVM_RDI), 0);
	CU_ASSERT_EQUAL(err0(f), PF_P | PF_PK);
	fx_free(f);
	/* RDMSR reads it back; bits 63:32 are reserved */
	f = mk("system-v2-intel", true, 7);
	CU_ASSERT_EQUAL(run_pks(f, true, 0x55555554,
				"xor eax, eax\n mov edx, -1\n rdmsr"), -1);
	CU_ASSERT_EQUAL(R(f, MODVM_RAX), 0x55555554);
	CU_ASSERT_EQUAL(R(f, MODVM_RDX), 0);
	fx_free(f);
	f = mk("system-v2-intel", false, 0);
	CU_ASSERT_EQUAL(run0(f, "mov ecx, 0x6E1\n mov edx, 1\n xor eax, eax\n wrmsr\n hlt"),
			BT_GP);
	fx_free(f);
	/* CPUID: Intel's v2 model only; elsewhere no MSR and no CR4.PKS */
	f = mk("system-v2-intel", false, 0);
	cpuid(f, 7, 0, r);
	CU_ASSERT(r[2] & (1u << 31));
	fx_free(f);
	for (int i = 0; i < 3; i++) {
		static const char *const other[] = { "system-v2", "system-v1-intel", NULL };
		f = mk(other[i], false, 0);
		cpuid(f, 7, 0, r);
		CU_ASSERT(!(r[2] & (1u << 31)));
		CU_ASSERT_EQUAL(run0(f, "mov ecx, 0x6E1\n rdmsr\n hlt"), BT_GP);
		CU_ASSERT_EQUAL(run0(f, "mov rax, cr4\n bts rax, 24\n mov cr4, rax\n hlt"), BT_GP);
		fx_free(f);
	}
	/* an AuthenticAMD model with PKS is refused */
	{
		static const struct modvm_cpuid_leaf leaves[] = {
			{ 0x0, 0, 0, 7, 0x68747541, 0x444d4163, 0x69746e65 },
			{ 0x7, 0, MODVM_CPUID_SIGNIFICANT_INDEX, 0, 0, 1u << 31, 0 },
		};
		const struct modvm_cpu_model m = { .name = "amd-pks", .leaves = leaves,
						   .nleaves = 2 };
		CU_ASSERT_EQUAL(bt_model_check(&m, why, sizeof(why)), -1);
		CU_ASSERT_PTR_NOT_NULL(strstr(why, "PKS"));
	}
}

/* ---- XSAVE of PKRU (state component 9) --------------------------------- */

#define XAREA 0x60000ull /* a 64-byte aligned XSAVE area (4 KiB) */

static void test_xsave_pkru(void)
{
	static const char *const names[] = { "system-v2", "system-v2-intel" };
	char src[1024];
	struct fx *f;
	uint32_t r[4];

	for (int i = 0; i < 2; i++) {
		/* leaf 0xD: XCR0 bit 9, 8 bytes at 0xA80; EBX follows XCR0 */
		f = mk(names[i], false, 0);
		CU_ASSERT_EQUAL(run0(f, "mov rax, cr4\n bts rax, 18\n mov cr4, rax\n hlt"), -1);
		cpuid(f, 0xD, 0, r);
		CU_ASSERT_EQUAL(r[0], 0x203);
		CU_ASSERT_EQUAL(r[1], 576);
		CU_ASSERT_EQUAL(r[2], 0xA88);
		cpuid(f, 0xD, 9, r);
		CU_ASSERT(r[0] == 8 && r[1] == 0xA80 && r[2] == 0);
		CU_ASSERT_EQUAL(run0(f, "xor ecx, ecx\n xor edx, edx\n mov eax, 0x203\n"
				       "xsetbv\n hlt"), -1);
		cpuid(f, 0xD, 0, r);
		CU_ASSERT_EQUAL(r[1], 0xA88);
		fx_free(f);

		/* XSAVE writes PKRU and XSTATE_BV[9] = (PKRU != 0) */
		f = mk(names[i], false, 0);
		fx_set64(f, XAREA + 0xA80, ~0ull);
		snprintf(src, sizeof(src),
			 "mov rax, cr4\n or rax, (1 << 18) | (1 << 22)\n mov cr4, rax\n"
			 "xor ecx, ecx\n xor edx, edx\n mov eax, 0x203\n xsetbv\n"
			 "mov eax, 0x12345678\n wrpkru\n"
			 "mov eax, -1\n mov edx, -1\n xsave64 [0x%llx]\n hlt",
			 (unsigned long long)XAREA);
		CU_ASSERT_EQUAL(run0(f, src), -1);
		CU_ASSERT_EQUAL(fx_mem64(f, XAREA + 0xA80), 0x12345678);
		CU_ASSERT_EQUAL(fx_mem64(f, XAREA + 512) & (1ull << 9), 1ull << 9);
		fx_free(f);
		/* PKRU 0 is its initial state: XSAVE writes 0 and BV[9] = 0,
		 * XSAVEOPT leaves the bytes alone */
		f = mk(names[i], false, 0);
		fx_set64(f, XAREA + 0xA80, 0x77);
		fx_set64(f, XAREA + 0x1A80, 0x77);
		fx_set64(f, XAREA + 512, 1ull << 9);
		snprintf(src, sizeof(src),
			 "mov rax, cr4\n or rax, (1 << 18) | (1 << 22)\n mov cr4, rax\n"
			 "xor ecx, ecx\n xor edx, edx\n mov eax, 0x203\n xsetbv\n"
			 "mov eax, -1\n mov edx, -1\n xsaveopt64 [0x%llx]\n"
			 "xsave64 [0x%llx]\n hlt",
			 (unsigned long long)XAREA + 0x1000, (unsigned long long)XAREA);
		CU_ASSERT_EQUAL(run0(f, src), -1);
		CU_ASSERT_EQUAL(fx_mem64(f, XAREA + 0xA80), 0);
		CU_ASSERT_EQUAL(fx_mem64(f, XAREA + 512) & (1ull << 9), 0);
		CU_ASSERT_EQUAL(fx_mem64(f, XAREA + 0x1A80), 0x77);
		fx_free(f);

		/* XRSTOR loads PKRU (and the keys follow it at once), or
		 * initialises it when XSTATE_BV[9] is 0; RFBM[9] = 0 keeps it */
		f = mk(names[i], true, 7 | (1ull << 59));
		fx_set64(f, XAREA + 512, 3ull | (1ull << 9));
		fx_set64(f, XAREA + 0xA80, 1u << 2); /* AD for key 1 */
		fx_set64(f, XAREA + 24, 0x1F80);
		fx_set64(f, XAREA, 0x37F);
		snprintf(src, sizeof(src),
			 "mov rax, cr4\n or rax, (1 << 18) | (1 << 22)\n mov cr4, rax\n"
			 "xor ecx, ecx\n xor edx, edx\n mov eax, 0x203\n xsetbv\n"
			 "mov rbx, [0x40000]\n"
			 "mov eax, -1\n mov edx, -1\n xrstor64 [0x%llx]\n"
			 "xor ecx, ecx\n rdpkru\n mov esi, eax\n mov rcx, [0x40000]\n hlt",
			 (unsigned long long)XAREA);
		CU_ASSERT_EQUAL(run0(f, src), BT_PFV);
		CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0x1122334455667788ull);
		CU_ASSERT_EQUAL(R(f, MODVM_RSI), 1u << 2);
		CU_ASSERT_EQUAL(err0(f), PF_P | PF_PK);
		fx_free(f);
		f = mk(names[i], false, 0);
		fx_set64(f, XAREA + 512, 3);
		fx_set64(f, XAREA + 0xA80, 0x44);
		fx_set64(f, XAREA + 24, 0x1F80);
		fx_set64(f, XAREA, 0x37F);
		snprintf(src, sizeof(src),
			 "mov rax, cr4\n or rax, (1 << 18) | (1 << 22)\n mov cr4, rax\n"
			 "xor ecx, ecx\n xor edx, edx\n mov eax, 0x203\n xsetbv\n"
			 "mov eax, 8\n wrpkru\n"
			 "mov eax, 3\n xrstor64 [0x%llx]\n"
			 "xor ecx, ecx\n rdpkru\n mov esi, eax\n"
			 "mov eax, -1\n mov edx, -1\n xrstor64 [0x%llx]\n"
			 "xor ecx, ecx\n rdpkru\n mov edi, eax\n hlt",
			 (unsigned long long)XAREA, (unsigned long long)XAREA);
		CU_ASSERT_EQUAL(run0(f, src), -1);
		CU_ASSERT_EQUAL(R(f, MODVM_RSI), 8);
		CU_ASSERT_EQUAL(R(f, MODVM_RDI), 0);
		fx_free(f);
	}
	/* system-v1 has PKU but not the component: XCR0 bit 9 is refused */
	f = mk("system-v1", false, 0);
	CU_ASSERT_EQUAL(run0(f, "mov rax, cr4\n bts rax, 18\n mov cr4, rax\n"
			       "xor ecx, ecx\n xor edx, edx\n mov eax, 0x203\n xsetbv\n hlt"),
			BT_GP);
	fx_free(f);
}

/* ---- PCID, INVPCID ---------------------------------------------------- */

static void test_pcid(void)
{
	struct fx *f = mk("system-v1", false, 0);
	const char *on = "mov rax, cr4\n bts rax, 17\n mov cr4, rax\n";
	char src[512];

	/* PCID in CR3, bit 63 not kept */
	snprintf(src, sizeof(src), "%s mov rax, cr3\n mov rbx, rax\n or rax, 5\n bts rax, 63\n"
		 "mov cr3, rax\n mov rcx, cr3\n hlt", on);
	CU_ASSERT_EQUAL(run0(f, src), -1);
	CU_ASSERT_EQUAL(R(f, MODVM_RCX), R(f, MODVM_RBX) | 5);
	CU_ASSERT(f->cpu.s.cr4 & CR4_PCIDE);
	fx_free(f);

	/* PCIDE needs CR3[11:0] = 0; bit 63 without PCIDE is reserved */
	f = mk("system-v1", false, 0);
	snprintf(src, sizeof(src), "mov rax, cr3\n or rax, 1\n mov cr3, rax\n %s hlt", on);
	CU_ASSERT_EQUAL(run0(f, src), BT_GP);
	CU_ASSERT(!(f->cpu.s.cr4 & CR4_PCIDE));
	fx_free(f);
	f = mk("system-v1", false, 0);
	CU_ASSERT_EQUAL(run0(f, "mov rax, cr3\n bts rax, 63\n mov cr3, rax\n hlt"), BT_GP);
	fx_free(f);
	f = mk(NULL, false, 0);
	snprintf(src, sizeof(src), "%s hlt", on);
	CU_ASSERT_EQUAL(run0(f, src), BT_GP);
	fx_free(f);
}

/* INVPCID type, descriptor {pcid, lin} at 0x9000 */
static int invpcid(struct fx *f, const char *pre, uint64_t type, uint64_t pcid,
		   uint64_t lin)
{
	char src[512];

	snprintf(src, sizeof(src), "%s mov qword [0x9000], 0x%llx\n mov rax, 0x%llx\n"
		 "mov [0x9008], rax\n mov rax, 0x%llx\n invpcid rax, [0x9000]\n"
		 "mov ebx, 1\n hlt", pre, (unsigned long long)pcid,
		 (unsigned long long)lin, (unsigned long long)type);
	return run0(f, src);
}

static void test_invpcid(void)
{
	const char *pcide = "mov rax, cr4\n bts rax, 17\n mov cr4, rax\n";
	struct fx *f;
	char src[512];

	for (int t = 0; t < 4; t++) {
		f = mk("system-v1", false, 0);
		CU_ASSERT_EQUAL(invpcid(f, pcide, (uint64_t)t, 0, 0x1000), -1);
		CU_ASSERT_EQUAL(R(f, MODVM_RBX), 1);
		fx_free(f);
	}
	f = mk("system-v1", false, 0);
	CU_ASSERT_EQUAL(invpcid(f, pcide, 4, 0, 0), BT_GP);
	fx_free(f);
	f = mk("system-v1", false, 0);
	CU_ASSERT_EQUAL(invpcid(f, pcide, 0, 0, 0x0000800000000000ull), BT_GP); /* non-canonical */
	fx_free(f);
	f = mk("system-v1", false, 0);
	CU_ASSERT_EQUAL(invpcid(f, pcide, 1, 0x1000, 0), BT_GP); /* reserved bits */
	fx_free(f);
	/* PCIDE clear: types 0 and 1 only for PCID 0, types 2 and 3 any */
	f = mk("system-v1", false, 0);
	CU_ASSERT_EQUAL(invpcid(f, "", 1, 1, 0), BT_GP);
	fx_free(f);
	f = mk("system-v1", false, 0);
	CU_ASSERT_EQUAL(invpcid(f, "", 3, 1, 0), -1);
	fx_free(f);
	f = mk(NULL, false, 0);
	CU_ASSERT_EQUAL(invpcid(f, "", 2, 0, 0), BT_UD);
	fx_free(f);
	/* at CPL 3: #GP */
	f = mk("system-v1", false, 0);
	CU_ASSERT_EQUAL(run3(f, "", "mov qword [0x9000], 0\n mov qword [0x9008], 0\n"
			     "xor eax, eax\n invpcid rax, [0x9000]\n mov ebx, 1"), BT_GP);
	fx_free(f);

	/* they invalidate: read a page, remap it, INVPCID, read again. Type
	 * 0 for the page, 1 and 3 for non-global pages, 2 for a global one */
	for (int t = 0; t < 4; t++) {
		uint64_t g = t == 2 ? 0x100 : 0;
		f = mk("system-v1", true, 7 | g);
		fx_set64(f, 0x42000, 0xABCD);
		snprintf(src, sizeof(src), "mov rax, cr4\n bts rax, 7\n mov cr4, rax\n"
			 "mov rbx, [0x40000]\n mov qword [0x%llx], 0x%llx\n"
			 "mov qword [0x9000], 0\n mov qword [0x9008], 0x40000\n"
			 "mov eax, %d\n invpcid rax, [0x9000]\n mov rcx, [0x40000]\n hlt",
			 (unsigned long long)(PT + 8 * (UPAGE >> 12)),
			 (unsigned long long)(0x42000 | 7 | g), t);
		CU_ASSERT_EQUAL(run0(f, src), -1);
		CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0x1122334455667788ull);
		CU_ASSERT_EQUAL(R(f, MODVM_RCX), 0xABCD);
		fx_free(f);
	}
}

/* ---- RDPID, RDTSCP, TSC_AUX ------------------------------------------- */

static void test_rdpid_tsc_aux(void)
{
	struct fx *f = mk("system-v1", false, 0);

	/* AMD: bits 63:32 of TSC_AUX are ignored */
	CU_ASSERT_EQUAL(run0(f, "mov ecx, 0xC0000103\n mov eax, 0x1234\n mov edx, 7\n wrmsr\n"
			       "mov rbx, -1\n rdpid rbx\n rdtscp\n mov rsi, rcx\n"
			       "mov ecx, 0xC0000103\n rdmsr\n hlt"), -1);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0x1234);
	CU_ASSERT_EQUAL(R(f, MODVM_RSI), 0x1234);
	CU_ASSERT_EQUAL(R(f, MODVM_RAX), 0x1234);
	CU_ASSERT_EQUAL(R(f, MODVM_RDX), 0);
	fx_free(f);
	/* RDPID works at CPL 3 */
	f = mk("system-v1", false, 0);
	CU_ASSERT_EQUAL(run3(f, "mov ecx, 0xC0000103\n mov eax, 0x77\n xor edx, edx\n wrmsr\n",
			     "rdpid rbx"), BT_UD);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0x77);
	fx_free(f);
	/* Intel: they are reserved */
	f = mk("system-v1-intel", false, 0);
	CU_ASSERT_EQUAL(run0(f, "mov ecx, 0xC0000103\n mov eax, 0x1234\n mov edx, 7\n wrmsr\n hlt"),
			BT_GP);
	CU_ASSERT_EQUAL(f->cpu.s.msr.tsc_aux, 0);
	fx_free(f);
	/* a model with neither RDTSCP nor RDPID: #UD and #GP */
	f = mk(NULL, false, 0);
	CU_ASSERT_EQUAL(run0(f, "rdpid rax\n hlt"), BT_UD);
	fx_free(f);
	f = mk("baseline-v1", false, 0);
	CU_ASSERT_EQUAL(run0(f, "mov ecx, 0xC0000103\n rdmsr\n hlt"), BT_GP);
	fx_free(f);
}

/* ---- MCA, vendor rules ------------------------------------------------ */

static void test_mca_vendor(void)
{
	struct fx *f = mk("system-v1-intel", false, 0);

	CU_ASSERT_EQUAL(run0(f, "mov ecx, 0x179\n mov eax, -1\n rdmsr\n mov ebx, eax\n"
			       "mov ecx, 0x17A\n rdmsr\n hlt"), -1);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0);
	fx_free(f);
	f = mk("system-v1-intel", false, 0);
	CU_ASSERT_EQUAL(run0(f, "mov ecx, 0x179\n xor eax, eax\n xor edx, edx\n wrmsr\n hlt"), BT_GP);
	fx_free(f);
	f = mk("baseline-v1", false, 0);
	CU_ASSERT_EQUAL(run0(f, "mov ecx, 0x179\n rdmsr\n hlt"), BT_GP);
	fx_free(f);
	/* the microcode revision MSR: write 0, read revision 1 in EDX */
	f = mk("system-v1-intel", false, 0);
	CU_ASSERT_EQUAL(run0(f, "mov ecx, 0x8B\n xor eax, eax\n xor edx, edx\n wrmsr\n"
			       "mov eax, -1\n rdmsr\n hlt"), -1);
	CU_ASSERT_EQUAL(R(f, MODVM_RAX), 0);
	CU_ASSERT_EQUAL(R(f, MODVM_RDX), 1);
	fx_free(f);
	/* Intel: no AMD performance counters */
	f = mk("system-v1-intel", false, 0);
	CU_ASSERT_EQUAL(run0(f, "mov ecx, 0xC0010000\n rdmsr\n hlt"), BT_GP);
	fx_free(f);
	f = mk("system-v1", false, 0);
	CU_ASSERT_EQUAL(run0(f, "mov ecx, 0xC0010000\n rdmsr\n hlt"), -1);
	fx_free(f);
}

/* SYSCALL outside 64-bit mode: #UD on Intel, runs on AMD */
static void test_syscall_vendor(void)
{
	for (int intel = 0; intel < 2; intel++) {
		struct fx *f = fx_new(FX_PROT32);

		use_model(f, intel ? "system-v1-intel" : "system-v1");
		fx_idt(f);
		f->cpu.s.msr.efer |= EFER_SCE;
		f->cpu.s.msr.star = (0x08ull << 32) | (FX_CODE + 0x100);
		fx_asm_at(f, FX_CODE + 0x100, "bits 32\n mov ebx, 0x5C\n hlt");
		fx_asm(f, "syscall\n hlt");
		fx_run_hlt(f);
		if (intel) {
			CU_ASSERT_EQUAL(fx_vector(f), BT_UD);
		} else {
			CU_ASSERT_EQUAL(fx_vector(f), -1);
			CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0x5C);
		}
		fx_free(f);
	}
}

/* SYSENTER/SYSEXIT: AMD has them in legacy mode only (#UD in long mode),
 * Intel in every protected mode. */
static void test_sysenter_vendor(void)
{
	for (int intel = 0; intel < 2; intel++) {
		const char *model = intel ? "system-v1-intel" : "system-v1";
		struct fx *f = fx_new(FX_PROT32);

		/* legacy mode: both vendors enter at SYSENTER_EIP */
		use_model(f, model);
		fx_idt(f);
		f->cpu.s.msr.sysenter_cs = 0x08;
		f->cpu.s.msr.sysenter_eip = FX_CODE + 0x100;
		f->cpu.s.msr.sysenter_esp = 0x70000;
		fx_asm_at(f, FX_CODE + 0x100, "bits 32\n mov ebx, 0x5E\n hlt");
		fx_asm(f, "sysenter\n hlt");
		fx_run_hlt(f);
		CU_ASSERT_EQUAL(fx_vector(f), -1);
		CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0x5E);
		fx_free(f);

		/* 64-bit mode: Intel enters (CS = SYSENTER_CS, 64-bit), AMD #UD */
		f = mk(model, false, 0);
		f->cpu.s.msr.sysenter_cs = 0x28;
		f->cpu.s.msr.sysenter_eip = FX_CODE + 0x100;
		f->cpu.s.msr.sysenter_esp = 0x70000;
		fx_asm_at(f, FX_CODE + 0x100, "bits 64\n mov ebx, 0x5E\n hlt");
		CU_ASSERT_EQUAL(run0(f, "sysenter\n hlt"), intel ? -1 : BT_UD);
		CU_ASSERT_EQUAL(R(f, MODVM_RBX), intel ? 0x5E : 0);
		fx_free(f);

		/* SYSEXIT (REX.W) at CPL 0: Intel returns to CPL 3 at RDX, where
		 * HLT is #GP; AMD #UD */
		f = mk(model, false, 0);
		f->cpu.s.msr.sysenter_cs = 0x08;
		CU_ASSERT_EQUAL(run0(f, "lea rdx, [rel user]\n mov rcx, rsp\n o64 sysexit\n"
				       "user: hlt"), intel ? BT_GP : BT_UD);
		fx_free(f);
	}
}

/* SYSRET's SS: Intel loads it flat (base 0, limit 4 GiB, DPL 3, B and G
 * set), whatever the kernel's SS was; AMD keeps the cached attributes but
 * the selector (and DPL). */
static void test_sysret_ss_vendor(void)
{
	for (int intel = 0; intel < 2; intel++) {
		struct fx *f = mk(intel ? "system-v1-intel" : "system-v1", false, 0);
		struct modvm_segment *ss = &f->cpu.s.seg[BT_SS];

		f->cpu.s.msr.efer |= EFER_SCE;
		f->cpu.s.msr.star = 0x08ull << 48;   /* SYSRET CS 0x0B, SS 0x13 */
		ss->base = 0x1000;
		ss->limit = 0xFFFF;
		f->cpu.s.gpr[MODVM_RCX] = FX_CODE + 0x100;
		f->cpu.s.gpr[MODVM_R11] = 2;
		fx_asm_at(f, FX_CODE + 0x100, "bits 32\n jmp $");
		fx_asm(f, "sysret");                 /* to compatibility mode */
		fx_run(f, 1000);
		CU_ASSERT_EQUAL(f->cpu.s.rip, FX_CODE + 0x100);
		CU_ASSERT_EQUAL(f->cpu.cpl, 3);
		CU_ASSERT_EQUAL(ss->selector, 0x13);
		CU_ASSERT_EQUAL(ss->dpl, 3);
		CU_ASSERT_EQUAL(ss->base, intel ? 0 : 0x1000);
		CU_ASSERT_EQUAL(ss->limit, intel ? 0xFFFFFFFFu : 0xFFFFu);
		if (intel)
			CU_ASSERT(ss->db && ss->g && ss->present && ss->type == 3);
		fx_free(f);
	}
}

/* SYSRET (REX.W) to a non-canonical RCX: Intel raises #GP(0) at CPL 0
 * (the kernel's stack, RIP at the SYSRET); AMD returns to CPL 3 and the
 * fetch there raises #GP, taken from CPL 3 onto RSP0 with the
 * non-canonical RIP pushed. */
static void test_sysret_noncanonical_vendor(void)
{
	for (int intel = 0; intel < 2; intel++) {
		struct fx *f = mk(intel ? "system-v1-intel" : "system-v1", false, 0);

		f->cpu.s.msr.efer |= EFER_SCE;
		f->cpu.s.msr.star = 0x08ull << 48;   /* SYSRET CS 0x1B, SS 0x13 */
		CU_ASSERT_EQUAL(run0(f, "mov rcx, 0x0000800000000000\n mov r11, 2\n"
				       "o64 sysret\n hlt"), BT_GP);
		if (intel) {
			CU_ASSERT_EQUAL(err0(f), 0);
			CU_ASSERT_EQUAL(fx_mem64(f, FX_STACK - 40), FX_CODE + 16); /* SYSRET */
			CU_ASSERT_EQUAL(fx_mem64(f, FX_STACK - 32) & 3, 0);
		} else {
			CU_ASSERT_EQUAL(err3(f), 0);
			CU_ASSERT_EQUAL(fx_mem64(f, FX_STACK - 0x10000 - 40),
					0x0000800000000000ull);
			CU_ASSERT_EQUAL(fx_mem64(f, FX_STACK - 0x10000 - 32), 0x1B);
		}
		fx_free(f);
	}
}

/* ---- reserved bits of large pages ------------------------------------- */

/* A 2 MiB PDE with a bit of 20:13 set, and a PDPTE with PS on a CPU
 * without 1 GiB pages, are reserved-bit #PFs (P | RSVD), on any model. */
static void test_large_page_reserved(void)
{
	struct fx *f = mk(NULL, false, 0);

	fx_set64(f, FX_PT + 0x2000 + 8, fx_mem64(f, FX_PT + 0x2000 + 8) | (1ull << 13));
	CU_ASSERT_EQUAL(run0(f, "mov rax, [0x200000]\n hlt"), BT_PFV);
	CU_ASSERT_EQUAL(f->cpu.s.cr2, 0x200000);
	CU_ASSERT_EQUAL(err0(f), 9);
	fx_free(f);
	f = mk(NULL, false, 0);
	fx_set64(f, FX_PT + 0x2000 + 8, fx_mem64(f, FX_PT + 0x2000 + 8) | (1ull << 20));
	CU_ASSERT_EQUAL(run0(f, "mov qword [0x200008], 1\n hlt"), BT_PFV);
	CU_ASSERT_EQUAL(err0(f), 9 | PF_W);
	fx_free(f);
	/* bit 12 is PAT, not reserved */
	f = mk(NULL, false, 0);
	fx_set64(f, FX_PT + 0x2000 + 8, fx_mem64(f, FX_PT + 0x2000 + 8) | (1ull << 12));
	CU_ASSERT_EQUAL(run0(f, "mov rax, [0x200000]\n mov ebx, 1\n hlt"), -1);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 1);
	fx_free(f);
	f = mk(NULL, false, 0);
	CU_ASSERT(!f->cpu.has_1g);
	fx_set64(f, FX_PT + 0x1000 + 8, 0x40000000ull | 0x83);
	CU_ASSERT_EQUAL(run0(f, "mov rax, 0x40000000\n mov rax, [rax]\n hlt"), BT_PFV);
	CU_ASSERT_EQUAL(err0(f), 9);
	fx_free(f);
}

/* ---- saved state ------------------------------------------------------ */

/* PKRU (in the XSAVE area), TSC_AUX, CR4 and the PCID in CR3 travel in a
 * saved state, through the snapshot section, to a new CPU. */
static void test_state(void)
{
	struct fx *f = mk("system-v1", false, 0), *g;
	struct modvm_cpu_state *s = calloc(1, sizeof(*s)), *t = calloc(1, sizeof(*t));
	struct strbuf sb;
	char err[256];

	CU_ASSERT_EQUAL(run0(f, "mov rax, cr4\n or rax, (1 << 22) | (1 << 17) | (1 << 21) | (1 << 11)\n"
			       "mov cr4, rax\n mov rax, cr3\n or rax, 9\n mov cr3, rax\n"
			       "xor ecx, ecx\n xor edx, edx\n mov eax, 0x30\n wrpkru\n"
			       "mov ecx, 0xC0000103\n mov eax, 0x4321\n wrmsr\n hlt"), -1);
	bt_cpu_get_state(&f->cpu, s);
	sb_init(&sb);
	state_save(&cpu_state_section, s, &sb);
	CU_ASSERT_EQUAL_FATAL(state_load(&cpu_state_section, t, sb.s, sb.len, NULL, err,
					 sizeof(err)), 0);
	g = mk("system-v1", false, 0);
	bt_cpu_set_state(&g->cpu, t);
	CU_ASSERT_EQUAL(bt_pkru(&g->cpu), 0x30);
	CU_ASSERT_EQUAL(g->cpu.s.msr.tsc_aux, 0x4321);
	CU_ASSERT_EQUAL(g->cpu.s.cr3 & 0xFFF, 9);
	CU_ASSERT_EQUAL(g->cpu.s.cr4 & (CR4_PKE | CR4_PCIDE | CR4_SMAP | CR4_UMIP),
			CR4_PKE | CR4_PCIDE | CR4_SMAP | CR4_UMIP);
	/* and the new CPU uses them */
	fx_asm_at(g, FX_CODE + 0x200, "bits 64\n xor ecx, ecx\n rdpkru\n mov ebx, eax\n rdpid rsi\n hlt");
	g->cpu.s.rip = FX_CODE + 0x200;
	g->cpu.s.halted = 0;
	fx_run_hlt(g);
	CU_ASSERT_EQUAL(fx_vector(g), -1);
	CU_ASSERT_EQUAL(R(g, MODVM_RBX), 0x30);
	CU_ASSERT_EQUAL(R(g, MODVM_RSI), 0x4321);
	sb_free(&sb);
	free(s);
	free(t);
	fx_free(f);
	fx_free(g);
}

/* Last: under BT_MODE=translate the 64-bit code above ran translated. */
static void test_translated(void)
{
	uint64_t blocks = fx_jit_report("bt_sysfeat");

	if (fx_translate_wanted())
		CU_ASSERT(blocks > 0);
}

int main(void)
{
	static const struct test_case tests[] = {
		TEST(test_models_cpuid), TEST(test_smep), TEST(test_smap),
		TEST(test_umip), TEST(test_pku), TEST(test_pks),
		TEST(test_xsave_pkru), TEST(test_pcid),
		TEST(test_invpcid), TEST(test_rdpid_tsc_aux), TEST(test_mca_vendor),
		TEST(test_syscall_vendor), TEST(test_sysenter_vendor),
		TEST(test_sysret_ss_vendor), TEST(test_sysret_noncanonical_vendor),
		TEST(test_large_page_reserved),
		TEST(test_state), TEST(test_translated),
	};

	return RUN_TESTS("bt_sysfeat", tests);
}
