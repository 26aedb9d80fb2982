; modes: walk the CPU through its operating modes and print from each.
;   32-bit protected mode (multiboot entry)
;   -> 16-bit protected mode -> real mode (CR0.PE=0): print via port I/O,
;      check CR0.PE, segment*16 addressing, INT n through the IVT, 32-bit
;      operand/address prefixes
;   -> back to 32-bit protected mode (LGDT with a 32-bit base, far JMP)
;   -> long mode (PAE, 4-level paging, 2 MiB pages, EFER.LME): check
;      EFER.LMA, compute 20! with 64-bit multiplies and a 128-bit add carry.
;
; Final registers: EBX = RESULT_PASS, ECX = 0x82B40000 (low half of 20!).

%define GUEST_NAME "modes"
%include "lib/guest.inc"

RM_BASE         equ 0x8000              ; the real-mode code is copied here
RM_STACK        equ 0x7C00
RM_STATUS       equ 0x6000              ; a word, on a page without code
RM_INT_VECTOR   equ 0x50
%define RM(x)   ((x) - rm_begin + RM_BASE)

; RM_STATUS values, set by the real-mode code
RM_OK           equ 1
RM_BAD_PE       equ 2
RM_BAD_SEGMENT  equ 3
RM_BAD_INT      equ 4
RM_BAD_OPSIZE   equ 5

main:
        mov     eax, cr0
        test    eax, CR0_PE
        CHECK   nz, "CR0.PE clear at entry"
        println GUEST_NAME, ": 32-bit protected mode, CR0.PE=1"

        mov     esi, rm_begin           ; real mode runs below 1 MiB
        mov     edi, RM_BASE
        mov     ecx, rm_end - rm_begin
        rep movsb
        mov     [saved_esp], esp
        jmp     SEL_CODE16:RM(pm16)

pm_back:                                ; from real mode, CS = SEL_CODE32
        mov     ax, SEL_DATA
        mov     ds, ax
        mov     es, ax
        mov     fs, ax
        mov     gs, ax
        mov     ss, ax
        mov     esp, [saved_esp]
        lidt    [idt32_ptr]
        mov     eax, cr0
        test    eax, CR0_PE
        CHECK   nz, "CR0.PE clear after returning to protected mode"
        movzx   eax, word [RM_STATUS]
        cmp     eax, RM_BAD_PE
        CHECK   ne, "CR0.PE read as 1 in real mode"
        cmp     eax, RM_BAD_SEGMENT
        CHECK   ne, "real-mode segment:offset did not address segment*16+offset"
        cmp     eax, RM_BAD_INT
        CHECK   ne, "real-mode INT 50h through the IVT did not run its handler"
        cmp     eax, RM_BAD_OPSIZE
        CHECK   ne, "32-bit operand/address size in real mode gave a wrong result"
        cmp     eax, RM_OK
        CHECK   e, "real-mode code did not complete"
        println GUEST_NAME, ": back in 32-bit protected mode"

        mov     eax, long_main
        jmp     enter_long_mode

        section .bss
saved_esp:      resd 1
        section .text

; ---------------------------------------------------------------------------
; Real-mode trampoline: position-dependent on RM_BASE, copied there by main.
        bits    16
rm_begin:
pm16:                                   ; 16-bit protected mode, CS base 0
        mov     ax, SEL_DATA16          ; 64 KiB limits, as real mode expects
        mov     ds, ax
        mov     es, ax
        mov     fs, ax
        mov     gs, ax
        mov     ss, ax
        mov     eax, cr0
        and     eax, ~CR0_PE
        mov     cr0, eax
        jmp     0x0000:RM(rm_entry)     ; reload CS with a real-mode segment

rm_entry:
        xor     ax, ax
        mov     ds, ax
        mov     es, ax
        mov     fs, ax
        mov     gs, ax
        mov     ss, ax
        mov     sp, RM_STACK
        lidt    [RM(rm_idtr)]           ; the IVT at linear 0
        mov     si, RM(msg_rm)
        call    rm_puts

        mov     word [RM_STATUS], RM_BAD_PE
        smsw    ax
        test    al, CR0_PE
        jnz     .to_pm

        mov     word [RM_STATUS], RM_BAD_SEGMENT
        mov     word [0x7010], 0
        mov     ax, 0x0700              ; 0700:0010 is linear 0x7010
        mov     es, ax
        mov     word [es:0x0010], 0xBEEF
        cmp     word [0x7010], 0xBEEF
        jne     .to_pm
        xor     ax, ax
        mov     es, ax

        mov     word [RM_STATUS], RM_BAD_INT
        mov     word [RM_INT_VECTOR * 4], RM(rm_int_handler)
        mov     word [RM_INT_VECTOR * 4 + 2], 0
        xor     dx, dx
        int     RM_INT_VECTOR
        cmp     dx, 0x1234
        jne     .to_pm

        mov     word [RM_STATUS], RM_BAD_OPSIZE
        mov     eax, 0x12345678         ; operand-size prefix
        add     eax, 0x9ABCDEF0
        cmp     eax, 0xACF13568
        jne     .to_pm
        mov     esi, 0x7010             ; address-size prefix
        cmp     word [esi], 0xBEEF
        jne     .to_pm

        mov     word [RM_STATUS], RM_OK
        mov     si, RM(msg_rm_ok)
        call    rm_puts

.to_pm: cli
        o32 lgdt [RM(rm_gdtr)]          ; 32-bit base form
        mov     eax, cr0
        or      eax, CR0_PE
        mov     cr0, eax
        jmp     dword SEL_CODE32:pm_back

rm_int_handler:
        mov     dx, 0x1234
        iret

; SI = NUL-terminated string (DS = 0).
rm_puts:
        push    ax
        push    dx
.next:  lodsb
        test    al, al
        jz      .done
        mov     ah, al
        mov     dx, COM1_LSR
.wait:  in      al, dx
        test    al, LSR_THRE
        jz      .wait
        mov     al, ah
        mov     dx, COM1_THR
        out     dx, al
        jmp     .next
.done:  pop     dx
        pop     ax
        ret

rm_gdtr:        dw gdt_end - gdt - 1
                dd gdt
rm_idtr:        dw 0x3FF
                dd 0
msg_rm:         db GUEST_NAME, ": 16-bit real mode, CR0.PE=0", 10, 0
msg_rm_ok:      db GUEST_NAME, ": real mode: segment*16 addressing, INT 50h via the IVT, 32-bit prefixes ok", 10, 0
rm_end:
        bits    32

; ---------------------------------------------------------------------------
%include "lib/longmode.inc"

        bits    64
long_main:
        mov     ecx, MSR_EFER
        rdmsr
        test    eax, EFER_LMA
        CHECK   nz, "EFER.LMA clear in 64-bit code"
        println GUEST_NAME, ": 64-bit long mode, EFER.LMA=1"

        mov     eax, 1                  ; RAX = 20!, beyond 32 bits from 13!
        mov     ecx, 1
.fact:  imul    rax, rcx
        inc     ecx
        cmp     ecx, 20
        jbe     .fact
        print   GUEST_NAME, ": 20! = 0x"
        print_hex64 rax
        print   " = "
        print_dec64 rax
        print_nl
        mov     rdx, 0x21C3677C82B40000
        cmp     rax, rdx
        CHECK   e, "20! computed in 64-bit registers is wrong"

        mov     r8, -1                  ; 128-bit R9:R8 = (2^64 - 1) + 1
        xor     r9d, r9d
        add     r8, 1
        adc     r9, 0
        test    r8, r8
        CHECK   z, "64-bit add did not wrap to zero"
        cmp     r9, 1
        CHECK   e, "64-bit add did not carry into the high half"

        PASS    0x82B40000

%include "lib/end.inc"
