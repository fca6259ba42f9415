/* store_impl: what a store backend provides, for the dispatcher behind store.h and nobody else.
 *
 * A backend's own struct begins with a struct store, so a struct store * is a pointer to the
 * backend's struct and the dispatcher calls through s->ops without knowing which backend it is
 * (as nginx's modules or lighttpd's gw_backend hand a table of functions to the core). Each
 * operation has the meaning, arguments and results of its store_* counterpart in store.h. */
#ifndef LLM_STORE_IMPL_H
#define LLM_STORE_IMPL_H

#include "store.h"

struct store_ops {
	const char *backend; /* what store_backend answers: "shm", "file" or "redis" */
	enum store_result (*get)(struct store *s, const char *name, long long bucket,
				 long long *value);
	enum store_result (*add)(struct store *s, const char *name, long long bucket, long long delta,
				 long long expires_at, long long *after);
	enum store_result (*add_capped)(struct store *s, const char *name, long long bucket,
					long long delta, long long limit, long long expires_at,
					int *taken, long long *after);
	enum store_result (*set)(struct store *s, const char *name, long long bucket,
				 long long value, long long expires_at);
	enum store_result (*acquire)(struct store *s, const char *name, unsigned limit, int *taken,
				     unsigned *holders);
	void (*release)(struct store *s, const char *name);
	enum store_result (*each)(struct store *s, const char *prefix, store_each_fn fn, void *arg);
	void (*after_fork)(struct store *s);
	void (*close)(struct store *s); /* frees s */
};

struct store {
	const struct store_ops *ops;
};

/* The Redis backend's table (src/store_redis.c). Defined only in a build with hiredis; without
 * it, store_open_redis fails and nothing refers to this. */
extern const struct store_ops store_redis_ops;

#endif
