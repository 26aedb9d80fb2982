/* Host block devices as guest disks: refuse a device (or partition) the
 * host is using: mounted, active swap, or held by device-mapper/md.
 * Plain C with no modvm dependency, so any disk plugin can compile it in. */
#ifndef MODVM_DISK_HOSTDEV_H
#define MODVM_DISK_HOSTDEV_H

#include <stddef.h>

/* 0 when `path` is not a block device (or cannot be examined: the caller's
 * open reports that) or when the host does not use it, the partitions
 * under it (whole disk) or the disk it belongs to (partition). Otherwise
 * -EBUSY (or -errno) with a message in err naming the device, the user
 * (mount point, swap, holder) and what to do. */
int hostdev_check_unused(const char *path, char *err, size_t errlen);

#endif
