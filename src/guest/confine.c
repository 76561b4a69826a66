/* The container's root is not the guest's root.
 *
 * A container that gets root in the guest owns the agent, the shared
 * directory and every other container of the VM. So the spec's confinement
 * applies in the guest exactly as runc applies it on a host: the bounding
 * set and the other capability sets, the seccomp filter (built with
 * libseccomp, linked statically into the agent), and the masked and
 * read-only paths. A spec without them (--privileged) gets none, as with
 * runc.
 *
 * The order is runc's: paths while the child still has every capability;
 * without noNewPrivileges the filter before the capabilities go (loading it
 * needs CAP_SYS_ADMIN then), with it the filter last, just before exec, so
 * that it need not allow what the agent's own code calls.
 */
#include "confine.h"
#include "cleanup.h"
#include "contract.h"
#include "error.h"
#include "fdio.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <seccomp.h>
#include <stdint.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>

/* ---- maskedPaths and readonlyPaths ----------------------------------------- */

/* runc's maskPath(): /dev/null over a file, an empty read-only tmpfs over a
 * directory; a path that does not exist is skipped. */
static int mask_path(const char *path, struct error **err)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return error_set(err, errno, "linux.maskedPaths: %s", path);
	}
	int r = S_ISDIR(st.st_mode) ? mount("tmpfs", path, "tmpfs", MS_RDONLY, "size=0,mode=0555")
				    : mount("/dev/null", path, NULL, MS_BIND, NULL);
	if (r < 0) {
		int e = errno;
		return error_setx(err, e, "linux.maskedPaths: %s: %s%s", path, strerror(e),
				  S_ISDIR(st.st_mode)
					  ? ""
					  : " (it is masked with the container's /dev/null)");
	}
	return 0;
}

/* runc's readonlyPath(): a bind mount of the path on itself, made read-only
 * with the flags it already had. */
static int readonly_path(const char *path, struct error **err)
{
	struct statvfs sv;
	if (mount(path, path, NULL, MS_BIND | MS_REC, NULL) < 0) {
		if (errno == ENOENT)
			return 0;
		goto fail;
	}
	if (statvfs(path, &sv) < 0)
		goto fail;
	unsigned long flags = MS_BIND | MS_REMOUNT | MS_RDONLY;
	flags |= (sv.f_flag & ST_NOSUID) ? MS_NOSUID : 0;
	flags |= (sv.f_flag & ST_NODEV) ? MS_NODEV : 0;
	flags |= (sv.f_flag & ST_NOEXEC) ? MS_NOEXEC : 0;
	if (mount(NULL, path, NULL, flags, NULL) < 0)
		goto fail;
	return 0;
fail:
	return error_set(err, errno, "linux.readonlyPaths: %s", path);
}

int confine_paths(const Cocoon__ContainerSpec *s, struct error **err)
{
	int r;
	for (size_t i = 0; i < s->n_masked_paths; i++)
		if ((r = mask_path(s->masked_paths[i], err)) < 0)
			return r;
	for (size_t i = 0; i < s->n_readonly_paths; i++)
		if ((r = readonly_path(s->readonly_paths[i], err)) < 0)
			return r;
	return 0;
}

/* ---- capabilities ----------------------------------------------------------- */

/* The guest kernel's highest capability: PR_CAPBSET_READ refuses the
 * first one past it. /proc may not be mounted in the container. */
static int last_cap(void)
{
	int cap = 0;
	while (cap < 63 && prctl(PR_CAPBSET_READ, cap + 1, 0, 0, 0) >= 0)
		cap++;
	return cap;
}

int confine_caps_bound(const Cocoon__Capabilities *c, struct error **err)
{
	if (!c)
		return 0;
	int last = last_cap();
	for (int cap = 0; cap <= last; cap++) {
		if (c->bounding & (1ULL << cap))
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
			return error_set(err, errno, "process.capabilities.bounding: dropping %d",
					 cap);
	}
	/* setuid() to a non-root uid would clear the permitted set. */
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		return error_set(err, errno, "process.capabilities: PR_SET_KEEPCAPS");
	return 0;
}

int confine_caps_apply(const Cocoon__Capabilities *c, struct error **err)
{
	if (!c)
		return 0;
	int last = last_cap();
	uint64_t known = last >= 63 ? UINT64_MAX : (1ULL << (last + 1)) - 1;
	uint64_t eff = c->effective & known, perm = c->permitted & known,
		 inheritable = c->inheritable & known;
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct data[2] = {
		{.effective = (uint32_t)eff,
		 .permitted = (uint32_t)perm,
		 .inheritable = (uint32_t)inheritable},
		{.effective = (uint32_t)(eff >> 32),
		 .permitted = (uint32_t)(perm >> 32),
		 .inheritable = (uint32_t)(inheritable >> 32)},
	};
	if (syscall(SYS_capset, &hdr, data) < 0) {
		int e = errno;
		return error_setx(
			err, e, "process.capabilities: capset: %s%s", strerror(e),
			e == EPERM
				? " (effective must be within permitted, inheritable within bounding)"
				: "");
	}
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
		return error_set(err, errno, "process.capabilities: clear the ambient set");
	/* As runc: an ambient capability the other sets do not allow is
	 * left out rather than failing the container. */
	for (int cap = 0; cap <= last; cap++)
		if (c->ambient & (1ULL << cap))
			(void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0);
	if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
		return error_set(err, errno, "process.capabilities: PR_SET_KEEPCAPS");
	return 0;
}

/* ---- seccomp -------------------------------------------------------------------- */

static int seccomp_action(const char *name, bool has_errno, uint32_t errno_ret, uint32_t *out)
{
	/* runc's default errno for SCMP_ACT_ERRNO and SCMP_ACT_TRACE. */
	uint32_t e = has_errno ? errno_ret : EPERM;
	if (strcmp(name, "SCMP_ACT_KILL") == 0 || strcmp(name, "SCMP_ACT_KILL_THREAD") == 0)
		*out = SCMP_ACT_KILL_THREAD;
	else if (strcmp(name, "SCMP_ACT_KILL_PROCESS") == 0)
		*out = SCMP_ACT_KILL_PROCESS;
	else if (strcmp(name, "SCMP_ACT_TRAP") == 0)
		*out = SCMP_ACT_TRAP;
	else if (strcmp(name, "SCMP_ACT_ERRNO") == 0)
		*out = SCMP_ACT_ERRNO(e);
	else if (strcmp(name, "SCMP_ACT_TRACE") == 0)
		*out = SCMP_ACT_TRACE(e);
	else if (strcmp(name, "SCMP_ACT_ALLOW") == 0)
		*out = SCMP_ACT_ALLOW;
	else if (strcmp(name, "SCMP_ACT_LOG") == 0)
		*out = SCMP_ACT_LOG;
	else
		return -EINVAL;
	return 0;
}

static int seccomp_op(const char *name, enum scmp_compare *out)
{
	static const struct {
		const char *name;
		enum scmp_compare op;
	} ops[] = {{"SCMP_CMP_NE", SCMP_CMP_NE},
		   {"SCMP_CMP_LT", SCMP_CMP_LT},
		   {"SCMP_CMP_LE", SCMP_CMP_LE},
		   {"SCMP_CMP_EQ", SCMP_CMP_EQ},
		   {"SCMP_CMP_GE", SCMP_CMP_GE},
		   {"SCMP_CMP_GT", SCMP_CMP_GT},
		   {"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ}};
	for (size_t i = 0; i < ARRAY_SIZE(ops); i++)
		if (strcmp(ops[i].name, name) == 0) {
			*out = ops[i].op;
			return 0;
		}
	return -EINVAL;
}

/* One rule, for every syscall it names. As runc does: when two conditions
 * test the same argument they cannot be ANDed in one rule, so each becomes
 * a rule of its own (an OR). Unknown syscall names are skipped, as are rules
 * whose action is the default (libseccomp refuses those). */
static int seccomp_add_rule(scmp_filter_ctx ctx, const Cocoon__SeccompRule *rule, uint32_t def,
			    struct error **err)
{
	uint32_t act;
	struct scmp_arg_cmp cmps[6];
	bool same_index = false;
	if (seccomp_action(rule->action, rule->has_errno, rule->errno_ret, &act) < 0 ||
	    rule->n_args > 6)
		return error_setx(err, EINVAL, "linux.seccomp: bad rule (%s)", rule->action);
	if (act == def)
		return 0;
	for (size_t i = 0; i < rule->n_args; i++) {
		const Cocoon__SeccompArg *a = rule->args[i];
		enum scmp_compare op;
		if (seccomp_op(a->op, &op) < 0 || a->index > 5)
			return error_setx(err, EINVAL, "linux.seccomp: bad argument (%s)", a->op);
		cmps[i] = (struct scmp_arg_cmp){
			.arg = a->index, .op = op, .datum_a = a->value, .datum_b = a->value_two};
		for (size_t j = 0; j < i; j++)
			same_index |= cmps[j].arg == cmps[i].arg;
	}
	for (size_t k = 0; k < rule->n_names; k++) {
		int nr = seccomp_syscall_resolve_name(rule->names[k]);
		if (nr == __NR_SCMP_ERROR)
			continue;
		int r = 0;
		if (!same_index)
			r = seccomp_rule_add_array(ctx, act, nr, (unsigned)rule->n_args, cmps);
		for (size_t i = 0; same_index && i < rule->n_args && r == 0; i++)
			r = seccomp_rule_add_array(ctx, act, nr, 1, &cmps[i]);
		if (r < 0)
			return error_set(err, -r, "linux.seccomp: rule for %s", rule->names[k]);
	}
	return 0;
}

static int seccomp_setup(scmp_filter_ctx ctx, const Cocoon__Seccomp *sc, uint32_t def,
			 struct error **err)
{
	int r;
	/* no_new_privs is process.noNewPrivileges' business, not the
	 * filter's; libseccomp would set it on load by default. */
	if ((r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0)) < 0)
		return error_setx(err, -r, "linux.seccomp: %s", strerror(-r));
	for (size_t i = 0; i < sc->n_architectures; i++) {
		const char *a = sc->architectures[i];
		uint32_t arch = strcmp(a, "SCMP_ARCH_X86") == 0	  ? SCMP_ARCH_X86
				: strcmp(a, "SCMP_ARCH_X32") == 0 ? SCMP_ARCH_X32
								  : SCMP_ARCH_X86_64;
		r = seccomp_arch_add(ctx, arch);
		if (r < 0 && r != -EEXIST)
			return error_set(err, -r, "linux.seccomp: architecture %s", a);
	}
	for (size_t i = 0; i < sc->n_flags; i++) {
		const char *f = sc->flags[i];
		enum scmp_filter_attr attr =
			strcmp(f, "SECCOMP_FILTER_FLAG_TSYNC") == 0 ? SCMP_FLTATR_CTL_TSYNC
			: strcmp(f, "SECCOMP_FILTER_FLAG_LOG") == 0 ? SCMP_FLTATR_CTL_LOG
								    : SCMP_FLTATR_CTL_SSB;
		if ((r = seccomp_attr_set(ctx, attr, 1)) < 0)
			return error_set(err, -r, "linux.seccomp: flag %s", f);
	}
	for (size_t i = 0; i < sc->n_syscalls; i++)
		if ((r = seccomp_add_rule(ctx, sc->syscalls[i], def, err)) < 0)
			return r;
	return 0;
}

int confine_seccomp_load(const Cocoon__Seccomp *sc, struct error **err)
{
	uint32_t def;
	if (!sc)
		return 0;
	if (seccomp_action(sc->default_action, sc->has_default_errno, sc->default_errno_ret, &def) <
	    0)
		return error_setx(err, EINVAL, "linux.seccomp.defaultAction %s is not supported",
				  sc->default_action);
	scmp_filter_ctx ctx = seccomp_init(def);
	if (!ctx)
		return error_setx(err, ENOMEM, "linux.seccomp: seccomp_init failed");
	int r = seccomp_setup(ctx, sc, def, err);
	if (r == 0 && (r = seccomp_load(ctx)) < 0)
		r = error_set(err, -r, "linux.seccomp: loading the filter");
	seccomp_release(ctx);
	return r;
}

/* ---- CRIU --------------------------------------------------------------------- */

/* An empty read-only tmpfs in the guest: what a masked directory becomes at
 * restore (CRIU bind-mounts it there). Made once, read-only and nothing
 * else, as the mask it stands for (a plain read-only tmpfs, mask_path):
 * CRIU then remounts its bind with the dumped flags, and in a container
 * with a user namespace the kernel refuses (EPERM) a remount that clears
 * nosuid, nodev or noexec, which a mount copied into a less privileged
 * mount namespace keeps locked (mount_namespaces(7)). Empty and read-only,
 * it has nothing those flags would guard. */
#define EMPTY_RO_DIR COCOON_GUEST_RUN_DIR "/empty"

/* 0, or a negative errno: then a masked directory would come back as a
 * writable directory of the guest's, so the restore must not go on. */
static int ensure_empty_ro_dir(void)
{
	struct statvfs sv;
	if (mkdir(EMPTY_RO_DIR, 0555) < 0 && errno != EEXIST)
		return -errno;
	if (statvfs(EMPTY_RO_DIR, &sv) == 0 && (sv.f_flag & ST_RDONLY))
		return 0;
	if (mount("tmpfs", EMPTY_RO_DIR, "tmpfs", MS_RDONLY, "size=0,mode=0555") < 0)
		return -errno;
	return 0;
}

/* Is path a mount point of the task? From its mountinfo (field 5). */
static bool is_mount_point(pid_t pid, const char *path)
{
	char file[64], line[1024];
	snprintf(file, sizeof(file), "/proc/%d/mountinfo", pid);
	_cleanup_fclose_ FILE *f = fopen(file, "re");
	while (f && fgets(line, sizeof(line), f)) {
		char mp[512];
		if (sscanf(line, "%*s %*s %*s %*s %511s", mp) == 1 && strcmp(mp, path) == 0)
			return true;
	}
	return false;
}

int confine_criu_externals(FILE *conf, pid_t pid, char *const *masked, size_t n_masked, bool dump)
{
	int n = 0, r;
	if (!dump && n_masked && (r = ensure_empty_ro_dir()) < 0)
		return r;
	for (size_t i = 0; i < n_masked; i++) {
		if (!dump) {
			fprintf(conf, "external mnt[cocoon-maskf-%zu]:/dev/null\n", i);
			fprintf(conf, "external mnt[cocoon-maskd-%zu]:" EMPTY_RO_DIR "\n", i);
			n += 2;
			continue;
		}
		/* Mount points in mountinfo have no spaces or escapes here:
		 * the host accepts only plain absolute paths. */
		if (strpbrk(masked[i], " \t\n\\") || !is_mount_point(pid, masked[i]))
			continue;
		char path[PATH_MAX];
		struct stat st;
		if (path_fmt(path, sizeof(path), "/proc/%d/root%s", pid, masked[i]) < 0)
			return -ENAMETOOLONG;
		if (stat(path, &st) < 0)
			continue;
		fprintf(conf, "external mnt[%s]:cocoon-mask%c-%zu\n", masked[i],
			S_ISDIR(st.st_mode) ? 'd' : 'f', i);
		n++;
	}
	return n;
}
