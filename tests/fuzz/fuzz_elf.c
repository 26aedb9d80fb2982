/* Fuzz target: the plugin ELF pre-check, which reads files before anything
 * is loaded and must survive any bytes. */
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "elfcheck.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	uint32_t major, minor;
	char err[256];
	FILE *f;

	if (!path[0])
		snprintf(path, sizeof(path), "/tmp/modvm-fuzz-elf-%d.so", (int)getpid());
	f = fopen(path, "wb");
	if (!f)
		return 0;
	fwrite(data, 1, size, f);
	fclose(f);
	elf_read_plugin_abi(path, &major, &minor, err, sizeof(err));
	return 0;
}
