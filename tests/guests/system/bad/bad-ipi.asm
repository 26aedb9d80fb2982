; bad-ipi: a guest that abuses its local APICs (run with several vCPUs).
; The boot CPU starts the others (INIT, SIPI, SIPI), lets them take fixed
; interrupts with STI; HLT, and then:
;   - sends 50000 fixed IPIs to all but itself, without waiting for the
;     delivery status to clear;
;   - sends NMIs to all, IPIs to APIC IDs that do not exist, with reserved
;     delivery modes, with vector 0, and lowest-priority to nobody;
;   - sends an NMI and at once INIT, SIPI, SIPI again to the running APs
;     (they start over in the trampoline: an NMI still pending at the
;     INIT must not follow them there), and a SIPI storm to APs that are
;     running (ignored);
;   - sends 10000 self-IPIs,
; then powers off. The VMM must survive it and stay responsive: the guest
; prints PASS and modvm exits 0. Checked on the way: each AP took the NMI
; once and started over once after the second INIT, SIPI, SIPI.
%define GUEST_NAME "bad-ipi"
%include "lib/guest.inc"
%include "lib/smp.inc"

IPI_VECTOR      equ 0x40
MAX_APS         equ 64                          ; stacks (a power of two)

main:
        mov     eax, IPI_VECTOR
        mov     edx, ipi_isr
        call    idt32_set_gate
        mov     eax, 2                          ; NMI
        mov     edx, nmi_isr
        call    idt32_set_gate
        call    smp_start_aps
        mov     ecx, PM_1MS * 50
        call    pm_wait
        mov     eax, [smp_aps_in]
        mov     [aps_first], eax
        call    wait_ready
        print   GUEST_NAME, ": APs in: "
        print_dec [aps_first]
        print_nl

        mov     ecx, 50000                      ; fixed IPIs to all but self
.storm: mov     dword [LAPIC_ICR_LO], 0x000C0000 | IPI_VECTOR
        dec     ecx
        jnz     .storm
        call    icr_idle                        ; what is checked waits its turn
        mov     dword [LAPIC_ICR_LO], 0x000C4400          ; NMI to all but self
        mov     edi, 100                        ; taken before the INIT below
.nmi:   mov     eax, [nmis]
        cmp     eax, [aps_first]
        jae     .nmi_in
        mov     ecx, PM_1MS * 2
        call    pm_wait
        dec     edi
        jnz     .nmi
.nmi_in:
        mov     eax, [nmis]
        mov     [nmis_first], eax
        ; an NMI right before the INIT: it may still be pending when the
        ; INIT lands, and must not survive into the restarted AP (its
        ; real-mode start has no handler for it)
        mov     dword [LAPIC_ICR_LO], 0x000C4400
        mov     dword [LAPIC_ICR_HI], 0x55 << 24          ; nobody has ID 0x55
        mov     dword [LAPIC_ICR_LO], IPI_VECTOR          ; physical, fixed
        mov     dword [LAPIC_ICR_LO], 0x00000300 | IPI_VECTOR ; reserved mode 011
        mov     dword [LAPIC_ICR_LO], 0x00000700 | IPI_VECTOR ; ExtINT by IPI
        mov     dword [LAPIC_ICR_LO], 0x000C0000          ; vector 0 to all
        mov     dword [LAPIC_ICR_HI], 0
        mov     dword [LAPIC_ICR_LO], 0x00000900 | IPI_VECTOR ; lowest, logical, no one
        call    icr_idle
        mov     dword [LAPIC_ICR_LO], ICR_INIT_ALL        ; INIT to all but self
        call    icr_idle
        mov     dword [LAPIC_ICR_LO], ICR_SIPI_ALL
        call    icr_idle
        mov     dword [LAPIC_ICR_LO], ICR_SIPI_ALL
        mov     ecx, PM_1MS * 20
        call    pm_wait
        call    wait_ready
        mov     ecx, 1000                       ; SIPIs to running APs
.sipis: mov     dword [LAPIC_ICR_LO], ICR_SIPI_ALL
        dec     ecx
        jnz     .sipis
        sti
        mov     ecx, 10000                      ; self-IPIs (shorthand 01)
.self:  mov     dword [LAPIC_ICR_LO], 0x00040000 | IPI_VECTOR
        dec     ecx
        jnz     .self
        cli
        mov     ecx, PM_1MS * 20
        call    pm_wait
        print   GUEST_NAME, ": boot CPU took "
        print_dec [bsp_ipis]
        print   " self-IPIs, the APs "
        print_dec [ap_ipis]
        print   " IPIs and "
        print_dec [nmis_first]
        print   " NMIs (then "
        print_dec [nmis]
        print   "); APs started "
        print_dec [smp_aps_in]
        print   " times"
        print_nl
        cmp     dword [bsp_ipis], 0
        CHECK   a, "no self-IPI reached the boot CPU"
        mov     eax, [aps_first]
        cmp     [nmis_first], eax
        CHECK   e, "the NMI to all but self did not reach each AP once"
        shl     eax, 1
        cmp     [smp_aps_in], eax
        CHECK   e, "INIT, SIPI, SIPI to running APs did not start each over once"
        PASS    [aps_first]

; Wait (a bounded spin) until the ICR's delivery status (bit 12) says the
; last IPI went out, as the SDM asks before the next one.
icr_idle:
        push    ecx
        mov     ecx, 10000000
.spin:  test    dword [LAPIC_ICR_LO], 1 << 12
        jz      .idle
        pause
        dec     ecx
        jnz     .spin
.idle:  pop     ecx
        ret

; Wait (at most 2 s of PM time) until every AP that checked in has its IDT
; and takes interrupts: an NMI before that would find no handler.
wait_ready:
        mov     edi, 100
.again: mov     eax, [aps_ready]
        cmp     eax, [smp_aps_in]
        jae     .done
        mov     ecx, PM_1MS * 20
        call    pm_wait
        dec     edi
        jnz     .again
.done:  ret

ipi_isr:
        push    eax
        mov     eax, [LAPIC_ID]
        shr     eax, 24
        test    eax, eax
        jnz     .ap
        lock inc dword [bsp_ipis]
        jmp     .eoi
.ap:    lock inc dword [ap_ipis]
.eoi:   mov     dword [LAPIC_EOI], 0
        pop     eax
        iretd

nmi_isr:
        lock inc dword [nmis]
        iretd

; Each AP: its own stack, the boot CPU's IDT, then interrupts on and halt.
ap_entry32:                                     ; EAX = this AP's index
        and     eax, MAX_APS - 1                ; restarted APs reuse stacks
        inc     eax
        shl     eax, 12
        lea     esp, [ap_stacks + eax]
        lidt    [idt32_ptr]
        mov     dword [LAPIC_SVR], 0x1FF
        lock inc dword [aps_ready]
.idle:  sti
        hlt
        jmp     .idle

        section .bss
        alignb  4096
ap_stacks:      resb 4096 * (MAX_APS + 1)
aps_first:      resd 1
aps_ready:      resd 1
nmis_first:     resd 1
bsp_ipis:       resd 1
ap_ipis:        resd 1
nmis:           resd 1
        section .text

%include "lib/end.inc"
