/* Snapshots: a paused VM written to a directory (docs/snapshot-format.md)
 * that can be copied to another host and resumed exactly where it stopped. */
#ifndef MODVM_CORE_SNAPSHOT_H
#define MODVM_CORE_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "machine.h"

#define SNAPSHOT_FORMAT 1

/* Progress of a long snapshot: report is called as the memory image is
 * written (about every 64 MiB, and at the end). */
struct snapshot_progress {
	void (*report)(void *opaque, uint64_t done, uint64_t total);
	void *opaque;
};

/* Write the paused machine to dir (which must not exist). Everything goes
 * to a temporary sibling first and is renamed into place after fsync, so a
 * crash or a full disk never leaves a directory that looks valid. Returns 0
 * or -1 with err set; on failure nothing is left behind. */
int snapshot_save(struct machine *m, const char *dir,
		  struct snapshot_progress *progress, char *err, size_t len);

/* A snapshot read back and checked: the config text and file contents are
 * verified against the manifest before anything is built from them. */
struct snapshot {
	char *dir;
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
 * recorded (size and CRC-32); refuse otherwise, naming disk and device. */
int snapshot_check_disks(const struct snapshot *s, const struct vm_config *c,
			 char *err, size_t len);

#endif
