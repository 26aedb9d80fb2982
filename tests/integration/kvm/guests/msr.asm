; msr: ring 0 reads an MSR no CPU has; the #GP handler (vector 13, at
; 0x10100) reports 13 on port 0x11 and skips the 2-byte RDMSR, then the
; guest writes 0x600D to port 0x10 and halts.
        bits    64
        org     0x10000
        mov     ecx, 0x4FFFFFF0
        rdmsr
        mov     eax, 0x600D
        out     0x10, eax
.halt:  hlt
        jmp     .halt

        times   0x100 - ($ - $$) db 0xCC
gp:     push    rax
        mov     eax, 13
        out     0x11, eax
        pop     rax
        add     rsp, 8                  ; the error code
        add     qword [rsp], 2          ; past RDMSR
        iretq
