/* The guest TSC under the KVM engines stands still while modvm's virtual
 * clock does (a pause, a snapshot hold). Needs a KVM that lets user space
 * move the guest TSC; kvm_pvm (this project's development host) runs guests
 * on the raw host TSC and ignores such writes: then the test is SKIPPED. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvmt.h"
#include "testmain.h"

#define MS 1000000ull

/* Run the spinning guest for about 20 ms and return its TSC. */
static uint64_t spin_20ms_tsc(struct kvmt *t, struct modvm_cpu_state *s)
{
	struct kvmt_runner r;
	char err[512];

	kvmt_run_start(&r, t);
	usleep(20000);
	kvm_vcpu_kick(t->cpu);
	CU_ASSERT_EQUAL(kvmt_run_join(&r), MODVM_RUN_STOPPED);
	CU_ASSERT_EQUAL(kvm_vcpu_get_state(t->cpu, s, err, sizeof(err)), 0);
	return s->msr.tsc;
}

/* 300 ms with the virtual clock stopped between two runs add nothing to
 * the TSC; 300 ms with it going do. The bounds are 10x apart. */
static void tsc_stands_still_while_paused(void)
{
	struct kvmt t;
	struct modvm_cpu_state *s = kvmt_state_new();
	uint64_t a, b, c, khz;
	char err[512];

	CU_ASSERT_EQUAL_FATAL(kvmt_open(&t, KVM_IRQCHIP_SPLIT), 0);
	khz = t.cpu->tsc_khz;
	CU_ASSERT_FATAL(khz > 0);
	CU_ASSERT_EQUAL_FATAL(kvmt_load(&t, "spin"), 0);
	kvmt_long_state(s, KVMT_CODE, 3);
	CU_ASSERT_EQUAL_FATAL(kvm_vcpu_set_state(t.cpu, s, err, sizeof(err)), 0);
	a = spin_20ms_tsc(&t, s);
	usleep(300000);
	t.clock_stopped_ns += 300 * MS; /* the virtual clock did not move */
	b = spin_20ms_tsc(&t, s);
	usleep(300000);                 /* running: the clock moved */
	c = spin_20ms_tsc(&t, s);
	printf("\n    TSC over a 300 ms pause: +%" PRIu64 " ms, over 300 ms running: +%" PRIu64 " ms\n",
	       (b - a) / khz, (c - b) / khz);
	CU_ASSERT((b - a) / khz < 150);
	CU_ASSERT((c - b) / khz >= 300);
	kvmt_close(&t);
	free(s);
}

/* Does this KVM move the guest TSC when told to? Set it an hour ahead. */
static int tsc_writable(char *why, size_t len)
{
	struct kvmt t;
	struct modvm_cpu_state *s = kvmt_state_new();
	uint64_t want;
	char err[512];
	int r = kvmt_open(&t, KVM_IRQCHIP_SPLIT);

	if (r) {
		snprintf(why, len, "%s", t.err);
		goto out;
	}
	kvmt_long_state(s, KVMT_CODE, 3);
	r = kvm_vcpu_set_state(t.cpu, s, err, sizeof(err)) ||
	    kvm_vcpu_get_state(t.cpu, s, err, sizeof(err));
	if (r) {
		snprintf(why, len, "%s", err);
		goto out;
	}
	want = s->msr.tsc + 3600ull * t.cpu->tsc_khz * 1000;
	s->msr.tsc = want;
	kvm_vcpu_set_state(t.cpu, s, err, sizeof(err));
	kvm_vcpu_get_state(t.cpu, s, err, sizeof(err));
	if (s->msr.tsc < want - 60ull * t.cpu->tsc_khz * 1000) {
		snprintf(why, len, "this KVM ignores writes of the guest TSC (kvm_pvm runs guests on the host TSC): the TSC cannot be held over a pause here");
		r = 77;
	}
out:
	kvmt_close(&t);
	free(s);
	return r;
}

int main(void)
{
	static const struct test_case tests[] = {
		TEST(tsc_stands_still_while_paused),
	};
	char why[512];

	if (kvm_device_check(KVM_DEVICE_PATH, why, sizeof(why)) ||
	    tsc_writable(why, sizeof(why))) {
		printf("SKIP: %s\n", why);
		return 77;
	}
	return RUN_TESTS("kvm-tsc", tests);
}
