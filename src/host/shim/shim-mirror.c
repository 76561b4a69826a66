/* The engines' stats: the shim's host cgroup and the figures it mirrors
 * (cgroup-mirror.h says why and how). */
#include "shim-mirror.h"
#include "cgroup-mirror.h"
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
	Cocoon__Response *resp = NULL;
	_cleanup_error_ struct error *err = NULL;

	s->mirror_next_ms = now_ms() + CGMIRROR_INTERVAL_MS;
	/* A VM stopped by a whole-VM checkpoint answers nothing: asking would
	 * cost 2 s a tick and keep the main loop from the engine's kill. */
	if (s->ckpt.active || s->exited || s->vm_stopped)
		return;
	sr.id = (char *)s->args->id;
	req.body_case = COCOON__REQUEST__BODY_STATS;
	req.stats = &sr;
	int r = agent_call(&s->sb.agent, &req, &resp, 2000, NULL);
	/* The next tick counts from the answer: a guest slower than the
	 * interval must not leave the loop no time for its clients. */
	s->mirror_next_ms = now_ms() + CGMIRROR_INTERVAL_MS;
	if (r < 0)
		return;
	if (resp->stats && cgmirror_update(&s->mirror, resp->stats, &err) < 0)
		log_warning("container %s: an OOM kill in the guest not shown to the engine: %s",
			    s->args->id, err->msg);
	cocoon__response__free_unpacked(resp, NULL);
}
