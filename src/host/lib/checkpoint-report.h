/* What a checkpoint tells its user (checkpoint-report.c): lines appended to
 * o->report (struct checkpoint_report, checkpoint.h), which the CLI prints.
 * The library prints nothing itself. */
#pragma once

#include "checkpoint.h"

/* Appends a printf-formatted line to o->report (when there is one). Out of
 * memory, the line is lost: it is only what the user is told. */
void checkpoint_report_add(const struct checkpoint_options *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* --print-stats (o->print_stats; else nothing): one "stats:" JSON line of
 * rep's figures, total_ms and dest, for scripts and make bench. */
void checkpoint_report_stats(const struct checkpoint_options *o, const Cocoon__CheckpointReply *rep,
			     long long total_ms, const char *dest);
