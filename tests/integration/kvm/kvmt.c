/* kvmt: a stand-in for the core around the KVM layer (see kvmt.h). */
#include "kvmt.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#ifndef KVMT_GUEST_DIR
#error "KVMT_GUEST_DIR must name the folder of the built guests"
#endif

#define PTE_P 0x1ull
#define PTE_RW 0x2ull
#define PTE_US 0x4ull
#define PTE_PS 0x80ull

#define SEL_CODE0 0x08
#define SEL_DATA0 0x10
#define SEL_CODE3 0x1B
#define SEL_DATA3 0x23
#define SEL_TSS 0x28

static struct kvmt *T(modvm_inst *inst)
{
	return (struct kvmt *)inst;
}

static void h_log(modvm_inst *inst, enum modvm_log_level level,
		  const char *fmt, ...)
{
	va_list ap;

	if (level > MODVM_LOG_WARN && !getenv("KVMT_DEBUG"))
		return;
	va_start(ap, fmt);
	fprintf(stderr, "kvm: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void record(struct kvmt *t, uint32_t v)
{
	bool stop;

	pthread_mutex_lock(&t->lock);
	if (t->nout == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 4096;
		t->out = realloc(t->out, t->cap * sizeof(*t->out));
	}
	t->out[t->nout++] = v;
	stop = t->stop_after && t->nout >= t->stop_after;
	pthread_mutex_unlock(&t->lock);
	if (stop)
		kvm_vcpu_kick(t->cpu);
}

static void h_pio_write(modvm_inst *inst, uint16_t port, uint64_t v,
			unsigned size)
{
	struct kvmt *t = T(inst);

	if (port == KVMT_PORT_OUT) {
		record(t, (uint32_t)v);
	} else if (port == KVMT_PORT_IRQ) {
		pthread_mutex_lock(&t->lock);
		if (t->nirq < 8)
			t->irq_seen[t->nirq] = (uint32_t)v;
		t->nirq++;
		pthread_mutex_unlock(&t->lock);
	} else if (port == KVMT_PORT_WAKE) {
		pthread_mutex_lock(&t->lock);
		t->wakes++;
		pthread_mutex_unlock(&t->lock);
	}
}

/* Port 0x10 and the MMIO page read as the number of reads so far. */
static uint32_t count_read(struct kvmt *t)
{
	uint32_t n;

	pthread_mutex_lock(&t->lock);
	n = ++t->reads;
	pthread_mutex_unlock(&t->lock);
	if (n == t->stop_on_read)
		kvm_vcpu_kick(t->cpu);
	return n;
}

static uint64_t h_pio_read(modvm_inst *inst, uint16_t port, unsigned size)
{
	return port == KVMT_PORT_OUT ? count_read(T(inst)) : ~0ull;
}

static bool h_mmio_read(modvm_inst *inst, uint64_t addr, void *data,
			unsigned size)
{
	uint32_t v = count_read(T(inst));

	T(inst)->mmio++;
	memset(data, 0, size);
	memcpy(data, &v, size < 4 ? size : 4);
	return addr >= KVMT_MMIO && addr < KVMT_MMIO + 0x1000;
}

static bool h_mmio_write(modvm_inst *inst, uint64_t addr, const void *data,
			 unsigned size)
{
	struct kvmt *t = T(inst);

	if (++t->mmio == t->stop_on_mmio)
		kvm_vcpu_kick(t->cpu);
	return addr >= KVMT_MMIO && addr < KVMT_MMIO + 0x1000;
}

/* The INTR line: the test sets intr_vector and raises the line; the ack
 * hands out the vector once and the line drops, like a 8259 with one
 * edge-triggered request. */
static int h_intr_ack(modvm_inst *inst)
{
	struct kvmt *t = T(inst);
	int v;

	pthread_mutex_lock(&t->lock);
	v = t->intr_vector;
	t->intr_vector = -1;
	t->acks++;
	pthread_mutex_unlock(&t->lock);
	kvm_vcpu_set_intr(t->cpu, 0);
	return v;
}

static void h_eoi_broadcast(modvm_inst *inst, uint8_t vector)
{
	struct kvmt *t = T(inst);

	pthread_mutex_lock(&t->lock);
	if (t->neoi < 8)
		t->eoi_seen[t->neoi] = vector;
	t->neoi++;
	pthread_mutex_unlock(&t->lock);
}

static void *h_mem_ptr(modvm_inst *inst, uint64_t gpa, uint64_t len)
{
	if (gpa > KVMT_RAM_SIZE || len > KVMT_RAM_SIZE - gpa)
		return NULL;
	return T(inst)->ram + gpa;
}

static uint64_t h_clock_ns(modvm_inst *inst)
{
	struct kvmt *t = (struct kvmt *)inst;

	return kvmt_now_ns() - t->clock_stopped_ns;
}

static uint64_t h_mem_size(modvm_inst *inst)
{
	return KVMT_RAM_SIZE;
}

static const struct modvm_cpu_model host_model = {
	.name = "host", .description = "the host's CPUID, as KVM supports it",
};

static void build_tables(struct kvmt *t)
{
	uint64_t *pml4 = (uint64_t *)(t->ram + KVMT_PML4);
	uint64_t *pdpt = (uint64_t *)(t->ram + KVMT_PML4 + 0x1000);
	uint64_t *pd_low = (uint64_t *)(t->ram + KVMT_PML4 + 0x2000);
	uint64_t *pd_hole = (uint64_t *)(t->ram + KVMT_PML4 + 0x3000);
	uint64_t *gdt = (uint64_t *)(t->ram + KVMT_GDT);
	uint64_t flags = PTE_P | PTE_RW | PTE_US;

	/* Identity map of the first GiB and of 3-4 GiB in 2 MiB pages,
	 * user-accessible so ring-3 guests reach RAM and the MMIO page. */
	pml4[0] = (KVMT_PML4 + 0x1000) | flags;
	pdpt[0] = (KVMT_PML4 + 0x2000) | flags;
	pdpt[3] = (KVMT_PML4 + 0x3000) | flags;
	for (uint64_t i = 0; i < 512; i++) {
		pd_low[i] = (i << 21) | flags | PTE_PS;
		pd_hole[i] = (0xC0000000ull + (i << 21)) | flags | PTE_PS;
	}
	/* null, code0, data0, code3, data3, 64-bit TSS (two slots) */
	gdt[1] = 0x00AF9B000000FFFFull;
	gdt[2] = 0x00CF93000000FFFFull;
	gdt[3] = 0x00AFFB000000FFFFull;
	gdt[4] = 0x00CFF3000000FFFFull;
	gdt[5] = 0x0000890000000067ull | ((uint64_t)KVMT_TSS << 16);
	gdt[6] = 0;
	/* TSS RSP0 (Intel SDM 3A 8.7): where ring-3 interrupts switch to */
	uint64_t rsp0 = KVMT_STACK0;
	memcpy(t->ram + KVMT_TSS + 4, &rsp0, 8);
}

int kvmt_open(struct kvmt *t, enum kvm_irqchip_mode irqchip)
{
	struct kvm_vm_config cfg = {
		.device = KVM_DEVICE_PATH, .irqchip = irqchip,
		.model = &host_model, .ncpus = 1,
	};
	modvm_inst *inst = (modvm_inst *)t;

	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
	t->intr_vector = -1;
	t->host = (struct modvm_host){
		.size = sizeof(struct modvm_host), .abi_major = MODVM_ABI_MAJOR,
		.abi_minor = MODVM_ABI_MINOR, .log = h_log,
		.pio_read = h_pio_read, .pio_write = h_pio_write,
		.mmio_read = h_mmio_read, .mmio_write = h_mmio_write,
		.intr_ack = h_intr_ack, .mem_ptr = h_mem_ptr,
		.mem_size = h_mem_size, .eoi_broadcast = h_eoi_broadcast,
		.clock_ns = h_clock_ns,
	};
	if (kvm_device_check(KVM_DEVICE_PATH, t->err, sizeof(t->err)))
		return 77;
	t->ram = mmap(NULL, KVMT_RAM_SIZE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (t->ram == MAP_FAILED) {
		t->ram = NULL;
		return kvm_err(t->err, sizeof(t->err), "mmap: %s", strerror(errno));
	}
	build_tables(t);
	if (kvm_vm_open(&t->vm, &cfg, &t->host, inst, t->err, sizeof(t->err)))
		return -1;
	t->vm_open = true;
	if (kvm_vm_map_guest_ram(&t->vm, t->err, sizeof(t->err)))
		return -1;
	t->cpu = kvm_vcpu_new(&t->vm, 0, t->err, sizeof(t->err));
	return t->cpu ? 0 : -1;
}

void kvmt_close(struct kvmt *t)
{
	kvm_vcpu_free(t->cpu);
	if (t->vm_open)
		kvm_vm_close(&t->vm);
	t->vm_open = false;
	if (t->ram)
		munmap(t->ram, KVMT_RAM_SIZE);
	free(t->out);
	pthread_mutex_destroy(&t->lock);
	t->cpu = NULL;
	t->ram = NULL;
	t->out = NULL;
}

int kvmt_load(struct kvmt *t, const char *name)
{
	char path[512];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s.bin", KVMT_GUEST_DIR, name);
	f = fopen(path, "rb");
	if (!f)
		return kvm_err(t->err, sizeof(t->err), "%s: %s", path, strerror(errno));
	n = fread(t->ram + KVMT_CODE, 1, KVMT_RAM_SIZE - KVMT_CODE, f);
	fclose(f);
	return n ? 0 : kvm_err(t->err, sizeof(t->err), "%s is empty", path);
}

static void seg64(struct modvm_segment *s, uint16_t sel, uint8_t type,
		  int dpl, bool code)
{
	*s = (struct modvm_segment){
		.selector = sel, .limit = 0xFFFFFFFF, .type = type, .s = 1,
		.dpl = (uint8_t)dpl, .present = 1, .g = 1, .l = code,
		.db = !code,
	};
}

void kvmt_long_state(struct modvm_cpu_state *s, uint64_t rip, int cpl)
{
	uint16_t fcw = 0x37F;
	uint32_t mxcsr = 0x1F80;
	uint64_t bv = 3;

	memset(s, 0, sizeof(*s));
	s->rip = rip;
	s->rflags = 0x2 | (3u << 12); /* IOPL 3: ring 3 may use ports */
	s->gpr[MODVM_RSP] = cpl ? KVMT_STACK3 : KVMT_STACK0;
	seg64(&s->seg[MODVM_CS], cpl ? SEL_CODE3 : SEL_CODE0, 0xB, cpl, true);
	for (int i = 0; i < MODVM_NR_SREGS; i++)
		if (i != MODVM_CS)
			seg64(&s->seg[i], cpl ? SEL_DATA3 : SEL_DATA0, 0x3, cpl, false);
	s->tr = (struct modvm_segment){ .selector = SEL_TSS, .base = KVMT_TSS,
					.limit = 0x67, .type = 0xB, .present = 1 };
	s->ldt = (struct modvm_segment){ .type = 0x2, .present = 1, .limit = 0xFFFF };
	s->gdt = (struct modvm_dtable){ .base = KVMT_GDT, .limit = 7 * 8 - 1 };
	s->idt = (struct modvm_dtable){ .base = KVMT_IDT, .limit = 256 * 16 - 1 };
	s->cr0 = 0x80050033; /* PG AM WP NE ET MP PE */
	s->cr3 = KVMT_PML4;
	s->cr4 = 0x620;      /* OSXMMEXCPT OSFXSR PAE */
	s->msr.efer = 0x500; /* LMA LME */
	s->msr.apic_base = 0xFEE00900;
	s->msr.pat = 0x0007040600070406ull;
	s->dr6 = 0xFFFF0FF0;
	s->dr7 = 0x400;
	s->xcr0 = 1;
	memcpy(s->xsave, &fcw, 2);
	memcpy(s->xsave + 24, &mxcsr, 4);
	memcpy(s->xsave + 512, &bv, 8);
}

#define LCG_MUL 6364136223846793005ull
#define LCG_INC 1442695040888963407ull
#define LCG_SEED 0x0123456789ABCDEFull

void kvmt_counter_setup(struct modvm_cpu_state *s)
{
	double one = 1.0;

	s->gpr[MODVM_R12] = LCG_SEED;
	s->gpr[MODVM_R13] = LCG_MUL;
	s->gpr[MODVM_R14] = LCG_INC;
	memcpy(s->xsave + 160 + 16, &one, 8); /* XMM1 */
}

uint32_t kvmt_counter_value(uint64_t i)
{
	uint64_t x = LCG_SEED;

	for (uint64_t k = 0; k < i; k++)
		x = x * LCG_MUL + LCG_INC;
	return (uint32_t)x ^ (uint32_t)(x >> 32) ^ (uint32_t)i;
}

void kvmt_set_gate(struct kvmt *t, unsigned vector, uint64_t handler)
{
	uint64_t lo = (handler & 0xFFFF) | ((uint64_t)SEL_CODE0 << 16) |
		      (0x8Eull << 40) | ((handler >> 16 & 0xFFFF) << 48);
	uint64_t hi = handler >> 32;

	memcpy(t->ram + KVMT_IDT + 16 * vector, &lo, 8);
	memcpy(t->ram + KVMT_IDT + 16 * vector + 8, &hi, 8);
}

uint64_t kvmt_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct modvm_cpu_state *kvmt_state_new(void)
{
	struct modvm_cpu_state *s = aligned_alloc(64, sizeof(*s));

	memset(s, 0, sizeof(*s));
	return s;
}

static void *run_main(void *arg)
{
	struct kvmt_runner *r = arg;

	r->st = kvm_vcpu_run(r->t->cpu, r->err, sizeof(r->err));
	r->end_ns = kvmt_now_ns();
	return NULL;
}

void kvmt_run_start(struct kvmt_runner *r, struct kvmt *t)
{
	memset(r, 0, sizeof(*r));
	r->t = t;
	pthread_create(&r->thread, NULL, run_main, r);
}

enum modvm_run_status kvmt_run_join(struct kvmt_runner *r)
{
	pthread_join(r->thread, NULL);
	if (r->st != MODVM_RUN_STOPPED)
		fprintf(stderr, "vcpu_run: status %d: %s\n", r->st, r->err);
	return r->st;
}
