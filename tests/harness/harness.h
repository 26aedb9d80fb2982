/* Device test harness: plays the CPU for device plugins, like QEMU's qtest.
 *
 * A harness is a machine without an engine and with a manual virtual clock.
 * Tests add device plugins by name with properties, poke their ports and MMIO,
 * advance the clock, and watch interrupt lines, the INTR pin and MSIs.
 * Everything here is reached through this header and the SDK's; a test needs
 * no core header (modvm's own device tests include none).
 */
#ifndef MODVM_TEST_HARNESS_H
#define MODVM_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <modvm/modvm.h>

struct hx;

/* New machine with mem_size bytes of RAM (0: 16 MiB). Plugins come from the
 * build tree's plugin folder and the core tests' good plugins; in the
 * harness installed with the SDK (pkg-config modvm-harness), from the
 * folders of MODVM_PLUGIN_PATH. Aborts the test program on setup failure. */
struct hx *hx_new(uint64_t mem_size);
void hx_free(struct hx *h);

/* Add a device: plugin name, instance id, then "name=value" property
 * strings ending with NULL. Values are parsed as in a config file (sizes
 * with suffixes, true/false). Returns 0, or -1 and hx_error() says why. */
int hx_add(struct hx *h, const char *plugin, const char *id, ...)
	__attribute__((sentinel));
const char *hx_error(struct hx *h);
/* "name=value" for hx_add, in one of 16 rotating buffers: enough for the
 * properties of one hx_add call. */
const char *hx_prop(const char *name, const char *value);
/* The instance pointer a device's create returned (for state tests). */
void *hx_device(struct hx *h, const char *id);
/* The host-services table and instance handle device `id` was given, to
 * call any SDK service as that device would (<modvm/host.h>): a machine
 * request, a20_enabled, pci_state_save/pci_state_load on a PCI host's
 * handle. NULL (and *inst NULL) when there is no such device. */
const struct modvm_host *hx_host(struct hx *h, const char *id,
				 modvm_inst **inst);
/* The machine behind the harness, for core unit tests only: device tests
 * should need nothing but the calls above and below. */
struct machine *hx_machine(struct hx *h);
/* Copy every state section of device `id` from one harness into the same
 * device of another, through the core's binary form (what a snapshot does).
 * Returns 0, or -1 with the loader's message in hx_error(to). */
int hx_state_copy(struct hx *from, struct hx *to, const char *id);
/* The state sections of device `id` (every device, in creation order, with
 * id NULL) in the core's binary form, what a snapshot stores: a malloc'd
 * buffer of *len bytes for free(). */
void *hx_state_save(struct hx *h, const char *id, size_t *len);
/* Load such a buffer into the same device(s) of a machine built the same
 * way, then their post_load hooks. Returns 0, or -1 and hx_error() has the
 * loader's message; when a post_load refused, the reason the device gave
 * (its host set_error text) follows it ("section bus: the plugin rejected
 * the loaded values: slot 3: ..."). */
int hx_state_load(struct hx *h, const char *id, const void *buf, size_t len);
/* State a damaged or hostile snapshot could bring: "field=value" strings
 * ending with NULL set scalar integer or bool fields of device `id`'s
 * state sections by name (value as strtoull reads it, cut to the field's
 * width, unchecked, as the loader takes a well-formed stream), then every
 * section's post_load runs. Returns 0, or -1 and hx_error() says why (no
 * such field, or a post_load refused). */
int hx_state_poke(struct hx *h, const char *id, ...)
	__attribute__((sentinel));
/* Platform reset of every device. */
void hx_reset(struct hx *h);

/* Port and MMIO accesses as the CPU would make them. */
uint8_t hx_inb(struct hx *h, uint16_t port);
uint16_t hx_inw(struct hx *h, uint16_t port);
uint32_t hx_inl(struct hx *h, uint16_t port);
void hx_outb(struct hx *h, uint16_t port, uint8_t v);
void hx_outw(struct hx *h, uint16_t port, uint16_t v);
void hx_outl(struct hx *h, uint16_t port, uint32_t v);
uint64_t hx_mmio_read(struct hx *h, uint64_t addr, unsigned size);
void hx_mmio_write(struct hx *h, uint64_t addr, uint64_t v, unsigned size);
/* Guest RAM (for DMA and descriptor tests). */
void hx_mem_write(struct hx *h, uint64_t gpa, const void *buf, size_t len);
void hx_mem_read(struct hx *h, uint64_t gpa, void *buf, size_t len);

/* Virtual clock: starts at 0, moves only here; due timers fire inside. */
uint64_t hx_clock(struct hx *h);
void hx_clock_step(struct hx *h, uint64_t ns);
/* Displays (<modvm/display.h>): ask the first display adapter for an
 * update, as the core's refresh does; *s (valid until the next harness
 * call) and *dirty are what the adapter reported, checked and clipped.
 * -1 if no device registered a display. */
struct modvm_display_surface;
struct modvm_display_rect;
int hx_display_update(struct hx *h, struct modvm_display_surface *s,
		      struct modvm_display_rect *dirty);
/* The deadline of the earliest armed timer (virtual ns), UINT64_MAX none. */
uint64_t hx_timer_next(struct hx *h);
/* Run fd watches that are ready (backends with input), waiting at most
 * timeout_ms. Returns the number of callbacks run. */
int hx_poll(struct hx *h, int timeout_ms);
/* Run a shell command (printf-style, up to 1 KiB); its exit status, or -1
 * when it did not exit normally. For tests that call outside tools. */
int hx_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The chardev backend of device `id` reports new modem input lines
 * (MODVM_MODEM_*), as a pass-through serial backend would. Returns 0, or
 * -1 when the device has no chardev. */
int hx_chardev_modem(struct hx *h, const char *id, unsigned lines);

/* Drive an interrupt line as a device would (tests of interrupt
 * controllers). */
void hx_irq_set(struct hx *h, unsigned line, int level);
/* A local APIC's EOI broadcast for a level-triggered vector. */
void hx_eoi_broadcast(struct hx *h, uint8_t vector);
/* Interrupts as seen by the platform. */
int hx_irq_level(struct hx *h, unsigned line);   /* current line level */
unsigned hx_irq_raises(struct hx *h, unsigned line); /* 0->1 edges seen */
int hx_intr(struct hx *h);            /* INTR pin of the boot CPU */
int hx_intr_ack(struct hx *h);        /* INTA cycle: vector or -1 */
unsigned hx_msi_count(struct hx *h);
void hx_msi_last(struct hx *h, uint64_t *addr, uint32_t *data);
/* Set when a device made a machine request (poweroff/reset), else 0. */
int hx_machine_request(struct hx *h);
void hx_clear_machine_request(struct hx *h);
/* The status of a MODVM_REQUEST_EXIT (host machine_exit). */
int hx_exit_status(struct hx *h);
/* The VM's vCPU count devices see (host cpu_count); 1 unless set. Call
 * before hx_add. */
void hx_set_cpus(struct hx *h, unsigned n);

/* A CPU engine for what devices make the core tell one: the test's ops
 * table and the VM handle its vm_create would have returned. There are no
 * vCPUs, so the core calls only the VM-wide callbacks (set_a20,
 * deliver_msi, mem_written), each only if ops->size covers it, as for any
 * engine. NULL ops takes it away; hx_free does too. */
void hx_set_engine(struct hx *h, const struct modvm_cpu_engine_ops *ops,
		   void *vm);

/* The E820 memory map modvm's boot code gives a guest of this machine's
 * RAM size (docs/boot.md), for firmware devices that describe memory:
 * up to max entries into map, returns how many (at most 8). */
struct hx_e820 {
	uint64_t addr, size;
	uint32_t type; /* 1 RAM, 2 reserved */
};
unsigned hx_e820(struct hx *h, struct hx_e820 *map, unsigned max);

/* Disks at a snapshot (docs/snapshot-format.md, "Disks"), in the core's
 * phases, for virtio front ends and block backends: prepare drains and
 * flushes every writable raw or qcow2 disk and creates its overlay
 * "<path>.<tag>.qcow2" (0, or -1 with nothing changed and hx_error()
 * saying why); commit moves every front end onto its overlay; abort closes
 * and deletes the prepared overlays. */
int hx_freeze_prepare(struct hx *h, const char *tag);
void hx_freeze_commit(struct hx *h);
void hx_freeze_abort(struct hx *h);
/* Front end `id`'s disk as the core's block layer has it now; strings
 * valid until the next freeze call or hx_free. */
struct hx_disk {
	const char *path;    /* the file written: after a freeze, its overlay */
	const char *format;  /* "raw" or "qcow2"; NULL: not a file disk */
	const char *overlay; /* hx_freeze_prepare's, until commit or abort */
	bool readonly;
	bool on_overlay;     /* path is an overlay a freeze or resume made */
};
/* Returns 0, or -1 when `id` has no disk. */
int hx_disk(struct hx *h, const char *id, struct hx_disk *out);
/* What modvm resume does, before front end `id` is added: it starts on a
 * new qcow2 overlay file `overlay` over the frozen image `base` (of
 * `format`, "raw" or "qcow2") instead of the image its properties name. */
void hx_resume_on(struct hx *h, const char *id, const char *base,
		  const char *format, const char *overlay);

#endif
