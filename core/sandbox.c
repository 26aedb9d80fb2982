/* The sandbox: seccomp-bpf allow lists built with libseccomp, no new
 * privileges, an optional uid/gid drop and private namespaces, applied
 * once the VM is set up. Why each system call is allowed, and what is not
 * protected, is in docs/sandbox.md; keep the two in step. */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <malloc.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <pwd.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "util.h"

/* On unless told otherwise, as Firecracker, crosvm and QEMU's
 * -sandbox on do (docs/sandbox.md: the whole suite runs with it). */
#define SANDBOX_DEFAULT SANDBOX_ON

/* Sanitizer builds (GCC says __SANITIZE_ADDRESS__, clang __has_feature). */
#if defined(__SANITIZE_ADDRESS__)
#define SANDBOX_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANDBOX_ASAN 1
#endif
#endif

/* Which filter a rule goes into. Every rule is in the process-wide
 * list; R_DEV rules are also in the narrower list the vCPU and
 * event-loop threads stack on themselves. */
#define R_ALL 0u
#define R_DEV 1u

/* glibc (nptl/pthread_create.c, create_thread) */
#define PTHREAD_CLONE_FLAGS \
	(CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SYSVSEM | CLONE_SIGHAND | \
	 CLONE_THREAD | CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID)

static atomic_bool active;
static bool inet_sockets;   /* sandbox_allow_inet_sockets was called */
static bool dropped_uid;
static bool stderr_tty;     /* end the message with \r\n: the console may be raw */
static struct sock_fprog device_prog;

/* Plugin threads started before the sandbox (sandbox_thread_begin). The
 * lock also orders their registration against sandbox_apply's `active`. */
static pthread_mutex_t threads_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sandbox_thread *threads;
static __thread struct sandbox_thread *self_thread;
/* Asks a registered thread to stack the device filter on itself. */
#define NARROW_SIGNAL (SIGRTMIN + 1)
/* How long sandbox_apply waits for each of them. */
#define NARROW_WAIT_MS 5000

/* Syscall names for the SIGSYS handler, resolved before the filter is
 * loaded: the handler may not allocate. */
#define NAMES_MAX 512
static char *names[NAMES_MAX];

const char *sandbox_syscall_name(int nr)
{
	return nr >= 0 && nr < NAMES_MAX ? names[nr] : NULL;
}

void sandbox_allow_inet_sockets(void)
{
	inet_sockets = true;
}

bool sandbox_active(void)
{
	return atomic_load(&active);
}

bool sandbox_dropped_uid(void)
{
	return dropped_uid;
}

bool sandbox_unmount_needs_helper(void)
{
	return atomic_load(&active) && (geteuid() != 0 || sandbox_landlock_abi() > 0);
}

int sandbox_decide(int cli, const struct sandbox_config *c, bool *on,
		   const char **why, char *err, size_t len)
{
	const char *env = getenv("MODVM_SANDBOX");

	if (cli != SANDBOX_UNSET) {
		*on = cli == SANDBOX_ON;
		*why = "--sandbox";
	} else if (c && c->enable != SANDBOX_UNSET) {
		*on = c->enable == SANDBOX_ON;
		*why = "the config";
	} else if (env && *env) {
		if (strcmp(env, "on") && strcmp(env, "off"))
			return set_err(err, len, "MODVM_SANDBOX=%s: use on or off", env);
		*on = !strcmp(env, "on");
		*why = "MODVM_SANDBOX";
	} else {
		*on = SANDBOX_DEFAULT == SANDBOX_ON;
		*why = "the default";
	}
	return 0;
}

/* ---- the SIGSYS handler: async-signal-safe only ------------------------ */

struct msg {
	char buf[640];
	size_t n;
};

static void put(struct msg *m, const char *s)
{
	while (*s && m->n < sizeof(m->buf) - 1)
		m->buf[m->n++] = *s++;
}

static void put_num(struct msg *m, unsigned long long v, unsigned base)
{
	char tmp[24];
	int i = (int)sizeof(tmp) - 1;

	tmp[i] = 0;
	do {
		tmp[--i] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v && i > 0);
	if (base == 16)
		put(m, "0x");
	put(m, tmp + i);
}

static void on_sigsys(int sig, siginfo_t *si, void *ctx)
{
	const ucontext_t *uc = ctx;
	char thread[17] = "?";
	struct msg m = { .n = 0 };
	int nr = si->si_syscall;

	(void)sig;
	prctl(PR_GET_NAME, thread, 0, 0, 0);
	put(&m, "modvm: sandbox: thread ");
	put(&m, thread);
	put(&m, " made forbidden system call ");
	if (si->si_arch != AUDIT_ARCH_X86_64) {
		put(&m, "of another ABI, number ");
		put_num(&m, (unsigned)nr, 10);
	} else {
		put(&m, sandbox_syscall_name(nr) ? sandbox_syscall_name(nr) : "?");
		put(&m, " (");
		put_num(&m, (unsigned)nr, 10);
		put(&m, ")");
	}
	put(&m, " with arguments ");
	put_num(&m, (unsigned long long)uc->uc_mcontext.gregs[REG_RDI], 16);
	put(&m, ", ");
	put_num(&m, (unsigned long long)uc->uc_mcontext.gregs[REG_RSI], 16);
	put(&m, ", ");
	put_num(&m, (unsigned long long)uc->uc_mcontext.gregs[REG_RDX], 16);
	put(&m, "; modvm stops now (exit 159) without cleaning up: a device or "
		"engine did what modvm never needs after set-up (a bug or an attack; "
		"docs/sandbox.md says how to debug it, --sandbox=off runs without)");
	put(&m, stderr_tty ? "\r\n" : "\n");
	if (write(STDERR_FILENO, m.buf, m.n) < 0) {
		/* nowhere else to say it */
	}
	_exit(EXIT_SANDBOX);
}

/* ---- building the filters ---------------------------------------------- */

struct build {
	scmp_filter_ctx ctx;
	unsigned role;   /* R_ALL: every rule; R_DEV: the R_DEV rules */
	int err;         /* first failure, -errno */
	const char *what;
};

static void rule(struct build *b, unsigned role, uint32_t action, int nr,
		 unsigned n, const struct scmp_arg_cmp *args)
{
	int r;

	if (b->err || (b->role == R_DEV && role != R_DEV))
		return;
	r = seccomp_rule_add_exact_array(b->ctx, action, nr, n, args);
	if (r && !b->err) {
		b->err = r;
		b->what = sandbox_syscall_name(nr);
	}
}

static void allow(struct build *b, unsigned role, int nr)
{
	rule(b, role, SCMP_ACT_ALLOW, nr, 0, NULL);
}

static void allow_if(struct build *b, unsigned role, int nr,
		     struct scmp_arg_cmp a)
{
	rule(b, role, SCMP_ACT_ALLOW, nr, 1, &a);
}

static void allow_list(struct build *b, unsigned role, const int *nrs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		allow(b, role, nrs[i]);
}

/* One argument comparison with every field set (libseccomp's SCMP_An
 * macros leave datum_b to the compiler, which clang's -Wextra refuses).
 * For SCMP_CMP_MASKED_EQ, a is the mask and b the value. */
static struct scmp_arg_cmp arg_cmp(unsigned arg, enum scmp_compare op,
				   scmp_datum_t a, scmp_datum_t b)
{
	return (struct scmp_arg_cmp){ .arg = arg, .op = op, .datum_a = a, .datum_b = b };
}

static struct scmp_arg_cmp arg_eq(unsigned arg, scmp_datum_t v)
{
	return arg_cmp(arg, SCMP_CMP_EQ, v, 0);
}

/* ioctl: a 32-bit request compared whatever the caller's upper bits. */
static void allow_ioctl(struct build *b, unsigned role, unsigned long req)
{
	allow_if(b, role, SCMP_SYS(ioctl), arg_cmp(1, SCMP_CMP_MASKED_EQ, 0xffffffffu, req));
}

static void allow_ioctl_type(struct build *b, unsigned role, unsigned type)
{
	allow_if(b, role, SCMP_SYS(ioctl), arg_cmp(1, SCMP_CMP_MASKED_EQ, 0xff00u, type << 8));
}

/* What every thread does: memory, locks, time, I/O on descriptors it has,
 * signals to its own threads, thread exit. */
static const int sys_common[] = {
	SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev),
	SCMP_SYS(pread64), SCMP_SYS(pwrite64), SCMP_SYS(preadv), SCMP_SYS(pwritev),
	SCMP_SYS(preadv2), SCMP_SYS(pwritev2), SCMP_SYS(lseek), SCMP_SYS(close),
	SCMP_SYS(fstat), SCMP_SYS(fcntl),
	SCMP_SYS(poll), SCMP_SYS(ppoll), SCMP_SYS(select), SCMP_SYS(pselect6),
	SCMP_SYS(epoll_wait), SCMP_SYS(epoll_pwait), SCMP_SYS(epoll_ctl),
	/* block backends: the flush and allocation of images already open */
	SCMP_SYS(fsync), SCMP_SYS(fdatasync), SCMP_SYS(ftruncate), SCMP_SYS(fallocate),
	/* sockets made at set-up (NBD, chardev socket, control socket) and
	 * the clients the listening ones accept; never a new socket or an
	 * outgoing connection (socket, connect, bind, listen are not here) */
	SCMP_SYS(sendto), SCMP_SYS(recvfrom), SCMP_SYS(sendmsg), SCMP_SYS(recvmsg),
	SCMP_SYS(sendmmsg), SCMP_SYS(recvmmsg), SCMP_SYS(shutdown),
	SCMP_SYS(getsockname), SCMP_SYS(getpeername), SCMP_SYS(getsockopt),
	SCMP_SYS(setsockopt), SCMP_SYS(accept4), SCMP_SYS(accept),
	/* memory (mmap and mprotect: see the PROT_EXEC rules) */
	SCMP_SYS(brk), SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(madvise),
	SCMP_SYS(mincore), SCMP_SYS(msync),
	/* threads, locks, time */
	SCMP_SYS(futex), SCMP_SYS(set_robust_list), SCMP_SYS(rseq),
	SCMP_SYS(sched_yield), SCMP_SYS(sched_getaffinity),
	SCMP_SYS(nanosleep), SCMP_SYS(clock_nanosleep), SCMP_SYS(clock_gettime),
	SCMP_SYS(clock_getres), SCMP_SYS(gettimeofday), SCMP_SYS(time),
	SCMP_SYS(getpid), SCMP_SYS(gettid), SCMP_SYS(getppid), SCMP_SYS(getuid),
	SCMP_SYS(geteuid), SCMP_SYS(getgid), SCMP_SYS(getegid),
	SCMP_SYS(getresuid), SCMP_SYS(getresgid), SCMP_SYS(getgroups),
	SCMP_SYS(uname), SCMP_SYS(sysinfo), SCMP_SYS(getrandom), SCMP_SYS(getrusage),
	/* signals within the process */
	SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigreturn), SCMP_SYS(rt_sigtimedwait),
	SCMP_SYS(rt_sigpending), SCMP_SYS(sigaltstack),
	SCMP_SYS(exit), SCMP_SYS(exit_group), SCMP_SYS(restart_syscall),
};

/* What only the other threads do (main, control, FUSE, signals and the
 * threads plugins start, e.g. block workers): paths, for snapshots,
 * overlays, the FUSE view and the reset that reloads the boot images;
 * new descriptors; thread creation. */
static const int sys_service[] = {
	SCMP_SYS(open), SCMP_SYS(openat), SCMP_SYS(mkdir), SCMP_SYS(mkdirat),
	SCMP_SYS(rmdir), SCMP_SYS(unlink), SCMP_SYS(unlinkat), SCMP_SYS(rename),
	SCMP_SYS(renameat), SCMP_SYS(renameat2), SCMP_SYS(readlink),
	SCMP_SYS(readlinkat), SCMP_SYS(access), SCMP_SYS(faccessat),
	SCMP_SYS(faccessat2), SCMP_SYS(getcwd), SCMP_SYS(getdents64),
	SCMP_SYS(stat), SCMP_SYS(lstat), SCMP_SYS(newfstatat), SCMP_SYS(statx),
	SCMP_SYS(statfs), SCMP_SYS(fstatfs), SCMP_SYS(fchmod), SCMP_SYS(chmod),
	SCMP_SYS(fchmodat), SCMP_SYS(utimensat), SCMP_SYS(fadvise64),
	SCMP_SYS(copy_file_range), SCMP_SYS(sendfile), SCMP_SYS(sync_file_range),
	SCMP_SYS(flock), SCMP_SYS(dup), SCMP_SYS(dup2), SCMP_SYS(dup3),
	SCMP_SYS(pipe2), SCMP_SYS(eventfd2), SCMP_SYS(close_range),
	SCMP_SYS(epoll_create1),
};

static void add_rules(struct build *b)
{
	const unsigned R_BOTH = R_DEV; /* in both lists */

	allow_list(b, R_BOTH, sys_common, ARRAY_SIZE(sys_common));
	allow_list(b, R_ALL, sys_service, ARRAY_SIZE(sys_service));

	/* No new executable memory: the translation cache is mapped at
	 * set-up; nothing maps code after it. */
	allow_if(b, R_BOTH, SCMP_SYS(mmap), arg_cmp(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	allow_if(b, R_BOTH, SCMP_SYS(mprotect), arg_cmp(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	/* fstat() is fstatat(fd, "", AT_EMPTY_PATH) in glibc */
	allow_if(b, R_BOTH, SCMP_SYS(newfstatat), arg_eq(3, AT_EMPTY_PATH));
	/* Thread names (the SIGSYS message prints them). */
	allow_if(b, R_BOTH, SCMP_SYS(prctl), arg_eq(0, PR_GET_NAME));
	allow_if(b, R_BOTH, SCMP_SYS(prctl), arg_eq(0, PR_SET_NAME));
	/* Signals to this process's own threads (KVM kicks, abort). */
	allow_if(b, R_BOTH, SCMP_SYS(tgkill), arg_eq(0, (scmp_datum_t)getpid()));
	/* kill(pid, 0) only asks whether a process lives: a snapshot
	 * recognises the leftovers of one whose modvm died (NAME.tmp-PID). */
	allow_if(b, R_ALL, SCMP_SYS(kill), arg_eq(1, 0));
	/* Handlers for anything but SIGSYS, which stays ours. */
	allow_if(b, R_BOTH, SCMP_SYS(rt_sigaction), arg_cmp(0, SCMP_CMP_NE, SIGSYS, 0));
	/* getrlimit, never setting one */
	allow_if(b, R_BOTH, SCMP_SYS(prlimit64), arg_eq(2, 0));
	allow(b, R_BOTH, SCMP_SYS(getrlimit));
	/* glibc tries clone3 first and falls back to clone on ENOSYS;
	 * clone3's flags are in memory the filter cannot read. */
	rule(b, R_BOTH, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0, NULL);
	/* Threads only, with exactly the flags glibc's pthread_create
	 * passes: never a new process (fork, vfork) nor a thread in new
	 * namespaces. */
	allow_if(b, R_ALL, SCMP_SYS(clone), arg_eq(0, PTHREAD_CLONE_FLAGS));
	/* A thread that narrows its own list (sandbox_enter); never TSYNC. */
	{
		struct scmp_arg_cmp a[2] = {
			arg_eq(0, SECCOMP_SET_MODE_FILTER),
			arg_eq(1, 0),
		};
		rule(b, R_ALL, SCMP_ACT_ALLOW, SCMP_SYS(seccomp), 2, a);
	}
	/* User-mode networking (docs/sandbox.md, "Network backends"): each
	 * connection the guest opens is a host socket made on the thread
	 * that handles the guest's frame (a vCPU, the event loop). Internet
	 * families only: never a Unix, netlink or packet socket. */
	if (inet_sockets) {
		allow_if(b, R_BOTH, SCMP_SYS(socket), arg_eq(0, AF_INET));
		allow_if(b, R_BOTH, SCMP_SYS(socket), arg_eq(0, AF_INET6));
		allow(b, R_BOTH, SCMP_SYS(connect));
		allow(b, R_BOTH, SCMP_SYS(bind));
		allow(b, R_BOTH, SCMP_SYS(listen));
		/* libslirp forwards the guest's DNS queries to the host's
		 * resolver: before a query it stats /etc/resolv.conf and
		 * reads it again when it changed (fopen "r": O_RDONLY
		 * exactly). Reading was never confined (Landlock confines
		 * writes); creating or writing still traps. */
		allow(b, R_BOTH, SCMP_SYS(stat));
		allow(b, R_BOTH, SCMP_SYS(newfstatat));
		allow_if(b, R_BOTH, SCMP_SYS(openat), arg_eq(2, O_RDONLY));
		allow_if(b, R_BOTH, SCMP_SYS(open), arg_eq(1, O_RDONLY));
	}
	/* libfuse unmounts the FUSE view lazily at exit (as root). */
	allow_if(b, R_ALL, SCMP_SYS(umount2), arg_eq(1, MNT_DETACH));

	/* ioctl: KVM's own (type 0xAE) on the VM and vCPU descriptors,
	 * ppdev ('p') for the parallel port, and by number the terminal
	 * and block requests the chardevs and host disks make and the
	 * tap's TUNSETOFFLOAD. Never
	 * TIOCSTI (typing into the terminal) or TIOCSETD. */
	allow_ioctl_type(b, R_BOTH, 0xAE);
	allow_ioctl_type(b, R_BOTH, 'p');
	static const unsigned long tty_block[] = {
		TCGETS, TCSETS, TCSETSW, TCSETSF, TCSBRK, TCXONC, TCFLSH,
		TIOCEXCL, TIOCNXCL, TIOCOUTQ, TIOCGWINSZ, TIOCMGET, TIOCMBIS,
		TIOCMBIC, TIOCMSET, FIONREAD, FIONBIO, TIOCSBRK, TIOCCBRK,
		FIOCLEX, FIONCLEX,
		0x802c542a /* TCGETS2 */, 0x402c542b /* TCSETS2 */,
		0x402c542c /* TCSETSW2 */, 0x402c542d /* TCSETSF2 */,
		0x1277 /* BLKDISCARD */, 0x127f /* BLKZEROOUT */,
		0x80081272 /* BLKGETSIZE64 */, 0x1261 /* BLKFLSBUF */,
		/* net-tap: the offloads frames to the guest may carry, when
		 * its driver sets its features (a vCPU thread) */
		0x400454d0 /* TUNSETOFFLOAD */,
	};
	for (size_t i = 0; i < ARRAY_SIZE(tty_block); i++)
		allow_ioctl(b, R_BOTH, tty_block[i]);

#ifdef SANDBOX_ASAN
	/* Sanitizer builds only (docs/sandbox.md): LeakSanitizer checks at
	 * exit from a tracer it clones (not a thread) that ptraces the
	 * others and reads /proc/self/maps. Never in a build that ships. */
	allow(b, R_BOTH, SCMP_SYS(clone));
	allow(b, R_BOTH, SCMP_SYS(ptrace));
	allow(b, R_BOTH, SCMP_SYS(wait4));
	allow(b, R_BOTH, SCMP_SYS(prctl));
	allow(b, R_BOTH, SCMP_SYS(openat));
	allow(b, R_BOTH, SCMP_SYS(open));
	allow(b, R_BOTH, SCMP_SYS(getdents64));
	allow(b, R_BOTH, SCMP_SYS(getdents)); /* its thread lister's */
	allow(b, R_BOTH, SCMP_SYS(sched_yield));
	allow(b, R_BOTH, SCMP_SYS(newfstatat));
	allow(b, R_BOTH, SCMP_SYS(readlink));
#endif
}

static scmp_filter_ctx build_filter(unsigned role, char *err, size_t len)
{
	struct build b = { .role = role };

	b.ctx = seccomp_init(SCMP_ACT_TRAP);
	if (!b.ctx) {
		set_err(err, len, "sandbox: libseccomp cannot start a filter");
		return NULL;
	}
	/* Another ABI (i386, x32) kills the process at once. */
	b.err = seccomp_attr_set(b.ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	add_rules(&b);
	if (!b.err && role == R_ALL)
		b.err = seccomp_attr_set(b.ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	if (b.err) {
		set_err(err, len, "sandbox: libseccomp refused the rule for %s: %s",
			b.what ? b.what : "an attribute", strerror(-b.err));
		seccomp_release(b.ctx);
		return NULL;
	}
	return b.ctx;
}

/* The device list as a BPF program each such thread loads itself: no
 * allocation and no libseccomp state shared between threads. */
static int export_program(scmp_filter_ctx ctx, struct sock_fprog *prog,
			  char *err, size_t len)
{
	int fd = memfd_create("modvm-seccomp", MFD_CLOEXEC);
	off_t size;
	int r;

	if (fd < 0)
		return set_err(err, len, "sandbox: memfd_create: %s", strerror(errno));
	r = seccomp_export_bpf(ctx, fd);
	size = lseek(fd, 0, SEEK_END);
	if (r || size <= 0 || size % sizeof(struct sock_filter)) {
		close(fd);
		return set_err(err, len, "sandbox: cannot export the device filter: %s",
			       strerror(r ? -r : EINVAL));
	}
	prog->len = (unsigned short)(size / sizeof(struct sock_filter));
	prog->filter = xmalloc((size_t)size);
	if (pread(fd, prog->filter, (size_t)size, 0) != size) {
		close(fd);
		free(prog->filter);
		prog->filter = NULL;
		return set_err(err, len, "sandbox: cannot read the device filter back");
	}
	close(fd);
	return 0;
}

static void resolve_names(void)
{
	for (int nr = 0; nr < NAMES_MAX; nr++)
		if (!names[nr])
			names[nr] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
}

/* ---- namespaces and credentials ---------------------------------------- */

/* Private mount and network namespaces for the calling thread and every
 * thread it creates from now on (namespaces are per thread). Mounts stay
 * those of the host, as slaves: what modvm unmounts (its FUSE view at
 * exit) is gone here only; new host mounts still show. */
static int enter_namespaces(char *err, size_t len)
{
	if (unshare(CLONE_NEWNS | CLONE_NEWNET))
		return set_err(err, len, "sandbox: private namespaces: unshare: %s%s",
			       strerror(errno),
			       errno == EPERM ? " (they need root, or CAP_SYS_ADMIN)" : "");
	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL))
		return set_err(err, len, "sandbox: private namespaces: making / a slave mount: %s",
			       strerror(errno));
	return 0;
}

static int resolve_user(const struct sandbox_config *c, uid_t *uid, gid_t *gid,
			char *err, size_t len)
{
	*uid = (uid_t)-1;
	*gid = (gid_t)-1;
	if (c->user) {
		struct passwd pw, *found = NULL;
		char buf[4096];
		int r = getpwnam_r(c->user, &pw, buf, sizeof(buf), &found);
		if (r || !found)
			return set_err(err, len, "sandbox: user \"%s\": %s", c->user,
				       r ? strerror(r) : "no such user");
		*uid = pw.pw_uid;
		*gid = pw.pw_gid;
	}
	if (c->has_uid)
		*uid = (uid_t)c->uid;
	if (c->has_gid)
		*gid = (gid_t)c->gid;
	return 0;
}

/* Every thread: glibc's set*id calls reach all of them. Groups first, then
 * the gid, then the uid (after which nothing else may change). */
static int drop_credentials(uid_t uid, gid_t gid, char *err, size_t len)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	if (uid == (uid_t)-1 && gid == (gid_t)-1)
		return 0;
	if (gid != (gid_t)-1) {
		if (setgroups(1, &gid) && errno != EPERM)
			return set_err(err, len, "sandbox: setgroups: %s", strerror(errno));
		if (setresgid(gid, gid, gid))
			return set_err(err, len, "sandbox: cannot become gid %u: %s",
				       (unsigned)gid, strerror(errno));
	}
	if (uid != (uid_t)-1) {
		if (gid == (gid_t)-1 && setgroups(0, NULL) && errno != EPERM)
			return set_err(err, len, "sandbox: setgroups: %s", strerror(errno));
		if (setresuid(uid, uid, uid))
			return set_err(err, len, "sandbox: cannot become uid %u: %s%s",
				       (unsigned)uid, strerror(errno),
				       errno == EPERM ? " (only root can)" : "");
	}
	if (getresuid(&ru, &eu, &su) || getresgid(&rg, &eg, &sg) ||
	    (uid != (uid_t)-1 && (ru != uid || eu != uid || su != uid)) ||
	    (gid != (gid_t)-1 && (rg != gid || eg != gid || sg != gid)))
		return set_err(err, len, "sandbox: the uid/gid did not change as asked");
	dropped_uid = uid != (uid_t)-1;
	return 0;
}

/* ---- entering ------------------------------------------------------------ */

/* glibc's malloc gives a thread an arena of its own until there are
 * 8 x (online CPUs) of them, and learns that count the first time more
 * than 8 threads want one, by reading /sys/devices/system/cpu/online: a
 * VM with more than 8 vCPUs would then trap in its ninth vCPU thread. The
 * same limit, set now, spares malloc that read. */
static void fix_arena_limit(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	mallopt(M_ARENA_MAX, (int)(8 * (n > 0 ? n : 1)));
}

/* ---- plugin threads -------------------------------------------------- */

static void on_narrow(int sig)
{
	struct sandbox_thread *t = self_thread;
	int saved = errno;

	(void)sig;
	if (t && !atomic_load(&t->narrowed)) {
		t->err = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &device_prog) ?
			 errno : 0;
		atomic_store(&t->narrowed, 1);
	}
	errno = saved;
}

int sandbox_thread_begin(struct sandbox_thread *t, const char *name)
{
	sigset_t narrow;

	*t = (struct sandbox_thread){ .tid = (pid_t)syscall(SYS_gettid) };
	self_thread = t;
	if (name)
		prctl(PR_SET_NAME, name, 0, 0, 0);
	sigemptyset(&narrow);
	sigaddset(&narrow, NARROW_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &narrow, NULL);
	pthread_mutex_lock(&threads_lock);
	if (!atomic_load(&active)) {
		t->next = threads;
		threads = t;
		pthread_mutex_unlock(&threads_lock);
		return 0;
	}
	pthread_mutex_unlock(&threads_lock);
	atomic_store(&t->narrowed, 1);
	return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &device_prog);
}

void sandbox_thread_end(struct sandbox_thread *t)
{
	pthread_mutex_lock(&threads_lock);
	for (struct sandbox_thread **pp = &threads; *pp; pp = &(*pp)->next)
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	pthread_mutex_unlock(&threads_lock);
	self_thread = NULL;
}

/* Called with threads_lock held, right after the process-wide filter:
 * each registered thread loads the device filter in its signal handler
 * (seccomp can only narrow the calling thread). A thread that is ending
 * waits for the lock in sandbox_thread_end, so none goes away meanwhile. */
static int narrow_threads(char *err, size_t len)
{
	pid_t pid = getpid();

	for (struct sandbox_thread *t = threads; t; t = t->next)
		if (syscall(SYS_tgkill, pid, t->tid, NARROW_SIGNAL))
			return set_err(err, len, "sandbox: cannot signal thread %d: %s",
				       (int)t->tid, strerror(errno));
	for (struct sandbox_thread *t = threads; t; t = t->next) {
		for (int ms = 0; !atomic_load(&t->narrowed); ms++) {
			if (ms == NARROW_WAIT_MS)
				return set_err(err, len, "sandbox: thread %d did not take its "
					       "filter within %d s", (int)t->tid,
					       NARROW_WAIT_MS / 1000);
			nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
		}
		if (t->err)
			return set_err(err, len, "sandbox: the kernel refused thread %d's "
				       "filter: %s", (int)t->tid, strerror(t->err));
	}
	threads = NULL;
	return 0;
}

int sandbox_apply(const struct sandbox_config *c, char *err, size_t len)
{
	static const struct sandbox_config none = { .enable = SANDBOX_ON };
	scmp_filter_ctx base = NULL, dev = NULL;
	struct sigaction sa = { .sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO };
	sigset_t sys;
	uid_t uid;
	gid_t gid;
	int r = -1;

	if (!c)
		c = &none;
	if (atomic_load(&active))
		return 0;
	if (resolve_user(c, &uid, &gid, err, len))
		return -1;
	resolve_names();
	fix_arena_limit();
	stderr_tty = isatty(STDERR_FILENO);
	dev = build_filter(R_DEV, err, len);
	base = dev ? build_filter(R_ALL, err, len) : NULL;
	if (!base || export_program(dev, &device_prog, err, len))
		goto out;
	/* The handler must run in whichever thread trapped. */
	sigfillset(&sa.sa_mask);
	sigemptyset(&sys);
	sigaddset(&sys, SIGSYS);
	if (sigaction(SIGSYS, &sa, NULL) || pthread_sigmask(SIG_UNBLOCK, &sys, NULL) ||
	    sigaction(NARROW_SIGNAL, &(struct sigaction){ .sa_handler = on_narrow,
							 .sa_flags = SA_RESTART }, NULL)) {
		set_err(err, len, "sandbox: cannot install the SIGSYS handler: %s", strerror(errno));
		goto out;
	}
	if ((c->namespaces && enter_namespaces(err, len)) ||
	    drop_credentials(uid, gid, err, len))
		goto out;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) {
		set_err(err, len, "sandbox: PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
		goto out;
	}
	if (sandbox_landlock(err, len) < 0)
		goto out;
	pthread_mutex_lock(&threads_lock);
	r = seccomp_load(base);
	if (r) {
		pthread_mutex_unlock(&threads_lock);
		set_err(err, len, "sandbox: the kernel refused the seccomp filter: %s%s",
			strerror(r < 0 ? -r : r),
			r == -ESRCH ? " (a thread already has a filter of its own)" : "");
		r = -1;
		goto out;
	}
	atomic_store(&active, true);
	r = narrow_threads(err, len);
	pthread_mutex_unlock(&threads_lock);
out:
	if (base)
		seccomp_release(base);
	if (dev)
		seccomp_release(dev);
	return r;
}

int sandbox_enter(enum sandbox_role role, const char *name)
{
	(void)role; /* one narrower list so far: the device threads' */
	if (name)
		prctl(PR_SET_NAME, name, 0, 0, 0);
	if (!atomic_load(&active))
		return 0;
	return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &device_prog);
}
