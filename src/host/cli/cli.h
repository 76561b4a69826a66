/* What every command shares on the command line (cli.c). */
#pragma once

#include "opts.h"

/* getopt_long's usage error for a command, on stderr. Returns 2, the exit
 * status of a usage error. */
int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints the error once, to stderr and to --log in the chosen format. */
void report_error(struct global_opts *g, const char *msg);
