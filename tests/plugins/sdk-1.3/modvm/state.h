/* modvm SDK: declarative state description.
 *
 * A plugin describes the state it must keep across a snapshot or migration as
 * sections of typed fields, like QEMU's VMState or VirtualBox's SSM units.
 * Field offsets are relative to the instance pointer the plugin returned from
 * create (or, for engines, to a struct modvm_cpu_state). The core writes,
 * checks, loads and renders the fields; the plugin writes no save/load code
 * for plain data. post_load lets it recompute what is derived from them
 * (timer deadlines, cached pointers).
 *
 * Versioning: a section has a version and the oldest version it can still
 * load. A field carries the section version that introduced it; loading an
 * older stream leaves newer fields at the values they had before the load.
 */
#ifndef MODVM_STATE_H
#define MODVM_STATE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum modvm_field_type {
	MODVM_FIELD_U8 = 1,
	MODVM_FIELD_U16 = 2,
	MODVM_FIELD_U32 = 3,
	MODVM_FIELD_U64 = 4,
	MODVM_FIELD_I32 = 5,
	MODVM_FIELD_I64 = 6,
	MODVM_FIELD_BOOL = 7,   /* a C bool (one byte) */
	MODVM_FIELD_BYTES = 8,  /* count bytes, fixed size, rendered as hex */
	/* A byte buffer of variable length: count is the capacity; the number
	 * of bytes in use is the uint32_t at len_offset. Loading refuses a
	 * length above count. */
	MODVM_FIELD_VBUF = 9,
	/* count elements of stride bytes, each described by sub (an array of
	 * nsub fields whose offsets are relative to the element). */
	MODVM_FIELD_STRUCT = 10,
};

struct modvm_state_field {
	const char *name;
	uint32_t type;          /* enum modvm_field_type */
	uint32_t count;         /* array length for integers (0 or 1: scalar),
				   size for BYTES, capacity for VBUF,
				   element count for STRUCT */
	size_t offset;          /* from the instance (or element) base */
	size_t len_offset;      /* VBUF: offset of the uint32_t length */
	size_t stride;          /* STRUCT: sizeof one element */
	const struct modvm_state_field *sub; /* STRUCT: element fields */
	uint32_t nsub;          /* STRUCT: number of element fields */
	uint32_t since;         /* section version that added it; 0 = always */
};

struct modvm_state_section {
	const char *name;        /* unique within the plugin, [a-z0-9-] */
	uint32_t version;        /* what this build writes */
	uint32_t min_version;    /* oldest version this build loads */
	const struct modvm_state_field *fields;
	uint32_t nfields;
	/* Optional hooks, called with the instance pointer. pre_save runs
	 * before the fields are read, post_load after a successful load;
	 * post_load returning non-zero fails the load (the plugin must leave
	 * itself usable). */
	void (*pre_save)(void *instance);
	int (*post_load)(void *instance);
};

/* Field helpers; `type` is the C struct the offsets refer to. */
#define MODVM_FIELD_(ty, f, ft, n)                                         \
	{ .name = #f, .type = (ft), .count = (n), .offset = offsetof(ty, f),  \
	  .since = 0 }
#define MODVM_F_U8(ty, f)   MODVM_FIELD_(ty, f, MODVM_FIELD_U8, 0)
#define MODVM_F_U16(ty, f)  MODVM_FIELD_(ty, f, MODVM_FIELD_U16, 0)
#define MODVM_F_U32(ty, f)  MODVM_FIELD_(ty, f, MODVM_FIELD_U32, 0)
#define MODVM_F_U64(ty, f)  MODVM_FIELD_(ty, f, MODVM_FIELD_U64, 0)
#define MODVM_F_I32(ty, f)  MODVM_FIELD_(ty, f, MODVM_FIELD_I32, 0)
#define MODVM_F_I64(ty, f)  MODVM_FIELD_(ty, f, MODVM_FIELD_I64, 0)
#define MODVM_F_BOOL(ty, f) MODVM_FIELD_(ty, f, MODVM_FIELD_BOOL, 0)
/* Arrays of integers: n elements. */
#define MODVM_F_U8A(ty, f, n)  MODVM_FIELD_(ty, f, MODVM_FIELD_U8, n)
#define MODVM_F_U16A(ty, f, n) MODVM_FIELD_(ty, f, MODVM_FIELD_U16, n)
#define MODVM_F_U32A(ty, f, n) MODVM_FIELD_(ty, f, MODVM_FIELD_U32, n)
#define MODVM_F_U64A(ty, f, n) MODVM_FIELD_(ty, f, MODVM_FIELD_U64, n)
#define MODVM_F_BYTES(ty, f) \
	MODVM_FIELD_(ty, f, MODVM_FIELD_BYTES, sizeof(((ty *)0)->f))
#define MODVM_F_VBUF(ty, f, lenf)                                             \
	{ .name = #f, .type = MODVM_FIELD_VBUF,                               \
	  .count = sizeof(((ty *)0)->f), .offset = offsetof(ty, f),           \
	  .len_offset = offsetof(ty, lenf) }
#define MODVM_F_STRUCT(ty, f, ety, subfields)                                 \
	{ .name = #f, .type = MODVM_FIELD_STRUCT,                             \
	  .count = sizeof(((ty *)0)->f) / sizeof(ety),                        \
	  .offset = offsetof(ty, f), .stride = sizeof(ety),                   \
	  .sub = (subfields),                                                 \
	  .nsub = sizeof(subfields) / sizeof((subfields)[0]) }
#define MODVM_COUNTOF(a) (sizeof(a) / sizeof((a)[0]))

#ifdef __cplusplus
}
#endif

#endif
