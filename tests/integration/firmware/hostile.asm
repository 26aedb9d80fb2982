; A hostile boot sector for firmware/bad-guest, assembled at test time: once
; SeaBIOS has booted it, it hammers the fw_cfg ports (every selector, reads
; past the ends, DMA to addresses beyond RAM and with a huge length, an
; access structure outside RAM, a write) and the primary IDE channel
; (pseudo-random bytes to every register, every command byte, reads of the
; data port), then reports on COM1 and ends the VM through isa-debug-exit
; with status 33. modvm must survive all of it; the DMA results are
; printed so that the test checks the device answered with its error bit.
%define COM1 0x3f8
%define EXIT_PORT 0xf4
%define FW_SEL 0x510
%define FW_DATA 0x511
%define FW_DMA_HI 0x514
%define FW_DMA_LO 0x518
%define ACC 0x9000              ; FWCfgDmaAccess, 16 bytes

bits 16
org 0x7c00
start:
	cli
	xor ax, ax
	mov ds, ax
	mov es, ax
	mov ss, ax
	mov sp, 0x7c00
	cld
	mov si, banner
	call puts

	; every 257th selector, 8 bytes of data each
	xor bx, bx
.sel:
	mov dx, FW_SEL
	mov ax, bx
	out dx, ax
	mov cx, 8
	mov dx, FW_DATA
.rd:	in al, dx
	loop .rd
	add bx, 257
	jnc .sel

	; DMA: read 16 bytes to 0xfffffff0'00000000 (not RAM): error bit
	mov eax, 0x02000000 | 0x08000000 ; control READ|SELECT, key 0 (be32)
	mov ebx, 0x10000000              ; length 16 (be32)
	mov ecx, 0xf0ffffff              ; address high (be32 of 0xfffffff0)
	xor edx, edx                     ; address low 0
	call dma
	mov si, dma1
	call report
	; DMA: a write (no item is writable): error bit
	mov eax, 0x10000000
	mov ebx, 0x04000000
	xor ecx, ecx
	mov edx, 0x00a00000              ; be32 of 0xa000
	call dma
	mov si, dma2
	call report
	; an access structure above 4 GiB, not RAM: ignored
	mov dx, FW_DMA_HI
	mov eax, 0x01000000
	out dx, eax
	mov dx, FW_DMA_LO
	mov eax, 0x00100000
	out dx, eax

	; IDE primary: pseudo-random writes to every register (a 16-bit LFSR)
	mov bx, 0xace1
	mov cx, 20000
.ide:
	mov ax, bx
	shr ax, 1
	jnc .nox
	xor ax, 0xb400
.nox:	mov bx, ax
	mov dx, 0x1f0
	mov al, bh
	and al, 7
	add dl, al
	mov al, bl
	out dx, al
	in al, dx
	mov dx, 0x1f0
	in ax, dx
	loop .ide
	; every command byte, each followed by data port traffic and a reset
	xor bx, bx
.cmd:
	mov dx, 0x1f6
	mov al, 0xe0
	out dx, al
	mov dx, 0x1f7
	mov al, bl
	out dx, al
	mov cx, 300
	mov dx, 0x1f0
.dat:	in ax, dx
	out dx, ax
	loop .dat
	mov dx, 0x3f6
	mov al, 4
	out dx, al
	xor al, al
	out dx, al
	inc bl
	jnz .cmd

	mov si, done
	call puts
	mov al, 0x10            ; (0x10 << 1) | 1 = 33
	out EXIT_PORT, al
.halt:	hlt
	jmp .halt

; dma: FWCfgDmaAccess {eax control, ebx length, ecx:edx address} (all
; already big-endian) at ACC, started; the control word it wrote back is
; left in eax (as stored: big-endian)
dma:
	mov [ACC], eax
	mov [ACC + 4], ebx
	mov [ACC + 8], ecx
	mov [ACC + 12], edx
	mov dx, FW_DMA_HI
	xor eax, eax
	out dx, eax
	mov dx, FW_DMA_LO
	mov eax, 0x00900000     ; be32 of ACC
	out dx, eax
	mov eax, [ACC]
	ret

; report: print the string at SI, then "1" if eax (the control word) is
; exactly the error bit (be32 1 = 0x01000000 in memory order), else "?"
report:
	push eax
	call puts
	pop eax
	cmp eax, 0x01000000
	mov al, '1'
	je .ok
	mov al, '?'
.ok:	mov dx, COM1
	out dx, al
	mov al, 10
	out dx, al
	ret

puts:
	lodsb
	test al, al
	jz .e
	mov dx, COM1
	out dx, al
	jmp puts
.e:	ret

banner: db "HOSTILE START", 10, 0
dma1:   db "DMA beyond RAM: ", 0
dma2:   db "DMA write: ", 0
done:   db "HOSTILE DONE", 10, 0
times 510 - ($ - $$) db 0
	dw 0xaa55
