; sys-priv: privilege changes in 32-bit protected mode (Intel SDM vol. 3,
; 5.8 and 6.12, 16.5): ring 0 to ring 3 by IRETD and by RETF, back by an
; INT through a DPL-3 interrupt gate with the stack switched to TSS.ESP0, a
; call gate with one parameter copied to the inner stack (RETF 4 back), a
; conforming code segment (CPL stays 3), data segments below CPL nulled by
; the return, IOPL and the TSS I/O permission bitmap (#GP(0) on a denied
; port, CLI at IOPL 0), and #GP(selector) for a ring-0 data segment.

%define GUEST_NAME "sys-priv"
%include "lib/guest.inc"
%include "sys.inc"

SEL_TSS32       equ 0x60
SEL_CGATE       equ 0x68 | 3
SEL_CONF        equ 0x70                ; conforming code, DPL 0
GDT2_SIZE       equ 0x78
TSS_ESP0        equ 4
TSS_SS0         equ 8
TSS_IOMAP       equ 0x66
TSS_BASE_SIZE   equ 104
IOMAP_SIZE      equ 8192
PORT_OK         equ 0x80
PORT_DENIED     equ 0x81

main:
        call    catch32_init
        ; our GDT: the common one plus a 32-bit TSS, a call gate, a
        ; conforming code segment
        mov     esi, gdt
        mov     edi, gdt2
        mov     ecx, (gdt_end - gdt) / 4
        rep movsd
        mov     eax, tss
        mov     word [gdt2 + SEL_TSS32], TSS_BASE_SIZE + IOMAP_SIZE
        mov     [gdt2 + SEL_TSS32 + 2], ax
        shr     eax, 16
        mov     [gdt2 + SEL_TSS32 + 4], al
        mov     byte [gdt2 + SEL_TSS32 + 5], 0x89       ; P, 32-bit TSS
        mov     byte [gdt2 + SEL_TSS32 + 6], 0
        mov     [gdt2 + SEL_TSS32 + 7], ah
        mov     eax, gate_entry
        mov     [gdt2 + 0x68], ax
        mov     word [gdt2 + 0x68 + 2], SEL_CODE32
        mov     word [gdt2 + 0x68 + 4], 0xEC01          ; P DPL3 call gate, 1 param
        shr     eax, 16
        mov     [gdt2 + 0x68 + 6], ax
        mov     dword [gdt2 + SEL_CONF], 0x0000FFFF
        mov     dword [gdt2 + SEL_CONF + 4], 0x00CF9E00
        lgdt    [gdt2_ptr]
        ; TSS: ring-0 stack and an I/O bitmap allowing COM1 and port 0x80
        mov     dword [tss + TSS_ESP0], kstack_top
        mov     dword [tss + TSS_SS0], SEL_DATA
        mov     word [tss + TSS_IOMAP], TSS_BASE_SIZE
        mov     edi, tss + TSS_BASE_SIZE
        mov     ecx, IOMAP_SIZE + 1
        mov     al, 0xFF
        rep stosb
        mov     byte [tss + TSS_BASE_SIZE + COM1 / 8], 0
        and     byte [tss + TSS_BASE_SIZE + PORT_OK / 8], ~(1 << (PORT_OK % 8))
        mov     ax, SEL_TSS32
        ltr     ax
        ; INT 0x80 and INT 0x81 callable from ring 3
        mov     eax, 0x80
        mov     edx, int80_entry
        call    idt32_set_gate
        mov     byte [idt32 + 0x80 * 8 + 5], 0xEE
        mov     eax, 0x81
        mov     edx, int81_entry
        call    idt32_set_gate
        mov     byte [idt32 + 0x81 * 8 + 5], 0xEE

        ; --- ring 0 -> ring 3 by IRETD, IOPL 0 ---
        push    dword SEL_UDATA
        push    dword ustack_top
        push    dword 0x2
        push    dword SEL_UCODE32
        push    dword ring3_a
        iretd

ring3_a:
        mov     eax, ds                         ; DPL-0 DS was nulled
        mov     ebx, es
        mov     ecx, ss
        mov     dx, SEL_UDATA
        mov     ds, dx
        mov     es, dx
        mov     [r3_ds], eax
        mov     [r3_es], ebx
        mov     [r3_ss], ecx
        mov     eax, cs
        mov     [r3_cs], eax

        mov     esi, 0x5A5A5A5A                 ; INT through a DPL-3 gate
        int     0x80
        mov     [int80_ret], esi

        push    dword 0x1234ABCD                ; call gate with a parameter
        call    SEL_CGATE:0
        mov     [gate_esp_back], esp            ; RETF 4 popped the parameter
        mov     eax, ustack_top
        sub     [gate_esp_back], eax

        call    SEL_CONF:conf_entry             ; conforming: stays at CPL 3

        out     PORT_OK, al                     ; allowed by the bitmap
        TRY     .io, in al, PORT_DENIED
        RECORD  "io_denied", .io, 13, 0, 0
        TRY     .cli, cli
        RECORD  "cli_iopl0", .cli, 13, 0, 0
        mov     ax, SEL_DATA
        TRY     .ds0, mov ds, ax
        RECORD  "ds_dpl0", .ds0, 13, SEL_DATA, 0
        int     0x81                            ; done: back to ring 0

; Ring 0 again, on the TSS stack.
phase2:
        mov     ax, SEL_DATA
        mov     ds, ax
        mov     es, ax
        ; --- ring 0 -> ring 3 by RETF, IOPL 3 ---
        pushfd
        or      dword [esp], 3 << 12
        popfd
        push    dword SEL_UDATA
        push    dword ustack_top
        push    dword SEL_UCODE32
        push    dword ring3_b
        retf

ring3_b:
        mov     ax, SEL_UDATA
        mov     ds, ax
        mov     es, ax
        mov     eax, cs
        mov     [r3b_cs], eax
        in      al, PORT_DENIED                 ; IOPL 3 wins over the bitmap
        cli
        mov     dword [iopl3_ok], 1
        int     0x81

phase3:
        mov     ax, SEL_DATA
        mov     ds, ax
        mov     es, ax
        pushfd
        and     dword [esp], ~(3 << 12)
        popfd
        mov     esp, stack_top - 64
        STATE_BEGIN
        call    state_records32
        STATE_KV "r3_cs", [r3_cs]
        STATE_KV "r3_ds", [r3_ds]
        STATE_KV "r3_es", [r3_es]
        STATE_KV "r3_ss", [r3_ss]
        STATE_KV "int_frame", [int80_frame]
        STATE_KV "int_ss", [int80_ss]
        STATE_KV "int_esp", [int80_esp]
        STATE_KV "int_depth", [int80_depth]
        STATE_KV "int_ret", [int80_ret]
        STATE_KV "gate_param", [gate_param]
        STATE_KV "gate_cs", [gate_cs]
        STATE_KV "gate_ss", [gate_ss]
        STATE_KV "gate_depth", [gate_depth]
        STATE_KV "gate_esp_back", [gate_esp_back]
        STATE_KV "conf_cs", [conf_cs]
        STATE_KV "r3b_cs", [r3b_cs]
        STATE_KV "iopl3", [iopl3_ok]
        STATE_END
        cmp     dword [r3_cs], SEL_UCODE32
        CHECK   e, "IRETD did not reach ring 3"
        cmp     dword [r3_ds], 0
        CHECK   e, "DS with DPL 0 survived the return to ring 3"
        cmp     dword [int80_depth], 20
        CHECK   e, "INT frame not at TSS.ESP0"
        cmp     dword [int80_frame], SEL_UCODE32
        CHECK   e, "INT frame CS"
        cmp     dword [int80_ret], 0xC0DE
        CHECK   e, "INT return value"
        cmp     dword [gate_param], 0x1234ABCD
        CHECK   e, "call gate parameter not copied"
        cmp     dword [gate_depth], 20
        CHECK   e, "call gate frame not at TSS.ESP0"
        cmp     dword [gate_esp_back], 0
        CHECK   e, "RETF 4 did not pop the parameter"
        cmp     dword [conf_cs], SEL_CONF | 3
        CHECK   e, "conforming segment changed CPL"
        cmp     dword [r3b_cs], SEL_UCODE32
        CHECK   e, "RETF did not reach ring 3"
        cmp     dword [iopl3_ok], 1
        CHECK   e, "IOPL 3"
        PASS    [exc_count]

; INT 0x80 from ring 3: frame EIP, CS, EFLAGS, ESP, SS on the TSS stack.
int80_entry:
        mov     eax, [esp + 4]
        mov     [int80_frame], eax
        mov     eax, [esp + 16]
        mov     [int80_ss], eax
        mov     eax, [esp + 12]
        mov     [int80_esp], eax
        mov     eax, kstack_top
        sub     eax, esp
        mov     [int80_depth], eax
        mov     esi, 0xC0DE
        iretd

; INT 0x81: leave ring 3 for good; continue at the next phase.
int81_entry:
        add     dword [phase], 1
        cmp     dword [phase], 1
        je      phase2
        jmp     phase3

; Call gate from ring 3: return EIP, CS, the parameter, ESP, SS.
gate_entry:
        mov     eax, [esp + 4]
        mov     [gate_cs], eax
        mov     eax, [esp + 8]
        mov     [gate_param], eax
        mov     eax, [esp + 16]
        mov     [gate_ss], eax
        mov     eax, kstack_top
        sub     eax, esp
        mov     [gate_depth], eax
        retf    4

conf_entry:
        mov     eax, cs
        mov     [conf_cs], eax
        retf

gdt2_ptr:
        dw      GDT2_SIZE - 1
        dd      gdt2

        section .bss
        alignb  16
gdt2:           resb GDT2_SIZE
tss:            resb TSS_BASE_SIZE + IOMAP_SIZE + 16
                resb 4096
kstack_top:
                resb 4096
ustack_top:
phase:          resd 1
r3_cs:          resd 1
r3_ds:          resd 1
r3_es:          resd 1
r3_ss:          resd 1
r3b_cs:         resd 1
int80_frame:    resd 1
int80_ss:       resd 1
int80_esp:      resd 1
int80_depth:    resd 1
int80_ret:      resd 1
gate_param:     resd 1
gate_cs:        resd 1
gate_ss:        resd 1
gate_depth:     resd 1
gate_esp_back:  resd 1
conf_cs:        resd 1
iopl3_ok:       resd 1
        section .text
%include "lib/end.inc"
