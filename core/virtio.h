/* Virtio in the core: the virtio 1.x modern PCI transport that device
 * plugins reach through the virtio_* host services (core/virtio.c), over
 * the split virtqueues of core/virtq.c. */
#ifndef MODVM_CORE_VIRTIO_H
#define MODVM_CORE_VIRTIO_H

#include <stdbool.h>
#include <stdint.h>

#include <modvm/virtio.h>

#include "virtq.h"

struct machine;

/* Fill the virtio_* entries of the host-services table. */
void virtio_host_services(struct modvm_host *h);
/* Forget the virtio devices and block backends an instance still holds
 * (its destroy did not release them, or its create failed). */
void virtio_release_inst(struct machine *m, modvm_inst *inst);

#endif
