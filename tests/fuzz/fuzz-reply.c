/* libFuzzer: what a hostile agent can send the host. The input's first
 * byte picks the request the host makes (checkpoint, stats, ps, version,
 * restore or ping, modulo 6); the rest is the channel's byte stream. The
 * host makes that one call and reads replies and events from the stream as
 * the shim would: frames, decoding, id and type checks, events dispatched,
 * the guest's error text sanitized; the reply it takes is then read as the
 * host's commands read it (the checkpoint's shared_path, stats_json() for
 * the stats reader, the ps pids, the version text, the restore's console
 * size); then what is left is pumped as the shim's loop does.
 *
 * The channel is in memory, so that an input costs no system calls: the
 * target is linked with -Wl,--wrap for sendmsg (what fd_send_fds sends the
 * request with), recv, read and poll (meson.build), and the wrappers serve
 * CHANNEL_FD from the input, as a socket would after the peer wrote it all
 * and shut down its end (reads return what fits, then 0); a send takes the
 * whole request. Every other descriptor goes to libc.
 * The frame reader's 1 MiB buffer is allocated once, and poisoned for ASan
 * before each input: a read of a byte the channel never delivered is
 * reported, as it would not be in a freshly zeroed buffer. */
#include <errno.h>
#include <poll.h>
#include <sanitizer/asan_interface.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent-client.h"
#include "stats.h"

#define CHANNEL_FD (1 << 29) /* never a real descriptor: past any RLIMIT_NOFILE */

static const uint8_t *in_data;
static size_t in_left;

ssize_t __real_sendmsg(int fd, const struct msghdr *msg, int flags);
ssize_t __real_recv(int fd, void *buf, size_t len, int flags);
ssize_t __real_read(int fd, void *buf, size_t len);
int __real_poll(struct pollfd *fds, nfds_t n, int timeout);
ssize_t __wrap_sendmsg(int fd, const struct msghdr *msg, int flags);
ssize_t __wrap_recv(int fd, void *buf, size_t len, int flags);
ssize_t __wrap_read(int fd, void *buf, size_t len);
int __wrap_poll(struct pollfd *fds, nfds_t n, int timeout);

static ssize_t channel_read(void *buf, size_t len)
{
	size_t n = len < in_left ? len : in_left;
	ASAN_UNPOISON_MEMORY_REGION(buf, n);
	memcpy(buf, in_data, n);
	in_data += n;
	in_left -= n;
	return (ssize_t)n;
}

ssize_t __wrap_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	if (fd != CHANNEL_FD)
		return __real_sendmsg(fd, msg, flags);
	size_t len = 0;
	for (size_t i = 0; i < msg->msg_iovlen; i++)
		len += msg->msg_iov[i].iov_len;
	return (ssize_t)len;
}

ssize_t __wrap_recv(int fd, void *buf, size_t len, int flags)
{
	return fd == CHANNEL_FD ? channel_read(buf, len) : __real_recv(fd, buf, len, flags);
}

ssize_t __wrap_read(int fd, void *buf, size_t len)
{
	return fd == CHANNEL_FD ? channel_read(buf, len) : __real_read(fd, buf, len);
}

int __wrap_poll(struct pollfd *fds, nfds_t n, int timeout)
{
	if (n == 1 && fds[0].fd == CHANNEL_FD) {
		/* Readable: data, or the peer's end of file. */
		fds[0].revents = fds[0].events & POLLIN;
		return fds[0].revents ? 1 : 0;
	}
	return __real_poll(fds, n, timeout);
}

static void on_event(void *ud, const Cocoon__Response *ev)
{
	size_t *n = ud;
	if (ev->body_case == COCOON__RESPONSE__BODY_OUTPUT)
		*n += ev->output->data.len + strlen(ev->output->exec_id);
	else if (ev->body_case == COCOON__RESPONSE__BODY_EXIT)
		*n += strlen(ev->exit->exec_id);
}

/* The request of kind k (the input's first byte, modulo N_KINDS), in *req. */
#define N_KINDS 6
struct request {
	Cocoon__Request req;
	Cocoon__CheckpointRequest checkpoint;
	Cocoon__StatsRequest stats;
	Cocoon__PsRequest ps;
	Cocoon__VersionRequest version;
	Cocoon__RestoreRequest restore;
	Cocoon__Ping ping;
};

static void make_request(struct request *r, unsigned k)
{
	r->req = (Cocoon__Request)COCOON__REQUEST__INIT;
	switch (k % N_KINDS) {
	case 0:
		r->checkpoint = (Cocoon__CheckpointRequest)COCOON__CHECKPOINT_REQUEST__INIT;
		r->checkpoint.id = (char *)"c";
		r->checkpoint.checkpoint_id = (char *)"ck";
		r->req.body_case = COCOON__REQUEST__BODY_CHECKPOINT;
		r->req.checkpoint = &r->checkpoint;
		break;
	case 1:
		r->stats = (Cocoon__StatsRequest)COCOON__STATS_REQUEST__INIT;
		r->stats.id = (char *)"c";
		r->req.body_case = COCOON__REQUEST__BODY_STATS;
		r->req.stats = &r->stats;
		break;
	case 2:
		r->ps = (Cocoon__PsRequest)COCOON__PS_REQUEST__INIT;
		r->ps.id = (char *)"c";
		r->req.body_case = COCOON__REQUEST__BODY_PS;
		r->req.ps = &r->ps;
		break;
	case 3:
		r->version = (Cocoon__VersionRequest)COCOON__VERSION_REQUEST__INIT;
		r->req.body_case = COCOON__REQUEST__BODY_VERSION;
		r->req.version = &r->version;
		break;
	case 4:
		r->restore = (Cocoon__RestoreRequest)COCOON__RESTORE_REQUEST__INIT;
		r->restore.shared_path = (char *)"checkpoints/ck";
		r->req.body_case = COCOON__REQUEST__BODY_RESTORE;
		r->req.restore = &r->restore;
		break;
	default:
		r->ping = (Cocoon__Ping)COCOON__PING__INIT;
		r->req.body_case = COCOON__REQUEST__BODY_PING;
		r->req.ping = &r->ping;
		break;
	}
}

/* What the host's commands take from a reply agent_call() accepted
 * (checkpoint.c, stats.c, cmd-control.c, cmd-check.c, shim-setup.c); a
 * body the check let through empty is a crash here, as it would be there. */
static size_t use_reply(const Cocoon__Response *resp)
{
	char text[128];
	size_t n = 0;
	switch (resp->body_case) {
	case COCOON__RESPONSE__BODY_CHECKPOINT:
		snprintf(text, sizeof(text), "%s", resp->checkpoint->shared_path);
		agent_text_sanitize(text);
		n = strlen(text) + (resp->checkpoint->stats ? 1 : 0);
		break;
	case COCOON__RESPONSE__BODY_STATS: {
		json_object *o = stats_json("c", resp->stats);
		if (!o)
			abort();
		n = strlen(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		json_object_put(o);
		break;
	}
	case COCOON__RESPONSE__BODY_PS:
		for (size_t i = 0; i < resp->ps->n_pids; i++)
			n += resp->ps->pids[i];
		break;
	case COCOON__RESPONSE__BODY_VERSION:
		snprintf(text, sizeof(text), "%s", resp->version->agent_version);
		agent_text_sanitize(text);
		n = strlen(text) + resp->version->protocol;
		break;
	case COCOON__RESPONSE__BODY_RESTORE:
		n = resp->restore->pid + (resp->restore->stats ? 1 : 0);
		if (resp->restore->console_size)
			n += resp->restore->console_size->rows + resp->restore->console_size->cols;
		break;
	default:
		n = resp->pong ? resp->pong->nonce : 0;
		break;
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct frame_reader *reader;
	struct agent_client c;
	size_t seen = 0;
	if (size < 1 || size > (1 << 20))
		return 0;
	if (!reader) {
		if (agent_client_init(&c, CHANNEL_FD, NULL) < 0)
			abort();
		reader = c.reader;
	}
	memset(&c, 0, sizeof(c));
	c.fd = CHANNEL_FD;
	c.reader = reader;
	reader->len = 0;
	ASAN_POISON_MEMORY_REGION(reader->buf, sizeof(reader->buf));
	in_data = data + 1;
	in_left = size - 1;
	c.on_event = on_event;
	c.event_userdata = &seen;

	struct request r;
	Cocoon__Response *resp = NULL;
	struct error *err = NULL;
	make_request(&r, data[0]);
	c.next_id = 1; /* so that inputs can answer id 1 */
	if (agent_call(&c, &r.req, &resp, 200, &err) == 0) {
		/* agent_check_reply() lets through only the expected body. */
		if ((int)resp->body_case == COCOON__RESPONSE__BODY__NOT_SET)
			__builtin_trap();
		seen += use_reply(resp);
		cocoon__response__free_unpacked(resp, NULL);
	}
	error_free(&err);
	err = NULL;
	agent_client_drain(&c, &err);
	error_free(&err);
	err = NULL;
	agent_client_pump(&c, &err);
	error_free(&err);
	/* agent_client_close() would close the descriptor and free the reader,
	 * both kept for the next input. */
	return 0;
}
