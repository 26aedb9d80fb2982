/* The i8042's PS/2 keyboard and mouse (keyboard = true, mouse = true):
 * the commands Linux's atkbd and psmouse send, scan code sets 1
 * (translated) and 2, keys and pointer events injected through the input
 * services as a display front end injects them, IRQ 1 and 12, disabled
 * ports holding bytes back, hostile command streams and hostile state. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include <modvm/modvm.h>
#include "testmain.h"

#define DATA 0x60
#define CMD 0x64
#define STR_OBF 0x01
#define STR_AUX 0x20
#define KEY_A 30
#define KEY_UP 103

static struct hx *kbc_new(const modvm_inst **fe_inst, const struct modvm_host **host)
{
	struct hx *h = hx_new(0);
	modvm_inst *inst;

	CU_ASSERT_EQUAL_FATAL(hx_add(h, "i8042", "kbc", "keyboard=true", "mouse=true", NULL), 0);
	*host = hx_host(h, "kbc", &inst);
	*fe_inst = inst;
	return h;
}

/* Everything the controller has for us now: bytes into out, returns how
 * many; aux set if any came from the mouse. */
static unsigned drain(struct hx *h, uint8_t *out, unsigned max, bool *aux)
{
	unsigned n = 0;

	if (aux)
		*aux = false;
	while (n < max && (hx_inb(h, CMD) & STR_OBF)) {
		if (aux && (hx_inb(h, CMD) & STR_AUX))
			*aux = true;
		out[n++] = hx_inb(h, DATA);
	}
	return n;
}

#define EXPECT(h, ...) do {                                                 \
	static const uint8_t want_[] = { __VA_ARGS__ };                     \
	uint8_t got_[64];                                                   \
	unsigned n_ = drain((h), got_, sizeof(got_), NULL);                  \
	CU_ASSERT_EQUAL(n_, sizeof(want_));                                 \
	CU_ASSERT(n_ == sizeof(want_) && !memcmp(got_, want_, n_));          \
} while (0)

/* Nothing waits in the output buffer (EXPECT needs at least one byte: an
 * empty initializer is not C17). */
#define EXPECT_NONE(h) do {                                                 \
	uint8_t got_[64];                                                   \
	CU_ASSERT_EQUAL(drain((h), got_, sizeof(got_), NULL), 0);            \
} while (0)

static void ctr_write(struct hx *h, uint8_t v)
{
	hx_outb(h, CMD, 0x60);
	hx_outb(h, DATA, v);
}

static void test_keyboard_commands(void)
{
	const modvm_inst *inst;
	const struct modvm_host *host;
	struct hx *h = kbc_new(&inst, &host);

	hx_outb(h, DATA, 0xFF);                /* reset */
	EXPECT(h, 0xFA, 0xAA);
	CU_ASSERT(hx_irq_raises(h, 1) >= 2);   /* one interrupt a byte */
	hx_outb(h, DATA, 0xF2);                /* identify, translated */
	EXPECT(h, 0xFA, 0xAB, 0x41);
	hx_outb(h, DATA, 0xF0);                /* scan code set? */
	hx_outb(h, DATA, 0x00);
	EXPECT(h, 0xFA, 0xFA, 0x41);
	hx_outb(h, DATA, 0xED);                /* LEDs */
	hx_outb(h, DATA, 0x07);
	EXPECT(h, 0xFA, 0xFA);
	hx_outb(h, DATA, 0xF3);                /* typematic */
	hx_outb(h, DATA, 0x20);
	EXPECT(h, 0xFA, 0xFA);
	hx_outb(h, DATA, 0xEE);                /* echo */
	EXPECT(h, 0xEE);
	hx_outb(h, DATA, 0x42);                /* not a command */
	EXPECT(h, 0xFE);
	/* translation off: identify answers as the keyboard does */
	ctr_write(h, 0x05);
	hx_outb(h, DATA, 0xF2);
	EXPECT(h, 0xFA, 0xAB, 0x83);
	hx_outb(h, DATA, 0xF0);
	hx_outb(h, DATA, 0x00);
	EXPECT(h, 0xFA, 0xFA, 0x02);
	hx_outb(h, DATA, 0xF0);                /* set 1 */
	hx_outb(h, DATA, 0x01);
	EXPECT(h, 0xFA, 0xFA);
	hx_outb(h, DATA, 0xF0);
	hx_outb(h, DATA, 0x00);
	EXPECT(h, 0xFA, 0xFA, 0x01);
	hx_free(h);
}

static void test_keys(void)
{
	const modvm_inst *inst;
	const struct modvm_host *host;
	struct hx *h = kbc_new(&inst, &host);
	modvm_inst *i = (modvm_inst *)inst;

	/* translated (the BIOS default): set 1 */
	unsigned irqs = hx_irq_raises(h, 1);
	host->input_key(i, KEY_A, true);
	host->input_key(i, KEY_A, false);
	EXPECT(h, 0x1E, 0x9E);
	CU_ASSERT(hx_irq_raises(h, 1) >= irqs + 2);
	host->input_key(i, KEY_UP, true);
	host->input_key(i, KEY_UP, false);
	EXPECT(h, 0xE0, 0x48, 0xE0, 0xC8);
	/* untranslated set 2 */
	ctr_write(h, 0x05);
	host->input_key(i, KEY_A, true);
	host->input_key(i, KEY_A, false);
	EXPECT(h, 0x1C, 0xF0, 0x1C);
	host->input_key(i, KEY_UP, false);
	EXPECT(h, 0xE0, 0xF0, 0x75);
	/* keys with no scan code, codes out of range: nothing */
	host->input_key(i, 0, true);
	host->input_key(i, 85, true);
	host->input_key(i, 100000, true);
	EXPECT_NONE(h);
	/* F5: scanning off; F4: on again */
	hx_outb(h, DATA, 0xF5);
	EXPECT(h, 0xFA);
	host->input_key(i, KEY_A, true);
	EXPECT_NONE(h);
	hx_outb(h, DATA, 0xF4);
	EXPECT(h, 0xFA);
	host->input_key(i, KEY_A, true);
	EXPECT(h, 0x1C);
	/* the keyboard port disabled in the command byte: held back */
	ctr_write(h, 0x15);
	host->input_key(i, KEY_A, false);
	CU_ASSERT_EQUAL(hx_inb(h, CMD) & STR_OBF, 0);
	ctr_write(h, 0x05);
	EXPECT(h, 0xF0, 0x1C);
	/* a stuck front end: the queue is bounded */
	for (int n = 0; n < 1000; n++)
		host->input_key(i, KEY_A, n & 1);
	uint8_t buf[64];
	CU_ASSERT(drain(h, buf, sizeof(buf), NULL) <= 17);
	hx_free(h);
}

static void test_mouse(void)
{
	const modvm_inst *inst;
	const struct modvm_host *host;
	struct hx *h = kbc_new(&inst, &host);
	modvm_inst *i = (modvm_inst *)inst;
	uint8_t b[64];
	bool aux;

#define AUX(v) do { hx_outb(h, CMD, 0xD4); hx_outb(h, DATA, (v)); } while (0)
	AUX(0xFF);
	CU_ASSERT_EQUAL(drain(h, b, sizeof(b), &aux), 3);
	CU_ASSERT(aux);
	CU_ASSERT(b[0] == 0xFA && b[1] == 0xAA && b[2] == 0x00);
	AUX(0xF2);
	EXPECT(h, 0xFA, 0x00);
	/* the IntelliMouse knock: sample rates 200, 100, 80 give id 3 */
	AUX(0xF3); AUX(200); AUX(0xF3); AUX(100); AUX(0xF3); AUX(80);
	EXPECT(h, 0xFA, 0xFA, 0xFA, 0xFA, 0xFA, 0xFA);
	AUX(0xF2);
	EXPECT(h, 0xFA, 0x03);
	AUX(0xE8); AUX(0x03);
	AUX(0xE9);
	EXPECT(h, 0xFA, 0xFA, 0xFA, 0x00, 0x03, 80);
	/* not streaming yet: motion is kept, nothing sent */
	host->input_pointer(i, 5, -3, 0, MODVM_INPUT_BTN_LEFT);
	EXPECT_NONE(h);
	ctr_write(h, 0x47);                     /* aux interrupt on, as Linux sets it */
	unsigned irqs = hx_irq_raises(h, 12);
	AUX(0xF4);
	EXPECT(h, 0xFA);
	host->input_pointer(i, 0, 0, 1, MODVM_INPUT_BTN_LEFT);
	/* y up is positive for PS/2; the wheel byte of a 4-byte packet */
	EXPECT(h, 0x09, 5, 3, 1);
	CU_ASSERT(hx_irq_raises(h, 12) >= irqs + 4);
	host->input_pointer(i, -2, 4, 0, 0);
	EXPECT(h, 0x38, 0xFE, 0xFC, 0);
	/* huge motion comes as several clamped packets, never overflows */
	host->input_pointer(i, 0x7FFFFFFF, -0x7FFFFFFF, 0x7FFFFFFF, 7);
	CU_ASSERT_EQUAL(drain(h, b, sizeof(b), NULL), 4);
	CU_ASSERT_EQUAL(b[0] & 0x0F, 0x0F);
	CU_ASSERT_EQUAL(b[1], 255);
	AUX(0x00);                              /* not a command */
	EXPECT(h, 0xFE);
	AUX(0xF5);
	EXPECT(h, 0xFA);
	/* the aux port disabled (A7h): bytes wait */
	hx_outb(h, CMD, 0xA7);
	AUX(0xF2);
	CU_ASSERT_EQUAL(hx_inb(h, CMD) & STR_OBF, 0);
	hx_outb(h, CMD, 0xA8);
	EXPECT(h, 0xFA, 0x03);
#undef AUX
	hx_free(h);
}

static void test_state_and_hostile(void)
{
	const modvm_inst *inst;
	const struct modvm_host *host;
	struct hx *a = kbc_new(&inst, &host), *b;
	modvm_inst *i = (modvm_inst *)inst;

	/* bytes queued behind a full output buffer travel with the state */
	host->input_key(i, KEY_A, true);
	host->input_key(i, KEY_A, false);
	host->input_key(i, KEY_UP, true);
	b = kbc_new(&inst, &host);
	CU_ASSERT_EQUAL_FATAL(hx_state_copy(a, b, "kbc"), 0);
	EXPECT(b, 0x1E, 0x9E, 0xE0, 0x48);
	/* a hostile snapshot: queue position and length beyond the queue,
	 * an unknown scan code set */
	CU_ASSERT_EQUAL(hx_state_poke(b, "kbc", "kbd.q.rd=200", "kbd.q.count=250",
				      "kbd.set=9", "mouse.q.count=99", NULL), 0);
	uint8_t buf[64];
	CU_ASSERT(drain(b, buf, sizeof(buf), NULL) <= 17);
	host->input_key((modvm_inst *)inst, KEY_A, true);
	CU_ASSERT(drain(b, buf, sizeof(buf), NULL) >= 1);
	/* a storm of every byte at both devices */
	for (unsigned v = 0; v < 256; v++) {
		hx_outb(b, DATA, (uint8_t)v);
		hx_outb(b, CMD, 0xD4);
		hx_outb(b, DATA, (uint8_t)v);
		(void)drain(b, buf, sizeof(buf), NULL);
	}
	hx_free(a);
	hx_free(b);
}

int main(void)
{
	static const struct test_case tests[] = {
		TEST(test_keyboard_commands),
		TEST(test_keys),
		TEST(test_mouse),
		TEST(test_state_and_hostile),
	};
	return RUN_TESTS("ps2", tests);
}
