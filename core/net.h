/* The net layer of the core (core/net.c): a NIC's network backend, the
 * frames and flow-control signals between them. Per machine. */
#ifndef MODVM_CORE_NET_H
#define MODVM_CORE_NET_H

#include <modvm/host.h>

struct machine;

/* Fill the net_* entries of the host-services table. */
void net_host_services(struct modvm_host *h);
/* Close the net backends an instance still holds (after its destroy, or
 * a failed init). */
void net_release_inst(struct machine *m, modvm_inst *inst);

#endif
