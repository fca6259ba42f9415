/* num: numbers from outside converted to integers without undefined behaviour. */
#ifndef LLM_NUM_H
#define LLM_NUM_H

#include <math.h>

/* v rounded towards zero and clamped to [lo, hi]; NaN gives lo. A plain (long) cast of a double
 * out of long's range is undefined, and in practice gives LONG_MIN: an upstream
 * "retry-after: 1e23" once became "Retry-After: -9223372036854775808". */
static inline long num_clamp_long(double v, long lo, long hi)
{
	if (isnan(v) || v <= (double)lo)
		return lo;
	if (v >= (double)hi)
		return hi;
	return (long)v;
}

#endif
