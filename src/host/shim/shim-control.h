/* The shim's control socket and the agent's events (shim-control.c). */
#pragma once

#include "shim-state.h"

/* The agent client's event callback: output and exits, to whoever waits. */
void shim_on_agent_event(void *userdata, const Cocoon__Response *ev);

/* The agent client's progress callback: the agent's word of a checkpoint
 * or restore it runs, for the silence bound of the request it is about
 * (the container's own checkpoint, a member's forwarded one). */
void shim_on_agent_progress(void *userdata, const Cocoon__CheckpointProgress *ev);

/* The agent client's reply callback, for requests sent with
 * agent_send_request(): a member's or the container's own, forwarded
 * (shim-forward.c), or the container's own checkpoint (shim-checkpoint.c);
 * one given up on is undone
 * (shim_checkpoint_undo, shim_forward_undo). */
void shim_agent_reply(void *userdata, const Cocoon__Response *r);

/* Reads and serves what control client C sent; closes it at EOF. */
void shim_client_readable(struct shim *s, struct shim_client *c);

/* Accepts a control client on the listening socket. */
void shim_accept_client(struct shim *s);

/* Each exec that ended and whose output has gone to its engine (or was
 * dropped, shim-output.h): its exit goes to the `cocoon exec` that waits,
 * and its slot is freed. */
void shim_execs_finish(struct shim *s);
