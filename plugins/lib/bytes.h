/* Byte order of guest- and file-format fields: n-byte little-endian
 * (virtio, fw-cfg directory entries) and big-endian (qcow2, fw-cfg
 * selector data) integers at any alignment. n is 1 to 8. */
#ifndef MODVM_PLUGIN_LIB_BYTES_H
#define MODVM_PLUGIN_LIB_BYTES_H

#include <stdint.h>

static inline uint64_t le_get(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	while (n--)
		v = v << 8 | p[n];
	return v;
}

static inline void le_put(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

static inline uint64_t be_get(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static inline void be_put(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = n; i-- > 0; v >>= 8)
		p[i] = (uint8_t)v;
}

#endif
