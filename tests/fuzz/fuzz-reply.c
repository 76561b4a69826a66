/* libFuzzer: what a hostile agent can send the host. The input is the
 * channel's byte stream; the host makes one call and reads replies and
 * events from it as the shim would: frames, decoding, id and type checks,
 * events dispatched, the guest's error text sanitized, then what is left
 * pumped as the shim's loop does.
 *
 * The channel is in memory, so that an input costs no system calls: the
 * target is linked with -Wl,--wrap for send, recv, read and poll
 * (meson.build), and the wrappers serve CHANNEL_FD from the input, as a
 * socket would after the peer wrote it all and shut down its end (reads
 * return what fits, then 0). Every other descriptor goes to libc.
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

#define CHANNEL_FD (1 << 29) /* never a real descriptor: past any RLIMIT_NOFILE */

static const uint8_t *in_data;
static size_t in_left;

ssize_t __real_send(int fd, const void *buf, size_t len, int flags);
ssize_t __real_recv(int fd, void *buf, size_t len, int flags);
ssize_t __real_read(int fd, void *buf, size_t len);
int __real_poll(struct pollfd *fds, nfds_t n, int timeout);
ssize_t __wrap_send(int fd, const void *buf, size_t len, int flags);
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

ssize_t __wrap_send(int fd, const void *buf, size_t len, int flags)
{
	return fd == CHANNEL_FD ? (ssize_t)len : __real_send(fd, buf, len, flags);
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct frame_reader *reader;
	struct agent_client c;
	size_t seen = 0;
	if (size > (1 << 20))
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
	in_data = data;
	in_left = size;
	c.on_event = on_event;
	c.event_userdata = &seen;

	Cocoon__Request req = COCOON__REQUEST__INIT;
	Cocoon__CheckpointRequest cr = COCOON__CHECKPOINT_REQUEST__INIT;
	Cocoon__Response *resp = NULL;
	struct error *err = NULL;
	cr.id = (char *)"c";
	cr.checkpoint_id = (char *)"ck";
	req.body_case = COCOON__REQUEST__BODY_CHECKPOINT;
	req.checkpoint = &cr;
	c.next_id = 1; /* so that inputs can answer id 1 */
	if (agent_call(&c, &req, &resp, 200, &err) == 0) {
		char named[64];
		snprintf(named, sizeof(named), "%s", resp->checkpoint->shared_path);
		agent_text_sanitize(named);
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
