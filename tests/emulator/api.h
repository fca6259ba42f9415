/*
 * api: the Messages API under /v1.  Owns the order of checks (anthropic-
 * version, the key, strict JSON, the request schema, the markers), request
 * validation, the error table of injected statuses, the deterministic answer
 * built from the request (words of the last user message, max_tokens, stop
 * sequences, token counts), count_tokens, and the models catalogue.  A valid
 * request gets an injected error at once or is handed to the streaming
 * module as a message plus how to deliver it.  Depends on stream, message,
 * faults, stats, conn and util.
 */
#ifndef EMU_API_H
#define EMU_API_H

#include "conn.h"

/* Command-line settings, set before the first request; markers override words, delay and ttft. */
struct api_config {
	const char *key; /* the only accepted key; NULL: any non-empty key */
	long words, delay_ms, ttft_ms;
};

extern struct api_config api_config;

/* Answers a request for a /v1 path (or a 404/405); get and post tell the method. */
void api_route(struct conn *c, bool get, bool post);

#endif
