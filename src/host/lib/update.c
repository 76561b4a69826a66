/* runc update in the host library (update.h). */
#include "update.h"
#include "cleanup.h"
#include "container.h"
#include "fdio.h"
#include "log.h"
#include "resources-kept.h"
#include "resources.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define UPDATE_RESOURCES_MAX (1 << 20) /* bytes of --resources JSON */

void update_init(struct update_request *u)
{
	*u = (struct update_request){0};
	cocoon__update_request__init(&u->ur);
	cocoon__resources__init(&u->res);
}

int update_parse_size(const char *s, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (end == s || errno)
		return -EINVAL;
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
		return -EINVAL;
	*out = v < 0 ? -1 : (int64_t)v << shift;
	return 0;
}

/* A decimal ARG of option --NAME in [min, max] into *out; else -EINVAL
 * with *err naming the option, the value and what was expected. */
static int update_number(const char *name, const char *arg, int64_t min, int64_t max,
			 const char *expect, int64_t *out, struct error **err)
{
	char *end;
	errno = 0;
	long long v = strtoll(arg, &end, 10);
	if (errno || *end || end == arg || v < min || v > max)
		return error_setx(err, EINVAL, "--%s '%s': expected %s", name, arg, expect);
	*out = v;
	return 0;
}

/* runc update: the half of cpu.max not given stays as it is. */
static void update_cpu_max(struct update_request *u)
{
	u->ur.set_cpu_max = true;
	u->ur.keep_cpu_quota = u->got_period && !u->got_quota;
	u->ur.keep_cpu_period = u->got_quota && !u->got_period;
}

int update_set(struct update_request *u, enum update_field f, const char *name, const char *arg,
	       struct error **err)
{
	int64_t v;
	switch (f) {
	case UPDATE_MEMORY:
		if (update_parse_size(arg, &v) < 0)
			return error_setx(err, EINVAL,
					  "--%s '%s': expected bytes with b, k, m or g, or -1",
					  name, arg);
		u->ur.set_memory = v != 0;
		u->res.memory_limit = v > 0 ? (uint64_t)v : 0;
		return 0;
	case UPDATE_PIDS:
		if (update_number(name, arg, -1, INT64_MAX, "a number, -1 for none", &v, err) < 0)
			return -EINVAL;
		u->ur.set_pids = v != 0;
		u->res.pids_limit = v > 0 ? v : 0;
		return 0;
	case UPDATE_CPU_QUOTA:
		if (update_number(name, arg, -1, INT64_MAX, "microseconds, -1 for none", &v, err) <
		    0)
			return -EINVAL;
		if (v > 0 && v < 1000)
			return error_setx(err, EINVAL, "--%s '%s': below the kernel's 1000 us",
					  name, arg);
		u->got_quota = true;
		u->res.cpu_quota = v > 0 ? v : 0;
		update_cpu_max(u);
		return 0;
	case UPDATE_CPU_PERIOD:
		if (update_number(name, arg, 1000, 1000000, "1000 .. 1000000 us", &v, err) < 0)
			return -EINVAL;
		u->got_period = true;
		u->res.cpu_period = (uint64_t)v;
		update_cpu_max(u);
		return 0;
	case UPDATE_CPU_SHARES:
		if (update_number(name, arg, 2, 262144, "2 .. 262144", &v, err) < 0)
			return -EINVAL;
		u->ur.set_cpu_weight = true;
		u->res.cpu_shares = (uint64_t)v;
		return 0;
	}
	return error_setx(err, EINVAL, "--%s: not an option with a value rule", name);
}

/* Appends what to u->ignored, comma-separated; a list that does not fit
 * ends in "...". */
static void update_note(struct update_request *u, const char *what)
{
	size_t used = strlen(u->ignored), room = sizeof(u->ignored) - used;
	if (snprintf(u->ignored + used, room, "%s%s", used ? ", " : "", what) >= (int)room)
		memcpy(u->ignored + sizeof(u->ignored) - 4, "...", 4); /* cut: say so */
}

void update_ignore(struct update_request *u, const char *name)
{
	char opt[64];
	snprintf(opt, sizeof(opt), "--%.60s", name);
	update_note(u, opt);
}

int update_read_resources(struct update_request *u, const char *path, struct error **err)
{
	_cleanup_free_ char *json = NULL;
	char more[512];
	bool is_stdin = strcmp(path, "-") == 0;
	_cleanup_close_ int fd = is_stdin ? -1 : open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC);
	if (!is_stdin && fd < 0)
		return error_set(err, errno, "--resources %s", path);
	int r = fd_read_bounded(is_stdin ? STDIN_FILENO : fd, UPDATE_RESOURCES_MAX, &json, NULL);
	if (r == -EFBIG)
		return error_setx(err, E2BIG, "--resources %s: more than 1 MiB", path);
	if (r < 0)
		return error_set(err, -r, "--resources %s", path);
	r = resources_update_from_json(json, &u->ur, &u->res, more, sizeof(more), err);
	if (r < 0)
		return r;
	if (*more)
		update_note(u, more);
	return 0;
}

/* Sends the request to the container's shim and keeps what was set for a
 * restore. */
static int update_send(struct global_opts *g, const char *id, const char *dir,
		       struct update_request *u, struct error **err)
{
	Cocoon__Request req = COCOON__REQUEST__INIT;
	Cocoon__Response *resp = NULL;

	u->ur.id = (char *)id;
	u->ur.resources = &u->res;
	req.body_case = COCOON__REQUEST__BODY_UPDATE;
	req.update = &u->ur;
	int r = container_call(g, id, &req, &resp, err);
	if (r < 0)
		return r;
	cocoon__response__free_unpacked(resp, NULL);
	_cleanup_error_ struct error *kept = NULL;
	if (resources_kept_record(dir, &u->ur, &u->res, &kept) < 0)
		log_warning("update %s: applied, but not kept for a restore: %s", id, kept->msg);
	return 0;
}

int update_container(struct global_opts *g, const char *id, struct update_request *u,
		     struct error **err)
{
	_cleanup_free_ char *dir = NULL;
	int r;

	if (u->resources && update_read_resources(u, u->resources, err) < 0)
		return error_wrap(err, "update %s", id);
	if (*u->ignored)
		log_warning("update %s: not applied inside the VM, ignored: %s", id, u->ignored);
	if ((r = container_load_live(g, id, &dir, err)) < 0)
		return r == -ESRCH ? error_wrap(err, "update %s", id) : r;
	if (!u->ur.set_memory && !u->ur.set_pids && !u->ur.set_cpu_max && !u->ur.set_cpu_weight)
		return 0;
	if (update_send(g, id, dir, u, err) < 0)
		return error_wrap(err, "update %s", id);
	return 0;
}
