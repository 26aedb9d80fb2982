; mmio: accesses that no device claims, for exit tests. Reads the unclaimed
; MMIO address 0xFE000000 (in the PCI hole, below the IOAPIC) and the
; unclaimed I/O port 0x0A80 with dword, word and byte accesses, writes all
; three widths, reads again, and prints every value. A RAM location is
; written and read back first as a control.
;
; Checks: each unclaimed read returns one "floating" value, all ones or all
; zeros, the same at every width and after the writes (writes are dropped).
; modvm follows the PC convention -- all ones, as a PCI master abort reads --
; and the guest says which it saw; QEMU reads unassigned MMIO as zeros, so a
; harness that wants the PC convention checks the "reads as all ones" lines
; or ECX.
;
; Final registers: EBX = RESULT_PASS, ECX = the MMIO floating value
; (0xFFFFFFFF on modvm, 0 on QEMU).

%define GUEST_NAME "mmio"
%include "lib/guest.inc"

UNCLAIMED_MMIO  equ 0xFE000000
UNCLAIMED_PORT  equ 0x0A80

main:
        mov     dword [ram_cell], 0x12345678
        mov     eax, [ram_cell]
        print   GUEST_NAME, ": ram write 0x12345678 read 0x"
        print_hex32 eax
        print_nl
        cmp     eax, 0x12345678
        CHECK   e, "RAM did not keep a written value"

        ; --- MMIO ---
        mov     eax, [UNCLAIMED_MMIO]
        mov     [mmio_float], eax
        movzx   ebx, word [UNCLAIMED_MMIO + 2]
        movzx   ecx, byte [UNCLAIMED_MMIO + 1]
        print   GUEST_NAME, ": mmio 0xFE000000 read32 0x"
        print_hex32 eax
        print   " read16 0x"
        print_hex16 ebx
        print   " read8 0x"
        print_hex8 ecx
        print_nl
        call    check_float
        mov     dword [UNCLAIMED_MMIO], 0x12345678
        mov     word [UNCLAIMED_MMIO + 4], 0xABCD
        mov     byte [UNCLAIMED_MMIO + 6], 0x5A
        mov     eax, [UNCLAIMED_MMIO]
        movzx   ebx, word [UNCLAIMED_MMIO + 4]
        movzx   ecx, byte [UNCLAIMED_MMIO + 6]
        print   GUEST_NAME, ": mmio 0xFE000000 after writes read32 0x"
        print_hex32 eax
        print   " read16 0x"
        print_hex16 ebx
        print   " read8 0x"
        print_hex8 ecx
        print_nl
        cmp     eax, [mmio_float]
        CHECK   e, "a write to unclaimed MMIO was kept"
        call    check_float
        print   GUEST_NAME, ": unclaimed MMIO reads as "
        call    print_float

        ; --- port I/O ---
        mov     dx, UNCLAIMED_PORT
        in      eax, dx
        mov     [port_float], eax
        mov     esi, eax
        xor     eax, eax
        in      ax, dx
        mov     ebx, eax
        xor     eax, eax
        in      al, dx
        mov     ecx, eax
        mov     eax, esi
        print   GUEST_NAME, ": port 0x0A80 in32 0x"
        print_hex32 eax
        print   " in16 0x"
        print_hex16 ebx
        print   " in8 0x"
        print_hex8 ecx
        print_nl
        call    check_float
        mov     eax, 0x12345678
        out     dx, eax
        out     dx, ax
        out     dx, al
        in      eax, dx
        print   GUEST_NAME, ": port 0x0A80 after writes in32 0x"
        print_hex32 eax
        print_nl
        cmp     eax, [port_float]
        CHECK   e, "a write to an unclaimed port was kept"
        print   GUEST_NAME, ": unclaimed port reads as "
        call    print_float

        PASS    [mmio_float]

; EAX = dword read, EBX = word read, ECX = byte read: all must be the same
; floating value, all ones or all zeros.
check_float:
        test    eax, eax
        jz      .ok32
        cmp     eax, 0xFFFFFFFF
        CHECK   e, "unclaimed read is neither all ones nor all zeros"
.ok32:  cmp     bx, ax
        CHECK   e, "unclaimed word read differs from the dword read"
        cmp     cl, al
        CHECK   e, "unclaimed byte read differs from the dword read"
        ret

; EAX = floating value: prints "all ones" or "all zeros".
print_float:
        test    eax, eax
        jz      .zeros
        println "all ones"
        ret
.zeros: println "all zeros"
        ret

        section .bss
ram_cell:       resd 1
mmio_float:     resd 1
port_float:     resd 1
        section .text

%include "lib/end.inc"
