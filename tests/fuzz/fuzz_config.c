/* Fuzz target: the VM config parser (libconfig syntax and modvm's own
 * structure checks) on arbitrary file contents. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	struct vm_config c;
	char err[1024];
	FILE *f;

	if (!path[0])
		snprintf(path, sizeof(path), "/tmp/modvm-fuzz-cfg-%d", (int)getpid());
	f = fopen(path, "wb");
	if (!f)
		return 0;
	fwrite(data, 1, size, f);
	fclose(f);
	config_load(path, &c, err, sizeof(err));
	config_free(&c);
	return 0;
}
