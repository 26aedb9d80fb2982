/* CPUID leaves of a CPU model (<modvm/cpu.h>), as every engine reads them. */
#ifndef MODVM_PLUGIN_LIB_CPU_MODEL_H
#define MODVM_PLUGIN_LIB_CPU_MODEL_H

#include <stdint.h>

#include <modvm/cpu.h>

/* The leaf a guest's CPUID(function, index) reads from model m: the first
 * entry of that function whose index matches, or that ignores the index
 * (no MODVM_CPUID_SIGNIFICANT_INDEX). NULL when m has none (or m is NULL,
 * or m is the host model, which has no leaves). */
const struct modvm_cpuid_leaf *cpuid_model_leaf(const struct modvm_cpu_model *m,
						uint32_t function, uint32_t index);

#endif
