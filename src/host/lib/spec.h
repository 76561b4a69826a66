/* Reading an OCI bundle's config.json into the structured subset the guest
 * understands. Every field cocoon does not honour gets a warning or an error
 * that names it; nothing is ignored silently. */
#pragma once

#include <stdbool.h>

#include "error.h"
#include "proto.h"
#include "spec-bundle.h"
/* The spec's parts, each parsed in its own file (spec-*.c). */
#include "spec-confine.h"
#include "spec-json.h"
#include "spec-process.h"
#include "spec-resources.h"

/* Parses bundle/config.json for container id. */
int spec_load(const char *bundle, const char *id, struct oci_bundle *out, struct error **err);
/* spec_load() on text already read: the NUL-terminated config.json text
 * (at most SPEC_MAX_BYTES is the caller's check). bundle_dir is the bundle's
 * absolute, resolved path (root.path is relative to it); source names the
 * text in errors. On error *out holds what was parsed; spec_free() it. */
int spec_parse(const char *bundle_dir, const char *source, const char *text, const char *id,
	       struct oci_bundle *out, struct error **err);
void spec_free(struct oci_bundle *b);
/* True when the spec asks for a new network namespace and names none (no
 * path, not the pod's): plain `ctr run`, podman with --uidmap or
 * --userns=auto. Under runc the runtime makes that namespace, and an engine
 * may configure it through /proc/<pid>/ns/net of the pid the runtime
 * reports, so the shim (that pid) moves into a new one of its own
 * (network_unshare, docs/networking.md). */
bool spec_wants_new_netns(const struct oci_bundle *b);
/* True when, besides (spec_wants_new_netns), the spec asks for a user
 * namespace: podman 4.3 with --uidmap or --userns=auto, which configures the
 * network in the reported pid's namespace after `create` (its
 * PostConfigureNetNS). The VM then boots with a NIC reserved for what the
 * engine puts there (network_reserve). Plain `ctr run` has no user
 * namespace and gets none: nothing would configure it, and with VM
 * templates a VM with a NIC has a template of its own (docs/networking.md,
 * "configured after create"). */
bool spec_wants_late_network(const struct oci_bundle *b);
