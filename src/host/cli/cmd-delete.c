/* delete: stops the VM (with --force, or for a container never started) and
 * removes every trace of the container on the host. */
#include "commands.h"
#include "container.h"

#include <getopt.h>
#include <stdio.h>

int cmd_delete(struct global_opts *g, int argc, char **argv, struct error **errp)
{
	static const struct option opts[] = {
		{"force", no_argument, NULL, 'f'}, {"help", no_argument, NULL, 'h'}, {}};
	_cleanup_error_ struct error *err = NULL;
	bool force = false;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "fh", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			force = true;
			break;
		case 'h':
			printf("Usage: cocoon delete [--force] CONTAINER_ID\n\n"
			       "Removes a stopped or created container. --force stops a running one\n"
			       "first: its VM is destroyed.\n");
			return 0;
		default:
			return 2;
		}
	}
	if (optind != argc - 1)
		return usage_error("delete", "expects exactly one container ID");
	if (container_delete(g, argv[optind], force, &err) < 0)
		return cli_fail(errp, &err);
	return 0;
}
