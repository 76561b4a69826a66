/* Child processes run on behalf of requests (criu and friends). PID 1 never
 * waits for one: their output arrives through poll() and their exit through
 * the SIGCHLD signalfd, and the request is answered from the done callback. */
#include "jobs.h"
#include "agent.h"
#include "channel.h"
#include "cleanup.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>

/* Output beyond this is dropped; CRIU's own logs go to files instead. */
#define JOB_OUTPUT_MAX (256 * 1024)
/* How long a job's output is still read after its process ended: a process
 * it forked and left behind may hold the pipe open for ever, and the job
 * (its request's answer) must not wait on that. ms. */
#define JOB_DRAIN_MS 2000

static void job_finish_if_done(struct agent *a, int slot);

int agent_job_start(struct agent *a, char *const argv[], agent_job_done_fn done, void *userdata,
		    struct error **err)
{
	return agent_job_start_ex(a, argv, NULL, done, userdata, err);
}

static void child_setup(const struct agent_job_options *o)
{
	if (!o)
		return;
	if (o->oom_victim) {
		int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, "1000", 4) != 4)
			dprintf(2, "oom_score_adj: %s\n", strerror(errno));
		if (fd >= 0)
			close(fd);
	}
	if (o->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		dprintf(2, "no_new_privs: %s\n", strerror(errno));
		_exit(126);
	}
	if (o->cgroup) {
		char path[256], buf[32];
		snprintf(path, sizeof(path), "%s/cgroup.procs", o->cgroup);
		int fd = open(path, O_WRONLY | O_CLOEXEC);
		int n = snprintf(buf, sizeof(buf), "%d", getpid());
		if (fd < 0 || write(fd, buf, (size_t)n) != n)
			dprintf(2, "join cgroup %s: %s\n", o->cgroup, strerror(errno));
		if (fd >= 0)
			close(fd);
		if (o->cgroupns && unshare(CLONE_NEWCGROUP) < 0) {
			dprintf(2, "a cgroup namespace at %s: %s\n", o->cgroup, strerror(errno));
			_exit(126);
		}
	}
	if (o->netns) {
		int ns = open(o->netns, O_RDONLY | O_CLOEXEC);
		if (ns < 0 || setns(ns, CLONE_NEWNET) < 0) {
			dprintf(2, "enter the network namespace %s: %s\n", o->netns,
				strerror(errno));
			_exit(126);
		}
		close(ns);
	}
	for (size_t i = 0; i < o->n_ns_fds; i++) {
		if (o->ns_fds[i] >= 0 && setns(o->ns_fds[i], 0) < 0) {
			dprintf(2, "enter the pod's namespace %zu: %s\n", i, strerror(errno));
			_exit(126);
		}
	}
	/* Move the passed fds out of the way first, then into 3, 4, ... */
	int moved[AGENT_JOB_MAX_PASS_FDS];
	size_t n = o->n_pass_fds < AGENT_JOB_MAX_PASS_FDS ? o->n_pass_fds : AGENT_JOB_MAX_PASS_FDS;
	for (size_t i = 0; i < n; i++)
		moved[i] = fcntl(o->pass_fds[i], F_DUPFD_CLOEXEC, 100);
	for (size_t i = 0; i < n; i++) {
		/* dup2 clears close-on-exec */
		if (moved[i] < 0 || dup2(moved[i], 3 + (int)i) < 0) {
			dprintf(2, "pass fd %zu: %s\n", i, strerror(errno));
			_exit(126);
		}
	}
}

int agent_job_start_ex(struct agent *a, char *const argv[], const struct agent_job_options *o,
		       agent_job_done_fn done, void *userdata, struct error **err)
{
	int slot = -1, p[2];

	for (int i = 0; i < AGENT_MAX_JOBS && slot < 0; i++)
		if (!a->jobs[i])
			slot = i;
	if (slot < 0)
		return error_setx(err, EAGAIN, "too many jobs running (%d)", AGENT_MAX_JOBS);
	if (pipe2(p, O_CLOEXEC) < 0)
		return error_set(err, errno, "pipe");

	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return error_set(err, errno, "fork %s", argv[0]);
	}
	if (pid == 0) {
		sigset_t all;
		sigemptyset(&all);
		(void)sigprocmask(SIG_SETMASK, &all, NULL); /* cannot fail: a valid set */
		int devnull = open("/dev/null", O_RDONLY);
		if (dup2(devnull >= 0 ? devnull : p[1], 0) < 0 || dup2(p[1], 1) < 0 ||
		    dup2(p[1], 2) < 0)
			_exit(126);
		child_setup(o);
		execv(argv[0], argv);
		dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(p[1]);
	(void)fcntl(p[0], F_SETFL, O_NONBLOCK); /* cannot fail on an open fd */

	struct agent_job *job = calloc(1, sizeof(*job));
	if (!job) {
		kill(pid, SIGKILL);
		close(p[0]);
		return error_set(err, ENOMEM, "job");
	}
	job->pid = pid;
	job->out_fd = p[0];
	job->done = done;
	job->userdata = userdata;
	if (o && o->timeout_ms > 0)
		job->deadline_ms = now_ms() + o->timeout_ms;
	if (o && o->watch && o->watch_ms > 0) {
		job->watch = o->watch;
		job->watch_ms = o->watch_ms;
		job->next_watch_ms = now_ms() + o->watch_ms;
	}
	a->jobs[slot] = job;
	return pid;
}

static void sooner(long long *next, long long in_ms)
{
	if (*next < 0 || in_ms < *next)
		*next = in_ms;
}

int agent_jobs_check_deadlines(struct agent *a)
{
	long long now = now_ms(), next = -1;
	for (int i = 0; i < AGENT_MAX_JOBS; i++) {
		struct agent_job *j = a->jobs[i];
		if (j && j->exited && j->out_fd >= 0 && now >= j->drain_until_ms) {
			close(j->out_fd);
			j->out_fd = -1;
			job_finish_if_done(a, i);
			continue;
		}
		if (j && j->exited && j->out_fd >= 0)
			sooner(&next, j->drain_until_ms - now);
		if (!j || j->exited)
			continue;
		if (j->watch && now >= j->next_watch_ms) {
			j->watch(j);
			j->next_watch_ms = now + j->watch_ms;
		}
		if (j->watch)
			sooner(&next, j->next_watch_ms - now);
		if (j->deadline_ms == 0)
			continue;
		if (now >= j->deadline_ms) {
			/* The last resort: a damaged image can make CRIU loop
			 * forever, and a watch may not see every way to stall. */
			j->timed_out = true;
			kill(j->pid, SIGKILL);
			j->deadline_ms = 0;
			continue;
		}
		sooner(&next, j->deadline_ms - now);
	}
	return (int)next;
}

static void job_finish_if_done(struct agent *a, int slot)
{
	struct agent_job *job = a->jobs[slot];

	if (!job->exited || job->out_fd >= 0)
		return;
	a->jobs[slot] = NULL;
	job->done(job, job->status);
	free(job->out);
	free(job);
}

void agent_job_read(struct agent *a, struct agent_job *job)
{
	char buf[4096];

	for (;;) {
		ssize_t n = read(job->out_fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			close(job->out_fd);
			job->out_fd = -1;
			break;
		}
		size_t keep = (size_t)n;
		if (job->out_len + keep > JOB_OUTPUT_MAX)
			keep = JOB_OUTPUT_MAX - job->out_len;
		if (keep == 0)
			continue;
		char *grown = realloc(job->out, job->out_len + keep + 1);
		if (!grown)
			continue;
		job->out = grown;
		memcpy(job->out + job->out_len, buf, keep);
		job->out_len += keep;
		job->out[job->out_len] = 0;
	}
	for (int i = 0; i < AGENT_MAX_JOBS; i++)
		if (a->jobs[i] == job) {
			job_finish_if_done(a, i);
			break;
		}
}

bool agent_job_exited(struct agent *a, pid_t pid, int status)
{
	for (int i = 0; i < AGENT_MAX_JOBS; i++) {
		if (a->jobs[i] && a->jobs[i]->pid == pid) {
			a->jobs[i]->exited = true;
			a->jobs[i]->status = status;
			a->jobs[i]->drain_until_ms = now_ms() + JOB_DRAIN_MS;
			job_finish_if_done(a, i);
			return true;
		}
	}
	return false;
}
