; bad-halt: HLT with interrupts disabled and nothing that can wake it (no
; NMI source): the VMM must report the halted guest and not spin.
%define GUEST_NAME "bad-halt"
%include "lib/guest.inc"
main:
        println GUEST_NAME, ": cli; hlt"
        cli
.h:     hlt
        jmp     .h
%include "lib/end.inc"
