/* modvm SDK: device plugins.
 *
 * A device plugin's descriptor has kind MODVM_KIND_DEVICE and points ops at a
 * struct modvm_device_ops. The core creates one instance per config entry, in
 * config order, after validating its properties against the schema.
 */
#ifndef MODVM_DEVICE_H
#define MODVM_DEVICE_H

#include <modvm/host.h>
#include <modvm/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The header of a core-allocated instance: the first member of the
 * plugin's instance struct. The core fills it before init. */
struct modvm_dev {
	const struct modvm_host *host;
	modvm_inst *inst;
};

/*
 * A device is created in one of two ways; a plugin sets exactly one of init
 * and create (the registry refuses a table with neither or both):
 *  - instance_size and init (the usual way): the core allocates
 *    instance_size zeroed bytes, fills the struct modvm_dev at their start,
 *    stores every bound property (<modvm/props.h>), then calls init. The
 *    core frees the instance after destroy, or when init fails.
 *  - create: the plugin allocates its own instance and returns it. For
 *    devices whose instance size is only known from their properties.
 * Either way the core releases every region, timer, watch, chardev, PCI and
 * virtio device the instance registered and did not release itself, after
 * destroy or after a failed init/create.
 */
struct modvm_device_ops {
	uint32_t size;          /* sizeof(struct modvm_device_ops) at build */
	uint32_t instance_size; /* with init: bytes the core allocates */

	/* Set up a core-allocated instance: claim I/O ranges, IRQ lines and
	 * timers through dev->host. Return 0, or -1 after host->set_error(). */
	int (*init)(void *dev);
	/* Create a plugin-allocated instance: return it (the base of the
	 * state description's offsets), or NULL after host->set_error(). */
	void *(*create)(const struct modvm_host *host, modvm_inst *inst);
	/* Release what init/create acquired beyond what the core releases.
	 * May be NULL. A create-style plugin frees its instance here. */
	void (*destroy)(void *dev);
	/* Power-on state (also after a platform reset). May be NULL. */
	void (*reset)(void *dev);
};

/* The ops table of a core-allocated device of type `ty`, as an expression:
 *   .ops = MODVM_DEVICE_OPS(struct sysctl, .init = sysctl_init, ...) */
#define MODVM_DEVICE_OPS(ty, ...)                                             \
	(&(const struct modvm_device_ops){                                    \
		.size = sizeof(struct modvm_device_ops),                      \
		.instance_size = sizeof(ty), __VA_ARGS__ })

/* The descriptor of a device plugin (MODVM_PLUGIN_DEFINE with the kind):
 *   MODVM_DEVICE_DEFINE(.name = "x", .version = "1.0.0",
 *           .description = "...", .props = MODVM_PROPS(...),
 *           .state = MODVM_STATE(&sec),
 *           .ops = MODVM_DEVICE_OPS(struct x, .init = x_init));
 */
#define MODVM_DEVICE_DEFINE(...) \
	MODVM_PLUGIN_DEFINE(.kind = MODVM_KIND_DEVICE, __VA_ARGS__)

#ifdef __cplusplus
}
#endif

#endif
