/* The VM as files (docs/fuse.md): a libfuse3 filesystem served by a thread
 * of its own while the machine runs, showing config, status, control, CPU
 * registers, memory, device state, the console and snapshots. */
#ifndef MODVM_CORE_FUSEFS_H
#define MODVM_CORE_FUSEFS_H

#include <stddef.h>

struct machine;
struct fusefs;

/* Ask for m's tree to be mounted on dir when it runs (modvm run/resume
 * --mount DIR). struct machine has no field for it, so the request is
 * kept here until fusefs_start; one machine per process. */
void fusefs_want_mount(struct machine *m, const char *dir);

/* Mount the tree if fusefs_want_mount asked for it for m. Returns 0 with
 * *out set (NULL if no mount was asked for), or -1 with err set: dir is
 * missing, in use by another modvm, or a stale mount that could not be
 * cleared. A stale modvm mount left by a crashed run is unmounted with a
 * note on stderr. */
int fusefs_start(struct machine *m, struct fusefs **out, char *err,
		 size_t len);
/* Start the thread that serves the mount fusefs_start made: run.c calls
 * it once the sandbox is on, so the thread is born inside it. Safe with
 * NULL. */
void fusefs_serve(struct fusefs *fs);
/* Stop serving and unmount. Safe with NULL. */
void fusefs_stop(struct fusefs *fs);

/* Mount m's tree on dir while the VM runs (control command "mount",
 * `modvm mount SOCKET DIR`): dir must be absolute, an existing empty
 * directory, and not a mount point of a modvm. Several mounts may be live
 * at once. Returns 0, or -1 with err set. */
int fusefs_mount(struct machine *m, const char *dir, char *err, size_t len);
/* Unmount a mount made by fusefs_mount; -1 with err if there is none. */
int fusefs_unmount(struct machine *m, const char *dir, char *err, size_t len);
/* Unmount every fusefs_mount mount (control_stop, on every exit path). */
void fusefs_unmount_all(void);

#endif
