/* The hostile guest's parts (hostile-vmm.c): its mode and paths, and the
 * floods and attacks that run beside the protocol (hostile-floods.c).
 * Test-only; never in the image. */
#pragma once

#include <stdbool.h>

/* HOSTILE_MODE, HOSTILE_CANARY, and the paths QEMU's command line names. */
extern const char *mode, *canary, *shared, *console, *volumes;

bool is(const char *m);
/* Appends WHAT and ARG as a line to HOSTILE_LOG. */
void note(const char *what, const char *arg);

void fill_shared(void);
void flood_stderr(void);
void flood_console(void);
void attack_volumes(void);
