/* kvmt: a tiny stand-in for the core around the KVM layer, for tests and
 * benchmarks that run hand-written guests (the .asm files in guests/) directly: a host
 * table that records port writes, guest RAM, long-mode page tables, GDT,
 * IDT and TSS, and canonical entry states at CPL 0 or 3.
 */
#ifndef MODVM_TEST_KVMT_H
#define MODVM_TEST_KVMT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "kvm.h"

/* Guest physical layout */
#define KVMT_RAM_SIZE (4u << 20)
#define KVMT_PML4 0x1000
#define KVMT_GDT 0x5000
#define KVMT_IDT 0x6000
#define KVMT_TSS 0x7000
#define KVMT_STACK0 0x9000     /* ring-0 stack top */
#define KVMT_STACK3 0xB000     /* ring-3 stack top */
#define KVMT_CODE 0x10000
#define KVMT_MMIO 0xFE000000u  /* no RAM: every access is an MMIO exit */

#define KVMT_PORT_OUT 0x10     /* values recorded in out[] */
#define KVMT_PORT_IRQ 0x11     /* interrupt handlers report here */
#define KVMT_PORT_WAKE 0x12    /* HLT wake-ups */

struct kvmt {
	struct modvm_host host;
	uint8_t *ram;
	struct kvm_vm vm;
	bool vm_open;
	struct kvm_vcpu *cpu;
	char err[512];

	pthread_mutex_t lock;
	uint32_t *out;             /* port 0x10 values */
	size_t nout, cap;
	size_t stop_after;         /* kick the vCPU when nout reaches it */
	unsigned reads;            /* port 0x10 and MMIO reads; each returns
				      the new count */
	unsigned stop_on_read;     /* kick the vCPU at this read */
	uint32_t irq_seen[8];      /* port 0x11 values */
	unsigned nirq, wakes;
	int intr_vector;           /* what intr_ack returns (then -1) */
	unsigned acks;
	unsigned long mmio;        /* MMIO accesses seen */
	unsigned long stop_on_mmio;/* kick the vCPU at this MMIO access */
	uint8_t eoi_seen[8];       /* host->eoi_broadcast vectors */
	unsigned neoi;
	uint64_t clock_stopped_ns; /* host->clock_ns = monotonic - this: a
				      test adds the time it "paused" */
};

/* A zeroed canonical state (64-byte aligned, for the XSAVE area). */
struct modvm_cpu_state *kvmt_state_new(void);

/* kvm_vcpu_run in its own thread, so a test can kick it meanwhile. */
struct kvmt_runner {
	struct kvmt *t;
	pthread_t thread;
	enum modvm_run_status st;
	uint64_t end_ns;           /* kvmt_now_ns() when vcpu_run returned */
	char err[512];
};
void kvmt_run_start(struct kvmt_runner *r, struct kvmt *t);
/* Wait for it; prints the status and error unless MODVM_RUN_STOPPED. */
enum modvm_run_status kvmt_run_join(struct kvmt_runner *r);

/* 0 and a VM with one vCPU, or -1 with t->err set (77 to skip: no KVM). */
int kvmt_open(struct kvmt *t, enum kvm_irqchip_mode irqchip);
void kvmt_close(struct kvmt *t);
/* Load guests/<name>.bin at KVMT_CODE. */
int kvmt_load(struct kvmt *t, const char *name);
/* A long-mode entry state at rip, CPL 0 or 3 (IOPL 3, IF 0). */
void kvmt_long_state(struct modvm_cpu_state *s, uint64_t rip, int cpl);
/* The counter guest's registers and its i-th output (i from 1). */
void kvmt_counter_setup(struct modvm_cpu_state *s);
uint32_t kvmt_counter_value(uint64_t i);
/* Point IDT vector at handler (ring-0 interrupt gate). */
void kvmt_set_gate(struct kvmt *t, unsigned vector, uint64_t handler);
/* Monotonic time in ns. */
uint64_t kvmt_now_ns(void);

#endif
