/* Running a machine: the engine, one thread per vCPU, the event loop, and
 * the main thread waiting for power-off, reset, an error or a signal. */
#ifndef MODVM_CORE_RUN_H
#define MODVM_CORE_RUN_H

#include "machine.h"

/* Internal requests beyond enum modvm_machine_request. */
enum {
	REQUEST_QUIT = MODVM_REQUEST_QUIT, /* signal, ctl quit, Ctrl-A x */
	REQUEST_ERROR = 101, /* an engine could not continue */
	REQUEST_MIGRATED = 102, /* the VM moved to a migration destination */
};

/* Exit codes of `modvm run`, documented in docs/cli.md. */
enum {
	EXIT_POWEROFF = 0,
	EXIT_FAILURE_RUN = 1,   /* the VM started and then failed */
	EXIT_USAGE = 2,         /* bad command line or config: nothing ran */
	EXIT_GUEST_PANIC = 3,   /* the guest reported a panic */
	EXIT_GUEST_RESET = 4,   /* the guest reset itself, run with --no-reboot */
	EXIT_INTERRUPTED = 130, /* stopped by SIGINT/SIGTERM or the user */
};

/* The user's pause: every vCPU stops at an instruction boundary and the
 * virtual clock stops; returns when all are parked (0), or -1 if the vCPUs
 * are not running (starting, resetting or stopping). */
int machine_pause(struct machine *m);
void machine_resume(struct machine *m);
/* A short internal stop (reading state, taking a snapshot): counted, and
 * independent of the user's pause, so a `resume` from the control socket
 * cannot end a hold and a release cannot end the user's pause. */
int machine_hold(struct machine *m);
void machine_release(struct machine *m);
/* Paused by the user (holds are not shown). */
bool machine_is_paused(struct machine *m);
/* vCPU threads are running (false while starting or resetting). */
bool machine_is_started(struct machine *m);

/* Create the engine and vCPUs, load the boot image, run until the machine
 * stops. Returns an exit code; messages go to stderr. */
int machine_run(struct machine *m, struct vm_config *cfg);
/* Block SIGINT, SIGTERM and SIGHUP in the calling thread; main() calls it
 * before anything creates a thread, so every thread modvm or a plugin
 * creates inherits it and only machine_run's signal thread takes them. */
void machine_block_stop_signals(void);

#endif
