/* Fuzz target: the ATA/ATAPI command parser of the ide plugin
 * (plugins/disk/ide/ata.c) driven through its task file as a hostile guest
 * would, over an in-memory image. It aborts if the parser asks for image
 * bytes outside the image or leaves its data window outside its buffer.
 * Input: byte 0 bit 0 picks a CD-ROM (else a disk), byte 1 the image size
 * in blocks (1-256); then operations:
 *   0 r v   write byte v to register r % 9 (8: device control)
 *   1 r     read register r % 9
 *   2 lo hi write a data word           3  read a data word
 *   4 n     read n data words (n*8)     5 n write n data words (n*8)
 *   6       power-on reset
 *   7 x p p p p l l l l  saved state: xfer, pos, len (le32), then sanitize */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/disk/ide/ata.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static struct {
	uint8_t *img;
	uint64_t bytes;
} fake;

static int f_read(void *o, uint64_t off, void *buf, size_t len)
{
	(void)o;
	CHECK(off <= fake.bytes && len <= fake.bytes - off);
	memcpy(buf, fake.img + off, len);
	return 0;
}

static int f_write(void *o, uint64_t off, const void *buf, size_t len)
{
	(void)o;
	CHECK(off <= fake.bytes && len <= fake.bytes - off);
	memcpy(fake.img + off, buf, len);
	return 0;
}

static void f_irq(void *o, int level)
{
	(void)o;
	CHECK(level == 0 || level == 1);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ata_dev d;
	size_t i = 2;

	if (size < 2)
		return 0;
	memset(&d, 0, sizeof(d));
	d.media = data[0] & 1 ? ATA_MEDIA_CDROM : ATA_MEDIA_DISK;
	d.nsectors = (uint64_t)data[1] + 1;
	d.read_only = data[0] & 2;
	fake.bytes = d.nsectors * (d.media == ATA_MEDIA_CDROM ? 2048 : 512);
	fake.img = calloc(1, fake.bytes);
	CHECK(fake.img);
	d.io = (struct ata_io){ f_read, f_write, f_irq, NULL };
	ata_reset(&d);
	while (i < size) {
		uint8_t op = data[i++] & 7;
		uint8_t a = i < size ? data[i] : 0, b = i + 1 < size ? data[i + 1] : 0;

		switch (op) {
		case 0: ata_write(&d, a % 9, b, 1); i += 2; break;
		case 1: ata_read(&d, a % 9, 1); i += 1; break;
		case 2: ata_write(&d, ATA_REG_DATA, (uint32_t)(a | b << 8), 2); i += 2; break;
		case 3: ata_read(&d, ATA_REG_DATA, 2); break;
		case 4:
			for (unsigned n = 0; n < a * 8u; n++)
				ata_read(&d, ATA_REG_DATA, 2);
			i += 1;
			break;
		case 5:
			for (unsigned n = 0; n < a * 8u; n++)
				ata_write(&d, ATA_REG_DATA, n * 0x101u, 2);
			i += 1;
			break;
		case 6: ata_reset(&d); break;
		case 7:
			if (size - i < 9) {
				i = size;
				break;
			}
			d.xfer = data[i];
			d.pos = le32(data + i + 1);
			d.len = le32(data + i + 5);
			ata_sanitize(&d);
			i += 9;
			break;
		}
		CHECK(d.pos <= d.len && d.len <= ATA_BUF_SIZE);
	}
	free(fake.img);
	return 0;
}
