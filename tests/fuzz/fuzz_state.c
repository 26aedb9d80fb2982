/* Fuzz target: the state section loader (snapshot and migration streams
 * carry these) against the canonical vCPU state and a section using every
 * field kind. A load must either succeed or change nothing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpustate.h"
#include "state_desc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct sample {
	uint8_t a;
	uint16_t b[3];
	uint32_t vlen;
	uint8_t v[16];
	struct { uint64_t x; uint8_t y; } s[2];
	bool flag;
};

static const struct modvm_state_field elem[] = {
	{ .name = "x", .type = MODVM_FIELD_U64, .offset = 0 },
	{ .name = "y", .type = MODVM_FIELD_U8, .offset = 8 },
};
static const struct modvm_state_field fields[] = {
	MODVM_F_U8(struct sample, a),
	MODVM_F_U16A(struct sample, b, 3),
	MODVM_F_VBUF(struct sample, v, vlen),
	{ .name = "s", .type = MODVM_FIELD_STRUCT, .count = 2,
	  .offset = offsetof(struct sample, s), .stride = 16, .sub = elem, .nsub = 2 },
	MODVM_F_BOOL(struct sample, flag),
};
static const struct modvm_state_section sample_section = {
	.name = "sample", .version = 3, .min_version = 1,
	.fields = fields, .nfields = MODVM_COUNTOF(fields),
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct modvm_cpu_state cpu, cpu_before;
	struct sample s, before;
	char err[1024];
	size_t used;

	memset(&s, 0x11, sizeof(s));
	s.vlen = 0;
	before = s;
	if (state_load(&sample_section, &s, data, size, &used, err, sizeof(err)) &&
	    memcmp(&s, &before, sizeof(s)))
		abort(); /* a refused load changed the target */
	if (s.vlen > sizeof(s.v))
		abort();
	memset(&cpu, 0x22, sizeof(cpu));
	cpu_before = cpu;
	if (state_load(&cpu_state_section, &cpu, data, size, &used, err, sizeof(err)) &&
	    memcmp(&cpu, &cpu_before, sizeof(cpu)))
		abort();
	return 0;
}
