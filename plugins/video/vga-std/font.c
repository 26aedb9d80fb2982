/* Console fonts for vga-std's text mode. PSF1 and PSF2 are the Linux
 * console formats (kbd's psf.h documents them; console-setup-linux ships
 * them in /usr/share/consolefonts). The glyph order of a console font is
 * its own, so each code page 437 character is found through the font's
 * Unicode table. Every length and index in the file is checked: the font
 * comes from outside (a property names it). */
#include "font.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Code page 437 as Unicode code points (the IBM PC character set that
 * VGA text mode shows). 0 is the blank NUL glyph. */
static const uint16_t cp437[256] = {
	0x0000, 0x263A, 0x263B, 0x2665, 0x2666, 0x2663, 0x2660, 0x2022,
	0x25D8, 0x25CB, 0x25D9, 0x2642, 0x2640, 0x266A, 0x266B, 0x263C,
	0x25BA, 0x25C4, 0x2195, 0x203C, 0x00B6, 0x00A7, 0x25AC, 0x21A8,
	0x2191, 0x2193, 0x2192, 0x2190, 0x221F, 0x2194, 0x25B2, 0x25BC,
	/* 0x20-0x7E: ASCII, filled in by cp437_at() */
	[0x7F] = 0x2302,
	[0x80] = 0x00C7, 0x00FC, 0x00E9, 0x00E2, 0x00E4, 0x00E0, 0x00E5, 0x00E7,
	0x00EA, 0x00EB, 0x00E8, 0x00EF, 0x00EE, 0x00EC, 0x00C4, 0x00C5,
	0x00C9, 0x00E6, 0x00C6, 0x00F4, 0x00F6, 0x00F2, 0x00FB, 0x00F9,
	0x00FF, 0x00D6, 0x00DC, 0x00A2, 0x00A3, 0x00A5, 0x20A7, 0x0192,
	0x00E1, 0x00ED, 0x00F3, 0x00FA, 0x00F1, 0x00D1, 0x00AA, 0x00BA,
	0x00BF, 0x2310, 0x00AC, 0x00BD, 0x00BC, 0x00A1, 0x00AB, 0x00BB,
	0x2591, 0x2592, 0x2593, 0x2502, 0x2524, 0x2561, 0x2562, 0x2556,
	0x2555, 0x2563, 0x2551, 0x2557, 0x255D, 0x255C, 0x255B, 0x2510,
	0x2514, 0x2534, 0x252C, 0x251C, 0x2500, 0x253C, 0x255E, 0x255F,
	0x255A, 0x2554, 0x2569, 0x2566, 0x2560, 0x2550, 0x256C, 0x2567,
	0x2568, 0x2564, 0x2565, 0x2559, 0x2558, 0x2552, 0x2553, 0x256B,
	0x256A, 0x2518, 0x250C, 0x2588, 0x2584, 0x258C, 0x2590, 0x2580,
	0x03B1, 0x00DF, 0x0393, 0x03C0, 0x03A3, 0x03C3, 0x00B5, 0x03C4,
	0x03A6, 0x0398, 0x03A9, 0x03B4, 0x221E, 0x03C6, 0x03B5, 0x2229,
	0x2261, 0x00B1, 0x2265, 0x2264, 0x2320, 0x2321, 0x00F7, 0x2248,
	0x00B0, 0x2219, 0x00B7, 0x221A, 0x207F, 0x00B2, 0x25A0, 0x00A0,
};

static uint16_t cp437_at(unsigned c)
{
	return c >= 0x20 && c < 0x7F ? (uint16_t)c : cp437[c];
}

/* Which glyph shows Unicode point u: the font's table maps glyph -> list
 * of points; we keep the first glyph for each point. */
struct umap {
	int32_t glyph[0x10000]; /* -1: none */
};

static void umap_add(struct umap *m, uint32_t u, unsigned glyph)
{
	if (u < 0x10000 && m->glyph[u] < 0)
		m->glyph[u] = (int32_t)glyph;
}

static int set_err(char *err, unsigned len, const char *msg)
{
	snprintf(err, len, "%s", msg);
	return -1;
}

static void copy_glyphs(struct vga_font *f, const uint8_t *glyphs,
			unsigned nglyphs, unsigned bytes_per_glyph,
			unsigned rows, const struct umap *m)
{
	memset(f->glyph, 0, sizeof(f->glyph));
	f->height = rows > VGA_FONT_ROWS ? VGA_FONT_ROWS : rows;
	for (unsigned c = 0; c < 256; c++) {
		int32_t g = m ? m->glyph[cp437_at(c)] : (int32_t)c;
		/* No table, or no glyph for it: fall back to the position. */
		if (g < 0 && c >= 0x20 && c < 0x7F && c < nglyphs)
			g = (int32_t)c;
		if (g < 0 || (unsigned)g >= nglyphs)
			continue;
		memcpy(f->glyph[c], glyphs + (size_t)g * bytes_per_glyph, f->height);
	}
}

/* PSF1: 4-byte header (36 04 mode charsize), 256 or 512 glyphs of
 * charsize bytes, then (mode bit 1) for each glyph little-endian 16-bit
 * points ending in FFFF, FFFE starting combining sequences. */
static int parse_psf1(struct vga_font *f, const uint8_t *b, unsigned long len,
		      struct umap *m, char *err, unsigned errlen)
{
	unsigned mode = b[2], rows = b[3];
	unsigned n = (mode & 1) ? 512 : 256;
	unsigned long pos = 4 + (unsigned long)n * rows, g = 0;
	bool in_seq = false;

	if (!rows)
		return set_err(err, errlen, "PSF1 font with 0 rows");
	if (pos > len)
		return set_err(err, errlen, "PSF1 font is shorter than its glyphs");
	if (!(mode & 2)) {
		copy_glyphs(f, b + 4, n, rows, rows, NULL);
		return 0;
	}
	while (pos + 2 <= len && g < n) {
		uint16_t u = (uint16_t)(b[pos] | b[pos + 1] << 8);
		pos += 2;
		if (u == 0xFFFF) {
			g++;
			in_seq = false;
		} else if (u == 0xFFFE) {
			in_seq = true;
		} else if (!in_seq) {
			umap_add(m, u, (unsigned)g);
		}
	}
	copy_glyphs(f, b + 4, n, rows, rows, m);
	return 0;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

/* One UTF-8 sequence at b[*pos] (bounded by len), or -1 if malformed. */
static int32_t utf8_next(const uint8_t *b, unsigned long len, unsigned long *pos)
{
	uint8_t c = b[(*pos)++];
	unsigned more;
	uint32_t u;

	if (c < 0x80)
		return c;
	if ((c & 0xE0) == 0xC0) { more = 1; u = c & 0x1F; }
	else if ((c & 0xF0) == 0xE0) { more = 2; u = c & 0x0F; }
	else if ((c & 0xF8) == 0xF0) { more = 3; u = c & 0x07; }
	else return -1;
	while (more--) {
		if (*pos >= len || (b[*pos] & 0xC0) != 0x80)
			return -1;
		u = u << 6 | (b[(*pos)++] & 0x3F);
	}
	return (int32_t)u;
}

/* PSF2: 32-byte header (magic, version, headersize, flags, length,
 * charsize, height, width), glyphs, then (flags bit 0) for each glyph
 * UTF-8 points ending in FF, FE starting combining sequences. */
static int parse_psf2(struct vga_font *f, const uint8_t *b, unsigned long len,
		      struct umap *m, char *err, unsigned errlen)
{
	uint32_t hdr, flags, n, charsize, height, width;
	unsigned long pos, g = 0;
	bool in_seq = false;

	if (len < 32)
		return set_err(err, errlen, "PSF2 header is cut short");
	hdr = le32(b + 8);
	flags = le32(b + 12);
	n = le32(b + 16);
	charsize = le32(b + 20);
	height = le32(b + 24);
	width = le32(b + 28);
	if (width == 0 || width > 8)
		return set_err(err, errlen, "PSF2 glyphs must be 1 to 8 pixels wide (VGA character cells are 8 or 9)");
	if (height == 0 || charsize < height || charsize > 4096 || n == 0 ||
	    n > 65536 || hdr < 32 || hdr > len)
		return set_err(err, errlen, "PSF2 header has impossible sizes");
	pos = hdr + (unsigned long)n * charsize;
	if (pos > len)
		return set_err(err, errlen, "PSF2 font is shorter than its glyphs");
	if (!(flags & 1)) {
		copy_glyphs(f, b + hdr, n, charsize, height, NULL);
		return 0;
	}
	while (pos < len && g < n) {
		if (b[pos] == 0xFF) {
			pos++;
			g++;
			in_seq = false;
		} else if (b[pos] == 0xFE) {
			pos++;
			in_seq = true;
		} else {
			int32_t u = utf8_next(b, len, &pos);
			if (u < 0)
				return set_err(err, errlen, "PSF2 Unicode table is not valid UTF-8");
			if (!in_seq)
				umap_add(m, (uint32_t)u, (unsigned)g);
		}
	}
	copy_glyphs(f, b + hdr, n, charsize, height, m);
	return 0;
}

int vga_font_parse(struct vga_font *f, const uint8_t *buf, unsigned long len,
		   char *err, unsigned errlen)
{
	struct umap *m;
	int r;

	if (len >= 4 && buf[0] == 0x36 && buf[1] == 0x04) {
		m = malloc(sizeof(*m));
		if (!m)
			return set_err(err, errlen, "out of memory");
		memset(m->glyph, 0xFF, sizeof(m->glyph));
		r = parse_psf1(f, buf, len, m, err, errlen);
	} else if (len >= 4 && le32(buf) == 0x864AB572u) {
		m = malloc(sizeof(*m));
		if (!m)
			return set_err(err, errlen, "out of memory");
		memset(m->glyph, 0xFF, sizeof(m->glyph));
		r = parse_psf2(f, buf, len, m, err, errlen);
	} else {
		return set_err(err, errlen, "not a PSF1 or PSF2 console font");
	}
	free(m);
	return r;
}

#define FONT_FILE_MAX (4u << 20)

int vga_font_load(struct vga_font *f, const char *path, char *err,
		  unsigned errlen)
{
	gzFile gz = gzopen(path, "rb"); /* reads plain files too */
	uint8_t *buf;
	int n, r;

	if (!gz) {
		snprintf(err, errlen, "cannot open font %s (install console-setup-linux, or set font = \"\" for boxes)",
			 path);
		return -1;
	}
	buf = malloc(FONT_FILE_MAX);
	if (!buf) {
		gzclose(gz);
		return set_err(err, errlen, "out of memory");
	}
	n = gzread(gz, buf, FONT_FILE_MAX);
	gzclose(gz);
	if (n < 0) {
		free(buf);
		snprintf(err, errlen, "font %s: cannot read or decompress it", path);
		return -1;
	}
	r = vga_font_parse(f, buf, (unsigned long)n, err, errlen);
	free(buf);
	return r;
}

void vga_font_fallback(struct vga_font *f)
{
	memset(f, 0, sizeof(*f));
	f->height = 16;
	for (unsigned c = 0x21; c < 256; c++) {
		if (c == 0x7F || c == 0xFF)
			continue;
		f->glyph[c][2] = f->glyph[c][13] = 0x7E;
		for (unsigned y = 3; y < 13; y++)
			f->glyph[c][y] = 0x42;
	}
}
