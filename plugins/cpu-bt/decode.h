/* cpu-bt: the x86 instruction decoder. One table-driven pass turns up to 15
 * bytes into a self-contained struct bt_insn (operation, operands, sizes,
 * prefixes, length) that the interpreter executes and that a translator can
 * consume later without looking at the bytes again.
 */
#ifndef BT_DECODE_H
#define BT_DECODE_H

#include <stddef.h>
#include <stdint.h>

/* Operation ids: one per mnemonic (sizes and forms are in the operands). */
#define BT_OPS(X)                                                             \
	X(INVALID) X(ADD) X(OR) X(ADC) X(SBB) X(AND) X(SUB) X(XOR) X(CMP)     \
	X(ROL) X(ROR) X(RCL) X(RCR) X(SHL) X(SHR) X(SAL) X(SAR)              \
	X(TEST) X(NOT) X(NEG) X(MUL) X(IMUL) X(DIV) X(IDIV) X(INC) X(DEC)    \
	X(IMUL2) X(IMUL3) X(SHLD) X(SHRD)                                     \
	X(MOV) X(MOVZX) X(MOVSX) X(MOVSXD) X(LEA) X(XCHG) X(XADD)             \
	X(CMPXCHG) X(CMPXCHG8B) X(BSWAP) X(MOVSEG) X(MOVCR) X(MOVDR)          \
	X(PUSH) X(POP) X(PUSHA) X(POPA) X(PUSHF) X(POPF) X(ENTER) X(LEAVE)    \
	X(CALL) X(CALLF) X(RET) X(RETF) X(JMP) X(JMPF) X(JCC) X(JCXZ)          \
	X(LOOP) X(LOOPE) X(LOOPNE) X(SETCC) X(CMOVCC)                         \
	X(CBW) X(CWD) X(LAHF) X(SAHF) X(CLC) X(STC) X(CMC) X(CLD) X(STD)      \
	X(CLI) X(STI) X(MOVS) X(CMPS) X(STOS) X(LODS) X(SCAS) X(INS) X(OUTS)  \
	X(IN) X(OUT) X(DAA) X(DAS) X(AAA) X(AAS) X(AAM) X(AAD) X(SALC)        \
	X(XLAT) X(BT) X(BTS) X(BTR) X(BTC) X(BSF) X(BSR) X(NOP) X(PAUSE)      \
	X(HLT) X(UD) X(INT) X(INT3) X(INTO) X(INT1) X(IRET) X(BOUND) X(ARPL)  \
	X(LES) X(LDS) X(LSS) X(LFS) X(LGS) X(CPUID) X(RDTSC) X(RDTSCP)        \
	X(RDMSR) X(WRMSR) X(RDPMC) X(LGDT) X(LIDT) X(SGDT) X(SIDT) X(LLDT)    \
	X(LTR) X(SLDT) X(STR) X(LMSW) X(SMSW) X(CLTS) X(INVLPG) X(WBINVD)     \
	X(INVD) X(LAR) X(LSL) X(VERR) X(VERW) X(SYSCALL) X(SYSRET)            \
	X(SYSENTER) X(SYSEXIT) X(SWAPGS) X(CLFLUSH) X(FENCE) X(PREFETCH)      \
	X(X87) X(FXSAVE) X(FXRSTOR) X(LDMXCSR) X(STMXCSR) X(SSE) X(VEX)       \
	X(CMPXCHG16B) X(MONITOR) X(MWAIT) X(XGETBV) X(XSETBV) X(RSM)         \
	X(XSAVE) X(XRSTOR) X(XSAVEOPT)                                        \
	X(RDPID) X(INVPCID) X(STAC) X(CLAC) X(RDPKRU) X(WRPKRU)

enum bt_op {
#define BT_OP_ENUM(n) BT_OP_##n,
	BT_OPS(BT_OP_ENUM)
#undef BT_OP_ENUM
	BT_OP_COUNT
};

extern const char *const bt_op_names[BT_OP_COUNT];

enum bt_mode { BT_MODE16 = 0, BT_MODE32 = 1, BT_MODE64 = 2 };

enum bt_opnd_type {
	BT_OPND_NONE = 0,
	BT_OPND_REG,  /* reg in class cls */
	BT_OPND_MEM,  /* seg:[base + index*scale + disp] */
	BT_OPND_IMM,  /* imm, sign- or zero-extended as the form says */
	BT_OPND_REL,  /* branch target: next rip + imm */
	BT_OPND_FAR,  /* ptr16:16/32 immediate: imm = offset, sel */
};

enum bt_reg_class {
	BT_RC_GPR = 0,  /* rAX..r15; byte size with REX: AL..R15B */
	BT_RC_GPR8H,    /* AH CH DH BH (reg 0-3) */
	BT_RC_SEG,      /* ES CS SS DS FS GS */
	BT_RC_CR,
	BT_RC_DR,
	BT_RC_XMM,
	BT_RC_MMX,
};

#define BT_NOREG 0xFF
#define BT_REG_RIP 16 /* base of a RIP-relative operand */
#define BT_SEG_NONE 0xFF

/* Segment numbers follow enum modvm_sreg (ES CS SS DS FS GS). */
enum { BT_ES, BT_CS, BT_SS, BT_DS, BT_FS, BT_GS };

struct bt_operand {
	uint8_t type;  /* enum bt_opnd_type */
	uint8_t size;  /* bytes: 1 2 4 8 10 16, 6/10 for descriptors */
	uint8_t reg;   /* REG: register number */
	uint8_t cls;   /* REG: enum bt_reg_class */
	uint8_t base;  /* MEM: GPR, BT_REG_RIP or BT_NOREG */
	uint8_t index; /* MEM: GPR or BT_NOREG */
	uint8_t scale; /* MEM: 1 2 4 8 */
	uint8_t seg;   /* MEM: effective segment (override or default) */
	uint16_t sel;  /* FAR: selector */
	int64_t disp;  /* MEM displacement (sign-extended) */
	uint64_t imm;  /* IMM/REL/FAR value */
};

/* Prefix bits in bt_insn.prefix */
#define BT_PFX_LOCK  0x01
#define BT_PFX_REP   0x02 /* F3 */
#define BT_PFX_REPNE 0x04 /* F2 */
#define BT_PFX_OPSZ  0x08 /* 66 */
#define BT_PFX_ADSZ  0x10 /* 67 */
#define BT_PFX_SEG   0x20 /* a segment override was given */
#define BT_PFX_REX   0x40

struct bt_insn {
	uint16_t op;       /* enum bt_op */
	uint8_t len;       /* bytes, 1..15 */
	uint8_t mode;      /* enum bt_mode it was decoded in */
	uint8_t opsize;    /* 1 2 4 8: size of the operation */
	uint8_t addrsize;  /* 2 4 8 */
	uint8_t prefix;    /* BT_PFX_* */
	uint8_t rex;       /* the REX byte, 0 if none */
	uint8_t seg;       /* override segment or BT_SEG_NONE */
	uint8_t map;       /* 0 one-byte, 1 0F, 2 0F38, 3 0F3A */
	uint8_t opcode;    /* the last opcode byte */
	uint8_t modrm;     /* valid if has_modrm */
	uint8_t has_modrm;
	uint8_t mandatory; /* SSE: 0, 0x66, 0xF2 or 0xF3 */
	uint8_t cc;        /* Jcc/SETcc/CMOVcc condition (opcode low nibble) */
	uint8_t nopnd;
	struct bt_operand opnd[3];
};

/* Decoder results (negative) besides a length. */
#define BT_DEC_MORE (-1) /* the bytes end before the instruction does */
#define BT_DEC_GP   (-2) /* longer than 15 bytes: #GP(0) */
#define BT_DEC_UD   (-3) /* undefined opcode: #UD (insn->len is valid) */

/* Decode one instruction from buf[0..avail) in `mode`. Returns its length,
 * or a BT_DEC_* code. For BT_DEC_UD, insn->len holds the length that could
 * be determined (0 if none). */
int bt_decode(const uint8_t *buf, size_t avail, enum bt_mode mode,
	      struct bt_insn *insn);

#endif
