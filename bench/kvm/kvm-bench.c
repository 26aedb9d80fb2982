/* kvm-bench: what the KVM layer costs. A ring-3 compute loop in a guest
 * against the same loop natively (the ratio), the same loop at CPL 0 (which
 * KVM without hardware assistance emulates), and the round trip of port
 * and MMIO exits through the layer to a handler, in microseconds. The
 * guests are tests/integration/kvm/guests/bench.asm and inread.asm.
 *
 * usage: kvm-bench [ITERATIONS_MILLIONS]    (default 200)
 * Results: docs/performance.md, "KVM engines".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kvmt.h"

/* The guest's loop (bench.asm "compute"), instruction for instruction. */
static uint64_t native_loop(uint64_t n)
{
	uint64_t rax = 0, rcx = n;

	__asm__ volatile("1: imul $3, %0, %0\n\t"
			 "add %1, %0\n\t"
			 "xor $0x5A5A, %0\n\t"
			 "dec %1\n\t"
			 "jnz 1b"
			 : "+r"(rax), "+r"(rcx) : : "cc");
	return rax;
}

static double native_ns(uint64_t n)
{
	uint64_t t0 = kvmt_now_ns();

	native_loop(n);
	return (double)(kvmt_now_ns() - t0);
}

/* Run `guest` from entry at cpl until the vCPU stops; ns taken. */
static double guest_run(const char *guest, uint64_t entry, int cpl,
			uint64_t r8, void (*arm)(struct kvmt *))
{
	struct kvmt t;
	struct modvm_cpu_state *s = aligned_alloc(64, sizeof(*s));
	char err[512];
	uint64_t t0, t1;

	if (kvmt_open(&t, KVM_IRQCHIP_SPLIT) || kvmt_load(&t, guest)) {
		fprintf(stderr, "kvm-bench: %s\n", t.err);
		exit(1);
	}
	kvmt_long_state(s, entry, cpl);
	s->gpr[MODVM_R8] = r8;
	s->gpr[MODVM_RDI] = KVMT_MMIO;
	if (kvm_vcpu_set_state(t.cpu, s, err, sizeof(err))) {
		fprintf(stderr, "kvm-bench: %s\n", err);
		exit(1);
	}
	arm(&t);
	t0 = kvmt_now_ns();
	if (kvm_vcpu_run(t.cpu, err, sizeof(err)) != MODVM_RUN_STOPPED) {
		fprintf(stderr, "kvm-bench: %s\n", err);
		exit(1);
	}
	t1 = kvmt_now_ns();
	kvmt_close(&t);
	free(s);
	return (double)(t1 - t0);
}

#define EXITS 20000

static void arm_one_out(struct kvmt *t) { t->stop_after = 1; }
static void arm_outs(struct kvmt *t) { t->stop_after = EXITS; }
static void arm_ins(struct kvmt *t) { t->stop_on_read = EXITS; }
static void arm_mmio_writes(struct kvmt *t) { t->stop_on_mmio = EXITS; }

static void exits(const char *what, const char *guest, uint64_t entry,
		  void (*arm)(struct kvmt *))
{
	double ns = guest_run(guest, entry, 3, 0, arm);

	printf("%-34s %8.2f us per exit (%u exits in %.2f s)\n", what,
	       ns / EXITS / 1e3, EXITS, ns / 1e9);
}

/* The same OUT loop with nothing but KVM_RUN in a loop: what the host's
 * exit costs without the layer, its run loop and the port dispatch. */
static void bare_exits(void)
{
	struct kvmt t;
	struct modvm_cpu_state *s = aligned_alloc(64, sizeof(*s));
	char err[256];
	uint64_t t0;
	double ns;

	if (kvmt_open(&t, KVM_IRQCHIP_SPLIT) || kvmt_load(&t, "bench")) {
		fprintf(stderr, "kvm-bench: %s\n", t.err);
		exit(1);
	}
	kvmt_long_state(s, KVMT_CODE + 0x100, 3);
	kvm_vcpu_set_state(t.cpu, s, err, sizeof(err));
	t0 = kvmt_now_ns();
	for (int i = 0; i < EXITS; i++)
		if (ioctl(t.cpu->fd, KVM_RUN, 0) || t.cpu->run->exit_reason != KVM_EXIT_IO) {
			fprintf(stderr, "kvm-bench: bare loop: exit %u\n",
				t.cpu->run->exit_reason);
			exit(1);
		}
	ns = (double)(kvmt_now_ns() - t0);
	printf("%-34s %8.2f us per exit (%u exits in %.2f s)\n",
	       "  PIO OUT, bare KVM_RUN loop", ns / EXITS / 1e3, EXITS, ns / 1e9);
	kvmt_close(&t);
	free(s);
}

struct kick_run {
	struct kvmt *t;
	uint64_t end;
};

static void *kick_thread(void *arg)
{
	struct kick_run *k = arg;
	char err[256];

	kvm_vcpu_run(k->t->cpu, err, sizeof(err));
	k->end = kvmt_now_ns();
	return NULL;
}

/* From vcpu_kick to vcpu_run's return, the vCPU spinning in ring 3. */
static void kick_latency(void)
{
	struct kvmt t;
	struct modvm_cpu_state *s = aligned_alloc(64, sizeof(*s));
	double worst = 0, sum = 0;
	char err[256];
	const int rounds = 20;

	if (kvmt_open(&t, KVM_IRQCHIP_SPLIT) || kvmt_load(&t, "spin")) {
		fprintf(stderr, "kvm-bench: %s\n", t.err);
		exit(1);
	}
	kvmt_long_state(s, KVMT_CODE, 3);
	kvm_vcpu_set_state(t.cpu, s, err, sizeof(err));
	for (int i = 0; i < rounds; i++) {
		struct kick_run k = { .t = &t };
		pthread_t th;
		uint64_t t0;
		double us;

		pthread_create(&th, NULL, kick_thread, &k);
		usleep(20000);
		t0 = kvmt_now_ns();
		kvm_vcpu_kick(t.cpu);
		pthread_join(th, NULL);
		us = (double)(k.end - t0) / 1e3;
		sum += us;
		worst = us > worst ? us : worst;
	}
	printf("kick to return (spinning guest)    %8.1f us mean, %.1f us worst of %d\n",
	       sum / rounds, worst, rounds);
	kvmt_close(&t);
	free(s);
}

int main(int argc, char **argv)
{
	uint64_t n = (argc > 1 ? strtoull(argv[1], NULL, 0) : 200) * 1000000ull;
	uint64_t n0 = n / 200;
	double g3, nat, g0;

	if (kvm_device_check(KVM_DEVICE_PATH, (char[256]){ 0 }, 256)) {
		fprintf(stderr, "kvm-bench: no usable %s\n", KVM_DEVICE_PATH);
		return 77;
	}
	nat = native_ns(n);
	g3 = guest_run("bench", KVMT_CODE, 3, n, arm_one_out);
	g0 = guest_run("bench", KVMT_CODE, 0, n0, arm_one_out);
	printf("compute loop, %llu iterations:\n", (unsigned long long)n);
	printf("  native                           %8.3f s  %.2f ns/iteration\n",
	       nat / 1e9, nat / n);
	printf("  guest CPL 3                      %8.3f s  %.2f ns/iteration  "
	       "(%.3f x native)\n", g3 / 1e9, g3 / n, g3 / nat);
	printf("  guest CPL 0 (%llu iterations)   %8.3f s  %.2f ns/iteration  "
	       "(%.0f x native)\n", (unsigned long long)n0, g0 / 1e9, g0 / n0,
	       (g0 / n0) / (nat / n));
	printf("exit round trips (guest at CPL 3, handler in this process):\n");
	bare_exits();
	exits("  PIO OUT (port 0x10)", "bench", KVMT_CODE + 0x100, arm_outs);
	exits("  PIO IN (port 0x10)", "inread", KVMT_CODE, arm_ins);
	exits("  MMIO write (no RAM there)", "bench", KVMT_CODE + 0x200, arm_mmio_writes);
	exits("  MMIO read (no RAM there)", "inread", KVMT_CODE + 0x100, arm_ins);
	kick_latency();
	return 0;
}
