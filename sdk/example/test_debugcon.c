/* example-debugcon through modvm's device test harness as installed with
 * the SDK (pkg-config modvm-harness): the harness plays the CPU, no guest
 * runs. Built and run by `make check`. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <harness.h>
#include <testmain.h>

static char out[64];

/* A machine with the console on port 0xE9, writing to the file `out` or
 * to the null backend. */
static struct hx *machine_with_debugcon(bool to_file)
{
	struct hx *h = hx_new(0);
	int r = to_file ? hx_add(h, "example-debugcon", "dbg", "backend=file",
				 hx_prop("path", out), NULL)
			: hx_add(h, "example-debugcon", "dbg", "backend=null", NULL);

	CU_ASSERT_EQUAL_FATAL(r, 0);
	return h;
}

static void test_bytes_reach_the_backend(void)
{
	struct hx *h = machine_with_debugcon(true);
	char buf[16] = "";
	FILE *f;

	CU_ASSERT_EQUAL(hx_inb(h, 0xe9), 0xe9); /* how a guest detects it */
	hx_outb(h, 0xe9, 'o');
	hx_outb(h, 0xe9, 'k');
	hx_free(h);
	f = fopen(out, "r");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_PTR_NOT_NULL(fgets(buf, sizeof(buf), f));
	fclose(f);
	CU_ASSERT_STRING_EQUAL(buf, "ok");
}

static void test_port_conflict_is_refused(void)
{
	struct hx *h = hx_new(0);

	CU_ASSERT_EQUAL(hx_add(h, "example-debugcon", "a", "backend=null",
			       "port=0x402", NULL), 0);
	CU_ASSERT_EQUAL(hx_inb(h, 0x402), 0xe9);
	CU_ASSERT_EQUAL(hx_add(h, "example-debugcon", "b", "backend=null",
			       "port=0x402", NULL), -1);
	CU_ASSERT_NOT_EQUAL(hx_error(h)[0], 0);
	hx_free(h);
}

static void test_count_survives_a_snapshot(void)
{
	struct hx *a = machine_with_debugcon(false);
	struct hx *b = machine_with_debugcon(false);
	size_t len, len2;
	void *st, *st2;

	for (int i = 0; i < 3; i++)
		hx_outb(a, 0xe9, 'x');
	st = hx_state_save(a, "dbg", &len);
	CU_ASSERT_EQUAL_FATAL(hx_state_load(b, "dbg", st, len), 0);
	st2 = hx_state_save(b, "dbg", &len2);
	CU_ASSERT_TRUE(len2 == len && !memcmp(st, st2, len));
	free(st2);
	hx_reset(b); /* the count starts again */
	st2 = hx_state_save(b, "dbg", &len2);
	CU_ASSERT_TRUE(len2 == len && memcmp(st, st2, len));
	free(st2);
	/* a damaged stream is refused */
	CU_ASSERT_EQUAL(hx_state_load(b, "dbg", st, len - 1), -1);
	free(st);
	hx_free(a);
	hx_free(b);
}

int main(void)
{
	static const struct test_case tests[] = {
		TEST(test_bytes_reach_the_backend),
		TEST(test_port_conflict_is_refused),
		TEST(test_count_survives_a_snapshot),
	};
	int r;

	snprintf(out, sizeof(out), "/tmp/example-debugcon-%d.out", (int)getpid());
	r = RUN_TESTS("example-debugcon", tests);
	unlink(out);
	return r;
}
