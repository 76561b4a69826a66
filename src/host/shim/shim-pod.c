/* Pods: the sandbox's shim serves the requests of its members' shims. */
#include "shim-pod.h"
#include "shim-state.h"
#include "agent-client.h"
#include "cleanup.h"
#include "guard.h"
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

/* Where a request names its container. */
static char **request_id_slot(Cocoon__Request *req)
{
	switch (req->body_case) {
	case COCOON__REQUEST__BODY_CREATE:
		return req->create->spec ? &req->create->spec->id : NULL;
	case COCOON__REQUEST__BODY_RESTORE:
		return req->restore->spec ? &req->restore->spec->id : NULL;
	case COCOON__REQUEST__BODY_START:
		return &req->start->id;
	case COCOON__REQUEST__BODY_SIGNAL:
		return &req->signal->id;
	case COCOON__REQUEST__BODY_PAUSE:
		return &req->pause->id;
	case COCOON__REQUEST__BODY_PS:
		return &req->ps->id;
	case COCOON__REQUEST__BODY_UPDATE:
		return &req->update->id;
	case COCOON__REQUEST__BODY_STATS:
		return &req->stats->id;
	case COCOON__REQUEST__BODY_EXEC:
		return &req->exec->id;
	case COCOON__REQUEST__BODY_STDIN:
		return &req->stdin->id;
	case COCOON__REQUEST__BODY_CHECKPOINT:
		return &req->checkpoint->id;
	default:
		return NULL;
	}
}

/* The first request of a member's shim creates (or restores) its container
 * in this VM; from then on the connection speaks for that container only,
 * and gets its events. */
static int member_register(struct shim *s, struct shim_client *c, const char *id,
			   struct error **err)
{
	if (c->member[0])
		return error_setx(err, EINVAL, "this connection already speaks for container %s",
				  c->member);
	if (validate_id("container", id, err) < 0)
		return -EINVAL;
	if (strcmp(id, s->args->id) == 0 || shim_find_member(s, id))
		return error_setx(err, EEXIST, "container %s is in this pod already", id);
	snprintf(c->member, sizeof(c->member), "%s", id);
	/* Its output must not be dropped: a member that does not read stalls
	 * the pod's events for at most this long, then loses them. */
	struct timeval tv = {.tv_sec = 10};
	fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) & ~O_NONBLOCK);
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return 0;
}

/* update: memory up to what this VM can give (resources.h). A member's own
 * shim has no VM (memory_mib 0): the pod's shim checks. */
int shim_update_check(struct shim *s, const Cocoon__Request *req, struct error **err)
{
	if (req->body_case != COCOON__REQUEST__BODY_UPDATE || !req->update->set_memory ||
	    !req->update->resources)
		return 0;
	if (resources_update_fits(s->sb.memory_mib, req->update->resources->memory_limit, err) < 0)
		return error_wrap(err, "update %s", req->update->id);
	return 0;
}

void shim_handle_member_request(struct shim *s, struct shim_client *c, Cocoon__Request *req)
{
	_cleanup_error_ struct error *err = NULL;
	Cocoon__Response *resp = NULL;
	char **slot = request_id_slot(req);
	uint64_t cid = req->id; /* agent_call gives req an id of its own */
	bool joining = req->body_case == COCOON__REQUEST__BODY_CREATE ||
		       req->body_case == COCOON__REQUEST__BODY_RESTORE;

	if (!slot || !*slot) {
		error_setx(&err, EOPNOTSUPP, "request not supported from a pod member");
		shim_reply_error(c->fd, cid, err);
		return;
	}
	if (joining && member_register(s, c, *slot, &err) < 0) {
		shim_reply_error(c->fd, cid, err);
		return;
	}
	char *client_id = *slot;
	*slot = c->member;
	if (req->body_case == COCOON__REQUEST__BODY_STDIN) {
		agent_send_oneway(&s->sb.agent, req, NULL);
		*slot = client_id;
		return;
	}
	if (shim_update_check(s, req, &err) < 0) {
		*slot = client_id;
		shim_reply_error(c->fd, cid, err);
		return;
	}
	bool long_call = joining || req->body_case == COCOON__REQUEST__BODY_CHECKPOINT;
	int r = agent_call(&s->sb.agent, req, &resp,
			   long_call ? SHIM_CHECKPOINT_TIMEOUT_MS : SHIM_CALL_TIMEOUT_MS, &err);
	*slot = client_id;
	if (r < 0) {
		if (joining)
			c->member[0] = 0;
		shim_reply_error(c->fd, cid, err);
		return;
	}
	resp->id = cid;
	shim_send_to_client(c->fd, resp);
	cocoon__response__free_unpacked(resp, NULL);
}

/* A member's shim went away (its container ended, or delete --force): its
 * container must not outlive it in the VM. */
void shim_member_gone(struct shim *s, const char *id)
{
	Cocoon__Request req = COCOON__REQUEST__INIT;
	Cocoon__SignalRequest sr = COCOON__SIGNAL_REQUEST__INIT;
	Cocoon__Response *resp = NULL;
	sr.id = (char *)id;
	sr.signal = SIGKILL;
	sr.all = true;
	req.body_case = COCOON__REQUEST__BODY_SIGNAL;
	req.signal = &sr;
	if (agent_call(&s->sb.agent, &req, &resp, 5000, NULL) == 0)
		cocoon__response__free_unpacked(resp, NULL);
}
