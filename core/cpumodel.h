/* CPU models: named CPUID tables the config chooses with cpu.model. */
#ifndef MODVM_CORE_CPUMODEL_H
#define MODVM_CORE_CPUMODEL_H

#include <modvm/cpu.h>

extern const struct modvm_cpu_model *const cpu_models[]; /* NULL-terminated */
const struct modvm_cpu_model *cpu_model_find(const char *name);

#endif
