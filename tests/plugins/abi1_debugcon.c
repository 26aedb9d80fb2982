/* The SDK example as released against ABI 1.3, built with the 1.3 headers
 * in sdk-1.3/ (a copy of sdk/include at ABI 1.3): an old plugin the
 * registry must refuse, naming both ABI versions. */
#include <stdlib.h>

#include <modvm/modvm.h>

struct debugcon {
	const struct modvm_host *host;
	modvm_inst *inst;
	modvm_chardev *out;
	uint64_t bytes;   /* bytes written by the guest: saved in snapshots */
};

/* Properties: declared once, used by config validation, `modvm inspect` and
 * the host->prop_* calls below. */
static const struct modvm_prop_desc props[] = {
	MODVM_PROP_INT_("port", "0xe9", 0, 0xffff, "I/O port of the console"),
	MODVM_PROP_BACKEND_("backend", "stdio", MODVM_KIND_CHARDEV,
			    "where the bytes go (stdio, file, pty, socket, null)"),
	MODVM_PROP_END
};

/* State: one section with one field. The core saves, loads, checks and
 * renders it; the plugin writes no save/load code. */
static const struct modvm_state_field fields[] = {
	MODVM_F_U64(struct debugcon, bytes),
};
static const struct modvm_state_section section = {
	.name = "debugcon", .version = 1, .min_version = 1,
	.fields = fields, .nfields = MODVM_COUNTOF(fields),
};
static const struct modvm_state_section *const sections[] = { &section, NULL };

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
	d->host->chardev_write(d->out, &byte, 1);
}

static const struct modvm_io_ops port_ops = {
	.read = port_read,
	.write = port_write,
};

/* Input from the backend is not used: accept and drop it. */
static size_t can_receive(void *opaque)
{
	return 4096;
}

static void receive(void *opaque, const uint8_t *buf, size_t len)
{
}

static const struct modvm_chardev_frontend frontend = {
	.can_receive = can_receive,
	.receive = receive,
};

static void *debugcon_create(const struct modvm_host *host, modvm_inst *inst)
{
	struct debugcon *d = calloc(1, sizeof(*d));

	if (!d) {
		host->set_error(inst, "out of memory");
		return NULL;
	}
	d->host = host;
	d->inst = inst;
	/* On failure the core has set an error naming the conflict. */
	if (!host->pio_register(inst, (uint16_t)host->prop_int(inst, "port"), 1,
				&port_ops, d))
		goto fail;
	d->out = host->chardev_open(inst, "backend", &frontend, d);
	if (!d->out)
		goto fail;
	return d;
fail:
	free(d);
	return NULL;
}

static void debugcon_destroy(void *dev)
{
	struct debugcon *d = dev;

	d->host->chardev_close(d->out);
	free(d);
}

static void debugcon_reset(void *dev)
{
	((struct debugcon *)dev)->bytes = 0;
}

static const struct modvm_device_ops ops = {
	.size = sizeof(ops),
	.create = debugcon_create,
	.destroy = debugcon_destroy,
	.reset = debugcon_reset,
};

MODVM_PLUGIN_DEFINE(
	.kind = MODVM_KIND_DEVICE,
	.name = "example-debugcon",
	.version = "1.0.0",
	.description = "Debug console port (SDK example)",
	.props = props,
	.state = sections,
	.ops = &ops);
