/* cpu-svm: runs the guest on an AMD CPU with AMD-V through Linux KVM. All
 * of the work is in the shared KVM layer (plugins/kvm); this file says what
 * is AMD's: the vendor, and the CPUID bit of the extension.
 */
#include <modvm/modvm.h>

#include "kvm.h"

static const struct kvm_vendor svm = {
	.engine = "cpu-svm",
	.vendor_id = "AuthenticAMD",
	.needs = "an AMD CPU with AMD-V",
	.hw_flag = "svm",
	.other_engine = "cpu-vtx",
	.hw_leaf = 0x80000001, /* ECX[2] SVM (AMD APM vol. 3, CPUID Fn8000_0001) */
	.hw_bit = 2,
	.needs_tss = false,    /* SVM runs real mode natively */
};

static int svm_probe(char *why, size_t len)
{
	return kvm_probe(&svm, KVM_DEVICE_PATH, why, len);
}

static void *svm_vm_create(const struct modvm_host *host, modvm_inst *inst,
			   unsigned ncpus)
{
	return kvm_engine_vm_create(&svm, host, inst, ncpus);
}

static const struct modvm_cpu_engine_ops ops = KVM_ENGINE_OPS(svm_probe, svm_vm_create);

MODVM_PLUGIN_DEFINE(.kind = MODVM_KIND_CPU_ENGINE, .name = "cpu-svm",
		    .version = "1.0.0",
		    .description = "Hardware engine for AMD-V hosts, through Linux KVM",
		    .props = kvm_engine_props, .ops = &ops);
