/* fdio: the file-descriptor plumbing shared by chardev backends. Input is
 * read when the fd is ready and handed to the front end only as fast as it
 * can take it; the rest waits here and the fd is not watched until the front
 * end asks again, so a full UART never makes the event loop spin. Output
 * never blocks the VM: a full pipe takes fewer bytes, a vanished peer
 * takes everything (dropped, as on a cable nobody listens to). */
#ifndef MODVM_CHARDEV_FDIO_H
#define MODVM_CHARDEV_FDIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <modvm/chardev.h>
#include <modvm/host.h>

/* What to do when the input side reports end-of-file or a hang-up. */
enum fdio_hangup {
	FDIO_HUP_STOP,   /* stop reading for good (stdin at EOF) */
	FDIO_HUP_REPOLL, /* drop output, look again from a timer (pty) */
	FDIO_HUP_NOTIFY, /* call on_hangup (a socket client left) */
};

/* How often a hung-up fd is looked at again, in virtual ns. */
#define FDIO_REPOLL_NS 100000000ull /* 100 ms */

struct fdio {
	const struct modvm_host *host;
	modvm_inst *inst;
	modvm_chardev *chr;
	int in_fd;              /* -1: no input */
	int out_fd;             /* -1: output is discarded */
	enum fdio_hangup hup;
	/* Optional: rewrite input in place (drop escape bytes); returns the
	 * new length. */
	size_t (*filter)(void *opaque, uint8_t *buf, size_t len);
	void (*on_hangup)(void *opaque);
	void *opaque;

	/* internal */
	modvm_watch *watch;
	modvm_timer *repoll;
	bool suspended;         /* watch events 0: front end is full */
	bool hung_up;           /* peer gone: no input, output dropped */
	bool out_dead;          /* write failed for good: output dropped */
	bool out_shared;        /* out_fd is blocking and not ours: poll first */
	bool out_socket;        /* send(MSG_DONTWAIT | MSG_NOSIGNAL) */
	bool out_fifo;          /* guard writes against SIGPIPE */
	bool delivering;
	bool write_error_logged;
	uint8_t buf[1024];
	size_t off, len;
};

/* Fill host, inst, chr, in_fd, out_fd, hup (and the optional hooks), then
 * start. Returns 0, or -1 after host->set_error. out_shared says the fd
 * belongs to someone else (stdout) and must not be made non-blocking. */
int fdio_start(struct fdio *f, bool out_shared);
/* Stop watching and free the timer; does not close the fds. */
void fdio_stop(struct fdio *f);
/* The front end can take input again. */
void fdio_accept_input(struct fdio *f);
/* Write without blocking; returns the bytes taken. */
size_t fdio_write(struct fdio *f, const uint8_t *buf, size_t len);
/* Switch to new fds after a hang-up (a new socket client): input and
 * output resume. Input the old peer sent and the front end has not taken
 * yet is still delivered first. */
int fdio_attach(struct fdio *f, int in_fd, int out_fd);
/* Forget the current fds (they were closed by the owner). */
void fdio_detach(struct fdio *f);

#endif
