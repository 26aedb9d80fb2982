; A stand-in Linux bzImage for firmware/linuxboot, assembled at test time:
; a boot protocol 2.12 setup header and real-mode setup code that, once
; QEMU's linuxboot option ROM (run by SeaBIOS) has loaded it at 0x10000 and
; jumped to its setup (CS = 0x1020, DS = 0x1000), prints on COM1 the loader
; type the header holds, the command line at cmd_line_ptr and the initrd's
; size, then ends the VM through isa-debug-exit (status 33). The 512 bytes
; after the setup stand for the protected-mode kernel.
%define COM1 0x3f8
bits 16
org 0
	times 0x1f1 db 0
	db 1                    ; 0x1f1 setup_sects: one sector of setup
	dw 0                    ; root_flags
	dd 0x20                 ; 0x1f4 syssize (16-byte units)
	dw 0, 0, 0              ; ram_size, vid_mode, root_dev
	dw 0xaa55               ; 0x1fe boot_flag
	jmp short setup         ; 0x200
	db "HdrS"               ; 0x202
	dw 0x020c               ; 0x206 version
	dd 0                    ; 0x208 realmode_swtch
	dw 0, 0                 ; start_sys_seg, kernel_version
	db 0                    ; 0x210 type_of_loader
	db 0x01                 ; 0x211 loadflags: LOADED_HIGH
	dw 0                    ; setup_move_size
	dd 0x100000             ; 0x214 code32_start
	dd 0, 0                 ; 0x218 ramdisk_image, ramdisk_size
	dd 0                    ; bootsect_kludge
	dw 0                    ; 0x224 heap_end_ptr
	db 0, 0                 ; ext_loader_ver, ext_loader_type
	dd 0                    ; 0x228 cmd_line_ptr
	dd 0x37ffffff           ; 0x22c initrd_addr_max
	dd 0x200000             ; kernel_alignment
	db 0, 0                 ; relocatable_kernel, min_alignment
	dw 0                    ; xloadflags
	dd 255                  ; 0x238 cmdline_size
setup:
	mov si, msg_loader      ; DS = the setup's segment (0x1000)
	call puts
	mov al, [0x210]
	call hex8
	mov si, msg_cmdline
	call puts
	push ds
	mov eax, [0x228]        ; cmd_line_ptr: linear, below 1 MiB
	shr eax, 4
	mov ds, ax
	xor si, si
	call puts
	pop ds
	mov si, msg_initrd
	call puts
	mov eax, [0x21c]
	call hex32
	mov si, msg_nl
	call puts
	mov al, 0x10
	out 0xf4, al
.halt:	hlt
	jmp .halt

puts:                           ; the NUL-terminated string at DS:SI
	lodsb
	test al, al
	jz .e
	mov dx, COM1
	out dx, al
	jmp puts
.e:	ret

hex32:                          ; eax in hex
	push eax
	shr eax, 16
	mov al, ah
	call hex8
	pop eax
	push eax
	shr eax, 16
	call hex8
	pop eax
	push eax
	mov al, ah
	call hex8
	pop eax
hex8:                           ; al in hex
	push ax
	shr al, 4
	call hex4
	pop ax
hex4:
	and al, 0x0f
	add al, '0'
	cmp al, '9'
	jbe .d
	add al, 'a' - '9' - 1
.d:	mov dx, COM1
	out dx, al
	ret

msg_loader:  db "LINUXBOOT loader 0x", 0
msg_cmdline: db 10, "cmdline: ", 0
msg_initrd:  db 10, "initrd size 0x", 0
msg_nl:      db 10, 0
	times 1024 - ($ - $$) db 0
	; the "protected-mode kernel"
	db "KERNEL32"
	times 1536 - ($ - $$) db 0
