/* A plugin that needs a newer ABI minor than the core has. */
#include <modvm/modvm.h>

static const struct modvm_device_ops ops = { .size = sizeof(ops) };

MODVM_EXPORT const struct modvm_plugin_desc MODVM_PLUGIN_SYMBOL = {
	.abi_major = MODVM_ABI_MAJOR, .abi_minor = MODVM_ABI_MINOR + 7,
	.desc_size = sizeof(struct modvm_plugin_desc),
	.kind = MODVM_KIND_DEVICE, .name = "abiminor", .version = "1.0.0",
	.description = "needs a newer minor", .ops = &ops,
};
