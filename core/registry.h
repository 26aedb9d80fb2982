/* Plugin registry: finds plugin files along the search path, checks them
 * before and after loading, and answers lookups by name. */
#ifndef MODVM_CORE_REGISTRY_H
#define MODVM_CORE_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>

#include <modvm/plugin.h>

struct plugin {
	char *path;
	void *dl;
	const struct modvm_plugin_desc *desc;
};

/* A file the registry refused, with the reason. */
struct plugin_refusal {
	char *path;
	char *reason;
};

struct registry {
	struct plugin *plugins;
	size_t n;
	struct plugin_refusal *refused;
	size_t nrefused;
	char **dirs; /* the search path actually used, in order */
	size_t ndirs;
};

void registry_init(struct registry *r);
void registry_free(struct registry *r);
/* Add one folder to the search path (after those already added). */
void registry_add_dir(struct registry *r, const char *dir);
/* The default search path: the build tree when modvm runs from it, each
 * folder of MODVM_PLUGIN_PATH, then the install folder. */
void registry_default_dirs(struct registry *r);
/* Load every *.so in the search path. Files that fail are recorded in
 * r->refused; the rest stay usable. */
void registry_scan(struct registry *r);
/* Load a single file (used by scan and by tests). Returns 0 or -1 with
 * the reason, also recorded as a refusal. */
int registry_load_file(struct registry *r, const char *path, char *err,
		       size_t len);

const struct plugin *registry_find(const struct registry *r, const char *name);
const struct plugin *registry_find_kind(const struct registry *r,
					const char *name, uint32_t kind);
/* Names of plugins of one kind, ", "-separated (for messages). */
char *registry_names(const struct registry *r, uint32_t kind);
/* Print every refusal to stderr as "modvm: PATH: REASON". */
void registry_report_refusals(const struct registry *r);

/* Check a descriptor once loaded: exported for the unit tests. */
int registry_check_desc(const struct modvm_plugin_desc *d, char *err,
			size_t len);

#endif
