/* CRIU's dump command line (dump-argv.h): the options cocoon always
 * gives, the mounts and terminals CRIU leaves out of the dump as external,
 * and the spec's config file (criu-conf.c). checkpoint.c runs it. */
#include "dump-argv.h"
#include "cleanup.h"
#include "ckpt-common.h"
#include "container.h"
#include "container-child.h"
#include "criu-conf.h"
#include "mounts.h"
#include "userns.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

/* /dev/shm may hold the container's data, so CRIU archives it (tar | gzip
 * while the container is frozen: 0.18 s under TCG). While it is empty it is
 * left out and made afresh at restore. The watch is set before looking, so
 * that any file created from then until the dump ends shows up as an event:
 * the dump is then refused as stale (ESTALE) and the host asks again with
 * the archive. Returns the watch, or -1 to archive /dev/shm as usual. */
static int shm_left_out(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/root/dev/shm", pid);
	int w = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (w < 0)
		return -1;
	if (inotify_add_watch(w, path, IN_CREATE | IN_MOVED_TO | IN_ONLYDIR) < 0) {
		close(w);
		return -1;
	}
	_cleanup_closedir_ DIR *d = opendir(path);
	struct dirent *de;
	bool empty = d != NULL;
	while (empty && (de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			empty = false;
	if (!empty) {
		close(w);
		return -1;
	}
	return w;
}

/* The mounts, terminal and bind mounts CRIU leaves out of a dump as
 * external: the restore gives each its new counterpart. */
static void external_args(struct argv *av, struct ckpt_ctx *x, struct agent_container *c,
			  const Cocoon__CheckpointRequest *req)
{
	/* /dev holds the device nodes and links the agent made from the
	 * spec. Dumped, it cost two tar+gzip runs while frozen (0.2-0.4 s
	 * under TCG); a restore builds it afresh from the same spec. */
	if (c->dev_tmpfs) {
		argv_add(av, "--external");
		argv_add(av, "mnt[/dev]:" DEV_KEY);
		if (userns_wanted(c->spec))
			mounts_dev_binds_external(av);
	}
	mounts_cgroup_binds_external(
		av, c->spec, userns_wanted(c->spec) && !container_has_ns(c->spec, "cgroup"), NULL);
	if (c->shm_tmpfs && !req->dump_dev_shm &&
	    (x->shm_watch = shm_left_out(c->procs[0].pid)) >= 0) {
		argv_add(av, "--external");
		argv_add(av, "mnt[/dev/shm]:" SHM_KEY);
	}
	for (size_t i = 0; i < c->n_binds; i++) {
		/* Keyed by destination, as runc does: an engine may list the
		 * mounts in another order at restore (podman --import does). */
		argv_add(av, "--external");
		argv_addf(av, "mnt[%s]:%s", c->bind_dests[i], c->bind_dests[i]);
	}
	for (size_t i = 0; i < x->n_tty; i++) {
		argv_add(av, "--external");
		argv_add(av, x->tty_args[i]);
	}
}

int dump_criu_argv(struct argv *av, struct ckpt_ctx *x, struct agent_container *c,
		   const Cocoon__CheckpointRequest *req)
{
	struct agent *a = x->a;
	char pid[16], parent[300];
	snprintf(pid, sizeof(pid), "%d", c->procs[0].pid);
	argv_add(av, a->criu_path);
	argv_add(av, req->pre_dump ? "pre-dump" : "dump");
	argv_add(av, "-t");
	argv_add(av, pid);
	argv_add(av, "-D");
	argv_add(av, x->img);
	argv_add(av, "-o");
	argv_add(av, COCOON_DUMP_LOG);
	criu_log_level_arg(av, req->criu, (req->criu && req->criu->debug) || a->debug);
	/* CRIU freezes through the container's cgroup; a paused container is
	 * already frozen there and stays so afterwards. */
	argv_add(av, "--freeze-cgroup");
	argv_add(av, c->cgroup);
	argv_add(av, "--manage-cgroups=ignore");
	argv_add(av, "--track-mem");
	/* CRIU runs inside the container's network namespace (checkpoint.c),
	 * so it locks only established TCP connections, and only with
	 * --tcp-established: then through libnftables, one table for all of
	 * them. Otherwise iptables, which costs nothing when there is nothing
	 * to lock; with nftables CRIU 3.17 built its table anyway (0.12 s of
	 * frozen time under TCG). */
	argv_add(av, "--network-lock");
	argv_add(av, req->criu && req->criu->tcp_established ? "nftables" : "iptables");
	/* The tasks stay alive; checkpoint.c's ckpt_freeze says why. */
	if (!req->pre_dump)
		argv_add(av, "--leave-running");
	if (*req->parent_id) {
		snprintf(x->parent, sizeof(x->parent), "%s", req->parent_id);
		snprintf(parent, sizeof(parent), "../%s", req->parent_id);
		argv_add(av, "--prev-images-dir");
		argv_add(av, parent);
	}
	if (!req->pre_dump) {
		criu_common_args(av, req->criu);
		external_args(av, x, c, req);
	}
	if (x->stream) {
		argv_add(av, "--page-server");
		argv_add(av, "--ps-socket");
		argv_add(av, "3");
	}
	/* The rest comes from the spec: criu-conf.c. */
	char conf[300];
	snprintf(conf, sizeof(conf), "%s/criu-%s.conf", a->ckpt_dir, c->id);
	if (!req->pre_dump &&
	    criu_conf_write(conf, a, c, c->procs[0].pid, req->criu, true, req->fault) == 0) {
		argv_add(av, "--config");
		argv_add(av, conf);
	}
	return argv_finish(av);
}
