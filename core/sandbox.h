/* The sandbox (docs/sandbox.md): once a VM is set up and before its vCPUs
 * run, modvm gives up what it never needs again. seccomp-bpf allow lists
 * (one for the whole process, a narrower one stacked on the threads that
 * run device emulation), no new privileges, and on request another
 * uid/gid and private mount and network namespaces. */
#ifndef MODVM_CORE_SANDBOX_H
#define MODVM_CORE_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* What ends modvm when a thread makes a system call its list forbids:
 * 128 + SIGSYS, the status a shell shows for a process the kernel killed
 * with SIGSYS, so the fallback (a thread that blocks SIGSYS is killed by
 * the kernel itself) looks the same to scripts. */
#define EXIT_SANDBOX 159

/* Zero is unset, so a zeroed config leaves the decision to others. */
enum sandbox_mode { SANDBOX_UNSET = 0, SANDBOX_OFF, SANDBOX_ON };

/* vm.sandbox in the config (docs/config.md). */
struct sandbox_config {
	int enable;        /* enum sandbox_mode */
	int line;          /* of the sandbox group, for messages (0: none) */
	char *user;        /* run as this user (uid and primary gid) */
	bool has_uid, has_gid; /* else unchanged (or user's) */
	uint32_t uid, gid;
	bool namespaces;   /* private mount and network namespaces */
};

/* The role of a thread that narrows its own list (sandbox_enter). */
enum sandbox_role {
	SANDBOX_ROLE_DEVICE, /* vCPU and event-loop threads: device emulation */
};

/* Whether the sandbox is on: the command line (--sandbox, cli) wins over
 * the config, which wins over $MODVM_SANDBOX, which wins over the
 * built-in default. *why says which decided, for the info log. -1 with
 * err set if $MODVM_SANDBOX is neither on nor off. */
int sandbox_decide(int cli, const struct sandbox_config *c, bool *on,
		   const char **why, char *err, size_t len);

/* Enter the sandbox for the whole process: namespaces, uid/gid, no new
 * privileges, then the process-wide filter on every thread (TSYNC).
 * Nothing is half-applied on the paths that fail before the filter. */
int sandbox_apply(const struct sandbox_config *c, char *err, size_t len);

/* Name the calling thread (always) and, if the sandbox is on, stack the
 * role's narrower filter on it. Call first thing in the thread, after
 * whatever it opens by path for itself. -1 (errno set) if the filter was
 * refused: the thread must not go on. */
int sandbox_enter(enum sandbox_role role, const char *name);

/* Threads plugins start (host->thread_start, core/host.c) run device
 * code on guest input too (a block worker runs the guest's requests), so
 * they get the device list as well. One that starts before the sandbox
 * is applied registers itself; sandbox_apply then makes each registered
 * thread stack the device filter on itself (a signal whose handler loads
 * it) and waits until all have, before any guest instruction runs. A
 * thread that starts later narrows itself at once. */
struct sandbox_thread {
	pid_t tid;
	int err;                     /* errno of the handler's seccomp(), 0 */
	_Atomic int narrowed;        /* the handler ran */
	struct sandbox_thread *next; /* registered, not yet narrowed */
};
/* First thing in the thread: names it; 0, or -1 with errno set if the
 * kernel refused the filter (the thread must not go on). */
int sandbox_thread_begin(struct sandbox_thread *t, const char *name);
/* Last thing in the thread. */
void sandbox_thread_end(struct sandbox_thread *t);

/* A net backend of this VM opens Internet sockets after set-up (user-mode
 * networking, MODVM_NET_F_INET_SOCKETS): both lists then allow socket()
 * for AF_INET and AF_INET6, connect, bind, listen and getsockname.
 * Called before sandbox_apply (from the NIC's init). */
void sandbox_allow_inet_sockets(void);

/* Where writes stay allowed in the sandbox (Landlock, core/landlock.c):
 * SANDBOX_W_TREE: create, write, rename, truncate and remove anything
 * under the folder path; SANDBOX_W_REMOVE: remove files in it (a socket
 * unlinked at exit). Collected before sandbox_apply; a path that does not
 * exist then is left out. -1 when the list is full. */
#define SANDBOX_W_TREE 1u
#define SANDBOX_W_REMOVE 2u
int sandbox_allow_writes(const char *path, unsigned how);
/* The same for the folder that holds path ("." for a bare name). */
void sandbox_allow_writes_in_parent(const char *path, unsigned how);
/* Apply the collected rules to the calling thread and those it starts
 * later: 0, 1 when this kernel has no Landlock (nothing applied), -1 with
 * err set. Needs PR_SET_NO_NEW_PRIVS (or CAP_SYS_ADMIN). */
int sandbox_landlock(char *err, size_t len);
/* The Landlock ABI version applied, 0 if none. */
int sandbox_landlock_abi(void);

bool sandbox_active(void);
/* The sandbox changed the uid: what needs the old one (unmounting a FUSE
 * mount made as root) is left to helpers that kept it. */
bool sandbox_dropped_uid(void);

/* Unmounting the FUSE view would need fusermount3 (the sandbox is on
 * and modvm is not, or no longer, root) or is refused (Landlock forbids
 * umount): leave it to the auto_unmount helper that mounted it. */
bool sandbox_unmount_needs_helper(void);

/* For tests: the name libseccomp gives syscall nr on this host, or NULL. */
const char *sandbox_syscall_name(int nr);

#endif
