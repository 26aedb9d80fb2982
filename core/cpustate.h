/* The state description of the SDK's canonical vCPU state: one declaration
 * that drives snapshots of any engine and the text view cpus/N/regs. */
#ifndef MODVM_CORE_CPUSTATE_H
#define MODVM_CORE_CPUSTATE_H

#include <modvm/cpu.h>
#include <modvm/state.h>

extern const struct modvm_state_section cpu_state_section;

#endif
