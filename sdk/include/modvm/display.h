/* modvm SDK: display adapters and display front ends (ABI 2.4).
 *
 * Two sides meet here, through the core:
 *  - an adapter (a device plugin such as vga-std) owns the guest-visible
 *    registers and video memory and exposes what the guest shows as a
 *    surface: width, height, stride, pixel format, a pointer to the pixels
 *    and the rectangle that changed. It registers with
 *    host->display_register() and calls host->display_invalidate() when
 *    the guest changed something.
 *  - a front end (a plugin of kind MODVM_KIND_DISPLAY named display-NAME:
 *    display-none, later VNC and the like) consumes the surface. The
 *    adapter's BACKEND property of kind MODVM_KIND_DISPLAY picks it in the
 *    config (display = "none";), as a serial port picks its chardev.
 *
 * Cost: the core never polls. After an invalidate it asks the adapter for
 * an update at most every MODVM_DISPLAY_REFRESH_NS of virtual time, and
 * hands the changed rectangle to the front end; a screen nobody writes
 * costs no wake-up at all. The core's own consumers (the control socket's
 * screendump, the FUSE view's screen.png) ask for an update on demand.
 *
 * Threading: every callback here runs with the machine lock held, and
 * every service here takes it, so a front end's own threads may call them.
 */
#ifndef MODVM_DISPLAY_H
#define MODVM_DISPLAY_H

#include <stdbool.h>
#include <stdint.h>

#include <modvm/host.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct modvm_display modvm_display;

/* How long the core waits after an invalidate before it updates the
 * front end: 30 updates a second at most. */
#define MODVM_DISPLAY_REFRESH_NS (1000000000ull / 30)

/* Largest surface the core accepts from an adapter, in each direction. */
#define MODVM_DISPLAY_MAX_DIM 16384

enum modvm_pixel_format {
	/* 32 bits a pixel, a little-endian 0x00RRGGBB word: bytes B, G, R,
	 * then one ignored byte. The only format of ABI 2.4. */
	MODVM_PIXEL_XRGB8888 = 1,
};

/* A rectangle in surface pixels; w or h 0: empty. */
struct modvm_display_rect {
	uint32_t x, y, w, h;
};

/* What the guest shows now. width or height 0 means nothing (the adapter
 * is off, or in a mode it cannot show): front ends show a blank screen. */
struct modvm_display_surface {
	uint32_t width, height; /* pixels, at most MODVM_DISPLAY_MAX_DIM */
	uint32_t stride;        /* bytes from one row to the next, >= width * 4 */
	uint32_t format;        /* enum modvm_pixel_format */
	/* stride * height bytes, owned by the adapter; valid until the next
	 * update, and only while the machine lock is held. */
	const uint8_t *pixels;
	/* Grows whenever the pixels or the geometry change (never goes
	 * back), so a consumer can tell "nothing new" without looking. */
	uint64_t generation;
};

/* The adapter's side, given to host->display_register(). */
struct modvm_display_adapter {
	uint32_t size; /* sizeof(struct modvm_display_adapter) at build */
	/* Bring the surface up to date with what the guest wrote, fill *s,
	 * and set *dirty to what changed since the previous call (the whole
	 * surface after a mode change; w = 0 if nothing did). The adapter
	 * bounds-checks everything the guest programmed: *s must describe
	 * memory the adapter owns. Required. */
	void (*update)(void *opaque, struct modvm_display_surface *s,
		       struct modvm_display_rect *dirty);
};

/* A front end plugin's ops (descriptor kind MODVM_KIND_DISPLAY). */
struct modvm_display_ops {
	uint32_t size; /* sizeof(struct modvm_display_ops) at build */
	/* Create the front end for display d (its properties are the
	 * adapter's config group's, read with host->prop_*(inst, ...)).
	 * Return its handle, or NULL after host->set_error(). Open sockets
	 * here: after set-up the sandbox forbids it (docs/sandbox.md). */
	void *(*open)(const struct modvm_host *host, modvm_inst *inst,
		      modvm_display *d);
	void (*close)(void *fe);
	/* The surface changed within *dirty (the whole of it after a
	 * geometry change). s is valid only during the call. May be NULL
	 * for a front end that only pulls (host->display_surface). */
	void (*refresh)(void *fe, const struct modvm_display_surface *s,
			const struct modvm_display_rect *dirty);
};

#ifdef __cplusplus
}
#endif

#endif
