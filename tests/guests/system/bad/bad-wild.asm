; bad-wild: touches what no RAM backs. Reads of unmapped memory above RAM
; and in the MMIO hole must complete (all ones), writes there and to the
; BIOS ROM area (0xF0000) must not crash the VMM; then a jump above RAM and
; a jump into the MMIO hole each end in an exception the guest catches.
; The test asks that the VMM keep running and the guest reach PASS.
%define GUEST_NAME "bad-wild"
%include "lib/guest.inc"
%include "system/sys.inc"

ABOVE_RAM       equ 0x10000000          ; 256 MiB: the tests give 64 MiB
HOLE            equ 0xFED00000          ; unclaimed MMIO (no HPET here)

main:
        call    catch32_init
        mov     eax, [ABOVE_RAM]
        mov     [rd_above], eax
        mov     eax, [HOLE]
        mov     [rd_hole], eax
        mov     dword [ABOVE_RAM], 0x12345678
        mov     dword [HOLE], 0x12345678
        mov     eax, [0xF0000]
        mov     [rom_before], eax
        not     dword [0xF0000]                 ; ROM or RAM: either is fine
        mov     eax, [0xF0000]
        mov     [rom_after], eax
        mov     edi, HOLE
        mov     ecx, 64
        rep stosd                               ; a string write into MMIO
        print   GUEST_NAME, ": above RAM reads 0x"
        print_hex32 [rd_above]
        print   ", MMIO hole reads 0x"
        print_hex32 [rd_hole]
        print   ", 0xF0000 0x"
        print_hex32 [rom_before]
        print   " -> 0x"
        print_hex32 [rom_after]
        print_nl
        mov     dword [ret_ok], 0
        EXPECT  .back1
        mov     eax, ABOVE_RAM
        call    eax
.back1: print   GUEST_NAME, ": jump above RAM: vector 0x"
        print_hex8 [exc_vec]
        print   " eip=0x"
        print_hex32 [exc_eip]
        print_nl
        EXPECT  .back2
        mov     eax, HOLE
        call    eax
.back2: print   GUEST_NAME, ": jump into the MMIO hole: vector 0x"
        print_hex8 [exc_vec]
        print   " eip=0x"
        print_hex32 [exc_eip]
        print_nl
        PASS    [exc_count]

        section .bss
rd_above:       resd 1
rd_hole:        resd 1
rom_before:     resd 1
rom_after:      resd 1
ret_ok:         resd 1
        section .text
%include "lib/end.inc"
