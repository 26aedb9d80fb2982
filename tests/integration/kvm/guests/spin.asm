; spin: a ring-3 loop with no exits at all, for kick latency.
        bits    64
        org     0x10000
loop:   inc     rax
        jmp     loop
