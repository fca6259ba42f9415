/* retry: when and how long to wait before trying the upstream again (pure), following the
 * official SDKs: x-should-retry decides when present; else 408, 409, 429 and 5xx (529 included)
 * and connection failures are retried; the wait is min(0.5 s * 2^n, 8 s) minus up to 25 % jitter,
 * unless the upstream said how long (retry-after-ms, then retry-after) within a cap. */
#ifndef LLM_RETRY_H
#define LLM_RETRY_H

/* status: the HTTP status, or 0 for a connection failure; should_retry: the x-should-retry header
 * (1 true, 0 false, -1 absent). */
int retry_wanted(long status, int should_retry);

/* retries_taken: 0 before the first retry. hint: the upstream's retry-after in seconds, or < 0.
 * cap: the longest hint honoured. rand01: a number in [0, 1). Returns seconds to wait. */
double retry_delay(int retries_taken, double hint, double cap, double rand01);

/* The longest hint kept, in seconds: a day. Longer ones (up to 1e23 was seen in a test) are
 * clamped to it, never honoured anyway (cap) and relayed to clients as this. */
#define RETRY_AFTER_MAX 86400.0

/* Parses retry-after-ms (milliseconds) or retry-after (seconds, or an HTTP date relative to now)
 * into seconds, at most RETRY_AFTER_MAX; -1 when absent or unreadable. */
double retry_parse_after(const char *retry_after_ms, const char *retry_after, double now);

#endif
