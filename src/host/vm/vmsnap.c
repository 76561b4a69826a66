/* Whole-VM checkpoints (vmsnap.h): what the VMM can do, which containers
 * want the mode, and the key a snapshot is bound to (the save and load
 * over QMP: vmsnap-qmp.c).
 *
 * The mode needs a VMM that migrates every device cocoon gives the guest
 * while the container runs, shares mounted: vhost-user-fs with the
 * back-end's state (QEMU >= 8.2 and a virtiofsd with --migration-mode).
 * Debian 12's QEMU 7.2 cannot (its vhost-user-fs device is unmigratable and
 * a mounted 9p export blocks migration), so the capability is found by
 * running the configured binaries, never assumed from the host's release.
 */
#include "vmsnap.h"
#include "accel.h"
#include "cleanup.h"
#include "paths.h"

#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define VMSNAP_PROBE_TIMEOUT_MS 15000

int vmsnap_parse_qemu_version(const char *text, int *major, int *minor, int *micro)
{
	const char *v = text ? strstr(text, "version ") : NULL;
	int a = 0, b = 0, c = 0;
	if (!v || sscanf(v + 8, "%d.%d.%d", &a, &b, &c) < 2 || a <= 0 || b < 0 || c < 0)
		return -EINVAL;
	*major = a;
	*minor = b;
	*micro = c;
	return 0;
}

int vmsnap_caps_check(const struct vmsnap_caps *c, char *why, size_t size)
{
	/* Each names a binary (up to 255 bytes) in a sentence. */
	char q[512] = "", v[512] = "";
	bool qemu_ok =
		c->qemu_major > VMSNAP_QEMU_MIN_MAJOR ||
		(c->qemu_major == VMSNAP_QEMU_MIN_MAJOR && c->qemu_minor >= VMSNAP_QEMU_MIN_MINOR);
	if (c->qemu_major == 0)
		snprintf(q, sizeof(q), "%s did not run or printed no QEMU version", c->qemu);
	else if (!qemu_ok)
		snprintf(
			q, sizeof(q),
			"%s is QEMU %d.%d.%d, whose vhost-user-fs device cannot be migrated (QEMU >= %d.%d migrates it with virtiofsd's state)",
			c->qemu, c->qemu_major, c->qemu_minor, c->qemu_micro, VMSNAP_QEMU_MIN_MAJOR,
			VMSNAP_QEMU_MIN_MINOR);
	if (!c->virtiofsd_runs)
		snprintf(v, sizeof(v), "virtiofsd %s was not found or does not run", c->virtiofsd);
	else if (!c->virtiofsd_migration)
		snprintf(
			v, sizeof(v),
			"virtiofsd %s (%s) has no --migration-mode (QEMU 7.2's C virtiofsd cannot hand over its state; the Rust virtiofsd >= 1.11 can)",
			c->virtiofsd, c->virtiofsd_version[0] ? c->virtiofsd_version : "?");
	if (!q[0] && !v[0]) {
		if (size)
			why[0] = 0;
		return 0;
	}
	snprintf(why, size, "%s%s%s", q, q[0] && v[0] ? "; " : "", v);
	return -EOPNOTSUPP;
}

/* input to a child's stdin, SIGPIPE blocked: a child gone before it reads
 * gives EPIPE, not a silent death of cocoon (pipe(7)). */
static void write_input(int fd, const char *input)
{
	sigset_t pipe_only, old;
	const struct timespec now = {0};
	sigemptyset(&pipe_only);
	sigaddset(&pipe_only, SIGPIPE);
	if (sigprocmask(SIG_BLOCK, &pipe_only, &old) < 0)
		return;
	if (write(fd, input, strlen(input)) < 0 && errno == EPIPE && !sigismember(&old, SIGPIPE))
		(void)sigtimedwait(&pipe_only, NULL, &now); /* takes back the pending SIGPIPE */
	(void)sigprocmask(SIG_SETMASK, &old, NULL);
}
/* Runs argv with input on its stdin; its stdout and stderr into out
 * (truncated, NUL-terminated). The exit status, or -errno; killed at
 * timeout_ms. */
static int run_capture(char *const argv[], const char *input, char *out, size_t size,
		       int timeout_ms)
{
	int in[2], o[2];
	if (pipe2(in, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(o, O_CLOEXEC) < 0) {
		int e = -errno;
		close(in[0]);
		close(in[1]);
		return e;
	}
	pid_t parent = getpid(), pid = fork();
	if (pid == 0) {
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL); /* cannot fail: a valid signal */
		if (getppid() != parent)
			_exit(126);
		if (dup2(in[0], 0) < 0 || dup2(o[1], 1) < 0 || dup2(o[1], 2) < 0)
			_exit(126);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(in[0]);
	close(o[1]);
	if (pid < 0) {
		close(in[1]);
		close(o[0]);
		return -EAGAIN;
	}
	if (input) /* small inputs only: they fit the pipe, so this never blocks */
		write_input(in[1], input);
	close(in[1]);
	size_t len = 0;
	long long deadline = now_ms() + timeout_ms;
	for (;;) {
		struct pollfd p = {.fd = o[0], .events = POLLIN};
		int left = (int)(deadline - now_ms());
		if (left <= 0 || poll(&p, 1, left) == 0) {
			kill(pid, SIGKILL);
			break;
		}
		char buf[4096];
		ssize_t n = read(o[0], buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		size_t take = (size_t)n < size - 1 - len ? (size_t)n : size - 1 - len;
		memcpy(out + len, buf, take);
		len += take;
	}
	out[len] = 0;
	close(o[0]);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

const char *vmsnap_qemu(const struct cocoon_config *cfg)
{
	return cfg->snapshot_qemu && *cfg->snapshot_qemu ? cfg->snapshot_qemu : cfg->qemu;
}

void vmsnap_probe(const struct cocoon_config *cfg, struct vmsnap_caps *c)
{
	static char out[64 * 1024];
	/* Once per process for the same binaries: a restore checks before it
	 * decompresses, then its shim (a fork, no exec) before it boots. */
	static struct vmsnap_caps seen;
	static bool have;

	memset(c, 0, sizeof(*c));
	snprintf(c->qemu, sizeof(c->qemu), "%s", vmsnap_qemu(cfg));
	snprintf(c->virtiofsd, sizeof(c->virtiofsd), "%s", cfg->snapshot_virtiofsd);
	if (have && strcmp(seen.qemu, c->qemu) == 0 && strcmp(seen.virtiofsd, c->virtiofsd) == 0) {
		*c = seen;
		return;
	}

	char *version[] = {c->qemu, (char *)"--version", NULL};
	if (run_capture(version, NULL, out, sizeof(out), VMSNAP_PROBE_TIMEOUT_MS) == 0)
		/* Unparsed, qemu_major stays 0: whole-VM mode is then off. */
		(void)vmsnap_parse_qemu_version(out, &c->qemu_major, &c->qemu_minor,
						&c->qemu_micro);
	if (c->qemu_major > 0) {
		/* QMP on stdio, no machine: what the migration code offers. */
		char *qmp[] = {c->qemu,
			       (char *)"-M",
			       (char *)"none",
			       (char *)"-nodefaults",
			       (char *)"-display",
			       (char *)"none",
			       (char *)"-qmp",
			       (char *)"stdio",
			       NULL};
		const char *cmds = "{\"execute\":\"qmp_capabilities\"}\n"
				   "{\"execute\":\"query-migrate-capabilities\"}\n"
				   "{\"execute\":\"quit\"}\n";
		if (run_capture(qmp, cmds, out, sizeof(out), VMSNAP_PROBE_TIMEOUT_MS) == 0)
			c->mapped_ram = strstr(out, "\"mapped-ram\"") != NULL;
	}
	char *vversion[] = {c->virtiofsd, (char *)"--version", NULL};
	if (run_capture(vversion, NULL, out, sizeof(out), VMSNAP_PROBE_TIMEOUT_MS) == 0) {
		c->virtiofsd_runs = true;
		snprintf(c->virtiofsd_version, sizeof(c->virtiofsd_version), "%.*s",
			 (int)strcspn(out, "\n"), out);
		char *help[] = {c->virtiofsd, (char *)"--help", NULL};
		if (run_capture(help, NULL, out, sizeof(out), VMSNAP_PROBE_TIMEOUT_MS) == 0)
			c->virtiofsd_migration = strstr(out, "--migration-mode") != NULL;
	}
	seen = *c;
	have = true;
}

int vmsnap_require(const struct cocoon_config *cfg, struct vmsnap_caps *c, struct error **err)
{
	char why[1024];
	vmsnap_probe(cfg, c);
	if (vmsnap_caps_check(c, why, sizeof(why)) == 0)
		return 0;
	return error_setx(
		err, EOPNOTSUPP,
		"whole-VM checkpoints (checkpoint_mode \"vm\") need a QEMU >= %d.%d and a virtiofsd with migration support: %s. Set [vm] snapshot_qemu and snapshot_virtiofsd in %s to newer ones, e.g. Debian 13's qemu-system-x86 and virtiofsd (scripts/fetch-vmsnap-vmm.sh fetches both into a private directory without installing anything)",
		VMSNAP_QEMU_MIN_MAJOR, VMSNAP_QEMU_MIN_MINOR, why,
		cfg->source ? cfg->source : "the configuration");
}

int vmsnap_wanted(const struct cocoon_config *cfg, const char *bundle_dir, struct error **err)
{
	_cleanup_free_ char *file = NULL, *text = NULL;
	int want = strcmp(cfg->checkpoint_mode, "vm") == 0;
	if (!bundle_dir || asprintf(&file, "%s/config.json", bundle_dir) < 0 ||
	    read_file_bounded(file, 4 * 1024 * 1024, &text, NULL, NULL) < 0)
		return want;
	json_object *root = json_tokener_parse(text), *ann = NULL, *v = NULL;
	if (root && json_object_object_get_ex(root, "annotations", &ann) &&
	    json_object_object_get_ex(ann, VMSNAP_ANNOTATION, &v)) {
		const char *s =
			json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
		if (strcmp(s, "vm") == 0)
			want = 1;
		else if (strcmp(s, "criu") == 0)
			want = 0;
		else
			want = error_setx(err, EINVAL,
					  "config.json: annotation %s: expected \"vm\" or \"criu\"",
					  VMSNAP_ANNOTATION);
	}
	if (root)
		json_object_put(root);
	return want;
}

/* FNV-1a over a file's contents, 64 bits: the same image on another host
 * hashes the same; a rebuilt kernel or initrd does not. */
static void add_content(FILE *f, const char *what, const char *path)
{
	_cleanup_close_ int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	uint64_t h = 0xcbf29ce484222325ULL, size = 0;
	char buf[65536];
	ssize_t n;

	if (fd < 0) {
		fprintf(f, "%s=none\n", what);
		return;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++)
			h = (h ^ (uint8_t)buf[i]) * 0x100000001b3ULL;
		size += (uint64_t)n;
	}
	fprintf(f, "%s=size %llu fnv1a %016llx\n", what, (unsigned long long)size,
		(unsigned long long)h);
}

int vmsnap_key(const struct vm_spec *spec, const struct vmsnap_caps *caps, char **key,
	       struct error **err)
{
	static const char *const macs[] = {"MAC0", "MAC1", "MAC2", "MAC3",
					   "MAC4", "MAC5", "MAC6", "MAC7"};
	static const int fds[] = {100, 101, 102, 103, 104, 105, 106, 107};
	struct vm_spec s = *spec;
	_cleanup_free_ char *line = NULL, *manifest = NULL;
	char *text = NULL;
	size_t len = 0;

	if (spec->n_nets > (int)ARRAY_SIZE(macs))
		return error_setx(err, E2BIG, "%d network devices", spec->n_nets);
	/* The device set and order, not the backends of this one VM. */
	s.qemu = "QEMU";
	s.channel_path = "/CHANNEL";
	s.console_log = "/CONSOLE";
	s.vmm_log = NULL;
	s.shared_dir = spec->shared_dir ? "/SHARED" : NULL;
	s.rootfs_dir = spec->rootfs_dir ? "/ROOTFS" : NULL;
	s.volumes_dir = spec->volumes_dir ? "/VOLUMES" : NULL;
	s.pod_dir = spec->pod_dir ? "/POD" : NULL;
	s.tools_dir = spec->tools_dir ? "/TOOLS" : NULL;
	s.kernel = "/KERNEL";
	s.initrd = "/INITRD";
	s.images_dirs = NULL;
	s.n_images_dirs = 0;
	s.net_fds = fds;
	s.net_macs = macs;
	s.qmp_path = "/QMP";
	s.incoming_fd = 0;
	s.incoming_defer = false;
	line = vm_qemu_command_line(&s, err);
	if (!line)
		return -1;
	/* TCG's timer calibration hint differs per host and is harmless. */
	char *tsc = strstr(line, "tsc_early_khz=");
	if (tsc)
		memmove(tsc, tsc + strcspn(tsc, " ") + 1, strlen(tsc + strcspn(tsc, " ") + 1) + 1);
	if (spec->initrd)
		manifest = path_beside(spec->initrd, "manifest");
	FILE *f = open_memstream(&text, &len);
	if (!f)
		return error_set(err, ENOMEM, "snapshot key");
	fprintf(f, "%s\nqemu-command-line=%s\n", VMSNAP_KEY_FORMAT, line);
	fprintf(f, "qemu=%d.%d.%d mapped-ram=%s\nvirtiofsd=%s\n", caps->qemu_major,
		caps->qemu_minor, caps->qemu_micro, caps->mapped_ram ? "yes" : "no",
		caps->virtiofsd_version);
	add_content(f, "kernel", spec->kernel);
	add_content(f, "initrd", spec->initrd);
	add_content(f, "tools-manifest", manifest);
	/* Under KVM the guest's CPU is the host's (-cpu host): a VM saved on
	 * another CPU model is refused by name rather than started on
	 * features it may not have (accel_host_cpu). The host's kernel is
	 * left out: a snapshot may move to another host of the same CPU. */
	int r = strcmp(spec->accel, "kvm") == 0 ? accel_host_cpu(f, err) : 0;
	fclose(f);
	if (r < 0) {
		free(text);
		return error_wrap(err, "snapshot key");
	}
	if (!text)
		return error_set(err, ENOMEM, "snapshot key");
	*key = text;
	return 0;
}

void vmsnap_key_diff(const char *want, const char *have, char *out, size_t size)
{
	const char *a = want, *b = have;
	while (*a && *b) {
		size_t la = strcspn(a, "\n"), lb = strcspn(b, "\n");
		if (la != lb || memcmp(a, b, la) != 0) {
			snprintf(out, size, "the snapshot has '%.*s', this VM '%.*s'",
				 (int)(lb > 300 ? 300 : lb), b, (int)(la > 300 ? 300 : la), a);
			/* have comes from vm.json, untrusted: no control
			 * characters reach the terminal. */
			for (char *p = out; *p; p++)
				if ((unsigned char)*p < 0x20 || *p == 0x7f)
					*p = '?';
			return;
		}
		a += la + (a[la] == '\n');
		b += lb + (b[lb] == '\n');
	}
	snprintf(out, size, "%s", *a || *b ? "the snapshot's key is of another length" : "");
}

int vmsnap_key_memory_mib(const char *key)
{
	static const char line[] = "\nqemu-command-line=";
	const char *p = key ? strstr(key, line) : NULL;
	if (!p)
		return -EINVAL;
	p += sizeof(line) - 1;
	const char *end = p + strcspn(p, "\n");
	for (const char *m = strstr(p, " -m "); m && m < end; m = strstr(m + 1, " -m ")) {
		const char *d = m + 4;
		long long v = 0;
		size_t n = 0;
		while (d + n < end && d[n] >= '0' && d[n] <= '9' && n < 9)
			v = v * 10 + (d[n++] - '0');
		if (n > 0 && (d + n == end || d[n] == ' ') && v > 0)
			return (int)v;
	}
	return -EINVAL;
}

int vmsnap_state_bound_mib(int mib, const struct vmsnap_limits *lim, uint64_t *max, char *what,
			   size_t size, struct error **err)
{
	if (mib <= 0 || mib > lim->max_memory_mib)
		return error_setx(err, EFBIG,
				  "a VM of %d MiB of memory: not within [vm] max_memory_mib (%lld)",
				  mib, (long long)lim->max_memory_mib);
	uint64_t bound = ((uint64_t)mib + (uint64_t)mib / 128 + VMSNAP_STATE_OVERHEAD_MIB) << 20;
	if (bound > lim->max_bytes) {
		*max = lim->max_bytes;
		snprintf(what, size, "limits.checkpoint_max_bytes (%llu bytes)",
			 (unsigned long long)lim->max_bytes);
	} else {
		*max = bound;
		snprintf(
			what, size,
			"%llu bytes, the VM's %d MiB of memory (at most [vm] max_memory_mib) and %d MiB for its device state",
			(unsigned long long)bound, mib, (int)((bound >> 20) - (uint64_t)mib));
	}
	return 0;
}

int vmsnap_state_bound(const char *key, const struct vmsnap_limits *lim, uint64_t *max, char *what,
		       size_t size, struct error **err)
{
	int mib = vmsnap_key_memory_mib(key);
	if (mib < 0)
		return error_setx(err, EINVAL,
				  "vm.json's key gives the VM no memory size (no -m N in its "
				  "qemu-command-line)");
	if (mib > lim->max_memory_mib)
		return error_setx(
			err, EFBIG,
			"vm.json's key gives the VM %d MiB of memory, more than [vm] max_memory_mib (%lld)",
			mib, (long long)lim->max_memory_mib);
	return vmsnap_state_bound_mib(mib, lim, max, what, size, err);
}

bool vmsnap_key_mapped_ram(const char *key)
{
	return key && strstr(key, " mapped-ram=yes\n") != NULL;
}
