/* modvm: the command line. Each command is a small function; all of them
 * load the plugin registry the same way. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "control.h"
#include "migration.h"
#include "fusefs.h"
#include "inspect.h"
#include "machine.h"
#include "registry.h"
#include "run.h"
#include "sandbox.h"
#include "snapshot.h"

static const char usage_text[] =
	"usage: modvm COMMAND [ARGS]\n"
	"\n"
	"commands:\n"
	"  run CONFIG [-v] [--control SOCKET] [--mount DIR] [--sandbox=on|off]\n"
	"      [--incoming tcp:ADDR:PORT]\n"
	"                      boot the VM described by CONFIG (a libconfig file),\n"
	"                      or receive it from a live migration (--incoming)\n"
	"  ctl SOCKET COMMAND  status, pause, resume, quit, query-cpus, query-devices,\n"
	"                      snapshot NAME, screendump FILE (PNG),\n"
	"                      migrate tcp:HOST:PORT [--bandwidth MB/s] [--downtime MS],\n"
	"                      migrate-status, migrate-cancel\n"
	"  mount SOCKET DIR    show a running VM (--control SOCKET) as files in DIR\n"
	"  umount SOCKET DIR   undo modvm mount\n"
	"  resume DIR          resume a snapshot (possibly copied from another host)\n"
	"  check CONFIG        validate CONFIG against the installed plugins, run nothing\n"
	"  plugins             list plugins: name, kind, version, ABI, path\n"
	"  inspect NAME        show one plugin's properties and state layout\n"
	"  help [COMMAND]      this text, or help on one command\n"
	"  --version           print the version\n"
	"\n"
	"Plugins are searched in the build tree (when run from it), in each folder\n"
	"of MODVM_PLUGIN_PATH, then in the install folder.\n"
	"Exit codes: 0 guest powered off / success, 1 the VM failed while running,\n"
	"2 bad command line or config (nothing ran), 3 guest panic, 4 guest reset\n"
	"with --no-reboot, 130 interrupted, 159 the sandbox stopped a forbidden\n"
	"system call.\n";

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
};

static int cmd_help(int argc, char **argv);

static void load_registry(struct registry *r)
{
	registry_init(r);
	registry_default_dirs(r);
	registry_scan(r);
}

static bool want_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return true;
	return false;
}

static int cmd_plugins(int argc, char **argv)
{
	struct registry r;

	if (argc != 1) {
		fprintf(stderr, "modvm plugins: takes no arguments\n");
		return EXIT_USAGE;
	}
	load_registry(&r);
	print_plugins(&r, stdout);
	registry_free(&r);
	return 0;
}

static int cmd_inspect(int argc, char **argv)
{
	const struct plugin *p;
	struct registry r;
	int ret = 0;

	if (argc != 2) {
		fprintf(stderr, "modvm inspect: expected one plugin name (see `modvm plugins`)\n");
		return EXIT_USAGE;
	}
	load_registry(&r);
	p = registry_find(&r, argv[1]);
	if (p) {
		print_inspect(p, stdout);
	} else {
		fprintf(stderr, "modvm inspect: no plugin named \"%s\"; `modvm plugins` lists them\n",
			argv[1]);
		registry_report_refusals(&r);
		ret = EXIT_USAGE;
	}
	registry_free(&r);
	return ret;
}

/* Parse and validate a config; the registry must be loaded. */
static int load_config(const char *path, struct registry *r,
		       struct vm_config *c)
{
	char err[ERR_LEN];

	if (config_load(path, c, err, sizeof(err)) ||
	    config_validate(c, r, err, sizeof(err))) {
		fprintf(stderr, "modvm: %s\n", err);
		registry_report_refusals(r);
		return -1;
	}
	return 0;
}

static int cmd_check(int argc, char **argv)
{
	struct registry r;
	struct vm_config c;
	int ret = 0;

	if (argc != 2) {
		fprintf(stderr, "modvm check: expected one config file\n");
		return EXIT_USAGE;
	}
	load_registry(&r);
	if (load_config(argv[1], &r, &c))
		ret = EXIT_USAGE;
	else
		printf("%s: ok (%s, %zu devices, engine %s)\n", argv[1], c.name,
		       c.ndevices, c.engine);
	config_free(&c);
	registry_free(&r);
	return ret;
}

/* --sandbox=on|off (docs/sandbox.md); -1 with a message if neither. */
static int parse_sandbox_opt(const char *prog, const char *v, int *out)
{
	if (!strcmp(v, "on")) {
		*out = SANDBOX_ON;
	} else if (!strcmp(v, "off")) {
		*out = SANDBOX_OFF;
	} else {
		fprintf(stderr, "%s: --sandbox=%s: use --sandbox=on or --sandbox=off\n", prog, v);
		return -1;
	}
	return 0;
}

static int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "verbose", no_argument, NULL, 'v' },
		{ "control", required_argument, NULL, 'c' },
		{ "snapshot-dir", required_argument, NULL, 's' },
		{ "mount", required_argument, NULL, 'm' }, /* fuse: --mount */
		{ "no-reboot", no_argument, NULL, 'R' },
		{ "sandbox", required_argument, NULL, 'S' },
		{ "incoming", required_argument, NULL, 'I' },
		{ NULL, 0, NULL, 0 },
	};
	int sandbox = SANDBOX_UNSET;
	struct registry r;
	struct vm_config c;
	struct machine m;
	char err[ERR_LEN];
	int verbosity = MODVM_LOG_WARN, opt, ret;
	const char *control = NULL, *snapdir = ".", *mount = NULL, *incoming = NULL;
	bool no_reboot = false;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "vc:s:m:", opts, NULL)) != -1) {
		if (opt == 'R')
			no_reboot = true;
		else if (opt == 'I') {
			char h[256], p[16];
			if (migration_parse_uri(optarg, h, sizeof(h), p, sizeof(p), err, sizeof(err))) {
				fprintf(stderr, "modvm run: --incoming %s\n", err);
				return EXIT_USAGE;
			}
			incoming = optarg;
		} else if (opt == 'S') {
			if (parse_sandbox_opt("modvm run", optarg, &sandbox))
				return EXIT_USAGE;
		}
		else if (opt == 'v')
			verbosity++;
		else if (opt == 'c')
			control = optarg;
		else if (opt == 's')
			snapdir = optarg;
		else if (opt == 'm')
			mount = optarg; /* fuse: --mount */
		else
			return EXIT_USAGE;
	}
	if (optind != argc - 1) {
		fprintf(stderr, "modvm run: expected one config file (modvm run vm.cfg)\n");
		return EXIT_USAGE;
	}
	load_registry(&r);
	if (load_config(argv[optind], &r, &c) ||
	    (snapshot_refuse_frozen_disks(&c, snapdir, err, sizeof(err)) &&
	     fprintf(stderr, "modvm: %s\n", err))) {
		config_free(&c);
		registry_free(&r);
		return EXIT_USAGE;
	}
	if (machine_init(&m, c.memory, false, err, sizeof(err))) {
		fprintf(stderr, "modvm: %s: %s\n", c.path, err);
		ret = EXIT_FAILURE_RUN;
		goto out;
	}
	m.verbosity = verbosity > MODVM_LOG_TRACE ? MODVM_LOG_TRACE : verbosity;
	m.reg = &r;
	m.control_path = control;
	m.snapshot_dir = snapdir;
	m.no_reboot = no_reboot;
	m.sandbox_cli = sandbox;
	m.incoming = incoming;
	if (mount)
		fusefs_want_mount(&m, mount); /* fuse: --mount */
	if (machine_add_config_devices(&m, &c, err, sizeof(err))) {
		fprintf(stderr, "modvm: %s\n", err);
		ret = EXIT_USAGE;
	} else {
		ret = machine_run(&m, &c);
	}
	machine_destroy(&m);
out:
	config_free(&c);
	registry_free(&r);
	return ret;
}

/* Send one request j (consumed) to the control socket and print the
 * answer: 0 for a return, 1 for an error, 2 if nobody answered. */
static int send_request_fd(const char *prog, const char *sock, json_t *j,
			   int pass_fd)
{
	char reply[256 * 1024], err[ERR_LEN];
	char *req = json_dumps(j, JSON_COMPACT);
	json_t *ret;
	bool ok = false;

	json_decref(j);
	if (control_client_fd(sock, req, pass_fd, reply, sizeof(reply), err, sizeof(err))) {
		free(req);
		fprintf(stderr, "%s: %s\n", prog, err);
		return EXIT_USAGE;
	}
	free(req);
	j = json_loads(reply, 0, NULL);
	ret = j ? json_object_get(j, "return") : NULL;
	if (ret) {
		ok = true;
		char *s = json_dumps(ret, JSON_INDENT(2));
		if (s && strcmp(s, "{}"))
			printf("%s\n", s);
		free(s);
	} else {
		json_t *e = j ? json_object_get(j, "error") : NULL;
		const char *desc = e ? json_string_value(json_object_get(e, "desc")) : NULL;
		fprintf(stderr, "%s: %s\n", prog, desc ? desc : reply);
	}
	json_decref(j);
	return ok ? 0 : EXIT_FAILURE_RUN;
}

static int send_request(const char *prog, const char *sock, json_t *j)
{
	return send_request_fd(prog, sock, j, -1);
}

/* modvm ctl SOCKET screendump FILE: FILE is opened here, where it was
 * typed, and passed to the VM, which writes the PNG into it. */
static int ctl_screendump(const char *sock, const char *file)
{
	int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	int r;

	if (fd < 0) {
		fprintf(stderr, "modvm ctl: cannot create %s: %s\n", file, strerror(errno));
		return EXIT_USAGE;
	}
	r = send_request_fd("modvm ctl", sock, json_pack("{s:s}", "execute", "screendump"), fd);
	close(fd);
	if (r)
		unlink(file);             /* no half or empty picture left behind */
	return r;
}

/* The connection to a migration destination, made here: the VM runs
 * sandboxed and may not connect (docs/decisions.md). */
static int connect_uri(const char *uri)
{
	char host[256], port[16], err[ERR_LEN];
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
	int fd = -1, e;

	if (migration_parse_uri(uri, host, sizeof(host), port, sizeof(port), err, sizeof(err))) {
		fprintf(stderr, "modvm ctl: migrate %s\n", err);
		return -1;
	}
	e = getaddrinfo(host, port, &hints, &ai);
	if (e) {
		fprintf(stderr, "modvm ctl: migrate %s: %s\n", uri, gai_strerror(e));
		return -1;
	}
	for (struct addrinfo *a = ai; a; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (fd >= 0 && !connect(fd, a->ai_addr, a->ai_addrlen))
			break;
		e = errno;
		if (fd >= 0)
			close(fd);
		fd = -1;
		errno = e;
	}
	freeaddrinfo(ai);
	if (fd < 0)
		fprintf(stderr, "modvm ctl: migrate: cannot connect to %s: %s (is `modvm run CFG --incoming %s` waiting there?)\n",
			uri, strerror(errno), uri);
	return fd;
}

/* modvm ctl SOCKET migrate tcp:HOST:PORT [--bandwidth MB/s] [--downtime MS]
 * [--max-iterations N] */
static int ctl_migrate(int argc, char **argv)
{
	json_t *args, *j;
	int fd, r;

	if (argc < 4) {
		fprintf(stderr, "modvm ctl: migrate tcp:HOST:PORT [--bandwidth MB/s] [--downtime MS] [--max-iterations N]\n");
		return EXIT_USAGE;
	}
	args = json_pack("{s:s}", "uri", argv[3]);
	for (int i = 4; i < argc; i += 2) {
		char *end;
		double v = i + 1 < argc ? strtod(argv[i + 1], &end) : 0;
		const char *key = !strcmp(argv[i], "--bandwidth") ? "bandwidth" :
				  !strcmp(argv[i], "--downtime") ? "downtime" :
				  !strcmp(argv[i], "--max-iterations") ? "max-iterations" : NULL;
		if (!key || i + 1 >= argc || *end || end == argv[i + 1] || v < 0) {
			fprintf(stderr, "modvm ctl: migrate: %s: expected --bandwidth MB/s, --downtime MS or --max-iterations N\n",
				argv[i]);
			json_decref(args);
			return EXIT_USAGE;
		}
		json_object_set_new(args, key, !strcmp(key, "max-iterations") ?
				    json_integer((json_int_t)v) : json_real(v));
	}
	fd = connect_uri(argv[3]);
	if (fd < 0) {
		json_decref(args);
		return EXIT_FAILURE_RUN;
	}
	j = json_pack("{s:s,s:o}", "execute", "migrate", "arguments", args);
	r = send_request_fd("modvm ctl", argv[1], j, fd);
	close(fd); /* the VM has its own copy now */
	return r;
}

static int cmd_ctl(int argc, char **argv)
{
	static const char *const known[] = { "status", "pause", "resume", "quit",
					     "query-cpus", "query-devices",
					     "snapshot", "screendump", "migrate",
					     "migrate-status", "migrate-cancel", NULL };
	json_t *j;
	int i;

	if (argc < 3) {
		fprintf(stderr, "modvm ctl: expected SOCKET COMMAND (status, pause, resume, quit, query-cpus, query-devices, snapshot NAME, screendump FILE, migrate tcp:HOST:PORT, migrate-status, migrate-cancel)\n");
		return EXIT_USAGE;
	}
	for (i = 0; known[i] && strcmp(known[i], argv[2]); i++)
		;
	if (!known[i]) {
		fprintf(stderr, "modvm ctl: unknown command \"%s\" (modvm mount/umount SOCKET DIR mount the FUSE view)\n",
			argv[2]);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[2], "screendump")) {
		if (argc != 4) {
			fprintf(stderr, "modvm ctl: screendump needs one FILE to write the PNG to\n");
			return EXIT_USAGE;
		}
		return ctl_screendump(argv[1], argv[3]);
	}
	if (!strcmp(argv[2], "migrate"))
		return ctl_migrate(argc, argv);
	j = json_pack("{s:s}", "execute", argv[2]);
	if (argc > 3) {
		json_t *args = json_pack("{s:s}", "name", argv[3]);
		/* snapshot NAME disks=reference: keep the old by-checksum disks */
		if (argc > 4 && !strncmp(argv[4], "disks=", 6))
			json_object_set_new(args, "disks", json_string(argv[4] + 6));
		json_object_set_new(j, "arguments", args);
	}
	return send_request("modvm ctl", argv[1], j);
}

/* modvm mount|umount SOCKET DIR: the VM process serves (or stops serving)
 * its FUSE tree on DIR; DIR is resolved here, where it was typed. */
static int mount_command(int argc, char **argv, const char *cmd)
{
	char prog[32], *abs;

	snprintf(prog, sizeof(prog), "modvm %s", cmd);
	if (argc != 3) {
		fprintf(stderr, "%s: expected SOCKET DIR\n", prog);
		return EXIT_USAGE;
	}
	abs = realpath(argv[2], NULL);
	if (!abs) {
		fprintf(stderr, "%s: %s: %s%s\n", prog, argv[2], strerror(errno),
			errno == ENOENT ? " (create an empty directory first)" : "");
		return EXIT_USAGE;
	}
	int r = send_request(prog, argv[1], json_pack("{s:s,s:{s:s}}", "execute", cmd,
						       "arguments", "path", abs));
	free(abs);
	return r;
}

static int cmd_mount(int argc, char **argv)
{
	return mount_command(argc, argv, "mount");
}

static int cmd_umount(int argc, char **argv)
{
	return mount_command(argc, argv, "umount");
}

static int cmd_resume(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "verbose", no_argument, NULL, 'v' },
		{ "control", required_argument, NULL, 'c' },
		{ "engine", required_argument, NULL, 'e' },
		{ "engine-prop", required_argument, NULL, 'p' },
		{ "snapshot-dir", required_argument, NULL, 's' },
		{ "no-verify-memory", no_argument, NULL, 'n' },
		{ "mount", required_argument, NULL, 'm' }, /* fuse: --mount */
		{ "sandbox", required_argument, NULL, 'S' },
		{ NULL, 0, NULL, 0 },
	};
	int sandbox = SANDBOX_UNSET;
	const char *control = NULL, *engine = NULL, *snapdir = ".", *mount = NULL;
	const char *eprops[16];
	unsigned neprops = 0;
	int verbosity = MODVM_LOG_WARN, opt, ret = EXIT_USAGE;
	bool verify = true;
	struct snapshot s;
	struct registry r;
	struct vm_config c;
	struct machine m;
	char err[ERR_LEN];

	optind = 1;
	while ((opt = getopt_long(argc, argv, "vc:e:p:s:nm:", opts, NULL)) != -1) {
		switch (opt) {
		case 'v': verbosity++; break;
		case 'c': control = optarg; break;
		case 'e': engine = optarg; break;
		case 'p':
			if (neprops == 16 || !strchr(optarg, '=') || *optarg == '=') {
				fprintf(stderr, "modvm resume: --engine-prop wants NAME=VALUE (at most 16)\n");
				return EXIT_USAGE;
			}
			eprops[neprops++] = optarg;
			break;
		case 's': snapdir = optarg; break;
		case 'n': verify = false; break;
		case 'm': mount = optarg; break; /* fuse: --mount */
		case 'S':
			if (parse_sandbox_opt("modvm resume", optarg, &sandbox))
				return EXIT_USAGE;
			break;
		default: return EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "modvm resume: expected one snapshot directory\n");
		return EXIT_USAGE;
	}
	memset(&c, 0, sizeof(c));
	registry_init(&r);
	if (snapshot_open(argv[optind], verify, &s, err, sizeof(err))) {
		fprintf(stderr, "modvm resume: %s\n", err);
		snapshot_close(&s);
		return EXIT_USAGE;
	}
	registry_default_dirs(&r);
	registry_scan(&r);
	if (config_load(s.config_path, &c, err, sizeof(err)))
		goto bad;
	if (engine) {
		free(c.engine);
		c.engine = xstrdup(engine);
	}
	for (unsigned i = 0; i < neprops; i++)
		config_set_engine_prop(&c, eprops[i]);
	if (config_validate(&c, &r, err, sizeof(err)))
		goto bad;
	if (c.memory != s.memory || c.cpus != s.cpus || strcmp(c.model, s.model)) {
		snprintf(err, sizeof(err), "%s: the manifest (%u cpus, %llu bytes, model %s) does not match its config.cfg",
			 s.dir, s.cpus, (unsigned long long)s.memory, s.model);
		goto bad;
	}
	if (machine_init_image(&m, s.memory_path, s.memory, err, sizeof(err)))
		goto bad;
	/* before the devices: a frozen disk's front end starts on an overlay */
	if (snapshot_check_disks(&m, &s, &c, err, sizeof(err))) {
		machine_destroy(&m);
		goto bad;
	}
	m.verbosity = verbosity > MODVM_LOG_TRACE ? MODVM_LOG_TRACE : verbosity;
	m.reg = &r;
	m.control_path = control;
	m.snapshot_dir = snapdir;
	m.resume_from = &s;
	m.sandbox_cli = sandbox;
	if (mount)
		fusefs_want_mount(&m, mount); /* fuse: --mount */
	if (machine_add_config_devices(&m, &c, err, sizeof(err)) ||
	    snapshot_load_devices(&m, &s, err, sizeof(err)))
		fprintf(stderr, "modvm resume: %s\n", err);
	else
		ret = machine_run(&m, &c);
	machine_destroy(&m);
	goto out;
bad:
	fprintf(stderr, "modvm resume: %s\n", err);
out:
	config_free(&c);
	registry_free(&r);
	snapshot_close(&s);
	return ret;
}

static const struct command commands[] = {
	{ "run", cmd_run,
	  "usage: modvm run CONFIG [-v|--verbose]... [--control SOCKET] [--mount DIR]\n"
	  "                 [--snapshot-dir DIR] [--no-reboot] [--sandbox=on|off]\n"
	  "Validate CONFIG, create its devices, load the boot image and run the\n"
	  "VM until it powers off (exit 0), fails (1) or is interrupted (130).\n"
	  "-v raises the log level (info, then debug, then trace).\n"
	  "--control SOCKET serves the control socket (see modvm ctl).\n"
	  "--mount DIR shows the VM as files in DIR (docs/fuse.md).\n"
	  "--no-reboot: a guest reset (or triple fault) ends modvm with exit 4\n"
	  "instead of booting again (tests: a guest panic with panic=-1).\n"
	  "--sandbox=on|off: after set-up, run under seccomp allow lists (and the\n"
	  "config's uid/gid and namespaces); a forbidden system call ends modvm\n"
	  "with exit 159 and a message naming it (docs/sandbox.md).\n" },
	{ "ctl", cmd_ctl,
	  "usage: modvm ctl SOCKET COMMAND\n"
	  "Send COMMAND to the VM whose control socket is SOCKET (modvm run\n"
	  "--control SOCKET): status, pause, resume, quit, query-cpus,\n"
	  "query-devices, snapshot NAME [disks=reference], screendump FILE\n"
	  "(the screen as a PNG). Prints the answer as JSON. docs/control.md has the\n"
	  "protocol.\n" },
	{ "mount", cmd_mount,
	  "usage: modvm mount SOCKET DIR\n"
	  "Show the VM whose control socket is SOCKET as files in DIR, an empty\n"
	  "directory (the same tree as modvm run --mount, docs/fuse.md). The VM\n"
	  "serves it until modvm umount SOCKET DIR, fusermount3 -u DIR, or its\n"
	  "exit. Exit 0 mounted, 1 refused (the reason is printed), 2 no VM.\n" },
	{ "umount", cmd_umount,
	  "usage: modvm umount SOCKET DIR\n"
	  "Unmount DIR, mounted by modvm mount SOCKET DIR; the VM keeps running.\n" },
	{ "resume", cmd_resume,
	  "usage: modvm resume DIR [--engine NAME] [--engine-prop NAME=VALUE]... [--control SOCKET] [--mount DIR] [--no-verify-memory] [--sandbox=on|off] [-v]\n"
	  "Resume the snapshot in DIR exactly where it stopped. Every file is\n"
	  "checked against the manifest first (the memory image too, unless\n"
	  "--no-verify-memory); a damaged or incompatible snapshot is refused.\n"
	  "--engine resumes under another CPU engine (the state is canonical);\n"
	  "--engine-prop sets one of its properties (e.g. mode=interpret for cpu-bt).\n"
	  "--mount DIR shows the VM as files in DIR (docs/fuse.md).\n"
	  "--sandbox=on|off as for modvm run (docs/sandbox.md).\n" },
	{ "check", cmd_check,
	  "usage: modvm check CONFIG\n"
	  "Validate CONFIG against the installed plugins and exit: 0 if valid,\n"
	  "2 with file:line: message otherwise. Nothing is started.\n" },
	{ "plugins", cmd_plugins,
	  "usage: modvm plugins\n"
	  "List every plugin found: name, kind, version, ABI, path, description;\n"
	  "whether each cpu engine can run on this host; refused files and why.\n" },
	{ "inspect", cmd_inspect,
	  "usage: modvm inspect NAME\n"
	  "Show a plugin's properties (type, default, range or values, help) and\n"
	  "its state sections with versions and fields.\n" },
	{ "help", cmd_help, "usage: modvm help [COMMAND]\n" },
};

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

static int cmd_help(int argc, char **argv)
{
	const struct command *c;

	if (argc < 2) {
		fputs(usage_text, stdout);
		return 0;
	}
	c = find_command(argv[1]);
	if (!c) {
		fprintf(stderr, "modvm help: unknown command \"%s\"\n", argv[1]);
		return EXIT_USAGE;
	}
	fputs(c->help, stdout);
	return 0;
}

int main(int argc, char **argv)
{
	const struct command *c;

	/* A peer that goes away (a socket client, a pipe reader) is an
	 * error return for whoever writes, never a reason to die. */
	signal(SIGPIPE, SIG_IGN);

	if (argc < 2) {
		fputs(usage_text, stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		printf("modvm %s (plugin ABI %d.%d)\n", MODVM_VERSION,
		       MODVM_ABI_MAJOR, MODVM_ABI_MINOR);
		return 0;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(usage_text, stdout);
		return 0;
	}
	c = find_command(argv[1]);
	if (!c) {
		fprintf(stderr, "modvm: unknown command \"%s\"\n\n%s", argv[1], usage_text);
		return EXIT_USAGE;
	}
	if (want_help(argc - 1, argv + 1)) {
		fputs(c->help, stdout);
		return 0;
	}
	/* Before any thread exists (disk workers start with the devices):
	 * the stop signals must reach the run loop, never kill a worker. */
	if (c->fn == cmd_run || c->fn == cmd_resume)
		machine_block_stop_signals();
	return c->fn(argc - 1, argv + 1);
}
