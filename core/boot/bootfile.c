/* Reading kernel and initrd files for the loaders, straight into guest RAM
 * where possible, with messages that name the file and the problem.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "boot_priv.h"

int boot_error(char *err, size_t err_len, const char *fmt, ...)
{
	va_list ap;

	if (!err || !err_len)
		return -1;
	va_start(ap, fmt);
	vsnprintf(err, err_len, fmt, ap);
	va_end(ap);
	return -1;
}

uint64_t boot_mib_up(uint64_t bytes)
{
	return (bytes + (1ull << 20) - 1) >> 20;
}

uint8_t boot_checksum(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;

	while (len--)
		sum += *p++;
	return (uint8_t)-sum;
}

int boot_file_open(struct boot_file *f, const char *what, const char *path,
		   char *err, size_t err_len)
{
	struct stat st;

	f->what = what;
	f->path = path;
	f->size = 0;
	/* O_NONBLOCK: a FIFO must be refused below, not block the open */
	f->fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (f->fd < 0)
		return boot_error(err, err_len, "cannot open %s '%s': %s", what,
				  path, strerror(errno));
	if (fstat(f->fd, &st) < 0) {
		boot_error(err, err_len, "cannot stat %s '%s': %s", what,
			   path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		boot_error(err, err_len, "%s '%s' is not a regular file (%s)", what,
			   path, S_ISFIFO(st.st_mode) ? "a FIFO" : S_ISDIR(st.st_mode) ?
			   "a directory" : "a device or socket");
		goto fail;
	}
	if (st.st_size == 0) {
		boot_error(err, err_len, "%s '%s' is empty", what, path);
		goto fail;
	}
	f->size = (uint64_t)st.st_size;
	return 0;
fail:
	boot_file_close(f);
	return -1;
}

void boot_file_close(struct boot_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

int boot_file_read(const struct boot_file *f, uint64_t off, void *buf,
		   size_t len, char *err, size_t err_len)
{
	uint8_t *p = buf;
	size_t done = 0;

	if (off > f->size || len > f->size - off)
		return boot_error(err, err_len,
				  "%s '%s' is truncated: %zu bytes at offset %llu needed, the file has %llu bytes",
				  f->what, f->path, len,
				  (unsigned long long)off,
				  (unsigned long long)f->size);
	while (done < len) {
		ssize_t n = pread(f->fd, p + done, len - done,
				  (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return boot_error(err, err_len,
					  "cannot read %s '%s': %s", f->what,
					  f->path, strerror(errno));
		if (n == 0)
			return boot_error(err, err_len,
					  "%s '%s' shrank while being read",
					  f->what, f->path);
		done += (size_t)n;
	}
	return 0;
}

int boot_file_to_guest(const struct boot_file *f, uint64_t off, uint64_t len,
		       struct vm_memory *mem, uint64_t gpa, char *err,
		       size_t err_len)
{
	void *dst;

	if (len == 0)
		return 0;
	dst = vm_memory_ptr(mem, gpa, len);
	if (!dst)
		return boot_error(err, err_len,
				  "%s '%s': %llu bytes at 0x%llx are not all guest RAM",
				  f->what, f->path, (unsigned long long)len,
				  (unsigned long long)gpa);
	return boot_file_read(f, off, dst, (size_t)len, err, err_len);
}
