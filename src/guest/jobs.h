/* Child processes the agent runs and waits for without blocking (jobs.c). */
#pragma once

#include "agent.h"

int agent_job_start(struct agent *a, char *const argv[], agent_job_done_fn done, void *userdata,
		    struct error **err);
/* Both return the child's pid, or a negative errno. */
int agent_job_start_ex(struct agent *a, char *const argv[], const struct agent_job_options *o,
		       agent_job_done_fn done, void *userdata, struct error **err);
/* Kills jobs past their deadline, runs the watches that are due, and
 * finishes the jobs that ended but whose output pipe a leftover child still
 * holds (JOB_DRAIN_MS after the exit; their done callback runs from here,
 * so call it before collecting the jobs' fds to poll). Returns ms until the
 * next deadline, watch or drain, or -1. */
int agent_jobs_check_deadlines(struct agent *a);
/* Reads what job JOB wrote (bounded); finishes it at EOF once it exited. */
void agent_job_read(struct agent *a, struct agent_job *job);
/* Child PID ended with STATUS: true when it was a job (then finished),
 * false when it is someone else's (main.c routes it). */
bool agent_job_exited(struct agent *a, pid_t pid, int status);
