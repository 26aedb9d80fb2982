/* example-debugcon: the modvm SDK's example device plugin, built out of tree
 * with `pkg-config --cflags modvm-sdk`. A debug console port (as Bochs and
 * QEMU offer at 0xE9): each byte the guest writes goes to a chardev backend;
 * reading the port returns 0xE9 so a guest can detect the device. */
#include <modvm/modvm.h>

struct debugcon {
	struct modvm_dev dev;  /* host and inst, filled by the core */
	uint16_t port;         /* property "port" */
	modvm_chardev *out;
	uint64_t bytes;        /* bytes written by the guest: saved in snapshots */
};

static uint64_t port_read(void *opaque, uint64_t offset, unsigned size)
{
	return 0xe9;
}

static void port_write(void *opaque, uint64_t offset, uint64_t value,
		       unsigned size)
{
	struct debugcon *d = opaque;
	uint8_t byte = (uint8_t)value;

	d->bytes++;
	d->dev.host->chardev_write(d->out, &byte, 1);
}

static const struct modvm_io_ops port_ops = { port_read, port_write };

/* The core allocated d and stored the properties; claim the port and open
 * the backend (output only: NULL front end). On failure the core has set
 * an error naming the conflict, and releases what was registered. */
static int debugcon_init(void *dev)
{
	struct debugcon *d = dev;
	const struct modvm_host *host = d->dev.host;

	if (!host->pio_register(d->dev.inst, d->port, 1, &port_ops, d))
		return -1;
	d->out = host->chardev_open(d->dev.inst, "backend", NULL, NULL);
	return d->out ? 0 : -1;
}

static void debugcon_reset(void *dev)
{
	((struct debugcon *)dev)->bytes = 0;
}

/* State: saved, loaded, checked and rendered by the core. */
MODVM_STATE_SECTION(debugcon_state, "debugcon", 1, 1,
		    MODVM_F_U64(struct debugcon, bytes));

MODVM_DEVICE_DEFINE(
	.name = "example-debugcon",
	.version = "2.0.0",
	.description = "Debug console port (SDK example)",
	.props = MODVM_PROPS(
		MODVM_PROP_INT(struct debugcon, port, "port", "0xe9", 0, 0xffff,
			       "I/O port of the console"),
		MODVM_PROP_BACKEND_("backend", "stdio", MODVM_KIND_CHARDEV,
				    "where the bytes go (stdio, file, pty, socket, null)")),
	.state = MODVM_STATE(&debugcon_state),
	.ops = MODVM_DEVICE_OPS(struct debugcon, .init = debugcon_init,
				.reset = debugcon_reset));
