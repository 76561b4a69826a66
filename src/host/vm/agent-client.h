/* The host end of the agent channel. Everything read from it comes from the
 * guest and is treated as hostile: frames are bounded, replies are checked
 * for id and type, and any violation closes the channel. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "frame.h"
#include "proto.h"

struct vm;

/* How long a send waits for the peer to read, by default (ms; [limits]
 * channel_send_timeout_ms sets it). A guest that owns its agent can stop
 * reading its channel; once the socket's buffer is full, a blocking send
 * held the VM's owner (the shim or the keeper, and so every container of
 * a pod) for ever (rev11b F3). */
#define AGENT_SEND_TIMEOUT_MS 10000

struct agent_client {
	int fd;
	uint64_t next_id;
	bool broken;
	/* A send waits at most send_timeout_ms (0: AGENT_SEND_TIMEOUT_MS) for
	 * room, and never past its call's timeout. One that times out with
	 * nothing sent fails with ETIMEDOUT and leaves the channel stalled:
	 * later sends fail at once while there is no room, until the peer
	 * reads again. One that times out part-way through a frame has cut
	 * the stream: the channel is broken (closed for good). */
	int send_timeout_ms;
	long long stalled_since; /* now_ms() when the peer stopped taking bytes; 0: not */
	/* What the channel speaks for, in the errors of sends: "container c1"
	 * ("" names nothing). */
	char what[96];
	struct frame_reader *reader;
	/* Events (Response.id == 0: output, exits) go here, also while a call
	 * waits for its reply. The callback must not free ev. */
	void (*on_event)(void *userdata, const Cocoon__Response *ev);
	void *event_userdata;
	/* Replies to requests sent with agent_send_request() arrive here (with
	 * the same userdata); the callback must not free r. */
	void (*on_reply)(void *userdata, const Cocoon__Response *r);
	/* CheckpointProgress events (a checkpoint or restore goes on in the
	 * guest), with the same userdata; the callback must not free ev. */
	void (*on_progress)(void *userdata, const Cocoon__CheckpointProgress *ev);
};

/* What the agent last said of a checkpoint or restore it runs: its
 * CheckpointProgress events, every second (guest ckpt-common.h
 * CKPT_PROGRESS_MS). The VM's owner gives up on one it hears nothing of
 * for limits.checkpoint_silence_ms (docs/config.md). */
struct agent_progress {
	long long heard_ms; /* now_ms() of the last event, or when the request went */
	bool heard;	    /* an event came */
	char stage[40];	    /* the guest's word, bounded and sanitized */
	uint64_t bytes, elapsed_ms;
};

/* A request just sent: nothing heard yet, the silence counted from now. */
void agent_progress_start(struct agent_progress *p);
/* Event EV heard now. */
void agent_progress_note(struct agent_progress *p, const Cocoon__CheckpointProgress *ev);
/* ms until P's silence reaches LIMIT_MS (<= 0: it has). */
long long agent_progress_left(const struct agent_progress *p, int limit_ms);
/* The error of WHAT ("checkpoint", "restore") given up after LIMIT_MS
 * without a word: -ETIMEDOUT, *err naming the limit and its setting and
 * the last stage heard (the caller's context names the container, as the
 * command's does: "checkpoint c1: no word from the guest ..."). */
int agent_progress_silence_error(const struct agent_progress *p, const char *what, int limit_ms,
				 struct error **err);

int agent_client_init(struct agent_client *c, int fd, struct error **err);

/* Pings the agent of the booting VM `vm` until it answers, at most
 * timeout_ms in all (one ping waits 1000 ms at most; the first one sits in
 * the channel until the agent opens its port). `what` names the VM in the
 * errors ("template VM"), NULL for none. Returns 0, -ETIMEDOUT ("agent not
 * ready after N ms"), -ECHILD when the VMM exited, or the channel's error. */
int agent_wait_ready(struct agent_client *c, struct vm *vm, const char *what, int timeout_ms,
		     struct error **err);
void agent_client_close(struct agent_client *c);

/* Sends req (protocol and id are filled in) and waits for its reply.
 * A reply carrying an error becomes a negative return with the agent's
 * message; a reply of the wrong type is a protocol violation. */
int agent_call(struct agent_client *c, Cocoon__Request *req, Cocoon__Response **resp,
	       int timeout_ms, struct error **err);

/* A request whose reply only says it was done: agent_call(), the reply
 * freed. Returns 0 or agent_call()'s error. */
int agent_request(struct agent_client *c, Cocoon__Request *req, int timeout_ms, struct error **err);

/* Freezes container ID in the guest, or thaws it (RESUME): a PauseRequest
 * through agent_request(). */
int agent_pause(struct agent_client *c, const char *id, bool resume, int timeout_ms,
		struct error **err);

/* Sends SIG to container ID's init, or to all its processes (ALL): a
 * SignalRequest through agent_request(). */
int agent_signal(struct agent_client *c, const char *id, int sig, bool all, int timeout_ms,
		 struct error **err);

/* The requests above, built for a caller that sends them its own way
 * (agent_send_request(), or through a shim): fill *req and the body, both
 * the caller's (on its stack); id is borrowed and must outlive the send.
 * agent_signal_request: SIG to ID's init, or to all its processes (ALL).
 * agent_loopback_hold_request: the pod's loopback made to drop every
 * packet (HOLD) in the network namespace of sandbox ID while restore --pod
 * brings its members back one by one, or let through again. */
void agent_signal_request(Cocoon__Request *req, Cocoon__SignalRequest *sr, const char *id, int sig,
			  bool all);
void agent_loopback_hold_request(Cocoon__Request *req, Cocoon__LoopbackHoldRequest *lh,
				 const char *id, bool hold);

/* agent_call() for a request the agent reports progress on (a restore of
 * container ID): it also fails, with agent_progress_silence_error(), once
 * SILENCE_MS go by without a CheckpointProgress event of ID. */
int agent_call_watched(struct agent_client *c, Cocoon__Request *req, const char *id, int silence_ms,
		       Cocoon__Response **resp, int timeout_ms, struct error **err);

/* agent_call() that passes file descriptors along with the request
 * (SCM_RIGHTS; the shim's control socket only). */
int agent_call_fds(struct agent_client *c, Cocoon__Request *req, const int *fds, size_t nfds,
		   Cocoon__Response **resp, int timeout_ms, struct error **err);

/* Sends req and returns at once; its reply goes to on_reply, checked by
 * agent_check_reply(). Returns the request's id, or a negative errno. */
int64_t agent_send_request(struct agent_client *c, Cocoon__Request *req, struct error **err);

/* What agent_call() does with a reply to REQ_CASE: an error reply becomes
 * a negative return with the agent's message (bounded, control characters
 * stripped); a reply of the wrong type is a protocol violation. */
int agent_check_reply(struct agent_client *c, Cocoon__Request__BodyCase req_case,
		      const Cocoon__Response *got, struct error **err);

/* Sends a request that gets no reply (stdin data). A caller that passes no
 * err gets a failure logged once (log_warning) when it stalls or breaks the
 * channel: the guest stopped reading. */
int agent_send_oneway(struct agent_client *c, Cocoon__Request *req, struct error **err);

/* Reads whatever is available without blocking and dispatches the events in
 * it. Returns -EPIPE once the peer has closed the channel. */
int agent_client_pump(struct agent_client *c, struct error **err);

/* Dispatches the events among the bytes already read, without reading:
 * those that came in the same read as a reply. */
int agent_client_drain(struct agent_client *c, struct error **err);

/* Makes guest text safe for a terminal or a log, in place: C0 controls,
 * DEL and C1 controls (U+0080..U+009F) become spaces, bytes that are not
 * UTF-8 become '?'. */
void agent_text_sanitize(char *s);

/* Sends raw bytes (tests of the agent's frame handling; every request goes
 * through it), within send_timeout_ms: 0, or ETIMEDOUT naming c->what, the
 * time and the limit (the channel stalled or broken as above), EPIPE on a
 * broken channel, or the socket's error. */
int agent_send_raw(struct agent_client *c, const void *buf, size_t len, struct error **err);

/* Reads the next reply of any id. */
int agent_read_response(struct agent_client *c, Cocoon__Response **resp, int timeout_ms,
			struct error **err);
