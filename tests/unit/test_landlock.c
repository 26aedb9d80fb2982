/* The sandbox's write confinement (core/landlock.c), in a child process so
 * the rules do not bind the test runner: writes under an allowed folder
 * work, writes, removals and renames elsewhere are refused, reads are not
 * confined. On a kernel without Landlock nothing may be applied and the
 * same writes must all still work. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox.h"
#include "testmain.h"

/* What the child saw, one bit per outcome. */
enum {
	IN_CREATE = 1 << 0,   /* created a file in the allowed folder */
	OUT_CREATE = 1 << 1,  /* created one outside */
	OUT_WRITE = 1 << 2,   /* opened an existing file outside for writing */
	OUT_REMOVE = 1 << 3,  /* removed one outside */
	OUT_RENAME = 1 << 4,  /* moved a file from inside to outside */
	OUT_READ = 1 << 5,    /* read a file outside */
	APPLIED = 1 << 6,     /* sandbox_landlock applied a rule set */
	NO_LANDLOCK = 1 << 7, /* it said this kernel has none */
};

static bool creates(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

static int child(const char *in, const char *out)
{
	char a[256], b[256], c[256];
	char err[256];
	int seen = 0, r, fd;

	if (sandbox_allow_writes(in, SANDBOX_W_TREE) ||
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return 255;
	r = sandbox_landlock(err, sizeof(err));
	if (r < 0)
		return 254;
	seen |= r == 0 ? APPLIED : NO_LANDLOCK;
	snprintf(a, sizeof(a), "%s/new", in);
	seen |= creates(a) ? IN_CREATE : 0;
	snprintf(b, sizeof(b), "%s/new", out);
	seen |= creates(b) ? OUT_CREATE : 0;
	snprintf(c, sizeof(c), "%s/old", out);
	fd = open(c, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		seen |= OUT_WRITE;
		close(fd);
	}
	fd = open(c, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		seen |= OUT_READ;
		close(fd);
	}
	snprintf(b, sizeof(b), "%s/moved", out);
	seen |= rename(a, b) == 0 ? OUT_RENAME : 0;
	seen |= unlink(c) == 0 ? OUT_REMOVE : 0;
	return seen;
}

static void test_writes_confined(void)
{
	char in[] = "/tmp/modvm-ll-in.XXXXXX", out[] = "/tmp/modvm-ll-out.XXXXXX";
	char path[300];
	int status, seen;
	pid_t pid;

	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(in));
	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(out));
	snprintf(path, sizeof(path), "%s/old", out);
	CU_ASSERT_TRUE_FATAL(creates(path));
	pid = fork();
	CU_ASSERT_TRUE_FATAL(pid >= 0);
	if (pid == 0)
		_exit(child(in, out));
	CU_ASSERT_EQUAL_FATAL(waitpid(pid, &status, 0), pid);
	CU_ASSERT_TRUE_FATAL(WIFEXITED(status));
	seen = WEXITSTATUS(status);
	CU_ASSERT_TRUE(seen < 254);
	CU_ASSERT_TRUE(seen & IN_CREATE);
	CU_ASSERT_TRUE(seen & OUT_READ);
	if (seen & APPLIED) {
		CU_ASSERT_FALSE(seen & OUT_CREATE);
		CU_ASSERT_FALSE(seen & OUT_WRITE);
		CU_ASSERT_FALSE(seen & OUT_RENAME);
		CU_ASSERT_FALSE(seen & OUT_REMOVE);
	} else {
		/* no Landlock here: nothing applied, nothing refused */
		CU_ASSERT_TRUE(seen & NO_LANDLOCK);
		CU_ASSERT_TRUE(seen & OUT_CREATE);
		CU_ASSERT_TRUE(seen & OUT_WRITE);
		CU_ASSERT_TRUE(seen & OUT_REMOVE);
	}
	printf("(Landlock %s) ", seen & APPLIED ? "applied" : "not in this kernel");
	/* clean up what either outcome left */
	snprintf(path, sizeof(path), "%s/new", in);
	unlink(path);
	snprintf(path, sizeof(path), "%s/new", out);
	unlink(path);
	snprintf(path, sizeof(path), "%s/moved", out);
	unlink(path);
	snprintf(path, sizeof(path), "%s/old", out);
	unlink(path);
	rmdir(in);
	rmdir(out);
}

int main(void)
{
	static const struct test_case cases[] = {
		TEST(test_writes_confined),
	};
	return RUN_TESTS("landlock", cases);
}
