/* Request dispatch. Replies that need a child process are sent from the job's
 * done callback; everything else is answered at once. */
#include "agent.h"
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

void agent_send_response(struct agent *a, Cocoon__Response *resp)
{
	_cleanup_free_ uint8_t *buf = NULL;
	size_t len = 0;

	if (proto_frame_response(resp, &buf, &len, NULL) < 0)
		return;
	if (a->outq_len + len > AGENT_OUTQ_MAX) {
		agent_log(a, "host is not reading; dropping reply %llu",
			  (unsigned long long)resp->id);
		return;
	}
	uint8_t *grown = realloc(a->outq, a->outq_len + len);
	if (!grown)
		return;
	a->outq = grown;
	memcpy(a->outq + a->outq_len, buf, len);
	a->outq_len += len;
}

void agent_send_error(struct agent *a, uint64_t id, int code, const char *fmt, ...)
{
	Cocoon__Response resp = COCOON__RESPONSE__INIT;
	_cleanup_free_ char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	resp.id = id;
	resp.error = code > 0 ? -code : code;
	resp.message = msg ? msg : (char *)"error";
	agent_send_response(a, &resp);
}

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

static void handle_guest_info(struct agent *a, uint64_t id, const Cocoon__GuestInfoRequest *req)
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
static bool valid_shared_name(const char *name)
{
	size_t n = strlen(name);
	return n > 0 && n <= 128 && !strchr(name, '/') && strcmp(name, ".") != 0 &&
	       strcmp(name, "..") != 0;
}

static void handle_shared_check(struct agent *a, uint64_t id, const Cocoon__SharedCheckRequest *req)
{
	Cocoon__Response resp = COCOON__RESPONSE__INIT;
	Cocoon__SharedCheckReply reply = COCOON__SHARED_CHECK_REPLY__INIT;
	char buf[65536];
	char reply_name[160];

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

static void dispatch(struct agent *a, const Cocoon__Request *req)
{
	Cocoon__Response resp = COCOON__RESPONSE__INIT;
	Cocoon__Pong pong = COCOON__PONG__INIT;
	Cocoon__VersionReply version = COCOON__VERSION_REPLY__INIT;
	Cocoon__ShutdownReply bye = COCOON__SHUTDOWN_REPLY__INIT;

	resp.id = req->id;
	switch (req->body_case) {
	case COCOON__REQUEST__BODY_PING:
		pong.nonce = req->ping->nonce;
		resp.body_case = COCOON__RESPONSE__BODY_PONG;
		resp.pong = &pong;
		break;
	case COCOON__REQUEST__BODY_VERSION:
		version.protocol = PROTOCOL_VERSION;
		version.agent_version = (char *)COCOON_VERSION;
		resp.body_case = COCOON__RESPONSE__BODY_VERSION;
		resp.version = &version;
		break;
	case COCOON__REQUEST__BODY_GUEST_INFO:
		handle_guest_info(a, req->id, req->guest_info);
		return;
	case COCOON__REQUEST__BODY_SHARED_CHECK:
		handle_shared_check(a, req->id, req->shared_check);
		return;
	case COCOON__REQUEST__BODY_SHUTDOWN:
		a->shutdown_requested = true;
		resp.body_case = COCOON__RESPONSE__BODY_SHUTDOWN;
		resp.shutdown = &bye;
		break;
	case COCOON__REQUEST__BODY_CREATE:
		container_handle_create(a, req->id, req->create);
		return;
	case COCOON__REQUEST__BODY_START:
		container_handle_start(a, req->id, req->start);
		return;
	case COCOON__REQUEST__BODY_SIGNAL:
		container_handle_signal(a, req->id, req->signal);
		return;
	case COCOON__REQUEST__BODY_PAUSE:
		container_handle_pause(a, req->id, req->pause);
		return;
	case COCOON__REQUEST__BODY_EXEC:
		container_handle_exec(a, req->id, req->exec);
		return;
	case COCOON__REQUEST__BODY_PS:
		container_handle_ps(a, req->id, req->ps);
		return;
	case COCOON__REQUEST__BODY_UPDATE:
		container_handle_update(a, req->id, req->update);
		return;
	case COCOON__REQUEST__BODY_STATS:
		container_handle_stats(a, req->id, req->stats);
		return;
	case COCOON__REQUEST__BODY_CHECKPOINT:
		checkpoint_handle(a, req->id, req->checkpoint);
		return;
	case COCOON__REQUEST__BODY_RESTORE:
		restore_handle(a, req->id, req->restore);
		return;
	case COCOON__REQUEST__BODY_STDIN:
		container_handle_stdin(a, req->stdin);
		return;
	case COCOON__REQUEST__BODY_RESIZE:
		container_handle_resize(a, req->resize);
		return;
	case COCOON__REQUEST__BODY_LOOPBACK_HOLD:
		pod_handle_loopback_hold(a, req->id, req->loopback_hold);
		return;
	case COCOON__REQUEST__BODY_TEMPLATE_RESUME:
		template_resume_handle(a, req->id, req->template_resume);
		return;
	default:
		agent_send_error(a, req->id, EOPNOTSUPP, "request type %d is not supported",
				 (int)req->body_case);
		return;
	}
	agent_send_response(a, &resp);
}

/* CRIU and containers need the late modules (netfilter, *_diag, veth). */
static bool needs_late_modules(Cocoon__Request__BodyCase body)
{
	return body == COCOON__REQUEST__BODY_GUEST_INFO || body == COCOON__REQUEST__BODY_CREATE ||
	       body == COCOON__REQUEST__BODY_CHECKPOINT || body == COCOON__REQUEST__BODY_RESTORE;
}

void agent_replay_deferred(struct agent *a)
{
	size_t n = a->n_deferred;
	a->n_deferred = 0;
	for (size_t i = 0; i < n; i++) {
		agent_handle_frame(a, a->deferred[i], a->deferred_len[i]);
		free(a->deferred[i]);
	}
}

void agent_handle_frame(struct agent *a, const uint8_t *payload, size_t len)
{
	Cocoon__Request *req = cocoon__request__unpack(NULL, len, payload);

	if (req && a->late_modules_pending && needs_late_modules(req->body_case)) {
		uint8_t *copy =
			a->n_deferred < ARRAY_SIZE(a->deferred) ? malloc(len ? len : 1) : NULL;
		if (copy) {
			memcpy(copy, payload, len);
			a->deferred[a->n_deferred] = copy;
			a->deferred_len[a->n_deferred++] = len;
		} else {
			agent_send_error(a, req->id, EAGAIN,
					 "the agent is still starting; try again");
		}
		cocoon__request__free_unpacked(req, NULL);
		return;
	}

	if (!req) {
		agent_send_error(a, 0, EBADMSG, "undecodable request of %zu bytes", len);
		return;
	}
	if (req->protocol != PROTOCOL_VERSION)
		agent_send_error(a, req->id, EPROTO, "protocol version %u, agent speaks %u",
				 req->protocol, PROTOCOL_VERSION);
	else
		dispatch(a, req);
	cocoon__request__free_unpacked(req, NULL);
}
