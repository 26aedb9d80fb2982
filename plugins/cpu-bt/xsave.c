/* cpu-bt: the XSAVE feature set for the x87 (component 0), SSE
 * (component 1) and PKRU (component 9) state: XGETBV, XSETBV, XSAVE,
 * XSAVEOPT and the standard form of XRSTOR (SDM vol. 1 ch. 13, vol. 2
 * instruction pages). x87 and SSE live in the legacy region (576 bytes
 * with the header), PKRU at 0xA80 (8 bytes: 0xA88 in all).
 */
#include <string.h>

#include "cpu.h"

#define XS_MXCSR 24
#define XS_ST 32
#define XS_XMM 160
#define XS_HDR 512
#define XS_SIZE 576
#define XS_PKRU_SIZE 8
#define XCR0_X87 1ull
#define XCR0_SSE 2ull
#define XCR0_PKRU (1ull << 9)

uint32_t bt_xsave_size(uint64_t xcr0)
{
	return xcr0 & XCR0_PKRU ? BT_XS_PKRU + XS_PKRU_SIZE : XS_SIZE;
}

static const struct bt_operand *op0(struct bt_cpu *c) { return &c->in->opnd[0]; }

static uint64_t edx_eax(const struct bt_cpu *c)
{
	return (uint64_t)(uint32_t)c->s.gpr[MODVM_RDX] << 32 |
	       (uint32_t)c->s.gpr[MODVM_RAX];
}

static bool all_zero(const uint8_t *p, unsigned n)
{
	while (n--)
		if (*p++)
			return false;
	return true;
}

static unsigned nxmm(const struct bt_cpu *c)
{
	return c->mode == BT_MODE64 ? 16 : 8;
}

/* XINUSE (SDM vol. 1 13.6): 0 only for a component in its initial
 * configuration. x87: FCW 037FH, FSW/FTW/FOP/FIP/FDP 0, ST0-7 0; SSE:
 * XMM registers 0 (MXCSR is not tracked); PKRU: 0. Computing it from the
 * values is allowed: XINUSE[i] = 1 for a component in its initial state
 * is legal. */
static uint64_t xinuse(const struct bt_cpu *c)
{
	const uint8_t *x = c->s.xsave;
	uint64_t u = 0;

	if (x[0] != 0x7F || x[1] != 0x03 || !all_zero(x + 2, 22) ||
	    !all_zero(x + XS_ST, 128))
		u |= XCR0_X87;
	if (!all_zero(x + XS_XMM, 16 * nxmm(c)))
		u |= XCR0_SSE;
	if (bt_pkru(c))
		u |= XCR0_PKRU;
	return u;
}

static void x87_init(struct bt_cpu *c)
{
	memset(c->s.xsave, 0, 24);
	c->s.xsave[0] = 0x7F;
	c->s.xsave[1] = 0x03;
	memset(c->s.xsave + XS_ST, 0, 128);
}

/* #UD without CR4.OSXSAVE (which needs the model's XSAVE) or with LOCK. */
static void need_osxsave(struct bt_cpu *c)
{
	if (!(c->s.cr4 & CR4_OSXSAVE) || (c->in->prefix & BT_PFX_LOCK))
		bt_raise_noerr(c, BT_UD);
}

static void exec_xgetbv(struct bt_cpu *c)
{
	need_osxsave(c);
	/* only XCR0 exists: ECX=1 (XINUSE) needs CPUID.(0xD,1):EAX[2] */
	if ((uint32_t)c->s.gpr[MODVM_RCX] != 0)
		bt_raise(c, BT_GP, 0);
	bt_set_reg(c, MODVM_RAX, 4, (uint32_t)c->s.xcr0);
	bt_set_reg(c, MODVM_RDX, 4, c->s.xcr0 >> 32);
}

static void exec_xsetbv(struct bt_cpu *c)
{
	uint64_t v = edx_eax(c);

	need_osxsave(c);
	if (c->cpl != 0 || (uint32_t)c->s.gpr[MODVM_RCX] != 0)
		bt_raise(c, BT_GP, 0);
	/* bit 0 is always 1; nothing outside CPUID.(0xD,0):EDX:EAX */
	if (!(v & XCR0_X87) || (v & ~c->xcr0_ok))
		bt_raise(c, BT_GP, 0);
	c->s.xcr0 = v;
}

/* The checks every XSAVE-area instruction shares; returns the offset. */
static uint64_t area_offset(struct bt_cpu *c)
{
	uint64_t off;

	need_osxsave(c);
	if (op0(c)->type != BT_OPND_MEM || (c->in->prefix & (BT_PFX_REP |
	    BT_PFX_REPNE | BT_PFX_OPSZ)))
		bt_raise_noerr(c, BT_UD);
	if (c->in->op == BT_OP_XSAVEOPT && !c->has_xsaveopt)
		bt_raise_noerr(c, BT_UD);
	if (c->s.cr0 & CR0_TS)
		bt_raise_noerr(c, BT_NM);
	off = bt_opnd_addr(c, op0(c));
	if (off & 63)
		bt_raise(c, BT_GP, 0);
	return off;
}

/* XSAVE/XSAVEOPT (SDM vol. 1 13.7, 13.9): for each requested component
 * write its state and XSTATE_BV[i] = XINUSE[i]; other XSTATE_BV bits and
 * the rest of the header stay. XSAVEOPT uses the init optimisation: a
 * component in its initial configuration is not written. The x87 image
 * is the canonical one (as FXSAVE's: see bt_fxsave and
 * bt_fx_hide_pointers). */
static void exec_xsave(struct bt_cpu *c, bool opt)
{
	int seg = op0(c)->seg;
	uint64_t off = area_offset(c), rfbm = c->s.xcr0 & edx_eax(c), lin, bv;
	uint64_t inuse = xinuse(c), put = opt ? rfbm & inuse : rfbm;
	const uint8_t *x = c->s.xsave;
	uint8_t mx[8], fx[XS_MXCSR];

	/* no fault after a store: the legacy region and header are always
	 * written, PKRU's bytes when requested */
	bt_check_write(c, seg, off, XS_SIZE);
	if (put & XCR0_PKRU)
		bt_check_write(c, seg, off + BT_XS_PKRU, XS_PKRU_SIZE);
	lin = bt_seg_lin(c, seg, off, XS_SIZE, true);
	bv = bt_lin_read(c, lin + XS_HDR, 8, c->cpl);
	if (put & XCR0_X87) {
		memcpy(fx, x, XS_MXCSR);
		bt_fx_hide_pointers(c, fx);
		bt_lin_write_buf(c, lin, fx, XS_MXCSR, c->cpl);
		bt_lin_write_buf(c, lin + XS_ST, x + XS_ST, 128, c->cpl);
	}
	if (rfbm & XCR0_SSE) {
		/* MXCSR and MXCSR_MASK whenever RFBM[1] (or [2]) is set */
		memcpy(mx, x + XS_MXCSR, 4);
		mx[4] = mx[5] = 0xFF;
		mx[6] = mx[7] = 0;
		bt_lin_write_buf(c, lin + XS_MXCSR, mx, 8, c->cpl);
	}
	if (put & XCR0_SSE)
		bt_lin_write_buf(c, lin + XS_XMM, x + XS_XMM, 16 * nxmm(c), c->cpl);
	if (put & XCR0_PKRU) {
		/* PKRU, then 4 reserved bytes written as 0 (as hardware does) */
		uint64_t pkru = bt_pkru(c);
		uint64_t plin = bt_seg_lin(c, seg, off + BT_XS_PKRU, XS_PKRU_SIZE, true);
		bt_lin_write(c, plin, XS_PKRU_SIZE, pkru, c->cpl);
	}
	bv = (bv & ~rfbm) | (inuse & rfbm);
	bt_lin_write(c, lin + XS_HDR, 8, bv, c->cpl);
}

/* XRSTOR, standard form (SDM vol. 1 13.8.1): #GP if XSTATE_BV has a bit
 * outside XCR0 or header bytes 8-23 are not 0 (XCOMP_BV[63] = 1 asks for
 * the compacted form, which this model has no XSAVEC for), or MXCSR has
 * reserved bits. Then each requested component is loaded if its
 * XSTATE_BV bit is 1, else initialised; MXCSR is loaded whenever RFBM[1]
 * is 1, whatever XSTATE_BV says. Everything is read and checked first. */
static void exec_xrstor(struct bt_cpu *c)
{
	int seg = op0(c)->seg;
	uint64_t off = area_offset(c), rfbm = c->s.xcr0 & edx_eax(c), lin;
	uint8_t img[XS_SIZE];
	uint64_t bv;
	uint32_t mx, pkru = 0;

	lin = bt_seg_lin(c, seg, off, XS_SIZE, false);
	bt_lin_read_buf(c, lin, img, XS_SIZE, c->cpl);
	memcpy(&bv, img + XS_HDR, 8);
	if ((bv & ~c->s.xcr0) || !all_zero(img + XS_HDR + 8, 16))
		bt_raise(c, BT_GP, 0);
	memcpy(&mx, img + XS_MXCSR, 4);
	if ((rfbm & XCR0_SSE) && (mx & ~0xFFFFu))
		bt_raise(c, BT_GP, 0);
	/* PKRU: from the area if XSTATE_BV[9], else its initial value 0;
	 * read before anything changes */
	if ((rfbm & XCR0_PKRU) && (bv & XCR0_PKRU))
		pkru = (uint32_t)bt_lin_read(c, bt_seg_lin(c, seg, off + BT_XS_PKRU,
					     XS_PKRU_SIZE, false), XS_PKRU_SIZE, c->cpl);
	if (rfbm & XCR0_X87) {
		if (bv & XCR0_X87) {
			memcpy(c->s.xsave, img, XS_MXCSR);
			memcpy(c->s.xsave + XS_ST, img + XS_ST, 128);
		} else {
			x87_init(c);
		}
	}
	if (rfbm & XCR0_SSE) {
		uint8_t *xmm = c->s.xsave + XS_XMM;
		if (bv & XCR0_SSE)
			memcpy(xmm, img + XS_XMM, 16 * nxmm(c));
		else
			memset(xmm, 0, 16 * nxmm(c));
		memcpy(c->s.xsave + XS_MXCSR, &mx, 4);
	}
	if ((rfbm & XCR0_PKRU) && pkru != bt_pkru(c)) {
		bt_set_pkru(c, pkru);
		/* the TLBs hold rights checked against the old PKRU */
		bt_tlb_flush(c, true);
	}
}

void bt_exec_xsave(struct bt_cpu *c)
{
	switch (c->in->op) {
	case BT_OP_XGETBV: exec_xgetbv(c); return;
	case BT_OP_XSETBV: exec_xsetbv(c); return;
	case BT_OP_XSAVE: exec_xsave(c, false); return;
	case BT_OP_XSAVEOPT: exec_xsave(c, true); return;
	case BT_OP_XRSTOR: exec_xrstor(c); return;
	default: bt_raise_noerr(c, BT_UD);
	}
}

/* A state from a snapshot or another engine: a KVM image may leave the
 * legacy region stale for a component whose XSTATE_BV bit is 0 (it is in
 * its initial configuration), and cpu-bt always keeps the values there,
 * so such components are initialised and both bits set. An XCR0 or
 * CR4.OSXSAVE the model cannot have is reset to the power-up values. */
void bt_xsave_import(struct bt_cpu *c)
{
	uint8_t *hdr = c->s.xsave + XS_HDR;
	uint64_t bv;

	memcpy(&bv, hdr, 8);
	if (!(bv & XCR0_X87))
		x87_init(c);
	if (!(bv & XCR0_SSE))
		memset(c->s.xsave + XS_XMM, 0, 256);
	bv |= XCR0_X87 | XCR0_SSE;
	memcpy(hdr, &bv, 8);
	if (!(c->s.xcr0 & XCR0_X87) || (c->s.xcr0 & ~c->xcr0_ok))
		c->s.xcr0 = XCR0_X87;
	if (!c->has_xsave)
		c->s.cr4 &= ~CR4_OSXSAVE;
}
