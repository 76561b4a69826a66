/* restore: the options, then the host library's container_restore or
 * restore_pod (lib/restore.h); --print-stats's line and the wait in the
 * foreground here, as for run. */
#include "commands.h"
#include "cleanup.h"
#include "container.h"
#include "container-create.h"
#include "restore.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

static void restore_usage(void)
{
	printf("Usage: cocoon restore --image-path DIR [options] CONTAINER_ID\n"
	       "\n"
	       "Restores a checkpointed container into a new VM. The ID may be the original's\n"
	       "(once deleted) or a new one; the original may still be running. An image\n"
	       "directory with vm.json (a whole-VM checkpoint) starts the saved VM instead:\n"
	       "no boot, no CRIU, and only under the ID it was saved with.\n"
	       "\n"
	       "  --image-path DIR       the checkpoint's images\n"
	       "  --work-path DIR        where to put CRIU's restore log and stats\n"
	       "  -b, --bundle DIR       the OCI bundle (default: current directory)\n"
	       "  -d, --detach           return once restored\n"
	       "  --pid-file FILE        write the shim's pid here\n"
	       "  --console-socket S     as for create\n"
	       "  --tcp-established, --ext-unix-sk, --shell-job, --file-locks  as for CRIU\n"
	       "  --no-pivot, --no-subreaper (also -no-subreaper), --manage-cgroups-mode,\n"
	       "  --empty-ns network     accepted for runc compatibility\n"
	       "  --print-stats          print boot and CRIU timings as a JSON line\n"
	       "  --pod                  DIR is a whole pod's (checkpoint --pod) and CONTAINER_ID\n"
	       "                         its sandbox: restore them all into one fresh VM, each\n"
	       "                         with the bundle pod.json names (--bundle: the\n"
	       "                         sandbox's); implies --detach\n");
}

/* restore's command line. */
struct restore_args {
	Cocoon__CriuOptions criu;
	struct create_options o; /* o.criu points at criu */
	const char *image_path;
	const char *id;
	bool detach, pod, print_stats;
};

/* Parses restore's options into A: returns -1 to go on, else the exit
 * status to return (0 after --help, 2 after a usage error). */
static int restore_parse(int argc, char **argv, struct restore_args *a)
{
	enum {
		O_IMAGE = 256,
		O_WORK,
		O_PID,
		O_CONSOLE,
		O_IGNORE,
		O_IGNORE_ARG,
		O_UNSUP,
		O_STATS,
		O_BENCH,
		O_POD
	};
	static const struct option opts[] = {
		{"image-path", required_argument, NULL, O_IMAGE},
		{"work-path", required_argument, NULL, O_WORK},
		{"bundle", required_argument, NULL, 'b'},
		{"detach", no_argument, NULL, 'd'},
		{"pid-file", required_argument, NULL, O_PID},
		{"console-socket", required_argument, NULL, O_CONSOLE},
		CLI_CRIU_OPTIONS,
		{"no-pivot", no_argument, NULL, O_IGNORE},
		{"no-subreaper", no_argument, NULL, O_IGNORE},
		{"manage-cgroups-mode", required_argument, NULL, O_IGNORE_ARG},
		{"empty-ns", required_argument, NULL, O_IGNORE_ARG},
		{"lazy-pages", no_argument, NULL, O_UNSUP},
		{"auto-dedup", no_argument, NULL, O_UNSUP},
		{"print-stats", no_argument, NULL, O_STATS},
		{"bench-from-tmpfs", no_argument, NULL, O_BENCH},
		{"pod", no_argument, NULL, O_POD},
		{"help", no_argument, NULL, 'h'},
		{}};
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "b:dh", opts, NULL)) != -1) {
		switch (c) {
		case O_IMAGE:
			a->image_path = optarg;
			break;
		case O_WORK:
			a->o.work_path = optarg;
			break;
		case 'b':
			a->o.bundle = optarg;
			break;
		case 'd':
			a->detach = true;
			break;
		case O_PID:
			a->o.pid_file = optarg;
			break;
		case O_CONSOLE:
			a->o.console_socket = optarg;
			break;
		case O_IGNORE:
		case O_IGNORE_ARG:
			break;
		case O_STATS:
			a->print_stats = true;
			break;
		case O_BENCH:
			a->o.bench_from_tmpfs = true;
			break;
		case O_POD:
			a->pod = true;
			break;
		case O_UNSUP:
			return usage_error("restore", "%s is not supported", argv[optind - 1]);
		case 'h':
			restore_usage();
			return 0;
		default:
			if (!cli_criu_option(c, &a->criu))
				return 2;
			break;
		}
	}
	if (optind != argc - 1)
		return usage_error("restore", "expects exactly one container ID");
	if (!a->image_path)
		return usage_error("restore", "--image-path is required");
	a->id = argv[optind];
	if (a->pod && (a->o.pid_file || a->o.console_socket || a->print_stats))
		return usage_error("restore",
				   "--pod takes no --pid-file, --console-socket or "
				   "--print-stats (one per container: restore them one by "
				   "one)");
	return -1;
}

int cmd_restore(struct global_opts *g, int argc, char **argv, struct error **errp)
{
	struct restore_args a = {.criu = COCOON__CRIU_OPTIONS__INIT};
	_cleanup_error_ struct error *err = NULL;
	pid_t shim;

	a.o.criu = &a.criu;
	int done = restore_parse(argc, argv, &a);
	if (done >= 0)
		return done;
	if (a.pod) {
		if (restore_pod(g, a.id, a.image_path, &a.o, &a.criu, &err) < 0)
			return cli_fail(errp, &err);
		return 0;
	}
	_cleanup_free_ char *stats = NULL;
	if (a.print_stats)
		a.o.stats_line = &stats;
	if (container_restore(g, a.id, a.image_path, &a.o, &a.criu, &shim, &err) < 0)
		return cli_fail(errp, &err);
	if (stats) {
		printf("%s", stats);
		fflush(stdout);
	}
	if (a.detach)
		return 0;
	return container_wait_foreground(shim);
}
