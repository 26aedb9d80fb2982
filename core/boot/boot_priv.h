/* Private interface of core/boot: the guest-physical layout the loaders
 * share, little-endian field access, file reading with error messages, and
 * the pieces (E820, tables, entry states) boot.c assembles into boot_load().
 */
#ifndef MODVM_CORE_BOOT_PRIV_H
#define MODVM_CORE_BOOT_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <modvm/cpu.h>
#include <modvm/pc.h>
#include <modvm/pci.h>

#include "boot.h"

/*
 * Low memory used by the Linux and flat loaders (docs/boot.md has the full
 * map; the multiboot loader puts its boot data after the kernel instead).
 * All of it is E820 RAM below 640 KiB that the kernel may reuse once it has
 * copied what it needs, except the firmware tables, which sit in the
 * E820-reserved BIOS area where a scanning OS looks for them.
 */
#define BOOT_GDT_ADDR       0x00500ull  /* 4 descriptors, 0x10 code, 0x18 data */
#define BOOT_GDT_SIZE       32
#define BOOT_PML4_ADDR      0x01000ull  /* identity map for the 64-bit entry */
#define BOOT_PDPT_ADDR      0x02000ull
#define BOOT_PD_ADDR        0x03000ull  /* 4 page directories: 4 GiB */
#define BOOT_PD_COUNT       4
#define BOOT_ZERO_PAGE_ADDR 0x07000ull  /* Linux struct boot_params */
#define BOOT_STACK_TOP      0x10000ull  /* stack 0x9000-0xFFFF */
#define BOOT_CMDLINE_ADDR   0x20000ull  /* Linux command line */
#define BOOT_CMDLINE_SIZE   0x10000ull  /* most a command line may take */

#define BOOT_CONV_END       0xA0000ull  /* end of conventional memory */
#define BOOT_FW_START       0xE0000ull  /* firmware tables ... */
#define BOOT_ACPI_RSDP_ADDR 0xE0000ull  /* ACPI: RSDP, then the tables */
#define BOOT_ACPI_END       0xF0000ull
#define BOOT_MP_ADDR        0xF0000ull  /* MP floating pointer, then table */
#define BOOT_FW_END         0x100000ull /* ... up to 1 MiB */
#define BOOT_1M             0x100000ull

/* Selectors of the boot GDT; the Linux boot protocol fixes these values
 * (__BOOT_CS, __BOOT_DS) and multiboot accepts any flat segments. */
#define BOOT_CS_SEL 0x10
#define BOOT_DS_SEL 0x18

/* How a PCI INTx pin reaches the IOAPIC, for the DSDT's _PRT: the routing
 * the PCI bus uses (<modvm/pci.h>), with pin 0 = INTA here. */
#define BOOT_PCI_INTX_GSI(slot, pin) MODVM_PCI_INTX_GSI(slot, (pin) + 1)

/* --- little-endian fields ------------------------------------------ */

static inline void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
	put_le16(p, (uint16_t)v);
	put_le16(p + 2, (uint16_t)(v >> 16));
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
	put_le32(p, (uint32_t)v);
	put_le32(p + 4, (uint32_t)(v >> 32));
}

static inline uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t get_le32(const uint8_t *p)
{
	return get_le16(p) | (uint32_t)get_le16(p + 2) << 16;
}

static inline uint64_t get_le64(const uint8_t *p)
{
	return get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

/* Byte that makes the sum of p[0..len) zero (ACPI and MP checksums). */
uint8_t boot_checksum(const uint8_t *p, size_t len);

/* --- errors and files ----------------------------------------------- */

/* Format a message into err and return -1. */
int boot_error(char *err, size_t err_len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Round a byte count up to whole MiB, for "set memory to at least NM". */
uint64_t boot_mib_up(uint64_t bytes);

struct boot_file {
	const char *what; /* "kernel" or "initrd", for messages */
	const char *path;
	int fd;
	uint64_t size;
};

/* Open a regular, non-empty file; the message names what and path. */
int boot_file_open(struct boot_file *f, const char *what, const char *path,
		   char *err, size_t err_len);
void boot_file_close(struct boot_file *f);
/* Read exactly len bytes at off; a short file is reported as truncated. */
int boot_file_read(const struct boot_file *f, uint64_t off, void *buf,
		   size_t len, char *err, size_t err_len);
/* Copy len bytes at file offset off to guest RAM at gpa. */
int boot_file_to_guest(const struct boot_file *f, uint64_t off, uint64_t len,
		       struct vm_memory *mem, uint64_t gpa, char *err,
		       size_t err_len);

/* --- E820 ----------------------------------------------------------- */

#define E820_RAM      1
#define E820_RESERVED 2
#define BOOT_E820_MAX 8

struct boot_e820 {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
};

/* The memory map every loader reports; returns the number of entries. */
unsigned boot_e820_build(const struct vm_memory *mem,
			 struct boot_e820 map[BOOT_E820_MAX]);

/* --- firmware tables ------------------------------------------------ */

/* Write RSDP, XSDT, RSDT, FADT, FACS, MADT and DSDT; *rsdp gets the
 * RSDP address. */
int boot_acpi_write(struct vm_memory *mem, unsigned ncpus, uint64_t *rsdp,
		    char *err, size_t err_len);
/* Build the DSDT AML into buf; returns its length, or 0 if cap is short. */
size_t boot_dsdt_build(uint8_t *buf, size_t cap);
/* Write the Intel MP 1.4 floating pointer and configuration table. */
int boot_mptable_write(struct vm_memory *mem, unsigned ncpus, char *err,
		       size_t err_len);

/* --- entry states ----------------------------------------------------- */

void boot_cpu_real_mode(struct modvm_cpu_state *s, uint16_t cs, uint16_t ip,
			uint16_t ss, uint16_t sp);
/* Flat 32-bit protected mode, paging off, CS 0x10, data 0x18. */
void boot_cpu_protected32(struct modvm_cpu_state *s);
/* 64-bit mode on the identity map at cr3, CS 0x10 (L=1), data 0x18. */
void boot_cpu_long64(struct modvm_cpu_state *s, uint64_t cr3);
/* The boot GDT (BOOT_GDT_SIZE bytes) at BOOT_GDT_ADDR or at addr, with a
 * 64-bit or a 32-bit code segment. */
int boot_write_gdt(struct vm_memory *mem, bool code64);
int boot_write_gdt_at(struct vm_memory *mem, uint64_t addr, bool code64);
/* Identity map of the first 4 GiB with 2 MiB pages; returns 0 or -1. */
int boot_write_identity_map(struct vm_memory *mem);

/* --- loaders -------------------------------------------------------- */

#define BOOT_HEAD_SIZE 8192 /* multiboot: header within the first 8 KiB */

/* What every loader gets: the opened kernel, its first bytes, the memory
 * map and the entry state to fill. */
struct boot_ctx {
	struct vm_memory *mem;
	const struct boot_config *cfg;
	struct modvm_cpu_state *cpu; /* starts as the reset state */
	struct boot_file kernel;
	uint8_t head[BOOT_HEAD_SIZE];
	size_t head_len;
	struct boot_e820 e820[BOOT_E820_MAX];
	unsigned e820_count;
	uint64_t rsdp; /* 0 without ACPI */
	char *err;
	size_t err_len;
};

bool boot_linux_detect(const uint8_t *head, size_t len);
bool boot_multiboot_detect(const uint8_t *head, size_t len);

int boot_linux_load(struct boot_ctx *b);
int boot_multiboot_load(struct boot_ctx *b);
int boot_flat_load(struct boot_ctx *b);

#endif
