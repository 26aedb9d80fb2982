/* The display layer of the core (core/display.c): adapters' surfaces,
 * their front ends, and PNG screendumps. Per machine. */
#ifndef MODVM_CORE_DISPLAY_H
#define MODVM_CORE_DISPLAY_H

#include <stdbool.h>
#include <stddef.h>

#include <modvm/host.h>

#include "util.h"

struct machine;

/* Fill the display_* entries of the host-services table. */
void display_host_services(struct modvm_host *h);
/* Drop the display an instance registered, closing its front end. */
void display_release_inst(struct machine *m, modvm_inst *inst);
struct modvm_display_surface;
struct modvm_display_rect;
/* The device harness: ask the first display's adapter for an update and
 * return the surface and the changed rectangle as it reported them
 * (checked, clipped). -1 if there is no display. */
int display_update_first(struct machine *m, struct modvm_display_surface *s,
			 struct modvm_display_rect *dirty);
/* Input devices and what front ends inject (input_* services). */
void input_host_services(struct modvm_host *h);
void input_release_inst(struct machine *m, modvm_inst *inst);
/* Whether any adapter registered a display (the FUSE view's screen.png). */
bool display_present(struct machine *m);
/* The first display's picture as it is now, as a PNG appended to out.
 * -1 with err set: no adapter, nothing shown, out of memory. */
int display_png(struct machine *m, struct strbuf *out, char *err, size_t len);
/* The same, written to fd; *written (may be NULL) gets the bytes. */
int display_png_to_fd(struct machine *m, int fd, size_t *written, char *err,
		      size_t len);

#endif
