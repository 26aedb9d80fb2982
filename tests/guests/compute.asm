; compute: a ring-3 integer loop for benchmarks. Long mode with a TSS
; (RSP0), an INT 0x80 gate of DPL 3 and SYSCALL/SYSRET (EFER.SCE, STAR,
; LSTAR, FMASK); IRETQ drops to ring 3, which runs COMPUTE_ITERS rounds of
; xorshift64 (x ^= x << 13; x ^= x >> 7; x ^= x << 17) from a fixed seed,
; reports the result with SYSCALL (the kernel prints it and SYSRETs), then
; exits with INT 0x80 (the kernel checks it arrived from ring 3 on the RSP0
; stack and compares the result with the known value).
;
; Build with -DCOMPUTE_ITERS=n for another length; the result is only
; checked for the default 200,000,000 (about 1.2 G integer operations).
; Final registers: EBX = RESULT_PASS, ECX = 0x2AF920F3 (low half of the
; result, default length).

%define GUEST_NAME "compute"
%include "lib/guest.inc"

%ifndef COMPUTE_ITERS
 %define COMPUTE_ITERS 200000000
%endif
SEED            equ 0x9E3779B97F4A7C15
EXPECTED        equ 0x8B058DF42AF920F3  ; after 200,000,000 rounds
SYS_RESULT      equ 1                   ; SYSCALL: RDI = result, returns RAX=0
SYS_EXIT        equ 60                  ; INT 0x80
TSS_SIZE        equ 104
TSS_RSP0        equ 4
TSS_IOMAP       equ 102
RFLAGS_IF       equ 1 << 9

main:
        mov     ax, 0xFFFF              ; ring 3 runs with IF=1: silence the
        call    pic_init                ; 8259As (moved off exception vectors)
        mov     eax, kernel64
        jmp     enter_long_mode

%include "lib/longmode.inc"

        bits    64
kernel64:
        mov     eax, tss
        mov     ecx, TSS_SIZE - 1
        GDT_SET_TSS
        mov     rax, kstack_top
        mov     [tss + TSS_RSP0], rax
        mov     word [tss + TSS_IOMAP], TSS_SIZE    ; no I/O bitmap
        mov     ax, SEL_TSS
        ltr     ax

        mov     eax, 0x80
        mov     rdx, int80_entry
        mov     cl, 0xEE                ; present, DPL 3, interrupt gate
        call    idt64_set_gate

        mov     ecx, MSR_EFER
        rdmsr
        or      eax, EFER_SCE
        wrmsr
        mov     ecx, MSR_STAR           ; SYSRET base 0x38, SYSCALL CS 0x28
        xor     eax, eax
        mov     edx, ((SEL_UCODE32 & ~3) << 16) | SEL_CODE64
        wrmsr
        mov     ecx, MSR_LSTAR
        mov     rax, syscall_entry
        mov     rdx, rax
        shr     rdx, 32
        wrmsr
        mov     ecx, MSR_FMASK          ; clear IF, DF, TF on SYSCALL
        mov     eax, 0x700
        xor     edx, edx
        wrmsr
        println GUEST_NAME, ": long mode ring 0: TSS, INT 0x80 gate DPL 3, SYSCALL via LSTAR"
        print   GUEST_NAME, ": ring 3: "
        print_dec COMPUTE_ITERS
        println " rounds of xorshift64"

        push    qword SEL_UDATA         ; SS
        push    qword ustack_top        ; RSP
        push    qword 0x2 | RFLAGS_IF   ; RFLAGS
        push    qword SEL_UCODE64       ; CS
        push    qword user_main         ; RIP
        iretq

; --- ring 3 (no port I/O here: IOPL is 0) ---
user_main:
        mov     rax, SEED
        mov     ecx, COMPUTE_ITERS
.round: mov     rdx, rax
        shl     rdx, 13
        xor     rax, rdx
        mov     rdx, rax
        shr     rdx, 7
        xor     rax, rdx
        mov     rdx, rax
        shl     rdx, 17
        xor     rax, rdx
        dec     ecx
        jnz     .round
        mov     rdi, rax
        mov     eax, SYS_RESULT
        syscall
        mov     rdi, rax                ; the kernel's answer: 0
        mov     eax, SYS_EXIT
        int     0x80
        ud2

; --- ring 0 ---
; SYSCALL: RCX = user RIP, R11 = user RFLAGS, RSP still the user stack.
syscall_entry:
        mov     [user_rsp], rsp
        mov     rsp, kstack_top
        push    rcx
        push    r11
        mov     ax, cs
        cmp     ax, SEL_CODE64
        CHECK   e, "SYSCALL did not load CS from STAR"
        mov     ax, ss
        cmp     ax, SEL_DATA64
        CHECK   e, "SYSCALL did not load SS from STAR + 8"
        test    r11, RFLAGS_IF
        CHECK   nz, "SYSCALL saved RFLAGS without IF in R11"
        pushfq
        pop     rax
        test    rax, RFLAGS_IF
        CHECK   z, "FMASK did not clear IF on SYSCALL"
        mov     [result], rdi
        inc     dword [syscalls]
        print   GUEST_NAME, ": SYSCALL from ring 3: result=0x"
        print_hex64 rdi
        print_nl
        xor     eax, eax
        pop     r11
        pop     rcx
        mov     rsp, [user_rsp]
        o64 sysret

; INT 0x80 from ring 3 arrives on the RSP0 stack: RIP, CS, RFLAGS, RSP, SS.
int80_entry:
        cmp     rsp, kstack_top - 5 * 8
        CHECK   e, "INT 0x80 from ring 3 did not switch to TSS.RSP0"
        mov     rdx, [rsp + 8]
        cmp     rdx, SEL_UCODE64
        CHECK   e, "INT 0x80 frame CS is not the ring-3 code selector"
        mov     rdx, [rsp + 32]
        cmp     rdx, SEL_UDATA
        CHECK   e, "INT 0x80 frame SS is not the ring-3 data selector"
        cmp     eax, SYS_EXIT
        CHECK   e, "INT 0x80 with an unknown call number"
        test    rdi, rdi
        CHECK   z, "SYSRET did not return the kernel's RAX to ring 3"
        cmp     dword [syscalls], 1
        CHECK   e, "expected exactly one SYSCALL before exit"
        println GUEST_NAME, ": INT 0x80 exit from ring 3"
%if COMPUTE_ITERS == 200000000
        mov     rax, EXPECTED
        cmp     [result], rax
        CHECK   e, "xorshift64 result is not 0x8B058DF42AF920F3"
%else
        println GUEST_NAME, ": result not checked (non-default COMPUTE_ITERS)"
%endif
        PASS    [result]

        section .bss
        alignb  16
tss:            resb TSS_SIZE
        alignb  16
kstack:         resb 4096
kstack_top:
ustack:         resb 4096
ustack_top:
result:         resq 1
user_rsp:       resq 1
syscalls:       resd 1
        section .text

%include "lib/end.inc"
