/* Fuzz target: the live migration stream as the destination reads it
 * (core/migstream.c), into a 16-page RAM with two devices and one vCPU.
 * Every page number and index must be checked before use: ASan catches
 * a write outside the RAM or a state slot. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "migstream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NPAGES 16

struct input {
	const uint8_t *p;
	size_t n, pos;
};

static uint8_t ram[NPAGES * MIG_PAGE];

static int in_read(void *o, void *buf, size_t n)
{
	struct input *in = o;

	if (n > in->n - in->pos)
		return -1;
	memcpy(buf, in->p + in->pos, n);
	in->pos += n;
	return 0;
}

static int out_write(void *o, const void *buf, size_t n)
{
	(void)o;
	(void)buf;
	(void)n;
	return 0;
}

static int hello(void *o, const char *json, char *why, size_t len)
{
	(void)o;
	(void)why;
	(void)len;
	return json[0] == '{' ? 0 : -1;
}

static void pages(void *o, const uint64_t *page, size_t n, const uint8_t *d)
{
	(void)o;
	for (size_t i = 0; i < n; i++)
		memcpy(ram + page[i] * MIG_PAGE, d + i * MIG_PAGE, MIG_PAGE);
}

static void zero(void *o, uint64_t first, uint64_t count)
{
	(void)o;
	memset(ram + first * MIG_PAGE, 0, count * MIG_PAGE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size, 0 };
	struct mig_io io = { in_read, out_write, &in };
	struct mig_sink s = { .npages = NPAGES, .ndevices = 2, .ncpus = 1,
			      .hello = hello, .pages = pages, .zero = zero };
	struct mig_received r;
	char err[512];

	mig_received_init(&r, &s);
	mig_receive(&io, &s, &r, err, sizeof(err));
	mig_received_free(&r, &s);
	return 0;
}
