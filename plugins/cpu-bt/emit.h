/* cpu-bt: a small x86-64 machine-code emitter for the translator. It knows
 * REX, ModRM, SIB and displacement selection and the few dozen opcodes the
 * translator's glue needs; guest instructions themselves are re-encoded by
 * jit.c from their own bytes. Every emit checks the buffer end and sets
 * `full` instead of writing past it (the block is then thrown away).
 * Encodings: Intel SDM vol. 2, chapter 2 and the opcode map (appendix A).
 */
#ifndef BT_EMIT_H
#define BT_EMIT_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

enum {
	HR_RAX, HR_RCX, HR_RDX, HR_RBX, HR_RSP, HR_RBP, HR_RSI, HR_RDI,
	HR_R8, HR_R9, HR_R10, HR_R11, HR_R12, HR_R13, HR_R14, HR_R15,
};
#define HR_NONE (-1)

struct bt_emit {
	uint8_t *p;
	uint8_t *end;
	bool full;
};

static inline void em8(struct bt_emit *e, unsigned v)
{
	if (e->p < e->end)
		*e->p++ = (uint8_t)v;
	else
		e->full = true;
}

static inline void em32(struct bt_emit *e, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		em8(e, (v >> (8 * i)) & 0xFF);
}

static inline void em64(struct bt_emit *e, uint64_t v)
{
	em32(e, (uint32_t)v);
	em32(e, (uint32_t)(v >> 32));
}

/* REX with W and the high bits of reg (R), index (X) and base/rm (B);
 * nothing if all are zero unless `force` (byte registers SPL..DIL). */
static inline void em_rex(struct bt_emit *e, bool w, int r, int x, int b,
			  bool force)
{
	unsigned v = 0x40 | (w ? 8 : 0) | (r >= 8 ? 4 : 0) | (x >= 8 ? 2 : 0) |
		     (b >= 8 ? 1 : 0);

	if (v != 0x40 || force)
		em8(e, v);
}

static inline bool fits8(int64_t v)
{
	return v >= -128 && v <= 127;
}

/* ModRM (+SIB, +disp) for [base + index*scale + disp]; base or index may
 * be HR_NONE. `reg` is the ModRM reg field (register or /digit). */
static inline void em_mem(struct bt_emit *e, int reg, int base, int index,
			  unsigned scale, int32_t disp)
{
	unsigned ss = scale == 8 ? 3 : scale == 4 ? 2 : scale == 2 ? 1 : 0;
	unsigned r = (unsigned)(reg & 7) << 3;

	if (base == HR_NONE) {
		/* [index*scale + disp32] or [disp32] (SIB, no base) */
		em8(e, 0x04 | r);
		em8(e, ss << 6 | (index == HR_NONE ? 4u : (unsigned)(index & 7)) << 3 | 5);
		em32(e, (uint32_t)disp);
		return;
	}
	unsigned mod = disp == 0 && (base & 7) != 5 ? 0 : fits8(disp) ? 1 : 2;
	if (index == HR_NONE && (base & 7) != 4) {
		em8(e, mod << 6 | r | (unsigned)(base & 7));
	} else {
		em8(e, mod << 6 | r | 4);
		em8(e, ss << 6 | (index == HR_NONE ? 4u : (unsigned)(index & 7)) << 3 |
		       (unsigned)(base & 7));
	}
	if (mod == 1)
		em8(e, (uint8_t)(int8_t)disp);
	else if (mod == 2)
		em32(e, (uint32_t)disp);
}

/* op reg, [base+disp] with a one-byte opcode (w: 64-bit operand). */
static inline void em_op_rm(struct bt_emit *e, unsigned op, bool w, int reg,
			    int base, int32_t disp)
{
	em_rex(e, w, reg, 0, base, false);
	em8(e, op);
	em_mem(e, reg, base, HR_NONE, 1, disp);
}

static inline void em_load(struct bt_emit *e, int reg, int base, int32_t disp)
{
	em_op_rm(e, 0x8B, true, reg, base, disp);
}

static inline void em_store(struct bt_emit *e, int base, int32_t disp, int reg)
{
	em_op_rm(e, 0x89, true, reg, base, disp);
}

/* mov dst, src (64-bit) */
static inline void em_mov_rr(struct bt_emit *e, int dst, int src)
{
	em_rex(e, true, src, 0, dst, false);
	em8(e, 0x89);
	em8(e, 0xC0 | (unsigned)(src & 7) << 3 | (unsigned)(dst & 7));
}

static inline void em_mov_ri64(struct bt_emit *e, int reg, uint64_t v)
{
	if (v <= 0xFFFFFFFFull) { /* mov r32, imm32 zero-extends */
		em_rex(e, false, 0, 0, reg, false);
		em8(e, 0xB8 + (reg & 7));
		em32(e, (uint32_t)v);
		return;
	}
	em_rex(e, true, 0, 0, reg, false);
	em8(e, 0xB8 + (reg & 7));
	em64(e, v);
}

/* reg = v in the fewest bytes: mov r32, imm32 (zero-extending), mov
 * r/m64, imm32 (sign-extending: kernel addresses) or movabs */
static inline void em_mov_rimm(struct bt_emit *e, int reg, uint64_t v)
{
	if (v > 0xFFFFFFFFull && (int64_t)v == (int32_t)(uint32_t)v) {
		em_rex(e, true, 0, 0, reg, false);
		em8(e, 0xC7);
		em8(e, 0xC0 | (reg & 7));
		em32(e, (uint32_t)v);
		return;
	}
	em_mov_ri64(e, reg, v);
}

/* lea reg, [base + index*scale + disp]; w=false: 32-bit result */
static inline void em_lea(struct bt_emit *e, bool w, int reg, int base,
			  int index, unsigned scale, int32_t disp)
{
	em_rex(e, w, reg, index == HR_NONE ? 0 : index,
	       base == HR_NONE ? 0 : base, false);
	em8(e, 0x8D);
	em_mem(e, reg, base, index, scale, disp);
}

/* mov qword [base+disp], imm32 (sign-extended) */
static inline void em_store_imm32(struct bt_emit *e, int base, int32_t disp,
				  int32_t imm)
{
	em_rex(e, true, 0, 0, base, false);
	em8(e, 0xC7);
	em_mem(e, 0, base, HR_NONE, 1, disp);
	em32(e, (uint32_t)imm);
}

/* jmp rel32 / jcc rel32 to a later-patched target: return the address of
 * the 4-byte displacement. */
static inline uint8_t *em_jmp32(struct bt_emit *e)
{
	em8(e, 0xE9);
	uint8_t *d = e->p;
	em32(e, 0);
	return d;
}

static inline uint8_t *em_jcc32(struct bt_emit *e, unsigned cc)
{
	em8(e, 0x0F);
	em8(e, 0x80 | (cc & 15));
	uint8_t *d = e->p;
	em32(e, 0);
	return d;
}

/* Point a rel32 at `target`. The displacement is relative to its end. */
static inline void em_patch32(uint8_t *disp, const void *target)
{
	int32_t rel = (int32_t)((const uint8_t *)target - (disp + 4));

	memcpy(disp, &rel, 4);
}

static inline void em_jmp_to(struct bt_emit *e, const void *target)
{
	uint8_t *d = em_jmp32(e);

	if (!e->full)
		em_patch32(d, target);
}

/* call rel32 to code in the same cache */
static inline void em_call_to(struct bt_emit *e, const void *target)
{
	em8(e, 0xE8);
	uint8_t *d = e->p;
	em32(e, 0);
	if (!e->full)
		em_patch32(d, target);
}

/* call an absolute address through RAX (clobbered) */
static inline void em_call_abs(struct bt_emit *e, const void *fn)
{
	em_mov_ri64(e, HR_RAX, (uint64_t)(uintptr_t)fn);
	em8(e, 0xFF);
	em8(e, 0xD0);
}

static inline void em_push(struct bt_emit *e, int reg)
{
	em_rex(e, false, 0, 0, reg, false);
	em8(e, 0x50 + (reg & 7));
}

static inline void em_pop(struct bt_emit *e, int reg)
{
	em_rex(e, false, 0, 0, reg, false);
	em8(e, 0x58 + (reg & 7));
}

static inline void em_pushfq(struct bt_emit *e) { em8(e, 0x9C); }
static inline void em_popfq(struct bt_emit *e) { em8(e, 0x9D); }

/* push qword [base+disp] */
static inline void em_push_mem(struct bt_emit *e, int base, int32_t disp)
{
	em_rex(e, false, 0, 0, base, false);
	em8(e, 0xFF);
	em_mem(e, 6, base, HR_NONE, 1, disp);
}

/* The arithmetic flags into AH (SF ZF AF PF CF) and AL (OF) and back
 * (DynamoRIO's sequence: seto al; ...; add al, 0x7f; sahf). */
static inline void em_flags_to_ax(struct bt_emit *e)
{
	em8(e, 0x9F);                      /* lahf */
	em8(e, 0x0F); em8(e, 0x90); em8(e, 0xC0); /* seto al */
}

static inline void em_flags_from_ax(struct bt_emit *e)
{
	em8(e, 0x04); em8(e, 0x7F);        /* add al, 0x7f: OF = (al == 1) */
	em8(e, 0x9E);                      /* sahf */
}

/* ALU op (the /digit of 0x81) reg64, imm32 */
static inline void em_alu_ri(struct bt_emit *e, unsigned digit, bool w, int reg,
			     int32_t imm)
{
	em_rex(e, w, 0, 0, reg, false);
	if (fits8(imm)) {
		em8(e, 0x83);
		em8(e, 0xC0 | digit << 3 | (unsigned)(reg & 7));
		em8(e, (uint8_t)(int8_t)imm);
	} else {
		em8(e, 0x81);
		em8(e, 0xC0 | digit << 3 | (unsigned)(reg & 7));
		em32(e, (uint32_t)imm);
	}
}

/* op reg, [base+index*scale+disp] with a one-byte opcode (cmp 0x3B, add 0x03) */
static inline void em_op_rmi(struct bt_emit *e, unsigned op, bool w, int reg,
			     int base, int index, unsigned scale, int32_t disp)
{
	em_rex(e, w, reg, index == HR_NONE ? 0 : index, base, false);
	em8(e, op);
	em_mem(e, reg, base, index, scale, disp);
}

/* movzx dst32, src16 (zero-extends to 64 bits) */
static inline void em_movzx16(struct bt_emit *e, int dst, int src)
{
	em_rex(e, false, dst, 0, src, false);
	em8(e, 0x0F);
	em8(e, 0xB7);
	em8(e, 0xC0 | (unsigned)(dst & 7) << 3 | (unsigned)(src & 7));
}

/* mov [base+disp], reg with an operand of size bytes (2, 4 or 8) */
static inline void em_store_sz(struct bt_emit *e, int base, int32_t disp, int reg,
			       unsigned size)
{
	if (size == 2)
		em8(e, 0x66);
	em_op_rm(e, 0x89, size == 8, reg, base, disp);
}

/* reg = zero-extended [base+disp] of size bytes (2 or 4) */
static inline void em_load_zx(struct bt_emit *e, int reg, int base, int32_t disp,
			      unsigned size)
{
	if (size == 4) {
		em_op_rm(e, 0x8B, false, reg, base, disp);
		return;
	}
	em_rex(e, false, reg, 0, base, false);
	em8(e, 0x0F);
	em8(e, 0xB7);
	em_mem(e, reg, base, HR_NONE, 1, disp);
}

/* mov dst, src with an operand of size bytes (2: the low word only;
 * 4: zero-extending) */
static inline void em_mov_rr_sz(struct bt_emit *e, int dst, int src, unsigned size)
{
	if (size == 2)
		em8(e, 0x66);
	em_rex(e, size == 8, src, 0, dst, false);
	em8(e, 0x89);
	em8(e, 0xC0 | (unsigned)(src & 7) << 3 | (unsigned)(dst & 7));
}

/* shr reg64, imm8 */
static inline void em_shr_ri(struct bt_emit *e, int reg, unsigned n)
{
	em_rex(e, true, 0, 0, reg, false);
	em8(e, 0xC1);
	em8(e, 0xE8 | (unsigned)(reg & 7));
	em8(e, n);
}

#endif
