/* Device test harness: a machine with a manual clock and no engine, plus
 * helpers that play the CPU. Setup failures abort: a test that cannot build
 * its machine has nothing to assert. */
#include "harness.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "block.h"
#include "boot/boot_priv.h"
#include "config.h"
#include "display.h"
#include "machine.h"
#include "registry.h"
#include "state_desc.h"

struct hx {
	struct machine m;
	struct registry reg;
	struct cfg_device **devs;
	size_t ndevs;
	char error[ERR_LEN];
	int request;
	modvm_inst *observer; /* instance used for the harness's own calls */
};

static void die(const char *what, const char *why)
{
	fprintf(stderr, "harness: %s: %s\n", what, why);
	abort();
}

struct hx *hx_new(uint64_t mem_size)
{
	struct hx *h = xcalloc(1, sizeof(*h));
	char err[ERR_LEN];

	registry_init(&h->reg);
#ifdef MODVM_TEST_PLUGIN_DIR
	/* in modvm's build tree: its plugins and the test plugins */
	registry_add_dir(&h->reg, MODVM_TEST_PLUGIN_DIR);
	registry_add_dir(&h->reg, MODVM_TEST_GOOD_PLUGIN_DIR);
#else
	/* installed with the SDK: MODVM_PLUGIN_PATH, as modvm searches it */
	registry_default_dirs(&h->reg);
#endif
	registry_scan(&h->reg);
	if (machine_init(&h->m, mem_size ? mem_size : 16 << 20, true, err, sizeof(err)))
		die("machine_init", err);
	h->m.reg = &h->reg;
	h->m.verbosity = getenv("HX_VERBOSE") ? MODVM_LOG_TRACE : MODVM_LOG_ERROR;
	return h;
}

void hx_free(struct hx *h)
{
	h->m.eops = NULL; /* a test's engine, whose VM may be gone already */
	h->m.evm = NULL;
	machine_destroy(&h->m);
	for (size_t i = 0; i < h->ndevs; i++) {
		cfg_device_free(h->devs[i]);
		free(h->devs[i]);
	}
	free(h->devs);
	registry_free(&h->reg);
	free(h);
}

static void add_setting(struct cfg_device *d, const char *kv)
{
	const char *eq = strchr(kv, '=');
	struct cfg_setting *s;

	if (!eq)
		die("hx_add", "property must be name=value");
	d->settings = xrealloc(d->settings, (d->nsettings + 1) * sizeof(*d->settings));
	s = &d->settings[d->nsettings++];
	memset(s, 0, sizeof(*s));
	s->name = strndup(kv, (size_t)(eq - kv));
	s->s = xstrdup(eq + 1);
	s->type = CFG_TEXT;
}

int hx_add(struct hx *h, const char *plugin, const char *id, ...)
{
	struct cfg_device *d = xcalloc(1, sizeof(*d));
	const char *kv;
	va_list ap;

	d->plugin = xstrdup(plugin);
	d->id = xstrdup(id);
	va_start(ap, id);
	while ((kv = va_arg(ap, const char *)))
		add_setting(d, kv);
	va_end(ap);
	h->devs = xrealloc(h->devs, (h->ndevs + 1) * sizeof(*h->devs));
	h->devs[h->ndevs++] = d;
	if (config_validate_device("harness", d, &h->reg, h->error, sizeof(h->error)))
		return -1;
	if (!machine_add_device(&h->m, d->props.plugin, d->id, &d->props, d,
				h->error, sizeof(h->error)))
		return -1;
	return 0;
}

struct machine *hx_machine(struct hx *h)
{
	return &h->m;
}

const char *hx_prop(const char *name, const char *value)
{
	static char buf[16][512];
	static unsigned next;
	char *p = buf[next++ % 16];

	snprintf(p, sizeof(buf[0]), "%s=%s", name, value);
	return p;
}

const char *hx_error(struct hx *h)
{
	return h->error;
}

static modvm_inst *find_inst(struct hx *h, const char *id)
{
	for (size_t i = 0; i < h->m.ninsts; i++)
		if (!strcmp(h->m.insts[i]->id, id))
			return h->m.insts[i];
	return NULL;
}

void *hx_device(struct hx *h, const char *id)
{
	for (size_t i = 0; i < h->m.ninsts; i++)
		if (!strcmp(h->m.insts[i]->id, id) &&
		    h->m.insts[i]->plugin->desc->kind == MODVM_KIND_DEVICE)
			return h->m.insts[i]->obj;
	return NULL;
}

const struct modvm_host *hx_host(struct hx *h, const char *id,
				 modvm_inst **inst)
{
	*inst = find_inst(h, id);
	return *inst ? &h->m.host : NULL;
}

/* One section into inst; on failure err also has the reason the device
 * gave a refusing post_load. */
static int load_section(modvm_inst *inst, const struct modvm_state_section *s,
			const void *buf, size_t len, size_t *used, char *err,
			size_t err_len)
{
	size_t n;

	inst->error[0] = 0;
	if (!state_load(s, inst->obj, buf, len, used, err, err_len))
		return 0;
	n = strlen(err);
	if (inst->error[0] && n + 1 < err_len)
		set_err(err + n, err_len - n, ": %s", inst->error);
	return -1;
}

int hx_state_copy(struct hx *from, struct hx *to, const char *id)
{
	modvm_inst *src = find_inst(from, id), *dst = find_inst(to, id);
	const struct modvm_state_section *const *secs;
	int r = 0;

	if (!src || !dst || strcmp(src->plugin->desc->name, dst->plugin->desc->name)) {
		snprintf(to->error, sizeof(to->error), "no device %s in both machines", id);
		return -1;
	}
	for (secs = src->plugin->desc->state; secs && *secs && !r; secs++) {
		struct strbuf sb;
		size_t used = 0;

		sb_init(&sb);
		state_save(*secs, src->obj, &sb);
		r = load_section(dst, *secs, sb.s, sb.len, &used, to->error,
				 sizeof(to->error));
		if (!r && used != sb.len) {
			snprintf(to->error, sizeof(to->error), "section %s: %zu of %zu bytes used",
				 (*secs)->name, used, sb.len);
			r = -1;
		}
		sb_free(&sb);
	}
	return r;
}

/* The sections of one instance (every one with inst NULL) into sb. */
static void save_sections(struct hx *h, modvm_inst *inst, struct strbuf *sb)
{
	for (size_t i = 0; i < h->m.ninsts; i++) {
		const struct modvm_state_section *const *s = h->m.insts[i]->plugin->desc->state;
		if (inst && h->m.insts[i] != inst)
			continue;
		for (; s && *s; s++)
			state_save(*s, h->m.insts[i]->obj, sb);
	}
}

static int load_sections(struct hx *h, modvm_inst *inst, const void *buf,
			 size_t len, char *err, size_t err_len)
{
	const uint8_t *p = buf;
	size_t pos = 0, used;

	for (size_t i = 0; i < h->m.ninsts; i++) {
		const struct modvm_state_section *const *s = h->m.insts[i]->plugin->desc->state;
		if (inst && h->m.insts[i] != inst)
			continue;
		for (; s && *s; s++) {
			if (load_section(h->m.insts[i], *s, p + pos, len - pos,
					 &used, err, err_len))
				return -1;
			pos += used;
		}
	}
	if (pos != len) {
		snprintf(err, err_len, "%zu of %zu bytes used", pos, len);
		return -1;
	}
	return 0;
}

void *hx_state_save(struct hx *h, const char *id, size_t *len)
{
	modvm_inst *inst = id ? find_inst(h, id) : NULL;
	struct strbuf sb;

	if (id && !inst)
		die("hx_state_save", "no such device");
	sb_init(&sb);
	save_sections(h, inst, &sb);
	*len = sb.len;
	return sb_steal(&sb);
}

int hx_state_load(struct hx *h, const char *id, const void *buf, size_t len)
{
	modvm_inst *inst = id ? find_inst(h, id) : NULL;

	if (id && !inst) {
		snprintf(h->error, sizeof(h->error), "no device %s", id);
		return -1;
	}
	return load_sections(h, inst, buf, len, h->error, sizeof(h->error));
}

/* The scalar integer or bool field `name` of inst's sections, or NULL. */
static const struct modvm_state_field *find_field(modvm_inst *inst,
						  const char *name,
						  size_t *width)
{
	static const size_t widths[] = {
		[MODVM_FIELD_U8] = 1, [MODVM_FIELD_U16] = 2, [MODVM_FIELD_U32] = 4,
		[MODVM_FIELD_U64] = 8, [MODVM_FIELD_I32] = 4, [MODVM_FIELD_I64] = 8,
		[MODVM_FIELD_BOOL] = 1,
	};

	for (const struct modvm_state_section *const *s = inst->plugin->desc->state;
	     s && *s; s++)
		for (uint32_t i = 0; i < (*s)->nfields; i++) {
			const struct modvm_state_field *f = &(*s)->fields[i];
			if (strcmp(f->name, name) || f->type >= MODVM_COUNTOF(widths) ||
			    !widths[f->type] || f->count > 1)
				continue;
			*width = widths[f->type];
			return f;
		}
	return NULL;
}

static int poke_field(struct hx *h, modvm_inst *inst, const char *kv)
{
	const char *eq = strchr(kv, '=');
	const struct modvm_state_field *f;
	char name[128];
	uint64_t v;
	size_t width;

	if (!eq || (size_t)(eq - kv) >= sizeof(name))
		die("hx_state_poke", "expected field=value");
	memcpy(name, kv, (size_t)(eq - kv));
	name[eq - kv] = 0;
	f = find_field(inst, name, &width);
	if (!f) {
		snprintf(h->error, sizeof(h->error), "device %s has no integer state field %s",
			 inst->id, name);
		return -1;
	}
	v = strtoull(eq + 1, NULL, 0);
	if (f->type == MODVM_FIELD_BOOL)
		v = v != 0;
	memcpy((uint8_t *)inst->obj + f->offset, &v, width); /* little-endian host */
	return 0;
}

int hx_state_poke(struct hx *h, const char *id, ...)
{
	modvm_inst *inst = find_inst(h, id);
	const char *kv;
	va_list ap;
	int r = 0;

	if (!inst) {
		snprintf(h->error, sizeof(h->error), "no device %s", id);
		return -1;
	}
	va_start(ap, id);
	while (!r && (kv = va_arg(ap, const char *)))
		r = poke_field(h, inst, kv);
	va_end(ap);
	for (const struct modvm_state_section *const *s = inst->plugin->desc->state;
	     !r && s && *s; s++) {
		inst->error[0] = 0;
		if ((*s)->post_load && (*s)->post_load(inst->obj))
			r = set_err(h->error, sizeof(h->error), "section %s: post_load refused: %s",
				    (*s)->name, inst->error);
	}
	return r;
}

void hx_reset(struct hx *h)
{
	machine_reset_devices(&h->m);
}

uint8_t hx_inb(struct hx *h, uint16_t port)
{
	return (uint8_t)io_pio_read(&h->m, port, 1);
}

uint16_t hx_inw(struct hx *h, uint16_t port)
{
	return (uint16_t)io_pio_read(&h->m, port, 2);
}

uint32_t hx_inl(struct hx *h, uint16_t port)
{
	return (uint32_t)io_pio_read(&h->m, port, 4);
}

void hx_outb(struct hx *h, uint16_t port, uint8_t v)
{
	io_pio_write(&h->m, port, v, 1);
}

void hx_outw(struct hx *h, uint16_t port, uint16_t v)
{
	io_pio_write(&h->m, port, v, 2);
}

void hx_outl(struct hx *h, uint16_t port, uint32_t v)
{
	io_pio_write(&h->m, port, v, 4);
}

uint64_t hx_mmio_read(struct hx *h, uint64_t addr, unsigned size)
{
	uint64_t v = 0;

	io_mmio_read(&h->m, addr, &v, size);
	return size >= 8 ? v : v & ((1ull << (8 * size)) - 1);
}

void hx_mmio_write(struct hx *h, uint64_t addr, uint64_t v, unsigned size)
{
	io_mmio_write(&h->m, addr, &v, size);
}

void hx_mem_write(struct hx *h, uint64_t gpa, const void *buf, size_t len)
{
	if (vm_memory_write(&h->m.mem, gpa, buf, len))
		die("hx_mem_write", "address outside guest RAM");
}

void hx_mem_read(struct hx *h, uint64_t gpa, void *buf, size_t len)
{
	if (vm_memory_read(&h->m.mem, gpa, buf, len))
		die("hx_mem_read", "address outside guest RAM");
}

uint64_t hx_clock(struct hx *h)
{
	return vclock_now(&h->m.clock);
}

int hx_display_update(struct hx *h, struct modvm_display_surface *s,
		      struct modvm_display_rect *dirty)
{
	return display_update_first(&h->m, s, dirty);
}

uint64_t hx_timer_next(struct hx *h)
{
	return timers_next(&h->m);
}

void hx_clock_step(struct hx *h, uint64_t ns)
{
	uint64_t end = vclock_now(&h->m.clock) + ns;

	/* Stop at each deadline on the way, so every callback sees the
	 * virtual time it was due at, as it would in a running VM. */
	for (;;) {
		uint64_t now = vclock_now(&h->m.clock);
		uint64_t next = timers_next(&h->m);
		if (next > end)
			break;
		if (next > now)
			vclock_advance(&h->m.clock, next - now);
		timers_run_due(&h->m, vclock_now(&h->m.clock));
	}
	vclock_advance(&h->m.clock, end - vclock_now(&h->m.clock));
}

int hx_poll(struct hx *h, int timeout_ms)
{
	return loop_run_once(&h->m, timeout_ms);
}

int hx_sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	rc = system(cmd);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

int hx_chardev_modem(struct hx *h, const char *id, unsigned lines)
{
	for (modvm_chardev *c = h->m.chardevs; c; c = c->next)
		if (c->frontend && !strcmp(c->frontend->id, id)) {
			h->m.host.chardev_modem_changed(c, lines);
			return 0;
		}
	return -1;
}

void hx_irq_set(struct hx *h, unsigned line, int level)
{
	irq_line_set(&h->m, line, level);
}

void hx_eoi_broadcast(struct hx *h, uint8_t vector)
{
	irq_eoi_broadcast(&h->m, vector);
}

int hx_irq_level(struct hx *h, unsigned line)
{
	return line < IRQ_LINES ? h->m.irq.level[line] : -1;
}

unsigned hx_irq_raises(struct hx *h, unsigned line)
{
	return line < IRQ_LINES ? h->m.irq.raises[line] : 0;
}

int hx_intr(struct hx *h)
{
	return h->m.irq.intr_level;
}

int hx_intr_ack(struct hx *h)
{
	return irq_intr_ack(&h->m);
}

unsigned hx_msi_count(struct hx *h)
{
	return h->m.irq.msi_count;
}

void hx_msi_last(struct hx *h, uint64_t *addr, uint32_t *data)
{
	*addr = h->m.irq.msi_last_addr;
	*data = h->m.irq.msi_last_data;
}

int hx_machine_request(struct hx *h)
{
	return h->m.request;
}

void hx_clear_machine_request(struct hx *h)
{
	h->m.request = 0;
	h->m.exit_status = 0;
}

int hx_exit_status(struct hx *h)
{
	return h->m.exit_status;
}

void hx_set_cpus(struct hx *h, unsigned n)
{
	h->m.cpus = n;
}

void hx_set_engine(struct hx *h, const struct modvm_cpu_engine_ops *ops,
		   void *vm)
{
	h->m.eops = ops;
	h->m.evm = ops ? vm : NULL;
}

unsigned hx_e820(struct hx *h, struct hx_e820 *map, unsigned max)
{
	struct boot_e820 e[BOOT_E820_MAX];
	unsigned n = boot_e820_build(&h->m.mem, e);

	for (unsigned i = 0; i < n && i < max; i++)
		map[i] = (struct hx_e820){ e[i].addr, e[i].size, e[i].type };
	return n < max ? n : max;
}

int hx_freeze_prepare(struct hx *h, const char *tag)
{
	return block_freeze_prepare(&h->m, tag, h->error, sizeof(h->error));
}

void hx_freeze_commit(struct hx *h)
{
	block_freeze_commit(&h->m);
}

void hx_freeze_abort(struct hx *h)
{
	block_freeze_abort(&h->m);
}

int hx_disk(struct hx *h, const char *id, struct hx_disk *out)
{
	struct block_disk d[MAX_DISKS];
	size_t n = block_disks(&h->m, d, MAX_DISKS);

	for (size_t i = 0; i < n; i++)
		if (!strcmp(d[i].device, id)) {
			*out = (struct hx_disk){
				.path = d[i].path, .format = d[i].format,
				.overlay = d[i].overlay, .readonly = d[i].readonly,
				.on_overlay = d[i].on_overlay,
			};
			return 0;
		}
	return -1;
}

void hx_resume_on(struct hx *h, const char *id, const char *base,
		  const char *format, const char *overlay)
{
	block_resume_on(&h->m, id, base, format, overlay);
}
