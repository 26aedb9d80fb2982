/* cpu-bt: SSE/SSE2 and MMX instructions compilers emit (moves, logic,
 * integer add/sub/compare/shuffle/unpack, scalar double/single arithmetic
 * and conversions), FXSAVE/FXRSTOR and MXCSR. The registers live in the
 * canonical XSAVE image (legacy region, SDM vol. 1 10.5.1). Arithmetic uses
 * the host's SSE operations under the guest's MXCSR rounding control, DAZ
 * and FTZ (exceptions masked on the host); the host's flags, including DE,
 * go to MXCSR. An unmasked exception leaves the destination unchanged and
 * raises #XM, or #UD when CR4.OSXMMEXCPT=0 (SDM vol. 1 11.5). Single
 * precision is computed in double and rounded once more: exact for + - * /
 * and sqrt (double has more than 2p+2 bits).
 */
#include <math.h>
#include <string.h>

#include "alu.h"

#define X_MXCSR 24
#define X_XMM 160
#define X_ST 32

struct vec { uint8_t b[16]; };

static uint8_t *xmm(struct bt_cpu *c, int r)
{
	return c->s.xsave + X_XMM + 16 * r;
}

static uint8_t *mmx(struct bt_cpu *c, int r)
{
	return c->s.xsave + X_ST + 16 * r; /* MMn aliases the x87 slot */
}

static uint32_t mxcsr(struct bt_cpu *c)
{
	uint32_t v;

	memcpy(&v, c->s.xsave + X_MXCSR, 4);
	return v;
}

static void sse_check(struct bt_cpu *c)
{
	if ((c->s.cr0 & CR0_EM) || !(c->s.cr4 & CR4_OSFXSR))
		bt_raise_noerr(c, BT_UD);
	if (c->s.cr0 & CR0_TS)
		bt_raise_noerr(c, BT_NM);
}

/* Read operand o (register or memory) as `size` bytes into v. */
static void src_read(struct bt_cpu *c, const struct bt_operand *o, struct vec *v,
		     unsigned size, bool aligned)
{
	memset(v, 0, sizeof(*v));
	if (o->type == BT_OPND_MEM) {
		uint64_t a = bt_opnd_addr(c, o);
		if (aligned && (a & 15))
			bt_raise(c, BT_GP, 0);
		bt_lin_read_buf(c, bt_seg_lin(c, o->seg, a, size, false), v->b, size,
				c->cpl);
		return;
	}
	if (o->cls == BT_RC_XMM)
		memcpy(v->b, xmm(c, o->reg), size);
	else if (o->cls == BT_RC_MMX)
		memcpy(v->b, mmx(c, o->reg), size > 8 ? 8 : size);
	else
		memcpy(v->b, &c->s.gpr[o->reg], size > 8 ? 8 : size);
}

static void dst_write(struct bt_cpu *c, const struct bt_operand *o,
		      const struct vec *v, unsigned size, bool aligned)
{
	if (o->type == BT_OPND_MEM) {
		uint64_t a = bt_opnd_addr(c, o);
		if (aligned && (a & 15))
			bt_raise(c, BT_GP, 0);
		bt_lin_write_buf(c, bt_seg_lin(c, o->seg, a, size, true), v->b, size,
				 c->cpl);
		return;
	}
	if (o->cls == BT_RC_XMM) {
		memcpy(xmm(c, o->reg), v->b, size);
	} else if (o->cls == BT_RC_MMX) {
		memcpy(mmx(c, o->reg), v->b, 8);
		/* MMX use: TOP = 0, all tags valid, exponent all ones */
		c->s.xsave[X_ST + 16 * o->reg + 8] = 0xFF;
		c->s.xsave[X_ST + 16 * o->reg + 9] = 0xFF;
	} else {
		uint64_t g = 0;
		memcpy(&g, v->b, size > 8 ? 8 : size);
		bt_set_reg(c, o->reg, size, g);
	}
}

/* ---- packed integer helpers ------------------------------------------ */

static uint64_t lane(const struct vec *v, unsigned i, unsigned w)
{
	uint64_t x = 0;

	memcpy(&x, v->b + i * w, w);
	return x;
}

static void set_lane(struct vec *v, unsigned i, unsigned w, uint64_t x)
{
	memcpy(v->b + i * w, &x, w);
}

static int64_t slane(const struct vec *v, unsigned i, unsigned w)
{
	return bt_sext(lane(v, i, w), w);
}

static uint64_t sat_s(int64_t x, unsigned w)
{
	int64_t hi = (int64_t)(bt_mask(w) >> 1), lo = -hi - 1;

	return (uint64_t)(x > hi ? hi : x < lo ? lo : x);
}

static uint64_t sat_u(int64_t x, unsigned w)
{
	int64_t hi = (int64_t)bt_mask(w);

	return (uint64_t)(x > hi ? hi : x < 0 ? 0 : x);
}

/* Element-wise integer operations on lanes of width w. */
static bool packed_int(int opc, struct vec *d, const struct vec *s, unsigned n)
{
	unsigned w;
	int kind;

	switch (opc) {
	case 0xFC: w = 1; kind = 0; break; /* PADDB */
	case 0xFD: w = 2; kind = 0; break;
	case 0xFE: w = 4; kind = 0; break;
	case 0xD4: w = 8; kind = 0; break;
	case 0xF8: w = 1; kind = 1; break; /* PSUBB */
	case 0xF9: w = 2; kind = 1; break;
	case 0xFA: w = 4; kind = 1; break;
	case 0xFB: w = 8; kind = 1; break;
	case 0x74: w = 1; kind = 2; break; /* PCMPEQB */
	case 0x75: w = 2; kind = 2; break;
	case 0x76: w = 4; kind = 2; break;
	case 0x64: w = 1; kind = 3; break; /* PCMPGTB */
	case 0x65: w = 2; kind = 3; break;
	case 0x66: w = 4; kind = 3; break;
	case 0xDA: w = 1; kind = 4; break; /* PMINUB */
	case 0xDE: w = 1; kind = 5; break; /* PMAXUB */
	case 0xEA: w = 2; kind = 6; break; /* PMINSW */
	case 0xEE: w = 2; kind = 7; break; /* PMAXSW */
	case 0xEC: w = 1; kind = 8; break; /* PADDSB */
	case 0xED: w = 2; kind = 8; break;
	case 0xDC: w = 1; kind = 9; break; /* PADDUSB */
	case 0xDD: w = 2; kind = 9; break;
	case 0xE8: w = 1; kind = 10; break; /* PSUBSB */
	case 0xE9: w = 2; kind = 10; break;
	case 0xD8: w = 1; kind = 11; break; /* PSUBUSB */
	case 0xD9: w = 2; kind = 11; break;
	case 0xD5: w = 2; kind = 12; break; /* PMULLW */
	case 0xE5: w = 2; kind = 13; break; /* PMULHW */
	case 0xE4: w = 2; kind = 14; break; /* PMULHUW */
	case 0xE0: w = 1; kind = 15; break; /* PAVGB */
	case 0xE3: w = 2; kind = 15; break;
	default: return false;
	}
	for (unsigned i = 0; i < n / w; i++) {
		uint64_t a = lane(d, i, w), b = lane(s, i, w), r;
		int64_t sa = slane(d, i, w), sb = slane(s, i, w);
		switch (kind) {
		case 0: r = a + b; break;
		case 1: r = a - b; break;
		case 2: r = a == b ? ~0ull : 0; break;
		case 3: r = sa > sb ? ~0ull : 0; break;
		case 4: r = a < b ? a : b; break;
		case 5: r = a > b ? a : b; break;
		case 6: r = (uint64_t)(sa < sb ? sa : sb); break;
		case 7: r = (uint64_t)(sa > sb ? sa : sb); break;
		case 8: r = sat_s(sa + sb, w); break;
		case 9: r = sat_u((int64_t)(a + b), w); break;
		case 10: r = sat_s(sa - sb, w); break;
		case 11: r = sat_u((int64_t)a - (int64_t)b, w); break;
		case 12: r = (uint64_t)(sa * sb); break;
		case 13: r = (uint64_t)((sa * sb) >> 16); break;
		case 14: r = (a * b) >> 16; break;
		default: r = (a + b + 1) >> 1; break;
		}
		set_lane(d, i, w, r);
	}
	return true;
}

static void unpack(struct vec *d, const struct vec *s, unsigned w, bool high,
		   unsigned n)
{
	struct vec r;
	unsigned half = n / 2, cnt = half / w;

	for (unsigned i = 0; i < cnt; i++) {
		unsigned src = (high ? half : 0) + i * w;
		memcpy(r.b + 2 * i * w, d->b + src, w);
		memcpy(r.b + (2 * i + 1) * w, s->b + src, w);
	}
	memcpy(d->b, r.b, n);
}

static void packss(struct vec *d, const struct vec *s, unsigned w, bool uns,
		   unsigned n)
{
	struct vec r;
	unsigned cnt = n / w;

	for (unsigned i = 0; i < cnt; i++) {
		int64_t x = slane(d, i, w);
		set_lane(&r, i, w / 2, uns ? sat_u(x, w / 2) : sat_s(x, w / 2));
		x = slane(s, i, w);
		set_lane(&r, cnt + i, w / 2, uns ? sat_u(x, w / 2) : sat_s(x, w / 2));
	}
	memcpy(d->b, r.b, n);
}

/* PSRLW/PSRAW/PSLLW and friends: count from imm8 or an operand. */
static void shift_lanes(struct vec *d, unsigned w, int kind, uint64_t count,
			unsigned n)
{
	for (unsigned i = 0; i < n / w; i++) {
		uint64_t a = lane(d, i, w);
		int64_t sa = slane(d, i, w);
		uint64_t r;
		if (kind == 0)      /* logical right */
			r = count >= 8 * w ? 0 : a >> count;
		else if (kind == 1) /* arithmetic right */
			r = (uint64_t)(sa >> (count >= 8 * w ? 8 * w - 1 : count));
		else                /* left */
			r = count >= 8 * w ? 0 : a << count;
		set_lane(d, i, w, r);
	}
}

static void byte_shift(struct vec *d, unsigned count, bool left)
{
	struct vec r;

	memset(&r, 0, sizeof(r));
	if (count > 16)
		count = 16;
	if (left)
		memcpy(r.b + count, d->b, 16 - count);
	else
		memcpy(r.b, d->b + count, 16 - count);
	*d = r;
}

/* ---- scalar / packed floating point ----------------------------------- */

/* Set exception flags in the host MXCSR, where bt_exec_sse collects them
 * (glibc's feraiseexcept raises some of them in the x87 instead). */
static void sse_raise(uint32_t bits)
{
	__builtin_ia32_ldmxcsr(__builtin_ia32_stmxcsr() | bits);
}

static double get_d(const struct vec *v, unsigned i)
{
	double x;

	memcpy(&x, v->b + 8 * i, 8);
	return x;
}

static void set_d(struct vec *v, unsigned i, double x)
{
	memcpy(v->b + 8 * i, &x, 8);
}

static float get_f(const struct vec *v, unsigned i)
{
	float x;

	memcpy(&x, v->b + 4 * i, 4);
	return x;
}

static void set_f(struct vec *v, unsigned i, float x)
{
	memcpy(v->b + 4 * i, &x, 4);
}

static double farith(int opc, double a, double b)
{
	switch (opc) {
	case 0x58: return a + b;
	case 0x59: return a * b;
	case 0x5C: return a - b;
	case 0x5E: return a / b;
	case 0x5D: return a < b ? a : b; /* MIN: b if unordered or equal */
	case 0x5F: return a > b ? a : b;
	default: return sqrt(b);
	}
}

static bool float_op(struct bt_cpu *c, struct vec *d, const struct vec *s)
{
	int opc = c->in->opcode;
	uint8_t p = c->in->mandatory;

	if (opc == 0x51 || opc == 0x58 || opc == 0x59 || opc == 0x5C ||
	    opc == 0x5D || opc == 0x5E || opc == 0x5F) {
		if (p == 0xF2) {
			set_d(d, 0, farith(opc, get_d(d, 0), get_d(s, 0)));
		} else if (p == 0xF3) {
			set_f(d, 0, (float)farith(opc, get_f(d, 0), get_f(s, 0)));
		} else if (p == 0x66) {
			for (int i = 0; i < 2; i++)
				set_d(d, i, farith(opc, get_d(d, i), get_d(s, i)));
		} else {
			for (int i = 0; i < 4; i++)
				set_f(d, i, (float)farith(opc, get_f(d, i), get_f(s, i)));
		}
		if (opc == 0x51 && p == 0xF3)
			set_f(d, 0, sqrtf(get_f(s, 0)));
		else if (opc == 0x51 && !p)
			for (int i = 0; i < 4; i++)
				set_f(d, i, sqrtf(get_f(s, i)));
		return true;
	}
	return false;
}

/* 0: not a NaN, 1: QNaN, 2: SNaN; from the bits, so that no host
 * compare raises DE for a denormal in the other operand (a NaN operand
 * takes precedence: SDM vol. 1 11.5.2.1). */
static int nan_kind(const struct vec *v, unsigned i, bool dbl)
{
	uint64_t x = lane(v, i, dbl ? 8 : 4);
	uint64_t exp = dbl ? 0x7FF0000000000000ull : 0x7F800000ull;
	uint64_t quiet = dbl ? 1ull << 51 : 1ull << 22;

	if ((x & exp) != exp || !(x & (quiet * 2 - 1)))
		return 0;
	return (x & quiet) ? 1 : 2;
}

/* Either operand of lane i a NaN: raise IE for an SNaN, or for a QNaN
 * when the operation signals on QNaN. */
static bool nan_operands(const struct vec *a, const struct vec *b, unsigned i,
			 bool dbl, bool signal_qnan)
{
	int ka = nan_kind(a, i, dbl), kb = nan_kind(b, i, dbl);

	if (!ka && !kb)
		return false;
	if (ka == 2 || kb == 2 || signal_qnan)
		sse_raise(0x01);
	return true;
}

/* COMISS/COMISD signal on QNaN, UCOMISS/UCOMISD only on SNaN. */
static void comis(struct bt_cpu *c, const struct vec *x, const struct vec *y,
		  bool dbl)
{
	double a, b;
	uint32_t f;

	if (nan_operands(x, y, 0, dbl, c->in->opcode == 0x2F)) {
		bt_set_arith(c, BT_ZF | BT_PF | BT_CF);
		return;
	}
	a = dbl ? get_d(x, 0) : get_f(x, 0);
	b = dbl ? get_d(y, 0) : get_f(y, 0);
	if (a < b)
		f = BT_CF;
	else if (a == b)
		f = BT_ZF;
	else
		f = 0;
	bt_set_arith(c, f);
}

/* CVT(T)SD2SI and friends: out of range or NaN gives the integer
 * indefinite and IE, a fraction gives PE (SDM vol. 2 CVTSD2SI). */
static int64_t cvt_int(double x, unsigned size, bool chop)
{
	double r = chop ? trunc(x) : nearbyint(x);
	double lim = size == 8 ? 9223372036854775808.0 : 2147483648.0;

	if (isnan(r) || r >= lim || r < -lim) {
		sse_raise(0x01);
		return size == 8 ? INT64_MIN : INT32_MIN;
	}
	if (r != x)
		sse_raise(0x20);
	return (int64_t)r;
}

/* ---- the dispatcher ---------------------------------------------------- */

static void exec_mov_forms(struct bt_cpu *c, const struct bt_operand *r,
			   const struct bt_operand *m, bool store)
{
	int opc = c->in->opcode;
	uint8_t p = c->in->mandatory;
	struct vec v;
	bool aligned = opc == 0x28 || opc == 0x29 || opc == 0x2B ||
		       opc == 0xE7 || (opc == 0x6F && p == 0x66) ||
		       (opc == 0x7F && p == 0x66);
	unsigned size = 16;

	if ((opc == 0x10 || opc == 0x11) && (p == 0xF2 || p == 0xF3))
		size = p == 0xF2 ? 8 : 4;
	if (r->cls == BT_RC_MMX)
		size = 8;
	if (store) {
		src_read(c, r, &v, size, false);
		dst_write(c, m, &v, size, aligned);
		return;
	}
	src_read(c, m, &v, size, aligned);
	if (size < 16 && r->cls == BT_RC_XMM && m->type == BT_OPND_REG) {
		/* MOVSS/MOVSD register form merges into the low part */
		memcpy(xmm(c, r->reg), v.b, size);
		return;
	}
	dst_write(c, r, &v, r->cls == BT_RC_MMX ? 8 : 16, false);
}

static bool exec_int_ops(struct bt_cpu *c, const struct bt_operand *r,
			 const struct bt_operand *m)
{
	int opc = c->in->opcode;
	unsigned n = r->cls == BT_RC_MMX ? 8 : 16;
	bool aligned = n == 16;
	struct vec d, s;

	src_read(c, r, &d, n, false);
	switch (opc) {
	case 0x71: case 0x72: case 0x73: {
		unsigned sub = c->in->modrm >> 3 & 7, w = opc == 0x71 ? 2 : opc == 0x72 ? 4 : 8;
		uint64_t cnt = c->in->opnd[2].imm & 0xFF;
		if (m->type != BT_OPND_REG)
			bt_raise_noerr(c, BT_UD);
		src_read(c, m, &d, n, false);
		if (opc == 0x73 && sub == 3 && n == 16)
			byte_shift(&d, (unsigned)cnt, false);
		else if (opc == 0x73 && sub == 7 && n == 16)
			byte_shift(&d, (unsigned)cnt, true);
		else if (sub == 2)
			shift_lanes(&d, w, 0, cnt, n);
		else if (sub == 4 && opc != 0x73)
			shift_lanes(&d, w, 1, cnt, n);
		else if (sub == 6)
			shift_lanes(&d, w, 2, cnt, n);
		else
			bt_raise_noerr(c, BT_UD);
		dst_write(c, m, &d, n, false);
		return true;
	}
	default:
		break;
	}
	src_read(c, m, &s, n, aligned);
	if (packed_int(opc, &d, &s, n))
		goto out;
	switch (opc) {
	case 0xDB: for (unsigned i = 0; i < n; i++) d.b[i] &= s.b[i]; break;
	case 0xDF: for (unsigned i = 0; i < n; i++) d.b[i] = ~d.b[i] & s.b[i]; break;
	case 0xEB: for (unsigned i = 0; i < n; i++) d.b[i] |= s.b[i]; break;
	case 0xEF: for (unsigned i = 0; i < n; i++) d.b[i] ^= s.b[i]; break;
	case 0x60: unpack(&d, &s, 1, false, n); break;
	case 0x61: unpack(&d, &s, 2, false, n); break;
	case 0x62: unpack(&d, &s, 4, false, n); break;
	case 0x6C: unpack(&d, &s, 8, false, n); break;
	case 0x68: unpack(&d, &s, 1, true, n); break;
	case 0x69: unpack(&d, &s, 2, true, n); break;
	case 0x6A: unpack(&d, &s, 4, true, n); break;
	case 0x6D: unpack(&d, &s, 8, true, n); break;
	case 0x63: packss(&d, &s, 2, false, n); break;
	case 0x6B: packss(&d, &s, 4, false, n); break;
	case 0x67: packss(&d, &s, 2, true, n); break;
	case 0xD1: shift_lanes(&d, 2, 0, lane(&s, 0, 8), n); break;
	case 0xD2: shift_lanes(&d, 4, 0, lane(&s, 0, 8), n); break;
	case 0xD3: shift_lanes(&d, 8, 0, lane(&s, 0, 8), n); break;
	case 0xE1: shift_lanes(&d, 2, 1, lane(&s, 0, 8), n); break;
	case 0xE2: shift_lanes(&d, 4, 1, lane(&s, 0, 8), n); break;
	case 0xF1: shift_lanes(&d, 2, 2, lane(&s, 0, 8), n); break;
	case 0xF2: shift_lanes(&d, 4, 2, lane(&s, 0, 8), n); break;
	case 0xF3: shift_lanes(&d, 8, 2, lane(&s, 0, 8), n); break;
	case 0xF4: /* PMULUDQ */
		for (unsigned i = 0; i < n / 8; i++)
			set_lane(&d, i, 8, (lane(&d, 2 * i, 4)) * lane(&s, 2 * i, 4));
		break;
	case 0xF5: /* PMADDWD */
		for (unsigned i = 0; i < n / 4; i++)
			set_lane(&d, i, 4, (uint64_t)(slane(&d, 2 * i, 2) * slane(&s, 2 * i, 2) +
					      slane(&d, 2 * i + 1, 2) * slane(&s, 2 * i + 1, 2)));
		break;
	case 0xF6: { /* PSADBW */
		for (unsigned q = 0; q < n / 8; q++) {
			uint64_t sum = 0;
			for (int i = 0; i < 8; i++) {
				int x = d.b[8 * q + i] - s.b[8 * q + i];
				sum += (uint64_t)(x < 0 ? -x : x);
			}
			set_lane(&d, q, 8, sum);
		}
		break;
	}
	default:
		return false;
	}
out:
	dst_write(c, r, &d, n, false);
	return true;
}

static void exec_cvt(struct bt_cpu *c, const struct bt_operand *r,
		     const struct bt_operand *m)
{
	int opc = c->in->opcode;
	uint8_t p = c->in->mandatory;
	struct vec d, s;

	switch (opc) {
	case 0x2A: { /* CVTSI2SD/SS */
		int64_t v = bt_sext(bt_get(c, m), m->size);
		if (p != 0xF2 && p != 0xF3)
			bt_raise_noerr(c, BT_UD); /* CVTPI2PS: MMX form not done */
		src_read(c, r, &d, 16, false);
		if (p == 0xF2)
			set_d(&d, 0, (double)v);
		else
			set_f(&d, 0, (float)v);
		dst_write(c, r, &d, 16, false);
		return;
	}
	case 0x2C: case 0x2D: { /* CVT(T)SD2SI / SS2SI */
		double x;
		if (p != 0xF2 && p != 0xF3)
			bt_raise_noerr(c, BT_UD);
		src_read(c, m, &s, p == 0xF2 ? 8 : 4, false);
		x = p == 0xF2 ? get_d(&s, 0) : get_f(&s, 0);
		bt_set_reg(c, r->reg, r->size,
			   (uint64_t)cvt_int(x, r->size, opc == 0x2C));
		return;
	}
	case 0x5A: /* CVTSD2SS / CVTSS2SD / CVTPS2PD / CVTPD2PS */
		src_read(c, r, &d, 16, false);
		src_read(c, m, &s, 16, false);
		if (p == 0xF2)
			set_f(&d, 0, (float)get_d(&s, 0));
		else if (p == 0xF3)
			set_d(&d, 0, get_f(&s, 0));
		else if (p == 0x66) {
			set_f(&d, 0, (float)get_d(&s, 0));
			set_f(&d, 1, (float)get_d(&s, 1));
			memset(d.b + 8, 0, 8);
		} else {
			double a = get_f(&s, 0), b = get_f(&s, 1);
			set_d(&d, 0, a);
			set_d(&d, 1, b);
		}
		dst_write(c, r, &d, 16, false);
		return;
	case 0xE6: /* CVTDQ2PD (F3), CVTTPD2DQ (66), CVTPD2DQ (F2) */
		src_read(c, r, &d, 16, false);
		src_read(c, m, &s, 16, false);
		if (p == 0xF3) {
			int32_t a = (int32_t)lane(&s, 0, 4), b = (int32_t)lane(&s, 1, 4);
			set_d(&d, 0, a);
			set_d(&d, 1, b);
		} else if (p == 0x66 || p == 0xF2) {
			for (int i = 0; i < 2; i++)
				set_lane(&d, i, 4, (uint64_t)cvt_int(get_d(&s, i), 4, p == 0x66));
			memset(d.b + 8, 0, 8);
		} else {
			bt_raise_noerr(c, BT_UD);
		}
		dst_write(c, r, &d, 16, false);
		return;
	default: /* 0x5B: CVTDQ2PS (none), CVTPS2DQ (66), CVTTPS2DQ (F3) */
		src_read(c, r, &d, 16, false);
		src_read(c, m, &s, 16, false);
		for (int i = 0; i < 4; i++) {
			if (!p)
				set_f(&d, i, (float)(int32_t)lane(&s, i, 4));
			else
				set_lane(&d, i, 4, (uint64_t)cvt_int(get_f(&s, i), 4, p == 0xF3));
		}
		dst_write(c, r, &d, 16, false);
		return;
	}
}

static void exec_logic_fp(struct bt_cpu *c, const struct bt_operand *r,
			  const struct bt_operand *m)
{
	struct vec d, s;
	int opc = c->in->opcode;

	src_read(c, r, &d, 16, false);
	src_read(c, m, &s, 16, true);
	for (int i = 0; i < 16; i++) {
		switch (opc) {
		case 0x54: d.b[i] &= s.b[i]; break;
		case 0x55: d.b[i] = ~d.b[i] & s.b[i]; break;
		case 0x56: d.b[i] |= s.b[i]; break;
		default: d.b[i] ^= s.b[i]; break;
		}
	}
	dst_write(c, r, &d, 16, false);
}

static void exec_cmpps(struct bt_cpu *c, const struct bt_operand *r,
		       const struct bt_operand *m)
{
	uint8_t p = c->in->mandatory;
	unsigned pred = c->in->opnd[2].imm & 7;
	bool dbl = p == 0x66 || p == 0xF2, scalar = p == 0xF2 || p == 0xF3;
	unsigned cnt = scalar ? 1 : dbl ? 2 : 4;
	struct vec d, s;

	src_read(c, r, &d, 16, false);
	src_read(c, m, &s, scalar ? (dbl ? 8 : 4) : 16, !scalar);
	for (unsigned i = 0; i < cnt; i++) {
		/* LT LE NLT NLE signal on QNaN (SDM vol. 2 CMPPS table 3-1) */
		bool un = nan_operands(&d, &s, i, dbl, (pred & 3) && pred != 3 &&
				       pred != 7), t;
		double a = un ? 0 : dbl ? get_d(&d, i) : get_f(&d, i);
		double b = un ? 0 : dbl ? get_d(&s, i) : get_f(&s, i);
		switch (pred) {
		case 0: t = !un && a == b; break;
		case 1: t = !un && a < b; break;
		case 2: t = !un && a <= b; break;
		case 3: t = un; break;
		case 4: t = un || a != b; break;
		case 5: t = un || !(a < b); break;
		case 6: t = un || !(a <= b); break;
		default: t = !un; break;
		}
		set_lane(&d, i, dbl ? 8 : 4, t ? ~0ull : 0);
	}
	dst_write(c, r, &d, 16, false);
}

static void exec_shuf(struct bt_cpu *c, const struct bt_operand *r,
		      const struct bt_operand *m)
{
	uint8_t p = c->in->mandatory, imm = (uint8_t)c->in->opnd[2].imm;
	int opc = c->in->opcode;
	struct vec d, s, o;

	src_read(c, r, &d, 16, false);
	if (opc == 0x70) {
		unsigned n = r->cls == BT_RC_MMX ? 8 : 16;
		src_read(c, m, &s, n, n == 16);
		o = s;
		if (n == 8 || p == 0xF2 || p == 0xF3) { /* PSHUFW / PSHUFLW / PSHUFHW */
			unsigned base = p == 0xF3 ? 4 : 0;
			for (int i = 0; i < 4; i++)
				set_lane(&o, base + i, 2, lane(&s, base + ((imm >> (2 * i)) & 3), 2));
		} else {
			for (int i = 0; i < 4; i++)
				set_lane(&o, i, 4, lane(&s, (imm >> (2 * i)) & 3, 4));
		}
		dst_write(c, r, &o, n, false);
		return;
	}
	/* 0xC6: SHUFPS / SHUFPD */
	src_read(c, m, &s, 16, true);
	o = d;
	if (p == 0x66) {
		set_lane(&o, 0, 8, lane(&d, imm & 1, 8));
		set_lane(&o, 1, 8, lane(&s, (imm >> 1) & 1, 8));
	} else {
		set_lane(&o, 0, 4, lane(&d, imm & 3, 4));
		set_lane(&o, 1, 4, lane(&d, (imm >> 2) & 3, 4));
		set_lane(&o, 2, 4, lane(&s, (imm >> 4) & 3, 4));
		set_lane(&o, 3, 4, lane(&s, (imm >> 6) & 3, 4));
	}
	dst_write(c, r, &o, 16, false);
}

static void exec_movd(struct bt_cpu *c, const struct bt_operand *r,
		      const struct bt_operand *m)
{
	int opc = c->in->opcode;
	uint8_t p = c->in->mandatory;
	struct vec v;

	if (opc == 0x7E && p == 0xF3) { /* MOVQ xmm, xmm/m64 */
		src_read(c, m, &v, 8, false);
		memset(v.b + 8, 0, 8);
		dst_write(c, r, &v, 16, false);
		return;
	}
	if (opc == 0xD6) { /* MOVQ xmm/m64, xmm */
		src_read(c, r, &v, 8, false);
		if (m->type == BT_OPND_REG)
			memset(v.b + 8, 0, 8);
		dst_write(c, m, &v, m->type == BT_OPND_REG ? 16 : 8, false);
		return;
	}
	if (opc == 0x6E) { /* MOVD/MOVQ xmm|mm, r/m */
		memset(&v, 0, sizeof(v));
		uint64_t g = bt_get(c, m);
		memcpy(v.b, &g, 8);
		dst_write(c, r, &v, r->cls == BT_RC_MMX ? 8 : 16, false);
		return;
	}
	/* 0x7E: MOVD/MOVQ r/m, xmm|mm */
	src_read(c, r, &v, 8, false);
	uint64_t g;
	memcpy(&g, v.b, 8);
	bt_put(c, m, g);
}

static void exec_movlh(struct bt_cpu *c, const struct bt_operand *r,
		       const struct bt_operand *m)
{
	int opc = c->in->opcode;
	bool high = opc == 0x16 || opc == 0x17;
	struct vec v;

	if (opc == 0x13 || opc == 0x17) { /* store low/high quadword */
		if (m->type != BT_OPND_MEM)
			bt_raise_noerr(c, BT_UD);
		src_read(c, r, &v, 16, false);
		if (high)
			memmove(v.b, v.b + 8, 8);
		dst_write(c, m, &v, 8, false);
		return;
	}
	if (m->type == BT_OPND_REG && !c->in->mandatory) {
		/* MOVHLPS (12) / MOVLHPS (16) */
		src_read(c, m, &v, 16, false);
		if (high)
			memcpy(xmm(c, r->reg) + 8, v.b, 8);
		else
			memcpy(xmm(c, r->reg), v.b + 8, 8);
		return;
	}
	if (m->type != BT_OPND_MEM)
		bt_raise_noerr(c, BT_UD); /* MOVLPD/MOVHPD need memory */
	src_read(c, m, &v, 8, false);
	memcpy(xmm(c, r->reg) + (high ? 8 : 0), v.b, 8);
}

static void exec_pmovmskb(struct bt_cpu *c, const struct bt_operand *r,
			  const struct bt_operand *m)
{
	struct vec v;
	unsigned n = m->cls == BT_RC_MMX ? 8 : 16, mask = 0;
	int opc = c->in->opcode;

	if (m->type != BT_OPND_REG)
		bt_raise_noerr(c, BT_UD);
	src_read(c, m, &v, 16, false);
	if (opc == 0xD7) {
		for (unsigned i = 0; i < n; i++)
			mask |= (unsigned)(v.b[i] >> 7) << i;
	} else if (c->in->mandatory == 0x66) { /* MOVMSKPD */
		mask = (v.b[7] >> 7) | (v.b[15] >> 7) << 1;
	} else { /* MOVMSKPS */
		for (int i = 0; i < 4; i++)
			mask |= (unsigned)(v.b[4 * i + 3] >> 7) << i;
	}
	bt_set_reg(c, r->reg, 4, mask);
}

static void exec_unpck_fp(struct bt_cpu *c, const struct bt_operand *r,
			  const struct bt_operand *m)
{
	struct vec d, s;
	bool high = c->in->opcode == 0x15;

	src_read(c, r, &d, 16, false);
	src_read(c, m, &s, 16, true);
	unpack(&d, &s, c->in->mandatory == 0x66 ? 8 : 4, high, 16);
	dst_write(c, r, &d, 16, false);
}

static void exec_pinsr(struct bt_cpu *c, const struct bt_operand *r,
		       const struct bt_operand *m)
{
	unsigned n = r->cls == BT_RC_MMX ? 8 : 16, sel = (unsigned)c->in->opnd[2].imm;
	struct vec d;

	if (c->in->opcode == 0xC4) {
		uint64_t v = m->type == BT_OPND_MEM
			? bt_read(c, m->seg, bt_opnd_addr(c, m), 2) : bt_get(c, m);
		src_read(c, r, &d, n, false);
		set_lane(&d, sel & (n / 2 - 1), 2, v & 0xFFFF);
		dst_write(c, r, &d, n, false);
		return;
	}
	/* PEXTRW r32, xmm|mm, imm8 */
	if (m->type != BT_OPND_REG)
		bt_raise_noerr(c, BT_UD);
	n = m->cls == BT_RC_MMX ? 8 : 16;
	src_read(c, m, &d, n, false);
	bt_set_reg(c, r->reg, 4, lane(&d, sel & (n / 2 - 1), 2));
}

static void exec_sse_op(struct bt_cpu *c);

/* The instructions that can raise SIMD floating-point exceptions: the
 * arithmetic, compares and conversions (not RCP/RSQRT, logic or moves). */
static bool simd_fp(const struct bt_insn *in)
{
	if (in->op != BT_OP_SSE || in->map != 1)
		return false;
	switch (in->opcode) {
	case 0x2A: case 0x2C: case 0x2D: case 0x2E: case 0x2F: case 0x51:
	case 0x58: case 0x59: case 0x5A: case 0x5B: case 0x5C: case 0x5D:
	case 0x5E: case 0x5F: case 0xC2: case 0xE6:
		return true;
	default:
		return false;
	}
}

/* What an SSE FP instruction may write besides memory (which none of them
 * does): XMM registers, a GPR (CVTSD2SI) and EFLAGS (COMISD). */
struct sse_undo {
	uint8_t xmm[256];
	uint64_t gpr[16];
	uint64_t rflags;
};

void bt_exec_sse(struct bt_cpu *c)
{
	uint32_t mx = mxcsr(c), f, unmasked;
	struct sse_undo u;

	if (!simd_fp(c->in)) {
		exec_sse_op(c);
		return;
	}
	memcpy(u.xmm, c->s.xsave + X_XMM, sizeof(u.xmm));
	memcpy(u.gpr, c->s.gpr, sizeof(u.gpr));
	u.rflags = c->s.rflags;
	/* the host runs with the guest's RC, FTZ and DAZ, all masked; a
	 * fault inside is undone by handle_fault (bt_fpu_host_reset) */
	__builtin_ia32_ldmxcsr((mx & 0xE040) | 0x1F80);
	exec_sse_op(c);
	f = __builtin_ia32_stmxcsr() & 0x3F;
	bt_fpu_host_reset();
	unmasked = f & ~(mx >> 7) & 0x3F;
	/* an unmasked pre-computation exception (IE DE ZE) stops before the
	 * post-computation ones are detected (SDM vol. 1 11.5.2) */
	if (unmasked & 0x07)
		f &= 0x07;
	mx |= f;
	memcpy(c->s.xsave + X_MXCSR, &mx, 4);
	if (!unmasked)
		return;
	memcpy(c->s.xsave + X_XMM, u.xmm, sizeof(u.xmm));
	memcpy(c->s.gpr, u.gpr, sizeof(u.gpr));
	c->s.rflags = u.rflags;
	bt_raise_noerr(c, (c->s.cr4 & CR4_OSXMMEXCPT) ? BT_XM : BT_UD);
}

static void exec_sse_op(struct bt_cpu *c)
{
	const struct bt_operand *r = &c->in->opnd[0], *m = &c->in->opnd[1];
	int opc = c->in->opcode;
	uint8_t p = c->in->mandatory;
	struct vec d, s;

	switch (c->in->op) {
	case BT_OP_FXSAVE:
	case BT_OP_FXRSTOR:
		if (c->s.cr0 & (CR0_TS | CR0_EM))
			bt_raise_noerr(c, c->s.cr0 & CR0_EM ? BT_UD : BT_NM);
		if (c->in->op == BT_OP_FXSAVE)
			bt_fxsave(c, r->seg, bt_opnd_addr(c, r));
		else
			bt_fxrstor(c, r->seg, bt_opnd_addr(c, r));
		return;
	case BT_OP_LDMXCSR:
	case BT_OP_STMXCSR:
		sse_check(c);
		if (r->type != BT_OPND_MEM)
			bt_raise_noerr(c, BT_UD);
		if (c->in->op == BT_OP_STMXCSR) {
			bt_write(c, r->seg, bt_opnd_addr(c, r), 4, mxcsr(c));
		} else {
			uint32_t v = (uint32_t)bt_read(c, r->seg, bt_opnd_addr(c, r), 4);
			if (v & ~0xFFFFu)
				bt_raise(c, BT_GP, 0);
			memcpy(c->s.xsave + X_MXCSR, &v, 4);
		}
		return;
	default:
		break;
	}
	if (c->in->map != 1 || (c->in->prefix & BT_PFX_LOCK))
		bt_raise_noerr(c, BT_UD);
	if (opc == 0x77) { /* EMMS */
		if (c->s.cr0 & CR0_EM)
			bt_raise_noerr(c, BT_UD);
		if (c->s.cr0 & CR0_TS)
			bt_raise_noerr(c, BT_NM);
		c->s.xsave[4] = 0; /* all x87 registers empty */
		return;
	}
	if (r->cls == BT_RC_MMX || m->cls == BT_RC_MMX) {
		if (c->s.cr0 & CR0_EM)
			bt_raise_noerr(c, BT_UD);
		if (c->s.cr0 & CR0_TS)
			bt_raise_noerr(c, BT_NM);
		c->s.xsave[4] = 0xFF; /* MMX instructions make all tags valid */
		c->s.xsave[2] = 0;
		c->s.xsave[3] &= 0xC7; /* TOP = 0 */
	} else {
		sse_check(c);
	}
	switch (opc) {
	case 0x10: case 0x28: case 0x6F:
		exec_mov_forms(c, r, m, false);
		return;
	case 0x11: case 0x29: case 0x2B: case 0x7F: case 0xE7:
		if ((opc == 0x2B || opc == 0xE7) && m->type != BT_OPND_MEM)
			bt_raise_noerr(c, BT_UD);
		if (opc == 0x7F && r->cls == BT_RC_XMM && !p)
			bt_raise_noerr(c, BT_UD);
		exec_mov_forms(c, r, m, true);
		return;
	case 0x12: case 0x13: case 0x16: case 0x17:
		if (p == 0xF2 || p == 0xF3)
			bt_raise_noerr(c, BT_UD); /* MOVDDUP/MOVS?DUP: SSE3 */
		exec_movlh(c, r, m);
		return;
	case 0x14: case 0x15:
		if (p == 0xF2 || p == 0xF3)
			bt_raise_noerr(c, BT_UD);
		exec_unpck_fp(c, r, m);
		return;
	case 0x2A: case 0x2C: case 0x2D: case 0x5A: case 0x5B: case 0xE6:
		exec_cvt(c, r, m);
		return;
	case 0x2E: case 0x2F:
		if (p == 0x66 || !p) {
			src_read(c, r, &d, 16, false);
			src_read(c, m, &s, p ? 8 : 4, false);
			comis(c, &d, &s, p == 0x66);
		} else {
			bt_raise_noerr(c, BT_UD);
		}
		return;
	case 0x50: case 0xD7:
		if (opc == 0x50 && (p == 0xF2 || p == 0xF3))
			bt_raise_noerr(c, BT_UD);
		exec_pmovmskb(c, r, m);
		return;
	case 0x54: case 0x55: case 0x56: case 0x57:
		if (p == 0xF2 || p == 0xF3)
			bt_raise_noerr(c, BT_UD);
		exec_logic_fp(c, r, m);
		return;
	case 0x51: case 0x58: case 0x59: case 0x5C: case 0x5D: case 0x5E:
	case 0x5F: {
		bool scalar = p == 0xF2 || p == 0xF3;
		src_read(c, r, &d, 16, false);
		src_read(c, m, &s, scalar ? (p == 0xF2 ? 8 : 4) : 16, !scalar);
		float_op(c, &d, &s);
		dst_write(c, r, &d, 16, false);
		return;
	}
	case 0x52: case 0x53: { /* RSQRTPS/SS, RCPPS/SS: exact values are
				   within the architected 1.5 * 2^-12 error */
		bool scalar = p == 0xF3;
		if (p == 0x66 || p == 0xF2)
			bt_raise_noerr(c, BT_UD);
		src_read(c, r, &d, 16, false);
		src_read(c, m, &s, scalar ? 4 : 16, !scalar);
		for (int i = 0; i < (scalar ? 1 : 4); i++) {
			float x = get_f(&s, i);
			set_f(&d, i, opc == 0x53 ? 1.0f / x : 1.0f / sqrtf(x));
		}
		dst_write(c, r, &d, 16, false);
		return;
	}
	case 0xF7: { /* MASKMOVDQU / MASKMOVQ: byte stores to DS:rDI */
		unsigned n = r->cls == BT_RC_MMX ? 8 : 16;
		int seg = c->in->seg != BT_SEG_NONE ? c->in->seg : BT_DS;
		uint64_t di = c->s.gpr[MODVM_RDI] & bt_mask(c->in->addrsize);
		if (m->type != BT_OPND_REG || (p && p != 0x66))
			bt_raise_noerr(c, BT_UD);
		src_read(c, r, &d, n, false);
		src_read(c, m, &s, n, false);
		for (unsigned i = 0; i < n; i++)
			if (s.b[i] & 0x80)
				bt_write(c, seg, (di + i) & bt_mask(c->in->addrsize), 1,
					 d.b[i]);
		return;
	}
	case 0x70: case 0xC6:
		exec_shuf(c, r, m);
		return;
	case 0xC2:
		exec_cmpps(c, r, m);
		return;
	case 0xC4: case 0xC5:
		exec_pinsr(c, r, m);
		return;
	case 0x6E: case 0x7E: case 0xD6:
		if (opc == 0x7E && p == 0xF2)
			bt_raise_noerr(c, BT_UD);
		if (opc == 0xD6 && p != 0x66)
			bt_raise_noerr(c, BT_UD);
		if (opc == 0x7E && p == 0xF3) {
			/* operands decoded as GPR r/m: re-read as XMM */
			struct bt_operand mm = *m;
			if (mm.type == BT_OPND_REG)
				mm.cls = BT_RC_XMM;
			mm.size = 8;
			struct bt_operand rr = *r;
			rr.cls = BT_RC_XMM;
			exec_movd(c, &rr, &mm);
			return;
		}
		exec_movd(c, r, m);
		return;
	default:
		break;
	}
	if ((p == 0xF2 || p == 0xF3) || (r->cls == BT_RC_XMM && p != 0x66 &&
					  opc >= 0x60))
		bt_raise_noerr(c, BT_UD);
	if (!exec_int_ops(c, r, m))
		bt_raise_noerr(c, BT_UD);
}
