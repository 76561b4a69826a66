/* Bringing the guest up as PID 1, and taking it down. */
#include "init.h"
#include "agent.h"
#include "channel.h"
#include "modules.h"
#include "cleanup.h"

#include <dirent.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

static void mount_one(struct agent *a, const char *src, const char *target, const char *type,
		      unsigned long flags, const char *data)
{
	mkdir(target, 0755);
	if (mount(src, target, type, flags, data) < 0 && errno != EBUSY)
		agent_log(a, "mount %s on %s: %s", type, target, strerror(errno));
}

/* Brings "lo" up in the calling process's network namespace: for the guest
 * itself, for each container, and for a restored container's new netns.
 * CRIU's kerndat probes TCP repair on a socket bound to loopback, and exits
 * with "Network is unreachable" when lo is down. */
int agent_loopback_up(void)
{
	_cleanup_close_ int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr = {0};

	strcpy(ifr.ifr_name, "lo");
	if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		return -errno;
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	return ioctl(fd, SIOCSIFFLAGS, &ifr) < 0 ? -errno : 0;
}

static bool cmdline_has(const char *word)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/cmdline", "re");
	char line[4096], *save = NULL;

	if (!f || !fgets(line, sizeof(line), f))
		return false;
	for (char *t = strtok_r(line, " \n", &save); t; t = strtok_r(NULL, " \n", &save))
		if (strcmp(t, word) == 0)
			return true;
	return false;
}

/* The kernel's initramfs root ("rootfs") has no parent mount, and
 * pivot_root() refuses to move such a root: every container would have to
 * fall back to chroot, which CRIU does not restore well. So PID 1 first
 * re-roots itself onto a bind mount of the same tree, without copying it,
 * the way switch_root does onto a real disk. */
static void reroot_off_initramfs(struct agent *a)
{
	if (mkdir("/newroot", 0755) < 0 && errno != EEXIST)
		return;
	if (mount("/", "/newroot", NULL, MS_BIND | MS_REC, NULL) < 0 || chdir("/newroot") < 0 ||
	    mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0 || chdir("/") < 0)
		agent_log(a, "re-root off the initramfs: %s", strerror(errno));
}

void agent_init_system(struct agent *a)
{
	reroot_off_initramfs(a);
	/* The kernel starts init with no PATH; CRIU runs iptables and ip by
	 * name, and glibc's default path has no sbin ("exited, status=1"). */
	(void)setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin", 1); /* else execvp's default */
	mount_one(a, "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mount_one(a, "sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mount_one(a, "devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
	/* CRIU's check opens /dev/ptmx; it needs devpts behind it. */
	mount_one(a, "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
		  "mode=0620,ptmxmode=0666");
	mount_one(a, "tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	mount_one(a, "tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
	mount_one(a, "tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	mount_one(a, "cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC,
		  NULL);

	/* The console the kernel gave us may predate devtmpfs; reopen it. */
	int fd = open("/dev/console", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd >= 0) {
		(void)dup2(fd, 1); /* else the old console stays: still a console */
		(void)dup2(fd, 2);
		close(fd);
	}
	a->debug = cmdline_has(COCOON_CMDLINE_DEBUG);
	a->virtiofs = cmdline_has(COCOON_CMDLINE_VIRTIOFS);
	a->vmsnap = cmdline_has(COCOON_CMDLINE_VMSNAP);
	a->rootfs_virtiofs = a->vmsnap || cmdline_has(COCOON_CMDLINE_ROOTFS_VIRTIOFS);

	agent_load_modules(a, AGENT_MODULES_LIST);
	/* CRIU, its libraries and tools and the late modules: the image's
	 * tools tree, which the initramfs reaches through symlinks
	 * (guest/image/mkimage.sh). Read-only and unchanging on the host, so
	 * the guest may cache it fully. An initramfs that holds everything
	 * itself comes without the share, and the mount fails harmlessly. */
	if ((a->vmsnap ? mount(COCOON_TAG_TOOLS, AGENT_TOOLS_DIR, "virtiofs",
			       MS_RDONLY | MS_NOSUID | MS_NODEV, NULL)
		       : agent_mount_9p(COCOON_TAG_TOOLS, AGENT_TOOLS_DIR,
					MS_RDONLY | MS_NOSUID | MS_NODEV, "loose")) < 0 &&
	    a->debug)
		agent_log(a, "no tools share (%s)", strerror(errno));
	int lo = agent_loopback_up();
	if (lo < 0)
		agent_log(a, "lo up: %s", strerror(-lo));

	/* 0711: a container in a user namespace is "other" to the guest's root
	 * and must pass through to its rootfs and volumes below
	 * (docs/lifecycle.md, "User namespaces"); nothing here is listable. */
	mkdir(COCOON_GUEST_RUN_DIR, 0711);
	mkdir(AGENT_SHARED_DIR, 0700);
	a->template_mode = cmdline_has(COCOON_CMDLINE_TEMPLATE);
	if (!a->template_mode &&
	    agent_mount_share(a, COCOON_TAG_SHARED, AGENT_SHARED_DIR, MS_NOSUID | MS_NODEV) == 0)
		a->shared_mounted = true;
	else if (a->debug)
		agent_log(a, "no shared directory (%s)", strerror(errno));
}

int agent_mount_9p(const char *tag, const char *dir, unsigned long flags, const char *cache)
{
	/* msize 512000: measured at ~530 MB/s for large writes, see
	 * docs/performance.md. */
	char opts[128];
	snprintf(opts, sizeof(opts),
		 "trans=virtio,version=9p2000.L,msize=512000,cache=%s,access=client", cache);
	return mount(tag, dir, "9p", flags, opts);
}

int agent_mount_share(const struct agent *a, const char *tag, const char *dir, unsigned long flags)
{
	/* virtiofs: the host's virtiofsd runs with cache=none. */
	if (a->virtiofs)
		return mount(tag, dir, "virtiofs", flags, NULL);
	/* cache=none: no guest page cache, and 9p's zero-copy path lets QEMU
	 * fill the reader's pages itself. */
	return agent_mount_9p(tag, dir, flags, "none");
}

/* Finds the /dev node of the virtio-serial port named COCOON_CHANNEL_NAME. */
static int find_channel(char *out, size_t out_size)
{
	_cleanup_closedir_ DIR *d = opendir("/sys/class/virtio-ports");
	struct dirent *de;

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char path[512], name[64] = "";
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", de->d_name);
		_cleanup_fclose_ FILE *f = fopen(path, "re");
		if (!f || !fgets(name, sizeof(name), f))
			continue;
		name[strcspn(name, "\n")] = 0;
		if (strcmp(name, COCOON_CHANNEL_NAME) == 0) {
			snprintf(out, out_size, "/dev/%s", de->d_name);
			return 0;
		}
	}
	return -ENOENT;
}

static int connect_unix(const char *path, struct error **err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (strlen(path) >= sizeof(sa.sun_path))
		return error_setx(err, ENAMETOOLONG, "channel path %s too long", path);
	strcpy(sa.sun_path, path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return error_set(err, errno, "connect %s", path);
	return TAKE_FD(fd);
}

/* With path_override (tests, outside a VM) the channel is a unix socket. */
int agent_open_channel(const char *path_override, struct error **err)
{
	char path[300];
	int r = -ENOENT;

	if (path_override) {
		int fd = connect_unix(path_override, err);
		if (fd >= 0)
			(void)fcntl(fd, F_SETFL, O_NONBLOCK); /* cannot fail on an open fd */
		return fd;
	}
	/* The port appears once virtio_console has probed; allow it a moment. */
	for (int i = 0; i < 300 && r < 0; i++) {
		r = find_channel(path, sizeof(path));
		if (r < 0)
			nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
	}
	if (r < 0)
		return error_setx(err, -r, "virtio-serial port %s not found", COCOON_CHANNEL_NAME);
	int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return error_set(err, errno, "open %s", path);
	return fd;
}

/* QEMU runs with -no-reboot and the kernel with reboot=t, so a reboot ends
 * the QEMU process at once; ACPI power-off is not available on every machine
 * type. */
void agent_power_off(struct agent *a)
{
	sync();
	if (!a->is_init)
		exit(0);
	if (a->shared_mounted)
		(void)umount2(AGENT_SHARED_DIR, MNT_DETACH); /* the VM ends next */
	reboot(RB_AUTOBOOT);
	_exit(1);
}
