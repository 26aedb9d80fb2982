/* The per-VM config file: libconfig parsing and schema validation. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <libconfig.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpumodel.h"
#include "util.h"


static const char *const vm_keys[] = { "name", "memory", "cpus", "cpu",
				       "boot", "devices", "machine", "sandbox",
				       NULL };
static const char *const machine_types[] = { "pc", "none", NULL };

/* The devices of a PC that machine = "pc" adds, unless the config lists a
 * device of the same plugin itself (then its entry, with its properties, is
 * used instead). */
static const struct { const char *plugin, *id; } pc_devices[] = {
	{ "pic-8259", "pic" }, { "pit-8254", "pit" }, { "rtc-cmos", "rtc" },
	{ "ioapic", "ioapic" }, { "pci-host", "pci" }, { "acpi-pm", "pm" },
	{ "i8042", "kbc" }, { "sysctl-92", "sysctl" },
};
static const char *const cpu_keys[] = { "engine", "model", NULL };
static const char *const boot_keys[] = { "kernel", "initrd", "cmdline",
					 "format", "load_address", "tables",
					 NULL };
static const char *const sandbox_keys[] = { "enable", "user", "uid", "gid",
					    "namespaces", NULL };
static const char *const boot_formats[] = { "auto", "linux", "multiboot",
					    "flat", "firmware", NULL };
static const char *const boot_tables[] = { "acpi", "mptable", "none", NULL };

static char *join(const char *const *v)
{
	struct strbuf b;

	sb_init(&b);
	for (int i = 0; v[i]; i++)
		sb_printf(&b, "%s%s", i ? ", " : "", v[i]);
	return sb_steal(&b);
}

static int index_of(const char *const *v, const char *s)
{
	for (int i = 0; v[i]; i++)
		if (!strcmp(v[i], s))
			return i;
	return -1;
}

/* Refuse keys we do not know: a typo must not be silently ignored. */
static int check_keys(const config_setting_t *group, const char *const *keys,
		      const char *file, const char *what, char *err, size_t len)
{
	int n = config_setting_length(group);

	for (int i = 0; i < n; i++) {
		config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
		const char *name = config_setting_name(s);
		if (name && index_of(keys, name) < 0) {
			char *valid = join(keys);
			set_err(err, len, "%s:%d: unknown setting \"%s\" in %s; valid settings are: %s",
				file, config_setting_source_line(s), name, what, valid);
			free(valid);
			return -1;
		}
	}
	return 0;
}

static int get_string(const config_setting_t *g, const char *key,
		      const char *file, char **out, int *line, char *err,
		      size_t len)
{
	config_setting_t *s = config_setting_get_member(g, key);

	if (!s)
		return 0;
	if (line)
		*line = config_setting_source_line(s);
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return set_err(err, len, "%s:%d: \"%s\" must be a string (in quotes)",
			       file, config_setting_source_line(s), key);
	free(*out);
	*out = xstrdup(config_setting_get_string(s));
	return 0;
}

static int parse_memory(const config_setting_t *vm, struct vm_config *c,
			char *err, size_t len)
{
	config_setting_t *s = config_setting_get_member(vm, "memory");
	uint64_t v;
	int line;

	if (!s)
		return set_err(err, len, "%s:%d: vm has no \"memory\" setting (for example memory = \"512M\";)",
			       c->path, config_setting_source_line(vm));
	line = config_setting_source_line(s);
	if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		if (parse_size(config_setting_get_string(s), &v))
			return set_err(err, len, "%s:%d: memory \"%s\" is not a size: use a number with K, M or G, like \"512M\"",
				       c->path, line, config_setting_get_string(s));
	} else if (config_setting_type(s) == CONFIG_TYPE_INT ||
		   config_setting_type(s) == CONFIG_TYPE_INT64) {
		long long i = config_setting_get_int64(s);
		if (i < 0)
			return set_err(err, len, "%s:%d: memory must not be negative", c->path, line);
		v = (uint64_t)i;
	} else {
		return set_err(err, len, "%s:%d: memory must be a size like \"512M\"", c->path, line);
	}
	if (v < (1u << 20) || v > (1ull << 40) || v % 4096)
		return set_err(err, len, "%s:%d: memory %llu bytes is not allowed: use a multiple of 4K from 1M to 1T",
			       c->path, line, (unsigned long long)v);
	c->memory = v;
	return 0;
}

static int parse_cpus(const config_setting_t *vm, struct vm_config *c,
		      char *err, size_t len)
{
	config_setting_t *s = config_setting_get_member(vm, "cpus");

	c->cpus = 1;
	if (!s)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_INT)
		return set_err(err, len, "%s:%d: cpus must be an integer in 1..64",
			       c->path, config_setting_source_line(s));
	int n = config_setting_get_int(s);
	if (n < 1 || n > 64)
		return set_err(err, len, "%s:%d: cpus = %d is out of range: expected 1..64",
			       c->path, config_setting_source_line(s), n);
	c->cpus = (unsigned)n;
	return 0;
}

static int parse_enum(const config_setting_t *g, const char *key,
		      const char *const *choices, const char *file, int *out,
		      char *err, size_t len)
{
	char *v = NULL;
	int line = 0, i;

	if (get_string(g, key, file, &v, &line, err, len))
		return -1;
	if (!v)
		return 0;
	i = index_of(choices, v);
	if (i < 0) {
		char *valid = join(choices);
		set_err(err, len, "%s:%d: %s \"%s\" is not known; allowed values: %s",
			file, line, key, v, valid);
		free(valid);
		free(v);
		return -1;
	}
	free(v);
	*out = i;
	return 0;
}

static int parse_boot(const config_setting_t *vm, struct vm_config *c,
		      char *err, size_t len)
{
	config_setting_t *g = config_setting_get_member(vm, "boot");
	struct boot_config *b = &c->boot;
	int fmt = 0, tables = 0;
	char *s[3] = { NULL, NULL, NULL };

	b->format = BOOT_FORMAT_AUTO;
	b->tables = BOOT_TABLES_ACPI;
	b->load_addr = 0x7c00; /* flat images: where a boot sector runs */
	if (!g)
		return 0;
	if (!config_setting_is_group(g))
		return set_err(err, len, "%s:%d: boot must be a group: boot = { kernel = \"...\"; };",
			       c->path, config_setting_source_line(g));
	c->has_boot = true;
	c->boot_line = c->kernel_line = c->initrd_line = config_setting_source_line(g);
	if (check_keys(g, boot_keys, c->path, "boot", err, len) ||
	    get_string(g, "kernel", c->path, &s[0], &c->kernel_line, err, len) ||
	    get_string(g, "initrd", c->path, &s[1], &c->initrd_line, err, len) ||
	    get_string(g, "cmdline", c->path, &s[2], NULL, err, len) ||
	    parse_enum(g, "format", boot_formats, c->path, &fmt, err, len) ||
	    parse_enum(g, "tables", boot_tables, c->path, &tables, err, len))
		goto fail;
	b->kernel = s[0];
	b->initrd = s[1];
	b->cmdline = s[2];
	b->format = (enum boot_format)fmt;
	b->tables = (enum boot_tables)tables;
	config_setting_t *la = config_setting_get_member(g, "load_address");
	if (la) {
		int t = config_setting_type(la);
		if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
			return set_err(err, len, "%s:%d: load_address must be an integer such as 0x7c00",
				       c->path, config_setting_source_line(la));
		b->load_addr = (uint64_t)config_setting_get_int64(la);
	}
	/* A firmware boot starts at the reset vector: the ROM device boots
	 * whatever the disks hold. A kernel through the firmware (fw_cfg
	 * linuxboot) is not done yet. */
	if (b->format == BOOT_FORMAT_FIRMWARE && b->kernel)
		return set_err(err, len, "%s:%d: format = \"firmware\" boots from the disks: drop kernel (a kernel through the firmware is not supported yet), or use format = \"auto\" for a direct kernel boot",
			       c->path, c->kernel_line);
	if (!b->kernel && b->format != BOOT_FORMAT_FIRMWARE)
		return set_err(err, len, "%s:%d: boot has no kernel: add kernel = \"path\"; (or format = \"firmware\" to boot through a BIOS ROM device)",
			       c->path, config_setting_source_line(g));
	return 0;
fail:
	for (int i = 0; i < 3; i++)
		if (s[i] != b->kernel && s[i] != b->initrd && s[i] != b->cmdline)
			free(s[i]);
	return -1;
}

static void read_setting(config_setting_t *s, struct cfg_setting *out)
{
	char buf[64];

	memset(out, 0, sizeof(*out));
	out->name = xstrdup(config_setting_name(s));
	out->line = config_setting_source_line(s);
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_BOOL:
		out->type = CFG_BOOL;
		out->b = config_setting_get_bool(s);
		out->s = xstrdup(out->b ? "true" : "false");
		break;
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		out->type = CFG_INT;
		out->i = config_setting_get_int64(s);
		snprintf(buf, sizeof(buf), "%lld", (long long)out->i);
		out->s = xstrdup(buf);
		break;
	case CONFIG_TYPE_FLOAT:
		out->type = CFG_FLOAT;
		snprintf(buf, sizeof(buf), "%g", config_setting_get_float(s));
		out->s = xstrdup(buf);
		break;
	case CONFIG_TYPE_STRING:
		out->type = CFG_STRING;
		out->s = xstrdup(config_setting_get_string(s));
		break;
	default:
		out->type = CFG_OTHER;
		out->s = xstrdup("(group or list)");
	}
}

/* Device ids become file names (device-ID.state) and directory names (the
 * FUSE view's devices/ID): nothing that could climb out of a directory,
 * hide, or garble a terminal. */
#define DEVICE_ID_MAX 64

static bool device_id_is_valid(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > DEVICE_ID_MAX || id[0] == '.')
		return false;
	for (const char *p = id; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '.' && *p != '-')
			return false;
	return true;
}

/* The id as it can be printed: other bytes as \xNN, cut after the limit. */
static void show_id(const char *id, char *out, size_t len)
{
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)id; *p && o + 8 < len; p++) {
		if (p - (const unsigned char *)id >= DEVICE_ID_MAX) {
			o += (size_t)snprintf(out + o, len - o, "...");
			break;
		}
		if (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\')
			out[o++] = (char)*p;
		else
			o += (size_t)snprintf(out + o, len - o, "\\x%02x", *p);
	}
	out[o] = 0;
}

static int parse_device(config_setting_t *g, struct vm_config *c,
			struct cfg_device *d, unsigned index, char *err,
			size_t len)
{
	int n;

	d->line = config_setting_source_line(g);
	if (!config_setting_is_group(g))
		return set_err(err, len, "%s:%d: each device must be a group: { plugin = \"...\"; id = \"...\"; }",
			       c->path, d->line);
	if (get_string(g, "plugin", c->path, &d->plugin, NULL, err, len) ||
	    get_string(g, "id", c->path, &d->id, NULL, err, len))
		return -1;
	if (!d->plugin)
		return set_err(err, len, "%s:%d: device has no plugin = \"...\"; (run `modvm plugins` for the list)",
			       c->path, d->line);
	if (d->id && !device_id_is_valid(d->id)) {
		char shown[4 * DEVICE_ID_MAX + 8];
		show_id(d->id, shown, sizeof(shown));
		return set_err(err, len, "%s:%d: device id \"%s\" is not allowed: an id names the device's state file and FUSE directory, so it is 1 to %d of A-Z a-z 0-9 _ . - and does not start with '.'",
			       c->path, d->line, shown, DEVICE_ID_MAX);
	}
	if (!d->id)
		d->id = xasprintf("%s%u", d->plugin, index);
	n = config_setting_length(g);
	d->settings = xcalloc((size_t)n, sizeof(*d->settings));
	for (int i = 0; i < n; i++) {
		config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
		const char *name = config_setting_name(s);
		if (!strcmp(name, "plugin") || !strcmp(name, "id"))
			continue;
		read_setting(s, &d->settings[d->nsettings++]);
	}
	return 0;
}

static bool lists_plugin(const struct vm_config *c, const char *plugin)
{
	for (size_t i = 0; i < c->ndevices; i++)
		if (!strcmp(c->devices[i].plugin, plugin))
			return true;
	return false;
}

/* Put the machine type's devices before the config's own. */
static void add_machine_devices(struct vm_config *c, int line)
{
	struct cfg_device *all;
	size_t n = 0;

	if (strcmp(c->machine, "pc"))
		return;
	all = xcalloc(ARRAY_SIZE(pc_devices) + c->ndevices, sizeof(*all));
	for (size_t i = 0; i < ARRAY_SIZE(pc_devices); i++) {
		if (lists_plugin(c, pc_devices[i].plugin))
			continue;
		all[n].plugin = xstrdup(pc_devices[i].plugin);
		all[n].id = xstrdup(pc_devices[i].id);
		all[n].line = line;
		all[n].settings = xcalloc(1, sizeof(*all[n].settings));
		/* The tables give the IOAPIC the first ID after the CPUs'. */
		if (!strcmp(pc_devices[i].plugin, "ioapic")) {
			all[n].settings[0] = (struct cfg_setting){
				.name = xstrdup("apic-id"), .type = CFG_TEXT,
				.s = xasprintf("%u", c->cpus), .line = line };
			all[n].nsettings = 1;
		}
		n++;
	}
	if (c->ndevices)
		memcpy(all + n, c->devices, c->ndevices * sizeof(*all));
	free(c->devices);
	c->devices = all;
	c->ndevices += n;
}

static int parse_devices(const config_setting_t *vm, struct vm_config *c,
			 char *err, size_t len)
{
	config_setting_t *l = config_setting_get_member(vm, "devices");
	int n;

	if (!l)
		return 0;
	if (!config_setting_is_list(l) && !config_setting_is_array(l))
		return set_err(err, len, "%s:%d: devices must be a list: devices = ( { ... }, { ... } );",
			       c->path, config_setting_source_line(l));
	n = config_setting_length(l);
	c->devices = xcalloc((size_t)n, sizeof(*c->devices));
	for (int i = 0; i < n; i++) {
		c->ndevices++;
		if (parse_device(config_setting_get_elem(l, (unsigned)i), c,
				 &c->devices[i], (unsigned)i, err, len))
			return -1;
	}
	return 0;
}

/* Everything in the cpu group but engine and model belongs to the engine,
 * checked against its schema in config_validate. */
static void read_engine_settings(config_setting_t *cpu, struct vm_config *c)
{
	int n = config_setting_length(cpu);

	c->engine_settings = xcalloc((size_t)n, sizeof(*c->engine_settings));
	for (int i = 0; i < n; i++) {
		config_setting_t *s = config_setting_get_elem(cpu, (unsigned)i);
		if (index_of(cpu_keys, config_setting_name(s)) >= 0)
			continue;
		read_setting(s, &c->engine_settings[c->nengine_settings++]);
	}
}

static int get_bool(const config_setting_t *g, const char *key,
		    const char *file, bool *out, char *err, size_t len)
{
	config_setting_t *s = config_setting_get_member(g, key);

	if (!s)
		return 0;
	if (config_setting_type(s) != CONFIG_TYPE_BOOL)
		return set_err(err, len, "%s:%d: \"%s\" must be true or false",
			       file, config_setting_source_line(s), key);
	*out = config_setting_get_bool(s);
	return 1;
}

static int get_id(const config_setting_t *g, const char *key, const char *file,
		  bool *has, uint32_t *out, char *err, size_t len)
{
	config_setting_t *s = config_setting_get_member(g, key);
	long long v;

	if (!s)
		return 0;
	v = config_setting_get_int64(s);
	if ((config_setting_type(s) != CONFIG_TYPE_INT &&
	     config_setting_type(s) != CONFIG_TYPE_INT64) || v < 0 || v >= 0xffffffffll)
		return set_err(err, len, "%s:%d: sandbox %s must be a number from 0 to 4294967294",
			       file, config_setting_source_line(s), key);
	*has = true;
	*out = (uint32_t)v;
	return 0;
}

/* sandbox = true|false; or sandbox = { enable = ...; user = "..."; uid = N;
 * gid = N; namespaces = true; } (docs/sandbox.md). Naming a user, a uid,
 * a gid or namespaces without enable = false turns the sandbox on. */
static int parse_sandbox(const config_setting_t *vm, struct vm_config *c,
			 char *err, size_t len)
{
	config_setting_t *g = config_setting_get_member(vm, "sandbox");
	struct sandbox_config *sb = &c->sandbox;
	bool b = false;
	int r;

	if (!g)
		return 0;
	sb->line = config_setting_source_line(g);
	if (config_setting_type(g) == CONFIG_TYPE_BOOL) {
		sb->enable = config_setting_get_bool(g) ? SANDBOX_ON : SANDBOX_OFF;
		return 0;
	}
	if (!config_setting_is_group(g))
		return set_err(err, len, "%s:%d: sandbox must be true, false or a group like sandbox = { enable = true; user = \"nobody\"; };",
			       c->path, sb->line);
	if (check_keys(g, sandbox_keys, c->path, "sandbox", err, len) ||
	    get_string(g, "user", c->path, &sb->user, NULL, err, len) ||
	    get_id(g, "uid", c->path, &sb->has_uid, &sb->uid, err, len) ||
	    get_id(g, "gid", c->path, &sb->has_gid, &sb->gid, err, len))
		return -1;
	r = get_bool(g, "namespaces", c->path, &sb->namespaces, err, len);
	if (r < 0)
		return -1;
	if (sb->user || sb->has_uid || sb->has_gid || sb->namespaces)
		sb->enable = SANDBOX_ON;
	r = get_bool(g, "enable", c->path, &b, err, len);
	if (r < 0)
		return -1;
	if (r)
		sb->enable = b ? SANDBOX_ON : SANDBOX_OFF;
	if (sb->enable == SANDBOX_OFF && (sb->user || sb->has_uid || sb->has_gid || sb->namespaces))
		return set_err(err, len, "%s:%d: sandbox: enable = false with user, uid, gid or namespaces: they only apply inside the sandbox",
			       c->path, sb->line);
	if (sb->user && !*sb->user)
		return set_err(err, len, "%s:%d: sandbox: user must not be empty", c->path, sb->line);
	return 0;
}

static int parse_vm(config_t *cf, struct vm_config *c, char *err, size_t len)
{
	config_setting_t *vm = config_lookup(cf, "vm");
	config_setting_t *cpu;

	if (!vm || !config_setting_is_group(vm))
		return set_err(err, len, "%s:1: no \"vm\" group: the file must hold vm = { ... };",
			       c->path);
	if (check_keys(vm, vm_keys, c->path, "vm", err, len) ||
	    get_string(vm, "name", c->path, &c->name, NULL, err, len) ||
	    parse_memory(vm, c, err, len) || parse_cpus(vm, c, err, len))
		return -1;
	if (!c->name)
		c->name = xstrdup("vm");
	cpu = config_setting_get_member(vm, "cpu");
	if (!cpu || !config_setting_is_group(cpu))
		return set_err(err, len, "%s:%d: vm has no cpu group: add cpu = { engine = \"cpu-bt\"; };",
			       c->path, cpu ? config_setting_source_line(cpu) :
					      config_setting_source_line(vm));
	c->engine_line = c->model_line = config_setting_source_line(cpu);
	if (get_string(cpu, "engine", c->path, &c->engine, &c->engine_line, err, len) ||
	    get_string(cpu, "model", c->path, &c->model, &c->model_line, err, len))
		return -1;
	if (!c->engine)
		return set_err(err, len, "%s:%d: cpu has no engine = \"...\"; (cpu-bt, cpu-svm or cpu-vtx)",
			       c->path, c->engine_line);
	if (!c->model)
		c->model = xstrdup("baseline-v1");
	read_engine_settings(cpu, c);
	if (!cpu_model_find(c->model)) {
		const char *names[8] = { 0 };
		for (int i = 0; cpu_models[i] && i < 7; i++)
			names[i] = cpu_models[i]->name;
		char *valid = join(names);
		set_err(err, len, "%s:%d: cpu model \"%s\" is not known; allowed values: %s",
			c->path, c->model_line, c->model, valid);
		free(valid);
		return -1;
	}
	int machine = 0;
	config_setting_t *ms = config_setting_get_member(vm, "machine");
	if (parse_enum(vm, "machine", machine_types, c->path, &machine, err, len) ||
	    parse_boot(vm, c, err, len) || parse_devices(vm, c, err, len) ||
	    parse_sandbox(vm, c, err, len))
		return -1;
	c->machine = xstrdup(machine_types[machine]);
	add_machine_devices(c, ms ? config_setting_source_line(ms) :
				    config_setting_source_line(vm));
	for (size_t i = 0; i < c->ndevices; i++)
		for (size_t j = 0; j < i; j++)
			if (!strcmp(c->devices[i].id, c->devices[j].id))
				return set_err(err, len, "%s:%d: device id \"%s\" is already used by %s at line %d: ids must be unique",
					       c->path, c->devices[i].line, c->devices[i].id,
					       c->devices[j].plugin, c->devices[j].line);
	/* A firmware boot fetches its first instruction at FFFFFFF0: without
	 * a ROM device there, the CPU would run unclaimed MMIO's all-ones. */
	if (c->has_boot && c->boot.format == BOOT_FORMAT_FIRMWARE) {
		size_t i = 0;
		while (i < c->ndevices && strcmp(c->devices[i].plugin, "bios"))
			i++;
		if (i == c->ndevices)
			return set_err(err, len, "%s:%d: boot: format = \"firmware\" needs a firmware ROM: add { plugin = \"bios\"; id = \"bios\"; rom = \"/usr/share/seabios/bios-256k.bin\"; } to devices",
				       c->path, c->boot_line);
	}
	return 0;
}

/* Read the whole file; NULL with err set if it cannot be read. */
static char *read_text(const char *path, char *err, size_t len)
{
	size_t n;
	char why[256];
	char *text = read_file(path, 1u << 20, &n, why, sizeof(why));

	if (!text) {
		if (errno == EFBIG)
			set_err(err, len, "%s: config file is larger than 1 MiB", path);
		else
			set_err(err, len, "%s: cannot read the config file: %s", path, why);
		return NULL;
	}
	if (memchr(text, 0, n)) {
		free(text);
		set_err(err, len, "%s: not a text file (contains NUL bytes)", path);
		return NULL;
	}
	return text;
}

/* A config is one self-contained file: it travels inside snapshots to other
 * hosts, where an @include would read whatever that host has. */
static int refuse_includes(const char *path, const char *text, char *err,
			   size_t len)
{
	int line = 1;

	for (const char *p = text; *p; line++) {
		const char *q = p;
		while (*q == ' ' || *q == '\t')
			q++;
		if (!strncmp(q, "@include", 8))
			return set_err(err, len, "%s:%d: @include is not supported: a VM config must be one self-contained file",
				       path, line);
		p = strchr(p, '\n');
		if (!p)
			break;
		p++;
	}
	return 0;
}

int config_load(const char *path, struct vm_config *c, char *err, size_t len)
{
	config_t cf;
	int r;

	memset(c, 0, sizeof(*c));
	c->path = xstrdup(path);
	c->text = read_text(path, err, len);
	if (!c->text || refuse_includes(path, c->text, err, len))
		return -1;
	config_init(&cf);
	if (!config_read_string(&cf, c->text)) {
		set_err(err, len, "%s:%d: syntax error: %s", path,
			config_error_line(&cf), config_error_text(&cf));
		config_destroy(&cf);
		return -1;
	}
	r = parse_vm(&cf, c, err, len);
	config_destroy(&cf);
	return r;
}

/* ---- validation against the registry --------------------------------- */

static bool type_matches(const struct modvm_prop_desc *d,
			 const struct cfg_setting *s)
{
	if (s->type == CFG_TEXT)
		return true;
	switch (d->type) {
	case MODVM_PROP_BOOL: return s->type == CFG_BOOL;
	case MODVM_PROP_INT: return s->type == CFG_INT;
	case MODVM_PROP_SIZE: return s->type == CFG_INT || s->type == CFG_STRING;
	default: return s->type == CFG_STRING;
	}
}

static int convert(const struct modvm_prop_desc *d, const struct cfg_setting *s,
		   struct prop_value *v, char *err, size_t len)
{
	char type[512];

	if (!type_matches(d, s)) {
		prop_describe_type(d, type, sizeof(type));
		return set_err(err, len, "the value %s has the wrong type: expected %s%s",
			       s->s, type,
			       d->type >= MODVM_PROP_STRING ? " (in quotes)" : "");
	}
	if (propval_from_text(d, s->s, v, err, len))
		return -1;
	v->line = s->line;
	return 0;
}

int props_resolve(const struct plugin *p, const struct cfg_setting *settings,
		  size_t n, const char *file, const char *owner,
		  struct resolved_props *out, char *err, size_t len)
{
	const struct modvm_prop_desc *props = p->desc->props;
	char msg[ERR_LEN];
	size_t count = 0;

	while (props && props[count].name)
		count++;
	memset(out, 0, sizeof(*out));
	out->plugin = p;
	out->vals = xcalloc(count, sizeof(*out->vals));
	for (size_t i = 0; i < count; i++) {
		const struct modvm_prop_desc *d = &props[i];
		const struct cfg_setting *s = NULL;

		for (size_t k = 0; k < n; k++)
			if (!strcmp(settings[k].name, d->name))
				s = &settings[k];
		out->n++;
		if (s) {
			if (convert(d, s, &out->vals[i], msg, sizeof(msg))) {
				set_err(err, len, "%s:%d: %s: property \"%s\": %s",
					file, s->line, owner, d->name, msg);
				goto fail;
			}
		} else if (d->flags & MODVM_PROP_REQUIRED) {
			prop_describe_type(d, msg, sizeof(msg));
			set_err(err, len, "%s: %s: property \"%s\" is required (%s): %s",
				file, owner, d->name, msg, d->help ? d->help : "");
			goto fail;
		} else if (propval_from_text(d, d->def, &out->vals[i], msg, sizeof(msg))) {
			set_err(err, len, "%s: %s: default of \"%s\" is invalid: %s",
				file, owner, d->name, msg);
			goto fail;
		}
	}
	return 0;
fail:
	resolved_props_free(out);
	return -1;
}

void resolved_props_free(struct resolved_props *rp)
{
	for (size_t i = 0; i < rp->n; i++)
		propval_free(&rp->vals[i]);
	free(rp->vals);
	rp->vals = NULL;
	rp->n = 0;
}

const struct prop_value *resolved_find(const struct resolved_props *rp,
				       const char *name)
{
	for (size_t i = 0; i < rp->n; i++)
		if (rp->vals[i].desc && !strcmp(rp->vals[i].desc->name, name))
			return &rp->vals[i];
	return NULL;
}

/* Names a device group may hold: its own and its backends' (bare, or
 * scoped by the BACKEND property: "log-path" for backend property "log"). */
static char *valid_names(const struct cfg_device *d)
{
	struct strbuf b;
	char *l = prop_name_list(d->props.plugin->desc->props);

	sb_init(&b);
	sb_printf(&b, "%s", *l ? l : "(none)");
	free(l);
	for (size_t i = 0; i < d->nbackends; i++) {
		l = prop_name_list(d->backends[i].plugin->desc->props);
		if (*l && d->nbackends == 1)
			sb_printf(&b, "; from backend %s: %s",
				  d->backends[i].plugin->desc->name, l);
		else if (*l)
			sb_printf(&b, "; from backend %s (property %s; also as %s-NAME): %s",
				  d->backends[i].plugin->desc->name,
				  d->backends[i].backend_of,
				  d->backends[i].backend_of, l);
		free(l);
	}
	return sb_steal(&b);
}

static bool owned_by(const struct resolved_props *rp, const char *name)
{
	return prop_find(rp->plugin->desc->props, name) != NULL;
}

/* "log-path" for backend property "log" and a backend that has "path":
 * the backend's property name, or NULL. A name the device itself has is
 * never scoped. */
static const char *scoped_name(const struct cfg_device *d, const char *prop,
			       const struct plugin *bp, const char *setting)
{
	size_t pl = strlen(prop);

	if (strncmp(setting, prop, pl) || setting[pl] != '-' ||
	    owned_by(&d->props, setting) ||
	    !prop_find(bp->desc->props, setting + pl + 1))
		return NULL;
	return setting + pl + 1;
}

static const struct cfg_setting *find_setting(const struct cfg_device *d,
					      const char *name)
{
	for (size_t k = 0; k < d->nsettings; k++)
		if (!strcmp(d->settings[k].name, name))
			return &d->settings[k];
	return NULL;
}

/* The backend plugin each BACKEND property names, in schema order. */
static int find_backends(const char *file, const struct cfg_device *d,
			 const struct registry *r, const char *owner,
			 const struct plugin **bps, char *err, size_t len)
{
	const struct modvm_prop_desc *props = d->props.plugin->desc->props;
	size_t nb = 0;

	for (int i = 0; props && props[i].name; i++) {
		const struct modvm_prop_desc *pd = &props[i];
		const struct prop_value *v = &d->props.vals[i];
		char *name;

		if (pd->type != MODVM_PROP_BACKEND)
			continue;
		name = xasprintf("%s-%s", backend_prefix(pd->backend_kind), v->s);
		bps[nb] = registry_find_kind(r, name, pd->backend_kind);
		if (!bps[nb]) {
			char *avail = registry_names(r, pd->backend_kind);
			set_err(err, len, "%s:%d: %s: property \"%s\": no %s backend \"%s\" (plugin %s); installed %s backends: %s",
				file, v->line ? v->line : d->line, owner, pd->name,
				kind_name(pd->backend_kind), v->s, name,
				kind_name(pd->backend_kind), avail);
			free(avail);
			free(name);
			return -1;
		}
		free(name);
		nb++;
	}
	return 0;
}

/* The settings backend `nb` (of BACKEND property `prop`) gets: its scoped
 * ones ("prop-path" as "path"), then the bare ones no scoped one overrides.
 * A bare name two backends of the device would both take is refused: with
 * two files, both would write to one. */
static int backend_settings(const char *file, const struct cfg_device *d,
			    const char *const *bprops, const struct plugin **bps,
			    size_t nbs, size_t nb, const char *owner,
			    struct cfg_setting **out, size_t *nout,
			    char *err, size_t len)
{
	const char *prop = bprops[nb];
	const struct plugin *bp = bps[nb];

	*out = xcalloc(d->nsettings + 1, sizeof(**out));
	*nout = 0;
	for (size_t k = 0; k < d->nsettings; k++) {
		const struct cfg_setting *s = &d->settings[k];
		const char *bare = scoped_name(d, prop, bp, s->name);

		if (bare) {
			(*out)[*nout] = *s;
			(*out)[(*nout)++].name = (char *)bare;
			continue;
		}
		if (!prop_find(bp->desc->props, s->name))
			continue;
		char *mine = xasprintf("%s-%s", prop, s->name);
		bool overridden = find_setting(d, mine) != NULL;
		free(mine);
		if (overridden)
			continue;
		for (size_t o = 0; o < nbs; o++) {
			if (o == nb || !prop_find(bps[o]->desc->props, s->name))
				continue;
			char *theirs = xasprintf("%s-%s", bprops[o], s->name);
			bool scoped = find_setting(d, theirs) != NULL;
			free(theirs);
			if (scoped)
				continue;
			set_err(err, len, "%s:%d: %s: property \"%s\" would go to both backend \"%s\" (%s) and backend \"%s\" (%s): write %s-%s and %s-%s",
				file, s->line, owner, s->name, prop, bp->desc->name,
				bprops[o], bps[o]->desc->name, prop, s->name,
				bprops[o], s->name);
			free(*out);
			return -1;
		}
		(*out)[(*nout)++] = *s;
	}
	return 0;
}

static int resolve_backends(const char *file, struct cfg_device *d,
			    const struct registry *r, const char *owner,
			    char *err, size_t len)
{
	const struct modvm_prop_desc *props = d->props.plugin->desc->props;
	const struct plugin **bps;
	const char **bprops;
	size_t nbs = 0;
	int ret = -1;

	for (int i = 0; props && props[i].name; i++)
		nbs += props[i].type == MODVM_PROP_BACKEND;
	if (!nbs)
		return 0;
	bps = xcalloc(nbs, sizeof(*bps));
	bprops = xcalloc(nbs, sizeof(*bprops));
	for (int i = 0, b = 0; props[i].name; i++)
		if (props[i].type == MODVM_PROP_BACKEND)
			bprops[b++] = props[i].name;
	if (find_backends(file, d, r, owner, bps, err, len))
		goto out;
	d->backends = xcalloc(nbs, sizeof(*d->backends));
	for (size_t b = 0; b < nbs; b++) {
		struct cfg_setting *set;
		size_t nset;
		char *bowner = xasprintf("%s backend %s", owner, bps[b]->desc->name);
		int rr = backend_settings(file, d, bprops, bps, nbs, b, bowner,
					  &set, &nset, err, len);
		if (!rr) {
			rr = props_resolve(bps[b], set, nset, file, bowner,
					   &d->backends[b], err, len);
			free(set);
		}
		free(bowner);
		if (rr)
			goto out;
		d->backends[b].backend_of = bprops[b];
		d->nbackends++;
	}
	ret = 0;
out:
	free(bps);
	free(bprops);
	return ret;
}

/* A setting is the device's, a backend's by its bare name, or a backend's
 * scoped by its BACKEND property. */
static bool setting_known(const struct cfg_device *d, const char *name)
{
	if (owned_by(&d->props, name))
		return true;
	for (size_t b = 0; b < d->nbackends; b++)
		if (owned_by(&d->backends[b], name) ||
		    scoped_name(d, d->backends[b].backend_of,
				d->backends[b].plugin, name))
			return true;
	return false;
}

int config_validate_device(const char *file, struct cfg_device *d,
			   const struct registry *r, char *err, size_t len)
{
	const struct plugin *p = registry_find(r, d->plugin);
	char *owner;
	int ret = -1;

	if (!p || p->desc->kind != MODVM_KIND_DEVICE) {
		char *avail = registry_names(r, MODVM_KIND_DEVICE);
		if (p)
			set_err(err, len, "%s:%d: plugin \"%s\" is a %s plugin, not a device; device plugins: %s",
				file, d->line, d->plugin, kind_name(p->desc->kind), avail);
		else
			set_err(err, len, "%s:%d: no device plugin \"%s\"; device plugins: %s (see `modvm plugins`)",
				file, d->line, d->plugin, avail);
		free(avail);
		return -1;
	}
	owner = xasprintf("device \"%s\" (%s)", d->id, d->plugin);
	if (props_resolve(p, d->settings, d->nsettings, file, owner, &d->props, err, len) ||
	    resolve_backends(file, d, r, owner, err, len))
		goto out;
	for (size_t k = 0; k < d->nsettings; k++) {
		const struct cfg_setting *s = &d->settings[k];
		if (!setting_known(d, s->name)) {
			char *valid = valid_names(d);
			set_err(err, len, "%s:%d: %s: unknown property \"%s\"; valid properties: %s",
				file, s->line, owner, s->name, valid);
			free(valid);
			goto out;
		}
	}
	ret = 0;
out:
	free(owner);
	return ret;
}

int config_validate(struct vm_config *c, const struct registry *r, char *err,
		    size_t len)
{
	const struct plugin *e = registry_find(r, c->engine);

	if (!e || e->desc->kind != MODVM_KIND_CPU_ENGINE) {
		char *avail = registry_names(r, MODVM_KIND_CPU_ENGINE);
		set_err(err, len, "%s:%d: no cpu engine \"%s\"; installed engines: %s",
			c->path, c->engine_line, c->engine, avail);
		free(avail);
		return -1;
	}
	c->engine_plugin = e;
	if (props_resolve(e, c->engine_settings, c->nengine_settings, c->path,
			  e->desc->name, &c->engine_props, err, len))
		return -1;
	for (size_t i = 0; i < c->nengine_settings; i++) {
		const struct cfg_setting *s = &c->engine_settings[i];
		if (!prop_find(e->desc->props, s->name)) {
			char *valid = prop_name_list(e->desc->props);
			set_err(err, len, "%s:%d: cpu: unknown setting \"%s\" for engine %s; valid: engine, model%s%s",
				c->path, s->line, s->name, e->desc->name, *valid ? ", " : "", valid);
			free(valid);
			return -1;
		}
	}
	for (size_t i = 0; i < c->ndevices; i++)
		if (config_validate_device(c->path, &c->devices[i], r, err, len))
			return -1;
	return 0;
}

void cfg_device_free(struct cfg_device *d)
{
	for (size_t k = 0; k < d->nsettings; k++) {
		free(d->settings[k].name);
		free(d->settings[k].s);
	}
	free(d->settings);
	resolved_props_free(&d->props);
	for (size_t b = 0; b < d->nbackends; b++)
		resolved_props_free(&d->backends[b]);
	free(d->backends);
	free(d->plugin);
	free(d->id);
}

void config_free(struct vm_config *c)
{
	for (size_t i = 0; i < c->ndevices; i++)
		cfg_device_free(&c->devices[i]);
	free(c->devices);
	resolved_props_free(&c->engine_props);
	for (size_t i = 0; i < c->nengine_settings; i++) {
		free(c->engine_settings[i].name);
		free(c->engine_settings[i].s);
	}
	free(c->engine_settings);
	free((char *)c->boot.kernel);
	free((char *)c->boot.initrd);
	free((char *)c->boot.cmdline);
	free(c->path);
	free(c->text);
	free(c->name);
	free(c->engine);
	free(c->model);
	free(c->machine);
	free(c->sandbox.user);
	memset(c, 0, sizeof(*c));
}

void config_set_engine_prop(struct vm_config *c, const char *assign)
{
	const char *eq = strchr(assign, '=');
	size_t nlen = (size_t)(eq - assign);
	struct cfg_setting *st = NULL;

	for (size_t i = 0; i < c->nengine_settings; i++)
		if (strlen(c->engine_settings[i].name) == nlen &&
		    !strncmp(c->engine_settings[i].name, assign, nlen))
			st = &c->engine_settings[i];
	if (!st) {
		struct cfg_setting *n = realloc(c->engine_settings,
						(c->nengine_settings + 1) * sizeof(*n));
		if (!n)
			return;
		c->engine_settings = n;
		st = &n[c->nengine_settings++];
		memset(st, 0, sizeof(*st));
		st->name = strndup(assign, nlen);
	} else {
		free(st->s);
	}
	st->type = CFG_TEXT;
	st->s = strdup(eq + 1);
	st->line = 0;
}
