/* A plugin whose property default lies outside its own range. */
#include <stddef.h>

#include <modvm/modvm.h>

static void *create(const struct modvm_host *h, modvm_inst *i)
{
	return NULL;
}

static const struct modvm_prop_desc props[] = {
	MODVM_PROP_INT_("irq", "99", 0, 15, "an interrupt line"),
	MODVM_PROP_END
};
static const struct modvm_device_ops ops = { .size = sizeof(ops), .create = create };

MODVM_PLUGIN_DEFINE(.kind = MODVM_KIND_DEVICE, .name = "badschema",
		    .version = "1.0.0", .description = "default out of range",
		    .props = props, .ops = &ops);
