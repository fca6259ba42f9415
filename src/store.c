/* store: the calls every backend answers, dispatched to the one a store was opened with. */
#include "store_impl.h"

#include <string.h>

/* Where a name ends, or NULL when it does not fit: a caller's bug; refusing it keeps every
 * backend's slots bounded. */
static const char *name_end(const char *name)
{
	return name ? memchr(name, '\0', STORE_NAME_MAX) : NULL;
}

/* The name fits; its length, found on the way, is kept for the backend (which hashes it). */
static int op_ok(struct store_op *op)
{
	const char *end = name_end(op->name);
	if (!end)
		return 0;
	op->name_len = (size_t)(end - op->name);
	return 1;
}

static enum store_result run(struct store *s, struct store_op *ops, size_t n, size_t *refused)
{
	*refused = n;
	for (size_t i = 0; i < n; i++) {
		ops[i].value = 0;
		if (!op_ok(&ops[i]))
			return STORE_FULL;
	}
	return n ? s->ops->batch(s, ops, n, refused) : STORE_OK;
}

enum store_result store_flush(struct store *s)
{
	size_t refused, n = s->queued;
	s->queued = 0;
	return run(s, s->queue, n, &refused);
}

/* The held operations go first, in the same backend call; they never refuse, so a refusal's
 * index is the caller's own minus theirs. */
enum store_result store_batch(struct store *s, struct store_op *ops, size_t n, size_t *refused)
{
	size_t q = s->queued;
	if (!q || n > STORE_QUEUE_MAX) {
		enum store_result rc = q ? store_flush(s) : STORE_OK;
		enum store_result mine = run(s, ops, n, refused);
		return mine != STORE_OK ? mine : rc;
	}
	struct store_op all[2 * STORE_QUEUE_MAX];
	memcpy(all, s->queue, q * sizeof all[0]);
	memcpy(all + q, ops, n * sizeof all[0]);
	s->queued = 0;
	size_t r;
	enum store_result rc = run(s, all, q + n, &r);
	*refused = r >= q ? r - q : n;
	for (size_t i = 0; i < n; i++)
		ops[i].value = all[q + i].value;
	return rc;
}

enum store_result store_batch_later(struct store *s, const struct store_op *ops, size_t n)
{
	if (!s->ops->defers || n > STORE_QUEUE_MAX) {
		struct store_op now[STORE_QUEUE_MAX];
		size_t refused, done = 0;
		enum store_result rc = STORE_OK;
		/* In pieces of the queue's size: the operations are const, run's values are not. */
		while (done < n && rc == STORE_OK) {
			size_t k = n - done < STORE_QUEUE_MAX ? n - done : STORE_QUEUE_MAX;
			memcpy(now, ops + done, k * sizeof now[0]);
			rc = run(s, now, k, &refused);
			done += k;
		}
		return rc;
	}
	if (s->queued + n > STORE_QUEUE_MAX) {
		enum store_result rc = store_flush(s);
		if (rc != STORE_OK)
			return rc;
	}
	for (size_t i = 0; i < n; i++) {
		const char *end = name_end(ops[i].name);
		if (!end)
			return STORE_FULL;
		size_t at = s->queued++;
		s->queue[at] = ops[i];
		memcpy(s->queue_name[at], ops[i].name, (size_t)(end - ops[i].name) + 1);
		s->queue[at].name = s->queue_name[at];
	}
	return STORE_OK;
}

enum store_result store_get(struct store *s, const char *name, long long bucket, long long *value)
{
	struct store_op op = {.kind = STORE_OP_GET, .name = name, .bucket = bucket, .limit = -1};
	size_t refused;
	enum store_result rc = store_batch(s, &op, 1, &refused);
	*value = op.value;
	return rc;
}

enum store_result store_add(struct store *s, const char *name, long long bucket, long long delta,
			    long long expires_at, long long *after)
{
	struct store_op op = {.kind = STORE_OP_ADD, .name = name, .bucket = bucket, .delta = delta,
			      .expires_at = expires_at};
	size_t refused;
	enum store_result rc = store_batch(s, &op, 1, &refused);
	*after = op.value;
	return rc;
}

enum store_result store_add_capped(struct store *s, const char *name, long long bucket,
				   long long delta, long long limit, long long expires_at,
				   int *taken, long long *after)
{
	struct store_op op = {.kind = STORE_OP_ADD_CAPPED, .name = name, .bucket = bucket,
			      .delta = delta, .limit = limit < 0 ? 0 : limit,
			      .expires_at = expires_at};
	size_t refused;
	enum store_result rc = store_batch(s, &op, 1, &refused);
	*taken = rc == STORE_OK && refused == 1;
	*after = op.value;
	return rc;
}

enum store_result store_set(struct store *s, const char *name, long long bucket, long long value,
			    long long expires_at)
{
	if (!name_end(name))
		return STORE_FULL;
	return s->ops->set(s, name, bucket, value, expires_at);
}

static int blob_key_ok(const char *key)
{
	return key && memchr(key, '\0', STORE_BLOB_KEY_MAX) != NULL;
}

enum store_result store_put_blob(struct store *s, const char *key, const void *data, size_t len,
				 long long ttl_s)
{
	if (!blob_key_ok(key) || len > STORE_BLOB_MAX)
		return STORE_FULL;
	return s->ops->put_blob(s, key, data, len, ttl_s);
}

enum store_result store_get_blob(struct store *s, const char *key, struct buf *out, int *found)
{
	*found = 0;
	if (!blob_key_ok(key))
		return STORE_OK;
	return s->ops->get_blob(s, key, out, found);
}

enum store_result store_each(struct store *s, const char *prefix, store_each_fn fn, void *arg)
{
	return s->ops->each(s, prefix ? prefix : "", fn, arg);
}

void store_after_fork(struct store *s)
{
	if (s && s->ops->after_fork)
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
