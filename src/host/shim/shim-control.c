/* The shim's control socket: requests of later `cocoon` invocations (start,
 * kill, exec, ...), and the agent's events passed on to whoever waits. */
#include "shim-control.h"
#include "shim-checkpoint.h"
#include "shim-forward.h"
#include "shim-keeper.h"
#include "shim-mirror.h"
#include "shim-pod.h"
#include "shim-state.h"
#include "agent-client.h"
#include "cleanup.h"
#include "log.h"
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

void shim_agent_reply(void *userdata, const Cocoon__Response *r)
{
	struct shim *s = userdata;
	struct shim_abandoned late;
	if (shim_mirror_reply(s, r))
		return;
	if (shim_abandoned_take(s, r->id, &late)) {
		if (late.kind == COCOON__REQUEST__BODY_CHECKPOINT)
			shim_checkpoint_undo(s, &late, r);
		else
			shim_forward_undo(s, &late, r);
		return;
	}
	for (int i = 0; i < SHIM_MAX_FORWARDS; i++)
		if (s->fwd[i].active && s->fwd[i].agent_id == r->id) {
			shim_forward_reply(s, &s->fwd[i], r);
			return;
		}
	shim_checkpoint_reply(s, r);
}

void shim_on_agent_progress(void *userdata, const Cocoon__CheckpointProgress *ev)
{
	struct shim *s = userdata;
	if (s->ckpt.active && strcmp(ev->id, s->args->id) == 0) {
		agent_progress_note(&s->ckpt.progress, ev);
		return;
	}
	for (int i = 0; i < SHIM_MAX_FORWARDS; i++) {
		struct shim_forward *f = &s->fwd[i];
		if (f->active && strcmp(ev->id, f->member) == 0 &&
		    (f->kind == COCOON__REQUEST__BODY_CHECKPOINT ||
		     f->kind == COCOON__REQUEST__BODY_RESTORE))
			agent_progress_note(&f->progress, ev);
	}
}

void shim_on_agent_event(void *userdata, const Cocoon__Response *ev)
{
	struct shim *s = userdata;
	const char *cid =
		ev->body_case == COCOON__RESPONSE__BODY_OUTPUT ? ev->output->id : ev->exit->id;

	/* The last words of a member killed when its shim went away. The
	 * agent frees a container when it sends its init's exit, so after
	 * that event the id is free in the VM. */
	char *gone = *cid ? shim_find_departing(s, cid) : NULL;
	if (gone) {
		if (ev->body_case == COCOON__RESPONSE__BODY_EXIT && !*ev->exit->exec_id)
			gone[0] = 0;
		return;
	}

	/* A pod sandbox's shim passes the events of a member's container
	 * on to that member's shim, and drops those of a member gone. */
	if (*cid && strcmp(cid, s->args->id) != 0) {
		struct shim_client *m = shim_find_member(s, cid);
		if (m)
			shim_send_to_client(m->fd, (Cocoon__Response *)ev);
		return;
	}

	if (ev->body_case == COCOON__RESPONSE__BODY_OUTPUT) {
		const Cocoon__OutputEvent *o = ev->output;
		bool err = o->stream == COCOON__OUTPUT_STREAM__OUTPUT_STDERR;
		struct shim_exec *e = *o->exec_id ? shim_find_exec(s, o->exec_id) : NULL;
		/* Output after a process's exit is a guest's that did not
		 * stop: the agent sends the exit after the last byte. Once
		 * the container ended without its exit (a kill the agent did
		 * not answer, delete --force) nothing more is taken: a guest
		 * that sent on kept the shim, and the VM, serving an engine
		 * that did not read (review10 7). */
		if (s->exited)
			return;
		if (!*o->exec_id)
			shim_output_write(s, err ? &s->err_sink : &s->out_sink, o->data.data,
					  o->data.len);
		else if (e && !e->ended)
			shim_output_write(s, err ? &e->err_sink : &e->out_sink, o->data.data,
					  o->data.len);
		return;
	}
	const Cocoon__ExitEvent *x = ev->exit;
	if (!*x->exec_id) {
		s->own_exit_seen = true;
		s->exited = true;
		s->exit_code = shim_exit_code_of(x->wait_status);
		shim_mirror_exit(s, x->memory_oom_kill);
		return;
	}
	struct shim_exec *e = shim_find_exec(s, x->exec_id);
	if (!e || e->ended)
		return;
	e->ended = true;
	shim_sink_end(&e->out_sink);
	shim_sink_end(&e->err_sink);
	/* Kept past the event, which is freed on return: its figures only.
	 * A copy of the whole struct kept the event's pointers too, to its
	 * strings and to the fields protobuf-c keeps that this protocol does
	 * not know (base.unknown_fields), and the exit was later packed for
	 * `cocoon exec` from freed memory. */
	e->exit = (Cocoon__ExitEvent)COCOON__EXIT_EVENT__INIT;
	e->exit.wait_status = x->wait_status;
	e->exit.memory_oom_kill = x->memory_oom_kill;
	shim_execs_finish(s);
}

void shim_execs_finish(struct shim *s)
{
	for (int i = 0; i < SHIM_MAX_EXECS; i++) {
		struct shim_exec *e = &s->execs[i];
		if (!e->used || !e->ended || shim_sink_queued(&e->out_sink) ||
		    shim_sink_queued(&e->err_sink))
			continue;
		/* Tell the waiting `cocoon exec` how its process ended. */
		Cocoon__Response out = COCOON__RESPONSE__INIT;
		Cocoon__ExitEvent copy = e->exit;
		copy.id = (char *)s->args->id;
		copy.exec_id = e->exec_id;
		out.body_case = COCOON__RESPONSE__BODY_EXIT;
		out.exit = &copy;
		shim_send_to_client(e->client_fd, &out);
		shim_close_exec(e);
	}
}

static void handle_exec(struct shim *s, struct shim_client *c, Cocoon__Request *req)
{
	_cleanup_error_ struct error *err = NULL;
	uint64_t cid = req->id;
	bool taken = false;
	int execs = req->exec ? shim_forward_execs(s, req->exec->exec_id, &taken) : 0;

	if (execs >= SHIM_MAX_EXECS || c->nfds != 3 || !req->exec || taken) {
		error_setx(&err, execs >= SHIM_MAX_EXECS ? EAGAIN : EINVAL, "exec: %s",
			   execs >= SHIM_MAX_EXECS ? "too many execs"
			   : c->nfds != 3	   ? "stdio descriptors missing"
						   : "exec id in use");
		shim_reply_error(c->fd, cid, err);
		return;
	}
	char *client_id = req->exec->id;
	req->exec->id = (char *)s->args->id;
	shim_forward_start(s, c, req, cid); /* it takes c's stdio fds */
	req->exec->id = client_id;
}

static void handle_request(struct shim *s, struct shim_client *c, Cocoon__Request *req)
{
	_cleanup_error_ struct error *err = NULL;
	uint64_t cid = req->id;
	char **id_slot = NULL;

	if (s->vm_stopped && (req->body_case == COCOON__REQUEST__BODY_SIGNAL ||
			      req->body_case == COCOON__REQUEST__BODY_PAUSE)) {
		shim_vm_stopped_request(s, c, req);
		return;
	}
	if (c->member[0] || req->body_case == COCOON__REQUEST__BODY_CREATE ||
	    req->body_case == COCOON__REQUEST__BODY_RESTORE) {
		shim_handle_member_request(s, c, req);
		return;
	}
	switch (req->body_case) {
	case COCOON__REQUEST__BODY_EXEC:
		handle_exec(s, c, req);
		return;
	case COCOON__REQUEST__BODY_SHUTDOWN: {
		/* delete --force: the container goes, the shim follows. */
		Cocoon__Response ok = COCOON__RESPONSE__INIT;
		Cocoon__ShutdownReply bye = COCOON__SHUTDOWN_REPLY__INIT;
		ok.id = cid;
		ok.body_case = COCOON__RESPONSE__BODY_SHUTDOWN;
		ok.shutdown = &bye;
		shim_send_to_client(c->fd, &ok);
		s->exited = true;
		s->exit_code = 128 + SIGKILL;
		shim_output_discard(s); /* nobody waits for it any more */
		return;
	}
	case COCOON__REQUEST__BODY_START:
		id_slot = &req->start->id;
		/* What the engine configured in the shim's own namespace
		 * after create, on the VM's reserved NIC (network.h). The
		 * spec stays s->net's: detached after the call. */
		if (network_adopt(&s->net, s->args->id, &req->start->network, &err) < 0) {
			shim_reply_error(c->fd, cid, err);
			return;
		}
		break;
	case COCOON__REQUEST__BODY_SIGNAL:
		id_slot = &req->signal->id;
		break;
	case COCOON__REQUEST__BODY_PAUSE:
		id_slot = &req->pause->id;
		break;
	case COCOON__REQUEST__BODY_PS:
		id_slot = &req->ps->id;
		break;
	case COCOON__REQUEST__BODY_STATS:
		id_slot = &req->stats->id;
		break;
	case COCOON__REQUEST__BODY_LOOPBACK_HOLD: /* restore --pod, to a sandbox */
		id_slot = &req->loopback_hold->id;
		break;
	case COCOON__REQUEST__BODY_UPDATE:
		id_slot = &req->update->id;
		if (shim_update_check(s, NULL, req, &err) < 0) {
			shim_reply_error(c->fd, cid, err);
			return;
		}
		break;
	case COCOON__REQUEST__BODY_CHECKPOINT:
		if (req->checkpoint->whole_vm)
			shim_handle_vm_checkpoint(s, c, req);
		else
			shim_handle_checkpoint(s, c, req);
		return;
	default:
		error_setx(&err, EOPNOTSUPP, "request not supported by the shim");
		shim_reply_error(c->fd, cid, err);
		return;
	}
	/* The shim, not the client, says which container: clients only
	 * reach the shim of their own container anyway. */
	char *client_id = *id_slot;
	*id_slot = (char *)s->args->id;
	shim_forward_start(s, c, req, cid);
	*id_slot = client_id;
	if (req->body_case == COCOON__REQUEST__BODY_START)
		req->start->network = NULL; /* s->net's */
}

static void client_close(struct shim *s, struct shim_client *c)
{
	if (s->ckpt.active && s->ckpt.client_fd == c->fd)
		s->ckpt.client_fd = -1;
	for (int i = 0; i < SHIM_MAX_FORWARDS; i++)
		if (s->fwd[i].active && s->fwd[i].client_fd == c->fd)
			s->fwd[i].client_fd = -1;
	for (size_t i = 0; i < c->nfds; i++)
		close(c->fds[i]);
	close(c->fd);
	free(c->reader);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

void shim_client_readable(struct shim *s, struct shim_client *c)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = c->reader->buf + c->reader->len,
			    .iov_len = frame_reader_room(c->reader)};
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf)};
	ssize_t n = recvmsg(c->fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* A `cocoon exec` that went away no longer waits for its exit. */
		for (int i = 0; i < SHIM_MAX_EXECS; i++)
			if (s->execs[i].used && s->execs[i].client_fd == c->fd)
				s->execs[i].client_fd = -1;
		char member[sizeof(c->member)];
		snprintf(member, sizeof(member), "%s", c->member);
		if (*member && s->keeping && shim_members_left(s) == 1) {
			/* The pod's last container: the VM goes now. The
			 * connection stays open until it has (the keeper's
			 * exit closes it), for that shim waits for its end
			 * (member_leave_pod). */
			c->member[0] = 0;
			return;
		}
		client_close(s, c);
		if (*member)
			shim_member_gone(s, member);
		return;
	}
	c->reader->len += (size_t)n;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		int *fds = (int *)CMSG_DATA(cm);
		for (size_t i = 0; i < k; i++) {
			if (c->nfds < 3)
				c->fds[c->nfds++] = fds[i];
			else
				close(fds[i]);
		}
	}
	const uint8_t *payload;
	size_t len;
	int r;
	while ((r = frame_reader_next(c->reader, &payload, &len)) > 0) {
		Cocoon__Request *req = cocoon__request__unpack(NULL, len, payload);
		frame_reader_consume(c->reader);
		if (!req) {
			client_close(s, c);
			return;
		}
		handle_request(s, c, req);
		cocoon__request__free_unpacked(req, NULL);
	}
	if (r < 0)
		client_close(s, c);
}

void shim_accept_client(struct shim *s)
{
	int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	for (int i = 0; i < SHIM_MAX_CLIENTS; i++) {
		if (s->clients[i].fd < 0) {
			s->clients[i].fd = fd;
			s->clients[i].reader = calloc(1, sizeof(*s->clients[i].reader));
			if (!s->clients[i].reader)
				client_close(s, &s->clients[i]);
			return;
		}
	}
	close(fd); /* bounded: at most SHIM_MAX_CLIENTS at once */
}
