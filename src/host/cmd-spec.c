/* spec and features. */
#include "cleanup.h"
#include "commands.h"
#include "container.h"
#include "paths.h"

#include <getopt.h>
#include <string.h>

static const char default_spec[] =
	"{\n"
	"  \"ociVersion\": \"1.0.2\",\n"
	"  \"process\": {\n"
	"    \"terminal\": true,\n"
	"    \"user\": {\"uid\": 0, \"gid\": 0},\n"
	"    \"args\": [\"sh\"],\n"
	"    \"env\": [\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\", \"TERM=xterm\"],\n"
	"    \"cwd\": \"/\",\n"
	"    \"rlimits\": [{\"type\": \"RLIMIT_NOFILE\", \"hard\": 1024, \"soft\": 1024}],\n"
	"    \"noNewPrivileges\": true\n"
	"  },\n"
	"  \"root\": {\"path\": \"rootfs\", \"readonly\": true},\n"
	"  \"hostname\": \"cocoon\",\n"
	"  \"mounts\": [\n"
	"    {\"destination\": \"/proc\", \"type\": \"proc\", \"source\": \"proc\"},\n"
	"    {\"destination\": \"/dev\", \"type\": \"tmpfs\", \"source\": \"tmpfs\", \"options\": [\"nosuid\", \"strictatime\", \"mode=755\", \"size=65536k\"]},\n"
	"    {\"destination\": \"/dev/pts\", \"type\": \"devpts\", \"source\": \"devpts\", \"options\": [\"nosuid\", \"noexec\", \"newinstance\", \"ptmxmode=0666\", \"mode=0620\"]},\n"
	"    {\"destination\": \"/dev/shm\", \"type\": \"tmpfs\", \"source\": \"shm\", \"options\": [\"nosuid\", \"noexec\", \"nodev\", \"mode=1777\", \"size=65536k\"]},\n"
	"    {\"destination\": \"/dev/mqueue\", \"type\": \"mqueue\", \"source\": \"mqueue\", \"options\": [\"nosuid\", \"noexec\", \"nodev\"]},\n"
	"    {\"destination\": \"/sys\", \"type\": \"sysfs\", \"source\": \"sysfs\", \"options\": [\"nosuid\", \"noexec\", \"nodev\", \"ro\"]}\n"
	"  ],\n"
	"  \"linux\": {\n"
	"    \"namespaces\": [{\"type\": \"pid\"}, {\"type\": \"network\"}, {\"type\": \"ipc\"}, {\"type\": \"uts\"}, {\"type\": \"mount\"}]\n"
	"  }\n"
	"}\n";

int cmd_spec(struct global_opts *g, int argc, char **argv)
{
	static const struct option opts[] = {{"bundle", required_argument, NULL, 'b'},
					     {"rootless", no_argument, NULL, 'r'},
					     {"help", no_argument, NULL, 'h'},
					     {}};
	_cleanup_error_ struct error *err = NULL;
	_cleanup_free_ char *path = NULL;
	const char *bundle = ".";
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "b:h", opts, NULL)) != -1) {
		switch (c) {
		case 'b':
			bundle = optarg;
			break;
		case 'r':
			break;
		case 'h':
			printf("Usage: cocoon spec [--bundle DIR]\n\n"
			       "Writes a default config.json (process \"sh\" on a terminal, rootfs \"rootfs\")\n"
			       "into the bundle directory, as runc spec does.\n");
			return 0;
		default:
			return 2;
		}
	}
	if (asprintf(&path, "%s/config.json", bundle) < 0)
		return 1;
	if (access(path, F_OK) == 0) {
		char msg[4200];
		snprintf(msg, sizeof(msg), "spec: %s already exists", path);
		report_error(g, msg);
		return 1;
	}
	if (write_file_atomic(path, default_spec, strlen(default_spec), 0644, &err) < 0) {
		report_error(g, err->msg);
		return 1;
	}
	return 0;
}

int cmd_features(struct global_opts *g, int argc, char **argv)
{
	(void)g;
	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		printf("Usage: cocoon features\n\nPrints what this runtime supports, as JSON (runc features).\n");
		return 0;
	}
	printf("{\n"
	       "  \"ociVersionMin\": \"1.0.0\",\n"
	       "  \"ociVersionMax\": \"1.1.0\",\n"
	       "  \"hooks\": [],\n"
	       "  \"mountOptions\": [\"ro\", \"rw\", \"nosuid\", \"suid\", \"nodev\", \"dev\", \"noexec\", \"exec\", \"bind\", \"rbind\", \"relatime\", \"strictatime\", \"noatime\"],\n"
	       "  \"linux\": {\n"
	       "    \"namespaces\": [\"pid\", \"network\", \"ipc\", \"uts\", \"mount\"],\n"
	       "    \"capabilities\": [],\n"
	       "    \"cgroup\": {\"v1\": false, \"v2\": true, \"systemd\": false, \"systemdUser\": false},\n"
	       "    \"seccomp\": {\"enabled\": false},\n"
	       "    \"apparmor\": {\"enabled\": false},\n"
	       "    \"selinux\": {\"enabled\": false}\n"
	       "  },\n"
	       "  \"annotations\": {\"io.github.cocoon.vm\": \"qemu-microvm\", \"io.github.cocoon.checkpoint\": \"criu-in-guest\"}\n"
	       "}\n");
	return 0;
}

int cmd_update(struct global_opts *g, int argc, char **argv)
{
	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		printf("Usage: cocoon update [options] CONTAINER_ID\n\n"
		       "Refused: resource limits are not applied inside the VM yet. The VM's own\n"
		       "size is set by [vm] memory_mib and vcpus in the configuration.\n");
		return 0;
	}
	const char *id = argc > 1 ? argv[argc - 1] : "";
	char msg[256];
	snprintf(msg, sizeof(msg),
		 "update %s: changing resources of a running container is not supported: cocoon does not "
		 "apply linux.resources inside the VM yet",
		 id);
	report_error(g, msg);
	return 1;
}
