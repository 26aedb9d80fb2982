; smp-count: every vCPU the VM has, started with INIT/SIPI, works on shared
; memory at once. The boot CPU wakes the others with a broadcast INIT and
; two SIPIs (vector 0x08: a real-mode trampoline copied to 0x8000 that
; enters protected mode), waits until no more of them check in (smp_wait_aps),
; then all of them (it included):
;   1. add 1 to one counter with LOCK XADD and to another with a LOCK
;      CMPXCHG loop, COUNT times each: the totals must be cpus * COUNT
;      (an increment that is not atomic against the other vCPUs loses some);
;   2. message passing: the boot CPU stores data = i, then flag = i, for
;      i = 1 .. MESSAGES; the others read flag, then data, until flag is
;      MESSAGES. x86 keeps stores in order and loads in order, so a reader
;      must never see data older than the flag it read first;
;   3. with 2 vCPUs or more, a locked read-modify-write against a plain
;      store to the same dword: the boot CPU adds 0x100 to `shared` with
;      LOCK ADD P3_COUNT times while the first AP stores its own counter into
;      the dword's low byte with plain byte stores, reading it back before
;      each next store. A locked operation must not write back a stale low
;      byte (a read and a later write, as an emulator may do under a lock
;      of its own, undoes the AP's store in between), and no add is lost.
; Prints "smp-count: cpus=N" (the test checks N against the config).
;
; Final registers: EBX = RESULT_PASS, ECX = the number of CPUs.

%define GUEST_NAME "smp-count"
%include "lib/guest.inc"
%include "lib/smp.inc"

COUNT           equ 100000
MESSAGES        equ 200000
P3_COUNT        equ 1000000                     ; phase 3's locked adds
MAX_APS         equ 63

main:
        call    smp_start_aps
        call    smp_wait_aps
        mov     [aps_seen], eax
        lock inc dword [go]                     ; phase 1 for everyone

        call    count_work
        ; phase 2: the boot CPU writes, the others read
        mov     ecx, 1
.send:  mov     [msg_data], ecx
        mov     [msg_flag], ecx
        inc     ecx
        cmp     ecx, MESSAGES
        jbe     .send

        ; phase 3, when there is an AP to store plain bytes meanwhile
        cmp     dword [aps_seen], 0
        je      .wait
.p3rdy: cmp     dword [p3_ready], 0
        je      .p3rdy
        mov     ecx, P3_COUNT
.p3:    lock add dword [shared], 0x100
        dec     ecx
        jnz     .p3
        mov     dword [p3_done], 1

.wait:  mov     eax, [aps_done]
        cmp     eax, [aps_seen]
        jb      .wait
        mov     eax, [aps_seen]
        inc     eax
        mov     [cpus], eax
        print   GUEST_NAME, ": cpus="
        print_dec [cpus]
        print   " xadd="
        print_dec [cnt_xadd]
        print   " cmpxchg="
        print_dec [cnt_cas]
        print   " stale-reads="
        print_dec [stale]
        print   " mixed="
        print_dec [mixed]
        print   " lost-stores="
        print_dec [lost]
        print_nl
        mov     eax, [cpus]
        imul    eax, eax, COUNT
        cmp     eax, [cnt_xadd]
        CHECK   e, "LOCK XADD lost increments (not atomic across vCPUs)"
        cmp     eax, [cnt_cas]
        CHECK   e, "LOCK CMPXCHG lost increments (not atomic across vCPUs)"
        cmp     dword [stale], 0
        CHECK   e, "a reader saw data older than the flag it read first (stores or loads reordered)"
        cmp     dword [lost], 0
        CHECK   e, "a LOCKed add wrote back a stale byte over another vCPU's plain store"
        mov     eax, [shared]
        shr     eax, 8
        cmp     dword [aps_seen], 0
        je      .p3ok
        cmp     eax, P3_COUNT
        CHECK   e, "LOCK ADD lost increments against plain byte stores"
.p3ok:
        PASS    [cpus]

; COUNT increments of each counter by the calling CPU. `mixed` counts the
; increments that found another CPU's in between (how much the vCPUs really
; ran at once: printed, not checked, as it depends on the host).
count_work:
        mov     ecx, COUNT
        mov     ebx, -2
        xor     edi, edi
.one:   mov     eax, 1
        lock xadd [cnt_xadd], eax
        inc     ebx
        cmp     eax, ebx
        je      .own
        inc     edi
.own:   mov     ebx, eax
        mov     eax, [cnt_cas]
.retry: lea     edx, [eax + 1]
        lock cmpxchg [cnt_cas], edx
        jne     .retry
        dec     ecx
        jnz     .one
        lock add [mixed], edi
        ret

; An application processor, in protected mode from the trampoline.
ap_entry32:                                     ; EAX = this AP's index
        cmp     eax, MAX_APS
        jae     .park                           ; no stack for it: stay out
        mov     esi, eax
        inc     eax
        shl     eax, 12
        lea     esp, [ap_stacks + eax]
.go:    cmp     dword [go], 0
        je      .go
        call    count_work
.recv:  mov     eax, [msg_flag]                 ; the flag, then the data
        mov     edx, [msg_data]
        cmp     edx, eax
        jae     .fresh
        lock inc dword [stale]
.fresh: cmp     eax, MESSAGES
        jb      .recv
        test    esi, esi                        ; phase 3: the first AP only
        jnz     .done
        mov     dword [p3_ready], 1
        xor     ecx, ecx
.store: inc     ecx
        mov     [shared], cl                    ; the low byte is this AP's
        pause
        cmp     [shared], cl                    ; nobody else writes it
        je      .kept
        lock inc dword [lost]
.kept:  cmp     dword [p3_done], 0
        je      .store
.done:  lock inc dword [aps_done]
.park:  cli
        hlt
        jmp     .park

        section .bss
        alignb  4096
ap_stacks:      resb 4096 * MAX_APS
go:             resd 1
aps_seen:       resd 1
aps_done:       resd 1
cnt_xadd:       resd 1
cnt_cas:        resd 1
msg_data:       resd 1
msg_flag:       resd 1
stale:          resd 1
cpus:           resd 1
mixed:          resd 1
shared:         resd 1
lost:           resd 1
p3_ready:       resd 1
p3_done:        resd 1
        section .text

%include "lib/end.inc"
