/* vga-std: a PC display adapter. The VGA register set (sequencer,
 * graphics controller, attribute controller, CRTC, DAC), 80x25 text mode
 * with its cursor, and a linear framebuffer programmed through the Bochs
 * VBE "DISPI" interface (ports 0x1CE/0x1CF, or the MMIO copy at 0x500 of
 * BAR2), on a PCI function with QEMU stdvga's IDs so guests' bochs drivers
 * bind to it. The picture goes out as a <modvm/display.h> surface.
 *
 * modvm backs 0xA0000-0xBFFFF with guest RAM (core/memory.c), so the
 * legacy window is not trapped: text mode reads characters and attributes
 * from RAM where the graphics controller maps them (0xB8000), the font is
 * a console font loaded at start-up (where a BIOS would have put one in
 * plane 2), and planar, 256-colour VGA and banked VBE modes are not shown
 * (docs/devices/display.md). The framebuffer (BAR0) is trapped, so writes
 * to it are tracked exactly, a page at a time.
 */
#include <stdlib.h>
#include <string.h>

#include <modvm/modvm.h>

#include "font.h"

#define VGA_VENDOR 0x1234
#define VGA_DEVICE 0x1111
#ifndef VGA_VRAM_MAX                /* tests/fuzz/fuzz_vga makes it 1M */
#define VGA_VRAM_MAX (64u << 20)  /* the most the vram property allows */
#endif
#define VGA_MMIO_SIZE 0x1000      /* BAR2 */
#define VGA_MMIO_VGA 0x400        /* BAR2: ports 0x3C0-0x3DF */
#define VGA_MMIO_DISPI 0x500      /* BAR2: DISPI registers, 16 bits each */
#define VGA_PORT_BASE 0x3C0
#define VGA_PORTS 0x20
#define PAGE_SHIFT 12

/* Bochs VBE DISPI registers (the Bochs BIOS's vbe.h, QEMU's stdvga). */
#define DISPI_PORT_INDEX 0x1CE    /* 0x1CF (and 0x1D0): data */
#define DISPI_INDEX_ID 0x0
#define DISPI_INDEX_XRES 0x1
#define DISPI_INDEX_YRES 0x2
#define DISPI_INDEX_BPP 0x3
#define DISPI_INDEX_ENABLE 0x4
#define DISPI_INDEX_BANK 0x5
#define DISPI_INDEX_VIRT_WIDTH 0x6
#define DISPI_INDEX_VIRT_HEIGHT 0x7
#define DISPI_INDEX_X_OFFSET 0x8
#define DISPI_INDEX_Y_OFFSET 0x9
#define DISPI_INDEX_VIDEO_MEMORY_64K 0xA
#define DISPI_NREGS 0xB
#define DISPI_ID0 0xB0C0
#define DISPI_ID5 0xB0C5
#define DISPI_ENABLED 0x01
#define DISPI_GETCAPS 0x02
#define DISPI_8BIT_DAC 0x20
#define DISPI_LFB_ENABLED 0x40
#define DISPI_NOCLEARMEM 0x80
#define DISPI_MAX_XRES 4096
#define DISPI_MAX_YRES 4096
#define DISPI_MAX_BPP 32

/* VGA register files */
#define SEQ_N 8
#define GC_N 16
#define ATTR_N 32
#define CRTC_N 32
#define ATTR_PAS 0x20             /* 0x3C0 index bit 5: palette address source */

/* Text mode limits (the largest CRTC setting we draw). */
#define TEXT_MAX_COLS 132
#define TEXT_MAX_ROWS 60
#define TEXT_SHADOW_MAX (TEXT_MAX_COLS * 9 * TEXT_MAX_ROWS * VGA_FONT_ROWS)
#define TEXT_SIG_LEN (CRTC_N + ATTR_N + 8 + TEXT_MAX_COLS * TEXT_MAX_ROWS * 2)

enum vga_mode { MODE_NONE, MODE_TEXT, MODE_VBE };

struct vga {
	struct modvm_dev dev;
	modvm_pci_dev *pci;
	modvm_display *disp;
	modvm_timer *text_timer;
	uint64_t vram_size;          /* property "vram" */
	const char *font_path;       /* property "font" */
	struct vga_font font;

	/* guest-visible registers: saved */
	uint8_t misc;
	uint8_t seq_index, seq[SEQ_N];
	uint8_t gc_index, gc[GC_N];
	uint8_t attr_index, attr[ATTR_N];
	bool attr_flip;              /* true: the next 0x3C0 write is data */
	uint8_t crtc_index, crtc[CRTC_N];
	uint8_t feature;
	uint8_t dac[256 * 3];        /* 6-bit components (8-bit with 8BIT_DAC) */
	uint8_t dac_read, dac_write, dac_sub, dac_state;
	uint8_t pel_mask;
	uint16_t dispi_index;
	uint16_t dispi[DISPI_NREGS];
	uint32_t vram_len;           /* bytes of vram in use (= vram_size) */

	/* derived: rebuilt after a load or a mode change */
	uint8_t st01_toggle;         /* the retrace bits a poll sees */
	uint64_t generation;
	uint32_t *shadow;            /* rendered pixels unless 32 bpp */
	size_t shadow_len;           /* in pixels */
	uint32_t width, height;      /* what was shown last */
	enum vga_mode shown;
	bool mode_dirty;             /* redraw everything */
	bool text_dirty;             /* text RAM changed (the timer saw it) */
	uint8_t *page_dirty;         /* a byte a VRAM page: written since shown */
	uint8_t text_sig[TEXT_SIG_LEN];
	uint32_t text_sig_len;

	/* last: large, mostly never touched (calloc maps it lazily) */
	uint8_t vram[VGA_VRAM_MAX];
};

/* ---- mode 3 as a BIOS leaves it (IBM VGA Technical Reference, the
 * register tables of mode 03h) ------------------------------------------ */

static const uint8_t mode3_seq[5] = { 0x03, 0x00, 0x03, 0x00, 0x02 };
static const uint8_t mode3_crtc[25] = {
	0x5F, 0x4F, 0x50, 0x82, 0x55, 0x81, 0xBF, 0x1F, 0x00, 0x4F, 0x0D, 0x0E,
	0x00, 0x00, 0x00, 0x00, 0x9C, 0x8E, 0x8F, 0x28, 0x1F, 0x96, 0xB9, 0xA3,
	0xFF,
};
static const uint8_t mode3_gc[9] = { 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x0E, 0x00, 0xFF };
static const uint8_t mode3_attr[21] = {
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x14, 0x07, 0x38, 0x39, 0x3A, 0x3B,
	0x3C, 0x3D, 0x3E, 0x3F, 0x0C, 0x00, 0x0F, 0x08, 0x00,
};

/* The EGA's 64 colours in the first 64 DAC entries: bits 0-2 are blue,
 * green, red at 2/3 intensity, bits 3-5 add 1/3 of each. */
static void dac_default(struct vga *v)
{
	memset(v->dac, 0, sizeof(v->dac));
	for (unsigned i = 0; i < 64; i++) {
		v->dac[i * 3 + 0] = (uint8_t)(((i >> 2) & 1) * 42 + ((i >> 5) & 1) * 21);
		v->dac[i * 3 + 1] = (uint8_t)(((i >> 1) & 1) * 42 + ((i >> 4) & 1) * 21);
		v->dac[i * 3 + 2] = (uint8_t)((i & 1) * 42 + ((i >> 3) & 1) * 21);
	}
}

static void invalidate(struct vga *v)
{
	v->dev.host->display_invalidate(v->disp);
}

static void text_timer_arm(struct vga *v)
{
	const struct modvm_host *h = v->dev.host;

	if (!h->timer_pending(v->text_timer))
		h->timer_mod(v->text_timer, h->clock_ns(v->dev.inst) + MODVM_DISPLAY_REFRESH_NS);
}

static bool vbe_enabled(const struct vga *v)
{
	return v->dispi[DISPI_INDEX_ENABLE] & DISPI_ENABLED;
}

/* Something that changes the whole picture (a register). */
static void mode_changed(struct vga *v)
{
	v->mode_dirty = true;
	invalidate(v);
	if (!vbe_enabled(v))
		text_timer_arm(v);
}

static void vga_reset(void *dev)
{
	struct vga *v = dev;

	v->misc = 0x67;
	memset(v->seq, 0, sizeof(v->seq));
	memcpy(v->seq, mode3_seq, sizeof(mode3_seq));
	memset(v->crtc, 0, sizeof(v->crtc));
	memcpy(v->crtc, mode3_crtc, sizeof(mode3_crtc));
	memset(v->gc, 0, sizeof(v->gc));
	memcpy(v->gc, mode3_gc, sizeof(mode3_gc));
	memset(v->attr, 0, sizeof(v->attr));
	memcpy(v->attr, mode3_attr, sizeof(mode3_attr));
	v->seq_index = v->gc_index = v->crtc_index = 0;
	v->attr_index = ATTR_PAS;
	v->attr_flip = false;
	v->feature = 0;
	dac_default(v);
	v->dac_read = v->dac_write = v->dac_sub = v->dac_state = 0;
	v->pel_mask = 0xFF;
	memset(v->dispi, 0, sizeof(v->dispi));
	v->dispi_index = 0;
	v->dispi[DISPI_INDEX_ID] = DISPI_ID5;
	v->dispi[DISPI_INDEX_VIDEO_MEMORY_64K] = (uint16_t)(v->vram_len >> 16);
	memset(v->vram, 0, v->vram_len);
	mode_changed(v);
}

/* ---- VGA ports 0x3C0-0x3DF --------------------------------------------- */

static uint8_t vga_port_read(struct vga *v, unsigned port)
{
	uint8_t r = 0xFF;

	switch (port) {
	case 0x3C0:
		return v->attr_index;
	case 0x3C1:
		return v->attr[v->attr_index & (ATTR_N - 1)];
	case 0x3C2:
		return 0;                      /* input status 0 */
	case 0x3C4:
		return v->seq_index;
	case 0x3C5:
		return v->seq[v->seq_index & (SEQ_N - 1)];
	case 0x3C6:
		return v->pel_mask;
	case 0x3C7:
		return v->dac_state;
	case 0x3C8:
		return v->dac_write;
	case 0x3C9:
		r = v->dac[v->dac_read * 3 + v->dac_sub];
		if (++v->dac_sub == 3) {
			v->dac_sub = 0;
			v->dac_read++;
		}
		return r;
	case 0x3CA:
		return v->feature;
	case 0x3CC:
		return v->misc;
	case 0x3CE:
		return v->gc_index;
	case 0x3CF:
		return v->gc[v->gc_index & (GC_N - 1)];
	case 0x3D4:
		return v->crtc_index;
	case 0x3D5:
		return v->crtc[v->crtc_index & (CRTC_N - 1)];
	case 0x3DA:
		/* Input status 1: reading it resets the attribute flip-flop;
		 * the retrace bits toggle so that wait-for-retrace loops end. */
		v->attr_flip = false;
		v->st01_toggle ^= 0x09;
		return v->st01_toggle;
	default:
		return r;
	}
}

static void crtc_write(struct vga *v, uint8_t val)
{
	unsigned i = v->crtc_index & (CRTC_N - 1);

	/* CR11 bit 7 protects CR0-CR7, except CR7 bit 4 (line compare 8). */
	if ((v->crtc[0x11] & 0x80) && i <= 7) {
		if (i == 7)
			v->crtc[7] = (uint8_t)((v->crtc[7] & ~0x10) | (val & 0x10));
		return;
	}
	v->crtc[i] = val;
	/* Cursor and start address change only part of the picture, but a
	 * text redraw is cheap and only happens when something changed. */
	mode_changed(v);
}

static void vga_port_write(struct vga *v, unsigned port, uint8_t val)
{
	switch (port) {
	case 0x3C0:
		if (!v->attr_flip) {
			v->attr_index = val & 0x3F;
		} else {
			unsigned i = v->attr_index & (ATTR_N - 1);
			if (i < 0x15)
				v->attr[i] = val;
			mode_changed(v);
		}
		v->attr_flip = !v->attr_flip;
		if (!v->attr_flip)
			mode_changed(v);           /* PAS may have changed */
		break;
	case 0x3C2:
		v->misc = val;
		mode_changed(v);
		break;
	case 0x3C4:
		v->seq_index = val & (SEQ_N - 1);
		break;
	case 0x3C5:
		v->seq[v->seq_index & (SEQ_N - 1)] = val;
		mode_changed(v);
		break;
	case 0x3C6:
		v->pel_mask = val;
		mode_changed(v);
		break;
	case 0x3C7:
		v->dac_read = val;
		v->dac_sub = 0;
		v->dac_state = 0x03;
		break;
	case 0x3C8:
		v->dac_write = val;
		v->dac_sub = 0;
		v->dac_state = 0x00;
		break;
	case 0x3C9:
		v->dac[v->dac_write * 3 + v->dac_sub] =
			(v->dispi[DISPI_INDEX_ENABLE] & DISPI_8BIT_DAC) ? val : (val & 0x3F);
		if (++v->dac_sub == 3) {
			v->dac_sub = 0;
			v->dac_write++;
		}
		mode_changed(v);
		break;
	case 0x3CE:
		v->gc_index = val & (GC_N - 1);
		break;
	case 0x3CF:
		v->gc[v->gc_index & (GC_N - 1)] = val;
		mode_changed(v);
		break;
	case 0x3D4:
		v->crtc_index = val & (CRTC_N - 1);
		break;
	case 0x3D5:
		crtc_write(v, val);
		break;
	case 0x3DA:
		v->feature = val;
		break;
	default:
		break;                            /* 0x3C3, 0x3CA, ...: no effect */
	}
}

/* Wider accesses are bytes at consecutive ports (outw 0x3C4 sets the
 * index and then the data register). */
static uint64_t ports_read(void *opaque, uint64_t off, unsigned size)
{
	uint64_t r = 0;

	for (unsigned i = 0; i < size && off + i < VGA_PORTS; i++)
		r |= (uint64_t)vga_port_read(opaque, VGA_PORT_BASE + (unsigned)off + i) << (8 * i);
	return r;
}

static void ports_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
	for (unsigned i = 0; i < size && off + i < VGA_PORTS; i++)
		vga_port_write(opaque, VGA_PORT_BASE + (unsigned)off + i, (uint8_t)(val >> (8 * i)));
}

static const struct modvm_io_ops ports_ops = { ports_read, ports_write };

/* ---- DISPI -------------------------------------------------------------- */

static unsigned bpp_bytes(unsigned bpp)
{
	switch (bpp) {
	case 8: return 1;
	case 15: case 16: return 2;
	case 24: return 3;
	case 32: return 4;
	default: return 0;
	}
}

/* Make the DISPI registers describe a mode that fits VRAM, as the guest
 * enables it: every value the guest gave may be absurd. */
static void dispi_fix_mode(struct vga *v)
{
	uint16_t *r = v->dispi;
	unsigned b;
	uint32_t line;

	if (!bpp_bytes(r[DISPI_INDEX_BPP]))
		r[DISPI_INDEX_BPP] = 8;
	b = bpp_bytes(r[DISPI_INDEX_BPP]);
	if (r[DISPI_INDEX_XRES] > DISPI_MAX_XRES)
		r[DISPI_INDEX_XRES] = DISPI_MAX_XRES;
	r[DISPI_INDEX_XRES] &= (uint16_t)~7u;
	if (r[DISPI_INDEX_XRES] == 0)
		r[DISPI_INDEX_XRES] = 8;
	if (r[DISPI_INDEX_YRES] > DISPI_MAX_YRES)
		r[DISPI_INDEX_YRES] = DISPI_MAX_YRES;
	if (r[DISPI_INDEX_YRES] == 0)
		r[DISPI_INDEX_YRES] = 1;
	r[DISPI_INDEX_VIRT_WIDTH] = r[DISPI_INDEX_XRES];
	line = (uint32_t)r[DISPI_INDEX_XRES] * b;
	r[DISPI_INDEX_VIRT_HEIGHT] = (uint16_t)(v->vram_len / line > 0xFFFF ? 0xFFFF : v->vram_len / line);
	if (r[DISPI_INDEX_YRES] > r[DISPI_INDEX_VIRT_HEIGHT])
		r[DISPI_INDEX_YRES] = r[DISPI_INDEX_VIRT_HEIGHT];
	r[DISPI_INDEX_X_OFFSET] = r[DISPI_INDEX_Y_OFFSET] = 0;
}

static uint16_t dispi_read(struct vga *v, unsigned index)
{
	bool caps = v->dispi[DISPI_INDEX_ENABLE] & DISPI_GETCAPS;

	if (index >= DISPI_NREGS)
		return 0;
	if (caps && index == DISPI_INDEX_XRES)
		return DISPI_MAX_XRES;
	if (caps && index == DISPI_INDEX_YRES)
		return DISPI_MAX_YRES;
	if (caps && index == DISPI_INDEX_BPP)
		return DISPI_MAX_BPP;
	return v->dispi[index];
}

static void dispi_write(struct vga *v, unsigned index, uint16_t val)
{
	uint16_t *r = v->dispi;
	bool was = vbe_enabled(v);

	switch (index) {
	case DISPI_INDEX_ID:
		if (val >= DISPI_ID0 && val <= DISPI_ID5)
			r[index] = val;
		return;
	case DISPI_INDEX_XRES:
	case DISPI_INDEX_YRES:
	case DISPI_INDEX_BPP:
		/* Take effect at the next enable (Bochs does the same). */
		if (!was)
			r[index] = val;
		return;
	case DISPI_INDEX_BANK:
		/* The 64 KiB bank of the (untrapped) legacy window: keep it
		 * within VRAM. */
		if ((uint32_t)val < (v->vram_len >> 16))
			r[index] = val;
		return;
	case DISPI_INDEX_ENABLE:
		r[index] = val & (DISPI_ENABLED | DISPI_GETCAPS | DISPI_8BIT_DAC |
				  DISPI_LFB_ENABLED | DISPI_NOCLEARMEM);
		if ((val & DISPI_ENABLED) && !was) {
			dispi_fix_mode(v);
			if (!(val & DISPI_NOCLEARMEM))
				memset(v->vram, 0, v->vram_len);
		}
		mode_changed(v);
		return;
	case DISPI_INDEX_VIRT_WIDTH: {
		unsigned b = bpp_bytes(r[DISPI_INDEX_BPP]);
		if (!b || val < r[DISPI_INDEX_XRES] || val > DISPI_MAX_XRES * 2u)
			return;
		r[index] = val;
		r[DISPI_INDEX_VIRT_HEIGHT] = (uint16_t)(v->vram_len / ((uint32_t)val * b) > 0xFFFF ?
			0xFFFF : v->vram_len / ((uint32_t)val * b));
		mode_changed(v);
		return;
	}
	case DISPI_INDEX_X_OFFSET:
	case DISPI_INDEX_Y_OFFSET:
		/* Checked against VRAM when shown (vbe_geometry). */
		r[index] = val;
		mode_changed(v);
		return;
	default:
		return;                           /* VIRT_HEIGHT, VIDEO_MEMORY_64K: read-only */
	}
}

static uint64_t dispi_ports_read(void *opaque, uint64_t off, unsigned size)
{
	struct vga *v = opaque;

	(void)size;
	return off == 0 ? v->dispi_index : dispi_read(v, v->dispi_index);
}

static void dispi_ports_write(void *opaque, uint64_t off, uint64_t val,
			      unsigned size)
{
	struct vga *v = opaque;

	(void)size;
	if (off == 0)
		v->dispi_index = (uint16_t)val;
	else
		dispi_write(v, v->dispi_index, (uint16_t)val);
}

static const struct modvm_io_ops dispi_ops = { dispi_ports_read, dispi_ports_write };

/* ---- BAR2: the same registers as MMIO ----------------------------------- */

static uint64_t mmio_read(void *opaque, uint64_t off, unsigned size)
{
	struct vga *v = opaque;
	uint64_t r = 0;

	if (off >= VGA_MMIO_VGA && off < VGA_MMIO_VGA + VGA_PORTS)
		return ports_read(v, off - VGA_MMIO_VGA, size);
	if (off >= VGA_MMIO_DISPI && off < VGA_MMIO_DISPI + DISPI_NREGS * 2) {
		unsigned index = (unsigned)(off - VGA_MMIO_DISPI) / 2;
		for (unsigned i = 0; i * 2 < size && index + i < DISPI_NREGS; i++)
			r |= (uint64_t)dispi_read(v, index + i) << (16 * i);
		return size == 1 ? (r >> ((off & 1) * 8)) & 0xFF : r;
	}
	return 0;
}

static void mmio_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
	struct vga *v = opaque;

	if (off >= VGA_MMIO_VGA && off < VGA_MMIO_VGA + VGA_PORTS) {
		ports_write(v, off - VGA_MMIO_VGA, val, size);
		return;
	}
	if (off >= VGA_MMIO_DISPI && off < VGA_MMIO_DISPI + DISPI_NREGS * 2 &&
	    size >= 2 && !(off & 1)) {
		unsigned index = (unsigned)(off - VGA_MMIO_DISPI) / 2;
		for (unsigned i = 0; i * 2 < size && index + i < DISPI_NREGS; i++)
			dispi_write(v, index + i, (uint16_t)(val >> (16 * i)));
	}
}

static const struct modvm_io_ops mmio_ops = { mmio_read, mmio_write };

/* ---- BAR0: video memory -------------------------------------------------- */

static uint64_t vram_read(void *opaque, uint64_t off, unsigned size)
{
	struct vga *v = opaque;
	uint64_t r = 0;

	if (size > 8 || off >= v->vram_len || size > v->vram_len - off)
		return ~0ull;
	memcpy(&r, v->vram + off, size);   /* x86 hosts: little-endian */
	return r;
}

static void vram_write(void *opaque, uint64_t off, uint64_t val, unsigned size)
{
	struct vga *v = opaque;
	uint64_t first, last;

	if (size > 8 || off >= v->vram_len || size > v->vram_len - off)
		return;
	memcpy(v->vram + off, &val, size);
	first = off >> PAGE_SHIFT;
	last = (off + size - 1) >> PAGE_SHIFT;
	if (!v->page_dirty[first] || !v->page_dirty[last]) {
		v->page_dirty[first] = v->page_dirty[last] = 1;
		if (vbe_enabled(v))
			invalidate(v);
	}
}

static const struct modvm_io_ops vram_ops = { vram_read, vram_write };

/* ---- rendering ----------------------------------------------------------- */

static uint8_t dac8(const struct vga *v, uint8_t c)
{
	return (v->dispi[DISPI_INDEX_ENABLE] & DISPI_8BIT_DAC) ? c
		: (uint8_t)((c & 0x3F) << 2 | (c & 0x3F) >> 4);
}

static uint32_t dac_rgb(const struct vga *v, uint8_t index)
{
	const uint8_t *e = &v->dac[(unsigned)(index & v->pel_mask) * 3];

	return (uint32_t)dac8(v, e[0]) << 16 | (uint32_t)dac8(v, e[1]) << 8 | dac8(v, e[2]);
}

/* Attribute controller: a 4-bit text colour to a DAC index. */
static uint32_t attr_rgb(const struct vga *v, unsigned c)
{
	uint8_t p = v->attr[c & 0xF] & 0x3F;
	uint8_t sel = v->attr[0x14];

	if (v->attr[0x10] & 0x80)              /* P5/P4 from the colour select */
		p = (uint8_t)((p & 0x0F) | (sel & 0x03) << 4);
	p = (uint8_t)((p & 0x3F) | (sel & 0x0C) << 4);
	return dac_rgb(v, p);
}

struct text_geom {
	unsigned cols, rows, cw, ch;
	uint64_t base;      /* guest-physical address of the first character */
	uint32_t stride;    /* bytes from one text row to the next */
};

static bool text_geometry(const struct vga *v, struct text_geom *g)
{
	static const uint32_t window[4] = { 0xA0000, 0xA0000, 0xB0000, 0xB8000 };
	unsigned vde = v->crtc[0x12] | (v->crtc[7] & 0x02) << 7 | (v->crtc[7] & 0x40) << 3;
	unsigned start = (unsigned)v->crtc[0x0C] << 8 | v->crtc[0x0D];

	if (v->gc[6] & 0x01)                   /* graphics mode: not shown */
		return false;
	g->cols = v->crtc[1] + 1u;
	g->ch = (v->crtc[9] & 0x1F) + 1u;
	g->rows = (vde + 1u) / g->ch;
	g->cw = (v->seq[1] & 0x01) ? 8 : 9;
	if (g->cols > TEXT_MAX_COLS)
		g->cols = TEXT_MAX_COLS;
	if (g->rows > TEXT_MAX_ROWS)
		g->rows = TEXT_MAX_ROWS;
	if (!g->rows)
		g->rows = 1;
	g->stride = (uint32_t)v->crtc[0x13] * 4u;
	if (g->stride < g->cols * 2u)
		g->stride = g->cols * 2u;
	/* The window is 32 KiB from B8000 (64 or 128 KiB from A0000); the
	 * start address wraps within it. */
	g->base = window[(v->gc[6] >> 2) & 3] + ((uint64_t)start * 2 & 0x7FFF);
	return true;
}

/* Read the text screen's bytes from guest RAM (the legacy window is RAM
 * here) into a signature together with the registers that shape it. */
static uint32_t text_signature(struct vga *v, const struct text_geom *g,
			       uint8_t *sig)
{
	const struct modvm_host *h = v->dev.host;
	uint32_t n = 0;

	memcpy(sig, v->crtc, CRTC_N);
	n += CRTC_N;
	memcpy(sig + n, v->attr, ATTR_N);
	n += ATTR_N;
	sig[n++] = v->attr_index;
	sig[n++] = v->seq[1];
	sig[n++] = v->gc[6];
	sig[n++] = v->pel_mask;
	n += 4;
	for (unsigned r = 0; r < g->rows; r++) {
		uint64_t a = g->base + (uint64_t)r * g->stride;
		if (h->mem_read(v->dev.inst, a, sig + n, g->cols * 2u))
			memset(sig + n, 0, g->cols * 2u);
		n += g->cols * 2u;
	}
	return n;
}

static void text_render(struct vga *v, const struct text_geom *g,
			const uint8_t *sig)
{
	const uint8_t *cells = sig + CRTC_N + ATTR_N + 8;
	unsigned w = g->cols * g->cw;
	unsigned cur = ((unsigned)v->crtc[0x0E] << 8 | v->crtc[0x0F]) -
		       ((unsigned)v->crtc[0x0C] << 8 | v->crtc[0x0D]);
	unsigned cur_start = v->crtc[0x0A] & 0x1F, cur_end = v->crtc[0x0B] & 0x1F;
	bool cur_on = !(v->crtc[0x0A] & 0x20);
	bool blink = v->attr[0x10] & 0x08, lge = v->attr[0x10] & 0x04;
	bool blank = !(v->attr_index & ATTR_PAS) || (v->seq[1] & 0x20);

	for (unsigned r = 0; r < g->rows; r++) {
		for (unsigned c = 0; c < g->cols; c++) {
			uint8_t ch = cells[(r * g->cols + c) * 2];
			uint8_t at = cells[(r * g->cols + c) * 2 + 1];
			uint32_t fg = attr_rgb(v, at & 0xF);
			uint32_t bg = attr_rgb(v, blink ? (at >> 4) & 7 : at >> 4);
			bool is_cur = cur_on && r * g->cols + c == cur;

			for (unsigned y = 0; y < g->ch; y++) {
				uint32_t *px = v->shadow + (size_t)(r * g->ch + y) * w + c * g->cw;
				uint8_t bits = y < v->font.height ? v->font.glyph[ch][y] : 0;
				if (is_cur && y >= cur_start && y <= cur_end)
					bits = 0xFF;
				for (unsigned x = 0; x < 8; x++)
					px[x] = blank ? 0 : (bits & (0x80 >> x)) ? fg : bg;
				if (g->cw == 9) {
					bool dup = lge && ch >= 0xC0 && ch <= 0xDF && (bits & 1);
					px[8] = blank ? 0 : (dup || (is_cur && y >= cur_start && y <= cur_end)) ? fg : bg;
				}
			}
		}
	}
}

struct vbe_geom {
	unsigned w, h, bytes;
	uint64_t start;
	uint32_t line;
};

/* The visible VBE picture, or false if it does not lie within VRAM. */
static bool vbe_geometry(const struct vga *v, struct vbe_geom *g)
{
	const uint16_t *r = v->dispi;
	uint64_t end;

	g->bytes = bpp_bytes(r[DISPI_INDEX_BPP]);
	g->w = r[DISPI_INDEX_XRES];
	g->h = r[DISPI_INDEX_YRES];
	if (!g->bytes || !g->w || !g->h || g->w > DISPI_MAX_XRES || g->h > DISPI_MAX_YRES)
		return false;
	g->line = (uint32_t)r[DISPI_INDEX_VIRT_WIDTH] * g->bytes;
	if (g->line < g->w * g->bytes)
		return false;
	g->start = (uint64_t)r[DISPI_INDEX_Y_OFFSET] * g->line +
		   (uint64_t)r[DISPI_INDEX_X_OFFSET] * g->bytes;
	end = g->start + (uint64_t)(g->h - 1) * g->line + (uint64_t)g->w * g->bytes;
	return end <= v->vram_len;
}

static uint32_t vbe_pixel(const struct vga *v, const uint8_t *p, unsigned bpp)
{
	switch (bpp) {
	case 8:
		return dac_rgb(v, p[0]);
	case 15: {
		unsigned x = p[0] | p[1] << 8;
		uint32_t r = (x >> 10) & 0x1F, gr = (x >> 5) & 0x1F, b = x & 0x1F;
		return (r << 3 | r >> 2) << 16 | (gr << 3 | gr >> 2) << 8 | (b << 3 | b >> 2);
	}
	case 16: {
		unsigned x = p[0] | p[1] << 8;
		uint32_t r = (x >> 11) & 0x1F, gr = (x >> 5) & 0x3F, b = x & 0x1F;
		return (r << 3 | r >> 2) << 16 | (gr << 2 | gr >> 4) << 8 | (b << 3 | b >> 2);
	}
	default: /* 24 */
		return (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
	}
}

static bool shadow_fit(struct vga *v, size_t pixels)
{
	if (pixels <= v->shadow_len)
		return true;
	uint32_t *n = realloc(v->shadow, pixels * 4);
	if (!n)
		return false;
	v->shadow = n;
	v->shadow_len = pixels;
	return true;
}

/* Rows [y0, y1] of the picture hold a page written since the last update. */
static bool vbe_dirty_rows(struct vga *v, const struct vbe_geom *g,
			   unsigned *y0, unsigned *y1)
{
	uint64_t end = g->start + (uint64_t)(g->h - 1) * g->line + (uint64_t)g->w * g->bytes;
	uint64_t p0 = g->start >> PAGE_SHIFT, p1 = (end - 1) >> PAGE_SHIFT;
	bool any = false;

	for (uint64_t p = p0; p <= p1; p++) {
		if (!v->page_dirty[p])
			continue;
		uint64_t a = p << PAGE_SHIFT, b = a + (1u << PAGE_SHIFT) - 1;
		unsigned ya = a <= g->start ? 0 : (unsigned)((a - g->start) / g->line);
		unsigned yb = b < g->start ? 0 : (unsigned)((b - g->start) / g->line);
		if (yb >= g->h)
			yb = g->h - 1;
		if (!any || ya < *y0)
			*y0 = ya;
		if (!any || yb > *y1)
			*y1 = yb;
		any = true;
	}
	return any;
}

static void vga_update(void *opaque, struct modvm_display_surface *s,
		       struct modvm_display_rect *dirty)
{
	struct vga *v = opaque;
	struct text_geom tg = { 0 };
	struct vbe_geom vg = { 0 };
	enum vga_mode mode = MODE_NONE;
	unsigned w = 0, h = 0, y0 = 0, y1 = 0;
	bool full;

	if (vbe_enabled(v)) {
		if (vbe_geometry(v, &vg)) {
			mode = MODE_VBE;
			w = vg.w;
			h = vg.h;
		}
	} else if (text_geometry(v, &tg)) {
		mode = MODE_TEXT;
		w = tg.cols * tg.cw;
		h = tg.rows * tg.ch;
	}
	full = v->mode_dirty || mode != v->shown || w != v->width || h != v->height;
	v->shown = mode;
	v->width = w;
	v->height = h;
	v->mode_dirty = false;
	s->format = MODVM_PIXEL_XRGB8888;
	if (mode == MODE_TEXT) {
		uint8_t sig[TEXT_SIG_LEN];
		uint32_t n = text_signature(v, &tg, sig);
		bool changed = full || v->text_dirty || n != v->text_sig_len ||
			       memcmp(sig, v->text_sig, n);
		v->text_dirty = false;
		if (!shadow_fit(v, (size_t)w * h)) {
			memset(s, 0, sizeof(*s));
			return;
		}
		if (changed) {
			memcpy(v->text_sig, sig, n);
			v->text_sig_len = n;
			text_render(v, &tg, sig);
			*dirty = (struct modvm_display_rect){ 0, 0, w, h };
			v->generation++;
		}
		s->pixels = (const uint8_t *)v->shadow;
		s->stride = w * 4;
	} else if (mode == MODE_VBE) {
		bool rows = vbe_dirty_rows(v, &vg, &y0, &y1);
		if (full) {
			y0 = 0;
			y1 = h - 1;
		}
		if (vg.bytes == 4) {
			s->pixels = v->vram + vg.start;
			s->stride = vg.line;
		} else {
			if (!shadow_fit(v, (size_t)w * h)) {
				memset(s, 0, sizeof(*s));
				return;
			}
			if (full || rows)
				for (unsigned y = y0; y <= y1; y++) {
					const uint8_t *src = v->vram + vg.start + (uint64_t)y * vg.line;
					uint32_t *dst = v->shadow + (size_t)y * w;
					for (unsigned x = 0; x < w; x++)
						dst[x] = vbe_pixel(v, src + x * vg.bytes, v->dispi[DISPI_INDEX_BPP]);
				}
			s->pixels = (const uint8_t *)v->shadow;
			s->stride = w * 4;
		}
		if (full || rows) {
			*dirty = (struct modvm_display_rect){ 0, y0, w, y1 - y0 + 1 };
			v->generation++;
		}
		memset(v->page_dirty, 0, v->vram_len >> PAGE_SHIFT);
	} else {
		if (full)
			v->generation++;
		w = h = 0;
	}
	s->width = w;
	s->height = h;
	s->generation = v->generation;
}

/* Text RAM is not trapped: look at it 30 times a second while text mode
 * is shown; a screen that stays the same costs a compare of its 4 KB. */
static void text_timer_fire(void *opaque)
{
	struct vga *v = opaque;
	struct text_geom g;
	uint8_t sig[TEXT_SIG_LEN];

	if (vbe_enabled(v) || !text_geometry(v, &g))
		return;                        /* re-armed by the next mode change */
	uint32_t n = text_signature(v, &g, sig);
	if (n != v->text_sig_len || memcmp(sig, v->text_sig, n)) {
		v->text_dirty = true;
		invalidate(v);
	}
	text_timer_arm(v);
}

/* ---- life cycle and state ------------------------------------------------ */

static int vga_post_load(void *dev)
{
	struct vga *v = dev;

	if (v->vram_len != v->vram_size) {
		v->vram_len = (uint32_t)v->vram_size;
		v->dev.host->set_error(v->dev.inst,
			"the snapshot's VRAM is not %llu bytes: set vram to the size it was taken with",
			(unsigned long long)v->vram_size);
		return -1;
	}
	v->dac_sub %= 3;
	memset(v->page_dirty, 0, v->vram_len >> PAGE_SHIFT);
	v->text_sig_len = 0;
	mode_changed(v);
	return 0;
}

static const struct modvm_display_adapter adapter = {
	.size = sizeof(adapter),
	.update = vga_update,
};

static int vga_init(void *dev)
{
	struct vga *v = dev;
	const struct modvm_host *h = v->dev.host;
	char err[256];

	if (v->vram_size & (v->vram_size - 1)) {
		h->set_error(v->dev.inst, "vram = %llu is not a power of two (PCI BARs are): use 4M, 8M, 16M, 32M or 64M",
			     (unsigned long long)v->vram_size);
		return -1;
	}
	v->vram_len = (uint32_t)v->vram_size;
	v->page_dirty = calloc(v->vram_len >> PAGE_SHIFT, 1);
	if (!v->page_dirty) {
		h->set_error(v->dev.inst, "out of memory");
		return -1;
	}
	if (!v->font_path[0]) {
		vga_font_fallback(&v->font);
	} else if (vga_font_load(&v->font, v->font_path, err, sizeof(err))) {
		h->log(v->dev.inst, MODVM_LOG_WARN, "%s; text shows as boxes", err);
		vga_font_fallback(&v->font);
	}
	struct modvm_pci_info info = {
		.size = sizeof(info),
		.vendor_id = VGA_VENDOR, .device_id = VGA_DEVICE,
		.subsystem_vendor_id = 0x1AF4, .subsystem_id = 0x1100,
		.class_code = 0x03, .subclass = 0x00, .prog_if = 0x00, /* VGA */
		.revision = 2,
		.slot = MODVM_PCI_SLOT_ANY,
		.bars[0] = { .size = v->vram_size, .type = MODVM_PCI_BAR_MEM32,
			     .prefetchable = true, .ops = &vram_ops, .opaque = v },
		.bars[2] = { .size = VGA_MMIO_SIZE, .type = MODVM_PCI_BAR_MEM32,
			     .ops = &mmio_ops, .opaque = v },
	};
	v->pci = h->pci_register(v->dev.inst, &info);
	if (!v->pci ||
	    !h->pio_register(v->dev.inst, VGA_PORT_BASE, VGA_PORTS, &ports_ops, v) ||
	    !h->pio_register(v->dev.inst, DISPI_PORT_INDEX, 3, &dispi_ops, v))
		return -1;
	v->text_timer = h->timer_new(v->dev.inst, text_timer_fire, v);
	v->disp = h->display_register(v->dev.inst, "display", &adapter, v);
	if (!v->disp)
		return -1;
	vga_reset(v);
	return 0;
}

static void vga_destroy(void *dev)
{
	struct vga *v = dev;

	free(v->shadow);
	free(v->page_dirty);
}

MODVM_STATE_SECTION_HOOKS(vga_regs_state, "vga", 1, 1, NULL, vga_post_load,
	MODVM_F_U8(struct vga, misc),
	MODVM_F_U8(struct vga, seq_index),
	MODVM_F_U8A(struct vga, seq, SEQ_N),
	MODVM_F_U8(struct vga, gc_index),
	MODVM_F_U8A(struct vga, gc, GC_N),
	MODVM_F_U8(struct vga, attr_index),
	MODVM_F_U8A(struct vga, attr, ATTR_N),
	MODVM_F_BOOL(struct vga, attr_flip),
	MODVM_F_U8(struct vga, crtc_index),
	MODVM_F_U8A(struct vga, crtc, CRTC_N),
	MODVM_F_U8(struct vga, feature),
	MODVM_F_U8A(struct vga, dac, 256 * 3),
	MODVM_F_U8(struct vga, dac_read),
	MODVM_F_U8(struct vga, dac_write),
	MODVM_F_U8(struct vga, dac_sub),
	MODVM_F_U8(struct vga, dac_state),
	MODVM_F_U8(struct vga, pel_mask),
	MODVM_F_U16(struct vga, dispi_index),
	MODVM_F_U16A(struct vga, dispi, DISPI_NREGS));

/* VRAM in a section of its own, so the registers read well as text. */
MODVM_STATE_SECTION_HOOKS(vga_vram_state, "vga-vram", 1, 1, NULL, vga_post_load,
	MODVM_F_VBUF(struct vga, vram, vram_len));

MODVM_DEVICE_DEFINE(
	.name = "vga-std",
	.version = "1.0.0",
	.description = "PC display adapter: VGA text mode and a Bochs VBE linear framebuffer on PCI 1234:1111",
	.props = MODVM_PROPS(
		MODVM_PROP_SIZE(struct vga, vram_size, "vram", "16M", 1 << 20, VGA_VRAM_MAX,
				"video memory, BAR0 (a power of two)"),
		MODVM_PROP_STRING(struct vga, font_path, "font",
				  "/usr/share/consolefonts/Uni2-VGA16.psf.gz",
				  "PSF console font for text mode (console-setup-linux); \"\": boxes"),
		MODVM_PROP_BACKEND_("display", "none", MODVM_KIND_DISPLAY,
				    "front end that shows the screen (none)")),
	.state = MODVM_STATE(&vga_regs_state, &vga_vram_state),
	.ops = MODVM_DEVICE_OPS(struct vga, .init = vga_init,
				.destroy = vga_destroy, .reset = vga_reset));
