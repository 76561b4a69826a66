/* cocoon image build: assembles the guest kernel + initramfs from Debian
 * packages (the library's guest-image.h does it). */
#include "commands.h"
#include "cleanup.h"
#include "guest-image.h"
#include "paths.h"

#include <getopt.h>
#include <string.h>

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
	_cleanup_free_ char *out = NULL;
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
	if (guest_image_build(out, force, &err) < 0)
		return cli_fail(errp, &err);
	return 0;
}
