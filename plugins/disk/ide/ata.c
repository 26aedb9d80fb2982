/* The ATA/ATAPI command parser of modvm's IDE channel (see ata.h). Every
 * value here comes from the guest: counts, LBAs, byte limits and CDB
 * fields are checked against the image and the buffer before use.
 * Only device 0 (master) exists: with device 1 selected the status reads
 * 0 and commands are ignored, as ATA-6 9.16 asks of a channel without it.
 */
#include "ata.h"

#include <string.h>

/* Status (ATA-6 7.15) and error (7.9) bits */
#define ST_BSY  0x80
#define ST_DRDY 0x40
#define ST_DSC  0x10
#define ST_DRQ  0x08
#define ST_ERR  0x01
#define ER_ABRT 0x04
#define ER_IDNF 0x10

#define DEV_DEV 0x10   /* device register: device 1 selected */
#define DEV_LBA 0x40
#define CTL_NIEN 0x02  /* device control: interrupts off */
#define CTL_SRST 0x04
#define CTL_HOB  0x80

/* ATAPI interrupt reason, in the sector count register */
#define IR_COD 0x01
#define IR_IO  0x02

/* CHS geometry reported in IDENTIFY and used for CHS addressing */
#define HEADS 16
#define SPT   63

#define CD_BLOCK 2048u

enum { XFER_NONE, XFER_IN, XFER_OUT, XFER_PACKET };

/* SCSI sense keys and additional sense codes (SPC-3 4.5.6, annex D) */
#define SK_NOT_READY       0x02
#define SK_ILLEGAL_REQUEST 0x05
#define SK_DATA_PROTECT    0x07
#define ASC_INVALID_OPCODE 0x20
#define ASC_LBA_RANGE      0x21
#define ASC_INVALID_FIELD  0x24
#define ASC_WRITE_PROTECT  0x27

static bool is_cd(const struct ata_dev *d)
{
	return d->media == ATA_MEDIA_CDROM;
}

static void irq_update(struct ata_dev *d)
{
	d->io.irq(d->io.opaque, d->irq_pending && !(d->control & CTL_NIEN));
}

static void raise_irq(struct ata_dev *d)
{
	d->irq_pending = 1;
	irq_update(d);
}

static void set_signature(struct ata_dev *d)
{
	d->nsector = d->lbal = 1;
	d->lbam = is_cd(d) ? 0x14 : 0;
	d->lbah = is_cd(d) ? 0xEB : 0;
	d->device &= DEV_DEV;
}

void ata_reset(struct ata_dev *d)
{
	d->feature = d->hob_feature = d->hob_nsector = 0;
	d->hob_lbal = d->hob_lbam = d->hob_lbah = 0;
	d->device = 0;
	set_signature(d);
	d->error = 0x01;   /* diagnostics passed */
	d->status = ST_DRDY | ST_DSC;
	d->xfer = XFER_NONE;
	d->pos = d->len = 0;
	d->sectors_left = 0;
	d->total = d->done = 0;
	d->sense_key = d->asc = 0;
	d->irq_pending = 0;
	irq_update(d);
}

static void cmd_done(struct ata_dev *d)
{
	d->xfer = XFER_NONE;
	d->pos = d->len = 0;
	d->status = ST_DRDY | ST_DSC;
	raise_irq(d);
}

static void cmd_abort(struct ata_dev *d, uint8_t error)
{
	d->xfer = XFER_NONE;
	d->pos = d->len = 0;
	d->error = error;
	d->status = ST_DRDY | ST_DSC | ST_ERR;
	raise_irq(d);
}

/* A data block of len bytes in buf for the guest (IN) or from it (OUT). */
static void start_block(struct ata_dev *d, int dir, uint32_t len, bool irq)
{
	d->xfer = (uint8_t)dir;
	d->pos = 0;
	d->len = len;
	d->status = ST_DRDY | ST_DSC | ST_DRQ;
	if (irq)
		raise_irq(d);
}

/* ---- IDENTIFY ---------------------------------------------------------- */

/* ATA strings: two characters a word, the first in the high byte,
 * padded with spaces. */
static void put_string(uint16_t *w, unsigned words, const char *s)
{
	size_t n = strlen(s);

	for (unsigned i = 0; i < words * 2; i++) {
		uint8_t c = i < n ? (uint8_t)s[i] : ' ';
		if (i & 1)
			w[i / 2] |= c;
		else
			w[i / 2] = (uint16_t)(c << 8);
	}
}

static void identify_common(struct ata_dev *d, uint16_t *w, const char *model)
{
	memset(w, 0, 512);
	put_string(w + 10, 10, d->serial[0] ? d->serial : "MODVM0001");
	put_string(w + 23, 4, "1.0");
	put_string(w + 27, 20, model);
	w[49] = 1u << 9;            /* LBA (no DMA: PIO only) */
	w[53] = 0x0006;             /* words 64-70 and 88 valid */
	w[64] = 0x0003;             /* PIO modes 3 and 4 */
	w[65] = w[66] = w[67] = w[68] = 120;
	w[80] = 0x007E;             /* ATA/ATAPI-1 to -6 */
}

static void identify_disk(struct ata_dev *d)
{
	uint16_t w[256];
	uint64_t n = d->nsectors;
	uint64_t lba28 = n < 0x0FFFFFFF ? n : 0x0FFFFFFF;
	uint64_t cyls = n / (HEADS * SPT);

	if (cyls > 16383)
		cyls = 16383;
	identify_common(d, w, "MODVM HARDDISK");
	w[0] = 0x0040;              /* fixed device, ATA */
	w[1] = w[54] = (uint16_t)cyls;
	w[3] = w[55] = HEADS;
	w[6] = w[56] = SPT;
	w[53] |= 0x0001;            /* words 54-58 valid */
	w[57] = (uint16_t)(cyls * HEADS * SPT);
	w[58] = (uint16_t)((cyls * HEADS * SPT) >> 16);
	w[47] = 0x8000;             /* READ/WRITE MULTIPLE: not supported */
	w[50] = 0x4000;
	w[60] = (uint16_t)lba28;
	w[61] = (uint16_t)(lba28 >> 16);
	w[82] = 0x4000;
	w[83] = 0x4000 | 1u << 13 | 1u << 12 | 1u << 10; /* FLUSH (EXT), 48-bit */
	w[84] = 0x4000;
	w[85] = 0x4000;
	w[86] = 1u << 13 | 1u << 12 | 1u << 10;
	w[87] = 0x4000;
	for (int i = 0; i < 4; i++)
		w[100 + i] = (uint16_t)(n >> (16 * i));
	for (int i = 0; i < 256; i++) {
		d->buf[2 * i] = (uint8_t)w[i];
		d->buf[2 * i + 1] = (uint8_t)(w[i] >> 8);
	}
}

static void identify_packet(struct ata_dev *d)
{
	uint16_t w[256];

	identify_common(d, w, "MODVM CD-ROM");
	/* ATAPI, CD-ROM (type 5), removable, accelerated DRQ, 12-byte packets */
	w[0] = 0x8000 | 5u << 8 | 0x80 | 0x40;
	for (int i = 0; i < 256; i++) {
		d->buf[2 * i] = (uint8_t)w[i];
		d->buf[2 * i + 1] = (uint8_t)(w[i] >> 8);
	}
}

/* ---- ATA read/write sectors -------------------------------------------- */

static bool lba48_cmd(uint8_t cmd)
{
	return cmd == 0x24 || cmd == 0x34 || cmd == 0x42 || cmd == 0xEA;
}

/* The command's first sector and count, or false if it addresses a
 * sector that does not exist (IDNF). */
static bool ata_range(struct ata_dev *d, uint64_t *lba, uint32_t *count)
{
	uint64_t l;
	uint32_t n;

	if (lba48_cmd(d->cmd)) {
		l = (uint64_t)d->hob_lbah << 40 | (uint64_t)d->hob_lbam << 32 |
		    (uint64_t)d->hob_lbal << 24 | (uint64_t)d->lbah << 16 |
		    (uint64_t)d->lbam << 8 | d->lbal;
		n = (uint32_t)d->hob_nsector << 8 | d->nsector;
		if (!n)
			n = 65536;
	} else {
		if (d->device & DEV_LBA) {
			l = (uint64_t)(d->device & 0x0F) << 24 |
			    (uint64_t)d->lbah << 16 | (uint64_t)d->lbam << 8 |
			    d->lbal;
		} else {
			uint32_t cyl = (uint32_t)d->lbah << 8 | d->lbam;
			unsigned head = d->device & 0x0F, sect = d->lbal;
			if (!sect || sect > SPT || head >= HEADS)
				return false;
			l = ((uint64_t)cyl * HEADS + head) * SPT + sect - 1;
		}
		n = d->nsector ? d->nsector : 256;
	}
	if (l >= d->nsectors || n > d->nsectors - l)
		return false;
	*lba = l;
	*count = n;
	return true;
}

static void read_next_sector(struct ata_dev *d, bool irq)
{
	if (d->io.read(d->io.opaque, d->lba * 512, d->buf, 512)) {
		cmd_abort(d, ER_ABRT);
		return;
	}
	d->lba++;
	d->sectors_left--;
	start_block(d, XFER_IN, 512, irq);
}

static void ata_rw(struct ata_dev *d, bool write)
{
	uint64_t lba;
	uint32_t n;

	if (!ata_range(d, &lba, &n)) {
		cmd_abort(d, ER_IDNF | ER_ABRT);
		return;
	}
	if (write && d->read_only) {
		cmd_abort(d, ER_ABRT);
		return;
	}
	d->lba = lba;
	d->sectors_left = n;
	if (write) {
		/* the first block needs no interrupt (ATA-6 9.7) */
		d->sectors_left--;
		start_block(d, XFER_OUT, 512, false);
	} else {
		read_next_sector(d, true);
	}
}

/* A block of WRITE SECTORS arrived. */
static void write_block_done(struct ata_dev *d)
{
	if (d->io.write(d->io.opaque, d->lba * 512, d->buf, 512)) {
		cmd_abort(d, ER_ABRT);
		return;
	}
	d->lba++;
	if (!d->sectors_left) {
		cmd_done(d);
		return;
	}
	d->sectors_left--;
	start_block(d, XFER_OUT, 512, true);
}

/* ---- ATAPI ----------------------------------------------------------- */

static void be_put16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void be_put32(uint8_t *p, uint32_t v)
{
	be_put16(p, v >> 16);
	be_put16(p + 2, v);
}
static uint32_t be_get16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }
static uint32_t be_get32(const uint8_t *p) { return be_get16(p) << 16 | be_get16(p + 2); }

static void atapi_check(struct ata_dev *d, uint8_t key, uint8_t asc)
{
	d->sense_key = key;
	d->asc = asc;
	d->nsector = IR_IO | IR_COD;
	cmd_abort(d, (uint8_t)(key << 4 | ER_ABRT));
}

static void atapi_good(struct ata_dev *d)
{
	d->sense_key = d->asc = 0;
	d->nsector = IR_IO | IR_COD;
	cmd_done(d);
}

/* The next DRQ block of an ATAPI data-in command, or its completion. */
static void atapi_next_chunk(struct ata_dev *d)
{
	uint32_t left = d->total - d->done, n = left;

	if (!left) {
		atapi_good(d);
		return;
	}
	if (n > d->byte_limit)
		n = d->byte_limit;
	if (d->from_disk) {
		if (n > ATA_BUF_SIZE)
			n = ATA_BUF_SIZE;
		if (n >= CD_BLOCK)
			n -= n % CD_BLOCK;
		if (d->io.read(d->io.opaque, d->lba * CD_BLOCK + d->done, d->buf, n)) {
			atapi_check(d, SK_NOT_READY, 0x3A); /* medium not present */
			return;
		}
		d->xfer = XFER_IN;
		d->pos = 0;
		d->len = n;
	} else {
		d->xfer = XFER_IN;
		d->pos = d->done;
		d->len = d->done + n;
	}
	d->done += n;
	d->lbam = (uint8_t)n;
	d->lbah = (uint8_t)(n >> 8);
	d->nsector = IR_IO;
	d->status = ST_DRDY | ST_DSC | ST_DRQ;
	raise_irq(d);
}

/* Reply with the first `len` bytes of buf, no more than alloc. */
static void atapi_reply(struct ata_dev *d, uint32_t len, uint32_t alloc)
{
	d->from_disk = 0;
	d->total = len < alloc ? len : alloc;
	d->done = 0;
	atapi_next_chunk(d);
}

static void atapi_read(struct ata_dev *d, uint32_t lba, uint32_t count)
{
	if (lba >= d->nsectors || count > d->nsectors - lba) {
		atapi_check(d, SK_ILLEGAL_REQUEST, ASC_LBA_RANGE);
		return;
	}
	/* total is 32-bit: at most 2 GiB - 2 KiB in one command */
	if (count > UINT32_MAX / CD_BLOCK) {
		atapi_check(d, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD);
		return;
	}
	d->from_disk = 1;
	d->lba = lba;
	d->total = count * CD_BLOCK;
	d->done = 0;
	atapi_next_chunk(d);
}

static void lba_to_msf(uint8_t *p, uint32_t lba)
{
	lba += 150;
	p[0] = 0;
	p[1] = (uint8_t)(lba / (75 * 60));
	p[2] = (uint8_t)(lba / 75 % 60);
	p[3] = (uint8_t)(lba % 75);
}

/* READ TOC/PMA/ATIP format 0: one data track and the lead-out. */
static void atapi_read_toc(struct ata_dev *d, const uint8_t *cdb)
{
	bool msf = cdb[1] & 0x02;
	unsigned format = cdb[2] & 0x0F, start = cdb[6];
	uint8_t *b = d->buf;
	uint32_t len = 4;

	if (format != 0 || (start > 1 && start != 0xAA)) {
		atapi_check(d, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD);
		return;
	}
	memset(b, 0, 20);
	b[2] = b[3] = 1;                     /* first and last track */
	if (start <= 1) {
		b[len + 1] = 0x14;           /* ADR 1, data track */
		b[len + 2] = 1;
		if (msf)
			lba_to_msf(b + len + 4, 0);
		len += 8;
	}
	b[len + 1] = 0x14;
	b[len + 2] = 0xAA;                   /* lead-out */
	if (msf)
		lba_to_msf(b + len + 4, (uint32_t)d->nsectors);
	else
		be_put32(b + len + 4, (uint32_t)d->nsectors);
	len += 8;
	be_put16(b, len - 2);
	atapi_reply(d, len, be_get16(cdb + 7));
}

static void atapi_packet(struct ata_dev *d)
{
	uint8_t cdb[12];
	uint8_t *b = d->buf;

	memcpy(cdb, d->buf, sizeof(cdb));
	switch (cdb[0]) {
	case 0x00: /* TEST UNIT READY */
	case 0x1B: /* START STOP UNIT */
	case 0x1E: /* PREVENT ALLOW MEDIUM REMOVAL */
	case 0x2B: /* SEEK(10) */
		atapi_good(d);
		return;
	case 0x03: /* REQUEST SENSE */
		memset(b, 0, 18);
		b[0] = 0x70;
		b[2] = d->sense_key;
		b[7] = 10;
		b[12] = d->asc;
		d->sense_key = d->asc = 0;
		atapi_reply(d, 18, cdb[4]);
		return;
	case 0x12: /* INQUIRY */
		if (cdb[1] & 0x01) { /* no vital product data pages */
			atapi_check(d, SK_ILLEGAL_REQUEST, ASC_INVALID_FIELD);
			return;
		}
		memset(b, 0, 36);
		b[0] = 0x05;                 /* CD/DVD device */
		b[1] = 0x80;                 /* removable */
		b[2] = 0x05;                 /* SPC-3 */
		b[3] = 0x32;                 /* ATAPI, response format 2 */
		b[4] = 31;
		memcpy(b + 8, "MODVM   ", 8);
		memcpy(b + 16, "CD-ROM          ", 16);
		memcpy(b + 32, "1.0 ", 4);
		atapi_reply(d, 36, be_get16(cdb + 3));
		return;
	case 0x25: /* READ CAPACITY(10) */
		be_put32(b, d->nsectors ? (uint32_t)d->nsectors - 1 : 0);
		be_put32(b + 4, CD_BLOCK);
		atapi_reply(d, 8, 8);
		return;
	case 0x28: /* READ(10) */
		atapi_read(d, be_get32(cdb + 2), be_get16(cdb + 7));
		return;
	case 0xA8: /* READ(12) */
		atapi_read(d, be_get32(cdb + 2), be_get32(cdb + 6));
		return;
	case 0x43: /* READ TOC */
		atapi_read_toc(d, cdb);
		return;
	case 0x5A: /* MODE SENSE(10): the header only, no pages */
		memset(b, 0, 8);
		be_put16(b, 6);
		b[2] = 0x01;                 /* 120 mm data CD */
		atapi_reply(d, 8, be_get16(cdb + 7));
		return;
	case 0x46: /* GET CONFIGURATION: the header, current profile CD-ROM */
		memset(b, 0, 8);
		be_put32(b, 4);
		be_put16(b + 6, 0x0008);
		atapi_reply(d, 8, be_get16(cdb + 7));
		return;
	case 0x4A: /* GET EVENT STATUS NOTIFICATION: no event */
		memset(b, 0, 4);
		b[1] = 2;
		b[2] = 0x80;                 /* NEA */
		atapi_reply(d, 4, be_get16(cdb + 7));
		return;
	case 0x2A: /* WRITE(10) */
	case 0xAA: /* WRITE(12) */
		atapi_check(d, SK_DATA_PROTECT, ASC_WRITE_PROTECT);
		return;
	default:
		atapi_check(d, SK_ILLEGAL_REQUEST, ASC_INVALID_OPCODE);
		return;
	}
}

static void start_packet(struct ata_dev *d)
{
	if (d->feature & 0x01) { /* DMA: not offered (IDENTIFY word 49) */
		cmd_abort(d, ER_ABRT);
		return;
	}
	/* 0 is not allowed (ATA-6 8.21): take the largest; an odd limit
	 * rounds down, the data port moving words, but never to 0, which
	 * would be a data phase that moves nothing */
	d->byte_limit = (uint16_t)(d->lbah << 8 | d->lbam);
	if (d->byte_limit == 0)
		d->byte_limit = 0xFFFE;
	d->byte_limit &= 0xFFFE;
	if (d->byte_limit == 0)
		d->byte_limit = 2;
	d->nsector = IR_COD;
	start_block(d, XFER_PACKET, 12, false);
}

/* ---- commands -------------------------------------------------------- */

static void exec_command(struct ata_dev *d, uint8_t cmd)
{
	d->cmd = cmd;
	d->sectors_left = 0;
	d->error = 0;
	d->irq_pending = 0;
	irq_update(d);
	if (is_cd(d)) {
		switch (cmd) {
		case 0xA0: start_packet(d); return;
		case 0xA1:
			identify_packet(d);
			start_block(d, XFER_IN, 512, true);
			return;
		case 0x08: /* DEVICE RESET */
			ata_reset(d);
			return;
		case 0xEC: /* IDENTIFY DEVICE: abort with the signature */
			set_signature(d);
			cmd_abort(d, ER_ABRT);
			return;
		case 0x00: case 0xE0: case 0xE1: case 0xE5: case 0xE7:
		case 0xEF:
			cmd_done(d);
			return;
		default:
			cmd_abort(d, ER_ABRT);
			return;
		}
	}
	switch (cmd) {
	case 0xEC: /* IDENTIFY DEVICE */
		identify_disk(d);
		start_block(d, XFER_IN, 512, true);
		return;
	case 0x20: case 0x21: case 0x24: /* READ SECTORS (EXT) */
		ata_rw(d, false);
		return;
	case 0x30: case 0x31: case 0x34: /* WRITE SECTORS (EXT) */
		ata_rw(d, true);
		return;
	case 0x40: case 0x41: case 0x42: { /* READ VERIFY SECTORS (EXT) */
		uint64_t lba;
		uint32_t n;
		if (ata_range(d, &lba, &n))
			cmd_done(d);
		else
			cmd_abort(d, ER_IDNF | ER_ABRT);
		return;
	}
	case 0xE7: case 0xEA: /* FLUSH CACHE (EXT): writes are synchronous */
	case 0x91: /* INITIALIZE DEVICE PARAMETERS (geometry is fixed) */
	case 0xEF: /* SET FEATURES */
	case 0x10: /* RECALIBRATE */
	case 0xE0: case 0xE1: case 0xE2: case 0xE3: case 0xE5: /* power */
		cmd_done(d);
		return;
	default: /* includes PACKET, IDENTIFY PACKET, SET MULTIPLE, DMA */
		cmd_abort(d, ER_ABRT);
		return;
	}
}

/* The guest consumed or filled the current block. */
static void block_done(struct ata_dev *d)
{
	switch (d->xfer) {
	case XFER_IN:
		if (is_cd(d) && d->cmd == 0xA0)
			atapi_next_chunk(d);
		else if (d->sectors_left && d->cmd != 0xEC && d->cmd != 0xA1)
			read_next_sector(d, true);
		else
			cmd_done(d);
		break;
	case XFER_OUT:
		write_block_done(d);
		break;
	case XFER_PACKET:
		d->xfer = XFER_NONE;
		d->status = ST_DRDY | ST_DSC | ST_BSY;
		atapi_packet(d);
		break;
	}
}

static bool dev1_selected(const struct ata_dev *d)
{
	return d->device & DEV_DEV;
}

static uint32_t data_read(struct ata_dev *d, unsigned size)
{
	uint32_t v = 0;

	if (d->xfer != XFER_IN || dev1_selected(d))
		return size == 4 ? 0xFFFFFFFFu : size == 2 ? 0xFFFF : 0xFF;
	for (unsigned i = 0; i < size && d->pos < d->len; i++)
		v |= (uint32_t)d->buf[d->pos++] << (8 * i);
	if (d->pos >= d->len)
		block_done(d);
	return v;
}

static void data_write(struct ata_dev *d, uint32_t v, unsigned size)
{
	if ((d->xfer != XFER_OUT && d->xfer != XFER_PACKET) || dev1_selected(d))
		return;
	for (unsigned i = 0; i < size && d->pos < d->len; i++)
		d->buf[d->pos++] = (uint8_t)(v >> (8 * i));
	if (d->pos >= d->len)
		block_done(d);
}

uint32_t ata_read(struct ata_dev *d, unsigned reg, unsigned size)
{
	bool hob = d->control & CTL_HOB;

	if (reg == ATA_REG_DATA)
		return data_read(d, size);
	switch (reg) {
	case ATA_REG_ERROR:   return hob ? d->hob_feature : d->error;
	case ATA_REG_NSECTOR: return hob ? d->hob_nsector : d->nsector;
	case ATA_REG_LBAL:    return hob ? d->hob_lbal : d->lbal;
	case ATA_REG_LBAM:    return hob ? d->hob_lbam : d->lbam;
	case ATA_REG_LBAH:    return hob ? d->hob_lbah : d->lbah;
	case ATA_REG_DEVICE:  return d->device | 0xA0;
	case ATA_REG_STATUS:
		if (dev1_selected(d))
			return 0;
		d->irq_pending = 0;
		irq_update(d);
		return d->status;
	case ATA_REG_CONTROL:
		return dev1_selected(d) ? 0 : d->status;
	}
	return 0xFF;
}

static void latch(uint8_t *cur, uint8_t *hob, uint8_t v)
{
	*hob = *cur;
	*cur = v;
}

void ata_write(struct ata_dev *d, unsigned reg, uint32_t v, unsigned size)
{
	uint8_t b = (uint8_t)v;

	if (reg == ATA_REG_DATA) {
		data_write(d, v, size);
		return;
	}
	if (reg != ATA_REG_CONTROL)
		d->control &= (uint8_t)~CTL_HOB; /* a register write clears HOB */
	switch (reg) {
	case ATA_REG_ERROR:   latch(&d->feature, &d->hob_feature, b); break;
	case ATA_REG_NSECTOR: latch(&d->nsector, &d->hob_nsector, b); break;
	case ATA_REG_LBAL:    latch(&d->lbal, &d->hob_lbal, b); break;
	case ATA_REG_LBAM:    latch(&d->lbam, &d->hob_lbam, b); break;
	case ATA_REG_LBAH:    latch(&d->lbah, &d->hob_lbah, b); break;
	case ATA_REG_DEVICE:  d->device = b & 0x5F; break;
	case ATA_REG_STATUS:
		/* A command while busy or with device 1 selected is ignored
		 * (DEVICE RESET is accepted while busy on an ATAPI device). */
		if (dev1_selected(d))
			break;
		if ((d->status & (ST_BSY | ST_DRQ)) && !(is_cd(d) && b == 0x08))
			break;
		exec_command(d, b);
		break;
	case ATA_REG_CONTROL:
		if ((b & CTL_SRST) && !(d->control & CTL_SRST)) {
			uint8_t dev = d->device;
			ata_reset(d);
			d->device = dev & DEV_DEV;
			d->status = ST_BSY;
		} else if (!(b & CTL_SRST) && (d->control & CTL_SRST)) {
			d->status = ST_DRDY | ST_DSC;
		}
		d->control = b;
		irq_update(d);
		break;
	}
}

void ata_sanitize(struct ata_dev *d)
{
	if (d->xfer > XFER_PACKET)
		d->xfer = XFER_NONE;
	if (d->len > ATA_BUF_SIZE || d->pos > d->len ||
	    (d->xfer == XFER_PACKET && d->len != 12))
		d->xfer = XFER_NONE;
	if (d->xfer == XFER_NONE)
		d->pos = d->len = 0;
	/* a write block lands at lba, and sectors_left more follow it; a
	 * packet or a write belongs to its kind of device only */
	if (d->xfer == XFER_OUT &&
	    (is_cd(d) || d->lba >= d->nsectors ||
	     d->sectors_left > d->nsectors - d->lba - 1))
		d->xfer = XFER_NONE;
	if (d->xfer == XFER_PACKET && !is_cd(d))
		d->xfer = XFER_NONE;
	if (!d->from_disk && d->total > ATA_BUF_SIZE)
		d->total = d->done = 0;
	if (d->xfer == XFER_NONE)
		d->pos = d->len = 0;
	if (d->done > d->total)
		d->done = d->total;
	/* sectors_left and lba are checked against the image when used:
	 * reads and writes go through ata_range only at command start, so
	 * bound them here */
	if (d->lba > d->nsectors || d->sectors_left > d->nsectors - d->lba)
		d->sectors_left = 0;
	if (d->from_disk && (d->lba > d->nsectors ||
			     d->total / CD_BLOCK > d->nsectors - d->lba))
		d->total = d->done;
	d->byte_limit &= 0xFFFE;
	if (!d->byte_limit)
		d->byte_limit = 2;
	d->device &= 0x5F;
	irq_update(d);
}
