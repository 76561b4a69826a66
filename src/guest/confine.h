/* The container's root is not the guest's root: capabilities, seccomp,
 * masked and read-only paths, applied inside the guest as runc applies them
 * on a host. All of these run in the container's child, before exec, and
 * return 0 or a negative errno with *ERR naming the field and the cause. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include "error.h"
#include "proto.h"

/* After pivot_root: linux.maskedPaths, then linux.readonlyPaths. */
int confine_paths(const Cocoon__ContainerSpec *s, struct error **err);

/* Before setuid(): drops the bounding set and keeps the capabilities across
 * the change of uid. c == NULL (no process.capabilities) changes nothing. */
int confine_caps_bound(const Cocoon__Capabilities *c, struct error **err);
/* After setuid(): the effective, permitted, inheritable and ambient sets. */
int confine_caps_apply(const Cocoon__Capabilities *c, struct error **err);

/* Builds linux.seccomp with libseccomp and loads it into the calling
 * process. NULL loads nothing. */
int confine_seccomp_load(const Cocoon__Seccomp *sc, struct error **err);

/* CRIU's --external entries for masked paths, written as config-file lines
 * ("external mnt[...]:..."): at dump, each masked file the container's init
 * (pid) has mounted over is external, keyed by its index; at restore, every
 * key maps to the guest's /dev/null, and each masked directory to an empty
 * read-only tmpfs (unused keys are ignored by CRIU). Returns the number of
 * lines written, or a negative errno when that tmpfs cannot be made or a
 * masked path is too long to look at (-ENAMETOOLONG). */
int confine_criu_externals(FILE *conf, pid_t pid, char *const *masked, size_t n_masked, bool dump);
