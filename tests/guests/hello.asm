; hello: the smallest guest -- print a greeting and power off. Checks that
; the multiboot loader entered with the boot magic in EAX.
;
; Final registers: EBX = RESULT_PASS, ECX = 0x2BADB002 (EAX seen at entry).

%define GUEST_NAME "hello"
%include "lib/guest.inc"

main:
        println GUEST_NAME, ": hello, world from 32-bit protected mode"
        mov     eax, [mb_magic]
        print   GUEST_NAME, ": multiboot magic 0x"
        print_hex32 eax
        print_nl
        cmp     eax, MB_BOOT_MAGIC
        CHECK   e, "multiboot magic in EAX is not 0x2BADB002"
        PASS    [mb_magic]

%include "lib/end.inc"
