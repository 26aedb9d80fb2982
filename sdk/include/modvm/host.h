/* modvm SDK: the host-services table, a plugin's only way into the core.
 *
 * The core passes a const struct modvm_host * to every plugin callback that
 * creates something. The table is size-prefixed: services are only ever
 * appended (an ABI minor bump). A core refuses plugins built against a newer
 * minor than its own, so every service declared here exists in any core that
 * loaded the plugin: call it without checking.
 *
 * Threading: device callbacks (I/O handlers, timers, fd watches, irq sinks)
 * are called with the machine lock held, one at a time, so a device needs no
 * lock of its own for state touched only from those callbacks. Services may
 * be called from any of those callbacks.
 */
#ifndef MODVM_HOST_H
#define MODVM_HOST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Opaque handles owned by the core. */
typedef struct modvm_inst modvm_inst;       /* one plugin instance */
typedef struct modvm_region modvm_region;   /* a PIO or MMIO range */
typedef struct modvm_timer modvm_timer;     /* a virtual-clock timer */
typedef struct modvm_watch modvm_watch;     /* a file-descriptor watch */
typedef struct modvm_irq_sink modvm_irq_sink;
typedef struct modvm_chardev modvm_chardev; /* see <modvm/chardev.h> */
struct modvm_chardev_frontend;
struct modvm_serial_params;
typedef struct modvm_pci_dev modvm_pci_dev; /* see <modvm/pci.h> */
struct modvm_pci_info;
struct modvm_pci_func_state;
struct modvm_cpu_model;
typedef struct modvm_virtio_dev modvm_virtio_dev; /* see <modvm/virtio.h> */
struct modvm_virtio_info;
struct modvm_virtio_state;
struct modvm_virtio_queue_state;
struct modvm_virtio_elem;
struct modvm_block;                         /* see <modvm/block.h> */
typedef struct modvm_net modvm_net;         /* see <modvm/net.h> */
typedef struct modvm_thread modvm_thread;   /* a plugin's own thread */
struct modvm_net_frontend;
struct modvm_net_hdr;
typedef struct modvm_display modvm_display; /* see <modvm/display.h> */
struct modvm_display_adapter;
struct modvm_display_surface;
struct modvm_input_ops;
struct iovec;

enum modvm_log_level {
	MODVM_LOG_ERROR = 0,
	MODVM_LOG_WARN = 1,
	MODVM_LOG_INFO = 2,
	MODVM_LOG_DEBUG = 3,
	MODVM_LOG_TRACE = 4,
};

/* I/O handlers. size is 1, 2, 4 or 8; offset is relative to the region
 * base. A read fills *value (only the low size bytes are used). */
struct modvm_io_ops {
	uint64_t (*read)(void *opaque, uint64_t offset, unsigned size);
	void (*write)(void *opaque, uint64_t offset, uint64_t value, unsigned size);
};

enum modvm_fd_events {
	MODVM_FD_IN = 1u << 0,
	MODVM_FD_OUT = 1u << 1,
	MODVM_FD_ERR = 1u << 2, /* error or hang-up (reported, never requested) */
};

/* Machine-wide requests a device can make. */
enum modvm_machine_request {
	MODVM_REQUEST_POWEROFF = 1, /* guest powered off: modvm exits 0 */
	MODVM_REQUEST_RESET = 2,    /* platform reset (all vCPUs and devices) */
	MODVM_REQUEST_PANIC = 3,    /* guest reported a fatal error */
	MODVM_REQUEST_QUIT = 4,     /* the user stopped the VM (Ctrl-A x): exit 130 */
	/* The guest ended the VM with an exit status (a test device such as
	 * isa-debug-exit): make it with host->machine_exit, which carries the
	 * status; through machine_request the status is 0. */
	MODVM_REQUEST_EXIT = 5,
};

struct modvm_host {
	uint32_t size;        /* sizeof(struct modvm_host) of the core */
	uint32_t abi_major;   /* the core's MODVM_ABI_MAJOR */
	uint32_t abi_minor;   /* the core's MODVM_ABI_MINOR */
	uint32_t reserved;

	/* --- logging -------------------------------------------------- */
	/* Prefixed with the instance ("serial-16550[com1]: "). Messages above
	 * the configured verbosity cost one comparison. */
	void (*log)(modvm_inst *inst, enum modvm_log_level level,
		    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
	/* Record why create/open failed; the core prints it with the config
	 * location of the instance. */
	void (*set_error)(modvm_inst *inst, const char *fmt, ...)
		__attribute__((format(printf, 2, 3)));

	/* --- properties (validated against the schema before create) ---- */
	bool (*prop_bool)(modvm_inst *inst, const char *name);
	int64_t (*prop_int)(modvm_inst *inst, const char *name);
	uint64_t (*prop_size)(modvm_inst *inst, const char *name);
	/* STRING, ENUM and BACKEND values; never NULL for a known property */
	const char *(*prop_string)(modvm_inst *inst, const char *name);
	/* ENUM: index into the schema's choices */
	int (*prop_enum)(modvm_inst *inst, const char *name);
	/* Instance id from the config ("com1"); engines get their plugin name. */
	const char *(*inst_id)(modvm_inst *inst);

	/* --- guest physical memory ------------------------------------- */
	/* Copy to/from guest RAM. Return 0, or -1 if any byte of
	 * [gpa, gpa+len) is not RAM (nothing is copied then). Never touches
	 * memory outside the guest. */
	int (*mem_read)(modvm_inst *inst, uint64_t gpa, void *buf, size_t len);
	int (*mem_write)(modvm_inst *inst, uint64_t gpa, const void *buf,
			 size_t len);
	/* A host pointer to [gpa, gpa+len) if the whole range is contiguous
	 * RAM, else NULL. Valid until the machine is destroyed. Writes through
	 * it are tracked for snapshots only if followed by mem_dirty. */
	void *(*mem_ptr)(modvm_inst *inst, uint64_t gpa, uint64_t len);
	void (*mem_dirty)(modvm_inst *inst, uint64_t gpa, uint64_t len);
	uint64_t (*mem_size)(modvm_inst *inst); /* configured RAM in bytes */

	/* --- I/O regions ----------------------------------------------- */
	/* Claim ports [port, port+len). A range overlapping another owner's is
	 * refused with both owners named (returns NULL, error set). */
	modvm_region *(*pio_register)(modvm_inst *inst, uint16_t port,
				      uint32_t len,
				      const struct modvm_io_ops *ops,
				      void *opaque);
	/* Claim guest-physical [addr, addr+len) for MMIO. Same rules. */
	modvm_region *(*mmio_register)(modvm_inst *inst, uint64_t addr,
				       uint64_t len,
				       const struct modvm_io_ops *ops,
				       void *opaque);
	/* Move a region (PCI BAR programming). Returns 0, or -1 with the
	 * region left disabled if the new place overlaps another owner. */
	int (*region_move)(modvm_region *r, uint64_t new_base);
	void (*region_enable)(modvm_region *r, bool enabled);
	void (*region_remove)(modvm_region *r);
	/* Issue an access as the CPU would (used by bridges and DMA-less
	 * forwarding). Unclaimed reads return all ones. */
	uint64_t (*pio_read)(modvm_inst *inst, uint16_t port, unsigned size);
	void (*pio_write)(modvm_inst *inst, uint16_t port, uint64_t value,
			  unsigned size);
	/* Returns false if no region claims addr (reads then give all ones,
	 * writes are dropped); engines use it to report stray accesses. */
	bool (*mmio_read)(modvm_inst *inst, uint64_t addr, void *data,
			  unsigned size);
	bool (*mmio_write)(modvm_inst *inst, uint64_t addr, const void *data,
			   unsigned size);

	/* --- interrupts ------------------------------------------------ */
	/* Drive interrupt line `line` (ISA IRQ 0-15, PCI INTx lines 16-23) to
	 * level 0 or 1. Edge-triggered devices pulse 1 then 0. */
	void (*irq_set)(modvm_inst *inst, unsigned line, int level);
	/* Interrupt controllers register to receive lines
	 * [first, first+count); every sink covering a line sees it. */
	modvm_irq_sink *(*irq_sink_register)(
		modvm_inst *inst, unsigned first, unsigned count,
		void (*set)(void *opaque, unsigned line, int level),
		void *opaque);
	/* Send an MSI (address/data as written by the guest). It reaches the
	 * MSI handler: the engine's local APIC, or a LAPIC plugin. */
	void (*msi_send)(modvm_inst *inst, uint64_t addr, uint32_t data);
	int (*msi_handler_register)(modvm_inst *inst,
				    void (*deliver)(void *opaque, uint64_t addr,
						    uint32_t data),
				    void *opaque);
	/* The legacy INTR pin of the boot CPU (8259 output). The controller
	 * drives it and registers the acknowledge callback that returns the
	 * vector (-1 if none: spurious). */
	void (*intr_set)(modvm_inst *inst, int level);
	int (*intr_source_register)(modvm_inst *inst,
				    int (*ack)(void *opaque), void *opaque);
	/* Engines: the CPU takes the legacy interrupt; returns its vector,
	 * or -1 if the line dropped meanwhile (nothing to deliver). */
	int (*intr_ack)(modvm_inst *inst);

	/* --- virtual clock and timers ---------------------------------- */
	/* Nanoseconds of virtual time: advances only while the VM runs. */
	uint64_t (*clock_ns)(modvm_inst *inst);
	/* Host wall-clock time in ns since the epoch at virtual time 0 (for
	 * RTCs: wall = boot_wall + clock_ns). Stable across snapshots. */
	int64_t (*boot_wall_ns)(modvm_inst *inst);
	modvm_timer *(*timer_new)(modvm_inst *inst, void (*cb)(void *opaque),
				  void *opaque);
	/* Fire once when clock_ns() >= deadline; re-arming replaces. */
	void (*timer_mod)(modvm_timer *t, uint64_t deadline_ns);
	void (*timer_del)(modvm_timer *t);      /* disarm, keep */
	void (*timer_free)(modvm_timer *t);
	bool (*timer_pending)(modvm_timer *t);

	/* --- event loop ------------------------------------------------ */
	modvm_watch *(*fd_watch)(modvm_inst *inst, int fd, unsigned events,
				 void (*cb)(void *opaque, int fd,
					    unsigned revents),
				 void *opaque);
	void (*fd_watch_events)(modvm_watch *w, unsigned events);
	void (*fd_unwatch)(modvm_watch *w);

	/* --- machine --------------------------------------------------- */
	void (*machine_request)(modvm_inst *inst,
				enum modvm_machine_request req);

	/* --- character devices (<modvm/chardev.h>) -------------------- */
	/* Front end: open the backend named by property `prop`. fe may be
	 * NULL for a device that only writes (input is dropped). Closed by
	 * the core with the instance if the plugin does not close it. */
	modvm_chardev *(*chardev_open)(modvm_inst *inst, const char *prop,
				       const struct modvm_chardev_frontend *fe,
				       void *opaque);
	size_t (*chardev_write)(modvm_chardev *chr, const void *buf,
				size_t len);
	void (*chardev_accept_input)(modvm_chardev *chr);
	/* Pass-through control; return -1 if the backend has no such line
	 * (a plain file or terminal), which a front end may ignore. */
	int (*chardev_set_params)(modvm_chardev *chr,
				  const struct modvm_serial_params *p);
	int (*chardev_set_modem)(modvm_chardev *chr, unsigned lines);
	int (*chardev_get_modem)(modvm_chardev *chr, unsigned *lines);
	void (*chardev_close)(modvm_chardev *chr);
	/* Backend: deliver input to the front end. receive takes at most
	 * can_receive bytes; keep the rest and wait for accept_input. */
	size_t (*chardev_can_receive)(modvm_chardev *chr);
	void (*chardev_receive)(modvm_chardev *chr, const void *buf,
				size_t len);
	void (*chardev_modem_changed)(modvm_chardev *chr, unsigned lines);

	/* --- cpu engines ----------------------------------------------- */
	/* The CPU model the config chose (see <modvm/cpu.h>). */
	const struct modvm_cpu_model *(*cpu_model)(modvm_inst *inst);

	/* --- PCI (<modvm/pci.h>) -------------------------------------- */
	/* Become a PCI function on bus 0. The core owns the config space
	 * and maps the BARs where the guest puts them. NULL (error set) if
	 * the info is invalid or no slot is free. Released with the
	 * instance. */
	modvm_pci_dev *(*pci_register)(modvm_inst *inst,
				       const struct modvm_pci_info *info);
	/* Level of the function's INTx pin. The line stays low while the
	 * guest sets Interrupt Disable or enables MSI/MSI-X. */
	void (*pci_set_irq)(modvm_pci_dev *dev, int level);
	/* Signal MSI-X table entry / MSI vector `vector` as the guest
	 * programmed it (masked: left pending). Returns false when neither
	 * MSI nor MSI-X is enabled or the vector does not exist: the device
	 * then uses INTx. */
	bool (*pci_msi_notify)(modvm_pci_dev *dev, unsigned vector);
	/* DMA to/from guest RAM: -1 if the guest has not set Bus Master in
	 * the command register, or the range is not all RAM. */
	int (*pci_dma_read)(modvm_pci_dev *dev, uint64_t gpa, void *buf,
			    size_t len);
	int (*pci_dma_write)(modvm_pci_dev *dev, uint64_t gpa,
			     const void *buf, size_t len);
	/* Config space offset of extra capability `index` (info->caps), or
	 * 0 if there is no such capability. */
	unsigned (*pci_cap_offset)(modvm_pci_dev *dev, unsigned index);
	/* Host bridges: configuration cycles. bdf = MODVM_PCI_BDF(); an
	 * absent function, a bus other than 0, an offset beyond 0xFF or an
	 * access crossing a dword reads all ones and drops writes. */
	uint32_t (*pci_config_read)(modvm_inst *inst, uint16_t bdf,
				    unsigned offset, unsigned size);
	void (*pci_config_write)(modvm_inst *inst, uint16_t bdf,
				 unsigned offset, uint32_t value,
				 unsigned size);
	/* Host bridges: power-on state for every function (PCI reset); if
	 * assign, then place BARs, set Interrupt Line and enable decode as
	 * firmware would. Also applies to functions registered later. */
	void (*pci_bus_reset)(modvm_inst *inst, bool assign);
	/* Host bridges: the bus as state, st[slot] for slots 0..n-1. Load
	 * checks every slot holds the same function before changing
	 * anything, then restores config space and BAR mappings; -1 with
	 * the error set on mismatch. */
	void (*pci_state_save)(modvm_inst *inst,
			       struct modvm_pci_func_state *st, unsigned n);
	int (*pci_state_load)(modvm_inst *inst,
			      const struct modvm_pci_func_state *st,
			      unsigned n);

	/* --- virtio (<modvm/virtio.h>) ------------------------------- */
	/* Become a virtio 1.x PCI device. state and queues (info->num_queues
	 * entries) are embedded in the instance (see
	 * MODVM_VIRTIO_STATE_SECTION). NULL (error set) if the info is
	 * invalid. Released with the instance. */
	modvm_virtio_dev *(*virtio_register)(
		modvm_inst *inst, const struct modvm_virtio_info *info,
		struct modvm_virtio_state *state,
		struct modvm_virtio_queue_state *queues);
	/* Take the next available chain of `queue` into e (e->max, e->iov,
	 * e->gpa set by the caller): 1 if popped, 0 if none is available,
	 * -1 if the queue is broken (the device is now NEEDS_RESET). */
	int (*virtio_pop)(modvm_virtio_dev *d, unsigned queue,
			  struct modvm_virtio_elem *e);
	/* Return a popped element with `written` bytes written into its
	 * writable part (marked dirty for snapshots). */
	void (*virtio_push)(modvm_virtio_dev *d,
			    const struct modvm_virtio_elem *e,
			    uint32_t written);
	/* Interrupt the driver for `queue` after pushes, unless it asked
	 * not to be (event index, VIRTQ_AVAIL_F_NO_INTERRUPT). */
	void (*virtio_notify)(modvm_virtio_dev *d, unsigned queue);
	/* Device config changed (not after a driver write): bump the
	 * generation and send a configuration change interrupt. */
	void (*virtio_config_changed)(modvm_virtio_dev *d);
	/* Device error: set NEEDS_RESET and tell the driver; logged once. */
	void (*virtio_needs_reset)(modvm_virtio_dev *d, const char *why);
	/* Device reset from the plugin's own reset op (platform reset). */
	void (*virtio_reset)(modvm_virtio_dev *d);
	/* Negotiated features (valid once FEATURES_OK is set). */
	uint64_t (*virtio_features)(modvm_virtio_dev *d);
	/* Used by MODVM_VIRTIO_STATE_SECTION's hooks. */
	void (*virtio_pre_save)(modvm_virtio_dev *d);
	int (*virtio_post_load)(modvm_virtio_dev *d);
	/* Release the device (from the plugin's destroy, or before create
	 * returns NULL). Its PCI function goes with the instance. */
	void (*virtio_unregister)(modvm_virtio_dev *d);

	/* --- block backends (<modvm/block.h>) ------------------------ */
	/* Front end: open the block backend named by property `prop`.
	 * NULL with the error set (the backend's reason) if it fails. */
	const struct modvm_block *(*block_open)(modvm_inst *inst,
						const char *prop);
	void (*block_close)(const struct modvm_block *blk);

	/* --- local APIC end-of-interrupt ------------------------------- */
	/* Engines: a local APIC took an EOI for a level-triggered `vector`
	 * (the APIC's TMR bit was set); every listener sees it, as the
	 * IOAPIC sees the EOI message a real local APIC broadcasts. */
	void (*eoi_broadcast)(modvm_inst *inst, uint8_t vector);
	/* Interrupt controllers (the IOAPIC): be told of those EOIs. */
	int (*eoi_listener_register)(modvm_inst *inst,
				     void (*cb)(void *opaque, uint8_t vector),
				     void *opaque);

	/* --- A20 gate ------------------------------------------------- */
	/* Chipset devices: this instance's A20 gate input is now `enabled`
	 * (port 92h bit 1, the 8042's output port bit 1). The core ORs the
	 * inputs of all instances, as the PIIX4 does (A20M# only while all
	 * are 0), and tells the CPU engine (set_a20 in its ops; an engine
	 * without it keeps A20 enabled, logged once). Call it on every
	 * change, from reset, and from post_load so a snapshot restores it.
	 * An instance that never called it does not count. */
	void (*set_a20)(modvm_inst *inst, bool enabled);
	/* CPU engines: the gate as it is now, to start from in vm_create
	 * (when resuming, the devices' state is loaded before the engine
	 * exists, so their post_load calls reach no engine). */
	bool (*a20_enabled)(modvm_inst *inst);

	/* --- ending the VM, vCPU count --------------------------------- */
	/* Test devices: end the VM and have `modvm run` (or `modvm resume`)
	 * exit with `status` once the VM has shut down as cleanly as after a
	 * power-off (vCPUs stopped, devices destroyed). Only the low 8 bits
	 * reach the parent process (POSIX exit status), and the guest may
	 * pick a value modvm uses itself (docs/cli.md). A power-off or exit
	 * already requested is final: the first one wins, and a later reset
	 * undoes neither. */
	void (*machine_exit)(modvm_inst *inst, int status);
	/* The number of vCPUs of the VM (the config's `cpus`), known from
	 * the first device's create on, before the engine exists. Firmware
	 * interfaces report it (fw_cfg FW_CFG_NB_CPUS). */
	unsigned (*cpu_count)(modvm_inst *inst);

	/* --- network backends (<modvm/net.h>), ABI 2.2 ------------------ */
	/* NIC: open the net backend named by property `prop`; the core
	 * calls fe (size set, can_receive and receive required) with the
	 * machine lock held. NULL with the error set (the backend's
	 * reason). Closed by the core with the instance if the NIC does not
	 * close it. */
	modvm_net *(*net_open)(modvm_inst *inst, const char *prop,
			       const struct modvm_net_frontend *fe,
			       void *opaque);
	void (*net_close)(modvm_net *net);
	/* NIC: one frame to the backend: MODVM_NET_SENT or MODVM_NET_BUSY
	 * (keep the frame, fe->tx_ready follows). hdr may be NULL (a plain
	 * frame); offloads in it the backend did not announce are refused
	 * (dropped, logged once). */
	int (*net_send)(modvm_net *net, unsigned queue,
			const struct modvm_net_hdr *hdr,
			const struct iovec *iov, int iovcnt);
	/* NIC: the guest gave receive buffers again on `queue`. */
	void (*net_rx_ready)(modvm_net *net, unsigned queue);
	/* The backend's enum modvm_net_offload bits, queue pairs (>= 1) and
	 * link state. */
	uint32_t (*net_offloads)(modvm_net *net);
	unsigned (*net_queue_pairs)(modvm_net *net);
	bool (*net_link_up)(modvm_net *net);
	/* Backend: ask the NIC, deliver a frame to it (false: not taken,
	 * keep it and wait for ops->rx_ready), say that sends may go on
	 * after MODVM_NET_BUSY, report the link. They take the machine lock
	 * themselves: call them from any thread. */
	bool (*net_can_receive)(modvm_net *net, unsigned queue, size_t len);
	bool (*net_receive)(modvm_net *net, unsigned queue,
			    const struct modvm_net_hdr *hdr,
			    const struct iovec *iov, int iovcnt);
	void (*net_tx_ready)(modvm_net *net, unsigned queue);
	void (*net_link_changed)(modvm_net *net, bool up);

	/* --- virtio, VM identity (ABI 2.2) ------------------------------ */
	/* Give back the last n elements popped from `queue` and not pushed,
	 * newest first, as if never popped: a receive path that took
	 * buffers for a frame that does not fit after all (virtio-net with
	 * mergeable buffers). */
	void (*virtio_unpop)(modvm_virtio_dev *d, unsigned queue, unsigned n);
	/* The VM's name from the config (`name`), "" if it has none: for
	 * identities that must stay stable across runs and snapshots and
	 * differ between VMs (a NIC's default MAC address). */
	const char *(*vm_name)(modvm_inst *inst);

	/* --- threads (ABI 2.3) --------------------------------------------- */
	/* Start a thread of the plugin's own (an I/O worker) that runs
	 * fn(arg), named `name` (at most 15 characters; ps and the sandbox's
	 * messages show it). Use this, not pthread_create: the thread starts
	 * with modvm's stop signals blocked, and under the sandbox
	 * (docs/sandbox.md) it runs under the device list, like the vCPU and
	 * event-loop threads: reading, writing and syncing descriptors it
	 * already has, memory without PROT_EXEC, futexes and clocks; no path,
	 * no new descriptor, no thread, no socket. So open everything in
	 * create/init and hand the descriptors to the thread. A thread started
	 * during set-up is narrowed when the sandbox is applied, before the
	 * guest runs; it must not block modvm's internal signal (SIGRTMIN+1)
	 * meanwhile. NULL after set_error() if the thread could not start. */
	modvm_thread *(*thread_start)(modvm_inst *inst, const char *name,
				      void *(*fn)(void *arg), void *arg);
	/* Wait until the thread's fn returned and free the handle; *ret (if
	 * not NULL) receives what fn returned. Not from the thread itself. */
	void (*thread_join)(modvm_thread *t, void **ret);
	/* A file this instance creates during set-up and removes itself when
	 * the VM stops (a Unix socket it bound): under the sandbox, whose
	 * Landlock rules refuse removing files outside the folders the VM
	 * writes, removing files in path's folder stays allowed. Call it in
	 * create/init; later calls change nothing. */
	void (*allow_remove)(modvm_inst *inst, const char *path);
	/* NIC: the offloads its guest takes on received frames
	 * (MODVM_NET_OFFLOAD_* bits; only those net_offloads() has, and
	 * only with MODVM_NET_OFFLOAD_RX; 0 after a reset). The core passes
	 * them to the backend and drops frames from it that carry others. */
	void (*net_set_rx_offloads)(modvm_net *net, uint32_t offloads);

	/* --- displays (<modvm/display.h>), ABI 2.4 ---------------------- */
	/* Adapter: expose a surface. `prop` names the adapter's BACKEND
	 * property of kind MODVM_KIND_DISPLAY (the front end, display-NAME);
	 * NULL: no front end, only the core's screendump and screen.png.
	 * a->update is required. NULL with the error set (the front end's
	 * reason). Released with the instance; one display an instance. */
	modvm_display *(*display_register)(modvm_inst *inst, const char *prop,
					   const struct modvm_display_adapter *a,
					   void *opaque);
	/* Adapter: the guest changed what is shown. Cheap (sets a flag,
	 * arms the refresh timer once): call it on every change. */
	void (*display_invalidate)(modvm_display *d);
	/* Front end: update the surface now and fill *s (a new client wants
	 * the whole picture). Call with the machine lock held (from a
	 * callback); *s is valid until the lock is released. */
	void (*display_surface)(modvm_display *d,
				struct modvm_display_surface *s);

	/* --- input (<modvm/input.h>), ABI 2.4 --------------------------- */
	/* Input devices: receive the events front ends inject. 0, or -1
	 * with the error set (ops without size). Released with the
	 * instance. */
	int (*input_register)(modvm_inst *inst, const struct modvm_input_ops *ops,
			      void *opaque);
	/* Front ends: a key (a Linux key code, 1..MODVM_INPUT_KEY_MAX; others
	 * are dropped) went down or up; pointer motion, wheel and buttons.
	 * Every registered device that takes the event gets it. */
	void (*input_key)(modvm_inst *inst, unsigned code, bool down);
	void (*input_pointer)(modvm_inst *inst, int dx, int dy, int dz,
			      unsigned buttons);
};

/* Convenience wrappers so plugin code reads naturally. */
#define modvm_log(h, i, lvl, ...) ((h)->log((i), (lvl), __VA_ARGS__))

#ifdef __cplusplus
}
#endif

#endif
