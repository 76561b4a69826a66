/* The shim's state and the small helpers every part of it uses (shim-state.h). */
#include "shim-state.h"
#include "agent-client.h"
#include "cleanup.h"
#include "guard.h"
#include "log.h"
#include "network.h"
#include "paths.h"
#include "resources.h"
#include "pod.h"
#include "sandbox.h"
#include "state.h"

#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>

void shim_write_all(int fd, const void *buf, size_t len)
{
	if (fd >= 0)
		(void)fd_write_all(fd, buf, len);
}

int shim_exit_code_of(int wait_status)
{
	if (WIFEXITED(wait_status))
		return WEXITSTATUS(wait_status);
	if (WIFSIGNALED(wait_status))
		return 128 + WTERMSIG(wait_status);
	return 255;
}

struct shim_exec *shim_find_exec(struct shim *s, const char *exec_id)
{
	for (int i = 0; i < SHIM_MAX_EXECS; i++)
		if (s->execs[i].used && strcmp(s->execs[i].exec_id, exec_id) == 0)
			return &s->execs[i];
	return NULL;
}

void shim_close_exec(struct shim_exec *e)
{
	if (e->in >= 0)
		close(e->in);
	if (e->out >= 0)
		close(e->out);
	if (e->err >= 0)
		close(e->err);
	shim_sink_close(&e->out_sink);
	shim_sink_close(&e->err_sink);
	memset(e, 0, sizeof(*e));
	e->in = e->out = e->err = e->client_fd = e->tty.fd = -1;
	e->out_sink.fd = e->out_sink.wfd = e->err_sink.fd = e->err_sink.wfd = -1;
}

void shim_execs_abandon(struct shim *s)
{
	for (int i = 0; i < SHIM_MAX_EXECS; i++) {
		struct shim_exec *e = &s->execs[i];
		if (!e->used)
			continue;
		Cocoon__Response out = COCOON__RESPONSE__INIT;
		Cocoon__ExitEvent x = COCOON__EXIT_EVENT__INIT;
		if (e->ended)
			x = e->exit;
		else
			x.wait_status = SIGKILL; /* as a wait status: killed */
		x.id = (char *)s->args->id;
		x.exec_id = e->exec_id;
		out.body_case = COCOON__RESPONSE__BODY_EXIT;
		out.exit = &x;
		shim_send_to_client(e->client_fd, &out);
		shim_close_exec(e);
	}
}

void shim_send_to_client(int fd, Cocoon__Response *resp)
{
	_cleanup_free_ uint8_t *buf = NULL;
	size_t len;
	if (fd < 0 || proto_frame_response(resp, &buf, &len, NULL) < 0)
		return;
	/* The shim's signals come through its signalfd: no EINTR here, so a
	 * short count is a send timeout. */
	ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
	if (n == (ssize_t)len)
		return;
	int e = n < 0 ? errno : ETIMEDOUT;
	if (e != EPIPE && e != ECONNRESET)
		log_warning("shim: a client's connection took %zd of a %zu-byte frame (%s): it is "
			    "closed (a pod member's shim that reads nothing for "
			    "limits.channel_send_timeout_ms is taken as gone)",
			    n > 0 ? n : 0, len, strerror(e));
	(void)shutdown(fd, SHUT_RDWR); /* it may be gone: then nothing to do */
}

struct shim_client *shim_find_member(struct shim *s, const char *id)
{
	for (int i = 0; i < SHIM_MAX_CLIENTS; i++)
		if (s->clients[i].fd >= 0 && s->clients[i].member[0] &&
		    strcmp(s->clients[i].member, id) == 0)
			return &s->clients[i];
	return NULL;
}

char *shim_find_departing(struct shim *s, const char *id)
{
	for (int i = 0; i < SHIM_MAX_CLIENTS; i++)
		if (s->departing[i][0] && strcmp(s->departing[i], id) == 0)
			return s->departing[i];
	return NULL;
}

void shim_reply_error(int fd, uint64_t id, const struct error *e)
{
	Cocoon__Response resp = COCOON__RESPONSE__INIT;
	resp.id = id;
	resp.error = -(e ? e->code : EIO);
	resp.message = e ? e->msg : (char *)"error";
	shim_send_to_client(fd, &resp);
}

int shim_silence_ms(const struct shim *s)
{
	return s->args->pod ? 0 : (int)s->args->g->cfg.checkpoint_silence_ms;
}

void shim_abandon(struct shim *s, Cocoon__Request__BodyCase kind, uint64_t agent_id,
		  const char *container, const char *ckid)
{
	long long now = now_ms();
	struct shim_abandoned *slot = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(s->abandoned) && !slot; i++)
		if (!s->abandoned[i].pending || s->abandoned[i].until_ms <= now)
			slot = &s->abandoned[i];
	if (!slot)
		return; /* bounded: a reply beyond these is dropped, as before */
	*slot = (struct shim_abandoned){.pending = true,
					.kind = kind,
					.agent_id = agent_id,
					.until_ms = now + SHIM_CHECKPOINT_TIMEOUT_MS};
	snprintf(slot->container, sizeof(slot->container), "%s", container);
	snprintf(slot->ckid, sizeof(slot->ckid), "%s", ckid ? ckid : "");
}

bool shim_abandoned_take(struct shim *s, uint64_t agent_id, struct shim_abandoned *out)
{
	long long now = now_ms();
	for (size_t i = 0; i < ARRAY_SIZE(s->abandoned); i++) {
		struct shim_abandoned *a = &s->abandoned[i];
		if (!a->pending || a->agent_id != agent_id || a->until_ms <= now)
			continue;
		*out = *a;
		a->pending = false;
		return true;
	}
	return false;
}

int shim_members_left(const struct shim *s)
{
	int n = 0;
	for (int i = 0; i < SHIM_MAX_CLIENTS; i++)
		n += s->clients[i].fd >= 0 && s->clients[i].member[0];
	return n;
}
