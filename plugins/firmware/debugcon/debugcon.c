/* debugcon: QEMU's ISA debug console, a port (0x402, where SeaBIOS writes
 * its log; 0xE9 for Bochs) whose written bytes go to a character backend.
 * A read returns 0xE9, which is how SeaBIOS and OVMF detect it.
 */
#include <modvm/modvm.h>

#define DEBUGCON_READBACK 0xE9

struct debugcon {
	struct modvm_dev dev;
	uint16_t port;          /* property "port" */
	modvm_chardev *out;
	uint64_t bytes;         /* written by the guest: kept in snapshots */
};

static uint64_t debugcon_read(void *opaque, uint64_t off, unsigned size)
{
	(void)opaque;
	(void)off;
	return size == 1 ? DEBUGCON_READBACK : ~0ull;
}

static void debugcon_write(void *opaque, uint64_t off, uint64_t v,
			   unsigned size)
{
	struct debugcon *d = opaque;
	uint8_t c = (uint8_t)v;

	(void)off;
	if (size != 1)
		return;
	d->dev.host->chardev_write(d->out, &c, 1);
	d->bytes++;
}

static const struct modvm_io_ops debugcon_ops = { debugcon_read, debugcon_write };

static int debugcon_init(void *dev)
{
	struct debugcon *d = dev;
	const struct modvm_host *h = d->dev.host;

	if (!h->pio_register(d->dev.inst, d->port, 1, &debugcon_ops, d))
		return -1;
	d->out = h->chardev_open(d->dev.inst, "backend", NULL, NULL);
	return d->out ? 0 : -1;
}

#define D struct debugcon
MODVM_STATE_SECTION(debugcon_state, "debugcon", 1, 1, MODVM_F_U64(D, bytes));

MODVM_DEVICE_DEFINE(.name = "debugcon", .version = "1.0.0",
	.description = "ISA debug console: bytes written to one port (0x402, SeaBIOS's log) go to a character backend",
	.props = MODVM_PROPS(
		MODVM_PROP_INT(D, port, "port", "0x402", 0, 0xffff,
			       "I/O port (0x402: SeaBIOS, OVMF; 0xe9: Bochs)"),
		MODVM_PROP_BACKEND_("backend", "null", MODVM_KIND_CHARDEV,
				    "where the bytes go (file, stdio, pty, socket, null)")),
	.state = MODVM_STATE(&debugcon_state),
	.ops = MODVM_DEVICE_OPS(D, .init = debugcon_init));
#undef D
