; irq: ring-0 code that sleeps in HLT and reports interrupts by port.
;   0x10000 entry: enable the local APIC (SVR = 0x1FF), STI, then HLT in a
;           loop, writing 0x12 after each wake-up
;   0x10100 handler for the 8259 vector (0x30): OUT 0x11 <- 0x30
;   0x10200 handler for an MSI (0x31): OUT 0x11 <- 0x31, then LAPIC EOI
        bits    64
        org     0x10000
entry:  mov     rdi, 0xFEE000F0         ; spurious-interrupt vector register
        mov     dword [rdi], 0x1FF      ; APIC software enable, vector 0xFF
        sti
.halt:  hlt
        mov     eax, 0x12
        out     0x12, eax
        jmp     .halt

        times   0x100 - ($ - $$) db 0xCC
extint: push    rax
        mov     eax, 0x30
        out     0x11, eax
        pop     rax
        iretq

        times   0x200 - ($ - $$) db 0xCC
msi:    push    rax
        push    rdi
        mov     eax, 0x31
        out     0x11, eax
        mov     rdi, 0xFEE000B0         ; EOI register
        mov     dword [rdi], 0
        pop     rdi
        pop     rax
        iretq
