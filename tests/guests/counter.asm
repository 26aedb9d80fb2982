; counter: a long, fully deterministic run for snapshot and migration tests.
; For n = 1 .. 100000 prints "n=<decimal> sum=<8 hex digits>" where
; sum = sum * 31 + n (32-bit, starting from 0), then checks the final sum.
; State lives in registers (EDI = n, ESI = sum) and the serial stream, so a
; snapshot taken anywhere and resumed must continue the same sequence.
;
; Final registers: EBX = RESULT_PASS, ECX = 0x0B09CD50 (the final sum).

%define GUEST_NAME "counter"
%include "lib/guest.inc"

COUNT           equ 100000
FINAL_SUM       equ 0x0B09CD50

main:
        xor     edi, edi                ; n
        xor     esi, esi                ; sum
.next:  inc     edi
        imul    esi, esi, 31
        add     esi, edi
        print   "n="
        print_dec edi
        print   " sum="
        print_hex32 esi
        print_nl
        cmp     edi, COUNT
        jb      .next
        cmp     esi, FINAL_SUM
        CHECK   e, "final sum is not 0x0B09CD50"
        PASS    esi

%include "lib/end.inc"
