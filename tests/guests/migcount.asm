; migcount: a guest that never ends, for live migration tests. It counts
; n = 1, 2, ... in EDI, storing hash(n) into a 1 MiB array of RAM at
; a[n mod 2^18] (256 pages written over and over), and every 16384 steps
; checks the whole array against what the count says it must hold, then
; prints "n=<decimal>". A migrated guest whose RAM lost a write, or got a
; stale page, prints "migcount: FAIL ram a[<i>]" and powers off; one that
; resumed at the wrong point breaks the sequence of n= lines (the test
; checks that the lines of source and destination together are
; consecutive multiples of 16384, with no gap and no repeat).

%define GUEST_NAME "migcount"
%include "lib/guest.inc"

ARR             equ 0x400000            ; 4 MiB: above the image
NENT            equ 262144              ; dwords in the array (1 MiB)
MASK            equ NENT - 1
LINE            equ 16384               ; steps per line
HASH            equ -0x61C8864F         ; 0x9E3779B1, the golden ratio hash

main:
        xor     edi, edi                ; n
.step:  inc     edi
        imul    eax, edi, HASH
        mov     ebx, edi
        and     ebx, MASK
        mov     [ARR + ebx*4], eax
        test    edi, LINE - 1
        jnz     .step
        ; a[i] holds hash(n') for the last n' <= n with n' = i (mod NENT),
        ; n' >= 1, or 0 if there is none
        xor     ecx, ecx                ; i
.check: mov     edx, edi
        sub     edx, ecx
        and     edx, MASK               ; k = (n - i) mod NENT, n' = n - k
        xor     eax, eax
        cmp     edi, edx
        jbe     .cmp                    ; n' < 1: never written
        mov     eax, edi
        sub     eax, edx
        imul    eax, eax, HASH
.cmp:   cmp     [ARR + ecx*4], eax
        jne     .bad
        inc     ecx
        cmp     ecx, NENT
        jb      .check
        print   "n="
        print_dec edi
        print_nl
        jmp     .step
.bad:   FAIL_BEGIN "ram a["
        print_dec ecx
        print   "] at n="
        print_dec edi
        FAIL_END

%include "lib/end.inc"
