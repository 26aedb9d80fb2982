/* A KVM virtual machine: the device, the capabilities modvm relies on, the
 * interrupt controller split, guest RAM as memory slots, and MSIs into the
 * in-kernel local APICs.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kvm.h"

/* VT-x real mode (no unrestricted guest) needs three pages for a TSS and one
 * for an identity page table somewhere in guest physical space. Put them in
 * the unused gap between the local APIC window and the top 16 MiB of the
 * 4 GiB space, far from RAM, PCI BARs and the platform devices of pc.h. */
#define KVM_IDENTITY_MAP_ADDR 0xFEFFC000ull
#define KVM_TSS_ADDR 0xFEFFD000ull

#define MSI_DATA_VECTOR 0xFFu
#define MSI_DATA_TRIGGER_LEVEL (1u << 15)
#define KVM_4G 0x100000000ull
#define KVM_PCI_HOLE MODVM_PC_PCI_HOLE

static int vm_cap(struct kvm_vm *vm, long cap)
{
	int r = ioctl(vm->fd, KVM_CHECK_EXTENSION, cap);

	return r < 0 ? ioctl(vm->sys_fd, KVM_CHECK_EXTENSION, cap) : r;
}

static int enable_cap(struct kvm_vm *vm, uint32_t cap, uint64_t arg0)
{
	struct kvm_enable_cap c = { .cap = cap, .args = { arg0 } };

	return kvm_ioctl(vm->fd, KVM_ENABLE_CAP, &c);
}

static int read_supported_cpuid(struct kvm_vm *vm, char *err, size_t len)
{
	vm->supported.head.nent = KVM_CPUID_MAX;
	if (kvm_ioctl(vm->sys_fd, KVM_GET_SUPPORTED_CPUID, &vm->supported))
		return kvm_err(err, len, "KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
	return 0;
}

static int read_msr_index(struct kvm_vm *vm, char *err, size_t len)
{
	struct kvm_msr_list probe = { .nmsrs = 0 };
	struct kvm_msr_list *list;

	/* The first call fails with E2BIG and says how many there are. */
	if (ioctl(vm->sys_fd, KVM_GET_MSR_INDEX_LIST, &probe) && errno != E2BIG)
		return kvm_err(err, len, "KVM_GET_MSR_INDEX_LIST: %s", strerror(errno));
	list = calloc(1, sizeof(*list) + probe.nmsrs * sizeof(uint32_t));
	if (!list)
		return kvm_err(err, len, "out of memory");
	list->nmsrs = probe.nmsrs;
	if (kvm_ioctl(vm->sys_fd, KVM_GET_MSR_INDEX_LIST, list)) {
		free(list);
		return kvm_err(err, len, "KVM_GET_MSR_INDEX_LIST: %s", strerror(errno));
	}
	vm->msr_index = malloc((list->nmsrs + 1) * sizeof(uint32_t));
	if (vm->msr_index)
		memcpy(vm->msr_index, list->indices, list->nmsrs * sizeof(uint32_t));
	vm->nmsr_index = vm->msr_index ? list->nmsrs : 0;
	free(list);
	return 0;
}

static int read_caps(struct kvm_vm *vm, char *err, size_t len)
{
	int max_vcpus;

	if (vm_cap(vm, KVM_CAP_USER_MEMORY) <= 0 || vm_cap(vm, KVM_CAP_EXT_CPUID) <= 0)
		return kvm_err(err, len, "this KVM lacks user memory slots or KVM_SET_CPUID2");
	max_vcpus = vm_cap(vm, KVM_CAP_MAX_VCPUS);
	if (max_vcpus <= 0)
		max_vcpus = vm_cap(vm, KVM_CAP_NR_VCPUS);
	if (max_vcpus > 0 && vm->cfg.ncpus > (unsigned)max_vcpus)
		return kvm_err(err, len, "%u vCPUs asked for; this KVM allows %d",
			       vm->cfg.ncpus, max_vcpus);
	vm->cap_xsave = vm_cap(vm, KVM_CAP_XSAVE) > 0;
	vm->cap_xcrs = vm_cap(vm, KVM_CAP_XCRS) > 0;
	vm->cap_events = vm_cap(vm, KVM_CAP_VCPU_EVENTS) > 0;
	vm->cap_debugregs = vm_cap(vm, KVM_CAP_DEBUGREGS) > 0;
	vm->cap_smm = vm_cap(vm, KVM_CAP_X86_SMM) > 0;
	vm->cap_msi = vm_cap(vm, KVM_CAP_SIGNAL_MSI) > 0;
	vm->xsave_size = KVM_XSAVE_BYTES;
	if (vm_cap(vm, KVM_CAP_XSAVE2) > KVM_XSAVE_BYTES)
		vm->xsave_size = (size_t)vm_cap(vm, KVM_CAP_XSAVE2);
	return 0;
}

/* Capabilities that change KVM's behaviour; all before the first vCPU. */
static int enable_caps(struct kvm_vm *vm, char *err, size_t len)
{
	/* Pending and injected exceptions kept apart, #PF/#DB payloads not
	 * applied early: the canonical state's own model of events. */
	if (vm_cap(vm, KVM_CAP_EXCEPTION_PAYLOAD) > 0)
		vm->cap_payload = enable_cap(vm, KVM_CAP_EXCEPTION_PAYLOAD, 1) == 0;
	/* Unknown MSRs come to us so they can be logged; the guest still
	 * gets the #GP a real CPU raises. */
	if (vm_cap(vm, KVM_CAP_X86_USER_SPACE_MSR) > 0)
		vm->cap_user_msr = enable_cap(vm, KVM_CAP_X86_USER_SPACE_MSR,
					      KVM_MSR_EXIT_REASON_UNKNOWN) == 0;
	if (vm->cfg.irqchip != KVM_IRQCHIP_SPLIT)
		return 0;
	if (vm_cap(vm, KVM_CAP_SPLIT_IRQCHIP) <= 0 ||
	    enable_cap(vm, KVM_CAP_SPLIT_IRQCHIP, KVM_IOAPIC_ROUTES))
		return kvm_err(err, len,
			       "this KVM cannot keep the local APICs in the kernel with "
			       "the PIC and IOAPIC outside (KVM_CAP_SPLIT_IRQCHIP): "
			       "set irqchip = \"none\" in the cpu group (8259 interrupts only)");
	/* x2APIC IDs as the SDM has them in the register page, and no
	 * xAPIC-broadcast quirk in x2APIC mode. */
	if (vm_cap(vm, KVM_CAP_X2APIC_API) > 0)
		vm->cap_x2apic_api = enable_cap(vm, KVM_CAP_X2APIC_API,
						KVM_X2APIC_API_USE_32BIT_IDS |
						KVM_X2APIC_API_DISABLE_BROADCAST_QUIRK) == 0;
	return 0;
}

/* Refuse a CPU model this KVM cannot provide before anything runs; each
 * vCPU builds its own CPUID again with its APIC ID. */
static int check_model(struct kvm_vm *vm, char *err, size_t len)
{
	struct kvm_cpuid_buf *probe = malloc(sizeof(*probe));
	int r;

	if (!probe)
		return kvm_err(err, len, "out of memory");
	r = kvm_cpuid_build(vm->cfg.model, &vm->supported, 0,
			    vm->cfg.irqchip == KVM_IRQCHIP_SPLIT, probe, err, len);
	free(probe);
	return r;
}

static int vendor_setup(struct kvm_vm *vm, char *err, size_t len)
{
	uint64_t idmap = KVM_IDENTITY_MAP_ADDR;

	if (!vm->cfg.vendor || !vm->cfg.vendor->needs_tss)
		return 0;
	if (vm_cap(vm, KVM_CAP_SET_IDENTITY_MAP_ADDR) > 0 &&
	    kvm_ioctl(vm->fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap))
		return kvm_err(err, len, "KVM_SET_IDENTITY_MAP_ADDR: %s", strerror(errno));
	if (ioctl(vm->fd, KVM_SET_TSS_ADDR, (unsigned long)KVM_TSS_ADDR))
		return kvm_err(err, len, "KVM_SET_TSS_ADDR: %s", strerror(errno));
	return 0;
}

static int vm_open_steps(struct kvm_vm *vm, char *err, size_t len)
{
	if (vm->cfg.irqchip == KVM_IRQCHIP_NONE && vm->cfg.ncpus > 1)
		return kvm_err(err, len, "irqchip = \"none\" has no local APICs, so no "
			       "INIT/SIPI could ever start the other %u vCPUs: use "
			       "cpus = 1 or irqchip = \"split\"", vm->cfg.ncpus - 1);
	if (kvm_device_check(vm->cfg.device, err, len))
		return -1;
	vm->sys_fd = open(vm->cfg.device, O_RDWR | O_CLOEXEC);
	if (vm->sys_fd < 0)
		return kvm_err(err, len, "%s: %s", vm->cfg.device, strerror(errno));
	do
		vm->fd = ioctl(vm->sys_fd, KVM_CREATE_VM, 0);
	while (vm->fd < 0 && errno == EINTR);
	if (vm->fd < 0)
		return kvm_err(err, len, "KVM_CREATE_VM: %s", strerror(errno));
	vm->run_size = (size_t)ioctl(vm->sys_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if ((long)vm->run_size < (long)sizeof(struct kvm_run))
		return kvm_err(err, len, "KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
	if (read_caps(vm, err, len) || read_supported_cpuid(vm, err, len) ||
	    read_msr_index(vm, err, len) || check_model(vm, err, len) ||
	    vendor_setup(vm, err, len) || enable_caps(vm, err, len))
		return -1;
	return 0;
}

int kvm_vm_open(struct kvm_vm *vm, const struct kvm_vm_config *cfg,
		const struct modvm_host *host, modvm_inst *inst, char *err,
		size_t len)
{
	memset(vm, 0, sizeof(*vm));
	vm->sys_fd = vm->fd = -1;
	vm->host = host;
	vm->inst = inst;
	vm->cfg = *cfg;
	if (!vm->cfg.device)
		vm->cfg.device = KVM_DEVICE_PATH;
	pthread_mutex_init(&vm->route_lock, NULL);
	vm->hw_assisted = kvm_host_hw_assisted(cfg->vendor);
	if (!vm_open_steps(vm, err, len))
		return 0;
	kvm_vm_close(vm);
	return -1;
}

void kvm_vm_close(struct kvm_vm *vm)
{
	if (vm->fd >= 0)
		close(vm->fd);
	if (vm->sys_fd >= 0)
		close(vm->sys_fd);
	free(vm->msr_index);
	free(vm->dirty_bits);
	vm->dirty_bits = NULL;
	pthread_mutex_destroy(&vm->route_lock);
	vm->fd = vm->sys_fd = -1;
	vm->msr_index = NULL;
}

int kvm_vm_add_ram(struct kvm_vm *vm, uint64_t gpa, void *hva, uint64_t size,
		   char *err, size_t len)
{
	struct kvm_userspace_memory_region r = {
		.slot = vm->nslots, .guest_phys_addr = gpa,
		.memory_size = size, .userspace_addr = (uintptr_t)hva,
	};

	if ((gpa | size | (uintptr_t)hva) & 0xFFF)
		return kvm_err(err, len, "RAM at 0x%llx size 0x%llx is not page aligned",
			       (unsigned long long)gpa, (unsigned long long)size);
	if (vm->nslots >= KVM_RAM_SLOTS)
		return kvm_err(err, len, "more than %d RAM slots", KVM_RAM_SLOTS);
	if (kvm_ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &r))
		return kvm_err(err, len, "cannot map guest RAM 0x%llx-0x%llx: %s",
			       (unsigned long long)gpa,
			       (unsigned long long)(gpa + size - 1), strerror(errno));
	vm->ram[vm->nslots].gpa = gpa;
	vm->ram[vm->nslots].size = size;
	vm->ram[vm->nslots].hva = hva;
	vm->nslots++;
	return 0;
}

int kvm_vm_dirty_log(struct kvm_vm *vm, bool on)
{
	uint64_t most = 0;

	for (unsigned i = 0; i < vm->nslots; i++) {
		struct kvm_userspace_memory_region r = {
			.slot = i, .flags = on ? KVM_MEM_LOG_DIRTY_PAGES : 0,
			.guest_phys_addr = vm->ram[i].gpa, .memory_size = vm->ram[i].size,
			.userspace_addr = (uintptr_t)vm->ram[i].hva,
		};
		if (kvm_ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &r)) {
			vm->host->log(vm->inst, MODVM_LOG_WARN, "KVM dirty logging %s failed on RAM slot %u: %s",
				      on ? "start" : "stop", i, strerror(errno));
			return -1;
		}
		if (vm->ram[i].size > most)
			most = vm->ram[i].size;
	}
	free(vm->dirty_bits);
	vm->dirty_bits = NULL;
	if (on)
		vm->dirty_bits = calloc((most / 4096 + 63) / 64, 8);
	return on && !vm->dirty_bits ? -1 : 0;
}

void kvm_vm_dirty_sync(struct kvm_vm *vm)
{
	for (unsigned i = 0; vm->dirty_bits && i < vm->nslots; i++) {
		uint64_t pages = vm->ram[i].size / 4096, words = (pages + 63) / 64;
		struct kvm_dirty_log log = { .slot = i, .dirty_bitmap = vm->dirty_bits };

		if (kvm_ioctl(vm->fd, KVM_GET_DIRTY_LOG, &log)) {
			/* nothing known: every page may be dirty */
			vm->host->mem_dirty(vm->inst, vm->ram[i].gpa, vm->ram[i].size);
			continue;
		}
		for (uint64_t w = 0; w < words; w++) {
			uint64_t b = vm->dirty_bits[w];
			while (b) {
				unsigned k = (unsigned)__builtin_ctzll(b);
				b &= b - 1;
				vm->host->mem_dirty(vm->inst, vm->ram[i].gpa + (w * 64 + k) * 4096, 4096);
			}
		}
	}
}

/* core/memory.h: RAM below the PCI hole at memfd offset 0, the rest from
 * 4 GiB. One slot each, so a snapshot's memory image is the slots. */
int kvm_vm_map_guest_ram(struct kvm_vm *vm, char *err, size_t len)
{
	uint64_t size = vm->host->mem_size(vm->inst);
	uint64_t low = size < KVM_PCI_HOLE ? size : KVM_PCI_HOLE;
	uint64_t high = size - low;
	void *p;

	p = vm->host->mem_ptr(vm->inst, 0, low);
	if (!p || kvm_vm_add_ram(vm, 0, p, low, err, len))
		return p ? -1 : kvm_err(err, len, "guest RAM below 3 GiB is not one mapping");
	if (!high)
		return 0;
	p = vm->host->mem_ptr(vm->inst, KVM_4G, high);
	if (!p || kvm_vm_add_ram(vm, KVM_4G, p, high, err, len))
		return p ? -1 : kvm_err(err, len, "guest RAM above 4 GiB is not one mapping");
	return 0;
}

/* A level-triggered interrupt from the IOAPIC plugin must hear the guest's
 * EOI to clear Remote IRR. With a split irqchip KVM reports an EOI to user
 * space (KVM_EXIT_IOAPIC_EOI, passed on with host->eoi_broadcast) only for
 * vectors it finds in MSI routes on the reserved IOAPIC GSIs, so each level
 * message seen gets such a route. */
static void route_level(struct kvm_vm *vm, uint64_t addr, uint32_t data)
{
	struct {
		struct kvm_irq_routing head;
		struct kvm_irq_routing_entry e[KVM_IOAPIC_ROUTES];
	} table;
	struct kvm_irq_routing_entry *r;
	unsigned slot;

	pthread_mutex_lock(&vm->route_lock);
	for (unsigned i = 0; i < vm->nroutes; i++) {
		r = &vm->routes[i];
		if (r->u.msi.address_lo == (uint32_t)addr &&
		    r->u.msi.address_hi == (uint32_t)(addr >> 32) &&
		    r->u.msi.data == data)
			goto out;
	}
	slot = vm->nroutes < KVM_IOAPIC_ROUTES ? vm->nroutes++ :
		vm->route_next++ % KVM_IOAPIC_ROUTES;
	vm->routes[slot] = (struct kvm_irq_routing_entry){
		.gsi = slot, .type = KVM_IRQ_ROUTING_MSI,
		.u.msi = { .address_lo = (uint32_t)addr,
			   .address_hi = (uint32_t)(addr >> 32), .data = data },
	};
	memset(&table, 0, sizeof(table));
	table.head.nr = vm->nroutes;
	memcpy(table.e, vm->routes, vm->nroutes * sizeof(table.e[0]));
	if (kvm_ioctl(vm->fd, KVM_SET_GSI_ROUTING, &table))
		vm->host->log(vm->inst, MODVM_LOG_WARN,
			      "KVM_SET_GSI_ROUTING: %s: level interrupts may not see their EOI",
			      strerror(errno));
out:
	pthread_mutex_unlock(&vm->route_lock);
}

void kvm_vm_deliver_msi(struct kvm_vm *vm, uint64_t addr, uint32_t data)
{
	struct kvm_msi msi = {
		.address_lo = (uint32_t)addr, .address_hi = (uint32_t)(addr >> 32),
		.data = data,
	};

	if (vm->cfg.irqchip != KVM_IRQCHIP_SPLIT || !vm->cap_msi) {
		if (!atomic_exchange(&vm->warned_msi, true))
			vm->host->log(vm->inst, MODVM_LOG_WARN,
				      "MSI 0x%llx/0x%x dropped: irqchip = \"none\" has no local "
				      "APIC (use irqchip = \"split\" for the IOAPIC and MSIs)",
				      (unsigned long long)addr, data);
		return;
	}
	if (data & MSI_DATA_TRIGGER_LEVEL)
		route_level(vm, addr, data);
	if (kvm_ioctl(vm->fd, KVM_SIGNAL_MSI, &msi) < 0)
		vm->host->log(vm->inst, MODVM_LOG_WARN, "KVM_SIGNAL_MSI 0x%llx/0x%x: %s",
			      (unsigned long long)addr, data, strerror(errno));
}
