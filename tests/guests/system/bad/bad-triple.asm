; bad-triple: a triple fault (an exception with an empty IDT: #GP on the
; delivery, then #DF, then shutdown). The VMM resets the machine, or ends
; the run with exit 4 under --no-reboot.
%define GUEST_NAME "bad-triple"
%include "lib/guest.inc"
main:
        println GUEST_NAME, ": empty IDT, then INT3"
        lidt    [empty_idt]
        int3
        FAIL    "survived a triple fault"
empty_idt:
        dw      0
        dd      0
%include "lib/end.inc"
