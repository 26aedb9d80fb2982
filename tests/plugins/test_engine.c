/* A scripted cpu engine for testing the core's run loop without a CPU: on
 * its first run it writes `message` to `port`, then ends the way `action`
 * says (power off through a machine request, report an error, triple
 * fault once then power off, or wait to be stopped). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modvm/modvm.h>

static const char *const actions[] = { "poweroff", "error", "shutdown", "wait", NULL };

static const struct modvm_prop_desc props[] = {
	MODVM_PROP_INT_("port", "0x510", 0, 0xffff, "port the message is written to"),
	MODVM_PROP_STRING_("message", "hello\n", "bytes written on the first run"),
	MODVM_PROP_ENUM_("action", "poweroff", actions, "how the run ends"),
	MODVM_PROP_END
};

struct tvm {
	const struct modvm_host *host;
	modvm_inst *inst;
	int runs;
};

struct tcpu {
	struct tvm *vm;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int kicked;
	struct modvm_cpu_state state;
};

static int probe(char *why, size_t len)
{
	snprintf(why, len, "test engine: runs no guest code");
	return 0;
}

static void *vm_create(const struct modvm_host *host, modvm_inst *inst,
		       unsigned ncpus)
{
	struct tvm *vm = calloc(1, sizeof(*vm));

	vm->host = host;
	vm->inst = inst;
	return vm;
}

static void vm_destroy(void *vm)
{
	free(vm);
}

static void *vcpu_create(void *vm, unsigned index)
{
	struct tcpu *c = calloc(1, sizeof(*c));

	c->vm = vm;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	return c;
}

static void vcpu_destroy(void *vcpu)
{
	struct tcpu *c = vcpu;

	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	free(c);
}

static enum modvm_run_status wait_kick(struct tcpu *c)
{
	pthread_mutex_lock(&c->lock);
	while (!c->kicked)
		pthread_cond_wait(&c->cond, &c->lock);
	c->kicked = 0;
	pthread_mutex_unlock(&c->lock);
	return MODVM_RUN_STOPPED;
}

static enum modvm_run_status vcpu_run(void *vcpu, char *err, size_t len)
{
	struct tcpu *c = vcpu;
	struct tvm *vm = c->vm;
	const struct modvm_host *h = vm->host;
	const char *msg = h->prop_string(vm->inst, "message");
	int action = h->prop_enum(vm->inst, "action");

	if (vm->runs++ == 0)
		for (const char *p = msg; *p; p++)
			h->pio_write(vm->inst, (uint16_t)h->prop_int(vm->inst, "port"),
				     (uint8_t)*p, 1);
	switch (action) {
	case 1:
		snprintf(err, len, "scripted engine error at rip 0x%llx",
			 (unsigned long long)c->state.rip);
		return MODVM_RUN_ERROR;
	case 2:
		if (vm->runs == 1)
			return MODVM_RUN_SHUTDOWN;
		/* after the reset, power off */
		__attribute__((fallthrough));
	case 0:
		h->machine_request(vm->inst, MODVM_REQUEST_POWEROFF);
		break;
	default:
		break;
	}
	return wait_kick(c);
}

static void vcpu_kick(void *vcpu)
{
	struct tcpu *c = vcpu;

	pthread_mutex_lock(&c->lock);
	c->kicked = 1;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

static int get_state(void *vcpu, struct modvm_cpu_state *out)
{
	*out = ((struct tcpu *)vcpu)->state;
	return 0;
}

static int set_state(void *vcpu, const struct modvm_cpu_state *in)
{
	((struct tcpu *)vcpu)->state = *in;
	return 0;
}

static void set_intr(void *vcpu, int level)
{
}

static void deliver_msi(void *vm, uint64_t addr, uint32_t data)
{
}

static const struct modvm_cpu_engine_ops ops = {
	.size = sizeof(ops), .probe = probe, .vm_create = vm_create,
	.vm_destroy = vm_destroy, .vcpu_create = vcpu_create,
	.vcpu_destroy = vcpu_destroy, .vcpu_run = vcpu_run,
	.vcpu_kick = vcpu_kick, .get_state = get_state, .set_state = set_state,
	.set_intr = set_intr, .deliver_msi = deliver_msi,
};

MODVM_PLUGIN_DEFINE(.kind = MODVM_KIND_CPU_ENGINE, .name = "test-engine",
		    .version = "1.0.0",
		    .description = "Scripted engine for core tests (runs no guest code)",
		    .props = props, .ops = &ops);
