/* cocoon check's probes in the host library (check.h). */
#include "check.h"
#include "cleanup.h"
#include "fdio.h"
#include "paths.h"
#include "safefs.h"

#include <errno.h>
#include <fcntl.h>
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
