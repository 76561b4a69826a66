/* The hostile guest's answers to kills and execs (hostile-vmm.c): a guest
 * that ignores a kill, refuses it as for a container it had freed, or
 * breaks the protocol and goes quiet. Test-only; never in the image. */
#include "hostile.h"

#include <errno.h>
#include <stdbool.h>

static void error_reply(uint64_t id, int code, const char *msg)
{
	Cocoon__Response r = COCOON__RESPONSE__INIT;
	r.id = id;
	r.error = -code;
	r.message = (char *)msg;
	queue(&r);
	flush();
}

bool kill_modes(const Cocoon__Request *req)
{
	static bool violated;
	/* "kill-deaf" ("flood-kill-deaf": an exec it starts floods its
	 * output and never ends): reads a kill or a shutdown and does
	 * nothing. */
	if ((is("kill-deaf") || is("flood-kill-deaf")) &&
	    (req->body_case == COCOON__REQUEST__BODY_SIGNAL ||
	     req->body_case == COCOON__REQUEST__BODY_SHUTDOWN)) {
		note("ignored ", proto_request_name(req->body_case));
		return true;
	}
	/* "bad-reply": answers a ps with a SignalReply (the wrong type, a
	 * protocol violation), then reads everything and answers nothing,
	 * its channel open. */
	if (violated) {
		note("after the violation, ignored ", proto_request_name(req->body_case));
		return true;
	}
	if (is("bad-reply") && req->body_case == COCOON__REQUEST__BODY_PS) {
		Cocoon__Response r = COCOON__RESPONSE__INIT;
		Cocoon__SignalReply sig = COCOON__SIGNAL_REPLY__INIT;
		r.id = req->id;
		r.body_case = COCOON__RESPONSE__BODY_SIGNAL;
		r.signal = &sig;
		queue(&r);
		flush();
		violated = true;
		note("wrong reply type sent", "");
		return true;
	}
	/* "kill-enoent": a kill is refused as for a container the guest had
	 * freed ("no such container"), with no exit ever sent. */
	if (is("kill-enoent") && req->body_case == COCOON__REQUEST__BODY_SIGNAL) {
		note("refused kill with ENOENT", "");
		error_reply(req->id, ENOENT, "kill: no such container");
		return true;
	}
	return false;
}

void exec_started(const Cocoon__Request *req, bool ends)
{
	Cocoon__Response r = COCOON__RESPONSE__INIT;
	Cocoon__ExecReply e = COCOON__EXEC_REPLY__INIT;
	Cocoon__ExitEvent x = COCOON__EXIT_EVENT__INIT;
	r.id = req->id;
	r.body_case = COCOON__RESPONSE__BODY_EXEC;
	r.exec = &e;
	e.pid = 2;
	queue(&r);
	if (ends) {
		r = (Cocoon__Response)COCOON__RESPONSE__INIT;
		r.body_case = COCOON__RESPONSE__BODY_EXIT;
		r.exit = &x;
		x.id = req->exec->id;
		x.exec_id = req->exec->exec_id;
		if (is("exec-exit-unknown")) {
			flush();
			exec_output_and_odd_exit(req, &r, &x);
			return;
		}
		queue(&r);
	}
	flush();
}
