#include "sandbox.h"
#include "cleanup.h"
#include "log.h"
#include "paths.h"
#include "template.h"
#include "accel.h"
#include "vmsnap.h"

#include <fcntl.h>
#include <time.h>

#include <string.h>
#include <sys/stat.h>

/* The last lines of the guest console: what a user needs to see when a VM
 * never came up. */
static char *console_tail(const char *path)
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0;

	if (read_file_bounded(path, 4 * 1024 * 1024, &text, &len, NULL) < 0 || len == 0)
		return NULL;
	const char *start = text + len;
	for (int lines = 0; start > text && lines < 6; lines += start[-1] == '\n')
		start--;
	return strdup(start);
}

static int sandbox_paths(struct sandbox *sb, const char *dir, struct error **err)
{
	if (!(sb->dir = strdup(dir)) || asprintf(&sb->shared_dir, "%s/" SANDBOX_SHARED, dir) < 0 ||
	    asprintf(&sb->channel_path, "%s/" SANDBOX_CHANNEL, dir) < 0 ||
	    asprintf(&sb->console_log, "%s/" SANDBOX_CONSOLE, dir) < 0 ||
	    asprintf(&sb->vmm_log, "%s/" SANDBOX_VMM_LOG, dir) < 0)
		return error_set(err, ENOMEM, "sandbox paths");
	return 0;
}

char *sandbox_tools_dir(const char *initrd)
{
	char *dir = path_beside(initrd, "tools");
	struct stat st;
	if (!dir)
		return NULL;
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		free(dir);
		return NULL;
	}
	return dir;
}

/* Starts the VM from the template of its shape, building the template
 * first when there is none. Any failure is reported on stderr and leaves
 * nothing running: the caller boots cold. */
static int boot_from_template(struct sandbox *sb, const struct cocoon_config *cfg,
			      const struct vm_spec *spec, int timeout_ms)
{
	_cleanup_error_ struct error *e = NULL;
	_cleanup_free_ char *key = NULL, *dir = NULL, *qmp = NULL,
			    *base = template_base_dir(cfg->template_dir);
	long long start = now_ms();
	bool built = false;

	int r = base ? template_key(spec, &key, &e) : error_set(&e, ENOMEM, "template");
	if (r == 0)
		r = template_dir_for(base, key, &dir, &e);
	if (r == 0)
		r = template_build(base, spec, key, dir, timeout_ms, &e);
	if (r == 0 && asprintf(&qmp, "%s/" SANDBOX_QMP, sb->dir) < 0)
		r = error_set(&e, ENOMEM, "template");
	built = r == 0;
	if (r == 0)
		r = template_start(&sb->vm, &sb->agent, spec, dir, qmp, timeout_ms, &e);
	if (r == 0) {
		sb->boot_ms = now_ms() - start;
		sb->from_template = true;
		return 0;
	}
	log_warning("VM template %s: %s; booting without it", dir ? dir : "",
		    e ? e->msg : "failed");
	if (sb->vm.backend)
		sb->vm.backend->kill(&sb->vm);
	agent_client_close(&sb->agent);
	unlink(sb->channel_path);
	if (qmp)
		unlink(qmp);
	/* A template that would not start is not trusted again: the next VM
	 * builds it afresh. */
	if (built)
		(void)remove_tree(dir, NULL);
	return r;
}

/* Starts QEMU waiting for a state (-incoming defer), loads the saved VM into
 * it and reconnects to its agent, which carries on where it was saved. */
static int vmsnap_start(struct sandbox *sb, const struct vm_spec *spec, int state_fd,
			const char *key, int timeout_ms, struct error **err)
{
	struct vm_spec s = *spec;
	s.incoming_defer = true;
	int r = vm_start(&sb->vm, &vm_backend_qemu, &s, err);
	if (r == 0)
		r = vmsnap_load(&sb->vm, s.qmp_path, state_fd, vmsnap_key_mapped_ram(key),
				timeout_ms, err);
	if (r < 0) {
		_cleanup_free_ char *qlog = NULL;
		if (read_file_bounded(sb->vmm_log, 4096, &qlog, NULL, NULL) == 0 && *qlog)
			error_wrap(err, "%s", strtok(qlog, "\n"));
		return r;
	}
	int fd = vm_wait_socket(&sb->vm, sb->channel_path, VM_SOCKET_TIMEOUT_MS, err);
	if (fd < 0)
		return fd;
	if ((r = agent_client_init(&sb->agent, fd, err)) < 0) {
		close(fd);
		return r;
	}
	return template_resume_agent(&sb->agent, true, timeout_ms, err);
}

/* Whole-VM mode: the VMM that can save the VM, every share on virtiofs, a
 * QMP socket; the key of this VM, which a snapshot must match. */
static int vmsnap_prepare(struct sandbox *sb, const struct cocoon_config *cfg, struct vm_spec *spec,
			  char **qmp, char **key, struct error **err)
{
	struct vmsnap_caps caps;
	int r = vmsnap_require(cfg, &caps, err);
	if (r < 0)
		return r;
	if (asprintf(qmp, "%s/" SANDBOX_QMP, sb->dir) < 0)
		return error_set(err, ENOMEM, "qmp path");
	spec->qemu = vmsnap_qemu(cfg);
	spec->snapshot_virtiofsd = cfg->snapshot_virtiofsd;
	spec->shared_fs = "virtiofs";
	spec->qmp_path = *qmp;
	return vmsnap_key(spec, &caps, key, err);
}

/* The kernel command line's cocoon keys (contract.h): CRIU's path and the
 * checkpoint directory in the guest, and debug. */
static int sandbox_cmdline(const struct cocoon_config *cfg, char **cmdline, struct error **err)
{
	if (strchr(cfg->guest_criu_path, ' ') || strchr(cfg->guest_checkpoint_dir, ' ') ||
	    cfg->guest_criu_path[0] != '/' || cfg->guest_checkpoint_dir[0] != '/')
		return error_setx(
			err, EINVAL,
			"guest_criu_path and guest_checkpoint_dir must be absolute paths without spaces");
	if (strlen(cfg->guest_criu_path) > COCOON_GUEST_CRIU_MAX ||
	    strlen(cfg->guest_checkpoint_dir) > COCOON_GUEST_CKPT_DIR_MAX)
		return error_setx(
			err, ENAMETOOLONG,
			"guest_criu_path (%zu bytes) and guest_checkpoint_dir (%zu bytes) "
			"can be at most %d and %d bytes long",
			strlen(cfg->guest_criu_path), strlen(cfg->guest_checkpoint_dir),
			COCOON_GUEST_CRIU_MAX, COCOON_GUEST_CKPT_DIR_MAX);
	if (asprintf(cmdline, COCOON_CMDLINE_CRIU "%s " COCOON_CMDLINE_CKPTDIR "%s%s",
		     cfg->guest_criu_path, cfg->guest_checkpoint_dir,
		     cfg->enable_debug ? " " COCOON_CMDLINE_DEBUG : "") < 0)
		return error_set(err, ENOMEM, "cmdline");
	return 0;
}

/* The VM to boot: the configuration's, with what OPTS (may be NULL) sets
 * over it. */
static struct vm_spec sandbox_vm_spec(const struct sandbox *sb, const struct cocoon_config *cfg,
				      const struct sandbox_options *opts, const char *kernel,
				      const char *initrd, const char *tools, const char *cmdline)
{
	return (struct vm_spec){
		.qemu = cfg->qemu,
		.kernel = kernel,
		.initrd = initrd,
		.tools_dir = tools,
		.cmdline_extra = cmdline,
		.accel = sb->accel,
		.memory_mib = opts && opts->memory_mib ? opts->memory_mib : (int)cfg->memory_mib,
		.vcpus = opts && opts->vcpus ? opts->vcpus : (int)cfg->vcpus,
		.channel_path = sb->channel_path,
		.shared_dir = sb->shared_dir,
		.shared_fs = cfg->shared_fs,
		.rootfs_dir = opts ? opts->rootfs_dir : NULL,
		.rootfs_fs = cfg->rootfs_fs,
		.pod_dir = opts ? opts->pod_dir : NULL,
		.volumes_dir = opts ? opts->volumes_dir : NULL,
		.images_dirs = opts ? opts->images_dirs : NULL,
		.n_images_dirs = opts ? opts->n_images_dirs : 0,
		.net_fds = opts ? opts->net_fds : NULL,
		.net_macs = opts ? opts->net_macs : NULL,
		.n_nets = opts ? opts->n_nets : 0,
		.console_log = sb->console_log,
		.vmm_log = sb->vmm_log,
	};
}

/* Whole-VM mode (opts->vmsnap): SPEC made able to be saved (vmsnap_prepare, *QMP
 * and *KEY its QMP socket and key), VMSNAP_MARK written with the key; and
 * on a restore (opts->vmsnap_state) the saved VM started, when its key is
 * this VM's. Returns 1 when the saved VM runs, 0 when the VM is still to
 * boot, or a negative errno. */
static int sandbox_vmsnap(struct sandbox *sb, const struct cocoon_config *cfg,
			  const struct sandbox_options *opts, struct vm_spec *spec, char **qmp,
			  char **key, int timeout, struct error **err)
{
	sb->vmsnap = true;
	int r = vmsnap_prepare(sb, cfg, spec, qmp, key, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *mark = NULL;
	if (asprintf(&mark, "%s/" VMSNAP_MARK, sb->dir) < 0)
		return error_set(err, ENOMEM, "vmsnap");
	if (opts->vmsnap_state) {
		char diff[800];
		if (!opts->vmsnap_key || strcmp(opts->vmsnap_key, *key) != 0) {
			vmsnap_key_diff(*key, opts->vmsnap_key ? opts->vmsnap_key : "", diff,
					sizeof(diff));
			return error_setx(
				err, EINVAL,
				"the whole-VM checkpoint was taken of another image or VM shape, so it cannot start here: %s",
				diff);
		}
		long long start = now_ms();
		if (opts->vmsnap_state_fd <= 2)
			return error_setx(err, EBADF, "%s: no descriptor to load it from",
					  opts->vmsnap_state);
		if (vmsnap_start(sb, spec, opts->vmsnap_state_fd, *key, timeout, err) < 0)
			return error_wrap(err, "start the saved VM");
		sb->boot_ms = now_ms() - start;
	}
	if ((r = write_file_atomic(mark, *key, strlen(*key), 0600, err)) < 0)
		return r;
	return opts->vmsnap_state ? 1 : 0;
}

/* The first line QEMU logged, into ERR's message. */
static void sandbox_wrap_vmm_log(const struct sandbox *sb, size_t max, struct error **err)
{
	_cleanup_free_ char *qlog = NULL;
	if (read_file_bounded(sb->vmm_log, max, &qlog, NULL, NULL) == 0 && *qlog)
		error_wrap(err, "%s", strtok(qlog, "\n"));
}

/* Boots SPEC's VM and waits for its agent's "ready"; a VM that does not
 * get there is named with its accelerator and its console's last lines. */
static int sandbox_cold_boot(struct sandbox *sb, const struct sandbox_options *opts,
			     const struct vm_spec *spec, int timeout, struct error **err)
{
	long long start = now_ms();
	int r = vm_start(&sb->vm, opts && opts->backend ? opts->backend : &vm_backend_qemu, spec,
			 err);
	if (r < 0)
		return r;
	int fd = vm_wait_socket(&sb->vm, sb->channel_path, VM_SOCKET_TIMEOUT_MS, err);
	if (fd < 0) {
		sandbox_wrap_vmm_log(sb, 4096, err);
		return fd;
	}
	r = agent_client_init(&sb->agent, fd, err);
	if (r < 0) {
		close(fd);
		return r;
	}
	r = agent_wait_ready(&sb->agent, &sb->vm, NULL, timeout, err);
	if (r < 0 && vm_check_exited(&sb->vm))
		sandbox_wrap_vmm_log(sb, 64 * 1024, err);
	if (r < 0) {
		_cleanup_free_ char *tail =
			opts && opts->quiet_failure ? NULL : console_tail(sb->console_log);
		if (tail)
			return error_wrap(err, "VM (accel %s, console %s; last lines:\n%s)",
					  sb->accel, sb->console_log, tail);
		return error_wrap(err, "VM (accel %s)", sb->accel);
	}
	sb->boot_ms = now_ms() - start;
	return 0;
}

static int sandbox_boot_vm(struct sandbox *sb, const struct cocoon_config *cfg,
			   const struct sandbox_options *opts, struct error **err)
{
	_cleanup_free_ char *kernel = NULL, *initrd = NULL, *cmdline = NULL, *note = NULL,
			    *tools = NULL, *qmp = NULL, *key = NULL;
	int timeout =
		opts && opts->ready_timeout_ms ? opts->ready_timeout_ms : (int)cfg->boot_timeout_ms;

	bool fake = opts && opts->backend && opts->backend != &vm_backend_qemu;
	int r = fake ? 0 : config_image_paths(cfg, &kernel, &initrd, err);
	if (r < 0)
		return r;
	if (opts && opts->accel)
		snprintf(sb->accel, sizeof(sb->accel), "%s", opts->accel);
	else if ((r = accel_resolve(cfg, sb->accel, &note, sandbox_probe_kvm, err)) < 0)
		return r;
	if ((r = sandbox_cmdline(cfg, &cmdline, err)) < 0)
		return r;
	tools = fake ? NULL : sandbox_tools_dir(initrd);
	struct vm_spec spec = sandbox_vm_spec(sb, cfg, opts, kernel, initrd, tools, cmdline);
	sb->memory_mib = spec.memory_mib;
	if (opts && opts->vmsnap &&
	    (r = sandbox_vmsnap(sb, cfg, opts, &spec, &qmp, &key, timeout, err)) != 0)
		return r < 0 ? r : 0;
	/* virtiofs: QEMU 7.2 cannot migrate vhost-user-fs devices at all.
	 * Network devices are in the template, by their number
	 * (template_shape). */
	bool rootfs_vfs = spec.rootfs_dir && cfg->rootfs_fs && strcmp(cfg->rootfs_fs, "9p") != 0;
	if (!fake && cfg->vm_template && !(opts && (opts->cold_boot || opts->vmsnap)) &&
	    strcmp(cfg->shared_fs, "9p") == 0 && !rootfs_vfs &&
	    boot_from_template(sb, cfg, &spec, timeout) == 0)
		return 0;
	return sandbox_cold_boot(sb, opts, &spec, timeout, err);
}

int sandbox_boot(struct sandbox *sb, const struct cocoon_config *cfg, const char *dir,
		 const struct sandbox_options *opts, struct error **err)
{
	memset(sb, 0, sizeof(*sb));
	sb->agent.fd = -1;

	int r = sandbox_paths(sb, dir, err);
	if (r < 0)
		return r;
	bool own_dir = !(opts && opts->keep_dir_on_failure);
	if (own_dir && mkdir(dir, 0700) < 0)
		return error_set(err, errno, "create sandbox directory %s", dir);
	if (mkdir(sb->shared_dir, 0700) < 0) {
		r = error_set(err, errno, "create %s", sb->shared_dir);
		sandbox_destroy(sb, own_dir);
		return r;
	}
	r = sandbox_boot_vm(sb, cfg, opts, err);
	if (r < 0) {
		/* Keep the console log out of the way of the directory removal
		 * only when someone asked to debug. */
		if (cfg->enable_debug) {
			char keep[4096];
			snprintf(keep, sizeof(keep), "%s.console-failed.log", dir);
			(void)rename(sb->console_log, keep); /* for debugging only */
		}
		if (sb->vm.backend)
			sb->vm.backend->kill(&sb->vm);
		sandbox_destroy(sb, own_dir);
		return r;
	}
	return 0;
}

void sandbox_shutdown(struct sandbox *sb)
{
	if (sb->agent.fd >= 0 && !sb->vm.exited) {
		Cocoon__Request req = COCOON__REQUEST__INIT;
		Cocoon__ShutdownRequest bye = COCOON__SHUTDOWN_REQUEST__INIT;
		Cocoon__Response *resp = NULL;
		req.body_case = COCOON__REQUEST__BODY_SHUTDOWN;
		req.shutdown = &bye;
		if (agent_call(&sb->agent, &req, &resp, 2000, NULL) == 0)
			cocoon__response__free_unpacked(resp, NULL);
	}
	if (sb->vm.backend)
		vm_stop(&sb->vm, 3000);
}

void sandbox_destroy(struct sandbox *sb, bool remove_dir)
{
	agent_client_close(&sb->agent);
	if (remove_dir && sb->dir)
		(void)remove_tree(sb->dir, NULL);
	free(sb->dir);
	free(sb->shared_dir);
	free(sb->channel_path);
	free(sb->console_log);
	free(sb->vmm_log);
	memset(sb, 0, sizeof(*sb));
	sb->agent.fd = -1;
}

int sandbox_probe_kvm(const struct cocoon_config *cfg, bool *works, char **why, struct error **err)
{
	char base[] = "/tmp/cocoon-kvm-probe.XXXXXX";
	_cleanup_free_ char *dir = NULL;
	struct sandbox sb;
	struct sandbox_options opts = {.accel = "kvm",
				       .ready_timeout_ms = ACCEL_PROBE_TIMEOUT_MS,
				       .quiet_failure = true,
				       .cold_boot = true};
	_cleanup_error_ struct error *e = NULL;

	if (!mkdtemp(base))
		return error_set(err, errno, "mkdtemp");
	if (asprintf(&dir, "%s/vm", base) < 0)
		return error_set(err, ENOMEM, "probe");
	int r = sandbox_boot(&sb, cfg, dir, &opts, &e);
	*works = r == 0;
	if (r < 0 && e)
		*why = strdup(e->msg);
	if (r == 0) {
		sandbox_shutdown(&sb);
		sandbox_destroy(&sb, true);
	}
	rmdir(base);
	return 0;
}
