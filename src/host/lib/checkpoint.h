/* Checkpoint, in the host library (checkpoint.c). cmd-checkpoint.c parses
 * the options and calls one of these. */
#pragma once

#include "opts.h"
#include "proto.h"

#include <stdbool.h>

/* What a checkpoint tells its user, for the CLI to print on stdout: per
 * container a summary of two lines and, with print_stats, one "stats:" JSON
 * line, appended in the order the checkpoints ran (a pod's members first).
 * The library prints nothing itself. The caller frees text. */
struct checkpoint_report {
	char *text; /* NULL until a line is added */
};

struct checkpoint_options {
	const char *image_path;
	const char *work_path;
	const char *parent_path;
	bool leave_running;
	bool pre_dump;
	bool print_stats;
	Cocoon__CheckpointRoute bench_route;
	Cocoon__CriuOptions criu;
	bool pod;			  /* the whole pod of this sandbox (docs/pods.md) */
	bool shm_second_try;		  /* set: /dev/shm changed during the first dump */
	bool staged_beside;		  /* the images were written beside --image-path */
	struct checkpoint_report *report; /* out, or NULL: the lines for the user */
};

/* Checkpoints container ID as O says: the dump in its VM, the images
 * verified and published at o->image_path, the container then left
 * running, paused or killed (runc's rules). Returns 0, or a negative errno
 * with *ERR set; a failed checkpoint leaves the container as it was. */
int checkpoint_container(struct global_opts *g, const char *id, struct checkpoint_options *o,
			 struct error **err);

/* For checkpoint-pod.c, which checkpoints a pod's containers one by one. */

/* DEST must be absent or an empty directory: a non-empty one is not ours to
 * overwrite. Returns 0, or a negative errno with *ERR set. */
int checkpoint_check_destination(const char *dest, struct error **err);
/* After a checkpoint without --leave-running: container ID ends (as under
 * runc, waited for up to 20 s) when KILL_IT, its images being safe, or is
 * thawed when they are not. Best effort: the checkpoint's own result is
 * what is reported. */
void checkpoint_thaw_or_kill(struct global_opts *g, const char *id, bool kill_it);
