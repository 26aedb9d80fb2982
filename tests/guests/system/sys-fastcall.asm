; sys-fastcall: the fast system-call instructions and the registers they
; define (Intel SDM vol. 2 SYSENTER/SYSEXIT/SYSCALL/SYSRET; AMD APM vol. 2
; 6.1): SYSEXIT to ring 3 and SYSENTER back in 32-bit protected mode
; (CS/SS from IA32_SYSENTER_CS, ESP/EIP from the MSRs and from ECX/EDX),
; then in long mode SYSRETQ to 64-bit ring 3 and SYSCALL back through LSTAR
; (RCX = return RIP, R11 = RFLAGS, FMASK applied, RSP untouched), and
; SYSRETL to compatibility mode and SYSCALL back through CSTAR.

%define GUEST_NAME "sys-fastcall"
%include "lib/guest.inc"
%include "sys.inc"

MSR_SYSENTER_CS  equ 0x174
MSR_SYSENTER_ESP equ 0x175
MSR_SYSENTER_EIP equ 0x176
MSR_CSTAR        equ 0xC0000083
; AC, DF and the reserved bit 1. No arithmetic flags: QEMU TCG (7.2), the
; reference, clears them on SYSCALL, while the SDM keeps all but FMASK.
USER_FLAGS       equ 0x40402

main:
        ; SYSENTER_CS = 0x28: kernel CS 0x28, SS 0x30; SYSEXIT to CS
        ; 0x28+16 = user code32 (0x3B) and SS 0x28+24 = user data (0x43)
        mov     ecx, MSR_SYSENTER_CS
        mov     eax, SEL_CODE64
        xor     edx, edx
        wrmsr
        mov     ecx, MSR_SYSENTER_ESP
        mov     eax, kstack_top
        wrmsr
        mov     ecx, MSR_SYSENTER_EIP
        mov     eax, sysenter_entry
        wrmsr
        mov     edx, ring3_32
        mov     ecx, ustack_top
        mov     ebx, 0x600DB0B0
        sysexit

ring3_32:
        mov     eax, cs
        mov     [sx_cs], eax
        mov     eax, ss
        mov     [sx_ss], eax
        mov     [sx_esp], esp
        mov     [sx_ebx], ebx
        mov     edx, .back                      ; SYSEXIT's EIP next time
        mov     ecx, esp
        mov     ebx, 0x12345678
        sysenter
.back:  jmp     $                               ; not reached

sysenter_entry:
        mov     eax, cs
        mov     [se_cs], eax
        mov     eax, ss
        mov     [se_ss], eax
        mov     [se_esp], esp
        mov     [se_ebx], ebx
        mov     [se_ecx], ecx
        mov     ax, SEL_DATA
        mov     ss, ax
        mov     esp, stack_top
        mov     eax, kernel64
        jmp     enter_long_mode

%include "lib/longmode.inc"

        bits    64
kernel64:
        mov     ecx, MSR_EFER
        rdmsr
        or      eax, EFER_SCE
        wrmsr
        mov     ecx, MSR_STAR                   ; SYSCALL CS 0x28 / SS 0x30,
        xor     eax, eax                        ; SYSRET base 0x38
        mov     edx, (SEL_UCODE32 & ~3) << 16 | SEL_CODE64
        wrmsr
        mov     ecx, MSR_LSTAR
        mov     eax, syscall64_entry
        xor     edx, edx
        wrmsr
        mov     ecx, MSR_CSTAR
        mov     eax, syscall32_entry
        wrmsr
        mov     ecx, MSR_FMASK
        mov     eax, 0x400                      ; clear DF on entry
        wrmsr
        mov     rcx, ring3_64
        mov     r11, USER_FLAGS
        mov     rsp, ustack_top
        mov     rbx, 0x1122334455667788
        o64 sysret

ring3_64:
        mov     eax, cs
        mov     [sr_cs], eax
        mov     eax, ss
        mov     [sr_ss], eax
        pushfq
        pop     rax
        mov     [sr_flags], eax
        mov     [sr_rbx], rbx
        mov     r12, rsp
        syscall
.after: jmp     $                               ; not reached

syscall64_entry:
        pushfq                                  ; on the user stack: SYSCALL
        mov     rax, rsp                        ; does not switch stacks
        sub     rax, r12
        mov     [sc_rsp], eax
        pop     rax
        mov     [sc_flags], eax
        mov     [sc_rcx], rcx
        mov     rax, ring3_64.after
        sub     [sc_rcx], rax                   ; 0: RCX is the next RIP
        mov     [sc_r11], r11
        mov     eax, cs
        mov     [sc_cs], eax
        mov     eax, ss
        mov     [sc_ss], eax
        ; now to compatibility mode with SYSRETL
        mov     ecx, ring3_compat
        mov     r11, 0x2
        sysret

        bits    32
ring3_compat:
        mov     eax, cs
        mov     [cm_cs], eax
        mov     eax, ss
        mov     [cm_ss], eax
        syscall
.after: jmp     $
        bits    64

syscall32_entry:
        mov     [cs_rcx], rcx
        mov     rax, ring3_compat.after
        sub     [cs_rcx], rax
        mov     eax, cs
        mov     [cs_cs], eax
        mov     ax, SEL_DATA
        mov     ss, ax
        mov     esp, stack_top
        STATE_BEGIN
        STATE_KV "sx_cs", [sx_cs]
        STATE_KV "sx_ss", [sx_ss]
        STATE_KV "sx_esp", [sx_esp]
        STATE_KV "sx_ebx", [sx_ebx]
        STATE_KV "se_cs", [se_cs]
        STATE_KV "se_ss", [se_ss]
        STATE_KV "se_esp", [se_esp]
        STATE_KV "se_ebx", [se_ebx]
        STATE_KV "sr_cs", [sr_cs]
        STATE_KV "sr_ss", [sr_ss]
        STATE_KV "sr_flags", [sr_flags]
        STATE_KV "sr_rbx_hi", [sr_rbx + 4]
        STATE_KV "sc_rcx", [sc_rcx]
        STATE_KV "sc_r11", [sc_r11]
        STATE_KV "sc_flags", [sc_flags]
        STATE_KV "sc_cs", [sc_cs]
        STATE_KV "sc_ss", [sc_ss]
        STATE_KV "sc_rsp", [sc_rsp]
        STATE_KV "cm_cs", [cm_cs]
        STATE_KV "cm_ss", [cm_ss]
        STATE_KV "cs_rcx", [cs_rcx]
        STATE_KV "cs_cs", [cs_cs]
        STATE_END
        cmp     dword [sx_cs], SEL_UCODE32
        CHECK   e, "SYSEXIT CS"
        cmp     dword [se_esp], kstack_top
        CHECK   e, "SYSENTER ESP"
        cmp     dword [se_cs], SEL_CODE64
        CHECK   e, "SYSENTER CS"
        cmp     dword [se_ebx], 0x12345678
        CHECK   e, "SYSENTER changed EBX"
        cmp     dword [sr_cs], SEL_UCODE64
        CHECK   e, "SYSRETQ CS"
        cmp     dword [sr_flags], USER_FLAGS
        CHECK   e, "SYSRETQ RFLAGS from R11"
        cmp     dword [sc_rcx], 0
        CHECK   e, "SYSCALL RCX"
        cmp     dword [sc_r11], USER_FLAGS
        CHECK   e, "SYSCALL R11"
        cmp     dword [sc_flags], USER_FLAGS & ~0x400
        CHECK   e, "FMASK did not clear DF"
        cmp     dword [sc_rsp], -8
        CHECK   e, "SYSCALL switched stacks"
        cmp     dword [cm_cs], SEL_UCODE32
        CHECK   e, "SYSRETL CS"
        cmp     dword [cs_rcx], 0
        CHECK   e, "SYSCALL from compatibility mode RCX"
        PASS    [sc_r11]

        section .bss
        alignb  16
                resb 4096
kstack_top:
                resb 4096
ustack_top:
sx_cs:  resd 1
sx_ss:  resd 1
sx_esp: resd 1
sx_ebx: resd 1
se_cs:  resd 1
se_ss:  resd 1
se_esp: resd 1
se_ebx: resd 1
se_ecx: resd 1
sr_cs:  resd 1
sr_ss:  resd 1
sr_flags: resd 1
sr_rbx: resq 1
sc_rcx: resq 1
sc_r11: resq 1
sc_flags: resd 1
sc_cs:  resd 1
sc_ss:  resd 1
sc_rsp: resd 1
cm_cs:  resd 1
cm_ss:  resd 1
cs_rcx: resq 1
cs_cs:  resd 1
        section .text
%include "lib/end.inc"
