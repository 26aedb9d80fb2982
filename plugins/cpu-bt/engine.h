/* cpu-bt: the plugin glue's per-VM and per-vCPU structures, shared by
 * engine.c (the cpu-engine ops) and apic.c (the local APIC hook-up).
 */
#ifndef BT_ENGINE_H
#define BT_ENGINE_H

#include <pthread.h>
#include <stdatomic.h>

#include <modvm/modvm.h>

#include "cpu.h"

struct bt_apic;
struct bt_vcpu;

struct bt_vm {
	const struct modvm_host *host;
	modvm_inst *inst;
	const struct modvm_cpu_model *model;
	unsigned ncpus;
	struct bt_vcpu **vcpus;
	volatile int a20;           /* the chipset's A20 gate (set_a20) */
	bool translate;             /* property mode = translate */
	uint64_t cache_bytes;       /* property translation-cache */
};

struct bt_vcpu {
	struct bt_cpu cpu;
	struct bt_vm *vm;
	unsigned index;
	struct bt_bus bus;
	pthread_mutex_t lock;       /* APIC state and the halt wait */
	pthread_cond_t cond;
	volatile int stop;          /* vcpu_kick */
	atomic_int intr_level;      /* the 8259's INTR (no-APIC path) */
	atomic_int wake;            /* something to look at: IRR, INTR */
	atomic_int nmi_req, init_req, sipi_req;
	bool wait_sipi;             /* INIT received: halted until SIPI */
	bool halt_reported;         /* "halted with IF=0" logged for this halt */
	struct bt_apic *apic;       /* NULL if no APIC model is linked */
};

/* apic.c: the only file that knows the APIC library. */
int bt_apic_create(struct bt_vcpu *v);
void bt_apic_destroy(struct bt_vcpu *v);
void bt_apic_set_state(struct bt_vcpu *v, const struct modvm_cpu_state *s);
void bt_apic_get_state(struct bt_vcpu *v, struct modvm_cpu_state *s);
bool bt_apic_mmio(struct bt_vcpu *v, uint64_t gpa, void *data, unsigned size,
		  bool write);
bool bt_apic_intr_pending(struct bt_vcpu *v);
int bt_apic_intr_ack(struct bt_vcpu *v);
void bt_apic_set_intr(struct bt_vcpu *v, int level);
bool bt_apic_wrmsr(struct bt_vcpu *v, uint32_t msr, uint64_t val);
/* MSRs of the local APIC: the x2APIC registers and IA32_TSC_DEADLINE;
 * false: #GP (not in x2APIC mode, no such register) or not the APIC's. */
bool bt_apic_rdmsr(struct bt_vcpu *v, uint32_t msr, uint64_t *val);
uint64_t bt_apic_cr8_read(struct bt_vcpu *v);
void bt_apic_cr8_write(struct bt_vcpu *v, uint64_t val);
/* An INIT signal reached this vCPU: its local APIC goes to the INIT state
 * (SDM 11.4.7.3: registers as at power-on but the APIC ID and base). */
void bt_apic_init_signal(struct bt_vcpu *v);
void bt_apic_msi(struct bt_vm *vm, uint64_t addr, uint32_t data);
/* Fire the APIC timer if due; returns the next deadline (UINT64_MAX: none). */
uint64_t bt_apic_poll_timer(struct bt_vcpu *v);
void bt_apic_observe(struct bt_vcpu *v, uint64_t now);
void bt_vcpu_wake(struct bt_vcpu *v);

#endif
