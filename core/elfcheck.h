/* Reads a plugin file's ABI version without loading it: dlopen runs a
 * library's constructors, so the registry checks the ELF file first and
 * never executes code from a plugin built for another ABI. */
#ifndef MODVM_CORE_ELFCHECK_H
#define MODVM_CORE_ELFCHECK_H

#include <stddef.h>
#include <stdint.h>

/* Returns 0 and the descriptor's abi_major/abi_minor/desc_size, or -1 with
 * the reason ("not an ELF file", "no modvm_plugin_descriptor symbol", ...). */
int elf_read_plugin_abi(const char *path, uint32_t *major, uint32_t *minor,
			char *err, size_t len);

#endif
