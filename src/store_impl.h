/* store_impl: what a store backend provides (store.c dispatches through it). Only the backends
 * (store_local.c, store_redis.c) include this; everyone else sees struct store as opaque.
 *
 * A backend's own struct starts with a struct store whose ops point to its table, so that
 * store.c's calls reach it and store_close frees it. */
#ifndef LLM_STORE_IMPL_H
#define LLM_STORE_IMPL_H

#include "store.h"

struct store_ops {
	const char *backend; /* "shm", "file", "redis" */
	/* 1 when store_batch_later should hold operations back for the next call (each call is a
	 * round trip); 0 runs them at once (a local call costs a lock, not a wait). */
	int defers;
	/* store_batch with every name checked, every value 0 and *refused n. */
	enum store_result (*batch)(struct store *s, struct store_op *ops, size_t n,
				   size_t *refused);
	enum store_result (*set)(struct store *s, const char *name, long long bucket,
				 long long value, long long expires_at);
	enum store_result (*each)(struct store *s, const char *prefix, store_each_fn fn,
				  void *arg);
	enum store_result (*put_blob)(struct store *s, const char *key, const void *data,
				      size_t len, long long ttl_s);
	enum store_result (*get_blob)(struct store *s, const char *key, struct buf *out,
				      int *found);
	void (*after_fork)(struct store *s); /* may be NULL */
	void (*close)(struct store *s);      /* frees s */
};

#define STORE_QUEUE_MAX 16 /* operations store_batch_later holds: a request's settle */

struct store {
	const struct store_ops *ops;
	/* What store_batch_later holds back for this process's next call (store.c's alone). */
	size_t queued;
	struct store_op queue[STORE_QUEUE_MAX];
	char queue_name[STORE_QUEUE_MAX][STORE_NAME_MAX];
};

#endif
