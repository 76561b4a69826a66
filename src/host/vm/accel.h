/* Choosing between KVM and TCG (accel.c). */
#pragma once

#include "config.h"
#include "error.h"

#include <stdbool.h>
#include <stdio.h>

/* How long the probe waits for the agent of a guest booted under KVM. */
#define ACCEL_PROBE_TIMEOUT_MS 3000

/* Boots the guest under KVM once: *WORKS says whether its agent answered
 * within ACCEL_PROBE_TIMEOUT_MS, *WHY (the caller frees it) why not. Returns
 * 0, or a negative errno with *ERR when it could not even try. The sandbox
 * layer provides it (sandbox_probe_kvm), so that this file stays below it. */
typedef int (*accel_probe_fn)(const struct cocoon_config *cfg, bool *works, char **why,
			      struct error **err);

/* Resolves cfg->accel to "kvm" or "tcg" into OUT. For "auto" it runs
 * PROBE_KVM, once per host, kernel and QEMU, and caches the answer in
 * cache_dir()/accel-probe. *NOTE (when NOTE is given; the caller frees it)
 * says why KVM is not used. Returns 0 or a negative errno with *ERR set. */
int accel_resolve(const struct cocoon_config *cfg, char out[8], char **note,
		  accel_probe_fn probe_kvm, struct error **err);

/* Where accel_host_cpu reads the host's CPU: /proc/cpuinfo. Unit tests
 * point it at a fake one (tests/unit/test-template.c). */
extern const char *accel_cpuinfo_path;

/* The host CPU as a guest under KVM sees it: QEMU's "-cpu host" passes the
 * host's model and features (those KVM supports) through, so a VM state
 * saved on one CPU model may not run on another (a guest whose kernel
 * patched itself for an instruction the new CPU lacks takes #UD, or QEMU
 * refuses the state's XSAVE layout). Under TCG the CPU is QEMU's "max" on
 * every host, fixed by the command line. Appends one line to f:
 *   host-cpu=<vendor_id> family <cpu family> model <model> stepping
 *   <stepping> '<model name>' flags <count> fnv1a <hash of the flags line>
 * from the first processor in accel_cpuinfo_path (the flags hashed, not
 * written out: some 1.5 KB that a refusal could not show anyway).
 * 0, or EINVAL naming the file when it cannot be read or lacks a field. */
int accel_host_cpu(FILE *f, struct error **err);
