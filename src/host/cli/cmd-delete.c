/* delete: stops the VM (with --force, or for a container never started) and
 * removes every trace of the container on the host. */
#include "commands.h"
#include "cleanup.h"
#include "container.h"
#include "paths.h"
#include "pod.h"
#include "shim.h"

#include <getopt.h>
#include <signal.h>
#include <string.h>
#include <time.h>

/* The shim leads its own session and process group (setsid), with QEMU and
 * virtiofsd in it: killing the group leaves nothing of the VM behind. */
static void kill_shim_group(const struct container_state *st)
{
	pid_t pgid = getpgid(st->shim_pid);
	kill(pgid == st->shim_pid ? -pgid : st->shim_pid, SIGKILL);
	long long deadline = now_ms() + 5000;
	while (pgid == st->shim_pid && kill(-pgid, 0) == 0 && now_ms() < deadline)
		nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
}

static void wait_shim_gone(struct container_state *st, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	while (state_shim_alive(st) && now_ms() < deadline)
		nanosleep(&(struct timespec){.tv_nsec = 20 * 1000 * 1000}, NULL);
	if (state_shim_alive(st)) {
		/* An unresponsive shim, or one still starting (a restore that
		 * hangs before its state is complete). */
		kill_shim_group(st);
		while (state_shim_alive(st))
			nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
	}
}

static void stop_shim(const char *dir, struct container_state *st)
{
	Cocoon__Request req = COCOON__REQUEST__INIT;
	Cocoon__ShutdownRequest bye = COCOON__SHUTDOWN_REQUEST__INIT;
	Cocoon__Response *resp = NULL;
	struct agent_client c;

	req.body_case = COCOON__REQUEST__BODY_SHUTDOWN;
	req.shutdown = &bye;
	if (shim_connect(dir, st->id, &c, NULL) == 0) {
		if (agent_call(&c, &req, &resp, 5000, NULL) == 0)
			cocoon__response__free_unpacked(resp, NULL);
		agent_client_close(&c);
	}
	wait_shim_gone(st, 10000);
}

int cmd_delete(struct global_opts *g, int argc, char **argv, struct error **errp)
{
	static const struct option opts[] = {
		{"force", no_argument, NULL, 'f'}, {"help", no_argument, NULL, 'h'}, {}};
	_cleanup_error_ struct error *err = NULL;
	_cleanup_free_ char *dir = NULL;
	struct container_state st = {0};
	bool force = false;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "fh", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			force = true;
			break;
		case 'h':
			printf("Usage: cocoon delete [--force] CONTAINER_ID\n\n"
			       "Removes a stopped or created container. --force stops a running one\n"
			       "first: its VM is destroyed.\n");
			return 0;
		default:
			return 2;
		}
	}
	if (optind != argc - 1)
		return usage_error("delete", "expects exactly one container ID");
	const char *id = argv[optind];
	if (validate_id("container", id, &err) < 0) {
		return cli_fail(errp, &err);
	}
	int r = container_load(g, id, &dir, &st, &err);
	if (r == -ENOENT && dir && force) {
		/* runc: delete --force of a missing container succeeds. A
		 * directory left without its state.json is removed, so the
		 * success is true. */
		error_free(&err);
		if (container_remove_files(dir, &err) < 0) {
			return cli_fail(errp, &err);
		}
		return 0;
	}
	if (r < 0 && (r != -EINVAL || !dir)) {
		return cli_fail(errp, &err);
	}
	bool live = st.status == STATUS_RUNNING || st.status == STATUS_PAUSED ||
		    st.status == STATUS_CREATING;
	if (r == 0 && live && !force) {
		char msg[256];
		snprintf(msg, sizeof(msg),
			 "delete %s: container is %s; stop it first or use --force", id,
			 state_status_name(st.status));
		return cli_failf(errp, "%s", msg);
	}
	if (r == 0 && st.status == STATUS_CREATING)
		wait_shim_gone(&st, 0); /* no control socket yet: nothing to ask */
	else if (r == 0 && st.status != STATUS_STOPPED)
		stop_shim(dir, &st);
	else if (r == 0)
		wait_shim_gone(&st, 10000); /* a stopped container's shim may still be exiting */
	/* A member's pod: its sandbox's directory, if a keeper that died
	 * left it after the sandbox's delete. */
	_cleanup_free_ char *sandbox_dir = NULL;
	(void)pod_images_state_dir(g, dir, &sandbox_dir, NULL); /* none: not a member */
	if (container_remove_files(dir, &err) < 0) {
		return cli_fail(errp, &err);
	}
	if (sandbox_dir)
		container_reap_stale(sandbox_dir);
	return 0;
}
