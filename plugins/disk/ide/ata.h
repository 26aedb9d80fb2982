/* ATA/ATAPI device on one IDE channel, as the task file registers see it
 * (ATA/ATAPI-6, T13/1410D; the packet commands of MMC/SPC for the CD-ROM):
 * PIO data transfers only. The plugin (ide.c) maps the registers to ports
 * and gives the data path; this file is the command parser the guest
 * drives, kept free of host services so that a fuzz target can run it.
 */
#ifndef MODVM_IDE_ATA_H
#define MODVM_IDE_ATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Task file register numbers: command block 0-7, control block 8. */
enum ata_reg {
	ATA_REG_DATA = 0,
	ATA_REG_ERROR = 1,       /* write: features */
	ATA_REG_NSECTOR = 2,
	ATA_REG_LBAL = 3,
	ATA_REG_LBAM = 4,
	ATA_REG_LBAH = 5,
	ATA_REG_DEVICE = 6,
	ATA_REG_STATUS = 7,      /* write: command */
	ATA_REG_CONTROL = 8,     /* read: alternate status; write: device control */
};

enum ata_media { ATA_MEDIA_DISK = 0, ATA_MEDIA_CDROM = 1 };

#define ATA_BUF_SIZE 0x10000u    /* one PIO data block, at most */

struct ata_io {
	/* Synchronous image access: 0 or -errno. */
	int (*read)(void *opaque, uint64_t off, void *buf, size_t len);
	int (*write)(void *opaque, uint64_t off, const void *buf, size_t len);
	void (*irq)(void *opaque, int level);
	void *opaque;
};

struct ata_dev {
	/* configuration, set before ata_reset */
	enum ata_media media;
	uint64_t nsectors;       /* 512-byte (disk) or 2048-byte (CD) blocks */
	bool read_only;
	char serial[21];
	struct ata_io io;
	/* task file: both devices of a channel latch every register write;
	 * hob_* hold the previous value for 48-bit commands */
	uint8_t feature, nsector, lbal, lbam, lbah;
	uint8_t hob_feature, hob_nsector, hob_lbal, hob_lbam, hob_lbah;
	uint8_t device, status, error, control;
	uint8_t irq_pending;
	/* the transfer in progress */
	uint8_t xfer;            /* enum in ata.c */
	uint8_t cmd;
	uint32_t pos, len;       /* the current data block is buf[pos, len) */
	uint32_t sectors_left;   /* ATA: after the current block */
	uint64_t lba;            /* ATA: next sector; ATAPI: first block */
	uint32_t total, done;    /* ATAPI: bytes of the command, sent so far */
	uint8_t from_disk;       /* ATAPI data comes from the image, not buf */
	uint16_t byte_limit;     /* ATAPI byte count limit */
	uint8_t sense_key, asc;  /* ATAPI: for REQUEST SENSE */
	uint8_t buf[ATA_BUF_SIZE];
};

/* Power-on/hardware reset (and the end of a soft reset): the signature in
 * the task file, no transfer, the interrupt low. */
void ata_reset(struct ata_dev *d);
uint32_t ata_read(struct ata_dev *d, unsigned reg, unsigned size);
void ata_write(struct ata_dev *d, unsigned reg, uint32_t v, unsigned size);
/* After a snapshot load: make the saved transfer state safe to resume. */
void ata_sanitize(struct ata_dev *d);

#endif
