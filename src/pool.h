/* pool: the prefork supervisor (-c N / workers = N).
 *
 * The parent loads the configuration and initialises libcurl once, then forks the workers, which
 * share those pages copy-on-write and all accept on the same listening socket. It respawns a worker
 * that dies (or retires after max_requests), reloads on SIGHUP by starting a new generation and
 * letting the old one finish its requests, reopens logs on SIGUSR1, and on SIGTERM lets in-flight
 * requests finish within the grace period.
 *
 * A shared-memory page, mapped before the fork, holds one slot per worker number. A worker writes
 * only its own slot; the parent clears a slot when it reaps the worker, so a worker that dies in
 * the middle of a request (SIGKILL, OOM, abort) cannot leave a phantom busy worker behind, as a
 * shared counter would. /healthz and load shedding count the busy slots. */
#ifndef LLM_POOL_H
#define LLM_POOL_H

#include <signal.h>
#include <stdatomic.h>

/* The config table's upper bound for workers; the page has room for two generations of them. */
#define POOL_MAX_WORKERS 10000
#define POOL_MAX_SLOTS (2 * POOL_MAX_WORKERS + 2)

struct pool_slot {
	atomic_uint generation;    /* set by the parent before the fork; 0 = free */
	atomic_int pid;            /* the worker's, written by the worker */
	atomic_llong started_ms;   /* wall clock at the worker's start */
	atomic_uint busy;          /* 1 while the worker is inside a request */
	atomic_ulong served;       /* requests this worker finished */
};

struct pool_shared {
	atomic_uint generation; /* the current one: older workers are finishing and leaving */
	atomic_uint total;      /* workers the current generation asks for */
	atomic_uint nslots;     /* slots the parent has handed out: readers look no further */
	struct pool_slot slot[POOL_MAX_SLOTS];
};

struct pool_ops {
	/* Runs in the child: serves requests until told to stop; the return value is its exit code.
	 * self is the worker's own slot. */
	int (*worker)(void *arg, struct pool_shared *shared, struct pool_slot *self);
	/* Runs in the parent on SIGHUP: 0 when the new configuration was taken, -1 when refused. */
	int (*reload)(void *arg);
	/* The number of workers the current configuration asks for (at least 1). */
	unsigned (*size)(void *arg);
	/* Seconds in-flight requests get on shutdown. */
	double (*grace)(void *arg);
	/* Runs in the parent on SIGUSR1. */
	void (*reopen_logs)(void *arg);
	void *arg;
};

/* Maps the shared page; NULL on failure. */
struct pool_shared *pool_shared_new(void);
/* The signals the gateway acts on, in the supervisor and in every worker: SIGTERM and SIGINT
 * (stop), SIGHUP (reload), SIGUSR1 (reopen the logs). */
void pool_signals(sigset_t *set);
/* Supervises workers until SIGTERM/SIGINT; returns the process exit code. */
int pool_run(const struct pool_ops *ops, struct pool_shared *shared);

/* In a worker: its slot's start record, and the request boundaries. */
void pool_slot_start(struct pool_slot *self);
void pool_slot_enter(struct pool_slot *self);
void pool_slot_leave(struct pool_slot *self);

/* Busy workers of the current generation (the caller's own request included), and the
 * generation's size. */
unsigned pool_busy(struct pool_shared *s);
unsigned pool_total(struct pool_shared *s);

#endif
