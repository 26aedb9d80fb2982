/* Registry tests: good plugins load; each broken plugin is refused with a
 * message naming the file and the reason, and nothing crashes. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <modvm/device.h>

#include "registry.h"
#include "testmain.h"

#define TP MODVM_TEST_PLUGINS_DIR

static char err[1024];

static int load(struct registry *r, const char *path)
{
	err[0] = 0;
	return registry_load_file(r, path, err, sizeof(err));
}

static void test_good_plugins_load(void)
{
	struct registry r;

	registry_init(&r);
	registry_add_dir(&r, TP "/good");
	registry_scan(&r);
	CU_ASSERT_EQUAL(r.nrefused, 0);
	CU_ASSERT_PTR_NOT_NULL(registry_find(&r, "test-device"));
	CU_ASSERT_PTR_NOT_NULL(registry_find_kind(&r, "chardev-testsink", MODVM_KIND_CHARDEV));
	CU_ASSERT_PTR_NULL(registry_find_kind(&r, "test-device", MODVM_KIND_CHARDEV));
	CU_ASSERT_PTR_NULL(registry_find(&r, "no-such-plugin"));
	registry_free(&r);
}

static void test_no_descriptor(void)
{
	struct registry r;

	registry_init(&r);
	CU_ASSERT_EQUAL(load(&r, TP "/bad-nodesc/nodesc.so"), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "bad-nodesc/nodesc.so"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "no modvm_plugin_descriptor symbol"));
	CU_ASSERT_EQUAL(r.nrefused, 1);
	CU_ASSERT_EQUAL(r.n, 0);
	registry_free(&r);
}

static void test_abi_major_refused_without_running_code(void)
{
	struct registry r;
	char marker[] = "/tmp/modvm-ctor-XXXXXX";
	int fd = mkstemp(marker);

	close(fd);
	unlink(marker);
	setenv("MODVM_TEST_CTOR_MARKER", marker, 1);
	registry_init(&r);
	CU_ASSERT_EQUAL(load(&r, TP "/bad-abimajor/abimajor.so"), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "abimajor.so"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "ABI 99.0"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "major versions differ"));
	/* The plugin's constructor would have created the marker. */
	CU_ASSERT_NOT_EQUAL(access(marker, F_OK), 0);
	unsetenv("MODVM_TEST_CTOR_MARKER");
	registry_free(&r);
}

static void test_abi_minor_newer_refused(void)
{
	struct registry r;
	char want[64];

	registry_init(&r);
	CU_ASSERT_EQUAL(load(&r, TP "/bad-abiminor/abiminor.so"), -1);
	snprintf(want, sizeof(want), "ABI %d.%d, newer than this modvm's ABI %d.%d",
		 MODVM_ABI_MAJOR, MODVM_ABI_MINOR + 7, MODVM_ABI_MAJOR, MODVM_ABI_MINOR);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, want));
	registry_free(&r);
}

static void test_duplicate_names_both_paths(void)
{
	struct registry r;

	registry_init(&r);
	registry_add_dir(&r, TP "/dup1");
	registry_add_dir(&r, TP "/dup2");
	registry_scan(&r);
	CU_ASSERT_EQUAL(r.n, 1);
	CU_ASSERT_EQUAL_FATAL(r.nrefused, 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.refused[0].path, "dup2/dup-two.so"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.refused[0].reason, "dup1/dup-one.so"));
	CU_ASSERT_PTR_NOT_NULL(strstr(r.refused[0].reason, "\"dup-name\" is already taken"));
	registry_free(&r);
}

static void test_not_elf(void)
{
	struct registry r;

	registry_init(&r);
	CU_ASSERT_EQUAL(load(&r, TP "/bad-notelf/notelf.so"), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "notelf.so: not a shared object"));
	CU_ASSERT_EQUAL(load(&r, TP "/bad-exec/notshared.so"), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a shared object"));
	CU_ASSERT_EQUAL(load(&r, TP "/does-not-exist.so"), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot open"));
	registry_free(&r);
}

static void test_bad_schema(void)
{
	struct registry r;

	registry_init(&r);
	CU_ASSERT_EQUAL(load(&r, TP "/bad-badschema/badschema.so"), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "default of property \"irq\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "0..15"));
	registry_free(&r);
}

static void test_descriptor_checks(void)
{
	static const struct modvm_device_ops ops = { .size = sizeof(ops) };
	struct modvm_plugin_desc d = {
		.abi_major = MODVM_ABI_MAJOR, .abi_minor = MODVM_ABI_MINOR,
		.desc_size = sizeof(d), .kind = MODVM_KIND_DEVICE,
		.name = "ok-name", .version = "1.2.3", .description = "x",
		.ops = &ops,
	};

	CU_ASSERT_EQUAL(registry_check_desc(&d, err, sizeof(err)), 0);
	d.name = "Bad Name";
	CU_ASSERT_EQUAL(registry_check_desc(&d, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "not valid"));
	d.name = "ok-name";
	d.version = "1.2";
	CU_ASSERT_EQUAL(registry_check_desc(&d, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "MAJOR.MINOR.PATCH"));
	d.version = "1.2.3";
	d.kind = 77;
	CU_ASSERT_EQUAL(registry_check_desc(&d, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "unknown plugin kind 77"));
	d.kind = MODVM_KIND_DEVICE;
	d.ops = NULL;
	CU_ASSERT_EQUAL(registry_check_desc(&d, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "no ops"));
	d.ops = &ops;
	d.desc_size = 8;
	CU_ASSERT_EQUAL(registry_check_desc(&d, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "too small"));
}

static void test_scan_keeps_good_beside_bad(void)
{
	struct registry r;

	registry_init(&r);
	registry_add_dir(&r, TP "/good");
	registry_add_dir(&r, TP "/bad-nodesc");
	registry_add_dir(&r, TP "/bad-notelf");
	registry_add_dir(&r, TP "/missing-folder");
	registry_scan(&r);
	CU_ASSERT_PTR_NOT_NULL(registry_find(&r, "test-device"));
	CU_ASSERT_PTR_NOT_NULL(registry_find(&r, "test-engine"));
	CU_ASSERT_EQUAL(r.nrefused, 2);
	registry_free(&r);
}

int main(void)
{
	static const struct test_case cases[] = {
		TEST(test_good_plugins_load),
		TEST(test_no_descriptor),
		TEST(test_abi_major_refused_without_running_code),
		TEST(test_abi_minor_newer_refused),
		TEST(test_duplicate_names_both_paths),
		TEST(test_not_elf),
		TEST(test_bad_schema),
		TEST(test_descriptor_checks),
		TEST(test_scan_keeps_good_beside_bad),
	};
	return RUN_TESTS("registry", cases);
}
