/* System Control Port A (port 92h, "PS/2 port A"): fast reset and fast
 * A20. Bit layout from the 82371AB (PIIX4) datasheet, 4.1.17 (PORT92).
 * Bit 1 is this device's A20 gate input, reported to the core (host
 * set_a20), which ORs it with the 8042's and has the CPU engine mask
 * address bit 20 while both are 0.
 */
#include <modvm/modvm.h>

#define PORT92_INIT 0x01 /* fast init: a 0 -> 1 transition resets */
#define PORT92_A20 0x02  /* fast A20 gate */

struct sysctl92 {
	struct modvm_dev dev;
	uint8_t value;
};

static void port92_a20(struct sysctl92 *s)
{
	s->dev.host->set_a20(s->dev.inst, s->value & PORT92_A20);
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
		s->dev.host->log(s->dev.inst, MODVM_LOG_DEBUG, "fast reset through port 92h");
		s->dev.host->machine_request(s->dev.inst, MODVM_REQUEST_RESET);
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

MODVM_STATE_SECTION_HOOKS(sysctl92_state, "port92", 1, 1, NULL, sysctl92_post_load,
			  MODVM_F_U8(struct sysctl92, value));

static int sysctl92_init(void *dev)
{
	struct sysctl92 *s = dev;

	if (!s->dev.host->pio_register(s->dev.inst, MODVM_PC_PORT_SYSCTL_A, 1,
				       &port92_ops, s))
		return -1;
	sysctl92_reset(s);
	return 0;
}

MODVM_DEVICE_DEFINE(.name = "sysctl-92", .version = "1.0.0",
		    .description = "System control port A (92h): fast reset, fast A20",
		    .state = MODVM_STATE(&sysctl92_state),
		    .ops = MODVM_DEVICE_OPS(struct sysctl92, .init = sysctl92_init,
					    .reset = sysctl92_reset));
