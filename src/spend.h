/* spend: who pays for a request, what it used and cost, and the limits and budgets it is held to.
 *
 * serve.c calls spend_begin before the route's handler (the identity, then the checks: a refused
 * request is answered here with 429 and never reaches the upstream) and spend_end after it (the
 * cost at the catalogue's prices, added to the counters, and the concurrency places given back).
 * The relay, the one place usage is known, reports it into the access record with
 * spend_usage_event, spend_usage_json (a scan of the answer's bytes, not a parse) and
 * spend_estimate_output.
 *
 * Counters (in the store; WHO is the identity, "*" the whole server):
 *   r|WHO  requests this minute          t|WHO  input + output tokens this minute
 *   d|WHO  micro-dollars this UTC day    m|WHO  micro-dollars this UTC month
 *   c|WHO  concurrency holders
 *   u|X|WHO|MODEL  the usage report's, per UTC day: X = $ (micro-dollars), n (requests),
 *                  i (input), o (output), w (cache writes), r (cache reads) tokens
 * r, t, d and m are kept only where their limit is set for the scope; the u counters always.
 * Usage is added when it is known, so the request that crosses a line completes and the next is
 * refused: the overshoot is bounded by the requests already in flight. */
#ifndef LLM_SPEND_H
#define LLM_SPEND_H

#include <stddef.h>
#include <time.h>

#include "limits_file.h"
#include "request.h"

struct anth_event;
struct client_keys;
struct store;

#define SPEND_WHO_MAX 80 /* bytes of an identity, NUL included: a counter's name has room */

/* One request's spend state, on serve.c's stack. */
struct spend {
	char who[SPEND_WHO_MAX];
	struct limits_set lim;
	int checked;      /* spend_begin let it through: spend_end accounts for it */
	int held_who;     /* a concurrency place is held for who, and one for the server */
	int held_server;
};

/* The identity of a request: key:LABEL for the client key it presented (key_index into keys, or
 * -1), else user:NAME (REMOTE_USER), else addr:ADDRESS, the client address: X-Forwarded-For's
 * right-most address that is not a trusted proxy, when remote_addr is one. Bytes that would
 * break a counter's name ('|', control characters) become '_'; a long identity is cut and ends
 * in a hash of the whole. Pure. */
void spend_identity(const struct client_keys *keys, long key_index, const char *remote_user,
		    const char *remote_addr, const char *forwarded_for, const char *trusted_proxies,
		    char *who, size_t cap);

/* Who the request is (sp->who, and the access record's), without any check: for the API routes
 * that call no upstream but answer by identity (GET /v1/models lists more to an identified client
 * when models holds "*"). spend_begin does this first. */
void spend_identify(struct request *rq, struct spend *sp, long key_index);
/* Before the handler of a route that calls the upstream. Returns 0 to go on, or -1 when the
 * request was refused and answered. */
int spend_begin(struct request *rq, struct spend *sp, long key_index);
/* After the handler (before the access line): accounts and releases. */
void spend_end(struct request *rq, struct spend *sp);

/* Usage in a stream event (message_start, message_delta) or in a whole answer (its JSON text,
 * len bytes): tokens and the model into the access record. */
void spend_usage_event(struct access_record *acc, const struct anth_event *ev);
void spend_usage_json(struct access_record *acc, const char *body, size_t len);
/* When a stream relayed text (text_bytes in deltas) but its final usage never came: output
 * tokens estimated from the text, never 0, and marked estimated. */
void spend_estimate_output(struct access_record *acc, size_t text_bytes, unsigned deltas);

/* The refusal's Retry-After for a limit at now: seconds until its window or period ends. */
long spend_retry_after(enum limits_kind k, time_t now);

#endif
