/* Built twice into two folders: two plugins claiming one name. */
#include <stddef.h>

#include <modvm/modvm.h>

static void *create(const struct modvm_host *h, modvm_inst *i)
{
	return NULL;
}

static const struct modvm_device_ops ops = { .size = sizeof(ops), .create = create };

MODVM_PLUGIN_DEFINE(.kind = MODVM_KIND_DEVICE, .name = "dup-name",
		    .version = "1.0.0", .description = "one of two with this name",
		    .ops = &ops);
