/* Console escape parser of chardev-stdio: a state machine over input
 * bytes, with no I/O, so tests can drive it directly. */
#include "escape.h"

const char esc_help_text[] =
	"\r\nmodvm console keys (press Ctrl-A, then the key):\r\n"
	"  Ctrl-A x        quit modvm\r\n"
	"  Ctrl-A h        this help\r\n"
	"  Ctrl-A c        monitor (not available yet)\r\n"
	"  Ctrl-A Ctrl-A   send one Ctrl-A to the guest\r\n";

enum esc_action esc_feed(struct esc_state *st, uint8_t c, bool *pass)
{
	*pass = false;
	if (!st->prefix) {
		if (c == ESC_PREFIX) {
			st->prefix = true;
			return ESC_NONE;
		}
		*pass = true;
		return ESC_NONE;
	}
	st->prefix = false;
	switch (c) {
	case ESC_PREFIX:
		*pass = true;
		return ESC_NONE;
	case 'x':
	case 'X':
		return ESC_QUIT;
	case 'h':
	case 'H':
	case '?':
		return ESC_HELP;
	case 'c':
	case 'C':
		return ESC_MONITOR;
	default:
		return ESC_UNKNOWN;
	}
}
