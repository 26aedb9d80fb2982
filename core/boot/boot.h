/* Boot loaders and firmware tables: put a kernel into guest RAM and describe
 * the machine to it (E820, ACPI or MP tables), then give the boot CPU's
 * initial state. Everything here runs before the first instruction, and
 * refuses bad images with a message before the VM starts.
 */
#ifndef MODVM_CORE_BOOT_H
#define MODVM_CORE_BOOT_H

#include <stddef.h>
#include <stdint.h>

#include <modvm/cpu.h>

#include "../memory.h"

enum boot_format {
	BOOT_FORMAT_AUTO = 0,  /* detect: bzImage, multiboot, else refuse */
	BOOT_FORMAT_LINUX,     /* Linux x86 boot protocol (bzImage) */
	BOOT_FORMAT_MULTIBOOT, /* multiboot v1, ELF or a.out kludge */
	BOOT_FORMAT_FLAT,      /* raw image run in real mode at load_addr */
	BOOT_FORMAT_FIRMWARE,  /* no image: the reset vector, a ROM device */
};

enum boot_tables {
	BOOT_TABLES_ACPI = 0, /* RSDP, XSDT, FADT, MADT, DSDT (+ _S5) */
	BOOT_TABLES_MPTABLE,  /* Intel MP spec 1.4 table, no ACPI */
	BOOT_TABLES_NONE,
};

struct boot_config {
	enum boot_format format;
	const char *kernel;     /* path; required unless FIRMWARE */
	const char *initrd;     /* path or NULL (Linux only) */
	const char *cmdline;    /* or NULL */
	uint64_t load_addr;     /* FLAT: physical load and entry address */
	enum boot_tables tables;
	unsigned ncpus;
};

/* Load the image, write the firmware tables, fill *bsp with the entry state.
 * Returns 0, or -1 with a message naming the file and the problem in err;
 * on failure guest RAM may have been written but nothing else changed. */
int boot_load(struct vm_memory *mem, const struct boot_config *cfg,
	      struct modvm_cpu_state *bsp, char *err, size_t err_len);

/* Reset state of an x86 CPU (SDM vol. 3A 9.1.1), used as the base of every
 * entry state and for a CPU that has no image to run. */
void boot_cpu_reset_state(struct modvm_cpu_state *s);

#endif
