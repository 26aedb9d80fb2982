/* The console escape keys of chardev-stdio, kept apart from any terminal
 * so they can be unit tested: Ctrl-A starts a two-key command. */
#ifndef MODVM_CHARDEV_ESCAPE_H
#define MODVM_CHARDEV_ESCAPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ESC_PREFIX 0x01 /* Ctrl-A */

enum esc_action {
	ESC_NONE = 0,
	ESC_QUIT,     /* Ctrl-A x */
	ESC_HELP,     /* Ctrl-A h (or ?) */
	ESC_MONITOR,  /* Ctrl-A c: reserved for the monitor */
	ESC_UNKNOWN,  /* Ctrl-A and a key with no meaning */
};

struct esc_state {
	bool prefix; /* the last byte was a lone Ctrl-A */
};

/* Feed one input byte. *pass says whether the byte goes to the guest;
 * the return value is the command completed by this byte, if any. */
enum esc_action esc_feed(struct esc_state *st, uint8_t c, bool *pass);

/* Help text, lines ending in "\r\n" (the terminal is raw). */
extern const char esc_help_text[];

#endif
