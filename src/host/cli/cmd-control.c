/* kill, pause, resume and ps: the options, then one library call each. */
#include "commands.h"
#include "cleanup.h"
#include "container.h"

#include <ctype.h>
#include <getopt.h>
#include <json-c/json.h>
#include <signal.h>
#include <string.h>

int parse_signal(const char *s)
{
	static const struct {
		const char *name;
		int sig;
	} names[] = {
		{"HUP", SIGHUP},       {"INT", SIGINT},	  {"QUIT", SIGQUIT},   {"ILL", SIGILL},
		{"TRAP", SIGTRAP},     {"ABRT", SIGABRT}, {"BUS", SIGBUS},     {"FPE", SIGFPE},
		{"KILL", SIGKILL},     {"USR1", SIGUSR1}, {"SEGV", SIGSEGV},   {"USR2", SIGUSR2},
		{"PIPE", SIGPIPE},     {"ALRM", SIGALRM}, {"TERM", SIGTERM},   {"CHLD", SIGCHLD},
		{"CONT", SIGCONT},     {"STOP", SIGSTOP}, {"TSTP", SIGTSTP},   {"TTIN", SIGTTIN},
		{"TTOU", SIGTTOU},     {"URG", SIGURG},	  {"XCPU", SIGXCPU},   {"XFSZ", SIGXFSZ},
		{"VTALRM", SIGVTALRM}, {"PROF", SIGPROF}, {"WINCH", SIGWINCH}, {"IO", SIGIO},
		{"PWR", SIGPWR},       {"SYS", SIGSYS}};
	if (isdigit((unsigned char)s[0])) {
		char *end;
		long n = strtol(s, &end, 10);
		return *end == 0 && n > 0 && n < 65 ? (int)n : -1;
	}
	if (strncasecmp(s, "SIG", 3) == 0)
		s += 3;
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (strcasecmp(s, names[i].name) == 0)
			return names[i].sig;
	return -1;
}

int cmd_kill(struct global_opts *g, int argc, char **argv, struct error **errp)
{
	static const struct option opts[] = {
		{"all", no_argument, NULL, 'a'}, {"help", no_argument, NULL, 'h'}, {}};
	_cleanup_error_ struct error *err = NULL;
	bool all = false;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "ah", opts, NULL)) != -1) {
		switch (c) {
		case 'a':
			all = true;
			break;
		case 'h':
			printf("Usage: cocoon kill [--all] CONTAINER_ID [SIGNAL]\n\n"
			       "Sends SIGNAL (default TERM; a name or a number) to the container's\n"
			       "process, or with --all to all of its processes.\n");
			return 0;
		default:
			return 2;
		}
	}
	if (optind >= argc || argc - optind > 2)
		return usage_error("kill", "expects CONTAINER_ID [SIGNAL]");
	const char *id = argv[optind];
	const char *signame = optind + 1 < argc ? argv[optind + 1] : "TERM";
	int sig = parse_signal(signame);
	if (sig < 0) {
		char msg[128];
		snprintf(msg, sizeof(msg), "kill %s: unknown signal '%s'", id, signame);
		return cli_failf(errp, "%s", msg);
	}
	if (container_signal(g, id, sig, all, &err) < 0) {
		error_wrap(&err, "kill %s", id);
		return cli_fail(errp, &err);
	}
	return 0;
}

static int pause_or_resume(struct global_opts *g, int argc, char **argv, bool resume,
			   struct error **errp)
{
	const char *cmd = resume ? "resume" : "pause";
	_cleanup_error_ struct error *err = NULL;

	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		printf("Usage: cocoon %s CONTAINER_ID\n\n%s all processes of the container (cgroup freezer in the guest).\n",
		       cmd, resume ? "Thaws" : "Freezes");
		return 0;
	}
	if (argc != 2)
		return usage_error(cmd, "expects exactly one container ID");
	if (container_set_paused(g, argv[1], !resume, &err) < 0)
		return cli_fail(errp, &err);
	return 0;
}

int cmd_pause(struct global_opts *g, int argc, char **argv, struct error **errp)
{
	return pause_or_resume(g, argc, argv, false, errp);
}

int cmd_resume(struct global_opts *g, int argc, char **argv, struct error **errp)
{
	return pause_or_resume(g, argc, argv, true, errp);
}

int cmd_ps(struct global_opts *g, int argc, char **argv, struct error **errp)
{
	static const struct option opts[] = {
		{"format", required_argument, NULL, 'f'}, {"help", no_argument, NULL, 'h'}, {}};
	_cleanup_error_ struct error *err = NULL;
	const char *format = "table";
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "f:h", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			format = optarg;
			break;
		case 'h':
			printf("Usage: cocoon ps [--format table|json] CONTAINER_ID\n\n"
			       "Lists the container's processes. The pids are the guest's: a container's\n"
			       "processes have no host pid, they run inside its VM.\n");
			return 0;
		default:
			return 2;
		}
	}
	if (optind != argc - 1)
		return usage_error("ps", "expects exactly one container ID");
	if (strcmp(format, "table") != 0 && strcmp(format, "json") != 0)
		return usage_error("ps", "--format must be table or json");
	const char *id = argv[optind];
	_cleanup_free_ uint32_t *pids = NULL;
	size_t n;
	if (container_ps(g, id, &pids, &n, &err) < 0) {
		error_wrap(&err, "ps %s", id);
		return cli_fail(errp, &err);
	}
	if (strcmp(format, "json") == 0) {
		printf("[");
		for (size_t i = 0; i < n; i++)
			printf("%s%u", i ? "," : "", pids[i]);
		printf("]\n");
	} else {
		printf("PID\n");
		for (size_t i = 0; i < n; i++)
			printf("%u\n", pids[i]);
	}
	return 0;
}
