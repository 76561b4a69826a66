/* The shim's start-up (shim-setup.c). */
#pragma once

#include "shim-state.h"

/* Sets up S from its args: stdio, control socket, VM, the container.
 * Returns 0, or a negative errno with *ERR set. */
int shim_setup(struct shim *s, struct error **err);
