/* Config tests: a valid file resolves every property; every kind of
 * mistake is refused with file:line, the plugin and property named, and
 * the allowed values listed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "machine.h"
#include "testmain.h"

#define TP MODVM_TEST_PLUGINS_DIR

static struct registry reg;
static char err[2048];
static char path[64];

static const char *write_cfg(const char *text)
{
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/modvm-cfg-%d.cfg", (int)getpid());
	f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	return path;
}

/* Load and validate; returns 0 or -1 with err set. */
static int check(const char *text, struct vm_config *c)
{
	err[0] = 0;
	if (config_load(write_cfg(text), c, err, sizeof(err)))
		return -1;
	return config_validate(c, &reg, err, sizeof(err));
}

static int check_free(const char *text)
{
	struct vm_config c;
	int r = check(text, &c);

	config_free(&c);
	return r;
}

#define HEAD "vm: {\n name = \"t\"; machine = \"none\";\n memory = \"64M\";\n cpu = { engine = \"test-engine\"; };\n"

static bool has(const char *needle)
{
	if (strstr(err, needle))
		return true;
	fprintf(stderr, "\n  expected \"%s\" in: %s\n", needle, err);
	return false;
}

static void test_valid_config_resolves_everything(void)
{
	struct vm_config c;
	const struct prop_value *v;

	CU_ASSERT_EQUAL_FATAL(check(HEAD
		" devices = ( { plugin = \"test-device\"; id = \"d0\"; port = 0x520;\n"
		"   buffer = \"8K\"; mode = \"slow\"; verbose = true; label = \"x y\";\n"
		"   sink-limit = 10; } );\n};\n", &c), 0);
	CU_ASSERT_EQUAL(c.memory, 64ull << 20);
	CU_ASSERT_EQUAL(c.cpus, 1);
	CU_ASSERT_STRING_EQUAL(c.model, "baseline-v1");
	CU_ASSERT_EQUAL_FATAL(c.ndevices, 1);
	v = resolved_find(&c.devices[0].props, "port");
	CU_ASSERT_EQUAL(v->i, 0x520);
	CU_ASSERT_EQUAL(v->line, 5);
	CU_ASSERT_EQUAL(resolved_find(&c.devices[0].props, "buffer")->u, 8192);
	CU_ASSERT_EQUAL(resolved_find(&c.devices[0].props, "mode")->choice, 1);
	CU_ASSERT_TRUE(resolved_find(&c.devices[0].props, "verbose")->b);
	CU_ASSERT_STRING_EQUAL(resolved_find(&c.devices[0].props, "label")->s, "x y");
	/* defaults */
	CU_ASSERT_STRING_EQUAL(resolved_find(&c.devices[0].props, "backend")->s, "testsink");
	CU_ASSERT_EQUAL_FATAL(c.devices[0].nbackends, 1);
	CU_ASSERT_EQUAL(resolved_find(&c.devices[0].backends[0], "sink-limit")->i, 10);
	config_free(&c);
}

static void test_syntax_error_has_line(void)
{
	CU_ASSERT_EQUAL(check_free("vm: {\n name = \"t\"\n memory = ;\n};\n"), -1);
	CU_ASSERT_TRUE(has(":3: syntax error"));
}

static void test_missing_file(void)
{
	struct vm_config c;

	CU_ASSERT_EQUAL(config_load("/nonexistent/vm.cfg", &c, err, sizeof(err)), -1);
	CU_ASSERT_TRUE(has("/nonexistent/vm.cfg: cannot read the config file: No such file or directory"));
	config_free(&c);
}

static void test_include_refused(void)
{
	CU_ASSERT_EQUAL(check_free(HEAD "\n  @include \"/etc/passwd\"\n};\n"), -1);
	CU_ASSERT_TRUE(has(":6: @include is not supported"));
}

static void test_unknown_vm_setting(void)
{
	CU_ASSERT_EQUAL(check_free(HEAD " memroy = \"1G\";\n};\n"), -1);
	CU_ASSERT_TRUE(has(":5: unknown setting \"memroy\" in vm"));
	CU_ASSERT_TRUE(has("name, memory, cpus, cpu, boot, devices, machine"));
}

static void test_bad_memory(void)
{
	CU_ASSERT_EQUAL(check_free("vm: { memory = \"lots\"; cpu = { engine = \"test-engine\"; }; };\n"), -1);
	CU_ASSERT_TRUE(has(":1: memory \"lots\" is not a size"));
	CU_ASSERT_EQUAL(check_free("vm: { memory = \"100K\"; cpu = { engine = \"test-engine\"; }; };\n"), -1);
	CU_ASSERT_TRUE(has("1M to 1T"));
	CU_ASSERT_EQUAL(check_free("vm: { cpu = { engine = \"test-engine\"; }; };\n"), -1);
	CU_ASSERT_TRUE(has("no \"memory\" setting"));
}

static void test_cpus_range(void)
{
	CU_ASSERT_EQUAL(check_free("vm: { memory = \"1M\"; cpus = 0;\n cpu = { engine = \"test-engine\"; }; };\n"), -1);
	CU_ASSERT_TRUE(has(":1: cpus = 0 is out of range: expected 1..64"));
}

static void test_unknown_engine_lists_engines(void)
{
	CU_ASSERT_EQUAL(check_free("vm: { memory = \"1M\";\n cpu = { engine = \"cpu-zz\"; }; };\n"), -1);
	CU_ASSERT_TRUE(has(":2: no cpu engine \"cpu-zz\""));
	CU_ASSERT_TRUE(has("installed engines: test-engine"));
}

static void test_engine_properties(void)
{
	struct vm_config c;

	CU_ASSERT_EQUAL(check("vm: { memory = \"1M\"; machine = \"none\";\n cpu = { engine = \"test-engine\"; action = \"error\"; }; };\n", &c), 0);
	CU_ASSERT_EQUAL(resolved_find(&c.engine_props, "action")->choice, 1);
	config_free(&c);
	CU_ASSERT_EQUAL(check_free("vm: { memory = \"1M\";\n cpu = { engine = \"test-engine\";\n actoin = \"x\"; }; };\n"), -1);
	CU_ASSERT_TRUE(has(":3: cpu: unknown setting \"actoin\" for engine test-engine; valid: engine, model, port, message, action"));
	CU_ASSERT_EQUAL(check_free("vm: { memory = \"1M\";\n cpu = { engine = \"test-engine\"; model = \"pentium9\"; }; };\n"), -1);
	CU_ASSERT_TRUE(has(":2: cpu model \"pentium9\" is not known; allowed values: baseline-v1, baseline-v2, host"));
}

static void test_unknown_device_plugin(void)
{
	CU_ASSERT_EQUAL(check_free(HEAD " devices = (\n { plugin = \"serial-9999\"; } );\n};\n"), -1);
	CU_ASSERT_TRUE(has(":6: no device plugin \"serial-9999\"; device plugins: test-device"));
	CU_ASSERT_EQUAL(check_free(HEAD " devices = (\n { plugin = \"test-engine\"; } );\n};\n"), -1);
	CU_ASSERT_TRUE(has("is a cpu-engine plugin, not a device"));
}

static void test_wrong_type(void)
{
	CU_ASSERT_EQUAL(check_free(HEAD " devices = ( { plugin = \"test-device\";\n port = \"abc\"; } );\n};\n"), -1);
	CU_ASSERT_TRUE(has(":6: device \"test-device0\" (test-device): property \"port\": the value abc has the wrong type: expected integer in 0..65535"));
	CU_ASSERT_EQUAL(check_free(HEAD " devices = ( { plugin = \"test-device\";\n verbose = 1; } );\n};\n"), -1);
	CU_ASSERT_TRUE(has("property \"verbose\": the value 1 has the wrong type: expected bool"));
	CU_ASSERT_EQUAL(check_free(HEAD " devices = ( { plugin = \"test-device\";\n label = 5; } );\n};\n"), -1);
	CU_ASSERT_TRUE(has("expected string (in quotes)"));
}

static void test_out_of_range(void)
{
	CU_ASSERT_EQUAL(check_free(HEAD " devices = ( { plugin = \"test-device\";\n port = 70000; } );\n};\n"), -1);
	CU_ASSERT_TRUE(has(":6: device \"test-device0\" (test-device): property \"port\": value 70000 is out of range: expected integer in 0..65535"));
	CU_ASSERT_EQUAL(check_free(HEAD " devices = ( { plugin = \"test-device\";\n buffer = \"2G\"; } );\n};\n"), -1);
	CU_ASSERT_TRUE(has("value 2G is out of range: expected size in 512..1M"));
	CU_ASSERT_EQUAL(check_free(HEAD " devices = ( { plugin = \"test-device\";\n buffer = \"12Q\"; } );\n};\n"), -1);
	CU_ASSERT_TRUE(has("\"12Q\" is not a valid size"));
}

static void test_bad_enum_lists_choices(void)
{
	CU_ASSERT_EQUAL(check_free(HEAD " devices = ( { plugin = \"test-device\";\n mode = \"turbo\"; } );\n};\n"), -1);
	CU_ASSERT_TRUE(has(":6: device \"test-device0\" (test-device): property \"mode\": \"turbo\" is not allowed: one of: fast, slow, off"));
}

static void test_unknown_property_lists_valid(void)
{
	CU_ASSERT_EQUAL(check_free(HEAD " devices = ( { plugin = \"test-device\"; id = \"d\";\n prot = 1; } );\n};\n"), -1);
	CU_ASSERT_TRUE(has(":6: device \"d\" (test-device): unknown property \"prot\"; valid properties: port, verbose, buffer, label, mode, backend, fail; from backend chardev-testsink: sink-limit"));
}

/* Two chardev backends of one device: a shared bare key is refused with
 * its line; scoped keys resolve to each backend. */
static void test_two_backends_scope_their_keys(void)
{
	struct vm_config c;

	CU_ASSERT_EQUAL(check_free(HEAD " devices = ( { plugin = \"test-twochar\"; id = \"t\";\n"
				   " out = \"testsink\"; log = \"testsink\";\n sink-limit = 3; } );\n};\n"), -1);
	CU_ASSERT_TRUE(has(":7: device \"t\" (test-twochar) backend chardev-testsink: property \"sink-limit\" would go to both backend \"out\" (chardev-testsink) and backend \"log\" (chardev-testsink): write out-sink-limit and log-sink-limit"));
	CU_ASSERT_EQUAL_FATAL(check(HEAD " devices = ( { plugin = \"test-twochar\"; id = \"t\";\n"
				    " out = \"testsink\"; log = \"testsink\";\n out-sink-limit = 3; log-sink-limit = 4; } );\n};\n", &c), 0);
	CU_ASSERT_EQUAL_FATAL(c.devices[0].nbackends, 2);
	CU_ASSERT_STRING_EQUAL(c.devices[0].backends[0].backend_of, "out");
	CU_ASSERT_EQUAL(resolved_find(&c.devices[0].backends[0], "sink-limit")->i, 3);
	CU_ASSERT_EQUAL(resolved_find(&c.devices[0].backends[0], "sink-limit")->line, 7);
	CU_ASSERT_STRING_EQUAL(c.devices[0].backends[1].backend_of, "log");
	CU_ASSERT_EQUAL(resolved_find(&c.devices[0].backends[1], "sink-limit")->i, 4);
	config_free(&c);
	/* the list of valid names says how to scope them */
	CU_ASSERT_EQUAL(check_free(HEAD " devices = ( { plugin = \"test-twochar\"; id = \"t\";\n"
				   " out = \"testsink\"; log = \"testsink\"; lgo-sink-limit = 1; } );\n};\n"), -1);
	CU_ASSERT_TRUE(has("unknown property \"lgo-sink-limit\"; valid properties: port, out, log; from backend chardev-testsink (property out; also as out-NAME): sink-limit; from backend chardev-testsink (property log; also as log-NAME): sink-limit"));
}

static void test_unknown_backend_lists_backends(void)
{
	CU_ASSERT_EQUAL(check_free(HEAD " devices = ( { plugin = \"test-device\";\n backend = \"carrier-pigeon\"; } );\n};\n"), -1);
	CU_ASSERT_TRUE(has(":6: device \"test-device0\" (test-device): property \"backend\": no chardev backend \"carrier-pigeon\" (plugin chardev-carrier-pigeon); installed chardev backends: chardev-testsink"));
}

static void test_backend_property_checked(void)
{
	CU_ASSERT_EQUAL(check_free(HEAD " devices = ( { plugin = \"test-device\";\n sink-limit = 0; } );\n};\n"), -1);
	CU_ASSERT_TRUE(has(":6: device \"test-device0\" (test-device) backend chardev-testsink: property \"sink-limit\": value 0 is out of range"));
}

static void test_duplicate_ids(void)
{
	CU_ASSERT_EQUAL(check_free(HEAD " devices = ( { plugin = \"test-device\"; id = \"a\"; },\n"
				   " { plugin = \"test-device\"; id = \"a\"; port = 0x600; } );\n};\n"), -1);
	CU_ASSERT_TRUE(has(":6: device id \"a\" is already used by test-device at line 5"));
}

/* machine = "pc" adds the chipset unless the config lists a plugin itself. */
static void test_machine_pc_adds_chipset(void)
{
	struct vm_config c;

	err[0] = 0;
	CU_ASSERT_EQUAL_FATAL(config_load(write_cfg("vm: { memory = \"16M\";\n cpu = { engine = \"test-engine\"; };\n"
		" devices = ( { plugin = \"pit-8254\"; id = \"mypit\"; } ); };\n"), &c, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(c.machine, "pc");
	CU_ASSERT_EQUAL(c.ndevices, 8);
	CU_ASSERT_STRING_EQUAL(c.devices[0].plugin, "pic-8259");
	for (size_t i = 0; i < c.ndevices; i++)
		if (!strcmp(c.devices[i].plugin, "pit-8254"))
			CU_ASSERT_STRING_EQUAL(c.devices[i].id, "mypit");
	config_free(&c);
	CU_ASSERT_EQUAL(check_free("vm: { memory = \"16M\"; machine = \"amiga\";\n cpu = { engine = \"test-engine\"; }; };\n"), -1);
	CU_ASSERT_TRUE(has(":1: machine \"amiga\" is not known; allowed values: pc, none"));
	CU_ASSERT_EQUAL(check_free("vm: { memory = \"16M\";\n cpu = { engine = \"test-engine\"; };\n"
		" devices = ( { plugin = \"test-device\"; id = \"pic\"; } ); };\n"), -1);
	CU_ASSERT_TRUE(has(":3: device id \"pic\" is already used by pic-8259 at line 1"));
}

static void test_boot_section(void)
{
	struct vm_config c;

	CU_ASSERT_EQUAL(check(HEAD " boot = { kernel = \"k.bin\"; format = \"flat\"; load_address = 0x7c00; cmdline = \"a b\"; };\n};\n", &c), 0);
	CU_ASSERT_TRUE(c.has_boot);
	CU_ASSERT_EQUAL(c.boot.format, BOOT_FORMAT_FLAT);
	CU_ASSERT_EQUAL(c.boot.load_addr, 0x7c00);
	CU_ASSERT_STRING_EQUAL(c.boot.cmdline, "a b");
	config_free(&c);
	CU_ASSERT_EQUAL(check_free(HEAD " boot = {\n format = \"exe\"; kernel = \"k\"; };\n};\n"), -1);
	CU_ASSERT_TRUE(has(":6: format \"exe\" is not known; allowed values: auto, linux, multiboot, flat, firmware"));
	CU_ASSERT_EQUAL(check_free(HEAD " boot = { cmdline = \"x\"; };\n};\n"), -1);
	CU_ASSERT_TRUE(has(":5: boot has no kernel"));
	CU_ASSERT_EQUAL(check_free(HEAD " boot = { kernel = \"k\";\n kernal = \"x\"; };\n};\n"), -1);
	CU_ASSERT_TRUE(has(":6: unknown setting \"kernal\" in boot"));
}

/* format = "firmware": no kernel (and none allowed), a ROM device needed. */
static void test_boot_firmware(void)
{
	struct vm_config c;

	err[0] = 0;
	CU_ASSERT_EQUAL(config_load(write_cfg(HEAD " boot = { format = \"firmware\"; };\n"
					      " devices = ( { plugin = \"bios\"; } );\n};\n"),
				    &c, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(c.boot.format, BOOT_FORMAT_FIRMWARE);
	CU_ASSERT_PTR_NULL(c.boot.kernel);
	config_free(&c);
	CU_ASSERT_EQUAL(check_free(HEAD " boot = { format = \"firmware\"; };\n};\n"), -1);
	CU_ASSERT_TRUE(has(":5: boot: format = \"firmware\" needs a firmware ROM: add { plugin = \"bios\""));
	CU_ASSERT_EQUAL(check_free(HEAD " boot = { format = \"firmware\";\n kernel = \"k\"; };\n"
				   " devices = ( { plugin = \"bios\"; } );\n};\n"), -1);
	CU_ASSERT_TRUE(has(":6: format = \"firmware\" boots from the disks: drop kernel"));
}

static void test_create_failure_names_plugin_and_reason(void)
{
	struct vm_config c;
	struct machine m;

	CU_ASSERT_EQUAL_FATAL(check(HEAD " devices = ( { plugin = \"test-device\";\n fail = 1; } );\n};\n", &c), 0);
	CU_ASSERT_EQUAL_FATAL(machine_init(&m, c.memory, true, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(machine_add_config_devices(&m, &c, err, sizeof(err)), -1);
	CU_ASSERT_TRUE(has(":5: device \"test-device0\" (test-device, "));
	CU_ASSERT_TRUE(has("good/test-device.so) failed to start: asked to fail by property fail=1"));
	CU_ASSERT_EQUAL(m.ninsts, 0);
	CU_ASSERT_EQUAL(m.io.nall, 0);
	machine_destroy(&m);
	config_free(&c);
}

static void test_overlapping_ports_name_both_owners(void)
{
	struct vm_config c;
	struct machine m;

	CU_ASSERT_EQUAL_FATAL(check(HEAD " devices = ( { plugin = \"test-device\"; id = \"a\"; },\n"
				    " { plugin = \"test-device\"; id = \"b\"; } );\n};\n", &c), 0);
	CU_ASSERT_EQUAL_FATAL(machine_init(&m, c.memory, true, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(machine_add_config_devices(&m, &c, err, sizeof(err)), -1);
	CU_ASSERT_TRUE(has("ports 0x510-0x510 requested by test-device[b] overlaps ports 0x510-0x510 owned by test-device[a]"));
	CU_ASSERT_EQUAL(m.ninsts, 1);
	machine_destroy(&m);
	config_free(&c);
}

/* vm.sandbox (docs/sandbox.md): a boolean or a group; what it sets, and
 * the precedence --sandbox > config > MODVM_SANDBOX > default on. */
static void test_sandbox_setting(void)
{
	struct vm_config c;
	const char *why;
	bool on;

	CU_ASSERT_EQUAL_FATAL(check(HEAD "};\n", &c), 0);
	CU_ASSERT_EQUAL(c.sandbox.enable, SANDBOX_UNSET);
	unsetenv("MODVM_SANDBOX");
	CU_ASSERT_EQUAL(sandbox_decide(SANDBOX_UNSET, &c.sandbox, &on, &why, err, sizeof(err)), 0);
	CU_ASSERT_TRUE(on);
	CU_ASSERT_STRING_EQUAL(why, "the default");
	setenv("MODVM_SANDBOX", "off", 1);
	CU_ASSERT_EQUAL(sandbox_decide(SANDBOX_UNSET, &c.sandbox, &on, &why, err, sizeof(err)), 0);
	CU_ASSERT_FALSE(on);
	CU_ASSERT_STRING_EQUAL(why, "MODVM_SANDBOX");
	CU_ASSERT_EQUAL(sandbox_decide(SANDBOX_ON, &c.sandbox, &on, &why, err, sizeof(err)), 0);
	CU_ASSERT_TRUE(on);
	CU_ASSERT_STRING_EQUAL(why, "--sandbox");
	setenv("MODVM_SANDBOX", "sometimes", 1);
	CU_ASSERT_EQUAL(sandbox_decide(SANDBOX_UNSET, &c.sandbox, &on, &why, err, sizeof(err)), -1);
	CU_ASSERT_TRUE(has("MODVM_SANDBOX=sometimes: use on or off"));
	unsetenv("MODVM_SANDBOX");
	config_free(&c);

	CU_ASSERT_EQUAL_FATAL(check(HEAD " sandbox = false;\n};\n", &c), 0);
	CU_ASSERT_EQUAL(c.sandbox.enable, SANDBOX_OFF);
	setenv("MODVM_SANDBOX", "on", 1);
	CU_ASSERT_EQUAL(sandbox_decide(SANDBOX_UNSET, &c.sandbox, &on, &why, err, sizeof(err)), 0);
	CU_ASSERT_FALSE(on);
	CU_ASSERT_STRING_EQUAL(why, "the config");
	CU_ASSERT_EQUAL(sandbox_decide(SANDBOX_ON, &c.sandbox, &on, &why, err, sizeof(err)), 0);
	CU_ASSERT_TRUE(on);
	unsetenv("MODVM_SANDBOX");
	config_free(&c);

	CU_ASSERT_EQUAL_FATAL(check(HEAD " sandbox = { user = \"nobody\"; gid = 7;\n namespaces = true; };\n};\n", &c), 0);
	CU_ASSERT_EQUAL(c.sandbox.enable, SANDBOX_ON);
	CU_ASSERT_STRING_EQUAL(c.sandbox.user, "nobody");
	CU_ASSERT_FALSE(c.sandbox.has_uid);
	CU_ASSERT_TRUE(c.sandbox.has_gid);
	CU_ASSERT_EQUAL(c.sandbox.gid, 7);
	CU_ASSERT_TRUE(c.sandbox.namespaces);
	CU_ASSERT_EQUAL(c.sandbox.line, 5);
	config_free(&c);

	CU_ASSERT_EQUAL(check_free(HEAD " sandbox = 1;\n};\n"), -1);
	CU_ASSERT_TRUE(has(":5: sandbox must be true, false or a group"));
	CU_ASSERT_EQUAL(check_free(HEAD " sandbox = { enable = \"yes\"; };\n};\n"), -1);
	CU_ASSERT_TRUE(has(":5: \"enable\" must be true or false"));
	CU_ASSERT_EQUAL(check_free(HEAD " sandbox = { uid = 4294967295; };\n};\n"), -1);
	CU_ASSERT_TRUE(has(":5: sandbox uid must be a number from 0 to 4294967294"));
	CU_ASSERT_EQUAL(check_free(HEAD " sandbox = { enable = false; namespaces = true; };\n};\n"), -1);
	CU_ASSERT_TRUE(has("enable = false with user, uid, gid or namespaces"));
	CU_ASSERT_EQUAL(check_free(HEAD " sandbox = { user = \"\"; };\n};\n"), -1);
	CU_ASSERT_TRUE(has("user must not be empty"));
	CU_ASSERT_EQUAL(check_free(HEAD " sandbox = { jail = true; };\n};\n"), -1);
	CU_ASSERT_TRUE(has("jail"));
}

int main(void)
{
	static const struct test_case cases[] = {
		TEST(test_valid_config_resolves_everything),
		TEST(test_syntax_error_has_line),
		TEST(test_missing_file),
		TEST(test_include_refused),
		TEST(test_two_backends_scope_their_keys),
		TEST(test_unknown_vm_setting),
		TEST(test_bad_memory),
		TEST(test_cpus_range),
		TEST(test_unknown_engine_lists_engines),
		TEST(test_engine_properties),
		TEST(test_unknown_device_plugin),
		TEST(test_wrong_type),
		TEST(test_out_of_range),
		TEST(test_bad_enum_lists_choices),
		TEST(test_unknown_property_lists_valid),
		TEST(test_unknown_backend_lists_backends),
		TEST(test_backend_property_checked),
		TEST(test_duplicate_ids),
		TEST(test_machine_pc_adds_chipset),
		TEST(test_boot_section),
		TEST(test_boot_firmware),
		TEST(test_create_failure_names_plugin_and_reason),
		TEST(test_overlapping_ports_name_both_owners),
		TEST(test_sandbox_setting),
	};
	int r;

	registry_init(&reg);
	registry_add_dir(&reg, TP "/good");
	registry_scan(&reg);
	r = RUN_TESTS("config", cases);
	registry_free(&reg);
	unlink(path);
	return r;
}
