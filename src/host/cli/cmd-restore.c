/* restore: the options, then the host library's container_restore or
 * restore_pod (lib/restore.h); --print-stats and the wait in the
 * foreground here. */
#include "commands.h"
#include "cleanup.h"
#include "container.h"
#include "paths.h"
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

int cmd_restore(struct global_opts *g, int argc, char **argv, struct error **errp)
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
	Cocoon__CriuOptions criu = COCOON__CRIU_OPTIONS__INIT;
	struct create_options o = {.criu = &criu};
	_cleanup_error_ struct error *err = NULL;
	const char *image_path = NULL;
	bool detach = false, print_stats = false, pod = false;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "b:dh", opts, NULL)) != -1) {
		switch (c) {
		case O_IMAGE:
			image_path = optarg;
			break;
		case O_WORK:
			o.work_path = optarg;
			break;
		case 'b':
			o.bundle = optarg;
			break;
		case 'd':
			detach = true;
			break;
		case O_PID:
			o.pid_file = optarg;
			break;
		case O_CONSOLE:
			o.console_socket = optarg;
			break;
		case O_IGNORE:
		case O_IGNORE_ARG:
			break;
		case O_STATS:
			print_stats = true;
			break;
		case O_BENCH:
			o.bench_from_tmpfs = true;
			break;
		case O_POD:
			pod = true;
			break;
		case O_UNSUP:
			return usage_error("restore", "%s is not supported", argv[optind - 1]);
		case 'h':
			restore_usage();
			return 0;
		default:
			if (!cli_criu_option(c, &criu))
				return 2;
			break;
		}
	}
	if (optind != argc - 1)
		return usage_error("restore", "expects exactly one container ID");
	if (!image_path)
		return usage_error("restore", "--image-path is required");
	const char *id = argv[optind];
	if (pod) {
		if (o.pid_file || o.console_socket || print_stats)
			return usage_error("restore",
					   "--pod takes no --pid-file, --console-socket or "
					   "--print-stats (one per container: restore them one by "
					   "one)");
		if (restore_pod(g, id, image_path, &o, &criu, &err) < 0)
			return cli_fail(errp, &err);
		return 0;
	}
	long long t0 = now_ms();
	pid_t shim;
	if (container_restore(g, id, image_path, &o, &criu, &shim, &err) < 0)
		return cli_fail(errp, &err);
	if (print_stats) {
		_cleanup_free_ char *path = NULL, *text = NULL;
		if (asprintf(&path, "%s/%s/" RESTORE_STATS_FILE, g->root, id) >= 0 &&
		    read_file_bounded(path, 4096, &text, NULL, NULL) == 0) {
			text[strcspn(text, "\n")] = 0;
			/* The same line, with the whole command's wall time. */
			printf("stats: {\"total_ms\": %lld, %s\n", now_ms() - t0, text + 1);
			fflush(stdout);
		}
	}
	if (detach)
		return 0;
	return container_wait_foreground(shim);
}
