/* Flat images: the file's bytes at load_addr, entered in real mode at that
 * address. For boot-sector style test guests and anything that brings its
 * own mode switches.
 */
#include "boot_priv.h"

/* Real mode reaches 1 MiB (no A20 games here). */
#define REAL_MODE_END BOOT_1M

static int flat_check(struct boot_ctx *b, uint64_t addr, uint64_t size)
{
	const char *path = b->kernel.path;

	if (addr >= REAL_MODE_END || size > REAL_MODE_END - addr)
		return boot_error(b->err, b->err_len,
				  "flat image '%s' (%llu bytes at load_addr 0x%llx) must end below 1 MiB: it runs in real mode",
				  path, (unsigned long long)size,
				  (unsigned long long)addr);
	if (addr + size > b->mem->low_size)
		return boot_error(b->err, b->err_len,
				  "flat image '%s' needs RAM up to 0x%llx but the VM has %llu KiB; set memory to at least 1M",
				  path, (unsigned long long)(addr + size),
				  (unsigned long long)(b->mem->low_size >> 10));
	if (b->cfg->tables != BOOT_TABLES_NONE && addr + size > BOOT_FW_START)
		return boot_error(b->err, b->err_len,
				  "flat image '%s' at 0x%llx-0x%llx overlaps the firmware tables at 0x%llx-0x%llx; load it lower or set tables = \"none\"",
				  path, (unsigned long long)addr,
				  (unsigned long long)(addr + size - 1),
				  BOOT_FW_START, BOOT_FW_END - 1);
	if (b->cfg->initrd || b->cfg->cmdline)
		return boot_error(b->err, b->err_len,
				  "flat image '%s' cannot take %s: only Linux and multiboot kernels do",
				  path, b->cfg->initrd ? "an initrd" :
							 "a command line");
	return 0;
}

/*
 * Entry: below 64 KiB, CS = 0 and IP = load_addr, like a BIOS starting a
 * boot sector at 0000:7C00, so an image assembled with "org load_addr"
 * works unchanged. Above, CS = load_addr >> 4 and IP = load_addr & 0xF
 * ("org 0" for a paragraph-aligned image). DS = ES = FS = GS = CS.
 * The stack ends right below the image: SS:SP = 0:load_addr, or for a
 * high image the 64 KiB segment that ends at it, with SP = 0 so the first
 * push lands at load_addr - 2.
 */
int boot_flat_load(struct boot_ctx *b)
{
	uint64_t addr = b->cfg->load_addr;
	uint16_t cs, ip, ss, sp;

	if (flat_check(b, addr, b->kernel.size))
		return -1;
	if (boot_file_to_guest(&b->kernel, 0, b->kernel.size, b->mem, addr,
			       b->err, b->err_len))
		return -1;
	if (addr < 0x10000) {
		cs = 0;
		ip = (uint16_t)addr;
		ss = 0;
		sp = (uint16_t)addr;
	} else {
		cs = (uint16_t)(addr >> 4);
		ip = (uint16_t)(addr & 0xF);
		ss = (uint16_t)((addr >> 4) - 0x1000);
		sp = 0;
	}
	boot_cpu_real_mode(b->cpu, cs, ip, ss, sp);
	return 0;
}
