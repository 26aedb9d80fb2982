/* A chardev backend for core tests: keeps what it is given in memory,
 * with a property to exercise backend schemas. */
#include <stdlib.h>
#include <string.h>

#include <modvm/modvm.h>

struct sink {
	uint8_t buf[4096];
	size_t len;
};

static const struct modvm_prop_desc props[] = {
	MODVM_PROP_INT_("sink-limit", "4096", 1, 4096, "bytes kept"),
	MODVM_PROP_END
};

static void *sink_open(const struct modvm_host *host, modvm_inst *inst,
		       modvm_chardev *chr)
{
	return calloc(1, sizeof(struct sink));
}

static void sink_close(void *be)
{
	free(be);
}

static size_t sink_write(void *be, const uint8_t *buf, size_t len)
{
	struct sink *s = be;
	size_t n = len < sizeof(s->buf) - s->len ? len : sizeof(s->buf) - s->len;

	memcpy(s->buf + s->len, buf, n);
	s->len += n;
	return n;
}

static const struct modvm_chardev_ops ops = {
	.size = sizeof(ops), .open = sink_open, .close = sink_close,
	.write = sink_write,
};

MODVM_PLUGIN_DEFINE(.kind = MODVM_KIND_CHARDEV, .name = "chardev-testsink",
		    .version = "1.0.0", .description = "Chardev backend for core tests",
		    .props = props, .ops = &ops);
