; clock-gap: the largest step of guest time between two reads in a row.
; Reads the ACPI PM timer (3.579545 MHz, 24 bits, port 0x608) back to back
; for one second of PM time and keeps the largest difference between two
; successive reads. A read takes well under a microsecond, so a step of
; milliseconds is time that went by while the guest could not run: its vCPU
; thread was waiting for a host CPU. A guest that programs each tick from
; the last one (Linux's periodic tick on a one-shot timer) drops the ticks
; such a step jumps over. modvm takes those waits out of virtual time for
; software engines (core/timer.c, steal_check); the check allows a step of
; 4 ms, one tick of a 250 Hz kernel.
;
; Run it next to busy processes on the same host CPU to see the policy
; (tests/bt/clock_gap_loaded.sh); on a quiet host any VMM passes.
;
; Final registers: EBX = RESULT_PASS, ECX = the largest step (PM counts).

%define GUEST_NAME "clock-gap"
%include "lib/guest.inc"

PM_TMR          equ 0x608
PM_SPAN         equ 3579545             ; one second of PM time
PM_MAX_STEP     equ 14318               ; 4 ms

main:
        println GUEST_NAME, ": reading the PM timer back to back for one second"
        mov     dx, PM_TMR
        in      eax, dx
        and     eax, 0xFFFFFF
        mov     esi, eax                ; previous read
        xor     edi, edi                ; PM time so far
        xor     ebx, ebx                ; largest step
.read:  in      eax, dx
        and     eax, 0xFFFFFF
        mov     ecx, eax
        sub     eax, esi                ; 24-bit wrap: a step is far below it
        and     eax, 0xFFFFFF
        mov     esi, ecx
        add     edi, eax
        cmp     eax, ebx
        jbe     .small
        mov     ebx, eax
        mov     [largest_at], edi       ; where in the second it ended
.small: cmp     edi, PM_SPAN
        jb      .read
        mov     [largest], ebx
        print   GUEST_NAME, ": largest step "
        print_dec [largest]
        print   " PM counts ("
        mov     eax, [largest]
        mov     ecx, 1000000
        mul     ecx
        mov     ecx, PM_SPAN
        div     ecx
        mov     [largest_us], eax
        print_dec [largest_us]
        print   " us) ending at PM count "
        print_dec [largest_at]
        print_nl
        mov     eax, [largest]
        cmp     eax, PM_MAX_STEP
        CHECK   be, "guest time jumped by more than 4 ms between two reads (a vCPU wait left in virtual time)"
        PASS    [largest]

        section .bss
largest:        resd 1
largest_us:     resd 1
largest_at:     resd 1
        section .text

%include "lib/end.inc"
