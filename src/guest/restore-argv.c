/* CRIU's restore command line (restore-argv.h): the options cocoon always
 * gives, the bind mounts and the fresh /dev and /dev/shm as external, the
 * user's CRIU options, and the spec's config file (criu-conf.c). restore.c
 * adds the stdio, the network namespace and the execs' pipes. */
#include "restore-argv.h"
#include "cleanup.h"
#include "ckpt-common.h"
#include "container.h"
#include "container-child.h"
#include "criu-conf.h"
#include "mounts.h"
#include "userns.h"

#include <stdio.h>

void restore_criu_argv(struct restore_ctx *x, struct agent_container *c, struct argv *av)
{
	struct agent *a = x->a;
	argv_add(av, a->criu_path);
	argv_add(av, "restore");
	argv_add(av, "-D");
	argv_add(av, x->images);
	argv_add(av, "-W");
	argv_add(av, x->work);
	argv_add(av, "-o");
	argv_add(av, COCOON_RESTORE_LOG);
	criu_log_level_arg(av, &x->criu, x->criu.debug || a->debug);
	argv_add(av, "--root");
	argv_add(av, c->rootfs);
	argv_add(av, "--restore-detached");
	argv_add(av, "--pidfile");
	argv_addf(av, "%s/pidfile", x->work);
	argv_add(av, "--manage-cgroups=ignore");
	/* Page images staged in guest tmpfs (a user namespace's, see
	 * restore_images) are punched out as CRIU restores them: the guest
	 * holds the container's memory about once, not twice. CRIU opens them
	 * read-write through its helper in the guest's user namespace
	 * (usernsd, image.c). */
	if (x->pages_staged)
		argv_add(av, "--auto-dedup");
	criu_common_args(av, &x->criu);
	for (size_t i = 0; i < c->n_binds; i++) {
		argv_add(av, "--external");
		argv_addf(av, "mnt[%s]:%s", c->bind_dests[i], c->bind_sources[i]);
	}
	for (size_t i = 0; i < ARRAY_SIZE(x->fresh_args); i++) {
		if (!x->fresh_args[i][0])
			continue;
		argv_add(av, "--external");
		argv_add(av, x->fresh_args[i]);
	}
	if (c->dev_tmpfs && userns_wanted(c->spec))
		mounts_dev_binds_external(av);
	mounts_cgroup_binds_external(av, c->spec,
				     userns_wanted(c->spec) && !container_has_ns(c->spec, "cgroup"),
				     c->cgroup);
	char conf[300];
	snprintf(conf, sizeof(conf), "%s/criu.conf", x->work);
	if (criu_conf_write(conf, a, c, 0, &x->criu, false, x->fault) == 0) {
		argv_add(av, "--config");
		argv_add(av, conf);
	}
}
