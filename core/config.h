/* The per-VM config file (libconfig syntax): parsed into plain structures,
 * then validated against the plugins' schemas before anything starts. */
#ifndef MODVM_CORE_CONFIG_H
#define MODVM_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "boot/boot.h"
#include "propval.h"
#include "registry.h"
#include "sandbox.h"

/* CFG_TEXT: a value given as text (test harness, command line), parsed by
 * the property's own type. */
enum cfg_vtype { CFG_BOOL, CFG_INT, CFG_FLOAT, CFG_STRING, CFG_OTHER, CFG_TEXT };

/* A key = value of a device group, as written. */
struct cfg_setting {
	char *name;
	enum cfg_vtype type;
	bool b;
	int64_t i;
	char *s; /* the value as text, for every type */
	int line;
};

/* Properties of one plugin instance after validation: every schema entry
 * has a value (from the config or the default). */
struct resolved_props {
	const struct plugin *plugin;
	struct prop_value *vals;
	size_t n;
	/* A device's backend: the name of the BACKEND property it serves. */
	const char *backend_of;
};

struct cfg_device {
	char *plugin;
	char *id;
	int line;
	struct cfg_setting *settings;
	size_t nsettings;
	/* Filled by config_validate: */
	struct resolved_props props;      /* the device's own */
	struct resolved_props *backends;  /* one per BACKEND property */
	size_t nbackends;
};

struct vm_config {
	char *path;
	char *text;   /* the file as read: snapshots and the FUSE view keep it */
	char *name;
	uint64_t memory;
	unsigned cpus;
	char *machine;  /* "pc" (the PC chipset devices are added) or "none" */
	char *engine;
	char *model;
	int engine_line;
	int model_line;
	/* Other settings of the cpu group: the engine's own properties. */
	struct cfg_setting *engine_settings;
	size_t nengine_settings;
	bool has_boot;
	struct boot_config boot; /* strings owned by the config */
	int boot_line, kernel_line, initrd_line; /* for boot_load's errors */
	struct cfg_device *devices;
	size_t ndevices;
	struct sandbox_config sandbox;  /* vm.sandbox */
	/* Filled by config_validate: */
	const struct plugin *engine_plugin;
	struct resolved_props engine_props;
};

/* Parse the file's syntax and structure. Errors are "file:line: message". */
int config_load(const char *path, struct vm_config *c, char *err, size_t len);
/* Check every plugin and property against the registry. */
int config_validate(struct vm_config *c, const struct registry *r, char *err,
		    size_t len);
void config_free(struct vm_config *c);
/* "NAME=VALUE": set (or add) an engine property, given as text, before
 * config_validate (modvm resume --engine-prop). */
void config_set_engine_prop(struct vm_config *c, const char *assign);

/* Resolve one plugin's properties from settings (also used by the test
 * harness with settings made from "name=value" strings). `owner` names the
 * instance in messages. extra_ok lists schemas whose names are also
 * accepted (the backends of a device). */
int props_resolve(const struct plugin *p, const struct cfg_setting *settings,
		  size_t n, const char *file, const char *owner,
		  struct resolved_props *out, char *err, size_t len);
void resolved_props_free(struct resolved_props *rp);
const struct prop_value *resolved_find(const struct resolved_props *rp,
				       const char *name);

/* Validate one device group: plugin kind, properties, backends. */
int config_validate_device(const char *file, struct cfg_device *d,
			   const struct registry *r, char *err, size_t len);
void cfg_device_free(struct cfg_device *d);


#endif
