/* Printing plugin lists and plugin details for the command line. */
#ifndef MODVM_CORE_INSPECT_H
#define MODVM_CORE_INSPECT_H

#include <stdio.h>

#include "registry.h"

void print_plugins(const struct registry *r, FILE *out);
void print_inspect(const struct plugin *p, FILE *out);
void print_state_section(const struct modvm_state_section *s, FILE *out);

#endif
