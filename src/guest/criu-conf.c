/* The CRIU configuration file of one dump or restore in the guest, and the
 * action script that puts mount flags back after a restore.
 *
 * CRIU reads options from a file given with --config, one per line, as
 * "name value" without the dashes. cocoon writes one per run: the
 * --external entries that come from the container's spec (masked paths, see
 * confine.c), the settings the user gave CRIU on the host (CriuOptions.config:
 * cocoon's criu.conf or the org.criu.config annotation, checked by the host,
 * src/host/lib/criu-config.c), and at restore the action script. Command-line
 * options still win over the file.
 *
 * At restore CRIU runs the agent as its action script: at "post-restore"
 * (the tasks are restored but not yet resumed) it puts the mounts' flags
 * back (mount-flags.h). */
#include "agent.h"
#include "cleanup.h"
#include "procfs.h"
#include "confine.h"
#include "criu-conf.h"
#include "mount-flags.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <string.h>
#include <sys/stat.h>

#define ACTION_LINK COCOON_GUEST_RUN_DIR "/" CRIU_ACTION_NAME

/* A setting from the host, one "name[ value]" line: checked again here,
 * since a stray newline would smuggle in a second option. */
static bool config_line_ok(const char *line)
{
	size_t n = strlen(line);
	if (n == 0 || n > 512 || line[0] < 'a' || line[0] > 'z')
		return false;
	for (size_t i = 0; i < n; i++)
		if (line[i] == '\n' || line[i] == '\r' || line[i] == '#')
			return false;
	return true;
}

bool criu_fault_valid(const char *fault, bool dump)
{
	if (!fault || !*fault)
		return true;
	if (dump)
		return strcmp(fault, "post-dump:stall") == 0;
	return strcmp(fault, "post-restore:stall") == 0 || strcmp(fault, "post-restore:kill") == 0;
}

int criu_conf_write(const char *path, const struct agent *a, const struct agent_container *c,
		    pid_t pid, const Cocoon__CriuOptions *o, bool dump, const char *fault)
{
	_cleanup_fclose_ FILE *f = fopen(path, "we");
	if (!f)
		return -errno;
	const Cocoon__ContainerSpec *s = c->spec;
	int r;
	if (s && (r = confine_criu_externals(f, pid, s->masked_paths, s->n_masked_paths, dump)) < 0)
		return r;
	for (size_t i = 0; o && i < o->n_config; i++)
		if (config_line_ok(o->config[i]))
			fprintf(f, "%s\n", o->config[i]);
	if (!dump || (fault && *fault)) {
		/* CRIU runs it with sh -c: a path without spaces. */
		unlink(ACTION_LINK);
		if (symlink(a->self_path, ACTION_LINK) == 0)
			fprintf(f, "action-script " ACTION_LINK "\n");
	}
	if (fflush(f) != 0 || ferror(f))
		return -EIO;
	return 0;
}

static bool proc_comm(pid_t pid, char *buf, size_t size)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (!f || !fgets(buf, (int)size, f))
		return false;
	buf[strcspn(buf, "\n")] = 0;
	return true;
}

/* The e2e tests' faults (criu-conf.h), at the stage they name. */
static void inject_fault(const char *action)
{
	const char *fault = getenv(COCOON_FAULT_ENV), *colon = fault ? strchr(fault, ':') : NULL;
	if (!colon || strncmp(fault, action, (size_t)(colon - fault)) != 0 ||
	    action[colon - fault] != 0)
		return;
	if (strcmp(colon + 1, "stall") == 0) {
		/* Waits, without using CPU, until CRIU (the parent, or the
		 * parent of the sh that runs the script) is gone. */
		pid_t p = getppid();
		char comm[32];
		for (int i = 0; i < 3 && p > 1 &&
				!(proc_comm(p, comm, sizeof(comm)) && strcmp(comm, "criu") == 0);
		     i++)
			p = (pid_t)proc_status_long(p, "PPid", -1);
		struct pollfd pfd = {.fd = p > 1 ? (int)syscall(SYS_pidfd_open, p, 0) : -1,
				     .events = POLLIN};
		int mark = open(AGENT_SHARED_DIR "/" CRIU_FAULT_REACHED,
				O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (mark >= 0)
			close(mark);
		while (pfd.fd >= 0 && poll(&pfd, 1, -1) <= 0)
			;
		_exit(1);
	}
	if (strcmp(colon + 1, "kill") == 0) {
		/* A restored task dies before CRIU resumes the tree: its init,
		 * SIGKILL, as an OOM kill would end it. */
		const char *init = getenv("CRTOOLS_INIT_PID");
		if (init && atoi(init) > 1)
			kill((pid_t)atoi(init), SIGKILL);
		_exit(0);
	}
}

int criu_action_main(void)
{
	const char *action = getenv("CRTOOLS_SCRIPT_ACTION");
	const char *images = getenv("CRTOOLS_IMAGE_DIR");
	const char *init = getenv("CRTOOLS_INIT_PID");
	if (action)
		inject_fault(action);
	if (!action || strcmp(action, "post-restore") != 0)
		return 0;
	if (!images || !init || atoi(init) <= 0) {
		fprintf(stderr, "cocoon: post-restore: CRIU gave no images or init pid\n");
		return 1;
	}
	return mount_flags_restore(images, (pid_t)atoi(init)) < 0 ? 1 : 0;
}
