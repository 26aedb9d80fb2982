; sys-apic-timer: the local APIC timer in long mode (Intel SDM vol. 3,
; 11.5.4), timed against the ACPI PM timer (port 0x608, 24 bits at
; 3.579545 MHz, as modvm's acpi-pm and QEMU's PIIX4 with SeaBIOS place it).
; It is polled: elapsed time is the sum of its increments, which stays right
; when the host deschedules the vCPU as long as one poll comes per 4.6 s
; (interrupts would coalesce; the PIT's 55 ms wrap was too short on a loaded
; host). The PIT runs free (channel 0, mode 2, no interrupt) as before.
; The timer rate is calibrated over 100 ms (a masked one-shot count from
; 0xFFFFFFFF), then a masked one-shot counts down without an interrupt, a
; 5 ms one-shot fires exactly once and leaves the current count at 0, and a
; 10 ms periodic timer fires at least twice and at most once per period in
; the time that really passed (a wait can overshoot and periods coalesce
; while the host deschedules the vCPU: virtual time follows host time).
; Rates use the PM-timer time each wait measured, not the time it asked for. TSC-deadline mode is tested when
; CPUID.01H:ECX[24] advertises it.

%define GUEST_NAME "sys-apic-timer"
%include "lib/guest.inc"
%include "sys.inc"

TIMER_VECTOR    equ 0x40
SPURIOUS_VECTOR equ 0xFF
LVT_TIMER       equ 0x320
TIMER_ICR       equ 0x380
TIMER_CCR       equ 0x390
TIMER_DCR       equ 0x3E0
LVT_MASKED      equ 1 << 16
LVT_PERIODIC    equ 1 << 17
LVT_TSC_DEADLINE equ 2 << 17
MSR_TSC_DEADLINE equ 0x6E0

PIT_PER_MS      equ 1193                ; PIT input clocks per ms (1193.18)
PM_TMR          equ 0x608               ; ACPI PM timer
PM_PER_MS       equ 3580                ; PM timer clocks per ms (3579.545)

main:
        mov     ax, 0xFFFF                      ; 8259As: all masked
        call    pic_init
        xor     ax, ax                          ; divisor 65536
        call    pit_periodic
        mov     eax, kernel64
        jmp     enter_long_mode

%include "lib/longmode.inc"

        bits    64
; pit_now: EAX = PIT channel 0 count (latched)
pit_now:
        mov     al, 0x00                        ; latch channel 0
        out     PIT_MODE, al
        in      al, PIT_CH0
        mov     ah, al
        in      al, PIT_CH0
        xchg    al, ah
        movzx   eax, ax
        ret

; pm_now: EAX = ACPI PM timer (24 bits)
pm_now:
        push    rdx
        mov     dx, PM_TMR
        in      eax, dx
        and     eax, 0xFFFFFF
        pop     rdx
        ret

; wait_ms ECX: poll the PM timer until ECX ms have passed, with IF=1 so
; the APIC timer interrupts are taken meanwhile; [waited] = PM clocks that
; did pass (more than asked if the vCPU was descheduled at the end)
wait_ms:
        push    rax
        push    rsi
        imul    ecx, ecx, PM_PER_MS
        call    pm_now
        mov     esi, eax                        ; start
        sti
.poll:  call    pm_now
        sub     eax, esi                        ; it counts up
        and     eax, 0xFFFFFF
        cmp     eax, ecx
        jb      .poll
        cli
        mov     [waited], eax
        pop     rsi
        pop     rax
        ret

timer_isr:
        inc     dword [timer_irqs]
        push    rbx
        mov     rbx, LAPIC_BASE
        mov     dword [rbx + 0xB0], 0           ; EOI
        pop     rbx
        iretq

kernel64:
        mov     cl, 0x8E
        mov     eax, TIMER_VECTOR
        mov     rdx, timer_isr
        call    idt64_set_gate
        mov     ecx, MSR_APIC_BASE
        rdmsr
        or      eax, APIC_BASE_ENABLE
        wrmsr
        mov     rbx, LAPIC_BASE
        mov     dword [rbx + 0xF0], 0x100 | SPURIOUS_VECTOR
        mov     dword [rbx + 0x80], 0                   ; TPR
        mov     dword [rbx + TIMER_DCR], 0xB            ; divide by 1

        ; --- calibrate: masked one-shot from 0xFFFFFFFF over 100 ms ---
        mov     dword [rbx + LVT_TIMER], LVT_MASKED | TIMER_VECTOR
        mov     dword [rbx + TIMER_ICR], 0xFFFFFFFF
        mov     ecx, 100
        call    wait_ms
        mov     eax, [rbx + TIMER_CCR]
        not     eax                             ; elapsed = ~CCR
        imul    rax, rax, PM_PER_MS
        xor     edx, edx
        mov     ecx, [waited]
        div     rcx
        mov     [per_ms], eax                   ; timer ticks per ms
        cmp     eax, 100
        CHECK   ae, "APIC timer slower than 100 kHz or stopped"
        mov     dword [rbx + TIMER_ICR], 0
        mov     ecx, 1
        call    wait_ms
        mov     eax, [timer_irqs]
        mov     [masked_irqs], eax              ; a masked timer: none

        ; --- one-shot, 5 ms ---
        mov     dword [timer_irqs], 0
        mov     dword [rbx + LVT_TIMER], TIMER_VECTOR
        mov     eax, [per_ms]
        imul    eax, eax, 5
        mov     dword [rbx + TIMER_ICR], eax
        mov     ecx, 20
        call    wait_ms
        mov     eax, [timer_irqs]
        mov     [oneshot_irqs], eax
        mov     eax, [rbx + TIMER_CCR]
        mov     [oneshot_ccr], eax

        ; --- periodic, 10 ms, over 200 ms ---
        mov     dword [timer_irqs], 0
        mov     dword [rbx + LVT_TIMER], LVT_PERIODIC | TIMER_VECTOR
        mov     eax, [per_ms]
        imul    eax, eax, 10
        mov     dword [rbx + TIMER_ICR], eax
        mov     ecx, 200
        call    wait_ms
        mov     eax, [timer_irqs]
        mov     dword [rbx + TIMER_ICR], 0      ; stop
        mov     [periodic_irqs], eax
        mov     eax, [waited]                   ; periods that passed + 1
        xor     edx, edx
        mov     ecx, 10 * PM_PER_MS
        div     ecx
        inc     eax
        mov     ecx, [periodic_irqs]
        cmp     ecx, eax
        seta    dl                              ; more than possible
        cmp     ecx, 2
        setb    al                              ; did not re-arm
        or      al, dl
        xor     al, 1
        movzx   eax, al
        mov     [periodic_ok], eax
        mov     eax, [rbx + LVT_TIMER]
        mov     [lvt_readback], eax

        ; --- TSC deadline, if advertised ---
        mov     eax, 1
        cpuid
        shr     ecx, 24
        and     ecx, 1
        mov     [has_tscdl], ecx
        jz      .no_dl
        mov     dword [timer_irqs], 0
        mov     dword [rbx + LVT_TIMER], LVT_TSC_DEADLINE | TIMER_VECTOR
        rdtsc
        add     eax, 1000000
        adc     edx, 0
        mov     ecx, MSR_TSC_DEADLINE
        wrmsr
        mov     ecx, 20
        call    wait_ms
        mov     eax, [timer_irqs]
        mov     [dl_irqs], eax
        mov     ecx, MSR_TSC_DEADLINE
        rdmsr
        or      eax, edx
        mov     [dl_msr], eax                   ; cleared once it fired
.no_dl:
        print   GUEST_NAME, ": timer ", 0
        print_dec [per_ms]
        print   " ticks/ms, periodic interrupts="
        print_dec [periodic_irqs]
        print_nl
        STATE_BEGIN
        STATE_KV "masked_irqs", [masked_irqs]
        STATE_KV "oneshot_irqs", [oneshot_irqs]
        STATE_KV "oneshot_ccr", [oneshot_ccr]
        STATE_KV "periodic_ok", [periodic_ok]
        STATE_KV "lvt", [lvt_readback]
        STATE_KV "has_tscdl", [has_tscdl]
        STATE_KV "dl_irqs", [dl_irqs]
        STATE_KV "dl_msr", [dl_msr]
        STATE_END
        cmp     dword [masked_irqs], 0
        CHECK   e, "a masked timer interrupted"
        cmp     dword [oneshot_irqs], 1
        CHECK   e, "one-shot did not fire exactly once"
        cmp     dword [oneshot_ccr], 0
        CHECK   e, "one-shot current count not 0 after expiry"
        cmp     dword [periodic_ok], 1
        CHECK   e, "periodic count below 2 or above one per elapsed 10 ms period"
        cmp     dword [has_tscdl], 0
        je      .pass
        cmp     dword [dl_irqs], 1
        CHECK   e, "TSC deadline did not fire exactly once"
.pass:  PASS    [periodic_irqs]

        section .bss
timer_irqs:     resd 1
per_ms:         resd 1
masked_irqs:    resd 1
oneshot_irqs:   resd 1
oneshot_ccr:    resd 1
periodic_irqs:  resd 1
waited:         resd 1
periodic_ok:    resd 1
lvt_readback:   resd 1
has_tscdl:      resd 1
dl_irqs:        resd 1
dl_msr:         resd 1
        section .text
%include "lib/end.inc"
