/* Choosing between KVM and TCG (accel.c). */
#pragma once

#include "config.h"
#include "error.h"

#include <stdbool.h>

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
