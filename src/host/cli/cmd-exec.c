/* exec: an extra process in a running container, with its own stdio and
 * exit status. The caller's stdin/stdout/stderr are handed to the shim with
 * SCM_RIGHTS; the shim relays them to the guest. */
#include "commands.h"
#include "cleanup.h"
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
#include <sys/wait.h>
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
	       "  -u, --user UID[:GID] run as this user\n");
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

static int exec_run(struct global_opts *g, const char *id, Cocoon__ProcessSpec *p, int started_fd,
		    struct error **err)
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
	int fds[3] = {0, 1, 2};
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
	const char *process_file = NULL, *pid_file = NULL, *cwd = NULL, *user = NULL;
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
	if (p->terminal) {
		(void)cli_failf(errp, "%s",
				"exec: a terminal for exec (--tty) is not supported yet");
		spec_process_free(p);
		return 1;
	}
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

	if (!detach) {
		r = exec_run(g, id, p, -1, &err);
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
		spec_process_free(p);
		return 1;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		close(pp[0]);
		(void)setsid(); /* a fresh child leads no group: cannot fail */
		int code = exec_run(g, id, p, pp[1], &err);
		if (code < 0 && err)
			fprintf(stderr, "cocoon: exec %s: %s\n", id, err->msg);
		_exit(code < 0 ? 255 : code);
	}
	close(pp[1]);
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
