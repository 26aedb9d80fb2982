; sys-v86: virtual-8086 mode (Intel SDM vol. 3, chapter 20): IRETD with
; EFLAGS.VM enters it; with IOPL 3, INT n goes through the protected-mode
; IDT to a ring-0 handler on the TSS.ESP0 stack with the 9-dword V86 frame
; and null data segments; with IOPL < 3, INT n and CLI raise #GP(0) to the
; monitor, which emulates them; IN/OUT obey the TSS I/O bitmap (and not
; IOPL); HLT traps to the monitor too, which ends the V86 task.

%define GUEST_NAME "sys-v86"
%include "lib/guest.inc"
%include "sys.inc"

V86_BASE        equ 0x8000              ; V86 code copied here, CS = 0
V86_STACK       equ 0x7C00
%define V86(x)  ((x) - v86_begin + V86_BASE)
SEL_TSS32       equ 0x60
GDT2_SIZE       equ 0x68
TSS_ESP0        equ 4
TSS_SS0         equ 8
TSS_IOMAP       equ 0x66
TSS_BASE_SIZE   equ 104
IOMAP_SIZE      equ 8192
EFL_VM          equ 1 << 17
EFL_IOPL3       equ 3 << 12

main:
        mov     esi, v86_begin
        mov     edi, V86_BASE
        mov     ecx, v86_end - v86_begin
        rep movsb
        mov     esi, gdt
        mov     edi, gdt2
        mov     ecx, (gdt_end - gdt) / 4
        rep movsd
        mov     eax, tss
        mov     word [gdt2 + SEL_TSS32], TSS_BASE_SIZE + IOMAP_SIZE
        mov     [gdt2 + SEL_TSS32 + 2], ax
        shr     eax, 16
        mov     [gdt2 + SEL_TSS32 + 4], al
        mov     byte [gdt2 + SEL_TSS32 + 5], 0x89
        mov     byte [gdt2 + SEL_TSS32 + 6], 0
        mov     [gdt2 + SEL_TSS32 + 7], ah
        lgdt    [gdt2_ptr]
        mov     dword [tss + TSS_ESP0], kstack_top
        mov     dword [tss + TSS_SS0], SEL_DATA
        mov     word [tss + TSS_IOMAP], TSS_BASE_SIZE
        mov     edi, tss + TSS_BASE_SIZE
        mov     ecx, IOMAP_SIZE + 1
        mov     al, 0xFF
        rep stosb
        mov     byte [tss + TSS_BASE_SIZE + COM1 / 8], 0
        and     byte [tss + TSS_BASE_SIZE + 0x80 / 8], 0xFE   ; port 0x80
        mov     ax, SEL_TSS32
        ltr     ax
        mov     eax, 0x60
        mov     edx, int60_entry
        call    idt32_set_gate
        mov     byte [idt32 + 0x60 * 8 + 5], 0xEE       ; DPL 3
        mov     eax, 13
        mov     edx, monitor_gp
        call    idt32_set_gate
        mov     [saved_esp], esp

        push    dword 0                         ; GS, FS, DS, ES
        push    dword 0
        push    dword 0
        push    dword 0
        push    dword 0                         ; SS:ESP
        push    dword V86_STACK
        push    dword EFL_VM | EFL_IOPL3 | 2
        push    dword 0                         ; CS:EIP
        push    dword V86(v86_entry)
        iretd

; INT 0x60 from V86 with IOPL 3: the V86 frame is on the TSS stack.
int60_entry:
        mov     eax, ds                         ; nulled on the way in
        mov     bx, SEL_DATA
        mov     ds, bx
        mov     [i60_ds], eax
        mov     eax, kstack_top
        sub     eax, esp
        mov     [i60_frame], eax
        mov     eax, [esp + 4]
        mov     [i60_cs], eax
        mov     eax, [esp + 8]
        and     eax, EFL_VM | EFL_IOPL3
        mov     [i60_eflags], eax
        mov     eax, [esp + 24]                 ; V86 DS in the frame
        mov     [i60_vds], eax
        and     dword [esp + 8], ~EFL_IOPL3     ; IOPL 0 from now on
        mov     dword [esp + 28], 0x1234        ; FS comes back from the frame
        iretd

; #GP monitor: decode the V86 instruction at CS*16+IP and emulate it.
monitor_gp:
        push    eax
        push    ebx
        mov     ax, SEL_DATA
        mov     ds, ax
        mov     es, ax
        test    dword [esp + 8 + 12], EFL_VM
        jz      .bad
        mov     eax, [esp + 8]                  ; error code
        or      [gp_errs], eax
        mov     eax, [esp + 8 + 12]             ; VM set, IOPL now 0
        and     eax, EFL_VM | EFL_IOPL3
        or      [gp_eflags], eax
        movzx   ebx, word [esp + 8 + 8]         ; CS
        shl     ebx, 4
        add     ebx, [esp + 8 + 4]              ; + IP
        movzx   eax, byte [ebx]
        mov     ebx, [gp_n]
        cmp     ebx, 4
        jae     .bad
        mov     [gp_ops + ebx], al
        inc     dword [gp_n]
        cmp     al, 0xCD                        ; INT n: skip it
        je      .skip2
        cmp     al, 0xFA                        ; CLI: skip it
        je      .skip1
        cmp     al, 0xE4                        ; IN AL, imm8: AL = 0x5A
        je      .in
        cmp     al, 0xF4                        ; HLT: leave V86
        je      v86_done
.bad:   pop     ebx
        pop     eax
        push    dword 13
        jmp     isr32_common
.in:    mov     byte [esp + 4], 0x5A            ; saved EAX low byte
.skip2: inc     dword [esp + 8 + 4]
.skip1: inc     dword [esp + 8 + 4]
        pop     ebx
        pop     eax
        add     esp, 4                          ; error code
        iretd

v86_done:
        mov     ax, SEL_DATA
        mov     ss, ax
        mov     esp, [saved_esp]
        STATE_BEGIN
        STATE_KV "i60_frame", [i60_frame]
        STATE_KV "i60_cs", [i60_cs]
        STATE_KV "i60_eflags", [i60_eflags]
        STATE_KV "i60_ds", [i60_ds]
        STATE_KV "i60_vds", [i60_vds]
        STATE_KV "v86_fs", [V86_DATA_FS]
        STATE_KV "v86_al", [V86_DATA_AL]
        STATE_KV "gp_eflags", [gp_eflags]
        STATE_KV "gp_n", [gp_n]
        STATE_KV "gp_ops", [gp_ops]
        STATE_KV "gp_errs", [gp_errs]
        STATE_END
        cmp     dword [i60_frame], 36
        CHECK   e, "V86 interrupt frame is not 9 dwords on TSS.ESP0"
        cmp     dword [i60_eflags], EFL_VM | EFL_IOPL3
        CHECK   e, "V86 interrupt frame EFLAGS"
        cmp     dword [i60_ds], 0
        CHECK   e, "DS not nulled on the way out of V86"
        cmp     word [V86_DATA_FS], 0x1234
        CHECK   e, "IRETD did not reload FS from the V86 frame"
        cmp     dword [gp_eflags], EFL_VM
        CHECK   e, "#GP frame EFLAGS (VM, IOPL 0)"
        cmp     dword [gp_n], 4
        CHECK   e, "number of #GP to the monitor"
        cmp     dword [gp_ops], 0xF4E4FACD
        CHECK   e, "instructions trapped by the monitor"
        cmp     byte [V86_DATA_AL], 0x5A
        CHECK   e, "emulated IN"
        PASS    [gp_ops]

V86_DATA_FS     equ 0x6000
V86_DATA_AL     equ 0x6004

        bits    16
v86_begin:
v86_entry:
        int     0x60                            ; IOPL 3: through the IDT
        mov     [V86_DATA_FS], fs
        int     0x60                            ; IOPL 0: #GP to the monitor
        cli                                     ; #GP
        out     0x80, al                        ; allowed by the bitmap
        in      al, 0x81                        ; denied: #GP
        mov     [V86_DATA_AL], al
        hlt                                     ; #GP: the end
v86_end:
        bits    32

gdt2_ptr:
        dw      GDT2_SIZE - 1
        dd      gdt2

        section .bss
        alignb  16
gdt2:           resb GDT2_SIZE
tss:            resb TSS_BASE_SIZE + IOMAP_SIZE + 16
                resb 4096
kstack_top:
saved_esp:      resd 1
i60_ds:         resd 1
i60_frame:      resd 1
i60_cs:         resd 1
i60_eflags:     resd 1
i60_vds:        resd 1
gp_n:           resd 1
gp_ops:         resd 1
gp_errs:        resd 1
gp_eflags:      resd 1
        section .text
%include "lib/end.inc"
