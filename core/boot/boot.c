/* boot_load(): check the configuration, open the kernel, pick its format,
 * write the memory map and firmware tables, run the loader, and hand back
 * the boot CPU's entry state only if everything worked.
 */
#include <stdlib.h>
#include <string.h>

#include "boot_priv.h"

#define BOOT_MAX_CPUS 254 /* 8-bit APIC IDs; the IOAPIC takes ID ncpus */

static int boot_check_config(const struct boot_config *cfg, char *err,
			     size_t err_len)
{
	if (cfg->format != BOOT_FORMAT_FIRMWARE && (!cfg->kernel || !*cfg->kernel))
		return boot_error(err, err_len, "no kernel to boot");
	if (cfg->format > BOOT_FORMAT_FIRMWARE)
		return boot_error(err, err_len, "unknown boot format %d",
				  (int)cfg->format);
	if (cfg->tables > BOOT_TABLES_NONE)
		return boot_error(err, err_len,
				  "unknown firmware table kind %d",
				  (int)cfg->tables);
	if (cfg->ncpus < 1 || cfg->ncpus > BOOT_MAX_CPUS)
		return boot_error(err, err_len,
				  "%u CPUs: modvm boots 1 to %d (8-bit APIC IDs, one of them for the IOAPIC)",
				  cfg->ncpus, BOOT_MAX_CPUS);
	return 0;
}

/* AUTO: the bzImage signature is at a fixed offset, so it is tried first;
 * multiboot headers are searched for; flat images have no signature and
 * are never guessed. */
static int boot_detect(struct boot_ctx *b, enum boot_format *fmt)
{
	*fmt = b->cfg->format;
	if (*fmt != BOOT_FORMAT_AUTO)
		return 0;
	if (boot_linux_detect(b->head, b->head_len)) {
		*fmt = BOOT_FORMAT_LINUX;
		return 0;
	}
	if (boot_multiboot_detect(b->head, b->head_len)) {
		*fmt = BOOT_FORMAT_MULTIBOOT;
		return 0;
	}
	return boot_error(b->err, b->err_len,
			  "kernel '%s' is neither a Linux bzImage (no \"HdrS\" at offset 0x202) nor a multiboot kernel (no header in the first 8192 bytes); for a raw real-mode image use format = \"flat\" with a load_address",
			  b->kernel.path);
}

static int boot_write_tables(struct boot_ctx *b)
{
	switch (b->cfg->tables) {
	case BOOT_TABLES_ACPI:
		return boot_acpi_write(b->mem, b->cfg->ncpus, &b->rsdp, b->err,
				       b->err_len);
	case BOOT_TABLES_MPTABLE:
		return boot_mptable_write(b->mem, b->cfg->ncpus, b->err,
					  b->err_len);
	case BOOT_TABLES_NONE:
		break;
	}
	return 0;
}

static int boot_run_loader(struct boot_ctx *b, enum boot_format fmt)
{
	switch (fmt) {
	case BOOT_FORMAT_LINUX:
		return boot_linux_load(b);
	case BOOT_FORMAT_MULTIBOOT:
		return boot_multiboot_load(b);
	case BOOT_FORMAT_FLAT:
		return boot_flat_load(b);
	case BOOT_FORMAT_AUTO:
	case BOOT_FORMAT_FIRMWARE:
		break;
	}
	return boot_error(b->err, b->err_len, "no loader for format %d",
			  (int)fmt);
}

static int boot_open_kernel(struct boot_ctx *b)
{
	if (boot_file_open(&b->kernel, "kernel", b->cfg->kernel, b->err,
			   b->err_len))
		return -1;
	b->head_len = b->kernel.size < BOOT_HEAD_SIZE ? b->kernel.size :
							BOOT_HEAD_SIZE;
	return boot_file_read(&b->kernel, 0, b->head, b->head_len, b->err,
			      b->err_len);
}

int boot_load(struct vm_memory *mem, const struct boot_config *cfg,
	      struct modvm_cpu_state *bsp, char *err, size_t err_len)
{
	struct modvm_cpu_state cpu;
	enum boot_format fmt;
	struct boot_ctx *b;
	int ret = -1;

	if (boot_check_config(cfg, err, err_len))
		return -1;
	b = calloc(1, sizeof(*b));
	if (!b)
		return boot_error(err, err_len, "out of memory");
	b->mem = mem;
	b->cfg = cfg;
	b->cpu = &cpu;
	b->err = err;
	b->err_len = err_len;
	b->kernel.fd = -1;
	boot_cpu_reset_state(&cpu);

	/* Firmware: the reset state as it is, and RAM left to the ROM device
	 * and the firmware (which builds its own E820 map and tables). */
	if (cfg->format == BOOT_FORMAT_FIRMWARE) {
		*bsp = cpu;
		ret = 0;
		goto out;
	}
	if (boot_open_kernel(b) || boot_detect(b, &fmt))
		goto out;
	b->e820_count = boot_e820_build(mem, b->e820);
	if (boot_write_tables(b) || boot_run_loader(b, fmt))
		goto out;
	*bsp = cpu;
	ret = 0;
out:
	boot_file_close(&b->kernel);
	free(b);
	return ret;
}
