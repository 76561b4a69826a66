#include "vm.h"
#include "cleanup.h"
#include "paths.h"

#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

int vm_start(struct vm *vm, const struct vm_backend *backend, const struct vm_spec *spec,
	     struct error **err)
{
	memset(vm, 0, sizeof(*vm));
	vm->backend = backend;
	vm->pid = -1;
	return backend->start(vm, spec, err);
}

int vm_check_exited(struct vm *vm)
{
	if (vm->exited)
		return 1;
	if (vm->pid <= 0)
		return 1;
	pid_t r = waitpid(vm->pid, &vm->status, WNOHANG);
	if (r == vm->pid || (r < 0 && errno == ECHILD)) {
		vm->exited = true;
		return 1;
	}
	return 0;
}

static void sleep_ms(int ms)
{
	nanosleep(&(struct timespec){.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L}, NULL);
}

void vm_stop(struct vm *vm, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;

	if (!vm->backend)
		return;
	while (!vm_check_exited(vm) && now_ms() < deadline)
		sleep_ms(20);
	vm->backend->kill(vm);
}

int vm_wait_socket(struct vm *vm, const char *path, int timeout_ms, struct error **err)
{
	long long deadline = now_ms() + timeout_ms;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	if (strlen(path) >= sizeof(sa.sun_path))
		return error_setx(err, ENAMETOOLONG, "socket path %s is too long", path);
	strcpy(sa.sun_path, path);
	for (;;) {
		_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return error_set(err, errno, "socket");
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return TAKE_FD(fd);
		if (vm_check_exited(vm))
			return error_setx(err, ECHILD, "%s exited before creating %s",
					  vm->backend->name, path);
		if (now_ms() > deadline)
			return error_setx(err, ETIMEDOUT, "%s did not create %s within %d ms",
					  vm->backend->name, path, timeout_ms);
		sleep_ms(10);
	}
}
