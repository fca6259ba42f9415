/* store: state shared by every worker of a pool, by plain-CGI processes of the same user, and by
 * every host through Redis — the counters behind limits and budgets, the metrics, and (later) the
 * OpenAI dialects' short-lived stores.
 *
 * One interface, three backends:
 *   - anonymous shared memory of the pool (state_file unset): made before the fork, gone with
 *     the pool;
 *   - a memory-mapped file (state_file, mode 600): shared with any process of the same user that
 *     maps it (plain CGI included), and it survives restarts and reloads;
 *   - Redis or Valkey (limits_store = redis://HOST:PORT[/DB]) through hiredis: one persistent
 *     connection per process, a short timeout, atomic updates by Lua scripts.
 *
 * Every update is atomic, and a batch of them is one unit (store_batch below): a request's limits
 * are checked in one batch before the upstream is called, its usage and its metrics added in
 * another at its end (store_batch_later holds the first part back for the second): two locks
 * locally, two round trips to Redis. A counter is named (name, bucket): the name says what and for whom
 * ("rpm|key:alice"), the bucket which window or period (the minute since the epoch, a day as
 * YYYYMMDD, a month as YYYYMM). A counter kept for an older bucket reads as 0 for a newer one, so
 * windows roll over without anybody resetting them; expires_at (Unix seconds) lets a backend
 * reclaim the space. Concurrency is never a stored counter: it is counted from live holders
 * (pid and start time locally, keys with a TTL in Redis), so a process that dies holding a place
 * leaks nothing.
 *
 * Blobs: a small bounded store of key -> bytes that expire (the Responses API's recent responses,
 * which clients refer to by id in later turns): at most STORE_BLOB_MAX bytes each; locally a fixed
 * number of slots where a new blob takes a free or expired slot, else the least recently written,
 * so the oldest go first; in Redis a string with a TTL. */
#ifndef LLM_STORE_H
#define LLM_STORE_H

#include <stddef.h>

#include "buf.h"

#define STORE_NAME_MAX 128 /* bytes in a counter's name, NUL included */

enum store_result {
	STORE_OK = 0,
	STORE_DOWN = -1, /* the backend cannot be reached in time (Redis), or the file is unusable */
	STORE_FULL = -2, /* no room for a new counter (the local table is full) */
};

struct store;

/* A batch: operations run in order as one unit, one backend call for all of them (one lock
 * locally, one Lua script and one round trip in Redis), so that no other process sees or slips
 * between a part of it. spend's checks are one batch and its accounting another, where one call
 * per counter took some twenty round trips a request (bench/spend-cost). Three kinds may refuse:
 * the first refusal ends the batch (the operations after it do not run) and the places the batch
 * took before it are given back in the same call; its adds stay. Locally a process killed in the
 * middle of a batch leaves the operations before it done, each whole; Redis runs a script whole. */
enum store_op_kind {
	STORE_OP_GET,        /* value: the counter's; refuses when limit >= 0 and value >= limit */
	STORE_OP_ADD,        /* adds delta; value: the counter's after */
	STORE_OP_ADD_CAPPED, /* adds delta only if the value then is at most limit, else refuses;
			      * value: the counter's after (unchanged when refused) */
	STORE_OP_ACQUIRE,    /* takes a place among the live holders of name when fewer than limit
			      * hold one, else refuses; value: the live holders counted (this one
			      * included when taken). The holder is this process until a
			      * STORE_OP_RELEASE of name or its death. */
	STORE_OP_RELEASE,    /* gives this process's place among name's holders back */
};

struct store_op {
	enum store_op_kind kind;
	const char *name;
	long long bucket;     /* GET, ADD, ADD_CAPPED */
	long long delta;      /* ADD, ADD_CAPPED */
	long long limit;      /* GET (< 0: never refuses), ADD_CAPPED, ACQUIRE */
	long long expires_at; /* ADD, ADD_CAPPED: Unix seconds, 0 or less: kept for good */
	long long value;      /* out, 0 for an operation that did not run */
	size_t name_len;      /* strlen(name): store_batch sets it for the backends */
};

/* Runs ops[0..n). *refused is the index of the operation that refused, n when none did.
 * STORE_DOWN: nothing is known to have run (a Redis timeout may have run it all; the places it
 * took then expire with their TTL), *refused is n. STORE_FULL: a name too long (nothing ran), or
 * a new counter or place with no room left locally: that operation is skipped, neither done nor
 * refusing, and the rest run. */
enum store_result store_batch(struct store *s, struct store_op *ops, size_t n, size_t *refused);

/* Has ops (ADD and RELEASE only: they never refuse; their names are copied) run with this
 * process's next store_batch or store_flush, ahead of that call's own operations: with Redis a
 * request's settle and its metrics' counters then share one round trip. The local backends,
 * where a call costs a lock and no wait, run them at once. The result is the store's answer
 * when they ran now, else STORE_OK (a later failure is that later call's). */
enum store_result store_batch_later(struct store *s, const struct store_op *ops, size_t n);
/* Runs what store_batch_later holds, if anything. */
enum store_result store_flush(struct store *s);

/* One operation's batches, for the callers with one thing to do. */
/* The value of (name, bucket), 0 when there is none. */
enum store_result store_get(struct store *s, const char *name, long long bucket, long long *value);

/* Adds delta to (name, bucket) and sets *after to the new value. */
enum store_result store_add(struct store *s, const char *name, long long bucket, long long delta,
			    long long expires_at, long long *after);

/* Adds delta only if the value would then be at most limit: *taken is 1 when it did, 0 when it
 * refused, and *after is the value afterwards (unchanged when refused). */
enum store_result store_add_capped(struct store *s, const char *name, long long bucket,
				   long long delta, long long limit, long long expires_at,
				   int *taken, long long *after);

/* Sets (name, bucket) to value (the operator's reset or raise of a budget). */
enum store_result store_set(struct store *s, const char *name, long long bucket, long long value,
			    long long expires_at);

#define STORE_BLOB_KEY_MAX 64          /* bytes in a blob's key, NUL included */
#define STORE_BLOB_MAX (192u * 1024)   /* bytes in one blob */

/* Keeps len bytes of data under key for ttl_s seconds (or until evicted), replacing what the key
 * held. STORE_FULL when the key or the data is too long. */
enum store_result store_put_blob(struct store *s, const char *key, const void *data, size_t len,
				 long long ttl_s);
/* Appends the blob under key to out and sets *found (0: none, or expired, or evicted); a blob out
 * cannot hold is STORE_FULL. */
enum store_result store_get_blob(struct store *s, const char *key, struct buf *out, int *found);

/* Calls fn for every counter whose name starts with prefix, in no particular order. */
typedef void (*store_each_fn)(void *arg, const char *name, long long bucket, long long value);
enum store_result store_each(struct store *s, const char *prefix, store_each_fn fn, void *arg);

/* Opening and closing. The local backends are opened before the workers fork and shared by them;
 * store_after_fork gives a worker its own connection where the backend needs one (Redis).
 * On failure NULL, with the reason appended to err. */
struct store *store_open_shm(size_t counters, struct buf *err);
struct store *store_open_file(const char *path, size_t counters, struct buf *err);
struct store *store_open_redis(const char *url, double timeout_s, struct buf *err);
void store_after_fork(struct store *s);
void store_close(struct store *s);
/* "shm", "file" or "redis". */
const char *store_backend(const struct store *s);

#endif
