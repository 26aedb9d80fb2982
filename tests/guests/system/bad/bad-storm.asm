; bad-storm: an interrupt storm. The PIT runs at its highest rate (divisor
; 2, ~600 kHz) into IRQ 0 and the handler only acknowledges it; the guest
; counts 20000 interrupts with STI; HLT and then powers off. The VMM must
; keep up (or coalesce) and stay responsive.
%define GUEST_NAME "bad-storm"
%include "lib/guest.inc"

main:
        mov     ax, 0xFFFE
        call    pic_init
        mov     eax, PIC1_VECTOR
        mov     edx, isr
        call    idt32_set_gate
        mov     ax, 2
        call    pit_periodic
.wait:  sti
        hlt
        cli
        cmp     dword [ticks], 20000
        jb      .wait
        mov     al, 0xFF
        out     PIC1_DATA, al
        print   GUEST_NAME, ": 20000 interrupts"
        print_nl
        PASS    0

isr:    inc     dword [ticks]
        push    eax
        mov     al, PIC_EOI
        out     PIC1_CMD, al
        pop     eax
        iretd

        section .bss
ticks:  resd 1
        section .text
%include "lib/end.inc"
