#include "pool.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "log.h"

struct slot {
	pid_t pid;
	unsigned generation;
	double started;
};

/* The parent's own signal flags: set by handlers, acted on in the supervision loop. */
static volatile sig_atomic_t got_term, got_hup, got_usr1;

static void on_term(int sig) { got_term = 1; }
static void on_hup(int sig) { got_hup = 1; }
static void on_usr1(int sig) { got_usr1 = 1; }
static void on_chld(int sig) { }

struct pool_shared *pool_shared_new(void)
{
	/* Anonymous shared pages start zeroed, and only the slots in use are ever touched. */
	void *p = mmap(NULL, sizeof(struct pool_shared), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void pool_slot_start(struct pool_slot *self)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	atomic_store(&self->pid, (int)getpid());
	atomic_store(&self->started_ms, (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

void pool_slot_enter(struct pool_slot *self)
{
	atomic_store(&self->busy, 1);
}

void pool_slot_leave(struct pool_slot *self)
{
	atomic_store(&self->busy, 0);
	atomic_fetch_add(&self->served, 1);
}

unsigned pool_busy(struct pool_shared *s)
{
	unsigned gen = atomic_load(&s->generation), n = atomic_load(&s->nslots), c = 0;
	for (unsigned i = 0; i < n && i < POOL_MAX_SLOTS; i++)
		c += atomic_load(&s->slot[i].generation) == gen && atomic_load(&s->slot[i].busy);
	return c;
}

unsigned pool_total(struct pool_shared *s)
{
	return atomic_load(&s->total);
}

/* The parent's side of a slot: free for the next worker. A reader may see it half cleared, which
 * only ever counts a dead worker as idle. */
static void slot_clear(struct pool_slot *s)
{
	atomic_store(&s->generation, 0);
	atomic_store(&s->busy, 0);
	atomic_store(&s->pid, 0);
	atomic_store(&s->started_ms, 0);
	atomic_store(&s->served, 0);
}

/* No SA_RESTART: the supervision loop must wake from sigsuspend for every signal. */
static void install(int sig, void (*fn)(int))
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = fn;
	sigaction(sig, &sa, NULL);
}

static pid_t spawn(const struct pool_ops *ops, struct pool_shared *shared, size_t idx,
		   const sigset_t *child_mask)
{
	struct pool_slot *self = &shared->slot[idx];
	slot_clear(self);
	atomic_store(&self->generation, atomic_load(&shared->generation));
	pid_t pid = fork();
	if (pid < 0) {
		log_error("fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		/* The worker installs its own handlers; it must not inherit the parent's blocked set. */
		install(SIGTERM, SIG_DFL);
		install(SIGHUP, SIG_DFL);
		install(SIGUSR1, SIG_DFL);
		install(SIGCHLD, SIG_DFL);
		install(SIGINT, SIG_DFL);
		sigprocmask(SIG_SETMASK, child_mask, NULL);
		pool_slot_start(self);
		_exit(ops->worker(ops->arg, shared, self));
	}
	if (pid < 0)
		slot_clear(self);
	return pid;
}

static unsigned count_generation(const struct slot *slots, size_t n, unsigned gen)
{
	unsigned c = 0;
	for (size_t i = 0; i < n; i++)
		if (slots[i].pid > 0 && slots[i].generation == gen)
			c++;
	return c;
}

static void signal_all(const struct slot *slots, size_t n, int sig, int only_old, unsigned gen)
{
	for (size_t i = 0; i < n; i++)
		if (slots[i].pid > 0 && (!only_old || slots[i].generation != gen))
			kill(slots[i].pid, sig);
}

/* Reaps every exited worker; returns how many of the current generation died young (a crash loop
 * must not become a fork storm). */
static unsigned reap(struct slot *slots, size_t n, unsigned gen, struct pool_shared *shared)
{
	unsigned young = 0;
	int st;
	pid_t pid;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
		for (size_t i = 0; i < n; i++) {
			if (slots[i].pid != pid)
				continue;
			if (slots[i].generation == gen && !got_term) {
				if (WIFSIGNALED(st))
					log_warn("worker %ld killed by signal %d; respawning", (long)pid, WTERMSIG(st));
				else if (WEXITSTATUS(st) != 0)
					log_warn("worker %ld exited with %d; respawning", (long)pid, WEXITSTATUS(st));
				if (clock_now() - slots[i].started < 1.0)
					young++;
			}
			slots[i].pid = 0;
			slot_clear(&shared->slot[i]);
		}
	}
	return young;
}

static size_t live(const struct slot *slots, size_t n)
{
	size_t c = 0;
	for (size_t i = 0; i < n; i++)
		c += slots[i].pid > 0;
	return c;
}

/* What SIGUSR1 and SIGHUP asked for since the last round: reopen the logs, reload. Returns the
 * generation the pool runs from now on. */
static unsigned take_requests(const struct pool_ops *ops, struct pool_shared *shared,
			      struct slot *slots, size_t cap, unsigned gen)
{
	if (got_usr1) {
		got_usr1 = 0;
		if (ops->reopen_logs)
			ops->reopen_logs(ops->arg);
		signal_all(slots, cap, SIGUSR1, 0, gen);
	}
	if (got_hup) {
		got_hup = 0;
		if (ops->reload(ops->arg) == 0) {
			/* New workers start with the new configuration; the old ones finish
			 * what they are serving and leave. No request is dropped: all accept on the
			 * same socket, and a worker takes SIGTERM only while it waits for a
			 * request (it keeps it blocked while serving one, so no read or write of
			 * a request in flight is interrupted). */
			gen++;
			atomic_store(&shared->generation, gen);
			signal_all(slots, cap, SIGTERM, 1, gen);
			log_info("pool: configuration reloaded; generation %u", gen);
		}
	}
	return gen;
}

int pool_run(const struct pool_ops *ops, struct pool_shared *shared)
{
	/* Room for two generations during a reload; grown when the configuration asks for more. */
	size_t cap = 2 * (size_t)ops->size(ops->arg) + 2;
	struct slot *slots = xcalloc(cap, sizeof *slots);
	unsigned gen = 1;
	atomic_store(&shared->generation, gen);
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGCHLD);
	sigprocmask(SIG_BLOCK, &block, &old);
	install(SIGTERM, on_term);
	install(SIGINT, on_term);
	install(SIGHUP, on_hup);
	install(SIGUSR1, on_usr1);
	install(SIGCHLD, on_chld);
	log_info("pool: starting %u workers", ops->size(ops->arg));

	while (!got_term) {
		unsigned want = ops->size(ops->arg);
		atomic_store(&shared->total, want);
		if (2 * (size_t)want + 2 > cap) {
			size_t ncap = 2 * (size_t)want + 2;
			slots = xrealloc(slots, ncap * sizeof *slots);
			memset(slots + cap, 0, (ncap - cap) * sizeof *slots);
			cap = ncap;
		}
		atomic_store(&shared->nslots, (unsigned)cap);
		for (size_t i = 0; i < cap && count_generation(slots, cap, gen) < want; i++) {
			if (slots[i].pid > 0)
				continue;
			pid_t pid = spawn(ops, shared, i, &old);
			if (pid < 0)
				break;
			slots[i] = (struct slot){.pid = pid, .generation = gen, .started = clock_now()};
		}
		sigsuspend(&old);
		if (reap(slots, cap, gen, shared) > 0 && !got_term) {
			/* Workers die at once: back off before the next round of forks. */
			struct timespec ts = {.tv_sec = 1, .tv_nsec = 0};
			nanosleep(&ts, NULL);
		}
		gen = take_requests(ops, shared, slots, cap, gen);
	}

	log_info("pool: stopping; %zu workers get up to %.1f s to finish", live(slots, cap), ops->grace(ops->arg));
	signal_all(slots, cap, SIGTERM, 0, gen);
	double until = clock_now() + ops->grace(ops->arg);
	while (live(slots, cap) > 0 && clock_now() < until) {
		struct timespec ts = {.tv_sec = 0, .tv_nsec = 50 * 1000000L};
		nanosleep(&ts, NULL);
		reap(slots, cap, gen, shared);
	}
	if (live(slots, cap) > 0) {
		log_warn("pool: %zu workers still busy after the grace period; killing them", live(slots, cap));
		signal_all(slots, cap, SIGKILL, 0, gen);
		while (live(slots, cap) > 0 && waitpid(-1, NULL, 0) > 0)
			reap(slots, cap, gen, shared);
	}
	free(slots);
	sigprocmask(SIG_SETMASK, &old, NULL);
	return 0;
}
