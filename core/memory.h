/* Guest physical memory: one memfd, mapped once, laid out like a PC.
 *
 * RAM below 4 GiB ends at the PCI hole (3 GiB); the rest of the configured
 * size is placed from 4 GiB upwards. The memfd offset of a byte is its
 * position in that order, so a snapshot's memory image is the memfd itself.
 */
#ifndef MODVM_CORE_MEMORY_H
#define MODVM_CORE_MEMORY_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#define VM_PCI_HOLE_START 0xC0000000ull /* 3 GiB: MMIO from here to 4 GiB */
#define VM_4G 0x100000000ull

struct vm_memory {
	int fd;            /* the memfd (or the image file when resumed) */
	uint8_t *host;     /* mapping of the whole memfd */
	uint64_t size;     /* configured RAM */
	uint64_t low_size; /* RAM at [0, low_size) */
	uint64_t high_size;/* RAM at [4 GiB, 4 GiB + high_size) */
	bool private_image;/* fd is a snapshot image mapped copy-on-write */
};

/* Returns 0, or -1 with a message in err. */
int vm_memory_init(struct vm_memory *m, uint64_t size, char *err,
		   size_t err_len);
/* Guest RAM mapped copy-on-write from a snapshot's memory image: pages
 * are read from the file when the guest first touches them, and the file
 * never changes. The file must be exactly size bytes. */
int vm_memory_init_image(struct vm_memory *m, const char *path, uint64_t size,
			 char *err, size_t err_len);
void vm_memory_destroy(struct vm_memory *m);

/* Host pointer for [gpa, gpa+len) if it is entirely RAM in one piece. */
void *vm_memory_ptr(const struct vm_memory *m, uint64_t gpa, uint64_t len);
/* Offset in the memfd of gpa, or -1 if gpa is not RAM. */
int64_t vm_memory_offset(const struct vm_memory *m, uint64_t gpa);
int vm_memory_read(const struct vm_memory *m, uint64_t gpa, void *buf,
		   size_t len);
int vm_memory_write(const struct vm_memory *m, uint64_t gpa, const void *buf,
		    size_t len);

#endif
