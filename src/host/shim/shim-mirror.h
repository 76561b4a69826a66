/* The shim's part of the engines' stats (cgroup-mirror.h): the container's
 * host cgroup, and its figures from the guest every CGMIRROR_INTERVAL_MS. */
#pragma once

#include "shim-state.h"

/* Made in the host's mount namespace, before volumes_setup gives the shim
 * its own. Without it the container runs all the same; the engines' stats
 * then show the host's figures (a warning says so). */
void shim_mirror_setup(struct shim *s);

/* The shim into the container's host cgroup, once QEMU is running outside
 * it. A failure is a warning. */
void shim_mirror_join(struct shim *s);

/* The container's init ended: the OOM kills of its cgroup since the last
 * tick go to the engines before its exit does (conmon reads its OOM mark
 * when it writes the exit file). The guest removes the cgroup at that exit,
 * so the count comes with the exit event. */
void shim_mirror_exit(struct shim *s, uint64_t oom_kill);

/* Asks the guest for the container's figures, without waiting: the answer
 * goes into the mirror through shim_mirror_reply(). Skipped while a
 * checkpoint runs (the agent is busy with it), once the container is gone,
 * and while the last ask is unanswered and younger than CGMIRROR_REPLY_MS.
 * Sets s->mirror_next_ms to the next tick. */
void shim_mirror_tick(struct shim *s);

/* R, a reply from the agent: true when it answers the last tick's ask
 * (then taken into the mirror, or dropped when it is an error), false when
 * it is another's. */
bool shim_mirror_reply(struct shim *s, const Cocoon__Response *r);
