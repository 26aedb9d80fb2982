/* The display layer of the core: an adapter's surface, the refresh timer
 * that feeds its front end only when something changed, and PNG
 * screendumps for the control socket and the FUSE view. */
#include <errno.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <modvm/display.h>
#include <modvm/input.h>

#include "display.h"
#include "machine.h"
#include "propval.h"

struct modvm_display {
	struct machine *m;
	modvm_inst *adapter;
	struct modvm_display_adapter a; /* size-checked copy */
	void *opaque;
	modvm_inst *fe_inst;            /* front end, or NULL */
	const struct modvm_display_ops *fe_ops;
	modvm_timer *timer;
	bool warned;                    /* a bad surface was logged */
	struct modvm_display *next;
};

/* An adapter's surface the core can trust, or an empty one. */
static bool surface_valid(const struct modvm_display_surface *s)
{
	if (!s->width || !s->height)
		return true;
	return s->width <= MODVM_DISPLAY_MAX_DIM &&
	       s->height <= MODVM_DISPLAY_MAX_DIM &&
	       s->format == MODVM_PIXEL_XRGB8888 && s->pixels &&
	       s->stride >= s->width * 4u;
}

static void clip(struct modvm_display_rect *r,
		 const struct modvm_display_surface *s)
{
	if (r->x >= s->width || r->y >= s->height) {
		r->w = r->h = 0;
		return;
	}
	if (r->w > s->width - r->x)
		r->w = s->width - r->x;
	if (r->h > s->height - r->y)
		r->h = s->height - r->y;
}

/* Ask the adapter for the present picture; hand a change to the front
 * end. Machine lock held. */
static void display_update(modvm_display *d, struct modvm_display_surface *s)
{
	struct modvm_display_rect r = { 0, 0, 0, 0 };

	memset(s, 0, sizeof(*s));
	d->a.update(d->opaque, s, &r);
	if (!surface_valid(s)) {
		if (!d->warned)
			d->m->host.log(d->adapter, MODVM_LOG_ERROR,
				       "surface %ux%u stride %u format %u is not valid: showing nothing",
				       s->width, s->height, s->stride, s->format);
		d->warned = true;
		memset(s, 0, sizeof(*s));
		return;
	}
	clip(&r, s);
	if (r.w && r.h && d->fe_ops && d->fe_ops->refresh)
		d->fe_ops->refresh(d->fe_inst->obj, s, &r);
}

static void refresh_timer(void *opaque)
{
	modvm_display *d = opaque;
	struct modvm_display_surface s;

	display_update(d, &s);
}

static void h_display_invalidate(modvm_display *d)
{
	if (!d)
		return;
	machine_lock(d->m);
	/* Armed once per burst of writes; nothing runs while the screen is
	 * left alone. */
	if (!d->timer->armed)
		timer_arm(d->timer, vclock_now(&d->m->clock) + MODVM_DISPLAY_REFRESH_NS);
	machine_unlock(d->m);
}

static void h_display_surface(modvm_display *d, struct modvm_display_surface *s)
{
	machine_lock(d->m);
	display_update(d, s);
	machine_unlock(d->m);
}

static int open_frontend(modvm_inst *inst, const char *prop, modvm_display *d)
{
	struct machine *m = inst->m;
	const struct resolved_props *rp = inst_backend(inst, prop, MODVM_KIND_DISPLAY);

	if (!rp || rp->plugin->desc->kind != MODVM_KIND_DISPLAY)
		return set_err(inst->error, sizeof(inst->error),
			       "property \"%s\" does not name a display front end", prop);
	d->fe_ops = rp->plugin->desc->ops;
	d->fe_inst = inst_new(m, rp->plugin, inst->id, rp, inst->cfg);
	d->fe_inst->obj = d->fe_ops->open(&m->host, d->fe_inst, d);
	if (!d->fe_inst->obj) {
		set_err(inst->error, sizeof(inst->error), "display %s: %s",
			rp->plugin->desc->name,
			d->fe_inst->error[0] ? d->fe_inst->error : "open failed (no reason given)");
		inst_release_loop(m, d->fe_inst);
		inst_free(d->fe_inst);
		d->fe_inst = NULL;
		d->fe_ops = NULL;
		return -1;
	}
	return 0;
}

static modvm_display *h_display_register(modvm_inst *inst, const char *prop,
					 const struct modvm_display_adapter *a,
					 void *opaque)
{
	struct machine *m = inst->m;
	size_t need = offsetof(struct modvm_display_adapter, update) + sizeof(void *);
	modvm_display *d;

	if (!a || a->size < need || !a->update) {
		set_err(inst->error, sizeof(inst->error),
			"display adapter needs size and update");
		return NULL;
	}
	for (d = m->displays; d; d = d->next)
		if (d->adapter == inst) {
			set_err(inst->error, sizeof(inst->error),
				"this device already registered a display");
			return NULL;
		}
	d = xcalloc(1, sizeof(*d));
	d->m = m;
	d->adapter = inst;
	memcpy(&d->a, a, a->size < sizeof(d->a) ? a->size : sizeof(d->a));
	d->a.size = sizeof(d->a);
	d->opaque = opaque;
	if (prop && open_frontend(inst, prop, d)) {
		free(d);
		return NULL;
	}
	d->timer = timer_create_(m, inst, refresh_timer, d);
	machine_lock(m);
	d->next = m->displays;
	m->displays = d;
	machine_unlock(m);
	return d;
}

void display_release_inst(struct machine *m, modvm_inst *inst)
{
	for (modvm_display **pp = &m->displays; *pp;) {
		modvm_display *d = *pp;
		if (d->adapter != inst) {
			pp = &d->next;
			continue;
		}
		*pp = d->next;
		if (d->fe_inst) {
			d->fe_ops->close(d->fe_inst->obj);
			inst_release_loop(m, d->fe_inst);
			inst_free(d->fe_inst);
		}
		/* d->timer belongs to the adapter's instance: released with it */
		free(d);
	}
}

void display_host_services(struct modvm_host *h)
{
	h->display_register = h_display_register;
	h->display_invalidate = h_display_invalidate;
	h->display_surface = h_display_surface;
}

int display_update_first(struct machine *m, struct modvm_display_surface *s,
			 struct modvm_display_rect *dirty)
{
	modvm_display *d;

	memset(s, 0, sizeof(*s));
	memset(dirty, 0, sizeof(*dirty));
	machine_lock(m);
	d = m->displays;
	while (d && d->next)
		d = d->next;
	if (!d) {
		machine_unlock(m);
		return -1;
	}
	d->a.update(d->opaque, s, dirty);
	if (!surface_valid(s))
		memset(s, 0, sizeof(*s));
	else
		clip(dirty, s);
	machine_unlock(m);
	return 0;
}

bool display_present(struct machine *m)
{
	bool r;

	machine_lock(m);
	r = m->displays != NULL;
	machine_unlock(m);
	return r;
}

/* ---- PNG ------------------------------------------------------------------ */

struct png_out {
	struct strbuf *b;
};

static void png_write_cb(png_structp png, png_bytep data, png_size_t n)
{
	struct png_out *o = png_get_io_ptr(png);

	sb_append(o->b, data, n);
}

static void png_flush_cb(png_structp png)
{
	(void)png;
}

/* XRGB8888 rows to an RGB PNG. Returns 0, or -1 (libpng failed: out of
 * memory). */
static int encode_png(const uint8_t *px, uint32_t w, uint32_t h,
		      uint32_t stride, struct strbuf *out)
{
	png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
	png_infop info = png ? png_create_info_struct(png) : NULL;
	uint8_t *volatile row = NULL;
	struct png_out o = { out };

	if (!info) {
		png_destroy_write_struct(&png, NULL);
		return -1;
	}
	if (setjmp(png_jmpbuf(png))) {
		free(row);
		png_destroy_write_struct(&png, &info);
		return -1;
	}
	row = xmalloc((size_t)w * 3);
	png_set_write_fn(png, &o, png_write_cb, png_flush_cb);
	/* Fast: a screendump is taken while people wait; screens compress
	 * well at any level. */
	png_set_compression_level(png, 1);
	png_set_IHDR(png, info, w, h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
		     PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	png_write_info(png, info);
	for (uint32_t y = 0; y < h; y++) {
		const uint8_t *src = px + (size_t)y * stride;
		for (uint32_t x = 0; x < w; x++) {
			row[x * 3 + 0] = src[x * 4 + 2];
			row[x * 3 + 1] = src[x * 4 + 1];
			row[x * 3 + 2] = src[x * 4 + 0];
		}
		png_write_row(png, row);
	}
	png_write_end(png, info);
	free(row);
	png_destroy_write_struct(&png, &info);
	return 0;
}

int display_png(struct machine *m, struct strbuf *out, char *err, size_t len)
{
	struct modvm_display_surface s;
	uint8_t *copy;
	uint32_t w, h;
	int r;

	machine_lock(m);
	if (!m->displays) {
		machine_unlock(m);
		return set_err(err, len, "this VM has no display adapter (add one to its devices: { plugin = \"vga-std\"; id = \"vga\"; })");
	}
	/* The first adapter the config lists (the list is newest first). */
	modvm_display *d = m->displays;
	while (d->next)
		d = d->next;
	display_update(d, &s);
	w = s.width;
	h = s.height;
	if (!w || !h) {
		machine_unlock(m);
		return set_err(err, len, "the display shows nothing now (the guest turned it off or set a mode it cannot show)");
	}
	/* Copy under the lock, encode without it: the VM runs on meanwhile. */
	copy = xmalloc((size_t)w * 4 * h);
	for (uint32_t y = 0; y < h; y++)
		memcpy(copy + (size_t)y * w * 4, s.pixels + (size_t)y * s.stride, (size_t)w * 4);
	machine_unlock(m);
	r = encode_png(copy, w, h, w * 4, out);
	free(copy);
	if (r)
		return set_err(err, len, "PNG encoding failed (out of memory?)");
	return 0;
}

int display_png_to_fd(struct machine *m, int fd, size_t *written, char *err,
		      size_t len)
{
	struct strbuf b;
	size_t done = 0;

	sb_init(&b);
	if (display_png(m, &b, err, len)) {
		sb_free(&b);
		return -1;
	}
	while (done < b.len) {
		ssize_t n = write(fd, b.s + done, b.len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			set_err(err, len, "writing the PNG: %s", n < 0 ? strerror(errno) : "short write");
			sb_free(&b);
			return -1;
		}
		done += (size_t)n;
	}
	if (written)
		*written = done;
	sb_free(&b);
	return 0;
}

/* ---- input ------------------------------------------------------------------ */

struct input_sink {
	modvm_inst *inst;
	struct modvm_input_ops ops; /* size-checked copy */
	void *opaque;
	struct input_sink *next;
};

static int h_input_register(modvm_inst *inst, const struct modvm_input_ops *ops,
			    void *opaque)
{
	struct machine *m = inst->m;
	size_t need = offsetof(struct modvm_input_ops, pointer) + sizeof(void *);
	struct input_sink *s;

	if (!ops || ops->size < need)
		return set_err(inst->error, sizeof(inst->error),
			       "input ops need size, key and pointer (either may be NULL)");
	s = xcalloc(1, sizeof(*s));
	s->inst = inst;
	memcpy(&s->ops, ops, sizeof(s->ops));
	s->ops.size = sizeof(s->ops);
	s->opaque = opaque;
	machine_lock(m);
	s->next = m->inputs;
	m->inputs = s;
	machine_unlock(m);
	return 0;
}

static void h_input_key(modvm_inst *inst, unsigned code, bool down)
{
	struct machine *m = inst->m;

	if (code == 0 || code > MODVM_INPUT_KEY_MAX)
		return;
	machine_lock(m);
	for (struct input_sink *s = m->inputs; s; s = s->next)
		if (s->ops.key)
			s->ops.key(s->opaque, code, down);
	machine_unlock(m);
}

static void h_input_pointer(modvm_inst *inst, int dx, int dy, int dz,
			    unsigned buttons)
{
	struct machine *m = inst->m;

	machine_lock(m);
	for (struct input_sink *s = m->inputs; s; s = s->next)
		if (s->ops.pointer)
			s->ops.pointer(s->opaque, dx, dy, dz, buttons);
	machine_unlock(m);
}

void input_release_inst(struct machine *m, modvm_inst *inst)
{
	for (struct input_sink **pp = &m->inputs; *pp;) {
		struct input_sink *s = *pp;
		if (s->inst == inst) {
			*pp = s->next;
			free(s);
		} else {
			pp = &s->next;
		}
	}
}

void input_host_services(struct modvm_host *h)
{
	h->input_register = h_input_register;
	h->input_key = h_input_key;
	h->input_pointer = h_input_pointer;
}
