/* The PCI bus in the core: the functions device plugins register, their
 * config space, BAR mappings, INTx/MSI/MSI-X delivery and DMA checks.
 * Plugins reach it only through the pci_* host services. */
#ifndef MODVM_CORE_PCI_H
#define MODVM_CORE_PCI_H

#include <modvm/host.h>

struct machine;
struct pci_bus;

/* Fill the pci_* entries of the host-services table. */
void pci_host_services(struct modvm_host *h);
/* Forget every function an instance registered, with its BAR regions and
 * INTx contribution (instance destroyed, or its create failed). */
void pci_release_inst(struct machine *m, modvm_inst *inst);
/* Free the bus (after every instance was released). */
void pci_bus_destroy(struct machine *m);

#endif
