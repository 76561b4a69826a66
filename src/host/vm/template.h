/* VM templates (template.c, docs/performance.md "VM templates"): a booted,
 * idle VM saved once per image and VM shape, from which later VMs start
 * copy-on-write instead of booting. */
#pragma once

#include "agent-client.h"
#include "error.h"
#include "vm.h"

/* The key of the template for spec: its shape and the identity of every
 * input. Two specs share a template exactly when their keys are equal. */
int template_key(const struct vm_spec *spec, char **key, struct error **err);
/* Where templates live: the configured directory, else <cache>/templates. */
char *template_base_dir(const char *configured);
/* Where the template of key lives: <base>/<hash of key>. */
int template_dir_for(const char *base, const char *key, char **dir, struct error **err);
/* Makes sure dir holds the template of key, building it (one boot) when it
 * is missing or was built from anything else. */
int template_build(const char *base, const struct vm_spec *spec, const char *key, const char *dir,
		   int timeout_ms, struct error **err);
/* Starts a VM for spec from the template in dir and resumes its agent on
 * the channel; the agent is ready when this returns 0. Its NICs, on
 * spec's taps, have the template's placeholder MACs whatever spec->net_macs
 * says (network_placeholder_mac): the caller has the agent give each the
 * engine's MAC (network_placeholders). */
int template_start(struct vm *vm, struct agent_client *agent, const struct vm_spec *spec,
		   const char *dir, const char *qmp_path, int timeout_ms, struct error **err);
/* A VM started from a saved state (a template, or with WHOLE_VM a whole-VM
 * checkpoint, vmsnap.h): its agent gets a new seed for its RNG (a state may
 * be started more than once) and the host's clock (the guest's came back as
 * it was). */
int template_resume_agent(struct agent_client *c, bool whole_vm, int timeout_ms,
			  struct error **err);
