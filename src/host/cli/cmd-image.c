/* cocoon image build: assembles the guest kernel + initramfs from Debian
 * packages. The work is done by guest/image/mkimage.sh, which drives Debian's
 * own tools (apt-get download, dpkg-deb, modprobe --show-depends, cpio). */
#include "commands.h"
#include "cleanup.h"
#include "paths.h"

#include <getopt.h>
#include <string.h>
#include <sys/wait.h>

static void image_usage(void)
{
	printf("Usage: cocoon image build [--force] [--output DIR]\n"
	       "\n"
	       "Builds the guest kernel and initramfs from Debian packages: the bookworm\n"
	       "kernel, CRIU and the tools it calls, the kernel modules CRIU and the VM\n"
	       "devices need, and cocoon-agent as PID 1. The result is cached and only\n"
	       "rebuilt when an input changes.\n"
	       "\n"
	       "  --output DIR  where to put vmlinux and initrd.img (default %s/image)\n"
	       "  --force       rebuild even when the cached image is current\n",
	       cache_dir());
}

int cmd_image(struct global_opts *g, int argc, char **argv, struct error **errp)
{
	static const struct option opts[] = {{"force", no_argument, NULL, 'f'},
					     {"output", required_argument, NULL, 'o'},
					     {"help", no_argument, NULL, 'h'},
					     {}};
	_cleanup_free_ char *script = NULL, *agent = NULL, *fragment = NULL, *out = NULL;
	_cleanup_error_ struct error *err = NULL;
	bool force = false;
	int c;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		image_usage();
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "build") != 0)
		return usage_error("image", "unknown subcommand '%s'", argv[1]);
	argc--;
	argv++;
	optind = 1;
	while ((c = getopt_long(argc, argv, "fo:h", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			force = true;
			break;
		case 'o':
			free(out);
			out = strdup(optarg);
			break;
		case 'h':
			image_usage();
			return 0;
		default:
			return 2;
		}
	}
	if (!out && asprintf(&out, "%s/image", cache_dir()) < 0)
		return 1;
	if (find_helper("mkimage.sh", &script, &err) < 0 ||
	    find_helper("cocoon-agent", &agent, &err) < 0 ||
	    find_helper("checkpoint.conf", &fragment, &err) < 0) {
		return cli_fail(errp, &err);
	}
	char *args[] = {(char *)"/bin/sh",
			script,
			(char *)"--agent",
			agent,
			(char *)"--output",
			out,
			(char *)"--config-fragment",
			fragment,
			force ? (char *)"--force" : NULL,
			NULL};
	pid_t pid = fork();
	if (pid == 0) {
		execv(args[0], args);
		_exit(127);
	}
	int status = 0;
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) {
		return cli_failf(errp, "%s", "image build failed (see the messages above)");
	}
	return 0;
}
