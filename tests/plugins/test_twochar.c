/* A device with two chardev backends, "out" and "log" (tests of backend
 * property scoping): a byte written to its port goes to "out", and the
 * line "log: XX\n" to "log". */
#include <stdio.h>

#include <modvm/modvm.h>

struct twochar {
	struct modvm_dev dev;
	uint16_t port;
	modvm_chardev *out, *log;
};

static uint64_t tc_read(void *opaque, uint64_t off, unsigned size)
{
	return 0;
}

static void tc_write(void *opaque, uint64_t off, uint64_t v, unsigned size)
{
	struct twochar *t = opaque;
	uint8_t b = (uint8_t)v;
	char line[16];
	int n = snprintf(line, sizeof(line), "log: %02x\n", b);

	t->dev.host->chardev_write(t->out, &b, 1);
	t->dev.host->chardev_write(t->log, line, (size_t)n);
}

static const struct modvm_io_ops tc_ops = { tc_read, tc_write };

static int tc_init(void *dev)
{
	struct twochar *t = dev;
	const struct modvm_host *h = t->dev.host;

	if (!h->pio_register(t->dev.inst, t->port, 1, &tc_ops, t))
		return -1;
	t->out = h->chardev_open(t->dev.inst, "out", NULL, NULL);
	t->log = h->chardev_open(t->dev.inst, "log", NULL, NULL);
	return t->out && t->log ? 0 : -1;
}

MODVM_DEVICE_DEFINE(.name = "test-twochar", .version = "1.0.0",
	.description = "Test device with two chardev backends",
	.props = MODVM_PROPS(
		MODVM_PROP_INT(struct twochar, port, "port", "0x530", 0, 0xffff, "I/O port"),
		MODVM_PROP_BACKEND_("out", "null", MODVM_KIND_CHARDEV, "the bytes"),
		MODVM_PROP_BACKEND_("log", "null", MODVM_KIND_CHARDEV, "a line per byte")),
	.ops = MODVM_DEVICE_OPS(struct twochar, .init = tc_init));
