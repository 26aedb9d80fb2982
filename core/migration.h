/* Live migration (docs/migration.md): the source's pre-copy thread, driven
 * from the control socket, and the destination's receiving side, run by
 * `modvm run CFG --incoming tcp:ADDR:PORT` in place of booting. */
#ifndef MODVM_CORE_MIGRATION_H
#define MODVM_CORE_MIGRATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct machine;
struct migration;

struct migrate_opts {
	uint64_t bandwidth;    /* bytes per second, 0: as fast as it goes */
	uint64_t downtime_ns;  /* the longest stop the source aims for */
	unsigned max_iterations;
};

#define MIGRATE_DOWNTIME_MS_DEFAULT 300
#define MIGRATE_MAX_ITERATIONS 30

/* Source: start migrating the running machine over the connected socket
 * fd (taken over). Returns NULL with err set if it cannot start. The
 * thread ends the machine (REQUEST_MIGRATED) once the destination took
 * over; on any failure the VM keeps running and status says why. */
struct migration *migration_start(struct machine *m, int fd, const char *uri,
				  const struct migrate_opts *o, char *err,
				  size_t len);
/* Still at work (not completed, failed or cancelled). */
bool migration_active(struct migration *mig);
/* Status as a JSON object (json_t *): state, iteration, bytes, ... */
void *migration_status(struct migration *mig);
/* false: too late, the whole VM was sent (the destination decides). */
bool migration_cancel(struct migration *mig);
/* Cancel if running, wait for the thread, free. */
void migration_free(struct migration *mig);

/* Destination, at set-up (before the sandbox): parse tcp:ADDR:PORT, bind
 * and listen (m->incoming_fd). */
int migration_listen(struct machine *m, const char *uri, char *err,
		     size_t len);
/* Destination, after set-up: wait for the source, receive RAM, device
 * and vCPU state, check everything and load it. 0: the machine is the
 * source's and may run; -1 with err. */
int migration_incoming(struct machine *m, char *err, size_t len);

/* "tcp:HOST:PORT" -> host, port (the client side, modvm ctl). */
int migration_parse_uri(const char *uri, char *host, size_t host_len,
			char *port, size_t port_len, char *err, size_t len);

#endif
