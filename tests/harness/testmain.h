/* One way to run a CUnit suite, shared by every test program: runs the
 * tests, prints CUnit's summary, and exits non-zero on any failure. */
#ifndef MODVM_TEST_TESTMAIN_H
#define MODVM_TEST_TESTMAIN_H

#include <CUnit/Basic.h>
#include <stdio.h>

struct test_case {
	const char *name;
	void (*fn)(void);
};

#define TEST(fn) { #fn, fn }

static inline int run_tests(const char *suite, const struct test_case *t,
			    size_t n)
{
	CU_pSuite s;
	unsigned failed, ran;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	s = CU_add_suite(suite, NULL, NULL);
	for (size_t i = 0; i < n; i++)
		CU_add_test(s, t[i].name, t[i].fn);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	ran = CU_get_number_of_tests_run();
	CU_cleanup_registry();
	if (ran == 0) {
		fprintf(stderr, "%s: no test ran\n", suite);
		return 1;
	}
	return failed ? 1 : 0;
}

#define RUN_TESTS(suite, cases) \
	run_tests(suite, cases, sizeof(cases) / sizeof((cases)[0]))

#endif
