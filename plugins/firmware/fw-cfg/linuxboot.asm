; modvm's linuxboot option ROM: boots the Linux kernel that fw-cfg offers
; (property kernel) once the firmware (SeaBIOS) chooses it as a boot device.
;
; fw-cfg prepares everything a boot loader does (the setup header filled in
; as Documentation/arch/x86/boot.rst asks, addresses chosen) and offers the
; pieces as the classic linuxboot items: for the real-mode setup, the
; protected-mode kernel, the initrd and the command line, one item each
; with its load address, one with its size and one with its bytes. This ROM
; copies each piece to its address through the fw_cfg DMA interface (the
; initrd moved under the firmware's top of memory) and enters the setup
; code. Assembled with nasm at build time and built
; into the fw-cfg plugin; fw-cfg writes the size byte and the checksum
; when it offers the ROM (genroms/linuxboot.bin).
;
; The BIOS far-calls `init` once (nothing to do) and registers the PnP
; header's bootstrap entry vector `bev` as a boot device; `bev` never
; returns: it jumps to the kernel, or raises INT 18h (boot failure, the
; firmware tries its next device) after a line on the debug port 0x402.

bits 16
cpu 486
org 0

FWCFG_DMA      equ 0x514       ; the DMA address register, big endian
DEBUG_PORT     equ 0x402
SCRATCH        equ 0x7000      ; FWCfgDmaAccess, then a 4-byte result
STACK          equ 0x6ff0
CTL_ERROR      equ 0x01
CTL_READ       equ 0x02
CTL_SELECT     equ 0x08

rom:
	db 0x55, 0xaa
	db 0                    ; size in 512-byte blocks (fw-cfg sets it)
	jmp short init          ; offset 3: the initialisation entry
	times 0x1a - ($ - rom) db 0
	dw pnp                  ; offset 0x1a: the PnP expansion header

init:
	retf

; ---- the boot entry ---------------------------------------------------

bev:
	cli
	cld
	xor ax, ax
	mov ds, ax
	mov es, ax
	mov ss, ax
	mov sp, STACK
	mov si, items
.next:
	mov al, [cs:si]         ; the address item, 0 at the end
	test al, al
	jz .enter
	call read_u32
	mov ebp, eax            ; where the piece goes
	mov al, [cs:si + 1]     ; its size
	call read_u32
	test eax, eax
	jz .skip                ; no initrd, say
	mov ecx, eax
	cmp byte [cs:si], 0x0a  ; the initrd: below what the firmware keeps
	jne .load
	call initrd_below_top
.load:
	mov edi, ebp
	movzx eax, byte [cs:si + 2]
	call dma_read
	jc fail
.skip:
	add si, 3
	jmp .next
.enter:
	; the real-mode setup: ds = es = ss = its segment, the stack at the
	; top of its 64 KiB, cs:ip = segment + 0x20 : 0 (boot.rst, "Running
	; the kernel")
	mov al, 0x16            ; the setup's address
	call read_u32
	shr eax, 4
	mov ds, ax
	mov es, ax
	mov fs, ax
	mov gs, ax
	mov ss, ax
	mov sp, 0xfff0
	add ax, 0x20
	push ax
	push word 0
	retf

; address, size and data items of each piece
items:
	db 0x16, 0x17, 0x18     ; setup
	db 0x07, 0x08, 0x11     ; kernel
	db 0x0a, 0x0b, 0x12     ; initrd
	db 0x13, 0x14, 0x15     ; command line
	db 0

; initrd_below_top: ebp = the initrd's address, ecx = its size. fw-cfg put
; it near the top of RAM, where the firmware may keep tables of its own:
; move it (4 KiB aligned) under the top of memory INT 15h E801 reports,
; and tell the kernel in the setup header (ramdisk_image, 0x218), which
; is loaded by now.
initrd_below_top:
	push ecx
	push si
	mov ax, 0xe801
	int 0x15
	jc .done                ; no E801: leave it where it is
	test ax, ax
	jnz .ax
	mov ax, cx              ; some BIOSes answer in CX/DX only
	mov bx, dx
.ax:
	movzx ebx, bx
	movzx eax, ax
	shl eax, 10
	add eax, 0x100000       ; KiB between 1 and 16 MiB
	test ebx, ebx
	jz .top
	mov eax, ebx
	shl eax, 16
	add eax, 0x1000000      ; 64 KiB blocks above 16 MiB
.top:
	pop si
	pop ecx
	push ecx
	push si
	mov edx, ebp
	add edx, ecx
	cmp edx, eax
	jbe .done               ; it fits
	sub eax, ecx
	and eax, ~0xfff
	mov ebp, eax
	mov al, 0x16            ; the setup's address
	call read_u32
	shr eax, 4
	mov fs, ax
	mov [fs:0x218], ebp
.done:
	pop si
	pop ecx
	ret

; ---- fw_cfg ------------------------------------------------------------

; read_u32: al = item; eax = its first four bytes (little endian)
read_u32:
	movzx eax, al
	mov edi, SCRATCH + 16
	mov ecx, 4
	call dma_read
	jc fail
	mov eax, [SCRATCH + 16]
	ret

; dma_read: select item eax and copy its first ecx bytes to physical
; address edi; CF set if the device reported an error
dma_read:
	shl eax, 16
	or eax, CTL_SELECT | CTL_READ
	bswap eax
	mov [SCRATCH], eax
	bswap ecx
	mov [SCRATCH + 4], ecx
	mov dword [SCRATCH + 8], 0
	bswap edi
	mov [SCRATCH + 12], edi
	mov dx, FWCFG_DMA
	xor eax, eax
	out dx, eax             ; the descriptor's address, bits 63:32
	mov eax, SCRATCH
	bswap eax
	add dx, 4
	out dx, eax             ; bits 31:0: the transfer runs
.wait:
	mov eax, [SCRATCH]      ; 0 when done, the error bit on failure
	bswap eax
	test eax, ~CTL_ERROR
	jnz .wait
	test eax, CTL_ERROR
	jz .ok
	stc
	ret
.ok:
	clc
	ret

fail:
	mov si, failed
	mov dx, DEBUG_PORT
.out:
	mov al, [cs:si]
	test al, al
	jz .done
	out dx, al
	inc si
	jmp .out
.done:
	int 0x18
	hlt
	jmp .done

failed:
	db "modvm linuxboot: fw_cfg DMA failed: the kernel was not loaded", 10, 0

; ---- PnP expansion header (BIOS Boot Specification 1.01, 3.2) -----------

align 16
pnp:
	db "$PnP"
	db 1                    ; revision
	db 2                    ; length in 16-byte units
	dw 0                    ; next header: none
	db 0
	db (-('$' + 'P' + 'n' + 'P' + 1 + 2 + \
	      ((manufacturer - rom) & 0xff) + ((manufacturer - rom) >> 8) + \
	      ((product - rom) & 0xff) + ((product - rom) >> 8) + \
	      ((bev - rom) & 0xff) + ((bev - rom) >> 8))) & 0xff  ; the header sums to 0
	dd 0                    ; device id
	dw manufacturer
	dw product
	db 0, 0, 0              ; device type
	db 0                    ; device indicators
	dw 0                    ; boot connection vector
	dw 0                    ; disconnect vector
	dw bev                  ; bootstrap entry vector
	dw 0
	dw 0                    ; static resource information vector

manufacturer:
	db "modvm", 0
product:
	db "Linux (fw_cfg linuxboot)", 0

	; to a whole number of 512-byte blocks, the last byte the checksum
	times (($ - rom) + 1 + 511) / 512 * 512 - 1 - ($ - rom) db 0
	db 0                    ; the checksum byte (fw-cfg sets it)
