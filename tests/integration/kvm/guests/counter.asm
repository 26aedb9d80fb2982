; counter: a ring-3 loop whose every OUT depends on the general registers,
; the stack and SSE state, so a state round trip that loses any of them
; changes the sequence. The test sets the registers (tests/integration/kvm/
; kvmt.c, kvmt_counter_value() computes the same sequence in C):
;   r12 = LCG state, r13 = multiplier, r14 = increment, xmm1 = 1.0
        bits    64
        org     0x10000
loop:   inc     rbx
        mov     rax, r12
        mul     r13                     ; rdx:rax = r12 * r13
        add     rax, r14
        mov     r12, rax
        addsd   xmm0, xmm1              ; xmm0 counts in floating point
        cvttsd2si rcx, xmm0
        push    r12                     ; through memory
        pop     rdx
        mov     eax, edx
        shr     rdx, 32
        xor     eax, edx
        xor     eax, ecx
        out     0x10, eax
        jmp     loop
