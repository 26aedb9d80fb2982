/* vga-std through the harness: PCI identity and BARs, the VGA register
 * files (index/data pairs, the attribute flip-flop, the DAC, CRTC write
 * protection), text mode rendered from RAM at 0xB8000 with its cursor,
 * the Bochs DISPI interface on ports and in BAR2, framebuffer modes up to
 * 1920x1080x32 with exact dirty rectangles, absurd modes and writes past
 * VRAM, and state round trips (registers and VRAM). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include <modvm/modvm.h>
#include "testmain.h"

#define DISPI_INDEX 0x1CE
#define DISPI_DATA 0x1CF
#define TEXT 0xB8000

struct vga_t {
	struct hx *h;
	unsigned slot;
	uint64_t bar0, bar2;
};

static uint32_t cfg_rd(struct vga_t *v, unsigned reg)
{
	hx_outl(v->h, 0xCF8, 0x80000000u | v->slot << 11 | (reg & 0xFC));
	return hx_inl(v->h, 0xCFC);
}

static void cfg_wr(struct vga_t *v, unsigned reg, uint32_t val)
{
	hx_outl(v->h, 0xCF8, 0x80000000u | v->slot << 11 | (reg & 0xFC));
	hx_outl(v->h, 0xCFC, val);
}

/* pci-host and a vga-std with properties p1, p2 (may be NULL). */
static int vga_new(struct vga_t *v, const char *p1, const char *p2)
{
	memset(v, 0, sizeof(*v));
	v->h = hx_new(64 << 20);
	CU_ASSERT_EQUAL_FATAL(hx_add(v->h, "pci-host", "pci", NULL), 0);
	if (hx_add(v->h, "vga-std", "vga", p1, p2, NULL))
		return -1;
	for (v->slot = 0; v->slot < 32; v->slot++)
		if (cfg_rd(v, 0) == 0x11111234u)
			break;
	CU_ASSERT_FATAL(v->slot < 32);
	v->bar0 = cfg_rd(v, MODVM_PCI_BAR0) & ~0xFu;
	v->bar2 = cfg_rd(v, MODVM_PCI_BAR0 + 8) & ~0xFu;
	return 0;
}

static void dispi_w(struct hx *h, uint16_t index, uint16_t val)
{
	hx_outw(h, DISPI_INDEX, index);
	hx_outw(h, DISPI_DATA, val);
}

static uint16_t dispi_r(struct hx *h, uint16_t index)
{
	hx_outw(h, DISPI_INDEX, index);
	return hx_inw(h, DISPI_DATA);
}

static void set_mode(struct hx *h, uint16_t w, uint16_t hgt, uint16_t bpp)
{
	dispi_w(h, 4, 0);
	dispi_w(h, 1, w);
	dispi_w(h, 2, hgt);
	dispi_w(h, 3, bpp);
	dispi_w(h, 4, 0x41);
}

static uint32_t pixel(const struct modvm_display_surface *s, unsigned x, unsigned y)
{
	uint32_t p;

	memcpy(&p, s->pixels + (size_t)y * s->stride + x * 4, 4);
	return p & 0xFFFFFF;
}

static void test_pci_identity(void)
{
	struct vga_t v;
	uint32_t bar;

	CU_ASSERT_EQUAL_FATAL(vga_new(&v, NULL, NULL), 0);
	CU_ASSERT_EQUAL(cfg_rd(&v, 8) >> 8, 0x030000u);  /* VGA-compatible display */
	bar = cfg_rd(&v, MODVM_PCI_BAR0);
	CU_ASSERT_EQUAL(bar & 0xF, 0x8);                  /* memory, 32-bit, prefetchable */
	CU_ASSERT_NOT_EQUAL(v.bar0, 0);
	cfg_wr(&v, MODVM_PCI_BAR0, 0xFFFFFFFF);
	CU_ASSERT_EQUAL(~(cfg_rd(&v, MODVM_PCI_BAR0) & ~0xFu) + 1, 16u << 20);
	cfg_wr(&v, MODVM_PCI_BAR0, bar);
	bar = cfg_rd(&v, MODVM_PCI_BAR0 + 8);
	CU_ASSERT_EQUAL(bar & 0xF, 0x0);                  /* MMIO registers: not prefetchable */
	cfg_wr(&v, MODVM_PCI_BAR0 + 8, 0xFFFFFFFF);
	CU_ASSERT_EQUAL(~(cfg_rd(&v, MODVM_PCI_BAR0 + 8) & ~0xFu) + 1, 4096u);
	cfg_wr(&v, MODVM_PCI_BAR0 + 8, bar);
	hx_free(v.h);

	/* the vram property sizes BAR0 and what DISPI reports */
	CU_ASSERT_EQUAL_FATAL(vga_new(&v, "vram=4M", NULL), 0);
	CU_ASSERT_EQUAL(dispi_r(v.h, 0xA), 64);
	hx_free(v.h);
	/* a BAR must be a power of two: refused with a reason */
	CU_ASSERT_NOT_EQUAL(vga_new(&v, "vram=3M", NULL), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(v.h), "power of two"));
	hx_free(v.h);
}

static void test_vga_registers(void)
{
	struct vga_t v;
	struct hx *h;

	CU_ASSERT_EQUAL_FATAL(vga_new(&v, NULL, NULL), 0);
	h = v.h;
	/* mode 3 as a BIOS leaves it */
	CU_ASSERT_EQUAL(hx_inb(h, 0x3CC), 0x67);
	hx_outb(h, 0x3D4, 0x01);
	CU_ASSERT_EQUAL(hx_inb(h, 0x3D5), 0x4F);
	/* index/data pairs, also as one 16-bit write */
	hx_outw(h, 0x3C4, 0x0F02);
	CU_ASSERT_EQUAL(hx_inb(h, 0x3C4), 0x02);
	CU_ASSERT_EQUAL(hx_inb(h, 0x3C5), 0x0F);
	hx_outw(h, 0x3CE, 0x5505);
	CU_ASSERT_EQUAL(hx_inb(h, 0x3CF), 0x55);
	hx_outb(h, 0x3CE, 0xFF);                          /* index masked */
	CU_ASSERT_EQUAL(hx_inb(h, 0x3CE), 0x0F);
	hx_outb(h, 0x3C2, 0x63);
	CU_ASSERT_EQUAL(hx_inb(h, 0x3CC), 0x63);
	/* attribute controller: 0x3DA resets the flip-flop; index, data */
	(void)hx_inb(h, 0x3DA);
	hx_outb(h, 0x3C0, 0x01);
	hx_outb(h, 0x3C0, 0x3A);
	hx_outb(h, 0x3C0, 0x01 | 0x20);
	CU_ASSERT_EQUAL(hx_inb(h, 0x3C1), 0x3A);
	(void)hx_inb(h, 0x3DA);
	hx_outb(h, 0x3C0, 0x21);                          /* index again after the reset */
	CU_ASSERT_EQUAL(hx_inb(h, 0x3C0), 0x21);
	/* input status 1: the retrace bits move, so polling loops end */
	uint8_t a = hx_inb(h, 0x3DA), b = hx_inb(h, 0x3DA);
	CU_ASSERT_EQUAL((a ^ b) & 0x09, 0x09);
	/* DAC: write index, three components, read back from a read index */
	hx_outb(h, 0x3C8, 0x10);
	hx_outb(h, 0x3C9, 0x3F);
	hx_outb(h, 0x3C9, 0xFF);                          /* 6 bits */
	hx_outb(h, 0x3C9, 0x01);
	CU_ASSERT_EQUAL(hx_inb(h, 0x3C8), 0x11);
	hx_outb(h, 0x3C7, 0x10);
	CU_ASSERT_EQUAL(hx_inb(h, 0x3C7), 0x03);
	CU_ASSERT_EQUAL(hx_inb(h, 0x3C9), 0x3F);
	CU_ASSERT_EQUAL(hx_inb(h, 0x3C9), 0x3F);
	CU_ASSERT_EQUAL(hx_inb(h, 0x3C9), 0x01);
	hx_outb(h, 0x3C6, 0x0F);
	CU_ASSERT_EQUAL(hx_inb(h, 0x3C6), 0x0F);
	/* CR11 bit 7 protects CR0-7 but not CR7 bit 4 */
	hx_outw(h, 0x3D4, 0x8E11);
	hx_outw(h, 0x3D4, 0x1201);
	hx_outb(h, 0x3D4, 0x01);
	CU_ASSERT_EQUAL(hx_inb(h, 0x3D5), 0x4F);
	hx_outw(h, 0x3D4, 0x0F07);
	hx_outb(h, 0x3D4, 0x07);
	CU_ASSERT_EQUAL(hx_inb(h, 0x3D5), 0x0F);          /* 0x1F: only bit 4 went */
	/* BAR2 0x400: the same ports */
	hx_mmio_write(h, v.bar2 + 0x400 + 4, 0x3304, 2);  /* 0x3C4/0x3C5 */
	hx_outb(h, 0x3C4, 0x04);
	CU_ASSERT_EQUAL(hx_inb(h, 0x3C5), 0x33);
	CU_ASSERT_EQUAL(hx_mmio_read(h, v.bar2 + 0x400 + 0xC, 1), 0x63);
	/* the platform reset brings mode 3 back */
	hx_reset(h);
	CU_ASSERT_EQUAL(hx_inb(h, 0x3CC), 0x67);
	hx_free(h);
}

/* A PSF1 font of our own, so the test does not depend on the host's:
 * glyph 7 is a full block and the Unicode table says it shows U+2588
 * (what code page 437's 0xDB is); glyph 65 a left bar for 'A'. */
static void write_font(const char *path)
{
	static uint8_t f[4 + 256 * 16 + 256 * 4];
	size_t n = 4 + 256 * 16;
	FILE *fp;

	memset(f, 0, sizeof(f));
	f[0] = 0x36; f[1] = 0x04; f[2] = 0x02; f[3] = 16;
	memset(f + 4 + 7 * 16, 0xFF, 16);
	memset(f + 4 + 65 * 16, 0x80, 16);
	for (unsigned g = 0; g < 256; g++) {
		unsigned u = g == 7 ? 0x2588 : g == 0xDB ? 0x1234 : g;
		f[n++] = (uint8_t)u;
		f[n++] = (uint8_t)(u >> 8);
		f[n++] = 0xFF;
		f[n++] = 0xFF;
	}
	fp = fopen(path, "wb");
	CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
	CU_ASSERT_EQUAL(fwrite(f, 1, n, fp), n);
	fclose(fp);
}

static void test_text_mode(void)
{
	struct vga_t v;
	struct modvm_display_surface s;
	struct modvm_display_rect r;
	const uint16_t cells[4] = { 0x4020, 0x1F41, 0x02DB, 0x0700 };
	char font[64], prop[80];
	struct hx *h;

	snprintf(font, sizeof(font), "/tmp/test_vga-%d.psf", (int)getpid());
	write_font(font);
	snprintf(prop, sizeof(prop), "font=%s", font);
	CU_ASSERT_EQUAL_FATAL(vga_new(&v, prop, NULL), 0);
	unlink(font);
	h = v.h;
	CU_ASSERT_EQUAL_FATAL(hx_display_update(h, &s, &r), 0);
	CU_ASSERT_EQUAL(s.width, 720);
	CU_ASSERT_EQUAL(s.height, 400);
	CU_ASSERT_EQUAL(s.format, MODVM_PIXEL_XRGB8888);
	CU_ASSERT_EQUAL(r.w, 720);                        /* first picture: all of it */
	hx_mem_write(h, TEXT, cells, sizeof(cells));
	/* the cursor on cell 3 (grey on black), lines 14-15 */
	hx_outw(h, 0x3D4, 0x0E0A);
	hx_outw(h, 0x3D4, 0x0F0B);
	hx_outw(h, 0x3D4, 0x000E);
	hx_outw(h, 0x3D4, 0x030F);
	uint64_t gen = s.generation;
	CU_ASSERT_EQUAL_FATAL(hx_display_update(h, &s, &r), 0);
	CU_ASSERT(s.generation > gen);
	CU_ASSERT_EQUAL(pixel(&s, 4, 4), 0xAA0000);       /* red background */
	CU_ASSERT_EQUAL(pixel(&s, 9 + 8, 0), 0x0000AA);   /* 'A': blue background at its edge */
	CU_ASSERT_EQUAL(pixel(&s, 9 + 0, 5), 0xFFFFFF);   /* 'A': its glyph, bright white */
	CU_ASSERT_EQUAL(pixel(&s, 9 + 1, 5), 0x0000AA);
	CU_ASSERT_EQUAL(pixel(&s, 18 + 4, 8), 0x00AA00);  /* full block */
	CU_ASSERT_EQUAL(pixel(&s, 18 + 8, 8), 0x00AA00);  /* 9th column of 0xDB: line graphics repeat it */
	CU_ASSERT_EQUAL(pixel(&s, 9 + 8, 8), 0x0000AA);   /* ... not for letters */
	CU_ASSERT_EQUAL(pixel(&s, 27 + 3, 14), 0xAAAAAA); /* cursor */
	CU_ASSERT_EQUAL(pixel(&s, 27 + 3, 12), 0x000000);
	/* nothing changed: nothing to redraw, the generation stays */
	gen = s.generation;
	CU_ASSERT_EQUAL_FATAL(hx_display_update(h, &s, &r), 0);
	CU_ASSERT_EQUAL(r.w, 0);
	CU_ASSERT_EQUAL(s.generation, gen);
	/* the refresh looks at text RAM 30 times a second, no more */
	uint64_t next = hx_timer_next(h), now = hx_clock(h);
	CU_ASSERT(next != UINT64_MAX && next - now <= MODVM_DISPLAY_REFRESH_NS);
	/* cursor off (CR0A bit 5) */
	hx_outw(h, 0x3D4, 0x2E0A);
	CU_ASSERT_EQUAL_FATAL(hx_display_update(h, &s, &r), 0);
	CU_ASSERT_EQUAL(pixel(&s, 27 + 3, 14), 0x000000);
	/* 8-dot characters (SR01 bit 0): 640 wide */
	hx_outw(h, 0x3C4, 0x0101);
	CU_ASSERT_EQUAL_FATAL(hx_display_update(h, &s, &r), 0);
	CU_ASSERT_EQUAL(s.width, 640);
	/* start address one row on: row 0 shows what was row 1 (empty) */
	hx_outw(h, 0x3D4, 0x500D);
	CU_ASSERT_EQUAL_FATAL(hx_display_update(h, &s, &r), 0);
	CU_ASSERT_EQUAL(pixel(&s, 4, 4), 0x000000);
	/* screen off (SR01 bit 5): black */
	hx_outw(h, 0x3D4, 0x000D);
	hx_outw(h, 0x3C4, 0x2101);
	CU_ASSERT_EQUAL_FATAL(hx_display_update(h, &s, &r), 0);
	CU_ASSERT_EQUAL(pixel(&s, 4, 4), 0x000000);
	/* graphics mode in the GC (planar VGA): not shown */
	hx_outw(h, 0x3C4, 0x0101);
	hx_outw(h, 0x3CE, 0x0506);
	CU_ASSERT_EQUAL_FATAL(hx_display_update(h, &s, &r), 0);
	CU_ASSERT_EQUAL(s.width, 0);
	hx_free(h);

	/* no font file: boxes, and the background still right */
	CU_ASSERT_EQUAL_FATAL(vga_new(&v, "font=/nonexistent.psf.gz", NULL), 0);
	hx_mem_write(v.h, TEXT, cells, sizeof(cells));
	CU_ASSERT_EQUAL_FATAL(hx_display_update(v.h, &s, &r), 0);
	CU_ASSERT_EQUAL(pixel(&s, 4, 4), 0xAA0000);
	hx_free(v.h);
}

static void test_dispi(void)
{
	struct vga_t v;
	struct modvm_display_surface s;
	struct modvm_display_rect r;
	struct hx *h;

	CU_ASSERT_EQUAL_FATAL(vga_new(&v, NULL, NULL), 0);
	h = v.h;
	CU_ASSERT_EQUAL(dispi_r(h, 0), 0xB0C5);
	dispi_w(h, 0, 0xB0C0);
	CU_ASSERT_EQUAL(dispi_r(h, 0), 0xB0C0);
	dispi_w(h, 0, 0x1234);                            /* not an ID: ignored */
	CU_ASSERT_EQUAL(dispi_r(h, 0), 0xB0C0);
	CU_ASSERT_EQUAL(dispi_r(h, 0xA), 256);            /* 16 MiB in 64 KiB */
	/* GETCAPS: the maxima */
	dispi_w(h, 4, 0x02);
	CU_ASSERT(dispi_r(h, 1) >= 1920);
	CU_ASSERT(dispi_r(h, 2) >= 1080);
	CU_ASSERT_EQUAL(dispi_r(h, 3), 32);
	dispi_w(h, 4, 0);
	/* 1920x1080x32 */
	set_mode(h, 1920, 1080, 32);
	CU_ASSERT_EQUAL(dispi_r(h, 1), 1920);
	CU_ASSERT_EQUAL(dispi_r(h, 6), 1920);             /* virtual width */
	CU_ASSERT_EQUAL(dispi_r(h, 7), (16u << 20) / (1920 * 4));
	CU_ASSERT_EQUAL_FATAL(hx_display_update(h, &s, &r), 0);
	CU_ASSERT_EQUAL(s.width, 1920);
	CU_ASSERT_EQUAL(s.height, 1080);
	CU_ASSERT(s.stride >= 1920 * 4);
	CU_ASSERT_EQUAL(r.h, 1080);
	/* a pixel written through BAR0 shows, and only its rows are dirty */
	hx_mmio_write(h, v.bar0 + (500u * 1920 + 7) * 4, 0x00ABCDEF, 4);
	CU_ASSERT_EQUAL_FATAL(hx_display_update(h, &s, &r), 0);
	CU_ASSERT_EQUAL(pixel(&s, 7, 500), 0xABCDEF);
	CU_ASSERT(r.w == 1920 && r.y <= 500 && r.y + r.h > 500 && r.h <= 3);
	CU_ASSERT_EQUAL(hx_mmio_read(h, v.bar0 + (500u * 1920 + 7) * 4, 4), 0x00ABCDEF);
	/* an unchanged framebuffer costs nothing: no rectangle, no timer */
	uint64_t gen = s.generation;
	CU_ASSERT_EQUAL_FATAL(hx_display_update(h, &s, &r), 0);
	CU_ASSERT_EQUAL(r.w, 0);
	CU_ASSERT_EQUAL(s.generation, gen);
	hx_clock_step(h, 100000000);                      /* let the text timer lapse */
	CU_ASSERT_EQUAL(hx_timer_next(h), UINT64_MAX);
	/* panning: the Y offset moves the picture */
	dispi_w(h, 9, 500);
	CU_ASSERT_EQUAL_FATAL(hx_display_update(h, &s, &r), 0);
	CU_ASSERT_EQUAL(pixel(&s, 7, 0), 0xABCDEF);
	CU_ASSERT_EQUAL(r.h, s.height);
	/* BAR2 0x500: the DISPI registers as MMIO */
	CU_ASSERT_EQUAL(hx_mmio_read(h, v.bar2 + 0x500 + 2 * 1, 2), 1920);
	CU_ASSERT_EQUAL(hx_mmio_read(h, v.bar2 + 0x500 + 2 * 9, 2), 500);
	hx_mmio_write(h, v.bar2 + 0x500 + 2 * 9, 0, 2);
	CU_ASSERT_EQUAL(dispi_r(h, 9), 0);
	/* 16 bpp: converted (0xF800 is full red) */
	set_mode(h, 800, 600, 16);
	hx_mmio_write(h, v.bar0 + 2 * 3, 0xF800, 2);
	CU_ASSERT_EQUAL_FATAL(hx_display_update(h, &s, &r), 0);
	CU_ASSERT_EQUAL(s.width, 800);
	CU_ASSERT_EQUAL(pixel(&s, 3, 0), 0xFF0000);
	CU_ASSERT_EQUAL(pixel(&s, 4, 0), 0x000000);       /* enabling cleared VRAM */
	/* 8 bpp: through the DAC (6-bit, or 8-bit with 8BIT_DAC) */
	set_mode(h, 640, 480, 8);
	hx_outb(h, 0x3C8, 5);
	hx_outb(h, 0x3C9, 0x3F);
	hx_outb(h, 0x3C9, 0x00);
	hx_outb(h, 0x3C9, 0x00);
	hx_mmio_write(h, v.bar0 + 1, 5, 1);
	CU_ASSERT_EQUAL_FATAL(hx_display_update(h, &s, &r), 0);
	CU_ASSERT_EQUAL(pixel(&s, 1, 0), 0xFF0000);
	/* 24 bpp and NOCLEARMEM keeps VRAM */
	dispi_w(h, 4, 0);
	dispi_w(h, 3, 24);
	dispi_w(h, 4, 0xC1);
	CU_ASSERT_EQUAL(hx_mmio_read(h, v.bar0 + 1, 1), 5);
	/* disabled again: back to text */
	dispi_w(h, 4, 0);
	CU_ASSERT_EQUAL_FATAL(hx_display_update(h, &s, &r), 0);
	CU_ASSERT_EQUAL(s.width, 720);
	hx_free(h);
}

static void test_bad_modes(void)
{
	struct vga_t v;
	struct modvm_display_surface s;
	struct modvm_display_rect r;
	struct hx *h;

	CU_ASSERT_EQUAL_FATAL(vga_new(&v, NULL, NULL), 0);
	h = v.h;
	/* xres 65535 and bpp 3: fixed up when enabled, within VRAM */
	set_mode(h, 65535, 65535, 3);
	CU_ASSERT_EQUAL(dispi_r(h, 3), 8);
	CU_ASSERT(dispi_r(h, 1) <= 4096);
	CU_ASSERT((uint32_t)dispi_r(h, 1) * dispi_r(h, 2) <= 16u << 20);
	CU_ASSERT_EQUAL_FATAL(hx_display_update(h, &s, &r), 0);
	CU_ASSERT_EQUAL(s.width, dispi_r(h, 1));
	CU_ASSERT_EQUAL(s.height, dispi_r(h, 2));
	/* 4096x4096x32 does not fit 16 MiB: fewer lines */
	set_mode(h, 4096, 4096, 32);
	CU_ASSERT_EQUAL(dispi_r(h, 2), (16u << 20) / (4096 * 4));
	/* resolution writes while enabled are ignored */
	dispi_w(h, 1, 8);
	CU_ASSERT_EQUAL(dispi_r(h, 1), 4096);
	/* offsets beyond VRAM: nothing is shown, nothing read outside */
	dispi_w(h, 9, 0xFFFF);
	dispi_w(h, 8, 0xFFFF);
	CU_ASSERT_EQUAL_FATAL(hx_display_update(h, &s, &r), 0);
	CU_ASSERT_EQUAL(s.width, 0);
	dispi_w(h, 9, 0);
	dispi_w(h, 8, 0);
	/* a virtual width beyond reason is refused */
	dispi_w(h, 6, 0xFFFF);
	CU_ASSERT_EQUAL(dispi_r(h, 6), 4096);
	/* bank beyond VRAM: ignored */
	dispi_w(h, 5, 3);
	dispi_w(h, 5, 0xFFFF);
	CU_ASSERT_EQUAL(dispi_r(h, 5), 3);
	/* indexes beyond the register file */
	dispi_w(h, 0x7777, 1);
	CU_ASSERT_EQUAL(dispi_r(h, 0x7777), 0);
	/* VRAM accesses at and past the end of BAR0 */
	hx_mmio_write(h, v.bar0 + (16u << 20) - 4, 0x11223344, 4);
	CU_ASSERT_EQUAL(hx_mmio_read(h, v.bar0 + (16u << 20) - 4, 4), 0x11223344);
	hx_mmio_write(h, v.bar0 + (16u << 20) - 2, 0xFFFFFFFFFFFFFFFFull, 8);
	CU_ASSERT_EQUAL(hx_mmio_read(h, v.bar0 + (16u << 20) - 4, 4), 0x11223344);
	/* BAR2 outside its registers */
	hx_mmio_write(h, v.bar2 + 0xFFC, 0xFFFFFFFF, 4);
	hx_mmio_write(h, v.bar2 + 0x515, 0xFFFF, 2);     /* odd: dropped */
	CU_ASSERT_EQUAL(hx_mmio_read(h, v.bar2 + 0x800, 4), 0);
	CU_ASSERT_EQUAL_FATAL(hx_display_update(h, &s, &r), 0);
	CU_ASSERT_EQUAL(s.width, 4096);
	/* a register storm over every VGA port */
	for (unsigned p = 0x3C0; p < 0x3E0; p++)
		for (unsigned val = 0; val < 256; val += 17)
			hx_outb(h, (uint16_t)p, (uint8_t)val);
	dispi_w(h, 4, 0);
	CU_ASSERT_EQUAL(hx_display_update(h, &s, &r), 0);
	hx_free(h);
}

static void test_state(void)
{
	struct vga_t a, b;
	struct modvm_display_surface sa, sb;
	struct modvm_display_rect r;

	CU_ASSERT_EQUAL_FATAL(vga_new(&a, NULL, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(vga_new(&b, NULL, NULL), 0);
	set_mode(a.h, 1024, 768, 32);
	for (unsigned i = 0; i < 1024; i++)
		hx_mmio_write(a.h, a.bar0 + (i * 1024 + i) * 4, 0x00FF00FF, 4);
	hx_outb(a.h, 0x3C8, 7);
	hx_outb(a.h, 0x3C9, 0x15);
	CU_ASSERT_EQUAL_FATAL(hx_state_copy(a.h, b.h, "vga"), 0);
	CU_ASSERT_EQUAL_FATAL(hx_display_update(a.h, &sa, &r), 0);
	CU_ASSERT_EQUAL_FATAL(hx_display_update(b.h, &sb, &r), 0);
	CU_ASSERT_EQUAL(sb.width, 1024);
	CU_ASSERT_EQUAL(sb.height, 768);
	CU_ASSERT_EQUAL(pixel(&sb, 700, 700), 0xFF00FF);
	CU_ASSERT_EQUAL(r.h, 768);                        /* loaded: all redrawn */
	bool same = true;
	for (unsigned y = 0; y < 768 && same; y++)
		same = !memcmp(sa.pixels + (size_t)y * sa.stride, sb.pixels + (size_t)y * sb.stride, 1024 * 4);
	CU_ASSERT(same);
	hx_outb(b.h, 0x3C7, 7);
	CU_ASSERT_EQUAL(hx_inb(b.h, 0x3C9), 0x15);
	/* hostile state: an out-of-range DAC position is tamed; VRAM of
	 * another size is refused */
	CU_ASSERT_EQUAL(hx_state_poke(b.h, "vga", "dac_sub=200", "dac_write=255", NULL), 0);
	hx_outb(b.h, 0x3C9, 9);                           /* component 200 % 3 of 255 */
	hx_outb(b.h, 0x3C9, 1);                           /* then entry 0 */
	hx_outb(b.h, 0x3C9, 2);
	hx_outb(b.h, 0x3C7, 0);
	CU_ASSERT_EQUAL(hx_inb(b.h, 0x3C9), 1);
	CU_ASSERT_EQUAL(hx_inb(b.h, 0x3C9), 2);
	CU_ASSERT_EQUAL(hx_inb(b.h, 0x3C9), 0);
	CU_ASSERT_EQUAL_FATAL(hx_display_update(b.h, &sb, &r), 0);
	hx_free(b.h);
	/* a snapshot with 16 MiB of VRAM does not load into a 4 MiB card */
	CU_ASSERT_EQUAL_FATAL(vga_new(&b, "vram=4M", NULL), 0);
	CU_ASSERT_NOT_EQUAL(hx_state_copy(a.h, b.h, "vga"), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(b.h), "vram"));
	CU_ASSERT_EQUAL_FATAL(hx_display_update(b.h, &sb, &r), 0);
	CU_ASSERT((uint64_t)sb.stride * sb.height <= 4u << 20); /* within its VRAM */
	hx_free(a.h);
	hx_free(b.h);
}

int main(void)
{
	static const struct test_case tests[] = {
		TEST(test_pci_identity),
		TEST(test_vga_registers),
		TEST(test_text_mode),
		TEST(test_dispi),
		TEST(test_bad_modes),
		TEST(test_state),
	};
	return RUN_TESTS("vga", tests);
}
