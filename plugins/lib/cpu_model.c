/* CPUID leaf lookup in a CPU model, shared by cpu-bt and the KVM layer. */
#include "cpu_model.h"

const struct modvm_cpuid_leaf *cpuid_model_leaf(const struct modvm_cpu_model *m,
						uint32_t function, uint32_t index)
{
	for (uint32_t i = 0; m && m->leaves && i < m->nleaves; i++) {
		const struct modvm_cpuid_leaf *l = &m->leaves[i];
		if (l->function != function)
			continue;
		if ((l->flags & MODVM_CPUID_SIGNIFICANT_INDEX) && l->index != index)
			continue;
		return l;
	}
	return NULL;
}
