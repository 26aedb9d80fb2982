/* isa-debug-exit: a port a test kernel writes to end the VM with a status,
 * as QEMU's device of the same name does: a write of v makes modvm exit
 * with (v << 1) | 1, so a guest can never fake a plain 0 (power-off).
 * kvm-unit-tests write their result to port 0xf4 (iosize 4).
 */
#include <stdlib.h>

#include <modvm/modvm.h>

struct debug_exit {
	const struct modvm_host *host;
	modvm_inst *inst;
};

static uint64_t debug_exit_read(void *opaque, uint64_t off, unsigned size)
{
	return 0;
}

/* Any size at any offset of the range: the value as written (the core
 * masks it to the access size). */
static void debug_exit_write(void *opaque, uint64_t off, uint64_t v,
			     unsigned size)
{
	struct debug_exit *d = opaque;
	int status = (int)(((uint32_t)v << 1) | 1);

	d->host->log(d->inst, MODVM_LOG_DEBUG,
		     "guest wrote 0x%llx: exit with status %d (%d seen by the shell)",
		     (unsigned long long)v, status, status & 0xff);
	d->host->machine_exit(d->inst, status);
}

static const struct modvm_io_ops debug_exit_ops = {
	debug_exit_read, debug_exit_write
};

static void *debug_exit_create(const struct modvm_host *host, modvm_inst *inst)
{
	int64_t port = host->prop_int(inst, "port");
	int64_t size = host->prop_int(inst, "size");
	struct debug_exit *d;

	if (port + size > 0x10000) {
		host->set_error(inst, "ports 0x%llx..0x%llx run past 0xffff: lower port or size",
				(unsigned long long)port,
				(unsigned long long)(port + size - 1));
		return NULL;
	}
	d = calloc(1, sizeof(*d));
	if (!d) {
		host->set_error(inst, "out of memory");
		return NULL;
	}
	d->host = host;
	d->inst = inst;
	if (!host->pio_register(inst, (uint16_t)port, (uint32_t)size,
				&debug_exit_ops, d)) {
		free(d);
		return NULL;
	}
	return d;
}

static void debug_exit_destroy(void *dev)
{
	free(dev);
}

static const struct modvm_prop_desc debug_exit_props[] = {
	MODVM_PROP_INT_("port", "0xf4", 0, 0xffff,
			"first I/O port (QEMU's iobase; kvm-unit-tests use 0xf4)"),
	MODVM_PROP_INT_("size", "4", 1, 16,
			"number of ports claimed (QEMU's iosize; kvm-unit-tests use 4)"),
	MODVM_PROP_END
};

static const struct modvm_device_ops debug_exit_dev_ops = {
	.size = sizeof(debug_exit_dev_ops),
	.create = debug_exit_create,
	.destroy = debug_exit_destroy,
};

MODVM_PLUGIN_DEFINE(.kind = MODVM_KIND_DEVICE, .name = "isa-debug-exit",
		    .version = "1.0.0",
		    .description = "Test exit port: a write of v ends modvm with status (v << 1) | 1",
		    .props = debug_exit_props, .state = NULL,
		    .ops = &debug_exit_dev_ops);
