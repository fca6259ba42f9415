/* store_redis_none: store_open_redis in a build without hiredis (configure found none, or was
 * given --without-hiredis). Everything else works; a Redis URL is refused with the reason. */
#include "buf.h"
#include "store.h"

struct store *store_open_redis(const char *url, double timeout_s, struct buf *err)
{
	(void)url;
	(void)timeout_s;
	buf_appends(err, "built without hiredis: Redis needs libhiredis-dev at build time "
			 "(configure --with-hiredis)");
	return NULL;
}
