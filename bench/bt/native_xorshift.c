/* The ring-3 loop of tests/guests/compute.asm (xorshift64, 11 instructions
 * a round) run natively, for bench/bt/bt-bench.sh: prints the result and
 * the wall time of the loop in nanoseconds. Usage: native_xorshift ROUNDS */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static uint64_t rounds_asm(uint64_t x, uint32_t n)
{
	/* the same instruction sequence as the guest, not compiler output */
	__asm__ volatile("1:\n\t"
			 "mov %0, %%rdx\n\tshl $13, %%rdx\n\txor %%rdx, %0\n\t"
			 "mov %0, %%rdx\n\tshr $7, %%rdx\n\txor %%rdx, %0\n\t"
			 "mov %0, %%rdx\n\tshl $17, %%rdx\n\txor %%rdx, %0\n\t"
			 "dec %1\n\tjnz 1b"
			 : "+r"(x), "+r"(n)
			 :
			 : "rdx", "cc");
	return x;
}

int main(int argc, char **argv)
{
	struct timespec a, b;
	uint32_t n = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 0) : 200000000u;
	uint64_t x;

	if (!n) {
		fprintf(stderr, "usage: %s ROUNDS (1 or more)\n", argv[0]);
		return 2;
	}
	clock_gettime(CLOCK_MONOTONIC, &a);
	x = rounds_asm(0x9E3779B97F4A7C15ull, n);
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("result=0x%016llX ns=%lld\n", (unsigned long long)x,
	       (long long)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec));
	return 0;
}
