/* cpu-bt: arithmetic flag computation shared by the integer executor (and
 * later by the translator's slow paths). Flags per SDM vol. 1 3.4.3 and the
 * instruction pages of vol. 2.
 */
#ifndef BT_ALU_H
#define BT_ALU_H

#include "cpu.h"

static inline uint64_t bt_sign_bit(unsigned size)
{
	return 1ull << (8 * size - 1);
}

static inline int64_t bt_sext(uint64_t v, unsigned size)
{
	unsigned sh = 64 - 8 * size;

	return size >= 8 ? (int64_t)v : (int64_t)(v << sh) >> sh;
}

static inline uint32_t bt_parity(uint64_t v)
{
	return __builtin_parity((unsigned)(v & 0xFF)) ? 0 : BT_PF;
}

/* SF, ZF, PF from a result */
static inline uint32_t bt_szp(uint64_t res, unsigned size)
{
	uint32_t f = bt_parity(res);

	res &= bt_mask(size);
	if (!res)
		f |= BT_ZF;
	if (res & bt_sign_bit(size))
		f |= BT_SF;
	return f;
}

static inline void bt_set_arith(struct bt_cpu *c, uint32_t f)
{
	c->s.rflags = (c->s.rflags & ~(uint64_t)BT_ARITH) | f;
}

uint64_t bt_alu(struct bt_cpu *c, int op, uint64_t a, uint64_t b,
		unsigned size);
uint64_t bt_shift(struct bt_cpu *c, int op, uint64_t a, unsigned count,
		  unsigned size);

#endif
