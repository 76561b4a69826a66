/* Loads the kernel modules the image builder listed, in dependency order.
 *
 * The list is resolved on the host with modprobe --show-depends against the
 * kernel's modules.dep, so the guest needs no kmod. Parameters of the form
 * "module.param=value" on the kernel command line are handed to finit_module()
 * here: the kernel only applies those for built-in code, and for modules it is
 * modprobe's job, which we do not have. QEMU's microvm passes its
 * virtio_mmio.device= entries exactly that way.
 */
#include "modules.h"
#include "agent.h"
#include "channel.h"
#include "jobs.h"
#include "cleanup.h"

#include <fcntl.h>
#include <string.h>
#include <sys/syscall.h>

static char *cmdline_params_for(const char *module)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/cmdline", "re");
	char line[4096], *save = NULL, *params = NULL;
	size_t params_len = 0, mlen = strlen(module);

	if (!f || !fgets(line, sizeof(line), f))
		return strdup("");
	for (char *tok = strtok_r(line, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save)) {
		bool match = strlen(tok) > mlen && tok[mlen] == '.';
		for (size_t i = 0; match && i < mlen; i++) {
			char c = tok[i] == '-' ? '_' : tok[i];
			char m = module[i] == '-' ? '_' : module[i];
			match = c == m;
		}
		if (!match)
			continue;
		const char *p = tok + mlen + 1;
		char *grown = realloc(params, params_len + strlen(p) + 2);
		if (!grown)
			break;
		params = grown;
		params_len +=
			(size_t)sprintf(params + params_len, "%s%s", params_len ? " " : "", p);
	}
	return params ? params : strdup("");
}

static void record_failure(struct agent *a, const char *name, int errnum)
{
	char **grown = realloc(a->module_failures, (a->n_module_failures + 1) * sizeof(char *));
	char *msg = NULL;

	if (!grown)
		return;
	a->module_failures = grown;
	if (asprintf(&msg, "%s: %s", name, strerror(errnum)) < 0)
		return;
	a->module_failures[a->n_module_failures++] = msg;
	agent_log(a, "module %s", msg);
}

/* What the agent needs before it can answer: the virtio transport, the
 * channel and the 9p shares. Everything else (netfilter, the *_diag modules,
 * tun, veth, overlay) only CRIU and containers need; those load in a child
 * process while the agent already answers, which took ~0.6 s off a TCG boot. */
static bool boot_essential(const char *name, bool virtiofs)
{
	static const char *const names[] = {"virtio",	      "virtio_ring",  "virtio_mmio",
					    "virtio_console", "netfs",	      "fscache",
					    "9pnet",	      "9pnet_virtio", "9p"};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (strcmp(names[i], name) == 0)
			return true;
	/* Only a VM with virtiofs shares (or rootfs) waits for these at boot. */
	return virtiofs && (strcmp(name, "fuse") == 0 || strcmp(name, "virtiofs") == 0);
}

/* Loads the modules of the list whose essential-ness matches; a failure is
 * recorded with the agent, or printed as "name: reason" by the child. */
static void load_matching(struct agent *a, const char *list_path, bool essential)
{
	_cleanup_fclose_ FILE *f = fopen(list_path, "re");
	char line[512];

	if (!f) {
		if (essential)
			record_failure(a, list_path, errno);
		return;
	}
	/* Each line: "<name> <path>". */
	while (fgets(line, sizeof(line), f)) {
		char *name = strtok(line, " \n"), *path = strtok(NULL, " \n");
		if (!name || !path || name[0] == '#' ||
		    boot_essential(name, a && (a->virtiofs || a->rootfs_virtiofs)) != essential)
			continue;
		int err = 0;
		_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			err = errno;
		} else {
			_cleanup_free_ char *params = cmdline_params_for(name);
			if (syscall(SYS_finit_module, fd, params ? params : "", 0) < 0 &&
			    errno != EEXIST)
				err = errno;
		}
		if (err && a)
			record_failure(a, name, err);
		else if (err)
			printf("%s: %s\n", name, strerror(err));
	}
}

void agent_load_modules(struct agent *a, const char *list_path)
{
	load_matching(a, list_path, true);
}

int load_late_modules_main(const char *list_path)
{
	load_matching(NULL, list_path, false);
	return 0;
}

static void late_modules_done(struct agent_job *job, int status)
{
	struct agent *a = job->userdata;
	(void)status;
	/* The child printed one "name: reason" line per failure. */
	for (char *save = NULL, *l = job->out ? strtok_r(job->out, "\n", &save) : NULL; l;
	     l = strtok_r(NULL, "\n", &save)) {
		char **grown =
			realloc(a->module_failures, (a->n_module_failures + 1) * sizeof(char *));
		if (!grown)
			break;
		a->module_failures = grown;
		a->module_failures[a->n_module_failures++] = strdup(l);
	}
	a->late_modules_pending = false;
	if (a->late_modules_done)
		a->late_modules_done(a);
}

void agent_load_late_modules_now(struct agent *a)
{
	load_matching(a, AGENT_MODULES_LIST, false);
}

void agent_load_late_modules(struct agent *a)
{
	char *argv[] = {a->self_path, (char *)"--load-late-modules", (char *)AGENT_MODULES_LIST,
			NULL};
	_cleanup_error_ struct error *e = NULL;
	if (agent_job_start(a, argv, late_modules_done, a, &e) < 0) {
		agent_log(a, "late modules: %s", e->msg);
		load_matching(a, AGENT_MODULES_LIST, false);
		return;
	}
	a->late_modules_pending = true;
}
