; smp-snap: every vCPU busy at once for RUN_TIME of PM time, the workload a
; snapshot with several vCPUs is taken in the middle of (tests/bt/
; snapshot_smp.sh). Each CPU k (the boot CPU is 0, the APs 1.. in order of
; arrival) loops on
;       lock inc [total]; inc esi; edi = edi * LCG_A + LCG_C
; with ESI = 0 and EDI = k + 1 at the start, and keeps both only in
; registers until the boot CPU sets `stop`. Then each stores them in its
; slot, and the boot CPU checks
;   - total = the sum of every CPU's ESI (a lost or doubled step of any vCPU
;     across the snapshot, or an increment that was not atomic, breaks it);
;   - each CPU's EDI is the LCG stepped ESI times from k + 1 (a register of
;     any vCPU that did not come back exactly breaks it; checked with the
;     LCG's jump-ahead, so the check costs no time);
;   - every CPU took at least one step.
; Prints "smp-snap: go" when the loops start, then "smp-snap: cpus=N" with
; the counts and the PASS or FAIL line.
;
; Final registers: EBX = RESULT_PASS, ECX = the number of CPUs.

%define GUEST_NAME "smp-snap"
%include "lib/guest.inc"
%include "lib/smp.inc"

MAX_APS         equ 63
RUN_TIME        equ 4 * 3579545                 ; 4 s of PM time
CHECK_EVERY     equ 4096                        ; loop steps between PM reads
LCG_A           equ 1664525
LCG_C           equ 1013904223

main:
        call    smp_start_aps
        call    smp_wait_aps
        cmp     eax, MAX_APS
        jbe     .n_ok
        mov     eax, MAX_APS                    ; the rest stay parked
.n_ok:  inc     eax
        mov     [cpus], eax
        println GUEST_NAME, ": go"
        mov     dword [go], 1

        ; the boot CPU's loop, which also keeps the time: EBP = PM counts
        ; so far, [pm_last] = the last reading (24-bit timer, wraps in 4.7 s)
        xor     esi, esi
        mov     edi, 1
        xor     ebp, ebp
        mov     dx, SMP_PM_TMR
        in      eax, dx
        mov     [pm_last], eax
.outer: mov     ecx, CHECK_EVERY
.step:  lock inc dword [total]
        inc     esi
        imul    edi, edi, LCG_A
        add     edi, LCG_C
        dec     ecx
        jnz     .step
        in      eax, dx
        mov     ebx, eax
        sub     eax, [pm_last]
        and     eax, 0xFFFFFF
        mov     [pm_last], ebx
        add     ebp, eax
        cmp     ebp, RUN_TIME
        jb      .outer
        mov     [slot_steps], esi
        mov     [slot_lcg], edi
        mov     dword [stop], 1

        ; every AP stores its registers and checks out
.wait:  mov     eax, [aps_done]
        inc     eax
        cmp     eax, [cpus]
        jb      .wait

        ; total = sum of the steps
        xor     eax, eax
        xor     ebx, ebx
.sum:   add     eax, [slot_steps + ebx * 4]
        inc     ebx
        cmp     ebx, [cpus]
        jb      .sum
        mov     [sum], eax
        print   GUEST_NAME, ": cpus="
        print_dec [cpus]
        print   " total="
        print_dec [total]
        print   " steps:"
        xor     ebx, ebx
.show:  print   " "
        print_dec [slot_steps + ebx * 4]
        inc     ebx
        cmp     ebx, [cpus]
        jb      .show
        print_nl
        mov     eax, [sum]
        cmp     eax, [total]
        CHECK   e, "the shared total is not the sum of the CPUs' own step counts"

        ; each CPU's LCG, stepped again from its seed
        xor     ebx, ebx
.cpu:   mov     ecx, [slot_steps + ebx * 4]
        test    ecx, ecx
        jnz     .ran
        FAIL_BEGIN "a CPU took no step: "
        print_dec ebx
        FAIL_END
.ran:   lea     edi, [ebx + 1]
        call    lcg_jump
        cmp     edi, [slot_lcg + ebx * 4]
        je      .same
        FAIL_BEGIN "the LCG register of a CPU does not match its step count: cpu "
        print_dec ebx
        FAIL_END
.same:  inc     ebx
        cmp     ebx, [cpus]
        jb      .cpu
        PASS    [cpus]

; EDI = the LCG stepped ECX times from EDI, in log2(ECX) steps: x -> a*x + c
; twice is x -> a*a*x + (a*c + c), so the step map is squared while ECX is
; halved (mod 2^32 throughout). Clobbers EAX, ECX, EDX, ESI, EBP.
lcg_jump:
        push    ebx
        mov     esi, 1                          ; the map so far: x -> ESI*x + EBP
        xor     ebp, ebp
        mov     dword [map_a], LCG_A            ; the current power of the step
        mov     dword [map_c], LCG_C
.bit:   test    ecx, 1
        jz      .sq
        mov     eax, [map_a]                    ; so far = current o so far
        imul    ebp, eax
        add     ebp, [map_c]
        imul    esi, eax
.sq:    mov     eax, [map_a]                    ; current = current o current
        mov     ebx, [map_c]
        imul    ebx, eax
        add     [map_c], ebx
        imul    eax, eax
        mov     [map_a], eax
        shr     ecx, 1
        jnz     .bit
        imul    edi, esi
        add     edi, ebp
        pop     ebx
        ret

; An application processor, in protected mode from the trampoline.
ap_entry32:                                     ; EAX = APs that arrived before
        cmp     eax, MAX_APS
        jae     .park                           ; no stack or slot for it
        inc     eax                             ; its CPU index
        mov     ebx, eax
        shl     eax, 12
        lea     esp, [ap_stacks + eax]
.go:    cmp     dword [go], 0
        je      .go
        xor     esi, esi
        lea     edi, [ebx + 1]
.step:  lock inc dword [total]
        inc     esi
        imul    edi, edi, LCG_A
        add     edi, LCG_C
        cmp     dword [stop], 0
        je      .step
        mov     [slot_steps + ebx * 4], esi
        mov     [slot_lcg + ebx * 4], edi
        lock inc dword [aps_done]
.park:  cli
        hlt
        jmp     .park

        section .bss
        alignb  4096
ap_stacks:      resb 4096 * MAX_APS
slot_steps:     resd MAX_APS + 1
slot_lcg:       resd MAX_APS + 1
go:             resd 1
stop:           resd 1
aps_done:       resd 1
total:          resd 1
sum:            resd 1
cpus:           resd 1
pm_last:        resd 1
map_a:          resd 1
map_c:          resd 1
        section .text

%include "lib/end.inc"
