; A BIOS boot sector for the firmware tests, assembled at test time
; (firmware.sh): it prints "BOOT <name>" on COM1, reads LBA 1 through the
; firmware's INT 13h (extended read, AH=42h, from the boot drive in DL),
; prints the string found there and ends the VM through isa-debug-exit:
; status 33 when the read worked, 35 when INT 13h failed. A test thus sees
; that the firmware loaded sector 0 and that its disk driver reads sector 1.
; With -DCDROM it is an El Torito no-emulation boot image instead: it reads
; the CD's block 16 (2048 bytes) and checks the ISO 9660 "CD001" there
; (status 37 if missing), printing "PVD CD001". With -DREBOOT it first
; resets the platform once (0xCF9), marking CMOS byte 0x38 to know.
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
%ifdef REBOOT
	; first boot: mark CMOS byte 0x38 (unused by SeaBIOS) and reset the
	; platform through 0xCF9; second boot: go on as usual
	mov al, 0x38
	out 0x70, al
	in al, 0x71
	cmp al, 0xa5
	je .second
	mov al, 0x38
	out 0x70, al
	mov al, 0xa5
	out 0x71, al
	mov si, first
	call puts
	mov dx, 0xcf9
	mov al, 0x02
	out dx, al
	mov al, 0x06
	out dx, al
.wait:	hlt
	jmp .wait
.second:
	mov si, second
	call puts
%endif
	mov si, banner
	call puts
	mov si, dap
	mov ah, 0x42
	mov dl, [drive]
	int 0x13
	jc .fail
%ifdef CDROM
	mov si, 0x8001
	mov di, cd001
	mov cx, 5
	repe cmpsb
	mov al, 0x12            ; 37: no volume descriptor
	jne .exit
	mov si, pvd
	call puts
%else
	mov si, 0x7e00
	call puts
%endif
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
%ifdef REBOOT
first:  db "FIRST BOOT, RESETTING", 13, 10, 0
second: db "SECOND BOOT", 13, 10, 0
%endif
%ifdef CDROM
cd001:  db "CD001"
pvd:    db "PVD CD001", 13, 10, 0
%endif
align 4
dap:    db 16, 0                ; disk address packet: size, reserved
	dw 1                    ; one sector
%ifdef CDROM
	dw 0x8000, 0            ; a 2048-byte block to 0000:8000
	dq 16                   ; the primary volume descriptor
%else
	dw 0x7e00, 0            ; to 0000:7E00
	dq 1                    ; LBA 1
%endif
times 510 - ($ - $$) db 0
	dw 0xaa55
lba1:   db "SECTOR1 ", NAME, 13, 10, 0
times 1024 - ($ - $$) db 0
