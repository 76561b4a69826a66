/* Pods: the sandbox's shim serves the requests of its members' shims. */
#include "shim-pod.h"
#include "shim-checkpoint.h"
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

/* How long a new member waits for a killed member of the same id to end. */
#define MEMBER_GONE_WAIT_MS 5000

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

static struct shim_client *client_of_fd(struct shim *s, int fd)
{
	for (int i = 0; i < SHIM_MAX_CLIENTS; i++)
		if (fd >= 0 && s->clients[i].fd == fd)
			return &s->clients[i];
	return NULL;
}

/* A member's create or restore that failed: the connection speaks for no
 * container again. */
static void member_unregister(struct shim_client *c)
{
	c->member[0] = 0;
	c->member_mib = 0;
}

/* The requests that make a connection speak for a container. */
static bool joining_kind(Cocoon__Request__BodyCase kind)
{
	return kind == COCOON__REQUEST__BODY_CREATE || kind == COCOON__REQUEST__BODY_RESTORE;
}

/* A free slot for a request of member connection C (NULL: none asked,
 * shim_member_gone's kill), or NULL with *ERR set: one long request of a
 * kind at a time per member, and at most SHIM_MEMBER_INFLIGHT in all, so a
 * guest that swallows one member's requests leaves the others their room. */
static struct shim_forward *forward_slot(struct shim *s, const struct shim_client *c,
					 Cocoon__Request__BodyCase kind, struct error **err)
{
	struct shim_forward *f = NULL;
	bool long_kind = joining_kind(kind) || kind == COCOON__REQUEST__BODY_CHECKPOINT;
	int mine = 0;
	for (int i = 0; i < SHIM_MAX_FORWARDS; i++) {
		const struct shim_forward *x = &s->fwd[i];
		if (!x->active) {
			f = f ? f : &s->fwd[i];
			continue;
		}
		if (!c || x->client_fd != c->fd)
			continue;
		mine++;
		if (long_kind && x->kind == kind) {
			error_setx(err, EBUSY, "%s %s: another one is in progress",
				   proto_request_name(kind), c->member);
			return NULL;
		}
	}
	if (c && mine >= SHIM_MEMBER_INFLIGHT) {
		error_setx(err, EBUSY,
			   "%s %s: %d requests of this container are still waiting for the "
			   "agent's answer",
			   proto_request_name(kind), c->member, mine);
		return NULL;
	}
	if (!f)
		error_setx(err, EBUSY, "%s %s: the pod's keeper has %d requests in flight",
			   proto_request_name(kind), c ? c->member : "", SHIM_MAX_FORWARDS);
	return f;
}

/* Sends a member's request on and returns: the keeper serves the pod's
 * other containers until its reply comes (shim_forward_reply), or its
 * deadline passes (shim_forward_check_deadlines). CRIU runs for seconds
 * to minutes, and a guest may never answer at all: a request the keeper
 * waited for (agent_call) would hold every container of the pod for its
 * whole timeout, and a guest that swallowed each member's stats ask, one a
 * second, would hold it for good. */
static void forward_start(struct shim *s, struct shim_client *c, Cocoon__Request *req, uint64_t cid)
{
	_cleanup_error_ struct error *err = NULL;
	bool joining = joining_kind(req->body_case);
	bool long_kind = joining || req->body_case == COCOON__REQUEST__BODY_CHECKPOINT;
	struct shim_forward *f = forward_slot(s, c, req->body_case, &err);
	int64_t id = f ? agent_send_request(&s->sb.agent, req, &err) : -1;
	if (id < 0) {
		if (joining)
			member_unregister(c);
		shim_reply_error(c->fd, cid, err);
		return;
	}
	const Cocoon__UpdateRequest *u = req->update;
	bool sets_memory =
		req->body_case == COCOON__REQUEST__BODY_UPDATE && u->set_memory && u->resources;
	*f = (struct shim_forward){
		.active = true,
		.kind = req->body_case,
		.agent_id = (uint64_t)id,
		.client_req_id = cid,
		.client_fd = c->fd,
		.deadline_ms = now_ms() + (long_kind ? SHIM_CHECKPOINT_TIMEOUT_MS
						     : SHIM_MEMBER_CALL_TIMEOUT_MS),
		.update_mib = sets_memory ? shim_mib_of(u->resources->memory_limit) : -1};
	snprintf(f->member, sizeof(f->member), "%s", c->member);
	agent_progress_start(&f->progress);
	if (req->body_case == COCOON__REQUEST__BODY_CHECKPOINT && req->checkpoint->checkpoint_id)
		snprintf(f->ckid, sizeof(f->ckid), "%s", req->checkpoint->checkpoint_id);
}

/* Container id was sent its SIGKILL: its late events are dropped until
 * its exit (shim_find_departing). */
static void departing_add(struct shim *s, const char *id)
{
	for (int i = 0; i < SHIM_MAX_CLIENTS; i++) {
		if (!s->departing[i][0]) {
			snprintf(s->departing[i], sizeof(s->departing[i]), "%s", id);
			break;
		}
	}
}

void shim_forward_reply(struct shim *s, struct shim_forward *f, const Cocoon__Response *r)
{
	_cleanup_error_ struct error *err = NULL;
	struct shim_client *c = client_of_fd(s, f->client_fd);
	f->active = false;
	if (f->gone_kill) {
		/* Refused (no such container: it had ended and been freed):
		 * no exit will come, nothing departs. */
		char *gone = shim_find_departing(s, f->member);
		if (gone && agent_check_reply(&s->sb.agent, f->kind, r, NULL) < 0)
			gone[0] = 0;
		return;
	}
	if (agent_check_reply(&s->sb.agent, f->kind, r, &err) < 0) {
		if (c && joining_kind(f->kind))
			member_unregister(c);
		shim_reply_error(f->client_fd, f->client_req_id, err);
		return;
	}
	/* A member's create or restore succeeded in the guest after its
	 * shim went away (killed mid-create): nobody owns that container,
	 * so it goes; its late events are dropped with the departing id. */
	if (!c && joining_kind(f->kind)) {
		shim_member_gone(s, f->member);
		return;
	}
	if (c && f->update_mib >= 0)
		c->member_mib = f->update_mib;
	Cocoon__Response out = *r;
	out.id = f->client_req_id;
	shim_send_to_client(f->client_fd, &out);
}

/* ms until forward F is given up on: its deadline, or for a checkpoint
 * or restore, the silence bound if that comes first. */
static long long forward_left(struct shim *s, const struct shim_forward *f)
{
	if (f->kind == COCOON__REQUEST__BODY_CHECKPOINT)
		return shim_checkpoint_left(s, &f->progress, f->deadline_ms);
	long long left = f->deadline_ms - now_ms();
	int limit = shim_silence_ms(s);
	if (f->kind != COCOON__REQUEST__BODY_RESTORE || limit <= 0)
		return left;
	long long quiet = agent_progress_left(&f->progress, limit);
	return quiet < left ? quiet : left;
}

/* The error of forward F given up on. */
static void forward_given_up(struct shim *s, const struct shim_forward *f, struct error **err)
{
	int limit = shim_silence_ms(s);
	if (f->kind == COCOON__REQUEST__BODY_CHECKPOINT)
		(void)shim_checkpoint_given_up(s, &f->progress, f->deadline_ms,
					       err); /* always -ETIMEDOUT: *err is the answer */
	else if (f->kind == COCOON__REQUEST__BODY_RESTORE && limit > 0 && now_ms() < f->deadline_ms)
		(void)agent_progress_silence_error(&f->progress, "restore", limit,
						   err); /* always -ETIMEDOUT: *err is the answer */
	else
		error_setx(err, ETIMEDOUT, "%s %s: the agent did not answer within %lld ms",
			   proto_request_name(f->kind), f->member,
			   joining_kind(f->kind) ? (long long)SHIM_CHECKPOINT_TIMEOUT_MS
						 : (long long)SHIM_MEMBER_CALL_TIMEOUT_MS);
}

int shim_forward_check_deadlines(struct shim *s)
{
	int next = -1;
	for (int i = 0; i < SHIM_MAX_FORWARDS; i++) {
		struct shim_forward *f = &s->fwd[i];
		if (!f->active)
			continue;
		long long left = forward_left(s, f);
		if (left > 0) {
			if (left > INT32_MAX)
				left = INT32_MAX;
			next = next < 0 || left < next ? (int)left : next;
			continue;
		}
		f->active = false;
		if (f->gone_kill)
			continue; /* nobody waits: the id stays departing */
		_cleanup_error_ struct error *err = NULL;
		struct shim_client *c = client_of_fd(s, f->client_fd);
		if (c && joining_kind(f->kind))
			member_unregister(c);
		forward_given_up(s, f, &err);
		shim_reply_error(f->client_fd, f->client_req_id, err);
		/* A create's late reply finds no forward, as before; a
		 * checkpoint's or a restore's is undone. */
		if (f->kind == COCOON__REQUEST__BODY_CHECKPOINT ||
		    f->kind == COCOON__REQUEST__BODY_RESTORE)
			shim_abandon(s, f->kind, f->agent_id, f->member, f->ckid);
	}
	return next;
}

void shim_forward_undo(struct shim *s, const struct shim_abandoned *a, const Cocoon__Response *r)
{
	if (a->kind != COCOON__REQUEST__BODY_RESTORE || r->error != 0)
		return; /* a failed restore left nothing in the guest */
	log_warning(
		"restore %s: the guest answered after the keeper had given up on it: the container it restored is killed",
		a->container);
	shim_member_gone(s, a->container);
}

void shim_handle_member_request(struct shim *s, struct shim_client *c, Cocoon__Request *req)
{
	_cleanup_error_ struct error *err = NULL;
	char **slot = request_id_slot(req);
	uint64_t cid = req->id; /* the agent's request gets an id of its own */
	bool joining = joining_kind(req->body_case);

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
		forward_start(s, c, req, cid);
	*slot = client_id;
}

/* A member's shim went away (its container ended, or delete --force): its
 * container must not outlive it in the VM. */
void shim_member_gone(struct shim *s, const char *id)
{
	Cocoon__Request req;
	Cocoon__SignalRequest sr;
	/* Sent, not waited for (this may run in the channel's reply
	 * callback, and a guest that swallowed it held the keeper 5 s per
	 * member that left); its answer comes to shim_forward_reply. */
	agent_signal_request(&req, &sr, id, SIGKILL, true);
	int64_t aid = agent_send_request(&s->sb.agent, &req, NULL);
	if (aid < 0)
		return; /* the channel is gone, and the VM with it */
	departing_add(s, id);
	struct shim_forward *f = forward_slot(s, NULL, req.body_case, NULL);
	if (!f)
		return; /* its refusal is not seen: the id departs until its wait ends */
	*f = (struct shim_forward){.active = true,
				   .kind = req.body_case,
				   .agent_id = (uint64_t)aid,
				   .client_fd = -1,
				   .deadline_ms = now_ms() + MEMBER_GONE_WAIT_MS,
				   .update_mib = -1,
				   .gone_kill = true};
	snprintf(f->member, sizeof(f->member), "%s", id);
}
