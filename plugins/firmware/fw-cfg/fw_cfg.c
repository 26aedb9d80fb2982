/* fw-cfg: QEMU's firmware configuration interface on I/O ports (QEMU
 * docs/specs/fw_cfg.rst), what SeaBIOS, OVMF and test kernels such as
 * kvm-unit-tests read to learn about the machine. A 16-bit write to the
 * selector port (0x510) picks an item and rewinds it; each 1-byte read of
 * the data port (0x511) returns its next byte, 0 past the end or for an
 * unknown item. With property dma, the DMA interface too (port 0x514, a
 * big-endian guest-physical address of a FWCfgDmaAccess). Items: the
 * signature "QEMU", the interface ID, a null UUID, RAM size, vCPU count, the file
 * directory (0x19) and the files from 0x20: etc/e820 (modvm's E820 map),
 * bootorder (property) and any the config names. Firmware code adds more files with fwcfg_add_file.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <modvm/modvm.h>

#include "bytes.h"

/* Selector keys (fw_cfg.rst, "Selector Register"; include/standard-headers/
 * linux/qemu_fw_cfg.h) */
#define FW_CFG_SIGNATURE 0x00
#define FW_CFG_ID 0x01
#define FW_CFG_UUID 0x02
#define FW_CFG_RAM_SIZE 0x03
#define FW_CFG_NB_CPUS 0x05
/* Linux through the firmware (QEMU's linuxboot option ROM reads these) */
#define FW_CFG_KERNEL_ADDR 0x07
#define FW_CFG_KERNEL_SIZE 0x08
#define FW_CFG_INITRD_ADDR 0x0a
#define FW_CFG_INITRD_SIZE 0x0b
#define FW_CFG_KERNEL_DATA 0x11
#define FW_CFG_INITRD_DATA 0x12
#define FW_CFG_CMDLINE_ADDR 0x13
#define FW_CFG_CMDLINE_SIZE 0x14
#define FW_CFG_CMDLINE_DATA 0x15
#define FW_CFG_SETUP_ADDR 0x16
#define FW_CFG_SETUP_SIZE 0x17
#define FW_CFG_SETUP_DATA 0x18
#define FW_CFG_MAX_CPUS 0x0f
#define FW_CFG_FILE_DIR 0x19
#define FW_CFG_FILE_FIRST 0x20
#define FW_CFG_WRITE_CHANNEL 0x4000 /* ignored: writes are not supported */
#define FW_CFG_ARCH_LOCAL 0x8000
#define FW_CFG_ENTRY_MASK 0x3fff
#define FW_CFG_INVALID 0xffff
#define FW_CFG_IRQ0_OVERRIDE (FW_CFG_ARCH_LOCAL + 2)

#define FW_CFG_VERSION 0x01        /* ID bit 0: the traditional interface */
#define FW_CFG_VERSION_DMA 0x02    /* ID bit 1: the DMA interface */
#define FW_CFG_DMA_PORT_OFF 4      /* 0x514 for the selector at 0x510 */
#define FW_CFG_DMA_SIGNATURE "QEMU CFG" /* what reads of the DMA port give */
/* FWCfgDmaAccess.control (fw_cfg.rst, "FWCfgDmaAccess") */
#define DMA_CTL_ERROR  0x01
#define DMA_CTL_READ   0x02
#define DMA_CTL_SKIP   0x04
#define DMA_CTL_SELECT 0x08
#define DMA_CTL_WRITE  0x10
#define DMA_CHUNK 4096
#define FW_CFG_MAX_FILE 64         /* keys 0x20 .. 0x5f */
#define FW_CFG_NAME_LEN 56         /* struct FWCfgFile.name, with the NUL */
#define FW_CFG_MAX_FILE_SIZE (64u << 20)

/* The E820 map modvm's boot code gives every guest (core/boot/e820.c),
 * rebuilt here from the PC layout in <modvm/pc.h>: the fw-cfg test checks
 * the two agree. */
#define E820_RAM 1
#define E820_RESERVED 2
#define CONV_END 0xA0000ull
#define ONE_MB 0x100000ull
#define FOUR_GB 0x100000000ull

struct fw_cfg_item {
	uint16_t key;
	uint32_t len;
	uint8_t *data;
	char name[FW_CFG_NAME_LEN]; /* files only, else "" */
};

struct fw_cfg {
	struct modvm_dev dev;
	uint16_t port;               /* properties */
	bool e820;
	const char *files;
	const char *bootorder;
	const char *kernel, *initrd, *cmdline, *linuxboot_rom;
	bool dma;
	struct fw_cfg_item items[FW_CFG_FILE_FIRST + FW_CFG_MAX_FILE + 8];
	unsigned nitems;
	unsigned nfiles;
	/* state: what the guest selected and how far it has read */
	uint16_t cur_key;            /* normalised key or FW_CFG_INVALID */
	uint32_t cur_offset;
	const struct fw_cfg_item *cur; /* derived from cur_key */
	uint32_t dma_high;           /* DMA address bits 63:32, written first */
};

static struct fw_cfg_item *item_find(struct fw_cfg *f, uint16_t key)
{
	for (unsigned i = 0; i < f->nitems; i++)
		if (f->items[i].key == key)
			return &f->items[i];
	return NULL;
}

/* Add or replace item `key` with a copy of data. */
static int fwcfg_add(struct fw_cfg *f, uint16_t key, const void *data,
		     uint32_t len)
{
	struct fw_cfg_item *it = item_find(f, key);
	uint8_t *copy = malloc(len ? len : 1);

	if (!copy)
		return -1;
	memcpy(copy, data, len);
	if (!it) {
		if (f->nitems == MODVM_COUNTOF(f->items)) {
			free(copy);
			return -1;
		}
		it = &f->items[f->nitems++];
		it->key = key;
		it->name[0] = 0;
	}
	free(it->data);
	it->data = copy;
	it->len = len;
	return 0;
}

static int name_cmp(const void *a, const void *b)
{
	const struct fw_cfg_item *const *x = a, *const *y = b;

	return strcmp((*x)->name, (*y)->name);
}

/* FW_CFG_FILE_DIR: a big-endian count, then struct FWCfgFile { be32 size;
 * be16 select; be16 reserved; char name[56]; } per file, sorted by name as
 * QEMU sorts them. */
static int dir_rebuild(struct fw_cfg *f)
{
	const struct fw_cfg_item *files[FW_CFG_MAX_FILE];
	uint8_t dir[4 + FW_CFG_MAX_FILE * 64];
	unsigned n = 0;

	for (unsigned i = 0; i < f->nitems; i++)
		if (f->items[i].name[0])
			files[n++] = &f->items[i];
	qsort(files, n, sizeof(files[0]), name_cmp);
	memset(dir, 0, sizeof(dir));
	be_put(dir, n, 4);
	for (unsigned i = 0; i < n; i++) {
		uint8_t *e = dir + 4 + 64 * i;
		be_put(e, files[i]->len, 4);
		be_put(e + 4, files[i]->key, 2);
		memcpy(e + 8, files[i]->name, strlen(files[i]->name));
	}
	return fwcfg_add(f, FW_CFG_FILE_DIR, dir, 4 + 64 * n);
}

/* Add file `name` (at most 55 bytes, unique) with a copy of data. Returns 0,
 * or -1 with the instance's error set. The entry point for firmware code:
 * any later file goes through here. */
static int fwcfg_add_file(struct fw_cfg *f, const char *name,
			  const void *data, uint32_t len)
{
	uint16_t key = (uint16_t)(FW_CFG_FILE_FIRST + f->nfiles);
	struct fw_cfg_item *it;

	if (!name[0] || strlen(name) >= FW_CFG_NAME_LEN) {
		f->dev.host->set_error(f->dev.inst, "file name \"%s\": 1 to %d bytes",
				   name, FW_CFG_NAME_LEN - 1);
		return -1;
	}
	for (unsigned i = 0; i < f->nitems; i++)
		if (!strcmp(f->items[i].name, name)) {
			f->dev.host->set_error(f->dev.inst, "file \"%s\" is given twice", name);
			return -1;
		}
	if (f->nfiles == FW_CFG_MAX_FILE || fwcfg_add(f, key, data, len)) {
		f->dev.host->set_error(f->dev.inst, "no room for file \"%s\" (at most %d files)",
				   name, FW_CFG_MAX_FILE);
		return -1;
	}
	it = item_find(f, key);
	snprintf(it->name, sizeof(it->name), "%s", name);
	f->nfiles++;
	if (dir_rebuild(f)) {
		f->dev.host->set_error(f->dev.inst, "out of memory");
		return -1;
	}
	return 0;
}

/* etc/e820: struct e820_entry { le64 address; le64 length; le32 type; }
 * (packed, 20 bytes), as QEMU's hw/i386/e820_memory_layout.h. */
static int add_e820(struct fw_cfg *f)
{
	uint64_t size = f->dev.host->mem_size(f->dev.inst);
	uint64_t low = size < MODVM_PC_PCI_HOLE ? size : MODVM_PC_PCI_HOLE;
	uint64_t conv = low < CONV_END ? low : CONV_END;
	const uint64_t map[][3] = {
		{ 0, conv, E820_RAM },
		{ CONV_END, ONE_MB, E820_RESERVED },
		{ ONE_MB, low, E820_RAM },
		{ MODVM_PC_IOAPIC_BASE, FOUR_GB, E820_RESERVED },
		{ FOUR_GB, FOUR_GB + (size - low), E820_RAM },
	};
	uint8_t buf[MODVM_COUNTOF(map) * 20];
	uint32_t len = 0;

	for (unsigned i = 0; i < MODVM_COUNTOF(map); i++) {
		if (map[i][1] <= map[i][0])
			continue;
		le_put(buf + len, map[i][0], 8);
		le_put(buf + len + 8, map[i][1] - map[i][0], 8);
		le_put(buf + len + 16, map[i][2], 4);
		len += 20;
	}
	return fwcfg_add_file(f, "etc/e820", buf, len);
}

/* The whole of host file `path` (what = the property, for messages), at
 * most `max` bytes, in a malloc'd buffer. NULL with the error set. */
static uint8_t *read_host_file(struct fw_cfg *f, const char *what,
			       const char *path, uint64_t max, uint32_t *len)
{
	FILE *fp = fopen(path, "rb");
	uint8_t *buf = NULL;
	struct stat st;

	if (!fp) {
		f->dev.host->set_error(f->dev.inst, "%s: %s: %s", what, path, strerror(errno));
		return NULL;
	}
	if (fstat(fileno(fp), &st) || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size > max) {
		f->dev.host->set_error(f->dev.inst, "%s: %s is not a regular file of at most %llu MiB",
				       what, path, (unsigned long long)(max >> 20));
		goto out;
	}
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf) {
		f->dev.host->set_error(f->dev.inst, "out of memory for %s", path);
		goto out;
	}
	if (fread(buf, 1, (size_t)st.st_size, fp) != (size_t)st.st_size) {
		f->dev.host->set_error(f->dev.inst, "%s: %s: short read", what, path);
		free(buf);
		buf = NULL;
		goto out;
	}
	*len = (uint32_t)st.st_size;
out:
	fclose(fp);
	return buf;
}

static int add_host_file(struct fw_cfg *f, const char *name, const char *path)
{
	FILE *fp = fopen(path, "rb");
	uint8_t *buf = NULL;
	struct stat st;
	size_t got;
	int r = -1;

	if (!fp) {
		f->dev.host->set_error(f->dev.inst, "files: %s (for \"%s\"): %s", path, name,
				   strerror(errno));
		return -1;
	}
	if (fstat(fileno(fp), &st) || !S_ISREG(st.st_mode) ||
	    st.st_size > FW_CFG_MAX_FILE_SIZE) {
		f->dev.host->set_error(f->dev.inst, "files: %s (for \"%s\") is not a regular file of at most %u MiB",
				   path, name, FW_CFG_MAX_FILE_SIZE >> 20);
		goto out;
	}
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf) {
		f->dev.host->set_error(f->dev.inst, "out of memory");
		goto out;
	}
	got = fread(buf, 1, (size_t)st.st_size, fp);
	if (got != (size_t)st.st_size) {
		f->dev.host->set_error(f->dev.inst, "files: %s: short read", path);
		goto out;
	}
	r = fwcfg_add_file(f, name, buf, (uint32_t)got);
out:
	free(buf);
	fclose(fp);
	return r;
}

/* The `files` property: NAME=PATH entries separated by ';'. */
static int add_config_files(struct fw_cfg *f, const char *spec)
{
	char *copy = strdup(spec), *save = NULL;
	int r = 0;

	if (!copy) {
		f->dev.host->set_error(f->dev.inst, "out of memory");
		return -1;
	}
	for (char *e = strtok_r(copy, ";", &save); e && !r;
	     e = strtok_r(NULL, ";", &save)) {
		char *eq = strchr(e, '=');
		if (!eq || eq == e || !eq[1]) {
			f->dev.host->set_error(f->dev.inst, "files: \"%s\" is not NAME=PATH (entries are separated by ';')", e);
			r = -1;
			break;
		}
		*eq = 0;
		r = add_host_file(f, e, eq + 1);
	}
	free(copy);
	return r;
}

/* "bootorder": the firmware's boot device paths, one a line, first
 * first (SeaBIOS src/boot.c; QEMU builds it from bootindex). The property
 * separates them with ';'. */
static int add_bootorder(struct fw_cfg *f, const char *spec)
{
	size_t n;
	char *text;
	int r;

	static const char rom_path[] = "/rom@genroms/linuxboot.bin";
	char *with_rom = NULL;

	if (f->kernel && f->kernel[0]) {
		/* the kernel boots first, as with QEMU's -kernel */
		size_t sl = spec ? strlen(spec) : 0;
		with_rom = malloc(sizeof(rom_path) + 1 + sl);
		if (!with_rom) {
			f->dev.host->set_error(f->dev.inst, "out of memory");
			return -1;
		}
		snprintf(with_rom, sizeof(rom_path) + 1 + sl, "%s%s%s", rom_path,
			 sl ? ";" : "", sl ? spec : "");
		spec = with_rom;
	}
	if (!spec || !(n = strlen(spec)))
		return 0;
	if (n > 4096 + sizeof(rom_path)) {
		f->dev.host->set_error(f->dev.inst, "bootorder: %zu bytes, at most 4096", n);
		free(with_rom);
		return -1;
	}
	text = malloc(n + 2);
	if (!text) {
		f->dev.host->set_error(f->dev.inst, "out of memory");
		free(with_rom);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		text[i] = spec[i] == ';' ? '\n' : spec[i];
	text[n] = '\n';
	text[n + 1] = 0;
	r = fwcfg_add_file(f, "bootorder", text, (uint32_t)n + 2);
	free(text);
	free(with_rom);
	return r;
}

/* ---- Linux through the firmware ---------------------------------------
 * The Linux x86 boot protocol (Documentation/arch/x86/boot.rst) as a boot
 * loader follows it, done here for the linuxboot option ROM (modvm's own,
 * linuxboot.asm, or one the config names, such as QEMU's), which
 * copies the pieces where these items say and runs the real-mode setup:
 * setup at 0x10000 (heap up to the command line), command line at
 * 0x20000, protected-mode kernel at 1 MiB, initrd near the top of RAM
 * below initrd_addr_max (the ROM moves it under the firmware's E801 top). */
#define LB_REAL_ADDR 0x10000u
#define LB_CMDLINE_ADDR 0x20000u
#define LB_PROT_ADDR 0x100000u
#define LB_KERNEL_MAX (256u << 20)
#define LB_INITRD_MAX (1024u << 20)

static int add_u32(struct fw_cfg *f, uint16_t key, uint32_t v)
{
	uint8_t b[4];

	le_put(b, v, 4);
	return fwcfg_add(f, key, b, 4);
}

/* linuxboot.asm, assembled at build time (embed.cmake) */
extern const unsigned char fwcfg_linuxboot_rom[];
extern const unsigned fwcfg_linuxboot_rom_size;

/* modvm's own linuxboot ROM, padded to 512-byte blocks, with its size
 * byte and the checksum byte (the last) that make its bytes sum to 0. */
static uint8_t *own_rom(struct fw_cfg *f, uint32_t *len)
{
	uint32_t n = (fwcfg_linuxboot_rom_size + 511) & ~511u;
	uint8_t *r = calloc(1, n), sum = 0;

	if (!r) {
		f->dev.host->set_error(f->dev.inst, "out of memory");
		return NULL;
	}
	memcpy(r, fwcfg_linuxboot_rom, fwcfg_linuxboot_rom_size);
	r[2] = (uint8_t)(n / 512);
	r[n - 1] = 0;
	for (uint32_t i = 0; i < n; i++)
		sum = (uint8_t)(sum + r[i]);
	r[n - 1] = (uint8_t)-sum;
	*len = n;
	return r;
}

static int add_linux(struct fw_cfg *f)
{
	const struct modvm_host *h = f->dev.host;
	uint8_t *k = NULL, *rd = NULL, *rom = NULL;
	uint32_t klen = 0, rdlen = 0, romlen = 0, setup, proto, cmdmax, rd_max;
	uint64_t low = h->mem_size(f->dev.inst);
	size_t cl = strlen(f->cmdline);
	int r = -1;

	k = read_host_file(f, "kernel", f->kernel, LB_KERNEL_MAX, &klen);
	if (!k)
		goto out;
	if (klen < 0x300 || memcmp(k + 0x202, "HdrS", 4)) {
		h->set_error(f->dev.inst, "kernel: %s is not a Linux bzImage (no \"HdrS\" at offset 0x202)", f->kernel);
		goto out;
	}
	proto = (uint32_t)le_get(k + 0x206, 2);
	setup = ((k[0x1f1] ? k[0x1f1] : 4) + 1u) * 512;
	if (proto < 0x206 || !(k[0x211] & 0x01)) {
		h->set_error(f->dev.inst, "kernel: %s: boot protocol %u.%02u%s; modvm loads 2.06 or newer bzImages (Linux 2.6.22+)",
			     f->kernel, proto >> 8, proto & 0xff, k[0x211] & 1 ? "" : ", not loaded high (a zImage)");
		goto out;
	}
	if (setup >= klen) {
		h->set_error(f->dev.inst, "kernel: %s: the setup code (%u bytes) is the whole file", f->kernel, setup);
		goto out;
	}
	cmdmax = (uint32_t)le_get(k + 0x238, 4);
	if (cl > cmdmax || cl >= 0xffff) {
		h->set_error(f->dev.inst, "cmdline: %zu bytes, the kernel takes at most %u", cl,
			     cmdmax < 0xfffe ? cmdmax : 0xfffe);
		goto out;
	}
	if (low > MODVM_PC_PCI_HOLE)
		low = MODVM_PC_PCI_HOLE;
	if (LB_PROT_ADDR + (uint64_t)(klen - setup) > low) {
		h->set_error(f->dev.inst, "kernel: %s does not fit in RAM at 1 MiB: raise memory", f->kernel);
		goto out;
	}
	/* the setup header a boot loader fills in (boot.rst, "Details of
	 * header fields") */
	k[0x210] = 0xB0;                               /* type_of_loader: QEMU's */
	k[0x211] |= 0x80;                              /* CAN_USE_HEAP */
	le_put(k + 0x224, LB_CMDLINE_ADDR - LB_REAL_ADDR - 0x200, 2); /* heap_end_ptr */
	le_put(k + 0x228, LB_CMDLINE_ADDR, 4);         /* cmd_line_ptr */
	if (f->initrd[0]) {
		uint64_t top;
		rd = read_host_file(f, "initrd", f->initrd, LB_INITRD_MAX, &rdlen);
		if (!rd)
			goto out;
		rd_max = (uint32_t)le_get(k + 0x22c, 4);
		top = low < (uint64_t)rd_max + 1 ? low : (uint64_t)rd_max + 1;
		if (top < LB_PROT_ADDR + (klen - setup) + (uint64_t)rdlen + 0x100000) {
			h->set_error(f->dev.inst, "initrd: %s (%u bytes) does not fit in RAM below %#llx with the kernel: raise memory",
				     f->initrd, rdlen, (unsigned long long)top);
			goto out;
		}
		le_put(k + 0x218, (top - rdlen) & ~0xfffull, 4); /* ramdisk_image */
		le_put(k + 0x21c, rdlen, 4);                    /* ramdisk_size */
	}
	/* modvm's own ROM unless the config names another */
	rom = *f->linuxboot_rom ?
	      read_host_file(f, "linuxboot-rom", f->linuxboot_rom, 64 << 10, &romlen) :
	      own_rom(f, &romlen);
	if (!rom)
		goto out;
	if (romlen < 512 || rom[0] != 0x55 || rom[1] != 0xAA) {
		h->set_error(f->dev.inst, "linuxboot-rom: %s is not an option ROM (no 55 AA): name an option ROM that loads the fw_cfg linuxboot items, or leave linuxboot-rom out for modvm's own", f->linuxboot_rom);
		goto out;
	}
	if (add_u32(f, FW_CFG_SETUP_ADDR, LB_REAL_ADDR) ||
	    add_u32(f, FW_CFG_SETUP_SIZE, setup) ||
	    fwcfg_add(f, FW_CFG_SETUP_DATA, k, setup) ||
	    add_u32(f, FW_CFG_KERNEL_ADDR, LB_PROT_ADDR) ||
	    add_u32(f, FW_CFG_KERNEL_SIZE, klen - setup) ||
	    fwcfg_add(f, FW_CFG_KERNEL_DATA, k + setup, klen - setup) ||
	    add_u32(f, FW_CFG_INITRD_ADDR, (uint32_t)le_get(k + 0x218, 4)) ||
	    add_u32(f, FW_CFG_INITRD_SIZE, rdlen) ||
	    fwcfg_add(f, FW_CFG_INITRD_DATA, rd ? rd : k, rdlen) ||
	    add_u32(f, FW_CFG_CMDLINE_ADDR, LB_CMDLINE_ADDR) ||
	    add_u32(f, FW_CFG_CMDLINE_SIZE, (uint32_t)cl + 1) ||
	    fwcfg_add(f, FW_CFG_CMDLINE_DATA, f->cmdline, (uint32_t)cl + 1)) {
		h->set_error(f->dev.inst, "out of memory");
		goto out;
	}
	r = fwcfg_add_file(f, "genroms/linuxboot.bin", rom, romlen);
out:
	free(k);
	free(rd);
	free(rom);
	return r;
}

static int add_standard_items(struct fw_cfg *f)
{
	uint8_t b[8], uuid[16] = { 0 };
	unsigned cpus = f->dev.host->cpu_count(f->dev.inst);
	int r = 0;

	r |= fwcfg_add(f, FW_CFG_SIGNATURE, "QEMU", 4);
	le_put(b, FW_CFG_VERSION | (f->dma ? FW_CFG_VERSION_DMA : 0), 4);
	r |= fwcfg_add(f, FW_CFG_ID, b, 4);
	r |= fwcfg_add(f, FW_CFG_UUID, uuid, sizeof(uuid));
	le_put(b, f->dev.host->mem_size(f->dev.inst), 8);
	r |= fwcfg_add(f, FW_CFG_RAM_SIZE, b, 8);
	/* NB_CPUS: the CPUs present at boot; MAX_CPUS: also the hot-pluggable
	 * ones, of which modvm has none. */
	le_put(b, cpus, 2);
	r |= fwcfg_add(f, FW_CFG_NB_CPUS, b, 2);
	r |= fwcfg_add(f, FW_CFG_MAX_CPUS, b, 2);
	/* The MADT routes ISA IRQ 0 to IOAPIC pin 2, as this says. */
	le_put(b, 1, 4);
	r |= fwcfg_add(f, FW_CFG_IRQ0_OVERRIDE, b, 4);
	r |= dir_rebuild(f);
	if (r)
		f->dev.host->set_error(f->dev.inst, "out of memory");
	return r ? -1 : 0;
}

/* Selecting rewinds. Bit 14 (write channel) is dropped, bit 15 picks the
 * architecture's own items; a key beyond the table selects nothing. */
static void fwcfg_select(struct fw_cfg *f, uint16_t value)
{
	uint16_t key = value & (FW_CFG_ARCH_LOCAL | FW_CFG_ENTRY_MASK);

	f->cur = item_find(f, key);
	f->cur_key = f->cur ? key : FW_CFG_INVALID;
	f->cur_offset = 0;
}

static uint8_t fwcfg_read_byte(struct fw_cfg *f)
{
	if (!f->cur || f->cur_offset >= f->cur->len)
		return 0;
	return f->cur->data[f->cur_offset++];
}

/* The two ports as one region, as QEMU's fw_cfg_comb_*: a 2-byte write at
 * the selector selects; a 1-byte read of either port reads data; 1-byte
 * writes (the deprecated write path) and other widths do nothing, and reads
 * of other widths return all ones. */
static uint64_t fwcfg_port_read(void *opaque, uint64_t off, unsigned size)
{
	if (size != 1)
		return ~0ull;
	return fwcfg_read_byte(opaque);
}

static void fwcfg_port_write(void *opaque, uint64_t off, uint64_t v,
			     unsigned size)
{
	if (size == 2 && off == 0)
		fwcfg_select(opaque, (uint16_t)v);
}

static const struct modvm_io_ops fwcfg_ops = { fwcfg_port_read, fwcfg_port_write };

/* ---- DMA (fw_cfg.rst, "DMA interface") ------------------------------ */

/* Copy `len` bytes of the selected item from the current offset to guest
 * address `gpa` (zeros past the item's end, as QEMU), or skip them; the
 * offset stays within the item. Returns 0, or -1 if a byte of the range is
 * not RAM. */
static int dma_read(struct fw_cfg *f, uint64_t gpa, uint32_t len, bool skip)
{
	uint8_t chunk[DMA_CHUNK];

	for (uint32_t done = 0; done < len;) {
		uint32_t n = len - done < DMA_CHUNK ? len - done : DMA_CHUNK;
		uint32_t have = 0;

		if (f->cur && f->cur_offset < f->cur->len) {
			have = f->cur->len - f->cur_offset;
			if (have > n)
				have = n;
		}
		if (!skip) {
			if (have)
				memcpy(chunk, f->cur->data + f->cur_offset, have);
			memset(chunk + have, 0, n - have);
			if (gpa + done < gpa ||
			    f->dev.host->mem_write(f->dev.inst, gpa + done, chunk, n))
				return -1;
		}
		f->cur_offset += have;
		done += n;
	}
	return 0;
}

/* One FWCfgDmaAccess { be32 control; be32 length; be64 address; } at gpa:
 * select, read, skip (a write is an error: no item is writable); then the
 * control word is written back 0, or with the error bit. An access that is
 * not in RAM is ignored (there is nowhere to report it). */
static void dma_run(struct fw_cfg *f, uint64_t gpa)
{
	uint8_t a[16], ctl[4];
	uint32_t control, len;
	uint64_t addr;
	int err = 0;

	if (f->dev.host->mem_read(f->dev.inst, gpa, a, sizeof(a)))
		return;
	control = (uint32_t)be_get(a, 4);
	len = (uint32_t)be_get(a + 4, 4);
	addr = be_get(a + 8, 8);
	if (control & DMA_CTL_SELECT)
		fwcfg_select(f, (uint16_t)(control >> 16));
	if (control & DMA_CTL_WRITE)
		err = -1;
	else if (control & DMA_CTL_READ)
		err = dma_read(f, addr, len, false);
	else if (control & DMA_CTL_SKIP)
		err = dma_read(f, addr, len, true);
	be_put(ctl, err ? DMA_CTL_ERROR : 0, 4);
	(void)f->dev.host->mem_write(f->dev.inst, gpa, ctl, 4);
}

static uint32_t bswap32(uint32_t v)
{
	return (v >> 24) | (v >> 8 & 0xff00) | (v << 8 & 0xff0000) | (v << 24);
}

/* The 8-byte big-endian address register: reads give "QEMU CFG"; a
 * 4-byte write at +0 sets bits 63:32, one at +4 bits 31:0 and starts the
 * transfer (so does an 8-byte write at +0). */
static uint64_t dma_port_read(void *opaque, uint64_t off, unsigned size)
{
	uint64_t v = 0;

	(void)opaque;
	if (off >= 8 || size > 8 - off)
		return ~0ull;
	for (unsigned i = 0; i < size; i++)
		v |= (uint64_t)(uint8_t)FW_CFG_DMA_SIGNATURE[off + i] << (8 * i);
	return v;
}

static void dma_port_write(void *opaque, uint64_t off, uint64_t v,
			   unsigned size)
{
	struct fw_cfg *f = opaque;

	if (size == 4 && off == 0) {
		f->dma_high = bswap32((uint32_t)v);
	} else if (size == 4 && off == 4) {
		uint64_t gpa = (uint64_t)f->dma_high << 32 | bswap32((uint32_t)v);
		f->dma_high = 0;
		dma_run(f, gpa);
	} else if (size == 8 && off == 0) {
		f->dma_high = 0;
		dma_run(f, (uint64_t)bswap32((uint32_t)v) << 32 |
			       bswap32((uint32_t)(v >> 32)));
	}
}

static const struct modvm_io_ops dma_ops = { dma_port_read, dma_port_write };

static void fwcfg_reset(void *dev)
{
	struct fw_cfg *f = dev;

	fwcfg_select(f, FW_CFG_SIGNATURE);
	f->dma_high = 0;
}

/* The items are rebuilt from the config; a snapshot holds only the guest's
 * position. Any saved key and offset is safe: an unknown key selects
 * nothing, an offset past the end reads 0. */
static int fwcfg_post_load(void *dev)
{
	struct fw_cfg *f = dev;
	uint32_t offset = f->cur_offset;

	fwcfg_select(f, f->cur_key);
	f->cur_offset = offset;
	return 0;
}

MODVM_STATE_SECTION_HOOKS(fwcfg_state, "fw-cfg", 2, 1, NULL, fwcfg_post_load,
	MODVM_F_U16(struct fw_cfg, cur_key), MODVM_F_U32(struct fw_cfg, cur_offset),
	MODVM_F_U32_V(struct fw_cfg, dma_high, 2));

/* The item copies are ours (also after a failed init). */
static void fwcfg_destroy(void *dev)
{
	struct fw_cfg *f = dev;

	for (unsigned i = 0; i < f->nitems; i++)
		free(f->items[i].data);
	f->nitems = 0;
}

static int fwcfg_init(void *dev)
{
	struct fw_cfg *f = dev;

	if (f->dma && f->port > 0xffff - FW_CFG_DMA_PORT_OFF - 7) {
		f->dev.host->set_error(f->dev.inst, "port 0x%x: the DMA register (port + 4, 8 bytes) would run past 0xffff: lower port or set dma = false",
				       (unsigned)f->port);
		return -1;
	}

	/* the linuxboot ROM reads everything through DMA */
	if (f->kernel && f->kernel[0])
		f->dma = true;
	if (add_standard_items(f) || (f->e820 && add_e820(f)) ||
	    (f->kernel && f->kernel[0] && add_linux(f)) ||
	    add_config_files(f, f->files) || add_bootorder(f, f->bootorder) ||
	    !f->dev.host->pio_register(f->dev.inst, f->port, 2, &fwcfg_ops, f) ||
	    (f->dma && !f->dev.host->pio_register(f->dev.inst, f->port + FW_CFG_DMA_PORT_OFF,
						  8, &dma_ops, f))) {
		fwcfg_destroy(f);
		return -1;
	}
	fwcfg_reset(f);
	return 0;
}

#define F struct fw_cfg
MODVM_DEVICE_DEFINE(.name = "fw-cfg", .version = "1.0.0",
	.description = "QEMU firmware configuration interface (ports 0x510/0x511): signature, CPUs, RAM, file directory",
	.props = MODVM_PROPS(
		MODVM_PROP_INT(F, port, "port", "0x510", 0, 0xfffe,
			       "selector port; the data port follows it (QEMU: 0x510, 0x511)"),
		MODVM_PROP_BOOL(F, dma, "dma", "false",
				"offer the DMA interface (ID bit 1, address register at port + 4, 8 bytes)"),
		MODVM_PROP_BOOL(F, e820, "e820", "true",
				"offer modvm's E820 memory map as file etc/e820"),
		MODVM_PROP_STRING(F, files, "files", "",
				  "more files from the host: NAME=PATH;NAME=PATH (names up to 55 bytes, e.g. opt/org.example/x)"),
		MODVM_PROP_STRING(F, kernel, "kernel", "",
				  "a Linux bzImage the firmware boots first (through modvm's linuxboot option ROM, or linuxboot-rom's; implies dma)"),
		MODVM_PROP_STRING(F, initrd, "initrd", "", "initrd for kernel"),
		MODVM_PROP_STRING(F, cmdline, "cmdline", "", "command line for kernel"),
		MODVM_PROP_STRING(F, linuxboot_rom, "linuxboot-rom", "",
				  "another option ROM that loads kernel through the fw_cfg linuxboot items instead of modvm's own (empty: modvm's)"),
		MODVM_PROP_STRING(F, bootorder, "bootorder", "",
				  "file bootorder for the firmware: device paths separated by ';', first tried first (SeaBIOS: /pci@i0cf8/*@SLOT for virtio-blk in SLOT, HALT to stop after the list)")),
	.state = MODVM_STATE(&fwcfg_state),
	.ops = MODVM_DEVICE_OPS(F, .init = fwcfg_init, .destroy = fwcfg_destroy,
				.reset = fwcfg_reset));
#undef F
