/* stats: see stats.h. */
#include "stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct stats stats;

/* Open addressing with linear probing; IDS_SLOTS > IDS_MAX keeps a free slot. */
static struct idstat **id_slot(const char *name)
{
	uint32_t h = 2166136261u;

	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 16777619u;
	for (size_t i = h & (IDS_SLOTS - 1);; i = (i + 1) & (IDS_SLOTS - 1))
		if (!stats.slot[i] || strcmp(stats.slot[i]->name, name) == 0)
			return &stats.slot[i];
}

struct idstat *stats_id(const char *name, bool create)
{
	struct idstat **sp = id_slot(name);

	if (*sp || !create || stats.nids >= IDS_MAX)
		return *sp;
	*sp = xcalloc(1, sizeof **sp);
	snprintf((*sp)->name, sizeof (*sp)->name, "%s", name);
	stats.nids++;
	return *sp;
}

static void ids_clear(void)
{
	for (size_t i = 0; i < IDS_SLOTS; i++) {
		if (!stats.slot[i])
			continue;
		json_object_put(stats.slot[i]->headers);
		json_object_put(stats.slot[i]->body);
		free(stats.slot[i]);
		stats.slot[i] = NULL;
	}
	stats.nids = 0;
}

static json_object *idstat_json(const struct idstat *s)
{
	json_object *o = jobj();

	jset(o, "attempts", jint(s ? s->attempts : 0));
	jset(o, "faulted", jint(s ? s->faulted : 0));
	jset(o, "completed", jint(s ? s->completed : 0));
	jset(o, "aborted", jint(s ? s->aborted : 0));
	if (s && s->has_first) {
		char d[40];

		snprintf(d, sizeof d, "%.6f", s->first_delta_at);
		jset(o, "first_delta_at", json_object_new_double_s(s->first_delta_at, d));
	} else {
		jset(o, "first_delta_at", NULL);
	}
	if (s && s->headers) {
		json_object *lr = jobj();

		jset(lr, "headers", json_object_get(s->headers));
		jset(lr, "body", json_object_get(s->body));
		jset(o, "last_request", lr);
	} else {
		jset(o, "last_request", NULL);
	}
	return o;
}

static json_object *stats_json(void)
{
	json_object *o = jobj(), *ids = jobj();

	jset(o, "requests", jint(stats.t.requests));
	jset(o, "attempts", jint(stats.t.attempts));
	jset(o, "messages_ok", jint(stats.t.messages_ok));
	jset(o, "errors_sent", jint(stats.t.errors_sent));
	jset(o, "streams_started", jint(stats.t.streams_started));
	jset(o, "streams_completed", jint(stats.t.streams_completed));
	jset(o, "streams_aborted", jint(stats.t.streams_aborted));
	jset(o, "streams_cut", jint(stats.t.streams_cut));
	jset(o, "streams_errored", jint(stats.t.streams_errored));
	jset(o, "active_streams", jint(stats.active_streams));
	jset(o, "connections_accepted", jint(stats.t.connections_accepted));
	jset(o, "connections_active", jint(stats.connections_active));
	for (size_t i = 0; i < IDS_SLOTS; i++)
		if (stats.slot[i])
			jset(ids, stats.slot[i]->name, idstat_json(stats.slot[i]));
	jset(o, "ids", ids);
	return o;
}

long stats_attempt(struct idstat *s, json_object *headers, json_object *body)
{
	s->attempts++;
	s->has_first = false;
	json_object_put(s->headers);
	s->headers = headers;
	json_object_put(s->body);
	s->body = json_object_get(body);
	return s->attempts;
}

json_object *stats_query_json(const char *query)
{
	const char *q = query;

	while (q && strncmp(q, "id=", 3) != 0) {
		q = strchr(q, '&');
		if (q)
			q++;
	}
	if (q) {
		char name[ID_MAX + 1];
		size_t n = strcspn(q + 3, "&");

		snprintf(name, sizeof name, "%.*s", (int)(n < ID_MAX ? n : ID_MAX), q + 3);
		return idstat_json(stats_id(name, false));
	}
	return stats_json();
}

void stats_reset(void)
{
	stats.gen++;
	memset(&stats.t, 0, sizeof stats.t);
	ids_clear();
}

void stats_free(void)
{
	ids_clear();
}
