/* A checkpoint through the shim: forwarded to the agent, the engine's traffic
 * held meanwhile, the reply handed to the client that asked, a time limit. */
#include "shim-checkpoint.h"
#include "qmp.h"
#include "vmsnap.h"
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

/* A checkpoint that ends the container and carries its established TCP
 * connections: from before the dump until the restore, nothing may answer
 * their peers, neither the frozen guest nor, once it is gone, anything on
 * the engine's side (docs/networking.md). */
static int checkpoint_hold(struct shim *s, const Cocoon__Request *req, struct error **err)
{
	const Cocoon__CheckpointRequest *cr = req->checkpoint;
	if (req->body_case != COCOON__REQUEST__BODY_CHECKPOINT || !s->net.sk || !cr->criu ||
	    !cr->criu->tcp_established || cr->leave_running || cr->pre_dump || s->net_held)
		return 0;
	int r = network_hold(&s->net, true, err);
	if (r < 0)
		return error_wrap(err, "checkpoint");
	s->net_held = true;
	return 0;
}

void shim_checkpoint_unhold(struct shim *s)
{
	if (!s->net_held)
		return;
	_cleanup_error_ struct error *err = NULL;
	if (network_release(&s->net, &err) < 0)
		log_warning("container %s: %s", s->args->id, err->msg);
	s->net_held = false;
}

void shim_checkpoint_reply(struct shim *s, const Cocoon__Response *r)
{
	_cleanup_error_ struct error *err = NULL;
	if (!s->ckpt.active || r->id != s->ckpt.agent_id)
		return; /* a late reply to a call that timed out */
	s->ckpt.active = false;
	if (agent_check_reply(&s->sb.agent, COCOON__REQUEST__BODY_CHECKPOINT, r, &err) < 0) {
		shim_checkpoint_unhold(s); /* the container runs on */
		shim_reply_error(s->ckpt.client_fd, s->ckpt.client_req_id, err);
		return;
	}
	Cocoon__Response out = *r;
	out.id = s->ckpt.client_req_id;
	shim_send_to_client(s->ckpt.client_fd, &out);
}

/* What the error of a checkpoint given up on adds: the client must know
 * that the container is not lost and that nothing it got is complete. */
#define CHECKPOINT_GIVEN_UP                                                                        \
	"; no images are published, and should the guest answer later, its images are discarded and the container is put back as it was (running, or paused if it was)"

int shim_checkpoint_given_up(struct shim *s, const struct agent_progress *p, long long deadline_ms,
			     struct error **err)
{
	int limit = shim_silence_ms(s);
	if (limit <= 0 || now_ms() >= deadline_ms)
		return error_setx(err, ETIMEDOUT,
				  "the agent did not answer within %d min" CHECKPOINT_GIVEN_UP,
				  SHIM_CHECKPOINT_TIMEOUT_MS / 60000);
	_cleanup_error_ struct error *quiet = NULL;
	(void)agent_progress_silence_error(p, "checkpoint", limit, &quiet); /* its text */
	return error_setx(err, ETIMEDOUT, "%s" CHECKPOINT_GIVEN_UP, quiet->msg);
}

long long shim_checkpoint_left(const struct shim *s, const struct agent_progress *p,
			       long long deadline_ms)
{
	long long left = deadline_ms - now_ms();
	int limit = shim_silence_ms(s);
	long long quiet = limit > 0 ? agent_progress_left(p, limit) : left;
	return quiet < left ? quiet : left;
}

/* A checkpoint that outlived its time limit, or whose guest went quiet for
 * limits.checkpoint_silence_ms, is answered at once, so that its client
 * is not held and the next one is not refused for ever; a reply that
 * comes after that is undone (shim_checkpoint_undo). Returns ms until
 * the nearer limit, or -1. */
int shim_checkpoint_check_deadline(struct shim *s)
{
	if (!s->ckpt.active)
		return -1;
	long long left = shim_checkpoint_left(s, &s->ckpt.progress, s->ckpt.deadline_ms);
	if (left > 0)
		return left > INT32_MAX ? INT32_MAX : (int)left;
	_cleanup_error_ struct error *err = NULL;
	shim_checkpoint_unhold(s);
	(void)shim_checkpoint_given_up(s, &s->ckpt.progress, s->ckpt.deadline_ms,
				       &err); /* always -ETIMEDOUT: the error is what goes on */
	shim_reply_error(s->ckpt.client_fd, s->ckpt.client_req_id, err);
	s->ckpt.active = false;
	shim_abandon(s, COCOON__REQUEST__BODY_CHECKPOINT, s->ckpt.agent_id, s->args->id,
		     s->ckpt.ckid);
	return -1;
}

/* The state directory, by path: by its fd when the keeper has one (a
 * delete of the pod's sandbox moves it, pod.h pod_kept_dir). */
static void state_dir_path(const struct shim *s, char *out, size_t size)
{
	if (s->dir_fd >= 0)
		snprintf(out, size, "/proc/self/fd/%d", s->dir_fd);
	else
		snprintf(out, size, "%s", s->args->dir);
}

void shim_checkpoint_undo(struct shim *s, const struct shim_abandoned *a, const Cocoon__Response *r)
{
	char dir[4200];
	bool ok =
		r->error == 0 && r->body_case == COCOON__RESPONSE__BODY_CHECKPOINT && r->checkpoint;
	/* What the guest wrote for it: never published, so nothing is left
	 * that looks like a checkpoint (the client removed what it saw at
	 * the time; the guest wrote on after that). */
	state_dir_path(s, dir, sizeof(dir));
	if (*a->ckid && validate_id("checkpoint", a->ckid, NULL) == 0)
		images_discard(dir, a->ckid);
	/* An exit-mode checkpoint froze the container and left it so, for
	 * the host to kill once the images were safe: it runs on instead.
	 * One that was paused before was not frozen by it, and stays paused
	 * (the guest says which). A failed one was put back by the guest. */
	bool thaw = ok && r->checkpoint->left_frozen;
	if (thaw) {
		Cocoon__Request req = COCOON__REQUEST__INIT;
		Cocoon__PauseRequest pr = COCOON__PAUSE_REQUEST__INIT;
		pr.id = (char *)a->container;
		pr.resume = true;
		req.body_case = COCOON__REQUEST__BODY_PAUSE;
		req.pause = &pr;
		/* Its answer is dropped (shim_checkpoint_reply): no one waits. */
		(void)agent_send_request(&s->sb.agent, &req, NULL);
	}
	log_warning("checkpoint %s: the guest answered (%s) after the host had given up on it: %s",
		    a->container, ok ? "done" : "failed",
		    thaw ? "its images are discarded and the container thawed"
			 : "its images are discarded; the container is as it was");
}

void shim_handle_checkpoint(struct shim *s, struct shim_client *c, Cocoon__Request *req)
{
	_cleanup_error_ struct error *err = NULL;
	uint64_t cid = req->id;
	if (s->ckpt.active) {
		error_setx(&err, EBUSY, "checkpoint %s: another checkpoint is in progress",
			   s->args->id);
		shim_reply_error(c->fd, cid, err);
		return;
	}
	if (checkpoint_hold(s, req, &err) < 0) {
		shim_reply_error(c->fd, cid, err);
		return;
	}
	char *client_id = req->checkpoint->id;
	req->checkpoint->id = (char *)s->args->id;
	int64_t id = agent_send_request(&s->sb.agent, req, &err);
	req->checkpoint->id = client_id;
	if (id < 0) {
		shim_checkpoint_unhold(s);
		shim_reply_error(c->fd, cid, err);
		return;
	}
	s->ckpt.active = true;
	s->ckpt.agent_id = (uint64_t)id;
	s->ckpt.client_req_id = cid;
	s->ckpt.client_fd = c->fd;
	s->ckpt.deadline_ms = now_ms() + SHIM_CHECKPOINT_TIMEOUT_MS;
	agent_progress_start(&s->ckpt.progress);
	snprintf(s->ckpt.ckid, sizeof(s->ckpt.ckid), "%s",
		 req->checkpoint->checkpoint_id ? req->checkpoint->checkpoint_id : "");
}

/* A whole-VM checkpoint (vmsnap.h): QEMU saves the VM into the file the
 * checkpoint command made beside its --image-path and sent with the
 * request (vmsnap_stage; one descriptor, SCM_RIGHTS), which that command
 * then publishes. Without --leave-running the VM is not let go on: it is
 * killed, and the shim exits as for a killed container. */
void shim_handle_vm_checkpoint(struct shim *s, struct shim_client *c, Cocoon__Request *req)
{
	_cleanup_error_ struct error *err = NULL;
	_cleanup_free_ char *key = NULL, *mark = NULL, *qmp = NULL;
	const Cocoon__CheckpointRequest *cr = req->checkpoint;
	struct vmsnap_save_stats st;
	/* The client's to fill, the shim's to close whatever happens. */
	_cleanup_close_ int state_fd = c->nfds == 1 ? c->fds[0] : -1;
	if (c->nfds == 1)
		c->nfds = 0;

	if (state_fd < 0) {
		error_setx(&err, EINVAL,
			   "checkpoint %s: the request carries no file to save the VM into",
			   s->args->id);
		shim_reply_error(c->fd, req->id, err);
		return;
	}
	if (!s->sb.vmsnap || s->args->pod) {
		error_setx(
			&err, EOPNOTSUPP,
			"checkpoint %s: its VM was not booted for whole-VM checkpoints (checkpoint_mode \"vm\" when it was created)",
			s->args->id);
		shim_reply_error(c->fd, req->id, err);
		return;
	}
	if (s->ckpt.active) {
		error_setx(&err, EBUSY, "checkpoint %s: another checkpoint is in progress",
			   s->args->id);
		shim_reply_error(c->fd, req->id, err);
		return;
	}
	if (asprintf(&mark, "%s/" VMSNAP_MARK, s->args->dir) < 0 ||
	    asprintf(&qmp, "%s/" SANDBOX_QMP, s->args->dir) < 0 ||
	    read_file_bounded(mark, VMSNAP_KEY_MAX, &key, NULL, &err) < 0) {
		if (!err)
			error_set(&err, ENOMEM, "checkpoint");
		shim_reply_error(c->fd, req->id, err);
		return;
	}
	/* --tcp-established: the connections are in the saved VM; nothing
	 * may answer their peers until the restore (as for CRIU's route). */
	if (checkpoint_hold(s, req, &err) < 0) {
		shim_reply_error(c->fd, req->id, err);
		return;
	}
	/* Without --leave-running the VM stays stopped (save with no cont). */
	if (vmsnap_save(&s->sb.vm, qmp, state_fd, vmsnap_key_mapped_ram(key), cr->leave_running,
			&st, &err) < 0) {
		shim_checkpoint_unhold(s); /* the container runs on */
		error_wrap(&err, "checkpoint %s: save the VM", s->args->id);
		shim_reply_error(c->fd, req->id, err);
		return;
	}
	Cocoon__Response resp = COCOON__RESPONSE__INIT;
	Cocoon__CheckpointReply rep = COCOON__CHECKPOINT_REPLY__INIT;
	Cocoon__CriuStats stats = COCOON__CRIU_STATS__INIT;
	stats.frozen_us = (uint32_t)(st.frozen_ms * 1000);
	rep.stats = &stats;
	rep.dump_ms = (uint64_t)st.save_ms;
	rep.bytes = st.bytes;
	rep.files = 1;
	rep.route = (char *)"vm";
	resp.id = req->id;
	resp.body_case = COCOON__RESPONSE__BODY_CHECKPOINT;
	resp.checkpoint = &rep;
	shim_send_to_client(c->fd, &resp);
	s->vm_stopped = !cr->leave_running;
}

/* The kill or thaw that ends a whole-VM checkpoint (vm_stopped): the agent
 * cannot answer while the VM is stopped. */
void shim_vm_stopped_request(struct shim *s, struct shim_client *c, Cocoon__Request *req)
{
	_cleanup_error_ struct error *err = NULL;
	Cocoon__Response resp = COCOON__RESPONSE__INIT;
	Cocoon__SignalReply sig = COCOON__SIGNAL_REPLY__INIT;
	Cocoon__PauseReply pause = COCOON__PAUSE_REPLY__INIT;
	resp.id = req->id;
	if (req->body_case == COCOON__REQUEST__BODY_SIGNAL) {
		if (s->sb.vm.backend)
			s->sb.vm.backend->kill(&s->sb.vm);
		resp.body_case = COCOON__RESPONSE__BODY_SIGNAL;
		resp.signal = &sig;
	} else {
		_cleanup_free_ char *qmp = NULL;
		struct qmp q = {.fd = -1};
		int r = asprintf(&qmp, "%s/" SANDBOX_QMP, s->args->dir) < 0
				? error_set(&err, ENOMEM, "qmp")
				: qmp_connect(&q, &s->sb.vm, qmp, &err);
		if (r == 0)
			r = qmp_call(&q, "{\"execute\":\"cont\"}\n", -1, NULL, &err);
		if (q.fd >= 0)
			close(q.fd);
		if (r < 0) {
			shim_reply_error(c->fd, req->id, err);
			return;
		}
		shim_checkpoint_unhold(s); /* the publish failed: it runs on */
		resp.body_case = COCOON__RESPONSE__BODY_PAUSE;
		resp.pause = &pause;
	}
	s->vm_stopped = false;
	shim_send_to_client(c->fd, &resp);
}
