/* The container's output on its way to the engine (shim-output.c): the
 * shim never blocks on the engine's pipes (issue 11 L1: a blocking write to
 * an engine that stopped reading wedged the shim's loop, and `kill` got no
 * answer). What the engine has not taken waits in a bounded queue per
 * stream; past SHIM_OUTPUT_HIGH_WATER the agent is asked to hold that
 * stream (OutputFlowRequest), so the container's writer blocks as it
 * would on runc, and below SHIM_OUTPUT_LOW_WATER to go on. A guest that
 * ignores the hold loses what passes limits.output_queue_max_bytes, once
 * reported; host memory stays bounded. */
#pragma once

#include "proto.h"

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct shim;

/* Bytes queued for one stream at which the agent is asked to hold it, and
 * at which it is let go again. limits.output_queue_max_bytes (at least
 * 4 MiB, config.c) leaves room above the high mark for what is on its way
 * when the hold is sent: the agent's reply queue (it reads no output past
 * 1 MiB queued, guest container-events.c) and the channel's buffers. */
#define SHIM_OUTPUT_HIGH_WATER (1 << 20)
#define SHIM_OUTPUT_LOW_WATER (256 << 10)

/* A wait on a peer that may never end (the guest's channel, for stdin; the
 * engine's pipe, for output): since when (ms, 0: not waiting), and whether
 * it was reported. Reported once, at limits.channel_send_timeout_ms. */
struct shim_stall {
	long long since;
	bool told;
};

/* STALL goes on while BLOCKED (false: it ends). True once, when it has
 * lasted LIMIT ms; before that, *TIMEOUT (poll's, -1: none) is shortened
 * to that moment. */
bool shim_stall_due(struct shim_stall *stall, bool blocked, long long limit, int *timeout);

/* Whether the agent's channel has room for a small frame now: a unix
 * socket polls writable while at most a quarter of its send buffer is
 * taken. Nothing is sent otherwise, so a guest that stopped reading never
 * holds the shim in a send. */
bool shim_channel_has_room(const struct shim *s);

/* One output stream to the engine (or to a `cocoon exec`). */
struct shim_sink {
	int fd;	    /* the engine's, not owned; -1: none */
	int wfd;    /* a non-blocking reopen of fd (owned when != fd) */
	bool sock;  /* a socket: sent with MSG_DONTWAIT */
	bool gone;  /* its reader went away: the rest is dropped */
	bool ended; /* its process ended: what is queued is the last */
	char exec_id[65];
	Cocoon__OutputStream stream;
	uint8_t *buf; /* buf[head, len) queued; NULL when empty */
	size_t head, len, size;
	bool hold_wanted, hold_told; /* the agent asked to hold / told so */
	bool dropped_told;
	uint64_t dropped;
	struct shim_stall stall; /* the engine took nothing since */
};

/* Readies sink K for FD (-1: none) of the process EXEC_ID ("": the
 * container's init), stream STREAM. The engine's pipe is reopened through
 * /proc/self/fd with O_NONBLOCK, so the engine's own file description (and
 * the shim's stdio, its log) keeps its flags; a socket is sent to with
 * MSG_DONTWAIT; a regular file is written as it is; anything else that
 * cannot be reopened gets O_NONBLOCK set. */
void shim_sink_open(struct shim_sink *k, int fd, const char *exec_id, Cocoon__OutputStream stream);

/* The guest may hold K's stream with no word of it to this shim: a
 * whole-VM restore brought the agent back as it was saved, with the holds
 * of an engine that did not read then (review10 9), and the container's
 * writer would wait on them for good. The first shim_output_poll() with
 * room in the channel sends an explicit release. */
void shim_sink_hold_unknown(struct shim_sink *k);

/* Frees K's queue and its fd (not the engine's). */
void shim_sink_close(struct shim_sink *k);

/* Output of K's process: written now as far as the engine takes it, the
 * rest queued up to limits.output_queue_max_bytes; beyond that dropped
 * (reported once on the shim's log, naming the container, the stream and
 * the limit). Never blocks. */
void shim_output_write(struct shim *s, struct shim_sink *k, const void *data, size_t len);

/* The shim's own log lines (log.h: errors, and warnings without --log)
 * go with the container's stderr from now on: written without blocking,
 * queued while the engine does not read, dropped past the cap as the
 * container's are (issue 11: a blocking write of a warning to the
 * engine's full pipe wedged the shim, as its output did). A line that
 * waits in the queue when the shim exits is lost, as the engine did not
 * read it. */
void shim_output_take_log(struct shim *s);

/* K's process ended: what K holds is the last, and goes to the engine
 * while it reads; should it take nothing for
 * limits.channel_send_timeout_ms from now, the rest is dropped. */
void shim_sink_end(struct shim_sink *k);

/* Bytes queued in K. */
size_t shim_sink_queued(const struct shim_sink *k);

/* Whether any sink of S holds bytes for its engine. */
bool shim_output_pending(struct shim *s);

/* Drops what every sink of S holds, unreported (delete --force). */
void shim_output_discard(struct shim *s);

/* For the loop's poll: POLLOUT on every sink with bytes queued, tagged
 * with the sink, into FDS/TAGS from *N (room for 2 + 2 * SHIM_MAX_EXECS);
 * the holds and releases due are sent when the channel has room, and
 * *WANT_ROOM says that one waits for it. A sink whose engine took nothing
 * for limits.channel_send_timeout_ms is reported once; when its process
 * has ended, the rest is dropped then. *TIMEOUT is shortened to that. */
void shim_output_poll(struct shim *s, struct pollfd *fds, void **tags, nfds_t *n, int *timeout,
		      bool *want_room);

/* Whether TAG (from shim_output_poll) is one of S's sinks: then its
 * engine took what it could. */
bool shim_output_ready(struct shim *s, void *tag);
