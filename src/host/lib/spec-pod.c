/* The namespaces config.json joins, as the containers of a pod do
 * (spec-pod.h); the pods themselves are pod.c. */
#include "spec-pod.h"
#include "spec-bundle.h"
#include "cleanup.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>

/* /proc/<pid>/ns/<name>: the namespaces of a process, by pid. */
static pid_t proc_ns_pid(const char *path)
{
	const char *p = path;
	if (strncmp(p, "/proc/", 6) != 0)
		return 0;
	p += 6;
	char *end;
	long pid = strtol(p, &end, 10);
	if (end == p || pid <= 0 || pid > 1 << 22 || strncmp(end, "/ns/", 4) != 0 || !end[4] ||
	    strchr(end + 4, '/'))
		return 0;
	return (pid_t)pid;
}

static bool pod_shares(const char *type)
{
	return strcmp(type, "network") == 0 || strcmp(type, "ipc") == 0 || strcmp(type, "uts") == 0;
}

/* CRI-O pins a pod's IPC and UTS namespaces (its pinns, under
 * /var/run/ipcns and /var/run/utsns) before it creates the pod's infra
 * container, and that container's spec names them by path, as its
 * members' specs do. They are new and empty, the pod's own: in the VM the
 * sandbox gets new ones, which its members join (they name the sandbox by
 * CRI-O's SandboxID annotation). Kata leaves these paths to the guest the
 * same way. The path is looked at before it is opened (a FIFO would block,
 * as for a network namespace), and the host's own namespace is refused: a
 * VM cannot share it. Returns 1 (taken as the sandbox's own namespace) or
 * a negative errno. */
static int sandbox_pinned_namespace(struct oci_bundle *b, const char *field, const char *type,
				    const char *path, struct error **err)
{
	const int nstype = strcmp(type, "ipc") == 0 ? CLONE_NEWIPC : CLONE_NEWUTS;
	char own_path[32];
	struct stat st, own;
	struct statfs fs;
	Cocoon__ContainerSpec *s = b->spec;

	if (path[0] != '/')
		return error_setx(err, EINVAL, "config.json: %s '%s' must be absolute", field,
				  path);
	if (stat(path, &st) < 0 || statfs(path, &fs) < 0)
		return error_set(err, errno, "config.json: %s: %s namespace %s", field, type, path);
	if (!S_ISREG(st.st_mode) || fs.f_type != NSFS_MAGIC)
		return error_setx(err, EINVAL, "config.json: %s: %s is not a namespace", field,
				  path);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0 || fstat(fd, &st) < 0)
		return error_set(err, errno, "config.json: %s: %s namespace %s", field, type, path);
	if (ioctl(fd, NS_GET_NSTYPE) != nstype)
		return error_setx(err, EINVAL, "config.json: %s: %s is not an %s namespace", field,
				  path, type);
	snprintf(own_path, sizeof(own_path), "/proc/self/ns/%s", type);
	if (stat(own_path, &own) < 0)
		return error_set(err, errno, "%s", own_path);
	if (st.st_dev == own.st_dev && st.st_ino == own.st_ino)
		return error_setx(
			err, EOPNOTSUPP,
			"config.json: %s: %s is the host's %s namespace (the runtime's own): a container in a VM cannot share it",
			field, path, type);
	for (size_t i = 0; i < s->n_namespaces; i++)
		if (strcmp(s->namespaces[i], type) == 0)
			return 1;
	if (!(s->namespaces[s->n_namespaces] = strdup(type)))
		return error_set(err, ENOMEM, "config.json");
	s->n_namespaces++;
	return 1;
}

int pod_spec_namespace(struct oci_bundle *b, const char *field, const char *type, const char *path,
		       struct error **err)
{
	pid_t pid = proc_ns_pid(path);
	Cocoon__ContainerSpec *s = b->spec;

	if (!pid && b->pod.sandbox && (strcmp(type, "ipc") == 0 || strcmp(type, "uts") == 0))
		return sandbox_pinned_namespace(b, field, type, path, err);

	/* A CRI member joins the pod's network namespace by the CNI path,
	 * which its sandbox carried into the VM already. */
	if (!pid && !(b->pod.sandbox_id && pod_shares(type)))
		return 0;
	if (!pid && strcmp(type, "network") == 0) {
		free(b->pod.netns_path);
		if (!(b->pod.netns_path = strdup(path)))
			return error_set(err, ENOMEM, "config.json");
	}
	if (strcmp(type, "pid") == 0)
		return error_setx(
			err, EOPNOTSUPP,
			"config.json: %s: joining the pid namespace of %s (Kubernetes' "
			"shareProcessNamespace) is not supported: in the pod's VM each container's "
			"processes are a pid namespace of their own, which CRIU checkpoints and "
			"restores whole, so that they get their pids back; in a shared one their "
			"pids could be taken by the other containers' processes by the time they "
			"are restored. The containers of a pod share their network, IPC and UTS "
			"namespaces only",
			field, path);
	if (!pod_shares(type))
		return error_setx(
			err, EOPNOTSUPP,
			"config.json: %s: joining the %s namespace of %s is not supported: the containers of a pod share their network, IPC and UTS namespaces only",
			field, type, path);
	if (pid && b->pod.join_pid && b->pod.join_pid != pid)
		return error_setx(
			err, EINVAL,
			"config.json: %s: %s names process %d, another namespace path process %d: a container joins one pod",
			field, path, pid, b->pod.join_pid);
	if (pid)
		b->pod.join_pid = pid;
	for (size_t i = 0; i < s->n_join_namespaces; i++)
		if (strcmp(s->join_namespaces[i], type) == 0)
			return 1;
	char **grown = realloc(s->join_namespaces, (s->n_join_namespaces + 1) * sizeof(char *));
	if (!grown)
		return error_set(err, ENOMEM, "config.json");
	s->join_namespaces = grown;
	if (!(s->join_namespaces[s->n_join_namespaces] = strdup(type)))
		return error_set(err, ENOMEM, "config.json");
	s->n_join_namespaces++;
	return 1;
}
