/* The engines' stats: the shim's host cgroup and the figures it mirrors
 * (cgroup-mirror.h says why and how). */
#include "shim-mirror.h"
#include "cgroup-mirror.h"
#include "agent-client.h"
#include "cleanup.h"
#include "log.h"
#include "paths.h"
#include "state.h"

#include <stdio.h>

void shim_mirror_setup(struct shim *s)
{
	_cleanup_error_ struct error *err = NULL;
	const char *path = s->args->bundle->cgroup;
	if (!path)
		return;
	/* Recorded first: a shim that dies half-way still has it removed. */
	snprintf(s->st.cgroup, sizeof(s->st.cgroup), "%s", path);
	(void)state_write(s->args->dir, &s->st, NULL); /* shim_setup's own write reports */
	if (cgmirror_setup(&s->mirror, path, &err) < 0) {
		log_warning(
			"container %s: linux.cgroupsPath %s: %s; podman stats and ctr task metrics do not show its figures",
			s->args->id, path, err->msg);
		if (err->code == EEXIST) {
			/* Not ours: delete must leave it alone. */
			s->st.cgroup[0] = 0;
			(void)state_write(s->args->dir, &s->st,
					  NULL); /* shim_setup's own write reports */
		}
		return;
	}
	s->mirror_next_ms = now_ms();
	if (cgmirror_oom_setup(&s->mirror, path, &err) < 0)
		log_warning(
			"container %s: linux.cgroupsPath %s: %s; the engines do not learn of its OOM kills",
			s->args->id, path, err->msg);
}

void shim_mirror_exit(struct shim *s, uint64_t oom_kill)
{
	_cleanup_error_ struct error *err = NULL;
	if (s->mirror.n && cgmirror_oom_kill(&s->mirror, oom_kill, &err) < 0)
		log_warning("container %s: an OOM kill in the guest not shown to the engine: %s",
			    s->args->id, err->msg);
}

void shim_mirror_join(struct shim *s)
{
	_cleanup_error_ struct error *err = NULL;
	if (s->mirror.n_leaves && cgmirror_join(&s->mirror, s->st.shim_pid, &err) < 0)
		log_warning(
			"container %s: %s; podman stats and ctr task metrics do not show its figures",
			s->args->id, err->msg);
}

void shim_mirror_tick(struct shim *s)
{
	Cocoon__Request req = COCOON__REQUEST__INIT;
	Cocoon__StatsRequest sr = COCOON__STATS_REQUEST__INIT;

	s->mirror_next_ms = now_ms() + CGMIRROR_INTERVAL_MS;
	/* A VM stopped by a whole-VM checkpoint answers nothing until it is
	 * killed or let run: not asked (when asks were waited for, each cost
	 * 2 s and kept the loop from the engine's kill: rev18c F13). */
	if (s->ckpt.active || s->exited || s->vm_stopped)
		return;
	/* The last ask still has its time: one at a time. */
	if (s->mirror_agent_id && now_ms() < s->mirror_until_ms)
		return;
	/* Sent, not waited for: a guest that reads the request and never
	 * answers (or answers late) would hold the shim in a 2 s wait every
	 * second, back to back, serving no start, kill or exec. The answer
	 * comes through shim_mirror_reply(). */
	sr.id = (char *)s->args->id;
	req.body_case = COCOON__REQUEST__BODY_STATS;
	req.stats = &sr;
	int64_t id = agent_send_request(&s->sb.agent, &req, NULL);
	s->mirror_agent_id = id > 0 ? (uint64_t)id : 0;
	s->mirror_until_ms = now_ms() + CGMIRROR_REPLY_MS;
}

bool shim_mirror_reply(struct shim *s, const Cocoon__Response *r)
{
	_cleanup_error_ struct error *err = NULL;
	if (!s->mirror_agent_id || r->id != s->mirror_agent_id)
		return false;
	s->mirror_agent_id = 0;
	if (agent_check_reply(&s->sb.agent, COCOON__REQUEST__BODY_STATS, r, NULL) < 0 || !r->stats)
		return true;
	if (cgmirror_update(&s->mirror, r->stats, &err) < 0)
		log_warning("container %s: an OOM kill in the guest not shown to the engine: %s",
			    s->args->id, err->msg);
	return true;
}
