/* Requests the shim sends the agent without waiting for the answer
 * (shim-forward.c): a pod member's, which the VM's owner (the keeper)
 * sends on, and the container's own (start, kill, pause, exec, ps,
 * stats, update), in every shim. The shim serves everything else
 * meanwhile: a guest that swallows one request holds no other container
 * of the pod, and no other command of this one. */
#pragma once

#include "shim-state.h"

/* How long a new member waits for a killed member of the same id to end
 * (shim-pod.c member_register), and the kill shim_member_gone sends is
 * waited for. */
#define MEMBER_GONE_WAIT_MS 5000

/* Whether KIND makes a connection speak for a container (create, restore). */
bool shim_joining_kind(Cocoon__Request__BodyCase kind);

/* Sends REQ of connection C (request CID there) to the agent and returns:
 * the agent's answer goes to C when it comes, or an error at the
 * request's bound. REQ already names its container: C's member's (a pod
 * member's shim asking the keeper), else the shim's own container, whose
 * completions follow the answer (start and pause: the state; pause: the
 * network's hold let go; exec: C's three stdio fds are taken now and
 * served once it started). Bounds: a member's create, restore and
 * checkpoint SHIM_CHECKPOINT_TIMEOUT_MS, its other requests
 * SHIM_FORWARD_TIMEOUT_MS; the container's own SHIM_FORWARD_TIMEOUT_MS
 * (a pod member's shim: 1 s more, its keeper answers first), a SIGKILL
 * shim_kill_ack_ms(). At most SHIM_FORWARD_INFLIGHT per connection;
 * refusals and send errors are answered to C at once. */
void shim_forward_start(struct shim *s, struct shim_client *c, Cocoon__Request *req, uint64_t cid);

/* The number of execs of the container's own, started or waiting for the
 * agent's answer; *TAKEN is set when one of them is EXEC_ID. */
int shim_forward_execs(const struct shim *s, const char *exec_id, bool *taken);

/* The agent's reply R to forward F, to the client that asked; a failed
 * create or restore unregisters the member. */
void shim_forward_reply(struct shim *s, struct shim_forward *f, const Cocoon__Response *r);

/* Forwards past their time limit, and checkpoints and restores whose guest
 * sent no word of their progress for limits.checkpoint_silence_ms, are
 * answered (ETIMEDOUT; an own SIGKILL: shim_kill_unanswered) and given up
 * on (shim_abandon); returns ms until the next limit, or -1. */
int shim_forward_check_deadlines(struct shim *s);

/* The container ended: its own requests still waiting are answered with
 * an error (ECANCELED), their stdio fds closed. */
void shim_forward_end_own(struct shim *s);

/* The late reply R to a member's restore A, given up on: a container it
 * made after all goes (nobody owns it). */
void shim_forward_undo(struct shim *s, const struct shim_abandoned *a, const Cocoon__Response *r);

/* SIG, sent to the shim, for the container's init: sent, not waited for. */
void shim_forward_signal(struct shim *s, int sig);

/* A member's shim went away (its container ended, or delete --force): its
 * container must not outlive it in the VM. Its SIGKILL is sent, not
 * waited for; the id departs (shim_find_departing) until its exit. */
void shim_member_gone(struct shim *s, const char *id);

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
