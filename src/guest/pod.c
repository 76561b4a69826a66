/* Pods in the guest: the hold on a pod's loopback during a whole-pod
 * restore (LoopbackHoldRequest, docs/pods.md).
 *
 * Each member of a pod is restored by a CRIU run of its own, in the pod's
 * network namespace. CRIU locks a member's TCP connections only for the
 * length of its own run (its nftables table goes at the end), and a socket
 * leaving repair mode sends a window probe at once; so the first member of
 * a loopback connection to come back would send to a peer that is not
 * there yet, and the kernel would answer with a reset. While the host
 * restores the members, one rule in the pod's namespace drops everything
 * that arrives on lo; TCP retransmits once it is gone. */
#include "pod.h"
#include "channel.h"
#include "jobs.h"
#include "agent.h"
#include "cleanup.h"
#include "container.h"

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define IPTABLES "/usr/sbin/iptables"

struct hold_ctx {
	struct agent *a;
	uint64_t id;
	bool hold;
};

static void hold_done(struct agent_job *job, int status)
{
	struct hold_ctx *x = job->userdata;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		const char *out = job->out ? job->out : "";
		agent_send_error(x->a, x->id, EIO, "%s the pod's loopback: iptables failed: %.200s",
				 x->hold ? "hold" : "release", out);
	} else {
		Cocoon__Response resp = COCOON__RESPONSE__INIT;
		Cocoon__LoopbackHoldReply reply = COCOON__LOOPBACK_HOLD_REPLY__INIT;
		resp.id = x->id;
		resp.body_case = COCOON__RESPONSE__BODY_LOOPBACK_HOLD;
		resp.loopback_hold = &reply;
		agent_send_response(x->a, &resp);
	}
	free(x);
}

void pod_handle_loopback_hold(struct agent *a, uint64_t id, const Cocoon__LoopbackHoldRequest *req)
{
	struct agent_container *c = container_find(a, req->id);
	_cleanup_error_ struct error *err = NULL;
	char netns[64];

	if (!c || c->procs[0].pid <= 0) {
		agent_send_error(a, id, ENOENT, "loopback hold: no running container %s", req->id);
		return;
	}
	snprintf(netns, sizeof(netns), "/proc/%d/ns/net", c->procs[0].pid);
	struct hold_ctx *x = calloc(1, sizeof(*x));
	if (!x) {
		agent_send_error(a, id, ENOMEM, "loopback hold");
		return;
	}
	*x = (struct hold_ctx){.a = a, .id = id, .hold = req->hold};
	char *argv[] = {(char *)IPTABLES,
			(char *)"-w",
			(char *)"-t",
			(char *)"filter",
			req->hold ? (char *)"-I" : (char *)"-D",
			(char *)"INPUT",
			(char *)"-i",
			(char *)"lo",
			(char *)"-j",
			(char *)"DROP",
			NULL};
	struct agent_job_options o = {.netns = netns, .timeout_ms = 30000};
	if (agent_job_start_ex(a, argv, &o, hold_done, x, &err) < 0) {
		agent_send_error(a, id, EIO, "loopback hold: %s", err ? err->msg : "iptables");
		free(x);
	}
}
