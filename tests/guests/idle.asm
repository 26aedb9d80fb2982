; idle: prints its start line and halts with interrupts off, for ever: an
; idle guest for migration benchmarks (bench/migration), where RAM is all
; that moves.

%define GUEST_NAME "idle"
%include "lib/guest.inc"

main:
        cli
.halt:  hlt
        jmp     .halt

%include "lib/end.inc"
