/* The dispatch of store.h through a backend's table, for test_store_redis until the dispatcher
 * (src/store.c, on the local backends' branch) is merged; then the test links that instead. */
#include "store_impl.h"

enum store_result store_get(struct store *s, const char *name, long long bucket, long long *value)
{
	return s->ops->get(s, name, bucket, value);
}

enum store_result store_add(struct store *s, const char *name, long long bucket, long long delta,
			    long long expires_at, long long *after)
{
	return s->ops->add(s, name, bucket, delta, expires_at, after);
}

enum store_result store_add_capped(struct store *s, const char *name, long long bucket,
				   long long delta, long long limit, long long expires_at,
				   int *taken, long long *after)
{
	return s->ops->add_capped(s, name, bucket, delta, limit, expires_at, taken, after);
}

enum store_result store_set(struct store *s, const char *name, long long bucket, long long value,
			    long long expires_at)
{
	return s->ops->set(s, name, bucket, value, expires_at);
}

enum store_result store_acquire(struct store *s, const char *name, unsigned limit, int *taken,
				unsigned *holders)
{
	return s->ops->acquire(s, name, limit, taken, holders);
}

void store_release(struct store *s, const char *name)
{
	s->ops->release(s, name);
}

enum store_result store_each(struct store *s, const char *prefix, store_each_fn fn, void *arg)
{
	return s->ops->each(s, prefix, fn, arg);
}

void store_after_fork(struct store *s)
{
	s->ops->after_fork(s);
}

void store_close(struct store *s)
{
	if (s)
		s->ops->close(s);
}

const char *store_backend(const struct store *s)
{
	return s->ops->backend;
}
