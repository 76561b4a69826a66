/* The deleted files a whole-VM checkpoint cannot carry (vmsnap.h,
 * vmsnap_deleted_held). virtiofsd keeps a descriptor for every file and
 * directory the guest has open or cached in its shares, and with
 * --migration-mode=find-paths it hands each over to the restore's virtiofsd
 * by its path in the share. A file that is deleted but still open has no
 * path: the save goes through, and after the restore the guest gets EIO on
 * it (measured: reads through /proc/self/fd and writes on the open fd
 * fail). So the host looks at virtiofsd's own descriptors, not at anything
 * the guest says, once the VM is stopped. */
#include "vmsnap.h"
#include "cleanup.h"
#include "contract.h"

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* virtiofsd and the process its sandbox forks (--sandbox=namespace), with
 * room. */
#define HELD_PIDS_MAX 16
#define DELETED_SUFFIX " (deleted)"
#define MEMFD_PREFIX "/memfd:"

/* pid and its descendants (breadth first, at most max), from
 * /proc/PID/task/TID/children. */
static size_t with_children(pid_t pid, pid_t *out, size_t max)
{
	size_t n = 0;
	out[n++] = pid;
	for (size_t i = 0; i < n && n < max; i++) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/task", (int)out[i]);
		_cleanup_closedir_ DIR *d = opendir(path);
		struct dirent *de;
		while (d && (de = readdir(d)) && n < max) {
			if (de->d_name[0] == '.')
				continue;
			char children[96];
			snprintf(children, sizeof(children), "/proc/%d/task/%.16s/children",
				 (int)out[i], de->d_name);
			FILE *f = fopen(children, "re");
			int c;
			while (f && n < max && fscanf(f, "%d", &c) == 1)
				if (c > 0)
					out[n++] = c;
			if (f)
				fclose(f);
		}
	}
	return n;
}

/* 1 with the path (under the share's root, as virtiofsd sees it) of the
 * first deleted file or directory among pid's descriptors, 0 for none.
 * Memfds are deleted by nature: the guest's memory, QEMU's vhost-user
 * areas. */
static int deleted_fd(pid_t pid, char *out, size_t size)
{
	char dir[64];
	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	_cleanup_closedir_ DIR *d = opendir(dir);
	struct dirent *de;
	const size_t sl = strlen(DELETED_SUFFIX);
	while (d && (de = readdir(d))) {
		char link[PATH_MAX + sizeof(DELETED_SUFFIX)];
		if (de->d_name[0] == '.')
			continue;
		ssize_t n = readlinkat(dirfd(d), de->d_name, link, sizeof(link) - 1);
		if (n <= (ssize_t)sl || link[0] != '/')
			continue;
		link[n] = '\0';
		if (strcmp(link + n - sl, DELETED_SUFFIX) != 0 ||
		    strncmp(link, MEMFD_PREFIX, strlen(MEMFD_PREFIX)) == 0)
			continue;
		link[n - sl] = '\0';
		snprintf(out, size, "%.*s", (int)(size - 1), link);
		return 1;
	}
	return 0;
}

static const char *share_what(const char *tag)
{
	if (strcmp(tag, COCOON_TAG_ROOTFS) == 0)
		return "the container's root filesystem";
	if (strcmp(tag, COCOON_TAG_VOLUMES) == 0)
		return "a volume of the container";
	if (strcmp(tag, COCOON_TAG_SHARED) == 0)
		return "cocoon's shared directory";
	return "a share";
}

int vmsnap_deleted_held(const struct vm *vm, struct error **err)
{
	for (int i = 0; i < VM_MAX_AUX; i++) {
		pid_t pids[HELD_PIDS_MAX];
		char path[PATH_MAX + sizeof(DELETED_SUFFIX)];
		if (vm->aux[i] <= 0)
			continue;
		size_t n = with_children(vm->aux[i], pids, HELD_PIDS_MAX);
		for (size_t k = 0; k < n; k++) {
			if (!deleted_fd(pids[k], path, sizeof(path)))
				continue;
			return error_setx(
				err, EOPNOTSUPP,
				"the guest holds the deleted file %.1024s open on %s (virtiofs share \"%s\"): a whole-VM checkpoint hands the files the guest has open over by their path in the share (virtiofsd --migration-mode=find-paths), and a deleted file has none, so after a restore the container would get EIO on it. Let go of it before the checkpoint, keep such files on a tmpfs in the container (its content is in the VM's memory), or create the container with checkpoint_mode \"criu\" and rootfs_fs \"virtiofs\" (CRIU carries it as a ghost file; docs/whole-vm.md). The container runs on",
				path, share_what(vm->aux_tag[i]), vm->aux_tag[i]);
		}
	}
	return 0;
}
