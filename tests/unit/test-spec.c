/* The OCI spec reader (spec.c): what it takes from config.json, and that a
 * wrong one gets an error naming the field, never a crash. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sys/mount.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup-mirror.h"
#include "config.h"
#include "paths.h"
#include "pod.h"
#include "resources.h"
#include "spec.h"

#include "spec-fixture.h"

static void test_minimal(void **st)
{
	struct oci_bundle b;
	struct error *err = NULL;
	write_spec("{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS ", " LINUX
		   ", \"hostname\": \"h1\"}");
	assert_int_equal(spec_load(bundle, "c1", &b, &err), 0);
	assert_string_equal(b.spec->id, "c1");
	assert_int_equal(b.spec->process->n_args, 3);
	assert_string_equal(b.spec->process->args[2], "true");
	assert_string_equal(b.spec->process->env[0], "PATH=/bin");
	assert_string_equal(b.spec->process->cwd, "/");
	assert_string_equal(b.spec->hostname, "h1");
	assert_non_null(strstr(b.rootfs, "/rootfs"));
	spec_free(&b);
}

static void test_hooks_warn(void **st)
{
	struct oci_bundle b;
	write_spec("{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS ", " LINUX
		   ", \"hooks\": {\"prestart\": []}}");
	assert_int_equal(spec_load(bundle, "c1", &b, NULL), 0);
	bool found = false;
	for (size_t i = 0; i < b.n_warnings; i++)
		found |= strstr(b.warnings[i], "hooks") != NULL;
	assert_true(found);
	spec_free(&b);
}

/* The agent gives a container its own pid and mount namespaces whatever
 * the spec says (src/guest/container.c); the host says so when the spec
 * leaves them out, and only then. */
static void test_guest_namespaces_warn(void **st)
{
	struct oci_bundle b;
	write_spec("{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS ", " LINUX "}");
	assert_int_equal(spec_load(bundle, "c1", &b, NULL), 0);
	assert_true(warned(&b, "no pid namespace: the container gets a new one inside the VM"));
	assert_true(warned(&b, "no mount namespace: the container gets a new one inside the VM"));
	spec_free(&b);
	write_spec(
		"{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS
		", \"linux\": {\"namespaces\": [{\"type\": \"network\"}, {\"type\": \"mount\"}, {\"type\": \"pid\"}]}}");
	assert_int_equal(spec_load(bundle, "c1", &b, NULL), 0);
	assert_int_equal(b.n_warnings, 0);
	spec_free(&b);
}

/* spec_parse() is what spec_load() runs on the file's text. */
static void test_parse_from_memory(void **st)
{
	struct oci_bundle b;
	struct error *err = NULL;
	char dir[4096];
	assert_non_null(realpath(bundle, dir));
	assert_int_equal(spec_parse(dir, "mem",
				    "{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS ", " LINUX
				    ", \"hostname\": \"h2\"}",
				    "c2", &b, &err),
			 0);
	assert_string_equal(b.spec->hostname, "h2");
	assert_string_equal(b.bundle, dir);
	assert_non_null(strstr(b.rootfs, "/rootfs"));
	spec_free(&b);
	assert_true(spec_parse(dir, "mem", "{\"ociVersion\"", "c2", &b, &err) < 0);
	assert_non_null(strstr(err->msg, "mem: not valid JSON"));
	error_free(&err);
	spec_free(&b);
}

static void test_errors(void **st)
{
	expect_error("{", "not valid JSON");
	expect_error("[]", "expected a JSON object");
	expect_error("{\"process\": {}}", "ociVersion is required");
	expect_error("{\"ociVersion\": \"1.0.2\", " ROOT "}", "process is required");
	expect_error(
		"{\"ociVersion\": \"1.0.2\", " ROOT
		", \"process\": {\"args\": [\"sh\"], \"cwd\": \"/\", \"env\": [\"NOEQUALS\"]}}",
		"process.env[0]");
	expect_error("{\"ociVersion\": \"1.0.2\", " ROOT
		     ", \"process\": {\"args\": \"sh\", \"cwd\": \"/\"}}",
		     "process.args");
	expect_error("{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS ", \"hostname\": 7}",
		     "hostname");
	expect_error("{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS ", \"mounts\": {}}",
		     "mounts");
	expect_error("{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS ", \"mounts\": [7]}",
		     "mounts");
}

/* A mount whose destination is missing or of the wrong type leaves
 * protobuf-c's static empty strings in the other fields: spec_free() must
 * not free them. */
static void test_bad_mounts_do_not_crash(void **st)
{
	expect_error("{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS
		     ", \"mounts\": [{\"type\": \"tmpfs\"}]}",
		     "mounts[0].destination");
	expect_error("{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS
		     ", \"mounts\": [{\"destination\": 1}]}",
		     "mounts[0].destination");
	expect_error("{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS
		     ", \"mounts\": [{\"destination\": \"/x/../etc\", \"type\": \"tmpfs\"}]}",
		     "..");
	expect_error("{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS
		     ", \"mounts\": [{\"destination\": \"/x\", \"type\": [\"tmpfs\"]}]}",
		     "mounts[0].type");
	char big[128 * 64 + 256] =
		"{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS ", \"mounts\": [";
	for (int i = 0; i < 100; i++)
		strcat(big, i ? ",{\"destination\": \"/t\", \"type\": \"tmpfs\"}"
			      : "{\"destination\": \"/t\", \"type\": \"tmpfs\"}");
	strcat(big, "]}");
	expect_error(big, "mounts");
}

/* The engine's network namespace is joined by path; none at all is host
 * networking, which is refused (docs/networking.md). */
static void test_network_namespaces(void **st)
{
	struct oci_bundle b;
	struct error *err = NULL;
	write_spec("{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS ", " LINUX "}");
	assert_int_equal(spec_load(bundle, "c1", &b, &err), 0);
	assert_null(b.netns_path);
	/* A new one without a path: the shim gets one of its own. */
	assert_true(spec_wants_new_netns(&b));
	/* No user namespace (plain `ctr run`): no NIC reserved. */
	assert_false(spec_wants_late_network(&b));
	spec_free(&b);
	/* A pod member's (by its sandbox's pid): the pod's, not a new one. */
	write_spec("{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS
		   ", \"linux\": {\"namespaces\": [{\"type\": \"network\", \"path\": "
		   "\"/proc/1/ns/net\"}]}}");
	if (spec_load(bundle, "c1", &b, &err) < 0)
		fail_msg("a pod member's spec: %s", err ? err->msg : "?");
	assert_int_equal(b.spec->n_join_namespaces, 1);
	assert_false(spec_wants_new_netns(&b));
	spec_free(&b);
	expect_error("{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS "}", "host networking");
	expect_error("{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS
		     ", \"linux\": {\"namespaces\": [{\"type\": \"pid\"}]}}",
		     "host networking");
	expect_error(
		"{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS
		", \"linux\": {\"namespaces\": [{\"type\": \"network\", \"path\": \"/run/netns/no-such-ns\"}]}}",
		"/run/netns/no-such-ns");
	expect_error(
		"{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS
		", \"linux\": {\"namespaces\": [{\"type\": \"network\", \"path\": \"relative\"}]}}",
		"must be absolute");
	expect_error(
		"{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS
		", \"linux\": {\"namespaces\": [{\"type\": \"network\"}, {\"type\": \"ipc\", \"path\": \"/proc/self/ns/ipc\"}]}}",
		"joining an existing ipc namespace");
}

static void expect_netns_error(const char *path, const char *needle)
{
	char text[512];
	snprintf(text, sizeof(text),
		 "{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS ", \"linux\": {\"namespaces\": "
		 "[{\"type\": \"network\", \"path\": \"%s\"}]}}",
		 path);
	expect_error(text, needle);
}

/* The runtime's own network namespace is the host's: joining it by path is
 * host networking, refused like a spec without one; carried, the host's
 * interfaces would be redirected into the VM. A path that is not a
 * namespace is named before it is opened (a FIFO would block create). */
static void test_host_network_by_path(void **st)
{
	char fifo[128];
	expect_netns_error("/proc/self/ns/net", "is the host's network namespace");
	expect_netns_error("/proc/thread-self/ns/net", "is the host's network namespace");
	expect_netns_error("/etc/passwd", "/etc/passwd is not a network namespace");
	expect_netns_error("/proc/self/ns/uts", "/proc/self/ns/uts is not a network namespace");
	expect_netns_error("/dev/null", "/dev/null is not a network namespace");
	snprintf(fifo, sizeof(fifo), "%s/fifo", bundle);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	expect_netns_error(fifo, "fifo is not a network namespace");
}

/* Another network namespace (an engine's) is taken: the test's own, left
 * behind when the test moves into a new one. */
static void test_engine_network_by_path(void **st)
{
	struct oci_bundle b;
	struct error *err = NULL;
	char text[512], path[64];
	int engine = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	assert_true(engine >= 0);
	if (unshare(CLONE_NEWNET) < 0) {
		print_message("skipped: a new network namespace needs CAP_SYS_ADMIN (%s)\n",
			      strerror(errno));
		close(engine);
		skip();
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", engine);
	snprintf(text, sizeof(text),
		 "{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS ", \"linux\": {\"namespaces\": "
		 "[{\"type\": \"network\", \"path\": \"%s\"}]}}",
		 path);
	write_spec(text);
	int r = spec_load(bundle, "c1", &b, &err);
	assert_int_equal(setns(engine, CLONE_NEWNET), 0);
	close(engine);
	if (r < 0)
		fail_msg("joining %s: %s", path, err ? err->msg : "?");
	assert_string_equal(b.netns_path, path);
	assert_int_equal(b.spec->n_namespaces, 1);
	/* The engine's: carried, the shim stays where it is. */
	assert_false(spec_wants_new_netns(&b));
	assert_false(spec_wants_late_network(&b));
	spec_free(&b);
}

/* CRI-O's infra container names the IPC and UTS namespaces CRI-O pinned
 * for the pod (/var/run/ipcns/<id>, /var/run/utsns/<id>): the sandbox takes
 * them as its own, new in the VM, where its members join them; before, the
 * pod's sandbox was refused ("joining an existing ipc namespace"). Here
 * the pinned ones are the test's own, left behind when it moves into new
 * ones. A container that is no sandbox is still refused, and so is the
 * host's own namespace. */
static void test_crio_sandbox_pinned_namespaces(void **st)
{
	struct oci_bundle b;
	struct error *err = NULL;
	char text[1024], ipc[64], uts[64];
	int old_ipc = open("/proc/self/ns/ipc", O_RDONLY | O_CLOEXEC);
	int old_uts = open("/proc/self/ns/uts", O_RDONLY | O_CLOEXEC);
	assert_true(old_ipc >= 0 && old_uts >= 0);
	if (unshare(CLONE_NEWIPC | CLONE_NEWUTS) < 0) {
		print_message("skipped: new IPC and UTS namespaces need CAP_SYS_ADMIN (%s)\n",
			      strerror(errno));
		close(old_ipc);
		close(old_uts);
		skip();
	}
	snprintf(ipc, sizeof(ipc), "/proc/self/fd/%d", old_ipc);
	snprintf(uts, sizeof(uts), "/proc/self/fd/%d", old_uts);
#define CRIO_SPEC(type, ipc_path, uts_path)                                                        \
	snprintf(text, sizeof(text),                                                               \
		 "{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS                                  \
		 ", \"annotations\": {\"io.kubernetes.cri-o.ContainerType\": \"%s\"%s}, "          \
		 "\"linux\": {\"namespaces\": [{\"type\": \"network\"}, {\"type\": \"ipc\", "      \
		 "\"path\": \"%s\"}, {\"type\": \"uts\", \"path\": \"%s\"}]}}",                    \
		 type,                                                                             \
		 strcmp(type, "sandbox") ? ", \"io.kubernetes.cri-o.SandboxID\": \"sb1\"" : "",    \
		 ipc_path, uts_path)
	CRIO_SPEC("sandbox", ipc, uts);
	write_spec(text);
	int r = spec_load(bundle, "sb1", &b, &err);
	if (r == 0) {
		/* Its own, new in the VM: network, ipc, uts; it joins nothing. */
		assert_true(b.pod.sandbox);
		assert_int_equal(b.spec->n_namespaces, 3);
		assert_string_equal(b.spec->namespaces[1], "ipc");
		assert_string_equal(b.spec->namespaces[2], "uts");
		assert_int_equal(b.spec->n_join_namespaces, 0);
		spec_free(&b);
	}
	/* The runtime's own (a bind of the host's): refused. */
	CRIO_SPEC("sandbox", "/proc/thread-self/ns/ipc", uts);
	if (r == 0)
		expect_error(text, "is the host's ipc namespace");
	/* A namespace of another type, a non-namespace: refused by name. */
	CRIO_SPEC("sandbox", uts, uts);
	if (r == 0)
		expect_error(text, "is not an ipc namespace");
	/* A member joins its sandbox's, as with containerd's annotations. */
	CRIO_SPEC("container", ipc, uts);
	write_spec(text);
	int m = spec_load(bundle, "m1", &b, &err);
	if (m == 0) {
		assert_int_equal(b.spec->n_join_namespaces, 2);
		assert_string_equal(b.pod.sandbox_id, "sb1");
		spec_free(&b);
	}
	/* No pod's sandbox: refused as before. */
	CRIO_SPEC("none", ipc, uts);
	expect_error(text, "joining an existing ipc namespace is not supported");
#undef CRIO_SPEC
	assert_int_equal(setns(old_ipc, CLONE_NEWIPC), 0);
	assert_int_equal(setns(old_uts, CLONE_NEWUTS), 0);
	close(old_ipc);
	close(old_uts);
	if (r < 0)
		fail_msg("a CRI-O sandbox with its pinned namespaces: %s", err ? err->msg : "?");
	if (m < 0)
		fail_msg("a CRI-O member with the pod's pinned namespaces: %s",
			 err ? err->msg : "?");
}

static void test_bind_sources(void **st)
{
	expect_error(
		"{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS
		", \"mounts\": [{\"destination\": \"/x\", \"type\": \"bind\", \"source\": \"/dev/null\"}]}",
		"source /dev/null is a character device");
	expect_error(
		"{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS
		", \"mounts\": [{\"destination\": \"/x\", \"type\": \"bind\", \"source\": \"/nonexistent\"}]}",
		"mounts[0] (/x): source /nonexistent");
	struct oci_bundle b;
	write_spec(
		"{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS ", " LINUX
		", \"mounts\": [{\"destination\": \"/t\", \"type\": \"tmpfs\"},{\"destination\": \"/d\", \"type\": \"bind\", \"source\": \"/tmp\", \"options\": [\"rbind\", \"ro\"]}]}");
	assert_int_equal(spec_load(bundle, "c1", &b, NULL), 0);
	assert_int_equal(b.n_volumes, 1);
	assert_true(b.volumes[0].is_dir && b.volumes[0].recursive);
	assert_string_equal(b.volumes[0].name, "1");
	assert_string_equal(b.spec->mounts[1]->source, COCOON_GUEST_VOLUMES_DIR "/1");
	spec_free(&b);

	/* A relative source is the bundle's (runtime-spec config.md), not the
	 * caller's directory; the recursive forms of mount_setattr(2) are read
	 * (rro was ignored and the volume came out writable); options cocoon
	 * cannot honour are refused by name. */
	char sub[128];
	snprintf(sub, sizeof(sub), "%s/vol", bundle);
	assert_int_equal(mkdir(sub, 0755), 0);
	assert_int_equal(chdir("/"), 0);
	write_spec(
		"{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS ", " LINUX
		", \"mounts\": [{\"destination\": \"/v\", \"type\": \"bind\", \"source\": \"vol\", \"options\": [\"rbind\", \"rro\", \"rnosuid\", \"rnodev\", \"rnoexec\"]}]}");
	assert_int_equal(spec_load(bundle, "c1", &b, NULL), 0);
	assert_int_equal(b.n_volumes, 1);
	assert_string_equal(b.volumes[0].host_path, sub);
	assert_int_equal(b.volumes[0].flags, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC);
	spec_free(&b);
	expect_error(
		"{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS ", " LINUX
		", \"mounts\": [{\"destination\": \"/v\", \"type\": \"bind\", \"source\": \"/tmp\", \"options\": [\"rbind\", \"idmap\"]}]}",
		"mounts[0] (/v): option 'idmap' is not supported");
}

static void write_at(const char *dir, const char *rel, const char *text)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	for (char *q = p + strlen(dir) + 1; (q = strchr(q, '/')); q++) {
		*q = 0;
		mkdir(p, 0755);
		*q = '/';
	}
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* pod-size.c: where the pod's limits come from (docs/pods.md "Pod sizing"). */
static void test_pod_limits(void **st)
{
	char out[256];
	assert_int_equal(pod_cgroup_parent("/libpod_parent/pod1/libpod-c1", out, sizeof(out)), 0);
	assert_string_equal(out, "libpod_parent/pod1");
	assert_int_equal(
		pod_cgroup_parent("machine-libpod_pod_ab.slice:libpod:c1", out, sizeof(out)), 0);
	assert_string_equal(out, "machine.slice/machine-libpod_pod_ab.slice");
	assert_int_equal(pod_cgroup_parent("kubepods-burstable-pod12.slice:cri-containerd:c1", out,
					   sizeof(out)),
			 0);
	assert_string_equal(out, "kubepods.slice/kubepods-burstable.slice/"
				 "kubepods-burstable-pod12.slice");
	static const char *const bad[] = {"/c1",     "relative/c1", "/a/../c1",	      "/a//c1",
					  "/a/b/..", "-.slice:p:c", "a--b.slice:p:c", "x.slice:c"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(pod_cgroup_parent(bad[i], out, sizeof(out)), -EINVAL);

	/* A fake cgroup tree: v1 (this host's), then v2. */
	char root[128];
	snprintf(root, sizeof(root), "%s/cg", bundle);
	mkdir(root, 0755);
	write_at(root, "memory/libpod_parent/pod1/memory.limit_in_bytes", "314572800\n");
	write_at(root, "cpu/libpod_parent/pod1/cpu.cfs_quota_us", "150000\n");
	write_at(root, "cpu/libpod_parent/pod1/cpu.cfs_period_us", "100000\n");
	write_at(root, "memory/libpod_parent/pod2/memory.limit_in_bytes", "9223372036854771712\n");
	write_at(root, "cpu/libpod_parent/pod2/cpu.cfs_quota_us", "-1\n");
	write_at(root, "cpu/libpod_parent/pod2/cpu.cfs_period_us", "100000\n");
	write_at(root, "pids/libpod_parent/pod1/pids.max", "100\n");
	write_at(root, "pids/libpod_parent/pod2/pids.max", "max\n");
	struct oci_bundle b;
	struct pod_limits l;
	write_spec("{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS
		   ", \"linux\": {\"namespaces\": [{\"type\": \"network\"}], \"cgroupsPath\": "
		   "\"/libpod_parent/pod1/libpod-c1\"}}");
	assert_int_equal(spec_load(bundle, "c1", &b, NULL), 0);
	assert_int_equal(pod_limits_of(&b, root, &l, NULL), 0);
	assert_int_equal(l.memory, 300 << 20);
	assert_int_equal(l.cpu_quota, 150000);
	assert_int_equal(l.cpu_period, 100000);
	assert_int_equal(l.pids, 100);
	assert_non_null(strstr(l.source, "libpod_parent/pod1"));
	free(b.pod.cgroups_path);
	b.pod.cgroups_path = strdup("/libpod_parent/pod2/libpod-c1"); /* no limits */
	assert_int_equal(pod_limits_of(&b, root, &l, NULL), 0);
	assert_true(l.memory == 0 && l.cpu_quota == 0 && l.pids == 0);
	free(b.pod.cgroups_path);
	b.pod.cgroups_path = strdup("/libpod_parent/gone/libpod-c1"); /* no such cgroup */
	assert_int_equal(pod_limits_of(&b, root, &l, NULL), 0);
	assert_true(l.memory == 0 && l.cpu_quota == 0);
	/* A plain container's parent is no pod: its limits are not read
	 * (rev16c F2); a podman pod's 64-hex cgroup is. */
	write_at(root, "memory/libpod_parent/memory.limit_in_bytes", "104857600\n");
	free(b.pod.cgroups_path);
	b.pod.cgroups_path = strdup("/libpod_parent/libpod-c1");
	assert_int_equal(pod_limits_of(&b, root, &l, NULL), 0);
	assert_true(l.memory == 0 && l.cpu_quota == 0);
	write_at(root, "memory/machine.slice/memory.limit_in_bytes", "104857600\n");
	free(b.pod.cgroups_path);
	b.pod.cgroups_path = strdup("machine.slice:libpod:c1");
	assert_int_equal(pod_limits_of(&b, root, &l, NULL), 0);
	assert_true(l.memory == 0 && l.cpu_quota == 0);
	char hex[65], hexpath[128];
	memset(hex, 'a', 64);
	hex[64] = 0;
	snprintf(hexpath, sizeof(hexpath), "memory/libpod_parent/%s/memory.limit_in_bytes", hex);
	write_at(root, hexpath, "209715200\n");
	snprintf(hexpath, sizeof(hexpath), "/libpod_parent/%s/libpod-c1", hex);
	free(b.pod.cgroups_path);
	b.pod.cgroups_path = strdup(hexpath);
	assert_int_equal(pod_limits_of(&b, root, &l, NULL), 0);
	assert_int_equal(l.memory, 200 << 20);
	assert_true(pod_cgroup_is_pod("machine.slice/machine-libpod_pod_ab.slice"));
	assert_true(pod_cgroup_is_pod("kubepods.slice/kubepods-burstable.slice/"
				      "kubepods-burstable-pod12.slice"));
	assert_false(pod_cgroup_is_pod("machine.slice"));
	assert_false(pod_cgroup_is_pod("k8s.io"));
	spec_free(&b);

	write_at(root, "cgroup.controllers", "cpu memory\n");
	write_at(root, "kubepods/pod3/memory.max", "1073741824\n");
	write_at(root, "kubepods/pod3/cpu.max", "max 100000\n");
	write_at(root, "kubepods/pod3/pids.max", "512\n"); /* the kubelet's podPidsLimit */
	/* CRI's annotations on the sandbox come first. */
	write_spec("{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS
		   ", \"annotations\": {\"io.kubernetes.cri.container-type\": \"sandbox\", "
		   "\"io.kubernetes.cri.sandbox-memory\": \"0\"}, \"linux\": {\"namespaces\": "
		   "[{\"type\": \"network\"}], \"cgroupsPath\": \"/kubepods/pod3/s1\"}}");
	assert_int_equal(spec_load(bundle, "s1", &b, NULL), 0);
	assert_int_equal(pod_limits_of(&b, root, &l, NULL), 0);
	assert_int_equal(l.memory, 1 << 30);
	assert_int_equal(l.cpu_quota, 0);
	spec_free(&b);
	write_spec("{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS
		   ", \"annotations\": {\"io.kubernetes.cri.container-type\": \"sandbox\", "
		   "\"io.kubernetes.cri.sandbox-memory\": \"209715200\", "
		   "\"io.kubernetes.cri.sandbox-cpu-quota\": \"250000\", "
		   "\"io.kubernetes.cri.sandbox-cpu-period\": \"100000\"}, \"linux\": "
		   "{\"namespaces\": [{\"type\": \"network\"}], \"cgroupsPath\": "
		   "\"/kubepods/pod3/s1\"}}");
	assert_int_equal(spec_load(bundle, "s1", &b, NULL), 0);
	assert_int_equal(pod_limits_of(&b, root, &l, NULL), 0);
	assert_int_equal(l.memory, 200 << 20);
	assert_int_equal(l.cpu_quota, 250000);
	assert_int_equal(l.pids, 512); /* not in the annotations: the pod cgroup's */
	assert_non_null(strstr(l.source, "io.kubernetes.cri.sandbox-"));
	spec_free(&b);
	expect_error("{\"ociVersion\": \"1.0.2\", " ROOT ", " PROCESS
		     ", \"annotations\": {\"io.kubernetes.cri.container-type\": \"sandbox\", "
		     "\"io.kubernetes.cri.sandbox-memory\": \"-5\"}, " LINUX "}",
		     "io.kubernetes.cri.sandbox-memory: expected a number");
}

static void test_missing_bundle(void **st)
{
	struct oci_bundle b;
	struct error *err = NULL;
	assert_int_not_equal(spec_load("/nonexistent/bundle", "c1", &b, &err), 0);
	assert_non_null(strstr(err->msg, "/nonexistent/bundle"));
	error_free(&err);
	spec_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_minimal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_network_namespaces, setup, teardown),
		cmocka_unit_test_setup_teardown(test_host_network_by_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_engine_network_by_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crio_sandbox_pinned_namespaces, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_hooks_warn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_guest_namespaces_warn, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_from_memory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_mounts_do_not_crash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_bundle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bind_sources, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pod_limits, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
