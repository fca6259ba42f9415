/* clock: the one monotonic clock every timeout, backoff and duration is measured on. */
#ifndef LLM_CLOCK_H
#define LLM_CLOCK_H

#include <time.h>

/* CLOCK_MONOTONIC in seconds: wall-clock steps (NTP, an operator's date) never stretch or cut a
 * timeout. A double keeps microseconds for centuries of uptime. */
static inline double clock_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
