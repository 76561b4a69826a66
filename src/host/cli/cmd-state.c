/* state and list: the options, then one library call each. */
#include "commands.h"
#include "cleanup.h"
#include "container.h"
#include "log.h"
#include "paths.h"

#include <dirent.h>
#include <getopt.h>
#include <json-c/json.h>
#include <string.h>

static json_object *oci_state(const struct container_state *st)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "ociVersion", json_object_new_string("1.0.2"));
	json_object_object_add(o, "id", json_object_new_string(st->id));
	/* The shim is the container's host process: engines wait on it. */
	json_object_object_add(
		o, "pid", json_object_new_int(st->status == STATUS_STOPPED ? 0 : st->shim_pid));
	json_object_object_add(o, "status", json_object_new_string(state_status_name(st->status)));
	json_object_object_add(o, "bundle", json_object_new_string(st->bundle));
	json_object_object_add(o, "rootfs", json_object_new_string(st->rootfs));
	json_object_object_add(o, "created", json_object_new_string(st->created));
	json_object_object_add(o, "owner", json_object_new_string(""));
	json_object_object_add(o, "annotations", json_object_new_object());
	return o;
}

int cmd_state(struct global_opts *g, int argc, char **argv, struct error **errp)
{
	_cleanup_error_ struct error *err = NULL;
	_cleanup_free_ char *dir = NULL;
	struct container_state st;

	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		printf("Usage: cocoon state CONTAINER_ID\n\nPrints the container's OCI state as JSON.\n");
		return 0;
	}
	if (argc != 2)
		return usage_error("state", "expects exactly one container ID");
	if (container_load(g, argv[1], &dir, &st, &err) < 0) {
		return cli_fail(errp, &err);
	}
	json_object *o = oci_state(&st);
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
	json_object_put(o);
	return 0;
}

int cmd_list(struct global_opts *g, int argc, char **argv, struct error **errp)
{
	static const struct option opts[] = {{"format", required_argument, NULL, 'f'},
					     {"quiet", no_argument, NULL, 'q'},
					     {"help", no_argument, NULL, 'h'},
					     {}};
	const char *format = "table";
	bool quiet = false;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "f:qh", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			format = optarg;
			break;
		case 'q':
			quiet = true;
			break;
		case 'h':
			printf("Usage: cocoon list [--format table|json] [--quiet]\n\nLists containers.\n");
			return 0;
		default:
			return 2;
		}
	}
	if (strcmp(format, "table") != 0 && strcmp(format, "json") != 0)
		return usage_error("list", "--format must be table or json");
	_cleanup_error_ struct error *err = NULL;
	_cleanup_free_ struct container_state *all = NULL;
	size_t n;
	if (container_list(g, &all, &n, &err) < 0) {
		error_wrap(&err, "list");
		return cli_fail(errp, &err);
	}
	json_object *arr = json_object_new_array();
	if (!quiet && strcmp(format, "table") == 0)
		printf("%-20s %-8s %-10s %-40s %s\n", "ID", "PID", "STATUS", "BUNDLE", "CREATED");
	for (size_t i = 0; i < n; i++) {
		const struct container_state *st = &all[i];
		if (quiet)
			printf("%s\n", st->id);
		else if (strcmp(format, "table") == 0)
			printf("%-20s %-8d %-10s %-40s %s\n", st->id,
			       st->status == STATUS_STOPPED ? 0 : st->shim_pid,
			       state_status_name(st->status), st->bundle, st->created);
		else
			json_object_array_add(arr, oci_state(st));
	}
	if (!quiet && strcmp(format, "json") == 0)
		printf("%s\n", json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN));
	json_object_put(arr);
	return 0;
}
