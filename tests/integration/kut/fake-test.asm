; A stand-in for a kvm-unit-tests kernel, to test bench/kvm-unit-tests/run.sh
; without the suite: a multiboot (a.out kludge) image that ends the VM the
; way the suite's exit() does, by writing a code to isa-debug-exit (0xf4).
; Assemble with one of:
;   -DEXIT_CODE=N   write N (0: PASS, 1: FAIL, 38: every subtest skipped)
;   -DPOWEROFF      power off through ACPI instead (no debug exit: FAIL)
;   -DHANG          spin forever (a timeout)
;   -DCPUS=N        write FW_CFG_NB_CPUS - N: 0 (PASS) if fw_cfg says N
;   -DARGS          write 0 if the multiboot command line ends in " hello"
        bits    32
        org     0x100000

MB_MAGIC equ 0x1BADB002
MB_FLAGS equ 0x00010000                 ; a.out kludge: addresses below

header: dd      MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)
        dd      header, header, load_end, bss_end, entry

entry:
%ifdef POWEROFF
        mov     dx, 0x604               ; PM1a_CNT: SLP_TYP = S5 | SLP_EN
        mov     ax, 0x2000
        out     dx, ax
%elifdef HANG
        jmp     $
%elifdef CPUS
        mov     dx, 0x510               ; fw_cfg selector: FW_CFG_NB_CPUS
        mov     ax, 0x0005
        out     dx, ax
        inc     dx
        in      al, dx
        movzx   eax, al
        sub     eax, CPUS
        out     0xf4, eax
%elifdef ARGS
        mov     esi, [ebx + 16]         ; multiboot info: cmdline
        mov     edi, esi
.end:   cmp     byte [edi], 0
        je      .found
        inc     edi
        jmp     .end
.found: mov     eax, 1
        sub     edi, 6
        cmp     edi, esi
        jb      .out
        cmp     dword [edi], 'hel' << 8 | ' '
        jne     .out
        cmp     word [edi + 4], 'lo'
        jne     .out
        xor     eax, eax
.out:   out     0xf4, eax
%else
        mov     eax, EXIT_CODE
        out     0xf4, eax
%endif
.halt:  cli
        hlt
        jmp     .halt
load_end:
bss_end:
