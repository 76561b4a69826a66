/* The GuestInfo and SharedCheck requests (info.h): what the guest booted
 * with, and whether the shared directory is the host's. */
#include "info.h"
#include "agent.h"
#include "channel.h"
#include "jobs.h"
#include "modules.h"
#include "cleanup.h"

#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <sys/wait.h>

#ifndef COCOON_VERSION
#define COCOON_VERSION "unknown"
#endif

struct guest_info_ctx {
	uint64_t id;
	bool want_check;
	char *version;
	struct agent *agent;
};

static void guest_info_reply(struct guest_info_ctx *ctx, const char *check_out, int check_status,
			     bool check_ran)
{
	Cocoon__Response resp = COCOON__RESPONSE__INIT;
	Cocoon__GuestInfoReply info = COCOON__GUEST_INFO_REPLY__INIT;
	struct agent *a = ctx->agent;
	struct utsname uts;
	struct sysinfo si;
	char *lines[64];
	size_t n_lines = 0;
	_cleanup_free_ char *copy = check_out ? strdup(check_out) : NULL;

	uname(&uts);
	sysinfo(&si);
	info.kernel_release = uts.release;
	info.criu_path = a->criu_path;
	info.criu_version = ctx->version ? ctx->version : (char *)"";
	info.criu_check_ran = check_ran;
	info.module_failures = a->module_failures;
	info.n_module_failures = a->n_module_failures;
	info.shared_mounted = a->shared_mounted;
	info.uptime_ms = (uint64_t)si.uptime * 1000;

	bool has_error = false;
	for (char *save = NULL, *l = copy ? strtok_r(copy, "\n", &save) : NULL; l;
	     l = strtok_r(NULL, "\n", &save)) {
		bool err = strstr(l, "Error") != NULL;
		has_error |= err;
		if ((err || strstr(l, "Warn")) && n_lines < ARRAY_SIZE(lines))
			lines[n_lines++] = l;
	}
	info.criu_check_ok = check_ran && WIFEXITED(check_status) &&
			     WEXITSTATUS(check_status) == 0 && !has_error;
	/* A failing check with no Error line still needs to say something. */
	if (check_ran && !info.criu_check_ok && n_lines == 0 && copy && n_lines < ARRAY_SIZE(lines))
		lines[n_lines++] = copy;
	info.criu_check_output = check_out ? (char *)check_out : (char *)"";
	info.criu_check_lines = lines;
	info.n_criu_check_lines = n_lines;

	resp.id = ctx->id;
	resp.body_case = COCOON__RESPONSE__BODY_GUEST_INFO;
	resp.guest_info = &info;
	agent_send_response(a, &resp);
	free(ctx->version);
	free(ctx);
}

static void guest_info_check_done(struct agent_job *job, int status)
{
	guest_info_reply(job->userdata, job->out ? job->out : "", status, true);
}

static void guest_info_version_done(struct agent_job *job, int status)
{
	struct guest_info_ctx *ctx = job->userdata;
	struct agent *a = ctx->agent;

	/* criu --version prints "Version: 3.17.1" and maybe a GitID line. */
	const char *v = job->out ? strstr(job->out, "Version:") : NULL;
	if (v && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		v += strlen("Version:");
		v += strspn(v, " \t");
		ctx->version = strndup(v, strcspn(v, "\n"));
	}
	if (!ctx->want_check) {
		guest_info_reply(ctx, NULL, 0, false);
		return;
	}
	/* enable_debug (cocoon.debug=1) raises CRIU's log level. */
	char *argv[] = {a->criu_path, (char *)"check", a->debug ? (char *)"-v4" : NULL, NULL};
	_cleanup_error_ struct error *err = NULL;
	if (agent_job_start(a, argv, guest_info_check_done, ctx, &err) < 0)
		guest_info_reply(ctx, err->msg, 1 << 8, true);
}

void guest_info_handle(struct agent *a, uint64_t id, const Cocoon__GuestInfoRequest *req)
{
	struct guest_info_ctx *ctx = calloc(1, sizeof(*ctx));
	_cleanup_error_ struct error *err = NULL;

	if (!ctx) {
		agent_send_error(a, id, ENOMEM, "guest_info: out of memory");
		return;
	}
	ctx->id = id;
	ctx->agent = a;
	ctx->want_check = req && req->criu_check;
	char *argv[] = {a->criu_path, (char *)"--version", NULL};
	if (agent_job_start(a, argv, guest_info_version_done, ctx, &err) < 0) {
		agent_send_error(a, id, err->code, "guest_info: %s", err->msg);
		free(ctx);
	}
}

/* Names from the host become paths: one plain component, nothing else. */
#define SHARED_NAME_MAX 128
static bool valid_shared_name(const char *name)
{
	size_t n = strlen(name);
	return n > 0 && n <= SHARED_NAME_MAX && !strchr(name, '/') && strcmp(name, ".") != 0 &&
	       strcmp(name, "..") != 0;
}

void shared_check_handle(struct agent *a, uint64_t id, const Cocoon__SharedCheckRequest *req)
{
	Cocoon__Response resp = COCOON__RESPONSE__INIT;
	Cocoon__SharedCheckReply reply = COCOON__SHARED_CHECK_REPLY__INIT;
	char buf[65536];
	char reply_name[SHARED_NAME_MAX + sizeof(".reply")];

	if (!a->shared_mounted) {
		agent_send_error(a, id, ENODEV, "shared directory is not mounted in the guest");
		return;
	}
	if (!req || !valid_shared_name(req->name)) {
		agent_send_error(a, id, EINVAL, "shared_check: invalid file name");
		return;
	}
	_cleanup_close_ int dir = open(AGENT_SHARED_DIR, O_PATH | O_DIRECTORY | O_CLOEXEC);
	_cleanup_close_ int in = openat(dir, req->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (in < 0) {
		agent_send_error(a, id, errno, "shared_check: open %s: %s", req->name,
				 strerror(errno));
		return;
	}
	ssize_t n = read(in, buf, sizeof(buf));
	snprintf(reply_name, sizeof(reply_name), "%s.reply", req->name);
	_cleanup_close_ int out = openat(
		dir, reply_name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (n < 0 || out < 0 || write(out, buf, (size_t)n) != n) {
		agent_send_error(a, id, errno, "shared_check: %s: %s", reply_name, strerror(errno));
		return;
	}
	reply.bytes = (uint64_t)n;
	resp.id = id;
	resp.body_case = COCOON__RESPONSE__BODY_SHARED_CHECK;
	resp.shared_check = &reply;
	agent_send_response(a, &resp);
}
