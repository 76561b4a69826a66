/* A fake VM backend for tests: instead of booting a guest it runs the real
 * cocoon-agent as a plain host process, wired to the channel socket the way
 * QEMU's virtio-serial chardev would be. Exercises the host side and the
 * agent's protocol handling in milliseconds, with no kernel involved. */
#include "fake-vm.h"
#include "cleanup.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

const char *fake_vm_agent_path;

static int fake_start(struct vm *vm, const struct vm_spec *spec, struct error **err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	if (!fake_vm_agent_path)
		return error_setx(err, EINVAL, "fake VM: no agent path");
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", spec->channel_path);
	pid_t pid = fork();
	if (pid < 0)
		return error_set(err, errno, "fork");
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int l = socket(AF_UNIX, SOCK_STREAM, 0);
		if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l, 1) < 0)
			_exit(126);
		int c = accept(l, NULL, NULL);
		if (c < 0)
			_exit(126);
		close(l);
		char fd[16];
		snprintf(fd, sizeof(fd), "%d", c);
		execl(fake_vm_agent_path, fake_vm_agent_path, "--channel-fd", fd, (char *)NULL);
		_exit(127);
	}
	vm->pid = pid;
	return 0;
}

static void fake_kill(struct vm *vm)
{
	if (vm->pid > 0 && !vm->exited) {
		kill(vm->pid, SIGKILL);
		waitpid(vm->pid, &vm->status, 0);
		vm->exited = true;
	}
}

const struct vm_backend vm_backend_fake = {
	.name = "fake",
	.start = fake_start,
	.kill = fake_kill,
};
