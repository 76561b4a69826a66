#include "agent-client.h"
#include "cleanup.h"
#include "fdio.h"
#include "log.h"
#include "paths.h"
#include "vm.h"

#include <poll.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int agent_client_init(struct agent_client *c, int fd, struct error **err)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->next_id = 1;
	c->reader = calloc(1, sizeof(*c->reader));
	if (!c->reader)
		return error_set(err, ENOMEM, "agent client");
	return 0;
}

void agent_client_close(struct agent_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->reader);
	c->reader = NULL;
}

static int wait_fd(int fd, short events, long long deadline, struct error **err)
{
	for (;;) {
		long long left = deadline - now_ms();
		if (left <= 0)
			return error_setx(err, ETIMEDOUT, "agent did not answer in time");
		struct pollfd p = {.fd = fd, .events = events};
		int r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return error_set(err, errno, "poll on agent channel");
		if (r > 0)
			return 0;
	}
}

static bool is_event(const Cocoon__Response *r)
{
	return r->id == 0 && (r->body_case == COCOON__RESPONSE__BODY_OUTPUT ||
			      r->body_case == COCOON__RESPONSE__BODY_EXIT);
}

/* Sends buf (with fds, SCM_RIGHTS, on its first byte) without blocking:
 * waits for room with poll() until the earlier of deadline (ms, 0: none)
 * and the send timeout. See struct agent_client for what a timeout does. */
static int send_frame(struct agent_client *c, const uint8_t *buf, size_t len, const int *fds,
		      size_t nfds, long long deadline, struct error **err)
{
	int limit = c->send_timeout_ms > 0 ? c->send_timeout_ms : AGENT_SEND_TIMEOUT_MS;
	const char *sep = c->what[0] ? ": " : "";
	size_t sent = 0;

	if (nfds > FD_SEND_MAX)
		return error_setx(err, EINVAL, "too many descriptors");
	if (c->broken)
		return error_setx(err, EPIPE, "%s%sagent channel closed after a protocol violation",
				  c->what, sep);
	long long start = now_ms(), until = start + limit;
	if (deadline > 0 && deadline < until)
		until = deadline;
	if (c->stalled_since)
		until = start; /* no room then: fail at once, not for every send again */
	while (sent < len) {
		/* The fds go with the first byte. fd_send_fds adds MSG_NOSIGNAL:
		 * a VM that died must be an error, not a SIGPIPE. */
		ssize_t n = fd_send_fds(c->fd, buf + sent, len - sent, fds, sent == 0 ? nfds : 0,
					MSG_DONTWAIT);
		if (n > 0) {
			sent += (size_t)n;
			c->stalled_since = 0;
			continue;
		}
		if (n == -EINTR)
			continue;
		if (n < 0 && n != -EAGAIN && n != -EWOULDBLOCK)
			return error_set(err, (int)-n, "%s%swrite to agent channel", c->what, sep);
		long long now = now_ms();
		if (now < until) {
			struct pollfd p = {.fd = c->fd, .events = POLLOUT};
			if (poll(&p, 1, (int)(until - now)) < 0 && errno != EINTR)
				return error_set(err, errno, "%s%spoll on agent channel", c->what,
						 sep);
			continue;
		}
		/* The peer took nothing for the whole wait. */
		long long waited = now - (c->stalled_since ? c->stalled_since : start);
		if (!c->stalled_since)
			c->stalled_since = start;
		if (sent > 0) {
			c->broken = true;
			return error_setx(
				err, ETIMEDOUT,
				"%s%sthe agent has not read its channel for %lld ms (limits.channel_send_timeout_ms = %d): a request was cut short, so the channel is closed",
				c->what, sep, waited, limit);
		}
		return error_setx(
			err, ETIMEDOUT,
			"%s%sthe agent has not read its channel for %lld ms (limits.channel_send_timeout_ms = %d): nothing was sent",
			c->what, sep, waited, limit);
	}
	return 0;
}

/* A send whose caller takes no error: logged when the channel stalls or
 * breaks by it, once (the later ones fail the same way). */
static int send_logged(struct agent_client *c, const uint8_t *buf, size_t len, long long deadline,
		       struct error **err)
{
	if (err)
		return send_frame(c, buf, len, NULL, 0, deadline, err);
	_cleanup_error_ struct error *e = NULL;
	bool was = c->stalled_since || c->broken;
	int r = send_frame(c, buf, len, NULL, 0, deadline, &e);
	if (r == -ETIMEDOUT && !was)
		log_warning("%s", e->msg);
	return r;
}

int agent_send_raw(struct agent_client *c, const void *buf, size_t len, struct error **err)
{
	return send_logged(c, buf, len, 0, err);
}

int agent_read_response(struct agent_client *c, Cocoon__Response **resp, int timeout_ms,
			struct error **err)
{
	long long deadline = now_ms() + timeout_ms;
	const uint8_t *payload;
	size_t len;

	if (c->broken)
		return error_setx(err, EPIPE, "agent channel closed after a protocol violation");
	for (;;) {
		int r = frame_reader_next(c->reader, &payload, &len);
		if (r < 0) {
			c->broken = true;
			return error_setx(err, EPROTO, "agent sent a %s",
					  r == -EMSGSIZE ? "frame over the size limit"
							 : "malformed frame");
		}
		if (r > 0) {
			*resp = cocoon__response__unpack(NULL, len, payload);
			frame_reader_consume(c->reader);
			if (!*resp) {
				c->broken = true;
				return error_setx(err, EPROTO, "agent sent an undecodable reply");
			}
			return 0;
		}
		r = wait_fd(c->fd, POLLIN, deadline, err);
		if (r < 0)
			return r;
		ssize_t n =
			read(c->fd, c->reader->buf + c->reader->len, frame_reader_room(c->reader));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return error_set(err, errno, "read from agent channel");
		if (n == 0)
			return error_setx(err, EPIPE, "agent channel closed");
		c->reader->len += (size_t)n;
	}
}

/* The response body a request expects; anything else is a violation. */
static int expected_body(Cocoon__Request__BodyCase req)
{
	switch (req) {
	case COCOON__REQUEST__BODY_PING:
		return COCOON__RESPONSE__BODY_PONG;
	case COCOON__REQUEST__BODY_TEMPLATE_RESUME:
		return COCOON__RESPONSE__BODY_TEMPLATE_RESUME;
	case COCOON__REQUEST__BODY_VERSION:
		return COCOON__RESPONSE__BODY_VERSION;
	case COCOON__REQUEST__BODY_GUEST_INFO:
		return COCOON__RESPONSE__BODY_GUEST_INFO;
	case COCOON__REQUEST__BODY_SHARED_CHECK:
		return COCOON__RESPONSE__BODY_SHARED_CHECK;
	case COCOON__REQUEST__BODY_SHUTDOWN:
		return COCOON__RESPONSE__BODY_SHUTDOWN;
	case COCOON__REQUEST__BODY_CREATE:
		return COCOON__RESPONSE__BODY_CREATE;
	case COCOON__REQUEST__BODY_START:
		return COCOON__RESPONSE__BODY_START;
	case COCOON__REQUEST__BODY_SIGNAL:
		return COCOON__RESPONSE__BODY_SIGNAL;
	case COCOON__REQUEST__BODY_PAUSE:
		return COCOON__RESPONSE__BODY_PAUSE;
	case COCOON__REQUEST__BODY_EXEC:
		return COCOON__RESPONSE__BODY_EXEC;
	case COCOON__REQUEST__BODY_PS:
		return COCOON__RESPONSE__BODY_PS;
	case COCOON__REQUEST__BODY_UPDATE:
		return COCOON__RESPONSE__BODY_UPDATE;
	case COCOON__REQUEST__BODY_STATS:
		return COCOON__RESPONSE__BODY_STATS;
	case COCOON__REQUEST__BODY_CHECKPOINT:
		return COCOON__RESPONSE__BODY_CHECKPOINT;
	case COCOON__REQUEST__BODY_RESTORE:
		return COCOON__RESPONSE__BODY_RESTORE;
	case COCOON__REQUEST__BODY_LOOPBACK_HOLD:
		return COCOON__RESPONSE__BODY_LOOPBACK_HOLD;
	default:
		return -1;
	}
}

int agent_send_oneway(struct agent_client *c, Cocoon__Request *req, struct error **err)
{
	_cleanup_free_ uint8_t *buf = NULL;
	size_t len;
	req->protocol = PROTOCOL_VERSION;
	req->id = 0;
	int r = proto_frame_request(req, &buf, &len, err);
	return r < 0 ? r : agent_send_raw(c, buf, len, err);
}

static bool is_progress(const Cocoon__Response *r)
{
	return r->id == 0 && r->body_case == COCOON__RESPONSE__BODY_PROGRESS && r->progress &&
	       r->progress->id;
}

static void dispatch_event(struct agent_client *c, Cocoon__Response *got)
{
	if (c->on_event && is_event(got))
		c->on_event(c->event_userdata, got);
	else if (c->on_progress && is_progress(got))
		c->on_progress(c->event_userdata, got->progress);
	else if (c->on_reply && got->id != 0)
		c->on_reply(c->event_userdata, got);
	cocoon__response__free_unpacked(got, NULL);
}

int64_t agent_send_request(struct agent_client *c, Cocoon__Request *req, struct error **err)
{
	_cleanup_free_ uint8_t *buf = NULL;
	size_t len;
	req->protocol = PROTOCOL_VERSION;
	req->id = c->next_id++;
	int r = proto_frame_request(req, &buf, &len, err);
	if (r >= 0)
		r = agent_send_raw(c, buf, len, err);
	return r < 0 ? r : (int64_t)req->id;
}

int agent_check_reply(struct agent_client *c, Cocoon__Request__BodyCase req_case,
		      const Cocoon__Response *got, struct error **err)
{
	if (got->error != 0) {
		int code = got->error < 0 && got->error > -4096 ? -got->error : EIO;
		char msg[512];
		/* The guest's text is shown, but bounded and stripped of
		 * control characters. */
		snprintf(msg, sizeof(msg), "%s", got->message ? got->message : "");
		agent_text_sanitize(msg);
		/* The agent's message names the operation already. */
		return error_setx(err, code, "%s", msg);
	}
	if ((int)got->body_case != expected_body(req_case)) {
		c->broken = true;
		return error_setx(err, EPROTO, "%s: agent replied with the wrong message type",
				  proto_request_name(req_case));
	}
	return 0;
}

int agent_client_drain(struct agent_client *c, struct error **err)
{
	const uint8_t *payload;
	size_t len;
	while (frame_reader_next(c->reader, &payload, &len) != 0) {
		Cocoon__Response *got = NULL;
		int r = agent_read_response(c, &got, 0, err);
		if (r < 0)
			return r;
		dispatch_event(c, got);
	}
	return 0;
}

void agent_text_sanitize(char *s)
{
	log_text_clean(s, false);
}

int agent_client_pump(struct agent_client *c, struct error **err)
{
	for (;;) {
		Cocoon__Response *got = NULL;
		const uint8_t *payload;
		size_t len;
		int r = frame_reader_next(c->reader, &payload, &len);
		if (r == 0) {
			ssize_t n = recv(c->fd, c->reader->buf + c->reader->len,
					 frame_reader_room(c->reader), MSG_DONTWAIT);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				return 0;
			if (n < 0)
				return error_set(err, errno, "read from agent channel");
			if (n == 0)
				return error_setx(err, EPIPE, "agent channel closed");
			c->reader->len += (size_t)n;
			continue;
		}
		r = agent_read_response(c, &got, 0, err);
		if (r < 0)
			return r;
		dispatch_event(c, got);
	}
}

int agent_call(struct agent_client *c, Cocoon__Request *req, Cocoon__Response **resp,
	       int timeout_ms, struct error **err)
{
	return agent_call_fds(c, req, NULL, 0, resp, timeout_ms, err);
}

int agent_request(struct agent_client *c, Cocoon__Request *req, int timeout_ms, struct error **err)
{
	Cocoon__Response *resp = NULL;
	int r = agent_call(c, req, &resp, timeout_ms, err);
	if (r == 0)
		cocoon__response__free_unpacked(resp, NULL);
	return r;
}

int agent_pause(struct agent_client *c, const char *id, bool resume, int timeout_ms,
		struct error **err)
{
	Cocoon__Request req = COCOON__REQUEST__INIT;
	Cocoon__PauseRequest pr = COCOON__PAUSE_REQUEST__INIT;
	pr.id = (char *)id;
	pr.resume = resume;
	req.body_case = COCOON__REQUEST__BODY_PAUSE;
	req.pause = &pr;
	return agent_request(c, &req, timeout_ms, err);
}

void agent_signal_request(Cocoon__Request *req, Cocoon__SignalRequest *sr, const char *id, int sig,
			  bool all)
{
	*req = (Cocoon__Request)COCOON__REQUEST__INIT;
	*sr = (Cocoon__SignalRequest)COCOON__SIGNAL_REQUEST__INIT;
	sr->id = (char *)id;
	sr->signal = sig;
	sr->all = all;
	req->body_case = COCOON__REQUEST__BODY_SIGNAL;
	req->signal = sr;
}

int agent_signal(struct agent_client *c, const char *id, int sig, bool all, int timeout_ms,
		 struct error **err)
{
	Cocoon__Request req;
	Cocoon__SignalRequest sr;
	agent_signal_request(&req, &sr, id, sig, all);
	return agent_request(c, &req, timeout_ms, err);
}

void agent_loopback_hold_request(Cocoon__Request *req, Cocoon__LoopbackHoldRequest *lh,
				 const char *id, bool hold)
{
	*req = (Cocoon__Request)COCOON__REQUEST__INIT;
	*lh = (Cocoon__LoopbackHoldRequest)COCOON__LOOPBACK_HOLD_REQUEST__INIT;
	lh->id = (char *)id;
	lh->hold = hold;
	req->body_case = COCOON__REQUEST__BODY_LOOPBACK_HOLD;
	req->loopback_hold = lh;
}

void agent_progress_start(struct agent_progress *p)
{
	*p = (struct agent_progress){.heard_ms = now_ms()};
}

void agent_progress_note(struct agent_progress *p, const Cocoon__CheckpointProgress *ev)
{
	p->heard_ms = now_ms();
	p->heard = true;
	snprintf(p->stage, sizeof(p->stage), "%s", ev->stage ? ev->stage : "");
	agent_text_sanitize(p->stage);
	p->bytes = ev->bytes;
	p->elapsed_ms = ev->elapsed_ms;
}

long long agent_progress_left(const struct agent_progress *p, int limit_ms)
{
	return p->heard_ms + limit_ms - now_ms();
}

int agent_progress_silence_error(const struct agent_progress *p, const char *what, int limit_ms,
				 struct error **err)
{
	long long quiet = now_ms() - p->heard_ms;
	char mib[48] = "";
	if (!p->heard)
		return error_setx(
			err, ETIMEDOUT,
			"no word from the guest for %lld ms (limits.checkpoint_silence_ms = %d): it never reported the %s as started",
			quiet, limit_ms, what);
	/* The guest's figures, bounded for the sentence. */
	if (p->bytes)
		snprintf(mib, sizeof(mib), ", %.1f MiB written",
			 (double)(p->bytes > (1ULL << 60) ? 1ULL << 60 : p->bytes) / (1 << 20));
	return error_setx(
		err, ETIMEDOUT,
		"no word from the guest for %lld ms (limits.checkpoint_silence_ms = %d): the last stage heard was \"%s\", %.1f s in%s",
		quiet, limit_ms, p->stage,
		(double)(p->elapsed_ms > 1000000000ULL ? 1000000000ULL : p->elapsed_ms) / 1000.0,
		mib);
}

/* What agent_call_watched() watches besides the reply. */
struct call_watch {
	const char *id;
	int silence_ms;
	struct agent_progress progress;
};

/* Sends REQ with its fds and waits for its reply: at most timeout_ms, and
 * with W at most W's silence without a progress event of W's container. */
static int call_fds_watched(struct agent_client *c, Cocoon__Request *req, const int *fds,
			    size_t nfds, struct call_watch *w, Cocoon__Response **resp,
			    int timeout_ms, struct error **err)
{
	_cleanup_free_ uint8_t *buf = NULL;
	long long deadline = now_ms() + timeout_ms;
	const char *what = proto_request_name(req->body_case);
	size_t len;

	req->protocol = PROTOCOL_VERSION;
	req->id = c->next_id++;
	int r = proto_frame_request(req, &buf, &len, err);
	if (r >= 0)
		r = send_frame(c, buf, len, fds, nfds, deadline, err);
	if (r < 0)
		return error_wrap(err, "%s", what);
	if (w)
		agent_progress_start(&w->progress);
	for (;;) {
		Cocoon__Response *got = NULL;
		long long left = deadline - now_ms();
		long long quiet = w ? agent_progress_left(&w->progress, w->silence_ms) : left;
		long long wait = quiet < left ? quiet : left;
		r = agent_read_response(c, &got, wait > 0 ? (int)wait : 0, err);
		if (r == -ETIMEDOUT && w && agent_progress_left(&w->progress, w->silence_ms) <= 0) {
			if (err)
				error_free(err);
			return agent_progress_silence_error(&w->progress, what, w->silence_ms, err);
		}
		if (r < 0)
			return error_wrap(err, "%s", what);
		if (got->id != req->id) {
			/* An event, or a late reply to an earlier, timed-out call. */
			if (w && is_progress(got) && strcmp(got->progress->id, w->id) == 0)
				agent_progress_note(&w->progress, got->progress);
			dispatch_event(c, got);
			continue;
		}
		r = agent_check_reply(c, req->body_case, got, err);
		if (r < 0) {
			cocoon__response__free_unpacked(got, NULL);
			return r;
		}
		*resp = got;
		return 0;
	}
}

int agent_call_fds(struct agent_client *c, Cocoon__Request *req, const int *fds, size_t nfds,
		   Cocoon__Response **resp, int timeout_ms, struct error **err)
{
	return call_fds_watched(c, req, fds, nfds, NULL, resp, timeout_ms, err);
}

int agent_call_watched(struct agent_client *c, Cocoon__Request *req, const char *id, int silence_ms,
		       Cocoon__Response **resp, int timeout_ms, struct error **err)
{
	struct call_watch w = {.id = id, .silence_ms = silence_ms};
	return call_fds_watched(c, req, NULL, 0, &w, resp, timeout_ms, err);
}

int agent_wait_ready(struct agent_client *c, struct vm *vm, const char *what, int timeout_ms,
		     struct error **err)
{
	const char *sep = what ? ": " : "";
	long long deadline = now_ms() + timeout_ms;

	if (!what)
		what = "";
	for (;;) {
		Cocoon__Request req = COCOON__REQUEST__INIT;
		Cocoon__Ping ping = COCOON__PING__INIT;
		Cocoon__Response *resp = NULL;
		_cleanup_error_ struct error *e = NULL;

		req.body_case = COCOON__REQUEST__BODY_PING;
		req.ping = &ping;
		long long left = deadline - now_ms();
		if (left <= 0)
			return error_setx(err, ETIMEDOUT, "%s%sagent not ready after %d ms", what,
					  sep, timeout_ms);
		int r = agent_call(c, &req, &resp, left > 1000 ? 1000 : (int)left, &e);
		if (r == 0) {
			cocoon__response__free_unpacked(resp, NULL);
			return 0;
		}
		/* A closed channel usually means the VMM is on its way out. */
		for (int i = 0; r != -ETIMEDOUT && i < 50 && !vm_check_exited(vm); i++)
			usleep(10000);
		if (vm_check_exited(vm))
			return error_setx(err, ECHILD, "%s%sVM exited during boot", what, sep);
		if (r != -ETIMEDOUT) {
			*err = TAKE_PTR(e);
			return r;
		}
	}
}
