/* store_redis: the store in Redis (or Valkey), shared by every worker of every host, through
 * hiredis.
 *
 * One connection per process, opened lazily and kept: a worker pays the connection once, not per
 * request. Every call has the timeout store_open_redis was given (connect, each send and each
 * receive: hiredis's redisConnectWithTimeout and redisSetTimeout), and a server that does not
 * answer in time makes the call STORE_DOWN, never a hung worker; the caller decides what a
 * request does then. After a failed connect the backend answers STORE_DOWN at once for
 * STORE_REDIS_RETRY_S before it tries again, so an unreachable server costs one timeout a second
 * per worker, not one per call. Host names are resolved by getaddrinfo, which no timeout bounds:
 * name the server by address where that matters. hiredis writes with write(2): the process
 * ignores SIGPIPE (main.c) so a server that went away is an error, not a signal.
 *
 * Keys: a counter (name, bucket) is the string llmfcgi:NAME:BUCKET, an integer as Redis's INCRBY
 * keeps it. The holders of name are the sorted set llmfcgi:NAME:holders; a counter's key always
 * ends in an integer, so the two never meet. Updates are Lua scripts, atomic on the server: a
 * whole batch is one script and one round trip, its keys and arguments in one EVALSHA. They are
 * loaded once per connection with SCRIPT LOAD and then called by EVALSHA, or by EVAL when the
 * server no longer has them (NOSCRIPT: a restart, a SCRIPT FLUSH). Keys of one batch may live in
 * different hash slots: one Redis or Valkey server (with its replicas), not a cluster. Values are
 * 64-bit in Redis, but a script compares them as Lua numbers (doubles): exact below 2^53, which a
 * token or microdollar count does not reach.
 *
 * Holders: a member HOST:PID:START of the set (START is when this process first used the store,
 * so a reused pid is a new holder) scored with its expiry on the server's clock (TIME, so hosts
 * with skewed clocks agree). An acquire drops the expired members, counts the rest and adds
 * itself when below the limit, all in one script. Redis cannot see a process die, so a holder
 * that dies holding a place keeps it until its expiry: holder_ttl seconds (the URL's
 * ?holder_ttl=, default STORE_REDIS_HOLDER_TTL = twice the longest non-streaming request,
 * total_timeout's 600 s). A holder that stays longer (a long stream) keeps its place by acquiring
 * again, which refreshes its own member and never refuses a present holder. A
 * process holds at most one place per name.
 *
 * Fork: a worker inherits its parent's connection (the parent opened the store to check the URL
 * and the password at startup) and must never talk on it: two processes on one socket read each
 * other's replies. The first call in a new process (or store_after_fork) frees the inherited
 * context and connects anew. redisFree only closes this process's descriptor, and hiredis sends
 * nothing on the way out (no QUIT, no shutdown(2)), so the parent's socket stays open and in sync.
 *
 * The URL's password never leaves this file: messages name the server as redis://HOST:PORT/DB. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "buf.h"
#include "clock.h"
#include "log.h"
#include "self.h"
#include "store_impl.h"

#define STORE_REDIS_PORT 6379
#define STORE_REDIS_RETRY_S 1.0
#define STORE_REDIS_HOLDER_TTL 1200
#define STORE_REDIS_HOLDER_TTL_MAX 86400
#define STORE_REDIS_DB_MAX 1000000
#define STORE_REDIS_TIMEOUT_MAX 60.0
#define STORE_REDIS_URL_MAX 1024
#define STORE_REDIS_KEY_MAX (STORE_NAME_MAX + 32)
/* store_each's bounds: keys asked of each SCAN step, read per MGET, and in all (the limits,
 * budgets and metrics of one deployment are far fewer). */
#define STORE_REDIS_SCAN_COUNT "512"
#define STORE_REDIS_MGET_BATCH 256
#define STORE_REDIS_EACH_MAX 100000

enum store_redis_script { SCRIPT_BATCH, SCRIPT_SET, SCRIPT_N };

/* An expires_at of 0 or less keeps the key for good; one in the past deletes it at once (Redis's
 * EXPIREAT). */
static const char *const store_redis_scripts[SCRIPT_N] = {
	/* store_batch. KEYS: one per operation, the counter or the holders' set. ARGV: this
	 * process's member and the holders' ttl, then four per operation: its kind (g get, a add,
	 * c capped add, q acquire, r release), delta, limit, expires_at. Returns {the refusing
	 * operation's index (0-based; #KEYS when none), each operation's value up to it}.
	 * An acquire drops the expired members, counts the rest and adds itself when below the
	 * limit; a present holder is never refused, and refreshes its expiry. TIME before a write
	 * needs effects replication: the default from Redis 5, asked for explicitly before. */
	[SCRIPT_BATCH] =
		"if redis.replicate_commands then redis.replicate_commands() end\n"
		"local member, ttl, out, took, now = ARGV[1], tonumber(ARGV[2]), {}, {}, nil\n"
		"for i, k in ipairs(KEYS) do\n"
		"  local o = 4 * i - 1\n"
		"  local kind, d, lim, e = ARGV[o], tonumber(ARGV[o + 1]), tonumber(ARGV[o + 2]),\n"
		"    tonumber(ARGV[o + 3])\n"
		"  local v, no = 0, false\n"
		"  if kind == 'r' then redis.call('ZREM', k, member)\n"
		"  elseif kind == 'q' then\n"
		"    if not now then\n"
		"      local t = redis.call('TIME')\n"
		"      now = tonumber(t[1]) + tonumber(t[2]) / 1000000\n"
		"    end\n"
		"    redis.call('ZREMRANGEBYSCORE', k, '-inf', now)\n"
		"    local mine = redis.call('ZSCORE', k, member)\n"
		"    v = redis.call('ZCARD', k)\n"
		"    if not mine and v >= lim then no = true else\n"
		"      redis.call('ZADD', k, now + ttl, member)\n"
		"      redis.call('EXPIRE', k, ttl + 1)\n"
		"      if not mine then v = v + 1; took[#took + 1] = k end\n"
		"    end\n"
		"  else\n"
		"    if kind ~= 'a' then v = tonumber(redis.call('GET', k) or '0') end\n"
		"    if kind == 'g' then no = lim >= 0 and v >= lim\n"
		"    elseif kind == 'c' and v + d > lim then no = true\n"
		"    else\n"
		"      v = redis.call('INCRBY', k, ARGV[o + 1])\n"
		"      if e > 0 then redis.call('EXPIREAT', k, ARGV[o + 3]) end\n"
		"    end\n"
		"  end\n"
		"  out[i + 1] = v\n"
		"  if no then\n"
		"    for _, t in ipairs(took) do redis.call('ZREM', t, member) end\n"
		"    out[1] = i - 1\n"
		"    return out\n"
		"  end\n"
		"end\n"
		"out[1] = #KEYS\n"
		"return out\n",
	/* KEYS[1]: the counter. ARGV: value, expires_at. */
	[SCRIPT_SET] = "redis.call('SET', KEYS[1], ARGV[1])\n"
		       "if tonumber(ARGV[2]) > 0 then redis.call('EXPIREAT', KEYS[1], ARGV[2]) end\n"
		       "return 1\n",
};

struct store_redis {
	struct store base; /* first: the dispatcher's struct store * points here */
	char *host;
	int port;
	int db;
	char *user;     /* NULL: none (AUTH with the password alone) */
	char *password; /* NULL: no AUTH; never printed */
	char *where;    /* redis://HOST:PORT/DB, for messages */
	struct timeval timeout;
	long holder_ttl;
	redisContext *c;   /* NULL while not connected */
	pid_t pid;         /* the process c and holder belong to */
	char holder[128];  /* this process's member in holders' sets */
	double retry_at;   /* clock_now() before which no reconnect is tried */
	int down;          /* the last call failed (logged once per outage) */
	int fresh;         /* c has not failed a call yet since it connected */
	char sha[SCRIPT_N][41];
};

static struct store_redis *store_redis_of(struct store *s)
{
	return (struct store_redis *)s;
}

/* Decodes %XX escapes of [p, p + n) (a password may hold '@', ':' or '/'). NULL when malformed. */
static char *store_redis_unescape(const char *p, size_t n)
{
	char *out = xmalloc(n + 1);
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] != '%') {
			out[o++] = p[i];
			continue;
		}
		char hex[3] = {0};
		if (i + 2 >= n || !isxdigit((unsigned char)p[i + 1]) ||
		    !isxdigit((unsigned char)p[i + 2])) {
			free(out);
			return NULL;
		}
		hex[0] = p[i + 1];
		hex[1] = p[i + 2];
		out[o++] = (char)strtol(hex, NULL, 16);
		i += 2;
	}
	out[o] = 0;
	return out;
}

/* A decimal in [lo, hi] that is all of [p, p + n). */
static int store_redis_number(const char *p, size_t n, long lo, long hi, long *out)
{
	char tmp[24];
	if (n == 0 || n >= sizeof tmp)
		return -1;
	memcpy(tmp, p, n);
	tmp[n] = 0;
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)tmp[i]))
			return -1;
	long v = strtol(tmp, NULL, 10);
	if (v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

/* user:password@ of the URL (u is what lies before the '@'). */
static int store_redis_parse_userinfo(struct store_redis *r, const char *u, size_t n,
				      struct buf *err)
{
	const char *colon = memchr(u, ':', n);
	if (!colon) {
		buf_note(err, "%s", "the password goes after a colon: redis://:PASSWORD@HOST or "
				 "redis://USER:PASSWORD@HOST");
		return -1;
	}
	if (colon > u && !(r->user = store_redis_unescape(u, (size_t)(colon - u))))
		goto bad;
	if (!(r->password = store_redis_unescape(colon + 1, n - (size_t)(colon - u) - 1)))
		goto bad;
	return 0;
bad:
	buf_note(err, "%s", "a malformed %-escape in the user or password");
	return -1;
}

/* HOST, [V6ADDR], either followed by :PORT. */
static int store_redis_parse_hostport(struct store_redis *r, const char *h, size_t n,
				      struct buf *err)
{
	const char *end = h + n, *port = NULL, *host_end;
	if (n > 0 && h[0] == '[') {
		const char *close = memchr(h, ']', n);
		if (!close || (close + 1 < end && close[1] != ':'))
			goto bad;
		r->host = xstrndup(h + 1, (size_t)(close - h - 1));
		port = close + 1 < end ? close + 2 : NULL;
	} else {
		host_end = memchr(h, ':', n);
		r->host = xstrndup(h, (size_t)((host_end ? host_end : end) - h));
		port = host_end ? host_end + 1 : NULL;
	}
	long v = STORE_REDIS_PORT;
	if (!r->host[0] || (port && store_redis_number(port, (size_t)(end - port), 1, 65535, &v) < 0))
		goto bad;
	r->port = (int)v;
	return 0;
bad:
	buf_note(err, "expected redis://[:PASSWORD@]HOST[:PORT][/DB][?holder_ttl=SECONDS]");
	return -1;
}

/* /DB and ?holder_ttl=SECONDS, the rest of the URL after HOST:PORT. */
static int store_redis_parse_tail(struct store_redis *r, const char *p, struct buf *err)
{
	const char *q = strchr(p, '?');
	size_t plen = q ? (size_t)(q - p) : strlen(p);
	long v = 0;
	if (plen > 1 && store_redis_number(p + 1, plen - 1, 0, STORE_REDIS_DB_MAX, &v) < 0) {
		buf_note(err, "the database after the '/' is a number");
		return -1;
	}
	r->db = (int)v;
	r->holder_ttl = STORE_REDIS_HOLDER_TTL;
	if (!q)
		return 0;
	static const char opt[] = "holder_ttl=";
	if (strncmp(q + 1, opt, sizeof opt - 1) != 0 ||
	    store_redis_number(q + sizeof opt, strlen(q + sizeof opt), 1, STORE_REDIS_HOLDER_TTL_MAX,
			       &r->holder_ttl) < 0) {
		buf_note(err, "the one option is ?holder_ttl=SECONDS (1 to %d)",
			   STORE_REDIS_HOLDER_TTL_MAX);
		return -1;
	}
	return 0;
}

static int store_redis_parse_url(struct store_redis *r, const char *url, struct buf *err)
{
	static const char scheme[] = "redis://";
	if (strlen(url) > STORE_REDIS_URL_MAX) {
		buf_note(err, "the Redis URL is too long");
		return -1;
	}
	if (strncmp(url, "rediss://", 9) == 0) {
		buf_note(err, "%s", "TLS to Redis (rediss://) is not supported: reach it through a "
				 "local tunnel, or on a private network");
		return -1;
	}
	if (strncmp(url, scheme, sizeof scheme - 1) != 0) {
		buf_note(err, "a Redis URL begins with redis://");
		return -1;
	}
	const char *a = url + sizeof scheme - 1;
	size_t alen = strcspn(a, "/?");
	const char *at = NULL;
	for (const char *p = a; p < a + alen; p++)
		if (*p == '@')
			at = p;
	if (at && store_redis_parse_userinfo(r, a, (size_t)(at - a), err) < 0)
		return -1;
	const char *h = at ? at + 1 : a;
	if (store_redis_parse_hostport(r, h, (size_t)(a + alen - h), err) < 0 ||
	    store_redis_parse_tail(r, a + alen, err) < 0)
		return -1;
	struct buf w;
	buf_init(&w, STORE_REDIS_URL_MAX + 32);
	/* host and port were checked against STORE_REDIS_URL_MAX: w holds them. */
	BUF_MUST(buf_printf(&w, strchr(r->host, ':') ? "redis://[%s]:%d/%d" : "redis://%s:%d/%d",
			    r->host, r->port, r->db));
	r->where = buf_detach(&w);
	return 0;
}

/* The log says once that the server went away and once that it came back. */
static void store_redis_down(struct store_redis *r, const char *why)
{
	if (!r->down)
		log_warn("store: %s: %s", r->where, why);
	r->down = 1;
}

static void store_redis_up(struct store_redis *r)
{
	if (r->down)
		log_info("store: %s answers again", r->where);
	r->down = 0;
}

/* Why c failed. hiredis 0.14 reports a timeout as the read's EAGAIN. */
static const char *store_redis_why(const redisContext *c)
{
	return strcmp(c->errstr, strerror(EAGAIN)) == 0 ? "no answer within the timeout"
							: c->errstr;
}

/* A command on c alone (connect's own steps). The reply, or NULL with the reason in err. */
static redisReply *store_redis_command(struct store_redis *r, int argc, const char **argv,
				       struct buf *err)
{
	redisReply *rep = redisCommandArgv(r->c, argc, argv, NULL);
	if (!rep) {
		buf_note(err, "%s", store_redis_why(r->c));
		return NULL;
	}
	if (rep->type == REDIS_REPLY_ERROR) {
		buf_note(err, "%s", rep->str);
		freeReplyObject(rep);
		return NULL;
	}
	return rep;
}

/* AUTH, SELECT and the scripts on a new connection. 0, or -1 with the reason in err. */
static int store_redis_prepare(struct store_redis *r, struct buf *err)
{
	redisReply *rep;
	if (r->password) {
		const char *auth[] = {"AUTH", r->user ? r->user : r->password, r->password};
		if (!(rep = store_redis_command(r, r->user ? 3 : 2, auth, err)))
			return -1;
		freeReplyObject(rep);
	}
	if (r->db) {
		char db[16];
		snprintf(db, sizeof db, "%d", r->db);
		const char *sel[] = {"SELECT", db};
		if (!(rep = store_redis_command(r, 2, sel, err)))
			return -1;
		freeReplyObject(rep);
	}
	for (int i = 0; i < SCRIPT_N; i++) {
		const char *load[] = {"SCRIPT", "LOAD", store_redis_scripts[i]};
		if (!(rep = store_redis_command(r, 3, load, err)))
			return -1;
		if (rep->type != REDIS_REPLY_STRING || rep->len != 40) {
			buf_note(err, "SCRIPT LOAD did not answer a SHA-1");
			freeReplyObject(rep);
			return -1;
		}
		memcpy(r->sha[i], rep->str, 40);
		r->sha[i][40] = 0;
		freeReplyObject(rep);
	}
	return 0;
}

/* Connects. 0; -1 when the server could not be reached (err says why); -2 when it was reached
 * and refused us (the password, the database, scripting): that does not fix itself. */
static int store_redis_connect(struct store_redis *r, struct buf *err)
{
	r->c = redisConnectWithTimeout(r->host, r->port, r->timeout);
	if (!r->c || r->c->err || redisSetTimeout(r->c, r->timeout) != REDIS_OK) {
		buf_note(err, "cannot connect: %s", r->c ? r->c->errstr : "out of memory");
		goto unreachable;
	}
	if (store_redis_prepare(r, err) < 0) {
		int io = r->c->err != 0; /* an I/O error, not the server's refusal */
		redisFree(r->c);
		r->c = NULL;
		return io ? -1 : -2;
	}
	r->fresh = 1;
	return 0;
unreachable:
	if (r->c)
		redisFree(r->c);
	r->c = NULL;
	return -1;
}

/* Forgets the connection (the process's own copy of its descriptor: see "Fork" above). */
static void store_redis_drop(struct store_redis *r)
{
	if (r->c)
		redisFree(r->c);
	r->c = NULL;
}

/* Makes this process the owner: a new pid is a new holder with a connection of its own. */
static void store_redis_adopt(struct store_redis *r)
{
	char host[64] = "localhost";
	struct timespec now;
	store_redis_drop(r);
	r->pid = self_pid();
	r->retry_at = 0;
	gethostname(host, sizeof host - 1);
	host[sizeof host - 1] = 0;
	clock_gettime(CLOCK_REALTIME, &now);
	snprintf(r->holder, sizeof r->holder, "%s:%ld:%lld.%06ld", host, (long)r->pid,
		 (long long)now.tv_sec, now.tv_nsec / 1000);
}

/* A usable connection: 0, or -1 (the server is down; at most one connect try a second). */
static int store_redis_ready(struct store_redis *r)
{
	if (r->pid != self_pid())
		store_redis_adopt(r);
	if (r->c)
		return 0;
	if (clock_now() < r->retry_at)
		return -1;
	struct buf why;
	buf_init(&why, 512);
	int rc = store_redis_connect(r, &why);
	if (rc < 0) {
		r->retry_at = clock_now() + STORE_REDIS_RETRY_S;
		store_redis_down(r, buf_cstr(&why));
	}
	buf_release(&why);
	return rc < 0 ? -1 : 0;
}

/* Sends one command, formatted already (RESP). The reply (the caller frees it), an error reply
 * included; NULL when the server could not be asked or did not answer. A connection the server
 * closed while idle (its timeout setting, a restart) is reconnected and the command sent again,
 * once: the server never saw it. A timeout is not retried: the command may have run. */
static redisReply *store_redis_send(struct store_redis *r, const char *cmd, size_t len)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		if (store_redis_ready(r) < 0)
			return NULL;
		int fresh = r->fresh;
		void *rep = NULL;
		if (redisAppendFormattedCommand(r->c, cmd, len) == REDIS_OK &&
		    redisGetReply(r->c, &rep) == REDIS_OK && rep) {
			r->fresh = 0;
			return rep;
		}
		int again = r->c->err == REDIS_ERR_EOF && !fresh;
		if (!again)
			store_redis_down(r, store_redis_why(r->c));
		store_redis_drop(r);
		if (!again)
			return NULL;
	}
	return NULL;
}

/* Runs one command given as arguments (lens NULL: strings), formatted by hiredis. */
static redisReply *store_redis_run(struct store_redis *r, int argc, const char **argv,
				   const size_t *lens)
{
	char *cmd = NULL;
	int len = redisFormatCommandArgv(&cmd, argc, argv, lens);
	if (len < 0) {
		store_redis_down(r, "out of memory");
		return NULL;
	}
	redisReply *rep = store_redis_send(r, cmd, (size_t)len);
	redisFreeCommand(cmd);
	return rep;
}

/* EVALSHA of a script, or EVAL when the server lost it. argv[2..argc) are the caller's (the
 * number of keys, the keys, ARGV); argv[0] and argv[1] are filled here. */
static redisReply *store_redis_script(struct store_redis *r, enum store_redis_script sc,
				      int argc, const char **argv, size_t *argl)
{
	if (store_redis_ready(r) < 0)
		return NULL;
	argv[0] = "EVALSHA";
	argl[0] = 7;
	argv[1] = r->sha[sc];
	argl[1] = 40;
	redisReply *rep = store_redis_run(r, argc, argv, argl);
	if (rep && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0) {
		freeReplyObject(rep);
		argv[0] = "EVAL";
		argl[0] = 4;
		argv[1] = store_redis_scripts[sc];
		argl[1] = strlen(argv[1]);
		rep = store_redis_run(r, argc, argv, argl);
	}
	return rep;
}

/* llmfcgi:NAME:BUCKET (or :holders when bucket is NULL) into key; its length, or 0 when the
 * name is too long for any counter. */
static size_t store_redis_key(char *key, const char *name, const long long *bucket)
{
	if (strlen(name) >= STORE_NAME_MAX)
		return 0;
	int n = bucket ? snprintf(key, STORE_REDIS_KEY_MAX, "llmfcgi:%s:%lld", name, *bucket)
		       : snprintf(key, STORE_REDIS_KEY_MAX, "llmfcgi:%s:holders", name);
	return (size_t)n;
}

/* An integer reply, or a string holding one (GET's). */
static int store_redis_integer(const redisReply *rep, long long *out)
{
	if (rep->type == REDIS_REPLY_INTEGER) {
		*out = rep->integer;
		return 0;
	}
	if (rep->type != REDIS_REPLY_STRING || rep->len == 0 || rep->len > 20)
		return -1;
	char *end;
	errno = 0;
	*out = strtoll(rep->str, &end, 10);
	return errno || end != rep->str + rep->len ? -1 : 0;
}

/* The end of every operation: an error reply (OOM, a key of another type) or a reply of the
 * wrong shape counts as the server being unusable. */
static enum store_result store_redis_done(struct store_redis *r, redisReply *rep, int ok)
{
	if (ok)
		store_redis_up(r);
	else if (rep)
		store_redis_down(r, rep->type == REDIS_REPLY_ERROR ? rep->str : "an unexpected reply");
	if (rep)
		freeReplyObject(rep);
	return ok ? STORE_OK : STORE_DOWN;
}

static enum store_result store_redis_set(struct store *s, const char *name, long long bucket,
					 long long value, long long expires_at)
{
	struct store_redis *r = store_redis_of(s);
	char key[STORE_REDIS_KEY_MAX], v[24], e[24];
	size_t klen = store_redis_key(key, name, &bucket);
	if (!klen)
		return STORE_FULL;
	const char *argv[] = {NULL, NULL, "1", key, v, e};
	size_t lens[] = {0, 0, 1, klen, (size_t)snprintf(v, sizeof v, "%lld", value),
			 (size_t)snprintf(e, sizeof e, "%lld", expires_at)};
	redisReply *rep = store_redis_script(r, SCRIPT_SET, 6, argv, lens);
	return store_redis_done(r, rep, rep && rep->type == REDIS_REPLY_INTEGER);
}

/* ---- a batch's command, in RESP written by hand: hiredis's formatting (a format string per
 * argument) and snprintf for the numbers cost a request more than everything else the batch
 * does on this side (bench/spend-cost) ---- */

/* A bulk string: $LEN CRLF bytes CRLF. */
static char *store_redis_bulk(char *p, const void *s, size_t n)
{
	*p++ = '$';
	p += buf_digits(p, (long long)n);
	*p++ = '\r';
	*p++ = '\n';
	memcpy(p, s, n);
	p += n;
	*p++ = '\r';
	*p++ = '\n';
	return p;
}

static char *store_redis_bulk_number(char *p, long long v)
{
	char d[BUF_DIGITS_MAX];
	return store_redis_bulk(p, d, buf_digits(d, v));
}

/* An operation's key: llmfcgi:NAME:BUCKET, or llmfcgi:NAME:holders (names are checked). */
static char *store_redis_bulk_key(char *p, const struct store_op *op)
{
	char key[STORE_REDIS_KEY_MAX], *k = key;
	size_t n = strlen(op->name);
	memcpy(k, "llmfcgi:", 8);
	memcpy(k + 8, op->name, n);
	k += 8 + n;
	*k++ = ':';
	if (op->kind == STORE_OP_ACQUIRE || op->kind == STORE_OP_RELEASE) {
		memcpy(k, "holders", 7);
		k += 7;
	} else {
		k += buf_digits(k, op->bucket);
	}
	return store_redis_bulk(p, key, (size_t)(k - key));
}

/* The most bytes an operation takes: its key, and four ARGV of at most 20 digits and a sign. */
#define STORE_REDIS_OP_BYTES (STORE_REDIS_KEY_MAX + 16 + 4 * 32)

/* The command after EVALSHA SHA (or EVAL SCRIPT): numkeys, KEYS, ARGV, as the script reads them,
 * at p; returns the end. */
static char *store_redis_batch_args(char *p, const struct store_redis *r,
				    const struct store_op *ops, size_t n)
{
	static const char kinds[] = {[STORE_OP_GET] = 'g', [STORE_OP_ADD] = 'a',
				     [STORE_OP_ADD_CAPPED] = 'c', [STORE_OP_ACQUIRE] = 'q',
				     [STORE_OP_RELEASE] = 'r'};
	p = store_redis_bulk_number(p, (long long)n);
	for (size_t i = 0; i < n; i++)
		p = store_redis_bulk_key(p, &ops[i]);
	p = store_redis_bulk(p, r->holder, strlen(r->holder));
	p = store_redis_bulk_number(p, r->holder_ttl);
	for (size_t i = 0; i < n; i++) {
		p = store_redis_bulk(p, &kinds[ops[i].kind], 1);
		p = store_redis_bulk_number(p, ops[i].delta);
		p = store_redis_bulk_number(p, ops[i].limit);
		p = store_redis_bulk_number(p, ops[i].expires_at);
	}
	return p;
}

/* The batch's EVALSHA, or its EVAL when the server lost the script: the arguments are written
 * once, after room for the longer head, and each head is moved right before them. */
static redisReply *store_redis_batch_send(struct store_redis *r, const struct store_op *ops,
					  size_t n)
{
	const char *script = store_redis_scripts[SCRIPT_BATCH];
	size_t room = strlen(script) + 64; /* *ARGC, EVAL, the script: their lengths and CRLFs */
	/* then the operations, and numkeys, the member and the ttl: 32 bytes for a number's bulk */
	char *cmd = xmalloc(room + n * STORE_REDIS_OP_BYTES + sizeof r->holder + 3 * 32);
	char *args = cmd + room, *end = store_redis_batch_args(args, r, ops, n);
	redisReply *rep = NULL;
	for (int eval = 0; eval < 2; eval++) {
		char *h = cmd;
		*h++ = '*';
		h += buf_digits(h, (long long)(5 + 5 * n));
		*h++ = '\r';
		*h++ = '\n';
		h = eval ? store_redis_bulk(h, "EVAL", 4) : store_redis_bulk(h, "EVALSHA", 7);
		h = eval ? store_redis_bulk(h, script, strlen(script))
			 : store_redis_bulk(h, r->sha[SCRIPT_BATCH], 40);
		size_t hl = (size_t)(h - cmd);
		memmove(args - hl, cmd, hl);
		rep = store_redis_send(r, args - hl, hl + (size_t)(end - args));
		if (eval || !rep || rep->type != REDIS_REPLY_ERROR || strncmp(rep->str, "NOSCRIPT", 8))
			break;
		freeReplyObject(rep);
		rep = NULL;
	}
	free(cmd);
	return rep;
}

/* The script's answer into *refused and the values; 0, or -1 when it has not that shape. */
static int store_redis_batch_reply(const redisReply *rep, struct store_op *ops, size_t n,
				   size_t *refused)
{
	long long k;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
	    store_redis_integer(rep->element[0], &k) < 0 || k < 0 || (size_t)k > n ||
	    rep->elements != (size_t)k + ((size_t)k < n ? 2 : 1))
		return -1;
	for (size_t i = 1; i < rep->elements; i++)
		if (store_redis_integer(rep->element[i], &ops[i - 1].value) < 0)
			return -1;
	*refused = (size_t)k;
	return 0;
}

/* Every operation in one EVALSHA: one round trip for the whole batch. */
static enum store_result store_redis_batch(struct store *s, struct store_op *ops, size_t n,
					   size_t *refused)
{
	struct store_redis *r = store_redis_of(s);
	if (r->pid != self_pid())
		store_redis_adopt(r); /* the member names this process */
	if (store_redis_ready(r) < 0) /* connected first: the scripts' SHA-1s are the connection's */
		return STORE_DOWN;
	redisReply *rep = store_redis_batch_send(r, ops, n);
	int ok = rep && store_redis_batch_reply(rep, ops, n, refused) == 0;
	for (size_t i = 0; !ok && i < n; i++)
		ops[i].value = 0;
	return store_redis_done(r, rep, ok);
}

/* The counter a key names: 0 and its name and bucket, or -1 when the key is not a counter
 * (a holders' set, or somebody else's key). */
static int store_redis_parse_key(const char *key, size_t len, char *name, long long *bucket)
{
	static const char pre[] = "llmfcgi:";
	const char *colon = memrchr(key, ':', len);
	if (len <= sizeof pre - 1 || strncmp(key, pre, sizeof pre - 1) != 0 || !colon ||
	    colon < key + sizeof pre - 1)
		return -1;
	size_t nlen = (size_t)(colon - key) - (sizeof pre - 1);
	const char *b = colon + 1, *end = key + len;
	if (nlen >= STORE_NAME_MAX || b == end || end - b > 20)
		return -1;
	for (const char *p = b; p < end; p++)
		if (!isdigit((unsigned char)*p) && !(p == b && *p == '-' && end - b > 1))
			return -1;
	char *stop;
	errno = 0;
	*bucket = strtoll(b, &stop, 10);
	if (errno || stop != end)
		return -1;
	memcpy(name, key + sizeof pre - 1, nlen);
	name[nlen] = 0;
	return 0;
}

struct store_redis_keys {
	char **v;
	size_t n, cap;
};

static void store_redis_keys_release(struct store_redis_keys *k)
{
	for (size_t i = 0; i < k->n; i++)
		free(k->v[i]);
	free(k->v);
}

/* The counters' keys under llmfcgi:PREFIX, by SCAN (each step a bounded piece of work for the
 * server, unlike KEYS). SCAN may name a key twice; the caller sorts them and skips repeats. */
static enum store_result store_redis_scan(struct store_redis *r, const char *prefix,
					  struct store_redis_keys *k)
{
	struct buf pat;
	char cursor[32] = "0", name[STORE_NAME_MAX];
	long long bucket;
	buf_init(&pat, 2 * STORE_NAME_MAX + 16);
	BUF_MUST(buf_appends(&pat, "llmfcgi:")); /* pat holds twice a name, and more */
	int cut = 0;
	for (const char *p = prefix; *p && !cut; p++)
		cut = (strchr("*?[]\\", *p) && buf_appendc(&pat, '\\') < 0) || buf_appendc(&pat, *p) < 0;
	if (cut || buf_appendc(&pat, '*') < 0) {
		buf_release(&pat); /* longer than any name: nothing matches */
		return STORE_OK;
	}
	do {
		const char *argv[] = {"SCAN", cursor, "MATCH", buf_cstr(&pat), "COUNT",
				      STORE_REDIS_SCAN_COUNT};
		redisReply *rep = store_redis_run(r, 6, argv, NULL), *keys;
		if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
		    rep->element[0]->type != REDIS_REPLY_STRING ||
		    rep->element[0]->len >= sizeof cursor ||
		    (keys = rep->element[1])->type != REDIS_REPLY_ARRAY) {
			buf_release(&pat);
			return store_redis_done(r, rep, 0);
		}
		memcpy(cursor, rep->element[0]->str, rep->element[0]->len + 1);
		for (size_t i = 0; i < keys->elements; i++) {
			const redisReply *e = keys->element[i];
			if (e->type != REDIS_REPLY_STRING ||
			    store_redis_parse_key(e->str, e->len, name, &bucket) < 0)
				continue;
			if (k->n == STORE_REDIS_EACH_MAX) {
				freeReplyObject(rep);
				goto full;
			}
			if (k->n == k->cap) {
				k->cap = k->cap ? 2 * k->cap : 64;
				k->v = xrealloc(k->v, k->cap * sizeof *k->v);
			}
			k->v[k->n++] = xstrndup(e->str, e->len);
		}
		freeReplyObject(rep);
	} while (strcmp(cursor, "0") != 0);
	buf_release(&pat);
	return STORE_OK;
full:
	buf_release(&pat);
	return STORE_FULL;
}

static int store_redis_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The values of keys[0..n), by MGET, handed to fn. A key gone since the SCAN is skipped. */
static enum store_result store_redis_values(struct store_redis *r, char **keys, size_t n,
					    store_each_fn fn, void *arg)
{
	const char *argv[STORE_REDIS_MGET_BATCH + 1];
	char name[STORE_NAME_MAX];
	long long bucket, value;
	argv[0] = "MGET";
	for (size_t i = 0; i < n; i += STORE_REDIS_MGET_BATCH) {
		size_t m = n - i < STORE_REDIS_MGET_BATCH ? n - i : STORE_REDIS_MGET_BATCH;
		for (size_t j = 0; j < m; j++)
			argv[1 + j] = keys[i + j];
		redisReply *rep = store_redis_run(r, (int)m + 1, argv, NULL);
		if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != m)
			return store_redis_done(r, rep, 0);
		for (size_t j = 0; j < m; j++)
			if (store_redis_integer(rep->element[j], &value) == 0 &&
			    store_redis_parse_key(keys[i + j], strlen(keys[i + j]), name, &bucket) == 0)
				fn(arg, name, bucket, value);
		freeReplyObject(rep);
	}
	return STORE_OK;
}

/* STORE_FULL when more than STORE_REDIS_EACH_MAX counters match (fn is not called then). */
static enum store_result store_redis_each(struct store *s, const char *prefix, store_each_fn fn,
					  void *arg)
{
	struct store_redis *r = store_redis_of(s);
	struct store_redis_keys k = {0};
	enum store_result result = store_redis_scan(r, prefix, &k);
	if (result == STORE_OK && k.n) {
		size_t u = 1;
		qsort(k.v, k.n, sizeof *k.v, store_redis_cmp);
		for (size_t i = 1; i < k.n; i++) {
			if (strcmp(k.v[i], k.v[u - 1]) == 0)
				free(k.v[i]);
			else
				k.v[u++] = k.v[i];
		}
		k.n = u;
		result = store_redis_values(r, k.v, k.n, fn, arg);
	}
	store_redis_keys_release(&k);
	return result;
}

static void store_redis_after_fork(struct store *s)
{
	store_redis_adopt(store_redis_of(s));
}

static void store_redis_close(struct store *s)
{
	struct store_redis *r = store_redis_of(s);
	store_redis_drop(r);
	if (r->password)
		explicit_bzero(r->password, strlen(r->password));
	free(r->password);
	free(r->user);
	free(r->host);
	free(r->where);
	free(r);
}

/* Blobs are plain strings llmfcgi:blob:KEY with a TTL: Redis expires and evicts them itself. */
static size_t store_redis_blob_key(char *key, const char *name)
{
	return (size_t)snprintf(key, STORE_REDIS_KEY_MAX, "llmfcgi:blob:%s", name);
}

static enum store_result store_redis_put_blob(struct store *s, const char *name,
					      const void *data, size_t len, long long ttl_s)
{
	struct store_redis *r = store_redis_of(s);
	char key[STORE_REDIS_KEY_MAX], ttl[24];
	size_t klen = store_redis_blob_key(key, name);
	int tlen = snprintf(ttl, sizeof ttl, "%lld", ttl_s > 0 ? ttl_s : 1);
	const char *argv[] = {"SET", key, data, "EX", ttl};
	const size_t lens[] = {3, klen, len, 2, (size_t)tlen};
	redisReply *rep = store_redis_run(r, 5, argv, lens);
	return store_redis_done(r, rep, rep && rep->type == REDIS_REPLY_STATUS);
}

static enum store_result store_redis_get_blob(struct store *s, const char *name, struct buf *out,
					      int *found)
{
	struct store_redis *r = store_redis_of(s);
	char key[STORE_REDIS_KEY_MAX];
	size_t klen = store_redis_blob_key(key, name);
	const char *argv[] = {"GET", key};
	const size_t lens[] = {3, klen};
	redisReply *rep = store_redis_run(r, 2, argv, lens);
	int ok = rep && (rep->type == REDIS_REPLY_NIL || rep->type == REDIS_REPLY_STRING);
	if (ok && rep->type == REDIS_REPLY_STRING) {
		*found = 1;
		if (buf_append(out, rep->str, rep->len) < 0) {
			freeReplyObject(rep);
			return STORE_FULL;
		}
	}
	return store_redis_done(r, rep, ok);
}

static const struct store_ops store_redis_ops = {
	.backend = "redis",
	.defers = 1,
	.batch = store_redis_batch,
	.set = store_redis_set,
	.each = store_redis_each,
	.put_blob = store_redis_put_blob,
	.get_blob = store_redis_get_blob,
	.after_fork = store_redis_after_fork,
	.close = store_redis_close,
};

/* Connects at once, so that a wrong password or database stops the start with a message; a
 * server that cannot be reached does not (the store is then down, and connects when it can). */
struct store *store_open_redis(const char *url, double timeout_s, struct buf *err)
{
	struct store_redis *r = xcalloc(1, sizeof *r);
	struct buf why;
	r->base.ops = &store_redis_ops;
	if (!(timeout_s >= 0.001 && timeout_s <= STORE_REDIS_TIMEOUT_MAX)) {
		buf_note(err, "the Redis timeout is 0.001 to %g seconds", STORE_REDIS_TIMEOUT_MAX);
		goto fail;
	}
	r->timeout.tv_sec = (time_t)timeout_s;
	r->timeout.tv_usec = (suseconds_t)((timeout_s - (double)r->timeout.tv_sec) * 1e6);
	if (store_redis_parse_url(r, url, err) < 0)
		goto fail;
	store_redis_adopt(r);
	buf_init(&why, 512);
	int rc = store_redis_connect(r, &why);
	if (rc == -2)
		buf_note(err, "%s: %s", r->where, buf_cstr(&why));
	else if (rc == -1) {
		r->retry_at = clock_now() + STORE_REDIS_RETRY_S;
		store_redis_down(r, buf_cstr(&why));
	}
	buf_release(&why);
	if (rc == -2)
		goto fail;
	return &r->base;
fail:
	store_redis_close(&r->base);
	return NULL;
}
