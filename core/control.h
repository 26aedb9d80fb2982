/* The control socket: a unix socket per VM speaking one JSON object per line
 * (docs/control.md), served by a thread of its own so a command that pauses
 * the VM never waits on the machine lock it would need to release. */
#ifndef MODVM_CORE_CONTROL_H
#define MODVM_CORE_CONTROL_H

#include <stddef.h>

struct machine;
struct control;

/* Listen on path (refuses to replace a live socket; removes a stale one).
 * Connections wait in the backlog until control_serve starts the thread,
 * after the sandbox (run.c), so the thread is born inside it. */
struct control *control_start(struct machine *m, const char *path, char *err,
			      size_t len);
void control_serve(struct control *c);
void control_stop(struct control *c);

/* Client side for `modvm ctl`: send one command line, print the reply.
 * Returns 0 if the reply says ok. */
int control_client(const char *path, const char *command_json, char *reply,
		   size_t reply_len, char *err, size_t len);
/* The same, passing the descriptor pass_fd (if >= 0) with the request
 * (SCM_RIGHTS: screendump's file, migrate's connection). */
int control_client_fd(const char *path, const char *command_json, int pass_fd,
		      char *reply, size_t reply_len, char *err, size_t len);

#endif
