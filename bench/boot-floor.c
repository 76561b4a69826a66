/* Boots the guest kernel with a trivial init under exactly the QEMU flags
 * cocoon uses (the same vm-qemu backend), and prints the wall time from
 * starting QEMU until it exits:
 *
 *   boot-floor INITRD          prints "floor_ms N"
 */
#include "cleanup.h"
#include "config.h"
#include "paths.h"
#include "accel.h"
#include "sandbox.h"

#include <string.h>
#include <sys/stat.h>

int main(int argc, char **argv)
{
	struct cocoon_config cfg;
	_cleanup_error_ struct error *err = NULL;
	_cleanup_free_ char *kernel = NULL, *initrd = NULL;
	char dir[] = "/tmp/cocoon-floor.XXXXXX", accel[8];

	if (argc != 2) {
		fprintf(stderr, "usage: boot-floor INITRD\n");
		return 2;
	}
	if (config_load(&cfg, NULL, &err) < 0 || config_image_paths(&cfg, &kernel, &initrd, &err) < 0 ||
	    accel_resolve(&cfg, accel, NULL, sandbox_probe_kvm, &err) < 0) {
		fprintf(stderr, "boot-floor: %s\n", err->msg);
		return 1;
	}
	if (!mkdtemp(dir))
		return 1;
	char sock[300], console[300], vmm[300];
	snprintf(sock, sizeof(sock), "%s/agent.sock", dir);
	snprintf(console, sizeof(console), "%s/console.log", dir);
	snprintf(vmm, sizeof(vmm), "%s/qemu.log", dir);
	/* The same devices as a cocoon VM's, the tools share included. */
	_cleanup_free_ char *tools = sandbox_tools_dir(initrd);
	struct vm_spec spec = {.qemu = cfg.qemu, .kernel = kernel, .initrd = argv[1], .tools_dir = tools, .accel = accel,
			       .memory_mib = (int)cfg.memory_mib, .vcpus = (int)cfg.vcpus,
			       .channel_path = sock, .shared_fs = cfg.shared_fs, .console_log = console,
			       .vmm_log = vmm};
	struct vm vm;
	long long t0 = now_ms();
	if (vm_start(&vm, &vm_backend_qemu, &spec, &err) < 0) {
		fprintf(stderr, "boot-floor: %s\n", err->msg);
		return 1;
	}
	vm_stop(&vm, 120000);
	printf("floor_ms %lld\n", now_ms() - t0);
	remove_tree(dir, NULL);
	config_free(&cfg);
	return 0;
}
