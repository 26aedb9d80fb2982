/* Plugin registry: search path, pre-load ELF checks, descriptor checks. */
#include "registry.h"

#include <dirent.h>
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <modvm/cpu.h>
#include <modvm/device.h>
#include <modvm/chardev.h>
#include <modvm/block.h>
#include <modvm/net.h>
#include <modvm/display.h>

#include "elfcheck.h"
#include "propval.h"
#include "state_desc.h"
#include "util.h"

void registry_init(struct registry *r)
{
	memset(r, 0, sizeof(*r));
}

void registry_free(struct registry *r)
{
	for (size_t i = 0; i < r->n; i++) {
		/* Keep code mapped under ASan so leak reports can symbolize. */
#ifndef __SANITIZE_ADDRESS__
		dlclose(r->plugins[i].dl);
#endif
		free(r->plugins[i].path);
	}
	for (size_t i = 0; i < r->nrefused; i++) {
		free(r->refused[i].path);
		free(r->refused[i].reason);
	}
	for (size_t i = 0; i < r->ndirs; i++)
		free(r->dirs[i]);
	free(r->plugins);
	free(r->refused);
	free(r->dirs);
	registry_init(r);
}

void registry_add_dir(struct registry *r, const char *dir)
{
	char real[PATH_MAX];
	const char *d = realpath(dir, real) ? real : dir;

	for (size_t i = 0; i < r->ndirs; i++)
		if (!strcmp(r->dirs[i], d))
			return;
	r->dirs = xrealloc(r->dirs, (r->ndirs + 1) * sizeof(*r->dirs));
	r->dirs[r->ndirs++] = xstrdup(d);
}

void registry_default_dirs(struct registry *r)
{
	char exe[PATH_MAX], *slash, *path, *save, *tok;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n > 0) {
		exe[n] = 0;
		slash = strrchr(exe, '/');
		if (slash)
			*slash = 0;
		/* Run from the build tree: use its plugin folder. */
		if (!strcmp(exe, MODVM_BUILD_DIR))
			registry_add_dir(r, MODVM_BUILD_PLUGIN_DIR);
	}
	path = getenv("MODVM_PLUGIN_PATH");
	if (path) {
		path = xstrdup(path);
		for (tok = strtok_r(path, ":", &save); tok;
		     tok = strtok_r(NULL, ":", &save))
			if (*tok)
				registry_add_dir(r, tok);
		free(path);
	}
	if (n > 0) {
		/* Relocatable install: PREFIX/bin/modvm finds
		 * PREFIX/lib/modvm/plugins. exe is the binary's folder
		 * and MODVM_INSTALL_PLUGIN_REL is relative to it
		 * ("../lib/modvm/plugins"). */
		char *rel = xasprintf("%s/%s", exe, MODVM_INSTALL_PLUGIN_REL);
		if (access(rel, R_OK) == 0)
			registry_add_dir(r, rel);
		free(rel);
	}
	if (access(MODVM_INSTALL_PLUGIN_DIR, R_OK) == 0)
		registry_add_dir(r, MODVM_INSTALL_PLUGIN_DIR);
}

static void refuse(struct registry *r, const char *path, const char *reason)
{
	r->refused = xrealloc(r->refused, (r->nrefused + 1) * sizeof(*r->refused));
	r->refused[r->nrefused].path = xstrdup(path);
	r->refused[r->nrefused].reason = xstrdup(reason);
	r->nrefused++;
}

/* A callback the core calls without checking: name it when it is NULL. */
#define NEED(ops, f)                                                          \
	do {                                                                  \
		if (!(ops)->f)                                                \
			return set_err(err, len, "ops." #f " is NULL, but the core always calls it"); \
	} while (0)

static int check_engine_ops(const struct modvm_cpu_engine_ops *o, char *err,
			    size_t len)
{
	NEED(o, vm_create);
	NEED(o, vm_destroy);
	NEED(o, vcpu_create);
	NEED(o, vcpu_destroy);
	NEED(o, vcpu_run);
	NEED(o, vcpu_kick);
	NEED(o, get_state);
	NEED(o, set_state);
	return 0;
}

/* Bound properties need a core-allocated instance to be stored in, and a
 * field that holds every value the schema allows. */
static int check_bound_props(const struct modvm_plugin_desc *d,
			     const struct modvm_device_ops *o, char *err,
			     size_t len)
{
	for (const struct modvm_prop_desc *p = d->props; p && p->name; p++) {
		uint32_t fs = p->field_size;
		bool ok;

		if (!fs)
			continue;
		if (!o->init)
			return set_err(err, len, "property \"%s\" is bound to a field, but the core allocates no instance (use init and instance_size, or the unbound MODVM_PROP_*_ form)",
				       p->name);
		if (p->offset > o->instance_size || fs > o->instance_size - p->offset)
			return set_err(err, len, "property \"%s\" is bound past the end of the %u-byte instance",
				       p->name, o->instance_size);
		switch (p->type) {
		case MODVM_PROP_BOOL:
			ok = fs == sizeof(bool);
			break;
		case MODVM_PROP_STRING:
		case MODVM_PROP_BACKEND:
			ok = fs == sizeof(const char *);
			break;
		default: /* INT, SIZE, ENUM */
			ok = fs == 1 || fs == 2 || fs == 4 || fs == 8;
			if (ok && fs < 8 && p->type != MODVM_PROP_ENUM)
				ok = p->min >= -(INT64_C(1) << (8 * fs - 1)) &&
				     p->max < (INT64_C(1) << (8 * fs));
			break;
		}
		if (!ok)
			return set_err(err, len, "property \"%s\" (%s) is bound to a field of %u bytes that cannot hold its values",
				       p->name, prop_type_name(p->type), fs);
	}
	return 0;
}

static int check_device_ops(const struct modvm_plugin_desc *d,
			    const struct modvm_device_ops *o, char *err,
			    size_t len)
{
	if (!o->init == !o->create)
		return set_err(err, len, o->init ? "ops sets both init and create: choose one (init: the core allocates instance_size bytes; create: the plugin allocates)"
					  : "ops.init and ops.create are both NULL: the core has nothing to call to create the device");
	if (o->init && o->instance_size < sizeof(struct modvm_dev))
		return set_err(err, len, "ops.instance_size is %u, smaller than the struct modvm_dev every core-allocated instance starts with",
			       o->instance_size);
	return check_bound_props(d, o, err, len);
}

static int check_ops(const struct modvm_plugin_desc *d, char *err, size_t len)
{
	/* Every ops struct starts with its size; the core accepts tables from
	 * any minor of its major, so it needs at least the x.0 table. */
	const uint32_t *size = d->ops;
	uint32_t need;

	switch (d->kind) {
	case MODVM_KIND_CPU_ENGINE:
		need = offsetof(struct modvm_cpu_engine_ops, mem_written) +
		       sizeof(void *);
		break;
	case MODVM_KIND_DEVICE:
		need = offsetof(struct modvm_device_ops, reset) + sizeof(void *);
		break;
	case MODVM_KIND_CHARDEV:
		need = offsetof(struct modvm_chardev_ops, accept_input) +
		       sizeof(void *);
		break;
	case MODVM_KIND_BLOCK:
		need = offsetof(struct modvm_block_ops, drain) + sizeof(void *);
		break;
	case MODVM_KIND_NET:
		need = offsetof(struct modvm_net_ops, link_up) + sizeof(void *);
		break;
	case MODVM_KIND_DISPLAY:
		need = offsetof(struct modvm_display_ops, refresh) + sizeof(void *);
		break;
	default:
		return set_err(err, len, "plugins of kind %s cannot be loaded by this modvm yet",
			       kind_name(d->kind));
	}
	if (!size)
		return set_err(err, len, "descriptor has no ops");
	if (*size < need)
		return set_err(err, len, "ops table is %u bytes, smaller than ABI %d.0's %u",
			       *size, MODVM_ABI_MAJOR, need);
	switch (d->kind) {
	case MODVM_KIND_CPU_ENGINE:
		return check_engine_ops(d->ops, err, len);
	case MODVM_KIND_DEVICE:
		return check_device_ops(d, d->ops, err, len);
	case MODVM_KIND_CHARDEV: {
		const struct modvm_chardev_ops *o = d->ops;
		NEED(o, open);
		NEED(o, close);
		NEED(o, write);
		return 0;
	}
	case MODVM_KIND_NET: {
		const struct modvm_net_ops *o = d->ops;
		NEED(o, open);
		NEED(o, close);
		NEED(o, send);
		return 0;
	}
	case MODVM_KIND_DISPLAY: {
		const struct modvm_display_ops *o = d->ops;
		NEED(o, open);
		NEED(o, close);
		return 0;
	}
	default: {
		const struct modvm_block_ops *o = d->ops;
		NEED(o, open);
		NEED(o, close);
		NEED(o, length);
		return 0;
	}
	}
}

int registry_check_desc(const struct modvm_plugin_desc *d, char *err,
			size_t len)
{
	char msg[ERR_LEN];
	unsigned a, b, c;
	char tail;

	if (d->desc_size < offsetof(struct modvm_plugin_desc, ops) + sizeof(void *))
		return set_err(err, len, "descriptor is %u bytes, too small for ABI %d",
			       d->desc_size, MODVM_ABI_MAJOR);
	if (!kind_name(d->kind))
		return set_err(err, len, "unknown plugin kind %u", d->kind);
	if (!d->name || !name_is_valid(d->name))
		return set_err(err, len, "plugin name \"%s\" is not valid (use a-z, 0-9, '-')",
			       d->name ? d->name : "(null)");
	if (!d->version || sscanf(d->version, "%u.%u.%u%c", &a, &b, &c, &tail) != 3)
		return set_err(err, len, "plugin %s: version \"%s\" is not MAJOR.MINOR.PATCH",
			       d->name, d->version ? d->version : "(null)");
	if (!d->description || !*d->description)
		return set_err(err, len, "plugin %s has no description", d->name);
	if (prop_check_schema(d->props, msg, sizeof(msg)))
		return set_err(err, len, "plugin %s: %s", d->name, msg);
	for (int i = 0; d->state && d->state[i]; i++)
		if (state_check_section(d->state[i], msg, sizeof(msg)))
			return set_err(err, len, "plugin %s: state: %s", d->name, msg);
	if (check_ops(d, msg, sizeof(msg)))
		return set_err(err, len, "plugin %s: %s", d->name, msg);
	return 0;
}

int registry_load_file(struct registry *r, const char *path, char *err,
		       size_t len)
{
	char msg[ERR_LEN];
	const struct modvm_plugin_desc *d;
	const struct plugin *dup;
	uint32_t major, minor;
	void *dl;

	if (elf_read_plugin_abi(path, &major, &minor, msg, sizeof(msg)))
		goto refused;
	if (major != MODVM_ABI_MAJOR) {
		snprintf(msg, sizeof(msg),
			 "built for plugin ABI %u.%u, but this modvm has ABI %d.%d (major versions differ): rebuild it against this modvm's SDK",
			 major, minor, MODVM_ABI_MAJOR, MODVM_ABI_MINOR);
		goto refused;
	}
	if (minor > MODVM_ABI_MINOR) {
		snprintf(msg, sizeof(msg),
			 "needs plugin ABI %u.%u, newer than this modvm's ABI %d.%d: upgrade modvm or rebuild the plugin against this SDK",
			 major, minor, MODVM_ABI_MAJOR, MODVM_ABI_MINOR);
		goto refused;
	}
	dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!dl) {
		snprintf(msg, sizeof(msg), "cannot load: %s", dlerror());
		goto refused;
	}
	d = dlsym(dl, MODVM_PLUGIN_SYMBOL_NAME);
	if (!d || registry_check_desc(d, msg, sizeof(msg))) {
		if (!d)
			snprintf(msg, sizeof(msg), "descriptor symbol vanished after loading");
		dlclose(dl);
		goto refused;
	}
	dup = registry_find(r, d->name);
	if (dup) {
		snprintf(msg, sizeof(msg),
			 "plugin name \"%s\" is already taken by %s: remove one of the two files (the first found in the search path is used)",
			 d->name, dup->path);
		dlclose(dl);
		goto refused;
	}
	r->plugins = xrealloc(r->plugins, (r->n + 1) * sizeof(*r->plugins));
	r->plugins[r->n].path = xstrdup(path);
	r->plugins[r->n].dl = dl;
	r->plugins[r->n].desc = d;
	r->n++;
	return 0;
refused:
	refuse(r, path, msg);
	return set_err(err, len, "%s: %s", path, msg);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void scan_dir(struct registry *r, const char *dir)
{
	DIR *dp = opendir(dir);
	struct dirent *e;
	char **names = NULL;
	size_t n = 0;

	if (!dp)
		return;
	while ((e = readdir(dp))) {
		size_t l = strlen(e->d_name);
		if (l < 4 || strcmp(e->d_name + l - 3, ".so"))
			continue;
		names = xrealloc(names, (n + 1) * sizeof(*names));
		names[n++] = xasprintf("%s/%s", dir, e->d_name);
	}
	closedir(dp);
	/* Deterministic order, so duplicate reports name the same winner. */
	if (n)
		qsort(names, n, sizeof(*names), by_name);
	for (size_t i = 0; i < n; i++) {
		registry_load_file(r, names[i], NULL, 0);
		free(names[i]);
	}
	free(names);
}

void registry_scan(struct registry *r)
{
	for (size_t i = 0; i < r->ndirs; i++)
		scan_dir(r, r->dirs[i]);
}

const struct plugin *registry_find(const struct registry *r, const char *name)
{
	for (size_t i = 0; i < r->n; i++)
		if (!strcmp(r->plugins[i].desc->name, name))
			return &r->plugins[i];
	return NULL;
}

const struct plugin *registry_find_kind(const struct registry *r,
					const char *name, uint32_t kind)
{
	const struct plugin *p = registry_find(r, name);
	return p && p->desc->kind == kind ? p : NULL;
}

char *registry_names(const struct registry *r, uint32_t kind)
{
	struct strbuf b;
	int k = 0;

	sb_init(&b);
	for (size_t i = 0; i < r->n; i++)
		if (r->plugins[i].desc->kind == kind)
			sb_printf(&b, "%s%s", k++ ? ", " : "",
				  r->plugins[i].desc->name);
	if (!k)
		sb_printf(&b, "(none installed)");
	return sb_steal(&b);
}

void registry_report_refusals(const struct registry *r)
{
	for (size_t i = 0; i < r->nrefused; i++)
		fprintf(stderr, "modvm: refused plugin %s: %s\n",
			r->refused[i].path, r->refused[i].reason);
}
