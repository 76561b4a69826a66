#include "state.h"
#include "cleanup.h"
#include "paths.h"

#include <fcntl.h>
#include <json-c/json.h>
#include <sys/file.h>
#include <signal.h>
#include <string.h>
#include <time.h>

static const char *const status_names[] = {"creating", "created", "running", "paused", "stopped"};

const char *state_status_name(enum container_status s)
{
	return s <= STATUS_STOPPED ? status_names[s] : "unknown";
}

int state_dir(const char *root, const char *id, char **out, struct error **err)
{
	int r = validate_id("container", id, err);
	if (r < 0)
		return r;
	if (asprintf(out, "%s/%s", root, id) < 0)
		return error_set(err, ENOMEM, "state");
	return 0;
}

void state_now_rfc3339(char out[40])
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 40 - n, ".%09ldZ", ts.tv_nsec);
}

unsigned long long proc_start_time(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (!f || !fgets(buf, sizeof(buf), f))
		return 0;
	/* The command name may hold spaces and ')'; fields follow the last ')'. */
	char *p = strrchr(buf, ')');
	unsigned long long start = 0;
	if (p &&
	    sscanf(p + 2,
		   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
		   &start) == 1)
		return start;
	return 0;
}

bool state_shim_alive(const struct container_state *st)
{
	if (st->shim_pid <= 0)
		return false;
	if (kill(st->shim_pid, 0) < 0 && errno == ESRCH)
		return false;
	unsigned long long now = proc_start_time(st->shim_pid);
	if (now == 0 || now != st->shim_start)
		return false;
	/* A zombie is not alive either. */
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", st->shim_pid);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (f && fgets(buf, sizeof(buf), f)) {
		char *p = strrchr(buf, ')');
		if (p && p[2] == 'Z')
			return false;
	}
	return true;
}

int state_write(const char *dir, const struct container_state *st, struct error **err)
{
	_cleanup_free_ char *path = NULL;
	json_object *o = json_object_new_object();

	json_object_object_add(o, "id", json_object_new_string(st->id));
	json_object_object_add(o, "bundle", json_object_new_string(st->bundle));
	json_object_object_add(o, "rootfs", json_object_new_string(st->rootfs));
	json_object_object_add(o, "created", json_object_new_string(st->created));
	json_object_object_add(o, "status", json_object_new_string(state_status_name(st->status)));
	json_object_object_add(o, "shim_pid", json_object_new_int(st->shim_pid));
	json_object_object_add(o, "shim_start", json_object_new_uint64(st->shim_start));
	json_object_object_add(o, "exit_status", json_object_new_int(st->exit_status));
	if (st->cgroup[0])
		json_object_object_add(o, "cgroup", json_object_new_string(st->cgroup));
	const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY);
	int r = asprintf(&path, "%s/" STATE_FILE, dir) < 0
			? error_set(err, ENOMEM, "state")
			: write_file_atomic(path, text, strlen(text), 0600, err);
	json_object_put(o);
	return r;
}

static void copy_str(json_object *o, const char *key, char *out, size_t size)
{
	json_object *v;
	if (json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
		snprintf(out, size, "%s", json_object_get_string(v));
}

int state_read(const char *dir, struct container_state *st, struct error **err)
{
	_cleanup_free_ char *path = NULL, *text = NULL;
	json_object *v;
	char status[32] = "";

	memset(st, 0, sizeof(*st));
	if (asprintf(&path, "%s/" STATE_FILE, dir) < 0)
		return error_set(err, ENOMEM, "state");
	int r = read_file_bounded(path, 64 * 1024, &text, NULL, err);
	if (r < 0)
		return r;
	json_object *o = json_tokener_parse(text);
	if (!o)
		return error_setx(err, EINVAL, "%s is corrupt", path);
	copy_str(o, "id", st->id, sizeof(st->id));
	copy_str(o, "bundle", st->bundle, sizeof(st->bundle));
	copy_str(o, "rootfs", st->rootfs, sizeof(st->rootfs));
	copy_str(o, "created", st->created, sizeof(st->created));
	copy_str(o, "status", status, sizeof(status));
	copy_str(o, "cgroup", st->cgroup, sizeof(st->cgroup));
	if (json_object_object_get_ex(o, "shim_pid", &v))
		st->shim_pid = json_object_get_int(v);
	if (json_object_object_get_ex(o, "shim_start", &v))
		st->shim_start = json_object_get_uint64(v);
	if (json_object_object_get_ex(o, "exit_status", &v))
		st->exit_status = json_object_get_int(v);
	json_object_put(o);
	st->status = STATUS_STOPPED;
	for (int i = 0; i <= STATUS_STOPPED; i++)
		if (strcmp(status, status_names[i]) == 0)
			st->status = (enum container_status)i;
	if (st->status != STATUS_STOPPED && !state_shim_alive(st))
		st->status = STATUS_STOPPED;
	return 0;
}

int state_keeper_write(const char *dir, pid_t pid, unsigned long long start, bool pod,
		       struct error **err)
{
	char path[4200], text[64];
	snprintf(path, sizeof(path), "%s/" STATE_KEEPER_FILE, dir);
	int n = snprintf(text, sizeof(text), "%d %llu%s\n", pid, start, pod ? " pod" : "");
	return write_file_atomic(path, text, (size_t)n, 0600, err);
}

int state_keeper_read(const char *dir, pid_t *pid, unsigned long long *start, bool *pod)
{
	char mark[8] = "";
	char path[4200];
	_cleanup_free_ char *text = NULL;
	snprintf(path, sizeof(path), "%s/" STATE_KEEPER_FILE, dir);
	int r = read_file_bounded(path, 64, &text, NULL, NULL);
	if (r < 0)
		return r; /* -ENOENT: none; EMFILE, EIO...: not known to be dead (rev16b L3) */
	struct container_state k = {0};
	if (sscanf(text, "%d %llu %7s", &k.shim_pid, &k.shim_start, mark) < 2 || k.shim_pid <= 0)
		return -ESRCH; /* written atomically by the keeper: not one of its */
	if (!state_shim_alive(&k))
		return -ESRCH;
	*pid = k.shim_pid;
	*start = k.shim_start;
	if (pod)
		*pod = strcmp(mark, "pod") == 0;
	return 0;
}

int state_lock_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			int e = errno;
			close(fd);
			return -e;
		}
	}
	return fd;
}
