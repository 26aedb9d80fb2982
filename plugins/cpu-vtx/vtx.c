/* cpu-vtx: runs the guest on an Intel CPU with VT-x through Linux KVM. All
 * of the work is in the shared KVM layer (plugins/kvm); this file says what
 * is Intel's: the vendor, the CPUID bit of the extension, and the TSS and
 * identity-map pages VT-x needs for real mode without unrestricted guest.
 */
#include <modvm/modvm.h>

#include "kvm.h"

static const struct kvm_vendor vtx = {
	.engine = "cpu-vtx",
	.vendor_id = "GenuineIntel",
	.needs = "an Intel CPU with VT-x",
	.hw_flag = "vmx",
	.other_engine = "cpu-svm",
	.hw_leaf = 1,          /* ECX[5] VMX (SDM vol. 2A, CPUID leaf 01H) */
	.hw_bit = 5,
	.needs_tss = true,
};

static int vtx_probe(char *why, size_t len)
{
	return kvm_probe(&vtx, KVM_DEVICE_PATH, why, len);
}

static void *vtx_vm_create(const struct modvm_host *host, modvm_inst *inst,
			   unsigned ncpus)
{
	return kvm_engine_vm_create(&vtx, host, inst, ncpus);
}

static const struct modvm_cpu_engine_ops ops = KVM_ENGINE_OPS(vtx_probe, vtx_vm_create);

MODVM_PLUGIN_DEFINE(.kind = MODVM_KIND_CPU_ENGINE, .name = "cpu-vtx",
		    .version = "1.0.0",
		    .description = "Hardware engine for Intel VT-x hosts, through Linux KVM",
		    .props = kvm_engine_props, .ops = &ops);
