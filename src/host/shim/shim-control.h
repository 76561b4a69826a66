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
 * agent_send_request(): a pod member's forwarded one (shim-pod.c), or the
 * sandbox's own checkpoint (shim-checkpoint.c); one given up on is undone
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

/* How long the shim waits for the agent to answer a SIGKILL of its
 * container before it takes the guest as deaf: limits.channel_send_timeout_ms. */
int shim_kill_ack_ms(const struct shim *s);

/* A SIGKILL of the container the agent did not answer within
 * shim_kill_ack_ms() (rev hostile5 G4: `kill` waited 30 s and failed, and
 * the VM ran on until delete --force): the container is ended with its VM,
 * which the shim's teardown kills at once. Logged, naming ERR. Returns
 * false, and does nothing, where the VM is not the container's alone (a
 * pod member, or a sandbox whose members run). */
bool shim_kill_unanswered(struct shim *s, const struct error *err);
