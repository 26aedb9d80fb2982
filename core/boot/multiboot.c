/* Multiboot v1 (Multiboot Specification 0.6.96): find the header, load an
 * ELF32/ELF64 image or an a.out-kludge image, pass the initrd as the one
 * module, write the boot information after the kernel and enter in flat
 * 32-bit mode.
 */
#include <string.h>

#include "boot_priv.h"

#define MB_HEADER_MAGIC 0x1BADB002u
#define MB_BOOT_MAGIC 0x2BADB002u /* EAX at entry (spec 3.2) */
#define MB_SEARCH_LEN 8192        /* header within the first 8 KiB (3.1) */

/* Header flags (3.1.2). Bits 0-15 are requirements a loader must meet
 * or refuse; bits 16-31 are optional features. */
#define MB_F_PAGE_ALIGN (1u << 0) /* modules page-aligned: always true */
#define MB_F_MEMINFO (1u << 1)    /* mem_* and mmap: always given */
#define MB_F_VIDEO (1u << 2)      /* video mode table: not available */
#define MB_F_AOUT_KLUDGE (1u << 16)
#define MB_F_REQUIRED 0xFFFFu
#define MB_F_SUPPORTED (MB_F_PAGE_ALIGN | MB_F_MEMINFO)

/* Boot information flags and layout (3.3). */
#define MBI_F_MEM (1u << 0)
#define MBI_F_CMDLINE (1u << 2)
#define MBI_F_MODS (1u << 3)
#define MBI_F_MMAP (1u << 6)
#define MBI_F_LOADER_NAME (1u << 9)
#define MBI_LEN 120
#define MBI_MMAP_OFF 128
#define MBI_MMAP_ENTRY 24 /* size field + 20 bytes */
#define MBI_MOD_OFF (MBI_MMAP_OFF + BOOT_E820_MAX * MBI_MMAP_ENTRY)
#define MBI_NAME_OFF (MBI_MOD_OFF + 16)
#define MB_LOADER_NAME "modvm"

/* modvm's boot data goes after the kernel, as GRUB and QEMU place theirs,
 * so that a kernel may load anywhere in RAM outside the firmware area:
 * the boot information page (MBI, mmap, module, loader name, then the
 * GDT), a stack page, then the command line and the module's string. */
#define MBD_PAGE 0x1000
#define MBD_GDT 0xF00                /* in the boot information page */
#define MBD_STACK_TOP (2 * MBD_PAGE) /* the page after it */
#define MBD_STRINGS (2 * MBD_PAGE)
_Static_assert(MBI_NAME_OFF + sizeof(MB_LOADER_NAME) <= MBD_GDT,
	       "the boot information reaches the GDT");

#define PAGE_SIZE 4096ull
#define ALIGN_UP(x, a) (((x) + (a) - 1) & ~((a) - 1))

struct mb_header {
	uint32_t offset; /* in the file */
	uint32_t flags;
	uint32_t header_addr, load_addr, load_end_addr, bss_end_addr;
	uint32_t entry_addr;
};

struct mb_state {
	struct boot_ctx *b;
	struct mb_header h;
	uint64_t entry;
	uint64_t kernel_end; /* highest byte loaded + 1 */
	uint64_t mod_start, mod_end;
	uint64_t data, data_end; /* modvm's boot data (MBD_*) */
	size_t clen, ilen;       /* command line and module string, with NULs */
};

/* Returns the offset of a valid header, or -1; *bad gets the offset of
 * the first magic with a wrong checksum, or -1. */
static long mb_find(const uint8_t *head, size_t len, long *bad)
{
	size_t off;

	*bad = -1;
	if (len > MB_SEARCH_LEN)
		len = MB_SEARCH_LEN;
	for (off = 0; off + 12 <= len; off += 4) {
		uint32_t magic = get_le32(head + off);
		uint32_t flags = get_le32(head + off + 4);
		uint32_t sum = get_le32(head + off + 8);

		if (magic != MB_HEADER_MAGIC)
			continue;
		if ((uint32_t)(magic + flags + sum) == 0)
			return (long)off;
		if (*bad < 0)
			*bad = (long)off;
	}
	return -1;
}

bool boot_multiboot_detect(const uint8_t *head, size_t len)
{
	long bad;

	return mb_find(head, len, &bad) >= 0;
}

static int mb_parse_header(struct mb_state *m)
{
	struct boot_ctx *b = m->b;
	const char *path = b->kernel.path;
	long bad, off = mb_find(b->head, b->head_len, &bad);
	const uint8_t *p;

	if (off < 0 && bad >= 0)
		return boot_error(b->err, b->err_len,
				  "kernel '%s': multiboot magic 0x%08X at offset %ld has a bad checksum",
				  path, MB_HEADER_MAGIC, bad);
	if (off < 0)
		return boot_error(b->err, b->err_len,
				  "kernel '%s' has no multiboot header (magic 0x%08X) in its first %d bytes",
				  path, MB_HEADER_MAGIC, MB_SEARCH_LEN);
	p = b->head + off;
	m->h.offset = (uint32_t)off;
	m->h.flags = get_le32(p + 4);
	if (m->h.flags & MB_F_VIDEO)
		return boot_error(b->err, b->err_len,
				  "multiboot kernel '%s' requires video mode information (header flag bit 2), which modvm does not provide",
				  path);
	if (m->h.flags & MB_F_REQUIRED & ~MB_F_SUPPORTED)
		return boot_error(b->err, b->err_len,
				  "multiboot kernel '%s' requires features modvm does not know (header flags 0x%08X)",
				  path, m->h.flags);
	if (!(m->h.flags & MB_F_AOUT_KLUDGE))
		return 0;
	if ((size_t)off + 32 > b->head_len)
		return boot_error(b->err, b->err_len,
				  "multiboot kernel '%s' is truncated: its header at offset %ld has no room for the address fields",
				  path, off);
	m->h.header_addr = get_le32(p + 12);
	m->h.load_addr = get_le32(p + 16);
	m->h.load_end_addr = get_le32(p + 20);
	m->h.bss_end_addr = get_le32(p + 24);
	m->h.entry_addr = get_le32(p + 28);
	return 0;
}

static bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t bend)
{
	return a < bend && b < a + alen;
}

/* Can [addr, addr+len) take kernel bytes? */
static int mb_check_range(struct mb_state *m, uint64_t addr, uint64_t len)
{
	struct boot_ctx *b = m->b;
	const char *path = b->kernel.path;
	uint64_t end = addr + len;

	if (len == 0)
		return 0;
	if (addr >= VM_4G || len > VM_4G - addr)
		return boot_error(b->err, b->err_len,
				  "multiboot kernel '%s': segment at 0x%llx (%llu bytes) is not below 4 GiB",
				  path, (unsigned long long)addr,
				  (unsigned long long)len);
	if (overlaps(addr, len, BOOT_CONV_END, BOOT_1M))
		return boot_error(b->err, b->err_len,
				  "multiboot kernel '%s': segment at 0x%llx-0x%llx overlaps the firmware area 0x%llx-0xfffff (legacy video, ACPI and MP tables, reserved in the E820 map)",
				  path, (unsigned long long)addr,
				  (unsigned long long)(end - 1), BOOT_CONV_END);
	if (end > VM_PCI_HOLE_START)
		return boot_error(b->err, b->err_len,
				  "multiboot kernel '%s': segment at 0x%llx-0x%llx reaches the PCI hole at 0x%llx",
				  path, (unsigned long long)addr,
				  (unsigned long long)(end - 1), VM_PCI_HOLE_START);
	if (end > b->mem->low_size)
		return boot_error(b->err, b->err_len,
				  "multiboot kernel '%s' needs RAM up to 0x%llx but the VM has %llu MiB; set memory to at least %lluM",
				  path, (unsigned long long)end,
				  (unsigned long long)(b->mem->low_size >> 20),
				  (unsigned long long)boot_mib_up(end));
	if (end > m->kernel_end)
		m->kernel_end = end;
	return 0;
}

/* Copy filesz bytes from the file and zero the rest up to memsz. */
static int mb_load_segment(struct mb_state *m, uint64_t off, uint64_t paddr,
			   uint64_t filesz, uint64_t memsz)
{
	struct boot_ctx *b = m->b;
	uint8_t *bss;

	if (filesz > memsz)
		return boot_error(b->err, b->err_len,
				  "multiboot kernel '%s': segment at 0x%llx has more file bytes (%llu) than memory bytes (%llu)",
				  b->kernel.path, (unsigned long long)paddr,
				  (unsigned long long)filesz,
				  (unsigned long long)memsz);
	if (mb_check_range(m, paddr, memsz))
		return -1;
	if (boot_file_to_guest(&b->kernel, off, filesz, b->mem, paddr,
			       b->err, b->err_len))
		return -1;
	if (memsz > filesz) {
		bss = vm_memory_ptr(b->mem, paddr + filesz, memsz - filesz);
		memset(bss, 0, memsz - filesz);
	}
	return 0;
}

/* a.out kludge (3.1.3): the header's address fields say which part of the
 * file goes where; header_addr locates the file offset of load_addr. */
static int mb_load_aout(struct mb_state *m)
{
	struct boot_ctx *b = m->b;
	const struct mb_header *h = &m->h;
	uint64_t skip, off, end, bss_end;

	skip = (uint64_t)h->header_addr - h->load_addr;
	if (h->header_addr < h->load_addr || skip > h->offset)
		return boot_error(b->err, b->err_len,
				  "multiboot kernel '%s': header_addr 0x%X and load_addr 0x%X do not match the header's file offset %u",
				  b->kernel.path, h->header_addr, h->load_addr,
				  h->offset);
	off = h->offset - skip;
	end = h->load_end_addr ? h->load_end_addr :
				 h->load_addr + (b->kernel.size - off);
	if (end < h->load_addr || end - h->load_addr > b->kernel.size - off)
		return boot_error(b->err, b->err_len,
				  "multiboot kernel '%s' is truncated: load_addr 0x%X to load_end_addr 0x%llX needs %llu bytes from offset %llu, the file has %llu",
				  b->kernel.path, h->load_addr,
				  (unsigned long long)end,
				  (unsigned long long)(end - h->load_addr),
				  (unsigned long long)off,
				  (unsigned long long)b->kernel.size);
	bss_end = h->bss_end_addr > end ? h->bss_end_addr : end;
	m->entry = h->entry_addr;
	return mb_load_segment(m, off, h->load_addr, end - h->load_addr,
			       bss_end - h->load_addr);
}

struct elf_info {
	bool is64;
	uint64_t entry, phoff;
	unsigned phentsize, phnum;
};

#define EM_386 3
#define EM_X86_64 62
#define PT_LOAD 1

static int mb_elf_header(struct mb_state *m, struct elf_info *e)
{
	struct boot_ctx *b = m->b;
	const uint8_t *h = b->head;

	if (b->head_len < 64 || memcmp(h, "\177ELF", 4))
		return boot_error(b->err, b->err_len,
				  "multiboot kernel '%s' is not an ELF file and its header does not set the a.out kludge (flag bit 16)",
				  b->kernel.path);
	e->is64 = h[4] == 2;
	if ((h[4] != 1 && h[4] != 2) || h[5] != 1 ||
	    get_le16(h + 18) != (e->is64 ? EM_X86_64 : EM_386))
		return boot_error(b->err, b->err_len,
				  "multiboot kernel '%s' is not a little-endian x86 ELF32 or x86-64 ELF64 file",
				  b->kernel.path);
	e->entry = e->is64 ? get_le64(h + 24) : get_le32(h + 24);
	e->phoff = e->is64 ? get_le64(h + 32) : get_le32(h + 28);
	e->phentsize = get_le16(h + (e->is64 ? 54 : 42));
	e->phnum = get_le16(h + (e->is64 ? 56 : 44));
	if (e->phentsize < (e->is64 ? 56u : 32u))
		return boot_error(b->err, b->err_len,
				  "multiboot kernel '%s': ELF program header size %u is too small",
				  b->kernel.path, e->phentsize);
	return 0;
}

/* One PT_LOAD. GRUB's rule for the entry point: an e_entry inside a
 * segment's virtual range is moved to the matching physical address,
 * so a higher-half kernel linked with AT() can be entered with paging
 * off. */
static int mb_elf_phdr(struct mb_state *m, const struct elf_info *e,
		       unsigned i)
{
	struct boot_ctx *b = m->b;
	uint8_t ph[56];
	uint64_t off, vaddr, paddr, filesz, memsz;

	if (boot_file_read(&b->kernel, e->phoff + (uint64_t)i * e->phentsize,
			   ph, e->is64 ? 56 : 32, b->err, b->err_len))
		return -1;
	if (get_le32(ph) != PT_LOAD)
		return 0;
	off = e->is64 ? get_le64(ph + 8) : get_le32(ph + 4);
	vaddr = e->is64 ? get_le64(ph + 16) : get_le32(ph + 8);
	paddr = e->is64 ? get_le64(ph + 24) : get_le32(ph + 12);
	filesz = e->is64 ? get_le64(ph + 32) : get_le32(ph + 16);
	memsz = e->is64 ? get_le64(ph + 40) : get_le32(ph + 20);
	if (memsz == 0)
		return 0;
	if (off > b->kernel.size || filesz > b->kernel.size - off)
		return boot_error(b->err, b->err_len,
				  "multiboot kernel '%s' is truncated: segment %u needs %llu bytes at offset %llu, the file has %llu",
				  b->kernel.path, i, (unsigned long long)filesz,
				  (unsigned long long)off,
				  (unsigned long long)b->kernel.size);
	if (e->entry >= vaddr && e->entry - vaddr < memsz)
		m->entry = e->entry - vaddr + paddr;
	return mb_load_segment(m, off, paddr, filesz, memsz);
}

static int mb_load_elf(struct mb_state *m)
{
	struct elf_info e = { 0 };
	unsigned i;

	if (mb_elf_header(m, &e))
		return -1;
	m->entry = e.entry;
	for (i = 0; i < e.phnum; i++)
		if (mb_elf_phdr(m, &e, i))
			return -1;
	if (m->kernel_end == 0)
		return boot_error(m->b->err, m->b->err_len,
				  "multiboot kernel '%s' has no loadable ELF segment",
				  m->b->kernel.path);
	return 0;
}

/* The boot data's place: the first page after the kernel, or 1 MiB when
 * that would reach the firmware area (the kernel then ends below it). */
static int mb_place_data(struct mb_state *m)
{
	struct boot_ctx *b = m->b;
	const char *cmdline = b->cfg->cmdline ? b->cfg->cmdline : "";
	const char *initrd = b->cfg->initrd ? b->cfg->initrd : "";
	uint64_t base, size;

	m->clen = strlen(b->cfg->kernel) + (*cmdline ? 1 + strlen(cmdline) : 0) + 1;
	m->ilen = strlen(initrd) + 1;
	if (m->clen + m->ilen > BOOT_CMDLINE_SIZE)
		return boot_error(b->err, b->err_len,
				  "multiboot kernel '%s': command line too long (%zu bytes with the kernel and module names; at most %llu)",
				  b->kernel.path, m->clen + m->ilen - 2,
				  BOOT_CMDLINE_SIZE - 2);
	size = MBD_STRINGS + ALIGN_UP(m->clen + m->ilen, 16);
	base = ALIGN_UP(m->kernel_end, PAGE_SIZE);
	if (base < BOOT_1M && base + size > BOOT_CONV_END)
		base = BOOT_1M;
	if (base + size > b->mem->low_size)
		return boot_error(b->err, b->err_len,
				  "multiboot kernel '%s': its boot information needs RAM up to 0x%llx but the VM has %llu MiB; set memory to at least %lluM",
				  b->kernel.path, (unsigned long long)(base + size),
				  (unsigned long long)(b->mem->low_size >> 20),
				  (unsigned long long)boot_mib_up(base + size));
	m->data = base;
	m->data_end = base + size;
	return 0;
}

/* The initrd becomes module 0, as high in low RAM as it fits, above the
 * kernel and the boot data, page-aligned (header flag bit 0 satisfied
 * either way). */
static int mb_load_module(struct mb_state *m)
{
	struct boot_ctx *b = m->b;
	struct boot_file f = { .fd = -1 };
	uint64_t floor, addr, top = b->mem->low_size;
	int ret = -1;

	if (!b->cfg->initrd)
		return 0;
	if (boot_file_open(&f, "initrd", b->cfg->initrd, b->err, b->err_len))
		return -1;
	floor = ALIGN_UP(m->data_end > BOOT_1M ? m->data_end : BOOT_1M,
			 PAGE_SIZE);
	addr = f.size <= top ? (top - f.size) & ~(PAGE_SIZE - 1) : 0;
	if (f.size > top || addr < floor) {
		boot_error(b->err, b->err_len,
			   "initrd '%s' (%llu bytes) does not fit above the kernel: together they need %llu MiB of RAM, the VM has %llu MiB; set memory to at least %lluM",
			   f.path, (unsigned long long)f.size,
			   (unsigned long long)boot_mib_up(floor + f.size),
			   (unsigned long long)(top >> 20),
			   (unsigned long long)boot_mib_up(floor + f.size));
		goto out;
	}
	if (boot_file_to_guest(&f, 0, f.size, b->mem, addr, b->err,
			       b->err_len))
		goto out;
	m->mod_start = addr;
	m->mod_end = addr + f.size;
	ret = 0;
out:
	boot_file_close(&f);
	return ret;
}

/* The command line, then the module's string (mb_place_data sized them).
 * The command line starts with the kernel's name, as GRUB passes
 * "path args" (just "path" without args): kernels take argv[0] from it. */
static int mb_write_strings(struct mb_state *m, uint64_t *cmd,
			    uint64_t *mod_string)
{
	struct boot_ctx *b = m->b;
	const char *cmdline = b->cfg->cmdline ? b->cfg->cmdline : "";
	const char *initrd = b->cfg->initrd ? b->cfg->initrd : "";
	size_t nlen = strlen(b->cfg->kernel);

	*cmd = m->data + MBD_STRINGS;
	*mod_string = *cmd + m->clen;
	if (vm_memory_write(b->mem, *cmd, b->cfg->kernel, nlen) ||
	    (*cmdline && (vm_memory_write(b->mem, *cmd + nlen, " ", 1) ||
			  vm_memory_write(b->mem, *cmd + nlen + 1, cmdline,
					  m->clen - nlen - 2))) ||
	    vm_memory_write(b->mem, *cmd + m->clen - 1, "", 1) ||
	    vm_memory_write(b->mem, *mod_string, initrd, m->ilen))
		return boot_error(b->err, b->err_len,
				  "cannot write the multiboot command line");
	return 0;
}

static void mbi_mmap(struct mb_state *m, uint8_t *mbi)
{
	struct boot_ctx *b = m->b;
	unsigned i;

	for (i = 0; i < b->e820_count; i++) {
		uint8_t *e = mbi + MBI_MMAP_OFF + i * MBI_MMAP_ENTRY;

		put_le32(e, MBI_MMAP_ENTRY - 4);
		put_le64(e + 4, b->e820[i].addr);
		put_le64(e + 12, b->e820[i].size);
		put_le32(e + 20, b->e820[i].type);
	}
	put_le32(mbi + 44, b->e820_count * MBI_MMAP_ENTRY);
	put_le32(mbi + 48, (uint32_t)(m->data + MBI_MMAP_OFF));
}

/* Boot information (3.3): mem_lower is KiB below 640 KiB, mem_upper KiB
 * from 1 MiB to the first hole. */
static int mb_write_info(struct mb_state *m)
{
	struct boot_ctx *b = m->b;
	uint64_t low = b->mem->low_size, cmd = 0, mod_string = 0;
	uint32_t flags = MBI_F_MEM | MBI_F_CMDLINE | MBI_F_MMAP |
			 MBI_F_LOADER_NAME;
	uint8_t mbi[MBD_PAGE];

	if (mb_write_strings(m, &cmd, &mod_string))
		return -1;
	memset(mbi, 0, sizeof(mbi));
	put_le32(mbi + 4, (uint32_t)((low < BOOT_CONV_END ? low :
							    BOOT_CONV_END) >> 10));
	put_le32(mbi + 8, (uint32_t)(low > BOOT_1M ? (low - BOOT_1M) >> 10 : 0));
	put_le32(mbi + 16, (uint32_t)cmd);
	if (m->mod_end) {
		uint8_t *mod = mbi + MBI_MOD_OFF;

		flags |= MBI_F_MODS;
		put_le32(mbi + 20, 1);
		put_le32(mbi + 24, (uint32_t)(m->data + MBI_MOD_OFF));
		put_le32(mod, (uint32_t)m->mod_start);
		put_le32(mod + 4, (uint32_t)m->mod_end);
		put_le32(mod + 8, (uint32_t)mod_string);
	}
	mbi_mmap(m, mbi);
	memcpy(mbi + MBI_NAME_OFF, MB_LOADER_NAME, sizeof(MB_LOADER_NAME));
	put_le32(mbi + 64, (uint32_t)(m->data + MBI_NAME_OFF));
	put_le32(mbi, flags);
	return vm_memory_write(b->mem, m->data, mbi, sizeof(mbi));
}

/* Machine state at entry (3.2): flat 32-bit segments, paging off,
 * interrupts off, EAX = magic, EBX = boot information; the GDT and a
 * stack in the boot data. */
int boot_multiboot_load(struct boot_ctx *b)
{
	struct mb_state m = { .b = b };
	int ret;

	if (mb_parse_header(&m))
		return -1;
	if (m.h.flags & MB_F_AOUT_KLUDGE)
		ret = mb_load_aout(&m);
	else
		ret = mb_load_elf(&m);
	if (ret || mb_place_data(&m) || mb_load_module(&m) || mb_write_info(&m))
		return -1;
	if (m.entry >= VM_4G)
		return boot_error(b->err, b->err_len,
				  "multiboot kernel '%s': entry point 0x%llx is not below 4 GiB",
				  b->kernel.path, (unsigned long long)m.entry);
	if (boot_write_gdt_at(b->mem, m.data + MBD_GDT, false))
		return boot_error(b->err, b->err_len, "cannot write the GDT");
	boot_cpu_protected32(b->cpu);
	b->cpu->gdt.base = m.data + MBD_GDT;
	b->cpu->gpr[MODVM_RSP] = m.data + MBD_STACK_TOP;
	b->cpu->rip = m.entry;
	b->cpu->gpr[MODVM_RAX] = MB_BOOT_MAGIC;
	b->cpu->gpr[MODVM_RBX] = m.data;
	return 0;
}
