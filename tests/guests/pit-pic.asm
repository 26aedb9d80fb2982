; pit-pic: PIT channel 0 at ~1000 Hz through the 8259A pair.
; Remaps the PICs to vectors 0x20/0x28 with only IRQ 0 unmasked, programs
; the PIT (mode 2, divisor 1193), and halts until the handler has counted
; 10 ticks. The handler checks the PIC's in-service register, masks IRQ 0
; itself on the 10th tick (so the count is exactly 10 whatever the timing)
; and sends a non-specific EOI.
;
; Final registers: EBX = RESULT_PASS, ECX = 10 (ticks).

%define GUEST_NAME "pit-pic"
%include "lib/guest.inc"

TICKS_WANTED    equ 10

main:
        mov     eax, PIC1_VECTOR + 0
        mov     edx, timer_irq
        call    idt32_set_gate
        mov     al, 0xFF & ~(1 << 0)    ; master: IRQ 0 only
        mov     ah, 0xFF                ; slave: all masked
        call    pic_init
        in      al, PIC1_DATA
        cmp     al, 0xFE
        CHECK   e, "master PIC IMR does not read back 0xFE"
        mov     ax, PIT_DIVISOR_1KHZ
        call    pit_periodic
        call    pit_read
        cmp     ax, PIT_DIVISOR_1KHZ
        CHECK   be, "PIT channel 0 count above its divisor"
        println GUEST_NAME, ": PIC at 0x20/0x28, PIT channel 0 mode 2 divisor 1193"

.wait:  cmp     dword [ticks], TICKS_WANTED
        jae     .done
        sti                             ; STI's shadow covers HLT: no lost wakeup
        hlt
        cli
        jmp     .wait
.done:
        cmp     dword [bad_isr], 0
        CHECK   e, "PIC ISR bit 0 not set inside the IRQ 0 handler"
        mov     al, PIC_READ_ISR
        out     PIC1_CMD, al
        in      al, PIC1_CMD
        test    al, al
        CHECK   z, "PIC ISR not clear after EOI"
        in      al, PIC1_DATA
        cmp     al, 0xFF
        CHECK   e, "IRQ 0 not masked after the last tick"
        print   GUEST_NAME, ": ticks="
        print_dec [ticks]
        print_nl
        cmp     dword [ticks], TICKS_WANTED
        CHECK   e, "tick count is not exactly 10"
        PASS    [ticks]

timer_irq:
        push    eax
        mov     al, PIC_READ_ISR
        out     PIC1_CMD, al
        in      al, PIC1_CMD
        test    al, 1 << 0
        jnz     .isr_ok
        inc     dword [bad_isr]
.isr_ok:
        inc     dword [ticks]
        cmp     dword [ticks], TICKS_WANTED
        jb      .eoi
        in      al, PIC1_DATA           ; last tick: mask IRQ 0
        or      al, 1 << 0
        out     PIC1_DATA, al
.eoi:   mov     al, PIC_EOI
        out     PIC1_CMD, al
        pop     eax
        iretd

        section .bss
ticks:          resd 1
bad_isr:        resd 1
        section .text

%include "lib/end.inc"
