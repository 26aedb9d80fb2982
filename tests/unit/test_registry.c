/* Registry tests: good plugins load; each broken plugin is refused with a
 * message naming the file and the reason, and nothing crashes. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <modvm/cpu.h>
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

/* A plugin of the previous major, 1.3 (tests/plugins/abiprev.c). */
static void test_abi_previous_major_refused(void)
{
	struct registry r;
	char want[160];

	registry_init(&r);
	CU_ASSERT_EQUAL(load(&r, TP "/bad-abi1/abi1-debugcon.so"), -1);
	snprintf(want, sizeof(want),
		 "built for plugin ABI 1.3, but this modvm has ABI %d.%d (major versions differ)",
		 MODVM_ABI_MAJOR, MODVM_ABI_MINOR);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, want));
	CU_ASSERT_EQUAL(r.n, 0);
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

static void *dummy_create(const struct modvm_host *h, modvm_inst *i)
{
	(void)h;
	(void)i;
	return NULL;
}

static int dummy_init(void *dev)
{
	(void)dev;
	return -1;
}

struct bound {
	struct modvm_dev dev;
	uint8_t small;
	uint16_t port;
	bool on;
	const char *name;
};

/* The mandatory callbacks and the bound-property checks. */
static void test_ops_checks(void)
{
	struct modvm_device_ops ops = { .size = sizeof(ops) };
	struct modvm_prop_desc props[] = {
		MODVM_PROP_INT(struct bound, port, "port", "0x3f8", 0, 0xffff, "p"),
		MODVM_PROP_BOOL(struct bound, on, "on", "true", "o"),
		MODVM_PROP_STRING(struct bound, name, "name", "x", "n"),
		MODVM_PROP_END
	};
	struct modvm_plugin_desc d = {
		.abi_major = MODVM_ABI_MAJOR, .abi_minor = MODVM_ABI_MINOR,
		.desc_size = sizeof(d), .kind = MODVM_KIND_DEVICE,
		.name = "ops-check", .version = "1.0.0", .description = "x",
		.ops = &ops, .props = props,
	};
	struct modvm_cpu_engine_ops eops = { .size = sizeof(eops) };

	CU_ASSERT_EQUAL(registry_check_desc(&d, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "ops.init and ops.create are both NULL"));
	ops.create = dummy_create;
	ops.init = dummy_init;
	CU_ASSERT_EQUAL(registry_check_desc(&d, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "both init and create"));
	ops.init = NULL;
	CU_ASSERT_EQUAL(registry_check_desc(&d, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "\"port\" is bound to a field, but the core allocates no instance"));
	ops.create = NULL;
	ops.init = dummy_init;
	ops.instance_size = 4;
	CU_ASSERT_EQUAL(registry_check_desc(&d, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "instance_size is 4"));
	ops.instance_size = sizeof(struct bound);
	CU_ASSERT_EQUAL(registry_check_desc(&d, err, sizeof(err)), 0);
	/* 0..0xffff does not fit a uint8_t */
	props[0] = (struct modvm_prop_desc)MODVM_PROP_INT(struct bound, small, "port",
							 "0x3f8", 0, 0xffff, "p");
	CU_ASSERT_EQUAL(registry_check_desc(&d, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "bound to a field of 1 bytes"));
	props[0].max = 255;
	props[0].def = "7";
	CU_ASSERT_EQUAL(registry_check_desc(&d, err, sizeof(err)), 0);
	ops.instance_size = offsetof(struct bound, name) + 4;
	CU_ASSERT_EQUAL(registry_check_desc(&d, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "bound past the end"));

	d.kind = MODVM_KIND_CPU_ENGINE;
	d.props = NULL;
	d.ops = &eops;
	CU_ASSERT_EQUAL(registry_check_desc(&d, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "ops.vm_create is NULL"));
}

static void test_descriptor_checks(void)
{
	static const struct modvm_device_ops ops = { .size = sizeof(ops),
						      .create = dummy_create };
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
		TEST(test_abi_previous_major_refused),
		TEST(test_abi_minor_newer_refused),
		TEST(test_duplicate_names_both_paths),
		TEST(test_not_elf),
		TEST(test_bad_schema),
		TEST(test_descriptor_checks),
		TEST(test_ops_checks),
		TEST(test_scan_keeps_good_beside_bad),
	};
	return RUN_TESTS("registry", cases);
}
