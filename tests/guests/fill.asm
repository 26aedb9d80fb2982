; fill: writes a non-zero pattern over 88 MiB of RAM (2 MiB to 90 MiB),
; prints "fill: done", then halts with interrupts off for ever: a guest
; whose RAM holds data but does not change, for migration benchmarks
; (bench/migration), so that the bytes sent compare with a used guest.

%define GUEST_NAME "fill"
%include "lib/guest.inc"

FIRST           equ 0x200000
LAST            equ 0x5A00000           ; 90 MiB
HASH            equ -0x61C8864F         ; 0x9E3779B1

main:
        mov     edi, FIRST
.next:  imul    eax, edi, HASH
        or      eax, 1                  ; never a zero dword
        mov     [edi], eax
        add     edi, 4
        cmp     edi, LAST
        jb      .next
        println "fill: done"
        cli
.halt:  hlt
        jmp     .halt

%include "lib/end.inc"
