/* Running a machine: engine and vCPU threads, requests, reset. */
#include "run.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "boot/boot.h"
#include "control.h"
#include "fusefs.h"
#include "migration.h"
#include "sandbox.h"
#include "snapshot.h"

struct vcpu_thread {
	struct machine *m;
	unsigned index;
	pthread_t thread;
	char err[ERR_LEN];
};

static int pending_request(struct machine *m)
{
	int r;

	pthread_mutex_lock(&m->req_lock);
	r = m->request;
	pthread_mutex_unlock(&m->req_lock);
	return r;
}

/* Park here while a pause is requested; returns when resumed. */
static void park_if_paused(struct machine *m)
{
	pthread_mutex_lock(&m->pause_lock);
	if (m->pause_req) {
		m->parked++;
		pthread_cond_broadcast(&m->pause_cond);
		while (m->pause_req && !pending_request(m))
			pthread_cond_wait(&m->pause_cond, &m->pause_lock);
		m->parked--;
	}
	pthread_mutex_unlock(&m->pause_lock);
}

/* Stop every vCPU at an instruction boundary (if not stopped yet), then the
 * virtual clock. Called and returns with pause_lock held. */
static int stop_cpus_locked(struct machine *m)
{
	if (m->paused)
		return 0;
	if (!m->vcpu_threads)
		return -1;
	m->pause_req = true;
	pthread_mutex_unlock(&m->pause_lock);
	for (unsigned i = 0; i < m->ncpus; i++)
		m->eops->vcpu_kick(m->vcpus[i]);
	pthread_mutex_lock(&m->pause_lock);
	while (!m->paused && m->parked < m->vcpu_threads && !pending_request(m))
		pthread_cond_wait(&m->pause_cond, &m->pause_lock);
	if (m->paused)
		return 0;
	if (m->parked < m->vcpu_threads)
		return -1; /* the machine is stopping */
	m->paused = true;
	/* Virtual time stops with the CPUs: timers do not fire while paused. */
	vclock_stop(&m->clock);
	return 0;
}

/* Let the vCPUs go again once nobody wants them stopped. */
static void start_cpus_locked(struct machine *m)
{
	if (!m->paused || m->user_paused || m->holds)
		return;
	vclock_start(&m->clock);
	loop_wake(m);
	m->paused = false;
	m->pause_req = false;
	pthread_cond_broadcast(&m->pause_cond);
}

int machine_pause(struct machine *m)
{
	int r;

	pthread_mutex_lock(&m->pause_lock);
	r = stop_cpus_locked(m);
	if (!r && !m->user_paused) {
		m->user_paused = true;
		machine_log(m, MODVM_LOG_INFO, "paused");
	}
	pthread_mutex_unlock(&m->pause_lock);
	return r;
}

void machine_resume(struct machine *m)
{
	pthread_mutex_lock(&m->pause_lock);
	if (m->user_paused)
		machine_log(m, MODVM_LOG_INFO, "resumed");
	m->user_paused = false;
	start_cpus_locked(m);
	pthread_mutex_unlock(&m->pause_lock);
}

int machine_hold(struct machine *m)
{
	int r;

	pthread_mutex_lock(&m->pause_lock);
	r = stop_cpus_locked(m);
	if (!r)
		m->holds++;
	pthread_mutex_unlock(&m->pause_lock);
	return r;
}

void machine_release(struct machine *m)
{
	pthread_mutex_lock(&m->pause_lock);
	if (m->holds)
		m->holds--;
	start_cpus_locked(m);
	pthread_mutex_unlock(&m->pause_lock);
}

bool machine_is_paused(struct machine *m)
{
	bool p;

	pthread_mutex_lock(&m->pause_lock);
	p = m->user_paused;
	pthread_mutex_unlock(&m->pause_lock);
	return p;
}

bool machine_is_started(struct machine *m)
{
	bool s;

	pthread_mutex_lock(&m->pause_lock);
	s = m->vcpu_threads != 0;
	pthread_mutex_unlock(&m->pause_lock);
	return s;
}

static void *vcpu_main(void *arg)
{
	struct vcpu_thread *t = arg;
	struct machine *m = t->m;
	char name[16];

	pace_vcpu_enter(m, t->index);
	snprintf(name, sizeof(name), "modvm-cpu%u", t->index);
	if (sandbox_enter(SANDBOX_ROLE_DEVICE, name)) {
		machine_log(m, MODVM_LOG_ERROR, "cpu %u: sandbox: the kernel refused its filter: %s",
			    t->index, strerror(errno));
		machine_request(m, REQUEST_ERROR);
	}
	while (!pending_request(m)) {
		park_if_paused(m);
		if (pending_request(m))
			break;
		enum modvm_run_status st =
			m->eops->vcpu_run(m->vcpus[t->index], t->err, sizeof(t->err));
		if (st == MODVM_RUN_SHUTDOWN) {
			machine_log(m, MODVM_LOG_WARN,
				    "cpu %u: triple fault: resetting the machine", t->index);
			machine_request(m, MODVM_REQUEST_RESET);
		} else if (st == MODVM_RUN_ERROR) {
			machine_log(m, MODVM_LOG_ERROR, "cpu %u: %s", t->index,
				    t->err[0] ? t->err : "engine error");
			machine_request(m, REQUEST_ERROR);
		}
	}
	pace_vcpu_leave(m, t->index);
	return NULL;
}

static void stop_signal_set(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGHUP);
}

void machine_block_stop_signals(void)
{
	sigset_t set;

	stop_signal_set(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* The only thread that takes SIGINT, SIGTERM and SIGHUP: every other
 * thread inherits them blocked (machine_block_stop_signals, called before
 * any thread exists), so none of them can be killed by one. A signal that
 * came while the VM was being built is pending and taken here at once. */
static void *signal_main(void *arg)
{
	struct machine *m = arg;
	sigset_t set;
	int sig;

	stop_signal_set(&set);
	if (sigwait(&set, &sig) == 0) {
		machine_log(m, MODVM_LOG_WARN, "stopping on signal %s", strsignal(sig));
		machine_request(m, REQUEST_QUIT);
	}
	return NULL;
}

static int create_engine(struct machine *m, struct vm_config *cfg)
{
	const struct plugin *p = cfg->engine_plugin;
	char why[512] = "";

	m->eops = p->desc->ops;
	if (m->eops->probe && m->eops->probe(why, sizeof(why))) {
		fprintf(stderr, "modvm: %s:%d: engine %s cannot run on this host: %s\n",
			cfg->path, cfg->engine_line, p->desc->name, why);
		return -1;
	}
	if (why[0])
		fprintf(stderr, "modvm: note: %s: %s\n", p->desc->name, why);
	m->engine = inst_new(m, p, p->desc->name, &cfg->engine_props, NULL);
	m->evm = m->eops->vm_create(&m->host, m->engine, cfg->cpus);
	if (!m->evm) {
		fprintf(stderr, "modvm: engine %s failed to start: %s\n", p->desc->name,
			m->engine->error[0] ? m->engine->error : "no reason given");
		return -1;
	}
	m->vcpus = xcalloc(cfg->cpus, sizeof(*m->vcpus));
	for (unsigned i = 0; i < cfg->cpus; i++) {
		m->vcpus[i] = m->eops->vcpu_create(m->evm, i);
		if (!m->vcpus[i]) {
			fprintf(stderr, "modvm: engine %s cannot create cpu %u: %s\n",
				p->desc->name, i, m->engine->error);
			return -1;
		}
		m->ncpus = i + 1;
	}
	return 0;
}

static void destroy_engine(struct machine *m)
{
	for (unsigned i = 0; i < m->ncpus; i++)
		m->eops->vcpu_destroy(m->vcpus[i]);
	if (m->evm)
		m->eops->vm_destroy(m->evm);
	free(m->vcpus);
	inst_free(m->engine);
	m->vcpus = NULL;
	m->ncpus = 0;
	m->evm = NULL;
	m->engine = NULL;
	m->eops = NULL;
}

/* The engine's MODVM_ENGINE_* flags (2.1; 0 from an older table). */
static uint32_t engine_flags(const struct machine *m)
{
	const struct modvm_cpu_engine_ops *o = m->eops;

	return o && OPS_HAS(o, struct modvm_cpu_engine_ops, flags) ? o->flags : 0;
}

/* Load the image and set every vCPU to its entry or reset state. */
static int boot_cpus(struct machine *m, struct vm_config *cfg)
{
	struct modvm_cpu_state *s = xcalloc(1, sizeof(*s));
	char err[ERR_LEN];
	int r = -1;

	cfg->boot.ncpus = cfg->cpus;
	if (boot_load(&m->mem, &cfg->boot, s, err, sizeof(err))) {
		/* file:line like every config error: the initrd's line for its
		 * own errors, else the kernel's */
		int line = strstr(err, "initrd") ? cfg->initrd_line : cfg->kernel_line;
		fprintf(stderr, "modvm: %s:%d: boot: %s\n", cfg->path, line, err);
		goto out;
	}
	if (m->eops->set_state(m->vcpus[0], s)) {
		fprintf(stderr, "modvm: engine refused the boot CPU state\n");
		goto out;
	}
	for (unsigned i = 1; i < m->ncpus; i++) {
		/* Application processors wait for INIT/SIPI. */
		boot_cpu_reset_state(s);
		s->halted = 1;
		s->msr.apic_base &= ~(1ull << 8); /* not the BSP */
		if (m->eops->set_state(m->vcpus[i], s))
			goto out;
	}
	r = 0;
out:
	free(s);
	return r;
}

static int wait_request(struct machine *m)
{
	int r;

	pthread_mutex_lock(&m->req_lock);
	while (!m->request)
		pthread_cond_wait(&m->req_cond, &m->req_lock);
	r = m->request;
	pthread_mutex_unlock(&m->req_lock);
	return r;
}

static int run_cpus(struct machine *m)
{
	struct vcpu_thread *t = xcalloc(m->ncpus, sizeof(*t));
	char err[ERR_LEN];
	int req;

	vclock_start(&m->clock);
	if (loop_start_thread(m, err, sizeof(err))) {
		fprintf(stderr, "modvm: %s\n", err);
		free(t);
		return REQUEST_ERROR;
	}
	machine_lock(m);
	m->pace = (struct timer_pace){
		.v = xcalloc(m->ncpus, sizeof(*m->pace.v)), .n = m->ncpus,
		.virtual_tsc = engine_flags(m) & MODVM_ENGINE_VIRTUAL_TSC,
		.hide_steal = m->ncpus == 1 && engine_flags(m) & MODVM_ENGINE_VIRTUAL_TSC };
	machine_unlock(m);
	pthread_mutex_lock(&m->pause_lock);
	m->vcpu_threads = m->ncpus;
	pthread_mutex_unlock(&m->pause_lock);
	for (unsigned i = 0; i < m->ncpus; i++) {
		t[i] = (struct vcpu_thread){ .m = m, .index = i };
		pthread_create(&t[i].thread, NULL, vcpu_main, &t[i]);
	}
	req = wait_request(m);
	for (unsigned i = 0; i < m->ncpus; i++)
		m->eops->vcpu_kick(m->vcpus[i]);
	pthread_mutex_lock(&m->pause_lock);
	pthread_cond_broadcast(&m->pause_cond); /* wake parked threads */
	pthread_mutex_unlock(&m->pause_lock);
	for (unsigned i = 0; i < m->ncpus; i++)
		pthread_join(t[i].thread, NULL);
	pthread_mutex_lock(&m->pause_lock);
	/* Whatever stopped the vCPUs, they are gone now: a reset starts the
	 * machine running again (holds cannot outlive this: a hold fails
	 * while the machine is stopping). */
	m->vcpu_threads = 0;
	m->paused = m->pause_req = m->user_paused = false;
	m->holds = 0;
	pthread_mutex_unlock(&m->pause_lock);
	loop_stop_thread(m);
	vclock_stop(&m->clock);
	machine_lock(m);
	if (m->clock.hides)
		machine_log(m, MODVM_LOG_DEBUG,
			    "%.1f ms of host time left out of the virtual clock while the vCPU could not run (%llu times)",
			    (double)m->clock.hidden_ns / 1e6, (unsigned long long)m->clock.hides);
	if (m->pace.holds)
		machine_log(m, MODVM_LOG_DEBUG,
			    "timers waited %llu times for a descheduled vCPU (%llu waits cut at 100 ms)",
			    (unsigned long long)m->pace.holds,
			    (unsigned long long)m->pace.overruns);
	free(m->pace.v);
	m->pace = (struct timer_pace){ 0 };
	machine_unlock(m);
	free(t);
	return req;
}

/* The places the VM writes after set-up (docs/sandbox.md, "Writes"):
 * snapshots, the overlays next to writable disk images, and the control
 * socket it removes at exit. */
static void allow_writes(struct machine *m)
{
	struct block_disk disks[MAX_DISKS];
	size_t n = block_disks(m, disks, MAX_DISKS);

	sandbox_allow_writes(m->snapshot_dir ? m->snapshot_dir : ".", SANDBOX_W_TREE);
	for (size_t i = 0; i < n; i++)
		if (disks[i].path && !disks[i].readonly)
			sandbox_allow_writes_in_parent(disks[i].path, SANDBOX_W_TREE);
	if (m->control_path)
		sandbox_allow_writes_in_parent(m->control_path, SANDBOX_W_REMOVE);
}

static int enter_sandbox(struct machine *m, struct vm_config *cfg)
{
	char err[ERR_LEN];
	const char *why;
	bool on;

	if (sandbox_decide(m->sandbox_cli, &cfg->sandbox, &on, &why, err, sizeof(err))) {
		fprintf(stderr, "modvm: %s\n", err);
		return -1;
	}
	if (!on) {
		machine_log(m, MODVM_LOG_INFO, "sandbox: off (%s)", why);
		return 0;
	}
	allow_writes(m);
	if (sandbox_apply(&cfg->sandbox, err, sizeof(err))) {
		if (cfg->sandbox.line)
			fprintf(stderr, "modvm: %s:%d: %s\n", cfg->path, cfg->sandbox.line, err);
		else
			fprintf(stderr, "modvm: %s\n", err);
		return -1;
	}
	machine_log(m, MODVM_LOG_INFO, "sandbox: on (%s)%s%s%s", why,
		    sandbox_dropped_uid() ? ", uid changed" : "",
		    cfg->sandbox.namespaces ? ", private mount and network namespaces" : "",
		    sandbox_landlock_abi() ? ", writes confined (Landlock)" :
					     ", writes not confined (no Landlock in this kernel)");
	return 0;
}

int machine_run(struct machine *m, struct vm_config *cfg)
{
	pthread_t sigthread;
	int req, code = EXIT_FAILURE_RUN;
	struct control *ctl = NULL;
	struct fusefs *fs = NULL;

	/* Signals go to one thread that turns them into a request (main()
	 * blocked them before any thread; blocking again is harmless and
	 * keeps callers that skipped it safe from here on). */
	machine_block_stop_signals();
	pthread_create(&sigthread, NULL, signal_main, m);
	pthread_setname_np(sigthread, "modvm-signals");
	pthread_detach(sigthread);

	if (!cfg->has_boot && !m->resume_from) {
		fprintf(stderr, "modvm: %s: the vm has no boot section: add boot = { kernel = \"...\"; };\n",
			cfg->path);
		return EXIT_USAGE;
	}
	if (create_engine(m, cfg))
		goto out;
	if (m->resume_from) {
		char err[ERR_LEN];
		if (snapshot_load_cpus(m, m->resume_from, err, sizeof(err))) {
			fprintf(stderr, "modvm: resume: %s\n", err);
			code = EXIT_USAGE;
			goto out;
		}
	} else if (m->incoming) {
		/* the vCPU state arrives with the VM (migration_incoming) */
	} else if (boot_cpus(m, cfg)) {
		code = EXIT_USAGE; /* a bad boot image: nothing ran */
		goto out;
	}
	if (m->incoming) { /* bound now: the sandbox forbids bind later */
		char err[ERR_LEN];
		if (migration_listen(m, m->incoming, err, sizeof(err))) {
			fprintf(stderr, "modvm: %s\n", err);
			code = EXIT_USAGE;
			goto out;
		}
	}
	if (m->control_path) {
		char err[ERR_LEN];
		ctl = control_start(m, m->control_path, err, sizeof(err));
		if (!ctl) {
			fprintf(stderr, "modvm: %s\n", err);
			code = EXIT_USAGE;
			goto out;
		}
	}
	{ /* fuse: the VM as files (--mount), unmounted at out */
		char err[ERR_LEN];
		if (fusefs_start(m, &fs, err, sizeof(err))) {
			fprintf(stderr, "modvm: %s\n", err);
			code = EXIT_USAGE;
			goto out;
		}
	}
	/* Set-up is over: from here on only what the sandbox allows, and
	 * the threads that serve the control socket and the FUSE view start
	 * inside it (its namespaces too). */
	if (enter_sandbox(m, cfg)) {
		code = EXIT_USAGE;
		goto out;
	}
	control_serve(ctl);
	fusefs_serve(fs);
	if (m->incoming) {
		char err[ERR_LEN];
		if (migration_incoming(m, err, sizeof(err))) {
			fprintf(stderr, "modvm: incoming migration failed: %s\n", err);
			code = EXIT_FAILURE_RUN;
			goto out;
		}
	}
	for (;;) {
		req = run_cpus(m);
		if (req != MODVM_REQUEST_RESET || m->no_reboot)
			break;
		machine_log(m, MODVM_LOG_INFO, "platform reset");
		pthread_mutex_lock(&m->req_lock);
		m->request = 0;
		pthread_mutex_unlock(&m->req_lock);
		machine_reset_devices(m);
		if (boot_cpus(m, cfg))
			goto out;
	}
	switch (req) {
	case MODVM_REQUEST_POWEROFF: code = EXIT_POWEROFF; break;
	case MODVM_REQUEST_EXIT: code = m->exit_status & 0xff; break;
	case MODVM_REQUEST_PANIC: code = EXIT_GUEST_PANIC; break;
	case REQUEST_QUIT: code = EXIT_INTERRUPTED; break;
	case REQUEST_MIGRATED: code = 0; break; /* "migrated to ..." was printed */
	case MODVM_REQUEST_RESET:
		/* Only with --no-reboot: a guest that panics with panic=-1
		 * (or triple-faults) ends the run instead of booting again. */
		fprintf(stderr, "modvm: the guest reset itself; --no-reboot ends the run\n");
		code = EXIT_GUEST_RESET;
		break;
	default: code = EXIT_FAILURE_RUN; break;
	}
out:
	fusefs_stop(fs); /* fuse */
	control_stop(ctl);
	destroy_engine(m);
	return code;
}
