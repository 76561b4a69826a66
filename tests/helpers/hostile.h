/* The hostile guest's parts (hostile-vmm.c): its mode and paths, and the
 * floods and attacks that run beside the protocol (hostile-floods.c).
 * Test-only; never in the image. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

/* HOSTILE_MODE, HOSTILE_CANARY, and the paths QEMU's command line names. */
extern const char *mode, *canary, *shared, *console, *volumes, *pod;

bool is(const char *m);
/* Appends WHAT and ARG as a line to HOSTILE_LOG. */
void note(const char *what, const char *arg);

void fill_shared(void);
void flood_stderr(void);
void flood_console(void);
void attack_volumes(void);
/* "member-flood": 8 MiB of output for pod member ID, in 32 KiB events. */
void member_flood(const char *id);
/* "pod": a member with rootfs ROOTFS_PATH ("<id>/rootfs") is being created. */
void attack_pod(const char *rootfs_path);
/* Plants the attack HOSTILE_MODE names for checkpoint CKID in the shared
 * directory (a good dump, for most); returns the path to name in the reply
 * (in NAMED), or NULL to fail the dump with an error. */
const char *plant(const char *ckid, char *named, size_t size);
/* "exec-exit-unknown": 2 MiB of exec REQ's output, then its exit R (with
 * X) carrying fields the protocol does not know. */
void exec_output_and_odd_exit(const Cocoon__Request *req, Cocoon__Response *r,
			      Cocoon__ExitEvent *x);
/* Responses to the host: queued, then sent in one write (hostile-vmm.c). */
void queue(const Cocoon__Response *r);
void flush(void);
/* "checkpoint-late" (hostile-quiet.c): the first checkpoint, ID with CR,
 * is held without a word (true); quiet_wake gives it back, once, for its
 * answer on the host's next request. */
bool quiet_hold(uint64_t id, const Cocoon__CheckpointRequest *cr);
bool quiet_wake(uint64_t *id, Cocoon__CheckpointRequest *cr);
/* A CheckpointProgress event of container ID at STAGE. */
void progress_event(const char *id, const char *stage);
/* "checkpoint-progress": a dump of container ID that takes 8 s and says so
 * every half second. */
void slow_dump(const char *id);
/* The modes that answer a kill (or, after "bad-reply", anything) their
 * own way (hostile-kill.c): true when REQ was answered, or ignored. */
bool kill_modes(const Cocoon__Request *req);
/* An exec's reply: started; with ENDS, ended at once with status 0. */
void exec_started(const Cocoon__Request *req, bool ends);
