/* The GuestInfo and SharedCheck requests (info.c). */
#pragma once

#include "agent.h"

void guest_info_handle(struct agent *a, uint64_t id, const Cocoon__GuestInfoRequest *req);
void shared_check_handle(struct agent *a, uint64_t id, const Cocoon__SharedCheckRequest *req);
