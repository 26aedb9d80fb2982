/* PS/2 keyboard and mouse behind the i8042 (ps2.c): the bytes each sends
 * the controller, queued, and what each does with the bytes the
 * controller passes on. The controller (i8042.c) moves queued bytes into
 * its output buffer when that is empty. */
#ifndef I8042_PS2_H
#define I8042_PS2_H

#include <stdbool.h>
#include <stdint.h>

#define PS2_QUEUE 16   /* bytes a device holds for the controller */

struct ps2_queue {
	uint8_t data[PS2_QUEUE];
	uint8_t rd, count;
};

struct ps2_kbd {
	struct ps2_queue q;
	uint8_t set;       /* scan code set 1, 2 or 3 (3 is sent as 2) */
	uint8_t pending;   /* command waiting for its parameter, or 0 */
	uint8_t leds;
	bool scanning;     /* F4h enable / F5h disable */
	bool translate;    /* the controller's translate bit, mirrored */
};

struct ps2_mouse {
	struct ps2_queue q;
	uint8_t pending;   /* command waiting for its parameter, or 0 */
	uint8_t rate, resolution, id;
	uint8_t rates[3];  /* the last three sample rates (IntelliMouse knock) */
	bool streaming;    /* F4h data reporting on */
	bool scaling21;
	bool remote;       /* remote mode: packets only on EBh */
	uint8_t buttons;
	int32_t dx, dy, dz; /* motion not sent yet */
};

bool ps2_queue_pop(struct ps2_queue *q, uint8_t *v);
void ps2_queue_clear(struct ps2_queue *q);
/* Bring a loaded queue into range (a snapshot is hostile input). */
void ps2_queue_check(struct ps2_queue *q);

void ps2_kbd_reset(struct ps2_kbd *k);
/* A byte from the controller (port 60h with no command pending). */
void ps2_kbd_write(struct ps2_kbd *k, uint8_t v);
/* A key went down or up: scan codes for it, if scanning. */
void ps2_kbd_key(struct ps2_kbd *k, unsigned code, bool down);

void ps2_mouse_reset(struct ps2_mouse *m);
/* Bring loaded state into range (queue, motion, id). */
void ps2_mouse_check(struct ps2_mouse *m);
/* A byte from the controller (D4h then 60h). */
void ps2_mouse_write(struct ps2_mouse *m, uint8_t v);
/* Motion and buttons; a packet (or several) if streaming. */
void ps2_mouse_event(struct ps2_mouse *m, int dx, int dy, int dz,
		     unsigned buttons);

#endif
