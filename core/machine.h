/* The machine: guest RAM, I/O dispatch, interrupts, the virtual clock and
 * timers, the event loop, and the plugin instances assembled from a config.
 * Plugins see none of this; they reach it through struct modvm_host. */
#ifndef MODVM_CORE_MACHINE_H
#define MODVM_CORE_MACHINE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <modvm/modvm.h>

#include "config.h"
#include "memory.h"
#include "pci.h"
#include "registry.h"
#include "util.h"

struct machine;
struct snapshot;

/* One plugin instance: a device, a backend, or the engine. */
struct modvm_inst {
	struct machine *m;
	const struct plugin *plugin;
	char *id;
	char *prefix;                       /* "serial-16550[com1]" */
	const struct resolved_props *props; /* its own properties */
	struct cfg_device *cfg;             /* its config group, or NULL */
	void *obj;                          /* what create/open returned */
	char error[ERR_LEN];                /* set_error text */
};

/* ---- I/O regions (io.c) ------------------------------------------------ */
struct modvm_region {
	struct machine *m;
	modvm_inst *inst;
	bool mmio;
	bool enabled;
	uint64_t base, len;
	const struct modvm_io_ops *ops;
	void *opaque;
};

struct io_space {
	struct modvm_region **pio;   /* 65536 entries: port -> region */
	struct modvm_region **mmio;  /* enabled MMIO regions, sorted by base */
	size_t nmmio;
	struct modvm_region **all;   /* every region, for cleanup */
	size_t nall;
};

void io_init(struct io_space *io);
void io_destroy(struct io_space *io);
modvm_region *io_register(struct machine *m, modvm_inst *inst, bool mmio,
			  uint64_t base, uint64_t len,
			  const struct modvm_io_ops *ops, void *opaque);
int io_region_move(modvm_region *r, uint64_t base);
void io_region_enable(modvm_region *r, bool enabled);
void io_region_remove(modvm_region *r);
uint64_t io_pio_read(struct machine *m, uint16_t port, unsigned size);
void io_pio_write(struct machine *m, uint16_t port, uint64_t v, unsigned size);
bool io_mmio_read(struct machine *m, uint64_t addr, void *data, unsigned size);
bool io_mmio_write(struct machine *m, uint64_t addr, const void *data,
		   unsigned size);

/* ---- interrupts (irq.c) ------------------------------------------------ */
#define IRQ_LINES 64

struct modvm_irq_sink {
	unsigned first, count;
	void (*set)(void *opaque, unsigned line, int level);
	void *opaque;
	modvm_inst *inst;
};

struct eoi_listener {
	modvm_inst *inst;
	void (*cb)(void *opaque, uint8_t vector);
	void *opaque;
	struct eoi_listener *next;
};

struct irq_state {
	int level[IRQ_LINES];
	unsigned raises[IRQ_LINES];
	struct modvm_irq_sink **sinks;
	size_t nsinks;
	int intr_level;
	int (*intr_ack)(void *opaque);
	void *intr_ack_opaque;
	modvm_inst *intr_ack_inst;
	void (*msi)(void *opaque, uint64_t addr, uint32_t data);
	void *msi_opaque;
	modvm_inst *msi_inst;
	struct eoi_listener *eoi;     /* told of level-triggered EOIs */
	unsigned msi_count;           /* observed, for the test harness */
	/* Rising edges and MSIs ever sent: a timer callback that changed it
	 * raised an interrupt (timer.c paces the next one on it). */
	atomic_ulong events;
	uint64_t acks;                /* INTR acknowledges (under the lock) */
	uint64_t msi_last_addr;
	uint32_t msi_last_data;
};

void irq_line_set(struct machine *m, unsigned line, int level);
modvm_irq_sink *irq_sink_add(struct machine *m, modvm_inst *inst,
			     unsigned first, unsigned count,
			     void (*set)(void *, unsigned, int), void *opaque);
void irq_intr_set(struct machine *m, int level);
int irq_intr_ack(struct machine *m);
void irq_msi_send(struct machine *m, uint64_t addr, uint32_t data);
void irq_eoi_broadcast(struct machine *m, uint8_t vector);
int irq_eoi_listen(struct machine *m, modvm_inst *inst,
		   void (*cb)(void *, uint8_t), void *opaque);
void irq_eoi_forget(struct machine *m, modvm_inst *inst);
void irq_destroy(struct irq_state *irq);

/* ---- virtual clock and timers (timer.c) --------------------------------- */
struct vclock {
	atomic_uint seq;      /* seqlock: odd while being changed */
	bool manual;          /* test harness: moves only when told */
	bool running;
	uint64_t base_host;   /* CLOCK_MONOTONIC ns when last started */
	uint64_t base_virt;   /* virtual ns at that moment / when stopped */
	int64_t boot_wall_ns; /* wall clock at virtual time 0 */
	/* The earliest armed timer's deadline: a running clock does not
	 * pass it until the timer has run, so no guest sees a deadline go
	 * by without its interrupt when the host runs the event loop late.
	 * last: the highest value returned, so gating never goes back. */
	_Atomic uint64_t gate;
	_Atomic uint64_t last;
	/* Host time taken out of the running clock while the lone vCPU thread
	 * waited for a host CPU (timer.c, steal_check), and how many times. */
	uint64_t hidden_ns;
	uint64_t hides;
};

struct modvm_timer {
	struct machine *m;
	modvm_inst *inst;
	void (*cb)(void *opaque);
	void *opaque;
	uint64_t deadline;
	bool armed;
	struct modvm_timer *next;
};

void vclock_init(struct vclock *c, bool manual);
uint64_t vclock_now(struct vclock *c);
/* The time vclock_now would return, for deciding which timers are due:
 * it does not count as seen (a vCPU's waits can still leave the clock). */
uint64_t vclock_peek(struct vclock *c);
void vclock_start(struct vclock *c);
void vclock_stop(struct vclock *c);
void vclock_advance(struct vclock *c, uint64_t ns); /* manual clocks only */
/* Take ns of host time out of a running clock: it reads ns less from now
 * on (never less than a value already returned). */
void vclock_hide(struct vclock *c, uint64_t ns);
/* Set the gate (timer.c keeps it at the earliest armed deadline). */
void vclock_set_gate(struct vclock *c, uint64_t deadline);
uint64_t host_monotonic_ns(void);

modvm_timer *timer_create_(struct machine *m, modvm_inst *inst,
			   void (*cb)(void *), void *opaque);
void timer_arm(modvm_timer *t, uint64_t deadline);
void timer_disarm(modvm_timer *t);
void timer_destroy(modvm_timer *t);
/* Earliest armed deadline, or UINT64_MAX. */
uint64_t timers_next(struct machine *m);
/* Fire every timer due at `now`; returns how many ran. A timer may wait
 * for the vCPUs instead (see struct timer_pace). */
int timers_run_due(struct machine *m, uint64_t now);

/* Pacing: after a timer callback raised an interrupt, the next timer runs
 * only once the guest acknowledged an interrupt (INTA), or every vCPU
 * thread that wants to run (runnable, or asleep on the machine lock) has
 * had the CPU for a while, or PACE_MAX_NS of host time went by; the gate
 * holds the clock meanwhile. Without it, a host that deschedules a vCPU thread for
 * 10 ms lets the event loop raise several timer edges the guest never
 * saw apart: they merge in the interrupt controller and the guest loses
 * ticks (Linux's jiffies fall behind its TSC and it marks the TSC
 * unstable). Guest time then stands while the vCPU cannot run: the
 * "delay" lost-tick policy, applied to every timer-driven device. */
struct vcpu_pace {
	bool live;            /* the thread is in vcpu_main */
	int stat_fd;          /* its /proc/self/task/TID/stat, or -1 */
	clockid_t cpu;        /* the thread's CPU-time clock */
	uint64_t mark;        /* its CPU time when the interrupt was raised */
	/* Run-queue waits taken out of the clock (timer.c, steal_check):
	 * its /proc/self/task/TID/schedstat or -1, the wait total last read
	 * from it and when (host ns). Touched by the vCPU thread only. */
	int sched_fd;
	uint64_t run_delay;
	uint64_t checked;
	uint64_t counted_ahead; /* a wait in the last read, counted already */
	uint64_t lock_wait;   /* ns blocked in machine_lock since the last check */
};

struct timer_pace {
	struct vcpu_pace *v;  /* one per vCPU while they run, else NULL */
	unsigned n;
	bool armed;           /* an interrupt was raised: check before the next */
	bool waiting;         /* a due timer waits for the vCPUs */
	uint64_t armed_host;  /* host ns when armed */
	uint64_t acks;        /* irq.acks when armed */
	uint64_t holds;       /* rounds a due timer waited (statistics) */
	uint64_t overruns;    /* waits ended by PACE_MAX_NS */
	bool virtual_tsc;     /* the engine has MODVM_ENGINE_VIRTUAL_TSC */
	bool hide_steal;      /* and one vCPU: its waits leave virtual time */
};

/* vCPU threads (run.c) register themselves for pacing. */
void pace_vcpu_enter(struct machine *m, unsigned index);
void pace_vcpu_leave(struct machine *m, unsigned index);
/* machine_lock blocked the calling thread for ns (counted on vCPU threads
 * whose waits leave virtual time: timer.c, steal_check). */
void steal_note_lock_wait(uint64_t ns);
/* How long the event loop may sleep while a timer waits (ns), or -1. */
int64_t pace_poll_ns(struct machine *m);

/* ---- event loop (loop.c) ----------------------------------------------- */
struct modvm_watch {
	struct machine *m;
	modvm_inst *inst;
	int fd;
	unsigned events;
	void (*cb)(void *opaque, int fd, unsigned revents);
	void *opaque;
	bool dead;
	struct modvm_watch *next;
};

struct event_loop {
	int wake_fd;          /* eventfd: timers changed, watches changed, stop */
	struct modvm_watch *watches;
	pthread_t thread;
	bool thread_running;
	atomic_bool stop;
};

int loop_init(struct event_loop *l, char *err, size_t len);
void loop_destroy(struct machine *m);
void loop_wake(struct machine *m);
/* One round: wait up to timeout_ms (or the next timer), then run due
 * timers and ready fds. Returns the number of callbacks run. */
int loop_run_once(struct machine *m, int timeout_ms);
int loop_start_thread(struct machine *m, char *err, size_t len);
void loop_stop_thread(struct machine *m);
modvm_watch *loop_watch(struct machine *m, modvm_inst *inst, int fd,
			unsigned events, void (*cb)(void *, int, unsigned),
			void *opaque);
void loop_watch_events(modvm_watch *w, unsigned events);
void loop_unwatch(modvm_watch *w);

/* ---- character devices (chardev.c) -------------------------------------- */
/* The last CONSOLE_LOG_SIZE bytes a front end wrote (FUSE "console"). */
#define CONSOLE_LOG_SIZE (1u << 20)

struct modvm_chardev {
	struct machine *m;
	uint8_t *log;                 /* ring of CONSOLE_LOG_SIZE bytes */
	uint64_t logged;              /* bytes ever written */
	modvm_inst *frontend;
	modvm_inst *backend;          /* its obj is the backend handle */
	const struct modvm_chardev_ops *ops;
	const struct modvm_chardev_frontend *fe;
	void *fe_opaque;
	struct modvm_chardev *next;
};

modvm_chardev *chardev_open(modvm_inst *inst, const char *prop,
			    const struct modvm_chardev_frontend *fe,
			    void *opaque);
void chardev_close(modvm_chardev *chr);
size_t chardev_write(modvm_chardev *chr, const void *buf, size_t len);
/* Copy up to len bytes of the console log starting at byte `from` (counted
 * from the first byte ever written; bytes older than the ring are gone).
 * Returns the number copied. Call with the machine lock held. */
size_t chardev_log_read(const modvm_chardev *chr, uint64_t from, void *buf,
			size_t len);

/* ---- the machine (machine.c) ------------------------------------------- */
struct machine {
	const struct vm_config *cfg;
	const struct registry *reg;
	struct vm_memory mem;
	pthread_mutex_t lock;         /* recursive; held in device callbacks */
	atomic_uint lock_waiters;     /* threads blocked in machine_lock */
	struct io_space io;
	struct irq_state irq;
	struct vclock clock;
	modvm_timer *timers;
	struct timer_pace pace;
	struct event_loop loop;
	struct modvm_host host;
	int verbosity;                /* enum modvm_log_level */
	const char *control_path;     /* --control: the control socket */
	bool no_reboot;               /* --no-reboot: a guest reset ends modvm */
	const char *snapshot_dir;     /* where `snapshot NAME` writes NAME */
	const struct snapshot *resume_from; /* resume instead of booting */
	int sandbox_cli;              /* --sandbox: enum sandbox_mode */
	/* --incoming: receive a live migration instead of booting; the
	 * socket listening for it, bound at set-up (migration.c). */
	const char *incoming;
	int incoming_fd;
	/* Live migration (source): a bit per RAM page (memfd order) set
	 * when the page is written (machine_mem_written: mem_dirty,
	 * mem_write, the engine's dirty log), or NULL when not tracking. */
	_Atomic uint64_t *_Atomic dirty;
	_Atomic uint64_t *dirty_map;  /* its memory (freed with the machine) */
	uint64_t dirty_pages;         /* bits in dirty */

	modvm_inst **insts;           /* devices and backends, creation order */
	size_t ninsts;
	modvm_chardev *chardevs;
	modvm_net *nets;              /* open net backends (net.c) */
	modvm_display *displays;      /* display adapters (display.c) */
	struct input_sink *inputs;    /* input devices (display.c) */
	struct pci_bus *pci;          /* PCI functions (pci.c), or NULL */
	/* Virtio functions (virtio.c) and open block backends (block.c),
	 * under virtio_lock; the disks a resume starts on overlays. */
	pthread_mutex_t virtio_lock;
	struct modvm_virtio_dev *virtio_devs;
	struct core_block *blocks;
	struct resume_disk *resume_disks;
	size_t nresume_disks;

	/* The engine, once created. */
	modvm_inst *engine;
	const struct modvm_cpu_engine_ops *eops;
	void *evm;
	void **vcpus;
	unsigned ncpus;

	/* Pause: vCPU threads park between runs of the engine, which stops
	 * at an instruction boundary when kicked. */
	pthread_mutex_t pause_lock;
	pthread_cond_t pause_cond;
	bool pause_req;
	bool paused;                  /* the vCPUs are parked */
	bool user_paused;             /* ... because the user asked */
	unsigned holds;               /* ... or for internal reads */
	unsigned parked;
	unsigned vcpu_threads;        /* vCPU threads running now */

	/* Requests from devices (poweroff, reset) and from the user. */
	pthread_mutex_t req_lock;
	pthread_cond_t req_cond;
	int request;                  /* enum modvm_machine_request or 0 */
	int exit_status;              /* with MODVM_REQUEST_EXIT */
	/* vCPUs of the VM (config `cpus`), known before the engine exists:
	 * host cpu_count. 0 means 1 (the harness without a config). */
	unsigned cpus;

	/* A20 gate inputs (port 92h, the 8042's output port), under lock:
	 * the gate is their OR (host.c). */
	struct { modvm_inst *inst; bool on; } a20_src[4];
	bool a20_told;                /* "the engine cannot mask A20" said */
};

/* Build a machine without devices: RAM, I/O, clock, loop, host table. */
int machine_init(struct machine *m, uint64_t mem_size, bool manual_clock,
		 char *err, size_t len);
/* The same, with RAM mapped copy-on-write from a snapshot's image. */
int machine_init_image(struct machine *m, const char *image, uint64_t mem_size,
		       char *err, size_t len);
void machine_destroy(struct machine *m);
/* Create one plugin instance of a device from resolved props. On failure
 * the message names the instance and the plugin's reason. */
modvm_inst *machine_add_device(struct machine *m, const struct plugin *p,
			       const char *id, const struct resolved_props *rp,
			       struct cfg_device *cfg, char *err, size_t len);
/* Create every device of the config, in order. */
int machine_add_config_devices(struct machine *m, struct vm_config *cfg,
			       char *err, size_t len);
void machine_reset_devices(struct machine *m);
void machine_request(struct machine *m, int req);
/* MODVM_REQUEST_EXIT with the status `modvm run` exits with. */
void machine_request_exit(struct machine *m, int status);
/* Guest RAM [gpa, gpa+len) was written by something other than a vCPU
 * (DMA, the FUSE memory file): tell the engine (ops mem_written). */
void machine_mem_written(struct machine *m, uint64_t gpa, uint64_t len);
void machine_lock(struct machine *m);
void machine_unlock(struct machine *m);

/* host.c */
void host_table_init(struct machine *m);
modvm_inst *inst_new(struct machine *m, const struct plugin *p,
		     const char *id, const struct resolved_props *rp,
		     struct cfg_device *cfg);
void inst_free(modvm_inst *inst);
/* The backend group (plugin and properties) of BACKEND property `prop` of
 * front end fe, if that property names a backend of `kind`; else NULL. */
const struct resolved_props *inst_backend(modvm_inst *fe, const char *prop,
					  uint32_t kind);
/* Retire the fd watches and timers a backend instance left registered
 * (its close ran): they go with it. */
void inst_release_loop(struct machine *m, modvm_inst *be);
void machine_log(struct machine *m, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
