/* modvm SDK: the PC platform modvm builds, as constants shared by the core's
 * firmware tables and the chipset plugins. A device plugin that implements
 * one of these functions uses these addresses so the tables describe it.
 */
#ifndef MODVM_PC_H
#define MODVM_PC_H

/* Memory map */
#define MODVM_PC_PCI_HOLE      0xC0000000ull /* 3 GiB: start of 32-bit MMIO */
#define MODVM_PC_PCI_MMIO_BASE 0xC0000000ull /* BARs are placed from here */
#define MODVM_PC_PCI_MMIO_END  0xFEBFFFFFull
#define MODVM_PC_IOAPIC_BASE   0xFEC00000ull
#define MODVM_PC_HPET_BASE     0xFED00000ull
#define MODVM_PC_LAPIC_BASE    0xFEE00000ull
#define MODVM_PC_MSI_BASE      0xFEE00000ull /* MSI address window, 1 MiB */
#define MODVM_PC_BIOS_BASE     0x000F0000ull

/* Fixed I/O ports */
#define MODVM_PC_PORT_PIC1     0x20
#define MODVM_PC_PORT_PIC2     0xA0
#define MODVM_PC_PORT_ELCR     0x4D0         /* two bytes */
#define MODVM_PC_PORT_PIT      0x40
#define MODVM_PC_PORT_KBC_DATA 0x60
#define MODVM_PC_PORT_SYSCTL_B 0x61          /* PIT ch2 gate, speaker */
#define MODVM_PC_PORT_KBC_CMD  0x64
#define MODVM_PC_PORT_RTC      0x70
#define MODVM_PC_PORT_SYSCTL_A 0x92          /* fast A20, fast reset */
#define MODVM_PC_PORT_PCI_ADDR 0xCF8
#define MODVM_PC_PORT_PCI_DATA 0xCFC
#define MODVM_PC_PORT_RESET    0xCF9
#define MODVM_PC_PORT_COM1     0x3F8
#define MODVM_PC_PORT_COM2     0x2F8
#define MODVM_PC_PORT_COM3     0x3E8
#define MODVM_PC_PORT_COM4     0x2E8
#define MODVM_PC_PORT_LPT1     0x378

/* ACPI fixed hardware (PM1a event/control blocks, PM timer), see the FADT */
#define MODVM_PC_PM_BASE       0x600
#define MODVM_PC_PM1A_EVT      (MODVM_PC_PM_BASE + 0x0) /* 4 bytes */
#define MODVM_PC_PM1A_CNT      (MODVM_PC_PM_BASE + 0x4) /* 2 bytes */
#define MODVM_PC_PM_TMR        (MODVM_PC_PM_BASE + 0x8) /* 4 bytes */
#define MODVM_PC_PM_LEN        0x10
#define MODVM_PC_SCI_IRQ       9
#define MODVM_PC_SLP_TYP_S5    0 /* value the DSDT's _S5 package gives */

/* Interrupt lines (ISA IRQ numbers; PCI INTx use 16-23 on the IOAPIC) */
#define MODVM_PC_IRQ_PIT       0
#define MODVM_PC_IRQ_KBD       1
#define MODVM_PC_IRQ_CASCADE   2
#define MODVM_PC_IRQ_COM2      3
#define MODVM_PC_IRQ_COM1      4
#define MODVM_PC_IRQ_LPT1      7
#define MODVM_PC_IRQ_RTC       8
#define MODVM_PC_IRQ_PCI_FIRST 16
#define MODVM_PC_IOAPIC_PINS   24

#endif
