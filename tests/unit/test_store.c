/* store_local: both local backends' semantics, the state file's checks, and the SIGKILL proof:
 * processes killed in the middle of updates leave the others running and the table whole. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include "store.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store_places.h"
#include "tap.h"

static char dir[64];

static void semantics(struct store *s, const char *what)
{
	long long v, after;
	int taken;
	unsigned holders;
	long long far = (long long)time(NULL) + 3600;
	store_get(s, "r|a", 10, &v);
	tap_is_int(v, 0, "%s: a missing counter reads 0", what);
	store_add(s, "r|a", 10, 3, far, &after);
	store_add(s, "r|a", 10, 4, far, &after);
	tap_is_int(after, 7, "%s: adds add up", what);
	store_get(s, "r|a", 11, &v);
	tap_is_int(v, 0, "%s: a newer bucket reads 0", what);
	store_add(s, "r|a", 11, 1, far, &after);
	tap_is_int(after, 1, "%s: the window rolled over", what);
	store_add(s, "r|a", 10, 5, far, &after);
	store_get(s, "r|a", 11, &v);
	tap_is_int(v, 1, "%s: a late add to an old bucket is dropped", what);
	store_add_capped(s, "r|b", 1, 2, 3, far, &taken, &after);
	tap_ok(taken && after == 2, "%s: capped add under the cap", what);
	store_add_capped(s, "r|b", 1, 2, 3, far, &taken, &after);
	tap_ok(!taken && after == 2, "%s: capped add over the cap is refused", what);
	store_set(s, "r|b", 1, 0, far);
	store_get(s, "r|b", 1, &v);
	tap_is_int(v, 0, "%s: set", what);
	acquire(s, "c|a", 2, &taken, &holders);
	tap_ok(taken && holders == 1, "%s: first place", what);
	acquire(s, "c|a", 2, &taken, &holders);
	tap_ok(taken && holders == 2, "%s: second place", what);
	acquire(s, "c|a", 2, &taken, &holders);
	tap_ok(!taken && holders == 2, "%s: third refused", what);
	release(s, "c|a");
	acquire(s, "c|a", 2, &taken, &holders);
	tap_ok(taken, "%s: a released place is taken again", what);
	release(s, "c|a");
	release(s, "c|a");
	/* A child takes a place and dies without releasing it. */
	pid_t pid = fork();
	if (pid == 0) {
		int t;
		unsigned h;
		acquire(s, "c|dead", 1, &t, &h);
		_exit(t ? 0 : 1);
	}
	int status;
	waitpid(pid, &status, 0);
	acquire(s, "c|dead", 1, &taken, &holders);
	tap_ok(WIFEXITED(status) && WEXITSTATUS(status) == 0 && taken && holders == 1,
	       "%s: a dead holder's place is free again", what);
	release(s, "c|dead");
	/* A name one byte too long is refused, not cut. */
	char longname[STORE_NAME_MAX + 1];
	memset(longname, 'x', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	tap_is_int(store_add(s, longname, 1, 1, far, &after), STORE_FULL, "%s: name too long", what);
}

/* A batch: in order, each operation seeing the ones before it; the first refusal stops it, its
 * places are given back and its adds stay. */
static void batch_semantics(struct store *s, const char *what)
{
	long long far = (long long)time(NULL) + 3600, v;
	size_t refused;
	struct store_op ops[] = {
		{.kind = STORE_OP_GET, .name = "b|a", .bucket = 1, .limit = 10},
		{.kind = STORE_OP_ADD, .name = "b|a", .bucket = 1, .delta = 3, .expires_at = far},
		{.kind = STORE_OP_ADD_CAPPED, .name = "b|r", .bucket = 1, .delta = 1, .limit = 5,
		 .expires_at = far},
		{.kind = STORE_OP_ACQUIRE, .name = "b|c", .limit = 2},
		{.kind = STORE_OP_GET, .name = "b|a", .bucket = 1, .limit = -1},
		{.kind = STORE_OP_RELEASE, .name = "b|c"},
	};
	tap_ok(store_batch(s, ops, 6, &refused) == STORE_OK && refused == 6 && ops[0].value == 0 &&
		       ops[1].value == 3 && ops[2].value == 1 && ops[3].value == 1 &&
		       ops[4].value == 3,
	       "%s: a batch runs in order, each operation seeing those before it", what);
	int taken;
	unsigned holders;
	acquire(s, "b|c", 1, &taken, &holders);
	tap_ok(taken && holders == 1, "%s: the batch's release gave its place back", what);
	/* Refused at 2: the place taken at 0 is given back, the capped add at 1 stays, 3 never
	 * runs. */
	struct store_op no[] = {
		{.kind = STORE_OP_ACQUIRE, .name = "b|c2", .limit = 5},
		{.kind = STORE_OP_ADD_CAPPED, .name = "b|r", .bucket = 1, .delta = 1, .limit = 5,
		 .expires_at = far},
		{.kind = STORE_OP_GET, .name = "b|a", .bucket = 1, .limit = 3},
		{.kind = STORE_OP_ADD, .name = "b|never", .bucket = 1, .delta = 1, .expires_at = far},
	};
	tap_ok(store_batch(s, no, 4, &refused) == STORE_OK && refused == 2 && no[1].value == 2 &&
		       no[2].value == 3 && no[3].value == 0,
	       "%s: the first refusal's index, the operations after it not run", what);
	store_get(s, "b|never", 1, &v);
	tap_is_int(v, 0, "%s: nothing after the refusal ran", what);
	store_get(s, "b|r", 1, &v);
	tap_is_int(v, 2, "%s: the capped add before the refusal stays", what);
	acquire(s, "b|c2", 1, &taken, &holders);
	tap_ok(taken && holders == 1, "%s: the place taken before the refusal was given back", what);
	/* A refusing ACQUIRE: this process holds b|c already, so a limit of 1 refuses. */
	struct store_op full[] = {{.kind = STORE_OP_ACQUIRE, .name = "b|c3", .limit = 1},
				  {.kind = STORE_OP_ACQUIRE, .name = "b|c", .limit = 1}};
	tap_ok(store_batch(s, full, 2, &refused) == STORE_OK && refused == 1 && full[1].value == 1,
	       "%s: a full place refuses", what);
	acquire(s, "b|c3", 1, &taken, &holders);
	tap_ok(taken, "%s: and the batch's other place is free", what);
	release(s, "b|c3");
	release(s, "b|c2");
	release(s, "b|c");
	char longname[STORE_NAME_MAX + 1];
	memset(longname, 'x', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	struct store_op bad[] = {
		{.kind = STORE_OP_ADD, .name = "b|x", .bucket = 1, .delta = 1, .expires_at = far},
		{.kind = STORE_OP_ADD, .name = longname, .bucket = 1, .delta = 1}};
	tap_ok(store_batch(s, bad, 2, &refused) == STORE_FULL && refused == 2,
	       "%s: a name too long: STORE_FULL", what);
	store_get(s, "b|x", 1, &v);
	tap_is_int(v, 0, "%s: and nothing of its batch ran", what);
}

/* Fills a small table: expired counters are reused, live ones make it full. */
/* A local store runs what store_batch_later is given at once: a call costs no round trip, and
 * another process reads the counters straight away. */
static void later_at_once(struct store *s, const char *what)
{
	long long v;
	char m[96];
	struct store_op later[] = {{.kind = STORE_OP_ADD, .name = "later|a", .bucket = 1, .delta = 2},
				   {.kind = STORE_OP_ADD, .name = "later|a", .bucket = 1, .delta = 3}};
	snprintf(m, sizeof m, "%s: store_batch_later runs at once", what);
	tap_ok(store_batch_later(s, later, 2) == STORE_OK && store_get(s, "later|a", 1, &v) ==
		       STORE_OK && v == 5, "%s", m);
	snprintf(m, sizeof m, "%s: a flush with nothing held is a no-op", what);
	tap_ok(store_flush(s) == STORE_OK && store_get(s, "later|a", 1, &v) == STORE_OK && v == 5, "%s", m);
}

static void capacity(void)
{
	struct buf err;
	buf_init(&err, 1024);
	struct store *s = store_open_shm(1024, &err);
	char name[32];
	long long after, now = (long long)time(NULL);
	int full = 0;
	for (int i = 0; i < 1024; i++) {
		snprintf(name, sizeof name, "x|%d", i);
		full |= store_add(s, name, 1, 1, now - 10, &after) != STORE_OK;
	}
	tap_ok(!full, "1024 counters fit a table of 1024");
	tap_is_int(store_add(s, "y|new", 1, 1, now + 100, &after), STORE_OK,
		   "an expired slot is reused");
	for (int i = 0; i < 1024; i++) {
		snprintf(name, sizeof name, "z|%d", i);
		store_add(s, name, 1, 1, now + 100, &after);
	}
	tap_is_int(store_add(s, "z|more", 1, 1, now + 100, &after), STORE_FULL,
		   "a table of live counters is full");
	struct store_op ops[] = {
		{.kind = STORE_OP_ADD, .name = "z|more", .bucket = 1, .delta = 1, .expires_at = now},
		{.kind = STORE_OP_ADD, .name = "z|1", .bucket = 1, .delta = 1, .expires_at = now}};
	size_t refused;
	tap_ok(store_batch(s, ops, 2, &refused) == STORE_FULL && refused == 2 && ops[0].value == 0 &&
		       ops[1].value == 2,
	       "a batch skips the counter with no room and runs the rest");
	store_close(s);
	buf_release(&err);
}

static void file_checks(void)
{
	struct buf err;
	char path[128];
	buf_init(&err, 1024);
	snprintf(path, sizeof path, "%s/state", dir);
	struct store *s = store_open_file(path, 1024, &err);
	tap_ok(s != NULL, "a missing state file is created (%s)", buf_cstr(&err));
	long long after, v;
	store_add(s, "d|x", 20260101, 42, (long long)time(NULL) + 3600, &after);
	store_close(s);
	struct stat st;
	stat(path, &st);
	tap_is_int(st.st_mode & 0777, 0600, "mode 600");
	s = store_open_file(path, 1024, &err);
	store_get(s, "d|x", 20260101, &v);
	tap_is_int(v, 42, "the counters survive a reopen");
	store_close(s);

	chmod(path, 0644);
	buf_reset(&err);
	tap_ok(!store_open_file(path, 1024, &err) && strstr(buf_cstr(&err), "chmod 600"),
	       "mode 644 is refused: %s", buf_cstr(&err));
	chmod(path, 0600);

	/* Truncated: recreated, counters start over. */
	truncate(path, 100);
	buf_reset(&err);
	s = store_open_file(path, 1024, &err);
	tap_ok(s != NULL, "a truncated file is recreated");
	if (s) {
		store_get(s, "d|x", 20260101, &v);
		tap_is_int(v, 0, "its counters start over");
		store_close(s);
	}
	/* Foreign: refused. */
	int fd = open(path, O_WRONLY | O_TRUNC);
	write(fd, "#!/bin/sh\necho hello\n", 21);
	close(fd);
	buf_reset(&err);
	tap_ok(!store_open_file(path, 1024, &err) && strstr(buf_cstr(&err), "not an llm-fcgi"),
	       "a foreign file is refused: %s", buf_cstr(&err));
	/* A damaged header: refused. */
	s = (unlink(path), store_open_file(path, 1024, &err));
	store_close(s);
	fd = open(path, O_WRONLY);
	pwrite(fd, "\xff\xff", 2, 16);
	close(fd);
	buf_reset(&err);
	tap_ok(!store_open_file(path, 1024, &err) && strstr(buf_cstr(&err), "damaged"),
	       "a damaged header is refused: %s", buf_cstr(&err));
	unlink(path);
	buf_release(&err);
}

#define KILLERS 4  /* workers killed each round */
#define ROUNDS 200

/* What the SIGKILL tests share: a state file of their own, and a pipe on which each worker writes
 * one byte per operation that returned (so the parent knows what was confirmed). */
struct killing {
	char path[128];
	struct buf err;
	struct store *s;
	int fds[2];
};

static void killing_open(struct killing *k, const char *file)
{
	buf_init(&k->err, 1024);
	snprintf(k->path, sizeof k->path, "%s/%s", dir, file);
	k->s = store_open_file(k->path, 1024, &k->err);
	if (!k->s || pipe(k->fds) < 0)
		abort();
	fcntl(k->fds[0], F_SETFL, O_NONBLOCK);
}

/* SIGKILLs every worker of a round, reaps it and counts it. */
static void kill_round(const pid_t *pids, long long *kills)
{
	for (int k = 0; k < KILLERS; k++) {
		kill(pids[k], SIGKILL);
		waitpid(pids[k], NULL, 0);
		(*kills)++;
	}
}

/* The bytes of confirmations waiting in the pipe. */
static long long confirmations(const struct killing *k)
{
	char b[4096];
	ssize_t n;
	long long total = 0;
	while ((n = read(k->fds[0], b, sizeof b)) > 0)
		total += n;
	return total;
}

static void killing_close(struct killing *k)
{
	store_close(k->s);
	unlink(k->path);
	close(k->fds[0]);
	close(k->fds[1]);
	buf_release(&k->err);
}

/* The proof: workers loop over adds (and places) on a shared file while the parent SIGKILLs
 * them at random moments, 200 times. Nobody wedges (the last phase must finish), every counter
 * is within [adds confirmed, adds confirmed + kills], and no name has two slots. */
static void sigkill_loop(void)
{
	struct killing kg;
	killing_open(&kg, "killed");
	struct store *s = kg.s;
	long long far = (long long)time(NULL) + 3600;
	long long confirmed = 0, kills = 0;
	for (int round = 0; round < ROUNDS; round++) {
		pid_t pids[KILLERS];
		for (int k = 0; k < KILLERS; k++) {
			pids[k] = fork();
			if (pids[k] == 0) {
				close(kg.fds[0]);
				for (;;) {
					long long a;
					int t;
					unsigned h;
					char name[32];
					acquire(s, "c|k", 1000, &t, &h);
					store_add(s, "n|k", 1, 1, far, &a);
					/* confirmed: one byte per add that returned */
					if (write(kg.fds[1], "+", 1) != 1)
						_exit(1);
					snprintf(name, sizeof name, "n|%d", (int)(a % 50));
					store_add(s, name, 1, 1, far, &a);
					release(s, "c|k");
				}
			}
		}
		struct timespec ts = {0, (long)(200000 + rand() % 800000)};
		nanosleep(&ts, NULL);
		kill_round(pids, &kills);
		confirmed += confirmations(&kg);
	}
	long long v;
	store_get(s, "n|k", 1, &v);
	tap_ok(v >= confirmed && v <= confirmed + kills,
	       "after %lld kills: %lld adds counted, %lld confirmed", kills, v, confirmed);
	tap_ok(confirmed > ROUNDS, "the workers made progress between kills (%lld adds)", confirmed);
	int taken;
	unsigned holders;
	acquire(s, "c|k", 1, &taken, &holders);
	tap_ok(taken && holders == 1, "no place is leaked by the killed holders");
	release(s, "c|k");
	long long sum = 0;
	char name[32];
	for (int i = 0; i < 50; i++) {
		long long x;
		snprintf(name, sizeof name, "n|%d", i);
		store_get(s, name, 1, &x);
		sum += x;
	}
	tap_ok(sum >= confirmed - kills && sum <= v, "the spread counters agree (%lld)", sum);
	killing_close(&kg);
}

/* Batches under SIGKILL: workers loop over one batch of three adds while the parent reads the
 * three in one batch until it kills them. No reader sees a part of another's batch; a batch
 * killed in the middle leaves the adds before the kill done, each whole: a1 >= a2 >= a3, apart by
 * at most the kills so far. Nobody wedges. */
static void batch3(struct store *s, enum store_op_kind kind, long long far, long long *v)
{
	static const char *const names[] = {"k|1", "k|2", "k|3"};
	struct store_op ops[3];
	size_t refused;
	for (int i = 0; i < 3; i++)
		ops[i] = (struct store_op){.kind = kind, .name = names[i], .bucket = 1, .delta = 1,
					   .limit = kind == STORE_OP_GET ? -1 : 0, .expires_at = far};
	store_batch(s, ops, 3, &refused);
	for (int i = 0; v && i < 3; i++)
		v[i] = ops[i].value;
}

static void read3(struct store *s, long long *v)
{
	batch3(s, STORE_OP_GET, 0, v);
}

static void add3(struct store *s, long long far)
{
	batch3(s, STORE_OP_ADD, far, NULL);
}

static void batch_kills(void)
{
	struct killing kg;
	killing_open(&kg, "batch");
	struct store *s = kg.s;
	long long far = (long long)time(NULL) + 3600, confirmed = 0, kills = 0, reads = 0, v[3];
	int torn = 0;
	for (int round = 0; round < ROUNDS / 2; round++) {
		pid_t pids[KILLERS];
		for (int k = 0; k < KILLERS; k++) {
			if ((pids[k] = fork()) == 0) {
				close(kg.fds[0]);
				for (;;) {
					add3(s, far);
					if (write(kg.fds[1], "+", 1) != 1) /* one byte per batch returned */
						_exit(1);
				}
			}
		}
		struct timespec t0, t;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		long wait_ns = 200000 + rand() % 800000;
		do {
			read3(s, v);
			reads++;
			torn |= v[0] < v[1] || v[1] < v[2] || v[0] - v[2] > kills;
			clock_gettime(CLOCK_MONOTONIC, &t);
		} while ((t.tv_sec - t0.tv_sec) * 1000000000L + t.tv_nsec - t0.tv_nsec < wait_ns);
		kill_round(pids, &kills);
		confirmed += confirmations(&kg);
	}
	read3(s, v);
	tap_ok(!torn, "%lld reads between batches: none saw a part of one", reads);
	tap_ok(v[2] >= confirmed && v[0] <= confirmed + kills && v[0] - v[2] <= kills,
	       "after %lld kills mid-batch: %lld, %lld, %lld counted, %lld batches confirmed", kills,
	       v[0], v[1], v[2], confirmed);
	tap_ok(confirmed > ROUNDS / 2, "the workers made progress between kills (%lld)", confirmed);
	killing_close(&kg);
}

static int seen_twice;
static char seen[64][STORE_NAME_MAX];
static int nseen;

static void count_names(void *arg, const char *name, long long bucket, long long value)
{
	(void)arg;
	(void)bucket;
	(void)value;
	for (int i = 0; i < nseen; i++)
		if (strcmp(seen[i], name) == 0)
			seen_twice = 1;
	if (nseen < 64)
		snprintf(seen[nseen++], STORE_NAME_MAX, "%s", name);
}

static void each(struct store *s)
{
	long long after, far = (long long)time(NULL) + 3600;
	store_add(s, "u|$|key:a|m", 20260101, 5, far, &after);
	store_add(s, "u|n|key:a|m", 20260101, 1, far, &after);
	store_add(s, "d|key:a", 20260101, 5, far, &after);
	nseen = 0;
	store_each(s, "u|", count_names, NULL);
	tap_ok(nseen == 2 && !seen_twice, "each: the prefix's counters, once each (%d)", nseen);
}

int main(void)
{
	struct buf err;
	buf_init(&err, 1024);
	snprintf(dir, sizeof dir, "/tmp/test_store.XXXXXX");
	if (!mkdtemp(dir))
		abort();
	struct store *s = store_open_shm(4096, &err);
	tap_is_str(store_backend(s), "shm", "backend name");
	semantics(s, "shm");
	batch_semantics(s, "shm");
	later_at_once(s, "shm");
	each(s);
	store_close(s);
	char path[128];
	snprintf(path, sizeof path, "%s/sem", dir);
	s = store_open_file(path, 4096, &err);
	tap_is_str(store_backend(s), "file", "backend name");
	semantics(s, "file");
	batch_semantics(s, "file");
	later_at_once(s, "file");
	store_close(s);
	unlink(path);
	capacity();
	file_checks();
	sigkill_loop();
	batch_kills();
	rmdir(dir);
	buf_release(&err);
	return tap_done();
}
