/* A plugin built for a future ABI major. Its constructor leaves a marker
 * file: the registry must refuse it without running any of its code. */
#include <stdio.h>
#include <stdlib.h>

#include <modvm/modvm.h>

__attribute__((constructor)) static void ran(void)
{
	const char *m = getenv("MODVM_TEST_CTOR_MARKER");
	FILE *f = m ? fopen(m, "w") : NULL;
	if (f)
		fclose(f);
}

static const struct modvm_device_ops ops = { .size = sizeof(ops) };

MODVM_EXPORT const struct modvm_plugin_desc MODVM_PLUGIN_SYMBOL = {
	.abi_major = 99, .abi_minor = 0,
	.desc_size = sizeof(struct modvm_plugin_desc),
	.kind = MODVM_KIND_DEVICE, .name = "abimajor", .version = "1.0.0",
	.description = "built for ABI 99", .ops = &ops,
};
