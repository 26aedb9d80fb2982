/* modvm SDK: the plugin descriptor, the one symbol every plugin exports.
 *
 * A plugin is a shared object that defines exactly one object named
 * MODVM_PLUGIN_SYMBOL of type struct modvm_plugin_desc (use MODVM_PLUGIN_DEFINE).
 * The core reads abi_major/abi_minor straight from the file before it loads
 * the object, so a plugin built for another ABI never runs any code.
 */
#ifndef MODVM_PLUGIN_H
#define MODVM_PLUGIN_H

#include <stdint.h>
#include <stddef.h>

#include <modvm/props.h>
#include <modvm/state.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * ABI versioning (docs/sdk.md, "ABI versioning rules").
 *  - MAJOR changes when an existing structure, field or callback changes
 *    meaning, size or position: plugins built for another major are
 *    refused.
 *  - MINOR changes when something is appended (a host service at the end of
 *    struct modvm_host, a new plugin kind, a new field type). A core runs
 *    plugins built against its own or an older minor, and refuses a plugin
 *    built against a newer minor. So every service a plugin's headers
 *    declare exists in any core that loads it: there is nothing to test at
 *    run time.
 */
#define MODVM_ABI_MAJOR 2
#define MODVM_ABI_MINOR 5

/* Name of the exported descriptor symbol. */
#define MODVM_PLUGIN_SYMBOL modvm_plugin_descriptor
#define MODVM_PLUGIN_SYMBOL_NAME "modvm_plugin_descriptor"

/* What a plugin provides. The kind decides the type of desc->ops. */
enum modvm_plugin_kind {
	MODVM_KIND_CPU_ENGINE = 1, /* ops: struct modvm_cpu_engine_ops */
	MODVM_KIND_DEVICE = 2,     /* ops: struct modvm_device_ops */
	MODVM_KIND_CHARDEV = 3,    /* ops: struct modvm_chardev_ops */
	MODVM_KIND_BLOCK = 4,      /* ops: struct modvm_block_ops */
	MODVM_KIND_NET = 5,        /* ops: struct modvm_net_ops (ABI 2.2) */
	MODVM_KIND_DISPLAY = 6,    /* ops: struct modvm_display_ops (ABI 2.4) */
};

/* The descriptor. Field order is part of the ABI: never reorder. */
struct modvm_plugin_desc {
	uint32_t abi_major;         /* MODVM_ABI_MAJOR the plugin was built with */
	uint32_t abi_minor;         /* MODVM_ABI_MINOR the plugin was built with */
	uint32_t desc_size;         /* sizeof(struct modvm_plugin_desc) at build */
	uint32_t kind;              /* enum modvm_plugin_kind */
	const char *name;           /* unique, [a-z0-9-], e.g. "serial-16550" */
	const char *version;        /* semantic version of the plugin, "1.2.0" */
	const char *description;    /* one line, no trailing period */
	/* Property schema, terminated by an entry whose name is NULL. May be NULL. */
	const struct modvm_prop_desc *props;
	/* State sections, terminated by a NULL pointer. May be NULL. */
	const struct modvm_state_section *const *state;
	/* Kind-specific operations, see enum modvm_plugin_kind. */
	const void *ops;
};

#if defined(__GNUC__)
#define MODVM_EXPORT __attribute__((visibility("default")))
#else
#define MODVM_EXPORT
#endif

/* Defines the descriptor with the ABI fields filled in. Usage:
 *   MODVM_PLUGIN_DEFINE(.kind = MODVM_KIND_DEVICE, .name = "x", ...);
 */
#define MODVM_PLUGIN_DEFINE(...)                                              \
	MODVM_EXPORT const struct modvm_plugin_desc MODVM_PLUGIN_SYMBOL = {   \
		.abi_major = MODVM_ABI_MAJOR,                                 \
		.abi_minor = MODVM_ABI_MINOR,                                 \
		.desc_size = sizeof(struct modvm_plugin_desc),                \
		__VA_ARGS__                                                   \
	}

#ifdef __cplusplus
}
#endif

#endif
