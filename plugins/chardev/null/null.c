/* chardev-null: a backend that takes every byte and gives none, for
 * headless VMs and tests where a front end needs a backend but nobody
 * listens. */
#include <modvm/modvm.h>

/* The backend handle must be non-NULL; nothing is kept per instance. */
static char null_handle;

static void *null_open(const struct modvm_host *host, modvm_inst *inst,
		       modvm_chardev *chr)
{
	return &null_handle;
}

static void null_close(void *be)
{
}

static size_t null_write(void *be, const uint8_t *buf, size_t len)
{
	return len;
}

static const struct modvm_chardev_ops ops = {
	.size = sizeof(ops),
	.open = null_open,
	.close = null_close,
	.write = null_write,
};

MODVM_PLUGIN_DEFINE(.kind = MODVM_KIND_CHARDEV, .name = "chardev-null",
		    .version = "1.0.0",
		    .description = "Discards output and never has input",
		    .ops = &ops);
