/* pool: the prefork supervisor (-c N / workers = N).
 *
 * The parent loads the configuration and initialises libcurl once, then forks the workers, which
 * share those pages copy-on-write and all accept on the same listening socket. It respawns a worker
 * that dies (or retires after max_requests), reloads on SIGHUP by starting a new generation and
 * letting the old one finish its requests, reopens logs on SIGUSR1, and on SIGTERM lets in-flight
 * requests finish within the grace period. A small shared-memory segment, mapped before the fork,
 * counts busy workers for /healthz and load shedding. */
#ifndef LLM_POOL_H
#define LLM_POOL_H

#include <stdatomic.h>

struct pool_shared {
	atomic_uint busy;  /* workers inside a request */
	atomic_uint total; /* workers of the current generation */
	atomic_ulong served;
};

struct pool_ops {
	/* Runs in the child: serves requests until told to stop; the return value is its exit code. */
	int (*worker)(void *arg, struct pool_shared *shared);
	/* Runs in the parent on SIGHUP: 0 when the new configuration was taken, -1 when refused. */
	int (*reload)(void *arg);
	/* The number of workers the current configuration asks for. */
	unsigned (*size)(void *arg);
	/* Seconds in-flight requests get on shutdown. */
	double (*grace)(void *arg);
	/* Runs in the parent on SIGUSR1. */
	void (*reopen_logs)(void *arg);
	void *arg;
};

/* Maps the shared segment; NULL on failure. */
struct pool_shared *pool_shared_new(void);
/* Supervises workers until SIGTERM/SIGINT; returns the process exit code. */
int pool_run(const struct pool_ops *ops, struct pool_shared *shared);

#endif
