/* What dump and restore share (ckpt-common.h).
 *
 * CRIU writes its errors to its log file, not to stdout: so the log is always
 * kept, copied to the host, and its "Error" lines quoted in the reply.
 */
#include "init.h"
#include "channel.h"
#include "ckpt-common.h"
#include "argv.h"
#include "cleanup.h"
#include "pbwire.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <net/if.h>
#include <sched.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

void ckpt_send_progress(struct agent *a, const char *cid, const char *stage, uint64_t bytes,
			long long elapsed_ms)
{
	Cocoon__Response resp = COCOON__RESPONSE__INIT;
	Cocoon__CheckpointProgress ev = COCOON__CHECKPOINT_PROGRESS__INIT;
	ev.id = (char *)cid;
	ev.stage = (char *)stage;
	ev.bytes = bytes;
	ev.elapsed_ms = elapsed_ms > 0 ? (uint64_t)elapsed_ms : 0;
	resp.body_case = COCOON__RESPONSE__BODY_PROGRESS;
	resp.progress = &ev;
	agent_send_response(a, &resp);
}

/* Reads the few fields we report from CRIU's stats_entry (criu/images/
 * stats.proto): dump = 1 { freezing_time 1, frozen_time 2, memdump_time 3,
 * memwrite_time 4, pages_scanned 5, pages_skipped_parent 6, pages_written 7 },
 * restore = 2 { forking_time 3, restore_time 4 }. Times are microseconds. */
static void parse_stats_msg(const uint8_t *p, const uint8_t *end, int outer, Cocoon__CriuStats *st)
{
	while (p < end) {
		uint64_t key, v;
		if (!pbwire_varint(&p, end, &key))
			return;
		unsigned field = (unsigned)(key >> 3), wt = key & 7;
		if (wt == 2) {
			if (!pbwire_varint(&p, end, &v) || v > (uint64_t)(end - p))
				return;
			if (outer == 0)
				parse_stats_msg(p, p + v, (int)field, st);
			p += v;
			continue;
		}
		if (wt != 0 || !pbwire_varint(&p, end, &v))
			return;
		if (outer == 1) {
			switch (field) {
			case 1:
				st->freezing_us = (uint32_t)v;
				break;
			case 2:
				st->frozen_us = (uint32_t)v;
				break;
			case 3:
				st->memdump_us = (uint32_t)v;
				break;
			case 4:
				st->memwrite_us = (uint32_t)v;
				break;
			case 5:
				st->pages_scanned = v;
				break;
			case 6:
				st->pages_skipped_parent = v;
				break;
			case 7:
				st->pages_written = v;
				break;
			}
		} else if (outer == 2) {
			if (field == 3)
				st->forking_us = (uint32_t)v;
			else if (field == 4)
				st->restore_us = (uint32_t)v;
		}
	}
}

void criu_read_stats(const char *path, Cocoon__CriuStats *st)
{
	uint8_t buf[4096];
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf)) : -1;
	/* Two magics (service + stats), then a u32 size and the entry. */
	if (n < 12)
		return;
	uint32_t len;
	memcpy(&len, buf + 8, 4);
	if (len > (size_t)n - 12)
		return;
	parse_stats_msg(buf + 12, buf + 12 + len, 0, st);
}

/* The first "Error" line of a CRIU log, for the reply. */
void criu_log_first_error(const char *log, char *out, size_t size)
{
	_cleanup_fclose_ FILE *f = fopen(log, "re");
	char line[512];
	snprintf(out, size, "no Error line in %s", log);
	while (f && fgets(line, sizeof(line), f)) {
		if (strstr(line, "Error") || strstr(line, "error:")) {
			line[strcspn(line, "\n")] = 0;
			snprintf(out, size, "%s", line);
			return;
		}
	}
}

void criu_common_args(struct argv *av, const Cocoon__CriuOptions *o)
{
	if (!o)
		return;
	if (o->tcp_established)
		argv_add(av, "--tcp-established");
	if (o->ext_unix_sk)
		argv_add(av, "--ext-unix-sk");
	if (o->shell_job)
		argv_add(av, "--shell-job");
	if (o->file_locks)
		argv_add(av, "--file-locks");
}

int criu_log_level(const Cocoon__CriuOptions *o, bool debug)
{
	int level = debug ? 4 : 2;
	for (size_t i = 0; o && i < o->n_config; i++) {
		const char *line = o->config[i];
		if (strncmp(line, "verbosity", 9) != 0 || (line[9] != 0 && line[9] != '='))
			continue;
		/* As CRIU reads it (criu/config.c, case 'v'): no value is one
		 * more than its default of 2, "vvv" one more per letter, else
		 * a number. The last line wins, as in CRIU. */
		const char *v = line[9] ? line + 10 : NULL;
		int want = !v ? 3 : v[0] == 'v' ? 2 + (int)strlen(v) + 1 : atoi(v);
		level = (debug ? 4 : 2) > want ? (debug ? 4 : 2) : want;
	}
	return level > 4 ? 4 : level;
}

void criu_log_level_arg(struct argv *av, const Cocoon__CriuOptions *o, bool debug)
{
	argv_addf(av, "-v%d", criu_log_level(o, debug));
}

/* A fresh network namespace with loopback up, as the container had, for
 * CRIU to restore into (--inherit-fd fd[N]:cocoon-netns). The agent steps
 * into it just long enough to bring lo up; it has no threads. */
int ckpt_new_loopback_netns(void)
{
	int mine = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (mine < 0 || unshare(CLONE_NEWNET) < 0) {
		if (mine >= 0)
			close(mine);
		return -1;
	}
	int lo = agent_loopback_up();
	int ns = lo < 0 ? -1 : open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (setns(mine, CLONE_NEWNET) < 0)
		agent_log(NULL, "cannot return to the agent's network namespace: %s",
			  strerror(errno));
	close(mine);
	if (lo < 0)
		errno = -lo;
	return ns;
}

/* The kernel's count of OOM kills so far (/proc/vmstat oom_kill). */
long ckpt_oom_kills(void)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/vmstat", "re");
	char key[64];
	long v;
	while (f && fscanf(f, "%63s %ld", key, &v) == 2)
		if (strcmp(key, "oom_kill") == 0)
			return v;
	return -1;
}

/* The namespaces a pod member shares with its pod (spec join_namespaces),
 * as process PID has them: fds[0..2] for net, ipc, uts, or -1. */
void ckpt_pod_namespaces_open(const struct agent_container *c, pid_t pid, int fds[3])
{
	static const char *const types[] = {"network", "ipc", "uts"}, *const files[] = {
									      "net", "ipc", "uts"};
	for (int i = 0; i < 3; i++) {
		fds[i] = -1;
		if (!c->spec || !c->spec->join_container || !*c->spec->join_container)
			continue;
		for (size_t j = 0; j < c->spec->n_join_namespaces; j++) {
			if (strcmp(c->spec->join_namespaces[j], types[i]) != 0)
				continue;
			char path[64];
			snprintf(path, sizeof(path), "/proc/%d/ns/%s", pid, files[i]);
			fds[i] = open(path, O_RDONLY | O_CLOEXEC);
			break;
		}
	}
}

void ckpt_pod_namespaces_close(int fds[3])
{
	for (int i = 0; i < 3; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}
