/* chardev-pty: a pseudo-terminal for the guest's port; attach with
 * `screen /dev/pts/N` or minicom. The pty stays while modvm runs; when the
 * user detaches, output is dropped and the pty is looked at again from a
 * timer, so a reopen picks up where it left off without a busy loop. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <modvm/modvm.h>

#include "fdio.h"

struct pty_be {
	struct fdio io;
	int master;
	char name[64];
	char *link;     /* symlink made to name, removed on close */
};

static const struct modvm_prop_desc props[] = {
	MODVM_PROP_STRING_("link", "",
			   "also make this symlink to the pty (a stable name for scripts); empty: none"),
	MODVM_PROP_END
};

/* Replace a stale symlink, but never a file that is not one. */
static int make_link(struct pty_be *p, const struct modvm_host *host,
		     modvm_inst *inst, const char *link)
{
	struct stat st;

	if (!lstat(link, &st)) {
		if (!S_ISLNK(st.st_mode)) {
			host->set_error(inst, "link \"%s\" exists and is not a symlink; not replacing it",
					link);
			return -1;
		}
		unlink(link);
	}
	if (symlink(p->name, link)) {
		host->set_error(inst, "cannot create link \"%s\" -> %s: %s", link,
				p->name, strerror(errno));
		return -1;
	}
	p->link = strdup(link);
	return 0;
}

/* Nobody attached yet must look the same as somebody detached: a fresh
 * pty master reports no hang-up and buffers output until it fills, which
 * would stall the guest's console. Opening and closing the slave once puts
 * the master in the hung-up state until a user opens the slave. The slave
 * settings are made raw here (through the master, which shares them). */
static int pty_setup(struct pty_be *p, const struct modvm_host *host,
		     modvm_inst *inst)
{
	struct termios t;
	int slave;

	if (grantpt(p->master) || unlockpt(p->master) ||
	    ptsname_r(p->master, p->name, sizeof(p->name))) {
		host->set_error(inst, "cannot set up the pty: %s", strerror(errno));
		return -1;
	}
	if (tcgetattr(p->master, &t) == 0) {
		cfmakeraw(&t);
		tcsetattr(p->master, TCSANOW, &t);
	}
	slave = open(p->name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (slave < 0) {
		host->set_error(inst, "cannot open %s: %s", p->name, strerror(errno));
		return -1;
	}
	close(slave);
	return 0;
}

/* The user went away: what the guest wrote for them is stale. */
static void pty_hangup(void *opaque)
{
	struct pty_be *p = opaque;

	tcflush(p->master, TCIOFLUSH);
}

static void *pty_open(const struct modvm_host *host, modvm_inst *inst,
		      modvm_chardev *chr)
{
	struct pty_be *p = calloc(1, sizeof(*p));

	if (!p) {
		host->set_error(inst, "out of memory");
		return NULL;
	}
	p->master = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (p->master < 0) {
		host->set_error(inst, "cannot open a pty (posix_openpt): %s",
				strerror(errno));
		free(p);
		return NULL;
	}
	if (pty_setup(p, host, inst))
		goto fail;
	if (*host->prop_string(inst, "link") &&
	    make_link(p, host, inst, host->prop_string(inst, "link")))
		goto fail;
	p->io = (struct fdio){ .host = host, .inst = inst, .chr = chr,
			       .in_fd = p->master, .out_fd = p->master,
			       .hup = FDIO_HUP_REPOLL, .on_hangup = pty_hangup,
			       .opaque = p };
	if (fdio_start(&p->io, false))
		goto fail;
	/* The user needs the name to attach, whatever the log level (\r: the
	 * terminal may be raw for a stdio console). */
	fprintf(stderr, "modvm: %s is on %s%s%s\r\n", host->inst_id(inst), p->name,
		p->link ? ", linked from " : "", p->link ? p->link : "");
	return p;
fail:
	if (p->link)
		unlink(p->link);
	free(p->link);
	close(p->master);
	free(p);
	return NULL;
}

static void pty_close(void *be)
{
	struct pty_be *p = be;

	fdio_stop(&p->io);
	if (p->link)
		unlink(p->link);
	free(p->link);
	close(p->master);
	free(p);
}

static size_t pty_write(void *be, const uint8_t *buf, size_t len)
{
	return fdio_write(&((struct pty_be *)be)->io, buf, len);
}

static void pty_accept_input(void *be)
{
	fdio_accept_input(&((struct pty_be *)be)->io);
}

static const struct modvm_chardev_ops ops = {
	.size = sizeof(ops),
	.open = pty_open,
	.close = pty_close,
	.write = pty_write,
	.accept_input = pty_accept_input,
};

MODVM_PLUGIN_DEFINE(.kind = MODVM_KIND_CHARDEV, .name = "chardev-pty",
		    .version = "1.0.0",
		    .description = "Pseudo-terminal (/dev/pts/N) for screen or minicom",
		    .props = props, .ops = &ops);
