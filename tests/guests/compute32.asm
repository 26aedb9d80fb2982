; compute32: the compute guest's loop in 32-bit protected mode at ring 0,
; where the multiboot loader leaves the CPU: COMPUTE_ITERS rounds of
; xorshift32 (x ^= x << 13; x ^= x >> 17; x ^= x << 5) from a fixed seed,
; 11 instructions a round (DEC ECX is the one-byte 0x49 form that is a REX
; prefix in 64-bit mode). It exercises cpu-bt's translator on 16/32-bit
; code and is bench/bt/bt-ratio.sh -g compute32's workload.
;
; Build with -DCOMPUTE_ITERS=n for another length; the result is only
; checked for the default 20,000,000.
; Final registers: EBX = RESULT_PASS, ECX = 0x9FE798B3 (the result, default
; length).

%define GUEST_NAME "compute32"
%include "lib/guest.inc"

%ifndef COMPUTE_ITERS
 %define COMPUTE_ITERS 20000000
%endif
SEED            equ 0x9E3779B9
EXPECTED        equ 0x9FE798B3          ; after 20,000,000 rounds

main:
        print   GUEST_NAME, ": 32-bit protected mode ring 0: "
        print_dec COMPUTE_ITERS
        println " rounds of xorshift32"
        mov     eax, SEED
        mov     ecx, COMPUTE_ITERS
.round: mov     edx, eax
        shl     edx, 13
        xor     eax, edx
        mov     edx, eax
        shr     edx, 17
        xor     eax, edx
        mov     edx, eax
        shl     edx, 5
        xor     eax, edx
        dec     ecx
        jnz     .round
        mov     [result], eax
        print   GUEST_NAME, ": result=0x"
        print_hex32 [result]
        print_nl
%if COMPUTE_ITERS == 20000000
        cmp     dword [result], EXPECTED
        CHECK   e, "xorshift32 result is not 0x9FE798B3"
%else
        println GUEST_NAME, ": result not checked (non-default COMPUTE_ITERS)"
%endif
        PASS    [result]

        section .bss
        alignb  4
result:         resd 1
        section .text

%include "lib/end.inc"
