/* fw-cfg: the QEMU firmware configuration interface as kvm-unit-tests and
 * SeaBIOS read it: signature, ID, vCPU count, RAM size, the file directory,
 * etc/e820 (checked against the map the boot code writes), config files,
 * hostile selectors and offsets, access widths, reset and state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "testmain.h"

#define SEL 0x510
#define DATA 0x511
#define FILE_DIR 0x19

static struct hx *fw_new(uint64_t mem, unsigned cpus, const char *files)
{
	struct hx *h = hx_new(mem);

	hx_set_cpus(h, cpus);
	CU_ASSERT_EQUAL_FATAL(hx_add(h, "fw-cfg", "fw", files ? hx_prop("files", files) : NULL,
				     NULL), 0);
	return h;
}

static void fw_read(struct hx *h, uint16_t key, void *buf, size_t len)
{
	uint8_t *p = buf;

	hx_outw(h, SEL, key);
	for (size_t i = 0; i < len; i++)
		p[i] = hx_inb(h, DATA);
}

static uint64_t fw_le(struct hx *h, uint16_t key, unsigned n)
{
	uint8_t b[8];
	uint64_t v = 0;

	fw_read(h, key, b, n);
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The directory entry of `name`: its key and size, or -1. */
static int fw_find(struct hx *h, const char *name, uint16_t *key, uint32_t *size)
{
	uint8_t cnt[4], e[64];
	uint32_t n;

	hx_outw(h, SEL, FILE_DIR);
	for (int i = 0; i < 4; i++)
		cnt[i] = hx_inb(h, DATA);
	n = be32(cnt);
	for (uint32_t i = 0; i < n && i < 1000; i++) {
		for (int j = 0; j < 64; j++)
			e[j] = hx_inb(h, DATA);
		if (!strncmp((char *)e + 8, name, 56)) {
			*size = be32(e);
			*key = (uint16_t)(e[4] << 8 | e[5]);
			return 0;
		}
	}
	return -1;
}

static void test_signature_and_id(void)
{
	struct hx *h = fw_new(0, 1, NULL);
	char sig[5] = { 0 };

	/* after create (and reset) the signature is selected */
	for (int i = 0; i < 4; i++)
		sig[i] = (char)hx_inb(h, DATA);
	CU_ASSERT_STRING_EQUAL(sig, "QEMU");
	CU_ASSERT_EQUAL(hx_inb(h, DATA), 0); /* past the end: 0 */
	memset(sig, 0, sizeof(sig));
	fw_read(h, 0x0000, sig, 4);
	CU_ASSERT_STRING_EQUAL(sig, "QEMU");
	/* ID: traditional interface only, no DMA bit */
	CU_ASSERT_EQUAL(fw_le(h, 0x0001, 4), 1);
	hx_free(h);
}

static void test_cpus_and_ram(void)
{
	struct hx *h = fw_new(64 << 20, 3, NULL);

	CU_ASSERT_EQUAL(fw_le(h, 0x0005, 2), 3);  /* FW_CFG_NB_CPUS */
	CU_ASSERT_EQUAL(fw_le(h, 0x000f, 2), 3);  /* FW_CFG_MAX_CPUS */
	CU_ASSERT_EQUAL(fw_le(h, 0x0003, 8), 64 << 20); /* FW_CFG_RAM_SIZE */
	CU_ASSERT_EQUAL(fw_le(h, 0x8002, 4), 1);  /* IRQ0 override */
	hx_free(h);
	h = fw_new(0, 0, NULL); /* no config: one vCPU */
	CU_ASSERT_EQUAL(fw_le(h, 0x0005, 2), 1);
	hx_free(h);
}

/* etc/e820 holds exactly the map the boot code gives the guest. */
static void check_e820(uint64_t mem)
{
	struct hx *h = fw_new(mem, 1, NULL);
	struct hx_e820 map[8];
	unsigned n = hx_e820(h, map, 8);
	uint8_t buf[8 * 20 + 1];
	uint16_t key;
	uint32_t size;

	CU_ASSERT_EQUAL_FATAL(fw_find(h, "etc/e820", &key, &size), 0);
	CU_ASSERT_EQUAL_FATAL(size, n * 20);
	fw_read(h, key, buf, size + 1);
	for (unsigned i = 0; i < n; i++) {
		uint64_t addr = 0, len = 0;
		uint32_t type = 0;
		for (int b = 0; b < 8; b++) {
			addr |= (uint64_t)buf[20 * i + b] << (8 * b);
			len |= (uint64_t)buf[20 * i + 8 + b] << (8 * b);
		}
		for (int b = 0; b < 4; b++)
			type |= (uint32_t)buf[20 * i + 16 + b] << (8 * b);
		CU_ASSERT_EQUAL(addr, map[i].addr);
		CU_ASSERT_EQUAL(len, map[i].size);
		CU_ASSERT_EQUAL(type, map[i].type);
	}
	CU_ASSERT_EQUAL(buf[size], 0); /* read past the end */
	hx_free(h);
}

static void test_e820_matches_boot(void)
{
	check_e820(2 << 20);
	check_e820(256 << 20);
	check_e820(3ull << 30);
	check_e820(5ull << 30);
}

static void test_e820_off(void)
{
	struct hx *h = hx_new(0);
	uint16_t key;
	uint32_t size;

	CU_ASSERT_EQUAL_FATAL(hx_add(h, "fw-cfg", "fw", hx_prop("e820", "false"), NULL), 0);
	CU_ASSERT_EQUAL(fw_find(h, "etc/e820", &key, &size), -1);
	CU_ASSERT_EQUAL(fw_le(h, FILE_DIR, 4), 0); /* count 0, big-endian */
	hx_free(h);
}

static void test_config_files(void)
{
	char a[] = "/tmp/fwcfg-a.XXXXXX", b[] = "/tmp/fwcfg-b.XXXXXX", spec[256];
	int fa = mkstemp(a), fb = mkstemp(b);
	char got[16] = { 0 };
	uint16_t key, key2;
	uint32_t size;
	struct hx *h;

	CU_ASSERT_FATAL(fa >= 0 && fb >= 0);
	CU_ASSERT_EQUAL(write(fa, "hello", 5), 5);
	close(fa);
	close(fb); /* empty file */
	snprintf(spec, sizeof(spec), "opt/test/zz=%s;opt/test/aa=%s", a, b);
	h = fw_new(0, 1, spec);
	CU_ASSERT_EQUAL_FATAL(fw_find(h, "opt/test/zz", &key, &size), 0);
	CU_ASSERT_EQUAL(size, 5);
	CU_ASSERT(key >= 0x20);
	fw_read(h, key, got, 6);
	CU_ASSERT_STRING_EQUAL(got, "hello");
	CU_ASSERT_EQUAL_FATAL(fw_find(h, "opt/test/aa", &key2, &size), 0);
	CU_ASSERT_EQUAL(size, 0);
	CU_ASSERT_NOT_EQUAL(key, key2);
	/* sorted by name, not by key */
	{
		uint8_t e[4 + 3 * 64];
		fw_read(h, FILE_DIR, e, sizeof(e));
		CU_ASSERT_EQUAL(be32(e), 3);
		CU_ASSERT_STRING_EQUAL((char *)e + 4 + 8, "etc/e820");
		CU_ASSERT_STRING_EQUAL((char *)e + 4 + 64 + 8, "opt/test/aa");
		CU_ASSERT_STRING_EQUAL((char *)e + 4 + 128 + 8, "opt/test/zz");
	}
	hx_free(h);
	unlink(a);
	unlink(b);
}

static void test_config_file_errors(void)
{
	static const char *const bad[] = {
		"noequals", "=/etc/hostname", "opt/x=", "opt/x=/nonexistent/file",
		"opt/x=/tmp", /* a directory */
		"etc/e820=/etc/hostname", /* taken */
		"opt/0123456789012345678901234567890123456789012345678901234=/etc/hostname",
	};

	for (size_t i = 0; i < MODVM_COUNTOF(bad); i++) {
		struct hx *h = hx_new(0);
		CU_ASSERT_EQUAL(hx_add(h, "fw-cfg", "fw", hx_prop("files", bad[i]), NULL), -1);
		CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(h), "fw-cfg"));
		hx_free(h);
	}
}

/* Unknown keys, the write and arch bits, widths, and reading far past the
 * end never reach outside an item. */
static void test_hostile_selectors(void)
{
	struct hx *h = fw_new(0, 2, NULL);

	for (uint32_t key = 0; key <= 0xffff; key += 7) {
		hx_outw(h, SEL, (uint16_t)key);
		for (int i = 0; i < 80; i++)
			(void)hx_inb(h, DATA);
	}
	hx_outw(h, SEL, 0x1234);
	CU_ASSERT_EQUAL(hx_inb(h, DATA), 0);
	hx_outw(h, SEL, 0xffff);
	CU_ASSERT_EQUAL(hx_inb(h, DATA), 0);
	/* bit 14 (write channel) is ignored: still the signature */
	hx_outw(h, SEL, 0x4000);
	CU_ASSERT_EQUAL(hx_inb(h, DATA), 'Q');
	/* bit 15 selects the arch-local table: 0x8000 is not the signature */
	hx_outw(h, SEL, 0x8000);
	CU_ASSERT_EQUAL(hx_inb(h, DATA), 0);
	/* a byte write to the selector does not select (QEMU's comb port) */
	hx_outw(h, SEL, 0x0005);
	hx_outb(h, SEL, 0x00);
	CU_ASSERT_EQUAL(hx_inb(h, DATA), 2);
	/* either port reads data; wide reads and data writes do nothing */
	hx_outw(h, SEL, 0x0000);
	CU_ASSERT_EQUAL(hx_inb(h, SEL), 'Q');
	CU_ASSERT_EQUAL(hx_inw(h, DATA), 0xffff);
	CU_ASSERT_EQUAL(hx_inl(h, SEL), 0xffffffffu);
	hx_outb(h, DATA, 0x55);
	hx_outl(h, SEL, 0x00000001);
	CU_ASSERT_EQUAL(hx_inb(h, DATA), 'E');
	CU_ASSERT_EQUAL(hx_inb(h, DATA), 'M');
	CU_ASSERT_EQUAL(hx_inb(h, DATA), 'U');
	/* reading on stays at 0 */
	for (int i = 0; i < 100000; i++)
		(void)hx_inb(h, DATA);
	CU_ASSERT_EQUAL(hx_inb(h, DATA), 0);
	hx_free(h);
}

static void test_reset_and_state(void)
{
	struct hx *a = fw_new(0, 4, NULL), *b = fw_new(0, 4, NULL);

	hx_outw(a, SEL, 0x0000);
	CU_ASSERT_EQUAL(hx_inb(a, DATA), 'Q');
	CU_ASSERT_EQUAL(hx_inb(a, DATA), 'E');
	CU_ASSERT_EQUAL(hx_state_copy(a, b, "fw"), 0);
	CU_ASSERT_EQUAL(hx_inb(b, DATA), 'M'); /* resumes where a stopped */
	hx_outw(a, SEL, 0x0005);
	hx_reset(a);
	CU_ASSERT_EQUAL(hx_inb(a, DATA), 'Q'); /* reset selects the signature */
	hx_free(a);
	hx_free(b);
}

/* A saved key or offset from a damaged or hostile snapshot is harmless. */
static void test_state_hostile(void)
{
	struct hx *h = fw_new(0, 1, NULL);

	/* the signature item, far past its end */
	CU_ASSERT_EQUAL(hx_state_poke(h, "fw", "cur_key=0x0000", "cur_offset=0xfffffff0",
				      NULL), 0);
	CU_ASSERT_EQUAL(hx_inb(h, DATA), 0);
	/* an item that does not exist */
	CU_ASSERT_EQUAL(hx_state_poke(h, "fw", "cur_key=0x7777", "cur_offset=0", NULL), 0);
	CU_ASSERT_EQUAL(hx_inb(h, DATA), 0);
	hx_free(h);
}

/* bootorder: ';' in the property become lines, NUL-terminated as QEMU
 * sends it; no property, no file; an oversized one is refused. */
static void test_bootorder(void)
{
	struct hx *h = hx_new(0);
	char got[64] = { 0 };
	static char big[5000];
	uint16_t key;
	uint32_t size;

	CU_ASSERT_EQUAL_FATAL(hx_add(h, "fw-cfg", "fw",
				     hx_prop("bootorder", "/pci@i0cf8/*@3;HALT"), NULL), 0);
	CU_ASSERT_EQUAL_FATAL(fw_find(h, "bootorder", &key, &size), 0);
	CU_ASSERT_EQUAL(size, strlen("/pci@i0cf8/*@3\nHALT\n") + 1);
	fw_read(h, key, got, size);
	CU_ASSERT_STRING_EQUAL(got, "/pci@i0cf8/*@3\nHALT\n");
	hx_free(h);
	h = fw_new(0, 1, NULL);
	CU_ASSERT_EQUAL(fw_find(h, "bootorder", &key, &size), -1);
	hx_free(h);
	/* hx_prop stops at 512 bytes: spell the property out */
	memcpy(big, "bootorder=", 10);
	memset(big + 10, 'a', sizeof(big) - 11);
	h = hx_new(0);
	CU_ASSERT_EQUAL(hx_add(h, "fw-cfg", "fw", big, NULL), -1);
	hx_free(h);
}

/* ---- DMA interface ---------------------------------------------------- */

#define DMA 0x514

static void put_be(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

static uint32_t bswap(uint32_t v)
{
	return (v >> 24) | (v >> 8 & 0xff00) | (v << 8 & 0xff0000) | (v << 24);
}

/* Write an FWCfgDmaAccess at `at`, start it as SeaBIOS does (be32 halves),
 * return the control word the device wrote back. */
static uint32_t dma(struct hx *h, uint64_t at, uint32_t control, uint32_t len,
		    uint64_t addr)
{
	uint8_t a[16];

	put_be(a, control, 4);
	put_be(a + 4, len, 4);
	put_be(a + 8, addr, 8);
	hx_mem_write(h, at, a, sizeof(a));
	hx_outl(h, DMA, bswap((uint32_t)(at >> 32)));
	hx_outl(h, DMA + 4, bswap((uint32_t)at));
	hx_mem_read(h, at, a, 4);
	return be32(a);
}

static void test_dma(void)
{
	struct hx *h = hx_new(16 << 20);
	uint8_t buf[64];
	static uint8_t big[1 << 20];

	CU_ASSERT_EQUAL_FATAL(hx_add(h, "fw-cfg", "fw", hx_prop("dma", "true"), NULL), 0);
	CU_ASSERT_EQUAL(fw_le(h, 0x0001, 4), 3);               /* ID: DMA too */
	CU_ASSERT_EQUAL(hx_inl(h, DMA), 0x554d4551);           /* "QEMU" */
	CU_ASSERT_EQUAL(hx_inl(h, DMA + 4), 0x47464320);       /* " CFG" */
	/* select + read the signature, then read on past its end: zeros */
	memset(buf, 0xee, sizeof(buf));
	hx_mem_write(h, 0x2000, buf, sizeof(buf));
	CU_ASSERT_EQUAL(dma(h, 0x1000, 0x0008 | 0x0002, 2, 0x2000), 0);
	CU_ASSERT_EQUAL(dma(h, 0x1000, 0x0002, 6, 0x2002), 0);
	hx_mem_read(h, 0x2000, buf, 9);
	CU_ASSERT_EQUAL(memcmp(buf, "QEMU\0\0\0\0\xee", 9), 0);
	/* skip 2 of the ID then read on: byte 2 of le32 3 */
	CU_ASSERT_EQUAL(dma(h, 0x1000, 0x0001 << 16 | 0x0008 | 0x0004, 2, 0), 0);
	CU_ASSERT_EQUAL(dma(h, 0x1000, 0x0002, 2, 0x2000), 0);
	hx_mem_read(h, 0x2000, buf, 2);
	CU_ASSERT(buf[0] == 0 && buf[1] == 0);
	/* the byte interface continues where DMA left the offset */
	CU_ASSERT_EQUAL(dma(h, 0x1000, 0x0000 << 16 | 0x0008 | 0x0004, 1, 0), 0);
	CU_ASSERT_EQUAL(hx_inb(h, DATA), 'E');
	/* hostile: beyond RAM, wrapping, a write, a huge length into RAM */
	CU_ASSERT_EQUAL(dma(h, 0x1000, 0x19 << 16 | 0x0008 | 0x0002, 64, 0xfffff000ull), 1);
	CU_ASSERT_EQUAL(dma(h, 0x1000, 0x0002, 0xffffffffu, 0xffffffffffffff00ull), 1);
	CU_ASSERT_EQUAL(dma(h, 0x1000, 0x0010, 4, 0x2000), 1);
	CU_ASSERT_EQUAL(dma(h, 0x1000, 0x0002, 0xffffffffu, 0x100000), 1); /* past 16 MiB */
	memset(big, 0xee, sizeof(big));
	hx_mem_write(h, 0x200000, big, sizeof(big));
	CU_ASSERT_EQUAL(dma(h, 0x1000, 0x0008 | 0x0002, sizeof(big), 0x200000), 0);
	hx_mem_read(h, 0x200000, big, sizeof(big));
	CU_ASSERT_EQUAL(memcmp(big, "QEMU", 4), 0);
	CU_ASSERT_EQUAL(big[sizeof(big) - 1], 0);
	/* an access structure outside RAM is ignored; 64-bit address halves */
	hx_outl(h, DMA, bswap(0x1));
	hx_outl(h, DMA + 4, bswap(0x1000));
	hx_outl(h, DMA + 4, bswap(0xfffffff8));
	/* a snapshot keeps the half-written address; reset clears it */
	hx_outl(h, DMA, bswap(0x7));
	CU_ASSERT_EQUAL(hx_state_poke(h, "fw", "dma_high=0", NULL), 0);
	CU_ASSERT_EQUAL(dma(h, 0x1000, 0x0008 | 0x0002, 4, 0x2000), 0);
	hx_free(h);
	/* dma = false: no register at 0x514 */
	h = fw_new(0, 1, NULL);
	CU_ASSERT_EQUAL(hx_inl(h, DMA), 0xffffffffu);
	hx_free(h);
	/* the register must fit below 0x10000 */
	h = hx_new(0);
	CU_ASSERT_EQUAL(hx_add(h, "fw-cfg", "fw", hx_prop("dma", "true"),
			       hx_prop("port", "0xfff8"), NULL), -1);
	hx_free(h);
}

/* kernel: the Linux boot protocol items a linuxboot ROM reads, the setup
 * header patched as a boot loader does, DMA forced on, the ROM (one the
 * config names, else modvm's own, whole 512-byte blocks summing to 0) as
 * genroms/linuxboot.bin and first in bootorder; bad kernels refused. */
static void write_file(const char *path, const void *buf, size_t len)
{
	FILE *fp = fopen(path, "wb");

	CU_ASSERT_FATAL(fp != NULL);
	CU_ASSERT_EQUAL(fwrite(buf, 1, len, fp), len);
	fclose(fp);
}

static void test_linuxboot(void)
{
	static uint8_t k[4096], rom[1024];
	char kpath[] = "/tmp/fwcfg-k.XXXXXX", rpath[] = "/tmp/fwcfg-r.XXXXXX";
	char ipath[] = "/tmp/fwcfg-i.XXXXXX";
	uint8_t setup[1024], got[64];
	uint16_t key;
	uint32_t size;
	struct hx *h;

	close(mkstemp(kpath));
	close(mkstemp(rpath));
	close(mkstemp(ipath));
	memset(k, 0x11, sizeof(k));
	k[0x1f1] = 1;                          /* setup_sects */
	memcpy(k + 0x202, "HdrS", 4);
	k[0x206] = 0x0c; k[0x207] = 0x02;      /* 2.12 */
	k[0x211] = 0x01;                       /* LOADED_HIGH */
	k[0x22c] = 0xff; k[0x22d] = 0xff; k[0x22e] = 0xff; k[0x22f] = 0x37;
	k[0x238] = 0xff; k[0x239] = 0; k[0x23a] = 0; k[0x23b] = 0;
	write_file(kpath, k, sizeof(k));
	rom[0] = 0x55; rom[1] = 0xaa; rom[2] = 2;
	write_file(rpath, rom, sizeof(rom));
	write_file(ipath, "initrd!", 7);
	h = hx_new(64 << 20);
	CU_ASSERT_EQUAL_FATAL(hx_add(h, "fw-cfg", "fw", hx_prop("kernel", kpath), hx_prop("initrd", ipath),
				     hx_prop("cmdline", "console=ttyS0"), hx_prop("linuxboot-rom", rpath),
				     hx_prop("bootorder", "/pci@i0cf8/*@2"), NULL), 0);
	CU_ASSERT_EQUAL(fw_le(h, 0x0001, 4), 3);            /* DMA on */
	CU_ASSERT_EQUAL(fw_le(h, 0x16, 4), 0x10000);        /* SETUP_ADDR */
	CU_ASSERT_EQUAL(fw_le(h, 0x17, 4), 1024);           /* SETUP_SIZE */
	CU_ASSERT_EQUAL(fw_le(h, 0x07, 4), 0x100000);       /* KERNEL_ADDR */
	CU_ASSERT_EQUAL(fw_le(h, 0x08, 4), sizeof(k) - 1024);
	CU_ASSERT_EQUAL(fw_le(h, 0x0b, 4), 7);              /* INITRD_SIZE */
	CU_ASSERT_EQUAL(fw_le(h, 0x0a, 4) & 0xfff, 0);
	CU_ASSERT(fw_le(h, 0x0a, 4) >= 0x200000 && fw_le(h, 0x0a, 4) < (64u << 20));
	CU_ASSERT_EQUAL(fw_le(h, 0x13, 4), 0x20000);        /* CMDLINE_ADDR */
	CU_ASSERT_EQUAL(fw_le(h, 0x14, 4), 14);
	fw_read(h, 0x15, got, 14);
	CU_ASSERT_STRING_EQUAL((char *)got, "console=ttyS0");
	fw_read(h, 0x18, setup, sizeof(setup));
	CU_ASSERT_EQUAL(setup[0x210], 0xB0);                /* type_of_loader */
	CU_ASSERT_EQUAL(setup[0x211], 0x81);                /* + CAN_USE_HEAP */
	CU_ASSERT_EQUAL(setup[0x224] | setup[0x225] << 8, 0xFE00); /* heap_end_ptr */
	CU_ASSERT_EQUAL(setup[0x22a], 0x02);                /* cmd_line_ptr 0x20000 */
	CU_ASSERT_EQUAL(setup[0x21c], 7);                   /* ramdisk_size */
	fw_read(h, 0x11, got, 4);                           /* KERNEL_DATA */
	CU_ASSERT_EQUAL(got[0], 0x11);
	fw_read(h, 0x12, got, 8);
	CU_ASSERT_EQUAL(memcmp(got, "initrd!", 7), 0);
	CU_ASSERT_EQUAL_FATAL(fw_find(h, "genroms/linuxboot.bin", &key, &size), 0);
	CU_ASSERT_EQUAL(size, sizeof(rom));
	CU_ASSERT_EQUAL_FATAL(fw_find(h, "bootorder", &key, &size), 0);
	fw_read(h, key, got, sizeof(got));
	CU_ASSERT_EQUAL(strncmp((char *)got, "/rom@genroms/linuxboot.bin\n/pci@i0cf8/*@2\n", 43), 0);
	hx_free(h);
	/* no linuxboot-rom: modvm's own, a valid option ROM */
	h = hx_new(64 << 20);
	CU_ASSERT_EQUAL_FATAL(hx_add(h, "fw-cfg", "fw", hx_prop("kernel", kpath), NULL), 0);
	CU_ASSERT_EQUAL_FATAL(fw_find(h, "genroms/linuxboot.bin", &key, &size), 0);
	CU_ASSERT(size >= 512 && size % 512 == 0 && size <= sizeof(rom));
	if (size >= 512 && size <= sizeof(rom)) {
		uint8_t own[sizeof(rom)], sum = 0;
		fw_read(h, key, own, size);
		CU_ASSERT_EQUAL(own[0], 0x55);
		CU_ASSERT_EQUAL(own[1], 0xaa);
		CU_ASSERT_EQUAL(own[2], size / 512);
		for (uint32_t i = 0; i < size; i++)
			sum = (uint8_t)(sum + own[i]);
		CU_ASSERT_EQUAL(sum, 0);
		CU_ASSERT_PTR_NOT_NULL(memmem(own, size, "$PnP", 4));
	}
	hx_free(h);
	/* not a bzImage; an old protocol; a command line the kernel refuses;
	 * a ROM without its signature */
	k[0x202] = 'X';
	write_file(kpath, k, sizeof(k));
	h = hx_new(64 << 20);
	CU_ASSERT_EQUAL(hx_add(h, "fw-cfg", "fw", hx_prop("kernel", kpath), hx_prop("linuxboot-rom", rpath), NULL), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(h), "is not a Linux bzImage"));
	k[0x202] = 'H';
	k[0x206] = 0x04;
	write_file(kpath, k, sizeof(k));
	CU_ASSERT_EQUAL(hx_add(h, "fw-cfg", "fw2", hx_prop("kernel", kpath), hx_prop("linuxboot-rom", rpath), NULL), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(h), "boot protocol 2.04"));
	k[0x206] = 0x0c;
	k[0x238] = 4;
	write_file(kpath, k, sizeof(k));
	CU_ASSERT_EQUAL(hx_add(h, "fw-cfg", "fw3", hx_prop("kernel", kpath), hx_prop("cmdline", "console=ttyS0"),
			       hx_prop("linuxboot-rom", rpath), NULL), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(h), "the kernel takes at most 4"));
	k[0x238] = 0xff;
	write_file(kpath, k, sizeof(k));
	rom[0] = 0;
	write_file(rpath, rom, sizeof(rom));
	CU_ASSERT_EQUAL(hx_add(h, "fw-cfg", "fw4", hx_prop("kernel", kpath), hx_prop("linuxboot-rom", rpath), NULL), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(h), "is not an option ROM"));
	hx_free(h);
	unlink(kpath);
	unlink(rpath);
	unlink(ipath);
}

static void test_port_property_and_overlap(void)
{
	struct hx *h = hx_new(0);

	CU_ASSERT_EQUAL_FATAL(hx_add(h, "fw-cfg", "fw", hx_prop("port", "0x600"), NULL), 0);
	hx_outw(h, 0x600, 0x0000);
	CU_ASSERT_EQUAL(hx_inb(h, 0x601), 'Q');
	CU_ASSERT_EQUAL(hx_inb(h, DATA), 0xff); /* nothing at 0x511 */
	CU_ASSERT_EQUAL(hx_add(h, "fw-cfg", "fw2", hx_prop("port", "0x601"), NULL), -1);
	hx_free(h);
}

int main(void)
{
	static const struct test_case tests[] = {
		TEST(test_signature_and_id),
		TEST(test_cpus_and_ram),
		TEST(test_e820_matches_boot),
		TEST(test_e820_off),
		TEST(test_config_files),
		TEST(test_config_file_errors),
		TEST(test_hostile_selectors),
		TEST(test_reset_and_state),
		TEST(test_state_hostile),
		TEST(test_port_property_and_overlap),
		TEST(test_bootorder),
		TEST(test_dma),
		TEST(test_linuxboot),
	};
	return RUN_TESTS("fw-cfg", tests);
}
