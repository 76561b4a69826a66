/* The QEMU microvm backend.
 *
 * microvm has no PCI and no firmware to speak of, which keeps TCG boots short.
 * Devices are virtio-mmio: virtio-serial for the agent channel (there is no
 * vhost-vsock on our hosts) and virtio-9p for the rootfs. The shared
 * directory and the image directories of a restore are 9p too, or with
 * shared_fs = "virtiofs" vhost-user-fs devices, each served by a virtiofsd
 * this backend starts (and kills with the VM).
 *
 * The guest ends its life with a reboot: QEMU runs with -no-reboot and the
 * kernel with reboot=t (triple fault), so that turns into a prompt QEMU exit.
 * panic=-1 does the same for a guest kernel panic, e.g. when PID 1 dies.
 */
#include "vm.h"
#include "vm-qemu.h"
#include "argv.h"
#include "cleanup.h"
#include "paths.h"

#include <fcntl.h>
#include <stdarg.h>
#include <signal.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#define QEMU_MAX_ARGS 128
/* QEMU 7.2's C virtiofsd, from qemu-system-common. */
#define VIRTIOFSD "/usr/lib/qemu/virtiofsd"

/* QEMU's option parser splits on commas; a path with one would be misread. */
static bool qemu_safe_path(const char *p)
{
	return p && !strchr(p, ',');
}

/* Under TCG the guest TSC runs at the host's rate. Telling the kernel so
 * skips its PIT calibration, which fails at random on a loaded host and then
 * hangs the boot ("tsc: Unable to calibrate against PIT"). */
static long host_tsc_khz(void)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/cpuinfo", "re");
	char line[256];
	double mhz;

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "cpu MHz : %lf", &mhz) == 1 && mhz > 100)
			return (long)(mhz * 1000);
	return 0;
}

/* In a child about to exec: every descriptor from lowfd up is closed at
 * exec, whatever whoever started cocoon leaked into it. Descriptors meant
 * for the child are made inheritable after this, one by one. */
static void cloexec_from(int lowfd)
{
	if (close_range((unsigned)lowfd, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
		return;
	for (int fd = lowfd; fd < 4096; fd++)	      /* kernels before 5.11 */
		(void)fcntl(fd, F_SETFD, FD_CLOEXEC); /* EBADF: not open */
}

/* A file of the virtiofsd serving TAG ("sock", "log"): beside the agent's
 * channel socket, in the sandbox's state directory. */
static void virtiofs_path(char *out, size_t size, const char *channel_path, const char *tag,
			  const char *what)
{
	char name[64];
	snprintf(name, sizeof(name), "vfs-%s.%s", tag, what);
	_cleanup_free_ char *path = path_beside(channel_path, name);
	snprintf(out, size, "%s", path ? path : "");
}

/* A virtio-9p share of DIR under TAG. */
static int add_9p_opts(struct argv *b, const char *tag, const char *dir, const char *opts,
		       struct error **err)
{
	if (!qemu_safe_path(dir))
		return error_setx(err, EINVAL, "%s path '%s' contains a comma", tag, dir);
	argv_addf(b, "-fsdev");
	argv_addf(b, "local,id=%s,path=%s,security_model=passthrough%s", tag, dir, opts);
	argv_addf(b, "-device");
	argv_addf(b, "virtio-9p-device,fsdev=%s,mount_tag=%s", tag, tag);
	return 0;
}

static int add_9p(struct argv *b, const char *tag, const char *dir, bool readonly,
		  struct error **err)
{
	return add_9p_opts(b, tag, dir, readonly ? ",readonly=on" : "", err);
}

static void add_virtiofs(struct argv *b, const char *tag, const char *channel_path)
{
	char path[108];
	virtiofs_path(path, sizeof(path), channel_path, tag, "sock");
	argv_addf(b, "-chardev");
	argv_addf(b, "socket,id=vfs-%s,path=%s", tag, path);
	argv_addf(b, "-device");
	argv_addf(b, "vhost-user-fs-device,chardev=vfs-%s,tag=%s", tag, tag);
}

/* QEMU 7.2's C virtiofsd. cache=none: the guest's page cache is the only
 * one, as with the 9p shares. The volumes are mount points of other
 * filesystems, announced as such, and cache=auto because FUSE's direct I/O
 * (cache=none) refuses the shared writable mappings a container may make of
 * a volume file; the rootfs (rootfs_fs "virtiofs") likewise. */
static void virtiofsd_c_argv(struct argv *av, const char *dir, enum share_kind kind)
{
	argv_add(av, VIRTIOFSD);
	argv_add(av, "--fd=3");
	argv_add(av, "-o");
	argv_addf(av, "source=%s", dir);
	argv_add(av, "-o");
	argv_add(av, kind == SHARE_VOLUMES || kind == SHARE_ROOTFS ? "cache=auto" : "cache=none");
	argv_add_pair(av, "-o", "log_level=warn");
	if (kind == SHARE_ROOTFS)
		argv_add_pair(av, "-o", "xattr"); /* as the 9p rootfs: file caps and ACLs stay */
	if (kind == SHARE_VOLUMES)
		argv_add_pair(av, "-o", "announce_submounts");
}

/* A virtiofsd that migrates (whole-VM mode, the Rust one): find-paths hands
 * the guest's open inodes over by their paths in the share, so a new
 * virtiofsd over a directory with the same contents resumes them; an inode
 * that is gone by then fails in the guest, not the whole restore
 * (guest-error). The rootfs and volumes keep the guest's page cache
 * (cache=auto: shared writable mappings work); the tools never change
 * (always). */
static void virtiofsd_rust_argv(struct argv *av, const char *bin, const char *dir,
				enum share_kind kind)
{
	argv_add(av, bin);
	argv_add(av, "--fd=3");
	argv_addf(av, "--shared-dir=%s", dir);
	argv_add(av, kind == SHARE_PLAIN      ? "--cache=never"
		     : kind == SHARE_READONLY ? "--cache=always"
					      : "--cache=auto");
	argv_add(av, "--log-level=warn");
	argv_add(av, "--migration-mode=find-paths");
	argv_add(av, "--migration-on-error=guest-error");
	argv_add(av, kind == SHARE_VOLUMES ? "--announce-submounts" : "--no-announce-submounts");
	if (kind == SHARE_READONLY)
		argv_add(av, "--readonly");
}

int virtiofsd_argv(struct argv *av, const char *rust_bin, const char *dir, enum share_kind kind)
{
	if (rust_bin)
		virtiofsd_rust_argv(av, rust_bin, dir, kind);
	else
		virtiofsd_c_argv(av, dir, kind);
	return argv_finish(av);
}

/* Starts a virtiofsd serving DIR to the guest under TAG, into vm->aux[slot].
 * The socket is made and listening here and handed over with --fd, so QEMU
 * can connect the moment it starts. A read-only share under the C virtiofsd
 * (which has no read-only mode) is a read-only bind mount of DIR in a mount
 * namespace of virtiofsd's own. */
static int virtiofsd_start(struct vm *vm, int slot, const struct vm_spec *s, const char *tag,
			   const char *dir, enum share_kind kind, struct error **err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	virtiofs_path(sa.sun_path, sizeof(sa.sun_path), s->channel_path, tag, "sock");
	unlink(sa.sun_path);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0)
		return error_set(err, errno, "virtiofs socket %s", sa.sun_path);

	char log_path[4200];
	_cleanup_(argv_free) struct argv av = ARGV_EMPTY;
	virtiofs_path(log_path, sizeof(log_path), s->channel_path, tag, "log");
	int bad = virtiofsd_argv(&av, s->snapshot_virtiofsd, dir, kind);
	if (bad < 0)
		return error_set(err, -bad, "virtiofsd's command line for %s", tag);
	char **argv = av.args;
	bool bind_readonly = kind == SHARE_READONLY && !s->snapshot_virtiofsd;
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		return error_set(err, errno, "fork virtiofsd");
	if (pid == 0) {
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL); /* cannot fail: a valid signal */
		if (getppid() != parent)
			_exit(1);
		/* The listening socket is virtiofsd's fd 3, its only one
		 * beyond stdio. */
		if ((fd == 3 ? fcntl(fd, F_SETFD, 0) : dup2(fd, 3)) < 0)
			_exit(126);
		cloexec_from(4);
		/* O_APPEND: the shim's guard truncates it at its cap. */
		int log = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
		if (log >= 0 && (dup2(log, 1) < 0 || dup2(log, 2) < 0))
			_exit(126);
		if (bind_readonly &&
		    (unshare(CLONE_NEWNS) < 0 ||
		     mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
		     mount(dir, dir, NULL, MS_BIND, NULL) < 0 ||
		     mount(NULL, dir, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0)) {
			dprintf(2, "virtiofsd for %s: read-only bind mount of %s: %s\n", tag, dir,
				strerror(errno));
			_exit(126);
		}
		execvp(argv[0], argv);
		dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	vm->aux[slot] = pid;
	return 0;
}

/* The shared directory, volumes and image directories: virtiofs with
 * shared_fs "virtiofs" and in whole-VM mode. */
static bool shares_on_virtiofs(const struct vm_spec *s)
{
	return s->snapshot_virtiofsd || (s->shared_fs && strcmp(s->shared_fs, "virtiofs") == 0);
}

/* The rootfs: virtiofs with rootfs_fs "virtiofs" and in whole-VM mode. */
static bool rootfs_on_virtiofs(const struct vm_spec *s)
{
	return s->snapshot_virtiofsd || (s->rootfs_fs && strcmp(s->rootfs_fs, "virtiofs") == 0);
}

/* Any virtiofs device: the guest's memory must then be shared (vhost-user). */
static bool any_virtiofs(const struct vm_spec *s)
{
	return shares_on_virtiofs(s) || (s->rootfs_dir && rootfs_on_virtiofs(s));
}

static int virtiofsd_start_all(struct vm *vm, const struct vm_spec *s, struct error **err)
{
	if (!s->snapshot_virtiofsd && access(VIRTIOFSD, X_OK) < 0)
		return error_set(
			err, errno,
			"virtiofs shares (shared_fs or rootfs_fs \"virtiofs\") need %s (Debian package qemu-system-common)",
			VIRTIOFSD);
	if (s->n_images_dirs + 4 > VM_MAX_AUX)
		return error_setx(err, E2BIG, "%d image directories: at most %d with virtiofs",
				  s->n_images_dirs, VM_MAX_AUX - 4);
	int slot = 0;
	if (s->shared_dir && shares_on_virtiofs(s) &&
	    virtiofsd_start(vm, slot++, s, COCOON_TAG_SHARED, s->shared_dir, SHARE_PLAIN, err) < 0)
		return -1;
	if (s->volumes_dir && shares_on_virtiofs(s) &&
	    virtiofsd_start(vm, slot++, s, COCOON_TAG_VOLUMES, s->volumes_dir, SHARE_VOLUMES, err) <
		    0)
		return -1;
	if (rootfs_on_virtiofs(s) && s->rootfs_dir &&
	    virtiofsd_start(vm, slot++, s, COCOON_TAG_ROOTFS, s->rootfs_dir, SHARE_ROOTFS, err) < 0)
		return -1;
	if (s->snapshot_virtiofsd && s->tools_dir &&
	    virtiofsd_start(vm, slot++, s, COCOON_TAG_TOOLS, s->tools_dir, SHARE_READONLY, err) < 0)
		return -1;
	for (int i = 0; i < s->n_images_dirs && shares_on_virtiofs(s); i++) {
		char tag[COCOON_TAG_IMAGES_SIZE];
		cocoon_images_tag(tag, i);
		if (virtiofsd_start(vm, slot++, s, tag, s->images_dirs[i], SHARE_READONLY, err) < 0)
			return -1;
	}
	return 0;
}

static int build_argv(struct argv *b, const struct vm_spec *s, struct error **err)
{
	const char *paths[] = {s->kernel, s->initrd, s->channel_path, s->console_log};
	for (size_t i = 0; i < ARRAY_SIZE(paths); i++)
		if (!qemu_safe_path(paths[i]))
			return error_setx(err, EINVAL, "path '%s' is missing or contains a comma",
					  paths[i] ? paths[i] : "(null)");
	if (s->shared_dir && !qemu_safe_path(s->shared_dir))
		return error_setx(err, EINVAL, "shared path '%s' contains a comma", s->shared_dir);
	bool snapshot = s->snapshot_virtiofsd != NULL;
	bool shares_vfs = shares_on_virtiofs(s), virtiofs = any_virtiofs(s);
	if (!shares_vfs && strcmp(s->shared_fs, "9p") != 0)
		return error_setx(err, EINVAL, "shared_fs \"%s\": use \"9p\" or \"virtiofs\"",
				  s->shared_fs);
	if (s->rootfs_fs && strcmp(s->rootfs_fs, "9p") != 0 &&
	    strcmp(s->rootfs_fs, "virtiofs") != 0)
		return error_setx(err, EINVAL, "rootfs_fs \"%s\": use \"9p\" or \"virtiofs\"",
				  s->rootfs_fs);

	bool kvm = strcmp(s->accel, "kvm") == 0;
	argv_addf(b, "%s", s->qemu);
	if (s->memory_file && (virtiofs || !qemu_safe_path(s->memory_file)))
		return error_setx(err, EINVAL,
				  "a VM template needs shared_fs \"9p\" and a path without commas");
	if (s->memory_file) {
		/* x-ignore-shared (set over QMP: 7.2 has no property for it):
		 * the migration stream leaves out RAM that is a shared mapping, so the template's
		 * RAM stays in its file; a VM started from it maps the file privately and loads
		 * nothing into it (docs/performance.md, "VM templates"). */
		argv_addf(b, "-object");
		argv_addf(b, "memory-backend-file,id=mem,size=%dM,mem-path=%s,share=%s",
			  s->memory_mib, s->memory_file, s->memory_shared ? "on" : "off");
	}
	if (virtiofs) {
		/* vhost-user needs the guest's memory in a shared mapping, and
		 * virtiofsd (libvhost-user) refuses the legacy virtio-mmio that
		 * microvm offers by default. */
		argv_addf(b, "-object");
		argv_addf(b, "memory-backend-memfd,id=mem,size=%dM,share=on", s->memory_mib);
		argv_addf(b, "-global");
		argv_addf(b, "virtio-mmio.force-legacy=false");
	}
	argv_addf(b, "-M");
	argv_addf(b, "microvm,accel=%s%s", kvm ? "kvm" : "tcg",
		  virtiofs || s->memory_file ? ",memory-backend=mem" : "");
	argv_addf(b, "-cpu");
	argv_addf(b, "%s", kvm ? "host" : "max");
	argv_addf(b, "-m");
	argv_addf(b, "%d", s->memory_mib);
	argv_addf(b, "-smp");
	argv_addf(b, "%d", s->vcpus);
	argv_addf(b, "-nodefaults");
	argv_addf(b, "-no-user-config");
	argv_addf(b, "-display");
	argv_addf(b, "none");
	argv_addf(b, "-no-reboot");
	/* append=on: the shim truncates the log at its cap (console.c). */
	argv_addf(b, "-chardev");
	argv_addf(b, "file,id=console,path=%s,append=on", s->console_log);
	argv_addf(b, "-serial");
	argv_addf(b, "chardev:console");
	argv_addf(b, "-kernel");
	argv_addf(b, "%s", s->kernel);
	argv_addf(b, "-initrd");
	argv_addf(b, "%s", s->initrd);
	argv_addf(b, "-append");
	char tsc[48] = "";
	long khz = kvm ? 0 : host_tsc_khz();
	if (khz > 0)
		snprintf(tsc, sizeof(tsc), "tsc_early_khz=%ld ", khz);
	argv_addf(b, "console=ttyS0 quiet reboot=t panic=-1 %s%s%s%s%s%s", tsc,
		  shares_vfs ? COCOON_CMDLINE_VIRTIOFS " " : "",
		  snapshot ? COCOON_CMDLINE_VMSNAP " " : "",
		  !snapshot && s->rootfs_dir && rootfs_on_virtiofs(s)
			  ? COCOON_CMDLINE_ROOTFS_VIRTIOFS " "
			  : "",
		  s->memory_file ? COCOON_CMDLINE_TEMPLATE " " : "",
		  s->cmdline_extra ? s->cmdline_extra : "");
	/* One port: max_ports=2 (port 0 is the console's) instead of the
	 * default 31 gives the guest 4 virtqueues to set up instead of 64. */
	argv_addf(b, "-device");
	argv_addf(b, "virtio-serial-device,max_ports=2");
	argv_addf(b, "-chardev");
	argv_addf(b, "socket,id=agent,path=%s,server=on,wait=off", s->channel_path);
	argv_addf(b, "-device");
	argv_addf(b, "virtserialport,chardev=agent,name=" COCOON_CHANNEL_NAME);
	if (s->shared_dir && shares_vfs)
		add_virtiofs(b, COCOON_TAG_SHARED, s->channel_path);
	else if (s->shared_dir && add_9p(b, COCOON_TAG_SHARED, s->shared_dir, false, err) < 0)
		return -1;
	/* The image's tools tree (CRIU and what it runs), never written.
	 * Whole-VM mode: no 9p at all, a mounted 9p export blocks migration
	 * in every QEMU ("Migration is disabled when VirtFS export path ...
	 * is mounted"). */
	if (s->tools_dir && snapshot)
		add_virtiofs(b, COCOON_TAG_TOOLS, s->channel_path);
	else if (s->tools_dir && add_9p(b, COCOON_TAG_TOOLS, s->tools_dir, true, err) < 0)
		return -1;
	if (s->rootfs_dir && rootfs_on_virtiofs(s))
		add_virtiofs(b, COCOON_TAG_ROOTFS, s->channel_path);
	else if (s->rootfs_dir && add_9p(b, COCOON_TAG_ROOTFS, s->rootfs_dir, false, err) < 0)
		return -1;
	/* The volumes are mount points of other filesystems: remapped inode
	 * numbers keep two files of two volumes from looking alike. */
	if (s->volumes_dir && shares_vfs)
		add_virtiofs(b, COCOON_TAG_VOLUMES, s->channel_path);
	else if (s->volumes_dir &&
		 add_9p_opts(b, COCOON_TAG_VOLUMES, s->volumes_dir, ",multidevs=remap", err) < 0)
		return -1;
	/* Pods: the members' rootfs and volumes are bind mounts under this
	 * directory, one device each; remap keeps their inode numbers apart
	 * in the guest. Always 9p: QEMU sees a new bind at once. */
	if (s->pod_dir && snapshot)
		return error_setx(
			err, EOPNOTSUPP,
			"whole-VM checkpoints of a pod are not supported yet (its share is 9p: docs/whole-vm.md)");
	if (s->pod_dir && add_9p_opts(b, COCOON_TAG_POD, s->pod_dir, ",multidevs=remap", err) < 0)
		return -1;
	for (int i = 0; i < s->n_images_dirs; i++) {
		/* Read-only: restoring must never change the user's images
		 * (for virtiofs, see virtiofsd_start). */
		char tag[COCOON_TAG_IMAGES_SIZE];
		cocoon_images_tag(tag, i);
		if (shares_vfs)
			add_virtiofs(b, tag, s->channel_path);
		else if (add_9p(b, tag, s->images_dirs[i], true, err) < 0)
			return -1;
	}
	/* The engine's network: taps the shim made in its namespace, passed
	 * as fds; no vhost-net (docs/networking.md). */
	for (int i = 0; i < s->n_nets; i++) {
		argv_addf(b, "-netdev");
		argv_addf(b, "tap,id=net%d,fd=%d,vhost=off", i, s->net_fds[i]);
		argv_addf(b, "-device");
		argv_addf(b, "virtio-net-device,netdev=net%d,mac=%s", i, s->net_macs[i]);
	}
	if (s->qmp_path) {
		if (!qemu_safe_path(s->qmp_path))
			return error_setx(err, EINVAL, "QMP path '%s' contains a comma",
					  s->qmp_path);
		argv_addf(b, "-qmp");
		argv_addf(b, "unix:%s,server=on,wait=off", s->qmp_path);
	}
	/* QEMU inherits incoming_fd under its own number (qemu_start); the
	 * host starts the load over QMP ("fd:N") once x-ignore-shared is set
	 * (template.c). */
	if (s->incoming_fd > 0 || s->incoming_defer) {
		argv_addf(b, "-incoming");
		argv_addf(b, "defer");
	}
	int r = argv_finish(b);
	if (r == -E2BIG)
		return error_setx(err, E2BIG, "qemu command line too long");
	if (r < 0)
		return error_set(err, -r, "qemu command line");
	return 0;
}

char *vm_qemu_command_line(const struct vm_spec *spec, struct error **err)
{
	struct argv b;
	argv_init(&b, QEMU_MAX_ARGS - 1);
	char *line = NULL;
	size_t len = 0;

	if (build_argv(&b, spec, err) < 0) {
		argv_free(&b);
		return NULL;
	}
	FILE *f = open_memstream(&line, &len);
	for (size_t i = 0; f && i < b.n; i++)
		fprintf(f, "%s%s", i ? " " : "", b.args[i]);
	if (f)
		fclose(f);
	argv_free(&b);
	if (!line)
		error_set(err, ENOMEM, "qemu command line");
	return line;
}

static void qemu_kill(struct vm *vm);

static int qemu_start(struct vm *vm, const struct vm_spec *spec, struct error **err)
{
	struct argv b;
	argv_init(&b, QEMU_MAX_ARGS - 1);
	int p[2];

	int r = build_argv(&b, spec, err);
	if (r < 0) {
		argv_free(&b);
		return r;
	}
	if (any_virtiofs(spec) && virtiofsd_start_all(vm, spec, err) < 0) {
		argv_free(&b);
		qemu_kill(vm);
		return -1;
	}
	/* The child reports a failed exec through this close-on-exec pipe:
	 * no bytes means exec succeeded. */
	if (pipe2(p, O_CLOEXEC) < 0) {
		argv_free(&b);
		qemu_kill(vm);
		return error_set(err, errno, "pipe");
	}
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		argv_free(&b);
		qemu_kill(vm);
		return error_set(err, errno, "fork");
	}
	if (pid == 0) {
		/* The VM must not outlive whoever started it. */
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL); /* cannot fail: a valid signal */
		if (getppid() != parent)
			_exit(1);
		cloexec_from(3);
		/* The device state a VM from a template starts from (-incoming). */
		if (spec->incoming_fd > 0 && fcntl(spec->incoming_fd, F_SETFD, 0) < 0)
			_exit(126);
		int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
		/* O_APPEND: the shim's guard truncates it at its cap. */
		int log = spec->vmm_log
				  ? open(spec->vmm_log,
					 O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600)
				  : -1;
		if (in >= 0 && dup2(in, 0) < 0)
			_exit(126);
		if (log >= 0 && (dup2(log, 1) < 0 || dup2(log, 2) < 0))
			_exit(126);
		for (int i = 0; i < spec->n_nets; i++) /* the taps are QEMU's */
			if (fcntl(spec->net_fds[i], F_SETFD, 0) < 0)
				_exit(126);
		execvp(b.args[0], b.args);
		int e = errno;
		if (write(p[1], &e, sizeof(e)) < 0)
			_exit(127);
		_exit(127);
	}
	close(p[1]);
	argv_free(&b);
	vm->pid = pid;

	int child_errno = 0;
	ssize_t n;
	do
		n = read(p[0], &child_errno, sizeof(child_errno));
	while (n < 0 && errno == EINTR);
	close(p[0]);
	if (n == sizeof(child_errno)) {
		waitpid(pid, NULL, 0);
		vm->exited = true;
		qemu_kill(vm);
		if (child_errno == ENOENT)
			return error_setx(err, ENOENT, "%s not found in PATH", spec->qemu);
		return error_set(err, child_errno, "exec %s", spec->qemu);
	}
	return 0;
}

static void qemu_kill(struct vm *vm)
{
	if (vm->pid > 0 && !vm->exited) {
		kill(vm->pid, SIGKILL);
		waitpid(vm->pid, &vm->status, 0);
		vm->exited = true;
	}
	for (int i = 0; i < VM_MAX_AUX; i++) {
		if (vm->aux[i] > 0) {
			kill(vm->aux[i], SIGKILL);
			waitpid(vm->aux[i], NULL, 0);
			vm->aux[i] = 0;
		}
	}
}

const struct vm_backend vm_backend_qemu = {
	.name = "qemu",
	.start = qemu_start,
	.kill = qemu_kill,
};
