/* Core helpers: CRC-32C against its published check values, and the
 * regular-file guard that keeps a FIFO from blocking a read. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testmain.h"
#include "util.h"

static void test_crc32c_check_values(void)
{
	static const uint8_t zeros[32], ones[32] = {
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	};

	/* the catalogue check value, and RFC 3720 B.4's vectors */
	CU_ASSERT_EQUAL(crc32c(0, "123456789", 9), 0xe3069283u);
	CU_ASSERT_EQUAL(crc32c(0, zeros, sizeof(zeros)), 0x8a9136aau);
	CU_ASSERT_EQUAL(crc32c(0, ones, sizeof(ones)), 0x62a8ab43u);
	CU_ASSERT_EQUAL(crc32c(0, "", 0), 0);
	/* in pieces as in one go */
	CU_ASSERT_EQUAL(crc32c(crc32c(0, "1234", 4), "56789", 5), 0xe3069283u);
}

static void test_read_file_refuses_fifo(void)
{
	char dir[] = "/tmp/modvm-util.XXXXXX", path[64], why[256];
	size_t n;

	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/fifo", dir);
	CU_ASSERT_EQUAL_FATAL(mkfifo(path, 0600), 0);
	CU_ASSERT_PTR_NULL(read_file(path, 1024, &n, why, sizeof(why)));
	CU_ASSERT_STRING_EQUAL(why, "not a regular file (a FIFO)");
	CU_ASSERT_EQUAL(open_regular(dir, O_RDONLY, why, sizeof(why)), -1);
	CU_ASSERT_STRING_EQUAL(why, "not a regular file (a directory)");
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	static const struct test_case cases[] = {
		TEST(test_crc32c_check_values),
		TEST(test_read_file_refuses_fifo),
	};
	return RUN_TESTS("util", cases);
}
