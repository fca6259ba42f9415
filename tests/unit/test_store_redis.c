/* The Redis store against a real redis-server, started here on a free loopback port without
 * persistence: every operation, atomicity across processes, expiry, holders that die, fork,
 * a server that stalls or goes away and comes back, passwords. Skips when there is no
 * redis-server. Waits are bounded by generous limits, never asserted as durations. */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "buf.h"
#include "clock.h"
#include "store.h"
#include "store_places.h"
#include "tap.h"

static int port;
static pid_t server;
static char url[128];
static const char *admin_password; /* what the admin connection AUTHs with, when set */

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		abort();
	close(fd);
	return ntohs(a.sin_port);
}

/* One command on a connection of its own (the test's view of the server). NULL when down. */
static redisReply *admin(const char *fmt, ...)
{
	struct timeval tv = {2, 0};
	redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
	redisReply *rep = NULL;
	if (c && !c->err && admin_password) {
		rep = redisCommand(c, "AUTH %s", admin_password);
		freeReplyObject(rep);
		rep = NULL;
	}
	if (c && !c->err) {
		va_list ap;
		va_start(ap, fmt);
		rep = redisvCommand(c, fmt, ap);
		va_end(ap);
	}
	if (c)
		redisFree(c);
	return rep;
}

static long long admin_int(const char *fmt, const char *arg)
{
	redisReply *rep = admin(fmt, arg);
	long long v = rep && rep->type == REDIS_REPLY_INTEGER ? rep->integer
		      : rep && rep->type == REDIS_REPLY_STRING ? atoll(rep->str)
							       : -999;
	freeReplyObject(rep);
	return v;
}

/* INFO commandstats' calls of one command (cmdstat_evalsha...), 0 when it has none. */
static long long command_calls(const char *cmd)
{
	char key[64];
	redisReply *rep = admin("INFO commandstats");
	snprintf(key, sizeof key, "cmdstat_%s:calls=", cmd);
	const char *p = rep && rep->type == REDIS_REPLY_STRING ? strstr(rep->str, key) : NULL;
	long long v = p ? atoll(p + strlen(key)) : 0;
	freeReplyObject(rep);
	return v;
}

/* A batch: one EVALSHA, the operations in order; the first refusal stops it, gives back the
 * places it took (not one this process held before) and keeps its adds. */
static void test_batch(struct store *s)
{
	size_t refused;
	int taken;
	unsigned holders;
	long long v;
	struct store_op ops[] = {
		{.kind = STORE_OP_GET, .name = "b|a", .bucket = 1, .limit = 10},
		{.kind = STORE_OP_ADD, .name = "b|a", .bucket = 1, .delta = 3},
		{.kind = STORE_OP_ADD_CAPPED, .name = "b|r", .bucket = 1, .delta = 1, .limit = 5},
		{.kind = STORE_OP_ACQUIRE, .name = "b|c", .limit = 2},
		{.kind = STORE_OP_GET, .name = "b|a", .bucket = 1, .limit = -1},
		{.kind = STORE_OP_RELEASE, .name = "b|c"},
	};
	store_get(s, "warm", 1, &v); /* connected, the scripts loaded */
	long long evalsha = command_calls("evalsha");
	tap_ok(store_batch(s, ops, 6, &refused) == STORE_OK && refused == 6 && ops[0].value == 0 &&
		       ops[1].value == 3 && ops[2].value == 1 && ops[3].value == 1 &&
		       ops[4].value == 3,
	       "batch: in order, each operation seeing those before it");
	tap_is_int(command_calls("evalsha") - evalsha, 1, "batch: six operations, one EVALSHA");
	tap_ok(admin_int("ZCARD %s", "llmfcgi:b|c:holders") == 0, "batch: its release ran");
	/* Refused at 3: the new place at 0 is given back, the one held before (1) is kept, the
	 * capped add at 2 stays, 4 never runs. */
	acquire(s, "b|held", 5, &taken, &holders);
	struct store_op no[] = {
		{.kind = STORE_OP_ACQUIRE, .name = "b|c2", .limit = 5},
		{.kind = STORE_OP_ACQUIRE, .name = "b|held", .limit = 5},
		{.kind = STORE_OP_ADD_CAPPED, .name = "b|r", .bucket = 1, .delta = 1, .limit = 5},
		{.kind = STORE_OP_GET, .name = "b|a", .bucket = 1, .limit = 3},
		{.kind = STORE_OP_ADD, .name = "b|never", .bucket = 1, .delta = 1},
	};
	tap_ok(store_batch(s, no, 5, &refused) == STORE_OK && refused == 3 && no[2].value == 2 &&
		       no[3].value == 3 && no[4].value == 0,
	       "batch: the first refusal's index, the operations after it not run");
	tap_ok(admin_int("EXISTS %s", "llmfcgi:b|never:1") == 0 &&
		       admin_int("GET %s", "llmfcgi:b|r:1") == 2,
	       "batch: nothing after the refusal ran, the capped add before it stays");
	tap_ok(admin_int("ZCARD %s", "llmfcgi:b|c2:holders") == 0 &&
		       admin_int("ZCARD %s", "llmfcgi:b|held:holders") == 1,
	       "batch: the place it took is given back, the one held before is kept");
	struct store_op full[] = {{.kind = STORE_OP_ACQUIRE, .name = "b|c3", .limit = 1},
				  {.kind = STORE_OP_ACQUIRE, .name = "b|c4", .limit = 0}};
	tap_ok(store_batch(s, full, 2, &refused) == STORE_OK && refused == 1 &&
		       admin_int("ZCARD %s", "llmfcgi:b|c3:holders") == 0,
	       "batch: a full place refuses, and gives back the batch's other");
	release(s, "b|held");
}

/* Held back: store_batch_later sends nothing; the next batch carries it first, in the same
 * EVALSHA, and its refusal index is the caller's own; store_flush sends what is left. */
static void test_later(struct store *s)
{
	size_t refused;
	long long v;
	char name[16];
	store_get(s, "warm", 1, &v);
	long long evalsha = command_calls("evalsha");
	struct store_op later[] = {{.kind = STORE_OP_ADD, .name = name, .bucket = 1, .delta = 4},
				   {.kind = STORE_OP_RELEASE, .name = "l|c"}};
	snprintf(name, sizeof name, "l|a");
	tap_ok(store_batch_later(s, later, 2) == STORE_OK, "later: held back");
	snprintf(name, sizeof name, "l|x"); /* the caller's buffer changes: the store kept a copy */
	tap_is_int(command_calls("evalsha") - evalsha, 0, "later: nothing sent yet");
	tap_ok(admin_int("EXISTS %s", "llmfcgi:l|a:1") == 0, "later: nothing ran yet");
	struct store_op mine[] = {
		{.kind = STORE_OP_GET, .name = "l|a", .bucket = 1, .limit = -1},
		{.kind = STORE_OP_ADD_CAPPED, .name = "l|r", .bucket = 1, .delta = 1, .limit = 0},
	};
	tap_ok(store_batch(s, mine, 2, &refused) == STORE_OK && refused == 1 &&
		       mine[0].value == 4,
	       "later: the next batch runs it first; the refusal index is the batch's own");
	tap_is_int(command_calls("evalsha") - evalsha, 1, "later: both in one EVALSHA");
	tap_ok(admin_int("EXISTS %s", "llmfcgi:l|x:1") == 0, "later: under the name it had");
	tap_ok(store_batch_later(s, later, 1) == STORE_OK && store_flush(s) == STORE_OK &&
		       admin_int("GET %s", "llmfcgi:l|x:1") == 4,
	       "later: store_flush sends it");
	tap_ok(store_flush(s) == STORE_OK && command_calls("evalsha") - evalsha == 2,
	       "later: a flush with nothing held sends nothing");
}

/* INFO stats' total_connections_received. */
static long long connections(void)
{
	redisReply *rep = admin("INFO stats");
	const char *p = rep && rep->type == REDIS_REPLY_STRING
				? strstr(rep->str, "total_connections_received:")
				: NULL;
	long long v = p ? atoll(p + strlen("total_connections_received:")) : -1;
	freeReplyObject(rep);
	return v;
}

/* Starts redis-server on port; 0 when it answers PING, -1 when it cannot be run. */
static int server_start(void)
{
	char p[16];
	snprintf(p, sizeof p, "%d", port);
	server = fork();
	if (server == 0) {
		freopen("/dev/null", "w", stdout);
		execlp("redis-server", "redis-server", "--port", p, "--bind", "127.0.0.1", "--save", "",
		       "--appendonly", "no", "--dir", "/tmp", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 400; i++) {
		if (waitpid(server, NULL, WNOHANG) == server)
			return -1;
		redisReply *rep = admin("PING");
		int up = rep != NULL;
		freeReplyObject(rep);
		if (up)
			return 0;
		usleep(25000);
	}
	return -1;
}

static void server_stop(void)
{
	kill(server, SIGKILL);
	waitpid(server, NULL, 0);
}

static struct store *open_store(const char *query)
{
	char u[192];
	struct buf err;
	buf_init(&err, 1024);
	snprintf(u, sizeof u, "%s%s", url, query);
	struct store *s = store_open_redis(u, 0.5, &err);
	if (!s)
		tap_diag("open %s: %s", u, buf_cstr(&err));
	buf_release(&err);
	return s;
}

static void test_urls(void)
{
	static const struct {
		const char *url, *want;
	} bad[] = {
		{"http://x", "begins with redis://"},
		{"rediss://h:1", "TLS"},
		{"redis://:pw@", "expected redis://"},
		{"redis://h:99999", "expected redis://"},
		{"redis://h:1/x", "database"},
		{"redis://h/1?ttl=3", "holder_ttl"},
		{"redis://secret@h", "colon"},
		{"redis://:%zz@h", "%-escape"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct buf err;
		buf_init(&err, 1024);
		struct store *s = store_open_redis(bad[i].url, 0.5, &err);
		tap_ok(!s && strstr(buf_cstr(&err), bad[i].want), "%s refused: %s", bad[i].url,
		       buf_cstr(&err));
		buf_release(&err);
	}
	/* A server without a password refuses AUTH: the start stops, and the message has no
	 * password in it. */
	char u[128];
	struct buf err;
	buf_init(&err, 1024);
	snprintf(u, sizeof u, "redis://:hunter2@127.0.0.1:%d", port);
	struct store *s = store_open_redis(u, 0.5, &err);
	tap_ok(!s && err.len && !strstr(buf_cstr(&err), "hunter2"),
	       "AUTH refused, password not in the message: %s", buf_cstr(&err));
	buf_release(&err);
}

static void test_counters(struct store *s)
{
	long long v = -1, after = -1;
	int taken = -1;
	tap_is_str(store_backend(s), "redis", "backend name");
	tap_ok(store_get(s, "rpm|key:a", 7, &v) == STORE_OK && v == 0, "missing counter reads 0");
	tap_ok(store_add(s, "rpm|key:a", 7, 5, 0, &after) == STORE_OK && after == 5, "add 5");
	tap_ok(store_add(s, "rpm|key:a", 7, -2, 0, &after) == STORE_OK && after == 3, "add -2");
	tap_ok(store_get(s, "rpm|key:a", 7, &v) == STORE_OK && v == 3, "get 3");
	tap_ok(store_get(s, "rpm|key:a", 8, &v) == STORE_OK && v == 0, "a newer bucket reads 0");
	tap_ok(store_set(s, "rpm|key:a", 7, 100, 0) == STORE_OK &&
		       store_get(s, "rpm|key:a", 7, &v) == STORE_OK && v == 100,
	       "set 100");
	tap_ok(store_add_capped(s, "cap", 1, 8, 10, 0, &taken, &after) == STORE_OK && taken &&
		       after == 8,
	       "capped: 8 of 10 taken");
	tap_ok(store_add_capped(s, "cap", 1, 5, 10, 0, &taken, &after) == STORE_OK && !taken &&
		       after == 8,
	       "capped: 5 more refused, value unchanged");
	tap_ok(store_add_capped(s, "cap", 1, 2, 10, 0, &taken, &after) == STORE_OK && taken &&
		       after == 10,
	       "capped: exactly up to the limit");
	char big[STORE_NAME_MAX + 1];
	memset(big, 'n', sizeof big - 1);
	big[sizeof big - 1] = 0;
	tap_ok(store_add(s, big, 1, 1, 0, &after) == STORE_FULL, "a name too long is refused");
	/* SCRIPT FLUSH: the scripts are gone from the server; EVAL brings them back. */
	freeReplyObject(admin("SCRIPT FLUSH"));
	tap_ok(store_add(s, "rpm|key:a", 7, 1, 0, &after) == STORE_OK && after == 101,
	       "add after SCRIPT FLUSH (NOSCRIPT, then EVAL)");
}

static void test_expiry(struct store *s)
{
	long long v = -1, after;
	long long now = (long long)time(NULL);
	tap_ok(store_add(s, "exp", 1, 4, now + 1000, &after) == STORE_OK, "add with an expiry");
	long long ttl = admin_int("TTL %s", "llmfcgi:exp:1");
	tap_ok(ttl > 900 && ttl <= 1000, "EXPIREAT set: TTL %lld", ttl);
	tap_ok(store_set(s, "exp", 2, 4, now + 500) == STORE_OK &&
		       admin_int("TTL %s", "llmfcgi:exp:2") > 400,
	       "set with an expiry");
	tap_ok(store_add(s, "exp", 3, 4, now - 10, &after) == STORE_OK &&
		       store_get(s, "exp", 3, &v) == STORE_OK && v == 0,
	       "an expiry in the past: gone at once");
	store_add(s, "exp", 4, 4, now + 1, &after);
	for (int i = 0; i < 150 && store_get(s, "exp", 4, &v) == STORE_OK && v; i++)
		usleep(100000);
	tap_ok(v == 0, "the counter expires");
}

struct seen {
	int n;
	long long sum;
	int odd; /* an entry the test did not expect */
};

static void each_fn(void *arg, const char *name, long long bucket, long long value)
{
	struct seen *w = arg;
	w->n++;
	w->sum += value;
	if (strncmp(name, "many|", 5) != 0 && strcmp(name, "a*b") != 0 &&
	    strncmp(name, "rpm|", 4) != 0)
		w->odd++;
	(void)bucket;
}

static void test_each(struct store *s)
{
	long long after;
	int taken;
	unsigned holders;
	freeReplyObject(admin("FLUSHDB"));
	store_add(s, "rpm|key:alice", 1, 1, 0, &after);
	store_add(s, "rpm|key:bob", 1, 2, 0, &after);
	store_add(s, "rpm|key:bob", -2, 4, 0, &after);
	store_add(s, "tpm|x", 1, 8, 0, &after);
	store_add(s, "a*b", 1, 16, 0, &after);
	store_add(s, "axb", 1, 32, 0, &after);
	acquire(s, "rpm|key:alice", 5, &taken, &holders);
	freeReplyObject(admin("SET %s %s", "llmfcgi:rpm|junk:notanumber", "1"));
	for (int i = 0; i < 600; i++)
		store_add(s, "many|x", i, 1, 0, &after);
	struct seen w = {0};
	enum store_result r = store_each(s, "rpm|", each_fn, &w);
	tap_ok(r == STORE_OK && w.n == 3 && w.sum == 7 && !w.odd,
	       "each rpm|: 3 counters, sum 7 (holders and other keys skipped): %d, %lld", w.n,
	       w.sum);
	memset(&w, 0, sizeof w);
	tap_ok(store_each(s, "a*", each_fn, &w) == STORE_OK && w.n == 1 && w.sum == 16,
	       "each a*: the '*' is literal");
	memset(&w, 0, sizeof w);
	r = store_each(s, "many|", each_fn, &w);
	tap_ok(r == STORE_OK && w.n == 600 && w.sum == 600,
	       "each many|: 600 counters, each once: %d", w.n);
	release(s, "rpm|key:alice");
}

/* n children run fn(s, i) at once; each writes one long long back. Returns their sum. */
static long long in_children(struct store *s, int n, long long (*fn)(struct store *, int))
{
	int fds[2];
	long long sum = 0, v;
	pid_t kids[16];
	if (n > 16 || pipe(fds) < 0)
		abort();
	for (int i = 0; i < n; i++) {
		if ((kids[i] = fork()) == 0) {
			close(fds[0]);
			store_after_fork(s);
			v = fn(s, i);
			if (write(fds[1], &v, sizeof v) != sizeof v)
				_exit(1);
			_exit(0);
		}
	}
	close(fds[1]);
	while (read(fds[0], &v, sizeof v) == sizeof v)
		sum += v;
	close(fds[0]);
	for (int i = 0; i < n; i++)
		waitpid(kids[i], NULL, 0); /* not wait(): the server is a child too */
	return sum;
}

static long long add_200(struct store *s, int i)
{
	long long after, ok = 0;
	for (int k = 0; k < 200; k++)
		ok += store_add(s, "conc", 1, 1, 0, &after) == STORE_OK;
	return ok;
}

static long long add_capped_until_refused(struct store *s, int i)
{
	long long after, sum = 0;
	int taken = 1;
	while (taken && store_add_capped(s, "conc_cap", 1, 3, 1000, 0, &taken, &after) == STORE_OK)
		sum += taken ? 3 : 0;
	return sum;
}

static void test_atomic(struct store *s)
{
	long long v = -1;
	long long ok = in_children(s, 8, add_200);
	enum store_result r = store_get(s, "conc", 1, &v);
	tap_ok(ok == 1600 && r == STORE_OK && v == 1600,
	       "8 processes x 200 adds: %lld (%lld succeeded)", v, ok);
	long long took = in_children(s, 8, add_capped_until_refused);
	r = store_get(s, "conc_cap", 1, &v);
	tap_ok(r == STORE_OK && v == took && v <= 1000 && v >= 998,
	       "8 processes add_capped to 1000: %lld, taken %lld, never over", v, took);
}

/* A holder: reports whether it took one of 3 places, then holds it until SIGKILLed. */
static void hold(struct store *s, int report)
{
	int taken = 0;
	unsigned holders;
	store_after_fork(s);
	acquire(s, "conc|key:k", 3, &taken, &holders);
	long long v = taken;
	if (write(report, &v, sizeof v) != sizeof v)
		_exit(1);
	while (taken)
		pause();
	_exit(0);
}

static void test_holders(struct store *s)
{
	int taken = -1;
	unsigned holders = 0;
	tap_ok(acquire(s, "c1", 2, &taken, &holders) == STORE_OK && taken && holders == 1,
	       "acquire: taken, 1 holder");
	tap_ok(acquire(s, "c1", 1, &taken, &holders) == STORE_OK && taken && holders == 1,
	       "acquire again: a present holder refreshes, never refused");
	release(s, "c1");
	tap_ok(admin_int("ZCARD %s", "llmfcgi:c1:holders") == 0, "release removes the holder");
	tap_ok(acquire(s, "c0", 0, &taken, &holders) == STORE_OK && !taken,
	       "limit 0: never taken");

	/* 6 processes want 3 places at once; the winners hold them and get SIGKILLed. */
	int counts[2];
	if (pipe(counts) < 0)
		abort();
	pid_t kids[6];
	for (int i = 0; i < 6; i++)
		if ((kids[i] = fork()) == 0)
			hold(s, counts[1]);
	long long one, won = 0;
	for (int i = 0; i < 6 && read(counts[0], &one, sizeof one) == sizeof one; i++)
		won += one;
	tap_ok(acquire(s, "conc|key:k", 3, &taken, &holders) == STORE_OK && !taken &&
		       holders == 3 && won == 3,
	       "6 processes, limit 3: exactly 3 hold (%lld), the 4th is refused", won);
	for (int i = 0; i < 6; i++)
		kill(kids[i], SIGKILL);
	close(counts[0]);
	close(counts[1]);
	for (int i = 0; i < 6; i++)
		waitpid(kids[i], NULL, 0);
	/* Redis cannot see them die: their places come back with holder_ttl (5 s here). */
	tap_ok(acquire(s, "conc|key:k", 3, &taken, &holders) == STORE_OK && !taken,
	       "SIGKILLed holders still count until their TTL");
	/* Each place comes back at its own holder's TTL, and the children took theirs at slightly
	 * different times (far apart on a loaded machine): wait until all three have. */
	for (int i = 0; i < 300; i++) {
		if (acquire(s, "conc|key:k", 3, &taken, &holders) == STORE_OK && taken) {
			if (holders == 1)
				break;
			release(s, "conc|key:k");
		}
		usleep(100000);
	}
	tap_ok(taken && holders == 1, "after the TTL the dead holders' places are reclaimed");
	release(s, "conc|key:k");
}

static void test_fork(struct store *s)
{
	long long after = 0;
	store_add(s, "fork", 1, 1, 0, &after); /* the parent is connected */
	long long before = connections();
	pid_t kid = fork();
	if (kid == 0) {
		store_after_fork(s);
		_exit(store_add(s, "fork", 1, 10, 0, &after) == STORE_OK ? 0 : 1);
	}
	int st;
	waitpid(kid, &st, 0);
	tap_ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child adds on a connection of its own");
	kid = fork();
	if (kid == 0) /* no store_after_fork: the store notices the new pid itself */
		_exit(store_add(s, "fork", 1, 100, 0, &after) == STORE_OK ? 0 : 1);
	waitpid(kid, &st, 0);
	tap_ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "a child that forgot store_after_fork too");
	enum store_result r = store_add(s, "fork", 1, 1000, 0, &after);
	tap_ok(r == STORE_OK && after == 1111,
	       "the parent's connection still works: %lld", after);
	/* the admin connection of connections(), the two children's: the parent did not reconnect */
	tap_is_int(connections() - before, 3, "connections made: the children's and the admin's");
}

static void test_outages(struct store *s)
{
	long long after = 0;
	/* A connection the server closes while idle: the next call reconnects and succeeds. */
	freeReplyObject(admin("CLIENT KILL TYPE normal SKIPME yes"));
	tap_ok(store_add(s, "out", 1, 1, 0, &after) == STORE_OK && after == 1,
	       "a connection the server closed is reopened transparently");
	/* A server that stops answering (SIGSTOP): STORE_DOWN after the timeout, not a hang. */
	kill(server, SIGSTOP);
	double t0 = clock_now();
	enum store_result r = store_add(s, "out", 1, 1, 0, &after);
	double took = clock_now() - t0;
	tap_ok(r == STORE_DOWN && took < 10, "stalled server: STORE_DOWN (%.2f s, timeout 0.5)",
	       took);
	kill(server, SIGCONT);
	for (int i = 0; i < 100 && store_add(s, "out", 1, 1, 0, &after) != STORE_OK; i++)
		usleep(100000);
	tap_ok(after >= 2, "after SIGCONT the store answers again");
	/* The server dies, and comes back on the same port. */
	server_stop();
	tap_ok(store_add(s, "out", 1, 1, 0, &after) == STORE_DOWN, "server gone: STORE_DOWN");
	tap_ok(store_add(s, "out", 1, 1, 0, &after) == STORE_DOWN, "still gone: STORE_DOWN at once");
	if (server_start() < 0)
		abort();
	r = STORE_DOWN;
	for (int i = 0; i < 100 && (r = store_add(s, "out", 1, 5, 0, &after)) != STORE_OK; i++)
		usleep(100000);
	tap_ok(r == STORE_OK && after == 5, "reconnected once the server is back (a fresh server: 5)");
}

static void test_stall_listener(void)
{
	/* Accepts (the kernel's backlog) and never answers: open returns a store that is down. */
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 16) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		abort();
	char u[64];
	struct buf err;
	buf_init(&err, 1024);
	snprintf(u, sizeof u, "redis://127.0.0.1:%d", ntohs(a.sin_port));
	double t0 = clock_now();
	struct store *s = store_open_redis(u, 0.2, &err);
	double took = clock_now() - t0;
	tap_ok(s != NULL && took < 10, "a silent server: open gives a store that is down (%.2f s)",
	       took);
	long long v;
	tap_ok(s && store_get(s, "x", 1, &v) == STORE_DOWN, "and its calls are STORE_DOWN");
	usleep(1100000); /* past the reconnect pause: this call connects and times out */
	t0 = clock_now();
	enum store_result r = s ? store_get(s, "x", 1, &v) : STORE_OK;
	took = clock_now() - t0;
	tap_ok(r == STORE_DOWN && took < 10,
	       "a call that connects to the silent server: STORE_DOWN (%.2f s, timeout 0.2)", took);
	store_close(s);
	close(fd);
	buf_release(&err);
}

static void test_password(void)
{
	freeReplyObject(admin("CONFIG SET requirepass %s", "p@ss:w/rd"));
	admin_password = "p@ss:w/rd";
	char u[128];
	struct buf err;
	buf_init(&err, 1024);
	snprintf(u, sizeof u, "redis://:p%%40ss%%3Aw%%2Frd@127.0.0.1:%d/3", port);
	struct store *s = store_open_redis(u, 0.5, &err);
	long long after = 0;
	enum store_result r = s ? store_add(s, "pw", 1, 42, 0, &after) : STORE_DOWN;
	redisReply *rep = admin("INFO keyspace");
	tap_ok(r == STORE_OK && after == 42 && rep && rep->type == REDIS_REPLY_STRING &&
		       strstr(rep->str, "db3:keys=1,"),
	       "AUTH with a %%-escaped password, in database 3: %s", buf_cstr(&err));
	freeReplyObject(rep);
	store_close(s);
	buf_reset(&err);
	snprintf(u, sizeof u, "redis://default:wrongpass@127.0.0.1:%d", port);
	s = store_open_redis(u, 0.5, &err);
	tap_ok(!s && !strstr(buf_cstr(&err), "wrongpass") && strstr(buf_cstr(&err), "127.0.0.1"),
	       "a wrong password stops the start, and is not in the message: %s", buf_cstr(&err));
	store_close(s);
	freeReplyObject(admin("CONFIG SET requirepass %s", ""));
	admin_password = NULL;
	buf_release(&err);
}

/* Blobs (the Responses API's kept responses): SET with a TTL, GET, binary-safe. */
static void test_blobs(struct store *s)
{
	struct buf out;
	int found;
	buf_init(&out, STORE_BLOB_MAX);
	tap_ok(store_put_blob(s, "resp_r1", "a\0b", 3, 60) == STORE_OK, "blob: put");
	tap_ok(store_get_blob(s, "resp_r1", &out, &found) == STORE_OK && found && out.len == 3 &&
	       memcmp(out.data, "a\0b", 3) == 0, "blob: get, bytes as put");
	buf_reset(&out);
	tap_ok(store_get_blob(s, "resp_none", &out, &found) == STORE_OK && !found && out.len == 0,
	       "blob: an unknown key is none");
	buf_release(&out);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN); /* as main.c does */
	port = free_port();
	snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
	if (server_start() < 0) {
		printf("1..0 # SKIP no redis-server to run\n");
		return 0;
	}
	test_urls();
	struct store *s = open_store("/0?holder_ttl=5");
	if (!s) {
		server_stop();
		tap_ok(0, "open");
		return tap_done();
	}
	test_counters(s);
	test_batch(s);
	test_later(s);
	test_blobs(s);
	test_expiry(s);
	test_each(s);
	test_atomic(s);
	test_holders(s);
	test_fork(s);
	test_password();
	test_outages(s);
	test_stall_listener();
	store_close(s);
	server_stop();
	return tap_done();
}
