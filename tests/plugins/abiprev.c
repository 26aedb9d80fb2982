/* A plugin of the previous ABI major (1.3, the last 1.x). The registry reads
 * abi_major/abi_minor from the file before loading it, and those two fields
 * lead the descriptor in every major ("never reorder", plugin.h), so this
 * descriptor is what a 1.3 plugin carries there; the rest is never read.
 * The registry must refuse it, naming both versions. */
#include <modvm/modvm.h>

static const struct modvm_device_ops ops = { .size = sizeof(ops) };

MODVM_EXPORT const struct modvm_plugin_desc MODVM_PLUGIN_SYMBOL = {
	.abi_major = 1, .abi_minor = 3,
	.desc_size = sizeof(struct modvm_plugin_desc),
	.kind = MODVM_KIND_DEVICE, .name = "abi1-debugcon", .version = "1.3.0",
	.description = "built for ABI 1.3", .ops = &ops,
};
