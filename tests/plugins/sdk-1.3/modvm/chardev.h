/* modvm SDK: character devices, between a front end (a UART, a parallel
 * port, a console) and a backend plugin (stdio, file, pty, socket, host port).
 *
 * A front end names its backend with a MODVM_PROP_BACKEND property of kind
 * MODVM_KIND_CHARDEV and opens it with host->chardev_open(). The core creates
 * the backend instance from the same config group, so backend properties sit
 * beside the front end's (backend = "file"; path = "com1.log";). Everything
 * written passes through the core, which keeps the console log.
 */
#ifndef MODVM_CHARDEV_H
#define MODVM_CHARDEV_H

#include <stddef.h>
#include <stdint.h>

#include <modvm/host.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct modvm_chardev modvm_chardev;

/* Serial line settings a front end asks a pass-through backend to apply. */
struct modvm_serial_params {
	uint32_t baud;      /* bits per second, e.g. 115200 */
	uint8_t data_bits;  /* 5-8 */
	uint8_t stop_bits;  /* 1 or 2 (1.5 is reported as 2) */
	char parity;        /* 'N', 'E', 'O', 'M' (mark), 'S' (space) */
	uint8_t break_on;   /* transmit a break condition */
};

/* Modem lines. DTR/RTS are outputs of the UART; the rest are inputs. */
enum modvm_modem_line {
	MODVM_MODEM_DTR = 1u << 0,
	MODVM_MODEM_RTS = 1u << 1,
	MODVM_MODEM_CTS = 1u << 2,
	MODVM_MODEM_DSR = 1u << 3,
	MODVM_MODEM_RI = 1u << 4,
	MODVM_MODEM_DCD = 1u << 5,
};

/* The front end's side, called by the core with the machine lock held. */
struct modvm_chardev_frontend {
	/* How many bytes receive() may be given now (0: hold input). */
	size_t (*can_receive)(void *opaque);
	void (*receive)(void *opaque, const uint8_t *buf, size_t len);
	/* Input modem lines changed (pass-through backends). May be NULL. */
	void (*modem_changed)(void *opaque, unsigned lines);
};

/* A backend plugin's ops (descriptor kind MODVM_KIND_CHARDEV). */
struct modvm_chardev_ops {
	uint32_t size;
	/* Open the backend for chr; props come from inst (the front end's
	 * config group). Return NULL after host->set_error(). */
	void *(*open)(const struct modvm_host *host, modvm_inst *inst,
		      modvm_chardev *chr);
	void (*close)(void *be);
	/* Take up to len bytes without blocking; return how many were taken
	 * (a full pipe may take fewer; the rest is the front end's to keep
	 * or drop, as a UART with a busy line would). */
	size_t (*write)(void *be, const uint8_t *buf, size_t len);
	/* The front end can receive again after can_receive returned 0. */
	void (*accept_input)(void *be);
	/* Optional (NULL: not a pass-through backend). */
	int (*set_params)(void *be, const struct modvm_serial_params *p);
	int (*set_modem)(void *be, unsigned lines);
	int (*get_modem)(void *be, unsigned *lines);
};

#ifdef __cplusplus
}
#endif

#endif
