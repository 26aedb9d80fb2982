; sys-exceptions: exception classes in 32-bit protected mode with their
; error codes and return EIPs (Intel SDM vol. 3, 6.13 and 6.15): #DE, #UD,
; #GP with selector error codes, #NP, #SS (not-present SS and a limit
; violation), #PF with CR2 (read and write), #DF from a #PF whose IDT entry
; is not present (6.15 table 6-5: page fault then contributory), #BP and
; #OF as traps (return EIP after the instruction), #GP(0) for a null CS.

%define GUEST_NAME "sys-exceptions"
%include "lib/guest.inc"
%include "sys.inc"

SEL_X1          equ 0x50                ; scratch GDT slots (the TSS slot,
SEL_X2          equ 0x58                ; unused by this 32-bit guest)
HOLE            equ 0x300000            ; a not-present 4 KiB page

main:
        call    catch32_init
        call    paging_on

        xor     edx, edx
        mov     eax, 1
        xor     ecx, ecx
        TRY     .de, div     ecx
        RECORD  "de", .de, 0, 0, 0

        TRY     .ud, ud2
        RECORD  "ud", .ud, 6, 0, 0

        mov     ax, 0xF8
        TRY     .gp1, mov     ds, ax
        RECORD  "gp_limit", .gp1, 13, 0xF8, 0

        mov     ax, SEL_UDATA
        TRY     .gp2, mov     ss, ax
        RECORD  "gp_ss_rpl", .gp2, 13, SEL_UDATA & ~3, 0

        mov     ax, SEL_CODE32
        TRY     .gp3, mov     ss, ax
        RECORD  "gp_ss_code", .gp3, 13, SEL_CODE32, 0

        TRY     .gp4, jmp     0:.gp4
        RECORD  "gp_null_cs", .gp4, 13, 0, 0

        ; data segment, P=0: #NP(sel) for DS, #SS(sel) for SS
        mov     dword [gdt + SEL_X1], 0x0000FFFF
        mov     dword [gdt + SEL_X1 + 4], 0x00CF1200
        mov     ax, SEL_X1
        TRY     .np, mov     ds, ax
        RECORD  "np_ds", .np, 11, SEL_X1, 0

        mov     ax, SEL_X1
        TRY     .ss1, mov     ss, ax
        RECORD  "ss_np", .ss1, 12, SEL_X1, 0

        TRY     .pf1, mov     eax, [HOLE + 0x123]
        RECORD  "pf_read", .pf1, 14, 0, 0
        mov     eax, [exc_cr2]
        mov     [cr2_read], eax
        cmp     eax, HOLE + 0x123
        CHECK   e, "CR2 after the read fault"

        TRY     .pf2, mov     byte [HOLE + 0xFFF], 1
        RECORD  "pf_write", .pf2, 14, 2, 0
        mov     eax, [exc_cr2]
        mov     [cr2_write], eax
        cmp     eax, HOLE + 0xFFF
        CHECK   e, "CR2 after the write fault"

        ; #DF: clear P in the #PF gate; delivering the #PF raises #NP with
        ; the IDT error code (vector 14 * 8 + 2), which turns into #DF(0)
        and     byte [idt32 + 14 * 8 + 5], 0x7F
        TRY     .df, mov     eax, [HOLE]
        RECORD  "df", .df, 8, 0, 0
        or      byte [idt32 + 14 * 8 + 5], 0x80
        mov     eax, [exc_cr2]
        mov     [cr2_df], eax

        EXPECT  CATCH_RETURN
.bp:    int3
        RECORD  "bp", .bp, 3, 0, 1

        EXPECT  CATCH_RETURN
.bp2:   int     3
        RECORD  "int3_cd", .bp2, 3, 0, 2

        mov     al, 0x7F
        add     al, 1                           ; OF=1
        EXPECT  CATCH_RETURN
.of:    into
        RECORD  "of", .of, 4, 0, 1
        mov     eax, [exc_eflags]
        and     eax, 0x8D5                      ; OF SF ZF AF PF CF
        mov     [of_flags], eax

        mov     word [idt32_ptr_small], 0x3FF   ; a shortened IDT limit:
        lidt    [idt32_ptr_small]               ; #GP(vector*8+2)
        TRY     .gpi, int     0x90
        RECORD  "gp_idt_limit", .gpi, 13, 0x90 * 8 + 2, 0
        lidt    [idt32_ptr]

        STATE_BEGIN
        call    state_records32
        STATE_KV "cr2_read", [cr2_read]
        STATE_KV "cr2_write", [cr2_write]
        STATE_KV "cr2_df", [cr2_df]
        STATE_KV "of_flags", [of_flags]
        STATE_KV "count", [exc_count]
        STATE_END
        mov     eax, [exc_count]
        cmp     eax, 15
        CHECK   e, "exception count"
        PASS    [exc_count]

; 32-bit paging, 4 KiB pages identity-mapping 0-4 MiB with HOLE not present.
paging_on:
        mov     edi, pt0
        mov     eax, 0x003                      ; P | RW
.pte:   mov     [edi], eax
        add     eax, 0x1000
        add     edi, 4
        cmp     edi, pt0 + 4096
        jb      .pte
        mov     dword [pt0 + (HOLE >> 12) * 4], 0
        mov     dword [pd0], pt0 + 0x003
        mov     eax, pd0
        mov     cr3, eax
        mov     eax, cr0
        or      eax, CR0_PG
        mov     cr0, eax
        ret

idt32_ptr_small:
        dw      0
        dd      idt32

        section .bss
        alignb  4096
pd0:            resb 4096
pt0:            resb 4096
cr2_read:       resd 1
cr2_write:      resd 1
cr2_df:         resd 1
of_flags:       resd 1
        section .text
%include "lib/end.inc"
