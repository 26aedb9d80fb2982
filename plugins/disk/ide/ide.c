/* ide: one legacy (ISA-compatible) IDE channel with one device, a hard
 * disk or an ATAPI CD-ROM on a block backend: ports 0x1F0-0x1F7 and 0x3F6
 * with IRQ 14 (primary) or 0x170-0x177 and 0x376 with IRQ 15 (secondary),
 * PIO transfers. The primary channel's instance also registers the PCI
 * function of a PIIX3 IDE controller (8086:7010) in compatibility mode,
 * which is how firmware (SeaBIOS) finds both legacy channels; it then boots
 * disks and El Torito CDs from them. The command set is in ata.c; docs/devices/ide.md.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <modvm/modvm.h>
#include <modvm/block.h>
#include <modvm/pci.h>

#include "ata.h"

struct ide {
	struct modvm_dev dev;
	int channel;              /* property: 0 primary, 1 secondary */
	int media;                /* property: enum ata_media */
	const char *serial;       /* property */
	const struct modvm_block *blk;
	uint64_t bytes;           /* image length */
	struct ata_dev ata;
};

static const struct {
	uint16_t cmd, ctl;
	unsigned irq;
} channels[] = { { 0x1F0, 0x3F6, 14 }, { 0x170, 0x376, 15 } };

static int ide_img_read(void *opaque, uint64_t off, void *buf, size_t len)
{
	struct ide *s = opaque;
	struct iovec iov = { buf, len };

	if (off > s->bytes || len > s->bytes - off)
		return -1;
	return s->blk->ops->preadv(s->blk->be, &iov, 1, off);
}

static int ide_img_write(void *opaque, uint64_t off, const void *buf, size_t len)
{
	struct ide *s = opaque;
	struct iovec iov = { (void *)buf, len };

	if (off > s->bytes || len > s->bytes - off)
		return -1;
	return s->blk->ops->pwritev(s->blk->be, &iov, 1, off);
}

static void ide_irq(void *opaque, int level)
{
	struct ide *s = opaque;

	s->dev.host->irq_set(s->dev.inst, channels[s->channel].irq, level);
}

static uint64_t cmd_read(void *opaque, uint64_t off, unsigned size)
{
	struct ide *s = opaque;

	/* only the data register is wider than a byte */
	if (off != ATA_REG_DATA && size != 1)
		return ~0ull;
	return ata_read(&s->ata, (unsigned)off, size);
}

static void cmd_write(void *opaque, uint64_t off, uint64_t v, unsigned size)
{
	struct ide *s = opaque;

	if (off != ATA_REG_DATA && size != 1)
		return;
	ata_write(&s->ata, (unsigned)off, (uint32_t)v, size);
}

static uint64_t ctl_read(void *opaque, uint64_t off, unsigned size)
{
	struct ide *s = opaque;

	(void)off;
	return size == 1 ? ata_read(&s->ata, ATA_REG_CONTROL, 1) : ~0ull;
}

static void ctl_write(void *opaque, uint64_t off, uint64_t v, unsigned size)
{
	struct ide *s = opaque;

	(void)off;
	if (size == 1)
		ata_write(&s->ata, ATA_REG_CONTROL, (uint32_t)v, 1);
}

static const struct modvm_io_ops cmd_ops = { cmd_read, cmd_write };
static const struct modvm_io_ops ctl_ops = { ctl_read, ctl_write };

/* PIIX3 IDE (82371SB function 1): class 01/01, programming interface
 * 0x80: both channels in compatibility mode at the legacy ports, bus
 * master capable. The bus master BAR (BAR4) is not there: PIO only. */
static const struct modvm_pci_info piix3_ide_info = {
	.size = sizeof(struct modvm_pci_info),
	.vendor_id = 0x8086, .device_id = 0x7010,
	.class_code = 0x01, .subclass = 0x01, .prog_if = 0x80,
	.slot = MODVM_PCI_SLOT_ANY,
};

static int ide_init(void *dev)
{
	struct ide *s = dev;
	const struct modvm_host *h = s->dev.host;
	uint64_t unit = s->media == ATA_MEDIA_CDROM ? 2048 : 512;

	s->blk = h->block_open(s->dev.inst, "backend");
	if (!s->blk)
		return -1;
	s->bytes = s->blk->ops->length(s->blk->be);
	if (s->bytes < unit) {
		h->set_error(s->dev.inst, "the %s image holds %llu bytes, less than one %llu-byte block",
			     s->media == ATA_MEDIA_CDROM ? "CD-ROM" : "disk",
			     (unsigned long long)s->bytes, (unsigned long long)unit);
		return -1;
	}
	if (strlen(s->serial) > 20) {
		h->set_error(s->dev.inst, "serial \"%s\" is longer than 20 characters", s->serial);
		return -1;
	}
	s->ata.media = (enum ata_media)s->media;
	s->ata.nsectors = s->bytes / unit;
	/* A CD-ROM is read-only whatever the backend allows. */
	s->ata.read_only = s->media == ATA_MEDIA_CDROM || s->blk->ops->read_only(s->blk->be);
	snprintf(s->ata.serial, sizeof(s->ata.serial), "%s", s->serial);
	s->ata.io = (struct ata_io){ ide_img_read, ide_img_write, ide_irq, s };
	if (!h->pio_register(s->dev.inst, channels[s->channel].cmd, 8, &cmd_ops, s) ||
	    !h->pio_register(s->dev.inst, channels[s->channel].ctl, 1, &ctl_ops, s))
		return -1;
	if (s->channel == 0 && !h->pci_register(s->dev.inst, &piix3_ide_info))
		return -1;
	ata_reset(&s->ata);
	return 0;
}

static void ide_reset(void *dev)
{
	struct ide *s = dev;

	ata_reset(&s->ata);
}

static int ide_post_load(void *dev)
{
	struct ide *s = dev;

	ata_sanitize(&s->ata);
	return 0;
}

#define S struct ide
#define A(f) MODVM_F_U8(S, ata.f)
MODVM_STATE_SECTION_HOOKS(ide_state, "ata", 1, 1, NULL, ide_post_load,
	A(feature), A(nsector), A(lbal), A(lbam), A(lbah),
	A(hob_feature), A(hob_nsector), A(hob_lbal), A(hob_lbam), A(hob_lbah),
	A(device), A(status), A(error), A(control), A(irq_pending),
	A(xfer), A(cmd), MODVM_F_U32(S, ata.pos), MODVM_F_U32(S, ata.len),
	MODVM_F_U32(S, ata.sectors_left), MODVM_F_U64(S, ata.lba),
	MODVM_F_U32(S, ata.total), MODVM_F_U32(S, ata.done), A(from_disk),
	MODVM_F_U16(S, ata.byte_limit), A(sense_key), A(asc),
	MODVM_F_U8A(S, ata.buf, ATA_BUF_SIZE));
#undef A

static const char *const channel_names[] = { "primary", "secondary", NULL };
static const char *const media_names[] = { "disk", "cdrom", NULL };

MODVM_DEVICE_DEFINE(.name = "ide", .version = "1.0.0",
	.description = "Legacy IDE channel (0x1F0/IRQ 14 or 0x170/IRQ 15) with an ATA disk or an ATAPI CD-ROM, PIO",
	.props = MODVM_PROPS(
		MODVM_PROP_ENUM(S, channel, "channel", "primary", channel_names,
				"primary: ports 0x1F0-0x1F7, 0x3F6, IRQ 14; secondary: 0x170-0x177, 0x376, IRQ 15"),
		MODVM_PROP_ENUM(S, media, "media", "disk", media_names,
				"disk: ATA hard disk (512-byte sectors); cdrom: ATAPI CD-ROM (2048-byte blocks, read-only, e.g. an ISO image)"),
		MODVM_PROP_STRING(S, serial, "serial", "",
				  "serial number in IDENTIFY, up to 20 characters"),
		MODVM_PROP_BACKEND_("backend", "raw", MODVM_KIND_BLOCK,
				    "block backend: raw or qcow2 (its properties, e.g. path, go in the same group)")),
	.state = MODVM_STATE(&ide_state),
	.ops = MODVM_DEVICE_OPS(S, .init = ide_init, .reset = ide_reset));
#undef S
