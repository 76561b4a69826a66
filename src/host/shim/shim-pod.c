/* Pods: the sandbox's shim serves the requests of its members' shims. */
#include "shim-pod.h"
#include "shim-forward.h"
#include "log.h"
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
	case COCOON__REQUEST__BODY_RESIZE:
		return &req->resize->id;
	case COCOON__REQUEST__BODY_OUTPUT_FLOW:
		return &req->output_flow->id;
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
	int members = 0;
	for (int i = 0; i < SHIM_MAX_CLIENTS; i++)
		members += s->clients[i].fd >= 0 && s->clients[i].member[0];
	if (members >= POD_MAX_MEMBERS)
		return error_setx(err, E2BIG,
				  "container %s: pod %s is full: it has %d containers besides its "
				  "sandbox, the most one pod takes (docs/pods.md)",
				  id, s->args->id, members);
	/* A container of the same id was just killed (delete --force, as a
	 * runtime's delete is synchronous for runc's callers): wait for its
	 * exit, so that neither the agent ("exists in this VM") nor its late
	 * events get in the new container's way. */
	long long until = now_ms() + MEMBER_GONE_WAIT_MS;
	while (shim_find_departing(s, id) && now_ms() < until) {
		struct pollfd pfd = {.fd = s->sb.agent.fd, .events = POLLIN};
		int left = (int)(until - now_ms());
		if (poll(&pfd, 1, left > 0 ? left : 0) < 0 && errno != EINTR)
			break;
		if (agent_client_pump(&s->sb.agent, NULL) < 0)
			break;
	}
	if (shim_find_departing(s, id))
		return error_setx(err, EBUSY,
				  "container %s of this pod is still stopping after %d ms", id,
				  MEMBER_GONE_WAIT_MS);
	snprintf(c->member, sizeof(c->member), "%s", id);
	/* Its output must not be dropped: a member that does not read stalls
	 * the pod's events for at most this long, then is taken as gone
	 * (shim_send_to_client). */
	int64_t ms = s->args->g->cfg.channel_send_timeout_ms;
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
	(void)fcntl(c->fd, F_SETFL,
		    fcntl(c->fd, F_GETFL) & ~O_NONBLOCK); /* cannot fail on an open fd */
	(void)setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)); /* valid: cannot fail */
	return 0;
}

/* A member's memory and CPU limits must fit the pod's VM, which cannot
 * grow: the memory limits of all its containers together in the pod's room
 * (vm_size), a CPU limit in its vCPUs. mib is the member's new memory limit;
 * c, when given, is the member itself (its old limit does not count). */
static int member_fits(struct shim *s, const struct shim_client *c, const char *id, int mib,
		       const Cocoon__Resources *r, struct error **err)
{
	int taken = s->own_mib;
	for (int i = 0; i < SHIM_MAX_CLIENTS; i++)
		if (s->clients[i].fd >= 0 && s->clients[i].member[0] && &s->clients[i] != c)
			taken += s->clients[i].member_mib;
	if (mib && mib + taken > s->pod_room_mib)
		return error_setx(
			err, E2BIG,
			"container %s: its memory limit of %d MiB does not fit in pod "
			"%s: the pod's containers have %d MiB (%s), %d MiB of it taken by "
			"the others; the pod's VM cannot grow: size the pod for all its "
			"containers (docs/pods.md)",
			id, mib, s->args->id, s->pod_room_mib, s->pod_room_source, taken);
	if (r && r->cpu_quota > 0 && r->cpu_period > 0 &&
	    (r->cpu_quota + (int64_t)r->cpu_period - 1) / (int64_t)r->cpu_period > s->vcpus)
		return error_setx(
			err, E2BIG,
			"container %s: its CPU limit of %.2f CPUs does not fit in pod %s, "
			"whose VM has %d vCPUs and cannot grow: size the pod for all its "
			"containers (docs/pods.md)",
			id, (double)r->cpu_quota / (double)r->cpu_period, s->args->id, s->vcpus);
	return 0;
}

/* update: memory up to what this VM can give (resources.h). A member's own
 * shim has no VM (memory_mib 0): the pod's shim checks. */
int shim_update_check(struct shim *s, struct shim_client *c, const Cocoon__Request *req,
		      struct error **err)
{
	if (req->body_case != COCOON__REQUEST__BODY_UPDATE || !req->update->set_memory ||
	    !req->update->resources)
		return 0;
	uint64_t limit = req->update->resources->memory_limit;
	if (resources_update_fits(s->sb.memory_mib, limit, err) < 0 ||
	    (c && member_fits(s, c, c->member, shim_mib_of(limit), NULL, err) < 0))
		return error_wrap(err, "update %s", c ? c->member : req->update->id);
	return 0;
}

/* The spec of a member's create or restore. */
static const Cocoon__ContainerSpec *joining_spec(const Cocoon__Request *req)
{
	if (req->body_case == COCOON__REQUEST__BODY_CREATE)
		return req->create->spec;
	if (req->body_case == COCOON__REQUEST__BODY_RESTORE)
		return req->restore->spec;
	return NULL;
}

void shim_handle_member_request(struct shim *s, struct shim_client *c, Cocoon__Request *req)
{
	_cleanup_error_ struct error *err = NULL;
	char **slot = request_id_slot(req);
	uint64_t cid = req->id; /* the agent's request gets an id of its own */
	bool joining = shim_joining_kind(req->body_case);

	if (!slot || !*slot) {
		error_setx(&err, EOPNOTSUPP, "request not supported from a pod member");
		shim_reply_error(c->fd, cid, err);
		return;
	}
	if (joining && member_register(s, c, *slot, &err) < 0) {
		shim_reply_error(c->fd, cid, err);
		return;
	}
	if (joining) {
		const Cocoon__Resources *r = joining_spec(req)->resources;
		int mib = r ? shim_mib_of(r->memory_limit) : 0;
		if (member_fits(s, c, c->member, mib, r, &err) < 0) {
			c->member[0] = 0;
			shim_reply_error(c->fd, cid, err);
			return;
		}
		c->member_mib = mib;
	}
	char *client_id = *slot;
	*slot = c->member;
	if (req->body_case == COCOON__REQUEST__BODY_STDIN ||
	    req->body_case == COCOON__REQUEST__BODY_RESIZE ||
	    req->body_case == COCOON__REQUEST__BODY_OUTPUT_FLOW)
		(void)agent_send_oneway(&s->sb.agent, req, NULL); /* as the shim's own stdin */
	else if (shim_update_check(s, c, req, &err) < 0)
		shim_reply_error(c->fd, cid, err);
	else
		shim_forward_start(s, c, req, cid);
	*slot = client_id;
}
