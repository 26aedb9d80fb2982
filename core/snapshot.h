/* Snapshots: a paused VM written to a directory (docs/snapshot-format.md)
 * that can be copied to another host and resumed exactly where it stopped. */
#ifndef MODVM_CORE_SNAPSHOT_H
#define MODVM_CORE_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "block.h"
#include "machine.h"

/* The format of the overlay images snapshots put running disks on
 * (docs/snapshot-format.md, "Disks"); the block backend of that name
 * (config `backend = "qcow2"`) creates them. */
#define SNAPSHOT_OVERLAY_FORMAT "qcow2"

/* 2: disks can be frozen; 3: a file's CRC-32 in the manifest covers its
 * name too (docs/snapshot-format.md); 1 and 2 are still read. */
#define SNAPSHOT_FORMAT 3

/* snapshot_save flags */
enum {
	/* Record disks by checksum only, as format 1 did: the VM keeps
	 * writing its images, and the snapshot resumes only while they
	 * are unchanged. */
	SNAPSHOT_REFERENCE_DISKS = 1u << 0,
};

/* Progress of a long snapshot: report is called as the memory image is
 * written (about every 64 MiB, and at the end). */
struct snapshot_progress {
	void (*report)(void *opaque, uint64_t done, uint64_t total);
	void *opaque;
};

/* Write the paused machine to dir (which must not exist). Everything goes
 * to a temporary sibling first and is renamed into place after fsync, so a
 * crash or a full disk never leaves a directory that looks valid. Unless
 * flags has SNAPSHOT_REFERENCE_DISKS, every writable raw/qcow2 disk is
 * frozen: its image becomes part of the snapshot and the VM continues on a
 * new qcow2 overlay "<image>.<name>.qcow2". Returns 0 or -1 with err set;
 * on failure nothing is left behind and the VM keeps its old images. */
int snapshot_save(struct machine *m, const char *dir, unsigned flags,
		  struct snapshot_progress *progress, char *err, size_t len);

/* modvm run: refuse a config whose writable raw/qcow2 disk is frozen in a
 * snapshot, i.e. a qcow2 overlay "<image>.<name>.qcow2" next to it has the
 * image as its backing file: the live data is in the overlay, and writing
 * the frozen image would corrupt both. The message names the overlays and
 * how to continue. An empty overlay left by a snapshot that did not
 * complete (its "<snapdir>/<name>.tmp-PID" is there, PID gone) is removed
 * instead, with that directory. */
int snapshot_refuse_frozen_disks(const struct vm_config *c, const char *snapdir,
				 char *err, size_t len);

/* Delete the snapshot directory dir, only if it is modvm's: its manifest
 * is a modvm manifest, and the directory holds nothing but the manifest
 * and the files it lists (plain names). 0, or -EPERM (not a modvm
 * snapshot), -ENOTEMPTY (other files or folders are in it: nothing is
 * deleted), -errno. Never recurses. */
int snapshot_delete(const char *dir);

/* A snapshot read back and checked: the config text and file contents are
 * verified against the manifest before anything is built from them. */
struct snapshot {
	char *dir;
	unsigned format;       /* the manifest's "format" */
	char *config_path;     /* dir/config.cfg */
	char *memory_path;     /* dir/memory.img */
	char *engine;
	char *model;
	uint64_t memory;
	unsigned cpus;
	uint64_t virtual_ns;
	int64_t boot_wall_ns;
	void *manifest;        /* json_t */
};

/* Check the manifest and every file's size and checksum (verify_memory:
 * include the memory image, which reads it whole). */
int snapshot_open(const char *dir, bool verify_memory, struct snapshot *s,
		  char *err, size_t len);
void snapshot_close(struct snapshot *s);
/* After the config's devices exist: load each device's and each vCPU's
 * state (engine created), and the clock. Refuses a snapshot whose devices
 * do not match the config's. */
int snapshot_load_devices(struct machine *m, const struct snapshot *s,
			  char *err, size_t len);
int snapshot_load_cpus(struct machine *m, const struct snapshot *s,
		       char *err, size_t len);
/* Every disk the config's block backends open must be the one the snapshot
 * recorded (size and CRC-32); refuse otherwise, naming disk and device. A
 * frozen disk is checked at the path the manifest names, and its device is
 * set to start on a new overlay over it (block_resume_on). */
int snapshot_check_disks(struct machine *m, const struct snapshot *s,
			 const struct vm_config *c, char *err, size_t len);

/* Pieces live migration (migration.c) shares with snapshots: which RAM
 * pages may hold data (1 per page, found without touching any; free it);
 * a device's state sections and a vCPU's state in their binary form, and
 * back (what names the source in messages). */
uint8_t *snapshot_ram_pages_in_use(const struct vm_memory *mem);
void snapshot_save_device(modvm_inst *inst, struct strbuf *out);
int snapshot_load_device(modvm_inst *inst, const char *what, const void *buf,
			 size_t n, char *err, size_t len);
int snapshot_save_cpu(struct machine *m, unsigned i, struct strbuf *out);
int snapshot_load_cpu(struct machine *m, unsigned i, const void *buf, size_t n,
		      char *err, size_t len);

#endif
