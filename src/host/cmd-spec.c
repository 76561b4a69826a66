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
	"    \"capabilities\": {\n"
	"      \"bounding\": [\"CAP_AUDIT_WRITE\", \"CAP_KILL\", \"CAP_NET_BIND_SERVICE\"],\n"
	"      \"effective\": [\"CAP_AUDIT_WRITE\", \"CAP_KILL\", \"CAP_NET_BIND_SERVICE\"],\n"
	"      \"permitted\": [\"CAP_AUDIT_WRITE\", \"CAP_KILL\", \"CAP_NET_BIND_SERVICE\"],\n"
	"      \"ambient\": [\"CAP_AUDIT_WRITE\", \"CAP_KILL\", \"CAP_NET_BIND_SERVICE\"]\n"
	"    },\n"
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
	"    \"namespaces\": [{\"type\": \"pid\"}, {\"type\": \"network\"}, {\"type\": \"ipc\"}, {\"type\": \"uts\"}, {\"type\": \"mount\"}],\n"
	"    \"maskedPaths\": [\"/proc/acpi\", \"/proc/asound\", \"/proc/kcore\", \"/proc/keys\", \"/proc/latency_stats\",\n"
	"                    \"/proc/timer_list\", \"/proc/timer_stats\", \"/proc/sched_debug\", \"/sys/firmware\", \"/proc/scsi\"],\n"
	"    \"readonlyPaths\": [\"/proc/bus\", \"/proc/fs\", \"/proc/irq\", \"/proc/sys\", \"/proc/sysrq-trigger\"]\n"
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
	       "    \"capabilities\": [\"CAP_CHOWN\", \"CAP_DAC_OVERRIDE\", \"CAP_DAC_READ_SEARCH\", \"CAP_FOWNER\", \"CAP_FSETID\",\n"
	       "      \"CAP_KILL\", \"CAP_SETGID\", \"CAP_SETUID\", \"CAP_SETPCAP\", \"CAP_LINUX_IMMUTABLE\", \"CAP_NET_BIND_SERVICE\",\n"
	       "      \"CAP_NET_BROADCAST\", \"CAP_NET_ADMIN\", \"CAP_NET_RAW\", \"CAP_IPC_LOCK\", \"CAP_IPC_OWNER\", \"CAP_SYS_MODULE\",\n"
	       "      \"CAP_SYS_RAWIO\", \"CAP_SYS_CHROOT\", \"CAP_SYS_PTRACE\", \"CAP_SYS_PACCT\", \"CAP_SYS_ADMIN\", \"CAP_SYS_BOOT\",\n"
	       "      \"CAP_SYS_NICE\", \"CAP_SYS_RESOURCE\", \"CAP_SYS_TIME\", \"CAP_SYS_TTY_CONFIG\", \"CAP_MKNOD\", \"CAP_LEASE\",\n"
	       "      \"CAP_AUDIT_WRITE\", \"CAP_AUDIT_CONTROL\", \"CAP_SETFCAP\", \"CAP_MAC_OVERRIDE\", \"CAP_MAC_ADMIN\", \"CAP_SYSLOG\",\n"
	       "      \"CAP_WAKE_ALARM\", \"CAP_BLOCK_SUSPEND\", \"CAP_AUDIT_READ\", \"CAP_PERFMON\", \"CAP_BPF\", \"CAP_CHECKPOINT_RESTORE\"],\n"
	       "    \"cgroup\": {\"v1\": false, \"v2\": true, \"systemd\": false, \"systemdUser\": false},\n"
	       "    \"seccomp\": {\"enabled\": true,\n"
	       "      \"actions\": [\"SCMP_ACT_ALLOW\", \"SCMP_ACT_ERRNO\", \"SCMP_ACT_KILL\", \"SCMP_ACT_KILL_PROCESS\", \"SCMP_ACT_KILL_THREAD\",\n"
	       "        \"SCMP_ACT_LOG\", \"SCMP_ACT_TRACE\", \"SCMP_ACT_TRAP\"],\n"
	       "      \"operators\": [\"SCMP_CMP_EQ\", \"SCMP_CMP_GE\", \"SCMP_CMP_GT\", \"SCMP_CMP_LE\", \"SCMP_CMP_LT\", \"SCMP_CMP_MASKED_EQ\", \"SCMP_CMP_NE\"],\n"
	       "      \"archs\": [\"SCMP_ARCH_X86\", \"SCMP_ARCH_X32\", \"SCMP_ARCH_X86_64\"],\n"
	       "      \"knownFlags\": [\"SECCOMP_FILTER_FLAG_TSYNC\", \"SECCOMP_FILTER_FLAG_LOG\", \"SECCOMP_FILTER_FLAG_SPEC_ALLOW\"],\n"
	       "      \"supportedFlags\": [\"SECCOMP_FILTER_FLAG_TSYNC\", \"SECCOMP_FILTER_FLAG_LOG\", \"SECCOMP_FILTER_FLAG_SPEC_ALLOW\"]},\n"
	       "    \"apparmor\": {\"enabled\": false},\n"
	       "    \"selinux\": {\"enabled\": false}\n"
	       "  },\n"
	       "  \"annotations\": {\"io.github.cocoon.vm\": \"qemu-microvm\", \"io.github.cocoon.checkpoint\": \"criu-in-guest\"}\n"
	       "}\n");
	return 0;
}
