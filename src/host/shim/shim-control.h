/* The shim's control socket and the agent's events (shim-control.c). */
#pragma once

#include "shim-state.h"

/* The agent client's event callback: output and exits, to whoever waits. */
void shim_on_agent_event(void *userdata, const Cocoon__Response *ev);

/* The agent client's reply callback, for requests sent with
 * agent_send_request(): a pod member's forwarded one (shim-pod.c), or the
 * sandbox's own checkpoint (shim-checkpoint.c). */
void shim_agent_reply(void *userdata, const Cocoon__Response *r);

/* Reads and serves what control client C sent; closes it at EOF. */
void shim_client_readable(struct shim *s, struct shim_client *c);

/* Accepts a control client on the listening socket. */
void shim_accept_client(struct shim *s);
