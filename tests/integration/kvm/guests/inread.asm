; inread: reads whose value arrives only when KVM_RUN is entered again.
;   0x10000 IN EAX from port 0x10, forever (the test's port returns the
;           number of reads so far)
;   0x10100 32-bit MMIO load from [rdi], forever (same value)
        bits    64
        org     0x10000
pio:    in      eax, 0x10
        jmp     pio

        times   0x100 - ($ - $$) db 0xCC
mmio:   mov     eax, [rdi]
        jmp     mmio
