#include "terminal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>

int terminal_set_size(int master, const Cocoon__ConsoleSize *size)
{
	if (!size || size->rows == 0 || size->cols == 0)
		return 0;
	if (size->rows > TERMINAL_SIZE_MAX || size->cols > TERMINAL_SIZE_MAX)
		return -EINVAL;
	struct winsize ws = {.ws_row = (unsigned short)size->rows,
			     .ws_col = (unsigned short)size->cols};
	return ioctl(master, TIOCSWINSZ, &ws) < 0 ? -errno : 0;
}

bool terminal_size_line(int master, char *buf, size_t size)
{
	struct winsize ws;
	if (master < 0 || ioctl(master, TIOCGWINSZ, &ws) < 0)
		return false;
	int n = snprintf(buf, size, "winsize %u %u", ws.ws_row, ws.ws_col);
	return n > 0 && (size_t)n < size;
}

bool terminal_parse_size_line(const char *line, Cocoon__ConsoleSize *out)
{
	unsigned rows, cols;
	char end;
	/* %u takes a sign and wraps: only digits are accepted. */
	if (strncmp(line, "winsize ", 8) != 0 ||
	    strspn(line + 8, "0123456789 ") != strlen(line + 8))
		return false;
	if (strlen(line) > 8 + 2 * 5 + 1 ||
	    sscanf(line, "winsize %u %u%c", &rows, &cols, &end) != 2)
		return false;
	if (rows > TERMINAL_SIZE_MAX || cols > TERMINAL_SIZE_MAX)
		return false;
	out->rows = rows;
	out->cols = cols;
	return true;
}
