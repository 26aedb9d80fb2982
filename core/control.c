/* The control socket: JSON lines over a unix socket, one thread. */
#include "control.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cpustate.h"
#include "display.h"
#include "fusefs.h"
#include "machine.h"
#include "migration.h"
#include "run.h"
#include "sandbox.h"
#include "snapshot.h"
#include "state_desc.h"

#define MAX_CLIENTS 8
#define MAX_LINE (64 * 1024)
/* Replies a client has not read yet: beyond this it is disconnected, so a
 * client that never reads cannot stop the control thread (docs/control.md). */
#define MAX_PENDING_OUT (1024 * 1024)

struct client {
	int fd;
	unsigned serial;   /* for log lines */
	char *buf;         /* request bytes not yet a whole line */
	size_t len;
	struct strbuf out; /* reply bytes the socket did not take yet */
	size_t out_done;   /* of out, already sent */
	int passed_fd;     /* a descriptor sent with SCM_RIGHTS, or -1 */
};

struct control {
	struct machine *m;
	unsigned next_serial;
	char *path;
	int listen_fd;
	int wake[2];
	pthread_t thread;
	bool serving;      /* the thread runs (control_serve) */
	struct client clients[MAX_CLIENTS];
	struct migration *mig; /* the last migration started, or NULL */
};

static json_t *error_reply(const char *cls, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void client_send(struct control *c, struct client *cl, const char *line,
			size_t n);

static json_t *error_reply(const char *cls, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return json_pack("{s:{s:s,s:s}}", "error", "class", cls, "desc", msg);
}

static json_t *ok_reply(json_t *ret)
{
	return json_pack("{s:o}", "return", ret ? ret : json_object());
}

/* Where each disk's content is now: a snapshot moves it to an overlay. */
static json_t *disk_list(struct machine *m)
{
	struct block_disk d[64];
	size_t n = block_disks(m, d, 64);
	json_t *list = json_array();

	for (size_t i = 0; i < n; i++) {
		if (!d[i].path)
			continue;
		json_array_append_new(list, json_pack("{s:s,s:s,s:s,s:b,s:b}",
			"device", d[i].device, "path", d[i].path,
			"format", d[i].format ? d[i].format : "other",
			"readonly", (int)d[i].readonly, "overlay", (int)d[i].on_overlay));
	}
	return list;
}

static json_t *cmd_status(struct machine *m)
{
	const struct vm_config *c = m->cfg;

	json_t *st = json_pack("{s:s,s:s,s:s,s:s,s:i,s:I,s:I}",
		"status", machine_is_paused(m) ? "paused" :
			  machine_is_started(m) ? "running" : "starting",
		"name", c ? c->name : "",
		"engine", c ? c->engine : "",
		"model", c ? c->model : "",
		"cpus", (int)m->ncpus,
		"memory", (json_int_t)m->mem.size,
		"virtual-ns", (json_int_t)vclock_now(&m->clock));
	machine_lock(m); /* snapshots swap disks under it */
	json_object_set_new(st, "disks", disk_list(m));
	machine_unlock(m);
	return ok_reply(st);
}

static const char *cpu_mode(const struct modvm_cpu_state *s)
{
	if (!(s->cr0 & 1))
		return "real";
	if (s->rflags & (1u << 17))
		return "v8086";
	if (s->msr.efer & (1u << 10))
		return s->seg[MODVM_CS].l ? "long" : "compatibility";
	return "protected";
}

static json_t *one_cpu(unsigned i, const struct modvm_cpu_state *s)
{
	struct strbuf text;
	char rip[32];
	json_t *o;

	sb_init(&text);
	state_render(&cpu_state_section, s, &text);
	snprintf(rip, sizeof(rip), "0x%llx", (unsigned long long)s->rip);
	o = json_pack("{s:i,s:s,s:s,s:b,s:s}", "index", (int)i,
		      "mode", cpu_mode(s), "rip", rip, "halted", (int)s->halted,
		      "regs", text.s ? text.s : "");
	sb_free(&text);
	return o;
}

/* CPU state is read with the VM paused, so it is never torn. */
static json_t *cmd_query_cpus(struct machine *m)
{
	struct modvm_cpu_state *s;
	json_t *list;

	if (!m->eops)
		return error_reply("NotRunning", "the VM has no CPUs running");
	if (machine_hold(m))
		return error_reply("NotRunning", "the VM is not running");
	s = xcalloc(1, sizeof(*s));
	list = json_array();
	for (unsigned i = 0; i < m->ncpus; i++) {
		memset(s, 0, sizeof(*s));
		if (m->eops->get_state(m->vcpus[i], s)) {
			json_decref(list);
			list = NULL;
			break;
		}
		json_array_append_new(list, one_cpu(i, s));
	}
	free(s);
	machine_release(m);
	return list ? ok_reply(list) : error_reply("EngineError", "the engine could not read a CPU's state");
}

static json_t *cmd_query_devices(struct machine *m)
{
	json_t *list = json_array();

	machine_lock(m);
	for (size_t i = 0; i < m->ninsts; i++) {
		const struct plugin *p = m->insts[i]->plugin;
		json_t *secs = json_array();
		for (int k = 0; p->desc->state && p->desc->state[k]; k++) {
			struct strbuf text;
			sb_init(&text);
			if (p->desc->state[k]->pre_save)
				p->desc->state[k]->pre_save(m->insts[i]->obj);
			state_render(p->desc->state[k], m->insts[i]->obj, &text);
			json_array_append_new(secs, json_pack("{s:s,s:i,s:s}",
				"name", p->desc->state[k]->name,
				"version", (int)p->desc->state[k]->version,
				"state", text.s ? text.s : ""));
			sb_free(&text);
		}
		json_array_append_new(list, json_pack("{s:s,s:s,s:s,s:s,s:o}",
			"id", m->insts[i]->id, "plugin", p->desc->name,
			"version", p->desc->version, "path", p->path,
			"sections", secs));
	}
	machine_unlock(m);
	return ok_reply(list);
}

/* Pause (if running), write the snapshot, resume: the VM keeps running
 * whether or not the snapshot could be written. */
struct progress_ctx {
	struct control *c;
	struct client *cl;
	const char *name;
};

/* Progress goes to the terminal modvm runs on and, as event lines, to the
 * client that asked for the snapshot. */
static void snapshot_report(void *opaque, uint64_t done, uint64_t total)
{
	struct progress_ctx *p = opaque;
	unsigned pct = total ? (unsigned)(done * 100 / total) : 100;

	fprintf(stderr, "modvm: snapshot %s: %u%% (%llu of %llu MiB)\r\n", p->name,
		pct, (unsigned long long)(done >> 20), (unsigned long long)(total >> 20));
	if (p->cl && p->cl->fd >= 0) {
		/* queued, never waited for: the VM is held while it is written */
		char line[128];
		int n = snprintf(line, sizeof(line),
				 "{\"event\":\"snapshot-progress\",\"done\":%llu,\"total\":%llu}\n",
				 (unsigned long long)done, (unsigned long long)total);
		client_send(p->c, p->cl, line, (size_t)n);
	}
}

static json_t *cmd_snapshot(struct control *c, json_t *args, struct client *cl)
{
	struct machine *m = c->m;
	const char *name = json_string_value(json_object_get(args, "name"));
	const char *disks = json_string_value(json_object_get(args, "disks"));
	char err[ERR_LEN], *dir;
	unsigned flags = 0;
	uint64_t t0;
	int r;

	if (!name || !*name || strchr(name, '/') || name[0] == '.')
		return error_reply("BadRequest", "snapshot needs a name without '/' or a leading '.'");
	if (disks && strcmp(disks, "freeze") && strcmp(disks, "reference"))
		return error_reply("BadRequest", "snapshot: \"disks\" is \"freeze\" (the default) or \"reference\"");
	if (disks && !strcmp(disks, "reference"))
		flags |= SNAPSHOT_REFERENCE_DISKS;
	if (!m->eops)
		return error_reply("NotRunning", "the VM is not running");
	if (machine_hold(m))
		return error_reply("NotRunning", "the VM is not running");
	dir = xasprintf("%s/%s", m->snapshot_dir ? m->snapshot_dir : ".", name);
	t0 = host_monotonic_ns();
	machine_lock(m);
	struct progress_ctx pctx = { c, cl, name };
	struct snapshot_progress prog = { snapshot_report, &pctx };
	r = snapshot_save(m, dir, flags, &prog, err, sizeof(err));
	machine_unlock(m);
	machine_release(m);
	json_t *reply = r ? error_reply("SnapshotFailed", "%s (the VM continues)", err)
			  : ok_reply(json_pack("{s:s,s:I}", "path", dir, "milliseconds",
					       (json_int_t)((host_monotonic_ns() - t0) / 1000000)));
	free(dir);
	return reply;
}

/* The screen as a PNG, written to the file the client opened and passed
 * with the request: the VM process never opens the path (the sandbox
 * confines where it may write, docs/sandbox.md). */
static json_t *cmd_screendump(struct machine *m, struct client *cl)
{
	char err[ERR_LEN];
	struct stat st;
	size_t n = 0;
	int fd = cl->passed_fd;
	json_t *reply;

	cl->passed_fd = -1;
	if (fd < 0)
		return error_reply("BadRequest", "screendump writes to a file descriptor passed with the request (SCM_RIGHTS): use modvm ctl SOCKET screendump FILE");
	if (fstat(fd, &st) || !(S_ISREG(st.st_mode) || S_ISFIFO(st.st_mode))) {
		close(fd);
		return error_reply("BadRequest", "screendump: the descriptor passed is not a regular file or a pipe");
	}
	if (display_png_to_fd(m, fd, &n, err, sizeof(err)))
		reply = error_reply("NoDisplay", "screendump: %s", err);
	else
		reply = ok_reply(json_pack("{s:I}", "bytes", (json_int_t)n));
	close(fd);
	return reply;
}

/* Live migration (docs/migration.md). The connection to the destination
 * comes with the request (SCM_RIGHTS): modvm ctl made it, because the
 * sandboxed VM may not connect (docs/decisions.md). */
static json_t *cmd_migrate(struct control *c, json_t *args, struct client *cl)
{
	const char *uri = json_string_value(json_object_get(args, "uri"));
	json_t *bw = json_object_get(args, "bandwidth"), *dt = json_object_get(args, "downtime");
	json_t *it = json_object_get(args, "max-iterations");
	struct migrate_opts o = { .downtime_ns = MIGRATE_DOWNTIME_MS_DEFAULT * 1000000ull,
				  .max_iterations = MIGRATE_MAX_ITERATIONS };
	char err[ERR_LEN];
	int fd = cl->passed_fd;

	cl->passed_fd = -1;
	if (!uri) {
		if (fd >= 0)
			close(fd);
		return error_reply("BadRequest", "migrate needs {\"uri\": \"tcp:HOST:PORT\"}");
	}
	if (fd < 0)
		return error_reply("BadRequest", "migrate: no connection to the destination came with the request: the sandboxed VM cannot connect itself, so `modvm ctl SOCKET migrate tcp:HOST:PORT` connects and passes the socket (SCM_RIGHTS)");
	if ((bw && (!json_is_number(bw) || json_number_value(bw) < 0 || json_number_value(bw) > 1e6)) ||
	    (dt && (!json_is_number(dt) || json_number_value(dt) < 0 || json_number_value(dt) > 1e6)) ||
	    (it && (!json_is_integer(it) || json_integer_value(it) < 1 || json_integer_value(it) > 1000))) {
		close(fd);
		return error_reply("BadRequest", "migrate: \"bandwidth\" is MB/s (0: unlimited) and \"downtime\" milliseconds, each 0 to 1000000; \"max-iterations\" 1 to 1000");
	}
	if (bw)
		o.bandwidth = (uint64_t)(json_number_value(bw) * 1e6);
	if (dt)
		o.downtime_ns = (uint64_t)(json_number_value(dt) * 1e6);
	if (it)
		o.max_iterations = (unsigned)json_integer_value(it);
	if (migration_active(c->mig)) {
		close(fd);
		return error_reply("Busy", "a migration is under way (migrate-status; migrate-cancel stops it)");
	}
	migration_free(c->mig);
	c->mig = migration_start(c->m, fd, uri, &o, err, sizeof(err));
	if (!c->mig) {
		close(fd);
		return error_reply("MigrationFailed", "%s", err);
	}
	return ok_reply(json_pack("{s:s,s:s}", "status", "started", "uri", uri));
}

/* The FUSE view of a VM that was started without --mount (docs/fuse.md). */
static json_t *cmd_mount(struct machine *m, json_t *args, bool mount)
{
	const char *path = json_string_value(json_object_get(args, "path"));
	char err[ERR_LEN];

	if (!path || path[0] != '/')
		return error_reply("BadRequest", "%s needs {\"path\": an absolute directory}",
				   mount ? "mount" : "umount");
	if (mount && sandbox_active())
		return error_reply("MountFailed", "mount %s: the sandbox is on, and mounting after set-up needs fusermount3 or mount(2), which it forbids: start the VM with --mount DIR instead, or with --sandbox=off (docs/sandbox.md)",
				   path);
	if (!mount && sandbox_unmount_needs_helper())
		return error_reply("NotMounted", "umount %s: the sandbox is on and modvm is not root, so unmounting needs fusermount3, a new process it forbids: run fusermount3 -u %s yourself, or the mount goes when the VM ends (docs/sandbox.md)",
				   path, path);
	if (mount ? fusefs_mount(m, path, err, sizeof(err))
		  : fusefs_unmount(m, path, err, sizeof(err)))
		return error_reply(mount ? "MountFailed" : "NotMounted", "%s", err);
	return ok_reply(json_pack("{s:s}", "path", path));
}

static json_t *dispatch(struct control *c, struct client *cl, const char *line)
{
	struct machine *m = c->m;
	json_error_t jerr;
	json_t *req = json_loads(line, 0, &jerr), *reply;
	const char *cmd = NULL;

	if (!req)
		return error_reply("BadRequest", "not JSON: %s (column %d)", jerr.text, jerr.column);
	if (json_unpack(req, "{s:s}", "execute", &cmd)) {
		json_decref(req);
		return error_reply("BadRequest", "expected {\"execute\": \"COMMAND\"}");
	}
	if (!strcmp(cmd, "status"))
		reply = cmd_status(m);
	else if (!strcmp(cmd, "pause"))
		reply = machine_pause(m) ? error_reply("NotRunning", "the VM is not running")
					 : ok_reply(NULL);
	else if (!strcmp(cmd, "resume")) {
		machine_resume(m);
		reply = ok_reply(NULL);
	} else if (!strcmp(cmd, "quit")) {
		machine_request(m, REQUEST_QUIT);
		reply = ok_reply(NULL);
	} else if (!strcmp(cmd, "query-cpus"))
		reply = cmd_query_cpus(m);
	else if (!strcmp(cmd, "query-devices"))
		reply = cmd_query_devices(m);
	else if (!strcmp(cmd, "snapshot"))
		reply = cmd_snapshot(c, json_object_get(req, "arguments"), cl);
	else if (!strcmp(cmd, "migrate"))
		reply = cmd_migrate(c, json_object_get(req, "arguments"), cl);
	else if (!strcmp(cmd, "migrate-status"))
		reply = ok_reply(migration_status(c->mig));
	else if (!strcmp(cmd, "migrate-cancel")) {
		if (migration_active(c->mig) && migration_cancel(c->mig)) {
			reply = ok_reply(json_pack("{s:s}", "status", "cancelling"));
		} else if (migration_active(c->mig)) {
			reply = error_reply("TooLate", "the whole VM was sent: the destination decides now (migrate-status)");
		} else {
			reply = error_reply("NotActive", "no migration is under way");
		}
	} else if (!strcmp(cmd, "mount") || !strcmp(cmd, "umount"))
		reply = cmd_mount(m, json_object_get(req, "arguments"), cmd[0] == 'm');
	else if (!strcmp(cmd, "screendump"))
		reply = cmd_screendump(m, cl);
	else
		reply = error_reply("UnknownCommand",
				    "unknown command \"%s\"; commands: status, pause, resume, quit, query-cpus, query-devices, snapshot, migrate, migrate-status, migrate-cancel, mount, umount, screendump",
				    cmd);
	json_decref(req);
	return reply;
}

static void client_close(struct client *cl)
{
	if (cl->passed_fd >= 0)
		close(cl->passed_fd);
	cl->passed_fd = -1;
	close(cl->fd);
	free(cl->buf);
	sb_free(&cl->out);
	cl->fd = -1;
	cl->buf = NULL;
	cl->len = 0;
	cl->out_done = 0;
}

/* Send what the socket takes now, never waiting (the socket is
 * non-blocking); -1 if the client went away and was closed. */
static int client_flush(struct client *cl)
{
	while (cl->out_done < cl->out.len) {
		ssize_t n = send(cl->fd, cl->out.s + cl->out_done,
				 cl->out.len - cl->out_done, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0) {
			client_close(cl);
			return -1;
		}
		cl->out_done += (size_t)n;
	}
	sb_free(&cl->out);
	cl->out_done = 0;
	return 0;
}

/* Queue one line for the client and send what can go now. A client whose
 * unread replies pass MAX_PENDING_OUT is disconnected: it is not reading. */
static void client_send(struct control *c, struct client *cl, const char *line,
			size_t n)
{
	if (cl->fd < 0)
		return;
	if (cl->out.len - cl->out_done && cl->out.len - cl->out_done + n > MAX_PENDING_OUT) {
		machine_log(c->m, MODVM_LOG_WARN,
			    "control client %u does not read its replies (%zu bytes pending): disconnected",
			    cl->serial, cl->out.len - cl->out_done);
		client_close(cl);
		return;
	}
	sb_append(&cl->out, line, n);
	client_flush(cl);
}

static void send_reply(struct control *c, struct client *cl, json_t *reply)
{
	char *s = json_dumps(reply, JSON_COMPACT);
	json_decref(reply);
	if (!s)
		return;
	size_t n = strlen(s);
	s[n] = '\n';
	client_send(c, cl, s, n + 1);
	free(s);
}

/* Keep the last descriptor a client sent (screendump's file, migrate's
 * connection), close the rest: a client cannot make us hold more than
 * one. The request that uses it takes it; any other leaves it here. */
static void take_passed_fds(struct client *cl, struct msghdr *msg)
{
	for (struct cmsghdr *h = CMSG_FIRSTHDR(msg); h; h = CMSG_NXTHDR(msg, h)) {
		if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(h) + i * sizeof(int), sizeof(int));
			if (cl->passed_fd >= 0)
				close(cl->passed_fd);
			cl->passed_fd = fd;
		}
	}
}

static void client_read(struct control *c, struct client *cl)
{
	char buf[4096];
	union {
		char b[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = ctl.b, .msg_controllen = sizeof(ctl.b) };
	ssize_t n = recvmsg(cl->fd, &msg, MSG_CMSG_CLOEXEC);
	char *nl;

	if (n > 0)   /* else msg is as we passed it: no descriptors came */
		take_passed_fds(cl, &msg);

	if (n <= 0) {
		client_close(cl);
		return;
	}
	if (cl->len + (size_t)n > MAX_LINE) {
		send_reply(c, cl, error_reply("BadRequest", "line longer than %d bytes", MAX_LINE));
		if (cl->fd >= 0)
			client_close(cl);
		return;
	}
	cl->buf = xrealloc(cl->buf, cl->len + (size_t)n + 1);
	memcpy(cl->buf + cl->len, buf, (size_t)n);
	cl->len += (size_t)n;
	cl->buf[cl->len] = 0;
	while (cl->fd >= 0 && (nl = memchr(cl->buf, '\n', cl->len))) {
		*nl = 0;
		if (nl != cl->buf)
			send_reply(c, cl, dispatch(c, cl, cl->buf));
		if (cl->fd < 0)
			return;
		cl->len -= (size_t)(nl + 1 - cl->buf);
		memmove(cl->buf, nl + 1, cl->len + 1);
	}
}

static void accept_client(struct control *c)
{
	static const char busy[] = "{\"error\":{\"class\":\"Busy\",\"desc\":\"too many clients\"}}\n";
	int fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (fd < 0)
		return;
	for (int i = 0; i < MAX_CLIENTS; i++) {
		if (c->clients[i].fd < 0) {
			c->clients[i].fd = fd;
			c->clients[i].passed_fd = -1;
			c->clients[i].serial = ++c->next_serial;
			sb_init(&c->clients[i].out);
			return;
		}
	}
	if (send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* it goes away either way */
	}
	close(fd);
}

static void *control_main(void *arg)
{
	struct control *c = arg;
	struct pollfd pfd[MAX_CLIENTS + 2];

	for (;;) {
		pfd[0] = (struct pollfd){ .fd = c->wake[0], .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = c->listen_fd, .events = POLLIN };
		for (int i = 0; i < MAX_CLIENTS; i++) {
			struct client *cl = &c->clients[i];
			pfd[i + 2] = (struct pollfd){ .fd = cl->fd, .events = POLLIN |
				(cl->out.len > cl->out_done ? POLLOUT : 0) };
		}
		if (poll(pfd, MAX_CLIENTS + 2, -1) < 0 && errno != EINTR)
			break;
		if (pfd[0].revents)
			break;
		if (pfd[1].revents & POLLIN)
			accept_client(c);
		for (int i = 0; i < MAX_CLIENTS; i++) {
			struct client *cl = &c->clients[i];
			if (cl->fd >= 0 && (pfd[i + 2].revents & POLLOUT) && client_flush(cl))
				continue;
			if (cl->fd >= 0 && (pfd[i + 2].revents & ~POLLOUT))
				client_read(c, cl);
		}
	}
	return NULL;
}

/* A socket file nobody listens on is left over from a crashed run. */
static bool socket_is_live(const struct sockaddr_un *sa)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool live = fd >= 0 && connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0;

	if (fd >= 0)
		close(fd);
	return live;
}

static int make_addr(const char *path, struct sockaddr_un *sa, char *err,
		     size_t len)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		return set_err(err, len, "control socket path %s is longer than %zu bytes",
			       path, sizeof(sa->sun_path) - 1);
	strcpy(sa->sun_path, path);
	return 0;
}

/* Whatever is at path already: only a socket of ours that nobody answers on
 * (left by a run that crashed) is removed; anything else is refused, so a
 * mistyped --control never destroys a file. */
static int remove_stale_socket(const char *path, const struct sockaddr_un *sa,
			       char *err, size_t len)
{
	struct stat st;

	if (lstat(path, &st)) {
		if (errno == ENOENT)
			return 0;
		return set_err(err, len, "control socket %s: %s", path, strerror(errno));
	}
	if (!S_ISSOCK(st.st_mode))
		return set_err(err, len, "control socket %s: the path exists and is %s, not a socket: refusing to replace it (choose another path)",
			       path, file_kind(st.st_mode));
	if (st.st_uid != geteuid())
		return set_err(err, len, "control socket %s: the socket there belongs to uid %u, not to this user (%u): refusing to replace it",
			       path, (unsigned)st.st_uid, (unsigned)geteuid());
	if (socket_is_live(sa))
		return set_err(err, len, "control socket %s is in use by another running modvm", path);
	if (unlink(path) && errno != ENOENT)
		return set_err(err, len, "control socket %s: cannot remove the stale socket: %s",
			       path, strerror(errno));
	return 0;
}

struct control *control_start(struct machine *m, const char *path, char *err,
			      size_t len)
{
	struct control *c;
	struct sockaddr_un sa;
	bool bound = false;

	if (make_addr(path, &sa, err, len) || remove_stale_socket(path, &sa, err, len))
		return NULL;
	c = xcalloc(1, sizeof(*c));
	c->m = m;
	c->path = xstrdup(path);
	for (int i = 0; i < MAX_CLIENTS; i++) {
		c->clients[i].fd = -1;
		c->clients[i].passed_fd = -1;
	}
	c->wake[0] = c->wake[1] = -1;
	c->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	/* The socket file gets the caller's umask at bind(); it is made 0600
	 * before listen(), and until listen() every connect() is refused, so
	 * no other user can get in through the window. */
	if (c->listen_fd < 0 || bind(c->listen_fd, (struct sockaddr *)&sa, sizeof(sa))) {
		set_err(err, len, "control socket %s: %s", path, strerror(errno));
		goto fail;
	}
	bound = true;
	if (chmod(path, 0600) || listen(c->listen_fd, 4) || pipe2(c->wake, O_CLOEXEC)) {
		set_err(err, len, "control socket %s: %s", path, strerror(errno));
		goto fail;
	}
	return c;
fail:
	if (bound)
		unlink(path);
	if (c->listen_fd >= 0)
		close(c->listen_fd);
	for (int i = 0; i < 2; i++)
		if (c->wake[i] >= 0)
			close(c->wake[i]);
	free(c->path);
	free(c);
	return NULL;
}

void control_serve(struct control *c)
{
	if (!c)
		return;
	/* Without its thread the socket still takes connections (they
	 * wait in the backlog); the failure is said, the VM runs. */
	if (pthread_create(&c->thread, NULL, control_main, c)) {
		fprintf(stderr, "modvm: control socket %s: cannot start its thread\n", c->path);
		return;
	}
	pthread_setname_np(c->thread, "modvm-control");
	c->serving = true;
}

void control_stop(struct control *c)
{
	if (!c)
		return;
	if (c->serving) {
		if (write(c->wake[1], "x", 1) < 0) {
			/* the pipe cannot be full: one byte, one reader */
		}
		pthread_join(c->thread, NULL);
	}
	migration_free(c->mig);
	/* Mounts made through the socket end with it, on every exit path. */
	fusefs_unmount_all();
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (c->clients[i].fd >= 0)
			client_close(&c->clients[i]);
	close(c->listen_fd);
	close(c->wake[0]);
	close(c->wake[1]);
	unlink(c->path);
	free(c->path);
	free(c);
}

/* The request line, with fd (if >= 0) passed along it. */
static int send_line(int sock, const char *command_json, int fd)
{
	char *line = xasprintf("%s\n", command_json);
	union {
		char b[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { line, strlen(line) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	size_t done = 0;
	int r = 0;

	if (fd >= 0) {
		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.b;
		msg.msg_controllen = sizeof(ctl.b);
		struct cmsghdr *h = CMSG_FIRSTHDR(&msg);
		h->cmsg_level = SOL_SOCKET;
		h->cmsg_type = SCM_RIGHTS;
		h->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(h), &fd, sizeof(int));
	}
	while (done < iov.iov_len) {
		ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = -1;
			break;
		}
		done += (size_t)n;
		iov.iov_base = line + done;
		iov.iov_len -= (size_t)n;
		msg.msg_control = NULL;    /* the descriptor went with the first part */
		msg.msg_controllen = 0;
	}
	free(line);
	return r;
}

int control_client(const char *path, const char *command_json, char *reply,
		   size_t reply_len, char *err, size_t len)
{
	return control_client_fd(path, command_json, -1, reply, reply_len, err, len);
}

int control_client_fd(const char *path, const char *command_json, int pass_fd,
		      char *reply, size_t reply_len, char *err, size_t len)
{
	struct sockaddr_un sa;
	size_t got = 0;
	char *nl;
	int fd;

	if (make_addr(path, &sa, err, len))
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		set_err(err, len, "cannot connect to %s: %s (is the VM running with --control %s?)",
			path, strerror(errno), path);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (send_line(fd, command_json, pass_fd)) {
		set_err(err, len, "cannot send to %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	for (;;) {
		ssize_t n = read(fd, reply + got, reply_len - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
		reply[got] = 0;
		/* Event lines (progress) come before the reply. */
		while ((nl = strchr(reply, '\n')) && strstr(reply, "\"event\"") == reply + 1) {
			json_t *ev = json_loads(reply, JSON_DISABLE_EOF_CHECK, NULL);
			json_int_t done = json_integer_value(json_object_get(ev, "done"));
			json_int_t total = json_integer_value(json_object_get(ev, "total"));
			if (total)
				fprintf(stderr, "progress: %lld%% (%lld of %lld MiB)\n",
					(long long)(done * 100 / total), (long long)(done >> 20),
					(long long)(total >> 20));
			json_decref(ev);
			got -= (size_t)(nl + 1 - reply);
			memmove(reply, nl + 1, got + 1);
		}
		if (strchr(reply, '\n') || got + 1 >= reply_len)
			break;
	}
	close(fd);
	reply[got] = 0;
	if (!got)
		return set_err(err, len, "%s closed the connection without a reply", path);
	return 0;
}
