/* The 8042 keyboard controller at ports 60h/64h: self-tests, the command
 * byte, port enables, output port (reset line, A20), loop-back commands
 * and the pulse-reset command, and optionally (properties keyboard and
 * mouse) a PS/2 keyboard and mouse behind it (ps2.c) that take the keys
 * and pointer events front ends inject (<modvm/input.h>). A device that is
 * not attached gets the "no device" answer (FEh with the time-out bit).
 * Commands follow the IBM PS/2 keyboard controller (8042/8242) interface.
 */
#include <string.h>

#include <modvm/modvm.h>

#include "ps2.h"

/* Status register (read 64h) */
#define STR_OBF 0x01     /* output buffer full */
#define STR_SYS 0x04     /* system flag (command byte bit 2) */
#define STR_CMD 0x08     /* last write was to 64h */
#define STR_UNLOCK 0x10  /* keyboard not inhibited (no key lock) */
#define STR_AUXDATA 0x20 /* the output buffer holds auxiliary data */
#define STR_TIMEOUT 0x40 /* no answer from the device */

/* Command byte (RAM byte 0) */
#define CTR_KBDINT 0x01
#define CTR_AUXINT 0x02
#define CTR_SYS 0x04
#define CTR_KBDDIS 0x10
#define CTR_AUXDIS 0x20
#define CTR_XLATE 0x40

/* Output port (D0h/D1h) */
#define OUT_RESET 0x01   /* 0 asserts the CPU reset line */
#define OUT_A20 0x02
#define OUT_OBF 0x10
#define OUT_AUXOBF 0x20

enum {
	CMD_READ_RAM = 0x20,    /* 20h-3Fh */
	CMD_WRITE_RAM = 0x60,   /* 60h-7Fh */
	CMD_PASSWORD_TEST = 0xA4,
	CMD_AUX_DISABLE = 0xA7,
	CMD_AUX_ENABLE = 0xA8,
	CMD_AUX_TEST = 0xA9,
	CMD_SELF_TEST = 0xAA,
	CMD_KBD_TEST = 0xAB,
	CMD_KBD_DISABLE = 0xAD,
	CMD_KBD_ENABLE = 0xAE,
	CMD_READ_INPUT = 0xC0,
	CMD_READ_OUTPUT = 0xD0,
	CMD_WRITE_OUTPUT = 0xD1,
	CMD_WRITE_KBD_OBUF = 0xD2,
	CMD_WRITE_AUX_OBUF = 0xD3,
	CMD_WRITE_AUX = 0xD4,
	CMD_READ_TEST = 0xE0,
	CMD_PULSE = 0xF0,       /* F0h-FFh: pulse output bits 3-0 low */
};

#define SELF_TEST_OK 0x55
#define IFACE_TEST_OK 0x00
#define NO_PASSWORD 0xF1
#define NO_DEVICE 0xFE
#define INPUT_PORT 0xA0  /* keyboard not inhibited, no jumper */
#define RAM_SIZE 32

struct i8042 {
	struct modvm_dev dev;
	uint8_t ram[RAM_SIZE]; /* ram[0] is the command byte */
	uint8_t status;
	uint8_t obuf;          /* output buffer (stale once read) */
	uint8_t outport;
	uint8_t pending;       /* command waiting for its data byte, or 0 */
	bool irq_kbd, irq_aux; /* levels driven on IRQ 1 and 12 */
	bool has_kbd, has_mouse; /* properties keyboard, mouse */
	struct ps2_kbd kbd;
	struct ps2_mouse mouse;
};

#define IRQ_AUX 12

static void kbc_drive_irqs(struct i8042 *k, bool force)
{
	bool full = k->status & STR_OBF, aux = k->status & STR_AUXDATA;
	bool kbd_irq = full && !aux && (k->ram[0] & CTR_KBDINT);
	bool aux_irq = full && aux && (k->ram[0] & CTR_AUXINT);

	if (kbd_irq != k->irq_kbd || force) {
		k->irq_kbd = kbd_irq;
		k->dev.host->irq_set(k->dev.inst, MODVM_PC_IRQ_KBD, kbd_irq);
	}
	if (aux_irq != k->irq_aux || force) {
		k->irq_aux = aux_irq;
		k->dev.host->irq_set(k->dev.inst, IRQ_AUX, aux_irq);
	}
}

/* One byte into the output buffer; a new byte replaces an unread one. */
static void kbc_output(struct i8042 *k, uint8_t v, bool aux, bool timeout)
{
	k->obuf = v;
	k->status &= (uint8_t)~(STR_AUXDATA | STR_TIMEOUT);
	k->status |= STR_OBF | (aux ? STR_AUXDATA : 0) |
		     (timeout ? STR_TIMEOUT : 0);
	kbc_drive_irqs(k, false);
}

/* The output buffer is empty: the keyboard's next byte, else the mouse's,
 * unless the command byte disables its port. */
static void kbc_pump(struct i8042 *k)
{
	uint8_t v;

	if (k->status & STR_OBF)
		return;
	if (!(k->ram[0] & CTR_KBDDIS) && ps2_queue_pop(&k->kbd.q, &v))
		kbc_output(k, v, false, false);
	else if (!(k->ram[0] & CTR_AUXDIS) && ps2_queue_pop(&k->mouse.q, &v))
		kbc_output(k, v, true, false);
}

static void kbc_request_reset(struct i8042 *k, const char *why)
{
	k->dev.host->log(k->dev.inst, MODVM_LOG_DEBUG, "CPU reset through %s", why);
	k->dev.host->machine_request(k->dev.inst, MODVM_REQUEST_RESET);
}

static void kbc_set_ctr(struct i8042 *k, uint8_t v)
{
	k->ram[0] = v;
	k->status = (uint8_t)((k->status & ~STR_SYS) | (v & CTR_SYS));
	k->kbd.translate = v & CTR_XLATE;
	kbc_drive_irqs(k, false);
	kbc_pump(k);
}

/* Bit 1 of the output port drives A20GATE: the core ORs it with port
 * 92h's bit and the CPU engine masks address bit 20 while both are 0. */
static void kbc_a20(struct i8042 *k)
{
	k->dev.host->set_a20(k->dev.inst, k->outport & OUT_A20);
}

/* Write the output port; a 0 in bit 0 holds the CPU in reset. */
static void kbc_write_outport(struct i8042 *k, uint8_t v)
{
	bool a20 = (v ^ k->outport) & OUT_A20;

	k->outport = v;
	if (a20)
		kbc_a20(k);
	if (!(v & OUT_RESET))
		kbc_request_reset(k, "the 8042 output port");
}

static uint8_t kbc_read_outport(const struct i8042 *k)
{
	uint8_t v = k->outport & (uint8_t)~(OUT_OBF | OUT_AUXOBF);

	if (k->status & STR_OBF)
		v |= (k->status & STR_AUXDATA) ? OUT_AUXOBF : OUT_OBF;
	return v;
}

static void kbc_command(struct i8042 *k, uint8_t cmd)
{
	k->pending = 0;
	if (cmd >= CMD_READ_RAM && cmd < CMD_READ_RAM + RAM_SIZE) {
		kbc_output(k, k->ram[cmd - CMD_READ_RAM], false, false);
		return;
	}
	if ((cmd >= CMD_WRITE_RAM && cmd < CMD_WRITE_RAM + RAM_SIZE) ||
	    (cmd >= CMD_WRITE_OUTPUT && cmd <= CMD_WRITE_AUX)) {
		k->pending = cmd;
		return;
	}
	if (cmd >= CMD_PULSE) {
		if (!(cmd & OUT_RESET))
			kbc_request_reset(k, "8042 command FEh");
		return;
	}
	switch (cmd) {
	case CMD_PASSWORD_TEST:
		kbc_output(k, NO_PASSWORD, false, false);
		break;
	case CMD_AUX_DISABLE:
		kbc_set_ctr(k, k->ram[0] | CTR_AUXDIS);
		break;
	case CMD_AUX_ENABLE:
		kbc_set_ctr(k, k->ram[0] & (uint8_t)~CTR_AUXDIS);
		break;
	case CMD_AUX_TEST:
	case CMD_KBD_TEST:
		kbc_output(k, IFACE_TEST_OK, false, false);
		break;
	case CMD_SELF_TEST:
		k->status |= STR_SYS;
		k->ram[0] |= CTR_SYS;
		kbc_output(k, SELF_TEST_OK, false, false);
		break;
	case CMD_KBD_DISABLE:
		kbc_set_ctr(k, k->ram[0] | CTR_KBDDIS);
		break;
	case CMD_KBD_ENABLE:
		kbc_set_ctr(k, k->ram[0] & (uint8_t)~CTR_KBDDIS);
		break;
	case CMD_READ_INPUT:
		kbc_output(k, INPUT_PORT, false, false);
		break;
	case CMD_READ_OUTPUT:
		kbc_output(k, kbc_read_outport(k), false, false);
		break;
	case CMD_READ_TEST:
		kbc_output(k, 0, false, false);
		break;
	default:
		k->dev.host->log(k->dev.inst, MODVM_LOG_DEBUG,
			     "command %02Xh is not emulated", cmd);
		break;
	}
}

/* A data byte: the parameter of a pending command, else meant for the
 * keyboard, which is not there. */
static void kbc_data(struct i8042 *k, uint8_t v)
{
	uint8_t cmd = k->pending;

	k->pending = 0;
	if (cmd >= CMD_WRITE_RAM && cmd < CMD_WRITE_RAM + RAM_SIZE) {
		if (cmd == CMD_WRITE_RAM)
			kbc_set_ctr(k, v);
		else
			k->ram[cmd - CMD_WRITE_RAM] = v;
		return;
	}
	switch (cmd) {
	case CMD_WRITE_OUTPUT:
		kbc_write_outport(k, v);
		break;
	case CMD_WRITE_KBD_OBUF:
		kbc_output(k, v, false, false);
		break;
	case CMD_WRITE_AUX_OBUF:
		kbc_output(k, v, true, false);
		break;
	case CMD_WRITE_AUX:
		if (!k->has_mouse) {
			kbc_output(k, NO_DEVICE, true, true);
			break;
		}
		ps2_mouse_write(&k->mouse, v);
		kbc_pump(k);
		break;
	default:
		if (!k->has_kbd) {
			kbc_output(k, NO_DEVICE, false, true);
			break;
		}
		ps2_kbd_write(&k->kbd, v);
		kbc_pump(k);
		break;
	}
}

static uint64_t data_read(void *opaque, uint64_t off, unsigned size)
{
	struct i8042 *k = opaque;
	uint8_t v = k->obuf;

	k->status &= (uint8_t)~(STR_OBF | STR_AUXDATA | STR_TIMEOUT);
	kbc_drive_irqs(k, false);
	kbc_pump(k);
	return size > 1 ? v | (~0ull << 8) : v;
}

static void data_write(void *opaque, uint64_t off, uint64_t v, unsigned size)
{
	struct i8042 *k = opaque;

	k->status &= (uint8_t)~STR_CMD;
	kbc_data(k, (uint8_t)v);
}

static uint64_t status_read(void *opaque, uint64_t off, unsigned size)
{
	struct i8042 *k = opaque;

	return size > 1 ? k->status | (~0ull << 8) : k->status;
}

static void command_write(void *opaque, uint64_t off, uint64_t v,
			  unsigned size)
{
	struct i8042 *k = opaque;

	k->status |= STR_CMD;
	kbc_command(k, (uint8_t)v);
}

static const struct modvm_io_ops data_ops = { data_read, data_write };
static const struct modvm_io_ops cmd_ops = { status_read, command_write };

/* The state a PC BIOS leaves after POST (modvm boots without one):
 * self-test passed, keyboard interrupt and translation on, both ports
 * enabled, reset line released, A20 on. */
static void i8042_reset(void *dev)
{
	struct i8042 *k = dev;

	memset(k->ram, 0, sizeof(k->ram));
	k->ram[0] = CTR_KBDINT | CTR_SYS | CTR_XLATE;
	k->status = STR_SYS | STR_UNLOCK;
	k->obuf = 0;
	k->outport = OUT_RESET | OUT_A20;
	k->pending = 0;
	k->kbd.translate = true;
	ps2_kbd_reset(&k->kbd);
	ps2_mouse_reset(&k->mouse);
	kbc_drive_irqs(k, true);
	kbc_a20(k);
}

static int i8042_post_load(void *dev)
{
	struct i8042 *k = dev;

	/* what a snapshot brings is checked before it is used as an index */
	ps2_queue_check(&k->kbd.q);
	ps2_queue_check(&k->mouse.q);
	if (k->kbd.set < 1 || k->kbd.set > 3)
		k->kbd.set = 2;
	k->kbd.translate = k->ram[0] & CTR_XLATE;
	ps2_mouse_check(&k->mouse);
	kbc_drive_irqs(k, true);
	kbc_a20(k);
	return 0;
}

static void kbd_key(void *opaque, unsigned code, bool down)
{
	struct i8042 *k = opaque;

	ps2_kbd_key(&k->kbd, code, down);
	kbc_pump(k);
}

static void mouse_pointer(void *opaque, int dx, int dy, int dz, unsigned buttons)
{
	struct i8042 *k = opaque;

	ps2_mouse_event(&k->mouse, dx, dy, dz, buttons);
	kbc_pump(k);
}

#define K struct i8042
/* Version 2 added the keyboard and the mouse: a version 1 stream loads
 * and leaves them as they were (reset). */
MODVM_STATE_SECTION_HOOKS(i8042_state, "kbc", 2, 1, NULL, i8042_post_load,
	MODVM_F_BYTES(K, ram), MODVM_F_U8(K, status), MODVM_F_U8(K, obuf),
	MODVM_F_U8(K, outport), MODVM_F_U8(K, pending),
	MODVM_F_BYTES_V(K, kbd.q.data, 2), MODVM_F_U8_V(K, kbd.q.rd, 2),
	MODVM_F_U8_V(K, kbd.q.count, 2), MODVM_F_U8_V(K, kbd.set, 2),
	MODVM_F_U8_V(K, kbd.pending, 2), MODVM_F_U8_V(K, kbd.leds, 2),
	MODVM_F_BOOL_V(K, kbd.scanning, 2),
	MODVM_F_BYTES_V(K, mouse.q.data, 2), MODVM_F_U8_V(K, mouse.q.rd, 2),
	MODVM_F_U8_V(K, mouse.q.count, 2), MODVM_F_U8_V(K, mouse.pending, 2),
	MODVM_F_U8_V(K, mouse.rate, 2), MODVM_F_U8_V(K, mouse.resolution, 2),
	MODVM_F_U8_V(K, mouse.id, 2), MODVM_F_BYTES_V(K, mouse.rates, 2),
	MODVM_F_BOOL_V(K, mouse.streaming, 2), MODVM_F_BOOL_V(K, mouse.scaling21, 2),
	MODVM_F_BOOL_V(K, mouse.remote, 2), MODVM_F_U8_V(K, mouse.buttons, 2),
	MODVM_F_I32_V(K, mouse.dx, 2), MODVM_F_I32_V(K, mouse.dy, 2),
	MODVM_F_I32_V(K, mouse.dz, 2));
#undef K


static int i8042_init(void *dev)
{
	struct i8042 *k = dev;

	/* 61h between them belongs to the PIT's port B. */
	if (!k->dev.host->pio_register(k->dev.inst, MODVM_PC_PORT_KBC_DATA, 1, &data_ops, k) ||
	    !k->dev.host->pio_register(k->dev.inst, MODVM_PC_PORT_KBC_CMD, 1, &cmd_ops, k))
		return -1;
	if ((k->has_kbd || k->has_mouse) &&
	    k->dev.host->input_register(k->dev.inst, &(struct modvm_input_ops){
			.size = sizeof(struct modvm_input_ops),
			.key = k->has_kbd ? kbd_key : NULL,
			.pointer = k->has_mouse ? mouse_pointer : NULL }, k))
		return -1;
	i8042_reset(k);
	return 0;
}

MODVM_DEVICE_DEFINE(.name = "i8042", .version = "1.1.0",
	.description = "8042 keyboard controller: self-test, reset line, A20 gate; PS/2 keyboard and mouse",
	.props = MODVM_PROPS(
		MODVM_PROP_BOOL(struct i8042, has_kbd, "keyboard", "false",
				"a PS/2 keyboard on the first port (keys from display front ends)"),
		MODVM_PROP_BOOL(struct i8042, has_mouse, "mouse", "false",
				"a PS/2 mouse on the auxiliary port (IRQ 12)")),
	.state = MODVM_STATE(&i8042_state),
	.ops = MODVM_DEVICE_OPS(struct i8042, .init = i8042_init, .reset = i8042_reset));
