/* A PCI function for the PCI bus tests: registers in a 4 KiB memory BAR
 * mirrored in a 32-byte I/O BAR, a 64-bit BAR with scratch memory next to
 * the MSI-X table and PBA, MSI, INTx, a vendor capability with a writable
 * byte, and DMA on command. */
#include <stdlib.h>
#include <string.h>

#include <modvm/modvm.h>
#include <modvm/pci.h>

/* BAR0 (memory) and BAR1 (I/O) registers, dwords */
#define REG_SCRATCH    0x00
#define REG_IRQ        0x04 /* write: INTx level; read: level */
#define REG_MSI        0x08 /* write: notify vector; read: 1 if accepted */
#define REG_DMA_LO     0x0C
#define REG_DMA_HI     0x10
#define REG_DMA_LEN    0x14
#define REG_DMA_CMD    0x18 /* 1: guest RAM -> buffer, 2: buffer -> RAM */
#define REG_DMA_STATUS 0x1C /* 0 done, 1 refused, 2 bad length */
#define BUF_OFF        0x100
#define BUF_LEN        256

/* BAR2 (64-bit memory, 64 KiB) */
#define BAR2_SIZE      0x10000
#define BAR2_SCRATCH   0x1000 /* bytes 0-0xFFF; by default the PBA is at
				 0x4000 and the table at 0x8000 */

#define CAP_KNOB       5      /* writable byte in the vendor capability */
#define CFG_REG        0xF0   /* device-specific dword in config space */

struct tpd {
	const struct modvm_host *host;
	modvm_inst *inst;
	modvm_pci_dev *pci;
	uint32_t scratch;
	uint32_t irq;
	uint32_t msi_ok;
	uint32_t dma_lo, dma_hi, dma_len, dma_status;
	uint8_t buf[BUF_LEN];
	uint8_t mem[BAR2_SCRATCH];
	uint32_t bar2_accesses;  /* accesses that reached the device */
	uint8_t knob;
	uint32_t cfg_reg;
};

static const char *const pins[] = { "none", "a", "b", "c", "d", NULL };

static const struct modvm_prop_desc props[] = {
	MODVM_PROP_INT_("slot", "-1", -1, 31, "PCI slot, -1: any free"),
	MODVM_PROP_INT_("device-id", "0x7063", 0, 0xffff, "PCI device ID"),
	MODVM_PROP_INT_("msi-vectors", "4", 0, 64, "MSI vectors (0: no MSI)"),
	MODVM_PROP_BOOL_("msi-64", "true", "64-bit MSI address"),
	MODVM_PROP_BOOL_("msi-mask", "true", "MSI per-vector masking"),
	MODVM_PROP_INT_("msix-vectors", "8", 0, 4096, "MSI-X table size (0: no MSI-X)"),
	MODVM_PROP_INT_("msix-table", "0x8000", 0, 0x20000, "MSI-X table offset in BAR2"),
	MODVM_PROP_INT_("msix-pba", "0x4000", 0, 0x20000, "MSI-X PBA offset in BAR2"),
	MODVM_PROP_BOOL_("no-bars", "false", "no BARs and no MSI-X"),
	MODVM_PROP_ENUM_("pin", "a", pins, "interrupt pin"),
	MODVM_PROP_BOOL_("vendor-cap", "true", "add a vendor-specific capability"),
	MODVM_PROP_END
};

static void dma(struct tpd *d, uint32_t cmd)
{
	uint64_t gpa = d->dma_lo | (uint64_t)d->dma_hi << 32;
	int rc;

	if (d->dma_len > BUF_LEN || (cmd != 1 && cmd != 2)) {
		d->dma_status = 2;
		return;
	}
	if (cmd == 1)
		rc = d->host->pci_dma_read(d->pci, gpa, d->buf, d->dma_len);
	else
		rc = d->host->pci_dma_write(d->pci, gpa, d->buf, d->dma_len);
	d->dma_status = rc ? 1 : 0;
}

static uint64_t regs_read(void *opaque, uint64_t off, unsigned size)
{
	struct tpd *d = opaque;

	if (off >= BUF_OFF && off < BUF_OFF + BUF_LEN)
		return d->buf[off - BUF_OFF];
	switch (off) {
	case REG_SCRATCH: return d->scratch;
	case REG_IRQ: return d->irq;
	case REG_MSI: return d->msi_ok;
	case REG_DMA_LO: return d->dma_lo;
	case REG_DMA_HI: return d->dma_hi;
	case REG_DMA_LEN: return d->dma_len;
	case REG_DMA_STATUS: return d->dma_status;
	default: return 0;
	}
}

static void regs_write(void *opaque, uint64_t off, uint64_t v, unsigned size)
{
	struct tpd *d = opaque;
	uint32_t x = (uint32_t)v;

	if (off >= BUF_OFF && off < BUF_OFF + BUF_LEN) {
		d->buf[off - BUF_OFF] = (uint8_t)v;
		return;
	}
	switch (off) {
	case REG_SCRATCH: d->scratch = x; break;
	case REG_IRQ:
		d->irq = x != 0;
		d->host->pci_set_irq(d->pci, (int)d->irq);
		break;
	case REG_MSI: d->msi_ok = d->host->pci_msi_notify(d->pci, x); break;
	case REG_DMA_LO: d->dma_lo = x; break;
	case REG_DMA_HI: d->dma_hi = x; break;
	case REG_DMA_LEN: d->dma_len = x; break;
	case REG_DMA_CMD: dma(d, x); break;
	}
}

static const struct modvm_io_ops regs_ops = { regs_read, regs_write };

static uint64_t bar2_read(void *opaque, uint64_t off, unsigned size)
{
	struct tpd *d = opaque;
	uint64_t v = 0;

	d->bar2_accesses++;
	if (off < BAR2_SCRATCH && off + size <= BAR2_SCRATCH)
		memcpy(&v, d->mem + off, size);
	return v;
}

static void bar2_write(void *opaque, uint64_t off, uint64_t v, unsigned size)
{
	struct tpd *d = opaque;

	d->bar2_accesses++;
	if (off < BAR2_SCRATCH && off + size <= BAR2_SCRATCH)
		memcpy(d->mem + off, &v, size);
}

static const struct modvm_io_ops bar2_ops = { bar2_read, bar2_write };

/* Byte at offset o of device-owned config space, or NULL if not ours. */
static uint8_t *cfg_byte(struct tpd *d, unsigned o)
{
	unsigned cap = d->host->pci_cap_offset(d->pci, 0);

	if (cap && o == cap + CAP_KNOB)
		return &d->knob;
	if (o >= CFG_REG && o < CFG_REG + 4)
		return (uint8_t *)&d->cfg_reg + (o - CFG_REG);
	return NULL;
}

static uint32_t cfg_read(void *opaque, unsigned off, unsigned size,
			 uint32_t stored)
{
	struct tpd *d = opaque;

	for (unsigned i = 0; i < size; i++) {
		uint8_t *b = cfg_byte(d, off + i);
		if (b)
			stored = (stored & ~(0xFFu << (8 * i))) | (uint32_t)*b << (8 * i);
	}
	return stored;
}

static void cfg_write(void *opaque, unsigned off, uint32_t v, unsigned size)
{
	struct tpd *d = opaque;

	for (unsigned i = 0; i < size; i++) {
		uint8_t *b = cfg_byte(d, off + i);
		if (b)
			*b = (uint8_t)(v >> (8 * i));
	}
}

/* cap_len (whole capability), then "TP", then the knob */
static const uint8_t vendor_cap_data[] = { 6, 'T', 'P', 0x00 };
static const struct modvm_pci_cap vendor_cap = {
	.id = MODVM_PCI_CAP_ID_VNDR, .len = sizeof(vendor_cap_data),
	.data = vendor_cap_data,
};

static void fill_info(const struct modvm_host *host, modvm_inst *inst,
		      struct tpd *d, struct modvm_pci_info *info)
{
	*info = (struct modvm_pci_info){
		.size = sizeof(*info),
		.vendor_id = 0x6d76, .device_id = (uint16_t)host->prop_int(inst, "device-id"),
		.subsystem_vendor_id = 0x6d76, .subsystem_id = 0x0001,
		.class_code = 0xFF, .subclass = 0x00, .revision = 0x01,
		.interrupt_pin = (uint8_t)host->prop_enum(inst, "pin"),
		.slot = (int32_t)host->prop_int(inst, "slot"),
		.msi = { .vectors = (uint32_t)host->prop_int(inst, "msi-vectors"),
			 .addr64 = host->prop_bool(inst, "msi-64"),
			 .per_vector_mask = host->prop_bool(inst, "msi-mask") },
		.config_read = cfg_read, .config_write = cfg_write,
		.config_opaque = d,
	};
	if (host->prop_bool(inst, "vendor-cap")) {
		info->caps = &vendor_cap;
		info->ncaps = 1;
	}
	if (host->prop_bool(inst, "no-bars"))
		return;
	info->bars[0] = (struct modvm_pci_bar){ .size = 4096, .type = MODVM_PCI_BAR_MEM32,
						.ops = &regs_ops, .opaque = d };
	info->bars[1] = (struct modvm_pci_bar){ .size = 32, .type = MODVM_PCI_BAR_IO,
						.ops = &regs_ops, .opaque = d };
	info->bars[2] = (struct modvm_pci_bar){ .size = BAR2_SIZE, .type = MODVM_PCI_BAR_MEM64,
						.prefetchable = true,
						.ops = &bar2_ops, .opaque = d };
	info->msix = (struct modvm_pci_msix){
		.vectors = (uint32_t)host->prop_int(inst, "msix-vectors"),
		.table_bar = 2,
		.table_offset = (uint32_t)host->prop_int(inst, "msix-table"),
		.pba_bar = 2,
		.pba_offset = (uint32_t)host->prop_int(inst, "msix-pba"),
	};
}

static void *tpd_create(const struct modvm_host *host, modvm_inst *inst)
{
	struct modvm_pci_info info;
	struct tpd *d = calloc(1, sizeof(*d));

	if (!d) {
		host->set_error(inst, "out of memory");
		return NULL;
	}
	d->host = host;
	d->inst = inst;
	fill_info(host, inst, d, &info);
	d->pci = host->pci_register(inst, &info);
	if (!d->pci) {
		free(d);
		return NULL;
	}
	return d;
}

static void tpd_destroy(void *opaque)
{
	free(opaque);
}

static void tpd_reset(void *opaque)
{
	struct tpd *d = opaque;

	d->scratch = d->irq = d->msi_ok = 0;
	d->dma_lo = d->dma_hi = d->dma_len = d->dma_status = 0;
	d->knob = 0;
	d->cfg_reg = 0;
	d->host->pci_set_irq(d->pci, 0);
}

#define T struct tpd
static const struct modvm_state_field fields[] = {
	MODVM_F_U32(T, scratch), MODVM_F_U32(T, irq), MODVM_F_U32(T, msi_ok),
	MODVM_F_U32(T, dma_lo), MODVM_F_U32(T, dma_hi), MODVM_F_U32(T, dma_len),
	MODVM_F_U32(T, dma_status), MODVM_F_BYTES(T, buf), MODVM_F_BYTES(T, mem),
	MODVM_F_U8(T, knob), MODVM_F_U32(T, cfg_reg),
};
static const struct modvm_state_section section = {
	.name = "regs", .version = 1, .min_version = 1,
	.fields = fields, .nfields = MODVM_COUNTOF(fields),
};
static const struct modvm_state_section *const sections[] = { &section, NULL };

static const struct modvm_device_ops ops = {
	.size = sizeof(ops), .create = tpd_create, .destroy = tpd_destroy,
	.reset = tpd_reset,
};

MODVM_PLUGIN_DEFINE(.kind = MODVM_KIND_DEVICE, .name = "test-pci-dev",
		    .version = "1.0.0", .description = "PCI function for the PCI bus tests",
		    .props = props, .state = sections, .ops = &ops);
