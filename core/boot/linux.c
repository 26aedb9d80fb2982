/* Linux bzImage loader, following the x86 boot protocol
 * (Documentation/arch/x86/boot.rst): protected-mode kernel at 1 MiB,
 * zero page, command line and initrd, then the 64-bit entry (or the 32-bit
 * one for kernels without XLF_KERNEL_64). The real-mode setup is not run.
 */
#include <string.h>

#include "boot_priv.h"

/* Offsets in the image and in struct boot_params ("zero page"): the setup
 * header sits at the same offset in both. */
#define BP_ACPI_RSDP_ADDR 0x070 /* u64, 2.14+ */
#define BP_ALT_MEM_K 0x1E0      /* u32 */
#define BP_E820_ENTRIES 0x1E8   /* u8 */
#define BP_E820_TABLE 0x2D0     /* 128 x 20 bytes */
#define BP_E820_MAX 128
#define BP_SIZE 4096

#define HDR_START 0x1F1
#define HDR_SETUP_SECTS 0x1F1
#define HDR_SYSSIZE 0x1F4
#define HDR_JUMP 0x200       /* second byte: header end - 0x202 */
#define HDR_MAGIC 0x202      /* "HdrS" */
#define HDR_VERSION 0x206
#define HDR_TYPE_OF_LOADER 0x210
#define HDR_LOADFLAGS 0x211
#define HDR_CODE32_START 0x214
#define HDR_RAMDISK_IMAGE 0x218
#define HDR_RAMDISK_SIZE 0x21C
#define HDR_HEAP_END_PTR 0x224
#define HDR_CMD_LINE_PTR 0x228
#define HDR_INITRD_ADDR_MAX 0x22C
#define HDR_RELOCATABLE 0x234
#define HDR_XLOADFLAGS 0x236
#define HDR_CMDLINE_SIZE 0x238
#define HDR_PREF_ADDRESS 0x258
#define HDR_INIT_SIZE 0x260

#define LOADED_HIGH (1u << 0)
#define CAN_USE_HEAP (1u << 7)
#define XLF_KERNEL_64 (1u << 0)
#define LOADER_UNDEFINED 0xFF

#define PROTOCOL_MIN 0x206   /* cmdline_size; 2.6.22 */
#define PROTOCOL_XLF 0x20C   /* xloadflags: 64-bit entry advertised */
#define PROTOCOL_INIT_SIZE 0x20A
#define PROTOCOL_RSDP 0x20E

#define KERNEL_ADDR BOOT_1M  /* protected-mode kernel, code32_start */
#define ENTRY64_OFFSET 0x200 /* startup_64 = load address + 0x200 */
/* Where a real-mode setup's heap would end (boot.rst's example loader);
 * unused since the setup code does not run, set for completeness. */
#define HEAP_END_PTR (0xE000 - 0x200)
#define INITRD_ADDR_MAX_DEFAULT 0x37FFFFFFull /* before 2.03 */
#define PAGE_SIZE 4096ull

struct linux_image {
	uint16_t version;
	uint64_t setup_size;  /* (setup_sects + 1) * 512 */
	uint64_t kernel_size; /* protected-mode part */
	size_t hdr_end;       /* end of the setup header in the image */
	uint64_t need_end;    /* RAM the kernel needs up to, from 1 MiB */
	uint64_t initrd_addr, initrd_size;
};

bool boot_linux_detect(const uint8_t *head, size_t len)
{
	return len >= HDR_MAGIC + 4 && !memcmp(head + HDR_MAGIC, "HdrS", 4);
}

static int linux_check_header(struct boot_ctx *b, struct linux_image *li)
{
	const uint8_t *h = b->head;
	const char *path = b->kernel.path;

	if (!boot_linux_detect(h, b->head_len))
		return boot_error(b->err, b->err_len,
				  "kernel '%s' is not a Linux bzImage: no \"HdrS\" magic at offset 0x202",
				  path);
	li->version = get_le16(h + HDR_VERSION);
	if (li->version < PROTOCOL_MIN)
		return boot_error(b->err, b->err_len,
				  "kernel '%s' uses Linux boot protocol %u.%02u, too old: modvm needs 2.06 or newer (Linux 2.6.22+)",
				  path, li->version >> 8, li->version & 0xFF);
	if (!(h[HDR_LOADFLAGS] & LOADED_HIGH))
		return boot_error(b->err, b->err_len,
				  "kernel '%s' is a zImage (loaded below 1 MiB); modvm boots bzImage kernels only",
				  path);
	li->hdr_end = HDR_MAGIC + (size_t)h[HDR_JUMP + 1];
	if (li->hdr_end > b->head_len || li->hdr_end > BP_SIZE)
		return boot_error(b->err, b->err_len,
				  "kernel '%s' is truncated: the setup header ends at offset 0x%zx, the file has %llu bytes",
				  path, li->hdr_end,
				  (unsigned long long)b->kernel.size);
	return 0;
}

static int linux_check_sizes(struct boot_ctx *b, struct linux_image *li)
{
	const uint8_t *h = b->head;
	unsigned sects = h[HDR_SETUP_SECTS] ? h[HDR_SETUP_SECTS] : 4;
	uint64_t syssize = (uint64_t)get_le32(h + HDR_SYSSIZE) * 16;

	li->setup_size = (sects + 1ull) * 512;
	if (b->kernel.size <= li->setup_size)
		return boot_error(b->err, b->err_len,
				  "kernel '%s' is truncated: %llu bytes of setup code announced, the file has only %llu bytes",
				  b->kernel.path,
				  (unsigned long long)li->setup_size,
				  (unsigned long long)b->kernel.size);
	li->kernel_size = b->kernel.size - li->setup_size;
	if (syssize > li->kernel_size)
		return boot_error(b->err, b->err_len,
				  "kernel '%s' is truncated: the header announces a %llu-byte protected-mode kernel, the file has %llu bytes after the setup code",
				  b->kernel.path, (unsigned long long)syssize,
				  (unsigned long long)li->kernel_size);
	return 0;
}

/*
 * How much RAM the kernel needs before it can read the memory map: the
 * loaded image, and init_size bytes from where it decompresses, which is
 * pref_address (LOAD_PHYSICAL_ADDR) both for a fixed kernel and for a
 * relocatable one loaded below it.
 */
static int linux_check_memory(struct boot_ctx *b, struct linux_image *li)
{
	const uint8_t *h = b->head;
	uint64_t run = KERNEL_ADDR, init = 0;

	if (li->version >= PROTOCOL_INIT_SIZE) {
		uint64_t pref = get_le64(h + HDR_PREF_ADDRESS);

		if (pref > run)
			run = pref;
		init = get_le32(h + HDR_INIT_SIZE);
	}
	li->need_end = KERNEL_ADDR + li->kernel_size;
	if (run + init > li->need_end)
		li->need_end = run + init;
	if (li->need_end <= b->mem->low_size)
		return 0;
	return boot_error(b->err, b->err_len,
			  "kernel '%s' needs RAM up to %llu MiB (%llu-byte image at 0x%llx, %llu bytes to decompress at 0x%llx) but the VM has %llu MiB; set memory to at least %lluM",
			  b->kernel.path,
			  (unsigned long long)boot_mib_up(li->need_end),
			  (unsigned long long)li->kernel_size, KERNEL_ADDR,
			  (unsigned long long)init, (unsigned long long)run,
			  (unsigned long long)(b->mem->low_size >> 20),
			  (unsigned long long)boot_mib_up(li->need_end));
}

/* The command line fits both the kernel's cmdline_size (without the NUL)
 * and modvm's area. */
static int linux_check_cmdline(struct boot_ctx *b)
{
	const char *cmdline = b->cfg->cmdline ? b->cfg->cmdline : "";
	uint64_t max = get_le32(b->head + HDR_CMDLINE_SIZE);
	size_t len = strlen(cmdline);

	if (max > BOOT_CMDLINE_SIZE - 1)
		max = BOOT_CMDLINE_SIZE - 1;
	if (len <= max)
		return 0;
	return boot_error(b->err, b->err_len,
			  "command line too long for kernel '%s': %zu bytes, the kernel accepts at most %llu",
			  b->kernel.path, len, (unsigned long long)max);
}

/* The initrd goes as high as possible, page-aligned, below both the end of
 * low RAM and initrd_addr_max (the highest address it may occupy), and
 * above everything the kernel needs. */
static int linux_place_initrd(struct boot_ctx *b, struct linux_image *li,
			      const struct boot_file *f)
{
	uint64_t max = get_le32(b->head + HDR_INITRD_ADDR_MAX);
	uint64_t top = b->mem->low_size, floor;

	if (li->version < 0x203 || max == 0)
		max = INITRD_ADDR_MAX_DEFAULT;
	if (max + 1 < top)
		top = max + 1;
	floor = (li->need_end + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
	li->initrd_size = f->size;
	li->initrd_addr = f->size <= top ? (top - f->size) & ~(PAGE_SIZE - 1) :
					   0;
	if (f->size <= top && li->initrd_addr >= floor)
		return 0;
	if (top < b->mem->low_size)
		return boot_error(b->err, b->err_len,
				  "initrd '%s' (%llu bytes) does not fit: kernel '%s' takes RAM up to 0x%llx and accepts an initrd only below 0x%llx (initrd_addr_max)",
				  f->path, (unsigned long long)f->size,
				  b->kernel.path, (unsigned long long)floor,
				  (unsigned long long)top);
	return boot_error(b->err, b->err_len,
			  "initrd '%s' (%llu bytes) does not fit: with the kernel it needs %llu MiB of RAM, the VM has %llu MiB; set memory to at least %lluM",
			  f->path, (unsigned long long)f->size,
			  (unsigned long long)boot_mib_up(floor + f->size),
			  (unsigned long long)(b->mem->low_size >> 20),
			  (unsigned long long)boot_mib_up(floor + f->size));
}

static int linux_load_initrd(struct boot_ctx *b, struct linux_image *li)
{
	struct boot_file f = { .fd = -1 };
	int ret;

	li->initrd_addr = 0;
	li->initrd_size = 0;
	if (!b->cfg->initrd)
		return 0;
	if (boot_file_open(&f, "initrd", b->cfg->initrd, b->err, b->err_len))
		return -1;
	ret = linux_place_initrd(b, li, &f);
	if (!ret)
		ret = boot_file_to_guest(&f, 0, f.size, b->mem, li->initrd_addr,
					 b->err, b->err_len);
	boot_file_close(&f);
	return ret;
}

static void zero_page_e820(struct boot_ctx *b, uint8_t *bp)
{
	unsigned i;

	for (i = 0; i < b->e820_count && i < BP_E820_MAX; i++) {
		uint8_t *e = bp + BP_E820_TABLE + 20 * i;

		put_le64(e, b->e820[i].addr);
		put_le64(e + 8, b->e820[i].size);
		put_le32(e + 16, b->e820[i].type);
	}
	bp[BP_E820_ENTRIES] = (uint8_t)i;
}

/* boot_params: zeroed, the image's setup header copied in (boot.rst,
 * "the 32-bit boot protocol"), then the fields a boot loader writes. */
static int linux_write_zero_page(struct boot_ctx *b,
				 const struct linux_image *li)
{
	uint8_t bp[BP_SIZE];
	uint64_t low = b->mem->low_size;

	memset(bp, 0, sizeof(bp));
	memcpy(bp + HDR_START, b->head + HDR_START, li->hdr_end - HDR_START);
	bp[HDR_TYPE_OF_LOADER] = LOADER_UNDEFINED;
	bp[HDR_LOADFLAGS] |= CAN_USE_HEAP;
	put_le16(bp + HDR_HEAP_END_PTR, HEAP_END_PTR);
	put_le32(bp + HDR_CODE32_START, (uint32_t)KERNEL_ADDR);
	put_le32(bp + HDR_CMD_LINE_PTR, (uint32_t)BOOT_CMDLINE_ADDR);
	put_le32(bp + HDR_RAMDISK_IMAGE, (uint32_t)li->initrd_addr);
	put_le32(bp + HDR_RAMDISK_SIZE, (uint32_t)li->initrd_size);
	put_le32(bp + BP_ALT_MEM_K, (uint32_t)((low - BOOT_1M) >> 10));
	if (li->version >= PROTOCOL_RSDP)
		put_le64(bp + BP_ACPI_RSDP_ADDR, b->rsdp);
	zero_page_e820(b, bp);
	return vm_memory_write(b->mem, BOOT_ZERO_PAGE_ADDR, bp, sizeof(bp));
}

/*
 * 64-bit entry (boot.rst "64-bit Boot Protocol"): long mode on an
 * identity map covering the kernel, zero page and command line, GDT with
 * flat __BOOT_CS/__BOOT_DS, interrupts off, RSI = zero page, at the load
 * address + 0x200. 32-bit entry: paging off, the same GDT with a 32-bit
 * code segment, ESI = zero page, EBP = EDI = EBX = 0, at code32_start.
 */
static int linux_enter(struct boot_ctx *b, const struct linux_image *li)
{
	bool long_mode = li->version >= PROTOCOL_XLF &&
			 (get_le16(b->head + HDR_XLOADFLAGS) & XLF_KERNEL_64);
	struct modvm_cpu_state *s = b->cpu;

	if (boot_write_gdt(b->mem, long_mode))
		return boot_error(b->err, b->err_len, "cannot write the GDT");
	if (long_mode) {
		if (boot_write_identity_map(b->mem))
			return boot_error(b->err, b->err_len,
					  "cannot write the boot page tables");
		boot_cpu_long64(s, BOOT_PML4_ADDR);
		s->rip = KERNEL_ADDR + ENTRY64_OFFSET;
	} else {
		boot_cpu_protected32(s);
		s->rip = KERNEL_ADDR;
	}
	s->gpr[MODVM_RSI] = BOOT_ZERO_PAGE_ADDR;
	s->gpr[MODVM_RBP] = 0;
	s->gpr[MODVM_RDI] = 0;
	s->gpr[MODVM_RBX] = 0;
	return 0;
}

int boot_linux_load(struct boot_ctx *b)
{
	const char *cmdline = b->cfg->cmdline ? b->cfg->cmdline : "";
	struct linux_image li;

	memset(&li, 0, sizeof(li));
	if (linux_check_header(b, &li) || linux_check_sizes(b, &li) ||
	    linux_check_memory(b, &li) || linux_check_cmdline(b))
		return -1;
	if (boot_file_to_guest(&b->kernel, li.setup_size, li.kernel_size,
			       b->mem, KERNEL_ADDR, b->err, b->err_len))
		return -1;
	if (linux_load_initrd(b, &li))
		return -1;
	if (vm_memory_write(b->mem, BOOT_CMDLINE_ADDR, cmdline,
			    strlen(cmdline) + 1) ||
	    linux_write_zero_page(b, &li))
		return boot_error(b->err, b->err_len,
				  "cannot write the zero page or command line");
	return linux_enter(b, &li);
}
