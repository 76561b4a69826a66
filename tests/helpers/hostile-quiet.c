/* A hostile guest that goes quiet in a checkpoint (hostile.h): no word
 * of it until the host's next request, then its answer; and one that
 * reports its progress. Test-only; never in the image. */
#include "hostile.h"

#include <stdio.h>
#include <unistd.h>

/* "checkpoint-late": the one checkpoint held, its request's fields. */
static uint64_t late_id;
static char late_ckid[80], late_of[80];
static bool late_leave, went_quiet;

bool quiet_hold(uint64_t id, const Cocoon__CheckpointRequest *cr)
{
	if (went_quiet)
		return false;
	went_quiet = true;
	late_id = id;
	snprintf(late_ckid, sizeof(late_ckid), "%s", cr->checkpoint_id);
	snprintf(late_of, sizeof(late_of), "%s", cr->id);
	late_leave = cr->leave_running;
	note("checkpoint: quiet ", cr->checkpoint_id);
	return true;
}

bool quiet_wake(uint64_t *id, Cocoon__CheckpointRequest *cr)
{
	if (!late_id)
		return false;
	*id = late_id;
	late_id = 0;
	cr->checkpoint_id = late_ckid;
	cr->id = late_of;
	cr->leave_running = late_leave;
	note("checkpoint: late answer ", late_ckid);
	return true;
}

void progress_event(const char *id, const char *stage)
{
	Cocoon__Response r = COCOON__RESPONSE__INIT;
	Cocoon__CheckpointProgress ev = COCOON__CHECKPOINT_PROGRESS__INIT;
	r.body_case = COCOON__RESPONSE__BODY_PROGRESS;
	r.progress = &ev;
	ev.id = (char *)id;
	ev.stage = (char *)stage;
	queue(&r);
	flush();
}

void slow_dump(const char *id)
{
	for (int i = 0; i < 16; i++) {
		progress_event(id, "dump");
		usleep(500 * 1000);
	}
}
