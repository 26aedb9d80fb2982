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

struct modvm_device_ops {
	uint32_t size; /* sizeof(struct modvm_device_ops) at build time */

	/* Create an instance: read properties, claim I/O ranges, IRQ lines
	 * and timers through host. Return the instance (the base of the
	 * state description's offsets), or NULL after host->set_error(). */
	void *(*create)(const struct modvm_host *host, modvm_inst *inst);
	/* Release everything create acquired. Regions, timers and watches
	 * still registered are released by the core after this returns. */
	void (*destroy)(void *dev);
	/* Power-on state (also after a platform reset). May be NULL. */
	void (*reset)(void *dev);
};

#ifdef __cplusplus
}
#endif

#endif
