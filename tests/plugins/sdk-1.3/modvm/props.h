/* modvm SDK: typed property schemas.
 *
 * A plugin declares its properties once as a table; the core uses the table to
 * validate the VM config, to print `modvm inspect`, and to answer the plugin's
 * own prop_* queries (struct modvm_host). Defaults are written as the text a
 * user would put in a config file and are parsed by the same code.
 */
#ifndef MODVM_PROPS_H
#define MODVM_PROPS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum modvm_prop_type {
	MODVM_PROP_BOOL = 1,   /* config: true/false */
	MODVM_PROP_INT = 2,    /* config: integer within [min, max] */
	MODVM_PROP_SIZE = 3,   /* config: integer or "64K", "512M", "2G", "1T" */
	MODVM_PROP_STRING = 4, /* config: any string */
	MODVM_PROP_ENUM = 5,   /* config: one of choices[] */
	/* config: the name of a plugin of kind backend_kind. The chosen
	 * backend's own properties are then accepted in the same config group
	 * (for example backend = "file"; path = "com1.log";). */
	MODVM_PROP_BACKEND = 6,
};

enum modvm_prop_flags {
	MODVM_PROP_REQUIRED = 1u << 0, /* no default: the config must set it */
};

struct modvm_prop_desc {
	const char *name;          /* [a-z0-9_-]; NULL ends the table */
	uint32_t type;             /* enum modvm_prop_type */
	uint32_t flags;            /* enum modvm_prop_flags */
	const char *def;           /* default, as config text; NULL if REQUIRED */
	int64_t min, max;          /* INT and SIZE: inclusive range */
	const char *const *choices;/* ENUM: NULL-terminated list of names */
	uint32_t backend_kind;     /* BACKEND: enum modvm_plugin_kind */
	const char *help;          /* one line for `modvm inspect` */
};

/* Table helpers, to keep schemas readable. */
#define MODVM_PROP_BOOL_(n, d, h) \
	{ .name = (n), .type = MODVM_PROP_BOOL, .def = (d), .help = (h) }
#define MODVM_PROP_INT_(n, d, lo, hi, h) \
	{ .name = (n), .type = MODVM_PROP_INT, .def = (d), .min = (lo), .max = (hi), .help = (h) }
#define MODVM_PROP_SIZE_(n, d, lo, hi, h) \
	{ .name = (n), .type = MODVM_PROP_SIZE, .def = (d), .min = (lo), .max = (hi), .help = (h) }
#define MODVM_PROP_STRING_(n, d, h) \
	{ .name = (n), .type = MODVM_PROP_STRING, .def = (d), .help = (h) }
#define MODVM_PROP_ENUM_(n, d, c, h) \
	{ .name = (n), .type = MODVM_PROP_ENUM, .def = (d), .choices = (c), .help = (h) }
#define MODVM_PROP_BACKEND_(n, d, k, h) \
	{ .name = (n), .type = MODVM_PROP_BACKEND, .def = (d), .backend_kind = (k), .help = (h) }
#define MODVM_PROP_END { .name = 0 }

#ifdef __cplusplus
}
#endif

#endif
