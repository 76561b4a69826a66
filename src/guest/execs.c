/* exec'd processes in the container's tree: how the agent follows them
 * when it is not their parent, and their stdio across checkpoint and
 * restore (execs.h). */
#include "agent.h"
#include "channel.h"
#include "cleanup.h"
#include "fdio.h"
#include "execs.h"
#include "guard.h"

#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>

/* The agent's subscription, or -1. One process, one socket: a static. */
static int events_fd = -1;

int execs_send_self(int sock)
{
	int pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
	if (pidfd < 0)
		return -errno;
	char tag = 'P';
	ssize_t n = fd_send_fds(sock, &tag, 1, &pidfd, 1, 0);
	close(pidfd);
	if (n != 1)
		return n < 0 ? (int)n : -EIO;
	/* Wait for the agent to take the pidfd (one byte back, or EOF if the
	 * agent went away): a process that ran and was reaped by the
	 * container's init before the agent read its pidfd would leave the
	 * agent with neither its pid nor its exit status. */
	char ack;
	while (read(sock, &ack, 1) < 0 && errno == EINTR)
		;
	return 0;
}

int execs_events_subscribe(void)
{
	if (events_fd >= 0)
		return 0;
	events_fd = guard_exit_events_open();
	if (events_fd < 0)
		return -errno;
	/* Every fork, exec and exit of the guest comes through here; a
	 * larger buffer loses fewer of them while the agent is busy (a lost
	 * exit falls back to the zombie, execs_end_status). */
	int size = 4 << 20;
	(void)setsockopt(events_fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size));
	return 0;
}

int execs_events_fd(void)
{
	return events_fd;
}

static struct agent_proc *tracked(struct agent *a, pid_t tgid)
{
	for (int i = 0; i < AGENT_MAX_CONTAINERS; i++)
		for (int j = 1; a->containers[i].used && j < AGENT_MAX_PROCS; j++) {
			struct agent_proc *p = &a->containers[i].procs[j];
			if (p->used && p->pidfd >= 0 && p->pid == tgid)
				return p;
		}
	return NULL;
}

/* Every thread's exit names its process; the last one's code is the
 * process's (exit_group gives them all the same; a leader that left by
 * pthread_exit comes first). */
static void exit_event(void *userdata, const struct proc_event *ev)
{
	if (ev->what != PROC_EVENT_EXIT)
		return;
	struct agent_proc *p = tracked(userdata, ev->event_data.exit.process_tgid);
	if (p) {
		p->end_status = (int)ev->event_data.exit.exit_code;
		p->end_known = true;
	}
}

void execs_events_drain(struct agent *a)
{
	(void)guard_exit_events_read(events_fd, exit_event, a);
}

void execs_events_idle(struct agent *a)
{
	for (int i = 0; i < AGENT_MAX_CONTAINERS; i++)
		for (int j = 1; a->containers[i].used && j < AGENT_MAX_PROCS; j++)
			if (a->containers[i].procs[j].used && a->containers[i].procs[j].sync_socket)
				return;
	/* The subscription stays: the proc connector delivers only to sockets
	 * of the initial network namespace, where the agent opened it at
	 * start (execs_events_subscribe from main). */
}

/* The pid a pidfd refers to, in the namespace of our /proc (fdinfo). */
static pid_t pidfd_pid(int pidfd)
{
	char path[64], line[128];
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", pidfd);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	int pid;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "Pid: %d", &pid) == 1)
			return pid;
	return -1;
}

ssize_t execs_sync_recv(struct agent_proc *p, char *buf, size_t size)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = buf, .iov_len = size};
	struct msghdr m = {.msg_iov = &iov,
			   .msg_iovlen = 1,
			   .msg_control = u.buf,
			   .msg_controllen = sizeof(u.buf)};
	ssize_t n = recvmsg(p->sync_fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return -1;
	int fd = -1;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
		    cm->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	if (fd < 0)
		return n;
	pid_t pid = pidfd_pid(fd);
	if (n != 1 || buf[0] != 'P' || p->pidfd >= 0 || pid <= 0) {
		close(fd); /* not the one message that carries a pidfd */
		errno = EAGAIN;
		return -1;
	}
	p->pidfd = fd;
	p->pid = pid;
	/* The process waits for this before it runs anything (execs_send_self). */
	if (write(p->sync_fd, "A", 1) != 1)
		agent_log(NULL, "exec %s: pid %d: ack: %s", p->exec_id, pid, strerror(errno));
	errno = EAGAIN;
	return -1;
}

int execs_end_status(const struct agent_proc *p)
{
	if (p->end_known)
		return p->end_status;
	int zombie = guard_zombie_status(p->pid);
	if (zombie >= 0)
		return zombie;
	agent_log(NULL, "exec %s: pid %d ended; its status was lost (exit events dropped)",
		  p->exec_id, p->pid);
	return W_EXITCODE(255, 0);
}

/* ---- checkpoint and restore ------------------------------------------------ */

static bool pipe_name(int fd, char *out, size_t size)
{
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode))
		return false;
	snprintf(out, size, "pipe:[%llu]", (unsigned long long)st.st_ino);
	return true;
}

/* Whether a process of the container holds the pipe NAME. */
static bool held_in(const pid_t *pids, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++) {
		char dir[64], path[128], target[64];
		snprintf(dir, sizeof(dir), "/proc/%d/fd", pids[i]);
		_cleanup_closedir_ DIR *d = opendir(dir);
		struct dirent *de;
		while (d && (de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >=
			    (int)sizeof(path))
				continue; /* not an fd number */
			ssize_t len = readlink(path, target, sizeof(target) - 1);
			if (len <= 0)
				continue;
			target[len] = 0;
			if (strcmp(target, name) == 0)
				return true;
		}
	}
	return false;
}

int execs_save_pipes(const struct agent_container *c, const char *dir)
{
	static const char *const roles[] = {"in", "out", "err"};
	pid_t pids[1024];
	size_t n = 0;
	char path[300];
	snprintf(path, sizeof(path), "%s/cgroup.procs", c->cgroup);
	_cleanup_fclose_ FILE *procs = fopen(path, "re");
	unsigned v;
	while (procs && n < ARRAY_SIZE(pids) && fscanf(procs, "%u", &v) == 1)
		pids[n++] = (pid_t)v;

	snprintf(path, sizeof(path), "%s/" EXECS_PIPES_FILE, dir);
	_cleanup_fclose_ FILE *f = fopen(path, "we");
	if (!f)
		return -errno;
	for (int j = 1; j < AGENT_MAX_PROCS; j++) {
		const struct agent_proc *p = &c->procs[j];
		int fds[3] = {p->stdin_fd, p->out_fd[0], p->out_fd[1]};
		for (int k = 0; p->used && k < 3; k++) {
			char name[48];
			if (pipe_name(fds[k], name, sizeof(name)) && held_in(pids, n, name))
				fprintf(f, "%s %s\n", roles[k], name);
		}
	}
	return fflush(f) == 0 ? 0 : -errno;
}

void execs_restore_close(struct execs_restore *r)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->fds[i] >= 0)
			close(r->fds[i]);
	r->n = 0;
}

int execs_restore_pipes(const char *images, int out, int err_fd, int first, struct execs_restore *r,
			struct error **err)
{
	char path[320], line[128], role[8];
	unsigned long long ino;
	char end;
	r->n = 0;
	snprintf(path, sizeof(path), "%s/" EXECS_PIPES_FILE, images);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (!f)
		return 0; /* images from before: no exec was ever dumped */
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		/* From the images, so untrusted: parsed, then printed afresh. */
		if (sscanf(line, "%7s pipe:[%llu%c", role, &ino, &end) != 3 || end != ']' ||
		    line[strlen(line) - 1] != ']' || r->n >= EXECS_PIPES_MAX ||
		    (strcmp(role, "in") != 0 && strcmp(role, "out") != 0 &&
		     strcmp(role, "err") != 0)) {
			execs_restore_close(r);
			return error_setx(err, EINVAL, "the checkpoint's %s is malformed: '%.60s'",
					  EXECS_PIPES_FILE, line);
		}
		int fd;
		if (role[0] == 'i') {
			int p[2];
			fd = pipe2(p, O_CLOEXEC) < 0 ? -1 : p[0];
			if (fd >= 0)
				close(p[1]); /* nobody writes: EOF */
		} else {
			fd = fcntl(role[0] == 'o' ? out : err_fd, F_DUPFD_CLOEXEC, 0);
		}
		if (fd < 0) {
			int e = error_set(err, errno, "stdio for a restored exec");
			execs_restore_close(r);
			return e;
		}
		r->fds[r->n] = fd;
		snprintf(r->args[r->n], sizeof(r->args[r->n]), "fd[%d]:pipe:[%llu]",
			 first + (int)r->n, ino);
		r->n++;
	}
	return 0;
}
