/* parallel-spp: host pass-through through ppdev. Only the SPP registers
 * are forwarded; the port is claimed for modvm's whole run so no host
 * driver (lp) interleaves its own cycles. */
#include "ppdev.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/parport.h>
#include <linux/ppdev.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

int ppdev_open(const char *path, char *err, size_t len)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		snprintf(err, len, "cannot open parallel port \"%s\": %s%s", path,
			 strerror(errno),
			 errno == ENOENT ? " (no such port: is the ppdev module loaded and the port present?)" : "");
		return -1;
	}
	if (ioctl(fd, PPCLAIM)) {
		snprintf(err, len, "cannot claim parallel port \"%s\": %s", path,
			 strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

void ppdev_close(int fd)
{
	ioctl(fd, PPRELEASE);
	close(fd);
}

void ppdev_write_data(int fd, uint8_t v)
{
	unsigned char b = v;

	ioctl(fd, PPWDATA, &b);
}

uint8_t ppdev_read_data(int fd)
{
	unsigned char b = 0xff;

	ioctl(fd, PPRDATA, &b);
	return b;
}

void ppdev_write_control(int fd, uint8_t ctrl, bool reverse)
{
	unsigned char c = ctrl & (PARPORT_CONTROL_STROBE | PARPORT_CONTROL_AUTOFD |
				  PARPORT_CONTROL_INIT | PARPORT_CONTROL_SELECT);
	int dir = reverse;

	ioctl(fd, PPDATADIR, &dir);
	ioctl(fd, PPWCONTROL, &c);
}

uint8_t ppdev_read_status(int fd)
{
	unsigned char s = 0xff;

	ioctl(fd, PPRSTATUS, &s);
	return s;
}

int ppdev_take_irqs(int fd)
{
	int count = 0;

	if (ioctl(fd, PPCLRIRQ, &count))
		return 0;
	return count;
}
