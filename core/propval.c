/* Property values: parse, check and describe them against a schema. */
#include "propval.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

const char *prop_type_name(uint32_t type)
{
	switch (type) {
	case MODVM_PROP_BOOL: return "bool";
	case MODVM_PROP_INT: return "integer";
	case MODVM_PROP_SIZE: return "size";
	case MODVM_PROP_STRING: return "string";
	case MODVM_PROP_ENUM: return "enum";
	case MODVM_PROP_BACKEND: return "backend";
	default: return "unknown";
	}
}

const char *kind_name(uint32_t kind)
{
	switch (kind) {
	case MODVM_KIND_CPU_ENGINE: return "cpu-engine";
	case MODVM_KIND_DEVICE: return "device";
	case MODVM_KIND_CHARDEV: return "chardev";
	case MODVM_KIND_BLOCK: return "block";
	case MODVM_KIND_NET: return "net";
	case MODVM_KIND_DISPLAY: return "display";
	default: return NULL;
	}
}

const char *backend_prefix(uint32_t kind)
{
	return kind_name(kind);
}

static void describe_choices(const struct modvm_prop_desc *d, struct strbuf *b)
{
	for (int i = 0; d->choices && d->choices[i]; i++)
		sb_printf(b, "%s%s", i ? ", " : "", d->choices[i]);
}

void prop_describe_type(const struct modvm_prop_desc *d, char *buf,
			size_t len)
{
	struct strbuf b;
	char lo[32], hi[32];

	sb_init(&b);
	switch (d->type) {
	case MODVM_PROP_BOOL:
		sb_printf(&b, "bool (true or false)");
		break;
	case MODVM_PROP_INT:
		sb_printf(&b, "integer in %lld..%lld", (long long)d->min,
			  (long long)d->max);
		break;
	case MODVM_PROP_SIZE:
		format_size((uint64_t)d->min, lo, sizeof(lo));
		format_size((uint64_t)d->max, hi, sizeof(hi));
		sb_printf(&b, "size in %s..%s (suffixes K, M, G, T)", lo, hi);
		break;
	case MODVM_PROP_STRING:
		sb_printf(&b, "string");
		break;
	case MODVM_PROP_ENUM:
		sb_printf(&b, "one of: ");
		describe_choices(d, &b);
		break;
	case MODVM_PROP_BACKEND:
		sb_printf(&b, "%s backend (a %s-* plugin)",
			  kind_name(d->backend_kind) ? kind_name(d->backend_kind) : "?",
			  backend_prefix(d->backend_kind) ? backend_prefix(d->backend_kind) : "?");
		break;
	default:
		sb_printf(&b, "unknown type %u", d->type);
	}
	snprintf(buf, len, "%s", b.s ? b.s : "");
	sb_free(&b);
}

int propval_check(const struct modvm_prop_desc *d, struct prop_value *v,
		  char *err, size_t len)
{
	char type[512];

	switch (d->type) {
	case MODVM_PROP_INT:
		if (v->i < d->min || v->i > d->max)
			goto range;
		return 0;
	case MODVM_PROP_SIZE:
		if (v->u < (uint64_t)d->min || v->u > (uint64_t)d->max)
			goto range;
		return 0;
	case MODVM_PROP_ENUM:
		for (int i = 0; d->choices && d->choices[i]; i++) {
			if (!strcmp(d->choices[i], v->s)) {
				v->choice = i;
				return 0;
			}
		}
		prop_describe_type(d, type, sizeof(type));
		return set_err(err, len, "\"%s\" is not allowed: %s", v->s, type);
	default:
		return 0;
	}
range:
	prop_describe_type(d, type, sizeof(type));
	return set_err(err, len, "value %s is out of range: expected %s",
		       v->s, type);
}

int propval_from_text(const struct modvm_prop_desc *d, const char *text,
		      struct prop_value *v, char *err, size_t len)
{
	char *end;

	memset(v, 0, sizeof(*v));
	v->desc = d;
	v->s = xstrdup(text);
	switch (d->type) {
	case MODVM_PROP_BOOL:
		if (!strcmp(text, "true") || !strcmp(text, "on") ||
		    !strcmp(text, "yes"))
			v->b = true;
		else if (strcmp(text, "false") && strcmp(text, "off") &&
			 strcmp(text, "no"))
			goto bad;
		break;
	case MODVM_PROP_INT:
		errno = 0;
		v->i = strtoll(text, &end, 0);
		if (errno || end == text || *end)
			goto bad;
		break;
	case MODVM_PROP_SIZE:
		if (parse_size(text, &v->u))
			goto bad;
		break;
	default:
		break;
	}
	if (propval_check(d, v, err, len))
		goto fail;
	return 0;
bad:
	{
		char type[512];
		prop_describe_type(d, type, sizeof(type));
		set_err(err, len, "\"%s\" is not a valid %s: expected %s", text,
			prop_type_name(d->type), type);
	}
fail:
	propval_free(v);
	return -1;
}

void propval_free(struct prop_value *v)
{
	free(v->s);
	v->s = NULL;
}

const struct modvm_prop_desc *prop_find(const struct modvm_prop_desc *props,
					const char *name)
{
	for (; props && props->name; props++)
		if (!strcmp(props->name, name))
			return props;
	return NULL;
}

char *prop_name_list(const struct modvm_prop_desc *props)
{
	struct strbuf b;

	sb_init(&b);
	for (int i = 0; props && props[i].name; i++)
		sb_printf(&b, "%s%s", i ? ", " : "", props[i].name);
	return sb_steal(&b);
}

static bool reserved_name(const char *n)
{
	/* Config keys the core owns in every device group. */
	return !strcmp(n, "plugin") || !strcmp(n, "id");
}

int prop_check_schema(const struct modvm_prop_desc *props, char *err,
		      size_t len)
{
	char msg[ERR_LEN];

	for (int i = 0; props && props[i].name; i++) {
		const struct modvm_prop_desc *d = &props[i];
		struct prop_value v;

		if (!name_is_valid(d->name) || reserved_name(d->name))
			return set_err(err, len, "property name \"%s\" is invalid or reserved",
				       d->name);
		for (int j = 0; j < i; j++)
			if (!strcmp(props[j].name, d->name))
				return set_err(err, len, "property \"%s\" is declared twice",
					       d->name);
		if (d->type < MODVM_PROP_BOOL || d->type > MODVM_PROP_BACKEND)
			return set_err(err, len, "property \"%s\" has unknown type %u",
				       d->name, d->type);
		if (d->type == MODVM_PROP_ENUM && (!d->choices || !d->choices[0]))
			return set_err(err, len, "enum property \"%s\" has no choices",
				       d->name);
		if (d->type == MODVM_PROP_BACKEND && !backend_prefix(d->backend_kind))
			return set_err(err, len, "backend property \"%s\" names unknown kind %u",
				       d->name, d->backend_kind);
		if ((d->type == MODVM_PROP_INT || d->type == MODVM_PROP_SIZE) &&
		    d->min > d->max)
			return set_err(err, len, "property \"%s\" has min > max", d->name);
		if (!d->def) {
			if (!(d->flags & MODVM_PROP_REQUIRED))
				return set_err(err, len, "property \"%s\" has no default and is not required",
					       d->name);
			continue;
		}
		if (propval_from_text(d, d->def, &v, msg, sizeof(msg)))
			return set_err(err, len, "default of property \"%s\": %s",
				       d->name, msg);
		propval_free(&v);
	}
	return 0;
}
