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

/* A checkpoint that outlived its time limit is answered, so that the next
 * one is not refused for ever. Returns ms until that limit, or -1. */
int shim_checkpoint_check_deadline(struct shim *s)
{
	if (!s->ckpt.active)
		return -1;
	long long left = s->ckpt.deadline_ms - now_ms();
	if (left > 0)
		return (int)left;
	_cleanup_error_ struct error *err = NULL;
	shim_checkpoint_unhold(s);
	error_setx(&err, ETIMEDOUT, "checkpoint: the agent did not answer in time");
	shim_reply_error(s->ckpt.client_fd, s->ckpt.client_req_id, err);
	s->ckpt.active = false;
	return -1;
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
