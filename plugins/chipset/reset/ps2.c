/* The PS/2 keyboard and mouse: their command sets as Linux's atkbd and
 * psmouse drivers and PC firmware use them (IBM PS/2 Technical Reference,
 * "Keyboard and Auxiliary Device Controller"), scan code sets 1 and 2, and
 * 3- or 4-byte (IntelliMouse) movement packets. */
#include "ps2.h"

#include <string.h>

#define ACK 0xFA
#define RESEND 0xFE
#define BAT_OK 0xAA
#define ECHO 0xEE

/* ---- queues -------------------------------------------------------------- */

/* A full queue drops the byte, as a real device's buffer overruns
 * (keyboards then send 00h/FFh, which we leave out). */
static void push(struct ps2_queue *q, uint8_t v)
{
	if (q->count >= PS2_QUEUE)
		return;
	q->data[(q->rd + q->count) % PS2_QUEUE] = v;
	q->count++;
}

bool ps2_queue_pop(struct ps2_queue *q, uint8_t *v)
{
	if (!q->count)
		return false;
	*v = q->data[q->rd];
	q->rd = (uint8_t)((q->rd + 1) % PS2_QUEUE);
	q->count--;
	return true;
}

void ps2_queue_clear(struct ps2_queue *q)
{
	q->rd = q->count = 0;
}

void ps2_queue_check(struct ps2_queue *q)
{
	q->rd %= PS2_QUEUE;
	if (q->count > PS2_QUEUE)
		q->count = PS2_QUEUE;
}

/* ---- scan codes ------------------------------------------------------------ */

/* Linux key codes 1-88 are the set 1 codes (KEY_ESC = 1 ... KEY_F12 = 88,
 * 84 and 85 unused); these are the extended keys (E0h prefix). */
static const struct { uint16_t key; uint8_t code; } extended[] = {
	{ 96, 0x1C },  /* KEY_KPENTER */
	{ 97, 0x1D },  /* KEY_RIGHTCTRL */
	{ 98, 0x35 },  /* KEY_KPSLASH */
	{ 99, 0x37 },  /* KEY_SYSRQ (Print Screen) */
	{ 100, 0x38 }, /* KEY_RIGHTALT */
	{ 102, 0x47 }, /* KEY_HOME */
	{ 103, 0x48 }, /* KEY_UP */
	{ 104, 0x49 }, /* KEY_PAGEUP */
	{ 105, 0x4B }, /* KEY_LEFT */
	{ 106, 0x4D }, /* KEY_RIGHT */
	{ 107, 0x4F }, /* KEY_END */
	{ 108, 0x50 }, /* KEY_DOWN */
	{ 109, 0x51 }, /* KEY_PAGEDOWN */
	{ 110, 0x52 }, /* KEY_INSERT */
	{ 111, 0x53 }, /* KEY_DELETE */
	{ 125, 0x5B }, /* KEY_LEFTMETA */
	{ 126, 0x5C }, /* KEY_RIGHTMETA */
	{ 127, 0x5D }, /* KEY_COMPOSE (menu) */
};

/* Set 1 to set 2, indexed by the set 1 code (the inverse of the 8042's
 * translation table); the same for the byte after E0h. 0: none. */
static const uint8_t set1_to_set2[0x60] = {
	[0x01] = 0x76, 0x16, 0x1E, 0x26, 0x25, 0x2E, 0x36, 0x3D, 0x3E, 0x46,
	0x45, 0x4E, 0x55, 0x66, 0x0D, 0x15, 0x1D, 0x24, 0x2D, 0x2C, 0x35, 0x3C,
	0x43, 0x44, 0x4D, 0x54, 0x5B, 0x5A, 0x14, 0x1C, 0x1B, 0x23, 0x2B, 0x34,
	0x33, 0x3B, 0x42, 0x4B, 0x4C, 0x52, 0x0E, 0x12, 0x5D, 0x1A, 0x22, 0x21,
	0x2A, 0x32, 0x31, 0x3A, 0x41, 0x49, 0x4A, 0x59, 0x7C, 0x11, 0x29, 0x58,
	0x05, 0x06, 0x04, 0x0C, 0x03, 0x0B, 0x83, 0x0A, 0x01, 0x09, 0x77, 0x7E,
	0x6C, 0x75, 0x7D, 0x7B, 0x6B, 0x73, 0x74, 0x79, 0x69, 0x72, 0x7A, 0x70,
	0x71, /* 0x53 */
	[0x56] = 0x61, 0x78, 0x07,
	[0x5B] = 0x1F, 0x27, 0x2F, /* E0 5B/5C/5D: the Windows and menu keys */
};

#define KEY_PAUSE 119

static bool key_code(unsigned key, uint8_t *code, bool *ext)
{
	*ext = false;
	if (key >= 1 && key <= 88 && key != 84 && key != 85) {
		*code = (uint8_t)key;
		return true;
	}
	for (unsigned i = 0; i < sizeof(extended) / sizeof(extended[0]); i++)
		if (extended[i].key == key) {
			*code = extended[i].code;
			*ext = true;
			return true;
		}
	return false;
}

void ps2_kbd_reset(struct ps2_kbd *k)
{
	bool tr = k->translate;

	memset(k, 0, sizeof(*k));
	k->translate = tr;
	k->set = 2;
	k->scanning = true;
}

void ps2_kbd_key(struct ps2_kbd *k, unsigned key, bool down)
{
	bool set1 = k->set == 1 || k->translate;
	uint8_t code;
	bool ext;

	if (!k->scanning)
		return;
	if (key == KEY_PAUSE) {
		/* make only, no break: E1 1D 45 E1 9D C5 / E1 14 77 E1 F0 14 F0 77 */
		static const uint8_t p1[] = { 0xE1, 0x1D, 0x45, 0xE1, 0x9D, 0xC5 };
		static const uint8_t p2[] = { 0xE1, 0x14, 0x77, 0xE1, 0xF0, 0x14, 0xF0, 0x77 };
		if (!down)
			return;
		for (unsigned i = 0; i < (set1 ? sizeof(p1) : sizeof(p2)); i++)
			push(&k->q, set1 ? p1[i] : p2[i]);
		return;
	}
	if (!key_code(key, &code, &ext))
		return;
	if (ext)
		push(&k->q, 0xE0);
	if (set1) {
		push(&k->q, down ? code : (uint8_t)(code | 0x80));
		return;
	}
	if (!down)
		push(&k->q, 0xF0);
	push(&k->q, set1_to_set2[code]);
}

/* Commands with a parameter byte */
#define KBD_SET_LEDS 0xED
#define KBD_SCANSET 0xF0
#define KBD_TYPEMATIC 0xF3

void ps2_kbd_write(struct ps2_kbd *k, uint8_t v)
{
	uint8_t cmd = k->pending;

	k->pending = 0;
	switch (cmd) {
	case KBD_SET_LEDS:
		k->leds = v & 7;
		push(&k->q, ACK);
		return;
	case KBD_TYPEMATIC:
		push(&k->q, ACK);
		return;
	case KBD_SCANSET:
		push(&k->q, ACK);
		if (v == 0) {
			/* the set as it would arrive: translated if so */
			push(&k->q, k->translate ? (k->set == 1 ? 0x43 : k->set == 2 ? 0x41 : 0x3F)
						 : k->set);
		} else if (v <= 3) {
			k->set = v;
		}
		return;
	default:
		break;
	}
	ps2_queue_clear(&k->q);          /* a command cancels what was queued */
	switch (v) {
	case KBD_SET_LEDS:
	case KBD_SCANSET:
	case KBD_TYPEMATIC:
		k->pending = v;
		push(&k->q, ACK);
		break;
	case ECHO:
		push(&k->q, ECHO);
		break;
	case 0xF2:                       /* identify: an MF2 keyboard */
		push(&k->q, ACK);
		push(&k->q, 0xAB);
		push(&k->q, k->translate ? 0x41 : 0x83);
		break;
	case 0xF4:
		k->scanning = true;
		push(&k->q, ACK);
		break;
	case 0xF5:                       /* disable, and defaults */
		ps2_kbd_reset(k);
		k->scanning = false;
		push(&k->q, ACK);
		break;
	case 0xF6:                       /* defaults, keep scanning */
		ps2_kbd_reset(k);
		push(&k->q, ACK);
		break;
	case 0xF7: case 0xF8: case 0xF9: case 0xFA:
	case 0xFB: case 0xFC: case 0xFD: /* set 3 key types: accepted */
		push(&k->q, ACK);
		break;
	case 0xFE:                       /* resend: nothing was lost */
		push(&k->q, ACK);
		break;
	case 0xFF:
		ps2_kbd_reset(k);
		push(&k->q, ACK);
		push(&k->q, BAT_OK);
		break;
	default:
		push(&k->q, RESEND);
		break;
	}
}

/* ---- mouse ------------------------------------------------------------------- */

void ps2_mouse_reset(struct ps2_mouse *m)
{
	memset(m, 0, sizeof(*m));
	m->rate = 100;
	m->resolution = 2;
}

static int clamp(int32_t v, int lo, int hi)
{
	return v < lo ? lo : v > hi ? hi : (int)v;
}

void ps2_mouse_check(struct ps2_mouse *m)
{
	ps2_queue_check(&m->q);
	m->dx = clamp(m->dx, -65536, 65536);
	m->dy = clamp(m->dy, -65536, 65536);
	m->dz = clamp(m->dz, -64, 64);
	if (m->id != 3)
		m->id = 0;
	m->buttons &= 7;
}

/* One movement packet from the motion not sent yet (PS/2 y grows up). */
static void mouse_packet(struct ps2_mouse *m)
{
	int dx = clamp(m->dx, -256, 255), dy = clamp(m->dy, -256, 255);
	int dz = clamp(m->dz, -8, 7);
	uint8_t b0 = (uint8_t)(0x08 | (m->buttons & 7) | (dx < 0 ? 0x10 : 0) |
			       (dy < 0 ? 0x20 : 0));

	if (PS2_QUEUE - m->q.count < (m->id == 3 ? 4 : 3))
		return;                   /* keep the motion for later */
	push(&m->q, b0);
	push(&m->q, (uint8_t)dx);
	push(&m->q, (uint8_t)dy);
	if (m->id == 3)
		push(&m->q, (uint8_t)(dz & 0x0F));
	m->dx -= dx;
	m->dy -= dy;
	m->dz = m->id == 3 ? m->dz - dz : 0;
}

void ps2_mouse_event(struct ps2_mouse *m, int dx, int dy, int dz,
		     unsigned buttons)
{
	/* bounded: a front end sending huge deltas cannot overflow them */
	m->dx = clamp((int64_t)m->dx + dx, -65536, 65536);
	m->dy = clamp((int64_t)m->dy - dy, -65536, 65536);
	m->dz = clamp((int64_t)m->dz + dz, -64, 64);
	m->buttons = (uint8_t)(buttons & 7);
	if (!m->streaming || m->remote)
		return;
	mouse_packet(m);
}

#define MOUSE_SET_RESOLUTION 0xE8
#define MOUSE_SET_RATE 0xF3

void ps2_mouse_write(struct ps2_mouse *m, uint8_t v)
{
	uint8_t cmd = m->pending;

	m->pending = 0;
	if (cmd == MOUSE_SET_RESOLUTION) {
		m->resolution = v & 3;
		push(&m->q, ACK);
		return;
	}
	if (cmd == MOUSE_SET_RATE) {
		m->rate = v;
		m->rates[0] = m->rates[1];
		m->rates[1] = m->rates[2];
		m->rates[2] = v;
		/* 200, 100, 80: the IntelliMouse knock (wheel, id 3) */
		if (m->rates[0] == 200 && m->rates[1] == 100 && m->rates[2] == 80)
			m->id = 3;
		push(&m->q, ACK);
		return;
	}
	switch (v) {
	case MOUSE_SET_RESOLUTION:
	case MOUSE_SET_RATE:
		m->pending = v;
		push(&m->q, ACK);
		break;
	case 0xE6:
	case 0xE7:
		m->scaling21 = v == 0xE7;
		push(&m->q, ACK);
		break;
	case 0xE9:                       /* status request */
		push(&m->q, ACK);
		push(&m->q, (uint8_t)((m->remote ? 0x40 : 0) | (m->streaming ? 0x20 : 0) |
				      (m->scaling21 ? 0x10 : 0) | (m->buttons & 7)));
		push(&m->q, m->resolution);
		push(&m->q, m->rate);
		break;
	case 0xEA:
		m->remote = false;
		push(&m->q, ACK);
		break;
	case 0xEB:                       /* read data */
		push(&m->q, ACK);
		mouse_packet(m);
		break;
	case 0xF0:
		m->remote = true;
		push(&m->q, ACK);
		break;
	case 0xF2:
		push(&m->q, ACK);
		push(&m->q, m->id);
		break;
	case 0xF4:
		m->streaming = true;
		push(&m->q, ACK);
		break;
	case 0xF5:
		m->streaming = false;
		push(&m->q, ACK);
		break;
	case 0xF6: {
		uint8_t id = m->id;
		ps2_mouse_reset(m);
		m->id = id;
		push(&m->q, ACK);
		break;
	}
	case 0xFF:
		ps2_mouse_reset(m);
		push(&m->q, ACK);
		push(&m->q, BAT_OK);
		push(&m->q, 0x00);
		break;
	case 0xEC: case 0xEE:            /* wrap mode off/on: not emulated */
	case 0xFE:
		push(&m->q, ACK);
		break;
	default:
		push(&m->q, RESEND);
		break;
	}
}
