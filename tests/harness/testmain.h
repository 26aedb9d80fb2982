/* One way to run a CUnit suite, shared by every test program: runs the
 * tests, prints CUnit's summary, and exits non-zero on any failure.
 * MODVM_TEST_CASE=NAME runs only the cases whose name contains NAME
 * (MODVM_TEST_CASE=mode2 build/tests/devices/test_pit); one that matches
 * nothing fails, so a typo is not a green run. */
#ifndef MODVM_TEST_TESTMAIN_H
#define MODVM_TEST_TESTMAIN_H

#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct test_case {
	const char *name;
	void (*fn)(void);
};

#define TEST(fn) { #fn, fn }

static inline int run_tests(const char *suite, const struct test_case *t,
			    size_t n)
{
	const char *only = getenv("MODVM_TEST_CASE");
	CU_pSuite s;
	unsigned failed, ran;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite(suite, NULL, NULL);
	for (size_t i = 0; i < n; i++)
		if (!only || !*only || strstr(t[i].name, only))
			CU_add_test(s, t[i].name, t[i].fn);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	ran = CU_get_number_of_tests_run();
	CU_cleanup_registry();
	if (ran == 0) {
		fprintf(stderr, "%s: no test ran%s%s\n", suite,
			only && *only ? " matching MODVM_TEST_CASE=" : "",
			only && *only ? only : "");
		return 1;
	}
	return failed ? 1 : 0;
}

#define RUN_TESTS(suite, cases) \
	run_tests(suite, cases, sizeof(cases) / sizeof((cases)[0]))

#endif
