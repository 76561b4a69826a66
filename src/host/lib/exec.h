/* runc exec in the host library (exec.c): an extra process in a running
 * container, with its own stdio and exit status. The caller's stdin, stdout
 * and stderr (or a pty's slave) are handed to the container's shim with
 * SCM_RIGHTS; the shim relays them to the guest, whose agent runs the
 * process (src/guest/execs.c) and sends its exit as an event. */
#pragma once

#include "error.h"
#include "opts.h"
#include "proto.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What `cocoon exec` asks for, by runc exec's options. Every pointer is
 * borrowed for the call. */
struct exec_options {
	/* --process: the whole process as OCI JSON. NULL: the container's own
	 * process (its config.json) with args as the command, as runc does. */
	const char *process_file;
	char *const *args; /* the command, without --process (at least one) */
	size_t n_args;
	char *const *env; /* NAME=VAL entries added to the environment */
	size_t n_env;
	const char *cwd;  /* NULL: the process's own */
	const char *user; /* "UID[:GID]" (exec_parse_user); NULL: the process's own */
	/* Without --process: whether the process gets a terminal (--tty). With
	 * --process its "terminal" member decides. */
	bool tty;
	/* --detach: return once the process started; a child of this process
	 * carries it and exits with its status. */
	bool detach;
	const char *pid_file;	    /* with detach: that child's pid goes here */
	const char *console_socket; /* a terminal's pty master goes here */
};

/* Reads --user's "UID[:GID]" (decimal) into *uid and, when given, *gid with
 * *has_gid set. Returns 0, or -EINVAL for anything else (nothing set). */
int exec_parse_user(const char *s, uint32_t *uid, uint32_t *gid, bool *has_gid);

/* Puts o's command (without --process), environment, working directory,
 * user and terminal onto the process p, which keeps owning what it holds
 * (the strings are copied). o->user must have passed exec_parse_user.
 * Returns 0, or -ENOMEM / -EINVAL with *err set. */
int exec_process_apply(Cocoon__ProcessSpec *p, const struct exec_options *o, struct error **err);

/* The process container ID's exec runs: --process's file, or the process
 * of the container's config.json (the container must be running), with
 * exec_process_apply's changes. *out is the caller's (spec_process_free).
 * Returns 0, or a negative errno with *err set (not found, not running,
 * a bad --process file, a config.json without a process). */
int exec_process_build(struct global_opts *g, const char *id, const struct exec_options *o,
		       Cocoon__ProcessSpec **out, struct error **err);

/* Runs process p in container ID with stdio[3] as its stdin, stdout and
 * stderr (borrowed: the shim gets copies), and waits for its exit. When
 * started_fd >= 0 "OK" is written to it once the guest started the process,
 * and it is closed. Returns the exit status as a shell reports it (the exit
 * code, or 128 + the signal), or a negative errno with *err set. */
int exec_run(struct global_opts *g, const char *id, Cocoon__ProcessSpec *p, const int stdio[3],
	     int started_fd, struct error **err);

/* runc exec: builds the process (exec_process_build), sets up its terminal
 * (a new pty whose master goes to o->console_socket, or the terminal this
 * process runs on, in raw mode until the exec ends), and runs it; with
 * o->detach in a child of ours whose pid goes to o->pid_file. Returns the
 * exit status (exec_run's; 0 when detached), or a negative errno with *err
 * set, naming the container. Usage errors (no command without --process, a
 * bad --user) are the caller's to catch first. */
int exec_container(struct global_opts *g, const char *id, const struct exec_options *o,
		   struct error **err);
