/* PCI host bridge: function 00:00.0 (an i440FX, 8086:1237, as guests know
 * it), configuration mechanism #1 at ports 0xCF8/0xCFC (PCI Local Bus
 * Specification 3.0, 3.2.2.3.2) and the reset control register at 0xCF9.
 * The bus itself (config space, BARs, interrupts) lives in the core. */
#include <modvm/modvm.h>
#include <modvm/pci.h>

#define PORT_BASE      MODVM_PC_PORT_PCI_ADDR /* 0xCF8-0xCFF */
#define PORT_LEN       8
#define OFF_ADDR       0                      /* CONFIG_ADDRESS, dword */
#define OFF_RCR        (MODVM_PC_PORT_RESET - PORT_BASE)
#define OFF_DATA       (MODVM_PC_PORT_PCI_DATA - PORT_BASE)

/* CONFIG_ADDRESS: enable (31), bus (23:16), device (15:11), function
 * (10:8), register (7:2); 30:24 and 1:0 are reserved and read 0. */
#define CA_ENABLE      0x80000000u
#define CA_WRITABLE    0x80FFFFFCu

/* Reset Control Register (Intel ICH/PIIX family, port 0xCF9). */
#define RCR_SYS_RST    0x02 /* hard reset when RST_CPU is set */
#define RCR_RST_CPU    0x04 /* writing 1 starts the reset */
#define RCR_FULL_RST   0x08
#define RCR_KEPT       (RCR_SYS_RST | RCR_FULL_RST)

struct pci_host {
	struct modvm_dev dev;
	bool assign;           /* property "assign-bars" */
	modvm_pci_dev *self;
	uint32_t config_address;
	uint8_t rcr;
	/* The bus as state, filled just before a save (see pre_save). */
	struct modvm_pci_func_state funcs[MODVM_PCI_SLOTS];
};

static uint16_t ca_bdf(uint32_t ca)
{
	return (uint16_t)(ca >> 8);
}

static uint64_t host_read(void *opaque, uint64_t off, unsigned size)
{
	struct pci_host *p = opaque;

	if (off == OFF_ADDR && size == 4)
		return p->config_address;
	if (off == OFF_RCR && size == 1)
		return p->rcr;
	if (off < OFF_DATA || !(p->config_address & CA_ENABLE))
		return ~0ull; /* not a config cycle: nothing answers */
	return p->dev.host->pci_config_read(p->dev.inst, ca_bdf(p->config_address),
					(p->config_address & 0xFC) + (unsigned)(off & 3),
					size);
}

/* Linux (reboot=pci) writes SYS_RST, then SYS_RST | RST_CPU. */
static void rcr_write(struct pci_host *p, uint8_t v)
{
	p->rcr = v & RCR_KEPT;
	if (v & RCR_RST_CPU)
		p->dev.host->machine_request(p->dev.inst, MODVM_REQUEST_RESET);
}

/* Only a dword access to 0xCF8 is CONFIG_ADDRESS; byte and word accesses
 * there are ordinary I/O that no device claims. */
static void host_write(void *opaque, uint64_t off, uint64_t v, unsigned size)
{
	struct pci_host *p = opaque;

	if (off == OFF_ADDR && size == 4) {
		p->config_address = (uint32_t)v & CA_WRITABLE;
		return;
	}
	if (off == OFF_RCR && size == 1) {
		rcr_write(p, (uint8_t)v);
		return;
	}
	if (off < OFF_DATA || !(p->config_address & CA_ENABLE))
		return;
	p->dev.host->pci_config_write(p->dev.inst, ca_bdf(p->config_address),
				  (p->config_address & 0xFC) + (unsigned)(off & 3),
				  (uint32_t)v, size);
}

static const struct modvm_io_ops host_ops = { host_read, host_write };

static const struct modvm_pci_info bridge_info = {
	.size = sizeof(struct modvm_pci_info),
	.vendor_id = 0x8086, .device_id = 0x1237, /* 82441FX PMC */
	.revision = 0x02,
	.class_code = 0x06, .subclass = 0x00, .prog_if = 0x00, /* host bridge */
	.slot = 0,
};

static void pci_host_reset(void *opaque)
{
	struct pci_host *p = opaque;

	p->config_address = 0;
	p->rcr = 0;
	p->dev.host->pci_bus_reset(p->dev.inst, p->assign);
}

static int pci_host_init(void *dev)
{
	struct pci_host *p = dev;

	if (!p->dev.host->pio_register(p->dev.inst, PORT_BASE, PORT_LEN, &host_ops, p))
		return -1;
	p->self = p->dev.host->pci_register(p->dev.inst, &bridge_info);
	if (!p->self)
		return -1;
	/* Functions registered before the bridge get the same treatment as
	 * those after it (assign-bars may be false). */
	pci_host_reset(p);
	return 0;
}

static void pre_save(void *opaque)
{
	struct pci_host *p = opaque;

	p->dev.host->pci_state_save(p->dev.inst, p->funcs, MODVM_PCI_SLOTS);
}

static int post_load(void *opaque)
{
	struct pci_host *p = opaque;

	p->config_address &= CA_WRITABLE;
	p->rcr &= RCR_KEPT;
	return p->dev.host->pci_state_load(p->dev.inst, p->funcs, MODVM_PCI_SLOTS) ? -1 : 0;
}

#define H struct pci_host
#define F struct modvm_pci_func_state
static const struct modvm_state_field func_fields[] = {
	MODVM_F_U16(F, vendor_id), MODVM_F_U16(F, device_id), MODVM_F_U8(F, intx),
	MODVM_F_BYTES(F, config), MODVM_F_VBUF(F, msix, msix_len),
};
MODVM_STATE_SECTION(regs_state, "regs", 1, 1,
		    MODVM_F_U32(H, config_address), MODVM_F_U8(H, rcr));
/* Config space, BAR placement and MSI-X tables of every slot; loading
 * checks each slot holds the same function, then maps the BARs again. */
MODVM_STATE_SECTION_HOOKS(bus_state, "bus", 1, 1, pre_save, post_load,
			  MODVM_F_STRUCT(H, funcs, F, func_fields));
#undef F

MODVM_DEVICE_DEFINE(.name = "pci-host", .version = "1.0.0",
	.description = "PCI host bridge (i440FX IDs), config mechanism #1 and reset register",
	.props = MODVM_PROPS(MODVM_PROP_BOOL(H, assign, "assign-bars", "true",
		"at start and reset, place BARs, set Interrupt Line and enable decode as firmware would")),
	.state = MODVM_STATE(&regs_state, &bus_state),
	.ops = MODVM_DEVICE_OPS(H, .init = pci_host_init, .reset = pci_host_reset));
#undef H
