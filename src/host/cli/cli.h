/* What every command shares on the command line (cli.c). */
#pragma once

#include "error.h"
#include "opts.h"

/* getopt_long's usage error for a command, on stderr. Returns 2, the exit
 * status of a usage error. */
int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A command's failure: hands *ERR over to *OUT (the first one is kept) and
 * returns 1, the exit status of a failed command. */
int cli_fail(struct error **out, struct error **err);
/* The same for a message made here. */
int cli_failf(struct error **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints the error once, to stderr and to --log in the chosen format: main()
 * does, for the error a command returned. */
void report_error(struct global_opts *g, const char *msg);
