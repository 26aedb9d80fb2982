/* A device for core tests: one property of every type, a scratch register
 * at a configurable port, and a state section using every field kind. */
#include <stdlib.h>
#include <string.h>

#include <modvm/modvm.h>

struct test_dev {
	const struct modvm_host *host;
	modvm_inst *inst;
	uint8_t reg8;
	uint16_t reg16;
	uint32_t reg32;
	uint64_t reg64;
	int32_t neg;
	bool flag;
	uint8_t blob[8];
	uint32_t vlen;
	uint8_t vbuf[16];
	struct { uint16_t a; uint32_t b; } pairs[2];
	uint32_t loads;
	modvm_chardev *chr;
};

static const char *const modes[] = { "fast", "slow", "off", NULL };

static const struct modvm_prop_desc props[] = {
	MODVM_PROP_INT_("port", "0x510", 0, 0xffff, "I/O port of the scratch register"),
	MODVM_PROP_BOOL_("verbose", "false", "log every access"),
	MODVM_PROP_SIZE_("buffer", "4K", 512, 1 << 20, "buffer size"),
	MODVM_PROP_STRING_("label", "none", "free text"),
	MODVM_PROP_ENUM_("mode", "fast", modes, "operating mode"),
	MODVM_PROP_BACKEND_("backend", "testsink", MODVM_KIND_CHARDEV, "where bytes go"),
	MODVM_PROP_INT_("fail", "0", 0, 1, "1: create fails (tests)"),
	MODVM_PROP_END
};

#define D struct test_dev
static const struct modvm_state_field pair_fields[] = {
	{ .name = "a", .type = MODVM_FIELD_U16, .offset = 0 },
	{ .name = "b", .type = MODVM_FIELD_U32, .offset = 4 },
};
static const struct modvm_state_field fields[] = {
	MODVM_F_U8(D, reg8), MODVM_F_U16(D, reg16), MODVM_F_U32(D, reg32),
	MODVM_F_U64(D, reg64), MODVM_F_I32(D, neg), MODVM_F_BOOL(D, flag),
	MODVM_F_BYTES(D, blob), MODVM_F_VBUF(D, vbuf, vlen),
	{ .name = "pairs", .type = MODVM_FIELD_STRUCT, .count = 2,
	  .offset = offsetof(D, pairs), .stride = sizeof(((D *)0)->pairs[0]),
	  .sub = pair_fields, .nsub = 2 },
};

static int post_load(void *opaque)
{
	struct test_dev *d = opaque;
	d->loads++;
	return 0;
}

static const struct modvm_state_section section = {
	.name = "regs", .version = 2, .min_version = 1,
	.fields = fields, .nfields = MODVM_COUNTOF(fields),
	.post_load = post_load,
};
static const struct modvm_state_section *const sections[] = { &section, NULL };

static uint64_t reg_read(void *opaque, uint64_t off, unsigned size)
{
	return ((struct test_dev *)opaque)->reg8;
}

static void reg_write(void *opaque, uint64_t off, uint64_t v, unsigned size)
{
	struct test_dev *d = opaque;
	uint8_t b = (uint8_t)v;

	d->reg8 = b;
	if (d->chr)
		d->host->chardev_write(d->chr, &b, 1);
}

static const struct modvm_io_ops reg_ops = { reg_read, reg_write };

static size_t can_rx(void *opaque)
{
	return 1;
}

static void rx(void *opaque, const uint8_t *buf, size_t len)
{
	((struct test_dev *)opaque)->reg8 = buf[len - 1];
}

static const struct modvm_chardev_frontend fe = { can_rx, rx, NULL };

static void *create(const struct modvm_host *host, modvm_inst *inst)
{
	struct test_dev *d;

	if (host->prop_int(inst, "fail")) {
		host->set_error(inst, "asked to fail by property fail=1");
		return NULL;
	}
	d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->host = host;
	d->inst = inst;
	if (!host->pio_register(inst, (uint16_t)host->prop_int(inst, "port"), 1,
				&reg_ops, d))
		goto fail;
	d->chr = host->chardev_open(inst, "backend", &fe, d);
	if (!d->chr)
		goto fail;
	return d;
fail:
	free(d);
	return NULL;
}

static void destroy(void *dev)
{
	free(dev);
}

static const struct modvm_device_ops ops = {
	.size = sizeof(ops), .create = create, .destroy = destroy,
};

MODVM_PLUGIN_DEFINE(.kind = MODVM_KIND_DEVICE, .name = "test-device",
		    .version = "1.0.0", .description = "Device for core tests",
		    .props = props, .state = sections, .ops = &ops);
