/* A tiny AML emitter (ACPI 6.x chapter 20): just the terms modvm's DSDT
 * needs -- names, integers, packages, buffers, scopes and devices -- so
 * the DSDT is built at run time from <modvm/pc.h> without iasl.
 */
#ifndef MODVM_CORE_BOOT_AML_H
#define MODVM_CORE_BOOT_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Output buffer. Writes past cap set overflow and are dropped, so a
 * builder checks once at the end. */
struct aml {
	uint8_t *buf;
	size_t len;
	size_t cap;
	bool overflow;
};

void aml_init(struct aml *a, uint8_t *buf, size_t cap);
void aml_byte(struct aml *a, uint8_t v);
void aml_bytes(struct aml *a, const void *p, size_t n);

/* Smallest encoding: ZeroOp, OneOp, or Byte/Word/DWord/QWord prefix. */
void aml_integer(struct aml *a, uint64_t v);
/* A 32-bit integer that always takes DWordPrefix (for _PRT addresses
 * and EISA IDs, where iasl does the same). */
void aml_dword(struct aml *a, uint32_t v);
/* A name path: "XXXX", "\\XXXX" or "\\XXXX.YYYY", segments padded with '_'
 * by the caller (4 characters each). */
void aml_name_string(struct aml *a, const char *path);
/* Name(path, ...): the caller emits the object next. */
void aml_name(struct aml *a, const char *path);
/* EISA ID such as "PNP0A03", compressed to 32 bits (ACPI 6 19.6.35). */
uint32_t aml_eisaid(const char *id);

/* Buffer(n) { bytes }, e.g. a resource template. */
void aml_buffer(struct aml *a, const uint8_t *data, size_t n);

/* Objects with a PkgLength: begin returns a mark for end, which fills in
 * the length once the contents are known. */
size_t aml_package_begin(struct aml *a, uint8_t nelems);
size_t aml_scope_begin(struct aml *a, const char *path);
size_t aml_device_begin(struct aml *a, const char *path);
void aml_end(struct aml *a, size_t mark);

#endif
