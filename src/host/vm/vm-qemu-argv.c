/* QEMU's command line for a vm_spec (vm-qemu-argv.h): the machine, the
 * kernel command line, the agent's channel, every share on 9p or virtiofs,
 * the network, QMP and an incoming migration. vm-qemu.c runs it. */
#include "vm-qemu-argv.h"
#include "cleanup.h"
#include "paths.h"

#include <stdio.h>
#include <string.h>

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

/* A file of the virtiofsd serving TAG ("sock", "log"): beside the agent's
 * channel socket, in the sandbox's state directory. */
void qemu_virtiofs_path(char *out, size_t size, const char *channel_path, const char *tag,
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
	qemu_virtiofs_path(path, sizeof(path), channel_path, tag, "sock");
	argv_addf(b, "-chardev");
	argv_addf(b, "socket,id=vfs-%s,path=%s", tag, path);
	argv_addf(b, "-device");
	argv_addf(b, "vhost-user-fs-device,chardev=vfs-%s,tag=%s", tag, tag);
}

/* The shared directory, volumes and image directories: virtiofs with
 * shared_fs "virtiofs" and in whole-VM mode. */
bool qemu_shares_on_virtiofs(const struct vm_spec *s)
{
	return s->snapshot_virtiofsd || (s->shared_fs && strcmp(s->shared_fs, "virtiofs") == 0);
}

/* The rootfs: virtiofs with rootfs_fs "virtiofs" and in whole-VM mode. */
bool qemu_rootfs_on_virtiofs(const struct vm_spec *s)
{
	return s->snapshot_virtiofsd || (s->rootfs_fs && strcmp(s->rootfs_fs, "virtiofs") == 0);
}

/* Any virtiofs device: the guest's memory must then be shared (vhost-user). */
bool qemu_any_virtiofs(const struct vm_spec *s)
{
	return qemu_shares_on_virtiofs(s) || (s->rootfs_dir && qemu_rootfs_on_virtiofs(s));
}

/* Refuses a spec QEMU's command line cannot carry: a path that is missing
 * or holds a comma (QEMU's option separator), an unknown filesystem, a
 * template's memory file beside virtiofs. */
static int qemu_check_spec(const struct vm_spec *s, struct error **err)
{
	const char *paths[] = {s->kernel, s->initrd, s->channel_path, s->console_log};
	for (size_t i = 0; i < ARRAY_SIZE(paths); i++)
		if (!qemu_safe_path(paths[i]))
			return error_setx(err, EINVAL, "path '%s' is missing or contains a comma",
					  paths[i] ? paths[i] : "(null)");
	if (s->shared_dir && !qemu_safe_path(s->shared_dir))
		return error_setx(err, EINVAL, "shared path '%s' contains a comma", s->shared_dir);
	if (!qemu_shares_on_virtiofs(s) && strcmp(s->shared_fs, "9p") != 0)
		return error_setx(err, EINVAL, "shared_fs \"%s\": use \"9p\" or \"virtiofs\"",
				  s->shared_fs);
	if (s->rootfs_fs && strcmp(s->rootfs_fs, "9p") != 0 &&
	    strcmp(s->rootfs_fs, "virtiofs") != 0)
		return error_setx(err, EINVAL, "rootfs_fs \"%s\": use \"9p\" or \"virtiofs\"",
				  s->rootfs_fs);
	if (s->memory_file && (qemu_any_virtiofs(s) || !qemu_safe_path(s->memory_file)))
		return error_setx(err, EINVAL,
				  "a VM template needs shared_fs \"9p\" and a path without commas");
	return 0;
}

/* The machine: its memory backend, microvm, CPU, memory and vCPUs, the
 * serial console into the console log, the kernel and the initrd. */
static void qemu_machine_args(struct argv *b, const struct vm_spec *s, bool kvm)
{
	bool virtiofs = qemu_any_virtiofs(s);
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
}

/* The kernel command line: the console, TCG's TSC frequency, and the keys
 * that tell the agent how its shares are mounted (contract.h). */
static void qemu_append_arg(struct argv *b, const struct vm_spec *s, bool kvm)
{
	bool snapshot = s->snapshot_virtiofsd != NULL;
	char tsc[48] = "";
	long khz = kvm ? 0 : host_tsc_khz();
	if (khz > 0)
		snprintf(tsc, sizeof(tsc), "tsc_early_khz=%ld ", khz);
	argv_addf(b, "-append");
	argv_addf(b, "console=ttyS0 quiet reboot=t panic=-1 %s%s%s%s%s%s", tsc,
		  qemu_shares_on_virtiofs(s) ? COCOON_CMDLINE_VIRTIOFS " " : "",
		  snapshot ? COCOON_CMDLINE_VMSNAP " " : "",
		  !snapshot && s->rootfs_dir && qemu_rootfs_on_virtiofs(s)
			  ? COCOON_CMDLINE_ROOTFS_VIRTIOFS " "
			  : "",
		  s->memory_file ? COCOON_CMDLINE_TEMPLATE " " : "",
		  s->cmdline_extra ? s->cmdline_extra : "");
}

/* The agent's channel, then every share, each on 9p or virtiofs (the
 * virtiofsd of each is started by virtiofsd_start_all). */
static int qemu_share_args(struct argv *b, const struct vm_spec *s, struct error **err)
{
	bool snapshot = s->snapshot_virtiofsd != NULL, shares_vfs = qemu_shares_on_virtiofs(s);
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
	if (s->rootfs_dir && qemu_rootfs_on_virtiofs(s))
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
	return 0;
}

/* The engine's network, QMP and the deferred incoming migration. */
static int qemu_tail_args(struct argv *b, const struct vm_spec *s, struct error **err)
{
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
	return 0;
}

int qemu_build_argv(struct argv *b, const struct vm_spec *s, struct error **err)
{
	int r = qemu_check_spec(s, err);
	if (r < 0)
		return r;
	bool kvm = strcmp(s->accel, "kvm") == 0;
	argv_addf(b, "%s", s->qemu);
	qemu_machine_args(b, s, kvm);
	qemu_append_arg(b, s, kvm);
	if (qemu_share_args(b, s, err) < 0 || qemu_tail_args(b, s, err) < 0)
		return -1;
	r = argv_finish(b);
	if (r == -E2BIG)
		return error_setx(err, E2BIG, "qemu command line too long");
	if (r < 0)
		return error_set(err, -r, "qemu command line");
	return 0;
}
