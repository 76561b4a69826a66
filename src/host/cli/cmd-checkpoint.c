/* checkpoint: the options, then the host library's checkpoint_container or
 * checkpoint_pod (lib/checkpoint.h, lib/checkpoint-pod.h). */
#include "commands.h"
#include "checkpoint.h"
#include "checkpoint-pod.h"
#include "cleanup.h"

#include <ctype.h>
#include <getopt.h>
#include <string.h>

static void checkpoint_usage(void)
{
	printf("Usage: cocoon checkpoint [options] CONTAINER_ID\n"
	       "\n"
	       "Checkpoints a running or paused container with CRIU inside its VM. The images\n"
	       "are published atomically: the image directory appears complete or not at all.\n"
	       "Without --image-path they go to host_checkpoint_dir/CONTAINER_ID/CHECKPOINT_ID/\n"
	       "and the checkpoint ID is printed.\n"
	       "\n"
	       "A container created with checkpoint_mode \"vm\" (or the annotation\n"
	       "io.cocoon.checkpoint-mode=vm) is saved whole instead: QEMU writes the VM's\n"
	       "memory and device state to vm.state beside vm.json (docs/whole-vm.md).\n"
	       "\n"
	       "  --image-path DIR       where to put the images (absent or an empty directory)\n"
	       "  --work-path DIR        where to put CRIU's log and stats\n"
	       "  --leave-running        keep the container running (or paused) afterwards\n"
	       "  --pre-dump             dump memory only; the container keeps running\n"
	       "  --parent-path DIR      a pre-dump of this container: dump incrementally\n"
	       "  --tcp-established      checkpoint established TCP connections\n"
	       "  --ext-unix-sk          allow external unix sockets\n"
	       "  --shell-job            allow a shell job (a terminal)\n"
	       "  --file-locks           checkpoint file locks\n"
	       "  --empty-ns network     accepted; the container's network namespace is dumped\n"
	       "  --manage-cgroups-mode  accepted; cgroups live in the guest\n"
	       "  --print-stats          print CRIU's and cocoon's timings as a JSON line\n"
	       "  --pod                  CONTAINER_ID is a pod's sandbox: checkpoint the whole pod,\n"
	       "                         each container into --image-path/ID, and pod.json\n");
}

/* --bench-route NAME: the schema's CheckpointRoute value ROUTE_<NAME>, the
 * name in lower case with '-' for '_' ("tmpfs-unchecked"). */
static int bench_route_parse(const char *name, Cocoon__CheckpointRoute *out)
{
	char upper[32] = "ROUTE_";
	size_t n = strlen(upper);

	for (const char *p = name; *p; p++) {
		if (n + 1 >= sizeof(upper) ||
		    !(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '-'))
			return -EINVAL;
		upper[n++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
	}
	upper[n] = 0;
	const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value_by_name(
		&cocoon__checkpoint_route__descriptor, upper);
	if (!v)
		return -EINVAL;
	*out = (Cocoon__CheckpointRoute)v->value;
	return 0;
}

int cmd_checkpoint(struct global_opts *g, int argc, char **argv, struct error **errp)
{
	enum {
		O_IMAGE = 256,
		O_WORK,
		O_LEAVE,
		O_EMPTYNS,
		O_PRE,
		O_PARENT,
		O_CGMODE,
		O_UNSUP,
		O_STATS,
		O_ROUTE,
		O_POD
	};
	static const struct option opts[] = {
		{"image-path", required_argument, NULL, O_IMAGE},
		{"work-path", required_argument, NULL, O_WORK},
		{"leave-running", no_argument, NULL, O_LEAVE},
		CLI_CRIU_OPTIONS,
		{"empty-ns", required_argument, NULL, O_EMPTYNS},
		{"pre-dump", no_argument, NULL, O_PRE},
		{"parent-path", required_argument, NULL, O_PARENT},
		{"manage-cgroups-mode", required_argument, NULL, O_CGMODE},
		{"page-server", required_argument, NULL, O_UNSUP},
		{"lazy-pages", no_argument, NULL, O_UNSUP},
		{"auto-dedup", no_argument, NULL, O_UNSUP},
		{"status-fd", required_argument, NULL, O_UNSUP},
		{"print-stats", no_argument, NULL, O_STATS},
		{"bench-route", required_argument, NULL, O_ROUTE},
		{"pod", no_argument, NULL, O_POD},
		{"help", no_argument, NULL, 'h'},
		{}};
	struct checkpoint_report report = {0};
	struct checkpoint_options o = {.report = &report};
	_cleanup_error_ struct error *err = NULL;
	int c;

	cocoon__criu_options__init(&o.criu);
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_IMAGE:
			o.image_path = optarg;
			break;
		case O_WORK:
			o.work_path = optarg;
			break;
		case O_LEAVE:
			o.leave_running = true;
			break;
		case O_EMPTYNS:
			if (strcmp(optarg, "network") != 0)
				return usage_error("checkpoint",
						   "--empty-ns supports only 'network'");
			o.criu.empty_ns_network = true;
			break;
		case O_PRE:
			o.pre_dump = true;
			break;
		case O_PARENT:
			o.parent_path = optarg;
			break;
		case O_CGMODE:
			break;
		case O_STATS:
			o.print_stats = true;
			break;
		case O_POD:
			o.pod = true;
			break;
		case O_ROUTE:
			/* Benchmark baselines only; see make bench. */
			if (bench_route_parse(optarg, &o.bench_route) < 0)
				return usage_error(
					"checkpoint",
					"--bench-route: cocoon, floor, seed, direct9p, serial, tmpfs, tmpfs-unchecked or stream");
			break;
		case O_UNSUP:
			return usage_error("checkpoint", "%s is not supported", argv[optind - 1]);
		case 'h':
			checkpoint_usage();
			return 0;
		default:
			if (!cli_criu_option(c, &o.criu))
				return 2;
			break;
		}
	}
	if (optind != argc - 1)
		return usage_error("checkpoint", "expects exactly one container ID");
	int r = o.pod ? checkpoint_pod(g, argv[optind], &o, &err)
		      : checkpoint_container(g, argv[optind], &o, &err);
	if (report.text)
		printf("%s", report.text);
	free(report.text);
	if (r < 0) {
		error_wrap(&err, "checkpoint %s", argv[optind]);
		return cli_fail(errp, &err);
	}
	return 0;
}
