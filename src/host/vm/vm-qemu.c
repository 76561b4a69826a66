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
#include "vm-qemu-argv.h"
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

/* QEMU 7.2's C virtiofsd, from qemu-system-common. */
#define VIRTIOFSD "/usr/lib/qemu/virtiofsd"

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
	qemu_virtiofs_path(sa.sun_path, sizeof(sa.sun_path), s->channel_path, tag, "sock");
	unlink(sa.sun_path);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0)
		return error_set(err, errno, "virtiofs socket %s", sa.sun_path);

	char log_path[4200];
	_cleanup_(argv_free) struct argv av = ARGV_EMPTY;
	qemu_virtiofs_path(log_path, sizeof(log_path), s->channel_path, tag, "log");
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
	snprintf(vm->aux_tag[slot], sizeof(vm->aux_tag[slot]), "%s", tag);
	return 0;
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
	if (s->shared_dir && qemu_shares_on_virtiofs(s) &&
	    virtiofsd_start(vm, slot++, s, COCOON_TAG_SHARED, s->shared_dir, SHARE_PLAIN, err) < 0)
		return -1;
	if (s->volumes_dir && qemu_shares_on_virtiofs(s) &&
	    virtiofsd_start(vm, slot++, s, COCOON_TAG_VOLUMES, s->volumes_dir, SHARE_VOLUMES, err) <
		    0)
		return -1;
	if (qemu_rootfs_on_virtiofs(s) && s->rootfs_dir &&
	    virtiofsd_start(vm, slot++, s, COCOON_TAG_ROOTFS, s->rootfs_dir, SHARE_ROOTFS, err) < 0)
		return -1;
	if (s->snapshot_virtiofsd && s->tools_dir &&
	    virtiofsd_start(vm, slot++, s, COCOON_TAG_TOOLS, s->tools_dir, SHARE_READONLY, err) < 0)
		return -1;
	for (int i = 0; i < s->n_images_dirs && qemu_shares_on_virtiofs(s); i++) {
		char tag[COCOON_TAG_IMAGES_SIZE];
		cocoon_images_tag(tag, i);
		if (virtiofsd_start(vm, slot++, s, tag, s->images_dirs[i], SHARE_READONLY, err) < 0)
			return -1;
	}
	return 0;
}

char *vm_qemu_command_line(const struct vm_spec *spec, struct error **err)
{
	struct argv b;
	argv_init(&b, QEMU_MAX_ARGS - 1);
	char *line = NULL;
	size_t len = 0;

	if (qemu_build_argv(&b, spec, err) < 0) {
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

	int r = qemu_build_argv(&b, spec, err);
	if (r < 0) {
		argv_free(&b);
		return r;
	}
	if (qemu_any_virtiofs(spec) && virtiofsd_start_all(vm, spec, err) < 0) {
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
