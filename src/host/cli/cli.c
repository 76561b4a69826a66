/* What every command shares on the command line (cli.h). */
#include "cli.h"
#include "cleanup.h"
#include "log.h"

#include <errno.h>
#include <stdlib.h>

#include <stdarg.h>
#include <stdio.h>

int usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "cocoon %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see 'cocoon %s --help')\n", cmd);
	return 2;
}

void report_error(struct global_opts *g, const char *msg)
{
	log_error(msg);
}

int cli_fail(struct error **out, struct error **err)
{
	if (!*out)
		*out = TAKE_PTR(*err);
	return 1;
}

int cli_failf(struct error **out, const char *fmt, ...)
{
	_cleanup_free_ char *msg = NULL;
	va_list ap;

	if (*out)
		return 1;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	error_setx(out, EINVAL, "%s", msg ? msg : "out of memory");
	return 1;
}

bool cli_criu_option(int c, Cocoon__CriuOptions *criu)
{
	switch (c) {
	case CLI_CRIU_TCP:
		criu->tcp_established = true;
		return true;
	case CLI_CRIU_EXT:
		criu->ext_unix_sk = true;
		return true;
	case CLI_CRIU_SHELL:
		criu->shell_job = true;
		return true;
	case CLI_CRIU_LOCKS:
		criu->file_locks = true;
		return true;
	default:
		return false;
	}
}
