/* The boot floor's init: the kernel runs it as PID 1 and it ends the VM at
 * once (QEMU runs with -no-reboot, the kernel with reboot=t). */
#include <sys/reboot.h>
#include <unistd.h>

int main(void)
{
	reboot(RB_AUTOBOOT);
	return 0;
}
