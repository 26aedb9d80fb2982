; pit-ioapic: PIT channel 0 at ~1000 Hz through the IOAPIC and local APIC.
; Masks both 8259As (after moving them off the exception vectors), enables
; the local APIC (IA32_APIC_BASE enable bit, SVR bit 8, TPR 0), routes GSI 2
; -- ISA IRQ 0 after the usual interrupt source override -- to vector 0x30
; (fixed, physical, edge, active high, to this CPU's APIC ID), and halts until
; 10 ticks. The handler checks the local APIC ISR bit for its vector, masks
; the redirection entry itself on the 10th tick and writes the LAPIC EOI.
;
; Final registers: EBX = RESULT_PASS, ECX = 10 (ticks).

%define GUEST_NAME "pit-ioapic"
%include "lib/guest.inc"

TICKS_WANTED    equ 10
TIMER_VECTOR    equ 0x30
SPURIOUS_VECTOR equ 0xFF
PIT_GSI         equ 2
IOAPIC_REG_VER  equ 0x01
IOREDTBL_LO     equ 0x10 + 2 * PIT_GSI
IOREDTBL_HI     equ IOREDTBL_LO + 1
REDIR_MASKED    equ 1 << 16
LAPIC_ISR_TIMER equ LAPIC_ISR0 + 0x10 * (TIMER_VECTOR / 32)
LAPIC_ISR_BIT   equ 1 << (TIMER_VECTOR % 32)

main:
        mov     eax, TIMER_VECTOR
        mov     edx, timer_irq
        call    idt32_set_gate
        mov     ax, 0xFFFF              ; both 8259As fully masked
        call    pic_init

        mov     ecx, MSR_APIC_BASE
        rdmsr
        mov     ebx, eax
        and     ebx, 0xFFFFF000
        cmp     ebx, LAPIC_BASE
        CHECK   e, "IA32_APIC_BASE is not 0xFEE00000"
        or      eax, APIC_BASE_ENABLE
        wrmsr
        mov     dword [LAPIC_SVR], 0x100 | SPURIOUS_VECTOR
        mov     dword [LAPIC_TPR], 0
        mov     eax, [LAPIC_ID]
        shr     eax, 24
        mov     [apic_id], eax
        print   GUEST_NAME, ": local APIC id="
        print_dec eax
        print   " version=0x"
        print_hex8 [LAPIC_VER]
        print_nl
        mov     eax, [LAPIC_SVR]
        and     eax, 0x1FF
        cmp     eax, 0x100 | SPURIOUS_VECTOR
        CHECK   e, "LAPIC SVR does not read back 0x1FF"

        mov     eax, IOAPIC_REG_VER
        call    ioapic_read
        shr     eax, 16
        and     eax, 0xFF
        inc     eax
        print   GUEST_NAME, ": IOAPIC pins="
        print_dec eax
        print_nl
        cmp     eax, PIT_GSI
        CHECK   a, "IOAPIC has no pin 2"

        mov     eax, IOREDTBL_HI        ; destination first, then unmask
        mov     edx, [apic_id]
        shl     edx, 24
        call    ioapic_write
        mov     eax, IOREDTBL_LO
        mov     edx, TIMER_VECTOR       ; fixed, physical, high, edge, unmasked
        call    ioapic_write
        call    ioapic_read
        cmp     eax, TIMER_VECTOR
        CHECK   e, "IOAPIC redirection entry for GSI 2 does not read back"
        println GUEST_NAME, ": GSI 2 -> vector 0x30, PIT channel 0 mode 2 divisor 1193"

        mov     ax, PIT_DIVISOR_1KHZ
        call    pit_periodic
.wait:  cmp     dword [ticks], TICKS_WANTED
        jae     .done
        sti                             ; STI's shadow covers HLT
        hlt
        cli
        jmp     .wait
.done:
        cmp     dword [bad_isr], 0
        CHECK   e, "LAPIC ISR bit for vector 0x30 not set inside the handler"
        test    dword [LAPIC_ISR_TIMER], LAPIC_ISR_BIT
        CHECK   z, "LAPIC ISR bit for vector 0x30 still set after EOI"
        mov     eax, IOREDTBL_LO
        call    ioapic_read
        test    eax, REDIR_MASKED
        CHECK   nz, "redirection entry not masked after the last tick"
        print   GUEST_NAME, ": ticks="
        print_dec [ticks]
        print_nl
        cmp     dword [ticks], TICKS_WANTED
        CHECK   e, "tick count is not exactly 10"
        PASS    [ticks]

; EAX = IOAPIC register index; returns EAX = value.
ioapic_read:
        mov     [IOAPIC_REGSEL], eax
        mov     eax, [IOAPIC_WIN]
        ret

; EAX = IOAPIC register index, EDX = value.
ioapic_write:
        mov     [IOAPIC_REGSEL], eax
        mov     [IOAPIC_WIN], edx
        ret

timer_irq:
        push    eax
        push    edx
        test    dword [LAPIC_ISR_TIMER], LAPIC_ISR_BIT
        jnz     .isr_ok
        inc     dword [bad_isr]
.isr_ok:
        inc     dword [ticks]
        cmp     dword [ticks], TICKS_WANTED
        jb      .eoi
        mov     eax, IOREDTBL_LO        ; last tick: mask the entry
        mov     edx, TIMER_VECTOR | REDIR_MASKED
        call    ioapic_write
.eoi:   mov     dword [LAPIC_EOI], 0
        pop     edx
        pop     eax
        iretd

        section .bss
ticks:          resd 1
bad_isr:        resd 1
apic_id:        resd 1
        section .text

%include "lib/end.inc"
