/* runc exec in the host library (exec.h): the process, its terminal, the
 * request to the shim and the wait for its exit event. */
#include "exec.h"
#include "cleanup.h"
#include "console.h"
#include "container.h"
#include "log.h"
#include "paths.h"
#include "shim-client.h"
#include "shim.h"
#include "spec.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

/* How long an exec may run before its waiter gives up: a day. */
#define EXEC_WAIT_MS (24 * 3600 * 1000)

int exec_parse_user(const char *s, uint32_t *uid, uint32_t *gid, bool *has_gid)
{
	unsigned u, g;
	int n = sscanf(s, "%u:%u", &u, &g);
	if (n < 1)
		return -EINVAL;
	*uid = u;
	*has_gid = n == 2;
	if (n == 2)
		*gid = g;
	return 0;
}

/* Replaces p's args with a copy of args[n]. */
static int exec_set_args(Cocoon__ProcessSpec *p, char *const *args, size_t n)
{
	char **copy = calloc(n + 1, sizeof(char *));
	if (!copy)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (!(copy[i] = strdup(args[i]))) {
			for (size_t j = 0; j < i; j++)
				free(copy[j]);
			free(copy);
			return -ENOMEM;
		}
	}
	for (size_t i = 0; i < p->n_args; i++)
		free(p->args[i]);
	free(p->args);
	p->args = copy;
	p->n_args = n;
	return 0;
}

/* Appends a copy of env[n] to p's environment. */
static int exec_add_env(Cocoon__ProcessSpec *p, char *const *env, size_t n)
{
	char **grown = realloc(p->env, (p->n_env + n + 1) * sizeof(char *));
	if (!grown)
		return -ENOMEM;
	p->env = grown;
	for (size_t i = 0; i < n; i++) {
		if (!(p->env[p->n_env] = strdup(env[i])))
			return -ENOMEM;
		p->n_env++;
	}
	return 0;
}

int exec_process_apply(Cocoon__ProcessSpec *p, const struct exec_options *o, struct error **err)
{
	/* As runc: without --process the terminal is --tty's, not the
	 * container's (a shell on a terminal still takes plain execs). */
	if (!o->process_file) {
		p->terminal = o->tty;
		if (o->n_args == 0)
			return error_setx(err, EINVAL, "no command to run (and no --process)");
		if (exec_set_args(p, o->args, o->n_args) < 0)
			return error_set(err, ENOMEM, "the command");
	}
	if (o->n_env && exec_add_env(p, o->env, o->n_env) < 0)
		return error_set(err, ENOMEM, "--env");
	if (o->cwd) {
		char *cwd = strdup(o->cwd);
		if (!cwd)
			return error_set(err, ENOMEM, "--cwd");
		free(p->cwd);
		p->cwd = cwd;
	}
	if (o->user) {
		uint32_t uid, gid;
		bool has_gid;
		if (exec_parse_user(o->user, &uid, &gid, &has_gid) < 0)
			return error_setx(err, EINVAL, "--user '%s': expected UID[:GID]", o->user);
		p->uid = uid;
		if (has_gid)
			p->gid = gid;
	}
	return 0;
}

/* The container's own process spec is the base, as with runc. */
static int exec_base_process(struct global_opts *g, const char *id, Cocoon__ProcessSpec **out,
			     struct error **err)
{
	_cleanup_free_ char *dir = NULL;
	struct container_state st;
	struct oci_bundle b;

	int r = container_load(g, id, &dir, &st, err);
	if (r < 0)
		return r;
	if (st.status != STATUS_RUNNING)
		return error_setx(err, EINVAL, "container %s is %s, not running", id,
				  state_status_name(st.status));
	r = spec_load(st.bundle, id, &b, err);
	if (r == 0)
		*out = TAKE_PTR(b.spec->process);
	spec_free(&b);
	return r;
}

int exec_process_build(struct global_opts *g, const char *id, const struct exec_options *o,
		       Cocoon__ProcessSpec **out, struct error **err)
{
	Cocoon__ProcessSpec *p = NULL;
	int r = o->process_file ? spec_parse_process_file(o->process_file, &p, err)
				: exec_base_process(g, id, &p, err);
	if (r >= 0 && !p)
		r = error_setx(err, EINVAL, "config.json has no process");
	if (r >= 0)
		r = exec_process_apply(p, o, err);
	if (r < 0) {
		spec_process_free(p);
		return r;
	}
	*out = p;
	return 0;
}

struct exec_wait {
	bool done;
	int status; /* wait(2)'s */
};

static void exec_on_event(void *ud, const Cocoon__Response *ev)
{
	struct exec_wait *w = ud;
	if (ev->body_case == COCOON__RESPONSE__BODY_EXIT) {
		w->done = true;
		w->status = ev->exit->wait_status;
	}
}

/* Sends the Exec request with stdio to the connected shim c; the reply only
 * says that the guest started the process. */
static int exec_send(struct agent_client *c, const char *id, Cocoon__ProcessSpec *p,
		     const int stdio[3], struct error **err)
{
	Cocoon__Request req = COCOON__REQUEST__INIT;
	Cocoon__ExecRequest ex = COCOON__EXEC_REQUEST__INIT;
	Cocoon__Response *resp = NULL;
	char exec_id[64];

	snprintf(exec_id, sizeof(exec_id), "exec-%d-%lld", getpid(), (long long)time(NULL));
	ex.id = (char *)id;
	ex.exec_id = exec_id;
	ex.process = p;
	req.body_case = COCOON__REQUEST__BODY_EXEC;
	req.exec = &ex;
	int fds[3] = {stdio[0], stdio[1], stdio[2]};
	int r = agent_call_fds(c, &req, fds, 3, &resp, SHIM_CALL_TIMEOUT_MS, err);
	if (r == 0)
		cocoon__response__free_unpacked(resp, NULL);
	return r;
}

/* Reads events from c until the exec's exit event; there is no reply to
 * wait for. Returns the exit status (exec_run's), or a negative errno. */
static int exec_wait_exit(struct agent_client *c, struct exec_wait *w, struct error **err)
{
	int r = 0;
	while (!w->done) {
		Cocoon__Response *ev = NULL;
		r = agent_read_response(c, &ev, EXEC_WAIT_MS, err);
		if (r < 0)
			break;
		exec_on_event(w, ev);
		cocoon__response__free_unpacked(ev, NULL);
	}
	if (!w->done)
		return r < 0 ? r : error_setx(err, EIO, "lost the exec's exit status");
	return WIFEXITED(w->status) ? WEXITSTATUS(w->status) : 128 + WTERMSIG(w->status);
}

int exec_run(struct global_opts *g, const char *id, Cocoon__ProcessSpec *p, const int stdio[3],
	     int started_fd, struct error **err)
{
	_cleanup_free_ char *dir = NULL;
	struct exec_wait w = {0};
	struct agent_client c;

	int r = state_dir(g->root, id, &dir, err);
	if (r < 0 || (r = shim_connect(dir, id, &c, err)) < 0) {
		if (started_fd >= 0)
			close(started_fd);
		return r;
	}
	c.on_event = exec_on_event;
	c.event_userdata = &w;
	r = exec_send(&c, id, p, stdio, err);
	if (started_fd >= 0) {
		/* A caller that is gone does not stop the exec: it is waited for
		 * all the same. */
		if (r == 0)
			(void)!write(started_fd, "OK", 2);
		close(started_fd);
	}
	if (r == 0)
		r = exec_wait_exit(&c, &w, err);
	agent_client_close(&c);
	return r;
}

/* The exec's terminal on the host (console.h). With --console-socket, a new
 * pty whose master goes there (runc exec -t: containerd's shim and conmon
 * do this) and whose slave becomes the exec's stdio; without one, the
 * terminal this command runs on, in raw mode while the process runs (the
 * guest's pty does the line discipline). The guest's pty starts at the
 * size of the host's unless the process gives one (process.consoleSize). */
struct exec_tty {
	int stdio[3];
	int slave;	      /* ours to close, -1 */
	struct termios saved; /* the own terminal's mode, to put back */
	bool restore_mode;
};

/* The pty's master goes to the engine's socket; its slave is the stdio. */
static int exec_tty_console(struct exec_tty *t, Cocoon__ProcessSpec *p, const char *socket_path,
			    struct error **err)
{
	int master = -1;
	int r = console_openpty(p->console_size, &master, &t->slave, err);
	if (r < 0)
		return r;
	r = console_send_master(socket_path, master, err);
	close(master);
	if (r < 0)
		return r;
	t->stdio[0] = t->stdio[1] = t->stdio[2] = t->slave;
	return 0;
}

/* process.consoleSize, when the process gives none: the size of the
 * terminal that is its stdout, if any. */
static int exec_tty_size(struct exec_tty *t, Cocoon__ProcessSpec *p, struct error **err)
{
	struct winsize ws;
	if (p->console_size || ioctl(t->stdio[1], TIOCGWINSZ, &ws) != 0 || !ws.ws_row || !ws.ws_col)
		return 0;
	if (!(p->console_size = calloc(1, sizeof(*p->console_size))))
		return error_set(err, ENOMEM, "exec");
	cocoon__console_size__init(p->console_size);
	p->console_size->rows = ws.ws_row;
	p->console_size->cols = ws.ws_col;
	return 0;
}

/* Sets up t for p: stdio 0, 1, 2 unless p has a terminal. Always leaves t
 * fit for exec_tty_close. */
static int exec_tty_open(struct exec_tty *t, Cocoon__ProcessSpec *p, const struct exec_options *o,
			 struct error **err)
{
	*t = (struct exec_tty){.stdio = {0, 1, 2}, .slave = -1};
	if (!p->terminal)
		return 0;
	if (o->console_socket) {
		int r = exec_tty_console(t, p, o->console_socket, err);
		if (r < 0)
			return r;
	} else if (o->detach) {
		return error_setx(err, EINVAL,
				  "--tty with --detach needs --console-socket: the pty's master "
				  "goes there (as with runc)");
	} else if (!isatty(0) || !isatty(1)) {
		return error_setx(err, ENOTTY,
				  "--tty: this command's stdin and stdout are not a terminal; "
				  "give --console-socket to get a new pty's master");
	} else if (tcgetattr(0, &t->saved) == 0) {
		struct termios raw = t->saved;
		cfmakeraw(&raw);
		t->restore_mode = tcsetattr(0, TCSANOW, &raw) == 0;
	}
	return exec_tty_size(t, p, err);
}

static void exec_tty_close(struct exec_tty *t)
{
	if (t->restore_mode)
		(void)tcsetattr(0, TCSANOW, &t->saved); /* best effort: we are leaving */
	if (t->slave >= 0)
		close(t->slave);
	t->slave = -1;
	t->restore_mode = false;
}

/* The detached exec's carrier, a child of ours in its own session: runs
 * the exec, tells the parent through started_fd once it started, and exits
 * with its status. Never returns. */
static void exec_child(struct global_opts *g, const char *id, Cocoon__ProcessSpec *p,
		       const struct exec_tty *t, int started_fd)
{
	_cleanup_error_ struct error *err = NULL;
	(void)setsid(); /* a fresh child leads no group: cannot fail */
	/* On a terminal the caller's stdio is not the exec's: let it go, as
	 * runc exec -d does, so that whoever reads it sees EOF. */
	int null = t->slave >= 0 ? open("/dev/null", O_RDWR | O_CLOEXEC) : -1;
	for (int fd = 0; null >= 0 && fd < 3; fd++)
		(void)dup2(null, fd); /* else the caller's stdio stays: no harm */
	int code = exec_run(g, id, p, t->stdio, started_fd, &err);
	if (code < 0 && err) {
		error_wrap(&err, "exec %s", id);
		log_error(err->msg); /* nobody else will: the caller has gone */
	}
	_exit(code < 0 ? 255 : code);
}

/* --detach: forks the carrier, closes t on our side, waits until the exec
 * started, and writes the carrier's pid to pid_file. p stays the caller's.
 * Returns 0 or a negative errno with *err set. */
static int exec_detached(struct global_opts *g, const char *id, Cocoon__ProcessSpec *p,
			 struct exec_tty *t, const char *pid_file, struct error **err)
{
	int pp[2];
	if (pipe2(pp, O_CLOEXEC) < 0)
		return error_set(err, errno, "pipe");
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		close(pp[0]);
		exec_child(g, id, p, t, pp[1]);
	}
	close(pp[1]);
	exec_tty_close(t); /* the carrier has its own copy */
	char ok[3] = "";
	ssize_t n = pid < 0 ? -1 : read(pp[0], ok, 2);
	close(pp[0]);
	if (pid < 0 || n != 2) {
		if (pid > 0)
			(void)waitpid(pid, NULL, 0); /* its status is told in its message */
		return error_setx(err, EIO, "the process did not start");
	}
	if (pid_file) {
		char buf[32];
		int len = snprintf(buf, sizeof(buf), "%d", pid);
		return write_file_atomic(pid_file, buf, (size_t)len, 0644, err);
	}
	return 0;
}

int exec_container(struct global_opts *g, const char *id, const struct exec_options *o,
		   struct error **err)
{
	Cocoon__ProcessSpec *p = NULL;
	struct exec_tty term;

	int r = exec_process_build(g, id, o, &p, err);
	if (r >= 0 && (r = exec_tty_open(&term, p, o, err)) < 0)
		exec_tty_close(&term);
	if (r < 0) {
		spec_process_free(p);
		(void)error_wrap(err, "exec %s", id);
		return r;
	}
	if (o->detach)
		r = exec_detached(g, id, p, &term, o->pid_file, err);
	else
		r = exec_run(g, id, p, term.stdio, -1, err);
	exec_tty_close(&term);
	spec_process_free(p);
	if (r < 0)
		(void)error_wrap(err, "exec %s", id);
	return r;
}
