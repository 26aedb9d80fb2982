/* display-vnc: a VNC (RFB) server for a display adapter's surface, with
 * libvncserver. It runs on modvm's event loop, not on threads of its own:
 * the listening socket and every client socket are fd watches, and
 * rfbProcessEvents runs when one is ready or when the adapter's picture
 * changed (refresh), so an idle screen with idle clients costs nothing.
 * Keys (X keysyms) become Linux key codes and pointer events relative
 * motion for the PS/2 devices (<modvm/input.h>). */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <rfb/rfb.h>

#include <modvm/modvm.h>

#define MAX_CLIENT_WATCHES 16

struct vnc {
	const struct modvm_host *host;
	modvm_inst *inst;
	modvm_display *disp;
	rfbScreenInfoPtr screen;
	uint8_t *fb;              /* what clients see: XRGB8888, w * 4 a row */
	uint32_t w, h;
	modvm_watch *listen_watch, *listen6_watch;
	struct {
		rfbClientPtr cl;
		modvm_watch *w;
	} clients[MAX_CLIENT_WATCHES];
	char *passwords[2];       /* rfbCheckPasswordByList's list */
	int last_x, last_y;       /* last absolute pointer position */
	bool have_pointer;
	unsigned buttons;
};

/* ---- keys ------------------------------------------------------------------ */

/* US layout: an ASCII keysym to the key that types it (shifted or not). */
static unsigned ascii_key(unsigned c)
{
	static const char *const rows[] = {
		/* key codes 2-13, 16-27, 30-41, 43-53 */
		"1234567890-=", "qwertyuiop[]", "asdfghjkl;'`", "\\zxcvbnm,./",
	};
	static const char *const shifted[] = {
		"!@#$%^&*()_+", "QWERTYUIOP{}", "ASDFGHJKL:\"~", "|ZXCVBNM<>?",
	};
	static const unsigned first[] = { 2, 16, 30, 43 };

	if (c == ' ')
		return 57;
	for (unsigned r = 0; r < 4; r++) {
		const char *p = strchr(rows[r], (int)c);
		const char *q = strchr(shifted[r], (int)c);
		if (c && p)
			return first[r] + (unsigned)(p - rows[r]);
		if (c && q)
			return first[r] + (unsigned)(q - shifted[r]);
	}
	return 0;
}

/* X keysyms (X11/keysymdef.h) of the keys that are not characters. */
static unsigned keysym_key(rfbKeySym k)
{
	static const struct { uint32_t sym; uint16_t key; } map[] = {
		{ 0xff08, 14 }, { 0xff09, 15 }, { 0xff0d, 28 }, { 0xff1b, 1 },
		{ 0xffff, 111 }, { 0xff50, 102 }, { 0xff51, 105 }, { 0xff52, 103 },
		{ 0xff53, 106 }, { 0xff54, 108 }, { 0xff55, 104 }, { 0xff56, 109 },
		{ 0xff57, 107 }, { 0xff63, 110 }, { 0xff13, 119 }, { 0xff61, 99 },
		{ 0xff14, 70 }, { 0xff7f, 69 }, { 0xff67, 127 },
		{ 0xffe1, 42 }, { 0xffe2, 54 }, { 0xffe3, 29 }, { 0xffe4, 97 },
		{ 0xffe5, 58 }, { 0xffe9, 56 }, { 0xffea, 100 }, { 0xffe7, 125 },
		{ 0xffe8, 126 }, { 0xffeb, 125 }, { 0xffec, 126 }, { 0xfe03, 100 },
		{ 0xff8d, 96 }, { 0xffaa, 55 }, { 0xffab, 78 }, { 0xffad, 74 },
		{ 0xffae, 83 }, { 0xffaf, 98 },
		{ 0xffb0, 82 }, { 0xffb1, 79 }, { 0xffb2, 80 }, { 0xffb3, 81 },
		{ 0xffb4, 75 }, { 0xffb5, 76 }, { 0xffb6, 77 }, { 0xffb7, 71 },
		{ 0xffb8, 72 }, { 0xffb9, 73 },
	};

	if (k >= 0x20 && k < 0x7f)
		return ascii_key((unsigned)k);
	if (k >= 0xffbe && k <= 0xffc7)         /* F1-F10 */
		return 59 + (unsigned)(k - 0xffbe);
	if (k == 0xffc8 || k == 0xffc9)         /* F11, F12 */
		return 87 + (unsigned)(k - 0xffc8);
	for (unsigned i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (map[i].sym == k)
			return map[i].key;
	return 0;
}

static void on_key(rfbBool down, rfbKeySym sym, rfbClientPtr cl)
{
	struct vnc *v = cl->screen->screenData;
	unsigned key = keysym_key(sym);

	if (key)
		v->host->input_key(v->inst, key, down);
}

/* RFB gives absolute positions and buttons 1-5 (4 and 5: the wheel). */
static void on_pointer(int mask, int x, int y, rfbClientPtr cl)
{
	struct vnc *v = cl->screen->screenData;
	unsigned buttons = 0;
	int dx = 0, dy = 0, dz = 0;

	if (x < 0 || y < 0 || (uint32_t)x > v->w || (uint32_t)y > v->h)
		return;
	if (v->have_pointer) {
		dx = x - v->last_x;
		dy = y - v->last_y;
	}
	v->have_pointer = true;
	v->last_x = x;
	v->last_y = y;
	if (mask & 1)
		buttons |= MODVM_INPUT_BTN_LEFT;
	if (mask & 2)
		buttons |= MODVM_INPUT_BTN_MIDDLE;
	if (mask & 4)
		buttons |= MODVM_INPUT_BTN_RIGHT;
	if ((mask & 8) && !(v->buttons & 8))
		dz = -1;
	if ((mask & 16) && !(v->buttons & 16))
		dz = 1;
	v->buttons = (unsigned)mask & 0xFF;
	v->host->input_pointer(v->inst, dx, dy, dz, buttons);
	rfbDefaultPtrAddEvent(mask, x, y, cl);
}

/* ---- clients on the event loop --------------------------------------------- */

static void process(struct vnc *v)
{
	rfbProcessEvents(v->screen, 0);
}

static void on_ready(void *opaque, int fd, unsigned revents)
{
	(void)fd;
	(void)revents;
	process(opaque);
}

static void client_gone(rfbClientPtr cl)
{
	struct vnc *v = cl->screen->screenData;

	for (unsigned i = 0; i < MAX_CLIENT_WATCHES; i++)
		if (v->clients[i].cl == cl) {
			v->host->fd_unwatch(v->clients[i].w);
			v->clients[i].cl = NULL;
			v->clients[i].w = NULL;
		}
}

static enum rfbNewClientAction new_client(rfbClientPtr cl)
{
	struct vnc *v = cl->screen->screenData;

	for (unsigned i = 0; i < MAX_CLIENT_WATCHES; i++) {
		if (v->clients[i].cl)
			continue;
		v->clients[i].w = v->host->fd_watch(v->inst, cl->sock, MODVM_FD_IN, on_ready, v);
		if (!v->clients[i].w)
			break;
		v->clients[i].cl = cl;
		cl->clientGoneHook = client_gone;
		return RFB_CLIENT_ACCEPT;
	}
	v->host->log(v->inst, MODVM_LOG_WARN, "VNC client refused: %u clients already",
		     MAX_CLIENT_WATCHES);
	return RFB_CLIENT_REFUSE;
}

/* ---- the picture -------------------------------------------------------------- */

static void set_format(rfbScreenInfoPtr s)
{
	/* XRGB8888 little-endian: blue in the low byte */
	s->serverFormat.redShift = 16;
	s->serverFormat.greenShift = 8;
	s->serverFormat.blueShift = 0;
}

/* A new geometry: a new buffer for clients (libvncserver tells those
 * that understand NewFBSize). */
static bool resize(struct vnc *v, uint32_t w, uint32_t h)
{
	uint8_t *fb = calloc((size_t)w * h, 4), *old = v->fb;

	if (!fb)
		return false;
	rfbNewFramebuffer(v->screen, (char *)fb, (int)w, (int)h, 8, 3, 4);
	set_format(v->screen);
	v->fb = fb;
	v->w = w;
	v->h = h;
	free(old);
	return true;
}

static void vnc_refresh(void *fe, const struct modvm_display_surface *s,
			const struct modvm_display_rect *r)
{
	struct vnc *v = fe;
	uint32_t x0 = r->x, y0 = r->y, w = r->w, h = r->h;

	if (!s->width || !s->height)
		return;                   /* nothing shown: keep the last picture */
	if (s->width != v->w || s->height != v->h) {
		if (!resize(v, s->width, s->height))
			return;
		x0 = y0 = 0;
		w = s->width;
		h = s->height;
	}
	/* the core clipped r to the surface */
	for (uint32_t y = y0; y < y0 + h; y++)
		memcpy(v->fb + ((size_t)y * v->w + x0) * 4,
		       s->pixels + (size_t)y * s->stride + (size_t)x0 * 4, (size_t)w * 4);
	rfbMarkRectAsModified(v->screen, (int)x0, (int)y0, (int)(x0 + w), (int)(y0 + h));
	process(v);
}

/* ---- life cycle ------------------------------------------------------------------- */

static int parse_listen(struct vnc *v, const char *s, in_addr_t *addr, int *port)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	char *end;
	long p;

	if (!colon || (size_t)(colon - s) >= sizeof(host)) {
		v->host->set_error(v->inst, "vnc-listen \"%s\" is not HOST:PORT (e.g. 127.0.0.1:5900)", s);
		return -1;
	}
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = 0;
	p = strtol(colon + 1, &end, 10);
	if (*end || p < 1 || p > 65535) {
		v->host->set_error(v->inst, "vnc-listen \"%s\": the port must be 1-65535", s);
		return -1;
	}
	if (inet_pton(AF_INET, host, addr) != 1) {
		v->host->set_error(v->inst, "vnc-listen \"%s\": %s is not an IPv4 address (0.0.0.0 for every interface)",
				   s, host);
		return -1;
	}
	*port = (int)p;
	return 0;
}

static void vnc_free(struct vnc *v)
{
	if (v->screen) {
		rfbShutdownServer(v->screen, TRUE);
		rfbScreenCleanup(v->screen);
	}
	free(v->fb);
	free(v->passwords[0]);
	free(v);
}

static void *vnc_open(const struct modvm_host *host, modvm_inst *inst,
		      modvm_display *d)
{
	struct vnc *v = calloc(1, sizeof(*v));
	const char *listen = host->prop_string(inst, "vnc-listen");
	const char *password = host->prop_string(inst, "vnc-password");
	in_addr_t addr;
	int port, argc = 0;

	if (!v) {
		host->set_error(inst, "out of memory");
		return NULL;
	}
	v->host = host;
	v->inst = inst;
	v->disp = d;
	if (parse_listen(v, listen, &addr, &port))
		goto fail;
	if (strlen(password) > 8) {
		host->set_error(inst, "vnc-password is longer than 8 characters (VNC authentication uses only 8)");
		goto fail;
	}
	/* A client that stops half-way through a message holds the event
	 * loop this long at most (libvncserver reads whole messages). */
	rfbMaxClientWait = 100;
	rfbLogEnable(host->prop_bool(inst, "vnc-log"));
	v->w = 640;
	v->h = 480;
	v->fb = calloc((size_t)v->w * v->h, 4);
	v->screen = v->fb ? rfbGetScreen(&argc, NULL, (int)v->w, (int)v->h, 8, 3, 4) : NULL;
	if (!v->screen) {
		host->set_error(inst, "out of memory");
		goto fail;
	}
	v->screen->frameBuffer = (char *)v->fb;
	set_format(v->screen);
	v->screen->desktopName = "modvm";
	v->screen->screenData = v;
	v->screen->listenInterface = addr;
	v->screen->port = port;
	v->screen->ipv6port = 0;              /* IPv4 only: the address given */
	v->screen->autoPort = FALSE;
	v->screen->httpPort = 0;
	v->screen->alwaysShared = TRUE;       /* several clients at once */
	v->screen->deferUpdateTime = 0;       /* updates go out when refresh runs */
	v->screen->kbdAddEvent = on_key;
	v->screen->ptrAddEvent = on_pointer;
	v->screen->newClientHook = new_client;
	if (password[0]) {
		/* VNC authentication makes a random challenge and DES-encrypts
		 * it: libvncserver's crypto backend opens its random source
		 * (and configuration) on first use, which the sandbox forbids
		 * later; use both once now, before it. */
		unsigned char challenge[CHALLENGESIZE];
		rfbRandomBytes(challenge);
		rfbEncryptBytes(challenge, (char *)password);
		v->passwords[0] = strdup(password);
		v->screen->authPasswdData = v->passwords;
		v->screen->passwordCheck = rfbCheckPasswordByList;
	}
	rfbInitServer(v->screen);
	if (v->screen->listenSock < 0) {
		host->set_error(inst, "VNC cannot listen on %s (in use? pick another vnc-listen port)", listen);
		goto fail;
	}
	v->listen_watch = host->fd_watch(inst, v->screen->listenSock, MODVM_FD_IN, on_ready, v);
	if (!v->listen_watch)
		goto fail;
	host->log(inst, MODVM_LOG_INFO, "VNC server on %s%s", listen,
		  password[0] ? " (password)" : "");
	return v;
fail:
	vnc_free(v);
	return NULL;
}

static void vnc_close(void *fe)
{
	struct vnc *v = fe;

	for (unsigned i = 0; i < MAX_CLIENT_WATCHES; i++)
		v->clients[i].cl = NULL;      /* the core drops our watches */
	vnc_free(v);
}

MODVM_PLUGIN_DEFINE(
	.kind = MODVM_KIND_DISPLAY,
	.name = "display-vnc",
	.version = "1.0.0",
	.description = "VNC server (libvncserver) showing the display, keyboard and pointer input",
	.props = MODVM_PROPS(
		MODVM_PROP_STRING_("vnc-listen", "127.0.0.1:5900",
				   "IPv4 address and TCP port to listen on"),
		MODVM_PROP_STRING_("vnc-password", "",
				   "VNC authentication password (at most 8 characters); \"\": none"),
		MODVM_PROP_BOOL_("vnc-log", "false",
				 "libvncserver's own log lines on stderr")),
	.ops = &(const struct modvm_display_ops){
		.size = sizeof(struct modvm_display_ops),
		.open = vnc_open,
		.close = vnc_close,
		.refresh = vnc_refresh,
	});
