/* The channel to the host, the bottom layer of the agent (channel.h): the
 * queue of replies and events, written as far as the channel takes them,
 * and the agent's own log. */
#include "channel.h"
#include "cleanup.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void agent_log(struct agent *a, const char *fmt, ...)
{
	va_list ap;

	(void)a;
	fputs("cocoon-agent: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void agent_send_response(struct agent *a, Cocoon__Response *resp)
{
	_cleanup_free_ uint8_t *buf = NULL;
	size_t len = 0;

	if (proto_frame_response(resp, &buf, &len, NULL) < 0)
		return;
	if (a->outq_len + len > AGENT_OUTQ_MAX) {
		agent_log(a, "host is not reading; dropping reply %llu",
			  (unsigned long long)resp->id);
		return;
	}
	uint8_t *grown = realloc(a->outq, a->outq_len + len);
	if (!grown)
		return;
	a->outq = grown;
	memcpy(a->outq + a->outq_len, buf, len);
	a->outq_len += len;
}

void agent_send_error(struct agent *a, uint64_t id, int code, const char *fmt, ...)
{
	Cocoon__Response resp = COCOON__RESPONSE__INIT;
	_cleanup_free_ char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	resp.id = id;
	resp.error = code > 0 ? -code : code;
	resp.message = msg ? msg : (char *)"error";
	agent_send_response(a, &resp);
}

void agent_flush(struct agent *a)
{
	while (a->outq_len > 0) {
		ssize_t n = write(a->channel_fd, a->outq, a->outq_len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			if (errno != EAGAIN)
				a->outq_len = 0; /* peer gone; nobody will read it */
			return;
		}
		memmove(a->outq, a->outq + n, a->outq_len - (size_t)n);
		a->outq_len -= (size_t)n;
	}
}
