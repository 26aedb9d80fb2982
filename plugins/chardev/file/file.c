/* chardev-file: output to a file (a console log, a printer capture); no
 * input. The file is opened once, appended to or truncated as configured,
 * and written without ever blocking the VM. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <modvm/modvm.h>

#include "fdio.h"

struct file_be {
	struct fdio io; /* output only; handles a FIFO whose reader left */
	int fd;
};

static const struct modvm_prop_desc props[] = {
	{ .name = "path", .type = MODVM_PROP_STRING, .flags = MODVM_PROP_REQUIRED,
	  .help = "file that receives the output (created if missing)" },
	MODVM_PROP_BOOL_("append", "true",
			 "true: add to the end of the file; false: truncate it on start"),
	MODVM_PROP_END
};

static void *file_open(const struct modvm_host *host, modvm_inst *inst,
		       modvm_chardev *chr)
{
	const char *path = host->prop_string(inst, "path");
	int flags = O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
	struct file_be *f;

	flags |= host->prop_bool(inst, "append") ? O_APPEND : O_TRUNC;
	if (!*path) {
		host->set_error(inst, "property \"path\" is empty: name the output file");
		return NULL;
	}
	f = calloc(1, sizeof(*f));
	if (!f) {
		host->set_error(inst, "out of memory");
		return NULL;
	}
	f->fd = open(path, flags, 0644);
	if (f->fd < 0) {
		host->set_error(inst, "cannot open \"%s\": %s", path, strerror(errno));
		free(f);
		return NULL;
	}
	f->io = (struct fdio){ .host = host, .inst = inst, .chr = chr,
			       .in_fd = -1, .out_fd = f->fd, .hup = FDIO_HUP_STOP };
	if (fdio_start(&f->io, false)) {
		close(f->fd);
		free(f);
		return NULL;
	}
	return f;
}

static void file_close(void *be)
{
	struct file_be *f = be;

	fdio_stop(&f->io);
	close(f->fd);
	free(f);
}

static size_t file_write(void *be, const uint8_t *buf, size_t len)
{
	struct file_be *f = be;

	/* A full FIFO takes fewer bytes; a full disk drops them (logged
	 * once): the guest must not stall on its console. */
	return fdio_write(&f->io, buf, len);
}

static const struct modvm_chardev_ops ops = {
	.size = sizeof(ops),
	.open = file_open,
	.close = file_close,
	.write = file_write,
};

MODVM_PLUGIN_DEFINE(.kind = MODVM_KIND_CHARDEV, .name = "chardev-file",
		    .version = "1.0.0",
		    .description = "Writes output to a file; no input",
		    .props = props, .ops = &ops);
