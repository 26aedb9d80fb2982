/* ide: the legacy IDE channel through its ports as a driver (SeaBIOS,
 * Linux's ata_piix) drives it: signatures, IDENTIFY, PIO reads and writes
 * checked against the image, CHS and 48-bit addressing, the ATAPI packet
 * commands of a CD-ROM, interrupts, and a hostile guest (out-of-range
 * LBAs and counts, data port use without a command, garbage packets,
 * reset mid-transfer) and hostile saved state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "testmain.h"

#define CMD 0x1F0
#define CTL 0x3F6
#define CMD2 0x170
#define DATA (CMD + 0)
#define FEAT (CMD + 1)
#define NSECT (CMD + 2)
#define LBAL (CMD + 3)
#define LBAM (CMD + 4)
#define LBAH (CMD + 5)
#define DEV (CMD + 6)
#define STAT (CMD + 7)
#define BSY 0x80
#define DRDY 0x40
#define DRQ 0x08
#define ERR 0x01

#define DISK_SECTORS 2048   /* 1 MiB */
#define CD_BLOCKS 64

static char img[64];

/* An image of `len` bytes whose sector s (of `unit` bytes) is filled with
 * the byte (s & 0xff) ^ 0x5a, except byte 0 and 1: s as le16. */
static void make_image(unsigned sectors, unsigned unit)
{
	int fd;
	uint8_t *b = malloc(unit);

	snprintf(img, sizeof(img), "/tmp/modvm-ide-XXXXXX");
	fd = mkstemp(img);
	CU_ASSERT_FATAL(fd >= 0);
	for (unsigned s = 0; s < sectors; s++) {
		memset(b, (s & 0xff) ^ 0x5a, unit);
		b[0] = (uint8_t)s;
		b[1] = (uint8_t)(s >> 8);
		CU_ASSERT_EQUAL_FATAL(write(fd, b, unit), (ssize_t)unit);
	}
	close(fd);
	free(b);
}

static struct hx *ide_new(const char *media, unsigned sectors, unsigned unit)
{
	struct hx *h = hx_new(64 << 20);

	make_image(sectors, unit);
	CU_ASSERT_EQUAL_FATAL(hx_add(h, "pci-host", "pci", NULL), 0);
	CU_ASSERT_EQUAL_FATAL(hx_add(h, "ide", "hd", hx_prop("media", media), "backend=raw",
				     hx_prop("path", img), NULL), 0);
	return h;
}

static void ide_free(struct hx *h)
{
	hx_free(h);
	unlink(img);
}

static uint8_t wait_status(struct hx *h)
{
	return hx_inb(h, STAT);
}

static void read_block(struct hx *h, uint8_t *buf, unsigned len)
{
	for (unsigned i = 0; i < len; i += 2) {
		uint16_t w = hx_inw(h, DATA);
		buf[i] = (uint8_t)w;
		buf[i + 1] = (uint8_t)(w >> 8);
	}
}

static void lba28(struct hx *h, uint32_t lba, uint8_t count)
{
	hx_outb(h, NSECT, count);
	hx_outb(h, LBAL, (uint8_t)lba);
	hx_outb(h, LBAM, (uint8_t)(lba >> 8));
	hx_outb(h, LBAH, (uint8_t)(lba >> 16));
	hx_outb(h, DEV, (uint8_t)(0xE0 | ((lba >> 24) & 0x0F)));
}

static void test_signature_and_identify(void)
{
	struct hx *h = ide_new("disk", DISK_SECTORS, 512);
	uint8_t id[512];

	CU_ASSERT_EQUAL(hx_inb(h, LBAM), 0);
	CU_ASSERT_EQUAL(hx_inb(h, LBAH), 0);
	CU_ASSERT_EQUAL(hx_inb(h, NSECT), 1);
	CU_ASSERT_EQUAL(wait_status(h) & (BSY | DRDY), DRDY);
	hx_outb(h, DEV, 0xA0);
	hx_outb(h, STAT, 0xEC);
	CU_ASSERT_EQUAL(wait_status(h) & (DRQ | ERR), DRQ);
	read_block(h, id, 512);
	CU_ASSERT_EQUAL(wait_status(h) & (DRQ | ERR | BSY), 0);
	CU_ASSERT_EQUAL(id[0] | id[1] << 8, 0x0040);              /* ATA, fixed */
	CU_ASSERT_EQUAL(id[120] | id[121] << 8 | id[122] << 16, DISK_SECTORS); /* w60 */
	CU_ASSERT_EQUAL(id[200] | id[201] << 8, DISK_SECTORS);    /* w100 */
	CU_ASSERT(id[167] & (1 << 2));                             /* w83 bit 10 */
	CU_ASSERT_EQUAL(memcmp(id + 54, "OMVD MAHDRIDKS", 14), 0);  /* swapped pairs */
	/* IDENTIFY PACKET on a disk is aborted */
	hx_outb(h, STAT, 0xA1);
	CU_ASSERT_EQUAL(wait_status(h) & (ERR | DRQ), ERR);
	CU_ASSERT_EQUAL(hx_inb(h, FEAT) & 0x04, 0x04);
	ide_free(h);
}

static void check_sector(const uint8_t *b, unsigned s, unsigned unit)
{
	CU_ASSERT_EQUAL(b[0] | b[1] << 8, s & 0xffff);
	CU_ASSERT_EQUAL(b[unit - 1], (s & 0xff) ^ 0x5a);
}

static void test_read_write(void)
{
	struct hx *h = ide_new("disk", DISK_SECTORS, 512);
	uint8_t b[512];

	/* READ SECTORS: 3 sectors from 100, one DRQ block each */
	lba28(h, 100, 3);
	hx_outb(h, STAT, 0x20);
	for (unsigned s = 100; s < 103; s++) {
		CU_ASSERT_EQUAL_FATAL(wait_status(h) & (DRQ | ERR), DRQ);
		read_block(h, b, 512);
		check_sector(b, s, 512);
	}
	CU_ASSERT_EQUAL(wait_status(h) & (DRQ | ERR), 0);
	/* WRITE SECTORS at 7, then read it back */
	lba28(h, 7, 1);
	hx_outb(h, STAT, 0x30);
	CU_ASSERT_EQUAL_FATAL(wait_status(h) & DRQ, DRQ);
	for (unsigned i = 0; i < 256; i++)
		hx_outw(h, DATA, (uint16_t)(0xBEEF + i));
	CU_ASSERT_EQUAL(wait_status(h) & (DRQ | ERR), 0);
	lba28(h, 7, 1);
	hx_outb(h, STAT, 0x20);
	read_block(h, b, 512);
	CU_ASSERT_EQUAL(b[0] | b[1] << 8, 0xBEEF);
	CU_ASSERT_EQUAL(b[510] | b[511] << 8, 0xBEEF + 255);
	/* 48-bit: READ SECTORS EXT of the last sector (HOB bytes 0) */
	hx_outb(h, NSECT, 0);
	hx_outb(h, NSECT, 1);
	hx_outb(h, LBAL, 0);
	hx_outb(h, LBAL, (DISK_SECTORS - 1) & 0xff);
	hx_outb(h, LBAM, 0);
	hx_outb(h, LBAM, (DISK_SECTORS - 1) >> 8);
	hx_outb(h, LBAH, 0);
	hx_outb(h, LBAH, 0);
	hx_outb(h, DEV, 0x40);
	hx_outb(h, STAT, 0x24);
	CU_ASSERT_EQUAL_FATAL(wait_status(h) & (DRQ | ERR), DRQ);
	read_block(h, b, 512);
	check_sector(b, DISK_SECTORS - 1, 512);
	/* CHS: cylinder 1, head 2, sector 3 = (1 * 16 + 2) * 63 + 2 */
	hx_outb(h, NSECT, 1);
	hx_outb(h, LBAL, 3);
	hx_outb(h, LBAM, 1);
	hx_outb(h, LBAH, 0);
	hx_outb(h, DEV, 0xA2);
	hx_outb(h, STAT, 0x20);
	read_block(h, b, 512);
	check_sector(b, 18 * 63 + 2, 512);
	ide_free(h);
}

static void test_interrupts(void)
{
	struct hx *h = ide_new("disk", DISK_SECTORS, 512);
	uint8_t b[512];

	lba28(h, 0, 1);
	hx_outb(h, STAT, 0x20);
	CU_ASSERT_EQUAL(hx_irq_level(h, 14), 1);
	CU_ASSERT_EQUAL(hx_inb(h, CTL) & DRQ, DRQ); /* alternate status keeps it */
	CU_ASSERT_EQUAL(hx_irq_level(h, 14), 1);
	hx_inb(h, STAT);
	CU_ASSERT_EQUAL(hx_irq_level(h, 14), 0);
	read_block(h, b, 512);
	CU_ASSERT_EQUAL(hx_irq_level(h, 14), 1);  /* completion */
	hx_inb(h, STAT);
	/* nIEN masks the line */
	hx_outb(h, CTL, 0x02);
	lba28(h, 0, 1);
	hx_outb(h, STAT, 0x20);
	CU_ASSERT_EQUAL(hx_irq_level(h, 14), 0);
	ide_free(h);
}

/* Device 1 does not exist: status 0, commands ignored, registers shared. */
static void test_device1_absent(void)
{
	struct hx *h = ide_new("disk", DISK_SECTORS, 512);

	hx_outb(h, DEV, 0xB0);
	hx_outb(h, NSECT, 0x55);
	CU_ASSERT_EQUAL(hx_inb(h, NSECT), 0x55);
	CU_ASSERT_EQUAL(hx_inb(h, DEV), 0xB0);
	CU_ASSERT_EQUAL(hx_inb(h, STAT), 0);
	hx_outb(h, STAT, 0xEC);
	CU_ASSERT_EQUAL(hx_inb(h, STAT), 0);
	CU_ASSERT_EQUAL(hx_inw(h, DATA), 0xFFFF);
	hx_outb(h, DEV, 0xA0);
	CU_ASSERT_EQUAL(hx_inb(h, STAT) & (DRQ | ERR), 0);
	ide_free(h);
}

/* ---- ATAPI ---------------------------------------------------------- */

static void packet(struct hx *h, const uint8_t cdb[12], uint16_t limit)
{
	hx_outb(h, FEAT, 0);
	hx_outb(h, LBAM, (uint8_t)limit);
	hx_outb(h, LBAH, (uint8_t)(limit >> 8));
	hx_outb(h, STAT, 0xA0);
	CU_ASSERT_EQUAL(wait_status(h) & DRQ, DRQ);
	CU_ASSERT_EQUAL(hx_inb(h, NSECT), 1);    /* CoD */
	for (int i = 0; i < 12; i += 2)
		hx_outw(h, DATA, (uint16_t)(cdb[i] | cdb[i + 1] << 8));
}

/* Read every DRQ block of an ATAPI data-in command into buf. */
static unsigned packet_data(struct hx *h, uint8_t *buf, unsigned max)
{
	unsigned got = 0;

	while ((wait_status(h) & (DRQ | ERR)) == DRQ) {
		unsigned n = hx_inb(h, LBAM) | hx_inb(h, LBAH) << 8;
		CU_ASSERT_EQUAL(hx_inb(h, NSECT), 2); /* IO, data */
		for (unsigned i = 0; i < n; i += 2) {
			uint16_t w = hx_inw(h, DATA);
			if (got + i + 1 < max) {
				buf[got + i] = (uint8_t)w;
				buf[got + i + 1] = (uint8_t)(w >> 8);
			}
		}
		got += n;
	}
	return got;
}

static void test_atapi(void)
{
	struct hx *h = ide_new("cdrom", CD_BLOCKS, 2048);
	static uint8_t b[8192];
	uint8_t cdb[12] = { 0 };

	CU_ASSERT_EQUAL(hx_inb(h, LBAM), 0x14);
	CU_ASSERT_EQUAL(hx_inb(h, LBAH), 0xEB);
	hx_outb(h, STAT, 0xEC);                  /* aborted, signature kept */
	CU_ASSERT_EQUAL(wait_status(h) & ERR, ERR);
	CU_ASSERT_EQUAL(hx_inb(h, LBAM), 0x14);
	hx_outb(h, STAT, 0xA1);                  /* IDENTIFY PACKET DEVICE */
	read_block(h, b, 512);
	CU_ASSERT_EQUAL(b[0] | b[1] << 8, 0x85C0);
	/* INQUIRY */
	cdb[0] = 0x12;
	cdb[4] = 36;
	packet(h, cdb, 0xFFFE);
	CU_ASSERT_EQUAL(packet_data(h, b, sizeof(b)), 36);
	CU_ASSERT_EQUAL(b[0], 5);
	CU_ASSERT_EQUAL(memcmp(b + 8, "MODVM", 5), 0);
	CU_ASSERT_EQUAL(hx_inb(h, NSECT), 3);    /* IO | CoD: done */
	/* READ CAPACITY */
	memset(cdb, 0, sizeof(cdb));
	cdb[0] = 0x25;
	packet(h, cdb, 0xFFFE);
	CU_ASSERT_EQUAL(packet_data(h, b, sizeof(b)), 8);
	CU_ASSERT_EQUAL(b[3], CD_BLOCKS - 1);
	CU_ASSERT_EQUAL(b[6], 0x08);             /* 2048 */
	/* READ(10) of blocks 5-7 with a 2048-byte limit: three DRQ blocks */
	memset(cdb, 0, sizeof(cdb));
	cdb[0] = 0x28;
	cdb[5] = 5;
	cdb[8] = 3;
	packet(h, cdb, 2048);
	CU_ASSERT_EQUAL(packet_data(h, b, sizeof(b)), 3 * 2048);
	check_sector(b, 5, 2048);
	check_sector(b + 2048, 6, 2048);
	check_sector(b + 4096, 7, 2048);
	CU_ASSERT_EQUAL(wait_status(h) & ERR, 0);
	ide_free(h);
}

static void expect_check(struct hx *h, uint8_t key, uint8_t asc)
{
	uint8_t b[18] = { 0 }, cdb[12] = { 0x03, 0, 0, 0, 18 };

	CU_ASSERT_EQUAL(wait_status(h) & (ERR | DRQ), ERR);
	CU_ASSERT_EQUAL(hx_inb(h, FEAT) >> 4, key);
	packet(h, cdb, 0xFFFE);
	CU_ASSERT_EQUAL(packet_data(h, b, sizeof(b)), 18);
	CU_ASSERT_EQUAL(b[2], key);
	CU_ASSERT_EQUAL(b[12], asc);
}

static void test_atapi_hostile(void)
{
	struct hx *h = ide_new("cdrom", CD_BLOCKS, 2048);
	uint8_t b[64];
	uint8_t cdb[12];

	/* READ(10) past the end, READ(12) with a huge count, writes */
	memset(cdb, 0, sizeof(cdb));
	cdb[0] = 0x28;
	cdb[5] = CD_BLOCKS - 1;
	cdb[8] = 2;
	packet(h, cdb, 0xFFFE);
	expect_check(h, 0x05, 0x21);
	memset(cdb, 0, sizeof(cdb));
	cdb[0] = 0xA8;
	cdb[6] = cdb[7] = cdb[8] = cdb[9] = 0xFF;
	packet(h, cdb, 0xFFFE);
	expect_check(h, 0x05, 0x21);
	memset(cdb, 0, sizeof(cdb));
	cdb[0] = 0x2A;
	cdb[8] = 1;
	packet(h, cdb, 0xFFFE);
	expect_check(h, 0x07, 0x27);
	/* every unknown opcode is refused */
	for (unsigned op = 0; op < 256; op++) {
		static const uint8_t known[] = { 0x00, 0x03, 0x12, 0x1B, 0x1E, 0x25, 0x28,
						 0x2A, 0x2B, 0x43, 0x46, 0x4A, 0x5A, 0xA8, 0xAA };
		if (memchr(known, (int)op, sizeof(known)))
			continue;
		memset(cdb, 0xFF, sizeof(cdb));
		cdb[0] = (uint8_t)op;
		packet(h, cdb, 0xFFFE);
		CU_ASSERT_EQUAL(wait_status(h) & (ERR | DRQ), ERR);
	}
	/* a byte limit of 1 still moves words; a DMA packet is aborted */
	memset(cdb, 0, sizeof(cdb));
	cdb[0] = 0x12;
	cdb[4] = 36;
	packet(h, cdb, 1);
	CU_ASSERT_EQUAL(packet_data(h, b, sizeof(b)), 36);
	hx_outb(h, FEAT, 1);
	hx_outb(h, STAT, 0xA0);
	CU_ASSERT_EQUAL(wait_status(h) & (ERR | DRQ), ERR);
	/* reset in the middle of a packet: no transfer left */
	hx_outb(h, FEAT, 0);
	hx_outb(h, STAT, 0xA0);
	hx_outw(h, DATA, 0x28);
	hx_outb(h, CTL, 0x04);
	hx_outb(h, CTL, 0x00);
	CU_ASSERT_EQUAL(wait_status(h) & (DRQ | BSY), 0);
	CU_ASSERT_EQUAL(hx_inw(h, DATA), 0xFFFF);
	CU_ASSERT_EQUAL(hx_inb(h, LBAH), 0xEB);
	ide_free(h);
}

static void test_disk_hostile(void)
{
	struct hx *h = ide_new("disk", DISK_SECTORS, 512);

	/* data port with no command */
	CU_ASSERT_EQUAL(hx_inw(h, DATA), 0xFFFF);
	hx_outw(h, DATA, 0x1234);
	CU_ASSERT_EQUAL(wait_status(h) & (DRQ | ERR), 0);
	/* the last sector and one more; LBA 28 all ones; 48-bit all ones */
	lba28(h, DISK_SECTORS - 1, 2);
	hx_outb(h, STAT, 0x20);
	CU_ASSERT_EQUAL(wait_status(h) & (ERR | DRQ), ERR);
	CU_ASSERT_EQUAL(hx_inb(h, FEAT) & 0x10, 0x10);   /* IDNF */
	lba28(h, 0x0FFFFFFF, 0);
	hx_outb(h, STAT, 0x30);
	CU_ASSERT_EQUAL(wait_status(h) & (ERR | DRQ), ERR);
	for (int i = 0; i < 2; i++) {
		hx_outb(h, NSECT, 0xFF);
		hx_outb(h, LBAL, 0xFF);
		hx_outb(h, LBAM, 0xFF);
		hx_outb(h, LBAH, 0xFF);
	}
	hx_outb(h, STAT, 0x24);
	CU_ASSERT_EQUAL(wait_status(h) & (ERR | DRQ), ERR);
	/* CHS with sector 0 or a head past the geometry */
	hx_outb(h, NSECT, 1);
	hx_outb(h, LBAL, 0);
	hx_outb(h, DEV, 0xA0);
	hx_outb(h, STAT, 0x20);
	CU_ASSERT_EQUAL(wait_status(h) & (ERR | DRQ), ERR);
	/* every command byte: none crashes, each leaves a sane status; drain
	 * any data phase it starts */
	for (unsigned c = 0; c < 256; c++) {
		lba28(h, 0, 1);
		hx_outb(h, STAT, (uint8_t)c);
		for (int n = 0; n < 70000 && (wait_status(h) & DRQ); n++)
			hx_inw(h, DATA), hx_outw(h, DATA, 0);
		CU_ASSERT_EQUAL(wait_status(h) & (BSY | DRQ), 0);
	}
	/* wider and narrower accesses to byte registers */
	CU_ASSERT_EQUAL(hx_inw(h, STAT - 1), 0xFFFF);
	hx_outl(h, CMD + 4, 0xFFFFFFFF);
	ide_free(h);
}

/* Saved state with every transfer field out of range: post_load leaves a
 * transfer the guest cannot use to reach outside the buffer or image. */
static void test_state_hostile(void)
{
	struct hx *h = ide_new("disk", DISK_SECTORS, 512);

	CU_ASSERT_EQUAL(hx_state_poke(h, "hd", "ata.xfer=1", "ata.pos=0", "ata.len=4000000000",
				      "ata.sectors_left=4000000000", "ata.lba=18446744073709551615",
				      NULL), 0);
	for (int i = 0; i < 40000; i++)
		hx_inw(h, DATA);
	CU_ASSERT_EQUAL(hx_state_poke(h, "hd", "ata.xfer=2", "ata.pos=0", "ata.len=512",
				      "ata.sectors_left=5", "ata.lba=2047", NULL), 0);
	for (int i = 0; i < 2000; i++)
		hx_outw(h, DATA, 0xAAAA);
	CU_ASSERT_EQUAL(hx_state_poke(h, "hd", "ata.xfer=200", "ata.pos=70000", NULL), 0);
	CU_ASSERT_EQUAL(hx_inw(h, DATA), 0xFFFF);
	ide_free(h);
}

static void test_config_errors(void)
{
	struct hx *h = hx_new(64 << 20);

	CU_ASSERT_EQUAL(hx_add(h, "ide", "a", "backend=raw", "path=/nonexistent/disk.img", NULL), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(h), "/nonexistent/disk.img"));
	make_image(0, 512); /* an empty image */
	CU_ASSERT_EQUAL(hx_add(h, "ide", "b", "media=cdrom", "backend=raw", hx_prop("path", img), NULL), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(hx_error(h), "less than one 2048-byte block"));
	unlink(img);
	hx_free(h);
}

int main(void)
{
	static const struct test_case tests[] = {
		TEST(test_signature_and_identify),
		TEST(test_read_write),
		TEST(test_interrupts),
		TEST(test_device1_absent),
		TEST(test_atapi),
		TEST(test_atapi_hostile),
		TEST(test_disk_hostile),
		TEST(test_state_hostile),
		TEST(test_config_errors),
	};
	return RUN_TESTS("ide", tests);
}
