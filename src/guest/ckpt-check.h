#pragma once
#include <stdbool.h>
#include <stddef.h>

struct agent_container;

/* Refuses a checkpoint that would lose a process or trip CRIU on a deleted
 * file of the 9p rootfs: fills msg and returns a negative errno. */
int ckpt_precheck(const struct agent_container *c, char *msg, size_t size);
/* A CRIU error line turned into what the user can do about it. */
bool ckpt_explain_criu_error(const char *line, char *out, size_t size);
