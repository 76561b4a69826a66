/* Loads the kernel modules the image builder listed, in dependency order.
 *
 * The list is resolved on the host with modprobe --show-depends against the
 * kernel's modules.dep, so the guest needs no kmod. Parameters of the form
 * "module.param=value" on the kernel command line are handed to finit_module()
 * here: the kernel only applies those for built-in code, and for modules it is
 * modprobe's job, which we do not have. QEMU's microvm passes its
 * virtio_mmio.device= entries exactly that way.
 */
#include "agent.h"
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
		params_len += (size_t)sprintf(params + params_len, "%s%s", params_len ? " " : "", p);
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

void agent_load_modules(struct agent *a, const char *list_path)
{
	_cleanup_fclose_ FILE *f = fopen(list_path, "re");
	char line[512];

	if (!f) {
		record_failure(a, list_path, errno);
		return;
	}
	/* Each line: "<name> <path>". */
	while (fgets(line, sizeof(line), f)) {
		char *name = strtok(line, " \n"), *path = strtok(NULL, " \n");
		if (!name || !path || name[0] == '#')
			continue;
		_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			record_failure(a, name, errno);
			continue;
		}
		_cleanup_free_ char *params = cmdline_params_for(name);
		if (syscall(SYS_finit_module, fd, params ? params : "", 0) < 0 && errno != EEXIST)
			record_failure(a, name, errno);
	}
}
