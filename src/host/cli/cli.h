/* What every command shares on the command line (cli.c). */
#pragma once

#include "error.h"
#include "opts.h"
#include "proto.h"

#include <stdbool.h>

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

/* The CRIU options checkpoint and restore both take, by runc's names: in a
 * command's getopt_long table as CLI_CRIU_OPTIONS, and handled by
 * cli_criu_option() from the switch's default. */
enum { CLI_CRIU_TCP = 512, CLI_CRIU_EXT, CLI_CRIU_SHELL, CLI_CRIU_LOCKS };
/* clang-format off */
#define CLI_CRIU_OPTIONS                                                                           \
	{"tcp-established", no_argument, NULL, CLI_CRIU_TCP},                                      \
	{"ext-unix-sk", no_argument, NULL, CLI_CRIU_EXT},                                          \
	{"shell-job", no_argument, NULL, CLI_CRIU_SHELL},                                          \
	{"file-locks", no_argument, NULL, CLI_CRIU_LOCKS}
/* clang-format on */
/* Sets in CRIU the option getopt_long returned as C. False when C is not
 * one of CLI_CRIU_OPTIONS. */
bool cli_criu_option(int c, Cocoon__CriuOptions *criu);
