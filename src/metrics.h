/* metrics: what the gateway did, counted in the shared store for every worker together, and
 * shown as the Prometheus text exposition (0.0.4) and as the pool's JSON status.
 *
 * Counters are store counters named "M|FAMILY|LABEL|LABEL..." in bucket 0: the pool's memory or
 * the state file, so they are the pool's, never one worker's, and with state_file set they
 * survive a worker's replacement, a reload and a restart (plain CGI reads and adds to the same
 * file). A histogram is one counter per bucket (not cumulative: the exposition adds them up) and
 * one for its sum in microseconds.
 *
 * A request costs a handful of store updates, all at its end (metrics_end): the hooks the relay
 * calls during the request only note times and outcomes in this process's memory. Identities get
 * series of their own up to metrics_identities (a counter of admitted names in the store, so the
 * bound is the pool's); the rest, and every address, are "other", so cardinality stays bounded.
 *
 * What is not a counter lives in a page mapped before the fork (metrics_init): the pool's start
 * time, the most busy workers seen, and each worker's current request (route, start, identity;
 * never the prompt). A worker killed in a request leaves its record set; whoever next looks at
 * the records (the worker that takes the slot, a scrape) counts it once as aborted. */
#ifndef LLM_METRICS_H
#define LLM_METRICS_H

#include "buf.h"
#include "request.h"

struct pool_shared;
struct pool_slot;
struct upstream_result;

/* In the parent, before the workers fork (prefork mode only). */
void metrics_init(void);
/* In a prefork worker before its first request: its slot, a record its killed predecessor left,
 * and the count of worker starts. */
void metrics_worker_start(struct server *srv, struct pool_slot *self);

/* A request's boundaries (serve.c): begin before anything, enter when its route and who pays
 * (who may be "") are known, end after the access line. */
void metrics_begin(void);
void metrics_enter(struct request *rq, const char *who);
void metrics_end(struct request *rq, const char *who);

/* The relay's hooks, noted in this process only. upstream_answered: the upstream's answer
 * started (a stream's headers, a whole answer's end); first_byte: the first byte of the answer
 * went to the web server; body: upstream bytes arrived; delta: a text delta was flushed. */
void metrics_upstream_answered(void);
void metrics_first_byte(void);
void metrics_body(void);
void metrics_delta(void);
/* The upstream call's result: attempts and the last one's outcome. */
void metrics_upstream(const struct upstream_result *res);
/* A committed stream the upstream cut (not a timeout, not the client). */
void metrics_stream_cut(void);

/* 1 when the client of rq may read the metrics and the status (metrics_allow, the client
 * address resolved through trusted_proxies). */
int metrics_allowed(const struct request *rq);
/* Appends the exposition to out. Returns 0, or -1 when out's cap is exceeded. */
int metrics_expose(struct request *rq, struct buf *out);
/* The status as a JSON object (the caller owns it); full adds each worker's current request. */
struct json_object *metrics_status(struct request *rq, int full);

#endif
