/* The DSDT's definition block: the PCI host bridge (so an ACPI OS finds
 * PCI at all, with its windows and INTx routing) and the _S5 sleep object
 * that lets the guest power off. Built with the AML emitter in aml.c.
 */
#include <modvm/pc.h>

#include "aml.h"
#include "boot_priv.h"

#define PCI_SLOTS 32
#define PCI_PINS 4

/* Resource descriptors, ACPI 6.x 6.4 ("Resource Data Types"). */
#define RES_IO_PORT 0x47      /* small item: I/O port descriptor, 7 bytes */
#define RES_END_TAG 0x79      /* small item: end tag, 1 byte */
#define RES_DWORD_ADDR 0x87   /* large item: DWord address space */
#define RES_WORD_ADDR 0x88    /* large item: Word address space */
#define RES_SPACE_MEM 0
#define RES_SPACE_IO 1
#define RES_SPACE_BUS 2
/* General flags: min and max fixed; bit 0 clear = the bridge produces the
 * range for its children (6.4.3.5.1, table "Address Space Descriptor"). */
#define RES_FLAGS_WINDOW 0x0C
#define RES_IO_RNG_ENTIRE 0x03 /* I/O window: ISA and non-ISA ranges */
#define RES_MEM_RW_UC 0x01     /* memory window: read/write, non-cacheable */

struct res {
	uint8_t buf[128];
	size_t len;
};

static uint8_t *res_put(struct res *r, size_t n)
{
	uint8_t *p = r->buf + r->len;

	r->len += n;
	return p;
}

static void res_word_window(struct res *r, uint8_t space, uint8_t tflags,
			    uint16_t min, uint16_t max)
{
	uint8_t *p = res_put(r, 16);

	p[0] = RES_WORD_ADDR;
	put_le16(p + 1, 13);
	p[3] = space;
	p[4] = RES_FLAGS_WINDOW;
	p[5] = tflags;
	put_le16(p + 6, 0);                          /* granularity */
	put_le16(p + 8, min);
	put_le16(p + 10, max);
	put_le16(p + 12, 0);                         /* translation */
	put_le16(p + 14, (uint16_t)(max - min + 1)); /* length */
}

static void res_dword_mem_window(struct res *r, uint32_t min, uint32_t max)
{
	uint8_t *p = res_put(r, 26);

	p[0] = RES_DWORD_ADDR;
	put_le16(p + 1, 23);
	p[3] = RES_SPACE_MEM;
	p[4] = RES_FLAGS_WINDOW;
	p[5] = RES_MEM_RW_UC;
	put_le32(p + 6, 0);
	put_le32(p + 10, min);
	put_le32(p + 14, max);
	put_le32(p + 18, 0);
	put_le32(p + 22, max - min + 1);
}

static void res_io_port(struct res *r, uint16_t base, uint8_t len)
{
	uint8_t *p = res_put(r, 8);

	p[0] = RES_IO_PORT;
	p[1] = 0x01; /* decodes 16 address bits */
	put_le16(p + 2, base);
	put_le16(p + 4, base);
	p[6] = 1;    /* alignment */
	p[7] = len;
}

/* Host bridge _CRS: bus 0-255, the config ports it decodes itself, the I/O
 * space around them, the VGA window and the 32-bit PCI MMIO window. */
static void pci_crs(struct aml *a)
{
	struct res r = { .len = 0 };
	uint8_t *end;

	res_word_window(&r, RES_SPACE_BUS, 0, 0x00, 0xFF);
	res_io_port(&r, MODVM_PC_PORT_PCI_ADDR, 8);
	res_word_window(&r, RES_SPACE_IO, RES_IO_RNG_ENTIRE, 0x0000,
			MODVM_PC_PORT_PCI_ADDR - 1);
	res_word_window(&r, RES_SPACE_IO, RES_IO_RNG_ENTIRE,
			MODVM_PC_PORT_PCI_ADDR + 8, 0xFFFF);
	res_dword_mem_window(&r, 0xA0000, 0xBFFFF);
	res_dword_mem_window(&r, (uint32_t)MODVM_PC_PCI_MMIO_BASE,
			     (uint32_t)MODVM_PC_PCI_MMIO_END);
	end = res_put(&r, 2);
	end[0] = RES_END_TAG;
	end[1] = 0; /* checksum 0: "treat as correct" */

	aml_name(a, "_CRS");
	aml_buffer(a, r.buf, r.len);
}

/* _PRT in GSI form (ACPI 6 6.2.13): Source 0, SourceIndex = GSI, for every
 * slot (address 0xSSSSFFFF = any function) and pin. */
static void pci_prt(struct aml *a)
{
	size_t prt, entry;
	unsigned slot, pin;

	aml_name(a, "_PRT");
	prt = aml_package_begin(a, PCI_SLOTS * PCI_PINS);
	for (slot = 0; slot < PCI_SLOTS; slot++) {
		for (pin = 0; pin < PCI_PINS; pin++) {
			entry = aml_package_begin(a, 4);
			aml_dword(a, slot << 16 | 0xFFFF);
			aml_integer(a, pin);
			aml_integer(a, 0);
			aml_integer(a, BOOT_PCI_INTX_GSI(slot, pin));
			aml_end(a, entry);
		}
	}
	aml_end(a, prt);
}

static void pci_host_bridge(struct aml *a)
{
	size_t scope, dev;

	scope = aml_scope_begin(a, "\\_SB_");
	dev = aml_device_begin(a, "PCI0");
	aml_name(a, "_HID");
	aml_dword(a, aml_eisaid("PNP0A03"));
	aml_name(a, "_UID");
	aml_integer(a, 0);
	aml_name(a, "_BBN");
	aml_integer(a, 0);
	pci_crs(a);
	pci_prt(a);
	aml_end(a, dev);
	aml_end(a, scope);
}

/* \_S5: SLP_TYPa, SLP_TYPb and two reserved values (ACPI 6 7.4.2). The
 * guest writes SLP_TYPa with SLP_EN to PM1a_CNT to power off. */
static void sleep_s5(struct aml *a)
{
	size_t pkg;

	aml_name(a, "\\_S5_");
	pkg = aml_package_begin(a, 4);
	aml_integer(a, MODVM_PC_SLP_TYP_S5);
	aml_integer(a, MODVM_PC_SLP_TYP_S5);
	aml_integer(a, 0);
	aml_integer(a, 0);
	aml_end(a, pkg);
}

size_t boot_dsdt_build(uint8_t *buf, size_t cap)
{
	struct aml a;

	aml_init(&a, buf, cap);
	pci_host_bridge(&a);
	sleep_s5(&a);
	return a.overflow ? 0 : a.len;
}
