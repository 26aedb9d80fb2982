/* net-null: a cable to nowhere. Frames the guest sends are taken and
 * forgotten, nothing is ever received; the link is up. For tests and for
 * a NIC that must exist but not reach anything. */
#include <stdlib.h>

#include <modvm/modvm.h>
#include <modvm/net.h>

static void *null_open(const struct modvm_host *host, modvm_inst *inst,
		       modvm_net *net)
{
	static char token;

	(void)host;
	(void)inst;
	(void)net;
	return &token;
}

static void null_close(void *be)
{
	(void)be;
}

static int null_send(void *be, unsigned queue, const struct modvm_net_hdr *hdr,
		     const struct iovec *iov, int iovcnt)
{
	(void)be;
	(void)queue;
	(void)hdr;
	(void)iov;
	(void)iovcnt;
	return MODVM_NET_SENT;
}

static const struct modvm_net_ops ops = {
	.size = sizeof(ops),
	.open = null_open,
	.close = null_close,
	.send = null_send,
};

MODVM_PLUGIN_DEFINE(.kind = MODVM_KIND_NET, .name = "net-null",
		    .version = "1.0.0",
		    .description = "Network backend that drops every frame",
		    .ops = &ops);
