/* Boot loader and firmware table tests: synthetic bzImage, multiboot and
 * flat images are built in a temporary directory, loaded into a fresh
 * guest RAM, and checked byte by byte; every refusal is checked for a
 * message that names the file and the problem.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <modvm/pc.h>

#include "boot/aml.h"
#include "boot/boot.h"
#include "boot/boot_priv.h"
#include "memory.h"
#include "testmain.h"

#define MiB (1024ull * 1024)
#define MEM_SIZE (64 * MiB)

static char tmpdir[64];
static struct vm_memory mem;
static struct modvm_cpu_state cpu;
static char err[1024];
static char paths[8][128];
static unsigned npaths;

/* --- fixtures ------------------------------------------------------- */

static void mem_fresh(uint64_t size)
{
	char e[256];

	if (mem.host)
		vm_memory_destroy(&mem);
	if (vm_memory_init(&mem, size, e, sizeof(e))) {
		fprintf(stderr, "vm_memory_init: %s\n", e);
		abort();
	}
}

static const char *tmp_path(const char *name)
{
	char *p = paths[npaths++ % 8];

	snprintf(p, sizeof(paths[0]), "%s/%s", tmpdir, name);
	return p;
}

/* Write a file of size bytes whose first len bytes are data (the rest is
 * a hole, so large initrds cost nothing). */
static const char *write_file(const char *name, const void *data, size_t len,
			      uint64_t size)
{
	const char *p = tmp_path(name);
	FILE *f = fopen(p, "wb");

	if (!f || fwrite(data, 1, len, f) != len ||
	    ftruncate(fileno(f), (off_t)size) || fclose(f)) {
		perror(p);
		abort();
	}
	return p;
}

static bool has(const char *needle)
{
	if (strstr(err, needle))
		return true;
	fprintf(stderr, "\n  expected \"%s\" in: %s\n", needle, err);
	return false;
}

static uint8_t *gp(uint64_t gpa, uint64_t len)
{
	return vm_memory_ptr(&mem, gpa, len);
}

static uint32_t g32(uint64_t gpa)
{
	return get_le32(gp(gpa, 4));
}

static uint8_t pattern(size_t i)
{
	return (uint8_t)(i * 7 + 3);
}

static int boot(const struct boot_config *cfg)
{
	err[0] = 0;
	return boot_load(&mem, cfg, &cpu, err, sizeof(err));
}

static struct boot_config cfg_for(enum boot_format fmt, const char *kernel)
{
	struct boot_config c = {
		.format = fmt, .kernel = kernel, .tables = BOOT_TABLES_ACPI,
		.ncpus = 1,
	};
	return c;
}

/* --- synthetic bzImage ------------------------------------------------ */

struct bz {
	uint16_t version;
	uint16_t xloadflags;
	uint8_t setup_sects;
	uint32_t pm_size;
	uint32_t init_size;
	uint32_t initrd_addr_max;
	uint32_t cmdline_size;
	size_t file_size; /* 0: the whole image */
	bool no_magic;
};

static const struct bz bz_default = {
	.version = 0x020F, .xloadflags = 0x3, .setup_sects = 4,
	.pm_size = 0x3000, .init_size = 32 * MiB,
	.initrd_addr_max = 0x7FFFFFFF, .cmdline_size = 2047,
};

#define BZ_SETUP(o) (((o)->setup_sects ? (o)->setup_sects : 4) + 1u) * 512
#define BZ_PREF 0x1000000u /* 16 MiB: need_end = 16M + init_size */

static const char *make_bzimage(const char *name, const struct bz *o)
{
	size_t setup = BZ_SETUP(o), total = setup + o->pm_size;
	uint8_t *img = calloc(1, total);
	const char *p;

	img[0x1F1] = o->setup_sects;
	put_le32(img + 0x1F4, o->pm_size / 16);
	put_le16(img + 0x1FE, 0xAA55);
	img[0x200] = 0xEB;
	img[0x201] = 0x6A; /* header ends at 0x26C */
	if (!o->no_magic)
		memcpy(img + 0x202, "HdrS", 4);
	put_le16(img + 0x206, o->version);
	img[0x211] = 0x01; /* LOADED_HIGH */
	put_le32(img + 0x214, 0x100000);
	put_le32(img + 0x22C, o->initrd_addr_max);
	put_le32(img + 0x230, 0x200000);
	img[0x234] = 1;
	put_le16(img + 0x236, o->xloadflags);
	put_le32(img + 0x238, o->cmdline_size);
	put_le64(img + 0x258, BZ_PREF);
	put_le32(img + 0x260, o->init_size);
	for (size_t i = 0; i < o->pm_size; i++)
		img[setup + i] = pattern(i);
	p = write_file(name, img, o->file_size ? o->file_size : total,
		       o->file_size ? o->file_size : total);
	free(img);
	return p;
}

/* --- Linux ------------------------------------------------------------ */

#define ZP BOOT_ZERO_PAGE_ADDR

static void check_kernel_bytes(uint64_t addr, size_t n)
{
	const uint8_t *k = gp(addr, n);
	size_t bad = 0;

	for (size_t i = 0; i < n; i++)
		bad += k[i] != pattern(i);
	CU_ASSERT_EQUAL(bad, 0);
}

static void check_zero_page_e820(void)
{
	const uint8_t *zp = gp(ZP, 4096);
	const uint8_t *e = zp + 0x2D0;

	CU_ASSERT_EQUAL(zp[0x1E8], 4);
	CU_ASSERT_EQUAL(get_le64(e), 0);
	CU_ASSERT_EQUAL(get_le64(e + 8), 0xA0000);
	CU_ASSERT_EQUAL(get_le32(e + 16), 1);
	CU_ASSERT_EQUAL(get_le64(e + 20), 0xA0000);
	CU_ASSERT_EQUAL(get_le32(e + 36), 2);
	CU_ASSERT_EQUAL(get_le64(e + 40), 0x100000);
	CU_ASSERT_EQUAL(get_le64(e + 48), MEM_SIZE - 0x100000);
	CU_ASSERT_EQUAL(get_le32(e + 56), 1);
	CU_ASSERT_EQUAL(get_le64(e + 60), MODVM_PC_IOAPIC_BASE);
	CU_ASSERT_EQUAL(get_le32(e + 76), 2);
}

static void test_linux_64bit(void)
{
	static const uint8_t initrd[] = "initrd contents";
	struct boot_config c = cfg_for(BOOT_FORMAT_LINUX,
				       make_bzimage("bzImage", &bz_default));
	const uint8_t *zp;
	uint32_t rd, rd_size;

	c.cmdline = "console=ttyS0 root=/dev/vda";
	c.initrd = write_file("initrd", initrd, sizeof(initrd), 3 * MiB + 5);
	mem_fresh(MEM_SIZE);
	CU_ASSERT_EQUAL_FATAL(boot(&c), 0);
	check_kernel_bytes(0x100000, bz_default.pm_size);

	zp = gp(ZP, 4096);
	CU_ASSERT_EQUAL(zp[0x210], 0xFF);                 /* type_of_loader */
	CU_ASSERT(zp[0x211] & 0x80);                      /* CAN_USE_HEAP */
	CU_ASSERT(zp[0x211] & 0x01);                      /* LOADED_HIGH kept */
	CU_ASSERT_NOT_EQUAL(get_le16(zp + 0x224), 0);     /* heap_end_ptr */
	CU_ASSERT(!memcmp(zp + 0x202, "HdrS", 4));        /* header copied */
	CU_ASSERT_EQUAL(get_le32(zp + 0x260), 32 * MiB);
	CU_ASSERT_EQUAL(get_le32(zp + 0x228), 0x20000);   /* cmd_line_ptr */
	CU_ASSERT_STRING_EQUAL((char *)gp(0x20000, 64), c.cmdline);
	CU_ASSERT_EQUAL(get_le64(zp + 0x070), 0xE0000);   /* acpi_rsdp_addr */

	rd = get_le32(zp + 0x218);
	rd_size = get_le32(zp + 0x21C);
	CU_ASSERT_EQUAL(rd_size, 3 * MiB + 5);
	CU_ASSERT_EQUAL(rd % 4096, 0);
	CU_ASSERT(rd >= BZ_PREF + bz_default.init_size);  /* above the kernel */
	CU_ASSERT(rd + rd_size <= MEM_SIZE);
	CU_ASSERT(rd + rd_size > MEM_SIZE - 4096);        /* as high as it fits */
	CU_ASSERT(!memcmp(gp(rd, sizeof(initrd)), initrd, sizeof(initrd)));
	check_zero_page_e820();

	CU_ASSERT_EQUAL(cpu.rip, 0x100200);
	CU_ASSERT_EQUAL(cpu.gpr[MODVM_RSI], ZP);
	CU_ASSERT_EQUAL(cpu.cr0 & 0x80000001, 0x80000001); /* PG, PE */
	CU_ASSERT_EQUAL(cpu.cr0 & 0x60000000, 0);          /* caches on */
	CU_ASSERT(cpu.cr4 & 0x20);                         /* PAE */
	CU_ASSERT_EQUAL(cpu.msr.efer & 0x500, 0x500);      /* LME, LMA */
	CU_ASSERT_EQUAL(cpu.seg[MODVM_CS].selector, 0x10);
	CU_ASSERT_EQUAL(cpu.seg[MODVM_CS].l, 1);
	CU_ASSERT_EQUAL(cpu.seg[MODVM_CS].db, 0);
	CU_ASSERT_EQUAL(cpu.seg[MODVM_DS].selector, 0x18);
	CU_ASSERT_EQUAL(cpu.seg[MODVM_SS].selector, 0x18);
	CU_ASSERT_EQUAL(cpu.rflags & 0x200, 0);            /* IF clear */
	CU_ASSERT_EQUAL(cpu.gdt.base, BOOT_GDT_ADDR);
	CU_ASSERT_EQUAL(get_le64(gp(BOOT_GDT_ADDR + 0x10, 8)),
			0x00AF9B000000FFFFull);
	CU_ASSERT_EQUAL(get_le64(gp(BOOT_GDT_ADDR + 0x18, 8)),
			0x00CF93000000FFFFull);
}

/* Walk the guest page tables the way the MMU would for a 2 MiB page. */
static uint64_t translate(uint64_t cr3, uint64_t va)
{
	uint64_t pml4e = get_le64(gp(cr3 + 8 * (va >> 39 & 511), 8));
	uint64_t pdpte = get_le64(gp((pml4e & ~0xFFFull) +
				     8 * (va >> 30 & 511), 8));
	uint64_t pde = get_le64(gp((pdpte & ~0xFFFull) +
				   8 * (va >> 21 & 511), 8));

	if (!(pml4e & 1) || !(pdpte & 1) || !(pde & 1) || !(pde & 0x80))
		return ~0ull;
	return (pde & ~0x1FFFFFull) | (va & 0x1FFFFF);
}

static void test_linux_identity_map(void)
{
	struct boot_config c = cfg_for(BOOT_FORMAT_LINUX,
				       make_bzimage("bzImage", &bz_default));

	mem_fresh(MEM_SIZE);
	CU_ASSERT_EQUAL_FATAL(boot(&c), 0);
	CU_ASSERT_EQUAL(translate(cpu.cr3, 0x100200), 0x100200);
	CU_ASSERT_EQUAL(translate(cpu.cr3, ZP), ZP);
	CU_ASSERT_EQUAL(translate(cpu.cr3, 0x20000), 0x20000);
	CU_ASSERT_EQUAL(translate(cpu.cr3, 0xFEE00000), 0xFEE00000);
	CU_ASSERT_EQUAL(translate(cpu.cr3, 0xFFFFFFFF), 0xFFFFFFFF);
}

static void test_linux_32bit_entry(void)
{
	struct bz o = bz_default;
	struct boot_config c;

	o.xloadflags = 0;
	c = cfg_for(BOOT_FORMAT_LINUX, make_bzimage("bz32", &o));
	mem_fresh(MEM_SIZE);
	CU_ASSERT_EQUAL_FATAL(boot(&c), 0);
	CU_ASSERT_EQUAL(cpu.rip, 0x100000);
	CU_ASSERT_EQUAL(cpu.gpr[MODVM_RSI], ZP);
	CU_ASSERT_EQUAL(cpu.gpr[MODVM_RBX] | cpu.gpr[MODVM_RBP] |
			cpu.gpr[MODVM_RDI], 0);
	CU_ASSERT_EQUAL(cpu.cr0 & 0x80000001, 1);
	CU_ASSERT_EQUAL(cpu.msr.efer, 0);
	CU_ASSERT_EQUAL(cpu.seg[MODVM_CS].selector, 0x10);
	CU_ASSERT_EQUAL(cpu.seg[MODVM_CS].db, 1);
	CU_ASSERT_EQUAL(cpu.seg[MODVM_CS].l, 0);
	CU_ASSERT_EQUAL(cpu.seg[MODVM_CS].limit, 0xFFFFFFFF);
	CU_ASSERT_EQUAL(get_le64(gp(BOOT_GDT_ADDR + 0x10, 8)),
			0x00CF9B000000FFFFull);
	/* Before 2.14 there is no acpi_rsdp_addr; 2.15 image here has it. */
	CU_ASSERT_EQUAL(get_le64(gp(ZP + 0x070, 8)), 0xE0000);
}

static void test_linux_initrd_addr_max(void)
{
	static const uint8_t rd[] = "rd";
	struct bz o = bz_default;
	struct boot_config c;
	uint32_t addr, size;

	o.initrd_addr_max = 56 * MiB - 1;
	c = cfg_for(BOOT_FORMAT_LINUX, make_bzimage("bzmax", &o));
	c.initrd = write_file("rd-small", rd, sizeof(rd), 2 * MiB + 100);
	mem_fresh(MEM_SIZE);
	CU_ASSERT_EQUAL_FATAL(boot(&c), 0);
	addr = g32(ZP + 0x218);
	size = g32(ZP + 0x21C);
	CU_ASSERT_EQUAL(addr % 4096, 0);
	CU_ASSERT(addr + size - 1 <= o.initrd_addr_max);
	CU_ASSERT(addr + size > o.initrd_addr_max + 1 - 4096);
}

static void test_linux_old_protocol_no_rsdp(void)
{
	struct bz o = bz_default;
	struct boot_config c;

	o.version = 0x020D;
	c = cfg_for(BOOT_FORMAT_LINUX, make_bzimage("bz213", &o));
	mem_fresh(MEM_SIZE);
	CU_ASSERT_EQUAL_FATAL(boot(&c), 0);
	CU_ASSERT_EQUAL(get_le64(gp(ZP + 0x070, 8)), 0);
	CU_ASSERT_EQUAL(cpu.rip, 0x100200);
}

static void test_linux_refusals(void)
{
	struct bz o;
	struct boot_config c;
	char longline[3000];

	mem_fresh(MEM_SIZE);

	o = bz_default;
	o.file_size = 0x300; /* header present, setup code cut off */
	c = cfg_for(BOOT_FORMAT_LINUX, make_bzimage("bz-trunc", &o));
	CU_ASSERT_EQUAL(boot(&c), -1);
	CU_ASSERT(has("bz-trunc") && has("truncated") && has("2560"));

	o = bz_default;
	o.file_size = BZ_SETUP(&o) + 0x100; /* syssize says 0x3000 */
	c = cfg_for(BOOT_FORMAT_LINUX, make_bzimage("bz-short", &o));
	CU_ASSERT_EQUAL(boot(&c), -1);
	CU_ASSERT(has("bz-short") && has("truncated"));

	o = bz_default;
	o.no_magic = true;
	c = cfg_for(BOOT_FORMAT_LINUX, make_bzimage("bz-nomagic", &o));
	CU_ASSERT_EQUAL(boot(&c), -1);
	CU_ASSERT(has("bz-nomagic") && has("HdrS"));

	o = bz_default;
	o.version = 0x0205;
	c = cfg_for(BOOT_FORMAT_LINUX, make_bzimage("bz-205", &o));
	CU_ASSERT_EQUAL(boot(&c), -1);
	CU_ASSERT(has("bz-205") && has("protocol") && has("2.05") &&
		  has("2.06"));

	o = bz_default;
	o.init_size = 128 * MiB;
	c = cfg_for(BOOT_FORMAT_LINUX, make_bzimage("bz-big", &o));
	CU_ASSERT_EQUAL(boot(&c), -1);
	CU_ASSERT(has("bz-big") && has("set memory to at least 144M"));

	c = cfg_for(BOOT_FORMAT_LINUX, make_bzimage("bz-ok", &bz_default));
	c.initrd = write_file("initrd-big", "x", 1, 20 * MiB);
	CU_ASSERT_EQUAL(boot(&c), -1);
	CU_ASSERT(has("initrd-big") && has("does not fit") &&
		  has("set memory to at least 68M"));

	c.initrd = tmp_path("no-such-initrd");
	CU_ASSERT_EQUAL(boot(&c), -1);
	CU_ASSERT(has("no-such-initrd") && has("No such file"));

	c.initrd = NULL;
	memset(longline, 'a', sizeof(longline) - 1);
	longline[sizeof(longline) - 1] = 0;
	c.cmdline = longline;
	CU_ASSERT_EQUAL(boot(&c), -1);
	CU_ASSERT(has("bz-ok") && has("too long") && has("2999") &&
		  has("2047"));

	c = cfg_for(BOOT_FORMAT_LINUX, tmp_path("no-such-kernel"));
	CU_ASSERT_EQUAL(boot(&c), -1);
	CU_ASSERT(has("no-such-kernel") && has("No such file"));
}

static void test_initrd_addr_max_refusal(void)
{
	struct bz o = bz_default;
	struct boot_config c;

	o.initrd_addr_max = 50 * MiB - 1;
	c = cfg_for(BOOT_FORMAT_LINUX, make_bzimage("bz-lowmax", &o));
	c.initrd = write_file("rd-4m", "x", 1, 4 * MiB);
	mem_fresh(MEM_SIZE);
	CU_ASSERT_EQUAL(boot(&c), -1);
	CU_ASSERT(has("rd-4m") && has("initrd_addr_max"));
}

/* A refused boot leaves the CPU state alone. */
static void test_failure_keeps_cpu_state(void)
{
	struct boot_config c = cfg_for(BOOT_FORMAT_LINUX,
				       tmp_path("missing-again"));

	memset(&cpu, 0x5A, sizeof(cpu));
	mem_fresh(MEM_SIZE);
	CU_ASSERT_EQUAL(boot(&c), -1);
	CU_ASSERT_EQUAL(cpu.rip, 0x5A5A5A5A5A5A5A5Aull);
}

/* --- multiboot ---------------------------------------------------------- */

#define MB_SEG_OFF 0x1000
#define MB_SEG_FILESZ 0x800
#define MB_SEG_MEMSZ 0x1000
#define MB_PADDR 0x100000u
#define MB_VADDR 0xC0100000u

static void mb_header(uint8_t *p, uint32_t flags, bool bad_sum)
{
	put_le32(p, 0x1BADB002);
	put_le32(p + 4, flags);
	put_le32(p + 8, (uint32_t)-(0x1BADB002u + flags) + (bad_sum ? 1 : 0));
}

/* ELF32 with one PT_LOAD linked at 0xC0100000, loaded at 1 MiB, with bss,
 * and an entry 16 bytes in (virtual). */
static const char *make_mb_elf(const char *name, uint32_t flags,
			       uint32_t paddr, bool bad_sum)
{
	uint8_t img[MB_SEG_OFF + MB_SEG_FILESZ] = { 0 };
	uint8_t *ph = img + 52;

	memcpy(img, "\177ELF", 4);
	img[4] = 1; /* ELFCLASS32 */
	img[5] = 1; /* little-endian */
	img[6] = 1;
	put_le16(img + 16, 2);  /* ET_EXEC */
	put_le16(img + 18, 3);  /* EM_386 */
	put_le32(img + 20, 1);
	put_le32(img + 24, MB_VADDR + 0x10);
	put_le32(img + 28, 52); /* e_phoff */
	put_le16(img + 40, 52);
	put_le16(img + 42, 32);
	put_le16(img + 44, 1);
	put_le32(ph, 1);        /* PT_LOAD */
	put_le32(ph + 4, MB_SEG_OFF);
	put_le32(ph + 8, MB_VADDR);
	put_le32(ph + 12, paddr);
	put_le32(ph + 16, MB_SEG_FILESZ);
	put_le32(ph + 20, MB_SEG_MEMSZ);
	put_le32(ph + 24, 5);
	mb_header(img + 0x80, flags, bad_sum);
	for (size_t i = 0; i < MB_SEG_FILESZ; i++)
		img[MB_SEG_OFF + i] = pattern(i);
	return write_file(name, img, sizeof(img), sizeof(img));
}

/* The command line is "kernel args", as GRUB passes it ("name" alone
 * without args): kernels take argv[0] from it. */
static void check_mb_cmdline(const struct boot_config *c, const char *got)
{
	char want[512];

	if (c->cmdline && *c->cmdline)
		snprintf(want, sizeof(want), "%s %s", c->kernel, c->cmdline);
	else
		snprintf(want, sizeof(want), "%s", c->kernel);
	CU_ASSERT_STRING_EQUAL(got, want);
}

static void check_mbi(const struct boot_config *c, bool with_module)
{
	uint32_t mbi = (uint32_t)cpu.gpr[MODVM_RBX];
	uint32_t flags = g32(mbi), mmap, mmap_len;

	CU_ASSERT_EQUAL(cpu.gpr[MODVM_RAX], 0x2BADB002);
	CU_ASSERT_EQUAL(flags & 0x245, 0x245); /* mem, cmdline, mmap, name */
	CU_ASSERT_EQUAL(!!(flags & 0x8), with_module);
	CU_ASSERT_EQUAL(g32(mbi + 4), 640);
	CU_ASSERT_EQUAL(g32(mbi + 8), (MEM_SIZE - MiB) / 1024);
	check_mb_cmdline(c, (char *)gp(g32(mbi + 16), 1));
	CU_ASSERT_STRING_EQUAL((char *)gp(g32(mbi + 64), 1), "modvm");
	mmap = g32(mbi + 48);
	mmap_len = g32(mbi + 44);
	CU_ASSERT_EQUAL(mmap_len, 4 * 24);
	CU_ASSERT_EQUAL(g32(mmap), 20);
	CU_ASSERT_EQUAL(get_le64(gp(mmap + 4, 8)), 0);
	CU_ASSERT_EQUAL(get_le64(gp(mmap + 12, 8)), 0xA0000);
	CU_ASSERT_EQUAL(g32(mmap + 20), 1);
	CU_ASSERT_EQUAL(get_le64(gp(mmap + 48 + 4, 8)), MiB);
	CU_ASSERT_EQUAL(get_le64(gp(mmap + 48 + 12, 8)), MEM_SIZE - MiB);
}

static void check_protected32(void)
{
	CU_ASSERT_EQUAL(cpu.cr0 & 0x80000001, 1); /* PE, no paging */
	CU_ASSERT_EQUAL(cpu.rflags & 0x20200, 0);  /* IF, VM clear */
	CU_ASSERT_EQUAL(cpu.seg[MODVM_CS].base, 0);
	CU_ASSERT_EQUAL(cpu.seg[MODVM_CS].limit, 0xFFFFFFFF);
	CU_ASSERT_EQUAL(cpu.seg[MODVM_CS].type, 0xB);
	CU_ASSERT_EQUAL(cpu.seg[MODVM_CS].db, 1);
	CU_ASSERT_EQUAL(cpu.seg[MODVM_CS].g, 1);
	CU_ASSERT_EQUAL(cpu.seg[MODVM_DS].limit, 0xFFFFFFFF);
	CU_ASSERT_EQUAL(cpu.seg[MODVM_SS].db, 1);
}

static void test_multiboot_elf(void)
{
	static const uint8_t mod[] = "module bytes";
	struct boot_config c = cfg_for(BOOT_FORMAT_MULTIBOOT,
				       make_mb_elf("mb.elf", 0x3, MB_PADDR,
						   false));
	uint32_t mbi, mods;

	c.cmdline = "loglevel=3";
	c.initrd = write_file("mb-module", mod, sizeof(mod), 100000);
	mem_fresh(MEM_SIZE);
	memset(gp(MB_PADDR, MB_SEG_MEMSZ), 0xAA, MB_SEG_MEMSZ);
	CU_ASSERT_EQUAL_FATAL(boot(&c), 0);
	check_kernel_bytes(MB_PADDR, MB_SEG_FILESZ);
	CU_ASSERT_EQUAL(gp(MB_PADDR + MB_SEG_FILESZ, 1)[0], 0); /* bss */
	CU_ASSERT_EQUAL(gp(MB_PADDR + MB_SEG_MEMSZ - 1, 1)[0], 0);
	CU_ASSERT_EQUAL(cpu.rip, MB_PADDR + 0x10); /* virtual entry moved */
	check_protected32();
	check_mbi(&c, true);

	mbi = (uint32_t)cpu.gpr[MODVM_RBX];
	CU_ASSERT_EQUAL(g32(mbi + 20), 1);
	mods = g32(mbi + 24);
	CU_ASSERT_EQUAL(g32(mods) % 4096, 0);
	CU_ASSERT_EQUAL(g32(mods + 4) - g32(mods), 100000);
	CU_ASSERT(g32(mods) >= MB_PADDR + MB_SEG_MEMSZ);
	CU_ASSERT(!memcmp(gp(g32(mods), sizeof(mod)), mod, sizeof(mod)));
	CU_ASSERT_STRING_EQUAL((char *)gp(g32(mods + 8), 1), c.initrd);
}

static void test_multiboot_aout_kludge(void)
{
	uint8_t img[0x2000];
	uint32_t base = 0x200000, flags = 0x10002;
	struct boot_config c;
	const uint8_t *g;

	for (size_t i = 0; i < sizeof(img); i++)
		img[i] = pattern(i);
	/* Header at file offset 0x40 = address base + 0x40. */
	mb_header(img + 0x40, flags, false);
	put_le32(img + 0x40 + 12, base + 0x40);        /* header_addr */
	put_le32(img + 0x40 + 16, base);               /* load_addr */
	put_le32(img + 0x40 + 20, 0);                  /* whole file */
	put_le32(img + 0x40 + 24, base + 0x3000);      /* bss_end_addr */
	put_le32(img + 0x40 + 28, base + 0x60);        /* entry_addr */
	c = cfg_for(BOOT_FORMAT_MULTIBOOT,
		    write_file("mb.aout", img, sizeof(img), sizeof(img)));
	mem_fresh(MEM_SIZE);
	memset(gp(base, 0x3000), 0xAA, 0x3000);
	CU_ASSERT_EQUAL_FATAL(boot(&c), 0);
	g = gp(base, 0x3000);
	CU_ASSERT(!memcmp(g, img, sizeof(img)));
	CU_ASSERT_EQUAL(g[sizeof(img)], 0);
	CU_ASSERT_EQUAL(g[0x2FFF], 0);
	CU_ASSERT_EQUAL(cpu.rip, base + 0x60);
	check_protected32();
	check_mbi(&c, false);
}

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b,
			   uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

/* Kernels anywhere in RAM outside the firmware area load, low memory
 * included (GRUB and QEMU put their boot information after the image):
 * the boot information, its strings, the GDT and the stack modvm sets up
 * stay clear of the kernel and of the module. */
static void test_multiboot_low_kernel(void)
{
	static const uint32_t at[] = { 0x8000, 0x500, 0x9E000, 0x20000 };

	for (unsigned i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
		static const uint8_t mod[] = "low module";
		struct boot_config c = cfg_for(BOOT_FORMAT_MULTIBOOT,
					       make_mb_elf("mb-low", 0x3, at[i],
							   false));
		uint32_t mbi, mods, cmd;
		uint64_t k = at[i], klen = MB_SEG_MEMSZ;

		c.cmdline = "root=/dev/x quiet";
		c.initrd = write_file("mb-low-mod", mod, sizeof(mod), 5000);
		mem_fresh(MEM_SIZE);
		CU_ASSERT_EQUAL_FATAL(boot(&c), 0);
		check_kernel_bytes(k, MB_SEG_FILESZ);
		CU_ASSERT_EQUAL(cpu.rip, k + 0x10);
		check_protected32();
		check_mbi(&c, true);
		mbi = (uint32_t)cpu.gpr[MODVM_RBX];
		mods = g32(mbi + 24);
		cmd = g32(mbi + 16);
		CU_ASSERT(!ranges_overlap(mbi, 4096, k, klen));
		CU_ASSERT(!ranges_overlap(cmd, strlen(c.kernel) + 32, k, klen));
		CU_ASSERT(!ranges_overlap(g32(mods), 5000, k, klen));
		CU_ASSERT(!ranges_overlap(g32(mods), 5000, mbi, 4096));
		CU_ASSERT(!ranges_overlap(cpu.gdt.base, cpu.gdt.limit + 1, k, klen));
		CU_ASSERT(!ranges_overlap(cpu.gpr[MODVM_RSP] - 1024, 1024, k, klen));
		CU_ASSERT(!ranges_overlap(cpu.gpr[MODVM_RSP] - 1024, 1024, mbi, 4096));
		/* none of it in the firmware area, all of it in RAM */
		CU_ASSERT(!ranges_overlap(mbi, 4096, 0xA0000, 0x60000));
		CU_ASSERT(!ranges_overlap(cpu.gdt.base, 32, 0xA0000, 0x60000));
		/* the GDT modvm entered with is there */
		CU_ASSERT_EQUAL(cpu.gdt.limit, 31);
		CU_ASSERT_EQUAL(get_le64(gp(cpu.gdt.base + 0x10, 8)),
				0x00CF9B000000FFFFull);
		CU_ASSERT_EQUAL(get_le64(gp(cpu.gdt.base + 0x18, 8)),
				0x00CF93000000FFFFull);
	}
}

/* Without a command line the kernel's name is all of it. */
static void test_multiboot_cmdline_name(void)
{
	struct boot_config c = cfg_for(BOOT_FORMAT_MULTIBOOT,
				       make_mb_elf("mb-name", 0x3, MB_PADDR,
						   false));
	uint32_t mbi;

	mem_fresh(MEM_SIZE);
	CU_ASSERT_EQUAL_FATAL(boot(&c), 0);
	mbi = (uint32_t)cpu.gpr[MODVM_RBX];
	CU_ASSERT(g32(mbi) & 0x4);
	CU_ASSERT_STRING_EQUAL((char *)gp(g32(mbi + 16), 1), c.kernel);
	c.cmdline = "";
	CU_ASSERT_EQUAL_FATAL(boot(&c), 0);
	mbi = (uint32_t)cpu.gpr[MODVM_RBX];
	CU_ASSERT_STRING_EQUAL((char *)gp(g32(mbi + 16), 1), c.kernel);
	c.cmdline = "a b";
	CU_ASSERT_EQUAL_FATAL(boot(&c), 0);
	mbi = (uint32_t)cpu.gpr[MODVM_RBX];
	check_mb_cmdline(&c, (char *)gp(g32(mbi + 16), 1));
}

static void test_multiboot_refusals(void)
{
	struct boot_config c;

	mem_fresh(MEM_SIZE);
	c = cfg_for(BOOT_FORMAT_MULTIBOOT,
		    make_mb_elf("mb-badsum", 0x3, MB_PADDR, true));
	CU_ASSERT_EQUAL(boot(&c), -1);
	CU_ASSERT(has("mb-badsum") && has("checksum"));

	c = cfg_for(BOOT_FORMAT_MULTIBOOT,
		    make_mb_elf("mb-video", 0x7, MB_PADDR, false));
	CU_ASSERT_EQUAL(boot(&c), -1);
	CU_ASSERT(has("mb-video") && has("video"));

	c = cfg_for(BOOT_FORMAT_MULTIBOOT,
		    make_mb_elf("mb-vga", 0x3, 0xA0000, false));
	CU_ASSERT_EQUAL(boot(&c), -1);
	CU_ASSERT(has("mb-vga") && has("overlaps") && has("firmware area"));

	c = cfg_for(BOOT_FORMAT_MULTIBOOT,
		    make_mb_elf("mb-high", 0x3, 80 * MiB, false));
	CU_ASSERT_EQUAL(boot(&c), -1);
	CU_ASSERT(has("mb-high") && has("set memory to at least 81M"));

	c = cfg_for(BOOT_FORMAT_MULTIBOOT,
		    make_mb_elf("mb-trunc", 0x3, MB_PADDR, false));
	CU_ASSERT_EQUAL(truncate(c.kernel, MB_SEG_OFF + 0x100), 0);
	CU_ASSERT_EQUAL(boot(&c), -1);
	CU_ASSERT(has("mb-trunc") && has("truncated"));

	{
		uint8_t raw[256] = { 0 };

		mb_header(raw + 16, 0x3, false);
		c = cfg_for(BOOT_FORMAT_AUTO,
			    write_file("mb-raw", raw, sizeof(raw), sizeof(raw)));
		CU_ASSERT_EQUAL(boot(&c), -1);
		CU_ASSERT(has("mb-raw") && has("not an ELF file"));
	}

	c = cfg_for(BOOT_FORMAT_MULTIBOOT,
		    make_bzimage("bz-as-mb", &bz_default));
	CU_ASSERT_EQUAL(boot(&c), -1);
	CU_ASSERT(has("bz-as-mb") && has("no multiboot header"));
}

/* --- flat and auto ---------------------------------------------------- */

static void test_flat_low(void)
{
	uint8_t img[512];
	struct boot_config c;

	for (size_t i = 0; i < sizeof(img); i++)
		img[i] = pattern(i);
	c = cfg_for(BOOT_FORMAT_FLAT,
		    write_file("boot.bin", img, sizeof(img), sizeof(img)));
	c.load_addr = 0x7C00;
	mem_fresh(MEM_SIZE);
	CU_ASSERT_EQUAL_FATAL(boot(&c), 0);
	check_kernel_bytes(0x7C00, sizeof(img));
	CU_ASSERT_EQUAL(cpu.seg[MODVM_CS].selector, 0);
	CU_ASSERT_EQUAL(cpu.seg[MODVM_CS].base, 0);
	CU_ASSERT_EQUAL(cpu.rip, 0x7C00);
	CU_ASSERT_EQUAL(cpu.seg[MODVM_SS].base, 0);
	CU_ASSERT_EQUAL(cpu.gpr[MODVM_RSP], 0x7C00);
	CU_ASSERT_EQUAL(cpu.cr0 & 1, 0);
	CU_ASSERT_EQUAL(cpu.seg[MODVM_CS].limit, 0xFFFF);
}

static void test_flat_high(void)
{
	uint8_t img[4096];
	struct boot_config c;
	uint64_t stack;

	for (size_t i = 0; i < sizeof(img); i++)
		img[i] = pattern(i);
	c = cfg_for(BOOT_FORMAT_FLAT,
		    write_file("high.bin", img, sizeof(img), sizeof(img)));
	c.load_addr = 0x12345;
	c.tables = BOOT_TABLES_NONE;
	mem_fresh(MEM_SIZE);
	CU_ASSERT_EQUAL_FATAL(boot(&c), 0);
	check_kernel_bytes(0x12345, sizeof(img));
	CU_ASSERT_EQUAL(cpu.seg[MODVM_CS].selector, 0x1234);
	CU_ASSERT_EQUAL(cpu.seg[MODVM_CS].base + cpu.rip, 0x12345);
	CU_ASSERT_EQUAL(cpu.seg[MODVM_DS].base, 0x12340);
	/* The first push (SP - 2, wrapping) lands right below the image. */
	stack = cpu.seg[MODVM_SS].base + ((cpu.gpr[MODVM_RSP] - 2) & 0xFFFF);
	CU_ASSERT(stack < 0x12345 && stack >= 0x12345 - 0x20);
}

static void test_flat_refusals(void)
{
	uint8_t img[0x10000] = { 0 };
	struct boot_config c;

	mem_fresh(MEM_SIZE);
	c = cfg_for(BOOT_FORMAT_FLAT,
		    write_file("big.bin", img, sizeof(img), sizeof(img)));
	c.load_addr = 0xF8000;
	c.tables = BOOT_TABLES_NONE;
	CU_ASSERT_EQUAL(boot(&c), -1);
	CU_ASSERT(has("big.bin") && has("1 MiB"));

	c.load_addr = 0xD8000;
	c.tables = BOOT_TABLES_ACPI;
	CU_ASSERT_EQUAL(boot(&c), -1);
	CU_ASSERT(has("big.bin") && has("firmware tables"));

	c.load_addr = 0x10000;
	c.cmdline = "quiet";
	CU_ASSERT_EQUAL(boot(&c), -1);
	CU_ASSERT(has("big.bin") && has("command line"));
}

static void test_auto_detect(void)
{
	uint8_t junk[1024];
	struct boot_config c;

	mem_fresh(MEM_SIZE);
	c = cfg_for(BOOT_FORMAT_AUTO, make_bzimage("auto-bz", &bz_default));
	CU_ASSERT_EQUAL(boot(&c), 0);
	CU_ASSERT_EQUAL(cpu.rip, 0x100200);

	c = cfg_for(BOOT_FORMAT_AUTO,
		    make_mb_elf("auto-mb", 0x3, MB_PADDR, false));
	CU_ASSERT_EQUAL(boot(&c), 0);
	CU_ASSERT_EQUAL(cpu.gpr[MODVM_RAX], 0x2BADB002);

	memset(junk, 0x90, sizeof(junk));
	c = cfg_for(BOOT_FORMAT_AUTO,
		    write_file("auto-junk", junk, sizeof(junk), sizeof(junk)));
	CU_ASSERT_EQUAL(boot(&c), -1);
	CU_ASSERT(has("auto-junk") && has("bzImage") && has("multiboot") &&
		  has("flat"));

	c = cfg_for(BOOT_FORMAT_AUTO, write_file("empty", "", 0, 0));
	CU_ASSERT_EQUAL(boot(&c), -1);
	CU_ASSERT(has("empty") && has("is empty"));

	c = cfg_for(BOOT_FORMAT_AUTO, make_bzimage("auto-bz2", &bz_default));
	c.ncpus = 0;
	CU_ASSERT_EQUAL(boot(&c), -1);
	CU_ASSERT(has("CPUs"));
}

/* --- firmware tables ---------------------------------------------------- */

static bool sums_to_zero(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;

	while (len--)
		sum += *p++;
	return sum == 0;
}

static uint64_t find_rsdp(void)
{
	for (uint64_t a = 0xE0000; a < 0x100000; a += 16)
		if (!memcmp(gp(a, 8), "RSD PTR ", 8))
			return a;
	return 0;
}

/* A table at addr with a valid checksum, or NULL. */
static const uint8_t *acpi_table(uint64_t addr, const char *sig)
{
	const uint8_t *t = gp(addr, 36);

	if (!t || memcmp(t, sig, 4))
		return NULL;
	t = gp(addr, get_le32(t + 4));
	CU_ASSERT(t && sums_to_zero(t, get_le32(t + 4)));
	return t;
}

static const uint8_t *xsdt_find(const uint8_t *xsdt, const char *sig)
{
	unsigned n = (get_le32(xsdt + 4) - 36) / 8;

	for (unsigned i = 0; i < n; i++) {
		const uint8_t *t = gp(get_le64(xsdt + 36 + 8 * i), 36);

		if (t && !memcmp(t, sig, 4))
			return acpi_table(get_le64(xsdt + 36 + 8 * i), sig);
	}
	return NULL;
}

static void check_fadt(const uint8_t *f)
{
	CU_ASSERT_EQUAL(get_le32(f + 4), 276);
	CU_ASSERT_EQUAL(get_le16(f + 46), MODVM_PC_SCI_IRQ);
	CU_ASSERT_EQUAL(get_le32(f + 56), MODVM_PC_PM1A_EVT);
	CU_ASSERT_EQUAL(get_le32(f + 64), MODVM_PC_PM1A_CNT);
	CU_ASSERT_EQUAL(get_le32(f + 76), MODVM_PC_PM_TMR);
	CU_ASSERT_EQUAL(f[91], 4);
	CU_ASSERT_EQUAL(f[108], 0x32); /* CENTURY: the rtc-cmos century byte */
	CU_ASSERT_EQUAL(get_le32(f + 112) & (1u << 20), 0); /* not HW-reduced */
	CU_ASSERT_EQUAL(f[148], 1); /* X_PM1a_EVT_BLK in system I/O */
	CU_ASSERT_EQUAL(get_le64(f + 152), MODVM_PC_PM1A_EVT);
	CU_ASSERT_EQUAL(get_le64(f + 176), MODVM_PC_PM1A_CNT);
	CU_ASSERT_EQUAL(get_le64(f + 212), MODVM_PC_PM_TMR);
	CU_ASSERT_EQUAL(get_le64(f + 120), MODVM_PC_PORT_RESET);
	CU_ASSERT_EQUAL(get_le32(f + 40), get_le64(f + 140)); /* DSDT */
	CU_ASSERT_EQUAL(get_le64(f + 132), 0); /* X_FIRMWARE_CTRL */
	CU_ASSERT_EQUAL(get_le32(f + 36) % 64, 0);
	CU_ASSERT(!memcmp(gp(get_le32(f + 36), 4), "FACS", 4));
}

static void check_madt(const uint8_t *m, unsigned ncpus)
{
	uint32_t len = get_le32(m + 4);
	unsigned lapics = 0, ioapics = 0, irq0 = 0, sci = 0;

	CU_ASSERT_EQUAL(get_le32(m + 36), MODVM_PC_LAPIC_BASE);
	for (uint32_t off = 44; off < len; off += m[off + 1]) {
		const uint8_t *e = m + off;

		if (e[1] == 0)
			break;
		if (e[0] == 0) {
			CU_ASSERT_EQUAL(e[3], lapics);
			CU_ASSERT(get_le32(e + 4) & 1);
			lapics++;
		} else if (e[0] == 1) {
			CU_ASSERT_EQUAL(e[2], ncpus);
			CU_ASSERT_EQUAL(get_le32(e + 4), MODVM_PC_IOAPIC_BASE);
			CU_ASSERT_EQUAL(get_le32(e + 8), 0);
			ioapics++;
		} else if (e[0] == 2 && e[3] == 0) {
			CU_ASSERT_EQUAL(get_le32(e + 4), 2);
			irq0++;
		} else if (e[0] == 2 && e[3] == MODVM_PC_SCI_IRQ) {
			CU_ASSERT_EQUAL(get_le32(e + 4), MODVM_PC_SCI_IRQ);
			CU_ASSERT_EQUAL(get_le16(e + 8), 0xD); /* level, high */
			sci++;
		}
	}
	CU_ASSERT_EQUAL(lapics, ncpus);
	CU_ASSERT_EQUAL(ioapics, 1);
	CU_ASSERT_EQUAL(irq0, 1);
	CU_ASSERT_EQUAL(sci, 1);
}

static bool contains(const uint8_t *p, size_t len, const char *s)
{
	return memmem(p, len, s, strlen(s)) != NULL;
}

static void test_acpi_tables(void)
{
	uint8_t img[16] = { 0xF4 };
	struct boot_config c = cfg_for(BOOT_FORMAT_FLAT,
				       write_file("hlt.bin", img, 16, 16));
	const uint8_t *rsdp, *xsdt, *rsdt, *fadt, *madt, *dsdt;
	uint64_t a;

	c.load_addr = 0x7C00;
	c.ncpus = 4;
	mem_fresh(MEM_SIZE);
	CU_ASSERT_EQUAL_FATAL(boot(&c), 0);
	a = find_rsdp();
	CU_ASSERT_EQUAL_FATAL(a, 0xE0000);
	rsdp = gp(a, 36);
	CU_ASSERT(sums_to_zero(rsdp, 20));
	CU_ASSERT(sums_to_zero(rsdp, 36));
	CU_ASSERT_EQUAL(rsdp[15], 2);
	CU_ASSERT_EQUAL(get_le32(rsdp + 20), 36);

	xsdt = acpi_table(get_le64(rsdp + 24), "XSDT");
	rsdt = acpi_table(get_le32(rsdp + 16), "RSDT");
	CU_ASSERT_PTR_NOT_NULL_FATAL(xsdt);
	CU_ASSERT_PTR_NOT_NULL(rsdt);
	fadt = xsdt_find(xsdt, "FACP");
	madt = xsdt_find(xsdt, "APIC");
	CU_ASSERT_PTR_NOT_NULL_FATAL(fadt);
	CU_ASSERT_PTR_NOT_NULL_FATAL(madt);
	check_fadt(fadt);
	check_madt(madt, 4);
	dsdt = acpi_table(get_le64(fadt + 140), "DSDT");
	CU_ASSERT_PTR_NOT_NULL_FATAL(dsdt);
	CU_ASSERT(contains(dsdt, get_le32(dsdt + 4), "_S5_"));
	CU_ASSERT(contains(dsdt, get_le32(dsdt + 4), "PCI0"));
	CU_ASSERT(contains(dsdt, get_le32(dsdt + 4), "_PRT"));
	/* Every table lies in the reserved BIOS area. */
	CU_ASSERT(get_le64(rsdp + 24) >= 0xE0000 &&
		  get_le64(rsdp + 24) < 0x100000);
}

static void test_acpi_max_cpus(void)
{
	uint8_t img[16] = { 0xF4 };
	struct boot_config c = cfg_for(BOOT_FORMAT_FLAT,
				       write_file("hlt2.bin", img, 16, 16));
	const uint8_t *xsdt;

	c.load_addr = 0x7C00;
	c.ncpus = 254;
	mem_fresh(MEM_SIZE);
	CU_ASSERT_EQUAL_FATAL(boot(&c), 0);
	xsdt = acpi_table(get_le64(gp(find_rsdp() + 24, 8)), "XSDT");
	CU_ASSERT_PTR_NOT_NULL_FATAL(xsdt);
	check_madt(xsdt_find(xsdt, "APIC"), 254);
	c.ncpus = 255;
	CU_ASSERT_EQUAL(boot(&c), -1);
	CU_ASSERT(has("255 CPUs"));
}

static void test_dsdt_s5_encoding(void)
{
	uint8_t buf[8192];
	size_t len = boot_dsdt_build(buf, sizeof(buf));
	const uint8_t *s5 = memmem(buf, len, "_S5_", 4);

	CU_ASSERT_FATAL(s5 != NULL);
	/* NameOp \_S5_ PackageOp PkgLength(6) NumElements(4) then SLP_TYPs */
	CU_ASSERT_EQUAL(s5[-2], 0x08);
	CU_ASSERT_EQUAL(s5[-1], '\\');
	CU_ASSERT_EQUAL(s5[4], 0x12);
	CU_ASSERT_EQUAL(s5[6], 4);
	CU_ASSERT_EQUAL(s5[7], MODVM_PC_SLP_TYP_S5 == 0 ? 0x00 : 0x0A);
	CU_ASSERT_EQUAL(boot_dsdt_build(buf, 100), 0); /* too small: refused */
}

static void test_aml_pkglength(void)
{
	uint8_t buf[8192], data[5000] = { 0 };
	struct aml a;
	size_t m;

	aml_init(&a, buf, sizeof(buf));
	m = aml_package_begin(&a, 0);
	aml_end(&a, m);
	CU_ASSERT_EQUAL(a.len, 3);
	CU_ASSERT_EQUAL(buf[1], 2); /* itself + NumElements */

	aml_init(&a, buf, sizeof(buf));
	aml_buffer(&a, data, 100); /* BytePrefix 0x64 + 100 + 2-byte PkgLength */
	CU_ASSERT_EQUAL(buf[0], 0x11);
	CU_ASSERT_EQUAL(buf[1], 0x40 | (104 & 0xF));
	CU_ASSERT_EQUAL(buf[2], 104 >> 4);
	CU_ASSERT_EQUAL(a.len, 1 + 104);

	aml_init(&a, buf, sizeof(buf));
	aml_buffer(&a, data, 5000); /* 3 + 5000 + 3-byte PkgLength */
	CU_ASSERT_EQUAL(buf[1] >> 6, 2);
	CU_ASSERT_EQUAL((buf[1] & 0xF) | buf[2] << 4 | buf[3] << 12, 5006);
	CU_ASSERT_EQUAL(a.len, 1 + 5006);

	CU_ASSERT_EQUAL(aml_eisaid("PNP0A03"), 0x030AD041);
	aml_init(&a, buf, 4);
	aml_buffer(&a, data, 100);
	CU_ASSERT(a.overflow);
}

static void test_mptable(void)
{
	uint8_t img[16] = { 0xF4 };
	struct boot_config c = cfg_for(BOOT_FORMAT_FLAT,
				       write_file("hlt3.bin", img, 16, 16));
	const uint8_t *mpf = NULL, *t;
	unsigned cpus = 0, ioapics = 0, buses = 0, ints = 0;
	uint64_t a;
	size_t off;

	c.load_addr = 0x7C00;
	c.ncpus = 2;
	c.tables = BOOT_TABLES_MPTABLE;
	mem_fresh(MEM_SIZE);
	CU_ASSERT_EQUAL_FATAL(boot(&c), 0);
	CU_ASSERT_EQUAL(find_rsdp(), 0); /* no ACPI */
	for (a = 0xF0000; a < 0x100000 && !mpf; a += 16)
		if (!memcmp(gp(a, 4), "_MP_", 4))
			mpf = gp(a, 16);
	CU_ASSERT_PTR_NOT_NULL_FATAL(mpf);
	CU_ASSERT(sums_to_zero(mpf, 16));
	CU_ASSERT_EQUAL(mpf[9], 4);
	t = gp(get_le32(mpf + 4), 44);
	CU_ASSERT_FATAL(t && !memcmp(t, "PCMP", 4));
	t = gp(get_le32(mpf + 4), get_le16(t + 4));
	CU_ASSERT(sums_to_zero(t, get_le16(t + 4)));
	CU_ASSERT_EQUAL(get_le32(t + 36), MODVM_PC_LAPIC_BASE);
	for (off = 44; off < get_le16(t + 4);) {
		switch (t[off]) {
		case 0:
			CU_ASSERT_EQUAL(t[off + 3] & 2, cpus == 0 ? 2 : 0);
			cpus++;
			off += 20;
			continue;
		case 1:
			CU_ASSERT(!memcmp(t + off + 2, "ISA", 3));
			buses++;
			break;
		case 2:
			CU_ASSERT_EQUAL(t[off + 1], 2);
			/* the ioapic plugin's version: Linux picks the EOI
			 * path from it */
			CU_ASSERT_EQUAL(t[off + 2], 0x20);
			CU_ASSERT_EQUAL(get_le32(t + off + 4),
					MODVM_PC_IOAPIC_BASE);
			ioapics++;
			break;
		case 3:
			if (t[off + 1] == 0 && t[off + 5] == 0)
				CU_ASSERT_EQUAL(t[off + 7], 2); /* IRQ0 -> 2 */
			ints++;
			break;
		}
		off += 8;
	}
	CU_ASSERT_EQUAL(cpus, 2);
	CU_ASSERT_EQUAL(buses, 1);
	CU_ASSERT_EQUAL(ioapics, 1);
	CU_ASSERT_EQUAL(ints, 16);
	CU_ASSERT_EQUAL(get_le16(t + 34), cpus + buses + ioapics + ints + 2);
}

static void test_tables_need_1m(void)
{
	uint8_t img[16] = { 0xF4 };
	struct boot_config c = cfg_for(BOOT_FORMAT_FLAT,
				       write_file("hlt4.bin", img, 16, 16));

	c.load_addr = 0x7C00;
	mem_fresh(512 * 1024);
	CU_ASSERT_EQUAL(boot(&c), -1);
	CU_ASSERT(has("ACPI") && has("1 MiB"));
	c.tables = BOOT_TABLES_NONE;
	CU_ASSERT_EQUAL(boot(&c), 0);
}

/* --- memory map and reset state --------------------------------------- */

static void test_e820_high_memory(void)
{
	struct boot_e820 map[BOOT_E820_MAX];
	unsigned n;

	mem_fresh(4 * 1024 * MiB);
	n = boot_e820_build(&mem, map);
	CU_ASSERT_EQUAL(n, 5);
	CU_ASSERT_EQUAL(map[2].addr, MiB);
	CU_ASSERT_EQUAL(map[2].addr + map[2].size, VM_PCI_HOLE_START);
	CU_ASSERT_EQUAL(map[3].type, E820_RESERVED);
	CU_ASSERT_EQUAL(map[3].addr + map[3].size, VM_4G);
	CU_ASSERT_EQUAL(map[4].addr, VM_4G);
	CU_ASSERT_EQUAL(map[4].size, 1024 * MiB);
	CU_ASSERT_EQUAL(map[4].type, E820_RAM);
}

static void test_reset_state(void)
{
	struct modvm_cpu_state s;

	memset(&s, 0xFF, sizeof(s));
	boot_cpu_reset_state(&s);
	CU_ASSERT_EQUAL(s.seg[MODVM_CS].selector, 0xF000);
	CU_ASSERT_EQUAL(s.seg[MODVM_CS].base, 0xFFFF0000);
	CU_ASSERT_EQUAL(s.seg[MODVM_CS].limit, 0xFFFF);
	CU_ASSERT_EQUAL(s.seg[MODVM_DS].base, 0);
	CU_ASSERT_EQUAL(s.seg[MODVM_SS].present, 1);
	CU_ASSERT_EQUAL(s.rip, 0xFFF0);
	CU_ASSERT_EQUAL(s.rflags, 2);
	CU_ASSERT_EQUAL(s.gpr[MODVM_RDX], 0x600);
	CU_ASSERT_EQUAL(s.gpr[MODVM_RAX], 0);
	CU_ASSERT_EQUAL(s.cr0, 0x60000010);
	CU_ASSERT_EQUAL(s.cr4, 0);
	CU_ASSERT_EQUAL(s.dr6, 0xFFFF0FF0);
	CU_ASSERT_EQUAL(s.dr7, 0x400);
	CU_ASSERT_EQUAL(s.gdt.limit, 0xFFFF);
	CU_ASSERT_EQUAL(s.idt.limit, 0xFFFF);
	CU_ASSERT_EQUAL(s.tr.present, 1);
	CU_ASSERT_EQUAL(get_le16(s.xsave), 0x37F);
	CU_ASSERT_EQUAL(get_le32(s.xsave + 24), 0x1F80);
	CU_ASSERT_EQUAL(s.xcr0, 1);
	CU_ASSERT_EQUAL(s.msr.pat, 0x0007040600070406ull);
	CU_ASSERT_EQUAL(s.msr.apic_base, 0xFEE00900);
	CU_ASSERT_EQUAL(s.msr.efer, 0);
	CU_ASSERT_EQUAL(s.halted, 0);
	CU_ASSERT_EQUAL(s.lapic_valid, 0);
}

/* --- main --------------------------------------------------------------- */

static const struct test_case cases[] = {
	TEST(test_reset_state),
	TEST(test_e820_high_memory),
	TEST(test_linux_64bit),
	TEST(test_linux_identity_map),
	TEST(test_linux_32bit_entry),
	TEST(test_linux_initrd_addr_max),
	TEST(test_linux_old_protocol_no_rsdp),
	TEST(test_linux_refusals),
	TEST(test_initrd_addr_max_refusal),
	TEST(test_failure_keeps_cpu_state),
	TEST(test_multiboot_elf),
	TEST(test_multiboot_aout_kludge),
	TEST(test_multiboot_refusals),
	TEST(test_multiboot_low_kernel),
	TEST(test_multiboot_cmdline_name),
	TEST(test_flat_low),
	TEST(test_flat_high),
	TEST(test_flat_refusals),
	TEST(test_auto_detect),
	TEST(test_acpi_tables),
	TEST(test_acpi_max_cpus),
	TEST(test_dsdt_s5_encoding),
	TEST(test_aml_pkglength),
	TEST(test_mptable),
	TEST(test_tables_need_1m),
};

static void remove_tmpdir(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd))
		fprintf(stderr, "could not remove %s\n", tmpdir);
}

int main(void)
{
	int ret;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/modvm-test-boot-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 2;
	}
	ret = RUN_TESTS("boot", cases);
	if (mem.host)
		vm_memory_destroy(&mem);
	remove_tmpdir();
	return ret;
}
