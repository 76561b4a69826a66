#pragma once
#include <stdbool.h>
#include <sys/types.h>

#include "contract.h"
#include "proto.h"

struct agent;
struct agent_container;

/* The agent runs itself under this name as CRIU's action script. */
#define CRIU_ACTION_NAME "criu-action"

/* Writes CRIU's --config file for a dump (of the tree of pid) or a restore
 * of container c at path, with the user's settings o->config. A restore, and
 * a dump with a fault to inject, get the action script. Returns 0 or a
 * negative errno. */
int criu_conf_write(const char *path, const struct agent *a, const struct agent_container *c,
		    pid_t pid, const Cocoon__CriuOptions *o, bool dump, const char *fault);

/* Fault injection for the e2e tests ("" for none), done by the action
 * script, which CRIU runs with the agent's environment: the agent puts the
 * fault in COCOON_FAULT_ENV for the CRIU job only. "STAGE:WHAT", STAGE a CRIU
 * action (post-dump, post-restore), WHAT "stall": the script makes
 * CRIU_FAULT_REACHED in the shared directory (the host's tests wait for it
 * before they act on the stalled run), then waits until CRIU is gone, so
 * CRIU waits on it, using no CPU and writing nothing, and the agent's
 * progress watch must end it; or (post-restore only) "kill":
 * the script SIGKILLs the restored init before CRIU resumes the tree, as an
 * OOM kill would. True when FAULT is "" or one of those. */
#define CRIU_FAULT_REACHED "cocoon-fault-reached"
bool criu_fault_valid(const char *fault, bool dump);
/* The action script's main (argv[0] ends in CRIU_ACTION_NAME). */
int criu_action_main(void);
