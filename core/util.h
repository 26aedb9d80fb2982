/* Small helpers shared by the core: error formatting, allocation that
 * cannot fail silently, string lists. */
#ifndef MODVM_CORE_UTIL_H
#define MODVM_CORE_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A plugin's size-prefixed ops table of C type `type` reaches `field`:
 * for fields appended after the ABI's x.0 table (the registry guarantees
 * the x.0 table). */
#define OPS_HAS(ops, type, field) \
	((ops)->size >= offsetof(type, field) + sizeof((ops)->field))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define ERR_LEN 1024

/* snprintf into err if err is not NULL; returns -1 so callers can
 * `return set_err(...)`. */
int set_err(char *err, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Abort with a message on allocation failure: the core treats running out
 * of host memory as fatal, as glib does. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Growable string for building messages and text renderings. */
struct strbuf {
	char *s;
	size_t len, cap;
};
void sb_init(struct strbuf *b);
void sb_printf(struct strbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void sb_append(struct strbuf *b, const void *data, size_t n);
char *sb_steal(struct strbuf *b);
void sb_free(struct strbuf *b);

/* Parse "512M", "2G", "4096", "0x1000": K, M, G, T (powers of 1024), with
 * an optional trailing "B"/"iB". Returns 0 or -1 (not a size, overflow). */
int parse_size(const char *s, uint64_t *out);
/* Format a size as the largest exact unit: "512M", "1536K", "7". */
void format_size(uint64_t v, char *buf, size_t len);

bool name_is_valid(const char *s); /* [a-z0-9][a-z0-9_-]* */

/* CRC-32C (Castagnoli, reflected, as iSCSI and ext4): start with crc = 0.
 * Snapshot manifests use it for files whose content embeds zlib CRC-32s
 * (state sections), where a CRC-32 of the whole would be a constant. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t n);

/* What a file of this mode is, for messages: "a FIFO", "a directory". */
const char *file_kind(unsigned mode);
/* Open path (flags: O_RDONLY or O_RDWR, O_CLOEXEC is added) only if it is a
 * regular file: O_NONBLOCK keeps a FIFO from blocking the open forever, and
 * is cleared again. -1 with why set ("not a regular file (a FIFO)", or
 * strerror) and errno kept. */
int open_regular(const char *path, int flags, char *why, size_t len);
/* Read a whole regular file of at most max bytes, NUL-terminated (*len
 * excludes the NUL). NULL with why set (without the path) otherwise. */
char *read_file(const char *path, size_t max, size_t *len, char *why,
		size_t why_len);

#endif
