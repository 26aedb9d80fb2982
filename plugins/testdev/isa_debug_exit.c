/* isa-debug-exit: a port a test kernel writes to end the VM with a status,
 * as QEMU's device of the same name does: a write of v makes modvm exit
 * with (v << 1) | 1, so a guest can never fake a plain 0 (power-off).
 * kvm-unit-tests write their result to port 0xf4 (iosize 4).
 */
#include <modvm/modvm.h>

struct debug_exit {
	struct modvm_dev dev;
	uint16_t port;  /* property "port" */
	uint8_t size;   /* property "size" */
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

	d->dev.host->log(d->dev.inst, MODVM_LOG_DEBUG,
		     "guest wrote 0x%llx: exit with status %d (%d seen by the shell)",
		     (unsigned long long)v, status, status & 0xff);
	d->dev.host->machine_exit(d->dev.inst, status);
}

static const struct modvm_io_ops debug_exit_ops = {
	debug_exit_read, debug_exit_write
};

static int debug_exit_init(void *dev)
{
	struct debug_exit *d = dev;
	const struct modvm_host *host = d->dev.host;

	if (d->port + d->size > 0x10000) {
		host->set_error(d->dev.inst, "ports 0x%x..0x%x run past 0xffff: lower port or size",
				(unsigned)d->port, (unsigned)(d->port + d->size - 1));
		return -1;
	}
	if (!host->pio_register(d->dev.inst, d->port, d->size, &debug_exit_ops, d))
		return -1;
	return 0;
}

#define D struct debug_exit
MODVM_DEVICE_DEFINE(.name = "isa-debug-exit", .version = "1.0.0",
	.description = "Test exit port: a write of v ends modvm with status (v << 1) | 1",
	.props = MODVM_PROPS(
		MODVM_PROP_INT(D, port, "port", "0xf4", 0, 0xffff,
			       "first I/O port (QEMU's iobase; kvm-unit-tests use 0xf4)"),
		MODVM_PROP_INT(D, size, "size", "4", 1, 16,
			       "number of ports claimed (QEMU's iosize; kvm-unit-tests use 4)")),
	.ops = MODVM_DEVICE_OPS(D, .init = debug_exit_init));
#undef D
