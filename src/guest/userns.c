/* A container's user namespace (userns.h). */
#include "userns.h"
#include "cleanup.h"
#include "error.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool userns_wanted(const Cocoon__ContainerSpec *s)
{
	for (size_t i = 0; i < s->n_namespaces; i++)
		if (strcmp(s->namespaces[i], "user") == 0)
			return true;
	return false;
}

/* One map: "container host size\n" per line, in a single write (the kernel
 * takes a map once, whole). The host bounded the lines (SPEC_ID_MAP_MAX). */
static int write_map(pid_t pid, const char *file, Cocoon__IdMapping *const *m, size_t n,
		     struct error **err)
{
	char path[64];
	size_t size = n * 36 + 1, len = 0;
	_cleanup_free_ char *buf = malloc(size);
	if (!buf)
		return error_setx(err, ENOMEM, "%s: out of memory", file);
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(buf + len, size - len, "%u %u %u\n", m[i]->container_id,
					m[i]->host_id, m[i]->size);
	snprintf(path, sizeof(path), "/proc/%d/%s", pid, file);
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, buf, len) != (ssize_t)len)
		return error_set(err, errno,
				 "user namespace: linux.%s: the guest's kernel refused it",
				 strcmp(file, "uid_map") == 0 ? "uidMappings" : "gidMappings");
	return 0;
}

static int write_oom_score_adj(pid_t pid, const Cocoon__ProcessSpec *p, struct error **err)
{
	char path[64], buf[16];
	if (!p || !p->has_oom_score_adj)
		return 0;
	int n = snprintf(buf, sizeof(buf), "%d", p->oom_score_adj);
	snprintf(path, sizeof(path), "/proc/%d/oom_score_adj", pid);
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, buf, (size_t)n) != n)
		return error_set(err, errno, "process.oomScoreAdj %d: %s", p->oom_score_adj, path);
	return 0;
}

int userns_set_up_child(pid_t pid, const Cocoon__ContainerSpec *s, struct error **err)
{
	int r = write_map(pid, "uid_map", s->uid_mappings, s->n_uid_mappings, err);
	if (r == 0)
		r = write_map(pid, "gid_map", s->gid_mappings, s->n_gid_mappings, err);
	return r < 0 ? r : write_oom_score_adj(pid, s->process, err);
}

int userns_become_root(struct error **err)
{
	/* Groups first: with the uid changed first, CAP_SETGID would still be
	 * there (root of the namespace), but runc's order is this one. */
	if (setresgid(0, 0, 0) < 0 || setgroups(0, NULL) < 0 || setresuid(0, 0, 0) < 0) {
		int e = errno;
		return error_setx(err, e,
				  "user namespace: becoming its root (uid and gid 0): %s (do "
				  "linux.uidMappings and gidMappings map container id 0?)",
				  strerror(e));
	}
	return 0;
}

static bool map_root(Cocoon__IdMapping *const *m, size_t n, uint32_t *id)
{
	for (size_t i = 0; i < n; i++)
		if (m[i]->container_id == 0 && m[i]->size > 0) {
			*id = m[i]->host_id;
			return true;
		}
	return false;
}

int userns_root_ids(const Cocoon__ContainerSpec *s, uid_t *uid, gid_t *gid)
{
	uint32_t u, g;
	if (!map_root(s->uid_mappings, s->n_uid_mappings, &u) ||
	    !map_root(s->gid_mappings, s->n_gid_mappings, &g))
		return -ENOENT;
	*uid = u;
	*gid = g;
	return 0;
}
