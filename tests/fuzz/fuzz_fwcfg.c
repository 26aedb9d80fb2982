/* Fuzz target: the fw-cfg device (plugins/firmware/fw-cfg) driven through
 * its ports as a hostile guest would, plus hostile saved state. The plugin
 * is compiled into this program and created through its descriptor against
 * a stub host table, as the core would: instance_size zeroed bytes, the
 * struct modvm_dev header, the bound properties stored, then init. Input: byte 0 picks the RAM size, byte 1 the vCPU
 * count and whether etc/e820 exists; then operations:
 *   0 k k  select key k (16-bit write to the selector)
 *   1      read a data byte        2  read a byte of the selector port
 *   3 v    byte write (ignored)    4 w  read of width 1<<(w&3) at 0x510+(w>>2&1)
 *   5 k k o o o o  load key/offset as a snapshot would, then post_load
 *   6      platform reset          7 n  read n bytes (up to 255)
 *   0xF0-0xFF (DMA, when byte 1 bit 7 and byte 0 bit 7 are set: dma = true)
 *          g g c c c c l l l l a a a a a a a a: an FWCfgDmaAccess with
 *          control c, length l, address a (big-endian, as given) at guest
 *          address g (little-endian, in a 64 KiB RAM at 0), then started
 *          through the address register; RAM accesses outside the 64 KiB
 *          fail as beyond-RAM addresses do
 * The signature must read "QEMU" whenever it is selected afresh. */
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <modvm/modvm.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

extern const struct modvm_plugin_desc modvm_plugin_descriptor;

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static struct {
	uint64_t mem;
	unsigned cpus;
	bool e820;
	bool dma;
	const struct modvm_io_ops *ops;
	void *opaque;
	uint16_t base;
	uint32_t len;
	const struct modvm_io_ops *dma_ops; /* the second region, at 0x514 */
	uint8_t ram[65536];
} stub;

static void s_log(modvm_inst *i, enum modvm_log_level l, const char *fmt, ...) {}
static void s_set_error(modvm_inst *i, const char *fmt, ...) {}
static uint64_t s_mem_size(modvm_inst *i) { return stub.mem; }
static unsigned s_cpu_count(modvm_inst *i) { return stub.cpus; }

static modvm_region *s_pio_register(modvm_inst *i, uint16_t port, uint32_t len,
				    const struct modvm_io_ops *ops, void *opaque)
{
	if (stub.ops) {
		CHECK(port == 0x514 && len == 8 && opaque == stub.opaque);
		stub.dma_ops = ops;
		return (modvm_region *)&stub;
	}
	stub.ops = ops;
	stub.opaque = opaque;
	stub.base = port;
	stub.len = len;
	return (modvm_region *)&stub;
}

static int s_mem_read(modvm_inst *i, uint64_t gpa, void *buf, size_t len)
{
	if (gpa > sizeof(stub.ram) || len > sizeof(stub.ram) - gpa)
		return -1;
	memcpy(buf, stub.ram + gpa, len);
	return 0;
}

static int s_mem_write(modvm_inst *i, uint64_t gpa, const void *buf, size_t len)
{
	if (gpa > sizeof(stub.ram) || len > sizeof(stub.ram) - gpa)
		return -1;
	memcpy(stub.ram + gpa, buf, len);
	return 0;
}

static const struct modvm_host host = {
	.size = sizeof(struct modvm_host),
	.abi_major = MODVM_ABI_MAJOR,
	.abi_minor = MODVM_ABI_MINOR,
	.log = s_log,
	.set_error = s_set_error,
	.mem_size = s_mem_size,
	.pio_register = s_pio_register,
	.cpu_count = s_cpu_count,
	.mem_read = s_mem_read,
	.mem_write = s_mem_write,
};

static uint64_t rd(unsigned off, unsigned size)
{
	return stub.ops->read(stub.opaque, off, size);
}

static void wr(unsigned off, uint64_t v, unsigned size)
{
	stub.ops->write(stub.opaque, off, v, size);
}

static void check_signature(void)
{
	wr(0, 0x0000, 2);
	CHECK(rd(1, 1) == 'Q' && rd(1, 1) == 'E' && rd(1, 1) == 'M' && rd(1, 1) == 'U');
	CHECK(rd(1, 1) == 0);
}

/* The core's part of creating a device: allocate, fill the header, store
 * the bound properties (port 0x510, e820 as the input says, no files). */
static void *create(const struct modvm_device_ops *ops)
{
	struct modvm_dev *dev = calloc(1, ops->instance_size);
	static const char *const no_files = "";
	uint16_t port = 0x510;

	CHECK(dev);
	dev->host = &host;
	for (const struct modvm_prop_desc *p = modvm_plugin_descriptor.props; p->name; p++) {
		uint8_t *field = (uint8_t *)dev + p->offset;
		if (!strcmp(p->name, "port"))
			memcpy(field, &port, sizeof(port));
		else if (!strcmp(p->name, "e820"))
			memcpy(field, &stub.e820, sizeof(bool));
		else if (!strcmp(p->name, "dma"))
			memcpy(field, &stub.dma, sizeof(bool));
		else if (!strcmp(p->name, "files") || !strcmp(p->name, "bootorder"))
			memcpy(field, &no_files, sizeof(no_files));
	}
	if (ops->init(dev)) {
		free(dev);
		return NULL;
	}
	return dev;
}

/* Set a state field as the core's loader would, by its declared offset. */
static void load_field(void *dev, const struct modvm_state_field *f,
		       const uint8_t *v)
{
	size_t n = f->type == MODVM_FIELD_U16 ? 2 : 4;

	memcpy((uint8_t *)dev + f->offset, v, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint64_t mems[] = { 1 << 20, 2 << 20, 640 << 10, 3ull << 30,
					 (3ull << 30) + 4096, 6ull << 30 };
	const struct modvm_device_ops *ops = modvm_plugin_descriptor.ops;
	const struct modvm_state_section *sec = modvm_plugin_descriptor.state[0];
	size_t pos = 2;
	void *dev;

	if (size < 2)
		return 0;
	memset(stub.ram, 0, sizeof(stub.ram));
	stub.mem = mems[data[0] % MODVM_COUNTOF(mems)];
	stub.cpus = 1 + (data[1] & 0x7f);
	stub.e820 = data[1] & 0x80;
	stub.dma = (data[0] & 0x80) && (data[1] & 0x80);
	dev = create(ops);
	CHECK(dev && stub.ops && stub.base == 0x510 && stub.len == 2);
	CHECK(!stub.dma == !stub.dma_ops);
	check_signature();
	while (pos < size) {
		uint8_t op = data[pos++];
		if (op >= 0xF0 && stub.dma_ops) {
			uint16_t g;
			if (size - pos < 18)
				goto out;
			g = (uint16_t)(data[pos] | data[pos + 1] << 8);
			s_mem_write(NULL, g, data + pos + 2, 16); /* may not fit: fine */
			/* the guest writes be32 halves: bytes in address order */
			stub.dma_ops->write(stub.opaque, 0, 0, 4);
			stub.dma_ops->write(stub.opaque, 4,
					    (uint64_t)(g >> 8 | (g & 0xff) << 8) << 16, 4);
			pos += 18;
			continue;
		}
		op %= 8;
		switch (op) {
		case 0:
			if (size - pos < 2)
				goto out;
			wr(0, data[pos] | data[pos + 1] << 8, 2);
			pos += 2;
			break;
		case 1: (void)rd(1, 1); break;
		case 2: (void)rd(0, 1); break;
		case 3:
			if (pos < size)
				wr(data[pos++] & 1, 0x5a, 1);
			break;
		case 4:
			if (pos < size) {
				uint8_t w = data[pos++];
				(void)rd((w >> 2) & 1, 1u << (w & 3));
			}
			break;
		case 5:
			if (size - pos < 6)
				goto out;
			load_field(dev, &sec->fields[0], data + pos);
			load_field(dev, &sec->fields[1], data + pos + 2);
			pos += 6;
			CHECK(sec->post_load(dev) == 0);
			break;
		case 6:
			ops->reset(dev);
			CHECK(rd(1, 1) == 'Q');
			break;
		case 7:
			if (pos < size)
				for (unsigned n = data[pos++]; n; n--)
					(void)rd(1, 1);
			break;
		}
	}
out:
	check_signature();
	ops->destroy(dev);
	free(dev);
	stub.ops = stub.dma_ops = NULL;
	stub.opaque = NULL;
	return 0;
}
