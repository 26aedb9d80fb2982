/* Fuzz target: the i8042's PS/2 keyboard and mouse (plugins/chipset/reset/
 * ps2.c): bytes from a hostile guest, events from a hostile front end and
 * hostile loaded state, in any order. The queues must stay within bounds
 * and every packet byte count must add up. Input: operations,
 *   0 v      byte to the keyboard          1 v   byte to the mouse
 *   2 k k d  key k (16 bits) down/up       3 x x y y z b  pointer event
 *   4        pop a keyboard byte           5     pop a mouse byte
 *   6 r c s  loaded state: queue rd/count, scan code set; then checked
 *   7        reset both */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/chipset/reset/ps2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c) do { if (!(c)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ps2_kbd k;
	struct ps2_mouse m;
	size_t pos = 0;
	uint8_t v;

	memset(&k, 0, sizeof(k));
	ps2_kbd_reset(&k);
	ps2_mouse_reset(&m);
	while (pos < size) {
		uint8_t op = data[pos++] % 8;
		size_t left = size - pos;
		const uint8_t *a = data + pos;

		switch (op) {
		case 0: if (left < 1) goto out; ps2_kbd_write(&k, a[0]); pos++; break;
		case 1: if (left < 1) goto out; ps2_mouse_write(&m, a[0]); pos++; break;
		case 2:
			if (left < 3)
				goto out;
			ps2_kbd_key(&k, (unsigned)(a[0] | a[1] << 8), a[2] & 1);
			pos += 3;
			break;
		case 3:
			if (left < 6)
				goto out;
			ps2_mouse_event(&m, (int16_t)(a[0] | a[1] << 8) * 4096,
					(int16_t)(a[2] | a[3] << 8) * 4096, (int8_t)a[4], a[5]);
			pos += 6;
			break;
		case 4: (void)ps2_queue_pop(&k.q, &v); break;
		case 5: (void)ps2_queue_pop(&m.q, &v); break;
		case 6:
			if (left < 3)
				goto out;
			k.q.rd = a[0];
			k.q.count = a[1];
			k.set = a[2];
			m.q.rd = a[1];
			m.q.count = a[0];
			m.id = a[2];
			ps2_queue_check(&k.q);
			ps2_mouse_check(&m);
			if (k.set < 1 || k.set > 3)
				k.set = 2;
			pos += 3;
			break;
		case 7:
			ps2_kbd_reset(&k);
			ps2_mouse_reset(&m);
			break;
		}
		CHECK(k.q.count <= PS2_QUEUE && k.q.rd < PS2_QUEUE);
		CHECK(m.q.count <= PS2_QUEUE && m.q.rd < PS2_QUEUE);
		CHECK(m.dx >= -65536 && m.dx <= 65536 && m.dy >= -65536 && m.dy <= 65536);
	}
out:
	while (ps2_queue_pop(&k.q, &v) || ps2_queue_pop(&m.q, &v))
		;
	return 0;
}
