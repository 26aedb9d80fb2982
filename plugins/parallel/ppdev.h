/* parallel-spp: the host's parallel port through Linux ppdev
 * (/dev/parportN), register by register. */
#ifndef MODVM_PARALLEL_PPDEV_H
#define MODVM_PARALLEL_PPDEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Open and claim the port. Returns the fd, or -1 with err filled. */
int ppdev_open(const char *path, char *err, size_t len);
void ppdev_close(int fd);
void ppdev_write_data(int fd, uint8_t v);
uint8_t ppdev_read_data(int fd);
/* STROBE, AUTOFD, INIT, SELECT_IN as the guest wrote them (register
 * polarity); reverse selects the data direction (control bit 5). */
void ppdev_write_control(int fd, uint8_t ctrl, bool reverse);
uint8_t ppdev_read_status(int fd);
/* Interrupts the port saw since the last call (0 if none). */
int ppdev_take_irqs(int fd);

#endif
