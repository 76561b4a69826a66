/* cocoon: an OCI runtime that runs each container in its own VM.
 *
 * The command line follows runc's: global options first, then a command and
 * its own options, so that containerd and podman can drive cocoon as they
 * drive runc. Each command lives in its own cmd-*.c file. */
#include "cleanup.h"
#include "commands.h"
#include "log.h"
#include "paths.h"

#include <getopt.h>
#include <string.h>
#include <sys/stat.h>

static const struct command commands[] = {
	{"check", "boot a VM and report whether containers and checkpoints can work", cmd_check},
	{"image", "build the guest kernel and initramfs (cocoon image build)", cmd_image},
	{"create", "create a container in its own VM", cmd_create},
	{"start", "run the process of a created container", cmd_start},
	{"run", "create and start a container", cmd_run},
	{"state", "print a container's OCI state", cmd_state},
	{"list", "list containers", cmd_list},
	{"kill", "send a signal to a container", cmd_kill},
	{"pause", "freeze all processes of a container", cmd_pause},
	{"resume", "thaw a paused container", cmd_resume},
	{"exec", "run an extra process in a container", cmd_exec},
	{"ps", "list a container's processes", cmd_ps},
	{"delete", "remove a container and its VM", cmd_delete},
	{"checkpoint", "checkpoint a container with CRIU inside its VM", cmd_checkpoint},
	{"restore", "restore a container from a checkpoint into a new VM", cmd_restore},
	{"update", "change a container's limits inside its VM", cmd_update},
	{"events", "print a container's stats (CPU, memory, pids) from inside its VM", cmd_events},
	{"spec", "write a default config.json", cmd_spec},
	{"features", "print the supported features as JSON", cmd_features},
};

static void usage(FILE *out)
{
	fprintf(out, "Usage: cocoon [global options] COMMAND [options] [arguments]\n"
		     "\n"
		     "cocoon runs OCI containers in lightweight VMs, one VM per pod (or per\n"
		     "container outside a pod), and checkpoints and restores them, one by\n"
		     "one or a whole pod, with CRIU inside the VM.\n"
		     "\n"
		     "Commands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
	fprintf(out,
		"\n"
		"Global options (as runc's):\n"
		"  --root DIR         state directory (default %s)\n"
		"  --log FILE         write errors and debug messages to FILE\n"
		"  --log-format FMT   text or json (default text)\n"
		"  --debug            more messages\n"
		"  --systemd-cgroup   accepted for compatibility; cgroups live in the guest\n"
		"  --config FILE      configuration file (default $%s, then %s)\n"
		"  --version          print the version\n",
		COCOON_DEFAULT_ROOT, CONFIG_ENV, CONFIG_DEFAULT_PATH);
}

/* containerd passes "-no-subreaper" with one dash (Go's flag package
 * accepts both); getopt wants two. */
static void fix_single_dash(int argc, char **argv)
{
	static const char *const single_dash[] = {"-no-subreaper", "-no-pivot", "-no-new-keyring"};
	for (int i = 1; i < argc; i++)
		for (size_t j = 0; j < ARRAY_SIZE(single_dash); j++)
			if (strcmp(argv[i], single_dash[j]) == 0) {
				char *fixed = NULL;
				if (asprintf(&fixed, "-%s", argv[i]) > 0)
					argv[i] = fixed;
			}
}

/* Parses the global options into G, up to the command's name (optind):
 * returns -1 to go on, else the exit status to return (0 after --help or
 * --version, 2 after a usage error). */
static int parse_global(int argc, char **argv, struct global_opts *g)
{
	enum {
		OPT_ROOT = 256,
		OPT_LOG,
		OPT_LOG_FORMAT,
		OPT_DEBUG,
		OPT_SYSTEMD,
		OPT_CONFIG,
		OPT_VERSION,
		OPT_CRIU,
		OPT_ROOTLESS
	};
	static const struct option opts[] = {
		{"root", required_argument, NULL, OPT_ROOT},
		{"log", required_argument, NULL, OPT_LOG},
		{"log-format", required_argument, NULL, OPT_LOG_FORMAT},
		{"debug", no_argument, NULL, OPT_DEBUG},
		{"systemd-cgroup", no_argument, NULL, OPT_SYSTEMD},
		{"config", required_argument, NULL, OPT_CONFIG},
		{"criu", required_argument, NULL, OPT_CRIU},
		{"rootless", required_argument, NULL, OPT_ROOTLESS},
		{"version", no_argument, NULL, OPT_VERSION},
		{"help", no_argument, NULL, 'h'},
		{}};
	int c;

	/* '+': stop at the command name; its options are its own. */
	while ((c = getopt_long(argc, argv, "+hv", opts, NULL)) != -1) {
		switch (c) {
		case OPT_ROOT:
			g->root = optarg;
			break;
		case OPT_LOG:
			g->log_path = optarg;
			break;
		case OPT_LOG_FORMAT:
			if (strcmp(optarg, "text") != 0 && strcmp(optarg, "json") != 0) {
				fprintf(stderr,
					"cocoon: --log-format must be text or json, not '%s'\n",
					optarg);
				return 2;
			}
			g->log_format = optarg;
			break;
		case OPT_DEBUG:
			g->debug = true;
			break;
		case OPT_SYSTEMD:
			g->systemd_cgroup = true;
			break;
		case OPT_CONFIG:
			g->config_path = optarg;
			break;
		case OPT_CRIU:
		case OPT_ROOTLESS:
			break; /* runc options that have no meaning here: CRIU runs in the guest */
		case 'v':
		case OPT_VERSION:
			printf("cocoon version %s\nspec: 1.1.0\n", COCOON_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	return -1;
}

/* A state root that exists is a directory; a missing one is made when a
 * container is (and lists as empty, as runc's). */
static int check_state_root(const char *root, struct error **err)
{
	struct stat rs;
	if (stat(root, &rs) < 0)
		return errno == ENOENT ? 0 : error_set(err, errno, "--root %s", root);
	if (!S_ISDIR(rs.st_mode))
		return error_setx(err, ENOTDIR, "--root %s: not a directory", root);
	return 0;
}

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* Every error is reported once, here: to stderr and to --log. */
int main(int argc, char **argv)
{
	struct global_opts g = {.root = COCOON_DEFAULT_ROOT, .log_format = "text"};
	_cleanup_error_ struct error *err = NULL;

	fix_single_dash(argc, argv);
	int done = parse_global(argc, argv, &g);
	if (done >= 0)
		return done;
	int lr = log_init(g.log_path, g.log_format);
	if (lr < 0) {
		fprintf(stderr, "cocoon: --log %s: %s\n", g.log_path, strerror(-lr));
		return 1;
	}
	if (check_state_root(g.root, &err) < 0) {
		report_error(&g, err->msg);
		return 1;
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	const struct command *cmd = find_command(argv[optind]);
	if (!cmd) {
		fprintf(stderr, "cocoon: unknown command '%s' (see 'cocoon --help')\n",
			argv[optind]);
		return 2;
	}
	if (config_load(&g.cfg, g.config_path, &err) < 0) {
		report_error(&g, err->msg);
		return 1;
	}
	if (g.debug)
		g.cfg.enable_debug = true;
	int r = cmd->run(&g, argc - optind, argv + optind, &err);
	if (err)
		report_error(&g, err->msg);
	config_free(&g.cfg);
	return r;
}
