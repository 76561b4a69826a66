/* exec: an extra process in a running container, with its own stdio and
 * exit status. The caller's stdin/stdout/stderr are handed to the shim with
 * SCM_RIGHTS; the shim relays them to the guest. */
#include "commands.h"
#include "cleanup.h"
#include "console.h"
#include "container.h"
#include "shim.h"
#include "spec.h"
#include "paths.h"

#include <fcntl.h>
#include <assert.h>
#include <getopt.h>
#include <json-c/json.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>

struct exec_wait {
	bool done;
	int status;
};

static void on_exit_event(void *ud, const Cocoon__Response *ev)
{
	struct exec_wait *w = ud;
	if (ev->body_case == COCOON__RESPONSE__BODY_EXIT) {
		w->done = true;
		w->status = ev->exit->wait_status;
	}
}

static int exec_usage(void)
{
	printf("Usage: cocoon exec [options] CONTAINER_ID [COMMAND [ARG...]]\n"
	       "\n"
	       "Runs an extra process in a running container and exits with its status.\n"
	       "\n"
	       "  -p, --process FILE   the process as OCI JSON (instead of COMMAND)\n"
	       "  -d, --detach         return once started; the pid in --pid-file exits with it\n"
	       "      --pid-file FILE  write that pid here\n"
	       "  -e, --env NAME=VAL   add to the environment (repeatable)\n"
	       "      --cwd DIR        working directory\n"
	       "  -u, --user UID[:GID] run as this user\n"
	       "  -t, --tty            on a terminal: a new pty whose master goes to\n"
	       "                       --console-socket, or else this command's own terminal\n"
	       "      --console-socket S  send the pty master here (with --tty or a\n"
	       "                       --process whose terminal is true)\n");
	return 0;
}

/* The container's own process spec is the base, as with runc. */
static int base_process(struct global_opts *g, const char *id, Cocoon__ProcessSpec **out,
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
	if (r == 0) {
		*out = TAKE_PTR(b.spec->process);
	}
	spec_free(&b);
	return r;
}

static int exec_run(struct global_opts *g, const char *id, Cocoon__ProcessSpec *p,
		    const int stdio[3], int started_fd, struct error **err)
{
	Cocoon__Request req = COCOON__REQUEST__INIT;
	Cocoon__ExecRequest ex = COCOON__EXEC_REQUEST__INIT;
	Cocoon__Response *resp = NULL;
	_cleanup_free_ char *dir = NULL;
	struct exec_wait w = {0};
	struct agent_client c;
	char exec_id[64];

	snprintf(exec_id, sizeof(exec_id), "exec-%d-%lld", getpid(), (long long)time(NULL));
	int r = state_dir(g->root, id, &dir, err);
	if (r < 0 || (r = shim_connect(dir, id, &c, err)) < 0)
		return r;
	c.on_event = on_exit_event;
	c.event_userdata = &w;
	ex.id = (char *)id;
	ex.exec_id = exec_id;
	ex.process = p;
	req.body_case = COCOON__REQUEST__BODY_EXEC;
	req.exec = &ex;
	int fds[3] = {stdio[0], stdio[1], stdio[2]};
	r = agent_call_fds(&c, &req, fds, 3, &resp, SHIM_CALL_TIMEOUT_MS, err);
	if (r < 0) {
		agent_client_close(&c);
		return r;
	}
	cocoon__response__free_unpacked(resp, NULL);
	if (started_fd >= 0) {
		if (write(started_fd, "OK", 2) < 0)
			r = -errno;
		close(started_fd);
	}
	/* Then wait for the exit event; there is no reply to wait for. */
	while (!w.done) {
		Cocoon__Response *ev = NULL;
		r = agent_read_response(&c, &ev, 24 * 3600 * 1000, err);
		if (r < 0)
			break;
		on_exit_event(&w, ev);
		cocoon__response__free_unpacked(ev, NULL);
	}
	agent_client_close(&c);
	if (!w.done)
		return r < 0 ? r : error_setx(err, EIO, "lost the exec's exit status");
	return WIFEXITED(w.status) ? WEXITSTATUS(w.status) : 128 + WTERMSIG(w.status);
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

static int exec_tty_open(struct exec_tty *t, Cocoon__ProcessSpec *p, const char *console_socket,
			 bool detach, struct error **err)
{
	int master = -1;
	*t = (struct exec_tty){.stdio = {0, 1, 2}, .slave = -1};
	if (!p->terminal)
		return 0;
	if (console_socket) {
		int r = console_openpty(p->console_size, &master, &t->slave, err);
		if (r < 0)
			return r;
		r = console_send_master(console_socket, master, err);
		close(master);
		if (r < 0)
			return r;
		t->stdio[0] = t->stdio[1] = t->stdio[2] = t->slave;
	} else if (detach) {
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
	struct winsize ws;
	if (!p->console_size && ioctl(t->stdio[1], TIOCGWINSZ, &ws) == 0 && ws.ws_row &&
	    ws.ws_col) {
		if (!(p->console_size = calloc(1, sizeof(*p->console_size))))
			return error_set(err, ENOMEM, "exec");
		cocoon__console_size__init(p->console_size);
		p->console_size->rows = ws.ws_row;
		p->console_size->cols = ws.ws_col;
	}
	return 0;
}

static void exec_tty_close(struct exec_tty *t)
{
	if (t->restore_mode)
		tcsetattr(0, TCSANOW, &t->saved);
	if (t->slave >= 0)
		close(t->slave);
	t->slave = -1;
	t->restore_mode = false;
}

static int apply_user(Cocoon__ProcessSpec *p, const char *user)
{
	unsigned uid, gid;
	int n = sscanf(user, "%u:%u", &uid, &gid);
	if (n < 1)
		return -1;
	p->uid = uid;
	if (n == 2)
		p->gid = gid;
	return 0;
}

int cmd_exec(struct global_opts *g, int argc, char **argv, struct error **errp)
{
	static const struct option opts[] = {{"process", required_argument, NULL, 'p'},
					     {"detach", no_argument, NULL, 'd'},
					     {"pid-file", required_argument, NULL, 'P'},
					     {"env", required_argument, NULL, 'e'},
					     {"cwd", required_argument, NULL, 'C'},
					     {"user", required_argument, NULL, 'u'},
					     {"tty", no_argument, NULL, 't'},
					     {"console-socket", required_argument, NULL, 'c'},
					     {"help", no_argument, NULL, 'h'},
					     {}};
	_cleanup_error_ struct error *err = NULL;
	const char *process_file = NULL, *pid_file = NULL, *cwd = NULL, *user = NULL,
		   *console_socket = NULL;
	char *envs[64];
	size_t n_envs = 0;
	bool detach = false, tty = false;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+p:de:u:th", opts, NULL)) != -1) {
		switch (c) {
		case 'p':
			process_file = optarg;
			break;
		case 'd':
			detach = true;
			break;
		case 'P':
			pid_file = optarg;
			break;
		case 'e':
			assert(optarg); /* a required argument */
			if (n_envs < ARRAY_SIZE(envs))
				envs[n_envs++] = optarg;
			break;
		case 'C':
			cwd = optarg;
			break;
		case 'u':
			user = optarg;
			break;
		case 't':
			tty = true;
			break;
		case 'c':
			console_socket = optarg;
			break;
		case 'h':
			return exec_usage();
		default:
			return 2;
		}
	}
	if (optind >= argc)
		return usage_error("exec", "expects a container ID");
	const char *id = argv[optind];
	Cocoon__ProcessSpec *p = NULL;
	int r = process_file ? spec_parse_process_file(process_file, &p, &err)
			     : base_process(g, id, &p, &err);
	if (r >= 0 && !p)
		r = error_setx(&err, EINVAL, "config.json has no process");
	if (r < 0) {
		error_wrap(&err, "exec %s", id);
		(void)cli_fail(errp, &err); /* the exit status is 1, after the clean-up */
		spec_process_free(p);
		return 1;
	}
	/* As runc: without --process the terminal is --tty's, not the
	 * container's (a shell on a terminal still takes plain execs). */
	if (!process_file)
		p->terminal = tty;
	if (!process_file) {
		if (optind + 1 >= argc) {
			spec_process_free(p);
			return usage_error("exec", "expects a command (or --process)");
		}
		for (size_t i = 0; i < p->n_args; i++)
			free(p->args[i]);
		free(p->args);
		p->n_args = (size_t)(argc - optind - 1);
		p->args = calloc(p->n_args + 1, sizeof(char *));
		if (!p->args) {
			p->n_args = 0;
			spec_process_free(p);
			return cli_failf(errp, "%s", "exec: out of memory");
		}
		for (size_t i = 0; i < p->n_args; i++)
			p->args[i] = strdup(argv[optind + 1 + i]);
	}
	if (n_envs) {
		char **grown = realloc(p->env, (p->n_env + n_envs + 1) * sizeof(char *));
		if (grown) {
			p->env = grown;
			for (size_t i = 0; i < n_envs; i++)
				p->env[p->n_env++] = strdup(envs[i]);
		}
	}
	if (cwd) {
		free(p->cwd);
		p->cwd = strdup(cwd);
	}
	if (user && apply_user(p, user) < 0) {
		spec_process_free(p);
		return usage_error("exec", "--user must be UID[:GID]");
	}

	struct exec_tty term;
	if (exec_tty_open(&term, p, console_socket, detach, &err) < 0) {
		exec_tty_close(&term);
		spec_process_free(p);
		error_wrap(&err, "exec %s", id);
		return cli_fail(errp, &err);
	}
	if (!detach) {
		r = exec_run(g, id, p, term.stdio, -1, &err);
		exec_tty_close(&term);
		spec_process_free(p);
		if (r < 0) {
			error_wrap(&err, "exec %s", id);
			return cli_fail(errp, &err);
		}
		return r;
	}
	/* Detached: a child of ours carries the exec and exits with its
	 * status; that child's pid goes to --pid-file. */
	int pp[2];
	if (pipe2(pp, O_CLOEXEC) < 0) {
		exec_tty_close(&term);
		spec_process_free(p);
		return 1;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		close(pp[0]);
		(void)setsid(); /* a fresh child leads no group: cannot fail */
		/* On a terminal the caller's stdio is not the exec's: let it
		 * go, as runc exec -d does, so that whoever reads it sees EOF. */
		int null = term.slave >= 0 ? open("/dev/null", O_RDWR | O_CLOEXEC) : -1;
		for (int fd = 0; null >= 0 && fd < 3; fd++)
			(void)dup2(null, fd); /* else the caller's stdio stays: no harm */
		int code = exec_run(g, id, p, term.stdio, pp[1], &err);
		if (code < 0 && err)
			fprintf(stderr, "cocoon: exec %s: %s\n", id, err->msg);
		_exit(code < 0 ? 255 : code);
	}
	close(pp[1]);
	exec_tty_close(&term);
	spec_process_free(p);
	char ok[3] = "";
	ssize_t n = read(pp[0], ok, 2);
	close(pp[0]);
	if (pid < 0 || n != 2) {
		if (pid > 0)
			waitpid(pid, NULL, 0);
		return cli_failf(errp, "%s", "exec: the process did not start");
	}
	if (pid_file) {
		char buf[32];
		int len = snprintf(buf, sizeof(buf), "%d", pid);
		if (write_file_atomic(pid_file, buf, (size_t)len, 0644, &err) < 0) {
			return cli_fail(errp, &err);
		}
	}
	return 0;
}
