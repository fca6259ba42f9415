/*
 * stats: the counters and per-id records behind GET /stats.  Owns the totals,
 * the gauges, the table of ids (up to 4,096, each with its latest request)
 * and the generation a reset bumps.  The modules that see an event bump its
 * counter directly in `stats`; this module renders them as JSON and resets
 * them.  Depends on util only.
 */
#ifndef EMU_STATS_H
#define EMU_STATS_H

#include "util.h"

#define IDS_MAX   4096
#define IDS_SLOTS 8192 /* hash slots: twice IDS_MAX */

struct totals {
	long requests, attempts, messages_ok, errors_sent;
	long streams_started, streams_completed, streams_aborted, streams_cut, streams_errored;
	long connections_accepted;
};

struct idstat {
	char name[ID_MAX + 1];
	long attempts, faulted, completed, aborted;
	bool has_first;
	double first_delta_at;
	json_object *headers, *body; /* the latest attempt */
};

struct stats {
	struct totals t;
	long active_streams, connections_active; /* gauges: a reset leaves them alone */
	struct idstat *slot[IDS_SLOTS];
	size_t nids;
	unsigned gen; /* bumped by a reset so answers begun before it stop counting */
};

extern struct stats stats;

/* The record of an id; with create, a new one unless the table is full (then NULL). */
struct idstat *stats_id(const char *name, bool create);

/* Counts an attempt of s, taking headers and a reference to body; returns its number. */
long stats_attempt(struct idstat *s, json_object *headers, json_object *body);

/* GET /stats?QUERY: one id's record for id=NAME (zeros when unknown), else everything. */
json_object *stats_query_json(const char *query);

void stats_reset(void); /* POST /stats/reset: zero the totals, forget every id */
void stats_free(void);  /* at exit, so a leak checker sees a clean one */

#endif
