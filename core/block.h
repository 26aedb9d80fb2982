/* The block layer of the core (core/block.c): front ends' block backends,
 * and what snapshots and resume do to the disks. Per machine. */
#ifndef MODVM_CORE_BLOCK_H
#define MODVM_CORE_BLOCK_H

#include <stdbool.h>
#include <stddef.h>

#include <modvm/host.h>

struct machine;

/* Fill the block_* entries of the host-services table. */
void block_host_services(struct modvm_host *h);
/* Close the block backends an instance still holds (after its destroy,
 * or a failed init). */
void block_release_inst(struct machine *m, modvm_inst *inst);
/* Free what block_resume_on recorded (machine_destroy). */
void block_machine_free(struct machine *m);

/* A disk as the block layer has it now: after a snapshot froze it, path is
 * the overlay the VM writes. */
struct block_disk {
	const char *device;   /* front end id */
	const char *path;     /* image file, NULL for backends without one */
	const char *format;   /* "raw" or "qcow2"; NULL: not a file disk */
	bool readonly;
	bool on_overlay;      /* path is an overlay a snapshot or resume made */
	const char *overlay;  /* block_freeze_prepare's overlay, else NULL */
};
#define MAX_DISKS 64 /* block_disks lists at most this many */
size_t block_disks(struct machine *m, struct block_disk *out, size_t max);
/* With the VM held: drain and flush every writable raw/qcow2 disk and
 * create its overlay "<path>.<tag>.qcow2" (block-qcow2 create=true over
 * the image). -1 with err set and nothing changed if any fails. */
/* With the VM held: finish every request of every disk and flush it to
 * stable storage (live migration hands the images over). -1 with err
 * naming the disk if a flush failed. */
int block_flush_all(struct machine *m, char *err, size_t len);
int block_freeze_prepare(struct machine *m, const char *tag, char *err,
			 size_t len);
/* The snapshot is on disk: every front end continues on its overlay. */
void block_freeze_commit(struct machine *m);
/* The snapshot failed: close and delete the prepared overlays. */
void block_freeze_abort(struct machine *m);
/* Before the devices exist (modvm resume): front end `device` starts on a
 * new overlay file over the frozen image base instead of its config's
 * backend, so the snapshot's image is never written. */
void block_resume_on(struct machine *m, const char *device, const char *base,
		     const char *format, const char *overlay);

#endif
