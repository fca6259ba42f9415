#include "retry.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int retry_wanted(long status, int should_retry)
{
	if (should_retry >= 0)
		return should_retry;
	return status == 0 || status == 408 || status == 409 || status == 429 || status >= 500;
}

double retry_delay(int retries_taken, double hint, double cap, double rand01)
{
	if (hint > 0 && hint <= cap)
		return hint;
	double d = 0.5 * pow(2.0, retries_taken);
	if (d > 8.0)
		d = 8.0;
	return d * (1.0 - 0.25 * rand01);
}

static double parse_number(const char *s)
{
	char *end;
	double v = strtod(s, &end);
	while (*end == ' ' || *end == '\t')
		end++;
	return (end == s || *end || !isfinite(v) || v < 0) ? -1 : v;
}

/* Every hint passes here, so that whoever turns it into an integer (a Retry-After header to the
 * client) gets a number in range. */
static double bounded(double seconds)
{
	return seconds > RETRY_AFTER_MAX ? RETRY_AFTER_MAX : seconds;
}

double retry_parse_after(const char *retry_after_ms, const char *retry_after, double now)
{
	if (retry_after_ms && *retry_after_ms) {
		double v = parse_number(retry_after_ms);
		if (v >= 0)
			return bounded(v / 1000.0);
	}
	if (!retry_after || !*retry_after)
		return -1;
	double v = parse_number(retry_after);
	if (v >= 0)
		return bounded(v);
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	const char *end = strptime(retry_after, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (!end || *end)
		return -1;
	double at = (double)timegm(&tm);
	return at > now ? bounded(at - now) : 0;
}
