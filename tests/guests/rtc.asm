; rtc: the MC146818 CMOS RTC. Reads status B (data mode, 12/24 h), waits
; for update-not-in-progress (status A bit 7) and reads the time twice until
; both reads agree, converts BCD if needed, prints the date and time and
; checks they are plausible (century excepted); checks status D's valid-RAM bit. Then tests the
; periodic interrupt: status A rate 6 (1024 Hz), status B PIE, IRQ 8 through
; the slave 8259A at vector 0x28; the handler reads status C (which acks it),
; checks PF and IRQF, and masks IRQ 8 itself after the 8th interrupt.
;
; Output is time-dependent (the date line); everything else is fixed.
; Final registers: EBX = RESULT_PASS, ECX = 8 (periodic interrupts).

%define GUEST_NAME "rtc"
%include "lib/guest.inc"

IRQS_WANTED     equ 8
RTC_SECONDS     equ 0x00
RTC_MINUTES     equ 0x02
RTC_HOURS       equ 0x04
RTC_DAY         equ 0x07
RTC_MONTH       equ 0x08
RTC_YEAR        equ 0x09
RTC_STATUS_A    equ 0x0A
RTC_STATUS_B    equ 0x0B
RTC_STATUS_C    equ 0x0C
RTC_STATUS_D    equ 0x0D
RTC_CENTURY     equ 0x32            ; by convention (ACPI FADT CENTURY field);
                                    ; printed, not checked
A_UIP           equ 0x80
B_PIE           equ 0x40
B_BINARY        equ 0x04
B_24H           equ 0x02
C_IRQF          equ 0x80
C_PF            equ 0x40
D_VRT           equ 0x80
HOURS_PM        equ 0x80            ; 12-hour mode

; the time fields, in CMOS register order of rtc_regs
T_SEC           equ 0
T_MIN           equ 1
T_HOUR          equ 2
T_DAY           equ 3
T_MON           equ 4
T_YEAR          equ 5
T_CENT          equ 6
T_COUNT         equ 7

; CMOS_READ reg: AL = CMOS[reg]
%macro CMOS_READ 1
        mov     al, %1
        out     CMOS_INDEX, al
        in      al, CMOS_DATA
%endmacro
; CMOS_WRITE reg: CMOS[reg] = AH
%macro CMOS_WRITE 1
        mov     al, %1
        out     CMOS_INDEX, al
        mov     al, ah
        out     CMOS_DATA, al
%endmacro

main:
        CMOS_READ RTC_STATUS_D
        test    al, D_VRT
        CHECK   nz, "status D valid-RAM bit clear"
        CMOS_READ RTC_STATUS_B
        mov     [status_b], al
        print   GUEST_NAME, ": status A=0x"
        CMOS_READ RTC_STATUS_A
        print_hex8 eax
        print   " B=0x"
        print_hex8 [status_b]
        print_nl

.again: mov     edi, time_a
        call    read_time
        mov     edi, time_b
        call    read_time
        mov     esi, time_a
        mov     edi, time_b
        mov     ecx, T_COUNT
        repe cmpsb
        jne     .again                  ; an update fell between the reads
        call    decode_time

        print   GUEST_NAME, ": "
        movzx   eax, byte [time_a + T_CENT]
        cmp     eax, 19                 ; the century register is only a
        jb      .no_century             ; convention: print ?? if unset
        cmp     eax, 21
        ja      .no_century
        call    put2
        jmp     .year
.no_century:
        print   "??"
.year:
        movzx   eax, byte [time_a + T_YEAR]
        call    put2
        print   "-"
        movzx   eax, byte [time_a + T_MON]
        call    put2
        print   "-"
        movzx   eax, byte [time_a + T_DAY]
        call    put2
        print   " "
        movzx   eax, byte [time_a + T_HOUR]
        call    put2
        print   ":"
        movzx   eax, byte [time_a + T_MIN]
        call    put2
        print   ":"
        movzx   eax, byte [time_a + T_SEC]
        call    put2
        println " UTC (from CMOS)"

        cmp     byte [time_a + T_SEC], 59
        CHECK   be, "seconds > 59"
        cmp     byte [time_a + T_MIN], 59
        CHECK   be, "minutes > 59"
        cmp     byte [time_a + T_HOUR], 23
        CHECK   be, "hours > 23"
        cmp     byte [time_a + T_DAY], 1
        CHECK   ae, "day of month < 1"
        cmp     byte [time_a + T_DAY], 31
        CHECK   be, "day of month > 31"
        cmp     byte [time_a + T_MON], 1
        CHECK   ae, "month < 1"
        cmp     byte [time_a + T_MON], 12
        CHECK   be, "month > 12"
        cmp     byte [time_a + T_YEAR], 99
        CHECK   be, "year > 99"

        ; --- periodic interrupt ---
        mov     eax, PIC2_VECTOR + 0    ; IRQ 8
        mov     edx, rtc_irq
        call    idt32_set_gate
        mov     al, 0xFF & ~(1 << 2)    ; master: cascade only
        mov     ah, 0xFF & ~(1 << 0)    ; slave: IRQ 8 only
        call    pic_init
        CMOS_READ RTC_STATUS_A
        and     al, 0xF0                ; keep the divider, rate 6 = 1024 Hz
        or      al, 0x06
        mov     ah, al
        CMOS_WRITE RTC_STATUS_A
        CMOS_READ RTC_STATUS_C          ; drop any stale flags
        CMOS_READ RTC_STATUS_B
        or      al, B_PIE
        mov     ah, al
        CMOS_WRITE RTC_STATUS_B
        println GUEST_NAME, ": periodic interrupt at 1024 Hz on IRQ 8"

.wait:  cmp     dword [irqs], IRQS_WANTED
        jae     .done
        sti                             ; STI's shadow covers HLT
        hlt
        cli
        jmp     .wait
.done:
        CMOS_READ RTC_STATUS_B          ; PIE off again
        and     al, ~B_PIE
        mov     ah, al
        CMOS_WRITE RTC_STATUS_B
        CMOS_READ RTC_STATUS_C
        cmp     dword [bad_flags], 0
        CHECK   e, "status C lacked PF or IRQF in the interrupt handler"
        print   GUEST_NAME, ": periodic interrupts="
        print_dec [irqs]
        print_nl
        cmp     dword [irqs], IRQS_WANTED
        CHECK   e, "periodic interrupt count is not exactly 8"
        PASS    [irqs]

; EDI = buffer of T_COUNT bytes: raw register values, after waiting for UIP
; to clear.
read_time:
        push    esi
        push    ecx
.uip:   CMOS_READ RTC_STATUS_A
        test    al, A_UIP
        jnz     .uip
        mov     esi, rtc_regs
        mov     ecx, T_COUNT
.reg:   lodsb
        out     CMOS_INDEX, al
        in      al, CMOS_DATA
        stosb
        loop    .reg
        pop     ecx
        pop     esi
        ret

; Convert time_a in place to binary, 24-hour.
decode_time:
        mov     al, [time_a + T_HOUR]
        and     al, HOURS_PM
        mov     [pm_flag], al
        and     byte [time_a + T_HOUR], ~HOURS_PM
        test    byte [status_b], B_BINARY
        jnz     .hours
        mov     esi, time_a
        mov     ecx, T_COUNT
.bcd:   mov     al, [esi]               ; binary = tens * 10 + ones
        mov     ah, al
        shr     ah, 4
        and     al, 0x0F
        aad
        mov     [esi], al
        inc     esi
        loop    .bcd
.hours: test    byte [status_b], B_24H
        jnz     .done
        cmp     byte [time_a + T_HOUR], 12  ; 12-hour: 12 AM is 0, 12 PM is 12
        jne     .pm
        mov     byte [time_a + T_HOUR], 0
.pm:    cmp     byte [pm_flag], 0
        je      .done
        add     byte [time_a + T_HOUR], 12
.done:  ret

; EAX = 0-99, printed as two digits.
put2:
        push    eax
        push    edx
        mov     dl, 10
        div     dl                      ; AL = tens, AH = ones
        add     ax, '00'
        call    s32_putc
        mov     al, ah
        call    s32_putc
        pop     edx
        pop     eax
        ret

rtc_irq:
        push    eax
        CMOS_READ RTC_STATUS_C          ; reading C acknowledges the interrupt
        and     al, C_IRQF | C_PF
        cmp     al, C_IRQF | C_PF
        je      .flags_ok
        inc     dword [bad_flags]
.flags_ok:
        inc     dword [irqs]
        cmp     dword [irqs], IRQS_WANTED
        jb      .eoi
        in      al, PIC2_DATA           ; last one: mask IRQ 8
        or      al, 1 << 0
        out     PIC2_DATA, al
.eoi:   mov     al, PIC_EOI
        out     PIC2_CMD, al
        out     PIC1_CMD, al
        pop     eax
        iretd

rtc_regs:       db RTC_SECONDS, RTC_MINUTES, RTC_HOURS, RTC_DAY
                db RTC_MONTH, RTC_YEAR, RTC_CENTURY

        section .bss
time_a:         resb T_COUNT
time_b:         resb T_COUNT
status_b:       resb 1
pm_flag:        resb 1
                alignb 4
irqs:           resd 1
bad_flags:      resd 1
        section .text

%include "lib/end.inc"
