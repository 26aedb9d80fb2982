/* Is a host block device free to become a guest disk? Looks at the device,
 * the partitions of a whole disk and the disk of a partition in
 * /proc/self/mountinfo (by major:minor and by mount source, which catches
 * bind mounts and btrfs's anonymous device numbers), /proc/swaps and the
 * sysfs holders folders (device-mapper, LVM, md). See hostdev.h. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "hostdev.h"

#define MAX_DEVS 256

struct bdev {
	dev_t dev;
	char name[NAME_MAX + 1]; /* sysfs name (sda1, loop0p1), may be empty */
	const char *role;    /* "it", "its partition", "its disk" */
};

struct devset {
	struct bdev d[MAX_DEVS];
	unsigned n;
};

static void add_dev(struct devset *s, dev_t dev, const char *name,
		    const char *role)
{
	if (s->n >= MAX_DEVS ||
	    snprintf(s->d[s->n].name, sizeof(s->d[s->n].name), "%s", name) >=
		    (int)sizeof(s->d[s->n].name))
		return; /* no sysfs name is that long */
	s->d[s->n].dev = dev;
	s->d[s->n].role = role;
	s->n++;
}

static const struct bdev *find_dev(const struct devset *s, dev_t dev)
{
	for (unsigned i = 0; i < s->n; i++)
		if (s->d[i].dev == dev)
			return &s->d[i];
	return NULL;
}

/* "it" or "its partition sda1". */
static void who(const struct bdev *b, char *buf, size_t len)
{
	if (b->role[0] == 'i' && b->role[1] == 't' && !b->role[2])
		snprintf(buf, len, "it");
	else
		snprintf(buf, len, "%s %s", b->role, b->name);
}

/* Read a "major:minor" sysfs dev file. */
static int read_devno(const char *file, dev_t *dev)
{
	FILE *f = fopen(file, "re");
	unsigned ma, mi;
	int ok;

	if (!f)
		return -1;
	ok = fscanf(f, "%u:%u", &ma, &mi) == 2;
	fclose(f);
	if (!ok)
		return -1;
	*dev = makedev(ma, mi);
	return 0;
}

static bool exists(const char *fmt, const char *a, const char *b)
{
	char p[PATH_MAX];

	if (snprintf(p, sizeof(p), fmt, a, b) >= (int)sizeof(p))
		return false;
	return access(p, F_OK) == 0;
}

/* The partitions of whole disk `name`: the subfolders of /sys/block/<name>
 * that have a "partition" file. */
static void add_partitions(struct devset *s, const char *name)
{
	char p[PATH_MAX];
	struct dirent *e;
	DIR *dir;
	dev_t dev;

	if (snprintf(p, sizeof(p), "/sys/block/%s", name) >= (int)sizeof(p))
		return;
	dir = opendir(p);
	if (!dir)
		return;
	while ((e = readdir(dir))) {
		if (e->d_name[0] == '.' ||
		    !exists("/sys/block/%s/%s/partition", name, e->d_name))
			continue;
		if (snprintf(p, sizeof(p), "/sys/block/%s/%s/dev", name,
			     e->d_name) >= (int)sizeof(p))
			continue;
		if (!read_devno(p, &dev))
			add_dev(s, dev, e->d_name, "its partition");
	}
	closedir(dir);
}

/* The device, and its partitions or its disk, from /sys/dev/block. */
static void collect(struct devset *s, dev_t dev)
{
	char link[64], target[PATH_MAX], parent[PATH_MAX], p[PATH_MAX];
	const char *name, *pname;
	ssize_t n;
	dev_t pdev;

	snprintf(link, sizeof(link), "/sys/dev/block/%u:%u", major(dev), minor(dev));
	n = readlink(link, target, sizeof(target) - 1);
	if (n <= 0) {
		add_dev(s, dev, "", "it");  /* no sysfs: the device alone */
		return;
	}
	target[n] = 0;
	name = strrchr(target, '/') ? strrchr(target, '/') + 1 : target;
	add_dev(s, dev, name, "it");
	snprintf(p, sizeof(p), "%s/partition", link);
	if (access(p, F_OK)) {
		add_partitions(s, name);
		return;
	}
	/* A partition: .../block/<disk>/<part>. */
	snprintf(parent, sizeof(parent), "%.*s", (int)(name - target - 1), target);
	pname = strrchr(parent, '/') ? strrchr(parent, '/') + 1 : parent;
	snprintf(p, sizeof(p), "/sys/class/block/%.255s/dev", pname);
	if (!read_devno(p, &pdev))
		add_dev(s, pdev, pname, "its disk");
}

/* mountinfo and /proc/swaps escape blanks and backslashes as \ooo. */
static void unescape(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' &&
		    s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = 0;
}

/* The block device a path names, if it is one. */
static bool path_dev(const char *path, dev_t *dev)
{
	struct stat st;

	if (stat(path, &st) || !S_ISBLK(st.st_mode))
		return false;
	*dev = st.st_rdev;
	return true;
}

static const struct bdev *mount_match(const struct devset *s, unsigned ma,
				      unsigned mi, const char *line)
{
	const struct bdev *b = find_dev(s, makedev(ma, mi));
	const char *sep = strstr(line, " - ");
	char source[PATH_MAX];
	dev_t dev;

	if (b || !sep)
		return b;
	/* " - fstype source ...": a source under /dev names the device even
	 * when the st_dev the filesystem reports is anonymous (btrfs). */
	if (sscanf(sep + 3, "%*s %4095s", source) != 1 ||
	    strncmp(source, "/dev/", 5))
		return NULL;
	unescape(source);
	return path_dev(source, &dev) ? find_dev(s, dev) : NULL;
}

static int check_mounts(const struct devset *s, const char *path, char *err,
			size_t errlen)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[8192], mnt[4096], w[128];
	unsigned ma, mi;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		const struct bdev *b;

		if (sscanf(line, "%*d %*d %u:%u %*s %4095s", &ma, &mi, mnt) != 3)
			continue;
		b = mount_match(s, ma, mi, line);
		if (!b)
			continue;
		fclose(f);
		unescape(mnt);
		who(b, w, sizeof(w));
		snprintf(err, errlen, "%s is in use by the host: %s is mounted on %s; "
			 "unmount it first (umount %s)", path, w, mnt, mnt);
		return -EBUSY;
	}
	fclose(f);
	return 0;
}

static int check_swaps(const struct devset *s, const char *path, char *err,
		       size_t errlen)
{
	FILE *f = fopen("/proc/swaps", "re");
	char line[8192], name[4096], w[128];
	const struct bdev *b;
	dev_t dev;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%4095s", name) != 1 || name[0] != '/')
			continue;
		unescape(name);
		if (!path_dev(name, &dev) || !(b = find_dev(s, dev)))
			continue;
		fclose(f);
		who(b, w, sizeof(w));
		snprintf(err, errlen, "%s is in use by the host: %s is active swap; "
			 "run swapoff %s first", path, w, name);
		return -EBUSY;
	}
	fclose(f);
	return 0;
}

/* The friendly name of a holder: device-mapper names (vg-lv), else dm-0,
 * md127. */
static void holder_name(const char *h, char *buf, size_t len)
{
	char p[PATH_MAX];
	FILE *f;

	snprintf(p, sizeof(p), "/sys/class/block/%s/dm/name", h);
	f = fopen(p, "re");
	if (f && fgets(buf, (int)len, f)) {
		buf[strcspn(buf, "\n")] = 0;
		fclose(f);
		return;
	}
	if (f)
		fclose(f);
	snprintf(buf, len, "%s", h);
}

static int check_holders(const struct devset *s, const char *path, char *err,
			 size_t errlen)
{
	char p[PATH_MAX], hn[NAME_MAX + 1], w[NAME_MAX + 32];

	for (unsigned i = 0; i < s->n; i++) {
		struct dirent *e;
		DIR *dir;

		if (!s->d[i].name[0])
			continue;
		snprintf(p, sizeof(p), "/sys/class/block/%s/holders", s->d[i].name);
		dir = opendir(p);
		if (!dir)
			continue;
		while ((e = readdir(dir)) && e->d_name[0] == '.')
			;
		if (e) {
			holder_name(e->d_name, hn, sizeof(hn));
			who(&s->d[i], w, sizeof(w));
			snprintf(err, errlen, "%s is in use by the host: %s is held by "
				 "%s (device-mapper, LVM or md RAID); deactivate "
				 "that first (dmsetup remove, vgchange -an, mdadm --stop)",
				 path, w, hn);
		}
		closedir(dir);
		if (e)
			return -EBUSY;
	}
	return 0;
}

int hostdev_check_unused(const char *path, char *err, size_t errlen)
{
	struct devset *set;
	dev_t dev;
	int rc;

	if (err && errlen)
		err[0] = 0;
	if (!path || !path_dev(path, &dev))
		return 0;
	set = calloc(1, sizeof(*set));   /* 20 KiB: not on a thread's stack */
	if (!set) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -ENOMEM;
	}
	collect(set, dev);
	rc = check_mounts(set, path, err, errlen);
	if (!rc)
		rc = check_swaps(set, path, err, errlen);
	if (!rc)
		rc = check_holders(set, path, err, errlen);
	free(set);
	return rc;
}
