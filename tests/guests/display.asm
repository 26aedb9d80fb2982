; display: draws on vga-std for tests/integration/display (which takes
; `modvm ctl screendump` and checks pixels of the PNG). Always writes VGA
; text mode first (0xB8000, cursor through the CRTC); then, by the
; multiboot command line:
;   mode=text  stays in text mode
;   mode=fb    finds the adapter on PCI (1234:1111), checks the DISPI ID
;              and VRAM size, sets 640x480x32 through ports 0x1CE/0x1CF and
;              fills the framebuffer (BAR0) with four coloured quadrants
;   mode=bad   programs absurd modes first (xres 65535, bpp 3, a bank
;              beyond VRAM, offsets beyond VRAM, writes past the end of
;              BAR0), then the same picture as mode=fb
;   mode=keys  stays in text mode, prints "display: ready", then polls the
;              8042 and prints every byte the keyboard sends as "key XX"
;              (scan codes, translated to set 1 as the BIOS default leaves
;              the controller), forever
; It prints "display: ready" and halts with interrupts off, so the picture
; stays while the test looks at it (unlike other guests it does not power
; off: the test ends it with `modvm ctl quit`).
;
; Text: row 0 "modvm display" white on blue (0x1F); row 1 columns 0-9
; spaces on red (0x40); row 2 columns 0-9 character 0xDB (full block) in
; green (0x02); the cursor (lines 13-14, grey) at row 3 column 0.
; Framebuffer: top-left red, top-right green, bottom-left blue,
; bottom-right white; pixel (639,479) 0x123456.

%define GUEST_NAME "display"
%include "lib/guest.inc"

TEXT            equ 0xB8000
DISPI_INDEX     equ 0x1CE
DISPI_DATA      equ 0x1CF
PCI_ENABLE      equ 0x80000000
VGA_ID          equ 0x11111234      ; device:vendor
W               equ 640
H               equ 480

%macro DISPI 2                      ; DISPI index, value
        mov     dx, DISPI_INDEX
        mov     ax, %1
        out     dx, ax
        mov     dx, DISPI_DATA
        mov     ax, %2
        out     dx, ax
%endmacro

main:
        call    draw_text
        call    cmdline_mode            ; AL = 't', 'f' or 'b'
        cmp     al, 't'
        je      .ready
        cmp     al, 'k'
        je      keys
        push    eax
        call    find_vga                ; EDI = BAR0
        pop     eax
        cmp     al, 'b'
        jne     .fb
        call    bad_modes
.fb:    call    set_mode
        call    draw_fb
.ready: println GUEST_NAME, ": ready"
.halt:  cli
        hlt
        jmp     .halt

keys:   println GUEST_NAME, ": ready"
.poll:  in      al, 0x64
        test    al, 1                   ; output buffer full
        jz      .poll
        test    al, 0x20                ; a mouse byte: not ours
        in      al, 0x60
        jnz     .poll
        movzx   ebx, al
        print   "key "
        print_hex8 ebx
        print_nl
        jmp     .poll

draw_text:
        mov     edi, TEXT
        mov     esi, banner
        mov     ah, 0x1F
.ch:    lodsb
        test    al, al
        jz      .row1
        stosw
        jmp     .ch
.row1:  mov     edi, TEXT + 160
        mov     ecx, 10
        mov     ax, 0x4020
        rep stosw
        mov     edi, TEXT + 320
        mov     ecx, 10
        mov     ax, 0x02DB
        rep stosw
        mov     word [TEXT + 480], 0x0700  ; grey on black: the cursor shows
        ; cursor at 3*80 = 240 (CRTC 0x0E high, 0x0F low)
        mov     dx, 0x3D4
        mov     ax, 0x000E
        out     dx, ax
        mov     ax, 0xF00F
        out     dx, ax
        ret

; AL = the letter after "mode=" on the command line ('t' without one).
cmdline_mode:
        mov     ebx, [mb_info]
        mov     al, 't'
        test    dword [ebx], 1 << 2     ; flags: cmdline present
        jz      .done
        mov     esi, [ebx + 16]
.scan:  mov     cl, [esi]
        test    cl, cl
        jz      .done
        cmp     dword [esi], 'mode'
        jne     .next
        cmp     byte [esi + 4], '='
        jne     .next
        mov     al, [esi + 5]
        ret
.next:  inc     esi
        jmp     .scan
.done:  ret

; EDI = BAR0 of the first 1234:1111 function on bus 0.
find_vga:
        xor     ebx, ebx
.dev:   mov     eax, ebx
        shl     eax, 11
        or      eax, PCI_ENABLE
        mov     dx, PCI_ADDR
        out     dx, eax
        mov     dx, PCI_DATA
        in      eax, dx
        cmp     eax, VGA_ID
        je      .found
        inc     ebx
        cmp     ebx, 32
        jb      .dev
        FAIL    "no 1234:1111 display adapter on PCI bus 0"
.found: mov     eax, ebx
        shl     eax, 11
        or      eax, PCI_ENABLE | 0x10
        mov     dx, PCI_ADDR
        out     dx, eax
        mov     dx, PCI_DATA
        in      eax, dx
        test    eax, 0x8
        CHECK   nz, "BAR0 is not prefetchable"
        and     eax, ~0xF
        CHECK   nz, "BAR0 is not placed"
        mov     edi, eax
        ret

bad_modes:
        DISPI   4, 0                    ; disabled
        DISPI   1, 65535
        DISPI   2, 65535
        DISPI   3, 3
        DISPI   5, 0xFFFF               ; bank beyond VRAM
        DISPI   4, 0x41
        DISPI   6, 0xFFFF               ; virtual width beyond any mode
        DISPI   9, 0xFFFF               ; y offset beyond VRAM
        DISPI   8, 0xFFFF
        ; a write at the last dword of BAR0, and past it
        mov     dword [edi + 0xFFFFFC], 0xFFFFFFFF
        mov     dword [edi + 0x1000000], 0xFFFFFFFF
        DISPI   4, 0
        ret

set_mode:
        mov     dx, DISPI_INDEX
        xor     ax, ax
        out     dx, ax
        mov     dx, DISPI_DATA
        mov     ax, 0xB0C5
        out     dx, ax
        in      ax, dx
        cmp     ax, 0xB0C5
        CHECK   e, "DISPI ID does not read back 0xB0C5"
        mov     dx, DISPI_INDEX
        mov     ax, 0x0A
        out     dx, ax
        mov     dx, DISPI_DATA
        in      ax, dx
        cmp     ax, 256
        CHECK   e, "DISPI VIDEO_MEMORY_64K is not 256 (16 MiB)"
        DISPI   4, 0
        DISPI   1, W
        DISPI   2, H
        DISPI   3, 32
        DISPI   4, 0x41                 ; enabled, LFB
        ret

; Quadrants of 320x240; EDI = framebuffer.
draw_fb:
        xor     ebx, ebx                ; y
.row:   xor     ecx, ecx                ; x
.px:    mov     eax, 0xFF0000
        cmp     ecx, W / 2
        jb      .left
        mov     eax, 0x00FF00
.left:  cmp     ebx, H / 2
        jb      .store
        mov     eax, 0x0000FF
        cmp     ecx, W / 2
        jb      .store
        mov     eax, 0xFFFFFF
.store: mov     [edi], eax
        add     edi, 4
        inc     ecx
        cmp     ecx, W
        jb      .px
        inc     ebx
        cmp     ebx, H
        jb      .row
        mov     dword [edi - 4], 0x123456
        ret

        section .data
banner: db      "modvm display", 0

%include "lib/end.inc"
