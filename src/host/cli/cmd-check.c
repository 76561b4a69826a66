/* cocoon check: boots a VM and reports whether containers and checkpoints
 * can work on this host, naming every item that cannot. The check is the
 * library's (check.h: check_run); this prints its lines and the result. */
#include "check.h"
#include "commands.h"
#include "cleanup.h"

#include <stdio.h>
#include <string.h>

/* One line of the report, as the library finds it (check.h). */
static void print_line(void *ctx, const struct check_line *l)
{
	(void)ctx;
	switch (l->kind) {
	case CHECK_TITLE:
		printf("%s\n", l->text);
		break;
	case CHECK_OK:
		printf("  %-14s %s\n", l->name, l->text);
		break;
	case CHECK_FAIL:
		printf("  %-14s FAIL: %s\n", l->name, l->text);
		break;
	case CHECK_MORE:
		printf("  %-14s   %s\n", l->name, l->text);
		break;
	case CHECK_BLOCK:
		printf("--- %s ---\n%s---\n", l->name, l->text);
		break;
	}
	(void)fflush(stdout); /* the boot takes seconds: show what is known */
}

static void check_usage(void)
{
	printf("Usage: cocoon check\n"
	       "\n"
	       "Boots a VM with the configured kernel and image, talks to its agent and\n"
	       "prints a readiness report: acceleration, boot time, guest kernel, CRIU\n"
	       "version, `criu check`, and the shared directory. Exits 1 when any item\n"
	       "fails, naming it.\n");
}

int cmd_check(struct global_opts *g, int argc, char **argv, struct error **errp)
{
	_cleanup_error_ struct error *err = NULL;
	struct check_result res;

	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		check_usage();
		return 0;
	}
	if (argc > 1)
		return usage_error("check", "unexpected argument '%s'", argv[1]);
	if (check_run(g, print_line, NULL, &res, &err) < 0)
		return err ? cli_fail(errp, &err) : cli_failf(errp, "out of memory");
	if (!res.booted) {
		printf("result: NOT READY (1 failure: boot)\n");
		return 1;
	}
	if (res.failures) {
		printf("result: NOT READY (%d failure%s, marked FAIL above)\n", res.failures,
		       res.failures == 1 ? "" : "s");
		return 1;
	}
	printf("result: ready\n");
	return 0;
}
