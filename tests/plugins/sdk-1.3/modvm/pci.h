/* modvm SDK: PCI functions. A device plugin describes itself with a
 * struct modvm_pci_info and calls host->pci_register(); the core then owns its
 * configuration space (IDs, command/status, BARs, capability list, MSI and
 * MSI-X, interrupt line/pin), maps its BARs where the guest programs them and
 * routes its INTx, MSI and DMA. See docs/sdk-pci.md.
 */
#ifndef MODVM_PCI_H
#define MODVM_PCI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <modvm/host.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MODVM_PCI_SLOTS        32    /* devices on bus 0; function 0 only */
#define MODVM_PCI_SLOT_ANY     (-1)  /* any free slot from 1 up */
#define MODVM_PCI_BARS         6
#define MODVM_PCI_CONFIG_SIZE  256   /* conventional config space */
#define MODVM_PCI_MSI_MAX      32    /* MSI vectors (PCI 3.0 6.8.1.3) */
#define MODVM_PCI_MSIX_MAX     2048  /* MSI-X table entries (6.8.2.3) */
#define MODVM_PCI_CAPS_MAX     16    /* extra capabilities one function adds */

/* Bus/device/function as mechanism #1 addresses them, and how modvm's
 * platform wires INTx: slot S, pin P (1 = INTA) reaches IOAPIC input
 * 16 + (S + P - 1) mod 8. The DSDT's _PRT describes the same routing. */
#define MODVM_PCI_BDF(bus, dev, fn) \
	((uint16_t)(((bus) << 8) | ((dev) << 3) | (fn)))
#define MODVM_PCI_INTX_GSI(slot, pin) \
	(16u + (((unsigned)(slot) + (unsigned)(pin) - 1u) & 7u))

/* Type 0 configuration header (PCI Local Bus Specification 3.0, 6.1). */
#define MODVM_PCI_VENDOR_ID        0x00
#define MODVM_PCI_DEVICE_ID        0x02
#define MODVM_PCI_COMMAND          0x04
#define  MODVM_PCI_COMMAND_IO       0x0001 /* I/O space decode */
#define  MODVM_PCI_COMMAND_MEMORY   0x0002 /* memory space decode */
#define  MODVM_PCI_COMMAND_MASTER   0x0004 /* bus master: DMA and MSI */
#define  MODVM_PCI_COMMAND_PARITY   0x0040
#define  MODVM_PCI_COMMAND_SERR     0x0100
#define  MODVM_PCI_COMMAND_INTX_DISABLE 0x0400
#define MODVM_PCI_STATUS           0x06
#define  MODVM_PCI_STATUS_INTERRUPT 0x0008 /* INTx asserted by the function */
#define  MODVM_PCI_STATUS_CAP_LIST  0x0010
#define MODVM_PCI_REVISION_ID      0x08
#define MODVM_PCI_CLASS_PROG       0x09
#define MODVM_PCI_CLASS_DEVICE     0x0A   /* subclass, then class at 0x0B */
#define MODVM_PCI_CACHE_LINE_SIZE  0x0C
#define MODVM_PCI_LATENCY_TIMER    0x0D
#define MODVM_PCI_HEADER_TYPE      0x0E
#define MODVM_PCI_BAR0             0x10   /* BARn at 0x10 + 4n */
#define  MODVM_PCI_BAR_SPACE_IO     0x01
#define  MODVM_PCI_BAR_MEM_TYPE_64  0x04
#define  MODVM_PCI_BAR_MEM_PREFETCH 0x08
#define MODVM_PCI_SUBSYSTEM_VENDOR_ID 0x2C
#define MODVM_PCI_SUBSYSTEM_ID     0x2E
#define MODVM_PCI_ROM_ADDRESS      0x30
#define MODVM_PCI_CAPABILITY_LIST  0x34
#define MODVM_PCI_INTERRUPT_LINE   0x3C
#define MODVM_PCI_INTERRUPT_PIN    0x3D

/* Capability IDs (PCI Code and ID Assignment Specification). */
#define MODVM_PCI_CAP_ID_MSI       0x05
#define MODVM_PCI_CAP_ID_VNDR      0x09   /* vendor specific, e.g. virtio */
#define MODVM_PCI_CAP_ID_MSIX      0x11

/* MSI capability registers, from the capability's offset (6.8.1). */
#define MODVM_PCI_MSI_FLAGS        0x02
#define  MODVM_PCI_MSI_FLAGS_ENABLE 0x0001
#define  MODVM_PCI_MSI_FLAGS_QMASK  0x000E /* multiple message capable */
#define  MODVM_PCI_MSI_FLAGS_QSIZE  0x0070 /* multiple message enable */
#define  MODVM_PCI_MSI_FLAGS_64BIT  0x0080
#define  MODVM_PCI_MSI_FLAGS_MASKBIT 0x0100 /* per-vector masking */
#define MODVM_PCI_MSI_ADDRESS_LO   0x04
#define MODVM_PCI_MSI_ADDRESS_HI   0x08   /* 64-bit capable only */
#define MODVM_PCI_MSI_DATA_32      0x08
#define MODVM_PCI_MSI_DATA_64      0x0C
#define MODVM_PCI_MSI_MASK_32      0x0C
#define MODVM_PCI_MSI_MASK_64      0x10
#define MODVM_PCI_MSI_PENDING_32   0x10
#define MODVM_PCI_MSI_PENDING_64   0x14

/* MSI-X capability registers and table layout (6.8.2). */
#define MODVM_PCI_MSIX_FLAGS       0x02
#define  MODVM_PCI_MSIX_FLAGS_QSIZE 0x07FF /* table size - 1 */
#define  MODVM_PCI_MSIX_FLAGS_MASKALL 0x4000
#define  MODVM_PCI_MSIX_FLAGS_ENABLE 0x8000
#define MODVM_PCI_MSIX_TABLE       0x04   /* offset | BIR */
#define MODVM_PCI_MSIX_PBA         0x08   /* offset | BIR */
#define  MODVM_PCI_MSIX_BIR_MASK    0x7
#define MODVM_PCI_MSIX_ENTRY_SIZE  16
#define MODVM_PCI_MSIX_ENTRY_LOWER_ADDR 0x0
#define MODVM_PCI_MSIX_ENTRY_UPPER_ADDR 0x4
#define MODVM_PCI_MSIX_ENTRY_DATA  0x8
#define MODVM_PCI_MSIX_ENTRY_VECTOR_CTRL 0xC
#define  MODVM_PCI_MSIX_ENTRY_CTRL_MASKBIT 0x1

/* A function registered with the core. */
typedef struct modvm_pci_dev modvm_pci_dev;

enum modvm_pci_bar_type {
	MODVM_PCI_BAR_NONE = 0,  /* unused (also the upper half of a 64-bit BAR) */
	MODVM_PCI_BAR_IO = 1,    /* I/O space, 4-256 bytes */
	MODVM_PCI_BAR_MEM32 = 2, /* 32-bit memory space, 16 bytes-2 GiB */
	MODVM_PCI_BAR_MEM64 = 3, /* 64-bit memory space: takes BARn and n+1 */
};

enum modvm_pci_pin {
	MODVM_PCI_PIN_NONE = 0,
	MODVM_PCI_PIN_INTA = 1,
	MODVM_PCI_PIN_INTB = 2,
	MODVM_PCI_PIN_INTC = 3,
	MODVM_PCI_PIN_INTD = 4,
};

/* One base address register. The core calls ops with offsets relative to
 * the BAR, only while the guest has decode enabled and the BAR placed. */
struct modvm_pci_bar {
	uint64_t size;       /* power of two; 0 with type NONE */
	uint32_t type;       /* enum modvm_pci_bar_type */
	bool prefetchable;   /* memory BARs only */
	/* May be NULL for a BAR that only holds the MSI-X table/PBA: other
	 * reads then give 0 and writes are dropped. */
	const struct modvm_io_ops *ops;
	void *opaque;
};

/* MSI capability (PCI 3.0 6.8.1). vectors = 0: none. */
struct modvm_pci_msi {
	uint32_t vectors;      /* 1, 2, 4, 8, 16 or 32 */
	bool addr64;           /* 64-bit message address */
	bool per_vector_mask;  /* mask and pending bits */
};

/* MSI-X capability (6.8.2). The table and PBA live in memory BARs of this
 * function; the core answers accesses to them and passes the rest of the
 * BAR to the BAR's ops. vectors = 0: none. */
struct modvm_pci_msix {
	uint32_t vectors;      /* table size, 1-2048 */
	uint32_t table_bar;    /* BAR index (0-5) */
	uint32_t table_offset; /* 8-byte aligned, within the BAR */
	uint32_t pba_bar;
	uint32_t pba_offset;   /* 8-byte aligned, not overlapping the table */
};

/* An extra capability the core chains into the list, such as virtio's
 * vendor-specific ones. The core writes the ID and next pointer; data is
 * everything after them (virtio: cap_len, cfg_type, bar, ...). */
struct modvm_pci_cap {
	uint8_t id;            /* not MSI (0x05) or MSI-X (0x11) */
	uint8_t len;           /* bytes in data, at most 190 */
	const uint8_t *data;   /* copied at registration */
};

/*
 * What a plugin gives the core to become a PCI function (type 0 header,
 * single function). Size-prefixed: set size = sizeof(struct modvm_pci_info)
 * and zero what you do not use (designated initialisers do).
 *
 * Config space bytes 0x40-0xFF outside the capabilities the core manages
 * (MSI, MSI-X, and the ID/next bytes of every capability) belong to the
 * device: the bodies of its extra capabilities and free space. Reads of
 * them return the registered bytes (0 in free space), passed through
 * config_read if set; writes go to config_write if set, else are dropped.
 * Both hooks get absolute offsets and size 1, 2 or 4, never crossing a
 * core-managed byte; use host->pci_cap_offset() to find a capability.
 */
struct modvm_pci_info {
	uint32_t size;
	uint16_t vendor_id, device_id;
	uint16_t subsystem_vendor_id, subsystem_id;
	uint8_t class_code, subclass, prog_if, revision;
	uint8_t interrupt_pin;   /* enum modvm_pci_pin */
	int32_t slot;            /* 0-31, or MODVM_PCI_SLOT_ANY */
	struct modvm_pci_bar bars[MODVM_PCI_BARS];
	struct modvm_pci_msi msi;
	struct modvm_pci_msix msix;
	const struct modvm_pci_cap *caps; /* ncaps entries, chained in order */
	uint32_t ncaps;
	uint32_t (*config_read)(void *opaque, unsigned offset, unsigned size,
				uint32_t stored);
	void (*config_write)(void *opaque, unsigned offset, uint32_t value,
			     unsigned size);
	void *config_opaque;
};

/*
 * One function's configuration as the core saves it, for host-bridge
 * plugins that carry the bus in their state (pci_state_save/_load).
 * vendor_id 0xFFFF marks an empty slot. msix holds the MSI-X table
 * (16 bytes an entry) and then the PBA (8 bytes per 64 entries).
 */
#define MODVM_PCI_MSIX_STATE_MAX \
	(MODVM_PCI_MSIX_MAX * MODVM_PCI_MSIX_ENTRY_SIZE + MODVM_PCI_MSIX_MAX / 8)
struct modvm_pci_func_state {
	uint16_t vendor_id, device_id;
	uint8_t intx;            /* level the device drives on its pin */
	uint8_t config[MODVM_PCI_CONFIG_SIZE];
	uint32_t msix_len;
	uint8_t msix[MODVM_PCI_MSIX_STATE_MAX];
};

#ifdef __cplusplus
}
#endif

#endif
