/* Fuzz target: vga-std (plugins/video/vga-std) driven as a hostile guest
 * would, through its VGA ports, the DISPI ports, BAR0 (VRAM) and BAR2,
 * with hostile saved state, and asked for its picture after every step as
 * a front end would. The plugin is compiled in and created through its
 * descriptor against a stub host table (vram = 1M, no font file). Every
 * surface it reports is read whole, so a picture that points outside the
 * adapter's memory shows under ASan. Input: a list of operations,
 *   0 p v        VGA port 0x3C0 + (p & 31) := v
 *   1 p          read VGA port 0x3C0 + (p & 31)
 *   2 i lo hi    DISPI register i := hi:lo (i unmasked)
 *   3 i          read DISPI register i
 *   4 a a a s v.. VRAM write at a (24 bits, may pass the end) of 1 << (s & 3) bytes
 *   5 a a s v..  BAR2 write at a & 0xFFF
 *   6            update (read the whole surface)
 *   7 f v..      state field f (of all sections) := bytes, then post_load;
 *                or, with f = 255, a platform reset
 * Text RAM (0xB8000) is a buffer the input fills too: operation 0 with
 * p >= 0x80 writes v to a text byte. */
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <modvm/modvm.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

extern const struct modvm_plugin_desc modvm_plugin_descriptor;

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static struct {
	const struct modvm_io_ops *ports, *dispi, *bar0, *bar2;
	void *opaque;
	const struct modvm_display_adapter *adapter;
	uint64_t vram;
	uint8_t text[0x8000];
	unsigned text_pos;
} stub;

static int dummy;

static void s_log(modvm_inst *i, enum modvm_log_level l, const char *fmt, ...) {}
static void s_set_error(modvm_inst *i, const char *fmt, ...) {}

static modvm_region *s_pio_register(modvm_inst *i, uint16_t port, uint32_t len,
				    const struct modvm_io_ops *ops, void *opaque)
{
	if (port == 0x3C0)
		stub.ports = ops;
	else
		stub.dispi = ops;
	stub.opaque = opaque;
	return (modvm_region *)&dummy;
}

static modvm_pci_dev *s_pci_register(modvm_inst *i, const struct modvm_pci_info *info)
{
	stub.bar0 = info->bars[0].ops;
	stub.bar2 = info->bars[2].ops;
	stub.vram = info->bars[0].size;
	return (modvm_pci_dev *)&dummy;
}

static modvm_timer *s_timer_new(modvm_inst *i, void (*cb)(void *), void *o)
{
	return (modvm_timer *)&dummy;
}
static void s_timer_mod(modvm_timer *t, uint64_t d) {}
static bool s_timer_pending(modvm_timer *t) { return false; }
static uint64_t s_clock_ns(modvm_inst *i) { return 0; }

static modvm_display *s_display_register(modvm_inst *i, const char *prop,
					 const struct modvm_display_adapter *a, void *o)
{
	stub.adapter = a;
	return (modvm_display *)&dummy;
}
static void s_display_invalidate(modvm_display *d) {}

static int s_mem_read(modvm_inst *i, uint64_t gpa, void *buf, size_t len)
{
	if (gpa < 0xB8000 || gpa - 0xB8000 > sizeof(stub.text) ||
	    len > sizeof(stub.text) - (gpa - 0xB8000))
		return -1;
	memcpy(buf, stub.text + (gpa - 0xB8000), len);
	return 0;
}

static const struct modvm_host host = {
	.size = sizeof(struct modvm_host),
	.abi_major = MODVM_ABI_MAJOR,
	.abi_minor = MODVM_ABI_MINOR,
	.log = s_log,
	.set_error = s_set_error,
	.mem_read = s_mem_read,
	.pio_register = s_pio_register,
	.pci_register = s_pci_register,
	.timer_new = s_timer_new,
	.timer_mod = s_timer_mod,
	.timer_pending = s_timer_pending,
	.clock_ns = s_clock_ns,
	.display_register = s_display_register,
	.display_invalidate = s_display_invalidate,
};

static void *create(const struct modvm_device_ops *ops)
{
	struct modvm_dev *dev = calloc(1, ops->instance_size);
	static const char *const no_font = "";
	uint64_t vram = 1 << 20;

	CHECK(dev);
	dev->host = &host;
	for (const struct modvm_prop_desc *p = modvm_plugin_descriptor.props; p->name; p++) {
		uint8_t *field = (uint8_t *)dev + p->offset;
		if (!strcmp(p->name, "vram"))
			memcpy(field, &vram, p->field_size);
		else if (!strcmp(p->name, "font"))
			memcpy(field, &no_font, sizeof(no_font));
	}
	CHECK(ops->init(dev) == 0);
	return dev;
}

static void update(void *dev)
{
	struct modvm_display_surface s;
	struct modvm_display_rect r = { 0, 0, 0, 0 };
	volatile uint8_t sum = 0;

	memset(&s, 0, sizeof(s));
	stub.adapter->update(dev, &s, &r);
	if (!s.width || !s.height)
		return;
	CHECK(s.format == MODVM_PIXEL_XRGB8888 && s.pixels);
	CHECK(s.stride >= s.width * 4u && s.width <= MODVM_DISPLAY_MAX_DIM &&
	      s.height <= MODVM_DISPLAY_MAX_DIM);
	CHECK(!r.w || (r.x + r.w <= s.width && r.y + r.h <= s.height));
	for (uint32_t y = 0; y < s.height; y++) {
		const uint8_t *row = s.pixels + (size_t)y * s.stride;
		sum ^= row[0];
		sum ^= row[(size_t)s.width * 4 - 1];
	}
	(void)sum;
}

/* The n-th field of all the plugin's state sections, and its section. */
static const struct modvm_state_field *nth_field(unsigned n,
						 const struct modvm_state_section **sec)
{
	unsigned total = 0;

	for (const struct modvm_state_section *const *s = modvm_plugin_descriptor.state; *s; s++)
		total += (*s)->nfields;
	n %= total;
	for (const struct modvm_state_section *const *s = modvm_plugin_descriptor.state; *s; s++) {
		if (n < (*s)->nfields) {
			*sec = *s;
			return &(*s)->fields[n];
		}
		n -= (*s)->nfields;
	}
	return NULL;
}

static size_t field_bytes(const struct modvm_state_field *f)
{
	static const size_t w[] = { 0, 1, 2, 4, 8, 4, 8, 1 };
	size_t n = f->count ? f->count : 1;

	if (f->type == MODVM_FIELD_BYTES)
		return f->count;
	if (f->type == MODVM_FIELD_VBUF)
		return 0;                      /* the loader checks the length */
	return f->type < 8 ? w[f->type] * n : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct modvm_device_ops *ops = modvm_plugin_descriptor.ops;
	size_t pos = 0;
	void *dev = create(ops);

	memset(stub.text, 0, sizeof(stub.text));
	while (pos < size) {
		uint8_t op = data[pos++] % 8;
		size_t left = size - pos;
		const uint8_t *a = data + pos;

		switch (op) {
		case 0:
			if (left < 2)
				goto out;
			if (a[0] & 0x80)
				stub.text[(stub.text_pos++ + a[0]) % sizeof(stub.text)] = a[1];
			else
				stub.ports->write(dev, a[0] & 31, a[1], 1);
			pos += 2;
			break;
		case 1:
			if (left < 1)
				goto out;
			(void)stub.ports->read(dev, a[0] & 31, 1);
			pos += 1;
			break;
		case 2:
			if (left < 3)
				goto out;
			stub.dispi->write(dev, 0, a[0], 2);
			stub.dispi->write(dev, 1, a[1] | a[2] << 8, 2);
			pos += 3;
			break;
		case 3:
			if (left < 1)
				goto out;
			stub.dispi->write(dev, 0, a[0], 2);
			(void)stub.dispi->read(dev, 2, 2);
			pos += 1;
			break;
		case 4: {
			if (left < 4)
				goto out;
			unsigned n = 1u << (a[3] & 3);
			uint64_t off = (uint64_t)(a[0] | a[1] << 8 | a[2] << 16) % (stub.vram + 16);
			uint64_t v = 0;
			memcpy(&v, a + 4, left - 4 < n ? left - 4 : n);
			stub.bar0->write(dev, off, v, n);
			(void)stub.bar0->read(dev, off, n);
			pos += 4 + (left - 4 < n ? left - 4 : n);
			break;
		}
		case 5: {
			if (left < 3)
				goto out;
			unsigned n = 1u << (a[2] & 3);
			uint64_t off = (uint64_t)(a[0] | a[1] << 8) & 0xFFF;
			uint64_t v = 0;
			memcpy(&v, a + 3, left - 3 < n ? left - 3 : n);
			if (off + n <= 0x1000) {
				stub.bar2->write(dev, off, v, n);
				(void)stub.bar2->read(dev, off, n);
			}
			pos += 3 + (left - 3 < n ? left - 3 : n);
			break;
		}
		case 6:
			update(dev);
			break;
		case 7: {
			if (left < 1)
				goto out;
			if (a[0] == 255) {
				ops->reset(dev);
				pos += 1;
				break;
			}
			const struct modvm_state_section *sec;
			const struct modvm_state_field *f = nth_field(a[0], &sec);
			size_t n = f->type == MODVM_FIELD_VBUF ? 4 : field_bytes(f);
			if (left - 1 < n)
				goto out;
			if (f->type == MODVM_FIELD_VBUF) {
				/* the loader refuses a length above the capacity */
				uint32_t len;
				memcpy(&len, a + 1, 4);
				len %= f->count + 1;
				memcpy((uint8_t *)dev + f->len_offset, &len, 4);
			} else if (f->type == MODVM_FIELD_BOOL) {
				*((bool *)((uint8_t *)dev + f->offset)) = a[1] & 1;
			} else {
				memcpy((uint8_t *)dev + f->offset, a + 1, n);
			}
			pos += 1 + n;
			/* a load that fails leaves the device usable */
			(void)sec->post_load(dev);
			break;
		}
		}
	}
out:
	update(dev);
	ops->destroy(dev);
	free(dev);
	memset(&stub, 0, sizeof(stub));
	return 0;
}
