/* cpu-bt: two-operand ALU operations and shifts/rotates with their exact
 * flag results (SDM vol. 2: ADD, ADC, SUB, SBB, logic ops, SAL/SAR/SHL/SHR,
 * RCL/RCR/ROL/ROR). Undefined flags get the values current Intel parts
 * produce where known; the differential tester masks them.
 */
#include "alu.h"

static uint64_t add(struct bt_cpu *c, uint64_t a, uint64_t b, unsigned cin,
		    unsigned size)
{
	uint64_t m = bt_mask(size), res = (a + b + cin) & m;
	uint32_t f = bt_szp(res, size);

	a &= m;
	b &= m;
	if (res < a || (cin && res == a))
		f |= BT_CF;
	if ((a ^ res) & (b ^ res) & bt_sign_bit(size))
		f |= BT_OF;
	if ((a ^ b ^ res) & 0x10)
		f |= BT_AF;
	bt_set_arith(c, f);
	return res;
}

static uint64_t sub(struct bt_cpu *c, uint64_t a, uint64_t b, unsigned bin,
		    unsigned size)
{
	uint64_t m = bt_mask(size), res;
	uint32_t f;

	a &= m;
	b &= m;
	res = (a - b - bin) & m;
	f = bt_szp(res, size);
	if (a < b || (bin && a == b))
		f |= BT_CF;
	if ((a ^ b) & (a ^ res) & bt_sign_bit(size))
		f |= BT_OF;
	if ((a ^ b ^ res) & 0x10)
		f |= BT_AF;
	bt_set_arith(c, f);
	return res;
}

static uint64_t logic(struct bt_cpu *c, uint64_t res, unsigned size)
{
	res &= bt_mask(size);
	bt_set_arith(c, bt_szp(res, size));
	return res;
}

/* op is a BT_OP_ALU id; CMP and TEST return a and only set flags. */
uint64_t bt_alu(struct bt_cpu *c, int op, uint64_t a, uint64_t b,
		unsigned size)
{
	unsigned cf = c->s.rflags & BT_CF;

	switch (op) {
	case BT_OP_ADD: return add(c, a, b, 0, size);
	case BT_OP_ADC: return add(c, a, b, cf, size);
	case BT_OP_SUB: return sub(c, a, b, 0, size);
	case BT_OP_SBB: return sub(c, a, b, cf, size);
	case BT_OP_CMP: sub(c, a, b, 0, size); return a;
	case BT_OP_AND: return logic(c, a & b, size);
	case BT_OP_OR: return logic(c, a | b, size);
	case BT_OP_XOR: return logic(c, a ^ b, size);
	case BT_OP_TEST: logic(c, a & b, size); return a;
	default: return a;
	}
}

static void set_cf_of(struct bt_cpu *c, bool cf, bool of)
{
	c->s.rflags &= ~(uint64_t)(BT_CF | BT_OF);
	c->s.rflags |= (cf ? BT_CF : 0) | (of ? BT_OF : 0);
}

static uint64_t rotate(struct bt_cpu *c, int op, uint64_t a, unsigned count,
		       unsigned size)
{
	unsigned bits = 8 * size;
	uint64_t m = bt_mask(size), res = a;
	bool cf = c->s.rflags & BT_CF;

	switch (op) {
	case BT_OP_ROL:
		count %= bits;
		res = count ? ((a << count) | (a >> (bits - count))) & m : a;
		cf = res & 1;
		set_cf_of(c, cf, !!(res & bt_sign_bit(size)) ^ cf);
		return res;
	case BT_OP_ROR:
		count %= bits;
		res = count ? ((a >> count) | (a << (bits - count))) & m : a;
		cf = res & bt_sign_bit(size);
		set_cf_of(c, cf, !!((res ^ (res << 1)) & bt_sign_bit(size)));
		return res;
	case BT_OP_RCL:
		count %= bits + 1;
		for (unsigned i = 0; i < count; i++) {
			bool out = res & bt_sign_bit(size);
			res = ((res << 1) | cf) & m;
			cf = out;
		}
		set_cf_of(c, cf, !!(res & bt_sign_bit(size)) ^ cf);
		return res;
	default: { /* RCR */
		bool of;
		count %= bits + 1;
		of = !!(a & bt_sign_bit(size)) ^ cf;
		for (unsigned i = 0; i < count; i++) {
			bool out = res & 1;
			res = (res >> 1) | (cf ? bt_sign_bit(size) : 0);
			cf = out;
		}
		if (count != 1)
			of = !!((res ^ (res << 1)) & bt_sign_bit(size));
		set_cf_of(c, cf, of);
		return res;
	}
	}
}

/* count is already masked to 5 (6 for 64-bit) bits and non-zero. */
uint64_t bt_shift(struct bt_cpu *c, int op, uint64_t a, unsigned count,
		  unsigned size)
{
	unsigned bits = 8 * size;
	uint64_t m = bt_mask(size), res;
	uint32_t f;
	bool cf, of;

	a &= m;
	if (op == BT_OP_ROL || op == BT_OP_ROR || op == BT_OP_RCL ||
	    op == BT_OP_RCR)
		return rotate(c, op, a, count, size);
	switch (op) {
	case BT_OP_SHL:
	case BT_OP_SAL:
		res = count < 64 ? (a << count) & m : 0;
		cf = count <= bits ? (a >> (bits - count)) & 1 : 0;
		of = !!(res & bt_sign_bit(size)) ^ cf;
		break;
	case BT_OP_SHR:
		res = count < 64 ? a >> count : 0;
		cf = count <= 64 ? (a >> (count - 1)) & 1 : 0;
		of = a & bt_sign_bit(size);
		break;
	default: { /* SAR */
		int64_t s = bt_sext(a, size);
		unsigned n = count > 63 ? 63 : count;
		res = (uint64_t)(s >> n) & m;
		cf = (s >> (n - 1)) & 1;
		if (count > bits)
			cf = s < 0;
		of = false;
		break;
	}
	}
	f = bt_szp(res, size);
	if (cf)
		f |= BT_CF;
	if (of)
		f |= BT_OF;
	bt_set_arith(c, f);
	return res;
}
