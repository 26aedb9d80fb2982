/* Fuzz target: the control socket's request handling (core/control.c) on
 * arbitrary client bytes: line splitting, the line limit, JSON parsing and
 * command dispatch, replies written back. The parser and dispatcher are
 * static, so this file includes control.c itself (its three external
 * functions then come from here, and the library's control.o is never
 * linked). The machine is a stub: zeroed, locks initialised, no engine,
 * no vCPU threads, no devices, so every command takes its "not running"
 * or empty path. Inputs that would reach fusefs_mount/fusefs_unmount (a
 * mount or umount with an absolute path) are skipped: they would mount
 * FUSE file systems on the host. */
#include "../../core/control.c"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct machine stub;

static void stub_init(void)
{
	pthread_mutexattr_t a;

	static bool done;

	if (done)
		return;
	done = true;
	memset(&stub, 0, sizeof(stub));
	stub.mem.fd = -1;
	stub.verbosity = MODVM_LOG_ERROR;
	pthread_mutexattr_init(&a);
	pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&stub.lock, &a);
	pthread_mutexattr_destroy(&a);
	pthread_mutex_init(&stub.pause_lock, NULL);
	pthread_cond_init(&stub.pause_cond, NULL);
	pthread_mutex_init(&stub.req_lock, NULL);
	pthread_cond_init(&stub.req_cond, NULL);
}

/* Would any line of the input, as dispatch sees it, mount or unmount? */
static bool reaches_fusefs(const uint8_t *data, size_t size)
{
	size_t start = 0;

	for (size_t i = 0; i <= size; i++) {
		if (i < size && data[i] != '\n')
			continue;
		char *line = xmalloc(i - start + 1);
		memcpy(line, data + start, i - start);
		line[i - start] = 0; /* dispatch stops at a NUL too */
		json_t *req = json_loads(line, 0, NULL);
		const char *cmd = NULL, *path;
		bool bad = false;
		free(line);
		if (req && !json_unpack(req, "{s:s}", "execute", &cmd) &&
		    (!strcmp(cmd, "mount") || !strcmp(cmd, "umount"))) {
			path = json_string_value(json_object_get(
				json_object_get(req, "arguments"), "path"));
			bad = path && path[0] == '/';
		}
		json_decref(req);
		if (bad)
			return true;
		start = i + 1;
	}
	return false;
}

static void drain(int fd)
{
	char buf[65536];

	while (read(fd, buf, sizeof(buf)) > 0) {
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct control c;
	struct client *cl;
	int sv[2];

	if (size > 256 * 1024 || reaches_fusefs(data, size))
		return 0;
	stub_init();
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv))
		return 0;
	memset(&c, 0, sizeof(c));
	c.m = &stub;
	c.listen_fd = -1;
	c.wake[0] = c.wake[1] = -1;
	for (int i = 0; i < MAX_CLIENTS; i++) {
		c.clients[i].fd = -1;
		c.clients[i].passed_fd = -1; /* no descriptor came with the bytes */
	}
	cl = &c.clients[0];
	cl->fd = sv[0];
	cl->serial = 1;
	sb_init(&cl->out);
	/* as the socket delivers it: at most one read's worth at a time */
	for (size_t off = 0; off < size && cl->fd >= 0;) {
		size_t n = size - off < 4096 ? size - off : 4096;
		ssize_t w = write(sv[1], data + off, n);
		if (w <= 0)
			break;
		off += (size_t)w;
		client_read(&c, cl);
		drain(sv[1]);
	}
	if (cl->fd >= 0) {
		shutdown(sv[1], SHUT_WR);
		client_read(&c, cl); /* end of file: the client is closed */
	}
	if (cl->fd >= 0)
		client_close(cl);
	drain(sv[1]);
	close(sv[1]);
	return 0;
}
