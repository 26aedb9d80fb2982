/* modvm SDK: keyboard and pointer input (ABI 2.4).
 *
 * Input devices (the i8042's PS/2 keyboard and mouse) register a
 * struct modvm_input_ops with host->input_register(); front ends (a VNC
 * server, a test) inject events with host->input_key() and
 * host->input_pointer(), which reach every registered device that takes
 * that kind of event. Keys are Linux key codes (<linux/input-event-codes.h>,
 * KEY_A = 30; the same numbers as PC scan code set 1 for keys 1-88), so a
 * front end converts its own key names (X keysyms for VNC) once, and a
 * device converts to its wire format (scan code sets 1 and 2 for PS/2).
 *
 * Threading: the services take the machine lock; devices' callbacks run
 * with it held.
 */
#ifndef MODVM_INPUT_H
#define MODVM_INPUT_H

#include <stdbool.h>
#include <stdint.h>

#include <modvm/host.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Largest key code devices are given (KEY_MAX of Linux is 0x2FF). */
#define MODVM_INPUT_KEY_MAX 0x2FF

/* Pointer buttons, held down while their bit is set. */
enum modvm_input_button {
	MODVM_INPUT_BTN_LEFT = 1u << 0,
	MODVM_INPUT_BTN_RIGHT = 1u << 1,
	MODVM_INPUT_BTN_MIDDLE = 1u << 2,
};

/* A device's side, given to host->input_register(). */
struct modvm_input_ops {
	uint32_t size; /* sizeof(struct modvm_input_ops) at build */
	/* Key `code` (1..MODVM_INPUT_KEY_MAX) went down or up. NULL: the
	 * device has no keys. */
	void (*key)(void *opaque, unsigned code, bool down);
	/* The pointer moved by dx, dy (screen pixels; y grows downwards),
	 * the wheel by dz (positive: towards the user, one notch = 1), and
	 * `buttons` (enum modvm_input_button) are held now. NULL: no
	 * pointer. */
	void (*pointer)(void *opaque, int dx, int dy, int dz, unsigned buttons);
};

#ifdef __cplusplus
}
#endif

#endif
