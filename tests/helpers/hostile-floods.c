/* The floods and attacks of the hostile guest (hostile.h) that run beside
 * its protocol: the shared directory filled, the console and QEMU's stderr
 * flooded, the volumes share attacked. Test-only; never in the image. */
#include "hostile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

/* 64 MiB into the shared directory at about 16 MiB/s, from a child that
 * dies with this process, as QEMU's own writes would stop. "fill-shared-deep"
 * writes it 20 directories down, "fill-shared-inodes" makes empty files
 * instead (no block stored, an inode each). "filled" is noted when it has
 * stored twice the tests' cap (shared_max_bytes = 8 MiB: 16 MiB, or 4096
 * entries of GUARD_ENTRY_MIN_BYTES): from then on the host's guard is
 * late, whatever the guest's own pace was (rev hostile8: under load the
 * guest's 2048 creates alone outlasted the test's wait). */
void fill_shared(void)
{
	static char block[1 << 20];
	char path[4200];
	size_t n = (size_t)snprintf(path, sizeof(path), "%s", shared);
	/* "fill-shared-unlinked": a file of the share opened, then removed,
	 * and 64 MiB written into it as fill-shared writes. The VMM (here, as
	 * QEMU's 9p server would for the guest's open fid) keeps the handle:
	 * the inode is no entry of the share, and still the state root's
	 * space (host memory on tmpfs). */
	int held = -1;
	if (is("fill-shared-unlinked")) {
		snprintf(path + n, sizeof(path) - n, "/held");
		held = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
		unlink(path);
	}
	if (fork() != 0)
		return;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	memset(block, 'J', sizeof(block));
	for (int i = 0; held >= 0 && i < 64; i++) {
		if (write(held, block, sizeof(block)) < 0)
			break;
		if (i + 1 == 16)
			note("filled ", "16 MiB, unlinked");
		usleep(60000);
	}
	if (held >= 0)
		_exit(0);
	if (is("fill-shared-inodes")) {
		for (int i = 0; i < 200000; i++) {
			snprintf(path + n, sizeof(path) - n, "/e%d", i);
			int fd = open(path, O_WRONLY | O_CREAT, 0644);
			if (fd < 0)
				break;
			close(fd);
			if (i + 1 == 4096)
				note("filled ", "4096 files");
		}
		_exit(0);
	}
	/* "fill-shared-xattr": the flood in extended attributes, which 9p's
	 * passthrough model sets for the guest (user.*): 64 KiB values on
	 * one empty file, 64 MiB in all. tmpfs keeps them in kernel memory
	 * (its inode space) and the file stores no block; ext4 takes about
	 * one block of them per inode, so the case mounts a tmpfs. */
	if (is("fill-shared-xattr")) {
		char name[32];
		snprintf(path + n, sizeof(path) - n, "/x");
		close(open(path, O_WRONLY | O_CREAT, 0644));
		for (int i = 0; i < 1024; i++) {
			snprintf(name, sizeof(name), "user.fill%d", i);
			if (setxattr(path, name, block, 65536, 0) < 0) {
				note("xattr refused ", strerror(errno));
				break;
			}
			if (i + 1 == 256)
				note("filled ", "16 MiB of xattrs");
			usleep(4000);
		}
		_exit(0);
	}
	for (int i = 0; is("fill-shared-deep") && i < 20; i++) {
		n += (size_t)snprintf(path + n, sizeof(path) - n, "/d");
		mkdir(path, 0755);
	}
	snprintf(path + n, sizeof(path) - n, "/junk");
	note("junk ", path);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	for (int i = 0; i < 64 && fd >= 0; i++) {
		if (write(fd, block, sizeof(block)) < 0)
			break;
		if (i + 1 == 16)
			note("filled ", "16 MiB");
		usleep(60000);
	}
	_exit(0);
}

/* "vmm-log-flood": what QEMU prints on stderr for each control message a
 * guest that owns its kernel sends with a bad port id ("virtio-serial-bus:
 * Unexpected port id"), as fast as it can: 64 MiB at about 10 MiB/s into
 * QEMU's own log, qemu.log in the state directory. */
void flood_stderr(void)
{
	static char line[] =
		"qemu-system-x86_64: virtio-serial-bus: Unexpected port id 4096 for device virtio-serial0.0\n";
	if (fork() != 0)
		return;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	for (long long done = 0, i = 0; done < (64LL << 20); i++) {
		if (write(2, line, sizeof(line) - 1) < 0)
			break;
		done += (long long)sizeof(line) - 1;
		if (i % 2048 == 2047)
			usleep(20000);
	}
	_exit(0);
}

void flood_console(void)
{
	static char line[4096];
	memset(line, 'F', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\n';
	if (!console || fork() != 0)
		return;
	int fd = open(console, O_WRONLY | O_APPEND | O_CREAT, 0600);
	/* 64 MiB at about 10 MiB/s: more than QEMU's byte-at-a-time serial
	 * port carries. */
	for (int i = 0; i < 64 * 256 && fd >= 0; i++) {
		if (write(fd, line, sizeof(line)) < 0)
			break;
		if (i % 64 == 63)
			usleep(25000);
	}
	_exit(0);
}

/* "volumes": what QEMU's 9p server (root, in the shim's mount namespace)
 * would do for a guest that owns its kernel, straight on the volumes share:
 * add entries beside the mount points, replace one, write into every
 * volume, and leave a symlink, a FIFO and a setuid file in the writable
 * ones. Each result goes to the log as "volumes <what>: OK|<errno name>". */
void attack_volumes(void)
{
	char path[4200], target[4300], what[4400];
	int fd;
#define TRY(label, call)                                                                           \
	do {                                                                                       \
		int rc_ = (call);                                                                  \
		snprintf(what, sizeof(what), "volumes %s: ", label);                               \
		note(what, rc_ < 0 ? strerrorname_np(errno) : "OK");                               \
	} while (0)
	if (!volumes)
		return;
	snprintf(path, sizeof(path), "%s/planted", volumes);
	TRY("mkdir in the share", mkdir(path, 0755));
	snprintf(target, sizeof(target), "%s/link", volumes);
	TRY("symlink in the share", symlink(canary, target));
	snprintf(path, sizeof(path), "%s/0", volumes);
	snprintf(target, sizeof(target), "%s/moved", volumes);
	TRY("rename a mount point", rename(path, target));
	DIR *d = opendir(volumes);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char label[300];
		snprintf(path, sizeof(path), "%s/%s/hostile", volumes, de->d_name);
		snprintf(label, sizeof(label), "write %s", de->d_name);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 04755);
		TRY(label, fd);
		if (fd < 0)
			continue;
		close(fd);
		chmod(path, 04755); /* a setuid file, real on the host */
		snprintf(path, sizeof(path), "%s/%s/escape", volumes, de->d_name);
		TRY("symlink in a volume", symlink(canary, path));
		snprintf(path, sizeof(path), "%s/%s/fifo", volumes, de->d_name);
		TRY("fifo in a volume", mkfifo(path, 0600));
	}
	if (d)
		closedir(d);
#undef TRY
}

/* "pod": what QEMU's 9p server would do for a guest that owns its kernel,
 * on the pod share, when a member is created there (ROOTFS_PATH is
 * "<id>/rootfs"): plant entries beside the members' directories, replace
 * a member's directory or its rootfs mount point, and leave a symlink to
 * the canary and a file in the member's rootfs, which is the guest's to
 * write. Each result goes to the log as "pod <what>: OK|<errno name>". */
void attack_pod(const char *rootfs_path)
{
	char path[4200], target[4300], what[4400], member[256];
#define TRY(label, call)                                                                           \
	do {                                                                                       \
		int rc_ = (call);                                                                  \
		snprintf(what, sizeof(what), "pod %s: ", label);                                   \
		note(what, rc_ < 0 ? strerrorname_np(errno) : "OK");                               \
	} while (0)
	if (!pod || !rootfs_path)
		return;
	snprintf(member, sizeof(member), "%.*s", (int)strcspn(rootfs_path, "/"), rootfs_path);
	snprintf(path, sizeof(path), "%s/planted", pod);
	TRY("mkdir in the share", mkdir(path, 0755));
	snprintf(path, sizeof(path), "%s/%s/link", pod, member);
	TRY("symlink in a member's directory", symlink(canary, path));
	snprintf(path, sizeof(path), "%s/%s", pod, member);
	snprintf(target, sizeof(target), "%s/moved", pod);
	TRY("rename a member's directory", rename(path, target));
	snprintf(path, sizeof(path), "%s/%s/rootfs", pod, member);
	snprintf(target, sizeof(target), "%s/%s/moved", pod, member);
	TRY("rename a rootfs mount point", rename(path, target));
	snprintf(path, sizeof(path), "%s/%s/hostile", pod, rootfs_path);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	TRY("write in the rootfs", fd);
	if (fd >= 0)
		close(fd);
	snprintf(path, sizeof(path), "%s/%s/escape", pod, rootfs_path);
	TRY("symlink in the rootfs", symlink(canary, path));
#undef TRY
}

/* "member-flood": 8 MiB of output for a pod member, in 32 KiB events, as
 * fast as the host takes them, a second after its start was answered (the
 * time a test takes to stop the member's shim, cases_pod.py). */
void member_flood(const char *id)
{
	static char chunk[32 * 1024];
	Cocoon__Response r = COCOON__RESPONSE__INIT;
	Cocoon__OutputEvent o = COCOON__OUTPUT_EVENT__INIT;
	memset(chunk, 'F', sizeof(chunk));
	r.body_case = COCOON__RESPONSE__BODY_OUTPUT;
	r.output = &o;
	o.id = (char *)id;
	o.stream = COCOON__OUTPUT_STREAM__OUTPUT_STDOUT;
	o.data.data = (uint8_t *)chunk;
	o.data.len = sizeof(chunk);
	sleep(1);
	note("flood ", id);
	for (int i = 0; i < 256; i++) {
		queue(&r);
		flush();
	}
	note("flooded ", id);
}

/* "exec-exit-unknown": before the exec's exit, 2 MiB of its output (more
 * than an engine's pipe holds, so the host queues it); the exit event R
 * (with X) then carries 20000 fields this protocol does not know, which
 * protobuf-c keeps in an array of their own (about 480 KiB). */
void exec_output_and_odd_exit(const Cocoon__Request *req, Cocoon__Response *r, Cocoon__ExitEvent *x)
{
	static char chunk[32 * 1024];
	static ProtobufCMessageUnknownField odd[20000];
	Cocoon__Response o = COCOON__RESPONSE__INIT;
	Cocoon__OutputEvent out = COCOON__OUTPUT_EVENT__INIT;
	memset(chunk, 'E', sizeof(chunk));
	o.body_case = COCOON__RESPONSE__BODY_OUTPUT;
	o.output = &out;
	out.id = req->exec->id;
	out.exec_id = req->exec->exec_id;
	out.stream = COCOON__OUTPUT_STREAM__OUTPUT_STDOUT;
	out.data.data = (uint8_t *)chunk;
	out.data.len = sizeof(chunk);
	for (int i = 0; i < 64; i++) {
		queue(&o);
		flush();
	}
	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++)
		odd[i] = (ProtobufCMessageUnknownField){.tag = 1000,
							.wire_type = PROTOBUF_C_WIRE_TYPE_VARINT,
							.len = 1,
							.data = (uint8_t *)"\x01"};
	x->base.n_unknown_fields = sizeof(odd) / sizeof(odd[0]);
	x->base.unknown_fields = odd;
	queue(r);
	flush();
	note("exec exit sent with unknown fields", "");
}
