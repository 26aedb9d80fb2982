/* cpu-bt: the x87 FPU (SDM vol. 1 ch. 8) on the host's 80-bit long double,
 * which has exactly the x87 extended format. The registers stay in the
 * canonical FXSAVE image with ST(i) in slot i, as FXSAVE stores them; the
 * abridged tag byte refers to physical registers (TOP + i) mod 8. Rounding
 * control comes from FCW through the host's rounding mode, and the host's
 * exception flags become FSW's (IE DE ZE OE UE PE): the host x87 runs with
 * the guest's rounding control and all exceptions masked, and with the
 * guest's precision control for the operations PC applies to (FADD FSUB
 * FMUL FDIV FSQRT, SDM vol. 1 8.1.5.2). An unmasked exception sets ES and
 * B; the next waiting x87 instruction then raises #MF when CR0.NE=1 (SDM
 * vol. 1 8.7). With CR0.NE=0 a PC asserts FERR#, which the chipset turns
 * into IRQ13; cpu-bt has no FERR# line and behaves as with IGNNE#
 * asserted: execution continues and the exception stays pending in FSW.
 */
#include <math.h>
#include <string.h>

#include "alu.h"

#define FSW_IE 0x0001
#define FSW_ZE 0x0004
#define FSW_SF 0x0040
#define FSW_C0 0x0100
#define FSW_C1 0x0200
#define FSW_C2 0x0400
#define FSW_C3 0x4000
#define FSW_CC (FSW_C0 | FSW_C1 | FSW_C2 | FSW_C3)

/* The host x87 control word: exceptions masked, the guest's rounding
 * control, and 64-bit precision unless `pc` asks for the guest's. */
static void host_fcw(uint16_t cw)
{
	__asm__ volatile("fldcw %0" : : "m"(cw) : "memory");
}

static uint16_t host_fsw(void)
{
	uint16_t sw;

	__asm__ volatile("fnstsw %0" : "=m"(sw) : : "memory");
	return sw;
}

static uint16_t fcw(struct bt_cpu *c);

static void host_mode(struct bt_cpu *c, bool pc)
{
	uint16_t cw = (uint16_t)(fcw(c) | 0x3F);

	host_fcw(pc ? cw : (uint16_t)(cw | 0x300));
}

void bt_fpu_host_reset(void)
{
	__asm__ volatile("fnclex" : : : "memory");
	host_fcw(0x037F);
	__builtin_ia32_ldmxcsr(0x1F80);
}

static uint16_t fcw(struct bt_cpu *c)
{
	return (uint16_t)(c->s.xsave[0] | c->s.xsave[1] << 8);
}

static uint16_t fsw(struct bt_cpu *c)
{
	return (uint16_t)(c->s.xsave[2] | c->s.xsave[3] << 8);
}

static void set_fsw(struct bt_cpu *c, uint16_t v)
{
	c->s.xsave[2] = v & 0xFF;
	c->s.xsave[3] = v >> 8;
}

static unsigned top(struct bt_cpu *c)
{
	return (fsw(c) >> 11) & 7;
}

static void set_top(struct bt_cpu *c, unsigned t)
{
	set_fsw(c, (uint16_t)((fsw(c) & ~0x3800) | (t & 7) << 11));
}

static bool tag_valid(struct bt_cpu *c, unsigned i)
{
	return c->s.xsave[4] & (1u << ((top(c) + i) & 7));
}

static void set_tag(struct bt_cpu *c, unsigned i, bool valid)
{
	unsigned p = (top(c) + i) & 7;

	if (valid)
		c->s.xsave[4] |= 1u << p;
	else
		c->s.xsave[4] &= ~(1u << p);
}

static long double st_raw(struct bt_cpu *c, unsigned i)
{
	long double v = 0;

	memcpy(&v, c->s.xsave + 32 + 16 * i, 10);
	return v;
}

static void flag(struct bt_cpu *c, uint16_t bits)
{
	set_fsw(c, fsw(c) | bits | ((bits & 0x3F & ~fcw(c)) ? 0x8080 : 0));
}

static long double st(struct bt_cpu *c, unsigned i)
{
	if (!tag_valid(c, i)) {
		flag(c, FSW_IE | FSW_SF);
		set_fsw(c, fsw(c) & ~FSW_C1);
		return -NAN; /* the indefinite QNaN */
	}
	return st_raw(c, i);
}

static void set_st(struct bt_cpu *c, unsigned i, long double v)
{
	memset(c->s.xsave + 32 + 16 * i, 0, 16);
	memcpy(c->s.xsave + 32 + 16 * i, &v, 10);
	set_tag(c, i, true);
}

static void push(struct bt_cpu *c, long double v)
{
	if (tag_valid(c, 7)) {
		flag(c, FSW_IE | FSW_SF | FSW_C1);
		v = -NAN;
	}
	memmove(c->s.xsave + 48, c->s.xsave + 32, 7 * 16);
	set_top(c, top(c) - 1);
	set_st(c, 0, v);
}

static void pop(struct bt_cpu *c)
{
	set_tag(c, 0, false);
	memmove(c->s.xsave + 32, c->s.xsave + 48, 7 * 16);
	memset(c->s.xsave + 32 + 7 * 16, 0, 16);
	set_top(c, top(c) + 1);
}

static long double round_fcw(struct bt_cpu *c, long double v)
{
	switch ((fcw(c) >> 10) & 3) {
	case 0: return nearbyintl(v);
	case 1: return floorl(v);
	case 2: return ceill(v);
	default: return truncl(v);
	}
}

static void fninit(struct bt_cpu *c)
{
	c->s.xsave[0] = 0x7F;
	c->s.xsave[1] = 0x03;
	set_fsw(c, 0);
	c->s.xsave[4] = 0;
	memset(c->s.xsave + 6, 0, 18); /* FOP FIP FDP */
}

static void compare(struct bt_cpu *c, long double a, long double b, bool eflags)
{
	uint16_t cc;
	uint32_t f;

	if (isnan(a) || isnan(b)) {
		cc = FSW_C0 | FSW_C2 | FSW_C3;
		f = BT_ZF | BT_PF | BT_CF;
	} else if (a < b) {
		cc = FSW_C0;
		f = BT_CF;
	} else if (a == b) {
		cc = FSW_C3;
		f = BT_ZF;
	} else {
		cc = 0;
		f = 0;
	}
	if (eflags) {
		bt_set_arith(c, f);
		set_fsw(c, fsw(c) & ~FSW_C1);
	} else {
		set_fsw(c, (uint16_t)((fsw(c) & ~FSW_CC) | cc));
	}
}

/* The operations precision control applies to run on the host x87 under
 * the guest's PC; volatile keeps the compiler from moving them across the
 * control word loads. */
static long double arith(struct bt_cpu *c, int op, long double a, long double b)
{
	volatile long double x = a, y = b, r;

	host_mode(c, true);
	switch (op) {
	case 0: r = x + y; break;
	case 1: r = x * y; break;
	case 4: r = x - y; break;
	case 5: r = y - x; break;
	case 6: r = x / y; break; /* ZE/IE come from the host's flags */
	default: r = y / x; break;
	}
	host_mode(c, false);
	return r;
}

static long double x87_sqrt(struct bt_cpu *c, long double a)
{
	volatile long double x = a, r;

	host_mode(c, true);
	r = x;
	/* the instruction itself: glibc's sqrtl raises IE in SSE for a
	 * negative operand */
	__asm__ volatile("fsqrt" : "+t"(r));
	host_mode(c, false);
	return r;
}

/* ES and B follow the unmasked flags after FLDCW/FLDENV/FRSTOR: a
 * pending exception unmasked by a new control word is raised at the next
 * waiting instruction (SDM vol. 2 FLDCW). */
static void update_es(struct bt_cpu *c)
{
	uint16_t sw = fsw(c) & ~0x8080;

	if (sw & 0x3F & ~fcw(c))
		sw |= 0x8080;
	set_fsw(c, sw);
}

static uint64_t mem_addr(struct bt_cpu *c)
{
	return bt_opnd_addr(c, &c->in->opnd[0]);
}

static int mem_seg(struct bt_cpu *c)
{
	return c->in->opnd[0].seg;
}

static long double load_real(struct bt_cpu *c, unsigned size)
{
	uint64_t a = mem_addr(c);

	if (size == 4) {
		uint32_t v = (uint32_t)bt_read(c, mem_seg(c), a, 4);
		float f;
		memcpy(&f, &v, 4);
		return f;
	}
	if (size == 8) {
		uint64_t v = bt_read(c, mem_seg(c), a, 8);
		double d;
		memcpy(&d, &v, 8);
		return d;
	}
	uint8_t b[16] = { 0 };
	long double x;
	uint64_t lin = bt_seg_lin(c, mem_seg(c), a, 10, false);
	bt_align_check(c, lin, 8); /* extended real: 8 (SDM 3A table 6-7) */
	bt_lin_read_buf(c, lin, b, 10, c->cpl);
	memcpy(&x, b, 16);
	return x;
}

static void store_real(struct bt_cpu *c, long double v, unsigned size)
{
	uint64_t a = mem_addr(c);

	if (size == 4) {
		float f = (float)v;
		uint32_t u;
		memcpy(&u, &f, 4);
		bt_write(c, mem_seg(c), a, 4, u);
	} else if (size == 8) {
		double d = (double)v;
		uint64_t u;
		memcpy(&u, &d, 8);
		bt_write(c, mem_seg(c), a, 8, u);
	} else {
		uint8_t b[16] = { 0 };
		uint64_t lin = bt_seg_lin(c, mem_seg(c), a, 10, true);
		bt_align_check(c, lin, 8);
		memcpy(b, &v, 10);
		bt_lin_write_buf(c, lin, b, 10, c->cpl);
	}
}

static long double load_int(struct bt_cpu *c, unsigned size)
{
	return (long double)bt_sext(bt_read(c, mem_seg(c), mem_addr(c), size), size);
}

static void store_int(struct bt_cpu *c, long double v, unsigned size, bool chop)
{
	long double r = chop ? truncl(v) : round_fcw(c, v);
	long double lim = ldexpl(1.0L, 8 * (int)size - 1);
	int64_t i;

	if (isnan(r) || r >= lim || r < -lim) {
		flag(c, FSW_IE);
		i = (int64_t)(1ull << (8 * size - 1)); /* integer indefinite */
	} else {
		if (r != v)
			flag(c, 0x20); /* PE */
		i = (int64_t)r;
	}
	bt_write(c, mem_seg(c), mem_addr(c), size, (uint64_t)i);
}

/* FXAM classes in C3 C2 C0 */
static void fxam(struct bt_cpu *c)
{
	long double v = st_raw(c, 0);
	uint16_t cc;

	if (!tag_valid(c, 0))
		cc = FSW_C3 | FSW_C0;
	else if (isnan(v))
		cc = FSW_C0;
	else if (isinf(v))
		cc = FSW_C2 | FSW_C0;
	else if (v == 0)
		cc = FSW_C3;
	else if (fpclassify(v) == FP_SUBNORMAL)
		cc = FSW_C3 | FSW_C2;
	else
		cc = FSW_C2;
	if (signbit(v))
		cc |= FSW_C1;
	set_fsw(c, (uint16_t)((fsw(c) & ~FSW_CC) | cc));
}

static uint16_t full_tags(struct bt_cpu *c)
{
	uint16_t t = 0;

	for (unsigned p = 0; p < 8; p++) {
		unsigned i = (p - top(c)) & 7, tag;
		long double v = st_raw(c, i);
		if (!(c->s.xsave[4] & (1u << p)))
			tag = 3;
		else if (v == 0)
			tag = 1;
		else if (isnan(v) || isinf(v) || fpclassify(v) == FP_SUBNORMAL)
			tag = 2;
		else
			tag = 0;
		t |= (uint16_t)(tag << (2 * p));
	}
	return t;
}

/* FNSTENV/FLDENV image (SDM vol. 1 8.1.10, protected-mode formats). */
static unsigned env_size(struct bt_cpu *c)
{
	return c->in->opsize == 2 ? 14 : 28;
}

static uint32_t env_word(struct bt_cpu *c, unsigned off, unsigned w)
{
	uint32_t v = 0;

	if (c->mode == BT_MODE64 && (off == 12 || off == 20))
		return 0; /* 64-bit pointers: no selectors in the image */
	memcpy(&v, c->s.xsave + off, w);
	return v;
}

static void store_env(struct bt_cpu *c, uint64_t a)
{
	unsigned w = c->in->opsize == 2 ? 2 : 4;
	int seg = mem_seg(c);
	uint64_t am = bt_mask(c->in->addrsize);

	bt_check_write(c, seg, a, env_size(c));
	bt_write(c, seg, a, w, fcw(c) | (w == 4 ? 0xFFFF0000u : 0));
	bt_write(c, seg, (a + w) & am, w, fsw(c) | (w == 4 ? 0xFFFF0000u : 0));
	bt_write(c, seg, (a + 2 * w) & am, w, full_tags(c) | (w == 4 ? 0xFFFF0000u : 0));
	/* protected-mode layout: FIP, FCS with FOP above it, FDP, FDS */
	bt_write(c, seg, (a + 3 * w) & am, w, env_word(c, 8, w));
	bt_write(c, seg, (a + 4 * w) & am, w, env_word(c, 12, 2) |
		 (w == 4 ? env_word(c, 6, 2) << 16 : 0));
	bt_write(c, seg, (a + 5 * w) & am, w, env_word(c, 16, w));
	bt_write(c, seg, (a + 6 * w) & am, w, env_word(c, 20, 2));
}

static void load_env(struct bt_cpu *c, uint64_t a)
{
	unsigned w = c->in->opsize == 2 ? 2 : 4;
	int seg = mem_seg(c);
	uint64_t am = bt_mask(c->in->addrsize);
	uint16_t cw = (uint16_t)bt_read(c, seg, a, 2);
	uint16_t sw = (uint16_t)bt_read(c, seg, (a + w) & am, 2);
	uint16_t tw = (uint16_t)bt_read(c, seg, (a + 2 * w) & am, 2);

	c->s.xsave[0] = cw & 0xFF;
	c->s.xsave[1] = cw >> 8;
	set_fsw(c, sw);
	c->s.xsave[4] = 0;
	for (unsigned p = 0; p < 8; p++)
		if (((tw >> (2 * p)) & 3) != 3)
			c->s.xsave[4] |= 1u << p;
	update_es(c);
}

static void fsave(struct bt_cpu *c, bool restore)
{
	uint64_t a = mem_addr(c), am = bt_mask(c->in->addrsize);
	unsigned env = env_size(c);
	uint8_t b[16];

	if (restore) {
		for (unsigned i = 0; i < 8; i++) {
			memset(b, 0, sizeof(b));
			bt_lin_read_buf(c, bt_seg_lin(c, mem_seg(c), (a + env + 10 * i) & am,
						      10, false), b, 10, c->cpl);
			memcpy(c->s.xsave + 32 + 16 * i, b, 16);
		}
		load_env(c, a);
		return;
	}
	bt_check_write(c, mem_seg(c), a, env + 80);
	store_env(c, a);
	for (unsigned i = 0; i < 8; i++)
		bt_lin_write_buf(c, bt_seg_lin(c, mem_seg(c), (a + env + 10 * i) & am, 10,
					       true), c->s.xsave + 32 + 16 * i, 10, c->cpl);
	fninit(c);
}

static void exec_d9_reg(struct bt_cpu *c, unsigned modrm)
{
	static const long double consts[] = {
		1.0L, 3.32192809488736234787L, 1.44269504088896340736L,
		3.14159265358979323846L, 0.30102999566398119521L,
		0.69314718055994530942L, 0.0L,
	};
	long double a, b;
	unsigned i = modrm & 7;

	if (modrm >= 0xC0 && modrm < 0xC8) {
		push(c, st(c, i));
		return;
	}
	if (modrm >= 0xC8 && modrm < 0xD0) {
		a = st(c, 0);
		b = st(c, i);
		set_st(c, 0, b);
		set_st(c, i, a);
		return;
	}
	if (modrm >= 0xE8 && modrm <= 0xEE) {
		push(c, consts[modrm - 0xE8]);
		return;
	}
	switch (modrm) {
	case 0xD0: return; /* FNOP */
	case 0xE0: set_st(c, 0, -st(c, 0)); return;
	case 0xE1: set_st(c, 0, fabsl(st(c, 0))); return;
	case 0xE4: compare(c, st(c, 0), 0.0L, false); return;
	case 0xE5: fxam(c); return;
	case 0xF0: set_st(c, 0, exp2l(st(c, 0)) - 1); return;
	case 0xF1: a = st(c, 1) * log2l(st(c, 0)); pop(c); set_st(c, 0, a); return;
	case 0xF2: set_st(c, 0, tanl(st(c, 0))); push(c, 1.0L); return;
	case 0xF3: a = atan2l(st(c, 1), st(c, 0)); pop(c); set_st(c, 0, a); return;
	case 0xF4: {
		int e;
		a = st(c, 0);
		b = frexpl(a, &e);
		set_st(c, 0, (long double)(e - 1));
		push(c, b * 2);
		return;
	}
	case 0xF5: case 0xF8: {
		long double q;
		a = st(c, 0);
		b = st(c, 1);
		q = modrm == 0xF5 ? remainderl(a, b) : fmodl(a, b);
		set_st(c, 0, q);
		{
			long double n = truncl((a - q) / b);
			uint64_t qi = (uint64_t)fabsl(n);
			uint16_t cc = 0;
			if (qi & 1) cc |= FSW_C1;
			if (qi & 2) cc |= FSW_C3;
			if (qi & 4) cc |= FSW_C0;
			set_fsw(c, (uint16_t)((fsw(c) & ~FSW_CC) | cc));
		}
		return;
	}
	case 0xF6: set_top(c, top(c) - 1); /* FDECSTP: rotate slots */
		memmove(c->s.xsave + 48, c->s.xsave + 32, 7 * 16);
		return;
	case 0xF7: set_top(c, top(c) + 1);
		memmove(c->s.xsave + 32, c->s.xsave + 48, 7 * 16);
		return;
	case 0xF9: a = st(c, 1) * log2l(st(c, 0) + 1); pop(c); set_st(c, 0, a); return;
	case 0xFA: set_st(c, 0, x87_sqrt(c, st(c, 0))); return;
	case 0xFB: a = st(c, 0); set_st(c, 0, sinl(a)); push(c, cosl(a)); return;
	case 0xFC: set_st(c, 0, round_fcw(c, st(c, 0))); return;
	case 0xFD: set_st(c, 0, ldexpl(st(c, 0), (int)truncl(st(c, 1)))); return;
	case 0xFE: set_st(c, 0, sinl(st(c, 0))); return;
	case 0xFF: set_st(c, 0, cosl(st(c, 0))); return;
	default: bt_raise_noerr(c, BT_UD);
	}
}

static void exec_mem(struct bt_cpu *c, unsigned esc, unsigned reg)
{
	long double v;

	if (!(esc & 1)) { /* D8 DA DC DE: arithmetic with a memory operand */
		if (esc == 0)
			v = load_real(c, 4);
		else if (esc == 2)
			v = load_int(c, 4);
		else if (esc == 4)
			v = load_real(c, 8);
		else
			v = load_int(c, 2);
		if (reg == 2 || reg == 3) {
			compare(c, st(c, 0), v, false);
			if (reg == 3)
				pop(c);
			return;
		}
		set_st(c, 0, arith(c, (int)reg, st(c, 0), v));
		return;
	}
	switch (esc << 3 | reg) {
	case 1 << 3 | 0: push(c, load_real(c, 4)); return;
	case 1 << 3 | 2: store_real(c, st(c, 0), 4); return;
	case 1 << 3 | 3: store_real(c, st(c, 0), 4); pop(c); return;
	case 1 << 3 | 4: load_env(c, mem_addr(c)); return;
	case 1 << 3 | 5: {
		uint16_t cw = (uint16_t)bt_read(c, mem_seg(c), mem_addr(c), 2);
		c->s.xsave[0] = cw & 0xFF;
		c->s.xsave[1] = cw >> 8;
		update_es(c);
		return;
	}
	case 1 << 3 | 6: store_env(c, mem_addr(c)); return;
	case 1 << 3 | 7: bt_write(c, mem_seg(c), mem_addr(c), 2, fcw(c)); return;
	case 3 << 3 | 0: push(c, load_int(c, 4)); return;
	case 3 << 3 | 2: store_int(c, st(c, 0), 4, false); return;
	case 3 << 3 | 3: store_int(c, st(c, 0), 4, false); pop(c); return;
	case 3 << 3 | 5: push(c, load_real(c, 10)); return;
	case 3 << 3 | 7: store_real(c, st(c, 0), 10); pop(c); return;
	case 5 << 3 | 0: push(c, load_real(c, 8)); return;
	case 5 << 3 | 2: store_real(c, st(c, 0), 8); return;
	case 5 << 3 | 3: store_real(c, st(c, 0), 8); pop(c); return;
	case 5 << 3 | 4: fsave(c, true); return;
	case 5 << 3 | 6: fsave(c, false); return;
	case 5 << 3 | 7: bt_write(c, mem_seg(c), mem_addr(c), 2, fsw(c)); return;
	case 7 << 3 | 0: push(c, load_int(c, 2)); return;
	case 7 << 3 | 2: store_int(c, st(c, 0), 2, false); return;
	case 7 << 3 | 3: store_int(c, st(c, 0), 2, false); pop(c); return;
	case 7 << 3 | 5: push(c, load_int(c, 8)); return;
	case 7 << 3 | 7: store_int(c, st(c, 0), 8, false); pop(c); return;
	default:
		/* FISTTP (SSE3), FBLD/FBSTP (BCD): not implemented */
		bt_raise_noerr(c, BT_UD);
	}
}

static bool fcmov_cond(struct bt_cpu *c, unsigned esc, unsigned reg)
{
	static const uint8_t cc[4] = { 2, 4, 6, 10 }; /* B E BE U as Jcc codes */
	bool t = bt_cond(c, cc[reg & 3]);

	return esc == 3 ? !t : t;
}

static void exec_reg(struct bt_cpu *c, unsigned esc, unsigned modrm)
{
	unsigned reg = modrm >> 3 & 7, i = modrm & 7;

	switch (esc) {
	case 0:
		if (reg == 2 || reg == 3) {
			compare(c, st(c, 0), st(c, i), false);
			if (reg == 3)
				pop(c);
			return;
		}
		set_st(c, 0, arith(c, (int)reg, st(c, 0), st(c, i)));
		return;
	case 1:
		exec_d9_reg(c, modrm);
		return;
	case 2:
		if (modrm == 0xE9) { /* FUCOMPP */
			compare(c, st(c, 0), st(c, 1), false);
			pop(c);
			pop(c);
			return;
		}
		if (reg < 4) {
			if (fcmov_cond(c, esc, reg))
				set_st(c, 0, st(c, i));
			return;
		}
		break;
	case 3:
		if (reg < 4) {
			if (fcmov_cond(c, esc, reg))
				set_st(c, 0, st(c, i));
			return;
		}
		if (modrm == 0xE2) { /* FNCLEX */
			set_fsw(c, fsw(c) & 0x7F00);
			return;
		}
		if (modrm == 0xE3) {
			fninit(c);
			return;
		}
		if (modrm == 0xE0 || modrm == 0xE1 || modrm == 0xE4)
			return; /* FENI/FDISI/FSETPM: no-ops */
		if (reg == 5 || reg == 6) {
			compare(c, st(c, 0), st(c, i), true);
			return;
		}
		break;
	case 4: {
		/* DC C0+i: ST(i) = ST(i) op ST(0), SUB/SUBR and DIV/DIVR swap */
		static const int swap[8] = { 0, 1, 2, 3, 5, 4, 7, 6 };
		if (reg == 2 || reg == 3)
			break;
		set_st(c, i, arith(c, swap[reg], st(c, i), st(c, 0)));
		return;
	}
	case 5:
		if (reg == 0) { /* FFREE */
			set_tag(c, i, false);
			return;
		}
		if (reg == 2 || reg == 3) {
			set_st(c, i, st(c, 0));
			if (reg == 3)
				pop(c);
			return;
		}
		if (reg == 4 || reg == 5) {
			compare(c, st(c, 0), st(c, i), false);
			if (reg == 5)
				pop(c);
			return;
		}
		break;
	case 6: {
		static const int swap[8] = { 0, 1, 2, 3, 5, 4, 7, 6 };
		if (modrm == 0xD9) { /* FCOMPP */
			compare(c, st(c, 0), st(c, 1), false);
			pop(c);
			pop(c);
			return;
		}
		if (reg == 2 || reg == 3)
			break;
		set_st(c, i, arith(c, swap[reg], st(c, i), st(c, 0)));
		pop(c);
		return;
	}
	default: /* 7 */
		if (modrm == 0xE0) {
			bt_set_reg(c, MODVM_RAX, 2, fsw(c));
			return;
		}
		if (reg == 5 || reg == 6) {
			compare(c, st(c, 0), st(c, i), true);
			pop(c);
			return;
		}
		if (reg == 0) { /* FFREEP */
			set_tag(c, i, false);
			pop(c);
			return;
		}
		break;
	}
	bt_raise_noerr(c, BT_UD);
}

/* The non-waiting forms (FNINIT FNCLEX FNSTCW FNSTSW FNSTENV FNSAVE and
 * the 287 no-ops) do not check for a pending unmasked exception (SDM vol.
 * 1 8.3.12). */
static bool no_wait(unsigned esc, unsigned modrm)
{
	unsigned reg = modrm >> 3 & 7;

	if (modrm >= 0xC0)
		return (esc == 3 && modrm >= 0xE0 && modrm <= 0xE4) ||
		       (esc == 7 && modrm == 0xE0);
	return (esc == 1 && (reg == 6 || reg == 7)) ||
	       (esc == 5 && (reg == 6 || reg == 7));
}

/* FLDENV, FLDCW and FRSTOR load the state rather than compute. */
static bool loads_state(unsigned esc, unsigned modrm)
{
	unsigned reg = modrm >> 3 & 7;

	return modrm < 0xC0 && ((esc == 1 && (reg == 4 || reg == 5)) ||
				(esc == 5 && reg == 4));
}

/* The last non-control instruction's opcode, code and data pointers (SDM
 * vol. 1 8.1.8-8.1.9), in the FXSAVE image: FOP at 6, then FIP/FCS and
 * FDP/FDS in the 32-bit format, or 64-bit FIP and FDP in 64-bit mode. */
static void record_pointers(struct bt_cpu *c, unsigned esc, unsigned modrm)
{
	uint16_t fop = (uint16_t)((esc << 8 | modrm) & 0x7FF);
	uint64_t fip = c->insn_rip, fdp = 0;
	uint16_t fds = 0;

	if (modrm < 0xC0) {
		fdp = mem_addr(c);
		fds = c->s.seg[mem_seg(c)].selector;
	}
	memcpy(c->s.xsave + 6, &fop, 2);
	if (c->mode == BT_MODE64) {
		memcpy(c->s.xsave + 8, &fip, 8);
		memcpy(c->s.xsave + 16, &fdp, 8);
		return;
	}
	uint32_t ip32 = (uint32_t)fip, dp32 = (uint32_t)fdp;
	uint16_t fcs = c->s.seg[BT_CS].selector;
	memcpy(c->s.xsave + 8, &ip32, 4);
	memcpy(c->s.xsave + 12, &fcs, 2);
	memset(c->s.xsave + 14, 0, 2);
	memcpy(c->s.xsave + 16, &dp32, 4);
	memcpy(c->s.xsave + 20, &fds, 2);
	memset(c->s.xsave + 22, 0, 2);
}

/* A pending unmasked exception (FSW.ES) is taken as #MF by the next
 * waiting instruction, before it executes, when CR0.NE=1. */
static void check_mf(struct bt_cpu *c)
{
	if ((fsw(c) & 0x80) && (c->s.cr0 & CR0_NE))
		bt_raise_noerr(c, BT_MF);
}

void bt_exec_x87(struct bt_cpu *c)
{
	unsigned esc, modrm;
	uint16_t sw;
	uint8_t undo[160];

	if (c->in->opcode == 0x9B) { /* FWAIT */
		if ((c->s.cr0 & (CR0_MP | CR0_TS)) == (CR0_MP | CR0_TS))
			bt_raise_noerr(c, BT_NM);
		check_mf(c);
		return;
	}
	if (c->s.cr0 & (CR0_EM | CR0_TS))
		bt_raise_noerr(c, BT_NM);
	esc = c->in->opcode & 7;
	modrm = c->in->modrm;
	if (!no_wait(esc, modrm))
		check_mf(c);
	if (!no_wait(esc, modrm) && !loads_state(esc, modrm))
		record_pointers(c, esc, modrm);
	/* The host's x87 computes with the guest's rounding control, its
	 * sticky flags are collected afterwards. A fault inside leaves the
	 * host mode changed: handle_fault resets it (bt_fpu_host_reset). */
	memcpy(undo, c->s.xsave, sizeof(undo));
	host_mode(c, false);
	__asm__ volatile("fnclex" : : : "memory");
	if (modrm < 0xC0)
		exec_mem(c, esc, modrm >> 3 & 7);
	else
		exec_reg(c, esc, modrm);
	sw = host_fsw() & 0x3F;
	flag(c, sw);
	bt_fpu_host_reset();
	sw |= fsw(c) & ~(undo[2] | undo[3] << 8) & 0x3F; /* raised by this one */
	/* An unmasked invalid-operation (incl. stack fault), denormal or
	 * divide-by-zero leaves the register stack and TOP unchanged (SDM
	 * vol. 1 8.5.1-8.5.3); only the status flags record it. (A store to
	 * memory has been done already: not modelled.) */
	if ((sw & 0x07 & ~fcw(c)) && !loads_state(esc, modrm)) {
		sw = (uint16_t)((fsw(c) & ~0x3800) | (undo[3] << 8 & 0x3800));
		memcpy(c->s.xsave + 4, undo + 4, 1);
		memcpy(c->s.xsave + 32, undo + 32, 128);
		set_fsw(c, sw);
	}
}

/* An FXSAVE or XSAVE image of an AMD CPU holds FOP, FIP/FCS and FDP/FDS
 * only while an unmasked exception is pending (FSW.ES), zeros otherwise
 * (APM, FXSAVE; XSAVE does the same on Zen hosts); Intel's always holds
 * them. FNSAVE/FNSTENV and the state itself keep the pointers. */
void bt_fx_hide_pointers(const struct bt_cpu *c, uint8_t *img)
{
	if (c->vendor_amd && !(img[2] & 0x80))
		memset(img + 6, 0, 18);
}

/* FXSAVE/FXRSTOR: the legacy region of the canonical XSAVE image is the
 * FXSAVE format already (SDM vol. 2 FXSAVE table 3-53). */
void bt_fxsave(struct bt_cpu *c, int seg, uint64_t off)
{
	uint8_t img[512];
	unsigned nxmm = c->mode == BT_MODE64 ? 16 : 8;

	if (off & 15)
		bt_raise(c, BT_GP, 0);
	memcpy(img, c->s.xsave, 512);
	bt_fx_hide_pointers(c, img);
	img[28] = 0xFF; /* MXCSR_MASK: all MXCSR bits 0-15 writable */
	img[29] = 0xFF;
	img[30] = img[31] = 0;
	memset(img + 160 + 16 * nxmm, 0, 16 * (16 - nxmm));
	bt_lin_write_buf(c, bt_seg_lin(c, seg, off, 512, true), img,
			 160 + 16 * nxmm, c->cpl);
}

void bt_fxrstor(struct bt_cpu *c, int seg, uint64_t off)
{
	uint8_t img[512];
	unsigned nxmm = c->mode == BT_MODE64 ? 16 : 8;
	uint32_t mx;

	if (off & 15)
		bt_raise(c, BT_GP, 0);
	bt_lin_read_buf(c, bt_seg_lin(c, seg, off, 512, false), img,
			160 + 16 * nxmm, c->cpl);
	memcpy(&mx, img + 24, 4);
	if (mx & ~0xFFFFu)
		bt_raise(c, BT_GP, 0);
	memcpy(c->s.xsave, img, 160 + 16 * nxmm);
}
