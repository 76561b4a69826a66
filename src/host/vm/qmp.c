/* QMP client (qmp.h). */
#include "qmp.h"
#include "cleanup.h"
#include "fdio.h"
#include "paths.h"

#include <json-c/json.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

/* Reads one JSON line (QMP sends one message per line). */
static int qmp_read_line(struct qmp *q, char **line, long long deadline, struct error **err)
{
	for (;;) {
		char *nl = memchr(q->buf, '\n', q->len);
		if (nl) {
			*nl = 0;
			*line = strdup(q->buf);
			size_t used = (size_t)(nl + 1 - q->buf);
			memmove(q->buf, nl + 1, q->len - used);
			q->len -= used;
			return *line ? 0 : error_set(err, ENOMEM, "qmp");
		}
		if (q->len == sizeof(q->buf) - 1)
			return error_setx(err, EMSGSIZE, "QMP line longer than %zu bytes",
					  sizeof(q->buf));
		int left = (int)(deadline - now_ms());
		struct pollfd p = {.fd = q->fd, .events = POLLIN};
		if (left <= 0 || poll(&p, 1, left) == 0)
			return error_setx(err, ETIMEDOUT, "QMP: no answer");
		ssize_t n = read(q->fd, q->buf + q->len, sizeof(q->buf) - 1 - q->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return error_set(err, n < 0 ? errno : EPIPE, "QMP: connection lost");
		q->len += (size_t)n;
	}
}

/* Runs one command, with an fd attached when fd >= 0 (getfd); the reply is
 * returned in *reply when asked for. Events in between are skipped: QEMU
 * writes them as {"timestamp": ..., "event": ...}, so they are told by
 * their "event" member, never by how the line starts (a line taken for the
 * reply would leave every later reply one message behind). */
int qmp_call(struct qmp *q, const char *cmd, int fd, char **reply, struct error **err)
{
	size_t len = strlen(cmd);
	ssize_t sent = fd_send_fds(q->fd, cmd, len, &fd, fd >= 0 ? 1 : 0, 0);
	if (sent != (ssize_t)len)
		return error_set(err, sent < 0 ? (int)-sent : EIO, "QMP: send");
	long long deadline = now_ms() + QMP_TIMEOUT_MS;
	for (;;) {
		_cleanup_free_ char *line = NULL;
		int r = qmp_read_line(q, &line, deadline, err);
		if (r < 0)
			return r;
		json_object *o = json_tokener_parse(line);
		bool event = o && json_object_object_get_ex(o, "event", NULL);
		bool failed = !o || json_object_object_get_ex(o, "error", NULL) ||
			      !json_object_object_get_ex(o, "return", NULL);
		if (o)
			json_object_put(o);
		if (event)
			continue;
		if (failed)
			return error_setx(err, EIO, "QMP %.*s: %s", (int)strcspn(cmd, ","), cmd,
					  line);
		if (reply)
			*reply = TAKE_PTR(line);
		return 0;
	}
}

int qmp_status(const char *reply, char *status, size_t size)
{
	json_object *o = json_tokener_parse(reply), *ret, *v;
	int r = -EINVAL;
	if (o && json_object_object_get_ex(o, "return", &ret) &&
	    json_object_object_get_ex(ret, "status", &v) &&
	    json_object_is_type(v, json_type_string) &&
	    (size_t)json_object_get_string_len(v) < size) {
		snprintf(status, size, "%s", json_object_get_string(v));
		r = 0;
	}
	if (o)
		json_object_put(o);
	return r;
}

int qmp_connect(struct qmp *q, struct vm *vm, const char *path, struct error **err)
{
	q->len = 0;
	q->fd = vm_wait_socket(vm, path, VM_SOCKET_TIMEOUT_MS, err);
	if (q->fd < 0)
		return q->fd;
	_cleanup_free_ char *greeting = NULL;
	int r = qmp_read_line(q, &greeting, now_ms() + QMP_TIMEOUT_MS, err);
	if (r < 0)
		return r;
	return qmp_call(q, "{\"execute\":\"qmp_capabilities\"}\n", -1, NULL, err);
}
