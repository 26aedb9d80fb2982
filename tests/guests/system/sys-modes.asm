; sys-modes: the chain of x86 operating modes (Intel SDM vol. 3, 9.9 and
; 10.8.5): 32-bit protected mode -> 16-bit protected mode -> real mode;
; then real mode -> 16-bit protected mode -> 32-bit protected mode -> PAE
; paging (a 2 MiB alias at 1 GiB) -> paging off -> long mode (EFER.LMA) ->
; compatibility mode (a 32-bit code segment under IA-32e) -> 64-bit mode.
; Each stage records what shows which mode the CPU is in: CR0.PE/PG, the
; code selector, the stack slot size of PUSH.

%define GUEST_NAME "sys-modes"
%include "lib/guest.inc"
%include "sys.inc"

RM_BASE         equ 0x8000              ; the real-mode code is copied here
RM_STACK        equ 0x7C00
RM_DATA         equ 0x6000              ; results from 16-bit code (words)
%define RM(x)   ((x) - rm_begin + RM_BASE)
ALIAS_1G        equ 0x40000000          ; PAE: PDPT[1] maps the first GiB again

main:
        mov     esi, rm_begin
        mov     edi, RM_BASE
        mov     ecx, rm_end - rm_begin
        rep movsb
        mov     edi, RM_DATA
        mov     ecx, 64
        xor     eax, eax
        rep stosb
        mov     [saved_esp], esp
        jmp     SEL_CODE16:RM(pm16_down)

pm32_back:                              ; from 16-bit PM, CS = SEL_CODE32
        mov     ax, SEL_DATA
        mov     ds, ax
        mov     es, ax
        mov     ss, ax
        mov     esp, [saved_esp]
        lidt    [idt32_ptr]
        mov     eax, cs
        mov     [pm32_cs], eax
        mov     eax, cr0
        and     eax, CR0_PE | CR0_PG
        mov     [pm32_cr0], eax

        ; --- PAE paging: 2 MiB pages for the first GiB, twice ---
        mov     eax, pae_pd
        mov     edx, 0x083                      ; P | RW | PS
.pde:   mov     [eax], edx
        mov     dword [eax + 4], 0
        add     edx, 0x200000
        add     eax, 8
        cmp     eax, pae_pd + 4096
        jb      .pde
        mov     dword [pae_pdpt], pae_pd + 1    ; PDPTEs: P only
        mov     dword [pae_pdpt + 8], pae_pd + 1
        mov     dword [0x1FF000], 0xA11A5       ; seen through the alias
        mov     eax, pae_pdpt
        mov     cr3, eax
        mov     eax, cr4
        or      eax, CR4_PAE
        mov     cr4, eax
        mov     eax, cr0
        or      eax, CR0_PG
        mov     cr0, eax
        mov     eax, [ALIAS_1G + 0x1FF000]
        mov     [pae_alias], eax
        mov     eax, cr0
        and     eax, CR0_PE | CR0_PG
        mov     [pae_cr0], eax
        mov     eax, cr4
        and     eax, CR4_PAE
        mov     [pae_cr4], eax
        mov     eax, cr0                        ; paging off to set EFER.LME
        and     eax, ~CR0_PG
        mov     cr0, eax
        mov     eax, long64
        jmp     enter_long_mode

%include "lib/longmode.inc"

        bits    64
long64:
        mov     ecx, MSR_EFER
        rdmsr
        and     eax, EFER_LME | EFER_LMA
        mov     [lm_efer], eax
        mov     eax, cs
        mov     [lm_cs], eax
        mov     rax, rsp
        push    rax
        sub     rax, rsp
        pop     rcx
        mov     [lm_push], eax
        jmp     dword far [rel to_compat]   ; m16:32

        bits    32
compat32:                               ; IA-32e compatibility mode
        mov     eax, cs
        mov     [cm_cs], eax
        mov     eax, esp
        push    eax
        sub     eax, esp
        pop     ecx
        mov     [cm_push], eax
        mov     ecx, MSR_EFER
        rdmsr
        and     eax, EFER_LME | EFER_LMA
        mov     [cm_efer], eax
        jmp     SEL_CODE64:back64

        bits    64
back64:
        mov     eax, cs
        mov     [b64_cs], eax
        mov     rax, 0x1122334455667788
        shr     rax, 32
        mov     [b64_hi], eax
        STATE_BEGIN
        STATE_KV "rm_cr0", [RM_DATA + 0]
        STATE_KV "rm_cs", [RM_DATA + 4]
        STATE_KV "rm_seg", [RM_DATA + 8]
        STATE_KV "pm16_cs", [RM_DATA + 12]
        STATE_KV "pm16_push", [RM_DATA + 16]
        STATE_KV "pm16_cr0", [RM_DATA + 20]
        STATE_KV "pm32_cs", [pm32_cs]
        STATE_KV "pm32_cr0", [pm32_cr0]
        STATE_KV "pae_cr0", [pae_cr0]
        STATE_KV "pae_cr4", [pae_cr4]
        STATE_KV "pae_alias", [pae_alias]
        STATE_KV "lm_efer", [lm_efer]
        STATE_KV "lm_cs", [lm_cs]
        STATE_KV "lm_push", [lm_push]
        STATE_KV "cm_cs", [cm_cs]
        STATE_KV "cm_push", [cm_push]
        STATE_KV "cm_efer", [cm_efer]
        STATE_KV "b64_cs", [b64_cs]
        STATE_KV "b64_hi", [b64_hi]
        STATE_END
        cmp     dword [RM_DATA + 0], 0
        CHECK   e, "CR0.PE/PG in real mode"
        cmp     dword [RM_DATA + 8], 0xBEEF
        CHECK   e, "real-mode segment*16 addressing"
        cmp     dword [RM_DATA + 12], SEL_CODE16
        CHECK   e, "16-bit protected mode CS"
        cmp     dword [RM_DATA + 16], 0x0402
        CHECK   e, "16-bit protected mode PUSH sizes"
        cmp     dword [pae_alias], 0xA11A5
        CHECK   e, "PAE alias"
        cmp     dword [lm_efer], EFER_LME | EFER_LMA
        CHECK   e, "EFER.LMA in long mode"
        cmp     dword [lm_push], 8
        CHECK   e, "64-bit PUSH size"
        cmp     dword [cm_cs], SEL_CODE32
        CHECK   e, "compatibility mode CS"
        cmp     dword [cm_push], 4
        CHECK   e, "compatibility mode PUSH size"
        cmp     dword [cm_efer], EFER_LME | EFER_LMA
        CHECK   e, "EFER.LMA in compatibility mode"
        cmp     dword [b64_hi], 0x11223344
        CHECK   e, "64-bit registers after compatibility mode"
        PASS    [b64_cs]

to_compat:
        dd      compat32
        dw      SEL_CODE32

; --- 16-bit code, run from RM_BASE ---
        bits    16
rm_begin:
pm16_down:                              ; 16-bit PM from 32-bit PM
        mov     ax, SEL_DATA16
        mov     ds, ax
        mov     es, ax
        mov     ss, ax
        mov     eax, cr0
        and     eax, ~CR0_PE
        mov     cr0, eax
        jmp     0x0000:RM(rm_entry)

rm_entry:
        xor     ax, ax
        mov     ds, ax
        mov     es, ax
        mov     ss, ax
        mov     sp, RM_STACK
        lidt    [RM(rm_idtr)]
        mov     eax, cr0
        and     eax, CR0_PE | CR0_PG
        mov     [RM_DATA + 0], eax
        mov     [RM_DATA + 4], cs
        mov     ax, 0x0700                      ; 0700:0010 = linear 0x7010
        mov     es, ax
        mov     word [es:0x0010], 0xBEEF
        mov     ax, [0x7010]
        mov     [RM_DATA + 8], ax
        xor     ax, ax
        mov     es, ax
        ; real mode -> 16-bit protected mode
        cli
        o32 lgdt [RM(rm_gdtr)]
        mov     eax, cr0
        or      eax, CR0_PE
        mov     cr0, eax
        jmp     SEL_CODE16:RM(pm16_up)

pm16_up:
        mov     ax, SEL_DATA16
        mov     ds, ax
        mov     ss, ax
        mov     [RM_DATA + 12], cs
        mov     eax, cr0
        and     eax, CR0_PE | CR0_PG
        mov     [RM_DATA + 20], eax
        mov     bx, sp
        push    ax                              ; 2 bytes
        sub     bx, sp
        mov     [RM_DATA + 16], bl
        mov     bx, sp
        push    eax                             ; 4 bytes (operand prefix)
        sub     bx, sp
        mov     [RM_DATA + 17], bl
        add     sp, 6
        jmp     dword SEL_CODE32:pm32_back

rm_idtr:
        dw      0x3FF
        dd      0
rm_gdtr:
        dw      gdt_end - gdt - 1
        dd      gdt
rm_end:
        bits    32

        section .bss
        alignb  4096
pae_pd:         resb 4096
pae_pdpt:       resb 32
saved_esp:      resd 1
pm32_cs:        resd 1
pm32_cr0:       resd 1
pae_cr0:        resd 1
pae_cr4:        resd 1
pae_alias:      resd 1
lm_efer:        resd 1
lm_cs:          resd 1
lm_push:        resd 1
cm_cs:          resd 1
cm_push:        resd 1
cm_efer:        resd 1
b64_cs:         resd 1
b64_hi:         resd 1
        section .text
%include "lib/end.inc"
