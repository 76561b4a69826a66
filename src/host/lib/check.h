/* cocoon check's probes in the host library (check.c): what a booted
 * sandbox's agent says about the guest, and the shared directory's round
 * trip. The command prints the report (cli/cmd-check.c). */
#pragma once

#include "error.h"
#include "proto.h"
#include "sandbox.h"

/* The agent's Version reply in *out (the caller's,
 * cocoon__response__free_unpacked; body version, its text made safe for a
 * terminal by agent_text_sanitize). Returns 0 or a negative errno with
 * *err set. */
int check_agent_version(struct sandbox *sb, Cocoon__Response **out, struct error **err);

/* The GuestInfo reply with `criu check` run, in *out (the caller's; body
 * guest_info). Every text in it comes from the guest and is made safe for
 * a terminal: the kernel release, CRIU's version and path, the check's
 * lines and each line of its output, the module failures. CRIU's check
 * takes a while under TCG: up to CHECK_GUEST_INFO_MS. Returns 0 or a
 * negative errno with *err set. */
#define CHECK_GUEST_INFO_MS 60000
int check_guest_info(struct sandbox *sb, Cocoon__Response **out, struct error **err);

/* The shared directory both ways: a token written here, which the agent
 * reads and writes back as probe.reply; that is read by fd with no link
 * followed (safefs.h) and compared. Returns 0, or a negative errno with
 * *err saying which way failed. */
int check_shared_dir(struct sandbox *sb, struct error **err);
