/* The keeper (shim-keeper.h).
 *
 * The engines wait on the shim's pid for the container's exit status, and a
 * VM must not outlive the process that started it (QEMU has
 * PR_SET_PDEATHSIG). Were the shim of a pod's sandbox the VM's owner, the
 * sandbox's end would take every member with it. So the shim forks a keeper
 * first: the keeper boots the VM, serves the container's control socket and
 * the members' shims, and tells the shim the container's exit status over a
 * socket pair; the shim only waits, passes on the signals it gets, and
 * exits with that status. When the container ends while members run, the
 * shim exits and the keeper goes on until the last member's shim has gone;
 * then it takes the VM down. As Kata separates a sandbox's lifetime from
 * that of its pause container, but with one process per pod and no daemon.
 *
 * Crashes: a killed keeper takes QEMU with it (PDEATHSIG); the shim sees
 * the socket pair close and records the container stopped (137), members'
 * shims see their channel close and do the same. A killed shim: the keeper
 * sees the pair close and kills the container in the guest (members run
 * on). A killed member's shim: the keeper kills that container. */
#include "shim-keeper.h"
#include "shim-forward.h"
#include "cleanup.h"
#include "log.h"
#include "paths.h"
#include "pod.h"
#include "state.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* What the keeper tells the shim: the container's exit code, and whether
 * the keeper ends now (then the shim waits for it, so that when the engine
 * sees the shim gone, the VM is gone too). */
struct keeper_word {
	int32_t exit_code;
	int32_t ending;
};

bool shim_wants_keeper(const struct shim_args *a)
{
	/* COCOON_KEEPER=off: the shim keeps the VM itself, for make
	 * bench-keeper to compare (bench/keeper.py); such a sandbox's VM ends
	 * with it, members and all. */
	const char *knob = getenv("COCOON_KEEPER");
	if (knob && strcmp(knob, "off") == 0)
		return false;
	return !a->pod && !a->vmsnap && !a->vmsnap_state && pod_may_host_members(a->bundle);
}

static void null_stdio(void)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	for (int fd = 0; null >= 0 && fd < 3; fd++)
		if (fd != null)
			(void)dup2(null, fd); /* a failure leaves that fd as it was */
	if (null > 2)
		close(null);
}

/* The keeper died without a word: the container went with its VM. */
static int keeper_lost(struct shim *s, pid_t keeper)
{
	struct container_state st;
	int status;
	while (waitpid(keeper, &status, 0) < 0 && errno == EINTR)
		;
	if (state_read(s->args->dir, &st, NULL) < 0)
		return 128 + SIGKILL; /* a create that failed: its caller removes the rest */
	if (st.status == STATUS_STOPPED && st.shim_pid == getpid())
		return st.exit_status; /* recorded before the keeper went */
	st.status = STATUS_STOPPED;
	st.exit_status = 128 + SIGKILL;
	(void)state_write(s->args->dir, &st, NULL); /* nothing else to tell it to */
	return st.exit_status;
}

static void __attribute__((noreturn)) waiter_main(struct shim *s, int fd, pid_t keeper)
{
	sigset_t mask;
	sigemptyset(&mask);
	int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
		sigaddset(&mask, sigs[i]);
	(void)sigprocmask(SIG_BLOCK, &mask, NULL); /* cannot fail: a valid set */
	int sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	/* The engine's stdio is the keeper's to hold: an engine that reads
	 * create's output until EOF must not wait on this process. */
	null_stdio();
	close(s->args->ready_fd);
	for (;;) {
		struct pollfd p[2] = {{.fd = fd, .events = POLLIN},
				      {.fd = sig_fd, .events = POLLIN}};
		if (poll(p, sig_fd >= 0 ? 2 : 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			_exit(keeper_lost(s, keeper));
		}
		struct signalfd_siginfo si;
		while (sig_fd >= 0 && read(sig_fd, &si, sizeof(si)) == sizeof(si))
			kill(keeper, (int)si.ssi_signo); /* the keeper forwards it */
		if (!p[0].revents)
			continue;
		struct keeper_word w;
		ssize_t n = recv(fd, &w, sizeof(w), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof(w))
			_exit(keeper_lost(s, keeper));
		if (w.ending)
			while (waitpid(keeper, NULL, 0) < 0 && errno == EINTR)
				;
		_exit(w.exit_code & 0xff);
	}
}

/* Closes every fd above stdio but KEEP_A and KEEP_B (either may be
 * stdio itself). Without close_range (Linux < 5.9) they stay, as they did
 * before the keeper. */
static void close_all_but(int keep_a, int keep_b)
{
	int keep[2] = {keep_a < keep_b ? keep_a : keep_b, keep_a < keep_b ? keep_b : keep_a};
	unsigned from = 3;
	for (int i = 0; i < 2; i++) {
		if (keep[i] < (int)from)
			continue;
		if ((unsigned)keep[i] > from)
			(void)close_range(from, (unsigned)keep[i] - 1, 0);
		from = (unsigned)keep[i] + 1;
	}
	(void)close_range(from, ~0U, 0);
}

int shim_keeper_fork(struct shim *s)
{
	int sp[2];
	/* A shim started with stdio closed: /dev/null there, so that no fd
	 * of the keeper's (the channel, the sockets) lands on 0-2, which are
	 * let go at the hand-off. */
	for (int fd = 0; fd < 3; fd++)
		if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd)
			return -EBADF;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		return -errno;
	/* Above stdio, which the shim may have been started without: fds 0-2
	 * are the container's (or /dev/null's) later. */
	for (int i = 0; i < 2; i++) {
		if (sp[i] > 2)
			continue;
		int fd = fcntl(sp[i], F_DUPFD_CLOEXEC, 3);
		if (fd < 0) {
			int e = errno;
			close(sp[0]);
			close(sp[1]);
			return -e;
		}
		close(sp[i]);
		sp[i] = fd;
	}
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(sp[0]);
		close(sp[1]);
		return -e;
	}
	if (pid > 0) {
		close(sp[1]);
		waiter_main(s, sp[0], pid);
	}
	close(sp[0]);
	/* What the engine passed create (conmon's and containerd's pipes,
	 * sockets) stays with the shim, which holds it as long as its
	 * container, as before the keeper: the keeper of a pod outlives its
	 * sandbox, and must not hold the engine's pipes after the engine saw
	 * the sandbox exit (rev16b M3). Its own fds are made after this. */
	close_all_but(s->args->ready_fd, sp[1]);
	s->keeper = true;
	s->waiter_fd = sp[1];
	s->dir_fd = open(s->args->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	/* The pod share's mounts are in a namespace of the keeper's own
	 * (pod_share_prepare); the directory is removed from this one. */
	s->host_mnt_fd = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
	_cleanup_error_ struct error *err = NULL;
	if (state_keeper_write(s->args->dir, getpid(), proc_start_time(getpid()), false, &err) < 0)
		log_warning("container %s: %s", s->args->id, err->msg);
	return 0;
}

static void tell_shim(struct shim *s, bool ending)
{
	struct keeper_word w = {.exit_code = s->exit_code, .ending = ending};
	if (s->waiter_fd < 0)
		return;
	(void)send(s->waiter_fd, &w, sizeof(w), MSG_NOSIGNAL); /* it may be gone */
	close(s->waiter_fd);
	s->waiter_fd = -1;
}

void shim_keeper_lost_shim(struct shim *s)
{
	close(s->waiter_fd);
	s->waiter_fd = -1;
	if (!s->exited) {
		s->exited = true;
		s->exit_code = 128 + SIGKILL;
	}
}

/* The engine's stdio of the container that ended: the output sinks' own
 * opens of its pipes (shim-output.c), the pty's slave, the execs' stdio
 * (their processes went with the container), and fds 0-2. The engine reads
 * its pipes until EOF, which never came while a pod's members kept the
 * keeper: containerd's task delete waited on it, conmon until its timeout
 * (review10 6). */
static void drop_engine_stdio(struct shim *s)
{
	shim_sink_close(&s->out_sink);
	shim_sink_close(&s->err_sink);
	if (s->in_fd > 2)
		close(s->in_fd); /* the pty's slave: also out_fd, err_fd and tty.fd */
	s->in_fd = s->out_fd = s->err_fd = s->tty.fd = -1;
	s->stdin_open = false;
	shim_execs_abandon(s);
	null_stdio();
}

void shim_keeper_hand_off(struct shim *s)
{
	_cleanup_error_ struct error *err = NULL;
	/* Ended by `delete --force` or by its shim's death, not by itself:
	 * it must not run on in the VM. Its late events are dropped. */
	if (!s->own_exit_seen)
		shim_member_gone(s, s->args->id);
	s->st.status = STATUS_STOPPED;
	s->st.exit_status = s->exit_code;
	if (state_write(s->args->dir, &s->st, &err) < 0 ||
	    state_keeper_write(s->args->dir, getpid(), proc_start_time(getpid()), true, &err) < 0)
		log_warning("container %s: %s", s->args->id, err->msg);
	tell_shim(s, false);
	drop_engine_stdio(s);
	s->own_mib = 0;
	s->keeping = true;
}

/* The path of the keeper's directory now, in the host's mount namespace:
 * the id's, or the name a delete moved it to (pod_kept_dir); the one that
 * is s->dir_fd's directory, else NULL. */
static char *own_dir_now(struct shim *s)
{
	struct stat mine, there;
	char *paths[2] = {strdup(s->args->dir), pod_kept_dir(s->args->dir, getpid())};
	char *found = NULL;
	for (int i = 0; i < 2; i++) {
		if (!found && paths[i] && fstat(s->dir_fd, &mine) == 0 &&
		    lstat(paths[i], &there) == 0 && S_ISDIR(there.st_mode) &&
		    mine.st_dev == there.st_dev && mine.st_ino == there.st_ino)
			found = paths[i];
		else
			free(paths[i]);
	}
	return found;
}

void shim_keeper_end(struct shim *s)
{
	if (!s->keeping)
		tell_shim(s, true);
	if (s->dir_fd < 0)
		return; /* could not be opened: a create that failed removes it */
	/* Under the directory's lock: a delete meanwhile left it to us. */
	while (flock(s->dir_fd, LOCK_EX) < 0 && errno == EINTR)
		;
	(void)unlinkat(s->dir_fd, STATE_KEEPER_FILE, 0); /* ours: nothing else removes it */
	if (!s->keeping || faccessat(s->dir_fd, STATE_FILE, F_OK, 0) == 0 || errno != ENOENT)
		return;
	/* In the keeper's namespace the last member's rootfs may still be
	 * mounted in the pod share: never walk it there. (setns: the
	 * guard's thread has been joined by now.) */
	if (s->host_mnt_fd < 0 || setns(s->host_mnt_fd, CLONE_NEWNS) < 0) {
		log_warning("container %s: %s is left: back to the host's mount namespace: %s",
			    s->args->id, s->args->dir, strerror(errno));
		return;
	}
	_cleanup_free_ char *dir = own_dir_now(s);
	_cleanup_error_ struct error *err = NULL;
	if (!dir)
		log_warning("container %s: its directory is no longer at %s", s->args->id,
			    s->args->dir);
	else if (remove_tree(dir, &err) < 0)
		log_warning("container %s: %s", s->args->id, err->msg);
}
