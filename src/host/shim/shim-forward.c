/* Requests the shim sends the agent without waiting for the answer
 * (shim-forward.h): a pod member's, which the VM's owner sends on, and
 * the container's own (start, kill, pause, exec, ps, stats, update), in
 * every shim. One path for both: a slot per request (struct
 * shim_forward), the reply handed to the client that asked when it comes
 * (shim_forward_reply), or an error at the request's deadline
 * (shim_forward_check_deadlines). */
#include "shim-forward.h"
#include "shim-checkpoint.h"
#include "shim-output.h"
#include "agent-client.h"
#include "cleanup.h"
#include "fdio.h"
#include "log.h"
#include "state.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

/* How long a new member waits for a killed member of the same id to end
 * (the kill shim_member_gone sends is given up on after it too). */
#define MEMBER_GONE_WAIT_MS 5000

/* The requests that make a connection speak for a container. */
bool shim_joining_kind(Cocoon__Request__BodyCase kind)
{
	return kind == COCOON__REQUEST__BODY_CREATE || kind == COCOON__REQUEST__BODY_RESTORE;
}

/* A member's create or restore that failed: the connection speaks for no
 * container again. */
static void member_unregister(struct shim_client *c)
{
	c->member[0] = 0;
	c->member_mib = 0;
}

/* A free slot for a request of connection C (NULL: none asked,
 * shim_member_gone's kill) for container ID, or NULL with *ERR set: one
 * long request of a kind at a time per member, and at most
 * SHIM_FORWARD_INFLIGHT in all per connection, so a guest that swallows
 * one container's requests leaves the others their room. */
static struct shim_forward *forward_slot(struct shim *s, const struct shim_client *c,
					 const char *id, Cocoon__Request__BodyCase kind,
					 struct error **err)
{
	struct shim_forward *f = NULL;
	bool long_kind = shim_joining_kind(kind) || kind == COCOON__REQUEST__BODY_CHECKPOINT;
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
				   proto_request_name(kind), id);
			return NULL;
		}
	}
	if (c && mine >= SHIM_FORWARD_INFLIGHT) {
		error_setx(err, EBUSY,
			   "%s %s: %d requests of this container are still waiting for the "
			   "agent's answer",
			   proto_request_name(kind), id, mine);
		return NULL;
	}
	if (!f)
		error_setx(err, EBUSY, "%s %s: the shim has %d requests in flight",
			   proto_request_name(kind), id, SHIM_MAX_FORWARDS);
	return f;
}

/* The bound of a request of the container's own (KIND; SIGKILL: a kill
 * of it), in ms. */
static int own_timeout_ms(const struct shim *s, Cocoon__Request__BodyCase kind, bool sigkill)
{
	if (kind == COCOON__REQUEST__BODY_SIGNAL && sigkill)
		return shim_kill_ack_ms(s);
	/* A pod member's agent is its keeper, which answers at
	 * SHIM_FORWARD_TIMEOUT_MS with an error naming the request. */
	return s->args->pod ? SHIM_FORWARD_TIMEOUT_MS + 1000 : SHIM_FORWARD_TIMEOUT_MS;
}

/* What an exec of the container's own needs once it has started: the
 * stdio its client sent (taken from C), its id and its terminal. */
static void own_exec_hold(struct shim_forward *f, struct shim_client *c, const Cocoon__Request *req)
{
	const Cocoon__ExecRequest *x = req->exec;
	for (int i = 0; i < 3; i++)
		f->exec_fds[i] = c->fds[i];
	c->nfds = 0;
	snprintf(f->exec_id, sizeof(f->exec_id), "%s", x->exec_id);
	f->exec_terminal = x->process && x->process->terminal;
	f->exec_has_size = f->exec_terminal && x->process->console_size;
	if (f->exec_has_size) {
		f->exec_rows = x->process->console_size->rows;
		f->exec_cols = x->process->console_size->cols;
	}
}

/* F's signal has done what it was for: the process is gone. Answered as a
 * signal delivered: runc's kill that races the process's exit succeeds,
 * and containerd takes an error it cannot match for an unknown one (ctr
 * tasks delete -f then fails, and the task is left behind). */
static void signal_done_to(int client_fd, uint64_t client_req_id)
{
	Cocoon__Response ok = COCOON__RESPONSE__INIT;
	Cocoon__SignalReply done = COCOON__SIGNAL_REPLY__INIT;
	ok.id = client_req_id;
	ok.body_case = COCOON__RESPONSE__BODY_SIGNAL;
	ok.signal = &done;
	shim_send_to_client(client_fd, &ok);
}

static void signal_done(const struct shim_forward *f)
{
	signal_done_to(f->client_fd, f->client_req_id);
}

/* A signal of container ID, which has ended (or whose VM is gone), as
 * runc's kill answers a stopped container (libcontainer's Signal; the CLI's
 * container_signal once the shim is gone): with ALL there is nothing left
 * to signal, and that succeeds; one process's signal fails with runc's
 * words "container not running", which containerd's shim reads as
 * "process already finished" (checkKillError, pkg/process/utils.go). */
static void signal_after_end(int client_fd, uint64_t client_req_id, const char *id, bool all)
{
	_cleanup_error_ struct error *err = NULL;
	if (all) {
		signal_done_to(client_fd, client_req_id);
		return;
	}
	error_setx(&err, ESRCH, "container %s is stopped: container not running", id);
	shim_reply_error(client_fd, client_req_id, err);
}

/* An own signal that could not be sent (ERR): true when it is answered
 * here. The container had ended, or its VM's channel closed (EOF or
 * ECONNRESET: the VM, and the container with it, is gone): answered as
 * runc answers a stopped container. A SIGKILL the guest cannot be sent (it
 * stopped reading its channel, or the channel was closed after its
 * protocol violation) ends the container with its VM
 * (shim_kill_unanswered): answered "delivered" only then, never while the
 * VM runs on (review10 1). */
static bool own_signal_unsent(struct shim *s, int client_fd, uint64_t cid, bool all, bool sigkill,
			      const struct error *err)
{
	bool closed = err && !s->sb.agent.broken && (err->code == ECONNRESET || err->code == EPIPE);
	if (closed && !s->exited) {
		s->exited = true;
		s->exit_code = 128 + SIGKILL;
	}
	s->agent_gone |= closed;
	if (s->exited || s->agent_gone) {
		signal_after_end(client_fd, cid, s->args->id, all);
		return true;
	}
	bool unsendable = s->sb.agent.broken || (err && err->code == ETIMEDOUT);
	if (!sigkill || !unsendable || !shim_kill_unanswered(s, err))
		return false;
	signal_done_to(client_fd, cid);
	return true;
}

void shim_forward_start(struct shim *s, struct shim_client *c, Cocoon__Request *req, uint64_t cid)
{
	_cleanup_error_ struct error *err = NULL;
	bool own = !c->member[0];
	const char *id = own ? s->args->id : c->member;
	bool joining = shim_joining_kind(req->body_case);
	bool long_kind = joining || req->body_case == COCOON__REQUEST__BODY_CHECKPOINT;
	bool sigkill =
		req->body_case == COCOON__REQUEST__BODY_SIGNAL && req->signal->signal == SIGKILL;
	struct shim_forward *f = forward_slot(s, c, id, req->body_case, &err);
	int64_t aid = f ? agent_send_request(&s->sb.agent, req, &err) : -1;
	if (aid < 0 && own && req->body_case == COCOON__REQUEST__BODY_SIGNAL &&
	    own_signal_unsent(s, c->fd, cid, req->signal->all, sigkill, err))
		return;
	if (aid < 0) {
		if (joining)
			member_unregister(c);
		if (own && req->body_case == COCOON__REQUEST__BODY_PAUSE)
			shim_checkpoint_unhold(s); /* as if it had been answered */
		shim_reply_error(c->fd, cid, err);
		return;
	}
	const Cocoon__UpdateRequest *u = req->update;
	bool sets_memory =
		req->body_case == COCOON__REQUEST__BODY_UPDATE && u->set_memory && u->resources;
	int timeout = own	  ? own_timeout_ms(s, req->body_case, sigkill)
		      : long_kind ? SHIM_CHECKPOINT_TIMEOUT_MS
				  : SHIM_FORWARD_TIMEOUT_MS;
	*f = (struct shim_forward){
		.active = true,
		.own = own,
		.kind = req->body_case,
		.agent_id = (uint64_t)aid,
		.client_req_id = cid,
		.client_fd = c->fd,
		.timeout_ms = timeout,
		.deadline_ms = now_ms() + timeout,
		.update_mib = sets_memory && !own ? shim_mib_of(u->resources->memory_limit) : -1,
		.sigkill = sigkill,
		.all = req->body_case == COCOON__REQUEST__BODY_SIGNAL && req->signal->all,
		.resume = req->body_case == COCOON__REQUEST__BODY_PAUSE && req->pause->resume,
		.exec_fds = {-1, -1, -1}};
	snprintf(f->member, sizeof(f->member), "%s", id);
	if (own && req->body_case == COCOON__REQUEST__BODY_EXEC)
		own_exec_hold(f, c, req);
	agent_progress_start(&f->progress);
	if (req->body_case == COCOON__REQUEST__BODY_CHECKPOINT && req->checkpoint->checkpoint_id)
		snprintf(f->ckid, sizeof(f->ckid), "%s", req->checkpoint->checkpoint_id);
}

int shim_forward_execs(const struct shim *s, const char *exec_id, bool *taken)
{
	int n = 0;
	for (int i = 0; i < SHIM_MAX_EXECS; i++) {
		n += s->execs[i].used;
		*taken |= s->execs[i].used && strcmp(s->execs[i].exec_id, exec_id) == 0;
	}
	for (int i = 0; i < SHIM_MAX_FORWARDS; i++) {
		const struct shim_forward *f = &s->fwd[i];
		if (!f->active || !f->own || f->kind != COCOON__REQUEST__BODY_EXEC)
			continue;
		n++;
		*taken |= strcmp(f->exec_id, exec_id) == 0;
	}
	return n;
}

static void set_status(struct shim *s, enum container_status st)
{
	_cleanup_error_ struct error *err = NULL;
	if (s->keeping)
		return; /* its container stopped: the state is no longer ours */
	s->st.status = st;
	if (state_write(s->args->dir, &s->st, &err) < 0)
		log_warning("container %s: %s", s->args->id, err->msg);
}

/* An exec of the container's own that started: its stdio is served from
 * now on (a slot was kept for it, shim_forward_execs). */
static void own_exec_started(struct shim *s, struct shim_forward *f)
{
	struct shim_exec *e = NULL;
	for (int i = 0; i < SHIM_MAX_EXECS && !e; i++)
		if (!s->execs[i].used)
			e = &s->execs[i];
	if (!e)
		return; /* cannot be: counted at the request */
	e->used = true;
	snprintf(e->exec_id, sizeof(e->exec_id), "%s", f->exec_id);
	e->in = f->exec_fds[0];
	e->out = f->exec_fds[1];
	e->err = f->exec_fds[2];
	e->client_fd = f->client_fd; /* -1: its client went, its stdio is served */
	f->exec_fds[0] = f->exec_fds[1] = f->exec_fds[2] = -1;
	/* The exec's pty on the host: the engine's (its master went to the
	 * engine's --console-socket) or the terminal of `cocoon exec` itself. */
	Cocoon__ConsoleSize size = COCOON__CONSOLE_SIZE__INIT;
	size.rows = f->exec_rows;
	size.cols = f->exec_cols;
	if (f->exec_terminal)
		console_watch_init(&e->tty, e->out, f->exec_has_size ? &size : NULL);
	shim_sink_open(&e->out_sink, e->out, e->exec_id, COCOON__OUTPUT_STREAM__OUTPUT_STDOUT);
	shim_sink_open(&e->err_sink, e->err, e->exec_id, COCOON__OUTPUT_STREAM__OUTPUT_STDERR);
	(void)fcntl(e->in, F_SETFL,
		    fcntl(e->in, F_GETFL) | O_NONBLOCK); /* cannot fail on an open fd */
}

/* A request of the container's own is over: R its answer, NULL if it
 * failed or was given up on. */
static void own_done(struct shim *s, struct shim_forward *f, const Cocoon__Response *r)
{
	switch (f->kind) {
	case COCOON__REQUEST__BODY_START:
		if (r)
			set_status(s, STATUS_RUNNING);
		break;
	case COCOON__REQUEST__BODY_PAUSE:
		/* The thaw after a checkpoint whose images could not be
		 * published: the container runs on. */
		shim_checkpoint_unhold(s);
		if (r)
			set_status(s, f->resume ? STATUS_RUNNING : STATUS_PAUSED);
		break;
	case COCOON__REQUEST__BODY_EXEC:
		if (r)
			own_exec_started(s, f);
		for (int i = 0; i < 3; i++)
			if (f->exec_fds[i] >= 0)
				close(f->exec_fds[i]);
		break;
	default:
		break;
	}
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

static struct shim_client *client_of_fd(struct shim *s, int fd)
{
	for (int i = 0; i < SHIM_MAX_CLIENTS; i++)
		if (fd >= 0 && s->clients[i].fd == fd)
			return &s->clients[i];
	return NULL;
}

/* An own signal F the guest refused with ENOENT (no such container): true
 * when it is answered here. The guest frees a container right after it
 * sends its init's exit, on the same ordered channel, so a true refusal
 * comes after that exit: the container ended, and the guest freed it,
 * before the signal came (answered as runc answers a stopped container).
 * Without that exit the refusal is a guest's that lies, or a bug: a
 * SIGKILL then ends the container with its VM (shim_kill_unanswered);
 * anything else gets the guest's error (review10 2). */
static bool own_signal_refused(struct shim *s, const struct shim_forward *f)
{
	_cleanup_error_ struct error *err = NULL;
	if (s->exited) {
		signal_after_end(f->client_fd, f->client_req_id, f->member, f->all);
		return true;
	}
	error_setx(&err, ENOENT,
		   "kill %s: the guest says it has no such container, but it never sent its exit",
		   f->member);
	if (!f->sigkill || !shim_kill_unanswered(s, err))
		return false;
	signal_done(f);
	return true;
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
	if (f->own && f->kind == COCOON__REQUEST__BODY_SIGNAL && r->error == -ENOENT &&
	    own_signal_refused(s, f))
		return;
	if (agent_check_reply(&s->sb.agent, f->kind, r, &err) < 0) {
		if (c && shim_joining_kind(f->kind))
			member_unregister(c);
		if (f->own)
			own_done(s, f, NULL);
		shim_reply_error(f->client_fd, f->client_req_id, err);
		return;
	}
	/* A member's create or restore succeeded in the guest after its
	 * shim went away (killed mid-create): nobody owns that container,
	 * so it goes; its late events are dropped with the departing id. */
	if (!c && shim_joining_kind(f->kind)) {
		shim_member_gone(s, f->member);
		return;
	}
	if (f->own)
		own_done(s, f, r);
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
		error_setx(err, ETIMEDOUT, "%s %s: the agent did not answer within %d ms",
			   proto_request_name(f->kind), f->member, f->timeout_ms);
}

/* An own SIGKILL the agent did not answer: the container ends with its VM
 * (shim_kill_unanswered), and the kill has done what was asked. */
static bool own_kill_ended(struct shim *s, const struct shim_forward *f, const struct error *err)
{
	if (!f->own || !f->sigkill || !shim_kill_unanswered(s, err))
		return false;
	signal_done(f);
	return true;
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
		if (c && shim_joining_kind(f->kind))
			member_unregister(c);
		forward_given_up(s, f, &err);
		if (f->own)
			own_done(s, f, NULL);
		if (!own_kill_ended(s, f, err))
			shim_reply_error(f->client_fd, f->client_req_id, err);
		/* A create's late reply finds no forward, as before; a
		 * checkpoint's or a restore's is undone. */
		if (f->kind == COCOON__REQUEST__BODY_CHECKPOINT ||
		    f->kind == COCOON__REQUEST__BODY_RESTORE)
			shim_abandon(s, f->kind, f->agent_id, f->member, f->ckid);
	}
	return next;
}

void shim_forward_end_own(struct shim *s)
{
	for (int i = 0; i < SHIM_MAX_FORWARDS; i++) {
		struct shim_forward *f = &s->fwd[i];
		if (!f->active || !f->own)
			continue;
		_cleanup_error_ struct error *err = NULL;
		f->active = false;
		own_done(s, f, NULL);
		if (f->kind == COCOON__REQUEST__BODY_SIGNAL) {
			signal_done(f); /* the container ended meanwhile */
			continue;
		}
		error_setx(&err, ECANCELED, "%s %s: the container ended before the agent answered",
			   proto_request_name(f->kind), f->member);
		shim_reply_error(f->client_fd, f->client_req_id, err);
	}
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

void shim_forward_signal(struct shim *s, int sig)
{
	Cocoon__Request req;
	Cocoon__SignalRequest sr;
	/* Best effort, as kill(2) of a process that is gone: sent, not waited
	 * for (a guest that swallowed it held the shim 5 s per signal); its
	 * answer finds no forward and is dropped. */
	agent_signal_request(&req, &sr, s->args->id, sig, false);
	(void)agent_send_request(&s->sb.agent, &req, NULL);
}

int shim_kill_ack_ms(const struct shim *s)
{
	return (int)s->args->g->cfg.channel_send_timeout_ms;
}

bool shim_kill_unanswered(struct shim *s, const struct error *err)
{
	/* Not a pod member's shim (its VM is its pod's) nor a sandbox whose
	 * members run: there the VM is not this container's to end. */
	if (s->args->pod || shim_members_left(s) > 0 || s->keeping)
		return false;
	log_warning("container %s: %s; its VM is stopped instead (SIGKILL of QEMU after %d ms, "
		    "limits.channel_send_timeout_ms)",
		    s->args->id, err ? err->msg : "the agent did not answer the kill",
		    shim_kill_ack_ms(s));
	s->exited = true;
	s->exit_code = 128 + SIGKILL;
	/* The teardown asks the agent nothing more (it answers nothing) and
	 * ends QEMU at once. */
	s->kill_unanswered = true;
	return true;
}

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
	struct shim_forward *f = forward_slot(s, NULL, id, req.body_case, NULL);
	if (!f)
		return; /* its refusal is not seen: the id departs until its wait ends */
	*f = (struct shim_forward){.active = true,
				   .kind = req.body_case,
				   .agent_id = (uint64_t)aid,
				   .client_fd = -1,
				   .timeout_ms = MEMBER_GONE_WAIT_MS,
				   .deadline_ms = now_ms() + MEMBER_GONE_WAIT_MS,
				   .update_mib = -1,
				   .gone_kill = true,
				   .exec_fds = {-1, -1, -1}};
	snprintf(f->member, sizeof(f->member), "%s", id);
}
