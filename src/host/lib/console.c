#include "console.h"
#include "cleanup.h"
#include "fdio.h"

#include <fcntl.h>
#include <pty.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

int console_openpty(const Cocoon__ConsoleSize *size, int *master, int *slave, struct error **err)
{
	struct winsize ws = {0};
	if (size && size->rows <= 65535 && size->cols <= 65535) {
		ws.ws_row = (unsigned short)size->rows;
		ws.ws_col = (unsigned short)size->cols;
	}
	if (openpty(master, slave, NULL, NULL, &ws) < 0)
		return error_set(err, errno, "openpty");
	struct termios t;
	if (tcgetattr(*slave, &t) == 0) {
		cfmakeraw(&t);
		tcsetattr(*slave, TCSANOW, &t);
	}
	(void)fcntl(*master, F_SETFD, FD_CLOEXEC); /* cannot fail on an open fd */
	(void)fcntl(*slave, F_SETFD, FD_CLOEXEC);  /* cannot fail on an open fd */
	return 0;
}

int console_send_master(const char *path, int master, struct error **err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	char dummy = 0;

	if (strlen(path) >= sizeof(sa.sun_path))
		return error_setx(err, ENAMETOOLONG, "console socket %s: path too long", path);
	strcpy(sa.sun_path, path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return error_set(err, errno, "console socket %s", path);
	ssize_t n = fd_send_fds(fd, &dummy, 1, &master, 1, 0);
	if (n < 0)
		return error_set(err, (int)-n, "console socket %s: send", path);
	return 0;
}

void console_watch_init(struct console_watch *w, int fd, const Cocoon__ConsoleSize *size)
{
	w->fd = fd;
	w->rows = size ? size->rows : 0;
	w->cols = size ? size->cols : 0;
}

int console_watch_apply(struct console_watch *w, const Cocoon__ConsoleSize *size)
{
	if (!size || size->rows < 1 || size->rows > 65535 || size->cols < 1 || size->cols > 65535)
		return -ERANGE;
	struct winsize ws = {.ws_row = (unsigned short)size->rows,
			     .ws_col = (unsigned short)size->cols};
	if (w->fd < 0 || ioctl(w->fd, TIOCSWINSZ, &ws) < 0)
		return w->fd < 0 ? -EBADF : -errno;
	w->rows = size->rows;
	w->cols = size->cols;
	return 0;
}

bool console_watch_changed(struct console_watch *w, Cocoon__ConsoleSize *out)
{
	struct winsize ws;
	if (w->fd < 0 || ioctl(w->fd, TIOCGWINSZ, &ws) < 0)
		return false;
	if (ws.ws_row == w->rows && ws.ws_col == w->cols)
		return false;
	w->rows = ws.ws_row;
	w->cols = ws.ws_col;
	if (ws.ws_row == 0 || ws.ws_col == 0)
		return false;
	out->rows = ws.ws_row;
	out->cols = ws.ws_col;
	return true;
}
