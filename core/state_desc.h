/* Declarative state: check a plugin's section descriptions, serialize the
 * described fields to a versioned, checksummed binary form, load it back
 * (refusing anything wrong before changing a byte), and render it as text.
 *
 * Binary form of one section (little-endian):
 *   "MVST" | u16 format (1) | u16 name length | name | u32 version |
 *   u32 payload length | payload | u32 CRC-32 of everything before it
 * The payload holds the fields in declaration order (those with since <=
 * version): integers at their width, arrays element by element, BYTES as
 * is, VBUF as u32 length then the bytes, STRUCT elements field by field.
 */
#ifndef MODVM_CORE_STATE_DESC_H
#define MODVM_CORE_STATE_DESC_H

#include <stddef.h>
#include <stdint.h>

#include <modvm/state.h>

#include "util.h"

#define STATE_MAGIC "MVST"
#define STATE_FORMAT 1

int state_check_section(const struct modvm_state_section *s, char *err,
			size_t len);
/* Append the section's binary form to out (calls pre_save). */
void state_save(const struct modvm_state_section *s, void *base,
		struct strbuf *out);
/* Load from buf[0..len). On success *used is the bytes consumed and
 * post_load has run. On failure nothing in base has changed. */
int state_load(const struct modvm_state_section *s, void *base,
	       const void *buf, size_t len, size_t *used, char *err,
	       size_t err_len);
/* Text rendering, one "name = value" line per field. */
void state_render(const struct modvm_state_section *s, const void *base,
		  struct strbuf *out);

#endif
