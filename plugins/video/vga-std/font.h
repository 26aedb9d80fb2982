/* The text-mode font of vga-std: glyphs for the 256 code page 437
 * characters, taken at start-up from a Linux console font (PSF1/PSF2,
 * gzip or plain) by way of its Unicode table (docs/decisions.md). */
#ifndef VGA_FONT_H
#define VGA_FONT_H

#include <stdint.h>

#define VGA_FONT_ROWS 32 /* the most rows a VGA character has */

struct vga_font {
	unsigned height;                   /* rows a glyph, 1-32 */
	uint8_t glyph[256][VGA_FONT_ROWS]; /* one byte a row, bit 7 leftmost */
};

/* Load path into f. Returns 0, or -1 with a reason in err (the file is
 * missing, not a PSF font, glyphs wider than 8 pixels). */
int vga_font_load(struct vga_font *f, const char *path, char *err,
		  unsigned errlen);
/* Parse a decompressed font of len bytes (also the fuzz target's entry). */
int vga_font_parse(struct vga_font *f, const uint8_t *buf, unsigned long len,
		   char *err, unsigned errlen);
/* A font with no file: each printable character a hollow box, so text is
 * at least placed where it belongs. */
void vga_font_fallback(struct vga_font *f);

#endif
