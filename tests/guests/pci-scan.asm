; pci-scan: PCI configuration mechanism #1 (0xCF8/0xCFC). Checks that the
; address register reads back, scans bus 0 devices 0-31 function 0, prints
; vendor:device, class code and header type of each device present, and for
; type-0 headers sizes BAR0 (decode off in COMMAND, write all ones, read the
; mask, restore BAR0 and COMMAND, check the restore). An absent device must
; read 0xFFFFFFFF; device 0 must be a host bridge (class 06.00).
;
; Output lists the machine's devices, so it differs between machines.
; Final registers: EBX = RESULT_PASS, ECX = number of devices found.

%define GUEST_NAME "pci-scan"
%include "lib/guest.inc"

PCI_ENABLE      equ 0x80000000
PCI_ID          equ 0x00
PCI_COMMAND     equ 0x04
PCI_CLASS       equ 0x08            ; revision 7:0, class code 31:8
PCI_HEADER      equ 0x0C            ; header type in 23:16
PCI_BAR0        equ 0x10
CMD_DECODE      equ 0x0003          ; I/O space | memory space

main:
        mov     dx, PCI_ADDR
        mov     eax, PCI_ENABLE
        out     dx, eax
        in      eax, dx
        cmp     eax, PCI_ENABLE
        CHECK   e, "0xCF8 does not read back what was written"

        xor     edi, edi                ; EDI = device number
.device:
        mov     ebx, edi                ; EBX = config address of dev.0, reg 0
        shl     ebx, 11
        or      ebx, PCI_ENABLE
        mov     eax, ebx
        call    pci_read32
        cmp     ax, 0xFFFF
        jne     .present
        cmp     eax, 0xFFFFFFFF
        CHECK   e, "absent device did not read 0xFFFFFFFF"
        test    edi, edi
        CHECK   nz, "no device at 00:00.0"
        jmp     .next
.present:
        inc     dword [found]
        mov     esi, eax                ; ESI = device:vendor
        print   GUEST_NAME, ": 00:"
        print_hex8 edi
        print   ".0 "
        print_hex16 esi
        print   ":"
        shr     esi, 16
        print_hex16 esi
        lea     eax, [ebx + PCI_CLASS]
        call    pci_read32
        shr     eax, 8
        mov     esi, eax                ; ESI = class:subclass:prog-if
        print   " class "
        mov     eax, esi
        shr     eax, 16
        print_hex8 eax
        print   "."
        mov     eax, esi
        shr     eax, 8
        print_hex8 eax
        print   "."
        print_hex8 esi
        test    edi, edi
        jnz     .not_host
        shr     esi, 8
        cmp     esi, 0x0600
        CHECK   e, "device 00:00.0 is not a host bridge"
.not_host:
        lea     eax, [ebx + PCI_HEADER]
        call    pci_read32
        shr     eax, 16
        print   " hdr "
        print_hex8 eax
        and     al, 0x7F
        jnz     .eol                    ; BAR0 layout only known for type 0
        call    size_bar0
.eol:   print_nl
.next:  inc     edi
        cmp     edi, 32
        jb      .device

        print   GUEST_NAME, ": devices="
        print_dec [found]
        print_nl
        PASS    [found]

; EBX = config address of the function (register 0). Prints " bar0 ...".
size_bar0:
        pushad
        lea     eax, [ebx + PCI_COMMAND]
        call    pci_read16
        mov     ebp, eax                ; EBP = COMMAND
        mov     edx, eax
        and     edx, ~CMD_DECODE        ; no decoding while BAR0 is all ones
        lea     eax, [ebx + PCI_COMMAND]
        call    pci_write16
        lea     eax, [ebx + PCI_BAR0]
        call    pci_read32
        mov     esi, eax                ; ESI = original BAR0
        lea     eax, [ebx + PCI_BAR0]
        mov     edx, 0xFFFFFFFF
        call    pci_write32
        lea     eax, [ebx + PCI_BAR0]
        call    pci_read32
        mov     edi, eax                ; EDI = size mask
        lea     eax, [ebx + PCI_BAR0]
        mov     edx, esi
        call    pci_write32
        lea     eax, [ebx + PCI_COMMAND]
        mov     edx, ebp
        call    pci_write16
        lea     eax, [ebx + PCI_BAR0]
        call    pci_read32
        cmp     eax, esi
        CHECK   e, "BAR0 not restored after sizing"
        lea     eax, [ebx + PCI_COMMAND]
        call    pci_read16
        cmp     eax, ebp
        CHECK   e, "COMMAND not restored after sizing"

        test    edi, edi
        jnz     .implemented
        print   " bar0 none"
        jmp     .done
.implemented:
        test    esi, 1
        jz      .memory
        and     esi, ~0x3
        and     edi, ~0x3
        neg     edi                     ; size = ~mask + 1, within 64 KiB
        and     edi, 0xFFFF
        print   " bar0 io 0x"
        print_hex32 esi
        jmp     .size
.memory:
        mov     eax, esi
        and     esi, ~0xF
        and     edi, ~0xF
        neg     edi
        print   " bar0 mem"
        test    eax, 0x4                ; type 10b: 64-bit
        jz      .mem32
        print   "64"
        jmp     .pref
.mem32: print   "32"
.pref:  test    eax, 0x8
        jz      .addr
        print   " pref"
.addr:  print   " 0x"
        print_hex32 esi
.size:  print   " size 0x"
        print_hex32 edi
.done:  popad
        ret

; EAX = config address; returns EAX = dword.
pci_read32:
        push    edx
        mov     dx, PCI_ADDR
        and     eax, ~3
        out     dx, eax
        mov     dx, PCI_DATA
        in      eax, dx
        pop     edx
        ret

; EAX = config address, EDX = dword.
pci_write32:
        push    eax
        push    edx
        mov     dx, PCI_ADDR
        and     eax, ~3
        out     dx, eax
        mov     dx, PCI_DATA
        pop     eax
        push    eax
        out     dx, eax
        pop     edx
        pop     eax
        ret

; EAX = config address (bit 1 picks the word); returns EAX = word.
pci_read16:
        push    edx
        mov     edx, eax
        and     edx, 2
        add     edx, PCI_DATA
        push    edx
        mov     dx, PCI_ADDR
        and     eax, ~3
        out     dx, eax
        pop     edx
        xor     eax, eax
        in      ax, dx
        pop     edx
        ret

; EAX = config address (bit 1 picks the word), EDX = word.
pci_write16:
        push    eax
        push    edx
        push    edx
        mov     edx, eax
        and     edx, 2
        add     edx, PCI_DATA
        push    edx
        mov     dx, PCI_ADDR
        and     eax, ~3
        out     dx, eax
        pop     edx
        pop     eax
        out     dx, ax
        pop     edx
        pop     eax
        ret

        section .bss
found:          resd 1
        section .text

%include "lib/end.inc"
