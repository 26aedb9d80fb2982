; A BIOS boot sector for the firmware tests, assembled at test time
; (firmware.sh): it prints "BOOT <name>" on COM1, reads LBA 1 through the
; firmware's INT 13h (extended read, AH=42h, from the boot drive in DL),
; prints the string found there and ends the VM through isa-debug-exit:
; status 33 when the read worked, 35 when INT 13h failed. A test thus sees
; that the firmware loaded sector 0 and that its disk driver reads sector 1.
;   nasm -f bin -DNAME='"disk-a"' -o boot.img bootsect.asm
%ifndef NAME
%define NAME "disk"
%endif
%define COM1 0x3f8
%define EXIT_PORT 0xf4

bits 16
org 0x7c00
start:
	cli
	xor ax, ax
	mov ds, ax
	mov es, ax
	mov ss, ax
	mov sp, 0x7c00
	sti
	cld
	mov [drive], dl
	mov si, banner
	call puts
	mov si, dap
	mov ah, 0x42
	mov dl, [drive]
	int 0x13
	jc .fail
	mov si, 0x7e00
	call puts
	mov al, 0x10            ; exit status (0x10 << 1) | 1 = 33
	jmp .exit
.fail:
	mov si, failed
	call puts
	mov al, 0x11            ; 35
.exit:
	out EXIT_PORT, al
.halt:
	hlt
	jmp .halt

puts:                           ; print the NUL-terminated string at DS:SI
	lodsb
	test al, al
	jz .done
	mov dx, COM1
	out dx, al
	jmp puts
.done:
	ret

drive:  db 0
banner: db "BOOT ", NAME, 13, 10, 0
failed: db "INT13 FAILED", 13, 10, 0
align 4
dap:    db 16, 0                ; disk address packet: size, reserved
	dw 1                    ; one sector
	dw 0x7e00, 0            ; to 0000:7E00
	dq 1                    ; LBA 1
times 510 - ($ - $$) db 0
	dw 0xaa55
lba1:   db "SECTOR1 ", NAME, 13, 10, 0
times 1024 - ($ - $$) db 0
