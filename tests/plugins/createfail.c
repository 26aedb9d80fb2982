/* A device whose create callback always fails with a reason. */
#include <stddef.h>

#include <modvm/modvm.h>

static void *create(const struct modvm_host *h, modvm_inst *i)
{
	h->set_error(i, "cannot open /dev/imaginary: No such device");
	return NULL;
}

static const struct modvm_device_ops ops = { .size = sizeof(ops), .create = create };

MODVM_PLUGIN_DEFINE(.kind = MODVM_KIND_DEVICE, .name = "createfail",
		    .version = "1.0.0", .description = "create always fails",
		    .ops = &ops);
