/* linux.namespaces of config.json (spec-namespaces.h): the container's
 * own, its pod's (spec-pod.c), the engine's network namespace; and what
 * the set lacks once all of linux is read. */
#include "spec-namespaces.h"
#include "spec-bundle.h"
#include "spec-json.h"
#include "spec-pod.h"
#include "cleanup.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>

/* A network namespace to join must exist, be one, and not be the runtime's
 * own. The path is looked at before it is opened: opening a device node or
 * a FIFO has effects of its own (a FIFO blocks; /dev/watchdog arms the
 * watchdog), and an nsfs file is a regular file on NSFS_MAGIC. The runtime's
 * own namespace is the host's network: the shim would redirect the host's
 * interfaces into the VM. Kata refuses it the same way
 * (katautils' hostNetworkingRequested). */
static int check_netns_path(const char *field, const char *path, struct error **err)
{
	struct stat st, own;
	struct statfs fs;
	if (path[0] != '/')
		return error_setx(err, EINVAL, "config.json: %s '%s' must be absolute", field,
				  path);
	if (stat(path, &st) < 0 || statfs(path, &fs) < 0)
		return error_set(err, errno, "config.json: %s: network namespace %s", field, path);
	if (!S_ISREG(st.st_mode) || fs.f_type != NSFS_MAGIC)
		return error_setx(err, EINVAL, "config.json: %s: %s is not a network namespace",
				  field, path);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return error_set(err, errno, "config.json: %s: network namespace %s", field, path);
	if (ioctl(fd, NS_GET_NSTYPE) != CLONE_NEWNET)
		return error_setx(err, EINVAL, "config.json: %s: %s is not a network namespace",
				  field, path);
	if (fstat(fd, &st) < 0 || stat("/proc/self/ns/net", &own) < 0)
		return error_set(err, errno, "config.json: %s: network namespace %s", field, path);
	if (st.st_dev == own.st_dev && st.st_ino == own.st_ino)
		return error_setx(
			err, EOPNOTSUPP,
			"config.json: %s: %s is the host's network namespace (the runtime's own), which asks for host networking: a container in a VM cannot share the host's network stack (docs/networking.md)",
			field, path);
	return 0;
}

/* A pod member in a user namespace of its own: the pod's network, IPC and
 * UTS namespaces belong to the guest's user namespace, and a process that
 * was cloned into a new one has no rights over them (setns(2) wants
 * CAP_SYS_ADMIN in the namespace's owner). runc joins such namespaces
 * before it makes the user namespace and the others after; the guest's
 * clone makes them all at once. */
int spec_check_user_ns_joins(const Cocoon__ContainerSpec *s, struct error **err)
{
	bool user = false;
	for (size_t i = 0; i < s->n_namespaces; i++)
		user |= strcmp(s->namespaces[i], "user") == 0;
	if (!user || s->n_join_namespaces == 0)
		return 0;
	return error_setx(
		err, EOPNOTSUPP,
		"config.json: linux.namespaces: a user namespace for a container that joins its pod's %s namespace is not supported yet: the pod's namespaces belong to the guest's user namespace, which the container's new one has no rights over (docs/lifecycle.md)",
		s->join_namespaces[0]);
}

/* linux.namespaces[I], NS: a namespace of the container's own, the pod's
 * (pod.c), or the engine's network namespace, which the shim carries into
 * the VM; joining any other is refused. */
static int parse_namespace(json_object *ns, size_t i, struct oci_bundle *b, struct error **err)
{
	Cocoon__ContainerSpec *s = b->spec;
	char field[64], *type = NULL, *path = NULL;
	int r;
	snprintf(field, sizeof(field), "linux.namespaces[%zu].type", i);
	if ((r = spec_json_string(ns, "type", field, true, &type, err)) < 0)
		return r;
	snprintf(field, sizeof(field), "linux.namespaces[%zu].path", i);
	if ((r = spec_json_string(ns, "path", field, false, &path, err)) < 0) {
		free(type);
		return r;
	}
	/* Pods: the namespaces of the pod's sandbox (pod.c). */
	if (path && (r = pod_spec_namespace(b, field, type, path, err)) != 0) {
		free(path);
		free(type);
		return r < 0 ? r : 0;
	}
	if (path && strcmp(type, "network") == 0) {
		/* The engine's network: the shim carries it into the VM. */
		r = check_netns_path(field, path, err);
		if (r < 0) {
			free(path);
			free(type);
			return r;
		}
		free(b->netns_path);
		b->netns_path = path;
		path = NULL;
	}
	if (path) {
		free(path);
		r = error_setx(
			err, EOPNOTSUPP,
			"config.json: %s: joining an existing %s namespace is not supported: a container in a VM can share only its pod sandbox's network, IPC and UTS namespaces (docs/pods.md)",
			field, type);
		free(type);
		return r;
	}
	if (strcmp(type, "pid") == 0 || strcmp(type, "mount") == 0 || strcmp(type, "uts") == 0 ||
	    strcmp(type, "ipc") == 0 || strcmp(type, "network") == 0 ||
	    strcmp(type, "cgroup") == 0 || strcmp(type, "time") == 0 || strcmp(type, "user") == 0) {
		s->namespaces[s->n_namespaces++] = type;
		return 0;
	}
	r = error_setx(err, EINVAL, "config.json: linux.namespaces[%zu]: unknown type '%s'", i,
		       type);
	free(type);
	return r;
}

int spec_parse_namespaces(json_object *lin, struct oci_bundle *b, struct error **err)
{
	Cocoon__ContainerSpec *s = b->spec;
	json_object *nss = spec_json_member(lin, "namespaces");
	int r = spec_json_want_type(nss, json_type_array, "linux.namespaces", err);
	if (r < 0)
		return r;
	size_t len = nss ? json_object_array_length(nss) : 0;
	s->namespaces = calloc(len + 1, sizeof(char *));
	for (size_t i = 0; i < len && s->namespaces; i++)
		if ((r = parse_namespace(json_object_array_get_idx(nss, i), i, b, err)) < 0)
			return r;
	return 0;
}

/* What the namespaces lack once all of linux is read: a pid or mount
 * namespace (warned: the container gets one anyway), a network namespace
 * (refused); and the linux fields not applied in the VM (warned). */
int spec_check_namespaces(json_object *lin, struct oci_bundle *b, struct error **err)
{
	const Cocoon__ContainerSpec *s = b->spec;
	/* The agent gives every container its own pid, mount, IPC and UTS
	 * namespaces (src/guest/container.c): the guest's own hold CRIU and
	 * the agent. Left out, the first two change what the process sees. */
	static const char *const own[] = {"pid", "mount"};
	for (size_t i = 0; i < ARRAY_SIZE(own); i++) {
		bool has = false;
		for (size_t j = 0; j < s->n_namespaces; j++)
			has |= strcmp(s->namespaces[j], own[i]) == 0;
		if (!has)
			spec_warn(
				b,
				"linux.namespaces has no %s namespace: the container gets a new one inside the VM, as no container shares the guest's (docs/confinement.md)",
				own[i]);
	}
	/* No network namespace means the host's network stack, which a VM
	 * cannot share. Kata refuses it too. */
	bool netns = false;
	for (size_t i = 0; i < s->n_namespaces; i++)
		netns |= strcmp(s->namespaces[i], "network") == 0;
	for (size_t i = 0; i < s->n_join_namespaces; i++)
		netns |= strcmp(s->join_namespaces[i], "network") == 0; /* the pod's */
	if (!netns)
		return error_setx(
			err, EOPNOTSUPP,
			"config.json: linux.namespaces has no network namespace, which asks for host networking: a container in a VM cannot share the host's network stack (docs/networking.md). Give it a network namespace (podman: not --network=host)");
	static const char *const unapplied[] = {"devices", "mountLabel", "personality", "intelRdt"};
	for (size_t i = 0; i < ARRAY_SIZE(unapplied); i++)
		if (spec_json_member(lin, unapplied[i]))
			spec_warn(b, "linux.%s is not applied inside the VM; ignored",
				  unapplied[i]);
	return 0;
}
