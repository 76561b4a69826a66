/* Connecting to a container's shim (shim-client.c). */
#pragma once

#include "error.h"

struct agent_client;
/* Connects C to the shim of container ID, whose state directory is DIR: 0,
 * or -ESRCH ("not running") when no shim listens, another negative errno
 * otherwise, with *ERR set. */
int shim_connect(const char *dir, const char *id, struct agent_client *c, struct error **err);
