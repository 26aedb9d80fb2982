/* cpu-bt translator tests (jit.c) on the fixture machine in 64-bit long
 * mode: self-modifying code and code-page watching, faults inside blocks
 * with exact state, interrupts into a translated loop, a full cache, and
 * the same programs (directed and random, fixed seeds) run translated and
 * interpreted with the final states compared. Hostile code runs in a
 * forked child so that a crash is a failure, not the end of the suite.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"
#include "jit.h"
#include "testmain.h"

#define FL (BT_CF | BT_PF | BT_AF | BT_ZF | BT_SF | BT_OF)
#define NOTPRESENT 0x600000ull  /* PD entry 3 cleared: not present */
#define MARK 0x1F000ull         /* where programs leave label addresses */

static const char *const gpr_names[16] = {
	"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
	"r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
};

/* A long-mode machine, translating (cache bytes; 0: the fixture's size)
 * or interpreting only, whatever BT_MODE says. */
static struct fx *mk(bool jit, size_t cache)
{
	struct fx *f;
	char why[256];

	setenv("BT_MODE", "interpret", 1);
	f = fx_new(FX_LONG64);
	setenv("BT_MODE", "translate", 1);
	fx_idt(f);
	if (jit && bt_jit_create(&f->cpu, cache ? cache : FX_JIT_CACHE, why,
				 sizeof(why))) {
		fprintf(stderr, "bt_jit_create: %s\n", why);
		abort();
	}
	return f;
}

static struct bt_jit_stats stats(struct fx *f)
{
	struct bt_jit_stats st;

	bt_jit_get_stats(&f->cpu, &st);
	return st;
}

static uint64_t R(struct fx *f, int r) { return fx_reg(f, r); }

/* Run prog translated (t) and interpreted (i) to their HLT; every GPR
 * must agree. */
static void run_both(struct fx *t, struct fx *i, const char *prog)
{
	fx_asm(t, prog);
	fx_asm(i, prog);
	CU_ASSERT_EQUAL(fx_run_hlt(t), BT_EXIT_HLT);
	CU_ASSERT_EQUAL(fx_run_hlt(i), BT_EXIT_HLT);
	for (int r = 0; r < 16; r++)
		if (R(t, r) != R(i, r)) {
			fprintf(stderr, "%s: translated 0x%llx, interpreted 0x%llx\n",
				gpr_names[r], (unsigned long long)R(t, r),
				(unsigned long long)R(i, r));
			CU_FAIL("registers differ");
		}
}

/* The interrupt frame at the HLT stub: error code (if any), RIP, CS,
 * RFLAGS, RSP, SS. */
static uint64_t frame(struct fx *f, int i)
{
	return fx_mem64(f, R(f, MODVM_RSP) + 8 * (uint64_t)i);
}

static void unmap_2m(struct fx *f, uint64_t lin)
{
	fx_set64(f, FX_PT + 0x2000 + 8 * (lin >> 21), 0);
	bt_tlb_flush(&f->cpu, true);
}

/* ---- self-modifying code ------------------------------------------- */

/* The store rewrites the immediate of the next instruction in its own
 * block: 5 iterations see 1, then 5 see 2. */
static void test_smc_same_block(void)
{
	struct fx *f = mk(true, 0);

	fx_asm(f,
		"xor ecx, ecx\n xor edx, edx\n"
		"l: cmp ecx, 5\n setae bl\n inc bl\n"
		"mov [rel patch + 1], bl\n"
		"patch: mov eax, 1\n add edx, eax\n"
		"inc ecx\n cmp ecx, 10\n jb l\n hlt");
	CU_ASSERT_EQUAL(fx_run_hlt(f), BT_EXIT_HLT);
	CU_ASSERT_EQUAL(R(f, MODVM_RDX), 5 * 1 + 5 * 2);
	CU_ASSERT_EQUAL(R(f, MODVM_RAX), 2);
	CU_ASSERT(stats(f).blocks > 0);
	CU_ASSERT(stats(f).invalidations > 0);
	fx_free(f);
}

/* A later block (on the same page, then on another page), translated and
 * chained by 100 earlier runs, is patched by a store and run again. */
static void smc_later_block(bool other_page)
{
	struct fx *f = mk(true, 0);
	char src[1024];

	snprintf(src, sizeof(src),
		"xor ecx, ecx\n xor edx, edx\n"
		"l: call fn\n add edx, eax\n inc ecx\n cmp ecx, 100\n jb l\n"
		"mov byte [rel fn + 1], 7\n"       /* mov eax, 3 -> mov eax, 7 */
		"call fn\n hlt\n"
		"%s\n"
		"fn: mov eax, 3\n ret\n",
		other_page ? "align 4096" : "");
	fx_asm(f, src);
	CU_ASSERT_EQUAL(fx_run_hlt(f), BT_EXIT_HLT);
	CU_ASSERT_EQUAL(R(f, MODVM_RDX), 300);
	CU_ASSERT_EQUAL(R(f, MODVM_RAX), 7);
	CU_ASSERT(stats(f).links > 0);
	CU_ASSERT(stats(f).invalidations > 0);
	fx_free(f);
}

static void test_smc_later_block(void)
{
	smc_later_block(false);
	smc_later_block(true);
}

/* A counter right after the loop's code, on the same page, 3000 times;
 * also a byte in the middle of the page rewritten each time. */
static void test_code_data_same_page(void)
{
	struct fx *f = mk(true, 0);

	fx_asm(f,
		"mov ecx, 3000\n"
		"l: add qword [rel var], rcx\n inc byte [rel var2]\n"
		"dec ecx\n jnz l\n mov rax, [rel var]\n movzx ebx, byte [rel var2]\n hlt\n"
		"var: dq 0\n var2: db 0\n");
	CU_ASSERT_EQUAL(fx_run_hlt(f), BT_EXIT_HLT);
	CU_ASSERT_EQUAL(R(f, MODVM_RAX), 3000ull * 3001 / 2);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 3000 & 0xFF);
	CU_ASSERT(stats(f).blocks > 0);
	fx_free(f);
}

/* A routine runs translated, is overwritten by REP MOVSB (interpreted)
 * and called again; then the host rewrites it as a device's DMA would. */
static void test_interp_and_dma_writes(void)
{
	struct fx *f = mk(true, 0);
	uint64_t fn;

	fx_asm(f,
		"xor edx, edx\n mov ebp, 50\n"
		"l: call fn\n add rdx, rax\n dec ebp\n jnz l\n"
		"lea rsi, [rel new]\n lea rdi, [rel fn]\n mov ecx, new_end - new\n"
		"cld\n rep movsb\n"
		"call fn\n mov rbx, rax\n hlt\n"
		"call fn\n hlt\n"
		"new: mov eax, 0x22\n ret\n new_end:\n"
		"align 4096\n"
		"fn: mov eax, 0x11\n ret\n"
		"times 0x400 - ($ - fn) db 0xCC\n"
		"dq fn\n");
	CU_ASSERT_EQUAL(fx_run_hlt(f), BT_EXIT_HLT);
	CU_ASSERT_EQUAL(R(f, MODVM_RDX), 50 * 0x11);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0x22);
	/* DMA: mov eax, 0x33 over the routine, then the second call */
	fn = fx_mem64(f, FX_CODE + 0x1400); /* fn is the next page */
	CU_ASSERT_EQUAL(fn, FX_CODE + 0x1000);
	f->ram[fn + 1] = 0x33;
	bt_jit_mem_written(&f->cpu, fn + 1, 1);
	f->cpu.s.halted = 0;
	CU_ASSERT_EQUAL(fx_run_hlt(f), BT_EXIT_HLT);
	CU_ASSERT_EQUAL(R(f, MODVM_RAX), 0x33);
	CU_ASSERT(stats(f).invalidations >= 2);
	fx_free(f);
}

/* ---- faults inside blocks -------------------------------------------- */

/* Every GPR set to a distinct value; then `ops` (register-only), then
 * the faulting instruction at label flt, whose address is left at MARK. */
static void set_all(char *buf, size_t len, const char *ops, const char *fault)
{
	size_t n = 0;

	for (int r = 0; r < 16; r++) {
		if (r == MODVM_RSP)
			continue;
		n += (size_t)snprintf(buf + n, len - n, "mov %s, 0x%llx\n", gpr_names[r],
				      0x1111111111111111ull * (unsigned)(r + 1) ^ 0x0102030405060708ull);
	}
	snprintf(buf + n, len - n,
		 "%s\nflt: %s\nhlt\n times 0x%llx - ($ - $$) db 0\n dq flt\n",
		 ops, fault, (unsigned long long)(MARK - FX_CODE));
}

/* Runs the program under both engines; the handler's view (vector,
 * frame, CR2, all GPRs) must agree and the frame's RIP be flt's. */
static void fault_case_rsp(const char *ops, const char *fault, int vector,
			   bool has_err, uint64_t err, uint64_t cr2, uint64_t rsp)
{
	static char src[8192];
	struct fx *f[2];

	set_all(src, sizeof(src), ops, fault);
	for (int k = 0; k < 2; k++) {
		f[k] = mk(k == 0, 0);
		unmap_2m(f[k], NOTPRESENT);
		fx_asm(f[k], src);
		f[k]->cpu.s.rflags |= BT_IF; /* seen in the frame */
		CU_ASSERT_EQUAL(fx_run_hlt(f[k]), BT_EXIT_HLT);
	}
	uint64_t flt = fx_mem64(f[1], MARK);
	int e = has_err ? 1 : 0;
	for (int k = 0; k < 2; k++) {
		CU_ASSERT_EQUAL(fx_vector(f[k]), vector);
		CU_ASSERT_EQUAL(frame(f[k], e), flt);
		if (has_err)
			CU_ASSERT_EQUAL(frame(f[k], 0), err);
		if (vector == 14)
			CU_ASSERT_EQUAL(f[k]->cpu.s.cr2, cr2);
		/* RSP before the fault, as the frame has it */
		CU_ASSERT_EQUAL(frame(f[k], e + 3), rsp);
	}
	CU_ASSERT_EQUAL(frame(f[0], e + 2) & (FL | BT_IF), frame(f[1], e + 2) & (FL | BT_IF));
	for (int i = 0; i < 6; i++)
		if (frame(f[0], i) != frame(f[1], i))
			fprintf(stderr, "\n  %s: frame[%d]: translated 0x%llx, interpreted 0x%llx",
				fault, i, (unsigned long long)frame(f[0], i),
				(unsigned long long)frame(f[1], i));
	for (int r = 0; r < 16; r++) {
		if (R(f[0], r) != R(f[1], r)) {
			fprintf(stderr, "\n  %s: translated 0x%llx, interpreted 0x%llx (%s / %s)\n",
				gpr_names[r], (unsigned long long)R(f[0], r),
				(unsigned long long)R(f[1], r), ops, fault);
			CU_FAIL("register differs at the fault");
		}
	}
	CU_ASSERT(stats(f[0]).blocks > 0);
	fx_free(f[0]);
	fx_free(f[1]);
}

static void fault_case(const char *ops, const char *fault, int vector,
		       bool has_err, uint64_t err, uint64_t cr2)
{
	fault_case_rsp(ops, fault, vector, has_err, err, cr2, FX_STACK);
}

#define five_ops \
	"add rax, rbx\n xor r8, r9\n sub r10, r11\n mov rcx, rdx\n shl rdi, 4\n" \
	"lea r11, [r8 + r10 * 2 + 5]\n imul r9, r15\n add r12, r13\n"

static void test_pf_in_block(void)
{
	/* each GPR as it was, exact values checked on one of them too */
	fault_case(five_ops "mov rsi, 0x600010\n", "mov r14, [rsi]", 14, true, 0, 0x600010);
	fault_case(five_ops "mov r11, 0x600100\n", "push qword [r11]", 14, true, 0, 0x600100);
}

static void test_pf_exact_registers(void)
{
	static char src[8192];
	struct fx *f = mk(true, 0);

	set_all(src, sizeof(src), "mov rbx, 0x600000\n add r8, 1\n inc r11\n"
		"sub rax, rcx\n xchg r9, r10\n", "mov eax, [rbx + 0x20]");
	unmap_2m(f, NOTPRESENT);
	fx_asm(f, src);
	CU_ASSERT_EQUAL(fx_run_hlt(f), BT_EXIT_HLT);
	CU_ASSERT_EQUAL(fx_vector(f), 14);
	CU_ASSERT_EQUAL(f->cpu.s.cr2, 0x600020);
	CU_ASSERT_EQUAL(frame(f, 1), fx_mem64(f, MARK));
	for (int r = 0; r < 16; r++) {
		uint64_t v = 0x1111111111111111ull * (unsigned)(r + 1) ^ 0x0102030405060708ull;
		switch (r) {
		case MODVM_RSP: v = FX_STACK - 6 * 8; break; /* err, RIP, CS, RFLAGS, RSP, SS */
		case MODVM_RBX: v = 0x600000; break;
		case MODVM_R8: v += 1; break;
		case MODVM_R11: v += 1; break;
		case MODVM_RAX: v -= 0x1111111111111111ull * 2 ^ 0x0102030405060708ull; break;
		case MODVM_R9: v = 0x1111111111111111ull * 11 ^ 0x0102030405060708ull; break;
		case MODVM_R10: v = 0x1111111111111111ull * 10 ^ 0x0102030405060708ull; break;
		}
		if (R(f, r) != v)
			fprintf(stderr, "\n  %s = 0x%llx, expected 0x%llx\n", gpr_names[r],
				(unsigned long long)R(f, r), (unsigned long long)v);
		CU_ASSERT_EQUAL(R(f, r), v);
	}
	fx_free(f);
}

static void test_gp_de_in_block(void)
{
	fault_case(five_ops "mov rsi, 0x8000000000000000\n", "mov r14, [rsi]", 13, true, 0, 0);
	fault_case(five_ops "mov r9, 0x0000800000000000\n", "mov [r9 + 8], eax", 13, true, 0, 0);
	fault_case(five_ops "mov rdi, 0x7ffffffffffffff8\n", "mov [rdi + 16], al", 13, true, 0, 0);
	fault_case(five_ops "xor ecx, ecx\n", "div rcx", 0, false, 0, 0);
	fault_case(five_ops "xor r8d, r8d\n", "idiv r8d", 0, false, 0, 0);
}

/* Faults on instructions that overwrite every flag (ADD, CMP...): the
 * frame must still hold the flags from before the instruction. The RMW
 * ADD's #PF also says W=1, as the translated (host) access does; the
 * interpreter's read-then-write said W=0. */
static void test_fault_in_flag_writer(void)
{
	/* error code 0: both engines read the operand of a read-modify-write
	 * first, so a not-present page faults as a read (hardware reports a
	 * write, W=1: a [cpu-fidelity] item for the interpreter and the
	 * translator alike) */
	fault_case(five_ops "mov r10, 0x600ff8\n", "add [r10 + 8], r8", 14, true, 0, 0x601000);
	fault_case(five_ops "mov r10, 0x600ff8\n", "cmp r8, [r10 + 8]", 14, true, 0, 0x601000);
	fault_case(five_ops "mov rdi, 0x7ffffffffffffff8\n", "lock add [rdi + 16], al", 13, true, 0, 0);
	fault_case(five_ops "mov rdi, 0x7ffffffffffffff8\n", "sub rax, [rdi + 16]", 13, true, 0, 0);
}

static void test_noncanonical_branch(void)
{
	fault_case_rsp(five_ops "mov rax, 0x8000000000000000\n push rax\n", "ret", 13, true, 0, 0,
		       FX_STACK - 8);
	fault_case_rsp(five_ops "mov rax, 0x0000800000000000\n push rax\n", "ret 16", 13, true, 0, 0,
		       FX_STACK - 8);
	fault_case(five_ops "mov rdx, 0x0000800000000000\n", "jmp rdx", 13, true, 0, 0);
	fault_case(five_ops "mov r9, 0xfff0000000000000\n", "call r9", 13, true, 0, 0);
	fault_case(five_ops "mov rax, 0x1234000000000000\n mov [0x30000], rax\n",
		   "jmp [0x30000]", 13, true, 0, 0);
	fault_case(five_ops "mov rax, 0x1234000000000000\n mov [0x30000], rax\n mov r10, 0x30000\n",
		   "call [r10]", 13, true, 0, 0);
}

/* ---- interrupts into a translated loop -------------------------------- */

static void loop_interrupt(const char *loop)
{
	struct fx *f = mk(true, 0);
	char src[512];
	uint64_t l, end;
	int runs = 0;

	snprintf(src, sizeof(src), "sti\n l: %s\n e: hlt\n"
		 "times 0x%llx - ($ - $$) db 0\n dq l, e\n", loop,
		 (unsigned long long)(MARK - FX_CODE));
	fx_asm(f, src);
	l = fx_mem64(f, MARK);
	end = fx_mem64(f, MARK + 8);
	CU_ASSERT_EQUAL(fx_run(f, 5000), BT_EXIT_BUDGET);
	CU_ASSERT(stats(f).blocks > 0);
	CU_ASSERT(f->cpu.s.rip >= l && f->cpu.s.rip < end);
	f->intr_vec = 0x40;
	f->intr = true;
	while (fx_vector(f) < 0 && runs < 4) {
		fx_run(f, 5000);
		runs++;
	}
	CU_ASSERT_EQUAL(fx_vector(f), 0x40);
	CU_ASSERT_EQUAL(f->intr_acks, 1);
	CU_ASSERT(frame(f, 0) >= l && frame(f, 0) < end);
	CU_ASSERT(frame(f, 2) & BT_IF);
	fx_free(f);
}

static void test_interrupt_in_loop(void)
{
	loop_interrupt("jmp l");
	loop_interrupt("inc rax\n jmp l");
	loop_interrupt("inc rax\n cmp rax, rax\n je l");
}

/* Another thread raises the line and kicks (bt_jit_request_exit, what the
 * engine does) while the vCPU is in a long fx_run of a one-block loop: the
 * kick must end the run soon, every time. */
struct kicker {
	struct fx *f;
	atomic_int running, done, lost;
	int trials;
};

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { 0, (long)ms * 1000000 };

	nanosleep(&ts, NULL);
}

static void *kick_thread(void *arg)
{
	struct kicker *k = arg;

	for (int i = 0; i < k->trials; i++) {
		while (atomic_load(&k->running) != i + 1)
			;
		sleep_ms(1 + i % 3);
		__atomic_store_n(&k->f->intr, true, __ATOMIC_SEQ_CST);
		bt_jit_request_exit(&k->f->cpu);
		int waited = 0;
		while (atomic_load(&k->done) != i + 1) {
			sleep_ms(1);
			if (++waited == 500) /* half a second: the kick was lost */
				atomic_fetch_add(&k->lost, 1);
			if (waited >= 500)
				bt_jit_request_exit(&k->f->cpu);
		}
	}
	return NULL;
}

static void test_kick_from_thread(void)
{
	struct kicker k = { .f = mk(true, 0), .trials = 40 };
	pthread_t t;
	uint64_t l;

	fx_asm(k.f, "sti\n l: inc rax\n jmp l\n times 0x1000 db 0\n");
	l = FX_CODE + 1;
	k.f->intr_vec = 0x41;
	pthread_create(&t, NULL, kick_thread, &k);
	for (int i = 0; i < k.trials; i++) {
		k.f->cpu.s.rip = l;
		k.f->cpu.s.halted = 0;
		k.f->cpu.s.gpr[MODVM_RSP] = FX_STACK;
		k.f->cpu.s.rflags |= BT_IF;
		atomic_store(&k.running, i + 1);
		/* ends at the kick (BUDGET) or takes the interrupt (HLT) */
		fx_run(k.f, 1ull << 40);
		atomic_store(&k.done, i + 1);
		for (int n = 0; n < 3 && fx_vector(k.f) != 0x41; n++)
			fx_run(k.f, 100);
		CU_ASSERT_EQUAL(fx_vector(k.f), 0x41);
	}
	pthread_join(t, NULL);
	if (k.lost)
		fprintf(stderr, "\n  %d of %d kicks lost (the run went on until a later kick)\n",
			k.lost, k.trials);
	CU_ASSERT_EQUAL(k.lost, 0);
	fx_free(k.f);
}

/* ---- translation cache full ------------------------------------------- */

static void test_cache_full(void)
{
	struct fx *f = mk(true, 1); /* the minimum size */
	size_t len = 3000 * 64 + 256, n = 0;
	char *src = malloc(len);
	uint64_t sum = 0;

	n += (size_t)snprintf(src + n, len - n, "xor eax, eax\n mov ebp, 5\n top:\n");
	for (int i = 0; i < 3000; i++) {
		n += (size_t)snprintf(src + n, len - n, "b%d: add rax, %d\n jmp b%d\n",
				      i, i * 7 + 1, i + 1);
		sum += (uint64_t)i * 7 + 1;
	}
	snprintf(src + n, len - n, "b3000: dec ebp\n jnz top\n hlt\n");
	fx_asm(f, src);
	free(src);
	CU_ASSERT_EQUAL(fx_run_hlt(f), BT_EXIT_HLT);
	CU_ASSERT_EQUAL(R(f, MODVM_RAX), 5 * sum);
	CU_ASSERT(stats(f).flushes > 0);
	CU_ASSERT(stats(f).blocks > 3000);
	printf("(%llu blocks, %llu flushes, cache %zu) ",
	       (unsigned long long)stats(f).blocks,
	       (unsigned long long)stats(f).flushes, stats(f).cache_size);
	fx_free(f);
}

/* ---- translated vs interpreted ---------------------------------------- */

#define DATA 0x380000ull       /* data the programs use: 8 KiB */
#define DATA_LEN 0x2000
#define FSBASE 0x390000ull
#define GSBASE 0x391000ull
#define SEGLEN 0x1000
#define STACK_CMP 0x400        /* bytes below FX_STACK compared */

struct start {
	uint64_t gpr[16];
	uint64_t flags;
	uint8_t data[DATA_LEN], fs[SEGLEN], gs[SEGLEN];
};

static uint64_t rng;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void random_start(struct start *s)
{
	for (int r = 0; r < 16; r++)
		s->gpr[r] = rnd() >> (rnd() % 4 * 16);
	s->gpr[MODVM_RSP] = FX_STACK;
	s->gpr[MODVM_RSI] = DATA;          /* bases */
	s->gpr[MODVM_R11] = DATA + 0x800;
	s->gpr[MODVM_R10] = rnd() % 64;     /* index */
	s->flags = 2 | (rnd() & FL);
	for (unsigned i = 0; i < DATA_LEN; i++)
		s->data[i] = (uint8_t)rnd();
	for (unsigned i = 0; i < SEGLEN; i++) {
		s->fs[i] = (uint8_t)rnd();
		s->gs[i] = (uint8_t)rnd();
	}
}

static void load_start(struct fx *f, const struct start *s, uint64_t rip)
{
	memcpy(f->cpu.s.gpr, s->gpr, sizeof(s->gpr));
	f->cpu.s.rflags = s->flags;
	f->cpu.s.rip = rip;
	f->cpu.s.halted = 0;
	memcpy(f->ram + DATA, s->data, DATA_LEN);
	memcpy(f->ram + FSBASE, s->fs, SEGLEN);
	memcpy(f->ram + GSBASE, s->gs, SEGLEN);
	memset(f->ram + FX_STACK - STACK_CMP, 0, STACK_CMP);
}

static struct fx *diff_machine(bool jit)
{
	struct fx *f = mk(jit, 0);
	struct modvm_cpu_state *s = &f->cpu.s;

	s->seg[BT_FS].base = FSBASE;
	s->seg[BT_GS].base = GSBASE;
	bt_cpu_set_state(&f->cpu, s);
	return f;
}

/* Compares the two machines; prints what differs with `what`. */
static bool same_state(struct fx *a, struct fx *b, uint32_t undef, const char *what)
{
	bool ok = true;

	for (int r = 0; r < 16; r++)
		if (R(a, r) != R(b, r)) {
			fprintf(stderr, "\n  %s: translated 0x%llx, interpreted 0x%llx", gpr_names[r],
				(unsigned long long)R(a, r), (unsigned long long)R(b, r));
			ok = false;
		}
	if (a->cpu.s.rip != b->cpu.s.rip) {
		fprintf(stderr, "\n  rip: translated 0x%llx, interpreted 0x%llx",
			(unsigned long long)a->cpu.s.rip, (unsigned long long)b->cpu.s.rip);
		ok = false;
	}
	if ((a->cpu.s.rflags ^ b->cpu.s.rflags) & ((FL & ~undef) | BT_IF)) {
		fprintf(stderr, "\n  flags: translated 0x%llx, interpreted 0x%llx (undefined 0x%x)",
			(unsigned long long)a->cpu.s.rflags, (unsigned long long)b->cpu.s.rflags, undef);
		ok = false;
	}
	if (memcmp(a->ram + DATA, b->ram + DATA, DATA_LEN) ||
	    memcmp(a->ram + FSBASE, b->ram + FSBASE, SEGLEN) ||
	    memcmp(a->ram + GSBASE, b->ram + GSBASE, SEGLEN) ||
	    memcmp(a->ram + FX_STACK - STACK_CMP, b->ram + FX_STACK - STACK_CMP, STACK_CMP)) {
		static const uint64_t at[] = { DATA, FSBASE, GSBASE, FX_STACK - STACK_CMP };
		static const uint64_t len[] = { DATA_LEN, SEGLEN, SEGLEN, STACK_CMP };
		for (int k = 0; k < 4; k++)
			for (uint64_t i = 0; i < len[k]; i++)
				if (a->ram[at[k] + i] != b->ram[at[k] + i]) {
					fprintf(stderr, "\n  memory at 0x%llx: translated 0x%02x, interpreted 0x%02x",
						(unsigned long long)(at[k] + i), a->ram[at[k] + i],
						b->ram[at[k] + i]);
					break;
				}
		ok = false;
	}
	if (fx_vector(a) != fx_vector(b)) {
		fprintf(stderr, "\n  vector: translated %d, interpreted %d", fx_vector(a), fx_vector(b));
		ok = false;
	}
	if (!ok)
		fprintf(stderr, "\n  in:\n%s\n", what);
	return ok;
}

/* Directed programs: each ends with HLT; flags named undefined by the
 * last flag-writing instructions are not compared. */
static const struct { const char *src; uint32_t undef; } directed[] = {
	{ "lock add [rsi + 8], r8\n lock xadd [r11 + r10*8], r9\n lock cmpxchg [rsi], rbx\n"
	  "lock or dword [rsi + 0x10], 0x55\n lock inc word [r11]\n lock bts qword [rsi+0x20], 35\n"
	  "lock neg byte [rsi + 3]\n lock sbb [r11 + 8], r10d\n lock xchg [rsi+0x40], r11\n", BT_OF | BT_SF | BT_AF | BT_PF },
	{ "xchg [rsi], rax\n xchg r8d, [r11 + r10]\n xchg [rsi + 4], cx\n xchg r9b, [rsi + 7]\n"
	  "xchg r8, r9\n xchg eax, r10d\n xchg ah, bl\n xchg rax, r11\n xchg r11, rsi\n xchg rsi, r11\n", 0 },
	{ "push r8\n push r9\n push r10\n push r11\n push rsp\n pop rax\n pop r11\n pop r10\n"
	  "pop r9\n pop r8\n push qword 0x12345678\n push -5\n pop r8\n pop rbx\n"
	  "call f1\n jmp done\n f1: push rbp\n mov rbp, rsp\n sub rsp, 32\n mov [rbp - 8], r9\n"
	  "mov r11, [rbp - 8]\n call f2\n leave\n ret\n f2: push rsp\n pop r10\n ret\n done:\n"
	  "push rsp\n pop rsp\n push 7\n pop rsp\n mov rsp, 0x80000\n", 0 },
	{ "mov r8, [r11 + r10 * 4 + 8]\n mov [rsi + r10 * 2], r9\n mov r10, [rsi + 0x48]\n and r10, 0x3f\n"
	  "add r8, [rsi + r10]\n add [r11 + r10 * 8 - 16], r8\n sub r9d, [r11]\n"
	  "mov r10, 3\n lea r11, [r11 + r10 * 8]\n mov r9, [r11]\n lea r8, [r9 + r10]\n"
	  "lea r10d, [r8 + r9 * 2 + 1]\n lea r9w, [r10 + 3]\n and r10, 0x3f\n mov rsi, [rsi + r10]\n", 0 },
	{ "mov ah, bl\n add ah, ch\n sub dh, ah\n xor bh, al\n mov ch, [rsi + 3]\n mov [rsi + 5], dh\n"
	  "add ah, [rsi + 0x11]\n inc bh\n neg ch\n shl dh, 3\n movzx ecx, ah\n movsx edx, bh\n"
	  "movzx ebp, ch\n movsx edi, dh\n setc ah\n setz bh\n cmp ah, bh\n", 0 },
	{ "mov rax, [rel d1]\n add [rel d1 + 8], rax\n inc dword [rel d1 + 4]\n mov r9, [rel d1 + 8]\n"
	  "lea r8, [rel d1]\n cmp qword [rel d1], 5\n setl r10b\n jmp over\n"
	  "align 8\n d1: dq 0x1234, 0x5678, 0\n over:\n mov rbx, [rel d1 + 8]\n", 0 },
	{ "mov rax, [fs:0x10]\n add [gs:0x20], rax\n mov r8, [fs:r10 * 8]\n mov r9d, [gs:r11 - 0x380800]\n"
	  "xchg [fs:0x40], r9\n lock add qword [gs:0x48], 3\n mov dword [fs:rsi - 0x380000 + 0x80], 0x1234\n"
	  "mov rbx, [fs:0x80]\n cmp byte [gs:0x30], 0x80\n", 0 },
	{ "mov ax, 0x8000\n add ax, bx\n mov cx, [rsi]\n adc cx, 0x1234\n mov [rsi + 2], cx\n"
	  "mov r8w, 0x7fff\n inc r8w\n imul r9w, r8w, 3\n movzx r10d, r9w\n movsx r11, cx\n"
	  "mov eax, 0xffffffff\n add eax, 1\n mov r8d, -1\n sub r8d, [rsi + 0x10]\n cdqe\n cwde\n cbw\n cqo\n cdq\n cwd\n"
	  "movsxd r9, r8d\n movsxd rbx, dword [rsi + 0x20]\n bswap r9\n bswap ebx\n", BT_SF | BT_ZF | BT_AF | BT_PF },
	{ "imul rax, rbx\n imul r8, [rsi], 7\n imul r9d, r10d, -100000\n imul r11w, [rsi + 2]\n"
	  "mov rax, r9\n imul rcx\n mul r8\n imul byte [rsi + 9]\n mul r10w\n imul r12, r13, 0x7f\n", BT_SF | BT_ZF | BT_AF | BT_PF },
	{ "mov ecx, 5\n shl rax, cl\n shr r8d, cl\n sar r9w, cl\n rol r10b, cl\n ror qword [rsi], cl\n"
	  "mov cl, 33\n shl r11, cl\n shr dword [rsi + 8], cl\n mov cl, 0\n shl rbx, cl\n sar rax, cl\n"
	  "mov cl, 1\n shl r9, cl\n rcl r8, cl\n rcr rax, 1\n", BT_AF | BT_OF },
	{ "cmp rax, rbx\n setb r8b\n seta r9b\n setl r10b\n setg r11b\n sete byte [rsi]\n setp dl\n"
	  "test r8, r9\n cmovz rax, rbx\n cmovnz r10, r11\n cmovs r9d, [rsi + 4]\n cmovo r8w, bx\n"
	  "cmp r10, r11\n cmovl rcx, r8\n cmovge rdx, [r11]\n cmovbe r11, rsi\n", 0 },
	{ "bt rax, 5\n setc r8b\n bts rbx, 63\n btr r9, r10\n btc r11d, 7\n bt qword [rsi], 40\n"
	  "bts dword [r11 + 4], 31\n btr word [rsi + 8], 3\n btc qword [r11 + r10], 1\n setc r10b\n"
	  "bt rbx, rax\n", BT_OF | BT_SF | BT_AF | BT_PF },
	{ "cmpxchg rbx, rcx\n cmpxchg [rsi], r8\n mov rax, [rsi + 8]\n cmpxchg [rsi + 8], r9\n"
	  "cmpxchg r10d, r11d\n cmpxchg r8b, r9b\n xadd rax, rbx\n xadd [r11], r10\n xadd r8w, r9w\n"
	  "xadd [rsi + 0x18], r11d\n", 0 },
	{ "clc\n adc rax, rbx\n stc\n sbb r8, r9\n cmc\n adc r10d, [rsi]\n sbb qword [r11], -1\n"
	  "not r8\n neg r9\n not dword [rsi + 4]\n neg qword [rsi + 8]\n inc r10\n dec r11\n", 0 },
	{ "mov r8, r9\n mov r9d, r10d\n mov r10w, r11w\n mov r11b, r8b\n mov sil, dil\n mov bpl, r12b\n"
	  "mov r12, 0x123456789abcdef0\n mov r13d, 0x87654321\n mov r14w, 0x4321\n mov r15b, 0x21\n"
	  "mov byte [rsi], 0x99\n mov word [r11], 0x8899\n mov dword [rsi+r10], 0x11223344\n"
	  "mov qword [r11 + 8], -2\n mov spl, al\n mov rsp, 0x80000\n", 0 },
	{ "mov rsp, r11\n push rax\n push r8\n pop rbx\n pop r9\n add rsp, 8\n lea rsp, [rsp - 16]\n"
	  "mov [rsp], r10\n pop r11\n mov rsp, 0x80000\n", 0 },
	{ "pushfq\n pop r8\n sti\n nop\n add rax, rbx\n pushfq\n pop r9\n cli\n pushfq\n pop rdx\n"
	  "mov ax, ds\n mov ecx, es\n mov r10, ss\n mov r11w, fs\n mov sp, gs\n mov rsp, 0x80000\n"
	  "lfence\n mfence\n sfence\n prefetcht0 [rsi]\n prefetchw [rsi + 64]\n sub rbx, rdi\n"
	  "add r12, r13\n rdtsc\n mov r8, rax\n mov r9, rdx\n adc r12, 0\n rdtsc\n sub rax, r8\n", 0 },
};

static bool run_pair(struct fx *a, struct fx *b, const struct start *st,
		     uint64_t rip, uint32_t undef, const char *what)
{
	load_start(a, st, rip);
	load_start(b, st, rip);
	fx_run(a, 100000);
	fx_run(b, 100000);
	return same_state(a, b, undef, what);
}

static void test_directed_diff(void)
{
	struct fx *a = diff_machine(true), *b = diff_machine(false);
	struct start *st = malloc(sizeof(*st));
	int bad = 0;

	rng = 0x5eed1234;
	for (size_t i = 0; i < sizeof(directed) / sizeof(directed[0]); i++) {
		char src[4096];

		snprintf(src, sizeof(src), "%s\n hlt\n", directed[i].src);
		fx_asm_at(a, 0x200000, src);
		fx_asm_at(b, 0x200000, src);
		for (int s = 0; s < 50; s++) {
			random_start(st);
			if (!run_pair(a, b, st, 0x200000, directed[i].undef, directed[i].src)) {
				bad++;
				break;
			}
		}
	}
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT(stats(a).blocks > 0);
	free(st);
	fx_free(a);
	fx_free(b);
}

/* ---- SMAP and protection keys ----------------------------------------- */

/* The translator's TLB is keyed by neither EFLAGS.AC nor PKRU: loops that
 * switch them (STAC/CLAC, POPF, WRPKRU) around accesses to a user page
 * must fault exactly where the interpreter does, with the same state. */
static const struct modvm_cpuid_leaf smap_pku_leaves[] = {
	{ 0x0, 0, 0, 0x7, 0x68747541, 0x444d4163, 0x69746e65 },
	{ 0x1, 0, 0, 0xf10, 0x800, 0, 0x0789bb7d },
	{ 0x7, 0, MODVM_CPUID_SIGNIFICANT_INDEX, 0, 1u << 20, 1u << 3, 0 },
	{ 0x80000000, 0, 0, 0x80000001, 0x68747541, 0x444d4163, 0x69746e65 },
	{ 0x80000001, 0, 0, 0xf10, 0, 0, (1u << 11) | (1u << 20) | (1u << 29) },
};
static const struct modvm_cpu_model smap_pku_model = {
	.name = "smap-pku", .leaves = smap_pku_leaves, .nleaves = 5,
};

static struct fx *smap_machine(bool jit)
{
	struct fx *f = mk(jit, 0);
	uint64_t pt = 0x110000;

	bt_cpu_set_model(&f->cpu, &smap_pku_model);
	/* supervisor 4 KiB pages, but 0x40000: user, protection key 1 */
	for (int i = 0; i < 512; i++)
		fx_set64(f, pt + 8 * i, ((uint64_t)i << 12) | 3);
	fx_set64(f, FX_PT + 0x2000, pt | 7);
	fx_set64(f, pt + 8 * 0x40, 0x40000 | 7 | (1ull << 59));
	fx_set64(f, 0x40000, 0x1234);
	bt_tlb_flush(&f->cpu, true);
	return f;
}

static void test_smap_pku_agree(void)
{
	static const char *const progs[] = {
		/* STAC/CLAC around user accesses, then one without AC */
		"mov rax, cr4\n bts rax, 21\n mov cr4, rax\n mov r8d, 200\n"
		"l: stac\n add rbx, [0x40000]\n mov [0x40008], rbx\n clac\n"
		"add rbx, [0x41000]\n dec r8d\n jnz l\n mov rcx, [0x40000]\n hlt",
		/* POPF setting and clearing AC */
		"mov rax, cr4\n bts rax, 21\n mov cr4, rax\n mov r8d, 200\n"
		"l: pushfq\n or dword [rsp], 0x40000\n popfq\n add rbx, [0x40000]\n"
		"pushfq\n and dword [rsp], ~0x40000\n popfq\n add rbx, [0x41000]\n"
		"dec r8d\n jnz l\n add rbx, [0x40000]\n hlt",
		/* WRPKRU switching key 1 between all rights and write-disable
		 * (CR0.WP: supervisor writes too), then a write while disabled */
		"mov rax, cr0\n bts rax, 16\n mov cr0, rax\n"
		"mov rax, cr4\n bts rax, 22\n mov cr4, rax\n mov r8d, 200\n xor ecx, ecx\n xor edx, edx\n"
		"l: xor eax, eax\n wrpkru\n add rbx, [0x40000]\n mov [0x40010], rbx\n"
		"mov eax, 8\n wrpkru\n add rbx, [0x40000]\n dec r8d\n jnz l\n"
		"mov [0x40018], rbx\n hlt",
		/* access-disable: the read faults after a loop of allowed reads */
		"mov rax, cr4\n bts rax, 22\n mov cr4, rax\n mov r8d, 200\n xor ecx, ecx\n xor edx, edx\n"
		"l: add rbx, [0x40000]\n dec r8d\n jnz l\n mov eax, 4\n wrpkru\n"
		"add rbx, [0x40000]\n hlt",
	};
	int bad = 0;

	for (size_t i = 0; i < sizeof(progs) / sizeof(progs[0]); i++) {
		struct fx *a = smap_machine(true), *b = smap_machine(false);

		fx_asm(a, progs[i]);
		fx_asm(b, progs[i]);
		fx_run_hlt(a);
		fx_run_hlt(b);
		if (!same_state(a, b, 0, progs[i]))
			bad++;
		CU_ASSERT_EQUAL(fx_vector(a), BT_PFV);
		CU_ASSERT_EQUAL(fx_vector(b), BT_PFV);
		CU_ASSERT_EQUAL(a->cpu.s.cr2, b->cpu.s.cr2);
		CU_ASSERT_EQUAL(fx_mem64(a, FX_STACK - 48), fx_mem64(b, FX_STACK - 48));
		CU_ASSERT_EQUAL(memcmp(a->ram + 0x40000, b->ram + 0x40000, 64), 0);
		CU_ASSERT(R(b, MODVM_RBX) != 0);
		CU_ASSERT(stats(a).blocks > 0);
		fx_free(a);
		fx_free(b);
	}
	CU_ASSERT_EQUAL(bad, 0);
}

/* PKS: the same for supervisor pages and IA32_PKRS (fx_model_pks;
 * 0x42000 a supervisor page with key 1). */
static void test_pks_agree(void)
{
	static const char *const progs[] = {
		/* WRMSR switching key 1 between all rights and write-disable
		 * (CR0.WP), then a write while disabled */
		"mov rax, cr0\n bts rax, 16\n mov cr0, rax\n"
		"mov rax, cr4\n bts rax, 24\n mov cr4, rax\n mov r8d, 200\n"
		"mov ecx, 0x6E1\n xor edx, edx\n"
		"l: xor eax, eax\n wrmsr\n add rbx, [0x42000]\n mov [0x42010], rbx\n"
		"mov eax, 8\n wrmsr\n add rbx, [0x42000]\n dec r8d\n jnz l\n"
		"mov [0x42018], rbx\n hlt",
		/* access-disable: the read faults after a loop of allowed reads */
		"mov rax, cr4\n bts rax, 24\n mov cr4, rax\n mov r8d, 200\n"
		"mov ecx, 0x6E1\n xor edx, edx\n"
		"l: add rbx, [0x42000]\n dec r8d\n jnz l\n mov eax, 4\n wrmsr\n"
		"add rbx, [0x42000]\n hlt",
	};
	int bad = 0;

	for (size_t i = 0; i < sizeof(progs) / sizeof(progs[0]); i++) {
		struct fx *m[2] = { smap_machine(true), smap_machine(false) };

		for (int k = 0; k < 2; k++) {
			bt_cpu_set_model(&m[k]->cpu, &fx_model_pks);
			fx_set64(m[k], 0x110000 + 8 * 0x42, 0x42000 | 3 | (1ull << 59));
			fx_set64(m[k], 0x42000, 0x5678);
			bt_tlb_flush(&m[k]->cpu, true);
			fx_asm(m[k], progs[i]);
			fx_run_hlt(m[k]);
		}
		if (!same_state(m[0], m[1], 0, progs[i]))
			bad++;
		CU_ASSERT_EQUAL(fx_vector(m[0]), BT_PFV);
		CU_ASSERT_EQUAL(fx_vector(m[1]), BT_PFV);
		CU_ASSERT_EQUAL(m[0]->cpu.s.cr2 & ~0xFFFull, 0x42000);
		CU_ASSERT_EQUAL(m[1]->cpu.s.cr2, m[0]->cpu.s.cr2);
		CU_ASSERT_EQUAL(fx_mem64(m[0], FX_STACK - 48), fx_mem64(m[1], FX_STACK - 48));
		CU_ASSERT_EQUAL(memcmp(m[0]->ram + 0x42000, m[1]->ram + 0x42000, 64), 0);
		CU_ASSERT(R(m[1], MODVM_RBX) != 0);
		CU_ASSERT(stats(m[0]).blocks > 0);
		fx_free(m[0]);
		fx_free(m[1]);
	}
	CU_ASSERT_EQUAL(bad, 0);
}

/* ---- random programs --------------------------------------------------- */

enum { W8L, W8R, W16, W32, W64 };

static const char *const regs[5][16] = {
	{ "al", "cl", "dl", "bl", "ah", "ch", "dh", "bh" },
	{ "al", "cl", "dl", "bl", "bpl", "dil", "r8b", "r9b", "r12b", "r13b", "r14b", "r15b" },
	{ "ax", "cx", "dx", "bx", "bp", "di", "r8w", "r9w", "r12w", "r13w", "r14w", "r15w" },
	{ "eax", "ecx", "edx", "ebx", "ebp", "edi", "r8d", "r9d", "r12d", "r13d", "r14d", "r15d" },
	{ "rax", "rcx", "rdx", "rbx", "rbp", "rdi", "r8", "r9", "r12", "r13", "r14", "r15" },
};
static const int nregs[5] = { 8, 12, 12, 12, 12 };
/* source-only registers (bases and index stay valid) */
static const char *const srcregs[5][2] = {
	{ NULL, NULL }, { "r10b", "r11b" }, { "r10w", "r11w" }, { "r10d", "r11d" },
	{ "r10", "r11" },
};
static const char *const ptr[5] = { "byte", "byte", "word", "dword", "qword" };
static const int bits[5] = { 8, 8, 16, 32, 64 };

static const char *dreg(int w) { return regs[w][rnd() % (unsigned)nregs[w]]; }

static const char *sreg(int w)
{
	if (w != W8L && rnd() % 4 == 0)
		return srcregs[w][rnd() % 2];
	return dreg(w);
}

/* A memory operand in DATA, FS or GS; the AH..BH forms cannot have a REX
 * prefix, so no R8-R15 in their addresses. */
static void mem(char *b, size_t len, int w)
{
	static const char *const forms[] = {
		"[rsi + %u]", "[fs:%u]", "[rel $$ + 0x181000 + %u]", "[gs:%u]",
		"[r11 + r10 * 8 + %u]", "[r11 + r10 - %u]", "[rsi + r10 * 2 + %u]",
		"[gs:r10 * 4 + %u]", "[r11 - %u]",
	};
	unsigned k = (unsigned)(rnd() % (w == W8L ? 4 : 9));

	snprintf(b, len, "%s ", ptr[w]);
	snprintf(b + strlen(b), len - strlen(b), forms[k], (unsigned)(rnd() % 0x300));
}

/* Which flags a condition reads. */
static const struct { const char *cc; uint32_t reads; } conds[] = {
	{ "o", BT_OF }, { "no", BT_OF }, { "b", BT_CF }, { "ae", BT_CF }, { "e", BT_ZF },
	{ "ne", BT_ZF }, { "be", BT_CF | BT_ZF }, { "a", BT_CF | BT_ZF }, { "s", BT_SF },
	{ "ns", BT_SF }, { "p", BT_PF }, { "np", BT_PF }, { "l", BT_SF | BT_OF },
	{ "ge", BT_SF | BT_OF }, { "le", BT_ZF | BT_SF | BT_OF }, { "g", BT_ZF | BT_SF | BT_OF },
};

/* One random instruction (or two: a count in CL and a shift) appended to
 * p; *taint: flags whose value is undefined so far. */
static void random_insn(char *p, size_t len, uint32_t *taint)
{
	static const char *const alu[] = { "add", "sub", "cmp", "and", "or", "xor", "test", "adc", "sbb" };
	int w = (int)(rnd() % 5), kind = (int)(rnd() % 16);
	char m[64], o1[64], o2[64];
	bool usemem = rnd() % 3 == 0;
	unsigned cnt;

	if (w == W8L && (kind == 8 || kind == 9 || kind == 12))
		w = W8R; /* movzx/movsx/cmov/bt have no AH form for both operands */
	mem(m, sizeof(m), w);
	snprintf(o1, sizeof(o1), "%s", usemem ? m : dreg(w));
	snprintf(o2, sizeof(o2), "%s", sreg(w));
	switch (kind) {
	case 0: case 1: case 2: { /* ALU */
		int a = (int)(rnd() % 9);
		if (a >= 7 && (*taint & BT_CF))
			a = 0;
		if (rnd() % 2)
			snprintf(p, len, "%s %s, %s\n", alu[a], o1, o2);
		else
			snprintf(p, len, "%s %s, %d\n", alu[a], o1,
				 (int)(rnd() % 2 ? (int8_t)rnd() : (int32_t)(rnd() >> (w == W16 ? 48 : 32))) &
				 (w <= W8R ? 0x7f : w == W16 ? 0x7fff : 0x7fffffff));
		*taint = a >= 3 && a <= 6 ? BT_AF : 0;
		break;
	}
	case 3: /* lock RMW */
		mem(m, sizeof(m), w);
		if (rnd() % 2)
			snprintf(p, len, "lock add %s, %s\n", m, sreg(w));
		else /* xadd writes its register: not a base or index */
			snprintf(p, len, "lock xadd %s, %s\n", m, dreg(w));
		*taint = 0;
		break;
	case 4:
		snprintf(p, len, "%s %s\n", (const char *[]){ "inc", "dec", "not", "neg" }[rnd() % 4], o1);
		if (strncmp(p, "inc", 3) == 0 || strncmp(p, "dec", 3) == 0)
			*taint &= BT_CF;
		else if (p[1] == 'e')
			*taint = 0;
		break;
	case 5: /* mov, xchg */
		if (rnd() % 2)
			snprintf(p, len, "mov %s, %s\n", dreg(w), usemem ? m : o2);
		else
			snprintf(p, len, "xchg %s, %s\n", o1, dreg(w));
		break;
	case 6: case 7: { /* shifts by an immediate and by CL */
		static const char *const sh[] = { "shl", "shr", "sar", "rol", "ror", "rcl", "rcr" };
		int s = (int)(rnd() % 7);
		cnt = (unsigned)(rnd() % (unsigned)bits[w]);
		if (s >= 5 && (*taint & BT_CF))
			s = 0;
		if (kind == 6 && cnt)
			snprintf(p, len, "%s %s, %u\n", sh[s], o1, cnt);
		else
			snprintf(p, len, "mov ecx, %u\n %s %s, cl\n", cnt, sh[s],
				 usemem ? m : regs[w][2 + rnd() % 2]); /* dx/bx: not CL */
		if (cnt == 0)
			break;
		if (s <= 2)
			*taint = (cnt == 1 ? 0 : BT_OF) | BT_AF;
		else
			*taint = (*taint & ~(uint32_t)(BT_CF | BT_OF)) | (cnt == 1 ? 0 : BT_OF);
		break;
	}
	case 8: /* movzx/movsx */
		if (w <= W8R) {
			mem(m, sizeof(m), W8R);
			snprintf(p, len, "%s %s, %s\n", rnd() % 2 ? "movzx" : "movsx",
				 regs[W32 + rnd() % 2][rnd() % 12], usemem ? m : sreg(W8R));
		} else {
			mem(m, sizeof(m), W16);
			snprintf(p, len, "%s %s, %s\n", rnd() % 2 ? "movzx" : "movsx",
				 regs[W32 + rnd() % 2][rnd() % 12], usemem ? m : sreg(W16));
		}
		break;
	case 9: /* imul */
		if (w <= W8R)
			w = W32;
		mem(m, sizeof(m), w);
		if (rnd() % 2)
			snprintf(p, len, "imul %s, %s\n", dreg(w), usemem ? m : sreg(w));
		else
			snprintf(p, len, "imul %s, %s, %d\n", dreg(w), usemem ? m : sreg(w),
				 (int)(int16_t)rnd());
		*taint = BT_SF | BT_ZF | BT_AF | BT_PF;
		break;
	case 10: case 11: { /* setcc, cmovcc */
		unsigned c = (unsigned)(rnd() % 16);
		for (int tries = 0; tries < 16 && (conds[c].reads & *taint); tries++)
			c = (c + 1) % 16;
		if (conds[c].reads & *taint) {
			snprintf(p, len, "nop\n");
			break;
		}
		if (kind == 10 || w <= W8R) {
			mem(m, sizeof(m), W8L);
			snprintf(p, len, "set%s %s\n", conds[c].cc,
				 usemem ? m : regs[rnd() % 2 ? W8L : W8R][rnd() % 8]);
		} else {
			snprintf(p, len, "cmov%s %s, %s\n", conds[c].cc, dreg(w), usemem ? m : sreg(w));
		}
		break;
	}
	case 12: /* bt family */
		if (w <= W16)
			w = W32 + (int)(rnd() % 2);
		mem(m, sizeof(m), w);
		if (usemem || rnd() % 2)
			snprintf(p, len, "%s %s, %u\n", (const char *[]){ "bt", "bts", "btr", "btc" }[rnd() % 4],
				 usemem ? m : dreg(w), (unsigned)(rnd() % (unsigned)bits[w]));
		else
			snprintf(p, len, "%s %s, %s\n", (const char *[]){ "bt", "bts", "btr", "btc" }[rnd() % 4],
				 dreg(w), sreg(w));
		*taint |= BT_OF | BT_SF | BT_AF | BT_PF;
		*taint &= ~(uint32_t)BT_CF;
		break;
	case 13: /* cmpxchg, xadd */
		snprintf(p, len, "%s%s %s, %s\n", usemem && rnd() % 2 ? "lock " : "",
			 rnd() % 2 ? "cmpxchg" : "xadd", o1, dreg(w));
		*taint = 0;
		break;
	case 14: /* lea */
		if (w <= W8R)
			w = W64;
		snprintf(p, len, "lea %s, [%s + %s * %u + %d]\n", dreg(w), regs[W64][rnd() % 12],
			 (const char *[]){ "r10", "r11", "r8", "rax" }[rnd() % 4], 1u << (rnd() % 4),
			 (int)(int32_t)rnd());
		break;
	case 15: /* stack */
		snprintf(p, len, "push %s\n pop %s\n", sreg(W64), dreg(W64));
		break;
	}
}

#define SEQ_BASE 0x200000ull
#define SEQ_STRIDE 0x800ull
#define SEQ_N 500
#define SEQ_LEN 24

static void test_random_diff(void)
{
	struct fx *a = diff_machine(true), *b = diff_machine(false);
	struct start *st = malloc(sizeof(*st));
	size_t cap = SEQ_N * 2048 + 4096;
	char *src = malloc(cap), one[160];
	uint32_t *taint = malloc(sizeof(uint32_t) * SEQ_N);
	int bad = 0, ran = 0;

	for (int round = 0; round < 6; round++) {
		size_t n = 0;

		rng = 0x9e3779b97f4a7c15ull + (uint64_t)round * 7919;
		for (int i = 0; i < SEQ_N; i++) {
			uint32_t t = 0;
			n += (size_t)snprintf(src + n, cap - n, "times 0x%llx - ($ - $$) db 0\n s%d:\n",
					      (unsigned long long)(i * SEQ_STRIDE), i);
			for (int k = 0; k < SEQ_LEN; k++) {
				random_insn(one, sizeof(one), &t);
				n += (size_t)snprintf(src + n, cap - n, "%s", one);
			}
			n += (size_t)snprintf(src + n, cap - n, "hlt\n");
			taint[i] = t;
		}
		fx_asm_at(a, SEQ_BASE, src);
		fx_asm_at(b, SEQ_BASE, src);
		bt_jit_flush_all(&a->cpu);
		for (int i = 0; i < SEQ_N && bad < 5; i++) {
			random_start(st);
			ran++;
			if (!run_pair(a, b, st, SEQ_BASE + (uint64_t)i * SEQ_STRIDE, taint[i], "")) {
				/* print the sequence */
				const char *q = src;
				char tag[32];
				snprintf(tag, sizeof(tag), " s%d:\n", i);
				q = strstr(src, tag);
				const char *e = q ? strstr(q, "hlt") : NULL;
				fprintf(stderr, "round %d sequence %d:\n%.*s\n", round, i,
					q && e ? (int)(e - q) : 0, q ? q : "");
				bad++;
			}
		}
	}
	printf("(%d sequences, %llu blocks) ", ran, (unsigned long long)stats(a).blocks);
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT(stats(a).blocks >= (uint64_t)ran / 2); /* some start untranslatable */
	free(taint);
	free(src);
	free(st);
	fx_free(a);
	fx_free(b);
}

/* ---- hostile code ------------------------------------------------------ */

/* Runs fn in a child; a signal there is a test failure. */
static bool in_child(void (*fn)(void *), void *arg, const char *what)
{
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		fn(arg);
		fflush(NULL);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	if (WIFSIGNALED(status)) {
		fprintf(stderr, "\n  %s: the test process died of signal %d\n", what,
			WTERMSIG(status));
		return false;
	}
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* Under AddressSanitizer a trial costs seconds (the interpreter runs most
 * of random code), so the sanitizer build runs fewer of them. */
#ifdef __SANITIZE_ADDRESS__
#define GARBAGE_TRIALS 4
#else
#define GARBAGE_TRIALS 25
#endif

static void garbage_child(void *arg)
{
	uint64_t seed = *(uint64_t *)arg;

	for (int trial = 0; trial < GARBAGE_TRIALS; trial++) {
		struct fx *f = mk(true, 0);
		rng = seed + (uint64_t)trial * 0x100000001b3ull;
		for (int i = 0; i < 4096; i++)
			f->ram[0x200000 + i] = (uint8_t)rnd();
		for (int r = 0; r < 16; r++)
			if (r != MODVM_RSP)
				f->cpu.s.gpr[r] = rnd() % 2 ? rnd() : 0x200000 + rnd() % 0x1000;
		f->cpu.s.rip = 0x200000 + rnd() % 64;
		for (int k = 0; k < 20 && !f->cpu.shutdown; k++) {
			fx_run(f, 2000);
			f->cpu.s.halted = 0;
		}
		fx_free(f);
	}
}

static void test_random_bytes(void)
{
	for (uint64_t seed = 1; seed <= 4; seed++)
		CU_ASSERT(in_child(garbage_child, &seed, "random code"));
}

/* The movzx/movsx forms whose AH..BH source sits next to an SP/ESP
 * destination: differential, in a child. */
static void hi8_child(void *arg)
{
	const char *prog = arg;
	struct fx *a = diff_machine(true), *b = diff_machine(false);
	struct start st;
	char src[256];

	rng = 77;
	snprintf(src, sizeof(src), "%s\n hlt\n", prog);
	fx_asm_at(a, 0x200000, src);
	fx_asm_at(b, 0x200000, src);
	random_start(&st);
	if (!run_pair(a, b, &st, 0x200000, 0, prog))
		_exit(1);
	_exit(0);
}

static void test_hi8_to_sp(void)
{
	CU_ASSERT(in_child(hi8_child, (void *)"movzx esp, ah\n mov r8, rsp\n mov rsp, 0x80000", "movzx esp, ah"));
	CU_ASSERT(in_child(hi8_child, (void *)"movsx sp, bh\n mov r8, rsp\n mov rsp, 0x80000", "movsx sp, bh"));
}

/* Code that rewrites its own next instruction 2000 times (the page ends
 * up left to the interpreter) and sums what it sees. */
static void test_self_rewriting_loop(void)
{
	struct fx *f = mk(true, 0);

	fx_asm(f,
		"xor ecx, ecx\n xor edx, edx\n"
		"l: mov [rel patch + 1], ecx\n"
		"patch: mov eax, 0\n add rdx, rax\n inc ecx\n cmp ecx, 2000\n jb l\n hlt");
	CU_ASSERT_EQUAL(fx_run_hlt(f), BT_EXIT_HLT);
	CU_ASSERT_EQUAL(R(f, MODVM_RDX), 1999ull * 2000 / 2);
	CU_ASSERT(stats(f).invalidations > 0);
	fx_free(f);
}

static void test_long_block(void)
{
	struct fx *f = mk(true, 0);
	char src[8192];
	size_t n = 0;

	for (int i = 0; i < 150; i++)
		n += (size_t)snprintf(src + n, sizeof(src) - n, "add rax, %d\n xor r9, rax\n", i);
	snprintf(src + n, sizeof(src) - n, "hlt\n");
	fx_asm(f, src);
	f->cpu.s.gpr[MODVM_RAX] = 0;
	f->cpu.s.gpr[MODVM_R9] = 0;
	CU_ASSERT_EQUAL(fx_run_hlt(f), BT_EXIT_HLT);
	uint64_t rax = 0, r9 = 0;
	for (int i = 0; i < 150; i++) {
		rax += (uint64_t)i;
		r9 ^= rax;
	}
	CU_ASSERT_EQUAL(R(f, MODVM_RAX), rax);
	CU_ASSERT_EQUAL(R(f, MODVM_R9), r9);
	CU_ASSERT(stats(f).insns >= 300);
	CU_ASSERT(stats(f).blocks >= 5); /* BLOCK_MAX 64 */
	fx_free(f);
}

/* An instruction across a page boundary, in a loop; the second page's
 * half of it is then rewritten; then the same with the second page not
 * present (#PF on the fetch, CR2 the second page). */
static void test_page_straddle(void)
{
	struct fx *f = mk(true, 0);
	uint64_t at = 0x2FFFC; /* mov rax, imm64: 10 bytes, 4 here, 6 after */

	fx_asm(f, "xor ecx, ecx\n xor edx, edx\n l: call 0x2fffc\n add rdx, rax\n inc ecx\n"
		  "cmp ecx, 40\n jb l\n mov byte [0x30005], 0x10\n call 0x2fffc\n hlt");
	fx_asm_at(f, at, "mov rax, 0x0000000300000002\n ret");
	f->cpu.s.rip = FX_CODE;
	CU_ASSERT_EQUAL(fx_run_hlt(f), BT_EXIT_HLT);
	CU_ASSERT_EQUAL(R(f, MODVM_RDX), 40 * 0x0000000300000002ull);
	CU_ASSERT_EQUAL(R(f, MODVM_RAX), 0x1000000300000002ull);
	fx_free(f);

	/* the second page not present: 4 KiB pages for the first 2 MiB */
	f = mk(true, 0);
	uint64_t pt = 0x110000;
	for (int i = 0; i < 512; i++)
		fx_set64(f, pt + 8 * (uint64_t)i, ((uint64_t)i << 12) | 3);
	fx_set64(f, pt + 8 * 0x30, 0);
	fx_set64(f, FX_PT + 0x2000, pt | 3);
	bt_tlb_flush(&f->cpu, true);
	fx_asm(f, "mov rbx, 7\n jmp 0x2fff0");
	fx_asm_at(f, 0x2FFF0, "inc rbx\n inc rbx\n nop\n nop\n nop\n nop\n nop\n nop\n nop\n nop\n"
		  "mov rax, 0x1122334455667788");
	f->cpu.s.rip = FX_CODE;
	CU_ASSERT_EQUAL(fx_run_hlt(f), BT_EXIT_HLT);
	CU_ASSERT_EQUAL(fx_vector(f), 14);
	CU_ASSERT_EQUAL(f->cpu.s.cr2, 0x30000);
	CU_ASSERT_EQUAL(frame(f, 0), 0x10); /* instruction fetch, not present */
	CU_ASSERT_EQUAL(frame(f, 1), 0x2FFF0 + 6 + 8);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 9);
	fx_free(f);
	/* the second page remapped (INVLPG): the instruction's new bytes */
	f = mk(true, 0);
	for (int i = 0; i < 512; i++)
		fx_set64(f, pt + 8 * (uint64_t)i, ((uint64_t)i << 12) | 3);
	fx_set64(f, FX_PT + 0x2000, pt | 3);
	bt_tlb_flush(&f->cpu, true);
	fx_asm_at(f, 0x2FFFC, "mov rax, 0x0000000300000002\n ret");
	/* page 0x31000 holds the tail of another immediate (0x44 in its top byte) */
	memcpy(f->ram + 0x31000, f->ram + 0x30000, 16);
	f->ram[0x31005] = 0x44;
	fx_asm(f, "xor ecx, ecx\n l: call 0x2fffc\n inc ecx\n cmp ecx, 20\n jb l\n mov rdx, rax\n"
		  "mov qword [0x110000 + 8 * 0x30], 0x31003\n invlpg [0x30000]\n call 0x2fffc\n hlt");
	CU_ASSERT_EQUAL(fx_run_hlt(f), BT_EXIT_HLT);
	CU_ASSERT_EQUAL(R(f, MODVM_RDX), 0x0000000300000002ull);
	CU_ASSERT_EQUAL(R(f, MODVM_RAX), 0x4400000300000002ull);
	CU_ASSERT(stats(f).blocks > 0);
	fx_free(f);
}

/* A block ending at the last byte of RAM; then code running off the end
 * (what the unbacked page holds decides; both engines must agree). */
static void test_end_of_ram(void)
{
	struct fx *a = mk(true, 0), *b = mk(false, 0);

	for (int k = 0; k < 2; k++) {
		struct fx *f = k ? b : a;
		fx_asm_at(f, FX_RAM - 16, "mov rax, 0x55\n add rax, rbx\n inc rcx\n times 15 - ($ - $$) nop\n hlt");
		f->cpu.s.rip = FX_RAM - 16;
		f->cpu.s.gpr[MODVM_RBX] = 3;
		CU_ASSERT_EQUAL(fx_run_hlt(f), BT_EXIT_HLT);
		CU_ASSERT_EQUAL(R(f, MODVM_RAX), 0x58);
		CU_ASSERT_EQUAL(f->cpu.s.rip, FX_RAM);
		/* and off the end */
		memset(f->ram + FX_RAM - 8, 0x90, 8);
		f->ram[FX_RAM - 9] = 0x90;
		f->cpu.s.rip = FX_RAM - 8;
		f->cpu.s.halted = 0;
		fx_run(f, 1000);
	}
	CU_ASSERT_EQUAL(a->cpu.s.rip, b->cpu.s.rip);
	CU_ASSERT_EQUAL(fx_vector(a), fx_vector(b));
	CU_ASSERT_EQUAL(a->cpu.s.halted, b->cpu.s.halted);
	CU_ASSERT(stats(a).blocks > 0);
	fx_free(a);
	fx_free(b);
}

/* Code at one linear page whose mapping changes: after INVLPG of an edited
 * PTE and after a CR3 write, the new mapping's code runs, reached through
 * the jump cache (CALL r64, RET) and through a chained direct jump. */
static void test_remap_code(void)
{
	struct fx *f = mk(true, 0);
	uint64_t pd = FX_PT + 0x2000;

	/* linear 0x400000 -> 4 KiB page table at 0x341000 -> 0x342000 (A) */
	memset(f->ram + 0x341000, 0, 0x1000);
	fx_set64(f, 0x341000, 0x342000 | 3);
	fx_set64(f, pd + 8 * 2, 0x341000 | 7);
	/* a second set of tables: the same, with 0x400000 -> A again */
	memcpy(f->ram + 0x344000, f->ram + FX_PT, 0x1000);
	memcpy(f->ram + 0x345000, f->ram + FX_PT + 0x1000, 0x1000);
	memcpy(f->ram + 0x346000, f->ram + pd, 0x1000);
	fx_set64(f, 0x344000, 0x345000 | 7);
	fx_set64(f, 0x345000, 0x346000 | 7);
	memset(f->ram + 0x347000, 0, 0x1000);
	fx_set64(f, 0x346000 + 8 * 2, 0x347000 | 7);
	fx_set64(f, 0x347000, 0x342000 | 3);
	/* the first set maps the low 4 MiB with 4 KiB pages only, so that
	 * INVLPG drops one page (INVLPG inside a cached large page flushes
	 * everything) */
	memset(f->ram + 0x348000, 0, 0x5000);
	fx_set64(f, 0x348000, 0x349000 | 7);
	fx_set64(f, 0x349000, 0x34A000 | 7);
	fx_set64(f, 0x34A000, 0x34B000 | 7);
	fx_set64(f, 0x34A000 + 8, 0x34C000 | 7);
	fx_set64(f, 0x34A000 + 16, 0x341000 | 7);
	for (int i = 0; i < 512; i++) {
		fx_set64(f, 0x34B000 + 8 * i, (uint64_t)i << 12 | 3);
		fx_set64(f, 0x34C000 + 8 * i, (0x200000 + ((uint64_t)i << 12)) | 3);
	}
	f->cpu.s.cr3 = 0x348000;
	bt_tlb_flush(&f->cpu, true);
	fx_asm_at(f, 0x342000, "mov eax, 1\n test rcx, rcx\n jz r\n jmp rcx\n r: ret");
	fx_asm_at(f, 0x343000, "mov eax, 2\n test rcx, rcx\n jz r\n jmp rcx\n r: ret");
	fx_asm_at(f, 0x200000,
		"mov rbx, 0x400000\n xor r8, r8\n mov esi, 4\n"
		"l1: xor ecx, ecx\n call rbx\n add r8, rax\n lea rcx, [rel b1]\n jmp 0x400000\n"
		"b1: add r8, rax\n dec esi\n jnz l1\n"           /* r8 = 8: A */
		"mov rax, 0x343003\n mov [0x341000], rax\n invlpg [rbx]\n"
		"xor r9, r9\n mov esi, 4\n"
		"l2: xor ecx, ecx\n call rbx\n add r9, rax\n lea rcx, [rel b2]\n jmp 0x400000\n"
		"b2: add r9, rax\n dec esi\n jnz l2\n"           /* r9 = 16: B */
		"mov rax, 0x344000\n mov cr3, rax\n xor r10, r10\n mov esi, 4\n"
		"l3: xor ecx, ecx\n call rbx\n add r10, rax\n lea rcx, [rel b3]\n jmp 0x400000\n"
		"b3: add r10, rax\n dec esi\n jnz l3\n hlt\n"); /* r10 = 8: A */
	f->cpu.s.rip = 0x200000;
	CU_ASSERT_EQUAL(fx_run_hlt(f), BT_EXIT_HLT);
	CU_ASSERT_EQUAL(fx_vector(f), -1);
	CU_ASSERT_EQUAL(R(f, MODVM_R8), 8);
	CU_ASSERT_EQUAL(R(f, MODVM_R9), 16);
	CU_ASSERT_EQUAL(R(f, MODVM_R10), 8);
	CU_ASSERT(stats(f).links > 0);
	fx_free(f);
}

/* MOV from CR, WRMSR, INVLPG and REP BSF (TZCNT's encoding, BSF on a
 * model without BMI1) run in place in the middle of a loop's block;
 * results as the interpreter's, the loop entered a few times only. */
static void test_in_place_system(void)
{
	static const char *prog =
		"xor esi, esi\n xor r12d, r12d\n xor r13d, r13d\n mov r14d, 77\n"
		"l: mov rax, cr0\n add r12, rax\n mov rax, cr4\n add r12, rax\n"
		"mov ecx, 0xC0000102\n mov eax, esi\n xor edx, edx\n wrmsr\n"
		"mov rbx, 0x40000000000\n invlpg [rbx]\n"
		"mov edx, esi\n and edx, 6\n rep bsf r14d, edx\n add r13, r14\n"
		"inc esi\n cmp esi, 1000\n jb l\n"
		"mov ecx, 0xC0000102\n rdmsr\n hlt";
	struct fx *t = mk(true, 0), *i = mk(false, 0);

	run_both(t, i, prog);
	CU_ASSERT_EQUAL(fx_vector(t), -1);
	CU_ASSERT_EQUAL(R(t, MODVM_RAX), 999);
	CU_ASSERT(stats(t).in_place >= 5000);
	/* INVLPG ends the block after it (a TLB flush): one entry each */
	CU_ASSERT(stats(t).enters < 2100);
	fx_free(t);
	fx_free(i);
}

/* INVLPG inside a cached 2 MiB page drops every 4 KiB piece of it (SDM
 * 3A 4.10.4.1): a read through another piece sees the new mapping. */
static void test_invlpg_large_page(void)
{
	struct fx *f = mk(true, 0);

	fx_set64(f, 0x205000, 0x1111);
	fx_set64(f, 0x005000, 0x2222);
	fx_asm(f,
		"mov rax, [0x205000]\n"
		"mov qword [0x102000 + 8 * 1], 0x000087\n" /* PDE 1: 0x200000 -> 0 */
		"invlpg [0x200000]\n"
		"mov rdx, [0x205000]\n hlt");
	CU_ASSERT_EQUAL(fx_run_hlt(f), BT_EXIT_HLT);
	CU_ASSERT_EQUAL(R(f, MODVM_RAX), 0x1111);
	CU_ASSERT_EQUAL(R(f, MODVM_RDX), 0x2222);
	fx_free(f);
}

/* INVLPG of an address outside every cached large page (Linux flushing
 * a user page while its kernel runs on 2 MiB pages) drops one entry:
 * the translator's links between the loop's two pages survive it. */
static void test_invlpg_elsewhere_keeps_links(void)
{
	struct fx *f = mk(true, 0);

	fx_asm(f,
		"mov esi, 1000\n mov rbx, 0x40000000000\n"
		"l: invlpg [rbx]\n jmp p2\n"
		"align 4096\n p2: dec esi\n jnz l\n hlt");
	CU_ASSERT_EQUAL(fx_run_hlt(f), BT_EXIT_HLT);
	CU_ASSERT_EQUAL(R(f, MODVM_RSI), 0);
	CU_ASSERT(stats(f).links < 100);
	fx_free(f);
}

/* A page rewritten in a burst is interpreted for a while, then translated
 * again (a kernel patching its text at boot must not leave it interpreted
 * for good). */
static void test_rewritten_page_comes_back(void)
{
	struct fx *f = mk(true, 0);
	uint64_t blocks;

	/* the rewriting loop at FX_CODE, a plain loop on the same page at
	 * FX_CODE + 0x800 */
	fx_asm(f,
		"xor ecx, ecx\n xor edx, edx\n"
		"l: mov [rel patch + 1], ecx\n"
		"patch: mov eax, 0\n add rdx, rax\n inc ecx\n cmp ecx, 200\n jb l\n hlt\n"
		"times 0x800 - ($ - $$) db 0x90\n"
		"xor ecx, ecx\n l2: add rdx, rcx\n inc ecx\n cmp ecx, 1000\n jb l2\n hlt\n");
	struct timespec t0, t1;

	CU_ASSERT_EQUAL(fx_run_hlt(f), BT_EXIT_HLT);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CU_ASSERT_EQUAL(stats(f).interp_pages, 1);
	/* during the cool-down (50 ms) the loop on that page is interpreted */
	blocks = stats(f).blocks;
	f->cpu.s.rip = FX_CODE + 0x800;
	f->cpu.s.halted = 0;
	CU_ASSERT_EQUAL(fx_run_hlt(f), BT_EXIT_HLT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if ((t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec) < 25000000L) {
		CU_ASSERT_EQUAL(stats(f).blocks, blocks);
	} else { /* descheduled past the cool-down: nothing to conclude */
		printf("(cool-down check not made: the host was too slow) ");
	}
	/* after it, translated again */
	sleep_ms(150);
	f->cpu.s.rip = FX_CODE + 0x800;
	f->cpu.s.halted = 0;
	CU_ASSERT_EQUAL(fx_run_hlt(f), BT_EXIT_HLT);
	CU_ASSERT(stats(f).blocks > blocks);
	CU_ASSERT_EQUAL(R(f, MODVM_RCX), 1000);
	fx_free(f);
}

/* ---- 16- and 32-bit code ----------------------------------------------- */

/* Segmented programs run translated and interpreted from the same random
 * state; everything (registers, flags, RIP, all of RAM, the vector of any
 * exception) must match. The segments are set up to reach every path of
 * the inline segment check: DS and ES with a base and (32-bit) a 64 KiB
 * limit, FS read-only, GS expand-down (always left to the interpreter). */
#define SDATA 0x20000ull       /* DS/ES base */
#define CODE16 0x4000ull       /* 16-bit protected mode: code (CS base 0, 64K limit) */

/* where a segmented machine's program goes (linear) and its first EIP */
static uint64_t seg_code(const struct fx *f)
{
	return f->cpu.pm && f->cpu.mode == BT_MODE16 ? CODE16 : FX_CODE;
}

static uint64_t seg_eip(const struct fx *f)
{
	return f->cpu.pm ? seg_code(f) : 0;
}

/* compatibility mode: 32-bit code under long mode (4-level paging on) */
#define SEG_COMPAT ((enum fx_mode)100)

static struct fx *seg_machine(enum fx_mode mode, bool jit)
{
	struct fx *f;
	struct modvm_cpu_state *s;
	char why[256];
	bool compat = mode == SEG_COMPAT;

	if (compat)
		mode = FX_LONG64;
	setenv("BT_MODE", "interpret", 1);
	f = fx_new(mode);
	setenv("BT_MODE", "translate", 1);
	fx_idt(f);
	if (jit && bt_jit_create(&f->cpu, FX_JIT_CACHE, why, sizeof(why))) {
		fprintf(stderr, "bt_jit_create: %s\n", why);
		abort();
	}
	s = &f->cpu.s;
	if (mode == FX_REAL) {
		bt_seg_real(&s->seg[BT_DS], SDATA >> 4);
		bt_seg_real(&s->seg[BT_ES], (SDATA + 0x10000) >> 4);
	} else {
		s->seg[BT_DS].base = SDATA;
		s->seg[BT_DS].limit = 0xFFFF;
		s->seg[BT_ES].base = SDATA + 0x10000;
		s->seg[BT_FS].base = SDATA + 0x20000;
		s->seg[BT_FS].limit = 0xFFF;
		s->seg[BT_FS].type = 1;            /* read-only data */
		s->seg[BT_GS].base = SDATA + 0x30000;
		s->seg[BT_GS].limit = 0x7FFF;
		s->seg[BT_GS].type = 7;            /* expand-down */
		s->seg[BT_GS].db = 0;
		if (mode == FX_PROT16)
			s->gpr[MODVM_RSP] = 0xF000; /* a flat 32-bit stack */
		if (compat) {
			s->seg[BT_CS].selector = 0x08;
			s->seg[BT_CS].l = 0;
			s->seg[BT_CS].db = 1;
		}
	}
	bt_cpu_set_state(&f->cpu, s);
	return f;
}

/* the state seg_machine made, for every run (a fault changes CS, SS, SP) */
static void seg_start(struct fx *f, const struct modvm_cpu_state *init, uint64_t seed,
		      uint64_t rip)
{
	struct modvm_cpu_state *s = &f->cpu.s;

	*s = *init;
	bt_cpu_set_state(&f->cpu, s);
	rng = seed;
	for (int r = 0; r < 16; r++)
		if (r != MODVM_RSP)
			s->gpr[r] = rnd();
	/* offsets within DS's 64 KiB (the upper halves must not matter) */
	s->gpr[MODVM_RSI] = (s->gpr[MODVM_RSI] & ~0xFFFFFFFFull) | (rnd() & 0x3FF0);
	s->gpr[MODVM_RDI] = (s->gpr[MODVM_RDI] & ~0xFFFFFFFFull) | (rnd() & 0x3FF0);
	s->gpr[MODVM_RBX] = (s->gpr[MODVM_RBX] & ~0xFFFFFFFFull) | (rnd() & 0x3FF0);
	s->gpr[MODVM_RCX] = rnd() % 64;
	/* BP addresses the stack segment */
	s->gpr[MODVM_RBP] = f->cpu.mode == BT_MODE32 ? FX_STACK - 0x100
						   : 0x8000 + (rnd() & 0x3FFE);
	s->rflags = 2 | (rnd() & FL);
	s->rip = rip;
	s->halted = 0;
	for (unsigned i = 0; i < 0x40000; i++)
		f->ram[SDATA + i] = (uint8_t)rnd();
}

static bool seg_pair(struct fx *a, struct fx *b, const struct modvm_cpu_state *init,
		     uint64_t seed, const char *what, int want_vector)
{
	bool ok = true;

	seg_start(a, init, seed, seg_eip(a));
	seg_start(b, init, seed, seg_eip(b));
	fx_run(a, 100000);
	fx_run(b, 100000);
	for (int r = 0; r < 16; r++)
		if (R(a, r) != R(b, r)) {
			fprintf(stderr, "\n  %s: translated 0x%llx, interpreted 0x%llx", gpr_names[r],
				(unsigned long long)R(a, r), (unsigned long long)R(b, r));
			ok = false;
		}
	if (a->cpu.s.rip != b->cpu.s.rip || ((a->cpu.s.rflags ^ b->cpu.s.rflags) & (FL | BT_IF))) {
		fprintf(stderr, "\n  rip/flags: translated 0x%llx/0x%llx, interpreted 0x%llx/0x%llx",
			(unsigned long long)a->cpu.s.rip, (unsigned long long)a->cpu.s.rflags,
			(unsigned long long)b->cpu.s.rip, (unsigned long long)b->cpu.s.rflags);
		ok = false;
	}
	for (uint64_t i = 0; i < FX_RAM; i++)
		if (a->ram[i] != b->ram[i]) {
			fprintf(stderr, "\n  memory at 0x%llx: translated 0x%02x, interpreted 0x%02x",
				(unsigned long long)i, a->ram[i], b->ram[i]);
			ok = false;
			break;
		}
	if (fx_vector(a) != fx_vector(b) || fx_vector(a) != want_vector) {
		fprintf(stderr, "\n  vector: translated %d, interpreted %d, expected %d",
			fx_vector(a), fx_vector(b), want_vector);
		ok = false;
	}
	if (!ok) {
		uint64_t sp = a->cpu.s.seg[BT_SS].base + (a->cpu.s.gpr[MODVM_RSP] & 0xFFFFFFFFull);
		fprintf(stderr, "\n  stack of the translated run: %08x %08x %08x",
			fx_mem32(a, sp), fx_mem32(a, sp + 4), fx_mem32(a, sp + 8));
		fprintf(stderr, "\n  in (seed %llu):\n%s\n", (unsigned long long)seed, what);
	}
	return ok;
}


/* ---- instructions interpreted inside a block ------------------------ */

/* REP STOSB (run by the interpreter from inside the block) rewrites the
 * immediate of the instruction after it: the new value must be seen, in
 * the same block as in a later one. */
static void test_in_place_smc(void)
{
	struct fx *f = mk(true, 0);

	fx_asm(f,
		"xor edx, edx\n xor ebx, ebx\n"
		"l: lea rdi, [rel patch + 1]\n lea eax, [rbx + 7]\n mov ecx, 1\n"
		"rep stosb\n"
		"patch: mov eax, 3\n add edx, eax\n inc ebx\n cmp ebx, 3\n jb l\n hlt");
	CU_ASSERT_EQUAL(fx_run_hlt(f), BT_EXIT_HLT);
	CU_ASSERT_EQUAL(R(f, MODVM_RDX), 7 + 8 + 9);
	CU_ASSERT(stats(f).in_place > 0);
	fx_free(f);
}

/* DIV, CPUID and a string move in the middle of a loop's block: the
 * interpreter runs them and the block goes on, so the loop enters the
 * translated code a few times, not once per instruction; and the result
 * is the interpreter's. */
static void test_in_place_continues(void)
{
	static const char *prog =
		"xor esi, esi\n xor r12d, r12d\n xor r13d, r13d\n"
		"l: mov eax, esi\n xor edx, edx\n mov ecx, 7\n div ecx\n"
		"add r12, rdx\n push rax\n mov eax, 1\n xor ecx, ecx\n cpuid\n pop rax\n"
		"lea rsi, [rel src]\n lea rdi, [rel dst]\n mov ecx, 8\n cld\n rep movsb\n"
		"mov esi, eax\n imul esi, esi, 7\n add esi, 1\n inc r13d\n"
		"cmp r13d, 1000\n jb l\n hlt\n"
		"align 4096\n src: db 1, 2, 3, 4, 5, 6, 7, 8\n dst: dq 0"; /* not on the code page */
	struct fx *t = mk(true, 0), *i = mk(false, 0);

	run_both(t, i, prog);
	CU_ASSERT(stats(t).in_place >= 4000);
	CU_ASSERT(stats(t).in_place_exits < 10);
	CU_ASSERT(stats(t).enters < 200);
	fx_free(t);
	fx_free(i);
}

/* Data written next to code on its page (a counter after a loop, as in
 * small programs and a kernel patching alternatives beside code that
 * runs): the loop's blocks stay translated, each write is checked
 * against the bytes they were made from, nothing is invalidated. */
static void test_data_beside_code(void)
{
	struct fx *f = mk(true, 0);

	fx_asm(f,
		"xor ebx, ebx\n"
		"l: add dword [rel counter], 3\n mov [rel last], ebx\n"
		"inc ebx\n cmp ebx, 20000\n jb l\n"
		"mov eax, [rel counter]\n mov edx, [rel last]\n hlt\n"
		"counter: dd 0\n last: dd 0");
	CU_ASSERT_EQUAL(fx_run_hlt(f), BT_EXIT_HLT);
	CU_ASSERT_EQUAL(R(f, MODVM_RAX), 60000);
	CU_ASSERT_EQUAL(R(f, MODVM_RDX), 19999);
	CU_ASSERT_EQUAL(stats(f).invalidations, 0);
	CU_ASSERT(stats(f).code_writes_kept >= 40000);
	CU_ASSERT(stats(f).enters < 100);
	fx_free(f);
}

/* A write into the middle of a block that ran (an immediate in a called
 * function, after two other instructions of its block) drops that block,
 * and only that one: the caller's loop on the same page stays. */
static void test_write_mid_block(void)
{
	struct fx *t = mk(true, 0), *i = mk(false, 0);
	static const char *prog =
		"xor edx, edx\n xor ebx, ebx\n"
		"l: call f\n inc byte [rel imm]\n inc ebx\n cmp ebx, 50\n jb l\n hlt\n"
		"f: nop\n nop\n db 0x83, 0xC2\n imm: db 1\n ret";

	run_both(t, i, prog);
	CU_ASSERT_EQUAL(R(t, MODVM_RDX), 50 * 51 / 2);
	/* f's block is made again after each write (until the page is left
	 * to the interpreter for being written too often); the loop's blocks
	 * are made once */
	CU_ASSERT(stats(t).invalidations >= 30);
	CU_ASSERT(stats(t).blocks < stats(t).invalidations + 10);
	fx_free(t);
	fx_free(i);
}

/* An instruction that crosses into the next page, patched in its bytes
 * on that page: its block (made from both pages) is dropped; a write to
 * data after the RET that follows it leaves both blocks. */
static void test_write_crossing_insn(void)
{
	struct fx *t = mk(true, 0), *i = mk(false, 0);
	static const char *prog =
		"xor edx, edx\n xor ebx, ebx\n"
		"l: call f\n add edx, eax\n inc byte [rel f + 3]\n inc dword [rel farv]\n"
		"inc ebx\n cmp ebx, 20\n jb l\n hlt\n"
		"times 4094 - ($ - $$) db 0xCC\n"
		"f: mov eax, 0\n ret\n farv: dd 0";

	run_both(t, i, prog);
	/* eax = 0x10000 * (calls before): 0 + 1 + ... + 19 */
	CU_ASSERT_EQUAL(R(t, MODVM_RDX), 0x10000ull * (19 * 20 / 2));
	CU_ASSERT(stats(t).code_writes_kept >= 19);
	fx_free(t);
	fx_free(i);
}

/* each ends with HLT (vector -1) unless it names a fault */
static const struct { const char *src; int vector; } prog32[] = {
	{ "mov eax, [esi + ecx*4 + 8]\n add [edi + 4], eax\n sub edx, [ebx]\n inc eax\n dec edx\n"
	  "inc esp\n dec esp\n db 0x82, 0xC0, 0x05\n add ax, [esi + 2]\n adc word [edi + 6], 0x1234\n"
	  "movzx edx, byte [esi + 1]\n movsx eax, word [edi + ecx*2]\n lea edx, [eax + ebx*2 + 7]\n"
	  "lea dx, [esi + 3]\n imul eax, [esi + 0x10], 3\n shl dword [edi + 0x20], 3\n setc [esi + 0x30]\n"
	  "cmovz eax, [edi]\n xchg [esi + 0x40], edx\n lock xadd [edi + 0x44], eax\n bt dword [esi], 5\n"
	  "es mov eax, [esi + 0x100]\n es add [edi + 0x104], eax\n mov al, [fs:0x10]\n"
	  "cs mov ebx, [0x10000]\n mov ah, [ss:ebp - 4]\n mov [ebp - 8], ax\n"
	  "pushfd\n pop ecx\n sti\n nop\n cli\n add eax, ebx\n pushfd\n pop edx\n pushf\n pop ax\n"
	  "mov bx, ss\n mov ebx, ds\n lfence\n prefetcht0 [esi]\n add eax, ecx\n rdtsc\n adc edx, 0\n", -1 },
	{ "push eax\n push word 0x1234\n pop dx\n push 0x11223344\n pop ebx\n push esp\n pop ecx\n"
	  "call f1\n jmp over\n f1: push ebp\n mov ebp, esp\n sub esp, 16\n mov [ebp - 4], eax\n"
	  "mov edx, [ebp - 4]\n call f2\n leave\n ret\n f2: push 7\n call f3\n ret\n f3: ret 4\n"
	  "over: mov edx, next\n jmp edx\n next: lea eax, [l2]\n push eax\n ret\n"
	  "l2: call [cs:fptr]\n jmp done\n f4: ret\n fptr: dd f4\n done: push ax\n pop si\n", -1 },
	{ "mov ecx, 10\n xor eax, eax\n l: add eax, ecx\n push eax\n pop edx\n dec ecx\n jnz l\n", -1 },
	/* faults inside blocks: state exactly as before the instruction */
	{ "mov eax, 1\n add edx, eax\n mov ebx, [gs:0x100]\n", BT_GP },
	{ "mov eax, 2\n add edx, eax\n mov [fs:0x10], eax\n", BT_GP },
	{ "mov eax, 3\n add edx, eax\n mov ebx, [0xFFFC]\n mov ebx, [0xFFFE]\n", BT_GP },
	{ "mov eax, 4\n add edx, eax\n cs mov [0x10000], eax\n", BT_GP },
	{ "mov eax, 5\n add edx, eax\n mov ebx, [gs:0x9000]\n xor edx, edx\n div edx\n", BT_DE },
};

static const struct { const char *src; int vector; } prog16[] = {
	{ "mov ax, [bx + si + 4]\n add [bp + di - 2], ax\n sub dx, [bx]\n inc ax\n dec dx\n"
	  "inc sp\n dec sp\n db 0x82, 0xC0, 0x05\n add eax, [si + 2]\n movzx esi, si\n"
	  "mov edx, [esi + ecx*2 + 4]\n lea ax, [bx + di + 0x7fff]\n lea eax, [bx + si]\n"
	  "movzx cx, byte [si]\n movsx edx, word [di + 2]\n imul ax, [si + 6], 5\n"
	  "shl word [di + 8], 3\n setnz [si + 0x10]\n xchg [di + 0x12], ax\n lock add [si + 0x14], dx\n"
	  "es mov ax, [di + 0x20]\n cs mov ax, [0]\n mov cx, [bp + 0x10]\n cwd\n cbw\n cdq\n"
	  "pushf\n pop cx\n cli\n add ax, dx\n pushfd\n pop edx\n mov bx, cs\n mov eax, ds\n", -1 },
	{ "push ax\n push dword 0x11223344\n pop edx\n push word 0x1234\n pop bx\n push sp\n pop cx\n"
	  "call f1\n jmp over\n f1: push bp\n mov bp, sp\n sub sp, 8\n mov [bp - 2], ax\n"
	  "mov dx, [bp - 2]\n call f2\n leave\n ret\n f2: push 7\n call f3\n ret\n f3: ret 2\n"
	  "over: mov dx, next\n jmp dx\n next: lea ax, [l2]\n push ax\n ret\n"
	  "l2: call [cs:fptr]\n jmp done\n f4: ret\n fptr: dw f4\n done: call dword f5\n jmp end\n"
	  "f5: o32 ret\n end:\n", -1 },
	{ "mov cx, 10\n xor ax, ax\n l: add ax, cx\n push ax\n pop dx\n dec cx\n jnz l\n", -1 },
	{ "mov ax, 1\n add dx, ax\n mov bx, [0xFFFF]\n", BT_GP },
	{ "mov eax, 0x12345\n add dx, ax\n jmp eax\n", BT_GP },
};

static void seg_diff(enum fx_mode mode, const char *name, unsigned nprog,
		     const char *const *src, const int *vec)
{
	struct fx *a = seg_machine(mode, true), *b = seg_machine(mode, false);
	struct modvm_cpu_state *init = malloc(sizeof(*init));
	int bad = 0;

	*init = a->cpu.s;
	for (unsigned i = 0; i < nprog; i++) {
		char text[4096];

		snprintf(text, sizeof(text), "%s\n hlt\n", src[i]);
		/* a fault may have left the machines in another mode: the
		 * assembler follows the mode */
		bt_cpu_set_state(&a->cpu, init);
		bt_cpu_set_state(&b->cpu, init);
		fx_asm_at(a, seg_code(a), text);
		fx_asm_at(b, seg_code(b), text);
		for (uint64_t seed = 1; seed <= 20; seed++)
			if (!seg_pair(a, b, init, seed * 7919 + i, text, vec[i])) {
				fprintf(stderr, "  (%s)\n", name);
				bad++;
				break;
			}
	}
	CU_ASSERT_EQUAL(bad, 0);
	/* the programs ran translated, not just interpreted */
	CU_ASSERT(stats(a).blocks >= nprog);
	CU_ASSERT(stats(a).insns >= 4 * stats(a).blocks / 2);
	free(init);
	fx_free(a);
	fx_free(b);
}

static void test_segmented_diff(void)
{
	const char *s32[16], *s16[16];
	int v32[16], v16[16];
	unsigned n32 = sizeof(prog32) / sizeof(prog32[0]), n16 = sizeof(prog16) / sizeof(prog16[0]);

	for (unsigned i = 0; i < n32; i++) {
		s32[i] = prog32[i].src;
		v32[i] = prog32[i].vector;
	}
	for (unsigned i = 0; i < n16; i++) {
		s16[i] = prog16[i].src;
		v16[i] = prog16[i].vector;
	}
	seg_diff(FX_PROT32, "32-bit protected mode", n32, s32, v32);
	seg_diff(SEG_COMPAT, "compatibility mode", n32, s32, v32);
	seg_diff(FX_PROT16, "16-bit protected mode", n16, s16, v16);
	/* real mode: no segment types; the limit faults are #GP as well */
	seg_diff(FX_REAL, "real mode", n16, s16, v16);
}

/* Real mode: a 16-bit stack wraps at 64 KiB, keeps the upper half of ESP
 * and faults (#SS) on a push across the limit; CS changes between the
 * same IPs (far jumps) must not find the other segment's blocks. */
static void test_real_mode_stack_and_cs(void)
{
	static const char *const progs[] = {
		"mov esp, 0xABCD0000\n push ax\n push bx\n pop cx\n pop dx\n mov ebx, esp\n"
		"mov sp, 0xFFFE\n pop ax\n pop si\n mov edi, esp\n mov sp, 0xFFF0\n",
		"mov sp, 1\n mov ax, 5\n add dx, ax\n push ax\n",
	};
	static const int vec[] = { -1, BT_SSV };

	seg_diff(FX_REAL, "real-mode stack", 2, progs, vec);

	/* the same code bytes at IP 0 of two code segments: the second far
	 * jump must run its own segment's code (a different EIP -> linear) */
	struct fx *f = seg_machine(FX_REAL, true);
	fx_asm(f, "jmp 0x1100:0\n");
	fx_asm_at(f, 0x11000, "bits 16\n inc ax\n inc ax\n jmp 0x1200:0\n");
	fx_asm_at(f, 0x12000, "bits 16\n inc bx\n inc bx\n hlt\n");
	for (int round = 0; round < 3; round++) {
		f->cpu.s.gpr[MODVM_RAX] = 0;
		f->cpu.s.gpr[MODVM_RBX] = 0;
		bt_seg_real(&f->cpu.s.seg[BT_CS], FX_CODE >> 4);
		f->cpu.s.rip = 0;
		f->cpu.s.halted = 0;
		fx_run_hlt(f);
		CU_ASSERT_EQUAL(R(f, MODVM_RAX), 2);
		CU_ASSERT_EQUAL(R(f, MODVM_RBX), 2);
		CU_ASSERT_EQUAL(f->cpu.s.seg[BT_CS].base, 0x12000);
	}
	CU_ASSERT(stats(f).blocks >= 2);
	fx_free(f);
}

/* Hostile 16/32-bit code: random bytes in each mode, in a child. */
static void garbage_seg_child(void *arg)
{
	uint64_t seed = *(uint64_t *)arg;
	static const enum fx_mode modes[] = { FX_REAL, FX_PROT16, FX_PROT32 };

	for (int trial = 0; trial < GARBAGE_TRIALS; trial++) {
		struct fx *f = seg_machine(modes[trial % 3], true);
		rng = seed + (uint64_t)trial * 0x100000001b3ull;
		for (int i = 0; i < 4096; i++)
			f->ram[seg_code(f) + i] = (uint8_t)rnd();
		for (int r = 0; r < 16; r++)
			if (r != MODVM_RSP)
				f->cpu.s.gpr[r] = rnd() % 2 ? rnd() : rnd() % 0x10000;
		f->cpu.s.rip = seg_eip(f) + rnd() % 64;
		for (int k = 0; k < 20 && !f->cpu.shutdown; k++) {
			fx_run(f, 2000);
			f->cpu.s.halted = 0;
		}
		fx_free(f);
	}
}

static void test_random_bytes_segmented(void)
{
	for (uint64_t seed = 11; seed <= 14; seed++)
		CU_ASSERT(in_child(garbage_seg_child, &seed, "random 16/32-bit code"));
}

int main(void)
{
	static const struct test_case tests[] = {
		TEST(test_smc_same_block), TEST(test_smc_later_block),
		TEST(test_code_data_same_page), TEST(test_interp_and_dma_writes),
		TEST(test_pf_in_block), TEST(test_pf_exact_registers),
		TEST(test_gp_de_in_block), TEST(test_noncanonical_branch),
		TEST(test_interrupt_in_loop), TEST(test_cache_full),
		TEST(test_directed_diff), TEST(test_random_diff),
		TEST(test_smap_pku_agree), TEST(test_pks_agree),
		TEST(test_random_bytes), TEST(test_self_rewriting_loop),
		TEST(test_long_block), TEST(test_page_straddle), TEST(test_end_of_ram),
		TEST(test_fault_in_flag_writer), TEST(test_kick_from_thread),
		TEST(test_hi8_to_sp), TEST(test_rewritten_page_comes_back),
		TEST(test_remap_code), TEST(test_in_place_smc),
		TEST(test_in_place_continues), TEST(test_data_beside_code),
		TEST(test_write_mid_block), TEST(test_write_crossing_insn),
		TEST(test_invlpg_large_page), TEST(test_invlpg_elsewhere_keeps_links),
		TEST(test_in_place_system),
		TEST(test_segmented_diff),
		TEST(test_real_mode_stack_and_cs), TEST(test_random_bytes_segmented),
	};

	setenv("BT_MODE", "translate", 1);
	return RUN_TESTS("bt_jit", tests);
}
