/* linux.sysctl inside the guest (sysctl.h). */
#include "sysctl.h"
#include "cleanup.h"
#include "error.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

bool sysctl_is_net(const char *key)
{
	return strncmp(key, "net.", 4) == 0;
}

/* /proc/sys/<key>, the dotted form's separators becoming slashes and its
 * slashes dots (sysctl(8)). The host checked the key (spec-kernel.c); a
 * "." or ".." name is refused here as well, since it would leave
 * /proc/sys. */
static int sysctl_path(const char *key, char *path, size_t size)
{
	int n = snprintf(path, size, "/proc/sys/%s", key);
	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	for (char *p = path + 10; *p; p++)
		*p = *p == '.' ? '/' : *p == '/' ? '.' : *p;
	if (strstr(path, "/./") || strstr(path, "/../") || strstr(path, "//"))
		return -EINVAL;
	size_t len = strlen(path);
	if (path[len - 1] == '/' || (len >= 2 && strcmp(path + len - 2, "/.") == 0) ||
	    (len >= 3 && strcmp(path + len - 3, "/..") == 0))
		return -EINVAL;
	return 0;
}

static int sysctl_write(const Cocoon__Sysctl *e, struct error **err)
{
	char path[200];
	int r = sysctl_path(e->key, path, sizeof(path));
	if (r < 0)
		return error_setx(err, -r, "linux.sysctl %s: not a sysctl name", e->key);
	_cleanup_close_ int fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return error_setx(
				err, ENOENT,
				"linux.sysctl %s: the guest's kernel has no such sysctl (%s)",
				e->key, path);
		return error_set(err, errno, "linux.sysctl %s: %s", e->key, path);
	}
	size_t len = strlen(e->value);
	ssize_t w = write(fd, e->value, len);
	if (w < 0 || (size_t)w != len)
		return error_set(err, w < 0 ? errno : EIO,
				 "linux.sysctl %s = '%.64s': the kernel refused it", e->key,
				 e->value);
	return 0;
}

int sysctl_apply(const Cocoon__ContainerSpec *s, bool net, struct error **err)
{
	for (size_t i = 0; i < s->n_sysctl; i++) {
		if (!s->sysctl[i] || sysctl_is_net(s->sysctl[i]->key) != net)
			continue;
		int r = sysctl_write(s->sysctl[i], err);
		if (r < 0)
			return r;
	}
	return 0;
}

int sysctl_apply_net_in(int netns_fd, const Cocoon__ContainerSpec *s, struct error **err)
{
	bool any = false;
	for (size_t i = 0; i < s->n_sysctl; i++)
		any |= s->sysctl[i] && sysctl_is_net(s->sysctl[i]->key);
	if (!any)
		return 0;
	_cleanup_close_ int mine = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (mine < 0 || setns(netns_fd, CLONE_NEWNET) < 0)
		return error_set(err, errno,
				 "linux.sysctl: enter the container's network namespace");
	int r = sysctl_apply(s, true, err);
	if (setns(mine, CLONE_NEWNET) < 0 && r == 0)
		r = error_set(err, errno, "linux.sysctl: return to the agent's network namespace");
	return r;
}

int sysctl_apply_net_of(const Cocoon__ContainerSpec *s, pid_t pid, int pod_net, struct error **err)
{
	char path[64];
	_cleanup_close_ int own = -1;
	bool any = false;
	for (size_t i = 0; i < s->n_sysctl; i++)
		any |= s->sysctl[i] && sysctl_is_net(s->sysctl[i]->key);
	if (!any)
		return 0;
	if (pod_net < 0) {
		snprintf(path, sizeof(path), "/proc/%d/ns/net", pid);
		if ((own = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			return error_set(err, errno,
					 "linux.sysctl: the container's network namespace");
	}
	return sysctl_apply_net_in(pod_net >= 0 ? pod_net : own, s, err);
}
