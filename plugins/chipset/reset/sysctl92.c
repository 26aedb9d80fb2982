/* System Control Port A (port 92h, "PS/2 port A"): fast reset and fast
 * A20. Bit layout from the 82371AB (PIIX4) datasheet, 4.1.17 (PORT92).
 * Bit 1 is this device's A20 gate input, reported to the core (host
 * set_a20), which ORs it with the 8042's and has the CPU engine mask
 * address bit 20 while both are 0.
 */
#include <stdlib.h>

#include <modvm/modvm.h>

#define PORT92_INIT 0x01 /* fast init: a 0 -> 1 transition resets */
#define PORT92_A20 0x02  /* fast A20 gate */

struct sysctl92 {
	const struct modvm_host *host;
	modvm_inst *inst;
	uint8_t value;
};

static void port92_a20(struct sysctl92 *s)
{
	s->host->set_a20(s->inst, s->value & PORT92_A20);
}

static uint64_t port92_read(void *opaque, uint64_t off, unsigned size)
{
	struct sysctl92 *s = opaque;

	return size > 1 ? s->value | (~0ull << 8) : s->value;
}

static void port92_write(void *opaque, uint64_t off, uint64_t v, unsigned size)
{
	struct sysctl92 *s = opaque;
	uint8_t b = (uint8_t)v;
	bool reset = (b & PORT92_INIT) && !(s->value & PORT92_INIT);
	bool a20 = (b ^ s->value) & PORT92_A20;

	s->value = b;
	if (a20)
		port92_a20(s);
	if (reset) {
		s->host->log(s->inst, MODVM_LOG_DEBUG, "fast reset through port 92h");
		s->host->machine_request(s->inst, MODVM_REQUEST_RESET);
	}
}

static const struct modvm_io_ops port92_ops = { port92_read, port92_write };

/* A20 enabled, as a BIOS leaves it; INIT is clear. */
static void sysctl92_reset(void *dev)
{
	struct sysctl92 *s = dev;

	s->value = PORT92_A20;
	port92_a20(s);
}

static int sysctl92_post_load(void *dev)
{
	port92_a20(dev);
	return 0;
}

static const struct modvm_state_field sysctl92_fields[] = {
	MODVM_F_U8(struct sysctl92, value),
};

static const struct modvm_state_section sysctl92_section = {
	.name = "port92", .version = 1, .min_version = 1,
	.fields = sysctl92_fields, .nfields = MODVM_COUNTOF(sysctl92_fields),
	.post_load = sysctl92_post_load,
};
static const struct modvm_state_section *const sysctl92_sections[] = {
	&sysctl92_section, NULL
};

static void *sysctl92_create(const struct modvm_host *host, modvm_inst *inst)
{
	struct sysctl92 *s = calloc(1, sizeof(*s));

	if (!s) {
		host->set_error(inst, "out of memory");
		return NULL;
	}
	s->host = host;
	s->inst = inst;
	if (!host->pio_register(inst, MODVM_PC_PORT_SYSCTL_A, 1, &port92_ops, s)) {
		free(s);
		return NULL;
	}
	sysctl92_reset(s);
	return s;
}

static void sysctl92_destroy(void *dev)
{
	free(dev);
}

static const struct modvm_device_ops sysctl92_ops = {
	.size = sizeof(sysctl92_ops),
	.create = sysctl92_create,
	.destroy = sysctl92_destroy,
	.reset = sysctl92_reset,
};

MODVM_PLUGIN_DEFINE(.kind = MODVM_KIND_DEVICE, .name = "sysctl-92",
		    .version = "1.0.0",
		    .description = "System control port A (92h): fast reset, fast A20",
		    .props = NULL, .state = sysctl92_sections, .ops = &sysctl92_ops);
