/* Property values: parsing config text against a plugin's schema, checking
 * schemas, and describing types for messages and `modvm inspect`. */
#ifndef MODVM_CORE_PROPVAL_H
#define MODVM_CORE_PROPVAL_H

#include <stdbool.h>
#include <stdint.h>

#include <modvm/plugin.h>

struct prop_value {
	const struct modvm_prop_desc *desc;
	bool b;
	int64_t i;      /* INT, and SIZE as unsigned in u */
	uint64_t u;
	int choice;     /* ENUM index */
	char *s;        /* text form (STRING/ENUM/BACKEND value, or any) */
	int line;       /* config line it came from, 0 for a default */
};

/* Parse text (a default, or a harness "name=value") into v. */
int propval_from_text(const struct modvm_prop_desc *d, const char *text,
		      struct prop_value *v, char *err, size_t len);
/* Range and choice checks shared by every way a value arrives. */
int propval_check(const struct modvm_prop_desc *d, struct prop_value *v,
		  char *err, size_t len);
void propval_free(struct prop_value *v);

/* "integer in 1..255", "size in 4K..1T", "one of: a, b, c" */
void prop_describe_type(const struct modvm_prop_desc *d, char *buf,
			size_t len);
const char *prop_type_name(uint32_t type);
/* Check a schema: names valid and unique, types known, defaults valid,
 * REQUIRED without default. */
int prop_check_schema(const struct modvm_prop_desc *props, char *err,
		      size_t len);
const struct modvm_prop_desc *prop_find(const struct modvm_prop_desc *props,
					const char *name);
/* "a, b, c": the names in a schema, for "valid properties are" messages. */
char *prop_name_list(const struct modvm_prop_desc *props);
const char *kind_name(uint32_t kind);
/* Backend plugins are named "<kind>-<value>" (chardev-file, block-qcow2). */
const char *backend_prefix(uint32_t kind);

#endif
