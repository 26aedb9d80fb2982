/* `modvm plugins` and `modvm inspect`: everything printed comes from the
 * plugins' descriptors alone, as gst-inspect does. */
#include "inspect.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modvm/cpu.h>

#include "propval.h"
#include "state_desc.h"
#include "util.h"

static const char *engine_status(const struct plugin *p, char *why,
				 size_t len)
{
	const struct modvm_cpu_engine_ops *ops = p->desc->ops;

	why[0] = 0;
	if (!ops->probe)
		return "yes";
	return ops->probe(why, len) == 0 ? "yes" : "no";
}

void print_plugins(const struct registry *r, FILE *out)
{
	char why[512];

	fprintf(out, "%-20s %-11s %-8s %-5s %-40s %s\n", "NAME", "KIND",
		"VERSION", "ABI", "PATH", "DESCRIPTION");
	for (size_t i = 0; i < r->n; i++) {
		const struct modvm_plugin_desc *d = r->plugins[i].desc;
		fprintf(out, "%-20s %-11s %-8s %u.%-3u %-40s %s\n", d->name,
			kind_name(d->kind), d->version, d->abi_major,
			d->abi_minor, r->plugins[i].path, d->description);
	}
	for (size_t i = 0; i < r->n; i++) {
		const struct plugin *p = &r->plugins[i];
		if (p->desc->kind != MODVM_KIND_CPU_ENGINE)
			continue;
		const char *ok = engine_status(p, why, sizeof(why));
		fprintf(out, "engine %s: runs on this host: %s%s%s\n",
			p->desc->name, ok, why[0] ? " - " : "", why);
	}
	for (size_t i = 0; i < r->nrefused; i++)
		fprintf(out, "refused %s: %s\n", r->refused[i].path,
			r->refused[i].reason);
	fprintf(out, "search path:");
	for (size_t i = 0; i < r->ndirs; i++)
		fprintf(out, "%s%s", i ? ":" : " ", r->dirs[i]);
	fprintf(out, "%s\n", r->ndirs ? "" : " (empty)");
}

static void print_field(const struct modvm_state_field *f, int indent,
			FILE *out);

static const char *field_type_name(uint32_t t)
{
	static const char *const names[] = { "?", "u8", "u16", "u32", "u64",
					     "i32", "i64", "bool", "bytes",
					     "vbuf", "struct" };
	return t < ARRAY_SIZE(names) ? names[t] : "?";
}

static void print_field(const struct modvm_state_field *f, int indent,
			FILE *out)
{
	fprintf(out, "%*s%-24s %s", indent, "", f->name, field_type_name(f->type));
	if (f->count > 1 || f->type == MODVM_FIELD_BYTES ||
	    f->type == MODVM_FIELD_VBUF || f->type == MODVM_FIELD_STRUCT)
		fprintf(out, "[%u]", f->count);
	if (f->since)
		fprintf(out, " (since v%u)", f->since);
	fputc('\n', out);
	if (f->type == MODVM_FIELD_STRUCT)
		for (uint32_t i = 0; i < f->nsub; i++)
			print_field(&f->sub[i], indent + 2, out);
}

void print_state_section(const struct modvm_state_section *s, FILE *out)
{
	fprintf(out, "  section %s, version %u (loads %u..%u)\n", s->name,
		s->version, s->min_version, s->version);
	for (uint32_t i = 0; i < s->nfields; i++)
		print_field(&s->fields[i], 4, out);
}

void print_inspect(const struct plugin *p, FILE *out)
{
	const struct modvm_plugin_desc *d = p->desc;
	const struct modvm_prop_desc *props = d->props;
	char type[512];

	fprintf(out, "Name:        %s\nKind:        %s\nVersion:     %s\n"
		"ABI:         %u.%u\nPath:        %s\nDescription: %s\n",
		d->name, kind_name(d->kind), d->version, d->abi_major,
		d->abi_minor, p->path, d->description);
	if (d->kind == MODVM_KIND_CPU_ENGINE) {
		char why[512];
		const char *ok = engine_status(p, why, sizeof(why));
		fprintf(out, "Runs here:   %s%s%s\n", ok, why[0] ? " - " : "", why);
	}
	fprintf(out, "\nProperties:\n");
	if (!props || !props->name)
		fprintf(out, "  (none)\n");
	for (; props && props->name; props++) {
		prop_describe_type(props, type, sizeof(type));
		fprintf(out, "  %-16s %s\n", props->name, type);
		if (props->flags & MODVM_PROP_REQUIRED)
			fprintf(out, "  %-16s required\n", "");
		else
			fprintf(out, "  %-16s default: %s\n", "", props->def);
		if (props->help)
			fprintf(out, "  %-16s %s\n", "", props->help);
	}
	fprintf(out, "\nState:\n");
	if (!d->state || !d->state[0])
		fprintf(out, "  (no saved state)\n");
	for (int i = 0; d->state && d->state[i]; i++)
		print_state_section(d->state[i], out);
}
