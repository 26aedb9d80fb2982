/* The E820 memory map modvm reports to every guest, derived from the PC
 * layout of core/memory.h. Linux gets it in boot_params, multiboot kernels
 * in the mmap of the boot information.
 */
#include <modvm/pc.h>

#include "boot_priv.h"

static void e820_add(struct boot_e820 *map, unsigned *n, uint64_t addr,
		     uint64_t end, uint32_t type)
{
	if (end <= addr || *n >= BOOT_E820_MAX)
		return;
	map[*n].addr = addr;
	map[*n].size = end - addr;
	map[*n].type = type;
	(*n)++;
}

/*
 * 0 - 0x9FFFF is RAM: there is no BIOS, so no EBDA to carve out of it.
 * 0xA0000 - 0xFFFFF is reserved even though memory.c backs it with RAM: it
 * is the legacy video and BIOS area, and holds the firmware tables.
 * The platform devices from the IOAPIC to 4 GiB (IOAPIC, HPET, LAPIC/MSI)
 * are reserved so that an OS never places a PCI BAR there; the PCI window
 * itself (MODVM_PC_PCI_MMIO_BASE..END) stays unlisted, as on real PCs.
 */
unsigned boot_e820_build(const struct vm_memory *mem,
			 struct boot_e820 map[BOOT_E820_MAX])
{
	uint64_t conv_end = mem->low_size < BOOT_CONV_END ? mem->low_size :
							    BOOT_CONV_END;
	unsigned n = 0;

	e820_add(map, &n, 0, conv_end, E820_RAM);
	e820_add(map, &n, BOOT_CONV_END, BOOT_1M, E820_RESERVED);
	e820_add(map, &n, BOOT_1M, mem->low_size, E820_RAM);
	e820_add(map, &n, MODVM_PC_IOAPIC_BASE, VM_4G, E820_RESERVED);
	e820_add(map, &n, VM_4G, VM_4G + mem->high_size, E820_RAM);
	return n;
}
