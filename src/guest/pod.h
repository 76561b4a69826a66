/* Pods in the guest (pod.c): the hold on a pod's loopback during a
 * whole-pod restore. */
#pragma once

#include "agent.h"

/* LoopbackHoldRequest: req->hold inserts (else deletes) the rule that drops
 * what arrives on lo in the network namespace of container req->id, by an
 * iptables job; the reply (or an error naming iptables' output) is sent
 * when the job ends. */
void pod_handle_loopback_hold(struct agent *a, uint64_t id, const Cocoon__LoopbackHoldRequest *req);
