/* Guest physical memory: memfd-backed RAM with the PC hole below 4 GiB. */
#include "memory.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

static void set_layout(struct vm_memory *m, uint64_t size)
{
	m->size = size;
	m->low_size = size < VM_PCI_HOLE_START ? size : VM_PCI_HOLE_START;
	m->high_size = size - m->low_size;
}

/* Map m->fd as guest RAM; on failure close it. MAP_NORESERVE: untouched
 * guest pages cost nothing. */
static int map_ram(struct vm_memory *m, uint64_t size, int share,
		   const char *what, char *err, size_t err_len)
{
	m->host = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       share | MAP_NORESERVE, m->fd, 0);
	if (m->host == MAP_FAILED) {
		m->host = NULL;
		snprintf(err, err_len, "cannot map %llu bytes of %s: %s",
			 (unsigned long long)size, what, strerror(errno));
		close(m->fd);
		m->fd = -1;
		return -1;
	}
	set_layout(m, size);
	return 0;
}

int vm_memory_init(struct vm_memory *m, uint64_t size, char *err,
		   size_t err_len)
{
	memset(m, 0, sizeof(*m));
	m->fd = -1;
	if (size == 0 || size % 4096) {
		snprintf(err, err_len,
			 "memory size %llu is not a positive multiple of 4 KiB",
			 (unsigned long long)size);
		return -1;
	}
	m->fd = memfd_create("modvm-ram", MFD_CLOEXEC);
	if (m->fd < 0) {
		snprintf(err, err_len, "memfd_create: %s", strerror(errno));
		return -1;
	}
	if (ftruncate(m->fd, (off_t)size) < 0) {
		snprintf(err, err_len, "cannot size guest RAM to %llu bytes: %s",
			 (unsigned long long)size, strerror(errno));
		goto fail;
	}
	return map_ram(m, size, MAP_SHARED, "guest RAM", err, err_len);
fail:
	close(m->fd);
	m->fd = -1;
	return -1;
}

int vm_memory_init_image(struct vm_memory *m, const char *path, uint64_t size,
			 char *err, size_t err_len)
{
	struct stat st;
	char why[256];

	memset(m, 0, sizeof(*m));
	m->fd = open_regular(path, O_RDONLY, why, sizeof(why));
	if (m->fd < 0) {
		snprintf(err, err_len, "%s: %s", path, why);
		return -1;
	}
	if (fstat(m->fd, &st) < 0 || (uint64_t)st.st_size != size || !size) {
		snprintf(err, err_len, "%s: memory image is %lld bytes, expected %llu",
			 path, (long long)st.st_size, (unsigned long long)size);
		goto fail;
	}
	/* Private: the guest's writes never reach the snapshot. */
	m->private_image = true;
	return map_ram(m, size, MAP_PRIVATE, path, err, err_len);
fail:
	close(m->fd);
	m->fd = -1;
	return -1;
}

void vm_memory_destroy(struct vm_memory *m)
{
	if (m->host)
		munmap(m->host, m->size);
	if (m->fd >= 0)
		close(m->fd);
	m->host = NULL;
	m->fd = -1;
}

int64_t vm_memory_offset(const struct vm_memory *m, uint64_t gpa)
{
	if (gpa < m->low_size)
		return (int64_t)gpa;
	if (gpa >= VM_4G && gpa - VM_4G < m->high_size)
		return (int64_t)(m->low_size + (gpa - VM_4G));
	return -1;
}

void *vm_memory_ptr(const struct vm_memory *m, uint64_t gpa, uint64_t len)
{
	/* Written to avoid overflow in gpa + len for hostile values. */
	if (gpa < m->low_size) {
		if (len > m->low_size - gpa)
			return NULL;
		return m->host + gpa;
	}
	if (gpa >= VM_4G && gpa - VM_4G < m->high_size) {
		uint64_t off = gpa - VM_4G;
		if (len > m->high_size - off)
			return NULL;
		return m->host + m->low_size + off;
	}
	return NULL;
}

int vm_memory_read(const struct vm_memory *m, uint64_t gpa, void *buf,
		   size_t len)
{
	void *p = vm_memory_ptr(m, gpa, len);
	if (!p)
		return -1;
	memcpy(buf, p, len);
	return 0;
}

int vm_memory_write(const struct vm_memory *m, uint64_t gpa, const void *buf,
		    size_t len)
{
	void *p = vm_memory_ptr(m, gpa, len);
	if (!p)
		return -1;
	memcpy(p, buf, len);
	return 0;
}
