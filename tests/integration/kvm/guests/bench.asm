; bench: ring-3 loops for bench/kvm (entry points 0x100 apart).
;   0x10000 compute: r8 iterations of a dependent integer chain, then OUT 0x10
;           (entered at CPL 3 or, to measure emulated kernel code, CPL 0)
;   0x10100 pio: OUT 0x10 forever (one exit per iteration)
;   0x10200 mmio: 32-bit store to [rdi] forever (one MMIO exit each)
        bits    64
        org     0x10000
compute:
        mov     rcx, r8
.l:     imul    rax, rax, 3
        add     rax, rcx
        xor     rax, 0x5A5A
        dec     rcx
        jnz     .l
        out     0x10, eax
        jmp     compute

        times   0x100 - ($ - $$) db 0xCC
pio:    out     0x10, eax
        jmp     pio

        times   0x200 - ($ - $$) db 0xCC
mmio:   mov     [rdi], eax
        jmp     mmio
