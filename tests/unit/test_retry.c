/* The SDKs' retry policy: which answers are retried and how long to wait. */
#include <math.h>

#include "retry.h"
#include "tap.h"

static int near(double a, double b)
{
	return fabs(a - b) < 1e-9;
}

int main(void)
{
	static const long retried[] = {0, 408, 409, 429, 500, 502, 503, 504, 529};
	static const long final[] = {400, 401, 403, 404, 413, 422};
	for (size_t i = 0; i < sizeof retried / sizeof retried[0]; i++)
		tap_ok(retry_wanted(retried[i], -1), "status %ld is retried", retried[i]);
	for (size_t i = 0; i < sizeof final / sizeof final[0]; i++)
		tap_ok(!retry_wanted(final[i], -1), "status %ld is not retried", final[i]);
	tap_ok(!retry_wanted(529, 0), "x-should-retry: false wins over 529");
	tap_ok(retry_wanted(400, 1), "x-should-retry: true wins over 400");

	tap_ok(near(retry_delay(0, -1, 60, 0), 0.5), "first retry: 0.5 s without jitter");
	tap_ok(near(retry_delay(1, -1, 60, 0), 1.0), "second retry: 1 s");
	tap_ok(near(retry_delay(0, -1, 60, 0.999999), 0.5 * (1 - 0.25 * 0.999999)), "jitter takes up to 25 %%");
	tap_ok(near(retry_delay(10, -1, 60, 0), 8.0), "capped at 8 s");
	tap_ok(near(retry_delay(0, 2.5, 60, 0.3), 2.5), "retry-after honoured");
	tap_ok(near(retry_delay(0, 120, 60, 0), 0.5), "retry-after over the cap ignored");
	tap_ok(near(retry_delay(0, 0, 60, 0), 0.5), "retry-after 0 ignored");

	tap_ok(near(retry_parse_after("250", "7", 0), 0.25), "retry-after-ms first");
	tap_ok(near(retry_parse_after(NULL, "7", 0), 7), "retry-after seconds");
	tap_ok(near(retry_parse_after(NULL, "1.5", 0), 1.5), "retry-after decimal");
	tap_ok(retry_parse_after(NULL, "soon", 0) < 0, "unreadable retry-after");
	tap_ok(retry_parse_after(NULL, NULL, 0) < 0, "absent");
	tap_ok(near(retry_parse_after(NULL, "Thu, 01 Jan 1970 00:00:10 GMT", 4), 6), "HTTP date");
	tap_ok(near(retry_parse_after("x", "3", 0), 3), "bad retry-after-ms falls back to retry-after");
	/* Issue 10 item 11: 1e23 s once reached clients as Retry-After: -9223372036854775808. */
	tap_ok(near(retry_parse_after(NULL, "99999999999999999999999", 0), 86400), "huge retry-after: a day");
	tap_ok(near(retry_parse_after("99999999999999999999999", NULL, 0), 86400), "huge retry-after-ms: a day");
	tap_ok(near(retry_parse_after(NULL, "Fri, 31 Dec 9999 23:59:59 GMT", 0), 86400), "far HTTP date: a day");
	return tap_done();
}
