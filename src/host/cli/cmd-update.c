/* update and events: the container's cgroup in the guest, changed and read
 * through its shim (src/guest/cgroups.c). */
#include "commands.h"
#include "cleanup.h"
#include "container.h"
#include "fdio.h"
#include "log.h"
#include "resources-kept.h"
#include "resources.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* runc's memory sizes: bytes with an optional b, k, m or g (1024-based),
 * or -1 for no limit. */
static int parse_size(const char *s, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (end == s || errno)
		return -1;
	int shift = 0;
	switch (tolower((unsigned char)*end)) {
	case 'g':
		shift = 30;
		break;
	case 'm':
		shift = 20;
		break;
	case 'k':
		shift = 10;
		break;
	default:
		break;
	}
	if (shift)
		end++;
	if (tolower((unsigned char)*end) == 'b')
		end++;
	if (*end || v < -1 || (v > 0 && v > (INT64_MAX >> shift)))
		return -1;
	*out = v < 0 ? -1 : (int64_t)v << shift;
	return 0;
}

/* A decimal option value in [min, max]. On bad input it prints the usage
 * error naming --NAME, what was given and `expect`, and returns -1. */
static int parse_number(const char *name, const char *arg, int64_t min, int64_t max,
			const char *expect, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(arg, &end, 10);
	if (errno || *end || end == arg || v < min || v > max) {
		(void)usage_error("update", "--%s '%s': expected %s", name, arg, expect);
		return -1; /* the caller's status is usage_error's 2 */
	}
	*out = v;
	return 0;
}

/* The --resources file, or stdin for "-": at most 1 MiB. */
static int read_resources(const char *path, char **out, struct error **err)
{
	bool is_stdin = strcmp(path, "-") == 0;
	_cleanup_close_ int fd = is_stdin ? -1 : open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC);
	if (!is_stdin && fd < 0)
		return error_set(err, errno, "--resources %s", path);
	int r = fd_read_bounded(is_stdin ? STDIN_FILENO : fd, 1 << 20, out, NULL);
	if (r == -EFBIG)
		return error_setx(err, E2BIG, "--resources %s: more than 1 MiB", path);
	if (r < 0)
		return error_set(err, -r, "--resources %s", path);
	return 0;
}

int cmd_update(struct global_opts *g, int argc, char **argv, struct error **errp)
{
	enum { O_MEM = 256, O_PIDS, O_QUOTA, O_PERIOD, O_SHARES, O_IGNORED };
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
	Cocoon__Request req = COCOON__REQUEST__INIT;
	Cocoon__UpdateRequest ur = COCOON__UPDATE_REQUEST__INIT;
	Cocoon__Resources res = COCOON__RESOURCES__INIT;
	_cleanup_error_ struct error *err = NULL;
	_cleanup_free_ char *json = NULL;
	char ignored[512] = "", msg[1024];
	const char *resources = NULL;
	bool got_quota = false, got_period = false;
	int c, idx;
	int64_t v;

	optind = 1;
	while ((c = getopt_long(argc, argv, "r:h", opts, &idx)) != -1) {
		switch (c) {
		case 'r':
			resources = optarg;
			break;
		case O_MEM:
			if (parse_size(optarg, &v) < 0)
				return usage_error(
					"update",
					"--memory '%s': expected bytes with b, k, m or g, or -1",
					optarg);
			ur.set_memory = v != 0;
			res.memory_limit = v > 0 ? (uint64_t)v : 0;
			break;
		case O_PIDS:
			if (parse_number(opts[idx].name, optarg, -1, INT64_MAX,
					 "a number, -1 for none", &v) < 0)
				return 2;
			ur.set_pids = v != 0;
			res.pids_limit = v > 0 ? v : 0;
			break;
		case O_QUOTA:
			/* The kernel's minimum, as for config.json
			 * (resources_check_json). */
			if (parse_number(opts[idx].name, optarg, -1, INT64_MAX,
					 "microseconds, -1 for none", &v) < 0)
				return 2;
			if (v > 0 && v < 1000)
				return usage_error("update",
						   "--cpu-quota '%s': below the kernel's 1000 us",
						   optarg);
			ur.set_cpu_max = got_quota = true;
			res.cpu_quota = v > 0 ? v : 0;
			break;
		case O_PERIOD:
			if (parse_number(opts[idx].name, optarg, 1000, 1000000,
					 "1000 .. 1000000 us", &v) < 0)
				return 2;
			ur.set_cpu_max = got_period = true;
			res.cpu_period = (uint64_t)v;
			break;
		case O_SHARES:
			if (parse_number(opts[idx].name, optarg, 2, 262144, "2 .. 262144", &v) < 0)
				return 2;
			ur.set_cpu_weight = true;
			res.cpu_shares = (uint64_t)v;
			break;
		case O_IGNORED:
			snprintf(ignored + strlen(ignored), sizeof(ignored) - strlen(ignored),
				 "%s--%s", *ignored ? ", " : "", opts[idx].name);
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
			       "ignored with a warning: the VM does not apply them (docs/lifecycle.md).\n",
			       RESOURCES_GUEST_OVERHEAD_MIB);
			return 0;
		default:
			return 2;
		}
	}
	if (argc - optind != 1)
		return usage_error("update", "expects exactly one container ID");
	/* runc update: the half of cpu.max not given stays as it is. */
	ur.keep_cpu_quota = got_period && !got_quota;
	ur.keep_cpu_period = got_quota && !got_period;
	const char *id = argv[optind];
	if (resources) {
		char more[512];
		if (read_resources(resources, &json, &err) < 0 ||
		    resources_update_from_json(json, &ur, &res, more, sizeof(more), &err) < 0) {
			error_wrap(&err, "update %s", id);
			return cli_fail(errp, &err);
		}
		size_t used = strlen(ignored);
		if (*more && snprintf(ignored + used, sizeof(ignored) - used, "%s%s",
				      *ignored ? ", " : "", more) >= (int)(sizeof(ignored) - used))
			memcpy(ignored + sizeof(ignored) - 4, "...",
			       4); /* the list is cut: say so */
	}
	if (*ignored)
		log_warning("update %s: not applied inside the VM, ignored: %s", id, ignored);
	_cleanup_free_ char *dir = NULL;
	struct container_state st;
	if (container_load(g, id, &dir, &st, &err) < 0) {
		return cli_fail(errp, &err);
	}
	if (st.status == STATUS_STOPPED) {
		snprintf(msg, sizeof(msg), "update %s: container is stopped", id);
		return cli_failf(errp, "%s", msg);
	}
	if (!ur.set_memory && !ur.set_pids && !ur.set_cpu_max && !ur.set_cpu_weight)
		return 0;
	ur.id = (char *)id;
	ur.resources = &res;
	req.body_case = COCOON__REQUEST__BODY_UPDATE;
	req.update = &ur;
	Cocoon__Response *resp = NULL;
	if (container_call(g, id, &req, &resp, &err) < 0) {
		error_wrap(&err, "update %s", id);
		return cli_fail(errp, &err);
	}
	cocoon__response__free_unpacked(resp, NULL);
	/* Kept for a checkpoint's restore (resources-kept.h). */
	if (resources_kept_record(dir, &ur, &res, &err) < 0)
		log_warning("update %s: applied, but not kept for a restore: %s", id, err->msg);
	return 0;
}

static json_object *u64(uint64_t v)
{
	return json_object_new_uint64(v);
}

/* runc's stats event (libcontainer's types.Stats), from the guest's
 * figures. A key of memory.stat the guest sent that is not a plain name is
 * dropped: the guest is not trusted to write our JSON's keys. */
static json_object *stats_json(const char *id, const Cocoon__StatsReply *s)
{
	json_object *cpu = json_object_new_object(), *usage = json_object_new_object(),
		    *thr = json_object_new_object();
	json_object_object_add(usage, "total", u64(s->cpu_usage_usec * 1000));
	json_object_object_add(usage, "kernel", u64(s->cpu_system_usec * 1000));
	json_object_object_add(usage, "user", u64(s->cpu_user_usec * 1000));
	json_object_object_add(cpu, "usage", usage);
	json_object_object_add(thr, "periods", u64(s->cpu_nr_periods));
	json_object_object_add(thr, "throttledPeriods", u64(s->cpu_nr_throttled));
	json_object_object_add(thr, "throttledTime", u64(s->cpu_throttled_usec * 1000));
	json_object_object_add(cpu, "throttling", thr);

	json_object *mem = json_object_new_object(), *mu = json_object_new_object(),
		    *raw = json_object_new_object();
	/* No memory.max: the VM's memory is the limit. */
	json_object_object_add(mu, "limit",
			       u64(s->memory_max ? s->memory_max : s->guest_memory_total));
	json_object_object_add(mu, "usage", u64(s->memory_current));
	json_object_object_add(mu, "max", u64(s->memory_peak));
	json_object_object_add(mu, "failcnt", u64(s->memory_oom_kill));
	json_object_object_add(mem, "usage", mu);
	for (size_t i = 0; i < s->n_memory_stat && i < 64; i++) {
		const char *k = s->memory_stat[i]->key;
		size_t n = strlen(k), j = 0;
		while (j < n && (islower((unsigned char)k[j]) || isdigit((unsigned char)k[j]) ||
				 k[j] == '_'))
			j++;
		if (n && n < 64 && j == n && !json_object_object_get_ex(raw, k, NULL))
			json_object_object_add(raw, k, u64(s->memory_stat[i]->value));
	}
	json_object_object_add(mem, "raw", raw);

	json_object *pids = json_object_new_object();
	json_object_object_add(pids, "current", u64(s->pids_current));
	json_object_object_add(pids, "limit", u64(s->pids_max));

	json_object *data = json_object_new_object();
	json_object_object_add(data, "cpu", cpu);
	json_object_object_add(data, "memory", mem);
	json_object_object_add(data, "pids", pids);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "type", json_object_new_string("stats"));
	json_object_object_add(o, "id", json_object_new_string(id));
	json_object_object_add(o, "data", data);
	return o;
}

static int print_stats(struct global_opts *g, const char *id, struct error **errp)
{
	Cocoon__Request req = COCOON__REQUEST__INIT;
	Cocoon__StatsRequest sr = COCOON__STATS_REQUEST__INIT;
	Cocoon__Response *resp = NULL;
	_cleanup_error_ struct error *err = NULL;
	sr.id = (char *)id;
	req.body_case = COCOON__REQUEST__BODY_STATS;
	req.stats = &sr;
	if (container_call(g, id, &req, &resp, &err) < 0) {
		error_wrap(&err, "events %s", id);
		(void)cli_fail(errp, &err); /* the caller's status is -1's */
		return -1;
	}
	if (resp->body_case != COCOON__RESPONSE__BODY_STATS || !resp->stats) {
		cocoon__response__free_unpacked(resp, NULL);
		(void)cli_failf(errp, "%s", "events: the guest's reply has no stats");
		return -1;
	}
	json_object *o = stats_json(id, resp->stats);
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	fflush(stdout);
	json_object_put(o);
	cocoon__response__free_unpacked(resp, NULL);
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
		_cleanup_free_ char *dir = NULL;
		struct container_state st;
		if (container_load(g, id, &dir, &st, &err) < 0) {
			return cli_fail(errp, &err);
		}
		if (st.status == STATUS_STOPPED) {
			if (!once)
				return 0;
			char msg[256];
			snprintf(msg, sizeof(msg), "events %s: container is stopped", id);
			return cli_failf(errp, "%s", msg);
		}
		if (print_stats(g, id, errp) < 0)
			return 1;
		if (once)
			return 0;
		sleep((unsigned)interval);
	}
}
