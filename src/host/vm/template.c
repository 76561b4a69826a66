/* VM templates: boot the agent once per image and VM shape, keep the VM,
 * and start every later VM of that shape from it (docs/performance.md,
 * "VM templates").
 *
 * A template is a directory <cache>/templates/<hash of its key>/ holding
 *   key     what it was built from: the QEMU command line with the paths
 *           that differ per VM replaced, and the identity of the kernel,
 *           initrd, tools tree and QEMU binary
 *   memory  the guest's RAM, written by the template VM through a shared
 *           file mapping (memory-backend-file,share=on)
 *   state   the device state, QEMU's migration stream with x-ignore-shared,
 *           which leaves the shared RAM out (~70 KB)
 * A VM started from it maps memory privately, copy-on-write (share=off), and
 * loads state with -incoming: the guest carries on where the template
 * stopped, a second after its agent answered, with no share mounted. Its
 * per-VM backends (channel socket, share paths, console, taps) are its own:
 * only the device set has to match, and that is in the key. The first
 * request is TemplateResume, which reseeds the guest's RNG, sets its clock
 * and mounts the shares (src/guest/template.c).
 *
 * NICs: a template has as many as its VMs, and their number is in the key.
 * virtio-net carries its MAC in the migrated state, and the template's guest
 * read it at boot, so every NIC of a template and of a VM started from it
 * has a placeholder MAC (network_placeholder_mac): the agent gives each
 * device the engine's MAC before it configures the network
 * (NetInterface.device_mac, as for a reserved NIC). The template's own taps
 * are down, in a namespace of their own (network_scratch_taps); its guest
 * never brings its NICs up, so nothing derived from a MAC (an IPv6
 * link-local address, its DAD) is in the saved state.
 *
 * A key that differs is never used: the directory name is a hash of the key
 * and the key file is compared in full, so a changed input means another
 * template, built on first use. Any failure falls back to a cold boot.
 */
#include "template.h"
#include "accel.h"
#include "cleanup.h"
#include "network.h"
#include "paths.h"
#include "qmp.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>

#define TEMPLATE_KEY_MAX (64 * 1024)
#define TEMPLATE_QMP_TIMEOUT_MS QMP_TIMEOUT_MS
#define TEMPLATE_SEED_BYTES 64
/* Bumped when the layout or the guest side's contract changes. */
#define TEMPLATE_FORMAT "cocoon-template 1"

static int qmp_ignore_shared(struct qmp *q, struct error **err)
{
	return qmp_call(
		q,
		"{\"execute\":\"migrate-set-capabilities\",\"arguments\":{\"capabilities\":[{\"capability\":\"x-ignore-shared\",\"state\":true}]}}\n",
		-1, NULL, err);
}

/* Once an incoming migration completes, QEMU announces every NIC: RARP
 * frames from the MAC on its command line, then (virtio-net's
 * GUEST_ANNOUNCE) a request to the guest to announce its addresses. A VM
 * from a template would send its placeholder MAC onto the engine's network,
 * every clone the same one, so bridges and switches would see one station
 * move between ports; and the guest has no address to announce before the
 * agent configures it. announce-rounds 0 sends neither (net/announce.c,
 * qemu_announce_self; virtio_net_post_load_device). */
static int qmp_no_announce(struct qmp *q, struct error **err)
{
	return qmp_call(
		q,
		"{\"execute\":\"migrate-set-parameters\",\"arguments\":{\"announce-rounds\":0}}\n",
		-1, NULL, err);
}

/* ---- the key ---------------------------------------------------------- */

static void add_identity(FILE *f, const char *what, const char *path)
{
	struct stat st;
	if (!path || stat(path, &st) < 0) {
		fprintf(f, "%s=none\n", what);
		return;
	}
	fprintf(f, "%s=%s dev=%llu ino=%llu size=%lld mtime=%lld.%09ld\n", what, path,
		(unsigned long long)st.st_dev, (unsigned long long)st.st_ino, (long long)st.st_size,
		(long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
}

/* QEMU as found in PATH, the way execvp will find it. */
static char *find_in_path(const char *name)
{
	if (strchr(name, '/'))
		return strdup(name);
	const char *path = getenv("PATH");
	_cleanup_free_ char *copy = strdup(path ? path : "/usr/bin:/bin");
	char *save = NULL;
	for (char *d = copy ? strtok_r(copy, ":", &save) : NULL; d;
	     d = strtok_r(NULL, ":", &save)) {
		char *p = NULL;
		if (asprintf(&p, "%s/%s", d, name) < 0)
			return NULL;
		if (access(p, X_OK) == 0)
			return p;
		free(p);
	}
	return NULL;
}

/* The MACs every NIC of a template's VMs has (network_placeholder_mac). */
static void placeholder_macs(const char *macs[NET_MAX_INTERFACES])
{
	for (int i = 0; i < NET_MAX_INTERFACES; i++)
		macs[i] = network_placeholder_mac(i);
}

/* Each share's path as a placeholder: what differs between VMs of one
 * template is a QEMU backend; the devices, tags and order are the shape.
 * So are the NICs, by their number: their taps are backends, and their MACs
 * are the placeholders whatever spec says. */
static int template_shape(const struct vm_spec *spec, char **line, struct error **err)
{
	static const char *const images[] = {"/I0", "/I1", "/I2", "/I3",
					     "/I4", "/I5", "/I6", "/I7"};
	static const int tap_fds[NET_MAX_INTERFACES] = {100, 101, 102, 103};
	const char *macs[NET_MAX_INTERFACES];
	struct vm_spec s = *spec;

	if (spec->n_images_dirs > (int)ARRAY_SIZE(images))
		return error_setx(err, E2BIG, "%d image directories", spec->n_images_dirs);
	if (spec->n_nets > NET_MAX_INTERFACES)
		return error_setx(err, E2BIG, "%d network devices (at most %d)", spec->n_nets,
				  NET_MAX_INTERFACES);
	placeholder_macs(macs);
	s.net_fds = tap_fds;
	s.net_macs = macs;
	s.channel_path = "/CHANNEL";
	s.console_log = "/CONSOLE";
	s.vmm_log = NULL;
	s.shared_dir = spec->shared_dir ? "/SHARED" : NULL;
	s.rootfs_dir = spec->rootfs_dir ? "/ROOTFS" : NULL;
	s.volumes_dir = spec->volumes_dir ? "/VOLUMES" : NULL;
	s.pod_dir = spec->pod_dir ? "/POD" : NULL;
	s.images_dirs = spec->n_images_dirs ? images : NULL;
	s.memory_file = "/MEMORY";
	s.memory_shared = false;
	s.incoming_fd = 3;
	s.qmp_path = "/QMP";
	*line = vm_qemu_command_line(&s, err);
	return *line ? 0 : -1;
}

int template_key(const struct vm_spec *spec, char **key, struct error **err)
{
	_cleanup_free_ char *shape = NULL, *qemu = NULL, *manifest = NULL;
	char *text = NULL;
	size_t len = 0;

	int r = template_shape(spec, &shape, err);
	if (r < 0)
		return r;
	qemu = find_in_path(spec->qemu);
	if (spec->initrd)
		manifest = path_beside(spec->initrd, "manifest");
	FILE *f = open_memstream(&text, &len);
	if (!f)
		return error_set(err, ENOMEM, "template key");
	fprintf(f, "%s\nqemu-command-line=%s\n", TEMPLATE_FORMAT, shape);
	add_identity(f, "qemu", qemu);
	add_identity(f, "kernel", spec->kernel);
	add_identity(f, "initrd", spec->initrd);
	add_identity(f, "tools", spec->tools_dir);
	add_identity(f, "manifest", manifest);
	/* Under KVM the guest's CPU is the host's (-cpu host): a template
	 * saved on another CPU, or under a kernel whose KVM offered other
	 * features, is not this VM's (accel_host_cpu). TCG's "max" CPU is
	 * in the command line above. */
	if (strcmp(spec->accel, "kvm") == 0) {
		struct utsname u;
		r = accel_host_cpu(f, err);
		if (r == 0 && uname(&u) == 0)
			fprintf(f, "host-kernel=%s\n", u.release);
	}
	fclose(f);
	if (r < 0) {
		free(text);
		return error_wrap(err, "template key");
	}
	if (!text)
		return error_set(err, ENOMEM, "template key");
	*key = text;
	return 0;
}

/* FNV-1a, 64 bits: names the directory; the key file itself is compared. */
static uint64_t key_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ULL;
	return h;
}

char *template_base_dir(const char *configured)
{
	char *d = NULL;
	if (configured)
		return strdup(configured);
	return asprintf(&d, "%s/templates", cache_dir()) < 0 ? NULL : d;
}

int template_dir_for(const char *base, const char *key, char **dir, struct error **err)
{
	if (asprintf(dir, "%s/%016llx", base, (unsigned long long)key_hash(key)) < 0)
		return error_set(err, ENOMEM, "template directory");
	return 0;
}

/* 1 when dir holds a complete template built from exactly this key. */
static int template_valid(const char *dir, const char *key)
{
	_cleanup_free_ char *path = NULL, *text = NULL, *mem = NULL, *state = NULL;
	struct stat st;
	if (asprintf(&path, "%s/key", dir) < 0 || asprintf(&mem, "%s/memory", dir) < 0 ||
	    asprintf(&state, "%s/state", dir) < 0)
		return 0;
	if (read_file_bounded(path, TEMPLATE_KEY_MAX, &text, NULL, NULL) < 0)
		return 0;
	if (strcmp(text, key) != 0)
		return -1;
	return stat(mem, &st) == 0 && S_ISREG(st.st_mode) && stat(state, &st) == 0 &&
	       S_ISREG(st.st_mode) && st.st_size > 0;
}

/* ---- building ----------------------------------------------------------- */

/* Saves the running template VM's devices into state_fd. QEMU stops the VM
 * when the migration completes; its RAM is already in the memory file. */
static int save_state(struct vm *vm, const char *qmp_path, int state_fd, struct error **err)
{
	struct qmp q = {.fd = -1};
	int r = qmp_connect(&q, vm, qmp_path, err);
	if (r == 0)
		r = qmp_ignore_shared(&q, err);
	if (r == 0)
		r = qmp_call(&q, "{\"execute\":\"getfd\",\"arguments\":{\"fdname\":\"state\"}}\n",
			     state_fd, NULL, err);
	if (r == 0)
		r = qmp_call(&q, "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"fd:state\"}}\n",
			     -1, NULL, err);
	long long deadline = now_ms() + TEMPLATE_QMP_TIMEOUT_MS;
	while (r == 0) {
		_cleanup_free_ char *reply = NULL;
		r = qmp_call(&q, "{\"execute\":\"query-migrate\"}\n", -1, &reply, err);
		if (r < 0)
			break;
		char status[32] = "";
		(void)qmp_status(reply, status, sizeof(status)); /* none: "" */
		if (strcmp(status, "completed") == 0)
			break;
		if (strcmp(status, "failed") == 0 || strcmp(status, "cancelled") == 0)
			r = error_setx(err, EIO, "template VM: migration failed: %s", reply);
		else if (now_ms() > deadline)
			r = error_setx(err, ETIMEDOUT, "template VM: migration did not complete");
		else
			usleep(5000);
	}
	if (q.fd >= 0)
		close(q.fd);
	return r;
}

static char *join(const char *dir, const char *name)
{
	char *p = NULL;
	return asprintf(&p, "%s/%s", dir, name) < 0 ? NULL : p;
}

static int fsync_path(const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd < 0 || fsync(fd) < 0 ? -errno : 0;
}

/* Boots the template VM in work (a fresh directory), waits for its agent,
 * and saves it there. */
static int build_in(const char *work, const struct vm_spec *spec, const char *key, int timeout_ms,
		    struct error **err)
{
	_cleanup_free_ char *chan = join(work, "agent.sock"), *qmp = join(work, "qmp.sock"),
			    *console = join(work, "console.log"), *vmm = join(work, "qemu.log"),
			    *mem = join(work, "memory"), *state = join(work, "state"),
			    *share = join(work, "share"), *keyp = join(work, "key");
	if (!chan || !qmp || !console || !vmm || !mem || !state || !share || !keyp)
		return error_set(err, ENOMEM, "template");
	/* Every share is an empty directory: the template mounts none. */
	if (mkdir(share, 0700) < 0)
		return error_set(err, errno, "create %s", share);
	const char *images[8];
	for (int i = 0; i < spec->n_images_dirs && i < 8; i++)
		images[i] = share;
	struct vm_spec s = *spec;
	s.channel_path = chan;
	s.console_log = console;
	s.vmm_log = vmm;
	s.shared_dir = spec->shared_dir ? share : NULL;
	s.rootfs_dir = spec->rootfs_dir ? share : NULL;
	s.volumes_dir = spec->volumes_dir ? share : NULL;
	s.pod_dir = spec->pod_dir ? share : NULL;
	s.images_dirs = spec->n_images_dirs ? images : NULL;
	s.memory_file = mem;
	s.memory_shared = true;
	s.incoming_fd = 0;
	s.qmp_path = qmp;

	_cleanup_close_ int state_fd = open(state, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (state_fd < 0)
		return error_set(err, errno, "create %s", state);
	int taps[NET_MAX_INTERFACES];
	const char *macs[NET_MAX_INTERFACES];
	placeholder_macs(macs);
	s.net_fds = taps;
	s.net_macs = macs;
	struct vm vm = {0};
	struct agent_client agent = {.fd = -1};
	int r = network_scratch_taps(spec->n_nets, taps, err);
	if (r < 0)
		return r;
	r = vm_start(&vm, &vm_backend_qemu, &s, err);
	/* QEMU has its own copies of the taps now. */
	for (int i = 0; i < spec->n_nets; i++)
		close(taps[i]);
	if (r == 0) {
		int fd = vm_wait_socket(&vm, chan, VM_SOCKET_TIMEOUT_MS, err);
		r = fd < 0 ? fd : agent_client_init(&agent, fd, err);
		if (r < 0 && fd >= 0)
			close(fd);
	}
	if (r == 0)
		r = agent_wait_ready(&agent, &vm, "template VM", timeout_ms, err);
	if (r == 0)
		r = save_state(&vm, qmp, state_fd, err);
	agent_client_close(&agent);
	if (vm.backend)
		vm.backend->kill(&vm);
	if (r < 0) {
		_cleanup_free_ char *qlog = NULL;
		if (read_file_bounded(vmm, 4096, &qlog, NULL, NULL) == 0 && *qlog)
			error_wrap(err, "%s", strtok(qlog, "\n"));
		return r;
	}
	/* The key goes last, after the data is on disk: a key file means a
	 * complete template. */
	if (chmod(mem, 0600) < 0 || fsync_path(mem) < 0 || fsync(state_fd) < 0)
		return error_set(err, errno, "template: sync");
	unlink(chan);
	unlink(qmp);
	rmdir(share);
	return write_file_atomic(keyp, key, strlen(key), 0600, err);
}

/* Templates built before the current kernel or initrd can never match
 * again: remove them when a new one is built. A VM running from one keeps
 * its mapping; the file goes when that VM does. */
static void remove_stale(const char *base, const struct vm_spec *spec)
{
	struct stat k = {0}, i = {0};
	stat(spec->kernel, &k);
	stat(spec->initrd, &i);
	time_t newest = k.st_mtime > i.st_mtime ? k.st_mtime : i.st_mtime;
	_cleanup_closedir_ DIR *d = opendir(base);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		_cleanup_free_ char *dir = join(base, de->d_name),
				    *key = dir ? join(dir, "key") : NULL;
		struct stat st;
		if (key && stat(key, &st) == 0 && st.st_mtime < newest)
			(void)remove_tree(dir, NULL);
	}
}

int template_build(const char *base, const struct vm_spec *spec, const char *key, const char *dir,
		   int timeout_ms, struct error **err)
{
	_cleanup_free_ char *lock = NULL, *work = NULL;
	if (asprintf(&lock, "%s/.lock", base) < 0 || asprintf(&work, "%s/.build-XXXXXX", base) < 0)
		return error_set(err, ENOMEM, "template");
	int r = mkdir_p(base, 0700, err);
	if (r < 0)
		return r;
	/* One builder at a time; whoever waited finds the template built. */
	_cleanup_close_ int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lfd < 0 || flock(lfd, LOCK_EX) < 0)
		return error_set(err, errno, "lock %s", lock);
	int valid = template_valid(dir, key);
	if (valid > 0)
		return 0;
	if (!mkdtemp(work))
		return error_set(err, errno, "create %s", work);
	r = build_in(work, spec, key, timeout_ms, err);
	if (r == 0) {
		/* A key that differs under the same name (a hash collision, or
		 * a damaged template) is refused and replaced. */
		if (valid < 0 || access(dir, F_OK) == 0)
			(void)remove_tree(dir, NULL);
		if (rename(work, dir) < 0)
			r = error_set(err, errno, "publish template %s", dir);
	}
	if (r < 0) {
		(void)remove_tree(work, NULL);
		return error_wrap(err, "build VM template");
	}
	remove_stale(base, spec);
	return 0;
}

/* ---- starting a VM from a template --------------------------------------- */

int template_resume_agent(struct agent_client *c, bool whole_vm, int timeout_ms, struct error **err)
{
	uint8_t seed[TEMPLATE_SEED_BYTES];
	if (getrandom(seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
		return error_set(err, errno, "getrandom");
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);

	Cocoon__Request req = COCOON__REQUEST__INIT;
	Cocoon__TemplateResumeRequest tr = COCOON__TEMPLATE_RESUME_REQUEST__INIT;
	Cocoon__Response *resp = NULL;
	tr.seed.data = seed;
	tr.seed.len = sizeof(seed);
	tr.realtime_ns = (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec;
	tr.whole_vm = whole_vm;
	req.body_case = COCOON__REQUEST__BODY_TEMPLATE_RESUME;
	req.template_resume = &tr;
	int r = agent_call(c, &req, &resp, timeout_ms, err);
	explicit_bzero(seed, sizeof(seed));
	if (r < 0)
		return r;
	cocoon__response__free_unpacked(resp, NULL);
	return 0;
}

int template_start(struct vm *vm, struct agent_client *agent, const struct vm_spec *spec,
		   const char *dir, const char *qmp_path, int timeout_ms, struct error **err)
{
	_cleanup_free_ char *mem = join(dir, "memory"), *state = join(dir, "state");
	if (!mem || !state)
		return error_set(err, ENOMEM, "template");
	_cleanup_close_ int state_fd = open(state, O_RDONLY | O_CLOEXEC);
	if (state_fd < 0)
		return error_set(err, errno, "open %s", state);
	const char *macs[NET_MAX_INTERFACES];
	placeholder_macs(macs);
	struct vm_spec s = *spec;
	s.net_macs = macs; /* the template's: the loaded state has them anyway */
	s.memory_file = mem;
	s.memory_shared = false;
	s.incoming_fd = state_fd;
	s.qmp_path = qmp_path;
	int r = vm_start(vm, &vm_backend_qemu, &s, err);
	if (r < 0)
		return r;
	/* QEMU's own migration properties cannot set x-ignore-shared in 7.2,
	 * so the VM waits (-incoming defer) until QMP has set it. */
	struct qmp q = {.fd = -1};
	r = qmp_connect(&q, vm, qmp_path, err);
	if (r == 0)
		r = qmp_ignore_shared(&q, err);
	if (r == 0 && spec->n_nets > 0)
		r = qmp_no_announce(&q, err);
	char cmd[128];
	snprintf(cmd, sizeof(cmd),
		 "{\"execute\":\"migrate-incoming\",\"arguments\":{\"uri\":\"fd:%d\"}}\n",
		 state_fd);
	if (r == 0)
		r = qmp_call(&q, cmd, -1, NULL, err);
	if (q.fd >= 0)
		close(q.fd);
	if (r < 0)
		return r;
	int fd = vm_wait_socket(vm, spec->channel_path, VM_SOCKET_TIMEOUT_MS, err);
	if (fd < 0)
		return fd;
	r = agent_client_init(agent, fd, err);
	if (r < 0) {
		close(fd);
		return r;
	}
	r = template_resume_agent(agent, false, timeout_ms, err);
	if (r < 0 && vm_check_exited(vm))
		return error_wrap(err, "VM from template exited");
	return r;
}
