#pragma once
#include "vm.h"

/* The cocoon-agent binary the fake backend runs. */
extern const char *fake_vm_agent_path;
extern const struct vm_backend vm_backend_fake;
