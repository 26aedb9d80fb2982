; strio: string port I/O from ring 3 (IOPL 3), several elements per exit.
; OUT 0x10: the five dwords of `data` (REP OUTSD), then the dword and the
; third word that REP INSW read from port 0x10 (the test's port returns
; how many times it was read: 1, 2, 3).
        bits    64
        org     0x10000
        mov     rsi, data
        mov     ecx, 5
        mov     dx, 0x10
        rep outsd
        mov     rdi, 0x12000
        mov     ecx, 3
        rep insw
        mov     eax, [0x12000]
        out     0x10, eax
        movzx   eax, word [0x12004]
        out     0x10, eax
.spin:  jmp     .spin
data:   dd      0x11111111, 0x22222222, 0x33333333, 0x44444444, 0x55555555
