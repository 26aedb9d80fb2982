/* A device for the sandbox tests (tests/integration/sandbox): when the
 * guest writes its port it makes one system call modvm never needs after
 * set-up (what an exploited device would try), on the vCPU thread or,
 * through a timer, on the event loop, or on a thread of its own started
 * with host->thread_start (as a block backend's workers are), and logs
 * what the kernel said.
 * Reading the port tells the guest whether it was done. Built only for
 * tests; never install it. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <modvm/modvm.h>

enum probe_action { ACT_NONE, ACT_SOCKET, ACT_OPEN, ACT_FORK, ACT_EXEC, ACT_MMAP_EXEC };
enum probe_thread { ON_VCPU, ON_LOOP, ON_WORKER };

static const char *const actions[] = { "none", "socket-inet", "open-file",
				       "fork", "execve", "mmap-exec", NULL };
static const char *const threads[] = { "vcpu", "loop", "worker", NULL };

static const struct modvm_prop_desc props[] = {
	MODVM_PROP_INT_("port", "0x520", 0, 0xffff, "I/O port the guest writes to ask"),
	MODVM_PROP_ENUM_("action", "none", actions, "the system call to make"),
	MODVM_PROP_STRING_("path", "/etc/shadow", "the file open-file opens"),
	MODVM_PROP_ENUM_("thread", "vcpu", threads,
			 "where: the vCPU thread (in the port write), the event loop (a timer) "
			 "or the probe's own thread (probe-worker)"),
	MODVM_PROP_END
};

struct probe {
	const struct modvm_host *host;
	modvm_inst *inst;
	int action, thread;
	const char *path;
	modvm_timer *timer;
	modvm_thread *worker;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool asked, stop;
	_Atomic uint8_t done;
};

static const char *who(char *buf, size_t len)
{
	buf[0] = 0;
	pthread_getname_np(pthread_self(), buf, len);
	return buf;
}

static void act(struct probe *p)
{
	char name[16];
	const char *what = actions[p->action];
	long r = 0;
	int err = 0;

	switch (p->action) {
	case ACT_SOCKET:
		r = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		err = errno;
		if (r >= 0)
			close((int)r);
		break;
	case ACT_OPEN:
		r = open(p->path, O_RDONLY | O_CLOEXEC);
		err = errno;
		if (r >= 0)
			close((int)r);
		break;
	case ACT_FORK: {
		pid_t pid = fork();
		err = errno;
		if (pid == 0)
			_exit(0);
		if (pid > 0)
			waitpid(pid, NULL, 0);
		r = pid;
		break;
	}
	case ACT_EXEC: {
		char *const argv[] = { "true", NULL };
		/* the VM would be gone if this worked: no fork first */
		r = execve("/bin/true", argv, (char *const[]){ NULL });
		err = errno;
		break;
	}
	case ACT_MMAP_EXEC: {
		void *x = mmap(NULL, 4096, PROT_READ | PROT_EXEC,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		err = errno;
		r = x == MAP_FAILED ? -1 : 0;
		if (x != MAP_FAILED)
			munmap(x, 4096);
		break;
	}
	default:
		break;
	}
	p->host->log(p->inst, MODVM_LOG_WARN, "%s on thread %s: %s", what,
		     who(name, sizeof(name)), r < 0 ? strerror(err) : "allowed");
	p->done = 1;
}

static void *worker(void *opaque)
{
	struct probe *p = opaque;

	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		if (p->asked) {
			p->asked = false;
			pthread_mutex_unlock(&p->lock);
			act(p);
			pthread_mutex_lock(&p->lock);
			continue;
		}
		pthread_cond_wait(&p->wake, &p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

static void on_timer(void *opaque)
{
	act(opaque);
}

static uint64_t port_read(void *opaque, uint64_t off, unsigned size)
{
	return ((struct probe *)opaque)->done;
}

static void port_write(void *opaque, uint64_t off, uint64_t v, unsigned size)
{
	struct probe *p = opaque;

	if (p->thread == ON_LOOP) {
		p->host->timer_mod(p->timer, p->host->clock_ns(p->inst) + 100000);
	} else if (p->thread == ON_WORKER) {
		pthread_mutex_lock(&p->lock);
		p->asked = true;
		pthread_cond_signal(&p->wake);
		pthread_mutex_unlock(&p->lock);
	} else {
		act(p);
	}
}

static const struct modvm_io_ops port_ops = { port_read, port_write };

static void stop_worker(struct probe *p)
{
	if (!p->worker)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_signal(&p->wake);
	pthread_mutex_unlock(&p->lock);
	p->host->thread_join(p->worker, NULL);
	p->worker = NULL;
}

static void *create(const struct modvm_host *host, modvm_inst *inst)
{
	struct probe *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	*p = (struct probe){ .host = host, .inst = inst,
			     .action = host->prop_enum(inst, "action"),
			     .thread = host->prop_enum(inst, "thread"),
			     .path = host->prop_string(inst, "path") };
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->wake, NULL);
	p->timer = host->timer_new(inst, on_timer, p);
	/* started now, during set-up: the sandbox narrows it when it comes */
	if (p->timer && p->thread == ON_WORKER)
		p->worker = host->thread_start(inst, "probe-worker", worker, p);
	if (!p->timer || (p->thread == ON_WORKER && !p->worker) ||
	    !host->pio_register(inst, (uint16_t)host->prop_int(inst, "port"), 1,
				&port_ops, p)) {
		if (p->timer)
			host->timer_free(p->timer);
		stop_worker(p);
		free(p);
		return NULL;
	}
	return p;
}

static void destroy(void *dev)
{
	struct probe *p = dev;

	p->host->timer_free(p->timer);
	stop_worker(p);
	free(p);
}

static const struct modvm_device_ops ops = {
	.size = sizeof(ops), .create = create, .destroy = destroy,
};

MODVM_PLUGIN_DEFINE(.kind = MODVM_KIND_DEVICE, .name = "sandbox-probe",
		    .version = "1.0.0",
		    .description = "Test device: a forbidden system call at the guest's request",
		    .props = props, .ops = &ops);
