/* create, start and run: runc's container start-up, split or in one go. */
#include "commands.h"
#include "cleanup.h"
#include "container.h"
#include "container-create.h"

#include <getopt.h>
#include <string.h>

static void create_usage(const char *cmd)
{
	printf("Usage: cocoon %s [options] CONTAINER_ID\n"
	       "\n"
	       "%s\n"
	       "\n"
	       "  -b, --bundle DIR         the OCI bundle (default: current directory)\n"
	       "      --pid-file FILE      write the shim's pid here\n"
	       "      --console-socket S   send the pty master here (process.terminal)\n"
	       "%s",
	       cmd,
	       strcmp(cmd, "run") == 0
		       ? "Creates and starts a container in its own VM. Without --detach, waits for it\n"
			 "and exits with its exit status."
		       : "Creates a container in its own VM, stopped before its process runs;\n"
			 "'cocoon start' runs it. The pid written to --pid-file is the shim's: it\n"
			 "exits with the container's exit status.",
	       strcmp(cmd, "run") == 0
		       ? "  -d, --detach             do not wait for the container\n"
		       : "");
}

static int create_or_run(struct global_opts *g, int argc, char **argv, bool run,
			 struct error **errp)
{
	static const struct option opts[] = {{"bundle", required_argument, NULL, 'b'},
					     {"pid-file", required_argument, NULL, 'p'},
					     {"console-socket", required_argument, NULL, 'c'},
					     {"detach", no_argument, NULL, 'd'},
					     {"no-pivot", no_argument, NULL, 'N'},
					     {"no-new-keyring", no_argument, NULL, 'N'},
					     {"no-subreaper", no_argument, NULL, 'N'},
					     {"preserve-fds", required_argument, NULL, 'P'},
					     {"keep", no_argument, NULL, 'N'},
					     {"help", no_argument, NULL, 'h'},
					     {}};
	const char *cmd = run ? "run" : "create";
	struct create_options o = {0};
	_cleanup_error_ struct error *err = NULL;
	bool detach = false;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "b:dh", opts, NULL)) != -1) {
		switch (c) {
		case 'b':
			o.bundle = optarg;
			break;
		case 'p':
			o.pid_file = optarg;
			break;
		case 'c':
			o.console_socket = optarg;
			break;
		case 'd':
			detach = true;
			break;
		case 'N':
			break; /* runc options with no meaning inside a VM */
		case 'P':
			if (strcmp(optarg, "0") != 0)
				return usage_error(cmd, "--preserve-fds is not supported");
			break;
		case 'h':
			create_usage(cmd);
			return 0;
		default:
			return 2;
		}
	}
	if (optind != argc - 1)
		return usage_error(cmd, "expects exactly one container ID");
	const char *id = argv[optind];
	pid_t shim;
	if ((run ? container_run(g, id, &o, &shim, &err)
		 : container_create(g, id, &o, &shim, &err)) < 0) {
		error_wrap(&err, "%s %s", cmd, id);
		return cli_fail(errp, &err);
	}
	if (!run)
		return 0;
	if (detach)
		return 0;
	return container_wait_foreground(shim);
}

int cmd_create(struct global_opts *g, int argc, char **argv, struct error **errp)
{
	return create_or_run(g, argc, argv, false, errp);
}

int cmd_run(struct global_opts *g, int argc, char **argv, struct error **errp)
{
	return create_or_run(g, argc, argv, true, errp);
}

int cmd_start(struct global_opts *g, int argc, char **argv, struct error **errp)
{
	_cleanup_error_ struct error *err = NULL;

	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		printf("Usage: cocoon start CONTAINER_ID\n\nRuns the process of a created container.\n");
		return 0;
	}
	if (argc != 2)
		return usage_error("start", "expects exactly one container ID");
	if (container_start(g, argv[1], &err) < 0) {
		error_wrap(&err, "start %s", argv[1]);
		return cli_fail(errp, &err);
	}
	return 0;
}
