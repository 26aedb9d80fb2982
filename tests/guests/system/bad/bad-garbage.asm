; bad-garbage: executes random bytes. 64 trials: each fills a 4 KiB page
; at 0x200000 with xorshift32 bytes (fixed seed), loads random general
; registers and jumps into it; any exception starts the next trial from a
; clean state (GDT, IDT, segments, stack, CR0/CR4, PIC, PIT), and a PIT
; interrupt (100 Hz, IF=1 at the jump) ends one that loops. Random code may also
; reset, power off, halt or loop: the test only asks that the VMM survive.
; A reset (a triple fault, say) boots the guest again with the next seed: the
; boot count lives in CMOS RAM; after BOOTS boots the guest powers off.
%define GUEST_NAME "bad-garbage"
%include "lib/guest.inc"

GARBAGE         equ 0x200000
TRIALS          equ 64
SEED            equ 0x2545F491

BOOTS           equ 12
CMOS_BOOTS      equ 0x40                ; a CMOS RAM byte: survives resets

main:
        mov     al, CMOS_BOOTS                  ; boot number: the seed
        out     CMOS_INDEX, al
        in      al, CMOS_DATA
        movzx   ebx, al
        inc     al
        out     CMOS_DATA, al
        cmp     ebx, BOOTS
        jae     all_done
        print   GUEST_NAME, ": boot "
        print_dec ebx
        print_nl
        imul    eax, ebx, 0x9E3779B9
        xor     eax, SEED
        mov     dword [rng], eax
        xor     eax, eax                        ; every vector: next trial
.gate:  mov     edx, next_trial
        call    idt32_set_gate
        inc     eax
        cmp     eax, 256
        jb      .gate
next_trial:
        cli
        lgdt    [gdt_ptr]
        jmp     SEL_CODE32:.cs
.cs:    mov     ax, SEL_DATA
        mov     ds, ax
        mov     es, ax
        mov     fs, ax
        mov     gs, ax
        mov     ss, ax
        mov     esp, stack_top
        mov     eax, 0x11                       ; PE | ET: no paging
        mov     cr0, eax
        xor     eax, eax
        mov     cr4, eax
        lidt    [idt32_ptr]
        push    dword 2
        popfd
        mov     ax, 0xFFFE                      ; the PIT at 100 Hz ends
        call    pic_init                        ; trials that loop with IF=1
        mov     ax, 11932
        call    pit_periodic
        inc     dword [trial]
        cmp     dword [trial], TRIALS
        ja      .done
        print   GUEST_NAME, ": trial "
        print_dec [trial]
        print_nl
        mov     edi, GARBAGE
.fill:  call    xorshift
        mov     [edi], eax
        add     edi, 4
        cmp     edi, GARBAGE + 4096
        jb      .fill
        call    xorshift
        mov     ebx, eax
        call    xorshift
        mov     ecx, eax
        call    xorshift
        mov     edx, eax
        call    xorshift
        mov     esi, eax
        call    xorshift
        mov     edi, eax
        call    xorshift
        mov     ebp, eax
        call    xorshift
        and     eax, 0xFF0                      ; an offset into the page
        add     eax, GARBAGE
        push    dword 0x202                     ; IF=1
        popfd
        jmp     eax
.done:  println GUEST_NAME, ": all trials of this boot ended in exceptions"
        mov     al, 0xFE                        ; next boot: pulse the reset
        out     0x64, al                        ; line (i8042 command)
        mov     al, 0x06                        ; or through 0xCF9
        mov     dx, 0xCF9
        out     dx, al
        FAIL    "no reset"
all_done:
        mov     al, CMOS_BOOTS
        out     CMOS_INDEX, al
        xor     eax, eax
        out     CMOS_DATA, al
        PASS    BOOTS

xorshift:
        mov     eax, [rng]
        push    edx
        mov     edx, eax
        shl     edx, 13
        xor     eax, edx
        mov     edx, eax
        shr     edx, 17
        xor     eax, edx
        mov     edx, eax
        shl     edx, 5
        xor     eax, edx
        pop     edx
        mov     [rng], eax
        ret

        section .bss
rng:    resd 1
trial:  resd 1
        section .text
%include "lib/end.inc"
