#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "proto.h"

struct agent_container;

/* Refuses, before anything is frozen, a checkpoint that would lose a
 * process or trip CRIU: a process outside the init's tree, an exec on a
 * terminal of its own, a mount option CRIU 3.17 does not know, a deleted
 * file or directory of a 9p share (the rootfs or a volume) held as a cwd,
 * root, exe, mapping or fd by any process of the container's cgroup or its
 * sub-cgroups. Fills *err (naming the thing and what to do) and returns a
 * negative errno (-EBUSY, -EOPNOTSUPP; -ELOOP, -ENOMEM when the processes
 * cannot be listed). */
int ckpt_precheck(const struct agent_container *c, struct error **err);
/* CRIU's key for a tty, "tty[rdev:dev]" in hex (criu/tty.c), fits this. */
#define CKPT_TTY_KEY_MAX 48
/* The keys of every /dev/tty (5:0) a process of the container holds open,
 * distinct, up to max of them; returns how many there are (maybe more than
 * max), or a negative errno when they cannot be listed. An interactive shell opens /dev/tty for job
 * control; CRIU 3.17 can dump it only as a pty's peer it also dumps, or as external (tty.c,
 * tty_verify_ctty), and the container's pty is the agent's. */
int ckpt_ctty_keys(const struct agent_container *c, char keys[][CKPT_TTY_KEY_MAX], size_t max);
/* CRIU's ghost-file limit when nothing sets it, in bytes
 * (criu/include/cr_options.h: DEFAULT_GHOST_LIMIT, 1 MiB). */
#define CRIU_GHOST_LIMIT_DEFAULT (1ULL << 20)
/* The ghost-file limit a dump with the user's settings o (may be NULL) runs
 * under, as text for a message: its bytes and where it comes from. */
void ckpt_ghost_limit(const Cocoon__CriuOptions *o, char *out, size_t size);
/* A CRIU error line turned into what the user can do about it; limit is
 * ckpt_ghost_limit's text for the run. */
bool ckpt_explain_criu_error(const char *line, const char *limit, char *out, size_t size);
