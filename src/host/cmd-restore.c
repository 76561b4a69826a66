/* restore: a new VM, the image directory shared into it read-only, and CRIU
 * restoring the container there. The images are verified first: a damaged
 * image can make CRIU loop forever instead of failing. */
#include "cleanup.h"
#include "container.h"
#include "criu-config.h"
#include "images.h"
#include "paths.h"
#include "vmsnap-zstd.h"
#include "vmsnap.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <getopt.h>
#include <limits.h>
#include <string.h>

static void restore_usage(void)
{
	printf("Usage: cocoon restore --image-path DIR [options] CONTAINER_ID\n"
	       "\n"
	       "Restores a checkpointed container into a new VM. The ID may be the original's\n"
	       "(once deleted) or a new one; the original may still be running. An image\n"
	       "directory with vm.json (a whole-VM checkpoint) starts the saved VM instead:\n"
	       "no boot, no CRIU, and only under the ID it was saved with.\n"
	       "\n"
	       "  --image-path DIR       the checkpoint's images\n"
	       "  --work-path DIR        where to put CRIU's restore log and stats\n"
	       "  -b, --bundle DIR       the OCI bundle (default: current directory)\n"
	       "  -d, --detach           return once restored\n"
	       "  --pid-file FILE        write the shim's pid here\n"
	       "  --console-socket S     as for create\n"
	       "  --tcp-established, --ext-unix-sk, --shell-job, --file-locks  as for CRIU\n"
	       "  --no-pivot, --no-subreaper (also -no-subreaper), --manage-cgroups-mode,\n"
	       "  --empty-ns network     accepted for runc compatibility\n"
	       "  --print-stats          print boot and CRIU timings as a JSON line\n");
}

/* vm.state.zst (vmsnap-zstd.h) decompressed for QEMU, which needs a
 * seekable file: into a new sparse file in the state root, named after the
 * container, bounded by checkpoint_max_bytes and vm.json's raw_size. The
 * caller unlinks *raw. */
static int unpack_state(struct global_opts *g, const char *id, int fd, const char *name,
			const struct vmsnap_meta *m, char **raw, struct error **err)
{
	int r = mkdir_p(g->root, 0700, err);
	if (r < 0)
		return r;
	if (asprintf(raw, "%s/.%s.vm.state.XXXXXX", g->root, id) < 0) {
		*raw = NULL;
		return error_set(err, ENOMEM, "restore");
	}
	_cleanup_close_ int out = mkostemp(*raw, O_CLOEXEC);
	if (out < 0) {
		int e = errno;
		free(*raw);
		*raw = NULL;
		return error_set(err, e, "a file for the decompressed VM state in %s", g->root);
	}
	r = vmsnap_zstd_unpack(fd, out, name, m->raw_size, (uint64_t)g->cfg.checkpoint_max_bytes,
			       err);
	if (r < 0) {
		unlink(*raw);
		free(*raw);
		*raw = NULL;
	}
	return r;
}

/* A whole-VM checkpoint (vm.json in the image directory, vmsnap.h): the
 * VM starts from the saved state, no boot and no CRIU. It holds the
 * container under the ID it was saved with, so only that ID restores it.
 * Returns the shim's pid. */
static int vmsnap_restore(struct global_opts *g, const char *id, const char *dir,
			  const struct vmsnap_meta *m, struct create_options *o, struct error **err)
{
	_cleanup_free_ char *state = NULL;
	struct stat st;
	if (strcmp(m->container_id, id) != 0)
		return error_setx(
			err, EINVAL,
			"%s holds the whole VM of container %s, with that container inside under its ID: restore it as %s",
			dir, m->container_id, m->container_id);
	if (asprintf(&state, "%s/%s", dir, m->zstd ? VMSNAP_STATE_ZST : VMSNAP_STATE) < 0)
		return error_set(err, ENOMEM, "restore");
	/* QEMU opens it by path: a regular file here, within the limits. */
	_cleanup_close_ int fd = open(state, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		return error_set(err, errno, "%s", state);
	if (!S_ISREG(st.st_mode) || st.st_size == 0 ||
	    (uint64_t)st.st_blocks * 512 > (uint64_t)g->cfg.checkpoint_max_bytes)
		return error_setx(
			err, EINVAL,
			"%s: not a regular file, empty, or larger than checkpoint_max_bytes",
			state);
	_cleanup_free_ char *raw = NULL;
	if (m->zstd) {
		int r = unpack_state(g, id, fd, state, m, &raw, err);
		if (r < 0)
			return r;
	}
	o->vmsnap_state = raw ? raw : state;
	o->vmsnap_key = m->key;
	pid_t shim;
	int r = container_create(g, id, o, &shim, err);
	/* QEMU has read it all once the restore returns, or it failed. */
	if (raw)
		unlink(raw);
	return r < 0 ? r : (int)shim;
}

int cmd_restore(struct global_opts *g, int argc, char **argv)
{
	enum {
		O_IMAGE = 256,
		O_WORK,
		O_PID,
		O_CONSOLE,
		O_TCP,
		O_EXT,
		O_SHELL,
		O_LOCKS,
		O_IGNORE,
		O_IGNORE_ARG,
		O_UNSUP,
		O_STATS,
		O_BENCH
	};
	static const struct option opts[] = {
		{"image-path", required_argument, NULL, O_IMAGE},
		{"work-path", required_argument, NULL, O_WORK},
		{"bundle", required_argument, NULL, 'b'},
		{"detach", no_argument, NULL, 'd'},
		{"pid-file", required_argument, NULL, O_PID},
		{"console-socket", required_argument, NULL, O_CONSOLE},
		{"tcp-established", no_argument, NULL, O_TCP},
		{"ext-unix-sk", no_argument, NULL, O_EXT},
		{"shell-job", no_argument, NULL, O_SHELL},
		{"file-locks", no_argument, NULL, O_LOCKS},
		{"no-pivot", no_argument, NULL, O_IGNORE},
		{"no-subreaper", no_argument, NULL, O_IGNORE},
		{"manage-cgroups-mode", required_argument, NULL, O_IGNORE_ARG},
		{"empty-ns", required_argument, NULL, O_IGNORE_ARG},
		{"lazy-pages", no_argument, NULL, O_UNSUP},
		{"auto-dedup", no_argument, NULL, O_UNSUP},
		{"print-stats", no_argument, NULL, O_STATS},
		{"bench-from-tmpfs", no_argument, NULL, O_BENCH},
		{"help", no_argument, NULL, 'h'},
		{}};
	Cocoon__CriuOptions criu = COCOON__CRIU_OPTIONS__INIT;
	struct create_options o = {.criu = &criu};
	_cleanup_error_ struct error *err = NULL;
	const char *image_path = NULL;
	char resolved[PATH_MAX];
	bool detach = false, print_stats = false;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "b:dh", opts, NULL)) != -1) {
		switch (c) {
		case O_IMAGE:
			image_path = optarg;
			break;
		case O_WORK:
			o.work_path = optarg;
			break;
		case 'b':
			o.bundle = optarg;
			break;
		case 'd':
			detach = true;
			break;
		case O_PID:
			o.pid_file = optarg;
			break;
		case O_CONSOLE:
			o.console_socket = optarg;
			break;
		case O_TCP:
			criu.tcp_established = true;
			break;
		case O_EXT:
			criu.ext_unix_sk = true;
			break;
		case O_SHELL:
			criu.shell_job = true;
			break;
		case O_LOCKS:
			criu.file_locks = true;
			break;
		case O_IGNORE:
		case O_IGNORE_ARG:
			break;
		case O_STATS:
			print_stats = true;
			break;
		case O_BENCH:
			o.bench_from_tmpfs = true;
			break;
		case O_UNSUP:
			return usage_error("restore", "%s is not supported", argv[optind - 1]);
		case 'h':
			restore_usage();
			return 0;
		default:
			return 2;
		}
	}
	if (optind != argc - 1)
		return usage_error("restore", "expects exactly one container ID");
	if (!image_path)
		return usage_error("restore", "--image-path is required");
	const char *id = argv[optind];
	/* Before the images are read: the ID names the state directory. */
	if (validate_id("container", id, &err) < 0) {
		error_wrap(&err, "restore");
		report_error(g, err->msg);
		return 1;
	}
	criu.debug = g->cfg.enable_debug;
	if (!realpath(image_path, resolved)) {
		error_set(&err, errno, "restore %s: image path %s", id, image_path);
		report_error(g, err->msg);
		return 1;
	}
	struct vmsnap_meta meta;
	bool whole_vm = false;
	if (vmsnap_meta_read(resolved, &meta, &whole_vm, &err) < 0) {
		error_wrap(&err, "restore %s", id);
		report_error(g, err->msg);
		return 1;
	}
	long long t0 = now_ms();
	pid_t shim;
	int r;
	if (whole_vm) {
		r = vmsnap_restore(g, id, resolved, &meta, &o, &err);
		vmsnap_meta_free(&meta);
		if (r < 0) {
			error_wrap(&err, "restore %s", id);
			report_error(g, err->msg);
			return 1;
		}
		shim = (pid_t)r;
		goto restored;
	}
	if (criu_config_collect(g->cfg.criu_config, o.bundle ? o.bundle : ".", &criu, &err) < 0) {
		error_wrap(&err, "restore %s", id);
		report_error(g, err->msg);
		return 1;
	}
	struct images_chain chain = {0};
	struct images_limits lim;
	images_limits_from_config(&g->cfg, &lim);
	if (images_verify(resolved, &lim, &chain, &err) < 0) {
		images_chain_free(&chain);
		error_wrap(&err, "restore %s", id);
		report_error(g, err->msg);
		return 1;
	}
	o.restore = &chain;
	r = container_create(g, id, &o, &shim, &err);
	images_chain_free(&chain);
	if (r < 0) {
		error_wrap(&err, "restore %s", id);
		report_error(g, err->msg);
		return 1;
	}
restored:
	if (print_stats) {
		_cleanup_free_ char *path = NULL, *text = NULL;
		if (asprintf(&path, "%s/%s/restore-stats.json", g->root, id) >= 0 &&
		    read_file_bounded(path, 4096, &text, NULL, NULL) == 0) {
			text[strcspn(text, "\n")] = 0;
			/* The same line, with the whole command's wall time. */
			printf("stats: {\"total_ms\": %lld, %s\n", now_ms() - t0, text + 1);
			fflush(stdout);
		}
	}
	if (detach)
		return 0;
	return container_wait_foreground(shim);
}
