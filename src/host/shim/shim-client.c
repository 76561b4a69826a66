/* The CLI's side of a shim: a connection to its control socket
 * (shim-client.h). */
#include "shim-client.h"
#include "agent-client.h"
#include "shim.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int shim_connect(const char *dir, const char *id, struct agent_client *c, struct error **err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/" SHIM_SOCKET, dir);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return error_set(err, errno, "socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(fd);
		return error_setx(err, e == ENOENT || e == ECONNREFUSED ? ESRCH : e,
				  "container %s is not running", id);
	}
	int r = agent_client_init(c, fd, err);
	if (r < 0)
		close(fd);
	return r;
}
