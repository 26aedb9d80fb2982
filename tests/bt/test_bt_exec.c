/* cpu-bt interpreter tests on the fixture machine: integer semantics and
 * flags, string instructions, BCD, control transfers, system instructions,
 * paging and exceptions in real, protected and long mode, interrupts, and
 * the SSE2/x87 subset. Expected values are from the SDM instruction pages
 * (worked by hand) unless a comment says otherwise.
 */
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "testmain.h"

#define FL (BT_CF | BT_PF | BT_AF | BT_ZF | BT_SF | BT_OF)

static struct fx *run(enum fx_mode mode, const char *src)
{
	struct fx *f = fx_new(mode);

	fx_idt(f);
	fx_asm(f, src);
	CU_ASSERT_EQUAL(fx_run_hlt(f), BT_EXIT_HLT);
	return f;
}

static uint64_t R(struct fx *f, int r) { return fx_reg(f, r); }

static void test_alu_flags(void)
{
	/* 0x7F + 1: OF, SF, AF; 0xFF + 1: CF ZF AF PF */
	struct fx *f = run(FX_PROT32,
		"mov al, 0x7f\n add al, 1\n pushfd\n pop ebx\n"
		"mov cl, 0xff\n add cl, 1\n pushfd\n pop edx\n"
		"mov esi, 0\n sub esi, 1\n pushfd\n pop edi\n hlt");

	CU_ASSERT_EQUAL(R(f, MODVM_RAX) & 0xFF, 0x80);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX) & FL, BT_OF | BT_SF | BT_AF);
	CU_ASSERT_EQUAL(R(f, MODVM_RDX) & FL, BT_CF | BT_ZF | BT_AF | BT_PF);
	CU_ASSERT_EQUAL(R(f, MODVM_RSI), 0xFFFFFFFF);
	CU_ASSERT_EQUAL(R(f, MODVM_RDI) & FL, BT_CF | BT_SF | BT_AF | BT_PF);
	fx_free(f);
	/* ADC/SBB use CF; INC/DEC keep it; NEG sets CF for non-zero */
	f = run(FX_PROT32,
		"stc\n mov eax, 1\n adc eax, 1\n"          /* 3 */
		"stc\n mov ebx, 5\n sbb ebx, 2\n"          /* 2 */
		"stc\n inc ecx\n setc dl\n"                /* CF kept */
		"mov esi, 5\n neg esi\n setc dh\n"
		"xor edi, edi\n neg edi\n setc ch\n hlt");
	CU_ASSERT_EQUAL(R(f, MODVM_RAX), 3);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 2);
	CU_ASSERT_EQUAL(R(f, MODVM_RDX) & 0xFFFF, 0x0101);
	CU_ASSERT_EQUAL(R(f, MODVM_RSI), 0xFFFFFFFB);
	CU_ASSERT_EQUAL((R(f, MODVM_RCX) >> 8) & 0xFF, 0);
	fx_free(f);
}

static void test_alu_64(void)
{
	struct fx *f = run(FX_LONG64,
		"mov rax, -1\n mov eax, 5\n"                    /* zero-extends */
		"mov rbx, 0x8000000000000000\n sub rbx, 1\n pushfq\n pop rcx\n"
		"mov rdx, -1\n mov dx, 7\n"                     /* merges */
		"mov r8, 0x1122334455667788\n bswap r8\n"
		"mov r9d, -1\n movsxd r10, r9d\n movzx r11, r9w\n hlt");

	CU_ASSERT_EQUAL(R(f, MODVM_RAX), 5);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0x7FFFFFFFFFFFFFFFull);
	CU_ASSERT_EQUAL(R(f, MODVM_RCX) & FL, BT_OF | BT_AF | BT_PF);
	CU_ASSERT_EQUAL(R(f, MODVM_RDX), 0xFFFFFFFFFFFF0007ull);
	CU_ASSERT_EQUAL(R(f, MODVM_R8), 0x8877665544332211ull);
	CU_ASSERT_EQUAL(R(f, MODVM_R10), ~0ull);
	CU_ASSERT_EQUAL(R(f, MODVM_R11), 0xFFFF);
	fx_free(f);
}

static void test_shifts(void)
{
	/* count masking: shl eax, 33 shifts by 1; 8-bit rcl by 9 is mod 9 */
	struct fx *f = run(FX_PROT32,
		"mov eax, 0x40000001\n mov cl, 33\n shl eax, cl\n pushfd\n pop ebx\n"
		"mov dl, 0x81\n clc\n rcl dl, 9\n setc dh\n"     /* rotate by 0 */
		"mov esi, 0x80000000\n sar esi, 31\n"
		"mov edi, 0x12345678\n rol edi, 8\n hlt");

	CU_ASSERT_EQUAL(R(f, MODVM_RAX), 0x80000002);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX) & (BT_CF | BT_OF), BT_OF);
	CU_ASSERT_EQUAL(R(f, MODVM_RDX) & 0xFFFF, 0x0081);
	CU_ASSERT_EQUAL(R(f, MODVM_RSI), 0xFFFFFFFF);
	CU_ASSERT_EQUAL(R(f, MODVM_RDI), 0x34567812);
	fx_free(f);
	/* count 0 leaves flags alone; SHLD/SHRD */
	f = run(FX_PROT32,
		"mov eax, 1\n xor ecx, ecx\n stc\n shl eax, cl\n setc bl\n"
		"mov edx, 0x12345678\n mov esi, 0x9abcdef0\n shld edx, esi, 8\n"
		"mov edi, 0x12345678\n shrd edi, esi, 4\n hlt");
	CU_ASSERT_EQUAL(R(f, MODVM_RBX) & 0xFF, 1);
	CU_ASSERT_EQUAL(R(f, MODVM_RDX), 0x3456789A);
	CU_ASSERT_EQUAL(R(f, MODVM_RDI), 0x01234567);
	fx_free(f);
}

static void test_muldiv(void)
{
	struct fx *f = run(FX_PROT32,
		"mov eax, 0x80000000\n mov ecx, 4\n mul ecx\n pushfd\n pop ebx\n"
		"mov esi, eax\n mov edi, edx\n"
		"mov eax, -7\n cdq\n mov ecx, 2\n idiv ecx\n"   /* -3 rem -1 */
		"mov ebp, 3\n imul ebp, ebp, -5\n hlt");

	CU_ASSERT_EQUAL(R(f, MODVM_RSI), 0);
	CU_ASSERT_EQUAL(R(f, MODVM_RDI), 2);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX) & (BT_CF | BT_OF), BT_CF | BT_OF);
	CU_ASSERT_EQUAL(R(f, MODVM_RAX), (uint32_t)-3);
	CU_ASSERT_EQUAL(R(f, MODVM_RDX), (uint32_t)-1);
	CU_ASSERT_EQUAL(R(f, MODVM_RBP), (uint32_t)-15);
	fx_free(f);
	/* 64-bit mul into RDX:RAX */
	f = run(FX_LONG64,
		"mov rax, 0xFFFFFFFFFFFFFFFF\n mov rcx, 0xFFFFFFFFFFFFFFFF\n mul rcx\n hlt");
	CU_ASSERT_EQUAL(R(f, MODVM_RAX), 1);
	CU_ASSERT_EQUAL(R(f, MODVM_RDX), 0xFFFFFFFFFFFFFFFEull);
	fx_free(f);
}

static void test_divide_error(void)
{
	/* divide by zero and quotient overflow are #DE, a fault at the DIV */
	struct fx *f = run(FX_PROT32,
		"mov eax, 1\n xor ecx, ecx\n div ecx\n hlt");

	CU_ASSERT_EQUAL(fx_vector(f), BT_DE);
	CU_ASSERT_EQUAL(fx_mem32(f, FX_STACK - 12), FX_CODE + 7); /* EIP */
	CU_ASSERT_EQUAL(R(f, MODVM_RAX), 1);
	fx_free(f);
	f = run(FX_PROT32, "mov eax, 0x80000000\n cdq\n mov ecx, -1\n idiv ecx\n hlt");
	CU_ASSERT_EQUAL(fx_vector(f), BT_DE);
	fx_free(f);
	f = run(FX_PROT32, "mov ax, 0x1000\n mov cl, 0x10\n div cl\n hlt");
	CU_ASSERT_EQUAL(fx_vector(f), BT_DE);
	fx_free(f);
}

static void test_bcd(void)
{
	/* SDM DAA example: 0x79 + 0x35 = 0xAE -> DAA -> 0x14, CF=1 */
	struct fx *f = run(FX_PROT32,
		"mov al, 0x79\n add al, 0x35\n daa\n setc bl\n mov bh, al\n"
		"mov al, 0x35\n sub al, 0x47\n das\n setc cl\n mov ch, al\n"
		"mov ax, 0x0009\n add al, 8\n aaa\n mov si, ax\n"
		"mov al, 63\n aam\n mov di, ax\n"
		"mov ax, 0x0603\n aad\n mov bp, ax\n hlt");

	CU_ASSERT_EQUAL(R(f, MODVM_RBX) & 0xFFFF, 0x1401);
	CU_ASSERT_EQUAL(R(f, MODVM_RCX) & 0xFFFF, 0x8801);
	CU_ASSERT_EQUAL(R(f, MODVM_RSI) & 0xFFFF, 0x0107);
	CU_ASSERT_EQUAL(R(f, MODVM_RDI) & 0xFFFF, 0x0603);
	CU_ASSERT_EQUAL(R(f, MODVM_RBP) & 0xFFFF, 63);
	fx_free(f);
	f = run(FX_PROT32, "mov al, 5\n aam 0\n hlt");
	CU_ASSERT_EQUAL(fx_vector(f), BT_DE);
	fx_free(f);
}

static void test_bitops(void)
{
	struct fx *f = run(FX_PROT32,
		"mov dword [0x20000], 0\n mov ecx, 35\n bts [0x20000], ecx\n"
		"mov ecx, -1\n bts [0x20004], ecx\n"          /* bit 31 of 0x20000 */
		"mov eax, 0x100\n bsf ebx, eax\n bsr edx, eax\n"
		"mov esi, 0x55\n xor edi, edi\n bsf esi, edi\n setz ch\n"
		"mov eax, 6\n btc eax, 1\n setc cl\n hlt");

	CU_ASSERT_EQUAL(fx_mem32(f, 0x20004), 8);
	CU_ASSERT_EQUAL(fx_mem32(f, 0x20000), 0x80000000);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 8);
	CU_ASSERT_EQUAL(R(f, MODVM_RDX), 8);
	CU_ASSERT_EQUAL(R(f, MODVM_RSI), 0x55); /* source 0: unchanged */
	CU_ASSERT_EQUAL(R(f, MODVM_RCX) & 0xFFFF, 0x0101);
	CU_ASSERT_EQUAL(R(f, MODVM_RAX), 4);
	fx_free(f);
}

static void test_exchange(void)
{
	struct fx *f = run(FX_LONG64,
		"mov qword [0x20000], 5\n mov eax, 5\n mov ecx, 9\n"
		"lock cmpxchg [0x20000], ecx\n setz bl\n"
		"mov eax, 1\n cmpxchg [0x20000], ecx\n setz bh\n mov r8, rax\n"
		"mov edx, 3\n lock xadd [0x20000], edx\n mov r10, rdx\n"
		"mov qword [0x20010], 1\n mov qword [0x20018], 2\n"
		"mov eax, 1\n mov edx, 2\n mov ebx, 7\n mov ecx, 8\n"
		"cmpxchg16b [0x20010]\n setz r9b\n hlt");

	CU_ASSERT_EQUAL(R(f, MODVM_R8), 9);
	CU_ASSERT_EQUAL(R(f, MODVM_R10), 9);
	CU_ASSERT_EQUAL(fx_mem64(f, 0x20000), 12);
	CU_ASSERT_EQUAL(fx_mem64(f, 0x20010), 7);
	CU_ASSERT_EQUAL(fx_mem64(f, 0x20018), 8);
	CU_ASSERT_EQUAL(R(f, MODVM_R9) & 0xFF, 1);
	fx_free(f);
	/* LOCK on a register destination is #UD */
	f = run(FX_PROT32, "db 0xf0, 0x01, 0xc0\n hlt");
	CU_ASSERT_EQUAL(fx_vector(f), BT_UD);
	fx_free(f);
}

/* LOCKed read-modify-writes: on aligned RAM they are host compare-and-swaps
 * (exec.c, lock_atomic); misaligned, page-split and MMIO operands take the
 * mutex. Each form's result, flags and registers, both ways. */
static void test_lock_atomic(void)
{
	struct fx *f = run(FX_LONG64,
		"mov qword [0x20010], 1\n mov qword [0x20018], 2\n"
		"mov eax, 1\n mov edx, 2\n mov ebx, 7\n mov ecx, 8\n"
		"lock cmpxchg16b [0x20010]\n setz r9b\n"
		"mov eax, 1\n mov edx, 2\n lock cmpxchg16b [0x20010]\n setz r11b\n"
		"mov r12, rax\n mov r13, rdx\n"
		"mov dword [0x20030], 5\n mov dword [0x20034], 6\n"
		"mov eax, 5\n mov edx, 6\n mov ebx, 0x11\n mov ecx, 0x22\n"
		"lock cmpxchg8b [0x20030]\n setz r14b\n"
		"lock cmpxchg8b [0x20030]\n setz r15b\n mov [0x20040], eax\n mov [0x20044], edx\n"
		/* bit 67 of a qword operand: bit 3 of the next qword */
		"mov rax, 67\n lock bts qword [0x20050], rax\n setc bl\n"
		"lock btc qword [0x20050], rax\n setc bh\n"
		"mov rax, -1\n lock bts qword [0x20068], rax\n"
		/* misaligned and page-split: the mutex */
		"mov dword [0x20071], 10\n mov edx, 3\n lock xadd [0x20071], edx\n mov [0x20078], edx\n"
		"mov dword [0x20FFE], 0x100\n lock add dword [0x20FFE], 0x23\n"
		"mov rsi, 0xE0000000\n mov dword [rsi], 41\n lock inc dword [rsi]\n"
		"mov word [0x20080], 0x7FFF\n lock inc word [0x20080]\n seto cl\n"
		"mov byte [0x20090], 9\n mov dl, 4\n lock xchg [0x20090], dl\n"
		"hlt");

	CU_ASSERT_EQUAL(R(f, MODVM_R9) & 0xFF, 1);
	CU_ASSERT_EQUAL(fx_mem64(f, 0x20010), 7);
	CU_ASSERT_EQUAL(fx_mem64(f, 0x20018), 8);
	CU_ASSERT_EQUAL(R(f, MODVM_R11) & 0xFF, 0);
	CU_ASSERT_EQUAL(R(f, MODVM_R12), 7);
	CU_ASSERT_EQUAL(R(f, MODVM_R13), 8);
	CU_ASSERT_EQUAL(fx_mem32(f, 0x20030), 0x11);
	CU_ASSERT_EQUAL(fx_mem32(f, 0x20034), 0x22);
	CU_ASSERT_EQUAL(R(f, MODVM_R14) & 0xFF, 1);
	CU_ASSERT_EQUAL(R(f, MODVM_R15) & 0xFF, 0); /* EDX:EAX was 6:5 again */
	CU_ASSERT_EQUAL(fx_mem32(f, 0x20040), 0x11);
	CU_ASSERT_EQUAL(fx_mem32(f, 0x20044), 0x22);
	CU_ASSERT_EQUAL(fx_mem64(f, 0x20050), 0);
	CU_ASSERT_EQUAL(fx_mem64(f, 0x20058), 0); /* set, then complemented */
	CU_ASSERT_EQUAL(R(f, MODVM_RBX) & 0xFFFF, 0x0100); /* CF 0 then 1 */
	CU_ASSERT_EQUAL(fx_mem64(f, 0x20060), 1ull << 63); /* bit -1 */
	CU_ASSERT_EQUAL(fx_mem32(f, 0x20071), 13);
	CU_ASSERT_EQUAL(fx_mem32(f, 0x20078), 10);
	CU_ASSERT_EQUAL(fx_mem32(f, 0x20FFE), 0x123);
	CU_ASSERT_EQUAL(f->mmio[0], 42);
	CU_ASSERT_EQUAL(fx_mem32(f, 0x20080) & 0xFFFF, 0x8000);
	CU_ASSERT_EQUAL(R(f, MODVM_RCX) & 0xFF, 1);
	CU_ASSERT_EQUAL(f->ram[0x20090], 4);
	CU_ASSERT_EQUAL(R(f, MODVM_RDX) & 0xFF, 9);
	fx_free(f);
}

static void test_strings(void)
{
	struct fx *f = run(FX_PROT32,
		"mov esi, src\n mov edi, 0x30000\n mov ecx, 5\n cld\n rep movsb\n"
		"mov esi, src\n mov edi, 0x30000\n mov ecx, 5\n repe cmpsb\n"
		"mov ebx, ecx\n"
		"mov edi, 0x30100\n mov eax, 0xAB\n mov ecx, 3\n std\n rep stosb\n cld\n"
		"mov edi, src\n mov al, 'c'\n mov ecx, 10\n repne scasb\n mov edx, ecx\n"
		"hlt\n src: db 'abcde'");

	CU_ASSERT(memcmp(f->ram + 0x30000, "abcde", 5) == 0);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0);
	CU_ASSERT_EQUAL(f->ram[0x30100], 0xAB);
	CU_ASSERT_EQUAL(f->ram[0x300FE], 0xAB);
	CU_ASSERT_EQUAL(f->ram[0x300FD], 0);
	CU_ASSERT_EQUAL(R(f, MODVM_RDX), 7);
	fx_free(f);
	/* 16-bit address size: CX and SI/DI wrap at 64 KiB */
	f = run(FX_PROT32,
		"mov ecx, 0x10002\n mov esi, 0x1FFFF\n mov edi, 0x2FFFF\n"
		"a16 rep movsb\n hlt");
	CU_ASSERT_EQUAL(R(f, MODVM_RCX), 0x10000);
	CU_ASSERT_EQUAL(R(f, MODVM_RSI), 0x10001);
	CU_ASSERT_EQUAL(R(f, MODVM_RDI), 0x20001);
	fx_free(f);
}

static void test_stack_calls(void)
{
	struct fx *f = run(FX_PROT32,
		"mov esp, 0x70000\n call fn\n mov ebx, eax\n"
		"enter 8, 0\n mov ecx, esp\n leave\n mov edx, esp\n"
		"push word 0x1234\n pop si\n pushad\n popad\n hlt\n"
		"fn: mov eax, 42\n ret");

	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 42);
	CU_ASSERT_EQUAL(R(f, MODVM_RCX), 0x70000 - 4 - 8);
	CU_ASSERT_EQUAL(R(f, MODVM_RDX), 0x70000);
	CU_ASSERT_EQUAL(R(f, MODVM_RSI) & 0xFFFF, 0x1234);
	CU_ASSERT_EQUAL(R(f, MODVM_RSP), 0x70000);
	fx_free(f);
}

static void test_cpuid_tsc_msr(void)
{
	struct fx *f = fx_new(FX_PROT32);

	fx_idt(f);
	fx_asm(f, "xor eax, eax\n cpuid\n mov esi, ebx\n mov edi, edx\n mov ebp, ecx\n"
		  "mov eax, 0x80000001\n cpuid\n hlt\n rdtsc\n hlt\n"
		  "mov ecx, 0x174\n mov eax, 0x55\n xor edx, edx\n wrmsr\n"
		  "xor eax, eax\n rdmsr\n hlt\n mov ecx, 0x12345\n rdmsr\n hlt");
	f->clock = 1000;
	fx_run_hlt(f);
	CU_ASSERT_EQUAL(R(f, MODVM_RSI), 0x68747541); /* "Auth" */
	CU_ASSERT_EQUAL(R(f, MODVM_RDI), 0x69746e65);
	CU_ASSERT_EQUAL(R(f, MODVM_RBP), 0x444d4163);
	CU_ASSERT(R(f, MODVM_RDX) & (1u << 29));
	f->cpu.s.halted = 0;
	f->clock = 5000; /* TSC = 1 GHz virtual clock: ticks are ns */
	fx_run_hlt(f);
	CU_ASSERT_EQUAL(R(f, MODVM_RAX), 5000);
	f->cpu.s.halted = 0;
	fx_run_hlt(f);
	CU_ASSERT_EQUAL(R(f, MODVM_RAX), 0x55);
	CU_ASSERT_EQUAL(f->cpu.s.msr.sysenter_cs, 0x55);
	f->cpu.s.halted = 0;
	fx_run_hlt(f);
	CU_ASSERT_EQUAL(fx_vector(f), BT_GP); /* unknown MSR */
	fx_free(f);
}

static void test_io_permission(void)
{
	/* ring 3 with IOPL 0: the TSS bitmap allows ports below 0x2000 */
	struct fx *f = fx_new(FX_PROT32);

	fx_idt(f);
	f->port_in[0x60] = 0x5A;
	fx_asm(f, "push 0x23\n push 0x60000\n push 0x2\n push 0x1B\n push user\n iretd\n"
		  "user: in al, 0x60\n mov bl, al\n out 0x80, al\n"
		  "mov dx, 0x2008\n in al, dx\n hlt");
	fx_run_hlt(f);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX) & 0xFF, 0x5A);
	CU_ASSERT_EQUAL(f->nout, 1);
	CU_ASSERT_EQUAL(f->out[0].port, 0x80);
	CU_ASSERT_EQUAL(fx_vector(f), BT_GP); /* bitmap bit set for 0x2008 */
	CU_ASSERT_EQUAL(f->cpu.cpl, 0);
	fx_free(f);
}

static void test_real_mode(void)
{
	/* segment*16 addressing, INT through the IVT, 32-bit prefixes */
	struct fx *f = fx_new(FX_REAL);

	fx_idt(f);
	fx_asm(f, "mov ax, 0x2000\n mov ds, ax\n mov word [0x10], 0xBEEF\n"
		  "mov eax, 0x12345678\n mov ebx, [0x10]\n"
		  "int 0x21\n hlt");
	fx_run_hlt(f);
	CU_ASSERT_EQUAL(f->ram[0x20010], 0xEF);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX) & 0xFFFF, 0xBEEF);
	CU_ASSERT_EQUAL(fx_vector(f), 0x21);
	CU_ASSERT_EQUAL(R(f, MODVM_RSP) & 0xFFFF, 0xFFF0 - 6);
	fx_free(f);
}

static void test_a20_mask(void)
{
	/* A20 disabled (port 92h bit 1 = 0 in the fixture): real-mode
	 * FFFF:0510 = 0x100500 wraps to 0x500 (FFFF:0520 to 0x510), reads
	 * and writes, through a
	 * TLB entry made while it was enabled; enabled again, 0x100500 is
	 * itself (SDM 3A 8.7.13.4, A20M#) */
	struct fx *f = run(FX_REAL,
		"mov ax, 0xffff\n mov es, ax\n xor ax, ax\n mov ds, ax\n"
		"mov byte [es:0x510], 0x11\n mov byte [0x500], 0x22\n"
		"mov al, 0\n out 0x92, al\n"
		"mov bl, [es:0x510]\n mov byte [es:0x520], 0x33\n"
		"mov al, 2\n out 0x92, al\n"
		"mov cl, [es:0x510]\n mov dl, [es:0x520]\n mov dh, [0x510]\n hlt");

	CU_ASSERT_EQUAL(R(f, MODVM_RBX) & 0xFF, 0x22);   /* wrapped read */
	CU_ASSERT_EQUAL(R(f, MODVM_RCX) & 0xFF, 0x11);
	CU_ASSERT_EQUAL(R(f, MODVM_RDX) & 0xFFFF, 0x3300); /* wrapped write */
	CU_ASSERT_EQUAL(f->ram[0x510], 0x33);
	CU_ASSERT_EQUAL(f->ram[0x100510], 0);
	CU_ASSERT_EQUAL(f->ram[0x100500], 0x11);
	fx_free(f);
	/* protected mode, A20 off from the start: [0x100500] is 0x500 */
	f = fx_new(FX_PROT32);
	fx_idt(f);
	f->a20 = 0;
	f->ram[0x500] = 0x44;
	f->ram[0x100500] = 0x55;
	fx_asm(f, "mov al, [0x100500]\n hlt");
	fx_run_hlt(f);
	CU_ASSERT_EQUAL(R(f, MODVM_RAX) & 0xFF, 0x44);
	fx_free(f);
}

static void test_mode_switch(void)
{
	/* real mode -> protected mode via CR0.PE and a far jump */
	struct fx *f;

	f = fx_new(FX_REAL);
	fx_asm_at(f, FX_CODE + 0x100, "bits 32\n mov ax, 0x10\n mov ds, ax\n"
				       "mov ebx, 0xC0DE\n hlt");
	fx_asm(f, "o32 lgdt [cs:gdtr]\n mov eax, cr0\n or al, 1\n mov cr0, eax\n"
		  "jmp dword 0x08:0x10100\n"
		  "gdtr: dw 11*8-1\n dd 0x800\n");
	fx_run_hlt(f);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0xC0DE);
	CU_ASSERT(f->cpu.pm);
	CU_ASSERT_EQUAL(f->cpu.mode, BT_MODE32);
	CU_ASSERT_EQUAL(f->cpu.s.seg[BT_DS].selector, 0x10);
	fx_free(f);
}

static void test_segment_checks(void)
{
	/* loading a selector beyond the GDT limit: #GP(selector) */
	struct fx *f = run(FX_PROT32, "mov ax, 0x100\n mov ds, ax\n hlt");

	CU_ASSERT_EQUAL(fx_vector(f), BT_GP);
	CU_ASSERT_EQUAL(fx_mem32(f, FX_STACK - 16), 0x100); /* error code */
	fx_free(f);
	/* SS with a code selector: #GP; null DS is fine until used */
	f = run(FX_PROT32, "xor eax, eax\n mov ds, ax\n mov ebx, 1\n mov eax, [0]\n hlt");
	CU_ASSERT_EQUAL(fx_vector(f), BT_GP);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 1);
	fx_free(f);
	/* limit check on a 64 KiB data segment */
	f = run(FX_PROT32, "mov ax, 0x50\n mov es, ax\n mov eax, [es:0xFFFE]\n hlt");
	CU_ASSERT_EQUAL(fx_vector(f), BT_GP);
	fx_free(f);
}

static void test_paging_32(void)
{
	/* 32-bit paging: PD at 0x100000, PT at 0x101000 mapping 0-4 MiB,
	 * and a page at 0x400000 mapped to 0x30000 read-only for users */
	struct fx *f = fx_new(FX_PROT32);

	fx_idt(f);
	fx_set32(f, 0x100000, 0x101000 | 7);
	for (int i = 0; i < 1024; i++)
		fx_set32(f, 0x101000 + 4 * i, (uint32_t)(i << 12) | 7);
	fx_set32(f, 0x100004, 0x102000 | 7);
	fx_set32(f, 0x102000, 0x30000 | 5); /* present, user, read-only */
	fx_set32(f, 0x30000, 0x11223344);
	fx_asm(f, "mov eax, 0x100000\n mov cr3, eax\n mov eax, cr0\n"
		  "or eax, 0x80000000\n mov cr0, eax\n mov ebx, [0x400000]\n"
		  "mov dword [0x400000], 1\n"          /* CR0.WP=0: ring 0 may */
		  "mov eax, cr0\n or eax, 0x10000\n mov cr0, eax\n"
		  "mov dword [0x400004], 2\n hlt");
	fx_run_hlt(f);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0x11223344);
	CU_ASSERT_EQUAL(fx_mem32(f, 0x30000), 1);
	CU_ASSERT_EQUAL(fx_vector(f), BT_PFV);
	CU_ASSERT_EQUAL(f->cpu.s.cr2, 0x400004);
	CU_ASSERT_EQUAL(fx_mem32(f, FX_STACK - 16), 3); /* P | W, supervisor */
	/* accessed and dirty bits */
	CU_ASSERT(fx_mem32(f, 0x102000) & 0x20);
	CU_ASSERT(fx_mem32(f, 0x102000) & 0x40);
	CU_ASSERT(fx_mem32(f, 0x100004) & 0x20);
	fx_free(f);
}

static void test_paging_64_nx_user(void)
{
	/* long mode: a not-present page, an NX page, a user access to a
	 * supervisor page, each with the right error code */
	struct fx *f = fx_new(FX_LONG64);
	uint64_t pt = 0x110000;

	fx_idt(f);
	/* split the first 2 MiB into 4 KiB pages */
	for (int i = 0; i < 512; i++)
		fx_set64(f, pt + 8 * i, ((uint64_t)i << 12) | 7);
	fx_set64(f, FX_PT + 0x2000, pt | 7);
	fx_set64(f, pt + 8 * 0x40, 0);                               /* 0x40000 */
	fx_set64(f, pt + 8 * 0x41, 0x41000 | 7 | (1ull << 63));      /* NX */
	fx_asm_at(f, 0x41000, "bits 64\n hlt");
	fx_asm(f, "mov rax, [0x40008]\n hlt");
	fx_run_hlt(f);
	CU_ASSERT_EQUAL(fx_vector(f), BT_PFV);
	CU_ASSERT_EQUAL(f->cpu.s.cr2, 0x40008);
	CU_ASSERT_EQUAL(fx_mem64(f, FX_STACK - 48), 0); /* not present, read */
	fx_free(f);

	f = fx_new(FX_LONG64);
	fx_idt(f);
	for (int i = 0; i < 512; i++)
		fx_set64(f, pt + 8 * i, ((uint64_t)i << 12) | 7);
	fx_set64(f, FX_PT + 0x2000, pt | 7);
	fx_set64(f, pt + 8 * 0x41, 0x41000 | 7 | (1ull << 63));
	fx_asm(f, "mov rax, 0x41000\n jmp rax");
	fx_run_hlt(f);
	CU_ASSERT_EQUAL(fx_vector(f), BT_PFV);
	CU_ASSERT_EQUAL(f->cpu.s.cr2, 0x41000);
	CU_ASSERT_EQUAL(fx_mem64(f, FX_STACK - 48), 0x11); /* P | I/D */
	fx_free(f);
}

static void test_long_mode_rings(void)
{
	/* IRETQ to ring 3, INT 0x80 back through a DPL-3 gate onto RSP0 */
	struct fx *f = fx_new(FX_LONG64);

	fx_idt(f);
	fx_set64(f, FX_IDT + 16 * 0x80, fx_mem64(f, FX_IDT + 16 * 0x80) | (3ull << 45));
	fx_asm(f, "mov rax, rsp\n push 0x23\n push rax\n push 0x202\n push 0x33\n"
		  "lea rax, [rel user]\n push rax\n iretq\n"
		  "user: mov ebx, 3\n int 0x80\n hlt");
	fx_run_hlt(f);
	CU_ASSERT_EQUAL(fx_vector(f), 0x80);
	CU_ASSERT_EQUAL(f->cpu.cpl, 0);
	CU_ASSERT_EQUAL(R(f, MODVM_RSP), FX_STACK - 0x10000 - 40);
	CU_ASSERT_EQUAL(fx_mem64(f, FX_STACK - 0x10000 - 32), 0x33); /* CS */
	CU_ASSERT_EQUAL(fx_mem64(f, FX_STACK - 0x10000 - 8), 0x23);  /* SS */
	fx_free(f);
	/* INT from ring 3 through a DPL-0 gate: #GP(vector*8+2) */
	f = fx_new(FX_LONG64);
	fx_idt(f);
	fx_asm(f, "mov rax, rsp\n push 0x23\n push rax\n push 0x2\n push 0x33\n"
		  "lea rax, [rel user]\n push rax\n iretq\n user: int 0x40\n hlt");
	fx_run_hlt(f);
	CU_ASSERT_EQUAL(fx_vector(f), BT_GP);
	CU_ASSERT_EQUAL(fx_mem64(f, FX_STACK - 0x10000 - 48), 0x40 * 8 + 2);
	fx_free(f);
}

static void test_syscall_sysret(void)
{
	struct fx *f = fx_new(FX_LONG64);

	fx_idt(f);
	/* STAR: kernel CS 0x28 (SS 0x30), user base 0x20 (CS 0x33, SS 0x2B) */
	fx_asm(f, "mov ecx, 0xC0000081\n xor eax, eax\n mov edx, 0x00200028\n wrmsr\n"
		  "mov ecx, 0xC0000082\n lea rax, [rel kern]\n mov rdx, rax\n shr rdx, 32\n wrmsr\n"
		  "mov ecx, 0xC0000084\n mov eax, 0x200\n xor edx, edx\n wrmsr\n"
		  "lea rcx, [rel user]\n mov r11, 0x202\n o64 sysret\n"
		  "user: mov ebx, 7\n syscall\n hlt\n"
		  "kern: mov rsi, r11\n mov rdi, rcx\n hlt");
	fx_run_hlt(f);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 7);
	CU_ASSERT_EQUAL(f->cpu.cpl, 0);
	CU_ASSERT_EQUAL(f->cpu.s.seg[BT_CS].selector, 0x28);
	CU_ASSERT(R(f, MODVM_RSI) & BT_IF);          /* user flags in R11 */
	CU_ASSERT(!(f->cpu.s.rflags & BT_IF));       /* masked by SFMASK */
	fx_free(f);
}

static void test_sysenter_sysexit(void)
{
	/* SYSEXIT to ring 3 (CS = SYSENTER_CS + 16, SS + 24), SYSENTER back */
	struct fx *f = run(FX_PROT32,
		"mov ecx, 0x174\n mov eax, 0x08\n xor edx, edx\n wrmsr\n"
		"mov ecx, 0x175\n mov eax, 0x50000\n wrmsr\n"
		"mov ecx, 0x176\n mov eax, kern\n wrmsr\n"
		"mov ecx, 0x60000\n mov edx, user\n sysexit\n"
		"user: mov ebx, cs\n mov esi, esp\n sysenter\n"
		"kern: mov edi, esp\n hlt");

	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0x1B);
	CU_ASSERT_EQUAL(R(f, MODVM_RSI), 0x60000);
	CU_ASSERT_EQUAL(R(f, MODVM_RDI), 0x50000);
	CU_ASSERT_EQUAL(f->cpu.cpl, 0);
	CU_ASSERT_EQUAL(f->cpu.s.seg[BT_SS].selector, 0x10);
	CU_ASSERT_EQUAL(fx_vector(f), -1);
	fx_free(f);
}

static void test_system_misc(void)
{
	struct fx *f = run(FX_PROT32,
		"sgdt [0x20000]\n sidt [0x20010]\n"
		"mov eax, cr0\n or eax, 8\n mov cr0, eax\n smsw ebx\n clts\n smsw ecx\n"
		"mov ax, 0x10\n lar edx, ax\n lsl esi, ax\n"
		"mov ax, 0x100\n verr ax\n setz ah\n mov edi, eax\n"
		"mov eax, 0x7fffffff\n add eax, 1\n into\n hlt");

	CU_ASSERT_EQUAL(fx_mem32(f, 0x20000) & 0xFFFF, 11 * 8 - 1);
	CU_ASSERT_EQUAL(fx_mem32(f, 0x20002), FX_GDT);
	CU_ASSERT_EQUAL(fx_mem32(f, 0x20012), FX_IDT);
	CU_ASSERT(R(f, MODVM_RBX) & CR0_TS);
	CU_ASSERT(!(R(f, MODVM_RCX) & CR0_TS));
	CU_ASSERT_EQUAL(R(f, MODVM_RDX), 0x00CF9300);  /* access rights */
	CU_ASSERT_EQUAL(R(f, MODVM_RSI), 0xFFFFFFFF);  /* expanded limit */
	CU_ASSERT_EQUAL((R(f, MODVM_RDI) >> 8) & 0xFF, 0); /* beyond GDT: ZF=0 */
	CU_ASSERT_EQUAL(fx_vector(f), BT_OFV);         /* INTO with OF=1 */
	CU_ASSERT_EQUAL(fx_mem32(f, FX_STACK - 12), FX_CODE + 0x3E); /* a trap */
	fx_free(f);
}

static void test_exceptions_df_triple(void)
{
	/* #UD, #GP for a 16-byte instruction, then double and triple fault */
	struct fx *f = run(FX_PROT32, "ud2\n hlt");

	CU_ASSERT_EQUAL(fx_vector(f), BT_UD);
	fx_free(f);
	f = run(FX_PROT32, "times 15 db 0x66\n nop\n hlt");
	CU_ASSERT_EQUAL(fx_vector(f), BT_GP);
	fx_free(f);
	/* IDT limit too small for #GP: #GP during delivery -> #DF */
	f = fx_new(FX_PROT32);
	fx_idt(f);
	f->cpu.s.idt.limit = 9 * 8 - 1;
	fx_asm(f, "mov ax, 0x100\n mov ds, ax\n hlt");
	fx_run_hlt(f);
	CU_ASSERT_EQUAL(fx_vector(f), BT_DFV);
	fx_free(f);
	/* no usable IDT at all: triple fault -> shutdown */
	f = fx_new(FX_PROT32);
	f->cpu.s.idt.limit = 0;
	fx_asm(f, "ud2");
	CU_ASSERT_EQUAL(fx_run_hlt(f), BT_EXIT_SHUTDOWN);
	fx_free(f);
}

static void test_interrupts_shadow(void)
{
	struct fx *f = fx_new(FX_PROT32);

	fx_idt(f);
	fx_asm(f, "cli\n mov edx, 3\n nop\n sti\n mov ebx, 1\n mov ecx, 2\n hlt");
	f->intr = true;
	f->intr_vec = 0x30;
	/* IF=0: nothing taken (EDX set); after STI one more instruction runs
	 * first (EBX set), then the interrupt (ECX not set). Checked on the
	 * final state only: under the translator a budget unit is a block. */
	fx_run_hlt(f);
	CU_ASSERT_EQUAL(f->intr_acks, 1);
	CU_ASSERT_EQUAL(fx_vector(f), 0x30);
	CU_ASSERT_EQUAL(R(f, MODVM_RDX), 3);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 1); /* the shadow's instruction ran */
	CU_ASSERT_EQUAL(R(f, MODVM_RCX), 0); /* taken before mov ecx */
	fx_free(f);
	/* HLT with IF=1 wakes on the interrupt */
	f = fx_new(FX_PROT32);
	fx_idt(f);
	fx_asm(f, "sti\n hlt\n mov ebx, 5\n hlt");
	CU_ASSERT_EQUAL(fx_run_hlt(f), BT_EXIT_HLT);
	CU_ASSERT_EQUAL(fx_run(f, 10), BT_EXIT_HLT); /* still halted */
	f->intr = true;
	f->intr_vec = 0x31;
	fx_run_hlt(f);
	CU_ASSERT_EQUAL(fx_vector(f), 0x31);
	fx_free(f);
}

static void test_single_step(void)
{
	struct fx *f = run(FX_PROT32,
		"pushfd\n or dword [esp], 0x100\n popfd\n mov ebx, 1\n mov ecx, 2\n hlt");

	CU_ASSERT_EQUAL(fx_vector(f), BT_DB);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 1);  /* trap after the first one */
	CU_ASSERT_EQUAL(R(f, MODVM_RCX), 0);
	CU_ASSERT(f->cpu.s.dr6 & (1u << 14)); /* DR6.BS */
	fx_free(f);
}

static void test_debug_registers(void)
{
	/* DR0: execute breakpoint at `target` (a fault: EBX not yet set),
	 * DR1: data write breakpoint on 0x20000 (a trap: the store is done) */
	struct fx *f = run(FX_PROT32,
		"mov eax, target\n mov dr0, eax\n mov eax, 0x401\n mov dr7, eax\n"
		"nop\n target: mov ebx, 1\n hlt");

	CU_ASSERT_EQUAL(fx_vector(f), BT_DB);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0);
	CU_ASSERT_EQUAL(f->cpu.s.dr6 & 0xF, 1);
	fx_free(f);
	f = run(FX_PROT32,
		"mov eax, 0x20002\n mov dr1, eax\n mov eax, 0x00D00404\n mov dr7, eax\n"
		"mov ecx, [0x20000]\n mov dword [0x20000], 7\n mov ebx, 1\n hlt");
	CU_ASSERT_EQUAL(fx_vector(f), BT_DB);
	CU_ASSERT_EQUAL(fx_mem32(f, 0x20000), 7);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0);
	CU_ASSERT_EQUAL(f->cpu.s.dr6 & 0xF, 2);
	fx_free(f);
}

static void test_task_switch(void)
{
	/* CALL to a TSS descriptor runs task 2, whose IRET (NT set) returns */
	struct fx *f = fx_new(FX_PROT32);
	uint64_t tss2 = 0x2400;

	fx_idt(f);
	f->cpu.s.gdt.limit = 12 * 8 - 1;
	fx_set64(f, FX_GDT + 0x58, 0x0000890024000067ull); /* TSS at 0x2400 */
	f->ram[FX_GDT + 0x40 + 5] = 0x8B;                   /* ours: busy */
	fx_asm_at(f, FX_CODE + 0x200, "bits 32\n mov ebx, 0x77\n pushfd\n pop esi\n iretd\n");
	fx_set32(f, tss2 + 0x20, FX_CODE + 0x200);
	fx_set32(f, tss2 + 0x24, 2);
	fx_set32(f, tss2 + 0x38, 0x60000);
	for (int i = 0; i < 6; i++)
		fx_set32(f, tss2 + 0x48 + 4 * i, i == 1 ? 0x08 : 0x10);
	fx_asm(f, "call 0x58:0\n mov ecx, 1\n str ax\n hlt");
	fx_run_hlt(f);
	CU_ASSERT_EQUAL(fx_vector(f), -1);
	/* task 2's registers were saved in its TSS by its IRET */
	CU_ASSERT_EQUAL(fx_mem32(f, tss2 + 0x34), 0x77);       /* EBX */
	CU_ASSERT(fx_mem32(f, tss2 + 0x40) & BT_NT);          /* ESI: nested */
	CU_ASSERT_EQUAL(R(f, MODVM_RCX), 1);
	CU_ASSERT_EQUAL(R(f, MODVM_RAX) & 0xFFFF, 0x40);
	CU_ASSERT_EQUAL(fx_mem32(f, tss2) & 0xFFFF, 0x40); /* back link */
	CU_ASSERT_EQUAL(f->ram[FX_GDT + 0x58 + 5] & 2, 0); /* not busy again */
	CU_ASSERT(!(f->cpu.s.rflags & BT_NT));
	CU_ASSERT(f->cpu.s.cr0 & CR0_TS);
	fx_free(f);
}

static void test_task_switch16(void)
{
	/* CALL to a 16-bit (286) TSS, type 1: the task runs, its IRETD with
	 * NT returns through the back link; its state is saved in the 16-bit
	 * layout (IP 0Eh, FLAGS 10h, BX 18h, SI 1Eh, ES..DS 22h-28h) */
	struct fx *f = fx_new(FX_PROT32);
	uint64_t tss2 = 0x2400;
	unsigned len;

	fx_idt(f);
	f->cpu.s.gdt.limit = 12 * 8 - 1;
	fx_set64(f, FX_GDT + 0x58, 0x000081002400002Bull); /* 286 TSS */
	f->ram[FX_GDT + 0x40 + 5] = 0x8B;
	len = fx_asm_at(f, 0x6000, "bits 32\n mov ebx, 0x77\n pushfd\n pop esi\n"
				  "mov edi, cr0\n iretd\n");
	f->ram[tss2 + 0x0E] = 0x00; f->ram[tss2 + 0x0F] = 0x60;    /* IP */
	f->ram[tss2 + 0x10] = 0x02;                                /* FLAGS */
	f->ram[tss2 + 0x1A] = 0x00; f->ram[tss2 + 0x1B] = 0x70;    /* SP */
	for (int i = 0; i < 4; i++)
		f->ram[tss2 + 0x22 + 2 * i] = i == 1 ? 0x08 : 0x10;
	fx_asm(f, "mov ecx, 0\n call 0x58:0\n mov ecx, 1\n str ax\n hlt");
	fx_run_hlt(f);
	CU_ASSERT_EQUAL(fx_vector(f), -1);
	CU_ASSERT_EQUAL(fx_mem32(f, tss2 + 0x18) & 0xFFFF, 0x77);     /* BX */
	CU_ASSERT(fx_mem32(f, tss2 + 0x1E) & BT_NT);                  /* SI */
	CU_ASSERT_EQUAL(fx_mem32(f, tss2 + 0x0E) & 0xFFFF, 0x6000 + len); /* IP */
	CU_ASSERT_EQUAL(fx_mem32(f, tss2 + 0x24) & 0xFFFF, 0x08);     /* CS */
	CU_ASSERT(fx_mem32(f, tss2 + 0x20) & CR0_TS);                 /* DI: CR0 */
	CU_ASSERT_EQUAL(fx_mem32(f, tss2) & 0xFFFF, 0x40);            /* back link */
	CU_ASSERT_EQUAL(f->ram[FX_GDT + 0x58 + 5], 0x81);             /* not busy */
	CU_ASSERT_EQUAL(R(f, MODVM_RCX), 1);
	CU_ASSERT_EQUAL(R(f, MODVM_RAX) & 0xFFFF, 0x40);
	CU_ASSERT(!(f->cpu.s.rflags & BT_NT));
	fx_free(f);
	/* #GP through a task gate to the 286 TSS: the error code is pushed
	 * as a word on the new task's stack; the TSS is busy, NT set */
	f = fx_new(FX_PROT32);
	fx_idt(f);
	f->cpu.s.gdt.limit = 12 * 8 - 1;
	fx_set64(f, FX_GDT + 0x58, 0x000081002400002Bull);
	fx_set64(f, FX_IDT + 8 * BT_GP, (0x58ull << 16) | (0x85ull << 40));
	fx_asm_at(f, 0x6000, "bits 32\n mov bx, [esp]\n mov edx, esp\n pushfd\n pop esi\n hlt\n");
	f->ram[tss2 + 0x0E] = 0x00; f->ram[tss2 + 0x0F] = 0x60;
	f->ram[tss2 + 0x10] = 0x02;
	f->ram[tss2 + 0x1A] = 0x00; f->ram[tss2 + 0x1B] = 0x70;
	for (int i = 0; i < 4; i++)
		f->ram[tss2 + 0x22 + 2 * i] = i == 1 ? 0x08 : 0x10;
	fx_asm(f, "mov ax, 0x1234\n mov edi, gp\n gp: mov ds, ax\n hlt");
	fx_run_hlt(f);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX) & 0xFFFF, 0x1234 & 0xFFFC);
	CU_ASSERT_EQUAL(R(f, MODVM_RDX) & 0xFFFF, 0x6FFE);
	CU_ASSERT(R(f, MODVM_RSI) & BT_NT);
	CU_ASSERT_EQUAL(f->ram[FX_GDT + 0x58 + 5], 0x83);             /* busy */
	CU_ASSERT_EQUAL(f->cpu.s.tr.selector, 0x58);
	/* the outgoing 32-bit task saved the faulting EIP */
	CU_ASSERT_EQUAL(fx_mem32(f, 0x2000 + 0x20), FX_CODE + 9);    /* EIP */
	CU_ASSERT_EQUAL(fx_mem32(f, 0x2000 + 0x44), FX_CODE + 9);    /* EDI */
	fx_free(f);
}

static void test_call_gate(void)
{
	/* ring 3 calls a DPL-3 call gate to ring 0 with one parameter; the
	 * handler reads it from its own stack and RETF 4 returns to ring 3 */
	struct fx *f = fx_new(FX_PROT32);
	uint32_t h = FX_CODE + 0x300;

	fx_idt(f);
	f->cpu.s.gdt.limit = 13 * 8 - 1;
	fx_set64(f, FX_GDT + 0x60, (h & 0xFFFF) | (0x08ull << 16) | (1ull << 32) |
				   (0xECull << 40) | ((uint64_t)(h >> 16) << 48));
	fx_asm_at(f, h, "bits 32\n mov ebx, [esp + 8]\n mov ecx, [esp + 4]\n retf 4\n");
	fx_asm(f, "push 0x23\n push 0x60000\n push 0x2\n push 0x1B\n push user\n iretd\n"
		  "user: push 0x1234\n call 0x63:0\n mov edx, esp\n hlt");
	fx_run_hlt(f);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0x1234);
	CU_ASSERT_EQUAL(R(f, MODVM_RCX), 0x1B);      /* caller's CS */
	CU_ASSERT_EQUAL(R(f, MODVM_RDX), 0x60000);   /* RETF 4 dropped it */
	CU_ASSERT_EQUAL(fx_vector(f), BT_GP);        /* HLT at CPL 3 */
	fx_free(f);
}

static void test_v86(void)
{
	/* IRETD into virtual-8086 mode, real-mode addressing there, then
	 * INT 30h (IOPL 3, DPL-3 gate) back to ring 0 with the V86 frame */
	struct fx *f = fx_new(FX_PROT32);

	fx_idt(f);
	fx_set64(f, FX_IDT + 8 * 0x30, fx_mem64(f, FX_IDT + 8 * 0x30) | (3ull << 45));
	fx_asm_at(f, FX_CODE + 0x100, "bits 16\n mov ax, 0x2000\n mov ds, ax\n"
				       "mov word [0x10], 0x1234\n int 0x30\n");
	fx_asm(f, "push 0\n push 0\n push 0\n push 0\n push 0x7000\n push 0xFFF0\n"
		  "push 0x23002\n push 0x1000\n push 0x100\n iretd");
	fx_run_hlt(f);
	CU_ASSERT_EQUAL(fx_vector(f), 0x30);
	CU_ASSERT_EQUAL(fx_mem32(f, 0x20010) & 0xFFFF, 0x1234);
	CU_ASSERT_EQUAL(f->cpu.cpl, 0);
	CU_ASSERT(!(f->cpu.s.rflags & BT_VM));
	CU_ASSERT(f->cpu.s.seg[BT_DS].unusable);
	/* frame on the ring-0 stack: GS FS DS ES SS ESP EFLAGS CS EIP */
	CU_ASSERT_EQUAL(fx_mem32(f, FX_STACK - 0x10000 - 12), 0x2000); /* DS */
	CU_ASSERT_EQUAL(fx_mem32(f, FX_STACK - 0x10000 - 20), 0x7000); /* SS */
	CU_ASSERT(fx_mem32(f, FX_STACK - 0x10000 - 28) & BT_VM);     /* EFLAGS */
	CU_ASSERT_EQUAL(fx_mem32(f, FX_STACK - 0x10000 - 32), 0x1000); /* CS */
	fx_free(f);
	/* with IOPL 0, CLI in V86 mode is #GP */
	f = fx_new(FX_PROT32);
	fx_idt(f);
	fx_asm_at(f, FX_CODE + 0x100, "bits 16\n cli\n");
	fx_asm(f, "push 0\n push 0\n push 0\n push 0\n push 0x7000\n push 0xFFF0\n"
		  "push 0x20002\n push 0x1000\n push 0x100\n iretd");
	fx_run_hlt(f);
	CU_ASSERT_EQUAL(fx_vector(f), BT_GP);
	fx_free(f);
}

static void test_mmio(void)
{
	struct fx *f = run(FX_LONG64,
		"mov rax, 0xE0000010\n mov dword [rax], 0xCAFE\n mov ebx, [rax]\n hlt");

	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0xCAFE);
	CU_ASSERT_EQUAL(f->mmio_writes, 1);
	CU_ASSERT_EQUAL(f->mmio_reads, 1);
	fx_free(f);
	/* wide and unaligned accesses reach devices as aligned pieces of at
	 * most 8 bytes; the data survives the split */
	f = run(FX_LONG64,
		"mov rax, 0xE0000000\n mov rbx, 0x1122334455667788\n movq xmm0, rbx\n"
		"pshufd xmm0, xmm0, 0x44\n movdqu [rax + 3], xmm0\n movdqu xmm1, [rax + 3]\n"
		"movq rcx, xmm1\n fxsave [rax + 0x100]\n hlt");
	CU_ASSERT_EQUAL(R(f, MODVM_RCX), 0x1122334455667788ull);
	CU_ASSERT(f->mmio_max_size <= 8);
	CU_ASSERT_EQUAL(f->mmio[3], 0x88);
	CU_ASSERT_EQUAL(f->mmio[0x100 + 24], 0x80); /* MXCSR in the image */
	fx_free(f);
}

static void test_sse2(void)
{
	struct fx *f = run(FX_LONG64,
		"mov rax, 0x0102030405060708\n movq xmm0, rax\n"
		"pshufd xmm1, xmm0, 0x44\n"             /* both quadwords = rax */
		"pxor xmm2, xmm2\n pcmpeqb xmm2, xmm1\n pmovmskb ebx, xmm2\n"
		"paddd xmm1, xmm1\n movdqu [0x20000], xmm1\n"
		"mov ecx, 7\n cvtsi2sd xmm3, ecx\n mov edx, 2\n cvtsi2sd xmm4, edx\n"
		"divsd xmm3, xmm4\n cvttsd2si esi, xmm3\n ucomisd xmm3, xmm4\n seta dil\n"
		"sqrtsd xmm5, xmm4\n mulsd xmm5, xmm5\n cvtsd2si r8, xmm5\n"
		"stmxcsr [0x20020]\n punpcklbw xmm0, xmm0\n movq r9, xmm0\n hlt");

	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0);
	CU_ASSERT_EQUAL(fx_mem64(f, 0x20000), 0x020406080A0C0E10ull);
	CU_ASSERT_EQUAL(fx_mem64(f, 0x20008), 0x020406080A0C0E10ull);
	CU_ASSERT_EQUAL(R(f, MODVM_RSI), 3);
	CU_ASSERT_EQUAL(R(f, MODVM_RDI) & 0xFF, 1);
	CU_ASSERT_EQUAL(R(f, MODVM_R8), 2);
	CU_ASSERT_EQUAL(fx_mem32(f, 0x20020), 0x1FA0); /* PE from sqrt(2) */
	CU_ASSERT_EQUAL(R(f, MODVM_R9), 0x0505060607070808ull);
	fx_free(f);
	/* movdqa to an unaligned address: #GP(0) */
	f = run(FX_LONG64, "movdqa [0x20008], xmm0\n hlt");
	CU_ASSERT_EQUAL(fx_vector(f), BT_GP);
	fx_free(f);
	/* SSE with CR0.TS: #NM */
	f = run(FX_LONG64, "mov rax, cr0\n or eax, 8\n mov cr0, rax\n pxor xmm0, xmm0\n hlt");
	CU_ASSERT_EQUAL(fx_vector(f), BT_NM);
	fx_free(f);
}

static void test_x87(void)
{
	struct fx *f = run(FX_PROT32,
		"fninit\n fld1\n fld1\n faddp\n fild dword [val]\n fmulp\n"
		"fistp dword [0x20000]\n fldpi\n fstp qword [0x20008]\n"
		"fnstsw ax\n fld dword [val2]\n fsqrt\n fistp word [0x20010]\n hlt\n"
		"val: dd 21\n val2: dd 16.0");
	double pi;

	CU_ASSERT_EQUAL(fx_mem32(f, 0x20000), 42);
	memcpy(&pi, f->ram + 0x20008, 8);
	CU_ASSERT(pi > 3.14159 && pi < 3.1416);
	CU_ASSERT_EQUAL((R(f, MODVM_RAX) >> 11) & 7, 0); /* TOP back to 0 */
	CU_ASSERT_EQUAL(f->ram[0x20010], 4);
	fx_free(f);
}

static uint16_t fx_fsw(struct fx *f)
{
	return (uint16_t)(f->cpu.s.xsave[2] | f->cpu.s.xsave[3] << 8);
}

static uint32_t fx_mxcsr(struct fx *f)
{
	uint32_t v;

	memcpy(&v, f->cpu.s.xsave + 24, 4);
	return v;
}

static void test_x87_mf(void)
{
	/* CR0.NE=1: an unmasked divide-by-zero leaves the stack as it was,
	 * sets ZE ES B, and the next waiting x87 instruction faults with #MF
	 * (vector 16, no error code) before executing; a non-x87 instruction
	 * and the non-waiting FNSTSW in between do not */
	static const char *src =
		"%s fninit\n mov word [0x20000], 0x037b\n fldcw [0x20000]\n"
		"fld1\n fldz\n mov edi, div\n div: fdivp st1\n mov ebx, 1\n fnstsw ax\n mov esi, mf\n"
		"mf: fld1\n mov ecx, 2\n hlt";
	char buf[512];
	struct fx *f;

	snprintf(buf, sizeof(buf), src, "mov eax, cr0\n or eax, 0x20\n mov cr0, eax\n");
	f = run(FX_PROT32, buf);
	CU_ASSERT_EQUAL(fx_vector(f), BT_MF);
	CU_ASSERT_EQUAL(fx_mem32(f, FX_STACK - 12), R(f, MODVM_RSI)); /* EIP */
	CU_ASSERT_EQUAL(fx_mem32(f, FX_STACK - 8), 0x08);             /* CS */
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 1);
	CU_ASSERT_EQUAL(R(f, MODVM_RCX), 0);
	CU_ASSERT_EQUAL(R(f, MODVM_RAX) & 0xFFFF, 0xB084);  /* B TOP=6 ES ZE */
	CU_ASSERT_EQUAL(fx_fsw(f), 0xB084);
	CU_ASSERT_EQUAL(f->cpu.s.xsave[4], 0xC0);           /* 1 and 0 kept */
	/* the handler finds the faulting FDIVP in FIP/FCS and FOP (DE F9) */
	CU_ASSERT_EQUAL(f->cpu.s.xsave[8] | f->cpu.s.xsave[9] << 8 |
			f->cpu.s.xsave[10] << 16 | (uint32_t)f->cpu.s.xsave[11] << 24,
			R(f, MODVM_RDI));
	CU_ASSERT_EQUAL(f->cpu.s.xsave[12], 0x08);
	CU_ASSERT_EQUAL(f->cpu.s.xsave[6] | f->cpu.s.xsave[7] << 8, 0x6F9);
	fx_free(f);
	/* CR0.NE=0: no #MF (no FERR# line: as with IGNNE#), execution goes on */
	snprintf(buf, sizeof(buf), src, "");
	f = run(FX_PROT32, buf);
	CU_ASSERT_EQUAL(fx_vector(f), -1);
	CU_ASSERT_EQUAL(R(f, MODVM_RCX), 2);
	CU_ASSERT_EQUAL(fx_fsw(f) & 0x80FF, 0x8084);
	fx_free(f);
	/* FLDCW unmasking an exception flagged while masked: #MF at the
	 * next waiting instruction; FWAIT is one */
	f = run(FX_PROT32,
		"mov eax, cr0\n or eax, 0x20\n mov cr0, eax\n fninit\n fld1\n fldz\n fdivp st1\n"
		"mov word [0x20000], 0x037b\n fldcw [0x20000]\n mov esi, mf\n mf: fwait\n"
		"mov ecx, 2\n hlt");
	CU_ASSERT_EQUAL(fx_vector(f), BT_MF);
	CU_ASSERT_EQUAL(fx_mem32(f, FX_STACK - 12), R(f, MODVM_RSI));
	fx_free(f);
}

static void test_x87_precision(void)
{
	/* FCW.PC rounds the significand of FDIV to 24/53/64 bits, with RC */
	static const struct { uint16_t cw; double want; } t[] = {
		{ 0x007F, (double)(1.0f / 3.0f) },   /* 24-bit, nearest */
		{ 0x027F, 1.0 / 3.0 },               /* 53-bit, nearest */
		{ 0x0A7F, 0x1.5555555555556p-2 },    /* 53-bit, up */
		{ 0x047F, 0x1.555554p-2 },           /* 24-bit, down */
	};
	char buf[512];

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct fx *f;
		double d;
		snprintf(buf, sizeof(buf),
			 "fninit\n mov word [0x20010], 0x%x\n fldcw [0x20010]\n fld1\n"
			 "fild dword [three]\n fdivp\n fstp qword [0x20000]\n hlt\n three: dd 3",
			 t[i].cw);
		f = run(FX_PROT32, buf);
		memcpy(&d, f->ram + 0x20000, 8);
		CU_ASSERT_EQUAL(d, t[i].want);
		CU_ASSERT(fx_fsw(f) & 0x20); /* PE */
		fx_free(f);
	}
	/* FNSTENV (32-bit format): FIP, FCS | FOP << 16, FDP, FDS of the
	 * last non-control instruction, FLD m32 (D9 05) */
	{
		struct fx *f = run(FX_PROT32,
			"fninit\n mov esi, ld\n ld: fld dword [val]\n fnstenv [0x20000]\n hlt\n"
			"val: dd 1.5");
		CU_ASSERT_EQUAL(fx_mem32(f, 0x2000C), R(f, MODVM_RSI));
		CU_ASSERT_EQUAL(fx_mem32(f, 0x20010), 0x01050008);
		CU_ASSERT_EQUAL(fx_mem32(f, 0x20014), R(f, MODVM_RSI) + 13); /* val */
		CU_ASSERT_EQUAL(fx_mem32(f, 0x20018) & 0xFFFF, 0x10);
		CU_ASSERT_EQUAL(fx_mem32(f, 0x20008) & 0xFFFF, 0x3FFF); /* tags */
		fx_free(f);
	}
	/* a denormal double operand: DE (masked, so the result is stored) */
	{
		struct fx *f = run(FX_PROT32,
			"fninit\n fld qword [den]\n fld1\n fmulp\n fstp qword [0x20000]\n"
			"hlt\n align 8\n den: dq 1");
		CU_ASSERT_EQUAL(fx_fsw(f) & 0x3F, 0x02);
		CU_ASSERT_EQUAL(fx_mem64(f, 0x20000), 1);
		fx_free(f);
	}
}

static void test_sse_xm(void)
{
	/* an unmasked divide-by-zero in DIVSD: #XM (vector 19) with
	 * CR4.OSXMMEXCPT=1, the destination unchanged, MXCSR.ZE set */
	static const char *src =
		"%s mov dword [0x20000], 0x1d80\n ldmxcsr [0x20000]\n mov eax, 1\n"
		"cvtsi2sd xmm0, eax\n xorpd xmm1, xmm1\n lea rsi, [rel xm]\n"
		"xm: divsd xmm0, xmm1\n mov ecx, 2\n hlt";
	char buf[512];
	struct fx *f;

	snprintf(buf, sizeof(buf), src, "");
	f = run(FX_LONG64, buf);
	CU_ASSERT_EQUAL(fx_vector(f), BT_XM);
	CU_ASSERT_EQUAL(fx_mem64(f, FX_STACK - 40), R(f, MODVM_RSI)); /* RIP */
	CU_ASSERT_EQUAL(fx_mxcsr(f), 0x1D84);
	CU_ASSERT_EQUAL(f->cpu.s.xsave[160 + 7], 0x3F); /* xmm0 still 1.0 */
	CU_ASSERT_EQUAL(R(f, MODVM_RCX), 0);
	fx_free(f);
	/* CR4.OSXMMEXCPT=0: #UD instead */
	snprintf(buf, sizeof(buf), src, "mov rax, cr4\n and eax, ~0x400\n mov cr4, rax\n");
	f = run(FX_LONG64, buf);
	CU_ASSERT_EQUAL(fx_vector(f), BT_UD);
	CU_ASSERT_EQUAL(fx_mem64(f, FX_STACK - 40), R(f, MODVM_RSI));
	fx_free(f);
	/* masked: the result is the infinity and ZE is only a flag */
	f = run(FX_LONG64, "mov eax, 1\n cvtsi2sd xmm0, eax\n xorpd xmm1, xmm1\n"
			   "divsd xmm0, xmm1\n movq rbx, xmm0\n stmxcsr [0x20000]\n hlt");
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0x7FF0000000000000ull);
	CU_ASSERT_EQUAL(fx_mem32(f, 0x20000), 0x1F84);
	fx_free(f);
}

static void test_sse_daz_ftz(void)
{
	/* DE for a denormal operand; DAZ (bit 6) reads it as zero without
	 * DE; FTZ (bit 15) flushes a tiny result to zero with UE and PE */
	static const char *src =
		"mov dword [0x20000], 0x%x\n ldmxcsr [0x20000]\n mov rax, 1\n movq xmm0, rax\n"
		"xorpd xmm1, xmm1\n addsd xmm0, xmm1\n movq rbx, xmm0\n"
		"mov rax, 0x0010000000000000\n movq xmm2, rax\n mulsd xmm2, xmm2\n movq rcx, xmm2\n"
		"stmxcsr [0x20000]\n hlt";
	char buf[512];
	struct fx *f;

	snprintf(buf, sizeof(buf), src, 0x1F80);
	f = run(FX_LONG64, buf);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 1);            /* denormal kept */
	CU_ASSERT_EQUAL(R(f, MODVM_RCX), 0);            /* 2^-2044 underflows to 0 */
	CU_ASSERT_EQUAL(fx_mem32(f, 0x20000), 0x1FB2);  /* PE UE DE */
	fx_free(f);
	snprintf(buf, sizeof(buf), src, 0x9FC0);
	f = run(FX_LONG64, buf);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0);            /* DAZ */
	CU_ASSERT_EQUAL(R(f, MODVM_RCX), 0);
	CU_ASSERT_EQUAL(fx_mem32(f, 0x20000), 0x9FF0);  /* PE UE, no DE */
	fx_free(f);
	/* FTZ on a result that would be denormal: 2^-1022 * 0.5 */
	f = run(FX_LONG64, "mov dword [0x20000], 0x9f80\n ldmxcsr [0x20000]\n"
			   "mov rax, 0x0010000000000000\n movq xmm0, rax\n mov rax, 0x3fe0000000000000\n"
			   "movq xmm1, rax\n mulsd xmm0, xmm1\n movq rbx, xmm0\n stmxcsr [0x20000]\n hlt");
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0);
	CU_ASSERT_EQUAL(fx_mem32(f, 0x20000), 0x9FB0);
	fx_free(f);
}

static void test_alignment_check(void)
{
	/* CR0.AM, EFLAGS.AC and CPL 3: a misaligned dword load is #AC(0), a
	 * fault on the instruction (SDM 3A 6.15 interrupt 17) */
	static const char *src =
		"mov eax, cr0\n or eax, %s\n mov cr0, eax\n"
		"push 0x23\n push 0x60000\n push 0x%x\n push 0x1B\n push user\n iretd\n"
		"user: mov ax, 0x23\n mov ds, ax\n mov ebx, [0x20000]\n mov edi, ac\n ac: %s\n"
		"mov ecx, 2\n hlt";
	uint32_t top = FX_STACK - 0x10000;
	char buf[512];
	struct fx *f;

	snprintf(buf, sizeof(buf), src, "0x40000", 0x40002, "mov edx, [0x20001]");
	f = run(FX_PROT32, buf);
	CU_ASSERT_EQUAL(fx_vector(f), BT_AC_V);
	CU_ASSERT_EQUAL(fx_mem32(f, top - 24), 0);                 /* error code */
	CU_ASSERT_EQUAL(fx_mem32(f, top - 20), R(f, MODVM_RDI));   /* EIP */
	CU_ASSERT_EQUAL(fx_mem32(f, top - 16), 0x1B);              /* CS */
	CU_ASSERT(fx_mem32(f, top - 12) & BT_AC);                  /* EFLAGS */
	CU_ASSERT_EQUAL(R(f, MODVM_RCX), 0);
	fx_free(f);
	/* a push onto a misaligned stack, a word at an odd address, a
	 * quadword (FILD m64) at 4 mod 8 */
	snprintf(buf, sizeof(buf), src, "0x40000", 0x40002, "mov esp, 0x60002\n ac2: push eax");
	f = run(FX_PROT32, buf);
	CU_ASSERT_EQUAL(fx_vector(f), BT_AC_V);
	CU_ASSERT_EQUAL(fx_mem32(f, top - 20), R(f, MODVM_RDI) + 5);
	fx_free(f);
	snprintf(buf, sizeof(buf), src, "0x40000", 0x40002, "mov dx, [0x20003]");
	f = run(FX_PROT32, buf);
	CU_ASSERT_EQUAL(fx_vector(f), BT_AC_V);
	fx_free(f);
	snprintf(buf, sizeof(buf), src, "0x40000", 0x40002, "fild qword [0x20004]");
	f = run(FX_PROT32, buf);
	CU_ASSERT_EQUAL(fx_vector(f), BT_AC_V);
	fx_free(f);
	/* not raised: EFLAGS.AC clear, CR0.AM clear, or aligned; the run
	 * then ends at the HLT, which is #GP at CPL 3 */
	snprintf(buf, sizeof(buf), src, "0x40000", 0x2, "mov edx, [0x20001]");
	f = run(FX_PROT32, buf);
	CU_ASSERT_EQUAL(fx_vector(f), BT_GP);
	CU_ASSERT_EQUAL(R(f, MODVM_RCX), 2);
	fx_free(f);
	snprintf(buf, sizeof(buf), src, "0", 0x40002, "mov edx, [0x20001]");
	f = run(FX_PROT32, buf);
	CU_ASSERT_EQUAL(fx_vector(f), BT_GP);
	fx_free(f);
	snprintf(buf, sizeof(buf), src, "0x40000", 0x40002, "mov edx, [0x20004]");
	f = run(FX_PROT32, buf);
	CU_ASSERT_EQUAL(fx_vector(f), BT_GP);
	fx_free(f);
	/* CPL 0 with AM and AC: no check */
	f = run(FX_PROT32, "mov eax, cr0\n or eax, 0x40000\n mov cr0, eax\n push 0x40002\n popfd\n"
			   "mov edx, [0x20001]\n mov ecx, 2\n hlt");
	CU_ASSERT_EQUAL(fx_vector(f), -1);
	CU_ASSERT_EQUAL(R(f, MODVM_RCX), 2);
	fx_free(f);
}

static void test_fxsave_roundtrip(void)
{
	struct fx *f = run(FX_LONG64,
		"mov rax, 0x1122334455667788\n movq xmm7, rax\n fninit\n fld1\n"
		"fxsave [0x20000]\n pxor xmm7, xmm7\n fxrstor [0x20000]\n movq rbx, xmm7\n hlt");

	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0x1122334455667788ull);
	CU_ASSERT_EQUAL(fx_mem32(f, 0x20000 + 24), 0x1F80);     /* MXCSR */
	CU_ASSERT_EQUAL(fx_mem64(f, 0x20000 + 160 + 7 * 16), 0x1122334455667788ull);
	fx_free(f);
}

/* FOP, FIP and FDP in an FXSAVE image: an AMD CPU stores them only while
 * FSW.ES is set, zeros otherwise; an Intel CPU always (bt_fx_hide_pointers).
 * The first image is taken after FLD (no exception), the second after an
 * FDIV by zero with ZM unmasked (ES=1; FXSAVE does not wait, so no #MF). */
static void check_fxsave_pointers(const struct modvm_cpu_model *model, bool amd)
{
	struct fx *f = fx_new(FX_LONG64);
	uint64_t ld, dv;

	fx_idt(f);
	bt_cpu_set_model(&f->cpu, model);
	CU_ASSERT_EQUAL(f->cpu.vendor_amd, amd);
	fx_asm(f, "fninit\n ld: fld dword [one]\n fxsave [0x20000]\n fldcw [cw]\n"
		  "dv: fdiv dword [zero]\n fxsave [0x20200]\n fnstsw ax\n"
		  "mov r8, ld\n mov r9, dv\n mov r10, one\n mov r11, zero\n hlt\n"
		  "one: dd 1.0\n zero: dd 0\n cw: dw 0x37B");
	CU_ASSERT_EQUAL_FATAL(fx_run_hlt(f), BT_EXIT_HLT);
	ld = R(f, MODVM_R8);
	dv = R(f, MODVM_R9);
	CU_ASSERT_EQUAL(R(f, MODVM_RAX) & 0x84, 0x84); /* ES, ZE */
	/* ES=0: FOP (D9 /0), FIP, FDP of the FLD, or all zero on AMD */
	CU_ASSERT_EQUAL(fx_mem32(f, 0x20000) >> 16 & 0x80, 0);
	CU_ASSERT_EQUAL(fx_mem32(f, 0x20004) >> 16,
			amd ? 0 : (f->ram[ld] & 7u) << 8 | f->ram[ld + 1]);
	CU_ASSERT_EQUAL(fx_mem64(f, 0x20008), amd ? 0 : ld);
	CU_ASSERT_EQUAL(fx_mem64(f, 0x20010), amd ? 0 : R(f, MODVM_R10));
	/* ES=1: those of the FDIV, on both */
	CU_ASSERT_EQUAL(fx_mem32(f, 0x20200) >> 16 & 0x80, 0x80);
	CU_ASSERT_EQUAL(fx_mem32(f, 0x20204) >> 16,
			(f->ram[dv] & 7u) << 8 | f->ram[dv + 1]);
	CU_ASSERT_EQUAL(fx_mem64(f, 0x20208), dv);
	CU_ASSERT_EQUAL(fx_mem64(f, 0x20210), R(f, MODVM_R11));
	fx_free(f);
}

static void test_fxsave_pointers_vendor(void)
{
	check_fxsave_pointers(&fx_model, true);
	check_fxsave_pointers(&fx_model_xsave, true);
	check_fxsave_pointers(&fx_model_xsave_intel, false);
}

static void test_state_roundtrip(void)
{
	/* get_state/set_state keep everything the interpreter uses */
	struct fx *f = run(FX_LONG64, "mov r15, 99\n hlt");
	struct modvm_cpu_state *s = calloc(1, sizeof(*s));
	struct fx *g = fx_new(FX_LONG64);

	bt_cpu_get_state(&f->cpu, s);
	memcpy(g->ram, f->ram, FX_RAM);
	bt_cpu_set_state(&g->cpu, s);
	CU_ASSERT_EQUAL(g->cpu.s.gpr[MODVM_R15], 99);
	CU_ASSERT_EQUAL(g->cpu.mode, BT_MODE64);
	CU_ASSERT(g->cpu.s.halted);
	free(s);
	fx_free(f);
	fx_free(g);
}

static void test_injected_event(void)
{
	/* a state saved by another engine in the middle of delivering #GP(0x10):
	 * the interpreter finishes the delivery before running anything */
	struct fx *f = fx_new(FX_PROT32);
	struct modvm_cpu_state *s = calloc(1, sizeof(*s));

	fx_idt(f);
	fx_asm(f, "mov ebx, 1\n hlt");
	bt_cpu_get_state(&f->cpu, s);
	s->ev.exception_injected = 1;
	s->ev.exception_vector = BT_GP;
	s->ev.exception_has_error = 1;
	s->ev.exception_error = 0x10;
	bt_cpu_set_state(&f->cpu, s);
	fx_run_hlt(f);
	CU_ASSERT_EQUAL(fx_vector(f), BT_GP);
	CU_ASSERT_EQUAL(fx_mem32(f, FX_STACK - 16), 0x10);
	CU_ASSERT_EQUAL(fx_mem32(f, FX_STACK - 12), FX_CODE);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0);
	free(s);
	fx_free(f);
}

/* ---- XSAVE (SDM vol. 1 ch. 13) ---------------------------------------- */

#define XA 0x20000    /* the XSAVE area the snippets use */
#define XB 0x21000    /* an FXSAVE image to compare with */
/* XSAVE writes only XSTATE_BV bits of RFBM: software zeroes the header */
#define HDR0 "mov qword [0x20200], 0\n mov qword [0x20208], 0\n mov qword [0x20210], 0\n"
#define OSXSAVE "mov rax, cr4\n bts rax, 18\n mov cr4, rax\n"
#define XCR0_3 "xor ecx, ecx\n xor edx, edx\n mov eax, 3\n xsetbv\n"
/* x87 and SSE state that is not initial: ST0 = 1.0, XMM3, XMM12, MXCSR */
#define XSTATE "fninit\n fld1\n mov rax, 0x1122334455667788\n movq xmm3, rax\n" \
	"movq xmm12, rax\n mov dword [0x1f000], 0x1f81\n ldmxcsr [0x1f000]\n"

static struct fx *xrun(enum fx_mode mode, const char *src)
{
	struct fx *f = fx_new(mode);

	bt_cpu_set_model(&f->cpu, &fx_model_xsave);
	fx_idt(f);
	memset(f->ram + XA, 0xAA, 0x1000);
	fx_asm(f, src);
	CU_ASSERT_EQUAL(fx_run_hlt(f), BT_EXIT_HLT);
	return f;
}

/* #GP error code of a fault taken at CPL 0 in long mode */
#define ERR64(f) fx_mem64(f, FX_STACK - 48)

static bool bytes_are(struct fx *f, uint64_t a, unsigned n, uint8_t v)
{
	for (unsigned i = 0; i < n; i++)
		if (f->ram[a + i] != v)
			return false;
	return true;
}

static void test_xsave_cpuid_cr4(void)
{
	/* the model without XSAVE: CR4.OSXSAVE is reserved, XGETBV #UD */
	struct fx *f = run(FX_LONG64, OSXSAVE "mov ebx, 1\n hlt");
	CU_ASSERT_EQUAL(fx_vector(f), BT_GP);
	CU_ASSERT_EQUAL(ERR64(f), 0);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0);
	fx_free(f);
	f = run(FX_LONG64, "xor ecx, ecx\n xgetbv\n hlt");
	CU_ASSERT_EQUAL(fx_vector(f), BT_UD);
	fx_free(f);
	/* with XSAVE: CPUID.1:ECX.OSXSAVE follows CR4, leaf 0xD */
	f = xrun(FX_LONG64,
		"mov eax, 1\n cpuid\n mov r8d, ecx\n" OSXSAVE
		"mov eax, 1\n cpuid\n mov r9d, ecx\n"
		"mov rax, cr4\n btr rax, 18\n mov cr4, rax\n"
		"mov eax, 1\n cpuid\n mov r10d, ecx\n"
		"mov eax, 0xd\n xor ecx, ecx\n cpuid\n mov r11d, eax\n mov r12d, ebx\n"
		"mov r13d, ecx\n mov r14d, edx\n"
		"mov eax, 0xd\n mov ecx, 1\n cpuid\n mov r15d, eax\n"
		"mov eax, 0xd\n mov ecx, 2\n cpuid\n mov esi, eax\n hlt");
	CU_ASSERT_EQUAL(fx_vector(f), -1);
	CU_ASSERT_EQUAL(R(f, MODVM_R8) & (3u << 26), 1u << 26);
	CU_ASSERT_EQUAL(R(f, MODVM_R9) & (3u << 26), 3u << 26);
	CU_ASSERT_EQUAL(R(f, MODVM_R10) & (3u << 26), 1u << 26);
	CU_ASSERT_EQUAL(R(f, MODVM_R11), 3);
	CU_ASSERT_EQUAL(R(f, MODVM_R12), 576);
	CU_ASSERT_EQUAL(R(f, MODVM_R13), 576);
	CU_ASSERT_EQUAL(R(f, MODVM_R14), 0);
	CU_ASSERT_EQUAL(R(f, MODVM_R15), 1);
	CU_ASSERT_EQUAL(R(f, MODVM_RSI), 0);
	fx_free(f);
}

static void test_xgetbv_xsetbv(void)
{
	static const char *const bad[] = {
		"xor edx, edx\n xor eax, eax\n",        /* bit 0 clear */
		"xor edx, edx\n mov eax, 7\n",          /* AVX: not supported */
		"mov edx, 1\n mov eax, 3\n",            /* bit 32 */
		"xor edx, edx\n mov eax, 0x80000003\n",
	};
	char src[512];
	/* power-up XCR0 = 1; XSETBV 3 reads back */
	struct fx *f = xrun(FX_LONG64, OSXSAVE
		"xor ecx, ecx\n xgetbv\n mov r8, rax\n mov r9, rdx\n" XCR0_3
		"mov rax, -1\n mov rdx, -1\n xgetbv\n hlt");
	CU_ASSERT_EQUAL(fx_vector(f), -1);
	CU_ASSERT_EQUAL(R(f, MODVM_R8), 1);
	CU_ASSERT_EQUAL(R(f, MODVM_R9), 0);
	CU_ASSERT_EQUAL(R(f, MODVM_RAX), 3);
	CU_ASSERT_EQUAL(R(f, MODVM_RDX), 0);
	CU_ASSERT_EQUAL(f->cpu.s.xcr0, 3);
	fx_free(f);
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(src, sizeof(src), OSXSAVE "xor ecx, ecx\n %s xsetbv\n"
			 "mov ebx, 1\n hlt", bad[i]);
		f = xrun(FX_LONG64, src);
		CU_ASSERT_EQUAL(fx_vector(f), BT_GP);
		CU_ASSERT_EQUAL(ERR64(f), 0);
		CU_ASSERT_EQUAL(f->cpu.s.xcr0, 1);
		fx_free(f);
	}
	/* ECX other than 0: #GP(0) for both */
	f = xrun(FX_LONG64, OSXSAVE "mov ecx, 1\n xor edx, edx\n mov eax, 3\n xsetbv\n hlt");
	CU_ASSERT_EQUAL(fx_vector(f), BT_GP);
	fx_free(f);
	f = xrun(FX_LONG64, OSXSAVE "mov ecx, 1\n xgetbv\n hlt");
	CU_ASSERT_EQUAL(fx_vector(f), BT_GP);
	CU_ASSERT_EQUAL(ERR64(f), 0);
	fx_free(f);
	/* OSXSAVE clear: #UD for both, even with XSAVE in the model */
	f = xrun(FX_LONG64, XCR0_3 "hlt");
	CU_ASSERT_EQUAL(fx_vector(f), BT_UD);
	fx_free(f);
	/* XSETBV at CPL 3: #GP(0); XGETBV works there */
	f = xrun(FX_LONG64, OSXSAVE
		"mov rax, rsp\n push 0x23\n push rax\n push 0x2\n push 0x33\n"
		"lea rax, [rel user]\n push rax\n iretq\n"
		"user: xor ecx, ecx\n xgetbv\n mov ebx, eax\n"
		"xor edx, edx\n mov eax, 1\n xsetbv\n hlt");
	CU_ASSERT_EQUAL(fx_vector(f), BT_GP);
	CU_ASSERT_EQUAL(fx_mem64(f, FX_STACK - 0x10000 - 48), 0);
	CU_ASSERT_EQUAL(R(f, MODVM_RBX), 1);
	fx_free(f);
}

static void test_xsave_area(void)
{
	/* RFBM = 3: legacy region as FXSAVE writes it, bytes 416-511 and
	 * the header past XSTATE_BV untouched, XSTATE_BV bits 0-1 set and
	 * its other bits kept */
	struct fx *f = xrun(FX_LONG64, OSXSAVE XCR0_3 XSTATE
		"fxsave [0x21000]\n mov eax, 3\n xor edx, edx\n xsave [0x20000]\n hlt");
	CU_ASSERT_EQUAL(fx_vector(f), -1);
	CU_ASSERT_EQUAL(memcmp(f->ram + XA, f->ram + XB, 416), 0);
	CU_ASSERT_EQUAL(fx_mem32(f, XA), 0x3800037F);       /* FCW, FSW TOP=7 */
	CU_ASSERT_EQUAL(f->ram[XA + 4], 0x80);               /* FTW: ST0 = R7 */
	CU_ASSERT_EQUAL(fx_mem64(f, XA + 24), 0x0000FFFF00001F81ull);
	CU_ASSERT_EQUAL(fx_mem64(f, XA + 32 + 8) & 0xFFFF, 0x3FFF); /* ST0 = 1.0 */
	CU_ASSERT_EQUAL(fx_mem64(f, XA + 160 + 3 * 16), 0x1122334455667788ull);
	CU_ASSERT_EQUAL(fx_mem64(f, XA + 160 + 12 * 16), 0x1122334455667788ull);
	CU_ASSERT(bytes_are(f, XA + 416, 96, 0xAA));
	CU_ASSERT_EQUAL(fx_mem64(f, XA + 512), 0xAAAAAAAAAAAAAAABull);
	CU_ASSERT(bytes_are(f, XA + 520, 56, 0xAA));
	fx_free(f);
	/* RFBM = 1 (EDX:EAX = 1): x87 only; MXCSR and XMM untouched,
	 * XSTATE_BV bit 0 set, the other bits as they were */
	f = xrun(FX_LONG64, OSXSAVE XCR0_3 XSTATE
		"mov eax, 1\n xor edx, edx\n xsave [0x20000]\n hlt");
	CU_ASSERT_EQUAL(fx_mem32(f, XA), 0x3800037F);
	CU_ASSERT(bytes_are(f, XA + 24, 8, 0xAA));
	CU_ASSERT(bytes_are(f, XA + 160, 352, 0xAA));
	CU_ASSERT_EQUAL(fx_mem64(f, XA + 512), 0xAAAAAAAAAAAAAAABull);
	fx_free(f);
	/* XCR0 = 1 limits RFBM whatever EDX:EAX asks */
	f = xrun(FX_LONG64, OSXSAVE XSTATE
		"mov eax, -1\n mov edx, -1\n xsave [0x20000]\n hlt");
	CU_ASSERT_EQUAL(fx_mem32(f, XA), 0x3800037F);
	CU_ASSERT(bytes_are(f, XA + 24, 8, 0xAA));
	CU_ASSERT(bytes_are(f, XA + 160, 352, 0xAA));
	CU_ASSERT_EQUAL(fx_mem64(f, XA + 512), 0xAAAAAAAAAAAAAAABull);
	fx_free(f);
	/* RFBM = 2: MXCSR, MXCSR_MASK and XMM; x87 bytes untouched */
	f = xrun(FX_LONG64, OSXSAVE XCR0_3 XSTATE
		"mov eax, 2\n xor edx, edx\n xsave [0x20000]\n hlt");
	CU_ASSERT(bytes_are(f, XA, 24, 0xAA));
	CU_ASSERT(bytes_are(f, XA + 32, 128, 0xAA));
	CU_ASSERT_EQUAL(fx_mem64(f, XA + 24), 0x0000FFFF00001F81ull);
	CU_ASSERT_EQUAL(fx_mem64(f, XA + 160 + 3 * 16), 0x1122334455667788ull);
	CU_ASSERT(bytes_are(f, XA + 416, 96, 0xAA));
	CU_ASSERT_EQUAL(fx_mem64(f, XA + 512), 0xAAAAAAAAAAAAAAAAull);
	fx_free(f);
	/* initial state: XSAVE writes the values but XSTATE_BV bits are 0;
	 * XSAVEOPT skips both components and writes only MXCSR */
	f = xrun(FX_LONG64, OSXSAVE XCR0_3
		"fninit\n mov eax, 3\n xor edx, edx\n xsave [0x20000]\n"
		"xsaveopt [0x20400]\n hlt");
	CU_ASSERT_EQUAL(fx_vector(f), -1);
	CU_ASSERT_EQUAL(fx_mem32(f, XA), 0x037F);
	CU_ASSERT(bytes_are(f, XA + 160, 256, 0));
	CU_ASSERT_EQUAL(fx_mem64(f, XA + 512), 0xAAAAAAAAAAAAAAA8ull);
	CU_ASSERT(bytes_are(f, XA + 0x400, 24, 0xAA));
	CU_ASSERT_EQUAL(fx_mem64(f, XA + 0x400 + 24), 0x0000FFFF00001F80ull);
	CU_ASSERT(bytes_are(f, XA + 0x400 + 32, 480, 0xAA));
	CU_ASSERT_EQUAL(fx_mem64(f, XA + 0x400 + 512), 0xAAAAAAAAAAAAAAA8ull);
	fx_free(f);
	/* XSAVEOPT of state in use writes it as XSAVE does */
	f = xrun(FX_LONG64, OSXSAVE XCR0_3 XSTATE
		"mov eax, 3\n xor edx, edx\n xsave [0x20000]\n xsaveopt [0x20400]\n hlt");
	CU_ASSERT_EQUAL(memcmp(f->ram + XA, f->ram + XA + 0x400, 576), 0);
	fx_free(f);
	/* outside 64-bit mode only XMM0-7 are saved (bytes 288-511 stay) */
	f = xrun(FX_PROT32, "mov eax, cr4\n bts eax, 18\n mov cr4, eax\n"
		"xor ecx, ecx\n xor edx, edx\n mov eax, 3\n xsetbv\n"
		"mov eax, 0x55667788\n movd xmm7, eax\n mov eax, 3\n xsave [0x20000]\n hlt");
	CU_ASSERT_EQUAL(fx_vector(f), -1);
	CU_ASSERT_EQUAL(fx_mem32(f, XA + 160 + 7 * 16), 0x55667788);
	CU_ASSERT(bytes_are(f, XA + 288, 224, 0xAA));
	CU_ASSERT_EQUAL(fx_mem64(f, XA + 512), 0xAAAAAAAAAAAAAAAAull); /* x87 init */
	CU_ASSERT_EQUAL(fx_mem32(f, XA + 24), 0x1F80);
	fx_free(f);
}

static void test_xrstor(void)
{
	/* round trip */
	struct fx *f = xrun(FX_LONG64, OSXSAVE XCR0_3 XSTATE HDR0
		"mov eax, 3\n xor edx, edx\n xsave [0x20000]\n"
		"pxor xmm3, xmm3\n pxor xmm12, xmm12\n fninit\n fldz\n fldz\n"
		"mov dword [0x1f000], 0x1f80\n ldmxcsr [0x1f000]\n"
		"xrstor [0x20000]\n movq r8, xmm3\n movq r9, xmm12\n"
		"fnstsw ax\n mov r10d, eax\n stmxcsr [0x1f000]\n mov r11d, [0x1f000]\n"
		"fstp qword [0x1f008]\n hlt");
	CU_ASSERT_EQUAL(fx_vector(f), -1);
	CU_ASSERT_EQUAL(R(f, MODVM_R8), 0x1122334455667788ull);
	CU_ASSERT_EQUAL(R(f, MODVM_R9), 0x1122334455667788ull);
	CU_ASSERT_EQUAL(R(f, MODVM_R10) & 0xFFFF, 0x3800);
	CU_ASSERT_EQUAL(R(f, MODVM_R11), 0x1F81);
	CU_ASSERT_EQUAL(fx_mem64(f, 0x1f008), 0x3FF0000000000000ull); /* 1.0 */
	fx_free(f);
	/* init optimisation: XSTATE_BV = 0 initialises both components;
	 * the standard form still loads MXCSR from memory */
	f = xrun(FX_LONG64, OSXSAVE XCR0_3 XSTATE HDR0
		"mov eax, 3\n xor edx, edx\n xsave [0x20000]\n"
		"mov qword [0x20200], 0\n mov dword [0x20018], 0x1f00\n"
		"xrstor [0x20000]\n movq r8, xmm3\n movq r9, xmm12\n"
		"fnstsw ax\n mov r10d, eax\n fnstcw [0x1f000]\n movzx r11d, word [0x1f000]\n"
		"stmxcsr [0x1f004]\n mov r12d, [0x1f004]\n hlt");
	CU_ASSERT_EQUAL(fx_vector(f), -1);
	CU_ASSERT_EQUAL(R(f, MODVM_R8), 0);
	CU_ASSERT_EQUAL(R(f, MODVM_R9), 0);
	CU_ASSERT_EQUAL(R(f, MODVM_R10) & 0xFFFF, 0);
	CU_ASSERT_EQUAL(R(f, MODVM_R11), 0x037F);
	CU_ASSERT_EQUAL(R(f, MODVM_R12), 0x1F00);
	CU_ASSERT_EQUAL(f->cpu.s.xsave[4], 0);              /* all empty */
	fx_free(f);
	/* RFBM = 1 with XSTATE_BV = 0: x87 initialised, SSE and MXCSR kept */
	f = xrun(FX_LONG64, OSXSAVE XCR0_3 XSTATE
		"mov qword [0x20200], 0\n mov qword [0x20208], 0\n mov qword [0x20210], 0\n"
		"mov eax, 1\n xor edx, edx\n xrstor [0x20000]\n movq r8, xmm3\n"
		"fnstsw ax\n mov r10d, eax\n stmxcsr [0x1f004]\n mov r12d, [0x1f004]\n hlt");
	CU_ASSERT_EQUAL(fx_vector(f), -1);
	CU_ASSERT_EQUAL(R(f, MODVM_R8), 0x1122334455667788ull);
	CU_ASSERT_EQUAL(R(f, MODVM_R10) & 0xFFFF, 0);
	CU_ASSERT_EQUAL(R(f, MODVM_R12), 0x1F81);
	fx_free(f);
}

static void test_xsave_faults(void)
{
	static const struct { const char *src; int vec; } cases[] = {
		/* not 64-byte aligned */
		{ OSXSAVE XCR0_3 "mov eax, 3\n xsave [0x20010]\n", BT_GP },
		{ OSXSAVE XCR0_3 "mov eax, 3\n xrstor [0x20020]\n", BT_GP },
		{ OSXSAVE XCR0_3 "mov eax, 3\n xsaveopt [0x20008]\n", BT_GP },
		/* XSTATE_BV bit outside XCR0 (AVX; SSE with XCR0 = 1) */
		{ OSXSAVE XCR0_3 "mov qword [0x20200], 4\n mov qword [0x20208], 0\n"
		  "mov qword [0x20210], 0\n xrstor [0x20000]\n", BT_GP },
		{ OSXSAVE "mov qword [0x20200], 2\n mov qword [0x20208], 0\n"
		  "mov qword [0x20210], 0\n mov eax, 1\n xrstor [0x20000]\n", BT_GP },
		/* XCOMP_BV (compacted form: no XSAVEC) and bytes 16-23 */
		{ OSXSAVE XCR0_3 "mov qword [0x20200], 3\n mov rax, 1 << 63\n"
		  "mov [0x20208], rax\n mov qword [0x20210], 0\n mov eax, 3\n"
		  "xrstor [0x20000]\n", BT_GP },
		{ OSXSAVE XCR0_3 "mov qword [0x20200], 3\n mov qword [0x20208], 0\n"
		  "mov qword [0x20210], 1\n mov eax, 3\n xrstor [0x20000]\n", BT_GP },
		/* MXCSR reserved bit */
		{ OSXSAVE XCR0_3 HDR0 "mov eax, 3\n xsave [0x20000]\n"
		  "mov dword [0x20018], 0x10000\n xrstor [0x20000]\n", BT_GP },
		/* CR0.TS: #NM; CR4.OSXSAVE clear: #UD */
		{ OSXSAVE "mov rax, cr0\n or eax, 8\n mov cr0, rax\n"
		  "xsave [0x20000]\n", BT_NM },
		{ "xsave [0x20000]\n", BT_UD },
		{ "xrstor [0x20000]\n", BT_UD },
		{ "xsaveopt [0x20000]\n", BT_UD },
		/* LOCK XSAVE [0x20000] (nasm refuses to assemble it) */
		{ OSXSAVE "db 0xf0, 0x0f, 0xae, 0x24, 0x25\n dd 0x20000\n", BT_UD },
	};
	char src[1024];

	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fx *f;

		snprintf(src, sizeof(src), "%s mov ebx, 1\n hlt", cases[i].src);
		f = xrun(FX_LONG64, src);
		CU_ASSERT_EQUAL(fx_vector(f), cases[i].vec);
		if (cases[i].vec == BT_GP)
			CU_ASSERT_EQUAL(ERR64(f), 0);
		CU_ASSERT_EQUAL(R(f, MODVM_RBX), 0);
		fx_free(f);
	}
}

static void test_xsave_state_import(void)
{
	/* a state whose XSTATE_BV marks x87 and SSE initial (KVM may leave
	 * stale bytes there): the values are the initial ones; an XCR0 the
	 * model cannot have goes back to 1 */
	struct fx *f = fx_new(FX_LONG64);
	struct modvm_cpu_state *s = calloc(1, sizeof(*s));

	bt_cpu_set_model(&f->cpu, &fx_model_xsave);
	bt_cpu_get_state(&f->cpu, s);
	memset(s->xsave, 0x55, 512);
	memset(s->xsave + 512, 0, 64);
	s->xcr0 = 7;
	bt_cpu_set_state(&f->cpu, s);
	CU_ASSERT_EQUAL(f->cpu.s.xsave[0], 0x7F);
	CU_ASSERT_EQUAL(f->cpu.s.xsave[1], 0x03);
	CU_ASSERT_EQUAL(f->cpu.s.xsave[2], 0);
	CU_ASSERT_EQUAL(f->cpu.s.xsave[160], 0);
	CU_ASSERT_EQUAL(f->cpu.s.xsave[24], 0x55);           /* MXCSR kept */
	CU_ASSERT_EQUAL(f->cpu.s.xsave[512], 3);
	CU_ASSERT_EQUAL(f->cpu.s.xcr0, 1);
	/* XSTATE_BV = 3: the legacy region is taken as it is */
	memset(s->xsave, 0x55, 512);
	s->xsave[512] = 3;
	s->xcr0 = 3;
	bt_cpu_set_state(&f->cpu, s);
	CU_ASSERT_EQUAL(f->cpu.s.xsave[160], 0x55);
	CU_ASSERT_EQUAL(f->cpu.s.xsave[2], 0x55);
	CU_ASSERT_EQUAL(f->cpu.s.xcr0, 3);
	free(s);
	fx_free(f);
}

/* Last: under BT_MODE=translate the 64-bit code above must really have
 * run translated (the totals also show how much). */
static void test_translated(void)
{
	uint64_t blocks = fx_jit_report("bt_exec");

	if (fx_translate_wanted())
		CU_ASSERT(blocks > 0);
}

int main(void)
{
	static const struct test_case tests[] = {
		TEST(test_alu_flags), TEST(test_alu_64), TEST(test_shifts),
		TEST(test_muldiv), TEST(test_divide_error), TEST(test_bcd),
		TEST(test_bitops), TEST(test_exchange), TEST(test_lock_atomic),
		TEST(test_strings),
		TEST(test_stack_calls), TEST(test_cpuid_tsc_msr),
		TEST(test_io_permission), TEST(test_real_mode), TEST(test_a20_mask),
		TEST(test_mode_switch), TEST(test_segment_checks),
		TEST(test_paging_32), TEST(test_paging_64_nx_user),
		TEST(test_long_mode_rings), TEST(test_syscall_sysret),
		TEST(test_sysenter_sysexit), TEST(test_system_misc),
		TEST(test_exceptions_df_triple), TEST(test_interrupts_shadow),
		TEST(test_single_step), TEST(test_debug_registers), TEST(test_task_switch), TEST(test_task_switch16), TEST(test_v86),
		TEST(test_call_gate),
		TEST(test_mmio), TEST(test_sse2),
		TEST(test_x87), TEST(test_x87_mf), TEST(test_x87_precision),
		TEST(test_sse_xm), TEST(test_sse_daz_ftz),
		TEST(test_alignment_check), TEST(test_fxsave_roundtrip),
		TEST(test_fxsave_pointers_vendor),
		TEST(test_state_roundtrip), TEST(test_injected_event),
		TEST(test_xsave_cpuid_cr4), TEST(test_xgetbv_xsetbv),
		TEST(test_xsave_area), TEST(test_xrstor), TEST(test_xsave_faults),
		TEST(test_xsave_state_import), TEST(test_translated),
	};

	return RUN_TESTS("bt_exec", tests);
}
