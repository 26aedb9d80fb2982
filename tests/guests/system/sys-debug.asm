; sys-debug: debug registers and single-step in 32-bit protected mode
; (Intel SDM vol. 3, chapter 17): an instruction breakpoint (DR0) is a
; fault before the instruction, and EFLAGS.RF set by the handler lets the
; instruction run once; a 4-byte data write breakpoint (DR1) is a trap after
; the write and a read does not hit it; EFLAGS.TF set by POPFD traps after
; the next instruction with DR6.BS. DR6 is read (and cleared) after each
; case. DR7.GD is not tested: QEMU TCG, the reference, does not implement it.

%define GUEST_NAME "sys-debug"
%include "lib/guest.inc"
%include "sys.inc"

EFL_TF          equ 1 << 8
EFL_RF          equ 1 << 16

main:
        call    catch32_init
        xor     eax, eax
        mov     dr6, eax

        ; --- instruction breakpoint, DR0, L0, R/W0=00 LEN0=00 ---
        mov     eax, .ibp
        mov     dr0, eax
        mov     eax, 0x1
        mov     dr7, eax
        EXPECT  CATCH_RETURN
        mov     dword [exc_setflags], EFL_RF
.ibp:   inc     dword [ibp_runs]
        RECORD  "ibp", .ibp, 1, 0, 0
        mov     eax, dr6
        mov     [dr6_ibp], eax
        xor     eax, eax
        mov     dr6, eax
        mov     dr7, eax
        cmp     dword [ibp_runs], 1
        CHECK   e, "the breakpointed instruction did not run exactly once"

        ; --- data write breakpoint, DR1, L1, R/W1=01 LEN1=11 ---
        mov     eax, watched
        mov     dr1, eax
        mov     eax, (0xD << 20) | (1 << 2)
        mov     dr7, eax
        mov     dword [exc_vec], 0xFF
        mov     eax, [watched]                  ; a read: no hit
        cmp     dword [exc_vec], 0xFF
        CHECK   e, "a read hit the write breakpoint"
        EXPECT  CATCH_RETURN
.dbp:   mov     dword [watched], 0xFEEDF00D
        RECORD  "dbp", .dbp, 1, 0, 10           ; trap: after the 10-byte mov
        mov     eax, dr6
        mov     [dr6_dbp], eax
        mov     eax, [watched]
        mov     [watched_value], eax
        xor     eax, eax
        mov     dr6, eax
        mov     dr7, eax

        ; --- single step: POPFD sets TF, the trap follows the next one ---
        EXPECT  CATCH_RETURN
        mov     dword [exc_clrflags], EFL_TF
        pushfd
        or      dword [esp], EFL_TF
        popfd
.ss:    nop
        RECORD  "tf", .ss, 1, 0, 1
        mov     eax, dr6
        mov     [dr6_tf], eax
        pushfd
        pop     eax
        and     eax, EFL_TF
        mov     [tf_after], eax
        xor     eax, eax
        mov     dr6, eax

        STATE_BEGIN
        call    state_records32
        STATE_KV "dr6_ibp", [dr6_ibp]
        STATE_KV "ibp_runs", [ibp_runs]
        STATE_KV "dr6_dbp", [dr6_dbp]
        STATE_KV "watched", [watched_value]
        STATE_KV "dr6_tf", [dr6_tf]
        STATE_KV "tf_after", [tf_after]
        STATE_END
        mov     eax, [dr6_ibp]
        and     eax, 0x600F
        cmp     eax, 1
        CHECK   e, "DR6 after the instruction breakpoint: B0 only"
        mov     eax, [dr6_dbp]
        and     eax, 0x600F
        cmp     eax, 2
        CHECK   e, "DR6 after the data breakpoint: B1 only"
        mov     eax, [dr6_tf]
        and     eax, 0x600F
        cmp     eax, 0x4000
        CHECK   e, "DR6 after the single step: BS only"
        PASS    [exc_count]

        section .bss
ibp_runs:       resd 1
dr6_ibp:        resd 1
dr6_dbp:        resd 1
dr6_tf:         resd 1
tf_after:       resd 1
dr6_gd:         resd 1
dr7_gd:         resd 1
watched_value:  resd 1
        alignb  16
watched:        resd 1
        section .text
%include "lib/end.inc"
