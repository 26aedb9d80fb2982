/* Fuzz target: vga-std's console font parser (PSF1/PSF2 headers, glyph
 * counts and sizes, the Unicode tables with their UTF-8), which reads a
 * file the config names. The glyphs it keeps are read back so that a
 * parse that left them half-written shows under MSan/ASan too. */
#include <stddef.h>
#include <stdint.h>

#include "../../plugins/video/vga-std/font.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vga_font f;
	char err[128];
	volatile unsigned sum = 0;

	if (vga_font_parse(&f, data, size, err, sizeof(err)) == 0) {
		if (f.height < 1 || f.height > VGA_FONT_ROWS)
			__builtin_trap();
		for (unsigned c = 0; c < 256; c++)
			for (unsigned y = 0; y < f.height; y++)
				sum += f.glyph[c][y];
	}
	(void)sum;
	return 0;
}
