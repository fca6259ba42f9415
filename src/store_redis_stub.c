/* store_redis_stub: stands in for store_redis.c (the Redis backend, written beside this branch)
 * until the two meet; at that merge this file goes and store_redis.c takes its place in
 * Makefile.am. It refuses, so limits_store = redis://... stops the start with a clear reason. */
#include "store.h"

struct store *store_open_redis(const char *url, double timeout_s, struct buf *err)
{
	(void)timeout_s;
	buf_printf(err, "limits_store %s: this build has no Redis support", url);
	return NULL;
}
