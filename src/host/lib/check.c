/* cocoon check's probes in the host library (check.h). */
#include "check.h"
#include "accel.h"
#include "cleanup.h"
#include "fdio.h"
#include "paths.h"
#include "safefs.h"
#include "vmsnap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHECK_VERSION_MS 5000
#define CHECK_SHARED_MS 10000
#define CHECK_REPLY_MAX 4096 /* bytes of probe.reply */

int check_agent_version(struct sandbox *sb, Cocoon__Response **out, struct error **err)
{
	Cocoon__Request req = COCOON__REQUEST__INIT;
	Cocoon__VersionRequest v = COCOON__VERSION_REQUEST__INIT;

	req.body_case = COCOON__REQUEST__BODY_VERSION;
	req.version = &v;
	int r = agent_call(&sb->agent, &req, out, CHECK_VERSION_MS, err);
	if (r < 0)
		return r;
	agent_text_sanitize((*out)->version->agent_version);
	return 0;
}

/* Sanitizes each line of *text apart (agent_text_sanitize would make the
 * newlines spaces), into a new string that replaces it; empty lines are
 * dropped. *text is a string of an unpacked message (protobuf-c's default
 * allocator: malloc), or protobuf-c's shared empty string, left alone. */
static int check_sanitize_lines(char **text)
{
	if (!**text)
		return 0;
	_cleanup_free_ char *joined = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&joined, &len);
	if (!f)
		return -ENOMEM;
	char *save = NULL;
	for (char *line = strtok_r(*text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		agent_text_sanitize(line);
		fprintf(f, "%s\n", line);
	}
	if (fclose(f) != 0)
		return -ENOMEM;
	free(*text);
	*text = TAKE_PTR(joined);
	return 0;
}

int check_guest_info(struct sandbox *sb, Cocoon__Response **out, struct error **err)
{
	Cocoon__Request req = COCOON__REQUEST__INIT;
	Cocoon__GuestInfoRequest gi = COCOON__GUEST_INFO_REQUEST__INIT;

	gi.criu_check = true;
	req.body_case = COCOON__REQUEST__BODY_GUEST_INFO;
	req.guest_info = &gi;
	int r = agent_call(&sb->agent, &req, out, CHECK_GUEST_INFO_MS, err);
	if (r < 0)
		return r;
	Cocoon__GuestInfoReply *info = (*out)->guest_info;
	agent_text_sanitize(info->kernel_release);
	agent_text_sanitize(info->criu_version);
	agent_text_sanitize(info->criu_path);
	for (size_t i = 0; i < info->n_criu_check_lines; i++)
		agent_text_sanitize(info->criu_check_lines[i]);
	for (size_t i = 0; i < info->n_module_failures; i++)
		agent_text_sanitize(info->module_failures[i]);
	if (check_sanitize_lines(&info->criu_check_output) < 0) {
		cocoon__response__free_unpacked(*out, NULL);
		*out = NULL;
		return error_set(err, ENOMEM, "guest info");
	}
	return 0;
}

int check_shared_dir(struct sandbox *sb, struct error **err)
{
	Cocoon__Request req = COCOON__REQUEST__INIT;
	Cocoon__SharedCheckRequest sc = COCOON__SHARED_CHECK_REQUEST__INIT;
	Cocoon__Response *resp = NULL;
	_cleanup_free_ char *path = NULL, *back = NULL;
	char token[64];

	snprintf(token, sizeof(token), "cocoon-shared-check %d %lld", getpid(), now_ms());
	if (asprintf(&path, "%s/probe", sb->shared_dir) < 0)
		return error_set(err, ENOMEM, "shared dir");
	int r = write_file_atomic(path, token, strlen(token), 0600, err);
	if (r < 0)
		return r;
	sc.name = (char *)"probe";
	req.body_case = COCOON__REQUEST__BODY_SHARED_CHECK;
	req.shared_check = &sc;
	if ((r = agent_call(&sb->agent, &req, &resp, CHECK_SHARED_MS, err)) < 0)
		return r;
	cocoon__response__free_unpacked(resp, NULL);
	/* The guest wrote it: read by fd, no symlink followed. */
	_cleanup_close_ int dirfd =
		open(sb->shared_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dirfd < 0)
		return error_set(err, errno, "guest write not visible on host");
	if (safefs_read(dirfd, "probe.reply", CHECK_REPLY_MAX, &back, NULL, err) < 0)
		return error_wrap(err, "guest write not visible on host");
	if (strcmp(back, token) != 0)
		return error_setx(err, EPROTO, "guest wrote back different bytes");
	return 0;
}

/* ---- the report (check_run) ---------------------------------------------- */

struct check_run {
	check_emit_fn emit;
	void *ctx;
	struct check_result *res;
};

static void line(struct check_run *run, enum check_kind kind, const char *name, const char *fmt,
		 ...) __attribute__((format(printf, 4, 5)));
static void line(struct check_run *run, enum check_kind kind, const char *name, const char *fmt,
		 ...)
{
	_cleanup_free_ char *text = NULL;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&text, fmt, ap) < 0)
		text = NULL;
	va_end(ap);
	struct check_line l = {.kind = kind, .name = name, .text = text ? text : "out of memory"};
	run->res->failures += kind == CHECK_FAIL;
	run->emit(run->ctx, &l);
}

static void check_version(struct check_run *run, struct sandbox *sb)
{
	_cleanup_error_ struct error *err = NULL;
	Cocoon__Response *resp = NULL;

	if (check_agent_version(sb, &resp, &err) < 0) {
		line(run, CHECK_FAIL, "agent", "%s", error_msg(err));
		return;
	}
	line(run, CHECK_OK, "agent", "%s (protocol %u)", resp->version->agent_version,
	     resp->version->protocol);
	cocoon__response__free_unpacked(resp, NULL);
}

/* What check_guest_info said (its text made safe for the terminal). */
static void check_guest(struct check_run *run, struct sandbox *sb, const struct cocoon_config *cfg)
{
	_cleanup_error_ struct error *err = NULL;
	Cocoon__Response *resp = NULL;

	if (check_guest_info(sb, &resp, &err) < 0) {
		line(run, CHECK_FAIL, "guest info", "%s", error_msg(err));
		return;
	}
	Cocoon__GuestInfoReply *info = resp->guest_info;
	line(run, CHECK_OK, "guest kernel", "%s", info->kernel_release);
	if (!*info->criu_version)
		line(run, CHECK_FAIL, "criu", "%s does not run in the guest (guest_criu_path)",
		     info->criu_path);
	else
		line(run, CHECK_OK, "criu", "%s at %s", info->criu_version, info->criu_path);
	if (info->criu_check_ok && info->n_criu_check_lines == 0)
		line(run, CHECK_OK, "criu check", "ok");
	else if (info->criu_check_ok)
		line(run, CHECK_OK, "criu check", "ok, with warnings");
	else
		line(run, CHECK_FAIL, "criu check", "not clean");
	for (size_t i = 0; i < info->n_criu_check_lines; i++)
		line(run, CHECK_MORE, "", "%s", info->criu_check_lines[i]);
	if (cfg->enable_debug && *info->criu_check_output)
		line(run, CHECK_BLOCK, "criu check output", "%s", info->criu_check_output);
	if (info->n_module_failures == 0)
		line(run, CHECK_OK, "modules", "all loaded");
	for (size_t i = 0; i < info->n_module_failures; i++)
		line(run, CHECK_FAIL, "modules", "%s", info->module_failures[i]);
	if (!cfg->enable_checkpoint)
		line(run, CHECK_OK, "checkpoint", "disabled by runtime.enable_checkpoint in %s",
		     cfg->source ? cfg->source : "the configuration");
	else if (info->criu_check_ok && *info->criu_version)
		line(run, CHECK_OK, "checkpoint", "can work");
	else
		line(run, CHECK_FAIL, "checkpoint",
		     "cannot work: CRIU in the guest is not usable (see above)");
	cocoon__response__free_unpacked(resp, NULL);
}

static void check_shared(struct check_run *run, struct sandbox *sb, const char *fs)
{
	_cleanup_error_ struct error *err = NULL;
	if (check_shared_dir(sb, &err) < 0)
		line(run, CHECK_FAIL, "shared dir", "%s", error_msg(err));
	else
		line(run, CHECK_OK, "shared dir", "ok (%s, read and write)", fs);
}

/* Whole-VM checkpoints (vmsnap.h): what the configured VMM can do. A
 * failure only when checkpoint_mode asks for them. */
static void check_vmsnap(struct check_run *run, const struct cocoon_config *cfg)
{
	struct vmsnap_caps c;
	char why[1024];
	vmsnap_probe(cfg, &c);
	if (vmsnap_caps_check(&c, why, sizeof(why)) == 0)
		line(run, CHECK_OK, "whole-VM ckpt", "available (QEMU %d.%d.%d%s, %s)",
		     c.qemu_major, c.qemu_minor, c.qemu_micro,
		     c.mapped_ram ? " with mapped-ram" : "", c.virtiofsd_version);
	else if (strcmp(cfg->checkpoint_mode, "vm") == 0)
		line(run, CHECK_FAIL, "whole-VM ckpt", "checkpoint_mode \"vm\", but %s", why);
	else
		line(run, CHECK_OK, "whole-VM ckpt", "not available: %s", why);
}

int check_run(const struct global_opts *g, check_emit_fn emit, void *ctx, struct check_result *res,
	      struct error **err)
{
	struct check_run run = {.emit = emit, .ctx = ctx, .res = res};
	_cleanup_free_ char *dir = NULL, *note = NULL;
	struct sandbox sb;
	char accel[8];
	int r;

	*res = (struct check_result){0};
	if ((r = mkdir_p(g->root, 0700, err)) < 0)
		return r;
	if (asprintf(&dir, "%s/check-%d", g->root, getpid()) < 0)
		return error_setx(err, ENOMEM, "out of memory");
	if ((r = accel_resolve(&g->cfg, accel, &note, sandbox_probe_kvm, err)) < 0)
		return r;
	struct sandbox_options opts = {.accel = accel};
	line(&run, CHECK_TITLE, "", "cocoon check");
	line(&run, CHECK_OK, "config", "%s",
	     g->cfg.source ? g->cfg.source : "(defaults; no config file)");
	_cleanup_error_ struct error *boot = NULL;
	if (sandbox_boot(&sb, &g->cfg, dir, &opts, &boot) < 0) {
		line(&run, CHECK_FAIL, "boot", "%s", error_msg(boot));
		return 0;
	}
	res->booted = true;
	line(&run, CHECK_OK, "accel", "%s%s%s%s", accel, note ? " (" : "", note ? note : "",
	     note ? ")" : "");
	line(&run, CHECK_OK, "boot", "%lld ms to agent ready (%s)", sb.boot_ms,
	     sb.from_template ? "from the VM template" : "cold boot");
	check_version(&run, &sb);
	check_guest(&run, &sb, &g->cfg);
	check_shared(&run, &sb, g->cfg.shared_fs);
	check_vmsnap(&run, &g->cfg);
	sandbox_shutdown(&sb);
	sandbox_destroy(&sb, true);
	return 0;
}
