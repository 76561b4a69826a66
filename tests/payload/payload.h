/* What the payload's files share (payload.c). */
#pragma once

#include <errno.h>
#include <time.h>

static inline void payload_sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}
