/* update and events: the container's cgroup in the guest, changed and read
 * through its shim (the library's update.h and stats.h). */
#include "commands.h"
#include "cleanup.h"
#include "resources.h"
#include "stats.h"
#include "update.h"

#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int cmd_update(struct global_opts *g, int argc, char **argv, struct error **errp)
{
	/* An option with a value rule is 256 + its enum update_field. */
	enum {
		O_MEM = 256 + UPDATE_MEMORY,
		O_PIDS = 256 + UPDATE_PIDS,
		O_QUOTA = 256 + UPDATE_CPU_QUOTA,
		O_PERIOD = 256 + UPDATE_CPU_PERIOD,
		O_SHARES = 256 + UPDATE_CPU_SHARES,
		O_IGNORED
	};
	static const struct option opts[] = {
		{"resources", required_argument, NULL, 'r'},
		{"memory", required_argument, NULL, O_MEM},
		{"pids-limit", required_argument, NULL, O_PIDS},
		{"cpu-quota", required_argument, NULL, O_QUOTA},
		{"cpu-period", required_argument, NULL, O_PERIOD},
		{"cpu-share", required_argument, NULL, O_SHARES},
		{"memory-swap", required_argument, NULL, O_IGNORED},
		{"memory-reservation", required_argument, NULL, O_IGNORED},
		{"kernel-memory", required_argument, NULL, O_IGNORED},
		{"kernel-memory-tcp", required_argument, NULL, O_IGNORED},
		{"cpu-rt-period", required_argument, NULL, O_IGNORED},
		{"cpu-rt-runtime", required_argument, NULL, O_IGNORED},
		{"cpuset-cpus", required_argument, NULL, O_IGNORED},
		{"cpuset-mems", required_argument, NULL, O_IGNORED},
		{"blkio-weight", required_argument, NULL, O_IGNORED},
		{"l3-cache-schema", required_argument, NULL, O_IGNORED},
		{"mem-bw-schema", required_argument, NULL, O_IGNORED},
		{"help", no_argument, NULL, 'h'},
		{}};
	_cleanup_error_ struct error *err = NULL;
	struct update_request u;
	int c, idx;

	update_init(&u);
	optind = 1;
	while ((c = getopt_long(argc, argv, "r:h", opts, &idx)) != -1) {
		switch (c) {
		case 'r':
			u.resources = optarg;
			break;
		case O_MEM:
		case O_PIDS:
		case O_QUOTA:
		case O_PERIOD:
		case O_SHARES:
			if (update_set(&u, (enum update_field)(c - 256), opts[idx].name, optarg,
				       &err) < 0)
				return usage_error("update", "%s", err->msg);
			break;
		case O_IGNORED:
			update_ignore(&u, opts[idx].name);
			break;
		case 'h':
			printf("Usage: cocoon update [options] CONTAINER_ID\n\n"
			       "Changes the limits of the container's cgroup inside its VM (runc update):\n"
			       "  -r, --resources FILE   OCI linux.resources JSON (\"-\": stdin), as containerd\n"
			       "                         and podman pass it\n"
			       "  --memory BYTES         memory.max (k, m, g suffixes; -1: none), at most the\n"
			       "                         VM's memory less the guest's %d MiB (fixed at boot)\n"
			       "  --pids-limit N         pids.max (-1: none)\n"
			       "  --cpu-quota US, --cpu-period US   cpu.max (-1: no quota)\n"
			       "  --cpu-share N          cpu.weight, converted as runc does\n"
			       "Swap, reservations, cpusets, real-time and block IO options are accepted and\n"
			       "ignored with a warning: the VM does not apply them (docs/resources.md).\n",
			       RESOURCES_GUEST_OVERHEAD_MIB);
			return 0;
		default:
			return 2;
		}
	}
	if (argc - optind != 1)
		return usage_error("update", "expects exactly one container ID");
	if (update_container(g, argv[optind], &u, &err) < 0)
		return cli_fail(errp, &err);
	return 0;
}

int cmd_events(struct global_opts *g, int argc, char **argv, struct error **errp)
{
	static const struct option opts[] = {{"stats", no_argument, NULL, 's'},
					     {"interval", required_argument, NULL, 'i'},
					     {"help", no_argument, NULL, 'h'},
					     {}};
	bool once = false;
	long interval = 5;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "si:h", opts, NULL)) != -1) {
		char *end;
		switch (c) {
		case 's':
			once = true;
			break;
		case 'i':
			interval = strtol(optarg, &end, 10);
			if (*end == 's')
				end++;
			if (*end || interval < 1 || interval > 3600)
				return usage_error("events",
						   "--interval '%s': expected 1 .. 3600 seconds",
						   optarg);
			break;
		case 'h':
			printf("Usage: cocoon events [--stats] [--interval SECONDS] CONTAINER_ID\n\n"
			       "Prints runc's stats event (JSON) for the container, read inside its VM from\n"
			       "its cgroup: CPU time, memory (usage, peak, memory.stat), pids. With --stats\n"
			       "once; else every --interval seconds (default 5) while it runs.\n");
			return 0;
		default:
			return 2;
		}
	}
	if (argc - optind != 1)
		return usage_error("events", "expects exactly one container ID");
	const char *id = argv[optind];
	for (;;) {
		_cleanup_error_ struct error *err = NULL;
		json_object *o = NULL;
		int r = stats_container(g, id, &o, &err);
		if (r == -ESRCH && !once)
			return 0; /* it stopped: the stream ends */
		if (r < 0)
			return cli_fail(errp, &err);
		printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		fflush(stdout);
		json_object_put(o);
		if (once)
			return 0;
		sleep((unsigned)interval);
	}
}
