/* What every command shares on the command line (cli.h). */
#include "cli.h"
#include "log.h"

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
