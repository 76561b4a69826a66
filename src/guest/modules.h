/* Kernel modules (modules.c): the boot set now, the late set in a job. */
#pragma once

#include "agent.h"

void agent_load_modules(struct agent *a, const char *list_path);
/* Starts loading the late modules in a job; a->late_modules_done runs
 * once they are in. */
void agent_load_late_modules(struct agent *a);
int load_late_modules_main(const char *list_path);
/* Loads the late modules in this process, before answering. */
void agent_load_late_modules_now(struct agent *a);
