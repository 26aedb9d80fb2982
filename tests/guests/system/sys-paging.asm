; sys-paging: 4-level paging features in long mode (Intel SDM vol. 3,
; chapter 4): 4 KiB and 2 MiB pages (1 GiB pages when CPUID advertises
; them), hardware-set accessed and dirty bits in the PTE and the PDE, NX
; (EFER.NXE) with the I/D bit in the #PF error code, CR0.WP for ring-0
; writes to read-only pages, INVLPG, and a global page that stays cached
; across a CR3 reload but not across a CR4.PGE toggle (4.10.4.1).

%define GUEST_NAME "sys-paging"
%include "lib/guest.inc"
%include "sys.inc"

PTE_P           equ 1 << 0
PTE_RW          equ 1 << 1
PTE_A           equ 1 << 5
PTE_D           equ 1 << 6
PTE_PS          equ 1 << 7
PTE_G           equ 1 << 8
CR0_WP          equ 1 << 16
CR4_PGE         equ 1 << 7
EFER_NXE        equ 1 << 11
BIG             equ 0x400000            ; a 2 MiB page (lib pd[2])
ALIAS           equ 0x1F0000            ; a spare 4 KiB virtual page
VA_1G           equ 0x8000000000        ; PML4[1]: 1 GiB page -> 0

main:
        mov     eax, kernel64
        jmp     enter_long_mode

%include "lib/longmode.inc"

        bits    64
%include "sys64.inc"

; pte_addr: RAX = a linear address below 2 MiB -> RAX = its PTE's address
pte_addr:
        shr     eax, 12
        lea     eax, [pt0 + rax * 8]
        ret

kernel64:
        call    catch64_init
        mov     ecx, MSR_EFER
        rdmsr
        or      eax, EFER_NXE
        wrmsr
        ; the first 2 MiB through a page table of 4 KiB pages
        mov     edi, pt0
        mov     eax, PTE_P | PTE_RW
.pte:   mov     [rdi], rax
        add     eax, 0x1000
        add     edi, 8
        cmp     edi, pt0 + 4096
        jb      .pte
        mov     qword [pd], pt0 + (PTE_P | PTE_RW | 4)
        mov     rax, cr3
        mov     cr3, rax
        mov     eax, page_a                     ; R12-R14: the test PTEs
        call    pte_addr
        mov     r12, rax
        mov     eax, page_x
        call    pte_addr
        mov     r13, rax
        mov     eax, ALIAS
        call    pte_addr
        mov     r14, rax

        ; --- A/D bits of a 4 KiB page ---
        and     qword [r12], ~(PTE_A | PTE_D)
        invlpg  [page_a]
        mov     eax, [page_a]
        mov     rax, [r12]
        and     eax, PTE_A | PTE_D
        mov     [ad4k_read], eax
        mov     dword [page_a], 0x1111
        mov     rax, [r12]
        and     eax, PTE_A | PTE_D
        mov     [ad4k_write], eax
        cmp     dword [ad4k_read], PTE_A
        CHECK   e, "4K read: A must be set, D clear"
        cmp     dword [ad4k_write], PTE_A | PTE_D
        CHECK   e, "4K write: A and D must be set"

        ; --- A/D bits of a 2 MiB page ---
        and     qword [pd + 16], ~(PTE_A | PTE_D)
        invlpg  [BIG]
        mov     eax, [BIG + 0x1234]
        mov     rax, [pd + 16]
        and     eax, PTE_A | PTE_D
        mov     [ad2m_read], eax
        mov     dword [BIG + 0x1FFFF0], 0x2222
        mov     rax, [pd + 16]
        and     eax, PTE_A | PTE_D
        mov     [ad2m_write], eax
        cmp     dword [ad2m_read], PTE_A
        CHECK   e, "2M read: A must be set, D clear"
        cmp     dword [ad2m_write], PTE_A | PTE_D
        CHECK   e, "2M write: A and D must be set"

        ; --- NX: a fetch from an NX page is #PF with P and I/D ---
        mov     byte [page_x], 0xC3             ; ret
        bts     qword [r13], 63
        invlpg  [page_x]
        mov     eax, [page_x]                   ; reading it is fine
        TRY     .nx, call page_x
        RECORD  "nx_fetch", page_x, 14, 0x11, 0
        mov     eax, [exc_cr2]
        sub     eax, page_x
        mov     [nx_cr2], eax
        CHECK   z, "CR2 after the NX fault"
        btr     qword [r13], 63
        invlpg  [page_x]
        call    page_x                          ; now it runs

        ; not present, fetch: I/D without P
        and     qword [r13], ~PTE_P
        invlpg  [page_x]
        TRY     .np, call page_x
        RECORD  "np_fetch", page_x, 14, 0x10, 0
        or      qword [r13], PTE_P
        invlpg  [page_x]

        ; --- CR0.WP: ring-0 writes to a read-only page ---
        and     qword [r12], ~PTE_RW
        invlpg  [page_a]
        mov     rax, cr0
        and     eax, ~CR0_WP
        mov     cr0, rax
        mov     dword [page_a], 0x3333          ; WP=0: allowed
        mov     eax, [page_a]
        mov     [wp0_value], eax
        mov     rax, cr0
        or      eax, CR0_WP
        mov     cr0, rax
        TRY     .wp, mov dword [page_a], 0x4444
        RECORD  "wp_write", .wp, 14, 0x03, 0
        mov     eax, [page_a]
        mov     [wp1_value], eax
        cmp     eax, 0x3333
        CHECK   e, "the WP=1 write changed the page"
        or      qword [r12], PTE_RW
        invlpg  [page_a]

        ; --- INVLPG: an alias moved from page_a to page_b ---
        mov     dword [page_a], 0xAAAA
        mov     dword [page_b], 0xBBBB
        mov     qword [r14], page_a + (PTE_P | PTE_RW)
        invlpg  [ALIAS]
        mov     eax, [ALIAS]
        mov     qword [r14], page_b + (PTE_P | PTE_RW)
        invlpg  [ALIAS]
        mov     eax, [ALIAS]
        mov     [invlpg_value], eax
        cmp     eax, 0xBBBB
        CHECK   e, "INVLPG did not drop the old translation"

        ; --- global page: cached across CR3 reload, dropped by CR4.PGE ---
        mov     rax, cr4
        or      eax, CR4_PGE
        mov     cr4, rax
        mov     qword [r14], page_a + (PTE_P | PTE_RW | PTE_G)
        invlpg  [ALIAS]
        mov     eax, [ALIAS]                    ; cached: page_a
        mov     qword [r14], page_b + (PTE_P | PTE_RW | PTE_G)
        mov     rax, cr3
        mov     cr3, rax
        mov     eax, [ALIAS]
        mov     [global_cr3], eax
        ; a CPU may keep the stale global entry (SDM 4.10.4.1) or not
        ; (QEMU TCG flushes everything): informational, not in STATE
        print   GUEST_NAME, ": global page after a CR3 reload reads 0x"
        print_hex32 eax
        cmp     eax, 0xAAAA
        je      .kept
        println " (translation dropped)"
        jmp     .gdone
.kept:  println " (translation kept)"
.gdone:
        mov     rax, cr4
        and     eax, ~CR4_PGE
        mov     cr4, rax
        or      eax, CR4_PGE
        mov     cr4, rax
        mov     eax, [ALIAS]
        mov     [global_pge], eax
        cmp     dword [global_pge], 0xBBBB
        CHECK   e, "a CR4.PGE toggle did not flush the global page"

        ; --- 1 GiB page, if advertised (CPUID 80000001h EDX bit 26) ---
        mov     eax, 0x80000001
        cpuid
        shr     edx, 26
        and     edx, 1
        mov     [has_1g], edx
        jz      .no1g
        mov     qword [pml4 + 8], pdpt1 + (PTE_P | PTE_RW)
        mov     qword [pdpt1], PTE_P | PTE_RW | PTE_PS
        mov     rax, cr3
        mov     cr3, rax
        mov     rsi, VA_1G
        mov     eax, [rsi + page_b]
        mov     [g1_value], eax
        cmp     eax, 0xBBBB
        CHECK   e, "1 GiB page does not map to physical 0"
        mov     rax, [pdpt1]
        and     eax, PTE_A | PTE_D
        mov     [g1_ad], eax
.no1g:
        STATE_BEGIN
        call    state_records64
        STATE_KV "ad4k_read", [ad4k_read]
        STATE_KV "ad4k_write", [ad4k_write]
        STATE_KV "ad2m_read", [ad2m_read]
        STATE_KV "ad2m_write", [ad2m_write]
        STATE_KV "nx_cr2", [nx_cr2]
        STATE_KV "wp0", [wp0_value]
        STATE_KV "wp1", [wp1_value]
        STATE_KV "invlpg", [invlpg_value]
        STATE_KV "global_pge", [global_pge]
        STATE_KV "has_1g", [has_1g]
        STATE_KV "g1", [g1_value]
        STATE_KV "g1_ad", [g1_ad]
        STATE_END
        PASS    [exc_count]

        section .bss
        alignb  4096
pt0:            resb 4096
pdpt1:          resb 4096
page_a:         resb 4096
page_b:         resb 4096
page_x:         resb 4096
ad4k_read:      resd 1
ad4k_write:     resd 1
ad2m_read:      resd 1
ad2m_write:     resd 1
nx_cr2:         resd 1
wp0_value:      resd 1
wp1_value:      resd 1
invlpg_value:   resd 1
global_cr3:     resd 1
global_pge:     resd 1
has_1g:         resd 1
g1_value:       resd 1
g1_ad:          resd 1
        section .text
%include "lib/end.inc"
