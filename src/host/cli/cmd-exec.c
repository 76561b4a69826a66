/* exec: an extra process in a running container, with its own stdio and
 * exit status (the library's exec.h does it). */
#include "commands.h"
#include "cleanup.h"
#include "exec.h"

#include <assert.h>
#include <getopt.h>
#include <stdio.h>

static int exec_usage(void)
{
	printf("Usage: cocoon exec [options] CONTAINER_ID [COMMAND [ARG...]]\n"
	       "\n"
	       "Runs an extra process in a running container and exits with its status.\n"
	       "\n"
	       "  -p, --process FILE   the process as OCI JSON (instead of COMMAND)\n"
	       "  -d, --detach         return once started; the pid in --pid-file exits with it\n"
	       "      --pid-file FILE  write that pid here\n"
	       "  -e, --env NAME=VAL   add to the environment (repeatable)\n"
	       "      --cwd DIR        working directory\n"
	       "  -u, --user UID[:GID] run as this user\n"
	       "  -t, --tty            on a terminal: a new pty whose master goes to\n"
	       "                       --console-socket, or else this command's own terminal\n"
	       "      --console-socket S  send the pty master here (with --tty or a\n"
	       "                       --process whose terminal is true)\n");
	return 0;
}

int cmd_exec(struct global_opts *g, int argc, char **argv, struct error **errp)
{
	static const struct option opts[] = {{"process", required_argument, NULL, 'p'},
					     {"detach", no_argument, NULL, 'd'},
					     {"pid-file", required_argument, NULL, 'P'},
					     {"env", required_argument, NULL, 'e'},
					     {"cwd", required_argument, NULL, 'C'},
					     {"user", required_argument, NULL, 'u'},
					     {"tty", no_argument, NULL, 't'},
					     {"console-socket", required_argument, NULL, 'c'},
					     {"help", no_argument, NULL, 'h'},
					     {}};
	_cleanup_error_ struct error *err = NULL;
	struct exec_options o = {0};
	char *envs[64];
	uint32_t uid, gid;
	bool has_gid;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+p:de:u:th", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			o.process_file = optarg;
			break;
		case 'd':
			o.detach = true;
			break;
		case 'P':
			o.pid_file = optarg;
			break;
		case 'e':
			assert(optarg); /* a required argument */
			if (o.n_env < ARRAY_SIZE(envs))
				envs[o.n_env++] = optarg;
			break;
		case 'C':
			o.cwd = optarg;
			break;
		case 'u':
			if (exec_parse_user(optarg, &uid, &gid, &has_gid) < 0)
				return usage_error("exec", "--user must be UID[:GID]");
			o.user = optarg;
			break;
		case 't':
			o.tty = true;
			break;
		case 'c':
			o.console_socket = optarg;
			break;
		case 'h':
			return exec_usage();
		default:
			return 2;
		}
	}
	if (optind >= argc)
		return usage_error("exec", "expects a container ID");
	if (!o.process_file && optind + 1 >= argc)
		return usage_error("exec", "expects a command (or --process)");
	o.env = envs;
	o.args = argv + optind + 1;
	o.n_args = (size_t)(argc - optind - 1);
	int r = exec_container(g, argv[optind], &o, &err);
	return r < 0 ? cli_fail(errp, &err) : r;
}
