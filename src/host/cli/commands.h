/* One file per command (cmd-*.c), each parsing its own options, calling
 * down into the host library and returning its error to main() (cocoon.c),
 * which reports it once. */
#pragma once

#include <stdbool.h>

#include "cli.h"
#include "config.h"
#include "opts.h"

struct command {
	const char *name;
	const char *summary;
	/* Returns the exit status; on failure *err says why, and main()
	 * reports it once (cli.h). */
	int (*run)(struct global_opts *g, int argc, char **argv, struct error **err);
};

int cmd_check(struct global_opts *g, int argc, char **argv, struct error **err);
int cmd_create(struct global_opts *g, int argc, char **argv, struct error **err);
int cmd_start(struct global_opts *g, int argc, char **argv, struct error **err);
int cmd_run(struct global_opts *g, int argc, char **argv, struct error **err);
int cmd_state(struct global_opts *g, int argc, char **argv, struct error **err);
int cmd_list(struct global_opts *g, int argc, char **argv, struct error **err);
int cmd_kill(struct global_opts *g, int argc, char **argv, struct error **err);
int cmd_pause(struct global_opts *g, int argc, char **argv, struct error **err);
int cmd_resume(struct global_opts *g, int argc, char **argv, struct error **err);
int cmd_exec(struct global_opts *g, int argc, char **argv, struct error **err);
int cmd_ps(struct global_opts *g, int argc, char **argv, struct error **err);
int cmd_delete(struct global_opts *g, int argc, char **argv, struct error **err);
int cmd_spec(struct global_opts *g, int argc, char **argv, struct error **err);
int cmd_features(struct global_opts *g, int argc, char **argv, struct error **err);
int cmd_checkpoint(struct global_opts *g, int argc, char **argv, struct error **err);
int cmd_restore(struct global_opts *g, int argc, char **argv, struct error **err);
int cmd_update(struct global_opts *g, int argc, char **argv, struct error **err);
int cmd_events(struct global_opts *g, int argc, char **argv, struct error **err);
int cmd_image(struct global_opts *g, int argc, char **argv, struct error **err);
