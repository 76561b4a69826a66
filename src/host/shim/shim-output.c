/* The container's output on its way to the engine: non-blocking writes, a
 * bounded queue per stream, and the agent asked to hold a stream the
 * engine does not read (shim-output.h). */
#include "shim-output.h"
#include "shim-state.h"
#include "agent-client.h"
#include "fdio.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* The first allocation of a queue; it doubles up to the limit. */
#define SINK_MIN_ALLOC (64 << 10)

bool shim_stall_due(struct shim_stall *stall, bool blocked, long long limit, int *timeout)
{
	if (!blocked) {
		stall->since = 0;
		return false;
	}
	long long now = now_ms();
	if (!stall->since) {
		stall->since = now;
		stall->told = false;
	}
	long long left = stall->since + limit - now;
	if (left <= 0 && !stall->told) {
		stall->told = true;
		return true;
	}
	if (left > 0 && (*timeout < 0 || *timeout > left))
		*timeout = (int)left;
	return false;
}

bool shim_channel_has_room(const struct shim *s)
{
	struct pollfd p = {.fd = s->sb.agent.fd, .events = POLLOUT};
	return poll(&p, 1, 0) == 1 && (p.revents & POLLOUT);
}

/* A file description of FD's pipe or terminal of the shim's own, with
 * O_NONBLOCK: the engine's stays as it was. /dev/ptmx is not reopened (that
 * would make a new pty): it gets O_NONBLOCK itself, as does whatever
 * cannot be reopened. */
static int sink_writer(int fd, bool *sock)
{
	struct stat st;
	*sock = false;
	if (fstat(fd, &st) < 0)
		return fd; /* its writes fail the same way: the reader is gone */
	*sock = S_ISSOCK(st.st_mode);
	if (*sock || S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))
		return fd;
	bool ptmx = S_ISCHR(st.st_mode) && major(st.st_rdev) == 5 && minor(st.st_rdev) == 2;
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	int w = ptmx ? -1 : open(path, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (w >= 0)
		return w;
	int flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		log_warning("shim: fd %d: O_NONBLOCK: %s; output to it may block the shim", fd,
			    strerror(errno));
	return fd;
}

void shim_sink_open(struct shim_sink *k, int fd, const char *exec_id, Cocoon__OutputStream stream)
{
	*k = (struct shim_sink){.fd = fd, .wfd = -1, .stream = stream};
	snprintf(k->exec_id, sizeof(k->exec_id), "%s", exec_id);
	if (fd >= 0)
		k->wfd = sink_writer(fd, &k->sock);
}

void shim_sink_hold_unknown(struct shim_sink *k)
{
	k->hold_told = true; /* told "hold" as far as anyone knows: released next */
}

void shim_sink_close(struct shim_sink *k)
{
	if (k->wfd >= 0 && k->wfd != k->fd)
		close(k->wfd);
	free(k->buf);
	*k = (struct shim_sink){.fd = -1, .wfd = -1};
}

void shim_sink_end(struct shim_sink *k)
{
	if (k->ended)
		return;
	k->ended = true;
	k->stall = (struct shim_stall){0}; /* the wait for the engine starts now */
}

size_t shim_sink_queued(const struct shim_sink *k)
{
	return k->len - k->head;
}

static void sink_empty(struct shim_sink *k)
{
	free(k->buf); /* an idle shim holds no output memory */
	k->buf = NULL;
	k->head = k->len = k->size = 0;
}

static const char *stream_name(const struct shim_sink *k)
{
	return k->stream == COCOON__OUTPUT_STREAM__OUTPUT_STDERR ? "stderr" : "stdout";
}

/* Writes what the engine takes now from P; returns how much, or -1 when
 * its reader is gone (K is then marked so and emptied). */
static ssize_t sink_try(struct shim_sink *k, const uint8_t *p, size_t n)
{
	ssize_t w = k->sock ? send(k->wfd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL) : write(k->wfd, p, n);
	if (w >= 0)
		return w;
	if (errno == EAGAIN || errno == EINTR)
		return 0;
	/* A reader that went away loses its output, as a process's writes
	 * to a closed pipe do. */
	k->gone = true;
	sink_empty(k);
	return -1;
}

static void sink_hold_update(struct shim_sink *k)
{
	size_t q = shim_sink_queued(k);
	if (q >= SHIM_OUTPUT_HIGH_WATER)
		k->hold_wanted = true;
	else if (q <= SHIM_OUTPUT_LOW_WATER)
		k->hold_wanted = false;
}

/* Makes room for N more bytes within CAP; returns how many fit. */
static size_t sink_room(struct shim_sink *k, size_t n, size_t cap)
{
	size_t q = shim_sink_queued(k);
	if (q >= cap)
		return 0;
	if (n > cap - q)
		n = cap - q;
	if (k->head && k->len + n > k->size) {
		memmove(k->buf, k->buf + k->head, q);
		k->head = 0;
		k->len = q;
	}
	if (q + n <= k->size)
		return n;
	size_t size = k->size ? k->size : SINK_MIN_ALLOC;
	while (size < q + n)
		size *= 2;
	if (size > cap)
		size = cap;
	uint8_t *b = realloc(k->buf, size);
	if (!b)
		return 0; /* counted as dropped, and reported */
	k->buf = b;
	k->size = size;
	return n;
}

static void sink_report_drop(struct shim *s, struct shim_sink *k, size_t n)
{
	k->dropped += n;
	if (k->dropped_told)
		return;
	k->dropped_told = true;
	log_warning("container %s%s%s: %zu bytes of its %s dropped: %zu bytes wait for the engine "
		    "to read them already (limits.output_queue_max_bytes = %lld), and the guest "
		    "went on sending after it was asked to hold that stream; later drops of this "
		    "stream are not reported",
		    s->args->id, *k->exec_id ? " exec " : "", k->exec_id, n, stream_name(k),
		    shim_sink_queued(k), (long long)s->args->g->cfg.output_queue_max_bytes);
}

/* A line of the shim's own log, with the container's stderr. */
static void log_to_stderr_sink(void *data, const char *text, size_t len)
{
	struct shim *s = data;
	shim_output_write(s, &s->err_sink, text, len);
}

void shim_output_take_log(struct shim *s)
{
	log_set_stderr_writer(log_to_stderr_sink, s);
}

void shim_output_write(struct shim *s, struct shim_sink *k, const void *data, size_t len)
{
	const uint8_t *p = data;
	if (k->wfd < 0 || k->gone)
		return;
	if (!shim_sink_queued(k)) {
		ssize_t w = sink_try(k, p, len);
		if (w < 0)
			return;
		p += w;
		len -= (size_t)w;
	}
	if (!len)
		return;
	size_t fit = sink_room(k, len, (size_t)s->args->g->cfg.output_queue_max_bytes);
	memcpy(k->buf + k->len, p, fit);
	k->len += fit;
	if (fit < len)
		sink_report_drop(s, k, len - fit);
	sink_hold_update(k);
}

/* The engine can take more of K's queue. */
static void sink_flush(struct shim_sink *k)
{
	while (shim_sink_queued(k)) {
		ssize_t w = sink_try(k, k->buf + k->head, shim_sink_queued(k));
		if (w <= 0)
			break;
		k->head += (size_t)w;
		k->stall.since = 0; /* it reads: no stall */
	}
	if (!k->gone && !shim_sink_queued(k))
		sink_empty(k);
	sink_hold_update(k);
}

/* Every sink of S: the container's two, and two per exec. */
static size_t sinks_of(struct shim *s, struct shim_sink **out)
{
	size_t n = 0;
	out[n++] = &s->out_sink;
	out[n++] = &s->err_sink;
	for (int i = 0; i < SHIM_MAX_EXECS; i++) {
		if (s->execs[i].used) {
			out[n++] = &s->execs[i].out_sink;
			out[n++] = &s->execs[i].err_sink;
		}
	}
	return n;
}

bool shim_output_pending(struct shim *s)
{
	struct shim_sink *k[2 + 2 * SHIM_MAX_EXECS];
	size_t n = sinks_of(s, k);
	for (size_t i = 0; i < n; i++)
		if (shim_sink_queued(k[i]))
			return true;
	return false;
}

void shim_output_discard(struct shim *s)
{
	struct shim_sink *k[2 + 2 * SHIM_MAX_EXECS];
	size_t n = sinks_of(s, k);
	for (size_t i = 0; i < n; i++)
		sink_empty(k[i]);
}

/* Tells the agent to hold K's stream, or to go on. Only when the channel
 * has room: a hostile guest that reads nothing never holds the shim here
 * (the hold waits, and the queue's cap bounds what it costs). */
static bool sink_tell(struct shim *s, struct shim_sink *k)
{
	if (k->hold_wanted == k->hold_told)
		return true;
	if (!shim_channel_has_room(s))
		return false;
	Cocoon__Request req = COCOON__REQUEST__INIT;
	Cocoon__OutputFlowRequest flow = COCOON__OUTPUT_FLOW_REQUEST__INIT;
	flow.id = (char *)s->args->id;
	flow.exec_id = k->exec_id;
	flow.stream = k->stream;
	flow.hold = k->hold_wanted;
	req.body_case = COCOON__REQUEST__BODY_OUTPUT_FLOW;
	req.output_flow = &flow;
	/* Told only once sent: a hold or a release lost to a failed send
	 * (a channel that stalled) is sent again when the channel has room; a
	 * lost release held the container's writer for good (review10 8). A
	 * channel that failed for good ends the loop through its own poll
	 * event. */
	if (agent_send_oneway(&s->sb.agent, &req, NULL) < 0)
		return false;
	k->hold_told = k->hold_wanted;
	return true;
}

/* K's engine has taken nothing for limits.channel_send_timeout_ms. */
static void sink_stalled(struct shim *s, struct shim_sink *k)
{
	long long limit = s->args->g->cfg.channel_send_timeout_ms;
	const char *ex = *k->exec_id ? " exec " : "";
	if (!k->ended) {
		log_warning("container %s%s%s: the engine has not read its %s for %lld ms "
			    "(limits.channel_send_timeout_ms): the guest is asked to hold it, and "
			    "its writer waits, as on runc with a pipe nobody reads",
			    s->args->id, ex, k->exec_id, stream_name(k), limit);
		return;
	}
	log_warning("container %s%s%s: ended, and the engine has not read its %s for %lld ms "
		    "(limits.channel_send_timeout_ms): its last %zu bytes are dropped",
		    s->args->id, ex, k->exec_id, stream_name(k), limit, shim_sink_queued(k));
	sink_empty(k);
	sink_hold_update(k);
}

void shim_output_poll(struct shim *s, struct pollfd *fds, void **tags, nfds_t *n, int *timeout,
		      bool *want_room)
{
	struct shim_sink *k[2 + 2 * SHIM_MAX_EXECS];
	size_t count = sinks_of(s, k);
	long long limit = s->args->g->cfg.channel_send_timeout_ms;
	*want_room = false;
	/* The container ended: no more output comes (shim_on_agent_event),
	 * what is queued is the last of every process, the execs' too (their
	 * exits may never come: the guest frees the container with its
	 * init's). A SIGKILL the agent did not answer stops the VM at once:
	 * nothing of a deaf guest's keeps it running. */
	if (s->kill_unanswered)
		shim_output_discard(s);
	for (size_t i = 0; i < count && s->exited; i++)
		shim_sink_end(k[i]);
	for (size_t i = 0; i < count; i++) {
		if (!sink_tell(s, k[i]))
			*want_room = true;
		bool queued = shim_sink_queued(k[i]) > 0;
		if (shim_stall_due(&k[i]->stall, queued, limit, timeout))
			sink_stalled(s, k[i]);
		if (!shim_sink_queued(k[i]))
			continue;
		fds[*n] = (struct pollfd){.fd = k[i]->wfd, .events = POLLOUT};
		tags[(*n)++] = k[i];
	}
}

bool shim_output_ready(struct shim *s, void *tag)
{
	struct shim_sink *k[2 + 2 * SHIM_MAX_EXECS];
	size_t count = sinks_of(s, k);
	for (size_t i = 0; i < count; i++) {
		if (k[i] == tag) {
			sink_flush(k[i]);
			return true;
		}
	}
	return false;
}
