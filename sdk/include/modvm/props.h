/* modvm SDK: typed property schemas.
 *
 * A plugin declares its properties once as a table; the core uses the table to
 * validate the VM config, to print `modvm inspect`, and to hand the values to
 * the plugin. Defaults are written as the text a user would put in a config
 * file and are parsed by the same code.
 *
 * A device whose instance the core allocates binds each property to a field
 * of its instance struct (MODVM_PROP_INT(struct uart, iobase, "iobase", ...),
 * like qdev's DEFINE_PROP_*): the core stores the validated value there
 * before init runs, so a misspelt field is a compile error and a misspelt
 * config key a `modvm check` error. The unbound forms (MODVM_PROP_INT_ and
 * friends, read with host->prop_*) remain for engines and backends.
 */
#ifndef MODVM_PROPS_H
#define MODVM_PROPS_H

#include <stddef.h>
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
	/* Bound properties (field_size != 0): where the core stores the value in the instance,
	 * and the size of that field. BOOL: a bool. INT, SIZE: an integer of
	 * 1, 2, 4 or 8 bytes holding the whole range. ENUM: an integer that
	 * gets the index into choices. STRING, BACKEND: a const char * (the
	 * core's copy, valid for the life of the instance). */
	size_t offset;
	uint32_t field_size;
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

/* Bound forms: `ty` is the instance struct, `f` the field. */
#define MODVM_PROP_AT_(ty, f)                                                 \
	.offset = offsetof(ty, f),                                            \
	.field_size = sizeof(((ty *)0)->f)
#define MODVM_PROP_BOOL(ty, f, n, d, h)                                       \
	{ .name = (n), .type = MODVM_PROP_BOOL, .def = (d), .help = (h),      \
	  MODVM_PROP_AT_(ty, f) }
#define MODVM_PROP_INT(ty, f, n, d, lo, hi, h)                                \
	{ .name = (n), .type = MODVM_PROP_INT, .def = (d), .min = (lo),       \
	  .max = (hi), .help = (h), MODVM_PROP_AT_(ty, f) }
#define MODVM_PROP_SIZE(ty, f, n, d, lo, hi, h)                               \
	{ .name = (n), .type = MODVM_PROP_SIZE, .def = (d), .min = (lo),      \
	  .max = (hi), .help = (h), MODVM_PROP_AT_(ty, f) }
#define MODVM_PROP_STRING(ty, f, n, d, h)                                     \
	{ .name = (n), .type = MODVM_PROP_STRING, .def = (d), .help = (h),    \
	  MODVM_PROP_AT_(ty, f) }
#define MODVM_PROP_ENUM(ty, f, n, d, c, h)                                    \
	{ .name = (n), .type = MODVM_PROP_ENUM, .def = (d), .choices = (c),   \
	  .help = (h), MODVM_PROP_AT_(ty, f) }
#define MODVM_PROP_BACKEND(ty, f, n, d, k, h)                                 \
	{ .name = (n), .type = MODVM_PROP_BACKEND, .def = (d),                \
	  .backend_kind = (k), .help = (h), MODVM_PROP_AT_(ty, f) }

/* A whole schema as one expression: .props = MODVM_PROPS(a, b, c). */
#define MODVM_PROPS(...)                                                      \
	((const struct modvm_prop_desc[]){ __VA_ARGS__, MODVM_PROP_END })

#ifdef __cplusplus
}
#endif

#endif
