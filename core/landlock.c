/* Where the sandbox lets modvm write: a Landlock rule set (Linux 5.13 and
 * later) that confines every write-type access (opening for writing,
 * creating, removing, renaming, truncating) to the places the VM writes
 * after set-up, collected by the core (sandbox_allow_writes). Reading
 * stays as the seccomp lists allow: a guest reset loads the boot image
 * again, the FUSE view serves snapshots, sanitizers read /proc. The rule
 * set holds for the calling thread and every thread it starts afterwards
 * (the control, FUSE, event-loop and vCPU threads); see docs/sandbox.md
 * for the threads that exist before. */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"

/* Access rights by Landlock ABI version (the kernel refuses bits it does
 * not know, so a rule set asks only for what this kernel has). */
#define W_V1 (LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_REMOVE_DIR | \
	      LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_CHAR | \
	      LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG | \
	      LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO | \
	      LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_SYM)
#define REFER_V2 (1ull << 13) /* LANDLOCK_ACCESS_FS_REFER */
#define TRUNCATE_V3 (1ull << 14) /* LANDLOCK_ACCESS_FS_TRUNCATE */

#define ALLOW_MAX 64
static struct {
	char *path;
	unsigned how;
} allow[ALLOW_MAX];
static size_t nallow;
static int applied_abi;

int sandbox_allow_writes(const char *path, unsigned how)
{
	if (!path || !*path)
		return 0;
	for (size_t i = 0; i < nallow; i++) {
		if (!strcmp(allow[i].path, path)) {
			allow[i].how |= how;
			return 0;
		}
	}
	if (nallow == ALLOW_MAX)
		return -1;
	allow[nallow].path = xstrdup(path);
	allow[nallow].how = how;
	nallow++;
	return 0;
}

void sandbox_allow_writes_in_parent(const char *path, unsigned how)
{
	char *d;
	char *slash;

	if (!path || !*path)
		return;
	d = xstrdup(path);
	slash = strrchr(d, '/');
	if (!slash)
		sandbox_allow_writes(".", how);
	else if (slash == d)
		sandbox_allow_writes("/", how);
	else {
		*slash = 0;
		sandbox_allow_writes(d, how);
	}
	free(d);
}

int sandbox_landlock_abi(void)
{
	return applied_abi;
}

static uint64_t rights_for(unsigned how, uint64_t handled)
{
	uint64_t r = 0;

	if (how & SANDBOX_W_TREE)
		r |= handled;
	if (how & SANDBOX_W_REMOVE)
		r |= LANDLOCK_ACCESS_FS_REMOVE_FILE;
	return r & handled;
}

int sandbox_landlock(char *err, size_t len)
{
	struct landlock_ruleset_attr attr = { 0 };
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0,
			   LANDLOCK_CREATE_RULESET_VERSION);
	int fd, r = -1;

	if (abi < 1)
		return 1; /* no Landlock in this kernel, or it is off */
	attr.handled_access_fs = W_V1 | (abi >= 2 ? REFER_V2 : 0) |
				 (abi >= 3 ? TRUNCATE_V3 : 0);
	fd = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0);
	if (fd < 0)
		return set_err(err, len, "sandbox: Landlock: cannot create a rule set: %s",
			       strerror(errno));
	for (size_t i = 0; i < nallow; i++) {
		struct landlock_path_beneath_attr pb = {
			.allowed_access = rights_for(allow[i].how, attr.handled_access_fs),
		};
		struct stat st;

		pb.parent_fd = open(allow[i].path, O_PATH | O_CLOEXEC);
		if (pb.parent_fd < 0)
			continue; /* not there (yet): nothing of it to allow */
		if (fstat(pb.parent_fd, &st) || !S_ISDIR(st.st_mode)) {
			close(pb.parent_fd);
			continue; /* the rights above are a folder's */
		}
		if (syscall(SYS_landlock_add_rule, fd, LANDLOCK_RULE_PATH_BENEATH, &pb, 0)) {
			set_err(err, len, "sandbox: Landlock: cannot allow writes under %s: %s",
				allow[i].path, strerror(errno));
			close(pb.parent_fd);
			goto out;
		}
		close(pb.parent_fd);
	}
	/* PR_SET_NO_NEW_PRIVS is already set (sandbox_apply) */
	if (syscall(SYS_landlock_restrict_self, fd, 0)) {
		set_err(err, len, "sandbox: Landlock: the kernel refused the rule set: %s",
			strerror(errno));
		goto out;
	}
	applied_abi = (int)abi;
	r = 0;
out:
	close(fd);
	return r;
}
