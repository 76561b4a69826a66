/* The channel to the host (channel.c): the agent's bottom layer. */
#pragma once

#include "agent.h"

/* Queues a reply or event for the host (dropped, and logged, past
 * AGENT_OUTQ_MAX: a host that stops reading cannot make us grow). */
void agent_send_response(struct agent *a, Cocoon__Response *resp);
/* Queues an error reply to request ID: CODE is an errno value. */
void agent_send_error(struct agent *a, uint64_t id, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Writes what is queued for the host now, as far as the channel takes it
 * without blocking (the main loop writes the rest). */
void agent_flush(struct agent *a);
/* The agent's log: the console (A may be NULL). */
void agent_log(struct agent *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
