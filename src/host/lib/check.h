/* cocoon check in the host library (check.c): boots a VM and reports
 * whether containers and checkpoints can work on this host (check_run),
 * through the probes below: what a booted sandbox's agent says about the
 * guest, and the shared directory's round trip. The command prints the
 * report's lines (cli/cmd-check.c); this file prints nothing. */
#pragma once

#include "error.h"
#include "opts.h"
#include "proto.h"
#include "sandbox.h"

#include <stdbool.h>

/* One line of the report, in order. NAME is the item ("accel", "criu",
 * ...; "" for a CHECK_MORE line), TEXT what was found; both are the
 * library's until the callback returns. Every text from the guest is made
 * safe for a terminal first. */
enum check_kind {
	CHECK_TITLE, /* the report's first line: TEXT alone */
	CHECK_OK,    /* an item that works, or a fact about one */
	CHECK_FAIL,  /* an item that cannot work: counted in failures */
	CHECK_MORE,  /* one more line of the item above (criu check's lines) */
	CHECK_BLOCK, /* a block of text NAME introduces (criu check's output) */
};
struct check_line {
	enum check_kind kind;
	const char *name, *text;
};
typedef void (*check_emit_fn)(void *ctx, const struct check_line *line);

struct check_result {
	int failures; /* CHECK_FAIL lines */
	bool booted;  /* false: the VM did not boot, the one failure is "boot" */
};

/* The whole check with G's configuration, in a VM under G->root
 * (check-<pid>, removed after): EMIT gets each line as it is known (the
 * boot takes seconds), *RES the outcome. Returns 0 once a report was made,
 * failures or not, or a negative errno with *ERR when none could be (the
 * state directory, the accelerator). */
int check_run(const struct global_opts *g, check_emit_fn emit, void *ctx, struct check_result *res,
	      struct error **err);

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
