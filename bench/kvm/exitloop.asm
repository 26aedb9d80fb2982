; exitloop: a multiboot kernel for comparing VMMs on the same guest code.
; It enters long mode, drops to ring 3 (IOPL 3, so ports need no ring 0),
; runs COMPUTE iterations of bench.asm's compute loop, then OUTS writes to
; port 0x80, then MMIOS stores to 0xFE000000 (no device there), and powers
; off through the ACPI PM1a control port (0x604), as tests/guests do.
; Build: nasm -f bin -DCOMPUTE=n -DOUTS=n -DMMIOS=n -o exitloop.bin exitloop.asm
%ifndef COMPUTE
 %define COMPUTE 0
%endif
%ifndef OUTS
 %define OUTS 0
%endif
%ifndef MMIOS
 %define MMIOS 0
%endif

        bits    32
        org     0x100000
header: dd      0x1BADB002, 0x00010000, -(0x1BADB002 + 0x00010000)
        dd      header, 0x100000, load_end, bss_end, start

start:  cli
        lgdt    [gdtr]
        jmp     0x08:.flat
.flat:  mov     ax, 0x10
        mov     ds, ax
        mov     es, ax
        mov     ss, ax
        mov     esp, stack_top
        ; identity map 0-1 GiB and 3-4 GiB with 2 MiB user pages
        mov     dword [pml4], pdpt + 7
        mov     dword [pdpt], pd_low + 7
        mov     dword [pdpt + 24], pd_high + 7
        xor     ecx, ecx
.map:   mov     eax, ecx
        shl     eax, 21
        or      eax, 0x87
        mov     [pd_low + 8 * ecx], eax
        add     eax, 0xC0000000
        mov     [pd_high + 8 * ecx], eax
        inc     ecx
        cmp     ecx, 512
        jne     .map
        mov     eax, pml4
        mov     cr3, eax
        mov     eax, cr4
        or      eax, 0x220              ; PAE, OSFXSR
        mov     cr4, eax
        mov     ecx, 0xC0000080         ; EFER.LME
        rdmsr
        or      eax, 0x100
        wrmsr
        mov     eax, cr0
        or      eax, 0x80000001
        mov     cr0, eax
        jmp     0x18:lmode

        bits    64
lmode:  push    0x33                    ; SS: ring-3 data
        push    stack3_top
        push    0x3002                  ; RFLAGS: IOPL 3, IF 0
        push    0x2B                    ; CS: ring-3 64-bit code
        push    user
        iretq

user:   mov     rcx, COMPUTE
        test    rcx, rcx
        jz      .outs
.c:     imul    rax, rax, 3
        add     rax, rcx
        xor     rax, 0x5A5A
        dec     rcx
        jnz     .c
.outs:  mov     rcx, OUTS
        test    rcx, rcx
        jz      .mmio
.o:     out     0x80, al
        dec     rcx
        jnz     .o
.mmio:  mov     rcx, MMIOS
        mov     edi, 0xFE000000
        test    rcx, rcx
        jz      .off
.m:     mov     [rdi], eax
        dec     rcx
        jnz     .m
.off:   mov     ax, 0x2000
        mov     dx, 0x604
        out     dx, ax
.halt:  jmp     .halt

        align   8
gdt:    dq      0
        dq      0x00CF9A000000FFFF      ; 0x08 code, 32-bit
        dq      0x00CF92000000FFFF      ; 0x10 data
        dq      0x00AF9A000000FFFF      ; 0x18 code, 64-bit
        dq      0x00CF92000000FFFF      ; 0x20 data
        dq      0x00AFFA000000FFFF      ; 0x28 code, 64-bit, DPL 3
        dq      0x00CFF2000000FFFF      ; 0x30 data, DPL 3
gdtr:   dw      $ - gdt - 1
        dd      gdt
load_end:

        absolute load_end
        alignb  4096
pml4:   resb    4096
pdpt:   resb    4096
pd_low: resb    4096
pd_high: resb   4096
        resb    4096
stack_top:
        resb    4096
stack3_top:
bss_end:
